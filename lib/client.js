'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const { Buffer } = require('buffer');
const process = require('process');

// The client side of a WebSocket (moved here from lib/websocket.js): the
// opening handshake with its options, the request (the C client's or
// Node's), redirects, and the response of an 'upgrade' or an
// 'unexpected-response'. lib/websocket.js calls in from the WebSocket's
// constructor and events.

const EventEmitter = require('events');
const { createHash, randomBytes, X509Certificate } = require('crypto');
const http = require('http');
const https = require('https');
const net = require('net');
const querystring = require('querystring');
const tls = require('tls');
const util = require('util');

const { binding, C, ensureStarted, register, unregister, retain, release } =
  require('./native');
const { adoptSocket } = require('./adopt');
const {
  allowSyncOption,
  checkFlowOptions,
  limitsOf,
  setHighWaterMark,
  setMaxBuffered
} = require('./limits');
const {
  NativeSocket,
  addressesOf,
  forwardSocket
} = require('./socket');
const pmd = require('./pmd');
const { CLOSE_TIMEOUT, GUID } = require('./constants');
// lib/websocket.js requires this file once its export is set (a cycle:
// each uses the other).
const WebSocket = require('./websocket');

const subprotocolRegex = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;
const protocolVersions = [8, 13];

function emitErrorAndClose(websocket, err) {
  websocket._readyState = WebSocket.CLOSING;
  websocket._errorEmitted = true;
  websocket.emit('error', err);
  websocket.emitClose();
}

/**
 * Fails the opening handshake as ws's abortHandshake does: whatever carries
 * the handshake (Node's request, the upgraded socket, or the C connection)
 * goes at once, 'error' and 'close' follow on the next tick.
 */
function abortHandshake(websocket, message) {
  websocket._readyState = WebSocket.CLOSING;
  const err = new Error(message);
  Error.captureStackTrace(err, abortHandshake);
  websocket._aborted = true;
  stopAttempt(websocket);
  process.nextTick(emitErrorAndClose, websocket, err);
}

// ---- client ------------------------------------------------------------
//
// A handshake attempt takes one of two paths:
//
// - the C client (binding.connect): the request is written, and the 101
//   read and checked, on the I/O loop; ws:// with none of the options below;
// - Node's own http(s).request, as ws makes it, when an option needs Node's
//   machinery (useNodeRequest): the upgraded socket is then handed to the I/O
//   loop (lib/adopt.js) and the connection runs exactly as on the C path.
//
// A redirect (followRedirects) ends the attempt and starts the next one at
// the new URL, on whichever path that URL and the options call for.

// Marks a request whose later 'error' must not reach the WebSocket.
const kAborted = Symbol('kAborted');

// Options that only Node's http machinery implements (net.connect's and
// http.request's): with any of them the handshake goes through Node.
const NODE_ONLY_OPTIONS = [
  'autoSelectFamily',
  'autoSelectFamilyAttemptTimeout',
  'createConnection',
  'family',
  'finishRequest',
  'hints',
  'insecureHTTPParser',
  'joinDuplicateHeaders',
  'localAddress',
  'localPort',
  'lookup',
  'maxHeaderSize',
  'signal',
  'uniqueHeaders'
];

/**
 * Whether this handshake attempt goes through Node's http(s).request
 * instead of the C client.
 *
 * @param {Object} opts The attempt's options (ws's `opts`)
 * @param {boolean} isSecure wss://
 * @param {boolean} isIpcUrl ws+unix://
 * @return {boolean}
 */
function useNodeRequest(opts, isSecure, isIpcUrl) {
  // wss:// is TLS in C on the I/O loop (src/tls.c) for the options C
  // honours (ca, cert, key, passphrase, pfx, rejectUnauthorized,
  // servername); any other TLS option needs Node's tls, through
  // https.request, with the TLSSocket bridged to the loop.
  if (isSecure && !tlsInC(opts)) return true;
  if (isIpcUrl) return true;
  if (opts.agent) return true; // `agent: false` is what the C path does
  if (opts.setHost === false) return true;
  for (const name of NODE_ONLY_OPTIONS) {
    if (opts[name] !== undefined) return true;
  }
  return false;
}

// TLS options that only Node's tls can honour.
const NODE_TLS_OPTIONS = [
  'ALPNProtocols', 'checkServerIdentity', 'ciphers', 'clientCertEngine',
  'crl', 'dhparam', 'ecdhCurve', 'enableTrace', 'honorCipherOrder',
  'maxVersion', 'minDHSize', 'minVersion', 'privateKeyEngine',
  'privateKeyIdentifier', 'pskCallback', 'requestOCSP', 'secureContext',
  'secureOptions', 'secureProtocol', 'session', 'sigalgs', 'ticketKeys'
];

function isPem(v) {
  return typeof v === 'string' || Buffer.isBuffer(v);
}

function pemList(v) {
  return Array.isArray(v) ? v.every(isPem) : isPem(v);
}

