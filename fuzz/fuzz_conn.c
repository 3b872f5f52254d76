/*
 * Connection-level fuzz target: one connection's whole state machine
 * (src/conn.c, outbox.c, server.c and client.c, driven through src/loop.c
 * in main-loop mode) over a fake libuv, with no sockets and no threads. The parser targets check each
 * layer against a reference; this one checks what only the connection can
 * get wrong: what it writes and when, what it holds, what it reports.
 *
 * The fake libuv (the uv_* functions below, linked instead of libuv) keeps
 * every handle, request and callback in plain memory, and one "iteration"
 * runs libuv's phases in libuv's order: timers, prepare, poll (the wake
 * handle, connect, reads, write progress, shutdown), check, close callbacks.
 * The peer is a byte pipe each way: what it sends waits until the
 * connection reads (in chunks of a size the input chooses), and what the
 * connection writes is taken `window` bytes per iteration (0: the peer has
 * stopped reading, so writes queue). The JS side is modelled on
 * lib/websocket.js: it answers a close frame and an error with its close
 * frame, accepts or rejects handshakes, counts what it sent
 * (bufferedAmount) and takes events in batches, crediting them back.
 *
 * Input: 6 configuration bytes, then a script of one-byte operations, each
 * with its arguments (see `run_script`):
 *   c0: bits 0-1 role: 0 server (listen + accept, C does the handshake),
 *       1 server adopted past its handshake, 2 client adopted, 3 client
 *       (connect); bit 2 handshakes go to JS (verifyClient); bit 3
 *       permessage-deflate; bit 4 the handshake bytes come from the script,
 *       not the model peer; bit 5 autoPong off; bit 6 skipUTF8Validation;
 *       bit 7 JS takes events only when the script says so.
 *   c1: bits 0-2 maxPayload, 3-4 maxPendingAutoPongs, 5-6 maxFragments
 *       (from the tables below); bit 7 handshakeTimeout.
 *   c2: bits 0-1 maxBufferedChunks; 2-3 deflate parameters; 4-7 read size.
 *   c3: bits 0-3 the peer's initial write window; bit 4 the connect fails;
 *       bit 5 verifyClient answers only when the script says; bit 6 a
 *       client keeps reading a non-101 response's body; bit 7 JS rejects.
 *   c4: the Nth fallible call (allocation or libuv) fails; 0: none.
 *   c5: bit 0 the client connects to a name; bit 1 the lookup fails; bit 2
 *       the first address refuses the connect; bits 3-4 the server listens
 *       on 127.0.0.1, every address, a name, or ::1; bit 5 idleTimeout
 *       (1 s: the script's time steps cross it); bit 6 sendPings.
 *
 * Invariants, checked after every step (CHECK aborts with the line):
 *  - nothing at all is written after our close frame, nor after our FIN;
 *    after a refused handshake, nothing follows the error response;
 *  - every frame we write parses with the frame layer in the peer's role
 *    (so it is masked exactly when we are the client), carries RSV1 only
 *    when permessage-deflate was agreed, and every data, ping, pong and
 *    close frame JS sent arrives in order and intact (compressed ones
 *    inflate to what JS gave); the only frames JS did not send are
 *    auto-pongs, with autoPong on, answering the peer's pings;
 *  - a close frame we send after an error carries the error's close code
 *    (the C error table's, which JS sends), and one answering the peer's
 *    close frame carries the peer's code; either is a code RFC 6455 lets
 *    an endpoint send;
 *  - what the connection holds stays under bounds computed from the limits:
 *    the message being assembled (maxPayload), fragment lengths
 *    (maxFragments), handshake bytes, auto-pongs queued
 *    (maxPendingAutoPongs), events waiting for JS (the undelivered bound,
 *    maxBufferedChunks);
 *  - bufferedAmount (what JS counted minus what was reported written) never
 *    goes negative, WRITTEN never runs backwards, and once the outbox is
 *    empty it is 0 and every send callback's bytes have been reported
 *    (each callback runs once: on its WRITTEN, or with an error at CLOSED);
 *  - every event names the connection or its server; messages are within
 *    maxPayload and, when text, valid UTF-8 (unless skipped); CLOSED comes
 *    once and nothing follows it;
 *  - at the end the loop stops and every byte is freed (LeakSanitizer).
 *
 * The build sets the undelivered bound, the early-data cap and the size of
 * external payloads small (fuzz/Makefile), so short inputs reach them.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "conn.h"
#include "deflate.h"
#include "frame.h"
#include "handshake.h"
#include "http.h"
#include "loop.h"
#include "resolve.h"
#include "slots.h"
#include "tls.h"
#include "utf8.h"

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "check failed at fuzz_conn.c:%d: %s\n", __LINE__,     \
              #cond);                                                       \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* ---- the fake libuv --------------------------------------------------- */

typedef struct {
  uv_handle_t *h;
  uv_close_cb close_cb;
  int closing;
  /* streams */
  uv_alloc_cb alloc_cb;
  uv_read_cb read_cb;
  int reading;
  uv_write_t *wreq;
  uv_write_cb write_cb;
  wsn_buf_t wdata;  /* the bytes of the async write in flight */
  wsn_buf_t wtags;  /* and which of them C made itself (tag_t each) */
  size_t wdone;
  uv_shutdown_t *sreq;
  uv_shutdown_cb shutdown_cb;
  uv_connect_t *creq;
  uv_connect_cb connect_cb;
  uv_connection_cb listen_cb;
  int is_conn;      /* the connection's socket (the peer's pipe) */
} fhandle_t;

#define MAX_HANDLES 16

static struct {
  uv_loop_t uv;
  uint64_t now;
  fhandle_t handles[MAX_HANDLES];
  /* loop handles */
  uv_async_cb async_cb;
  uv_async_t *async;
  int async_pending;
  uv_check_cb check_cb;
  uv_check_t *check;
  uv_prepare_cb prepare_cb;
  uv_prepare_t *prepare;
  uv_timer_cb timer_cb;
  uv_timer_t *timer;
  int timer_active;
  uint64_t timer_due, timer_repeat;
} U;

static fhandle_t *fh_find(const void *h) {
  for (int i = 0; i < MAX_HANDLES; i++)
    if (U.handles[i].h == h) return &U.handles[i];
  return NULL;
}

static fhandle_t *fh_add(void *h) {
  fhandle_t *f = fh_find(h);
  if (f) return f;
  for (int i = 0; i < MAX_HANDLES; i++) {
    if (U.handles[i].h == NULL) {
      memset(&U.handles[i], 0, sizeof(U.handles[i]));
      U.handles[i].h = h;
      return &U.handles[i];
    }
  }
  CHECK(!"too many handles");
  return NULL;
}

/* ---- the peer --------------------------------------------------------- */

static struct {
  wsn_buf_t in;      /* peer -> connection, not yet read */
  size_t in_off;
  int eof;           /* the peer ended: EOF after `in` */
  int reset;         /* a read error instead of EOF */
  int ended;         /* EOF or reset queued: the peer sends no more */
  int write_error;   /* the next write fails */
  size_t window;     /* bytes the peer takes per iteration (SIZE_MAX: all) */
  size_t avail;      /* left this iteration */
  size_t chunk;      /* bytes per read */
  size_t max_read;   /* the largest read so far (for the bounds) */
  int fin_seen;      /* our FIN arrived */
  int connect_fails;
} P;

/* What the connection wrote, parsed as the peer would. */
static struct {
  wsn_buf_t bytes;
  size_t off;
  int stage;         /* 0: handshake head, 1: body of a refusal, 2: frames */
  int refused;       /* the head was not a 101 */
  size_t body_left;
  int close_seen;    /* our close frame went */
  wsn_buf_t tags;    /* tag_t runs over `bytes` */
  size_t tag_i;      /* the run the parser is in */
  size_t frame_start; /* where the frame being parsed starts */
  int rsv1_ok;
  wsn_frame_parser_t parser;
  int parser_ready;
  /* the frame being read */
  uint8_t opcode;    /* of the message (data) or of the control frame */
  uint8_t compressed;
  uint8_t ctrl_op;
  wsn_buf_t msg;
  wsn_buf_t ctrl;
  z_stream inf;
  int inf_ready;
} W;

/* ---- the JS model ------------------------------------------------------ */

typedef struct sent_s {
  struct sent_s *next;
  uint8_t opcode;    /* TEXT, BINARY, PING, PONG, CLOSE */
  uint8_t compressed;
  size_t len;
  uint8_t data[];
} sent_t;

typedef struct ack_s {
  struct ack_s *next;
  uint64_t pos;      /* counted bytes through this send */
} ack_t;

static struct {
  int role;          /* 0..3 as c0 */
  int is_server;
  int needs_js, pmd, raw_hs, no_auto_pong, skip_utf8, manual;
  uint64_t max_payload;
  wsn_limits_t limits;
  int pmd_variant;
  int verify_async, keep_raw, reject, hs_timeout;
  int by_name;       /* the client connects to a name, not an address */
  int listen_host;   /* server: which listen address (setup) */
  int accepted;      /* server: its connection arrived */
  wsn_loop_t loop;
  wsn_id_t server_id, conn_id;
  int server_closed;   /* SERVER_CLOSED seen */
  int conn_known;      /* JS knows conn_id */
  int conn_closed;     /* CLOSED seen */
  int open;            /* JS's readyState OPEN */
  int subscribed;      /* JS subscribed the connection to the topic */
  uint32_t dropped_seen; /* DROPPED events that named it */
  int close_sent;      /* JS sent its close frame */
  int handshake_pending;
  int terminated;
  uint64_t counted;    /* bytes JS counted in bufferedAmount */
  uint64_t written_seen;
  ack_t *acks, **acks_tail;
  sent_t *sent, **sent_tail;
  /* Payloads of the pings the connection reported, and of the pongs on the
   * wire that JS did not send (auto-pongs go out before JS hears of the
   * ping: they are matched at the end). */
  wsn_buf_t pings, pongs;
  uint32_t releases_seen;
  int32_t expect_close_code; /* -1: any; else the code our close must have */
  uint64_t pending_frag_total; /* FRAGMENTS before a MESSAGE: their sum */
  int frags_pending;
  const char *key;
  uint8_t mask_seed;
  int stopped;
} J;

/* FUZZ_CONN_TRACE=1 when replaying an input: prints the script's steps,
 * the events JS takes and the frames the peer reads. */
