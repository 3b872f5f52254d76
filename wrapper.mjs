// ESM entry point, shaped like ws's wrapper.mjs.
import WebSocket from './index.js';

const {
  createWebSocketStream,
  extension,
  PerMessageDeflate,
  Receiver,
  Sender,
  subprotocol,
  WebSocketServer
} = WebSocket;

export {
  createWebSocketStream,
  extension,
  PerMessageDeflate,
  Receiver,
  Sender,
  subprotocol,
  WebSocket,
  WebSocketServer
};
export default WebSocket;
