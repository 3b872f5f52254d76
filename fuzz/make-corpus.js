#!/usr/bin/env node
'use strict';
/*
 * Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/:
 *   node fuzz/make-corpus.js
 *
 * Deterministic: frames are built here with fixed masking keys, and the
 * handshakes are captured from the real `ws` (a ws client's requests with
 * its key replaced by the RFC 6455 sample key and its port by 8080, a ws server's answers to
 * them; ws frames captured with a fixed mask), so rerunning it rewrites the
 * same files. Each seed starts with the target's config bytes (see the
 * layout comment at the top of each fuzz_*.c).
 */
const fs = require('fs');
const net = require('net');
const path = require('path');
const WS = require('ws');

const OUT = path.join(__dirname, 'corpus');
const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const seeds = {};

function seed(target, name, ...parts) {
  (seeds[target] ||= []).push([
    name,
    Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))))
  ]);
}

/* ---- frames ---------------------------------------------------------- */

const KEY = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/* A frame as RFC 6455 5.2 lays it out. `len64`/`len16` force a longer
 * length form than needed (parsers must accept it). rsv: RSV bits 4,2,1. */
function frame(op, payload, { fin = true, rsv = 0, key = null, len16 = false,
  len64 = false, length } = {}) {
  payload = Buffer.from(payload);
  const n = length === undefined ? payload.length : length;
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | op];
  const m = key ? 0x80 : 0;
  if (len64 || n > 0xffff) {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    head.push(...b);
  } else if (len16 || n > 125) {
    head.push(m | 126, n >> 8, n & 0xff);
  } else {
    head.push(m | n);
  }
  if (key) head.push(...key);
  const body = Buffer.from(payload);
  if (key) for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), body]);
}

function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/* [flags][max][c0..c3]: flags bit0 server, bit1 rsv1 allowed, bits 2-3 the
 * max payload mode. */
function frameCfg({ server, rsv1 = false, maxMode = 0, max = 0,
  chunks = [0, 0, 0, 0] }) {
  return Buffer.from([(server ? 1 : 0) | (rsv1 ? 2 : 0) | (maxMode << 2), max,
    ...chunks]);
}

function frameSeeds(wsFrames) {
  const chunkings = [[0, 0, 0, 0], [1, 1, 1, 1], [3, 7, 2, 200], [13, 1, 64, 0]];
  for (const server of [true, false]) {
    const side = server ? 'masked' : 'unmasked';
    const key = server ? KEY : null;
    const f = (op, p, o = {}) => frame(op, p, { key, ...o });
    const streams = {
      text: f(1, 'Hello, κόσμε'),
      binary: f(2, Buffer.from([0, 1, 2, 3, 255, 254])),
      empty: Buffer.concat([f(1, ''), f(2, '')]),
      ping_pong: Buffer.concat([f(9, 'ping!'), f(10, '')]),
      close: f(8, closePayload(1000, 'bye')),
      close_empty: f(8, ''),
      len16: f(2, Buffer.alloc(300, 0x61)),
      len16_short: f(1, 'abc', { len16: true }),
      len64_short: f(2, 'abcdefghij', { len64: true }),
      fragmented: Buffer.concat([
        f(1, 'frag', { fin: false }),
        f(9, 'mid'),
        f(0, 'men', { fin: false }),
        f(0, 'ted')
      ]),
      everything: Buffer.concat([
        f(1, 'a'), f(2, Buffer.alloc(130, 7)), f(9, ''), f(10, 'x'),
        f(2, 'b', { fin: false }), f(0, 'c'), f(8, closePayload(4000))
      ])
    };
    let i = 0;
    for (const [name, s] of Object.entries(streams)) {
      const chunks = chunkings[i++ % chunkings.length];
      seed('fuzz_frame', `${name}-${side}`, frameCfg({ server, chunks }), s);
    }
    /* Limits and errors, each after a good frame. */
    const good = f(1, 'ok');
    const errors = {
      rsv2: f(1, 'x', { rsv: 2 }),
      rsv1: f(1, 'x', { rsv: 4 }),
      opcode3: f(3, 'x'),
      cont_first: f(0, 'x'),
      ping_not_fin: f(9, 'x', { fin: false }),
      ping_126: f(9, Buffer.alloc(126)),
      close_len1: f(8, 'x'),
      close_code: f(8, closePayload(1005)),
      close_utf8: f(8, Buffer.concat([closePayload(1000), Buffer.from([0xff])])),
      wrong_mask: frame(1, 'x', { key: server ? null : KEY }),
      len_2_53: Buffer.concat([frame(2, '', { key, len64: true,
        length: 2 ** 53 })]).subarray(0, 10)
    };
    for (const [name, s] of Object.entries(errors))
      seed('fuzz_frame', `err-${name}-${side}`,
        frameCfg({ server, chunks: [1, 2, 0, 0] }), good, s);
  }
  /* permessage-deflate's RSV1 on a first frame (compressed "Hello"). */
  const hello = Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
  seed('fuzz_frame', 'rsv1-compressed', frameCfg({ server: true, rsv1: true }),
    frame(1, hello, { rsv: 4, key: KEY, fin: false }), frame(0, '', { key: KEY }));
  /* max payload: under, exactly at and over (small, 10 bytes). */
  for (const [name, n] of [['max-under', 9], ['max-exact', 10], ['max-over', 11]])
    seed('fuzz_frame', name, frameCfg({ server: false, maxMode: 1, max: 9 }),
      frame(2, Buffer.alloc(n - 4, 1), { fin: false }), frame(0, 'abcd'));
  seed('fuzz_frame', 'max-medium', frameCfg({ server: true, maxMode: 2, max: 0,
    chunks: [192, 5, 0, 0] }), frame(2, Buffer.alloc(1100, 3), { key: KEY }));
  seed('fuzz_frame', 'max-huge', frameCfg({ server: false, maxMode: 3, max: 11 }),
    frame(2, '', { len64: true, length: 2 ** 53 - 1 }));
  /* What ws itself sends, server to client and (fixed mask) client to server. */
  seed('fuzz_frame', 'ws-server-stream', frameCfg({ server: false,
    chunks: [5, 0, 0, 0] }), wsFrames.fromServer);
  seed('fuzz_frame', 'ws-client-stream', frameCfg({ server: true,
    chunks: [9, 1, 0, 0] }), wsFrames.fromClient);
}

