'use strict';

// Hostile and malformed input, byte by byte.
//
// Server side: a raw net.Socket completes a hand-written opening handshake
// with the WebSocketServer under test, then sends one protocol violation. The
// test checks the close frame the server sends back (parsed from the raw
// bytes), the server-side WebSocket's 'error' (exact message, `code`, class)
// and 'close' events, and that the server still serves a good client
// afterwards. Malformed handshakes check the HTTP response.
//
// Client side: a raw TCP server answers the client under test with broken
// handshakes and frames.

const assert = require('node:assert/strict');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket
} = require('./helpers/impl');
const {
  OP,
  SAMPLE_KEY,
  acceptKey,
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
const {
  Cleanup,
  recordEvents,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const cleanup = new Cleanup();

/**
 * Handshake by hand with `wss` and capture the server-side WebSocket (its
 * events are recorded from inside the 'connection' listener).
 */
async function openRaw(wss, opts) {
  const conn = new Promise((resolve) => {
    wss.once('connection', (ws, req) => {
      const rec = recordEvents(ws);
      resolve({ ws, req, rec });
    });
  });
  const raw = await rawHandshake(wss.address().port, opts);
  cleanup.add(() => raw.socket.destroy());
  const { ws, req, rec } = await conn;
  return { ...raw, ws, req, rec };
}

/**
 * A fresh good client (the real ws) connects and gets an echo back.
 */
async function assertStillServes(wss) {
  wss.once('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  const client = new PeerWebSocket(`ws://127.0.0.1:${wss.address().port}`);
  const rec = recordEvents(client);
  await waitFor(client, 'open');
  client.send('still alive');
  const [data, isBinary] = await waitFor(client, 'message');
  assert.equal(isBinary, false);
  assert.equal(data.toString(), 'still alive');
  client.close(1000);
  const [code] = await rec.close;
  assert.equal(code, 1000);
  assert.deepEqual(rec.errors, []);
}

/**
 * Send `bytes` after a good handshake and check ws's reaction to a protocol
 * error: one close frame with `status` (no reason, unmasked), then the TCP
 * connection ends; the server-side WebSocket emits exactly one 'error'
 * (message, code, class), while CLOSING, then 'close' with 1006.
 */
async function expectProtocolError(wss, bytes, expected) {
  const c = await openRaw(wss);
  if (Array.isArray(bytes)) {
    for (const b of bytes) c.socket.write(b);
  } else {
    c.socket.write(bytes);
  }

  const err = await c.rec.error;
  const [code, reason] = await c.rec.close;
  const frames = await c.reader.untilClose();

  // (a) the close frame on the wire
  assert.equal(frames.length, 1, 'exactly one frame is sent back');
  const [f] = frames;
  assert.equal(f.opcode, OP.CLOSE);
  assert.equal(f.fin, true);
  assert.equal(f.masked, false);
  assert.equal(f.code, expected.status);
  assert.equal(f.reason, '');

  // (b) the server-side WebSocket's events
  assert.ok(err instanceof (expected.ctor || RangeError));
  assert.equal(err.message, expected.message);
  assert.equal(err.code, expected.code);
  assert.equal(c.rec.readyStateAtError, WebSocket.CLOSING);
  assert.equal(c.rec.errors.length, 1);
  assert.deepEqual(c.rec.log, ['error', 'close']);
  assert.equal(code, 1006);
  assert.equal(reason, '');
  assert.equal(c.ws.readyState, WebSocket.CLOSED);
  assert.equal(c.rec.messages.length, 0);

  // (c) the server keeps serving
  await assertStillServes(wss);
}

const text = (payload, o = {}) => frame({ opcode: OP.TEXT, payload, ...o });
const bin = (payload, o = {}) => frame({ opcode: OP.BINARY, payload, ...o });
const cont = (payload, o = {}) => frame({ opcode: OP.CONT, payload, ...o });
const close = (payload, o = {}) => frame({ opcode: OP.CLOSE, payload, ...o });
const ping = (payload, o = {}) => frame({ opcode: OP.PING, payload, ...o });

describe('hostile input: frames sent to the server', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  let wss;

  before(async function () {
    wss = await startServer(WebSocketServer);
  });

  after(async function () {
    await stopServer(wss);
  });

  it('a good raw client works (sanity check of the helpers)', async function () {
    const c = await openRaw(wss);
    c.ws.on('message', (data, isBinary) =>
      c.ws.send(data, { binary: isBinary })
    );
    c.socket.write(text('hello'));
    const f = await c.reader.next();
    assert.equal(f.opcode, OP.TEXT);
    assert.equal(f.masked, false);
    assert.equal(f.payload.toString(), 'hello');

    c.socket.write(close(closePayload(1000, 'bye')));
    const g = await c.reader.next();
    assert.equal(g.opcode, OP.CLOSE);
    assert.equal(g.code, 1000);
    assert.equal(g.reason, 'bye');
    const [code, reason] = await c.rec.close;
    assert.equal(code, 1000);
    assert.equal(reason, 'bye');
    assert.deepEqual(c.rec.errors, []);
  });

  it('rejects an unmasked client frame (1002, WS_ERR_EXPECTED_MASK)', async function () {
    await expectProtocolError(wss, text('hi', { mask: false }), {
      status: 1002,
      message: 'Invalid WebSocket frame: MASK must be set',
      code: 'WS_ERR_EXPECTED_MASK'
    });
  });

  it('ignores a valid frame that follows a bad one in the same packet', async function () {
    await expectProtocolError(
      wss,
      Buffer.concat([text('bad', { mask: false }), text('good'), ping('p')]),
      {
        status: 1002,
        message: 'Invalid WebSocket frame: MASK must be set',
        code: 'WS_ERR_EXPECTED_MASK'
      }
    );
  });

  it('rejects RSV1 without a negotiated extension (1002)', async function () {
    await expectProtocolError(wss, text('hi', { rsv1: true }), {
      status: 1002,
      message: 'Invalid WebSocket frame: RSV1 must be clear',
      code: 'WS_ERR_UNEXPECTED_RSV_1'
    });
  });

  it('rejects RSV2 (1002)', async function () {
    await expectProtocolError(wss, text('hi', { rsv2: true }), {
      status: 1002,
      message: 'Invalid WebSocket frame: RSV2 and RSV3 must be clear',
      code: 'WS_ERR_UNEXPECTED_RSV_2_3'
    });
  });

  it('rejects RSV3 (1002)', async function () {
    await expectProtocolError(wss, bin(Buffer.from([1, 2]), { rsv3: true }), {
      status: 1002,
      message: 'Invalid WebSocket frame: RSV2 and RSV3 must be clear',
      code: 'WS_ERR_UNEXPECTED_RSV_2_3'
    });
  });

  it('rejects RSV1 on a control frame (1002)', async function () {
    await expectProtocolError(wss, ping('', { rsv1: true }), {
      status: 1002,
      message: 'Invalid WebSocket frame: RSV1 must be clear',
      code: 'WS_ERR_UNEXPECTED_RSV_1'
    });
  });

  for (const opcode of [3, 11]) {
    it(`rejects the reserved opcode ${opcode} (1002)`, async function () {
      await expectProtocolError(wss, frame({ opcode, payload: 'x' }), {
        status: 1002,
        message: `Invalid WebSocket frame: invalid opcode ${opcode}`,
        code: 'WS_ERR_INVALID_OPCODE'
      });
    });
  }

  it('rejects a continuation frame with no message in progress (1002)', async function () {
    await expectProtocolError(wss, cont('orphan'), {
      status: 1002,
      message: 'Invalid WebSocket frame: invalid opcode 0',
      code: 'WS_ERR_INVALID_OPCODE'
    });
  });

  it('rejects a new text frame inside a fragmented message (1002)', async function () {
    await expectProtocolError(
      wss,
      [text('part 1', { fin: false }), text('part 2')],
      {
        status: 1002,
        message: 'Invalid WebSocket frame: invalid opcode 1',
        code: 'WS_ERR_INVALID_OPCODE'
      }
    );
  });

  it('rejects a new binary frame inside a fragmented text message (1002)', async function () {
    await expectProtocolError(
      wss,
      [text('part 1', { fin: false }), bin(Buffer.from([1]))],
      {
        status: 1002,
        message: 'Invalid WebSocket frame: invalid opcode 2',
        code: 'WS_ERR_INVALID_OPCODE'
      }
    );
  });

  it('accepts a ping between the fragments of a message', async function () {
    const c = await openRaw(wss);
    c.socket.write(text('ab', { fin: false }));
    c.socket.write(ping('p'));
    c.socket.write(cont('cd'));

    const pong = await c.reader.next();
    assert.equal(pong.opcode, OP.PONG);
    assert.equal(pong.payload.toString(), 'p');

    while (c.rec.messages.length === 0) await waitFor(c.ws, 'message');
    const [data, isBinary] = c.rec.messages[0];
    assert.equal(isBinary, false);
    assert.equal(data.toString(), 'abcd');
    assert.deepEqual(c.rec.errors, []);
  });

  it('rejects a fragmented ping (FIN clear) (1002)', async function () {
    await expectProtocolError(wss, ping('x', { fin: false }), {
      status: 1002,
      message: 'Invalid WebSocket frame: FIN must be set',
      code: 'WS_ERR_EXPECTED_FIN'
    });
  });

  it('rejects a ping of 126 bytes (1002)', async function () {
    await expectProtocolError(wss, ping(Buffer.alloc(126, 0x61)), {
      status: 1002,
      message: 'Invalid WebSocket frame: invalid payload length 126',
      code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'
    });
  });

  it('accepts a ping of 125 bytes and pongs it back', async function () {
    const c = await openRaw(wss);
    const payload = Buffer.alloc(125, 0x62);
    c.socket.write(ping(payload));
    const f = await c.reader.next();
    assert.equal(f.opcode, OP.PONG);
    assert.equal(f.masked, false);
    assert.deepEqual(f.payload, payload);
  });

  it('rejects invalid UTF-8 in a text message (1007)', async function () {
    await expectProtocolError(wss, text(Buffer.from([0x68, 0x69, 0xff])), {
      status: 1007,
      message: 'Invalid WebSocket frame: invalid UTF-8 sequence',
      code: 'WS_ERR_INVALID_UTF8',
      ctor: Error
    });
  });

  it('rejects an overlong encoding and a UTF-16 surrogate in a text message (1007)', async function () {
    // C0 AF is an overlong '/', ED A0 80 is U+D800.
    for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      await expectProtocolError(wss, text(Buffer.from(bytes)), {
        status: 1007,
        message: 'Invalid WebSocket frame: invalid UTF-8 sequence',
        code: 'WS_ERR_INVALID_UTF8',
        ctor: Error
      });
    }
  });

  it('rejects invalid UTF-8 split across fragments (1007)', async function () {
    // CE starts a 2-byte sequence; the next fragment continues it with an
    // invalid byte.
    await expectProtocolError(
      wss,
      [
        text(Buffer.from([0x61, 0xce]), { fin: false }),
        cont(Buffer.from([0x41, 0x62]))
      ],
      {
        status: 1007,
        message: 'Invalid WebSocket frame: invalid UTF-8 sequence',
        code: 'WS_ERR_INVALID_UTF8',
        ctor: Error
      }
    );
  });

  it('rejects a message ending in the middle of a UTF-8 sequence (1007)', async function () {
    await expectProtocolError(
      wss,
      [text('ok', { fin: false }), cont(Buffer.from([0xe2, 0x82]))],
      {
        status: 1007,
        message: 'Invalid WebSocket frame: invalid UTF-8 sequence',
        code: 'WS_ERR_INVALID_UTF8',
        ctor: Error
      }
    );
  });

  it('accepts a valid multi-byte character split across fragments', async function () {
    const c = await openRaw(wss);
    const euro = Buffer.from('€'); // E2 82 AC
    c.socket.write(text(euro.subarray(0, 1), { fin: false }));
    c.socket.write(cont(euro.subarray(1, 2), { fin: false }));
    c.socket.write(cont(Buffer.concat([euro.subarray(2), Buffer.from('κ')])));
    while (c.rec.messages.length === 0) await waitFor(c.ws, 'message');
    const [data, isBinary] = c.rec.messages[0];
    assert.equal(isBinary, false);
    assert.equal(data.toString(), '€κ');
    assert.deepEqual(c.rec.errors, []);
  });

  it('rejects invalid UTF-8 in a close reason (1007)', async function () {
    await expectProtocolError(
      wss,
      close(closePayload(1000, Buffer.from([0x62, 0x79, 0xfe]))),
      {
        status: 1007,
        message: 'Invalid WebSocket frame: invalid UTF-8 sequence',
        code: 'WS_ERR_INVALID_UTF8',
        ctor: Error
      }
    );
  });

  it('rejects a close payload of 1 byte (1002)', async function () {
    await expectProtocolError(wss, close(Buffer.from([0x03])), {
      status: 1002,
      message: 'Invalid WebSocket frame: invalid payload length 1',
      code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'
    });
  });

  for (const status of [999, 1004, 1005, 1006, 1015, 2000, 5000]) {
    it(`rejects the close code ${status} (1002)`, async function () {
      await expectProtocolError(wss, close(closePayload(status)), {
        status: 1002,
        message: `Invalid WebSocket frame: invalid status code ${status}`,
        code: 'WS_ERR_INVALID_CLOSE_CODE'
      });
    });
  }

  for (const status of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999]) {
    it(`echoes the valid close code ${status}`, async function () {
      const c = await openRaw(wss);
      c.socket.write(close(closePayload(status, 'r')));
      const frames = await c.reader.untilClose();
      assert.equal(frames.length, 1);
      assert.equal(frames[0].opcode, OP.CLOSE);
      assert.equal(frames[0].code, status);
      assert.equal(frames[0].reason, 'r');
      const [code, reason] = await c.rec.close;
      assert.equal(code, status);
      assert.equal(reason, 'r');
      assert.deepEqual(c.rec.errors, []);
    });
  }

  it('answers an empty close frame with an empty close frame (close event 1005)', async function () {
    const c = await openRaw(wss);
    c.socket.write(close(''));
    const frames = await c.reader.untilClose();
    assert.equal(frames.length, 1);
    assert.equal(frames[0].opcode, OP.CLOSE);
    assert.equal(frames[0].payload.length, 0);
    const [code, reason] = await c.rec.close;
    assert.equal(code, 1005);
    assert.equal(reason, '');
    assert.deepEqual(c.rec.errors, []);
  });

  it('rejects a 64-bit length of 2^53 (1009)', async function () {
    // Only the header and the masking key: the length is refused before any
    // payload could be expected.
    const header = frame({
      opcode: OP.BINARY,
      length: 2n ** 53n,
      mask: Buffer.from([1, 2, 3, 4])
    });
    await expectProtocolError(wss, header, {
      status: 1009,
      message: 'Unsupported WebSocket frame: payload length > 2^53 - 1',
      code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
    });
  });

  it('rejects a 64-bit length of 2^64 - 1 (1009)', async function () {
    const header = frame({
      opcode: OP.TEXT,
      length: 2n ** 64n - 1n,
      mask: Buffer.from([1, 2, 3, 4])
    });
    await expectProtocolError(wss, header, {
      status: 1009,
      message: 'Unsupported WebSocket frame: payload length > 2^53 - 1',
      code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
    });
  });

  it('rejects a 64-bit length of 2^53 - 1 as above maxPayload (1009)', async function () {
    const header = frame({
      opcode: OP.BINARY,
      length: 2n ** 53n - 1n,
      mask: Buffer.from([1, 2, 3, 4])
    });
    await expectProtocolError(wss, header, {
      status: 1009,
      message: 'Max payload size exceeded',
      code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
    });
  });
});

