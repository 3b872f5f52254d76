'use strict';

// Hostile peers (issue 12): floods of frames that cost the peer a few bytes
// each, and the limits ws 8.23.1 puts on them, byte by byte against raw
// sockets. ws 8.23.1 is the reference:
//
// - maxPendingAutoPongs (default 60): a ping that arrives while that many
//   automatic pongs still wait for their write callback terminates the
//   connection (no close frame, 'close' 1006, no 'error'); the 'ping' event
//   is still emitted, for that ping and for the rest of what was read with
//   it. 0 means no limit; with autoPong: false no pong is sent and no limit
//   applies.
// - maxFragments (default 16384): a data frame beyond that many in one
//   message (empty fragments count) fails the connection: RangeError 'Too
//   many message fragments', code WS_ERR_TOO_MANY_BUFFERED_PARTS, a close
//   frame 1008 (no reason) and, as with every protocol error, 'close' 1006
//   once the TCP connection is gone. 0 means no limit.
// - No pong once our close frame has gone out.
// - bufferedAmount counts what send() queued, never automatic pongs; a send
//   callback fires once its bytes are written.
//
// The floods themselves (1,000,000 frames from a peer that never reads) run
// against a server in a child process, which measures its own RSS
// (test/fixtures/floods/). bench/floods.js prints the same measurements
// for ws and both ws-native loop modes.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { WebSocket, WebSocketServer, isNative } = require('./helpers/impl');
const {
  OP,
  acceptRaw,
  closePayload,
  createRawServer,
  frame,
  rawHandshake
} = require('./helpers/raw');
const {
  Cleanup,
  delay,
  recordEvents,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');
const { describeEnding, runFlood } = require('./fixtures/floods/flood');

const MiB = 1024 * 1024;
const cleanup = new Cleanup();

const FRAGMENTS_ERROR = {
  name: 'RangeError',
  message: 'Too many message fragments',
  code: 'WS_ERR_TOO_MANY_BUFFERED_PARTS'
};

/**
 * One message as frames, each payload in `fragments` one frame (the first
 * with `opcode`, the others continuations, FIN on the last), masked with
 * one random key unless `mask` is false. Written into a single Buffer, so
 * that tens of thousands of fragments are quick to build.
 */
function message(fragments, opcode, mask = true) {
  const key = crypto.randomBytes(4);
  let total = 0;
  for (const p of fragments) {
    const ext = p.length < 126 ? 0 : p.length < 65536 ? 2 : 8;
    total += 2 + ext + (mask ? 4 : 0) + p.length;
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  fragments.forEach((p, i) => {
    const fin = i === fragments.length - 1;
    out[off++] = (fin ? 0x80 : 0) | (i === 0 ? opcode : OP.CONT);
    const m = mask ? 0x80 : 0;
    if (p.length < 126) {
      out[off++] = m | p.length;
    } else if (p.length < 65536) {
      out[off++] = m | 126;
      out.writeUInt16BE(p.length, off);
      off += 2;
    } else {
      out[off++] = m | 127;
      out.writeBigUInt64BE(BigInt(p.length), off);
      off += 8;
    }
    if (mask) {
      key.copy(out, off);
      off += 4;
      for (let j = 0; j < p.length; j++) out[off + j] = p[j] ^ key[j & 3];
    } else {
      p.copy(out, off);
    }
    off += p.length;
  });
  return out;
}

/**
 * `payload` cut into pieces of `size` bytes.
 */
function split(payload, size) {
  const pieces = [];
  for (let off = 0; off < payload.length; off += size) {
    pieces.push(payload.subarray(off, off + size));
  }
  return pieces;
}

/**
 * A binary payload of `n` bytes with a pattern, and the same payload as n
 * one-byte fragments.
 */
function oneByteFragments(n) {
  const payload = Buffer.alloc(n);
  for (let i = 0; i < n; i++) payload[i] = (i * 31 + 7) & 0xff;
  return { payload, fragments: split(payload, 1) };
}

function emptyFragments(n) {
  return new Array(n).fill(Buffer.alloc(0));
}

function pings(n, mask = true) {
  return Buffer.concat(
    Array.from({ length: n }, () => frame({ opcode: OP.PING, mask }))
  );
}

function mb(bytes) {
  return (bytes / MiB).toFixed(1);
}

/**
 * Handshake by hand with `wss` and capture the server-side WebSocket, with
 * its events (pings included) recorded from inside the 'connection'
 * listener.
 */
async function openRaw(wss) {
  const conn = new Promise((resolve) => {
    wss.once('connection', (ws) => {
      const rec = recordEvents(ws, ['message', 'error', 'close', 'ping']);
      resolve({ ws, rec });
    });
  });
  const raw = await rawHandshake(wss.address().port);
  cleanup.add(() => raw.socket.destroy());
  const { ws, rec } = await conn;
  return { ...raw, ws, rec };
}

/**
 * A client of the implementation under test connected to a raw server.
 * Resolves with `{ ws, rec, socket, reader }` (socket and reader: the raw
 * server's side).
 */
async function openClient(options) {
  let accept;
  const accepted = new Promise((resolve) => (accept = resolve));
  const raw = await createRawServer(async (socket) => {
    const { reader } = await acceptRaw(socket);
    accept({ socket, reader });
  });
  cleanup.add(() => raw.close());
  const ws = new WebSocket(raw.url, options);
  const rec = recordEvents(ws, ['open', 'message', 'error', 'close', 'ping']);
  cleanup.add(() => ws.terminate());
  await waitFor(ws, 'open');
  const { socket, reader } = await accepted;
  return { ws, rec, socket, reader };
}

async function serverWith(options) {
  const wss = await startServer(WebSocketServer, options);
  cleanup.add(() => stopServer(wss));
  return wss;
}

/**
 * `promise`, or a failure naming `what` (a string, or a function giving
 * one) if it has not settled within `ms`
 * (a generous bound, so that a missing event fails the test quickly rather
 * than at mocha's timeout).
 */
function within(promise, what, ms = 5000) {
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(
        () => {
          const name = typeof what === 'function' ? what() : what;
          reject(new Error(`${name}: not within ${ms} ms`));
        },
        ms
      );
    })
  ]).finally(() => clearTimeout(timer));
}

