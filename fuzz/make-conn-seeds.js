'use strict';

// Writes hand-made seeds for fuzz_conn into fuzz/corpus/fuzz_conn/seed-*:
// the handshakes a fuzzer is slow to spell (requests a server refuses in
// each of ws's ways, responses a client refuses, early frames while JS
// decides), each as a short script. The layout of an input is in the top
// comment of fuzz_conn.c: six configuration bytes, then operations.
//
//   node fuzz/make-conn-seeds.js

const fs = require('fs');
const path = require('path');

const dir = path.join(__dirname, 'corpus', 'fuzz_conn');
fs.mkdirSync(dir, { recursive: true });

// Operations (see run_script in fuzz_conn.c).
const peerBytes = (text) => {
  const out = [];
  const buf = Buffer.from(text, 'latin1');
  for (let i = 0; i < buf.length; i += 256) {
    const part = buf.subarray(i, i + 256);
    out.push(0x00, part.length - 1, ...part);
  }
  return out;
};
const iterate = (n) => [0x0a | ((n - 1) << 4)];
const deliver = () => [0x09];
const accept = () => [0x0c];
const reject = () => [0x1c];
const tick = (n) => [0x0b | ((n - 1) << 4)];
// Topics: op 13 with p 14 toggles the subscription, p 15 publishes
// (flags byte: 1 binary, 2 compress, 4 maxBackpressure 0, 8 from itself).
const subscribe = () => 0xed;
const publish = (flags, text) => [0xfd, flags, text.length, ...Buffer.from(text)];
// A masked text frame from a client peer (opcode 1, FIN).
const peerText = (len) => [0x01, 0x01, len];
const peerPing = (len) => [0x01, 0x04, len];

// c0: role | needsJs << 2 | pmd << 3 | raw << 4; c1: maxPayload index 5
// (65535) | handshakeTimeout << 7; c2: read size index 9 (128 bytes).
const config = ({ role = 0, needsJs = 0, pmd = 0, raw = 1, timeout = 0,
  verifyAsync = 0, keepRaw = 0, rejectJs = 0, host = 0 } = {}) => [
  role | (needsJs << 2) | (pmd << 3) | (raw << 4),
  0x05 | (timeout << 7),
  0x90,
  (verifyAsync << 5) | (keepRaw << 6) | (rejectJs << 7),
  0,
  host << 3
];

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const request = (lines, target = '/chat') =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.join('\r\n')}\r\n\r\n`;
const upgrade = [
  'Upgrade: websocket',
  'Connection: Upgrade',
  `Sec-WebSocket-Key: ${KEY}`,
  'Sec-WebSocket-Version: 13'
];

const seeds = {
  // Server refusals, each of ws's kinds.
  'no-upgrade-426': [...config(), ...peerBytes(request(['Accept: */*'])), ...iterate(4)],
  'bad-version-400': [...config(), ...peerBytes(request([...upgrade.slice(0, 3),
    'Sec-WebSocket-Version: 12'])), ...iterate(4)],
  'bad-key-400': [...config(), ...peerBytes(request(['Upgrade: websocket',
    'Connection: Upgrade', 'Sec-WebSocket-Key: short',
    'Sec-WebSocket-Version: 13'])), ...iterate(4)],
  'wrong-path-400': [...config(), ...peerBytes(request(upgrade, '/other?x=1')), ...iterate(4)],
  'bad-protocol-400': [...config(), ...peerBytes(request([...upgrade,
    'Sec-WebSocket-Protocol: a,,b'])), ...iterate(4)],
  'post-method-400': [...config(), ...peerBytes(request(upgrade).replace('GET', 'POST')),
    ...iterate(4)],
  'not-http-400': [...config(), ...peerBytes('HELLO\r\n\r\n'), ...iterate(4)],
  'slow-request-408': [...config({ timeout: 1 }), ...peerBytes('GET /chat HTTP/1.1\r\n'),
    ...tick(8), ...tick(8), ...iterate(2)],
  // Accepted, with the first protocol chosen, then frames.
  'protocols-accepted': [...config(), ...peerBytes(request([...upgrade,
    'Sec-WebSocket-Protocol: chat, superchat'])), ...iterate(2),
  ...peerText(5), 0x68, 0x65, 0x6c, 0x6c, 0x6f, ...peerPing(2), 0x61, 0x62,
  ...iterate(3), ...deliver()],
  // verifyClient: answered later, with frames sent before the 101.
  'early-frames-while-js-decides': [...config({ needsJs: 1, verifyAsync: 1 }),
    ...peerBytes(request(upgrade)), ...iterate(2),
    ...peerText(3), 0x61, 0x62, 0x63, ...iterate(2), ...accept(), ...iterate(3)],
  'js-rejects': [...config({ needsJs: 1, verifyAsync: 1 }), ...peerBytes(request(upgrade)),
    ...iterate(2), ...reject(), ...iterate(3)],
  'js-accepts-deflate': [...config({ needsJs: 1, pmd: 1, raw: 0 }), ...iterate(3),
    ...peerText(4), 0x74, 0x65, 0x73, 0x74, ...iterate(3)],
  // Listening on every address and on a name.
  'listen-any': [...config({ raw: 0, host: 1 }), ...iterate(3)],
  'listen-by-name': [...config({ raw: 0, host: 2 }), ...iterate(4)],
  // Client: responses it refuses, and one whose body it reads.
  'client-not-101-body': [...config({ role: 3, keepRaw: 1 }),
    ...peerBytes('HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!'),
    ...iterate(4), 0x03, ...iterate(3)],
  'client-bad-accept': [...config({ role: 3 }),
    ...peerBytes('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n' +
      'Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n'),
    ...iterate(4)],
  'client-not-http': [...config({ role: 3 }), ...peerBytes('SSH-2.0-OpenSSH\r\n\r\n'),
    ...iterate(4)],
  // Topics: subscribe, publish (text; binary compressed; from the
  // subscriber itself; past a maxBackpressure of 0 behind a send),
  // unsubscribe, publish to nobody.
  'topics-publish': [...config({ raw: 0 }), ...iterate(3), ...deliver(), subscribe(),
    ...publish(0x00, 'hello'), ...iterate(2), ...publish(0x08, 'self'),
    0x04, 0x00, 3, 0x61, 0x62, 0x63, ...publish(0x04, 'full'), ...iterate(2), ...deliver(),
    subscribe(), ...publish(0x00, 'nobody'), ...iterate(2)],
  'topics-deflate': [...config({ needsJs: 1, pmd: 1, raw: 0 }), ...iterate(3), ...deliver(),
    subscribe(), ...publish(0x03, 'compressed '.repeat(8)), ...publish(0x02, 'again'),
    ...iterate(3)]
};

for (const [name, bytes] of Object.entries(seeds)) {
  fs.writeFileSync(path.join(dir, `seed-${name}`), Buffer.from(bytes));
}
console.log(`${Object.keys(seeds).length} seeds in ${path.relative(process.cwd(), dir)}`);
