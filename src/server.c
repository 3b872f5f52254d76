/*
 * The server side (see conn.h): listening sockets and their accept loop,
 * the settings JS sends them, the server handshake read here (answered here
 * or by JS), sockets Node upgraded and handed over (adopt), and the
 * handshake deadlines.
 */
#define _GNU_SOURCE /* accept4 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake.h"
#include "http.h"
#include "resolve.h"
#include "tls.h"

static void listen_done(wsn_server_t *s, int r, const char *host,
                        unsigned want_port);
static void on_listen_resolved(void *data, int status, struct addrinfo *res);

static void server_link(wsn_loop_t *l, wsn_server_t *s) {
  s->next = l->servers;
  s->prev = NULL;
  if (l->servers) l->servers->prev = s;
  l->servers = s;
}

void wsn_server_unlink(wsn_loop_t *l, wsn_server_t *s) {
  if (s->prev) s->prev->next = s->next;
  else if (l->servers == s) l->servers = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* Connections accepted per listener and loop iteration, at most. */
#define WSN_ACCEPT_BATCH 32

static void on_connection(uv_stream_t *server, int status) {
  wsn_server_t *s = server->data;
  if (s->closing) return;
  if (status < 0) {
    /* JS shut the listener down (close(): its fd was taken from the slot).
     * accept() now fails with EINVAL every time, and the listener stays
     * readable, so libuv would call us again on every iteration until the
     * handle closes: close it now rather than spin until the SERVER_CLOSE
     * command arrives. Other errors are transient. */
    wsn_slot_t *sl = wsn_slots_get(&s->loop->slots, s->id);
    if (sl && atomic_load(&sl->listen_fd) == 0) wsn_server_close(s);
    return;
  }
  wsn_conn_accept(s, -1);
  /* libuv (1.46, in Node 20) accepts one connection per listener and loop
   * iteration, so the accept rate is the iteration rate, and an iteration
   * is long when JS keeps every socket busy (a broadcast loop in thread
   * mode: a writev per socket per iteration; 1,000 new connections then
   * took 15 s instead of under 2). Take a bounded batch of what else waits
   * in the accept queue, so that new connections still open at a fair
   * rate; the bound keeps an accept flood from starving the reads of the
   * connections already open. */
#ifdef __linux__
  uv_os_fd_t lfd;
  if (uv_fileno((uv_handle_t *)&s->tcp, &lfd) != 0) return;
  for (int i = 0; i < WSN_ACCEPT_BATCH - 1 && !s->closing; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or an error libuv will see next time */
    wsn_conn_accept(s, fd);
  }
#endif
}

static void on_server_close(uv_handle_t *h) {
  wsn_server_t *s = h->data;
  wsn_loop_t *l = s->loop;
  s->listener_closed = 1;
  l->live_handles--;
  wsn_server_maybe_closed(s);
  wsn_loop_closed_one(l);
}

/* A listen whose host name is being looked up (see bind_listen). */
typedef struct wsn_listen_lookup_s {
  wsn_server_t *s;
  wsn_lookup_t *lk;
  unsigned port;
  int backlog;
  char host[];
} listen_lookup_t;

void wsn_server_close(wsn_server_t *s) {
  if (s->closing) return;
  s->closing = 1;
  if (s->resolving) {
    /* Closed before its name resolved: it never listens. The loop's
     * resolver exists: it made this lookup, and stop_all shuts it down only
     * after closing every server. */
    wsn_lookup_abandon(s->loop->resolver, s->resolving->lk);
    free(s->resolving);
    s->resolving = NULL;
  }
  /* The fd is about to be closed (and its number reused): JS must not
   * shut it down from now on. */
  wsn_slot_t *sl = wsn_slots_get(&s->loop->slots, s->id);
  if (sl) atomic_store(&sl->listen_fd, 0);
  uv_close((uv_handle_t *)&s->tcp, on_server_close);
}

static void post_listen_error(wsn_loop_t *l, wsn_id_t id, int err,
                              const char *host, unsigned port) {
  char buf[300];
  int n = snprintf(buf, sizeof(buf), "listen%c%s%c%u", 0, host, 0, port);
  if (n < 0) return;
  if ((size_t)n >= sizeof(buf)) n = sizeof(buf) - 1;
  wsn_event_t *ev = wsn_loop_post(l, WSN_EV_LISTEN_ERROR, id, buf, (size_t)n);
  if (ev) ev->a = (uint32_t)err;
}

/* Binds and listens. An empty host means every address: "::" (dual stack)
 * and, where IPv6 is missing, "0.0.0.0", as Node's server.listen does.
 * Returns 1 when a host name is being looked up: on_listen_resolved
 * finishes the listen. */
static int bind_listen(wsn_server_t *s, const char *host, unsigned port,
                       int backlog) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (host[0] == 0) {
    uv_ip6_addr("::", (int)port, (struct sockaddr_in6 *)&ss);
    int r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, backlog, on_connection);
    if (r != UV_EAFNOSUPPORT) return r;
    uv_ip4_addr("0.0.0.0", (int)port, (struct sockaddr_in *)&ss);
  } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
             uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
    /* A name: looked up off this thread, so a slow resolver stalls no
     * connection meanwhile (and a stop never waits for it). */
    size_t hl = strlen(host);
    listen_lookup_t *p = malloc(sizeof(*p) + hl + 1);
    if (p == NULL) return UV_ENOMEM;
    p->s = s;
    p->port = port;
    p->backlog = backlog;
    memcpy(p->host, host, hl + 1);
    wsn_resolver_t *rs = wsn_loop_resolver(s->loop);
    int r = rs ? wsn_lookup_start(rs, host, port, on_listen_resolved, p, &p->lk)
               : UV_ENOMEM;
    if (r != 0) {
      free(p);
      return r;
    }
    s->resolving = p;
    return 1;
  }
  int r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, backlog, on_connection);
  return r;
}

