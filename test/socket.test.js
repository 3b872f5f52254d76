'use strict';

// ws._socket as third-party code uses it (addresses, setKeepAlive,
// setNoDelay, setTimeout, unref, writableNeedDrain and 'drain', destroy),
// on the connections whose socket ws-native's loop owns: C clients and
// `{ port }` servers. Only what a net.Socket (ws's _socket) also does is
// asserted, so every test runs against ws too.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { once } = require('node:events');
const { spawn } = require('node:child_process');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  PeerWebSocketServer
} = require('./helpers/impl');

const IMPL = path.join(__dirname, 'helpers', 'impl.js');

/**
 * A server (`{ port }`, or `{ server }` on an http.Server when t.mode says
 * so) and a client of it (with an http.Agent in mode 'agent'); hooks
 * (onServer, onClient) run in the 'connection' and 'open' listeners.
 */
async function pair(t, ServerClass = WebSocketServer, ClientClass = WebSocket,
  hooks = {}) {
  let wss;
  let port;
  if (t.mode === 'server') {
    const server = http.createServer();
    t.httpServers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    wss = new ServerClass({ server });
    port = server.address().port;
  } else {
    wss = new ServerClass({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    port = wss.address().port;
  }
  t.servers.push(wss);
  if (hooks.onServer) wss.on('connection', hooks.onServer);
  // 'agent': the client's handshake goes through Node's http.request
  // (ws-native then takes the socket over, as a `{ server }` does).
  const client = new ClientClass(`ws://127.0.0.1:${port}`,
    t.mode === 'agent' ? { agent: new http.Agent() } : undefined);
  t.sockets.push(client);
  if (hooks.onClient) client.on('open', () => hooks.onClient(client));
  const [[server]] = await Promise.all([
    once(wss, 'connection'),
    once(client, 'open')
  ]);
  t.sockets.push(server);
  return { wss, port, client, server };
}

/**
 * The kernel's view of a TCP socket on Linux: /proc/net/tcp's timer kind
 * ("02" is the keepalive timer) and its expiry in clock ticks (USER_HZ,
 * 100 a second), or null when the file is not there.
 */
function tcpTimer(localPort, remotePort) {
  let text;
  try {
    text = fs.readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return null;
  }
  const hex = (p) => ':' + p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    if (f[1].endsWith(hex(localPort)) && f[2].endsWith(hex(remotePort))) {
      const [kind, when] = f[5].split(':');
      return { kind, ticks: parseInt(when, 16) };
    }
  }
  return undefined;
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

for (const mode of ['port', 'server', 'agent']) describe(`ws._socket (${mode})`, function () {
  this.timeout(20000);
  let t;

  beforeEach(function () {
    t = { mode, servers: [], sockets: [], httpServers: [] };
  });

  afterEach(async function () {
    for (const ws of t.sockets) {
      if (ws.readyState !== ws.CLOSED) {
        ws.terminate();
        await once(ws, 'close');
      }
    }
    for (const wss of t.servers) await new Promise((r) => wss.close(r));
    for (const server of t.httpServers) await new Promise((r) => server.close(r));
  });

  it('has the addresses of both ends, as the peer sees them', async function () {
    const { port, client, server } = await pair(t);
    const c = client._socket;
    const s = server._socket;
    assert.equal(c.remoteAddress, '127.0.0.1');
    assert.equal(c.remotePort, port);
    assert.equal(c.remoteFamily, 'IPv4');
    assert.equal(c.localAddress, '127.0.0.1');
    assert.equal(typeof c.localPort, 'number');
    assert.equal(s.remoteAddress, '127.0.0.1');
    assert.equal(s.remotePort, c.localPort);
    assert.equal(s.remoteFamily, 'IPv4');
    assert.equal(s.localAddress, '127.0.0.1');
    assert.equal(s.localPort, port);
    assert.deepEqual(s.address(), { address: '127.0.0.1', family: 'IPv4', port });
    assert.equal(s.readyState, 'open');
    assert.equal(s.destroyed, false);
    assert.deepEqual(c.address(), {
      address: '127.0.0.1',
      family: 'IPv4',
      port: c.localPort
    });
    assert.equal(c.readyState, 'open');
    assert.equal(c.destroyed, false);
  });

  it('has the addresses when the peer is ws', async function () {
    const a = await pair(t, PeerWebSocketServer, WebSocket);
    assert.equal(a.client._socket.remotePort, a.port);
    assert.equal(a.client._socket.localPort, a.server._socket.remotePort);
    const b = await pair(t, WebSocketServer, PeerWebSocket);
    assert.equal(b.server._socket.localPort, b.port);
    assert.equal(b.server._socket.remotePort, b.client._socket.localPort);
  });

  it('setKeepAlive and setNoDelay return the socket and set the options', async function () {
    const { client, server } = await pair(t);
    for (const sock of [client._socket, server._socket]) {
      assert.equal(sock.setNoDelay(), sock);
      assert.equal(sock.setNoDelay(false), sock);
      assert.equal(sock.setNoDelay(true), sock);
      assert.equal(sock.setKeepAlive(true, 5000), sock);
    }
    // The kernel arms a keepalive timer of about 5 s (not the 2 h default)
    // on each end, and disarms it when keepalive is turned off.
    const c = client._socket;
    let timer;
    for (let i = 0; i < 50; i++) {
      timer = tcpTimer(c.localPort, c.remotePort);
      if (timer === null || (timer && timer.kind === '02')) break;
      await delay(20);
    }
    if (timer === null) return; // no /proc/net/tcp here
    assert.equal(timer.kind, '02');
    assert.ok(timer.ticks > 100 && timer.ticks <= 500, `${timer.ticks}`);
    const s = tcpTimer(c.remotePort, c.localPort);
    assert.equal(s.kind, '02');
    assert.equal(c.setKeepAlive(false), c);
    for (let i = 0; i < 50; i++) {
      timer = tcpTimer(c.localPort, c.remotePort);
      if (timer.kind === '00') break;
      await delay(20);
    }
    assert.equal(timer.kind, '00');
  });

  it('setTimeout fires on an idle connection, not on a busy one', async function () {
    const { client, server } = await pair(t);
    const sock = server._socket;
    let timeouts = 0;
    let calls = 0;
    const onTimeout = () => calls++;
    sock.on('timeout', () => timeouts++);
    assert.equal(sock.setTimeout(300, onTimeout), sock);
    // Busy: a message every 20 ms for 600 ms.
    for (let i = 0; i < 30; i++) {
      client.send('x');
      await delay(20);
    }
    assert.equal(timeouts, 0);
    // Idle: the timeout comes, and only once without new activity.
    await once(sock, 'timeout');
    await delay(400);
    assert.equal(timeouts, 1);
    // Activity re-arms it; the callback was a once listener.
    client.send('y');
    await once(sock, 'timeout');
    assert.equal(timeouts, 2);
    assert.equal(calls, 1);
    // setTimeout(0, cb) turns it off and removes that listener.
    sock.setTimeout(400, onTimeout);
    assert.equal(sock.listenerCount('timeout'), 2);
    sock.setTimeout(0, onTimeout);
    assert.equal(sock.listenerCount('timeout'), 1);
    client.send('z');
    await delay(600);
    assert.equal(timeouts, 2);
    assert.throws(() => sock.setTimeout(-1), { code: 'ERR_OUT_OF_RANGE' });
  });

  it('setTimeout counts what this end sends as activity', async function () {
    const { client, server } = await pair(t);
    const sock = client._socket;
    let fired = false;
    sock.setTimeout(300, () => {
      fired = true;
    });
    for (let i = 0; i < 30; i++) {
      client.send('x');
      await delay(20);
    }
    assert.equal(fired, false);
    await once(sock, 'timeout');
    sock.setTimeout(0);
    assert.ok(server);
  });

  for (const side of ['client', 'server']) {
    it(`writableNeedDrain and 'drain' with a peer that stops reading (${side})`, async function () {
      const peerIsServer = side === 'client';
      const p = peerIsServer
        ? await pair(t, PeerWebSocketServer, WebSocket)
        : await pair(t, WebSocketServer, PeerWebSocket);
      const ws = peerIsServer ? p.client : p.server;
      const peer = peerIsServer ? p.server : p.client;
      const sock = ws._socket;
      assert.equal(sock.writableNeedDrain, false);
      peer.pause();
      let received = 0;
      peer.on('message', (data) => {
        received += data.length;
      });
      const chunk = Buffer.alloc(1024 * 1024);
      let sent = 0;
      // Far more than the kernel's buffers hold on loopback (a few MiB each
      // way), so bytes still wait here once the sender had all the time it
      // wants to write (stopping at the first moment some waited was flaky:
      // a slow run could stop at 2 MiB, which the kernel then took whole).
      for (let i = 0; i < 32; i++) {
        ws.send(chunk);
        sent += chunk.length;
        await delay(5);
      }
      await delay(100);
      assert.ok(sock.writableLength > 0, 'bytes wait while the peer does not read');
      assert.equal(sock.writableNeedDrain, true);
      let drained = false;
      sock.once('drain', () => {
        drained = true;
      });
      await delay(100);
      assert.equal(drained, false);
      peer.resume();
      if (!drained) await once(sock, 'drain');
      assert.equal(sock.writableNeedDrain, false);
      assert.equal(sock.writableLength, 0);
      while (received < sent) await delay(10);
      assert.equal(received, sent);
    });
  }

  it("emits 'close' once, when the connection closes", async function () {
    const closes = { client: 0, server: 0 };
    // Listeners added as soon as each side has its socket.
    const { client, server } = await pair(t, undefined, undefined, {
      onServer: (ws) => ws._socket.on('close', () => closes.server++),
      onClient: (ws) => ws._socket.on('close', () => closes.client++)
    });
    assert.ok(client._socket && server._socket);
    await delay(100);
    assert.deepEqual(closes, { client: 0, server: 0 });
    client.close();
    await Promise.all([once(client, 'close'), once(server, 'close')]);
    await delay(50);
    assert.deepEqual(closes, { client: 1, server: 1 });
  });

  it('destroy() ends the connection as terminate() does', async function () {
    const { client, server } = await pair(t);
    const sock = server._socket;
    const errors = [];
    server.on('error', (e) => errors.push(e));
    assert.equal(sock.destroy(), sock);
    assert.equal(sock.destroyed, true);
    const [[code], [peerCode], [hadError]] = await Promise.all([
      once(server, 'close'),
      once(client, 'close'),
      once(sock, 'close')
    ]);
    assert.equal(code, 1006);
    assert.equal(peerCode, 1006);
    assert.equal(hadError, false);
    assert.equal(sock.destroyed, true);
    assert.equal(sock.readyState, 'closed');
    assert.deepEqual(errors, []);
  });

  it('unref() lets the process exit with the connection open', async function () {
    const wss = new PeerWebSocketServer({ port: 0, host: '127.0.0.1' });
    t.servers.push(wss);
    await once(wss, 'listening');
    const connections = [];
    wss.on('connection', (ws) => connections.push(ws));
    const script = `
      const { WebSocket } = require(${JSON.stringify(IMPL)});
      const ws = new WebSocket('ws://127.0.0.1:${wss.address().port}',
        ${mode === 'agent'} ? { agent: new (require('http').Agent)() } : {});
      ws.on('open', () => {
        ws._socket.unref();
        console.log('open');
      });
      ws.on('close', () => console.log('close'));
    `;
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'inherit']
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const [code, signal] = await once(child, 'exit');
    clearTimeout(timer);
    assert.equal(signal, null, 'the child did not exit by itself');
    assert.equal(code, 0);
    assert.equal(out, 'open\n');
    assert.equal(connections.length, 1);
  });
});
