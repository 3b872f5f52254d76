/*
 * libFuzzer target for src/deflate.c: the inflater with its size limit, the
 * compressor (round trip), and the Sec-WebSocket-Extensions negotiation.
 *
 * Input layout: [mode] ...; mode bit 0 picks the half.
 *
 * Inflate (bit 0 clear): [mode][wbits][max][zopts][c0 c1 c2 c3] data...
 *   mode bit 1: the codec is a server (it inflates what the client sends)
 *   mode bit 2: the peer has no context takeover
 *   mode bit 3: our side has no context takeover (for the round trip)
 *   mode bit 4: call wsn_pmd_codec_idle() between messages
 *   wbits: low nibble server_max_window_bits, high nibble
 *          client_max_window_bits: n % 9 == 0 absent, else 7 + n % 9 (8..15)
 *   max: max_payload: 0 none, 1..127 max * 16, 128..255 (max - 127) * 8 KiB
 *   zopts: level zopts % 10, memLevel 1 + zopts / 10 % 9, strategy
 *          (zopts >= 200 ? (zopts - 200) % 5 : 0), for the round trip
 *   c0..c3: cycled: low 7 bits a chunk size (0 = the rest), bit 7 = the
 *           message ends after this chunk (the last chunk always ends one)
 * Each chunk is copied into its own exactly-sized heap block. Each message's
 * result is compared with a reference inflater written here on zlib's API
 * over the whole message at once (with RFC 7692's 00 00 ff ff appended,
 * stream kept across messages unless the peer has no context takeover,
 * a fresh stream after one that ended, always a 32 KiB window): same
 * verdict (ok, too big, data error) and the same bytes, except that the
 * codec may refuse a distance beyond its own window (see below). The size limit holds: an accepted message is
 * at most max_payload bytes, a refused one left at most max_payload + 1
 * bytes, and the output buffer never had room for more than that. Accepted
 * messages of up to 64 KiB are compressed with wsn_pmd_compress and
 * inflated back by a second codec pair. zlib memory returns to 0 on free.
 *
 * Negotiation (bit 0 set): [mode][o0 o1 o2 o3] value...
 *   mode bit 1: server (wsn_pmd_accept_offer), else client
 *               (wsn_pmd_accept_response); mode bit 2: client with no offer
 *   o0..o3: options server/client_no_context_takeover (o % 3: unset,
 *           false, true), server/client_max_window_bits (o % 11: 0 unset,
 *           1 false, 2 true, else 8..15; o >= 240: o - 237, out of range
 *           mostly, which skips the parameter checks)
 * Checked: the result is one of the documented codes; errors carry a
 * message and a NUL-terminated detail; accepted parameters are well formed
 * (window bits 8..15, each parameter once in order[]), and their rendering
 * by wsn_pmd_format, offered to a server with ws's default options, comes
 * back as the same parameters. The client's own offer (wsn_pmd_offer)
 * always parses. Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "fuzz_inflate: check failed at %s:%d: %s\n", __FILE__, \
              __LINE__, #c);                                                 \
      abort();                                                               \
    }                                                                        \
  } while (0)

#define ROUND_TRIP_MAX (64 * 1024)

/* ---- reference inflater -------------------------------------------------- */

enum { REF_OK, REF_TOO_BIG, REF_DATA };

typedef struct {
  z_stream s;
  int live;   /* s is initialised */
  int ended;  /* the stream ended (final block) in an earlier message */
  int bits;
  int no_takeover;
  uint64_t max;
} ref_t;

/*
 * One whole message: inflate msg + 00 00 ff ff; stop at the end of the
 * stream (the rest of the message is ignored). *out gets the bytes (a
 * malloc'd buffer, at most max + 1 of them when there is a limit).
 */
static int ref_message(ref_t *r, const uint8_t *msg, size_t len,
                       uint8_t **out, size_t *out_len) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  uint8_t *in = malloc(len + 4);
  size_t cap = 4096, n = 0;
  uint8_t *o = malloc(cap);
  int result = REF_OK;
  CHECK(in != NULL && o != NULL);
  memcpy(in, msg, len);
  memcpy(in + len, tail, 4);

  if (!r->live) {
    memset(&r->s, 0, sizeof(r->s));
    CHECK(inflateInit2(&r->s, -r->bits) == Z_OK);
    r->live = 1;
  }
  r->s.next_in = in;
  r->s.avail_in = (uInt)(len + 4);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      o = realloc(o, cap);
      CHECK(o != NULL);
    }
    r->s.next_out = o + n;
    r->s.avail_out = (uInt)(cap - n);
    int ret = inflate(&r->s, Z_SYNC_FLUSH);
    n = (size_t)(r->s.next_out - o);
    if (r->max && n > r->max) {
      result = REF_TOO_BIG;
      break;
    }
    if (ret == Z_STREAM_END) {
      r->ended = 1;
      break;
    }
    if (ret == Z_OK || ret == Z_BUF_ERROR) {
      /* Done when all input is in and zlib had room to spare. */
      if (r->s.avail_in == 0 && r->s.avail_out != 0) break;
      continue;
    }
    result = REF_DATA;
    break;
  }
  free(in);
  if (result != REF_OK) {
    inflateEnd(&r->s);
    r->live = 0;
  } else if (r->no_takeover || r->ended) {
    inflateReset(&r->s);
    r->ended = 0;
  }
  *out = o;
  *out_len = n;
  return result;
}

