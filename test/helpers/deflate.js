'use strict';

// permessage-deflate (RFC 7692) by hand, for tests that look at the wire:
// compress a message as a sender does, inflate frame payloads as a receiver
// does, with or without a context shared between messages; and ws 8.23.1's
// negotiation rules written out (the offer a client makes for its options,
// the answer a server gives), so that a table of options can state what must
// be agreed. Uses Node's zlib only, never the implementation under test.

const crypto = require('crypto');
const zlib = require('zlib');

const { Z_SYNC_FLUSH } = zlib.constants;

// Inflate into small output chunks: zlib resolves a back reference from the
// output buffer when it can and only then from its window, so a reference
// farther back than the window is an error ("invalid distance too far back")
// only when it reaches before the current output chunk. Small chunks make
// inflation with `windowBits` strict.
const CHUNK = 1024;
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const NAME = 'permessage-deflate';

/**
 * One message compressed on its own (a fresh context), as the payload of
 * its frame: raw deflate, sync flush, the 4-byte 00 00 ff ff tail removed.
 */
function deflateMessage(data, options = {}) {
  const out = zlib.deflateRawSync(data, { ...options, finishFlush: Z_SYNC_FLUSH });
  if (!out.subarray(-4).equals(TRAILER)) {
    throw new Error('a sync flush should end with 00 00 ff ff');
  }
  return out.subarray(0, out.length - 4);
}

/**
 * Inflate the payloads of compressed messages sent on one context (each
 * payload is a whole message, its fragments' payloads concatenated), with a
 * window of `windowBits` (strictly, see CHUNK). Returns the messages. With
 * context takeover they must be inflated in order with one inflater;
 * without, each also inflates on its own.
 */
function inflateMessages(payloads, windowBits = 15) {
  const stream = Buffer.concat(payloads.flatMap((p) => [p, TRAILER]));
  const all = zlib.inflateRawSync(stream, {
    finishFlush: Z_SYNC_FLUSH,
    windowBits,
    chunkSize: CHUNK
  });
  const lengths = [];
  // Inflate again one by one on a growing stream to split the output: the
  // length of each message is the growth of the output.
  let previous = 0;
  let prefix = [];
  for (const p of payloads) {
    prefix = prefix.concat([p, TRAILER]);
    const n = zlib.inflateRawSync(Buffer.concat(prefix), {
      finishFlush: Z_SYNC_FLUSH,
      windowBits,
      chunkSize: CHUNK
    }).length;
    lengths.push(n - previous);
    previous = n;
  }
  const messages = [];
  let off = 0;
  for (const n of lengths) {
    messages.push(all.subarray(off, off + n));
    off += n;
  }
  return messages;
}

/** One message's payload inflated on its own (no shared context). */
function inflateMessage(payload, windowBits = 15) {
  return zlib.inflateRawSync(Buffer.concat([payload, TRAILER]), {
    finishFlush: Z_SYNC_FLUSH,
    windowBits,
    chunkSize: CHUNK
  });
}

/**
 * A deflater that keeps its context between messages (context takeover),
 * as a sender without *_no_context_takeover does.
 */
class StreamDeflater {
  constructor(options = {}) {
    this.z = zlib.createDeflateRaw(options);
    this.chunks = [];
    this.z.on('data', (c) => this.chunks.push(c));
  }

  /**
   * The payload of the next frame (resolves once flushed). `fin`: the last
   * (or only) fragment of a message, whose flush tail 00 00 ff ff is left
   * out (the receiver appends it); a non-final fragment keeps it.
   */
  compress(data, fin = true) {
    return new Promise((resolve) => {
      this.z.write(data);
      this.z.flush(Z_SYNC_FLUSH, () => {
        const out = Buffer.concat(this.chunks.splice(0));
        resolve(fin ? out.subarray(0, out.length - 4) : out);
      });
    });
  }

  close() {
    this.z.close();
  }
}

/**
 * The parameters ws's client offers for its perMessageDeflate options, in
 * order (PerMessageDeflate#offer), as a Map name -> value (true: no value).
 */
function clientOffer(c) {
  const p = new Map();
  if (c.serverNoContextTakeover) p.set('server_no_context_takeover', true);
  if (c.clientNoContextTakeover) p.set('client_no_context_takeover', true);
  if (c.serverMaxWindowBits) {
    p.set('server_max_window_bits', c.serverMaxWindowBits);
  }
  if (c.clientMaxWindowBits) {
    p.set('client_max_window_bits', c.clientMaxWindowBits);
  } else if (c.clientMaxWindowBits == null) {
    p.set('client_max_window_bits', true);
  }
  return p;
}