/* Takes the settings JS sent (at listen, and again whenever an option ws
 * reads at each handshake changed): they apply to the next handshakes. */
int wsn_server_apply(wsn_server_t *s, const wsn_server_settings_t *st,
                        const char *path) {
  char *copy = NULL;
  if (st->path_len) {
    copy = malloc(st->path_len);
    if (copy == NULL) return -1;
    memcpy(copy, path, st->path_len);
  }
  free(s->path);
  s->path = copy;
  s->path_len = st->path_len;
  s->max_payload = st->max_payload;
  s->flags = st->flags;
  s->limits = st->limits;
  return 0;
}

void wsn_server_listen(wsn_loop_t *l, wsn_cmd_t *cmd) {
  const wsn_listen_args_t *a = (const wsn_listen_args_t *)cmd->data;
  const char *strs = (const char *)cmd->data + sizeof(*a);
  char host[256];
  size_t hl = a->host_len < sizeof(host) - 1 ? a->host_len : sizeof(host) - 1;
  memcpy(host, strs, hl);
  host[hl] = 0;
  wsn_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL || uv_tcp_init(l->uv, &s->tcp) != 0) {
    free(s);
    wsn_tls_ctx_release(a->tls);
    post_listen_error(l, cmd->id, UV_ENOMEM, host, a->port);
    wsn_loop_post(l, WSN_EV_SERVER_CLOSED, cmd->id, NULL, 0);
    wsn_slots_free(&l->slots, cmd->id);
    return;
  }
  s->tcp.data = s;
  s->loop = l;
  s->id = cmd->id;
  s->handshake_timeout_ms = a->handshake_timeout_ms;
  s->tls = a->tls; /* the command's reference, now the server's */
  int applied = wsn_server_apply(s, &a->settings, strs + a->host_len);
  server_link(l, s);
  l->live_handles++;
  wsn_slot_t *sl = wsn_slots_get(&l->slots, s->id);
  if (sl) sl->ptr = s;
  int r = applied == 0 ? bind_listen(s, host, a->port, a->backlog) : UV_ENOMEM;
  if (r != 1) listen_done(s, r, host, a->port);
}

/* Reports the listen's outcome: LISTENING with the bound address, or
 * LISTEN_ERROR and the server closes. */
