'use strict';

// Drop-in fidelity of the handshake paths (issue 13): the errors, checks and
// events that third-party code reads, as ws 8.23.1 gives them. Every test
// here passes against ws itself (WSN_TEST_IMPL=ws).

const assert = require('node:assert/strict');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const { X509Certificate } = require('node:crypto');
const { once } = require('node:events');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer
} = require('./helpers/impl');
const {
  createRawServer,
  httpExchange,
  readUpgradeRequest,
  upgradeRequest,
  upgradeResponse
} = require('./helpers/raw');
const { getCert } = require('./helpers/attach');
const { Cleanup, freePort, startServer, stopServer } = require('./helpers/util');

const cleanup = new Cleanup();

/** 'error' (the first one) and 'close' of a client, in order. */
function outcome(ws) {
  return new Promise((resolve) => {
    const events = [];
    let error = null;
    ws.on('error', (err) => {
      events.push('error');
      if (error === null) error = err;
    });
    ws.on('close', (code, reason) => {
      events.push('close');
      resolve({ error, code, reason: reason.toString(), events });
    });
  });
}

/** A plain http server on 127.0.0.1, closed after the test. */
async function httpServer(server = http.createServer()) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.add(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return server;
}

/** A WebSocketServer of the implementation under test in a given mode. */
async function serverIn(mode, options = {}) {
  if (mode === 'port') {
    const wss = await startServer(WebSocketServer, options);
    cleanup.add(() => stopServer(wss));
    return { wss, port: wss.address().port };
  }
  const server = await httpServer();
  const wss = new WebSocketServer({ server, ...options });
  cleanup.add(() => stopServer(wss));
  return { wss, port: server.address().port };
}