static int trace_on = -1;
static void trace(const char *fmt, ...) {
  if (trace_on < 0) trace_on = getenv("FUZZ_CONN_TRACE") != NULL;
  if (!trace_on) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

/* ---- faults -------------------------------------------------------------- */

/* The sources under test are compiled with malloc, calloc and realloc
 * renamed to these (fuzz/Makefile), and the fake libuv's fallible calls ask
 * here too: the script picks the Nth such call to fail (one per input), so
 * every "out of memory" and "libuv refused" path runs. */
static struct {
  uint32_t count, fail_at; /* 0: no failure */
  int armed;
} F;

static int fault(void) {
  if (!F.armed || F.fail_at == 0) return 0;
  return ++F.count == F.fail_at;
}

void *wsn_fuzz_malloc(size_t n);
void *wsn_fuzz_calloc(size_t k, size_t n);
void *wsn_fuzz_realloc(void *p, size_t n);
void *wsn_fuzz_malloc(size_t n) { return fault() ? NULL : malloc(n); }
void *wsn_fuzz_calloc(size_t k, size_t n) {
  return fault() ? NULL : calloc(k, n);
}
void *wsn_fuzz_realloc(void *p, size_t n) {
  return fault() ? NULL : realloc(p, n);
}

/* ---- libuv, faked ------------------------------------------------------ */

uint64_t uv_now(const uv_loop_t *l) {
  (void)l;
  return U.now;
}
uint64_t uv_hrtime(void) { return U.now * 1000000u; }
int uv_mutex_init(uv_mutex_t *m) {
  (void)m;
  return 0;
}
void uv_mutex_destroy(uv_mutex_t *m) { (void)m; }
void uv_mutex_lock(uv_mutex_t *m) { (void)m; }
void uv_mutex_unlock(uv_mutex_t *m) { (void)m; }

int uv_async_init(uv_loop_t *l, uv_async_t *h, uv_async_cb cb) {
  (void)l;
  fh_add(h);
  U.async = h;
  U.async_cb = cb;
  return 0;
}
int uv_async_send(uv_async_t *h) {
  CHECK(h == U.async);
  U.async_pending = 1;
  return 0;
}
int uv_check_init(uv_loop_t *l, uv_check_t *h) {
  (void)l;
  fh_add(h);
  U.check = h;
  return 0;
}
int uv_check_start(uv_check_t *h, uv_check_cb cb) {
  CHECK(h == U.check);
  U.check_cb = cb;
  return 0;
}
int uv_prepare_init(uv_loop_t *l, uv_prepare_t *h) {
  (void)l;
  fh_add(h);
  U.prepare = h;
  return 0;
}
int uv_prepare_start(uv_prepare_t *h, uv_prepare_cb cb) {
  CHECK(h == U.prepare);
  U.prepare_cb = cb;
  return 0;
}
int uv_timer_init(uv_loop_t *l, uv_timer_t *h) {
  (void)l;
  fh_add(h);
  U.timer = h;
  return 0;
}
int uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout,
                   uint64_t repeat) {
  CHECK(h == U.timer);
  U.timer_cb = cb;
  U.timer_active = 1;
  U.timer_due = U.now + timeout;
  U.timer_repeat = repeat;
  return 0;
}
int uv_timer_stop(uv_timer_t *h) {
  CHECK(h == U.timer);
  U.timer_active = 0;
  return 0;
}
void uv_ref(uv_handle_t *h) { (void)h; }
void uv_unref(uv_handle_t *h) { (void)h; }

void uv_close(uv_handle_t *h, uv_close_cb cb) {
  fhandle_t *f = fh_find(h);
  CHECK(f != NULL);
  CHECK(!f->closing);
  f->closing = 1;
  f->close_cb = cb;
  f->reading = 0; /* libuv stops reading at once */
  if ((void *)h == (void *)U.timer) U.timer_active = 0;
}

int uv_tcp_init(uv_loop_t *l, uv_tcp_t *h) {
  if (fault()) return UV_ENOMEM;
  memset(h, 0, sizeof(*h));
  h->loop = l;
  h->type = UV_TCP;
  fh_add(h);
  return 0;
}
int uv_tcp_open(uv_tcp_t *h, uv_os_sock_t fd) {
  (void)fd;
  if (fault()) return UV_EBADF;
  fh_find(h)->is_conn = 1;
  return 0;
}
int uv_accept(uv_stream_t *server, uv_stream_t *client) {
  (void)server;
  if (fault()) return UV_EMFILE;
  fh_find(client)->is_conn = 1;
  return 0;
}
int uv_tcp_nodelay(uv_tcp_t *h, int on) {
  (void)h;
  (void)on;
  return 0;
}
int uv_tcp_keepalive(uv_tcp_t *h, int on, unsigned delay) {
  (void)h;
  (void)on;
  (void)delay;
  return 0;
}
int uv_tcp_bind(uv_tcp_t *h, const struct sockaddr *a, unsigned flags) {
  (void)h;
  (void)a;
  (void)flags;
  return 0;
}
int uv_listen(uv_stream_t *s, int backlog, uv_connection_cb cb) {
  (void)backlog;
  if (fault()) return UV_EADDRINUSE;
  fh_find(s)->listen_cb = cb;
  return 0;
}
int uv_fileno(const uv_handle_t *h, uv_os_fd_t *fd) {
  (void)h;
  (void)fd;
  return UV_EBADF; /* no fds here: the accept batch stops at once */
}

static void fake_addr(struct sockaddr *sa, int *len, int port) {
  struct sockaddr_in *a = (struct sockaddr_in *)sa;
  memset(a, 0, sizeof(*a));
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  a->sin_addr.s_addr = htonl(0x7f000001);
  *len = sizeof(*a);
}
int uv_tcp_getpeername(const uv_tcp_t *h, struct sockaddr *sa, int *len) {
  (void)h;
  fake_addr(sa, len, 40000);
  return 0;
}
int uv_tcp_getsockname(const uv_tcp_t *h, struct sockaddr *sa, int *len) {
  (void)h;
  fake_addr(sa, len, 8080);
  return 0;
}
int uv_ip4_addr(const char *ip, int port, struct sockaddr_in *addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sin_family = AF_INET;
  addr->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, ip, &addr->sin_addr) == 1 ? 0 : UV_EINVAL;
}
int uv_ip6_addr(const char *ip, int port, struct sockaddr_in6 *addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sin6_family = AF_INET6;
  addr->sin6_port = htons((uint16_t)port);
  return inet_pton(AF_INET6, ip, &addr->sin6_addr) == 1 ? 0 : UV_EINVAL;
}
int uv_ip4_name(const struct sockaddr_in *src, char *dst, size_t size) {
  return inet_ntop(AF_INET, &src->sin_addr, dst, (socklen_t)size) ? 0
                                                                    : UV_ENOSPC;
}
int uv_ip6_name(const struct sockaddr_in6 *src, char *dst, size_t size) {
  return inet_ntop(AF_INET6, &src->sin6_addr, dst, (socklen_t)size)
             ? 0
             : UV_ENOSPC;
}
/* Address lists come from the fake resolver below, one block each. */
void uv_freeaddrinfo(struct addrinfo *ai) {
  while (ai) {
    struct addrinfo *next = ai->ai_next;
    free(ai);
    ai = next;
  }
}

int uv_read_start(uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb cb) {
  fhandle_t *f = fh_find(s);
  CHECK(f && !f->closing);
  if (fault()) return UV_EINVAL;
  f->alloc_cb = alloc;
  f->read_cb = cb;
  f->reading = 1;
  return 0;
}
int uv_read_stop(uv_stream_t *s) {
  fhandle_t *f = fh_find(s);
  CHECK(f != NULL);
  f->reading = 0;
  return 0;
}

/* Which bytes of the stream were frames C made itself (auto-pongs) and
 * which JS sent: read from the records the connection hands to each write,
 * so the peer's view can tell an auto-pong from JS's pong of the same
 * payload. */
typedef struct {
  uint64_t end; /* of this run of bytes, in the stream (or in wdata) */
  uint8_t own;
} tag_t;

static void wire_received(const uint8_t *p, size_t n, int own);

/* The records behind a write's buffers, in order (fill_iov's mapping):
 * whether buffer i is a frame C made itself. */
static int iov_own(const uv_stream_t *s, const uv_buf_t bufs[], unsigned i) {
  const wsn_conn_t *c = s->data;
  const wsn_cmd_t *rec = c->out_head;
  size_t off = c->out_off;
  unsigned k = 0;
  /* An external record has two buffers (header, payload), or one when
   * its header is already written. */
  for (; rec; rec = rec->next, off = 0) {
    unsigned bufs_of = 1; /* a shared record (a publish's frame) too */
    if (rec->flags & WSN_CMD_EXTERNAL)
      bufs_of = off < rec->len - wsn_cmd_ext(rec).len ? 2 : 1;
    if (i < k + bufs_of) break;
    k += bufs_of;
  }
  CHECK(rec != NULL);
  const uint8_t *end = rec->data + rec->off + rec->len;
  if (rec->flags & WSN_CMD_SHARED) {
    wsn_shared_t *sh;
    memcpy(&sh, rec->data, sizeof(sh));
    CHECK(sh->refs > 0 && rec->off + rec->len <= sh->len);
    end = sh->data + rec->off + rec->len;
  } else if (rec->flags & WSN_CMD_EXTERNAL) {
    wsn_cmd_ext_t x = wsn_cmd_ext(rec);
    int payload = (i == k + 1) || !(off < rec->len - x.len);
    end = payload ? x.base + x.len : rec->data + rec->off + (rec->len - x.len);
  }
  CHECK((const uint8_t *)bufs[i].base + bufs[i].len == end);
  return (rec->flags & WSN_CMD_UNCOUNTED) != 0;
}

int uv_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n) {
  fhandle_t *f = fh_find(s);
  CHECK(f && f->is_conn && !f->closing);
  CHECK(!P.fin_seen && f->sreq == NULL); /* nothing after our FIN */
  if (f->wreq) return UV_EAGAIN;
  if (P.write_error) return UV_EPIPE;
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) {
    size_t take = bufs[i].len < P.avail ? bufs[i].len : P.avail;
    if (take == 0) break;
    wire_received((const uint8_t *)bufs[i].base, take, iov_own(s, bufs, i));
    P.avail -= take;
    total += take;
    if (take < bufs[i].len) break;
  }
  return total ? (int)total : UV_EAGAIN;
}

int uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[],
             unsigned n, uv_write_cb cb) {
  fhandle_t *f = fh_find(s);
  CHECK(f && f->is_conn && !f->closing && f->wreq == NULL);
  CHECK(!P.fin_seen && f->sreq == NULL);
  if (fault()) return UV_ENOMEM;
  f->wreq = req;
  f->write_cb = cb;
  f->wdone = 0;
  f->wdata.len = 0;
  f->wtags.len = 0;
  /* libuv keeps the caller's buffers (the records stay alive until the
   * callback); copying them here is the same bytes, and lets ASan see a
   * record freed too early when the bytes are checked against it. */
  for (unsigned i = 0; i < n; i++) {
    CHECK(wsn_buf_append(&f->wdata, bufs[i].base, bufs[i].len) == 0);
    tag_t t = {f->wdata.len, (uint8_t)iov_own(s, bufs, i)};
    CHECK(wsn_buf_append(&f->wtags, &t, sizeof(t)) == 0);
  }
  return 0;
}

