'use strict';

// Our client (the implementation under test) against a real ws server.
//
// `client` is always our WebSocket; `peer` is the server-side WebSocket of the
// real ws server. Every test checks both what our side observes and what the
// real peer observes.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { once } = require('node:events');
const { setTimeout: delay } = require('node:timers/promises');

const { WebSocket, PeerWebSocketServer } = require('./helpers/impl');
const {
  Tracker,
  binaryFrameHeader,
  closed,
  echo,
  next,
  recordErrors,
  sha256,
  toBuffer,
  transfer
} = require('./helpers/interop');

const SIZES = [125, 126, 65535, 65536, 16 * 1024 * 1024];
const UTF8_TEXT = 'héllo wörld — ñandú — 日本語のテキスト — Ελληνικά — 🎉🚀𝄞';

describe('interop: our client <-> real ws server', function () {
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

  // Opens one connection to the shared real server.
  async function connect(path = '/', protocols, options) {
    const connection = next(wss, 'connection');
    const client = t.socket(new WebSocket(url + path, protocols, options));
    await once(client, 'open');
    const [peer, req] = await connection;
    return { client, peer, req };
  }

  describe('messages', function () {
    it('text in both directions', async function () {
      const { client, peer } = await connect();

      let m = await transfer(client, peer, 'hello from the native client');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data));
      assert.equal(m.data.toString(), 'hello from the native client');

      m = await transfer(peer, client, 'hello from ws');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data), 'text arrives as a Buffer');
      assert.equal(m.data.toString(), 'hello from ws');
    });

    it('binary in both directions', async function () {
      const { client, peer } = await connect();
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x7f]);

      let m = await transfer(client, peer, bytes);
      assert.equal(m.isBinary, true);
      assert.deepEqual(m.data, bytes);

      m = await transfer(peer, client, bytes);
      assert.equal(m.isBinary, true);
      assert.ok(Buffer.isBuffer(m.data));
      assert.deepEqual(m.data, bytes);
    });

    it('empty text and empty binary messages in both directions', async function () {
      const { client, peer } = await connect();

      for (const [from, to] of [
        [client, peer],
        [peer, client]
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
      const { client, peer } = await connect();
      // The large one spans many TCP reads, so characters get split between
      // reads and must still validate.
      const texts = [UTF8_TEXT, UTF8_TEXT.repeat(12000)];

      for (const text of texts) {
        const expected = Buffer.from(text);

        let m = await transfer(client, peer, text);
        assert.equal(m.isBinary, false);
        assert.equal(m.data.length, expected.length);
        assert.ok(m.data.equals(expected));

        m = await transfer(peer, client, text);
        assert.equal(m.isBinary, false);
        assert.equal(m.data.length, expected.length);
        assert.ok(m.data.equals(expected));
        assert.equal(m.data.toString(), text);
      }
    });

    describe('payload sizes', function () {
      for (const size of SIZES) {
        it(`${size} bytes in both directions, byte-exact`, async function () {
          const { client, peer } = await connect();
          const payload = crypto.randomBytes(size);
          const hash = sha256(payload);

          let m = await transfer(client, peer, payload);
          assert.equal(m.isBinary, true);
          assert.equal(m.data.length, size);
          assert.equal(sha256(m.data), hash);

          m = await transfer(peer, client, payload);
          assert.equal(m.isBinary, true);
          assert.ok(Buffer.isBuffer(m.data));
          assert.equal(m.data.length, size);
          assert.equal(sha256(m.data), hash);
        });
      }
    });

    it('sends ArrayBuffers, typed arrays and DataViews as their bytes', async function () {
      const { client, peer } = await connect();
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
        const m = await transfer(client, peer, data);
        assert.equal(m.isBinary, true, name);
        assert.deepEqual(m.data, expected, name);
      }
    });

    it('the binary option overrides the type', async function () {
      const { client, peer } = await connect();

      let m = await transfer(client, peer, 'as binary', { binary: true });
      assert.equal(m.isBinary, true);
      assert.equal(m.data.toString(), 'as binary');

      m = await transfer(client, peer, Buffer.from('as text'), {
        binary: false
      });
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'as text');
    });

    it('keeps order and boundaries of many back-to-back messages', async function () {
      const { client, peer } = await connect();
      const count = 200;
      const sizes = Array.from({ length: count }, (_, i) => (i * 997) % 70000);
      const payloads = sizes.map((size) => crypto.randomBytes(size));

      for (const [from, to] of [
        [client, peer],
        [peer, client]
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
  });

  describe('fragmentation', function () {
    it('reassembles a text message fragmented by the peer', async function () {
      const { client, peer } = await connect();
      const message = next(client, 'message');

      peer.send('Hel', { fin: false });
      peer.send('lo, ', { fin: false });
      peer.send('wörld', { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'Hello, wörld');
    });

    it('accepts a UTF-8 character split across fragments', async function () {
      const { client, peer } = await connect();
      const bytes = Buffer.from('a🎉b');
      const message = next(client, 'message');

      peer.send(bytes.subarray(0, 3), { binary: false, fin: false });
      peer.send(bytes.subarray(3), { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'a🎉b');
    });

    it('reassembles a binary message fragmented by the peer, with a ping in between', async function () {
      const { client, peer } = await connect();
      const order = [];
      client.on('ping', (data) => order.push(`ping:${data}`));
      const message = new Promise((resolve) => {
        client.once('message', (data, isBinary) => {
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
      const { client, peer } = await connect();

      let message = next(peer, 'message');
      client.send('Hel', { fin: false });
      client.send('lo, ', { fin: false });
      client.send('wörld', { fin: true });
      let [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'Hello, wörld');

      message = next(peer, 'message');
      client.send(Buffer.from([1, 2]), { fin: false });
      client.ping('in the middle');
      client.send(Buffer.from([3]), { fin: false });
      client.send(Buffer.from([4, 5]), { fin: true });
      [data, isBinary] = await message;
      assert.equal(isBinary, true);
      assert.deepEqual(data, Buffer.from([1, 2, 3, 4, 5]));
    });

    it('large fragmented messages are byte-exact in both directions', async function () {
      const { client, peer } = await connect();
      const parts = [1, 2, 3].map(() => crypto.randomBytes(1024 * 1024));
      const hash = sha256(Buffer.concat(parts));

      for (const [from, to] of [
        [client, peer],
        [peer, client]
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
      const { client } = await connect();
      assert.equal(client.binaryType, 'nodebuffer');
    });

    it("'arraybuffer' delivers binary messages as ArrayBuffers, text still as Buffers", async function () {
      const { client, peer } = await connect();
      client.binaryType = 'arraybuffer';
      assert.equal(client.binaryType, 'arraybuffer');
      const bytes = crypto.randomBytes(70000);

      let m = await transfer(peer, client, bytes);
      assert.equal(m.isBinary, true);
      assert.ok(m.data instanceof ArrayBuffer);
      assert.equal(m.data.byteLength, bytes.length);
      assert.ok(Buffer.from(m.data).equals(bytes));

      m = await transfer(peer, client, 'text');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data));
      assert.equal(m.data.toString(), 'text');
    });

    it("'fragments' delivers an array with the payload of each non-empty frame", async function () {
      const { client, peer } = await connect();
      client.binaryType = 'fragments';

      let message = next(client, 'message');
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

      ({ data, isBinary } = await transfer(peer, client, Buffer.from('one')));
      assert.equal(isBinary, true);
      assert.ok(Array.isArray(data));
      assert.deepEqual(data, [Buffer.from('one')]);

      message = next(client, 'message');
      peer.send('te', { fin: false });
      peer.send('xt', { fin: true });
      [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.ok(Buffer.isBuffer(data), 'text is still one Buffer');
      assert.equal(data.toString(), 'text');
    });

    it('can be changed between messages', async function () {
      const { client, peer } = await connect();
      const bytes = Buffer.from([9, 8, 7]);

      let m = await transfer(peer, client, bytes);
      assert.ok(Buffer.isBuffer(m.data));

      client.binaryType = 'arraybuffer';
      m = await transfer(peer, client, bytes);
      assert.ok(m.data instanceof ArrayBuffer);
      assert.ok(Buffer.from(m.data).equals(bytes));

      client.binaryType = 'fragments';
      m = await transfer(peer, client, bytes);
      assert.deepEqual(m.data, [bytes]);

      client.binaryType = 'nodebuffer';
      m = await transfer(peer, client, bytes);
      assert.deepEqual(m.data, bytes);
    });
  });

  describe('ping and pong', function () {
    it("the peer's ping is answered automatically (autoPong) and emitted as 'ping'", async function () {
      const { client, peer } = await connect();
      const ping = next(client, 'ping');
      const pong = next(peer, 'pong');

      peer.ping('are you there?');

      const [pingData] = await ping;
      assert.ok(Buffer.isBuffer(pingData));
      assert.equal(pingData.toString(), 'are you there?');
      const [pongData] = await pong;
      assert.equal(pongData.toString(), 'are you there?');
    });

    it("our ping reaches the peer and its pong is emitted as 'pong'", async function () {
      const { client, peer } = await connect();
      const payload = crypto.randomBytes(125);
      const ping = next(peer, 'ping');
      const pong = next(client, 'pong');
      let pingCallback;
      const pingWritten = new Promise((resolve) => {
        pingCallback = resolve;
      });

      client.ping(payload, undefined, pingCallback);

      assert.equal(await pingWritten, null);
      const [pingData] = await ping;
      assert.deepEqual(pingData, payload);
      const [pongData] = await pong;
      assert.ok(Buffer.isBuffer(pongData));
      assert.deepEqual(pongData, payload);
    });

    it('pings and pongs without payload carry an empty Buffer', async function () {
      const { client, peer } = await connect();

      let events = [next(client, 'ping'), next(peer, 'pong')];
      peer.ping();
      for (const [data] of await Promise.all(events)) {
        assert.ok(Buffer.isBuffer(data));
        assert.equal(data.length, 0);
      }

      events = [next(peer, 'ping'), next(client, 'pong')];
      client.ping();
      for (const [data] of await Promise.all(events)) {
        assert.ok(Buffer.isBuffer(data));
        assert.equal(data.length, 0);
      }
    });

    it('an unsolicited pong reaches the peer', async function () {
      const { client, peer } = await connect();
      const pong = next(peer, 'pong');

      client.pong('unsolicited');

      const [data] = await pong;
      assert.equal(data.toString(), 'unsolicited');
    });

    it('with autoPong: false a ping is emitted but not answered', async function () {
      const { client, peer } = await connect('/', undefined, {
        autoPong: false
      });
      const pongs = [];
      peer.on('pong', (data) => pongs.push(data.toString()));
      client.on('message', () => client.send('ack'));
      const ping = next(client, 'ping');
      const ack = next(peer, 'message');

      peer.ping('no answer expected');
      peer.send('then this');

      const [pingData] = await ping;
      assert.equal(pingData.toString(), 'no answer expected');
      // Frames arrive in order: an automatic pong would precede the ack.
      const [ackData] = await ack;
      assert.equal(ackData.toString(), 'ack');
      assert.deepEqual(pongs, []);

      // A pong sent by hand still works.
      const pong = next(peer, 'pong');
      client.pong('by hand');
      assert.equal((await pong)[0].toString(), 'by hand');
    });
  });

  describe('closing handshake', function () {
    it('we close with a code and reason: both sides see them', async function () {
      const { client, peer } = await connect();
      assert.equal(client.readyState, WebSocket.OPEN);

      client.close(4000, 'we are done');
      assert.equal(client.readyState, WebSocket.CLOSING);

      const [ours, theirs] = await Promise.all([closed(client), closed(peer)]);
      assert.equal(theirs.code, 4000);
      assert.ok(Buffer.isBuffer(theirs.reason));
      assert.equal(theirs.reason.toString(), 'we are done');
      assert.equal(ours.code, 4000);
      assert.ok(Buffer.isBuffer(ours.reason));
      assert.equal(ours.reason.toString(), 'we are done');
      assert.equal(client.readyState, WebSocket.CLOSED);
    });

    it('the peer closes with a code and reason: both sides see them', async function () {
      const { client, peer } = await connect();
      const closeEvent = new Promise((resolve) => {
        client.once('close', (code, reason) =>
          resolve({ code, reason, readyState: client.readyState })
        );
      });

      peer.close(1001, 'going away');

      const ours = await closeEvent;
      assert.equal(ours.code, 1001);
      assert.ok(Buffer.isBuffer(ours.reason));
      assert.equal(ours.reason.toString(), 'going away');
      assert.equal(ours.readyState, WebSocket.CLOSED);
      const theirs = await closed(peer);
      assert.equal(theirs.code, 1001);
      assert.equal(theirs.reason.toString(), 'going away');
    });

    it('a multi-byte UTF-8 reason survives in both directions', async function () {
      const reason = 'adiós 👋 日本';
      let { client, peer } = await connect();
      client.close(1000, reason);
      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }

      ({ client, peer } = await connect());
      peer.close(1000, reason);
      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }
    });

    it('we close without a code: both sides see 1005 and an empty reason', async function () {
      const { client, peer } = await connect();

      client.close();

      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    });

    it('the peer closes without a code: both sides see 1005', async function () {
      const { client, peer } = await connect();

      peer.close();

      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.equal(result.reason.length, 0);
      }
    });

    it('a code without a reason gives an empty reason', async function () {
      const { client, peer } = await connect();

      client.close(1000);

      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    });

    it('messages sent before close() are delivered before the close', async function () {
      const { client, peer } = await connect();
      const received = [];
      peer.on('message', (data) => received.push(data.toString()));

      client.send('one');
      client.send('two');
      client.close(1000, 'after two');

      const theirs = await closed(peer);
      assert.deepEqual(received, ['one', 'two']);
      assert.equal(theirs.code, 1000);
      await closed(client);
    });
  });

  describe('terminate and abrupt disconnection', function () {
    it('our terminate(): both sides see 1006', async function () {
      const { client, peer } = await connect();
      const errors = recordErrors(client);

      client.terminate();

      for (const result of await Promise.all([closed(client), closed(peer)])) {
        assert.equal(result.code, 1006);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
      assert.equal(client.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer terminates: we see 1006 and no error', async function () {
      const { client, peer } = await connect();
      const errors = recordErrors(client);

      peer.terminate();

      const ours = await closed(client);
      assert.equal(ours.code, 1006);
      assert.equal(ours.reason.length, 0);
      assert.equal(client.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer vanishes in the middle of a large message: we see 1006', async function () {
      const { client, peer } = await connect();
      const errors = recordErrors(client);
      const messages = [];
      client.on('message', (data) => messages.push(data));

      // A frame announcing 16 MiB of which 1 MiB is sent, then the peer's TCP
      // socket is destroyed.
      const partial = Buffer.concat([
        binaryFrameHeader(16 * 1024 * 1024, false),
        crypto.randomBytes(1024 * 1024)
      ]);
      peer._socket.write(partial, () => peer._socket.destroy());

      const ours = await closed(client);
      assert.equal(ours.code, 1006);
      assert.equal(ours.reason.length, 0);
      assert.deepEqual(messages, []);
      assert.deepEqual(errors.errors, []);
    });

    it('the peer vanishes while we are sending a large message: we see 1006', async function () {
      const { client, peer } = await connect();
      recordErrors(client);
      const firstBytes = next(peer._socket, 'data');

      client.send(crypto.randomBytes(16 * 1024 * 1024));
      await firstBytes;
      peer._socket.destroy();

      const ours = await closed(client);
      assert.equal(ours.code, 1006);
      assert.equal(client.readyState, WebSocket.CLOSED);
    });
  });

  describe('send callbacks and sending after close', function () {
    it('calls each send callback once, with null, in order, once written', async function () {
      const { client, peer } = await connect();
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
          client.send(crypto.randomBytes(size), (err) => {
            calls.push([i, err]);
            if (i === sizes.length - 1) resolve();
          });
        });
      });
      assert.ok(
        client.bufferedAmount >= 16 * 1024 * 1024,
        `bufferedAmount right after queueing 16 MiB is ${client.bufferedAmount}`
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
      assert.equal(client.bufferedAmount, 0);
      assert.equal(calls.length, sizes.length, 'no callback ran twice');
    });

    it('send/ping/pong after close() call back with an error, asynchronously', async function () {
      const { client } = await connect();
      client.close();
      assert.equal(client.readyState, WebSocket.CLOSING);

      const results = [];
      let returned = false;
      const callbacks = ['send', 'ping', 'pong'].map(
        (method) =>
          new Promise((resolve) => {
            client[method]('late', (err) => {
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

      await closed(client);
      const err = await new Promise((resolve) => client.send('later', resolve));
      assert.ok(err instanceof Error);
      assert.equal(err.message, 'WebSocket is not open: readyState 3 (CLOSED)');

      // Without a callback, sending after close is silently ignored.
      client.send('ignored');
      client.ping();
      client.pong();
    });

    it('send() while CONNECTING throws', async function () {
      const client = t.socket(new WebSocket(url));
      assert.equal(client.readyState, WebSocket.CONNECTING);
      for (const method of ['send', 'ping', 'pong']) {
        assert.throws(() => client[method]('too early'), {
          name: 'Error',
          message: 'WebSocket is not open: readyState 0 (CONNECTING)'
        });
      }
      await once(client, 'open');
    });
  });

  describe('pause and resume', function () {
    it('holds messages back while paused and delivers them on resume()', async function () {
      const { client, peer } = await connect();
      const received = [];
      client.on('message', (data) => received.push(data.toString()));
      assert.equal(client.isPaused, false);

      client.pause();
      assert.equal(client.isPaused, true);
      await new Promise((resolve) => peer.send('while paused', resolve));
      // Nothing can be awaited for "no message": allow one a moment to
      // (wrongly) arrive.
      await delay(100);
      assert.deepEqual(received, []);

      const message = next(client, 'message');
      client.resume();
      assert.equal(client.isPaused, false);
      await message;
      assert.deepEqual(received, ['while paused']);
    });
  });

  describe('subprotocols', function () {
    it('the server picks the first offered protocol by default', async function () {
      const { client, peer } = await connect('/', ['chat', 'superchat']);
      assert.equal(client.protocol, 'chat');
      assert.equal(peer.protocol, 'chat');
    });

    it('the server picks with handleProtocols', async function () {
      const offered = [];
      const server = await t.listen(PeerWebSocketServer, {
        handleProtocols: (protocols) => {
          offered.push([...protocols]);
          return 'superchat';
        }
      });
      const client = t.socket(
        new WebSocket(server.url, ['chat', 'superchat'])
      );
      await once(client, 'open');
      assert.deepEqual(offered, [['chat', 'superchat']]);
      assert.equal(client.protocol, 'superchat');
    });

    it('a single protocol may be given as a string', async function () {
      const { client, req } = await connect('/', 'chat');
      assert.equal(req.headers['sec-websocket-protocol'], 'chat');
      assert.equal(client.protocol, 'chat');
    });

    it("is '' when none was offered, and the header is absent", async function () {
      const { client, req } = await connect();
      assert.equal(client.protocol, '');
      assert.equal(req.headers['sec-websocket-protocol'], undefined);
    });

    it('fails when the server picks a protocol that was not offered', async function () {
      const server = await t.listen(PeerWebSocketServer, {
        handleProtocols: () => 'other'
      });
      const client = t.socket(new WebSocket(server.url, ['chat']));
      const errors = recordErrors(client);

      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Server sent an invalid subprotocol');
    });

    it('fails when the server picks no protocol although some were offered', async function () {
      const server = await t.listen(PeerWebSocketServer, {
        handleProtocols: () => false
      });
      const client = t.socket(new WebSocket(server.url, ['chat']));
      const errors = recordErrors(client);

      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Server sent no subprotocol');
    });
  });

  describe('opening handshake', function () {
    it('sends method, path, query, custom headers and origin', async function () {
      const { client, req } = await connect('/chat/room?id=42&x=%20y', undefined, {
        headers: { 'X-Custom-Header': 'custom value', Cookie: 'a=b' },
        origin: 'http://example.test',
        protocolVersion: 13
      });

      assert.equal(client.url, `${url}/chat/room?id=42&x=%20y`);
      assert.equal(client.extensions, '');
      assert.equal(req.method, 'GET');
      assert.equal(req.url, '/chat/room?id=42&x=%20y');
      assert.equal(req.headers['x-custom-header'], 'custom value');
      assert.equal(req.headers.cookie, 'a=b');
      assert.equal(req.headers.origin, 'http://example.test');
      assert.equal(req.headers['sec-websocket-version'], '13');
      assert.equal(req.headers.host, new URL(url).host);
      assert.equal(req.headers.upgrade.toLowerCase(), 'websocket');
      assert.match(req.headers.connection, /upgrade/i);
      assert.match(req.headers['sec-websocket-key'], /^[+/0-9A-Za-z]{22}==$/);
    });

    it('the server sees our address and port', async function () {
      const { req } = await connect();
      assert.equal(req.socket.remoteAddress, '127.0.0.1');
      assert.equal(typeof req.socket.remotePort, 'number');
      assert.ok(req.socket.remotePort > 0 && req.socket.remotePort < 65536);
    });

    it('readyState is CONNECTING until open, and url is set at once', async function () {
      const client = t.socket(new WebSocket(`${url}/x?y=1`));
      assert.equal(client.readyState, WebSocket.CONNECTING);
      assert.equal(client.url, `${url}/x?y=1`);
      assert.equal(client.protocol, '');
      assert.equal(client.bufferedAmount, 0);
      await once(client, 'open');
      assert.equal(client.readyState, WebSocket.OPEN);
    });

    it('handshakeTimeout: a server that never answers -> error and 1006', async function () {
      const sockets = new Set();
      const silent = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = silent.address();
        const client = t.socket(
          new WebSocket(`ws://127.0.0.1:${port}`, { handshakeTimeout: 200 })
        );
        const errors = recordErrors(client);

        const result = await closed(client);
        assert.equal(result.code, 1006);
        assert.deepEqual(errors.order, ['error', 'close']);
        assert.equal(errors.errors[0].message, 'Opening handshake has timed out');
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  describe('server path option', function () {
    let server;

    beforeEach(async function () {
      server = await t.listen(PeerWebSocketServer, { path: '/ws' });
    });

    it('connects on the right path, with or without a query', async function () {
      for (const path of ['/ws', '/ws?token=abc']) {
        const connection = next(server.wss, 'connection');
        const client = t.socket(new WebSocket(server.url + path));
        await once(client, 'open');
        const [, req] = await connection;
        assert.equal(req.url, path);
        client.close();
        await closed(client);
      }
    });

    it("a wrong path without an 'unexpected-response' listener: error 'Unexpected server response: 400'", async function () {
      const client = t.socket(new WebSocket(`${server.url}/other`));
      const errors = recordErrors(client);
      let opened = false;
      client.on('open', () => {
        opened = true;
      });

      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.equal(opened, false);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Unexpected server response: 400');
      assert.equal(server.wss.clients.size, 0);
    });

    it("a wrong path with an 'unexpected-response' listener: (req, res) with status 400", async function () {
      const client = t.socket(new WebSocket(`${server.url}/other`));
      const errors = recordErrors(client);

      const [req, res] = await next(client, 'unexpected-response');
      assert.ok(req);
      assert.equal(res.statusCode, 400);
      assert.equal(client.readyState, WebSocket.CONNECTING);
      assert.deepEqual(errors.errors, []);

      // The listener owns the outcome; terminating aborts the handshake.
      client.terminate();
      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(
        errors.errors[0].message,
        'WebSocket was closed before the connection was established'
      );
    });
  });

  describe('maxPayload on our side', function () {
    it('accepts a message of exactly maxPayload bytes', async function () {
      const { client, peer } = await connect('/', undefined, {
        maxPayload: 1024
      });
      const m = await transfer(peer, client, Buffer.alloc(1024, 1));
      assert.equal(m.data.length, 1024);
    });

    it('a larger message: RangeError WS_ERR_UNSUPPORTED_MESSAGE_LENGTH here, 1009 at the peer', async function () {
      const { client, peer } = await connect('/', undefined, {
        maxPayload: 1024
      });
      const errors = recordErrors(client);
      const messages = [];
      client.on('message', (data) => messages.push(data));

      peer.send(Buffer.alloc(1025));

      const [ours, theirs] = await Promise.all([closed(client), closed(peer)]);
      assert.equal(errors.errors.length, 1);
      const [err] = errors.errors;
      assert.ok(err instanceof RangeError);
      assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      assert.equal(err.message, 'Max payload size exceeded');
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(theirs.code, 1009);
      // ws does not read the peer's echoed close frame after a protocol
      // error, so our own 'close' reports 1006.
      assert.equal(ours.code, 1006);
      assert.deepEqual(messages, []);
    });

    it('counts the total of a fragmented message', async function () {
      const { client, peer } = await connect('/', undefined, {
        maxPayload: 1024
      });
      const errors = recordErrors(client);

      peer.send(Buffer.alloc(600), { fin: false });
      peer.send(Buffer.alloc(600), { fin: true });

      const theirs = await closed(peer);
      assert.equal(theirs.code, 1009);
      await closed(client);
      assert.equal(errors.errors[0].code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    });
  });

  describe('EventTarget-style API', function () {
    it('onopen, onmessage, onclose receive event objects', async function () {
      const connection = next(wss, 'connection');
      const client = t.socket(new WebSocket(url));
      const opened = next(client, 'open');
      const log = [];
      client.onopen = (event) => log.push(['open', event.type]);
      client.onmessage = (event) => log.push(['message', event.type, event.data]);
      assert.equal(typeof client.onmessage, 'function');
      const closeEvent = new Promise((resolve) => {
        client.onclose = resolve;
      });
      const twoMessages = new Promise((resolve) => {
        let count = 0;
        client.on('message', () => {
          if (++count === 2) resolve();
        });
      });
      const [peer] = await connection;
      const binary = Buffer.from([1, 2, 3]);
      await opened;

      peer.send('text');
      peer.send(binary);
      await twoMessages;
      peer.close(4001, 'bye');

      const event = await closeEvent;
      assert.equal(event.type, 'close');
      assert.equal(event.code, 4001);
      assert.equal(event.reason, 'bye');
      assert.equal(event.wasClean, true);
      assert.deepEqual(log, [
        ['open', 'open'],
        ['message', 'message', 'text'],
        ['message', 'message', binary]
      ]);
    });

    it('addEventListener with once, removeEventListener, onerror', async function () {
      const { client, peer } = await connect();
      const seen = [];
      const onMessage = (event) => seen.push(event.data);
      const onceListener = (event) => seen.push(`once:${event.data}`);
      client.addEventListener('message', onMessage);
      client.addEventListener('message', onceListener, { once: true });

      await transfer(peer, client, 'first');
      await transfer(peer, client, 'second');
      client.removeEventListener('message', onMessage);
      await transfer(peer, client, 'third');
      assert.deepEqual(seen, ['first', 'once:first', 'second']);

      const errorEvent = new Promise((resolve) => {
        client.onerror = resolve;
      });
      peer._socket.write(Buffer.from([0x83, 0x00])); // reserved opcode 3
      const event = await errorEvent;
      assert.equal(event.type, 'error');
      assert.ok(event.error instanceof RangeError);
      assert.equal(event.error.code, 'WS_ERR_INVALID_OPCODE');
      assert.equal(event.message, 'Invalid WebSocket frame: invalid opcode 3');
      const result = await closed(peer);
      assert.equal(result.code, 1002);
    });
  });

  describe('many connections', function () {
    it('1,000 concurrent connections each echo a message, then all close', async function () {
      this.timeout(60000);
      const N = 1000;
      const server = await t.listen(PeerWebSocketServer, { backlog: 1024 });
      server.wss.on('connection', echo);

      const clients = Array.from({ length: N }, () =>
        t.socket(new WebSocket(server.url))
      );
      await Promise.all(clients.map((client) => once(client, 'open')));
      assert.equal(server.wss.clients.size, N);
      const serverSides = [...server.wss.clients];

      await Promise.all(
        clients.map(async (client, i) => {
          const m = await transfer(client, client, `message ${i}`);
          assert.equal(m.isBinary, false);
          assert.equal(m.data.toString(), `message ${i}`);
        })
      );

      const results = await Promise.all(
        clients.map((client) => {
          client.close(1000, 'done');
          return closed(client);
        })
      );
      for (const result of results) assert.equal(result.code, 1000);
      const peerResults = await Promise.all(serverSides.map(closed));
      for (const result of peerResults) assert.equal(result.code, 1000);
      assert.equal(server.wss.clients.size, 0);
    });
  });
});
