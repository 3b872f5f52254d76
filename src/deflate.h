/*
 * permessage-deflate (RFC 7692). Pure: no sockets, threads or N-API.
 *
 * Two halves:
 *
 * 1. Negotiation, with ws 8.23.1's semantics (lib/permessage-deflate.js and
 *    lib/extension.js), because a drop-in must accept, refuse and answer the
 *    same handshakes byte for byte:
 *    - server: wsn_pmd_accept_offer() parses a request's
 *      Sec-WebSocket-Extensions value and picks the first acceptable
 *      permessage-deflate offer; wsn_pmd_format() renders the response value;
 *    - client: wsn_pmd_offer() renders the request value,
 *      wsn_pmd_accept_response() checks the server's answer.
 *    Errors come back as a code, the message ws shows the user, and the
 *    message ws threw internally (which ws itself swallows; kept for logs
 *    and tests).
 *
 * 2. The codec of one connection (wsn_pmd_codec_t): raw deflate with
 *    Z_SYNC_FLUSH and the 00 00 ff ff tail removed (RFC 7692 7.2.1), and an
 *    incremental inflater with a hard limit on the inflated size. zlib state
 *    is allocated on first use, so a connection that negotiated the
 *    extension but sends nothing compressed costs only this struct.
 *
 * zlib comes from the node binary in the addon (DESIGN.md: one copy per
 * process) and from the system's libz in test/c. This header does not
 * include zlib.h, so callers need no zlib include path.
 */
#ifndef WSN_DEFLATE_H
#define WSN_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "wsn.h"

struct z_stream_s; /* zlib's z_stream */

/* ---- options ------------------------------------------------------------- */

/*
 * ws's option values are JS values and ws tests them in four different ways
 * (`=== false`, truthiness, `== null`, `typeof === 'number'`), so a C bool
 * cannot carry them. Each option field holds one of these, or (window bits
 * only) a positive number. The JS layer maps: undefined/null -> UNSET,
 * false -> FALSE, true -> TRUE, a number -> the number. (JS numbers <= 0 or
 * non-integers are not representable; ws would put them verbatim in
 * headers that no peer accepts, so the JS layer should reject them.)
 * Zero is UNSET so that a zeroed struct means ws's `perMessageDeflate: {}`.
 */
enum {
  WSN_PMD_UNSET = 0,
  WSN_PMD_FALSE = -1,
  WSN_PMD_TRUE = -2
};

typedef struct {
  int server_no_context_takeover; /* UNSET / FALSE / TRUE */
  int client_no_context_takeover; /* UNSET / FALSE / TRUE */
  int server_max_window_bits;     /* UNSET / FALSE / TRUE / number */
  int client_max_window_bits;     /* UNSET / FALSE / TRUE / number */
  /* ws: messages below this size are sent uncompressed, but only when our
   * own side has no context takeover (see wsn_pmd_should_compress). */
  uint64_t threshold;
  /* zlibDeflateOptions that matter for the wire and for memory. windowBits
   * is not here: ws always overrides it with the negotiated value (it
   * spreads the user's object first), and likewise for zlibInflateOptions,
   * of which nothing else affects inflating a raw stream, so inflate has no
   * options. */
  int level;     /* -1 (Z_DEFAULT_COMPRESSION, i.e. 6) or 0..9 */
  int mem_level; /* 1..9, default 8 (Z_DEFAULT_MEMLEVEL) */
  int strategy;  /* Z_DEFAULT_STRATEGY (0) .. Z_FIXED (4) */
} wsn_pmd_options_t;

/* ws's defaults: every negotiation field UNSET, threshold 1024, level -1,
 * memLevel 8, strategy 0 (Node's zlib defaults). */
void wsn_pmd_options_init(wsn_pmd_options_t *o);

/* ---- negotiated parameters ----------------------------------------------- */

enum {
  WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER = 0,
  WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER = 1,
  WSN_PMD_P_SERVER_MAX_WINDOW_BITS = 2,
  WSN_PMD_P_CLIENT_MAX_WINDOW_BITS = 3
};