/** Whether src/tls.c can do this wss:// connection's TLS. */
function tlsInC(opts) {
  for (const name of NODE_TLS_OPTIONS) {
    if (opts[name] !== undefined) return false;
  }
  for (const name of ['ca', 'cert', 'key']) {
    if (opts[name] !== undefined && !pemList(opts[name])) return false;
  }
  if (opts.pfx !== undefined && !Buffer.isBuffer(opts.pfx)) return false;
  if (opts.passphrase !== undefined && typeof opts.passphrase !== 'string') {
    return false;
  }
  return true;
}

function joinPem(v) {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.map(String).join('\n') : String(v);
}

const defaultTlsContexts = new Map(); // rejectUnauthorized -> context

/**
 * [context, servername, verifyHost] for binding.connect. The context with
 * Node's root certificates is built once per process (parsing them takes
 * milliseconds); one with the user's own certificates, per connection.
 */
function tlsArgs(opts) {
  const reject = opts.rejectUnauthorized !== undefined
    ? opts.rejectUnauthorized !== false
    : process.env.NODE_TLS_REJECT_UNAUTHORIZED !== '0';
  let context;
  if (opts.ca === undefined && opts.cert === undefined &&
      opts.key === undefined && opts.pfx === undefined) {
    context = defaultTlsContexts.get(reject);
    if (!context) {
      context = binding.tlsContext(tls.rootCertificates.join('\n'),
        undefined, undefined, undefined, undefined, reject);
      defaultTlsContexts.set(reject, context);
    }
  } else {
    context = binding.tlsContext(
      opts.ca === undefined ? tls.rootCertificates.join('\n') : joinPem(opts.ca),
      joinPem(opts.cert), joinPem(opts.key), opts.passphrase, opts.pfx, reject);
  }
  // As ws's tlsConnect and Node's tls.connect: SNI is the host name (never
  // an IP), and the certificate is checked against servername || host.
  let servername = opts.servername;
  if (!servername && servername !== '') {
    servername = net.isIP(opts.host) ? '' : opts.host;
  }
  return [context, servername, servername || opts.host];
}

/**
 * ws 8.23.1's `protocols` option, used when the constructor got none.
 */
function protocolsOption(options) {
  if (!options || options.protocols === undefined) return [];
  return Array.isArray(options.protocols)
    ? options.protocols
    : [options.protocols];
}

