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
//   PORT=3000 node examples/chat/server.js        (npm start does this)
//   open http://localhost:3000/ in a browser (two tabs to chat with yourself)
//   node examples/chat/client.js ws://localhost:3000/chat
//
// The handshake is the one of RFC 6455's primer (section 1.2): a browser on
// http://localhost:3000/ sends
//
//   GET /chat HTTP/1.1
//   Host: localhost:3000
//   Upgrade: websocket
//   Connection: Upgrade
//   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
//   Origin: http://localhost:3000
//   Sec-WebSocket-Protocol: chat, superchat
//   Sec-WebSocket-Version: 13
//
// and gets `101 Switching Protocols` with one of the subprotocols it
// offered. A request whose Origin is not in the allowed list gets `403
// Forbidden` (see checkOrigin). The allowed origins are the page's own by
// default (http://localhost:PORT, http://127.0.0.1:PORT, http://[::1]:PORT);
// CHAT_ORIGINS replaces them with a comma-separated list, for a page served
// from elsewhere (`CHAT_ORIGINS=https://chat.example.com`). HOST sets the
// address to bind (default: all).
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
 * The origins allowed to open the chat: CHAT_ORIGINS if set (comma
 * separated), else the page's own origin under each name of the loopback
 * host, on the port the server listens on.
 *
 * @param {number} port The port the http server listens on
 * @param {string} [list] A comma-separated list (CHAT_ORIGINS)
 * @return {Set<string>}
 */
function allowedOrigins(port, list) {
  if (list) {
    // Origins as browsers send them: scheme://host[:port], lower case, no
    // trailing slash.
    return new Set(list.split(',').map((o) => o.trim().toLowerCase().replace(/\/+$/, '')).filter(Boolean));
  }
  return new Set([
    `http://localhost:${port}`,
    `http://127.0.0.1:${port}`,
    `http://[::1]:${port}`
  ]);
}

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
 * @param {string} [options.origins=process.env.CHAT_ORIGINS] The origins
 *     allowed to open the chat, comma separated (default: the page's own,
 *     see allowedOrigins)
 * @return {{ server: http.Server, wss: WebSocketServer,
 *     close: function(): Promise<void> }} close() closes every connection
 *     with 1001, then the WebSocketServer and the http server; it resolves
 *     once both are closed
 */
function start({
  port = 3000,
  host,
  WebSocketServer = wsNative.WebSocketServer,
  logger = console,
  origins = process.env.CHAT_ORIGINS
} = {}) {
  const server = http.createServer(onRequest);
  let allowed = null; // set at the first handshake: the port is known then

  /**
   * verifyClient: refuses a handshake from a page of another origin with
   * 403. This stops cross-site WebSocket hijacking: a browser lets any site
   * open a WebSocket to any server, and sends the user's cookies with it,
   * so without this check a page on evil.example could join the chat in
   * the name of whoever visits it and read everything said. The browser
   * always sends the page's Origin and a page cannot forge it, so a fixed
   * list of origins (not one derived from the Host header, which a DNS
   * rebinding attack controls) keeps other sites out. A request without
   * Origin comes from a non-browser client (client.js, curl), which could
   * send any Origin it liked: the header protects browser users only, so
   * those are let in.
   *
   * @param {{ origin: string, req: http.IncomingMessage }} info
   * @param {function(boolean, number=, string=)} callback
   */
  function checkOrigin(info, callback) {
    const { origin } = info;
    if (allowed === null) allowed = allowedOrigins(server.address().port, origins);
    if (origin === undefined || allowed.has(origin.toLowerCase())) {
      callback(true);
      return;
    }
    logger.log(`refused a connection from origin ${origin}`);
    callback(false, 403, 'Forbidden');
  }

  const wss = new WebSocketServer({
    server,
    path: '/chat',
    handleProtocols,
    verifyClient: checkOrigin
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
  // PORT=0 picks a free port (the URL below says which).
  const port = process.env.PORT === undefined || process.env.PORT === ''
    ? 3000 : Number(process.env.PORT);
  const chat = start({ port, host: process.env.HOST || undefined });

  chat.server.once('listening', () => {
    const { port: bound } = chat.server.address();
    console.log(`Open http://localhost:${bound}/ in a browser ` +
      '(two tabs to chat with yourself). Press Ctrl+C to stop.');
  });

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
