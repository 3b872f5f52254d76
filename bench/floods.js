#!/usr/bin/env node
'use strict';

// Floods from a hostile peer (issue 12): how much memory a server spends on
// one connection that sends 1,000,000 cheap frames and never reads, and how
// it ends that connection. For each flood and implementation a fresh server
// child (test/fixtures/floods/server.js, the fixture of
// test/floods.test.js) is flooded by a raw TCP client; the table gives the
// server's RSS growth (peak, sampled every 50 ms and from the kernel's
// VmHWM, minus the RSS once the connection was open) and how the
// connection ended.
//
//   node bench/floods.js                      # ws, ws-native (thread), ws-native (main)
//   node bench/floods.js --impl ws,native-main
//   node bench/floods.js --count 200000       # frames per flood (default 1,000,000)
//
// Prints Markdown on stdout, progress on stderr.

const path = require('node:path');

const {
  COUNT,
  FLOODS,
  describeEnding,
  runFlood
} = require(path.join(__dirname, '..', 'test', 'fixtures', 'floods', 'flood.js'));

const IMPLS = {
  ws: { label: 'ws', env: { WSN_TEST_IMPL: 'ws' } },
  'native-thread': {
    label: 'ws-native (thread)',
    env: { WSN_TEST_IMPL: 'native', WS_NATIVE_LOOP: 'thread' }
  },
  'native-main': {
    label: 'ws-native (main)',
    env: { WSN_TEST_IMPL: 'native', WS_NATIVE_LOOP: 'main' }
  }
};

function usage(msg) {
  if (msg) console.error(msg);
  console.error(
    'usage: node bench/floods.js [--impl ws,native-thread,native-main|native] [--count N]'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { impls: Object.keys(IMPLS), count: COUNT };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (name === '--impl') {
      const list = (argv[++i] || '').split(',').filter(Boolean);
      o.impls = [];
      for (const n of list) {
        const names = n === 'native' ? ['native-thread', 'native-main'] : [n];
        for (const m of names) {
          if (!IMPLS[m]) usage(`unknown implementation ${m}`);
          if (!o.impls.includes(m)) o.impls.push(m);
        }
      }
      if (o.impls.length === 0) usage('--impl selects nothing');
    } else if (name === '--count') {
      o.count = Number(argv[++i]);
      if (!Number.isInteger(o.count) || o.count < 3) usage('--count must be an integer >= 3');
    } else {
      usage(`unknown option ${name}`);
    }
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const rows = [];

  for (const kind of Object.keys(FLOODS)) {
    const row = { kind, cells: [] };
    for (const name of o.impls) {
      const impl = IMPLS[name];
      const env = { ...process.env, ...impl.env };
      process.stderr.write(`${kind} / ${impl.label} ... `);
      try {
        const r = await runFlood(kind, { count: o.count, env, timeoutMs: 60000 });
        const mb = (r.growth / (1024 * 1024)).toFixed(1);
        process.stderr.write(`${mb} MB\n`);
        row.cells.push({ mb, ended: describeEnding(r) });
      } catch (err) {
        process.stderr.write(`failed\n${err.stack}\n`);
        row.cells.push({ mb: 'n/a', ended: `failed: ${err.message.split('\n')[0]}` });
      }
    }
    rows.push(row);
  }

  const labels = o.impls.map((n) => IMPLS[n].label);
  const n = o.count.toLocaleString('en-US');
  const out = [];
  out.push(`Floods of ${n} frames from a peer that never reads; one server child per cell.`);
  out.push('');
  out.push(`| RSS growth, MB | ${labels.join(' | ')} |`);
  out.push(`| --- | ${labels.map(() => '---:').join(' | ')} |`);
  for (const r of rows) {
    out.push(`| ${FLOODS[r.kind].replace('N', n)} | ${r.cells.map((c) => c.mb).join(' | ')} |`);
  }
  out.push('');
  out.push(`| How it ended | ${labels.join(' | ')} |`);
  out.push(`| --- | ${labels.map(() => '---').join(' | ')} |`);
  for (const r of rows) {
    out.push(`| ${FLOODS[r.kind].replace('N', n)} | ${r.cells.map((c) => c.ended).join(' | ')} |`);
  }
  console.log(out.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
