/*
 * libFuzzer target for src/http.c, the HTTP head parser (requests and 101
 * responses) and its header helpers.
 *
 * Input layout: [c0 c1 c2 c3] bytes...
 *   c0..c3: chunk sizes, cycled: 0 = the rest, 1..191 that many bytes,
 *           192..255 (c - 191) * 64 bytes. After 64 chunks the rest comes
 *           in one piece (each call copies what has arrived).
 *
 * The parser is stateless over the bytes accumulated so far, with prev_len
 * saying how much an earlier INCOMPLETE call already scanned. Each call gets
 * a fresh, exactly-sized heap copy of the bytes so far, so ASan catches a
 * read past len. Both parsers run over the same bytes. Checked, with an
 * abort on any violation:
 *  - the return is a head length in (0, len] or one of the WSN_HTTP_* codes;
 *  - on success every span (method, path, reason, header names and values)
 *    lies inside the head, names are non-empty tokens, values hold no CR,
 *    LF or NUL and carry no leading or trailing space or tab, and the head
 *    ends with CRLFCRLF;
 *  - fed in chunks, the parser gives the same result (code, spans, header
 *    list) as one call over all the bytes;
 *  - find / find_next / has_token stay inside the header list and agree;
 *  - the chunked body decoder, over the same bytes, gives the same status
 *    and data fed in the chunks as in one call, never more data than bytes;
 *  - a response's encoding for JS (wsn_http_encode_response) has the size
 *    its sizing call gave and splits at its NULs into exactly the status,
 *    minor version, reason and each header's name and value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CHECK(c)                                                          \
  do {                                                                    \
    if (!(c)) {                                                           \
      fprintf(stderr, "fuzz_http: check failed at %s:%d: %s\n", __FILE__, \
              __LINE__, #c);                                              \
      abort();                                                            \
    }                                                                     \
  } while (0)

#define MAX_CALLS 64

typedef int (*parse_fn)(const char *, size_t, size_t, wsn_http_head_t *);

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* [p, p + n) lies inside [base, base + len). */
static int inside(const char *p, size_t n, const char *base, size_t len) {
  return p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

/* A head of length rc in buf, as the parser returned it. */
static void check_head(const char *buf, size_t len, int rc,
                       const wsn_http_head_t *h, int is_request) {
  size_t end = (size_t)rc;
  CHECK(end >= 4 && end <= len && end <= WSN_HTTP_MAX_HEAD_BYTES);
  CHECK(memcmp(buf + end - 4, "\r\n\r\n", 4) == 0);
  CHECK(h->minor_version == 0 || h->minor_version == 1);
  if (is_request) {
    CHECK(h->method == buf && h->method_len > 0);
    CHECK(inside(h->method, h->method_len, buf, end));
    for (size_t i = 0; i < h->method_len; i++)
      CHECK(is_tchar((unsigned char)h->method[i]));
    CHECK(h->path != NULL && h->path_len > 0);
    CHECK(inside(h->path, h->path_len, buf, end));
    for (size_t i = 0; i < h->path_len; i++)
      CHECK((unsigned char)h->path[i] > 0x20 && h->path[i] != 0x7f);
  } else {
    CHECK(h->status >= 0 && h->status <= 999);
    CHECK(h->reason != NULL);
    CHECK(inside(h->reason, h->reason_len, buf, end));
    for (size_t i = 0; i < h->reason_len; i++)
      CHECK(h->reason[i] != '\r' && h->reason[i] != '\n' && h->reason[i]);
  }
  CHECK(h->num_headers <= WSN_HTTP_MAX_HEADERS);
  for (size_t i = 0; i < h->num_headers; i++) {
    const wsn_http_header_t *hd = &h->headers[i];
    CHECK(hd->name_len > 0 && inside(hd->name, hd->name_len, buf, end));
    for (size_t j = 0; j < hd->name_len; j++)
      CHECK(is_tchar((unsigned char)hd->name[j]));
    CHECK(hd->value != NULL && inside(hd->value, hd->value_len, buf, end));
    for (size_t j = 0; j < hd->value_len; j++)
      CHECK(hd->value[j] != '\r' && hd->value[j] != '\n' && hd->value[j]);
    if (hd->value_len > 0) {
      CHECK(hd->value[0] != ' ' && hd->value[0] != '\t');
      CHECK(hd->value[hd->value_len - 1] != ' ' &&
            hd->value[hd->value_len - 1] != '\t');
    }
    /* Headers come in order, each after the previous one's value. */
    if (i > 0) CHECK(hd->name > h->headers[i - 1].value);
  }
}

/* The lookup helpers over a parsed head. */
static void check_helpers(const wsn_http_head_t *h) {
  for (size_t i = 0; i < h->num_headers; i++) {
    const wsn_http_header_t *hd = &h->headers[i];
    char name[64];
    if (hd->name_len >= sizeof(name)) continue;
    memcpy(name, hd->name, hd->name_len);
    name[hd->name_len] = '\0';
    /* find returns the first header with this name, at or before i. */
    const wsn_http_header_t *f = wsn_http_find(h, name);
    CHECK(f != NULL && f >= h->headers && f <= hd);
    /* find_next walks to i and beyond, only ever forwards. */
    const wsn_http_header_t *p = f;
    int seen = 0;
    while (p != NULL) {
      CHECK(p >= h->headers && p < h->headers + h->num_headers);
      CHECK(p->name_len == hd->name_len);
      if (p == hd) seen = 1;
      const wsn_http_header_t *q = wsn_http_find_next(h, name, p);
      CHECK(q == NULL || q > p);
      p = q;
    }
    CHECK(seen);
    /* has_token: every comma-separated, OWS-trimmed piece is found. */
    const char *v = hd->value;
    size_t n = hd->value_len, a = 0;
    while (a < n && n < 1024) {
      size_t b = a;
      while (b < n && v[b] != ',') b++;
      size_t s = a, e = b;
      while (s < e && (v[s] == ' ' || v[s] == '\t')) s++;
      while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
      char tok[64];
      if (e - s < sizeof(tok) && memchr(v + s, '\0', e - s) == NULL) {
        memcpy(tok, v + s, e - s);
        tok[e - s] = '\0';
        CHECK(wsn_http_has_token(v, n, tok) == 1);
      }
      a = b + 1;
    }
  }
  CHECK(wsn_http_find(h, "no-such-header-in-any-input\x01") == NULL);
  CHECK(wsn_http_has_token(NULL, 0, "x") == 0);
  CHECK(wsn_http_status_text(h->status) != NULL);
}

static size_t chunk_size(uint8_t c, size_t left) {
  size_t n = c == 0 ? left : c < 192 ? c : (size_t)(c - 191) * 64;
  return n > left ? left : n;
}

/* One call over a fresh, exactly-sized copy of data[0..len). The copy is
 * returned in *copy (for the spans in out) and freed by the caller. */
static int parse_copy(parse_fn fn, const uint8_t *data, size_t len,
                      size_t prev_len, wsn_http_head_t *out, char **copy) {
  *copy = malloc(len ? len : 1);
  CHECK(*copy != NULL);
  memcpy(*copy, data, len);
  return fn(*copy, len, prev_len, out);
}

static int valid_code(int rc) {
  return rc == WSN_HTTP_INCOMPLETE || rc == WSN_HTTP_E_BAD ||
         rc == WSN_HTTP_E_TOO_LARGE || rc == WSN_HTTP_E_TOO_MANY ||
         rc == WSN_HTTP_E_VERSION;
}

/* A parsed response head, encoded as the client's OPEN event carries it. */
static void check_encoding(const wsn_http_head_t *h) {
  size_t n = wsn_http_encode_response(h, NULL);
  char *out = malloc(n + 1);
  CHECK(out != NULL);
  out[n] = 'x'; /* must stay: nothing is written past n */
  CHECK(wsn_http_encode_response(h, out) == n);
  CHECK(out[n] == 'x');
  CHECK(n >= 3 && out[0] == '0' + h->status / 100 &&
        out[1] == '0' + h->status / 10 % 10 && out[2] == '0' + h->status % 10);
  size_t pos = 3;
  CHECK(out[pos++] == 0);
  CHECK(out[pos++] == '0' + h->minor_version && out[pos++] == 0);
  const char *want[2 * WSN_HTTP_MAX_HEADERS + 1];
  size_t want_len[2 * WSN_HTTP_MAX_HEADERS + 1];
  size_t k = 0;
  want[k] = h->reason;
  want_len[k++] = h->reason_len;
  for (size_t i = 0; i < h->num_headers; i++) {
    want[k] = h->headers[i].name;
    want_len[k++] = h->headers[i].name_len;
    want[k] = h->headers[i].value;
    want_len[k++] = h->headers[i].value_len;
  }
  for (size_t i = 0; i < k; i++) {
    const char *nul = memchr(out + pos, 0, n - pos);
    CHECK(nul != NULL && (size_t)(nul - (out + pos)) == want_len[i]);
    CHECK(want_len[i] == 0 || memcmp(out + pos, want[i], want_len[i]) == 0);
    pos += want_len[i] + 1;
  }
  CHECK(pos == n);
  free(out);
}

static void fuzz_one(parse_fn fn, int is_request, const uint8_t *pat,
                     const uint8_t *data, size_t n) {
  static wsn_http_head_t whole, inc;
  char *wbuf, *ibuf = NULL;

  /* One call over everything. */
  int wrc = parse_copy(fn, data, n, 0, &whole, &wbuf);
  CHECK(wrc > 0 || valid_code(wrc));
  if (wrc > 0) {
    check_head(wbuf, n, wrc, &whole, is_request);
    check_helpers(&whole);
    if (!is_request) check_encoding(&whole);
  }
  if (n >= WSN_HTTP_MAX_HEAD_BYTES) CHECK(wrc != WSN_HTTP_INCOMPLETE);

  /* The same bytes arriving in chunks, as a connection would call it:
   * prev_len = what the previous INCOMPLETE call saw. */
  size_t len = 0, prev = 0, k = 0;
  int irc = WSN_HTTP_INCOMPLETE;
  while (len < n) {
    size_t c = k >= MAX_CALLS ? n - len : chunk_size(pat[k % 4], n - len);
    k++;
    len += c;
    free(ibuf);
    irc = parse_copy(fn, data, len, prev, &inc, &ibuf);
    CHECK(irc > 0 || valid_code(irc));
    if (irc != WSN_HTTP_INCOMPLETE) break;
    prev = len;
  }
  if (n == 0) {
    free(ibuf);
    irc = parse_copy(fn, data, 0, 0, &inc, &ibuf);
  }

  /* Same verdict as the one call. */
  CHECK(irc == wrc);
  if (irc > 0) {
    check_head(ibuf, len, irc, &inc, is_request);
    CHECK(inc.method_len == whole.method_len && inc.path_len == whole.path_len);
    if (is_request) {
      CHECK(inc.method - ibuf == whole.method - wbuf);
      CHECK(inc.path - ibuf == whole.path - wbuf);
    } else {
      CHECK(inc.status == whole.status);
      CHECK(inc.reason - ibuf == whole.reason - wbuf);
      CHECK(inc.reason_len == whole.reason_len);
    }
    CHECK(inc.minor_version == whole.minor_version);
    CHECK(inc.num_headers == whole.num_headers);
    for (size_t i = 0; i < inc.num_headers; i++) {
      CHECK(inc.headers[i].name - ibuf == whole.headers[i].name - wbuf);
      CHECK(inc.headers[i].name_len == whole.headers[i].name_len);
      CHECK(inc.headers[i].value - ibuf == whole.headers[i].value - wbuf);
      CHECK(inc.headers[i].value_len == whole.headers[i].value_len);
    }
  }
  free(ibuf);
  free(wbuf);
}

/* The same bytes as a chunked body, in one call and in the pattern's
 * chunks (each an exactly-sized copy, for ASan). */
static void fuzz_chunked(const uint8_t *pat, const uint8_t *data, size_t n) {
  wsn_http_chunked_t whole, inc;
  memset(&whole, 0, sizeof(whole));
  memset(&inc, 0, sizeof(inc));
  uint8_t *wbuf = malloc(n ? n : 1);
  uint8_t *ibuf = malloc(n ? n : 1); /* the data decoded in chunks */
  CHECK(wbuf != NULL && ibuf != NULL);
  memcpy(wbuf, data, n);
  size_t wlen = 0;
  int wrc = wsn_http_chunked_decode(&whole, wbuf, n, &wlen);
  CHECK(wrc >= WSN_HTTP_CHUNKED_MORE && wrc <= WSN_HTTP_CHUNKED_BAD);
  CHECK(wlen <= n);
  size_t off = 0, ilen = 0, k = 0;
  int irc = WSN_HTTP_CHUNKED_MORE;
  while (off < n && irc == WSN_HTTP_CHUNKED_MORE) {
    size_t c = k >= MAX_CALLS ? n - off : chunk_size(pat[k % 4], n - off);
    k++;
    uint8_t *piece = malloc(c);
    CHECK(piece != NULL);
    memcpy(piece, data + off, c);
    size_t got = 0;
    irc = wsn_http_chunked_decode(&inc, piece, c, &got);
    CHECK(got <= c);
    memcpy(ibuf + ilen, piece, got);
    ilen += got;
    free(piece);
    off += c;
  }
  CHECK(irc == wrc);
  CHECK(ilen == wlen && memcmp(ibuf, wbuf, wlen) == 0);
  free(wbuf);
  free(ibuf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  fuzz_one(wsn_http_parse_request, 1, data, data + 4, size - 4);
  fuzz_one(wsn_http_parse_response, 0, data, data + 4, size - 4);
  fuzz_chunked(data, data + 4, size - 4);
  return 0;
}
