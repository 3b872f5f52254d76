/*
 * libFuzzer target for src/frame.c, the incremental RFC 6455 frame parser.
 *
 * Input layout: [flags][max][c0 c1 c2 c3] stream...
 *   flags bit 0: server role (frames must be masked), else client
 *   flags bit 1: rsv1_allowed (permessage-deflate negotiated)
 *   flags bits 2-3: max_payload: 0 none, 1 small (max + 1), 2 medium
 *                   ((max + 1) << 10), 3 huge (UINT64_MAX >> (max & 63))
 *   c0..c3: chunk sizes, cycled: 0 = the rest of the stream, 1..191 that
 *           many bytes, 192..255 (c - 191) * 64 bytes
 *
 * The stream is parsed twice: in those chunks (each copied into its own
 * exactly-sized heap block, so ASan catches any read or write outside the
 * chunk) and in one piece. Every event is checked against a reference
 * header decoder written here from RFC 6455 section 5.2 (not from frame.c):
 * header fields and size, payload bytes equal to the raw bytes XOR the
 * key, DATA spans that start at the bytes handed in and never pass the
 * frame's length, END exactly when the payload is complete, every accepted
 * header obeying the rules, every ERROR justified by the bytes, errors
 * sticky. The two runs must then give the same events and payload bytes.
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "utf8.h"

#define CHECK(c)                                                           \
  do {                                                                     \
    if (!(c)) {                                                            \
      fprintf(stderr, "fuzz_frame: check failed at %s:%d: %s\n", __FILE__, \
              __LINE__, #c);                                               \
      abort();                                                             \
    }                                                                      \
  } while (0)

/* ---- reference header decoder (RFC 6455 5.2) ---------------------------- */

typedef struct {
  int fin, rsv1, rsv2, rsv3, opcode, masked, len7;
  uint64_t length;
  uint8_t key[4];
  size_t size; /* header bytes including the key */
} ref_hdr_t;

/* Decodes what avail bytes allow. Returns 1 if the header is complete,
 * 0 if not (fields of the first two bytes are still filled in when
 * avail >= 2, and length when the extended length is present). */
static int ref_decode(const uint8_t *h, size_t avail, ref_hdr_t *o) {
  memset(o, 0, sizeof(*o));
  if (avail < 2) return 0;
  o->fin = h[0] >> 7 & 1;
  o->rsv1 = h[0] >> 6 & 1;
  o->rsv2 = h[0] >> 5 & 1;
  o->rsv3 = h[0] >> 4 & 1;
  o->opcode = h[0] & 15;
  o->masked = h[1] >> 7 & 1;
  o->len7 = h[1] & 127;
  size_t ext = o->len7 == 126 ? 2 : o->len7 == 127 ? 8 : 0;
  o->size = 2 + ext + (o->masked ? 4 : 0);
  if (avail < 2 + ext) return 0;
  if (ext == 0) {
    o->length = (uint64_t)o->len7;
  } else {
    o->length = 0;
    for (size_t i = 0; i < ext; i++) o->length = o->length << 8 | h[2 + i];
  }
  if (avail < o->size) return 0;
  if (o->masked) memcpy(o->key, h + 2 + ext, 4);
  return 1;
}

static int is_control(int op) { return op >= 8; }
static int is_known(int op) {
  return op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
}

/* ---- one parse run -------------------------------------------------------- */

typedef struct {
  int type, opcode, fin, rsv1, error;
  uint64_t length; /* HEADER: frame length; DATA: byte count (merged) */
  uint32_t arg;
} rec_t;

typedef struct {
  rec_t *ev;
  size_t n, cap;
  uint8_t *data; /* every DATA byte, in order */
  size_t dlen;
} trace_t;

static void rec(trace_t *t, rec_t r) {
  /* Consecutive DATA events merge: how payload is split depends on the
   * chunking, the bytes do not. */
  if (r.type == WSN_FRAME_DATA && t->n > 0 &&
      t->ev[t->n - 1].type == WSN_FRAME_DATA) {
    t->ev[t->n - 1].length += r.length;
    return;
  }
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->ev = realloc(t->ev, t->cap * sizeof(rec_t));
    CHECK(t->ev != NULL);
  }
  t->ev[t->n++] = r;
}

typedef struct {
  int is_server, rsv1_allowed;
  uint64_t max_payload;
} cfg_t;

