#!/usr/bin/env node
'use strict';

// Benchmark driver: `npm run bench` (= node bench/run.js).
//
// For each scenario it runs every implementation in turn, INTERLEAVED
// (ws, uWebSockets.js, ws-native thread, ws-native main, the C server, then
// again, ...), so slow drift on a
// shared machine (other jobs, thermal, page cache) hits every column alike
// instead of whichever ran last. Each cell is the median of the repetitions.
// The server is pinned to CPU 0 and the load generator to CPU 1 so they do
// not compete for a core. Every measurement gets a fresh server process.
//
// The peers: ws (the reference ws-native replaces), uWebSockets.js (what
// people pick a native WebSocket server for; npm `uwebsockets` 3.0.6, a
// third party's republished binary, installed on demand into bench/.uws and
// never a dependency: see ensureUws) and the C server (build/cserver from
// cserver.c, the machine's limit: the least a correct echo server can do).
// Every row gives ws-native's ratio against ws and against uWebSockets.js.
//
// Options:
//   --quick            short durations and one repetition (smoke run, < 1 min)
//   --only S2[,S5]     run only these scenarios (S1-S4, S4Z, S4ZN, S5, S5N, S6, S7,
//                      S8, S8L, S9, S10)
//   --impl a,b         columns: ws, uws, native-thread, native-main, c
//                      ("native" = both ws-native modes; default: all five)
//   --reps N           repetitions (default 3; --quick: 1)
//   --no-pin           do not pin processes to CPUs
// Prints the table on stdout (progress on stderr) and writes bench/results.md
// and its chart, bench/chart.svg (bench/chart.js).

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const BENCH = __dirname;
const WSLOAD = path.join(BENCH, 'build', 'wsload');
const CSERVER = path.join(BENCH, 'build', 'cserver');
// uWebSockets.js: the npm version measured in issue 14, installed on demand
// (ensureUws) into this git-ignored folder.
const UWS_DIR = path.join(BENCH, '.uws');
const UWS_VERSION = '3.0.6';
const RESULTS = path.join(BENCH, 'results.md');

// Column order is this order. `bin`: a native executable instead of a Node
// script; `pmd`: speaks permessage-deflate (`pmdKeys`: the only
// perMessageDeflate options it can match, see servers/uws.js); `client`: has
// a WebSocket client (S6 measures clients); `tls`: serves wss:// (S8, S8L).
// ws-native serves wss:// (S8, S8L) with `{ port, tls }`, TLS in C;
// BENCH_WSN_TLS=node measures its `{ server: https.createServer() }` path
// instead (TLS in Node, bytes moved through a socketpair).
const WSN_TLS_ENV = process.env.BENCH_WSN_TLS === 'node' ? {} : { BENCH_TLS_IN_C: '1' };
const IMPLS = {
  ws: { label: 'ws', script: 'ws.js', env: {}, pmd: true, client: true, tls: true },
  uws: { label: 'uWebSockets.js', short: 'uWS.js', script: 'uws.js', env: { BENCH_UWS_DIR: UWS_DIR }, pmd: true,
    pmdKeys: ['serverNoContextTakeover', 'clientNoContextTakeover'], client: false, tls: true },
  'native-thread': { label: 'ws-native (thread)', script: 'ws-native.js', env: { WS_NATIVE_LOOP: 'thread', ...WSN_TLS_ENV }, pmd: true, client: true, tls: true },
  'native-main': { label: 'ws-native (main)', script: 'ws-native.js', env: { WS_NATIVE_LOOP: 'main', ...WSN_TLS_ENV }, pmd: true, client: true, tls: true },
  c: { label: 'C limit', bin: CSERVER, env: {}, pmd: false, client: false, tls: false }
};

// Why `impl` has no cell in `scn`, or null when it has one.
function notApplicable(scn, impl) {
  const i = IMPLS[impl];
  if (scn.client && !i.client) return `S6 measures a WebSocket client; ${i.label} is measured as a server only`;
  if (scn.socketio && impl !== 'ws' && !impl.startsWith('native-')) return `socket.io runs on a ws-compatible wsEngine; ${i.label} is not one`;
  if (scn.tls && !i.tls) return 'the C server speaks no TLS (it is the limit of socket I/O and framing alone)';
  const pmd = (scn.env && scn.env.BENCH_PMD) || (scn.memory && scn.memory.env && scn.memory.env.BENCH_PMD);
  if (pmd && !i.pmd) return 'the C server has no permessage-deflate (it is the limit of the uncompressed path)';
  const unmatched = pmd && i.pmdKeys ? Object.keys(JSON.parse(pmd)).filter((k) => !i.pmdKeys.includes(k)) : [];
  if (unmatched.length) return `${i.label} has no counterpart of perMessageDeflate.${unmatched.join(', ')}`;
  return null;
}

