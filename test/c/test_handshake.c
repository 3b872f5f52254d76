/*
 * Tests for src/handshake.c. Expected statuses, messages and response bytes
 * were taken from ws 8.23.1 itself (a WebSocketServer answering raw requests,
 * and Node evaluating `+value` and subprotocol.parse for the tables below).
 */
#include "handshake.h"
#include "runner.h"

#include <stdio.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static wsn_http_head_t H;
static wsn_handshake_request_t R;
static char buf[20000];

static int span_is(const char *p, size_t n, const char *s) {
  return p != NULL && n == strlen(s) && memcmp(p, s, n) == 0;
}

static int parse_req(const char *s) {
  return wsn_http_parse_request(s, strlen(s), 0, &H);
}
static int parse_res(const char *s) {
  return wsn_http_parse_response(s, strlen(s), 0, &H);
}

/* Builds a request head directly (bypassing the parser, which trims and
 * rejects control bytes) from name/value pairs. */
static void make_head(const char *method, const char *const *kv, size_t n) {
  memset(&H, 0, sizeof(H));
  H.method = method;
  H.method_len = strlen(method);
  H.path = "/";
  H.path_len = 1;
  H.minor_version = 1;
  for (size_t i = 0; i < n; i++) {
    H.headers[i].name = kv[2 * i];
    H.headers[i].name_len = strlen(kv[2 * i]);
    H.headers[i].value = kv[2 * i + 1];
    H.headers[i].value_len = strlen(kv[2 * i + 1]);
  }
  H.num_headers = n;
}

/* Parses a request made of a method and extra header lines, then checks it. */
static int check(const char *method, const char *lines) {
  snprintf(buf, sizeof(buf),
           "%s /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
           "%s\r\n",
           method, lines);
  if (parse_req(buf) <= 0) return -1;
  wsn_handshake_check_request(&H, &R);
  return R.status;
}

#define GOOD "Upgrade: websocket\r\nSec-WebSocket-Key: " KEY \
             "\r\nSec-WebSocket-Version: 13\r\n"

static const char msg_method[] = "Invalid HTTP method";
static const char msg_upgrade[] = "Invalid Upgrade header";
static const char msg_key[] = "Missing or invalid Sec-WebSocket-Key header";
static const char msg_version[] =
    "Missing or invalid Sec-WebSocket-Version header";
static const char msg_protocol[] = "Invalid Sec-WebSocket-Protocol header";

/* ---- Sec-WebSocket-Accept ------------------------------------------------ */

TEST(accept_rfc6455_sample) {
  char out[WSN_ACCEPT_LEN];
  wsn_handshake_accept(KEY, strlen(KEY), out);
  ASSERT_MEM_EQ(out, ACCEPT, WSN_ACCEPT_LEN);
}

TEST(accept_other_keys) {
  /* Values from Node's crypto (sha1 + base64). */
  static const char *cases[][2] = {
      {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
      {"AQIDBAUGBwgJCgsMDQ4PEA==", "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="},
      {"", "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w="},
      {"abc", "zwKd5BnoWxQ6GxTxxSmBSHGHX9M="},
  };
  char out[WSN_ACCEPT_LEN];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wsn_handshake_accept(cases[i][0], strlen(cases[i][0]), out);
    if (memcmp(out, cases[i][1], WSN_ACCEPT_LEN) != 0)
      FAIL_("key \"%s\": got %.28s", cases[i][0], out);
  }
  /* 128 bytes is the longest key hashed; beyond, never a valid value. */
  char key[129];
  memset(key, 'a', sizeof(key));
  wsn_handshake_accept(key, 128, out);
  ASSERT_MEM_EQ(out, "fF2cei3n15eZTLsjamG+VUM3i6k=", WSN_ACCEPT_LEN);
  wsn_handshake_accept(key, 129, out);
  ASSERT_MEM_EQ(out, "****************************", WSN_ACCEPT_LEN);
}

/* ---- server-side request checks ------------------------------------------ */