function initAsClient(websocket, address, protocols, options) {
  const opts = {
    allowSynchronousEvents: true,
    autoPong: true,
    closeTimeout: CLOSE_TIMEOUT,
    protocolVersion: protocolVersions[1],
    maxBufferedChunks: 256 * 1024,
    maxFragments: 16 * 1024,
    maxPayload: 100 * 1024 * 1024,
    maxPendingAutoPongs: 60,
    skipUTF8Validation: false,
    perMessageDeflate: true,
    followRedirects: false,
    maxRedirects: 10,
    ...options,
    // The URL decides these, never the caller (as in ws).
    socketPath: undefined,
    hostname: undefined,
    protocol: undefined,
    protocols: undefined,
    timeout: undefined,
    method: 'GET',
    host: undefined,
    path: undefined,
    port: undefined
  };
  websocket._autoPong = opts.autoPong;
  websocket._allowSync = allowSyncOption(opts.allowSynchronousEvents);
  websocket._closeTimeout = opts.closeTimeout;
  setMaxBuffered(websocket, opts.maxBufferedAmount);
  // ws-native only: backpressure and heartbeat (docs/flow-control.md).
  checkFlowOptions(opts);
  setHighWaterMark(websocket, opts.highWaterMark);

  if (!protocolVersions.includes(opts.protocolVersion)) {
    throw new RangeError(
      `Unsupported protocol version: ${opts.protocolVersion} ` +
        `(supported versions: ${protocolVersions.join(', ')})`
    );
  }

  let parsedUrl;
  if (address instanceof URL) {
    parsedUrl = address;
  } else {
    try {
      parsedUrl = new URL(address);
    } catch {
      throw new SyntaxError(`Invalid URL: ${address}`);
    }
  }
  if (parsedUrl.protocol === 'http:' || parsedUrl.protocol === 'https:') {
    // A copy: the caller's URL object is left as it was.
    parsedUrl = new URL(parsedUrl);
    parsedUrl.protocol = parsedUrl.protocol === 'http:' ? 'ws:' : 'wss:';
  }
  websocket._url = parsedUrl.href;

  const isSecure = parsedUrl.protocol === 'wss:';
  const isIpcUrl = parsedUrl.protocol === 'ws+unix:';
  let invalidUrlMessage;
  if (parsedUrl.protocol !== 'ws:' && !isSecure && !isIpcUrl) {
    invalidUrlMessage =
      'The URL\'s protocol must be one of "ws:", "wss:", ' +
      '"http:", "https:", or "ws+unix:"';
  } else if (isIpcUrl && !parsedUrl.pathname) {
    invalidUrlMessage = "The URL's pathname is empty";
  } else if (parsedUrl.hash) {
    invalidUrlMessage = 'The URL contains a fragment identifier';
  }
  if (invalidUrlMessage) {
    const err = new SyntaxError(invalidUrlMessage);
    // Thrown by the constructor; a redirect to such a URL fails the socket.
    if (websocket._redirects === 0) throw err;
    emitErrorAndClose(websocket, err);
    return;
  }

  const defaultPort = isSecure ? 443 : 80;
  const key = randomBytes(16).toString('base64');
  const protocolSet = new Set();

  opts.defaultPort = opts.defaultPort || defaultPort;
  opts.port = parsedUrl.port || defaultPort;
  opts.host = parsedUrl.hostname.startsWith('[')
    ? parsedUrl.hostname.slice(1, -1)
    : parsedUrl.hostname;
  opts.headers = {
    ...opts.headers,
    'Sec-WebSocket-Version': opts.protocolVersion,
    'Sec-WebSocket-Key': key,
    Connection: 'Upgrade',
    Upgrade: 'websocket'
  };
  opts.path = parsedUrl.pathname + parsedUrl.search;
  opts.timeout = opts.handshakeTimeout;

  // permessage-deflate is offered as ws offers it (on by default).
  const pmdOffer = pmd.pmdOptions(opts.perMessageDeflate);
  if (pmdOffer) {
    opts.headers['Sec-WebSocket-Extensions'] = binding.pmdOffer(pmdOffer);
  }

  for (const protocol of protocols) {
    if (typeof protocol !== 'string' || !subprotocolRegex.test(protocol) ||
        protocolSet.has(protocol)) {
      throw new SyntaxError('An invalid or duplicated subprotocol was specified');
    }
    protocolSet.add(protocol);
  }
  if (protocols.length) {
    opts.headers['Sec-WebSocket-Protocol'] = protocols.join(',');
  }
  if (opts.origin) {
    if (opts.protocolVersion < 13) opts.headers['Sec-WebSocket-Origin'] = opts.origin;
    else opts.headers.Origin = opts.origin;
  }
  if (parsedUrl.username || parsedUrl.password) {
    // querystring.unescape, as ws: a stray '%' is kept, not an error.
    opts.auth = `${querystring.unescape(parsedUrl.username)}:` +
      `${querystring.unescape(parsedUrl.password)}`;
  }
  if (isIpcUrl) {
    // ws+unix:///path/to/socket:/request/path
    const colon = opts.path.indexOf(':');
    if (colon === -1) {
      opts.socketPath = opts.path;
      opts.path = '';
    } else {
      opts.socketPath = opts.path.slice(0, colon);
      opts.path = opts.path.slice(colon + 1);
    }
  }

  if (opts.followRedirects) {
    if (websocket._redirects === 0) {
      websocket._originalIpc = isIpcUrl;
      websocket._originalSecure = isSecure;
      websocket._originalHostOrSocketPath = isIpcUrl
        ? opts.socketPath
        : parsedUrl.host;
      // Later attempts start from a copy of the caller's options whose
      // header names are lower case, so that a redirect can drop some of
      // them without touching the caller's object.
      const headers = options && options.headers;
      options = { ...options, headers: {} };
      if (headers) {
        for (const name of Object.keys(headers)) {
          options.headers[name.toLowerCase()] = headers[name];
        }
      }
    } else if (websocket.listenerCount('redirect') === 0) {
      // With no 'redirect' listener to decide, credentials do not follow a
      // redirect to another host (or from wss: to ws:), as in curl.
      let isSameHost;
      if (isIpcUrl) {
        isSameHost = websocket._originalIpc &&
          opts.socketPath === websocket._originalHostOrSocketPath;
      } else {
        isSameHost = !websocket._originalIpc &&
          parsedUrl.host === websocket._originalHostOrSocketPath;
      }
      if (!isSameHost || (websocket._originalSecure && !isSecure)) {
        delete opts.headers.authorization;
        delete opts.headers.cookie;
        if (!isSameHost) delete opts.headers.host;
        opts.auth = undefined;
      }
    }
    // The first Authorization wins (curl again): credentials from the
    // first URL travel on as a header unless the caller set one.
    if (opts.auth && !options.headers.authorization) {
      options.headers.authorization =
        'Basic ' + Buffer.from(opts.auth).toString('base64');
    }
  }

  websocket._hop = { address, protocols, options, opts, key, protocolSet,
    pmdOffer };
  if (useNodeRequest(opts, isSecure, isIpcUrl)) {
    requestWithNode(websocket, opts, isSecure);
  } else {
    requestWithC(websocket, opts, isSecure);
  }
}

/**
 * The request of a handshake that the C client makes, with the part of
 * http.ClientRequest that users of ws touch: the header methods (a
 * 'redirect' listener may read or remove headers before they are sent),
 * method, path, host, protocol, res, destroy() and abort(). Headers are
 * stored and validated as Node stores them, so the bytes written are the
 * ones http.request would write.
 */