int uv_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb) {
  fhandle_t *f = fh_find(s);
  CHECK(f && f->is_conn && !f->closing && f->sreq == NULL);
  if (fault()) return UV_ENOTCONN;
  f->sreq = req;
  f->shutdown_cb = cb;
  return 0;
}

int uv_tcp_connect(uv_connect_t *req, uv_tcp_t *h, const struct sockaddr *a,
                   uv_connect_cb cb) {
  (void)a;
  fhandle_t *f = fh_find(h);
  CHECK(f && f->creq == NULL);
  if (fault()) return UV_ENETUNREACH;
  f->creq = req;
  f->connect_cb = cb;
  f->is_conn = 1;
  return 0;
}

/* Not used in main-loop mode without name lookups; present for the link. */
int uv_loop_init(uv_loop_t *l) {
  (void)l;
  abort();
}
int uv_loop_close(uv_loop_t *l) {
  (void)l;
  abort();
}
int uv_run(uv_loop_t *l, uv_run_mode m) {
  (void)l;
  (void)m;
  abort();
}
int uv_thread_create(uv_thread_t *t, uv_thread_cb cb, void *arg) {
  (void)t;
  (void)cb;
  (void)arg;
  abort();
}
int uv_thread_join(uv_thread_t *t) {
  (void)t;
  abort();
}
int uv_sem_init(uv_sem_t *s, unsigned v) {
  (void)s;
  (void)v;
  abort();
}
void uv_sem_destroy(uv_sem_t *s) { (void)s; }
void uv_sem_post(uv_sem_t *s) { (void)s; }
void uv_sem_wait(uv_sem_t *s) { (void)s; }

/* TLS and name lookups are left out (OpenSSL and getaddrinfo are fuzzed
 * elsewhere): no connection here has a session, and clients connect to an
 * IP literal. These are what conn.c and loop.c link against. */
void wsn_tls_session_free(wsn_tls_session_t *s) { CHECK(s == NULL); }
int wsn_tls_session_handshake(wsn_tls_session_t *s) { (void)s; abort(); }
int wsn_tls_session_handshake_done(const wsn_tls_session_t *s) {
  (void)s;
  abort();
}
int wsn_tls_session_input(wsn_tls_session_t *s, const uint8_t *d, size_t n,
                          wsn_buf_t *out) {
  (void)s, (void)d, (void)n, (void)out;
  abort();
}
int wsn_tls_session_write(wsn_tls_session_t *s, const void *d, size_t n) {
  (void)s, (void)d, (void)n;
  abort();
}
wsn_buf_t *wsn_tls_session_output(wsn_tls_session_t *s) { (void)s; abort(); }
void wsn_tls_session_output_consume(wsn_tls_session_t *s, size_t n) {
  (void)s, (void)n;
  abort();
}
int wsn_tls_session_shutdown(wsn_tls_session_t *s) { (void)s; abort(); }
const wsn_tls_error_t *wsn_tls_session_error(const wsn_tls_session_t *s) {
  (void)s;
  abort();
}
/* No listener here has a server context (server.c, loop.c). */
void wsn_tls_ctx_release(wsn_tls_ctx_t *c) { CHECK(c == NULL); }
wsn_tls_session_t *wsn_tls_session_new_server(wsn_tls_ctx_t *c) {
  (void)c;
  abort();
}
/* Name lookups: a client connecting to a name gets its answer in the next
 * poll phase, as resolve.c's threads ring the wake handle: two addresses
 * (the first may refuse the connect, to exercise the retry), or a failure. */
static struct {
  int made;          /* the resolver exists */
  wsn_lookup_cb cb;
  void *data;
  int pending, abandoned;
  unsigned port;
  int fail, first_refuses;
  int connects;      /* connects tried so far */
} R;
static char resolver_token, lookup_token;

wsn_resolver_t *wsn_resolver_new(void (*wake)(void *), void *arg,
                                 wsn_gai_fn gai) {
  (void)wake, (void)arg, (void)gai;
  if (fault()) return NULL;
  R.made = 1;
  return (wsn_resolver_t *)&resolver_token;
}
int wsn_lookup_start(wsn_resolver_t *r, const char *host, unsigned port,
                     wsn_lookup_cb cb, void *data, wsn_lookup_t **out) {
  (void)host;
  CHECK(r == (wsn_resolver_t *)&resolver_token && !R.pending);
  if (fault()) return UV_ENOMEM;
  R.cb = cb;
  R.data = data;
  R.port = port;
  R.pending = 1;
  *out = (wsn_lookup_t *)&lookup_token;
  return 0;
}
void wsn_lookup_abandon(wsn_resolver_t *r, wsn_lookup_t *lk) {
  CHECK(r == (wsn_resolver_t *)&resolver_token);
  CHECK(lk == (wsn_lookup_t *)&lookup_token && R.pending);
  R.pending = 0;
  R.abandoned = 1;
}
void wsn_resolver_drain(wsn_resolver_t *r) {
  CHECK(r == (wsn_resolver_t *)&resolver_token);
  if (!R.pending) return;
  R.pending = 0;
  if (R.fail) {
    R.cb(R.data, UV_EAI_NONAME, NULL);
    return;
  }
  struct addrinfo *first = NULL, **tail = &first;
  for (int i = 0; i < 2; i++) {
    struct {
      struct addrinfo ai;
      struct sockaddr_storage ss;
    } *b = calloc(1, sizeof(*b));
    CHECK(b != NULL);
    b->ai.ai_addr = (struct sockaddr *)&b->ss;
    if (i == 0) {
      b->ai.ai_family = AF_INET;
      b->ai.ai_addrlen = sizeof(struct sockaddr_in);
      CHECK(uv_ip4_addr("127.0.0.1", (int)R.port,
                        (struct sockaddr_in *)&b->ss) == 0);
    } else {
      b->ai.ai_family = AF_INET6;
      b->ai.ai_addrlen = sizeof(struct sockaddr_in6);
      CHECK(uv_ip6_addr("::1", (int)R.port, (struct sockaddr_in6 *)&b->ss) ==
            0);
    }
    *tail = &b->ai;
    tail = &b->ai.ai_next;
  }
  R.cb(R.data, 0, first);
}
void wsn_resolver_shutdown(wsn_resolver_t *r) {
  CHECK(r == (wsn_resolver_t *)&resolver_token);
  R.made = 0;
}

/* ---- helpers ------------------------------------------------------------ */

static wsn_conn_t *the_conn(void) {
  return J.conn_id ? wsn_slots_ptr(&J.loop.slots, J.conn_id) : NULL;
}

