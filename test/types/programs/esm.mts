// ESM: the default export, named exports (values and types) from wrapper.d.mts.
import WebSocket, {
  WebSocketServer,
  createWebSocketStream,
  Sender,
  PerMessageDeflate,
  extension,
  subprotocol,
  type ClientOptions,
  type RawData,
  type ServerOptions,
  type Server,
  type VerifyClientCallbackSync,
  type PublishOptions,
  WebSocket as Named,
} from 'ws-native';

const verify: VerifyClientCallbackSync = ({ origin }) => origin === 'https://example.com';
const serverOptions: ServerOptions = { port: 0, verifyClient: verify, idleTimeout: 10 };
const wss: Server = new WebSocketServer(serverOptions);
const wss2: WebSocketServer = new WebSocket.WebSocketServer({ noServer: true });
void wss2;

const clientOptions: ClientOptions = { perMessageDeflate: false, highWaterMark: 1024 };
const ws: Named = new WebSocket('ws://127.0.0.1:1', clientOptions);
const same: WebSocket = ws;
void same;

wss.on('connection', (socket) => {
  socket.on('message', (data: RawData) => {
    const publish: PublishOptions = { binary: true };
    socket.publish('t', data as Buffer, publish);
  });
  createWebSocketStream(socket).resume();
});

// ws's internals, as socket.io uses them.
const frame: Buffer[] = Sender.frame(Buffer.from('x'), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
void frame;
const name: 'permessage-deflate' = PerMessageDeflate.extensionName;
const offers = extension.parse('permessage-deflate; client_max_window_bits');
console.log(name, extension.format(offers), subprotocol.parse('chat, superchat').size);
console.log(WebSocket.OPEN, Named.CLOSED);
