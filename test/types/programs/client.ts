// A client, CommonJS style (`import = require`), with ws's options and
// events and ws-native's own options.
import WebSocket = require('ws-native');
import { IncomingMessage, ClientRequest } from 'http';

const options: WebSocket.ClientOptions = {
  headers: { Authorization: 'Bearer x' },
  origin: 'http://localhost:3000',
  handshakeTimeout: 5000,
  followRedirects: true,
  maxRedirects: 3,
  perMessageDeflate: { threshold: 1024, clientMaxWindowBits: 15 },
  maxPayload: 1 << 20,
  maxFragments: 100,
  maxBufferedChunks: 1000,
  skipUTF8Validation: false,
  autoPong: true,
  allowSynchronousEvents: true,
  rejectUnauthorized: true,
  finishRequest: (request: ClientRequest, websocket: WebSocket) => {
    request.setHeader('X-Id', String(websocket.readyState));
    request.end();
  },
  // ws-native's own
  maxPendingAutoPongs: 60,
  closeTimeout: 30000,
  maxBufferedAmount: 64 * 1024 * 1024,
  highWaterMark: 65536,
  idleTimeout: 30,
  sendPings: true,
};

const ws = new WebSocket('wss://example.invalid/chat', ['chat', 'superchat'], options);
const ws2 = new WebSocket(new URL('ws://127.0.0.1:8080'), { protocolVersion: 13 });
const ws3 = new WebSocket('ws+unix:///tmp/sock', 'proto');
void ws2;
void ws3;

ws.binaryType = 'arraybuffer';
ws.binaryType = 'blob';

ws.on('open', function open() {
  this.send('hello');
  this.send(Buffer.from([1, 2, 3]), { binary: true, compress: false });
  this.send(new Uint8Array(4), (err) => {
    if (err) console.error(err.message);
  });
  this.ping();
  this.ping(Buffer.alloc(1), true, (err: Error) => void err);
  this.pong('x');
});

ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
  if (isBinary && Buffer.isBuffer(data)) {
    console.log(data.byteLength);
  } else if (Array.isArray(data)) {
    console.log(Buffer.concat(data).toString());
  } else {
    console.log(data.toString());
  }
});

ws.on('close', (code: number, reason: Buffer) => {
  console.log(code, reason.toString());
});
ws.on('error', (err) => console.error(err.stack));
ws.on('ping', (data) => data.length);
ws.on('pong', (data) => data.length);
ws.on('upgrade', (res: IncomingMessage) => res.headers['sec-websocket-protocol']);
ws.on('redirect', (url: string, req: ClientRequest) => void [url, req]);
ws.on('unexpected-response', (req, res) => {
  req.destroy();
  res.resume();
});
ws.once('open', () => ws.close(1000, 'bye'));
ws.addListener('close', () => undefined);
ws.removeListener('close', () => undefined);
ws.off('message', () => undefined);

// Backpressure: send() returns false past the high-water mark, then 'drain'.
function pump(socket: WebSocket, chunks: Buffer[]): void {
  while (chunks.length) {
    const chunk = chunks.shift()!;
    if (!socket.send(chunk)) {
      socket.once('drain', () => pump(socket, chunks));
      return;
    }
  }
}
pump(ws, [Buffer.alloc(1024)]);
if (ws.writableNeedDrain) console.log('waiting, buffered', ws.bufferedAmount);

switch (ws.readyState) {
  case WebSocket.CONNECTING:
  case ws.OPEN:
  case WebSocket.CLOSING:
  case WebSocket.CLOSED:
    break;
}

console.log(ws.protocol, ws.extensions, ws.url, ws.isPaused);
ws.pause();
ws.resume();
ws.terminate();