// Durations in seconds: [warmup, measure]; idle/idleZ: connections held by
// S4 and S4Z/S4ZN. The full run takes ~13 min with all five implementations
// (156 measurements: the C server has no compressed or TLS cells, and only
// ws and ws-native have S6's client).
const FULL = { S1: [1, 3], S2: [1, 5], S3: [1, 3], S5: [1, 5], S6: [1, 5], S7: [1, 5], S8: [1, 5], S8L: [1, 3], S9: [1, 5], S10: [1, 5], idle: 10000, idleZ: 2000 };
const QUICK = {
  S1: [0.3, 1], S2: [0.5, 1.5], S3: [0.5, 1], S5: [0.5, 1.5], S6: [0.5, 1.5], S7: [0.5, 1.5], S8: [0.5, 1.5], S8L: [0.5, 1], S9: [0.5, 1.5], S10: [0.5, 1.5],
  idle: 10000, idleZ: 2000
};

// permessage-deflate options given to both servers (ws's perMessageDeflate,
// as JSON for servers/echo.js): ws's defaults, and both sides without
// context takeover.
const PMD_DEFAULT = '{}';
const PMD_NO_TAKEOVER = '{"serverNoContextTakeover":true,"clientNoContextTakeover":true}';
// Messages each connection sends and gets back in S4Z/S4ZN's active step.
const ACTIVE_MSGS = 4;

