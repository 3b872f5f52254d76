'use strict';

// Spawning the fixture scripts of test/fixtures/lifecycle/ as child Node.js
// processes, with the parent's environment (so WSN_TEST_IMPL carries through).

const path = require('node:path');
const { spawn } = require('node:child_process');

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'lifecycle');

class Child {
  constructor(fixture, args = []) {
    this.stdout = '';
    this.stderr = '';
    this.started = Date.now();
    this.proc = spawn(process.execPath, [path.join(FIXTURES, fixture), ...args], {
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe']
    });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stderr.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      this.stdout += chunk;
    });
    this.proc.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    // 'close' comes after 'exit' once stdout and stderr are fully read.
    this.closed = new Promise((resolve, reject) => {
      this.proc.on('error', reject);
      this.proc.on('close', (code, signal) => {
        resolve({
          code,
          signal,
          stdout: this.stdout,
          stderr: this.stderr,
          ms: Date.now() - this.started
        });
      });
    });
  }

  describe() {
    return `\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  // Resolves with the exit result if the child exits within `ms`; otherwise
  // kills it with SIGKILL and rejects.
  exitWithin(ms) {
    let timer;
    const deadline = new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        reject(new Error(`child did not exit within ${ms} ms${this.describe()}`));
      }, ms);
    });
    return Promise.race([this.closed, deadline]).finally(() =>
      clearTimeout(timer)
    );
  }

  // Resolves with the match once stdout matches `re`; rejects if the child
  // exits first.
  waitForOutput(re) {
    return new Promise((resolve, reject) => {
      const onData = () => {
        const match = re.exec(this.stdout);
        if (match) {
          done();
          resolve(match);
        }
      };
      const onClose = () => {
        done();
        reject(new Error(`child exited before printing ${re}${this.describe()}`));
      };
      const done = () => {
        this.proc.stdout.off('data', onData);
        this.proc.off('close', onClose);
      };
      this.proc.stdout.on('data', onData);
      this.proc.on('close', onClose);
      onData();
    });
  }
}

module.exports = { Child };