/* ---- UTF-8 ------------------------------------------------------------ */

function utf8Seeds() {
  const b = (...x) => Buffer.from(x);
  const cases = {
    ascii_long: Buffer.from('The quick brown fox jumps over the lazy dog. 0123456789'),
    kosme: Buffer.from('κόσμε'),
    mixed: Buffer.from('ascii then ünïcödé then 日本語 then 🎉 and more ascii!!'),
    boundaries: Buffer.from('\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\u{10000}\u{10ffff}'),
    overlong2: b(0x41, 0xc0, 0x80),
    overlong2_c1: b(0xc1, 0xbf),
    overlong3: b(0xe0, 0x80, 0x80),
    overlong3_max: b(0xe0, 0x9f, 0xbf),
    overlong4: b(0xf0, 0x80, 0x80, 0x80),
    overlong4_max: b(0xf0, 0x8f, 0xbf, 0xbf),
    surrogate_lo: b(0xed, 0xa0, 0x80),
    surrogate_hi: b(0xed, 0xbf, 0xbf),
    above_max: b(0xf4, 0x90, 0x80, 0x80),
    f5: b(0xf5, 0x80, 0x80, 0x80),
    ff: b(0x61, 0xff),
    lone_cont: b(0x80),
    truncated2: b(0x61, 0x62, 0xc3),
    truncated4: b(0xf0, 0x9f, 0x8e),
    bad_cont: b(0xe2, 0x82, 0x41)
  };
  const chunkings = [[0, 0, 0, 0], [1, 1, 1, 1], [2, 3, 5, 7], [16, 1, 200, 0]];
  let i = 0;
  for (const [name, text] of Object.entries(cases))
    seed('fuzz_utf8', name, Buffer.from(chunkings[i++ % 4]), text);
  /* A long ASCII run (fast path), then a 4-byte char split at the end. */
  seed('fuzz_utf8', 'fast_path_split', Buffer.from([193, 3, 1, 0]),
    Buffer.alloc(40, 0x61), Buffer.from('🎉'), Buffer.alloc(20, 0x62));
}

/* ---- HTTP and handshakes --------------------------------------------- */

/* A ws client's request head, with its random key replaced. */
function captureRequest(url, protocols, options) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.destroy();
        server.close();
        const head = buf.subarray(0, end + 4).toString('latin1')
          .replace(/(Sec-WebSocket-Key: )[A-Za-z0-9+/=]+/i, `$1${SAMPLE_KEY}`)
          .replace(/(\r\nHost: 127\.0\.0\.1:)\d+/i, '$18080');
        resolve(Buffer.from(head, 'latin1'));
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const u = url.replace('PORT', server.address().port);
      const ws = new WS(u, protocols, options);
      ws.on('error', () => {});
    });
    server.on('error', reject);
  });
}