/*
 * The agreed parameters (ws's `perMessageDeflate.params`). A window bits
 * field is 0 when the parameter is absent (the side then uses 15). The
 * order[] array keeps the parameters in the order ws's params object has
 * them, which is the order of the client's offer followed by the ones the
 * server added: ws's response header lists them in that order, so we must
 * too. JS can build `ws.extensions` from these fields.
 */
typedef struct {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
  uint8_t count;    /* parameters present */
  uint8_t order[4]; /* WSN_PMD_P_* in ws's key order */
} wsn_pmd_params_t;

/* ---- results ------------------------------------------------------------- */

enum {
  WSN_PMD_OK = 0,
  WSN_PMD_NONE = 1, /* server: no permessage-deflate offer: no extension */
  /* Negotiation. `detail` is ws's internal message (see each). */
  WSN_PMD_E_SYNTAX = -1,         /* SyntaxError "Unexpected character at
                                    index N" / "Unexpected end of input" */
  WSN_PMD_E_MULTIPLE_VALUES = -2, /* Parameter "x" must have only a single
                                     value */
  WSN_PMD_E_INVALID_VALUE = -3,  /* TypeError Invalid value for parameter
                                    "x": v */
  WSN_PMD_E_UNKNOWN_PARAM = -4,  /* Unknown parameter "x" */
  WSN_PMD_E_NO_ACCEPTABLE = -5,  /* None of the extension offers can be
                                    accepted */
  WSN_PMD_E_UNEXPECTED_CNCT = -6, /* Unexpected parameter
                                     "client_no_context_takeover" */
  WSN_PMD_E_UNEXPECTED_CMWB = -7, /* Unexpected or invalid parameter
                                     "client_max_window_bits" */
  WSN_PMD_E_NOT_REQUESTED = -8,  /* client: an extension other than
                                    permessage-deflate */
  WSN_PMD_E_NOT_OFFERED = -9,    /* client: header present, no offer made */
  /* Codec. */
  WSN_PMD_E_TOO_BIG = -20, /* inflated message > max_payload: ws's
                              WSN_E_MESSAGE_LENGTH, RangeError "Max payload
                              size exceeded", close 1009 */
  WSN_PMD_E_DATA = -21,    /* zlib rejected the compressed data: see
                              wsn_pmd_codec_t.error*, close 1007 */
  WSN_PMD_E_NOMEM = -22,   /* malloc failed (output buffer or zlib) */
  WSN_PMD_E_ZLIB = -23     /* zlib refused the settings (deflateInit2 /
                              inflateInit2 with out-of-range options) */
};

#define WSN_PMD_DETAIL_MAX 160

typedef struct {
  int code; /* a WSN_PMD_E_* (negative) */
  /* What ws shows. Server: every failure is a 400 with this message (also
   * the message of the Error passed to 'wsClientError'). Client: the
   * message of the handshake error ws emits. */
  const char *message;
  int status;            /* server: 400; client: 0 */
  const char *detail_ctor; /* "SyntaxError", "TypeError" or "Error" */
  char detail[WSN_PMD_DETAIL_MAX]; /* ws's internal message, NUL-ended; a
                                      long header value is cut with "..." */
} wsn_pmd_error_t;

/* Longest value wsn_pmd_offer/wsn_pmd_format write, with the NUL. */
#define WSN_PMD_HEADER_MAX 160

/* ---- server side ----------------------------------------------------------- */

/*
 * ws's WebSocketServer: with perMessageDeflate enabled and a
 * Sec-WebSocket-Extensions header present (even an empty one), call this
 * with the header's value. Node joins repeated header lines with ", ", and
 * so must the caller. ws's rules, in its order:
 *  - the whole value must parse (extension.parse), whatever the extensions;
 *  - if no extension is named exactly "permessage-deflate" (names are
 *    case-sensitive): WSN_PMD_NONE, handshake goes on without extensions;
 *  - every permessage-deflate offer is validated (normalizeParams), even
 *    after an acceptable one: any bad offer fails the handshake;
 *  - the first offer that the options allow is accepted (acceptAsServer),
 *    none -> WSN_PMD_E_NO_ACCEPTABLE. A server does not decline the
 *    extension: it refuses the handshake.
 * On WSN_PMD_OK *out holds the parameters; render the response header with
 * wsn_pmd_format(). On error, *err (400, "Invalid or unacceptable
 * Sec-WebSocket-Extensions header").
 */
