'use strict';

// Options assigned on `wss.options` after the WebSocketServer was built.
// ws reads `this.options.<x>` at every handshake (shouldHandle, the
// permessage-deflate offer, verifyClient, handleProtocols, the WebSocket it
// makes and the Receiver it sets up), so a value assigned later takes effect
// for every later handshake, and only for those. Real code depends on it:
// graphql-ws's useServer() sets `wss.options.handleProtocols` on a server it
// did not build. Each case runs with the three ways of getting connections:
// `{ port }`, `{ server }` and `{ noServer }` + handleUpgrade().

const assert = require('node:assert/strict');
const http = require('node:http');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket
} = require('./helpers/impl');
const {
  OP,
  frame,
  httpExchange,
  rawHandshake,
  upgradeRequest
} = require('./helpers/raw');
const { Cleanup, dispose, stopServer, waitFor } = require('./helpers/util');

const cleanup = new Cleanup();

/**
 * A server built without any of the options under test, listening. The
 * options are assigned by the test afterwards.
 */
async function makeServer(mode) {
  let wss;
  let httpServer = null;
  let port;
  if (mode === 'port') {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    cleanup.add(() => stopServer(wss));
    await waitFor(wss, 'listening');
    port = wss.address().port;
  } else {
    httpServer = http.createServer((req, res) => {
      res.writeHead(426);
      res.end();
    });
    cleanup.add(() => {
      httpServer.closeAllConnections();
      return new Promise((resolve) => httpServer.close(() => resolve()));
    });
    if (mode === 'server') {
      wss = new WebSocketServer({ server: httpServer });
    } else {
      wss = new WebSocketServer({ noServer: true });
      httpServer.on('upgrade', (req, socket, head) => {
        wss.handleUpgrade(req, socket, head, (ws) => {
          wss.emit('connection', ws, req);
        });
      });
    }
    cleanup.add(() => stopServer(wss));
    await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    port = httpServer.address().port;
  }
  return {
    wss,
    port,
    url: (path = '/') => `ws://127.0.0.1:${port}${path}`
  };
}

/** A real ws client, disposed after the test. */
function client(address, protocols, options) {
  const ws = new PeerWebSocket(address, protocols, options);
  cleanup.add(() => dispose(ws));
  return ws;
}

/** Resolves once `ws` is open; rejects with its error otherwise. */
function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.removeListener('error', reject);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** The status a client's handshake was refused with. */
function refusedStatus(ws) {
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the handshake succeeded')));
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode);
      req.destroy();
    });
    ws.once('error', reject);
  });
}

/**
 * Resolves with the arguments of `emitter`'s next `event`; rejects if one of
 * `others` comes first (so that a test fails at once, not by a timeout).
 */
function firstOf(emitter, event, others) {
  return new Promise((resolve, reject) => {
    const listeners = {};
    const done = () => {
      emitter.removeListener(event, onEvent);
      for (const o of others) emitter.removeListener(o, listeners[o]);
    };
    const onEvent = (...args) => {
      done();
      resolve(args);
    };
    emitter.on(event, onEvent);
    for (const o of others) {
      listeners[o] = (arg) => {
        done();
        reject(new Error(`'${o}' came first, not '${event}': ${
          arg instanceof Error ? arg.message : String(arg)}`));
      };
      emitter.on(o, listeners[o]);
    }
  });
}

/** The next 'connection' of `wss`: the server-side WebSocket. */
async function nextConnection(wss) {
  const [ws] = await waitFor(wss, 'connection');
  return ws;
}

/** A raw client after a handshake by hand; destroyed after the test. */
async function raw(port, opts) {
  const r = await rawHandshake(port, opts);
  cleanup.add(() => r.socket.destroy());
  return r;
}

/** An upgrade request answered by the server, read with a raw socket. */
function exchange(port, path = '/', headers = {}) {
  return httpExchange(port, upgradeRequest({
    path,
    key: 'dGhlIHNhbXBsZSBub25jZQ==',
    headers
  }));
}

/** Reads the next frame that is not a pong; counts the pongs it skipped. */
async function nextNonPong(reader) {
  let pongs = 0;
  for (;;) {
    const f = await reader.next();
    if (f === null || f.opcode !== OP.PONG) return { f, pongs };
    pongs++;
  }
}

