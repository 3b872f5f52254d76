'use strict';

// ws's `subprotocol` module: Sec-WebSocket-Protocol parsing with ws's
// results and errors, for code that uses it directly. ws-native's own
// server checks the header in lib/websocket-server.js.

const { isTokenChar } = require('./token');

/**
 * Parses a Sec-WebSocket-Protocol value into the set of its subprotocol
 * names: tokens separated by commas, with spaces or tabs around them (not
 * before the first). Throws ws's SyntaxError on anything else, on an
 * empty list and on a name given twice.
 *
 * @param {String} header
 * @return {Set<String>}
 */
function parse(header) {
  const names = new Set();
  const add = (name) => {
    if (names.has(name)) {
      throw new SyntaxError(`The "${name}" subprotocol is duplicated`);
    }
    names.add(name);
  };
  const unexpected = (i) => new SyntaxError(`Unexpected character at index ${i}`);

  let tokenStart = -1; // where the current name starts
  let tokenEnd = -1; // where it ended, once a space followed it

  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i);
    if (tokenEnd === -1 && isTokenChar(c)) {
      if (tokenStart === -1) tokenStart = i;
      continue;
    }
    if ((c === 0x20 || c === 0x09) && i > 0) {
      if (tokenStart !== -1 && tokenEnd === -1) tokenEnd = i;
      continue;
    }
    if (c !== 0x2c || tokenStart === -1) throw unexpected(i);
    add(header.slice(tokenStart, tokenEnd === -1 ? i : tokenEnd));
    tokenStart = tokenEnd = -1;
  }

  // The last name must run to the end: no trailing space, no empty list.
  if (tokenStart === -1 || tokenEnd !== -1) {
    throw new SyntaxError('Unexpected end of input');
  }
  add(header.slice(tokenStart));
  return names;
}

module.exports = { parse };