static void listen_done(wsn_server_t *s, int r, const char *host,
                        unsigned want_port) {
  wsn_loop_t *l = s->loop;
  if (r != 0) {
    post_listen_error(l, s->id, r, host, want_port);
    wsn_server_close(s);
    return;
  }
  /* Published for close() on the JS thread (see slots.h). */
  wsn_slot_t *sl = wsn_slots_get(&l->slots, s->id);
  uv_os_fd_t fd;
  if (sl && uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
    atomic_store(&sl->listen_fd, (int32_t)fd + 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char ip[INET6_ADDRSTRLEN] = "";
  uint32_t port = 0, family = 4;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      family = 6;
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  wsn_event_t *ev = wsn_loop_post(l, WSN_EV_LISTENING, s->id, ip, strlen(ip));
  if (ev) {
    ev->a = port;
    ev->b = family;
  }
}

/* The listen host's lookup finished (never called once the server closed:
 * wsn_server_close abandons the lookup). Binds the first address, as the
 * synchronous lookup did. */
static void on_listen_resolved(void *data, int status, struct addrinfo *res) {
  listen_lookup_t *p = data;
  wsn_server_t *s = p->s;
  s->resolving = NULL;
  int r = status;
  if (r == 0 && res == NULL) r = UV_EAI_NONAME;
  if (r == 0) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ss)->sin_port = htons(p->port);
    else ((struct sockaddr_in6 *)&ss)->sin6_port = htons(p->port);
    r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, p->backlog, on_connection);
  }
  if (res) freeaddrinfo(res);
  listen_done(s, r, p->host, p->port);
  free(p);
}

/* Answers a request that cannot be upgraded, then closes. */
void wsn_server_reject(wsn_conn_t *c, const char *resp, size_t len) {
  c->state = WSN_CS_REJECTING;
  wsn_buf_free(&c->hs);
  wsn_outbox_bytes(c, resp, len);
  c->end_after_flush = 1;
  wsn_conn_update_reading(c);
}

static void reject_status(wsn_conn_t *c, int status, const char *message,
                          const char *extra) {
  char resp[512];
  size_t n = wsn_handshake_response_error(resp, sizeof(resp), status, message,
                                          extra);
  wsn_server_reject(c, resp, n);
}


/* Posts CONNECTION or HANDSHAKE: "protocol\0remote addr\0port\0family\0
 * local addr\0port\0family\0" then the request head. */
static int post_request(wsn_conn_t *c, uint32_t type, const char *proto,
                        size_t proto_len, size_t head_len) {
  wsn_buf_t b = {0};
  struct sockaddr_storage ss;
  int len;
  int rc = wsn_buf_append(&b, proto, proto_len);
  rc |= wsn_buf_append(&b, "", 1);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= wsn_conn_append_addr(&b, &ss);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= wsn_conn_append_addr(&b, &ss);
  rc |= wsn_buf_append(&b, c->hs.base, head_len);
  wsn_event_t *ev = rc ? NULL : wsn_conn_post(c, type, b.base, b.len);
  wsn_buf_free(&b);
  if (ev == NULL) return -1;
  ev->c = c->server->id;
  c->announced = 1;
  return 0;
}