describe('handshake fidelity (ws 8.23.1)', function () {
  this.timeout(10000);

  afterEach(() => cleanup.run());

  describe('errors as Node and ws give them', function () {
    it('an unresolvable host is ENOTFOUND on the client', async function () {
      const ws = new WebSocket('ws://nonexistent.invalid/');
      const { error, code } = await outcome(ws);
      assert.equal(error.code, 'ENOTFOUND');
      assert.equal(error.message, 'getaddrinfo ENOTFOUND nonexistent.invalid');
      assert.equal(error.syscall, 'getaddrinfo');
      assert.equal(error.hostname, 'nonexistent.invalid');
      assert.equal(typeof error.errno, 'number');
      assert.equal(code, 1006);
    });

    it('an unresolvable host is ENOTFOUND for { port, host }', async function () {
      const wss = new WebSocketServer({ port: 0, host: 'nonexistent.invalid' });
      cleanup.add(() => new Promise((resolve) => wss.close(() => resolve())));
      const [error] = await once(wss, 'error');
      assert.equal(error.code, 'ENOTFOUND');
      assert.equal(error.message, 'getaddrinfo ENOTFOUND nonexistent.invalid');
      assert.equal(error.syscall, 'getaddrinfo');
      assert.equal(error.hostname, 'nonexistent.invalid');
    });

    it('a refused connect to a name reports the address tried', async function () {
      const port = await freePort();
      const ws = new WebSocket(`ws://localhost:${port}/`);
      const { error, code } = await outcome(ws);
      assert.equal(error.code, 'ECONNREFUSED');
      assert.equal(error.syscall, 'connect');
      assert.notEqual(net.isIP(error.address), 0, `address ${error.address}`);
      assert.equal(error.port, port);
      assert.equal(error.message,
        `connect ECONNREFUSED ${error.address}:${port}`);
      assert.equal(code, 1006);
    });

    for (const port of [70000, -1, 65536, '70000']) {
      it(`a bad port (${JSON.stringify(port)}) throws Node's RangeError`, function () {
        // Node's own message for it, whatever the Node version words.
        let expected;
        try {
          new net.SocketAddress({ port });
        } catch (err) {
          expected = err;
        }
        assert.throws(() => new WebSocketServer({ port }), (err) => {
          assert.ok(err instanceof RangeError);
          assert.equal(err.code, 'ERR_SOCKET_BAD_PORT');
          assert.equal(err.message, expected.message);
          return true;
        });
      });
    }

    it('ERR_TLS_CERT_ALTNAME_INVALID carries reason, host and cert', async function () {
      const { key, cert } = await getCert();
      const server = await httpServer(https.createServer({ key, cert }));
      server.on('upgrade', (req, socket) => socket.destroy());
      const ws = new WebSocket(`wss://127.0.0.1:${server.address().port}/`, {
        ca: cert,
        servername: 'example.com'
      });
      const { error, code } = await outcome(ws);
      const reason = "Host: example.com. is not in the cert's altnames: " +
        'IP Address:127.0.0.1, DNS:localhost';
      assert.equal(error.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      assert.equal(error.message,
        `Hostname/IP does not match certificate's altnames: ${reason}`);
      assert.equal(error.reason, reason);
      assert.equal(error.host, 'example.com');
      const x509 = new X509Certificate(cert);
      assert.deepEqual(error.cert.raw, x509.raw);
      assert.equal(error.cert.subject.CN, 'localhost');
      assert.equal(error.cert.subjectaltname, 'IP Address:127.0.0.1, DNS:localhost');
      assert.equal(error.cert.fingerprint256, x509.fingerprint256);
      assert.equal(error.cert.issuerCertificate, error.cert); // self-signed
      assert.equal(code, 1006);
    });
  });

  describe('a failed handshake closes 1006', function () {
    it('a missing subprotocol: 1006, not the close frame sent next', async function () {
      const wss = await startServer(PeerWebSocketServer, {
        handleProtocols: () => false
      });
      cleanup.add(() => stopServer(wss));
      // graphql-ws's server answers so, and its client retries on 1006
      // but gives up on 4406.
      wss.on('connection', (peer) => peer.close(4406, 'Subprotocol not acceptable'));
      const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}/`,
        'graphql-transport-ws');
      const { error, code, reason, events } = await outcome(ws);
      assert.equal(error.message, 'Server sent no subprotocol');
      assert.equal(code, 1006);
      assert.equal(reason, '');
      assert.deepEqual(events, ['error', 'close']);
    });

    it('an answer that is not HTTP: HPE_INVALID_CONSTANT and 1006', async function () {
      // The server says one line and then nothing: the client must not
      // wait for the end of a head.
      const raw = await createRawServer((socket) => {
        socket.once('data', () => socket.write('foo\r\n'));
      });
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url);
      const { error, code, events } = await outcome(ws);
      assert.equal(error.code, 'HPE_INVALID_CONSTANT');
      assert.equal(error.message, 'Parse Error: Expected HTTP/, RTSP/ or ICE/');
      assert.equal(error.reason, 'Expected HTTP/, RTSP/ or ICE/');
      assert.equal(error.bytesParsed, 0);
      assert.deepEqual(error.rawPacket, Buffer.from('foo\r\n'));
      assert.equal(code, 1006);
      assert.deepEqual(events, ['error', 'close']);
    });
  });

  describe("ws 8.23.1's stricter checks", function () {
    for (const mode of ['port', 'server']) {
      for (const version of ['13.0', '013', '+13', '0xd', '8.0', '08']) {
        it(`{ ${mode} }: Sec-WebSocket-Version ${version} gets 400`, async function () {
          const { port } = await serverIn(mode);
          const res = await httpExchange(port, upgradeRequest({ version }));
          assert.equal(res.status, 400);
          assert.equal(res.headers['sec-websocket-version'], '13, 8');
          assert.equal(res.body, 'Missing or invalid Sec-WebSocket-Version header');
        });
      }

      it(`{ ${mode} }: Sec-WebSocket-Version 8 is accepted`, async function () {
        const { port } = await serverIn(mode);
        const res = await httpExchange(port, upgradeRequest({ version: 8 }));
        assert.equal(res.status, 101);
      });

      for (const value of ['09', '10.0', '+9', '0xa', '1e1', '010']) {
        it(`{ ${mode} }: client_max_window_bits=${value} gets 400`, async function () {
          const { port } = await serverIn(mode, { perMessageDeflate: true });
          const res = await httpExchange(port, upgradeRequest({
            headers: {
              'Sec-WebSocket-Extensions':
                `permessage-deflate; client_max_window_bits=${value}`
            }
          }));
          assert.equal(res.status, 400);
          assert.equal(res.body,
            'Invalid or unacceptable Sec-WebSocket-Extensions header');
        });
      }

      it(`{ ${mode} }: a quoted window bits value is accepted`, async function () {
        const { port } = await serverIn(mode, { perMessageDeflate: true });
        const res = await httpExchange(port, upgradeRequest({
          headers: {
            'Sec-WebSocket-Extensions':
              'permessage-deflate; server_max_window_bits="10"'
          }
        }));
        assert.equal(res.status, 101);
        assert.equal(res.headers['sec-websocket-extensions'],
          'permessage-deflate; server_max_window_bits=10');
      });
    }

    it('the client rejects server_max_window_bits=010 in the answer', async function () {
      const raw = await createRawServer(async (socket) => {
        const request = await readUpgradeRequest(socket);
        socket.write(upgradeResponse(request.headers['sec-websocket-key'], {
          headers: {
            'Sec-WebSocket-Extensions':
              'permessage-deflate; server_max_window_bits=010'
          }
        }));
      });
      cleanup.add(() => raw.close());
      const ws = new WebSocket(raw.url);
      const { error, code } = await outcome(ws);
      assert.equal(error.message, 'Invalid Sec-WebSocket-Extensions header');
      assert.equal(code, 1006);
    });

    it('send() takes a SharedArrayBuffer and views of one', async function () {
      const wss = await startServer(PeerWebSocketServer);
      cleanup.add(() => stopServer(wss));
      const got = [];
      const done = new Promise((resolve) => {
        wss.on('connection', (peer) => peer.on('message', (data) => {
          got.push(Buffer.from(data));
          if (got.length === 2) resolve();
        }));
      });
      const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}/`);
      cleanup.add(() => ws.terminate());
      await once(ws, 'open');
      const sab = new SharedArrayBuffer(4);
      new Uint8Array(sab).set([1, 2, 3, 4]);
      const sent = (data) => new Promise((resolve) => ws.send(data, resolve));
      const errors = await Promise.all([
        sent(sab),
        sent(new Uint8Array(sab, 1, 2))
      ]);
      await done;
      assert.deepEqual(got, [Buffer.from([1, 2, 3, 4]), Buffer.from([2, 3])]);
      assert.deepEqual(errors.map((err) => err == null), [true, true]);
    });

    it('a request that fails on a redirect is an error, not a throw', async function () {
      const server = await httpServer();
      server.on('upgrade', (req, socket) => {
        socket.end('HTTP/1.1 302 Found\r\nLocation: wss://127.0.0.1:1/\r\n\r\n');
      });
      // Not a key or certificate: the TLS request of the second hop fails.
      const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/`, {
        followRedirects: true,
        key: 'not a key',
        cert: 'not a certificate'
      });
      const redirects = [];
      ws.on('redirect', (url) => redirects.push(url));
      const { error, code, events } = await outcome(ws);
      assert.deepEqual(redirects, ['wss://127.0.0.1:1/']);
      assert.equal(error.code, 'ERR_OSSL_PEM_NO_START_LINE');
      assert.equal(code, 1006);
      assert.deepEqual(events, ['error', 'close']);
    });

    it('bad TLS options on the first request are an error too', async function () {
      const ws = new WebSocket('wss://127.0.0.1:1/', {
        key: 'not a key',
        cert: 'not a certificate'
      });
      const { error, code } = await outcome(ws);
      assert.equal(error.code, 'ERR_OSSL_PEM_NO_START_LINE');
      assert.equal(code, 1006);
    });

    describe('close reasons only as ws accepts them', function () {
      let wss;

      beforeEach(async function () {
        wss = await startServer(PeerWebSocketServer);
        wss.on('connection', (peer) => peer.on('error', () => {}));
        cleanup.add(() => stopServer(wss));
      });

      const CASES = [
        ['a 123-byte string', 'x'.repeat(123), null],
        ['a 124-byte string', 'x'.repeat(124),
          [RangeError, 'The message must not be greater than 123 bytes']],
        ['41 lone surrogates (123 bytes)', '\ud800'.repeat(41), null],
        ['42 lone surrogates (126 bytes)', '\ud800'.repeat(42),
          [RangeError, 'The message must not be greater than 123 bytes']],
        ['a 124-byte Buffer', Buffer.alloc(124),
          [RangeError, 'The message must not be greater than 123 bytes']],
        ['a Buffer', Buffer.from('bye'), null],
        ['a Uint16Array', new Uint16Array(2),
          [TypeError, 'Second argument must be a string or a Uint8Array']],
        ['an array', [1, 2], [TypeError, null, 'ERR_INVALID_ARG_TYPE']],
        ['an array-like object', { length: 3 },
          [TypeError, null, 'ERR_INVALID_ARG_TYPE']],
        ['an ArrayBuffer (no length: no reason)', new ArrayBuffer(4), null],
        ['a number (no length: no reason)', 5, null],
        ['an empty string', '', null]
      ];

      for (const [name, reason, expected] of CASES) {
        it(`${name}: ${expected ? expected[0].name : 'accepted'}`, async function () {
          const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}/`);
          const result = outcome(ws);
          await once(ws, 'open');
          if (expected === null) {
            ws.close(1000, reason);
            const { code } = await result;
            assert.equal(code, 1000);
            return;
          }
          assert.throws(() => ws.close(1000, reason), (err) => {
            assert.ok(err instanceof expected[0], String(err));
            if (expected[1] !== null) assert.equal(err.message, expected[1]);
            if (expected[2]) assert.equal(err.code, expected[2]);
            return true;
          });
          assert.equal(ws.readyState, WebSocket.OPEN);
          ws.terminate();
          await result;
        });
      }
    });
  });

  describe('graphql-ws sets handleProtocols after construction', function () {
    const { useServer } = require('graphql-ws/use/ws');
    const {
      GraphQLObjectType,
      GraphQLSchema,
      GraphQLString
    } = require('graphql');

    const schema = new GraphQLSchema({
      query: new GraphQLObjectType({
        name: 'Query',
        fields: { hello: { type: GraphQLString, resolve: () => 'world' } }
      })
    });

    for (const mode of ['port', 'server']) {
      it(`{ ${mode} }: graphql-transport-ws is chosen and a query runs`, async function () {
        const { wss, port } = await serverIn(mode);
        const disposable = useServer({ schema }, wss);
        cleanup.add(() => disposable.dispose());
        // Offered second: the default (the first one) would pick 'other'.
        const ws = new PeerWebSocket(`ws://127.0.0.1:${port}/`,
          ['other', 'graphql-transport-ws']);
        cleanup.add(() => ws.terminate());
        const messages = [];
        ws.on('message', (data) => messages.push(JSON.parse(data)));
        await once(ws, 'open');
        assert.equal(ws.protocol, 'graphql-transport-ws');
        ws.send(JSON.stringify({ type: 'connection_init' }));
        while (!messages.some((m) => m.type === 'connection_ack')) {
          await once(ws, 'message');
        }
        ws.send(JSON.stringify({
          id: '1',
          type: 'subscribe',
          payload: { query: '{ hello }' }
        }));
        while (!messages.some((m) => m.type === 'complete')) {
          await once(ws, 'message');
        }
        const next = messages.find((m) => m.type === 'next');
        assert.deepEqual(next, {
          id: '1',
          type: 'next',
          payload: { data: { hello: 'world' } }
        });
      });
    }
  });

  describe('unexpected-response and upgrade events', function () {
    it("the response ends ('end') after req.abort()", async function () {
      const server = await httpServer();
      server.on('upgrade', (req, socket) => {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nabc');
      });
      const ws = new WebSocket(`ws://127.0.0.1:${server.address().port}/`);
      const [req, res] = await once(ws, 'unexpected-response');
      assert.ok(res instanceof http.IncomingMessage);
      assert.equal(res.statusCode, 401);
      res.resume();
      const ended = once(res, 'end');
      req.abort();
      await ended;
      assert.equal(res.complete, true);
      // ws leaves the WebSocket to the listener: it is still connecting.
      const closed = outcome(ws);
      ws.terminate();
      await closed;
    });

    it("the 'upgrade' response is an http.IncomingMessage", async function () {
      const wss = await startServer(PeerWebSocketServer);
      cleanup.add(() => stopServer(wss));
      const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}/`);
      cleanup.add(() => ws.terminate());
      const opened = once(ws, 'open');
      const [res] = await once(ws, 'upgrade');
      assert.ok(res instanceof http.IncomingMessage);
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers.upgrade, 'websocket');
      await opened;
    });
  });

  describe('a non-GET upgrade request', function () {
    const POST = upgradeRequest().replace(/^GET /, 'POST ');

    for (const mode of ['port', 'server']) {
      it(`{ ${mode} }: 405 "Invalid HTTP method", as ws answers`, async function () {
        const { port } = await serverIn(mode);
        const res = await httpExchange(port, POST);
        assert.equal(res.status, 405);
        assert.equal(res.body, 'Invalid HTTP method');
      });
    }

    it("{ server }: reaches 'wsClientError' when listened for", async function () {
      const { wss, port } = await serverIn('server');
      const seen = [];
      wss.on('wsClientError', (err, socket, req) => {
        seen.push([err.message, req.method]);
        socket.end('HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\n\r\n');
      });
      const res = await httpExchange(port, POST);
      assert.equal(res.status, 418);
      assert.deepEqual(seen, [['Invalid HTTP method', 'POST']]);
    });
  });
});
