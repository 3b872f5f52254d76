/*
 * wsload: a WebSocket load generator for benchmarking echo servers.
 *
 * One thread, epoll, non-blocking sockets. It speaks just enough RFC 6455 to
 * drive an echo server hard while trusting it with nothing:
 *
 *  - it performs the HTTP upgrade itself (random Sec-WebSocket-Key, checks the
 *    101 status and the Sec-WebSocket-Accept value);
 *  - every client frame is masked with a fresh random key (servers must reject
 *    unmasked frames, and a fixed key would let a server cheat);
 *  - every echoed payload is verified byte for byte against what was sent.
 *    The payload of message `seq` on connection `id` carries a stamp of
 *    (seq, id) at the start of every 4 KiB block, over a per-connection
 *    random pattern, so a server that drops, reorders, duplicates, mixes up
 *    or corrupts messages fails loudly instead of looking fast.
 *
 * Frames are corked: all the frames a connection has ready go out in one
 * send(), which is what a well-behaved client library does too and keeps the
 * generator's syscall count from dominating the measurement.
 *
 * Modes:
 *   echo     N connections, K messages in flight each; prints msgs/s and MB/s
 *   latency  like echo (default N=1, K=1), and records every round trip with
 *            CLOCK_MONOTONIC; prints p50/p99/p99.9 in microseconds
 *   idle     opens N connections, completes every handshake, prints one line
 *            once all are established, then holds them until a line on stdin,
 *            EOF on stdin while holding, or SIGINT/SIGTERM. With --active M
 *            the first stdin line makes every connection send M messages
 *            (all in flight at once) and wait for their echoes; one more line
 *            is printed once all are back, and the next stdin line lets go.
 *   churn    connection setup rate: N slots, each running short-lived
 *            connections one after another: connect, upgrade (101 and
 *            Sec-WebSocket-Accept checked), one message sent and its echo
 *            verified, our close frame, the server's close frame and the end
 *            of the TCP connection, then the next connection. Prints
 *            connections completed per second and the handshake time (from
 *            connect() to a verified 101, TLS included with -S) p50/p99.
 *            Every connection must close cleanly: a server that resets or
 *            ends the TCP connection without its close frame fails the run.
 *   broadcast N connections that send nothing and count the messages the
 *            server pushes to them (bench S9: one message published to all
 *            per server turn); every message must be S bytes of 'x', of the
 *            type -t/-b says. Prints delivered msgs/s over all connections.
 *            With -I (--socketio, bench S10) each connection is a socket.io
 *            client over the websocket transport (engine.io 4): the upgrade
 *            goes to /socket.io/?EIO=4&transport=websocket, "40" joins the
 *            main namespace, and only EVENT packets ("42...") count; others
 *            (the open and connect packets) are read and ignored.
 *
 * TLS (-S): wss://. The TLS handshake (OpenSSL, any certificate accepted:
 * the bench server's is self-signed and this is a load generator, not a
 * client anyone trusts) runs before the upgrade; every byte then goes
 * through SSL_write/SSL_read, and the upgrade and the echoes are checked as
 * in plain mode.
 *
 * permessage-deflate (-z, RFC 7692): the upgrade offers
 * "permessage-deflate; client_max_window_bits" (what browsers and ws's client
 * offer), the 101 must accept it, and the agreed parameters are honoured:
 * every message is compressed (raw deflate, Z_SYNC_FLUSH, the trailing
 * 00 00 ff ff stripped, RSV1 set; without context reset between messages
 * unless client_no_context_takeover), and replies with RSV1 are inflated as
 * they arrive and verified like any other. Uncompressed replies (a server
 * may skip compression, e.g. under its threshold) are accepted. Messages are
 * compressed once before the run rather than per send (build_pool explains
 * why that sends exactly the same bytes); the inflate stream is allocated on
 * a connection's first reply.
 *
 * -j makes the payloads JSON-like text (records with repeated keys, words,
 * numbers, ids) read at a different offset of a 1 MiB corpus for every
 * message, so compression sees what it would in real traffic: structure that
 * repeats, values that do not, and no message identical to an earlier one.
 *
 * The result is one JSON line on stdout. Exit status: 0 success, 1 usage,
 * 2 connection/protocol error, 3 payload verification failure, 4 stall
 * (messages in flight that never came back: a lossy server).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define EXIT_USAGE 1
#define EXIT_PROTO 2
#define EXIT_VERIFY 3
#define EXIT_STALL 4

/* Payload layout: a STAMP_LEN-byte (seq, id) stamp at the start of every
 * BLOCK-byte block, the random pattern everywhere else. */
#define BLOCK 4096
#define STAMP_LEN 16
/* The pattern is one shared buffer; each connection reads it at its own
 * offset, so payloads differ across connections without N copies. */
#define PATTERN_SLACK 4096
/* -j: messages start at a per-message offset into a corpus this much longer
 * than one message. */
#define CORPUS_SPAN (1024 * 1024)
/* Inflated output is verified in chunks of this size. */
#define ZOUT_SIZE (64 * 1024)

#define RBUF_SIZE (256 * 1024)
/* Bytes of an incomplete frame header or control frame kept between reads:
 * the longest is a 125-byte control payload behind a 2-byte header. The
 * largest header (10 bytes, unmasked server frame) is shorter. */
#define STASH_MAX 128
#define HANDSHAKE_MAX 8192
#define CLOSE_TIMEOUT_S 5.0

enum mode { MODE_ECHO, MODE_LATENCY, MODE_IDLE, MODE_CHURN, MODE_BROADCAST };

static struct {
  const char *host;
  const char *port;
  const char *path;
  uint32_t conns;
  uint32_t inflight;
  size_t size;
  bool binary;
  double duration;   /* seconds of measurement, if messages == 0 */
  uint64_t messages; /* messages to measure instead of a duration */
  double warmup;
  enum mode mode;
  double timeout; /* no progress for this long = failure */
  uint32_t connect_batch;
  bool deflate; /* -z: negotiate permessage-deflate */
  int zlevel;   /* our deflate level */
  bool json;    /* -j: JSON-like payloads */
  uint32_t active; /* idle mode: messages each connection sends on request */
  bool tls;        /* -S: wss:// */
  bool socketio;   /* -I: broadcast mode as a socket.io client */
} opt = {
    .host = "127.0.0.1",
    .port = NULL,
    .path = "/",
    .conns = 0,
    .inflight = 0,
    .size = 32,
    .binary = false,
    .duration = 5.0,
    .messages = 0,
    .warmup = 1.0,
    .mode = MODE_ECHO,
    .timeout = 10.0,
    .connect_batch = 256,
    .deflate = false,
    .zlevel = Z_DEFAULT_COMPRESSION,
    .json = false,
    .active = 0,
};

enum cstate {
  CS_IDLE,       /* not started yet */
  CS_CONNECTING, /* TCP connect in progress */
  CS_TLS,        /* -S: TLS handshake in progress */
  CS_HANDSHAKE,  /* upgrade request sent, waiting for 101 */
  CS_OPEN,
  CS_CLOSING, /* our close frame sent, waiting for the server's and EOF */
  CS_DONE
};

struct conn {
  int fd;
  uint32_t id;
  enum cstate state;
  uint32_t events; /* currently registered epoll events */
  char key[25];    /* base64 of 16 random bytes */

  char *hbuf; /* handshake response, only while CS_HANDSHAKE */
  size_t hlen;

  uint8_t *wbuf; /* frames not yet accepted by the kernel */
  size_t wlen, woff, wcap;

  uint32_t send_seq; /* next message to send */
  uint32_t recv_seq; /* next message expected back */
  uint64_t *sent_at; /* latency mode: send time of seq, indexed seq % K */

  /* Streaming frame parser: payload is verified as it arrives, so a 1 MiB
   * message never needs to be buffered. */
  bool in_msg;        /* inside a (possibly fragmented) data message */
  size_t msg_off;     /* offset of the next payload byte in the message */
  uint64_t frame_rem; /* payload bytes left in the current data frame */
  bool frame_fin;
  bool got_close;
  uint8_t stash[STASH_MAX];
  uint8_t sio_head[2]; /* -I: the first payload bytes of the message */
  size_t stash_len;

  /* permessage-deflate, as agreed in the 101 */
  bool pmd;
  bool client_nct, server_nct; /* no_context_takeover */
  int client_bits, server_bits;
  z_stream *zi;      /* inflates the server's messages; from the first one */
  bool msg_z;        /* the message being received is compressed */
  bool active_done;  /* idle --active: its messages all came back */

  SSL *ssl;          /* -S */
  size_t tls_retry;  /* an SSL_write that must be repeated with this length */
  uint64_t t_start;  /* churn: when connect() was called */
};

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_IDLE_HOLD, PH_ACTIVE, PH_CLOSE, PH_END };