class NativeRequest extends EventEmitter {
  constructor(websocket, opts) {
    super();
    this._websocket = websocket;
    this._headers = Object.create(null); // lower-case name -> [name, value]
    this._headersSent = false;
    this.method = 'GET';
    this.path = opts.path;
    this.host = opts.host;
    this.protocol = 'http:';
    this.res = null;
    this.aborted = false;
    this.destroyed = false;
    for (const name of Object.keys(opts.headers)) {
      this.setHeader(name, opts.headers[name]);
    }
    if (!this.hasHeader('host')) {
      let host = opts.host;
      const colon = host.indexOf(':');
      if (colon !== -1 && host.includes(':', colon + 1) &&
          host.charCodeAt(0) !== 91 /* '[' */) {
        host = `[${host}]`;
      }
      if (opts.port && +opts.port !== opts.defaultPort) host += ':' + opts.port;
      this.setHeader('Host', host);
    }
    if (opts.auth && !this.hasHeader('authorization')) {
      this.setHeader('Authorization',
        'Basic ' + Buffer.from(opts.auth).toString('base64'));
    }
  }

  get headersSent() {
    return this._headersSent;
  }

  setHeader(name, value) {
    if (this._headersSent) {
      const err = new Error('Cannot set headers after they are sent to the client');
      err.code = 'ERR_HTTP_HEADERS_SENT';
      throw err;
    }
    http.validateHeaderName(name);
    http.validateHeaderValue(name, value);
    this._headers[name.toLowerCase()] = [name, value];
    return this;
  }

  getHeader(name) {
    const entry = this._headers[String(name).toLowerCase()];
    return entry === undefined ? undefined : entry[1];
  }

  hasHeader(name) {
    return this._headers[String(name).toLowerCase()] !== undefined;
  }

  removeHeader(name) {
    if (this._headersSent) {
      const err = new Error('Cannot remove headers after they are sent to the client');
      err.code = 'ERR_HTTP_HEADERS_SENT';
      throw err;
    }
    delete this._headers[String(name).toLowerCase()];
  }

  getHeaderNames() {
    return Object.keys(this._headers);
  }

  getRawHeaderNames() {
    return Object.keys(this._headers).map((k) => this._headers[k][0]);
  }

  getHeaders() {
    const headers = Object.create(null);
    for (const k of Object.keys(this._headers)) headers[k] = this._headers[k][1];
    return headers;
  }

  /**
   * The request head, as http.request writes it; headers are final now.
   *
   * @private
   */
  _head() {
    this._headersSent = true;
    let head = `GET ${this.path} HTTP/1.1\r\n`;
    for (const k of Object.keys(this._headers)) {
      const [name, value] = this._headers[k];
      if (Array.isArray(value)) {
        if (k === 'cookie') {
          head += `${name}: ${value.join('; ')}\r\n`;
        } else {
          for (const v of value) head += `${name}: ${v}\r\n`;
        }
      } else {
        head += `${name}: ${value}\r\n`;
      }
    }
    return head + '\r\n';
  }

  /**
   * Ends the exchange. Before a response, the WebSocket hears of it as
   * ws's does from its request: an 'error' (this one, or Node's 'socket
   * hang up'), then 'close'.
   */
  destroy(err) {
    if (this.destroyed) return this;
    this.destroyed = true;
    const websocket = this._websocket;
    if (websocket._req === this && websocket._id !== 0 &&
        !websocket._nativeClosed) {
      binding.terminate(websocket._id);
    }
    // An unexpected response being read: its body ends unfinished.
    if (this.res !== null) abortBody(this.res);
    if (this.res === null && (err || !this.aborted)) {
      if (!err) {
        err = new Error('socket hang up');
        err.code = 'ECONNRESET';
      }
      process.nextTick(() => {
        if (this[kAborted] || websocket._req !== this) return;
        websocket._req = null;
        emitErrorAndClose(websocket, err);
      });
    }
    process.nextTick(() => this.emit('close'));
    return this;
  }

  abort() {
    if (this.aborted) return;
    this.aborted = true;
    process.nextTick(() => this.emit('abort'));
    this.destroy();
  }
}

function clientFlags(opts, noAutoPong, skipUTF8) {
  return (opts.autoPong ? 0 : noAutoPong) |
    (opts.skipUTF8Validation ? skipUTF8 : 0);
}

/**
 * A handshake attempt made by the C client.
 */