static void server_accept(wsn_conn_t *c, const char *proto, size_t proto_len) {
  wsn_http_head_t *head = malloc(sizeof(*head));
  if (head == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  int r = wsn_http_parse_request((const char *)c->hs.base, c->hs_head_len, 0,
                                 head);
  const wsn_http_header_t *key = r > 0 ? wsn_http_find(head, "sec-websocket-key") : NULL;
  if (key == NULL) {
    free(head);
    wsn_conn_destroy(c);
    return;
  }
  size_t cap = 256 + proto_len;
  char *resp = malloc(cap);
  size_t n = resp ? wsn_handshake_response_101(resp, cap, key->value,
                                               key->value_len, proto, proto_len,
                                               NULL, 0)
                  : 0;
  free(head);
  if (n == 0) {
    free(resp);
    wsn_conn_destroy(c);
    return;
  }
  wsn_outbox_bytes(c, resp, n);
  free(resp);
  if (c->state != WSN_CS_CLOSING_HANDLE) wsn_conn_become_open(c);
}


void wsn_server_handshake(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int r;
  wsn_http_head_t *head = wsn_conn_read_head(c, data, n, wsn_http_parse_request, &r);
  if (head == NULL) return;
  if (r < 0) {
    free(head);
    /* What Node's http server answers a request it cannot parse. */
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
    static const char big[] =
        "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
    if (r == WSN_HTTP_E_TOO_LARGE || r == WSN_HTTP_E_TOO_MANY)
      wsn_server_reject(c, big, sizeof(big) - 1);
    else
      wsn_server_reject(c, bad, sizeof(bad) - 1);
    return;
  }
  c->hs_head_len = (uint32_t)r;

  /* Node emits 'upgrade' only for a non-empty Upgrade header plus an
   * "upgrade" token in some Connection header; anything else is a plain
   * request, which ws answers 426. */
  const wsn_http_header_t *upg_h = wsn_http_find(head, "upgrade");
  int conn_upgrade = 0;
  for (const wsn_http_header_t *h = wsn_http_find(head, "connection"); h;
       h = wsn_http_find_next(head, "connection", h)) {
    if (wsn_http_has_token(h->value, h->value_len, "upgrade")) conn_upgrade = 1;
  }
  if (upg_h == NULL || upg_h->value_len == 0 || !conn_upgrade) {
    free(head);
    static const char upgrade_required[] =
        "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: 16\r\n\r\nUpgrade Required";
    wsn_server_reject(c, upgrade_required, sizeof(upgrade_required) - 1);
    return;
  }

  /* ws's order: method, Upgrade, key and version checks; then shouldHandle
   * (the pathname must equal the server's path: a plain 400); then the
   * subprotocol list. */
  wsn_handshake_request_t hr;
  wsn_handshake_check_request(head, &hr);
  wsn_server_t *srv = c->server;
  int path_ok = 1;
  if (srv->path != NULL) {
    size_t plen = 0;
    while (plen < head->path_len && head->path[plen] != '?') plen++;
    path_ok = plen == srv->path_len && memcmp(head->path, srv->path, plen) == 0;
  }
  int protocol_error_only =
      hr.status != 0 && strcmp(hr.message, "Invalid Sec-WebSocket-Protocol header") == 0;
  if (hr.status != 0 && !protocol_error_only) {
    free(head);
    reject_status(c, hr.status, hr.message, hr.extra_header);
    return;
  }
  if (!path_ok) {
    free(head);
    reject_status(c, 400, NULL, NULL);
    return;
  }
  if (hr.status != 0) {
    free(head);
    reject_status(c, hr.status, hr.message, hr.extra_header);
    return;
  }

  if (srv->flags & WSN_SERVER_NEEDS_JS) {
    free(head);
    c->state = WSN_CS_WAIT_JS;
    wsn_conn_update_reading(c);
    if (post_request(c, WSN_EV_HANDSHAKE, "", 0, c->hs_head_len) != 0)
      wsn_conn_destroy(c);
    return;
  }

  /* ws's default: the first protocol the client offered. */
  const char *proto = NULL;
  size_t proto_len = 0;
  if (hr.protocols)
    wsn_handshake_first_protocol(hr.protocols, hr.protocols_len, &proto,
                                 &proto_len);
  free(head);
  if (post_request(c, WSN_EV_CONNECTION, proto ? proto : "", proto_len,
                   c->hs_head_len) != 0) {
    wsn_conn_destroy(c);
    return;
  }
  server_accept(c, proto, proto_len);
}

static void on_refused_close(uv_handle_t *h) {
  free(h);
}

/* No room for a connection libuv has accepted (no id left, out of memory):
 * it must still be taken off libuv's hands, which watches the listener
 * again only after uv_accept; then it is closed (the peer sees it end). */
static void refuse_accepted(wsn_server_t *srv) {
  uv_tcp_t *t = malloc(sizeof(*t));
  if (t == NULL) return;
  if (uv_tcp_init(srv->loop->uv, t) != 0) {
    free(t);
    return;
  }
  (void)uv_accept((uv_stream_t *)&srv->tcp, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_refused_close);
}

void wsn_conn_accept(wsn_server_t *srv, int fd) {
  wsn_loop_t *l = srv->loop;
  wsn_id_t id = wsn_slots_alloc(&l->slots);
  wsn_conn_t *c = id ? wsn_conn_new(l, id) : NULL;
  if (c == NULL) {
    if (id) wsn_slots_free(&l->slots, id);
    if (fd >= 0) close(fd); /* refused: the peer sees a reset */
    else refuse_accepted(srv);
    return;
  }
  c->server = srv;
  srv->conns++;
  c->is_server = 1;
  c->state = WSN_CS_SERVER_HS;
  c->auto_pong = !(srv->flags & WSN_SERVER_NO_AUTO_PONG);
  c->skip_utf8 = !!(srv->flags & WSN_SERVER_SKIP_UTF8);
  c->limits = srv->limits;
  wsn_frame_parser_init(&c->parser, 1, srv->max_payload);
  if (srv->handshake_timeout_ms) {
    c->hs_deadline = uv_now(l->uv) + srv->handshake_timeout_ms;
    wsn_loop_watch_handshake(l, srv->handshake_timeout_ms);
  }
  int r = fd >= 0 ? uv_tcp_open(&c->tcp, fd)
                  : uv_accept((uv_stream_t *)&srv->tcp, (uv_stream_t *)&c->tcp);
  if (r != 0) {
    if (fd >= 0) close(fd);
    wsn_conn_destroy(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* ws calls socket.setNoDelay() too */
  /* A TLS listener: the session waits for the ClientHello; conn.c and
   * outbox.c then route every byte through it, as for a wss:// client.
   * The handshake deadline covers the TLS handshake too. */
  if (srv->tls != NULL &&
      (c->tls = wsn_tls_session_new_server(srv->tls)) == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  wsn_conn_update_reading(c);
}

/* A socket Node's http server accepted and JS upgraded (or, with
 * WSN_ADOPT_CLIENT, one Node's http.request upgraded for a client): from
 * here it is ours as if we had accepted or connected it, past the
 * handshake. */
void wsn_conn_adopt(wsn_loop_t *l, wsn_cmd_t *cmd) {
  const wsn_adopt_args_t *a = (const wsn_adopt_args_t *)cmd->data;
  const uint8_t *head = cmd->data + sizeof(*a);
  int fd = a->fd;
  wsn_conn_t *c = wsn_conn_new(l, cmd->id);
  if (c == NULL) {
    close(fd);
    wsn_loop_post(l, WSN_EV_CLOSED, cmd->id, NULL, 0);
    wsn_slots_free(&l->slots, cmd->id);
    free(cmd);
    return;
  }
  c->is_server = !(a->flags & WSN_ADOPT_CLIENT);
  c->announced = 1; /* JS created this id */
  c->state = WSN_CS_OPEN;
  c->auto_pong = !(a->flags & WSN_SERVER_NO_AUTO_PONG);
  c->skip_utf8 = !!(a->flags & WSN_SERVER_SKIP_UTF8);
  c->limits = a->limits;
  wsn_frame_parser_init(&c->parser, c->is_server, a->max_payload);
  if (wsn_conn_pmd_enable(c, &a->pmd) != 0) {
    close(fd);
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  /* Fails harmlessly on the AF_UNIX end of a stream-transport socketpair. */
  uv_tcp_nodelay(&c->tcp, 1);
  /* The 101 leaves first: the command record becomes its outbox entry. */
  cmd->off = sizeof(*a) + a->head_len;
  cmd->len = a->response_len;
  cmd->type = WSN_CMD_SEND;
  cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
  cmd->next = NULL;
  /* What Node read past the request goes to the parser before any read. */
  if (a->head_len > 0 && wsn_buf_append(&c->hs, head, a->head_len) != 0) {
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  if (cmd->len > 0) wsn_outbox_push(c, cmd); /* a client has no response */
  else free(cmd);
  c->hs_head_len = 0;
  wsn_conn_become_open(c);
}

size_t wsn_conns_expire(wsn_loop_t *l, uint64_t now) {
  /* Node's http server answers a request that is too slow the same way. */
  static const char timeout[] =
      "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";
  size_t reading = 0;
  for (wsn_conn_t *c = l->conns; c; c = c->next) {
    /* A request JS has not answered yet (a verifyClient that never calls
     * back) is timed out like a slow one, with the same 408: the peer learns
     * why, and the fd is released either way. */
    if ((c->state != WSN_CS_SERVER_HS && c->state != WSN_CS_WAIT_JS) ||
        c->hs_deadline == 0)
      continue;
    if (c->hs_deadline <= now) wsn_server_reject(c, timeout, sizeof(timeout) - 1);
    else reading++;
  }
  return reading;
}

void wsn_server_maybe_closed(wsn_server_t *s) {
  if (!s->listener_closed || s->conns > 0) return;
  wsn_loop_t *l = s->loop;
  wsn_loop_post(l, WSN_EV_SERVER_CLOSED, s->id, NULL, 0);
  wsn_slots_free(&l->slots, s->id);
  wsn_server_unlink(l, s);
  wsn_tls_ctx_release(s->tls);
  free(s->path);
  free(s);
}

/* A stop closes every listener: the count of close callbacks that are due.
 * A server whose listener has already closed (it stays listed while its
 * connections live) has no close callback to come: counting it would keep
 * the stop from ever finishing. */
int wsn_servers_stop(wsn_loop_t *l) {
  int due = 0;
  for (wsn_server_t *s = l->servers; s; s = s->next) {
    if (s->listener_closed) continue;
    due++;
    if (!s->closing) wsn_server_close(s);
  }
  return due;
}