const SCENARIOS = [
  {
    id: 'S1',
    title: 'latency, 1 conn × 1 in flight, 32 B text',
    load: (d) => ['-m', 'latency', '-c', '1', '-k', '1', '-s', '32', '-t', '-w', d.S1[0], '-d', d.S1[1]],
    metrics: [
      { key: 'p50_us', name: 'p50 µs (lower is better)', fmt: 1 },
      { key: 'p99_us', name: 'p99 µs (lower is better)', fmt: 1 }
    ]
  },
  {
    id: 'S2',
    title: 'throughput, 100 conns × 32 in flight, 32 B text',
    load: (d) => ['-m', 'echo', '-c', '100', '-k', '32', '-s', '32', '-t', '-w', d.S2[0], '-d', d.S2[1]],
    metrics: [{ key: 'msgs_per_s', name: 'msg/s (higher is better)', fmt: 0 }]
  },
  {
    id: 'S3',
    title: 'large, 10 conns × 1 in flight, 1 MiB binary',
    load: (d) => ['-m', 'echo', '-c', '10', '-k', '1', '-s', '1m', '-b', '-w', d.S3[0], '-d', d.S3[1]],
    metrics: [{ key: 'mb_per_s', name: 'MB/s (higher is better)', fmt: 1 }]
  },
  {
    id: 'S4',
    title: 'memory, 10,000 idle conns',
    memory: { count: (d) => d.idle },
    metrics: [{ key: 'bytes_per_conn', name: 'RSS bytes/conn (lower is better)', fmt: 0 }]
  },
  {
    id: 'S4Z',
    title: 'memory, 2,000 conns, permessage-deflate (context takeover)',
    memory: { count: (d) => d.idleZ, env: { BENCH_PMD: PMD_DEFAULT }, args: ['-z', '-j', '-s', '1k'], active: ACTIVE_MSGS },
    metrics: [
      { key: 'bytes_per_conn', name: 'idle: RSS bytes/conn (lower is better)', fmt: 0 },
      { key: 'active_bytes_per_conn', name: `after ${ACTIVE_MSGS} msgs: RSS bytes/conn (lower is better)`, fmt: 0 }
    ],
    extra: ['wire_ratio_in']
  },
  {
    id: 'S4ZN',
    title: 'memory, 2,000 conns, permessage-deflate, no context takeover',
    memory: { count: (d) => d.idleZ, env: { BENCH_PMD: PMD_NO_TAKEOVER }, args: ['-z', '-j', '-s', '1k'], active: ACTIVE_MSGS },
    metrics: [
      { key: 'bytes_per_conn', name: 'idle: RSS bytes/conn (lower is better)', fmt: 0 },
      { key: 'active_bytes_per_conn', name: `after ${ACTIVE_MSGS} msgs: RSS bytes/conn (lower is better)`, fmt: 0 }
    ],
    extra: ['wire_ratio_in']
  },
  {
    id: 'S5',
    title: 'compressed, 100 conns × 8 in flight, 1 KiB JSON text, permessage-deflate (context takeover)',
    env: { BENCH_PMD: PMD_DEFAULT },
    load: (d) => ['-m', 'echo', '-c', '100', '-k', '8', '-s', '1k', '-t', '-j', '-z', '-w', d.S5[0], '-d', d.S5[1]],
    metrics: [{ key: 'msgs_per_s', name: 'msg/s (higher is better)', fmt: 0 }],
    extra: ['client_cpu', 'wire_ratio_in']
  },
  {
    id: 'S5N',
    title: 'compressed as S5, no context takeover',
    env: { BENCH_PMD: PMD_NO_TAKEOVER },
    load: (d) => ['-m', 'echo', '-c', '100', '-k', '8', '-s', '1k', '-t', '-j', '-z', '-w', d.S5[0], '-d', d.S5[1]],
    metrics: [{ key: 'msgs_per_s', name: 'msg/s (higher is better)', fmt: 0 }],
    extra: ['client_cpu', 'wire_ratio_in']
  },
  {
    id: 'S6',
    title: 'wss:// CLIENT, 100 conns × 32 in flight, 32 B text (server: ws on https, the same for all)',
    client: { conns: 100, inflight: 32, size: 32, durations: (d) => d.S6 },
    metrics: [
      { key: 'msgs_per_s', name: 'msg/s (higher is better)', fmt: 0 },
      { key: 'cpu_us_per_msg', name: 'client CPU µs/msg (lower is better)', fmt: 2 }
    ],
    extra: ['cpu_util', 'server_cpu']
  },
  {
    id: 'S7',
    title: 'connection setup, 50 at once: handshake, 1 msg of 32 B echoed, close handshake',
    load: (d) => ['-m', 'churn', '-c', '50', '-s', '32', '-t', '-w', d.S7[0], '-d', d.S7[1]],
    metrics: [
      { key: 'conns_per_s', name: 'conns/s (higher is better)', fmt: 0 },
      { key: 'handshake_p50_us', name: 'handshake p50 µs (lower is better)', fmt: 0 },
      { key: 'handshake_p99_us', name: 'handshake p99 µs (lower is better)', fmt: 0 }
    ],
    extra: ['client_cpu']
  },
  {
    id: 'S8',
    title: 'wss:// server, 50 conns × 8 in flight, 32 B text',
    tls: true,
    load: (d) => ['-S', '-m', 'echo', '-c', '50', '-k', '8', '-s', '32', '-t', '-w', d.S8[0], '-d', d.S8[1]],
    metrics: [{ key: 'msgs_per_s', name: 'msg/s (higher is better)', fmt: 0 }],
    extra: ['client_cpu']
  },
  {
    id: 'S8L',
    title: 'wss:// server, large: 10 conns × 1 in flight, 1 MiB binary',
    tls: true,
    load: (d) => ['-S', '-m', 'echo', '-c', '10', '-k', '1', '-s', '1m', '-b', '-w', d.S8L[0], '-d', d.S8L[1]],
    metrics: [{ key: 'mb_per_s', name: 'MB/s (higher is better)', fmt: 1 }],
    extra: ['client_cpu']
  },
  {
    // The server publishes one message to all 1,000 per event-loop turn
    // (servers/broadcast.js; uws.js and cserver with BENCH_BROADCAST):
    // ws-native's wss.publish() (docs/topics.md), uWS's app.publish(), ws's
    // loop over wss.clients (ws has nothing else), the C server's loop.
    // wsload counts what arrives.
    id: 'S9',
    title: 'broadcast, 1,000 conns, one 64 B text message to all per server turn',
    broadcast: { conns: 1000, size: 64 },
    load: (d) => ['-m', 'broadcast', '-c', '1000', '-s', '64', '-t', '-w', d.S9[0], '-d', d.S9[1]],
    metrics: [{ key: 'msgs_per_s', name: 'delivered msg/s (higher is better)', fmt: 0 }],
    extra: ['client_cpu']
  },
  {
    // socket.io (servers/socketio-broadcast.js) with wsEngine ws or
    // ws-native: io.to(room).emit() of one 64-character string per server
    // turn to 1,000 socket.io clients (wsload -I), events counted.
    id: 'S10',
    title: 'socket.io io.to(room).emit, 1,000 sockets, one 64-char event per server turn',
    broadcast: { conns: 1000, size: 64 },
    socketio: true,
    load: (d) => ['-m', 'broadcast', '-I', '-c', '1000', '-s', '64', '-t', '-w', d.S10[0], '-d', d.S10[1]],
    metrics: [{ key: 'msgs_per_s', name: 'delivered events/s (higher is better)', fmt: 0 }],
    extra: ['client_cpu']
  }
];

// ---- command line ---------------------------------------------------------