function count(log, name) {
  return log.filter((e) => e === name).length;
}

/**
 * Wait for the `n`-th message recorded in `rec`.
 */
async function nthMessage(ws, rec, n) {
  const all = (async () => {
    while (rec.messages.length < n && !rec.log.includes('close')) {
      await Promise.race([waitFor(ws, 'message'), rec.close]);
    }
  })();
  await within(all, `message ${n}`, 10000);
  assert.ok(rec.messages.length >= n,
    `closed after ${rec.messages.length} messages: ${rec.log.slice(-3)}` +
    ` ${rec.errors.map((e) => e.message)}`);
  return rec.messages[n - 1];
}

/**
 * Wait until `ws` has emitted `n` 'ping' events in all.
 */
async function nthPing(ws, rec, n) {
  const all = (async () => {
    while (count(rec.log, 'ping') < n) await waitFor(ws, 'ping');
  })();
  await within(all, `ping event ${n}`);
}

/**
 * The reaction to too many fragments: exactly one 'error' (RangeError,
 * WS_ERR_TOO_MANY_BUFFERED_PARTS), one close frame 1008 with no reason on
 * the wire (masked from a client), then the end of the TCP connection and
 * 'close' 1006; no message.
 */
async function expectTooManyFragments(side, { masked }) {
  // A message delivered instead fails the test at once.
  const delivered = side.rec.messages.length
    ? Promise.resolve()
    : waitFor(side.ws, 'message');
  const err = await within(
    Promise.race([side.rec.error, delivered.then(() => null)]),
    () => `'error' (events: ${side.rec.log})`
  );
  assert.ok(
    err,
    `a message of ${side.rec.messages.length && side.rec.messages[0][0].length}` +
      " B was delivered instead of an 'error'"
  );
  assert.ok(err instanceof RangeError, `${err}`);
  assert.equal(err.message, FRAGMENTS_ERROR.message);
  assert.equal(err.code, FRAGMENTS_ERROR.code);

  const frames = await within(side.reader.untilClose(), 'the end of the connection');
  assert.equal(frames.length, 1, 'exactly one frame is sent back');
  assert.equal(frames[0].opcode, OP.CLOSE);
  assert.equal(frames[0].code, 1008);
  assert.equal(frames[0].reason, '');
  assert.equal(frames[0].masked, masked);

  const [code, reason] = await within(side.rec.close, "'close'");
  assert.equal(code, 1006);
  assert.equal(reason, '');
  assert.equal(side.rec.errors.length, 1);
  assert.equal(side.rec.messages.length, 0);
  assert.deepEqual(
    side.rec.log.filter((e) => e !== 'open'),
    ['error', 'close']
  );
}

