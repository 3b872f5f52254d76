'use strict';

// A small chat room. Every message a client sends goes to every open
// client, sender included, exactly as received (text stays text, binary
// stays binary); the server adds JSON system messages when people join or
// leave.
//
// One port serves both: an http server answers GET / with a chat page
// (index.html, next to this file) and a WebSocketServer attached to it with
// `{ server }` takes the upgrades to /chat.
//
//   PORT=3000 node examples/chat/server.js
//   open http://localhost:3000/ in a browser (two tabs to chat with yourself)
//   node examples/chat/client.js ws://localhost:3000/chat
//
// Only the API ws 8 offers is used, so this runs unchanged on ws.
//
// Required as a module, it exports start(), which the tests use to run the
// room on an ephemeral port, with the WebSocketServer class under test.

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const wsNative = require('../..');

// Subprotocols we speak, best first.
const PROTOCOLS = ['superchat', 'chat'];

// How long clients get to finish the closing handshake on shutdown before
// they are cut off, so a stuck peer cannot keep the process alive.
const SHUTDOWN_GRACE_MS = 5000;

// The page, read once: it is small and does not change while we run.
const PAGE = fs.readFileSync(path.join(__dirname, 'index.html'));

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

/**
 * Answers the plain HTTP requests: the page at /, 404 for anything else.
 * WebSocket upgrades never get here; the WebSocketServer takes them.
 *
 * @param {http.IncomingMessage} req The request
 * @param {http.ServerResponse} res The response
 */
function onRequest(req, res) {
  const { pathname } = new URL(req.url, 'http://localhost');

  if ((req.method === 'GET' || req.method === 'HEAD') &&
      (pathname === '/' || pathname === '/index.html')) {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': PAGE.length,
      'Cache-Control': 'no-cache'
    });
    res.end(req.method === 'HEAD' ? undefined : PAGE);
    return;
  }

  const body = 'Not found\n';
  res.writeHead(404, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body)
  });
  res.end(body);
}

/**
 * Starts the chat room: an http server serving the page, with a
 * WebSocketServer on /chat attached to it.
 *
 * @param {Object} [options]
 * @param {number} [options.port=3000] The port (0: any free port; read it
 *     from server.address() once the server emitted 'listening')
 * @param {string} [options.host] The address to bind (default: all)
 * @param {Function} [options.WebSocketServer] The WebSocketServer class
 *     (default: ws-native's; ws's works the same)
 * @param {Object} [options.logger=console] Where to log: an object with
 *     log() and error()
 * @return {{ server: http.Server, wss: WebSocketServer,
 *     close: function(): Promise<void> }} close() closes every connection
 *     with 1001, then the WebSocketServer and the http server; it resolves
 *     once both are closed
 */
function start({
  port = 3000,
  host,
  WebSocketServer = wsNative.WebSocketServer,
  logger = console
} = {}) {
  const server = http.createServer(onRequest);

  const wss = new WebSocketServer({
    server,
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
      if (client.readyState === client.OPEN) {
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
    // handleProtocols is only consulted when a client offers subprotocols,
    // so a client offering none (or one that ignored our refusal) ends up
    // here with an empty protocol. 1002: the client did not speak our
    // protocol.
    if (!ws.protocol) {
      ws.close(1002, 'Subprotocol chat or superchat required');
      return;
    }

    const name = `guest-${nextGuest++}`;
    logger.log(`${name} connected from ${req.socket.remoteAddress} ` +
      `(${ws.protocol})`);
    announce(`${name} joined`);

    ws.on('message', (data, isBinary) => {
      // Forward the Buffer as it came: no decoding and re-encoding of text,
      // and the frame type is preserved.
      broadcast(data, isBinary);
    });

    ws.on('close', (code) => {
      logger.log(`${name} left (${code})`);
      announce(`${name} left`);
    });

    // A protocol error from one peer must not crash the room; ws closes the
    // socket itself after emitting it.
    ws.on('error', (err) => {
      logger.error(`${name}: ${err.message}`);
    });
  });

  // With { server }, the http server's 'listening' and 'error' events are
  // re-emitted by the WebSocketServer.
  wss.on('listening', () => {
    const { port: bound } = server.address();
    logger.log(`Chat server listening on http://localhost:${bound}/`);
  });

  wss.on('error', (err) => {
    // Typically EADDRINUSE: nothing to serve, so report and exit non-zero.
    logger.error(`Server error: ${err.message}`);
    process.exitCode = 1;
  });

  server.listen(port, host);

  let closing = null;

  /**
   * Closes every connection with 1001 (going away), then the
   * WebSocketServer and the http server. Idempotent.
   *
   * @return {Promise<void>} Resolves once both servers are closed
   */
  function close() {
    if (closing) return closing;

    for (const client of wss.clients) {
      client.close(1001, 'Server shutting down');
    }

    // Peers that do not answer the close frame are dropped after the grace
    // period. unref() so the timer itself never holds the process open.
    const timer = setTimeout(() => {
      for (const client of wss.clients) client.terminate();
    }, SHUTDOWN_GRACE_MS).unref();

    // Attached with { server }, wss.close() leaves the http server alone and
    // calls back once the last client has gone; the http server is ours to
    // close (it also drops idle keep-alive connections).
    const wssClosed = new Promise((resolve) => {
      wss.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    const serverClosed = new Promise((resolve) => {
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
    });

    closing = Promise.all([wssClosed, serverClosed]).then(() => {});
    return closing;
  }

  return { server, wss, close };
}

module.exports = { start };

if (require.main === module) {
  const chat = start({ port: Number(process.env.PORT) || 3000 });

  let shuttingDown = false;

  /**
   * Closes the room on SIGINT/SIGTERM. The process exits by itself once
   * nothing is left open; a second signal exits at once.
   *
   * @param {string} signal The signal received
   */
  const shutdown = (signal) => {
    if (shuttingDown) {
      process.exit(1);
    }
    shuttingDown = true;
    console.log(`${signal} received, closing ` +
      `${chat.wss.clients.size} connection(s)`);
    chat.close().then(() => {
      console.log('Server closed');
    });
  };

  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
