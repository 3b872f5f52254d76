'use strict';

// S6's load: N WebSocket clients in one Node process, K messages in flight
// each, against an echo server. What is measured is this process: the
// client library (ws's WebSocket or ws-native's) and whatever transport it
// uses for wss:// (Node's tls, or ws-native's own), so the same script serves
// every column and does not care which path the library takes.
//
//   node echo-client.js '{"lib":"ws"|"ws-native","url":"wss://...","ca":"cert.pem",
//                         "conns":N,"inflight":K,"size":S,"warmup":s,"duration":s}'
//
// Text messages of S bytes: a 16-character (seq, connection) stamp followed
// by a per-connection slice of random printable ASCII; every echo is checked
// against what was sent (order, length, content, text flag), so a client
// that loses or corrupts messages fails (exit 3) instead of looking fast;
// exit 4 if no echo arrives for 10 s. Prints one JSON line:
// msgs_per_s, cpu_us_per_msg (process.cpuUsage(), user + system, all
// threads, over the measured window), cpu_util (CPU time / wall time) and,
// given "server_pid", server_cpu: the server's CPU time / wall time over the
// same window (from /proc; near 1.0 means the server, not this client, set
// the rate, and msgs_per_s says little about the client).

const fs = require('fs');

const cfg = JSON.parse(process.argv[2]);
const lib = cfg.lib === 'ws' ? require('ws') : require('../..');
const WebSocket = lib.WebSocket || lib;
const ca = cfg.ca ? fs.readFileSync(cfg.ca) : undefined;
const { conns, inflight, size } = cfg;
const STALL_MS = 10000;

function fail(code, msg) {
  process.stderr.write(`echo-client: ${msg}\n`);
  process.exit(code);
}

let pattern = '';
for (let i = 0; i < size + 4096; i++) pattern += String.fromCharCode(0x20 + Math.floor(Math.random() * 95));

const hex8 = (n) => (n >>> 0).toString(16).padStart(8, '0');

let phase = 'connect'; // connect, warmup, measure, drain, done
let received = 0;
let lastProgress = Date.now();
let inFlight = 0;
const clients = [];

function message(c, seq) {
  const body = size > 16 ? pattern.slice(c.offset, c.offset + size - 16) : '';
  return (hex8(seq) + hex8(c.id)).slice(0, size) + body;
}

function pump(c) {
  while ((phase === 'warmup' || phase === 'measure') && c.sendSeq - c.recvSeq < inflight) {
    const m = message(c, c.sendSeq);
    c.sent[c.sendSeq % inflight] = m;
    c.sendSeq++;
    inFlight++;
    c.ws.send(m);
  }
}

function open(id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(cfg.url, { ca, perMessageDeflate: false });
    const c = { id, ws, sendSeq: 0, recvSeq: 0, sent: new Array(inflight), offset: (id * 769) % 4093 };
    ws.on('open', () => resolve(c));
    ws.on('error', (e) => (phase === 'connect' ? reject(e) : fail(2, `connection ${id}: ${e.message}`)));
    ws.on('close', (code) => {
      if (phase !== 'done' && phase !== 'closing') fail(2, `connection ${id} closed (${code}) during the run`);
    });
    ws.on('message', (data, isBinary) => {
      if (c.recvSeq === c.sendSeq) fail(3, `connection ${id}: message with none in flight`);
      const want = c.sent[c.recvSeq % inflight];
      const got = data.toString();
      if (isBinary || got !== want) {
        fail(3, `connection ${id}, message ${c.recvSeq}: echo differs (${isBinary ? 'binary' : 'text'}, ` +
          `${data.length} bytes, starts ${JSON.stringify(got.slice(0, 24))}, expected ${JSON.stringify(want.slice(0, 24))})`);
      }
      c.sent[c.recvSeq % inflight] = undefined;
      c.recvSeq++;
      received++;
      inFlight--;
      lastProgress = Date.now();
      if (phase === 'drain') {
        if (inFlight === 0) finish();
      } else {
        pump(c);
      }
    });
  });
}

let t0, t1, cpu0, cpu1, n0, n1, srv0, srv1;

// utime + stime of a process in seconds, or null (no /proc, or no pid).
function procCpu(pid) {
  if (!pid) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that ends the command name: utime, stime are 14, 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ, 100 on Linux
  } catch {
    return null;
  }
}

async function main() {
  // Handshakes 256 at a time, as wsload does.
  for (let i = 0; i < conns; i += 256) {
    const batch = [];
    for (let j = i; j < Math.min(conns, i + 256); j++) batch.push(open(j));
    clients.push(...(await Promise.all(batch)));
  }
  phase = 'warmup';
  lastProgress = Date.now();
  for (const c of clients) pump(c);
  const stall = setInterval(() => {
    if (Date.now() - lastProgress > STALL_MS) fail(4, `stalled: no echo for ${STALL_MS / 1000} s with ${inFlight} in flight`);
  }, 500);
  stall.unref();
  setTimeout(() => {
    phase = 'measure';
    n0 = received;
    cpu0 = process.cpuUsage();
    srv0 = procCpu(cfg.server_pid);
    t0 = process.hrtime.bigint();
    setTimeout(() => {
      n1 = received;
      cpu1 = process.cpuUsage(cpu0);
      srv1 = procCpu(cfg.server_pid);
      t1 = process.hrtime.bigint();
      phase = 'drain';
      if (inFlight === 0) finish();
    }, cfg.duration * 1000);
  }, cfg.warmup * 1000);
}

function finish() {
  if (phase === 'closing' || phase === 'done') return;
  phase = 'closing';
  const secs = Number(t1 - t0) / 1e9;
  const msgs = n1 - n0;
  const cpu = (cpu1.user + cpu1.system) / 1e6;
  process.stdout.write(
    JSON.stringify({
      lib: cfg.lib,
      connections: conns,
      inflight,
      size,
      duration_s: +secs.toFixed(3),
      messages: msgs,
      verified_messages: received,
      msgs_per_s: msgs / secs,
      cpu_us_per_msg: msgs ? (cpu * 1e6) / msgs : null,
      cpu_util: cpu / secs,
      server_cpu: srv0 !== null && srv1 !== null ? (srv1 - srv0) / secs : null
    }) + '\n'
  );
  let open = clients.length;
  const done = () => {
    phase = 'done';
    process.exit(0);
  };
  for (const c of clients) {
    c.ws.once('close', () => --open === 0 && done());
    c.ws.close(1000);
  }
  setTimeout(done, 3000).unref();
}

main().catch((e) => fail(2, `cannot connect: ${e.message}`));
