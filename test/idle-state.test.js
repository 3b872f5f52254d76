'use strict';

// What an idle server-side connection carries is kept small (issue 14, S4):
// its listener store, its clients-tracking listener, its socket object and
// its settings are shared or built on use. These tests pin down that none
// of it shows: the same script gives the same results on ws, on ws-native,
// and (for the listener store) on a plain EventEmitter.

const assert = require('node:assert/strict');
const EventEmitter = require('events');
const http = require('http');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket
} = require('./helpers/impl');
const {
  Cleanup,
  dispose,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const cleanup = new Cleanup();

async function server(options) {
  const wss = await startServer(WebSocketServer, options);
  cleanup.add(() => stopServer(wss));
  return wss;
}

/** A real ws client connected to `wss`: { client, serverWs }. */
async function connect(wss) {
  const conn = waitFor(wss, 'connection');
  const client = new PeerWebSocket(`ws://127.0.0.1:${wss.address().port}`);
  cleanup.add(() => dispose(client));
  await waitFor(client, 'open');
  const [serverWs] = await conn;
  return { client, serverWs };
}

/**
 * Exercises an emitter's listener store with ordinary and awkward event
 * names and returns what it observed.
 */
function exercise(emitter) {
  const log = [];
  const seen = (name) => (...args) => log.push([name, ...args]);
  const names = ['message', '__proto__', 'toString', 'constructor',
    'hasOwnProperty', Symbol.for('s')];
  const base = emitter.eventNames().length;
  const fns = names.map((n) => seen(String(n)));
  names.forEach((n, i) => emitter.on(n, fns[i]));
  log.push(['names', emitter.eventNames().slice(base).map(String)]);
  names.forEach((n) => log.push(['emit', String(n), emitter.emit(n, 1)]));
  log.push(['count toString', emitter.listenerCount('toString')]);
  log.push(['count valueOf', emitter.listenerCount('valueOf')]);
  log.push(['emit valueOf', emitter.emit('valueOf')]);
  emitter.once('toString', seen('once'));
  emitter.emit('toString', 2);
  emitter.emit('toString', 3);
  emitter.off('__proto__', fns[1]);
  log.push(['after off', emitter.eventNames().slice(base).map(String)]);
  log.push(['emit __proto__', emitter.emit('__proto__')]);
  emitter.removeAllListeners('toString');
  emitter.prependListener('message', seen('first'));
  emitter.emit('message', 4);
  for (const n of names) emitter.removeAllListeners(n);
  log.push(['left', emitter.eventNames().slice(base).map(String)]);
  emitter.on('later', seen('later'));
  emitter.emit('later', 5);
  emitter.removeAllListeners('later');
  return log;
}

describe('idle connection state', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  it("a WebSocket's listeners behave as a plain EventEmitter's", async function () {
    const wss = await server();
    const { serverWs } = await connect(wss);
    const expected = exercise(new EventEmitter());
    assert.deepEqual(exercise(serverWs), expected);
    const client = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
    cleanup.add(() => dispose(client));
    assert.deepEqual(exercise(client), expected);
    // Emptied of every listener, the store still works.
    client.removeAllListeners();
    assert.deepEqual(client.eventNames(), []);
    assert.deepEqual(exercise(client), expected);
  });

  it('a tracked connection has one close listener, which untracks it', async function () {
    const wss = await server();
    const a = await connect(wss);
    const b = await connect(wss);
    assert.equal(a.serverWs.listenerCount('close'), 1);
    assert.equal(wss.clients.size, 2);
    // Removed by the user, it untracks nothing (as in ws).
    b.serverWs.removeAllListeners('close');
    const closes = [waitFor(a.serverWs, 'close'), waitFor(b.serverWs, 'close')];
    a.client.close();
    b.client.close();
    await Promise.all(closes);
    assert.deepEqual([...wss.clients], [b.serverWs]);
  });

  it('server close waits for the tracked clients of a noServer server', async function () {
    const wss = new WebSocketServer({ noServer: true });
    let upgraded;
    const hs = http.createServer();
    cleanup.add(() => new Promise((resolve) => hs.close(resolve)));
    hs.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => (upgraded = ws));
    });
    await new Promise((resolve) => hs.listen(0, '127.0.0.1', resolve));
    const client = new PeerWebSocket(`ws://127.0.0.1:${hs.address().port}`);
    cleanup.add(() => dispose(client));
    await waitFor(client, 'open');
    assert.equal(wss.clients.size, 1);
    let closed = false;
    wss.close(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, false);
    assert.equal(upgraded.listenerCount('close'), 1);
    client.close();
    await waitFor(wss, 'close');
    assert.equal(wss.clients.size, 0);
  });

  it("ws._socket is an EventEmitter with the connection's addresses, also after close", async function () {
    const wss = await server();
    const { client, serverWs } = await connect(wss);
    const sock = serverWs._socket;
    assert.ok(sock instanceof EventEmitter);
    assert.equal(sock.remoteAddress, '127.0.0.1');
    assert.equal(sock.remoteFamily, 'IPv4');
    assert.equal(sock.remotePort, client._socket.localPort);
    assert.equal(sock.localAddress, '127.0.0.1');
    assert.equal(sock.localPort, wss.address().port);
    assert.equal(sock.localFamily, 'IPv4');
    assert.deepEqual(sock.address(),
      { address: '127.0.0.1', family: 'IPv4', port: wss.address().port });
    const got = [];
    const fn = (x) => got.push(x);
    sock.on('custom', fn);
    assert.equal(sock.emit('custom', 1), true);
    sock.off('custom', fn);
    assert.equal(sock.emit('custom', 2), false);
    assert.deepEqual(got, [1]);
    assert.equal(sock.getMaxListeners(), EventEmitter.defaultMaxListeners);
    const closed = waitFor(sock, 'close');
    client.close();
    await closed;
    assert.equal(sock.destroyed, true);
    assert.equal(sock.remoteAddress, '127.0.0.1');
  });

  it('server-side settings from the options reach each connection', async function () {
    const wss = await server({ autoPong: false, closeTimeout: 50 });
    const { client, serverWs } = await connect(wss);
    const pongs = [];
    client.on('pong', (data) => pongs.push(data.toString()));
    const ping = waitFor(serverWs, 'ping');
    client.ping('a');
    await ping;
    // autoPong: false: no answer; an explicit pong goes out.
    serverWs.pong('b');
    await waitFor(client, 'pong');
    assert.deepEqual(pongs, ['b']);
    // closeTimeout: the server gives up on a peer that never answers its
    // close frame (the client's socket is paused so its ws never reads it).
    client._socket.pause();
    // (With the default 30 s, this test would time out.)
    const closed = waitFor(serverWs, 'close');
    serverWs.close();
    const [code] = await closed;
    assert.equal(code, 1006);
  });
});