/* ---- inflate half -------------------------------------------------------- */

static int window_of(unsigned nibble) {
  return nibble % 9 == 0 ? 0 : 7 + (int)(nibble % 9);
}

static uint64_t max_of(uint8_t m) {
  if (m == 0) return 0;
  if (m < 128) return (uint64_t)m * 16;
  return (uint64_t)(m - 127) * 8192;
}

/* Compresses msg with `tx` in a few pieces and inflates it with `rx`; the
 * bytes must come back. */
static void round_trip(wsn_pmd_codec_t *tx, wsn_pmd_codec_t *rx,
                       const uint8_t *msg, size_t len, size_t piece) {
  wsn_buf_t z = {0}, back = {0};
  size_t at = 0;
  if (piece == 0) piece = len ? len : 1;
  do {
    size_t n = len - at < piece ? len - at : piece;
    int fin = at + n == len;
    int rc = wsn_pmd_compress(tx, msg + at, n, fin, &z);
    CHECK(rc == WSN_PMD_OK);
    at += n;
  } while (at < len);
  /* An empty message is the single byte 00. */
  if (len == 0) CHECK(z.len == 1 && z.base[0] == 0);
  int rc = wsn_pmd_decompress(rx, z.base, z.len, 1, &back);
  CHECK(rc == WSN_PMD_OK);
  CHECK(back.len == len);
  CHECK(len == 0 || memcmp(back.base, msg, len) == 0);
  wsn_buf_free(&z);
  wsn_buf_free(&back);
}

