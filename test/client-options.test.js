'use strict';

// The client's connection options, as ws 8.23.1 has them: wss:// and its TLS
// options, redirects, unexpected responses with a readable body, the
// handshake timeout, ws+unix://, IPv6 literals, Node's connection options
// (agent, createConnection, localAddress, family, lookup, finishRequest),
// the request headers (auth, headers, origin, protocolVersion) and the
// per-connection options (maxPayload, skipUTF8Validation, autoPong,
// allowSynchronousEvents, perMessageDeflate).
//
// ws-native makes a handshake in one of two ways: in C (plain ws:// with no
// Node-only option), or through Node's http(s).request when an option needs
// Node (then the upgraded socket moves to the I/O loop). Tests that make
// sense on both run twice: with no extra option ("C client") and with
// `family: 4` ("Node request"), which only Node's request honours. Against
// ws (WSN_TEST_IMPL=ws) both runs take ws's one path. Servers are the real
// ws, behind Node's http/https servers on 127.0.0.1.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');

const { WebSocket, PeerWebSocketServer, isNative } = require('./helpers/impl');
const { next } = require('./helpers/interop');

const noop = () => {};

const PATHS = [
  ['C client', {}],
  ['Node request', { family: 4 }]
];

// ---- helpers -------------------------------------------------------------

/**
 * Self-signed certificates made at run time with the openssl CLI in a
 * temporary directory removed at once: the server's (CN=localhost, for
 * 127.0.0.1 and localhost) and a client's (CN=wsn-client), whose key is
 * also kept encrypted with a passphrase.
 */
function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-client-options-'));
  const file = (name) => path.join(dir, name);
  try {
    const req = (key, cert, subj, ext) => {
      const args = [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', file(key), '-out', file(cert), '-days', '1', '-subj', subj
      ];
      if (ext) args.push('-addext', ext);
      execFileSync('openssl', args, { stdio: 'pipe' });
    };
    req('server.key', 'server.crt', '/CN=localhost',
      'subjectAltName=IP:127.0.0.1,DNS:localhost');
    req('client.key', 'client.crt', '/CN=wsn-client');
    execFileSync('openssl', [
      'pkey', '-in', file('client.key'), '-aes256',
      '-passout', 'pass:wsn-secret', '-out', file('client-enc.key')
    ], { stdio: 'pipe' });
    const read = (name) => fs.readFileSync(file(name), 'utf8');
    return {
      key: read('server.key'),
      cert: read('server.crt'),
      clientKey: read('client.key'),
      clientCert: read('client.crt'),
      clientKeyEncrypted: read('client-enc.key')
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Everything one test opens, closed by cleanup(): clients are terminated
 * (their close awaited), then servers and their sockets go.
 */
class Env {
  constructor() {
    this.clients = new Set();
    this.fns = [];
  }

  client(address, protocols, options) {
    const ws = new WebSocket(address, protocols, options);
    this.clients.add(ws);
    return ws;
  }

  defer(fn) {
    this.fns.push(fn);
  }

  /**
   * A Node http (or https, with `tlsOptions`) server listening on
   * 127.0.0.1 (or `where`: { host } or { path }), whose sockets are all
   * destroyed on cleanup.
   */
  async listen(tlsOptions, where = { host: '127.0.0.1' }) {
    const server = tlsOptions ? https.createServer(tlsOptions) : http.createServer();
    const sockets = new Set();
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    this.defer(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      if (where.path) server.listen(where.path, resolve);
      else server.listen(0, where.host, resolve);
    });
    return server;
  }

  /**
   * A site: an http(s) server whose upgrade requests are logged, then
   * answered by `route(req)` when it returns a raw HTTP response, or else
   * handed to a real ws server that echoes every message.
   */
  async site({ tlsOptions, where, route, wsOptions } = {}) {
    const server = await this.listen(tlsOptions, where);
    const wss = new PeerWebSocketServer({ noServer: true, ...wsOptions });
    const log = [];
    server.on('upgrade', (req, socket, head) => {
      log.push({
        url: req.url,
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress
      });
      const answer = route && route(req);
      if (answer) {
        socket.on('error', noop);
        socket.end(answer);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        wss.emit('connection', ws, req);
      });
    });
    this.defer(() => {
      for (const ws of wss.clients) ws.terminate();
      return new Promise((resolve) => wss.close(() => resolve()));
    });
    const address = server.address();
    const scheme = tlsOptions ? 'wss' : 'ws';
    const host = where && where.host === '::1' ? '[::1]' : '127.0.0.1';
    return {
      server,
      wss,
      log,
      port: address.port,
      url: (p = '/') => where && where.path
        ? `ws+unix://${where.path}:${p}`
        : `${scheme}://${host}:${address.port}${p}`,
      connection: () => next(wss, 'connection')
    };
  }

  /** A TCP server that accepts and never answers. */
  async silentServer() {
    const sockets = new Set();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', noop);
      socket.on('close', () => sockets.delete(socket));
      socket.resume(); // reads (and drops) so that it sees the client's end
    });
    this.defer(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    server.sockets = sockets;
    return server;
  }

  async cleanup() {
    const clients = [...this.clients];
    this.clients.clear();
    await Promise.all(clients.map((ws) => {
      if (ws.readyState === WebSocket.CLOSED) return null;
      ws.on('error', noop);
      const closed = next(ws, 'close');
      ws.terminate();
      return closed;
    }));
    const fns = this.fns.splice(0).reverse();
    for (const fn of fns) await fn();
  }
}

/** Resolves on 'open'; rejects on an 'error' or 'close' before it. */
function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.removeListener('error', reject);
      resolve();
    });
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`closed (${code}) before 'open'`)));
  });
}

/**
 * Records a failing client's events. Resolves on 'close' with
 * `{ events, error, code }`.
 */