TEST(request_ok) {
  ASSERT_EQ(check("GET", GOOD), 0);
  ASSERT(R.message == NULL);
  ASSERT(R.extra_header == NULL);
  ASSERT(span_is(R.key, R.key_len, KEY));
  ASSERT_EQ(R.version, 13);
  ASSERT(R.protocols == NULL);
  ASSERT(R.extensions == NULL);
  ASSERT_EQ(R.protocols_lines, 0);
  ASSERT_EQ(R.extensions_lines, 0);
}

TEST(request_ok_version_8_protocols_extensions) {
  ASSERT_EQ(check("GET", "upgrade: WebSocket\r\nsec-websocket-key: " KEY
                         "\r\nsec-websocket-version: 8\r\n"
                         "Sec-WebSocket-Protocol: chat, superchat\r\n"
                         "Sec-WebSocket-Extensions: permessage-deflate; "
                         "client_max_window_bits\r\n"),
            0);
  ASSERT_EQ(R.version, 8);
  ASSERT(span_is(R.protocols, R.protocols_len, "chat, superchat"));
  ASSERT_EQ(R.protocols_lines, 1);
  ASSERT(span_is(R.extensions, R.extensions_len,
                 "permessage-deflate; client_max_window_bits"));
  ASSERT_EQ(R.extensions_lines, 1);
}

TEST(request_each_check_in_ws_order) {
  /* Each request fails the named check and every later one, so the status
   * and message show which check ws runs first. */
  ASSERT_EQ(check("POST", "Upgrade: x\r\nSec-WebSocket-Version: 1\r\n"), 405);
  ASSERT_STR_EQ(R.message, msg_method);
  ASSERT(R.extra_header == NULL);

  ASSERT_EQ(check("GET", "Upgrade: x\r\nSec-WebSocket-Key: x\r\n"
                         "Sec-WebSocket-Version: 1\r\n"
                         "Sec-WebSocket-Protocol: ,\r\n"),
            400);
  ASSERT_STR_EQ(R.message, msg_upgrade);

  ASSERT_EQ(check("GET", "Upgrade: websocket\r\nSec-WebSocket-Key: x\r\n"
                         "Sec-WebSocket-Version: 1\r\n"
                         "Sec-WebSocket-Protocol: ,\r\n"),
            400);
  ASSERT_STR_EQ(R.message, msg_key);
  ASSERT(R.extra_header == NULL);

  ASSERT_EQ(check("GET", "Upgrade: websocket\r\nSec-WebSocket-Key: " KEY
                         "\r\nSec-WebSocket-Version: 1\r\n"
                         "Sec-WebSocket-Protocol: ,\r\n"),
            400);
  ASSERT_STR_EQ(R.message, msg_version);
  ASSERT_STR_EQ(R.extra_header, "Sec-WebSocket-Version: 13, 8");

  ASSERT_EQ(check("GET", GOOD "Sec-WebSocket-Protocol: ,\r\n"), 400);
  ASSERT_STR_EQ(R.message, msg_protocol);
  ASSERT(R.extra_header == NULL);
}

TEST(request_method) {
  /* Case-sensitive, like req.method !== 'GET'. */
  static const char *bad[] = {"POST", "get", "HEAD", "GETS", "PUT"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (check(bad[i], GOOD) != 405) FAIL_("method %s", bad[i]);
    ASSERT_STR_EQ(R.message, msg_method);
  }
}

TEST(request_upgrade) {
  static const char *bad[] = {
      "Sec-WebSocket-Key: " KEY "\r\n",  /* missing */
      "Upgrade:\r\n",
      "Upgrade: websocket2\r\n",
      "Upgrade: web socket\r\n",
      "Upgrade: websocket, h2c\r\n",
      "Upgrade: websocket,websocket\r\n",
      /* Node joins repeats: "websocket, websocket". */
      "Upgrade: websocket\r\nUpgrade: websocket\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char lines[256];
    snprintf(lines, sizeof(lines),
             "%sSec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n",
             bad[i]);
    if (check("GET", lines) != 400) FAIL_("case %zu", i);
    ASSERT_STR_EQ(R.message, msg_upgrade);
  }
  ASSERT_EQ(check("GET", "Upgrade: WEBSOCKET\r\nSec-WebSocket-Key: " KEY
                         "\r\nSec-WebSocket-Version: 13\r\n"),
            0);
}

