/*
 * libFuzzer target for src/handshake.c: the upgrade request checks, the
 * 101 and error responses, the client's check of a 101 response,
 * Sec-WebSocket-Accept and the first subprotocol.
 *
 * Input layout: [mode] bytes...
 *   mode & 3 == 0: bytes are a request head. If it parses, its check is
 *     compared with a reference written here from ws 8's handleUpgrade and
 *     subprotocol.parse (Node joins repeated headers with ", "), the spans
 *     it returns must lie inside the head, and the 101 (or error) response
 *     built from it must parse back, and pass the client's check with the
 *     same key.
 *   mode & 3 == 1: bytes are a response to the RFC 6455 sample key
 *     "dGhlIHNhbXBsZSBub25jZQ==" (whose accept value is
 *     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); the check's verdict is compared with
 *     a reference.
 *   mode & 3 == 2: [klen] key[klen] response: the same with any key.
 *   mode & 3 == 3: bytes are a Sec-WebSocket-Protocol value for
 *     first_protocol, and a key for the accept computation, which is
 *     compared with OpenSSL's SHA-1 and base64.
 * Any disagreement or out-of-bounds span aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "handshake.h"
#include "http.h"

#define CHECK(c)                                                          \
  do {                                                                    \
    if (!(c)) {                                                           \
      fprintf(stderr, "fuzz_handshake: check failed at %s:%d: %s\n",      \
              __FILE__, __LINE__, #c);                                    \
      abort();                                                            \
    }                                                                     \
  } while (0)

static const char SAMPLE_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char SAMPLE_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static wsn_http_head_t head, back;

/* [p, p + n) lies inside [base, base + len). */
static int inside(const char *p, size_t n, const char *base, size_t len) {
  return p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ieq(const char *a, size_t n, const char *lower) {
  if (strlen(lower) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != lower[i]) return 0;
  }
  return 1;
}

/* ---- references ---------------------------------------------------------- */

/* Accept value: base64(SHA-1(key + GUID)), by OpenSSL's own functions. */
static void ref_accept(const char *key, size_t n, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char *msg = malloc(n + 36), digest[20];
  CHECK(msg != NULL);
  memcpy(msg, key, n);
  memcpy(msg + n, guid, 36);
  SHA1(msg, n + 36, digest);
  free(msg);
  CHECK(EVP_EncodeBlock((unsigned char *)out, digest, 20) == 28);
}

/* Node's req.headers[name] for the repeated-header rule used here: the
 * values joined with ", ". Returns NULL if absent; the caller frees. */
static char *joined(const wsn_http_head_t *h, const char *name, size_t *len) {
  size_t total = 0, count = 0;
  for (size_t i = 0; i < h->num_headers; i++)
    if (h->headers[i].name_len == strlen(name) &&
        strncasecmp(h->headers[i].name, name, strlen(name)) == 0) {
      total += h->headers[i].value_len + 2;
      count++;
    }
  if (count == 0) return NULL;
  char *s = malloc(total + 1), *p = s;
  CHECK(s != NULL);
  for (size_t i = 0, seen = 0; i < h->num_headers; i++) {
    const wsn_http_header_t *hd = &h->headers[i];
    if (hd->name_len == strlen(name) &&
        strncasecmp(hd->name, name, hd->name_len) == 0) {
      if (seen++) {
        memcpy(p, ", ", 2);
        p += 2;
      }
      memcpy(p, hd->value, hd->value_len);
      p += hd->value_len;
    }
  }
  *p = '\0';
  *len = (size_t)(p - s);
  return s;
}

/* ws's subprotocol.parse, transcribed: 1 if it returns, 0 if it throws. The
 * duplicate check is a plain quadratic scan. */
