'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');
const process = require('process');

// WebSocketServer with ws 8's surface. Three ways to get connections, as in
// ws:
// - `{ port }`: the listening socket, the HTTP upgrade and every connection
//   live in C; JS is consulted during a handshake only when a hook needs it
//   (verifyClient, handleProtocols, a 'headers' listener).
// - `{ server }` and `{ noServer }` + handleUpgrade(): Node's http(s)
//   server parses the request, JS checks and answers it exactly as ws does,
//   then the socket moves to the I/O loop (lib/adopt.js).

const EventEmitter = require('events');
const http = require('http');
const net = require('net');
const tls = require('tls');
const { createHash } = require('crypto');
const util = require('util');

const { binding, C, ensureStarted, register, unregister, retain, release } =
  require('./native');
const { GUID, CLOSE_TIMEOUT } = require('./constants');
const { adoptSocket } = require('./adopt');
const { addressesOf, forwardSocket } = require('./socket');
const { checkFlowOptions, limitsOf } = require('./limits');
const pmd = require('./pmd');
const topics = require('./topics');
const WebSocket = require('./websocket');

const RUNNING = 0;
const CLOSING = 1;
const CLOSED = 2;

const keyRegex = /^[+/0-9A-Za-z]{22}==$/;
// RFC 7230 tokens separated by commas with optional whitespace around them.
const subprotocolsRegex =
  /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;
