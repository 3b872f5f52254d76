'use strict';

// 10,000 concurrent connections held by a server of the implementation under
// test, in this process, opened by the real ws client from a child process
// (each process needs over 10,000 fds), in two rounds. Measures this
// process's RSS and open fds before, with all 10,000 connected, and after all
// closed: the fds must come back exactly each time, and the RSS must not
// climb from one round to the next.

const assert = require('node:assert/strict');
const { once } = require('node:events');

const { WebSocketServer } = require('../helpers/impl');
const {
  IMPL_LABEL,
  LoadChild,
  countFds,
  fdLimit,
  mb,
  measure,
  primeLoop,
  sleep,
  until
} = require('./util');

const COUNT = 10000;
const BATCH = 500;
const MESSAGES = 4;
// Room for mocha, timers and the loop's own handles beyond COUNT sockets.
const FD_MARGIN = 100;
const ROUNDS = 2;
// How far the RSS after the last round may be above the RSS after the first,
// everything closed each time.
const RSS_GROWTH_BOUND = 20 * 1024 * 1024;

describe('load: 10,000 concurrent connections', function () {
  let wss = null;
  let child = null;

  afterEach(async function () {
    if (child) await child.kill();
    child = null;
    if (wss) {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve()));
    }
    wss = null;
  });

  // One round: a child opens COUNT connections, every one echoes MESSAGES
  // messages, all close with 1000, the child exits. Resolves with the
  // measurements at COUNT connected, after the echoes and after all closed.
  async function round(url, state) {
    const started = Date.now();
    child = new LoadChild('many-clients.js', [url, COUNT, BATCH, MESSAGES], {
      raiseFdLimit: true
    });
    const [, childLimit] = await child.waitFor(/limit (\S+)/, 10000);
    if (/skip/.test(await child.waitFor(/skip|open \d+/, 120000))) {
      return { skip: `the client process may open ${childLimit} files, needs ${COUNT + FD_MARGIN}` };
    }
    await until(
      () => wss.clients.size === COUNT,
      30000,
      () => `wss.clients.size ${wss.clients.size}`
    );
    const openMs = Date.now() - started;

    await sleep(200);
    const full = measure();
    // The child's three stdio pipes are open now and not at the start.
    assert.ok(full.fds >= state.start.fds + COUNT, `fds ${state.start.fds} -> ${full.fds}`);

    child.send('send');
    const [, echoed] = await child.waitFor(/echoed (\d+)/, 60000);
    assert.equal(echoed, String(COUNT * MESSAGES));
    const traffic = measure();

    child.send('close');
    await child.waitFor(/closed \d+ codes .*\n/, 60000);
    const result = await child.exitWithin(30000);
    assert.equal(result.code, 0, child.describe());
    assert.equal(child.stderr, '');
    assert.match(child.stdout, new RegExp(`closed ${COUNT} codes \\{"1000":${COUNT}\\}`));
    child = null;

    await until(
      () => wss.clients.size === 0,
      30000,
      () => `wss.clients.size ${wss.clients.size}`
    );
    // Sockets are closed once 'close' has been emitted; give the loop a
    // moment all the same.
    await until(() => countFds() <= state.start.fds, 5000, () => '').catch(() => {});
    await sleep(500);
    const closed = measure();
    return { full, traffic, closed, openMs, ms: Date.now() - started };
  }

  it('are held, echo messages and close, twice; fds come back exactly, RSS does not grow', async function () {
    const limit = fdLimit();
    if (limit < COUNT + FD_MARGIN) {
      console.log(`      skipped: this process may open ${limit} files, needs ${COUNT + FD_MARGIN}`);
      this.skip();
    }

    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    const serverErrors = [];
    const serverCloses = {};
    let connections = 0;
    wss.on('connection', (ws) => {
      connections++;
      ws.on('error', (err) => serverErrors.push(err));
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', (code) => {
        serverCloses[code] = (serverCloses[code] || 0) + 1;
      });
    });
    const url = `ws://127.0.0.1:${wss.address().port}`;

    await primeLoop();
    await sleep(200);
    const state = { start: measure() };
    const { start } = state;
    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await round(url, state);
      if (r.skip) {
        console.log(`      skipped: ${r.skip}`);
        this.skip();
      }
      rounds.push(r);
      assert.equal(connections, COUNT * (i + 1));
      assert.deepEqual(serverCloses, { 1000: COUNT * (i + 1) });
      assert.deepEqual(serverErrors, []);
      assert.equal(r.closed.fds, start.fds, `open fds after round ${i + 1} closed`);
    }

    const [first, last] = [rounds[0], rounds[rounds.length - 1]];
    const perConnection = Math.round((first.full.rss - start.rss) / COUNT);
    console.log(
      `      10k connections: RSS per connection ${perConnection} bytes (${IMPL_LABEL})`
    );
    rounds.forEach((r, i) => {
      console.log(
        `      10k connections, round ${i + 1}: RSS ${mb(start.rss)} MB at start, ` +
          `${mb(r.full.rss)} MB connected, ${mb(r.traffic.rss)} MB after ` +
          `${COUNT * MESSAGES} echoes, ${mb(r.closed.rss)} MB all closed; ` +
          `fds ${start.fds} -> ${r.full.fds} -> ${r.closed.fds}; ` +
          `opened in ${r.openMs} ms, round ${r.ms} ms`
      );
    });

    // V8 keeps most of the heap it grew for 10,000 connections (ws itself
    // stays ~45 MB above its start), so the first round sets the level and
    // the later ones must not climb above it: a leak of even 2 KB per
    // connection would.
    assert.ok(
      last.closed.rss - first.closed.rss < RSS_GROWTH_BOUND,
      `RSS after round 1 closed ${mb(first.closed.rss)} MB, after round ${ROUNDS} ${mb(last.closed.rss)} MB`
    );
  });
});
