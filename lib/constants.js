'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');

// Names and defaults shared by the JS layer, as ws 8 defines them.
const BINARY_TYPES = ['nodebuffer', 'arraybuffer', 'fragments'];
const hasBlob = typeof Blob !== 'undefined';

if (hasBlob) BINARY_TYPES.push('blob');

module.exports = {
  BINARY_TYPES,
  hasBlob,
  CLOSE_TIMEOUT: 30000,
  EMPTY_BUFFER: Buffer.alloc(0),
  GUID: '258EAFA5-E914-47DA-95CA-C5AB0DC85B11',
  kStatusCode: Symbol('status-code'),
  kWebSocket: Symbol('websocket'),
  NOOP: () => {}
};
