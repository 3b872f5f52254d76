'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');
const process = require('process');

// Loads the addon and owns the one path by which C talks to JS: a batch of
// event records, dispatched here to the object registered for each id.
// Nothing starts (no thread, no loop) until the first server or client.

const os = require('os');
const path = require('path');
const { isMainThread } = require('worker_threads');

// node-gyp-build: build/Release (a from-source or ASan build) when there is
// one, else the prebuilt binary shipped in prebuilds/<platform>-<arch>/ (one
// N-API binary serves every Node version), so an install without a compiler
// or with --ignore-scripts still loads. WS_NATIVE_PREBUILD=<dir> and
// PREBUILDS_ONLY=1 (node-gyp-build's own switches) pick one explicitly.
const binding = require('node-gyp-build')(path.join(__dirname, '..'));
// A copy with fast properties: the object C built has its ~50 properties in
// dictionary mode, so every C.X in a hot path was a slow keyed load (9% of
// an echo server's time in V8's LoadIC).
const C = { ...binding.constants };

// Objects that receive events, by slot: an id is slot + generation *
// 2^SLOT_BITS, so an array indexed by slot (with the id kept to check the
// generation) finds the target without a Map lookup per event. A slot can
// hold two ids for a moment: C frees a slot once it posted its CLOSED, and
// the slot may be given to a new socket before JS has taken that CLOSED; the
// older id then waits in `displaced` until it is unregistered.
// A small integer (`**` gives a heap number): ids stay small integers too
// while they fit (generation < 2^(31 - SLOT_BITS)), so WebSocket._id holds
// no 16-byte heap number per connection.
const SLOT_SCALE = 1 << C.SLOT_BITS;
const targets = [];
const targetIds = [];
const displaced = new Map();
const {
  OFF_TYPE, OFF_SLOT, OFF_GEN, OFF_LEN, OFF_A, OFF_B, OFF_C, EVENT_SIZE,
  EV_MESSAGE, EV_CONNECTION, EV_HANDSHAKE, MSG_EXTERNAL, EV_DROPPED
} = C;
let started = false;
let live = 0;

/**
 * Starts the I/O loop on first use: its own thread by default, or Node's main
 * loop (see mainLoopMode).
 */
function ensureStarted() {
  if (started) return;
  started = true;
  binding.start(dispatch, mainLoopMode());
  // process.exit() and uncaught exceptions on the main thread run no env
  // cleanup hooks, only 'exit' listeners: stop the I/O thread here too.
  // Workers run their cleanup hooks, which do the same.
  if (isMainThread) process.on('exit', () => binding.shutdown());
}

/**
 * Which loop runs the sockets: WS_NATIVE_LOOP=main or =thread chooses;
 * otherwise Node's main loop when the process may use only one CPU (its
 * affinity, as os.availableParallelism() reads it), where a second thread
 * only adds wake-ups (bench/: S1-S3 are faster on the main loop there), and
 * the I/O thread when there are more.
 *
 * @return {boolean}
 */
function mainLoopMode() {
  const mode = process.env.WS_NATIVE_LOOP;
  if (mode === 'main') return true;
  if (mode === 'thread') return false;
  return os.availableParallelism() === 1;
}

/**
 * Counts a server or socket that keeps the process alive (0 -> 1 refs the
 * I/O loop's wake-up, 1 -> 0 lets the process exit).
 */
function retain() {
  if (live++ === 0) binding.ref();
}

function release() {
  if (live > 0 && --live === 0) binding.unref();
}

function register(id, target) {
  const slot = id % SLOT_SCALE;
  const old = targetIds[slot];
  if (old !== undefined && old !== -1 && old !== id) {
    displaced.set(old, targets[slot]);
  }
  targets[slot] = target;
  targetIds[slot] = id;
}

function unregister(id) {
  const slot = id % SLOT_SCALE;
  if (targetIds[slot] === id) {
    targets[slot] = undefined;
    targetIds[slot] = -1;
  } else {
    displaced.delete(id);
  }
}

function targetOf(id) {
  const slot = id % SLOT_SCALE;
  if (targetIds[slot] === id) return targets[slot];
  return displaced.size === 0 ? undefined : displaced.get(id);
}