describe('options assigned on wss.options after construction', function () {
  afterEach(() => cleanup.run());

  for (const mode of ['port', 'server', 'noServer']) {
    describe(`{ ${mode} }`, function () {
      it('verifyClient (sync) returning false: 401, no connection',
        async function () {
          const { wss, url } = await makeServer(mode);
          let asked = 0;
          wss.options.verifyClient = (info) => {
            asked++;
            assert.equal(info.req.url, '/v');
            return false;
          };
          let connections = 0;
          wss.on('connection', () => connections++);
          assert.equal(await refusedStatus(client(url('/v'))), 401);
          assert.equal(asked, 1);
          assert.equal(connections, 0);
        });

      it('verifyClient (async) cb(false, 403): 403', async function () {
        const { wss, url } = await makeServer(mode);
        wss.options.verifyClient = (info, cb) => {
          setImmediate(() => cb(false, 403));
        };
        assert.equal(await refusedStatus(client(url())), 403);
      });

      it('verifyClient set after a first client connected, then removed',
        async function () {
          const { wss, url } = await makeServer(mode);
          // A first handshake with no hook.
          await opened(client(url()));
          wss.options.verifyClient = () => false;
          assert.equal(await refusedStatus(client(url())), 401);
          // And unset again: the next one is accepted.
          wss.options.verifyClient = null;
          await opened(client(url()));
        });

      it('handleProtocols: the hook picks the second protocol offered',
        async function () {
          const { wss, url } = await makeServer(mode);
          let offered = null;
          wss.options.handleProtocols = (protocols) => {
            offered = [...protocols];
            return offered[1];
          };
          const serverSide = nextConnection(wss);
          const ws = await opened(client(url(), ['one', 'two', 'three']));
          assert.deepEqual(offered, ['one', 'two', 'three']);
          assert.equal(ws.protocol, 'two');
          assert.equal((await serverSide).protocol, 'two');
        });

      it('handleProtocols changed again: a second client sees the new hook',
        async function () {
          const { wss, url } = await makeServer(mode);
          wss.options.handleProtocols = (protocols) => [...protocols][1];
          const first = await opened(client(url(), ['one', 'two', 'three']));
          assert.equal(first.protocol, 'two');
          wss.options.handleProtocols = (protocols) => [...protocols][2];
          const second = await opened(client(url(), ['one', 'two', 'three']));
          assert.equal(second.protocol, 'three');
          // The open connection keeps what it agreed on.
          assert.equal(first.protocol, 'two');
        });

      it('path: another path gets 400, the path itself connects',
        async function () {
          const { wss, port, url } = await makeServer(mode);
          wss.options.path = '/a';
          const res = await exchange(port, '/b');
          assert.equal(res.status, 400);
          assert.equal(await refusedStatus(client(url('/b'))), 400);
          await opened(client(url('/a?x=1')));
        });

      it('path changed again: the old one is refused, the new one accepted',
        async function () {
          const { wss, port, url } = await makeServer(mode);
          wss.options.path = '/a';
          await opened(client(url('/a')));
          wss.options.path = '/b';
          assert.equal((await exchange(port, '/a')).status, 400);
          await opened(client(url('/b')));
        });

      it('maxPayload lowered: a bigger message closes with 1009',
        async function () {
          const { wss, url } = await makeServer(mode);
          wss.options.maxPayload = 10;
          const serverSide = nextConnection(wss);
          const ws = await opened(client(url()));
          const sws = await serverSide;
          const closed = waitFor(ws, 'close');
          // At the limit: fine.
          ws.send('0123456789');
          const [msg] = await firstOf(sws, 'message', ['error']);
          assert.equal(msg.toString(), '0123456789');
          const errored = firstOf(sws, 'error', ['message']);
          ws.send('01234567890');
          const [err] = await errored;
          assert.equal(err.code, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
          assert.ok(err instanceof RangeError);
          const [code] = await closed;
          assert.equal(code, 1009);
        });

      it('maxPayload changed after a client connected: only later ' +
        'handshakes get the new limit', async function () {
        const { wss, url } = await makeServer(mode);
        const firstSide = nextConnection(wss);
        const first = await opened(client(url()));
        const sFirst = await firstSide;
        wss.options.maxPayload = 10;

        // The open connection keeps the limit it started with.
        first.send('x'.repeat(100));
        const [m1] = await waitFor(sFirst, 'message');
        assert.equal(m1.length, 100);

        const secondSide = nextConnection(wss);
        const second = await opened(client(url()));
        const sSecond = await secondSide;
        const errored = firstOf(sSecond, 'error', ['message']);
        const closed = waitFor(second, 'close');
        second.send('x'.repeat(100));
        assert.equal((await errored)[0].code,
          'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
        assert.equal((await closed)[0], 1009);

        // Raised again: a third client may send it.
        wss.options.maxPayload = 1000;
        const thirdSide = nextConnection(wss);
        const third = await opened(client(url()));
        const sThird = await thirdSide;
        third.send('x'.repeat(100));
        const [m3] = await waitFor(sThird, 'message');
        assert.equal(m3.length, 100);

        // And the first connection is still open.
        assert.equal(first.readyState, PeerWebSocket.OPEN);
      });

      it('skipUTF8Validation: invalid UTF-8 text arrives instead of 1007',
        async function () {
          const { wss, port } = await makeServer(mode);
          wss.options.skipUTF8Validation = true;
          const serverSide = nextConnection(wss);
          const { socket } = await raw(port);
          const sws = await serverSide;
          const bad = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
          const received = firstOf(sws, 'message', ['error']);
          socket.write(frame({ opcode: OP.TEXT, payload: bad }));
          const [data, isBinary] = await received;
          assert.equal(isBinary, false);
          assert.deepEqual(Buffer.from(data), bad);
        });

      it('skipUTF8Validation set and unset: a later client gets 1007 again',
        async function () {
          const { wss, port } = await makeServer(mode);
          wss.options.skipUTF8Validation = true;
          const firstSide = nextConnection(wss);
          const first = await raw(port);
          const sFirst = await firstSide;
          wss.options.skipUTF8Validation = false;
          const bad = Buffer.from([0xff, 0xfe]);

          // The first connection still skips validation.
          const received = firstOf(sFirst, 'message', ['error']);
          first.socket.write(frame({ opcode: OP.TEXT, payload: bad }));
          const [data] = await received;
          assert.deepEqual(Buffer.from(data), bad);

          const secondSide = nextConnection(wss);
          const second = await raw(port);
          const sSecond = await secondSide;
          const errored = firstOf(sSecond, 'error', ['message']);
          second.socket.write(frame({ opcode: OP.TEXT, payload: bad }));
          const [err] = await errored;
          assert.equal(err.code, 'WS_ERR_INVALID_UTF8');
          const f = await second.reader.next();
          assert.equal(f.opcode, OP.CLOSE);
          assert.equal(f.code, 1007);
        });

      it('autoPong: false: a ping gets no pong', async function () {
        const { wss, port } = await makeServer(mode);
        wss.options.autoPong = false;
        const serverSide = nextConnection(wss);
        const { socket, reader } = await raw(port);
        const sws = await serverSide;
        sws.on('message', (data) => sws.send(data.toString()));
        const pinged = waitFor(sws, 'ping');
        socket.write(frame({ opcode: OP.PING, payload: 'p' }));
        assert.equal((await pinged)[0].toString(), 'p');
        // An echo sent after the ping was handled: a pong would be before it.
        socket.write(frame({ opcode: OP.TEXT, payload: 'after' }));
        const f = await reader.next();
        assert.equal(f.opcode, OP.TEXT);
        assert.equal(f.payload.toString(), 'after');
      });

      it('autoPong changed after a client connected: only later ' +
        'handshakes get it', async function () {
        const { wss, port } = await makeServer(mode);
        const firstSide = nextConnection(wss);
        const first = await raw(port);
        const sFirst = await firstSide;
        wss.options.autoPong = false;

        // The open connection still answers pings.
        first.socket.write(frame({ opcode: OP.PING, payload: '1' }));
        const f1 = await first.reader.next();
        assert.equal(f1.opcode, OP.PONG);
        assert.equal(f1.payload.toString(), '1');

        const secondSide = nextConnection(wss);
        const second = await raw(port);
        const sSecond = await secondSide;
        sSecond.on('message', (data) => sSecond.send(data.toString()));
        second.socket.write(frame({ opcode: OP.PING, payload: '2' }));
        second.socket.write(frame({ opcode: OP.TEXT, payload: 'after' }));
        const f2 = await second.reader.next();
        assert.equal(f2.opcode, OP.TEXT);
        assert.equal(f2.payload.toString(), 'after');
        assert.ok(sFirst);
      });

      for (const value of [true, {}]) {
        it(`perMessageDeflate set to ${JSON.stringify(value)}: the ` +
          'handshake answers the extension', async function () {
          const { wss, url } = await makeServer(mode);
          wss.options.perMessageDeflate = value;
          const serverSide = nextConnection(wss);
          const ws = await opened(client(url()));
          assert.match(ws.extensions, /^permessage-deflate/);
          const sws = await serverSide;
          sws.on('message', (data, isBinary) => sws.send(data, { binary: isBinary }));
          const text = 'compressible '.repeat(200);
          ws.send(text);
          const [echo] = await waitFor(ws, 'message');
          assert.equal(echo.toString(), text);
        });
      }

      it('perMessageDeflate turned off again: a later handshake has none',
        async function () {
          const { wss, url } = await makeServer(mode);
          wss.options.perMessageDeflate = {};
          const first = await opened(client(url()));
          assert.match(first.extensions, /^permessage-deflate/);
          wss.options.perMessageDeflate = false;
          const second = await opened(client(url()));
          assert.equal(second.extensions, '');
        });

      it('maxFragments lowered to 2: a 3-fragment message closes with 1008',
        async function () {
          const { wss, port } = await makeServer(mode);
          wss.options.maxFragments = 2;
          const serverSide = nextConnection(wss);
          const { socket, reader } = await raw(port);
          const sws = await serverSide;
          const errored = firstOf(sws, 'error', ['message']);
          let messages = 0;
          sws.on('message', () => messages++);
          socket.write(Buffer.concat([
            frame({ opcode: OP.TEXT, fin: false, payload: 'a' }),
            frame({ opcode: OP.CONT, fin: false, payload: 'b' }),
            frame({ opcode: OP.CONT, fin: true, payload: 'c' })
          ]));
          const [err] = await errored;
          assert.ok(err instanceof RangeError);
          assert.equal(err.code, 'WS_ERR_TOO_MANY_BUFFERED_PARTS');
          assert.equal(err.message, 'Too many message fragments');
          const f = await reader.next();
          assert.equal(f.opcode, OP.CLOSE);
          assert.equal(f.code, 1008);
          assert.equal(messages, 0);
        });

      it('maxFragments: 2 fragments are still fine', async function () {
        const { wss, port } = await makeServer(mode);
        wss.options.maxFragments = 2;
        const serverSide = nextConnection(wss);
        const { socket } = await raw(port);
        const sws = await serverSide;
        socket.write(Buffer.concat([
          frame({ opcode: OP.TEXT, fin: false, payload: 'a' }),
          frame({ opcode: OP.CONT, fin: true, payload: 'b' })
        ]));
        const [data] = await firstOf(sws, 'message', ['error']);
        assert.equal(data.toString(), 'ab');
      });

      it('maxPendingAutoPongs lowered to 2: 3 pings in one write ' +
        'terminate the connection', async function () {
        const { wss, port } = await makeServer(mode);
        wss.options.maxPendingAutoPongs = 2;
        wss.options.autoPong = true;
        const serverSide = nextConnection(wss);
        const { socket, reader } = await raw(port);
        const sws = await serverSide;
        const closed = waitFor(sws, 'close');
        sws.on('message', (data) => sws.send(data.toString()));
        socket.write(Buffer.concat([
          frame({ opcode: OP.PING, payload: '1' }),
          frame({ opcode: OP.PING, payload: '2' }),
          frame({ opcode: OP.PING, payload: '3' })
        ]));
        // ws answers the first two and terminates at the third: no close
        // frame. Were the limit not applied, the third pong would come and
        // then the echo of 'x'.
        const frames = [];
        let sentText = false;
        for (;;) {
          const f = await reader.next();
          if (f === null) break;
          frames.push(f);
          if (f.opcode === OP.PONG && f.payload.toString() === '2' &&
              !sentText) {
            sentText = true;
            socket.write(frame({ opcode: OP.TEXT, payload: 'x' }));
          }
          if (f.opcode === OP.TEXT) break;
        }
        assert.deepEqual(
          frames.map((f) => [f.opcode, f.payload.toString()]),
          [[OP.PONG, '1'], [OP.PONG, '2']].slice(0, frames.length));
        const [code] = await closed;
        assert.equal(code, 1006);
      });

      it('WebSocket: a subclass set later makes the server-side sockets',
        async function () {
          const { wss, url } = await makeServer(mode);
          class Custom extends WebSocket {}
          wss.options.WebSocket = Custom;
          const serverSide = nextConnection(wss);
          await opened(client(url()));
          assert.ok((await serverSide) instanceof Custom);
        });
    });
  }

  describe('graphql-ws style: handleProtocols set right after construction',
    function () {
      const hook = (protocols) =>
        protocols.has('graphql-transport-ws') ? 'graphql-transport-ws' : false;

      async function graphqlServer() {
        const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
        // As graphql-ws's useServer(wss) does, before anyone connected.
        wss.options.handleProtocols = hook;
        cleanup.add(() => stopServer(wss));
        await waitFor(wss, 'listening');
        return `ws://127.0.0.1:${wss.address().port}`;
      }

      it('the hook picks graphql-transport-ws, not the first offered',
        async function () {
          const url = await graphqlServer();
          const ws = await opened(
            client(url, ['graphql-ws', 'graphql-transport-ws']));
          assert.equal(ws.protocol, 'graphql-transport-ws');
        });

      it('the hook returning false: no subprotocol in the answer',
        async function () {
          const url = await graphqlServer();
          const ws = client(url, ['graphql-ws']);
          const [err] = await firstOf(ws, 'error', ['open']);
          assert.equal(err.message, 'Server sent no subprotocol');
        });
    });
});
