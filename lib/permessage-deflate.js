'use strict';

// ws's PerMessageDeflate class exists in ws-native by name and for its
// `extensionName`: negotiation, compression and decompression run in C
// (src/deflate.c), so an instance could not share state with any
// connection. Making one throws, so code that relies on it fails at once.
// The `perMessageDeflate` option of WebSocket and WebSocketServer works
// as in ws.

class PerMessageDeflate {
  static get extensionName() {
    return 'permessage-deflate';
  }

  constructor() {
    throw new Error(
      'ws-native: PerMessageDeflate is not available (permessage-deflate ' +
        'runs in C); use the perMessageDeflate option'
    );
  }
}

module.exports = PerMessageDeflate;
