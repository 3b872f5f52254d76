'use strict';

// A real ws client against our server (the implementation under test).
//
// `ours` is always the server-side WebSocket our server hands to 'connection';
// `peer` is the real ws client. Every test checks both what our side observes
// and what the real peer observes.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { once } = require('node:events');
const { setTimeout: delay } = require('node:timers/promises');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket
} = require('./helpers/impl');
const {
  Tracker,
  binaryFrameHeader,
  closed,
  echo,
  next,
  recordErrors,
  sha256,
  transfer
} = require('./helpers/interop');

const SIZES = [125, 126, 65535, 65536, 16 * 1024 * 1024];
const UTF8_TEXT = 'héllo wörld — ñandú — 日本語のテキスト — Ελληνικά — 🎉🚀𝄞';

describe('interop: real ws client <-> our server', function () {
  let t;

  beforeEach(function () {
    t = new Tracker();
  });

  afterEach(function () {
    return t.cleanup();
  });

  // Starts our server and opens one connection to it with a real client.
  async function connect(path = '/', protocols, options, serverOptions) {
    const { wss, url } = await t.listen(WebSocketServer, serverOptions);
    const connection = next(wss, 'connection');
    const peer = t.socket(new PeerWebSocket(url + path, protocols, options));
    await once(peer, 'open');
    const [ours, req] = await connection;
    return { ours, peer, req, wss, url };
  }

  describe('messages', function () {
    it('text in both directions', async function () {
      const { ours, peer } = await connect();

      let m = await transfer(peer, ours, 'hello from ws');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data), 'text arrives as a Buffer');
      assert.equal(m.data.toString(), 'hello from ws');

      m = await transfer(ours, peer, 'hello from the native server');
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'hello from the native server');
    });

    it('binary in both directions', async function () {
      const { ours, peer } = await connect();
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x7f]);

      let m = await transfer(peer, ours, bytes);
      assert.equal(m.isBinary, true);
      assert.ok(Buffer.isBuffer(m.data));
      assert.deepEqual(m.data, bytes);

      m = await transfer(ours, peer, bytes);
      assert.equal(m.isBinary, true);
      assert.deepEqual(m.data, bytes);
    });

    it('empty text and empty binary messages in both directions', async function () {
      const { ours, peer } = await connect();

      for (const [from, to] of [
        [peer, ours],
        [ours, peer]
      ]) {
        let m = await transfer(from, to, '');
        assert.equal(m.isBinary, false);
        assert.ok(Buffer.isBuffer(m.data));
        assert.equal(m.data.length, 0);

        m = await transfer(from, to, Buffer.alloc(0));
        assert.equal(m.isBinary, true);
        assert.ok(Buffer.isBuffer(m.data));
        assert.equal(m.data.length, 0);
      }
    });

    it('multi-byte UTF-8 text, byte-exact, in both directions', async function () {
      const { ours, peer } = await connect();
      // The large one spans many TCP reads, so characters get split between
      // reads and must still validate.
      const texts = [UTF8_TEXT, UTF8_TEXT.repeat(12000)];

      for (const text of texts) {
        const expected = Buffer.from(text);

        let m = await transfer(peer, ours, text);
        assert.equal(m.isBinary, false);
        assert.equal(m.data.length, expected.length);
        assert.ok(m.data.equals(expected));
        assert.equal(m.data.toString(), text);

        m = await transfer(ours, peer, text);
        assert.equal(m.isBinary, false);
        assert.equal(m.data.length, expected.length);
        assert.ok(m.data.equals(expected));
      }
    });

    describe('payload sizes', function () {
      for (const size of SIZES) {
        it(`${size} bytes in both directions, byte-exact`, async function () {
          const { ours, peer } = await connect();
          const payload = crypto.randomBytes(size);
          const hash = sha256(payload);

          let m = await transfer(peer, ours, payload);
          assert.equal(m.isBinary, true);
          assert.ok(Buffer.isBuffer(m.data));
          assert.equal(m.data.length, size);
          assert.equal(sha256(m.data), hash);

          m = await transfer(ours, peer, payload);
          assert.equal(m.isBinary, true);
          assert.equal(m.data.length, size);
          assert.equal(sha256(m.data), hash);
        });
      }
    });

    it('sends ArrayBuffers, typed arrays and DataViews as their bytes', async function () {
      const { ours, peer } = await connect();
      const backing = crypto.randomBytes(64);
      const arrayBuffer = backing.buffer.slice(
        backing.byteOffset,
        backing.byteOffset + backing.length
      );
      const cases = [
        ['ArrayBuffer', arrayBuffer, Buffer.from(arrayBuffer)],
        [
          'Uint8Array view with an offset',
          new Uint8Array(arrayBuffer, 3, 17),
          Buffer.from(arrayBuffer, 3, 17)
        ],
        [
          'Uint16Array',
          new Uint16Array([1, 0x0203, 0xffff]),
          Buffer.from(new Uint16Array([1, 0x0203, 0xffff]).buffer)
        ],
        [
          'Float64Array view with an offset',
          new Float64Array(arrayBuffer, 8, 3),
          Buffer.from(arrayBuffer, 8, 24)
        ],
        [
          'DataView with an offset',
          new DataView(arrayBuffer, 5, 20),
          Buffer.from(arrayBuffer, 5, 20)
        ],
        ['Buffer slice', backing.subarray(10, 30), backing.subarray(10, 30)]
      ];

      for (const [name, data, expected] of cases) {
        const m = await transfer(ours, peer, data);
        assert.equal(m.isBinary, true, name);
        assert.deepEqual(m.data, expected, name);
      }
    });

    it('the binary option overrides the type', async function () {
      const { ours, peer } = await connect();

      let m = await transfer(ours, peer, 'as binary', { binary: true });
      assert.equal(m.isBinary, true);
      assert.equal(m.data.toString(), 'as binary');

      m = await transfer(ours, peer, Buffer.from('as text'), { binary: false });
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'as text');
    });

    it('keeps order and boundaries of many back-to-back messages', async function () {
      const { ours, peer } = await connect();
      const count = 200;
      const sizes = Array.from({ length: count }, (_, i) => (i * 997) % 70000);
      const payloads = sizes.map((size) => crypto.randomBytes(size));

      for (const [from, to] of [
        [peer, ours],
        [ours, peer]
      ]) {
        const received = [];
        const done = new Promise((resolve) => {
          to.on('message', function onMessage(data) {
            received.push(data);
            if (received.length === count) {
              to.off('message', onMessage);
              resolve();
            }
          });
        });
        for (const payload of payloads) from.send(payload);
        await done;
        received.forEach((data, i) => {
          assert.equal(data.length, payloads[i].length, `message ${i}`);
          assert.ok(data.equals(payloads[i]), `message ${i}`);
        });
      }
    });

    it("a message sent from the 'connection' listener reaches the client", async function () {
      const { wss, url } = await t.listen(WebSocketServer);
      wss.on('connection', (ws) => {
        assert.equal(ws.readyState, WebSocket.OPEN);
        ws.send('welcome');
      });
      const peer = t.socket(new PeerWebSocket(url));
      const [data, isBinary] = await next(peer, 'message');
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'welcome');
    });

    it("messages sent by the client right on 'open' reach a listener added in 'connection'", async function () {
      const { wss, url } = await t.listen(WebSocketServer);
      const received = new Promise((resolve) => {
        wss.on('connection', (ws) => {
          const messages = [];
          ws.on('message', (data) => {
            messages.push(data.toString());
            if (messages.length === 2) resolve(messages);
          });
        });
      });
      const peer = t.socket(new PeerWebSocket(url));
      peer.on('open', () => {
        peer.send('first');
        peer.send('second');
      });
      assert.deepEqual(await received, ['first', 'second']);
    });
  });

  describe('fragmentation', function () {
    it('reassembles a text message fragmented by the peer', async function () {
      const { ours, peer } = await connect();
      const message = next(ours, 'message');

      peer.send('Hel', { fin: false });
      peer.send('lo, ', { fin: false });
      peer.send('wörld', { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'Hello, wörld');
    });

    it('accepts a UTF-8 character split across fragments', async function () {
      const { ours, peer } = await connect();
      const bytes = Buffer.from('a🎉b');
      const message = next(ours, 'message');

      peer.send(bytes.subarray(0, 3), { binary: false, fin: false });
      peer.send(bytes.subarray(3), { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'a🎉b');
    });

    it('reassembles a binary message fragmented by the peer, with a ping in between', async function () {
      const { ours, peer } = await connect();
      const order = [];
      ours.on('ping', (data) => order.push(`ping:${data}`));
      const message = new Promise((resolve) => {
        ours.once('message', (data, isBinary) => {
          order.push('message');
          resolve([data, isBinary]);
        });
      });

      peer.send(Buffer.from('abc'), { fin: false });
      peer.ping('in the middle');
      peer.send(Buffer.from('def'), { fin: false });
      peer.send(Buffer.from('ghi'), { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, true);
      assert.equal(data.toString(), 'abcdefghi');
      assert.deepEqual(order, ['ping:in the middle', 'message']);
    });

    it('our fragmented messages are reassembled by the peer', async function () {
      const { ours, peer } = await connect();

      let message = next(peer, 'message');
      ours.send('Hel', { fin: false });
      ours.send('lo, ', { fin: false });
      ours.send('wörld', { fin: true });
      let [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'Hello, wörld');

      message = next(peer, 'message');
      ours.send(Buffer.from([1, 2]), { fin: false });
      ours.ping('in the middle');
      ours.send(Buffer.from([3]), { fin: false });
      ours.send(Buffer.from([4, 5]), { fin: true });
      [data, isBinary] = await message;
      assert.equal(isBinary, true);
      assert.deepEqual(data, Buffer.from([1, 2, 3, 4, 5]));
    });

    it('large fragmented messages are byte-exact in both directions', async function () {
      const { ours, peer } = await connect();
      const parts = [1, 2, 3].map(() => crypto.randomBytes(1024 * 1024));
      const hash = sha256(Buffer.concat(parts));

      for (const [from, to] of [
        [peer, ours],
        [ours, peer]
      ]) {
        const message = next(to, 'message');
        parts.forEach((part, i) => from.send(part, { fin: i === 2 }));
        const [data, isBinary] = await message;
        assert.equal(isBinary, true);
        assert.equal(data.length, 3 * 1024 * 1024);
        assert.equal(sha256(data), hash);
      }
    });
  });

  describe('binaryType', function () {
    it("defaults to 'nodebuffer'", async function () {
      const { ours } = await connect();
      assert.equal(ours.binaryType, 'nodebuffer');
    });

    it("'arraybuffer' delivers binary messages as ArrayBuffers, text still as Buffers", async function () {
      const { ours, peer } = await connect();
      ours.binaryType = 'arraybuffer';
      assert.equal(ours.binaryType, 'arraybuffer');
      const bytes = crypto.randomBytes(70000);

      let m = await transfer(peer, ours, bytes);
      assert.equal(m.isBinary, true);
      assert.ok(m.data instanceof ArrayBuffer);
      assert.equal(m.data.byteLength, bytes.length);
      assert.ok(Buffer.from(m.data).equals(bytes));

      m = await transfer(peer, ours, 'text');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data));
      assert.equal(m.data.toString(), 'text');
    });

    it("'fragments' delivers an array with the payload of each non-empty frame", async function () {
      const { ours, peer } = await connect();
      ours.binaryType = 'fragments';

      let message = next(ours, 'message');
      peer.send(Buffer.from('abc'), { fin: false });
      peer.send(Buffer.alloc(0), { fin: false });
      peer.send(Buffer.from('def'), { fin: false });
      peer.send(Buffer.from('ghi'), { fin: true });
      let [data, isBinary] = await message;
      assert.equal(isBinary, true);
      assert.ok(Array.isArray(data));
      assert.ok(data.every((part) => Buffer.isBuffer(part)));
      // ws leaves empty fragments out of the array.
      assert.deepEqual(
        data.map((part) => part.toString()),
        ['abc', 'def', 'ghi']
      );

      ({ data, isBinary } = await transfer(peer, ours, Buffer.from('one')));
      assert.equal(isBinary, true);
      assert.deepEqual(data, [Buffer.from('one')]);

      message = next(ours, 'message');
      peer.send('te', { fin: false });
      peer.send('xt', { fin: true });
      [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.ok(Buffer.isBuffer(data), 'text is still one Buffer');
      assert.equal(data.toString(), 'text');
    });

    it('can be changed between messages', async function () {
      const { ours, peer } = await connect();
      const bytes = Buffer.from([9, 8, 7]);

      let m = await transfer(peer, ours, bytes);
      assert.ok(Buffer.isBuffer(m.data));

      ours.binaryType = 'arraybuffer';
      m = await transfer(peer, ours, bytes);
      assert.ok(m.data instanceof ArrayBuffer);
      assert.ok(Buffer.from(m.data).equals(bytes));

      ours.binaryType = 'fragments';
      m = await transfer(peer, ours, bytes);
      assert.deepEqual(m.data, [bytes]);

      ours.binaryType = 'nodebuffer';
      m = await transfer(peer, ours, bytes);
      assert.deepEqual(m.data, bytes);
    });
  });

  describe('ping and pong', function () {
    it("the peer's ping is answered automatically (autoPong) and emitted as 'ping'", async function () {
      const { ours, peer } = await connect();
      const ping = next(ours, 'ping');
      const pong = next(peer, 'pong');

      peer.ping('are you there?');

      const [pingData] = await ping;
      assert.ok(Buffer.isBuffer(pingData));
      assert.equal(pingData.toString(), 'are you there?');
      const [pongData] = await pong;
      assert.equal(pongData.toString(), 'are you there?');
    });

    it("our ping reaches the peer and its pong is emitted as 'pong'", async function () {
      const { ours, peer } = await connect();
      const payload = crypto.randomBytes(125);
      const ping = next(peer, 'ping');
      const pong = next(ours, 'pong');
      let pingCallback;
      const pingWritten = new Promise((resolve) => {
        pingCallback = resolve;
      });

      ours.ping(payload, undefined, pingCallback);

      assert.equal(await pingWritten, null);
      const [pingData] = await ping;
      assert.deepEqual(pingData, payload);
      const [pongData] = await pong;
      assert.ok(Buffer.isBuffer(pongData));
      assert.deepEqual(pongData, payload);
    });

    it('pings and pongs without payload carry an empty Buffer', async function () {
      const { ours, peer } = await connect();

      let events = [next(ours, 'ping'), next(peer, 'pong')];
      peer.ping();
      for (const [data] of await Promise.all(events)) {
        assert.ok(Buffer.isBuffer(data));
        assert.equal(data.length, 0);
      }

      events = [next(peer, 'ping'), next(ours, 'pong')];
      ours.ping();
      for (const [data] of await Promise.all(events)) {
        assert.ok(Buffer.isBuffer(data));
        assert.equal(data.length, 0);
      }
    });

    it('an unsolicited pong reaches the peer', async function () {
      const { ours, peer } = await connect();
      const pong = next(peer, 'pong');

      ours.pong('unsolicited');

      const [data] = await pong;
      assert.equal(data.toString(), 'unsolicited');
    });

    it('with autoPong: false a ping is emitted but not answered', async function () {
      const { ours, peer } = await connect('/', undefined, undefined, {
        autoPong: false
      });
      const pongs = [];
      peer.on('pong', (data) => pongs.push(data.toString()));
      ours.on('message', () => ours.send('ack'));
      const ping = next(ours, 'ping');
      const ack = next(peer, 'message');

      peer.ping('no answer expected');
      peer.send('then this');

      const [pingData] = await ping;
      assert.equal(pingData.toString(), 'no answer expected');
      // Frames arrive in order: an automatic pong would precede the ack.
      const [ackData] = await ack;
      assert.equal(ackData.toString(), 'ack');
      assert.deepEqual(pongs, []);
    });
  });

  describe('closing handshake', function () {
    it('we close with a code and reason: both sides see them', async function () {
      const { ours, peer } = await connect();
      assert.equal(ours.readyState, WebSocket.OPEN);

      ours.close(4000, 'we are done');
      assert.equal(ours.readyState, WebSocket.CLOSING);

      const [mine, theirs] = await Promise.all([closed(ours), closed(peer)]);
      assert.equal(theirs.code, 4000);
      assert.equal(theirs.reason.toString(), 'we are done');
      assert.equal(mine.code, 4000);
      assert.ok(Buffer.isBuffer(mine.reason));
      assert.equal(mine.reason.toString(), 'we are done');
      assert.equal(ours.readyState, WebSocket.CLOSED);
    });

    it('the peer closes with a code and reason: both sides see them', async function () {
      const { ours, peer } = await connect();
      const closeEvent = new Promise((resolve) => {
        ours.once('close', (code, reason) =>
          resolve({ code, reason, readyState: ours.readyState })
        );
      });

      peer.close(1001, 'going away');

      const mine = await closeEvent;
      assert.equal(mine.code, 1001);
      assert.ok(Buffer.isBuffer(mine.reason));
      assert.equal(mine.reason.toString(), 'going away');
      assert.equal(mine.readyState, WebSocket.CLOSED);
      const theirs = await closed(peer);
      assert.equal(theirs.code, 1001);
      assert.equal(theirs.reason.toString(), 'going away');
    });

    it('a multi-byte UTF-8 reason survives in both directions', async function () {
      const reason = 'adiós 👋 日本';
      let { ours, peer } = await connect();
      ours.close(1000, reason);
      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }

      ({ ours, peer } = await connect());
      peer.close(1000, reason);
      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }
    });

    it('we close without a code: both sides see 1005 and an empty reason', async function () {
      const { ours, peer } = await connect();

      ours.close();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    });

    it('the peer closes without a code: both sides see 1005', async function () {
      const { ours, peer } = await connect();

      peer.close();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.equal(result.reason.length, 0);
      }
    });

    it('a code without a reason gives an empty reason', async function () {
      const { ours, peer } = await connect();

      ours.close(1000);

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    });

    it('messages sent before close() are delivered before the close', async function () {
      const { ours, peer } = await connect();
      const received = [];
      peer.on('message', (data) => received.push(data.toString()));

      ours.send('one');
      ours.send('two');
      ours.close(1000, 'after two');

      const theirs = await closed(peer);
      assert.deepEqual(received, ['one', 'two']);
      assert.equal(theirs.code, 1000);
      await closed(ours);
    });
  });

  describe('terminate and abrupt disconnection', function () {
    it('our terminate(): both sides see 1006', async function () {
      const { ours, peer } = await connect();
      const errors = recordErrors(ours);

      ours.terminate();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1006);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
      assert.equal(ours.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer terminates: we see 1006 and no error', async function () {
      const { ours, peer } = await connect();
      const errors = recordErrors(ours);

      peer.terminate();

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(mine.reason.length, 0);
      assert.equal(ours.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer vanishes in the middle of a large message: we see 1006', async function () {
      const { ours, peer } = await connect();
      const errors = recordErrors(ours);
      const messages = [];
      ours.on('message', (data) => messages.push(data));

      // A masked frame announcing 16 MiB of which 1 MiB is sent, then the
      // peer's TCP socket is destroyed. (The all-zero masking key leaves the
      // payload as it is.)
      const partial = Buffer.concat([
        binaryFrameHeader(16 * 1024 * 1024, true),
        crypto.randomBytes(1024 * 1024)
      ]);
      peer._socket.write(partial, () => peer._socket.destroy());

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(mine.reason.length, 0);
      assert.deepEqual(messages, []);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer vanishes while we are sending a large message: we see 1006', async function () {
      const { ours, peer } = await connect();
      recordErrors(ours);
      const firstBytes = next(peer._socket, 'data');

      ours.send(crypto.randomBytes(16 * 1024 * 1024));
      await firstBytes;
      peer._socket.destroy();

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(ours.readyState, WebSocket.CLOSED);
    });
  });

  describe('send callbacks and sending after close', function () {
    it('calls each send callback once, with null, in order, once written', async function () {
      const { ours, peer } = await connect();
      const sizes = [1, 1024, 16 * 1024 * 1024, 3];
      const received = [];
      const allReceived = new Promise((resolve) => {
        peer.on('message', (data) => {
          received.push(data.length);
          if (received.length === sizes.length) resolve();
        });
      });
      const calls = [];
      const allWritten = new Promise((resolve) => {
        sizes.forEach((size, i) => {
          ours.send(crypto.randomBytes(size), (err) => {
            calls.push([i, err]);
            if (i === sizes.length - 1) resolve();
          });
        });
      });
      assert.ok(
        ours.bufferedAmount >= 16 * 1024 * 1024,
        `bufferedAmount right after queueing 16 MiB is ${ours.bufferedAmount}`
      );

      await allWritten;
      assert.deepEqual(calls, [
        [0, null],
        [1, null],
        [2, null],
        [3, null]
      ]);

      await allReceived;
      assert.deepEqual(received, sizes);
      assert.equal(ours.bufferedAmount, 0);
      assert.equal(calls.length, sizes.length, 'no callback ran twice');
    });

    it('send/ping/pong after close() call back with an error, asynchronously', async function () {
      const { ours } = await connect();
      ours.close();
      assert.equal(ours.readyState, WebSocket.CLOSING);

      const results = [];
      let returned = false;
      const callbacks = ['send', 'ping', 'pong'].map(
        (method) =>
          new Promise((resolve) => {
            ours[method]('late', (err) => {
              results.push([method, returned]);
              resolve(err);
            });
          })
      );
      returned = true;

      for (const err of await Promise.all(callbacks)) {
        assert.ok(err instanceof Error);
        assert.equal(err.message, 'WebSocket is not open: readyState 2 (CLOSING)');
      }
      assert.deepEqual(results, [
        ['send', true],
        ['ping', true],
        ['pong', true]
      ]);

      await closed(ours);
      const err = await new Promise((resolve) => ours.send('later', resolve));
      assert.ok(err instanceof Error);
      assert.equal(err.message, 'WebSocket is not open: readyState 3 (CLOSED)');

      // Without a callback, sending after close is silently ignored.
      ours.send('ignored');
      ours.ping();
      ours.pong();
    });
  });

  describe('pause and resume', function () {
    it('holds messages back while paused and delivers them on resume()', async function () {
      const { ours, peer } = await connect();
      const received = [];
      ours.on('message', (data) => received.push(data.toString()));
      assert.equal(ours.isPaused, false);

      ours.pause();
      assert.equal(ours.isPaused, true);
      await new Promise((resolve) => peer.send('while paused', resolve));
      // Nothing can be awaited for "no message": allow one a moment to
      // (wrongly) arrive.
      await delay(100);
      assert.deepEqual(received, []);

      const message = next(ours, 'message');
      ours.resume();
      assert.equal(ours.isPaused, false);
      await message;
      assert.deepEqual(received, ['while paused']);
    });
  });

  describe('subprotocols', function () {
    it('picks the first offered protocol by default', async function () {
      const { ours, peer } = await connect('/', ['chat', 'superchat']);
      assert.equal(ours.protocol, 'chat');
      assert.equal(peer.protocol, 'chat');
    });

    it('picks with handleProtocols(protocols, req)', async function () {
      const calls = [];
      const { ours, peer } = await connect('/room', ['chat', 'superchat'], {}, {
        handleProtocols: (protocols, req) => {
          calls.push([protocols instanceof Set, [...protocols], req.url]);
          return 'superchat';
        }
      });
      assert.deepEqual(calls, [[true, ['chat', 'superchat'], '/room']]);
      assert.equal(ours.protocol, 'superchat');
      assert.equal(peer.protocol, 'superchat');
    });

    it("is '' when the client offers none (handleProtocols is not called)", async function () {
      let called = false;
      const { ours, peer } = await connect('/', undefined, undefined, {
        handleProtocols: () => {
          called = true;
          return 'chat';
        }
      });
      assert.equal(called, false);
      assert.equal(ours.protocol, '');
      assert.equal(peer.protocol, '');
    });

    it('handleProtocols returning false sends no protocol: the client fails', async function () {
      const { url } = await t.listen(WebSocketServer, {
        handleProtocols: () => false
      });
      const peer = t.socket(new PeerWebSocket(url, ['chat']));
      const errors = recordErrors(peer);

      const result = await closed(peer);
      assert.equal(result.code, 1006);
      assert.equal(errors.errors[0].message, 'Server sent no subprotocol');
    });
  });

  describe("the 'connection' request", function () {
    it('carries method, url, headers, origin and the peer address', async function () {
      const { ours, peer, req, url } = await connect(
        '/chat/room?id=42&x=%20y',
        undefined,
        {
          headers: { 'X-Custom-Header': 'custom value', Cookie: 'a=b' },
          origin: 'http://example.test'
        }
      );

      assert.equal(req.method, 'GET');
      assert.equal(req.url, '/chat/room?id=42&x=%20y');
      assert.equal(req.headers['x-custom-header'], 'custom value');
      assert.equal(req.headers.cookie, 'a=b');
      assert.equal(req.headers.origin, 'http://example.test');
      assert.equal(req.headers['sec-websocket-version'], '13');
      assert.equal(req.headers.host, new URL(url).host);
      assert.equal(req.headers.upgrade, 'websocket');
      assert.equal(req.headers.connection, 'Upgrade');
      assert.match(req.headers['sec-websocket-key'], /^[+/0-9A-Za-z]{22}==$/);
      assert.equal(req.socket.remoteAddress, '127.0.0.1');
      assert.equal(req.socket.remotePort, peer._socket.localPort);

      // ws offers permessage-deflate by default; it is declined.
      assert.match(req.headers['sec-websocket-extensions'], /permessage-deflate/);
      assert.equal(ours.extensions, '');
      assert.equal(peer.extensions, '');
    });
  });

  describe('server path option', function () {
    let server;

    beforeEach(async function () {
      server = await t.listen(WebSocketServer, { path: '/ws' });
    });

    it('accepts the path, with or without a query', async function () {
      for (const path of ['/ws', '/ws?token=abc']) {
        const connection = next(server.wss, 'connection');
        const peer = t.socket(new PeerWebSocket(server.url + path));
        await once(peer, 'open');
        const [ours, req] = await connection;
        assert.equal(req.url, path);
        peer.close();
        await Promise.all([closed(peer), closed(ours)]);
      }
    });

    it("a wrong path: the client gets 'Unexpected server response: 400', no 'connection'", async function () {
      let connections = 0;
      server.wss.on('connection', () => connections++);
      const peer = t.socket(new PeerWebSocket(`${server.url}/other`));
      const errors = recordErrors(peer);

      const result = await closed(peer);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Unexpected server response: 400');
      assert.equal(connections, 0);
      assert.equal(server.wss.clients.size, 0);
    });

    it("a wrong path: 'unexpected-response' gets a 400 response", async function () {
      const peer = t.socket(new PeerWebSocket(`${server.url}/ws/deeper`));
      const errors = recordErrors(peer);

      const [, res] = await next(peer, 'unexpected-response');
      assert.equal(res.statusCode, 400);
      const body = [];
      res.on('data', (chunk) => body.push(chunk));
      await once(res, 'end');
      assert.equal(Buffer.concat(body).toString(), 'Bad Request');

      peer.terminate();
      await closed(peer);
      assert.deepEqual(errors.order, ['error', 'close']);
    });
  });

  describe('maxPayload on our side', function () {
    it('accepts a message of exactly maxPayload bytes', async function () {
      const { ours, peer } = await connect('/', undefined, undefined, {
        maxPayload: 1024
      });
      const m = await transfer(peer, ours, Buffer.alloc(1024, 1));
      assert.equal(m.data.length, 1024);
    });

    it('a larger message: RangeError WS_ERR_UNSUPPORTED_MESSAGE_LENGTH here, 1009 at the peer', async function () {
      const { ours, peer } = await connect('/', undefined, undefined, {
        maxPayload: 1024
      });
      const errors = recordErrors(ours);
      const messages = [];
      ours.on('message', (data) => messages.push(data));

      peer.send(Buffer.alloc(1025));

      const [mine, theirs] = await Promise.all([closed(ours), closed(peer)]);
      assert.equal(errors.errors.length, 1);
      const [err] = errors.errors;
      assert.ok(err instanceof RangeError);
      assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      assert.equal(err.message, 'Max payload size exceeded');
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(theirs.code, 1009);
      // ws does not read the peer's echoed close frame after a protocol
      // error, so our own 'close' reports 1006.
      assert.equal(mine.code, 1006);
      assert.deepEqual(messages, []);
    });

    it('counts the total of a fragmented message', async function () {
      const { ours, peer } = await connect('/', undefined, undefined, {
        maxPayload: 1024
      });
      const errors = recordErrors(ours);

      peer.send(Buffer.alloc(600), { fin: false });
      peer.send(Buffer.alloc(600), { fin: true });

      const theirs = await closed(peer);
      assert.equal(theirs.code, 1009);
      await closed(ours);
      assert.equal(errors.errors[0].code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    });
  });

  describe('clientTracking', function () {
    it('clients holds the open connections (default)', async function () {
      const { wss, url } = await t.listen(WebSocketServer);
      assert.ok(wss.clients instanceof Set);
      assert.equal(wss.clients.size, 0);

      const serverSides = new Map(); // client port -> server-side socket
      const bothConnected = new Promise((resolve) => {
        wss.on('connection', (ws, req) => {
          serverSides.set(req.socket.remotePort, ws);
          if (serverSides.size === 2) resolve();
        });
      });
      const peers = [new PeerWebSocket(url), new PeerWebSocket(url)].map((p) =>
        t.socket(p)
      );
      await Promise.all(peers.map((peer) => once(peer, 'open')));
      await bothConnected;
      assert.equal(wss.clients.size, 2);
      const first = serverSides.get(peers[0]._socket.localPort);
      assert.ok(wss.clients.has(first));

      peers[0].close();
      await Promise.all([closed(peers[0]), closed(first)]);
      assert.equal(wss.clients.size, 1);
      assert.ok(!wss.clients.has(first));
    });

    it('clientTracking: false leaves clients undefined', async function () {
      const { wss, ours, peer } = await connect('/', undefined, undefined, {
        clientTracking: false
      });
      assert.equal(wss.clients, undefined);
      const m = await transfer(peer, ours, 'still works');
      assert.equal(m.data.toString(), 'still works');
    });
  });

  describe('EventTarget-style API on server-side sockets', function () {
    it('onmessage and onclose receive event objects', async function () {
      const { ours, peer } = await connect();
      const messages = [];
      ours.onmessage = (event) => messages.push(event.data);
      const closeEvent = new Promise((resolve) => {
        ours.onclose = resolve;
      });

      await transfer(peer, ours, 'text');
      await transfer(peer, ours, Buffer.from([1, 2]));
      peer.close(4002, 'bye');

      const event = await closeEvent;
      assert.equal(event.code, 4002);
      assert.equal(event.reason, 'bye');
      assert.equal(event.wasClean, true);
      assert.deepEqual(messages, ['text', Buffer.from([1, 2])]);
    });
  });

  describe('many connections', function () {
    it('1,000 concurrent connections each echo a message, then all close', async function () {
      this.timeout(60000);
      const N = 1000;
      const { wss, url } = await t.listen(WebSocketServer, { backlog: 1024 });
      const serverSides = [];
      wss.on('connection', (ws) => {
        serverSides.push(ws);
        echo(ws);
      });

      const peers = Array.from({ length: N }, () =>
        t.socket(new PeerWebSocket(url))
      );
      await Promise.all(peers.map((peer) => once(peer, 'open')));
      // Every client is open once the server has answered it, but the
      // server-side 'connection' may be emitted a bit later than the client's
      // 'open'; wait for the last one.
      while (serverSides.length < N) await next(wss, 'connection');
      assert.equal(wss.clients.size, N);

      await Promise.all(
        peers.map(async (peer, i) => {
          const m = await transfer(peer, peer, `message ${i}`);
          assert.equal(m.isBinary, false);
          assert.equal(m.data.toString(), `message ${i}`);
        })
      );

      const results = await Promise.all(
        peers.map((peer) => {
          peer.close(1000, 'done');
          return closed(peer);
        })
      );
      for (const result of results) assert.equal(result.code, 1000);
      const ourResults = await Promise.all(serverSides.map(closed));
      for (const result of ourResults) assert.equal(result.code, 1000);
      assert.equal(wss.clients.size, 0);
    });
  });
});