/* The bytes a server sends back to `request` until it closes or goes
 * quiet; with `head` only, up to the end of the response head. */
function exchange(port, request, { headOnly = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
    let buf = Buffer.alloc(0);
    let timer = null;
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(buf);
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (headOnly && end >= 0) {
        buf = buf.subarray(0, end + 4);
        done();
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(done, 200);
    });
    sock.on('close', done);
    sock.on('error', done);
  });
}

async function httpAndHandshakeSeeds() {
  const requests = {
    plain: await captureRequest('ws://127.0.0.1:PORT/', undefined, {
      perMessageDeflate: false }),
    deflate_protocols: await captureRequest('ws://127.0.0.1:PORT/chat?room=1',
      ['chat', 'superchat'], {}),
    v8_origin: await captureRequest('ws://user:pw@127.0.0.1:PORT/x', 'p', {
      protocolVersion: 8, origin: 'http://example.com',
      headers: { 'X-Custom': 'a, b', Cookie: 'k=v' } })
  };

  const wss = new WS.Server({
    port: 0,
    host: '127.0.0.1',
    perMessageDeflate: true,
    handleProtocols: (set) => [...set].pop()
  });
  await new Promise((r) => wss.on('listening', r));
  const port = wss.address().port;

  const responses = {};
  for (const [name, req] of Object.entries(requests))
    responses[name] = await exchange(port, req, { headOnly: true });
  const bad = {
    post: requests.plain.toString('latin1').replace(/^GET/, 'POST'),
    no_key: requests.plain.toString('latin1').replace(/Sec-WebSocket-Key:[^\r]*\r\n/i, ''),
    version_9: requests.plain.toString('latin1').replace(/(Version: )13/i, '$19'),
    version_hex: requests.plain.toString('latin1').replace(/(Version: )13/i, '$1 0xd '),
    version_exp: requests.plain.toString('latin1').replace(/(Version: )13/i, '$11.3e1'),
    dup_protocol: requests.plain.toString('latin1').replace('\r\n\r\n',
      '\r\nSec-WebSocket-Protocol: a, b\r\nsec-websocket-protocol: b\r\n\r\n'),
    two_protocol_lines: requests.plain.toString('latin1').replace('\r\n\r\n',
      '\r\nSec-WebSocket-Protocol: a,b\r\nSec-WebSocket-Protocol:  c \r\n\r\n'),
    bad_upgrade: requests.plain.toString('latin1').replace(/Upgrade: websocket/i,
      'Upgrade: h2c')
  };
  for (const [name, req] of Object.entries(bad)) {
    requests[name] = Buffer.from(req, 'latin1');
    responses[name] = await exchange(port, requests[name]);
  }

  /* ws frames: a ws client with a fixed mask sends to the ws server, which
   * echoes; capture both directions through a raw proxy. */
  const wsFrames = await new Promise((resolve) => {
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('ping', () => {});
    });
    const fromClient = [];
    const fromServer = [];
    const proxy = net.createServer((c) => {
      const s = net.connect(port, '127.0.0.1');
      c.on('data', (d) => { fromClient.push(d); s.write(d); });
      s.on('data', (d) => { fromServer.push(d); c.write(d); });
      s.on('close', () => c.destroy());
      c.on('close', () => {
        s.destroy();
        proxy.close();
        const strip = (b) => b.subarray(b.indexOf('\r\n\r\n') + 4);
        resolve({
          fromClient: strip(Buffer.concat(fromClient)),
          fromServer: strip(Buffer.concat(fromServer))
        });
      });
    });
    proxy.listen(0, '127.0.0.1', () => {
      const ws = new WS(`ws://127.0.0.1:${proxy.address().port}`, {
        perMessageDeflate: false,
        generateMask: (mask) => mask.set([0x12, 0x34, 0x56, 0x78])
      });
      ws.on('open', () => {
        ws.send('hello');
        ws.send(Buffer.alloc(200, 0xab));
        ws.ping('p');
        ws.send('fragmented κόσμε', { fin: false });
        ws.send(' end', { fin: true });
        ws.close(1000, 'done');
      });
      ws.on('close', () => {});
    });
  });
  wss.close();

  const chunkings = [[0, 0, 0, 0], [1, 1, 1, 1], [7, 30, 2, 0], [193, 3, 0, 0]];
  let i = 0;
  for (const [name, req] of Object.entries(requests)) {
    seed('fuzz_http', `req-${name}`, Buffer.from(chunkings[i++ % 4]), req);
    seed('fuzz_handshake', `req-${name}`, Buffer.from([0]), req);
  }
  for (const [name, res] of Object.entries(responses)) {
    seed('fuzz_http', `res-${name}`, Buffer.from(chunkings[i++ % 4]), res);
    /* Responses to the sample key (mode 1), and with the key inline
     * (mode 2). */
    seed('fuzz_handshake', `res-${name}`, Buffer.from([1]), res);
  }
  seed('fuzz_handshake', 'res-keyed', Buffer.from([2, SAMPLE_KEY.length]),
    SAMPLE_KEY, responses.deflate_protocols);
  /* Hand-made heads the parsers must reject or handle. */
  const odd = {
    http10: 'GET / HTTP/1.0\r\n\r\n',
    bare_lf: 'GET / HTTP/1.1\nHost: x\n\n',
    obs_fold: 'GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n',
    http2: 'GET / HTTP/2.0\r\n\r\n',
    res_no_reason: 'HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    res_empty_reason: 'HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n',
    ows_values: 'GET /p HTTP/1.1\r\nA:\t v \t\r\nB:\r\nC: x,  y ,z\r\n\r\n',
    obs_text: 'GET /\xe9 HTTP/1.1\r\nX: caf\xe9\r\n\r\n'
  };
  for (const [name, h] of Object.entries(odd)) {
    seed('fuzz_http', `odd-${name}`, Buffer.from(chunkings[i++ % 4]),
      Buffer.from(h, 'latin1'));
  }
  /* Chunked bodies (the decoder reads the same bytes). */
  const chunkedBodies = {
    plain: '5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n',
    trailers: '3\nabc\n0\nX-T: 1\r\n\r\nafter',
    bad_size: '2\r\nok\r\n 5\r\nhello\r\n'
  };
  for (const [name, b] of Object.entries(chunkedBodies)) {
    seed('fuzz_http', `chunked-${name}`, Buffer.from(chunkings[i++ % 4]), b);
  }
  /* first_protocol and accept (mode 3). */
  for (const [name, v] of Object.entries({ proto_list: ' chat, superchat',
    proto_empty: '', sample_key: SAMPLE_KEY, long_key: 'k'.repeat(129) }))
    seed('fuzz_handshake', `mode3-${name}`, Buffer.from([3]), v);
  return wsFrames;
}

