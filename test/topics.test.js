'use strict';

// Topics (publish/subscribe), a ws-native addition (docs/topics.md): ws has
// none, so every test here skips under WSN_TEST_IMPL=ws. Subscribers are
// real ws clients, ours, and raw sockets that look at the bytes: each gets
// the frame C built once, text and binary, compressed (one shared frame for
// peers with server_no_context_takeover, their own compressor for the
// others) and not. A subscriber that never reads is skipped ('dropped') or
// closed and never grows the server (a child process measures its RSS).

const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const zlib = require('node:zlib');

const {
  WebSocket,
  WebSocketServer,
  PeerWebSocket,
  isNative
} = require('./helpers/impl');
const { rawHandshake } = require('./helpers/raw');
const { inflateMessages } = require('./helpers/deflate');
const {
  Cleanup,
  delay,
  dispose,
  startServer,
  stopServer,
  waitFor
} = require('./helpers/util');

const FIXTURES = path.join(__dirname, 'fixtures', 'topics');
const cleanup = new Cleanup();

/** Opens a client of class `Ctor` and waits for the server's side of it. */
async function connectPair(wss, Ctor = PeerWebSocket, options, url = '/') {
  const serverSide = waitFor(wss, 'connection');
  const client = new Ctor(`ws://127.0.0.1:${wss.address().port}${url}`,
    options);
  client.on('error', () => {});
  cleanup.add(() => dispose(client));
  const [ws] = await serverSide;
  if (client.readyState !== 1) await waitFor(client, 'open');
  return { client, ws };
}

/** Collects a client's messages; `until(n)` resolves with the first n. */
function collect(client) {
  const got = [];
  const waiters = [];
  client.on('message', (data, isBinary) => {
    got.push([Buffer.from(data).toString(), isBinary]);
    for (const w of waiters.splice(0)) w();
  });
  return {
    got,
    async until(n) {
      while (got.length < n) await new Promise((resolve) => waiters.push(resolve));
      return got.slice(0, n);
    }
  };
}

/** Runs a fixture; resolves with its stdout once it exits with 0. */
function runFixture(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit']
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`fixture exited with ${code}: ${out}`));
    });
  });
}

