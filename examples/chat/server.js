'use strict';

// A small chat room. Every message a client sends goes to every open
// client, sender included, exactly as received (text stays text, binary
// stays binary); the server adds JSON system messages when people join or
// leave.
//
//   PORT=3000 node examples/chat/server.js
//   node examples/chat/client.js ws://localhost:3000/chat
//
// Only the API ws 8 offers is used, so this runs unchanged on ws.

const { WebSocketServer, WebSocket } = require('../..');

// Subprotocols we speak, best first.
const PROTOCOLS = ['superchat', 'chat'];

// How long clients get to finish the closing handshake on shutdown before
// they are cut off, so a stuck peer cannot keep the process alive.
const SHUTDOWN_GRACE_MS = 5000;

/**
 * Picks the subprotocol for a handshake.
 *
 * @param {Set<string>} offered The protocols in the client's
 *     Sec-WebSocket-Protocol header
 * @return {(string|false)} The chosen protocol, or false for none
 */
function handleProtocols(offered) {
  for (const protocol of PROTOCOLS) {
    if (offered.has(protocol)) return protocol;
  }
  // Returning false only leaves the protocol header out of the 101 response
  // (ws still completes the handshake); conforming clients then fail the
  // connection themselves. The 'connection' handler below closes whatever
  // got through without a protocol.
  return false;
}

const wss = new WebSocketServer({
  port: Number(process.env.PORT) || 3000,
  path: '/chat',
  handleProtocols
});

let nextGuest = 1;

/**
 * Sends data to every open client.
 *
 * @param {(string|Buffer)} data The payload
 * @param {boolean} isBinary Whether to send it in binary frames
 */
function broadcast(data, isBinary) {
  for (const client of wss.clients) {
    // Clients that are closing would only reject the send with an error.
    if (client.readyState === WebSocket.OPEN) {
      client.send(data, { binary: isBinary });
    }
  }
}

/**
 * Announces something to everyone as a system message.
 *
 * @param {string} text What happened
 */
function announce(text) {
  // JSON so that clients can tell our notices from what people typed.
  broadcast(JSON.stringify({ type: 'system', text }), false);
}

wss.on('connection', (ws, req) => {
  // handleProtocols is only consulted when a client offers subprotocols, so
  // a client offering none (or one that ignored our refusal) ends up here
  // with an empty protocol. 1002: the client did not speak our protocol.
  if (!ws.protocol) {
    ws.close(1002, 'Subprotocol chat or superchat required');
    return;
  }

  const name = `guest-${nextGuest++}`;
  console.log(`${name} connected from ${req.socket.remoteAddress} ` +
    `(${ws.protocol})`);
  announce(`${name} joined`);

  ws.on('message', (data, isBinary) => {
    // Forward the Buffer as it came: no decoding and re-encoding of text,
    // and the frame type is preserved.
    broadcast(data, isBinary);
  });

  ws.on('close', (code) => {
    console.log(`${name} left (${code})`);
    announce(`${name} left`);
  });

  // A protocol error from one peer must not crash the room; ws closes the
  // socket itself after emitting it.
  ws.on('error', (err) => {
    console.error(`${name}: ${err.message}`);
  });
});

wss.on('listening', () => {
  const { port } = wss.address();
  console.log(`Chat server listening on ws://localhost:${port}/chat`);
});

wss.on('error', (err) => {
  // Typically EADDRINUSE: nothing to serve, so report and exit non-zero.
  console.error(`Server error: ${err.message}`);
  process.exitCode = 1;
});

let shuttingDown = false;

/**
 * Closes every connection with 1001 (going away), then the server. The
 * process exits by itself once nothing is left open; a second signal exits
 * at once.
 *
 * @param {string} signal The signal received
 */
function shutdown(signal) {
  if (shuttingDown) {
    process.exit(1);
  }
  shuttingDown = true;
  console.log(`${signal} received, closing ${wss.clients.size} connection(s)`);

  for (const client of wss.clients) {
    client.close(1001, 'Server shutting down');
  }

  // Peers that do not answer the close frame are dropped after the grace
  // period. unref() so the timer itself never holds the process open.
  setTimeout(() => {
    for (const client of wss.clients) client.terminate();
  }, SHUTDOWN_GRACE_MS).unref();

  wss.close(() => {
    console.log('Server closed');
  });
}

process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
