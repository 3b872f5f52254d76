'use strict';

// WebSocketServer with ws 8's surface for servers on their own port. The
// listening socket, the HTTP upgrade and every connection live in C; JS is
// consulted during a handshake only when a hook needs it (handleProtocols,
// a 'headers' listener).

const EventEmitter = require('events');
const http = require('http');
const { createHash } = require('crypto');
const util = require('util');

const { binding, C, ensureStarted, register, unregister, retain, release } =
  require('./native');
const { GUID, CLOSE_TIMEOUT } = require('./constants');
const WebSocket = require('./websocket');

const RUNNING = 0;
const CLOSING = 1;
const CLOSED = 2;

class WebSocketServer extends EventEmitter {
  /**
   * @param {Object} options
   * @param {Function} [callback] called on 'listening'
   */
  constructor(options, callback) {
    super();
    options = {
      allowSynchronousEvents: true,
      autoPong: true,
      maxPayload: 100 * 1024 * 1024,
      skipUTF8Validation: false,
      perMessageDeflate: false,
      handleProtocols: null,
      clientTracking: true,
      closeTimeout: CLOSE_TIMEOUT,
      verifyClient: null,
      noServer: false,
      backlog: null,
      server: null,
      host: null,
      path: null,
      port: null,
      WebSocket,
      ...options
    };

    if (
      (options.port == null && !options.server && !options.noServer) ||
      (options.port != null && (options.server || options.noServer)) ||
      (options.server && options.noServer)
    ) {
      throw new TypeError(
        'One and only one of the "port", "server", or "noServer" options ' +
          'must be specified'
      );
    }
    if (options.server || options.noServer) {
      throw new Error(
        'ws-native: the "server" and "noServer" options are not supported ' +
          'yet (see README)'
      );
    }
    if (options.verifyClient) {
      throw new Error('ws-native: verifyClient is not supported yet (see README)');
    }
    if (options.perMessageDeflate) {
      throw new Error(
        'ws-native: perMessageDeflate is not supported yet (see README)'
      );
    }

    if (options.clientTracking) {
      this.clients = new Set();
      this._shouldEmitClose = false;
    }
    this.options = options;
    this._state = RUNNING;
    this._address = null;
    this._closedNative = false;

    ensureStarted();
    const port = Number(options.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(
        `options.port should be >= 0 and < 65536. Received ${options.port}.`
      );
    }
    this._id = binding.listen(
      options.host == null ? '' : String(options.host),
      port,
      options.backlog == null ? 511 : options.backlog,
      options.maxPayload,
      options.path == null ? '' : String(options.path),
      this._flags()
    );
    register(this._id, this);
    retain();
    if (callback) this.once('listening', callback);

    // A 'headers' listener added later sends handshakes through JS too.
    this.on('newListener', (event) => {
      if (event === 'headers' && !this._headersHook) {
        this._headersHook = true;
        binding.serverFlags(this._id, this._flags());
      }
    });
  }

  /** @private */
  _flags() {
    let flags = 0;
    if (this.options.handleProtocols || this._headersHook ||
        this.listenerCount('headers') > 0) {
      flags |= C.SERVER_NEEDS_JS;
    }
    if (!this.options.autoPong) flags |= C.SERVER_NO_AUTO_PONG;
    if (this.options.skipUTF8Validation) flags |= C.SERVER_SKIP_UTF8;
    return flags;
  }

  address() {
    if (this.options.noServer) {
      throw new Error('The server is operating in "noServer" mode');
    }
    return this._address;
  }

  close(cb) {
    if (this._state === CLOSED) {
      if (cb) {
        this.once('close', () => {
          cb(new Error('The server is not running'));
        });
      }
      process.nextTick(emitClose, this);
      return;
    }
    if (cb) this.once('close', cb);
    if (this._state === CLOSING) return;
    this._state = CLOSING;
    this._address = null;
    // Like Node's server.close(): stop accepting; 'close' once every
    // connection it accepted has closed too.
    binding.serverClose(this._id);
  }

  shouldHandle(req) {
    if (this.options.path) {
      const index = req.url.indexOf('?');
      const pathname = index !== -1 ? req.url.slice(0, index) : req.url;
      if (pathname !== this.options.path) return false;
    }
    return true;
  }

