'use strict';

// The WebSocket class with ws 8's surface. The protocol runs in C (see
// src/conn.c); this file checks arguments, keeps readyState and
// bufferedAmount, and turns native events into ws's events, in ws's order.

const EventEmitter = require('events');
const { randomBytes } = require('crypto');
const util = require('util');

const { binding, C, ensureStarted, register, unregister, retain, release } =
  require('./native');
const {
  BINARY_TYPES,
  CLOSE_TIMEOUT,
  EMPTY_BUFFER,
  hasBlob,
  kStatusCode
} = require('./constants');
const { EventTarget, defineEventHandlerAttributes } = require('./event-target');

const readyStates = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const subprotocolRegex = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;
const protocolVersions = [8, 13];
// Bytes waiting to be written after which the next send fails the
// connection (ws-native only; see _sendBufferFull).
const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;

/**
 * ws's close code rule (validation.js isValidStatusCode).
 *
 * @param {number} code
 * @return {boolean}
 */
function isValidStatusCode(code) {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 &&
      code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

/**
 * ws's isBlob (validation.js): a Blob or File, by its shape.
 */
function isBlob(value) {
  return (
    hasBlob &&
    typeof value === 'object' &&
    value !== null &&
    typeof value.arrayBuffer === 'function' &&
    typeof value.type === 'string' &&
    typeof value.stream === 'function' &&
    (value[Symbol.toStringTag] === 'Blob' ||
      value[Symbol.toStringTag] === 'File')
  );
}

/**
 * Normalises data for the binding: strings, byte views and Blobs pass
 * through; anything else becomes a Buffer as ws's toBuffer does.
 */
function toSendable(data) {
  if (typeof data === 'string' || ArrayBuffer.isView(data) ||
      data instanceof ArrayBuffer || isBlob(data)) {
    return data;
  }
  return Buffer.from(data);
}

function byteLengthOf(data) {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (isBlob(data)) return data.size;
  return data.byteLength;
}

class WebSocket extends EventEmitter {
  /**
   * @param {(String|URL|null)} address The URL, or null for a server-side
   *     socket (created by WebSocketServer)
   * @param {(String|String[])} [protocols]
   * @param {Object} [options]
   */
  constructor(address, protocols, options) {
    super();
    this._binaryType = BINARY_TYPES[0];
    this._closeCode = 1006;
    this._closeFrameReceived = false;
    this._closeFrameSent = false;
    this._closeMessage = EMPTY_BUFFER;
    this._closeTimer = null;
    this._errorEmitted = false;
    this._extensions = {};
    this._paused = false;
    this._pending = null; // events held while paused
    this._protocol = '';
    this._readyState = WebSocket.CONNECTING;
    this._id = 0;
    this._live = false;
    this._nativeClosed = false;
    this._sent = 0; // frame bytes queued since the socket opened
    this._written = 0; // as last reported by C
    this._bufferedAmount = 0; // bytes "sent" with no socket (ws semantics)
    this._callbacks = []; // [endOffset, cb], in order
    this._firstFragment = true;
    this._fragments = null; // frames of a message being received
    this._turnBase = -1; // _sent when this JS turn started sending
    this._blocked = null; // frames waiting behind a Blob being read
    this._blobBytes = 0; // size of Blobs being read
    this._handshakeTimer = null;
    this._isServer = address === null;
    this._autoPong = true;
    this._maxBuffered = DEFAULT_MAX_BUFFERED;
    this._url = undefined;

    if (address !== null) {
      if (protocols === undefined) {
        protocols = [];
      } else if (!Array.isArray(protocols)) {
        if (typeof protocols === 'object' && protocols !== null) {
          options = protocols;
          protocols = [];
        } else {
          protocols = [protocols];
        }
      }
      initAsClient(this, address, protocols, options);
    } else {
      this._autoPong = options ? options.autoPong !== false : true;
      if (options) setMaxBuffered(this, options.maxBufferedAmount);
    }
  }

  get binaryType() {
    return this._binaryType;
  }

  set binaryType(type) {
    if (!BINARY_TYPES.includes(type)) return;
    this._binaryType = type;
  }

  get bufferedAmount() {
    if (this._id === 0) return this._bufferedAmount;
    if (!this._nativeClosed) {
      const written = binding.written(this._id);
      if (written > this._written) this._written = written;
    }
    // As with a Node socket's writableLength, bytes sent during the current
    // JS turn count as buffered until the turn ends, even if the I/O thread
    // has already written them.
    const acked = this._turnBase >= 0
      ? Math.min(this._written, this._turnBase) : this._written;
    return this._sent - acked + this._bufferedAmount + this._blobBytes;
  }

  get extensions() {
    return Object.keys(this._extensions).join();
  }

  get isPaused() {
    return this._paused;
  }

  get protocol() {
    return this._protocol;
  }

  get readyState() {
    return this._readyState;
  }

  get url() {
    return this._url;
  }

  /**
   * Server side: binds this object to an accepted connection.
   *
   * @private
   */
  _attach(id, protocol) {
    this._id = id;
    this._protocol = protocol;
    this._readyState = WebSocket.OPEN;
    register(id, this);
    retain();
    this._live = true;
  }

  /**
   * Emits 'close' once, as ws's emitClose does.
   *
   * @private
   */
  emitClose() {
    if (this._readyState === WebSocket.CLOSED) return;
    this._readyState = WebSocket.CLOSED;
    this._cleanup();
    this.emit('close', this._closeCode, this._closeMessage);
  }

  /** @private */
  _cleanup() {
    clearTimeout(this._closeTimer);
    clearTimeout(this._handshakeTimer);
    this._closeTimer = this._handshakeTimer = null;
    if (this._id !== 0) unregister(this._id);
    if (this._live) {
      this._live = false;
      release();
    }
    const cbs = this._callbacks;
    this._callbacks = [];
    if (cbs.length) {
      const err = new Error('The socket was closed while data was being sent');
      for (const [, cb] of cbs) process.nextTick(cb, err);
    }
  }

  close(code, data) {
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.readyState === WebSocket.CONNECTING) {
      const msg = 'WebSocket was closed before the connection was established';
      abortHandshake(this, msg);
      return;
    }
    if (this.readyState === WebSocket.CLOSING) {
      // Close frames went both ways (or the peer erred): C ends the socket.
      if (this._closeFrameSent &&
          (this._closeFrameReceived || this._errorEmitted)) {
        binding.close(this._id, -1, null, 0);
      }
      return;
    }
    let reason = null;
    if (code === undefined) {
      code = -1;
    } else if (typeof code !== 'number' || !isValidStatusCode(code)) {
      throw new TypeError('First argument must be a valid error code number');
    } else if (data !== undefined && data.length) {
      reason = typeof data === 'string' ? Buffer.from(data) : toSendable(data);
      if (byteLengthOf(reason) > 123) {
        throw new RangeError('The message must not be greater than 123 bytes');
      }
    }
    this._readyState = WebSocket.CLOSING;
    this._sendClose(code, reason);
    setCloseTimer(this);
  }

  /** @private */
  _sendClose(code, reason) {
    if (this._blocked !== null) {
      // A Blob is being read: the close frame goes after it, as in ws.
      this._blocked.push(() => this._sendClose(code, reason));
      return;
    }
    if (this._nativeClosed) return;
    this._sent += binding.close(this._id, code, reason,
      this._isServer ? 0 : C.SEND_MASK);
    this._closeFrameSent = true;
  }

  pause() {
    if (this.readyState === WebSocket.CONNECTING ||
        this.readyState === WebSocket.CLOSED) {
      return;
    }
    this._paused = true;
    binding.pause(this._id);
  }

  resume() {
    if (this.readyState === WebSocket.CONNECTING ||
        this.readyState === WebSocket.CLOSED) {
      return;
    }
    this._paused = false;
    binding.resume(this._id);
    // Events that arrived after pause() was called are delivered now, in
    // order; a listener may pause again, which keeps the rest held.
    const pending = this._pending;
    this._pending = null;
    if (pending) {
      for (let i = 0; i < pending.length; i++) {
        if (this._paused) {
          this._pending = pending.slice(i).concat(this._pending || []);
          break;
        }
        this._onNativeEvent(...pending[i]);
      }
    }
  }

  ping(data, mask, cb) {
    this._control(C_PING, data, mask, cb);
  }

  pong(data, mask, cb) {
    this._control(C_PONG, data, mask, cb);
  }

  /** @private */
  _control(opcode, data, mask, cb) {
    if (this.readyState === WebSocket.CONNECTING) {
      throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    }
    if (typeof data === 'function') {
      cb = data;
      data = mask = undefined;
    } else if (typeof mask === 'function') {
      cb = mask;
      mask = undefined;
    }
    if (typeof data === 'number') data = data.toString();
    if (this.readyState !== WebSocket.OPEN) {
      sendAfterClose(this, data, cb);
      return;
    }
    if (mask === undefined) mask = !this._isServer;
    data = data === undefined || data === null ? EMPTY_BUFFER : toSendable(data);
    if (byteLengthOf(data) > 125) {
      throw new RangeError('The data size must not be greater than 125 bytes');
    }
    this._queue(data, opcode, C.SEND_FIN | (mask ? C.SEND_MASK : 0), cb);
  }

  send(data, options, cb) {
    if (typeof options === 'function') {
      cb = options;
      options = {};
    }
    if (this.readyState === WebSocket.CONNECTING) {
      throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    }
    if (typeof data === 'number') data = data.toString();
    if (this.readyState !== WebSocket.OPEN) {
      sendAfterClose(this, data, cb);
      return;
    }
    const opts = {
      binary: typeof data !== 'string',
      mask: !this._isServer,
      fin: true,
      ...options
    };
    let opcode = opts.binary ? 2 : 1;
    if (!this._firstFragment) opcode = 0;
    this._firstFragment = !!opts.fin;
    const flags = (opts.fin ? C.SEND_FIN : 0) | (opts.mask ? C.SEND_MASK : 0);
    this._queue(data === undefined || data === null ? EMPTY_BUFFER
      : toSendable(data), opcode, flags, cb);
  }

  /** @private */
  _queue(data, opcode, flags, cb) {
    if (this._blocked !== null) {
      this._blocked.push(() => this._queue(data, opcode, flags, cb));
      return;
    }
    if (isBlob(data)) {
      this._sendBlob(data, opcode, flags, cb);
      return;
    }
    if (this._turnBase < 0) markTurn(this);
    // _written may be stale, so this cheap test can only err towards a
    // recount; the recount decides.
    if (this._sent - this._written > this._maxBuffered &&
        this._sendBufferFull(cb)) {
      return;
    }
    if (cb) flags |= C.SEND_ACK;
    this._sent += binding.send(this._id, data, opcode, flags);
    if (cb) this._callbacks.push([this._sent, cb]);
  }

  /**
   * A peer that does not read must not make us buffer without end (ws
   * would): once more than maxBufferedAmount bytes wait to be written, the
   * next send fails the connection with an 'error' (as a too-big message
   * from the peer does) and drops it. One send of any size is always
   * accepted while under the limit.
   *
   * @private
   */
  _sendBufferFull(cb) {
    const buffered = this.bufferedAmount;
    if (buffered <= this._maxBuffered) return false;
    const err = new Error(
      `Send buffer full: ${buffered} bytes are waiting to be written ` +
        `(maxBufferedAmount: ${this._maxBuffered})`
    );
    err.code = 'WSN_ERR_SEND_BUFFER_FULL';
    if (cb) process.nextTick(cb, err);
    this._readyState = WebSocket.CLOSING;
    if (!this._nativeClosed) binding.terminate(this._id);
    if (!this._errorEmitted) {
      this._errorEmitted = true;
      this.emit('error', err);
    }
    return true;
  }

  /**
   * Reads a Blob, then sends it; frames queued meanwhile wait behind it so
   * order is kept (ws's Sender does the same).
   *
   * @private
   */
  _sendBlob(blob, opcode, flags, cb) {
    this._blocked = [];
    this._blobBytes += blob.size;
    const finish = (send) => {
      this._blobBytes -= blob.size;
      const queued = this._blocked;
      this._blocked = null;
      send();
      // Each queued item may block again behind another Blob; later items
      // then queue behind it, in order.
      for (const run of queued) run();
    };
    blob.arrayBuffer().then((arrayBuffer) => {
      finish(() => {
        if (this._nativeClosed) {
          const err = new Error('The socket was closed while the blob was being read');
          if (cb) process.nextTick(cb, err);
          return;
        }
        this._queue(Buffer.from(arrayBuffer), opcode, flags, cb);
      });
    }, (err) => {
      finish(() => {
        if (cb) process.nextTick(cb, err);
      });
    });
  }

  terminate() {
    if (this.readyState === WebSocket.CLOSED) return;
    if (this.readyState === WebSocket.CONNECTING) {
      const msg = 'WebSocket was closed before the connection was established';
      abortHandshake(this, msg);
      return;
    }
    this._readyState = WebSocket.CLOSING;
    if (!this._nativeClosed) binding.terminate(this._id);
  }

  /**
   * Native events for this socket (see lib/native.js).
   *
   * @private
   */
  _onNativeEvent(type, payload, a, b, c) {
    if (this._paused && (type === C.EV_MESSAGE || type === C.EV_PING ||
        type === C.EV_PONG)) {
      // ws stops reading at pause(); events already on their way wait here.
      if (this._pending === null) this._pending = [];
      this._pending.push([type, payload, a, b, c]);
      return;
    }
    switch (type) {
      case C.EV_MESSAGE: {
        if (this._readyState !== WebSocket.OPEN &&
            this._readyState !== WebSocket.CLOSING) return;
        // Each frame of a fragmented message arrives on its own, as ws
        // keeps them ('fragments'); empty frames add nothing, as in ws.
        if (a & C.MSG_MORE) {
          if (this._fragments === null) this._fragments = [];
          if (payload.length) this._fragments.push(payload);
          return;
        }
        let fragments = this._fragments;
        if (fragments !== null) {
          this._fragments = null;
          if (payload.length) fragments.push(payload);
        } else {
          fragments = payload.length ? [payload] : [];
        }
        if (a & C.MSG_BINARY) {
          this.emit('message', convertBinary(fragments, this._binaryType), true);
        } else {
          this.emit('message', concat(fragments), false);
        }
        return;
      }
      case C.EV_PING:
        // C already answered when autoPong is on (before this event, as ws).
        this.emit('ping', payload);
        return;
      case C.EV_PONG:
        this.emit('pong', payload);
        return;
      case C.EV_WRITTEN:
        if (c > this._written) this._written = c;
        this._runCallbacks();
        return;
      case C.EV_CLOSE_FRAME:
        this._closeFrameReceived = true;
        this._closeCode = a;
        this._closeMessage = Buffer.from(payload);
        // C answered with the same code and reason, as ws does.
        this._closeFrameSent = true;
        this._readyState = WebSocket.CLOSING;
        setCloseTimer(this);
        return;
      case C.EV_ERROR: {
        this._readyState = WebSocket.CLOSING;
        this._closeFrameSent = true;
        setCloseTimer(this);
        if (this._errorEmitted) return;
        this._errorEmitted = true;
        this.emit('error', frameError(a, b));
        return;
      }
      case C.EV_OPEN:
        onOpen(this, payload, a, b);
        return;
      case C.EV_DATA:
        if (this._res) pushBody(this._res, payload);
        return;
      case C.EV_SOCKET_ERROR:
        onSocketError(this, payload, a);
        return;
      case C.EV_CLOSED:
        this._nativeClosed = true;
        // A failed handshake emits its own 'error' and 'close'.
        if (this._aborted) return;
        if (this._pending) {
          // Deliver what was held before announcing the close.
          const pending = this._pending;
          this._pending = null;
          this._paused = false;
          for (const ev of pending) this._onNativeEvent(...ev);
        }
        this._written = this._sent; // nothing more will be written
        if (this._res) endBody(this._res);
        if (this._readyState === WebSocket.CONNECTING) {
          // The response was unexpected and a listener took it: ws leaves
          // the socket to the user; we only stop counting it as live.
          if (this._live) {
            this._live = false;
            release();
          }
          unregister(this._id);
          return;
        }
        this.emitClose();
        return;
    }
  }

  /** @private */
  _runCallbacks() {
    const cbs = this._callbacks;
    let i = 0;
    while (i < cbs.length && cbs[i][0] <= this._written) i++;
    if (i === 0) return;
    const done = cbs.splice(0, i);
    for (const [, cb] of done) cb(null);
  }
}