describe('floods from a peer that never reads (server in a child process)', function () {
  // Each flood takes about 0.3 s against ws; a server that does not end the
  // connection costs the flood driver ~3 s to notice.
  this.timeout(40000);

  function info(o) {
    return (
      `\n  ended: ${describeEnding(o)}; RSS growth ${mb(o.growth)} MiB` +
      ` (baseline ${mb(o.report.baseline)} MiB, peak ${mb(o.report.peak)} MiB)` +
      `\n  events: ${JSON.stringify(o.events)}` +
      `\n  frames read afterwards: ${JSON.stringify(o.frames)}`
    );
  }

  function assertGrowth(o) {
    assert.ok(
      o.growth < 32 * MiB,
      `the server's RSS grew by ${mb(o.growth)} MiB (limit 32)${info(o)}`
    );
  }

  function assertFragmentsRefused(o) {
    const errors = o.events.filter((e) => e.type === 'error');
    const closes = o.events.filter((e) => e.type === 'close');
    assert.deepEqual(
      errors.map(({ name, message, code }) => ({ name, message, code })),
      [FRAGMENTS_ERROR],
      `one 'error' with code WS_ERR_TOO_MANY_BUFFERED_PARTS${info(o)}`
    );
    assert.equal(o.events.filter((e) => e.type === 'message').length, 0,
      `no message${info(o)}`);
    assert.deepEqual(o.frames.closes, [{ code: 1008, reason: '', masked: false }],
      `the server sent one close frame 1008${info(o)}`);
    assert.equal(closes.length, 1, `one 'close'${info(o)}`);
    assert.equal(closes[0].code, 1006, `'close' with 1006${info(o)}`);
  }

  it('1,000,000 empty pings: the server terminates the connection (close 1006, no error) and grows < 32 MiB', async function () {
    const o = await runFlood('pings');
    const closes = o.events.filter((e) => e.type === 'close');
    assert.equal(closes.length, 1, `the server closed the connection${info(o)}`);
    assert.equal(closes[0].code, 1006, info(o));
    assert.equal(o.events.filter((e) => e.type === 'error').length, 0,
      `no 'error'${info(o)}`);
    assert.ok(closes[0].pings > 60,
      `'ping' events up to the ping that exceeded the limit${info(o)}`);
    assert.deepEqual(o.frames.closes, [], `no close frame: terminated${info(o)}`);
    assertGrowth(o);
  });

  it('one message in 1,000,000 one-byte fragments: error WS_ERR_TOO_MANY_BUFFERED_PARTS, close frame 1008, < 32 MiB', async function () {
    const o = await runFlood('fragments');
    assertFragmentsRefused(o);
    assertGrowth(o);
  });

  it('one message in 1,000,000 empty fragments: error WS_ERR_TOO_MANY_BUFFERED_PARTS, close frame 1008, < 32 MiB', async function () {
    const o = await runFlood('empty');
    assertFragmentsRefused(o);
    assertGrowth(o);
  });
});

describe('maxFragments', function () {
  afterEach(() => cleanup.run());

  describe('server', function () {
    it('default (16,384): a message of 16,384 one-byte fragments is delivered whole', async function () {
      const wss = await serverWith();
      const c = await openRaw(wss);
      const { payload, fragments } = oneByteFragments(16384);
      c.socket.write(message(fragments, OP.BINARY));
      const [data, isBinary] = await nthMessage(c.ws, c.rec, 1);
      assert.equal(isBinary, true);
      assert.ok(data.equals(payload));
      assert.deepEqual(c.rec.errors, []);
      assert.equal(c.ws.readyState, WebSocket.OPEN);
    });

    it('default: the 16,385th fragment fails the connection (RangeError, WS_ERR_TOO_MANY_BUFFERED_PARTS, close frame 1008)', async function () {
      const wss = await serverWith();
      const c = await openRaw(wss);
      c.socket.write(message(oneByteFragments(16385).fragments, OP.BINARY));
      await expectTooManyFragments(c, { masked: false });
    });

    it('default: empty fragments count (16,385 empty fragments fail the same way)', async function () {
      const wss = await serverWith();
      const c = await openRaw(wss);
      c.socket.write(message(emptyFragments(16385), OP.BINARY));
      await expectTooManyFragments(c, { masked: false });
    });

    it('default: a text message counts the same way', async function () {
      const wss = await serverWith();
      const c = await openRaw(wss);
      c.socket.write(message(split(Buffer.alloc(16385, 'a'), 1), OP.TEXT));
      await expectTooManyFragments(c, { masked: false });
    });

    it('maxFragments: 0 turns the limit off (20,000 fragments delivered)', async function () {
      const wss = await serverWith({ maxFragments: 0 });
      const c = await openRaw(wss);
      const { payload, fragments } = oneByteFragments(20000);
      c.socket.write(message(fragments, OP.BINARY));
      const [data, isBinary] = await nthMessage(c.ws, c.rec, 1);
      assert.equal(isBinary, true);
      assert.ok(data.equals(payload));
      assert.deepEqual(c.rec.errors, []);
    });

    it('maxFragments: 3: 3 fragments are delivered, 4 fail the connection', async function () {
      const wss = await serverWith({ maxFragments: 3 });
      const ok = await openRaw(wss);
      ok.socket.write(message(split(Buffer.from('abc'), 1), OP.TEXT));
      const [data, isBinary] = await nthMessage(ok.ws, ok.rec, 1);
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'abc');
      // The count starts again with the next message.
      ok.socket.write(message(split(Buffer.from('def'), 1), OP.TEXT));
      const [again] = await nthMessage(ok.ws, ok.rec, 2);
      assert.equal(again.toString(), 'def');
      assert.deepEqual(ok.rec.errors, []);

      const bad = await openRaw(wss);
      bad.socket.write(message(split(Buffer.from('abcd'), 1), OP.TEXT));
      await expectTooManyFragments(bad, { masked: false });
    });
  });

  describe('client', function () {
    it('default (16,384): 16,384 fragments are delivered, 16,385 fail (masked close frame 1008)', async function () {
      const ok = await openClient();
      const { payload, fragments } = oneByteFragments(16384);
      ok.socket.write(message(fragments, OP.BINARY, false));
      const [data, isBinary] = await nthMessage(ok.ws, ok.rec, 1);
      assert.equal(isBinary, true);
      assert.ok(data.equals(payload));
      assert.deepEqual(ok.rec.errors, []);

      const bad = await openClient();
      bad.socket.write(message(emptyFragments(16385), OP.BINARY, false));
      await expectTooManyFragments(bad, { masked: true });
    });

    it('maxFragments: 3: 3 fragments are delivered, 4 fail the connection', async function () {
      const ok = await openClient({ maxFragments: 3 });
      ok.socket.write(message(split(Buffer.from('xyz'), 1), OP.BINARY, false));
      const [data] = await nthMessage(ok.ws, ok.rec, 1);
      assert.equal(data.toString(), 'xyz');
      assert.deepEqual(ok.rec.errors, []);

      const bad = await openClient({ maxFragments: 3 });
      bad.socket.write(message(split(Buffer.from('wxyz'), 1), OP.BINARY, false));
      await expectTooManyFragments(bad, { masked: true });
    });

    it('maxFragments: 0 turns the limit off (20,000 fragments delivered)', async function () {
      const c = await openClient({ maxFragments: 0 });
      const { payload, fragments } = oneByteFragments(20000);
      c.socket.write(message(fragments, OP.BINARY, false));
      const [data] = await nthMessage(c.ws, c.rec, 1);
      assert.ok(data.equals(payload));
      assert.deepEqual(c.rec.errors, []);
    });
  });
});

