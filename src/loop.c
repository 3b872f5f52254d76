/*
 * The I/O loop. See loop.h and DESIGN.md "The two threads".
 *
 * One iteration: the wake async drains every queued command (sends go
 * straight into their connection's outbox and mark it dirty); reads run the
 * connections; then the check handle writes each dirty connection once
 * (writev) and publishes the iteration's events to JS in one step.
 */
#define _GNU_SOURCE /* accept4 */
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "resolve.h"
#include "tls.h"

wsn_cmd_t *wsn_cmd_new(uint32_t type, wsn_id_t id, size_t cap) {
  wsn_cmd_t *cmd = malloc(sizeof(*cmd) + cap);
  if (cmd == NULL) return NULL;
  cmd->next = NULL;
  cmd->id = id;
  cmd->type = (uint16_t)type;
  cmd->pongs = 0;
  cmd->flags = 0;
  cmd->arg = 0;
  cmd->off = 0;
  cmd->len = cap;
  return cmd;
}

/* ---- events ------------------------------------------------------------ */

wsn_event_t *wsn_loop_post(wsn_loop_t *l, uint32_t type, wsn_id_t id,
                           const void *payload, size_t len) {
  if (l->stopping) return NULL;
  if (len > UINT32_MAX) return NULL;
  if (l->batch.base == NULL && l->spare.base != NULL) {
    l->batch = l->spare;
    l->batch.len = 0;
    l->spare = (wsn_buf_t){0};
  }
  size_t need = sizeof(wsn_event_t) + WSN_EVENT_ALIGN(len);
  if (wsn_buf_reserve(&l->batch, need) != 0) return NULL;
  wsn_event_t *ev = (wsn_event_t *)(l->batch.base + l->batch.len);
  memset(ev, 0, sizeof(*ev));
  ev->type = type;
  ev->slot = wsn_id_slot(id);
  ev->gen = wsn_id_gen(id);
  ev->len = (uint32_t)len;
  if (len) memcpy(ev + 1, payload, len);
  /* Zero the padding so no uninitialised bytes reach JS. */
  memset((uint8_t *)(ev + 1) + len, 0, WSN_EVENT_ALIGN(len) - len);
  l->batch.len += need;
  return ev;
}

/* Records are 8-aligned: the buffer is malloc'd and every record's size is
 * a multiple of 8. An empty buffer may have no memory at all (base NULL),
 * and NULL + 0 is undefined behaviour in C: the walk stops before it. */
#define FOR_EACH_EVENT(buf, ev)                                            \
  for (wsn_event_t *ev = (wsn_event_t *)(buf)->base;                        \
       ev != NULL && (uint8_t *)ev < (buf)->base + (buf)->len;              \
       ev = (wsn_event_t *)((uint8_t *)(ev + 1) +                           \
                            ((ev->type == WSN_EV_MESSAGE &&                 \
                              (ev->a & WSN_MSG_EXTERNAL))                   \
                                 ? 0                                        \
                                 : WSN_EVENT_ALIGN(ev->len))))

void wsn_batch_free_externals(wsn_buf_t *b) {
  FOR_EACH_EVENT(b, ev) {
    if (ev->type == WSN_EV_MESSAGE && (ev->a & WSN_MSG_EXTERNAL)) {
      free((void *)(uintptr_t)ev->c);
      ev->c = 0;
    }
  }
}

/* Moves this iteration's events where JS can take them. */
static void publish(wsn_loop_t *l) {
  if (l->batch.len == 0) return;
  int was_empty;
  int failed = 0;
  uv_mutex_lock(&l->ev_mu);
  /* A batch JS is done with becomes the next one's memory. */
  if (l->spare.base == NULL && l->returned.base != NULL) {
    l->spare = l->returned;
    l->returned = (wsn_buf_t){0};
  }
  was_empty = l->published.len == 0;
  if (was_empty) {
    wsn_buf_t t = l->published;
    l->published = l->batch;
    l->batch = t;
    l->batch.len = 0;
  } else if (wsn_buf_append(&l->published, l->batch.base, l->batch.len) != 0) {
    failed = 1;
  } else {
    l->batch.len = 0;
  }
  uv_mutex_unlock(&l->ev_mu);
  /* On ENOMEM the events stay in the private batch for the next try. */
  (void)failed;
  if (was_empty && l->notify) l->notify(l->notify_ctx);
}

