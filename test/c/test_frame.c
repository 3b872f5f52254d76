/*
 * Tests for src/frame.c: every ws 8 receiver error with its argument and
 * timing, the three length forms, masking against a byte-at-a-time
 * reference, chunking invariance (whole vs byte-by-byte vs random chunks over
 * randomly generated frame sequences), the header encoder and close checks.
 *
 * Streams are built with a test-local encoder (ref_frame) rather than
 * wsn_frame_header so that an encoder bug cannot hide a parser bug.
 */
#include <stdlib.h>

#include "frame.h"
#include "runner.h"
#include "utf8.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
  uint8_t *b;
  size_t len, cap;
} bytes_t;

static void put(bytes_t *s, const void *p, size_t n) {
  if (s->len + n > s->cap) {
    s->cap = (s->len + n) * 2 + 64;
    s->b = realloc(s->b, s->cap);
  }
  if (n) memcpy(s->b + s->len, p, n);
  s->len += n;
}

static void put1(bytes_t *s, uint8_t c) { put(s, &c, 1); }

static void ref_mask(uint8_t *b, size_t n, const uint8_t k[4], size_t off) {
  for (size_t i = 0; i < n; i++) b[i] ^= k[(off + i) % 4];
}

/* Appends a frame header, written out by hand from RFC 6455 5.2. */
static void ref_header(bytes_t *s, int fin, int rsv, int op, uint64_t len,
                       const uint8_t *key) {
  put1(s, (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (op & 15)));
  uint8_t m = key ? 0x80 : 0;
  if (len < 126) {
    put1(s, (uint8_t)(m | len));
  } else if (len < 65536) {
    put1(s, m | 126);
    put1(s, (uint8_t)(len / 256));
    put1(s, (uint8_t)(len % 256));
  } else {
    put1(s, m | 127);
    for (int i = 7; i >= 0; i--) put1(s, (uint8_t)(len >> (8 * i)));
  }
  if (key) put(s, key, 4);
}

