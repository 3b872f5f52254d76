'use strict';

// S10's server: socket.io (a devDependency) on Node's http server, the
// websocket transport only, with ws or ws-native as its wsEngine
// ($BENCH_LIB: 'ws' or 'ws-native'). Every socket joins one room; once
// $BENCH_BROADCAST of them are connected, io.to(room).emit() sends one
// event with a $BENCH_SIZE-byte string of 'x' (default 64) per event-loop
// turn (setImmediate). socket.io encodes the packet once per emit and
// hands each socket the same pre-encoded frame (ws's Sender.frame, then
// `_sender.sendFrame`: ws-native takes it as one complete frame). The same
// protocol with bench/run.js as echo.js; wsload -m broadcast -I counts the
// events.

const http = require('http');
const path = require('path');
const readline = require('readline');
const { Server } = require('socket.io');

const lib = process.env.BENCH_LIB === 'ws' ? require('ws') : require(path.join(__dirname, '..', '..'));
const want = Number(process.env.BENCH_BROADCAST || 1000);
const message = 'x'.repeat(Number(process.env.BENCH_SIZE || 64));

const server = http.createServer();
const io = new Server(server, {
  wsEngine: lib.WebSocketServer,
  transports: ['websocket'],
  serveClient: false
});
let connected = 0;
let running = false;

function turn() {
  if (connected < want) {
    running = false;
    return;
  }
  io.to('room').emit('m', message);
  setImmediate(turn);
}

io.on('connection', (socket) => {
  socket.join('room');
  connected++;
  socket.on('disconnect', () => connected--);
  if (connected === want && !running) {
    running = true;
    setImmediate(turn);
  }
});

server.on('error', (err) => {
  process.stderr.write(`server error: ${err.stack || err}\n`);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'rss') return;
  if (typeof global.gc === 'function') global.gc();
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss() }) + '\n');
});
rl.on('close', () => process.exit(0));
