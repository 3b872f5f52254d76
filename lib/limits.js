'use strict';

/**
 * ws 8.23.1's limits on what a peer can make us hold, as C takes them:
 * [maxPendingAutoPongs, maxFragments, maxBufferedChunks]. ws reads each with
 * `| 0` and applies it when `> 0`; C does the same with these values (see
 * wsn_limits_t in src/loop.h).
 *
 * @param {Object} opts a client's or a server's options
 * @return {number[]}
 */
function limitsOf(opts) {
  return [opts.maxPendingAutoPongs | 0, opts.maxFragments | 0,
    opts.maxBufferedChunks | 0, idleTimeoutMs(opts.idleTimeout),
    opts.sendPings === false ? 0 : 1];
}

// ws-native only: flow control (docs/flow-control.md).

// send() returns false once this many bytes wait to be written (Node 22's
// default highWaterMark for byte streams; uWS's maxBackpressure is 64 KiB
// too).
const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
// idleTimeout's ceiling in seconds: setTimeout's (2^31 - 1 ms), which also
// keeps C's idle clock (ms mod 2^31) exact.
const MAX_IDLE_TIMEOUT = 2147483.647;

/** idleTimeout (seconds, validated) in whole ms for C; 0: off. */
function idleTimeoutMs(value) {
  if (typeof value !== 'number' || !(value > 0) || value > MAX_IDLE_TIMEOUT) {
    return 0;
  }
  return Math.ceil(value * 1000);
}

function checkNumber(name, value, max) {
  if (typeof value !== 'number') {
    throw new TypeError(
      `The "${name}" option must be a number. Received ${typeof value}`);
  }
  if (!(value >= 0) || value > max) {
    throw new RangeError(
      `The "${name}" option must be a number >= 0 and <= ${max}. ` +
        `Received ${value}`);
  }
}

/**
 * Throws on a bad highWaterMark, idleTimeout or sendPings (server and
 * client options; absent means the default).
 */
function checkFlowOptions(opts) {
  if (opts.highWaterMark !== undefined) {
    checkNumber('highWaterMark', opts.highWaterMark, Number.MAX_SAFE_INTEGER);
  }
  if (opts.idleTimeout !== undefined && opts.idleTimeout !== null) {
    checkNumber('idleTimeout', opts.idleTimeout, MAX_IDLE_TIMEOUT);
  }
  if (opts.sendPings !== undefined && typeof opts.sendPings !== 'boolean') {
    throw new TypeError(
      `The "sendPings" option must be a boolean. Received ${typeof opts.sendPings}`);
  }
}

/** A socket's highWaterMark, from validated options (the prototype has the default). */
function setHighWaterMark(websocket, value) {
  if (value !== undefined && value !== DEFAULT_HIGH_WATER_MARK) {
    websocket._highWaterMark = value;
  }
}

/**
 * ws's Receiver: allowSynchronousEvents defaults to true when undefined.
 */
function allowSyncOption(value) {
  return value === undefined || !!value;
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

module.exports = {
  DEFAULT_HIGH_WATER_MARK,
  allowSyncOption,
  checkFlowOptions,
  limitsOf,
  setHighWaterMark,
  setMaxBuffered
};
