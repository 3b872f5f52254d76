'use strict';

// Small helpers shared by the interop tests (ws-native <-> ws) and the
// lifecycle tests. Nothing here depends on which implementation is under
// test: sockets are only driven through the public ws API, except where a
// helper is explicitly about the reference peer (always the real ws).

const crypto = require('node:crypto');
const { once } = require('node:events');

const OPEN = 1;
const CLOSED = 3;
const noop = () => {};

function sha256(data) {
  return crypto.createHash('sha256').update(toBuffer(data)).digest('hex');
}

// A message payload as delivered by ws (Buffer, ArrayBuffer or, with
// binaryType 'fragments', an array of Buffers) as one Buffer.
function toBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (Array.isArray(data)) return Buffer.concat(data.map(toBuffer));
  if (ArrayBuffer.isView(data)) {
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new TypeError(
    `unexpected payload type ${Object.prototype.toString.call(data)}`
  );
}

// The arguments of the next `event` emitted by `emitter`. Unlike
// events.once() this does not reject when 'error' is emitted, so it can wait
// for a 'close' that follows an expected 'error'.
function next(emitter, event) {
  return new Promise((resolve) => {
    emitter.once(event, (...args) => resolve(args));
  });
}

// Every tracked socket gets its 'close' event recorded as soon as it is
// tracked, so a test can await it later without racing the event.
const closeRecords = new WeakMap();

// Resolves with { code, reason } of the socket's 'close' event.
function closed(ws) {
  let record = closeRecords.get(ws);
  if (!record) {
    record = next(ws, 'close').then(([code, reason]) => ({ code, reason }));
    closeRecords.set(ws, record);
  }
  return record;
}

// Sends `data` from `from` and resolves with the next message `to` receives:
// { data, isBinary }.
async function transfer(from, to, data, options) {
  const received = next(to, 'message');
  if (options === undefined) from.send(data);
  else from.send(data, options);
  const [message, isBinary] = await received;
  return { data: message, isBinary };
}

// Echoes every message back with the same type.
function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

// Sends 64 KiB binary messages as fast as the socket drains them (keeping
// about 4 MiB queued, at most 64 messages per turn of the event loop), until
// the socket is no longer open.
function blast(ws) {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  (function pump() {
    if (ws.readyState !== OPEN) return;
    for (let i = 0; i < 64 && ws.bufferedAmount < 4 * 1024 * 1024; i++) {
      ws.send(chunk);
    }
    setImmediate(pump);
  })();
}

// Records 'error' events (so that they are not thrown) and the order of the
// error/close events.
function recordErrors(ws) {
  const record = { errors: [], order: [] };
  ws.on('error', (err) => {
    record.errors.push(err);
    record.order.push('error');
  });
  ws.on('close', () => record.order.push('close'));
  return record;
}

// Header (and masking key, all zeros, which leaves the payload unchanged) of
// a single unfragmented binary frame that announces `length` payload bytes.
// Writing it plus fewer than `length` bytes yields a frame cut in the middle.
function binaryFrameHeader(length, masked) {
  const header = Buffer.alloc(10 + (masked ? 4 : 0));
  header[0] = 0x82;
  header[1] = (masked ? 0x80 : 0) | 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length % 2 ** 32, 6);
  return header;
}

// Owns every socket, server and child process a test opens, and closes all of
// them afterwards (call cleanup() from afterEach): children are killed,
// sockets still open are terminated, then servers are closed.
class Tracker {
  constructor() {
    this.sockets = new Set();
    this.servers = new Set();
    this.children = new Set();
  }

  socket(ws) {
    closed(ws);
    this.sockets.add(ws);
    return ws;
  }

  server(wss) {
    this.servers.add(wss);
    wss.on('connection', (ws) => this.socket(ws));
    return wss;
  }

  child(proc) {
    this.children.add(proc);
    return proc;
  }

  // Creates `new Server({ port: 0, host: '127.0.0.1', ...options })` and
  // waits until it listens.
  async listen(Server, options = {}) {
    const wss = this.server(
      new Server({ port: 0, host: '127.0.0.1', ...options })
    );
    await once(wss, 'listening');
    const { port } = wss.address();
    return { wss, port, url: `ws://127.0.0.1:${port}` };
  }

  async cleanup() {
    const children = [...this.children];
    this.children.clear();
    await Promise.all(
      children.map((proc) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return null;
        const exited = once(proc, 'exit');
        proc.kill('SIGKILL');
        return exited;
      })
    );

    const sockets = [...this.sockets];
    this.sockets.clear();
    for (const wss of this.servers) {
      if (wss.clients) for (const ws of wss.clients) sockets.push(ws);
    }
    await Promise.all(
      sockets.map((ws) => {
        if (ws.readyState === CLOSED) return null;
        ws.on('error', noop);
        ws.terminate();
        return closed(ws);
      })
    );

    const servers = [...this.servers];
    this.servers.clear();
    await Promise.all(
      servers.map((wss) => new Promise((resolve) => wss.close(() => resolve())))
    );
  }
}

module.exports = {
  CLOSED,
  Tracker,
  binaryFrameHeader,
  blast,
  closed,
  echo,
  next,
  noop,
  recordErrors,
  sha256,
  toBuffer,
  transfer
};
