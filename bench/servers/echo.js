'use strict';

// The echo server shared by every implementation under benchmark: each
// servers/<impl>.js only chooses the module. Keeping one body guarantees the
// implementations run exactly the same JavaScript, so the numbers compare the
// libraries and nothing else.
//
// Protocol with bench/run.js (stdout is JSON lines, one per event):
//   - once listening:           {"port":N}
//   - stdin line "rss":         {"rss":bytes}  (after gc() under --expose-gc)
//   - stdin end:                exit 0
// Port: argv[2] or $PORT, default 0 (any free port).
// $BENCH_PMD: the perMessageDeflate option as JSON (e.g. {} or
// {"serverNoContextTakeover":true,"clientNoContextTakeover":true});
// default false, as ws's default.

const readline = require('readline');

module.exports = function run(lib) {
  const WebSocketServer = lib.WebSocketServer || lib.Server;
  const port = Number(process.argv[2] || process.env.PORT || 0);
  const perMessageDeflate = process.env.BENCH_PMD ? JSON.parse(process.env.BENCH_PMD) : false;
  const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate });

  wss.on('connection', (ws) => {
    // A peer resetting its connection must not take the server down.
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
  });

  wss.on('listening', () => {
    process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n');
  });

  wss.on('error', (err) => {
    process.stderr.write(`server error: ${err.stack || err}\n`);
    process.exit(1);
  });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() !== 'rss') return;
    if (typeof global.gc === 'function') {
      // Twice: the first pass can leave work (weak callbacks, finalizers)
      // that only the second collects.
      global.gc();
      global.gc();
    }
    process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss() }) + '\n');
  });
  rl.on('close', () => process.exit(0));
};