static void fuzz_inflate(const uint8_t *data, size_t size) {
  if (size < 8) return;
  uint8_t mode = data[0];
  int is_server = mode >> 1 & 1;
  int peer_nct = mode >> 2 & 1;
  int own_nct = mode >> 3 & 1;
  int idle = mode >> 4 & 1;
  const uint8_t *pat = data + 4;
  const uint8_t *in = data + 8;
  size_t n = size - 8;

  wsn_pmd_params_t p;
  memset(&p, 0, sizeof(p));
  p.server_max_window_bits = window_of(data[1] & 15);
  p.client_max_window_bits = window_of(data[1] >> 4);
  p.server_no_context_takeover = (uint8_t)(is_server ? own_nct : peer_nct);
  p.client_no_context_takeover = (uint8_t)(is_server ? peer_nct : own_nct);
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.level = data[3] % 10;
  o.mem_level = 1 + data[3] / 10 % 9;
  o.strategy = data[3] >= 200 ? (data[3] - 200) % 5 : 0;
  uint64_t max = max_of(data[2]);

  wsn_pmd_codec_t c;
  wsn_pmd_codec_init(&c, &p, is_server, &o, max);
  CHECK(c.inf_no_takeover == peer_nct && c.def_no_takeover == own_nct);

  /* The reference inflates with zlib's largest window whatever was agreed.
   * zlib does not hold a stream to its declared window: a distance beyond
   * it is accepted when the bytes are still in the current output buffer
   * and refused when only the window has them, so the codec's verdict on
   * such a stream depends on its buffer sizes. The widest window accepts
   * everything any buffering could, and the codec may only refuse more,
   * with "invalid distance too far back". */
  CHECK(c.inf_bits >= 8 && c.inf_bits <= 15);
  ref_t ref = {.bits = 15, .no_takeover = peer_nct, .max = max};

  /* The round trip: tx on our side's settings, rx the peer's mirror. */
  wsn_pmd_codec_t tx, rx;
  wsn_pmd_codec_init(&tx, &p, is_server, &o, 0);
  wsn_pmd_codec_init(&rx, &p, !is_server, &o, 0);

  size_t pos = 0, k = 0;
  int dead = 0;
  while (pos < n && !dead) {
    /* One message: chunks until one marked fin (or the input ends). */
    size_t start = pos;
    wsn_buf_t out = {0};
    int rc = WSN_PMD_OK;
    for (;;) {
      uint8_t b = pat[k++ % 4];
      size_t c_len = (b & 0x7f) == 0 ? n - pos : (size_t)(b & 0x7f);
      if (c_len > n - pos) c_len = n - pos;
      int fin = (b & 0x80) || pos + c_len == n;
      uint8_t *chunk = malloc(c_len ? c_len : 1);
      CHECK(chunk != NULL);
      memcpy(chunk, in + pos, c_len);
      rc = wsn_pmd_decompress(&c, chunk, c_len, fin, &out);
      free(chunk);
      pos += c_len;
      CHECK(rc == WSN_PMD_OK || rc == WSN_PMD_E_TOO_BIG ||
            rc == WSN_PMD_E_DATA);
      if (max) {
        /* The limit bounds the bytes and the buffer, at every step. */
        CHECK(out.len <= max + 1 && out.cap <= max + 1);
        if (rc == WSN_PMD_OK) CHECK(out.len <= max);
      }
      if (rc != WSN_PMD_OK || fin) break;
    }

    uint8_t *want;
    size_t want_len;
    int r = ref_message(&ref, in + start, pos - start, &want, &want_len);
    if (rc == WSN_PMD_OK) {
      CHECK(r == REF_OK);
      CHECK(out.len == want_len);
      CHECK(want_len == 0 || memcmp(out.base, want, want_len) == 0);
      if (out.len <= ROUND_TRIP_MAX)
        round_trip(&tx, &rx, out.base ? out.base : (const uint8_t *)"",
                   out.len, (size_t)(pat[k % 4] & 0x7f) * 64);
      if (idle) {
        wsn_pmd_codec_idle(&c);
        wsn_pmd_codec_idle(&tx);
        wsn_pmd_codec_idle(&rx);
        if (peer_nct) CHECK(c.inf == NULL);
      }
    } else if (rc == WSN_PMD_E_TOO_BIG) {
      CHECK(r == REF_TOO_BIG);
      /* What was kept is what the reference made, cut at max + 1. */
      CHECK(out.len == max + 1 && want_len > max);
      CHECK(memcmp(out.base, want, out.len) == 0);
      dead = 1;
    } else {
      CHECK(c.error != NULL);
      CHECK(strcmp(wsn_pmd_zlib_code_name(c.error_code), "Z_UNKNOWN") != 0);
      /* A distance beyond the codec's window but within the reference's
       * 32 KiB one: the reference may go on. Any other error is the
       * reference's too. */
      if (strcmp(c.error, "invalid distance too far back") != 0)
        CHECK(r == REF_DATA);
      /* Either way the bytes before the error are the reference's. */
      CHECK(out.len <= want_len);
      CHECK(out.len == 0 || memcmp(out.base, want, out.len) == 0);
      dead = 1;
    }
    if (dead) CHECK(c.inf == NULL); /* the inflater is gone after an error */
    free(want);
    wsn_buf_free(&out);
  }

  if (ref.live) inflateEnd(&ref.s);
  wsn_pmd_codec_free(&c);
  wsn_pmd_codec_free(&tx);
  wsn_pmd_codec_free(&rx);
  CHECK(wsn_pmd_codec_memory(&c) == 0);
  CHECK(wsn_pmd_codec_memory(&tx) == 0);
  CHECK(wsn_pmd_codec_memory(&rx) == 0);
}

/* ---- negotiation half ---------------------------------------------------- */

static int nct_of(uint8_t b) {
  static const int v[3] = {WSN_PMD_UNSET, WSN_PMD_FALSE, WSN_PMD_TRUE};
  return v[b % 3];
}

/* Mostly what ws accepts; 240..255 give out-of-range numbers (3..18),
 * which only the JS layer rejects, and *in_range is then cleared. */
static int bits_opt_of(uint8_t b, int *in_range) {
  if (b >= 240) {
    int v = b - 237;
    if (v < 8 || v > 15) *in_range = 0;
    return v;
  }
  int v = b % 11;
  return v == 0 ? WSN_PMD_UNSET : v == 1 ? WSN_PMD_FALSE
                                         : v == 2 ? WSN_PMD_TRUE : v + 5;
}

static int valid_code(int r) {
  return r == WSN_PMD_OK || r == WSN_PMD_NONE ||
         (r <= WSN_PMD_E_SYNTAX && r >= WSN_PMD_E_NOT_OFFERED);
}