TEST(request_key) {
  static const struct {
    const char *key;
    int ok;
  } cases[] = {
      {KEY, 1},
      {"AAAAAAAAAAAAAAAAAAAAAA==", 1},
      {"+/+/+/+/+/+/+/+/+/+/+/==", 1},
      {"zzzzzzzzzzzzzzzzzzzzz9==", 1},
      {"", 0},
      {"dGhlIHNhbXBsZSBub25jZQ=", 0},    /* 23 */
      {"dGhlIHNhbXBsZSBub25jZQ===", 0},  /* 25 */
      {"dGhlIHNhbXBsZSBub25jZQ", 0},
      {"dGhlIHNhbXBsZSBub25jZQAA", 0},   /* no padding */
      {"dGhlIHNhbXBsZSBub25jZ===", 0},   /* '=' at 21 */
      {"dGhlIHNhbXBsZSBub25jZ-==", 0},   /* base64url */
      {"dGhlIHNhbXBsZSBub25jZ_==", 0},
      {"dGhlIHNhbXBs ZSBub25jZ==", 0},
      {"dGhlIHNhbXBsZSBub25jZ\xe9==", 0},
      {"dGhlIHNhbXBsZSBub25jZQ==x", 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char lines[256];
    snprintf(lines, sizeof(lines),
             "Upgrade: websocket\r\nSec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n",
             cases[i].key);
    int st = check("GET", lines);
    if (st != (cases[i].ok ? 0 : 400)) FAIL_("key \"%s\": %d", cases[i].key, st);
    if (!cases[i].ok) ASSERT_STR_EQ(R.message, msg_key);
  }
  /* Missing, and repeated (Node would join them into "k, k"). */
  ASSERT_EQ(check("GET", "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"),
            400);
  ASSERT_STR_EQ(R.message, msg_key);
  ASSERT_EQ(check("GET", GOOD "Sec-WebSocket-Key: " KEY "\r\n"), 400);
  ASSERT_STR_EQ(R.message, msg_key);
}

/* ws 8.23.1 takes exactly "13" or "8" (Node has trimmed SP and HTAB around
 * the value already); 0 means rejected. Many of these were accepted by
 * older ws, which compared `+value`. */
static const struct {
  const char *v;
  int want;
} versions[] = {
    {"13", 13},
    {"8", 8},
    {"\xa0" "13\xa0", 0}, /* NBSP: whitespace to JS, not to HTTP */
    {"13abc", 0},
    {"", 0},
    {"  ", 0},
    {"0xd", 0},
    {"0XD", 0},
    {"0x0000000D", 0},
    {"0xD.0", 0},
    {"0b1101", 0},
    {"0B1000", 0},
    {"0o15", 0},
    {"0O10", 0},
    {"0o8", 0},
    {"+13", 0},
    {"-13", 0},
    {"+8", 0},
    {"-8", 0},
    {"13.0", 0},
    {"1.3e1", 0},
    {"130e-1", 0},
    {"0.13E+2", 0},
    {"13.", 0},
    {"13.e0", 0},
    {".13e2", 0},
    {"0013", 0},
    {"0000008.000", 0},
    {"1.3E", 0},
    {"1e", 0},
    {"e1", 0},
    {".", 0},
    {"+", 0},
    {"-0", 0},
    {"0", 0},
    {"12", 0},
    {"14", 0},
    {"7", 0},
    {"9", 0},
    {"80e-1", 0},
    {"8e0", 0},
    {"0.08e2", 0},
    {"800000000000000000000e-20", 0},
    /* The edges of the rounding intervals of the doubles 13 and 8. */
    {"12.99999999999999911182158029987476766109466552734375", 0},
    {"12.999999999999999111821580299874767661094665527343749", 0},
    {"13.00000000000000088817841970012523233890533447265625", 0},
    {"13.000000000000000888178419700125232338905334472656251", 0},
    {"7.999999999999999555910790149937383830547332763671875", 0},
    {"7.9999999999999995559107901499373838305473327636718749", 0},
    {"8.00000000000000088817841970012523233890533447265625", 0},
    {"8.000000000000000888178419700125232338905334472656251", 0},
    {"13.00000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000001",
     0},
    {"1_3", 0},
    {"Infinity", 0},
    {"+Infinity", 0},
    {"0x", 0},
    {"0b", 0},
    {"0o", 0},
    {"+0xd", 0},
    {"13,13", 0},
    {"13, 13", 0},
    {"1.3e+1", 0},
    {"1300e-2", 0},
    {"13e0000000000000000000000", 0},
    {"1.3e0000000000000000000001", 0},
    {"13e-99999999999999999999", 0},
    {"0.0000000000000000013e19", 0},
    {"NaN", 0},
    {"0x1_0", 0},
};

TEST(request_version_exactly_13_or_8) {
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    const char *kv[] = {"Upgrade", "websocket", "Sec-WebSocket-Key", KEY,
                        "Sec-WebSocket-Version", versions[i].v};
    make_head("GET", kv, 3);
    wsn_handshake_check_request(&H, &R);
    if (versions[i].want) {
      if (R.status != 0 || R.version != versions[i].want)
        FAIL_("\"%s\": status %d version %d", versions[i].v, R.status,
              R.version);
    } else {
      if (R.status != 400) FAIL_("\"%s\": status %d", versions[i].v, R.status);
      ASSERT_STR_EQ(R.message, msg_version);
      ASSERT_STR_EQ(R.extra_header, "Sec-WebSocket-Version: 13, 8");
    }
  }
}