/* rsv is RSV1..3 as bits 2..0 (4 = RSV1). key NULL = unmasked. */
static void ref_frame(bytes_t *s, int fin, int rsv, int op, const void *data,
                      size_t len, const uint8_t *key) {
  ref_header(s, fin, rsv, op, len, key);
  size_t at = s->len;
  put(s, data, len);
  if (key) ref_mask(s->b + at, len, key, 0);
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ------------------------------------------------------- trace recording */

typedef struct {
  int type, opcode, fin, rsv1, error;
  uint64_t length; /* HEADER: frame length; DATA: bytes (merged) */
  uint32_t arg;
} rec_t;

typedef struct {
  rec_t *ev;
  int n, cap;
  bytes_t data; /* all DATA bytes, in order */
  int bad;      /* a protocol-level misuse of the API was seen */
  char why[160];
} trace_t;

static void trace_free(trace_t *t) {
  free(t->ev);
  free(t->data.b);
  memset(t, 0, sizeof(*t));
}

static void rec(trace_t *t, const wsn_frame_event_t *e) {
  if (e->type == WSN_FRAME_NEED_MORE) return;
  /* Merge DATA so traces compare equal whatever the chunking. */
  if (e->type == WSN_FRAME_DATA && t->n && t->ev[t->n - 1].type == WSN_FRAME_DATA) {
    t->ev[t->n - 1].length += e->data.len;
    put(&t->data, e->data.base, e->data.len);
    return;
  }
  if (t->n == t->cap) {
    t->cap = t->cap * 2 + 16;
    t->ev = realloc(t->ev, (size_t)t->cap * sizeof(rec_t));
  }
  rec_t r = {.type = (int)e->type};
  if (e->type == WSN_FRAME_ERROR) {
    r.error = e->error;
    r.arg = e->error_arg;
  } else {
    r.opcode = e->opcode;
    r.fin = e->fin;
    if (e->type == WSN_FRAME_HEADER) {
      r.rsv1 = e->rsv1;
      r.length = e->length;
    } else if (e->type == WSN_FRAME_DATA) {
      r.length = e->data.len;
      put(&t->data, e->data.base, e->data.len);
    }
  }
  t->ev[t->n++] = r;
}

typedef struct {
  int is_server, rsv1_allowed;
  uint64_t max_payload;
} cfg_t;

enum { CHUNK_WHOLE = 0, CHUNK_BYTES = 1, CHUNK_RANDOM = 2 };

static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/*
 * Feeds one chunk the way a real caller does: loop until NEED_MORE. Checks
 * the API contract on the way (NEED_MORE means all consumed, DATA spans lie
 * in the chunk at the current offset, no livelock). Returns 0 after ERROR.
 */
static int feed(wsn_frame_parser_t *p, trace_t *t, uint8_t *chunk, size_t n) {
  size_t off = 0;
  int idle = 0;
  for (;;) {
    wsn_frame_event_t e;
    memset(&e, 0xAB, sizeof(e));
    size_t c = wsn_frame_parse(p, chunk + off, n - off, &e);
    if (c > n - off) {
      t->bad = 1;
      snprintf(t->why, sizeof(t->why), "consumed %zu of %zu", c, n - off);
      return 0;
    }
    if (e.type == WSN_FRAME_DATA &&
        (e.data.base != chunk + off || e.data.len != c || c == 0)) {
      t->bad = 1;
      snprintf(t->why, sizeof(t->why), "DATA span not at the chunk offset");
      return 0;
    }
    rec(t, &e);
    off += c;
    if (e.type == WSN_FRAME_ERROR) {
      /* Sticky: the next call must repeat it and consume nothing. */
      wsn_frame_event_t e2;
      if (wsn_frame_parse(p, chunk + off, n - off, &e2) != 0 ||
          e2.type != WSN_FRAME_ERROR || e2.error != e.error ||
          e2.error_arg != e.error_arg) {
        t->bad = 1;
        snprintf(t->why, sizeof(t->why), "error not sticky");
      }
      return 0;
    }
    if (e.type == WSN_FRAME_NEED_MORE) {
      if (off != n) {
        t->bad = 1;
        snprintf(t->why, sizeof(t->why), "NEED_MORE with %zu left", n - off);
        return 0;
      }
      return 1;
    }
    idle = c ? 0 : idle + 1;
    if (idle > 2) {
      t->bad = 1;
      snprintf(t->why, sizeof(t->why), "no progress");
      return 0;
    }
  }
}

/*
 * Runs a whole stream through a fresh parser with the given chunking. Each
 * chunk is copied into its own exact-size allocation so ASan flags any read
 * or write past the bytes the parser was given; the payload bytes seen in
 * DATA spans are collected into the trace.
 */
static void run(trace_t *t, const bytes_t *s, cfg_t cfg, int mode) {
  wsn_frame_parser_t p;
  wsn_frame_parser_init(&p, cfg.is_server, cfg.max_payload);
  p.rsv1_allowed = (uint8_t)cfg.rsv1_allowed;
  memset(t, 0, sizeof(*t));
  size_t off = 0;
  while (off < s->len) {
    size_t n = s->len - off;
    if (mode == CHUNK_BYTES) {
      n = 1;
    } else if (mode == CHUNK_RANDOM) {
      uint32_t r = rnd() % 10;
      size_t want = r < 4 ? 1 + rnd() % 4 : r < 8 ? 1 + rnd() % 64
                                                  : 1 + rnd() % 70000;
      if (want < n) n = want;
    }
    uint8_t *chunk = malloc(n);
    memcpy(chunk, s->b + off, n);
    int more = feed(&p, t, chunk, n);
    free(chunk);
    off += n;
    if (!more) return;
  }
  /* End of input: drain a pending END (it needs no bytes). A real pointer,
   * as NULL + 0 would be UB in feed's arithmetic. */
  static uint8_t none[1];
  feed(&p, t, none, 0);
}

static int traces_equal(const trace_t *a, const trace_t *b, char *why,
                        size_t wn) {
  if (a->bad || b->bad) {
    snprintf(why, wn, "api misuse: %s%s", a->why, b->why);
    return 0;
  }
  if (a->n != b->n) {
    snprintf(why, wn, "event count %d vs %d", a->n, b->n);
    return 0;
  }
  for (int i = 0; i < a->n; i++) {
    /* Field by field: memcmp would also compare padding. */
    const rec_t *x = &a->ev[i], *y = &b->ev[i];
    if (x->type != y->type || x->opcode != y->opcode || x->fin != y->fin ||
        x->rsv1 != y->rsv1 || x->error != y->error ||
        x->length != y->length || x->arg != y->arg) {
      snprintf(why, wn, "event %d differs (type %d vs %d)", i, a->ev[i].type,
               b->ev[i].type);
      return 0;
    }
  }
  if (a->data.len != b->data.len ||
      (a->data.len && memcmp(a->data.b, b->data.b, a->data.len) != 0)) {
    snprintf(why, wn, "payload differs");
    return 0;
  }
  return 1;
}

/* The last event of a trace, or a zeroed one. */
static rec_t last(const trace_t *t) {
  rec_t z = {0};
  return t->n ? t->ev[t->n - 1] : z;
}

/* Expected-trace building for generated streams. */
static void expect_ev(trace_t *t, rec_t r) {
  if (t->n == t->cap) {
    t->cap = t->cap * 2 + 16;
    t->ev = realloc(t->ev, (size_t)t->cap * sizeof(rec_t));
  }
  t->ev[t->n++] = r;
}

static void expect_frame(trace_t *t, int fin, int op, int rsv1,
                         const uint8_t *data, size_t len) {
  expect_ev(t, (rec_t){.type = WSN_FRAME_HEADER, .opcode = op, .fin = fin,
                       .rsv1 = rsv1, .length = len});
  if (len) {
    expect_ev(t, (rec_t){.type = WSN_FRAME_DATA, .opcode = op, .fin = fin,
                         .length = len});
    put(&t->data, data, len);
  }
  expect_ev(t, (rec_t){.type = WSN_FRAME_END, .opcode = op, .fin = fin});
}

/* Runs s whole, byte by byte and in random chunks; all must agree. The
 * whole-buffer trace is left in *out (caller frees). */
static int run_all_ways(trace_t *out, const bytes_t *s, cfg_t cfg, char *why,
                        size_t wn) {
  trace_t b, r;
  run(out, s, cfg, CHUNK_WHOLE);
  run(&b, s, cfg, CHUNK_BYTES);
  int ok = traces_equal(out, &b, why, wn);
  for (int k = 0; k < 3 && ok; k++) {
    run(&r, s, cfg, CHUNK_RANDOM);
    ok = traces_equal(out, &r, why, wn);
    trace_free(&r);
  }
  trace_free(&b);
  return ok;
}

/* ------------------------------------------------------------ error cases */

typedef struct {
  const char *name;
  cfg_t cfg;
  uint8_t bytes[32];
  size_t len;
  size_t trigger; /* prefix length at which the error must fire */
  int error;
  uint32_t arg;
} err_case_t;

#define SRV {1, 0, 0}
#define SRV_DEFLATE {1, 1, 0}
#define CLI {0, 0, 0}
#define MK 0x37, 0xfa, 0x21, 0x3d

/* Preambles (an open fragmented text message) are part of the bytes; the
 * fragmented-message cases across several frames are tested further down. */
static const err_case_t err_cases[] = {
  {"RSV2", SRV, {0xA1, 0x80, MK}, 6, 2, WSN_E_RSV_2_3, 0},
  {"RSV3", SRV, {0x91, 0x80, MK}, 6, 2, WSN_E_RSV_2_3, 0},
  {"RSV2 before RSV1", SRV, {0xE1, 0x80, MK}, 6, 2, WSN_E_RSV_2_3, 0},
  {"RSV1 without deflate", SRV, {0xC1, 0x80, MK}, 6, 2, WSN_E_RSV_1, 0},
  /* ws checks RSV1 before the opcode */
  {"RSV1 before bad opcode", SRV, {0xC3, 0x80, MK}, 6, 2, WSN_E_RSV_1, 0},
  {"RSV1 on ping, no deflate", SRV, {0xC9, 0x80, MK}, 6, 2, WSN_E_RSV_1, 0},
  {"RSV1 + bad opcode, deflate", SRV_DEFLATE, {0xC3, 0x80, MK}, 6, 2,
   WSN_E_INVALID_OPCODE, 3},
  {"RSV1 on ping, deflate", SRV_DEFLATE, {0xC9, 0x80, MK}, 6, 2, WSN_E_RSV_1,
   0},
  {"RSV1 on close, deflate", SRV_DEFLATE, {0xC8, 0x80, MK}, 6, 2, WSN_E_RSV_1,
   0},
  /* FIN is checked before RSV1 on control frames */
  {"RSV1 on non-FIN ping, deflate", SRV_DEFLATE, {0x49, 0x80, MK}, 6, 2,
   WSN_E_EXPECTED_FIN, 0},
  {"RSV1 on continuation, deflate", SRV_DEFLATE,
   {0x41, 0x80, MK, 0xC0, 0x80, MK}, 12, 8, WSN_E_RSV_1, 0},
  /* RSV1 on a continuation is RSV_1 even without a message in progress */
  {"RSV1 on lone continuation, deflate", SRV_DEFLATE, {0xC0, 0x80, MK}, 6, 2,
   WSN_E_RSV_1, 0},
  {"continuation, no message", SRV, {0x80, 0x80, MK}, 6, 2,
   WSN_E_INVALID_OPCODE, 0},
  {"continuation, no message, client", CLI, {0x00, 0x00}, 2, 2,
   WSN_E_INVALID_OPCODE, 0},
  {"text inside fragmented", SRV, {0x01, 0x80, MK, 0x81, 0x80, MK}, 12, 8,
   WSN_E_INVALID_OPCODE, 1},
  {"binary inside fragmented", SRV, {0x02, 0x80, MK, 0x82, 0x80, MK}, 12, 8,
   WSN_E_INVALID_OPCODE, 2},
  {"non-FIN text inside fragmented", SRV, {0x01, 0x80, MK, 0x01, 0x80, MK}, 12,
   8, WSN_E_INVALID_OPCODE, 1},
  {"opcode 3", SRV, {0x83, 0x80, MK}, 6, 2, WSN_E_INVALID_OPCODE, 3},
  {"opcode 7", SRV, {0x87, 0x80, MK}, 6, 2, WSN_E_INVALID_OPCODE, 7},
  {"opcode 0xB", SRV, {0x8B, 0x80, MK}, 6, 2, WSN_E_INVALID_OPCODE, 11},
  {"opcode 0xF", SRV, {0x8F, 0x80, MK}, 6, 2, WSN_E_INVALID_OPCODE, 15},
  /* opcode is checked before the mask bit */
  {"opcode 4 unmasked", SRV, {0x84, 0x00}, 2, 2, WSN_E_INVALID_OPCODE, 4},
  {"ping not FIN", SRV, {0x09, 0x80, MK}, 6, 2, WSN_E_EXPECTED_FIN, 0},
  {"close not FIN", SRV, {0x08, 0x80, MK}, 6, 2, WSN_E_EXPECTED_FIN, 0},
  {"pong not FIN", SRV, {0x0A, 0x80, MK}, 6, 2, WSN_E_EXPECTED_FIN, 0},
  {"ping 126", SRV, {0x89, 0xFE, 0x00, 0x7E, MK}, 8, 2, WSN_E_CONTROL_LENGTH,
   126},
  {"pong 127", SRV, {0x8A, 0xFF, 0, 0, 0, 0, 0, 0, 0, 200, MK}, 14, 2,
   WSN_E_CONTROL_LENGTH, 127},
  /* length is checked before the mask bit */
  {"ping 126 unmasked", SRV, {0x89, 0x7E, 0x00, 0x7E}, 4, 2,
   WSN_E_CONTROL_LENGTH, 126},
  {"close length 1", SRV, {0x88, 0x81, MK, 0x03}, 7, 2, WSN_E_CONTROL_LENGTH,
   1},
  {"close length 1 unmasked", SRV, {0x88, 0x01, 0x03}, 3, 2,
   WSN_E_CONTROL_LENGTH, 1},
  {"close length 1, client", CLI, {0x88, 0x01, 0x03}, 3, 2,
   WSN_E_CONTROL_LENGTH, 1},
  {"server: unmasked text", SRV, {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, 7, 2,
   WSN_E_EXPECTED_MASK, 0},
  {"server: unmasked ping", SRV, {0x89, 0x00}, 2, 2, WSN_E_EXPECTED_MASK, 0},
  {"client: masked text", CLI, {0x81, 0x81, MK, 'x'}, 7, 2,
   WSN_E_UNEXPECTED_MASK, 0},
  {"client: masked close", CLI, {0x88, 0x80, MK}, 6, 2, WSN_E_UNEXPECTED_MASK,
   0},
  {"64-bit length 2^53", SRV, {0x82, 0xFF, 0x00, 0x20, 0, 0, 0, 0, 0, 0, MK},
   14, 10, WSN_E_DATA_LENGTH, 0},
  {"64-bit length MSB set", CLI, {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1}, 10,
   10, WSN_E_DATA_LENGTH, 0},
  {"64-bit length all ones", CLI,
   {0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 10, 10,
   WSN_E_DATA_LENGTH, 0},
  /* max_payload: fails on the header, before the mask key arrives */
  {"max_payload single frame", {1, 0, 100}, {0x82, 0xFE, 0x00, 101, MK}, 8, 4,
   WSN_E_MESSAGE_LENGTH, 0},
  {"max_payload 7-bit", {1, 0, 10}, {0x82, 0x8B, MK}, 6, 2,
   WSN_E_MESSAGE_LENGTH, 0},
  {"max_payload 64-bit", {0, 0, 1000},
   {0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0}, 10, 10, WSN_E_MESSAGE_LENGTH, 0},
};

static void check_err_case(int *failed_, const err_case_t *c) {
  bytes_t s = {0};
  trace_t t;
  char why[200];
  put(&s, c->bytes, c->len);

  /* Error fires exactly at the trigger prefix, whatever the chunking. */
  if (!run_all_ways(&t, &s, c->cfg, why, sizeof(why)))
    FAIL_("%s: chunking differs: %s", c->name, why);
  rec_t l = last(&t);
  trace_free(&t);
  if (l.type != WSN_FRAME_ERROR || l.error != c->error || l.arg != c->arg)
    FAIL_("%s: got type %d error %d arg %u, want error %d arg %u", c->name,
          l.type, l.error, l.arg, c->error, c->arg);

  bytes_t pre = {0};
  put(&pre, c->bytes, c->trigger);
  run(&t, &pre, c->cfg, CHUNK_WHOLE);
  l = last(&t);
  trace_free(&t);
  if (l.type != WSN_FRAME_ERROR || l.error != c->error)
    FAIL_("%s: no error with the first %zu bytes", c->name, c->trigger);
  pre.len = c->trigger - 1;
  run(&t, &pre, c->cfg, CHUNK_BYTES);
  l = last(&t);
  trace_free(&t);
  if (l.type == WSN_FRAME_ERROR)
    FAIL_("%s: error already with %zu bytes", c->name, c->trigger - 1);
  free(pre.b);
  free(s.b);
}

TEST(frame_error_table) {
  for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
    check_err_case(failed_, &err_cases[i]);
    if (*failed_) return;
  }
}

TEST(frame_error_sticky_and_no_events_after) {
  wsn_frame_parser_t p;
  wsn_frame_event_t e;
  uint8_t b[] = {0x83, 0x80, MK, 0x81, 0x80, MK};
  wsn_frame_parser_init(&p, 1, 0);
  ASSERT_EQ(wsn_frame_parse(&p, b, sizeof(b), &e), 0);
  ASSERT_EQ(e.type, WSN_FRAME_ERROR);
  ASSERT_EQ(e.error, WSN_E_INVALID_OPCODE);
  ASSERT_EQ(e.error_arg, 3);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(wsn_frame_parse(&p, b + 6, 6, &e), 0);
    ASSERT_EQ(e.type, WSN_FRAME_ERROR);
    ASSERT_EQ(e.error, WSN_E_INVALID_OPCODE);
    ASSERT_EQ(e.error_arg, 3);
  }
  ASSERT_EQ(wsn_frame_parse(&p, NULL, 0, &e), 0);
  ASSERT_EQ(e.type, WSN_FRAME_ERROR);
}

TEST(frame_error_mid_stream_split_header) {
  /* A good frame, then a bad header split across calls: the error comes as
   * soon as its two bytes are in, through the spill buffer. */
  wsn_frame_parser_t p;
  wsn_frame_event_t e;
  uint8_t a[] = {0x81, 0x80, MK, 0x8F}; /* empty text, then half a header */
  uint8_t b[] = {0x80};
  wsn_frame_parser_init(&p, 1, 0);
  size_t off = 0;
  int types[8], n = 0;
  for (;;) {
    off += wsn_frame_parse(&p, a + off, sizeof(a) - off, &e);
    types[n++] = (int)e.type;
    if (e.type == WSN_FRAME_NEED_MORE || n == 8) break;
  }
  ASSERT_EQ(n, 3);
  ASSERT_EQ(types[0], WSN_FRAME_HEADER);
  ASSERT_EQ(types[1], WSN_FRAME_END);
  ASSERT_EQ(off, sizeof(a));
  ASSERT_EQ(wsn_frame_parse(&p, b, 1, &e), 0);
  ASSERT_EQ(e.type, WSN_FRAME_ERROR);
  ASSERT_EQ(e.error, WSN_E_INVALID_OPCODE);
  ASSERT_EQ(e.error_arg, 15);
}

/* ----------------------------------------------------- max_payload cases */

static int last_error(const bytes_t *s, cfg_t cfg, rec_t *out) {
  trace_t t;
  char why[200];
  int ok = run_all_ways(&t, s, cfg, why, sizeof(why));
  if (!ok) fprintf(stderr, "  chunking: %s\n", why);
  *out = last(&t);
  trace_free(&t);
  return ok;
}

TEST(frame_max_payload_across_fragments) {
  uint8_t d[200];
  memset(d, 'a', sizeof(d));
  cfg_t cfg = {1, 0, 100};
  rec_t l;

  /* 60 + 41 > 100: the continuation's header fails, with a ping in between
   * that must not count. */
  bytes_t s = {0};
  ref_frame(&s, 0, 0, WSN_OP_TEXT, d, 60, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PING, d, 125, KEY);
  size_t before = s.len;
  ref_frame(&s, 1, 0, WSN_OP_CONT, d, 41, KEY);
  ASSERT(last_error(&s, cfg, &l));
  ASSERT_EQ(l.type, WSN_FRAME_ERROR);
  ASSERT_EQ(l.error, WSN_E_MESSAGE_LENGTH);
  ASSERT_EQ(l.arg, 0);
  /* ...at its 2-byte header, before the mask key. */
  bytes_t pre = {0};
  put(&pre, s.b, before + 2);
  ASSERT(last_error(&pre, cfg, &l));
  ASSERT_EQ(l.error, WSN_E_MESSAGE_LENGTH);
  free(pre.b);
  free(s.b);

  /* 60 + 40 == 100 is fine; the counter resets for the next message, and
   * zero-length fragments count nothing. */
  s = (bytes_t){0};
  ref_frame(&s, 0, 0, WSN_OP_TEXT, d, 60, KEY);
  ref_frame(&s, 0, 0, WSN_OP_CONT, d, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PONG, d, 125, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, d, 40, KEY);
  ref_frame(&s, 1, 0, WSN_OP_BINARY, d, 100, KEY);
  ref_frame(&s, 0, 0, WSN_OP_BINARY, d, 99, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, d, 1, KEY);
  ASSERT(last_error(&s, cfg, &l));
  ASSERT_EQ(l.type, WSN_FRAME_END);
  /* One byte more in a later message fails. */
  ref_frame(&s, 0, 0, WSN_OP_BINARY, d, 50, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, d, 51, KEY);
  ASSERT(last_error(&s, cfg, &l));
  ASSERT_EQ(l.type, WSN_FRAME_ERROR);
  ASSERT_EQ(l.error, WSN_E_MESSAGE_LENGTH);
  free(s.b);

  /* Control frames never count, even at 125 with a tiny limit. */
  s = (bytes_t){0};
  ref_frame(&s, 1, 0, WSN_OP_PING, d, 125, KEY);
  ref_frame(&s, 0, 0, WSN_OP_BINARY, d, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CLOSE, d, 125, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, d, 1, KEY);
  cfg.max_payload = 1;
  ASSERT(last_error(&s, cfg, &l));
  ASSERT_EQ(l.type, WSN_FRAME_END);
  free(s.b);

  /* 0 means unlimited. */
  s = (bytes_t){0};
  ref_frame(&s, 1, 0, WSN_OP_BINARY, NULL, 0, KEY);
  ref_header(&s, 1, 0, WSN_OP_BINARY, 1ull << 40, KEY);
  cfg.max_payload = 0;
  ASSERT(last_error(&s, cfg, &l));
  ASSERT_EQ(l.type, WSN_FRAME_HEADER);
  ASSERT_EQ(l.length, 1ull << 40);
  free(s.b);
}

/* ---------------------------------------------------------- good streams */

TEST(frame_length_forms) {
  static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 200000};
  for (int srv = 0; srv < 2; srv++) {
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
      size_t n = (size_t)lens[i];
      uint8_t *d = malloc(n + 1);
      for (size_t j = 0; j < n; j++) d[j] = (uint8_t)(j * 7 + i);
      bytes_t s = {0};
      ref_frame(&s, 1, 0, WSN_OP_BINARY, d, n, srv ? KEY : NULL);
      size_t hs = s.len - n;
      ASSERT_EQ(hs, (n < 126 ? 2 : n < 65536 ? 4 : 10) + (srv ? 4 : 0));

      trace_t want = {0}, got;
      expect_frame(&want, 1, WSN_OP_BINARY, 0, d, n);
      cfg_t cfg = {srv, 0, 0};
      char why[200];
      if (!run_all_ways(&got, &s, cfg, why, sizeof(why)))
        FAIL_("len %zu: %s", n, why);
      if (!traces_equal(&want, &got, why, sizeof(why)))
        FAIL_("len %zu srv %d: %s", n, srv, why);

      /* Whole buffer: DATA is one span, unmasked in place in the buffer. */
      wsn_frame_parser_t p;
      wsn_frame_event_t e;
      wsn_frame_parser_init(&p, srv, 0);
      ASSERT_EQ(wsn_frame_parse(&p, s.b, s.len, &e), hs);
      ASSERT_EQ(e.type, WSN_FRAME_HEADER);
      ASSERT_EQ(e.length, n);
      if (n) {
        ASSERT_EQ(wsn_frame_parse(&p, s.b + hs, s.len - hs, &e), n);
        ASSERT_EQ(e.type, WSN_FRAME_DATA);
        ASSERT(e.data.base == s.b + hs);
        ASSERT_MEM_EQ(s.b + hs, d, n);
      }
      ASSERT_EQ(wsn_frame_parse(&p, s.b + s.len, 0, &e), 0);
      ASSERT_EQ(e.type, WSN_FRAME_END);
      ASSERT_EQ(wsn_frame_parse(&p, s.b + s.len, 0, &e), 0);
      ASSERT_EQ(e.type, WSN_FRAME_NEED_MORE);

      trace_free(&want);
      trace_free(&got);
      free(s.b);
      free(d);
    }
  }
}