function requestWithC(websocket, opts, isSecure) {
  const req = (websocket._req = new NativeRequest(websocket, opts));
  if (websocket._redirects) websocket.emit('redirect', websocket.url, req);
  // Where ws's request would be connecting already, ours connects now,
  // once a 'redirect' listener had its say; it may have closed the socket.
  if (websocket._readyState !== WebSocket.CONNECTING || req.destroyed) return;

  let tlsOptions;
  if (isSecure) {
    try {
      tlsOptions = tlsArgs(opts);
      websocket._hop.tlsHost = tlsOptions[2];
    } catch (err) {
      // Bad TLS options (a key or certificate that does not parse): Node's
      // tls.connect fails inside ws's request, which reports it as the
      // request's 'error', after the constructor (or 'redirect') returned.
      process.nextTick(() => {
        if (websocket._req !== req || req[kAborted]) return;
        websocket._req = null;
        emitErrorAndClose(websocket, err);
      });
      return;
    }
  }
  const head = req._head();
  ensureStarted();
  const id = binding.connect(opts.host, Number(opts.port), websocket._hop.key,
    head, opts.maxPayload,
    clientFlags(opts, C.CONN_NO_AUTO_PONG, C.CONN_SKIP_UTF8),
    websocket._hop.pmdOffer || undefined,
    tlsOptions, limitsOf(opts));
  websocket._id = id;
  register(id, websocket);
  retain();
  websocket._live = true;

  if (opts.timeout) {
    websocket._handshakeTimer = setTimeout(() => {
      websocket._handshakeTimer = null;
      abortHandshake(websocket, 'Opening handshake has timed out');
    }, opts.timeout);
  }
}

function netConnect(options) {
  options.path = options.socketPath;
  return net.connect(options);
}

function tlsConnect(options) {
  options.path = undefined;
  if (!options.servername && options.servername !== '') {
    options.servername = net.isIP(options.host) ? '' : options.host;
  }
  return tls.connect(options);
}

/**
 * A handshake attempt made by Node's http(s).request, as ws makes it; the
 * upgraded socket then moves to the I/O loop.
 */
function requestWithNode(websocket, opts, isSecure) {
  const request = isSecure ? https.request : http.request;
  opts.createConnection =
    opts.createConnection || (isSecure ? tlsConnect : netConnect);

  let req = (websocket._req = request(opts));
  if (websocket._redirects) {
    // As in ws, no early exit if a listener closed the WebSocket: it may
    // also have destroyed `req` with an error, which must reach 'error'.
    websocket.emit('redirect', websocket.url, req);
  }

  if (opts.timeout) {
    req.on('timeout', () => {
      abortHandshake(websocket, 'Opening handshake has timed out');
    });
  }

  req.on('error', (err) => {
    if (req === null || req[kAborted]) return;
    req = websocket._req = null;
    emitErrorAndClose(websocket, err);
  });

  req.on('response', (res) => {
    const location = res.headers.location;
    const statusCode = res.statusCode;
    if (location && opts.followRedirects &&
        statusCode >= 300 && statusCode < 400) {
      redirect(websocket, location);
    } else if (!websocket.emit('unexpected-response', req, res)) {
      abortHandshake(websocket, `Unexpected server response: ${statusCode}`);
    }
  });

  req.on('upgrade', (res, socket, head) => {
    // A listener that closes the WebSocket must destroy this socket.
    websocket._upgradeSocket = socket;
    websocket.emit('upgrade', res);
    if (websocket._readyState !== WebSocket.CONNECTING) return;
    req = websocket._req = null;

    const upgrade = res.headers.upgrade;
    let message;
    if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
      message = 'Invalid Upgrade header';
    } else if (res.headers['sec-websocket-accept'] !==
        createHash('sha1').update(websocket._hop.key + GUID).digest('base64')) {
      message = 'Invalid Sec-WebSocket-Accept header';
    } else {
      message = negotiate(websocket, res);
    }
    if (message) {
      abortHandshake(websocket, message);
      return;
    }

    websocket._upgradeSocket = null;
    socket.setTimeout(0);
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay();
    let id;
    const addresses = addressesOf(socket);
    try {
      ensureStarted();
      id = adoptSocket(socket, head, '', opts.maxPayload, C.ADOPT_CLIENT |
        clientFlags(opts, C.SERVER_NO_AUTO_PONG, C.SERVER_SKIP_UTF8),
        websocket._pmdSetup, limitsOf(opts));
    } catch (err) {
      socket.destroy();
      websocket._readyState = WebSocket.CLOSING;
      process.nextTick(emitErrorAndClose, websocket, err);
      return;
    }
    websocket._socket = socket;
    websocket._id = id;
    websocket._ns = forwardSocket(socket, websocket, addresses);
    register(id, websocket);
    retain();
    websocket._live = true;
    websocket._readyState = WebSocket.OPEN;
    websocket.emit('open');
  });

  if (opts.finishRequest) opts.finishRequest(req, websocket);
  else req.end();
}

/**
 * Ends the current handshake attempt, whatever carries it. With `detach`
 * (a redirect) the WebSocket also forgets the attempt's C connection, whose
 * remaining events (its close among them) then go nowhere.
 */