TEST(request_version_missing_or_repeated) {
  ASSERT_EQ(check("GET", "Upgrade: websocket\r\nSec-WebSocket-Key: " KEY
                         "\r\n"),
            400);
  ASSERT_STR_EQ(R.message, msg_version);
  /* Node joins the repeat into "13, 13", which is NaN. */
  ASSERT_EQ(check("GET", GOOD "Sec-WebSocket-Version: 13\r\n"), 400);
  ASSERT_STR_EQ(R.message, msg_version);
}

/* ws's subprotocol.parse, as run by Node: 1 accepted, 0 throws. */
static const struct {
  const char *v;
  int ok;
} protocols[] = {
    {"chat", 1},
    {"chat, superchat", 1},
    {"a,b", 1},
    {"a ,b", 1},
    {"a\t,\tb", 1},
    {"a , b", 1},
    {"a,,b", 0},
    {",a", 0},
    {"a,", 0},
    {"a b", 0},
    {"a,a", 0},
    {"chat, chat", 0},
    {"a@b", 0},
    {"", 0},
    {"a, A", 1}, /* case-sensitive: not duplicates */
    {"x,y,z,x", 0},
    {"a;b", 0},
    {"a\xe9", 0},
    {"a,b ,c\t, d", 1},
    {"a,b,", 0},
    {" a", 0}, /* whitespace at index 0 */
    {"a\t", 0}, /* trailing whitespace ends the input with end set */
    {"ab, abc, ab c", 0},
    {"ab, abc, abcd", 1},
};

TEST(request_protocol_list_like_ws) {
  for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++) {
    const char *kv[] = {"Upgrade", "websocket", "Sec-WebSocket-Key", KEY,
                        "Sec-WebSocket-Version", "13",
                        "Sec-WebSocket-Protocol", protocols[i].v};
    make_head("GET", kv, 4);
    wsn_handshake_check_request(&H, &R);
    if (R.status != (protocols[i].ok ? 0 : 400))
      FAIL_("\"%s\": status %d", protocols[i].v, R.status);
    if (protocols[i].ok) {
      ASSERT(span_is(R.protocols, R.protocols_len, protocols[i].v));
      ASSERT_EQ(R.protocols_lines, 1);
    } else {
      ASSERT_STR_EQ(R.message, msg_protocol);
    }
  }
}

