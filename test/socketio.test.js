'use strict';

// socket.io as a real peer, both ways it is used with ws-native:
//
// - `wsEngine: WebSocketServer` (socket.io's documented option). The
//   adapter still frames broadcasts with the real ws's Sender.frame (it
//   requires 'ws' itself), and engine.io hands that frame to our socket's
//   `_sender.sendFrame`;
// - ws-native installed in place of ws (npm `overrides: { ws: 'ws-native' }`).
//   npm cannot re-link packages during a test run, so this is emulated: the
//   server-side packages (socket.io, engine.io, socket.io-adapter) are
//   loaded afresh while a Module._resolveFilename hook answers their
//   `require('ws')` with the implementation under test; the client
//   (socket.io-client) keeps the real ws.
//
// In both, a room broadcast must go through the pre-encoded frame path:
// one Sender.frame() for the message, then sendFrame() on each socket of
// the room with that same list.

const assert = require('node:assert/strict');
const fs = require('fs');
const http = require('http');
const Module = require('module');
const path = require('path');

const { io: connect } = require('socket.io-client');
const { WebSocket, WebSocketServer, isNative } = require('./helpers/impl');

// Server-side packages that `require('ws')`.
const SERVER_PACKAGES = ['socket.io', 'engine.io', 'socket.io-adapter'];
// Module file names are real paths (node_modules may be a symlink, as in
// the sanitizer run).
const nodeModules = fs.realpathSync(path.join(__dirname, '..', 'node_modules'));

function isServerPackageFile(file) {
  return SERVER_PACKAGES.some((name) =>
    file.startsWith(path.join(nodeModules, name) + path.sep));
}

/**
 * socket.io's Server class as it is when `ws` resolves to `impl` for the
 * server-side packages. The require cache is left as it was.
 */
function loadAliased(impl) {
  const implPath = require.resolve(impl === require('ws') ? 'ws' : '..');
  const saved = new Map();
  for (const file of Object.keys(require.cache)) {
    if (isServerPackageFile(file)) {
      saved.set(file, require.cache[file]);
      delete require.cache[file];
    }
  }
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, ...rest) {
    if (request === 'ws' && parent && isServerPackageFile(parent.filename)) {
      return implPath;
    }
    return resolve.call(this, request, parent, ...rest);
  };
  try {
    return require('socket.io').Server;
  } finally {
    Module._resolveFilename = resolve;
    for (const file of Object.keys(require.cache)) {
      if (isServerPackageFile(file)) delete require.cache[file];
    }
    for (const [file, mod] of saved) require.cache[file] = mod;
  }
}

async function startIo(Server, options) {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { transports: ['websocket'], ...options });
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return { io, httpServer, url: `http://127.0.0.1:${httpServer.address().port}` };
}

function stopIo({ io, httpServer }) {
  return new Promise((resolve) => {
    io.close(() => resolve());
    httpServer.closeAllConnections();
  });
}

/**
 * Connects `count` socket.io clients; resolves with the clients and the
 * matching server-side sockets, in the same order.
 */
async function connectClients(io, url, count) {
  const serverSockets = new Map();
  io.on('connection', (socket) => {
    serverSockets.set(socket.id, socket);
    socket.on('join', (room, ack) => {
      socket.join(room);
      ack();
    });
  });
  const clients = [];
  for (let i = 0; i < count; i++) {
    const client = connect(url, { transports: ['websocket'], forceNew: true,
      reconnection: false });
    clients.push(client);
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('connect_error', reject);
    });
  }
  // The server's 'connection' ran before the client saw CONNECT.
  return { clients, sockets: clients.map((c) => serverSockets.get(c.id)) };
}

/**
 * Records the frame lists each server-side WebSocket's `_sender.sendFrame`
 * is given (calling through).
 */
