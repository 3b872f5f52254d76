// The ESM entry: its value exports, as wrapper.d.mts declares them, are
// exactly what wrapper.mjs exports.
import assert from 'node:assert/strict';
import * as ns from 'ws-native';
import WebSocket, { WebSocketServer, createWebSocketStream } from 'ws-native';

// Every value name of wrapper.d.mts, no more, no fewer (a compile error
// otherwise), checked against the module's keys at run time.
const declared: Record<keyof typeof ns, true> = {
  default: true,
  WebSocket: true,
  WebSocketServer: true,
  createWebSocketStream: true,
  Sender: true,
  Receiver: true,
  PerMessageDeflate: true,
  extension: true,
  subprotocol: true,
};
assert.deepEqual(Object.keys(ns).sort(), Object.keys(declared).sort());

assert.equal(ns.WebSocket, WebSocket);
assert.equal(WebSocketServer, WebSocket.WebSocketServer);
assert.equal(WebSocket.Server, WebSocketServer);
assert.equal(createWebSocketStream, WebSocket.createWebSocketStream);
assert.equal(ns.PerMessageDeflate.extensionName, 'permessage-deflate');
assert.equal(typeof ns.Sender.frame, 'function');
assert.deepEqual([...ns.subprotocol.parse('chat, superchat')], ['chat', 'superchat']);
// (ws's parse builds objects with no prototype: compare their JSON.)
assert.equal(JSON.stringify(ns.extension.parse('permessage-deflate; client_max_window_bits')),
  JSON.stringify({ 'permessage-deflate': [{ client_max_window_bits: [true] }] }));
const frame = ns.Sender.frame(Buffer.from('hi'), { fin: true, opcode: 1, mask: false, readOnly: false });
assert.deepEqual(Buffer.concat(frame), Buffer.from([0x81, 2, 0x68, 0x69]));
console.log('exports.mts: ok');