static struct {
  int ep;
  struct conn *conns;
  uint32_t started, established, done;
  enum phase phase;
  uint64_t t_begin, t_connected, t_phase, t_measure, t_end, t_progress;
  uint64_t msgs_total, msgs_at_measure, msgs_at_end;
  uint64_t unclean;
  uint8_t *pattern;
  uint8_t *rbuf;
  struct addrinfo *ai;
  uint64_t *samples;
  size_t nsamples, samples_cap;
  uint64_t rng;
  int sigfd;
  bool release_pending;
  size_t pattern_len;
  uint8_t *plain;   /* one message before compression */
  uint8_t *zbuf;    /* one compressed message */
  size_t zbuf_cap;
  uint8_t *zout;    /* inflated output being verified */
  uint64_t wire_out, plain_out, wire_in, plain_in; /* payload bytes, whole run */
  uint32_t active_done;
  bool active_started;
  /* -z: every message compressed once, before the run */
  uint32_t groups, cycle;
  uint8_t **pool;      /* [group * cycle + i]: compressed message */
  size_t *pool_len;
  bool pool_nct;       /* the agreement it was built for */
  int pool_bits;
  struct rusage ru_measure, ru_end;
  SSL_CTX *ssl_ctx; /* -S */
  /* churn: connections completed (cleanly closed), and the next id */
  uint64_t completed, completed_at_measure, completed_at_end;
  uint32_t next_id;
} g;

/* Distinct non-NULL epoll tags for the two non-connection fds. */
static int tag_stdin, tag_signal;

/* ---- utilities -------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wsload: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) die(EXIT_PROTO, "out of memory");
  return p;
}

/* splitmix64: fast, good enough for masks and patterns; seeded from the
 * kernel so two runs never send the same bytes. */
