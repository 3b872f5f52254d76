'use strict';

// ws's Receiver (the frame parser as a Writable) exists in ws-native only
// by name: frames are parsed in C on the I/O loop (src/frame.c, src/conn.c)
// and no JS parser exists to hand bytes to. Making one throws, so code that
// relies on it fails at once instead of receiving nothing. No third-party
// package we know of (socket.io, engine.io, graphql-ws, express-ws, ...)
// constructs it.

const { Writable } = require('stream');

class Receiver extends Writable {
  constructor() {
    throw new Error(
      'ws-native: Receiver is not available (frames are parsed in C); ' +
        'use a WebSocket or WebSocketServer'
    );
  }
}

module.exports = Receiver;
