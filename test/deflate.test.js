'use strict';

// permessage-deflate (RFC 7692).
//
// - Negotiation with ws both ways (our server <- ws client, ws server <- our
//   client, ours <- ours) over a table of server and client options: every
//   combination of the two *_no_context_takeover flags on both sides, every
//   window size 8..15 on each side, and the rejections; checking the offer,
//   the exact Sec-WebSocket-Extensions answer, `extensions` on both sides and
//   a byte-exact echo (text, binary, empty, payloads that only a too-large
//   window could compress).
// - Messages with ws both ways: 1 MiB random, multi-byte UTF-8, fragmented,
//   100 messages on one context.
// - On the wire (raw TCP peer, our side compresses): RSV1 against the
//   threshold, `compress: false`, fragments, context takeover.
// - Hostile peers: a zip bomb against maxPayload (and memory), corrupt
//   deflate data, RSV1 where it must be clear.
// - Negotiation edge cases with hand-written handshakes, both sides.
// - `{ server }` and `{ noServer }` + handleUpgrade.
//
// Expectations are ws 8.23.1's behaviour: `WSN_TEST_IMPL=ws` runs all of this
// against ws itself.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const zlib = require('node:zlib');
const { once } = require('node:events');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer
} = require('./helpers/impl');
const { Tracker, closed, next } = require('./helpers/interop');
const {
  OP,
  acceptRaw,
  closePayload,
  createRawServer,
  frame,
  httpExchange,
  rawHandshake,
  readUpgradeRequest,
  upgradeRequest,
  upgradeResponse
} = require('./helpers/raw');
const { Cleanup, recordEvents, waitFor } = require('./helpers/util');
const {
  NAME,
  TRAILER,
  StreamDeflater,
  deflateMessage,
  expectedAgreement,
  inflateMessage,
  inflateMessages,
  windowProbe
} = require('./helpers/deflate');

const UTF8_TEXT = 'héllo wörld — ñandú — 日本語のテキスト — Ελληνικά — 🎉🚀𝄞 ';
const BAD_OFFER_BODY = 'Invalid or unacceptable Sec-WebSocket-Extensions header';
const BROWSER_OFFER = 'permessage-deflate; client_max_window_bits';

const DIRECTIONS = [
  { name: 'our server <- ws client', Server: WebSocketServer, Client: PeerWebSocket },
  { name: 'ws server <- our client', Server: PeerWebSocketServer, Client: WebSocket },
  { name: 'our server <- our client', Server: WebSocketServer, Client: WebSocket }
];

function optionsText(o) {
  const parts = Object.entries(o).map(([k, v]) => `${k}: ${v}`);
  return parts.length ? `{ ${parts.join(', ')} }` : '{}';
}

// Echo every message back with the same type.
function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

// Collect the next `n` messages of `ws` as [{ data, isBinary }].
function collect(ws, n) {
  return new Promise((resolve) => {
    const got = [];
    ws.on('message', function onMessage(data, isBinary) {
      got.push({ data, isBinary });
      if (got.length === n) {
        ws.removeListener('message', onMessage);
        resolve(got);
      }
    });
  });
}

// Send every [type, payload] in `list` from `client`, have them echoed and
// check the echoes byte for byte and type for type.
async function assertEchoes(client, list) {
  const echoes = collect(client, list.length);
  for (const [type, payload] of list) {
    client.send(payload, { binary: type === 'binary' });
  }
  const got = await echoes;
  for (let i = 0; i < list.length; i++) {
    const [type, payload] = list[i];
    const expected = Buffer.from(payload);
    const what = `message ${i} (${type}, ${expected.length} bytes)`;
    assert.equal(got[i].isBinary, type === 'binary', what);
    assert.ok(Buffer.isBuffer(got[i].data), what);
    assert.equal(got[i].data.length, expected.length, what);
    assert.ok(got[i].data.equals(expected), `${what}: bytes differ`);
  }
}

