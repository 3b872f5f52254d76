'use strict';

// RFC 7230 `token` characters: visible ASCII except the separators
// "(),/:;<=>?@[\]{} and DQUOTE.
const SEPARATORS = '"(),/:;<=>?@[\\]{}';
const table = new Uint8Array(128);

for (let c = 0x21; c < 0x7f; c++) table[c] = 1;
for (const ch of SEPARATORS) table[ch.charCodeAt(0)] = 0;

/**
 * @param {number} code A UTF-16 code unit
 * @return {boolean}
 */
function isTokenChar(code) {
  return code < 128 && table[code] === 1;
}

module.exports = { isTokenChar };