static uint64_t rnd(void) {
  uint64_t z = (g.rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void seed_rng(void) {
  if (getrandom(&g.rng, sizeof g.rng, 0) != (ssize_t)sizeof g.rng) g.rng = now_ns() ^ (uint64_t)getpid() << 32;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const uint8_t *in, size_t n, char *out) {
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64chars[v >> 18 & 63];
    out[o++] = b64chars[v >> 12 & 63];
    out[o++] = b64chars[v >> 6 & 63];
    out[o++] = b64chars[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = b64chars[v >> 18 & 63];
    out[o++] = b64chars[v >> 12 & 63];
    out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
}

/* SHA-1, only to check Sec-WebSocket-Accept: a server that gets the accept
 * value wrong is not a WebSocket server, however fast it echoes. */
static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  uint8_t *m = calloc(total, 1);
  if (!m) die(EXIT_PROTO, "out of memory");
  memcpy(m, msg, len);
  m[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
             (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  free(m);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

/* ---- payloads --------------------------------------------------------- */

/* Which message a connection sends as its seq-th: normally (id, seq) itself.
 * With -z the messages are compressed once before the run (see build_pool),
 * so connection id sends, as message seq, the (seq mod cycle)-th message of
 * group (id mod groups): the stamp and the check use those two numbers. */
static uint32_t msg_id(const struct conn *c) { return opt.deflate ? c->id % g.groups : c->id; }
static uint32_t msg_seq(uint32_t seq) { return opt.deflate ? seq % g.cycle : seq; }

static const uint8_t *pattern_for(uint32_t id, uint32_t seq) {
  if (opt.json) {
    /* A different slice for every (connection, message): splitmix64 of both. */
    uint64_t z = ((uint64_t)id << 32 | seq) + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return g.pattern + z % CORPUS_SPAN;
  }
  /* 4093 is prime, so neighbouring connections land far apart. */
  return g.pattern + (size_t)id * 769u % 4093u;
}

/* Hex so the stamp is valid in text messages too. */
static void make_stamp(char stamp[STAMP_LEN], uint32_t id, uint32_t seq) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) {
    stamp[i] = hex[seq >> (28 - 4 * i) & 15];
    stamp[8 + i] = hex[id >> (28 - 4 * i) & 15];
  }
}

/* Byte o of message seq is stamp[o % BLOCK] if o % BLOCK < STAMP_LEN, else
 * pattern[o]. fill_payload and verify_range both follow that one rule. */
static void fill_payload(uint8_t *dst, uint32_t id, uint32_t seq) {
  char stamp[STAMP_LEN];
  make_stamp(stamp, id, seq);
  memcpy(dst, pattern_for(id, seq), opt.size);
  for (size_t b = 0; b < opt.size; b += BLOCK) {
    size_t n = opt.size - b < STAMP_LEN ? opt.size - b : STAMP_LEN;
    memcpy(dst + b, stamp, n);
  }
}

static void verify_fail(const struct conn *c, size_t off, const uint8_t *got, const uint8_t *want, size_t n) {
  size_t i = 0;
  while (i < n && got[i] == want[i]) i++;
  die(EXIT_VERIFY,
      "payload mismatch on connection %" PRIu32 ", message %" PRIu32 ", byte %zu: got 0x%02x, expected 0x%02x",
      c->id, c->recv_seq, off + i, got[i], want[i]);
}

/* Checks n echoed bytes at message offset off against what was sent. */
static void verify_range(const struct conn *c, size_t off, const uint8_t *data, size_t n) {
  char stamp[STAMP_LEN];
  const uint8_t *pat = pattern_for(msg_id(c), msg_seq(c->recv_seq));
  make_stamp(stamp, msg_id(c), msg_seq(c->recv_seq));
  while (n > 0) {
    size_t boff = off % BLOCK;
    size_t chunk = BLOCK - boff < n ? BLOCK - boff : n;
    if (boff < STAMP_LEN) {
      size_t m = STAMP_LEN - boff < chunk ? STAMP_LEN - boff : chunk;
      if (memcmp(data, stamp + boff, m) != 0) verify_fail(c, off, data, (const uint8_t *)stamp + boff, m);
      data += m;
      off += m;
      n -= m;
      chunk -= m;
    }
    if (chunk > 0) {
      if (memcmp(data, pat + off, chunk) != 0) verify_fail(c, off, data, pat + off, chunk);
      data += chunk;
      off += chunk;
      n -= chunk;
    }
  }
}

/* ---- JSON-like corpus (-j) ---------------------------------------------- */

/* Event records as a chat, shop or telemetry backend would push them: the
 * same keys every time, values drawn from small vocabularies (names, kinds,
 * statuses, words) mixed with numbers, timestamps and random ids, which do
 * not compress. One 1 KiB slice holds one or two records. */
static const char *const j_kinds[] = {"order.created", "order.updated", "order.shipped", "payment.settled",
                                      "user.login", "user.logout", "cart.item_added", "cart.item_removed",
                                      "chat.message", "presence.update", "price.tick", "metrics.sample"};
static const char *const j_first[] = {"Maria", "James", "Aiko", "Lars", "Fatima", "Chen", "Olga", "Diego",
                                      "Priya", "Noah", "Amara", "Tomasz", "Elena", "Kwame", "Sofia", "Mateo"};
static const char *const j_last[] = {"Lopez", "Smith", "Tanaka", "Nilsson", "Haddad", "Wei", "Ivanova", "Garcia",
                                     "Patel", "Brown", "Okafor", "Nowak", "Rossi", "Mensah", "Costa", "Novak"};
static const char *const j_status[] = {"pending", "processing", "shipped", "delivered", "cancelled", "refunded"};
static const char *const j_region[] = {"eu-west-1", "eu-central-1", "us-east-1", "us-west-2",
                                       "ap-south-1", "ap-northeast-1", "sa-east-1"};
static const char *const j_cur[] = {"EUR", "USD", "GBP", "JPY", "INR", "BRL"};
static const char *const j_words[] = {
    "the",     "order",   "was",      "shipped",  "today",   "please",  "check",    "your",    "account", "for",
    "details", "we",      "have",     "updated",  "price",   "of",      "item",     "in",      "cart",    "new",
    "message", "from",    "support",  "team",     "thanks",  "waiting", "delivery", "tomorrow", "morning", "and",
    "a",       "refund",  "is",       "on",       "its",     "way",     "payment",  "received", "invoice", "attached",
    "can",     "you",     "confirm",  "address",  "meeting", "moved",   "to",       "friday",   "see",     "later",
    "great",   "news",    "product",  "back",     "stock",   "limited", "offer",    "ends",     "soon",    "ok"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(a) ((a)[rnd() % NELEM(a)])

struct sbuf {
  uint8_t *p;
  size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf((char *)b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len - 1;
}

static void sb_lower(struct sbuf *b, const char *s) {
  for (; *s && b->len + 1 < b->cap; s++) b->p[b->len++] = (uint8_t)tolower((unsigned char)*s);
}

static void make_json_corpus(uint8_t *dst, size_t n) {
  uint8_t *tmp = xrealloc(NULL, n + 1); /* room for vsnprintf's terminating NUL */
  struct sbuf b = {tmp, 0, n + 1};
  while (b.len + 1 < b.cap) {
    const char *fn = PICK(j_first), *ln = PICK(j_last);
    sb_printf(&b, "{\"id\":%u,\"type\":\"%s\",\"ts\":\"2025-%02u-%02uT%02u:%02u:%02u.%03uZ\",",
              (unsigned)(1000000 + rnd() % 9000000), PICK(j_kinds), (unsigned)(1 + rnd() % 12),
              (unsigned)(1 + rnd() % 28), (unsigned)(rnd() % 24), (unsigned)(rnd() % 60), (unsigned)(rnd() % 60),
              (unsigned)(rnd() % 1000));
    sb_printf(&b, "\"user\":{\"id\":\"u_%08x\",\"name\":\"%s %s\",\"email\":\"", (unsigned)rnd(), fn, ln);
    sb_lower(&b, fn);
    sb_printf(&b, ".");
    sb_lower(&b, ln);
    sb_printf(&b, "@example.com\",\"region\":\"%s\"},\"status\":\"%s\",\"amount\":%u.%02u,\"currency\":\"%s\",",
              PICK(j_region), PICK(j_status), (unsigned)(rnd() % 500), (unsigned)(rnd() % 100), PICK(j_cur));
    sb_printf(&b, "\"items\":[");
    unsigned items = 1 + (unsigned)(rnd() % 3);
    for (unsigned i = 0; i < items; i++)
      sb_printf(&b, "%s{\"sku\":\"SKU-%05u\",\"qty\":%u,\"price\":%u.%02u}", i ? "," : "", (unsigned)(rnd() % 100000),
                (unsigned)(1 + rnd() % 9), (unsigned)(rnd() % 200), (unsigned)(rnd() % 100));
    sb_printf(&b, "],\"message\":\"");
    unsigned words = 5 + (unsigned)(rnd() % 11);
    for (unsigned i = 0; i < words; i++) sb_printf(&b, "%s%s", i ? " " : "", PICK(j_words));
    sb_printf(&b, "\",\"tags\":[\"%s\",\"%s\"],\"score\":0.%04u,\"active\":%s,\"session\":\"%08x%08x\"}\n",
              PICK(j_words), PICK(j_region), (unsigned)(rnd() % 10000), rnd() & 1 ? "true" : "false",
              (unsigned)rnd(), (unsigned)rnd());
  }
  memcpy(dst, tmp, n);
  free(tmp);
}

/* ---- permessage-deflate ------------------------------------------------ */

static z_stream *zstream_new(bool deflating, int bits) {
  z_stream *z = calloc(1, sizeof *z);
  if (!z) die(EXIT_PROTO, "out of memory");
  int rc;
  if (deflating) {
    /* zlib cannot deflate raw with an 8-bit window; it is 9 for ws too. */
    rc = deflateInit2(z, opt.zlevel, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8, Z_DEFAULT_STRATEGY);
  } else {
    rc = inflateInit2(z, -bits);
  }
  if (rc != Z_OK) die(EXIT_PROTO, "zlib init: %s", z->msg ? z->msg : "failed");
  return z;
}

static void zstreams_free(struct conn *c) {
  if (c->zi) {
    inflateEnd(c->zi);
    free(c->zi);
    c->zi = NULL;
  }
}

/* Compresses g.plain[0..len) into g.zbuf as one permessage-deflate message;
 * returns the compressed length. */
static size_t compress_message(z_stream *z, bool nct, size_t len) {
  z->next_in = g.plain;
  z->avail_in = (uInt)len;
  size_t out = 0;
  for (;;) {
    if (g.zbuf_cap - out < 64) {
      g.zbuf_cap *= 2;
      g.zbuf = xrealloc(g.zbuf, g.zbuf_cap);
    }
    z->next_out = g.zbuf + out;
    z->avail_out = (uInt)(g.zbuf_cap - out);
    int rc = deflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) die(EXIT_PROTO, "deflate: %d", rc);
    out = (size_t)(z->next_out - g.zbuf);
    /* Z_SYNC_FLUSH is complete once a call leaves output space unused. */
    if (z->avail_in == 0 && z->avail_out > 0) break;
  }
  if (out < 4 || memcmp(g.zbuf + out - 4, "\x00\x00\xff\xff", 4) != 0)
    die(EXIT_PROTO, "internal: deflate output does not end with a sync flush");
  if (nct) deflateReset(z);
  return out - 4;
}

/* Compressing every message as it is sent would make the generator, not
 * the server, the bottleneck: zlib's deflate costs about as much here as all
 * of the server's work. So each group of connections sends the same cycle
 * of `cycle` messages, compressed once, in order, by one deflate stream with
 * the agreed parameters, and repeated. That is exactly what a per-connection
 * stream would send: a message only refers back to the messages before it
 * in the cycle, which precede it again at the same distances on every
 * repetition (the cycle is longer than the 32 KiB window, so a message never
 * meets its own earlier copy), and under client_no_context_takeover each is
 * compressed on its own anyway. The server still inflates and compresses
 * every message on every connection. */
static void build_pool(const struct conn *c) {
  size_t n = (size_t)g.groups * g.cycle;
  g.pool = xrealloc(NULL, n * sizeof *g.pool);
  g.pool_len = xrealloc(NULL, n * sizeof *g.pool_len);
  g.pool_nct = c->client_nct;
  g.pool_bits = c->client_bits;
  for (uint32_t grp = 0; grp < g.groups; grp++) {
    z_stream *z = zstream_new(true, c->client_bits);
    for (uint32_t i = 0; i < g.cycle; i++) {
      fill_payload(g.plain, grp, i);
      size_t len = compress_message(z, c->client_nct, opt.size);
      size_t k = (size_t)grp * g.cycle + i;
      g.pool[k] = xrealloc(NULL, len);
      memcpy(g.pool[k], g.zbuf, len);
      g.pool_len[k] = len;
    }
    deflateEnd(z);
    free(z);
  }
}

/* Inflates n bytes of a compressed reply and verifies what comes out. */
static void inflate_range(struct conn *c, const uint8_t *data, size_t n) {
  if (!c->zi) c->zi = zstream_new(false, 15); /* a larger window than the server's is always safe */
  z_stream *z = c->zi;
  z->next_in = (Bytef *)data;
  z->avail_in = (uInt)n;
  do {
    z->next_out = g.zout;
    z->avail_out = ZOUT_SIZE;
    int rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
      die(EXIT_VERIFY, "connection %" PRIu32 ", message %" PRIu32 ": inflate failed: %s", c->id, c->recv_seq,
          z->msg ? z->msg : "zlib error");
    size_t got = ZOUT_SIZE - z->avail_out;
    if (got > opt.size - c->msg_off)
      die(EXIT_VERIFY, "connection %" PRIu32 ", message %" PRIu32 ": echo inflates to more than the %zu bytes sent",
          c->id, c->recv_seq, opt.size);
    verify_range(c, c->msg_off, g.zout, got);
    c->msg_off += got;
    if (rc == Z_STREAM_END) inflateReset(z); /* a final block: legal, if unusual */
    if (rc == Z_BUF_ERROR) break;
  } while (z->avail_in > 0 || z->avail_out == 0);
}

static void inflate_finish(struct conn *c) {
  static const uint8_t trailer[4] = {0x00, 0x00, 0xff, 0xff};
  inflate_range(c, trailer, 4);
  if (c->server_nct) inflateReset(c->zi);
}

/* The 101's Sec-WebSocket-Extensions, which must accept our offer. */
static void parse_extension(struct conn *c, char *ext) {
  if (strchr(ext, ',')) die(EXIT_PROTO, "server accepted several extensions: %s", ext);
  char copy[256];
  snprintf(copy, sizeof copy, "%s", ext);
  char *save = NULL;
  bool first = true;
  c->client_bits = c->server_bits = 15;
  for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save), first = false) {
    while (*tok == ' ' || *tok == '\t') tok++;
    char *e = tok + strlen(tok);
    while (e > tok && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
    if (first) {
      if (strcasecmp(tok, "permessage-deflate") != 0) die(EXIT_PROTO, "server accepted an unknown extension: %s", ext);
      continue;
    }
    char *val = strchr(tok, '=');
    if (val) {
      *val++ = '\0';
      while (*val == ' ' || *val == '"') val++;
      e = val + strlen(val);
      while (e > val && (e[-1] == ' ' || e[-1] == '"')) *--e = '\0';
      e = tok + strlen(tok);
      while (e > tok && e[-1] == ' ') *--e = '\0';
    }
    if (strcmp(tok, "server_no_context_takeover") == 0 && !val)
      c->server_nct = true;
    else if (strcmp(tok, "client_no_context_takeover") == 0 && !val)
      c->client_nct = true;
    else if ((strcmp(tok, "server_max_window_bits") == 0 || strcmp(tok, "client_max_window_bits") == 0) && val &&
             atoi(val) >= 8 && atoi(val) <= 15)
      *(tok[0] == 's' ? &c->server_bits : &c->client_bits) = atoi(val);
    else
      die(EXIT_PROTO, "bad permessage-deflate parameter in the 101: %s", ext);
  }
  c->pmd = true;
  if (!g.pool) build_pool(c);
  if (c->client_nct != g.pool_nct || c->client_bits != g.pool_bits)
    die(EXIT_PROTO, "connection %" PRIu32 ": permessage-deflate agreement differs from the first connection's: %s", c->id,
        ext);
}

/* ---- epoll and writes -------------------------------------------------- */

static void set_events(struct conn *c, uint32_t ev) {
  if (c->events == ev || c->fd < 0) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e) < 0) die(EXIT_PROTO, "epoll_ctl: %s", strerror(errno));
  c->events = ev;
}

/* ---- TLS (-S) ------------------------------------------------------------ */

/* The first queued OpenSSL error, for messages. */
static const char *tls_error(void) {
  static char buf[256];
  unsigned long e = ERR_get_error();
  if (!e) return "no OpenSSL error queued (the peer ended the connection?)";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

static void tls_init(void) {
  g.ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (!g.ssl_ctx) die(EXIT_PROTO, "SSL_CTX_new: %s", tls_error());
  /* The bench server's certificate is self-signed: not checked. */
  SSL_CTX_set_verify(g.ssl_ctx, SSL_VERIFY_NONE, NULL);
  /* flush() may append to (and so move) the write buffer between an
   * SSL_write that wants a retry and the retry, and takes partial writes. */
  SSL_CTX_set_mode(g.ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  /* A server may end the TCP connection after its close frame without a
   * close_notify (RFC 6455 asks for nothing more): that is an EOF. */
  SSL_CTX_set_options(g.ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
}

/* send()/recv() through TLS when -S: the same contract (bytes moved, or -1
 * with errno EAGAIN when it must wait for the socket, or another errno; 0
 * from io_recv at the end of the stream). */
static ssize_t io_send(struct conn *c, const uint8_t *p, size_t n) {
  if (!c->ssl) return send(c->fd, p, n, MSG_NOSIGNAL);
  /* OpenSSL wants a retried write repeated with the same length. */
  size_t len = c->tls_retry ? c->tls_retry : n;
  if (len > 1u << 30) len = 1u << 30;
  ERR_clear_error();
  int r = SSL_write(c->ssl, p, (int)len);
  if (r > 0) {
    c->tls_retry = 0;
    return r;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
    c->tls_retry = len;
    errno = EAGAIN;
    return -1;
  }
  if (e != SSL_ERROR_SYSCALL || errno == 0) {
    fprintf(stderr, "wsload: connection %" PRIu32 ": SSL_write: %s\n", c->id, tls_error());
    errno = EPROTO;
  }
  return -1;
}

static ssize_t io_recv(struct conn *c, uint8_t *p, size_t n) {
  if (!c->ssl) return recv(c->fd, p, n, 0);
  if (n > 1u << 30) n = 1u << 30;
  ERR_clear_error();
  int r = SSL_read(c->ssl, p, (int)n);
  if (r > 0) return r;
  int e = SSL_get_error(c->ssl, r);
  /* A read that must write first (a TLS 1.3 KeyUpdate asking for an
   * answer; none of the bench servers sends one) is retried on the next
   * readable event only. */
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) return 0;
  if (e != SSL_ERROR_SYSCALL) {
    fprintf(stderr, "wsload: connection %" PRIu32 ": SSL_read: %s\n", c->id, tls_error());
    errno = EPROTO;
  }
  return -1;
}

static uint8_t *wbuf_reserve(struct conn *c, size_t n) {
  if (c->woff > 0 && c->wlen + n > c->wcap) {
    /* Pending bytes: slide them to the front before growing. */
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
  }
  if (c->wlen + n > c->wcap) {
    size_t cap = c->wcap ? c->wcap : 256;
    while (cap < c->wlen + n) cap *= 2;
    c->wbuf = xrealloc(c->wbuf, cap);
    c->wcap = cap;
  }
  return c->wbuf + c->wlen;
}

static void conn_lost(struct conn *c, const char *why);

/* Writes everything pending in one send() where the kernel allows; the rest
 * waits for EPOLLOUT. */
static void flush(struct conn *c) {
  while (c->woff < c->wlen) {
    ssize_t n = io_send(c, c->wbuf + c->woff, c->wlen - c->woff);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(c, EPOLLIN | EPOLLOUT);
        return;
      }
      conn_lost(c, strerror(errno));
      return;
    }
    c->woff += (size_t)n;
  }
  c->woff = c->wlen = 0;
  set_events(c, EPOLLIN);
}

/* Appends one masked frame. The mask is applied 8 bytes at a time: building
 * the 64-bit mask from the key bytes in memory order makes it
 * endian-independent. */
static void append_frame(struct conn *c, uint8_t opcode, const uint8_t *payload, size_t len, uint32_t seq) {
  uint8_t *p = wbuf_reserve(c, 14 + len);
  size_t h = 0;
  p[h++] = 0x80 | opcode;
  if (len < 126) {
    p[h++] = 0x80 | (uint8_t)len;
  } else if (len <= 0xffff) {
    p[h++] = 0x80 | 126;
    p[h++] = (uint8_t)(len >> 8);
    p[h++] = (uint8_t)len;
  } else {
    p[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) p[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  uint32_t key32 = (uint32_t)rnd();
  uint8_t key[8];
  memcpy(key, &key32, 4);
  memcpy(key + 4, &key32, 4);
  memcpy(p + h, key, 4);
  h += 4;
  uint8_t *pl = p + h;
  if (payload)
    memcpy(pl, payload, len);
  else
    fill_payload(pl, msg_id(c), msg_seq(seq));
  uint64_t m64;
  memcpy(&m64, key, 8);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, pl + i, 8);
    w ^= m64;
    memcpy(pl + i, &w, 8);
  }
  for (; i < len; i++) pl[i] ^= key[i & 3];
  c->wlen += h + len;
}

/* One data message, compressed (RSV1) if permessage-deflate was agreed. */
static void send_message(struct conn *c, uint32_t seq) {
  uint8_t op = opt.binary ? 2 : 1;
  g.plain_out += opt.size;
  if (!c->pmd) {
    append_frame(c, op, NULL, opt.size, seq);
    g.wire_out += opt.size;
    return;
  }
  size_t k = (size_t)msg_id(c) * g.cycle + msg_seq(seq);
  append_frame(c, op | 0x40, g.pool[k], g.pool_len[k], seq);
  g.wire_out += g.pool_len[k];
}

static bool sending_allowed(const struct conn *c) {
  /* churn: each connection sends one message, whatever the phase. */
  if (opt.mode == MODE_CHURN) return c->send_seq == 0;
  if (opt.mode == MODE_BROADCAST) return false; /* it only listens */
  if (g.phase == PH_ACTIVE) return c->send_seq < opt.active;
  return g.phase == PH_WARMUP || g.phase == PH_MEASURE;
}

/* Tops the connection up to K messages in flight, all in one write. */
static void refill(struct conn *c) {
  if (c->state != CS_OPEN) return;
  uint32_t first = c->send_seq;
  while (sending_allowed(c) && c->send_seq - c->recv_seq < opt.inflight) {
    send_message(c, c->send_seq);
    c->send_seq++;
  }
  if (c->sent_at && c->send_seq != first) {
    uint64_t t = now_ns();
    for (uint32_t s = first; s != c->send_seq; s++) c->sent_at[s % opt.inflight] = t;
  }
  if (c->wlen > c->woff) flush(c);
}

static void start_close(struct conn *c) {
  if (c->state != CS_OPEN) return;
  uint8_t code[2] = {1000 >> 8, 1000 & 0xff};
  append_frame(c, 8, code, 2, 0);
  c->state = CS_CLOSING;
  flush(c);
}

static void conn_finish(struct conn *c, bool clean) {
  if (opt.mode == MODE_CHURN && !clean)
    die(EXIT_PROTO, "connection %" PRIu32 ": the server ended the TCP connection without sending its close frame",
        c->id);
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
  }
  if (!clean) g.unclean++;
  c->state = CS_DONE;
  g.done++;
  free(c->wbuf);
  c->wbuf = NULL;
  c->wlen = c->woff = c->wcap = 0;
  zstreams_free(c);
  if (opt.mode == MODE_CHURN) {
    /* tick() starts the slot's next connection, after this wakeup's
     * events: one of them may still name this slot. */
    g.completed++;
    g.t_progress = 0;
  }
}

