/*
 * The connection layer, on the loop thread: one connection's state machine
 * (handshaking, open, closing, closed) and the servers that accept them.
 * Read path: bytes -> (handshake | frames) -> events. Write path: an outbox
 * of command records written with one writev per loop iteration (corking);
 * only the unwritten tail waits for the kernel.
 *
 * Its files, by concern: conn.c (a connection's life, reading, commands),
 * outbox.c (writing), server.c (listening, accepting, the server
 * handshake), client.c (connecting, the client handshake). This header is
 * theirs; the loop calls the layer only through loop.h's wsn_conns_*.
 */
#ifndef WSN_CONN_H
#define WSN_CONN_H

#include <uv.h>
#include "buf.h"
#include "frame.h"
#include "http.h"
#include "loop.h"
#include "topics.h"
#include "utf8.h"

typedef enum {
  WSN_CS_RESOLVING = 1,  /* client: getaddrinfo / connect in progress */
  WSN_CS_CLIENT_HS,      /* client: request sent, reading the response */
  WSN_CS_SERVER_HS,      /* server: reading the request */
  WSN_CS_WAIT_JS,        /* server: request posted, waiting for JS */
  WSN_CS_OPEN,
  WSN_CS_REJECTING,      /* server: error response queued, then close */
  WSN_CS_RAW,            /* client: not a 101; the body goes to JS as is */
  WSN_CS_CLOSING_HANDLE  /* uv_close called */
} wsn_conn_state_t;

struct wsn_server_s {
  uv_tcp_t tcp;
  uint32_t handshake_timeout_ms; /* 0: none */
  wsn_server_t *prev, *next; /* the loop's list of servers */
  wsn_loop_t *loop;
  wsn_id_t id;
  uint64_t max_payload;
  uint32_t flags;        /* WSN_SERVER_* */
  wsn_limits_t limits;   /* for the connections it accepts from now on */
  char *path;            /* NULL: any path */
  size_t path_len;
  uint32_t conns;        /* connections accepted and not yet closed */
  int closing;           /* listener closed (or closing) */
  int listener_closed;   /* its close callback ran */
  struct wsn_listen_lookup_s *resolving; /* listen host being looked up */
  struct wsn_tls_ctx_s *tls; /* TLS listener: a server context (owned ref) */
};

/* Every idle connection has one (S4: RSS per idle connection): fields are
 * ordered so that the struct has no padding holes. */
