/*
 * The I/O loop: owns a uv_loop_t (its own thread's, or Node's main loop in
 * main-loop mode), the listening sockets and the connections. It drains
 * commands from JS, runs the connections, and posts events for JS in one
 * batch per loop iteration. Knows nothing of N-API: binding.c supplies a
 * `notify` function that is called when the published batch goes from empty
 * to non-empty (DESIGN.md "The two threads").
 */
#ifndef WSN_LOOP_H
#define WSN_LOOP_H

#include <string.h>
#include <uv.h>
#include "buf.h"
#include "deflate.h"
#include "rand.h"
#include "slots.h"

/* ---- Commands: JS -> loop ------------------------------------------- */

typedef enum {
  WSN_CMD_SEND = 1,     /* data[off..off+len) is a complete frame */
  WSN_CMD_CLOSE,        /* a close frame: as SEND, then the close rules */
  WSN_CMD_TERMINATE,    /* destroy the socket now */
  WSN_CMD_PAUSE,
  WSN_CMD_RESUME,
  WSN_CMD_LISTEN,       /* data: wsn_listen_args_t */
  WSN_CMD_SERVER_CLOSE,
  WSN_CMD_SERVER_SETTINGS, /* data: wsn_server_settings_t + path */
  WSN_CMD_CONNECT,      /* data: wsn_connect_args_t + host + request */
  WSN_CMD_ACCEPT,       /* data: wsn_pmd_setup_t, then the 101 JS built */
  WSN_CMD_REJECT,       /* data: the error response; then close */
  WSN_CMD_CREDIT,       /* JS credited a throttled connection: re-check */
  WSN_CMD_ADOPT,        /* data: wsn_adopt_args_t + head + response */
  WSN_CMD_STOP,
  WSN_CMD_SOCKOPT,      /* flags: WSN_SOCKOPT_*; arg: the value (below) */
  WSN_CMD_SUBSCRIBE,    /* arg: the hub; data: the topic (docs/topics.md) */
  WSN_CMD_UNSUBSCRIBE,  /* as SUBSCRIBE */
  WSN_CMD_PUBLISH       /* id: the publisher to skip (0: none); data:
                         * wsn_publish_args_t, the topic, then the frame
                         * data[off..off+len) as JS built it, uncompressed */
} wsn_cmd_type_t;

/* What a SOCKOPT command sets on a connection's socket (net.Socket's
 * setKeepAlive, setNoDelay, ref/unref). arg bit 0: on/off; KEEPALIVE also
 * carries the initial delay in seconds in arg >> 1. */
#define WSN_SOCKOPT_KEEPALIVE 1u
#define WSN_SOCKOPT_NODELAY 2u
#define WSN_SOCKOPT_REF 3u

/* Flags of SEND/CLOSE commands. */
#define WSN_SEND_WANT_ACK 1u /* report WRITTEN once these bytes are out */
#define WSN_CMD_HANDSHAKE_BYTES 2u /* HTTP bytes: not counted as written */
/* A frame C made itself (an auto-pong): JS never
 * counted it, so it is never reported as written (bufferedAmount and send
 * callbacks stay exact). */
#define WSN_CMD_OWN_FRAME 64u
#define WSN_CMD_UNCOUNTED (WSN_CMD_HANDSHAKE_BYTES | WSN_CMD_OWN_FRAME)
/* SEND: data[off..off+len) is a bare payload to compress on the loop
 * thread; the frame's opcode and FIN are in the flags below. `arg` is the
 * size JS counted for it (bufferedAmount), written off when the compressed
 * frame has left whole. */
#define WSN_SEND_COMPRESS 4u
/* Counted as `arg` bytes written once the record has left whole (a
 * compressed frame, or TLS records carrying several plaintext frames). */
