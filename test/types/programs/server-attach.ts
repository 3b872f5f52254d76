// `{ server }` with http and https, and a WebSocket subclass chosen with the
// WebSocket option (the server's type follows it).
import * as http from 'http';
import * as https from 'https';
import WebSocket = require('ws-native');

const server = http.createServer((req, res) => res.end('ok'));
const wss = new WebSocket.WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws, req) => {
  ws.send(`hello ${req.socket.remoteAddress}`);
});
server.listen(0, '127.0.0.1');

const tlsServer = https.createServer({ key: '...', cert: '...' });
const wssTls = new WebSocket.Server({ server: tlsServer });
wssTls.on('connection', (ws) => ws.close());

class Tracked extends WebSocket {
  isAlive = true;
  userId?: string;
}

const tracked = new WebSocket.Server({ server, WebSocket: Tracked });
tracked.on('connection', (ws: Tracked) => {
  ws.isAlive = true;
  ws.on('pong', () => {
    ws.isAlive = true;
  });
});
const interval = setInterval(() => {
  for (const ws of tracked.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, 30000);
tracked.on('close', () => clearInterval(interval));

// A custom request class
class Req extends http.IncomingMessage {
  user?: string;
}
const custom = http.createServer({ IncomingMessage: Req });
const wssCustom = new WebSocket.Server<typeof WebSocket, typeof Req>({
  server: custom,
  verifyClient: (info: { origin: string; secure: boolean; req: Req }) => info.req.user !== undefined,
});
wssCustom.on('connection', (ws, req) => {
  const user: string | undefined = req.user;
  ws.send(user ?? 'anonymous');
});