static void conn_lost(struct conn *c, const char *why) {
  if (c->state == CS_DONE) return;
  if (c->state == CS_CLOSING && opt.mode != MODE_CHURN) {
    /* Shutting down anyway: a reset or a missing close frame is only
     * worth counting, not failing the run (in churn mode the close
     * handshake is part of what is measured: it fails below). */
    conn_finish(c, false);
    return;
  }
  die(EXIT_PROTO, "connection %" PRIu32 " lost (%s) in state %d%s", c->id, why, (int)c->state,
      g.phase == PH_IDLE_HOLD ? " while holding idle connections" : "");
}

/* ---- connecting and the handshake ------------------------------------- */

static void start_connect(struct conn *c) {
  int fd = socket(g.ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die(EXIT_PROTO, "socket: %s (connection %" PRIu32 "; raise `ulimit -n`?)", strerror(errno), c->id);
  int one = 1;
  /* We cork by hand, so Nagle would only add latency. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = CS_CONNECTING;
  c->events = EPOLLOUT;
  c->t_start = now_ns();
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &e) < 0) die(EXIT_PROTO, "epoll_ctl: %s", strerror(errno));
  if (connect(fd, g.ai->ai_addr, g.ai->ai_addrlen) < 0 && errno != EINPROGRESS)
    die(EXIT_PROTO, "connect to %s:%s: %s", opt.host, opt.port, strerror(errno));
  g.started++;
}

/* -S: TCP is up; the TLS handshake runs before the upgrade. */
static void send_upgrade(struct conn *c);

static void tls_step(struct conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    send_upgrade(c);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ)
    set_events(c, EPOLLIN);
  else if (e == SSL_ERROR_WANT_WRITE)
    set_events(c, EPOLLIN | EPOLLOUT);
  else
    die(EXIT_PROTO, "connection %" PRIu32 ": TLS handshake failed: %s", c->id,
        e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : tls_error());
}

static void tls_start(struct conn *c) {
  c->ssl = SSL_new(g.ssl_ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die(EXIT_PROTO, "SSL_new: %s", tls_error());
  SSL_set_connect_state(c->ssl);
  c->state = CS_TLS;
  tls_step(c);
}

static void send_upgrade(struct conn *c) {
  uint8_t raw[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rnd();
    memcpy(raw + i, &r, 8);
  }
  base64(raw, 16, c->key);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s:%s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s"
                   "\r\n",
                   opt.path, opt.host, opt.port, c->key,
                   opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof req) die(EXIT_USAGE, "path too long");
  memcpy(wbuf_reserve(c, (size_t)n), req, (size_t)n);
  c->wlen += (size_t)n;
  c->state = CS_HANDSHAKE;
  c->events = 0; /* force set_events below to register EPOLLIN */
  flush(c);
}

/* Case-insensitive header lookup in a NUL-terminated header block; returns
 * the trimmed value (written into out) or false. */
static bool header_value(const char *hdrs, const char *name, char *out, size_t outsz) {
  size_t nl = strlen(name);
  for (const char *line = strstr(hdrs, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      const char *e = strstr(v, "\r\n");
      if (!e) e = v + strlen(v);
      while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
      size_t len = (size_t)(e - v) < outsz - 1 ? (size_t)(e - v) : outsz - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return true;
    }
  }
  return false;
}

static void begin_traffic(void);
static void begin_close(uint64_t t);
static void add_sample(uint64_t ns);
static void process_frames(struct conn *c, uint8_t *buf, size_t len);

static void handshake_read(struct conn *c) {
  if (!c->hbuf) c->hbuf = xrealloc(NULL, HANDSHAKE_MAX + 1);
  ssize_t n = io_recv(c, (uint8_t *)c->hbuf + c->hlen, HANDSHAKE_MAX - c->hlen);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    die(EXIT_PROTO, "connection %" PRIu32 ": handshake read: %s", c->id, strerror(errno));
  }
  if (n == 0) die(EXIT_PROTO, "connection %" PRIu32 ": server closed during the handshake", c->id);
  c->hlen += (size_t)n;
  c->hbuf[c->hlen] = '\0';
  char *end = memmem(c->hbuf, c->hlen, "\r\n\r\n", 4);
  if (!end) {
    if (c->hlen == HANDSHAKE_MAX) die(EXIT_PROTO, "handshake response over %d bytes", HANDSHAKE_MAX);
    return;
  }
  size_t hdr_len = (size_t)(end - c->hbuf) + 4;
  end[2] = '\0'; /* keep the last header's CRLF for header_value */
  if (strncmp(c->hbuf, "HTTP/1.1 101 ", 13) != 0 && strcmp(c->hbuf, "HTTP/1.1 101\r\n") != 0) {
    char *eol = strstr(c->hbuf, "\r\n");
    if (eol) *eol = '\0';
    die(EXIT_PROTO, "upgrade refused: \"%s\"", c->hbuf);
  }
  char accept[64], want[32], ext[256];
  char src[64];
  snprintf(src, sizeof src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
  uint8_t digest[20];
  sha1((const uint8_t *)src, strlen(src), digest);
  base64(digest, 20, want);
  if (!header_value(c->hbuf, "Sec-WebSocket-Accept", accept, sizeof accept))
    die(EXIT_PROTO, "101 response without Sec-WebSocket-Accept");
  if (strcmp(accept, want) != 0)
    die(EXIT_PROTO, "wrong Sec-WebSocket-Accept: got \"%s\", expected \"%s\"", accept, want);
  bool has_ext = header_value(c->hbuf, "Sec-WebSocket-Extensions", ext, sizeof ext);
  if (has_ext && !opt.deflate) die(EXIT_PROTO, "server accepted an extension we never offered: %s", ext);
  if (!has_ext && opt.deflate) die(EXIT_PROTO, "server declined permessage-deflate (no Sec-WebSocket-Extensions)");
  if (has_ext) parse_extension(c, ext);

  /* Frames may follow the 101 in the same segment. */
  size_t extra = c->hlen - hdr_len;
  uint8_t leftover[HANDSHAKE_MAX];
  memcpy(leftover, c->hbuf + hdr_len, extra);
  free(c->hbuf);
  c->hbuf = NULL;
  c->hlen = 0;
  c->state = CS_OPEN;
  if (opt.mode == MODE_LATENCY) c->sent_at = xrealloc(NULL, sizeof(uint64_t) * opt.inflight);
  g.established++;
  g.t_progress = now_ns();
  if (opt.mode == MODE_CHURN) {
    if (g.phase == PH_MEASURE) add_sample(g.t_progress - c->t_start);
    if (extra) die(EXIT_PROTO, "connection %" PRIu32 ": frames before any message was sent", c->id);
    refill(c); /* its one message */
    return;
  }
  if (opt.socketio) {
    /* socket.io: CONNECT to the main namespace (engine.io MESSAGE "4" +
     * socket.io CONNECT "0"). */
    append_frame(c, 1, (const uint8_t *)"40", 2, 0);
    flush(c);
  }
  if (extra) process_frames(c, leftover, extra);
  if (g.started < opt.conns) start_connect(&g.conns[g.started]);
  if (g.established == opt.conns) begin_traffic();
}

/* ---- frames from the server ------------------------------------------- */

static void active_conn_done(struct conn *c);

static void add_sample(uint64_t ns) {
  if (g.nsamples == g.samples_cap) {
    g.samples_cap = g.samples_cap ? g.samples_cap * 2 : 65536;
    g.samples = xrealloc(g.samples, g.samples_cap * sizeof *g.samples);
  }
  g.samples[g.nsamples++] = ns;
}

static void message_done(struct conn *c) {
  if (opt.socketio) {
    /* Only EVENT packets are the broadcast; they carry the 'x's in JSON. */
    c->in_msg = false;
    if (c->sio_head[0] != '4' || c->sio_head[1] != '2') return;
    if (c->msg_off < opt.size)
      die(EXIT_VERIFY, "connection %" PRIu32 ": a %zu-byte event, under the %zu bytes broadcast", c->id, c->msg_off,
          opt.size);
    c->msg_off = opt.size;
  }
  if (c->msg_off != opt.size)
    die(EXIT_VERIFY, "connection %" PRIu32 ", message %" PRIu32 ": echoed %zu bytes, sent %zu", c->id, c->recv_seq,
        c->msg_off, opt.size);
  if (c->sent_at && g.phase == PH_MEASURE) add_sample(now_ns() - c->sent_at[c->recv_seq % opt.inflight]);
  c->in_msg = false;
  c->recv_seq++;
  g.msgs_total++;
  g.plain_in += opt.size;
  g.t_progress = 0; /* refreshed lazily by the main loop: saves a clock read per message */
  if ((opt.mode == MODE_CHURN || g.phase == PH_DRAIN) && c->recv_seq == c->send_seq &&
      opt.mode != MODE_BROADCAST)
    start_close(c);
  if (g.phase == PH_ACTIVE && c->recv_seq == opt.active && !c->active_done) active_conn_done(c);
}

static void handle_control(struct conn *c, uint8_t op, const uint8_t *p, size_t len) {
  switch (op) {
  case 9: /* ping: answer as any client must */
    append_frame(c, 10, p, len, 0);
    break;
  case 10: /* unsolicited pong: allowed, ignored */
    break;
  case 8:
    if (c->state != CS_CLOSING) {
      unsigned code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
      die(EXIT_PROTO, "connection %" PRIu32 ": server sent close (code %u, \"%.*s\")", c->id, code,
          len > 2 ? (int)len - 2 : 0, len > 2 ? (const char *)p + 2 : "");
    }
    c->got_close = true;
    break;
  default:
    die(EXIT_PROTO, "connection %" PRIu32 ": unknown control opcode %u", c->id, op);
  }
}

static void process_frames(struct conn *c, uint8_t *buf, size_t len) {
  size_t pos = 0;
  while (pos < len && c->state != CS_DONE) {
    if (c->frame_rem > 0) {
      size_t n = len - pos < c->frame_rem ? len - pos : (size_t)c->frame_rem;
      if (opt.mode == MODE_BROADCAST && opt.socketio) {
        for (size_t i = 0; i < n && c->msg_off + i < 2; i++) c->sio_head[c->msg_off + i] = buf[pos + i];
        c->msg_off += n;
      } else if (opt.mode == MODE_BROADCAST) {
        for (size_t i = 0; i < n; i++)
          if (buf[pos + i] != 'x')
            die(EXIT_VERIFY, "connection %" PRIu32 ": broadcast byte %zu is 0x%02x, not 'x'", c->id, c->msg_off + i,
                buf[pos + i]);
        c->msg_off += n;
      } else if (c->msg_z) {
        inflate_range(c, buf + pos, n);
      } else {
        verify_range(c, c->msg_off, buf + pos, n);
        c->msg_off += n;
      }
      g.wire_in += n;
      c->frame_rem -= n;
      pos += n;
      if (c->frame_rem == 0 && c->frame_fin) {
        if (c->msg_z) inflate_finish(c);
        message_done(c);
      }
      continue;
    }
    size_t avail = len - pos;
    if (avail < 2) break;
    uint8_t b0 = buf[pos], b1 = buf[pos + 1];
    if (b1 & 0x80) die(EXIT_PROTO, "connection %" PRIu32 ": masked frame from the server", c->id);
    uint8_t op = b0 & 0x0f;
    if (b0 & 0x70) {
      if (!c->pmd || (b0 & 0x70) != 0x40)
        die(EXIT_PROTO, "connection %" PRIu32 ": RSV bits 0x%02x set without an extension that defines them", c->id,
            b0 & 0x70);
      if (op != 1 && op != 2)
        die(EXIT_PROTO, "connection %" PRIu32 ": RSV1 on a %s frame", c->id, op ? "control" : "continuation");
    }
    bool fin = b0 & 0x80;
    uint64_t plen = b1 & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
      hl = 4;
      if (avail < hl) break;
      plen = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3];
    } else if (plen == 127) {
      hl = 10;
      if (avail < hl) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | buf[pos + 2 + i];
    }
    if (op & 8) {
      if (!fin || plen > 125) die(EXIT_PROTO, "connection %" PRIu32 ": malformed control frame", c->id);
      if (avail < hl + plen) break;
      handle_control(c, op, buf + pos + hl, (size_t)plen);
      pos += hl + (size_t)plen;
      continue;
    }
    if (op == 0) {
      if (!c->in_msg) die(EXIT_PROTO, "connection %" PRIu32 ": continuation frame outside a message", c->id);
    } else if (op == 1 || op == 2) {
      if (c->in_msg) die(EXIT_PROTO, "connection %" PRIu32 ": new message inside a fragmented one", c->id);
      if (op != (opt.binary ? 2 : 1))
        die(EXIT_VERIFY, "connection %" PRIu32 ": echo came back as %s, sent %s", c->id, op == 2 ? "binary" : "text",
            opt.binary ? "binary" : "text");
      if (c->recv_seq == c->send_seq && opt.mode != MODE_BROADCAST)
        die(EXIT_VERIFY, "connection %" PRIu32 ": message received with none in flight (duplicate echo?)", c->id);
      c->in_msg = true;
      c->msg_off = 0;
      c->sio_head[0] = c->sio_head[1] = 0;
      c->msg_z = (b0 & 0x40) != 0;
    } else {
      die(EXIT_PROTO, "connection %" PRIu32 ": reserved opcode %u", c->id, op);
    }
    if (!c->msg_z && !opt.socketio && plen > opt.size - c->msg_off)
      die(EXIT_VERIFY, "connection %" PRIu32 ", message %" PRIu32 ": echo longer than the %zu bytes sent", c->id,
          c->recv_seq, opt.size);
    c->frame_rem = plen;
    c->frame_fin = fin;
    pos += hl;
    if (plen == 0 && fin) {
      if (c->msg_z) inflate_finish(c);
      message_done(c);
    }
  }
  /* Only an incomplete header or control frame can be left over. */
  c->stash_len = len - pos;
  if (c->stash_len > STASH_MAX) die(EXIT_PROTO, "internal: frame stash overflow");
  memmove(c->stash, buf + pos, c->stash_len);
}