/* An independent UTF-8 check (RFC 3629), not utf8.c's. */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static int close_code_sendable(uint32_t code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
          code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* ---- the peer's view of what we wrote ----------------------------------- */


static int own_at(size_t off) {
  const tag_t *t = (const tag_t *)W.tags.base;
  size_t count = W.tags.len / sizeof(tag_t);
  while (W.tag_i < count && t[W.tag_i].end <= off) W.tag_i++;
  CHECK(W.tag_i < count);
  return t[W.tag_i].own;
}

static void wire_message_check(uint8_t opcode, const uint8_t *p, size_t n,
                               int compressed, int own) {
  trace("wire: opcode %u, %zu bytes%s%s\n", opcode, n,
        compressed ? ", compressed" : "", own ? ", made by C" : "");
  sent_t *s = J.sent;
  if (!own) {
    /* JS's frames arrive in order and intact. */
    CHECK(s != NULL && s->opcode == opcode && s->compressed == compressed &&
          s->len == n && (n == 0 || memcmp(s->data, p, n) == 0));
  } else {
    /* A frame C made itself: only an auto-pong answering a ping, or the
     * heartbeat's ping (src/heartbeat.c). */
    if (opcode == WSN_OP_PING) {
      CHECK(J.limits.idle_timeout_ms != 0 && J.limits.send_pings);
      CHECK(n == 13 && memcmp(p, "wsn-heartbeat", 13) == 0);
      return;
    }
    CHECK(opcode == WSN_OP_PONG);
    CHECK(!J.no_auto_pong);
    CHECK(n <= 125);
    uint8_t len = (uint8_t)n;
    CHECK(wsn_buf_append(&J.pongs, &len, 1) == 0);
    CHECK(wsn_buf_append(&J.pongs, p, n) == 0);
    return;
  }
  J.sent = s->next;
  if (J.sent == NULL) J.sent_tail = &J.sent;
  free(s);
  if (opcode == WSN_OP_CLOSE) {
    uint32_t code = 1005, arg;
    wsn_span_t reason;
    CHECK(wsn_frame_check_close(p, n, 1, &code, &reason, &arg) == WSN_OK);
    CHECK(code == 1005 || close_code_sendable(code));
    if (J.expect_close_code >= 0) CHECK(code == (uint32_t)J.expect_close_code);
  }
}

static void wire_inflate(const uint8_t *p, size_t n, wsn_buf_t *out) {
  if (!W.inf_ready) {
    memset(&W.inf, 0, sizeof(W.inf));
    CHECK(inflateInit2(&W.inf, -15) == Z_OK);
    W.inf_ready = 1;
  }
  uint8_t tmp[4096];
  W.inf.next_in = (uint8_t *)p;
  W.inf.avail_in = (uInt)n;
  do {
    W.inf.next_out = tmp;
    W.inf.avail_out = sizeof(tmp);
    int r = inflate(&W.inf, Z_SYNC_FLUSH);
    CHECK(r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END);
    CHECK(wsn_buf_append(out, tmp, sizeof(tmp) - W.inf.avail_out) == 0);
    if (r == Z_BUF_ERROR && W.inf.avail_in == 0) break;
  } while (W.inf.avail_in > 0 || W.inf.avail_out == 0);
}

static void wire_frames(void) {
  while (W.off < W.bytes.len) {
    CHECK(!W.close_seen); /* nothing after our close frame */
    wsn_frame_event_t ev;
    size_t used = wsn_frame_parse(&W.parser, W.bytes.base + W.off,
                                  W.bytes.len - W.off, &ev);
    W.off += used;
    switch (ev.type) {
      case WSN_FRAME_NEED_MORE:
        return;
      case WSN_FRAME_HEADER:
        if (ev.opcode >= 8) {
          W.ctrl_op = ev.opcode;
          W.ctrl.len = 0;
        } else if (ev.opcode != 0) {
          W.opcode = ev.opcode;
          W.compressed = ev.rsv1;
          W.msg.len = 0;
        }
        break;
      case WSN_FRAME_DATA:
        if (W.parser.opcode >= 8)
          CHECK(wsn_buf_append(&W.ctrl, ev.data.base, ev.data.len) == 0);
        else if (W.compressed)
          wire_inflate(ev.data.base, ev.data.len, &W.msg);
        else
          CHECK(wsn_buf_append(&W.msg, ev.data.base, ev.data.len) == 0);
        break;
      case WSN_FRAME_END:
        if (ev.opcode >= 8) {
          wire_message_check(W.ctrl_op, W.ctrl.base, W.ctrl.len, 0,
                             own_at(W.frame_start));
          if (W.ctrl_op == WSN_OP_CLOSE) W.close_seen = 1;
          W.frame_start = W.off;
          break;
        } else if (ev.fin) {
          if (W.compressed) {
            static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
            wire_inflate(tail, 4, &W.msg);
          }
          wire_message_check(W.opcode, W.msg.base, W.msg.len, W.compressed,
                             own_at(W.frame_start));
        }
        W.frame_start = W.off;
        break;
      case WSN_FRAME_ERROR:
        fprintf(stderr, "our frame does not parse: error %d arg %u\n",
                ev.error, ev.error_arg);
        CHECK(!"a frame we wrote does not parse");
        return;
    }
  }
}

/* Bytes the connection wrote reach the peer. */
static void wire_received(const uint8_t *p, size_t n, int own) {
  CHECK(wsn_buf_append(&W.bytes, p, n) == 0);
  tag_t t = {W.bytes.len, (uint8_t)own};
  CHECK(wsn_buf_append(&W.tags, &t, sizeof(t)) == 0);
  if (W.stage == 0) {
    /* The head: a client's request or a server's response. */
    const char *b = (const char *)W.bytes.base;
    size_t len = W.bytes.len, end = 0;
    for (size_t i = 3; i < len; i++) {
      if (memcmp(b + i - 3, "\r\n\r\n", 4) == 0) {
        end = i + 1;
        break;
      }
    }
    if (end == 0) {
      CHECK(len < 4096);
      return;
    }
    W.off = end;
    W.frame_start = end;
    if (J.is_server && strncmp(b, "HTTP/1.1 101 ", 13) != 0) {
      CHECK(strncmp(b, "HTTP/1.1 ", 9) == 0);
      W.refused = 1;
      W.stage = 1;
      W.body_left = 0;
      const char *cl = memmem(b, end, "Content-Length: ", 16);
      if (cl) W.body_left = (size_t)strtoul(cl + 16, NULL, 10);
    } else {
      W.stage = 2;
    }
  }
  if (W.stage == 1) {
    size_t rest = W.bytes.len - W.off;
    CHECK(rest <= W.body_left); /* nothing after a refusal's body */
    W.body_left -= rest;
    W.off = W.bytes.len;
    return;
  }
  if (!W.parser_ready) {
    /* Parsing as the peer: a server's peer expects unmasked frames. */
    wsn_frame_parser_init(&W.parser, !J.is_server, 0);
    W.parser.rsv1_allowed = 1; /* checked against the agreement below */
    W.parser_ready = 1;
  }
  wire_frames();
}

/* ---- JS ----------------------------------------------------------------- */

static void push(wsn_cmd_t *cmd) { wsn_loop_push(&J.loop, cmd); }

/* A command as binding.c makes it for JS. Its allocation is not one of the
 * faults: out of memory there is a JS exception, not the connection's
 * business. */
static wsn_cmd_t *cmd_new(uint32_t type, wsn_id_t id, size_t cap) {
  int armed = F.armed;
  F.armed = 0;
  wsn_cmd_t *cmd = wsn_cmd_new(type, id, cap);
  F.armed = armed;
  return cmd;
}

static void expect_sent(uint8_t opcode, int compressed, const uint8_t *p,
                        size_t n) {
  sent_t *s = malloc(sizeof(*s) + n);
  CHECK(s != NULL);
  s->next = NULL;
  s->opcode = opcode;
  s->compressed = (uint8_t)compressed;
  s->len = n;
  if (n) memcpy(s->data, p, n);
  *J.sent_tail = s;
  J.sent_tail = &s->next;
}

static void forget_sent(void) {
  while (J.sent) {
    sent_t *n = J.sent->next;
    free(J.sent);
    J.sent = n;
  }
  J.sent_tail = &J.sent;
}

/* A frame as binding.c builds it for JS's send/ping/pong/close. */
/* A send callback waits for the bytes counted so far. */
static void add_ack(void) {
  ack_t *a = malloc(sizeof(*a));
  CHECK(a != NULL);
  a->next = NULL;
  a->pos = J.counted;
  *J.acks_tail = a;
  J.acks_tail = &a->next;
}

/* JS counted `counted` bytes for this command (bufferedAmount) and may wait
 * for them; the frame is expected on the wire only if the connection will
 * write it (compressed ones only once deflate was agreed). */
static void js_push(wsn_cmd_t *cmd, uint64_t counted, int want_ack,
                    int opcode, int compressed, const uint8_t *p, size_t n) {
  J.counted += counted;
  if (want_ack) add_ack();
  wsn_conn_t *c = the_conn();
  if (c && c->state == WSN_CS_OPEN && !c->close_sent && !c->shut &&
      (!compressed || c->pmd))
    expect_sent((uint8_t)opcode, compressed, p, n);
  push(cmd);
}

/* ws's send/ping/pong before the open event throw, and after close() call
 * back with an error (sendAfterClose): neither reaches the connection. */
static int js_can_send(void) {
  return J.conn_id != 0 && J.open && !J.close_sent && !J.conn_closed;
}

static void js_frame(int type, int opcode, const uint8_t *p, size_t n,
                     int want_ack) {
  if (type == WSN_CMD_SEND && !js_can_send()) return;
  if (J.conn_id == 0 || J.conn_closed) return;
  int masked = !J.is_server;
  wsn_cmd_t *cmd = cmd_new(type, J.conn_id, 14 + n);
  CHECK(cmd != NULL);
  uint8_t mask[4] = {J.mask_seed, 0x5a, (uint8_t)n, 0xc3};
  J.mask_seed = (uint8_t)(J.mask_seed * 31 + 7);
  size_t h = wsn_frame_header(cmd->data, 1, 0, opcode, n, masked ? mask : NULL);
  if (masked) wsn_frame_mask_copy(cmd->data + h, p, n, mask);
  else if (n) memcpy(cmd->data + h, p, n);
  cmd->len = h + n;
  if (want_ack) cmd->flags |= WSN_SEND_WANT_ACK;
  js_push(cmd, cmd->len, want_ack, opcode, 0, p, n);
}

/* A large Buffer a server sends as it is (WSN_CMD_EXTERNAL): the payload
 * stays in "JS's" memory, a token standing for the napi_ref, until the
 * loop gives it back (RELEASE) exactly once; it is freed then, so ASan
 * sees any use after. */
typedef struct {
  uint32_t magic;
  size_t len;
  uint8_t bytes[];
} token_t;
#define TOKEN_MAGIC 0x70c3e17u
static wsn_buf_t tokens; /* token_t * of the live ones */

static void release_token(token_t *t) {
  token_t **v = (token_t **)tokens.base;
  size_t n = tokens.len / sizeof(*v);
  for (size_t i = 0; i < n; i++) {
    if (v[i] == t) {
      CHECK(t->magic == TOKEN_MAGIC);
      v[i] = v[n - 1];
      tokens.len -= sizeof(*v);
      free(t);
      return;
    }
  }
  CHECK(!"a reference released twice, or never taken");
}

static void js_send_external(int opcode, const uint8_t *p, size_t n,
                             int want_ack) {
  if (!js_can_send() || !J.is_server) return;
  token_t *t = malloc(sizeof(*t) + (n ? n : 1));
  CHECK(t != NULL);
  t->magic = TOKEN_MAGIC;
  t->len = n;
  if (n) memcpy(t->bytes, p, n);
  CHECK(wsn_buf_append(&tokens, &t, sizeof(t)) == 0);
  wsn_cmd_t *cmd = cmd_new(WSN_CMD_SEND, J.conn_id, sizeof(wsn_cmd_ext_t) + 14);
  CHECK(cmd != NULL);
  wsn_cmd_ext_t x = {t->bytes, n, t};
  memcpy(cmd->data, &x, sizeof(x));
  size_t h = wsn_frame_header(cmd->data + sizeof(x), 1, 0, opcode, n, NULL);
  cmd->off = sizeof(x);
  cmd->len = h + n;
  cmd->flags |= WSN_CMD_EXTERNAL | (want_ack ? WSN_SEND_WANT_ACK : 0);
  js_push(cmd, cmd->len, want_ack, opcode, 0, p, n);
}

static void js_send_compressed(int opcode, const uint8_t *p, size_t n,
                               int want_ack) {
  if (!js_can_send()) return;
  wsn_cmd_t *cmd = cmd_new(WSN_CMD_SEND, J.conn_id, n);
  CHECK(cmd != NULL);
  if (n) memcpy(cmd->data, p, n);
  cmd->flags = WSN_SEND_COMPRESS | WSN_SEND_FIN |
               ((uint32_t)opcode << WSN_SEND_OPCODE_SHIFT) |
               (want_ack ? WSN_SEND_WANT_ACK : 0);
  cmd->arg = n;
  js_push(cmd, n, want_ack, opcode, 1, p, n);
}

static void js_close(int code, const uint8_t *reason, size_t rlen) {
  if (J.close_sent || J.conn_id == 0 || J.conn_closed) return;
  if (!J.open) return; /* ws: close() before open aborts the handshake */
  uint8_t p[125];
  size_t n = 0;
  if (code >= 0) {
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rlen > 123) rlen = 123;
    if (rlen) memcpy(p + 2, reason, rlen);
    n = 2 + rlen;
  }
  J.close_sent = 1;
  J.expect_close_code = code;
  js_frame(WSN_CMD_CLOSE, WSN_OP_CLOSE, p, n, 0);
}

static void js_simple(int type) {
  if (J.conn_id == 0 || J.conn_closed) return;
  wsn_cmd_t *cmd = cmd_new(type, J.conn_id, 0);
  CHECK(cmd != NULL);
  if (type == WSN_CMD_TERMINATE) J.terminated = 1;
  push(cmd);
}

static const wsn_pmd_options_t *pmd_opts(void) {
  static wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.threshold = 0;
  if (J.pmd_variant & 1) o.server_no_context_takeover = 2; /* TRUE */
  if (J.pmd_variant & 2) o.client_no_context_takeover = 2;
  return &o;
}

static const char *offer_value(void) {
  switch (J.pmd_variant) {
    case 0: return "permessage-deflate; client_max_window_bits";
    case 1: return "permessage-deflate; server_no_context_takeover";
    case 2: return "permessage-deflate; client_no_context_takeover; client_max_window_bits=9";
    default: return "permessage-deflate; server_max_window_bits=10, permessage-deflate";
  }
}

/* The agreement of an offer the model peer makes (server side), as
 * websocket-server.js computes it. */
static int pmd_agree(wsn_pmd_setup_t *s, const char *offer) {
  memset(s, 0, sizeof(*s));
  s->opts = *pmd_opts();
  wsn_pmd_error_t err;
  if (wsn_pmd_accept_offer(&s->opts, offer, strlen(offer), &s->params, &err) !=
      WSN_PMD_OK)
    return 0;
  s->enabled = 1;
  return 1;
}

