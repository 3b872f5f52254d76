'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const process = require('process');

// ws._socket for connections whose socket the I/O loop owns (C clients and
// `{ port }` servers): the part of a net.Socket that third-party code uses
// on ws's socket (addresses, setKeepAlive, setNoDelay, setTimeout,
// ref/unref, writableNeedDrain and 'drain'), backed by the C socket.
// Connections whose socket Node accepted and the loop took over
// (`{ server }`, handleUpgrade, a client with Node's request) keep Node's
// socket object, as ws._socket is req.socket in ws; Node destroyed its
// handle, so forwardSocket makes those same calls reach the C socket.

const EventEmitter = require('events');

const { binding, C, retain, release } = require('./native');

// Node's largest timer (timers' TIMEOUT_MAX).
const TIMEOUT_MAX = 2 ** 31 - 1;
// net.Socket's default writableHighWaterMark.
const HIGH_WATER_MARK = 16 * 1024;
// Largest frame header (with a mask): a send's frame is at most this much
// larger than its payload.
const MAX_HEADER = 14;

/**
 * C's address fields ("addr\0port\0family\0" for the remote side, then the
 * local side, as a latin1 string) as net.Socket names them.
 *
 * @param {string} fields
 * @return {Object}
 */
function parseAddresses(fields) {
  const f = fields.split('\0');
  return {
    remoteAddress: f[0],
    remotePort: Number(f[1]),
    remoteFamily: f[2],
    localAddress: f[3],
    localPort: Number(f[4]),
    localFamily: f[5]
  };
}

// An EventEmitter that skips EventEmitter's constructor: every idle
// connection has one of these, and EventEmitter.init gives each a
// dictionary-mode `_events` object (about 180 bytes) and three more fields,
// while EventEmitter's methods create `_events` on the first listener
// (S4, RSS per idle connection). Its state starts as the prototype's
// defaults (below the class); only what changes becomes its own.
class NativeSocket {
  /**
   * @param {WebSocket} websocket Its connection (open, with an id)
   * @param {(string|Object)} [info] Addresses: C's fields (parseAddresses'
   *     input, parsed when read) or parseAddresses' shape
   * @param {EventEmitter} [target] What its events are emitted on and its
   *     methods return (forwardSocket); itself by default
   */
  constructor(websocket, info, target) {
    this._ws = websocket;
    this._target = target || this;
    this._info = info;
  }

  // As a net.Socket's getters: undefined when unknown.
  get remoteAddress() {
    return infoOf(this).remoteAddress || undefined;
  }

  get remotePort() {
    return infoOf(this).remotePort || undefined;
  }

  get remoteFamily() {
    return infoOf(this).remoteFamily || undefined;
  }

  get localAddress() {
    return infoOf(this).localAddress || undefined;
  }

  get localPort() {
    return infoOf(this).localPort || undefined;
  }

  get localFamily() {
    return infoOf(this).localFamily || undefined;
  }

  get destroyed() {
    return this._destroyed;
  }

  get readyState() {
    return this._destroyed ? 'closed' : 'open';
  }

  get readable() {
    return !this._destroyed;
  }

  get writable() {
    return !this._destroyed;
  }

  /**
   * Bytes accepted and not yet handed to the kernel: net.Socket's
   * writableLength, the frame bytes of ws-native's bufferedAmount.
   */
  get writableLength() {
    const ws = this._ws;
    if (this._destroyed) return 0;
    return ws.bufferedAmount - ws._bufferedAmount - ws._blobBytes;
  }

  get writableNeedDrain() {
    return this._needDrain;
  }

  /** Frame bytes accepted by send (the HTTP handshake is not counted). */
  get bytesWritten() {
    return this._ws._sent;
  }

  address() {
    if (this.localAddress === undefined) return {};
    return {
      address: this.localAddress,
      family: this.localFamily,
      port: this.localPort
    };
  }

  /**
   * As net.Socket's: a real SO_KEEPALIVE (and TCP_KEEPIDLE of
   * initialDelay / 1000 seconds) on the C socket.
   */
  setKeepAlive(enable = false, initialDelay = 0) {
    const on = enable ? 1 : 0;
    let delay = ~~(initialDelay / 1000);
    if (!(delay > 0)) delay = 0;
    if (!this._destroyed) {
      binding.sockopt(this._ws._id, C.SOCKOPT_KEEPALIVE, on + delay * 2);
    }
    return this._target;
  }

  /** As net.Socket's: TCP_NODELAY on the C socket (default: on). */
  setNoDelay(noDelay = true) {
    if (!this._destroyed) {
      binding.sockopt(this._ws._id, C.SOCKOPT_NODELAY, noDelay ? 1 : 0);
    }
    return this._target;
  }

