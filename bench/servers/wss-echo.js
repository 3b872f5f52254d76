'use strict';

// S6's server: ws's WebSocketServer on Node's https.createServer, the same
// for every column (S6 measures the client). Echoes every message with its
// binary flag, perMessageDeflate off.
//
// Protocol with bench/run.js as echo.js: {"port":N} on stdout once
// listening; exits on stdin end. $BENCH_TLS_DIR holds key.pem and cert.pem
// (run.js makes a self-signed pair with the openssl CLI).

const fs = require('fs');
const https = require('https');
const path = require('path');
const readline = require('readline');
const { WebSocketServer } = require('ws');

const dir = process.env.BENCH_TLS_DIR;
const server = https.createServer({
  key: fs.readFileSync(path.join(dir, 'key.pem')),
  cert: fs.readFileSync(path.join(dir, 'cert.pem'))
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});

server.on('error', (err) => {
  process.stderr.write(`server error: ${err.stack || err}\n`);
  process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

readline.createInterface({ input: process.stdin }).on('close', () => process.exit(0));
