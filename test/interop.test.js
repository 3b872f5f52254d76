'use strict';

// Interop between the implementation under test and the real ws, run in both
// directions: our client against a ws server, and a ws client against our
// server.
//
// Each scenario is written once, as a function of a direction adapter `d`
// (see Pair below). `d.connect()` opens one connection and names its two ends
// both by what they are and by their role:
//
//   ours    the implementation under test (our client, or the server-side
//           socket our server hands to 'connection')
//   peer    the real ws at the other end
//   client  the client-side socket (ours or peer, whichever is the client)
//   server  the server-side socket (the other one)
//
// Every scenario checks both what our side observes and what the real peer
// observes. The few scenarios that only make sense in one direction (options
// and states that exist only on a client, or only on a server) are in the
// CLIENT_ONLY and SERVER_ONLY tables, each with the reason.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { once } = require('node:events');
const { setTimeout: delay } = require('node:timers/promises');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer
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

// One direction: which classes play client and server, and which of the two
// is ours. A fresh Tracker is set as `t` before each test.
class Pair {
  constructor({ ours, Client, Server }) {
    this.ours = ours; // 'client' or 'server'
    this.Client = Client;
    this.Server = Server;
    // The peer is the client when ours is the server: the frames it writes
    // by hand must then be masked.
    this.peerIsClient = ours === 'server';
    this.t = null;
  }

  // Starts a server of this direction: { wss, port, url }.
  listen(options) {
    return this.t.listen(this.Server, options);
  }

  // Creates (and tracks) a client of this direction.
  dial(url, protocols, options) {
    return this.t.socket(new this.Client(url, protocols, options));
  }

  // Starts a server and opens one connection to it. `client` and `server`
  // are options for the client and the server; `ours` and `peer` are options
  // for whichever of the two is ours / the peer (options such as maxPayload
  // and autoPong that both a client and a server take).
  async connect({
    path = '/',
    protocols,
    client: clientOptions,
    server: serverOptions,
    ours: oursOptions,
    peer: peerOptions
  } = {}) {
    const ourClient = this.ours === 'client';
    const { wss, url } = await this.listen({
      ...serverOptions,
      ...(ourClient ? peerOptions : oursOptions)
    });
    const connection = next(wss, 'connection');
    const client = this.dial(url + path, protocols, {
      ...clientOptions,
      ...(ourClient ? oursOptions : peerOptions)
    });
    await once(client, 'open');
    const [server, req] = await connection;
    const ours = ourClient ? client : server;
    const peer = ourClient ? server : client;
    // Guards the adapter itself: a mix-up here would test ws against ws.
    assert.ok(ours instanceof WebSocket, 'ours is the implementation under test');
    assert.ok(peer instanceof PeerWebSocket, 'peer is the real ws');
    return {
      ours,
      peer,
      client,
      server,
      req,
      wss,
      url
    };
  }
}