static void conn_readable(struct conn *c) {
  /* A burst can fill several buffers; a few reads per wakeup keep the
   * per-event overhead down without starving the other connections. */
  for (int round = 0; round < 8 && c->state != CS_DONE; round++) {
    size_t room = RBUF_SIZE - c->stash_len;
    memcpy(g.rbuf, c->stash, c->stash_len);
    ssize_t n = io_recv(c, g.rbuf + c->stash_len, room);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      conn_lost(c, strerror(errno));
      return;
    }
    if (n == 0) {
      if (c->state == CS_CLOSING) {
        conn_finish(c, c->got_close);
        return;
      }
      conn_lost(c, "server closed the TCP connection");
      return;
    }
    process_frames(c, g.rbuf, c->stash_len + (size_t)n);
    /* SSL_read returns one record (16 KiB at most) per call: a short read
     * says nothing about what the socket still holds. */
    if (!c->ssl && (size_t)n < room) break;
  }
  if (c->state == CS_OPEN)
    refill(c); /* also flushes queued pongs */
  else if (c->state == CS_CLOSING && c->wlen > c->woff)
    flush(c);
}

/* ---- phases ------------------------------------------------------------ */

static void begin_traffic(void) {
  uint64_t t = now_ns();
  g.t_connected = t;
  g.t_progress = t;
  if (opt.mode == MODE_IDLE) {
    g.phase = PH_IDLE_HOLD;
    printf("{\"mode\":\"idle\",\"connections\":%" PRIu32 ",\"established\":%" PRIu32 ",\"connect_s\":%.3f}\n",
           opt.conns, g.established, secs(t - g.t_begin));
    fflush(stdout);
    if (g.release_pending) begin_close(t);
    return;
  }
  g.t_phase = t;
  if (opt.warmup > 0) {
    g.phase = PH_WARMUP;
  } else {
    g.phase = PH_MEASURE;
    g.t_measure = t;
    getrusage(RUSAGE_SELF, &g.ru_measure);
  }
  for (uint32_t i = 0; i < opt.conns; i++) refill(&g.conns[i]);
}

