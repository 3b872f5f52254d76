// ESM entry point, shaped like ws's wrapper.mjs.
import WebSocket from './index.js';

const { WebSocketServer } = WebSocket;

export { WebSocket, WebSocketServer };
export default WebSocket;