wsn_buf_t wsn_loop_take_events(wsn_loop_t *l) {
  uv_mutex_lock(&l->ev_mu);
  wsn_buf_t b = l->published;
  l->published = (wsn_buf_t){0};
  uv_mutex_unlock(&l->ev_mu);
  return b;
}

/* JS thread. What conn.c charged for each event of a connection
 * (WSN_EVENT_COST) goes back to the connection's slot, which the loop
 * reads; the events of servers, and CLOSED (its id is gone), were charged
 * to nobody. The loop is told only about connections that stopped reading
 * for lack of credit (one CREDIT command each), so a batch costs no
 * command, lock or wake-up of its own. A slot reused since is credited by
 * mistake at most one batch's worth, which conn.c clamps. */
static int charged_to_conn(const wsn_event_t *ev) {
  return ev->type != WSN_EV_LISTENING && ev->type != WSN_EV_LISTEN_ERROR &&
         ev->type != WSN_EV_SERVER_CLOSED && ev->type != WSN_EV_CLOSED;
}

void wsn_loop_credit(wsn_loop_t *l, wsn_buf_t *b) {
  FOR_EACH_EVENT(b, ev) {
    if (!charged_to_conn(ev)) continue;
    wsn_slot_t *sl = wsn_slots_get(&l->slots, wsn_id_make(ev->slot, ev->gen));
    if (sl == NULL) continue;
    atomic_fetch_add(&sl->delivered, WSN_EVENT_COST(ev));
    atomic_fetch_add(&sl->delivered_events, 1);
  }
  /* Once the whole batch is credited (in main-loop mode CREDIT runs at
   * once, and must see all of it). A connection's records sit together in
   * a batch more often than not: `last` saves repeated commands. */
  wsn_id_t last = 0;
  FOR_EACH_EVENT(b, ev) {
    if (!charged_to_conn(ev)) continue;
    wsn_id_t id = wsn_id_make(ev->slot, ev->gen);
    if (id == last) continue;
    last = id;
    wsn_slot_t *sl = wsn_slots_get(&l->slots, id);
    if (sl == NULL || !atomic_load(&sl->throttled)) continue;
    wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_CREDIT, id, 0);
    if (cmd) wsn_loop_push(l, cmd);
  }
  b->len = 0;
  uv_mutex_lock(&l->ev_mu);
  int keep = l->returned.base == NULL;
  if (keep) l->returned = *b;
  uv_mutex_unlock(&l->ev_mu);
  if (!keep) wsn_buf_free(b);
  *b = (wsn_buf_t){0};
}

/* ---- dirty list -------------------------------------------------------- */

void wsn_loop_mark_dirty(wsn_loop_t *l, wsn_conn_t *c) {
  if (c->in_dirty) return;
  c->in_dirty = 1;
  c->dirty_next = l->dirty;
  l->dirty = c;
}

void wsn_loop_unmark_dirty(wsn_loop_t *l, wsn_conn_t *c) {
  if (!c->in_dirty) return;
  for (wsn_conn_t **pp = &l->dirty; *pp; pp = &(*pp)->dirty_next) {
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  }
  c->in_dirty = 0;
}

static void flush_dirty(wsn_loop_t *l) {
  while (l->dirty) {
    wsn_conn_t *c = l->dirty;
    l->dirty = c->dirty_next;
    c->in_dirty = 0;
    wsn_conn_flush(c);
  }
}

/* ---- servers ----------------------------------------------------------- */

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

static void server_close(wsn_server_t *s);

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
    if (sl && atomic_load(&sl->listen_fd) == 0) server_close(s);
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