struct wsn_conn_s {
  uv_tcp_t tcp;
  wsn_loop_t *loop;
  wsn_id_t id;
  wsn_server_t *server;      /* accepted by this server (NULL: client) */
  uint8_t state;             /* wsn_conn_state_t */
  uint8_t is_server;
  uint8_t close_sent;        /* a close frame is queued or written */
  uint8_t close_received;
  uint8_t errored;           /* a protocol error was reported */
  uint8_t ignore_reads;      /* after close/error: read only to see EOF */
  uint8_t paused;            /* pause() from JS */
  uint8_t throttled;         /* too many undelivered bytes */
  uint8_t reading;           /* uv_read_start is active */
  uint8_t end_after_flush;   /* shutdown(SHUT_WR) once the outbox drains */
  uint8_t shut;              /* shutdown requested */
  uint8_t eof;               /* the peer ended its side */
  uint8_t in_dirty;          /* linked on the loop's dirty list */
  uint8_t want_ack;          /* report WRITTEN after the next write */
  uint8_t auto_pong;
  uint8_t skip_utf8;
  uint8_t msg_opcode;        /* opcode of the message being assembled */
  uint8_t direct;            /* current frame posted straight from a read */
  uint8_t ctrl_len;
  uint8_t terminating;       /* maxPendingAutoPongs hit: destroy at the end
                              * of this read */
  uint8_t send_frag;         /* we are sending a fragmented message: a
                              * publish cannot put a frame in it */
  wsn_utf8_state_t utf8;
  wsn_frame_parser_t parser;
  wsn_buf_t msg;             /* message being assembled (lazy) */
  wsn_buf_t hs;              /* handshake bytes (lazy, freed when open) */
  uint8_t *ctrl;             /* control frame payload, 125 bytes (lazy) */
  char *key;                 /* client: Sec-WebSocket-Key (until open) */
  uint64_t charged;          /* event bytes posted, cumulative
                              * (WSN_EVENT_COST each; the slot's
                              * `delivered` is what JS dispatched) */
  uint64_t charged_events;   /* event records posted, cumulative */
  uint32_t pending_pongs;    /* auto-pongs queued and not yet written */
  uint32_t fragments;        /* frames of the message being received */
  wsn_limits_t limits;
  uint32_t port;             /* client: remote port */
  uint32_t heartbeat;        /* idleTimeout (heartbeat.c): uv_now in ms
                              * (mod 2^31) of the last read; bit 31: our
                              * ping is out since then */
  wsn_buf_t frag_lens;       /* binary message: its frames' lengths (lazy) */
  size_t frag_start;         /* where the current frame starts in msg */
  wsn_cmd_t *out_head, *out_tail; /* outbox: frames in order */
  size_t out_off;            /* bytes of out_head already written */
  uv_write_t *wreq;          /* async write in flight (lazy) */
  size_t wreq_bytes;         /* bytes that write covers */
  uv_shutdown_t *sreq;       /* lazy */
  struct wsn_lookup_s *gai;  /* client: pending lookup (resolve.h) */
  struct addrinfo *addrs, *next_addr;
  uv_connect_t *creq;        /* client: pending connect (lazy) */
  char *host;                /* client: host for error messages */
  uint64_t written;          /* bytes handed to the kernel */
  uint64_t queued;           /* bytes JS counted that reached the outbox
                              * (cumulative, as `written`): queued - written
                              * is bufferedAmount, for maxBackpressure */
  wsn_conn_t *dirty_next;
  wsn_conn_t *prev, *next;   /* the loop's list of connections */
  uint32_t hs_head_len;      /* length of the handshake head in hs */
  uint8_t announced;         /* JS knows this id (post CLOSED for it) */
  uint8_t reconnecting;      /* closing the handle to try the next address */
  uint8_t tls_shut;          /* close_notify queued */
  uint8_t msg_compressed;    /* the message being received is compressed */
  struct wsn_tls_session_s *tls; /* wss://: everything goes through it */
  wsn_cmd_t *plain_head, *plain_tail; /* TLS: frames not yet encrypted */
  wsn_pmd_codec_t *pmd;      /* permessage-deflate agreed (lazy) */
  wsn_pmd_options_t *pmd_offer; /* client: offered, until the 101 */
  wsn_subs_t *subs;          /* topics this connection is in (lazy) */
  uint64_t hs_deadline;      /* server: uv_now by which the request must be in */
  const uint8_t *direct_base; /* frame payload in the current read */
  size_t direct_len;
};

/* Bytes of undelivered events above which a connection stops reading.
 * (Like the other bounds here, a build may set it smaller: the connection
 * fuzzer does, so that its short inputs reach every bound.) */
#ifndef WSN_UNDELIVERED_MAX
#define WSN_UNDELIVERED_MAX (4u * 1024 * 1024)
#endif
/* Server, while JS decides on a handshake: bytes read past the request head
 * that are kept for after the accept (see conn.c wait_js_room). */
#ifndef WSN_WAIT_JS_EARLY_MAX
#define WSN_WAIT_JS_EARLY_MAX (64u * 1024)
#endif
/* Frame lengths kept for binaryType 'fragments' (64 KiB): past this many
 * frames (only with maxFragments above ws's default, or 0) the rest of the
 * message is reported as one last fragment. */
#define WSN_FRAG_LENS_MAX 16384u

/* ---- conn.c: a connection's life, reading, commands ------------------- */