function stopAttempt(websocket, detach) {
  const req = websocket._req;
  if (req !== null) {
    req[kAborted] = true;
    if (req instanceof NativeRequest && req.res !== null) {
      // Closing the WebSocket while an unexpected response is read: as
      // ws's req.abort(), the request closes and the body is aborted.
      req.abort();
    } else if (!(req instanceof NativeRequest)) {
      req.abort();
      // abort() leaves the socket open once a response came (ws #1869).
      if (req.socket && !req.socket.destroyed) req.socket.destroy();
    }
  }
  if (websocket._upgradeSocket) {
    websocket._upgradeSocket.destroy();
    websocket._upgradeSocket = null;
  }
  if (websocket._id !== 0 && !websocket._nativeClosed) {
    binding.terminate(websocket._id);
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._handshakeTimer = null;
  if (detach) {
    if (websocket._id !== 0) unregister(websocket._id);
    if (websocket._live) {
      websocket._live = false;
      release();
    }
    if (websocket._res) endBody(websocket._res);
    websocket._id = 0;
    websocket._nativeClosed = false;
    websocket._res = null;
    websocket._req = null;
  }
}

/**
 * Follows a 3xx with a Location (followRedirects), as ws does.
 */
function redirect(websocket, location) {
  const hop = websocket._hop;
  if (++websocket._redirects > hop.opts.maxRedirects) {
    abortHandshake(websocket, 'Maximum redirects exceeded');
    return;
  }
  stopAttempt(websocket, true);
  let url;
  try {
    url = new URL(location, hop.address);
  } catch {
    emitErrorAndClose(websocket, new SyntaxError(`Invalid URL: ${location}`));
    return;
  }
  try {
    initAsClient(websocket, url, hop.protocols, hop.options);
  } catch (err) {
    // As ws: the next request is made in an event of the last one, where
    // a throw could not be caught; it becomes the WebSocket's error.
    if (websocket._readyState === WebSocket.CONNECTING) {
      stopAttempt(websocket, true);
      emitErrorAndClose(websocket, err);
    }
  }
}

/**
 * ws's checks of the 101 after Upgrade and Sec-WebSocket-Accept: the
 * subprotocol, then the extensions. Returns the error message, if any.
 */
function negotiate(websocket, res) {
  const serverProt = res.headers['sec-websocket-protocol'];
  const protocolSet = websocket._hop.protocolSet;
  if (serverProt !== undefined) {
    if (!protocolSet.size) {
      return 'Server sent a subprotocol but none was requested';
    }
    if (!protocolSet.has(serverProt)) return 'Server sent an invalid subprotocol';
  } else if (protocolSet.size) {
    return 'Server sent no subprotocol';
  }
  if (serverProt) websocket._protocol = serverProt;
  const extensions = res.headers['sec-websocket-extensions'];
  if (extensions !== undefined) {
    const offer = websocket._hop.pmdOffer;
    if (!offer) {
      return 'Server sent a Sec-WebSocket-Extensions header but no ' +
        'extension was requested';
    }
    // The C client set the same agreement up already (client.c), before
    // the first frame; the Node-request path hands it to adoptSocket.
    const answer = pmd.acceptResponse(offer, extensions);
    if (answer.error) return answer.error;
    websocket._pmdSetup = answer.setup;
    pmd.applyAgreement(websocket, answer.params, offer, false);
  }
  return null;
}

/**
 * A response shaped like the IncomingMessage ws passes to its events. With
 * `open`, the body stays readable: more arrives as EV_DATA until its end
 * (Content-Length bytes, the last chunk, or the server closing), read from
 * `websocket`'s C connection with backpressure, as Node's IncomingMessage
 * reads its socket: a listener that does not read stops the reading.
 */
function makeResponse(head, body, open, websocket) {
  // Parsed by C (wsn_http_encode_response): status, minor version and
  // reason, then each header's name and value, every field NUL-terminated.
  const fields = head.toString('latin1').split('\0');
  const rawHeaders = [];
  const headers = {};
  for (let i = 3; i < fields.length - 1; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === 'set-cookie') {
      (headers[lower] || (headers[lower] = [])).push(value);
    } else if (headers[lower] === undefined) {
      headers[lower] = value;
    } else {
      headers[lower] += ', ' + value;
    }
  }
  // An http.IncomingMessage, as ws's events give (code checks with
  // instanceof); its body is read from C instead of a socket.
  const res = new http.IncomingMessage(null);
  res._read = readBody;
  res._destroy = destroyBody;
  res._readableState.readingMore = false;
  // The C connection the body comes from; kept by id, since a redirect
  // gives the WebSocket another one.
  res._websocket = open ? websocket : null;
  res._connId = open ? websocket._id : 0;
  res._bodyPaused = false;
  res.aborted = false;
  res.complete = false;
  res.statusCode = Number(fields[0]);
  res.statusMessage = fields[2];
  res.httpVersion = `1.${fields[1]}`;
  res.httpVersionMajor = 1;
  res.httpVersionMinor = Number(fields[1]);
  res.headers = headers;
  res.rawHeaders = rawHeaders;
  res._chunked = null;
  res._remaining = Infinity;
  if (open) {
    const length = headers['content-length'];
    const te = headers['transfer-encoding'];
    if (res.statusCode === 204 || res.statusCode === 304 ||
        (res.statusCode >= 100 && res.statusCode < 200)) {
      res._remaining = 0;
    } else if (te !== undefined && /(?:^|,)\s*chunked\s*$/i.test(te)) {
      res._chunked = Buffer.alloc(C.CHUNKED_STATE_SIZE); // C's decoder state
    } else if (length !== undefined && /^\d+$/.test(length)) {
      res._remaining = Number(length);
    }
  }
  pushBody(res, body);
  if (!open) endBody(res);
  return res;
}

