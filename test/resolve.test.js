'use strict';

// Name lookups (src/resolve.c): a lookup that hangs must never hold up
// process.exit() or a worker's termination, and a server whose listen host
// is a name must not stall the loop while it resolves.
//
// A hanging resolver without any network: before() compiles
// test/fixtures/resolve/slow-dns.c into an LD_PRELOAD shim whose
// getaddrinfo() sleeps for names ending in ".slow.test". The scenarios run
// in child processes (test/fixtures/resolve/scenario.js) with the shim
// preloaded; they inherit WSN_TEST_IMPL and WS_NATIVE_LOOP.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { execFileSync, spawn } = require('node:child_process');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  isNative
} = require('./helpers/impl');

const FIXTURES = path.join(__dirname, 'fixtures', 'resolve');

// How long a slow lookup hangs, and how soon a child must be gone when it
// must not wait for it: an order of magnitude apart, so the bound says
// "did not wait", not "was fast".
const HANG_MS = 30000;
const EXIT_DEADLINE = 3000;

// The first two are ws-native-only: ws's lookups (dns.lookup) run on
// libuv's threadpool, which Node joins when the process exits, so ws itself
// waits for a hanging resolver there.

describe('name lookups', function () {
  let dir;
  let shim;
  const children = new Set();

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsn-resolve-'));
    shim = path.join(dir, 'slow-dns.so');
    // Not under a sanitizer runtime the test process may have preloaded.
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    execFileSync('cc', [
      '-shared', '-fPIC', '-O1', '-o', shim,
      path.join(FIXTURES, 'slow-dns.c'), '-ldl'
    ], { env });
  });

  after(function () {
    for (const proc of children) proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Runs a scenario with the shim; resolves with { code, signal, stdout,
  // stderr, returned } once it exits, or kills it and rejects after
  // `deadline` ms. `returned`: the slow lookup had returned by then.
  let run = 0;
  function scenario(mode, { deadline = EXIT_DEADLINE, hang = HANG_MS } = {}) {
    const mark = path.join(dir, `mark-${run}`);
    const done = path.join(dir, `done-${run++}`);
    const proc = spawn(process.execPath, [path.join(FIXTURES, 'scenario.js'), mode], {
      env: {
        ...process.env,
        // After any preload already there (an ASan runtime must stay first).
        LD_PRELOAD: [process.env.LD_PRELOAD, shim].filter(Boolean).join(' '),
        SLOW_DNS_MS: String(hang),
        SLOW_DNS_MARK: mark,
        SLOW_DNS_DONE: done
      },
      stdio: ['ignore', 'pipe', 'pipe']
    });
    children.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    proc.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    const describe = () => `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${mode}: no exit within ${deadline} ms${describe()}`));
      }, deadline);
      proc.on('error', reject);
      proc.on('close', (code, signal) => {
        clearTimeout(timer);
        children.delete(proc);
        resolve({
          code,
          signal,
          stdout,
          describe,
          started: fs.existsSync(mark),
          returned: fs.existsSync(done)
        });
      });
    });
  }

  it('process.exit() mid-lookup does not wait for the resolver', async function () {
    if (!isNative) this.skip(); // ws waits for its lookup: see above
    const r = await scenario('exit');
    assert.equal(r.signal, null, r.describe());
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /^exiting$/m, r.describe());
    assert.ok(r.started, 'the slow lookup never started');
    assert.ok(!r.returned, 'the process waited for the lookup');
  });

  it('a worker terminated mid-lookup does not wait for the resolver', async function () {
    if (!isNative) this.skip(); // ws waits for its lookup: see above
    const r = await scenario('worker');
    assert.equal(r.signal, null, r.describe());
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /^terminated before the lookup returned$/m, r.describe());
    assert.ok(!r.returned, 'the process waited for the lookup');
  });

  it('a listen on a hanging name stalls no open connection, and close() ends it', async function () {
    // Short enough that ws's exit (which waits for its lookup) stays quick;
    // long against a few local echoes.
    const r = await scenario('listen', { hang: 3000, deadline: 15000 });
    assert.equal(r.signal, null, r.describe());
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /^echoed while the listen host resolved$/m, r.describe());
    assert.match(r.stdout, /^slow server closed with events \[\]$/m, r.describe());
    assert.match(r.stdout, /^done$/m, r.describe());
  });

  it("listens on { port: 0, host: 'localhost' }", async function () {
    const wss = new WebSocketServer({ port: 0, host: 'localhost' });
    await once(wss, 'listening');
    const { address, family, port } = wss.address();
    // /etc/hosts may list either loopback address first.
    assert.ok(address === '127.0.0.1' || address === '::1', address);
    assert.ok(port > 0);
    const host = family === 'IPv6' ? `[${address}]` : address;
    wss.on('connection', (socket) => {
      socket.on('message', (data) => socket.send(data));
    });
    const client = new PeerWebSocket(`ws://${host}:${port}`);
    await once(client, 'open');
    const echoed = once(client, 'message');
    client.send('over localhost');
    const [data] = await echoed;
    assert.equal(data.toString(), 'over localhost');
    client.close();
    await once(client, 'close');
    wss.close();
    await once(wss, 'close');
  });

  it("connects to ws://localhost while other lookups are under way", async function () {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    const { port } = wss.address();
    // More clients than lookup threads at once: the rest queue and still
    // connect.
    const clients = [];
    for (let i = 0; i < 12; i++) clients.push(new WebSocket(`ws://localhost:${port}`));
    await Promise.all(clients.map((c) => once(c, 'open')));
    await Promise.all(
      clients.map((c) => {
        c.close();
        return once(c, 'close');
      })
    );
    wss.close();
    await once(wss, 'close');
  });
});
