'use strict';

// createWebSocketStream(ws, options): a WebSocket as a Duplex, as ws 8 has
// it. The peer is always a real ws server; the stream and the WebSocket it
// wraps are the implementation under test. The big transfer runs on both
// client paths of ws-native (its C client, and Node's http.request, taken
// with `family: 4`).

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { Readable, Writable } = require('node:stream');
const { pathToFileURL } = require('node:url');

const { WebSocket, PeerWebSocketServer, isNative } = require('./helpers/impl');
const { Tracker, next } = require('./helpers/interop');

const { createWebSocketStream } = WebSocket;

const PATHS = [
  ['C client', {}],
  ['Node request', { family: 4 }]
];

/** Events of `stream` in order, recorded from now on. */
function recordStream(stream) {
  const rec = { events: [], errors: [] };
  rec.closed = new Promise((resolve) => {
    stream.on('close', () => {
      rec.events.push('close');
      resolve();
    });
  });
  for (const name of ['finish', 'end', 'error']) {
    stream.on(name, (arg) => {
      rec.events.push(name);
      if (name === 'error') rec.errors.push(arg);
    });
  }
  return rec;
}

/**
 * `total` bytes of random data in chunks of 1 byte to 256 KiB, with the
 * sha256 of everything produced.
 */
function randomSource(total) {
  const hash = crypto.createHash('sha256');
  let left = total;
  const source = new Readable({
    read() {
      if (left === 0) {
        source.digest = hash.digest('hex');
        this.push(null);
        return;
      }
      const size = Math.min(left, 1 + crypto.randomInt(256 * 1024));
      const chunk = crypto.randomFillSync(Buffer.allocUnsafe(size));
      left -= size;
      hash.update(chunk);
      this.push(chunk);
    }
  });
  return source;
}

/**
 * A sink that hashes what it gets and is slow now and then (a timer every
 * 32nd chunk), so that the stream's readable side fills up.
 */
function slowHashSink() {
  const hash = crypto.createHash('sha256');
  let n = 0;
  const sink = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk, encoding, cb) {
      hash.update(chunk);
      sink.bytes += chunk.length;
      if (++n % 32 === 0) setTimeout(cb, 2);
      else cb();
    },
    final(cb) {
      sink.digest = hash.digest('hex');
      cb();
    }
  });
  sink.bytes = 0;
  return sink;
}

