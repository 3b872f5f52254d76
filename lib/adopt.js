'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');

// Moving a socket that Node's http server accepted to the I/O loop, after
// JS answered the upgrade (DESIGN.md, "Sockets that Node already owns").
//
// - A plain TCP or pipe socket is taken over: the loop gets a duplicate of
//   its fd, and Node's handle is stopped and destroyed. Nothing Node read is
//   lost: `head`, then whatever sits in the stream's buffer, go to the
//   parser before the first byte the loop reads itself.
// - A socket that cannot be taken over (a TLSSocket, whose TLS state lives
//   in Node, or any other Duplex) is linked to the loop through a
//   socketpair: the stream is piped to one end, the loop owns the other and
//   runs the same C codec on it. See the README for why this differs from
//   DESIGN.md's "codec on the JS thread".

const net = require('net');

const { binding } = require('./native');

/**
 * Hands `socket` to the loop, with `response` (the 101) to write first.
 *
 * @param {Duplex} socket The upgraded socket
 * @param {Buffer} head The bytes Node read after the request
 * @param {string} response The whole HTTP response
 * @param {number} maxPayload
 * @param {number} flags WSN_SERVER_* flags
 * @param {Buffer} [setup] the permessage-deflate agreement (lib/pmd.js)
 * @param {number[]} [limits] [maxPendingAutoPongs, maxFragments,
 *     maxBufferedChunks] (lib/websocket.js limitsOf)
 * @return {number} The connection id
 */
function adoptSocket(socket, head, response, maxPayload, flags, setup, limits) {
  const pending = drainReadable(socket, head);
  const handle = socket._handle;
  const takeover =
    socket instanceof net.Socket &&
    !socket.encrypted &&
    handle != null &&
    typeof handle.fd === 'number' &&
    handle.fd >= 0 &&
    typeof handle.readStop === 'function' &&
    socket.writableLength === 0;

  if (takeover) {
    // Node cannot ask the kernel once its handle is gone: read the addresses
    // now, so req.socket.remoteAddress etc. keep answering from its cache.
    cacheAddresses(socket);
    handle.readStop();
    const [id] = binding.adopt(handle.fd, pending, response, maxPayload,
      flags, setup, limits);
    // Closes only Node's descriptor; the loop's duplicate keeps the
    // connection open, and no FIN or RST is sent.
    socket.destroy();
    return id;
  }

  const [id, fd] = binding.adopt(-1, pending, response, maxPayload, flags,
    setup, limits);
  bridge(socket, new net.Socket({ fd, readable: true, writable: true }));
  return id;
}

/**
 * Concatenates `head` and the data already buffered in the stream.
 */
function drainReadable(socket, head) {
  const chunks = head && head.length ? [head] : [];
  if (socket.readableLength > 0) {
    let chunk;
    while ((chunk = socket.read()) !== null) {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    }
  }
  if (chunks.length === 0) return Buffer.alloc(0);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

function cacheAddresses(socket) {
  // The getters fill Node's _peername / _sockname caches.
  void socket.remoteAddress;
  void socket.localAddress;
}

/**
 * Pipes `stream` (the peer) and `pair` (the loop's socketpair end) into each
 * other with backpressure. An end travels through as an end; an error or an
 * abrupt close on one side destroys the other.
 */
function bridge(stream, pair) {
  stream.pipe(pair);
  pair.pipe(stream);

  pair.on('error', () => {
    stream.destroy();
  });
  pair.on('close', () => {
    // The loop closed the connection. After a clean end (pipe() called
    // stream.end() already) let the stream flush its last bytes first, as
    // ws's abortHandshake does; otherwise cut it now.
    if (stream.destroyed) return;
    if (stream.writableEnded) {
      if (stream.writableFinished) stream.destroy();
      else stream.once('finish', () => stream.destroy());
    } else {
      stream.destroy();
    }
  });
  stream.on('error', () => {
    pair.destroy();
  });
  stream.on('close', () => {
    // After a clean end pipe() has ended `pair`; let its last bytes reach
    // the loop, which closes the connection when it reads the end.
    if (!stream.readableEnded) pair.destroy();
  });
}

module.exports = { adoptSocket };