/* JS answers a handshake it was asked about (verifyClient). */
static void js_answer_handshake(int reject, const char *head, size_t head_len) {
  if (!J.handshake_pending || J.conn_closed) return;
  J.handshake_pending = 0;
  if (reject) {
    char resp[256];
    size_t n = wsn_handshake_response_error(resp, sizeof(resp), 401, NULL, NULL);
    wsn_cmd_t *cmd = cmd_new(WSN_CMD_REJECT, J.conn_id, n);
    CHECK(cmd != NULL);
    memcpy(cmd->data, resp, n);
    push(cmd);
    return;
  }
  /* The key and the offer from the request head. */
  static wsn_http_head_t h;
  char key[64] = "dGhlIHNhbXBsZSBub25jZQ==";
  size_t key_len = strlen(key);
  wsn_pmd_setup_t setup;
  memset(&setup, 0, sizeof(setup));
  char ext[300] = "";
  if (head && wsn_http_parse_request(head, head_len, 0, &h) > 0) {
    const wsn_http_header_t *k = wsn_http_find(&h, "sec-websocket-key");
    if (k && k->value_len < sizeof(key)) {
      memcpy(key, k->value, k->value_len);
      key_len = k->value_len;
    }
    const wsn_http_header_t *e = wsn_http_find(&h, "sec-websocket-extensions");
    if (J.pmd && e && e->value_len < 256) {
      char v[256];
      memcpy(v, e->value, e->value_len);
      v[e->value_len] = 0;
      if (pmd_agree(&setup, v)) {
        char f[200];
        if (wsn_pmd_format(&setup.params, f, sizeof(f)) > 0)
          snprintf(ext, sizeof(ext), "Sec-WebSocket-Extensions: %s\r\n", f);
        else
          setup.enabled = 0;
      }
    }
  }
  char resp[600];
  size_t n = wsn_handshake_response_101(resp, sizeof(resp), key, key_len, NULL,
                                        0, ext, strlen(ext));
  CHECK(n > 0);
  wsn_cmd_t *cmd = cmd_new(WSN_CMD_ACCEPT, J.conn_id, sizeof(setup) + n);
  CHECK(cmd != NULL);
  memcpy(cmd->data, &setup, sizeof(setup));
  memcpy(cmd->data + sizeof(setup), resp, n);
  push(cmd);
  J.open = 1;
}

/* The request head inside a HANDSHAKE/CONNECTION payload: after the
 * protocol and six address fields, each NUL-ended. */
static const char *request_head(const uint8_t *p, size_t n, size_t *len) {
  size_t i = 0;
  for (int field = 0; field < 7; field++) {
    while (i < n && p[i] != 0) i++;
    CHECK(i < n);
    i++;
  }
  *len = n - i;
  return (const char *)p + i;
}

static char pending_head[20000];
static size_t pending_head_len;

static void ack_covered(uint64_t written) {
  while (J.acks && J.acks->pos <= written) {
    ack_t *a = J.acks;
    J.acks = a->next;
    free(a);
  }
  if (J.acks == NULL) J.acks_tail = &J.acks;
}

static void forget_acks(void) {
  /* At CLOSED: the callbacks still waiting get an error (ws's
   * "WebSocket is not open"), once each. */
  ack_covered(UINT64_MAX);
}