describe('createWebSocketStream', function () {
  let t;
  let wss;
  let url;

  beforeEach(async function () {
    t = new Tracker();
    ({ wss, url } = await t.listen(PeerWebSocketServer));
  });

  afterEach(function () {
    return t.cleanup();
  });

  /** A client, open, with its peer (server side) WebSocket. */
  async function connect(options) {
    const connection = next(wss, 'connection');
    const ws = t.socket(new WebSocket(url, options));
    await next(ws, 'open');
    const [peer] = await connection;
    return { ws, peer };
  }

  function echo(peer) {
    peer.on('message', (data, isBinary) => peer.send(data, { binary: isBinary }));
  }

  it('is exported as ws exports it (CommonJS and ESM)', async function () {
    assert.equal(typeof createWebSocketStream, 'function');
    assert.equal(createWebSocketStream.length, 2);
    const esm = await import(isNative
      ? pathToFileURL(path.join(__dirname, '..', 'wrapper.mjs')).href
      : 'ws');
    assert.equal(esm.createWebSocketStream, createWebSocketStream);
  });

  for (const [pathName, pathOptions] of PATHS) {
    it(`pipes 100 MiB through an echo server with backpressure, intact (${pathName})`, async function () {
      this.timeout(180000);
      wss.on('connection', echo);
      const ws = t.socket(new WebSocket(url, pathOptions));
      let pauses = 0;
      const pause = ws.pause;
      ws.pause = function () {
        pauses++;
        return pause.call(this);
      };
      const duplex = createWebSocketStream(ws);
      const rec = recordStream(duplex);
      const total = 100 * 1024 * 1024;
      const source = randomSource(total);
      const sink = slowHashSink();
      const finished = new Promise((resolve, reject) => {
        sink.on('finish', resolve);
        sink.on('error', reject);
        duplex.on('error', reject);
      });
      source.pipe(duplex);
      duplex.pipe(sink);
      await finished;
      await rec.closed;
      assert.equal(sink.bytes, total);
      assert.equal(sink.digest, source.digest);
      assert.ok(pauses > 0, 'the slow reader paused the WebSocket');
      assert.deepEqual(rec.events, ['finish', 'end', 'close']);
      assert.equal(ws.readyState, WebSocket.CLOSED);
    });
  }

  it('end() closes the WebSocket with the close handshake; then finish, end, close', async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    duplex.resume();
    const peerClosed = next(peer, 'close');
    const got = next(peer, 'message');
    duplex.end('last words');
    assert.equal((await got)[0].toString(), 'last words');
    const [code] = await peerClosed;
    assert.equal(code, 1005);
    await rec.closed;
    assert.deepEqual(rec.events, ['finish', 'end', 'close']);
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });

  it('writes and end() made while connecting wait for the open', async function () {
    const connection = next(wss, 'connection');
    const ws = t.socket(new WebSocket(url));
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    duplex.resume();
    duplex.write('first');
    duplex.end(Buffer.from('second'));
    const [peer] = await connection;
    const messages = [];
    peer.on('message', (data, isBinary) => messages.push([data.toString(), isBinary]));
    const [code] = await next(peer, 'close');
    assert.equal(code, 1005);
    // The Duplex turns written strings into Buffers (decodeStrings), so
    // both go as binary messages.
    assert.deepEqual(messages, [['first', true], ['second', true]]);
    await rec.closed;
    assert.deepEqual(rec.events, ['finish', 'end', 'close']);
  });

  it('destroy() terminates the WebSocket: close 1006 at the peer, no error', async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    const wsClosed = next(ws, 'close');
    duplex.destroy();
    const [code] = await next(peer, 'close');
    assert.equal(code, 1006);
    assert.equal((await wsClosed)[0], 1006);
    await rec.closed;
    assert.deepEqual(rec.events, ['close']);
  });

  it('destroy(err) emits err, then close', async function () {
    const { ws } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    const err = new Error('enough');
    duplex.destroy(err);
    await rec.closed;
    assert.deepEqual(rec.events, ['error', 'close']);
    assert.equal(rec.errors[0], err);
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });

  it('destroy() after the WebSocket closed: close at once', async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    const closed = next(ws, 'close');
    peer.close(4000);
    await closed;
    duplex.destroy();
    await rec.closed;
    assert.deepEqual(rec.events, ['close']);
  });

  it("the WebSocket's error destroys the stream with it; the close frame still goes", async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    const peerClosed = next(peer, 'close');
    peer.send(Buffer.from([0xff, 0xff]), { binary: false });
    await rec.closed;
    assert.deepEqual(rec.events, ['error', 'close']);
    assert.equal(rec.errors[0].code, 'WS_ERR_INVALID_UTF8');
    // Not terminated: the 1007 close frame reached the peer.
    assert.equal((await peerClosed)[0], 1007);
  });

  it('a close from the peer ends the readable side; a later write fails', async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    const data = [];
    duplex.on('data', (chunk) => data.push(chunk.toString()));
    peer.send('before the end');
    peer.close(1000);
    await next(duplex, 'end');
    assert.deepEqual(data, ['before the end']);
    assert.equal(ws.readyState, WebSocket.CLOSED);
    assert.equal(duplex.destroyed, false, 'the writable side is still open');
    duplex.write('too late');
    await rec.closed;
    assert.deepEqual(rec.events, ['end', 'error', 'close']);
    assert.equal(rec.errors[0].message, 'WebSocket is not open: readyState 3 (CLOSED)');
  });

  it('a failed handshake: the error reaches the stream', async function () {
    // A port nothing listens on any more.
    const { port } = wss.address();
    await new Promise((resolve) => wss.close(resolve));
    const ws = t.socket(new WebSocket(`ws://127.0.0.1:${port}`));
    const duplex = createWebSocketStream(ws);
    const rec = recordStream(duplex);
    duplex.end('never sent');
    await rec.closed;
    assert.deepEqual(rec.events, ['error', 'close']);
    assert.equal(rec.errors[0].code, 'ECONNREFUSED');
  });

  it('a paused reader pauses the WebSocket; reading resumes it', async function () {
    const { ws, peer } = await connect();
    const duplex = createWebSocketStream(ws, { highWaterMark: 1024 });
    const chunk = Buffer.alloc(4096, 1);
    for (let i = 0; i < 64; i++) peer.send(chunk);
    while (!ws.isPaused) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(duplex.readableLength < 64 * 4096);
    let bytes = 0;
    const all = new Promise((resolve) => {
      duplex.on('data', (data) => {
        bytes += data.length;
        if (bytes === 64 * 4096) resolve();
      });
    });
    await all;
    assert.equal(ws.isPaused, false);
  });

  it('readableObjectMode: text as strings, binary as Buffers; objectMode is ignored', async function () {
    const { ws, peer } = await connect();
    const objects = createWebSocketStream(ws, { readableObjectMode: true });
    const got = [];
    objects.on('data', (data) => got.push(data));
    peer.send('text');
    peer.send(Buffer.from('bin'));
    await next(objects, 'data');
    if (got.length < 2) await next(objects, 'data');
    assert.equal(got[0], 'text');
    assert.ok(Buffer.isBuffer(got[1]));
    assert.equal(got[1].toString(), 'bin');

    const other = await connect();
    const plain = createWebSocketStream(other.ws, { objectMode: true });
    const data = next(plain, 'data');
    other.peer.send('text');
    const [chunk] = await data;
    assert.ok(Buffer.isBuffer(chunk), 'objectMode: true does not make text a string');
    assert.throws(() => plain.write({ not: 'bytes' }), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('passes Duplex options through (highWaterMark, allowHalfOpen)', async function () {
    const { ws } = await connect();
    const duplex = createWebSocketStream(ws, {
      readableHighWaterMark: 12345,
      writableHighWaterMark: 54321,
      allowHalfOpen: false
    });
    assert.equal(duplex.readableHighWaterMark, 12345);
    assert.equal(duplex.writableHighWaterMark, 54321);
    assert.equal(duplex.allowHalfOpen, false);
  });
});
