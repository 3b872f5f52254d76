'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');

// ws's Sender class, for code that uses it directly. The one use that
// matters is socket.io's frame-once broadcast: its adapter frames a message
// once with Sender.frame() and engine.io hands the same frame to every
// socket with `websocket._sender.sendFrame(frame, cb)`. Every ws-native
// WebSocket has a `_sender` whose sendFrame() queues those exact bytes on
// the C connection (binding.sendFrame).
//
// A Sender made with `new Sender(socket)` writes frames to a Node stream as
// ws's does, without compression (ws-native compresses in C; see README).

const { randomFillSync } = require('crypto');

const { EMPTY_BUFFER, NOOP } = require('./constants');
const { isBlob, isValidStatusCode } = require('./validation');

// Where frame() puts a random masking key when the caller gives no buffer
// (as ws, one shared 4-byte buffer), and a pool of random bytes drawn 8 KiB
// at a time so that masking many small frames does not call into crypto
// for each.
const sharedMask = Buffer.alloc(4);
const POOL_SIZE = 8 * 1024;
let pool = null;
let poolOffset = POOL_SIZE;

function randomMask(mask) {
  if (poolOffset === POOL_SIZE) {
    if (pool === null) pool = Buffer.alloc(POOL_SIZE);
    randomFillSync(pool, 0, POOL_SIZE);
    poolOffset = 0;
  }
  for (let i = 0; i < 4; i++) mask[i] = pool[poolOffset++];
}

// XORs `length` bytes of `source` with `mask` into `output` at `offset`.
function applyMask(source, mask, output, offset, length) {
  for (let i = 0; i < length; i++) {
    output[offset + i] = source[i] ^ mask[i & 3];
  }
}

/**
 * The bytes of `data` as ws's toBuffer gives them, and whether they are
 * the caller's own (then frame() must not mask them in place).
 */
function bytesOf(data) {
  if (Buffer.isBuffer(data)) return { buf: data, readOnly: true };
  if (data instanceof ArrayBuffer ||
      (typeof SharedArrayBuffer !== 'undefined' &&
        data instanceof SharedArrayBuffer)) {
    return { buf: Buffer.from(data), readOnly: true };
  }
  if (ArrayBuffer.isView(data)) {
    return {
      buf: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      readOnly: true
    };
  }
  return { buf: Buffer.from(data), readOnly: false };
}

function noBlob() {
  return new TypeError(
    'ws-native: Sender cannot send a Blob (WebSocket#send() can)'
  );
}

function noCompression() {
  return new Error(
    'ws-native: Sender cannot compress (permessage-deflate runs in C; ' +
      'WebSocket#send() compresses)'
  );
}

class Sender {
  /**
   * @param {Duplex} socket The stream frames are written to
   * @param {Object} [extensions] The negotiated extensions
   * @param {Function} [generateMask] Fills a 4-byte masking key
   */
  constructor(socket, extensions, generateMask) {
    this._extensions = extensions || {};
    if (generateMask) {
      this._generateMask = generateMask;
      this._maskBuffer = Buffer.alloc(4);
    }
    this._socket = socket;
    this._firstFragment = true;
    this._bufferedBytes = 0;
    this.onerror = NOOP;
  }

