'use strict';

// Helpers for the tests of a WebSocketServer attached to Node's own servers
// (`{ server }`, `{ noServer }` + `handleUpgrade`): a self-signed certificate
// made at run time with the openssl CLI, http/https servers on 127.0.0.1 that
// remember their sockets, raw net/tls sockets, and the client classes to run
// each test with.

const { execFile } = require('child_process');
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');
const tls = require('tls');

const { WebSocket, PeerWebSocket, isNative } = require('./impl');
const { parseHead } = require('./raw');

const TRANSPORTS = ['http', 'https'];

let certPromise = null;

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made once per run
 * with the openssl CLI in a temporary directory that is removed as soon as
 * the PEM files have been read. Resolves with `{ key, cert }` (strings).
 */
function getCert() {
  if (!certPromise) {
    certPromise = new Promise((resolve, reject) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-attach-'));
      const keyFile = path.join(dir, 'key.pem');
      const certFile = path.join(dir, 'cert.pem');
      execFile(
        'openssl',
        [
          'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
          '-keyout', keyFile, '-out', certFile, '-days', '1',
          '-subj', '/CN=localhost',
          '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'
        ],
        (err, stdout, stderr) => {
          try {
            if (err) {
              throw new Error(
                `the https tests need the openssl CLI to make a self-signed ` +
                  `certificate: ${err.message} ${stderr}`
              );
            }
            resolve({
              key: fs.readFileSync(keyFile, 'utf8'),
              cert: fs.readFileSync(certFile, 'utf8')
            });
          } catch (e) {
            reject(e);
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      );
    });
  }
  return certPromise;
}

/**
 * Whether the client under test can open wss:// connections: ws-native's
 * client throws synchronously ("... not supported yet") until it can. Asked
 * once, when this module loads.
 */
function implSupportsWss() {
  let ws;
  try {
    ws = new WebSocket('wss://127.0.0.1:1');
  } catch (err) {
    if (/not supported/i.test(err.message)) return false;
    // Any other error: let the wss:// tests run and show it.
    return true;
  }
  // It started connecting to a port nothing listens on: stop it at once.
  ws.on('error', () => {});
  ws.terminate();
  return true;
}

const wssSupported = !isNative || implSupportsWss();

/**
 * The clients to run a test with over `transport`, as `[name, Class]` pairs:
 * the real ws client always, the client under test over http and over https
 * only when it supports wss://.
 */
function clientsFor(transport) {
  const list = [['ws client', PeerWebSocket]];
  if (transport === 'http' || wssSupported) {
    list.push(['client under test', WebSocket]);
  }
  return list;
}

/**
 * A Node http or https server (not listening yet) that records every TCP
 * socket it accepts in `server.sockets`, so a test can destroy them all,
 * upgraded ones included, on cleanup. `tlsOptions` is `{ key, cert }` for
 * https.
 */
function createServer(transport, tlsOptions, handler) {
  const server =
    transport === 'https'
      ? https.createServer({ ...tlsOptions }, handler)
      : http.createServer(handler);
  server.sockets = new Set();
  server.on('connection', (socket) => {
    server.sockets.add(socket);
    socket.on('close', () => server.sockets.delete(socket));
  });
  return server;
}

/** Listen on 127.0.0.1, an ephemeral port; resolves with the port. */
function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.removeListener('error', reject);
      resolve(server.address().port);
    });
  });
}

/** Destroy every socket the server accepted and close it. */
function closeServer(server) {
  for (const socket of server.sockets) socket.destroy();
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** `ws://` or `wss://` URL of a port on 127.0.0.1. */
function wsUrl(transport, port, pathname = '/') {
  return `${transport === 'https' ? 'wss' : 'ws'}://127.0.0.1:${port}${pathname}`;
}

/** `http://` or `https://` URL of a port on 127.0.0.1. */
function httpUrl(transport, port, pathname = '/') {
  return `${transport}://127.0.0.1:${port}${pathname}`;
}

/**
 * A raw client socket (net, or tls trusting `cert`), resolved once connected
 * (for tls: once the TLS handshake is done). Errors after that are ignored:
 * the tests look at what arrives and at 'close'.
 */
function rawConnect(transport, port, cert) {
  return new Promise((resolve, reject) => {
    const socket =
      transport === 'https'
        ? tls.connect({ host: '127.0.0.1', port, ca: cert })
        : net.connect(port, '127.0.0.1');
    socket.once(transport === 'https' ? 'secureConnect' : 'connect', () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Collect everything a socket receives until the peer closes it. Resolves
 * with the bytes as a latin1 string (`timeoutMs` guards against a peer that
 * never closes: the socket is then destroyed and `[timeout]` appended).
 */
function readAll(socket, timeoutMs = 3000) {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      finish('[timeout]');
    }, timeoutMs);
    let done = false;
    function finish(suffix = '') {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(buf.toString('latin1') + suffix);
    }
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
  });
}

/**
 * Send `data` on a fresh raw socket and return the whole answer, read until
 * the server closes the connection: `{ raw, statusLine, status, headers,
 * body }`.
 */
async function rawExchange(transport, port, cert, data) {
  const socket = await rawConnect(transport, port, cert);
  const received = readAll(socket);
  socket.write(data);
  const raw = await received;
  socket.destroy();
  const i = raw.indexOf('\r\n\r\n');
  if (i === -1) return { raw, statusLine: null, status: 0, headers: {}, body: '' };
  const { first, headers } = parseHead(raw.slice(0, i));
  return {
    raw,
    statusLine: first,
    status: Number(first.split(' ')[1]),
    headers,
    body: raw.slice(i + 4)
  };
}

/**
 * Resolve with the body of an http(s) response as a string, with
 * `res.statusCode` and `req.reusedSocket`.
 */
function request(transport, url, options = {}, body) {
  const mod = transport === 'https' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          reusedSocket: req.reusedSocket
        })
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

module.exports = {
  TRANSPORTS,
  clientsFor,
  closeServer,
  createServer,
  getCert,
  httpUrl,
  listen,
  rawConnect,
  rawExchange,
  readAll,
  request,
  wsUrl,
  wssSupported
};