static void check_params(const wsn_pmd_params_t *p) {
  int seen[4] = {0};
  CHECK(p->count <= 4);
  for (int i = 0; i < p->count; i++) {
    CHECK(p->order[i] < 4 && !seen[p->order[i]]);
    seen[p->order[i]] = 1;
  }
  CHECK(p->server_no_context_takeover <= 1 &&
        p->client_no_context_takeover <= 1);
  CHECK(seen[WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER] ==
        p->server_no_context_takeover);
  CHECK(seen[WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER] ==
        p->client_no_context_takeover);
  CHECK(seen[WSN_PMD_P_SERVER_MAX_WINDOW_BITS] ==
        (p->server_max_window_bits != 0));
  CHECK(seen[WSN_PMD_P_CLIENT_MAX_WINDOW_BITS] ==
        (p->client_max_window_bits != 0));
  CHECK(p->server_max_window_bits == 0 ||
        (p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15));
  CHECK(p->client_max_window_bits == 0 ||
        (p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15));
}

static void check_error(const wsn_pmd_error_t *e, int r, int is_server) {
  CHECK(e->code == r);
  CHECK(e->message != NULL && e->message[0] != '\0');
  CHECK(e->detail_ctor != NULL);
  CHECK(memchr(e->detail, '\0', sizeof(e->detail)) != NULL);
  CHECK(e->detail[0] != '\0');
  CHECK(e->status == (is_server ? 400 : 0));
}

/* Rendered parameters, offered to a default server, come back unchanged. */
static void check_format(const wsn_pmd_params_t *p) {
  char buf[WSN_PMD_HEADER_MAX];
  size_t n = wsn_pmd_format(p, buf, sizeof(buf));
  CHECK(n > 0 && n < sizeof(buf) && buf[n] == '\0' && strlen(buf) == n);
  CHECK(strncmp(buf, "permessage-deflate", 18) == 0);
  /* Too small a buffer gives 0, never a cut header. */
  char small[WSN_PMD_HEADER_MAX];
  CHECK(wsn_pmd_format(p, small, n) == 0);
  CHECK(wsn_pmd_format(p, small, n + 1) == n);

  wsn_pmd_options_t d;
  wsn_pmd_params_t q;
  wsn_pmd_error_t e;
  wsn_pmd_options_init(&d);
  int r = wsn_pmd_accept_offer(&d, buf, n, &q, &e);
  CHECK(r == WSN_PMD_OK);
  CHECK(q.count == p->count &&
        memcmp(q.order, p->order, p->count) == 0 &&
        q.server_no_context_takeover == p->server_no_context_takeover &&
        q.client_no_context_takeover == p->client_no_context_takeover &&
        q.server_max_window_bits == p->server_max_window_bits &&
        q.client_max_window_bits == p->client_max_window_bits);
}

static void fuzz_negotiate(const uint8_t *data, size_t size) {
  if (size < 5) return;
  int is_server = data[0] >> 1 & 1;
  int no_offer = data[0] >> 2 & 1;
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.server_no_context_takeover = nct_of(data[1]);
  o.client_no_context_takeover = nct_of(data[2]);
  int in_range = 1;
  o.server_max_window_bits = bits_opt_of(data[3], &in_range);
  o.client_max_window_bits = bits_opt_of(data[4], &in_range);
  size_t n = size - 5;
  char *value = malloc(n ? n : 1);
  CHECK(value != NULL);
  memcpy(value, data + 5, n);

  wsn_pmd_params_t p;
  wsn_pmd_error_t e;
  memset(&e, 0x5a, sizeof(e));
  int r = is_server
              ? wsn_pmd_accept_offer(&o, value, n, &p, &e)
              : wsn_pmd_accept_response(no_offer ? NULL : &o, value, n, &p, &e);
  CHECK(valid_code(r));
  if (r == WSN_PMD_OK) {
    if (in_range) {
      check_params(&p);
      check_format(&p);
    }
  } else if (r == WSN_PMD_NONE) {
    CHECK(is_server);
    CHECK(p.count == 0);
  } else {
    check_error(&e, r, is_server);
    if (no_offer && !is_server) CHECK(r == WSN_PMD_E_NOT_OFFERED);
    if (is_server)
      CHECK(r != WSN_PMD_E_NOT_OFFERED && r != WSN_PMD_E_NOT_REQUESTED &&
            r != WSN_PMD_E_UNEXPECTED_CNCT && r != WSN_PMD_E_UNEXPECTED_CMWB);
  }
  free(value);

  /* The client's own offer for these options is well formed. */
  char offer[WSN_PMD_HEADER_MAX];
  size_t on = wsn_pmd_offer(&o, offer, sizeof(offer));
  CHECK(on > 0 && on < sizeof(offer) && offer[on] == '\0');
  wsn_pmd_options_t d;
  wsn_pmd_options_init(&d);
  r = wsn_pmd_accept_offer(&d, offer, on, &p, &e);
  CHECK(r != WSN_PMD_E_SYNTAX && r != WSN_PMD_NONE);
  if (r == WSN_PMD_OK) check_params(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1)
    fuzz_negotiate(data, size);
  else
    fuzz_inflate(data, size);
  return 0;
}