// Autobahn 9.3.x (text) and 9.4.x (binary): a 4 MiB message in fragments of
// 64 B (9.x.1), 256 B (9.x.2), 1 KiB (9.x.3) and 4 KiB (9.x.4). With ws's
// defaults only 64 B fragments (65,536 of them) pass the limit: 256 B makes
// exactly 16,384 fragments, which is allowed.
describe('Autobahn 9.3.x / 9.4.x: 4 MiB messages in 64 B to 4 KiB fragments', function () {
  afterEach(() => cleanup.run());

  const SIZE = 4 * MiB;
  // Valid UTF-8 with 3-byte characters, so that fragment boundaries split
  // characters; the incomplete last unit is replaced by ASCII.
  const unit = 'Autobahn-\u20ac-';
  const TEXT = Buffer.alloc(SIZE, unit);
  TEXT.fill(0x2e, SIZE - (SIZE % Buffer.byteLength(unit)));
  const BINARY = crypto.randomBytes(SIZE);

  const cases = [];
  for (const [group, opcode, payload] of [
    ['9.3', OP.TEXT, TEXT],
    ['9.4', OP.BINARY, BINARY]
  ]) {
    [64, 256, 1024, 4096].forEach((size, i) => {
      cases.push({ id: `${group}.${i + 1}`, opcode, payload, size });
    });
  }

  async function deliver(wss, { opcode, payload, size }) {
    const c = await openRaw(wss);
    c.socket.write(message(split(payload, size), opcode));
    const [data, isBinary] = await nthMessage(c.ws, c.rec, 1);
    assert.equal(isBinary, opcode === OP.BINARY);
    assert.equal(data.length, payload.length);
    assert.ok(data.equals(payload), 'delivered intact');
    assert.deepEqual(c.rec.errors, []);
    // And the close handshake still works.
    c.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1000);
  }

  describe('default limits', function () {
    let wss;
    before(async function () {
      wss = await startServer(WebSocketServer);
    });
    after(() => stopServer(wss));

    for (const k of cases) {
      const fragments = k.payload.length / k.size;
      if (fragments > 16384) {
        it(`${k.id}: ${fragments} fragments of ${k.size} B: closed with 1008`, async function () {
          const c = await openRaw(wss);
          c.socket.write(message(split(k.payload, k.size), k.opcode));
          await expectTooManyFragments(c, { masked: false });
        });
      } else {
        it(`${k.id}: ${fragments} fragments of ${k.size} B: delivered`, async function () {
          await deliver(wss, k);
        });
      }
    }
  });

  describe('maxFragments: 0', function () {
    let wss;
    before(async function () {
      wss = await startServer(WebSocketServer, { maxFragments: 0 });
    });
    after(() => stopServer(wss));

    for (const k of cases) {
      it(`${k.id}: ${k.payload.length / k.size} fragments of ${k.size} B: delivered`, async function () {
        await deliver(wss, k);
      });
    }
  });
});

