// The CommonJS entry: every static index.d.ts declares on the WebSocket
// class (its constants and the namespace's values), and every member of
// ws's WebSocket surface (WebSocketBase), exists at run time.
import assert = require('node:assert/strict');
import { EventEmitter } from 'node:events';
import WebSocket = require('ws-native');

type Statics = Exclude<keyof typeof WebSocket, 'prototype' | keyof typeof EventEmitter>;
const statics: Record<Statics, true> = {
  CONNECTING: true,
  OPEN: true,
  CLOSING: true,
  CLOSED: true,
  Server: true,
  WebSocketServer: true,
  WebSocket: true,
  createWebSocketStream: true,
};
for (const name of Object.keys(statics)) {
  assert.notEqual((WebSocket as unknown as Record<string, unknown>)[name], undefined, name);
}
assert.deepEqual([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED], [0, 1, 2, 3]);

// ws's instance surface, and the event-handler attributes.
type Members = Exclude<keyof WebSocket.WebSocketBase, keyof EventEmitter>;
const members: Record<Members | 'onopen' | 'onmessage' | 'onclose' | 'onerror' |
  'addEventListener' | 'removeEventListener', true> = {
  CONNECTING: true,
  OPEN: true,
  CLOSING: true,
  CLOSED: true,
  binaryType: true,
  bufferedAmount: true,
  extensions: true,
  isPaused: true,
  protocol: true,
  readyState: true,
  url: true,
  close: true,
  ping: true,
  pong: true,
  send: true,
  terminate: true,
  pause: true,
  resume: true,
  onopen: true,
  onmessage: true,
  onclose: true,
  onerror: true,
  addEventListener: true,
  removeEventListener: true,
};
for (const name of Object.keys(members)) {
  assert.ok(name in WebSocket.prototype, name);
}

// The server's methods.
for (const name of ['address', 'close', 'handleUpgrade', 'shouldHandle'] as const) {
  assert.equal(typeof WebSocket.Server.prototype[name], 'function', name);
}
console.log('exports.cts: ok');
