'use strict';

// Topics (publish/subscribe), ws-native only: see docs/topics.md.
//
// C keeps the index a publish fans out from (src/topics.c, one per I/O
// loop) and builds each published frame once (src/publish.c). JS keeps a
// mirror of it, topic -> subscribers per server (a "hub") and topics per
// socket, so that isSubscribed, topics, subscriberCount and publish's
// return value answer at once, with no trip to the I/O thread. Both sides
// change only through commands that travel in order with the sockets'
// sends, so the mirror and the index agree whenever a command runs.

const { Buffer } = require('buffer'); // not the global getter (native.js)
const { binding, C } = require('./native');
const { isBlob } = require('./validation');

const OPEN = 1;
const EMPTY = Buffer.alloc(0);
// Default maxBackpressure: see docs/topics.md ("Slow subscribers").
const DEFAULT_MAX_BACKPRESSURE = 1024 * 1024;

let nextHub = 1;

/** A server's topics: its id for C, and topic -> Set of WebSockets. */
class Hub {
  constructor() {
    this.id = nextHub++;
    if (nextHub > 0xffffffff) nextHub = 1;
    this.map = new Map();
  }
}

function hubOfServer(server) {
  if (server._topicHub == null) server._topicHub = new Hub();
  return server._topicHub;
}

/**
 * The hub of a socket's server. Sockets a WebSocketServer made know their
 * server (`_wss`); a client has none: see docs/topics.md for why clients
 * cannot subscribe or publish.
 */
function hubOf(ws, what) {
  const server = ws._wss;
  if (server == null) {
    throw new Error(
      `ws-native: ${what}() is for sockets a WebSocketServer made, not ` +
        'for clients'
    );
  }
  return hubOfServer(server);
}

