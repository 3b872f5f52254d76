'use strict';

// Exports shaped like ws's index.js: the WebSocket class carrying the rest.
const createWebSocketStream = require('./lib/stream');
const WebSocket = require('./lib/websocket');
const WebSocketServer = require('./lib/websocket-server');

WebSocket.createWebSocketStream = createWebSocketStream;
WebSocket.Server = WebSocketServer;
WebSocket.WebSocket = WebSocket;
WebSocket.WebSocketServer = WebSocketServer;

module.exports = WebSocket;