#define WSN_CMD_ACCOUNTED 32u
#define WSN_SEND_FIN 8u
/* SEND: the payload is not in the record but in memory JS owns (a large
 * Buffer a server sends as it is, unmasked: ws hands the caller's Buffer to
 * socket.write uncopied too), kept alive by a reference until the bytes are
 * written. `data` holds a wsn_cmd_ext_t, and the frame's header is
 * data[off .. off + len - ext.len). Freed with wsn_cmd_free, which gives
 * the reference back (a RELEASE event). */
#define WSN_CMD_EXTERNAL 128u
/* An outbox record whose bytes are shared with other connections' (one
 * publish's frame, built once): `data` holds a wsn_shared_t pointer
 * (topics.h) and the frame is its data[off..off+len). wsn_cmd_free drops
 * the reference. */
#define WSN_CMD_SHARED 256u
/* binding.c sends payloads at least this large that way. */
#define WSN_SEND_EXTERNAL_MIN (64 * 1024)
#define WSN_SEND_OPCODE_SHIFT 16
/* A record of the loop's recycled size (WSN_CMD_POOL_CAP bytes of data,
 * wsn_loop_cmd_small): wsn_cmd_free keeps it for reuse instead of freeing
 * it. Any other free() of it is still right: it is an ordinary block. */
#define WSN_CMD_POOLED 512u
#define WSN_CMD_POOL_CAP 112

/* A publish (WSN_CMD_PUBLISH). Every subscriber but the publisher gets
 * the frame; JS counted `counted` bytes for each (its bufferedAmount), which
 * C writes off for a subscriber it skips. */
typedef struct {
  uint32_t hub;            /* the WebSocketServer whose topic this is */
  uint32_t topic_len;      /* the topic follows this struct */
  uint64_t max_backpressure; /* skip (or close) a subscriber with more
                              * buffered bytes than this */
  uint64_t threshold;      /* permessage-deflate threshold (see
                            * wsn_pmd_should_compress) */
  uint64_t counted;        /* the uncompressed frame's size */
  uint32_t flags;          /* WSN_PUB_* */
  uint32_t header_len;     /* the frame's header; its payload follows */
} wsn_publish_args_t;

#define WSN_PUB_BINARY 1u
#define WSN_PUB_COMPRESS 2u       /* compress for subscribers that agreed */
#define WSN_PUB_CLOSE_ON_LIMIT 4u /* close a subscriber past the limit */

/* permessage-deflate for a connection: what was agreed (or, for a client
 * the loop connects, what was offered: `offered`), and the options. */
typedef struct {
  wsn_pmd_options_t opts;
  wsn_pmd_params_t params;
  uint32_t enabled;  /* params hold an agreement */
  uint32_t offered;  /* client: check the 101's answer against opts */
} wsn_pmd_setup_t;

typedef struct wsn_cmd_s {
  struct wsn_cmd_s *next;
  wsn_id_t id;       /* connection or server */
  uint16_t type;
  uint16_t pongs;    /* auto-pongs this record carries (maxPendingAutoPongs) */
  uint32_t flags;
  uint64_t arg;
  size_t off;        /* frame start within data */
  size_t len;        /* bytes from off */
  uint8_t data[];
} wsn_cmd_t;

/* Allocates a command with `cap` bytes of data (off = 0, len = cap). */
wsn_cmd_t *wsn_cmd_new(uint32_t type, wsn_id_t id, size_t cap);

typedef struct {
  const uint8_t *base; /* the payload, in JS's memory */
  size_t len;
  void *ref;           /* what keeps it alive (binding.c: a napi_ref) */
} wsn_cmd_ext_t;

/* The external payload of a WSN_CMD_EXTERNAL record. */
static inline wsn_cmd_ext_t wsn_cmd_ext(const wsn_cmd_t *cmd) {
  wsn_cmd_ext_t x;
  memcpy(&x, cmd->data, sizeof(x));
  return x;
}

/* Loop thread: frees a record; an external payload's reference goes back
 * to JS with a RELEASE event (a stopping loop posts none: the reference
 * then goes with the JS environment). */