describe('permessage-deflate', function () {
  let t;
  const cleanup = new Cleanup();

  beforeEach(function () {
    t = new Tracker();
  });

  afterEach(async function () {
    await t.cleanup();
    await cleanup.run();
  });

  // Starts `Server` with `serverOptions`, connects `Client` with
  // `clientOptions`. Resolves once the client opened, or failed, with
  // { wss, client, rec, upgrade (the 101 response or null), server
  // (the server-side socket or null), req }.
  async function pair(Server, Client, serverOptions, clientOptions, serverSetup) {
    const { wss, url } = await t.listen(Server, serverOptions);
    const connection = next(wss, 'connection');
    let server = null;
    let req = null;
    connection.then(([ws, r]) => {
      server = ws;
      req = r;
      if (serverSetup) serverSetup(ws);
    });
    const client = t.socket(new Client(url, clientOptions));
    const rec = recordEvents(client, ['upgrade', 'open', 'error', 'close']);
    let upgrade = null;
    client.on('upgrade', (res) => {
      upgrade = res;
    });
    await Promise.race([next(client, 'open'), rec.close]);
    if (client.readyState === 1) await connection;
    return {
      wss,
      client,
      rec,
      get upgrade() {
        return upgrade;
      },
      get server() {
        return server;
      },
      get req() {
        return req;
      }
    };
  }

  describe('negotiation with ws both ways (table)', function () {
    const CASES = [];

    // Every combination of the two context takeover flags on both sides.
    for (const off of [undefined, false]) {
      for (let bits = 0; bits < 16; bits++) {
        const s = {};
        const c = {};
        s.serverNoContextTakeover = bits & 1 ? true : off;
        s.clientNoContextTakeover = bits & 2 ? true : off;
        c.serverNoContextTakeover = bits & 4 ? true : off;
        c.clientNoContextTakeover = bits & 8 ? true : off;
        for (const o of [s, c]) {
          for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
        }
        CASES.push([s, c]);
      }
    }

    // Every window size on each side, each parameter.
    for (let w = 8; w <= 15; w++) {
      CASES.push([{ serverMaxWindowBits: w }, {}]);
      CASES.push([{ clientMaxWindowBits: w }, {}]);
      CASES.push([{}, { serverMaxWindowBits: w }]);
      CASES.push([{}, { clientMaxWindowBits: w }]);
    }

    // Windows on both sides, agreed or refused; `false`.
    CASES.push(
      [{ serverMaxWindowBits: 10 }, { serverMaxWindowBits: 12 }],
      [{ serverMaxWindowBits: 12 }, { serverMaxWindowBits: 10 }],
      [{ serverMaxWindowBits: 9 }, { serverMaxWindowBits: 9 }],
      [{ clientMaxWindowBits: 10 }, { clientMaxWindowBits: 12 }],
      [{ clientMaxWindowBits: 12 }, { clientMaxWindowBits: 10 }],
      [{ clientMaxWindowBits: 10 }, { clientMaxWindowBits: false }],
      [{}, { clientMaxWindowBits: false }],
      [{ clientMaxWindowBits: false }, { clientMaxWindowBits: 11 }],
      [{ clientMaxWindowBits: false }, {}],
      [{ serverMaxWindowBits: false }, { serverMaxWindowBits: 10 }],
      [{ serverMaxWindowBits: false }, {}],
      [
        {
          serverNoContextTakeover: true,
          clientNoContextTakeover: true,
          serverMaxWindowBits: 9,
          clientMaxWindowBits: 11
        },
        {
          serverNoContextTakeover: true,
          clientNoContextTakeover: true,
          serverMaxWindowBits: 10,
          clientMaxWindowBits: 12
        }
      ],
      [
        { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
        { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }
      ],
      [{ threshold: 0, serverNoContextTakeover: true }, { threshold: 0, clientNoContextTakeover: true }]
    );

    for (const dir of DIRECTIONS) {
      describe(dir.name, function () {
        for (const [s, c] of CASES) {
          const exp = expectedAgreement(s, c);
          const outcome = exp.status
            ? '400'
            : exp.clientError
              ? 'client refuses the answer'
              : `"${exp.header}"`;

          it(`server ${optionsText(s)}, client ${optionsText(c)}: ${outcome}`, async function () {
            const p = await pair(
              dir.Server,
              dir.Client,
              { perMessageDeflate: { ...s } },
              { perMessageDeflate: { ...c } },
              echo
            );

            if (exp.status) {
              assert.deepEqual(p.rec.log, ['error', 'close']);
              assert.equal(
                p.rec.errors[0].message,
                `Unexpected server response: ${exp.status}`
              );
              assert.deepEqual(await p.rec.close, [1006, '']);
              assert.equal(p.server, null, 'no connection on the server');
              return;
            }

            assert.ok(p.upgrade, "the client emitted 'upgrade'");
            assert.equal(p.upgrade.headers['sec-websocket-extensions'], exp.header);

            if (exp.clientError) {
              assert.deepEqual(p.rec.log, ['upgrade', 'error', 'close']);
              assert.equal(p.rec.errors[0].message, exp.clientError);
              assert.deepEqual(await p.rec.close, [1006, '']);
              return;
            }

            assert.deepEqual(p.rec.log, ['upgrade', 'open']);
            assert.equal(p.req.headers['sec-websocket-extensions'], exp.offer);
            assert.equal(p.client.extensions, NAME);
            assert.equal(p.server.extensions, NAME);

            const list = [
              ['text', UTF8_TEXT.repeat(30)],
              ['text', 'hi'],
              ['text', ''],
              ['binary', Buffer.alloc(0)],
              ['binary', crypto.randomBytes(3000)],
              ['binary', Buffer.alloc(5000, 0x61)],
              ['text', UTF8_TEXT]
            ];
            for (const bits of new Set([exp.serverBits, exp.clientBits])) {
              if (bits < 15) list.push(['binary', windowProbe(bits)]);
            }
            await assertEchoes(p.client, list);
          });
        }
      });
    }

    for (const dir of DIRECTIONS.slice(0, 2)) {
      it(`${dir.name}: no extension when the server does not enable it`, async function () {
        const p = await pair(dir.Server, dir.Client, {}, {}, echo);
        assert.equal(p.req.headers['sec-websocket-extensions'], BROWSER_OFFER);
        assert.equal(p.upgrade.headers['sec-websocket-extensions'], undefined);
        assert.equal(p.client.extensions, '');
        assert.equal(p.server.extensions, '');
        await assertEchoes(p.client, [
          ['text', UTF8_TEXT],
          ['binary', crypto.randomBytes(2000)]
        ]);
      });

      it(`${dir.name}: no offer when the client does not enable it`, async function () {
        const p = await pair(
          dir.Server,
          dir.Client,
          { perMessageDeflate: true },
          { perMessageDeflate: false },
          echo
        );
        assert.equal(p.req.headers['sec-websocket-extensions'], undefined);
        assert.equal(p.upgrade.headers['sec-websocket-extensions'], undefined);
        assert.equal(p.client.extensions, '');
        assert.equal(p.server.extensions, '');
        await assertEchoes(p.client, [['text', UTF8_TEXT.repeat(50)]]);
      });
    }
  });

  describe('messages with ws both ways', function () {
    for (const dir of DIRECTIONS) {
      describe(dir.name, function () {
        for (const [label, options] of [
          ['context takeover', {}],
          ['no context takeover', { serverNoContextTakeover: true, clientNoContextTakeover: true }]
        ]) {
          it(`a 1 MiB random binary message and 1 MiB of multi-byte UTF-8 text, byte-exact (${label})`, async function () {
            const p = await pair(
              dir.Server,
              dir.Client,
              { perMessageDeflate: { ...options } },
              { perMessageDeflate: true },
              echo
            );
            assert.equal(p.client.extensions, NAME);
            let text = UTF8_TEXT.repeat(Math.ceil((1 << 20) / Buffer.byteLength(UTF8_TEXT)));
            text += crypto.randomBytes(1000).toString('base64');
            await assertEchoes(p.client, [
              ['binary', crypto.randomBytes(1 << 20)],
              ['text', text],
              ['binary', Buffer.alloc(1 << 20, 0x5a)]
            ]);
          });
        }

        it('fragmented compressed messages (fin: false, then fin: true) both ways', async function () {
          const p = await pair(
            dir.Server,
            dir.Client,
            { perMessageDeflate: true },
            { perMessageDeflate: true },
            (ws) => {
              // Echo each message back in three fragments.
              ws.on('message', (data, isBinary) => {
                const a = Math.floor(data.length / 3);
                ws.send(data.subarray(0, a), { binary: isBinary, fin: false });
                ws.send(data.subarray(a, 2 * a), { binary: isBinary, fin: false });
                ws.send(data.subarray(2 * a), { binary: isBinary, fin: true });
              });
            }
          );
          const text = UTF8_TEXT.repeat(100);
          const bytes = Buffer.concat([crypto.randomBytes(5000), Buffer.alloc(5000, 1)]);

          const echoes = collect(p.client, 2);
          p.client.send(text.slice(0, 400), { fin: false });
          p.client.send(text.slice(400), { fin: true });
          p.client.send(bytes.subarray(0, 10), { fin: false });
          p.client.send(bytes.subarray(10, 7000), { fin: false });
          p.client.send(bytes.subarray(7000), { fin: true });
          const got = await echoes;

          assert.equal(got[0].isBinary, false);
          assert.equal(got[0].data.toString(), text);
          assert.equal(got[1].isBinary, true);
          assert.ok(got[1].data.equals(bytes));
        });

        it('100 similar messages on one context, both ways', async function () {
          const p = await pair(
            dir.Server,
            dir.Client,
            { perMessageDeflate: true },
            { perMessageDeflate: true },
            echo
          );
          const list = [];
          for (let i = 0; i < 100; i++) {
            const m = JSON.stringify({ id: i, user: 'user-' + (i % 7), text: UTF8_TEXT, n: i * i });
            list.push([i % 2 ? 'binary' : 'text', i % 2 ? Buffer.from(m) : m]);
          }
          await assertEchoes(p.client, list);
        });
      });
    }
  });

  // Our server and a raw TCP client that offers permessage-deflate: what
  // goes over the wire.
  describe('on the wire: our server, raw client', function () {
    async function openRaw(serverOptions, offer = BROWSER_OFFER) {
      const { wss, port } = await t.listen(WebSocketServer, serverOptions);
      const connection = next(wss, 'connection');
      const raw = await rawHandshake(port, {
        headers: offer === null ? {} : { 'Sec-WebSocket-Extensions': offer }
      });
      cleanup.add(() => raw.socket.destroy());
      const [ws] = await connection;
      return { ...raw, ws, wss };
    }

    it('threshold (own side without context takeover): below it RSV1 is clear, at and above it set', async function () {
      const { ws, reader, headers } = await openRaw({
        perMessageDeflate: { threshold: 100, serverNoContextTakeover: true }
      });
      assert.equal(headers['sec-websocket-extensions'], `${NAME}; server_no_context_takeover`);
      assert.equal(ws.extensions, NAME);

      const messages = [
        ['a'.repeat(99), false],
        ['a'.repeat(100), true],
        ['é'.repeat(50), true], // 50 characters, 100 bytes
        ['é'.repeat(49) + 'a', false], // 99 bytes
        [Buffer.alloc(99, 7), false],
        [Buffer.alloc(100, 7), true],
        ['b'.repeat(5000), true]
      ];
      for (const [m] of messages) ws.send(m);

      for (const [m, compressed] of messages) {
        const f = await reader.next();
        const expected = Buffer.from(m);
        assert.equal(f.opcode, typeof m === 'string' ? OP.TEXT : OP.BINARY);
        assert.equal(f.fin, true);
        assert.equal(f.masked, false);
        assert.equal(f.rsv1, compressed, `RSV1 for ${expected.length} bytes`);
        const data = compressed ? inflateMessage(f.payload) : f.payload;
        assert.ok(data.equals(expected));
        if (compressed && expected.length >= 1000) {
          assert.ok(f.payload.length < expected.length / 10);
        }
      }
    });

    it('with context takeover the threshold does not apply: every message is compressed', async function () {
      const { ws, reader, headers } = await openRaw({
        perMessageDeflate: { threshold: 100 }
      });
      assert.equal(headers['sec-websocket-extensions'], NAME);
      const messages = ['a', 'a'.repeat(99), '', 'x'.repeat(1000)];
      for (const m of messages) ws.send(m);
      const payloads = [];
      for (let i = 0; i < messages.length; i++) {
        const f = await reader.next();
        assert.equal(f.rsv1, true, `message ${i} is compressed`);
        payloads.push(f.payload);
      }
      const got = inflateMessages(payloads).map((b) => b.toString());
      assert.deepEqual(got, messages);
    });

    it('compress: false sends RSV1 clear and leaves the context alone', async function () {
      const { ws, reader } = await openRaw({ perMessageDeflate: true });
      const text = UTF8_TEXT.repeat(10);
      ws.send(text);
      ws.send(text, { compress: false });
      ws.send(Buffer.from(text), { compress: false, binary: true });
      ws.send(text);

      const f1 = await reader.next();
      const f2 = await reader.next();
      const f3 = await reader.next();
      const f4 = await reader.next();
      assert.equal(f1.rsv1, true);
      assert.equal(f2.rsv1, false);
      assert.equal(f2.payload.toString(), text);
      assert.equal(f3.rsv1, false);
      assert.equal(f3.opcode, OP.BINARY);
      assert.equal(f3.payload.toString(), text);
      assert.equal(f4.rsv1, true);
      // f4 refers back to f1's text (shared context): tiny, and it inflates
      // only on the context f1 left.
      assert.ok(f4.payload.length < 20, `second copy is ${f4.payload.length} bytes`);
      const got = inflateMessages([f1.payload, f4.payload]).map((b) => b.toString());
      assert.deepEqual(got, [text, text]);
    });

    it('options are spread over the defaults: an own undefined `compress` or `binary` wins', async function () {
      // ws builds { binary, mask, compress: true, fin: true, ...options }
      // and reads `compress` for truth: undefined (present) or 0 send plain,
      // an absent one compresses; `binary: undefined` sends text.
      const { ws, reader } = await openRaw({ perMessageDeflate: true });
      const text = UTF8_TEXT.repeat(10);
      ws.send(text, { compress: undefined });
      ws.send(text, { compress: 0 });
      ws.send(Buffer.from(text), { binary: undefined, compress: false });
      ws.send(Buffer.from(text), {});
      const frames = [];
      for (let i = 0; i < 4; i++) frames.push(await reader.next());
      assert.deepEqual(frames.map((f) => [f.opcode, f.rsv1]), [
        [OP.TEXT, false],
        [OP.TEXT, false],
        [OP.TEXT, false],
        [OP.BINARY, true]
      ]);
      assert.equal(frames[2].payload.toString(), text);
    });

    it('a fragmented message: RSV1 on the first frame only, one deflate stream over the fragments', async function () {
      const { ws, reader } = await openRaw({ perMessageDeflate: true });
      const parts = [UTF8_TEXT.repeat(5), 'middle part', UTF8_TEXT.repeat(3)];
      ws.send(parts[0], { fin: false });
      ws.send(parts[1], { fin: false });
      ws.send(parts[2], { fin: true });
      ws.send(Buffer.from('after'), { binary: true });

      const frames = [await reader.next(), await reader.next(), await reader.next()];
      assert.deepEqual(
        frames.map((f) => [f.opcode, f.fin, f.rsv1]),
        [
          [OP.TEXT, false, true],
          [OP.CONT, false, false],
          [OP.CONT, true, false]
        ]
      );
      const after = await reader.next();
      assert.equal(after.opcode, OP.BINARY);
      assert.equal(after.rsv1, true);
      const got = inflateMessages([
        Buffer.concat(frames.map((f) => f.payload)),
        after.payload
      ]).map((b) => b.toString());
      assert.deepEqual(got, [parts.join(''), 'after']);
    });

    it('a fragmented message whose first fragment is below the threshold is not compressed at all', async function () {
      const { ws, reader } = await openRaw({
        perMessageDeflate: { serverNoContextTakeover: true, threshold: 100 }
      });
      ws.send('short', { fin: false });
      ws.send('z'.repeat(5000), { fin: true });
      const f1 = await reader.next();
      const f2 = await reader.next();
      assert.deepEqual([f1.opcode, f1.fin, f1.rsv1], [OP.TEXT, false, false]);
      assert.deepEqual([f2.opcode, f2.fin, f2.rsv1], [OP.CONT, true, false]);
      assert.equal(f1.payload.toString() + f2.payload.toString(), 'short' + 'z'.repeat(5000));
    });

    for (const [label, options] of [
      ['context takeover', {}],
      ['server_no_context_takeover', { serverNoContextTakeover: true, threshold: 0 }]
    ]) {
      it(`100 similar messages from the server (${label})`, async function () {
        const { ws, reader } = await openRaw({ perMessageDeflate: options });
        const messages = [];
        for (let i = 0; i < 100; i++) {
          messages.push(
            JSON.stringify({ id: i, type: 'update', user: 'someone', text: UTF8_TEXT.repeat(3) })
          );
        }
        for (const m of messages) ws.send(m);
        const payloads = [];
        for (let i = 0; i < 100; i++) {
          const f = await reader.next();
          assert.equal(f.rsv1, true);
          payloads.push(f.payload);
        }
        const first = payloads[0].length;
        const later = payloads.slice(1).map((p) => p.length);
        if (options.serverNoContextTakeover) {
          // Each message compressed on its own: about the first one's size,
          // and each inflates alone.
          assert.ok(Math.min(...later) > first * 0.8, `${first} then ${Math.min(...later)}`);
          for (let i = 0; i < 100; i++) {
            assert.equal(inflateMessage(payloads[i]).toString(), messages[i]);
          }
        } else {
          assert.ok(Math.max(...later) < first / 4, `${first} then up to ${Math.max(...later)}`);
          assert.deepEqual(inflateMessages(payloads).map((b) => b.toString()), messages);
        }
      });
    }

    for (let bits = 8; bits <= 15; bits++) {
      it(`compresses within the agreed window: server_max_window_bits=${bits}`, async function () {
        const { ws, reader, headers } = await openRaw(
          { perMessageDeflate: true },
          `${NAME}; server_max_window_bits=${bits}`
        );
        assert.equal(headers['sec-websocket-extensions'], `${NAME}; server_max_window_bits=${bits}`);
        const probe = windowProbe(bits);
        ws.send(probe);
        ws.send(probe);
        const payloads = [(await reader.next()).payload, (await reader.next()).payload];
        const got = inflateMessages(payloads, bits);
        assert.ok(got[0].equals(probe));
        assert.ok(got[1].equals(probe));
      });
    }

    it('inflates what the client sends: on one context, fragmented, uncompressed in between', async function () {
      const { ws, socket } = await openRaw({ perMessageDeflate: true });
      const got = collect(ws, 104);
      const deflater = new StreamDeflater();
      cleanup.add(() => deflater.close());
      const messages = [];
      for (let i = 0; i < 100; i++) {
        const m = JSON.stringify({ id: i, text: UTF8_TEXT });
        messages.push(m);
        socket.write(frame({ opcode: OP.TEXT, rsv1: true, payload: await deflater.compress(m) }));
      }
      // Uncompressed, then a compressed message in three fragments with a
      // ping in between, then two more on the same context (one empty).
      socket.write(frame({ opcode: OP.BINARY, payload: 'plain' }));
      messages.push('plain');
      const big = UTF8_TEXT.repeat(40);
      const c = await deflater.compress(big);
      socket.write(frame({ opcode: OP.TEXT, rsv1: true, fin: false, payload: c.subarray(0, 10) }));
      socket.write(frame({ opcode: OP.PING, payload: 'p' }));
      socket.write(frame({ opcode: OP.CONT, fin: false, payload: c.subarray(10, 20) }));
      socket.write(frame({ opcode: OP.CONT, fin: true, payload: c.subarray(20) }));
      messages.push(big);
      socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload: await deflater.compress('x'.repeat(300)) }));
      messages.push('x'.repeat(300));
      socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload: await deflater.compress('') }));
      messages.push('');

      const received = await got;
      assert.deepEqual(received.map((m) => m.data.toString()), messages);
      assert.deepEqual(
        received.slice(100).map((m) => m.isBinary),
        [true, false, true, true]
      );
    });

    it('a frame that is one whole deflate stream (final block set) inflates, and so does the next', async function () {
      const { ws, socket } = await openRaw({ perMessageDeflate: true });
      const got = collect(ws, 2);
      socket.write(frame({ opcode: OP.TEXT, rsv1: true, payload: zlib.deflateRawSync('first message') }));
      socket.write(frame({ opcode: OP.TEXT, rsv1: true, payload: deflateMessage('second message') }));
      const received = await got;
      assert.deepEqual(received.map((m) => m.data.toString()), ['first message', 'second message']);
    });
  });

  // Our client and a raw TCP server that accepts permessage-deflate.
  describe('on the wire: our client, raw server', function () {
    async function openClient(answer, clientOptions = {}) {
      let serverSide;
      const accepted = new Promise((resolve) => {
        serverSide = resolve;
      });
      const raw = await createRawServer(async (socket) => {
        const { request, reader } = await acceptRaw(socket, {
          headers: answer === null ? {} : { 'Sec-WebSocket-Extensions': answer }
        });
        serverSide({ socket, request, reader });
      });
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url, clientOptions);
      cleanup.add(() => ws.terminate());
      ws.on('error', () => {});
      await once(ws, 'open');
      return { ws, ...(await accepted) };
    }

    it('offers exactly what ws offers for its options', async function () {
      for (const [options, offer] of [
        [undefined, BROWSER_OFFER],
        [true, BROWSER_OFFER],
        [{}, BROWSER_OFFER],
        [
          {
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            serverMaxWindowBits: 10,
            clientMaxWindowBits: 11
          },
          `${NAME}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11`
        ],
        [{ clientMaxWindowBits: false }, NAME],
        [{ serverMaxWindowBits: 8, threshold: 10 }, `${NAME}; server_max_window_bits=8; client_max_window_bits`]
      ]) {
        const { ws, request } = await openClient(null, options === undefined ? {} : { perMessageDeflate: options });
        assert.equal(request.headers['sec-websocket-extensions'], offer, optionsText(options || {}));
        assert.equal(ws.extensions, '');
        ws.terminate();
        await cleanup.run();
      }
    });

    it('masks compressed frames; RSV1 against the threshold with client_no_context_takeover', async function () {
      const { ws, reader } = await openClient(`${NAME}; client_no_context_takeover`, {
        perMessageDeflate: { threshold: 50 }
      });
      assert.equal(ws.extensions, NAME);
      ws.send('y'.repeat(49));
      ws.send('y'.repeat(50));
      ws.send(Buffer.alloc(3000, 3));
      ws.send('y'.repeat(500), { compress: false });
      const frames = [];
      for (let i = 0; i < 4; i++) frames.push(await reader.next());
      assert.deepEqual(frames.map((f) => f.masked), [true, true, true, true]);
      assert.deepEqual(frames.map((f) => f.rsv1), [false, true, true, false]);
      assert.equal(frames[0].payload.toString(), 'y'.repeat(49));
      assert.equal(inflateMessage(frames[1].payload).toString(), 'y'.repeat(50));
      assert.ok(inflateMessage(frames[2].payload).equals(Buffer.alloc(3000, 3)));
      assert.equal(frames[3].payload.toString(), 'y'.repeat(500));
    });

    for (const [label, answer] of [
      ['context takeover', NAME],
      ['client_no_context_takeover', `${NAME}; client_no_context_takeover`]
    ]) {
      it(`100 similar messages from the client (${label}); a fragmented one`, async function () {
        const { ws, reader } = await openClient(answer, { perMessageDeflate: { threshold: 0 } });
        const messages = [];
        for (let i = 0; i < 100; i++) {
          messages.push(JSON.stringify({ id: i, type: 'event', text: UTF8_TEXT.repeat(3) }));
        }
        for (const m of messages) ws.send(m);
        const payloads = [];
        for (let i = 0; i < 100; i++) {
          const f = await reader.next();
          assert.equal(f.rsv1, true);
          assert.equal(f.masked, true);
          payloads.push(f.payload);
        }
        const first = payloads[0].length;
        const later = payloads.slice(1).map((p) => p.length);
        if (answer === NAME) {
          assert.ok(Math.max(...later) < first / 4, `${first} then up to ${Math.max(...later)}`);
          assert.deepEqual(inflateMessages(payloads).map((b) => b.toString()), messages);
        } else {
          assert.ok(Math.min(...later) > first * 0.8, `${first} then ${Math.min(...later)}`);
          for (let i = 0; i < 100; i++) {
            assert.equal(inflateMessage(payloads[i]).toString(), messages[i]);
          }
        }

        ws.send(Buffer.alloc(2000, 9), { fin: false });
        ws.send(Buffer.alloc(2000, 8), { fin: true });
        const f1 = await reader.next();
        const f2 = await reader.next();
        assert.deepEqual([f1.opcode, f1.fin, f1.rsv1], [OP.BINARY, false, true]);
        assert.deepEqual([f2.opcode, f2.fin, f2.rsv1], [OP.CONT, true, false]);
        const whole = Buffer.concat([f1.payload, f2.payload]);
        const data =
          answer === NAME
            ? inflateMessages([...payloads, whole])[100]
            : inflateMessage(whole);
        assert.ok(data.equals(Buffer.concat([Buffer.alloc(2000, 9), Buffer.alloc(2000, 8)])));
      });
    }

    for (let bits = 8; bits <= 15; bits++) {
      it(`compresses within the agreed window: client_max_window_bits=${bits}`, async function () {
        const { ws, reader, request } = await openClient(`${NAME}; client_max_window_bits=${bits}`);
        assert.equal(request.headers['sec-websocket-extensions'], BROWSER_OFFER);
        assert.equal(ws.extensions, NAME);
        const probe = windowProbe(bits);
        ws.send(probe);
        ws.send(probe);
        const payloads = [(await reader.next()).payload, (await reader.next()).payload];
        const got = inflateMessages(payloads, bits);
        assert.ok(got[0].equals(probe));
        assert.ok(got[1].equals(probe));
      });
    }

    it('inflates what the server sends on one context, with the window it was told', async function () {
      const { ws, socket } = await openClient(`${NAME}; server_max_window_bits=9`, {
        perMessageDeflate: { serverMaxWindowBits: 9 }
      });
      const deflater = new StreamDeflater({ windowBits: 9 });
      cleanup.add(() => deflater.close());
      const messages = [];
      for (let i = 0; i < 20; i++) messages.push(`${i}: ${UTF8_TEXT.repeat(i)}`);
      const got = collect(ws, messages.length);
      for (const m of messages) {
        socket.write(frame({ opcode: OP.TEXT, rsv1: true, mask: false, payload: await deflater.compress(m) }));
      }
      assert.deepEqual((await got).map((m) => m.data.toString()), messages);
    });
  });

  describe('hostile peers', function () {
    // Handshake by hand with our server, agreeing permessage-deflate, and
    // record the server-side socket's events.
    async function openRaw(serverOptions, offer = BROWSER_OFFER) {
      const { wss, port } = await t.listen(WebSocketServer, serverOptions);
      const connection = new Promise((resolve) => {
        wss.once('connection', (ws) => resolve({ ws, rec: recordEvents(ws) }));
      });
      const raw = await rawHandshake(port, {
        headers: offer === null ? {} : { 'Sec-WebSocket-Extensions': offer }
      });
      cleanup.add(() => raw.socket.destroy());
      return { ...raw, ...(await connection), wss };
    }

    // The server answers a violation: 'error' (checked by the caller), a
    // close frame with `code` and no reason, RSV1 clear; 'close' 1006 as the
    // peer never answers (ws stops reading after an error).
    async function assertClosedWith(raw, code, log = ['error', 'close']) {
      const frames = await raw.reader.untilClose();
      assert.equal(frames.length, 1, 'one frame: the close frame');
      assert.equal(frames[0].opcode, OP.CLOSE);
      assert.equal(frames[0].rsv1, false);
      assert.equal(frames[0].code, code);
      assert.equal(frames[0].reason, '');
      assert.deepEqual(await raw.rec.close, [1006, '']);
      assert.deepEqual(raw.rec.log, log);
    }

    // The error must be exactly what ws emits.
    function assertError(err, Class, message, code) {
      assert.equal(err.constructor, Class);
      assert.equal(err.message, message);
      assert.equal(err.code, code);
    }

    function bombPayload(bytesOfZeros) {
      // Raw deflate of `bytesOfZeros` zero bytes, built 1 MiB at a time.
      return new Promise((resolve) => {
        const z = zlib.createDeflateRaw({ level: 9 });
        const out = [];
        z.on('data', (c) => out.push(c));
        const mib = Buffer.alloc(1 << 20);
        for (let i = 0; i < bytesOfZeros / (1 << 20); i++) z.write(mib);
        z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          z.close();
          const all = Buffer.concat(out);
          resolve(all.subarray(0, all.length - 4));
        });
      });
    }

    it('zip bomb: 10 MiB of zeros in 10 KB against maxPayload 1 MiB -> WS_ERR_UNSUPPORTED_MESSAGE_LENGTH, close 1009', async function () {
      const raw = await openRaw({ perMessageDeflate: true, maxPayload: 1 << 20 });
      const payload = deflateMessage(Buffer.alloc(10 << 20));
      assert.ok(payload.length < 11000);
      raw.socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload }));
      const err = await raw.rec.error;
      assertError(err, RangeError, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      assert.equal(raw.rec.readyStateAtError, WebSocket.CLOSING);
      await assertClosedWith(raw, 1009);
      assert.equal(raw.rec.messages.length, 0);
    });

    it('maxPayload counts inflated bytes: exactly maxPayload passes, one more byte is 1009', async function () {
      const raw = await openRaw({ perMessageDeflate: true, maxPayload: 1 << 20 });
      raw.socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload: deflateMessage(Buffer.alloc(1 << 20, 1)) }));
      raw.socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload: deflateMessage(Buffer.alloc((1 << 20) + 1, 1)) }));
      const err = await raw.rec.error;
      assertError(err, RangeError, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      await assertClosedWith(raw, 1009, ['message', 'error', 'close']);
      assert.equal(raw.rec.messages.length, 1);
      assert.ok(raw.rec.messages[0][0].equals(Buffer.alloc(1 << 20, 1)));
    });

    it('zip bomb over fragments: each fragment small, the message above maxPayload -> 1009', async function () {
      const raw = await openRaw({ perMessageDeflate: true, maxPayload: 100000 });
      const deflater = new StreamDeflater();
      cleanup.add(() => deflater.close());
      const first = await deflater.compress(Buffer.alloc(60000), false);
      const second = await deflater.compress(Buffer.alloc(60000));
      raw.socket.write(frame({ opcode: OP.BINARY, rsv1: true, fin: false, payload: first }));
      raw.socket.write(frame({ opcode: OP.CONT, fin: true, payload: second }));
      const err = await raw.rec.error;
      assertError(err, RangeError, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      await assertClosedWith(raw, 1009);
      assert.equal(raw.rec.messages.length, 0);
    });

    it('zip bomb: 256 MiB of zeros against maxPayload 1 MiB does not blow memory', async function () {
      const payload = await bombPayload(256 << 20);
      assert.ok(payload.length < 300000);
      const raw = await openRaw({ perMessageDeflate: true, maxPayload: 1 << 20 });

      const before = process.memoryUsage.rss();
      let peak = before;
      const timer = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage.rss());
      }, 2);
      cleanup.add(() => clearInterval(timer));

      raw.socket.write(frame({ opcode: OP.BINARY, rsv1: true, payload }));
      const err = await raw.rec.error;
      await assertClosedWith(raw, 1009);
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());

      assertError(err, RangeError, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      const grew = (peak - before) / (1 << 20);
      assert.ok(grew < 40, `RSS grew by ${grew.toFixed(1)} MiB`);
    });

    for (const [label, payload, message] of [
      ['an invalid block type', Buffer.from([0xff, 0xff, 0xff, 0xff]), 'invalid block type'],
      ['bad stored block lengths', Buffer.from([0x00, 0x05, 0x00, 0x00, 0x00]), 'invalid stored block lengths'],
      [
        'a back reference before the start of the data',
        // A fixed-Huffman block whose first code is a length/distance pair.
        Buffer.from([0x03, 0x02, 0x00, 0x00]),
        'invalid distance too far back'
      ]
    ]) {
      it(`corrupt deflate data (${label}) -> zlib's error, code Z_DATA_ERROR, close 1007`, async function () {
        const raw = await openRaw({ perMessageDeflate: true });
        raw.socket.write(frame({ opcode: OP.TEXT, rsv1: true, payload }));
        const err = await raw.rec.error;
        assert.equal(err.constructor, Error);
        assert.equal(err.code, 'Z_DATA_ERROR');
        assert.equal(err.errno, -3);
        assert.equal(err.message, message);
        await assertClosedWith(raw, 1007);
        assert.equal(raw.rec.messages.length, 0);
      });
    }

    it('corrupt data in the second fragment of a compressed message -> Z_DATA_ERROR, 1007', async function () {
      const raw = await openRaw({ perMessageDeflate: true });
      // A non-final fragment keeps the 00 00 ff ff tail of its flush.
      const good = Buffer.concat([deflateMessage(Buffer.from(UTF8_TEXT)), TRAILER]);
      raw.socket.write(frame({ opcode: OP.TEXT, rsv1: true, fin: false, payload: good }));
      raw.socket.write(frame({ opcode: OP.CONT, fin: true, payload: Buffer.from([0xff, 0xff, 0xff]) }));
      const err = await raw.rec.error;
      assert.equal(err.code, 'Z_DATA_ERROR');
      assert.equal(err.message, 'invalid block type');
      await assertClosedWith(raw, 1007);
    });

    it('compressed text that inflates to invalid UTF-8 -> WS_ERR_INVALID_UTF8, 1007', async function () {
      const raw = await openRaw({ perMessageDeflate: true });
      raw.socket.write(frame({ opcode: OP.TEXT, rsv1: true, payload: deflateMessage(Buffer.from([0x61, 0xff, 0xfe])) }));
      const err = await raw.rec.error;
      assertError(err, Error, 'Invalid WebSocket frame: invalid UTF-8 sequence', 'WS_ERR_INVALID_UTF8');
      await assertClosedWith(raw, 1007);
    });

    const RSV1_CASES = [
      ['a ping', true, [frame({ opcode: OP.PING, rsv1: true, payload: 'x' })]],
      ['a pong', true, [frame({ opcode: OP.PONG, rsv1: true, payload: '' })]],
      ['a close frame', true, [frame({ opcode: OP.CLOSE, rsv1: true, payload: closePayload(1000) })]],
      [
        'a continuation frame',
        true,
        [
          frame({ opcode: OP.TEXT, rsv1: true, fin: false, payload: deflateMessage('abc') }),
          frame({ opcode: OP.CONT, rsv1: true, payload: deflateMessage('def') })
        ]
      ],
      [
        'a continuation frame of an uncompressed message',
        true,
        [
          frame({ opcode: OP.TEXT, fin: false, payload: 'abc' }),
          frame({ opcode: OP.CONT, rsv1: true, payload: 'def' })
        ]
      ],
      ['a data frame, extension not agreed (not offered)', null, [frame({ opcode: OP.TEXT, rsv1: true, payload: deflateMessage('abc') })]],
      ['a data frame, extension not agreed (server has it off)', false, [frame({ opcode: OP.BINARY, rsv1: true, payload: deflateMessage('abc') })]]
    ];

    for (const [label, mode, frames] of RSV1_CASES) {
      it(`RSV1 on ${label} -> WS_ERR_UNEXPECTED_RSV_1, close 1002`, async function () {
        const raw = await openRaw(
          { perMessageDeflate: mode !== false },
          mode === null ? null : BROWSER_OFFER
        );
        assert.equal(raw.headers['sec-websocket-extensions'], mode === true ? NAME : undefined);
        assert.equal(raw.ws.extensions, mode === true ? NAME : '');
        for (const f of frames) raw.socket.write(f);
        const err = await raw.rec.error;
        assertError(err, RangeError, 'Invalid WebSocket frame: RSV1 must be clear', 'WS_ERR_UNEXPECTED_RSV_1');
        await assertClosedWith(raw, 1002);
        assert.equal(raw.rec.messages.length, 0);
      });
    }

    describe('towards our client', function () {
      async function openClient(clientOptions, answer = NAME) {
        let serverSide;
        const accepted = new Promise((resolve) => {
          serverSide = resolve;
        });
        const raw = await createRawServer(async (socket) => {
          const { reader } = await acceptRaw(socket, {
            headers: answer === null ? {} : { 'Sec-WebSocket-Extensions': answer }
          });
          serverSide({ socket, reader });
        });
        cleanup.add(() => raw.close());
        const ws = new WebSocket(raw.url, clientOptions);
        const rec = recordEvents(ws);
        cleanup.add(() => ws.terminate());
        await waitFor(ws, 'open');
        return { ws, rec, ...(await accepted) };
      }

      async function assertClientClosedWith(c, code) {
        const frames = await c.reader.untilClose();
        assert.equal(frames.length, 1);
        assert.equal(frames[0].opcode, OP.CLOSE);
        assert.equal(frames[0].masked, true);
        assert.equal(frames[0].code, code);
        assert.deepEqual(await c.rec.close, [1006, '']);
        assert.deepEqual(c.rec.log, ['open', 'error', 'close']);
      }

      it('zip bomb against the client maxPayload -> 1009', async function () {
        const c = await openClient({ maxPayload: 1 << 20 });
        c.socket.write(frame({ opcode: OP.BINARY, rsv1: true, mask: false, payload: deflateMessage(Buffer.alloc(10 << 20)) }));
        const err = await c.rec.error;
        assertError(err, RangeError, 'Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
        await assertClientClosedWith(c, 1009);
      });

      it('corrupt deflate data from the server -> Z_DATA_ERROR, 1007', async function () {
        const c = await openClient({});
        c.socket.write(frame({ opcode: OP.BINARY, rsv1: true, mask: false, payload: Buffer.from([0xff, 0xff]) }));
        const err = await c.rec.error;
        assert.equal(err.constructor, Error);
        assert.equal(err.message, 'invalid block type');
        assert.equal(err.code, 'Z_DATA_ERROR');
        await assertClientClosedWith(c, 1007);
      });

      it('RSV1 from a server that did not agree the extension -> 1002', async function () {
        const c = await openClient({}, null);
        assert.equal(c.ws.extensions, '');
        c.socket.write(frame({ opcode: OP.TEXT, rsv1: true, mask: false, payload: deflateMessage('x') }));
        const err = await c.rec.error;
        assertError(err, RangeError, 'Invalid WebSocket frame: RSV1 must be clear', 'WS_ERR_UNEXPECTED_RSV_1');
        await assertClientClosedWith(c, 1002);
      });

      it('RSV1 on a ping from the server -> 1002', async function () {
        const c = await openClient({});
        c.socket.write(frame({ opcode: OP.PING, rsv1: true, mask: false, payload: '' }));
        const err = await c.rec.error;
        assertError(err, RangeError, 'Invalid WebSocket frame: RSV1 must be clear', 'WS_ERR_UNEXPECTED_RSV_1');
        await assertClientClosedWith(c, 1002);
      });
    });
  });

  describe('negotiation edge cases: raw handshakes with our server', function () {
    async function handshake(serverOptions, extensionsHeader) {
      const { port } = await t.listen(WebSocketServer, serverOptions);
      const headers = extensionsHeader === undefined ? {} : { 'Sec-WebSocket-Extensions': extensionsHeader };
      return httpExchange(port, upgradeRequest({ headers }));
    }

    const ACCEPTED = [
      ['a browser offer', {}, BROWSER_OFFER, NAME],
      ['a bare offer', {}, NAME, NAME],
      ['a browser offer, server with no context takeover', { serverNoContextTakeover: true }, BROWSER_OFFER, `${NAME}; server_no_context_takeover`],
      ['a browser offer, server fixing the client window', { clientMaxWindowBits: 10 }, BROWSER_OFFER, `${NAME}; client_max_window_bits=10`],
      [
        'several offers: the first acceptable one is chosen',
        { serverMaxWindowBits: 12 },
        `${NAME}; server_max_window_bits=10, ${NAME}; server_max_window_bits=13; client_no_context_takeover, ${NAME}`,
        `${NAME}; server_max_window_bits=12; client_no_context_takeover`
      ],
      [
        'several offers: the first one when it is acceptable',
        {},
        `${NAME}; server_max_window_bits=10, ${NAME}`,
        `${NAME}; server_max_window_bits=10`
      ],
      ['an unknown extension before ours', {}, `x-webkit-deflate-frame, ${NAME}; client_max_window_bits`, NAME],
      ['an unknown extension alone', {}, 'x-unknown; foo=bar', undefined],
      ['an offer when the server has the extension off', false, BROWSER_OFFER, undefined],
      ['an invalid offer when the server has the extension off', false, `${NAME}; server_max_window_bits=7`, undefined],
      ['quoted parameter values', {}, `${NAME}; client_max_window_bits="10"`, `${NAME}; client_max_window_bits=10`],
      ['spaces and tabs', {}, `${NAME} ;\tserver_no_context_takeover ; client_max_window_bits`, `${NAME}; server_no_context_takeover`]
    ];

    for (const [label, pmd, offer, answer] of ACCEPTED) {
      it(`${label}: 101, Sec-WebSocket-Extensions ${answer === undefined ? 'absent' : `"${answer}"`}`, async function () {
        const res = await handshake({ perMessageDeflate: pmd }, offer);
        assert.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols');
        assert.equal(res.headers['sec-websocket-extensions'], answer);
      });
    }

    it('the server side socket reports the agreement in `extensions`', async function () {
      const { wss, port } = await t.listen(WebSocketServer, { perMessageDeflate: true });
      const connection = next(wss, 'connection');
      const raw = await rawHandshake(port, { headers: { 'Sec-WebSocket-Extensions': 'x-unknown, ' + BROWSER_OFFER } });
      cleanup.add(() => raw.socket.destroy());
      const [ws] = await connection;
      assert.equal(ws.extensions, NAME);
    });

    const REJECTED = [
      ['server_max_window_bits=7', {}, `${NAME}; server_max_window_bits=7`],
      ['server_max_window_bits=16', {}, `${NAME}; server_max_window_bits=16`],
      ['server_max_window_bits without a value', {}, `${NAME}; server_max_window_bits`],
      ['client_max_window_bits=abc', {}, `${NAME}; client_max_window_bits=abc`],
      ['a value on server_no_context_takeover', {}, `${NAME}; server_no_context_takeover=1`],
      ['an unknown parameter', {}, `${NAME}; foo`],
      ['a repeated parameter', {}, `${NAME}; server_no_context_takeover; server_no_context_takeover`],
      ['a syntax error', {}, `${NAME};;`],
      ['a trailing comma', {}, `${NAME},`],
      ['an invalid offer after a valid one', {}, `${NAME}, ${NAME}; server_max_window_bits=7`],
      ['no acceptable offer (server needs a smaller client window)', { clientMaxWindowBits: 10 }, NAME],
      ['no acceptable offer (server_no_context_takeover refused)', { serverNoContextTakeover: false }, `${NAME}; server_no_context_takeover`],
      ['an invalid ours after an unknown one', {}, `x-foo, ${NAME}; client_max_window_bits=8.5`]
    ];

    for (const [label, pmd, offer] of REJECTED) {
      it(`${label}: 400 "${BAD_OFFER_BODY}"`, async function () {
        const res = await handshake({ perMessageDeflate: pmd }, offer);
        assert.equal(res.statusLine, 'HTTP/1.1 400 Bad Request');
        assert.equal(res.body, BAD_OFFER_BODY);
        assert.equal(res.headers.connection, 'close');
        assert.equal(res.headers['content-type'], 'text/html');
        assert.equal(res.headers['content-length'], String(BAD_OFFER_BODY.length));
        assert.equal(res.headers['sec-websocket-extensions'], undefined);
      });
    }
  });

  describe('negotiation edge cases: our client against a raw server', function () {
    // A raw server answering 101 with `answer` as Sec-WebSocket-Extensions.
    async function answerWith(answer, clientOptions) {
      const raw = await createRawServer(async (socket) => {
        const req = await readUpgradeRequest(socket);
        socket.write(
          upgradeResponse(req.headers['sec-websocket-key'], {
            headers: { 'Sec-WebSocket-Extensions': answer }
          })
        );
      });
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url, clientOptions);
      cleanup.add(() => ws.terminate());
      const rec = recordEvents(ws, ['upgrade', 'open', 'error', 'close']);
      await rec.close;
      return rec;
    }

    const CLIENT_REJECTS = [
      ['an extension header when none was offered', `${NAME}`, { perMessageDeflate: false },
        'Server sent a Sec-WebSocket-Extensions header but no extension was requested'],
      ['an extension that was not offered', 'x-foo', {}, 'Server indicated an extension that was not requested'],
      ['two extensions', `${NAME}, x-foo`, {}, 'Server indicated an extension that was not requested'],
      ['a syntax error', `${NAME};;`, {}, 'Invalid Sec-WebSocket-Extensions header'],
      ['client_max_window_bits=7', `${NAME}; client_max_window_bits=7`, {}, 'Invalid Sec-WebSocket-Extensions header'],
      ['client_max_window_bits without a value', `${NAME}; client_max_window_bits`, {}, 'Invalid Sec-WebSocket-Extensions header'],
      ['server_max_window_bits=16', `${NAME}; server_max_window_bits=16`, {}, 'Invalid Sec-WebSocket-Extensions header'],
      ['an unknown parameter', `${NAME}; foo=1`, {}, 'Invalid Sec-WebSocket-Extensions header'],
      ['a larger client window than offered', `${NAME}; client_max_window_bits=12`,
        { perMessageDeflate: { clientMaxWindowBits: 10 } }, 'Invalid Sec-WebSocket-Extensions header'],
      ['a client window the client did not offer', `${NAME}; client_max_window_bits=12`,
        { perMessageDeflate: { clientMaxWindowBits: false } }, 'Invalid Sec-WebSocket-Extensions header'],
      ['client_no_context_takeover refused', `${NAME}; client_no_context_takeover`,
        { perMessageDeflate: { clientNoContextTakeover: false } }, 'Invalid Sec-WebSocket-Extensions header'],
      ['an invalid second permessage-deflate answer', `${NAME}, ${NAME}; foo`, {}, 'Invalid Sec-WebSocket-Extensions header']
    ];

    for (const [label, answer, options, message] of CLIENT_REJECTS) {
      it(`${label} ("${answer}"): error "${message}", close 1006`, async function () {
        const rec = await answerWith(answer, options);
        assert.deepEqual(rec.log, ['upgrade', 'error', 'close']);
        assert.equal(rec.errors[0].message, message);
        assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
        assert.deepEqual(await rec.close, [1006, '']);
      });
    }

    for (const [answer, options] of [
      [`${NAME}; server_max_window_bits=10; client_max_window_bits=9`, {}],
      [`${NAME}; server_no_context_takeover; client_no_context_takeover`, {}],
      [`${NAME}; server_max_window_bits=8`, { perMessageDeflate: { serverMaxWindowBits: 12 } }],
      [NAME, { perMessageDeflate: { clientMaxWindowBits: false } }],
      // ws takes the first of several answers (and only validates the rest).
      [`${NAME}; server_max_window_bits=10, ${NAME}; client_no_context_takeover`, {}]
    ]) {
      it(`accepts "${answer}" (client ${optionsText(options.perMessageDeflate || {})})`, async function () {
        const raw = await createRawServer(async (socket) => {
          const { reader } = await acceptRaw(socket, { headers: { 'Sec-WebSocket-Extensions': answer } });
          // Echo text frames back, compressed on their own.
          for (;;) {
            const f = await reader.next();
            if (!f || f.opcode !== OP.TEXT) break;
            const data = f.rsv1 ? inflateMessage(f.payload) : f.payload;
            socket.write(frame({ opcode: OP.TEXT, rsv1: true, mask: false, payload: deflateMessage(data, { windowBits: 9 }) }));
          }
        });
        cleanup.add(() => raw.close());
        const ws = new WebSocket(raw.url, options);
        cleanup.add(() => ws.terminate());
        const rec = recordEvents(ws);
        await waitFor(ws, 'open');
        assert.equal(ws.extensions, NAME);
        ws.send(UTF8_TEXT.repeat(20));
        const [data, isBinary] = await waitFor(ws, 'message');
        assert.equal(isBinary, false);
        assert.equal(data.toString(), UTF8_TEXT.repeat(20));
        assert.deepEqual(rec.errors, []);
      });
    }
  });

  describe('server modes: { server } and { noServer } + handleUpgrade', function () {
    async function httpServer() {
      const server = http.createServer((req, res) => res.end('plain http'));
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanup.add(
        () =>
          new Promise((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          })
      );
      return server;
    }

    async function startMode(mode, pmd) {
      const server = await httpServer();
      let wss;
      if (mode === 'server') {
        wss = t.server(new WebSocketServer({ server, perMessageDeflate: pmd }));
      } else {
        wss = t.server(new WebSocketServer({ noServer: true, perMessageDeflate: pmd }));
        server.on('upgrade', (req, socket, head) => {
          wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
        });
      }
      return { wss, port: server.address().port };
    }

    for (const mode of ['server', 'noServer']) {
      for (const Client of [PeerWebSocket, WebSocket]) {
        const clientName = Client === PeerWebSocket ? 'ws client' : 'our client';
        it(`{ ${mode} }, ${clientName}: negotiates and echoes compressed messages`, async function () {
          const { wss, port } = await startMode(mode, { serverNoContextTakeover: true, clientMaxWindowBits: 11 });
          const connection = next(wss, 'connection');
          const client = t.socket(
            new Client(`ws://127.0.0.1:${port}`, { perMessageDeflate: { clientMaxWindowBits: 12 } })
          );
          const upgrade = next(client, 'upgrade');
          await once(client, 'open');
          const [ws, req] = await connection;
          echo(ws);
          const [res] = await upgrade;
          assert.equal(
            req.headers['sec-websocket-extensions'],
            `${NAME}; client_max_window_bits=12`
          );
          assert.equal(
            res.headers['sec-websocket-extensions'],
            `${NAME}; client_max_window_bits=11; server_no_context_takeover`
          );
          assert.equal(ws.extensions, NAME);
          assert.equal(client.extensions, NAME);
          await assertEchoes(client, [
            ['text', UTF8_TEXT.repeat(100)],
            ['binary', crypto.randomBytes(1 << 16)],
            ['binary', windowProbe(11)],
            ['text', 'small']
          ]);
          client.close();
          assert.equal((await closed(client)).code, 1005);
        });
      }

      it(`{ ${mode} }: on the wire, RSV1 and the answer to a raw offer`, async function () {
        const { wss, port } = await startMode(mode, { threshold: 10, serverNoContextTakeover: true });
        const connection = next(wss, 'connection');
        const raw = await rawHandshake(port, { headers: { 'Sec-WebSocket-Extensions': BROWSER_OFFER } });
        cleanup.add(() => raw.socket.destroy());
        assert.equal(raw.headers['sec-websocket-extensions'], `${NAME}; server_no_context_takeover`);
        const [ws] = await connection;
        ws.send('tiny');
        ws.send('0123456789');
        const f1 = await raw.reader.next();
        const f2 = await raw.reader.next();
        assert.equal(f1.rsv1, false);
        assert.equal(f2.rsv1, true);
        assert.equal(inflateMessage(f2.payload).toString(), '0123456789');
      });

      it(`{ ${mode} }: an invalid offer gets 400 "${BAD_OFFER_BODY}"`, async function () {
        const { port } = await startMode(mode, true);
        const res = await httpExchange(
          port,
          upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': `${NAME}; server_max_window_bits=7` } })
        );
        assert.equal(res.statusLine, 'HTTP/1.1 400 Bad Request');
        assert.equal(res.body, BAD_OFFER_BODY);
      });
    }
  });
});
