'use strict';

// The WebSocket class with ws 8's surface. The protocol runs in C (see
// src/conn.c); this file checks arguments, keeps readyState and
// bufferedAmount, and turns native events into ws's events, in ws's order.

const EventEmitter = require('events');
const { createHash, randomBytes, X509Certificate } = require('crypto');
const http = require('http');
const https = require('https');
const net = require('net');
const querystring = require('querystring');
const { Readable } = require('stream');
const tls = require('tls');
const util = require('util');

const { binding, C, ensureStarted, register, unregister, retain, release } =
  require('./native');
const { adoptSocket } = require('./adopt');
const { limitsOf } = require('./limits');
const {
  NativeSocket,
  addressesOf,
  forwardSocket
} = require('./socket');
const pmd = require('./pmd');
const WebSocketSender = require('./websocket-sender');
const {
  BINARY_TYPES,
  CLOSE_TIMEOUT,
  EMPTY_BUFFER,
  GUID,
  kStatusCode
} = require('./constants');
const { isBlob, isValidStatusCode } = require('./validation');
const { EventTarget, defineEventHandlerAttributes } = require('./event-target');

const readyStates = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const subprotocolRegex = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;
const protocolVersions = [8, 13];
// Bytes waiting to be written after which the next send fails the
// connection (ws-native only; see _sendBufferFull).
const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;

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

// What an idle connection points to instead of an object or array of its
// own (S4: RSS per idle connection). Frozen: a write that should have
// replaced them throws instead of reaching every connection.
const NO_EXTENSIONS = Object.freeze({});
const NO_CALLBACKS = Object.freeze([]);

/** Queues a send callback (see _callbacks). */
function addCallback(websocket, entry) {
  if (websocket._callbacks === NO_CALLBACKS) websocket._callbacks = [entry];
  else websocket._callbacks.push(entry);
}

// The WebSocket's `_events`. EventEmitter's constructor gives each instance
// a dictionary-mode object ({ __proto__: null }: about 180 bytes with its
// hash table); one of these has fast properties in a few in-object slots
// and, like that one, no Object.prototype behind it, so `_events[type]`
// finds listeners only. EventEmitter's methods take it as their own (Node's
// EventEmitter used the same until v12). S4: RSS per idle connection.
function Events() {}
Events.prototype = Object.create(null);

