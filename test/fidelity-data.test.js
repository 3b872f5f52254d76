'use strict';

// Drop-in fidelity (issue 13), data path: what ws 8.23.1 does with messages
// that arrive while CLOSING, with send callbacks when the connection goes,
// with bufferedAmount, and with a Blob that cannot be read. Each behaviour
// was first measured with a small script against ws, then written here; the
// whole file runs against ws too (WSN_TEST_IMPL=ws).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer
} = require('./helpers/impl');
const {
  OP,
  acceptRaw,
  closePayload,
  createRawServer,
  frame,
  rawHandshake
} = require('./helpers/raw');
const {
  Cleanup,
  dispose,
  recordEvents,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const cleanup = new Cleanup();

const NOT_OPEN_CLOSING = 'WebSocket is not open: readyState 2 (CLOSING)';
const NOT_OPEN_CLOSED = 'WebSocket is not open: readyState 3 (CLOSED)';
const BLOB_CLOSED = 'The socket was closed while the blob was being read';

function nextMacrotask() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A ws peer server; tests that need one start it with this. */
async function peerServer(onConnection) {
  const wss = await startServer(PeerWebSocketServer);
  cleanup.add(() => stopServer(wss));
  if (onConnection) wss.on('connection', onConnection);
  return { wss, url: `ws://127.0.0.1:${wss.address().port}` };
}

/** A client of the implementation under test, open. */
async function openClient(url, options) {
  const ws = new WebSocket(url, options);
  const rec = recordEvents(ws);
  cleanup.add(() => dispose(ws));
  await waitFor(ws, 'open');
  return { ws, rec };
}

/**
 * A raw server standing in for the peer; `onConnection({ socket, reader })`
 * runs once the handshake is answered.
 */
async function rawPeer(onConnection) {
  const srv = await createRawServer(async (socket) => {
    const { reader } = await acceptRaw(socket);
    onConnection({ socket, reader });
  });
  cleanup.add(() => srv.close());
  return srv;
}

/** A callback that records (err, readyState) and whether 'close' came first. */
function recorder(ws, closed) {
  const calls = [];
  const make = (name) => (err) => {
    calls.push({ name, err, readyState: ws.readyState, afterClose: closed.done });
  };
  return { calls, make };
}

function watchClose(ws) {
  const closed = { done: false };
  ws.on('close', () => {
    closed.done = true;
  });
  return closed;
}

describe('messages that arrive while CLOSING', function () {
  this.timeout(5000);
  afterEach(() => cleanup.run());

  it('client: a message sent then close() at once still gets its echo', async function () {
    const { url } = await peerServer((ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    const { ws, rec } = await openClient(url);
    const states = [];
    ws.on('message', () => states.push(ws.readyState));
    ws.send('hello');
    ws.send(Buffer.alloc(100000, 7));
    ws.close();
    const [code] = await rec.close;
    assert.equal(code, 1005);
    assert.deepEqual(rec.log, ['open', 'message', 'message', 'close']);
    assert.equal(rec.messages[0][0].toString(), 'hello');
    assert.equal(rec.messages[1][0].length, 100000);
    assert.deepEqual(states, [WebSocket.CLOSING, WebSocket.CLOSING]);
  });

  it('client: messages the peer sends after reading our close frame are delivered; none after its own close frame', async function () {
    const srv = await rawPeer(async ({ socket, reader }) => {
      const f = await reader.next();
      assert.equal(f && f.opcode, OP.CLOSE);
      socket.write(Buffer.concat([
        frame({ payload: 'one', mask: false }),
        frame({ payload: 'two', mask: false })
      ]));
      socket.write(Buffer.concat([
        frame({ payload: 'three', mask: false }),
        frame({ opcode: OP.CLOSE, payload: closePayload(1000), mask: false }),
        frame({ payload: 'after its close', mask: false })
      ]));
    });
    const { ws, rec } = await openClient(srv.url);
    const states = [];
    ws.on('message', () => states.push(ws.readyState));
    ws.close();
    const [code] = await rec.close;
    assert.equal(code, 1000);
    assert.deepEqual(rec.messages.map(([m]) => m.toString()), ['one', 'two', 'three']);
    assert.deepEqual(states, [2, 2, 2]);
  });

  it('server: messages that arrive after close() are delivered while CLOSING', async function () {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const serverSide = new Promise((resolve) => {
      wss.once('connection', (ws) => {
        const rec = recordEvents(ws);
        const states = [];
        ws.on('message', () => states.push(ws.readyState));
        ws.close(4000);
        resolve({ ws, rec, states });
      });
    });
    const { socket, reader } = await rawHandshake(wss.address().port);
    cleanup.add(() => socket.destroy());
    const f = await reader.next();
    assert.equal(f && f.opcode, OP.CLOSE);
    assert.equal(f.code, 4000);
    socket.write(Buffer.concat([frame({ payload: 'a1' }), frame({ payload: 'a2' })]));
    socket.write(Buffer.concat([
      frame({ opcode: OP.CLOSE, payload: closePayload(1000) }),
      frame({ payload: 'after its close' })
    ]));
    const { rec, states } = await serverSide;
    const [code] = await rec.close;
    assert.equal(code, 1000);
    assert.deepEqual(rec.messages.map(([m]) => m.toString()), ['a1', 'a2']);
    assert.deepEqual(states, [2, 2]);
  });
});

describe('send callbacks when the connection goes', function () {
  this.timeout(10000);
  afterEach(() => cleanup.run());

  it('terminate(): callbacks run while CLOSING, before \'close\': the write in progress succeeds, the frames behind it get Node\'s ERR_STREAM_DESTROYED, a Blob being read ws\'s Blob error', async function () {
    // The peer never reads, so 16 MiB cannot all be written.
    const srv = await rawPeer(({ socket }) => socket.pause());
    const { ws, rec } = await openClient(srv.url);
    const closed = watchClose(ws);
    const { calls, make } = recorder(ws, closed);
    ws.send(Buffer.alloc(16 * 1024 * 1024), make('big'));
    await nextMacrotask();
    ws.send('small', make('small'));
    ws.ping('p', make('ping'));
    ws.send(new Blob(['blobdata']), make('blob'));
    ws.send('behind the blob', make('behind blob'));
    ws.terminate();
    assert.equal(ws.readyState, WebSocket.CLOSING);
    ws.send('x', make('in CLOSING'));
    const [code] = await rec.close;
    assert.equal(code, 1006);

    const byName = Object.fromEntries(calls.map((c) => [c.name, c]));
    assert.deepEqual(Object.keys(byName).sort(),
      ['behind blob', 'big', 'blob', 'in CLOSING', 'ping', 'small']);
    for (const c of calls) {
      assert.equal(c.afterClose, false, `${c.name}: called after 'close'`);
      assert.equal(c.readyState, WebSocket.CLOSING, `${c.name}: readyState`);
    }
    assert.equal(byName.big.err, null);
    for (const name of ['small', 'ping']) {
      const { err } = byName[name];
      assert.ok(err instanceof Error, name);
      assert.equal(err.code, 'ERR_STREAM_DESTROYED');
      assert.equal(err.message, 'Cannot call write after a stream was destroyed');
    }
    for (const name of ['blob', 'behind blob']) {
      assert.ok(byName[name].err instanceof Error, name);
      assert.equal(byName[name].err.message, BLOB_CLOSED);
    }
    assert.equal(byName['in CLOSING'].err.message, NOT_OPEN_CLOSING);
    assert.deepEqual(rec.log, ['open', 'close']);
  });

  for (const side of ['client', 'server']) {
    it(`${side}: send() then terminate() at once: the callback succeeds, while CLOSING, before 'close'`, async function () {
      let subject;
      if (side === 'client') {
        const { url } = await peerServer();
        subject = (await openClient(url)).ws;
      } else {
        const wss = await startServer(WebSocketServer);
        cleanup.add(() => stopServer(wss));
        const conn = waitFor(wss, 'connection');
        const peer = new PeerWebSocket(`ws://127.0.0.1:${wss.address().port}`);
        peer.on('error', () => {});
        cleanup.add(() => dispose(peer));
        [subject] = await conn;
      }
      const closed = watchClose(subject);
      const { calls, make } = recorder(subject, closed);
      subject.send('abc', make('one'));
      subject.send('def', make('two'));
      subject.terminate();
      await waitFor(subject, 'close');
      assert.deepEqual(calls.map((c) => [c.name, c.err, c.readyState, c.afterClose]),
        [['one', null, 2, false], ['two', null, 2, false]]);
    });
  }

  it('a send callback gets no error when its data was written before the peer closed', async function () {
    const { url } = await peerServer((ws) => {
      ws.on('message', () => ws.terminate());
    });
    const { ws, rec } = await openClient(url);
    const closed = watchClose(ws);
    const { calls, make } = recorder(ws, closed);
    ws.send('abc', make('one'));
    ws.send(Buffer.alloc(1024 * 1024), make('two'));
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.deepEqual(calls.map((c) => [c.name, c.err, c.afterClose]),
      [['one', null, false], ['two', null, false]]);
  });
});

describe('bufferedAmount as ws counts it', function () {
  this.timeout(5000);
  afterEach(() => cleanup.run());

  it('is 0 while connecting', async function () {
    const { url } = await peerServer();
    const ws = new WebSocket(url);
    cleanup.add(() => dispose(ws));
    assert.equal(ws.bufferedAmount, 0);
    await waitFor(ws, 'open');
  });

  it('send, ping and pong in CLOSING and CLOSED count their payload for good; their callbacks get the error', async function () {
    const { url } = await peerServer();
    const { ws, rec } = await openClient(url);
    // Written before anything is counted below: bytes still waiting could
    // leave (and stop counting) between two reads of bufferedAmount.
    await new Promise((resolve) => ws.send('written first', resolve));
    await nextMacrotask();
    ws.close();
    const base = ws.bufferedAmount;
    const errors = [];
    const cb = (err) => errors.push(err && err.message);
    ws.send('abc', cb);
    assert.equal(ws.bufferedAmount, base + 3);
    ws.ping('ab', cb);
    assert.equal(ws.bufferedAmount, base + 5);
    ws.pong('a', cb);
    assert.equal(ws.bufferedAmount, base + 6);
    ws.ping(cb); // no payload: nothing counted
    assert.equal(ws.bufferedAmount, base + 6);
    await rec.close;
    assert.deepEqual(errors, Array(4).fill(NOT_OPEN_CLOSING));
    // The close handshake is done: only what was sent after close() is left.
    assert.equal(ws.bufferedAmount, 6);
    const [err] = await new Promise((resolve) => {
      ws.send('zz', (...args) => resolve(args));
      assert.equal(ws.bufferedAmount, 8);
    });
    assert.equal(err.message, NOT_OPEN_CLOSED);
    assert.equal(ws.bufferedAmount, 8);
  });

  it('counts the payload of a Blob being read and of what waits behind it', async function () {
    const { url } = await peerServer();
    const { ws } = await openClient(url);
    const sent = new Promise((resolve) => {
      ws.send(new Blob(['blobdata']));
      ws.send('behind the blob', resolve);
    });
    assert.equal(ws.bufferedAmount, 8 + 15);
    assert.ifError(await sent);
    assert.equal(ws.bufferedAmount, 0);
  });

  it('after terminate() while a Blob is read, its bytes and those behind it stay counted, as in ws', async function () {
    const { url } = await peerServer();
    const { ws, rec } = await openClient(url);
    ws.send(new Blob(['blobdata']));
    ws.send('behind the blob');
    ws.terminate();
    await rec.close;
    assert.equal(ws.bufferedAmount, 8 + 15);
  });
});

describe('a Blob that cannot be read', function () {
  this.timeout(5000);
  afterEach(() => cleanup.run());

  it('fails its callback and those behind it, then emits ws\'s NotReadableError \'error\' and closes 1006', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-blob-'));
    cleanup.add(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, 'hello');
    const blob = await fs.openAsBlob(file);
    // A File backed by a file that changed since cannot be read.
    fs.writeFileSync(file, 'changed since');

    const received = [];
    const { url } = await peerServer((peer) => {
      peer.on('message', (data) => received.push(data.toString()));
    });
    const { ws, rec } = await openClient(url);
    const closed = watchClose(ws);
    const { calls, make } = recorder(ws, closed);
    ws.send(blob, make('blob'));
    ws.send('behind', make('behind'));
    assert.equal(ws.bufferedAmount, blob.size + 6);

    const err = await rec.error;
    assert.equal(err.name, 'NotReadableError');
    assert.equal(err.message, 'The blob could not be read');
    assert.equal(rec.readyStateAtError, WebSocket.CLOSING);
    const [code] = await rec.close;
    assert.equal(code, 1006);
    assert.deepEqual(rec.log, ['open', 'error', 'close']);
    assert.deepEqual(calls.map((c) => [c.name, c.err, c.readyState]),
      [['blob', err, WebSocket.OPEN], ['behind', err, WebSocket.OPEN]]);
    assert.deepEqual(received, []);
  });
});