const C_PING = 0x9;
const C_PONG = 0xa;

for (const [i, state] of readyStates.entries()) {
  const desc = { enumerable: true, value: i };
  Object.defineProperty(WebSocket, state, desc);
  Object.defineProperty(WebSocket.prototype, state, desc);
}

for (const property of ['binaryType', 'bufferedAmount', 'extensions',
  'isPaused', 'protocol', 'readyState', 'url']) {
  Object.defineProperty(WebSocket.prototype, property, { enumerable: true });
}

defineEventHandlerAttributes(WebSocket.prototype);
WebSocket.prototype.addEventListener = EventTarget.addEventListener;
WebSocket.prototype.removeEventListener = EventTarget.removeEventListener;

module.exports = WebSocket;

/**
 * ws's error for a frame C rejected, from the table C exported.
 */
// Sockets that sent during the current JS turn (see bufferedAmount).
let turnSockets = [];

function markTurn(websocket) {
  websocket._turnBase = websocket._sent;
  if (turnSockets.push(websocket) === 1) queueMicrotask(endTurn);
}

function endTurn() {
  const sockets = turnSockets;
  turnSockets = [];
  for (const ws of sockets) ws._turnBase = -1;
}

function frameError(id, arg) {
  const e = C.errors[String(id | 0)];
  const message = e.message.replace('%u', String(arg));
  const Ctor = e.ctor === 'RangeError' ? RangeError : Error;
  const err = new Ctor(e.prefix ? `Invalid WebSocket frame: ${message}` : message);
  err.code = e.code;
  err[kStatusCode] = e.closeCode;
  return err;
}