TEST(request_protocol_repeated_lines_join) {
  /* Node joins lines with ", " before ws parses them. */
  ASSERT_EQ(check("GET", GOOD "Sec-WebSocket-Protocol: a, b\r\n"
                              "Sec-WebSocket-Protocol: c\r\n"
                              "sec-websocket-protocol: d \r\n"),
            0);
  ASSERT(span_is(R.protocols, R.protocols_len, "a, b"));
  ASSERT_EQ(R.protocols_lines, 3);
  static const char *bad[] = {
      "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: a\r\n",
      "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c, b\r\n",
      "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol:\r\n", /* "a, " */
      "Sec-WebSocket-Protocol:\r\nSec-WebSocket-Protocol: a\r\n", /* ", a" */
      "Sec-WebSocket-Protocol: a,\r\nSec-WebSocket-Protocol: b\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char lines[512];
    snprintf(lines, sizeof(lines), GOOD "%s", bad[i]);
    if (check("GET", lines) != 400) FAIL_("case %zu", i);
    ASSERT_STR_EQ(R.message, msg_protocol);
  }
  /* A line that ends in whitespace is fine before the joining comma. */
  const char *kv[] = {"Upgrade", "websocket", "Sec-WebSocket-Key", KEY,
                      "Sec-WebSocket-Version", "13",
                      "Sec-WebSocket-Protocol", "a\t",
                      "Sec-WebSocket-Protocol", "b"};
  make_head("GET", kv, 5);
  wsn_handshake_check_request(&H, &R);
  ASSERT_EQ(R.status, 0);
  ASSERT_EQ(R.protocols_lines, 2);
}

TEST(request_extensions_repeated_lines) {
  ASSERT_EQ(check("GET", GOOD "Sec-WebSocket-Extensions: a\r\n"
                              "Sec-WebSocket-Extensions: b\r\n"),
            0);
  ASSERT(span_is(R.extensions, R.extensions_len, "a"));
  ASSERT_EQ(R.extensions_lines, 2);
}

TEST(request_protocol_worst_case_list) {
  /* As many distinct two-char protocols as fit in a head: exercises the
   * quadratic duplicate check at its bound. */
  static const char tchars[] =
      "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
      "tuvwxyz";
  size_t nt = sizeof(tchars) - 1, n = 0;
  n += (size_t)snprintf(buf, sizeof(buf),
                        "GET / HTTP/1.1\r\n" GOOD "Sec-WebSocket-Protocol: ");
  for (size_t i = 0; n + 8 < WSN_HTTP_MAX_HEAD_BYTES; i++) {
    if (i > 0) buf[n++] = ',';
    buf[n++] = tchars[i / nt];
    buf[n++] = tchars[i % nt];
  }
  memcpy(buf + n, "\r\n\r\n", 4);
  n += 4;
  ASSERT_EQ(wsn_http_parse_request(buf, n, 0, &H), n);
  wsn_handshake_check_request(&H, &R);
  ASSERT_EQ(R.status, 0);
  /* Repeating the first protocol at the very end is caught. */
  memcpy(buf + n - 7, ",!!", 3);
  ASSERT_EQ(wsn_http_parse_request(buf, n, 0, &H), n);
  wsn_handshake_check_request(&H, &R);
  ASSERT_EQ(R.status, 400);
}

