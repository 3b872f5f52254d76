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

module.exports = { limitsOf };