int wsn_pmd_accept_offer(const wsn_pmd_options_t *opts, const char *value,
                         size_t len, wsn_pmd_params_t *out,
                         wsn_pmd_error_t *err);

/* Writes "permessage-deflate[; param[=N]]..." (ws's extension.format of the
 * accepted params) with a NUL. Returns the length, 0 if cap is too small. */
size_t wsn_pmd_format(const wsn_pmd_params_t *p, char *out, size_t cap);

/* ---- client side ----------------------------------------------------------- */

/*
 * The Sec-WebSocket-Extensions value ws's client sends (offer()), e.g. for
 * the default options "permessage-deflate; client_max_window_bits". Writes
 * it with a NUL; returns the length, 0 if cap is too small.
 */
size_t wsn_pmd_offer(const wsn_pmd_options_t *opts, char *out, size_t cap);

/*
 * Checks the 101 response's Sec-WebSocket-Extensions value (call it only if
 * the header is present). opts is NULL when the client offered nothing.
 * ws's order: no offer -> NOT_OFFERED; parse error -> SYNTAX; any extension
 * name other than "permessage-deflate" -> NOT_REQUESTED; every element is
 * validated as in client mode (a bare client_max_window_bits is invalid),
 * and the first one is accepted (acceptAsClient). Note what ws does not
 * check: server_max_window_bits and server_no_context_takeover in the
 * answer are taken whatever was offered.
 * err->message is ws's handshake error message ("Invalid
 * Sec-WebSocket-Extensions header", or one of the two others).
 */
int wsn_pmd_accept_response(const wsn_pmd_options_t *opts, const char *value,
                            size_t len, wsn_pmd_params_t *out,
                            wsn_pmd_error_t *err);

/*
 * ws's Sender: a message the user asked to compress (`compress` defaults
 * to true) goes out compressed, except that when our own side has no
 * context takeover, only if its (first fragment's) length >= threshold.
 * With context takeover ws compresses every message, however small.
 */
static inline int wsn_pmd_should_compress(const wsn_pmd_params_t *p,
                                          int is_server, uint64_t threshold,
                                          uint64_t len) {
  int own_nct = is_server ? p->server_no_context_takeover
                          : p->client_no_context_takeover;
  return !own_nct || len >= threshold;
}

/* ---- codec ------------------------------------------------------------------ */

/*
 * One connection's compressor and decompressor.
 *
 * Window bits: our deflater uses our side's agreed max window bits, the
 * inflater the peer's (15 when absent). zlib refuses a raw deflater with 8,
 * so 8 becomes 9 as Node's DeflateRaw does; this stays RFC-conformant
 * because zlib never emits a distance above window size - 262 (250 bytes at
 * 9), which a 256-byte inflate window holds. Inflaters keep 8.
 *
 * zlib memory per stream, all allocations counted (wsn_pmd_codec_memory;
 * `WSN_PRINT_MEMORY=1 test/c/build/test_deflate` prints the table; the
 * system zlib 1.2.13 that test/c links, not Node's copy):
 *   deflate = window 2*2^wb + prev 2*2^wb + head 2*2^(ml+7)
 *             + pending 4*2^(ml+6) + a 5.9 KiB state:
 *             wb 15/ml 8: 262 KiB, wb 9/ml 8: 136 KiB, wb 15/ml 1: 135 KiB,
 *             wb 9/ml 1: 8.9 KiB;
 *   inflate = a 7.1 KiB state + a 2^wb window (allocated on first output):
 *             wb 15: 39 KiB, wb 8: 7.4 KiB.
 * memLevel, not windowBits, dominates small deflaters.
 *
 * The codec must not move in memory once it holds a stream (zlib's
 * allocator is given its address to keep the count).
 *
 * Context: a side with no_context_takeover resets its stream after each
 * message (as ws does); its zlib state is still allocated, and
 * wsn_pmd_codec_idle() frees it between messages (it is recreated on the
 * next one, at the cost of an init). A side with context takeover must keep
 * its state for the connection's life.
 */