/* idle --active: every connection sends its messages at once. */
static void begin_active(void) {
  uint64_t t = now_ns();
  g.active_started = true;
  g.phase = PH_ACTIVE;
  g.t_phase = g.t_progress = t;
  for (uint32_t i = 0; i < opt.conns; i++) refill(&g.conns[i]);
}

static void active_conn_done(struct conn *c) {
  c->active_done = true;
  /* It never sends again: our zlib memory is not what is being measured. */
  zstreams_free(c);
  if (++g.active_done < opt.conns) return;
  uint64_t t = now_ns();
  printf("{\"mode\":\"idle\",\"connections\":%" PRIu32 ",\"active\":%" PRIu32 ",\"active_s\":%.3f", opt.conns,
         opt.active, secs(t - g.t_phase));
  if (opt.deflate)
    printf(",\"wire_ratio_out\":%.3f,\"wire_ratio_in\":%.3f", g.wire_out ? (double)g.plain_out / (double)g.wire_out : 0,
           g.wire_in ? (double)g.plain_in / (double)g.wire_in : 0);
  printf("}\n");
  fflush(stdout);
  g.phase = PH_IDLE_HOLD;
  if (g.release_pending) begin_close(t);
}

static void begin_drain(uint64_t t) {
  g.t_end = t;
  g.msgs_at_end = g.msgs_total;
  g.completed_at_end = g.completed;
  getrusage(RUSAGE_SELF, &g.ru_end);
  g.phase = PH_DRAIN;
  g.t_phase = t;
  /* churn: the connections under way finish their course; no new ones. */
  if (opt.mode == MODE_CHURN) return;
  for (uint32_t i = 0; i < opt.conns; i++) {
    struct conn *c = &g.conns[i];
    /* broadcast: nothing is in flight, messages come until our close. */
    if (c->state == CS_OPEN && (c->recv_seq == c->send_seq || opt.mode == MODE_BROADCAST)) start_close(c);
  }
}

static void begin_close(uint64_t t) {
  g.phase = PH_CLOSE;
  g.t_phase = t;
  for (uint32_t i = 0; i < opt.conns; i++) start_close(&g.conns[i]);
}

static uint64_t in_flight(void) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < opt.conns; i++) n += g.conns[i].send_seq - g.conns[i].recv_seq;
  return n;
}

/* churn: no connection phase; every slot starts at once, and again each
 * time its connection has closed (tick). */
static void begin_churn(void) {
  uint64_t t = now_ns();
  g.t_connected = g.t_phase = g.t_progress = t;
  if (opt.warmup > 0) {
    g.phase = PH_WARMUP;
  } else {
    g.phase = PH_MEASURE;
    g.t_measure = t;
    getrusage(RUSAGE_SELF, &g.ru_measure);
  }
  for (uint32_t i = 0; i < opt.conns; i++) {
    g.conns[i].id = g.next_id++;
    start_connect(&g.conns[i]);
  }
}

static void churn_restart(void) {
  for (uint32_t i = 0; i < opt.conns; i++) {
    struct conn *c = &g.conns[i];
    if (c->state != CS_DONE) continue;
    /* conn_finish freed what it owned; the handshake buffer and the
     * latency slots are never left over in churn mode. */
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->id = g.next_id++;
    g.done--;
    start_connect(c);
  }
}

