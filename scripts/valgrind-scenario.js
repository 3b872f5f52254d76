'use strict';
// The interop scenario scripts/valgrind.sh runs under valgrind: a ws-native
// server, with a ws-native client and a `ws` client each exchanging
// messages of many sizes, compressed (permessage-deflate), (empty to 200 KB, text and binary, across the 7-,
// 16- and 64-bit length forms) that the server echoes, pings both ways,
// then closes started by the client (ws-native) and by the server (ws), a
// third ws-native client terminated mid-traffic, and finally the server
// closed. Nothing is left open, so the process must exit by itself; it
// prints "scenario: ok ..." on success and exits 1 on any mismatch or if it
// takes longer than the limit.
//
//   node scripts/valgrind-scenario.js [messages per client, default 150]

const assert = require('assert');
const path = require('path');

const WSN = require(path.join(__dirname, '..'));
const WS = require('ws');

const PER_CLIENT = Number(process.argv[2]) || 150;
const SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 70000, 200000, 7];
const LIMIT_MS = 10 * 60 * 1000; // valgrind is ~50x slower than native

const limit = setTimeout(() => {
  console.error('scenario: timed out');
  process.exit(1);
}, LIMIT_MS);
limit.unref();

function payload(i) {
  const n = SIZES[i % SIZES.length];
  if (i % 2 === 0) {
    // Text, with multi-byte characters so UTF-8 validation has work.
    const unit = `msg ${i} κόσμε `;
    return unit.repeat(Math.ceil(n / Buffer.byteLength(unit))).slice(0, n);
  }
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = (k * 31 + i) & 0xff;
  return b;
}

let echoed = 0;
let pongs = 0;

// Compression on: both clients offer it by default, so every message is
// deflated and inflated in C on the way (zlib state under memcheck too).
const wss = new WSN.WebSocketServer({
  port: 0,
  host: '127.0.0.1',
  perMessageDeflate: true
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'server, close me') {
      ws.close(4000, 'server done');
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', (err) => {
    // The terminated client's connection may end with an error: fine.
    if (err.code !== 'ECONNRESET') console.error('server side error:', err);
  });
});

/* Sends PER_CLIENT messages one after another (each after the previous
 * echo), with a ping every 10th, and checks every echo. */
function exchange(ws, name, onDone) {
  let i = 0;
  const next = () => {
    if (i === PER_CLIENT) {
      onDone();
      return;
    }
    if (i % 10 === 0) ws.ping(Buffer.from(`ping ${name} ${i}`));
    ws.send(payload(i));
  };
  ws.on('pong', () => pongs++);
  ws.on('message', (data, isBinary) => {
    const want = payload(i);
    if (typeof want === 'string') {
      assert.strictEqual(isBinary, false, `${name} ${i}: text came back binary`);
      assert.strictEqual(data.toString(), want, `${name} ${i}: text differs`);
    } else {
      assert.strictEqual(isBinary, true, `${name} ${i}: binary came back text`);
      assert.ok(Buffer.from(data).equals(want), `${name} ${i}: bytes differ`);
    }
    echoed++;
    i++;
    next();
  });
  ws.on('open', next);
}

function closed(ws) {
  return new Promise((resolve) => ws.on('close', (code, reason) =>
    resolve({ code, reason: reason.toString() })));
}

wss.on('listening', async () => {
  const url = `ws://127.0.0.1:${wss.address().port}/`;

  // ws-native client: it starts the close.
  const a = new WSN.WebSocket(url);
  a.on('error', (err) => { throw err; });
  exchange(a, 'native', () => a.close(1000, 'client done'));

  // ws client: the server starts the close.
  const b = new WS(url);
  b.on('error', (err) => { throw err; });
  exchange(b, 'ws', () => b.send('server, close me'));

  // ws-native client terminated with messages in flight.
  const c = new WSN.WebSocket(url);
  c.on('error', () => {});
  c.on('open', () => {
    for (let i = 0; i < 20; i++) c.send(payload(i));
    setTimeout(() => c.terminate(), 5);
  });

  const [ca, cb, cc] = await Promise.all([closed(a), closed(b), closed(c)]);
  assert.deepStrictEqual(ca, { code: 1000, reason: 'client done' });
  assert.deepStrictEqual(cb, { code: 4000, reason: 'server done' });
  assert.strictEqual(cc.code, 1006);
  assert.strictEqual(echoed, 2 * PER_CLIENT);
  assert.ok(pongs >= 2 * Math.ceil(PER_CLIENT / 10), `pongs: ${pongs}`);

  wss.close(() => {
    console.log(`scenario: ok, ${echoed} messages echoed, ${pongs} pongs`);
    // Nothing is open now: the process exits on its own.
  });
});
