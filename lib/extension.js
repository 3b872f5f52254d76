'use strict';

// ws's `extension` module: Sec-WebSocket-Extensions parsing and formatting
// with ws's results and errors, for code that uses them directly.
// ws-native negotiates permessage-deflate in C (src/deflate.c).

const { isTokenChar } = require('./token');

const SP = 0x20;
const TAB = 0x09;
const COMMA = 0x2c;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

// What the characters being read belong to.
const IN_NAME = 0; // an extension's name
const IN_PARAM = 1; // a parameter's name
const IN_VALUE = 2; // a parameter's value

function append(map, key, value) {
  const list = map[key];
  if (list === undefined) map[key] = [value];
  else list.push(value);
}

function unexpected(i) {
  return new SyntaxError(`Unexpected character at index ${i}`);
}

/**
 * Parses a Sec-WebSocket-Extensions value into
 * `{ name: [ { param: [value, ...] }, ... ] }` (objects without a
 * prototype; a parameter without a value is `true`), as ws's does: a quoted
 * value must unescape to a token, spaces and tabs may surround names and
 * values, and anything else throws ws's SyntaxError.
 *
 * @param {String} header
 * @return {Object}
 */
function parse(header) {
  const offers = Object.create(null);
  let params = Object.create(null);
  let state = IN_NAME;
  let extName = '';
  let paramName = '';
  let start = -1; // where the current token starts
  let end = -1; // where it ended (a space or the closing quote)
  let quoted = false; // inside a quoted value
  let escaped = false; // the previous character was a backslash in quotes
  let hasEscapes = false; // the value must lose its backslashes
  let last = -1; // the code of the last character read

  // The current token, once it is complete at `i`.
  const token = (i) => header.slice(start, end === -1 ? i : end);
  const value = (i) => {
    const v = token(i);
    return hasEscapes ? v.replace(/\\/g, '') : v;
  };
  // The offer whose parameters were being read is complete.
  const endOffer = () => {
    append(offers, extName, params);
    params = Object.create(null);
    state = IN_NAME;
  };

  let i = 0;
  for (; i < header.length; i++) {
    const c = header.charCodeAt(i);
    last = c;

    if (state === IN_VALUE && quoted) {
      if (escaped) {
        // The unescaped value must still be a token (RFC 6455 9.1).
        if (!isTokenChar(c)) throw unexpected(i);
        if (start === -1) start = i;
        else hasEscapes = true;
        escaped = false;
      } else if (isTokenChar(c)) {
        if (start === -1) start = i;
      } else if (c === QUOTE && start !== -1) {
        quoted = false;
        end = i;
      } else if (c === BACKSLASH) {
        escaped = true;
      } else {
        throw unexpected(i);
      }
      continue;
    }

    if (state === IN_VALUE && c === QUOTE &&
        header.charCodeAt(i - 1) === EQUALS) {
      quoted = true;
      continue;
    }

    if (end === -1 && isTokenChar(c)) {
      if (start === -1) start = i;
      continue;
    }

    if (c === SP || c === TAB) {
      // A name may not start with a space; in a value only what follows
      // one can be a space.
      const allowed = state === IN_NAME ? i !== 0
        : state === IN_PARAM ? true
          : start !== -1;
      if (!allowed) throw unexpected(i);
      if (start !== -1 && end === -1) end = i;
      continue;
    }

    if (c === SEMI || c === COMMA) {
      if (start === -1) throw unexpected(i);
      if (state === IN_NAME) {
        if (c === COMMA) {
          append(offers, token(i), params);
          params = Object.create(null);
        } else {
          extName = token(i);
          state = IN_PARAM;
        }
      } else {
        if (state === IN_PARAM) {
          append(params, token(i), true);
        } else {
          append(params, paramName, value(i));
          hasEscapes = false;
        }
        if (c === COMMA) endOffer();
        else state = IN_PARAM;
      }
      start = end = -1;
      continue;
    }

    if (state === IN_PARAM && c === EQUALS && start !== -1 && end === -1) {
      paramName = header.slice(start, i);
      state = IN_VALUE;
      start = end = -1;
      continue;
    }

    throw unexpected(i);
  }

  if (start === -1 || quoted || last === SP || last === TAB) {
    throw new SyntaxError('Unexpected end of input');
  }

  if (state === IN_NAME) {
    append(offers, token(i), params);
  } else {
    if (state === IN_PARAM) append(params, token(i), true);
    else append(params, paramName, value(i));
    append(offers, extName, params);
  }
  return offers;
}

/**
 * Builds a Sec-WebSocket-Extensions value from
 * `{ name: params | [params, ...] }`, where each parameter's value is one
 * value or an array of them and `true` stands for a bare parameter; as
 * ws's format.
 *
 * @param {Object} extensions
 * @return {String}
 */
function format(extensions) {
  const asList = (v) => (Array.isArray(v) ? v : [v]);
  const formatParams = (name, params) => {
    const parts = [name];
    for (const key of Object.keys(params)) {
      parts.push(asList(params[key])
        .map((v) => (v === true ? key : `${key}=${v}`))
        .join('; '));
    }
    return parts.join('; ');
  };
  return Object.keys(extensions)
    .map((name) => asList(extensions[name])
      .map((params) => formatParams(name, params))
      .join(', '))
    .join(', ');
}

module.exports = { format, parse };