/* What the reference knows about the stream so far. */
typedef struct {
  int in_frame;       /* a HEADER was seen, its END not yet */
  int in_message;     /* a data message is fragmented and open */
  uint64_t msg_len;   /* data bytes of the open message */
  size_t hdr_start;   /* stream offset of the next (or current) header */
  size_t payload_at;  /* stream offset of the current frame's payload */
  ref_hdr_t h;        /* the current frame's header */
  uint64_t got;       /* payload bytes delivered for the current frame */
  size_t frame_data;  /* t->dlen when the current frame's payload began */
} ref_t;

/* The error is justified by the header at st->hdr_start (avail bytes of it
 * present), given the reference state. */
static void check_error(const cfg_t *cfg, const ref_t *st, const uint8_t *raw,
                        size_t avail, int err, uint32_t arg) {
  ref_hdr_t h;
  int complete = ref_decode(raw + st->hdr_start, avail, &h);
  (void)complete;
  CHECK(avail >= 2); /* every rule looks at the first two bytes */
  int op = h.opcode;
  switch (err) {
  case WSN_E_RSV_2_3:
    CHECK(h.rsv2 || h.rsv3);
    break;
  case WSN_E_RSV_1:
    CHECK(h.rsv1);
    CHECK(!cfg->rsv1_allowed || op == 0 || is_control(op));
    break;
  case WSN_E_INVALID_OPCODE:
    CHECK(arg == (uint32_t)op);
    CHECK(!is_known(op) || (op == 0 && !st->in_message) ||
          ((op == 1 || op == 2) && st->in_message));
    break;
  case WSN_E_EXPECTED_FIN:
    CHECK(is_known(op) && is_control(op) && !h.fin);
    break;
  case WSN_E_CONTROL_LENGTH:
    CHECK(is_known(op) && is_control(op));
    CHECK(arg == (uint32_t)h.len7);
    CHECK(h.len7 > 125 || (op == 8 && h.len7 == 1));
    break;
  case WSN_E_EXPECTED_MASK:
    CHECK(cfg->is_server && !h.masked);
    break;
  case WSN_E_UNEXPECTED_MASK:
    CHECK(!cfg->is_server && h.masked);
    break;
  case WSN_E_DATA_LENGTH:
    CHECK(h.len7 == 127 && avail >= 10);
    CHECK(h.length > ((uint64_t)1 << 53) - 1);
    break;
  case WSN_E_MESSAGE_LENGTH:
    CHECK(!is_control(op) && cfg->max_payload != 0);
    CHECK(avail >= 2 + (h.len7 == 126 ? 2u : h.len7 == 127 ? 8u : 0u));
    CHECK(st->msg_len + h.length > cfg->max_payload ||
          st->msg_len + h.length < st->msg_len);
    break;
  default:
    CHECK(!"unknown error id");
  }
}

/* An accepted header obeys every rule. */
static void check_accepted(const cfg_t *cfg, const ref_t *st,
                           const ref_hdr_t *h) {
  CHECK(!h->rsv2 && !h->rsv3);
  CHECK(is_known(h->opcode));
  CHECK(h->masked == cfg->is_server);
  CHECK(h->length <= ((uint64_t)1 << 53) - 1);
  if (h->rsv1) CHECK(cfg->rsv1_allowed && (h->opcode == 1 || h->opcode == 2));
  if (is_control(h->opcode)) {
    CHECK(h->fin);
    CHECK(h->length <= 125);
    CHECK(!(h->opcode == 8 && h->length == 1));
  } else {
    if (h->opcode == 0) CHECK(st->in_message);
    else CHECK(!st->in_message);
    if (cfg->max_payload) {
      CHECK(st->msg_len <= cfg->max_payload);
      CHECK(h->length <= cfg->max_payload - st->msg_len);
    }
  }
}

/* The encoder writes a header the reference decodes back, of the size
 * wsn_frame_header_size announces. */
static void check_encoder(const ref_hdr_t *h) {
  uint8_t out[14];
  ref_hdr_t back;
  size_t n = wsn_frame_header(out, h->fin, h->rsv1, h->opcode, h->length,
                              h->masked ? h->key : NULL);
  CHECK(n >= 2 && n <= 14);
  CHECK(n == wsn_frame_header_size(h->length, h->masked));
  CHECK(ref_decode(out, n, &back) == 1);
  CHECK(back.size == n);
  CHECK(back.fin == h->fin && back.rsv1 == h->rsv1 && !back.rsv2 &&
        !back.rsv3 && back.opcode == h->opcode && back.masked == h->masked &&
        back.length == h->length);
  if (h->masked) CHECK(memcmp(back.key, h->key, 4) == 0);
  /* Minimal length encoding. */
  CHECK(back.len7 == (h->length <= 125     ? (int)h->length
                      : h->length <= 65535 ? 126
                                           : 127));
}