static int ref_protocols(const char *h, size_t n) {
  size_t starts[1024], lens[1024], count = 0;
  long start = -1, end = -1;
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char code = (unsigned char)h[i];
    if (end == -1 && is_tchar(code)) {
      if (start == -1) start = (long)i;
    } else if (i != 0 && (code == ' ' || code == '\t')) {
      if (end == -1 && start != -1) end = (long)i;
    } else if (code == ',') {
      if (start == -1) return 0;
      if (end == -1) end = (long)i;
      for (size_t k = 0; k < count; k++)
        if (lens[k] == (size_t)(end - start) &&
            memcmp(h + starts[k], h + start, lens[k]) == 0)
          return 0;
      if (count == 1024) return -1; /* too many to judge cheaply */
      starts[count] = (size_t)start;
      lens[count++] = (size_t)(end - start);
      start = end = -1;
    } else {
      return 0;
    }
  }
  if (start == -1 || end != -1) return 0;
  for (size_t k = 0; k < count; k++)
    if (lens[k] == i - (size_t)start &&
        memcmp(h + starts[k], h + start, lens[k]) == 0)
      return 0;
  return 1;
}

/* ws's handleUpgrade checks over Node's req.headers. Returns the status
 * (0 = accepted) and the version. */
static int ref_check_request(const wsn_http_head_t *h, int *version,
                             int *proto_checked) {
  size_t n;
  char *v;
  *proto_checked = 1;
  if (!(h->method_len == 3 && memcmp(h->method, "GET", 3) == 0)) return 405;

  v = joined(h, "upgrade", &n);
  int ok = v != NULL && ieq(v, n, "websocket");
  free(v);
  if (!ok) return 400;

  v = joined(h, "sec-websocket-key", &n);
  ok = v != NULL && n == 24 && v[22] == '=' && v[23] == '=';
  for (size_t i = 0; ok && i < 22; i++)
    ok = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'z') ||
         (v[i] >= 'A' && v[i] <= 'Z') || v[i] == '+' || v[i] == '/';
  free(v);
  if (!ok) return 400;

  /* ws 8.23.1 compares the header's string: exactly "13" or "8". */
  v = joined(h, "sec-websocket-version", &n);
  int num = v == NULL ? 0
            : n == 2 && memcmp(v, "13", 2) == 0 ? 13
            : n == 1 && v[0] == '8' ? 8 : 0;
  free(v);
  if (num == 0) return 400;
  *version = num;

  v = joined(h, "sec-websocket-protocol", &n);
  if (v != NULL) {
    int r = ref_protocols(v, n);
    free(v);
    if (r < 0) {
      *proto_checked = 0;
      return 0;
    }
    if (r == 0) return 400;
  }
  return 0;
}

/* ---- the checks ---------------------------------------------------------- */

/* A response the library built: parse it back. Returns its head length. */
static int parse_back(const char *out, size_t len) {
  char *copy = malloc(len);
  CHECK(copy != NULL);
  memcpy(copy, out, len);
  int rc = wsn_http_parse_response(copy, len, 0, &back);
  free(copy); /* spans in `back` are not used past here */
  return rc;
}

/* Builds an error response; it must parse with the status and body. */
static void check_error_response(int status, const char *message,
                                 const char *extra) {
  char out[1024];
  size_t n = wsn_handshake_response_error(out, sizeof(out), status, message,
                                          extra);
  CHECK(n > 0 && n <= sizeof(out));
  /* Exact capacity works, one byte less gives 0. */
  char *exact = malloc(n);
  CHECK(exact != NULL);
  CHECK(wsn_handshake_response_error(exact, n, status, message, extra) == n);
  CHECK(memcmp(exact, out, n) == 0);
  CHECK(wsn_handshake_response_error(exact, n - 1, status, message, extra) ==
        0);
  free(exact);
  int rc = parse_back(out, n);
  CHECK(rc > 0 && (size_t)rc <= n);
  CHECK(back.status == status);
  const char *body = message && *message ? message : wsn_http_status_text(status);
  CHECK(n - (size_t)rc == strlen(body));
  CHECK(memcmp(out + rc, body, n - (size_t)rc) == 0);
}

