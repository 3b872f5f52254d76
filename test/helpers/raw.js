'use strict';

// Byte-level helpers for talking to a WebSocket peer over a plain TCP socket:
// a frame builder, a frame reader, a hand-written opening handshake (client
// side and server side) and a tiny HTTP response reader. None of this uses the
// implementation under test or ws, so the tests built on it see exactly the
// bytes that go over the wire.

const crypto = require('crypto');
const net = require('net');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const OP = {
  CONT: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa
};

/**
 * The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
 */
function acceptKey(key) {
  return crypto
    .createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

function toBuf(data) {
  if (data === undefined || data === null) return Buffer.alloc(0);
  if (typeof data === 'string') return Buffer.from(data);
  return Buffer.from(data);
}

/**
 * Build one raw frame.
 *
 * @param {Object} o
 * @param {Number} [o.opcode=1]
 * @param {Boolean} [o.fin=true]
 * @param {Boolean} [o.rsv1=false]
 * @param {Boolean} [o.rsv2=false]
 * @param {Boolean} [o.rsv3=false]
 * @param {(String|Buffer|Uint8Array)} [o.payload]
 * @param {(Boolean|Buffer)} [o.mask=true] true: a random masking key, false:
 *     unmasked, Buffer: that 4-byte key
 * @param {(Number|BigInt)} [o.length] The length to declare in the header
 *     (defaults to the payload length). When it is given explicitly and is a
 *     BigInt or above 65535, the 64-bit form is used; 126..65535 use the 16-bit
 *     form; below 126 the 7-bit form.
 * @param {Number} [o.lengthForm] Force the length encoding: 7, 16 or 64.
 * @return {Buffer}
 */
function frame(o = {}) {
  const opcode = o.opcode === undefined ? OP.TEXT : o.opcode;
  const fin = o.fin === undefined ? true : o.fin;
  const payload = toBuf(o.payload);
  const declared = o.length === undefined ? payload.length : o.length;
  let mask = o.mask === undefined ? true : o.mask;

  if (mask === true) mask = crypto.randomBytes(4);

  let form = o.lengthForm;
  if (!form) {
    if (typeof declared === 'bigint' || declared > 0xffff) form = 64;
    else if (declared > 125) form = 16;
    else form = 7;
  }

  const b0 =
    (fin ? 0x80 : 0) |
    (o.rsv1 ? 0x40 : 0) |
    (o.rsv2 ? 0x20 : 0) |
    (o.rsv3 ? 0x10 : 0) |
    (opcode & 0x0f);
  const maskBit = mask ? 0x80 : 0;
  const parts = [];

  if (form === 7) {
    parts.push(Buffer.from([b0, maskBit | Number(declared)]));
  } else if (form === 16) {
    const h = Buffer.alloc(4);
    h[0] = b0;
    h[1] = maskBit | 126;
    h.writeUInt16BE(Number(declared), 2);
    parts.push(h);
  } else {
    const h = Buffer.alloc(10);
    h[0] = b0;
    h[1] = maskBit | 127;
    h.writeBigUInt64BE(BigInt(declared), 2);
    parts.push(h);
  }

  if (mask) {
    parts.push(Buffer.from(mask));
    const masked = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) {
      masked[i] = payload[i] ^ mask[i & 3];
    }
    parts.push(masked);
  } else {
    parts.push(payload);
  }

  return Buffer.concat(parts);
}

/**
 * The payload of a close frame.
 *
 * @param {Number} code
 * @param {(String|Buffer)} [reason]
 */