/* Time-driven transitions and the stall check; called after every wakeup. */
static void tick(void) {
  uint64_t t = now_ns();
  if (g.t_progress == 0) g.t_progress = t;
  uint64_t timeout_ns = (uint64_t)(opt.timeout * 1e9);
  switch (g.phase) {
  case PH_CONNECT:
    if (t - g.t_progress > timeout_ns)
      die(EXIT_STALL, "only %" PRIu32 " of %" PRIu32 " connections established after %.1f s without progress",
          g.established, opt.conns, opt.timeout);
    break;
  case PH_WARMUP:
  case PH_MEASURE:
  case PH_DRAIN:
  case PH_ACTIVE:
    if (t - g.t_progress > timeout_ns && opt.mode == MODE_CHURN)
      die(EXIT_STALL, "stalled: no connection progressed (handshake, echo or close) for %.1f s; %" PRIu32
          " of %" PRIu32 " under way in the handshake", opt.timeout, g.started - g.established, opt.conns);
    if (t - g.t_progress > timeout_ns)
      die(EXIT_STALL, "stalled: no %s for %.1f s with %" PRIu64 " messages in flight (lost by the server?)",
          opt.mode == MODE_BROADCAST ? "message" : "echo", opt.timeout, in_flight());
    if (opt.mode == MODE_CHURN && g.phase != PH_DRAIN) churn_restart();
    if (g.phase == PH_WARMUP && t - g.t_phase >= (uint64_t)(opt.warmup * 1e9)) {
      g.phase = PH_MEASURE;
      g.t_measure = g.t_phase = t;
      g.msgs_at_measure = g.msgs_total;
      g.completed_at_measure = g.completed;
      getrusage(RUSAGE_SELF, &g.ru_measure);
    } else if (g.phase == PH_MEASURE) {
      bool over = opt.messages ? g.msgs_total - g.msgs_at_measure >= opt.messages
                               : t - g.t_measure >= (uint64_t)(opt.duration * 1e9);
      if (over) begin_drain(t);
    }
    break;
  case PH_CLOSE:
    break;
  case PH_IDLE_HOLD:
  case PH_END:
    return;
  }
  if (g.phase == PH_DRAIN && opt.mode == MODE_CHURN) {
    if (g.done == opt.conns) g.phase = PH_END;
    return;
  }
  if (g.phase == PH_DRAIN) {
    /* Every connection either still waits for echoes (open) or has moved
     * on to its close handshake; once none waits, only closing is left. */
    bool drained = true;
    for (uint32_t i = 0; i < opt.conns && drained; i++) drained = g.conns[i].state != CS_OPEN;
    if (drained) {
      g.phase = PH_CLOSE;
      g.t_phase = t;
    }
  }
  if (g.phase == PH_CLOSE) {
    if (g.done == opt.conns) {
      g.phase = PH_END;
    } else if (t - g.t_phase > (uint64_t)(CLOSE_TIMEOUT_S * 1e9)) {
      /* A server that never completes the close handshake is noted, not
       * fatal: the measurement is already done. */
      g.unclean += opt.conns - g.done;
      g.phase = PH_END;
    }
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, in microseconds. */
static double pct_us(double p) {
  size_t rank = (size_t)(p / 100.0 * (double)g.nsamples + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > g.nsamples) rank = g.nsamples;
  return (double)g.samples[rank - 1] / 1e3;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void report_churn(double dur, double cpu) {
  uint64_t n = g.completed_at_end - g.completed_at_measure;
  printf("{\"mode\":\"churn\",\"connections\":%" PRIu32 ",\"size\":%zu,\"type\":\"%s\",\"tls\":%s,"
         "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"completed\":%" PRIu64 ",\"conns_per_s\":%.1f,"
         "\"verified_messages\":%" PRIu64 ",\"client_cpu\":%.3f",
         opt.conns, opt.size, opt.binary ? "binary" : "text", opt.tls ? "true" : "false", opt.warmup, dur, n,
         dur > 0 ? (double)n / dur : 0, g.msgs_total, dur > 0 ? cpu / dur : 0);
  if (g.nsamples > 0) {
    qsort(g.samples, g.nsamples, sizeof *g.samples, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < g.nsamples; i++) sum += (double)g.samples[i];
    printf(",\"handshakes\":%zu,\"handshake_mean_us\":%.1f,\"handshake_p50_us\":%.1f,\"handshake_p99_us\":%.1f,"
           "\"handshake_max_us\":%.1f",
           g.nsamples, sum / (double)g.nsamples / 1e3, pct_us(50), pct_us(99), (double)g.samples[g.nsamples - 1] / 1e3);
  }
  printf("}\n");
  fflush(stdout);
}

static void report(void) {
  double dur = secs(g.t_end - g.t_measure);
  double cpu = tv_s(g.ru_end.ru_utime) + tv_s(g.ru_end.ru_stime) - tv_s(g.ru_measure.ru_utime) -
               tv_s(g.ru_measure.ru_stime);
  if (opt.mode == MODE_CHURN) {
    report_churn(dur, cpu);
    return;
  }
  uint64_t msgs = g.msgs_at_end - g.msgs_at_measure;
  double rate = dur > 0 ? (double)msgs / dur : 0;
  printf("{\"mode\":\"%s\",\"connections\":%" PRIu32 ",\"inflight\":%" PRIu32
         ",\"size\":%zu,\"type\":\"%s\",\"warmup_s\":%.3f,\"duration_s\":%.3f,\"messages\":%" PRIu64
         ",\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"verified_messages\":%" PRIu64 ",\"unclean_closes\":%" PRIu64,
         opt.mode == MODE_LATENCY ? "latency" : opt.mode == MODE_BROADCAST ? "broadcast" : "echo", opt.conns,
         opt.inflight, opt.size,
         opt.binary ? "binary" : "text", opt.warmup, dur, msgs, rate, rate * (double)opt.size / 1e6, g.msgs_total,
         g.unclean);
  /* Our own CPU use while measuring: near 1.0 means the generator, not the
   * server, may be what limits the rate. */
  printf(",\"client_cpu\":%.3f", dur > 0 ? cpu / dur : 0);
  if (opt.tls) printf(",\"tls\":true");
  if (opt.deflate)
    printf(",\"deflate\":true,\"wire_ratio_out\":%.3f,\"wire_ratio_in\":%.3f",
           g.wire_out ? (double)g.plain_out / (double)g.wire_out : 0, g.wire_in ? (double)g.plain_in / (double)g.wire_in : 0);
  if (opt.mode == MODE_LATENCY && g.nsamples > 0) {
    qsort(g.samples, g.nsamples, sizeof *g.samples, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < g.nsamples; i++) sum += (double)g.samples[i];
    printf(",\"samples\":%zu,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f",
           g.nsamples, (double)g.samples[0] / 1e3, sum / (double)g.nsamples / 1e3, pct_us(50), pct_us(99),
           pct_us(99.9), (double)g.samples[g.nsamples - 1] / 1e3);
  }
  printf("}\n");
  fflush(stdout);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *f) {
  fprintf(f,
          "usage: wsload -p PORT [options]\n"
          "  -H, --host HOST        server address (default 127.0.0.1)\n"
          "  -p, --port PORT        server port (required)\n"
          "  -u, --path PATH        request path (default /)\n"
          "  -m, --mode MODE        echo | latency | idle | churn | broadcast (default echo)\n"
          "  -c, --connections N    connections (default 1; idle: required;\n"
          "                         churn: connections under way at once)\n"
          "  -k, --inflight K       messages in flight per connection (default 1)\n"
          "  -s, --size S           message size in bytes; k/m suffix = KiB/MiB (default 32)\n"
          "  -t, --text             text messages (default)\n"
          "  -b, --binary           binary messages\n"
          "  -d, --duration SEC     measurement time (default 5)\n"
          "  -n, --messages N       measure N echoed messages instead of a duration\n"
          "  -w, --warmup SEC       unmeasured traffic first (default 1)\n"
          "  -T, --timeout SEC      fail if nothing progresses for SEC (default 10)\n"
          "      --connect-batch N  handshakes in progress at once (default 256)\n"
          "  -z, --deflate          negotiate permessage-deflate; compress every message\n"
          "      --zlevel L         our deflate level, 0-9 (default zlib's 6, as ws)\n"
          "  -j, --json             JSON-like payloads (compressible, different every message)\n"
          "  -a, --active M         idle mode: on the first stdin line each connection sends\n"
          "                         M messages and waits for the echoes; the next line lets go\n"
          "  -S, --tls              wss://: TLS (certificate not checked) under the upgrade\n"
          "  -I, --socketio         broadcast mode as socket.io clients (counts \"42\" events)\n"
          "Prints one JSON line. Exit: 0 ok, 1 usage, 2 connection/protocol error,\n"
          "3 echo verification failure, 4 stall (lost messages).\n");
}

static double parse_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) die(EXIT_USAGE, "bad %s: %s", what, s);
  if (*end == 'k' || *end == 'K') {
    v *= 1024;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    v *= 1024 * 1024;
    end++;
  }
  if (*end) die(EXIT_USAGE, "bad %s: %s", what, s);
  return v;
}

static void parse_args(int argc, char **argv) {
  static const struct option lopts[] = {
      {"host", required_argument, 0, 'H'},     {"port", required_argument, 0, 'p'},
      {"path", required_argument, 0, 'u'},     {"mode", required_argument, 0, 'm'},
      {"connections", required_argument, 0, 'c'}, {"inflight", required_argument, 0, 'k'},
      {"size", required_argument, 0, 's'},     {"text", no_argument, 0, 't'},
      {"binary", no_argument, 0, 'b'},         {"duration", required_argument, 0, 'd'},
      {"messages", required_argument, 0, 'n'}, {"warmup", required_argument, 0, 'w'},
      {"timeout", required_argument, 0, 'T'},  {"connect-batch", required_argument, 0, 'B'},
      {"deflate", no_argument, 0, 'z'},        {"zlevel", required_argument, 0, 'Z'},
      {"json", no_argument, 0, 'j'},           {"active", required_argument, 0, 'a'},
      {"tls", no_argument, 0, 'S'},            {"help", no_argument, 0, 'h'},
      {"socketio", no_argument, 0, 'I'},
      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "H:p:u:m:c:k:s:tbd:n:w:T:zja:ShI", lopts, NULL)) != -1) {
    switch (ch) {
    case 'H': opt.host = optarg; break;
    case 'p': opt.port = optarg; break;
    case 'u': opt.path = optarg; break;
    case 'm':
      if (strcmp(optarg, "echo") == 0) opt.mode = MODE_ECHO;
      else if (strcmp(optarg, "latency") == 0) opt.mode = MODE_LATENCY;
      else if (strcmp(optarg, "idle") == 0) opt.mode = MODE_IDLE;
      else if (strcmp(optarg, "churn") == 0) opt.mode = MODE_CHURN;
      else if (strcmp(optarg, "broadcast") == 0) opt.mode = MODE_BROADCAST;
      else die(EXIT_USAGE, "unknown mode %s", optarg);
      break;
    case 'c': opt.conns = (uint32_t)parse_num(optarg, "connections"); break;
    case 'k': opt.inflight = (uint32_t)parse_num(optarg, "inflight"); break;
    case 's': opt.size = (size_t)parse_num(optarg, "size"); break;
    case 't': opt.binary = false; break;
    case 'b': opt.binary = true; break;
    case 'd': opt.duration = parse_num(optarg, "duration"); break;
    case 'n': opt.messages = (uint64_t)parse_num(optarg, "messages"); break;
    case 'w': opt.warmup = parse_num(optarg, "warmup"); break;
    case 'T': opt.timeout = parse_num(optarg, "timeout"); break;
    case 'B': opt.connect_batch = (uint32_t)parse_num(optarg, "connect-batch"); break;
    case 'z': opt.deflate = true; break;
    case 'Z':
      opt.zlevel = (int)parse_num(optarg, "zlevel");
      if (opt.zlevel > 9) die(EXIT_USAGE, "bad zlevel: %s", optarg);
      break;
    case 'j': opt.json = true; break;
    case 'a': opt.active = (uint32_t)parse_num(optarg, "active"); break;
    case 'S': opt.tls = true; break;
    case 'I':
      opt.socketio = true;
      opt.path = "/socket.io/?EIO=4&transport=websocket";
      break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); exit(EXIT_USAGE);
    }
  }
  if (optind < argc) die(EXIT_USAGE, "unexpected argument %s", argv[optind]);
  if (!opt.port) {
    usage(stderr);
    exit(EXIT_USAGE);
  }
  if (opt.conns == 0) opt.conns = 1;
  if (opt.inflight == 0) opt.inflight = 1;
  if (opt.active && opt.mode != MODE_IDLE) die(EXIT_USAGE, "--active is for idle mode");
  if (opt.active) opt.inflight = opt.active; /* all at once */
  if (opt.mode == MODE_CHURN) {
    /* One message per connection; the compressed pool (build_pool) is
     * made for long-lived connections, not this. */
    if (opt.deflate) die(EXIT_USAGE, "churn mode has no -z");
    if (opt.messages) die(EXIT_USAGE, "churn mode measures a duration, not -n");
    opt.inflight = 1;
  }
  if (opt.socketio && opt.mode != MODE_BROADCAST) die(EXIT_USAGE, "--socketio is for broadcast mode");
  if (opt.mode == MODE_BROADCAST && (opt.deflate || opt.messages))
    die(EXIT_USAGE, "broadcast mode has no -z and measures a duration");
  if (opt.connect_batch == 0) opt.connect_batch = 1;
  if (opt.timeout <= 0) opt.timeout = 10;
  if (opt.duration <= 0 && opt.messages == 0 && opt.mode != MODE_IDLE) die(EXIT_USAGE, "need a duration or -n");
  /* The stamp holds the sequence number in 32 bits; the in-flight window
   * must stay far below that for wrap-around comparisons to hold. */
  if (opt.inflight > 1u << 20) die(EXIT_USAGE, "in-flight window too large");
}

