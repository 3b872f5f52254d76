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
    opts.maxBufferedChunks | 0];
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

module.exports = { allowSyncOption, limitsOf, setMaxBuffered };
