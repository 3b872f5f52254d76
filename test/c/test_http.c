/* Tests for src/http.c: the HTTP/1.1 head parser and its helpers. */
#include "http.h"
#include "runner.h"

#include <stdlib.h>

static const char upgrade_req[] =
    "GET /chat?x=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version:13\r\n"
    "X-Padded: \t value with  inner  spaces \t \r\n"
    "X-Empty:\r\n"
    "\r\n";

static const char upgrade_res[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

/* Heads are big (128 headers): keep them off the stack of every test. */
static wsn_http_head_t H, H2;

static int req(const char *s) {
  return wsn_http_parse_request(s, strlen(s), 0, &H);
}
static int reqn(const char *s, size_t n) {
  return wsn_http_parse_request(s, n, 0, &H);
}
static int res(const char *s) {
  return wsn_http_parse_response(s, strlen(s), 0, &H);
}

static int span_is(const char *p, size_t n, const char *s) {
  return p != NULL && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* ---- well-formed heads --------------------------------------------------- */

TEST(request_fields) {
  ASSERT_EQ(req(upgrade_req), sizeof(upgrade_req) - 1);
  ASSERT(span_is(H.method, H.method_len, "GET"));
  ASSERT(span_is(H.path, H.path_len, "/chat?x=1"));
  ASSERT_EQ(H.minor_version, 1);
  ASSERT_EQ(H.status, 0);
  ASSERT(H.reason == NULL);
  ASSERT_EQ(H.num_headers, 7);
  ASSERT(span_is(H.headers[0].name, H.headers[0].name_len, "Host"));
  ASSERT(span_is(H.headers[0].value, H.headers[0].value_len,
                 "server.example.com"));
  ASSERT(span_is(H.headers[4].name, H.headers[4].name_len,
                 "Sec-WebSocket-Version"));
  ASSERT(span_is(H.headers[4].value, H.headers[4].value_len, "13"));
  /* OWS trimmed at both ends, kept inside. */
  ASSERT(span_is(H.headers[5].value, H.headers[5].value_len,
                 "value with  inner  spaces"));
  ASSERT_EQ(H.headers[6].value_len, 0);
  ASSERT(H.headers[6].value != NULL);
}

TEST(request_http10_and_no_headers) {
  ASSERT_EQ(req("GET / HTTP/1.0\r\n\r\n"), 18);
  ASSERT_EQ(H.minor_version, 0);
  ASSERT_EQ(H.num_headers, 0);
  ASSERT(span_is(H.path, H.path_len, "/"));
}

TEST(request_target_forms_and_obs_text) {
  ASSERT(req("OPTIONS * HTTP/1.1\r\n\r\n") > 0);
  ASSERT(span_is(H.method, H.method_len, "OPTIONS"));
  ASSERT(span_is(H.path, H.path_len, "*"));
  ASSERT(req("GET http://h:80/a%20b?c=d#e HTTP/1.1\r\n\r\n") > 0);
  ASSERT(span_is(H.path, H.path_len, "http://h:80/a%20b?c=d#e"));
  /* Methods are any token, not a fixed list. */
  ASSERT(req("M-SEARCH~! / HTTP/1.1\r\n\r\n") > 0);
  /* obs-text (bytes >= 0x80) is allowed in values and targets. */
  ASSERT(req("GET /\xc3\xa9 HTTP/1.1\r\nX: caf\xc3\xa9 \xff\r\n\r\n") > 0);
  ASSERT(span_is(H.headers[0].value, H.headers[0].value_len,
                 "caf\xc3\xa9 \xff"));
  /* Every tchar is accepted in a header name. */
  ASSERT(req("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n") > 0);
  ASSERT(span_is(H.headers[0].name, H.headers[0].name_len,
                 "!#$%&'*+-.^_`|~09AZaz"));
}

TEST(request_stops_at_head_end) {
  /* Frame bytes right after the head are not part of it. */
  char buf[64];
  const char *head = "GET / HTTP/1.1\r\nA: b\r\n\r\n";
  size_t n = strlen(head);
  memcpy(buf, head, n);
  memcpy(buf + n, "\x81\x85\n\r\n\0", 6);
  ASSERT_EQ(reqn(buf, n + 6), n);
  ASSERT_EQ(H.num_headers, 1);
}

TEST(response_fields) {
  ASSERT_EQ(res(upgrade_res), sizeof(upgrade_res) - 1);
  ASSERT_EQ(H.status, 101);
  ASSERT_EQ(H.minor_version, 1);
  ASSERT(span_is(H.reason, H.reason_len, "Switching Protocols"));
  ASSERT(H.method == NULL);
  ASSERT(H.path == NULL);
  ASSERT_EQ(H.num_headers, 3);
  ASSERT(span_is(H.headers[2].value, H.headers[2].value_len,
                 "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

TEST(response_reason_forms) {
  ASSERT(res("HTTP/1.1 101\r\n\r\n") > 0);
  ASSERT_EQ(H.status, 101);
  ASSERT_EQ(H.reason_len, 0);
  ASSERT(res("HTTP/1.1 101 \r\n\r\n") > 0);
  ASSERT_EQ(H.reason_len, 0);
  ASSERT(res("HTTP/1.0 404 Not\tFound here\r\n\r\n") > 0);
  ASSERT_EQ(H.minor_version, 0);
  ASSERT_EQ(H.status, 404);
  ASSERT(span_is(H.reason, H.reason_len, "Not\tFound here"));
  ASSERT(res("HTTP/1.1 999 \xe9\r\n\r\n") > 0);
  ASSERT_EQ(H.status, 999);
}

/* ---- incremental parsing ------------------------------------------------- */

/* Same spans relative to the buffer start, same counts, same result. */
static int same_head(const wsn_http_head_t *a, const wsn_http_head_t *b,
                     const char *ba, const char *bb) {
#define OFF(h, buf, f) ((h)->f ? (long)((h)->f - (buf)) : -1L)
  if (OFF(a, ba, method) != OFF(b, bb, method) ||
      a->method_len != b->method_len || OFF(a, ba, path) != OFF(b, bb, path) ||
      a->path_len != b->path_len || a->status != b->status ||
      OFF(a, ba, reason) != OFF(b, bb, reason) ||
      a->reason_len != b->reason_len ||
      a->minor_version != b->minor_version ||
      a->num_headers != b->num_headers)
    return 0;
  for (size_t i = 0; i < a->num_headers; i++) {
    const wsn_http_header_t *x = &a->headers[i], *y = &b->headers[i];
    if (OFF(x, ba, name) != OFF(y, bb, name) || x->name_len != y->name_len ||
        OFF(x, ba, value) != OFF(y, bb, value) || x->value_len != y->value_len)
      return 0;
  }
  return 1;
#undef OFF
}

typedef int (*parse_fn)(const char *, size_t, size_t, wsn_http_head_t *);

/* Feeds `s` one byte at a time into a growing buffer (a fresh copy each
 * time, so ASan sees any read past len). */
static int byte_at_a_time(parse_fn parse, const char *s, size_t n,
                          wsn_http_head_t *out, size_t *last_len) {
  size_t prev = 0;
  int r = WSN_HTTP_INCOMPLETE;
  for (size_t len = 1; len <= n; len++) {
    char *copy = malloc(len);
    memcpy(copy, s, len);
    r = parse(copy, len, prev, out);
    free(copy);
    *last_len = len;
    if (r != WSN_HTTP_INCOMPLETE) return r;
    prev = len;
  }
  return r;
}

TEST(incremental_request_one_byte_at_a_time) {
  size_t n = sizeof(upgrade_req) - 1, last = 0;
  /* Spans into a freed copy would be useless: parse into H from a stable
   * buffer, one byte at a time, then compare with a whole parse. */
  size_t prev = 0;
  for (size_t len = 1; len < n; len++) {
    ASSERT_EQ(wsn_http_parse_request(upgrade_req, len, prev, &H),
              WSN_HTTP_INCOMPLETE);
    prev = len;
  }
  ASSERT_EQ(wsn_http_parse_request(upgrade_req, n, prev, &H), n);
  ASSERT_EQ(wsn_http_parse_request(upgrade_req, n, 0, &H2), n);
  ASSERT(same_head(&H, &H2, upgrade_req, upgrade_req));
  /* Also with exact-size heap copies, so any over-read is caught. */
  ASSERT_EQ(byte_at_a_time(wsn_http_parse_request, upgrade_req, n, &H, &last),
            n);
  ASSERT_EQ(last, n);
}

TEST(incremental_response_one_byte_at_a_time) {
  size_t n = sizeof(upgrade_res) - 1, last = 0, prev = 0;
  for (size_t len = 1; len < n; len++) {
    ASSERT_EQ(wsn_http_parse_response(upgrade_res, len, prev, &H),
              WSN_HTTP_INCOMPLETE);
    prev = len;
  }
  ASSERT_EQ(wsn_http_parse_response(upgrade_res, n, prev, &H), n);
  ASSERT_EQ(wsn_http_parse_response(upgrade_res, n, 0, &H2), n);
  ASSERT(same_head(&H, &H2, upgrade_res, upgrade_res));
  ASSERT_EQ(byte_at_a_time(wsn_http_parse_response, upgrade_res, n, &H, &last),
            n);
  ASSERT_EQ(last, n);
}

TEST(incremental_in_chunks) {
  /* Every split point, two calls: the second call's prev_len is the first
   * call's len. The terminator may straddle the split. */
  size_t n = sizeof(upgrade_req) - 1;
  ASSERT_EQ(wsn_http_parse_request(upgrade_req, n, 0, &H2), n);
  for (size_t cut = 1; cut < n; cut++) {
    ASSERT_EQ(wsn_http_parse_request(upgrade_req, cut, 0, &H),
              WSN_HTTP_INCOMPLETE);
    ASSERT_EQ(wsn_http_parse_request(upgrade_req, n, cut, &H), n);
    ASSERT(same_head(&H, &H2, upgrade_req, upgrade_req));
  }
}

TEST(incremental_errors_match_whole) {
  /* An error in the head: the one-byte-at-a-time run ends in the same error
   * as the whole parse (a bare LF is reported as soon as it arrives). */
  static const char *bad[] = {
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t n = strlen(bad[i]), last = 0;
    int whole = reqn(bad[i], n);
    ASSERT(whole < WSN_HTTP_INCOMPLETE);
    ASSERT_EQ(byte_at_a_time(wsn_http_parse_request, bad[i], n, &H, &last),
              whole);
  }
}

TEST(bare_lf_reported_before_head_completes) {
  ASSERT_EQ(req("GET / HTTP/1.1\n"), WSN_HTTP_E_BAD);
  ASSERT_EQ(req("\n"), WSN_HTTP_E_BAD);
  ASSERT_EQ(req("GET / HTTP/1.1\r\nHost: x\n"), WSN_HTTP_E_BAD);
  ASSERT_EQ(req("GET / HTTP/1.1\r\nHost: x\r"), WSN_HTTP_INCOMPLETE);
}

/* A peer that does not answer HTTP fails as soon as its first bytes show
 * it, as Node's parser does (HPE_INVALID_CONSTANT), not when a head ends. */
TEST(response_not_http_fails_before_head_end) {
  ASSERT_EQ(res("foo\r\n"), WSN_HTTP_E_BAD);
  ASSERT_EQ(res("f"), WSN_HTTP_E_BAD);
  ASSERT_EQ(res("HTTX"), WSN_HTTP_E_BAD);
  ASSERT_EQ(res("\r\nfoo"), WSN_HTTP_E_BAD);
  ASSERT_EQ(res("H"), WSN_HTTP_INCOMPLETE);
  ASSERT_EQ(res("HTTP/"), WSN_HTTP_INCOMPLETE);
  ASSERT_EQ(res("\r\nHTT"), WSN_HTTP_INCOMPLETE);
  ASSERT_EQ(res("HTTP/1.1 101 OK\r\n"), WSN_HTTP_INCOMPLETE);
}

TEST(prev_len_past_len_is_harmless) {
  ASSERT_EQ(wsn_http_parse_request(upgrade_req, 10, 50, &H),
            WSN_HTTP_INCOMPLETE);
}

/* ---- rejections ---------------------------------------------------------- */

typedef struct {
  const char *s;
  size_t n; /* 0: strlen */
  int want;
} bad_case_t;

#define BAD(s) {s, 0, WSN_HTTP_E_BAD}
#define BADN(s) {s, sizeof(s) - 1, WSN_HTTP_E_BAD}
#define VER(s) {s, 0, WSN_HTTP_E_VERSION}

static const bad_case_t bad_requests[] = {
    /* request line */
    BAD(" / HTTP/1.1\r\n\r\n"),             /* empty method */
    BAD("GE(T / HTTP/1.1\r\n\r\n"),         /* method not a token */
    BAD("GET\t/ HTTP/1.1\r\n\r\n"),
    BAD("GET  / HTTP/1.1\r\n\r\n"),         /* two spaces */
    BAD("GET / HTTP/1.1 \r\n\r\n"),         /* trailing space */
    BAD("GET /  HTTP/1.1\r\n\r\n"),
    BAD("GET HTTP/1.1\r\n\r\n"),            /* no target */
    BAD("GET /a\tb HTTP/1.1\r\n\r\n"),      /* control in target */
    BAD("GET /a\x01 HTTP/1.1\r\n\r\n"),
    BAD("GET /a\x7f HTTP/1.1\r\n\r\n"),
    BADN("GET /a\0 HTTP/1.1\r\n\r\n"),
    BAD("GET /\r HTTP/1.1\r\n\r\n"),
    BAD("GET /\r\n\r\n"),                   /* HTTP/0.9 style */
    BAD("GET / \r\n\r\n"),
    BAD("GET / http/1.1\r\n\r\n"),
    BAD("GET / HTTP/1\r\n\r\n"),
    BAD("GET / HTTP/1.\r\n\r\n"),
    BAD("GET / HTTP/1.10\r\n\r\n"),
    BAD("GET / HTTP/11.1\r\n\r\n"),
    BAD("GET / HTTP/1,1\r\n\r\n"),
    BAD("GET / HTTP/2.0x\r\n\r\n"),
    BAD("GET / HTTPS/1.1\r\n\r\n"),
    BAD("\r\nGET / HTTP/1.1\r\n\r\n"),      /* leading empty line */
    BAD("\r\n\r\n"),
    /* line endings */
    BAD("GET / HTTP/1.1\n\n"),
    BAD("GET / HTTP/1.1\r\n\n"),
    BAD("GET / HTTP/1.1\nHost: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: x\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\r\n\r\n"),
    /* header names */
    BAD("GET / HTTP/1.1\r\n: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHo st: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHo@st: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHo\"st: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHo(st): x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nH\xe9: x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost\r\n\r\n"),
    /* header values */
    BADN("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"),
    BADN("GET / HTTP/1.1\r\nX: \0\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\x1f\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\x0b\r\n\r\n"),
    /* obs-fold, including on the first header line */
    BAD("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
    /* version */
    VER("GET / HTTP/2.0\r\n\r\n"),
    VER("GET / HTTP/1.2\r\n\r\n"),
    VER("GET / HTTP/0.9\r\n\r\n"),
    VER("GET / HTTP/3.0\r\nHost: x\r\n\r\n"),
    VER("GET / HTTP/9.9\r\n\r\n"),
};

TEST(request_rejections) {
  for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
    const bad_case_t *c = &bad_requests[i];
    size_t n = c->n ? c->n : strlen(c->s);
    int r = reqn(c->s, n);
    if (r != c->want)
      FAIL_("case %zu: got %d, want %d", i, r, c->want);
  }
}

static const bad_case_t bad_responses[] = {
    BAD("HTTP/1.1 10\r\n\r\n"),
    BAD("HTTP/1.1 1011 Switching\r\n\r\n"),
    BAD("HTTP/1.1 1o1 x\r\n\r\n"),
    BAD("HTTP/1.1  101 x\r\n\r\n"),
    BAD("HTTP/1.1101 x\r\n\r\n"),
    BAD("HTTP/1.1 101x\r\n\r\n"),
    BAD("HTTP/1.1 \r\n\r\n"),
    BAD("HTTP/1.1\r\n\r\n"),
    BAD("http/1.1 101 x\r\n\r\n"),
    BAD("HTTP/1.1 101 a\x01z\r\n\r\n"),
    BAD("HTTP/1.1 101 a\x7f\r\n\r\n"),
    BAD("HTTP/1.1 101 a\rb\r\n\r\n"),
    BADN("HTTP/1.1 101 a\0\r\n\r\n"),
    BAD("HTTP/1.1 101 x\nA: b\r\n\r\n"),
    BAD("HTTP/1.1 101 x\r\nA : b\r\n\r\n"),
    BAD("HTTP/1.1 101 x\r\nA: b\r\n c\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n\r\n"),
    VER("HTTP/2.0 101 x\r\n\r\n"),
    VER("HTTP/1.2 200 OK\r\n\r\n"),
};

TEST(response_rejections) {
  for (size_t i = 0; i < sizeof(bad_responses) / sizeof(bad_responses[0]);
       i++) {
    const bad_case_t *c = &bad_responses[i];
    size_t n = c->n ? c->n : strlen(c->s);
    int r = wsn_http_parse_response(c->s, n, 0, &H);
    if (r != c->want)
      FAIL_("case %zu: got %d, want %d", i, r, c->want);
  }
}

/* ---- limits -------------------------------------------------------------- */

/* Writes a request head of exactly `total` bytes (padding one header value)
 * into buf; returns total. */
static size_t sized_head(char *buf, size_t total) {
  const char *pre = "GET / HTTP/1.1\r\nX-Pad: ";
  size_t p = strlen(pre);
  size_t pad = total - p - 4; /* value, "\r\n\r\n" */
  memcpy(buf, pre, p);
  memset(buf + p, 'a', pad);
  memcpy(buf + p + pad, "\r\n\r\n", 4);
  return total;
}

TEST(head_size_limit) {
  static char buf[WSN_HTTP_MAX_HEAD_BYTES + 64];
  size_t n = sized_head(buf, WSN_HTTP_MAX_HEAD_BYTES);
  ASSERT_EQ(reqn(buf, n), WSN_HTTP_MAX_HEAD_BYTES);
  ASSERT_EQ(H.headers[0].value_len, WSN_HTTP_MAX_HEAD_BYTES - 27);

  n = sized_head(buf, WSN_HTTP_MAX_HEAD_BYTES + 1);
  ASSERT_EQ(reqn(buf, n), WSN_HTTP_E_TOO_LARGE);
  /* Same with more bytes behind it. */
  ASSERT_EQ(reqn(buf, sizeof(buf)), WSN_HTTP_E_TOO_LARGE);

  /* Without a terminator: INCOMPLETE up to MAX - 1 bytes, then too large. */
  memset(buf, 'a', sizeof(buf));
  memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
  ASSERT_EQ(reqn(buf, WSN_HTTP_MAX_HEAD_BYTES - 1), WSN_HTTP_INCOMPLETE);
  ASSERT_EQ(reqn(buf, WSN_HTTP_MAX_HEAD_BYTES), WSN_HTTP_E_TOO_LARGE);
  ASSERT_EQ(wsn_http_parse_request(buf, WSN_HTTP_MAX_HEAD_BYTES + 1,
                                   WSN_HTTP_MAX_HEAD_BYTES, &H),
            WSN_HTTP_E_TOO_LARGE);
}

TEST(head_size_limit_incremental) {
  /* One byte over, fed in 1000-byte steps: never a success. */
  static char buf[WSN_HTTP_MAX_HEAD_BYTES + 1];
  size_t n = sized_head(buf, sizeof(buf)), prev = 0;
  int r = WSN_HTTP_INCOMPLETE;
  for (size_t len = 1000; r == WSN_HTTP_INCOMPLETE; len += 1000) {
    if (len > n) len = n;
    r = wsn_http_parse_request(buf, len, prev, &H);
    prev = len;
  }
  ASSERT_EQ(r, WSN_HTTP_E_TOO_LARGE);
  /* Exactly at the limit, same steps: success. */
  n = sized_head(buf, WSN_HTTP_MAX_HEAD_BYTES);
  prev = 0;
  r = WSN_HTTP_INCOMPLETE;
  for (size_t len = 1000; r == WSN_HTTP_INCOMPLETE; len += 1000) {
    if (len > n) len = n;
    r = wsn_http_parse_request(buf, len, prev, &H);
    prev = len;
  }
  ASSERT_EQ(r, WSN_HTTP_MAX_HEAD_BYTES);
}

/* A head: start line, then `count` headers "H<i>: v<i>". */
static size_t many_headers(char *buf, size_t cap, const char *start,
                           int count) {
  size_t n = (size_t)snprintf(buf, cap, "%s\r\n", start);
  for (int i = 0; i < count; i++)
    n += (size_t)snprintf(buf + n, cap - n, "H%d: v%d\r\n", i, i);
  n += (size_t)snprintf(buf + n, cap - n, "\r\n");
  return n;
}

TEST(header_count_limit) {
  static char buf[8192];
  const char *get = "GET / HTTP/1.1", *ok = "HTTP/1.1 200 OK";
  size_t n = many_headers(buf, sizeof(buf), get, WSN_HTTP_MAX_HEADERS);
  ASSERT_EQ(reqn(buf, n), n);
  ASSERT_EQ(H.num_headers, WSN_HTTP_MAX_HEADERS);
  ASSERT(span_is(H.headers[127].name, H.headers[127].name_len, "H127"));
  ASSERT(span_is(H.headers[127].value, H.headers[127].value_len, "v127"));

  n = many_headers(buf, sizeof(buf), get, WSN_HTTP_MAX_HEADERS + 1);
  ASSERT_EQ(reqn(buf, n), WSN_HTTP_E_TOO_MANY);

  /* Responses too. */
  n = many_headers(buf, sizeof(buf), ok, WSN_HTTP_MAX_HEADERS + 1);
  ASSERT_EQ(wsn_http_parse_response(buf, n, 0, &H), WSN_HTTP_E_TOO_MANY);
  n = many_headers(buf, sizeof(buf), ok, WSN_HTTP_MAX_HEADERS);
  ASSERT_EQ(wsn_http_parse_response(buf, n, 0, &H), n);
  ASSERT_EQ(H.num_headers, WSN_HTTP_MAX_HEADERS);
}

/* ---- lookups ------------------------------------------------------------- */

TEST(find_is_case_insensitive) {
  ASSERT(req(upgrade_req) > 0);
  const wsn_http_header_t *h = wsn_http_find(&H, "sec-websocket-key");
  ASSERT(h != NULL);
  ASSERT(span_is(h->value, h->value_len, "dGhlIHNhbXBsZSBub25jZQ=="));
  ASSERT(wsn_http_find(&H, "UPGRADE") == &H.headers[1]);
  ASSERT(wsn_http_find(&H, "Upgrade") == &H.headers[1]);
  ASSERT(wsn_http_find(&H, "Upgrad") == NULL);
  ASSERT(wsn_http_find(&H, "Upgrades") == NULL);
  ASSERT(wsn_http_find(&H, "") == NULL);
}

TEST(find_next_walks_repeats) {
  ASSERT(req("GET / HTTP/1.1\r\nA: 1\r\nB: x\r\na: 2\r\nA: 3\r\n\r\n") > 0);
  const wsn_http_header_t *h = wsn_http_find(&H, "a");
  ASSERT(span_is(h->value, h->value_len, "1"));
  h = wsn_http_find_next(&H, "a", h);
  ASSERT(span_is(h->value, h->value_len, "2"));
  h = wsn_http_find_next(&H, "A", h);
  ASSERT(span_is(h->value, h->value_len, "3"));
  ASSERT(wsn_http_find_next(&H, "a", h) == NULL);
  ASSERT(wsn_http_find_next(&H, "a", NULL) == &H.headers[0]);
  /* A pointer that is not one of H's headers finds nothing. */
  ASSERT(wsn_http_find_next(&H, "a", &H2.headers[0]) == NULL);
}

TEST(has_token) {
  static const struct {
    const char *v;
    int want;
  } cases[] = {
      {"Upgrade", 1},
      {"upgrade", 1},
      {"UPGRADE", 1},
      {"keep-alive, Upgrade", 1},
      {"keep-alive,Upgrade", 1},
      {" \tUpgrade \t, close", 1},
      {",,upgrade,", 1},
      {"close , upgrade", 1},
      {"", 0},
      {",", 0},
      {"upgradex", 0},
      {"xupgrade", 0},
      {"foo upgrade", 0},
      {"upgrade foo", 0},
      {"upgrade;q=1", 0},
      {"keep-alive", 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (wsn_http_has_token(cases[i].v, strlen(cases[i].v), "upgrade") !=
        cases[i].want)
      FAIL_("case %zu: \"%s\"", i, cases[i].v);
  /* Only len bytes are read. */
  ASSERT_EQ(wsn_http_has_token("upgradex", 7, "upgrade"), 1);
  ASSERT_EQ(wsn_http_has_token(NULL, 0, "upgrade"), 0);
}

TEST(status_text) {
  ASSERT_STR_EQ(wsn_http_status_text(101), "Switching Protocols");
  ASSERT_STR_EQ(wsn_http_status_text(200), "OK");
  ASSERT_STR_EQ(wsn_http_status_text(400), "Bad Request");
  ASSERT_STR_EQ(wsn_http_status_text(401), "Unauthorized");
  ASSERT_STR_EQ(wsn_http_status_text(405), "Method Not Allowed");
  ASSERT_STR_EQ(wsn_http_status_text(418), "I'm a Teapot");
  ASSERT_STR_EQ(wsn_http_status_text(426), "Upgrade Required");
  ASSERT_STR_EQ(wsn_http_status_text(431), "Request Header Fields Too Large");
  ASSERT_STR_EQ(wsn_http_status_text(503), "Service Unavailable");
  ASSERT_STR_EQ(wsn_http_status_text(505), "HTTP Version Not Supported");
  ASSERT_STR_EQ(wsn_http_status_text(511), "Network Authentication Required");
  ASSERT_STR_EQ(wsn_http_status_text(306), "Unknown");
  ASSERT_STR_EQ(wsn_http_status_text(0), "Unknown");
  ASSERT_STR_EQ(wsn_http_status_text(-1), "Unknown");
  ASSERT_STR_EQ(wsn_http_status_text(999), "Unknown");
  /* Node 20's table has 63 codes, all within 100-511. */
  int known = 0;
  for (int s = -10; s < 1000; s++)
    if (strcmp(wsn_http_status_text(s), "Unknown") != 0) {
      known++;
      ASSERT(s >= 100 && s <= 511);
    }
  ASSERT_EQ(known, 63);
}

/* ---- the head as the client's OPEN event carries it ---------------------- */

TEST(encode_response) {
  static const char r[] =
      "HTTP/1.0 418 I am  a teapot \r\n"
      "X-Mixed-CASE: \t a  b \t\r\n"
      "Set-Cookie: a=1\r\n"
      "X-Empty:\r\n"
      "X-Latin1: caf\xe9\r\n"
      "\r\n";
  static const char want[] =
      "418\0" "0\0" "I am  a teapot \0"
      "X-Mixed-CASE\0" "a  b\0"
      "Set-Cookie\0" "a=1\0"
      "X-Empty\0" "\0"
      "X-Latin1\0" "caf\xe9\0";
  ASSERT_EQ(res(r), sizeof(r) - 1);
  size_t n = wsn_http_encode_response(&H, NULL);
  ASSERT_EQ(n, sizeof(want) - 1);
  char *out = malloc(n);
  ASSERT(out != NULL);
  ASSERT_EQ(wsn_http_encode_response(&H, out), n);
  int same = memcmp(out, want, n) == 0;
  free(out);
  ASSERT(same);
}

TEST(encode_response_no_reason_no_headers) {
  static const char want[] = "101\0" "1\0" "\0";
  ASSERT_EQ(res("HTTP/1.1 101\r\n\r\n"), 16);
  char out[sizeof(want)];
  ASSERT_EQ(wsn_http_encode_response(&H, NULL), sizeof(want) - 1);
  ASSERT_EQ(wsn_http_encode_response(&H, out), sizeof(want) - 1);
  ASSERT(memcmp(out, want, sizeof(want) - 1) == 0);
}

/* ---- chunked bodies -------------------------------------------------------- */

/* Decodes s (n bytes) fed `step` bytes at a time (0: all at once), the data
 * into out; returns the last status. */
static int chunked(const char *s, size_t n, size_t step, char *out,
                   size_t *out_len) {
  wsn_http_chunked_t ch;
  memset(&ch, 0, sizeof(ch));
  uint8_t piece[64];
  size_t off = 0;
  int r = WSN_HTTP_CHUNKED_MORE;
  *out_len = 0;
  while (off < n && r == WSN_HTTP_CHUNKED_MORE) {
    size_t k = step && step < n - off ? step : n - off;
    if (k > sizeof(piece)) k = sizeof(piece);
    memcpy(piece, s + off, k);
    size_t got = 0;
    r = wsn_http_chunked_decode(&ch, piece, k, &got);
    memcpy(out + *out_len, piece, got);
    *out_len += got;
    off += k;
  }
  return r;
}

TEST(chunked_body) {
  static const char body[] =
      "5\r\nhello\r\n"
      "1A;name=value\r\n" "abcdefghijklmnopqrstuvwxyz\r\n"
      "0\r\n"
      "Trailer: x\r\n"
      "\r\n"
      "ignored after the end";
  const size_t n = sizeof(body) - 1;
  char out[64];
  size_t got;
  for (size_t step = 0; step <= 7; step++) {
    ASSERT_EQ(chunked(body, n, step, out, &got), WSN_HTTP_CHUNKED_END);
    ASSERT_EQ(got, 31);
    ASSERT(memcmp(out, "helloabcdefghijklmnopqrstuvwxyz", 31) == 0);
  }
  /* LF-only line ends, and no trailers. */
  ASSERT_EQ(chunked("3\nabc\n0\n\n", 10, 0, out, &got), WSN_HTTP_CHUNKED_END);
  ASSERT_EQ(got, 3);
  ASSERT(memcmp(out, "abc", 3) == 0);
  /* Not yet ended. */
  ASSERT_EQ(chunked("3\r\nab", 5, 1, out, &got), WSN_HTTP_CHUNKED_MORE);
  ASSERT_EQ(got, 2);
  ASSERT_EQ(chunked("0\r\n", 3, 0, out, &got), WSN_HTTP_CHUNKED_MORE);
  ASSERT_EQ(got, 0);
}

TEST(chunked_end_is_final) {
  wsn_http_chunked_t ch;
  memset(&ch, 0, sizeof(ch));
  uint8_t b[] = "0\r\n\r\n1\r\nx\r\n";
  size_t got = 99;
  ASSERT_EQ(wsn_http_chunked_decode(&ch, b, sizeof(b) - 1, &got),
            WSN_HTTP_CHUNKED_END);
  ASSERT_EQ(got, 0);
  ASSERT_EQ(wsn_http_chunked_decode(&ch, b, sizeof(b) - 1, &got),
            WSN_HTTP_CHUNKED_END);
  ASSERT_EQ(got, 0);
}

TEST(chunked_bad) {
  char out[64];
  size_t got;
  /* A size line without a digit (a leading space, a sign, nothing). */
  ASSERT_EQ(chunked("zz\r\n", 4, 0, out, &got), WSN_HTTP_CHUNKED_BAD);
  ASSERT_EQ(chunked(" 5\r\nhello", 9, 0, out, &got), WSN_HTTP_CHUNKED_BAD);
  ASSERT_EQ(chunked("-5\r\n", 4, 0, out, &got), WSN_HTTP_CHUNKED_BAD);
  ASSERT_EQ(chunked("\r\n", 2, 0, out, &got), WSN_HTTP_CHUNKED_BAD);
  /* Data decoded before the bad line is kept. */
  ASSERT_EQ(chunked("2\r\nok\r\nx\r\n", 10, 3, out, &got),
            WSN_HTTP_CHUNKED_BAD);
  ASSERT_EQ(got, 2);
  ASSERT(memcmp(out, "ok", 2) == 0);
  /* 2^53 is the largest size; one more is bad. */
  ASSERT_EQ(chunked("20000000000000\r\n", 16, 0, out, &got),
            WSN_HTTP_CHUNKED_MORE);
  ASSERT_EQ(chunked("20000000000001\r\n", 16, 0, out, &got),
            WSN_HTTP_CHUNKED_BAD);
  ASSERT_EQ(chunked("ffffffffffffffffffff\r\n", 22, 5, out, &got),
            WSN_HTTP_CHUNKED_BAD);
  /* A line that never ends. */
  wsn_http_chunked_t ch;
  memset(&ch, 0, sizeof(ch));
  uint8_t ext[WSN_HTTP_CHUNKED_MAX_LINE];
  memset(ext, 'a', sizeof(ext));
  ext[0] = '1';
  ext[1] = ';';
  ASSERT_EQ(wsn_http_chunked_decode(&ch, ext, sizeof(ext), &got),
            WSN_HTTP_CHUNKED_MORE);
  uint8_t one = 'a';
  ASSERT_EQ(wsn_http_chunked_decode(&ch, &one, 1, &got), WSN_HTTP_CHUNKED_BAD);
}

RUN_TESTS()