  /** @private */
  _onNativeEvent(type, payload, a, b, c, connId) {
    switch (type) {
      case C.EV_LISTENING:
        this._address = {
          address: payload.toString(),
          family: b === 6 ? 'IPv6' : 'IPv4',
          port: a
        };
        this.emit('listening');
        return;
      case C.EV_LISTEN_ERROR: {
        const [syscall, host, port] = payload.toString().split('\0');
        const errno = a | 0;
        const [code, desc] = util.getSystemErrorMap().get(errno) ||
          [util.getSystemErrorName(errno), 'unknown error'];
        const address = host || (this.options.host == null ? '::' : host);
        const err = new Error(`${syscall} ${code}: ${desc} ${address}:${port}`);
        err.code = code;
        err.errno = errno;
        err.syscall = syscall;
        err.address = address;
        err.port = Number(port);
        this.emit('error', err);
        return;
      }
      case C.EV_SERVER_CLOSED:
        unregister(this._id);
        release();
        this._closedNative = true;
        if (this._state !== RUNNING) emitClose(this);
        else this._state = CLOSED;
        return;
      case C.EV_CONNECTION: {
        const info = parseRequestInfo(payload);
        this._completeUpgrade(connId, info.protocol, info);
        return;
      }
      case C.EV_HANDSHAKE:
        this._handshake(connId, parseRequestInfo(payload));
        return;
    }
  }

  /**
   * A handshake C validated but JS must finish: pick the subprotocol and let
   * 'headers' listeners add to the response.
   *
   * @private
   */
  _handshake(connId, info) {
    const req = makeRequest(info);
    if (this._state !== RUNNING) {
      binding.reject(connId, abortResponse(503));
      return;
    }
    const header = req.headers['sec-websocket-protocol'];
    const protocols = new Set();
    if (header !== undefined) {
      for (const p of header.split(',')) {
        const t = p.trim();
        if (t) protocols.add(t);
      }
    }
    let protocol = '';
    if (protocols.size) {
      const chosen = this.options.handleProtocols
        ? this.options.handleProtocols(protocols, req)
        : protocols.values().next().value;
      if (chosen) protocol = String(chosen);
    }
    const key = req.headers['sec-websocket-key'];
    const digest = createHash('sha1').update(key + GUID).digest('base64');
    const headers = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${digest}`
    ];
    if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    this.emit('headers', headers, req);
    binding.accept(connId, headers.concat('\r\n').join('\r\n'));
    this._completeUpgrade(connId, protocol, info, req);
  }

  /** @private */
  _completeUpgrade(connId, protocol, info, req) {
    const ws = new this.options.WebSocket(null, undefined, this.options);
    ws._closeTimeout = this.options.closeTimeout;
    ws._attach(connId, protocol);
    if (this.clients) {
      this.clients.add(ws);
      ws.on('close', () => {
        this.clients.delete(ws);
      });
    }
    this.emit('connection', ws, req || makeRequest(info));
  }
}

module.exports = WebSocketServer;

function emitClose(server) {
  server._state = CLOSED;
  server.emit('close');
}

/**
 * Splits C's CONNECTION/HANDSHAKE payload: NUL-separated fields, then the
 * request head.
 */
function parseRequestInfo(payload) {
  const fields = [];
  let pos = 0;
  for (let i = 0; i < 7; i++) {
    const end = payload.indexOf(0, pos);
    fields.push(payload.toString('latin1', pos, end));
    pos = end + 1;
  }
  return {
    protocol: fields[0],
    remoteAddress: fields[1],
    remotePort: Number(fields[2]),
    remoteFamily: fields[3],
    localAddress: fields[4],
    localPort: Number(fields[5]),
    localFamily: fields[6],
    head: payload.subarray(pos)
  };
}

/**
 * An http.IncomingMessage for a request head C parsed (Node derives
 * `headers` from `rawHeaders` lazily).
 */
function makeRequest(info) {
  const socket = {
    remoteAddress: info.remoteAddress,
    remotePort: info.remotePort,
    remoteFamily: info.remoteFamily,
    localAddress: info.localAddress,
    localPort: info.localPort,
    encrypted: undefined,
    readableHighWaterMark: 16384
  };
  const req = new http.IncomingMessage(socket);
  const lines = info.head.toString('latin1').split('\r\n');
  const [method, url, version] = lines[0].split(' ');
  req.method = method;
  req.url = url;
  req.httpVersion = version.slice(5);
  req.httpVersionMajor = Number(req.httpVersion[0]);
  req.httpVersionMinor = Number(req.httpVersion[2]);
  const raw = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') break;
    const colon = line.indexOf(':');
    raw.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  // Node's own header logic (duplicates, set-cookie arrays, lazy object).
  req._addHeaderLines(raw, raw.length);
  req.complete = true;
  req.upgrade = true;
  req.push(null);
  return req;
}

function abortResponse(code) {
  const message = http.STATUS_CODES[code];
  return `HTTP/1.1 ${code} ${message}\r\nConnection: close\r\n` +
    `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(message)}` +
    `\r\n\r\n${message}`;
}