/** Adds body bytes to an unexpected response (Buffer copies: `chunk` may
 * be a view into the event batch). */
function pushBody(res, chunk) {
  if (res._ended) return;
  if (res._chunked !== null) {
    if (chunk && chunk.length) pushChunked(res, chunk);
    return;
  }
  if (chunk && chunk.length && res._remaining > 0) {
    const n = Math.min(chunk.length, res._remaining);
    res._remaining -= n;
    if (!res.push(Buffer.from(chunk.subarray(0, n)))) pauseBody(res);
  }
  if (res._remaining === 0) endBody(res);
}

/** Whether the C connection of `res`'s body is still there to command. */
function bodyConnection(res) {
  const websocket = res._websocket;
  return websocket !== null && res._connId !== 0 &&
    websocket._id === res._connId && !websocket._nativeClosed;
}

/**
 * The body's reader is full: C stops reading the socket (conn.c honours
 * `paused` in WSN_CS_RAW), so the server's writes back up instead of the
 * body piling up here. Chunks already on their way are still pushed.
 */
function pauseBody(res) {
  if (res._bodyPaused || res._ended || !bodyConnection(res)) return;
  res._bodyPaused = true;
  binding.pause(res._connId);
}

function resumeBody(res) {
  if (!res._bodyPaused) return;
  res._bodyPaused = false;
  if (bodyConnection(res)) binding.resume(res._connId);
}

/** Readable's _read: the reader wants more. */
function readBody() {
  resumeBody(this);
}

/**
 * Readable's _destroy, as IncomingMessage's: destroyed before its body was
 * all read, the response is 'aborted' and its connection goes (else it
 * would stay open, paused, with no reader left to resume it); the request
 * then closes. The error is emitted only when someone listens for it.
 */
function destroyBody(err, cb) {
  if (!this.readableEnded || !this.complete) {
    this.aborted = true;
    this.emit('aborted');
  }
  if (this.aborted && !this._ended) {
    this._ended = true;
    const websocket = this._websocket;
    const req = websocket === null ? null : websocket._req;
    if (req instanceof NativeRequest && req.res === this) req.destroy();
    else if (bodyConnection(this)) binding.terminate(this._connId);
  }
  this._ended = true;
  cb(this.listenerCount('error') ? err : null);
}

/**
 * The exchange ended on the client's side (req.destroy(), ws.terminate())
 * before the body's end: as Node's IncomingMessage when its socket goes,
 * the response is destroyed with ECONNRESET 'aborted'.
 */
function abortBody(res) {
  if (res._ended || res.destroyed) return;
  res._ended = true;
  res._bodyPaused = false;
  const err = new Error('aborted');
  err.code = 'ECONNRESET';
  res.destroy(err);
}

/**
 * A chunked body's next bytes, decoded by C (wsn_http_chunked_decode, in a
 * copy: `buf` may be a view into the event batch). The body ends after its
 * last chunk and trailers, or where the bytes stop being a chunked body.
 */
function pushChunked(res, buf) {
  const copy = Buffer.from(buf);
  const r = binding.chunkedDecode(res._chunked, copy);
  const n = (r - (r % 4)) / 4; // data bytes, now at the front of copy
  if (n > 0 && !res.push(n === copy.length ? copy : copy.subarray(0, n))) {
    pauseBody(res);
  }
  if (r % 4 === C.CHUNKED_END || r % 4 === C.CHUNKED_BAD) endBody(res);
}

function endBody(res) {
  if (res._ended) return;
  res._ended = true;
  res.complete = true;
  res.push(null);
  // No _read comes after the end: let C read on, to see the server close.
  resumeBody(res);
}

/**
 * Node's parse error for an answer that does not start "HTTP/" (what
 * Node's parser reports at the first wrong byte, after skipping CRs and
 * LFs), or null when the bytes start like HTTP.
 */
function notHttpError(bytes) {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 13 || bytes[i] === 10)) i++;
  const start = i;
  while (i < bytes.length && i - start < 5 &&
         bytes[i] === 'HTTP/'.charCodeAt(i - start)) {
    i++;
  }
  if (i - start === 5 || i === bytes.length) return null;
  const reason = 'Expected HTTP/, RTSP/ or ICE/';
  const err = new Error(`Parse Error: ${reason}`);
  err.bytesParsed = i;
  err.code = 'HPE_INVALID_CONSTANT';
  err.reason = reason;
  err.rawPacket = Buffer.from(bytes);
  return err;
}