describe('hostile input: maxPayload', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  let wss;

  before(async function () {
    wss = await startServer(WebSocketServer, { maxPayload: 100 });
  });

  after(async function () {
    await stopServer(wss);
  });

  it('accepts a message of exactly maxPayload bytes', async function () {
    const c = await openRaw(wss);
    c.socket.write(bin(Buffer.alloc(60, 1), { fin: false }));
    c.socket.write(cont(Buffer.alloc(40, 2)));
    while (c.rec.messages.length === 0) await waitFor(c.ws, 'message');
    const [data, isBinary] = c.rec.messages[0];
    assert.equal(isBinary, true);
    assert.equal(data.length, 100);
    assert.deepEqual(c.rec.errors, []);
  });

  it('rejects a single frame above maxPayload (1009)', async function () {
    await expectProtocolError(wss, bin(Buffer.alloc(101, 7)), {
      status: 1009,
      message: 'Max payload size exceeded',
      code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
    });
  });

  it('rejects fragments whose sum is above maxPayload (1009)', async function () {
    await expectProtocolError(
      wss,
      [
        text('a'.repeat(60), { fin: false }),
        cont('b'.repeat(30), { fin: false }),
        cont('c'.repeat(11))
      ],
      {
        status: 1009,
        message: 'Max payload size exceeded',
        code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
      }
    );
  });

  it('does not count control frames towards maxPayload', async function () {
    const c = await openRaw(wss);
    c.socket.write(text('x'.repeat(90), { fin: false }));
    c.socket.write(ping(Buffer.alloc(125, 3)));
    c.socket.write(cont('y'.repeat(10)));
    const pong = await c.reader.next();
    assert.equal(pong.opcode, OP.PONG);
    while (c.rec.messages.length === 0) await waitFor(c.ws, 'message');
    assert.equal(c.rec.messages[0][0].length, 100);
    assert.deepEqual(c.rec.errors, []);
  });
});

