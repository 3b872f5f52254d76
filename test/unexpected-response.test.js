'use strict';

// The body of an 'unexpected-response' (a non-101 answer to the upgrade) is
// read with backpressure, as ws's is: ws gives the listener Node's
// IncomingMessage, which stops reading its socket while its reader is full.
// A listener that reads gets every byte; one that never reads must not make
// the client buffer the server's endless body. Both client paths of
// ws-native run: the C client (no extra option) and Node's request
// (`family: 4`); against ws both are ws's one path.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { WebSocket } = require('./helpers/impl');
const { createRawServer, readUpgradeRequest } = require('./helpers/raw');
const { Child } = require('./helpers/child');
const { Cleanup, delay, waitFor } = require('./helpers/util');

const cleanup = new Cleanup();
const noop = () => {};

const PATHS = [
  ['C client', {}, []],
  ['Node request', { family: 4 }, ['node']]
];

/**
 * A TCP server answering every upgrade request with `respond(socket)`,
 * closed after the test.
 */
async function bodyServer(respond) {
  const server = await createRawServer(async (socket) => {
    try {
      await readUpgradeRequest(socket);
    } catch {
      return;
    }
    // Read (and drop) whatever else the client sends, as a server does.
    socket.resume();
    respond(socket);
  });
  cleanup.add(() => server.close());
  return server;
}

/**
 * Writes `chunk` to `socket` over and over, forever, honouring
 * backpressure. `state.sent` counts the bytes handed to the socket;
 * `state.backedUp` resolves the first time write() returns false.
 */
function streamForever(socket, chunk) {
  const state = { sent: 0 };
  let backedUp;
  state.backedUp = new Promise((resolve) => (backedUp = resolve));
  const pump = () => {
    while (!socket.destroyed) {
      state.sent += chunk.length;
      if (!socket.write(chunk)) {
        backedUp();
        return;
      }
    }
  };
  socket.on('drain', pump);
  pump();
  return state;
}

function client(url, options) {
  const ws = new WebSocket(url, options);
  ws.on('error', noop);
  cleanup.add(() => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  });
  return ws;
}