TEST(frame_huge_lengths_header_only) {
  /* Lengths that use the upper 32 bits, up to 2^53 - 1: the header parses;
   * the payload is simply never sent. */
  static const uint64_t lens[] = {1ull << 32, (1ull << 32) + 5,
                                  (1ull << 53) - 1};
  for (size_t i = 0; i < 3; i++) {
    bytes_t s = {0};
    ref_header(&s, 1, 0, WSN_OP_BINARY, lens[i], KEY);
    put(&s, "abcdef", 6);
    ref_mask(s.b + s.len - 6, 6, KEY, 0);
    trace_t t;
    char why[200];
    cfg_t cfg = {1, 0, 0};
    ASSERT(run_all_ways(&t, &s, cfg, why, sizeof(why)));
    ASSERT_EQ(t.n, 2);
    ASSERT_EQ(t.ev[0].type, WSN_FRAME_HEADER);
    ASSERT_EQ(t.ev[0].length, lens[i]);
    ASSERT_EQ(t.ev[1].type, WSN_FRAME_DATA);
    ASSERT_EQ(t.ev[1].length, 6);
    ASSERT_MEM_EQ(t.data.b, "abcdef", 6);
    trace_free(&t);
    free(s.b);
  }
}

TEST(frame_non_minimal_lengths_accepted) {
  /* ws does not require the shortest length form; neither do we. */
  bytes_t s = {0};
  put(&s, (uint8_t[]){0x82, 0x7E, 0x00, 0x03, 'a', 'b', 'c'}, 7);
  put(&s, (uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x02, 'd', 'e'}, 12);
  trace_t t;
  char why[200];
  cfg_t cfg = {0, 0, 0};
  ASSERT(run_all_ways(&t, &s, cfg, why, sizeof(why)));
  ASSERT_EQ(t.n, 6);
  ASSERT_EQ(t.ev[0].length, 3);
  ASSERT_EQ(t.ev[3].length, 2);
  ASSERT_EQ(t.data.len, 5);
  ASSERT_MEM_EQ(t.data.b, "abcde", 5);
  trace_free(&t);
  free(s.b);
}

