// A `{ port }` server, imported the ES way in a CommonJS file (esModuleInterop),
// with ws's hooks and ws-native's additions (tls in C, topics, heartbeat).
import WebSocket, { WebSocketServer } from 'ws-native';
import { IncomingMessage } from 'http';

const wss = new WebSocketServer(
  {
    port: 0,
    host: '127.0.0.1',
    backlog: 511,
    path: '/chat',
    clientTracking: true,
    perMessageDeflate: {
      zlibDeflateOptions: { level: 3, memLevel: 7 },
      zlibInflateOptions: { chunkSize: 16 * 1024 },
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      threshold: 1024,
      concurrencyLimit: 10,
    },
    maxPayload: 1 << 20,
    verifyClient: (info, done) => {
      const ok = info.origin === 'http://localhost:3000' && !info.secure;
      if (ok) done(true);
      else done(false, 403, 'Forbidden', { 'X-Reason': 'origin' });
    },
    handleProtocols: (protocols: Set<string>, req: IncomingMessage) =>
      protocols.has('chat') && req.url !== undefined ? 'chat' : false,
    // ws-native's own
    handshakeTimeout: 10000,
    highWaterMark: 1 << 16,
    idleTimeout: 120,
    sendPings: true,
    maxBackpressure: 1 << 20,
    closeOnBackpressureLimit: false,
    maxBufferedAmount: Infinity,
  },
  () => {
    const address = wss.address();
    if (address !== null && typeof address !== 'string') console.log(address.port, address.family);
  },
);

wss.on('headers', (headers: string[], req: IncomingMessage) => {
  headers.push('X-Powered-By: ws-native');
  void req;
});

wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
  const ip = req.socket.remoteAddress;
  ws.subscribe('room:1');
  ws.subscribe(`user:${ip}`);
  console.log(ws.isSubscribed('room:1'), ws.topics.join(','));
  ws.on('message', (data, isBinary) => {
    const n: number = ws.publish('room:1', data as Buffer, { binary: isBinary });
    // The ws way still works: a loop over clients.
    wss.clients.forEach((client) => {
      if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
    void n;
  });
  ws.on('dropped', (data: Buffer, isBinary: boolean, topic: string) => {
    console.log('dropped', data.length, isBinary, topic);
  });
  ws.on('close', () => ws.unsubscribe('room:1'));
});

wss.on('listening', () => {
  const sent: number = wss.publish('room:1', 'hello', { compress: false });
  const count: number = wss.subscriberCount('room:1');
  console.log(sent, count);
});
wss.on('error', (err: Error) => console.error(err));
wss.on('close', () => console.log('closed'));

// wss:// with TLS in C
const secure = new WebSocketServer({
  port: 0,
  tls: { key: Buffer.from('...'), cert: '...', ca: ['...'], passphrase: 'x' },
});
secure.on('tlsClientError', (err, peer) => {
  console.log(err.message, peer.remoteAddress, peer.remotePort, peer.remoteFamily);
});

// A synchronous verifyClient: annotated, as with @types/ws (a one-parameter
// arrow matches both of verifyClient's signatures, so it is not typed from them).
const verifySync: WebSocket.VerifyClientCallbackSync = ({ req }) => req.headers.host !== undefined;
const sync = new WebSocket.Server({ port: 0, verifyClient: verifySync });

wss.close((err) => {
  if (err) console.error(err);
});
secure.close();
sync.close();