describe('maxPendingAutoPongs', function () {
  afterEach(() => cleanup.run());

  /**
   * The peer sent more pings in one write than the limit allows: the
   * connection is terminated (no close frame, 'close' 1006, no 'error'),
   * every ping read with the one that exceeded the limit still gets its
   * 'ping' event, before 'close', and at most `limit` pongs went out.
   */
  async function expectTerminated(side, sent, limit, { socketPaused }) {
    const [code, reason] = await within(
      side.rec.close,
      () => `'close' (${count(side.rec.log, 'ping')} pings seen)`
    );
    assert.equal(code, 1006);
    assert.equal(reason, '');
    assert.deepEqual(side.rec.errors, []);
    assert.equal(count(side.rec.log, 'ping'), sent);
    assert.equal(side.rec.log[side.rec.log.length - 1], 'close');
    assert.equal(side.ws.readyState, WebSocket.CLOSED);

    if (socketPaused) side.socket.resume();
    const frames = await within(side.reader.untilClose(), 'the end of the connection');
    const pongs = frames.filter((f) => f.opcode === OP.PONG);
    assert.deepEqual(
      frames.filter((f) => f.opcode !== OP.PONG).map((f) => f.opcode),
      [],
      'nothing but pongs: no close frame'
    );
    assert.ok(pongs.length <= limit, `${pongs.length} pongs (limit ${limit})`);
  }

  /**
   * The connection is still open: a message goes through both ways.
   */
  async function expectOpen(side) {
    side.ws.on('message', (data, isBinary) =>
      side.ws.send(data, { binary: isBinary })
    );
    side.socket.write(frame({ opcode: OP.TEXT, payload: 'still open', mask: side.masked }));
    for (;;) {
      const f = await within(side.reader.next(), 'the echo');
      assert.ok(f, 'the connection ended');
      if (f.opcode === OP.PONG) continue;
      assert.equal(f.opcode, OP.TEXT);
      assert.equal(f.payload.toString(), 'still open');
      break;
    }
    assert.equal(side.ws.readyState, WebSocket.OPEN);
    assert.deepEqual(side.rec.errors, []);
  }

  /**
   * Read `n` pongs (empty payload) and nothing else.
   */
  async function expectPongs(side, n) {
    for (let i = 0; i < n; i++) {
      const f = await within(side.reader.next(), `pong ${i + 1}`);
      assert.ok(f, `the connection ended after ${i} pongs`);
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.length, 0);
      assert.equal(f.masked, !side.masked);
    }
  }

  describe('server', function () {
    async function raw(options) {
      const wss = await serverWith(options);
      const c = await openRaw(wss);
      c.masked = true;
      return c;
    }

    it('default (60): 100 pings in one write from a peer that never reads terminate the connection (close 1006, no error, 100 ping events)', async function () {
      const c = await raw();
      c.socket.pause();
      c.socket.write(pings(100));
      await expectTerminated(c, 100, 60, { socketPaused: true });
    });

    it('default: 61 pings in one write are one too many', async function () {
      const c = await raw();
      c.socket.pause();
      c.socket.write(pings(61));
      await expectTerminated(c, 61, 60, { socketPaused: true });
    });

    it('default: 60 pings in one write are all answered and the connection stays open', async function () {
      const c = await raw();
      c.socket.write(pings(60));
      await expectPongs(c, 60);
      await expectOpen(c);
      assert.equal(count(c.rec.log, 'ping'), 60);
    });

    it('maxPendingAutoPongs: 5: 6 pings in one write terminate, 5 are answered', async function () {
      const ok = await raw({ maxPendingAutoPongs: 5 });
      ok.socket.write(pings(5));
      await expectPongs(ok, 5);
      await expectOpen(ok);

      const wss = await serverWith({ maxPendingAutoPongs: 5 });
      const bad = await openRaw(wss);
      bad.socket.pause();
      bad.socket.write(pings(6));
      await expectTerminated(bad, 6, 5, { socketPaused: true });
    });

    it('maxPendingAutoPongs: 0: no limit (1,000 pings in one write, all answered)', async function () {
      const c = await raw({ maxPendingAutoPongs: 0 });
      c.socket.write(pings(1000));
      await expectPongs(c, 1000);
      await expectOpen(c);
      assert.equal(count(c.rec.log, 'ping'), 1000);
    });

    it('autoPong: false: no pong, so no limit (1,000 pings, 1,000 ping events, still open)', async function () {
      const c = await raw({ autoPong: false });
      c.socket.write(pings(1000));
      await expectOpen(c); // the echo is the first frame: no pong came
      assert.equal(count(c.rec.log, 'ping'), 1000);
    });
  });

  describe('client', function () {
    async function client(options) {
      const c = await openClient(options);
      c.masked = false;
      return c;
    }

    it('default (60): 100 pings in one write from a server that never reads terminate the connection (close 1006, no error, 100 ping events)', async function () {
      const c = await client();
      c.socket.pause();
      c.socket.write(pings(100, false));
      await expectTerminated(c, 100, 60, { socketPaused: true });
    });

    it('maxPendingAutoPongs: 5: 6 pings in one write terminate, 5 are answered', async function () {
      const ok = await client({ maxPendingAutoPongs: 5 });
      ok.socket.write(pings(5, false));
      await expectPongs(ok, 5);
      await expectOpen(ok);

      const bad = await client({ maxPendingAutoPongs: 5 });
      bad.socket.pause();
      bad.socket.write(pings(6, false));
      await expectTerminated(bad, 6, 5, { socketPaused: true });
    });

    it('maxPendingAutoPongs: 0: no limit (1,000 pings in one write, all answered)', async function () {
      const c = await client({ maxPendingAutoPongs: 0 });
      c.socket.write(pings(1000, false));
      await expectPongs(c, 1000);
      await expectOpen(c);
    });

    it('autoPong: false: no pong, so no limit (1,000 pings, 1,000 ping events, still open)', async function () {
      const c = await client({ autoPong: false });
      c.socket.write(pings(1000, false));
      await expectOpen(c);
      assert.equal(count(c.rec.log, 'ping'), 1000);
    });
  });
});