struct wsn_loop_s;
void wsn_cmd_free(struct wsn_loop_s *l, wsn_cmd_t *cmd);

/* JS thread: a record for `cap` <= WSN_CMD_POOL_CAP bytes, from `*spares`
 * (the caller's private list, refilled from the loop's recycled records)
 * or malloc; larger ones as wsn_cmd_new. wsn_loop_spares_free frees such a
 * private list. */
wsn_cmd_t *wsn_loop_cmd_small(struct wsn_loop_s *l, wsn_cmd_t **spares,
                              uint32_t type, wsn_id_t id, size_t cap);
void wsn_loop_spares_free(wsn_cmd_t *spares);

/* ws 8.23.1's per-connection limits on what a peer can make us hold; 0
 * turns one off (ws reads them with `| 0` and tests `> 0`). */
typedef struct {
  uint32_t max_pending_pongs;   /* maxPendingAutoPongs: auto-pongs not yet
                                 * written; one more ping terminates */
  uint32_t max_fragments;       /* maxFragments: frames of one message */
  uint32_t max_buffered_chunks; /* maxBufferedChunks: event records waiting
                                 * for JS (see conn.c throttle) */
  /* ws-native's heartbeat (src/heartbeat.c): idleTimeout in ms (0: off),
   * and sendPings (ping at half of it before closing at all of it). */
  uint32_t idle_timeout_ms;
  uint32_t send_pings;
} wsn_limits_t;

/* What a `{ port }` server applies to its next handshakes: JS sends it
 * again whenever an option ws reads lazily changes. The path follows. */
typedef struct {
  uint64_t max_payload;
  uint32_t flags;        /* WSN_SERVER_* */
  uint32_t path_len;     /* 0: any path */
  wsn_limits_t limits;
} wsn_server_settings_t;

typedef struct {
  wsn_server_settings_t settings;
  uint32_t port;
  int32_t backlog;
  uint32_t host_len;     /* host follows, then path (settings.path_len) */
  uint32_t handshake_timeout_ms; /* 0: none */
  void *tls;             /* a wsn_tls_ctx_t (server): the command holds a
                          * reference, which the server takes (NULL: no TLS) */
} wsn_listen_args_t;

#define WSN_SERVER_NEEDS_JS 1u     /* handshakes go to JS for a decision */
#define WSN_SERVER_NO_AUTO_PONG 2u
#define WSN_SERVER_SKIP_UTF8 4u
#define WSN_ADOPT_CLIENT 8u        /* adopt: we are the client side */

typedef struct {
  uint64_t max_payload;
  uint32_t port;
  uint32_t flags;        /* WSN_CONN_* */
  uint32_t host_len;     /* host follows, then key, then the request */
  uint32_t key_len;
  uint32_t request_len;
  wsn_pmd_setup_t pmd;   /* offered: the 101 may agree to compression */
  wsn_limits_t limits;
  void *tls;             /* wss://: a wsn_tls_session_t (the conn owns it) */
} wsn_connect_args_t;

/* A socket whose handshake JS did (a Node http server's upgrade): the fd
 * (already duplicated for us) is opened on the loop, `head` (bytes Node read
 * past the request) is parsed first, and `response` (the 101) is written
 * before any frame. Flags are WSN_SERVER_*. */
typedef struct {
  uint64_t max_payload;
  int32_t fd;
  uint32_t flags;
  uint32_t head_len;     /* head follows, then response */
  uint32_t response_len;
  wsn_pmd_setup_t pmd;
  wsn_limits_t limits;
} wsn_adopt_args_t;

#define WSN_CONN_NO_AUTO_PONG 1u
#define WSN_CONN_SKIP_UTF8 2u

/* ---- Events: loop -> JS --------------------------------------------- */

