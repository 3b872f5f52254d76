'use strict';

// What ws 8.23.1 exports besides the WebSocket classes, as third-party code
// uses it: Sender.frame() (socket.io frames a broadcast once with it) and a
// WebSocket's `_sender.sendFrame()`, the extension and subprotocol parsers,
// and the Receiver/PerMessageDeflate names. Outputs are compared with ws's
// own modules byte for byte (with WSN_TEST_IMPL=ws both sides are ws).

const assert = require('node:assert/strict');
const path = require('path');
const { PassThrough } = require('stream');
const { pathToFileURL } = require('url');
const util = require('util');

const wsLib = require('ws');
const wsExtension = wsLib.extension;
const wsSubprotocol = wsLib.subprotocol;
const { WebSocket, WebSocketServer, isNative } = require('./helpers/impl');
const { dispose, startServer, stopServer, waitFor } =
  require('./helpers/util');

const NAMES = ['createWebSocketStream', 'extension', 'PerMessageDeflate',
  'Receiver', 'Sender', 'Server', 'subprotocol', 'WebSocket',
  'WebSocketServer'];

// A deterministic masking key for Sender.frame (ws's generateMask option).
function fixedMask(bytes) {
  return (mask) => {
    for (let i = 0; i < 4; i++) mask[i] = bytes[i];
  };
}

function payloadOf(kind, size) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + 7) & 0xff;
  if (kind === 'string') return 'é'.repeat(size >> 1) + 'a'.repeat(size & 1);
  if (kind === 'uint8array') return new Uint8Array(buf);
  return buf;
}

function copyOf(data) {
  if (typeof data === 'string') return data;
  if (Buffer.isBuffer(data)) return Buffer.from(data);
  return new Uint8Array(data);
}

// A frame list as comparable data: the bytes of each piece.
function pieces(list) {
  return list.map((p) => Buffer.from(p.buffer ? p : Buffer.from(p)).toString('hex'));
}

// The result of a parser, or its error, as comparable text.
function outcome(fn, arg) {
  try {
    return util.inspect(fn(arg), { depth: 10 });
  } catch (err) {
    return `${err.constructor.name}: ${err.message}`;
  }
}

