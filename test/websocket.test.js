'use strict';

// The client WebSocket API surface, as ws 8 has it. The peer server is the
// real ws (or a raw TCP server when the bytes matter), so only the client
// under test is exercised.

const assert = require('node:assert/strict');

const { WebSocket, PeerWebSocketServer } = require('./helpers/impl');
const {
  OP,
  acceptRaw,
  createRawServer,
  frame
} = require('./helpers/raw');
const {
  Cleanup,
  delay,
  dispose,
  freePort,
  recordEvents,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const cleanup = new Cleanup();

let wss;
let port;
let url;

/**
 * A client under test plus the matching server-side (peer) WebSocket, both
 * open. Messages the server receives are recorded in `server.received`.
 */
async function connectPair(address = url, protocols, options) {
  const serverSide = new Promise((resolve) => {
    wss.once('connection', (ws, req) => {
      ws.received = [];
      ws.on('message', (data, isBinary) => ws.received.push([data, isBinary]));
      resolve({ ws, req });
    });
  });
  const client = new WebSocket(address, protocols, options);
  const rec = recordEvents(client);
  cleanup.add(() => dispose(client));
  await waitFor(client, 'open');
  const { ws: server, req } = await serverSide;
  cleanup.add(() => dispose(server));
  return { client, server, rec, req };
}

/** Wait until the peer server-side socket has received `n` messages. */
async function received(server, n) {
  while (server.received.length < n) await waitFor(server, 'message');
  return server.received;
}

describe('WebSocket', function () {
  this.timeout(5000);

  before(async function () {
    wss = await startServer(PeerWebSocketServer);
    port = wss.address().port;
    url = `ws://127.0.0.1:${port}`;
  });

  after(async function () {
    await stopServer(wss);
  });

  afterEach(() => cleanup.run());

  describe('constants', function () {
    it('has CONNECTING/OPEN/CLOSING/CLOSED on the class and on instances', async function () {
      assert.equal(WebSocket.CONNECTING, 0);
      assert.equal(WebSocket.OPEN, 1);
      assert.equal(WebSocket.CLOSING, 2);
      assert.equal(WebSocket.CLOSED, 3);

      const { client } = await connectPair();
      assert.equal(client.CONNECTING, 0);
      assert.equal(client.OPEN, 1);
      assert.equal(client.CLOSING, 2);
      assert.equal(client.CLOSED, 3);
    });

    it('exposes WebSocket, WebSocketServer and Server on the export', function () {
      assert.equal(WebSocket.WebSocket, WebSocket);
      assert.equal(typeof WebSocket.WebSocketServer, 'function');
      assert.equal(WebSocket.Server, WebSocket.WebSocketServer);
    });
  });

  describe('readyState and properties', function () {
    it('goes CONNECTING -> OPEN -> CLOSING -> CLOSED', async function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      const rec = recordEvents(ws);
      assert.equal(ws.readyState, WebSocket.CONNECTING);
      await waitFor(ws, 'open');
      assert.equal(ws.readyState, WebSocket.OPEN);
      ws.close();
      assert.equal(ws.readyState, WebSocket.CLOSING);
      await rec.close;
      assert.equal(rec.readyStateAtClose, WebSocket.CLOSED);
      assert.equal(ws.readyState, WebSocket.CLOSED);
      assert.deepEqual(rec.log, ['open', 'close']);
    });

    it('has url, protocol, extensions, binaryType, bufferedAmount and isPaused while connecting', async function () {
      const ws = new WebSocket(`${url}/some/path?x=1`);
      cleanup.add(() => dispose(ws));
      assert.equal(ws.url, `ws://127.0.0.1:${port}/some/path?x=1`);
      assert.equal(ws.protocol, '');
      assert.equal(ws.extensions, '');
      assert.equal(ws.binaryType, 'nodebuffer');
      assert.equal(ws.bufferedAmount, 0);
      assert.equal(ws.isPaused, false);
      await waitFor(ws, 'open');
      assert.equal(ws.protocol, '');
      assert.equal(ws.extensions, '');
      assert.equal(ws.url, `ws://127.0.0.1:${port}/some/path?x=1`);
    });

    it('normalises the url (trailing slash, URL objects, http: -> ws:)', async function () {
      const a = new WebSocket(url);
      const b = new WebSocket(new URL(`${url}/p`));
      const c = new WebSocket(`http://127.0.0.1:${port}/q`);
      for (const ws of [a, b, c]) cleanup.add(() => dispose(ws));
      assert.equal(a.url, `ws://127.0.0.1:${port}/`);
      assert.equal(b.url, `ws://127.0.0.1:${port}/p`);
      assert.equal(c.url, `ws://127.0.0.1:${port}/q`);
      await Promise.all([a, b, c].map((ws) => waitFor(ws, 'open')));
    });

    it('sets protocol to the subprotocol the server selected', async function () {
      const { client, server } = await connectPair(url, ['chat', 'superchat']);
      assert.equal(client.protocol, 'chat');
      assert.equal(server.protocol, 'chat');
    });

    it('accepts a single subprotocol string', async function () {
      const { client, req } = await connectPair(url, 'superchat');
      assert.equal(client.protocol, 'superchat');
      assert.equal(req.headers['sec-websocket-protocol'], 'superchat');
    });

    it('sends the headers and origin options', async function () {
      const { req } = await connectPair(url, [], {
        headers: { 'X-Token': 'abc' },
        origin: 'http://example.org',
        protocolVersion: 13
      });
      assert.equal(req.headers['x-token'], 'abc');
      assert.equal(req.headers.origin, 'http://example.org');
      assert.equal(req.headers['sec-websocket-version'], '13');
    });
  });

  describe('binaryType', function () {
    it('defaults to nodebuffer and accepts the valid values', function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      assert.equal(ws.binaryType, 'nodebuffer');
      for (const type of ['arraybuffer', 'fragments', 'blob', 'nodebuffer']) {
        ws.binaryType = type;
        assert.equal(ws.binaryType, type);
      }
    });

    it('ignores invalid values', function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      ws.binaryType = 'arraybuffer';
      for (const bad of ['foo', '', 'Blob', undefined, null, 1]) {
        ws.binaryType = bad;
        assert.equal(ws.binaryType, 'arraybuffer');
      }
    });

    it('delivers binary data according to binaryType (and text as a Buffer)', async function () {
      const { client, server } = await connectPair();
      const next = () => waitFor(client, 'message');

      let p = next();
      server.send(Buffer.from([1, 2, 3]));
      let [data, isBinary] = await p;
      assert.equal(isBinary, true);
      assert.ok(Buffer.isBuffer(data));
      assert.deepEqual([...data], [1, 2, 3]);

      // Text messages are Buffers in ws 8 whatever the binaryType.
      client.binaryType = 'arraybuffer';
      p = next();
      server.send('text');
      [data, isBinary] = await p;
      assert.equal(isBinary, false);
      assert.ok(Buffer.isBuffer(data));
      assert.equal(data.toString(), 'text');

      p = next();
      server.send(Buffer.from([4, 5]));
      [data, isBinary] = await p;
      assert.equal(isBinary, true);
      assert.ok(data instanceof ArrayBuffer);
      assert.deepEqual([...new Uint8Array(data)], [4, 5]);

      client.binaryType = 'fragments';
      p = next();
      server.send(Buffer.from([6]), { fin: false });
      server.send(Buffer.from([7, 8]), { fin: true });
      [data, isBinary] = await p;
      assert.equal(isBinary, true);
      assert.ok(Array.isArray(data));
      assert.equal(data.length, 2);
      assert.deepEqual([...data[0]], [6]);
      assert.deepEqual([...data[1]], [7, 8]);

      client.binaryType = 'blob';
      p = next();
      server.send(Buffer.from([9, 10]));
      [data, isBinary] = await p;
      assert.equal(isBinary, true);
      assert.ok(data instanceof Blob);
      assert.deepEqual([...new Uint8Array(await data.arrayBuffer())], [9, 10]);
    });
  });

  describe('bufferedAmount', function () {
    it('grows after a large send and is back to 0 in the callback', async function () {
      const { client, server } = await connectPair();
      const size = 16 * 1024 * 1024;
      assert.equal(client.bufferedAmount, 0);
      const sent = new Promise((resolve, reject) => {
        client.send(Buffer.alloc(size), (err) => {
          if (err) reject(err);
          else resolve(client.bufferedAmount);
        });
      });
      assert.ok(
        client.bufferedAmount > 0,
        `bufferedAmount ${client.bufferedAmount} after a 16 MiB send`
      );
      assert.ok(client.bufferedAmount <= size + 14);
      assert.equal(await sent, 0);
      const [[data]] = await received(server, 1);
      assert.equal(data.length, size);
    });

    it('counts data sent after close, and calls back with an error', async function () {
      const { client } = await connectPair();
      client.close();
      await waitFor(client, 'close');
      const before = client.bufferedAmount;
      const [err] = await new Promise((resolve) => {
        client.send('abc', (...args) => resolve(args));
      });
      assert.ok(err instanceof Error);
      assert.equal(err.message, 'WebSocket is not open: readyState 3 (CLOSED)');
      assert.equal(client.bufferedAmount, before + 3);
    });
  });

  describe('pause() and resume()', function () {
    it('are no-ops while connecting', async function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      ws.pause();
      assert.equal(ws.isPaused, false);
      ws.resume();
      assert.equal(ws.isPaused, false);
      await waitFor(ws, 'open');
    });

    it('stop message delivery while paused; messages arrive after resume', async function () {
      const { client, server, rec } = await connectPair();
      client.pause();
      assert.equal(client.isPaused, true);

      await new Promise((resolve) => {
        server.send('a');
        server.send('b');
        server.send('c', resolve);
      });
      // Proving an absence needs a little time: the data is on the wire.
      await delay(100);
      assert.equal(rec.messages.length, 0);

      client.resume();
      assert.equal(client.isPaused, false);
      while (rec.messages.length < 3) await waitFor(client, 'message');
      assert.deepEqual(
        rec.messages.map(([d]) => d.toString()),
        ['a', 'b', 'c']
      );
    });
  });

  describe('send()', function () {
    it('throws while CONNECTING', function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      assert.throws(() => ws.send('x'), {
        name: 'Error',
        message: 'WebSocket is not open: readyState 0 (CONNECTING)'
      });
    });

    it('sends numbers and strings as text, buffers and views as binary', async function () {
      const { client, server } = await connectPair();
      const ab = new Uint8Array([1, 2, 3]).buffer;
      const backing = new Uint8Array([9, 4, 5, 6, 9]);
      client.send(42);
      client.send('héllo');
      client.send(Buffer.from([7, 8]));
      client.send(ab);
      client.send(backing.subarray(1, 4));
      client.send(new DataView(backing.buffer, 2, 2));
      const got = await received(server, 6);
      assert.deepEqual(
        got.map(([d, b]) => [b, [...d]]),
        [
          [false, [...Buffer.from('42')]],
          [false, [...Buffer.from('héllo')]],
          [true, [7, 8]],
          [true, [1, 2, 3]],
          [true, [4, 5, 6]],
          [true, [5, 6]]
        ]
      );
    });

    it('sends an empty binary message when called without data', async function () {
      const { client, server } = await connectPair();
      client.send();
      client.send('');
      const got = await received(server, 2);
      assert.equal(got[0][1], true);
      assert.equal(got[0][0].length, 0);
      assert.equal(got[1][1], false);
      assert.equal(got[1][0].length, 0);
    });

    it('calls the callback once the data is written', async function () {
      const { client } = await connectPair();
      const args = await new Promise((resolve) => {
        client.send('x', (...a) => resolve(a));
      });
      assert.ok(args[0] === undefined || args[0] === null);
    });

    it('honours the binary, fin and mask options on the wire', async function () {
      let serverSide;
      const accepted = new Promise((resolve) => (serverSide = resolve));
      const raw = await createRawServer(async (socket) => {
        serverSide(await acceptRaw(socket));
      });
      cleanup.add(() => raw.close());

      const ws = new WebSocket(raw.url);
      cleanup.add(() => dispose(ws));
      await waitFor(ws, 'open');
      const { reader } = await accepted;

      ws.send('as binary', { binary: true });
      ws.send(Buffer.from('as text'), { binary: false });
      ws.send('frag1-', { fin: false });
      ws.send('frag2-', { fin: false });
      ws.send('frag3', { fin: true });
      ws.send('plain', { mask: false });
      ws.send('masked');

      const frames = [];
      for (let i = 0; i < 7; i++) frames.push(await reader.next());
      const summary = frames.map((f) => [
        f.opcode,
        f.fin,
        f.masked,
        f.payload.toString()
      ]);
      assert.deepEqual(summary, [
        [OP.BINARY, true, true, 'as binary'],
        [OP.TEXT, true, true, 'as text'],
        [OP.TEXT, false, true, 'frag1-'],
        [OP.CONT, false, true, 'frag2-'],
        [OP.CONT, true, true, 'frag3'],
        [OP.TEXT, true, false, 'plain'],
        [OP.TEXT, true, true, 'masked']
      ]);
      for (const f of frames) {
        assert.equal(f.rsv1 || f.rsv2 || f.rsv3, false);
      }
    });

    it('reassembles fragments sent with fin: false into one message', async function () {
      const { client, server } = await connectPair();
      client.send('ab', { fin: false });
      client.send('cd', { fin: false });
      client.send('ef');
      client.send(Buffer.from([1]), { fin: false });
      client.send(Buffer.from([2]));
      const got = await received(server, 2);
      assert.equal(got[0][1], false);
      assert.equal(got[0][0].toString(), 'abcdef');
      assert.equal(got[1][1], true);
      assert.deepEqual([...got[1][0]], [1, 2]);
    });
  });

  describe('ping() and pong()', function () {
    it('throw while CONNECTING', function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      const expected = {
        name: 'Error',
        message: 'WebSocket is not open: readyState 0 (CONNECTING)'
      };
      assert.throws(() => ws.ping(), expected);
      assert.throws(() => ws.pong(), expected);
    });

    it('ping is answered by a pong with the same payload', async function () {
      const { client, server } = await connectPair();
      const serverPing = waitFor(server, 'ping');
      const pong = waitFor(client, 'pong');
      client.ping('hello');
      const [pingData] = await serverPing;
      assert.equal(pingData.toString(), 'hello');
      const [pongData] = await pong;
      assert.ok(Buffer.isBuffer(pongData));
      assert.equal(pongData.toString(), 'hello');
    });

    it('answers a ping from the server automatically and emits "ping"', async function () {
      const { client, server } = await connectPair();
      const ping = waitFor(client, 'ping');
      const pong = waitFor(server, 'pong');
      server.ping(Buffer.from([1, 2, 3]));
      const [pingData] = await ping;
      assert.deepEqual([...pingData], [1, 2, 3]);
      const [pongData] = await pong;
      assert.deepEqual([...pongData], [1, 2, 3]);
    });

    it('sends an unsolicited pong', async function () {
      const { client, server } = await connectPair();
      const pong = waitFor(server, 'pong');
      client.pong('x');
      const [data] = await pong;
      assert.equal(data.toString(), 'x');
    });

    it('throws a RangeError for control payloads above 125 bytes', async function () {
      const { client } = await connectPair();
      const expected = {
        name: 'RangeError',
        message: 'The data size must not be greater than 125 bytes'
      };
      assert.throws(() => client.ping(Buffer.alloc(126)), expected);
      assert.throws(() => client.pong('x'.repeat(126)), expected);
      assert.equal(client.readyState, WebSocket.OPEN);
    });
  });

  describe('close()', function () {
    it('throws a TypeError for an invalid code', async function () {
      const { client } = await connectPair();
      for (const code of [999, 1004, 1005, 1006, 1015, 2999, 5000, '1000']) {
        assert.throws(() => client.close(code), {
          name: 'TypeError',
          message: 'First argument must be a valid error code number'
        });
      }
      assert.equal(client.readyState, WebSocket.OPEN);
    });

    it('throws a RangeError for a reason above 123 bytes', async function () {
      const { client } = await connectPair();
      const expected = {
        name: 'RangeError',
        message: 'The message must not be greater than 123 bytes'
      };
      assert.throws(() => client.close(1000, 'x'.repeat(124)), expected);
      // 62 two-byte characters: 62 characters but 124 bytes.
      assert.throws(() => client.close(1000, 'é'.repeat(62)), expected);
      assert.equal(client.readyState, WebSocket.OPEN);
      client.close(1000, 'x'.repeat(123));
      const [code, reason] = await waitFor(client, 'close');
      assert.equal(code, 1000);
      assert.equal(reason.toString(), 'x'.repeat(123));
    });

    it('completes the closing handshake with code and reason', async function () {
      const { client, server, rec } = await connectPair();
      const serverClose = waitFor(server, 'close');
      client.close(4001, 'bye');
      const [code, reason] = await rec.close;
      assert.equal(code, 4001);
      assert.equal(reason, 'bye');
      const [sCode, sReason] = await serverClose;
      assert.equal(sCode, 4001);
      assert.equal(sReason.toString(), 'bye');
      assert.deepEqual(rec.errors, []);
    });

    it('gives 1005 on both sides when closed without a code', async function () {
      const { client, server, rec } = await connectPair();
      const serverClose = waitFor(server, 'close');
      client.close();
      const [code, reason] = await rec.close;
      assert.equal(code, 1005);
      assert.equal(reason, '');
      assert.equal((await serverClose)[0], 1005);
    });

    it('handles a close started by the server', async function () {
      const { client, server, rec } = await connectPair();
      server.close(1001, 'going away');
      const [code, reason] = await rec.close;
      assert.equal(code, 1001);
      assert.equal(reason, 'going away');
      assert.deepEqual(rec.errors, []);
    });

    it('is a no-op when called again or when CLOSED', async function () {
      const { client, rec } = await connectPair();
      client.close(1000);
      client.close(1000);
      assert.equal(client.readyState, WebSocket.CLOSING);
      await rec.close;
      client.close();
      client.terminate();
      assert.equal(client.readyState, WebSocket.CLOSED);
      assert.deepEqual(rec.log, ['open', 'close']);
    });

    it('during CONNECTING emits an error then close 1006', async function () {
      const raw = await createRawServer(() => {});
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url);
      const rec = recordEvents(ws);
      ws.close();
      assert.equal(ws.readyState, WebSocket.CLOSING);
      assert.deepEqual(rec.log, [], 'the error is emitted asynchronously');
      const err = await rec.error;
      assert.equal(
        err.message,
        'WebSocket was closed before the connection was established'
      );
      const [code, reason] = await rec.close;
      assert.equal(code, 1006);
      assert.equal(reason, '');
      assert.deepEqual(rec.log, ['error', 'close']);
      assert.equal(ws.readyState, WebSocket.CLOSED);
    });

    it('terminate() during CONNECTING behaves like close()', async function () {
      const raw = await createRawServer(() => {});
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url);
      const rec = recordEvents(ws);
      ws.terminate();
      assert.equal(ws.readyState, WebSocket.CLOSING);
      const err = await rec.error;
      assert.equal(
        err.message,
        'WebSocket was closed before the connection was established'
      );
      assert.equal((await rec.close)[0], 1006);
      assert.deepEqual(rec.log, ['error', 'close']);
    });
  });

  describe('terminate()', function () {
    it('destroys the connection: close 1006 on both sides, no error', async function () {
      const { client, server, rec } = await connectPair();
      const serverClose = waitFor(server, 'close');
      client.terminate();
      assert.equal(client.readyState, WebSocket.CLOSING);
      const [code, reason] = await rec.close;
      assert.equal(code, 1006);
      assert.equal(reason, '');
      assert.equal((await serverClose)[0], 1006);
      assert.deepEqual(rec.log, ['open', 'close']);
      assert.equal(client.readyState, WebSocket.CLOSED);
    });
  });

  describe('connection failures', function () {
    it('handshakeTimeout against a silent server: "Opening handshake has timed out"', async function () {
      const raw = await createRawServer(() => {});
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url, { handshakeTimeout: 100 });
      const rec = recordEvents(ws);
      const err = await rec.error;
      assert.equal(err.message, 'Opening handshake has timed out');
      assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
      const [code] = await rec.close;
      assert.equal(code, 1006);
      assert.deepEqual(rec.log, ['error', 'close']);
    });

    it('connection refused: error with code ECONNREFUSED, then close 1006', async function () {
      const p = await freePort();
      const ws = new WebSocket(`ws://127.0.0.1:${p}`);
      const rec = recordEvents(ws);
      const err = await rec.error;
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'ECONNREFUSED');
      assert.match(err.message, /ECONNREFUSED/);
      assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
      const [code, reason] = await rec.close;
      assert.equal(code, 1006);
      assert.equal(reason, '');
      assert.deepEqual(rec.log, ['error', 'close']);
      assert.equal(ws.readyState, WebSocket.CLOSED);
    });
  });

  describe('constructor validation', function () {
    it('throws SyntaxError for invalid URLs', function () {
      assert.throws(() => new WebSocket('not a url'), {
        name: 'SyntaxError',
        message: 'Invalid URL: not a url'
      });
      assert.throws(() => new WebSocket('ftp://127.0.0.1'), {
        name: 'SyntaxError',
        message:
          'The URL\'s protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:"'
      });
      assert.throws(() => new WebSocket('ws://127.0.0.1/#frag'), {
        name: 'SyntaxError',
        message: 'The URL contains a fragment identifier'
      });
    });

    it('throws SyntaxError for invalid or duplicated subprotocols', function () {
      for (const protocols of [
        ['chat', 'chat'],
        'a b',
        '',
        ['ok', 'bad,comma'],
        ['ok', 1],
        ['(x)']
      ]) {
        assert.throws(() => new WebSocket(url, protocols), {
          name: 'SyntaxError',
          message: 'An invalid or duplicated subprotocol was specified'
        });
      }
    });

    it('throws RangeError for an unsupported protocolVersion', function () {
      assert.throws(() => new WebSocket(url, { protocolVersion: 12 }), {
        name: 'RangeError',
        message: 'Unsupported protocol version: 12 (supported versions: 8, 13)'
      });
    });
  });

  describe('on<event> attributes', function () {
    it('are null by default, settable, replaceable and clearable', async function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      for (const name of ['onopen', 'onmessage', 'onclose', 'onerror']) {
        assert.equal(ws[name], null);
        const f = () => {};
        const g = () => {};
        ws[name] = f;
        assert.equal(ws[name], f);
        ws[name] = g;
        assert.equal(ws[name], g);
        assert.equal(ws.listenerCount(name.slice(2)), 1);
        ws[name] = 'not a function';
        assert.equal(ws[name], null);
        ws[name] = g;
        ws[name] = null;
        assert.equal(ws[name], null);
        assert.equal(ws.listenerCount(name.slice(2)), 0);
      }
      await waitFor(ws, 'open');
    });

    it('deliver Event, MessageEvent and CloseEvent objects', async function () {
      const serverSide = waitFor(wss, 'connection');
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      const events = [];
      let onOpenThis;
      ws.onopen = function (ev) {
        onOpenThis = this;
        events.push(ev);
      };
      ws.onmessage = (ev) => events.push(ev);
      const closed = new Promise((resolve) => {
        ws.onclose = (ev) => {
          events.push(ev);
          resolve();
        };
      });
      const [server] = await serverSide;
      await waitFor(ws, 'open');
      server.send('text');
      server.send(Buffer.from([1, 2]));
      while (events.length < 3) await waitFor(ws, 'message');
      server.close(4000, 'done');
      await closed;

      const [open, text, binary, close] = events;
      assert.equal(open.type, 'open');
      assert.equal(open.target, ws);
      assert.equal(onOpenThis, ws);

      assert.equal(text.type, 'message');
      assert.equal(text.target, ws);
      assert.equal(text.data, 'text', 'text data is a string in MessageEvent');

      assert.equal(binary.type, 'message');
      assert.ok(Buffer.isBuffer(binary.data));
      assert.deepEqual([...binary.data], [1, 2]);

      assert.equal(close.type, 'close');
      assert.equal(close.target, ws);
      assert.equal(close.code, 4000);
      assert.equal(close.reason, 'done');
      assert.equal(close.wasClean, true);
    });

    it('onerror gets an ErrorEvent and onclose a CloseEvent with wasClean false', async function () {
      const p = await freePort();
      const ws = new WebSocket(`ws://127.0.0.1:${p}`);
      const got = new Promise((resolve) => {
        const evs = [];
        ws.onerror = (ev) => evs.push(ev);
        ws.onclose = (ev) => {
          evs.push(ev);
          resolve(evs);
        };
      });
      const [error, close] = await got;
      assert.equal(error.type, 'error');
      assert.equal(error.target, ws);
      assert.ok(error.error instanceof Error);
      assert.equal(error.error.code, 'ECONNREFUSED');
      assert.equal(error.message, error.error.message);
      assert.equal(close.type, 'close');
      assert.equal(close.code, 1006);
      assert.equal(close.reason, '');
      assert.equal(close.wasClean, false);
    });
  });

  describe('addEventListener() and removeEventListener()', function () {
    it('wraps events, ignores duplicates and supports removal', async function () {
      const { client, server } = await connectPair();
      const calls = [];
      const onMessage = (ev) => calls.push(['a', ev.data]);
      const other = (ev) => calls.push(['b', ev.data]);
      client.addEventListener('message', onMessage);
      client.addEventListener('message', onMessage);
      client.addEventListener('message', other);
      assert.equal(client.listenerCount('message'), 3); // 2 + the recorder

      server.send('one');
      await waitFor(client, 'message');
      client.removeEventListener('message', onMessage);
      server.send('two');
      await waitFor(client, 'message');
      assert.deepEqual(calls, [
        ['a', 'one'],
        ['b', 'one'],
        ['b', 'two']
      ]);
    });

    it('supports the once option', async function () {
      const { client, server, rec } = await connectPair();
      const calls = [];
      client.addEventListener('message', (ev) => calls.push(ev.data), {
        once: true
      });
      assert.equal(client.listenerCount('message'), 2);
      server.send('1');
      server.send('2');
      while (rec.messages.length < 2) await waitFor(client, 'message');
      assert.deepEqual(calls, ['1']);
      assert.equal(client.listenerCount('message'), 1);
    });

    it('supports handleEvent objects', async function () {
      const { client, server } = await connectPair();
      const listener = {
        got: [],
        handleEvent(ev) {
          assert.equal(this, listener);
          this.got.push(ev.data);
        }
      };
      client.addEventListener('message', listener);
      server.send('hi');
      await waitFor(client, 'message');
      assert.deepEqual(listener.got, ['hi']);
      client.removeEventListener('message', listener);
      server.send('again');
      await waitFor(client, 'message');
      assert.deepEqual(listener.got, ['hi']);
    });

    it('gives CloseEvent, ErrorEvent and open Event to listeners', async function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      const seen = [];
      ws.addEventListener('open', (ev) => seen.push(ev.type));
      ws.addEventListener('error', (ev) => seen.push([ev.type, ev.message]));
      const closed = new Promise((resolve) =>
        ws.addEventListener('close', resolve)
      );
      await waitFor(ws, 'open');
      ws.close(1000, 'ok');
      const ev = await closed;
      assert.equal(ev.code, 1000);
      assert.equal(ev.reason, 'ok');
      assert.equal(ev.wasClean, true);
      assert.deepEqual(seen, ['open']);
    });

    it('ignores unknown event types', function () {
      const ws = new WebSocket(url);
      cleanup.add(() => dispose(ws));
      ws.addEventListener('foo', () => {});
      assert.equal(ws.listenerCount('foo'), 0);
    });
  });

  describe('EventEmitter API', function () {
    it("emits 'message' with (Buffer, isBinary) and 'close' with (code, Buffer reason)", async function () {
      const { client, server } = await connectPair();
      const msg = waitFor(client, 'message');
      server.send('héllo');
      const [data, isBinary] = await msg;
      assert.ok(Buffer.isBuffer(data));
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'héllo');

      const closed = waitFor(client, 'close');
      server.close(1000, 'r');
      const [code, reason] = await closed;
      assert.equal(code, 1000);
      assert.ok(Buffer.isBuffer(reason));
      assert.equal(reason.toString(), 'r');
    });

    // A message listener that throws leaves ws's receiver unable to finish
    // (its 'close' never comes), so the throwing listener used here is
    // 'open', after which the connection must still work normally.
    it('surfaces an exception thrown by an open listener as uncaught', async function () {
      const serverSide = waitFor(wss, 'connection');
      const saved = process.listeners('uncaughtException');
      process.removeAllListeners('uncaughtException');
      let ws;
      let caught;
      try {
        caught = await new Promise((resolve) => {
          process.once('uncaughtException', resolve);
          ws = new WebSocket(url);
          cleanup.add(() => dispose(ws));
          ws.once('open', () => {
            throw new Error('listener boom');
          });
        });
      } finally {
        process.removeAllListeners('uncaughtException');
        for (const l of saved) process.on('uncaughtException', l);
      }
      assert.equal(caught.message, 'listener boom');
      assert.equal(ws.readyState, WebSocket.OPEN);

      const [server] = await serverSide;
      server.on('message', (data) => server.send(data));
      const echo = waitFor(ws, 'message');
      ws.send('after');
      assert.equal((await echo)[0].toString(), 'after');
      ws.close(1000);
      assert.equal((await waitFor(ws, 'close'))[0], 1000);
    });
  });
});
