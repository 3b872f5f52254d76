/*
 * WebSocket opening handshake rules (see handshake.h), written to give the
 * same answers as ws 8.23.1 running on Node's HTTP parser. Two Node behaviours
 * shape the code below:
 *  - Node joins repeated headers with ", " (req.headers), so a repeated
 *    Upgrade, Sec-WebSocket-Key, -Version or -Accept can never match what ws
 *    expects, and repeated Sec-WebSocket-Protocol lines form one list.
 *  - Header values reach JS as latin1 strings, trimmed of SP and HTAB.
 */
#include "handshake.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
#define WS_GUID_LEN (sizeof(ws_guid) - 1)

/* Longest key wsn_handshake_accept hashes; SHA1() wants one buffer. Real
 * keys are WSN_KEY_LEN long. */
#define MAX_HASHED_KEY 128

/* ws's validation.js tokenChars (RFC 7230 tchar), as a table: the protocol
 * duplicate check calls this in its inner loop. */
static const uint8_t tchar_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /*   0 -  15 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /*  16 -  31 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /*  32 -  47 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /*  48 -  63 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /*  64 -  79 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /*  80 -  95 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /*  96 - 111 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 112 - 127 */
    /* 128 - 255: 0 */
};

static int is_tchar(unsigned char c) { return tchar_table[c]; }

/* ASCII case-insensitive equality of a span with a NUL-terminated string.
 * JS toLowerCase() on latin1 never maps a byte >= 0x80 into ASCII, so this
 * is exactly `value.toLowerCase() === lower` for lowercase ASCII `lower`. */
static int ieq_str(const char *s, size_t n, const char *lower) {
  if (strlen(lower) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c |= 0x20;
    if (c != (unsigned char)lower[i]) return 0;
  }
  return 1;
}

/*
 * The header if it appears exactly once, else NULL. Used for headers whose
 * joined form ("a, b") can never be valid, so a repeat fails like a
 * missing header does in ws.
 */
static const wsn_http_header_t *single(const wsn_http_head_t *h,
                                       const char *name) {
  const wsn_http_header_t *first = wsn_http_find(h, name);
  if (first == NULL || wsn_http_find_next(h, name, first) != NULL) return NULL;
  return first;
}

static size_t count_lines(const wsn_http_head_t *h, const char *name) {
  size_t n = 0;
  for (const wsn_http_header_t *p = wsn_http_find(h, name); p != NULL;
       p = wsn_http_find_next(h, name, p))
    n++;
  return n;
}

/* /^[+/0-9A-Za-z]{22}==$/ */
static int valid_key(const char *s, size_t n) {
  if (n != WSN_KEY_LEN) return 0;
  for (size_t i = 0; i < 22; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
          (c >= 'a' && c <= 'z') || c == '+' || c == '/'))
      return 0;
  }
  return s[22] == '=' && s[23] == '=';
}

/* ---- Sec-WebSocket-Version ----------------------------------------------- */

/* ws 8.23.1 compares the (OWS-trimmed) value with '13' and '8' exactly:
 * "013", "13.0" or "0xd" are invalid. Returns 13 or 8, else 0. */
static int version_number(const char *s, size_t n) {
  if (n == 2 && s[0] == '1' && s[1] == '3') return 13;
  if (n == 1 && s[0] == '8') return 8;
  return 0;
}

/* ---- Sec-WebSocket-Protocol: ws's subprotocol.parse ---------------------- */

#define PROTOCOL "sec-websocket-protocol"

/* Called for each protocol in list order; nonzero stops the scan (invalid).
 * line is the header holding it, [start, start + len) its span in the value. */
typedef int (*token_fn)(void *ctx, const wsn_http_head_t *req,
                        const wsn_http_header_t *line, size_t start,
                        size_t len);

/*
 * ws's subprotocol.parse over the lines Node would join with ", ", minus the
 * duplicate check, which `on_token` does. The joining comma ends the last
 * token of a line (trailing spaces before it are fine, as before a real
 * comma); the joining space is then a no-op. Returns 1 if the syntax is
 * valid and on_token never objected.
 */