function concat(fragments) {
  if (fragments.length === 1) return fragments[0];
  if (fragments.length === 0) return EMPTY_BUFFER;
  return Buffer.concat(fragments);
}

function convertBinary(fragments, binaryType) {
  if (binaryType === 'fragments') return fragments;
  if (binaryType === 'blob') return new Blob(fragments);
  const buf = concat(fragments);
  if (binaryType === 'arraybuffer') {
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  }
  return buf;
}

function setCloseTimer(websocket) {
  if (websocket._closeTimer !== null) return;
  websocket._closeTimer = setTimeout(() => {
    websocket._closeTimer = null;
    if (!websocket._nativeClosed) binding.terminate(websocket._id);
  }, websocket._closeTimeout || CLOSE_TIMEOUT);
}

function sendAfterClose(websocket, data, cb) {
  if (data) {
    const length = byteLengthOf(toSendable(data));
    if (websocket._id !== 0) websocket._sent += length;
    else websocket._bufferedAmount += length;
  }
  if (cb) {
    const err = new Error(
      `WebSocket is not open: readyState ${websocket.readyState} ` +
        `(${readyStates[websocket.readyState]})`
    );
    process.nextTick(cb, err);
  }
}

function emitErrorAndClose(websocket, err) {
  websocket._readyState = WebSocket.CLOSING;
  websocket._errorEmitted = true;
  websocket.emit('error', err);
  websocket.emitClose();
}