/**
 * The one function C calls, with all events since the previous call: `buf`
 * (a Buffer C reuses for every batch) holds `end` bytes of records, payloads
 * inline, and `externals` the large messages in record order. Each listener's exception is caught so that no other
 * connection loses its events; the first one is rethrown afterwards, which
 * keeps ws's uncaught-exception behaviour.
 *
 * @param {Buffer} buf
 * @param {Buffer[]} externals
 */
function dispatch(buf, externals, end) {
  const view = new DataView(buf.buffer, buf.byteOffset, end);
  let off = 0;
  let ext = 0;
  let firstError;
  let failed = false;
  let pool = null;
  let poolStart = 0;
  let poolEnd = 0;
  while (off < end) {
    const type = view.getUint32(off + OFF_TYPE, true);
    const slot = view.getUint32(off + OFF_SLOT, true);
    const gen = view.getUint32(off + OFF_GEN, true);
    const len = view.getUint32(off + OFF_LEN, true);
    const a = view.getUint32(off + OFF_A, true);
    const b = view.getUint32(off + OFF_B, true);
    const c = view.getUint32(off + OFF_C, true) +
      view.getUint32(off + OFF_C + 4, true) * 4294967296;
    const start = off + EVENT_SIZE;
    let payload;
    if (type === EV_MESSAGE && (a & MSG_EXTERNAL)) {
      payload = externals[ext++];
      off = start;
    } else if (len === 0) {
      // One shared empty Buffer, as ws's EMPTY_BUFFER: a flood of empty
      // pings makes no garbage.
      payload = EMPTY;
      off = start;
    } else if (len <= POOLED_MAX) {
      // Copied out, as the next batch reuses `buf`: small payloads in
      // chunks of up to 8 KiB of the batch (records included), each payload
      // a view of its chunk: one bulk copy per chunk instead of a copy per
      // message. A kept message pins at most its 8 KiB chunk (not Node's
      // Buffer pool, which Node 26 made 64 KiB).
      if (start + len > poolEnd) {
        const n = Math.max(len, Math.min(end - start, POOL_CHUNK));
        const chunk = Buffer.allocUnsafeSlow(n);
        buf.copy(chunk, 0, start, start + n);
        pool = chunk.buffer; // its own ArrayBuffer, at offset 0
        poolStart = start;
        poolEnd = start + n;
      }
      // (Buffer.from(arrayBuffer, ...) makes a view at half the cost of
      // subarray, which goes through the species constructor.)
      payload = Buffer.from(pool, start - poolStart, len);
      off = start + ((len + 7) & ~7);
    } else {
      // A larger payload gets a copy of its own, so that keeping it pins
      // only its bytes, not the rest of the batch (nor
      // Node's Buffer pool: 64 KiB from Node 26 on).
      payload = Buffer.allocUnsafeSlow(len);
      buf.copy(payload, 0, start, start + len);
      off = start + ((len + 7) & ~7);
    }
    const id = gen * SLOT_SCALE + slot;
    // A new connection's events go to its server.
    const target = targetOf(
      type === EV_CONNECTION || type === EV_HANDSHAKE ? c : id
    );
    if (target === undefined) {
      // A publish skipped slow subscribers (id 0: for several sockets).
      if (type === EV_DROPPED) {
        const err = require('./topics').emitDropped(payload, a, b, c, targetOf);
        if (err !== undefined && !failed) {
          failed = true;
          firstError = err;
        }
      }
      continue;
    }
    try {
      target._onNativeEvent(type, payload, a, b, c, id);
    } catch (err) {
      if (!failed) {
        failed = true;
        firstError = err;
      }
    }
  }
  if (failed) process.nextTick(rethrow, firstError);
}

const EMPTY = Buffer.alloc(0);
// Payloads up to POOLED_MAX bytes are views of a copied chunk of the batch.
const POOLED_MAX = 1024;
const POOL_CHUNK = 8192;

function rethrow(err) {
  throw err;
}

module.exports = {
  binding,
  C,
  ensureStarted,
  register,
  unregister,
  retain,
  release
};