static int scan_protocols(const wsn_http_head_t *req, token_fn on_token,
                          void *ctx) {
  int first_line = 1;
  const wsn_http_header_t *line = wsn_http_find(req, PROTOCOL);
  while (line != NULL) {
    const wsn_http_header_t *next = wsn_http_find_next(req, PROTOCOL, line);
    const char *v = line->value;
    size_t len = line->value_len;
    /* SIZE_MAX stands for ws's -1 ("not set"). */
    size_t start = SIZE_MAX, end = SIZE_MAX;

    for (size_t i = 0; i < len; i++) {
      unsigned char c = (unsigned char)v[i];
      if (end == SIZE_MAX && is_tchar(c)) {
        if (start == SIZE_MAX) start = i;
      } else if (!(first_line && i == 0) && (c == ' ' || c == '\t')) {
        if (end == SIZE_MAX && start != SIZE_MAX) end = i;
      } else if (c == ',') {
        if (start == SIZE_MAX) return 0;
        if (end == SIZE_MAX) end = i;
        if (on_token(ctx, req, line, start, end - start)) return 0;
        start = end = SIZE_MAX;
      } else {
        return 0;
      }
    }

    if (next == NULL) {
      /* End of input: ws rejects trailing whitespace here. */
      if (start == SIZE_MAX || end != SIZE_MAX) return 0;
      end = len;
    } else {
      /* The joining ", ": its comma. */
      if (start == SIZE_MAX) return 0;
      if (end == SIZE_MAX) end = len;
    }
    if (on_token(ctx, req, line, start, end - start)) return 0;

    first_line = 0;
    line = next;
  }
  return 1;
}

/*
 * Slow path, only for heads the parser cannot produce (see below): is the
 * token equal to an earlier one? Before the current token the list is valid,
 * so earlier tokens are exactly its comma-separated, OWS-trimmed pieces.
 */
static int seen_before(void *ctx, const wsn_http_head_t *req,
                       const wsn_http_header_t *cur, size_t tok_start,
                       size_t tok_len) {
  (void)ctx;
  const char *tok = cur->value + tok_start;
  for (const wsn_http_header_t *line = wsn_http_find(req, PROTOCOL);
       line != NULL; line = wsn_http_find_next(req, PROTOCOL, line)) {
    const char *v = line->value;
    size_t len = line->value_len;
    size_t i = 0;
    while (i < len) {
      size_t a = i;
      while (i < len && v[i] != ',') i++;
      size_t b = i;
      while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
      while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
      if (line == cur && a >= tok_start) return 0;
      if (b - a == tok_len && memcmp(v + a, tok, tok_len) == 0) return 1;
      i++;
    }
    if (line == cur) return 0;
  }
  return 0;
}

/*
 * Fast path. A quadratic duplicate check costs ~100 ms on a 16 KiB head of
 * two-char protocols, so duplicates are found without it: tokens of one or
 * two chars in bitmaps (tchars are ASCII), longer ones recorded as
 * (header index, offset) and sorted. A longer token plus its comma takes at
 * least 4 bytes, so a head within WSN_HTTP_MAX_HEAD_BYTES has at most
 * MAX_LONG_TOKENS of them; only a hand-built head can overflow, and then the
 * slow path decides.
 */
#define MAX_LONG_TOKENS (WSN_HTTP_MAX_HEAD_BYTES / 4)
#define LONG_OFFSET_BITS 24

typedef struct {
  uint8_t one[128 / 8];
  uint8_t two[128 * 128 / 8];
  uint32_t longs[MAX_LONG_TOKENS]; /* header index << 24 | offset */
  size_t n_longs;
  int overflow;
} dup_set_t;

static int test_and_set(uint8_t *bits, size_t i) {
  uint8_t mask = (uint8_t)(1u << (i & 7));
  int was = (bits[i >> 3] & mask) != 0;
  bits[i >> 3] |= mask;
  return was;
}