/**
 * The C client's handshake result: the response head, parsed (and the first
 * body bytes), with what C found (C.HS_*); an answer that is not HTTP comes
 * as its bytes.
 */
function onOpen(websocket, payload, result, headLen) {
  if (websocket._readyState !== WebSocket.CONNECTING || websocket._aborted) {
    return;
  }
  if (result === C.HS_BAD_RESPONSE) {
    const err = notHttpError(payload);
    if (err === null) {
      abortHandshake(websocket, 'Parse Error: Invalid HTTP response');
    } else {
      websocket._readyState = WebSocket.CLOSING;
      websocket._aborted = true;
      stopAttempt(websocket);
      process.nextTick(emitErrorAndClose, websocket, err);
    }
    return;
  }
  const unexpected = result === C.HS_NOT_101;
  const res = makeResponse(payload.subarray(0, headLen),
    payload.subarray(headLen), unexpected, websocket);
  const req = websocket._req;
  if (unexpected) {
    clearTimeout(websocket._handshakeTimer);
    websocket._handshakeTimer = null;
    req.res = res;
    const location = res.headers.location;
    const statusCode = res.statusCode;
    if (location && websocket._hop.opts.followRedirects &&
        statusCode >= 300 && statusCode < 400) {
      redirect(websocket, location);
      return;
    }
    websocket._res = res;
    // As with ws's ClientRequest, a listener ends the exchange with
    // req.destroy() or by closing the WebSocket.
    if (!websocket.emit('unexpected-response', req, res)) {
      abortHandshake(websocket, `Unexpected server response: ${statusCode}`);
    }
    return;
  }
  websocket.emit('upgrade', res);
  if (websocket._readyState !== WebSocket.CONNECTING) return;
  websocket._req = null;
  let message;
  if (result === C.HS_BAD_UPGRADE) message = 'Invalid Upgrade header';
  else if (result === C.HS_BAD_ACCEPT) message = 'Invalid Sec-WebSocket-Accept header';
  else message = negotiate(websocket, res);
  if (message) {
    abortHandshake(websocket, message);
    return;
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._handshakeTimer = null;
  websocket._socket =
    (websocket._ns = new NativeSocket(websocket, websocket._addresses));
  websocket._readyState = WebSocket.OPEN;
  websocket.emit('open');
}

/**
 * A TLS failure of the C client (a rejected certificate, an alert), with
 * the code and message Node's tls gives. As with ws over Node, it is an
 * 'error' only while connecting; later the socket just closes (1006).
 */
function onTlsError(websocket, payload) {
  if (websocket._aborted || websocket._readyState !== WebSocket.CONNECTING) {
    return;
  }
  // code NUL message [NUL DER of the peer certificate]
  const first = payload.indexOf(0);
  const second = payload.indexOf(0, first + 1);
  const code = payload.toString('utf8', 0, first);
  const message = payload.toString('utf8', first + 1,
    second === -1 ? payload.length : second);
  const err = new Error(message);
  if (code) err.code = code;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    // What Node's checkServerIdentity puts on its error.
    const prefix = 'Hostname/IP does not match certificate\'s altnames: ';
    err.reason = message.startsWith(prefix)
      ? message.slice(prefix.length) : message;
    err.host = websocket._hop.tlsHost;
    if (second !== -1) {
      try {
        const x509 = new X509Certificate(payload.subarray(second + 1));
        err.cert = x509.toLegacyObject();
        // Node links a self-signed certificate to itself; the rest of a
        // chain is not known here.
        if (x509.checkIssued(x509)) err.cert.issuerCertificate = err.cert;
      } catch {
        // Not parsable here: the error goes without it.
      }
    }
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._aborted = true;
  emitErrorAndClose(websocket, err);
}

/**
 * A connect or lookup failure, as Node's net module reports it.
 */
function onSocketError(websocket, payload, errno) {
  if (websocket._aborted || websocket._readyState !== WebSocket.CONNECTING) {
    return;
  }
  const [syscall, host, port] = payload.toString().split('\0');
  errno |= 0;
  let code = util.getSystemErrorName(errno);
  let err;
  if (syscall === 'getaddrinfo') {
    // Node's dns names an unknown host ENOTFOUND (the errno stays).
    if (code === 'EAI_NONAME' || code === 'EAI_NODATA') code = 'ENOTFOUND';
    err = new Error(`getaddrinfo ${code} ${host}`);
    err.errno = errno;
    err.code = code;
    err.syscall = syscall;
    err.hostname = host;
  } else {
    err = new Error(`${syscall} ${code} ${host}:${port}`);
    err.errno = errno;
    err.code = code;
    err.syscall = syscall;
    err.address = host;
    err.port = Number(port);
  }
  clearTimeout(websocket._handshakeTimer);
  websocket._aborted = true;
  emitErrorAndClose(websocket, err);
}

module.exports = {
  abortHandshake,
  emitErrorAndClose,
  endBody,
  initAsClient,
  onOpen,
  onSocketError,
  onTlsError,
  protocolsOption,
  pushBody
};
