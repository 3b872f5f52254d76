// ESM entry point, shaped like ws's wrapper.mjs.
import WebSocket from './index.js';

const { createWebSocketStream, WebSocketServer } = WebSocket;

export { createWebSocketStream, WebSocket, WebSocketServer };
export default WebSocket;
