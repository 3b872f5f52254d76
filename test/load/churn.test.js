'use strict';

// Connection churn: for WSN_CHURN_SECONDS (default 60) seconds a child
// process opens a few hundred connections a second against a server of the
// implementation under test, in this process, and ends them every way a
// peer can: destroyed right after the TCP connect, in the middle of the
// opening handshake, in the middle of a message, with a clean close and with
// terminate() (test/fixtures/load/churn-client.js). Afterwards this process
// has the fds it started with, its RSS has not grown past a bound, and the
// server still answers.

const assert = require('node:assert/strict');
const { once } = require('node:events');

const { PeerWebSocket, WebSocketServer } = require('../helpers/impl');
const {
  IMPL_LABEL,
  LoadChild,
  countFds,
  mb,
  measure,
  primeLoop,
  sleep,
  until
} = require('./util');

const SECONDS = Number(process.env.WSN_CHURN_SECONDS || 60);
const RATE = 300; // connections started per second
const INFLIGHT = 200; // at most this many at once
const FD_TOLERANCE = 2;
// RSS growth over the whole run, and over its second half. ws itself ends
// up to ~30 MB above its start (V8 keeps the heap it grew); the second half
// shows a steady leak without the first half's growth of the heaps.
const RSS_BOUND = 40 * 1024 * 1024;
const RSS_SECOND_HALF_BOUND = 20 * 1024 * 1024;

describe('load: connection churn', function () {
  let wss = null;
  let child = null;
  let health = null;

  afterEach(async function () {
    if (child) await child.kill();
    child = null;
    if (health && health.readyState !== PeerWebSocket.CLOSED) {
      health.terminate();
      await once(health, 'close');
    }
    health = null;
    if (wss) {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve()));
    }
    wss = null;
  });

  it(`${SECONDS} s of connections ended every way: no fd leak, bounded RSS, the server still answers`, async function () {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    const server = { connections: 0, closes: {}, errors: {} };
    wss.on('connection', (ws) => {
      server.connections++;
      ws.on('error', (err) => {
        const key = err.code || err.message;
        server.errors[key] = (server.errors[key] || 0) + 1;
      });
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', (code) => {
        server.closes[code] = (server.closes[code] || 0) + 1;
      });
    });
    const url = `ws://127.0.0.1:${wss.address().port}`;

    await primeLoop();
    await sleep(200);
    const before = measure();

    child = new LoadChild('churn-client.js', [url, SECONDS, RATE, INFLIGHT]);
    let half = null;
    const halfTimer = setTimeout(() => {
      half = measure();
    }, (SECONDS * 1000) / 2);
    const [, json] = await child.waitFor(/result (.*)\n/, (SECONDS + 60) * 1000);
    clearTimeout(halfTimer);
    const result = await child.exitWithin(10000);
    assert.equal(result.code, 0, child.describe());
    const stats = JSON.parse(json);
    assert.equal(stats.failures, 0, child.describe());
    assert.equal(child.stderr, '');
    assert.equal(stats.completed, stats.started);
    child = null;

    await until(
      () => wss.clients.size === 0,
      10000,
      () => `wss.clients.size ${wss.clients.size}`
    );
    // Every upgraded connection is one of midmessage, close or terminate
    // (connect and handshake never reach 'connection').
    const { byMode } = stats;
    assert.equal(server.connections, byMode.midmessage + byMode.close + byMode.terminate);
    assert.equal(server.closes[1000], byMode.close);
    assert.equal(server.closes[1006], byMode.midmessage + byMode.terminate);

    await until(() => countFds() <= before.fds, 5000, () => '').catch(() => {});
    await sleep(1000);
    const after = measure();
    const fdDelta = after.fds - before.fds;
    const rssDelta = after.rss - before.rss;
    console.log(
      `      churn: ${stats.completed} connections in ${(stats.ms / 1000).toFixed(1)} s, ` +
        `fd delta ${fdDelta}, RSS delta ${mb(rssDelta)} MB (${IMPL_LABEL})`
    );
    console.log(
      `      churn: by mode ${JSON.stringify(byMode)}; server saw ${server.connections} ` +
        `connections, closes ${JSON.stringify(server.closes)}, errors ${JSON.stringify(server.errors)}; ` +
        `RSS ${mb(before.rss)} -> ${half ? mb(half.rss) : '?'} at ${SECONDS / 2} s -> ${mb(after.rss)} MB, ` +
        `fds ${before.fds} -> ${after.fds}`
    );

    assert.ok(
      stats.completed >= RATE * SECONDS * 0.5,
      `only ${stats.completed} connections in ${SECONDS} s`
    );
    assert.ok(
      Math.abs(fdDelta) <= FD_TOLERANCE,
      `fds ${before.fds} before, ${after.fds} after`
    );
    assert.ok(rssDelta < RSS_BOUND, `RSS grew by ${mb(rssDelta)} MB`);
    assert.ok(half, 'no RSS sample at half time');
    assert.ok(
      after.rss - half.rss < RSS_SECOND_HALF_BOUND,
      `RSS grew by ${mb(after.rss - half.rss)} MB over the second half`
    );

    // The server still answers.
    health = new PeerWebSocket(url);
    await once(health, 'open');
    const echo = once(health, 'message');
    health.send('still there?');
    const [data] = await echo;
    assert.equal(data.toString(), 'still there?');
    health.close(1000);
    const [code] = await once(health, 'close');
    assert.equal(code, 1000);
    await until(() => wss.clients.size === 0, 5000, () => `wss.clients.size ${wss.clients.size}`);
  });
});
