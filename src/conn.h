/*
 * One connection's state machine, on the loop thread: handshaking, open,
 * closing, closed. Read path: bytes -> (handshake | frames) -> events. Write
 * path: an outbox of command records written with one writev per loop
 * iteration (corking); only the unwritten tail waits for the kernel.
 */
#ifndef WSN_CONN_H
#define WSN_CONN_H

#include <uv.h>
#include "buf.h"
#include "frame.h"
#include "loop.h"
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
  uint64_t hs_deadline;      /* server: uv_now by which the request must be in */
  const uint8_t *direct_base; /* frame payload in the current read */
  size_t direct_len;
};

/* Client handshake result besides handshake.h's: unparsable response. */
#define WSN_HS_BAD_RESPONSE 4

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

/* Accepts the server's pending connection (fd < 0: through uv_accept), or
 * takes fd, a socket already accepted from its listener. */
void wsn_conn_accept(wsn_server_t *srv, int fd);
void wsn_conn_connect(wsn_loop_t *l, wsn_cmd_t *cmd);
/* WSN_CMD_ADOPT: a socket Node accepted and JS upgraded (takes cmd). */
void wsn_conn_adopt(wsn_loop_t *l, wsn_cmd_t *cmd);
/* Applies a command for this connection (takes ownership of cmd). */
void wsn_conn_command(wsn_conn_t *c, wsn_cmd_t *cmd);
/* Writes the outbox (called once per loop iteration for dirty conns). */
void wsn_conn_flush(wsn_conn_t *c);
/* Closes the socket now (terminate, fatal error, loop stop). */
void wsn_conn_destroy(wsn_conn_t *c);
/* WSN_CMD_CREDIT: JS credited this throttled connection; it reads again
 * once its events waiting for JS are down to half the bound. */
void wsn_conn_credited(wsn_conn_t *c);
void wsn_server_maybe_closed(wsn_server_t *s);
/* Posts the CLOSED events that could not be posted when their connections
 * closed (see loop.h `unreported`); with `discard`, frees them instead (the
 * loop is being destroyed). */
void wsn_conn_report_closed(wsn_loop_t *l, int discard);
/* Answers 408 to server handshakes past their deadline; returns how many
 * handshakes are still being read. */
size_t wsn_conn_expire_handshakes(wsn_loop_t *l, uint64_t now);
void wsn_server_unlink(wsn_loop_t *l, wsn_server_t *s);

#endif /* WSN_CONN_H */