function spySendFrame(sockets) {
  return sockets.map((socket) => {
    const websocket = socket.conn.transport.socket;
    assert.ok(websocket instanceof WebSocket,
      'the engine.io transport runs on the implementation under test');
    const sender = websocket._sender;
    const calls = [];
    const original = sender.sendFrame;
    sender.sendFrame = function (list, cb) {
      calls.push(list);
      return original.call(this, list, cb);
    };
    return calls;
  });
}

function nextEvent(client, event) {
  return new Promise((resolve) => client.once(event, (...args) => resolve(args)));
}

/**
 * Four clients, three in 'room': a room broadcast reaches the three through
 * the pre-encoded path (one frame list, sent to each), not the fourth; a
 * second broadcast shows their send callbacks ran (engine.io waits for them
 * before it writes again).
 */
async function roomBroadcast(Server, options) {
  const server = await startIo(Server, options);
  let clients = [];
  try {
    const connected = await connectClients(server.io, server.url, 4);
    clients = connected.clients;
    await Promise.all(clients.slice(0, 3).map((c) =>
      new Promise((resolve) => c.emit('join', 'room', resolve))));
    const calls = spySendFrame(connected.sockets);

    const payload = { text: 'héllo', list: [1, 2, 3], big: 'x'.repeat(70000) };
    for (let round = 1; round <= 2; round++) {
      const got = clients.slice(0, 3).map((c) => nextEvent(c, 'news'));
      server.io.to('room').emit('news', { ...payload, round });
      for (const [message] of await Promise.all(got)) {
        assert.deepEqual(message, { ...payload, round });
      }
    }
    // The fourth client saw neither: the broadcast to all arrives first.
    const outside = [];
    clients[3].on('news', (m) => outside.push(m));
    const all = clients.map((c) => nextEvent(c, 'all'));
    server.io.emit('all', 'everyone');
    await Promise.all(all);
    assert.deepEqual(outside, []);

    // Pre-encoded: each room socket got the same two frame lists (plus the
    // broadcast to all); the outsider got only the last.
    for (let i = 0; i < 3; i++) {
      assert.equal(calls[i].length, 3, `room socket ${i}`);
      for (let k = 0; k < 3; k++) assert.equal(calls[i][k], calls[0][k]);
    }
    assert.equal(calls[3].length, 1);
    assert.equal(calls[3][0], calls[0][2]);
    return calls;
  } finally {
    for (const c of clients) c.disconnect();
    await stopIo(server);
  }
}

describe('socket.io as a peer', function () {
  it('wsEngine: WebSocketServer: a room broadcast is framed once', async function () {
    await roomBroadcast(require('socket.io').Server,
      { wsEngine: WebSocketServer });
  });

  it('aliased as ws (npm overrides, emulated): Sender.frame is ours', async function () {
    const Server = loadAliased(WebSocket);
    const frame = WebSocket.Sender.frame;
    let framed = 0;
    WebSocket.Sender.frame = function (...args) {
      framed++;
      return frame.apply(this, args);
    };
    try {
      await roomBroadcast(Server, {});
    } finally {
      WebSocket.Sender.frame = frame;
    }
    // One frame per broadcast; ws's own Sender also frames every message
    // through it (WSN_TEST_IMPL=ws), ours never does.
    if (isNative) assert.equal(framed, 3);
    else assert.ok(framed >= 3);
  });

  it('messages both ways and acknowledgements', async function () {
    const server = await startIo(require('socket.io').Server,
      { wsEngine: WebSocketServer });
    let clients = [];
    try {
      server.io.on('connection', (socket) => {
        socket.on('echo', (data, ack) => ack(data));
      });
      ({ clients } = await connectClients(server.io, server.url, 1));
      const binary = Buffer.from([0, 1, 2, 255]);
      const answer = await clients[0].emitWithAck('echo', { binary, n: 1 });
      assert.deepEqual(Buffer.from(answer.binary), binary);
      assert.equal(answer.n, 1);
    } finally {
      for (const c of clients) c.disconnect();
      await stopIo(server);
    }
  });
});
