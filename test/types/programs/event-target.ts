// The browser-style API: addEventListener, on* attributes, the event types.
import WebSocket = require('ws-native');

const ws = new WebSocket('ws://127.0.0.1:1');

ws.onopen = (event: WebSocket.Event) => {
  event.target.send('hi');
};
ws.onmessage = (event: WebSocket.MessageEvent) => {
  const data: WebSocket.Data = event.data;
  if (typeof data === 'string') console.log(data.length, event.type);
};
ws.onerror = (event: WebSocket.ErrorEvent) => console.error(event.message, event.error);
ws.onclose = (event: WebSocket.CloseEvent) => console.log(event.code, event.reason, event.wasClean);
ws.onopen = null;

ws.addEventListener('message', (event) => console.log(event.data), { once: true });
ws.addEventListener('close', (event) => console.log(event.code));
ws.addEventListener('error', { handleEvent: (event: WebSocket.ErrorEvent) => console.log(event.message) });
const onOpen = (event: WebSocket.Event) => console.log(event.type);
ws.addEventListener('open', onOpen);
ws.removeEventListener('open', onOpen);

const handlers: { [K in keyof WebSocket.WebSocketEventMap]?: (e: WebSocket.WebSocketEventMap[K]) => void } = {};
void handlers;