static void on_event(const wsn_event_t *ev, const uint8_t *payload) {
  wsn_id_t id = wsn_id_make(ev->slot, ev->gen);
  trace("event %u, %u bytes, a=%u\n", ev->type, ev->len, ev->a);
  int for_server = id == J.server_id && J.server_id != 0;
  switch (ev->type) {
    case WSN_EV_LISTENING:
    case WSN_EV_LISTEN_ERROR:
      CHECK(for_server);
      return;
    case WSN_EV_RELEASE:
      CHECK(id == 0);
      release_token((token_t *)(uintptr_t)ev->c);
      J.releases_seen++;
      return;
    case WSN_EV_SERVER_CLOSED:
      CHECK(for_server && !J.server_closed);
      J.server_closed = 1;
      return;
    case WSN_EV_CONNECTION:
    case WSN_EV_HANDSHAKE:
      CHECK(ev->c == J.server_id);
      CHECK(!J.conn_known);
      J.conn_id = id;
      J.conn_known = 1;
      if (ev->type == WSN_EV_CONNECTION) {
        J.open = 1;
      } else {
        J.handshake_pending = 1;
        size_t hl;
        const char *h = request_head(payload, ev->len, &hl);
        pending_head_len = hl < sizeof(pending_head) ? hl : 0;
        memcpy(pending_head, h, pending_head_len);
        if (!J.verify_async)
          js_answer_handshake(J.reject, pending_head, pending_head_len);
      }
      return;
    case WSN_EV_DROPPED: {
      /* A publish skipped the connection: its id, the topic, the data. */
      CHECK(id == 0 && ev->c == 1 && ev->len >= 8 + 1 && ev->b == 1);
      uint64_t who = 0;
      for (int i = 0; i < 8; i++) who |= (uint64_t)payload[i] << (8 * i);
      CHECK(who == J.conn_id && payload[8] == 't');
      J.dropped_seen++;
      return;
    }
    default:
      break;
  }
  CHECK(!for_server);
  CHECK(J.conn_id != 0 && id == J.conn_id);
  CHECK(!J.conn_closed); /* nothing after CLOSED */
  switch (ev->type) {
    case WSN_EV_OPEN:
      CHECK(!J.is_server);
      if (ev->a != WSN_HS_BAD_RESPONSE) {
        /* The parsed head (wsn_http_encode_response): status, minor,
         * reason, then name and value pairs, each ended by a NUL. */
        size_t nuls = 0;
        CHECK(ev->b >= 7 && ev->b <= ev->len && payload[ev->b - 1] == 0);
        for (size_t i = 0; i < ev->b; i++) nuls += payload[i] == 0;
        CHECK(nuls >= 3 && nuls % 2 == 1);
        if (ev->a != WSN_HS_NOT_101) CHECK(ev->len == ev->b);
      } else {
        CHECK(ev->b == 0);
      }
      if (ev->a == WSN_HS_OK) {
        J.open = 1;
      } else if (!(ev->a == WSN_HS_NOT_101 && J.keep_raw)) {
        js_simple(WSN_CMD_TERMINATE); /* ws: abortHandshake */
      }
      return;
    case WSN_EV_ADDRESS:
    case WSN_EV_DATA:
    case WSN_EV_PONG:
    case WSN_EV_SOCKET_ERROR:
      return;
    case WSN_EV_PING:
      CHECK(ev->len <= 125);
      {
        uint8_t len = (uint8_t)ev->len;
        CHECK(wsn_buf_append(&J.pings, &len, 1) == 0);
        CHECK(wsn_buf_append(&J.pings, payload, ev->len) == 0);
      }
      return;
    case WSN_EV_FRAGMENTS: {
      CHECK(ev->len % 4 == 0 && ev->len > 0);
      uint64_t sum = 0;
      for (size_t i = 0; i < ev->len; i += 4) {
        uint32_t v;
        memcpy(&v, payload + i, 4);
        CHECK(v > 0);
        sum += v;
      }
      J.pending_frag_total = sum;
      J.frags_pending = 1;
      return;
    }
    case WSN_EV_MESSAGE: {
      const uint8_t *p = payload;
      if (ev->a & WSN_MSG_EXTERNAL) {
        CHECK(ev->len >= WSN_EXTERNAL_MIN);
        p = (const uint8_t *)(uintptr_t)ev->c;
      }
      if (J.max_payload) CHECK(ev->len <= J.max_payload);
      if (!(ev->a & WSN_MSG_BINARY) && !J.skip_utf8)
        CHECK(utf8_ok(p, ev->len));
      if (J.frags_pending) {
        CHECK(ev->a & WSN_MSG_BINARY);
        CHECK(J.pending_frag_total <= ev->len); /* the last frame may be empty */
        J.frags_pending = 0;
      }
      return;
    }
    case WSN_EV_CLOSE_FRAME:
      /* ws answers with the same code and reason (1005: none). */
      if (J.open && !J.close_sent) {
        size_t rl = ev->len;
        if (ev->a == 1005) js_close(-1, NULL, 0);
        else js_close((int)ev->a, payload, rl);
      }
      return;
    case WSN_EV_ERROR: {
      int code = 0;
#define CLOSE_OF(name, c_, ctor, prefix, msg, close)                         \
  if (ev->a == (uint32_t)WSN_E_##name) code = close;
      WSN_ERRORS(CLOSE_OF)
#undef CLOSE_OF
      CHECK(code == 1002 || code == 1007 || code == 1008 || code == 1009);
      if (J.open && !J.close_sent) js_close(code, NULL, 0);
      return;
    }
    case WSN_EV_WRITTEN:
      CHECK(ev->c >= J.written_seen);
      CHECK(ev->c <= J.counted);
      J.written_seen = ev->c;
      ack_covered(ev->c);
      return;
    case WSN_EV_CLOSED:
      J.conn_closed = 1;
      J.open = 0;
      forget_acks();
      return;
    case WSN_EV_TLS_ERROR:
    default:
      CHECK(!"unexpected event");
  }
}

/* JS takes the published batch, dispatches it and credits it back. */
static void js_deliver(void) {
  uint32_t releases = 0;
  wsn_buf_t b = wsn_loop_take_events(&J.loop, &releases);
  if (b.base == NULL) return;
  size_t off = 0;
  while (off < b.len) {
    const wsn_event_t *ev = (const wsn_event_t *)(b.base + off);
    const uint8_t *payload = (const uint8_t *)(ev + 1);
    off += wsn_event_size(ev);
    CHECK(off <= b.len);
    on_event(ev, payload);
  }
  /* The externals were wrapped and are collected with their Buffers. */
  wsn_batch_free_externals(&b);
  wsn_loop_credit(&J.loop, &b);
}

static void notify(void *ctx) {
  (void)ctx;
  if (!J.manual) js_deliver();
}

/* ---- invariants ---------------------------------------------------------- */

static size_t own_outbox_bytes(const wsn_conn_t *c, uint32_t *pongs) {
  size_t n = 0;
  *pongs = 0;
  for (const wsn_cmd_t *cmd = c->out_head; cmd; cmd = cmd->next) {
    if (cmd->flags & WSN_CMD_UNCOUNTED) n += sizeof(*cmd) + cmd->off + cmd->len;
    *pongs += cmd->pongs;
  }
  return n;
}

static void check_conn(void) {
  /* The one connection, whether or not JS knows its id yet. */
  wsn_conn_t *c = J.loop.conns;
  CHECK(c == NULL || c->next == NULL);
  /* bufferedAmount never negative. */
  if (c) CHECK(c->written <= J.counted);
  CHECK(J.written_seen <= J.counted);
  if (c == NULL) return;
  size_t chunk = P.max_read;
  /* The message being assembled: maxPayload, doubling growth. */
  if (J.max_payload)
    CHECK(c->msg.cap <= 2 * J.max_payload + 16384 + 256);
  /* Handshake bytes: a head (16 KiB at most), the early data cap, and one
   * read past either. */
  CHECK(c->hs.cap <= 2 * (WSN_HTTP_MAX_HEAD_BYTES + WSN_WAIT_JS_EARLY_MAX +
                          chunk) + 256);
  if (c->state == WSN_CS_WAIT_JS)
    CHECK(c->hs.len - c->hs_head_len <= WSN_WAIT_JS_EARLY_MAX + chunk);
  /* Fragment lengths: one per frame, at most maxFragments of them. */
  {
    size_t frames = c->limits.max_fragments ? c->limits.max_fragments
                                            : WSN_FRAG_LENS_MAX;
    if (frames > WSN_FRAG_LENS_MAX) frames = WSN_FRAG_LENS_MAX;
    CHECK(c->frag_lens.cap <= 2 * 4 * frames + 256);
  }
  /* Auto-pongs queued: maxPendingAutoPongs (one more ping terminates). */
  uint32_t pongs;
  size_t own = own_outbox_bytes(c, &pongs);
  CHECK(pongs == c->pending_pongs);
  if (c->limits.max_pending_pongs) {
    CHECK(c->pending_pongs <= c->limits.max_pending_pongs);
    CHECK(own <= (c->limits.max_pending_pongs + 1) * (sizeof(wsn_cmd_t) + 139) +
                     2048);
  }
  /* Events waiting for JS: the undelivered bound, overshot by at most one
   * read's events and one message. */
  wsn_slot_t *sl = wsn_slots_get(&J.loop.slots, c->id);
  CHECK(sl != NULL);
  uint64_t delivered = atomic_load(&sl->delivered);
  uint64_t events = atomic_load(&sl->delivered_events);
  uint64_t held = c->charged > delivered ? c->charged - delivered : 0;
  uint64_t held_events =
      c->charged_events > events ? c->charged_events - events : 0;
  /* A read's worth of frames (2 bytes each at least), or the early data a
   * handshake kept, parsed at once. */
  uint64_t per_read_events = (chunk + WSN_WAIT_JS_EARLY_MAX) / 2 + 8;
  if (J.max_payload)
    CHECK(held <= WSN_UNDELIVERED_MAX + per_read_events * 40 +
                      J.max_payload + 16384 + 512);
  if (c->limits.max_buffered_chunks)
    CHECK(held_events <= c->limits.max_buffered_chunks + per_read_events);
}

/* ---- one loop iteration ----------------------------------------------- */

/* The server's one connection arrives once it listens (at once, or after
 * its name was looked up; never if the listen failed). */
static void accept_one(void) {
  if (J.role != 0 || J.accepted || J.server_id == 0) return;
  wsn_server_t *s = wsn_slots_ptr(&J.loop.slots, J.server_id);
  fhandle_t *f = s ? fh_find(&s->tcp) : NULL;
  if (f == NULL || f->listen_cb == NULL || s->closing) return;
  J.accepted = 1;
  f->listen_cb((uv_stream_t *)&s->tcp, 0);
}

static void poll_phase(void) {
  if (R.pending) U.async_pending = 1; /* a lookup thread rang the bell */
  if (U.async_pending && U.async_cb) {
    U.async_pending = 0;
    U.async_cb(U.async);
  }
  accept_one();
  for (int i = 0; i < MAX_HANDLES; i++) {
    fhandle_t *f = &U.handles[i];
    if (f->h == NULL || f->closing) continue;
    if (f->creq) {
      uv_connect_t *r = f->creq;
      f->creq = NULL;
      int refuse = P.connect_fails || (R.first_refuses && R.connects == 0);
      R.connects++;
      f->connect_cb(r, refuse ? UV_ECONNREFUSED : 0);
      check_conn();
      continue;
    }
    if (!f->is_conn) continue;
    /* Reads: up to 32 per iteration, as libuv's stream read loop. */
    for (int n = 0; n < 32 && f->reading && !f->closing; n++) {
      uv_buf_t buf;
      size_t left = P.in.len - P.in_off;
      if (left == 0 && !P.eof && !P.reset) break;
      f->alloc_cb(f->h, 65536, &buf);
      CHECK(buf.base != NULL && buf.len > 0);
      if (left == 0) {
        int err = P.reset ? UV_ECONNRESET : UV_EOF;
        P.eof = P.reset = 0;
        f->reading = 0; /* libuv stops reading at EOF */
        f->read_cb((uv_stream_t *)f->h, err, &buf);
        check_conn();
        break;
      }
      size_t take = left < P.chunk ? left : P.chunk;
      if (take > buf.len) take = buf.len;
      if (take > P.max_read) P.max_read = take;
      memcpy(buf.base, P.in.base + P.in_off, take);
      P.in_off += take;
      f->read_cb((uv_stream_t *)f->h, (ssize_t)take, &buf);
      check_conn();
    }
    if (f->closing) continue;
    /* The async write moves as the peer takes bytes. */
    if (f->wreq) {
      size_t left = f->wdata.len - f->wdone;
      size_t take = left < P.avail ? left : P.avail;
      P.avail -= take;
      while (take) {
        /* Split at the records' boundaries, keeping each one's tag. */
        const tag_t *t = (const tag_t *)f->wtags.base;
        while (t->end <= f->wdone) t++;
        size_t piece = t->end - f->wdone < take ? t->end - f->wdone : take;
        wire_received(f->wdata.base + f->wdone, piece, t->own);
        f->wdone += piece;
        take -= piece;
      }
      if (f->wdone == f->wdata.len || P.write_error) {
        uv_write_t *r = f->wreq;
        f->wreq = NULL;
        f->wdata.len = 0;
        f->write_cb(r, P.write_error ? UV_EPIPE : 0);
        check_conn();
      }
    }
    if (!f->closing && f->sreq && f->wreq == NULL) {
      uv_shutdown_t *r = f->sreq;
      f->sreq = NULL;
      P.fin_seen = 1;
      f->shutdown_cb(r, 0);
      check_conn();
    }
  }
}

static void close_phase(void) {
  for (int i = 0; i < MAX_HANDLES; i++) {
    fhandle_t *f = &U.handles[i];
    if (f->h == NULL || !f->closing) continue;
    /* libuv cancels a closing stream's requests before its close cb. */
    if (f->wreq) {
      uv_write_t *r = f->wreq;
      f->wreq = NULL;
      f->write_cb(r, UV_ECANCELED);
    }
    if (f->sreq) {
      uv_shutdown_t *r = f->sreq;
      f->sreq = NULL;
      f->shutdown_cb(r, UV_ECANCELED);
    }
    if (f->creq) {
      uv_connect_t *r = f->creq;
      f->creq = NULL;
      f->connect_cb(r, UV_ECANCELED);
    }
    uv_close_cb cb = f->close_cb;
    uv_handle_t *h = f->h;
    wsn_buf_free(&f->wdata);
    wsn_buf_free(&f->wtags);
    memset(f, 0, sizeof(*f));
    if (cb) cb(h);
  }
}

static void iterate(void) {
  P.avail = P.window;
  if (U.timer_active && U.now >= U.timer_due) {
    if (U.timer_repeat) U.timer_due = U.now + U.timer_repeat;
    else U.timer_active = 0;
    U.timer_cb(U.timer);
    check_conn();
  }
  if (U.prepare_cb) U.prepare_cb(U.prepare);
  check_conn();
  poll_phase();
  if (U.check_cb) U.check_cb(U.check);
  check_conn();
  close_phase();
  check_conn();
}

/* ---- setup --------------------------------------------------------------- */

static const uint64_t payload_table[8] = {0, 1, 125, 126, 1000, 65535, 70000,
                                          1u << 20};
static const uint32_t pongs_table[4] = {0, 1, 3, 60};
static const uint32_t frags_table[4] = {0, 1, 4, 16384};
static const uint32_t chunks_table[4] = {0, 1, 8, 1024};
static const size_t size_table[16] = {1, 2, 3, 5, 7, 13, 32, 64, 100, 128,
                                      256, 512, 1024, 4096, 16384, 65536};
static const size_t window_table[16] = {
    SIZE_MAX, 0, 1, 2, 7, 16, 64, 128, 512, 1500, 4096, 16384, 65536,
    SIZE_MAX, SIZE_MAX, 3};

static void peer_send(const void *p, size_t n) {
  if (P.ended) return; /* nothing follows the peer's FIN */
  CHECK(wsn_buf_append(&P.in, p, n) == 0);
}

static const char *KEY = "dGhlIHNhbXBsZSBub25jZQ==";

static void peer_request(void) {
  char req[600];
  int n = snprintf(req, sizeof(req),
                   "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "%s%s%s\r\n",
                   KEY, J.pmd ? "Sec-WebSocket-Extensions: " : "",
                   J.pmd ? offer_value() : "", J.pmd ? "\r\n" : "");
  peer_send(req, (size_t)n);
}

static void peer_response(void) {
  char accept[WSN_ACCEPT_LEN + 1];
  wsn_handshake_accept(KEY, strlen(KEY), accept);
  accept[WSN_ACCEPT_LEN] = 0;
  static const char *ext[4] = {
      "permessage-deflate",
      "permessage-deflate; server_no_context_takeover",
      "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
      "permessage-deflate; server_max_window_bits=10"};
  char resp[600];
  int n = snprintf(resp, sizeof(resp),
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                   "%s%s%s\r\n",
                   accept, J.pmd ? "Sec-WebSocket-Extensions: " : "",
                   J.pmd ? ext[J.pmd_variant] : "", J.pmd ? "\r\n" : "");
  peer_send(resp, (size_t)n);
}

static void setup(const uint8_t c[6]) {
  J.role = c[0] & 3;
  J.is_server = J.role < 2;
  J.needs_js = (c[0] >> 2) & 1;
  J.pmd = (c[0] >> 3) & 1;
  J.raw_hs = (c[0] >> 4) & 1;
  J.no_auto_pong = (c[0] >> 5) & 1;
  J.skip_utf8 = (c[0] >> 6) & 1;
  J.manual = (c[0] >> 7) & 1;
  J.max_payload = payload_table[c[1] & 7];
  J.limits.max_pending_pongs = pongs_table[(c[1] >> 3) & 3];
  J.limits.max_fragments = frags_table[(c[1] >> 5) & 3];
  J.hs_timeout = (c[1] >> 7) & 1;
  J.limits.max_buffered_chunks = chunks_table[c[2] & 3];
  J.pmd_variant = (c[2] >> 2) & 3;
  P.chunk = size_table[(c[2] >> 4) & 15];
  P.window = window_table[c[3] & 15];
  P.connect_fails = (c[3] >> 4) & 1;
  J.verify_async = (c[3] >> 5) & 1;
  J.keep_raw = (c[3] >> 6) & 1;
  J.reject = (c[3] >> 7) & 1;
  F.fail_at = c[4];
  R.fail = (c[5] >> 1) & 1;
  R.first_refuses = (c[5] >> 2) & 1;
  J.by_name = c[5] & 1;
  J.listen_host = (c[5] >> 3) & 3;
  J.limits.idle_timeout_ms = ((c[5] >> 5) & 1) ? 1000 : 0;
  J.limits.send_pings = (c[5] >> 6) & 1;
  J.expect_close_code = -1;
  J.acks_tail = &J.acks;
  J.sent_tail = &J.sent;
  J.key = KEY;

  CHECK(wsn_loop_start(&J.loop, 0, &U.uv, notify, NULL) == 0);
  F.armed = 1;
  uint32_t flags = (J.no_auto_pong ? WSN_SERVER_NO_AUTO_PONG : 0) |
                   (J.skip_utf8 ? WSN_SERVER_SKIP_UTF8 : 0);

  if (J.role == 0) {
    /* A { port } server: C reads the request. */
    J.server_id = wsn_slots_alloc(&J.loop.slots);
    if (J.server_id == 0) return; /* binding.c throws: no id left */
    /* The listen address: one, every one, a name (looked up), IPv6. */
    static const char *hosts[4] = {"127.0.0.1", "", "localhost", "::1"};
    const char *host = hosts[J.listen_host], path[] = "/chat";
    size_t hl = strlen(host);
    wsn_cmd_t *cmd = cmd_new(WSN_CMD_LISTEN, J.server_id,
                                 sizeof(wsn_listen_args_t) + hl + 5);
    CHECK(cmd != NULL);
    wsn_listen_args_t a;
    memset(&a, 0, sizeof(a));
    a.settings.max_payload = J.max_payload;
    a.settings.flags = flags | (J.needs_js ? WSN_SERVER_NEEDS_JS : 0);
    a.settings.path_len = 5;
    a.settings.limits = J.limits;
    a.port = 8080;
    a.backlog = 511;
    a.host_len = (uint32_t)hl;
    a.handshake_timeout_ms = J.hs_timeout ? 1000 : 0;
    memcpy(cmd->data, &a, sizeof(a));
    memcpy(cmd->data + sizeof(a), host, hl);
    memcpy(cmd->data + sizeof(a) + hl, path, 5);
    push(cmd);
    if (!J.raw_hs) peer_request();
    accept_one();
  } else if (J.role == 1 || J.role == 2) {
    /* An upgrade Node's http server (or http.request) did. */
    J.conn_id = wsn_slots_alloc(&J.loop.slots);
    if (J.conn_id == 0) return; /* binding.c throws: no id left */
    J.conn_known = 1;
    J.open = 1;
    wsn_adopt_args_t a;
    memset(&a, 0, sizeof(a));
    a.max_payload = J.max_payload;
    a.fd = -1;
    a.flags = flags | (J.role == 2 ? WSN_ADOPT_CLIENT : 0);
    a.limits = J.limits;
    char resp[600] = "";
    size_t rlen = 0;
    if (J.pmd) {
      if (J.role == 1) {
        pmd_agree(&a.pmd, offer_value());
      } else {
        wsn_pmd_error_t err;
        a.pmd.opts = *pmd_opts();
        static const char *ans[4] = {
            "permessage-deflate", "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10"};
        if (wsn_pmd_accept_response(&a.pmd.opts, ans[J.pmd_variant],
                                    strlen(ans[J.pmd_variant]), &a.pmd.params,
                                    &err) == WSN_PMD_OK)
          a.pmd.enabled = 1;
      }
    }
    if (J.role == 1) {
      rlen = wsn_handshake_response_101(resp, sizeof(resp), KEY, strlen(KEY),
                                        NULL, 0, NULL, 0);
    }
    a.head_len = 0;
    a.response_len = (uint32_t)rlen;
    wsn_cmd_t *cmd = cmd_new(WSN_CMD_ADOPT, J.conn_id, sizeof(a) + rlen);
    CHECK(cmd != NULL);
    memcpy(cmd->data, &a, sizeof(a));
    memcpy(cmd->data + sizeof(a), resp, rlen);
    push(cmd);
    if (J.role == 2) W.stage = 2; /* no head precedes a client's frames */
  } else {
    /* new WebSocket('ws://127.0.0.1:8080/chat') */
    J.conn_id = wsn_slots_alloc(&J.loop.slots);
    if (J.conn_id == 0) return; /* binding.c throws: no id left */
    J.conn_known = 1;
    char req[600];
    char ext[120] = "";
    wsn_connect_args_t a;
    memset(&a, 0, sizeof(a));
    if (J.pmd) {
      a.pmd.opts = *pmd_opts();
      a.pmd.offered = 1;
      char v[100];
      CHECK(wsn_pmd_offer(&a.pmd.opts, v, sizeof(v)) > 0);
      snprintf(ext, sizeof(ext), "Sec-WebSocket-Extensions: %s\r\n", v);
    }
    int rn = snprintf(req, sizeof(req),
                      "GET /chat HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: %s\r\nConnection: Upgrade\r\n"
                      "Upgrade: websocket\r\n%sHost: 127.0.0.1:8080\r\n\r\n",
                      KEY, ext);
    /* Both 9 bytes: an address connects at once, a name is looked up. */
    const char *host = J.by_name ? "localhost" : "127.0.0.1";
    a.max_payload = J.max_payload;
    a.port = 8080;
    a.flags = (J.no_auto_pong ? WSN_CONN_NO_AUTO_PONG : 0) |
              (J.skip_utf8 ? WSN_CONN_SKIP_UTF8 : 0);
    a.host_len = 9;
    a.key_len = (uint32_t)strlen(KEY);
    a.request_len = (uint32_t)rn;
    a.limits = J.limits;
    wsn_cmd_t *cmd = cmd_new(WSN_CMD_CONNECT, J.conn_id,
                                 sizeof(a) + 9 + a.key_len + (size_t)rn);
    CHECK(cmd != NULL);
    uint8_t *d = cmd->data;
    memcpy(d, &a, sizeof(a));
    memcpy(d + sizeof(a), host, 9);
    memcpy(d + sizeof(a) + 9, KEY, a.key_len);
    memcpy(d + sizeof(a) + 9 + a.key_len, req, (size_t)rn);
    push(cmd);
    if (!J.raw_hs) peer_response();
  }
}

/* ---- the script ------------------------------------------------------------ */

typedef struct {
  const uint8_t *p;
  size_t n;
} in_t;

static int take(in_t *in) {
  if (in->n == 0) return -1;
  in->n--;
  return *in->p++;
}

/* Up to n bytes of input (fewer at the end), repeated to fill n. */
static void fill(in_t *in, uint8_t *out, size_t n) {
  size_t have = in->n < n ? in->n : n;
  if (have) memcpy(out, in->p, have);
  in->p += have;
  in->n -= have;
  for (size_t i = have; i < n; i++) out[i] = have ? out[i % have] : 'a';
}

static void deflate_payload(const uint8_t *p, size_t n, wsn_buf_t *out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  /* Speed over ratio: this is the peer, not the code under test. */
  CHECK(deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, -9, 1,
                     Z_DEFAULT_STRATEGY) == Z_OK);
  uint8_t tmp[4096];
  z.next_in = (uint8_t *)p;
  z.avail_in = (uInt)n;
  do {
    z.next_out = tmp;
    z.avail_out = sizeof(tmp);
    CHECK(deflate(&z, Z_SYNC_FLUSH) != Z_STREAM_ERROR);
    CHECK(wsn_buf_append(out, tmp, sizeof(tmp) - z.avail_out) == 0);
  } while (z.avail_out == 0);
  deflateEnd(&z);
  if (out->len >= 4) out->len -= 4; /* the 00 00 ff ff tail */
}

