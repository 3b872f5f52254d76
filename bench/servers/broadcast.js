'use strict';

// S9's server: every connection joins one topic; once $BENCH_BROADCAST of them
// are open, one $BENCH_SIZE-byte text message of 'x' (default 64) goes to
// all of them per event-loop turn (setImmediate), until stdin ends. The
// same protocol with bench/run.js as echo.js ({"port":N}, {"rss":bytes},
// exit on stdin end). wsload -m broadcast counts what arrives.
//
// $BENCH_LIB ('ws' or 'ws-native') picks the module and $BENCH_HOW how a
// turn sends: 'clients' loops over wss.clients calling send() (what ws
// programs do, ws has nothing else), 'publish' is ws-native's
// wss.publish() (one command to the I/O loop, the frame built once).
// $BENCH_BROADCAST: the connections to wait for (default 1000).

const path = require('path');
const readline = require('readline');

const lib = process.env.BENCH_LIB === 'ws' ? require('ws') : require(path.join(__dirname, '..', '..'));
const how = process.env.BENCH_HOW || 'clients';
const want = Number(process.env.BENCH_BROADCAST || 1000);
const message = 'x'.repeat(Number(process.env.BENCH_SIZE || 64));

const wss = new lib.WebSocketServer({ port: 0, host: '127.0.0.1' });
let open = 0;
let running = false;

function turn() {
  if (open < want) {
    running = false;
    return;
  }
  if (how === 'publish') {
    wss.publish('all', message);
  } else {
    for (const ws of wss.clients) ws.send(message);
  }
  setImmediate(turn);
}

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (how === 'publish') ws.subscribe('all');
  open++;
  ws.on('close', () => open--);
  if (open === want && !running) {
    running = true;
    setImmediate(turn);
  }
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
  if (typeof global.gc === 'function') global.gc();
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss() }) + '\n');
});
rl.on('close', () => process.exit(0));