static int collect_token(void *ctx, const wsn_http_head_t *req,
                         const wsn_http_header_t *line, size_t start,
                         size_t len) {
  dup_set_t *d = ctx;
  const unsigned char *t = (const unsigned char *)line->value + start;
  /* Tokens are made of tchars, all < 128. */
  if (len == 1) return test_and_set(d->one, t[0]);
  if (len == 2) return test_and_set(d->two, (size_t)t[0] << 7 | t[1]);
  size_t index = (size_t)(line - req->headers);
  if (d->n_longs == MAX_LONG_TOKENS || start >= (1u << LONG_OFFSET_BITS) ||
      index > 0xff)
    d->overflow = 1;
  else
    d->longs[d->n_longs++] =
        (uint32_t)(index << LONG_OFFSET_BITS | start);
  return 0;
}

/* A recorded token's span. It ends at the first non-tchar: scan_protocols
 * only reports maximal runs of tchars. */
static const char *long_token(const wsn_http_head_t *req, uint32_t e,
                              size_t *len) {
  const wsn_http_header_t *h = &req->headers[e >> LONG_OFFSET_BITS];
  size_t start = e & ((1u << LONG_OFFSET_BITS) - 1), i = start;
  while (i < h->value_len && is_tchar((unsigned char)h->value[i])) i++;
  *len = i - start;
  return h->value + start;
}

static int cmp_long(const wsn_http_head_t *req, uint32_t a, uint32_t b) {
  size_t la, lb;
  const unsigned char *pa = (const unsigned char *)long_token(req, a, &la);
  const unsigned char *pb = (const unsigned char *)long_token(req, b, &lb);
  size_t n = la < lb ? la : lb;
  /* Tokens are short: an inline loop beats a call to memcmp. */
  for (size_t i = 0; i < n; i++)
    if (pa[i] != pb[i]) return pa[i] < pb[i] ? -1 : 1;
  return la < lb ? -1 : la > lb;
}

/* Heapsort: O(n log n) whatever the input, no allocation. */
static void sift_down(const wsn_http_head_t *req, uint32_t *a, size_t root,
                      size_t n) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && cmp_long(req, a[child], a[child + 1]) < 0) child++;
    if (cmp_long(req, a[root], a[child]) >= 0) return;
    uint32_t t = a[root];
    a[root] = a[child];
    a[child] = t;
    root = child;
  }
}

static void sort_longs(const wsn_http_head_t *req, uint32_t *a, size_t n) {
  for (size_t i = n / 2; i-- > 0;) sift_down(req, a, i, n);
  for (size_t end = n; end > 1; end--) {
    uint32_t t = a[0];
    a[0] = a[end - 1];
    a[end - 1] = t;
    sift_down(req, a, 0, end - 1);
  }
}

/* 1 if ws's subprotocol.parse accepts the joined Sec-WebSocket-Protocol
 * lines: valid syntax and no duplicates (case-sensitive, as a JS Set). */
static int valid_protocols(const wsn_http_head_t *req) {
  dup_set_t d;
  memset(&d, 0, offsetof(dup_set_t, longs));
  d.n_longs = 0;
  d.overflow = 0;
  if (!scan_protocols(req, collect_token, &d)) return 0;
  if (d.overflow) return scan_protocols(req, seen_before, NULL);
  sort_longs(req, d.longs, d.n_longs);
  for (size_t i = 1; i < d.n_longs; i++)
    if (cmp_long(req, d.longs[i - 1], d.longs[i]) == 0) return 0;
  return 1;
}

static void reject(wsn_handshake_request_t *out, int status,
                   const char *message) {
  out->status = status;
  out->message = message;
}