/* A new connection for a slot id, linked on the loop (NULL: no memory). */
wsn_conn_t *wsn_conn_new(wsn_loop_t *l, wsn_id_t id);
/* Applies a command for this connection (takes ownership of cmd). */
void wsn_conn_command(wsn_conn_t *c, wsn_cmd_t *cmd);
/* WSN_CMD_CREDIT: JS credited this throttled connection; it reads again
 * once its events waiting for JS are down to half the bound. */
void wsn_conn_credited(wsn_conn_t *c);
/* Posts an event of this connection, charged against its undelivered
 * bound (WSN_EVENT_COST). NULL: no memory (or the loop is stopping). */
wsn_event_t *wsn_conn_post(wsn_conn_t *c, uint32_t type, const void *p,
                           size_t n);
/* Starts or stops reading as the state, pause, throttle and EOF say. */
void wsn_conn_update_reading(wsn_conn_t *c);
/* Switches to frames and feeds them what followed the handshake head. */
void wsn_conn_become_open(wsn_conn_t *c);
/* Turns permessage-deflate on (from a handshake's agreement). */
int wsn_conn_pmd_enable(wsn_conn_t *c, const wsn_pmd_setup_t *s);
/* Queues the connection for this iteration's writes. */
void wsn_conn_mark_dirty(wsn_conn_t *c);
/* Closes the socket now (terminate, fatal error, loop stop). */
void wsn_conn_destroy(wsn_conn_t *c);
/* The close callback: posts CLOSED and frees everything. */
void wsn_conn_on_close(uv_handle_t *h);
/* Writes "code\0message" (TLS and zlib errors' payload), cut to fit. */
size_t wsn_conn_code_message(char *out, size_t cap, const char *code,
                             const char *message);
/* Appends "addr\0port\0family\0" for a socket address. */
int wsn_conn_append_addr(wsn_buf_t *b, const struct sockaddr_storage *ss);
/* Appends a read to the handshake bytes and parses the head so far; the
 * parsed head (the caller frees it) and the parser's result in *r, or NULL
 * when there is nothing to act on yet. */
wsn_http_head_t *wsn_conn_read_head(wsn_conn_t *c, const uint8_t *data,
                                    size_t n,
                                    int (*parse)(const char *, size_t, size_t,
                                                 wsn_http_head_t *),
                                    int *r);

/* ---- heartbeat.c: idleTimeout and sendPings ------------------------- */

/* A connection became open: its idle clock starts (if it has a timeout). */
void wsn_conn_heartbeat_start(wsn_conn_t *c);
/* Bytes came in: the connection is not idle. On the read path: one store. */
static inline void wsn_conn_heartbeat_read(wsn_conn_t *c) {
  if (c->limits.idle_timeout_ms != 0)
    c->heartbeat = (uint32_t)uv_now(c->loop->uv) & 0x7fffffffu;
}
/* A pong that answers the heartbeat's own ping (not shown to JS). */
int wsn_conn_heartbeat_pong(wsn_conn_t *c, const uint8_t *p, size_t n);

/* ---- outbox.c: writing ---------------------------------------------- */

/* Writes the outbox (called once per loop iteration for dirty conns). */
void wsn_conn_flush(wsn_conn_t *c);
/* Queues a frame or handshake bytes (as plaintext first with TLS). */
void wsn_outbox_push(wsn_conn_t *c, wsn_cmd_t *cmd);
/* Queues a control frame built here (an auto-pong counts as pending). */
void wsn_outbox_frame(wsn_conn_t *c, int opcode, const uint8_t *payload,
                      size_t len);
/* Queues raw handshake bytes (not counted as written frame bytes). */
void wsn_outbox_bytes(wsn_conn_t *c, const void *p, size_t len);
/* A payload JS asked to compress, as a whole frame record (NULL: the
 * connection failed). */
wsn_cmd_t *wsn_outbox_compress(wsn_conn_t *c, wsn_cmd_t *cmd);
/* An external record (WSN_CMD_EXTERNAL) copied into an ordinary one, for
 * a TLS connection; NULL after failing the connection. */
