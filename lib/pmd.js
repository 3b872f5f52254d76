'use strict';

// permessage-deflate (RFC 7692) glue: option mapping and what a WebSocket
// keeps of an agreement. Negotiation itself is C (src/deflate.c, with ws's
// semantics) and so are compression and decompression, on the I/O loop.

const { binding } = require('./native');

const EXTENSION_NAME = 'permessage-deflate';

/**
 * ws's `perMessageDeflate` option as the array binding.pmd* take, or null
 * when compression is off.
 *
 * @param {(boolean|Object)} option
 * @return {(Array|null)}
 */
function pmdOptions(option) {
  if (!option) return null;
  const o = option === true ? {} : option;
  const deflate = o.zlibDeflateOptions || {};
  for (const name of ['serverMaxWindowBits', 'clientMaxWindowBits']) {
    const v = o[name];
    if (typeof v === 'number' && !(Number.isInteger(v) && v > 0)) {
      // deflate.c takes whole numbers; ws would put this verbatim in a
      // header that no peer accepts.
      throw new RangeError(`Invalid value for ${name}: ${v}`);
    }
  }
  return [
    o.serverNoContextTakeover,
    o.clientNoContextTakeover,
    o.serverMaxWindowBits,
    o.clientMaxWindowBits,
    o.threshold === undefined ? 1024 : o.threshold,
    deflate.level === undefined ? -1 : deflate.level,
    deflate.memLevel,
    deflate.strategy
  ];
}

/**
 * Records an agreement on a WebSocket: `extensions` shows it, and send()
 * decides per message whether to compress, as ws's Sender does.
 *
 * @param {WebSocket} websocket
 * @param {Array} params [serverNCT, clientNCT, serverMWB, clientMWB]
 * @param {Array} options from pmdOptions()
 * @param {boolean} isServer
 */
function applyAgreement(websocket, params, options, isServer) {
  const named = {};
  if (params[0]) named.server_no_context_takeover = true;
  if (params[1]) named.client_no_context_takeover = true;
  if (params[2]) named.server_max_window_bits = params[2];
  if (params[3]) named.client_max_window_bits = params[3];
  websocket._extensions = { [EXTENSION_NAME]: { params: named } };
  // ws applies the threshold only when our own side has no context
  // takeover; otherwise every message is compressed.
  websocket._compressThreshold = params[isServer ? 0 : 1] ? options[4] : 0;
  websocket._compressEnabled = true;
}

/**
 * Server: negotiates an offer. Returns null (no extension), or
 * { header, setup, params } or { error } (ws's 400 message).
 */
function acceptOffer(options, value) {
  const [result, text, setup, params] =
    binding.pmdNegotiate(options, value, true);
  if (result < 0) return { error: text };
  if (result !== 0) return null;
  return { header: text, setup, params };
}

/**
 * Client: checks the 101's answer. Returns { setup, params } or { error }.
 */
function acceptResponse(options, value) {
  const [result, text, setup, params] =
    binding.pmdNegotiate(options, value, false);
  if (result < 0) return { error: text };
  return { setup, params };
}

module.exports = {
  EXTENSION_NAME,
  pmdOptions,
  applyAgreement,
  acceptOffer,
  acceptResponse
};