typedef enum {
  WSN_EV_LISTENING = 1, /* a=port, b=family(4|6); payload: address */
  WSN_EV_LISTEN_ERROR,  /* a=uv error (int32); payload: syscall */
  WSN_EV_SERVER_CLOSED,
  WSN_EV_CONNECTION,    /* b=server slot, c=server id; payload: see server.c */
  WSN_EV_HANDSHAKE,     /* like CONNECTION; JS answers ACCEPT or REJECT */
  WSN_EV_OPEN,          /* client: a=check result, b=head length; payload:
                         * the parsed head (wsn_http_encode_response), then
                         * any body bytes; not HTTP: the bytes as they came */
  WSN_EV_MESSAGE,       /* a=flags (WSN_MSG_*); payload or external */
  WSN_EV_PING,
  WSN_EV_PONG,
  WSN_EV_CLOSE_FRAME,   /* a=code; payload: reason */
  WSN_EV_ERROR,         /* a=WSN_E_* id, b=arg */
  WSN_EV_SOCKET_ERROR,  /* a=uv error; payload: "syscall\0address\0port" */
  WSN_EV_CLOSED,        /* the socket is gone and the id is dead */
  WSN_EV_WRITTEN,       /* c=cumulative bytes written */
  WSN_EV_DATA,          /* raw bytes (the body of a non-101 response) */
  WSN_EV_TLS_ERROR,     /* payload: "code\0message" as Node words them */
  WSN_EV_FRAGMENTS,     /* before a fragmented binary MESSAGE: the frames'
                         * lengths (uint32 each), for binaryType 'fragments' */
  WSN_EV_ADDRESS,       /* client, before OPEN: "remote addr\0port\0family\0
                         * local addr\0port\0family\0" (ws._socket) */
  WSN_EV_RELEASE,       /* id 0; c = the reference of an external payload
                         * that is written (or dropped): binding.c lets go */
  WSN_EV_TLS_CLIENT_ERROR, /* id: the server; a TLS listener's connection
                         * failed before JS knew it (a bad handshake):
                         * payload "code\0message\0" + remote address as
                         * wsn_conn_append_addr writes it */
  WSN_EV_DROPPED        /* id 0; a publish skipped subscribers: a=flags
                         * (WSN_PUB_BINARY), b=topic length, c=count;
                         * payload: count ids (uint64 LE), topic, data */
} wsn_event_type_t;

#define WSN_MSG_BINARY 1u
#define WSN_MSG_EXTERNAL 2u /* payload is a malloc'd block: c=pointer */

/* One event record; payload bytes follow, padded to 8. 32 bytes. */
typedef struct {
  uint32_t type;
  uint32_t slot;
  uint32_t gen;
  uint32_t len;  /* payload bytes (or external length) */
  uint32_t a;
  uint32_t b;
  uint64_t c;
} wsn_event_t;

#define WSN_EVENT_ALIGN(n) (((n) + 7u) & ~(size_t)7u)
/* What an event record costs in a connection's undelivered bound: the
 * record itself plus its payload (inline or external), so that zero-length
 * events (empty pings, say) cannot pile up for free. */
#define WSN_EVENT_COST(ev)                                                   \
  (sizeof(wsn_event_t) + WSN_EVENT_ALIGN((size_t)(ev)->len))
/* The bytes a record takes in a batch: its payload is inline, except an
 * external message's (a pointer in `c`). Every walk of a batch steps so. */
static inline size_t wsn_event_size(const wsn_event_t *ev) {
  return sizeof(*ev) + ((ev->type == WSN_EV_MESSAGE && (ev->a & WSN_MSG_EXTERNAL))
                            ? 0
                            : WSN_EVENT_ALIGN((size_t)ev->len));
}

/* Payloads at least this large are handed over without a copy. */
#ifndef WSN_EXTERNAL_MIN
#define WSN_EXTERNAL_MIN (64 * 1024)
#endif

/* ---- The loop ------------------------------------------------------- */

typedef struct wsn_conn_s wsn_conn_t;
typedef struct wsn_server_s wsn_server_t;
typedef void (*wsn_notify_cb)(void *ctx);

