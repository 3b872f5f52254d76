'use strict';

// The chat example's handshake (examples/chat/server.js), as the primer it
// follows (RFC 6455 section 1.2) writes it: GET /chat offering the
// subprotocols chat and superchat from a page's Origin gets 101 Switching
// Protocols with one of them; an Origin that is not allowed gets 403 (the
// check against cross-site WebSocket hijacking). Raw sockets send the exact
// request; the real ws is the client elsewhere. The page itself, in a real
// browser, is test/browser.test.js.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const net = require('node:net');
const path = require('node:path');

const { WebSocketServer, PeerWebSocket } = require('./helpers/impl');

const SERVER = path.join(__dirname, '..', 'examples', 'chat', 'server.js');

/** The primer's request, from a page of `origin` (none: no Origin line). */
function primerRequest(port, origin, protocols = 'chat, superchat') {
  return [
    'GET /chat HTTP/1.1',
    `Host: localhost:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...(origin === undefined ? [] : [`Origin: ${origin}`]),
    `Sec-WebSocket-Protocol: ${protocols}`,
    'Sec-WebSocket-Version: 13',
    '',
    ''
  ].join('\r\n');
}

/**
 * Sends `request` on a raw TCP socket and reads the response head:
 * `{ status, reason, headers }` (header names in lower case). The socket
 * is destroyed afterwards.
 */
function rawHandshake(port, request) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      data += chunk;
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.destroy();
      const [statusLine, ...lines] = data.slice(0, end).split('\r\n');
      const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(statusLine);
      if (!m) {
        reject(new Error(`not an HTTP response: ${statusLine}`));
        return;
      }
      const headers = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), reason: m[2], headers });
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before a response head: ${JSON.stringify(data)}`)));
  });
}

describe('chat example: handshake and Origin check', function () {
  this.timeout(20000);

  let chat = null;
  let logs = [];

  /** Starts the room on a free port of 127.0.0.1; resolves to the port. */
  async function startChat(options = {}) {
    logs = [];
    chat = require('../examples/chat/server').start({
      port: 0,
      host: '127.0.0.1',
      WebSocketServer,
      logger: { log: (l) => logs.push(l), error: (l) => logs.push(`error: ${l}`) },
      ...options
    });
    await once(chat.server, 'listening');
    return chat.server.address().port;
  }

  afterEach(async function () {
    if (chat) await chat.close();
    chat = null;
  });

  it("answers the primer's request from the page's own origin with 101 and superchat", async function () {
    const port = await startChat();
    const connected = once(chat.wss, 'connection');
    const res = await rawHandshake(port, primerRequest(port, `http://localhost:${port}`));
    assert.equal(res.status, 101);
    assert.equal(res.reason, 'Switching Protocols');
    assert.equal(res.headers.upgrade.toLowerCase(), 'websocket');
    assert.equal(res.headers.connection.toLowerCase(), 'upgrade');
    // The primer's accept value for its key.
    assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    // One of the offered subprotocols: superchat, which the room prefers.
    assert.equal(res.headers['sec-websocket-protocol'], 'superchat');
    const [ws] = await connected;
    assert.equal(ws.protocol, 'superchat');
  });

  it('lets in every name of its own origin (127.0.0.1 and localhost, any case)', async function () {
    const port = await startChat();
    for (const origin of [`http://127.0.0.1:${port}`, `http://LOCALHOST:${port}`, `http://[::1]:${port}`]) {
      const res = await rawHandshake(port, primerRequest(port, origin, 'chat'));
      assert.equal(res.status, 101, origin);
      assert.equal(res.headers['sec-websocket-protocol'], 'chat', origin);
    }
  });

  it('answers the exact primer request (Origin: http://localhost:3000) when the list allows it', async function () {
    const port = await startChat({ origins: 'http://localhost:3000, https://chat.example.com/' });
    const res = await rawHandshake(port, primerRequest(port, 'http://localhost:3000'));
    assert.equal(res.status, 101);
    assert.equal(res.headers['sec-websocket-protocol'], 'superchat');
    assert.equal((await rawHandshake(port, primerRequest(port, 'https://chat.example.com'))).status, 101);
    // The list replaces the default: the page's own origin is now refused.
    assert.equal((await rawHandshake(port, primerRequest(port, `http://localhost:${port}`))).status, 403);
  });

  it('refuses another origin with 403 and no connection', async function () {
    const port = await startChat();
    let connections = 0;
    chat.wss.on('connection', () => connections++);
    for (const origin of ['http://evil.example', `http://localhost:${port + 1}`, `https://localhost:${port}`, 'null']) {
      const res = await rawHandshake(port, primerRequest(port, origin));
      assert.equal(res.status, 403, origin);
      assert.equal(res.reason, 'Forbidden', origin);
      assert.equal(res.headers['sec-websocket-accept'], undefined, origin);
    }
    assert.equal(connections, 0);
    assert.equal(chat.wss.clients.size, 0);
    assert.ok(logs.includes('refused a connection from origin http://evil.example'), logs.join('\n'));
  });

  it('refuses a ws client that claims another origin (403)', async function () {
    const port = await startChat();
    const ws = new PeerWebSocket(`ws://127.0.0.1:${port}/chat`, ['chat', 'superchat'], {
      origin: 'http://evil.example'
    });
    // (events.once would reject on the 'error' that comes first)
    const closed = new Promise((resolve) => ws.on('close', resolve));
    const [err] = await once(ws, 'error');
    assert.equal(err.message, 'Unexpected server response: 403');
    assert.equal(await closed, 1006);
  });

  it('lets in a client that sends no Origin (the terminal client) and chats', async function () {
    const port = await startChat();
    const ws = new PeerWebSocket(`ws://127.0.0.1:${port}/chat`, ['superchat', 'chat']);
    const messages = [];
    ws.on('message', (data, isBinary) => messages.push([data.toString(), isBinary]));
    await once(ws, 'open');
    assert.equal(ws.protocol, 'superchat');
    ws.send('hello');
    while (messages.length < 2) await once(ws, 'message');
    assert.deepEqual(messages, [
      [JSON.stringify({ type: 'system', text: 'guest-1 joined' }), false],
      ['hello', false]
    ]);
    ws.close();
    await once(ws, 'close');
  });

  it('`npm start` prints the URL to open and how to stop; SIGINT (Ctrl+C) stops it', async function () {
    assert.equal(require('../package.json').scripts.start, 'node examples/chat/server.js');
    const child = spawn(process.execPath, [SERVER], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe']
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => { out += d; });
    const exited = once(child, 'exit');
    try {
      const port = await new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          const m = /Open http:\/\/localhost:(\d+)\/ in a browser.*Press Ctrl\+C to stop\./.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.on('exit', () => reject(new Error(`exited early:\n${out}`)));
      });
      assert.match(out, new RegExp(`^Chat server listening on http://localhost:${port}/$`, 'm'));
      const res = await rawHandshake(port, primerRequest(port, `http://localhost:${port}`));
      assert.equal(res.status, 101);
      child.kill('SIGINT');
      const [code, signal] = await exited;
      assert.equal(signal, null, out);
      assert.equal(code, 0, out);
      assert.match(out, /SIGINT received/);
      assert.match(out, /Server closed/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  });
});