/* The peer sends one frame built from the script. */
static void peer_frame(in_t *in, int p) {
  static const uint8_t ops[8] = {0, 1, 2, 8, 9, 10, 3, 0xB};
  int b = take(in);
  if (b < 0) return;
  int opcode = ops[b & 7];
  int fin = !(b & 8);
  int rsv1 = (b & 16) != 0;
  int compress = (b & 32) != 0;
  int badmask = (b & 64) != 0;
  size_t len;
  if (b & 128) {
    int lo = take(in), hi = take(in);
    if (lo < 0 || hi < 0) return;
    len = (size_t)lo | ((size_t)hi << 8);
    if (p & 4) len *= 2; /* up to 128 KiB: past every maxPayload but 1 MiB */
  } else {
    int l = take(in);
    if (l < 0) return;
    len = (size_t)l;
  }
  uint8_t *payload = malloc(len ? len : 1);
  CHECK(payload != NULL);
  if (p & 2) {
    for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)('a' + i % 26);
  } else {
    fill(in, payload, len);
  }
  wsn_buf_t body = {0};
  if (compress) {
    deflate_payload(payload, len, &body);
    rsv1 = 1;
  } else if (len) {
    CHECK(wsn_buf_append(&body, payload, len) == 0);
  }
  free(payload);
  int masked = J.is_server != badmask;
  uint8_t mask[4] = {0x12, 0x34, (uint8_t)len, (uint8_t)b};
  uint8_t hdr[14];
  size_t h = wsn_frame_header(hdr, fin, rsv1, opcode, body.len,
                              masked ? mask : NULL);
  if (p & 1 && body.len < 65536) {
    /* The 64-bit length form for a short payload (legal, if odd). */
    hdr[1] = (uint8_t)((hdr[1] & 0x80) | 127);
    uint8_t ext[8] = {0, 0, 0, 0, 0, 0, (uint8_t)(body.len >> 8),
                      (uint8_t)body.len};
    uint8_t h2[14];
    memcpy(h2, hdr, 2);
    memcpy(h2 + 2, ext, 8);
    if (masked) memcpy(h2 + 10, mask, 4);
    memcpy(hdr, h2, 14);
    h = masked ? 14 : 10;
  }
  if (masked) wsn_frame_mask(body.base, body.len, mask, 0);
  peer_send(hdr, h);
  if (body.len) peer_send(body.base, body.len);
  wsn_buf_free(&body);
}

/* Topics (src/publish.c): JS subscribes its connection to topic "t" (only
 * a server's, and only while open, as lib/topics.js does) and publishes
 * to it through one PUBLISH command, the frame built as binding.c builds
 * it. The frame must then arrive as a send's would (compressed when
 * deflate was agreed and asked for), unless C skips the connection: a
 * closing one silently, one over maxBackpressure (0 here when the script
 * says: any byte buffered) with a DROPPED event. JS counts the frame for
 * a subscriber it believes open, and C writes off what it does not queue,
 * so bufferedAmount stays exact. */
static void js_subscribe(void) {
  if (!J.is_server || !J.open || J.conn_closed || J.close_sent) return;
  int sub = !J.subscribed;
  wsn_cmd_t *cmd = cmd_new(sub ? WSN_CMD_SUBSCRIBE : WSN_CMD_UNSUBSCRIBE,
                           J.conn_id, 1);
  CHECK(cmd != NULL);
  cmd->data[0] = 't';
  cmd->arg = 1; /* the hub */
  J.subscribed = sub;
  push(cmd);
}

