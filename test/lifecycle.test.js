'use strict';

// Process and thread lifecycle: the implementation must never keep a process
// alive once everything is closed, never hang or crash on process.exit() or
// an uncaught exception, and work inside worker threads. Each scenario runs
// in a child Node.js process (test/fixtures/lifecycle/), which loads the
// implementation under test through test/helpers/impl.js by absolute path and
// inherits WSN_TEST_IMPL through its environment.

const assert = require('node:assert/strict');
const { once } = require('node:events');

const { PeerWebSocket, PeerWebSocketServer } = require('./helpers/impl');
const { Child } = require('./helpers/child');
const {
  Tracker,
  blast,
  closed,
  next,
  recordErrors
} = require('./helpers/interop');

// How long a child may take to exit by itself. It normally needs well under
// a second; this only has to be finite.
const EXIT_DEADLINE = 5000;

// What a crash in native code (rather than a JavaScript exception) looks like.
const NATIVE_CRASH =
  /Segmentation fault|FATAL ERROR|Aborted|core dumped|Assertion .*failed|napi_fatal_error/i;

describe('lifecycle: child processes and worker threads', function () {
  let t;

  beforeEach(function () {
    t = new Tracker();
  });

  afterEach(function () {
    return t.cleanup();
  });

  function spawnChild(fixture, args) {
    const child = new Child(fixture, args);
    t.child(child.proc);
    return child;
  }

  // Waits until `ws` has received `count` messages.
  function receiveMessages(ws, count) {
    return new Promise((resolve) => {
      let received = 0;
      ws.on('message', function onMessage() {
        if (++received === count) {
          ws.off('message', onMessage);
          resolve();
        }
      });
    });
  }

  describe('a process that closes everything it opened exits on its own', function () {
    const scenarios = [
      ['client-closes', 'the client closes the connection', 'done 1000'],
      ['server-closes', 'the server side closes the connection', 'done 1001'],
      ['terminate', 'the client terminates the connection', 'done 1006'],
      ['idle-server', 'a server without connections is closed', 'done closed'],
      [
        'connection-refused',
        'a client connection is refused',
        'done 1006 ECONNREFUSED'
      ]
    ];

    for (const [mode, title, expected] of scenarios) {
      it(`with code 0 after ${title}`, async function () {
        const child = spawnChild('clean-exit.js', [mode]);

        const result = await child.exitWithin(EXIT_DEADLINE);
        assert.equal(result.signal, null, child.describe());
        assert.equal(result.code, 0, child.describe());
        assert.equal(result.stdout, `${expected}\n`, child.describe());
        assert.equal(result.stderr, '');
      });
    }
  });

  describe('a child killed with SIGKILL in the middle of heavy traffic', function () {
    it('with our client in the child: the real server sees 1006', async function () {
      const { wss, url } = await t.listen(PeerWebSocketServer);
      const connection = next(wss, 'connection');
      const child = spawnChild('heavy-client.js', [url]);
      const [peer] = await connection;
      recordErrors(peer);
      const receiving = receiveMessages(peer, 20);
      blast(peer);
      await receiving;
      await child.waitForOutput(/receiving/);

      child.proc.kill('SIGKILL');

      const [result, peerClose] = await Promise.all([
        child.closed,
        closed(peer)
      ]);
      assert.equal(result.signal, 'SIGKILL');
      assert.equal(peerClose.code, 1006);
      assert.equal(wss.clients.size, 0);
    });

    it('with our server in the child: the real client sees 1006', async function () {
      const child = spawnChild('heavy-server.js');
      const [, port] = await child.waitForOutput(/port (\d+)/);
      const peer = t.socket(new PeerWebSocket(`ws://127.0.0.1:${port}`));
      recordErrors(peer);
      const receiving = receiveMessages(peer, 20);
      await once(peer, 'open');
      blast(peer);
      await receiving;
      await child.waitForOutput(/receiving/);

      child.proc.kill('SIGKILL');

      const [result, peerClose] = await Promise.all([
        child.closed,
        closed(peer)
      ]);
      assert.equal(result.signal, 'SIGKILL');
      assert.equal(peerClose.code, 1006);
    });
  });

  describe('process.exit(0) with connections open', function () {
    const scenarios = [
      ['idle', 'with idle connections'],
      ['traffic', 'from a message listener, amid traffic both ways'],
      ['connecting', 'while a client is in its opening handshake']
    ];

    for (const [mode, title] of scenarios) {
      it(`exits with 0 promptly ${title}`, async function () {
        const child = spawnChild('exit-while-open.js', [mode]);

        const result = await child.exitWithin(EXIT_DEADLINE);
        assert.equal(result.signal, null, child.describe());
        assert.equal(result.code, 0, child.describe());
        assert.equal(result.stderr, '');
      });
    }

    it('exits with 0 amid traffic with a real server, which sees 1006', async function () {
      const { wss, url } = await t.listen(PeerWebSocketServer);
      wss.on('connection', (ws) => {
        recordErrors(ws);
        blast(ws);
      });
      const connection = next(wss, 'connection');
      const child = spawnChild('exit-while-open.js', ['remote', url]);
      const [peer] = await connection;

      const [result, peerClose] = await Promise.all([
        child.exitWithin(EXIT_DEADLINE),
        closed(peer)
      ]);
      assert.equal(result.signal, null, child.describe());
      assert.equal(result.code, 0, child.describe());
      assert.equal(result.stderr, '');
      assert.equal(peerClose.code, 1006);
    });
  });

  describe('an uncaught exception with connections open', function () {
    const scenarios = [
      ['message', 'boom from a message listener'],
      ['timer', 'boom from a timer'],
      ['open', 'boom from an open listener'],
      ['connection', 'boom from a connection listener']
    ];

    for (const [mode, message] of scenarios) {
      it(`thrown ${message.replace('boom ', '')}: exit code 1, the error on stderr`, async function () {
        const child = spawnChild('throw-while-open.js', [mode]);

        const result = await child.exitWithin(EXIT_DEADLINE);
        assert.equal(result.signal, null, child.describe());
        assert.equal(result.code, 1, child.describe());
        assert.ok(
          result.stderr.includes(`Error: ${message}`),
          `stderr lacks the thrown error${child.describe()}`
        );
        assert.doesNotMatch(result.stderr, NATIVE_CRASH);
      });
    }
  });

  describe('worker threads', function () {
    it('a worker opens, exchanges, closes and ends; the process exits on its own', async function () {
      const child = spawnChild('worker-host.js', ['clean']);

      const result = await child.exitWithin(EXIT_DEADLINE);
      assert.equal(result.signal, null, child.describe());
      assert.equal(result.code, 0, child.describe());
      assert.equal(result.stdout, 'done exit 0 closed:1000\n');
      assert.equal(result.stderr, '');
    });

    it('two workers doing so at the same time', async function () {
      const child = spawnChild('worker-host.js', ['parallel']);

      const result = await child.exitWithin(EXIT_DEADLINE);
      assert.equal(result.signal, null, child.describe());
      assert.equal(result.code, 0, child.describe());
      assert.equal(
        result.stdout,
        'done exit 0 closed:1000 | exit 0 closed:1000\n'
      );
      assert.equal(result.stderr, '');
    });

    it('a worker terminated with connections open; the process exits on its own', async function () {
      const child = spawnChild('worker-host.js', ['terminate']);

      const result = await child.exitWithin(EXIT_DEADLINE);
      assert.equal(result.signal, null, child.describe());
      assert.equal(result.code, 0, child.describe());
      // worker.terminate() makes the worker's exit code 1.
      assert.equal(result.stdout, 'done exit 1 open\n');
      assert.equal(result.stderr, '');
    });
  });
});