/** A parameter Map as a header value. */
function formatParams(params) {
  return [NAME]
    .concat([...params].map(([k, v]) => (v === true ? k : `${k}=${v}`)))
    .join('; ');
}

/**
 * What a ws 8.23.1 server with perMessageDeflate options `s` and a ws client
 * with options `c` agree (RFC 7692 section 7.1 as ws applies it):
 *
 *  - { status: 400 }: the server finds the (only) offer unacceptable;
 *  - { clientError, header }: the server answers `header` and the client
 *    rejects the answer;
 *  - { offer, header, serverBits, clientBits, serverNoContextTakeover,
 *    clientNoContextTakeover }: agreed; *Bits are the windows each side
 *    compresses with.
 */
function expectedAgreement(s, c) {
  const offer = clientOffer(c);
  const offerText = formatParams(offer);

  // Server side (PerMessageDeflate#acceptAsServer).
  if (
    s.serverNoContextTakeover === false &&
    offer.has('server_no_context_takeover')
  ) {
    return { status: 400, offer: offerText };
  }
  const osm = offer.get('server_max_window_bits');
  if (
    osm &&
    (s.serverMaxWindowBits === false ||
      (typeof s.serverMaxWindowBits === 'number' && s.serverMaxWindowBits > osm))
  ) {
    return { status: 400, offer: offerText };
  }
  if (typeof s.clientMaxWindowBits === 'number') {
    const ocm = offer.get('client_max_window_bits');
    if (typeof ocm === 'number' ? s.clientMaxWindowBits > ocm : !ocm) {
      return { status: 400, offer: offerText };
    }
  }

  const answer = new Map(offer);
  if (s.serverNoContextTakeover) answer.set('server_no_context_takeover', true);
  if (s.clientNoContextTakeover) answer.set('client_no_context_takeover', true);
  if (typeof s.serverMaxWindowBits === 'number') {
    answer.set('server_max_window_bits', s.serverMaxWindowBits);
  }
  if (typeof s.clientMaxWindowBits === 'number') {
    answer.set('client_max_window_bits', s.clientMaxWindowBits);
  } else if (
    answer.get('client_max_window_bits') === true ||
    s.clientMaxWindowBits === false
  ) {
    answer.delete('client_max_window_bits');
  }
  const header = formatParams(answer);

  // Client side (PerMessageDeflate#acceptAsClient).
  const acm = answer.get('client_max_window_bits');
  if (
    (c.clientNoContextTakeover === false &&
      answer.has('client_no_context_takeover')) ||
    (acm &&
      (c.clientMaxWindowBits === false ||
        (typeof c.clientMaxWindowBits === 'number' &&
          acm > c.clientMaxWindowBits)))
  ) {
    return {
      clientError: 'Invalid Sec-WebSocket-Extensions header',
      offer: offerText,
      header
    };
  }

  let clientBits = acm;
  if (!clientBits && typeof c.clientMaxWindowBits === 'number') {
    clientBits = c.clientMaxWindowBits;
  }

  return {
    offer: offerText,
    header,
    serverBits: answer.get('server_max_window_bits') || 15,
    clientBits: clientBits || 15,
    serverNoContextTakeover: answer.has('server_no_context_takeover'),
    clientNoContextTakeover: answer.has('client_no_context_takeover')
  };
}

/**
 * Random bytes of 2^bits + 64 repeated to at least 64 KiB: a sender that
 * compresses with a window of `bits` cannot refer back that far, one that
 * uses a larger window does, and a receiver that inflates with `bits` in
 * chunks smaller than the message (ws's zlib streams: 16 KiB; CHUNK here)
 * then fails with "invalid distance too far back".
 */
function windowProbe(bits) {
  const block = crypto.randomBytes(2 ** bits + 64);
  const copies = Math.max(3, Math.ceil(65536 / block.length));
  return Buffer.concat(new Array(copies).fill(block));
}

module.exports = {
  NAME,
  TRAILER,
  StreamDeflater,
  clientOffer,
  deflateMessage,
  expectedAgreement,
  formatParams,
  inflateMessage,
  inflateMessages,
  windowProbe
};