function parseArgs(argv) {
  const o = { quick: false, only: null, impls: Object.keys(IMPLS), reps: null, pin: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const name = a.split('=')[0];
    if (name === '--quick') o.quick = true;
    else if (name === '--no-pin') o.pin = false;
    else if (name === '--only') o.only = val().toUpperCase().split(',').filter(Boolean);
    else if (name === '--reps') o.reps = Number(val());
    else if (name === '--impl') {
      o.impls = [];
      for (const n of val().split(',').filter(Boolean)) {
        const names = n === 'native' ? ['native-thread', 'native-main'] : [n];
        for (const m of names) {
          if (!IMPLS[m]) usage(`unknown implementation ${m} (ws, uws, native-thread, native-main, native, c)`);
          if (!o.impls.includes(m)) o.impls.push(m);
        }
      }
      // Columns keep the canonical order whatever order was asked for.
      o.impls = Object.keys(IMPLS).filter((k) => o.impls.includes(k));
    } else if (name === '--help' || name === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  if (o.only) {
    for (const s of o.only) {
      if (!SCENARIOS.some((x) => x.id === s)) usage(`unknown scenario ${s} (${SCENARIOS.map((x) => x.id).join(', ')})`);
    }
  }
  if (o.reps === null) o.reps = o.quick ? 1 : 3;
  if (!Number.isInteger(o.reps) || o.reps < 1) usage('--reps must be a positive integer');
  if (o.impls.length === 0) usage('--impl selects nothing');
  return o;
}

function usage(err) {
  const text =
    'usage: node bench/run.js [--quick] [--only S1,S2,S3,S4,S4Z,S4ZN,S5,S5N,S6,S7,S8,S8L,S9,S10]\n' +
    '                         [--impl ws,uws,native-thread,native-main,c|native]\n' +
    '                         [--reps N] [--no-pin]\n';
  if (err) {
    process.stderr.write(`run.js: ${err}\n${text}`);
    process.exit(1);
  }
  process.stdout.write(text);
  process.exit(0);
}

// ---- processes ------------------------------------------------------------

const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

let pinning = null; // null: no pinning; else { server: [...], load: [...] }

function detectPinning(want) {
  if (!want) return { pin: null, note: 'not pinned (--no-pin)' };
  if (os.availableParallelism() < 2) return { pin: null, note: 'not pinned (fewer than 2 CPUs)' };
  const ok = (cpu) => spawnSync('taskset', ['-c', cpu, 'true'], { stdio: 'ignore' }).status === 0;
  if (!ok('0') || !ok('1')) return { pin: null, note: 'not pinned (taskset missing or CPUs 0/1 not allowed)' };
  return { pin: { server: ['taskset', '-c', '0'], load: ['taskset', '-c', '1'] }, note: 'server pinned to CPU 0, wsload to CPU 1' };
}

function command(prefix, file, args) {
  return prefix ? [prefix[0], [...prefix.slice(1), file, ...args]] : [file, args];
}

// The most telling line of a failed process's stderr: the first "...Error:"
// line (e.g. "Error: Cannot find module ..."), else an assertion or fatal
// error line (a native crash), else the first line that is not part of a
// stack trace.
function reasonFrom(stderr, fallback) {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const r =
    lines.find((l) => /^([A-Za-z]*Error\b|wsload:|echo-client:|server error:)/.test(l)) ||
    lines.find((l) => /assert|fatal|panic|segmentation/i.test(l)) ||
    lines.find((l) => !/^(-{3,}|\d+: |at |node:internal|\^|throw )/.test(l)) ||
    fallback;
  return r.length > 200 ? r.slice(0, 197) + '...' : r;
}

// The server under test for `impl` (servers/<impl>.js or build/cserver),
// pinned to the server's CPU; `env` adds to the implementation's environment.
function implServer(impl, exposeGc, env, scn) {
  const i = IMPLS[impl];
  if (scn && scn.broadcast) {
    // S9: the broadcasting server of each implementation (see S9).
    const b = { BENCH_BROADCAST: String(scn.broadcast.conns), BENCH_SIZE: String(scn.broadcast.size) };
    const script = scn.socketio ? 'socketio-broadcast.js' : impl === 'uws' || impl === 'c' ? i.script : 'broadcast.js';
    const how = impl === 'ws' ? { BENCH_LIB: 'ws', BENCH_HOW: 'clients' }
      : impl.startsWith('native-') ? { BENCH_LIB: 'ws-native', BENCH_HOW: 'publish' } : {};
    return { script, bin: i.bin, env: { ...i.env, ...env, ...b, ...how }, exposeGc, pin: pinning && pinning.server, name: i.label };
  }
  return { script: i.script, bin: i.bin, env: { ...i.env, ...env }, exposeGc, pin: pinning && pinning.server, name: i.label };
}

// A server process speaking the echo.js protocol: JSON lines on stdout.
// spec: { script (in servers/) or bin (an executable), env, exposeGc,
// pin (command prefix), name }.
class Server {
  constructor(spec) {
    const nodeArgs = [...(spec.exposeGc ? ['--expose-gc'] : []), path.join(BENCH, 'servers', spec.script || '')];
    const [cmd, args] = spec.bin ? command(spec.pin, spec.bin, []) : command(spec.pin, process.execPath, nodeArgs);
    this.name = spec.name || 'server';
    this.proc = track(spawn(cmd, args, { env: { ...process.env, ...spec.env }, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.stderr = '';
    this.exited = null;
    this.waiters = [];
    this.proc.stderr.on('data', (d) => {
      if (this.stderr.length < 65536) this.stderr += d;
    });
    this.proc.stdin.on('error', () => {}); // EPIPE if it died
    // 'close', not 'exit': it comes after stdout/stderr are drained, so the
    // failure reason is complete.
    this.proc.on('close', (code, signal) => {
      this.exited = signal || code;
      for (const w of this.waiters.splice(0)) w.reject(new Error(this.died()));
    });
    this.proc.on('error', (e) => {
      this.stderr += `Error: ${e.message}\n`;
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const i = this.waiters.findIndex((w) => w.key in msg);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
    });
  }

  died() {
    return `${this.name} exited (${this.exited}): ${reasonFrom(this.stderr, 'no error message')}`;
  }

  // Resolves with the next stdout message carrying `key`.
  next(key, timeoutMs) {
    if (this.exited !== null) return Promise.reject(new Error(this.died()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name} gave no "${key}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const w = {
        key,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m[key]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        }
      };
      this.waiters.push(w);
    });
  }

  async rss() {
    const p = this.next('rss', 15000);
    this.proc.stdin.write('rss\n');
    return p;
  }

  // Stdin end is the polite stop; SIGKILL if it does not go within 3 s.
  async stop() {
    if (this.exited !== null) return;
    const gone = new Promise((r) => this.proc.once('close', r));
    this.proc.stdin.end();
    const t = setTimeout(() => {
      // Worth knowing: echo.js calls process.exit() on stdin end, so a hang
      // here is the library blocking exit (e.g. an I/O thread never joined).
      process.stderr.write(`  warning: ${this.name} did not exit within 3 s of stdin end; killed\n`);
      this.proc.kill('SIGKILL');
    }, 3000);
    await gone;
    clearTimeout(t);
  }
}

// Runs wsload to completion; resolves with its JSON result.
function runLoad(args, timeoutMs) {
  return runJson('wsload', WSLOAD, args, { pin: pinning && pinning.load, timeoutMs });
}

// Runs a program that prints one JSON line as its last line of stdout.
function runJson(name, file, args, { pin, env, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const [cmd, a] = command(pin, file, args);
    const p = track(spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => reject(new Error(`cannot run ${name}: ${e.message}`)));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${name} ${signal ? 'killed by ' + signal : 'exit ' + code}: ${reasonFrom(err, 'no error message')}`));
        return;
      }
      const line = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`${name} printed no JSON result: ${line}`));
      }
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// uWebSockets.js for the uws column: npm `uwebsockets` (UWS_VERSION) in
// bench/.uws, installed there on first use. It is a third party's
// republished binary (the uWebSockets.js author publishes only on GitHub),
// so it is never a dependency of the package or of `npm test`: only this
// column asks for it, into a folder of its own. Returns null when it loads,
// else the reason the column reads n/a.
function ensureUws() {
  const pkg = path.join(UWS_DIR, 'node_modules', 'uwebsockets', 'package.json');
  let version = null;
  try {
    version = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
  } catch {}
  if (version !== UWS_VERSION) {
    process.stderr.write(`bench: installing uwebsockets@${UWS_VERSION} into ${path.relative(process.cwd(), UWS_DIR)} (the uWebSockets.js column)\n`);
    fs.mkdirSync(UWS_DIR, { recursive: true });
    const r = spawnSync(
      'npm',
      ['install', '--prefix', UWS_DIR, `uwebsockets@${UWS_VERSION}`, '--no-save', '--no-audit', '--no-fund', '--loglevel=error'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300000 }
    );
    if (r.status !== 0) {
      return `cannot install uwebsockets@${UWS_VERSION} into bench/.uws: ${r.error ? r.error.message : reasonFrom(r.stderr || '', 'npm failed')}`;
    }
  }
  // Loading it in a throwaway process: a binary built for another Node ABI
  // or libc fails here with its own message.
  const probe = `require(require.resolve('uwebsockets', { paths: [${JSON.stringify(path.join(UWS_DIR, 'node_modules'))}] }))`;
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) return `uwebsockets@${UWS_VERSION} does not load: ${reasonFrom(r.stderr || '', 'no error message')}`;
  return null;
}

// ---- measurements ----------------------------------------------------------

// Throws { startup: true } when the server never came up, so the caller can
// drop that implementation for the rest of the run.
async function startServer(spec) {
  const server = new Server(spec);
  try {
    const port = await server.next('port', 15000);
    return { server, port };
  } catch (e) {
    await server.stop().catch(() => {});
    const err = new Error(e.message);
    err.startup = true;
    throw err;
  }
}

async function measureLoad(scn, impl, durations) {
  // S8, S8L: wss:// with S6's self-signed certificate.
  const env = scn.tls ? { ...scn.env, BENCH_TLS_DIR: certificates() } : scn.env;
  const { server, port } = await startServer(implServer(impl, false, env, scn));
  try {
    const args = scn.load(durations).map(String);
    const secs = args.reduce((s, a, i) => (args[i - 1] === '-w' || args[i - 1] === '-d' ? s + Number(a) : s), 0);
    let result;
    try {
      result = await runLoad(['-p', String(port), ...args], (secs + 60) * 1000);
    } catch (e) {
      // A crashed server makes wsload fail too; the server's reason is the
      // one worth reporting.
      await sleep(300);
      if (server.exited !== null) throw new Error(`${server.died()} (during the run)`);
      throw e;
    }
    if (server.exited !== null) throw new Error(`${server.died()} (during the run)`);
    return result;
  } finally {
    await server.stop();
  }
}

// S4, S4Z, S4ZN: server RSS before and after N idle connections, each after
// gc(); with `active`, also after each connection then sent that many
// messages and got them back (and went idle again).
async function measureMemory(scn, impl, durations) {
  const n = scn.memory.count(durations);
  const { server, port } = await startServer(implServer(impl, true, scn.memory.env));
  let load = null;
  try {
    const before = await server.rss();
    const args = ['-m', 'idle', '-c', String(n), '-p', String(port), ...(scn.memory.args || [])];
    if (scn.memory.active) args.push('-a', String(scn.memory.active));
    const [cmd, a] = command(pinning && pinning.load, WSLOAD, args);
    load = track(spawn(cmd, a, { stdio: ['pipe', 'pipe', 'pipe'] }));
    let err = '';
    load.stderr.on('data', (d) => (err += d));
    load.stdin.on('error', () => {});
    const exited = new Promise((resolve) => load.on('close', (code, signal) => resolve({ code, signal })));
    const lines = readline.createInterface({ input: load.stdout });
    const nextLine = (what) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`wsload: ${what} not within 60 s`)), 60000);
        lines.once('line', (line) => {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        });
        exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`wsload ${signal || 'exit ' + code}: ${reasonFrom(err, 'no error message')}`));
        });
      });
    const established = await nextLine(`${n} connections established`);
    // Let the server finish whatever the last handshakes queued.
    await sleep(500);
    const after = await server.rss();
    const result = {
      bytes_per_conn: (after - before) / n,
      rss_before: before,
      rss_after: after,
      connect_s: established.connect_s
    };
    if (scn.memory.active) {
      load.stdin.write('\n'); // every connection sends its messages
      const active = await nextLine(`the echoes of ${scn.memory.active} messages on each connection`);
      await sleep(500);
      const afterActive = await server.rss();
      result.active_bytes_per_conn = (afterActive - before) / n;
      result.rss_after_active = afterActive;
      result.wire_ratio_in = active.wire_ratio_in;
    }
    load.stdin.end('\n');
    const { code, signal } = await exited;
    if (code !== 0) throw new Error(`wsload ${signal || 'exit ' + code}: ${reasonFrom(err, 'no error message')}`);
    if (server.exited !== null) throw new Error(`${server.died()} (during the run)`);
    return result;
  } finally {
    if (load && load.exitCode === null) load.kill('SIGKILL');
    await server.stop();
  }
}

// S6, S8, S8L: a self-signed certificate for 127.0.0.1, made once per run with the
// openssl CLI into a temporary directory (removed at exit).
let tlsDir = null;
function certificates() {
  if (tlsDir) return tlsDir;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-native-bench-tls-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
    { encoding: 'utf8' }
  );
  if (r.status !== 0) {
    throw new Error(`cannot make a certificate with openssl: ${r.error ? r.error.message : reasonFrom(r.stderr || '', 'failed')}`);
  }
  tlsDir = dir;
  return dir;
}

// S6: the client is what is measured. The server is ws on Node's https for
// every column, pinned where wsload would run; the client process (ws's or
// ws-native's WebSocket, clients/echo-client.js) gets the server's CPU.
async function measureClient(scn, impl, durations) {
  const dir = certificates();
  let started;
  try {
    started = await startServer({
      script: 'wss-echo.js',
      env: { BENCH_TLS_DIR: dir },
      pin: pinning && pinning.load,
      name: 'wss server (ws)'
    });
  } catch (e) {
    throw new Error(e.message); // not this implementation's fault: no `startup`
  }
  const { server, port } = started;
  try {
    const [warmup, duration] = scn.client.durations(durations);
    const cfg = {
      lib: impl === 'ws' ? 'ws' : 'ws-native',
      url: `wss://127.0.0.1:${port}/`,
      ca: path.join(dir, 'cert.pem'),
      conns: scn.client.conns,
      inflight: scn.client.inflight,
      size: scn.client.size,
      warmup,
      duration,
      server_pid: server.proc.pid // taskset execs node: the same pid
    };
    let result;
    try {
      result = await runJson('echo-client', process.execPath, [path.join(BENCH, 'clients', 'echo-client.js'), JSON.stringify(cfg)], {
        pin: pinning && pinning.server,
        env: IMPLS[impl].env,
        timeoutMs: (warmup + duration + 60) * 1000
      });
    } catch (e) {
      await sleep(300);
      if (server.exited !== null) throw new Error(`${server.died()} (during the run)`);
      throw e;
    }
    if (server.exited !== null) throw new Error(`${server.died()} (during the run)`);
    return result;
  } finally {
    await server.stop();
  }
}

// ---- reporting --------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(v, digits) {
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// Columns: every implementation, then ws-native's ratios against ws and
// against uWebSockets.js (thread / main when both modes run). A ratio is
// ws-native's figure over the peer's, so above 1 is better for "higher is
// better" rows and worse for "lower is better" ones.
function buildTable(opts, results, failures) {
  const natives = opts.impls.filter((i) => i.startsWith('native-'));
  const peers = ['ws', 'uws'].filter((p) => opts.impls.includes(p));
  const modes = natives.length > 1 ? ' (' + natives.map((i) => i.replace('native-', '')).join(' / ') + ')' : '';
  const ratioCols = natives.length === 0 ? [] : peers.map((p) => ({ peer: p, title: `vs ${IMPLS[p].short || IMPLS[p].label}${modes}` }));
  const header = ['Scenario', 'Metric', ...opts.impls.map((i) => IMPLS[i].label), ...ratioCols.map((r) => r.title)];
  const rows = [];
  for (const scn of SCENARIOS) {
    if (opts.only && !opts.only.includes(scn.id)) continue;
    scn.metrics.forEach((m, mi) => {
      const cell = (impl) => {
        const vals = results[scn.id][impl].map((r) => r[m.key]).filter((v) => typeof v === 'number');
        if (failures[scn.id][impl] || vals.length === 0) return null;
        return median(vals);
      };
      const med = Object.fromEntries(opts.impls.map((i) => [i, cell(i)]));
      const row = [mi === 0 ? `${scn.id} ${scn.title}` : '', m.name, ...opts.impls.map((i) => (med[i] === null ? 'n/a' : fmt(med[i], m.fmt)))];
      for (const { peer } of ratioCols) {
        row.push(natives.map((i) => (med[i] === null || !med[peer] ? 'n/a' : `${(med[i] / med[peer]).toFixed(2)}×`)).join(' / '));
      }
      rows.push(row);
    });
  }
  return { header, rows };
}

function textTable({ header, rows }) {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells) => cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable({ header, rows }) {
  const esc = (s) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, c) => (c < 2 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)
  ].join('\n');
}