function checkTopic(topic) {
  if (typeof topic !== 'string') {
    throw new TypeError(
      'The "topic" argument must be a string. Received ' +
        (topic === null ? 'null' : typeof topic)
    );
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: count only when it may matter.
  if (topic.length > C.TOPIC_MAX / 3 &&
      Buffer.byteLength(topic) > C.TOPIC_MAX) {
    throw new RangeError(
      `The "topic" argument must be at most ${C.TOPIC_MAX} bytes (UTF-8)`
    );
  }
}

function subscribe(ws, topic) {
  const hub = hubOf(ws, 'subscribe');
  checkTopic(topic);
  // A closing socket can receive nothing more, and a closed one has left
  // its topics for good.
  if (ws._readyState !== OPEN) return;
  if (ws._subs === null) ws._subs = new Set();
  else if (ws._subs.has(topic)) return;
  ws._subs.add(topic);
  let set = hub.map.get(topic);
  if (set === undefined) hub.map.set(topic, (set = new Set()));
  set.add(ws);
  binding.subscribe(ws._id, hub.id, topic);
}

function unsubscribe(ws, topic) {
  const hub = hubOf(ws, 'unsubscribe');
  checkTopic(topic);
  if (ws._subs === null || !ws._subs.delete(topic)) return;
  if (ws._subs.size === 0) ws._subs = null;
  leave(hub, ws, topic);
  if (!ws._nativeClosed) binding.unsubscribe(ws._id, hub.id, topic);
}

function leave(hub, ws, topic) {
  const set = hub.map.get(topic);
  if (set === undefined) return;
  set.delete(ws);
  if (set.size === 0) hub.map.delete(topic);
}

/** A socket closed: it leaves every topic (C's side did on its close). */
function leaveAll(ws) {
  const subs = ws._subs;
  ws._subs = null;
  if (subs === null || ws._wss == null) return;
  const hub = hubOfServer(ws._wss);
  for (const topic of subs) leave(hub, ws, topic);
}

function isSubscribed(ws, topic) {
  checkTopic(topic);
  return ws._subs !== null && ws._subs.has(topic);
}

function topicsOf(ws) {
  return ws._subs === null ? [] : Array.from(ws._subs);
}

function subscriberCount(server, topic) {
  checkTopic(topic);
  const set = server._topicHub == null
    ? undefined : server._topicHub.map.get(topic);
  return set === undefined ? 0 : set.size;
}

/**
 * One command to the I/O loop for every subscriber of `topic` but `skip`.
 * Returns the number of open subscribers the message was queued to. Each
 * subscriber's bufferedAmount counts the frame, as a send() would; C writes
 * it off for one it skips (a closing socket, or a slow one: 'dropped').
 */
function publish(server, skip, topic, data, options) {
  checkTopic(topic);
  if (typeof data === 'number') data = data.toString();
  else if (data === undefined || data === null) data = EMPTY;
  if (isBlob(data)) {
    throw new TypeError('ws-native: publish() takes no Blob (read it first)');
  }
  if (typeof data !== 'string' && !ArrayBuffer.isView(data) &&
      !(data instanceof ArrayBuffer)) {
    data = Buffer.from(data);
  }
  let binary = typeof data !== 'string';
  let compress = true;
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object') {
      throw new TypeError('The "options" argument must be an object');
    }
    if (options.binary !== undefined) binary = !!options.binary;
    if (options.compress !== undefined) compress = !!options.compress;
  }
  const set = server._topicHub == null
    ? undefined : server._topicHub.map.get(topic);
  if (set === undefined || (set.size === 1 && set.has(skip))) return 0;
  const o = server.options;
  const pmd = o.perMessageDeflate;
  let flags = binary ? C.PUB_BINARY : 0;
  if (compress && pmd) flags |= C.PUB_COMPRESS;
  if (o.closeOnBackpressureLimit) flags |= C.PUB_CLOSE_ON_LIMIT;
  const max = o.maxBackpressure === undefined
    ? DEFAULT_MAX_BACKPRESSURE : o.maxBackpressure;
  const threshold = pmd && pmd.threshold !== undefined ? pmd.threshold : 1024;
  const size = binding.publish(skip === null ? 0 : skip._id,
    server._topicHub.id, topic, data, flags, max, threshold);
  let queued = 0;
  for (const ws of set) {
    if (ws === skip || ws._nativeClosed) continue;
    ws._published(size);
    if (ws._readyState === OPEN) queued++;
  }
  return queued;
}

/** Checks the server options of topics (at construction). */
function checkServerOptions(options) {
  const max = options.maxBackpressure;
  if (max !== undefined && !(typeof max === 'number' && max >= 0)) {
    throw new TypeError(
      'The "maxBackpressure" option must be a number >= 0 (bytes)'
    );
  }
}

/**
 * C's DROPPED record: `count` subscriber ids (uint64 LE), the topic
 * (`topicLen` bytes), then the data. Each listed socket still known gets
 * 'dropped' (data, isBinary, topic); all of them share the one Buffer.
 * Returns the first exception a listener threw.
 */
function emitDropped(payload, flags, topicLen, count, targetOf) {
  const idsEnd = count * 8;
  const topic = payload.toString('utf8', idsEnd, idsEnd + topicLen);
  const data = payload.subarray(idsEnd + topicLen);
  const isBinary = (flags & C.PUB_BINARY) !== 0;
  let error;
  for (let i = 0; i < count; i++) {
    const id = payload.readUInt32LE(i * 8) +
      payload.readUInt32LE(i * 8 + 4) * 4294967296;
    const ws = targetOf(id);
    if (ws === undefined) continue;
    try {
      ws.emit('dropped', data, isBinary, topic);
    } catch (err) {
      if (error === undefined) error = err;
    }
  }
  return error;
}

module.exports = {
  DEFAULT_MAX_BACKPRESSURE,
  checkServerOptions,
  emitDropped,
  isSubscribed,
  leaveAll,
  publish,
  subscribe,
  subscriberCount,
  topicsOf,
  unsubscribe
};
