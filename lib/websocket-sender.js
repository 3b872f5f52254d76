'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');

// The `_sender` of a ws-native WebSocket (ws's `websocket._sender`): a
// Sender whose frames go to the WebSocket's C connection, so that
// socket.io's pre-encoded broadcast (engine.io calls
// `websocket._sender.sendFrame(frame, cb)`) writes its bytes as they are.

const Sender = require('./sender');

class WebSocketSender extends Sender {
  constructor(websocket) {
    super(null, websocket._extensions);
    this._websocket = websocket;
  }

  /**
   * Queues one complete frame, as Sender.frame built it, on the C
   * connection; `cb` runs once it is written (or with the error when it
   * cannot be), as ws's does.
   *
   * @param {(Buffer|String)[]} list
   * @param {Function} [cb]
   */
  sendFrame(list, cb) {
    if (!Array.isArray(list)) {
      throw new TypeError('The frame must be an array of Buffers');
    }
    const pieces = list.map((piece) =>
      typeof piece === 'string' ? Buffer.from(piece) : piece);
    this._websocket._sendFrame(pieces, cb);
  }
}

module.exports = WebSocketSender;