static void js_publish(in_t *in) {
  int b = take(in), l = take(in);
  if (b < 0 || l < 0) return;
  size_t n = (size_t)l + ((size_t)(b >> 4) << 8);
  wsn_publish_args_t a;
  memset(&a, 0, sizeof(a));
  size_t at = sizeof(a) + 1 + 14;
  wsn_cmd_t *cmd = cmd_new(WSN_CMD_PUBLISH, (b & 8) ? J.conn_id : 0, at + n);
  CHECK(cmd != NULL);
  cmd->data[sizeof(a)] = 't';
  fill(in, cmd->data + at, n);
  int opcode = (b & 1) ? WSN_OP_BINARY : WSN_OP_TEXT;
  size_t h = wsn_frame_header_size(n, 0);
  wsn_frame_header(cmd->data + at - h, 1, 0, opcode, n, NULL);
  a.hub = 1;
  a.topic_len = 1;
  a.max_backpressure = (b & 4) ? 0 : UINT64_MAX;
  a.flags = ((b & 1) ? WSN_PUB_BINARY : 0) | ((b & 2) ? WSN_PUB_COMPRESS : 0);
  a.counted = h + n;
  a.header_len = (uint32_t)h;
  memcpy(cmd->data, &a, sizeof(a));
  cmd->off = at - h;
  cmd->len = h + n;
  /* The subscriber's side of it (not the publisher: ws.publish skips it). */
  if (J.subscribed && !J.conn_closed && !(b & 8)) {
    J.counted += a.counted;
    wsn_conn_t *c = the_conn();
    if (c && c->state == WSN_CS_OPEN && !c->close_sent && !c->shut) {
      if (wsn_outbox_buffered(c) <= a.max_backpressure)
        expect_sent((uint8_t)opcode, (b & 2) && c->pmd, cmd->data + at, n);
    }
  }
  push(cmd);
}

static void js_send(in_t *in) {
  int b = take(in), l = take(in);
  if (b < 0 || l < 0) return;
  size_t len = (size_t)l + ((size_t)(b >> 4) << 8);
  uint8_t *p = malloc(len ? len : 1);
  CHECK(p != NULL);
  fill(in, p, len);
  int opcode = (b & 1) ? WSN_OP_BINARY : WSN_OP_TEXT;
  if ((b & 2) && J.pmd) js_send_compressed(opcode, p, len, b & 4);
  else if ((b & 8) && J.is_server) js_send_external(opcode, p, len, b & 4);
  else js_frame(WSN_CMD_SEND, opcode, p, len, b & 4);
  free(p);
}

static void js_settings(in_t *in) {
  int b = take(in);
  if (b < 0 || J.server_id == 0 || J.server_closed) return;
  const char path[] = "/chat";
  wsn_cmd_t *cmd = cmd_new(WSN_CMD_SERVER_SETTINGS, J.server_id,
                               sizeof(wsn_server_settings_t) + 5);
  CHECK(cmd != NULL);
  wsn_server_settings_t st;
  memset(&st, 0, sizeof(st));
  st.max_payload = J.max_payload;
  st.flags = (J.no_auto_pong ? WSN_SERVER_NO_AUTO_PONG : 0) |
             (J.skip_utf8 ? WSN_SERVER_SKIP_UTF8 : 0) |
             (J.needs_js ? WSN_SERVER_NEEDS_JS : 0);
  st.path_len = (b & 1) ? 5 : 0;
  st.limits = J.limits;
  memcpy(cmd->data, &st, sizeof(st));
  memcpy(cmd->data + sizeof(st), path, 5);
  push(cmd);
}

static void run_script(in_t *in) {
  int op;
  while ((op = take(in)) >= 0 && !J.stopped) {
    int p = op >> 4;
    trace("op %d, p %d\n", op & 15, p);
    switch (op & 15) {
      case 0: { /* the peer sends raw bytes */
        int n = take(in);
        if (n < 0) return;
        uint8_t buf[256];
        fill(in, buf, (size_t)n + 1);
        peer_send(buf, (size_t)n + 1);
        break;
      }
      case 1:
        peer_frame(in, p);
        break;
      case 2:
        P.window = window_table[p];
        break;
      case 3:
        if (p & 2) {
          P.write_error = 1;
        } else if (!P.ended) {
          if (p & 1) P.reset = 1;
          else P.eof = 1;
          P.ended = 1;
        }
        break;
      case 4:
        js_send(in);
        break;
      case 5: {
        int l = take(in);
        if (l < 0) return;
        uint8_t buf[125];
        size_t n = (size_t)l % 126;
        fill(in, buf, n);
        js_frame(WSN_CMD_SEND, (p & 1) ? WSN_OP_PONG : WSN_OP_PING, buf, n,
                 p & 2);
        break;
      }
      case 6: {
        static const int codes[16] = {1000, 1001, -1,   1011, 3000, 4999,
                                      1002, 1003, 1007, 1008, 1009, 1010,
                                      1012, 1013, 1014, 4000};
        int l = take(in);
        if (l < 0) return;
        uint8_t buf[123];
        size_t n = (size_t)l % 124;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)('A' + i % 26);
        js_close(codes[p], buf, codes[p] < 0 ? 0 : n);
        break;
      }
      case 7:
        js_simple(WSN_CMD_TERMINATE);
        break;
      case 8:
        js_simple((p & 1) ? WSN_CMD_RESUME : WSN_CMD_PAUSE);
        break;
      case 9:
        js_deliver();
        break;
      case 10:
        for (int i = 0; i <= p; i++) iterate();
        break;
      case 11:
        U.now += (uint64_t)(p + 1) * 100;
        iterate();
        break;
      case 12:
        js_answer_handshake(p & 1, pending_head, pending_head_len);
        break;
      case 13:
        if ((p & 3) == 0 && J.server_id && !J.server_closed) {
          wsn_cmd_t *cmd = cmd_new(WSN_CMD_SERVER_CLOSE, J.server_id, 0);
          CHECK(cmd != NULL);
          push(cmd);
        } else if ((p & 3) == 1) {
          js_settings(in);
        } else if (p == 14) {
          js_subscribe();
        } else if (p == 15) {
          js_publish(in);
        } else if (J.conn_id && !J.conn_closed) {
          wsn_cmd_t *cmd = cmd_new(WSN_CMD_SOCKOPT, J.conn_id, 0);
          CHECK(cmd != NULL);
          cmd->flags = (p >> 2) + 1;
          cmd->arg = p & 1;
          push(cmd);
        }
        break;
      case 14:
        P.chunk = size_table[p];
        break;
      case 15:
        for (int i = 0; i < 8; i++) iterate();
        break;
    }
    check_conn();
  }
}

/* Every auto-pong answered a ping the connection reported, with its
 * payload, in order (pings after our close frame, or past
 * maxPendingAutoPongs, go unanswered). */
static void check_pongs(void) {
  size_t i = 0, j = 0;
  while (j < J.pongs.len) {
    size_t pn = J.pongs.base[j];
    while (i < J.pings.len &&
           !(J.pings.base[i] == pn &&
             memcmp(J.pings.base + i + 1, J.pongs.base + j + 1, pn) == 0))
      i += 1 + J.pings.base[i];
    CHECK(i < J.pings.len); /* a pong nobody asked for */
    i += 1 + pn;
    j += 1 + pn;
  }
}

static int stopped_flag;
static void on_stopped(void *arg) {
  (void)arg;
  stopped_flag = 1;
}

/* Everything written, JS caught up: bufferedAmount is back to 0 and every
 * send callback has had its WRITTEN. */
static void check_quiet(void) {
  /* What the last dispatch sent was written after the last publish: let JS
   * see those events too. */
  for (int i = 0; i < 4 && J.loop.batch.len != 0; i++)
    U.prepare_cb(U.prepare);
  wsn_conn_t *c = the_conn();
  if (c == NULL || c->state != WSN_CS_OPEN) return;
  if (c->out_head || c->wreq) return;
  CHECK(c->written == J.counted);
  CHECK(J.written_seen == J.counted || J.acks == NULL);
  CHECK(J.acks == NULL);
}

static void finish(void) {
  /* The peer reads everything; JS takes every event. */
  J.manual = 0;
  P.window = SIZE_MAX;
  P.chunk = 65536;
  P.write_error = 0;
  js_deliver();
  for (int i = 0; i < 6; i++) iterate();
  check_quiet();
  /* Then JS lets go of everything. */
  js_simple(WSN_CMD_TERMINATE);
  if (J.server_id && !J.server_closed) {
    wsn_cmd_t *cmd = cmd_new(WSN_CMD_SERVER_CLOSE, J.server_id, 0);
    CHECK(cmd != NULL);
    push(cmd);
  }
  for (int i = 0; i < 3; i++) iterate();
  check_pongs();
  /* A closed connection gave every external payload back (unless an
   * allocation failure lost the RELEASE event). */
  if (J.conn_closed && (F.fail_at == 0 || F.count < F.fail_at))
    CHECK(tokens.len == 0);
  /* A terminated connection is gone, and JS heard of it. */
  if (J.terminated) CHECK(J.conn_closed && the_conn() == NULL);
  stopped_flag = 0;
  wsn_loop_stop_main(&J.loop, on_stopped, NULL);
  for (int i = 0; i < 4 && !stopped_flag; i++) close_phase();
  CHECK(stopped_flag);
  wsn_loop_destroy(&J.loop);
  /* What is still referenced goes with the JS environment. */
  token_t **v = (token_t **)tokens.base;
  for (size_t i = 0; i < tokens.len / sizeof(*v); i++) free(v[i]);
  wsn_buf_free(&tokens);
  for (int i = 0; i < MAX_HANDLES; i++) CHECK(U.handles[i].h == NULL);
}

static void reset_all(void) {
  memset(&U, 0, sizeof(U));
  memset(&P, 0, sizeof(P));
  memset(&W, 0, sizeof(W));
  memset(&J, 0, sizeof(J));
  memset(&F, 0, sizeof(F));
  memset(&R, 0, sizeof(R));
  pending_head_len = 0;
}

static void free_all(void) {
  forget_sent();
  ack_covered(UINT64_MAX);
  wsn_buf_free(&P.in);
  wsn_buf_free(&J.pings);
  wsn_buf_free(&J.pongs);
  wsn_buf_free(&W.bytes);
  wsn_buf_free(&W.tags);
  wsn_buf_free(&W.msg);
  wsn_buf_free(&W.ctrl);
  if (W.inf_ready) inflateEnd(&W.inf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6) return 0;
  reset_all();
  setup(data);
  in_t in = {data + 6, size - 6};
  iterate();
  run_script(&in);
  finish();
  free_all();
  return 0;
}
