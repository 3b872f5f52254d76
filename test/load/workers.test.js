'use strict';

// worker_threads: four workers at once, each loading the implementation
// under test and running its own server and clients
// (test/fixtures/load/worker.js). They either all end by themselves, or one
// of them is stopped with worker.terminate() in the middle of traffic both
// ways while the others go on exchanging and then finish; the terminated
// worker's connections must be seen closed (1006) by the real ws in this
// thread, and this process must stay healthy (and mocha exit by itself).

const assert = require('node:assert/strict');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');

const {
  PeerWebSocket,
  PeerWebSocketServer,
  WebSocket
} = require('../helpers/impl');
const { sleep } = require('./util');

const SCRIPT = path.join(__dirname, '..', 'fixtures', 'load', 'worker.js');
const CLIENTS = 4;
const WINDOW = 8;
const ROUNDS = 2000;
const TARGET_CLIENTS = 3; // the target's clients, connected to this thread
const TARGET_SERVER_CONNECTIONS = 3; // this thread's clients of the target
const TERMINATE_ROUNDS = 5;

// A worker and the messages it posts, queued until waited for.
class WorkerHandle {
  constructor(name, workerData) {
    this.name = name;
    this.messages = [];
    this.waiters = [];
    this.worker = new Worker(SCRIPT, { workerData });
    this.exited = new Promise((resolve) => {
      this.worker.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
    });
    this.worker.on('error', (err) => this.push({ type: 'failed', error: err.stack }));
    this.worker.on('message', (message) => this.push(message));
  }

  push(message) {
    this.messages.push(message);
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  // Resolves with the first queued message of `type` (removing it); rejects
  // if the worker reports a failure, exits, or after `ms`.
  next(type, ms = 20000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no '${type}' within ${ms} ms`));
      }, ms);
      const check = () => {
        const failed = this.messages.find((m) => m.type === 'failed');
        const i = this.messages.findIndex((m) => m.type === type);
        if (failed) {
          clearTimeout(timer);
          reject(new Error(`${this.name} failed: ${failed.error}`));
        } else if (i >= 0) {
          clearTimeout(timer);
          resolve(this.messages.splice(i, 1)[0]);
        } else if (this.exitCode !== undefined) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited (${this.exitCode}) before '${type}'`));
        } else {
          this.waiters.push(check);
        }
      };
      this.exited.then(() => this.push({ type: 'exit' }));
      check();
    });
  }

  async exitWithin(ms) {
    let timer;
    const deadline = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([this.exited, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function exchangeWorker(i, rounds) {
  return new WorkerHandle(`worker ${i}`, {
    mode: 'exchange',
    clients: CLIENTS,
    window: WINDOW,
    rounds
  });
}

// The main thread's side of the target's connections: counts what it
// receives and sends 1 KiB messages of its own, keeping up to 64 KiB
// buffered, while open. Resolves `peer.closed` with the close code.
function peer(ws) {
  const chunk = Buffer.alloc(1024, 0x62);
  const state = { ws, received: 0, errors: [] };
  state.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', (err) => state.errors.push(err));
  ws.on('message', () => state.received++);
  (function pump() {
    if (ws.readyState > PeerWebSocket.OPEN) return;
    if (ws.readyState === PeerWebSocket.OPEN) {
      for (let i = 0; i < 16 && ws.bufferedAmount < 64 * 1024; i++) ws.send(chunk);
    }
    setImmediate(pump);
  })();
  return state;
}

async function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('load: worker threads', function () {
  let handles = [];
  let peerServer = null;
  let peers = [];

  afterEach(async function () {
    await Promise.all(handles.map((h) => h.worker.terminate()));
    handles = [];
    for (const p of peers) if (p.ws.readyState !== PeerWebSocket.CLOSED) p.ws.terminate();
    await Promise.all(peers.map((p) => p.closed));
    peers = [];
    if (peerServer) await new Promise((resolve) => peerServer.close(() => resolve()));
    peerServer = null;
  });

  it('four workers exchange messages at once and all end by themselves', async function () {
    handles = [0, 1, 2, 3].map((i) => exchangeWorker(i, ROUNDS));
    const results = await Promise.all(handles.map((h) => h.next('done', 60000)));
    const codes = await Promise.all(handles.map((h) => h.exitWithin(10000)));
    assert.deepEqual(codes, [0, 0, 0, 0]);
    for (const result of results) {
      assert.equal(result.echoed, CLIENTS * ROUNDS);
      assert.deepEqual(result.closes, { 1000: CLIENTS });
      assert.deepEqual(result.errors, []);
    }
  });

  for (let round = 1; round <= TERMINATE_ROUNDS; round++) {
    it(`one of four terminated mid-traffic, the others finish; its peers see 1006 (round ${round})`, async function () {
      peerServer = new PeerWebSocketServer({ port: 0, host: '127.0.0.1' });
      await once(peerServer, 'listening');
      peerServer.on('connection', (ws) => peers.push(peer(ws)));

      const target = new WorkerHandle('target', {
        mode: 'target',
        clients: TARGET_CLIENTS,
        peerUrl: `ws://127.0.0.1:${peerServer.address().port}`,
        serverConnections: TARGET_SERVER_CONNECTIONS
      });
      const others = [1, 2, 3].map((i) => exchangeWorker(i, 0));
      handles = [target, ...others];

      const { port } = await target.next('listening');
      for (let i = 0; i < TARGET_SERVER_CONNECTIONS; i++) {
        peers.push(peer(new PeerWebSocket(`ws://127.0.0.1:${port}`)));
      }
      await Promise.all(handles.map((h) => h.next('flowing')));
      assert.equal(peers.length, TARGET_CLIENTS + TARGET_SERVER_CONNECTIONS);
      while (!peers.every((p) => p.received >= 50)) await sleep(5);

      // Mid-traffic, at a slightly different moment each round.
      await sleep(Math.floor(Math.random() * 30));
      const code = await within(target.worker.terminate(), 10000, 'worker.terminate()');
      assert.equal(code, 1);

      const closeCodes = await within(
        Promise.all(peers.map((p) => p.closed)),
        10000,
        "the target's connections closing"
      );
      assert.deepEqual(closeCodes, peers.map(() => 1006));
      for (const p of peers) assert.deepEqual(p.errors, []);

      // The others are still exchanging: their counts go on rising.
      for (const h of others) h.worker.postMessage('mark');
      const marks = await Promise.all(others.map((h) => h.next('count')));
      await sleep(300);
      for (const h of others) h.worker.postMessage('finish');
      const results = await Promise.all(others.map((h) => h.next('done', 30000)));
      const codes = await Promise.all(others.map((h) => h.exitWithin(10000)));
      assert.deepEqual(codes, [0, 0, 0]);
      results.forEach((result, i) => {
        assert.ok(
          result.echoed > marks[i].echoed,
          `worker ${i + 1}: ${marks[i].echoed} echoes after the terminate, ${result.echoed} at the end`
        );
        assert.deepEqual(result.closes, { 1000: CLIENTS });
        assert.deepEqual(result.errors, []);
      });

      // This thread can still use the implementation (the peer server sends
      // it messages at once, as to every connection).
      const ws = new WebSocket(`ws://127.0.0.1:${peerServer.address().port}`);
      ws.on('error', () => {});
      const [data] = await once(ws, 'message');
      assert.equal(data.length, 1024);
      ws.close(1000);
      const [closeCode] = await once(ws, 'close');
      assert.equal(closeCode, 1000);
    });
  }
});