typedef struct wsn_loop_s {
  uv_loop_t *uv;
  uv_loop_t own_loop;     /* used in thread mode */
  int threaded;
  uv_thread_t thread;
  uv_async_t wake;        /* commands arrived */
  uv_check_t check;       /* end of an iteration: flush writes, publish */
  uv_prepare_t prepare;   /* before blocking: publish what close cbs posted */
  uv_timer_t sweep;       /* expires handshakes that take too long, and
                           * runs the heartbeat (idleTimeout) */
  uint64_t sweep_ms;      /* its period while it runs (0: stopped) */
  int handles_open;       /* wake/check initialised */
  /* Name lookups (lazy; shut down by stop_all, never waited for). */
  struct wsn_resolver_s *resolver;

  wsn_slots_t slots;
  struct wsn_topics_s *topics; /* loop thread: the topic index (lazy; freed
                                * when its last topic empties) */
  /* PUBLISH commands given to the loop and not yet run: binding.c adds,
   * the loop subtracts; in thread mode JS waits past a bound so that a
   * publisher faster than the fan-out cannot grow the queue without end. */
  _Atomic uint32_t pub_pending;

  /* Command queue (both threads; mu). */
  uv_mutex_t cmd_mu;
  wsn_cmd_t *cmd_head, *cmd_tail;
  /* Small records written and done with, for JS's next sends (an echo's
   * frame would otherwise cost a malloc on one thread and a free on the
   * other per message). The loop keeps them in `spare_local` and hands
   * them to `spare_shared` (cmd_mu) when it drains commands; JS takes
   * that list whole. Each list is bounded (WSN_CMD_SPARE_MAX). */
  wsn_cmd_t *spare_local, *spare_local_tail;
  uint32_t spare_local_n;
  wsn_cmd_t *spare_shared;
  _Atomic uint32_t spare_shared_n;

  /* Events: `batch` is private to the loop; `published` is shared (ev_mu)
   * and taken whole by JS. `spare` is a returned batch kept for reuse. */
  wsn_buf_t batch;
  uv_mutex_t ev_mu;
  wsn_buf_t published;
  wsn_buf_t spare;        /* loop thread: a batch buffer for reuse */
  wsn_buf_t returned;     /* ev_mu: a batch JS is done with */
  uint32_t batch_releases;     /* RELEASE events in `batch` */
  uint32_t published_releases; /* ev_mu: and in `published` */
  wsn_notify_cb notify;
  void *notify_ctx;

  /* Loop-thread state. */
  uint8_t *read_buf;      /* one receive buffer shared by every socket */
  wsn_buf_t tls_plain;    /* decrypted bytes of the read being processed */
  int reading;            /* read_buf is lent to a read callback */
  wsn_conn_t *dirty;      /* connections with frames to write */
  int stopping;
  int live_handles;       /* servers + connections open */
  wsn_conn_t *conns;      /* every connection (for stop) */
  /* Closed connections whose CLOSED event could not be posted (out of
   * memory): JS must hear of every close, so it is posted again before
   * each publish, and the struct is freed once it is. */
  wsn_conn_t *unreported;
  wsn_server_t *servers;  /* every server (for stop) */
  wsn_rand_pool_t rand;   /* masks for frames built on this thread */
  wsn_cmd_t *stop_cmd;    /* preallocated, so stopping cannot fail */
  int pending_closes;     /* while stopping: close callbacks still due */
  void (*stop_done)(void *);
  void *stop_done_arg;
  uv_sem_t started;
} wsn_loop_t;

#define WSN_READ_BUF_SIZE (256 * 1024)

/* Creates the loop. threaded=1: starts its own thread with its own uv loop;
 * threaded=0: runs on `node_loop` (the caller's thread). */
int wsn_loop_start(wsn_loop_t *l, int threaded, uv_loop_t *node_loop,
                   wsn_notify_cb notify, void *notify_ctx);

/* Any thread: queues a command and wakes the loop if the queue was empty. */
void wsn_loop_push(wsn_loop_t *l, wsn_cmd_t *cmd);

