'use strict';

// ws's predicates (its validation.js), in one place for lib/websocket.js and
// lib/sender.js.

const { hasBlob } = require('./constants');

/**
 * ws's close code rule: 1000-1014 except 1004-1006, and 3000-4999.
 *
 * @param {number} code
 * @return {boolean}
 */
function isValidStatusCode(code) {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 &&
      code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

/**
 * A Blob or File, by its shape (as ws's isBlob).
 *
 * @param {*} value
 * @return {boolean}
 */
function isBlob(value) {
  return (
    hasBlob &&
    typeof value === 'object' &&
    value !== null &&
    typeof value.arrayBuffer === 'function' &&
    typeof value.type === 'string' &&
    typeof value.stream === 'function' &&
    (value[Symbol.toStringTag] === 'Blob' ||
      value[Symbol.toStringTag] === 'File')
  );
}

module.exports = { isBlob, isValidStatusCode };