/* ---- permessage-deflate ---------------------------------------------- */

const zlib = require('zlib');

/* Raw deflate of each message on one stream (context takeover), each ended
 * by a sync flush whose 00 00 ff ff tail is removed, as RFC 7692 7.2.1 and
 * ws do. */
function deflateMessages(messages, { windowBits = 15, takeover = true } = {}) {
  const out = [];
  let z = null;
  return (async () => {
    for (const m of messages) {
      if (!z || !takeover) z = zlib.createDeflateRaw({ windowBits });
      const chunks = [];
      const onData = (c) => chunks.push(c);
      z.on('data', onData);
      z.write(m);
      await new Promise((r) => z.flush(zlib.constants.Z_SYNC_FLUSH, r));
      z.off('data', onData);
      const b = Buffer.concat(chunks);
      out.push(b.subarray(0, b.length - 4));
    }
    return out;
  })();
}

/* [mode][wbits][max][zopts][c0..c3]: see fuzz_inflate.c. Chunk bytes:
 * low 7 bits a size (0 = the rest), bit 7 ends the message. */
function inflateCfg({ server = true, peerNct = false, ownNct = false,
  idle = false, wbits = 0, max = 0, zopts = 0, chunks = [0, 0, 0, 0] }) {
  const mode = (server ? 2 : 0) | (peerNct ? 4 : 0) | (ownNct ? 8 : 0) |
    (idle ? 16 : 0);
  return Buffer.from([mode, wbits, max, zopts, ...chunks]);
}

/* wbits nibble for a window size: 8..15 -> 1..8 (absent: 0). */
const nib = (bits) => (bits ? bits - 7 : 0);

