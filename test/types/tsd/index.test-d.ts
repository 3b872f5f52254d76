// tsd assertions: ws-native's additions, a few of ws's types, and the
// assignability to @types/ws that libraries typed against it rely on.
// tsd compiles this with TypeScript 5.9 (its own) and Node-10 resolution, so
// the package is found through package.json "types" here (the tsc projects
// beside this folder resolve it through "exports").
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd';
import { IncomingMessage } from 'http';
import { Duplex } from 'stream';
import WebSocket = require('../../..');
import Ws = require('ws'); // @types/ws

const ws = new WebSocket('ws://127.0.0.1:1');
const wss = new WebSocket.WebSocketServer({ port: 0 });

// ws's own
expectType<0 | 1 | 2 | 3>(ws.readyState);
expectType<1>(WebSocket.OPEN);
expectType<3>(ws.CLOSED);
expectType<WebSocket.Server<typeof WebSocket, typeof IncomingMessage>>(wss);
expectType<typeof WebSocket.Server>(WebSocket.WebSocketServer);
expectType<typeof WebSocket>(WebSocket.WebSocket);
expectType<Set<WebSocket>>(wss.clients);
expectType<WebSocket.AddressInfo | string | null>(wss.address());
expectType<Duplex>(WebSocket.createWebSocketStream(ws));
ws.on('message', (data, isBinary) => {
  expectType<WebSocket.RawData>(data);
  expectType<boolean>(isBinary);
});
ws.on('close', (code, reason) => {
  expectType<number>(code);
  expectType<Buffer>(reason);
});
ws.on('open', function () {
  expectType<WebSocket>(this);
});
ws.addEventListener('message', (event) => expectType<WebSocket.Data>(event.data));
wss.on('connection', (socket, request) => {
  expectType<WebSocket>(socket);
  expectType<IncomingMessage>(request);
});
expectError(new WebSocket.Server({ port: '8080' }));
expectError(ws.close('1000'));
expectError(ws.send());
expectNotAssignable<WebSocket.ServerOptions>({ verifyClient: true });

// binaryType: 'blob' may be assigned; reads keep @types/ws's three values.
ws.binaryType = 'blob';
expectType<'nodebuffer' | 'arraybuffer' | 'fragments'>(ws.binaryType);
expectError((ws.binaryType = 'text'));

// Backpressure
expectType<boolean>(ws.send('x'));
expectType<boolean>(ws.send(Buffer.alloc(1), { binary: true }, (err) => expectType<Error | undefined>(err)));
expectType<boolean>(ws.writableNeedDrain);
expectError((ws.writableNeedDrain = true));
ws.on('drain', (...args) => expectType<[]>(args));
expectAssignable<WebSocket.ClientOptions>({ highWaterMark: 1024 });
expectAssignable<WebSocket.ServerOptions>({ port: 0, highWaterMark: 1024 });
expectNotAssignable<WebSocket.ClientOptions>({ highWaterMark: '1024' });

// Heartbeat
expectAssignable<WebSocket.ServerOptions>({ port: 0, idleTimeout: 30, sendPings: false });
expectAssignable<WebSocket.ClientOptions>({ idleTimeout: 0.5, sendPings: true });
expectNotAssignable<WebSocket.ServerOptions>({ port: 0, idleTimeout: '30' });
expectNotAssignable<WebSocket.ClientOptions>({ sendPings: 1 });

// Topics
expectType<void>(ws.subscribe('news'));
expectType<void>(ws.unsubscribe('news'));
expectType<boolean>(ws.isSubscribed('news'));
expectType<string[]>(ws.topics);
expectType<number>(ws.publish('news', 'text'));
expectType<number>(ws.publish('news', Buffer.alloc(1), { binary: true, compress: false }));
expectType<number>(wss.publish('news', new Uint8Array(1)));
expectType<number>(wss.subscriberCount('news'));
expectError(ws.subscribe(1));
expectError(ws.publish('news', 'x', { fin: false }));
expectError(wss.publish('news', new Blob(['x'])));
expectType<boolean>(ws.send(new Blob(['x'])));
expectError(wss.subscriberCount());
expectError((ws.topics = []));
ws.on('dropped', (data, isBinary, topic) => {
  expectType<Buffer>(data);
  expectType<boolean>(isBinary);
  expectType<string>(topic);
});
expectAssignable<WebSocket.ServerOptions>({ port: 0, maxBackpressure: 1 << 20, closeOnBackpressureLimit: true });
expectNotAssignable<WebSocket.ServerOptions>({ port: 0, closeOnBackpressureLimit: 'yes' });

// Limits and the other ws-native options
expectAssignable<WebSocket.ServerOptions>({
  port: 0,
  maxPayload: 1,
  maxFragments: 1,
  maxBufferedChunks: 1,
  maxPendingAutoPongs: 1,
  maxBufferedAmount: Infinity,
  closeTimeout: 1000,
  handshakeTimeout: 1000,
});
expectAssignable<WebSocket.ClientOptions>({ maxPendingAutoPongs: 1, maxBufferedAmount: 1, closeTimeout: 1 });
expectAssignable<WebSocket.ServerOptions>({ port: 0, tls: { key: Buffer.alloc(1), cert: 'pem', ca: ['a'], pfx: Buffer.alloc(1), passphrase: 'p' } });
expectNotAssignable<WebSocket.ServerOptions>({ port: 0, tls: { key: 'k', cert: 'c', ciphers: 'HIGH' } });
wss.on('tlsClientError', (err, peer) => {
  expectType<Error>(err);
  expectType<string | undefined>(peer.remoteAddress);
  expectType<number | undefined>(peer.remotePort);
});

// A ws-native WebSocket and server are assignable to @types/ws's (libraries
// typed against @types/ws take them), and the classes too.
expectAssignable<Ws>(ws);
expectAssignable<Ws.WebSocketServer>(wss);
expectAssignable<Ws.Server>(wss);
expectAssignable<typeof Ws>(WebSocket);
expectAssignable<Ws.ServerOptions>(wss.options);
// ...and @types/ws's options are ws-native options (but for the WebSocket
// class option, which must be ws-native's).
declare const wsOptions: Omit<Ws.ServerOptions, 'WebSocket'>;
declare const wsClientOptions: Ws.ClientOptions;
expectAssignable<WebSocket.ServerOptions>(wsOptions);
expectAssignable<WebSocket.ClientOptions>(wsClientOptions);
// createWebSocketStream takes a WebSocket; not any EventEmitter.
expectError(WebSocket.createWebSocketStream(new Duplex()));