/* A complete frame's payload (unmasked, in t->data) checked with the other
 * helpers: re-masking gives the raw bytes back; a close payload's checks
 * give spans inside it. */
static void check_payload(const ref_t *st, const trace_t *t,
                          const uint8_t *raw) {
  const uint8_t *pl = t->data + st->frame_data;
  size_t len = (size_t)st->h.length;
  if (st->h.masked && len > 0) {
    uint8_t *m = malloc(len);
    CHECK(m != NULL);
    wsn_frame_mask_copy(m, pl, len, st->h.key);
    CHECK(memcmp(m, raw + st->payload_at, len) == 0);
    free(m);
  }
  if (st->h.opcode == WSN_OP_CLOSE) {
    uint8_t *c = malloc(len ? len : 1);
    CHECK(c != NULL);
    memcpy(c, pl, len);
    for (int skip = 0; skip < 2; skip++) {
      uint32_t code = 0, arg = 0;
      wsn_span_t reason;
      int rc = wsn_frame_check_close(c, len, skip, &code, &reason, &arg);
      CHECK(reason.base >= c && reason.len <= len &&
            (size_t)(reason.base - c) + reason.len <= len);
      if (len == 0) {
        CHECK(rc == WSN_OK && code == 1005);
      } else if (rc == WSN_OK) {
        CHECK(len >= 2 && wsn_frame_close_code_valid(code));
        CHECK(reason.base == c + 2 && reason.len == len - 2);
        if (!skip) CHECK(wsn_utf8_valid(reason.base, reason.len));
      } else if (rc == WSN_E_CLOSE_CODE) {
        CHECK(!wsn_frame_close_code_valid(arg) && arg == code);
      } else if (rc == WSN_E_INVALID_UTF8) {
        CHECK(!skip && !wsn_utf8_valid(c + 2, len - 2));
      } else {
        CHECK(!"unexpected check_close result");
      }
    }
    free(c);
  }
}

static uint64_t max_payload_of(uint8_t flags, uint8_t m) {
  switch (flags >> 2 & 3) {
  case 0: return 0;
  case 1: return (uint64_t)m + 1;
  case 2: return ((uint64_t)m + 1) << 10;
  default: return UINT64_MAX >> (m & 63);
  }
}

static size_t chunk_size(uint8_t c, size_t left) {
  size_t n = c == 0 ? left : c < 192 ? c : (size_t)(c - 191) * 64;
  return n > left ? left : n;
}

/* Parses raw[0..n) in chunks (pat NULL: one chunk) and records the events
 * in t, checking each against the reference as it comes. */
