'use strict';

// Module bindings, not the globals: `Buffer` and `process` are accessor
// properties of globalThis, a getter call on every use in a hot path.
const process = require('process');

// createWebSocketStream(ws, options): a WebSocket as a Duplex stream, with
// ws 8's semantics (ws/lib/stream.js):
//
// - each message is pushed as one chunk (text as a string when the readable
//   side is in object mode); push() returning false pauses the WebSocket,
//   _read() resumes it;
// - each written chunk is sent as one message; writes made while the
//   WebSocket connects wait for 'open';
// - end() closes the WebSocket (the close handshake), and the writable side
//   finishes once the connection is done;
// - destroy() terminates the WebSocket unless it failed on its own (its
//   error already closed it); the stream's 'close' follows the WebSocket's;
// - the WebSocket's 'error' destroys the stream with that error, its 'close'
//   ends the readable side.
//
// ws waits for its net.Socket's 'finish' before calling _final's callback;
// ws-native has no JS socket (the connection lives on the I/O loop), so the
// WebSocket's 'close' stands for it.

const { Duplex } = require('stream');

function emitClose(stream) {
  stream.emit('close');
}

// Both sides are done: release the stream.
function duplexOnEnd() {
  if (!this.destroyed && this._writableState.finished) this.destroy();
}

function duplexOnError(err) {
  this.removeListener('error', duplexOnError);
  this.destroy();
  // With no listener of the user's, the error is thrown, as for any stream.
  if (this.listenerCount('error') === 0) this.emit('error', err);
}

/**
 * Wraps a WebSocket in a Duplex stream.
 *
 * @param {WebSocket} ws
 * @param {Object} [options] Options for the Duplex constructor
 * @return {Duplex}
 */
function createWebSocketStream(ws, options) {
  let terminateOnDestroy = true;
  // Whether `ws` ever got a connection (ws tests `ws._socket !== null`): a
  // client whose handshake failed never did, and ending the stream then
  // waits for the WebSocket's 'error' rather than for a close.
  let connected = ws.readyState !== ws.CONNECTING && !ws._aborted;
  if (!connected) ws.once('open', () => (connected = true));

  // As in ws, only `readableObjectMode` turns object mode on: `objectMode`
  // and `writableObjectMode` are forced off.
  const duplex = new Duplex({
    ...options,
    autoDestroy: false,
    emitClose: false,
    objectMode: false,
    writableObjectMode: false
  });

  ws.on('message', function message(msg, isBinary) {
    const data =
      !isBinary && duplex._readableState.objectMode ? msg.toString() : msg;
    if (!duplex.push(data)) ws.pause();
  });

  ws.once('error', function error(err) {
    if (duplex.destroyed) return;
    // The error already closed the WebSocket, with a close frame where the
    // protocol calls for one: terminating now could cut that frame off.
    terminateOnDestroy = false;
    duplex.destroy(err);
  });

  ws.once('close', function close() {
    if (duplex.destroyed) return;
    duplex.push(null);
  });

  duplex._destroy = function (err, callback) {
    if (ws.readyState === ws.CLOSED) {
      callback(err);
      process.nextTick(emitClose, duplex);
      return;
    }
    let called = false;
    ws.once('error', function error(e) {
      called = true;
      callback(e);
    });
    ws.once('close', function close() {
      if (!called) callback(err);
      process.nextTick(emitClose, duplex);
    });
    if (terminateOnDestroy) ws.terminate();
  };

  duplex._final = function (callback) {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', function open() {
        duplex._final(callback);
      });
      return;
    }
    // The handshake failed: the WebSocket's 'error' destroys the stream.
    if (!connected) return;
    if (ws.readyState === ws.CLOSED) {
      callback();
      if (duplex._readableState.endEmitted) duplex.destroy();
      return;
    }
    // Before the listener above that ends the readable side, so that the
    // writable side has finished when 'end' comes (then duplexOnEnd
    // releases the stream), as with ws's socket 'finish'.
    ws.prependOnceListener('close', function close() {
      callback();
    });
    ws.close();
  };

  duplex._read = function () {
    if (ws.isPaused) ws.resume();
  };

  duplex._write = function (chunk, encoding, callback) {
    if (ws.readyState === ws.CONNECTING) {
      ws.once('open', function open() {
        duplex._write(chunk, encoding, callback);
      });
      return;
    }
    ws.send(chunk, callback);
  };

  duplex.on('end', duplexOnEnd);
  duplex.on('error', duplexOnError);
  return duplex;
}

module.exports = createWebSocketStream;