/* Builds the 101 for key and protocol; the client's check must pass it. */
static void check_101(const char *key, size_t key_len, const char *proto,
                      size_t proto_len) {
  static const char ext[] =
      "Sec-WebSocket-Extensions: permessage-deflate\r\n";
  char out[1024];
  for (int with_ext = 0; with_ext < 2; with_ext++) {
    const char *e = with_ext ? ext : NULL;
    size_t elen = with_ext ? sizeof(ext) - 1 : 0;
    size_t n = wsn_handshake_response_101(out, sizeof(out), key, key_len,
                                          proto, proto_len, e, elen);
    CHECK(n > 0 && n <= sizeof(out));
    char *exact = malloc(n);
    CHECK(exact != NULL);
    CHECK(wsn_handshake_response_101(exact, n, key, key_len, proto, proto_len,
                                     e, elen) == n);
    CHECK(memcmp(exact, out, n) == 0);
    CHECK(wsn_handshake_response_101(exact, n - 1, key, key_len, proto,
                                     proto_len, e, elen) == 0);
    /* The whole response is its head. */
    int rc = wsn_http_parse_response(exact, n, 0, &back);
    CHECK(rc > 0 && (size_t)rc == n);
    CHECK(back.status == 101);
    CHECK(wsn_handshake_check_response(&back, key, key_len) == WSN_HS_OK);
    const wsn_http_header_t *p = wsn_http_find(&back, "sec-websocket-protocol");
    if (proto && proto_len) {
      CHECK(p != NULL && p->value_len == proto_len &&
            memcmp(p->value, proto, proto_len) == 0);
    } else {
      CHECK(p == NULL);
    }
    free(exact);
  }
}

static void fuzz_request(const char *buf, size_t len) {
  int rc = wsn_http_parse_request(buf, len, 0, &head);
  if (rc <= 0) return;

  wsn_handshake_request_t r;
  memset(&r, 0x5a, sizeof(r));
  wsn_handshake_check_request(&head, &r);

  int ref_version = 0, proto_checked = 1;
  int ref_status = ref_check_request(&head, &ref_version, &proto_checked);
  CHECK(r.status == ref_status);

  if (r.status != 0) {
    CHECK(r.message != NULL && r.message[0] != '\0');
    check_error_response(r.status, r.message, r.extra_header);
    return;
  }
  CHECK(r.version == ref_version);
  CHECK(r.key != NULL && r.key_len == WSN_KEY_LEN);
  CHECK(inside(r.key, r.key_len, buf, (size_t)rc));
  if (r.protocols != NULL) {
    CHECK(inside(r.protocols, r.protocols_len, buf, (size_t)rc));
    CHECK(r.protocols_lines >= 1);
  } else {
    CHECK(r.protocols_lines == 0 && wsn_http_find(&head, "sec-websocket-protocol") == NULL);
  }
  if (r.extensions != NULL) {
    CHECK(inside(r.extensions, r.extensions_len, buf, (size_t)rc));
    CHECK(r.extensions_lines >= 1);
  } else {
    CHECK(r.extensions_lines == 0);
  }

  /* ws's default choice is the first offered protocol. A valid list has
   * one; it is the first token of the first line. */
  const char *proto = NULL;
  size_t proto_len = 0;
  if (r.protocols != NULL) {
    int found = wsn_handshake_first_protocol(r.protocols, r.protocols_len,
                                             &proto, &proto_len);
    if (proto_checked) {
      CHECK(found == 1);
      size_t a = 0;
      while (a < r.protocols_len &&
             (r.protocols[a] == ' ' || r.protocols[a] == '\t'))
        a++;
      size_t b = a;
      while (b < r.protocols_len && is_tchar((unsigned char)r.protocols[b])) b++;
      CHECK(proto == r.protocols + a && proto_len == b - a && b > a);
    }
    if (found)
      CHECK(inside(proto, proto_len, r.protocols, r.protocols_len));
  }
  check_101(r.key, r.key_len, proto, proto_len);
  /* The accepted request can also be turned down (the path rule). */
  check_error_response(400, NULL, NULL);
}

