// `import * as WebSocket`: the namespace's members (a namespace import
// cannot be constructed, with @types/ws as here).
import * as WebSocket from 'ws-native';

const wss = new WebSocket.Server({ port: 0 });
const wss2 = new WebSocket.WebSocketServer({ noServer: true });
const client = new WebSocket.WebSocket('ws://127.0.0.1:1');
wss.on('connection', (ws: WebSocket.WebSocket) => {
  ws.on('message', (data: WebSocket.RawData) => ws.send(data));
});
const onData = (data: WebSocket.Data): number => (typeof data === 'string' ? data.length : 0);
const opts: WebSocket.PerMessageDeflateOptions = { threshold: 0 };
const stream = WebSocket.createWebSocketStream(client);
void [wss2, onData, opts, stream];