TEST(frame_zero_length_frames) {
  bytes_t s = {0};
  ref_frame(&s, 1, 0, WSN_OP_TEXT, NULL, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PING, NULL, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CLOSE, NULL, 0, KEY);
  trace_t want = {0}, got;
  expect_frame(&want, 1, WSN_OP_TEXT, 0, NULL, 0);
  expect_frame(&want, 1, WSN_OP_PING, 0, NULL, 0);
  expect_frame(&want, 1, WSN_OP_CLOSE, 0, NULL, 0);
  char why[200];
  cfg_t cfg = {1, 0, 0};
  ASSERT(run_all_ways(&got, &s, cfg, why, sizeof(why)));
  if (!traces_equal(&want, &got, why, sizeof(why))) FAIL_("%s", why);
  trace_free(&want);
  trace_free(&got);
  free(s.b);
}

TEST(frame_control_inside_fragmented_message) {
  wsn_frame_parser_t p;
  wsn_frame_event_t e;
  bytes_t s = {0};
  ref_frame(&s, 0, 0, WSN_OP_TEXT, "Hel", 3, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PING, "p", 1, KEY);
  ref_frame(&s, 0, 0, WSN_OP_CONT, "l", 1, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PONG, NULL, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CLOSE, "\x03\xe8", 2, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, "o", 1, KEY);
  ref_frame(&s, 1, 0, WSN_OP_BINARY, "x", 1, KEY);

  /* Step through whole, checking in_message after every event. */
  static const struct {
    int type, opcode, fin, in_message;
  } want[] = {
    {WSN_FRAME_HEADER, 1, 0, 1}, {WSN_FRAME_DATA, 1, 0, 1},
    {WSN_FRAME_END, 1, 0, 1},    {WSN_FRAME_HEADER, 9, 1, 1},
    {WSN_FRAME_DATA, 9, 1, 1},   {WSN_FRAME_END, 9, 1, 1},
    {WSN_FRAME_HEADER, 0, 0, 1}, {WSN_FRAME_DATA, 0, 0, 1},
    {WSN_FRAME_END, 0, 0, 1},    {WSN_FRAME_HEADER, 10, 1, 1},
    {WSN_FRAME_END, 10, 1, 1},   {WSN_FRAME_HEADER, 8, 1, 1},
    {WSN_FRAME_DATA, 8, 1, 1},   {WSN_FRAME_END, 8, 1, 1},
    {WSN_FRAME_HEADER, 0, 1, 1}, {WSN_FRAME_DATA, 0, 1, 1},
    {WSN_FRAME_END, 0, 1, 0},    {WSN_FRAME_HEADER, 2, 1, 0},
    {WSN_FRAME_DATA, 2, 1, 0},   {WSN_FRAME_END, 2, 1, 0},
    {WSN_FRAME_NEED_MORE, 0, 0, 0},
  };
  wsn_frame_parser_init(&p, 1, 0);
  size_t off = 0;
  bytes_t data = {0};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    off += wsn_frame_parse(&p, s.b + off, s.len - off, &e);
    if ((int)e.type != want[i].type) FAIL_("event %zu: type %d", i, e.type);
    if (e.type != WSN_FRAME_NEED_MORE &&
        (e.opcode != want[i].opcode || e.fin != want[i].fin))
      FAIL_("event %zu: opcode %d fin %d", i, e.opcode, e.fin);
    if (p.in_message != want[i].in_message)
      FAIL_("event %zu: in_message %d", i, p.in_message);
    if (e.type == WSN_FRAME_DATA) put(&data, e.data.base, e.data.len);
  }
  ASSERT_EQ(off, s.len);
  ASSERT_EQ(data.len, 9);
  ASSERT_MEM_EQ(data.b, "Help" "l" "\x03\xe8" "ox", 9);
  free(data.b);

  /* And the same sequence in any chunking. */
  trace_t t;
  char why[200];
  cfg_t cfg = {1, 0, 0};
  ASSERT(run_all_ways(&t, &s, cfg, why, sizeof(why)));
  ASSERT_EQ(t.n, 20);
  trace_free(&t);
  free(s.b);
}