function failureNotes(opts, failures) {
  const notes = [];
  if (opts.impls.includes('c')) {
    notes.push('C limit: bench/cserver.c, one thread, epoll, RFC 6455 framing and nothing else (no permessage-deflate, no UTF-8 validation): what the machine allows.');
  }
  for (const impl of opts.impls) {
    const seen = new Set();
    for (const scn of SCENARIOS) {
      const f = failures[scn.id] && failures[scn.id][impl];
      if (!f || seen.has(f)) continue;
      seen.add(f);
      const ids = SCENARIOS.filter((s) => failures[s.id] && failures[s.id][impl] === f).map((s) => s.id);
      notes.push(`${IMPLS[impl].label} n/a in ${ids.join(', ')}: ${f}`);
    }
  }
  return notes;
}

// A measurement's metrics, then its `extra` figures (context that is not a
// result: the load generator's own CPU use, the compression ratio on the
// wire), for the progress lines and results.md.
function runSummary(scn, r) {
  const num = (v, d) => (typeof v === 'number' ? fmt(v, d) : 'n/a');
  return [
    ...scn.metrics.map((m) => `${m.key}=${num(r[m.key], m.fmt)}`),
    ...(scn.extra || []).map((k) => `${k}=${num(r[k], 2)}`)
  ].join(' ');
}

