// noServer + handleUpgrade: several servers on one http server, and an
// authenticated upgrade (ws's README patterns).
import { createServer, IncomingMessage } from 'http';
import { Duplex } from 'stream';
import { WebSocketServer, WebSocket } from 'ws-native';

const wss1 = new WebSocketServer({ noServer: true });
const wss2 = new WebSocketServer({ noServer: true, perMessageDeflate: true });

wss1.on('connection', (ws: WebSocket) => ws.on('error', console.error));
wss2.on('connection', (ws: WebSocket, req: IncomingMessage) => ws.send(req.url ?? ''));

function authenticate(req: IncomingMessage, cb: (err: Error | null, client?: { id: string }) => void) {
  cb(req.headers.authorization ? null : new Error('no'), { id: '1' });
}

const server = createServer();
server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
  const { pathname } = new URL(request.url ?? '/', 'ws://base.url');
  if (pathname === '/foo') {
    authenticate(request, (err, client) => {
      if (err || !client) {
        socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n');
        socket.destroy();
        return;
      }
      wss1.handleUpgrade(request, socket, head, (ws) => {
        wss1.emit('connection', ws, request, client);
      });
    });
  } else if (pathname === '/bar' && wss2.shouldHandle(request)) {
    wss2.handleUpgrade(request, socket, head, (ws, req) => {
      wss2.emit('connection', ws, req);
    });
  } else {
    socket.destroy();
  }
});
wss1.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
  socket.end(`HTTP/1.1 400 Bad Request\r\n\r\n${err.message} ${req.url}`);
});
server.listen(0);