TEST(request_protocol_long_duplicates) {
  /* Protocols of 3+ chars go through the sorted check: duplicates far apart,
   * across lines, and near misses (prefixes, case). */
  static const struct {
    const char *lines[3];
    int ok;
  } cases[] = {
      {{"chat, superchat, chat2, cha, chatt", NULL, NULL}, 1},
      {{"chat, superchat, chat2, cha, chat", NULL, NULL}, 0},
      {{"abc, abd, ABC, abcd", "abce, ab, a", NULL}, 1},
      {{"abc, abd, ABC, abcd", "abce, ab, abd", NULL}, 0},
      {{"x1, longer-one", "y2", "z3, longer-one"}, 0},
      {{"x1, longer-one", "y2", "z3, longer-onf"}, 1},
      {{"ab, ba, a, b", "ab", NULL}, 0},
      {{"!!, !#, !", "#", "!"}, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *kv[12] = {"Upgrade", "websocket", "Sec-WebSocket-Key", KEY,
                          "Sec-WebSocket-Version", "13"};
    size_t n = 3;
    for (size_t l = 0; l < 3 && cases[i].lines[l]; l++, n++) {
      kv[2 * n] = "Sec-WebSocket-Protocol";
      kv[2 * n + 1] = cases[i].lines[l];
    }
    make_head("GET", kv, n);
    wsn_handshake_check_request(&H, &R);
    if (R.status != (cases[i].ok ? 0 : 400))
      FAIL_("case %zu: status %d", i, R.status);
  }
}

/* A hand-built head (the parser caps heads at 16 KiB) with more 3-char
 * protocols than the fast check records: the exact slow path decides. */
static char big[6000 * 4];
TEST(request_protocol_overflow_falls_back) {
  static const char tchars[] =
      "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
      "tuvwxyz";
  size_t nt = sizeof(tchars) - 1, n = 0;
  for (size_t i = 0; i < 6000; i++) {
    if (i > 0) big[n++] = ',';
    big[n++] = tchars[i / nt / nt % nt];
    big[n++] = tchars[i / nt % nt];
    big[n++] = tchars[i % nt];
  }
  big[n] = '\0';
  const char *kv[] = {"Upgrade", "websocket", "Sec-WebSocket-Key", KEY,
                      "Sec-WebSocket-Version", "13",
                      "Sec-WebSocket-Protocol", big};
  make_head("GET", kv, 4);
  wsn_handshake_check_request(&H, &R);
  ASSERT_EQ(R.status, 0);
  /* The last protocol repeats the first. */
  memcpy(big + n - 3, "!!!", 3);
  wsn_handshake_check_request(&H, &R);
  ASSERT_EQ(R.status, 400);
  ASSERT_STR_EQ(R.message, msg_protocol);
}

TEST(first_protocol) {
  const char *p = NULL;
  size_t n = 0;
  ASSERT_EQ(wsn_handshake_first_protocol("chat, superchat", 15, &p, &n), 1);
  ASSERT(span_is(p, n, "chat"));
  ASSERT_EQ(wsn_handshake_first_protocol("x", 1, &p, &n), 1);
  ASSERT(span_is(p, n, "x"));
  ASSERT_EQ(wsn_handshake_first_protocol("a\t,b", 4, &p, &n), 1);
  ASSERT(span_is(p, n, "a"));
  ASSERT_EQ(wsn_handshake_first_protocol(" \tab ", 5, &p, &n), 1);
  ASSERT(span_is(p, n, "ab"));
  /* Only len bytes are read. */
  ASSERT_EQ(wsn_handshake_first_protocol("abcdef", 3, &p, &n), 1);
  ASSERT(span_is(p, n, "abc"));
  ASSERT_EQ(wsn_handshake_first_protocol("", 0, &p, &n), 0);
  ASSERT_EQ(wsn_handshake_first_protocol("  ", 2, &p, &n), 0);
  ASSERT_EQ(wsn_handshake_first_protocol(NULL, 0, &p, &n), 0);
}

/* ---- responses, byte-exact against what ws writes ------------------------ */

static const char ws_101[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n";
static const char ws_101_chat[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
    "Sec-WebSocket-Protocol: chat\r\n\r\n";

TEST(response_101) {
  size_t n = wsn_handshake_response_101(buf, sizeof(buf), KEY, strlen(KEY),
                                        NULL, 0, NULL, 0);
  ASSERT_EQ(n, sizeof(ws_101) - 1);
  ASSERT_MEM_EQ(buf, ws_101, n);

  n = wsn_handshake_response_101(buf, sizeof(buf), KEY, strlen(KEY), "chat",
                                 4, NULL, 0);
  ASSERT_EQ(n, sizeof(ws_101_chat) - 1);
  ASSERT_MEM_EQ(buf, ws_101_chat, n);

  /* ws skips a falsy protocol. */
  n = wsn_handshake_response_101(buf, sizeof(buf), KEY, strlen(KEY), "", 0,
                                 NULL, 0);
  ASSERT_EQ(n, sizeof(ws_101) - 1);
  ASSERT_MEM_EQ(buf, ws_101, n);
}

TEST(response_101_with_extensions) {
  static const char want[] =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
      "Sec-WebSocket-Protocol: chat\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  const char *extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
  size_t n = wsn_handshake_response_101(buf, sizeof(buf), KEY, strlen(KEY),
                                        "chat", 4, extra, strlen(extra));
  ASSERT_EQ(n, sizeof(want) - 1);
  ASSERT_MEM_EQ(buf, want, n);
}

TEST(response_101_capacity) {
  size_t need = sizeof(ws_101_chat) - 1;
  char small[sizeof(ws_101_chat)];
  ASSERT_EQ(wsn_handshake_response_101(small, need, KEY, strlen(KEY), "chat",
                                       4, NULL, 0),
            need);
  ASSERT_MEM_EQ(small, ws_101_chat, need);
  ASSERT_EQ(wsn_handshake_response_101(small, need - 1, KEY, strlen(KEY),
                                       "chat", 4, NULL, 0),
            0);
  ASSERT_EQ(wsn_handshake_response_101(NULL, 0, KEY, strlen(KEY), NULL, 0,
                                       NULL, 0),
            0);
}

/* Captured from a ws 8.23.1 WebSocketServer. */
static const struct {
  int status;
  const char *message;
  const char *extra;
  const char *want;
} ws_errors[] = {
    {405, msg_method, NULL,
     "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 19\r\n\r\n"
     "Invalid HTTP method"},
    {400, msg_upgrade, NULL,
     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 22\r\n\r\n"
     "Invalid Upgrade header"},
    {400, msg_key, NULL,
     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 43\r\n\r\n"
     "Missing or invalid Sec-WebSocket-Key header"},
    {400, msg_version, "Sec-WebSocket-Version: 13, 8",
     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 47\r\n"
     "Sec-WebSocket-Version: 13, 8\r\n\r\n"
     "Missing or invalid Sec-WebSocket-Version header"},
    {400, msg_protocol, NULL,
     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 37\r\n\r\n"
     "Invalid Sec-WebSocket-Protocol header"},
    /* abortHandshake(socket, code) with no message: the status text. */
    {400, NULL, NULL,
     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 11\r\n\r\nBad Request"},
    {401, NULL, NULL,
     "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 12\r\n\r\nUnauthorized"},
    {503, "", NULL,
     "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 19\r\n\r\n"
     "Service Unavailable"},
    /* verifyClient's (code, message): the status line keeps the text. */
    {403, "nope", NULL,
     "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n"
     "Content-Type: text/html\r\nContent-Length: 4\r\n\r\nnope"},
};

TEST(response_error_matches_ws) {
  for (size_t i = 0; i < sizeof(ws_errors) / sizeof(ws_errors[0]); i++) {
    size_t want = strlen(ws_errors[i].want);
    size_t n = wsn_handshake_response_error(buf, sizeof(buf),
                                            ws_errors[i].status,
                                            ws_errors[i].message,
                                            ws_errors[i].extra);
    if (n != want || memcmp(buf, ws_errors[i].want, n) != 0)
      FAIL_("case %zu: got \"%.*s\"", i, (int)n, buf);
  }
}

TEST(response_error_from_check_result) {
  ASSERT_EQ(check("GET", "Upgrade: websocket\r\nSec-WebSocket-Key: " KEY
                         "\r\nSec-WebSocket-Version: 7\r\n"),
            400);
  size_t n = wsn_handshake_response_error(buf, sizeof(buf), R.status,
                                          R.message, R.extra_header);
  ASSERT_EQ(n, strlen(ws_errors[3].want));
  ASSERT_MEM_EQ(buf, ws_errors[3].want, n);
}

TEST(response_error_capacity_and_unknown_status) {
  size_t need = strlen(ws_errors[0].want);
  char small[256];
  ASSERT_EQ(wsn_handshake_response_error(small, need, 405, msg_method, NULL),
            need);
  ASSERT_EQ(wsn_handshake_response_error(small, need - 1, 405, msg_method,
                                         NULL),
            0);
  ASSERT_EQ(wsn_handshake_response_error(NULL, 0, 405, msg_method, NULL), 0);
  static const char want[] =
      "HTTP/1.1 599 Unknown\r\nConnection: close\r\n"
      "Content-Type: text/html\r\nContent-Length: 7\r\n\r\nUnknown";
  size_t n = wsn_handshake_response_error(small, sizeof(small), 599, NULL,
                                          NULL);
  ASSERT_EQ(n, sizeof(want) - 1);
  ASSERT_MEM_EQ(small, want, n);
}

/* ---- client-side response checks ----------------------------------------- */

static int check_res(const char *head) {
  if (parse_res(head) <= 0) return -1;
  return wsn_handshake_check_response(&H, KEY, strlen(KEY));
}

TEST(client_response_ok) {
  ASSERT_EQ(check_res(ws_101), WSN_HS_OK);
  ASSERT_EQ(check_res(ws_101_chat), WSN_HS_OK);
  ASSERT_EQ(check_res("HTTP/1.0 101\r\nupgrade: WebSocket\r\n"
                      "connection: keep-alive, upgrade\r\n"
                      "sec-websocket-accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_OK);
  /* Connection tokens may be spread over lines, as Node's parser sees. */
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
                      "Connection: close\r\nConnection: ,Upgrade,\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_OK);
}

TEST(client_response_not_101) {
  ASSERT_EQ(check_res("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT
                      "\r\n\r\n"),
            WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 400 Bad Request\r\n\r\n"), WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 100 Continue\r\n\r\n"), WSN_HS_NOT_101);
  /* A 101 that Node does not take for an upgrade. */
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
                      "Connection: keep-alive\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
                      "Connection: foo upgrade\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_NOT_101);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\nUpgrade:\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_NOT_101);
}

TEST(client_response_bad_upgrade) {
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
                      "Upgrade: foo\r\nSec-WebSocket-Accept: " ACCEPT
                      "\r\n\r\n"),
            WSN_HS_BAD_UPGRADE);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
                      "Upgrade: websocket, h2c\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_BAD_UPGRADE);
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
                      "Upgrade: websocket\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n"),
            WSN_HS_BAD_UPGRADE);
  /* Upgrade is checked before the accept value. */
  ASSERT_EQ(check_res("HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
                      "Upgrade: foo\r\n\r\n"),
            WSN_HS_BAD_UPGRADE);
}

TEST(client_response_bad_accept) {
  static const char *bad[] = {
      "",                                                /* missing */
      "Sec-WebSocket-Accept:\r\n",
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n",
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo==\r\n",
      "Sec-WebSocket-Accept: S3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", /* case */
      "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n", /* other key */
      "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT
      "\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\n%s\r\n",
             bad[i]);
    if (check_res(head) != WSN_HS_BAD_ACCEPT) FAIL_("case %zu", i);
  }
  /* A key too long to hash never matches, even a '*' accept value. */
  char key[200];
  memset(key, 'a', sizeof(key));
  ASSERT(parse_res("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                   "****************************\r\n\r\n") > 0);
  ASSERT_EQ(wsn_handshake_check_response(&H, key, sizeof(key)),
            WSN_HS_BAD_ACCEPT);
}

RUN_TESTS()
