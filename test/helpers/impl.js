'use strict';

// The implementation under test. `npm test` tests ws-native; setting
// WSN_TEST_IMPL=ws runs the same suite against ws itself, which is how each
// test is shown to encode ws's real behaviour (a test that fails against ws
// is a wrong test).
const ws = require('ws');
const impl = process.env.WSN_TEST_IMPL === 'ws' ? ws : require('../..');

module.exports = {
  // The library under test: its WebSocket class, with .Server etc. as ws has.
  WebSocket: impl,
  WebSocketServer: impl.WebSocketServer,
  // The reference peer: always the real ws.
  PeerWebSocket: ws,
  PeerWebSocketServer: ws.WebSocketServer,
  isNative: impl !== ws
};