TEST(frame_client_side_unmasked) {
  bytes_t s = {0};
  ref_frame(&s, 0, 0, WSN_OP_BINARY, "\x00\xff\x10", 3, NULL);
  ref_frame(&s, 1, 0, WSN_OP_CONT, "tail", 4, NULL);
  trace_t want = {0}, got;
  expect_frame(&want, 0, WSN_OP_BINARY, 0, (const uint8_t *)"\x00\xff\x10", 3);
  expect_frame(&want, 1, WSN_OP_CONT, 0, (const uint8_t *)"tail", 4);
  char why[200];
  cfg_t cfg = {0, 0, 0};
  ASSERT(run_all_ways(&got, &s, cfg, why, sizeof(why)));
  if (!traces_equal(&want, &got, why, sizeof(why))) FAIL_("%s", why);
  trace_free(&want);
  trace_free(&got);
  free(s.b);
}

TEST(frame_zero_mask_key) {
  /* A zero key is legal; the payload must come back as is. */
  static const uint8_t zero[4] = {0, 0, 0, 0};
  bytes_t s = {0};
  ref_frame(&s, 1, 0, WSN_OP_TEXT, "plain", 5, zero);
  trace_t t;
  char why[200];
  cfg_t cfg = {1, 0, 0};
  ASSERT(run_all_ways(&t, &s, cfg, why, sizeof(why)));
  ASSERT_EQ(t.data.len, 5);
  ASSERT_MEM_EQ(t.data.b, "plain", 5);
  trace_free(&t);
  free(s.b);
}