describe('no pong after our close frame', function () {
  afterEach(() => cleanup.run());

  it('server: after ws.close(1000) a ping gets no pong (only the close frame is on the wire)', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    c.ws.close(1000);
    const closeFrame = await within(c.reader.next(), 'a frame');
    assert.equal(closeFrame.opcode, OP.CLOSE);
    assert.equal(closeFrame.code, 1000);

    c.socket.write(frame({ opcode: OP.PING, payload: 'late' }));
    await nthPing(c.ws, c.rec, 1); // ws still emits it
    await delay(300);
    assert.deepEqual(
      c.reader.frames.map((f) => f.opcode),
      [],
      'nothing after the close frame'
    );

    c.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    assert.deepEqual(await within(c.reader.untilClose(), 'the end of the connection'), []);
    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1000);
    assert.deepEqual(c.rec.errors, []);
  });

  it('server: after answering the peer\'s close frame a ping gets no pong', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    c.socket.allowHalfOpen = true;
    c.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    const closeFrame = await within(c.reader.next(), 'a frame');
    assert.equal(closeFrame.opcode, OP.CLOSE);
    assert.equal(closeFrame.code, 1000);
    c.socket.write(frame({ opcode: OP.PING, payload: 'late' }));
    await delay(300);
    assert.deepEqual(c.reader.frames.map((f) => f.opcode), []);
    c.socket.end();
    assert.deepEqual(await within(c.reader.untilClose(), 'the end of the connection'), []);
    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1000);
    assert.deepEqual(c.rec.errors, []);
  });

  it('client: after ws.close(1000) a ping gets no pong (only the close frame is on the wire)', async function () {
    const c = await openClient();
    c.ws.close(1000);
    const closeFrame = await within(c.reader.next(), 'a frame');
    assert.equal(closeFrame.opcode, OP.CLOSE);
    assert.equal(closeFrame.code, 1000);
    assert.equal(closeFrame.masked, true);

    c.socket.write(frame({ opcode: OP.PING, payload: 'late', mask: false }));
    await nthPing(c.ws, c.rec, 1);
    await delay(300);
    assert.deepEqual(c.reader.frames.map((f) => f.opcode), []);

    c.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000), mask: false }));
    c.socket.end();
    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1000);
    assert.deepEqual(c.rec.errors, []);
  });
});

