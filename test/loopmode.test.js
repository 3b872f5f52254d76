'use strict';

// Which loop runs the sockets (ws-native only; ws has one loop): the I/O
// thread when the process may use more than one CPU, Node's main loop when
// it may use one (taskset), and WS_NATIVE_LOOP=main|thread overrides both.
// The fixture reports how many threads starting a server added.

const assert = require('assert');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const { isNative } = require('./helpers/impl');

const FIXTURE = path.join(__dirname, 'fixtures', 'loopmode', 'threads.js');

function threadsAdded(env, cpus) {
  const args = cpus ? ['-c', cpus, process.execPath, FIXTURE] : [FIXTURE];
  const r = spawnSync(cpus ? 'taskset' : process.execPath, args, {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20000
  });
  assert.strictEqual(r.status, 0, r.stderr);
  const m = /added (-?\d+)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return Number(m[1]);
}

describe('loop mode by CPUs (ws-native only)', function () {
  before(function () {
    if (!isNative) this.skip(); // ws has no I/O thread
  });

  it('one CPU (taskset -c 0): Node\'s main loop, no thread added', function () {
    assert.strictEqual(threadsAdded({ WS_NATIVE_LOOP: '' }, '0'), 0);
  });

  it('one CPU, WS_NATIVE_LOOP=thread: the I/O thread all the same', function () {
    assert.strictEqual(threadsAdded({ WS_NATIVE_LOOP: 'thread' }, '0'), 1);
  });

  it('more CPUs: the I/O thread; WS_NATIVE_LOOP=main: none', function () {
    // On a machine that gives this process one CPU there is nothing to see.
    if (os.availableParallelism() < 2) this.skip();
    assert.strictEqual(threadsAdded({ WS_NATIVE_LOOP: '' }), 1);
    assert.strictEqual(threadsAdded({ WS_NATIVE_LOOP: 'main' }), 0);
  });
});

describe('stopping the loop', function () {
  this.timeout(30000);

  // A worker's environment cleanup stops its loop; in main-loop mode that
  // stop waited for the listener of a server closed earlier (its
  // connections still open) to close again, so it never finished and the
  // terminated worker never exited. Runs in both loop modes (and against
  // ws, where the worker simply exits).
  for (const mode of ['main', 'thread']) {
    it(`a worker whose server was closed with a client still connected exits when terminated (${mode} loop)`, function () {
      const r = spawnSync(
        process.execPath,
        [path.join(__dirname, 'fixtures', 'loopmode', 'stop-closed-server.js')],
        {
          env: { ...process.env, WS_NATIVE_LOOP: mode },
          encoding: 'utf8',
          timeout: 15000
        }
      );
      assert.strictEqual(r.signal, null, 'the worker never exited');
      assert.strictEqual(r.status, 0, r.stderr);
      assert.match(r.stdout, /exited 1/);
    });
  }
});
