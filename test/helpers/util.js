'use strict';

// Small async helpers shared by the API and hostile-input tests.

const net = require('net');

/**
 * Resolve with the arguments of the next `event` emitted by `emitter`.
 * Unlike `events.once()`, an 'error' event does not reject.
 */
function waitFor(emitter, event) {
  return new Promise((resolve) => {
    emitter.once(event, (...args) => resolve(args));
  });
}

/**
 * Record the events a WebSocket emits, in order, starting now. Listeners are
 * attached synchronously, so call this in the same tick the socket is created
 * (or, on the server, inside the 'connection' listener).
 *
 * Returns `{ log, errors, messages, error, close }`: `log` is the ordered list
 * of event names, `error` resolves with the first error, `close` with
 * `[code, reasonString]`.
 */
function recordEvents(ws, names = ['open', 'message', 'error', 'close']) {
  const rec = { log: [], errors: [], messages: [] };

  let resolveError;
  let resolveClose;
  rec.error = new Promise((resolve) => (resolveError = resolve));
  rec.close = new Promise((resolve) => (resolveClose = resolve));

  for (const name of names) {
    ws.on(name, (...args) => {
      rec.log.push(name);
      if (name === 'error') {
        rec.errors.push(args[0]);
        rec.readyStateAtError = ws.readyState;
        resolveError(args[0]);
      } else if (name === 'message') {
        rec.messages.push(args);
      } else if (name === 'close') {
        rec.readyStateAtClose = ws.readyState;
        resolveClose([args[0], Buffer.from(args[1]).toString()]);
      }
    });
  }

  return rec;
}

/**
 * Start a server and wait until it is listening. `Ctor` is a WebSocketServer
 * class.
 */
function startServer(Ctor, options = {}) {
  return new Promise((resolve, reject) => {
    const wss = new Ctor({ port: 0, host: '127.0.0.1', ...options });
    wss.once('listening', () => {
      wss.removeListener('error', reject);
      resolve(wss);
    });
    wss.once('error', reject);
  });
}

/**
 * Close a WebSocketServer and every client it tracks; resolves when its
 * 'close' event fired. Safe to call on an already closed server.
 */
function stopServer(wss) {
  if (!wss) return Promise.resolve();
  return new Promise((resolve) => {
    if (wss.clients) for (const c of wss.clients) c.terminate();
    wss.close(() => resolve());
  });
}

/**
 * Terminate a WebSocket if it is not closed yet and wait for its 'close'.
 */
function dispose(ws) {
  if (!ws || ws.readyState === 3) return Promise.resolve();
  return new Promise((resolve) => {
    ws.once('close', () => resolve());
    ws.on('error', () => {});
    ws.terminate();
  });
}

/**
 * A port nothing listens on (it was bound then released).
 */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A list of cleanup functions run (most recent first) by `run()`, typically
 * from `afterEach`, so that a failing test still releases what it opened.
 */
class Cleanup {
  constructor() {
    this.fns = [];
  }

  add(fn) {
    this.fns.push(fn);
    return fn;
  }

  /**
   * Run every cleanup function. Each one gets at most `limitMs`: against a
   * broken implementation a 'close' that never comes must not make the hook
   * fail (a failing root hook would stop the whole run).
   */
  async run(limitMs = 2000) {
    const fns = this.fns.splice(0).reverse();
    for (const fn of fns) {
      let timer;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise((resolve) => {
            timer = setTimeout(resolve, limitMs);
          })
        ]);
      } catch {
        // keep going
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = {
  Cleanup,
  delay,
  dispose,
  freePort,
  recordEvents,
  startServer,
  stopServer,
  waitFor
};
