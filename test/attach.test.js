'use strict';

// WebSocketServer attached to Node's own servers, the way ws users use it:
// `{ server }` (with and without `path`), `{ noServer }` + `handleUpgrade`
// from an 'upgrade' listener (ws's README examples), verifyClient,
// handleProtocols, the 'headers' and 'wsClientError' events, ws's handshake
// rejections byte for byte, and an ordinary HTTP app answering requests on
// the same port while WebSocket clients talk.
//
// Every test runs over http and over https (a self-signed certificate made
// with the openssl CLI once per run). Tests that involve a client run with
// the real ws client and with the client under test (over https only when it
// supports wss://). Exact bytes are checked with raw net/tls sockets.

const assert = require('node:assert/strict');
const http = require('http');
const https = require('https');

const { WebSocket, WebSocketServer, PeerWebSocket, isNative } = require('./helpers/impl');
const {
  Cleanup,
  delay,
  dispose,
  recordEvents,
  stopServer,
  waitFor
} = require('./helpers/util');
const {
  FrameReader,
  OP,
  SAMPLE_KEY,
  acceptKey,
  frame,
  readHead,
  parseHead,
  upgradeRequest
} = require('./helpers/raw');
const {
  TRANSPORTS,
  clientsFor,
  closeServer,
  createServer,
  getCert,
  httpUrl,
  listen,
  rawConnect,
  rawExchange,
  request,
  wsUrl
} = require('./helpers/attach');

const cleanup = new Cleanup();
let tlsOptions; // { key, cert }, made in the root before() hook

/** Resolve on 'open'; reject on 'error' or 'close' before it. */
function opened(ws) {
  return new Promise((resolve, reject) => {
    if (ws.readyState === 1) {
      resolve();
      return;
    }
    function off() {
      ws.removeListener('open', onOpen);
      ws.removeListener('error', onError);
      ws.removeListener('close', onClose);
    }
    function onOpen() {
      off();
      resolve();
    }
    function onError(err) {
      off();
      reject(err);
    }
    function onClose(code) {
      off();
      reject(new Error(`closed (${code}) before 'open'`));
    }
    ws.on('open', onOpen);
    ws.on('error', onError);
    ws.on('close', onClose);
  });
}

/** Resolve with the next `n` messages as `[{ text, data, isBinary }]`. */
function messages(ws, n) {
  return new Promise((resolve) => {
    const got = [];
    function onMessage(data, isBinary) {
      got.push({ data: Buffer.from(data), text: Buffer.from(data).toString(), isBinary });
      if (got.length === n) {
        ws.removeListener('message', onMessage);
        resolve(got);
      }
    }
    ws.on('message', onMessage);
  });
}

/** Resolve with `[code, reason]` on 'close'. */
function closed(ws) {
  if (ws.readyState === 3) return Promise.resolve([undefined, '']);
  return waitFor(ws, 'close').then(([code, reason]) => [
    code,
    Buffer.from(reason).toString()
  ]);
}

/** ws's abortHandshake() response, exactly as it writes it. */
function rejection(status, reason, body, extraHeaders = '') {
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: text/html\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    extraHeaders +
    '\r\n' +
    body
  );
}

/** The 101 response ws writes for SAMPLE_KEY and no subprotocol. */
const SAMPLE_101 =
  'HTTP/1.1 101 Switching Protocols\r\n' +
  'Upgrade: websocket\r\n' +
  'Connection: Upgrade\r\n' +
  `Sec-WebSocket-Accept: ${acceptKey(SAMPLE_KEY)}\r\n\r\n`;

/**
 * Everything a test needs for one transport: servers, WebSocketServers,
 * clients and raw sockets, each released by `cleanup` after the test.
 */
function context(transport) {
  const secure = transport === 'https';

  const t = {
    transport,
    secure,

    /** The certificate clients trust. */
    get cert() {
      return tlsOptions.cert;
    },

    /** An http(s) server listening on 127.0.0.1: `{ server, port }`. */
    async server(handler) {
      const server = createServer(transport, tlsOptions, handler);
      cleanup.add(() => closeServer(server));
      const port = await listen(server);
      return { server, port };
    },

    /** A WebSocketServer (impl under test), closed after the test. */
    wss(options) {
      const wss = new WebSocketServer(options);
      cleanup.add(() => stopServer(wss));
      return wss;
    },

    /** Client options with the certificate to trust over https. */
    clientOptions(options = {}) {
      return secure ? { ca: tlsOptions.cert, ...options } : options;
    },

    /** A client of class `Client`, disposed after the test. */
    client(Client, port, path = '/', protocols, options) {
      const ws = new Client(
        wsUrl(transport, port, path),
        protocols,
        t.clientOptions(options)
      );
      cleanup.add(() => dispose(ws));
      return ws;
    },

    /** A raw net/tls socket, destroyed after the test. */
    async raw(port) {
      const socket = await rawConnect(transport, port, tlsOptions.cert);
      cleanup.add(() => socket.destroy());
      return socket;
    },

    /** Send bytes on a fresh raw socket, read the answer until closed. */
    exchange(port, data) {
      return rawExchange(transport, port, tlsOptions.cert, data);
    },

    /** An http(s) request answered by the server (no agent unless given). */
    request(port, path, options = {}, body) {
      return request(
        transport,
        httpUrl(transport, port, path),
        t.clientOptions({ agent: false, ...options }),
        body
      );
    }
  };

  return t;
}