async function inflateSeeds() {
  const hello = Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
  const helloAgain = Buffer.from([0xf2, 0x00, 0x11, 0x00, 0x00]);
  const stored = Buffer.from([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c,
    0x6c, 0x6f, 0x00]);
  /* RFC 7692 7.2.3: "Hello", twice with context takeover, stored. */
  seed('fuzz_inflate', 'rfc-hello', inflateCfg({}), hello);
  seed('fuzz_inflate', 'rfc-hello-twice', inflateCfg({
    chunks: [0x80 | 7, 0x80 | 5, 0, 0] }), hello, helloAgain);
  seed('fuzz_inflate', 'rfc-stored', inflateCfg({ chunks: [3, 0x80 | 8, 0, 0] }),
    stored);
  seed('fuzz_inflate', 'empty-message', inflateCfg({ chunks: [0x80 | 1, 0, 0, 0] }),
    Buffer.from([0x00]), hello);

  const text = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(20));
  const msgs = [text, Buffer.from('short'), text.subarray(0, 300), Buffer.alloc(0)];
  for (const [name, opts, cfg] of [
    ['takeover-w15', { windowBits: 15 }, {}],
    ['takeover-w9', { windowBits: 9 }, { wbits: nib(9) << 4 | nib(9) }],
    ['no-takeover-w10', { windowBits: 10, takeover: false },
      { peerNct: true, ownNct: true, idle: true, wbits: nib(10) << 4 | nib(10) }],
    ['client-w12', { windowBits: 12 }, { server: false, wbits: nib(12) }]
  ]) {
    const parts = await deflateMessages(msgs, opts);
    /* Chunk sizes so each message ends on a fin chunk: one chunk per
     * message when it is short enough, else the rest. */
    const chunks = parts.map((p) => 0x80 | Math.min(p.length || 1, 127));
    const data = parts.map((p) => (p.length ? p : Buffer.from([0x00])));
    seed('fuzz_inflate', name, inflateCfg({ ...cfg, chunks }), ...data);
  }
  /* A bomb: 1 MiB of zeros, against 2 KiB, 64 KiB and no limit. */
  const bomb = (await deflateMessages([Buffer.alloc(1 << 20)]))[0];
  seed('fuzz_inflate', 'bomb-2k', inflateCfg({ max: 128, chunks: [100, 0, 0, 0] }), bomb);
  seed('fuzz_inflate', 'bomb-64k', inflateCfg({ max: 135, zopts: 99 }), bomb);
  /* Corrupt: a reserved block type, and garbage after a final block. */
  seed('fuzz_inflate', 'bad-block-type', inflateCfg({}), Buffer.from([0xff, 0xff, 0x00]));
  const final = zlib.deflateRawSync('done');
  seed('fuzz_inflate', 'after-final', inflateCfg({ chunks: [
    0x80 | (final.length + 3), 0, 0, 0] }), final, Buffer.from([1, 2, 3]), hello);

  /* Negotiation: [mode][o0..o3] value. mode 3 server, 1 client, 5 client
   * without an offer. */
  const neg = {
    'srv-ws-default-offer': [3, [0, 0, 0, 0], 'permessage-deflate; client_max_window_bits'],
    'srv-two-offers': [3, [2, 0, 5, 0],
      'permessage-deflate; server_max_window_bits=10; client_no_context_takeover, permessage-deflate'],
    'srv-other-ext': [3, [0, 0, 0, 0], 'x-webkit-deflate-frame, foo; bar="baz"'],
    'srv-quoted': [3, [0, 0, 0, 0], 'permessage-deflate; client_max_window_bits="10"'],
    'srv-duplicate': [3, [0, 0, 0, 0],
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
    'srv-unknown': [3, [0, 0, 0, 0], 'permessage-deflate; foo=1'],
    'srv-syntax': [3, [0, 0, 0, 0], 'permessage-deflate;; ,'],
    'srv-refuse': [3, [1, 1, 1, 1], 'permessage-deflate; server_max_window_bits=9'],
    'cli-ws-answer': [1, [0, 0, 0, 0],
      'permessage-deflate; server_no_context_takeover; client_max_window_bits=10'],
    'cli-bare-cmwb': [1, [0, 0, 0, 0], 'permessage-deflate; client_max_window_bits'],
    'cli-not-requested': [1, [0, 0, 0, 0], 'permessage-deflate, x-foo'],
    'cli-unexpected-cnct': [1, [1, 1, 0, 0], 'permessage-deflate; client_no_context_takeover'],
    'cli-no-offer': [5, [0, 0, 0, 0], 'permessage-deflate']
  };
  for (const [name, [mode, o, value]] of Object.entries(neg))
    seed('fuzz_inflate', `neg-${name}`, Buffer.from([mode, ...o]), value);
}

async function main() {
  const wsFrames = await httpAndHandshakeSeeds();
  frameSeeds(wsFrames);
  utf8Seeds();
  await inflateSeeds();
  let total = 0;
  for (const [target, list] of Object.entries(seeds)) {
    const dir = path.join(OUT, target);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, data] of list) fs.writeFileSync(path.join(dir, name), data);
    total += list.length;
    console.log(`${target}: ${list.length} seeds`);
  }
  console.log(`${total} seeds in ${path.relative(process.cwd(), OUT) || '.'}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