function rawRuns(opts, results) {
  const lines = [];
  for (const scn of SCENARIOS) {
    if (opts.only && !opts.only.includes(scn.id)) continue;
    for (const m of scn.metrics) {
      for (const impl of opts.impls) {
        const vals = results[scn.id][impl].map((r) => r[m.key]).filter((v) => typeof v === 'number');
        if (vals.length) lines.push(`- ${scn.id} ${m.key}, ${IMPLS[impl].label}: ${vals.map((v) => fmt(v, m.fmt)).join('; ')}`);
      }
    }
    for (const k of scn.extra || []) {
      for (const impl of opts.impls) {
        const vals = results[scn.id][impl].map((r) => r[k]).filter((v) => typeof v === 'number');
        if (vals.length) lines.push(`- ${scn.id} ${k} (context), ${IMPLS[impl].label}: ${vals.map((v) => fmt(v, 2)).join('; ')}`);
      }
    }
  }
  return lines;
}

// ---- main --------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const durations = opts.quick ? QUICK : FULL;

  // make is incremental: this rebuilds wsload and cserver only when their
  // source changed.
  const mk = spawnSync('make', ['-s', '-C', BENCH], { stdio: ['ignore', 2, 2] });
  if (mk.status !== 0) {
    if (!fs.existsSync(WSLOAD)) {
      process.stderr.write(`run.js: cannot build ${WSLOAD} (make -C bench ${mk.error ? mk.error.message : 'failed'})\n`);
      process.exit(1);
    }
    process.stderr.write('run.js: make failed; using the existing build/wsload\n');
  }

  const unavailable = {}; // impl -> reason its server never started
  if (opts.impls.includes('c') && !fs.existsSync(CSERVER)) unavailable.c = `no ${path.relative(process.cwd(), CSERVER)} (make -C bench failed)`;
  if (opts.impls.includes('uws')) {
    const why = ensureUws();
    if (why) unavailable.uws = why;
  }

  const pin = detectPinning(opts.pin);
  pinning = pin.pin;
  const started = Date.now();
  process.stderr.write(
    `bench: ${opts.impls.join(', ')}; ${opts.reps} repetition(s)${opts.quick ? ', quick' : ''}; ${pin.note}\n`
  );

  const results = {};
  const failures = {};
  for (const scn of SCENARIOS) {
    if (opts.only && !opts.only.includes(scn.id)) continue;
    results[scn.id] = Object.fromEntries(opts.impls.map((i) => [i, []]));
    failures[scn.id] = {};
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const impl of opts.impls) {
        const na = notApplicable(scn, impl);
        if (na) {
          failures[scn.id][impl] = na;
          continue;
        }
        if (unavailable[impl]) {
          failures[scn.id][impl] = unavailable[impl];
          continue;
        }
        if (failures[scn.id][impl]) continue;
        const tag = `${scn.id} ${IMPLS[impl].label} #${rep}`;
        try {
          const r = scn.memory
            ? await measureMemory(scn, impl, durations)
            : scn.client
              ? await measureClient(scn, impl, durations)
              : await measureLoad(scn, impl, durations);
          results[scn.id][impl].push(r);
          process.stderr.write(`  ${tag}: ${runSummary(scn, r)}\n`);
        } catch (e) {
          failures[scn.id][impl] = e.message;
          if (e.startup) unavailable[impl] = e.message;
          process.stderr.write(`  ${tag}: FAILED: ${e.message}\n`);
        }
      }
    }
  }

  const table = buildTable(opts, results, failures);
  const notes = failureNotes(opts, failures);
  const elapsed = ((Date.now() - started) / 1000).toFixed(0);
  process.stdout.write('\n' + textTable(table) + '\n');
  if (notes.length) process.stdout.write('\n' + notes.join('\n') + '\n');
  process.stdout.write(`\n(${elapsed} s; ratios are ws-native's figure / the peer's; written to ${path.relative(process.cwd(), RESULTS)})\n`);

  const cpu = (os.cpus()[0] || {}).model || 'unknown CPU';
  const md = [
    '# ws-native benchmark results',
    '',
    `\`node bench/run.js${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}\` on ` +
      `${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${cpu.trim()}, ` +
      `${os.availableParallelism()} CPUs, Linux ${os.release()}; ${pin.note}; ` +
      `median of ${opts.reps} interleaved run(s). Ratios are ws-native's figure / the peer's (ws, uWebSockets.js ${UWS_VERSION} from npm \`uwebsockets\`). ` +
      'See README.md for the scenarios.',
    '',
    mdTable(table),
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    '',
    'Individual runs:',
    '',
    ...rawRuns(opts, results),
    ''
  ].join('\n');
  fs.writeFileSync(RESULTS, md);
  // The README's chart (bench/chart.js) from the table just measured, with
  // results.md's line on how it was measured.
  try {
    const caption = md.split('\n')[2].split('. Ratios are')[0];
    require('./chart').writeChart({ ...table, caption }, path.join(BENCH, 'chart.svg'));
  } catch (e) {
    process.stderr.write(`run.js: bench/chart.svg not written: ${e.message}\n`);
  }

  // Non-zero only when nothing at all could be measured.
  const any = Object.values(results).some((byImpl) => Object.values(byImpl).some((rs) => rs.length));
  process.exitCode = any ? 0 : 1;
}

main().catch((e) => {
  process.stderr.write(`run.js: ${e.stack || e}\n`);
  killAll();
  process.exit(1);
});
