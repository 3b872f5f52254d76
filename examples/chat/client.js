'use strict';

// A terminal client for examples/chat/server.js: each line typed on stdin is
// sent as a text message, and everything that arrives is printed.
//
//   node examples/chat/client.js [url]     (default ws://localhost:3000/chat)

const readline = require('node:readline');

const { WebSocket } = require('../..');

const url = process.argv[2] || 'ws://localhost:3000/chat';

// Offer both subprotocols; the server picks superchat when it can.
const ws = new WebSocket(url, ['superchat', 'chat']);

// terminal: false keeps readline from echoing input a second time and
// makes piped input (e.g. `echo hi | node client.js`) behave the same.
const rl = readline.createInterface({ input: process.stdin, terminal: false });

// Lines typed before the handshake completes are held back, since send()
// throws while the socket is still connecting.
const pending = [];
let inputEnded = false;

/**
 * Sends a line, or queues it until the connection is open.
 *
 * @param {string} line The text to send
 */
function sendLine(line) {
  if (ws.readyState === WebSocket.OPEN) {
    ws.send(line);
  } else if (ws.readyState === WebSocket.CONNECTING) {
    pending.push(line);
  }
}

ws.on('open', () => {
  console.error(`Connected to ${url} (subprotocol ${ws.protocol || 'none'})`);
  for (const line of pending.splice(0)) ws.send(line);
  if (inputEnded) ws.close(1000);
});

ws.on('message', (data, isBinary) => {
  // Text arrives as a Buffer; binary is shown by size rather than dumped
  // onto the terminal.
  console.log(isBinary ? `<binary, ${data.length} bytes>` : data.toString());
});

ws.on('close', (code, reason) => {
  console.error(`Disconnected (${code}${reason.length ? ` ${reason}` : ''})`);
  // Stop reading stdin so the process can exit.
  rl.close();
});

ws.on('error', (err) => {
  // 'close' follows, which ends the process.
  console.error(`Error: ${err.message}`);
});

rl.on('line', sendLine);

rl.on('close', () => {
  // End of input (Ctrl-D or end of a pipe): leave the room politely, once
  // whatever was queued has gone out.
  inputEnded = true;
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
});
