'use strict';

// The WebSocketServer API surface, as ws 8 has it, with the server under test
// on its own port and the real ws as the client.

const assert = require('node:assert/strict');
const net = require('net');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket
} = require('./helpers/impl');
const {
  Cleanup,
  dispose,
  recordEvents,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const cleanup = new Cleanup();

async function server(options) {
  const wss = await startServer(WebSocketServer, options);
  cleanup.add(() => stopServer(wss));
  return wss;
}

function urlOf(wss, path = '') {
  return `ws://127.0.0.1:${wss.address().port}${path}`;
}

/** A real ws client, disposed after the test. */
function client(address, protocols, options) {
  const ws = new PeerWebSocket(address, protocols, options);
  cleanup.add(() => dispose(ws));
  return ws;
}

/** Connect a client and resolve with { ws, serverWs, req }. */
async function connect(wss, path = '', protocols, options) {
  const conn = waitFor(wss, 'connection');
  const ws = client(urlOf(wss, path), protocols, options);
  const rec = recordEvents(ws);
  await waitFor(ws, 'open');
  const [serverWs, req] = await conn;
  return { ws, rec, serverWs, req };
}

describe('WebSocketServer', function () {
  this.timeout(5000);

  afterEach(() => cleanup.run());

  describe('constructor', function () {
    const message =
      'One and only one of the "port", "server", or "noServer" options must be specified';

    it('throws a TypeError without port, server or noServer', function () {
      assert.throws(() => new WebSocketServer({}), { name: 'TypeError', message });
      assert.throws(() => new WebSocketServer(), { name: 'TypeError', message });
      assert.throws(() => new WebSocketServer({ host: '127.0.0.1' }), {
        name: 'TypeError',
        message
      });
    });

    it('throws a TypeError when port is combined with noServer', function () {
      assert.throws(
        () => new WebSocketServer({ port: 0, noServer: true }),
        { name: 'TypeError', message }
      );
    });

    it("emits 'listening' and calls the constructor callback", async function () {
      let wss;
      const cb = new Promise((resolve) => {
        wss = new WebSocketServer({ port: 0, host: '127.0.0.1' }, resolve);
      });
      cleanup.add(() => stopServer(wss));
      await Promise.all([cb, waitFor(wss, 'listening')]);
      assert.ok(wss.address().port > 0);
    });

    it('accepts the backlog option', async function () {
      const wss = await server({ backlog: 16 });
      const { ws } = await connect(wss);
      assert.equal(ws.readyState, WebSocket.OPEN);
    });
  });

  describe('address()', function () {
    it('returns { address, family, port }', async function () {
      const wss = await server();
      const addr = wss.address();
      assert.equal(addr.address, '127.0.0.1');
      assert.equal(addr.family, 'IPv4');
      assert.equal(typeof addr.port, 'number');
      assert.ok(addr.port > 0 && addr.port < 65536);
      assert.deepEqual(Object.keys(addr).sort(), ['address', 'family', 'port']);
    });
  });

  describe("'error'", function () {
    it('emits EADDRINUSE when the port is taken', async function () {
      const first = await server();
      const second = new WebSocketServer({
        port: first.address().port,
        host: '127.0.0.1'
      });
      cleanup.add(() => stopServer(second));
      const [err] = await waitFor(second, 'error');
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'listen');
      assert.equal(err.port, first.address().port);

      // The first server is unaffected.
      const { ws } = await connect(first);
      assert.equal(ws.readyState, WebSocket.OPEN);
    });

    it('emits EADDRINUSE when a plain TCP server holds the port', async function () {
      const tcp = net.createServer();
      await new Promise((resolve) => tcp.listen(0, '127.0.0.1', resolve));
      cleanup.add(() => new Promise((resolve) => tcp.close(resolve)));
      const wss = new WebSocketServer({
        port: tcp.address().port,
        host: '127.0.0.1'
      });
      cleanup.add(() => stopServer(wss));
      const [err] = await waitFor(wss, 'error');
      assert.equal(err.code, 'EADDRINUSE');
    });
  });

  describe("'connection'", function () {
    it('gives (ws, req) with method, url, headers and socket.remoteAddress', async function () {
      const wss = await server();
      const { serverWs, req } = await connect(wss, '/chat/room?id=7', [], {
        headers: { 'X-Custom': 'abc' },
        origin: 'http://example.com'
      });
      assert.ok(serverWs instanceof WebSocket);
      assert.equal(serverWs.readyState, WebSocket.OPEN);
      assert.equal(serverWs.protocol, '');
      assert.equal(serverWs.extensions, '');
      assert.equal(req.method, 'GET');
      assert.equal(req.url, '/chat/room?id=7');
      assert.equal(req.headers['x-custom'], 'abc');
      assert.equal(req.headers.origin, 'http://example.com');
      assert.equal(req.headers.upgrade, 'websocket');
      assert.equal(req.headers.connection, 'Upgrade');
      assert.equal(req.headers['sec-websocket-version'], '13');
      assert.match(req.headers['sec-websocket-key'], /^[+/0-9A-Za-z]{22}==$/);
      assert.equal(req.headers.host, `127.0.0.1:${wss.address().port}`);
      assert.equal(req.socket.remoteAddress, '127.0.0.1');
      assert.equal(typeof req.socket.remotePort, 'number');
    });

    it('the server-side socket echoes text and binary', async function () {
      const wss = await server();
      wss.on('connection', (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
      const ws = client(urlOf(wss));
      const rec = recordEvents(ws);
      await waitFor(ws, 'open');
      ws.send('text');
      ws.send(Buffer.from([0, 1, 2, 255]));
      while (rec.messages.length < 2) await waitFor(ws, 'message');
      const [[t, tb], [b, bb]] = rec.messages;
      assert.equal(tb, false);
      assert.equal(t.toString(), 'text');
      assert.equal(bb, true);
      assert.deepEqual([...b], [0, 1, 2, 255]);
    });
  });

  describe('server-side WebSocket', function () {
    it('closes with a code and reason: both sides see them', async function () {
      const wss = await server();
      const { rec, serverWs } = await connect(wss);
      const serverRec = recordEvents(serverWs);
      serverWs.close(4000, 'bye');
      assert.equal(serverWs.readyState, WebSocket.CLOSING);
      assert.deepEqual(await rec.close, [4000, 'bye']);
      assert.deepEqual(await serverRec.close, [4000, 'bye']);
      assert.deepEqual(serverRec.errors, []);
      assert.equal(serverWs.readyState, WebSocket.CLOSED);
    });

    it('pings the client and gets the pong', async function () {
      const wss = await server();
      const { ws, serverWs } = await connect(wss);
      const clientPing = waitFor(ws, 'ping');
      const pong = waitFor(serverWs, 'pong');
      serverWs.ping('abc');
      assert.equal((await clientPing)[0].toString(), 'abc');
      assert.equal((await pong)[0].toString(), 'abc');
    });

    it('terminate() gives 1006 on both sides', async function () {
      const wss = await server();
      const { rec, serverWs } = await connect(wss);
      const serverClose = waitFor(serverWs, 'close');
      serverWs.terminate();
      assert.equal((await serverClose)[0], 1006);
      assert.equal((await rec.close)[0], 1006);
    });
  });

  describe('clients', function () {
    it('tracks open connections and drops them before the user close listener runs', async function () {
      const wss = await server();
      assert.ok(wss.clients instanceof Set);
      assert.equal(wss.clients.size, 0);

      const a = await connect(wss);
      const b = await connect(wss);
      assert.equal(wss.clients.size, 2);
      assert.ok(wss.clients.has(a.serverWs));
      assert.ok(wss.clients.has(b.serverWs));

      const sizeAtClose = new Promise((resolve) => {
        a.serverWs.on('close', () => resolve(wss.clients.size));
      });
      a.ws.close();
      assert.equal(await sizeAtClose, 1);
      assert.ok(!wss.clients.has(a.serverWs));
      assert.ok(wss.clients.has(b.serverWs));

      b.ws.terminate();
      await waitFor(b.serverWs, 'close');
      assert.equal(wss.clients.size, 0);
    });

    it('is undefined with clientTracking: false', async function () {
      const wss = await server({ clientTracking: false });
      assert.equal(wss.clients, undefined);
      const { serverWs } = await connect(wss);
      assert.equal(serverWs.readyState, WebSocket.OPEN);
      assert.equal(wss.clients, undefined);
      cleanup.add(() => dispose(serverWs));
    });
  });

  describe('path', function () {
    it('accepts the path, with or without a query string', async function () {
      const wss = await server({ path: '/ws' });
      const a = await connect(wss, '/ws');
      assert.equal(a.req.url, '/ws');
      const b = await connect(wss, '/ws?x=1');
      assert.equal(b.req.url, '/ws?x=1');
    });

    it('rejects other paths with a 400 (client: "Unexpected server response: 400")', async function () {
      const wss = await server({ path: '/ws' });
      let connections = 0;
      wss.on('connection', () => connections++);
      for (const path of ['/', '/other', '/ws/', '/WS']) {
        const ws = client(urlOf(wss, path));
        const rec = recordEvents(ws);
        const err = await rec.error;
        assert.equal(err.message, 'Unexpected server response: 400');
        assert.equal((await rec.close)[0], 1006);
      }
      assert.equal(connections, 0);
    });
  });

  describe('handleProtocols', function () {
    it('selects the first offered protocol by default', async function () {
      const wss = await server();
      const { ws, serverWs } = await connect(wss, '', ['b', 'a']);
      assert.equal(ws.protocol, 'b');
      assert.equal(serverWs.protocol, 'b');
    });

    it('is called with (Set of protocols in order, req) and its choice is used', async function () {
      let args;
      const wss = await server({
        handleProtocols(protocols, req) {
          args = { protocols, req };
          return 'two';
        }
      });
      const { ws, serverWs, req } = await connect(wss, '/p', [
        'one',
        'two',
        'three'
      ]);
      assert.ok(args.protocols instanceof Set);
      assert.deepEqual([...args.protocols], ['one', 'two', 'three']);
      assert.equal(args.req, req);
      assert.equal(args.req.url, '/p');
      assert.equal(ws.protocol, 'two');
      assert.equal(serverWs.protocol, 'two');
    });

    it('returning false sends no protocol (the ws client then fails)', async function () {
      const wss = await server({ handleProtocols: () => false });
      let serverWs;
      wss.on('connection', (ws) => {
        serverWs = ws;
        ws.on('error', () => {});
      });
      const ws = client(urlOf(wss), ['one']);
      const rec = recordEvents(ws);
      const err = await rec.error;
      assert.equal(err.message, 'Server sent no subprotocol');
      assert.equal((await rec.close)[0], 1006);
      if (serverWs) {
        assert.equal(serverWs.protocol, '');
        if (serverWs.readyState !== WebSocket.CLOSED) {
          await waitFor(serverWs, 'close');
        }
      }
    });

    it('is not called when the client offers no protocol', async function () {
      let called = false;
      const wss = await server({
        handleProtocols: () => {
          called = true;
          return 'x';
        }
      });
      const { ws, serverWs } = await connect(wss);
      assert.equal(called, false);
      assert.equal(ws.protocol, '');
      assert.equal(serverWs.protocol, '');
    });
  });

  describe('maxPayload', function () {
    it('closes with 1009 when a message exceeds it', async function () {
      const wss = await server({ maxPayload: 10 });
      const { ws, rec, serverWs } = await connect(wss);
      const serverRec = recordEvents(serverWs);
      ws.send(Buffer.alloc(10));
      ws.send(Buffer.alloc(11));
      const err = await serverRec.error;
      assert.equal(err.message, 'Max payload size exceeded');
      assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
      assert.equal(serverRec.messages.length, 1);
      assert.equal((await serverRec.close)[0], 1006);
      const [code] = await rec.close;
      assert.equal(code, 1009);
    });
  });

  describe('close()', function () {
    it("stops accepting, calls back and emits 'close' when the server has closed", async function () {
      const wss = await startServer(WebSocketServer);
      const { port } = wss.address();
      const events = [];
      wss.on('close', () => events.push('close event'));
      const done = new Promise((resolve) => {
        wss.close((err) => {
          events.push(['callback', err]);
          resolve();
        });
      });
      await done;
      assert.equal(events.length, 2);
      assert.ok(events.includes('close event'));
      assert.deepEqual(
        events.find((e) => Array.isArray(e)),
        ['callback', undefined]
      );

      const ws = new PeerWebSocket(`ws://127.0.0.1:${port}`);
      const rec = recordEvents(ws);
      const err = await rec.error;
      assert.equal(err.code, 'ECONNREFUSED');
      await rec.close;
    });

    it('does not close existing connections; the callback waits for them', async function () {
      const wss = await startServer(WebSocketServer);
      cleanup.add(() => stopServer(wss));
      const port = wss.address().port;
      const { ws, serverWs } = await connect(wss);
      serverWs.on('message', (data) => serverWs.send(data));

      let closed = false;
      const done = new Promise((resolve) => {
        wss.close((err) => {
          closed = true;
          resolve(err);
        });
      });

      // New connections are refused...
      const other = new PeerWebSocket(`ws://127.0.0.1:${port}`);
      const otherRec = recordEvents(other);
      assert.equal((await otherRec.error).code, 'ECONNREFUSED');
      await otherRec.close;

      // ...while the existing one still works, and the server is not closed.
      const echo = waitFor(ws, 'message');
      ws.send('still here');
      assert.equal((await echo)[0].toString(), 'still here');
      assert.equal(serverWs.readyState, WebSocket.OPEN);
      assert.equal(wss.clients.size, 1);
      assert.equal(closed, false);

      ws.close(1000);
      const err = await done;
      assert.equal(err, undefined);
      assert.equal(closed, true);
    });

    it("on a closed server: the callback gets 'The server is not running' and 'close' is emitted again", async function () {
      const wss = await startServer(WebSocketServer);
      await new Promise((resolve) => wss.close(resolve));
      let closeEvents = 0;
      wss.on('close', () => closeEvents++);
      const [err] = await new Promise((resolve) => {
        wss.close((...args) => resolve(args));
      });
      assert.ok(err instanceof Error);
      assert.equal(err.message, 'The server is not running');
      assert.equal(closeEvents, 1);
    });

    it('calling close() twice while closing calls both callbacks once', async function () {
      const wss = await startServer(WebSocketServer);
      const results = [];
      await Promise.all([
        new Promise((resolve) => wss.close((err) => resolve(results.push(err)))),
        new Promise((resolve) => wss.close((err) => resolve(results.push(err))))
      ]);
      assert.deepEqual(results, [undefined, undefined]);
    });
  });
});
