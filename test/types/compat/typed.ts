// @types/ws's names used the way typed code uses them: `import = require`,
// the namespace's types, the generic server, event-target handlers.
import WebSocket = require('ws');
import { IncomingMessage } from 'http';

type RawData = WebSocket.RawData;

function toText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

const options: WebSocket.ServerOptions = {
  port: 0,
  perMessageDeflate: { threshold: 0 } as WebSocket.PerMessageDeflateOptions,
  verifyClient: ((info, cb) => cb(info.secure, 401)) as WebSocket.VerifyClientCallbackAsync,
  handleProtocols: (protocols) => (protocols.has('v1') ? 'v1' : false),
  maxPayload: 1024,
  skipUTF8Validation: true,
};

const wss: WebSocket.Server = new WebSocket.Server(options);
const wss2: WebSocket.WebSocketServer = new WebSocket.WebSocketServer({ noServer: true });

wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
  socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
    if (!isBinary) socket.send(toText(data).toUpperCase());
  });
  socket.once('close', (code: number, reason: Buffer) => {
    console.log(code, reason.toString(), request.url);
  });
  const address: WebSocket.AddressInfo | string | null = wss.address();
  console.log(address);
});

const client = new WebSocket('ws://localhost:1', { headers: { 'X-A': 'b' } } as WebSocket.ClientOptions);
client.onmessage = (event: WebSocket.MessageEvent) => {
  const data: WebSocket.Data = event.data;
  console.log(typeof data === 'string' ? data : 'binary', event.target.readyState);
};
client.onclose = (event: WebSocket.CloseEvent) => console.log(event.code, event.reason);
client.onerror = (event: WebSocket.ErrorEvent) => console.log(event.message);
client.onopen = (event: WebSocket.Event) => event.target.send('hi');
client.addEventListener('message', (event) => console.log(event.data));
client.binaryType = 'fragments';

const upgraded: Promise<WebSocket> = new Promise((resolve) => {
  wss2.handleUpgrade({} as IncomingMessage, null as never, Buffer.alloc(0), (ws) => resolve(ws));
});
void upgraded;

class MyWebSocket extends WebSocket {
  id = 0;
}
const custom = new WebSocket.Server<typeof MyWebSocket>({ port: 0, WebSocket: MyWebSocket });
custom.on('connection', (ws) => {
  const id: number = ws.id;
  ws.send(String(id));
});
const stream = WebSocket.createWebSocketStream(client);
stream.end();

const states: number[] = [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED, client.OPEN];
void states;