const kWebSocket = Symbol('ws-native-websocket');

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
      maxBufferedChunks: 256 * 1024,
      maxFragments: 16 * 1024,
      maxPayload: 100 * 1024 * 1024,
      maxPendingAutoPongs: 60,
      skipUTF8Validation: false,
      perMessageDeflate: false,
      handleProtocols: null,
      clientTracking: true,
      closeTimeout: CLOSE_TIMEOUT,
      // ws-native only, for `{ port }`: a client must send its whole
      // upgrade request within this many ms (Node's http server has the
      // same limit, headersTimeout, for `{ server }`). 0 disables it.
      handshakeTimeout: 60000,
      verifyClient: null,
      noServer: false,
      backlog: null,
      server: null,
      host: null,
      path: null,
      port: null,
      // ws-native only, with `port`: TLS in C (wss://), see tlsContextOf.
      tls: null,
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
    if (options.tls != null && options.port == null) {
      throw new TypeError('The "tls" option requires the "port" option');
    }
    if (options.perMessageDeflate === true) options.perMessageDeflate = {};
    pmd.pmdOptions(options.perMessageDeflate); // throws on bad values
    // ws-native only: highWaterMark, idleTimeout, sendPings
    // (docs/flow-control.md).
    checkFlowOptions(options);
    topics.checkServerOptions(options);

    if (options.clientTracking) {
      this.clients = new Set();
      this._shouldEmitClose = false;
    }
    // ws reads its options at every handshake, and code relies on it
    // (graphql-ws sets options.handleProtocols after construction; a late
    // verifyClient must not be bypassed). JS reads them lazily anyway; a
    // `{ port }` server's C side is told at once when one changes.
    this.options = new Proxy(options, {
      set: (target, key, value) => {
        if (key === 'perMessageDeflate') pmd.pmdOptions(value);
        if (key === 'highWaterMark' || key === 'idleTimeout' ||
            key === 'sendPings') {
          checkFlowOptions({ [key]: value });
        }
        target[key] = value;
        this._settingsChanged();
        return true;
      },
      deleteProperty: (target, key) => {
        delete target[key];
        this._settingsChanged();
        return true;
      }
    });
    this._state = RUNNING;
    this._address = null;
    this._id = 0;
    this._server = null;
    this._removeListeners = null;
    // `{ port, tls }`: the server's TLS context (C holds its own reference).
    this._tlsContext = options.tls != null && options.port != null
      ? tlsContextOf(options.tls) : undefined;

    ensureStarted();
    if (options.port != null) {
      this._listen(options, callback);
    } else if (options.server) {
      this._server = options.server;
      const emitConnection = this.emit.bind(this, 'connection');
      this._removeListeners = addListeners(this._server, {
        listening: this.emit.bind(this, 'listening'),
        error: this.emit.bind(this, 'error'),
        upgrade: (req, socket, head) => {
          this.handleUpgrade(req, socket, head, emitConnection);
        }
      });
    }
  }

  /**
   * `{ port }`: a listening socket of our own, in C.
   *
   * @private
   */
  _listen(options, callback) {
    const port = Number(options.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      // Node's own check, for its RangeError ERR_SOCKET_BAD_PORT and
      // message (ws's server.listen() throws that one).
      new net.SocketAddress({ port: options.port });
      throw new RangeError(
        `options.port should be >= 0 and < 65536. Received ${options.port}.`
      );
    }
    this._id = binding.listen(
      options.host == null ? '' : String(options.host),
      port,
      options.backlog == null ? 511 : options.backlog,
      options.maxPayload,
      pathOption(options.path),
      this._flags(),
      options.handshakeTimeout,
      limitsOf(options),
      this._tlsContext
    );
    register(this._id, this);
    retain();
    if (callback) this.once('listening', callback);

    // A 'headers' listener added later sends handshakes through JS too.
    this.on('newListener', (event) => {
      if (event === 'headers' && !this._headersHook) {
        this._headersHook = true;
        this._settingsChanged();
      }
    });
  }

  /**
   * `{ port }`: an option changed; C applies the new values to the next
   * handshakes, as ws reads them at each one.
   *
   * @private
   */
  _settingsChanged() {
    if (this._id === 0 || this._state !== RUNNING) return;
    const o = this.options;
    binding.serverSettings(this._id, o.maxPayload, pathOption(o.path),
      this._flags(), limitsOf(o));
  }

  /** @private */
  _flags() {
    let flags = 0;
    // permessage-deflate is negotiated in JS (lib/pmd.js): handshakes with
    // it on cost one JS hop each.
    if (this.options.handleProtocols || this.options.verifyClient ||
        this.options.perMessageDeflate ||
        this._headersHook || this.listenerCount('headers') > 0) {
      flags |= C.SERVER_NEEDS_JS;
    }
    if (!this.options.autoPong) flags |= C.SERVER_NO_AUTO_PONG;
    if (this.options.skipUTF8Validation) flags |= C.SERVER_SKIP_UTF8;
    return flags;
  }

  /**
   * Topics (ws-native only; docs/topics.md): sends `data` to every
   * subscriber of `topic` among this server's sockets, framed once.
   * Returns the number of sockets it was queued to.
   *
   * @param {string} topic
   * @param {*} data as send() takes it (no Blob)
   * @param {{binary?: boolean, compress?: boolean}} [options]
   * @return {number}
   */
  publish(topic, data, options) {
    return topics.publish(this, null, topic, data, options);
  }

  /**
   * @param {string} topic
   * @return {number} this server's sockets subscribed to `topic`
   */
  subscriberCount(topic) {
    return topics.subscriberCount(this, topic);
  }

  address() {
    if (this.options.noServer) {
      throw new Error('The server is operating in "noServer" mode');
    }
    if (this.options.server) {
      return this._server ? this._server.address() : null;
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

    if (this.options.noServer || this.options.server) {
      // ws 8: the user's server stays up; 'close' once our clients are gone.
      if (this._server) {
        this._removeListeners();
        this._removeListeners = this._server = null;
      }
      if (this.clients && this.clients.size) {
        this._shouldEmitClose = true;
      } else {
        process.nextTick(emitClose, this);
      }
      return;
    }

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

  /**
   * Handles an HTTP upgrade request that Node's http server parsed, with
   * ws's checks, status codes and messages, in ws's order.
   *
   * @param {http.IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   * @param {Function} cb called with (ws, req)
   */
  handleUpgrade(req, socket, head, cb) {
    socket.on('error', socketOnError);

    const key = req.headers['sec-websocket-key'];
    const upgrade = req.headers.upgrade;
    const version = req.headers['sec-websocket-version'];

    if (req.method !== 'GET') {
      const message = 'Invalid HTTP method';
      abortHandshakeOrEmitwsClientError(this, req, socket, 405, message);
      return;
    }
    if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
      const message = 'Invalid Upgrade header';
      abortHandshakeOrEmitwsClientError(this, req, socket, 400, message);
      return;
    }
    if (key === undefined || !keyRegex.test(key)) {
      const message = 'Missing or invalid Sec-WebSocket-Key header';
      abortHandshakeOrEmitwsClientError(this, req, socket, 400, message);
      return;
    }
    // Exactly '13' or '8', as ws 8.23.1 checks ('013' or '13.0' are not).
    if (version !== '13' && version !== '8') {
      const message = 'Missing or invalid Sec-WebSocket-Version header';
      abortHandshakeOrEmitwsClientError(this, req, socket, 400, message, {
        'Sec-WebSocket-Version': '13, 8'
      });
      return;
    }
    if (!this.shouldHandle(req)) {
      abortHandshake(socket, 400);
      return;
    }

    const header = req.headers['sec-websocket-protocol'];
    let protocols = new Set();
    if (header !== undefined) {
      protocols = parseSubprotocols(header);
      if (protocols === null) {
        const message = 'Invalid Sec-WebSocket-Protocol header';
        abortHandshakeOrEmitwsClientError(this, req, socket, 400, message);
        return;
      }
    }

    const agreement = this._negotiate(req);
    if (agreement && agreement.error) {
      abortHandshakeOrEmitwsClientError(this, req, socket, 400,
        agreement.error);
      return;
    }

    const complete = () => {
      this.completeUpgrade(agreement || {}, key, protocols, req, socket, head,
        cb);
    };
    this._verify(req, +version, socket.authorized || socket.encrypted, complete,
      (code, message, headers) => abortHandshake(socket, code, message, headers));
  }

  /**
   * permessage-deflate: null (off, or not offered), an agreement, or
   * { error } with ws's 400 message.
   *
   * @private
   */
  _negotiate(req) {
    const value = req.headers['sec-websocket-extensions'];
    const options = pmd.pmdOptions(this.options.perMessageDeflate);
    if (!options || value === undefined) return null;
    const agreement = pmd.acceptOffer(options, value);
    if (agreement && !agreement.error) agreement.options = options;
    return agreement;
  }

  /**
   * Runs verifyClient in its sync or async form.
   *
   * @private
   */
  _verify(req, version, secure, accept, reject) {
    const verifyClient = this.options.verifyClient;
    if (!verifyClient) {
      accept();
      return;
    }
    const info = {
      origin: req.headers[version === 8 ? 'sec-websocket-origin' : 'origin'],
      secure: !!secure,
      req
    };
    if (verifyClient.length === 2) {
      verifyClient(info, (verified, code, message, headers) => {
        if (!verified) reject(code || 401, message, headers);
        else accept();
      });
      return;
    }
    if (!verifyClient(info)) reject(401);
    else accept();
  }

  /**
   * Answers the upgrade with 101 and hands the socket to the I/O loop.
   *
   * @private (public in ws, and called by some users)
   */
  completeUpgrade(extensions, key, protocols, req, socket, head, cb) {
    // Checked first: a socket we took over is already destroyed, where ws's
    // would still be open and reach this check.
    if (socket[kWebSocket]) {
      throw new Error(
        'server.handleUpgrade() was called more than once with the same ' +
          'socket, possibly due to a misconfiguration'
      );
    }
    // The client already sent a FIN: nothing to upgrade.
    if (!socket.readable || !socket.writable) return socket.destroy();

    if (this._state > RUNNING) return abortHandshake(socket, 503);

    const agreement = extensions && extensions.setup ? extensions : null;
    const { headers, protocol } =
      this._responseHeaders(key, protocols, req, agreement);
    const ws = new this.options.WebSocket(null, undefined, this.options);
    setCloseTimeout(ws, this.options.closeTimeout);
    socket[kWebSocket] = ws;
    socket.removeListener('error', socketOnError);
    const addresses = addressesOf(socket);
    const id = adoptSocket(socket, head, headers.concat('\r\n').join('\r\n'),
      this.options.maxPayload, this._flags() & ~C.SERVER_NEEDS_JS,
      agreement ? agreement.setup : undefined, limitsOf(this.options));
    ws._socket = socket;
    if (agreement) pmd.applyAgreement(ws, agreement.params, agreement.options, true);
    ws._attach(id, protocol);
    ws._ns = forwardSocket(socket, ws, addresses);
    this._track(ws);
    cb(ws, req);
  }

  /**
   * The 101 response's lines, after handleProtocols and 'headers'.
   *
   * @private
   */
  _responseHeaders(key, protocols, req, agreement) {
    const digest = createHash('sha1').update(key + GUID).digest('base64');
    const headers = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${digest}`
    ];
    let protocol = '';
    if (protocols.size) {
      const chosen = this.options.handleProtocols
        ? this.options.handleProtocols(protocols, req)
        : protocols.values().next().value;
      if (chosen) {
        protocol = String(chosen);
        headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
      }
    }
    if (agreement) headers.push(`Sec-WebSocket-Extensions: ${agreement.header}`);
    this.emit('headers', headers, req);
    return { headers, protocol };
  }

  /** @private */
  _track(ws) {
    // Its topics are this server's (lib/topics.js), tracked or not.
    ws._wss = this;
    if (!this.clients) return;
    this.clients.add(ws);
    // ws's listener, shared by every connection instead of a closure each
    // (S4: RSS per idle connection).
    ws.on('close', untrack);
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
        // The listen host's lookup failed (only a lookup gives EAI_*).
        if (util.getSystemErrorName(errno).startsWith('EAI_')) {
          this.emit('error', lookupError(errno, host));
          return;
        }
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
        if (this._state !== RUNNING) emitClose(this);
        else this._state = CLOSED;
        return;
      case C.EV_TLS_CLIENT_ERROR:
        this._tlsClientError(payload);
        return;
      case C.EV_CONNECTION: {
        const info = parseRequestInfo(payload);
        info.encrypted = this._tlsContext !== undefined;
        this._completeNative(connId, info.protocol, info);
        return;
      }
      case C.EV_HANDSHAKE: {
        const info = parseRequestInfo(payload);
        info.encrypted = this._tlsContext !== undefined;
        this._handshake(connId, info);
        return;
      }
    }
  }

  /**
   * `{ port, tls }`: a connection failed before it became a request (a
   * failed TLS handshake, plain HTTP to the TLS port). It is closed already;
   * as Node's tls server emits 'tlsClientError' (err, tlsSocket), this
   * emits (err, { remoteAddress, remotePort, remoteFamily }).
   *
   * @private
   */
  _tlsClientError(payload) {
    const fields = payload.toString('utf8').split('\0');
    const err = new Error(fields[1]);
    if (fields[0]) err.code = fields[0];
    this.emit('tlsClientError', err, {
      remoteAddress: fields[2] || undefined,
      remotePort: fields[3] ? Number(fields[3]) : undefined,
      remoteFamily: fields[4] || undefined
    });
  }

  /**
   * `{ port }`: a handshake C validated (in ws's order, with ws's answers)
   * but JS must finish: verifyClient, the subprotocol, 'headers' listeners.
   *
   * @private
   */
  _handshake(connId, info) {
    const req = makeRequest(info);
    if (this._state !== RUNNING) {
      binding.reject(connId, errorResponse(503));
      return;
    }
    // C checked the header's syntax already.
    const header = req.headers['sec-websocket-protocol'];
    const protocols = header === undefined
      ? new Set() : parseSubprotocols(header) || new Set();
    const version = +req.headers['sec-websocket-version'];
    const agreement = this._negotiate(req);
    if (agreement && agreement.error) {
      binding.reject(connId, errorResponse(400, agreement.error));
      return;
    }

    // An async verifyClient may answer after the socket closed: watch the
    // id until then, so a late answer is dropped instead of attaching a
    // WebSocket to a dead connection.
    const pending = { closed: false };
    register(connId, {
      _onNativeEvent(type) {
        if (type === C.EV_CLOSED) {
          pending.closed = true;
          unregister(connId);
        }
      }
    });
    let sync = true;
    const accept = () => {
      if (pending.closed) return;
      if (!sync && this._state !== RUNNING) {
        binding.reject(connId, errorResponse(503));
        return;
      }
      const { headers, protocol } = this._responseHeaders(
        req.headers['sec-websocket-key'], protocols, req, agreement);
      binding.accept(connId, headers.concat('\r\n').join('\r\n'),
        agreement ? agreement.setup : undefined);
      this._completeNative(connId, protocol, info, req, agreement);
    };
    const reject = (code, message, headers) => {
      if (pending.closed) return;
      unregister(connId);
      binding.reject(connId, errorResponse(code, message, headers));
    };
    this._verify(req, version, info.encrypted, accept, reject);
    sync = false;
  }

  /** @private */
  _completeNative(connId, protocol, info, req, agreement) {
    const ws = new this.options.WebSocket(null, undefined, this.options);
    setCloseTimeout(ws, this.options.closeTimeout);
    if (agreement) pmd.applyAgreement(ws, agreement.params, agreement.options, true);
    ws._attach(connId, protocol, info.addresses);
    this._track(ws);
    this.emit('connection', ws, req || makeRequest(info));
  }
}

module.exports = WebSocketServer;

/** The default (WebSocket.prototype's) is not stored on each socket. */
function setCloseTimeout(ws, value) {
  if (value !== CLOSE_TIMEOUT) ws._closeTimeout = value;
}

// The tls options C honours: tls.createSecureContext's key, cert, ca,
// passphrase and pfx.
const TLS_OPTIONS = new Set(['key', 'cert', 'ca', 'passphrase', 'pfx']);

/**
 * `{ port, tls }`: the C server context for these options. Node's
 * tls.createSecureContext runs first, so that a bad option throws exactly
 * what Node throws (type errors, and a key or certificate OpenSSL refuses);
 * C then builds its own context from the same PEM/PFX bytes. An option C
 * does not honour throws rather than be ignored.
 *
 * @param {Object} options
 */
function tlsContextOf(options) {
  if (typeof options !== 'object') {
    throw new TypeError('The "tls" option must be an object');
  }
  for (const key of Object.keys(options)) {
    if (options[key] !== undefined && !TLS_OPTIONS.has(key)) {
      throw new TypeError(
        `ws-native: the tls option "${key}" is not supported (supported: ` +
          `${[...TLS_OPTIONS].join(', ')})`
      );
    }
  }
  tls.createSecureContext(options);
  let passphrase = options.passphrase;
  let key = options.key;
  if (Array.isArray(key)) {
    if (key.length > 1) {
      throw new TypeError('ws-native: only one tls "key" is supported');
    }
    key = key[0];
  }
  if (key != null && typeof key === 'object' && !ArrayBuffer.isView(key)) {
    // { pem, passphrase }
    if (key.passphrase !== undefined) passphrase = key.passphrase;
    key = key.pem;
  }
  let pfx = options.pfx;
  if (Array.isArray(pfx)) {
    if (pfx.length > 1) {
      throw new TypeError('ws-native: only one tls "pfx" is supported');
    }
    pfx = pfx[0];
  }
  if (pfx != null && typeof pfx === 'object' && !ArrayBuffer.isView(pfx)) {
    if (pfx.passphrase !== undefined) passphrase = pfx.passphrase;
    pfx = pfx.buf;
  }
  if (typeof pfx === 'string') pfx = Buffer.from(pfx);
  return binding.tlsServerContext(
    pemOf(options.ca),
    pemOf(options.cert),
    pemBytes(key),
    passphrase == null ? undefined : String(passphrase),
    pfx == null ? undefined : bytesOf(pfx)
  );
}

/** A PEM option (string, Buffer or an array of them) as one string. */
function pemOf(value) {
  if (value == null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => typeof v === 'string' ? v : bytesOf(v).toString())
    .join('\n');
}

function pemBytes(value) {
  if (value == null) return undefined;
  return typeof value === 'string' ? value : bytesOf(value);
}

function bytesOf(view) {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** ws applies `path` when truthy; C takes '' for any path. */
function pathOption(path) {
  return path ? String(path) : '';
}

/** ws's 'close' listener on a tracked client: `this` is the WebSocket. */
function untrack() {
  const server = this._wss;
  server.clients.delete(this);
  if (server._shouldEmitClose && !server.clients.size) {
    process.nextTick(emitClose, server);
  }
}

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
  let start = 0;
  for (let i = 0; i < 7; i++) {
    const end = payload.indexOf(0, pos);
    fields.push(payload.toString('latin1', pos, end));
    pos = end + 1;
    if (i === 0) start = pos;
  }
  return {
    // The address fields as one string: what ws._socket keeps (see
    // lib/socket.js NativeSocket).
    addresses: payload.toString('latin1', start, pos),
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
    // A TLS socket's `encrypted` is true (ws's verifyClient info.secure).
    encrypted: info.encrypted ? true : undefined,
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

/**
 * ws's error response: status line, Connection: close, an HTML body (the
 * status text unless a message is given), and any extra headers.
 */
function errorResponse(code, message, headers) {
  message = message || http.STATUS_CODES[code];
  headers = {
    Connection: 'close',
    'Content-Type': 'text/html',
    'Content-Length': Buffer.byteLength(message),
    ...headers
  };
  return `HTTP/1.1 ${code} ${http.STATUS_CODES[code]}\r\n` +
    Object.keys(headers).map((h) => `${h}: ${headers[h]}`).join('\r\n') +
    '\r\n\r\n' + message;
}

/** Writes ws's error response on a Node socket and closes it. */
/**
 * A failed name lookup as Node's dns reports it (an unknown host is
 * ENOTFOUND; the errno stays).
 */
function lookupError(errno, host) {
  let code = util.getSystemErrorName(errno);
  if (code === 'EAI_NONAME' || code === 'EAI_NODATA') code = 'ENOTFOUND';
  const err = new Error(`getaddrinfo ${code} ${host}`);
  err.errno = errno;
  err.code = code;
  err.syscall = 'getaddrinfo';
  err.hostname = host;
  return err;
}

function abortHandshake(socket, code, message, headers) {
  // Another WebSocketServer on the same http server already upgraded this
  // socket (several `{ server, path }` servers): it is not ours to answer.
  // ws writes the 400 onto the open WebSocket here, which kills it.
  if (socket[kWebSocket]) return;
  socket.once('finish', socket.destroy);
  socket.end(errorResponse(code, message, headers));
}

function abortHandshakeOrEmitwsClientError(server, req, socket, code, message,
  headers) {
  if (server.listenerCount('wsClientError')) {
    const err = new Error(message);
    Error.captureStackTrace(err, abortHandshakeOrEmitwsClientError);
    server.emit('wsClientError', err, socket, req);
  } else {
    abortHandshake(socket, code, message, headers);
  }
}

function socketOnError() {
  this.destroy();
}

function addListeners(server, map) {
  for (const event of Object.keys(map)) server.on(event, map[event]);
  return function removeListeners() {
    for (const event of Object.keys(map)) {
      server.removeListener(event, map[event]);
    }
  };
}

/**
 * The set of subprotocols in a Sec-WebSocket-Protocol value, or null when
 * the value is malformed or names one twice (ws rejects both).
 */
function parseSubprotocols(header) {
  if (!subprotocolsRegex.test(header)) return null;
  const protocols = new Set();
  for (const p of header.split(/[ \t]*,[ \t]*/)) {
    if (protocols.has(p)) return null;
    protocols.add(p);
  }
  return protocols;
}
