'use strict';

// ws-native's heartbeat (docs/flow-control.md): with idleTimeout (seconds),
// a connection that has read nothing for half of it gets a ping made in C
// (sendPings, on by default), and one that has read nothing for all of it is
// terminated ('close' 1006, as after ws's terminate()). One sweep timer in C
// does it for every connection; the pongs that answer its pings are not
// shown to JS. ws has no such option, so these tests skip under
// WSN_TEST_IMPL=ws.

const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer,
  isNative
} = require('./helpers/impl');
const raw = require('./helpers/raw');
const {
  Cleanup,
  delay,
  dispose,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

// The idle-connections test's count (WSN_HB_IDLE_CONNS overrides it).
const IDLE_CONNS = Number(process.env.WSN_HB_IDLE_CONNS || 10000);

const cleanup = new Cleanup();

async function server(options) {
  const wss = await startServer(WebSocketServer, options);
  cleanup.add(() => stopServer(wss));
  return wss;
}

/** A ws client connected to `wss`: { client, serverWs }. */
async function peerClient(wss, options) {
  const conn = waitFor(wss, 'connection');
  const client = new PeerWebSocket(`ws://127.0.0.1:${wss.address().port}`,
    options);
  cleanup.add(() => dispose(client));
  await waitFor(client, 'open');
  const [serverWs] = await conn;
  return { client, serverWs };
}

/** Resolves with [code, ms since `since`] on the socket's 'close'. */
function closeOf(ws, since) {
  return new Promise((resolve) => {
    ws.once('close', (code) => resolve([code, Date.now() - since]));
  });
}

describe('heartbeat: idleTimeout and sendPings', function () {
  this.timeout(20000);

  before(function () {
    if (!isNative) this.skip(); // ws-native only: ws has no idleTimeout
  });

  afterEach(() => cleanup.run());

  it('closes a peer that stops answering (1006), in time, after a ping', async () => {
    const wss = await server({ idleTimeout: 0.3 });
    const conn = waitFor(wss, 'connection');
    const { socket, reader } = await raw.rawHandshake(wss.address().port);
    cleanup.add(() => socket.destroy());
    const [serverWs] = await conn;
    const start = Date.now();
    const events = [];
    serverWs.on('ping', () => events.push('ping'));
    serverWs.on('pong', () => events.push('pong'));
    const [code, ms] = await closeOf(serverWs, start);
    assert.equal(code, 1006);
    // Not before idleTimeout; late by at most a sweep tick (idleTimeout / 8)
    // on an idle machine: the bound here leaves room for a loaded one.
    assert.ok(ms >= 290, `closed after ${ms} ms`);
    assert.ok(ms < 1500, `closed after ${ms} ms`);
    await reader.closed;
    // It was pinged first, with our payload, and the peer never answered.
    const ping = reader.frames.find((f) => f.opcode === raw.OP.PING);
    assert.ok(ping, 'no ping was sent');
    assert.equal(Buffer.from(ping.payload).toString(), 'wsn-heartbeat');
    assert.deepEqual(events, []);
  });

  it('keeps a peer that answers pings past several idleTimeouts', async () => {
    const wss = await server({ idleTimeout: 0.2 });
    const { client, serverWs } = await peerClient(wss);
    const seen = [];
    client.on('ping', (data) => seen.push(data.toString()));
    const pongs = [];
    serverWs.on('pong', (data) => pongs.push(data.toString()));
    let closed = false;
    serverWs.on('close', () => {
      closed = true;
    });
    await delay(1200);
    assert.equal(closed, false);
    assert.equal(serverWs.readyState, WebSocket.OPEN);
    assert.ok(seen.length >= 3, `${seen.length} pings`);
    assert.ok(seen.every((p) => p === 'wsn-heartbeat'), seen.join());
    // The heartbeat's pongs are C's business; a ping JS sends still gets
    // its 'pong'.
    assert.deepEqual(pongs, []);
    serverWs.ping('mine');
    await waitFor(serverWs, 'pong');
    assert.deepEqual(pongs, ['mine']);
  });

  it('sendPings: false closes an idle peer that is alive', async () => {
    const wss = await server({ idleTimeout: 0.25, sendPings: false });
    const { client, serverWs } = await peerClient(wss);
    let pings = 0;
    client.on('ping', () => pings++);
    const start = Date.now();
    const clientClose = closeOf(client, start);
    const [code, ms] = await closeOf(serverWs, start);
    assert.equal(code, 1006);
    assert.ok(ms >= 240, `closed after ${ms} ms`);
    assert.equal(pings, 0);
    const [clientCode] = await clientClose;
    assert.equal(clientCode, 1006);
  });

  it('data from the peer resets the idle clock', async () => {
    const wss = await server({ idleTimeout: 0.3, sendPings: false });
    const { client, serverWs } = await peerClient(wss);
    let closed = false;
    serverWs.on('close', () => {
      closed = true;
    });
    let messages = 0;
    serverWs.on('message', () => messages++);
    for (let i = 0; i < 10; i++) {
      client.send('still here');
      await delay(100);
    }
    assert.equal(closed, false);
    assert.equal(messages, 10);
    // Silence: now it goes.
    const [code] = await closeOf(serverWs, Date.now());
    assert.equal(code, 1006);
  });

  it('a paused socket is not timed out while paused', async () => {
    const wss = await server({ idleTimeout: 0.2, sendPings: false });
    const { serverWs } = await peerClient(wss);
    serverWs.pause();
    let closed = false;
    serverWs.on('close', () => {
      closed = true;
    });
    await delay(700);
    assert.equal(closed, false);
    serverWs.resume();
    const [code] = await closeOf(serverWs, Date.now());
    assert.equal(code, 1006);
  });

  it('client option: pings a ws server that never pings, and is kept', async () => {
    const peer = await startServer(PeerWebSocketServer);
    cleanup.add(() => stopServer(peer));
    const conn = waitFor(peer, 'connection');
    const client = new WebSocket(`ws://127.0.0.1:${peer.address().port}`,
      { idleTimeout: 0.2 });
    cleanup.add(() => dispose(client));
    await waitFor(client, 'open');
    const [peerWs] = await conn;
    let pings = 0;
    peerWs.on('ping', () => pings++);
    let pongs = 0;
    client.on('pong', () => pongs++);
    await delay(1000);
    assert.equal(client.readyState, WebSocket.OPEN);
    assert.ok(pings >= 3, `${pings} pings`);
    assert.equal(pongs, 0);
  });

  it('client option: sendPings: false closes a silent ws server (1006)', async () => {
    const peer = await startServer(PeerWebSocketServer);
    cleanup.add(() => stopServer(peer));
    const client = new WebSocket(`ws://127.0.0.1:${peer.address().port}`,
      { idleTimeout: 0.2, sendPings: false });
    cleanup.add(() => dispose(client));
    await waitFor(client, 'open');
    const [code, ms] = await closeOf(client, Date.now());
    assert.equal(code, 1006);
    assert.ok(ms >= 190, `closed after ${ms} ms`);
  });

  it('validates idleTimeout and sendPings', () => {
    const opts = { noServer: true };
    assert.throws(() => new WebSocketServer({ ...opts, idleTimeout: '5' }),
      { name: 'TypeError', message: /"idleTimeout" option must be a number/ });
    for (const bad of [-1, NaN, Infinity, 3e6]) {
      assert.throws(() => new WebSocketServer({ ...opts, idleTimeout: bad }),
        { name: 'RangeError' });
      assert.throws(() => new WebSocket('ws://127.0.0.1:1', { idleTimeout: bad }),
        { name: 'RangeError' });
    }
    assert.throws(() => new WebSocketServer({ ...opts, sendPings: 'yes' }),
      { name: 'TypeError', message: /"sendPings" option must be a boolean/ });
    assert.throws(() => new WebSocket('ws://127.0.0.1:1', { sendPings: 1 }),
      { name: 'TypeError' });
    // 0 and null are "off", as absent.
    new WebSocketServer({ ...opts, idleTimeout: 0 }).close();
    new WebSocketServer({ ...opts, idleTimeout: null }).close();
  });

  it(`${IDLE_CONNS} idle connections cost no JS work while pinged`, async function () {
    this.timeout(120000);
    // 2 s: a ping every second or so, which the clients (busy opening the
    // others at first, on a loaded machine) have a second to answer.
    const wss = await server({ idleTimeout: 2 });
    const started = Date.now();
    let connections = 0;
    wss.on('connection', () => connections++);
    const child = spawn(process.execPath, [
      path.join(__dirname, 'fixtures', 'flow', 'idle-clients.js'),
      String(wss.address().port), String(IDLE_CONNS)
    ], { stdio: ['pipe', 'pipe', 'inherit'] });
    cleanup.add(() => child.kill('SIGKILL'));
    child.stdout.setEncoding('utf8');
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    while (!out.includes('\n')) {
      if (child.exitCode !== null) throw new Error('the clients failed');
      await delay(50);
    }
    assert.equal(out.trim(), `open ${IDLE_CONNS}`);
    while (connections < IDLE_CONNS) await delay(20);
    const opened = Date.now() - started;

    // Every event JS gets from here on, for any socket of the server.
    let events = 0;
    const proto = WebSocket.prototype;
    const original = proto._onNativeEvent;
    proto._onNativeEvent = function (...args) {
      events++;
      return original.apply(this, args);
    };
    cleanup.add(() => {
      proto._onNativeEvent = original;
    });
    // About three pings each, all answered, and the answers taken in C.
    await delay(3200);
    proto._onNativeEvent = original;
    assert.equal(events, 0);
    assert.equal(wss.clients.size, IDLE_CONNS,
      `${IDLE_CONNS - wss.clients.size} closed (opening took ${opened} ms)`);
    child.stdin.end();
    await exited;
    const report = JSON.parse(out.trim().split('\n')[1]);
    assert.equal(report.closed, 0);
    assert.ok(report.pings >= 2 * IDLE_CONNS, `${report.pings} pings`);
  });
});