wsn_cmd_t *wsn_outbox_inline(wsn_conn_t *c, wsn_cmd_t *cmd);
/* A frame JS counted that will never be sent: written off at once. */
void wsn_outbox_drop(wsn_conn_t *c, wsn_cmd_t *cmd);
/* Frees every queued record. */
void wsn_outbox_free(wsn_conn_t *c);
/* A publish's frame, shared with other subscribers (takes a reference):
 * counted as `counted` bytes; `accounted` when the frame's size differs
 * (compressed). Returns -1 after failing the connection. */
int wsn_outbox_shared(wsn_conn_t *c, wsn_shared_t *sh, uint64_t counted,
                      int accounted);
/* Bytes JS counted for a frame C will not queue (a skipped subscriber):
 * written off at once, as wsn_outbox_drop does. */
void wsn_outbox_write_off(wsn_conn_t *c, uint64_t counted);
/* bufferedAmount as C knows it: counted bytes not yet written. */
static inline uint64_t wsn_outbox_buffered(const wsn_conn_t *c) {
  return c->queued > c->written ? c->queued - c->written : 0;
}
/* Moves what the TLS session produced to the socket's queue. */
int wsn_outbox_tls_drain(wsn_conn_t *c, uint64_t accounted, int ack,
                         uint32_t pongs);
/* A fatal TLS error: report it, send the alert if possible, close. */
void wsn_conn_tls_fail(wsn_conn_t *c);

/* ---- server.c: listening, accepting, the server handshake ------------ */

/* WSN_CMD_LISTEN (the caller frees cmd). */
void wsn_server_listen(wsn_loop_t *l, wsn_cmd_t *cmd);
/* Takes settings JS sent: they apply to the next handshakes. */
int wsn_server_apply(wsn_server_t *s, const wsn_server_settings_t *st,
                     const char *path);
/* Closes the listener (its connections live on). */
void wsn_server_close(wsn_server_t *s);
/* Frees the server once its listener and its last connection closed. */
void wsn_server_maybe_closed(wsn_server_t *s);
void wsn_server_unlink(wsn_loop_t *l, wsn_server_t *s);
/* Stopping: closes every listener; the close callbacks due. */
int wsn_servers_stop(wsn_loop_t *l);
/* Accepts the server's pending connection (fd < 0: through uv_accept), or
 * takes fd, a socket already accepted from its listener. */
void wsn_conn_accept(wsn_server_t *srv, int fd);
/* WSN_CMD_ADOPT: a socket Node accepted and JS upgraded (takes cmd). */
void wsn_conn_adopt(wsn_loop_t *l, wsn_cmd_t *cmd);
/* Reads the request head (state SERVER_HS). */
void wsn_server_handshake(wsn_conn_t *c, const uint8_t *data, size_t n);
/* Answers a request that cannot be upgraded, then closes. */
void wsn_server_reject(wsn_conn_t *c, const char *resp, size_t len);

/* ---- publish.c: topics --------------------------------------------------- */

/* WSN_CMD_SUBSCRIBE / UNSUBSCRIBE for this connection (takes cmd). */
void wsn_conn_topic_command(wsn_conn_t *c, wsn_cmd_t *cmd);
/* WSN_CMD_PUBLISH: one frame to every subscriber (takes cmd). */
void wsn_conns_publish(wsn_loop_t *l, wsn_cmd_t *cmd);
/* A closing connection leaves every topic it is in. */
void wsn_conn_leave_topics(wsn_conn_t *c);

/* ---- client.c: connecting, the client handshake ----------------------- */

/* WSN_CMD_CONNECT (takes cmd). */
void wsn_conn_connect(wsn_loop_t *l, wsn_cmd_t *cmd);
/* Reads the response head (state CLIENT_HS). */
void wsn_client_handshake(wsn_conn_t *c, const uint8_t *data, size_t n);

#endif /* WSN_CONN_H */