/* 10,000 idle connections need more descriptors than the usual soft limit. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t need = (rlim_t)opt.conns + 64;
  if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < need)
    fprintf(stderr, "wsload: warning: RLIMIT_NOFILE is %llu, %" PRIu32 " connections need about %llu\n",
            (unsigned long long)rl.rlim_cur, opt.conns, (unsigned long long)need);
}

/* Idle mode lets go on a line or EOF on stdin, or on SIGINT/SIGTERM. */
static void watch_release(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL);
  g.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (g.sigfd >= 0) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &tag_signal};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, g.sigfd, &e);
  }
  /* epoll refuses regular files (stdin from /dev/null or a file): then only
   * a signal releases the connections. */
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &tag_stdin};
  (void)epoll_ctl(g.ep, EPOLL_CTL_ADD, 0, &e);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  seed_rng();
  raise_nofile();

  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int rc = getaddrinfo(opt.host, opt.port, &hints, &g.ai);
  if (rc != 0) die(EXIT_USAGE, "cannot resolve %s:%s: %s", opt.host, opt.port, gai_strerror(rc));

  g.ep = epoll_create1(EPOLL_CLOEXEC);
  if (g.ep < 0) die(EXIT_PROTO, "epoll_create1: %s", strerror(errno));
  g.rbuf = xrealloc(NULL, RBUF_SIZE);
  g.conns = calloc(opt.conns, sizeof *g.conns);
  if (!g.conns) die(EXIT_PROTO, "out of memory");
  if (opt.mode != MODE_IDLE || opt.active || opt.deflate) { /* -z: build_pool needs it */
    if (opt.json) {
      /* ASCII, hence valid UTF-8, in text and binary messages alike. */
      size_t n = opt.size + CORPUS_SPAN;
      g.pattern = xrealloc(NULL, n);
      make_json_corpus(g.pattern, n);
    } else {
      /* Printable ASCII in text mode so every payload is valid UTF-8. */
      size_t n = opt.size + PATTERN_SLACK;
      g.pattern = xrealloc(NULL, n);
      for (size_t i = 0; i < n; i++) {
        uint8_t r = (uint8_t)rnd();
        g.pattern[i] = opt.binary ? r : (uint8_t)(0x20 + r % 95);
      }
    }
  }
  if (opt.deflate) {
    /* Pool size (build_pool): up to 16 groups x 256 messages, at most
     * 16 MiB of plain text, and the cycle longer than the deflate window. */
    g.groups = 16;
    g.cycle = 256;
    uint32_t min_cycle = (uint32_t)(32768 / (opt.size ? opt.size : 1)) + 4;
    if (min_cycle < 8) min_cycle = 8;
    while (g.groups > 1 && (uint64_t)g.groups * g.cycle * opt.size > 16u << 20) g.groups /= 2;
    while (g.cycle / 2 >= min_cycle && (uint64_t)g.groups * g.cycle * opt.size > 16u << 20) g.cycle /= 2;
    g.plain = xrealloc(NULL, opt.size);
    g.zbuf_cap = opt.size + opt.size / 8 + 1024;
    g.zbuf = xrealloc(NULL, g.zbuf_cap);
    g.zout = xrealloc(NULL, ZOUT_SIZE);
  }
  if (opt.mode == MODE_IDLE) watch_release();
  if (opt.tls) tls_init();

  g.t_begin = g.t_progress = now_ns();
  g.phase = PH_CONNECT;
  for (uint32_t i = 0; i < opt.conns; i++) {
    g.conns[i].id = i;
    g.conns[i].fd = -1;
  }
  if (opt.mode == MODE_CHURN)
    begin_churn();
  else
    for (uint32_t i = 0; i < opt.conns && i < opt.connect_batch; i++) start_connect(&g.conns[i]);

  struct epoll_event evs[256];
  while (g.phase != PH_END) {
    int n = epoll_wait(g.ep, evs, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(EXIT_PROTO, "epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
      void *tag = evs[i].data.ptr;
      if (tag == &tag_signal || tag == &tag_stdin) {
        if (tag == &tag_stdin) {
          char tmp[256];
          ssize_t r = read(0, tmp, sizeof tmp);
          if (r > 0 && !memchr(tmp, '\n', (size_t)r)) continue; /* wait for a whole line */
          if (r > 0 && opt.active && !g.active_started && g.phase == PH_IDLE_HOLD) {
            begin_active(); /* stdin stays watched: the next line lets go */
            continue;
          }
          epoll_ctl(g.ep, EPOLL_CTL_DEL, 0, NULL);
          /* EOF before the connections are held means stdin was never a
           * control channel (e.g. </dev/null): then only a signal ends it. */
          if (r <= 0 && g.phase != PH_IDLE_HOLD) continue;
          if (g.phase != PH_IDLE_HOLD) {
            g.release_pending = true; /* a line: let go once all are up */
            continue;
          }
        } else {
          struct signalfd_siginfo si;
          while (read(g.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
          }
          if (g.phase == PH_CLOSE) continue; /* already letting go */
        }
        if (g.phase != PH_IDLE_HOLD) {
          die(EXIT_PROTO, "interrupted before all connections were established (%" PRIu32 " of %" PRIu32 ")",
              g.established, opt.conns);
        }
        begin_close(now_ns());
        continue;
      }
      struct conn *c = tag;
      if (c->state == CS_DONE) continue;
      if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) die(EXIT_PROTO, "connect to %s:%s: %s", opt.host, opt.port, strerror(err));
        if (opt.tls)
          tls_start(c);
        else
          send_upgrade(c);
        continue;
      }
      if (c->state == CS_TLS) {
        tls_step(c);
        continue;
      }
      if (evs[i].events & EPOLLOUT) flush(c);
      if (c->state == CS_DONE) continue;
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (c->state == CS_HANDSHAKE)
          handshake_read(c);
        else
          conn_readable(c);
      }
    }
    tick();
  }

  if (opt.mode != MODE_IDLE) report();
  if (g.unclean) fprintf(stderr, "wsload: %" PRIu64 " connection(s) did not close cleanly\n", g.unclean);
  for (uint32_t i = 0; i < opt.conns; i++) {
    if (g.conns[i].ssl) SSL_free(g.conns[i].ssl);
    if (g.conns[i].fd >= 0) close(g.conns[i].fd);
  }
  if (g.ssl_ctx) SSL_CTX_free(g.ssl_ctx);
  freeaddrinfo(g.ai);
  return 0;
}