/** Reads all of `res`, yielding to the event loop now and then. */
async function readSlowly(res) {
  const chunks = [];
  let n = 0;
  for await (const chunk of res) {
    chunks.push(chunk);
    if (++n % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(chunks);
}

function chunkedBody(body, size) {
  const parts = [];
  for (let i = 0; i < body.length; i += size) {
    const piece = body.subarray(i, i + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece,
      Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

describe("the body of an 'unexpected-response'", function () {
  afterEach(() => cleanup.run());

  for (const [pathName, options, childArgs] of PATHS) {
    describe(pathName, function () {
      const BODY = crypto.randomBytes(4 * 1024 * 1024);
      const framings = {
        'Content-Length': (socket) => {
          socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n' +
            `Content-Length: ${BODY.length}\r\n\r\n`);
          socket.end(BODY);
        },
        'the server closing': (socket) => {
          socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
          socket.end(BODY);
        },
        chunked: (socket) => {
          socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n' +
            'Transfer-Encoding: chunked\r\n\r\n');
          socket.end(chunkedBody(BODY, 50000));
        }
      };

      for (const [framing, respond] of Object.entries(framings)) {
        it(`a listener reading a 4 MiB body (${framing}) gets every byte`,
          async function () {
            const server = await bodyServer(respond);
            const ws = client(server.url, options);
            const [req, res] = await waitFor(ws, 'unexpected-response');
            assert.equal(res.statusCode, 200);
            const body = await readSlowly(res);
            assert.equal(body.length, BODY.length);
            assert.ok(body.equals(BODY), 'the body differs');
            req.destroy();
          });
      }

      it('a chunked body with extensions and trailers, arriving a few ' +
        'bytes at a time, ends after its trailers', async function () {
        const body = '5;a=1\r\nhello\r\n' +
          '10\r\n, chunked world!\r\n' +
          '1;b\r\n.\r\n' +
          '0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n';
        const server = await bodyServer(async (socket) => {
          socket.write('HTTP/1.1 200 OK\r\nTrailer: X-Trailer\r\n' +
            'Transfer-Encoding: chunked\r\n\r\n');
          for (let i = 0; i < body.length && !socket.destroyed; i += 3) {
            socket.write(body.slice(i, i + 3));
            await delay(1);
          }
          // Left open: the body's end is its last chunk's, not the close.
        });
        const ws = client(server.url, options);
        const [req, res] = await waitFor(ws, 'unexpected-response');
        const got = await readSlowly(res);
        assert.equal(got.toString(), 'hello, chunked world!.');
        assert.equal(res.complete, true);
        req.destroy();
      });

      it('a listener that starts reading late still gets every byte',
        async function () {
          const server = await bodyServer(framings['Content-Length']);
          const ws = client(server.url, options);
          const [req, res] = await waitFor(ws, 'unexpected-response');
          // Time for the reading to stop, before the reader starts.
          await delay(300);
          const body = await readSlowly(res);
          assert.ok(body.equals(BODY), 'the body differs');
          req.destroy();
        });

      // The body the client holds is what it read before its reading
      // stopped: ws (and ws-native on the main loop) ~64 KiB; ws-native's
      // I/O thread reads on until the pause command reaches it (libuv reads
      // up to 32 x 256 KiB per poll), ~5 to 18 MiB here.
      for (const end of ['destroy', 'terminate']) {
        it('a listener that never reads: the client stays small while the ' +
          `server streams for 3 s, then ${end === 'destroy'
            ? 'req.destroy()' : 'ws.terminate()'} ends it and the process ` +
          'exits on its own', async function () {
          let state = null;
          let serverSocketClosed;
          const closed = new Promise((resolve) => (serverSocketClosed = resolve));
          const server = await bodyServer((socket) => {
            socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
            state = streamForever(socket, Buffer.alloc(64 * 1024, 0x61));
            socket.on('close', serverSocketClosed);
          });
          const child = new Child('unread-body.js',
            [server.url, '3000', end, ...childArgs]);
          cleanup.add(() => child.proc.kill('SIGKILL'));
          const [, json] = await child.waitForOutput(/\n(\{.*\})\n/);
          const { code, signal } = await child.exitWithin(15000);
          assert.equal(signal, null);
          assert.equal(code, 0, child.describe());
          await closed;
          const { base, peak, buffered } = JSON.parse(json);
          const grewMiB = (peak - base) / 1048576;
          const sentMiB = state.sent / 1048576;
          if (process.env.WSN_TEST_VERBOSE) {
            console.log(`      RSS +${grewMiB.toFixed(1)} MiB, ` +
              `res buffered ${buffered} bytes, server sent ` +
              `${sentMiB.toFixed(1)} MiB`);
          }
          // Under AddressSanitizer (npm run test:asan) freed memory waits
          // in its quarantine and RSS says nothing about what we hold: the
          // bound is checked in the normal runs only.
          if (process.env.ASAN_OPTIONS === undefined) {
            assert.ok(grewMiB < 32,
              `the client's RSS grew by ${grewMiB.toFixed(1)} MiB ` +
              `(the server sent ${sentMiB.toFixed(1)} MiB)`);
          }
        });
      }

      for (const [what, stop] of [
        ['req.destroy()', (ws, req) => req.destroy()],
        ['ws.terminate()', (ws) => ws.terminate()],
        ['res.destroy()', (ws, req, res) => res.destroy()]
      ]) {
        for (const when of ['after reading 1 MiB', 'without reading']) {
          it(`${what} mid-body, ${when}: the connection closes`,
            async function () {
              let state = null;
              let serverSocketClosed;
              const closed = new Promise((resolve) => {
                serverSocketClosed = resolve;
              });
              let streaming;
              const started = new Promise((resolve) => (streaming = resolve));
              const server = await bodyServer((socket) => {
                socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
                state = streamForever(socket, Buffer.alloc(64 * 1024, 0x62));
                socket.on('close', serverSocketClosed);
                streaming();
              });
              const ws = client(server.url, options);
              const events = [];
              ws.on('error', (err) => events.push(`error: ${err.message}`));
              ws.on('close', (code) => events.push(`close ${code}`));
              const [req, res] = await waitFor(ws, 'unexpected-response');
              res.on('error', noop);
              const reqClosed = waitFor(req, 'close');
              const resClosed = waitFor(res, 'close');
              await started;
              if (when === 'without reading') {
                await state.backedUp;
              } else {
                let got = 0;
                await new Promise((resolve) => {
                  res.on('data', (chunk) => {
                    got += chunk.length;
                    if (got >= 1048576) {
                      res.pause();
                      resolve();
                    }
                  });
                });
              }
              const wsClosed = waitFor(ws, 'close');
              stop(ws, req, res);
              await closed;
              await reqClosed;
              await resClosed;
              if (what === 'ws.terminate()') {
                await wsClosed;
                assert.deepEqual(events, [
                  'error: WebSocket was closed before the connection was ' +
                    'established',
                  'close 1006'
                ]);
              } else {
                // ws's request closes; the WebSocket, left to its
                // listener, says nothing.
                assert.deepEqual(events, []);
              }
            });
        }
      }
    });
  }
});

// The response object's head, as Node's parser gives it to ws: the status
// line's parts, header names in their case in rawHeaders and lower case in
// headers, repeated ones joined (Set-Cookie kept as a list), values trimmed
// of spaces and tabs only. The C client gets these fields parsed by C.
describe("the head of an 'unexpected-response' or 'upgrade' response",
  function () {
    afterEach(() => cleanup.run());

    const HEAD = 'X-Mixed-CASE: \t a  b \t\r\n' +
      'Set-Cookie: a=1\r\n' +
      'set-cookie: b=2\r\n' +
      'X-Dup: 1\r\n' +
      'x-dup: 2\r\n' +
      'X-Latin1: caf\xe9\r\n' +
      // A no-break space (latin1 0xa0) is not whitespace to HTTP.
      'X-Nbsp: \xa0x\xa0\r\n' +
      'X-Empty:\r\n';
    const RAW = [
      'X-Mixed-CASE', 'a  b',
      'Set-Cookie', 'a=1',
      'set-cookie', 'b=2',
      'X-Dup', '1',
      'x-dup', '2',
      'X-Latin1', 'caf\xe9',
      'X-Nbsp', '\xa0x\xa0',
      'X-Empty', ''
    ];
    const HEADERS = {
      'x-mixed-case': 'a  b',
      'set-cookie': ['a=1', 'b=2'],
      'x-dup': '1, 2',
      'x-latin1': 'caf\xe9',
      'x-nbsp': '\xa0x\xa0',
      'x-empty': ''
    };

    for (const [pathName, options] of PATHS) {
      it(`${pathName}: status line and headers of an unexpected response`,
        async function () {
          const server = await bodyServer((socket) => {
            socket.end(Buffer.from('HTTP/1.0 418 I am  a teapot \r\n' + HEAD +
              'Content-Length: 2\r\n\r\nhi', 'latin1'));
          });
          const ws = client(server.url, options);
          const [req, res] = await waitFor(ws, 'unexpected-response');
          assert.equal(res.statusCode, 418);
          assert.equal(res.statusMessage, 'I am  a teapot ');
          assert.equal(res.httpVersion, '1.0');
          assert.equal(res.httpVersionMajor, 1);
          assert.equal(res.httpVersionMinor, 0);
          assert.deepEqual(res.rawHeaders, [...RAW, 'Content-Length', '2']);
          assert.deepEqual({ ...res.headers },
            { ...HEADERS, 'content-length': '2' });
          const body = await readSlowly(res);
          assert.equal(body.toString(), 'hi');
          req.destroy();
        });

      it(`${pathName}: an empty reason, and the 'upgrade' response of a ` +
        '101 with a wrong Sec-WebSocket-Accept', async function () {
        const server = await bodyServer((socket) => {
          socket.write(Buffer.from('HTTP/1.1 101\r\n' +
            'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Accept: wrong\r\n' + HEAD + '\r\n', 'latin1'));
        });
        const ws = client(server.url, options);
        // Emitted on the next tick after 'upgrade': before this function
        // would resume from awaiting it.
        const errored = waitFor(ws, 'error');
        const [res] = await waitFor(ws, 'upgrade');
        assert.equal(res.statusCode, 101);
        assert.equal(res.statusMessage, '');
        assert.equal(res.httpVersion, '1.1');
        assert.equal(res.httpVersionMinor, 1);
        assert.deepEqual(res.rawHeaders, ['Upgrade', 'websocket',
          'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'wrong', ...RAW]);
        assert.deepEqual({ ...res.headers }, { upgrade: 'websocket',
          connection: 'Upgrade', 'sec-websocket-accept': 'wrong',
          ...HEADERS });
        const [err] = await errored;
        assert.equal(err.message, 'Invalid Sec-WebSocket-Accept header');
      });
    }
  });
