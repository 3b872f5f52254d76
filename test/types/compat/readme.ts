// ws's README examples, typed as a TypeScript user writes them with @types/ws.
import * as http from 'http';
import { Duplex } from 'stream';
import WebSocket, { WebSocketServer, createWebSocketStream } from 'ws';

// Sending and receiving text data
const ws = new WebSocket('ws://www.host.com/path');
ws.on('error', console.error);
ws.on('open', function open() {
  ws.send('something');
});
ws.on('message', function message(data) {
  console.log('received: %s', data);
});

// Sending binary data
const binary = new WebSocket('ws://www.host.com/path');
binary.on('open', function open() {
  const array = new Float32Array(5);
  for (let i = 0; i < array.length; ++i) array[i] = i / 2;
  binary.send(array);
});

// Simple server
const wss = new WebSocketServer({ port: 8080 });
wss.on('connection', function connection(ws) {
  ws.on('error', console.error);
  ws.on('message', function message(data) {
    console.log('received: %s', data);
  });
  ws.send('something');
});

// External HTTP/S server, multiple servers sharing one, client authentication
const server = http.createServer();
const wss1 = new WebSocketServer({ noServer: true });
const wss2 = new WebSocketServer({ noServer: true });
wss1.on('connection', function connection(ws, request) {
  ws.on('error', console.error);
  console.log(request.headers.host);
});
function onSocketError(err: Error) {
  console.error(err);
}
function authenticate(request: http.IncomingMessage, next: (err: Error | null, client?: string) => void) {
  next(null, request.headers['user-agent']);
}
server.on('upgrade', function upgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer) {
  socket.on('error', onSocketError);
  const { pathname } = new URL(request.url!, 'wss://base.url');
  authenticate(request, function next(err, client) {
    if (err || !client) {
      socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n');
      socket.destroy();
      return;
    }
    socket.removeListener('error', onSocketError);
    const target = pathname === '/foo' ? wss1 : wss2;
    target.handleUpgrade(request, socket, head, function done(ws) {
      target.emit('connection', ws, request, client);
    });
  });
});
server.listen(8080);

// Server broadcast
const broadcast = new WebSocketServer({ port: 8081 });
broadcast.on('connection', function connection(ws) {
  ws.on('message', function message(data, isBinary) {
    broadcast.clients.forEach(function each(client) {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

// Round-trip time, and the IP address of the client
const rtt = new WebSocket('wss://websocket-echo.com/');
rtt.on('open', function open() {
  rtt.send(Date.now());
});
rtt.on('close', function close() {
  console.log('disconnected');
});
rtt.on('message', function message(data) {
  console.log(`Round-trip time: ${Date.now() - Number(data)} ms`);
  setTimeout(function timeout() {
    rtt.send(Date.now());
  }, 500);
});
wss.on('connection', function connection(ws, req) {
  const ip = req.socket.remoteAddress;
  const forwarded = req.headers['x-forwarded-for'];
  ws.send(`${ip} ${forwarded}`);
});

// Streams API
const streamed = new WebSocket('wss://websocket-echo.com/');
const duplex = createWebSocketStream(streamed, { encoding: 'utf8' });
duplex.on('error', console.error);
duplex.pipe(process.stdout);
process.stdin.pipe(duplex);

// Detect and close broken connections
function heartbeat(this: WebSocket & { isAlive?: boolean }) {
  this.isAlive = true;
}
const hb = new WebSocketServer({ port: 8082 });
hb.on('connection', function connection(ws: WebSocket & { isAlive?: boolean }) {
  ws.isAlive = true;
  ws.on('error', console.error);
  ws.on('pong', heartbeat);
});
const interval = setInterval(function ping() {
  hb.clients.forEach(function each(ws: WebSocket & { isAlive?: boolean }) {
    if (ws.isAlive === false) return ws.terminate();
    ws.isAlive = false;
    ws.ping();
  });
}, 30000);
hb.on('close', function close() {
  clearInterval(interval);
});

// Client side heartbeat
function clientHeartbeat(this: WebSocket & { pingTimeout?: NodeJS.Timeout }) {
  clearTimeout(this.pingTimeout);
  this.pingTimeout = setTimeout(() => {
    this.terminate();
  }, 30000 + 1000);
}
const client = new WebSocket('wss://websocket-echo.com/');
client.on('error', console.error);
client.on('open', clientHeartbeat);
client.on('ping', clientHeartbeat);
client.on('close', function clear(this: WebSocket & { pingTimeout?: NodeJS.Timeout }) {
  clearTimeout(this.pingTimeout);
});