/**
 * Fails the opening handshake as ws's abortHandshake does: the socket goes
 * at once, 'error' and 'close' follow on the next tick.
 */
function abortHandshake(websocket, message) {
  websocket._readyState = WebSocket.CLOSING;
  const err = new Error(message);
  Error.captureStackTrace(err, abortHandshake);
  websocket._aborted = true;
  if (websocket._id !== 0 && !websocket._nativeClosed) {
    binding.terminate(websocket._id);
  }
  clearTimeout(websocket._handshakeTimer);
  process.nextTick(emitErrorAndClose, websocket, err);
}

/**
 * ws-native only: the bound on bytes waiting to be written (see
 * _sendBufferFull). Infinity turns it off, as in ws.
 */
function setMaxBuffered(websocket, value) {
  if (value === undefined) return;
  if (typeof value !== 'number' || !(value >= 0)) {
    throw new TypeError('The maxBufferedAmount option must be a number >= 0');
  }
  websocket._maxBuffered = value;
}

// ---- client ------------------------------------------------------------

function initAsClient(websocket, address, protocols, options) {
  const opts = {
    allowSynchronousEvents: true,
    autoPong: true,
    protocolVersion: protocolVersions[1],
    maxPayload: 100 * 1024 * 1024,
    skipUTF8Validation: false,
    perMessageDeflate: true,
    followRedirects: false,
    maxRedirects: 10,
    ...options
  };
  websocket._autoPong = opts.autoPong;
  websocket._closeTimeout = opts.closeTimeout;
  setMaxBuffered(websocket, opts.maxBufferedAmount);

  if (!protocolVersions.includes(opts.protocolVersion)) {
    throw new RangeError(
      `Unsupported protocol version: ${opts.protocolVersion} ` +
        `(supported versions: ${protocolVersions.join(', ')})`
    );
  }

  let parsedUrl;
  if (address instanceof URL) {
    parsedUrl = address;
  } else {
    try {
      parsedUrl = new URL(address);
    } catch (e) {
      throw new SyntaxError(`Invalid URL: ${address}`);
    }
  }
  if (parsedUrl.protocol === 'http:') parsedUrl.protocol = 'ws:';
  else if (parsedUrl.protocol === 'https:') parsedUrl.protocol = 'wss:';
  websocket._url = parsedUrl.href;

  const isSecure = parsedUrl.protocol === 'wss:';
  const isIpcUrl = parsedUrl.protocol === 'ws+unix:';
  let invalidUrlMessage;
  if (parsedUrl.protocol !== 'ws:' && !isSecure && !isIpcUrl) {
    invalidUrlMessage =
      'The URL\'s protocol must be one of "ws:", "wss:", ' +
      '"http:", "https:", or "ws+unix:"';
  } else if (isIpcUrl && !parsedUrl.pathname) {
    invalidUrlMessage = "The URL's pathname is empty";
  } else if (parsedUrl.hash) {
    invalidUrlMessage = 'The URL contains a fragment identifier';
  }
  if (invalidUrlMessage) throw new SyntaxError(invalidUrlMessage);

  const protocolSet = new Set();
  for (const protocol of protocols) {
    if (typeof protocol !== 'string' || !subprotocolRegex.test(protocol) ||
        protocolSet.has(protocol)) {
      throw new SyntaxError('An invalid or duplicated subprotocol was specified');
    }
    protocolSet.add(protocol);
  }

  // What is not built yet fails clearly instead of silently differing.
  if (isSecure) {
    throw new Error('ws-native: wss:// is not supported yet (see README)');
  }
  if (isIpcUrl) {
    throw new Error('ws-native: ws+unix:// is not supported yet (see README)');
  }
  if (opts.agent || opts.createConnection) {
    throw new Error(
      'ws-native: the agent and createConnection options are not supported yet'
    );
  }

  const key = randomBytes(16).toString('base64');
  const port = Number(parsedUrl.port) || 80;
  const host = parsedUrl.hostname.startsWith('[')
    ? parsedUrl.hostname.slice(1, -1) : parsedUrl.hostname;
  const headers = {
    ...opts.headers,
    'Sec-WebSocket-Version': opts.protocolVersion,
    'Sec-WebSocket-Key': key,
    Connection: 'Upgrade',
    Upgrade: 'websocket'
  };
  if (protocols.length) headers['Sec-WebSocket-Protocol'] = protocols.join(',');
  if (opts.origin) {
    if (opts.protocolVersion < 13) headers['Sec-WebSocket-Origin'] = opts.origin;
    else headers.Origin = opts.origin;
  }
  if (parsedUrl.username || parsedUrl.password) {
    const auth = `${decodeURIComponent(parsedUrl.username)}:` +
      `${decodeURIComponent(parsedUrl.password)}`;
    headers.Authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  }
  const hasHost = Object.keys(headers).some((h) => h.toLowerCase() === 'host');
  let request = `GET ${parsedUrl.pathname + parsedUrl.search} HTTP/1.1\r\n`;
  if (!hasHost) {
    request += `Host: ${parsedUrl.host}\r\n`;
  }
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      const s = String(v);
      if (/[\r\n]/.test(s) || /[\r\n:]/.test(name)) {
        throw new TypeError(`Invalid character in header content ["${name}"]`);
      }
      request += `${name}: ${s}\r\n`;
    }
  }
  request += '\r\n';

  websocket._protocolSet = protocolSet;
  websocket._handshakeKey = key;
  ensureStarted();
  let flags = 0;
  if (!opts.autoPong) flags |= C.CONN_NO_AUTO_PONG;
  if (opts.skipUTF8Validation) flags |= C.CONN_SKIP_UTF8;
  const id = binding.connect(host, port, key, request, opts.maxPayload, flags);
  websocket._id = id;
  register(id, websocket);
  retain();
  websocket._live = true;

  if (opts.handshakeTimeout) {
    websocket._handshakeTimer = setTimeout(() => {
      websocket._handshakeTimer = null;
      abortHandshake(websocket, 'Opening handshake has timed out');
    }, opts.handshakeTimeout);
  }
}