describe('bufferedAmount and send callbacks are exact', function () {
  afterEach(() => cleanup.run());

  /**
   * 100 pings from the peer in 10 writes of 10, each write waiting for its
   * 10 pongs (so maxPendingAutoPongs is never reached).
   */
  async function hundredPongs(c, mask) {
    for (let i = 0; i < 10; i++) {
      c.socket.write(pings(10, mask));
      for (let j = 0; j < 10; j++) {
        const f = await within(c.reader.next(), 'a pong');
        assert.equal(f && f.opcode, OP.PONG);
      }
    }
    // The pongs may overtake the 'ping' events.
    await nthPing(c.ws, c.rec, 100);
  }

  it('server: bufferedAmount is 0 after 100 automatic pongs', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    await hundredPongs(c, true);
    assert.equal(count(c.rec.log, 'ping'), 100);
    assert.equal(c.ws.bufferedAmount, 0);
  });

  it('client: bufferedAmount is 0 after 100 automatic pongs', async function () {
    const c = await openClient();
    await hundredPongs(c, false);
    assert.equal(count(c.rec.log, 'ping'), 100);
    assert.equal(c.ws.bufferedAmount, 0);
  });

  it('server: after pongs and answering the peer\'s close frame bufferedAmount stays 0; a send after close counts as in ws', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    await hundredPongs(c, true);
    c.socket.write(frame({ opcode: OP.CLOSE, payload: closePayload(1000) }));
    const closeFrame = await within(c.reader.next(), 'a frame');
    assert.equal(closeFrame.opcode, OP.CLOSE);
    assert.equal(closeFrame.code, 1000);
    assert.equal(c.ws.bufferedAmount, 0);

    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1000);
    assert.equal(c.ws.bufferedAmount, 0);
    await delay(50);
    assert.equal(c.ws.bufferedAmount, 0);

    // ws counts the bytes of a send after close and fails its callback.
    const [err] = await new Promise((resolve) => {
      c.ws.send('abc', (...args) => resolve(args));
      assert.equal(c.ws.bufferedAmount, 3);
    });
    assert.ok(err instanceof Error);
    assert.equal(c.ws.bufferedAmount, 3);
  });

  it('server: the callback of a 16 MiB send to a peer that does not read fires only once the peer reads', async function () {
    this.timeout(30000);
    const size = 16 * MiB;
    const wss = await serverWith();
    const c = await openRaw(wss);
    c.socket.pause(); // the peer stops reading

    // 100 pings, 10 per write, each batch auto-ponged before the next.
    for (let i = 1; i <= 10; i++) {
      c.socket.write(pings(10));
      await nthPing(c.ws, c.rec, i * 10);
    }
    // (Checked at the end, so that the callback is tested in any case.)
    const before = c.ws.bufferedAmount;

    let fired = null;
    const callback = new Promise((resolve) => {
      c.ws.send(Buffer.alloc(size, 1), (err) => {
        fired = err || true;
        resolve(err);
      });
    });
    const queued = c.ws.bufferedAmount;

    // More than the kernel's socket buffers can hold: it cannot all be
    // written while the peer does not read.
    await delay(300);
    assert.equal(fired, null, 'the callback fired while the peer did not read');
    const stillQueued = c.ws.bufferedAmount;

    // Now read everything: 100 pongs (2 bytes each), then the message
    // (10-byte header).
    const expected = 100 * 2 + 10 + size;
    let received = 0;
    const all = new Promise((resolve) => {
      c.socket.removeAllListeners('data');
      c.socket.on('data', (chunk) => {
        received += chunk.length;
        if (received >= expected) resolve();
      });
    });
    c.socket.resume();
    await within(all, () => `all ${expected} bytes (got ${received})`, 10000);
    assert.equal(received, expected);
    assert.ifError(await within(callback, 'the send callback'));

    assert.equal(before, 0, 'bufferedAmount after the pongs');
    assert.ok(queued >= size && queued <= size + 14,
      `bufferedAmount right after the send: ${queued}`);
    assert.ok(stillQueued > 0, `bufferedAmount after 300 ms: ${stillQueued}`);
    assert.equal(c.ws.bufferedAmount, 0);
  });

  it('maxBufferedAmount (ws-native only) cannot be pre-paid by automatic pongs', async function () {
    // ws has no maxBufferedAmount.
    if (!isNative) this.skip();
    const limit = 1024 * 1024;
    const wss = await serverWith({ maxBufferedAmount: limit });
    const c = await openRaw(wss);
    await hundredPongs(c, true);
    c.socket.pause();
    const before = c.ws.bufferedAmount;

    // In one JS turn nothing is written: after a send of `limit` bytes
    // (accepted: the buffer was empty) limit + 10 bytes wait, so the next
    // send must fail.
    c.ws.send(Buffer.alloc(limit));
    const queued = c.ws.bufferedAmount;
    const cbErr = new Promise((resolve) => c.ws.send(Buffer.alloc(1), resolve));
    const err = await within(
      c.rec.error,
      `'error' (bufferedAmount ${before} after the pongs, ${queued} after the send)`
    );
    assert.equal(err.code, 'WSN_ERR_SEND_BUFFER_FULL');
    assert.equal((await within(cbErr, 'the callback')).code, 'WSN_ERR_SEND_BUFFER_FULL');
    const [code] = await within(c.rec.close, "'close'");
    assert.equal(code, 1006);
    assert.equal(before, 0);
    assert.ok(queued > limit && queued <= limit + 14, `bufferedAmount ${queued}`);
  });
});