describe('topics (ws-native)', function () {
  this.timeout(30000);

  beforeEach(function () {
    if (!isNative) this.skip(); // ws has no topics: nothing to compare
  });

  afterEach(() => cleanup.run());

  it('publishes text and binary to ws clients and ours, framed once for all', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const pairs = [];
    for (let i = 0; i < 6; i++) {
      pairs.push(await connectPair(wss, i % 2 ? WebSocket : PeerWebSocket));
    }
    const inboxes = pairs.map(({ client }) => collect(client));
    for (const { ws } of pairs) ws.subscribe('news');
    const other = await connectPair(wss);
    const otherInbox = collect(other.client);
    other.ws.subscribe('sport');

    assert.equal(wss.subscriberCount('news'), 6);
    assert.equal(wss.subscriberCount('sport'), 1);
    assert.equal(wss.subscriberCount('none'), 0);
    assert.equal(wss.publish('news', 'hello'), 6);
    assert.equal(wss.publish('news', Buffer.from([1, 2, 3])), 6);
    assert.equal(wss.publish('news', 'as binary', { binary: true }), 6);
    assert.equal(wss.publish('news', new Uint8Array([104, 105]), { binary: false }), 6);
    assert.equal(wss.publish('news', 42), 6);
    assert.equal(wss.publish('none', 'nobody'), 0);
    assert.equal(wss.publish('sport', 'goal'), 1);
    const bin = Buffer.from([1, 2, 3]).toString();
    for (const inbox of inboxes) {
      assert.deepEqual(await inbox.until(5), [
        ['hello', false], [bin, true], ['as binary', true], ['hi', false],
        ['42', false]
      ]);
    }
    assert.deepEqual(await otherInbox.until(1), [['goal', false]]);
    await delay(20);
    assert.equal(otherInbox.got.length, 1);
  });

  it('a large message reaches every subscriber whole, and counts in bufferedAmount', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const pairs = [await connectPair(wss), await connectPair(wss, WebSocket)];
    const big = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i * 7;
    const received = pairs.map(({ client }) => waitFor(client, 'message'));
    for (const { ws } of pairs) ws.subscribe('big');
    assert.equal(wss.publish('big', big), 2);
    // Counted as a send() of it would be until it is written.
    assert.ok(pairs[0].ws.bufferedAmount > 0);
    for (const p of received) {
      const [data, isBinary] = await p;
      assert.equal(isBinary, true);
      assert.ok(Buffer.from(data).equals(big));
    }
    for (const { ws } of pairs) {
      while (ws.bufferedAmount > 0) await delay(5);
    }
  });

  it('ws.publish reaches every subscriber but the publisher, from a message handler', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const pairs = [];
    for (let i = 0; i < 4; i++) pairs.push(await connectPair(wss, i % 2 ? WebSocket : PeerWebSocket));
    const inboxes = pairs.map(({ client }) => collect(client));
    const counts = [];
    for (const { ws } of pairs) {
      ws.on('message', (data) => {
        const text = data.toString();
        if (text.startsWith('join:')) {
          ws.subscribe(text.slice(5));
          ws.send('joined');
        } else {
          counts.push(ws.publish('room', text));
        }
      });
    }
    for (const { client } of pairs) client.send('join:room');
    for (const inbox of inboxes) await inbox.until(1);
    pairs[0].client.send('from 0');
    for (const inbox of inboxes.slice(1)) {
      assert.deepEqual((await inbox.until(2))[1], ['from 0', false]);
    }
    // The publisher got nothing: the next message it gets is the server's.
    wss.publish('room', 'end');
    assert.deepEqual(await inboxes[0].until(2), [['joined', false], ['end', false]]);
    assert.deepEqual(counts, [3]);
    assert.ok(pairs[0].ws.isSubscribed('room'));
    assert.deepEqual(pairs[0].ws.topics, ['room']);
  });

  it('publishes from a timer, in order with sends', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const { client, ws } = await connectPair(wss);
    const inbox = collect(client);
    ws.subscribe('tick');
    await new Promise((resolve) => {
      let i = 0;
      const timer = setInterval(() => {
        ws.send(`send ${i}`);
        wss.publish('tick', `tick ${i}`);
        if (++i === 5) {
          clearInterval(timer);
          resolve();
        }
      }, 2);
    });
    const want = [];
    for (let i = 0; i < 5; i++) want.push([`send ${i}`, false], [`tick ${i}`, false]);
    assert.deepEqual(await inbox.until(10), want);
  });

  it('compresses once for peers with server_no_context_takeover, per connection for the others', async () => {
    const wss = await startServer(WebSocketServer, {
      perMessageDeflate: { threshold: 16 }
    });
    cleanup.add(() => stopServer(wss));
    const port = wss.address().port;
    const message = 'topics '.repeat(300);
    // Raw peers, to see the frames: two share one compressed frame, one
    // with context takeover gets its own stream, one agreed to nothing.
    const offers = [
      'permessage-deflate; server_no_context_takeover',
      'permessage-deflate; server_no_context_takeover',
      'permessage-deflate',
      null
    ];
    const raws = [];
    for (const offer of offers) {
      const serverSide = waitFor(wss, 'connection');
      const raw = await rawHandshake(port, offer
        ? { headers: { 'Sec-WebSocket-Extensions': offer } } : {});
      cleanup.add(() => raw.socket.destroy());
      const [ws] = await serverSide;
      ws.subscribe('z');
      raws.push(raw);
    }
    // And real ws clients, which check every frame themselves.
    const peers = [
      await connectPair(wss, PeerWebSocket, { perMessageDeflate: { serverNoContextTakeover: true } }),
      await connectPair(wss, PeerWebSocket, { perMessageDeflate: true }),
      await connectPair(wss, WebSocket, { perMessageDeflate: true }),
      await connectPair(wss, PeerWebSocket, { perMessageDeflate: false })
    ];
    const inboxes = peers.map(({ client }) => collect(client));
    for (const { ws } of peers) ws.subscribe('z');

    for (let i = 0; i < 3; i++) assert.equal(wss.publish('z', `${message}${i}`), 8);
    assert.equal(wss.publish('z', `${message}plain`, { compress: false }), 8);
    assert.equal(wss.publish('z', 'short'), 8); // under the threshold

    const frames = [];
    for (const { reader } of raws) {
      const list = [];
      for (let i = 0; i < 5; i++) list.push(await reader.next());
      frames.push(list);
    }
    for (const [r, list] of frames.entries()) {
      const agreed = offers[r] !== null;
      const nct = agreed && offers[r].includes('no_context');
      assert.deepEqual(list.map((f) => f.rsv1),
        [agreed, agreed, agreed, false, agreed && !nct]);
      assert.equal(list[3].payload.toString(), `${message}plain`);
      if (!agreed) {
        assert.equal(list[0].payload.toString(), `${message}0`);
        continue;
      }
      const compressed = list.slice(0, 3).map((f) => f.payload);
      assert.deepEqual(inflateMessages(compressed).map(String),
        [0, 1, 2].map((i) => `${message}${i}`));
      if (nct) {
        // Each message on its own, and the same bytes for both such peers.
        for (const [i, p] of compressed.entries()) {
          assert.equal(inflateMessages([p])[0].toString(), `${message}${i}`);
          assert.ok(p.equals(frames[0][i].payload));
        }
      }
    }
    const want = [0, 1, 2].map((i) => [`${message}${i}`, false])
      .concat([[`${message}plain`, false], ['short', false]]);
    for (const inbox of inboxes) assert.deepEqual(await inbox.until(5), want);
  });

  it('delivers one message to 10,000 subscribers', async function () {
    this.timeout(120000);
    const COUNT = 10000;
    const wss = await startServer(WebSocketServer, { backlog: 1024 });
    cleanup.add(() => stopServer(wss));
    let connected = 0;
    let allIn;
    const all = new Promise((resolve) => (allIn = resolve));
    wss.on('connection', (ws) => {
      ws.subscribe('all');
      if (++connected === COUNT) allIn();
    });
    const child = runFixture([path.join(FIXTURES, 'clients.js'),
      String(wss.address().port), String(COUNT), '2']);
    await all;
    assert.equal(wss.subscriberCount('all'), COUNT);
    assert.equal(wss.publish('all', 'm0'), COUNT);
    assert.equal(wss.publish('all', Buffer.from('m1')), COUNT);
    const out = await child;
    assert.match(out, new RegExp(`got ${2 * COUNT} bad 0`));
    // Every subscriber left its topic when its socket closed.
    while (wss.subscriberCount('all') > 0) await delay(10);
    assert.equal(wss.publish('all', 'nobody'), 0);
  });

  it('subscribe, unsubscribe and publish racing with closes leave nothing behind', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const closed = [];
    wss.on('connection', (ws) => {
      ws.subscribe('a');
      ws.subscribe('b');
      closed.push(new Promise((resolve) => ws.on('close', resolve)));
      ws.on('message', () => {
        ws.unsubscribe('a');
        ws.subscribe('c');
        wss.publish('b', 'x');
        ws.publish('c', 'y');
      });
    });
    const clients = [];
    for (let i = 0; i < 40; i++) {
      const c = new (i % 2 ? WebSocket : PeerWebSocket)(`ws://127.0.0.1:${wss.address().port}`);
      c.on('error', () => {});
      c.on('open', () => {
        c.send('go');
        if (i % 3 === 0) c.terminate();
        else if (i % 3 === 1) setImmediate(() => c.close());
      });
      clients.push(c);
      cleanup.add(() => dispose(c));
    }
    // Publish all along while they come and go.
    const timer = setInterval(() => {
      wss.publish('a', 'tick');
      wss.publish('b', Buffer.alloc(100));
    }, 1);
    cleanup.add(() => clearInterval(timer));
    await delay(100);
    for (const c of clients) c.terminate();
    while (closed.length < 40) await delay(5);
    await Promise.all(closed);
    clearInterval(timer);
    for (const t of ['a', 'b', 'c']) {
      assert.equal(wss.subscriberCount(t), 0);
      assert.equal(wss.publish(t, 'late'), 0);
    }
    for (const ws of wss.clients) assert.deepEqual(ws.topics, []);
  });

  it('a closed socket leaves its topics; subscribe after close does nothing', async () => {
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const { client, ws } = await connectPair(wss);
    ws.subscribe('t1');
    ws.subscribe('t2');
    ws.subscribe('t1'); // once is enough
    assert.deepEqual(ws.topics.sort(), ['t1', 't2']);
    const copy = ws.topics;
    copy.push('t3');
    assert.deepEqual(ws.topics.sort(), ['t1', 't2']);
    ws.unsubscribe('t2');
    ws.unsubscribe('t2');
    ws.unsubscribe('never');
    assert.deepEqual(ws.topics, ['t1']);
    assert.equal(wss.subscriberCount('t2'), 0);
    const closed = waitFor(ws, 'close');
    client.close();
    await closed;
    assert.equal(wss.subscriberCount('t1'), 0);
    assert.equal(ws.isSubscribed('t1'), false);
    assert.deepEqual(ws.topics, []);
    ws.subscribe('t1');
    assert.equal(ws.isSubscribed('t1'), false);
    assert.equal(wss.subscriberCount('t1'), 0);
  });

  it('two servers have separate topics', async () => {
    const a = await startServer(WebSocketServer);
    const b = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(a));
    cleanup.add(() => stopServer(b));
    const pa = await connectPair(a);
    const pb = await connectPair(b);
    const ia = collect(pa.client);
    const ib = collect(pb.client);
    pa.ws.subscribe('same');
    pb.ws.subscribe('same');
    assert.equal(a.publish('same', 'to a'), 1);
    assert.equal(b.publish('same', 'to b'), 1);
    assert.deepEqual(await ia.until(1), [['to a', false]]);
    assert.deepEqual(await ib.until(1), [['to b', false]]);
    await delay(20);
    assert.equal(ia.got.length + ib.got.length, 2);
  });

  it('publishes to wss:// subscribers (TLS in C copies the shared frame), compressed and not', async function () {
    const { getCert } = require('./helpers/attach');
    const { key, cert } = await getCert();
    const wss = await startServer(WebSocketServer, {
      tls: { key, cert },
      perMessageDeflate: { threshold: 0 }
    });
    cleanup.add(() => stopServer(wss));
    const url = `wss://127.0.0.1:${wss.address().port}`;
    const inboxes = [];
    for (const pmd of [{ serverNoContextTakeover: true }, true, false]) {
      const serverSide = waitFor(wss, 'connection');
      const client = new PeerWebSocket(url, { rejectUnauthorized: false, perMessageDeflate: pmd });
      client.on('error', () => {});
      cleanup.add(() => dispose(client));
      const [ws] = await serverSide;
      if (client.readyState !== 1) await waitFor(client, 'open');
      ws.subscribe('secure');
      inboxes.push(collect(client));
    }
    const big = 'z'.repeat(100000);
    assert.equal(wss.publish('secure', 'one'), 3);
    assert.equal(wss.publish('secure', big), 3);
    assert.equal(wss.publish('secure', Buffer.from('three'), { compress: false }), 3);
    for (const inbox of inboxes) {
      assert.deepEqual(await inbox.until(3), [['one', false], [big, false], ['three', true]]);
    }
  });

  it('works for sockets of a { noServer } server too (handleUpgrade)', async () => {
    const http = require('node:http');
    const wss = new WebSocketServer({ noServer: true });
    const server = http.createServer();
    server.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.add(() => new Promise((resolve) => server.close(resolve)));
    cleanup.add(() => stopServer(wss));
    const serverSide = waitFor(wss, 'connection');
    const client = new PeerWebSocket(`ws://127.0.0.1:${server.address().port}`);
    cleanup.add(() => dispose(client));
    const [ws] = await serverSide;
    ws.subscribe('x');
    const got = waitFor(client, 'message');
    assert.equal(wss.publish('x', 'adopted'), 1);
    assert.equal((await got)[0].toString(), 'adopted');
  });

  it('checks its arguments', async () => {
    assert.throws(() => new WebSocketServer({ noServer: true, maxBackpressure: -1 }),
      { name: 'TypeError', message: /maxBackpressure/ });
    assert.throws(() => new WebSocketServer({ noServer: true, maxBackpressure: '1' }),
      { name: 'TypeError' });
    const wss = await startServer(WebSocketServer);
    cleanup.add(() => stopServer(wss));
    const { client, ws } = await connectPair(wss, WebSocket);
    for (const bad of [undefined, null, 1, {}, Symbol('s'), ['a']]) {
      assert.throws(() => ws.subscribe(bad), { name: 'TypeError', message: /"topic" argument must be a string/ });
      assert.throws(() => ws.unsubscribe(bad), { name: 'TypeError' });
      assert.throws(() => ws.isSubscribed(bad), { name: 'TypeError' });
      assert.throws(() => ws.publish(bad, 'x'), { name: 'TypeError' });
      assert.throws(() => wss.publish(bad, 'x'), { name: 'TypeError' });
      assert.throws(() => wss.subscriberCount(bad), { name: 'TypeError' });
    }
    const long = 'x'.repeat(64 * 1024 + 1);
    assert.throws(() => ws.subscribe(long), { name: 'RangeError' });
    assert.throws(() => wss.publish('é'.repeat(40000), 'x'), { name: 'RangeError' });
    ws.subscribe('x'.repeat(64 * 1024)); // the limit itself is fine
    assert.equal(wss.subscriberCount('x'.repeat(64 * 1024)), 1);
    assert.throws(() => wss.publish('t', 'x', 'binary'), { name: 'TypeError' });
    assert.throws(() => wss.publish('t', new Blob(['x'])), { name: 'TypeError' });
    // Clients have no server to publish through (docs/topics.md).
    assert.throws(() => client.subscribe('t'), /for sockets a WebSocketServer made/);
    assert.throws(() => client.publish('t', 'x'), /for sockets a WebSocketServer made/);
    assert.throws(() => client.unsubscribe('t'), /for sockets a WebSocketServer made/);
    assert.equal(client.isSubscribed('t'), false);
    assert.deepEqual(client.topics, []);
  });

  for (const mode of ['skip', 'close']) {
    it(`a raw subscriber that never reads is ${mode === 'skip' ? "skipped with 'dropped'" : 'closed'}, and memory stays bounded`, async function () {
      this.timeout(120000);
      const out = await runFixture(['--expose-gc', path.join(FIXTURES, 'slow.js'), mode]);
      const r = JSON.parse(out.trim().split('\n').pop());
      // The reader got everything; 4,000 messages of 64 KiB (256 MB) were
      // published to the one that never reads.
      assert.equal(r.fast, 4000, out);
      if (mode === 'skip') {
        // Its kernel buffers and maxBackpressure (256 KiB) took a few; it
        // was skipped for every other one, each with a 'dropped'.
        assert.ok(r.dropped > 3500, out);
        assert.equal(r.droppedOk, true, out);
        assert.equal(r.slowClose, null, out);
        assert.equal(r.queuedSum, 8000, out);
      } else {
        assert.equal(r.dropped, 0, out);
        assert.equal(r.slowClose, 1006, out);
        assert.ok(r.queuedSum < 4500, out);
      }
      // Never more buffered than the limit plus the message that crossed it
      // and (thread mode) the one JS counted that C had not seen yet.
      assert.ok(r.maxBuffered <= 256 * 1024 + 2 * (64 * 1024 + 10), out);
      // AddressSanitizer keeps freed memory in quarantine: only the normal
      // build's RSS means something.
      if (process.env.ASAN_OPTIONS === undefined) {
        assert.ok(r.growth < 128 * 1024 * 1024, `RSS grew by ${r.growth}: ${out}`);
      }
    });
  }

  it("'dropped' carries the data, isBinary and topic; bufferedAmount stays exact", async () => {
    // maxBackpressure 0: any subscriber with a byte buffered is skipped.
    const wss = await startServer(WebSocketServer, { maxBackpressure: 0 });
    cleanup.add(() => stopServer(wss));
    const { client, ws } = await connectPair(wss);
    const inbox = collect(client);
    ws.subscribe('t');
    const dropped = [];
    ws.on('dropped', (data, isBinary, topic) => dropped.push([data.toString(), isBinary, topic]));
    ws.send('first'); // buffered until the loop writes it
    assert.equal(wss.publish('t', 'skipped'), 1);
    assert.equal(wss.publish('t', Buffer.from('skipped too')), 1);
    while (dropped.length < 2) await delay(5);
    assert.deepEqual(dropped, [['skipped', false, 't'], ['skipped too', true, 't']]);
    while (ws.bufferedAmount > 0) await delay(5);
    assert.equal(wss.publish('t', 'delivered'), 1);
    assert.deepEqual(await inbox.until(2), [['first', false], ['delivered', false]]);
    while (ws.bufferedAmount > 0) await delay(5);
    assert.equal(ws.bufferedAmount, 0);
  });
});
