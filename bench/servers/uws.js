'use strict';

// Echo server on uWebSockets.js, the third peer: the same behaviour and the
// same protocol with bench/run.js as echo.js ({"port":N} once listening,
// {"rss":bytes} per stdin line "rss", exit on stdin end), but uWS's own API,
// since uWS is not a ws drop-in.
//
// uWebSockets.js comes from npm `uwebsockets` 3.0.6, a third party's
// republished binary (the uWS author publishes only on GitHub). run.js
// installs it on demand into bench/.uws (git-ignored); it is never a
// dependency of the package. $BENCH_UWS_DIR names that folder.
//
// Where it differs from echo.js on ws, and why:
// - permessage-deflate ($BENCH_PMD, ws's perMessageDeflate as JSON) maps to
//   uWS's two settings per direction: serverNoContextTakeover -> the shared
//   compressor (uWS then answers server_no_context_takeover), otherwise
//   uWS.DEDICATED_COMPRESSOR (window bits 15, memLevel 8: zlib's defaults,
//   as ws uses); clientNoContextTakeover -> the shared decompressor (uWS
//   then answers client_no_context_takeover), otherwise
//   uWS.DEDICATED_DECOMPRESSOR (a 32 KiB window). ws's other options
//   (threshold, level, memLevel, max window bits) have no uWS counterpart
//   and keep uWS's values (ws's 1 KiB threshold does not matter here: the
//   compressed scenarios send 1 KiB messages); a BENCH_PMD that sets any of
//   them is refused, so such a cell reads n/a rather than measuring
//   something else.
// - uWS's limits are opened to ws's behaviour: messages up to 100 MiB (ws's
//   maxPayload; uWS's default is 16 KiB), no idle timeout and no automatic
//   pings (ws has neither), and a send buffer large enough that uWS never
//   drops an echo (ws buffers without limit; uWS drops past maxBackpressure).
// - $BENCH_TLS_DIR (S8, wss://): uWS.SSLApp with that directory's key.pem
//   and cert.pem instead of App, uWS's own TLS (echo.js: Node's https).
// - $BENCH_BROADCAST=N (S9): as servers/broadcast.js, every connection
//   subscribes to one topic and, once N are open, app.publish() sends one
//   $BENCH_SIZE-byte text message of 'x' to all per event-loop turn
//   (setImmediate). Its maxBackpressure is then ws-native's default, 1 MiB
//   (past it uWS skips the subscriber, as ws-native does).

const path = require('path');
const readline = require('readline');

const dir = process.env.BENCH_UWS_DIR || path.join(__dirname, '..', '.uws');
const uWS = require(require.resolve('uwebsockets', { paths: [path.join(dir, 'node_modules')] }));

function compression() {
  if (!process.env.BENCH_PMD) return uWS.DISABLED;
  const pmd = JSON.parse(process.env.BENCH_PMD);
  const known = ['serverNoContextTakeover', 'clientNoContextTakeover'];
  const other = Object.keys(pmd).filter((k) => !known.includes(k));
  if (other.length) {
    throw new Error(`uWebSockets.js has no counterpart of perMessageDeflate.${other.join(', ')}`);
  }
  return (
    (pmd.serverNoContextTakeover ? uWS.SHARED_COMPRESSOR : uWS.DEDICATED_COMPRESSOR) |
    (pmd.clientNoContextTakeover ? uWS.SHARED_DECOMPRESSOR : uWS.DEDICATED_DECOMPRESSOR)
  );
}

let compress;
try {
  compress = compression();
} catch (e) {
  process.stderr.write(`Error: ${e.message}\n`);
  process.exit(1);
}

const port = Number(process.argv[2] || process.env.PORT || 0);
const tlsDir = process.env.BENCH_TLS_DIR;
const broadcast = Number(process.env.BENCH_BROADCAST || 0);
const bmessage = 'x'.repeat(Number(process.env.BENCH_SIZE || 64));
let bopen = 0;
let brunning = false;
const app = tlsDir
  ? uWS.SSLApp({ key_file_name: path.join(tlsDir, 'key.pem'), cert_file_name: path.join(tlsDir, 'cert.pem') })
  : uWS.App();
function bturn() {
  if (bopen < broadcast) {
    brunning = false;
    return;
  }
  app.publish('all', bmessage, false);
  setImmediate(bturn);
}
app
  .ws('/*', {
    compression: compress,
    maxPayloadLength: 100 * 1024 * 1024,
    maxBackpressure: broadcast ? 1024 * 1024 : 1024 * 1024 * 1024,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    open: (ws) => {
      if (!broadcast) return;
      ws.subscribe('all');
      if (++bopen === broadcast && !brunning) {
        brunning = true;
        setImmediate(bturn);
      }
    },
    close: () => {
      if (broadcast) bopen--;
    },
    message: (ws, message, isBinary) => {
      // `message` is valid only during this call; send copies it.
      ws.send(message, isBinary, compress !== uWS.DISABLED);
    }
  })
  .listen('127.0.0.1', port, (token) => {
    if (!token) {
      process.stderr.write(`server error: uWebSockets.js cannot listen on 127.0.0.1:${port}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ port: uWS.us_socket_local_port(token) }) + '\n');
  });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'rss') return;
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage.rss() }) + '\n');
});
rl.on('close', () => process.exit(0));
