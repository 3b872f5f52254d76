'use strict';

// Helpers of the load and lifetime suite (npm run test:load): process
// measurements read from /proc, polling, and child processes that speak a
// line protocol on stdin/stdout (fixtures in test/fixtures/load/).

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { isNative } = require('../helpers/impl');

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'load');

// "ws-native", "ws-native, loop=main" or "ws": which implementation the
// figures printed by the suite belong to.
const IMPL_LABEL = isNative
  ? process.env.WS_NATIVE_LOOP === 'main'
    ? 'ws-native, loop=main'
    : 'ws-native'
  : 'ws';

// The soft limit on open files of this process (Node has no getrlimit).
function fdLimit() {
  const limits = fs.readFileSync('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

// Open file descriptors of this process (the directory handle readdir opens
// is counted every time, so differences are exact).
function countFds() {
  return fs.readdirSync('/proc/self/fd').length;
}

function gc() {
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
}

// RSS and fd count, after a full GC when --expose-gc is on.
function measure() {
  gc();
  return { rss: process.memoryUsage.rss(), fds: countFds() };
}

// libuv opens /dev/null once per loop, and keeps it, the first time a stream
// (TCP or pipe) is created on that loop: its reserve fd for EMFILE. With
// ws-native in thread mode nothing may have done so on Node's own loop yet
// (sockets live on the I/O thread's loop; a stdout redirected to a file is
// no stream), and the first child process's stdio pipes would then add one
// fd for good. Creating a stream before taking a baseline keeps the counts
// exact.
async function primeLoop() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise((resolve) => server.close(resolve));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `predicate` every `interval` ms until it is true; rejects with
// `what()` after `ms`.
async function until(predicate, ms, what, interval = 20) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms: ${what ? what() : ''}`);
    }
    await sleep(interval);
  }
}

const mb = (bytes) => (bytes / (1024 * 1024)).toFixed(1);

// A fixture of test/fixtures/load/ in a child Node.js process (the parent's
// environment, so WSN_TEST_IMPL and WS_NATIVE_LOOP carry through). With
// `raiseFdLimit`, it is started through bash after `ulimit -S -n` up to the
// hard limit.
class LoadChild {
  constructor(fixture, args = [], { raiseFdLimit = false } = {}) {
    this.stdout = '';
    this.stderr = '';
    this.started = Date.now();
    const node = [process.execPath, path.join(FIXTURES, fixture), ...args];
    const [file, argv] = raiseFdLimit
      ? [
          'bash',
          [
            '-c',
            'ulimit -S -n "$(ulimit -H -n)" 2>/dev/null; exec "$0" "$@"',
            ...node
          ]
        ]
      : [node[0], node.slice(1)];
    this.proc = spawn(file, argv, {
      env: { ...process.env },
      stdio: ['pipe', 'pipe', 'pipe']
    });
    this.proc.stdin.on('error', () => {}); // EPIPE if the child died
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      this.stdout += chunk;
    });
    this.proc.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    // 'close' comes after 'exit' once stdout and stderr are fully read (and
    // so once the parent's ends of the pipes are closed).
    this.closed = new Promise((resolve, reject) => {
      this.proc.on('error', reject);
      this.proc.on('close', (code, signal) => {
        resolve({ code, signal, ms: Date.now() - this.started });
      });
    });
  }

  describe() {
    const tail = (s) => (s.length > 4000 ? `...${s.slice(-4000)}` : s);
    return `\n--- stdout ---\n${tail(this.stdout)}\n--- stderr ---\n${tail(this.stderr)}`;
  }

  send(line) {
    this.proc.stdin.write(`${line}\n`);
  }

  // Resolves with the match once stdout matches `re`; rejects if the child
  // exits first or after `ms`.
  waitFor(re, ms) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        this.proc.stdout.off('data', onData);
        this.proc.off('close', onClose);
      };
      const onData = () => {
        const match = re.exec(this.stdout);
        if (match) {
          done();
          resolve(match);
        }
      };
      const onClose = () => {
        // Let the last 'data' events arrive first.
        setImmediate(() => {
          const match = re.exec(this.stdout);
          done();
          if (match) resolve(match);
          else reject(new Error(`child exited before printing ${re}${this.describe()}`));
        });
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`child did not print ${re} within ${ms} ms${this.describe()}`));
      }, ms);
      this.proc.stdout.on('data', onData);
      this.proc.on('close', onClose);
      onData();
    });
  }

  // Resolves with the exit result if the child exits within `ms`; otherwise
  // kills it and rejects.
  exitWithin(ms) {
    let timer;
    const deadline = new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`child did not exit within ${ms} ms${this.describe()}`));
      }, ms);
    });
    return Promise.race([this.closed, deadline]).finally(() => clearTimeout(timer));
  }

  // SIGKILL if still running; resolves once it is gone and its pipes closed.
  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
    }
    return this.closed.catch(() => {});
  }
}

module.exports = {
  IMPL_LABEL,
  LoadChild,
  countFds,
  fdLimit,
  gc,
  mb,
  measure,
  primeLoop,
  sleep,
  until
};