/* The client's verdict on a response to key. */
static void fuzz_response(const char *key, size_t key_len, const char *buf,
                          size_t len) {
  int rc = wsn_http_parse_response(buf, len, 0, &head);
  if (rc <= 0) return;
  int v = wsn_handshake_check_response(&head, key, key_len);

  /* Reference, over Node's view of the headers. */
  int want;
  size_t n;
  char *up = joined(&head, "upgrade", &n);
  int node_upgrade = 0, has_conn = 0;
  for (size_t i = 0; i < head.num_headers; i++) {
    const wsn_http_header_t *h = &head.headers[i];
    if (ieq(h->name, h->name_len, "upgrade") && h->value_len > 0)
      node_upgrade = 1;
    if (ieq(h->name, h->name_len, "connection") &&
        wsn_http_has_token(h->value, h->value_len, "upgrade"))
      has_conn = 1;
  }
  if (head.status != 101 || !node_upgrade || !has_conn) {
    want = WSN_HS_NOT_101;
  } else if (up == NULL || !ieq(up, n, "websocket")) {
    want = WSN_HS_BAD_UPGRADE;
  } else {
    size_t alen;
    char *acc = joined(&head, "sec-websocket-accept", &alen);
    char expected[29];
    if (key_len <= 128) ref_accept(key, key_len, expected);
    want = acc != NULL && key_len <= 128 && alen == 28 &&
                   memcmp(acc, expected, 28) == 0
               ? WSN_HS_OK
               : WSN_HS_BAD_ACCEPT;
    free(acc);
  }
  free(up);
  CHECK(v == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] & 3;
  const uint8_t *rest = data + 1;
  size_t n = size - 1;
  /* An exactly-sized copy: ASan catches reads past the input. */
  char *buf = malloc(n ? n : 1);
  CHECK(buf != NULL);
  memcpy(buf, rest, n);

  switch (mode) {
  case 0:
    fuzz_request(buf, n);
    break;
  case 1:
    fuzz_response(SAMPLE_KEY, sizeof(SAMPLE_KEY) - 1, buf, n);
    break;
  case 2: {
    if (n < 1) break;
    size_t klen = (unsigned char)buf[0];
    if (klen > n - 1) klen = n - 1;
    fuzz_response(buf + 1, klen, buf + 1 + klen, n - 1 - klen);
    break;
  }
  default: {
    const char *proto;
    size_t plen;
    if (wsn_handshake_first_protocol(buf, n, &proto, &plen)) {
      CHECK(plen > 0 && inside(proto, plen, buf, n));
      for (size_t i = 0; i < plen; i++) CHECK(is_tchar((unsigned char)proto[i]));
      for (const char *p = buf; p < proto; p++) CHECK(*p == ' ' || *p == '\t');
    }
    char got[WSN_ACCEPT_LEN], want[29];
    wsn_handshake_accept(buf, n, got);
    if (n <= 128) {
      ref_accept(buf, n, want);
      CHECK(memcmp(got, want, WSN_ACCEPT_LEN) == 0);
    } else {
      for (size_t i = 0; i < WSN_ACCEPT_LEN; i++) CHECK(got[i] == '*');
    }
    break;
  }
  }
  free(buf);

  /* The RFC's own example, once. */
  static int once;
  if (!once) {
    char got[WSN_ACCEPT_LEN];
    wsn_handshake_accept(SAMPLE_KEY, sizeof(SAMPLE_KEY) - 1, got);
    CHECK(memcmp(got, SAMPLE_ACCEPT, WSN_ACCEPT_LEN) == 0);
    once = 1;
  }
  return 0;
}