describe('hostile input: malformed opening handshakes', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  let wss;
  let port;
  let connections;

  before(async function () {
    wss = await startServer(WebSocketServer, { path: '/ws' });
    port = wss.address().port;
    connections = 0;
    wss.on('connection', () => connections++);
  });

  after(async function () {
    await stopServer(wss);
  });

  // Every test ends by checking that the server still accepts a good client.
  function itHs(title, fn) {
    it(title, async function () {
      await fn.call(this);
      const client = new PeerWebSocket(`ws://127.0.0.1:${port}/ws`);
      cleanup.add(() => client.terminate());
      const rec = recordEvents(client);
      await waitFor(client, 'open');
      client.close();
      await rec.close;
      assert.deepEqual(rec.errors, []);
    });
  }

  const base = {
    path: '/ws',
    host: '127.0.0.1',
    key: SAMPLE_KEY,
    version: 13
  };

  function request(lines) {
    return lines.join('\r\n') + '\r\n\r\n';
  }

  function assertAbort(res, status, reason, body, extraHeaders = {}) {
    assert.equal(res.statusLine, `HTTP/1.1 ${status} ${reason}`);
    assert.equal(res.body, body);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.headers['content-type'], 'text/html');
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(body)));
    for (const [k, v] of Object.entries(extraHeaders)) {
      assert.equal(res.headers[k.toLowerCase()], v);
    }
    assert.equal(connections, 0);
  }

  beforeEach(function () {
    connections = 0;
  });

  itHs('a well-formed raw handshake gets 101 with the right accept', async function () {
    const res = await httpExchange(port, upgradeRequest(base));
    assert.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(res.headers.upgrade, 'websocket');
    assert.equal(res.headers.connection, 'Upgrade');
    assert.equal(
      res.headers['sec-websocket-accept'],
      's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    );
    assert.equal(acceptKey(SAMPLE_KEY), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    connections = 0;
  });

  itHs('answers 405 to a method other than GET', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace(/^GET/, 'POST')
    );
    assertAbort(res, 405, 'Method Not Allowed', 'Invalid HTTP method');
  });

  itHs('answers 400 to a bad Upgrade header', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace('Upgrade: websocket', 'Upgrade: h2c')
    );
    assertAbort(res, 400, 'Bad Request', 'Invalid Upgrade header');
  });

  itHs('accepts the Upgrade token case-insensitively', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace('Upgrade: websocket', 'Upgrade: WebSocket')
    );
    assert.equal(res.status, 101);
    connections = 0;
  });

  itHs('answers 426 to a request with no Upgrade header (not an upgrade)', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace('Upgrade: websocket\r\n', '')
    );
    assert.equal(res.statusLine, 'HTTP/1.1 426 Upgrade Required');
    assert.equal(res.body, 'Upgrade Required');
    assert.equal(connections, 0);
  });

  itHs('answers 400 to a missing Sec-WebSocket-Key', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace(`Sec-WebSocket-Key: ${SAMPLE_KEY}\r\n`, '')
    );
    assertAbort(
      res,
      400,
      'Bad Request',
      'Missing or invalid Sec-WebSocket-Key header'
    );
  });

  for (const key of ['abc', 'dGhlIHNhbXBsZSBub25jZQ=', 'dGhlIHNhbXBsZSBub25jZQ!=']) {
    itHs(`answers 400 to the bad Sec-WebSocket-Key ${JSON.stringify(key)}`, async function () {
      const res = await httpExchange(port, upgradeRequest({ ...base, key }));
      assertAbort(
        res,
        400,
        'Bad Request',
        'Missing or invalid Sec-WebSocket-Key header'
      );
    });
  }

  for (const version of ['12', '14', 'abc']) {
    itHs(`answers 400 to Sec-WebSocket-Version: ${version}`, async function () {
      const res = await httpExchange(port, upgradeRequest({ ...base, version }));
      assertAbort(
        res,
        400,
        'Bad Request',
        'Missing or invalid Sec-WebSocket-Version header',
        { 'Sec-WebSocket-Version': '13, 8' }
      );
    });
  }

  itHs('answers 400 to a missing Sec-WebSocket-Version', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest(base).replace('Sec-WebSocket-Version: 13\r\n', '')
    );
    assertAbort(
      res,
      400,
      'Bad Request',
      'Missing or invalid Sec-WebSocket-Version header',
      { 'Sec-WebSocket-Version': '13, 8' }
    );
  });

  itHs('accepts Sec-WebSocket-Version: 8', async function () {
    const res = await httpExchange(port, upgradeRequest({ ...base, version: 8 }));
    assert.equal(res.status, 101);
    connections = 0;
  });

  for (const value of ['a,,b', 'a b', 'a,a', 'chat,', 'a;b']) {
    itHs(`answers 400 to Sec-WebSocket-Protocol: ${value}`, async function () {
      const res = await httpExchange(
        port,
        upgradeRequest({
          ...base,
          headers: { 'Sec-WebSocket-Protocol': value }
        })
      );
      assertAbort(
        res,
        400,
        'Bad Request',
        'Invalid Sec-WebSocket-Protocol header'
      );
    });
  }

  itHs('answers 400 (body "Bad Request") to a path other than the configured one', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest({ ...base, path: '/other' })
    );
    assertAbort(res, 400, 'Bad Request', 'Bad Request');
  });

  itHs('matches the path without its query string', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest({ ...base, path: '/ws?token=1' })
    );
    assert.equal(res.status, 101);
    connections = 0;
  });

  itHs('answers 426 with a text/plain body to a plain HTTP GET', async function () {
    const res = await httpExchange(
      port,
      request(['GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close'])
    );
    assert.equal(res.statusLine, 'HTTP/1.1 426 Upgrade Required');
    assert.equal(res.headers['content-type'], 'text/plain');
    assert.equal(res.headers['content-length'], '16');
    assert.equal(res.body, 'Upgrade Required');
    assert.equal(connections, 0);
  });

  itHs('answers 400 to bytes that are not HTTP', async function () {
    const res = await httpExchange(port, '\x00\x01\x02 hello garbage\r\n\r\n');
    assert.equal(res.statusLine, 'HTTP/1.1 400 Bad Request');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, '');
    assert.equal(res.closed, true);
  });

  itHs('answers 431 to oversized headers', async function () {
    const res = await httpExchange(
      port,
      upgradeRequest({
        ...base,
        headers: { 'X-Big': 'a'.repeat(20000) }
      })
    );
    assert.equal(res.statusLine, 'HTTP/1.1 431 Request Header Fields Too Large');
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body, '');
    assert.equal(res.closed, true);
  });
});