  /**
   * Frames `data` as ws's Sender.frame does, to the byte: a list of one or
   * two Buffers making one frame (header, then payload unless it was
   * merged into the header's buffer or is empty).
   *
   * @param {(Buffer|String)} data
   * @param {Object} options fin, generateMask, mask, maskBuffer, opcode,
   *     readOnly, rsv1
   * @return {Buffer[]}
   */
  static frame(data, options) {
    let mask = null;
    let unmasked = true; // no key, or an all-zero one (XOR is a no-op)
    let headerSize = 2;

    if (options.mask) {
      mask = options.maskBuffer || sharedMask;
      if (options.generateMask) options.generateMask(mask);
      else randomMask(mask);
      unmasked = (mask[0] | mask[1] | mask[2] | mask[3]) === 0;
      headerSize += 4;
    }

    // Strings become new Buffers, which may be masked in place; a caller's
    // bytes marked read-only are masked into a copy instead.
    let inCopy = false;
    if (typeof data === 'string') {
      data = Buffer.from(data);
    } else {
      inCopy = !!(options.mask && options.readOnly && !unmasked);
    }
    const length = data.length;

    let lengthCode = length;
    if (length >= 65536) {
      lengthCode = 127;
      headerSize += 8;
    } else if (length > 125) {
      lengthCode = 126;
      headerSize += 2;
    }

    const head = Buffer.allocUnsafe(inCopy ? headerSize + length : headerSize);
    head[0] = options.fin ? options.opcode | 0x80 : options.opcode;
    if (options.rsv1) head[0] |= 0x40;
    head[1] = lengthCode;
    if (lengthCode === 126) {
      head.writeUInt16BE(length, 2);
    } else if (lengthCode === 127) {
      head[2] = 0;
      head[3] = 0;
      head.writeUIntBE(length, 4, 6);
    }

    if (mask === null) return length ? [head, data] : [head];

    head[1] |= 0x80;
    head[headerSize - 4] = mask[0];
    head[headerSize - 3] = mask[1];
    head[headerSize - 2] = mask[2];
    head[headerSize - 1] = mask[3];

    if (length === 0) return [head];
    if (unmasked) return [head, data];
    if (inCopy) {
      applyMask(data, mask, head, headerSize, length);
      return [head];
    }
    applyMask(data, mask, data, 0, length);
    return [head, data];
  }

  /**
   * Writes one complete frame (a list from frame()) as it is.
   *
   * @param {Buffer[]} list
   * @param {Function} [cb] Called once it is written, or with the error
   */
  sendFrame(list, cb) {
    if (list.length === 2) {
      this._socket.cork();
      this._socket.write(list[0]);
      this._socket.write(list[1], cb);
      this._socket.uncork();
    } else {
      this._socket.write(list[0], cb);
    }
  }

  /** @private */
  _options(opcode, mask, fin, rsv1, readOnly) {
    return {
      fin,
      generateMask: this._generateMask,
      mask,
      maskBuffer: this._maskBuffer,
      opcode,
      readOnly,
      rsv1
    };
  }

  close(code, data, mask, cb) {
    let buf;
    if (code === undefined) {
      buf = EMPTY_BUFFER;
    } else if (typeof code !== 'number' || !isValidStatusCode(code)) {
      throw new TypeError('First argument must be a valid error code number');
    } else if (data === undefined || !data.length) {
      buf = Buffer.allocUnsafe(2);
      buf.writeUInt16BE(code, 0);
    } else {
      const length = Buffer.byteLength(data);
      if (length > 123) {
        throw new RangeError('The message must not be greater than 123 bytes');
      }
      buf = Buffer.allocUnsafe(2 + length);
      buf.writeUInt16BE(code, 0);
      if (typeof data === 'string') {
        buf.write(data, 2);
      } else if (data instanceof Uint8Array) {
        buf.set(data, 2);
      } else {
        throw new TypeError('Second argument must be a string or a Uint8Array');
      }
    }
    this.sendFrame(
      Sender.frame(buf, this._options(0x08, mask, true, false, false)), cb);
  }

  ping(data, mask, cb) {
    this._control(0x09, data, mask, cb);
  }

  pong(data, mask, cb) {
    this._control(0x0a, data, mask, cb);
  }

  /** @private */
  _control(opcode, data, mask, cb) {
    if (isBlob(data)) throw noBlob();
    const { buf, readOnly } = typeof data === 'string'
      ? { buf: Buffer.from(data), readOnly: false }
      : bytesOf(data);
    if (buf.length > 125) {
      throw new RangeError('The data size must not be greater than 125 bytes');
    }
    this.sendFrame(
      Sender.frame(buf, this._options(opcode, mask, true, false, readOnly)),
      cb);
  }

  /**
   * Sends a data frame (options: binary, compress, fin, mask), as ws's
   * Sender#send does for an uncompressed message.
   */
  send(data, options, cb) {
    if (isBlob(data)) throw noBlob();
    let opcode = options.binary ? 2 : 1;
    if (this._firstFragment) {
      if (options.compress) throw noCompression();
    } else {
      opcode = 0;
    }
    const { buf, readOnly } = typeof data === 'string'
      ? { buf: Buffer.from(data), readOnly: false }
      : bytesOf(data);
    this._firstFragment = !!options.fin;
    this.sendFrame(
      Sender.frame(buf,
        this._options(opcode, options.mask, options.fin, false, readOnly)),
      cb);
  }
}

module.exports = Sender;