/**
 * A response shaped like the IncomingMessage ws passes to its events. With
 * `open`, the body stays readable: more arrives as EV_DATA until
 * Content-Length bytes came or the server closed.
 */
function makeResponse(head, body, open) {
  const text = head.toString('latin1');
  const lines = text.split('\r\n');
  const status = /^HTTP\/(\d)\.(\d) (\d{3}) ?(.*)$/.exec(lines[0]) || [];
  const rawHeaders = [];
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === 'set-cookie') {
      (headers[lower] || (headers[lower] = [])).push(value);
    } else if (headers[lower] === undefined) {
      headers[lower] = value;
    } else {
      headers[lower] += ', ' + value;
    }
  }
  const { Readable } = require('stream');
  const res = new Readable({ read() {} });
  res.statusCode = Number(status[3]);
  res.statusMessage = status[4] || '';
  res.httpVersion = status[1] ? `${status[1]}.${status[2]}` : '1.1';
  res.headers = headers;
  res.rawHeaders = rawHeaders;
  const length = headers['content-length'];
  res._remaining = open && length !== undefined && /^\d+$/.test(length)
    ? Number(length) : Infinity;
  pushBody(res, body);
  if (!open) res.push(null);
  return res;
}

/** Adds body bytes to an unexpected response (Buffer copies: `chunk` may
 * be a view into the event batch). */
