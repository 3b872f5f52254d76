'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');
const process = require('process');

// The WebSocket class with ws 8's surface. The protocol runs in C (see
// src/conn.c); this file checks arguments, keeps readyState and
// bufferedAmount, and turns native events into ws's events, in ws's order.
// The client's side of it (the handshake, the request and the response)
// is in lib/client.js.

const EventEmitter = require('events');
const util = require('util');

const { binding, C, register, unregister, retain, release } =
  require('./native');
const {
  DEFAULT_HIGH_WATER_MARK,
  allowSyncOption,
  setHighWaterMark,
  setMaxBuffered
} = require('./limits');
const { NativeSocket } = require('./socket');
const WebSocketSender = require('./websocket-sender');
const topics = require('./topics');
const {
  BINARY_TYPES,
  CLOSE_TIMEOUT,
  EMPTY_BUFFER,
  kStatusCode
} = require('./constants');
const { isBlob, isValidStatusCode } = require('./validation');
const { EventTarget, defineEventHandlerAttributes } = require('./event-target');

const readyStates = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
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
      setHighWaterMark(this, options.highWaterMark);
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

  /**
   * ws-native only: a send() returned false and 'drain' has not come yet
   * (Writable's writableNeedDrain).
   */
  get writableNeedDrain() {
    return this._needDrain;
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
    if (this._subs !== null) topics.leaveAll(this);
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
    let size = 0;
    for (const buf of list) size += buf.byteLength;
    const ack = cb || this._ackForDrain(size);
    this._sent += binding.sendFrame(this._id, list, ack ? C.SEND_ACK : 0);
    if (cb) addCallback(this, [this._sent, cb]);
  }

  /**
   * Topics (ws-native only; docs/topics.md): this socket receives what is
   * published to `topic` on its server.
   *
   * @param {string} topic
   */
  subscribe(topic) {
    topics.subscribe(this, topic);
  }

  /** @param {string} topic */
  unsubscribe(topic) {
    topics.unsubscribe(this, topic);
  }

  /**
   * @param {string} topic
   * @return {boolean}
   */
  isSubscribed(topic) {
    return topics.isSubscribed(this, topic);
  }

  /** The topics this socket is in (a copy). */
  get topics() {
    return topics.topicsOf(this);
  }

  /**
   * Sends `data` to every subscriber of `topic` on this socket's server
   * but this socket. Returns the number of sockets it was queued to.
   *
   * @param {string} topic
   * @param {*} data as send() takes it (no Blob)
   * @param {{binary?: boolean, compress?: boolean}} [options]
   * @return {number}
   */
  publish(topic, data, options) {
    if (this._wss == null) {
      throw new Error(
        'ws-native: publish() is for sockets a WebSocketServer made, not ' +
          'for clients'
      );
    }
    return topics.publish(this._wss, this, topic, data, options);
  }

  /**
   * A publish queued `size` bytes for this subscriber (lib/topics.js):
   * counted in bufferedAmount as a send() of them is, this turn included.
   *
   * @private
   */
  _published(size) {
    if (this._turnBase < 0) markTurn(this);
    this._sent += size;
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
      return false;
    }
    // ws spreads `options` over its defaults ({ binary, mask, compress,
    // fin, ...options }): an own property wins, even an undefined one. A
    // plain clone and `in` read the same at half the cost of that spread
    // (the hot path of every echo).
    const o = { ...options };
    const binary = 'binary' in o ? o.binary : typeof data !== 'string';
    const mask = 'mask' in o ? o.mask : !this._isServer;
    const fin = 'fin' in o ? o.fin : true;
    const compress = 'compress' in o ? o.compress : true;
    let opcode = binary ? 2 : 1;
    if (data === undefined || data === null) data = EMPTY_BUFFER;
    if (!this._firstFragment) {
      opcode = 0;
    } else if (this._compressEnabled) {
      // ws's Sender: the first fragment decides for the whole message.
      // ws reads `compress` for truth: 0, null or undefined send plain.
      this._compressing = !!compress &&
        (this._compressThreshold === 0 ||
          byteLengthOf(data) >= this._compressThreshold);
    }
    this._firstFragment = !!fin;
    let flags = (fin ? C.SEND_FIN : 0) | (mask ? C.SEND_MASK : 0);
    if (this._compressEnabled && this._compressing) {
      flags |= C.SEND_COMPRESS;
      // The loop thread compresses bytes.
      if (typeof data === 'string') data = Buffer.from(data);
    }
    return this._queue(toSendable(data), opcode, flags, cb) === true ||
      this._sendResult();
  }

  /**
   * ws-native's backpressure: send()'s return value, as Writable.write()'s:
   * false once bufferedAmount has reached the high-water mark, and until
   * 'drain' (docs/flow-control.md).
   *
   * @private
   */
  _sendResult() {
    if (this._needDrain) return false;
    if (this._readyState !== WebSocket.OPEN) return false;
    // A cheap upper bound first (_written may be stale); the recount
    // decides.
    if (this._sent + this._blobBytes - Math.min(this._written,
      this._turnBase < 0 ? this._sent : this._turnBase) <
        this._highWaterMark) {
      return true;
    }
    if (this.bufferedAmount < this._highWaterMark) return true;
    this._needDrain = true;
    return false;
  }

  /**
   * Before sending a frame of at most `size` bytes: whether C must report
   * when it is written, for 'drain'. Yes while a 'drain' is due (the last
   * such report finds everything written), and for the send that may reach
   * the high-water mark; otherwise no report, and no event per send.
   *
   * @private
   */
  _ackForDrain(size) {
    if (this._needDrain) return true;
    const base = this._sent + size + this._blobBytes - this._highWaterMark;
    if (base < Math.min(this._written, this._turnBase)) return false;
    // _written may be stale (nothing refreshes it on a connection whose
    // bufferedAmount nobody reads): recount before asking C for a report.
    this._refreshWritten();
    return base >= Math.min(this._written, this._turnBase);
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
    const queued = this._sent - Math.min(this._written, this._turnBase);
    if (queued > this._maxBuffered && this._sendBufferFull(cb)) {
      return;
    }
    // At most the payload's bytes (3 a UTF-16 unit); the frame adds <= 14.
    const size = typeof data === 'string' ? data.length * 3 : data.byteLength;
    // ws._socket's writableNeedDrain and 'drain' (lib/socket.js): C
    // reports the sends that cross its high-water mark, and those after.
    const sock = this._ns !== null && this._ns._wantAck(size) ? this._ns : null;
    if (sock !== null) flags |= C.SEND_ACK;
    // Surely under the high-water mark with this frame (every term errs
    // upwards): no report for 'drain' is needed and send() returns true,
    // without a recount. Otherwise _ackForDrain decides.
    const under = !this._needDrain &&
      queued + size + 14 + this._blobBytes < this._highWaterMark;
    if (!under && this._ackForDrain(size + 14)) flags |= C.SEND_ACK;
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
    return under;
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
        // Writable's 'drain': once everything queued is written.
        if (this._needDrain && this._written >= this._sent &&
            this._blobBytes === 0 && this._readyState === WebSocket.OPEN) {
          this._needDrain = false;
          this.emit('drain');
        }
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
  _closeTimeout: CLOSE_TIMEOUT,
  // Backpressure (docs/flow-control.md), for clients too: an instance
  // gets its own only when it differs.
  _highWaterMark: DEFAULT_HIGH_WATER_MARK,
  _needDrain: false,
  _wss: undefined, // the server that made it (lib/websocket-server.js)
  _subs: null // its topics (lib/topics.js), a Set once it subscribed
})) {
  Object.defineProperty(WebSocket.prototype, name,
    { configurable: true, writable: true, value });
}

defineEventHandlerAttributes(WebSocket.prototype);
WebSocket.prototype.addEventListener = EventTarget.addEventListener;
WebSocket.prototype.removeEventListener = EventTarget.removeEventListener;

module.exports = WebSocket;

// After the export: lib/client.js requires this file back for the class.
const {
  abortHandshake,
  emitErrorAndClose,
  endBody,
  initAsClient,
  onOpen,
  onSocketError,
  onTlsError,
  protocolsOption,
  pushBody
} = require('./client');

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

function emitCloseLater(websocket) {
  websocket.emitClose();
}

/** The size ws compares with `threshold`. */
function byteLengthOf(data) {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (isBlob(data)) return data.size;
  return data.byteLength === undefined ? 0 : data.byteLength;
}