typedef struct {
  struct z_stream_s *def; /* NULL until the first compress */
  struct z_stream_s *inf; /* NULL until the first decompress */
  uint64_t max_payload;   /* inflated bytes allowed per message; 0 = no limit */
  uint64_t inflated;      /* inflated bytes of the current message so far */
  size_t mem;             /* bytes zlib holds now, both streams */
  const char *error;      /* after WSN_PMD_E_DATA/ZLIB: zlib's message (a
                             static string), or Node's fallback "Zlib error" */
  int error_code;         /* after E_DATA/E_ZLIB: zlib's code (Z_DATA_ERROR..) */
  int8_t def_bits, inf_bits;     /* zlib windowBits for each direction */
  int8_t level, mem_level, strategy;
  uint8_t def_no_takeover;  /* our side's no_context_takeover */
  uint8_t inf_no_takeover;  /* the peer's no_context_takeover */
  uint8_t def_in_message;   /* a fragmented compress is in progress */
  uint8_t inf_state;        /* internal: idle / in message / stream ended */
} wsn_pmd_codec_t;

/* Sets up the codec for an agreed parameter set. Allocates nothing. */
void wsn_pmd_codec_init(wsn_pmd_codec_t *c, const wsn_pmd_params_t *p,
                        int is_server, const wsn_pmd_options_t *opts,
                        uint64_t max_payload);

/*
 * Compresses data[0..len) and appends it to out. With fin, this is the
 * message's last (or only) piece: the 00 00 ff ff tail is dropped, and the
 * stream is reset if our side has no context takeover. Without fin (ws's
 * send(data, { fin: false })), the tail stays, as ws sends it. An empty
 * message gives the single byte 00, as ws and RFC 7692 7.2.3.6 do.
 * Returns WSN_PMD_OK, WSN_PMD_E_NOMEM or WSN_PMD_E_ZLIB; on error out->len
 * is unchanged and the deflater has been freed.
 */
int wsn_pmd_compress(wsn_pmd_codec_t *c, const uint8_t *data, size_t len,
                     int fin, wsn_buf_t *out);

/*
 * Feeds compressed bytes of a message as they arrive (any split: frames,
 * reads, single bytes) and appends the inflated bytes to out. With fin,
 * the message ends after these bytes: 00 00 ff ff is fed and the stream is
 * reset if the peer has no context takeover. Returns:
 *  - WSN_PMD_OK;
 *  - WSN_PMD_E_TOO_BIG as soon as the message's inflated size passes
 *    max_payload; out then holds at most max_payload + 1 bytes of this
 *    message and never had room for more, so a bomb costs no more memory
 *    than an honest message of the maximum size;
 *  - WSN_PMD_E_DATA for a corrupt stream, with c->error (zlib's msg, e.g.
 *    "invalid block type") and c->error_code (e.g. Z_DATA_ERROR): ws emits
 *    an Error with that message, `code` wsn_pmd_zlib_code_name(code) and
 *    `errno` the number, and closes with 1007;
 *  - WSN_PMD_E_NOMEM / WSN_PMD_E_ZLIB.
 * After an error the inflater is gone and the connection must close (ws
 * drops its stream too). Bytes after a final (BFINAL) block in a message
 * are ignored and the next message starts a fresh stream, as with Node's
 * InflateRaw.
 */
int wsn_pmd_decompress(wsn_pmd_codec_t *c, const uint8_t *data, size_t len,
                       int fin, wsn_buf_t *out);

/* Frees the zlib state of each side that has no context takeover and is
 * between messages. Cheap to call; the state is rebuilt on next use. */
void wsn_pmd_codec_idle(wsn_pmd_codec_t *c);

/* Frees everything (ws's cleanup()). The codec can be initialised again. */
void wsn_pmd_codec_free(wsn_pmd_codec_t *c);

/* Bytes of zlib state held now (both streams). */
static inline size_t wsn_pmd_codec_memory(const wsn_pmd_codec_t *c) {
  return c->mem;
}

/* Node's name for a zlib return code ("Z_DATA_ERROR", ...), the `code` of
 * the Error Node's zlib (and so ws) reports; "Z_UNKNOWN" otherwise. */
const char *wsn_pmd_zlib_code_name(int zlib_code);

#endif /* WSN_DEFLATE_H */