function pushBody(res, chunk) {
  if (res.readableEnded || res._remaining === 0 || res._ended) return;
  if (chunk && chunk.length) {
    const n = Math.min(chunk.length, res._remaining);
    res._remaining -= n;
    res.push(Buffer.from(chunk.subarray(0, n)));
  }
  if (res._remaining === 0) endBody(res);
}

function endBody(res) {
  if (res._ended) return;
  res._ended = true;
  res.push(null);
}

function onOpen(websocket, payload, result, headLen) {
  if (websocket._readyState !== WebSocket.CONNECTING || websocket._aborted) {
    return;
  }
  if (result === C.HS_BAD_RESPONSE) {
    abortHandshake(websocket, 'Parse Error: Invalid HTTP response');
    return;
  }
  const unexpected = result === C.HS_NOT_101;
  const res = makeResponse(payload.subarray(0, headLen),
    payload.subarray(headLen), unexpected);
  if (unexpected) {
    clearTimeout(websocket._handshakeTimer);
    websocket._res = res;
    // Like ws's ClientRequest, the user ends the exchange with destroy()
    // or abort() once it has what it wants from the response.
    const req = {
      method: 'GET',
      path: new URL(websocket._url).pathname,
      destroy() {
        if (!websocket._nativeClosed) binding.terminate(websocket._id);
        return this;
      },
      abort() {
        this.destroy();
      }
    };
    if (!websocket.emit('unexpected-response', req, res)) {
      abortHandshake(websocket, `Unexpected server response: ${res.statusCode}`);
    }
    return;
  }
  websocket.emit('upgrade', res);
  if (websocket._readyState !== WebSocket.CONNECTING) return;
  if (result === C.HS_BAD_UPGRADE) {
    abortHandshake(websocket, 'Invalid Upgrade header');
    return;
  }
  if (result === C.HS_BAD_ACCEPT) {
    abortHandshake(websocket, 'Invalid Sec-WebSocket-Accept header');
    return;
  }
  const serverProt = res.headers['sec-websocket-protocol'];
  const protocolSet = websocket._protocolSet;
  let protError;
  if (serverProt !== undefined) {
    if (!protocolSet.size) {
      protError = 'Server sent a subprotocol but none was requested';
    } else if (!protocolSet.has(serverProt)) {
      protError = 'Server sent an invalid subprotocol';
    }
  } else if (protocolSet.size) {
    protError = 'Server sent no subprotocol';
  }
  if (protError) {
    abortHandshake(websocket, protError);
    return;
  }
  if (res.headers['sec-websocket-extensions'] !== undefined) {
    abortHandshake(websocket,
      'Server sent a Sec-WebSocket-Extensions header but no extension was requested');
    return;
  }
  if (serverProt) websocket._protocol = serverProt;
  clearTimeout(websocket._handshakeTimer);
  websocket._handshakeTimer = null;
  websocket._readyState = WebSocket.OPEN;
  websocket.emit('open');
}

/**
 * A connect or lookup failure, as Node's net module reports it.
 */
function onSocketError(websocket, payload, errno) {
  if (websocket._aborted || websocket._readyState !== WebSocket.CONNECTING) {
    return;
  }
  const [syscall, host, port] = payload.toString().split('\0');
  errno |= 0;
  const code = util.getSystemErrorName(errno);
  let err;
  if (syscall === 'getaddrinfo') {
    err = new Error(`getaddrinfo ${code} ${host}`);
    err.errno = errno;
    err.code = code;
    err.syscall = syscall;
    err.hostname = host;
  } else {
    err = new Error(`${syscall} ${code} ${host}:${port}`);
    err.errno = errno;
    err.code = code;
    err.syscall = syscall;
    err.address = host;
    err.port = Number(port);
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._aborted = true;
  emitErrorAndClose(websocket, err);
}