static void run(const cfg_t *cfg, const uint8_t *raw, size_t n,
                const uint8_t *pat, trace_t *t) {
  wsn_frame_parser_t p;
  ref_t st;
  size_t pos = 0, k = 0;
  int dead = 0;

  wsn_frame_parser_init(&p, cfg->is_server, cfg->max_payload);
  p.rsv1_allowed = (uint8_t)cfg->rsv1_allowed;
  memset(&st, 0, sizeof(st));

  t->data = malloc(n ? n : 1);
  CHECK(t->data != NULL);

  while (pos < n && !dead) {
    size_t c = pat ? chunk_size(pat[k++ % 4], n - pos) : n - pos;
    uint8_t *chunk = malloc(c);
    size_t off = 0;
    int idle = 0;
    CHECK(chunk != NULL);
    memcpy(chunk, raw + pos, c);

    for (;;) {
      wsn_frame_event_t ev;
      size_t left = c - off;
      size_t at = pos + off; /* stream offset of chunk + off */
      memset(&ev, 0x5a, sizeof(ev));
      size_t used = wsn_frame_parse(&p, chunk + off, left, &ev);
      CHECK(used <= left);
      if (used == 0 && ev.type != WSN_FRAME_NEED_MORE) {
        /* END and ERROR consume nothing; two in a row means no progress. */
        CHECK(++idle <= 2);
      } else {
        idle = 0;
      }

      if (ev.type == WSN_FRAME_NEED_MORE) {
        CHECK(used == left);
        /* Only header bytes or nothing can vanish into the parser. */
        if (used > 0) CHECK(!st.in_frame);
        break;
      }

      switch (ev.type) {
      case WSN_FRAME_HEADER: {
        ref_hdr_t h;
        size_t end = at + used; /* stream offset just past the header */
        CHECK(!st.in_frame);
        CHECK(used > 0);
        CHECK(end > st.hdr_start);
        CHECK(ref_decode(raw + st.hdr_start, end - st.hdr_start, &h) == 1);
        CHECK(h.size == end - st.hdr_start);
        CHECK(ev.opcode == h.opcode && ev.fin == h.fin &&
              ev.rsv1 == h.rsv1 && ev.length == h.length);
        check_accepted(cfg, &st, &h);
        check_encoder(&h);
        st.h = h;
        st.in_frame = 1;
        st.got = 0;
        st.payload_at = end;
        st.frame_data = t->dlen;
        if (!is_control(h.opcode)) {
          st.msg_len += h.length;
          st.in_message = !h.fin;
        }
        rec(t, (rec_t){.type = ev.type, .opcode = ev.opcode, .fin = ev.fin,
                       .rsv1 = ev.rsv1, .length = ev.length});
        break;
      }
      case WSN_FRAME_DATA: {
        CHECK(st.in_frame);
        CHECK(used > 0 && ev.data.len == used);
        CHECK(ev.data.base == chunk + off);
        CHECK(used <= st.h.length - st.got);
        CHECK(ev.opcode == st.h.opcode && ev.fin == st.h.fin);
        CHECK(at == st.payload_at + st.got);
        for (size_t i = 0; i < used; i++) {
          uint8_t want = raw[at + i];
          if (st.h.masked) want ^= st.h.key[(st.got + i) & 3];
          CHECK(ev.data.base[i] == want);
        }
        memcpy(t->data + t->dlen, ev.data.base, used);
        t->dlen += used;
        st.got += used;
        rec(t, (rec_t){.type = ev.type, .opcode = ev.opcode, .fin = ev.fin,
                       .length = used});
        break;
      }
      case WSN_FRAME_END:
        CHECK(st.in_frame);
        CHECK(used == 0);
        CHECK(st.got == st.h.length);
        CHECK(ev.opcode == st.h.opcode && ev.fin == st.h.fin);
        CHECK(at == st.payload_at + st.got);
        check_payload(&st, t, raw);
        st.in_frame = 0;
        st.hdr_start = at;
        if (!is_control(st.h.opcode) && st.h.fin) st.msg_len = 0;
        rec(t, (rec_t){.type = ev.type, .opcode = ev.opcode, .fin = ev.fin});
        break;
      case WSN_FRAME_ERROR: {
        wsn_frame_event_t again;
        CHECK(used == 0);
        CHECK(!st.in_frame);
        CHECK(ev.error < 0);
        check_error(cfg, &st, raw, at - st.hdr_start + left, ev.error,
                    ev.error_arg);
        /* Sticky: the same error, whatever comes next. */
        CHECK(wsn_frame_parse(&p, chunk + off, left, &again) == 0);
        CHECK(again.type == WSN_FRAME_ERROR && again.error == ev.error &&
              again.error_arg == ev.error_arg);
        CHECK(wsn_frame_parse(&p, NULL, 0, &again) == 0);
        CHECK(again.type == WSN_FRAME_ERROR && again.error == ev.error);
        rec(t, (rec_t){.type = ev.type, .error = ev.error,
                       .arg = ev.error_arg});
        dead = 1;
        break;
      }
      default:
        CHECK(!"unknown event type");
      }
      if (dead) break;
      off += used;
    }
    free(chunk);
    pos += c;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6) return 0;
  cfg_t cfg = {.is_server = data[0] & 1,
               .rsv1_allowed = data[0] >> 1 & 1,
               .max_payload = max_payload_of(data[0], data[1])};
  const uint8_t *pat = data + 2;
  const uint8_t *raw = data + 6;
  size_t n = size - 6;

  trace_t a = {0}, b = {0};
  run(&cfg, raw, n, pat, &a);
  run(&cfg, raw, n, NULL, &b);

  /* Chunking changes nothing. */
  CHECK(a.n == b.n);
  for (size_t i = 0; i < a.n; i++) {
    CHECK(a.ev[i].type == b.ev[i].type);
    CHECK(a.ev[i].opcode == b.ev[i].opcode);
    CHECK(a.ev[i].fin == b.ev[i].fin);
    CHECK(a.ev[i].rsv1 == b.ev[i].rsv1);
    CHECK(a.ev[i].length == b.ev[i].length);
    CHECK(a.ev[i].error == b.ev[i].error);
    CHECK(a.ev[i].arg == b.ev[i].arg);
  }
  CHECK(a.dlen == b.dlen);
  CHECK(a.dlen == 0 || memcmp(a.data, b.data, a.dlen) == 0);

  free(a.ev);
  free(a.data);
  free(b.ev);
  free(b.data);
  return 0;
}