void wsn_handshake_check_request(const wsn_http_head_t *req,
                                 wsn_handshake_request_t *out) {
  memset(out, 0, sizeof(*out));

  if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
    reject(out, 405, "Invalid HTTP method");
    return;
  }

  const wsn_http_header_t *upgrade = single(req, "upgrade");
  if (upgrade == NULL ||
      !ieq_str(upgrade->value, upgrade->value_len, "websocket")) {
    reject(out, 400, "Invalid Upgrade header");
    return;
  }

  const wsn_http_header_t *key = single(req, "sec-websocket-key");
  if (key == NULL || !valid_key(key->value, key->value_len)) {
    reject(out, 400, "Missing or invalid Sec-WebSocket-Key header");
    return;
  }
  out->key = key->value;
  out->key_len = key->value_len;

  /* Missing, or repeated (Node joins the lines: "13, 13"), is invalid. */
  const wsn_http_header_t *version = single(req, "sec-websocket-version");
  int v = version ? version_number(version->value, version->value_len) : 0;
  if (v == 0) {
    reject(out, 400, "Missing or invalid Sec-WebSocket-Version header");
    out->extra_header = "Sec-WebSocket-Version: 13, 8";
    return;
  }
  out->version = v;

  /* (ws's shouldHandle() path check comes here; it is the caller's.) */

  const wsn_http_header_t *protocols = wsn_http_find(req, PROTOCOL);
  if (protocols != NULL) {
    if (!valid_protocols(req)) {
      reject(out, 400, "Invalid Sec-WebSocket-Protocol header");
      return;
    }
    out->protocols = protocols->value;
    out->protocols_len = protocols->value_len;
    out->protocols_lines = count_lines(req, PROTOCOL);
  }

  const wsn_http_header_t *extensions =
      wsn_http_find(req, "sec-websocket-extensions");
  if (extensions != NULL) {
    out->extensions = extensions->value;
    out->extensions_len = extensions->value_len;
    out->extensions_lines = count_lines(req, "sec-websocket-extensions");
  }
}

/* ---- Sec-WebSocket-Accept ------------------------------------------------ */

static void base64_encode(const unsigned char *in, size_t n, char *out) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = alphabet[v >> 6 & 63];
    out[o++] = alphabet[v & 63];
  }
  if (i < n) {
    /* One or two bytes left: pad to four chars. */
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    out[o++] = alphabet[v >> 18 & 63];
    out[o++] = alphabet[v >> 12 & 63];
    out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
    out[o++] = '=';
  }
}

void wsn_handshake_accept(const char *key, size_t key_len,
                          char out[WSN_ACCEPT_LEN]) {
  if (key_len > MAX_HASHED_KEY) {
    /* Not base64, so it can never equal a real accept value. */
    memset(out, '*', WSN_ACCEPT_LEN);
    return;
  }
  unsigned char msg[MAX_HASHED_KEY + WS_GUID_LEN];
  unsigned char digest[SHA_DIGEST_LENGTH];
  if (key_len > 0) memcpy(msg, key, key_len);
  memcpy(msg + key_len, ws_guid, WS_GUID_LEN);
  SHA1(msg, key_len + WS_GUID_LEN, digest);
  base64_encode(digest, sizeof(digest), out);
}

int wsn_handshake_first_protocol(const char *value, size_t len,
                                 const char **proto, size_t *proto_len) {
  size_t i = 0;
  if (value == NULL) return 0;
  while (i < len && (value[i] == ' ' || value[i] == '\t')) i++;
  size_t start = i;
  while (i < len && is_tchar((unsigned char)value[i])) i++;
  if (i == start) return 0;
  *proto = value + start;
  *proto_len = i - start;
  return 1;
}

/* ---- Responses ----------------------------------------------------------- */

typedef struct {
  char *p;
  size_t cap;
  size_t len;
  int overflow;
} writer_t;

static void put(writer_t *w, const char *s, size_t n) {
  if (w->overflow || n > w->cap - w->len) {
    w->overflow = 1;
    return;
  }
  if (n > 0) memcpy(w->p + w->len, s, n);
  w->len += n;
}

static void puts_(writer_t *w, const char *s) { put(w, s, strlen(s)); }