function failure(ws) {
  return new Promise((resolve) => {
    const r = { events: [], error: null, code: null };
    ws.on('open', () => r.events.push('open'));
    ws.on('error', (err) => {
      r.events.push('error');
      if (r.error === null) r.error = err;
    });
    ws.on('close', (code) => {
      r.events.push('close');
      r.code = code;
      resolve(r);
    });
  });
}

/** Sends `data` and resolves with the echo (a Buffer). */
async function roundTrip(ws, data) {
  const reply = next(ws, 'message');
  ws.send(data);
  const [msg] = await reply;
  return Buffer.from(msg);
}

/** Reads a readable stream to its end, as a string. */
async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

/** A raw response for a route: status line, headers, body. */
function response(status, reason, headers = {}, body = '') {
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return head + '\r\n' + body;
}

function redirectTo(status, location, extra = {}) {
  return response(status, 'Redirect', {
    Location: location,
    'Content-Length': 0,
    Connection: 'close',
    ...extra
  });
}

function basic(credentials) {
  return 'Basic ' + Buffer.from(credentials).toString('base64');
}

/** ws-native only: which way the handshake went (see lib/client.js). */
function assertPath(ws, pathName) {
  if (!isNative) return;
  // The C client's ws._socket is lib/socket.js's, not a net.Socket.
  assert.equal(ws._socket instanceof net.Socket,
    pathName === 'Node request', `the handshake should go through the ${pathName}`);
}

// ---- tests ---------------------------------------------------------------

