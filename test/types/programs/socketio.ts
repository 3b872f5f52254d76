// socket.io with ws-native as its wsEngine (its own types: `wsEngine?: any`).
import { createServer } from 'http';
import { Server } from 'socket.io';
import { WebSocketServer } from 'ws-native';

const httpServer = createServer();
const io = new Server(httpServer, { wsEngine: require('ws-native').Server });
const io2 = new Server({ wsEngine: WebSocketServer, transports: ['websocket'] });
io.on('connection', (socket) => {
  socket.on('chat', (msg: string) => io.emit('chat', msg));
});
io2.attach(httpServer);
httpServer.listen(0);
