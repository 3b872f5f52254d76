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
// $BENCH_TLS_DIR (S8, wss://): a directory with key.pem and cert.pem (run.js
// makes a self-signed pair); the server is then Node's https.createServer
// with `new WebSocketServer({ server })` on it, the way a wss:// server is
// written with ws; with $BENCH_TLS_IN_C=1 as well (run.js sets it for the
// ws-native columns), `new WebSocketServer({ port, tls: { key, cert } })`,
// ws-native's own wss:// server with TLS in C on its I/O loop.

const fs = require('fs');
const path = require('path');
const readline = require('readline');

module.exports = function run(lib) {
  const WebSocketServer = lib.WebSocketServer || lib.Server;
  const port = Number(process.argv[2] || process.env.PORT || 0);
  const perMessageDeflate = process.env.BENCH_PMD ? JSON.parse(process.env.BENCH_PMD) : false;
  const tlsDir = process.env.BENCH_TLS_DIR;
  let server = null;
  const tlsInC = tlsDir && process.env.BENCH_TLS_IN_C === '1';
  if (tlsDir && !tlsInC) {
    server = require('https').createServer({
      key: fs.readFileSync(path.join(tlsDir, 'key.pem')),
      cert: fs.readFileSync(path.join(tlsDir, 'cert.pem'))
    });
    server.on('error', (err) => {
      process.stderr.write(`server error: ${err.stack || err}\n`);
      process.exit(1);
    });
  }
  const tls = tlsInC
    ? {
        key: fs.readFileSync(path.join(tlsDir, 'key.pem')),
        cert: fs.readFileSync(path.join(tlsDir, 'cert.pem'))
      }
    : undefined;
  const wss = server
    ? new WebSocketServer({ server, perMessageDeflate })
    : new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate, tls });

  wss.on('connection', (ws) => {
    // A peer resetting its connection must not take the server down.
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
  });

  const listening = () => {
    process.stdout.write(JSON.stringify({ port: (server || wss).address().port }) + '\n');
  };
  if (server) server.listen(port, '127.0.0.1', listening);
  else wss.on('listening', listening);

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
