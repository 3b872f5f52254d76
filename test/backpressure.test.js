'use strict';

// ws-native's backpressure (docs/flow-control.md): send() returns false once
// bufferedAmount has reached the high-water mark, 'drain' follows once all
// is written, ws.writableNeedDrain reads the state, and a program that waits
// for 'drain' streams any amount in bounded memory. ws has none of it (its
// send() returns undefined), so these tests skip under WSN_TEST_IMPL=ws.

const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { WebSocket, WebSocketServer, isNative } = require('./helpers/impl');
const raw = require('./helpers/raw');
const {
  Cleanup,
  delay,
  dispose,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const NOT_IN_WS = 'ws-native only: ws.send() returns undefined in ws';

// The stream test's size: 10 GB, as the issue asks (15-25 s here);
// WSN_BP_STREAM_BYTES overrides it (scripts/test-asan.sh and
// node-versions.sh run 1 GB: the bound is the same, the time is not).
const STREAM_BYTES = Number(process.env.WSN_BP_STREAM_BYTES || 10e9);
const STREAM_CHUNK = 64 * 1024;

const cleanup = new Cleanup();

async function server(options) {
  const wss = await startServer(WebSocketServer, options);
  cleanup.add(() => stopServer(wss));
  return wss;
}

/** A raw peer that completes the handshake and then reads nothing. */
async function stalledPeer(wss) {
  const conn = waitFor(wss, 'connection');
  const socket = await raw.connect(wss.address().port);
  socket.on('error', () => {});
  cleanup.add(() => socket.destroy());
  socket.write(raw.upgradeRequest({ key: raw.SAMPLE_KEY }));
  await raw.readHead(socket);
  socket.pause();
  const [serverWs] = await conn;
  return { socket, serverWs };
}

/** Sends `chunk` until send() returns false; the number of sends. */
function fill(ws, chunk, max = 1e6) {
  for (let i = 1; i <= max; i++) {
    if (ws.send(chunk) === false) return i;
  }
  throw new Error('send() never returned false');
}

describe('backpressure: send() return value and drain', function () {
  this.timeout(20000);

  before(function () {
    if (!isNative) this.skip(); // NOT_IN_WS
  });

  afterEach(() => cleanup.run());

  it('returns true under the high-water mark, false past it, then drain', async () => {
    const wss = await server();
    const { socket, serverWs } = await stalledPeer(wss);
    assert.equal(serverWs.writableNeedDrain, false);
    assert.equal(serverWs.send('small'), true);
    const chunk = Buffer.alloc(16 * 1024);
    const sends = fill(serverWs, chunk);
    // 65536 by default: the fourth 16 KiB frame (with the small one) passes it.
    assert.ok(sends >= 4, `false after ${sends} sends`);
    assert.ok(serverWs.bufferedAmount >= 65536);
    assert.equal(serverWs.writableNeedDrain, true);
    // More than the kernel's socket buffers take: every send is false.
    for (let i = 0; i < 512; i++) assert.equal(serverWs.send(chunk), false);
    // Still false until 'drain', in a later turn too.
    await delay(50);
    assert.ok(serverWs.bufferedAmount > 0);
    assert.equal(serverWs.send('x'), false);
    assert.equal(serverWs.writableNeedDrain, true);
    const drained = waitFor(serverWs, 'drain');
    socket.resume();
    await drained;
    assert.equal(serverWs.writableNeedDrain, false);
    assert.equal(serverWs.bufferedAmount, 0);
    assert.equal(serverWs.send('again'), true);
  });

  it('emits drain once per false, with no listener needed', async () => {
    const wss = await server({ highWaterMark: 1000 });
    const { socket, serverWs } = await stalledPeer(wss);
    let drains = 0;
    serverWs.on('drain', () => drains++);
    socket.resume();
    for (let round = 0; round < 5; round++) {
      assert.equal(serverWs.send(Buffer.alloc(2000)), false);
      await waitFor(serverWs, 'drain');
      assert.equal(serverWs.writableNeedDrain, false);
    }
    await delay(50);
    assert.equal(drains, 5);
    // A send under the mark needs no drain and gets none.
    assert.equal(serverWs.send(Buffer.alloc(10)), true);
    await delay(50);
    assert.equal(drains, 5);
  });

  it('highWaterMark: 0 makes every send return false', async () => {
    const wss = await server({ highWaterMark: 0 });
    const { socket, serverWs } = await stalledPeer(wss);
    socket.resume();
    assert.equal(serverWs.send('a'), false);
    await waitFor(serverWs, 'drain');
    assert.equal(serverWs.send(''), false);
    await waitFor(serverWs, 'drain');
  });

  it('client option highWaterMark, against a ws server', async () => {
    const { PeerWebSocketServer } = require('./helpers/impl');
    const peer = await startServer(PeerWebSocketServer);
    cleanup.add(() => stopServer(peer));
    const received = [];
    peer.on('connection', (s) => s.on('message', (m) => received.push(m.length)));
    const client = new WebSocket(`ws://127.0.0.1:${peer.address().port}`,
      { highWaterMark: 4096 });
    cleanup.add(() => dispose(client));
    await waitFor(client, 'open');
    assert.equal(client.send(Buffer.alloc(1000)), true);
    assert.equal(client.send(Buffer.alloc(5000)), false);
    assert.equal(client.writableNeedDrain, true);
    await waitFor(client, 'drain');
    assert.equal(client.writableNeedDrain, false);
    assert.equal(client.send(Buffer.alloc(100)), true);
    while (received.length < 3) await delay(10);
    assert.deepEqual(received, [1000, 5000, 100]);
  });

  it('send() on a closing or closed socket returns false', async () => {
    const wss = await server();
    const client = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
    cleanup.add(() => dispose(client));
    await waitFor(client, 'open');
    client.close();
    assert.equal(client.send('late'), false);
    await waitFor(client, 'close');
    assert.equal(client.send('later'), false);
  });

  it('validates highWaterMark', async () => {
    assert.throws(() => new WebSocketServer({ noServer: true, highWaterMark: '1' }),
      { name: 'TypeError', message: /"highWaterMark" option must be a number/ });
    for (const bad of [-1, NaN, Infinity]) {
      assert.throws(() => new WebSocketServer({ noServer: true, highWaterMark: bad }),
        { name: 'RangeError' });
      assert.throws(() => new WebSocket('ws://127.0.0.1:1', { highWaterMark: bad }),
        { name: 'RangeError' });
    }
    const wss = new WebSocketServer({ noServer: true, highWaterMark: 0 });
    assert.throws(() => {
      wss.options.highWaterMark = -5;
    }, { name: 'RangeError' });
    wss.close();
  });

  it('a program that waits for drain streams to a slow reader in bounded memory', async function () {
    // The time it takes depends on the machine: about 1 GB/s of loopback
    // here (docs/flow-control.md); WSN_BP_STREAM_BYTES sets the size.
    this.timeout(Math.max(60000, STREAM_BYTES / 1e9 * 30000));
    const child = spawn(process.execPath, [
      path.join(__dirname, 'fixtures', 'flow', 'stream-sender.js'),
      String(STREAM_BYTES), String(STREAM_CHUNK)
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanup.add(() => child.kill('SIGKILL'));
    const lines = [];
    let out = '';
    const nextLine = () => new Promise((resolve, reject) => {
      const check = () => {
        const i = out.indexOf('\n');
        if (i < 0) return false;
        lines.push(out.slice(0, i));
        out = out.slice(i + 1);
        resolve(JSON.parse(lines[lines.length - 1]));
        return true;
      };
      if (check()) return;
      const onData = (d) => {
        out += d;
        if (check()) child.stdout.removeListener('data', onData);
      };
      child.stdout.on('data', onData);
      child.once('exit', (code) => reject(new Error(`sender exited (${code})`)));
    });
    child.stdout.setEncoding('utf8');
    const { port } = await nextLine();

    // The reader: handshake by hand, then a slow start (nothing read for a
    // while), then read and discard as fast as it can, counting bytes.
    const socket = await raw.connect(port);
    cleanup.add(() => socket.destroy());
    socket.write(raw.upgradeRequest({ key: raw.SAMPLE_KEY }));
    const { rest } = await raw.readHead(socket);
    socket.pause();
    await delay(500);
    const frames = Math.ceil(STREAM_BYTES / STREAM_CHUNK);
    const last = STREAM_BYTES - (frames - 1) * STREAM_CHUNK;
    const header = (n) => (n > 65535 ? 10 : n > 125 ? 4 : 2);
    const expected = (frames - 1) * (STREAM_CHUNK + header(STREAM_CHUNK)) +
      last + header(last);
    let got = rest.length;
    await new Promise((resolve) => {
      const onData = (d) => {
        got += d.length;
        if (got >= expected) {
          socket.removeListener('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
      socket.resume();
    });
    const report = nextLine();
    socket.destroy();
    const r = await report;
    assert.equal(got, expected);
    assert.equal(r.sent, STREAM_BYTES);
    // It did wait: many sends returned false, and each got its drain.
    assert.ok(r.falses > 10, `${r.falses} sends returned false`);
    assert.equal(r.drains, r.falses);
    // Bounded: the sender's RSS grew by a few MB, not by what it sent.
    const growth = r.peak - r.base;
    assert.ok(growth < 64 * 1024 * 1024,
      `RSS grew by ${(growth / 1048576).toFixed(1)} MiB sending ` +
      `${(STREAM_BYTES / 1048576).toFixed(0)} MiB`);
    if (process.env.WSN_BP_REPORT) {
      console.log(`      ${JSON.stringify({ ...r, growth, mbps: STREAM_BYTES / r.ms / 1000 })}`);
    }
    await new Promise((resolve) => {
      if (child.exitCode !== null) resolve();
      else child.once('exit', resolve);
    });
  });
});
