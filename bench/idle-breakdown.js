'use strict';

// Where an idle server-side connection's bytes go (issue 14, S4):
//   node --expose-gc bench/idle-breakdown.js [ws|native] [N]
// Starts the S4 echo server in this process, opens N idle connections from
// bench/build/wsload (another process), and prints per-connection deltas
// after gc(): RSS, V8 heap used / committed (and new space, whose growth
// during the burst is a large part of S4's figure), external memory, and
// RSS by mapping kind from /proc/self/smaps (V8 pages, malloc arenas, the
// node binary's code pages touched for the first time). WS_NATIVE_LOOP
// chooses ws-native's loop as usual. Linux only (smaps).

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const v8 = require('v8');
const { spawn } = require('child_process');

const which = process.argv[2] || 'native';
const n = Number(process.argv[3] || 10000);
const lib = which === 'ws' ? require('ws') : require('..');
if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');

function memory() {
  global.gc();
  global.gc();
  const m = process.memoryUsage();
  const h = v8.getHeapStatistics();
  const spaces = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.space_size;
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapCommitted: h.total_heap_size,
    newSpace: spaces.new_space,
    oldSpace: spaces.old_space,
    external: m.external
  };
}

// RSS by kind of mapping: V8 allocates its heap in 256 KiB pages, glibc's
// per-thread arenas are 64 MiB-aligned anonymous mappings, [heap] is the
// main thread's brk heap.
function smaps() {
  const out = new Map();
  let cur = null;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const size = parseInt(m[2], 16) - parseInt(m[1], 16);
      let kind = m[3] || 'anonymous';
      if (!m[3] && size === 256 * 1024) kind = 'V8 heap pages';
      else if (!m[3] && parseInt(m[1], 16) % (64 * 1024 * 1024) === 0) kind = 'malloc thread arenas';
      cur = { kind, rss: 0 };
      out.set(m[1], cur);
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r && cur) cur.rss = Number(r[1]) * 1024;
  }
  const byKind = {};
  for (const { kind, rss } of out.values()) byKind[kind] = (byKind[kind] || 0) + rss;
  return byKind;
}

const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
wss.on('connection', (ws) => {
  // As bench/servers/echo.js.
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', async () => {
  await new Promise((r) => setTimeout(r, 200));
  const before = memory();
  const mapsBefore = smaps();
  const load = spawn(path.join(__dirname, 'build', 'wsload'),
    ['-m', 'idle', '-c', String(n), '-p', String(wss.address().port)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => readline.createInterface({ input: load.stdout }).once('line', resolve));
  await new Promise((r) => setTimeout(r, 500)); // as bench/run.js
  const after = memory();
  const mapsAfter = smaps();
  console.log(`${which}: ${wss.clients.size} idle connections; bytes per connection:`);
  for (const k of Object.keys(before)) {
    console.log(`  ${k.padEnd(22)} ${Math.round((after[k] - before[k]) / n)}`);
  }
  console.log('  RSS by mapping kind:');
  const kinds = new Set([...Object.keys(mapsBefore), ...Object.keys(mapsAfter)]);
  for (const k of [...kinds].sort()) {
    const d = Math.round(((mapsAfter[k] || 0) - (mapsBefore[k] || 0)) / n);
    if (d !== 0) console.log(`    ${k.padEnd(20)} ${d}`);
  }
  load.stdin.end('\n');
  load.on('close', () => wss.close(() => process.exit(0)));
});