describe('memory a received message pins (ws-native only)', function () {
  before(function () {
    // ws hands out views of the 64 KiB chunks its socket reads: a small
    // message keeps its whole chunk alive, so there is nothing to compare.
    if (!isNative) this.skip();
  });

  afterEach(() => cleanup.run());

  // ASCII (valid as text), different for every message.
  function payloadOf(i, size) {
    return Buffer.from(String(i).padStart(size, '.'));
  }

  it('small messages received together each keep at most an 8 KiB slab', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    const n = 2000;
    const frames = [];
    for (let i = 0; i < n; i++) {
      frames.push(message([payloadOf(i, 32)], i % 2 ? OP.BINARY : OP.TEXT));
    }
    c.socket.write(Buffer.concat(frames)); // one write: one event batch
    await nthMessage(c.ws, c.rec, n);
    c.rec.messages.forEach(([data], i) => {
      assert.ok(data.equals(payloadOf(i, 32)), `message ${i}`);
      const pinned = data.buffer.byteLength;
      assert.ok(
        pinned <= Math.max(8192, data.length + 1024),
        `message ${i} (${data.length} B) keeps an ArrayBuffer of ${pinned} B`
      );
    });
  });

  it('a 50 KiB message received among small ones keeps at most its length + 1 KiB', async function () {
    const wss = await serverWith();
    const c = await openRaw(wss);
    const big = crypto.randomBytes(50 * 1024);
    const frames = [];
    for (let i = 0; i < 100; i++) frames.push(message([payloadOf(i, 32)], OP.BINARY));
    frames.push(message([big], OP.BINARY));
    for (let i = 0; i < 100; i++) frames.push(message([payloadOf(i, 32)], OP.TEXT));
    c.socket.write(Buffer.concat(frames));
    await nthMessage(c.ws, c.rec, 201);
    const [data] = c.rec.messages[100];
    assert.ok(data.equals(big));
    assert.ok(
      data.buffer.byteLength <= big.length + 1024,
      `a ${big.length} B message keeps an ArrayBuffer of ${data.buffer.byteLength} B`
    );
    for (const [small] of c.rec.messages.filter((m, i) => i !== 100)) {
      assert.ok(small.buffer.byteLength <= 8192, `${small.buffer.byteLength} B`);
    }
  });
});

describe('large frames declared and never finished (server in a child process)', function () {
  // ws-native reserves room for a large frame's declared length up front
  // (up to 16 MiB, within maxPayload) so that it is not grown read after
  // read: a peer that declares big frames on many connections and sends
  // little must cost what it sent, not what it declared. The reservation is
  // address space; only the pages written count.
  this.timeout(60000);
  afterEach(() => cleanup.run());
  const CONNS = 200;
  const DECLARED = 16 * MiB;
  const SENT = 64 * 1024;

  it(`${CONNS} connections each declare a 16 MiB frame and send 64 KiB: the server grows < 64 MiB and keeps them open`, async function () {
    const { fork } = require('node:child_process');
    const path = require('node:path');
    const child = fork(path.join(__dirname, 'fixtures', 'floods', 'many-server.js'), ['{}'], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    });
    const sockets = [];
    cleanup.add(() => {
      for (const s of sockets) s.destroy();
      if (child.connected) child.send({ type: 'exit' });
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    });
    const next = (type) => new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.type !== type) return;
        child.removeListener('message', onMessage);
        resolve(m);
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    const { port } = await next('listening');
    for (let i = 0; i < CONNS; i++) {
      const { socket } = await rawHandshake(port);
      sockets.push(socket);
    }
    child.send({ type: 'baseline' });
    const { rss: baseline } = await next('baseline');

    const head = frame({
      opcode: OP.BINARY,
      fin: true,
      payload: crypto.randomBytes(SENT),
      length: DECLARED
    });
    for (const s of sockets) s.write(head);
    // Every byte reaches the server (each socket's write is drained), then
    // the server gets a moment to read it all.
    await Promise.all(sockets.map((s) => new Promise((resolve) => {
      if (s.writableLength === 0) resolve();
      else s.once('drain', resolve);
    })));
    await delay(1000);
    child.send({ type: 'report' });
    const r = await next('report');
    const growth = r.peak - baseline;
    if (process.env.WSN_FLOOD_REPORT) {
      console.log(`      RSS growth ${(growth / MiB).toFixed(1)} MiB`);
    }
    assert.equal(r.connections, CONNS, 'every connection is still open');
    assert.ok(
      growth < 64 * MiB,
      `the server's RSS grew by ${(growth / MiB).toFixed(1)} MiB for ` +
        `${CONNS} x ${SENT / 1024} KiB sent (${CONNS} x 16 MiB declared)`
    );
  });
});