/* Any thread: queues a list of commands (linked by `next`, in order) with
 * one lock, waking the loop if its queue was empty. Main-loop mode runs
 * them at once, as wsn_loop_push does. */
void wsn_loop_push_list(wsn_loop_t *l, wsn_cmd_t *head, wsn_cmd_t *tail);

/* JS thread: takes the whole published batch (empty if none), and how
 * many RELEASE events it holds. */
wsn_buf_t wsn_loop_take_events(wsn_loop_t *l, uint32_t *releases);

/* JS thread, once a taken batch was dispatched: credits every connection
 * with what its events were charged (slots' `delivered`), wakes the loop
 * only for a connection that stopped reading for lack of credit, and gives
 * the batch's memory back for reuse (kept or freed: the caller must not use
 * it again). No command per batch. */
void wsn_loop_credit(wsn_loop_t *l, wsn_buf_t *batch);

/*
 * Stops the loop: thread mode joins the thread after every handle closed.
 * Main-loop mode closes the handles; `done` is called from the last close
 * callback (may be synchronous if nothing is open).
 */
void wsn_loop_stop_threaded(wsn_loop_t *l);
void wsn_loop_stop_main(wsn_loop_t *l, void (*done)(void *), void *arg);
/* Frees what is left (queues, batches) after a stop. */
void wsn_loop_destroy(wsn_loop_t *l);

/* Loop thread helpers used by the connection layer. */
wsn_event_t *wsn_loop_post(wsn_loop_t *l, uint32_t type, wsn_id_t id,
                           const void *payload, size_t len);
/* A connection started a handshake that must end within timeout_ms. */
void wsn_loop_watch_handshake(wsn_loop_t *l, uint32_t timeout_ms);
/* An open connection has an idle timeout of timeout_ms (heartbeat.c): the
 * sweep runs, at least as often as that timeout needs, while any has. */
void wsn_loop_watch_idle(wsn_loop_t *l, uint32_t timeout_ms);
/* The loop's resolver (created on first use; NULL when out of memory or
 * stopping). Its finished lookups are drained by the wake handle. */
struct wsn_resolver_s *wsn_loop_resolver(wsn_loop_t *l);
/* A handle of ours finished closing (counts down a stop). */
void wsn_loop_closed_one(wsn_loop_t *l);
/* Frees the external payloads of a batch that will never reach JS. */
void wsn_batch_free_externals(wsn_buf_t *b);

/* ---- The connection layer ------------------------------------------- */

/* What the loop asks of the layer above it (conn.c, outbox.c, server.c,
 * client.c; their own header is conn.h). The loop knows connections and
 * servers only as these calls and as opaque list heads in wsn_loop_t: it
 * never reads their fields, so conn.h depends on loop.h and not back. */

/* Runs a command (every type but STOP); takes ownership of cmd. */
void wsn_conns_command(wsn_loop_t *l, wsn_cmd_t *cmd);
/* Writes every connection that has something queued (once per phase). */
void wsn_conns_flush(wsn_loop_t *l);
/* Posts the CLOSED events that found no memory when their connections
 * closed (see `unreported`); with `discard`, frees them (loop destroyed). */
void wsn_conns_report_closed(wsn_loop_t *l, int discard);
/* Answers 408 to server handshakes past their deadline; returns how many
 * handshakes are still being read. */
size_t wsn_conns_expire(wsn_loop_t *l, uint64_t now);
/* The heartbeat's sweep (heartbeat.c): pings connections idle for half
 * their idleTimeout and terminates those idle for all of it; returns the
 * shortest idleTimeout (ms) among the open connections that have one, 0 if
 * none has. */
uint32_t wsn_conns_heartbeat(wsn_loop_t *l, uint64_t now);
/* Stopping: closes every connection and listener; returns how many close
 * callbacks are due (each calls wsn_loop_closed_one). */
int wsn_conns_stop(wsn_loop_t *l);

#endif /* WSN_LOOP_H */