// Seeded generator, so that a failure can be replayed.
function generator(seed) {
  return (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
}

describe('exports (ws 8.23.1 surface)', function () {
  it('index.js exports what ws exports', function () {
    for (const name of NAMES) {
      assert.equal(typeof WebSocket[name], typeof wsLib[name], name);
    }
    assert.equal(WebSocket.WebSocket, WebSocket);
    assert.equal(typeof WebSocket.Sender.frame, 'function');
    assert.equal(typeof WebSocket.extension.parse, 'function');
    assert.equal(typeof WebSocket.extension.format, 'function');
    assert.equal(typeof WebSocket.subprotocol.parse, 'function');
    assert.equal(WebSocket.PerMessageDeflate.extensionName,
      'permessage-deflate');
  });

  it('wrapper.mjs exports what ws\'s does', async function () {
    const root = isNative
      ? path.join(__dirname, '..')
      : path.dirname(require.resolve('ws/package.json'));
    const ours = await import(pathToFileURL(path.join(root, 'wrapper.mjs')));
    const theirs = await import(pathToFileURL(
      path.join(path.dirname(require.resolve('ws/package.json')), 'wrapper.mjs')));
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
    assert.equal(ours.Sender, WebSocket.Sender);
    assert.equal(ours.default, WebSocket);
  });

  it('Receiver and PerMessageDeflate cannot be made: a clear error', function () {
    if (!isNative) this.skip(); // ws's are real codecs
    assert.throws(() => new WebSocket.Receiver(), /Receiver is not available/);
    assert.throws(() => new WebSocket.PerMessageDeflate({}),
      /PerMessageDeflate is not available/);
  });
});

describe('Sender.frame', function () {
  const Sender = WebSocket.Sender;

  it('gives ws\'s frame list, byte for byte, for every option', function () {
    let cases = 0;
    for (const kind of ['buffer', 'uint8array', 'string']) {
      for (const size of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
        for (const mask of [false, true]) {
          for (const readOnly of [false, true]) {
            for (const key of [[1, 2, 3, 4], [0, 0, 0, 0], [255, 0, 0, 1]]) {
              for (const [opcode, fin, rsv1] of
                [[1, true, false], [2, false, true], [0, true, false],
                  [8, true, false], [9, true, false], [10, true, true]]) {
                if (!mask && key[0] !== 1) continue; // the key is unused
                const make = (lib, data, maskBuffer) => lib.Sender.frame(data, {
                  fin,
                  generateMask: fixedMask(key),
                  mask,
                  maskBuffer,
                  opcode,
                  readOnly,
                  rsv1
                });
                const original = payloadOf(kind, size);
                const ourData = copyOf(original);
                const theirData = copyOf(original);
                const ours = make(WebSocket, ourData, size & 1 ? Buffer.alloc(4) : undefined);
                const theirs = make(wsLib, theirData, size & 1 ? Buffer.alloc(4) : undefined);
                const what = `${kind} ${size} mask=${mask} readOnly=${readOnly} key=${key} op=${opcode}`;
                assert.equal(ours.length, theirs.length, what);
                assert.deepEqual(pieces(ours), pieces(theirs), what);
                // ws masks a caller's bytes in place unless readOnly: so do we.
                if (typeof original !== 'string') {
                  assert.deepEqual(Buffer.from(ourData), Buffer.from(theirData), what);
                }
                // The payload piece is the caller's own object when ws's is.
                if (theirs.length === 2 && typeof original !== 'string') {
                  assert.equal(ours[1] === ourData, theirs[1] === theirData, what);
                }
                cases++;
              }
            }
          }
        }
      }
    }
    assert.ok(cases > 500);
  });

  it('masks with a random key when no generateMask is given', function () {
    const data = Buffer.from('hello, world');
    const list = Sender.frame(Buffer.from(data), {
      fin: true, mask: true, opcode: 1, readOnly: false, rsv1: false
    });
    const frame = Buffer.concat(list);
    assert.equal(frame[0], 0x81);
    assert.equal(frame[1], 0x80 | data.length);
    const key = frame.subarray(2, 6);
    const body = frame.subarray(6);
    const plain = Buffer.from(body.map((b, i) => b ^ key[i & 3]));
    assert.deepEqual(plain, data);
  });

  it('a Sender on a stream writes what ws\'s writes', async function () {
    const collect = (lib) => {
      const out = new PassThrough();
      const chunks = [];
      out.on('data', (c) => chunks.push(c));
      const sender = new lib.Sender(out, {}, fixedMask([9, 8, 7, 6]));
      let called = 0;
      const cb = (err) => {
        assert.equal(err ?? null, null);
        called++;
      };
      sender.send('text', { binary: false, fin: true, mask: true }, cb);
      sender.send(Buffer.from('part1'), { binary: true, fin: false, mask: false }, cb);
      sender.send(new Uint8Array([1, 2, 3]), { binary: true, fin: true, mask: true }, cb);
      sender.ping('p', true, cb);
      sender.pong(Buffer.from('q'), false, cb);
      sender.close(1001, 'bye', false, cb);
      sender.close(undefined, undefined, true, cb);
      assert.throws(() => sender.close(1005), TypeError);
      assert.throws(() => sender.ping(Buffer.alloc(126)), RangeError);
      return new Promise((resolve) => setImmediate(() => {
        assert.equal(called, 7);
        resolve(Buffer.concat(chunks));
      }));
    };
    assert.deepEqual(await collect(WebSocket), await collect(wsLib));
  });

  it('a Sender on a stream refuses what only the C codec can do', function () {
    if (!isNative) this.skip(); // ws's Sender compresses and reads Blobs
    const sender = new WebSocket.Sender(new PassThrough());
    assert.throws(() => sender.send('x', { compress: true, fin: true }),
      /cannot compress/);
    assert.throws(() => sender.send(new Blob(['x']), { fin: true }),
      /cannot send a Blob/);
  });
});

describe('websocket._sender.sendFrame', function () {
  let wss;
  let url;

  beforeEach(async function () {
    wss = await startServer(wsLib.WebSocketServer);
    url = `ws://127.0.0.1:${wss.address().port}`;
  });

  afterEach(async function () {
    for (const client of wss.clients) client.terminate();
    await stopServer(wss);
  });

  it('is null while connecting, then sends pre-framed bytes as they are', async function () {
    const peer = new Promise((resolve) => wss.once('connection', resolve));
    const ws = new WebSocket(url);
    assert.equal(ws._sender, null);
    await waitFor(ws, 'open');
    const server = await peer;
    assert.equal(typeof ws._sender.sendFrame, 'function');
    assert.ok(ws._sender instanceof WebSocket.Sender);

    const received = [];
    server.on('message', (data, isBinary) => received.push([data.toString(), isBinary]));
    const opts = { fin: true, mask: true, opcode: 1, readOnly: true, rsv1: false };
    const frame = WebSocket.Sender.frame(Buffer.from('pre-framed'), opts);
    const big = WebSocket.Sender.frame(Buffer.alloc(70000, 0x61),
      { ...opts, opcode: 2 });
    const done = [];
    ws.send('before');
    ws._sender.sendFrame(frame, (err) => done.push(err));
    ws._sender.sendFrame(big, (err) => done.push(err));
    ws.send('after');
    const got = new Promise((resolve) => {
      server.on('message', () => {
        if (received.length === 4) resolve();
      });
    });
    await got;
    assert.deepEqual(received.map(([d, b]) => [d.length > 20 ? d.length : d, b]), [
      ['before', false], ['pre-framed', false], [70000, true], ['after', false]
    ]);
    while (done.length < 2) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(done, [null, null]);
    assert.equal(ws.bufferedAmount, 0);
    dispose(ws);
  });

  it('a server-side socket sends a frame one Sender.frame built for many', async function () {
    const server = await startServer(WebSocketServer);
    const target = `ws://127.0.0.1:${server.address().port}`;
    const clients = [];
    try {
      const sockets = new Promise((resolve) => {
        const list = [];
        server.on('connection', (ws) => {
          if (list.push(ws) === 3) resolve(list);
        });
      });
      for (let i = 0; i < 3; i++) clients.push(new wsLib.WebSocket(target));
      const serverSockets = await sockets;
      const messages = clients.map((c) => waitFor(c, 'message'));
      const frame = WebSocket.Sender.frame(Buffer.from('to all'),
        { fin: true, mask: false, opcode: 1, readOnly: false, rsv1: false });
      const acks = serverSockets.map((ws) => new Promise((resolve) =>
        ws._sender.sendFrame(frame, resolve)));
      for (const [data, isBinary] of await Promise.all(messages)) {
        assert.equal(data.toString(), 'to all');
        assert.equal(isBinary, false);
      }
      assert.deepEqual(await Promise.all(acks), serverSockets.map(() => null));
    } finally {
      for (const c of clients) c.terminate();
      await stopServer(server);
    }
  });

  it('binding.sendFrame copies only what it measured', async function () {
    if (!isNative) this.skip(); // ws-native's binding
    const { binding } = require('../lib/native');
    const ws = new WebSocket(url);
    await waitFor(ws, 'open');
    const peer = [...wss.clients][0];
    assert.throws(() => ws._sender.sendFrame([123]), TypeError);
    assert.throws(() => ws._sender.sendFrame('not a list'), TypeError);
    // An element getter that hands out a bigger piece the second time it
    // is read: the copy must not overflow what was measured.
    const frame = WebSocket.Sender.frame(Buffer.from('ok'),
      { fin: true, mask: true, opcode: 1, readOnly: false, rsv1: false });
    const list = [frame[0]];
    let reads = 0;
    Object.defineProperty(list, 1, {
      enumerable: true,
      get: () => (reads++ === 0 ? frame[1] : Buffer.alloc(1 << 20))
    });
    assert.throws(() => binding.sendFrame(ws._id, list, 0),
      /the frame changed while read/);
    // The connection is still fine.
    const message = waitFor(peer, 'message');
    ws._sender.sendFrame(frame);
    assert.equal(String((await message)[0]), 'ok');
    dispose(ws);
  });

  it('after the close, the callback gets an error', async function () {
    const ws = new WebSocket(url);
    await waitFor(ws, 'open');
    const sender = ws._sender;
    ws.terminate();
    await waitFor(ws, 'close');
    const frame = WebSocket.Sender.frame(Buffer.from('late'),
      { fin: true, mask: true, opcode: 1, readOnly: false, rsv1: false });
    const err = await new Promise((resolve) => sender.sendFrame(frame, resolve));
    assert.ok(err instanceof Error);
  });
});

describe('extension and subprotocol parsers', function () {
  const cases = [
    'foo', 'foo, bar', 'foo; bar', 'foo; bar=1', 'foo;bar="1"',
    'permessage-deflate; client_max_window_bits',
    'permessage-deflate; server_no_context_takeover; client_max_window_bits=10, permessage-deflate',
    'foo; bar="b\\az"', 'foo; bar="\\baz"', 'foo; bar="b\\"', 'foo; bar=""',
    'foo ; bar = 1', 'foo ;bar ,baz', ' foo', 'foo ', '\tfoo', 'foo,', ',foo',
    'foo;', 'foo;;', 'foo;bar=', 'foo;bar="1', 'foo;bar="1" ', 'foo;bar="1"x',
    'foo;bar=1 2', 'foo;bar="a b"', 'foo;bar=é', 'fooé', 'foo;=1', 'foo; a="1";b',
    'a, a, a', 'a; b; b=1; b="2"', '', ' ', 'foo\t,\tbar', 'foo;bar=1,baz',
    '__proto__; constructor=1', 'foo;bar="\\"'
  ];

  it('extension.parse gives ws\'s results and errors', function () {
    for (const header of cases) {
      assert.equal(outcome(WebSocket.extension.parse, header),
        outcome(wsExtension.parse, header), JSON.stringify(header));
    }
  });

  it('extension.parse and subprotocol.parse agree with ws on generated input', function () {
    const next = generator(1234);
    const pieces = ['a', 'bc', ' ', '\t', ';', ',', '=', '"', '\\', 'é', '(',
      'permessage-deflate', 'x=1', '; y', ', z'];
    let parsed = 0;
    for (let n = 0; n < 20000; n++) {
      let header = '';
      for (let len = next(10); len > 0; len--) header += pieces[next(pieces.length)];
      const ours = outcome(WebSocket.extension.parse, header);
      assert.equal(ours, outcome(wsExtension.parse, header), JSON.stringify(header));
      if (!ours.startsWith('SyntaxError')) parsed++;
      assert.equal(outcome(WebSocket.subprotocol.parse, header),
        outcome(wsSubprotocol.parse, header), JSON.stringify(header));
    }
    assert.ok(parsed > 100); // the generator reaches the valid grammar too
  });

  it('extension.format gives ws\'s strings', function () {
    const inputs = [
      {},
      { foo: {} },
      { foo: [{}, {}] },
      { 'permessage-deflate': { client_max_window_bits: true } },
      { 'permessage-deflate': [{ server_no_context_takeover: true, client_max_window_bits: [10, true] }, {}] },
      { a: { b: 1, c: 'x' }, d: [{ e: [true, 2] }] },
      { a: [] },
      { a: { b: [] } }
    ];
    for (const input of inputs) {
      assert.equal(WebSocket.extension.format(input),
        wsExtension.format(input), JSON.stringify(input));
    }
  });

  it('subprotocol.parse gives ws\'s results and errors', function () {
    const headers = ['chat', 'chat, superchat', 'chat,superchat', 'chat ,  b',
      ' chat', 'chat ', 'chat,', ',chat', 'a, a', 'a,\tb', 'a b', 'é', '',
      'graphql-transport-ws', 'a,,b', 'a, b, a'];
    for (const header of headers) {
      assert.equal(outcome(WebSocket.subprotocol.parse, header),
        outcome(wsSubprotocol.parse, header), JSON.stringify(header));
    }
  });
});