function closePayload(code, reason) {
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/**
 * Parses frames from a socket (either direction; masked payloads are
 * unmasked). Frames are queued; `next()` waits for the next one and resolves
 * with `null` once the socket has closed and no frame is left.
 */
class FrameReader {
  constructor(socket, initial) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.isClosed = false;
    this.socketError = null;
    this.parseError = null;

    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        const waiters = this.waiters.splice(0);
        for (const w of waiters) w(null);
        resolve();
      });
    });

    socket.on('error', (err) => {
      this.socketError = err;
    });
    socket.on('data', (chunk) => this.push(chunk));

    if (initial && initial.length) this.push(initial);
  }

  push(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);

    for (;;) {
      const f = this.parseOne();
      if (!f) break;
      if (this.waiters.length) this.waiters.shift()(f);
      else this.frames.push(f);
    }
  }

  parseOne() {
    const b = this.buffer;
    if (b.length < 2) return null;

    let len = b[1] & 0x7f;
    const masked = (b[1] & 0x80) !== 0;
    let off = 2;

    if (len === 126) {
      if (b.length < 4) return null;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return null;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
        this.parseError = new Error('frame length too large for the reader');
        return null;
      }
      len = Number(big);
      off = 10;
    }

    let maskKey = null;
    if (masked) {
      if (b.length < off + 4) return null;
      maskKey = b.subarray(off, off + 4);
      off += 4;
    }

    if (b.length < off + len) return null;

    const payload = Buffer.from(b.subarray(off, off + len));
    if (maskKey) {
      for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i & 3];
    }

    this.buffer = b.subarray(off + len);

    const f = {
      fin: (b[0] & 0x80) !== 0,
      rsv1: (b[0] & 0x40) !== 0,
      rsv2: (b[0] & 0x20) !== 0,
      rsv3: (b[0] & 0x10) !== 0,
      opcode: b[0] & 0x0f,
      masked,
      maskKey: maskKey ? Buffer.from(maskKey) : null,
      payload
    };

    if (f.opcode === OP.CLOSE) {
      f.code = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
      f.reason = payload.length > 2 ? payload.subarray(2).toString() : '';
    }

    return f;
  }

  /**
   * The next frame, or `null` when the socket closed first.
   */
  next() {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Every frame received until the socket closes.
   */
  async untilClose() {
    const all = [];
    for (;;) {
      const f = await this.next();
      if (!f) return all;
      all.push(f);
    }
  }
}

/**
 * Parse the head of an HTTP message (request or response).
 */
function parseHead(text) {
  const lines = text.split('\r\n');
  const first = lines.shift();
  const headers = {};
  for (const line of lines) {
    if (!line) continue;
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] =
      headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { first, headers };
}

/**
 * Read bytes from `socket` until the end of an HTTP head. Resolves with
 * `{ head, rest }` (rest: the bytes after the head), or rejects if the socket
 * closes first.
 */
function readHead(socket) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);

    function onData(chunk) {
      buf = Buffer.concat([buf, chunk]);
      const i = buf.indexOf('\r\n\r\n');
      if (i === -1) return;
      cleanup();
      socket.pause();
      resolve({
        head: buf.subarray(0, i).toString('latin1'),
        rest: buf.subarray(i + 4)
      });
    }

    function onClose() {
      cleanup();
      reject(
        new Error(
          `socket closed before an HTTP head was read: ${JSON.stringify(
            buf.toString('latin1')
          )}`
        )
      );
    }

    function cleanup() {
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
    }

    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

