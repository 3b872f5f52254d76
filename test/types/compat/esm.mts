// @types/ws's ESM names (index.d.mts): the default export, named values and types.
import WebSocket, { WebSocketServer, createWebSocketStream, type RawData, type ServerOptions } from 'ws';

const options: ServerOptions = { port: 0, clientTracking: true };
const wss = new WebSocketServer(options);
wss.on('connection', (ws: WebSocket) => {
  ws.on('message', (data: RawData, isBinary) => ws.send(data, { binary: isBinary }));
  createWebSocketStream(ws).resume();
});
const client = new WebSocket('ws://127.0.0.1:1');
client.on('open', () => client.close());