size_t wsn_handshake_response_101(char *out, size_t cap, const char *key,
                                  size_t key_len, const char *protocol,
                                  size_t protocol_len, const char *extra,
                                  size_t extra_len) {
  writer_t w = {out, cap, 0, 0};
  char accept[WSN_ACCEPT_LEN];
  wsn_handshake_accept(key, key_len, accept);

  /* ws: headers.concat('\r\n').join('\r\n') */
  puts_(&w, "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: ");
  put(&w, accept, WSN_ACCEPT_LEN);
  puts_(&w, "\r\n");
  /* ws pushes the header only `if (protocol)`: "" is falsy. */
  if (protocol != NULL && protocol_len > 0) {
    puts_(&w, "Sec-WebSocket-Protocol: ");
    put(&w, protocol, protocol_len);
    puts_(&w, "\r\n");
  }
  if (extra != NULL) put(&w, extra, extra_len);
  puts_(&w, "\r\n");
  return w.overflow ? 0 : w.len;
}

size_t wsn_handshake_response_error(char *out, size_t cap, int status,
                                    const char *message,
                                    const char *extra_header) {
  writer_t w = {out, cap, 0, 0};
  const char *text = wsn_http_status_text(status);
  /* ws: message = message || http.STATUS_CODES[code] */
  if (message == NULL || message[0] == '\0') message = text;
  size_t body_len = strlen(message);

  char num[32];
  snprintf(num, sizeof(num), "%d", status);
  puts_(&w, "HTTP/1.1 ");
  puts_(&w, num);
  puts_(&w, " ");
  puts_(&w, text);
  puts_(&w, "\r\nConnection: close\r\nContent-Type: text/html\r\n"
            "Content-Length: ");
  snprintf(num, sizeof(num), "%zu", body_len);
  puts_(&w, num);
  puts_(&w, "\r\n");
  if (extra_header != NULL && extra_header[0] != '\0') {
    puts_(&w, extra_header);
    puts_(&w, "\r\n");
  }
  puts_(&w, "\r\n");
  put(&w, message, body_len);
  return w.overflow ? 0 : w.len;
}

/* ---- Client side --------------------------------------------------------- */

/*
 * Node hands a 101 to ws's 'upgrade' handler only when its parser flags the
 * response as an upgrade: a non-empty Upgrade header and an "upgrade" token
 * in Connection. Otherwise ws sees a plain response and reports
 * "Unexpected server response: 101".
 */
static int node_sees_upgrade(const wsn_http_head_t *res) {
  int has_upgrade = 0, has_connection = 0;
  for (const wsn_http_header_t *h = wsn_http_find(res, "upgrade"); h != NULL;
       h = wsn_http_find_next(res, "upgrade", h))
    if (h->value_len > 0) has_upgrade = 1;
  for (const wsn_http_header_t *h = wsn_http_find(res, "connection");
       h != NULL; h = wsn_http_find_next(res, "connection", h))
    if (wsn_http_has_token(h->value, h->value_len, "upgrade"))
      has_connection = 1;
  return has_upgrade && has_connection;
}

int wsn_handshake_check_response(const wsn_http_head_t *res, const char *key,
                                 size_t key_len) {
  if (res->status != 101 || !node_sees_upgrade(res)) return WSN_HS_NOT_101;

  const wsn_http_header_t *upgrade = single(res, "upgrade");
  if (upgrade == NULL ||
      !ieq_str(upgrade->value, upgrade->value_len, "websocket"))
    return WSN_HS_BAD_UPGRADE;

  const wsn_http_header_t *accept = single(res, "sec-websocket-accept");
  char expected[WSN_ACCEPT_LEN];
  if (accept == NULL || key_len > MAX_HASHED_KEY ||
      accept->value_len != WSN_ACCEPT_LEN)
    return WSN_HS_BAD_ACCEPT;
  wsn_handshake_accept(key, key_len, expected);
  if (memcmp(accept->value, expected, WSN_ACCEPT_LEN) != 0)
    return WSN_HS_BAD_ACCEPT;
  return WSN_HS_OK;
}
