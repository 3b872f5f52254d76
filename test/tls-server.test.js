'use strict';

// A wss:// server: `new WebSocketServer({ port, tls: { key, cert } })` runs
// TLS in C on the I/O thread (ws-native only). The real ws client talks to
// it. Against ws itself (WSN_TEST_IMPL=ws) the same tests run on ws's way to
// a wss server, `{ server: https.createServer({ key, cert }) }`, with the
// https server's 'tlsClientError' forwarded to the WebSocketServer, so that
// every behaviour checked here is ws's too; the `tls` option's own checks
// (bad key/cert) are ws-native only and skip there.

const assert = require('node:assert/strict');
const https = require('https');
const net = require('net');
const tls = require('tls');
const crypto = require('crypto');

const { WebSocketServer, PeerWebSocket, isNative } = require('./helpers/impl');
const { getCert } = require('./helpers/attach');

let cert;
let key;

before(async function () {
  this.timeout(30000);
  ({ key, cert } = await getCert());
});

/**
 * A wss server on 127.0.0.1, echoing every message as it came. Resolves
 * with { wss, port, close }. Under ws: an https server carries it.
 */
async function startServer(options = {}) {
  let wss;
  let httpsServer = null;
  if (isNative) {
    wss = new WebSocketServer({
      port: 0,
      host: '127.0.0.1',
      tls: { key, cert },
      ...options
    });
    await new Promise((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
  } else {
    httpsServer = https.createServer({ key, cert });
    httpsServer.on('tlsClientError', (err, socket) => {
      wss.emit('tlsClientError', err, {
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        remoteFamily: socket.remoteFamily
      });
    });
    wss = new WebSocketServer({ server: httpsServer, ...options });
    await new Promise((resolve) => httpsServer.listen(0, '127.0.0.1', resolve));
  }
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  const port = (httpsServer || wss).address().port;
  return {
    wss,
    port,
    close() {
      for (const ws of wss.clients) ws.terminate();
      return new Promise((resolve) => {
        wss.close(() => {
          if (!httpsServer) return resolve();
          httpsServer.closeAllConnections();
          httpsServer.close(() => resolve());
        });
      });
    }
  };
}

function connect(port, options = {}) {
  return new PeerWebSocket(`wss://127.0.0.1:${port}`, { ca: cert, ...options });
}

function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
    ws.once('error', reject);
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** A raw socket's whole life: what it received until it closed. */
function collect(socket) {
  return new Promise((resolve) => {
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('WebSocketServer { port, tls } (TLS in C)', function () {
  this.timeout(20000);
  let server;

  afterEach(async () => {
    if (server) await server.close();
    server = null;
  });

  it('echoes text and binary messages, up to 1 MiB', async () => {
    server = await startServer();
    const ws = connect(server.port);
    await opened(ws);
    const big = crypto.randomBytes(1024 * 1024);
    const cases = [
      ['hello', false],
      [Buffer.from([0, 1, 2, 255]), true],
      ['é'.repeat(70000), false],
      [big, true]
    ];
    for (const [payload, binary] of cases) {
      ws.send(payload, { binary });
      const { data, isBinary } = await nextMessage(ws);
      assert.equal(isBinary, binary);
      assert.ok(data.equals(Buffer.from(payload)));
    }
    ws.close();
    await closed(ws);
  });

  it('carries close codes from the client to the server', async () => {
    server = await startServer();
    const serverClosed = new Promise((resolve) => {
      server.wss.once('connection', (ws) => {
        ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      });
    });
    const ws = connect(server.port);
    await opened(ws);
    const clientClosed = closed(ws);
    ws.close(4000, 'client bye');
    assert.deepEqual(await serverClosed, { code: 4000, reason: 'client bye' });
    assert.deepEqual(await clientClosed, { code: 4000, reason: 'client bye' });
  });

  it('carries close codes from the server to the client', async () => {
    server = await startServer();
    server.wss.once('connection', (ws) => ws.close(4001, 'server bye'));
    const ws = connect(server.port);
    assert.deepEqual(await closed(ws), { code: 4001, reason: 'server bye' });
  });

  it('negotiates permessage-deflate', async () => {
    server = await startServer({ perMessageDeflate: { threshold: 0 } });
    const ws = connect(server.port, { perMessageDeflate: true });
    await opened(ws);
    assert.match(ws.extensions, /permessage-deflate/);
    const text = 'compressible '.repeat(10000);
    ws.send(text);
    const { data } = await nextMessage(ws);
    assert.equal(data.toString(), text);
    ws.close(1000);
    assert.equal((await closed(ws)).code, 1000);
  });

  it('tells verifyClient the request is secure', async () => {
    let secure;
    server = await startServer({
      verifyClient(info) {
        secure = info.secure;
        return true;
      }
    });
    const ws = connect(server.port);
    await opened(ws);
    assert.equal(secure, true);
    ws.close();
    await closed(ws);
  });

  it('serves 100 connections at once', async () => {
    server = await startServer();
    const clients = [];
    for (let i = 0; i < 100; i++) clients.push(connect(server.port));
    await Promise.all(clients.map(opened));
    const replies = await Promise.all(clients.map((ws, i) => {
      const p = nextMessage(ws);
      ws.send(`client ${i}`);
      return p;
    }));
    replies.forEach(({ data }, i) => assert.equal(data.toString(), `client ${i}`));
    assert.equal(server.wss.clients.size, 100);
    await Promise.all(clients.map((ws) => {
      const p = closed(ws);
      ws.close();
      return p;
    }));
  });

  it('closes plain HTTP sent to the TLS port, with tlsClientError, and keeps serving', async () => {
    server = await startServer();
    let connections = 0;
    server.wss.on('connection', () => connections++);
    const errors = [];
    server.wss.on('tlsClientError', (err, info) => errors.push({ err, info }));
    const socket = net.connect(server.port, '127.0.0.1');
    let localPort;
    socket.once('connect', () => { localPort = socket.localPort; });
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n' +
      'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'Sec-WebSocket-Version: 13\r\n\r\n');
    const received = await collect(socket);
    // Nothing readable as HTTP: at most a TLS alert record (type 21).
    assert.ok(received.length === 0 || received[0] === 21);
    await waitUntil(() => errors.length === 1);
    assert.equal(errors[0].err.code, 'ERR_SSL_HTTP_REQUEST');
    assert.match(errors[0].err.message, /http request/);
    assert.equal(errors[0].info.remoteAddress, '127.0.0.1');
    // Node's socket has no port any more by then; ours gives it.
    if (isNative) assert.equal(errors[0].info.remotePort, localPort);
    assert.equal(connections, 0);

    const ws = connect(server.port);
    await opened(ws);
    ws.send('still here');
    assert.equal((await nextMessage(ws)).data.toString(), 'still here');
    ws.close();
    await closed(ws);
    assert.equal(connections, 1);
  });

  it('closes a garbage ClientHello, with tlsClientError, and keeps serving', async () => {
    server = await startServer();
    let connections = 0;
    server.wss.on('connection', () => connections++);
    const errors = [];
    server.wss.on('tlsClientError', (err) => errors.push(err));
    // A handshake record header announcing a ClientHello, then nonsense.
    const socket = net.connect(server.port, '127.0.0.1');
    socket.write(Buffer.concat([
      Buffer.from([22, 3, 1, 0, 64, 1, 0, 0, 60]),
      Buffer.alloc(60, 0xab)
    ]));
    await collect(socket);
    await waitUntil(() => errors.length === 1);
    assert.match(errors[0].code, /^ERR_SSL_/);
    assert.equal(connections, 0);

    const ws = connect(server.port);
    await opened(ws);
    ws.close();
    await closed(ws);
    assert.equal(connections, 1);
  });

  it('answers garbage inside a good TLS session like ws, and keeps serving', async () => {
    server = await startServer();
    let connections = 0;
    server.wss.on('connection', () => connections++);
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: cert });
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const received = collect(socket);
    socket.write('\x00\x01 this is not HTTP\r\n\r\n');
    const text = (await received).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal(connections, 0);

    const ws = connect(server.port);
    await opened(ws);
    ws.close();
    await closed(ws);
  });

  it('closes a client that stops in the middle of the handshake', async () => {
    server = await startServer();
    let connections = 0;
    server.wss.on('connection', () => connections++);
    const socket = net.connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.end(Buffer.from([22, 3, 1, 0, 200, 1])); // a cut ClientHello
    await collect(socket);
    const ws = connect(server.port);
    await opened(ws);
    ws.close();
    await closed(ws);
    assert.equal(connections, 1);
  });
});

describe('WebSocketServer { tls } options', function () {
  before(function () {
    if (!isNative) this.skip(); // the `tls` option is ws-native's own
  });

  /** Node's error for the same options, to compare with. */
  function nodeError(options) {
    try {
      tls.createSecureContext(options);
    } catch (err) {
      return err;
    }
    return null;
  }

  function constructError(options) {
    try {
      const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', tls: options });
      wss.close();
    } catch (err) {
      return err;
    }
    return null;
  }

  for (const [name, options] of [
    ['a garbage key', () => ({ key: 'not a key', cert })],
    ['a garbage certificate', () => ({ key, cert: 'not a certificate' })],
    ['a key of another type', () => ({ key: 42, cert })],
    ['a key that is not the certificate\'s', () => ({
      key: otherKey(),
      cert
    })],
    ['a bad pfx', () => ({ pfx: Buffer.from('nonsense') })]
  ]) {
    it(`throws Node's error for ${name}`, () => {
      const expected = nodeError(options());
      assert.ok(expected, 'Node throws for these options');
      const actual = constructError(options());
      assert.ok(actual, 'the constructor throws');
      assert.equal(actual.constructor, expected.constructor);
      assert.equal(actual.message, expected.message);
      assert.equal(actual.code, expected.code);
    });
  }

  it('closes a peer that never finishes the TLS handshake at handshakeTimeout', async function () {
    this.timeout(20000);
    const wss = new WebSocketServer({
      port: 0, host: '127.0.0.1', tls: { key, cert }, handshakeTimeout: 200
    });
    try {
      await new Promise((resolve) => wss.once('listening', resolve));
      let connections = 0;
      wss.on('connection', () => connections++);
      const socket = net.connect(wss.address().port, '127.0.0.1');
      socket.write(Buffer.from([22, 3, 1])); // a ClientHello that never comes
      const received = await collect(socket);
      // Nothing in clear: the 408 never leaves before a handshake.
      assert.equal(received.length, 0);
      assert.equal(connections, 0);
    } finally {
      await new Promise((resolve) => wss.close(resolve));
    }
  });

  it('throws for a tls option it does not honour', () => {
    assert.throws(
      () => new WebSocketServer({ port: 0, tls: { key, cert, minVersion: 'TLSv1.3' } }),
      /tls option "minVersion" is not supported/
    );
  });

  it('throws for tls without port', () => {
    assert.throws(
      () => new WebSocketServer({ noServer: true, tls: { key, cert } }),
      /requires the "port" option/
    );
  });

  it('accepts a PKCS#12 bundle', async function () {
    this.timeout(20000);
    const pfx = await makePfx();
    const wss = new WebSocketServer({
      port: 0, host: '127.0.0.1', tls: { pfx, passphrase: 'secret' }
    });
    try {
      await new Promise((resolve) => wss.once('listening', resolve));
      wss.on('connection', (ws) => ws.send('from pfx'));
      const ws = connect(wss.address().port);
      assert.equal((await nextMessage(ws)).data.toString(), 'from pfx');
      ws.close();
      await closed(ws);
    } finally {
      await new Promise((resolve) => wss.close(resolve));
    }
  });
});

/** The test certificate and key as a PKCS#12 bundle (openssl CLI). */
function makePfx() {
  const { execFile } = require('child_process');
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-tls-server-'));
  fs.writeFileSync(path.join(dir, 'key.pem'), key);
  fs.writeFileSync(path.join(dir, 'cert.pem'), cert);
  return new Promise((resolve, reject) => {
    execFile('openssl', [
      'pkcs12', '-export', '-inkey', path.join(dir, 'key.pem'),
      '-in', path.join(dir, 'cert.pem'), '-out', path.join(dir, 'b.p12'),
      '-passout', 'pass:secret'
    ], (err) => {
      try {
        if (err) throw err;
        resolve(fs.readFileSync(path.join(dir, 'b.p12')));
      } catch (e) {
        reject(e);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

let otherKeyPem;
/** An RSA key that is not the certificate's. */
function otherKey() {
  if (!otherKeyPem) {
    otherKeyPem = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' });
  }
  return otherKeyPem;
}

/** Resolves once cond() holds, checking every few ms. */
function waitUntil(cond) {
  return new Promise((resolve) => {
    const check = () => (cond() ? resolve() : setTimeout(check, 5));
    check();
  });
}