/**
 * Open a raw socket, send the upgrade request (plus `extra` bytes in the same
 * write), read the 101 and return `{ socket, reader, head, headers }`.
 */
async function rawUpgrade(t, port, opts = {}, extra = Buffer.alloc(0)) {
  const socket = await t.raw(port);
  socket.write(Buffer.concat([Buffer.from(upgradeRequest(opts)), extra]));
  const { head, rest } = await readHead(socket);
  const reader = new FrameReader(socket, rest);
  socket.resume();
  return { socket, reader, head, ...parseHead(head) };
}

describe('WebSocketServer attached to a Node http/https server', function () {
  this.timeout(10000);

  before(async function () {
    this.timeout(30000);
    tlsOptions = await getCert();
  });

  afterEach(() => cleanup.run());

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, function () {
      const t = context(transport);

      describe('{ server }', function () {
        for (const [name, Client] of clientsFor(transport)) {
          it(`echoes text and binary both ways, and the server still answers HTTP (${name})`, async function () {
            const { server, port } = await t.server((req, res) => {
              res.writeHead(200, { 'Content-Type': 'text/plain' });
              res.end(`http ${req.url}`);
            });
            const wss = t.wss({ server });
            wss.on('connection', (ws) => {
              ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
              ws.send('from server');
              ws.send(Buffer.from([1, 2, 3]));
            });

            const connection = waitFor(wss, 'connection');
            const ws = t.client(Client, port, '/echo?x=1');
            const got = messages(ws, 4);
            await opened(ws);
            const [serverWs, req] = await connection;
            assert.ok(serverWs instanceof WebSocket);
            assert.equal(req.url, '/echo?x=1');
            assert.equal(req.headers.upgrade, 'websocket');
            assert.equal(Boolean(req.socket.encrypted), t.secure);
            assert.ok(wss.clients.has(serverWs));

            ws.send('hello');
            ws.send(Buffer.from([0, 255, 7]));
            const [a, b, c, d] = await got;
            assert.deepEqual([a.text, a.isBinary], ['from server', false]);
            assert.deepEqual([[...b.data], b.isBinary], [[1, 2, 3], true]);
            assert.deepEqual([c.text, c.isBinary], ['hello', false]);
            assert.deepEqual([[...d.data], d.isBinary], [[0, 255, 7], true]);

            const res = await t.request(port, '/page');
            assert.equal(res.status, 200);
            assert.equal(res.body, 'http /page');

            ws.close(1000, 'done');
            assert.deepEqual(await closed(serverWs), [1000, 'done']);
          });
        }

        it('address() is the http server\'s address, and null once closed', async function () {
          const { server } = await t.server();
          const wss = t.wss({ server });
          assert.deepEqual(wss.address(), server.address());
          await new Promise((resolve) => wss.close(resolve));
          assert.equal(wss.address(), null);
          assert.ok(server.listening);
        });

        it("emits the http server's 'listening' and 'error' events", async function () {
          const server = createServer(transport, tlsOptions);
          cleanup.add(() => closeServer(server));
          const wss = t.wss({ server });
          const listening = waitFor(wss, 'listening');
          await listen(server);
          await listening;

          const other = createServer(transport, tlsOptions);
          cleanup.add(() => closeServer(other));
          const otherWss = t.wss({ server: other });
          const error = waitFor(otherWss, 'error');
          other.listen(server.address().port, '127.0.0.1');
          const [err] = await error;
          assert.equal(err.code, 'EADDRINUSE');
        });

        it('a path: other paths get 400 "Bad Request", query strings are ignored', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ server, path: '/chat' });
          let clientErrors = 0;
          wss.on('wsClientError', () => clientErrors++);

          const res = await t.exchange(port, upgradeRequest({ path: '/other' }));
          assert.equal(res.raw, rejection(400, 'Bad Request', 'Bad Request'));
          // The path check is not a client error: no 'wsClientError'.
          assert.equal(clientErrors, 0);

          const connection = waitFor(wss, 'connection');
          const ws = t.client(PeerWebSocket, port, '/chat?room=1');
          await opened(ws);
          const [, req] = await connection;
          assert.equal(req.url, '/chat?room=1');
        });

        it("several { server, path } servers on one server: each answers the others' paths with 400", async function () {
          // Every WebSocketServer adds its own 'upgrade' listener and rejects
          // what is not its path, so with two of them every upgrade gets a
          // 400 from one of them. ws's README shares a server with noServer
          // and one 'upgrade' listener instead (next test).
          const { server, port } = await t.server();
          const a = t.wss({ server, path: '/a' });
          const b = t.wss({ server, path: '/b' });
          const connections = [];
          a.on('connection', (ws) => connections.push(['a', ws, recordEvents(ws)]));
          b.on('connection', (ws) => connections.push(['b', ws, recordEvents(ws)]));

          // /b: a's listener runs first and rejects it; b then finds the
          // socket no longer writable and destroys it.
          const resB = await t.exchange(port, upgradeRequest({ path: '/b' }));
          assert.equal(resB.raw, rejection(400, 'Bad Request', 'Bad Request'));
          assert.equal(connections.length, 0);

          if (!isNative) {
            // /a: a completes the handshake, then b writes its 400 onto the
            // same socket and ends it.
            const resA = await t.exchange(port, upgradeRequest({ path: '/a' }));
            assert.equal(
              resA.raw,
              SAMPLE_101 + rejection(400, 'Bad Request', 'Bad Request')
            );
            assert.equal(connections.length, 1);
            assert.equal(connections[0][0], 'a');
            // a's connection dies with the socket.
            const [code] = await connections[0][2].close;
            assert.equal(code, 1006);
            return;
          }
          // A deliberate departure from ws (README): once a has taken the
          // socket over, b's 400 has no socket left to go to, so /a works.
          const ws = t.client(PeerWebSocket, port, '/a');
          await opened(ws);
          assert.equal(connections.length, 1);
          assert.equal(connections[0][0], 'a');
          ws.close();
          const [code] = await connections[0][2].close;
          assert.equal(code, 1005);
        });

        it('the upgrade request and the first frame in one write: nothing is lost (head)', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ server });
          wss.on('connection', (ws) => {
            ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
          });

          const { reader, first } = await rawUpgrade(
            t,
            port,
            {},
            Buffer.concat([
              frame({ payload: 'first' }),
              frame({ opcode: OP.BINARY, payload: Buffer.from([9, 8, 7]) })
            ])
          );
          assert.equal(first, 'HTTP/1.1 101 Switching Protocols');
          const f1 = await reader.next();
          assert.equal(f1.opcode, OP.TEXT);
          assert.equal(f1.masked, false);
          assert.equal(f1.payload.toString(), 'first');
          const f2 = await reader.next();
          assert.equal(f2.opcode, OP.BINARY);
          assert.deepEqual([...f2.payload], [9, 8, 7]);
        });

        for (const allow of [true, false]) {
          it(`allowSynchronousEvents: ${allow}`, async function () {
            // Three frames arrive in one read. With the default (true) ws
            // emits the three 'message' events in one go; with false each
            // one comes in its own macrotask, so microtasks queued by one
            // listener run before the next message.
            const { server, port } = await t.server();
            const wss = t.wss({ server, allowSynchronousEvents: allow });
            const order = [];
            const done = new Promise((resolve) => {
              wss.on('connection', (ws) => {
                let microtasks = 0;
                ws.on('message', (data) => {
                  order.push(data.toString());
                  queueMicrotask(() => {
                    order.push('microtask');
                    if (++microtasks === 3) resolve();
                  });
                });
              });
            });
            await rawUpgrade(
              t,
              port,
              {},
              Buffer.concat(['m1', 'm2', 'm3'].map((p) => frame({ payload: p })))
            );
            await done;
            assert.deepEqual(
              order,
              allow
                ? ['m1', 'm2', 'm3', 'microtask', 'microtask', 'microtask']
                : ['m1', 'microtask', 'm2', 'microtask', 'm3', 'microtask']
            );
          });
        }
      });

      describe('{ noServer } and handleUpgrade (ws README examples)', function () {
        for (const [name, Client] of clientsFor(transport)) {
          it(`multiple servers sharing a single HTTP/S server (${name})`, async function () {
            const { server, port } = await t.server();
            const wss1 = t.wss({ noServer: true });
            const wss2 = t.wss({ noServer: true });
            wss1.on('connection', (ws, req) => ws.send(`wss1 ${req.url}`));
            wss2.on('connection', (ws, req) => ws.send(`wss2 ${req.url}`));

            server.on('upgrade', function upgrade(request, socket, head) {
              const { pathname } = new URL(request.url, 'wss://base.url');
              if (pathname === '/foo') {
                wss1.handleUpgrade(request, socket, head, function done(ws) {
                  wss1.emit('connection', ws, request);
                });
              } else if (pathname === '/bar') {
                wss2.handleUpgrade(request, socket, head, function done(ws) {
                  wss2.emit('connection', ws, request);
                });
              } else {
                socket.destroy();
              }
            });

            const foo = t.client(Client, port, '/foo?a=1');
            const fooMsg = messages(foo, 1);
            const bar = t.client(Client, port, '/bar');
            const barMsg = messages(bar, 1);
            await Promise.all([opened(foo), opened(bar)]);
            assert.equal((await fooMsg)[0].text, 'wss1 /foo?a=1');
            assert.equal((await barMsg)[0].text, 'wss2 /bar');
            assert.equal(wss1.clients.size, 1);
            assert.equal(wss2.clients.size, 1);

            const baz = t.client(Client, port, '/baz');
            const rec = recordEvents(baz);
            const [code] = await rec.close;
            assert.equal(code, 1006);
            assert.deepEqual(rec.log, ['error', 'close']);
            assert.equal(wss1.clients.size + wss2.clients.size, 2);
          });

          it(`client authentication in the 'upgrade' listener (${name})`, async function () {
            const { server, port } = await t.server();
            const wss = t.wss({ noServer: true });
            const seen = [];
            wss.on('connection', function connection(ws, request, client) {
              ws.on('message', (data) => {
                seen.push(`${data} from ${client.user}`);
                ws.send(`hi ${client.user}`);
              });
            });

            function authenticate(request, next) {
              // Asynchronous, as a session store lookup would be.
              setImmediate(() => {
                const token = new URL(request.url, 'http://x').searchParams.get('token');
                if (token === 'good') next(null, { user: 'alice' });
                else next(new Error('bad token'));
              });
            }

            function onSocketError() {}

            server.on('upgrade', function upgrade(request, socket, head) {
              socket.on('error', onSocketError);
              authenticate(request, function next(err, client) {
                if (err || !client) {
                  socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n');
                  socket.destroy();
                  return;
                }
                socket.removeListener('error', onSocketError);
                wss.handleUpgrade(request, socket, head, function done(ws) {
                  wss.emit('connection', ws, request, client);
                });
              });
            });

            // A bad token: the client sees the 401.
            const bad = t.client(Client, port, '/?token=bad');
            const rec = recordEvents(bad, ['open', 'error', 'close', 'unexpected-response']);
            const [, res] = await waitFor(bad, 'unexpected-response');
            assert.equal(res.statusCode, 401);
            bad.terminate();
            await rec.close;
            assert.ok(!rec.log.includes('open'));
            assert.equal(wss.clients.size, 0);

            // Without an 'unexpected-response' listener: an error.
            const bad2 = t.client(Client, port, '/?token=nope');
            const rec2 = recordEvents(bad2);
            assert.equal((await rec2.error).message, 'Unexpected server response: 401');
            assert.equal((await rec2.close)[0], 1006);

            // A good one: connected, and 'connection' got the client.
            const good = t.client(Client, port, '/?token=good');
            const reply = messages(good, 1);
            await opened(good);
            good.send('hello');
            assert.equal((await reply)[0].text, 'hi alice');
            assert.deepEqual(seen, ['hello from alice']);
          });
        }

        it('the upgrade request and frames sent before a delayed handleUpgrade are all delivered', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ noServer: true });
          wss.on('connection', (ws) => {
            ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
          });
          const firstFrame = frame({ payload: 'one' });
          const heads = [];
          const upgraded = new Promise((resolve) => {
            server.on('upgrade', (req, socket, head) => {
              heads.push(Buffer.from(head));
              // As if an asynchronous check ran first.
              setTimeout(() => {
                wss.handleUpgrade(req, socket, head, (ws) => {
                  wss.emit('connection', ws, req);
                  resolve();
                });
              }, 50);
            });
          });

          const socket = await t.raw(port);
          socket.write(Buffer.concat([Buffer.from(upgradeRequest()), firstFrame]));
          await delay(10);
          // Still before handleUpgrade: the server holds these unread.
          socket.write(frame({ payload: 'two' }));
          socket.write(frame({ opcode: OP.BINARY, payload: Buffer.from([3]) }));

          const { head, rest } = await readHead(socket);
          assert.equal(head + '\r\n\r\n', SAMPLE_101);
          await upgraded;
          assert.equal(heads.length, 1);
          assert.deepEqual(heads[0], firstFrame);

          const reader = new FrameReader(socket, rest);
          socket.resume();
          const got = [await reader.next(), await reader.next(), await reader.next()];
          assert.deepEqual(
            got.map((f) => [f.opcode, f.payload.toString('hex')]),
            [
              [OP.TEXT, Buffer.from('one').toString('hex')],
              [OP.TEXT, Buffer.from('two').toString('hex')],
              [OP.BINARY, '03']
            ]
          );
        });

        it('address() throws in noServer mode', function () {
          const wss = t.wss({ noServer: true });
          assert.throws(() => wss.address(), {
            name: 'Error',
            message: 'The server is operating in "noServer" mode'
          });
        });

        it('handleUpgrade() twice with the same socket throws', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ noServer: true });
          let thrown = null;
          let secondCallback = false;
          server.on('upgrade', (req, socket, head) => {
            wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
            try {
              wss.handleUpgrade(req, socket, head, () => {
                secondCallback = true;
              });
            } catch (err) {
              thrown = err;
            }
          });
          const connection = waitFor(wss, 'connection');
          const ws = t.client(PeerWebSocket, port);
          await opened(ws);
          await connection;
          assert.ok(thrown instanceof Error);
          assert.equal(
            thrown.message,
            'server.handleUpgrade() was called more than once with the same ' +
              'socket, possibly due to a misconfiguration'
          );
          assert.equal(secondCallback, false);
          // The first connection is unaffected.
          const [serverWs] = await connection;
          const echo = messages(ws, 1);
          serverWs.send('still here');
          assert.equal((await echo)[0].text, 'still here');
        });

        it('handleUpgrade() after close() answers 503', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ noServer: true });
          server.on('upgrade', (req, socket, head) => {
            wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
          });
          await new Promise((resolve) => wss.close(resolve));
          const res = await t.exchange(port, upgradeRequest());
          assert.equal(
            res.raw,
            rejection(503, 'Service Unavailable', 'Service Unavailable')
          );
        });
      });

      describe('verifyClient', function () {
        for (const [name, Client] of clientsFor(transport)) {
          it(`sync: gets { origin, secure, req }; true accepts (${name})`, async function () {
            const { server, port } = await t.server();
            const infos = [];
            const wss = t.wss({
              server,
              verifyClient(info) {
                infos.push(info);
                return true;
              }
            });
            const connection = waitFor(wss, 'connection');
            const ws = t.client(Client, port, '/v?x=1', undefined, {
              origin: 'https://example.org'
            });
            await opened(ws);
            const [, req] = await connection;
            assert.equal(infos.length, 1);
            const info = infos[0];
            assert.deepEqual(Object.keys(info).sort(), ['origin', 'req', 'secure']);
            assert.equal(info.origin, 'https://example.org');
            assert.equal(info.secure, t.secure);
            assert.equal(info.req, req);
            assert.equal(info.req.url, '/v?x=1');
          });

          it(`sync: false answers 401 (${name})`, async function () {
            const { server, port } = await t.server();
            const wss = t.wss({ server, verifyClient: () => false });
            let connections = 0;
            wss.on('connection', () => connections++);
            const ws = t.client(Client, port);
            const rec = recordEvents(ws);
            assert.equal((await rec.error).message, 'Unexpected server response: 401');
            assert.equal((await rec.close)[0], 1006);
            assert.equal(connections, 0);
          });

          it(`async: cb(false, 403, 'Forbidden', headers) (${name})`, async function () {
            const { server, port } = await t.server();
            t.wss({
              server,
              verifyClient(info, cb) {
                setTimeout(() => cb(false, 403, 'Forbidden', { 'X-Reason': 'x' }), 10);
              }
            });
            const ws = t.client(Client, port);
            const rec = recordEvents(ws);
            const [, res] = await waitFor(ws, 'unexpected-response');
            assert.equal(res.statusCode, 403);
            assert.equal(res.statusMessage, 'Forbidden');
            assert.equal(res.headers['x-reason'], 'x');
            assert.equal(res.headers['content-length'], '9');
            assert.deepEqual(rec.log, []);
            // The listener owns the outcome; terminating aborts the handshake.
            ws.terminate();
            assert.equal(
              (await rec.error).message,
              'WebSocket was closed before the connection was established'
            );
            assert.equal((await rec.close)[0], 1006);
          });

          it(`async: cb(true) accepts (${name})`, async function () {
            const { server, port } = await t.server();
            const wss = t.wss({
              server,
              verifyClient(info, cb) {
                setImmediate(() => cb(info.req.url === '/ok'));
              }
            });
            const connection = waitFor(wss, 'connection');
            const ws = t.client(Client, port, '/ok');
            await opened(ws);
            await connection;
          });
        }

        it('the rejections byte for byte', async function () {
          const { server, port } = await t.server();
          const async = t.wss({
            noServer: true,
            verifyClient(info, cb) {
              const u = info.req.url;
              if (u === '/403') cb(false, 403, 'Forbidden', { 'X-Reason': 'x' });
              else if (u === '/custom') cb(false, 418, 'No tea here');
              else setImmediate(() => cb(false));
            }
          });
          const sync = t.wss({ noServer: true, verifyClient: () => false });
          server.on('upgrade', (req, socket, head) => {
            const wss = req.url === '/sync' ? sync : async;
            wss.handleUpgrade(req, socket, head, () => {});
          });

          assert.equal(
            (await t.exchange(port, upgradeRequest({ path: '/403' }))).raw,
            rejection(403, 'Forbidden', 'Forbidden', 'X-Reason: x\r\n')
          );
          // The message is the body; the status line keeps the standard text.
          assert.equal(
            (await t.exchange(port, upgradeRequest({ path: '/custom' }))).raw,
            rejection(418, "I'm a Teapot", 'No tea here')
          );
          // cb(false) and a sync false: 401.
          assert.equal(
            (await t.exchange(port, upgradeRequest({ path: '/none' }))).raw,
            rejection(401, 'Unauthorized', 'Unauthorized')
          );
          assert.equal(
            (await t.exchange(port, upgradeRequest({ path: '/sync' }))).raw,
            rejection(401, 'Unauthorized', 'Unauthorized')
          );
        });
      });

      describe('handleProtocols, the headers event', function () {
        for (const [name, Client] of clientsFor(transport)) {
          it(`handleProtocols(protocols Set, req) picks one (${name})`, async function () {
            const { server, port } = await t.server();
            const calls = [];
            const wss = t.wss({
              server,
              handleProtocols(protocols, req) {
                calls.push({ isSet: protocols instanceof Set, list: [...protocols], url: req.url });
                return protocols.has('b') ? 'b' : false;
              }
            });
            const connection = waitFor(wss, 'connection');
            const ws = t.client(Client, port, '/p', ['a', 'b', 'c']);
            await opened(ws);
            const [serverWs] = await connection;
            assert.equal(ws.protocol, 'b');
            assert.equal(serverWs.protocol, 'b');
            assert.deepEqual(calls, [{ isSet: true, list: ['a', 'b', 'c'], url: '/p' }]);
          });

          it(`handleProtocols returning false: no protocol header, the client fails (${name})`, async function () {
            const { server, port } = await t.server();
            const wss = t.wss({ server, handleProtocols: () => false });
            const connection = waitFor(wss, 'connection');
            const ws = t.client(Client, port, '/', ['x']);
            const rec = recordEvents(ws);
            const [serverWs] = await connection;
            assert.equal(serverWs.protocol, '');
            assert.equal((await rec.error).message, 'Server sent no subprotocol');
            assert.equal((await rec.close)[0], 1006);
            assert.ok(!rec.log.includes('open'));
            assert.equal((await closed(serverWs))[0], 1006);
          });

          it(`'headers' can add a Set-Cookie that the client sees in 'upgrade' (${name})`, async function () {
            const { server, port } = await t.server();
            const wss = t.wss({ server });
            const seen = [];
            wss.on('headers', (headers, req) => {
              seen.push({ headers: [...headers], url: req.url });
              headers.push('Set-Cookie: session=abc; HttpOnly');
            });
            const ws = t.client(Client, port, '/h');
            const upgrade = waitFor(ws, 'upgrade');
            await opened(ws);
            const [res] = await upgrade;
            assert.equal(res.statusCode, 101);
            assert.deepEqual(res.headers['set-cookie'], ['session=abc; HttpOnly']);
            assert.equal(seen.length, 1);
            assert.equal(seen[0].url, '/h');
            const h = seen[0].headers;
            assert.equal(h.length, 4);
            assert.deepEqual(h.slice(0, 3), [
              'HTTP/1.1 101 Switching Protocols',
              'Upgrade: websocket',
              'Connection: Upgrade'
            ]);
            assert.match(h[3], /^Sec-WebSocket-Accept: [+/0-9A-Za-z]{27}=$/);
          });
        }

        it("'headers' changes go out on the wire as they are", async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ server, handleProtocols: (p) => [...p][1] });
          wss.on('headers', (headers) => {
            headers.push('Set-Cookie: a=1');
            headers.push('X-Extra: yes');
          });
          const { head } = await rawUpgrade(t, port, {
            headers: { 'Sec-WebSocket-Protocol': 'one, two' }
          });
          assert.equal(
            head + '\r\n\r\n',
            SAMPLE_101.replace(
              '\r\n\r\n',
              '\r\nSec-WebSocket-Protocol: two\r\nSet-Cookie: a=1\r\nX-Extra: yes\r\n\r\n'
            )
          );
        });
      });

      describe("handshake rejections and 'wsClientError'", function () {
        const STD = {
          upgrade: 'Upgrade: websocket\r\n',
          connection: 'Connection: Upgrade\r\n',
          key: `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\n`,
          version: 'Sec-WebSocket-Version: 13\r\n'
        };
        function req(method, parts, extra = '') {
          const p = { ...STD, ...parts };
          return (
            `${method} / HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            p.upgrade + p.connection + p.key + p.version + extra + '\r\n'
          );
        }

        async function setup() {
          const { server, port } = await t.server((request, res) => {
            const body = `plain ${request.method} upgrade=${request.headers.upgrade}`;
            res.writeHead(200, {
              Connection: 'close',
              'Content-Type': 'text/plain',
              'Content-Length': Buffer.byteLength(body)
            });
            res.end(body);
          });
          const wss = t.wss({ server });
          return { server, port, wss };
        }

        const cases = [
          ['a wrong method: 405', req('POST', {}, 'Content-Length: 0\r\n'),
            rejection(405, 'Method Not Allowed', 'Invalid HTTP method')],
          ['Upgrade: foo: 400', req('GET', { upgrade: 'Upgrade: foo\r\n' }),
            rejection(400, 'Bad Request', 'Invalid Upgrade header')],
          ['a bad Sec-WebSocket-Key: 400', req('GET', { key: 'Sec-WebSocket-Key: abc\r\n' }),
            rejection(400, 'Bad Request', 'Missing or invalid Sec-WebSocket-Key header')],
          ['no Sec-WebSocket-Key: 400', req('GET', { key: '' }),
            rejection(400, 'Bad Request', 'Missing or invalid Sec-WebSocket-Key header')],
          ['Sec-WebSocket-Version: 12: 400 with Sec-WebSocket-Version: 13, 8',
            req('GET', { version: 'Sec-WebSocket-Version: 12\r\n' }),
            rejection(400, 'Bad Request', 'Missing or invalid Sec-WebSocket-Version header',
              'Sec-WebSocket-Version: 13, 8\r\n')],
          ['a bad Sec-WebSocket-Protocol: 400', req('GET', {}, 'Sec-WebSocket-Protocol: a, a\r\n'),
            rejection(400, 'Bad Request', 'Invalid Sec-WebSocket-Protocol header')]
        ];

        for (const [title, request, expected] of cases) {
          it(title, async function () {
            const { port, wss } = await setup();
            let connections = 0;
            wss.on('connection', () => connections++);
            const res = await t.exchange(port, request);
            assert.equal(res.raw, expected);
            assert.equal(connections, 0);
          });
        }

        it("no Upgrade header: not an upgrade, the http server's 'request' listener answers", async function () {
          const { port } = await setup();
          for (const request of [
            req('GET', { upgrade: '' }),
            req('GET', { connection: 'Connection: keep-alive\r\n' })
          ]) {
            const res = await t.exchange(port, request);
            assert.equal(res.status, 200);
            assert.match(res.body, /^plain GET upgrade=/);
          }
        });

        it("'wsClientError' gets (err, socket, req) and writes its own response", async function () {
          const { port, wss } = await setup();
          const calls = [];
          wss.on('wsClientError', (err, socket, request) => {
            calls.push({ err, sameSocket: socket === request.socket, url: request.url });
            socket.end('HTTP/1.1 400 Bad Request\r\nX-Handled: by-me\r\n\r\n');
          });
          const res = await t.exchange(
            port,
            req('GET', { key: 'Sec-WebSocket-Key: not-a-key\r\n' })
          );
          assert.equal(res.raw, 'HTTP/1.1 400 Bad Request\r\nX-Handled: by-me\r\n\r\n');
          assert.equal(calls.length, 1);
          assert.ok(calls[0].err instanceof Error);
          assert.equal(calls[0].err.message, 'Missing or invalid Sec-WebSocket-Key header');
          assert.equal(calls[0].sameSocket, true);
          assert.equal(calls[0].url, '/');
        });
      });

      describe('options', function () {
        it('clientTracking: true (a Set) and false (undefined)', async function () {
          const { server, port } = await t.server();
          const tracked = t.wss({ noServer: true });
          const untracked = t.wss({ noServer: true, clientTracking: false });
          server.on('upgrade', (req, socket, head) => {
            const wss = req.url === '/u' ? untracked : tracked;
            wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
          });
          assert.ok(tracked.clients instanceof Set);
          assert.equal(untracked.clients, undefined);

          const c1 = waitFor(tracked, 'connection');
          const a = t.client(PeerWebSocket, port, '/t');
          await opened(a);
          const [serverA] = await c1;
          assert.deepEqual([...tracked.clients], [serverA]);

          const c2 = waitFor(untracked, 'connection');
          const b = t.client(PeerWebSocket, port, '/u');
          await opened(b);
          const [serverB] = await c2;
          // Nobody tracks it: close it here.
          cleanup.add(() => dispose(serverB));
          assert.equal(untracked.clients, undefined);
          assert.equal(tracked.clients.size, 1);
          const echo = messages(b, 1);
          serverB.send('untracked');
          assert.equal((await echo)[0].text, 'untracked');

          a.close();
          await closed(serverA);
          assert.equal(tracked.clients.size, 0);
        });

        it('skipUTF8Validation', async function () {
          const { server, port } = await t.server();
          const strict = t.wss({ noServer: true });
          const lax = t.wss({ noServer: true, skipUTF8Validation: true });
          server.on('upgrade', (req, socket, head) => {
            const wss = req.url === '/lax' ? lax : strict;
            wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
          });
          const invalid = Buffer.from([0x68, 0x69, 0xff, 0xfe]);

          const laxConn = waitFor(lax, 'connection');
          const a = t.client(PeerWebSocket, port, '/lax');
          await opened(a);
          const [serverA] = await laxConn;
          const got = messages(serverA, 1);
          a.send(invalid, { binary: false });
          const [m] = await got;
          assert.equal(m.isBinary, false);
          assert.deepEqual(m.data, invalid);

          const strictConn = waitFor(strict, 'connection');
          const b = t.client(PeerWebSocket, port, '/strict');
          const recB = recordEvents(b);
          await opened(b);
          const [serverB] = await strictConn;
          const serverRec = recordEvents(serverB);
          b.send(invalid, { binary: false });
          assert.equal((await recB.close)[0], 1007);
          const err = await serverRec.error;
          assert.equal(err.code, 'WS_ERR_INVALID_UTF8');
          assert.equal(err.message, 'Invalid WebSocket frame: invalid UTF-8 sequence');
        });

        it('autoPong: false leaves pings unanswered', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ server, autoPong: false });
          const connection = waitFor(wss, 'connection');
          const ws = t.client(PeerWebSocket, port);
          await opened(ws);
          const [serverWs] = await connection;
          const pings = [];
          serverWs.on('ping', (data) => pings.push(data.toString()));
          const pongs = [];
          ws.on('pong', (data) => pongs.push(data.toString()));

          ws.ping('are you there');
          await delay(150);
          assert.deepEqual(pings, ['are you there']);
          assert.deepEqual(pongs, []);

          // The application answers itself.
          const pong = waitFor(ws, 'pong');
          serverWs.pong('yes');
          assert.equal((await pong)[0].toString(), 'yes');
        });

        it('autoPong: true (the default) answers pings', async function () {
          const { server, port } = await t.server();
          t.wss({ server });
          const ws = t.client(PeerWebSocket, port);
          await opened(ws);
          const pong = waitFor(ws, 'pong');
          ws.ping('p');
          assert.equal((await pong)[0].toString(), 'p');
        });

        it('maxPayload: a bigger message closes with 1009', async function () {
          const { server, port } = await t.server();
          const wss = t.wss({ server, maxPayload: 10 });
          const serverSide = [];
          wss.on('connection', (ws) => {
            const rec = recordEvents(ws);
            serverSide.push(rec);
            ws.on('message', (data) => ws.send(data));
          });
          const ws = t.client(PeerWebSocket, port);
          const rec = recordEvents(ws);
          await opened(ws);
          const echo = messages(ws, 1);
          ws.send('0123456789');
          assert.equal((await echo)[0].text, '0123456789');
          ws.send('0123456789a');
          const [code] = await rec.close;
          assert.equal(code, 1009);
          const err = await serverSide[0].error;
          assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
          assert.equal(err.message, 'Max payload size exceeded');
          assert.equal((await serverSide[0].close)[0], 1006);
        });

        it('the WebSocket option: connections are instances of the subclass', async function () {
          class MyWebSocket extends WebSocket {
            hello() {
              return 'mine';
            }
          }
          const { server, port } = await t.server();
          const wss = t.wss({ server, WebSocket: MyWebSocket });
          const connection = waitFor(wss, 'connection');
          const ws = t.client(PeerWebSocket, port);
          await opened(ws);
          const [serverWs] = await connection;
          assert.ok(serverWs instanceof MyWebSocket);
          assert.ok(serverWs instanceof WebSocket);
          assert.equal(serverWs.hello(), 'mine');
          const echo = messages(ws, 1);
          serverWs.send('sub');
          assert.equal((await echo)[0].text, 'sub');
        });
      });

      describe('close()', function () {
        it('leaves the http server and the open connections alone; close when the last one goes', async function () {
          const { server, port } = await t.server((req, res) => {
            const body = `plain upgrade=${req.headers.upgrade}`;
            res.writeHead(200, { Connection: 'close', 'Content-Length': body.length });
            res.end(body);
          });
          const wss = t.wss({ server });
          const serverSide = [];
          wss.on('connection', (ws) => {
            serverSide.push(ws);
            ws.on('message', (data) => ws.send(`echo ${data}`));
          });
          const a = t.client(PeerWebSocket, port);
          const b = t.client(PeerWebSocket, port);
          await Promise.all([opened(a), opened(b)]);
          assert.equal(server.listenerCount('upgrade'), 1);

          let closeEvents = 0;
          wss.on('close', () => closeEvents++);
          const callback = new Promise((resolve) => wss.close((...args) => resolve(args)));

          // ws removed its listeners; the http server keeps listening.
          assert.equal(server.listenerCount('upgrade'), 0);
          assert.ok(server.listening);
          assert.equal(wss.clients.size, 2);

          // Open connections keep working.
          const echo = messages(a, 1);
          a.send('still');
          assert.equal((await echo)[0].text, 'echo still');

          // A new upgrade is now a plain request for the 'request' listener.
          const res = await t.exchange(port, upgradeRequest());
          assert.equal(res.status, 200);
          assert.equal(res.body, 'plain upgrade=websocket');
          assert.equal(serverSide.length, 2);

          a.close();
          await closed(serverSide[0]);
          await new Promise((resolve) => setImmediate(resolve));
          assert.equal(closeEvents, 0);
          assert.equal(wss.clients.size, 1);

          b.close();
          assert.deepEqual(await callback, []);
          assert.equal(closeEvents, 1);
          assert.ok(server.listening);

          // Closing again: the callback gets an error.
          const [err] = await new Promise((resolve) => wss.close((...args) => resolve(args)));
          assert.equal(err.message, 'The server is not running');
        });

        it("emits 'close' on the next tick with no client or clientTracking: false", async function () {
          const { server } = await t.server();
          const a = t.wss({ server });
          const b = t.wss({ server, clientTracking: false });
          let aClosed = false;
          a.close(() => {
            aClosed = true;
          });
          assert.equal(aClosed, false);
          await new Promise((resolve) => process.nextTick(resolve));
          assert.equal(aClosed, true);
          await new Promise((resolve) => b.close(resolve));
          assert.equal(server.listenerCount('upgrade'), 0);
          assert.ok(server.listening);
        });
      });

      describe('an ordinary HTTP app on the same port', function () {
        it('keeps answering GET/POST (keep-alive included) while WebSocket clients talk', async function () {
          let wss;
          const { server, port } = await t.server((req, res) => {
            // A few routes, as an Express app would have.
            if (req.method === 'GET' && req.url === '/health') {
              res.writeHead(200, { 'Content-Type': 'text/plain' });
              res.end('ok');
            } else if (req.method === 'GET' && req.url === '/stats') {
              res.writeHead(200, { 'Content-Type': 'application/json' });
              res.end(JSON.stringify({ clients: wss.clients.size }));
            } else if (req.method === 'POST' && req.url === '/echo') {
              const chunks = [];
              req.on('data', (c) => chunks.push(c));
              req.on('end', () => {
                res.writeHead(200, { 'Content-Type': 'application/json' });
                res.end(JSON.stringify({ got: Buffer.concat(chunks).toString() }));
              });
            } else {
              res.writeHead(404, { 'Content-Type': 'text/plain' });
              res.end('not found');
            }
          });
          wss = t.wss({ server, path: '/ws' });
          wss.on('connection', (ws) => {
            ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
          });

          const Agent = t.secure ? https.Agent : http.Agent;
          const agent = new Agent(t.clientOptions({ keepAlive: true, maxSockets: 2 }));
          cleanup.add(() => agent.destroy());

          const kinds = clientsFor(transport);
          const N = 6;
          const clients = [];
          for (let i = 0; i < N; i++) {
            clients.push(t.client(kinds[i % kinds.length][1], port, '/ws'));
          }
          await Promise.all(clients.map(opened));
          assert.deepEqual(
            JSON.parse((await t.request(port, '/stats', { agent })).body),
            { clients: N }
          );

          async function talk(ws, i) {
            for (let j = 0; j < 20; j++) {
              const reply = messages(ws, 1);
              const text = `client ${i} message ${j}`;
              ws.send(text);
              assert.equal((await reply)[0].text, text);
            }
          }

          const results = [];
          async function lane(lane) {
            for (let j = 0; j < 15; j++) {
              const k = j % 3;
              if (k === 0) {
                const r = await t.request(port, '/health', { agent });
                assert.deepEqual([r.status, r.body], [200, 'ok']);
                results.push(r);
              } else if (k === 1) {
                const body = `lane ${lane} #${j}`;
                const r = await t.request(
                  port,
                  '/echo',
                  { agent, method: 'POST', headers: { 'Content-Length': Buffer.byteLength(body) } },
                  body
                );
                assert.deepEqual([r.status, JSON.parse(r.body)], [200, { got: body }]);
                results.push(r);
              } else {
                const r = await t.request(port, '/nope', { agent });
                assert.deepEqual([r.status, r.body], [404, 'not found']);
                results.push(r);
              }
            }
          }

          await Promise.all([...clients.map(talk), lane(1), lane(2)]);
          assert.equal(results.length, 30);
          // Kept-alive connections were reused (at most 2 sockets at a time).
          assert.ok(
            results.filter((r) => r.reusedSocket).length >= 20,
            `only ${results.filter((r) => r.reusedSocket).length} requests reused a socket`
          );
          assert.equal(wss.clients.size, N);

          // Closing the WebSocket clients leaves the app answering.
          await Promise.all(
            clients.map((ws) => {
              ws.close();
              return closed(ws);
            })
          );
          const r = await t.request(port, '/health', { agent });
          assert.equal(r.body, 'ok');
        });
      });
    });
  }
});