TEST(frame_rsv1_with_deflate) {
  bytes_t s = {0};
  ref_frame(&s, 0, 4, WSN_OP_TEXT, "ab", 2, KEY);
  ref_frame(&s, 1, 0, WSN_OP_PING, NULL, 0, KEY);
  ref_frame(&s, 1, 0, WSN_OP_CONT, "c", 1, KEY);
  ref_frame(&s, 1, 4, WSN_OP_BINARY, "d", 1, KEY);
  trace_t want = {0}, got;
  expect_frame(&want, 0, WSN_OP_TEXT, 1, (const uint8_t *)"ab", 2);
  expect_frame(&want, 1, WSN_OP_PING, 0, NULL, 0);
  expect_frame(&want, 1, WSN_OP_CONT, 0, (const uint8_t *)"c", 1);
  expect_frame(&want, 1, WSN_OP_BINARY, 1, (const uint8_t *)"d", 1);
  char why[200];
  cfg_t cfg = {1, 1, 0};
  ASSERT(run_all_ways(&got, &s, cfg, why, sizeof(why)));
  if (!traces_equal(&want, &got, why, sizeof(why))) FAIL_("%s", why);
  trace_free(&want);
  trace_free(&got);
  free(s.b);
}

TEST(frame_split_header_consumes_only_header) {
  /* Header split after 1 byte: the second call must consume only the rest
   * of the header and leave the payload in the caller's buffer. */
  bytes_t s = {0};
  ref_frame(&s, 1, 0, WSN_OP_BINARY, "0123456789", 10, KEY);
  for (size_t cut = 1; cut < 6; cut++) {
    wsn_frame_parser_t p;
    wsn_frame_event_t e;
    uint8_t *b = malloc(s.len);
    memcpy(b, s.b, s.len);
    wsn_frame_parser_init(&p, 1, 0);
    ASSERT_EQ(wsn_frame_parse(&p, b, cut, &e), cut);
    ASSERT_EQ(e.type, WSN_FRAME_NEED_MORE);
    ASSERT_EQ(wsn_frame_parse(&p, b + cut, s.len - cut, &e), 6 - cut);
    ASSERT_EQ(e.type, WSN_FRAME_HEADER);
    ASSERT_EQ(e.length, 10);
    ASSERT_EQ(wsn_frame_parse(&p, b + 6, s.len - 6, &e), 10);
    ASSERT_EQ(e.type, WSN_FRAME_DATA);
    ASSERT(e.data.base == b + 6);
    ASSERT_MEM_EQ(b + 6, "0123456789", 10);
    free(b);
  }
  free(s.b);
}

/* ---------------------------------------------------------------- masking */

TEST(frame_mask_vs_reference) {
  uint8_t buf[160], ref[160];
  static const uint8_t keys[3][4] = {
      {0x37, 0xfa, 0x21, 0x3d}, {0xff, 0x00, 0x80, 0x01}, {1, 2, 3, 4}};
  for (int k = 0; k < 3; k++) {
    for (size_t off = 0; off < 8; off++) {
      for (size_t align = 0; align < 8; align++) {
        for (size_t n = 0; n <= 130; n++) {
          for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = ref[i] = (uint8_t)(i * 31 + n);
          wsn_frame_mask(buf + align, n, keys[k], off);
          ref_mask(ref + align, n, keys[k], off);
          /* Bytes around the range must be untouched too. */
          if (memcmp(buf, ref, sizeof(buf)) != 0)
            FAIL_("key %d offset %zu align %zu len %zu", k, off, align, n);
        }
      }
    }
  }
  /* Masking twice is the identity; masking in pieces at running offsets
   * equals masking all at once (how the parser uses mask_pos). */
  uint8_t a[101], b[101];
  for (size_t i = 0; i < sizeof(a); i++) a[i] = b[i] = (uint8_t)(i ^ 0x5a);
  wsn_frame_mask(a, 101, KEY, 0);
  size_t at = 0;
  static const size_t parts[] = {1, 2, 3, 5, 8, 13, 21, 34, 14};
  for (size_t i = 0; i < 9; i++) {
    wsn_frame_mask(b + at, parts[i], KEY, at);
    at += parts[i];
  }
  ASSERT_EQ(at, 101);
  ASSERT_MEM_EQ(a, b, 101);
  wsn_frame_mask(a, 101, KEY, 0);
  for (size_t i = 0; i < sizeof(a); i++) ASSERT_EQ(a[i], (uint8_t)(i ^ 0x5a));
  wsn_frame_mask(NULL, 0, KEY, 3);
}

TEST(frame_mask_copy_vs_reference) {
  uint8_t src[100], dst[120], ref[120];
  for (size_t i = 0; i < sizeof(src); i++) src[i] = (uint8_t)(i * 13 + 1);
  for (size_t align = 0; align < 8; align++) {
    for (size_t n = 0; n <= 90; n++) {
      memset(dst, 0xEE, sizeof(dst));
      memset(ref, 0xEE, sizeof(ref));
      wsn_frame_mask_copy(dst + align, src + (7 - align), n, KEY);
      memcpy(ref + align, src + (7 - align), n);
      ref_mask(ref + align, n, KEY, 0);
      if (memcmp(dst, ref, sizeof(dst)) != 0)
        FAIL_("align %zu len %zu", align, n);
    }
  }
}