  /**
   * As net.Socket's: 'timeout' after `msecs` without reads or writes (what
   * the I/O loop reports and what JS sends); the timer itself never keeps
   * the process alive. 0 turns it off.
   */
  setTimeout(msecs, callback) {
    if (this._destroyed) return this._target;
    this._timeoutSet = msecs;
    // Node's checks (timers' getTimerDuration).
    if (typeof msecs !== 'number') {
      const err = new TypeError(
        'The "msecs" argument must be of type number. Received ' +
          `${msecs === null ? 'null' : typeof msecs}`
      );
      err.code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    if (!(msecs >= 0) || msecs === Infinity) {
      const err = new RangeError(
        'The value of "msecs" is out of range. It must be >= 0 && <= ' +
          `${TIMEOUT_MAX}. Received ${msecs}`
      );
      err.code = 'ERR_OUT_OF_RANGE';
      throw err;
    }
    if (msecs > TIMEOUT_MAX) msecs = 1;
    if (callback !== undefined && typeof callback !== 'function') {
      const err = new TypeError(
        'The "callback" argument must be of type function. Received ' +
          `${callback === null ? 'null' : typeof callback}`
      );
      err.code = 'ERR_INVALID_ARG_TYPE';
      throw err;
    }
    clearTimeout(this._timer);
    this._timer = null;
    this._timeoutMs = 0;
    if (msecs === 0) {
      if (callback !== undefined) {
        this._target.removeListener('timeout', callback);
      }
      return this._target;
    }
    this._timeoutMs = msecs;
    this._timer = setTimeout(onTimeout, msecs, this);
    this._timer.unref();
    if (callback !== undefined) this._target.once('timeout', callback);
    return this._target;
  }

  get timeout() {
    return this._timeoutSet;
  }

  /** This connection stops keeping the process alive. */
  unref() {
    if (!this._refed) return this._target;
    this._refed = false;
    const ws = this._ws;
    if (ws._live) {
      ws._live = false;
      release();
    }
    if (!this._destroyed) binding.sockopt(ws._id, C.SOCKOPT_REF, 0);
    return this._target;
  }

  ref() {
    if (this._refed) return this._target;
    this._refed = true;
    if (this._destroyed) return this._target;
    const ws = this._ws;
    if (!ws._live && !ws._nativeClosed && ws._id !== 0) {
      ws._live = true;
      retain();
    }
    binding.sockopt(ws._id, C.SOCKOPT_REF, 1);
    return this._target;
  }

  /** As ws's socket.pause(): the loop stops reading from the peer. */
  pause() {
    if (!this._destroyed) binding.pause(this._ws._id);
    return this._target;
  }

  resume() {
    if (!this._destroyed) binding.resume(this._ws._id);
    return this._target;
  }

  /**
   * ws reacts to its socket's destruction as to terminate(): the close is
   * 1006 and no 'error' reaches the WebSocket (ws's socketOnError swallows
   * it). An error given here is emitted on this object when it is listened
   * for.
   */
  destroy(err) {
    if (this._destroyed) return this._target;
    const target = this._target;
    if (err && target.listenerCount('error') > 0) {
      process.nextTick(() => target.emit('error', err));
    }
    this._ws.terminate();
    this._destroyed = true;
    return this._target;
  }

  /**
   * Ends the connection without a close frame (ws sees its socket end and
   * the close is 1006). The C socket is closed at once: unlike a
   * net.Socket, bytes still queued are not flushed first.
   */
  end(...args) {
    // end([data][, encoding][, callback]): data is not written.
    const cb = args.find((arg) => typeof arg === 'function');
    if (cb !== undefined) this._target.once('close', () => cb());
    this._ws.terminate();
    this._destroyed = true;
    return this._target;
  }

  /**
   * Called by WebSocket before a send of about `size` payload bytes:
   * whether C must report when this frame is written (the send crosses the
   * high-water mark, or a 'drain' is due).
   *
   * @private
   */
  _wantAck(size) {
    if (this._needDrain) return true;
    const ws = this._ws;
    if (waiting(ws) + size + MAX_HEADER < HIGH_WATER_MARK) return false;
    // _written may be stale (nothing refreshes it on a connection whose
    // bufferedAmount nobody reads): recount once before asking C for a
    // WRITTEN event, or every send past the first 16 KiB ever sent would
    // ask for one.
    ws._refreshWritten();
    return waiting(ws) + size + MAX_HEADER >= HIGH_WATER_MARK;
  }

  /**
   * After a send for which _wantAck was true: net.Socket's write() sets
   * needDrain when the bytes waiting reach the high-water mark.
   *
   * @private
   */
  _afterSend() {
    if (!this._needDrain && this.writableLength >= HIGH_WATER_MARK) {
      this._needDrain = true;
    }
  }

  /**
   * C wrote bytes (or read some): restarts the idle timer; after a write
   * report, 'drain' once nothing waits.
   *
   * @private
   */
  _onWritten() {
    const ws = this._ws;
    if (this._needDrain && ws._written >= ws._sent) {
      this._needDrain = false;
      this._target.emit('drain');
    }
  }

  /** @private */
  _active() {
    if (this._timer !== null) this._timer.refresh();
  }

  /**
   * The connection is gone: as a destroyed net.Socket, 'close' on the
   * next tick.
   *
   * @private
   */
  _closed(hadError) {
    if (this._closeDue) return;
    this._closeDue = true;
    this._destroyed = true;
    this._needDrain = false;
    clearTimeout(this._timer);
    this._timer = null;
    const target = this._target;
    process.nextTick(() => {
      this._emittingClose = true;
      try {
        target.emit('close', !!hadError);
      } finally {
        this._emittingClose = false;
      }
    });
  }
}

Object.setPrototypeOf(NativeSocket.prototype, EventEmitter.prototype);
Object.setPrototypeOf(NativeSocket, EventEmitter);
Object.assign(NativeSocket.prototype, {
  connecting: false,
  pending: false,
  writableHighWaterMark: HIGH_WATER_MARK,
  _needDrain: false,
  _destroyed: false,
  _closeDue: false, // 'close' was scheduled (once)
  _timeoutMs: 0, // setTimeout's idle time (0: none)
  _timeoutSet: undefined, // net.Socket's `timeout`: as last given
  _timer: null,
  _refed: true,
  _emittingClose: false
});

/** A NativeSocket's addresses in parseAddresses' shape. */
function infoOf(socket) {
  const info = socket._info;
  if (typeof info === 'string') return parseAddresses(info);
  return info || {};
}

function onTimeout(socket) {
  // As a net.Socket's: the timer stays, and the next activity re-arms it
  // (refresh() reactivates a timer that fired).
  socket._target.emit('timeout');
}

/**
 * A Node socket's addresses, read while it has its handle: once destroyed
 * it forgets the local ones.
 */
function addressesOf(socket) {
  return {
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    remoteFamily: socket.remoteFamily,
    localAddress: socket.localAddress,
    localPort: socket.localPort,
    localFamily: socket.localFamily
  };
}

const METHODS = ['address', 'destroy', 'end', 'pause', 'ref', 'resume',
  'setKeepAlive', 'setNoDelay', 'setTimeout', 'unref'];
const GETTERS = ['bytesWritten', 'destroyed', 'localAddress', 'localFamily',
  'localPort', 'readable', 'readyState', 'remoteAddress', 'remoteFamily',
  'remotePort', 'timeout', 'writable', 'writableLength', 'writableNeedDrain'];

function noop() {}

/**
 * A Node socket the loop took over (lib/adopt.js destroyed its handle,
 * keeping the addresses cached): its net.Socket calls and state now
 * reach the C connection through a NativeSocket, which emits 'timeout',
 * 'drain' and 'close' on it. A socket still alive (bridged, see adopt.js)
 * is left as it is.
 *
 * @param {net.Socket} socket
 * @param {WebSocket} websocket
 * @param {Object} info addressesOf(socket), read before the takeover
 * @return {(NativeSocket|null)}
 */
function forwardSocket(socket, websocket, info) {
  if (!socket.destroyed) return null;
  const ns = new NativeSocket(websocket, info, socket);
  for (const name of METHODS) {
    Object.defineProperty(socket, name, {
      configurable: true,
      writable: true,
      value: (...args) => ns[name](...args)
    });
  }
  // Node's 'close' for the handle it gave up (due now) is not the
  // connection's: only this object's own 'close' goes out.
  const emit = socket.emit;
  Object.defineProperty(socket, 'emit', {
    configurable: true,
    writable: true,
    value: function (name, ...args) {
      if (name === 'close' && !ns._emittingClose) return false;
      return emit.call(this, name, ...args);
    }
  });
  for (const name of GETTERS) {
    // Node's stream code may still assign some of these: ignored.
    Object.defineProperty(socket, name, {
      configurable: true,
      get: () => ns[name],
      set: noop
    });
  }
  return ns;
}

/** Bytes of `ws` not known to be written (this turn's count as waiting). */
function waiting(ws) {
  const base = ws._turnBase >= 0
    ? Math.min(ws._written, ws._turnBase) : ws._written;
  return ws._sent - base;
}

module.exports = {
  NativeSocket,
  addressesOf,
  forwardSocket,
  parseAddresses,
  HIGH_WATER_MARK
};