describe('client options', function () {
  let env;
  let certs;

  before(function () {
    certs = makeCerts();
  });

  beforeEach(function () {
    env = new Env();
  });

  afterEach(function () {
    return env.cleanup();
  });

  describe('wss:// and the TLS options', function () {
    it('verifies the server with `ca`; messages and the close handshake work', async function () {
      const site = await env.site({ tlsOptions: { key: certs.key, cert: certs.cert } });
      const connection = site.connection();
      const ws = env.client(site.url('/secure?x=1'), { ca: certs.cert });
      await opened(ws);
      assertPath(ws, 'C client'); // TLS in C (src/tls.c)
      const [peer, req] = await connection;
      assert.equal(req.url, '/secure?x=1');
      assert.equal(ws.url, site.url('/secure?x=1'));
      assert.equal((await roundTrip(ws, 'over tls')).toString(), 'over tls');
      const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0xa5);
      assert.deepEqual(await roundTrip(ws, big), big);
      const peerClosed = next(peer, 'close');
      const closed = next(ws, 'close');
      ws.close(4001, 'bye');
      const [code, reason] = await closed;
      assert.equal(code, 4001);
      assert.equal(reason.toString(), 'bye');
      assert.equal((await peerClosed)[0], 4001);
    });

    it('fails without `ca`: DEPTH_ZERO_SELF_SIGNED_CERT, then close 1006', async function () {
      const site = await env.site({ tlsOptions: { key: certs.key, cert: certs.cert } });
      const ws = env.client(site.url());
      const r = await failure(ws);
      assert.deepEqual(r.events, ['error', 'close']);
      assert.equal(r.error.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      assert.equal(r.error.message, 'self-signed certificate');
      assert.equal(r.code, 1006);
      assert.equal(site.log.length, 0, 'no request reached the server');
    });

    it('connects with `rejectUnauthorized: false`', async function () {
      const site = await env.site({ tlsOptions: { key: certs.key, cert: certs.cert } });
      const ws = env.client(site.url(), { rejectUnauthorized: false });
      await opened(ws);
      assert.equal((await roundTrip(ws, 'unverified')).toString(), 'unverified');
    });

    it('sends `servername` (SNI) and checks the identity with `checkServerIdentity`', async function () {
      const seen = [];
      const context = tls.createSecureContext({ key: certs.key, cert: certs.cert });
      const site = await env.site({
        tlsOptions: {
          key: certs.key,
          cert: certs.cert,
          SNICallback(servername, cb) {
            seen.push(servername);
            cb(null, context);
          }
        }
      });
      const checked = [];
      const ws = env.client(site.url(), {
        ca: certs.cert,
        servername: 'sni.wsn.test',
        checkServerIdentity(host, cert) {
          checked.push([host, cert.subject.CN]);
          return undefined;
        }
      });
      await opened(ws);
      assert.deepEqual(seen, ['sni.wsn.test']);
      assert.deepEqual(checked, [['sni.wsn.test', 'localhost']]);
    });

    it('sends no SNI for an IP address', async function () {
      const seen = [];
      const context = tls.createSecureContext({ key: certs.key, cert: certs.cert });
      const site = await env.site({
        tlsOptions: {
          key: certs.key,
          cert: certs.cert,
          SNICallback(servername, cb) {
            seen.push(servername);
            cb(null, context);
          }
        }
      });
      const ws = env.client(site.url(), { ca: certs.cert });
      await opened(ws);
      assert.deepEqual(seen, []);
    });

    it("fails with checkServerIdentity's error", async function () {
      const site = await env.site({ tlsOptions: { key: certs.key, cert: certs.cert } });
      const refusal = new Error('not the server I wanted');
      const ws = env.client(site.url(), {
        ca: certs.cert,
        checkServerIdentity: () => refusal
      });
      const r = await failure(ws);
      assert.deepEqual(r.events, ['error', 'close']);
      assert.equal(r.error, refusal);
      assert.equal(r.code, 1006);
    });

    describe('a server that requires a client certificate', function () {
      let site;

      beforeEach(async function () {
        site = await env.site({
          tlsOptions: {
            key: certs.key,
            cert: certs.cert,
            ca: certs.clientCert,
            requestCert: true,
            rejectUnauthorized: true
          }
        });
      });

      it('accepts the client with `cert` and `key`', async function () {
        const connection = site.connection();
        const ws = env.client(site.url(), {
          ca: certs.cert,
          cert: certs.clientCert,
          key: certs.clientKey
        });
        await opened(ws);
        assertPath(ws, 'C client');
        const [, req] = await connection;
        assert.equal(req.socket.getPeerCertificate().subject.CN, 'wsn-client');
        assert.equal((await roundTrip(ws, 'mutual')).toString(), 'mutual');
      });

      it('accepts an encrypted key with `passphrase`', async function () {
        const ws = env.client(site.url(), {
          ca: certs.cert,
          cert: certs.clientCert,
          key: certs.clientKeyEncrypted,
          passphrase: 'wsn-secret'
        });
        await opened(ws);
        assert.equal((await roundTrip(ws, 'pass')).toString(), 'pass');
      });

      it('fails without a client certificate', async function () {
        const ws = env.client(site.url(), { ca: certs.cert });
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.code, 1006);
        // TLS 1.3: the server's alert arrives after the client sent its
        // request.
        assert.equal(r.error.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
        assert.equal(site.log.length, 0);
      });
    });

    it('a silent TLS server: "Opening handshake has timed out"', async function () {
      const server = await env.silentServer();
      const start = Date.now();
      const ws = env.client(`wss://127.0.0.1:${server.address().port}/`, {
        ca: certs.cert,
        handshakeTimeout: 200
      });
      const r = await failure(ws);
      assert.deepEqual(r.events, ['error', 'close']);
      assert.equal(r.error.message, 'Opening handshake has timed out');
      assert.equal(r.code, 1006);
      assert.ok(Date.now() - start >= 180);
    });
  });

  for (const [pathName, pathOptions] of PATHS) {
    describe(`redirects (${pathName})`, function () {
      // Routes: /r<code>/<n> answers <code> towards /r<code>/<n-1>, and
      // /r<code>/0 towards /final; /loop/a and /loop/b send to each other.
      function route(req) {
        const url = new URL(req.url, 'http://x');
        let m = /^\/r(\d{3})\/(\d+)$/.exec(url.pathname);
        if (m) {
          const n = Number(m[2]);
          return redirectTo(Number(m[1]), n === 0 ? '/final' : `/r${m[1]}/${n - 1}`);
        }
        if (url.pathname === '/loop/a') return redirectTo(302, '/loop/b');
        if (url.pathname === '/loop/b') return redirectTo(302, '/loop/a');
        m = /^\/to$/.exec(url.pathname);
        if (m) {
          return redirectTo(Number(url.searchParams.get('code') || 302),
            url.searchParams.get('location'));
        }
        return null;
      }

      const client = (address, options, protocols) =>
        env.client(address, protocols, { ...pathOptions, followRedirects: true, ...options });

      for (const code of [301, 302, 307, 308]) {
        it(`follows a ${code} with a relative Location; 'redirect' gets (url, request)`, async function () {
          const site = await env.site({ route });
          const ws = client(site.url(`/r${code}/0`));
          const redirects = [];
          ws.on('redirect', (url, req) => {
            redirects.push(url);
            assert.equal(typeof req.getHeader, 'function');
            assert.equal(req.getHeader('Upgrade'), 'websocket');
            assert.equal(typeof req.getHeader('Sec-WebSocket-Key'), 'string');
          });
          await opened(ws);
          assertPath(ws, pathName);
          assert.deepEqual(redirects, [site.url('/final')]);
          assert.equal(ws.url, site.url('/final'));
          assert.deepEqual(site.log.map((e) => e.url), [`/r${code}/0`, '/final']);
          assert.equal((await roundTrip(ws, 'after redirect')).toString(), 'after redirect');
        });
      }

      it('follows an absolute Location to another server', async function () {
        const target = await env.site();
        const site = await env.site({ route });
        const location = encodeURIComponent(`http://127.0.0.1:${target.port}/elsewhere?q=1`);
        const ws = client(site.url(`/to?code=301&location=${location}`));
        await opened(ws);
        assert.equal(ws.url, target.url('/elsewhere?q=1'));
        assert.deepEqual(target.log.map((e) => e.url), ['/elsewhere?q=1']);
      });

      it('follows a chain within maxRedirects', async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/r307/2'), { maxRedirects: 3 });
        let count = 0;
        ws.on('redirect', () => count++);
        await opened(ws);
        assert.equal(count, 3);
        assert.deepEqual(site.log.map((e) => e.url),
          ['/r307/2', '/r307/1', '/r307/0', '/final']);
      });

      it('fails with "Maximum redirects exceeded" past maxRedirects', async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/r302/2'), { maxRedirects: 2 });
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.error.message, 'Maximum redirects exceeded');
        assert.equal(r.code, 1006);
        assert.deepEqual(site.log.map((e) => e.url), ['/r302/2', '/r302/1', '/r302/0']);
      });

      it('stops a redirect loop after the default 10 redirects', async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/loop/a'));
        let count = 0;
        ws.on('redirect', () => count++);
        const r = await failure(ws);
        assert.equal(r.error.message, 'Maximum redirects exceeded');
        assert.equal(count, 10);
        assert.equal(site.log.length, 11);
      });

      it('without followRedirects a 3xx is an unexpected response', async function () {
        const site = await env.site({ route });
        const ws = env.client(site.url('/r302/0'), pathOptions);
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.error.message, 'Unexpected server response: 302');
        assert.equal(site.log.length, 1);
      });

      it('an invalid Location: SyntaxError "Invalid URL: ..." emitted', async function () {
        const site = await env.site({ route });
        const ws = client(site.url(`/to?location=${encodeURIComponent('http://[::1')}`));
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.ok(r.error instanceof SyntaxError);
        assert.equal(r.error.message, 'Invalid URL: http://[::1');
        assert.equal(r.code, 1006);
      });

      it('a Location with another scheme: the URL error is emitted, not thrown', async function () {
        const site = await env.site({ route });
        const ws = client(site.url(`/to?location=${encodeURIComponent('ftp://127.0.0.1/')}`));
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.ok(r.error instanceof SyntaxError);
        assert.equal(r.error.message,
          'The URL\'s protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:"');
      });

      it('follows ws:// to wss:// with the TLS options', async function () {
        const secure = await env.site({ tlsOptions: { key: certs.key, cert: certs.cert } });
        const site = await env.site({ route });
        const location = encodeURIComponent(secure.url('/tls'));
        const ws = client(site.url(`/to?location=${location}`), { ca: certs.cert });
        const urls = [];
        ws.on('redirect', (url) => urls.push(url));
        await opened(ws);
        assert.deepEqual(urls, [secure.url('/tls')]);
        assert.equal(ws.url, secure.url('/tls'));
        assert.equal((await roundTrip(ws, 'now secure')).toString(), 'now secure');
      });

      it('follows wss:// to ws://, dropping credentials', async function () {
        const plain = await env.site();
        const secure = await env.site({
          tlsOptions: { key: certs.key, cert: certs.cert },
          route
        });
        const location = encodeURIComponent(plain.url('/plain'));
        const ws = client(secure.url(`/to?location=${location}`).replace('//', '//dan:pw@'),
          { ca: certs.cert });
        await opened(ws);
        assert.equal(ws.url, plain.url('/plain'));
        assert.equal(secure.log[0].headers.authorization, basic('dan:pw'));
        assert.equal(plain.log[0].headers.authorization, undefined);
        assert.equal((await roundTrip(ws, 'plain again')).toString(), 'plain again');
      });

      it('keeps credentials and cookies on the same host', async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/r302/0').replace('//', '//alice:s%3Acret@'), {
          headers: { Cookie: 'a=1', 'X-Kept': 'yes' }
        });
        await opened(ws);
        assert.equal(site.log.length, 2);
        for (const { headers } of site.log) {
          assert.equal(headers.authorization, basic('alice:s:cret'));
          assert.equal(headers.cookie, 'a=1');
          assert.equal(headers['x-kept'], 'yes');
        }
      });

      it('drops Authorization, Cookie and Host on a redirect to another host', async function () {
        const target = await env.site();
        const site = await env.site({ route });
        const location = encodeURIComponent(target.url('/there'));
        const ws = client(site.url(`/to?location=${location}`).replace('//', '//bob:pw@'), {
          headers: { Cookie: 'a=1', 'X-Kept': 'yes', Host: `127.0.0.1:${site.port}` }
        });
        await opened(ws);
        const [first] = site.log;
        assert.equal(first.headers.authorization, basic('bob:pw'));
        assert.equal(first.headers.cookie, 'a=1');
        const [second] = target.log;
        assert.equal(second.headers.authorization, undefined);
        assert.equal(second.headers.cookie, undefined);
        assert.equal(second.headers.host, `127.0.0.1:${target.port}`);
        assert.equal(second.headers['x-kept'], 'yes');
      });

      it("with a 'redirect' listener nothing is dropped; it can remove headers", async function () {
        const target = await env.site();
        const site = await env.site({ route });
        const location = encodeURIComponent(target.url('/there'));
        const ws = client(site.url(`/to?location=${location}`).replace('//', '//bob:pw@'), {
          headers: { Cookie: 'a=1', 'X-Secret': 's' }
        });
        ws.on('redirect', (url, req) => {
          assert.equal(req.getHeader('cookie'), 'a=1');
          req.removeHeader('x-secret');
        });
        await opened(ws);
        const [second] = target.log;
        assert.equal(second.headers.authorization, basic('bob:pw'));
        assert.equal(second.headers.cookie, 'a=1');
        assert.equal(second.headers['x-secret'], undefined);
      });

      it('the first Authorization wins: a header set by the caller over URL credentials', async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/r301/0').replace('//', '//u:p@'), {
          headers: { Authorization: 'Bearer token' }
        });
        await opened(ws);
        assert.deepEqual(site.log.map((e) => e.headers.authorization),
          ['Bearer token', 'Bearer token']);
      });

      it("close() in a 'redirect' listener fails the handshake; the target is never asked", async function () {
        const site = await env.site({ route });
        const ws = client(site.url('/r302/0'));
        ws.on('redirect', () => ws.close());
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.error.message,
          'WebSocket was closed before the connection was established');
        assert.equal(r.code, 1006);
        assert.deepEqual(site.log.map((e) => e.url), ['/r302/0']);
      });
    });
  }

  for (const [pathName, pathOptions] of PATHS) {
    describe(`unexpected responses (${pathName})`, function () {
      function route(req) {
        if (req.url === '/ok') {
          return response(200, 'OK', {
            'Content-Type': 'text/plain',
            'Content-Length': 11,
            Connection: 'close'
          }, 'hello world');
        }
        if (req.url === '/forbidden') {
          // Chunked, in three chunks.
          return response(403, 'Forbidden', {
            'Content-Type': 'text/plain',
            'Transfer-Encoding': 'chunked',
            Connection: 'close'
          }, '4\r\nyou \r\n6\r\nshall \r\n8\r\nnot pass\r\n0\r\n\r\n');
        }
        return null;
      }

      for (const [url, status, body] of [
        ['/ok', 200, 'hello world'],
        ['/forbidden', 403, 'you shall not pass']
      ]) {
        it(`a ${status}: 'unexpected-response' gets (req, res) with the body readable`, async function () {
          const site = await env.site({ route });
          const ws = env.client(site.url(url), pathOptions);
          const events = [];
          ws.on('error', () => events.push('error'));
          const [req, res] = await next(ws, 'unexpected-response');
          assert.equal(req.method, 'GET');
          assert.equal(req.path, url);
          assert.equal(res.statusCode, status);
          assert.equal(res.headers['content-type'], 'text/plain');
          assert.equal(await readAll(res), body);
          assert.equal(ws.readyState, WebSocket.CONNECTING);
          assert.deepEqual(events, []);
          // The listener decides: closing the WebSocket ends the attempt.
          const r = failure(ws);
          ws.close();
          const { events: after, error, code } = await r;
          assert.deepEqual(after, ['error', 'close']);
          assert.equal(error.message,
            'WebSocket was closed before the connection was established');
          assert.equal(code, 1006);
        });
      }

      it('a body of Content-Length bytes ends there although the server keeps the socket open', async function () {
        const body = 'x'.repeat(200 * 1024);
        const site = await env.site({
          route: () => response(401, 'Unauthorized', { 'Content-Length': body.length }, body)
        });
        // The route's socket.end() would close: keep it open instead.
        site.server.removeAllListeners('upgrade');
        site.server.on('upgrade', (req, socket) => {
          socket.on('error', noop);
          socket.write(response(401, 'Unauthorized', { 'Content-Length': body.length }));
          socket.write(body.slice(0, 1000));
          setImmediate(() => socket.write(body.slice(1000)));
        });
        const ws = env.client(site.url('/'), pathOptions);
        const [, res] = await next(ws, 'unexpected-response');
        assert.equal(res.statusCode, 401);
        assert.equal((await readAll(res)).length, body.length);
      });

      for (const [what, answer] of [
        ['closes without answering', null],
        ['closes in the middle of the response head', 'HTTP/1.1 101 Switching Protocols\r\nUpgr']
      ]) {
        it(`a server that ${what}: 'socket hang up' (ECONNRESET), close 1006`, async function () {
          const site = await env.site();
          site.server.removeAllListeners('upgrade');
          site.server.on('upgrade', (req, socket) => {
            socket.on('error', noop);
            if (answer) socket.end(answer);
            else socket.destroy();
          });
          const ws = env.client(site.url(), pathOptions);
          const r = await failure(ws);
          assert.deepEqual(r.events, ['error', 'close']);
          assert.equal(r.error.message, 'socket hang up');
          assert.equal(r.error.code, 'ECONNRESET');
          assert.equal(r.code, 1006);
        });
      }

      it("without a listener: error 'Unexpected server response: 403', close 1006", async function () {
        const site = await env.site({ route });
        const ws = env.client(site.url('/forbidden'), pathOptions);
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.error.message, 'Unexpected server response: 403');
        assert.equal(r.code, 1006);
      });
    });
  }

  describe('handshakeTimeout', function () {
    for (const [pathName, pathOptions] of PATHS) {
      it(`a silent server: "Opening handshake has timed out" (${pathName})`, async function () {
        const server = await env.silentServer();
        const start = Date.now();
        const ws = env.client(`ws://127.0.0.1:${server.address().port}/`,
          { ...pathOptions, handshakeTimeout: 200 });
        const r = await failure(ws);
        assert.deepEqual(r.events, ['error', 'close']);
        assert.equal(r.error.message, 'Opening handshake has timed out');
        assert.equal(r.code, 1006);
        assert.ok(Date.now() - start >= 180);
        // The client's socket is gone too.
        while (server.sockets.size) await new Promise((resolve) => setTimeout(resolve, 10));
      });
    }

    it('does not fire once the connection is open', async function () {
      for (const [, pathOptions] of PATHS) {
        const site = await env.site();
        const ws = env.client(site.url(), { ...pathOptions, handshakeTimeout: 100 });
        await opened(ws);
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(ws.readyState, WebSocket.OPEN);
        assert.equal((await roundTrip(ws, 'still here')).toString(), 'still here');
      }
    });
  });

  describe('ws+unix://', function () {
    let dir;

    beforeEach(function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-unix-'));
      env.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    });

    it('connects to a server on a unix socket, with a request path', async function () {
      const sock = path.join(dir, 'ws.sock');
      const site = await env.site({ where: { path: sock } });
      const connection = site.connection();
      const ws = env.client(`ws+unix://${sock}:/chat?room=1`);
      await opened(ws);
      const [, req] = await connection;
      assert.equal(req.url, '/chat?room=1');
      assert.equal(req.headers.host, 'localhost');
      assert.equal(ws.url, `ws+unix://${sock}:/chat?room=1`);
      assert.equal((await roundTrip(ws, 'over a pipe')).toString(), 'over a pipe');
      const big = Buffer.alloc(2 * 1024 * 1024, 7);
      assert.deepEqual(await roundTrip(ws, big), big);
    });

    it('without a request path asks for /', async function () {
      const sock = path.join(dir, 'ws.sock');
      const site = await env.site({ where: { path: sock } });
      const ws = env.client(`ws+unix://${sock}`);
      await opened(ws);
      assert.deepEqual(site.log.map((e) => e.url), ['/']);
    });

    it('a missing socket: error ENOENT, then close 1006', async function () {
      const ws = env.client(`ws+unix://${path.join(dir, 'nothing.sock')}`);
      const r = await failure(ws);
      assert.deepEqual(r.events, ['error', 'close']);
      assert.equal(r.error.code, 'ENOENT');
      assert.equal(r.code, 1006);
    });

    it('throws for an empty pathname', function () {
      assert.throws(() => new WebSocket('ws+unix:'), {
        name: 'SyntaxError',
        message: "The URL's pathname is empty"
      });
    });
  });

  describe('IPv6 literals', function () {
    let hasIPv6 = false;

    before(async function () {
      const probe = net.createServer();
      hasIPv6 = await new Promise((resolve) => {
        probe.once('error', () => resolve(false));
        probe.listen(0, '::1', () => probe.close(() => resolve(true)));
      });
    });

    for (const [pathName, pathOptions] of [PATHS[0], ['Node request', { localAddress: '::1' }]]) {
      it(`connects to [::1] (${pathName})`, async function () {
        if (!hasIPv6) {
          // eslint-disable-next-line no-console
          console.log('      (skipped: this machine has no IPv6 loopback ::1)');
          this.skip();
        }
        const site = await env.site({ where: { host: '::1' } });
        const ws = env.client(site.url('/six'), pathOptions);
        await opened(ws);
        assertPath(ws, pathName);
        const [entry] = site.log;
        assert.equal(entry.url, '/six');
        assert.equal(entry.headers.host, `[::1]:${site.port}`);
        assert.equal(entry.remoteAddress, '::1');
        assert.equal(ws.url, `ws://[::1]:${site.port}/six`);
        assert.equal((await roundTrip(ws, 'v6')).toString(), 'v6');
      });
    }
  });

  describe("Node's connection options", function () {
    it('agent: the handshake goes through the http.Agent given', async function () {
      const site = await env.site();
      let created = 0;
      class CountingAgent extends http.Agent {
        createConnection(...args) {
          created++;
          return super.createConnection(...args);
        }
      }
      const agent = new CountingAgent();
      env.defer(() => agent.destroy());
      const ws = env.client(site.url('/agent'), { agent });
      await opened(ws);
      assertPath(ws, 'Node request');
      assert.equal(created, 1);
      assert.equal((await roundTrip(ws, 'via agent')).toString(), 'via agent');
      const big = Buffer.alloc(1024 * 1024, 3);
      assert.deepEqual(await roundTrip(ws, big), big);
    });

    it('createConnection: the socket comes from the function given', async function () {
      const site = await env.site();
      const calls = [];
      const ws = env.client(site.url('/custom'), {
        createConnection(options) {
          calls.push([options.host, Number(options.port)]);
          return net.connect(options.port, options.host);
        }
      });
      await opened(ws);
      assertPath(ws, 'Node request');
      assert.deepEqual(calls, [['127.0.0.1', site.port]]);
      assert.equal((await roundTrip(ws, 'custom socket')).toString(), 'custom socket');
    });

    it('localAddress: the connection leaves from that address', async function () {
      const site = await env.site();
      const connection = site.connection();
      const ws = env.client(site.url(), { localAddress: '127.0.0.1' });
      await opened(ws);
      assertPath(ws, 'Node request');
      const [, req] = await connection;
      assert.equal(req.socket.remoteAddress, '127.0.0.1');
    });

    it('family: 4 resolves localhost to 127.0.0.1', async function () {
      const site = await env.site();
      const ws = env.client(`ws://localhost:${site.port}/four`, { family: 4 });
      await opened(ws);
      assert.equal(site.log[0].remoteAddress, '127.0.0.1');
      assert.equal(site.log[0].headers.host, `localhost:${site.port}`);
    });

    it('lookup: the function given resolves the host name', async function () {
      const site = await env.site();
      const calls = [];
      const ws = env.client(`ws://wsn-test.invalid:${site.port}/looked-up`, {
        lookup(hostname, options, cb) {
          calls.push(hostname);
          if (options && options.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
          else cb(null, '127.0.0.1', 4);
        }
      });
      await opened(ws);
      assert.ok(calls.length >= 1);
      assert.equal(calls[0], 'wsn-test.invalid');
      assert.equal(site.log[0].headers.host, `wsn-test.invalid:${site.port}`);
    });

    it("lookup: the function's error is the WebSocket's", async function () {
      const failed = Object.assign(new Error('no such host here'), { code: 'ENOTFOUND' });
      const ws = env.client('ws://wsn-test.invalid:1/', {
        lookup(hostname, options, cb) {
          cb(failed);
        }
      });
      const r = await failure(ws);
      assert.deepEqual(r.events, ['error', 'close']);
      assert.equal(r.error, failed);
      assert.equal(r.code, 1006);
    });

    it('finishRequest: the function given ends the request', async function () {
      const site = await env.site();
      let args;
      const ws = env.client(site.url('/finish'), {
        finishRequest(req, websocket) {
          args = [req instanceof http.ClientRequest, websocket];
          req.setHeader('X-Late', 'added in finishRequest');
          req.end();
        }
      });
      await opened(ws);
      assert.deepEqual(args, [true, ws]);
      assert.equal(site.log[0].headers['x-late'], 'added in finishRequest');
    });
  });

  for (const [pathName, pathOptions] of PATHS) {
    describe(`the request (${pathName})`, function () {
      async function requestHeaders(address, options, protocols) {
        const ws = env.client(address, protocols, { ...pathOptions, ...options });
        await opened(ws);
        assertPath(ws, pathName);
        return ws;
      }

      it('has the RFC 6455 headers and a Host', async function () {
        const site = await env.site();
        await requestHeaders(site.url('/p?q=1'), { perMessageDeflate: false });
        const { url, headers } = site.log[0];
        assert.equal(url, '/p?q=1');
        assert.equal(headers.host, `127.0.0.1:${site.port}`);
        assert.equal(headers.upgrade, 'websocket');
        assert.equal(headers.connection, 'Upgrade');
        assert.equal(headers['sec-websocket-version'], '13');
        assert.equal(Buffer.from(headers['sec-websocket-key'], 'base64').length, 16);
        assert.equal(headers['sec-websocket-extensions'], undefined);
        assert.equal(headers['sec-websocket-protocol'], undefined);
      });

      it('sends `headers`, and a Host header given there replaces the default', async function () {
        const site = await env.site();
        await requestHeaders(site.url(), {
          headers: { 'X-One': '1', 'x-many': ['a', 'b'], Host: 'example.test:99' }
        });
        const { headers } = site.log[0];
        assert.equal(headers['x-one'], '1');
        assert.equal(headers['x-many'], 'a, b');
        assert.equal(headers.host, 'example.test:99');
      });

      it('sends `origin` as Origin (version 13) or Sec-WebSocket-Origin (version 8)', async function () {
        const site = await env.site();
        await requestHeaders(site.url(), { origin: 'https://a.example' });
        await requestHeaders(site.url(), { origin: 'https://b.example', protocolVersion: 8 });
        assert.equal(site.log[0].headers.origin, 'https://a.example');
        assert.equal(site.log[0].headers['sec-websocket-version'], '13');
        assert.equal(site.log[1].headers['sec-websocket-origin'], 'https://b.example');
        assert.equal(site.log[1].headers.origin, undefined);
        assert.equal(site.log[1].headers['sec-websocket-version'], '8');
      });

      it('sends the `auth` option as Basic credentials', async function () {
        const site = await env.site();
        await requestHeaders(site.url(), { auth: 'carol:open sesame' });
        assert.equal(site.log[0].headers.authorization, basic('carol:open sesame'));
      });

      it('sends URL credentials unescaped as ws does (querystring.unescape)', async function () {
        const site = await env.site();
        const base = site.url('/');
        await requestHeaders(base.replace('//', '//us%40er:p%3Ass%20w@'));
        // A malformed escape is kept as it is rather than failing.
        await requestHeaders(base.replace('//', '//a%zz:b%@'));
        // URL credentials take precedence over the `auth` option ...
        await requestHeaders(base.replace('//', '//url:cred@'), { auth: 'opt:cred' });
        // ... and a caller's Authorization header over both.
        await requestHeaders(base.replace('//', '//url:cred@'),
          { headers: { authorization: 'Bearer x' } });
        assert.deepEqual(site.log.map((e) => e.headers.authorization), [
          basic('us@er:p:ss w'),
          basic('a%zz:b%'),
          basic('url:cred'),
          'Bearer x'
        ]);
      });

      it('throws for invalid header names and values, as http.request does', function () {
        const address = 'ws://127.0.0.1:1/';
        assert.throws(() => new WebSocket(address, { ...pathOptions, headers: { 'X-Bad': 'a\r\nb' } }),
          { name: 'TypeError', code: 'ERR_INVALID_CHAR' });
        assert.throws(() => new WebSocket(address, { ...pathOptions, headers: { 'Bad Name': 'x' } }),
          { name: 'TypeError', code: 'ERR_INVALID_HTTP_TOKEN' });
        assert.throws(() => new WebSocket(address, { ...pathOptions, headers: { 'X-U': undefined } }),
          { name: 'TypeError', code: 'ERR_HTTP_INVALID_HEADER_VALUE' });
      });

      it('offers subprotocols and takes the one the server picked; `protocols` option too', async function () {
        const site = await env.site({
          wsOptions: { handleProtocols: (set) => (set.has('b') ? 'b' : false) }
        });
        const ws1 = await requestHeaders(site.url(), {}, ['a', 'b']);
        const ws2 = await requestHeaders(site.url(), { protocols: ['c', 'b'] });
        assert.equal(ws1.protocol, 'b');
        assert.equal(ws2.protocol, 'b');
        assert.equal(site.log[0].headers['sec-websocket-protocol'], 'a,b');
        assert.equal(site.log[1].headers['sec-websocket-protocol'], 'c,b');
      });
    });
  }

  for (const [pathName, pathOptions] of PATHS) {
    describe(`connection options (${pathName})`, function () {
      async function pair(options) {
        const site = await env.site();
        const connection = site.connection();
        const ws = env.client(site.url(), { ...pathOptions, ...options });
        await opened(ws);
        assertPath(ws, pathName);
        const [peer] = await connection;
        peer.removeAllListeners('message');
        return { ws, peer };
      }

      it('maxPayload: a bigger message fails the connection with 1009', async function () {
        const { ws, peer } = await pair({ maxPayload: 1000 });
        const r = failure(ws);
        const peerClosed = next(peer, 'close');
        peer.send(Buffer.alloc(1001));
        const { events, error, code } = await r;
        assert.deepEqual(events, ['error', 'close']);
        assert.equal(error.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
        assert.equal(error.message, 'Max payload size exceeded');
        assert.equal(code, 1006);
        assert.equal((await peerClosed)[0], 1009);
      });

      it('maxPayload: a message of exactly maxPayload bytes is fine', async function () {
        const { ws, peer } = await pair({ maxPayload: 1000 });
        const got = next(ws, 'message');
        peer.send(Buffer.alloc(1000, 1));
        assert.equal((await got)[0].length, 1000);
      });

      it('skipUTF8Validation: invalid UTF-8 text is delivered as it came', async function () {
        const { ws, peer } = await pair({ skipUTF8Validation: true });
        const got = next(ws, 'message');
        peer.send(Buffer.from([0xff, 0xfe, 0x41]), { binary: false });
        const [data, isBinary] = await got;
        assert.equal(isBinary, false);
        assert.deepEqual([...data], [0xff, 0xfe, 0x41]);
      });

      it('without skipUTF8Validation invalid UTF-8 text fails with 1007', async function () {
        const { ws, peer } = await pair({});
        const r = failure(ws);
        const peerClosed = next(peer, 'close');
        peer.send(Buffer.from([0xff, 0xfe, 0x41]), { binary: false });
        const { error } = await r;
        assert.equal(error.code, 'WS_ERR_INVALID_UTF8');
        assert.equal((await peerClosed)[0], 1007);
      });

      it('autoPong: false leaves pings unanswered; the default answers', async function () {
        const quiet = await pair({ autoPong: false });
        const loud = await pair({});
        const pongs = [];
        quiet.peer.on('pong', () => pongs.push('quiet'));
        loud.peer.on('pong', (data) => pongs.push(`loud ${data}`));
        const pings = [next(quiet.ws, 'ping'), next(loud.ws, 'ping')];
        quiet.peer.ping('q');
        loud.peer.ping('l');
        const [[q], [l]] = await Promise.all(pings);
        assert.equal(q.toString(), 'q');
        assert.equal(l.toString(), 'l');
        // A message sent after the ping arrived: its pong, if any, came
        // before it.
        const synced = next(quiet.peer, 'message');
        quiet.ws.send('sync');
        await synced;
        assert.deepEqual(pongs, ['loud l']);
      });

      for (const allow of [true, false]) {
        it(`allowSynchronousEvents: ${allow}`, async function () {
          // Three messages, a ping and a close frame arrive in one read.
          // With true (the default) ws emits them in one go; with false each
          // 'message' and 'ping' comes in its own macrotask (microtasks
          // queued by a listener run before the next), and the close after
          // them.
          const { ws, peer } = await pair({ allowSynchronousEvents: allow });
          const order = [];
          const note = (what) => {
            order.push(what);
            queueMicrotask(() => order.push('microtask'));
          };
          ws.on('message', (data) => note(data.toString()));
          ws.on('ping', () => note('ping'));
          const closed = new Promise((resolve) => ws.on('close', (code) => {
            order.push(`close ${code}`);
            resolve();
          }));
          peer._socket.write(Buffer.from([
            0x81, 2, 0x6d, 0x31, 0x81, 2, 0x6d, 0x32, 0x89, 0, 0x81, 2, 0x6d, 0x33,
            0x88, 2, 0x03, 0xe8
          ]));
          await closed;
          assert.deepEqual(order, allow
            ? ['m1', 'm2', 'ping', 'm3', 'microtask', 'microtask', 'microtask',
              'microtask', 'close 1000']
            : ['m1', 'microtask', 'm2', 'microtask', 'ping', 'microtask', 'm3',
              'microtask', 'close 1000']);
        });
      }

      it('a listener that pauses on every message still gets all of them before close', async function () {
        // What a stream with a full reader does (createWebSocketStream).
        const { ws, peer } = await pair({});
        const order = [];
        ws.on('message', (data) => {
          order.push(data.toString());
          ws.pause();
          setImmediate(() => ws.resume());
        });
        const closed = new Promise((resolve) => ws.on('close', () => {
          order.push('close');
          resolve();
        }));
        // Twenty messages, a close frame and the end, in one write.
        const frames = [];
        for (let i = 1; i <= 20; i++) {
          const text = Buffer.from(`m${i}`);
          frames.push(Buffer.from([0x81, text.length]), text);
        }
        frames.push(Buffer.from([0x88, 2, 0x03, 0xe8]));
        peer._socket.end(Buffer.concat(frames));
        await closed;
        const expected = [];
        for (let i = 1; i <= 20; i++) expected.push(`m${i}`);
        assert.deepEqual(order, [...expected, 'close']);
      });

      it('perMessageDeflate: false offers nothing; options are accepted', async function () {
        const site = await env.site();
        const ws1 = env.client(site.url(), { ...pathOptions, perMessageDeflate: false });
        const ws2 = env.client(site.url(), {
          ...pathOptions,
          perMessageDeflate: { clientNoContextTakeover: true, threshold: 0 }
        });
        await Promise.all([opened(ws1), opened(ws2)]);
        assert.equal(site.log.length, 2);
        const noOffer = site.log.find((e) => e.headers['sec-websocket-extensions'] === undefined);
        assert.ok(noOffer, 'perMessageDeflate: false sends no Sec-WebSocket-Extensions');
        assert.equal((await roundTrip(ws2, 'x'.repeat(5000))).toString(), 'x'.repeat(5000));
      });

      it('messages of many sizes both ways, then a close started by the server', async function () {
        const { ws, peer } = await pair({});
        peer.on('message', (data, isBinary) => peer.send(data, { binary: isBinary }));
        for (const size of [0, 125, 126, 65535, 65536, 5 * 1024 * 1024]) {
          const data = Buffer.alloc(size, size & 0xff);
          assert.deepEqual(await roundTrip(ws, data), data);
        }
        const closed = next(ws, 'close');
        peer.close(4321, 'server done');
        const [code, reason] = await closed;
        assert.equal(code, 4321);
        assert.equal(reason.toString(), 'server done');
      });
    });
  }

  describe('URL handling', function () {
    it('takes http:// and https:// URL objects without changing them', async function () {
      const site = await env.site();
      const url = new URL(`http://127.0.0.1:${site.port}/from-http`);
      const ws = env.client(url);
      assert.equal(url.protocol, 'http:');
      assert.equal(ws.url, `ws://127.0.0.1:${site.port}/from-http`);
      await opened(ws);
    });

    it("throws ws's SyntaxErrors", function () {
      assert.throws(() => new WebSocket('not a url'),
        { name: 'SyntaxError', message: 'Invalid URL: not a url' });
      assert.throws(() => new WebSocket('ftp://127.0.0.1/'), {
        name: 'SyntaxError',
        message: 'The URL\'s protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:"'
      });
      assert.throws(() => new WebSocket('ws://127.0.0.1/#x'),
        { name: 'SyntaxError', message: 'The URL contains a fragment identifier' });
      assert.throws(() => new WebSocket('ws://127.0.0.1/', ['a', 'a']),
        { name: 'SyntaxError', message: 'An invalid or duplicated subprotocol was specified' });
      assert.throws(() => new WebSocket('ws://127.0.0.1/', { protocols: ['a b'] }),
        { name: 'SyntaxError', message: 'An invalid or duplicated subprotocol was specified' });
      assert.throws(() => new WebSocket('ws://127.0.0.1/', { protocolVersion: 9 }), {
        name: 'RangeError',
        message: 'Unsupported protocol version: 9 (supported versions: 8, 13)'
      });
    });
  });
});