// Scenarios run in both directions. A key whose value is a function is a
// test; one whose value is an object is a describe block of more of them.
const BOTH = {
  messages: {
    'text in both directions': async (d) => {
      const { ours, peer } = await d.connect();

      let m = await transfer(ours, peer, 'hello from ours');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data));
      assert.equal(m.data.toString(), 'hello from ours');

      m = await transfer(peer, ours, 'hello from ws');
      assert.equal(m.isBinary, false);
      assert.ok(Buffer.isBuffer(m.data), 'text arrives as a Buffer');
      assert.equal(m.data.toString(), 'hello from ws');
    },

    'binary in both directions': async (d) => {
      const { ours, peer } = await d.connect();
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x7f]);

      let m = await transfer(ours, peer, bytes);
      assert.equal(m.isBinary, true);
      assert.deepEqual(m.data, bytes);

      m = await transfer(peer, ours, bytes);
      assert.equal(m.isBinary, true);
      assert.ok(Buffer.isBuffer(m.data));
      assert.deepEqual(m.data, bytes);
    },

    'empty text and empty binary messages in both directions': async (d) => {
      const { ours, peer } = await d.connect();

      for (const [from, to] of [
        [ours, peer],
        [peer, ours]
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
    },

    'multi-byte UTF-8 text, byte-exact, in both directions': async (d) => {
      const { ours, peer } = await d.connect();
      // The large one spans many TCP reads, so characters get split between
      // reads and must still validate.
      const texts = [UTF8_TEXT, UTF8_TEXT.repeat(12000)];

      for (const text of texts) {
        const expected = Buffer.from(text);

        for (const [from, to] of [
          [ours, peer],
          [peer, ours]
        ]) {
          const m = await transfer(from, to, text);
          assert.equal(m.isBinary, false);
          assert.equal(m.data.length, expected.length);
          assert.ok(m.data.equals(expected));
          assert.equal(m.data.toString(), text);
        }
      }
    },

    'payload sizes': Object.fromEntries(
      SIZES.map((size) => [
        `${size} bytes in both directions, byte-exact`,
        async (d) => {
          const { ours, peer } = await d.connect();
          const payload = crypto.randomBytes(size);
          const hash = sha256(payload);

          for (const [from, to] of [
            [ours, peer],
            [peer, ours]
          ]) {
            const m = await transfer(from, to, payload);
            assert.equal(m.isBinary, true);
            assert.ok(Buffer.isBuffer(m.data));
            assert.equal(m.data.length, size);
            assert.equal(sha256(m.data), hash);
          }
        }
      ])
    ),

    'sends ArrayBuffers, typed arrays and DataViews as their bytes': async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    'the binary option overrides the type': async (d) => {
      const { ours, peer } = await d.connect();

      let m = await transfer(ours, peer, 'as binary', { binary: true });
      assert.equal(m.isBinary, true);
      assert.equal(m.data.toString(), 'as binary');

      m = await transfer(ours, peer, Buffer.from('as text'), { binary: false });
      assert.equal(m.isBinary, false);
      assert.equal(m.data.toString(), 'as text');
    },

    'keeps order and boundaries of many back-to-back messages': async (d) => {
      const { ours, peer } = await d.connect();
      const count = 200;
      const sizes = Array.from({ length: count }, (_, i) => (i * 997) % 70000);
      const payloads = sizes.map((size) => crypto.randomBytes(size));

      for (const [from, to] of [
        [ours, peer],
        [peer, ours]
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
    },

    // With ws as the server the message may reach our client in the same
    // TCP read as the 101 response.
    "a message sent from the 'connection' listener reaches the client": async (d) => {
      const { wss, url } = await d.listen();
      wss.on('connection', (ws) => {
        assert.equal(ws.readyState, WebSocket.OPEN);
        ws.send('welcome');
      });
      const client = d.dial(url);
      const [data, isBinary] = await next(client, 'message');
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'welcome');
    },

    "messages sent by the client right on 'open' reach a listener added in 'connection'": async (d) => {
      const { wss, url } = await d.listen();
      const received = new Promise((resolve) => {
        wss.on('connection', (ws) => {
          const messages = [];
          ws.on('message', (data) => {
            messages.push(data.toString());
            if (messages.length === 2) resolve(messages);
          });
        });
      });
      const client = d.dial(url);
      client.on('open', () => {
        client.send('first');
        client.send('second');
      });
      assert.deepEqual(await received, ['first', 'second']);
    }
  },

  fragmentation: {
    'reassembles a text message fragmented by the peer': async (d) => {
      const { ours, peer } = await d.connect();
      const message = next(ours, 'message');

      peer.send('Hel', { fin: false });
      peer.send('lo, ', { fin: false });
      peer.send('wörld', { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'Hello, wörld');
    },

    'accepts a UTF-8 character split across fragments': async (d) => {
      const { ours, peer } = await d.connect();
      const bytes = Buffer.from('a🎉b');
      const message = next(ours, 'message');

      peer.send(bytes.subarray(0, 3), { binary: false, fin: false });
      peer.send(bytes.subarray(3), { fin: true });

      const [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.equal(data.toString(), 'a🎉b');
    },

    'reassembles a binary message fragmented by the peer, with a ping in between': async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    'our fragmented messages are reassembled by the peer': async (d) => {
      const { ours, peer } = await d.connect();

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
    },

    'large fragmented messages are byte-exact in both directions': async (d) => {
      const { ours, peer } = await d.connect();
      const parts = [1, 2, 3].map(() => crypto.randomBytes(1024 * 1024));
      const hash = sha256(Buffer.concat(parts));

      for (const [from, to] of [
        [ours, peer],
        [peer, ours]
      ]) {
        const message = next(to, 'message');
        parts.forEach((part, i) => from.send(part, { fin: i === 2 }));
        const [data, isBinary] = await message;
        assert.equal(isBinary, true);
        assert.equal(data.length, 3 * 1024 * 1024);
        assert.equal(sha256(data), hash);
      }
    }
  },

  binaryType: {
    "defaults to 'nodebuffer'": async (d) => {
      const { ours } = await d.connect();
      assert.equal(ours.binaryType, 'nodebuffer');
    },

    "'arraybuffer' delivers binary messages as ArrayBuffers, text still as Buffers": async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    "'fragments' delivers an array with the payload of each non-empty frame": async (d) => {
      const { ours, peer } = await d.connect();
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
      assert.ok(Array.isArray(data));
      assert.deepEqual(data, [Buffer.from('one')]);

      message = next(ours, 'message');
      peer.send('te', { fin: false });
      peer.send('xt', { fin: true });
      [data, isBinary] = await message;
      assert.equal(isBinary, false);
      assert.ok(Buffer.isBuffer(data), 'text is still one Buffer');
      assert.equal(data.toString(), 'text');
    },

    'can be changed between messages': async (d) => {
      const { ours, peer } = await d.connect();
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
    }
  },

  'ping and pong': {
    "the peer's ping is answered automatically (autoPong) and emitted as 'ping'": async (d) => {
      const { ours, peer } = await d.connect();
      const ping = next(ours, 'ping');
      const pong = next(peer, 'pong');

      peer.ping('are you there?');

      const [pingData] = await ping;
      assert.ok(Buffer.isBuffer(pingData));
      assert.equal(pingData.toString(), 'are you there?');
      const [pongData] = await pong;
      assert.equal(pongData.toString(), 'are you there?');
    },

    "our ping reaches the peer and its pong is emitted as 'pong'": async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    'pings and pongs without payload carry an empty Buffer': async (d) => {
      const { ours, peer } = await d.connect();

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
    },

    'an unsolicited pong reaches the peer': async (d) => {
      const { ours, peer } = await d.connect();
      const pong = next(peer, 'pong');

      ours.pong('unsolicited');

      const [data] = await pong;
      assert.equal(data.toString(), 'unsolicited');
    },

    'with autoPong: false a ping is emitted but not answered': async (d) => {
      const { ours, peer } = await d.connect({ ours: { autoPong: false } });
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

      // A pong sent by hand still works.
      const pong = next(peer, 'pong');
      ours.pong('by hand');
      assert.equal((await pong)[0].toString(), 'by hand');
    }
  },

  'closing handshake': {
    'we close with a code and reason: both sides see them': async (d) => {
      const { ours, peer } = await d.connect();
      assert.equal(ours.readyState, WebSocket.OPEN);

      ours.close(4000, 'we are done');
      assert.equal(ours.readyState, WebSocket.CLOSING);

      const [mine, theirs] = await Promise.all([closed(ours), closed(peer)]);
      assert.equal(theirs.code, 4000);
      assert.ok(Buffer.isBuffer(theirs.reason));
      assert.equal(theirs.reason.toString(), 'we are done');
      assert.equal(mine.code, 4000);
      assert.ok(Buffer.isBuffer(mine.reason));
      assert.equal(mine.reason.toString(), 'we are done');
      assert.equal(ours.readyState, WebSocket.CLOSED);
    },

    'the peer closes with a code and reason: both sides see them': async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    'a multi-byte UTF-8 reason survives in both directions': async (d) => {
      const reason = 'adiós 👋 日本';
      let { ours, peer } = await d.connect();
      ours.close(1000, reason);
      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }

      ({ ours, peer } = await d.connect());
      peer.close(1000, reason);
      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(result.reason.equals(Buffer.from(reason)));
      }
    },

    'we close without a code: both sides see 1005 and an empty reason': async (d) => {
      const { ours, peer } = await d.connect();

      ours.close();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    },

    'the peer closes without a code: both sides see 1005': async (d) => {
      const { ours, peer } = await d.connect();

      peer.close();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1005);
        assert.equal(result.reason.length, 0);
      }
    },

    'a code without a reason gives an empty reason': async (d) => {
      const { ours, peer } = await d.connect();

      ours.close(1000);

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1000);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
    },

    'messages sent before close() are delivered before the close': async (d) => {
      const { ours, peer } = await d.connect();
      const received = [];
      peer.on('message', (data) => received.push(data.toString()));

      ours.send('one');
      ours.send('two');
      ours.close(1000, 'after two');

      const theirs = await closed(peer);
      assert.deepEqual(received, ['one', 'two']);
      assert.equal(theirs.code, 1000);
      await closed(ours);
    }
  },

  'terminate and abrupt disconnection': {
    'our terminate(): both sides see 1006': async (d) => {
      const { ours, peer } = await d.connect();
      const errors = recordErrors(ours);

      ours.terminate();

      for (const result of await Promise.all([closed(ours), closed(peer)])) {
        assert.equal(result.code, 1006);
        assert.ok(Buffer.isBuffer(result.reason));
        assert.equal(result.reason.length, 0);
      }
      assert.equal(ours.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    },

    'the peer terminates: we see 1006 and no error': async (d) => {
      const { ours, peer } = await d.connect();
      const errors = recordErrors(ours);

      peer.terminate();

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(mine.reason.length, 0);
      assert.equal(ours.readyState, WebSocket.CLOSED);
      assert.deepEqual(errors.errors, []);
    },

    'the peer vanishes in the middle of a large message: we see 1006': async (d) => {
      const { ours, peer } = await d.connect();
      const errors = recordErrors(ours);
      const messages = [];
      ours.on('message', (data) => messages.push(data));

      // A frame announcing 16 MiB of which 1 MiB is sent, then the peer's TCP
      // socket is destroyed. A client's frame is masked (the all-zero masking
      // key leaves the payload as it is).
      const partial = Buffer.concat([
        binaryFrameHeader(16 * 1024 * 1024, d.peerIsClient),
        crypto.randomBytes(1024 * 1024)
      ]);
      peer._socket.write(partial, () => peer._socket.destroy());

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(mine.reason.length, 0);
      assert.deepEqual(messages, []);
      assert.deepEqual(errors.errors, []);
    },

    'the peer vanishes while we are sending a large message: we see 1006': async (d) => {
      const { ours, peer } = await d.connect();
      recordErrors(ours);
      const firstBytes = next(peer._socket, 'data');

      ours.send(crypto.randomBytes(16 * 1024 * 1024));
      await firstBytes;
      peer._socket.destroy();

      const mine = await closed(ours);
      assert.equal(mine.code, 1006);
      assert.equal(ours.readyState, WebSocket.CLOSED);
    }
  },

  'send callbacks and sending after close': {
    'calls each send callback once, with null, in order, once written': async (d) => {
      const { ours, peer } = await d.connect();
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
    },

    'send/ping/pong after close() call back with an error, asynchronously': async (d) => {
      const { ours } = await d.connect();
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
    }
  },

  'pause and resume': {
    'holds messages back while paused and delivers them on resume()': async (d) => {
      const { ours, peer } = await d.connect();
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
    }
  },

  subprotocols: {
    'the server picks the first offered protocol by default': async (d) => {
      const { ours, peer } = await d.connect({ protocols: ['chat', 'superchat'] });
      assert.equal(ours.protocol, 'chat');
      assert.equal(peer.protocol, 'chat');
    },

    'the server picks with handleProtocols(protocols, req)': async (d) => {
      const calls = [];
      const { ours, peer } = await d.connect({
        path: '/room',
        protocols: ['chat', 'superchat'],
        server: {
          handleProtocols: (protocols, req) => {
            calls.push([protocols instanceof Set, [...protocols], req.url]);
            return 'superchat';
          }
        }
      });
      assert.deepEqual(calls, [[true, ['chat', 'superchat'], '/room']]);
      assert.equal(ours.protocol, 'superchat');
      assert.equal(peer.protocol, 'superchat');
    },

    'a single protocol may be given as a string': async (d) => {
      const { client, server, req } = await d.connect({ protocols: 'chat' });
      assert.equal(req.headers['sec-websocket-protocol'], 'chat');
      assert.equal(client.protocol, 'chat');
      assert.equal(server.protocol, 'chat');
    },

    "is '' when the client offers none: no header, handleProtocols is not called": async (d) => {
      let called = false;
      const { ours, peer, req } = await d.connect({
        server: {
          handleProtocols: () => {
            called = true;
            return 'chat';
          }
        }
      });
      assert.equal(called, false);
      assert.equal(req.headers['sec-websocket-protocol'], undefined);
      assert.equal(ours.protocol, '');
      assert.equal(peer.protocol, '');
    },

    'the client fails when the server picks a protocol that was not offered': async (d) => {
      const { url } = await d.listen({ handleProtocols: () => 'other' });
      const client = d.dial(url, ['chat']);
      const errors = recordErrors(client);

      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Server sent an invalid subprotocol');
    },

    'handleProtocols returning false sends no protocol: the client fails': async (d) => {
      const { url } = await d.listen({ handleProtocols: () => false });
      const client = d.dial(url, ['chat']);
      const errors = recordErrors(client);

      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(errors.errors[0].message, 'Server sent no subprotocol');
    }
  },

  'opening handshake': {
    "the 'connection' request carries method, url, headers, origin and the client's address": async (d) => {
      const { ours, peer, client, req, url } = await d.connect({
        path: '/chat/room?id=42&x=%20y',
        client: {
          headers: { 'X-Custom-Header': 'custom value', Cookie: 'a=b' },
          origin: 'http://example.test',
          protocolVersion: 13
        }
      });

      assert.equal(client.url, `${url}/chat/room?id=42&x=%20y`);
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
      assert.equal(typeof req.socket.remotePort, 'number');
      assert.ok(req.socket.remotePort > 0 && req.socket.remotePort < 65536);
      assert.equal(req.socket.remotePort, client._socket.localPort);

      // A client offers permessage-deflate by default; a server declines it
      // by default.
      assert.match(req.headers['sec-websocket-extensions'], /permessage-deflate/);
      assert.equal(ours.extensions, '');
      assert.equal(peer.extensions, '');
    }
  },

  'server path option': {
    'accepts the path, with or without a query': async (d) => {
      const server = await d.listen({ path: '/ws' });
      for (const path of ['/ws', '/ws?token=abc']) {
        const connection = next(server.wss, 'connection');
        const client = d.dial(server.url + path);
        await once(client, 'open');
        const [serverSide, req] = await connection;
        assert.equal(req.url, path);
        client.close();
        await Promise.all([closed(client), closed(serverSide)]);
      }
    },

    "a wrong path without an 'unexpected-response' listener: the client gets 'Unexpected server response: 400', no 'connection'": async (d) => {
      const server = await d.listen({ path: '/ws' });
      let connections = 0;
      server.wss.on('connection', () => connections++);

      for (const path of ['/other', '/ws/deeper']) {
        const client = d.dial(`${server.url}${path}`);
        const errors = recordErrors(client);
        let opened = false;
        client.on('open', () => {
          opened = true;
        });

        const result = await closed(client);
        assert.equal(result.code, 1006, path);
        assert.equal(opened, false, path);
        assert.deepEqual(errors.order, ['error', 'close'], path);
        assert.equal(
          errors.errors[0].message,
          'Unexpected server response: 400',
          path
        );
      }
      assert.equal(connections, 0);
      assert.equal(server.wss.clients.size, 0);
    },

    "a wrong path with an 'unexpected-response' listener: (req, res) with status 400 and body 'Bad Request'": async (d) => {
      const server = await d.listen({ path: '/ws' });
      const client = d.dial(`${server.url}/ws/deeper`);
      const errors = recordErrors(client);

      const [req, res] = await next(client, 'unexpected-response');
      assert.ok(req);
      assert.equal(res.statusCode, 400);
      assert.equal(client.readyState, d.Client.CONNECTING);
      assert.deepEqual(errors.errors, []);
      const body = [];
      res.on('data', (chunk) => body.push(chunk));
      await once(res, 'end');
      assert.equal(Buffer.concat(body).toString(), 'Bad Request');

      // The listener owns the outcome; terminating aborts the handshake.
      client.terminate();
      const result = await closed(client);
      assert.equal(result.code, 1006);
      assert.deepEqual(errors.order, ['error', 'close']);
      assert.equal(
        errors.errors[0].message,
        'WebSocket was closed before the connection was established'
      );
    }
  },

  'maxPayload on our side': {
    'accepts a message of exactly maxPayload bytes': async (d) => {
      const { ours, peer } = await d.connect({ ours: { maxPayload: 1024 } });
      const m = await transfer(peer, ours, Buffer.alloc(1024, 1));
      assert.equal(m.data.length, 1024);
    },

    'a larger message: RangeError WS_ERR_UNSUPPORTED_MESSAGE_LENGTH here, 1009 at the peer': async (d) => {
      const { ours, peer } = await d.connect({ ours: { maxPayload: 1024 } });
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
    },

    'counts the total of a fragmented message': async (d) => {
      const { ours, peer } = await d.connect({ ours: { maxPayload: 1024 } });
      const errors = recordErrors(ours);

      peer.send(Buffer.alloc(600), { fin: false });
      peer.send(Buffer.alloc(600), { fin: true });

      const theirs = await closed(peer);
      assert.equal(theirs.code, 1009);
      await closed(ours);
      assert.equal(errors.errors[0].code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    }
  },

  'EventTarget-style API': {
    'onmessage and onclose receive event objects': async (d) => {
      const { ours, peer } = await d.connect();
      const log = [];
      ours.onmessage = (event) => log.push(['message', event.type, event.data]);
      assert.equal(typeof ours.onmessage, 'function');
      const closeEvent = new Promise((resolve) => {
        ours.onclose = resolve;
      });
      const binary = Buffer.from([1, 2]);

      await transfer(peer, ours, 'text');
      await transfer(peer, ours, binary);
      peer.close(4002, 'bye');

      const event = await closeEvent;
      assert.equal(event.type, 'close');
      assert.equal(event.code, 4002);
      assert.equal(event.reason, 'bye');
      assert.equal(event.wasClean, true);
      assert.deepEqual(log, [
        ['message', 'message', 'text'],
        ['message', 'message', binary]
      ]);
    },

    'addEventListener with once, removeEventListener, onerror': async (d) => {
      const { ours, peer } = await d.connect();
      const seen = [];
      const onMessage = (event) => seen.push(event.data);
      const onceListener = (event) => seen.push(`once:${event.data}`);
      ours.addEventListener('message', onMessage);
      ours.addEventListener('message', onceListener, { once: true });

      await transfer(peer, ours, 'first');
      await transfer(peer, ours, 'second');
      ours.removeEventListener('message', onMessage);
      await transfer(peer, ours, 'third');
      assert.deepEqual(seen, ['first', 'once:first', 'second']);

      const errorEvent = new Promise((resolve) => {
        ours.onerror = resolve;
      });
      // An empty frame with the reserved opcode 3 (masked, with an all-zero
      // key, when the peer is the client).
      peer._socket.write(
        d.peerIsClient
          ? Buffer.from([0x83, 0x80, 0, 0, 0, 0])
          : Buffer.from([0x83, 0x00])
      );
      const event = await errorEvent;
      assert.equal(event.type, 'error');
      assert.ok(event.error instanceof RangeError);
      assert.equal(event.error.code, 'WS_ERR_INVALID_OPCODE');
      assert.equal(event.message, 'Invalid WebSocket frame: invalid opcode 3');
      const result = await closed(peer);
      assert.equal(result.code, 1002);
    }
  },

  'many connections': {
    '1,000 concurrent connections each echo a message, then all close': async function (d) {
      this.timeout(60000);
      const N = 1000;
      const { wss, url } = await d.listen({ backlog: 1024 });
      const serverSides = [];
      wss.on('connection', (ws) => {
        serverSides.push(ws);
        echo(ws);
      });

      const clients = Array.from({ length: N }, () => d.dial(url));
      await Promise.all(clients.map((client) => once(client, 'open')));
      // Every client is open once the server has answered it, but the
      // server-side 'connection' may be emitted a bit later than the client's
      // 'open'; wait for the last one.
      while (serverSides.length < N) await next(wss, 'connection');
      assert.equal(wss.clients.size, N);

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
      const serverResults = await Promise.all(serverSides.map(closed));
      for (const result of serverResults) assert.equal(result.code, 1000);
      assert.equal(wss.clients.size, 0);
    }
  }
};

// Scenarios only for our client (against a ws server).
const CLIENT_ONLY = {
  // A server-side socket is handed out already open: it is never CONNECTING.
  'send callbacks and sending after close': {
    'send() while CONNECTING throws': async (d) => {
      const { url } = await d.listen();
      const client = d.dial(url);
      assert.equal(client.readyState, WebSocket.CONNECTING);
      for (const method of ['send', 'ping', 'pong']) {
        assert.throws(() => client[method]('too early'), {
          name: 'Error',
          message: 'WebSocket is not open: readyState 0 (CONNECTING)'
        });
      }
      await once(client, 'open');
    }
  },

  'opening handshake': {
    // Only a client is ever CONNECTING and has a url of its own.
    'readyState is CONNECTING until open, and url is set at once': async (d) => {
      const { url } = await d.listen();
      const client = d.dial(`${url}/x?y=1`);
      assert.equal(client.readyState, WebSocket.CONNECTING);
      assert.equal(client.url, `${url}/x?y=1`);
      assert.equal(client.protocol, '');
      assert.equal(client.bufferedAmount, 0);
      await once(client, 'open');
      assert.equal(client.readyState, WebSocket.OPEN);
    },

    // A client option, against a plain TCP server rather than ws.
    'handshakeTimeout: a server that never answers -> error and 1006': async (d) => {
      const sockets = new Set();
      const silent = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = silent.address();
        const client = d.dial(`ws://127.0.0.1:${port}`, {
          handshakeTimeout: 200
        });
        const errors = recordErrors(client);

        const result = await closed(client);
        assert.equal(result.code, 1006);
        assert.deepEqual(errors.order, ['error', 'close']);
        assert.equal(errors.errors[0].message, 'Opening handshake has timed out');
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    }
  },

  'EventTarget-style API': {
    // A server-side socket is open when it is handed out: 'open' is never
    // emitted on it.
    'onopen, onmessage, onclose receive event objects': async (d) => {
      const { wss, url } = await d.listen();
      const connection = next(wss, 'connection');
      const client = d.dial(url);
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
    }
  }
};

// Scenarios only for our server (with ws clients). clientTracking is a server
// option: with ws as the server these would test ws only.
const SERVER_ONLY = {
  clientTracking: {
    'clients holds the open connections (default)': async (d) => {
      const { wss, url } = await d.listen();
      assert.ok(wss.clients instanceof Set);
      assert.equal(wss.clients.size, 0);

      const serverSides = new Map(); // client port -> server-side socket
      const bothConnected = new Promise((resolve) => {
        wss.on('connection', (ws, req) => {
          serverSides.set(req.socket.remotePort, ws);
          if (serverSides.size === 2) resolve();
        });
      });
      const peers = [d.dial(url), d.dial(url)];
      await Promise.all(peers.map((peer) => once(peer, 'open')));
      await bothConnected;
      assert.equal(wss.clients.size, 2);
      const first = serverSides.get(peers[0]._socket.localPort);
      assert.ok(wss.clients.has(first));

      peers[0].close();
      await Promise.all([closed(peers[0]), closed(first)]);
      assert.equal(wss.clients.size, 1);
      assert.ok(!wss.clients.has(first));
    },

    'clientTracking: false leaves clients undefined': async (d) => {
      const { wss, ours, peer } = await d.connect({
        server: { clientTracking: false }
      });
      assert.equal(wss.clients, undefined);
      const m = await transfer(peer, ours, 'still works');
      assert.equal(m.data.toString(), 'still works');
    }
  }
};

const DIRECTIONS = [
  {
    title: 'our client <-> real ws server',
    ours: 'client',
    Client: WebSocket,
    Server: PeerWebSocketServer,
    only: CLIENT_ONLY
  },
  {
    title: 'real ws client <-> our server',
    ours: 'server',
    Client: PeerWebSocket,
    Server: WebSocketServer,
    only: SERVER_ONLY
  }
];

// Turns a table into describe/it blocks; each test gets the adapter `d` (and
// mocha's context as `this`).
function define(table, d) {
  for (const [title, entry] of Object.entries(table)) {
    if (typeof entry === 'function') {
      it(title, function () {
        return entry.call(this, d);
      });
    } else {
      describe(title, function () {
        define(entry, d);
      });
    }
  }
}

for (const direction of DIRECTIONS) {
  describe(`interop: ${direction.title}`, function () {
    const d = new Pair(direction);

    beforeEach(function () {
      d.t = new Tracker();
    });

    afterEach(function () {
      return d.t.cleanup();
    });

    define(BOTH, d);

    describe(`${direction.ours} only`, function () {
      define(direction.only, d);
    });
  });
}