class WebSocket extends EventEmitter {
  /**
   * @param {(String|URL|null)} address The URL, or null for a server-side
   *     socket (created by WebSocketServer)
   * @param {(String|String[])} [protocols]
   * @param {Object} [options]
   */
  constructor(address, protocols, options) {
    super();
    this._events = new Events();
    this._binaryType = BINARY_TYPES[0];
    this._closeCode = 1006;
    this._closeFrameReceived = false;
    this._closeFrameSent = false;
    this._closeMessage = EMPTY_BUFFER;
    this._closeTimer = null;
    this._errorEmitted = false;
    this._extensions = NO_EXTENSIONS; // pmd.js replaces it, never fills it
    this._paused = false;
    this._pending = null; // events held while paused
    this._deferred = null; // events waiting behind a deferred one
    this._protocol = '';
    this._readyState = WebSocket.CONNECTING;
    this._id = 0;
    this._live = false;
    this._nativeClosed = false;
    this._sent = 0; // frame bytes queued since the socket opened
    this._written = 0; // as last reported by C
    this._bufferedAmount = 0; // bytes "sent" with no socket (ws semantics)
    // [endOffset, cb, behind, start], in order (_queue); NO_CALLBACKS when
    // none waits.
    this._callbacks = NO_CALLBACKS;
    this._destroyed = false; // terminated or closed: nothing more goes out
    this._closeBytes = 0; // our close frame (see bufferedAmount)
    this._firstFragment = true;
    this._compressEnabled = false; // permessage-deflate agreed
    this._compressThreshold = 0;
    this._compressing = false; // the message being sent is compressed
    this._fragments = null; // frames of a message being received
    this._turnBase = -1; // _sent when this JS turn started sending
    this._blocked = null; // frames waiting behind a Blob being read
    this._blobBytes = 0; // payload of Blobs being read and what waits behind
    this._ns = null; // what drives ws._socket on the loop (lib/socket.js)

    if (address !== null) {
      // A server-side socket reads these from the prototype (below the
      // class) unless its options differ: an idle connection does not
      // carry them (S4: RSS per idle connection).
      this._handshakeTimer = null;
      this._isServer = false;
      this._autoPong = true;
      this._allowSync = true; // allowSynchronousEvents
      this._maxBuffered = DEFAULT_MAX_BUFFERED;
      this._url = undefined;
      this._redirects = 0;
      this._req = null; // the request of the current handshake attempt
      this._hop = null; // what a redirect needs to start the next attempt
      if (protocols === undefined) {
        protocols = protocolsOption(options);
      } else if (!Array.isArray(protocols)) {
        if (typeof protocols === 'object' && protocols !== null) {
          options = protocols;
          protocols = protocolsOption(options);
        } else {
          protocols = [protocols];
        }
      }
      initAsClient(this, address, protocols, options);
    } else if (options) {
      if (options.autoPong === false) this._autoPong = false;
      setMaxBuffered(this, options.maxBufferedAmount);
      if (!allowSyncOption(options.allowSynchronousEvents)) {
        this._allowSync = false;
      }
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
    this._refreshWritten();
    // As with a Node socket's writableLength, bytes sent during the current
    // JS turn count as buffered until the turn ends, even if the I/O thread
    // has already written them.
    const acked = this._turnBase >= 0
      ? Math.min(this._written, this._turnBase) : this._written;
    // ws writes its close frame at once; it is the last frame we send, so
    // it is the end of what is unwritten, and not counted.
    const unwritten = Math.max(0, this._sent - acked - this._closeBytes);
    return unwritten + this._bufferedAmount + this._blobBytes;
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
  _attach(id, protocol, info) {
    this._id = id;
    this._protocol = protocol;
    this._readyState = WebSocket.OPEN;
    // A socket the loop accepted itself (handleUpgrade set Node's already).
    if (this._socket === undefined) {
      this._socket = (this._ns = new NativeSocket(this, info));
    }
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
    this._closeTimer = null;
    if (this._handshakeTimer !== null) {
      clearTimeout(this._handshakeTimer);
      this._handshakeTimer = null;
    }
    if (this._id !== 0) unregister(this._id);
    if (this._live) {
      this._live = false;
      release();
    }
    if (this._ns !== null) this._ns._closed();
    const cbs = this._callbacks;
    this._callbacks = NO_CALLBACKS;
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
          (this._closeFrameReceived || this._errorEmitted) &&
          !this._nativeClosed) {
        // C drops this frame (one went already) and counts it as written.
        this._sent += binding.close(this._id, -1, null, 0);
      }
      return;
    }
    let reason = null;
    if (code === undefined) {
      code = -1;
    } else if (typeof code !== 'number' || !isValidStatusCode(code)) {
      throw new TypeError('First argument must be a valid error code number');
    } else if (data !== undefined && data.length) {
      // ws 8.23.1's Sender.close: Buffer.byteLength first (which throws
      // Node's ERR_INVALID_ARG_TYPE for an array or array-like), then the
      // bound, then only a string or a Uint8Array.
      if (Buffer.byteLength(data) > 123) {
        throw new RangeError('The message must not be greater than 123 bytes');
      }
      if (typeof data === 'string') {
        reason = Buffer.from(data);
      } else if (util.types.isUint8Array(data)) {
        reason = toSendable(data);
      } else {
        throw new TypeError('Second argument must be a string or a Uint8Array');
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
    this._closeBytes = binding.close(this._id, code, reason,
      this._isServer ? 0 : C.SEND_MASK);
    this._sent += this._closeBytes;
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

  /**
   * ws's `websocket._sender`, null until the connection opens: socket.io
   * sends one pre-encoded frame to many sockets through its sendFrame().
   */
  get _sender() {
    if (this._readyState === WebSocket.CONNECTING) return null;
    if (this._frameSender === undefined) {
      this._frameSender = new WebSocketSender(this);
    }
    return this._frameSender;
  }

  /**
   * `_sender.sendFrame`: bytes that are already one complete frame, queued
   * as they are, in order with send() and counted as it counts. Once the
   * socket is no longer OPEN, C would drop the frame (nothing may follow
   * our close frame): `cb` gets the error instead.
   *
   * @private
   */
  _sendFrame(list, cb) {
    if (this._blocked !== null) {
      this._blocked.push(() => this._sendFrame(list, cb));
      return;
    }
    if (this._readyState !== WebSocket.OPEN || this._nativeClosed) {
      sendAfterClose(this, null, cb);
      return;
    }
    if (this._turnBase < 0) markTurn(this);
    if (this._sent - Math.min(this._written, this._turnBase) >
        this._maxBuffered && this._sendBufferFull(cb)) {
      return;
    }
    this._sent += binding.sendFrame(this._id, list, cb ? C.SEND_ACK : 0);
    if (cb) addCallback(this, [this._sent, cb]);
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
    if (data === undefined || data === null) data = EMPTY_BUFFER;
    if (!this._firstFragment) {
      opcode = 0;
    } else if (this._compressEnabled) {
      // ws's Sender: the first fragment decides for the whole message.
      this._compressing = opts.compress !== false &&
        (this._compressThreshold === 0 ||
          byteLengthOf(data) >= this._compressThreshold);
    }
    this._firstFragment = !!opts.fin;
    let flags = (opts.fin ? C.SEND_FIN : 0) | (opts.mask ? C.SEND_MASK : 0);
    if (this._compressEnabled && this._compressing) {
      flags |= C.SEND_COMPRESS;
      // The loop thread compresses bytes.
      if (typeof data === 'string') data = Buffer.from(data);
    }
    this._queue(toSendable(data), opcode, flags, cb);
  }

  /** @private */
  _queue(data, opcode, flags, cb) {
    if (this._blocked !== null) {
      // Behind a Blob being read: ws's Sender counts its payload as
      // buffered meanwhile, and calls its callback with the Blob's error.
      const n = byteLengthOf(data);
      this._blobBytes += n;
      const run = () => {
        this._blobBytes -= n;
        this._queue(data, opcode, flags, cb);
      };
      run.cb = cb;
      this._blocked.push(run);
      return;
    }
    if (isBlob(data)) {
      this._sendBlob(data, opcode, flags, cb);
      return;
    }
    if (this._turnBase < 0) markTurn(this);
    // _written may be stale, so this cheap test can only err towards a
    // recount; the recount decides. Bytes sent in this turn count as
    // buffered even if already written, as bufferedAmount counts them.
    if (this._sent - Math.min(this._written, this._turnBase) >
        this._maxBuffered && this._sendBufferFull(cb)) {
      return;
    }
    // ws._socket's writableNeedDrain and 'drain' (lib/socket.js): C
    // reports the sends that cross its high-water mark, and those after.
    const sock = this._ns !== null && this._ns._wantAck(typeof data ===
      'string' ? data.length * 3 : data.byteLength) ? this._ns : null;
    if (sock !== null) flags |= C.SEND_ACK;
    if (cb) {
      flags |= C.SEND_ACK;
      // ws writes a frame at once unless its socket still holds earlier
      // bytes; only then does the frame wait in the socket's buffer, where
      // a destroyed socket fails its callback (see settleCallbacks). Bytes
      // sent before this turn and not yet written mean the same here.
      if (this._written < this._turnBase) this._refreshWritten();
    }
    const behind = this._written < this._turnBase;
    const start = this._sent;
    this._sent += binding.send(this._id, data, opcode, flags);
    if (cb) addCallback(this, [this._sent, cb, behind, start]);
    if (sock !== null) sock._afterSend();
    if (this._ns !== null) this._ns._active();
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
    this._destroyed = true;
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
    // ws's Sender.getBlobData: when the Blob cannot be read, or the socket
    // was destroyed meanwhile, this callback and those of the frames
    // queued behind it get the error and those frames are never sent.
    // Their bytes stay counted in bufferedAmount, as in ws.
    const fail = (err) => {
      const queued = this._blocked;
      this._blocked = null;
      process.nextTick(() => {
        if (cb) cb(err);
        for (const run of queued) if (run.cb) run.cb(err);
      });
    };
    blob.arrayBuffer().then((arrayBuffer) => {
      if (this._destroyed) {
        fail(new Error('The socket was closed while the blob was being read'));
        return;
      }
      finish(() => {
        this._queue(Buffer.from(arrayBuffer), opcode, flags, cb);
      });
    }, (err) => {
      fail(err);
      process.nextTick(blobFailed, this, err);
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
    this._destroyed = true;
    settleCallbacks(this, streamDestroyedError);
    if (!this._nativeClosed) binding.terminate(this._id);
  }

  /**
   * Native events for this socket (see lib/native.js).
   *
   * @private
   */
  _onNativeEvent(type, payload, a, b, c) {
    if (this._ns !== null) this._ns._active();
    if (this._deferred !== null && type !== C.EV_WRITTEN) {
      // Behind an event deferred by allowSynchronousEvents: false.
      this._deferred.push([type, payload, a, b, c]);
      return;
    }
    if (this._paused && (type === C.EV_MESSAGE || type === C.EV_PING ||
        type === C.EV_PONG || type === C.EV_FRAGMENTS ||
        type === C.EV_CLOSE_FRAME)) {
      // ws stops reading at pause(); events already on their way wait here.
      if (this._pending === null) this._pending = [];
      this._pending.push([type, payload, a, b, c]);
      return;
    }
    if (!this._allowSync && (type === C.EV_PING || type === C.EV_PONG ||
        type === C.EV_MESSAGE)) {
      // allowSynchronousEvents: false: as ws's Receiver, each 'message',
      // 'ping' and 'pong' is emitted in its own macrotask, and what came
      // after it waits until then.
      this._deferred = [[type, payload, a, b, c]];
      setImmediate(runDeferred, this);
      return;
    }
    this._handleEvent(type, payload, a, b, c);
  }

  /** @private */
  _handleEvent(type, payload, a, b, c) {
    // A failed handshake ends the connection there (ws destroys the
    // socket): frames C had read after the 101 are not this WebSocket's,
    // and its close is 1006, not a close frame the server sent next.
    if (this._aborted && type !== C.EV_CLOSED && type !== C.EV_DATA &&
        type !== C.EV_WRITTEN) {
      return;
    }
    switch (type) {
      case C.EV_MESSAGE: {
        if (this._readyState !== WebSocket.OPEN &&
            this._readyState !== WebSocket.CLOSING) return;
        // C joined the frames of the message (as ws's Receiver does); a
        // binary one of several frames came with their lengths first.
        const lengths = this._fragments;
        this._fragments = null;
        if (!(a & C.MSG_BINARY)) {
          this.emit('message', payload, false);
          return;
        }
        const fragments = lengths !== null && this._binaryType === 'fragments'
          ? splitFragments(payload, lengths)
          : payload.length ? [payload] : [];
        this.emit('message', convertBinary(fragments, this._binaryType), true);
        return;
      }
      case C.EV_FRAGMENTS:
        this._fragments = payload;
        return;
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
        if (this._ns !== null) this._ns._onWritten();
        return;
      case C.EV_CLOSE_FRAME:
        this._closeFrameReceived = true;
        this._closeCode = a;
        this._closeMessage = Buffer.from(payload);
        // As ws's receiverOnConclude: answer with the same code and reason.
        // C sent nothing: the answer goes from here, after whatever the
        // listeners of the earlier messages sent. C ends the socket once
        // close frames went both ways.
        if (this._readyState === WebSocket.OPEN) {
          this._readyState = WebSocket.CLOSING;
          this._sendClose(a === 1005 ? -1 : a,
            this._closeMessage.length ? this._closeMessage : null);
        }
        setCloseTimer(this);
        return;
      case C.EV_ERROR: {
        // A bad frame. As ws's receiverOnError: close(code) first, then
        // 'error'. C sent nothing: the close frame goes from here, after
        // whatever the listeners of the earlier events sent (ws writes
        // those before its Receiver reaches the bad frame). C ends the
        // socket once a close frame is out (already, if close() was called
        // before: see conn.c error_with_payload).
        const err = frameError(a, b, payload);
        const emitted = this._errorEmitted;
        this._errorEmitted = true;
        const wasOpen = this._readyState === WebSocket.OPEN;
        this._readyState = WebSocket.CLOSING;
        if (wasOpen) this._sendClose(err[kStatusCode], null);
        setCloseTimer(this);
        if (emitted) return;
        this.emit('error', err);
        return;
      }
      case C.EV_ADDRESS:
        this._addresses = payload.toString('latin1');
        return;
      case C.EV_OPEN:
        onOpen(this, payload, a, b);
        return;
      case C.EV_DATA:
        if (this._res) pushBody(this._res, payload);
        return;
      case C.EV_SOCKET_ERROR:
        onSocketError(this, payload, a);
        return;
      case C.EV_TLS_ERROR:
        onTlsError(this, payload);
        return;
      case C.EV_CLOSED:
        this._nativeClosed = true;
        // A failed handshake emits its own 'error' and 'close'.
        if (this._aborted) return;
        // Deliver what was held before announcing the close, all of it, as
        // ws does once its socket closed: a listener that pauses again
        // (a stream whose reader is full) only re-queues the rest, which
        // the next round delivers.
        while (this._pending) {
          const pending = this._pending;
          this._pending = null;
          this._paused = false;
          for (const ev of pending) this._onNativeEvent(...ev);
        }
        if (this._deferred !== null) {
          // Some were deferred (allowSynchronousEvents: false): the close
          // comes after them.
          this._deferred.push([type, payload, a, b, c]);
          return;
        }
        this._destroyed = true;
        if (this._readyState === WebSocket.OPEN) {
          // ws's socketOnClose: CLOSING until 'close'.
          this._readyState = WebSocket.CLOSING;
        }
        settleCallbacks(this, closedWhileSendingError);
        this._written = this._sent; // nothing more will be written
        if (this._res) endBody(this._res);
        if (this._readyState === WebSocket.CONNECTING &&
            this._req !== null && this._req.res === null) {
          // Closed by the server before a whole response came: Node's
          // request says so this way.
          const err = new Error('socket hang up');
          err.code = 'ECONNRESET';
          clearTimeout(this._handshakeTimer);
          this._handshakeTimer = null;
          this._req = null;
          emitErrorAndClose(this, err);
          return;
        }
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
        // ws emits 'close' from the socket's own 'close' event, a later
        // macrotask than the messages read before it: microtasks their
        // listeners queued run first. The socket's end may reach us in the
        // same batch as those messages, so wait for the next macrotask.
        setImmediate(emitCloseLater, this);
        return;
    }
  }

  /**
   * Reads what C has written so far (an atomic in the connection's slot):
   * _written is otherwise updated only by WRITTEN events.
   *
   * @private
   */
  _refreshWritten() {
    if (this._nativeClosed) return;
    const written = binding.written(this._id);
    if (written > this._written) this._written = written;
  }

  /** @private */
  _runCallbacks() {
    const cbs = this._callbacks;
    let i = 0;
    while (i < cbs.length && cbs[i][0] <= this._written) i++;
    if (i === 0) return;
    let done = cbs;
    if (i === cbs.length) this._callbacks = NO_CALLBACKS;
    else done = cbs.splice(0, i);
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

// A server-side socket's settings unless its options differ (see the
// constructor); a client has its own.
for (const [name, value] of Object.entries({
  _handshakeTimer: null,
  _isServer: true,
  _autoPong: true,
  _allowSync: true,
  _maxBuffered: DEFAULT_MAX_BUFFERED,
  _url: undefined,
  _closeTimeout: CLOSE_TIMEOUT
})) {
  Object.defineProperty(WebSocket.prototype, name,
    { configurable: true, writable: true, value });
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

/**
 * Delivers the event at the head of websocket._deferred, then replays the
 * rest: the next 'message', 'ping' or 'pong' among them is deferred again,
 * and what follows it queues behind it. The replay runs as a microtask
 * queued after the listeners ran, so that theirs run first (what follows,
 * a 'close' say, comes later in ws too).
 */
function runDeferred(websocket) {
  const queue = websocket._deferred;
  const [type, payload, a, b, c] = queue.shift();
  try {
    // Events arriving meanwhile still queue behind `queue`.
    if (websocket._paused) {
      if (websocket._pending === null) websocket._pending = [];
      websocket._pending.push([type, payload, a, b, c]);
    } else {
      websocket._handleEvent(type, payload, a, b, c);
    }
  } finally {
    queueMicrotask(() => {
      websocket._deferred = null;
      for (const ev of queue) websocket._onNativeEvent(...ev);
    });
  }
}

/**
 * ws's Receiver: allowSynchronousEvents defaults to true when undefined.
 */
function allowSyncOption(value) {
  return value === undefined || !!value;
}

function endTurn() {
  const sockets = turnSockets;
  turnSockets = [];
  for (const ws of sockets) ws._turnBase = -1;
}

function frameError(id, arg, payload) {
  const e = C.errors[String(id | 0)];
  if (e.message === '%s') {
    // zlib's own error, as ws passes it on: "Z_DATA_ERROR\0message".
    const [code, text] = payload.toString().split('\0');
    const err = new Error(text);
    err.code = code;
    err.errno = -arg;
    err[kStatusCode] = e.closeCode;
    return err;
  }
  const message = e.message.replace('%u', String(arg));
  const Ctor = e.ctor === 'RangeError' ? RangeError : Error;
  const err = new Ctor(e.prefix ? `Invalid WebSocket frame: ${message}` : message);
  err.code = e.code;
  err[kStatusCode] = e.closeCode;
  return err;
}

/**
 * binaryType 'fragments': the message's frames again, as views of the one
 * Buffer C joined them into. `lengths` holds the length of every non-empty
 * frame but the last (uint32, host order); the last is what remains.
 */
function splitFragments(data, lengths) {
  const view = new Uint32Array(lengths.buffer.slice(lengths.byteOffset,
    lengths.byteOffset + lengths.length));
  const fragments = [];
  let off = 0;
  for (const n of view) {
    fragments.push(data.subarray(off, off + n));
    off += n;
  }
  if (off < data.length) fragments.push(data.subarray(off));
  return fragments;
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
    // ws destroys its socket here, as terminate() does.
    websocket._destroyed = true;
    settleCallbacks(websocket, streamDestroyedError);
    if (!websocket._nativeClosed) binding.terminate(websocket._id);
  }, websocket._closeTimeout || CLOSE_TIMEOUT);
}

function sendAfterClose(websocket, data, cb) {
  if (data) {
    // Counted for good, as ws adds it to its Sender's buffered bytes (or,
    // with no socket, to _bufferedAmount): no write will ever take it off.
    websocket._bufferedAmount += byteLengthOf(toSendable(data));
  }
  if (cb) {
    const err = new Error(
      `WebSocket is not open: readyState ${websocket.readyState} ` +
        `(${readyStates[websocket.readyState]})`
    );
    process.nextTick(cb, err);
  }
}


/**
 * The connection is gone (or going) with send callbacks waiting: they run
 * before 'close', while readyState is CLOSING, as ws's do when its socket is
 * destroyed. A frame written, or one ws would have written at once (nothing
 * older was waiting: see _queue), or the first one being written (ws's write
 * in progress) succeeds, as Node calls back a destroyed socket's current
 * write without an error; the frames waiting behind it get `makeError()`.
 */
function settleCallbacks(websocket, makeError) {
  const cbs = websocket._callbacks;
  if (cbs.length === 0) return;
  websocket._callbacks = NO_CALLBACKS;
  websocket._refreshWritten();
  const written = websocket._written;
  const done = [];
  for (const [, cb, behind, start] of cbs) {
    // Waiting behind older bytes, and not reached by the writer.
    const err = behind && start > written ? makeError() : null;
    done.push([cb, err]);
  }
  process.nextTick(() => {
    for (const [cb, err] of done) cb(err);
  });
}

/** Node's error for a write to a destroyed stream (ws's after terminate()). */
function streamDestroyedError() {
  const err = new Error('Cannot call write after a stream was destroyed');
  err.code = 'ERR_STREAM_DESTROYED';
  return err;
}

function closedWhileSendingError() {
  return new Error('The socket was closed while data was being sent');
}

/**
 * A Blob could not be read: ws's senderOnError. The socket ends (ws lets
 * the peer finish; here it goes at once) and 'error' is emitted once.
 */
function blobFailed(websocket, err) {
  if (websocket._readyState === WebSocket.CLOSED) return;
  if (websocket._readyState === WebSocket.OPEN) {
    websocket._readyState = WebSocket.CLOSING;
  }
  websocket._destroyed = true;
  settleCallbacks(websocket, closedWhileSendingError);
  if (!websocket._nativeClosed) binding.terminate(websocket._id);
  if (!websocket._errorEmitted) {
    websocket._errorEmitted = true;
    websocket.emit('error', err);
  }
}

function emitErrorAndClose(websocket, err) {
  websocket._readyState = WebSocket.CLOSING;
  websocket._errorEmitted = true;
  websocket.emit('error', err);
  websocket.emitClose();
}

/**
 * Fails the opening handshake as ws's abortHandshake does: whatever carries
 * the handshake (Node's request, the upgraded socket, or the C connection)
 * goes at once, 'error' and 'close' follow on the next tick.
 */
function abortHandshake(websocket, message) {
  websocket._readyState = WebSocket.CLOSING;
  const err = new Error(message);
  Error.captureStackTrace(err, abortHandshake);
  websocket._aborted = true;
  stopAttempt(websocket);
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

function emitCloseLater(websocket) {
  websocket.emitClose();
}

/** The size ws compares with `threshold`. */
function byteLengthOf(data) {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (isBlob(data)) return data.size;
  return data.byteLength === undefined ? 0 : data.byteLength;
}

// ---- client ------------------------------------------------------------
//
// A handshake attempt takes one of two paths:
//
// - the C client (binding.connect): the request is written, and the 101
//   read and checked, on the I/O loop; ws:// with none of the options below;
// - Node's own http(s).request, as ws makes it, when an option needs Node's
//   machinery (useNodeRequest): the upgraded socket is then handed to the I/O
//   loop (lib/adopt.js) and the connection runs exactly as on the C path.
//
// A redirect (followRedirects) ends the attempt and starts the next one at
// the new URL, on whichever path that URL and the options call for.

// Marks a request whose later 'error' must not reach the WebSocket.
const kAborted = Symbol('kAborted');

// Options that only Node's http machinery implements (net.connect's and
// http.request's): with any of them the handshake goes through Node.
const NODE_ONLY_OPTIONS = [
  'autoSelectFamily',
  'autoSelectFamilyAttemptTimeout',
  'createConnection',
  'family',
  'finishRequest',
  'hints',
  'insecureHTTPParser',
  'joinDuplicateHeaders',
  'localAddress',
  'localPort',
  'lookup',
  'maxHeaderSize',
  'signal',
  'uniqueHeaders'
];

/**
 * Whether this handshake attempt goes through Node's http(s).request
 * instead of the C client.
 *
 * @param {Object} opts The attempt's options (ws's `opts`)
 * @param {boolean} isSecure wss://
 * @param {boolean} isIpcUrl ws+unix://
 * @return {boolean}
 */
function useNodeRequest(opts, isSecure, isIpcUrl) {
  // wss:// is TLS in C on the I/O loop (src/tls.c) for the options C
  // honours (ca, cert, key, passphrase, pfx, rejectUnauthorized,
  // servername); any other TLS option needs Node's tls, through
  // https.request, with the TLSSocket bridged to the loop.
  if (isSecure && !tlsInC(opts)) return true;
  if (isIpcUrl) return true;
  if (opts.agent) return true; // `agent: false` is what the C path does
  if (opts.setHost === false) return true;
  for (const name of NODE_ONLY_OPTIONS) {
    if (opts[name] !== undefined) return true;
  }
  return false;
}

// TLS options that only Node's tls can honour.
const NODE_TLS_OPTIONS = [
  'ALPNProtocols', 'checkServerIdentity', 'ciphers', 'clientCertEngine',
  'crl', 'dhparam', 'ecdhCurve', 'enableTrace', 'honorCipherOrder',
  'maxVersion', 'minDHSize', 'minVersion', 'privateKeyEngine',
  'privateKeyIdentifier', 'pskCallback', 'requestOCSP', 'secureContext',
  'secureOptions', 'secureProtocol', 'session', 'sigalgs', 'ticketKeys'
];

function isPem(v) {
  return typeof v === 'string' || Buffer.isBuffer(v);
}

function pemList(v) {
  return Array.isArray(v) ? v.every(isPem) : isPem(v);
}

/** Whether src/tls.c can do this wss:// connection's TLS. */
function tlsInC(opts) {
  for (const name of NODE_TLS_OPTIONS) {
    if (opts[name] !== undefined) return false;
  }
  for (const name of ['ca', 'cert', 'key']) {
    if (opts[name] !== undefined && !pemList(opts[name])) return false;
  }
  if (opts.pfx !== undefined && !Buffer.isBuffer(opts.pfx)) return false;
  if (opts.passphrase !== undefined && typeof opts.passphrase !== 'string') {
    return false;
  }
  return true;
}

function joinPem(v) {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.map(String).join('\n') : String(v);
}

const defaultTlsContexts = new Map(); // rejectUnauthorized -> context

/**
 * [context, servername, verifyHost] for binding.connect. The context with
 * Node's root certificates is built once per process (parsing them takes
 * milliseconds); one with the user's own certificates, per connection.
 */
function tlsArgs(opts) {
  const reject = opts.rejectUnauthorized !== undefined
    ? opts.rejectUnauthorized !== false
    : process.env.NODE_TLS_REJECT_UNAUTHORIZED !== '0';
  let context;
  if (opts.ca === undefined && opts.cert === undefined &&
      opts.key === undefined && opts.pfx === undefined) {
    context = defaultTlsContexts.get(reject);
    if (!context) {
      context = binding.tlsContext(tls.rootCertificates.join('\n'),
        undefined, undefined, undefined, undefined, reject);
      defaultTlsContexts.set(reject, context);
    }
  } else {
    context = binding.tlsContext(
      opts.ca === undefined ? tls.rootCertificates.join('\n') : joinPem(opts.ca),
      joinPem(opts.cert), joinPem(opts.key), opts.passphrase, opts.pfx, reject);
  }
  // As ws's tlsConnect and Node's tls.connect: SNI is the host name (never
  // an IP), and the certificate is checked against servername || host.
  let servername = opts.servername;
  if (!servername && servername !== '') {
    servername = net.isIP(opts.host) ? '' : opts.host;
  }
  return [context, servername, servername || opts.host];
}

/**
 * ws 8.23.1's `protocols` option, used when the constructor got none.
 */
function protocolsOption(options) {
  if (!options || options.protocols === undefined) return [];
  return Array.isArray(options.protocols)
    ? options.protocols
    : [options.protocols];
}

function initAsClient(websocket, address, protocols, options) {
  const opts = {
    allowSynchronousEvents: true,
    autoPong: true,
    closeTimeout: CLOSE_TIMEOUT,
    protocolVersion: protocolVersions[1],
    maxBufferedChunks: 256 * 1024,
    maxFragments: 16 * 1024,
    maxPayload: 100 * 1024 * 1024,
    maxPendingAutoPongs: 60,
    skipUTF8Validation: false,
    perMessageDeflate: true,
    followRedirects: false,
    maxRedirects: 10,
    ...options,
    // The URL decides these, never the caller (as in ws).
    socketPath: undefined,
    hostname: undefined,
    protocol: undefined,
    protocols: undefined,
    timeout: undefined,
    method: 'GET',
    host: undefined,
    path: undefined,
    port: undefined
  };
  websocket._autoPong = opts.autoPong;
  websocket._allowSync = allowSyncOption(opts.allowSynchronousEvents);
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
    } catch {
      throw new SyntaxError(`Invalid URL: ${address}`);
    }
  }
  if (parsedUrl.protocol === 'http:' || parsedUrl.protocol === 'https:') {
    // A copy: the caller's URL object is left as it was.
    parsedUrl = new URL(parsedUrl);
    parsedUrl.protocol = parsedUrl.protocol === 'http:' ? 'ws:' : 'wss:';
  }
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
  if (invalidUrlMessage) {
    const err = new SyntaxError(invalidUrlMessage);
    // Thrown by the constructor; a redirect to such a URL fails the socket.
    if (websocket._redirects === 0) throw err;
    emitErrorAndClose(websocket, err);
    return;
  }

  const defaultPort = isSecure ? 443 : 80;
  const key = randomBytes(16).toString('base64');
  const protocolSet = new Set();

  opts.defaultPort = opts.defaultPort || defaultPort;
  opts.port = parsedUrl.port || defaultPort;
  opts.host = parsedUrl.hostname.startsWith('[')
    ? parsedUrl.hostname.slice(1, -1)
    : parsedUrl.hostname;
  opts.headers = {
    ...opts.headers,
    'Sec-WebSocket-Version': opts.protocolVersion,
    'Sec-WebSocket-Key': key,
    Connection: 'Upgrade',
    Upgrade: 'websocket'
  };
  opts.path = parsedUrl.pathname + parsedUrl.search;
  opts.timeout = opts.handshakeTimeout;

  // permessage-deflate is offered as ws offers it (on by default).
  const pmdOffer = pmd.pmdOptions(opts.perMessageDeflate);
  if (pmdOffer) {
    opts.headers['Sec-WebSocket-Extensions'] = binding.pmdOffer(pmdOffer);
  }

  for (const protocol of protocols) {
    if (typeof protocol !== 'string' || !subprotocolRegex.test(protocol) ||
        protocolSet.has(protocol)) {
      throw new SyntaxError('An invalid or duplicated subprotocol was specified');
    }
    protocolSet.add(protocol);
  }
  if (protocols.length) {
    opts.headers['Sec-WebSocket-Protocol'] = protocols.join(',');
  }
  if (opts.origin) {
    if (opts.protocolVersion < 13) opts.headers['Sec-WebSocket-Origin'] = opts.origin;
    else opts.headers.Origin = opts.origin;
  }
  if (parsedUrl.username || parsedUrl.password) {
    // querystring.unescape, as ws: a stray '%' is kept, not an error.
    opts.auth = `${querystring.unescape(parsedUrl.username)}:` +
      `${querystring.unescape(parsedUrl.password)}`;
  }
  if (isIpcUrl) {
    // ws+unix:///path/to/socket:/request/path
    const colon = opts.path.indexOf(':');
    if (colon === -1) {
      opts.socketPath = opts.path;
      opts.path = '';
    } else {
      opts.socketPath = opts.path.slice(0, colon);
      opts.path = opts.path.slice(colon + 1);
    }
  }

  if (opts.followRedirects) {
    if (websocket._redirects === 0) {
      websocket._originalIpc = isIpcUrl;
      websocket._originalSecure = isSecure;
      websocket._originalHostOrSocketPath = isIpcUrl
        ? opts.socketPath
        : parsedUrl.host;
      // Later attempts start from a copy of the caller's options whose
      // header names are lower case, so that a redirect can drop some of
      // them without touching the caller's object.
      const headers = options && options.headers;
      options = { ...options, headers: {} };
      if (headers) {
        for (const name of Object.keys(headers)) {
          options.headers[name.toLowerCase()] = headers[name];
        }
      }
    } else if (websocket.listenerCount('redirect') === 0) {
      // With no 'redirect' listener to decide, credentials do not follow a
      // redirect to another host (or from wss: to ws:), as in curl.
      let isSameHost;
      if (isIpcUrl) {
        isSameHost = websocket._originalIpc &&
          opts.socketPath === websocket._originalHostOrSocketPath;
      } else {
        isSameHost = !websocket._originalIpc &&
          parsedUrl.host === websocket._originalHostOrSocketPath;
      }
      if (!isSameHost || (websocket._originalSecure && !isSecure)) {
        delete opts.headers.authorization;
        delete opts.headers.cookie;
        if (!isSameHost) delete opts.headers.host;
        opts.auth = undefined;
      }
    }
    // The first Authorization wins (curl again): credentials from the
    // first URL travel on as a header unless the caller set one.
    if (opts.auth && !options.headers.authorization) {
      options.headers.authorization =
        'Basic ' + Buffer.from(opts.auth).toString('base64');
    }
  }

  websocket._hop = { address, protocols, options, opts, key, protocolSet,
    pmdOffer };
  if (useNodeRequest(opts, isSecure, isIpcUrl)) {
    requestWithNode(websocket, opts, isSecure);
  } else {
    requestWithC(websocket, opts, isSecure);
  }
}

/**
 * The request of a handshake that the C client makes, with the part of
 * http.ClientRequest that users of ws touch: the header methods (a
 * 'redirect' listener may read or remove headers before they are sent),
 * method, path, host, protocol, res, destroy() and abort(). Headers are
 * stored and validated as Node stores them, so the bytes written are the
 * ones http.request would write.
 */
class NativeRequest extends EventEmitter {
  constructor(websocket, opts) {
    super();
    this._websocket = websocket;
    this._headers = Object.create(null); // lower-case name -> [name, value]
    this._headersSent = false;
    this.method = 'GET';
    this.path = opts.path;
    this.host = opts.host;
    this.protocol = 'http:';
    this.res = null;
    this.aborted = false;
    this.destroyed = false;
    for (const name of Object.keys(opts.headers)) {
      this.setHeader(name, opts.headers[name]);
    }
    if (!this.hasHeader('host')) {
      let host = opts.host;
      const colon = host.indexOf(':');
      if (colon !== -1 && host.includes(':', colon + 1) &&
          host.charCodeAt(0) !== 91 /* '[' */) {
        host = `[${host}]`;
      }
      if (opts.port && +opts.port !== opts.defaultPort) host += ':' + opts.port;
      this.setHeader('Host', host);
    }
    if (opts.auth && !this.hasHeader('authorization')) {
      this.setHeader('Authorization',
        'Basic ' + Buffer.from(opts.auth).toString('base64'));
    }
  }

  get headersSent() {
    return this._headersSent;
  }

  setHeader(name, value) {
    if (this._headersSent) {
      const err = new Error('Cannot set headers after they are sent to the client');
      err.code = 'ERR_HTTP_HEADERS_SENT';
      throw err;
    }
    http.validateHeaderName(name);
    http.validateHeaderValue(name, value);
    this._headers[name.toLowerCase()] = [name, value];
    return this;
  }

  getHeader(name) {
    const entry = this._headers[String(name).toLowerCase()];
    return entry === undefined ? undefined : entry[1];
  }

  hasHeader(name) {
    return this._headers[String(name).toLowerCase()] !== undefined;
  }

  removeHeader(name) {
    if (this._headersSent) {
      const err = new Error('Cannot remove headers after they are sent to the client');
      err.code = 'ERR_HTTP_HEADERS_SENT';
      throw err;
    }
    delete this._headers[String(name).toLowerCase()];
  }

  getHeaderNames() {
    return Object.keys(this._headers);
  }

  getRawHeaderNames() {
    return Object.keys(this._headers).map((k) => this._headers[k][0]);
  }

  getHeaders() {
    const headers = Object.create(null);
    for (const k of Object.keys(this._headers)) headers[k] = this._headers[k][1];
    return headers;
  }

  /**
   * The request head, as http.request writes it; headers are final now.
   *
   * @private
   */
  _head() {
    this._headersSent = true;
    let head = `GET ${this.path} HTTP/1.1\r\n`;
    for (const k of Object.keys(this._headers)) {
      const [name, value] = this._headers[k];
      if (Array.isArray(value)) {
        if (k === 'cookie') {
          head += `${name}: ${value.join('; ')}\r\n`;
        } else {
          for (const v of value) head += `${name}: ${v}\r\n`;
        }
      } else {
        head += `${name}: ${value}\r\n`;
      }
    }
    return head + '\r\n';
  }

  /**
   * Ends the exchange. Before a response, the WebSocket hears of it as
   * ws's does from its request: an 'error' (this one, or Node's 'socket
   * hang up'), then 'close'.
   */
  destroy(err) {
    if (this.destroyed) return this;
    this.destroyed = true;
    const websocket = this._websocket;
    if (websocket._req === this && websocket._id !== 0 &&
        !websocket._nativeClosed) {
      binding.terminate(websocket._id);
    }
    // An unexpected response being read: its body ends unfinished.
    if (this.res !== null) abortBody(this.res);
    if (this.res === null && (err || !this.aborted)) {
      if (!err) {
        err = new Error('socket hang up');
        err.code = 'ECONNRESET';
      }
      process.nextTick(() => {
        if (this[kAborted] || websocket._req !== this) return;
        websocket._req = null;
        emitErrorAndClose(websocket, err);
      });
    }
    process.nextTick(() => this.emit('close'));
    return this;
  }

  abort() {
    if (this.aborted) return;
    this.aborted = true;
    process.nextTick(() => this.emit('abort'));
    this.destroy();
  }
}

function clientFlags(opts, noAutoPong, skipUTF8) {
  return (opts.autoPong ? 0 : noAutoPong) |
    (opts.skipUTF8Validation ? skipUTF8 : 0);
}

/**
 * A handshake attempt made by the C client.
 */
function requestWithC(websocket, opts, isSecure) {
  const req = (websocket._req = new NativeRequest(websocket, opts));
  if (websocket._redirects) websocket.emit('redirect', websocket.url, req);
  // Where ws's request would be connecting already, ours connects now,
  // once a 'redirect' listener had its say; it may have closed the socket.
  if (websocket._readyState !== WebSocket.CONNECTING || req.destroyed) return;

  let tlsOptions;
  if (isSecure) {
    try {
      tlsOptions = tlsArgs(opts);
      websocket._hop.tlsHost = tlsOptions[2];
    } catch (err) {
      // Bad TLS options (a key or certificate that does not parse): Node's
      // tls.connect fails inside ws's request, which reports it as the
      // request's 'error', after the constructor (or 'redirect') returned.
      process.nextTick(() => {
        if (websocket._req !== req || req[kAborted]) return;
        websocket._req = null;
        emitErrorAndClose(websocket, err);
      });
      return;
    }
  }
  const head = req._head();
  ensureStarted();
  const id = binding.connect(opts.host, Number(opts.port), websocket._hop.key,
    head, opts.maxPayload,
    clientFlags(opts, C.CONN_NO_AUTO_PONG, C.CONN_SKIP_UTF8),
    websocket._hop.pmdOffer || undefined,
    tlsOptions, limitsOf(opts));
  websocket._id = id;
  register(id, websocket);
  retain();
  websocket._live = true;

  if (opts.timeout) {
    websocket._handshakeTimer = setTimeout(() => {
      websocket._handshakeTimer = null;
      abortHandshake(websocket, 'Opening handshake has timed out');
    }, opts.timeout);
  }
}

function netConnect(options) {
  options.path = options.socketPath;
  return net.connect(options);
}

function tlsConnect(options) {
  options.path = undefined;
  if (!options.servername && options.servername !== '') {
    options.servername = net.isIP(options.host) ? '' : options.host;
  }
  return tls.connect(options);
}

/**
 * A handshake attempt made by Node's http(s).request, as ws makes it; the
 * upgraded socket then moves to the I/O loop.
 */
function requestWithNode(websocket, opts, isSecure) {
  const request = isSecure ? https.request : http.request;
  opts.createConnection =
    opts.createConnection || (isSecure ? tlsConnect : netConnect);

  let req = (websocket._req = request(opts));
  if (websocket._redirects) {
    // As in ws, no early exit if a listener closed the WebSocket: it may
    // also have destroyed `req` with an error, which must reach 'error'.
    websocket.emit('redirect', websocket.url, req);
  }

  if (opts.timeout) {
    req.on('timeout', () => {
      abortHandshake(websocket, 'Opening handshake has timed out');
    });
  }

  req.on('error', (err) => {
    if (req === null || req[kAborted]) return;
    req = websocket._req = null;
    emitErrorAndClose(websocket, err);
  });

  req.on('response', (res) => {
    const location = res.headers.location;
    const statusCode = res.statusCode;
    if (location && opts.followRedirects &&
        statusCode >= 300 && statusCode < 400) {
      redirect(websocket, location);
    } else if (!websocket.emit('unexpected-response', req, res)) {
      abortHandshake(websocket, `Unexpected server response: ${statusCode}`);
    }
  });

  req.on('upgrade', (res, socket, head) => {
    // A listener that closes the WebSocket must destroy this socket.
    websocket._upgradeSocket = socket;
    websocket.emit('upgrade', res);
    if (websocket._readyState !== WebSocket.CONNECTING) return;
    req = websocket._req = null;

    const upgrade = res.headers.upgrade;
    let message;
    if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
      message = 'Invalid Upgrade header';
    } else if (res.headers['sec-websocket-accept'] !==
        createHash('sha1').update(websocket._hop.key + GUID).digest('base64')) {
      message = 'Invalid Sec-WebSocket-Accept header';
    } else {
      message = negotiate(websocket, res);
    }
    if (message) {
      abortHandshake(websocket, message);
      return;
    }

    websocket._upgradeSocket = null;
    socket.setTimeout(0);
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay();
    let id;
    const addresses = addressesOf(socket);
    try {
      ensureStarted();
      id = adoptSocket(socket, head, '', opts.maxPayload, C.ADOPT_CLIENT |
        clientFlags(opts, C.SERVER_NO_AUTO_PONG, C.SERVER_SKIP_UTF8),
        websocket._pmdSetup, limitsOf(opts));
    } catch (err) {
      socket.destroy();
      websocket._readyState = WebSocket.CLOSING;
      process.nextTick(emitErrorAndClose, websocket, err);
      return;
    }
    websocket._socket = socket;
    websocket._id = id;
    websocket._ns = forwardSocket(socket, websocket, addresses);
    register(id, websocket);
    retain();
    websocket._live = true;
    websocket._readyState = WebSocket.OPEN;
    websocket.emit('open');
  });

  if (opts.finishRequest) opts.finishRequest(req, websocket);
  else req.end();
}

/**
 * Ends the current handshake attempt, whatever carries it. With `detach`
 * (a redirect) the WebSocket also forgets the attempt's C connection, whose
 * remaining events (its close among them) then go nowhere.
 */
function stopAttempt(websocket, detach) {
  const req = websocket._req;
  if (req !== null) {
    req[kAborted] = true;
    if (req instanceof NativeRequest && req.res !== null) {
      // Closing the WebSocket while an unexpected response is read: as
      // ws's req.abort(), the request closes and the body is aborted.
      req.abort();
    } else if (!(req instanceof NativeRequest)) {
      req.abort();
      // abort() leaves the socket open once a response came (ws #1869).
      if (req.socket && !req.socket.destroyed) req.socket.destroy();
    }
  }
  if (websocket._upgradeSocket) {
    websocket._upgradeSocket.destroy();
    websocket._upgradeSocket = null;
  }
  if (websocket._id !== 0 && !websocket._nativeClosed) {
    binding.terminate(websocket._id);
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._handshakeTimer = null;
  if (detach) {
    if (websocket._id !== 0) unregister(websocket._id);
    if (websocket._live) {
      websocket._live = false;
      release();
    }
    if (websocket._res) endBody(websocket._res);
    websocket._id = 0;
    websocket._nativeClosed = false;
    websocket._res = null;
    websocket._req = null;
  }
}

/**
 * Follows a 3xx with a Location (followRedirects), as ws does.
 */
function redirect(websocket, location) {
  const hop = websocket._hop;
  if (++websocket._redirects > hop.opts.maxRedirects) {
    abortHandshake(websocket, 'Maximum redirects exceeded');
    return;
  }
  stopAttempt(websocket, true);
  let url;
  try {
    url = new URL(location, hop.address);
  } catch {
    emitErrorAndClose(websocket, new SyntaxError(`Invalid URL: ${location}`));
    return;
  }
  try {
    initAsClient(websocket, url, hop.protocols, hop.options);
  } catch (err) {
    // As ws: the next request is made in an event of the last one, where
    // a throw could not be caught; it becomes the WebSocket's error.
    if (websocket._readyState === WebSocket.CONNECTING) {
      stopAttempt(websocket, true);
      emitErrorAndClose(websocket, err);
    }
  }
}

/**
 * ws's checks of the 101 after Upgrade and Sec-WebSocket-Accept: the
 * subprotocol, then the extensions. Returns the error message, if any.
 */
function negotiate(websocket, res) {
  const serverProt = res.headers['sec-websocket-protocol'];
  const protocolSet = websocket._hop.protocolSet;
  if (serverProt !== undefined) {
    if (!protocolSet.size) {
      return 'Server sent a subprotocol but none was requested';
    }
    if (!protocolSet.has(serverProt)) return 'Server sent an invalid subprotocol';
  } else if (protocolSet.size) {
    return 'Server sent no subprotocol';
  }
  if (serverProt) websocket._protocol = serverProt;
  const extensions = res.headers['sec-websocket-extensions'];
  if (extensions !== undefined) {
    const offer = websocket._hop.pmdOffer;
    if (!offer) {
      return 'Server sent a Sec-WebSocket-Extensions header but no ' +
        'extension was requested';
    }
    // The C client set the same agreement up already (client.c), before
    // the first frame; the Node-request path hands it to adoptSocket.
    const answer = pmd.acceptResponse(offer, extensions);
    if (answer.error) return answer.error;
    websocket._pmdSetup = answer.setup;
    pmd.applyAgreement(websocket, answer.params, offer, false);
  }
  return null;
}

/**
 * A response shaped like the IncomingMessage ws passes to its events. With
 * `open`, the body stays readable: more arrives as EV_DATA until its end
 * (Content-Length bytes, the last chunk, or the server closing), read from
 * `websocket`'s C connection with backpressure, as Node's IncomingMessage
 * reads its socket: a listener that does not read stops the reading.
 */
function makeResponse(head, body, open, websocket) {
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
  // An http.IncomingMessage, as ws's events give (code checks with
  // instanceof); its body is read from C instead of a socket.
  const res = new http.IncomingMessage(null);
  res._read = readBody;
  res._destroy = destroyBody;
  res._readableState.readingMore = false;
  // The C connection the body comes from; kept by id, since a redirect
  // gives the WebSocket another one.
  res._websocket = open ? websocket : null;
  res._connId = open ? websocket._id : 0;
  res._bodyPaused = false;
  res.aborted = false;
  res.complete = false;
  res.statusCode = Number(status[3]);
  res.statusMessage = status[4] || '';
  res.httpVersion = status[1] ? `${status[1]}.${status[2]}` : '1.1';
  res.httpVersionMajor = status[1] ? Number(status[1]) : 1;
  res.httpVersionMinor = status[2] ? Number(status[2]) : 1;
  res.headers = headers;
  res.rawHeaders = rawHeaders;
  res._chunked = null;
  res._remaining = Infinity;
  if (open) {
    const length = headers['content-length'];
    const te = headers['transfer-encoding'];
    if (res.statusCode === 204 || res.statusCode === 304 ||
        (res.statusCode >= 100 && res.statusCode < 200)) {
      res._remaining = 0;
    } else if (te !== undefined && /(?:^|,)\s*chunked\s*$/i.test(te)) {
      res._chunked = { state: 0, size: 0, line: '' };
    } else if (length !== undefined && /^\d+$/.test(length)) {
      res._remaining = Number(length);
    }
  }
  pushBody(res, body);
  if (!open) endBody(res);
  return res;
}

/** Adds body bytes to an unexpected response (Buffer copies: `chunk` may
 * be a view into the event batch). */
function pushBody(res, chunk) {
  if (res._ended) return;
  if (res._chunked !== null) {
    if (chunk && chunk.length) pushChunked(res, chunk);
    return;
  }
  if (chunk && chunk.length && res._remaining > 0) {
    const n = Math.min(chunk.length, res._remaining);
    res._remaining -= n;
    if (!res.push(Buffer.from(chunk.subarray(0, n)))) pauseBody(res);
  }
  if (res._remaining === 0) endBody(res);
}

/** Whether the C connection of `res`'s body is still there to command. */
function bodyConnection(res) {
  const websocket = res._websocket;
  return websocket !== null && res._connId !== 0 &&
    websocket._id === res._connId && !websocket._nativeClosed;
}

/**
 * The body's reader is full: C stops reading the socket (conn.c honours
 * `paused` in WSN_CS_RAW), so the server's writes back up instead of the
 * body piling up here. Chunks already on their way are still pushed.
 */
function pauseBody(res) {
  if (res._bodyPaused || res._ended || !bodyConnection(res)) return;
  res._bodyPaused = true;
  binding.pause(res._connId);
}

function resumeBody(res) {
  if (!res._bodyPaused) return;
  res._bodyPaused = false;
  if (bodyConnection(res)) binding.resume(res._connId);
}

/** Readable's _read: the reader wants more. */
function readBody() {
  resumeBody(this);
}

/**
 * Readable's _destroy, as IncomingMessage's: destroyed before its body was
 * all read, the response is 'aborted' and its connection goes (else it
 * would stay open, paused, with no reader left to resume it); the request
 * then closes. The error is emitted only when someone listens for it.
 */
function destroyBody(err, cb) {
  if (!this.readableEnded || !this.complete) {
    this.aborted = true;
    this.emit('aborted');
  }
  if (this.aborted && !this._ended) {
    this._ended = true;
    const websocket = this._websocket;
    const req = websocket === null ? null : websocket._req;
    if (req instanceof NativeRequest && req.res === this) req.destroy();
    else if (bodyConnection(this)) binding.terminate(this._connId);
  }
  this._ended = true;
  cb(this.listenerCount('error') ? err : null);
}

/**
 * The exchange ended on the client's side (req.destroy(), ws.terminate())
 * before the body's end: as Node's IncomingMessage when its socket goes,
 * the response is destroyed with ECONNRESET 'aborted'.
 */
function abortBody(res) {
  if (res._ended || res.destroyed) return;
  res._ended = true;
  res._bodyPaused = false;
  const err = new Error('aborted');
  err.code = 'ECONNRESET';
  res.destroy(err);
}

// Chunked body decoder states.
const CH_SIZE = 0; // reading a chunk-size line
const CH_DATA = 1; // reading chunk data
const CH_DATA_END = 2; // reading the CRLF after chunk data
const CH_TRAILER = 3; // reading trailer lines after the last chunk

function pushChunked(res, buf) {
  const ch = res._chunked;
  let i = 0;
  while (i < buf.length && !res._ended) {
    if (ch.state === CH_DATA) {
      const n = Math.min(ch.size, buf.length - i);
      if (!res.push(Buffer.from(buf.subarray(i, i + n)))) pauseBody(res);
      i += n;
      ch.size -= n;
      if (ch.size === 0) ch.state = CH_DATA_END;
      continue;
    }
    // The other states read lines.
    const lf = buf.indexOf(10, i);
    const end = lf === -1 ? buf.length : lf + 1;
    ch.line += buf.toString('latin1', i, end);
    i = end;
    if (lf === -1) {
      if (ch.line.length > 8192) endBody(res); // not HTTP: give up
      continue;
    }
    const line = ch.line.replace(/\r?\n$/, '');
    ch.line = '';
    if (ch.state === CH_DATA_END) {
      ch.state = CH_SIZE;
    } else if (ch.state === CH_SIZE) {
      const size = parseInt(line, 16);
      if (!(size >= 0)) {
        endBody(res);
      } else if (size === 0) {
        ch.state = CH_TRAILER;
      } else {
        ch.size = size;
        ch.state = CH_DATA;
      }
    } else if (line === '') {
      endBody(res); // the empty line after the trailers
    }
  }
}

function endBody(res) {
  if (res._ended) return;
  res._ended = true;
  res.complete = true;
  res.push(null);
  // No _read comes after the end: let C read on, to see the server close.
  resumeBody(res);
}

/**
 * Node's parse error for an answer that does not start "HTTP/" (what
 * Node's parser reports at the first wrong byte, after skipping CRs and
 * LFs), or null when the bytes start like HTTP.
 */
function notHttpError(bytes) {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 13 || bytes[i] === 10)) i++;
  const start = i;
  while (i < bytes.length && i - start < 5 &&
         bytes[i] === 'HTTP/'.charCodeAt(i - start)) {
    i++;
  }
  if (i - start === 5 || i === bytes.length) return null;
  const reason = 'Expected HTTP/, RTSP/ or ICE/';
  const err = new Error(`Parse Error: ${reason}`);
  err.bytesParsed = i;
  err.code = 'HPE_INVALID_CONSTANT';
  err.reason = reason;
  err.rawPacket = Buffer.from(bytes);
  return err;
}

/**
 * The C client's handshake result: the response head (and the first body
 * bytes) with what C found (C.HS_*).
 */
function onOpen(websocket, payload, result, headLen) {
  if (websocket._readyState !== WebSocket.CONNECTING || websocket._aborted) {
    return;
  }
  if (result === C.HS_BAD_RESPONSE) {
    const err = notHttpError(payload);
    if (err === null) {
      abortHandshake(websocket, 'Parse Error: Invalid HTTP response');
    } else {
      websocket._readyState = WebSocket.CLOSING;
      websocket._aborted = true;
      stopAttempt(websocket);
      process.nextTick(emitErrorAndClose, websocket, err);
    }
    return;
  }
  const unexpected = result === C.HS_NOT_101;
  const res = makeResponse(payload.subarray(0, headLen),
    payload.subarray(headLen), unexpected, websocket);
  const req = websocket._req;
  if (unexpected) {
    clearTimeout(websocket._handshakeTimer);
    websocket._handshakeTimer = null;
    req.res = res;
    const location = res.headers.location;
    const statusCode = res.statusCode;
    if (location && websocket._hop.opts.followRedirects &&
        statusCode >= 300 && statusCode < 400) {
      redirect(websocket, location);
      return;
    }
    websocket._res = res;
    // As with ws's ClientRequest, a listener ends the exchange with
    // req.destroy() or by closing the WebSocket.
    if (!websocket.emit('unexpected-response', req, res)) {
      abortHandshake(websocket, `Unexpected server response: ${statusCode}`);
    }
    return;
  }
  websocket.emit('upgrade', res);
  if (websocket._readyState !== WebSocket.CONNECTING) return;
  websocket._req = null;
  let message;
  if (result === C.HS_BAD_UPGRADE) message = 'Invalid Upgrade header';
  else if (result === C.HS_BAD_ACCEPT) message = 'Invalid Sec-WebSocket-Accept header';
  else message = negotiate(websocket, res);
  if (message) {
    abortHandshake(websocket, message);
    return;
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._handshakeTimer = null;
  websocket._socket =
    (websocket._ns = new NativeSocket(websocket, websocket._addresses));
  websocket._readyState = WebSocket.OPEN;
  websocket.emit('open');
}

/**
 * A TLS failure of the C client (a rejected certificate, an alert), with
 * the code and message Node's tls gives. As with ws over Node, it is an
 * 'error' only while connecting; later the socket just closes (1006).
 */
function onTlsError(websocket, payload) {
  if (websocket._aborted || websocket._readyState !== WebSocket.CONNECTING) {
    return;
  }
  // code NUL message [NUL DER of the peer certificate]
  const first = payload.indexOf(0);
  const second = payload.indexOf(0, first + 1);
  const code = payload.toString('utf8', 0, first);
  const message = payload.toString('utf8', first + 1,
    second === -1 ? payload.length : second);
  const err = new Error(message);
  if (code) err.code = code;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    // What Node's checkServerIdentity puts on its error.
    const prefix = 'Hostname/IP does not match certificate\'s altnames: ';
    err.reason = message.startsWith(prefix)
      ? message.slice(prefix.length) : message;
    err.host = websocket._hop.tlsHost;
    if (second !== -1) {
      try {
        const x509 = new X509Certificate(payload.subarray(second + 1));
        err.cert = x509.toLegacyObject();
        // Node links a self-signed certificate to itself; the rest of a
        // chain is not known here.
        if (x509.checkIssued(x509)) err.cert.issuerCertificate = err.cert;
      } catch {
        // Not parsable here: the error goes without it.
      }
    }
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._aborted = true;
  emitErrorAndClose(websocket, err);
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
  let code = util.getSystemErrorName(errno);
  let err;
  if (syscall === 'getaddrinfo') {
    // Node's dns names an unknown host ENOTFOUND (the errno stays).
    if (code === 'EAI_NONAME' || code === 'EAI_NODATA') code = 'ENOTFOUND';
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