/* --------------------------------------------------------- header encoder */

TEST(frame_header_encoder_round_trip) {
  static const uint64_t lens[] = {0,     1,      125,         126,
                                  127,   65535,  65536,       1ull << 32,
                                  70000, 123456, (1ull << 53) - 1};
  static const int ops[] = {WSN_OP_CONT, WSN_OP_TEXT, WSN_OP_BINARY,
                            WSN_OP_CLOSE, WSN_OP_PING, WSN_OP_PONG};
  for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
    for (int masked = 0; masked < 2; masked++) {
      for (int fin = 0; fin < 2; fin++) {
        for (int rsv1 = 0; rsv1 < 2; rsv1++) {
          for (size_t oi = 0; oi < 6; oi++) {
            uint64_t len = lens[li];
            int op = ops[oi];
            uint8_t out[14];
            size_t n = wsn_frame_header(out, fin, rsv1, op, len,
                                        masked ? KEY : NULL);
            ASSERT_EQ(n, wsn_frame_header_size(len, masked));
            bytes_t ref = {0};
            ref_header(&ref, fin, rsv1 ? 4 : 0, op, len, masked ? KEY : NULL);
            ASSERT_EQ(ref.len, n);
            ASSERT_MEM_EQ(out, ref.b, n);
            free(ref.b);

            /* Parse it back where it is legal: data frames (continuation
             * inside a message), control frames only FIN, <= 125, no RSV1. */
            int control = op >= WSN_OP_CLOSE;
            if (control && (!fin || rsv1 || len > 125 || len == 1)) continue;
            if (op == WSN_OP_CONT && rsv1) continue;
            wsn_frame_parser_t p;
            wsn_frame_event_t e;
            wsn_frame_parser_init(&p, masked, 0);
            p.rsv1_allowed = 1;
            if (op == WSN_OP_CONT) p.in_message = 1;
            ASSERT_EQ(wsn_frame_parse(&p, out, n, &e), n);
            ASSERT_EQ(e.type, WSN_FRAME_HEADER);
            ASSERT_EQ(e.opcode, op);
            ASSERT_EQ(e.fin, fin);
            ASSERT_EQ(e.rsv1, rsv1);
            ASSERT_EQ(e.length, len);
            if (masked) ASSERT_MEM_EQ(p.mask, KEY, 4);
          }
        }
      }
    }
  }
  ASSERT_EQ(wsn_frame_header_size(125, 0), 2);
  ASSERT_EQ(wsn_frame_header_size(126, 0), 4);
  ASSERT_EQ(wsn_frame_header_size(65535, 1), 8);
  ASSERT_EQ(wsn_frame_header_size(65536, 1), 14);
}

/* ------------------------------------------------------------ close codes */

TEST(frame_close_code_table) {
  for (uint32_t c = 0; c < 70000; c++) {
    int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
               (c >= 3000 && c <= 4999);
    if (wsn_frame_close_code_valid(c) != want) FAIL_("code %u", c);
  }
  ASSERT(!wsn_frame_close_code_valid(0xFFFFFFFFu));
  ASSERT(wsn_frame_close_code_valid(1000));
  ASSERT(!wsn_frame_close_code_valid(1004));
  ASSERT(!wsn_frame_close_code_valid(1005));
  ASSERT(!wsn_frame_close_code_valid(1006));
  ASSERT(wsn_frame_close_code_valid(1014));
  ASSERT(!wsn_frame_close_code_valid(1015));
  ASSERT(!wsn_frame_close_code_valid(2999));
  ASSERT(wsn_frame_close_code_valid(3000));
  ASSERT(wsn_frame_close_code_valid(4999));
  ASSERT(!wsn_frame_close_code_valid(5000));
}

TEST(frame_check_close) {
  uint32_t code, arg;
  wsn_span_t reason;

  ASSERT_EQ(wsn_frame_check_close(NULL, 0, 0, &code, &reason, &arg), WSN_OK);
  ASSERT_EQ(code, 1005);
  ASSERT_EQ(reason.len, 0);

  const uint8_t one[] = {0x03};
  ASSERT_EQ(wsn_frame_check_close(one, 1, 0, &code, &reason, &arg),
            WSN_E_CONTROL_LENGTH);
  ASSERT_EQ(arg, 1);

  const uint8_t ok[] = {0x03, 0xE8, 'b', 'y', 'e'};
  ASSERT_EQ(wsn_frame_check_close(ok, 5, 0, &code, &reason, &arg), WSN_OK);
  ASSERT_EQ(code, 1000);
  ASSERT(reason.base == ok + 2);
  ASSERT_EQ(reason.len, 3);
  ASSERT_EQ(arg, 0);

  const uint8_t bare[] = {0x0F, 0xA0}; /* 4000, no reason */
  ASSERT_EQ(wsn_frame_check_close(bare, 2, 0, &code, &reason, &arg), WSN_OK);
  ASSERT_EQ(code, 4000);
  ASSERT_EQ(reason.len, 0);

  static const uint32_t bad_codes[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
    uint8_t b[4] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i], 'h',
                    'i'};
    ASSERT_EQ(wsn_frame_check_close(b, 4, 0, &code, &reason, &arg),
              WSN_E_CLOSE_CODE);
    ASSERT_EQ(arg, bad_codes[i]);
  }

  /* The code is checked before the reason, as in ws. */
  const uint8_t both_bad[] = {0x03, 0xEC, 0xFF}; /* 1004 + invalid UTF-8 */
  ASSERT_EQ(wsn_frame_check_close(both_bad, 3, 0, &code, &reason, &arg),
            WSN_E_CLOSE_CODE);
  ASSERT_EQ(arg, 1004);

  const uint8_t bad_utf8[] = {0x03, 0xE8, 'o', 0xED, 0xA0, 0x80};
  ASSERT_EQ(wsn_frame_check_close(bad_utf8, 6, 0, &code, &reason, &arg),
            WSN_E_INVALID_UTF8);
  ASSERT_EQ(arg, 0);
  ASSERT_EQ(wsn_frame_check_close(bad_utf8, 6, 1, &code, &reason, &arg),
            WSN_OK);
  ASSERT_EQ(code, 1000);
  ASSERT_EQ(reason.len, 4);

  /* Truncated UTF-8 at the end of the reason is invalid too. */
  const uint8_t trunc[] = {0x0B, 0xB8, 0xE2, 0x82};
  ASSERT_EQ(wsn_frame_check_close(trunc, 4, 0, &code, &reason, &arg),
            WSN_E_INVALID_UTF8);

  /* Outputs are optional. */
  ASSERT_EQ(wsn_frame_check_close(ok, 5, 0, NULL, NULL, NULL), WSN_OK);
  ASSERT_EQ(wsn_frame_check_close(one, 1, 0, NULL, NULL, NULL),
            WSN_E_CONTROL_LENGTH);
}