function connect(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function upgradeRequest({
  path = '/',
  host = '127.0.0.1',
  key = SAMPLE_KEY,
  version = 13,
  headers = {}
} = {}) {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    `Sec-WebSocket-Version: ${version}`
  ];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

/**
 * Open a raw TCP connection to a WebSocket server and perform the opening
 * handshake by hand. Resolves with `{ socket, reader, status, headers }` once a
 * 101 response with the right Sec-WebSocket-Accept has been read.
 */
async function rawHandshake(port, opts = {}) {
  const key = opts.key || crypto.randomBytes(16).toString('base64');
  const socket = await connect(port);
  socket.on('error', () => {});
  socket.write(upgradeRequest({ ...opts, key }));

  const { head, rest } = await readHead(socket);
  const { first, headers } = parseHead(head);
  const status = Number(first.split(' ')[1]);

  if (status !== 101) {
    socket.destroy();
    throw new Error(`expected a 101 response, got: ${first}`);
  }
  if (headers['sec-websocket-accept'] !== acceptKey(key)) {
    socket.destroy();
    throw new Error('bad Sec-WebSocket-Accept in the 101 response');
  }

  const reader = new FrameReader(socket, rest);
  socket.resume();
  return { socket, reader, status, headers };
}

/**
 * Send raw bytes to an HTTP server and read one response. Resolves with
 * `{ statusLine, status, headers, body, raw, closed }`. The response is complete
 * when its Content-Length body has arrived, at the end of the head of a 101,
 * or when the server closes the connection. The socket is destroyed afterwards.
 */
function httpExchange(port, data) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;

    function finish(closed) {
      if (done) return;
      done = true;
      const raw = buf.toString('latin1');
      const i = raw.indexOf('\r\n\r\n');
      if (i === -1) {
        socket.destroy();
        reject(new Error(`incomplete HTTP response: ${JSON.stringify(raw)}`));
        return;
      }
      const { first, headers } = parseHead(raw.slice(0, i));
      socket.destroy();
      resolve({
        statusLine: first,
        status: Number(first.split(' ')[1]),
        headers,
        body: raw.slice(i + 4),
        raw,
        closed
      });
    }

    socket.on('connect', () => socket.write(data));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const raw = buf.toString('latin1');
      const i = raw.indexOf('\r\n\r\n');
      if (i === -1) return;
      const { first, headers } = parseHead(raw.slice(0, i));
      if (Number(first.split(' ')[1]) === 101) {
        finish(false);
      } else if (
        headers['content-length'] !== undefined &&
        buf.length - (i + 4) >= Number(headers['content-length'])
      ) {
        finish(false);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => finish(true));
  });
}

/**
 * A plain TCP server standing in for a WebSocket server, for client tests.
 * `onConnection(socket)` is called for every accepted socket. `close()`
 * destroys every socket it accepted and closes the listener.
 */
async function createRawServer(onConnection) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    server,
    sockets,
    port: server.address().port,
    url: `ws://127.0.0.1:${server.address().port}`,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    }
  };
}

/**
 * Read the client's upgrade request from `socket`. Resolves with
 * `{ method, url, headers, rest }`.
 */
async function readUpgradeRequest(socket) {
  const { head, rest } = await readHead(socket);
  const { first, headers } = parseHead(head);
  const [method, url] = first.split(' ');
  return { method, url, headers, rest };
}

/**
 * A 101 response for a given key. `opts.accept` overrides the accept value,
 * `opts.omitUpgrade` leaves out the Upgrade header, `opts.headers` adds more.
 */
function upgradeResponse(key, opts = {}) {
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  if (!opts.omitUpgrade) lines.push('Upgrade: websocket');
  lines.push('Connection: Upgrade');
  lines.push(
    `Sec-WebSocket-Accept: ${
      opts.accept === undefined ? acceptKey(key) : opts.accept
    }`
  );
  for (const [k, v] of Object.entries(opts.headers || {})) {
    lines.push(`${k}: ${v}`);
  }
  return lines.join('\r\n') + '\r\n\r\n';
}

/**
 * Accept a client handshake on a raw socket: read the request, answer 101 and
 * return `{ request, reader }` where `reader` parses the client's frames.
 */
async function acceptRaw(socket, opts = {}) {
  const request = await readUpgradeRequest(socket);
  socket.write(upgradeResponse(request.headers['sec-websocket-key'], opts));
  const reader = new FrameReader(socket, request.rest);
  socket.resume();
  return { request, reader };
}

module.exports = {
  GUID,
  OP,
  SAMPLE_KEY,
  FrameReader,
  acceptKey,
  acceptRaw,
  closePayload,
  connect,
  createRawServer,
  frame,
  httpExchange,
  parseHead,
  rawHandshake,
  readHead,
  readUpgradeRequest,
  upgradeRequest,
  upgradeResponse
};