static void server_close(wsn_server_t *s) {
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

static void on_listen_resolved(void *data, int status, struct addrinfo *res);
static void listen_done(wsn_server_t *s, int r, const char *host,
                        unsigned want_port);

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
static int server_apply(wsn_server_t *s, const wsn_server_settings_t *st,
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

static void listen_cmd(wsn_loop_t *l, wsn_cmd_t *cmd) {
  const wsn_listen_args_t *a = (const wsn_listen_args_t *)cmd->data;
  const char *strs = (const char *)cmd->data + sizeof(*a);
  char host[256];
  size_t hl = a->host_len < sizeof(host) - 1 ? a->host_len : sizeof(host) - 1;
  memcpy(host, strs, hl);
  host[hl] = 0;
  wsn_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL || uv_tcp_init(l->uv, &s->tcp) != 0) {
    free(s);
    post_listen_error(l, cmd->id, UV_ENOMEM, host, a->port);
    wsn_loop_post(l, WSN_EV_SERVER_CLOSED, cmd->id, NULL, 0);
    wsn_slots_free(&l->slots, cmd->id);
    return;
  }
  s->tcp.data = s;
  s->loop = l;
  s->id = cmd->id;
  s->handshake_timeout_ms = a->handshake_timeout_ms;
  int applied = server_apply(s, &a->settings, strs + a->host_len);
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
    server_close(s);
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
 * server_close abandons the lookup). Binds the first address, as the
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

/* ---- commands ---------------------------------------------------------- */

static void run_command(wsn_loop_t *l, wsn_cmd_t *cmd);

void wsn_loop_push(wsn_loop_t *l, wsn_cmd_t *cmd) {
  cmd->next = NULL;
  if (!l->threaded && !l->stopping) {
    /* Main-loop mode: the caller is on the loop's own thread and never
     * inside a connection callback (JS runs only from publish), so the
     * command applies at once, as Node's own calls do: a closed server
     * refuses the very next connection, and no queue is needed. */
    size_t before = l->batch.len;
    run_command(l, cmd);
    /* Events it posted (LISTENING, an error) wait in the batch for the
     * next check or prepare phase. JS may be running from on_prepare's
     * publish, after which Node's loop blocks in poll with nothing due:
     * ring the wake handle so poll returns and on_check publishes them in
     * this iteration. Only when the batch was empty: a non-empty one had
     * its wake already, or is published by a phase still to come. */
    if (before == 0 && l->batch.len != 0 && !l->stopping)
      uv_async_send(&l->wake);
    return;
  }
  uv_mutex_lock(&l->cmd_mu);
  int was_empty = l->cmd_head == NULL;
  if (l->cmd_tail) l->cmd_tail->next = cmd;
  else l->cmd_head = cmd;
  l->cmd_tail = cmd;
  uv_mutex_unlock(&l->cmd_mu);
  /* uv_async_send coalesces, but skipping it when a wake is already due
   * saves an atomic and possibly a syscall per send. */
  if (was_empty) uv_async_send(&l->wake);
}

static void stop_all(wsn_loop_t *l);

static void run_command(wsn_loop_t *l, wsn_cmd_t *cmd) {
  switch (cmd->type) {
    case WSN_CMD_LISTEN:
      listen_cmd(l, cmd);
      free(cmd);
      return;
    case WSN_CMD_CONNECT:
      wsn_conn_connect(l, cmd); /* takes cmd */
      return;
    case WSN_CMD_ADOPT:
      wsn_conn_adopt(l, cmd); /* takes cmd */
      return;
    case WSN_CMD_CREDIT: {
      wsn_conn_t *c = wsn_slots_ptr(&l->slots, cmd->id);
      if (c) wsn_conn_credited(c);
      free(cmd);
      return;
    }
    case WSN_CMD_STOP:
      free(cmd);
      stop_all(l);
      return;
    case WSN_CMD_SERVER_CLOSE:
    case WSN_CMD_SERVER_SETTINGS: {
      wsn_server_t *s = wsn_slots_ptr(&l->slots, cmd->id);
      if (s) {
        if (cmd->type == WSN_CMD_SERVER_CLOSE) {
          server_close(s);
        } else {
          const wsn_server_settings_t *st = (const void *)cmd->data;
          /* Out of memory: the previous settings stay. */
          server_apply(s, st, (const char *)cmd->data + sizeof(*st));
        }
      }
      free(cmd);
      return;
    }
    default: {
      wsn_conn_t *c = wsn_slots_ptr(&l->slots, cmd->id);
      if (c == NULL) {
        free(cmd); /* that connection has gone: a no-op */
        return;
      }
      wsn_conn_command(c, cmd);
      return;
    }
  }
}

/* Frees a command that will never run, and what it owns besides memory. */
static void discard_command(wsn_cmd_t *cmd) {
  if (cmd->type == WSN_CMD_ADOPT) {
    const wsn_adopt_args_t *a = (const wsn_adopt_args_t *)cmd->data;
    if (a->fd >= 0) close(a->fd);
  } else if (cmd->type == WSN_CMD_CONNECT) {
    const wsn_connect_args_t *a = (const wsn_connect_args_t *)cmd->data;
    wsn_tls_session_free(a->tls);
  }
  free(cmd);
}

/* How long one wake may run commands before the loop moves on. */
#define DRAIN_BUDGET_NS (1000 * 1000)

/* Runs the queued commands. `all` = 1 (stopping) empties the queue. A wake
 * (`all` = 0) takes one snapshot of the queue and runs it for at most
 * DRAIN_BUDGET_NS; what is left goes back to the front of the queue and the
 * loop wakes itself again, so it runs on the next iteration, after the poll
 * phase. Commands JS pushes meanwhile find the queue empty and wake the loop
 * again (wsn_loop_push). Without these bounds a JS thread that keeps sending
 * (a broadcast loop) held the loop here: looping until the queue stayed
 * empty never ended, and even one snapshot held all that JS queued during
 * the previous iteration (up to the send backpressure limit on every
 * socket), so iterations grew to hundreds of ms and accepts, reads and
 * handshakes starved (with 1,000 sockets, most new connections did not
 * open within a minute). Ordering is kept: the rest runs before anything
 * queued later. */
static void drain_commands(wsn_loop_t *l, int all) {
  uint64_t start = all ? 0 : uv_hrtime();
  do {
    uv_mutex_lock(&l->cmd_mu);
    wsn_cmd_t *cmd = l->cmd_head;
    wsn_cmd_t *last = l->cmd_tail;
    l->cmd_head = l->cmd_tail = NULL;
    uv_mutex_unlock(&l->cmd_mu);
    if (cmd == NULL) return;
    unsigned n = 0;
    while (cmd) {
      wsn_cmd_t *next = cmd->next;
      if (l->stopping) discard_command(cmd);
      else run_command(l, cmd);
      cmd = next;
      if (!all && cmd && (++n & 63) == 0 && !l->stopping &&
          uv_hrtime() - start > DRAIN_BUDGET_NS) {
        uv_mutex_lock(&l->cmd_mu);
        last->next = l->cmd_head;
        if (l->cmd_head == NULL) l->cmd_tail = last;
        l->cmd_head = cmd;
        uv_mutex_unlock(&l->cmd_mu);
        uv_async_send(&l->wake);
        return;
      }
    }
  } while (all);
}

static void on_wake(uv_async_t *h) {
  wsn_loop_t *l = h->data;
  drain_commands(l, 0);
  /* Finished name lookups ring the same bell. */
  if (l->resolver) wsn_resolver_drain(l->resolver);
}

/* A lookup thread, under the resolver's lock: the resolver is shut down
 * (under that lock) before stop_all closes `wake`, so this never touches a
 * closed handle or a freed loop. */
static void resolver_wake(void *arg) {
  wsn_loop_t *l = arg;
  uv_async_send(&l->wake);
}

wsn_resolver_t *wsn_loop_resolver(wsn_loop_t *l) {
  if (l->resolver == NULL && !l->stopping && l->handles_open)
    l->resolver = wsn_resolver_new(resolver_wake, l, NULL);
  return l->resolver;
}

/* Close callbacks run after the check phase; whatever they posted (CLOSED,
 * SERVER_CLOSED) is published here, before the loop blocks in poll. */
static void on_prepare(uv_prepare_t *h) {
  wsn_loop_t *l = h->data;
  flush_dirty(l);
  wsn_conn_report_closed(l, 0);
  publish(l);
  /* Main-loop mode: what the dispatcher sent leaves before poll blocks. */
  if (!l->threaded) flush_dirty(l);
}

static void on_check(uv_check_t *h) {
  wsn_loop_t *l = h->data;
  flush_dirty(l);
  wsn_conn_report_closed(l, 0);
  publish(l);
  /* Main-loop mode: publish() ran the JS dispatcher synchronously; what
   * its listeners sent (an echo, say) leaves in this same iteration. */
  if (!l->threaded) flush_dirty(l);
}

/* ---- start and stop ---------------------------------------------------- */

static void loop_thread(void *arg) {
  wsn_loop_t *l = arg;
  uv_sem_post(&l->started);
  uv_run(l->uv, UV_RUN_DEFAULT);
}

/* ---- handshake deadlines ---------------------------------------------- */

/* One timer per loop, not one per connection: it runs only while some
 * handshake is being read (a slowloris peer sending half a request), and
 * ticks at a quarter of the shortest timeout so a deadline is late by at
 * most that much. */
static void on_sweep(uv_timer_t *t) {
  wsn_loop_t *l = t->data;
  if (wsn_conn_expire_handshakes(l, uv_now(l->uv)) == 0) {
    uv_timer_stop(t);
    l->sweep_ms = 0;
  }
}

void wsn_loop_watch_handshake(wsn_loop_t *l, uint32_t timeout_ms) {
  if (timeout_ms == 0 || l->stopping) return;
  uint64_t period = timeout_ms / 4;
  if (period < 10) period = 10;
  if (period > 1000) period = 1000;
  if (l->sweep_ms != 0 && l->sweep_ms <= period) return;
  l->sweep_ms = period;
  uv_timer_start(&l->sweep, on_sweep, period, period);
}

static int init_handles(wsn_loop_t *l) {
  if (uv_async_init(l->uv, &l->wake, on_wake) != 0) return -1;
  l->wake.data = l;
  uv_check_init(l->uv, &l->check);
  l->check.data = l;
  uv_check_start(&l->check, on_check);
  uv_prepare_init(l->uv, &l->prepare);
  l->prepare.data = l;
  uv_prepare_start(&l->prepare, on_prepare);
  uv_timer_init(l->uv, &l->sweep);
  l->sweep.data = l;
  /* Never keeps a loop alive: it only matters while sockets are open. */
  uv_unref((uv_handle_t *)&l->sweep);
  /* In main-loop mode the handles must not keep Node alive on their own;
   * binding.c refs the loop through JS's count of live servers/sockets. */
  if (!l->threaded) {
    uv_unref((uv_handle_t *)&l->wake);
    uv_unref((uv_handle_t *)&l->check);
    uv_unref((uv_handle_t *)&l->prepare);
  }
  l->handles_open = 1;
  return 0;
}

int wsn_loop_start(wsn_loop_t *l, int threaded, uv_loop_t *node_loop,
                   wsn_notify_cb notify, void *notify_ctx) {
  memset(l, 0, sizeof(*l));
  l->threaded = threaded;
  l->notify = notify;
  l->notify_ctx = notify_ctx;
  wsn_rand_init(&l->rand);
  l->read_buf = malloc(WSN_READ_BUF_SIZE);
  l->stop_cmd = wsn_cmd_new(WSN_CMD_STOP, 0, 0);
  if (l->read_buf == NULL || l->stop_cmd == NULL) return -1;
  if (wsn_slots_init(&l->slots) != 0) return -1;
  uv_mutex_init(&l->cmd_mu);
  uv_mutex_init(&l->ev_mu);
  if (threaded) {
    if (uv_loop_init(&l->own_loop) != 0) return -1;
    l->uv = &l->own_loop;
  } else {
    l->uv = node_loop;
  }
  if (init_handles(l) != 0) return -1;
  if (threaded) {
    uv_sem_init(&l->started, 0);
    if (uv_thread_create(&l->thread, loop_thread, l) != 0) return -1;
    uv_sem_wait(&l->started);
    uv_sem_destroy(&l->started);
  }
  return 0;
}

void wsn_loop_closed_one(wsn_loop_t *l) {
  if (!l->stopping || l->pending_closes == 0) return;
  if (--l->pending_closes == 0 && l->stop_done) {
    void (*done)(void *) = l->stop_done;
    l->stop_done = NULL;
    done(l->stop_done_arg);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  wsn_loop_closed_one(h->data);
}

/* Closes every handle of ours: on the loop thread (thread mode) or on the
 * JS thread (main-loop mode). Each close callback counts down. */
static void stop_all(wsn_loop_t *l) {
  if (l->stopping) return;
  l->stopping = 1;
  /* One count for each handle below, plus one released at the end so the
   * count cannot reach zero while we are still walking. */
  l->pending_closes = 1;
  for (wsn_conn_t *c = l->conns; c; c = c->next) {
    if (c->state != WSN_CS_CLOSING_HANDLE) {
      l->pending_closes++;
      wsn_conn_destroy(c);
    } else {
      l->pending_closes++; /* its close callback is already due */
    }
  }
  /* A server whose listener has already closed (it stays listed while its
   * connections live) has no close callback to come: counting it would
   * keep the stop from ever finishing. */
  for (wsn_server_t *s = l->servers; s; s = s->next) {
    if (s->listener_closed) continue;
    l->pending_closes++;
    if (!s->closing) server_close(s);
  }
  /* Every connection and server above abandoned its lookup; the threads
   * still in getaddrinfo are not waited for and will not wake us. */
  if (l->resolver) {
    wsn_resolver_shutdown(l->resolver);
    l->resolver = NULL;
  }
  if (l->handles_open) {
    l->handles_open = 0;
    l->pending_closes += 4;
    uv_close((uv_handle_t *)&l->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&l->wake, on_handle_closed);
    uv_close((uv_handle_t *)&l->check, on_handle_closed);
    uv_close((uv_handle_t *)&l->prepare, on_handle_closed);
  }
  wsn_loop_closed_one(l);
}

void wsn_loop_stop_threaded(wsn_loop_t *l) {
  wsn_cmd_t *cmd = l->stop_cmd;
  l->stop_cmd = NULL;
  if (cmd == NULL) return; /* already stopped */
  wsn_loop_push(l, cmd);
  /* uv_run returns once every handle is closed. */
  uv_thread_join(&l->thread);
  uv_loop_close(l->uv);
}

void wsn_loop_stop_main(wsn_loop_t *l, void (*done)(void *), void *arg) {
  free(l->stop_cmd);
  l->stop_cmd = NULL;
  l->stop_done = done;
  l->stop_done_arg = arg;
  drain_commands(l, 1); /* free what JS queued (stopping drops them) */
  stop_all(l);
}

void wsn_loop_destroy(wsn_loop_t *l) {
  wsn_cmd_t *cmd = l->cmd_head;
  while (cmd) {
    wsn_cmd_t *next = cmd->next;
    discard_command(cmd);
    cmd = next;
  }
  l->cmd_head = l->cmd_tail = NULL;
  wsn_batch_free_externals(&l->batch);
  wsn_batch_free_externals(&l->published);
  wsn_buf_free(&l->batch);
  wsn_buf_free(&l->published);
  wsn_buf_free(&l->spare);
  wsn_buf_free(&l->returned);
  wsn_conn_report_closed(l, 1);
  free(l->read_buf);
  l->read_buf = NULL;
  wsn_buf_free(&l->tls_plain);
  free(l->stop_cmd);
  l->stop_cmd = NULL;
  wsn_slots_destroy(&l->slots);
  uv_mutex_destroy(&l->cmd_mu);
  uv_mutex_destroy(&l->ev_mu);
}