/* ------------------------------------------------ randomized chunking test */

/*
 * Generates a random valid stream: a few messages, each fragmented at
 * random, control frames sprinkled between fragments, lengths biased to the
 * form boundaries, random keys (sometimes zero). With probability 1/4 one
 * bad frame is appended; its error comes from running the stream whole.
 * Fills *want with the expected events and payload of the valid part.
 */
static void gen_stream(bytes_t *s, trace_t *want, int is_server,
                       int rsv1_allowed, int *bad_tail) {
  static const size_t edge[] = {0,   1,   2,   3,     4,     5,     7,
                                8,   9,   125, 126,   127,   65535, 65536,
                                200, 1000};
  uint8_t *d = malloc(70000);
  for (size_t i = 0; i < 70000; i++) d[i] = (uint8_t)rnd();
  int nmsg = 1 + (int)(rnd() % 6);
  for (int m = 0; m < nmsg; m++) {
    int op = rnd() % 2 ? WSN_OP_TEXT : WSN_OP_BINARY;
    int nfrag = 1 + (int)(rnd() % 4);
    int rsv1 = rsv1_allowed && rnd() % 2;
    for (int f = 0; f < nfrag; f++) {
      /* Control frames before any fragment, including mid-message. */
      while (rnd() % 4 == 0) {
        static const int ctl[] = {WSN_OP_PING, WSN_OP_PONG, WSN_OP_CLOSE};
        int cop = ctl[rnd() % 3];
        size_t cl = rnd() % 3 == 0 ? 125 : rnd() % 20;
        if (cop == WSN_OP_CLOSE && cl == 1) cl = 2;
        uint8_t key[4];
        for (int j = 0; j < 4; j++) key[j] = (uint8_t)rnd();
        const uint8_t *cd = d + rnd() % 1000;
        ref_frame(s, 1, 0, cop, cd, cl, is_server ? key : NULL);
        expect_frame(want, 1, cop, 0, cd, cl);
      }
      size_t len;
      uint32_t r = rnd() % 10;
      if (r < 5) len = edge[rnd() % (sizeof(edge) / sizeof(edge[0]))];
      else if (r < 9) len = rnd() % 300;
      else len = rnd() % 70000;
      if (len > 65536 && rnd() % 4) len = rnd() % 5000; /* keep it quick */
      int fin = f == nfrag - 1;
      int fop = f == 0 ? op : WSN_OP_CONT;
      int frsv = f == 0 ? rsv1 : 0;
      uint8_t key[4] = {0, 0, 0, 0};
      if (rnd() % 8) {
        for (int j = 0; j < 4; j++) key[j] = (uint8_t)rnd();
      }
      const uint8_t *fd = d + rnd() % (70000 - len + 1);
      ref_frame(s, fin, frsv ? 4 : 0, fop, fd, len, is_server ? key : NULL);
      expect_frame(want, fin, fop, frsv, fd, len);
    }
  }
  *bad_tail = rnd() % 4 == 0;
  if (*bad_tail) {
    /* Pick a bad header; some are bad only given the state (e.g. a
     * continuation with no message). Padded with payload-ish bytes. */
    static const uint8_t bad[][2] = {{0xA1, 0x80}, {0x83, 0x80}, {0x80, 0x80},
                                     {0x09, 0x80}, {0x89, 0xFE}, {0x88, 0x81},
                                     {0x81, 0x00}, {0x8B, 0x80}, {0xC9, 0x80}};
    uint8_t b[2];
    memcpy(b, bad[rnd() % 9], 2);
    if (!is_server && !(b[0] == 0x81 && b[1] == 0x00)) b[1] &= 0x7F;
    if (!is_server && b[0] == 0x81) b[1] = 0x85; /* masked on a client */
    put(s, b, 2);
    put(s, d, 20);
  }
  free(d);
}

TEST(frame_randomized_chunking) {
  rng_state = 0x0123456789ABCDEFull;
  int errors_seen = 0;
  for (int iter = 0; iter < 400; iter++) {
    int is_server = iter % 3 != 0;
    int rsv1_allowed = iter % 5 == 0;
    bytes_t s = {0};
    trace_t want = {0}, whole, other;
    int bad_tail;
    gen_stream(&s, &want, is_server, rsv1_allowed, &bad_tail);
    cfg_t cfg = {is_server, rsv1_allowed, 0};
    char why[200];

    run(&whole, &s, cfg, CHUNK_WHOLE);
    if (bad_tail) {
      /* The valid prefix matches the generator; then exactly one error. */
      rec_t l = last(&whole);
      if (l.type != WSN_FRAME_ERROR) FAIL_("iter %d: no error at the end", iter);
      errors_seen++;
      whole.n--;
    }
    if (!traces_equal(&want, &whole, why, sizeof(why)))
      FAIL_("iter %d: whole vs expected: %s", iter, why);
    if (bad_tail) whole.n++;

    /* Byte by byte on a subset (it is the slowest), random chunks on all. */
    int modes = iter % 4 == 0 ? 2 : 1;
    for (int m = 0; m < modes; m++) {
      run(&other, &s, cfg, m == 0 ? CHUNK_RANDOM : CHUNK_BYTES);
      if (!traces_equal(&whole, &other, why, sizeof(why)))
        FAIL_("iter %d mode %d: %s", iter, m, why);
      trace_free(&other);
    }
    trace_free(&want);
    trace_free(&whole);
    free(s.b);
  }
  ASSERT(errors_seen > 50);
}

TEST(frame_randomized_with_max_payload) {
  /* Same generator with a limit: whatever the stream, every chunking must
   * agree, including on where MESSAGE_LENGTH fires. */
  rng_state = 0xFEEDFACECAFEBEEFull;
  int limited = 0;
  for (int iter = 0; iter < 150; iter++) {
    bytes_t s = {0};
    trace_t want = {0}, whole, other;
    int bad_tail;
    gen_stream(&s, &want, 1, 0, &bad_tail);
    cfg_t cfg = {1, 0, 1 + rnd() % 2000};
    char why[200];
    run(&whole, &s, cfg, CHUNK_WHOLE);
    if (last(&whole).type == WSN_FRAME_ERROR &&
        last(&whole).error == WSN_E_MESSAGE_LENGTH)
      limited++;
    run(&other, &s, cfg, iter % 2 ? CHUNK_RANDOM : CHUNK_BYTES);
    if (!traces_equal(&whole, &other, why, sizeof(why)))
      FAIL_("iter %d: %s", iter, why);
    trace_free(&want);
    trace_free(&whole);
    trace_free(&other);
    free(s.b);
  }
  ASSERT(limited > 20);
}

RUN_TESTS()
