'use strict';

// Limits that protect a ws-native process from hostile or slow peers, where
// ws itself has no limit (so these tests run against ws-native only):
// - a server handshake must arrive within `handshakeTimeout` (slowloris);
// - a peer that never reads cannot make a sender buffer without bound
//   (`maxBufferedAmount`);
// - when JS is slow, the I/O thread stops reading once 4 MiB of messages
//   wait for JS, so memory stays bounded and nothing is lost.

const assert = require('assert');
const path = require('path');
const { spawn } = require('child_process');

const { WebSocketServer, isNative } = require('./helpers/impl');
const { startServer, stopServer, delay } = require('./helpers/util');
const { connect, upgradeRequest, readHead, parseHead } = require('./helpers/raw');

describe('limits (ws-native only)', function () {
  before(function () {
    // ws has none of these limits: there is nothing to compare against.
    if (!isNative) this.skip();
  });

  let wss;
  afterEach(async function () {
    await stopServer(wss);
    wss = null;
  });

  describe('handshakeTimeout', function () {
    it('answers 408 and closes when the request does not arrive in time', async function () {
      wss = await startServer(WebSocketServer, { handshakeTimeout: 200 });
      const socket = await connect(wss.address().port);
      const started = Date.now();
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // half a request
      let response = '';
      socket.setEncoding('latin1');
      socket.on('data', (d) => (response += d));
      await new Promise((resolve) => socket.on('close', resolve));
      const elapsed = Date.now() - started;
      assert.strictEqual(response,
        'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      assert.ok(elapsed >= 190 && elapsed < 2000, `closed after ${elapsed} ms`);
    });

    it('lets a request that arrives slowly but in time complete', async function () {
      wss = await startServer(WebSocketServer, { handshakeTimeout: 1000 });
      const connected = new Promise((resolve) => wss.once('connection', resolve));
      const socket = await connect(wss.address().port);
      const request = upgradeRequest({});
      const third = Math.ceil(request.length / 3);
      for (let i = 0; i < 3; i++) {
        socket.write(request.slice(i * third, (i + 1) * third));
        await delay(100);
      }
      const { head } = await readHead(socket);
      assert.strictEqual(parseHead(head).first, 'HTTP/1.1 101 Switching Protocols');
      await connected;
      socket.destroy();
    });

    it('is off with handshakeTimeout: 0', async function () {
      wss = await startServer(WebSocketServer, { handshakeTimeout: 0 });
      const socket = await connect(wss.address().port);
      socket.write('GET / HTTP/1.1\r\n');
      let closed = false;
      socket.on('close', () => (closed = true));
      await delay(300);
      assert.strictEqual(closed, false);
      socket.destroy();
    });
  });

  describe('maxBufferedAmount', function () {
    it('fails the connection once a peer that never reads lets too much pile up', async function () {
      const limit = 4 * 1024 * 1024;
      wss = await startServer(WebSocketServer, { maxBufferedAmount: limit });
      const socket = await connect(wss.address().port);
      socket.write(upgradeRequest({}));
      socket.pause(); // never read: the kernel buffers fill, then ours

      const [ws] = await new Promise((resolve) =>
        wss.once('connection', (...args) => resolve(args)));
      const chunk = Buffer.alloc(256 * 1024);
      const errors = [];
      const cbErrors = [];
      ws.on('error', (err) => errors.push(err));
      const closed = new Promise((resolve) => ws.on('close', resolve));
      let sent = 0;
      while (ws.readyState === 1 && sent < 4096) {
        ws.send(chunk, (err) => err && cbErrors.push(err));
        sent++;
        if (sent % 16 === 0) await delay(1); // let the I/O thread write
      }
      const code = await closed;
      assert.strictEqual(code, 1006);
      assert.strictEqual(errors.length, 1);
      assert.strictEqual(errors[0].code, 'WSN_ERR_SEND_BUFFER_FULL');
      assert.match(errors[0].message, /^Send buffer full: \d+ bytes are waiting/);
      // The send that hit the limit was refused, and the others failed with
      // the socket.
      assert.ok(cbErrors.length >= 1);
      // Stopped near the limit plus the kernel's buffers, not at 1 GiB.
      assert.ok(sent * chunk.length < 256 * 1024 * 1024, `sent ${sent} chunks`);
      socket.destroy();
    });

    it('rejects a bad value', function () {
      const { WebSocket } = require('./helpers/impl');
      assert.throws(
        () => new WebSocket('ws://127.0.0.1:1', { maxBufferedAmount: -1 }),
        /^TypeError: The maxBufferedAmount option must be a number >= 0$/
      );
    });
  });

  describe('undelivered messages', function () {
    it('stops reading while JS is busy, then delivers everything in order', async function () {
      // (On Node's own loop, WS_NATIVE_LOOP=main, a busy JS thread stops
      // all reading anyway; the test then checks only that nothing is lost.)
      const count = 64;
      let received = 0;
      let inOrder = true;
      let blocked = false;
      let busyFrom = 0;
      let busyUntil = 0;
      wss = await startServer(WebSocketServer);
      wss.on('connection', (ws) => {
        ws.on('message', (data) => {
          if (data.length !== 1024 * 1024 || data[0] !== (received & 0xff) ||
              data[data.length - 1] !== (received & 0xff)) {
            inOrder = false;
          }
          received++;
          if (!blocked) {
            // Busy for 2 s: the I/O thread keeps reading only up to its
            // bound of undelivered bytes; the rest waits in the kernel and
            // in the client's own buffer.
            blocked = true;
            busyFrom = Date.now();
            const until = busyFrom + 2000;
            while (Date.now() < until);
            busyUntil = Date.now();
          }
          if (received === count) ws.send(`done ${received} ${inOrder}`);
        });
      });
      const child = spawn(process.execPath, [
        path.join(__dirname, 'fixtures', 'limits', 'flood-client.js'),
        `ws://127.0.0.1:${wss.address().port}`, String(count), '100'
      ], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => (out += d));
      const code = await new Promise((resolve) => child.on('close', resolve));
      assert.strictEqual(code, 0);
      assert.match(out, /server done 64 true/);
      // 64 MiB sent; with the 4 MiB bound plus the kernel's socket buffers
      // (a few MiB each way on loopback) most of it must still wait in the
      // client while the server's JS is busy. The client samples its
      // bufferedAmount every 100 ms (wall clock, the same on both sides)
      // while it sends: the last sample taken well inside the busy time is
      // what counts (by then the client has sent what it could), so a
      // loaded machine that delays either process cannot fool the test.
      const inside = [...out.matchAll(/sample (\d+) (\d+)/g)]
        .map((m) => [Number(m[1]), Number(m[2])])
        .filter(([t]) => t >= busyFrom + 300 && t <= busyUntil - 100);
      assert.ok(inside.length > 0, `no sample while the server was busy:\n${out}`);
      const [, buffered] = inside[inside.length - 1];
      assert.ok(buffered > 24 * 1024 * 1024,
        `only ${buffered} bytes were still buffered by the client:\n${out}`);
    });

    // maxBufferedChunks bounds the event records waiting for JS (the C
    // parser never holds socket chunks; see README "Limits"). At its
    // smallest the connection reads again only once JS dispatched every
    // record: nothing may stall or be lost.
    for (const chunks of [1, 2, 7]) {
      it(`maxBufferedChunks: ${chunks} delivers 3,000 messages in order past a busy JS turn`, async function () {
        const { PeerWebSocket } = require('./helpers/impl');
        wss = await startServer(WebSocketServer, { maxBufferedChunks: chunks });
        const done = new Promise((resolve) => {
          wss.on('connection', (ws) => {
            const seen = [];
            ws.on('message', (data) => {
              if (seen.length === 0) {
                const until = Date.now() + 300;
                while (Date.now() < until);
              }
              seen.push(Number(data.toString()));
              if (seen.length === 3000) resolve(seen);
            });
          });
        });
        const client = new PeerWebSocket(`ws://127.0.0.1:${wss.address().port}`);
        await new Promise((resolve) => client.on('open', resolve));
        for (let i = 0; i < 3000; i++) client.send(String(i));
        const seen = await done;
        assert.deepStrictEqual(seen, Array.from({ length: 3000 }, (_, i) => i));
        client.terminate();
      });
    }

    it('empty pings from a peer that never reads, with autoPong off and JS busy, keep RSS bounded', async function () {
      this.timeout(60000);
      const child = spawn(process.execPath, [
        path.join(__dirname, 'fixtures', 'limits', 'ping-flood-busy.js')
      ], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => (out += d));
      const code = await new Promise((resolve) => child.on('close', resolve));
      assert.strictEqual(code, 0, out);
      const m = /pings (\d+) growth (\d+)/.exec(out);
      assert.ok(m, out);
      // Every ping reached JS; 4,000,000 records of 32 bytes would be
      // 128 MB if they could pile up (a Buffer per batch waiting for GC grew
      // by about 100 MB here).
      assert.strictEqual(Number(m[1]), 4000000);
      // Under AddressSanitizer (npm run test:asan) freed memory waits in its
      // quarantine (256 MB by default) before reuse, so RSS says nothing
      // there: that run checks memory safety, this bound the normal build.
      if (process.env.ASAN_OPTIONS === undefined) {
        assert.ok(Number(m[2]) < 50 * 1024 * 1024, `RSS grew by ${m[2]} bytes`);
      }
    });
  });
});