describe('hostile input: servers misbehaving towards the client', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  let raw;

  afterEach(async function () {
    if (raw) await raw.close();
    raw = null;
  });

  it('a MASKED frame from the server: error WS_ERR_UNEXPECTED_MASK, close 1002 sent, close event 1006', async function () {
    let serverSide;
    const accepted = new Promise((resolve) => {
      serverSide = resolve;
    });
    raw = await createRawServer(async (socket) => {
      const { reader } = await acceptRaw(socket);
      serverSide({ socket, reader });
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    cleanup.add(() => ws.terminate());
    await waitFor(ws, 'open');

    const { socket, reader } = await accepted;
    socket.write(frame({ opcode: OP.TEXT, payload: 'masked!', mask: true }));

    const err = await rec.error;
    assert.ok(err instanceof RangeError);
    assert.equal(err.message, 'Invalid WebSocket frame: MASK must be clear');
    assert.equal(err.code, 'WS_ERR_UNEXPECTED_MASK');
    assert.equal(rec.readyStateAtError, WebSocket.CLOSING);

    const frames = await reader.untilClose();
    assert.equal(frames.length, 1);
    assert.equal(frames[0].opcode, OP.CLOSE);
    assert.equal(frames[0].masked, true, 'client frames are masked');
    assert.equal(frames[0].code, 1002);
    assert.equal(frames[0].reason, '');

    const [code, reason] = await rec.close;
    assert.equal(code, 1006);
    assert.equal(reason, '');
    assert.deepEqual(rec.log, ['open', 'error', 'close']);
    assert.equal(rec.messages.length, 0);
  });

  it('invalid UTF-8 from the server: error WS_ERR_INVALID_UTF8, close 1007 sent', async function () {
    let serverSide;
    const accepted = new Promise((resolve) => {
      serverSide = resolve;
    });
    raw = await createRawServer(async (socket) => {
      const { reader } = await acceptRaw(socket);
      serverSide({ socket, reader });
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    cleanup.add(() => ws.terminate());
    await waitFor(ws, 'open');

    const { socket, reader } = await accepted;
    socket.write(
      frame({ opcode: OP.TEXT, payload: Buffer.from([0xf8, 0x88]), mask: false })
    );

    const err = await rec.error;
    assert.equal(err.message, 'Invalid WebSocket frame: invalid UTF-8 sequence');
    assert.equal(err.code, 'WS_ERR_INVALID_UTF8');
    const frames = await reader.untilClose();
    assert.equal(frames.length, 1);
    assert.equal(frames[0].code, 1007);
    const [code] = await rec.close;
    assert.equal(code, 1006);
  });

  it('client maxPayload: a frame above it gives 1009', async function () {
    let serverSide;
    const accepted = new Promise((resolve) => {
      serverSide = resolve;
    });
    raw = await createRawServer(async (socket) => {
      const { reader } = await acceptRaw(socket);
      serverSide({ socket, reader });
    });

    const ws = new WebSocket(raw.url, { maxPayload: 10 });
    const rec = recordEvents(ws);
    cleanup.add(() => ws.terminate());
    await waitFor(ws, 'open');

    const { socket, reader } = await accepted;
    socket.write(frame({ opcode: OP.BINARY, payload: Buffer.alloc(11), mask: false }));

    const err = await rec.error;
    assert.ok(err instanceof RangeError);
    assert.equal(err.message, 'Max payload size exceeded');
    assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
    const frames = await reader.untilClose();
    assert.equal(frames.length, 1);
    assert.equal(frames[0].code, 1009);
    const [code] = await rec.close;
    assert.equal(code, 1006);
  });

  it('a wrong Sec-WebSocket-Accept: error "Invalid Sec-WebSocket-Accept header", close 1006', async function () {
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      socket.write(
        upgradeResponse(req.headers['sec-websocket-key'], {
          accept: acceptKey('AAAAAAAAAAAAAAAAAAAAAA==')
        })
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(err.message, 'Invalid Sec-WebSocket-Accept header');
    assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.deepEqual(rec.log, ['error', 'close']);
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });

  // Node's HTTP parser does not treat a 101 without an Upgrade header as an
  // upgrade, so ws reports it as an unexpected response, not as a bad header.
  it('a 101 without an Upgrade header: error "Unexpected server response: 101"', async function () {
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      socket.write(
        upgradeResponse(req.headers['sec-websocket-key'], { omitUpgrade: true })
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(err.message, 'Unexpected server response: 101');
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.deepEqual(rec.log, ['error', 'close']);
  });

  it('a 101 with a wrong Upgrade header: error "Invalid Upgrade header"', async function () {
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      socket.write(
        upgradeResponse(req.headers['sec-websocket-key'], {
          omitUpgrade: true,
          headers: { Upgrade: 'foo' }
        })
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(err.message, 'Invalid Upgrade header');
    const [code] = await rec.close;
    assert.equal(code, 1006);
  });

  it('a subprotocol that was not offered: error "Server sent an invalid subprotocol"', async function () {
    let offered;
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      offered = req.headers['sec-websocket-protocol'];
      socket.write(
        upgradeResponse(req.headers['sec-websocket-key'], {
          headers: { 'Sec-WebSocket-Protocol': 'c' }
        })
      );
    });

    const ws = new WebSocket(raw.url, ['a', 'b']);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(offered, 'a,b');
    assert.equal(err.message, 'Server sent an invalid subprotocol');
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.equal(ws.protocol, '');
  });

  it('no subprotocol in the answer when one was offered: error "Server sent no subprotocol"', async function () {
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      socket.write(upgradeResponse(req.headers['sec-websocket-key']));
    });

    const ws = new WebSocket(raw.url, 'a');
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(err.message, 'Server sent no subprotocol');
    const [code] = await rec.close;
    assert.equal(code, 1006);
  });

  it('a subprotocol in the answer when none was offered: error "Server sent a subprotocol but none was requested"', async function () {
    raw = await createRawServer(async (socket) => {
      const req = await readUpgradeRequest(socket);
      socket.write(
        upgradeResponse(req.headers['sec-websocket-key'], {
          headers: { 'Sec-WebSocket-Protocol': 'a' }
        })
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(
      err.message,
      'Server sent a subprotocol but none was requested'
    );
    const [code] = await rec.close;
    assert.equal(code, 1006);
  });

  it('a 403: error "Unexpected server response: 403", close 1006', async function () {
    raw = await createRawServer(async (socket) => {
      await readUpgradeRequest(socket);
      socket.end(
        'HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope'
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const err = await rec.error;
    assert.equal(err.message, 'Unexpected server response: 403');
    assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
    const [code, reason] = await rec.close;
    assert.equal(code, 1006);
    assert.equal(reason, '');
    assert.deepEqual(rec.log, ['error', 'close']);
  });

  it("a 403 with an 'unexpected-response' listener: the listener gets (req, res) and no error is emitted", async function () {
    raw = await createRawServer(async (socket) => {
      await readUpgradeRequest(socket);
      socket.end(
        'HTTP/1.1 403 Forbidden\r\nX-Reason: go away\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope'
      );
    });

    const ws = new WebSocket(raw.url);
    const rec = recordEvents(ws);
    const [req, res] = await waitFor(ws, 'unexpected-response');
    assert.ok(req);
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers['x-reason'], 'go away');
    assert.equal(ws.readyState, WebSocket.CONNECTING);
    assert.deepEqual(rec.log, []);

    // The listener owns the outcome; aborting it is the usual move.
    ws.terminate();
    const err = await rec.error;
    assert.equal(
      err.message,
      'WebSocket was closed before the connection was established'
    );
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.deepEqual(rec.log, ['error', 'close']);
  });

  it('the opening handshake request has the RFC 6455 headers', async function () {
    let request;
    raw = await createRawServer(async (socket) => {
      request = await readUpgradeRequest(socket);
      socket.write(upgradeResponse(request.headers['sec-websocket-key']));
    });

    const ws = new WebSocket(`${raw.url}/a/b?c=d`, {
      headers: { 'X-Custom': 'yes' },
      origin: 'http://example.com'
    });
    const rec = recordEvents(ws);
    await waitFor(ws, 'open');

    assert.equal(request.method, 'GET');
    assert.equal(request.url, '/a/b?c=d');
    assert.equal(request.headers.host, `127.0.0.1:${raw.port}`);
    assert.equal(request.headers.upgrade, 'websocket');
    assert.equal(request.headers.connection, 'Upgrade');
    assert.equal(request.headers['sec-websocket-version'], '13');
    assert.match(request.headers['sec-websocket-key'], /^[+/0-9A-Za-z]{22}==$/);
    assert.equal(
      Buffer.from(request.headers['sec-websocket-key'], 'base64').length,
      16
    );
    assert.equal(request.headers['x-custom'], 'yes');
    assert.equal(request.headers.origin, 'http://example.com');

    ws.terminate();
    await rec.close;
  });
});
