/*
 * The I/O loop. See loop.h and DESIGN.md "The two threads".
 *
 * One iteration: the wake async drains every queued command (sends go
 * straight into their connection's outbox and mark it dirty); reads run the
 * connections; then the check handle writes each dirty connection once
 * (writev) and publishes the iteration's events to JS in one step.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "loop.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "resolve.h"
#include "tls.h"
#include "topics.h"

static void run_command(wsn_loop_t *l, wsn_cmd_t *cmd);
static void stop_all(wsn_loop_t *l);

/* The fields of a fresh record (data: `len` bytes from off 0). */
static wsn_cmd_t *cmd_init(wsn_cmd_t *cmd, uint32_t type, wsn_id_t id,
                           size_t len, uint32_t flags) {
  cmd->next = NULL;
  cmd->id = id;
  cmd->type = (uint16_t)type;
  cmd->pongs = 0;
  cmd->flags = flags;
  cmd->arg = 0;
  cmd->off = 0;
  cmd->len = len;
  return cmd;
}

wsn_cmd_t *wsn_cmd_new(uint32_t type, wsn_id_t id, size_t cap) {
  wsn_cmd_t *cmd = malloc(sizeof(*cmd) + cap);
  return cmd ? cmd_init(cmd, type, id, cap, 0) : NULL;
}

/* The record flags are distinct bits (two once shared a value). */
_Static_assert(((WSN_SEND_WANT_ACK | WSN_CMD_HANDSHAKE_BYTES | WSN_SEND_COMPRESS |
                 WSN_SEND_FIN | WSN_CMD_ACCOUNTED | WSN_CMD_OWN_FRAME |
                 WSN_CMD_EXTERNAL | WSN_CMD_SHARED | WSN_CMD_POOLED) &
                (0xfu << WSN_SEND_OPCODE_SHIFT)) == 0 &&
                   __builtin_popcount(WSN_SEND_WANT_ACK | WSN_CMD_HANDSHAKE_BYTES |
                                      WSN_SEND_COMPRESS | WSN_SEND_FIN |
                                      WSN_CMD_ACCOUNTED | WSN_CMD_OWN_FRAME |
                                      WSN_CMD_EXTERNAL | WSN_CMD_SHARED |
                                      WSN_CMD_POOLED) == 9,
               "command record flags overlap");

/* How many recycled records each list keeps at most (x 160 bytes). */
#define WSN_CMD_SPARE_MAX 1024u

void wsn_cmd_free(wsn_loop_t *l, wsn_cmd_t *cmd) {
  if (cmd->flags & WSN_CMD_SHARED) {
    wsn_shared_t *sh;
    memcpy(&sh, cmd->data, sizeof(sh));
    wsn_shared_unref(sh);
  } else if (cmd->flags & WSN_CMD_EXTERNAL) {
    wsn_event_t *ev = wsn_loop_post(l, WSN_EV_RELEASE, 0, NULL, 0);
    if (ev) {
      ev->c = (uint64_t)(uintptr_t)wsn_cmd_ext(cmd).ref;
      l->batch_releases++;
    }
  }
  if ((cmd->flags & WSN_CMD_POOLED) && !l->stopping &&
      l->spare_local_n < WSN_CMD_SPARE_MAX) {
    cmd->next = l->spare_local;
    if (l->spare_local == NULL) l->spare_local_tail = cmd;
    l->spare_local = cmd;
    l->spare_local_n++;
    return;
  }
  free(cmd);
}

void wsn_loop_spares_free(wsn_cmd_t *spares) {
  while (spares) {
    wsn_cmd_t *next = spares->next;
    free(spares);
    spares = next;
  }
}

wsn_cmd_t *wsn_loop_cmd_small(wsn_loop_t *l, wsn_cmd_t **spares,
                              uint32_t type, wsn_id_t id, size_t cap) {
  if (cap > WSN_CMD_POOL_CAP) return wsn_cmd_new(type, id, cap);
  if (*spares == NULL) {
    if (!l->threaded) {
      /* Main-loop mode: the loop's list is this thread's. */
      *spares = l->spare_local;
      l->spare_local = l->spare_local_tail = NULL;
      l->spare_local_n = 0;
    } else if (atomic_load_explicit(&l->spare_shared_n,
                                    memory_order_relaxed) > 0) {
      uv_mutex_lock(&l->cmd_mu);
      *spares = l->spare_shared;
      l->spare_shared = NULL;
      atomic_store_explicit(&l->spare_shared_n, 0, memory_order_relaxed);
      uv_mutex_unlock(&l->cmd_mu);
    }
  }
  wsn_cmd_t *cmd = *spares;
  if (cmd) {
    *spares = cmd->next;
  } else {
    cmd = malloc(sizeof(*cmd) + WSN_CMD_POOL_CAP);
    if (cmd == NULL) return NULL;
  }
  return cmd_init(cmd, type, id, cap, WSN_CMD_POOLED);
}

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
       ev = (wsn_event_t *)((uint8_t *)ev + wsn_event_size(ev)))

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
  if (!failed) {
    l->published_releases += l->batch_releases;
    l->batch_releases = 0;
  }
  uv_mutex_unlock(&l->ev_mu);
  /* On ENOMEM the events stay in the private batch for the next try. */
  (void)failed;
  if (was_empty && l->notify) l->notify(l->notify_ctx);
}

wsn_buf_t wsn_loop_take_events(wsn_loop_t *l, uint32_t *releases) {
  uv_mutex_lock(&l->ev_mu);
  wsn_buf_t b = l->published;
  l->published = (wsn_buf_t){0};
  *releases = l->published_releases;
  l->published_releases = 0;
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
         ev->type != WSN_EV_SERVER_CLOSED && ev->type != WSN_EV_CLOSED &&
         ev->type != WSN_EV_RELEASE && ev->type != WSN_EV_DROPPED;
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
  wsn_loop_push_list(l, cmd, cmd);
}

void wsn_loop_push_list(wsn_loop_t *l, wsn_cmd_t *head, wsn_cmd_t *tail) {
  if (!l->threaded && !l->stopping) {
    while (head) {
      wsn_cmd_t *next = head->next;
      wsn_loop_push(l, head);
      head = next;
    }
    return;
  }
  tail->next = NULL;
  uv_mutex_lock(&l->cmd_mu);
  int was_empty = l->cmd_head == NULL;
  if (l->cmd_tail) l->cmd_tail->next = head;
  else l->cmd_head = head;
  l->cmd_tail = tail;
  uv_mutex_unlock(&l->cmd_mu);
  /* uv_async_send coalesces, but skipping it when a wake is already due
   * saves an atomic and possibly a syscall per push. */
  if (was_empty) uv_async_send(&l->wake);
}

static void run_command(wsn_loop_t *l, wsn_cmd_t *cmd) {
  if (cmd->type == WSN_CMD_STOP) {
    free(cmd);
    stop_all(l);
    return;
  }
  wsn_conns_command(l, cmd); /* takes cmd */
}

/* Frees a command that will never run, and what it owns besides memory. */
static void discard_command(wsn_cmd_t *cmd) {
  if (cmd->type == WSN_CMD_ADOPT) {
    const wsn_adopt_args_t *a = (const wsn_adopt_args_t *)cmd->data;
    if (a->fd >= 0) close(a->fd);
  } else if (cmd->type == WSN_CMD_CONNECT) {
    const wsn_connect_args_t *a = (const wsn_connect_args_t *)cmd->data;
    wsn_tls_session_free(a->tls);
  } else if (cmd->type == WSN_CMD_LISTEN) {
    const wsn_listen_args_t *a = (const wsn_listen_args_t *)cmd->data;
    wsn_tls_ctx_release(a->tls);
  }
  /* An external payload's reference goes with the JS environment: a
   * stopping loop posts no RELEASE. */
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
    /* The records written since the last drain go to JS's next sends. */
    uint32_t shared = atomic_load_explicit(&l->spare_shared_n,
                                           memory_order_relaxed);
    if (l->spare_local && shared < WSN_CMD_SPARE_MAX) {
      l->spare_local_tail->next = l->spare_shared;
      l->spare_shared = l->spare_local;
      atomic_store_explicit(&l->spare_shared_n, shared + l->spare_local_n,
                            memory_order_relaxed);
      l->spare_local = l->spare_local_tail = NULL;
      l->spare_local_n = 0;
    }
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
  wsn_conns_flush(l);
  wsn_conns_report_closed(l, 0);
  publish(l);
  /* Main-loop mode: what the dispatcher sent leaves before poll blocks.
   * What that posted (a WRITTEN for a send callback or a 'drain') would
   * wait in the batch until poll returned for something else, for ever
   * with a peer that only reads: ring the wake handle so that poll returns
   * at once and on_check publishes it. */
  if (!l->threaded) {
    wsn_conns_flush(l);
    if (l->batch.len != 0 && !l->stopping) uv_async_send(&l->wake);
  }
}

static void on_check(uv_check_t *h) {
  wsn_loop_t *l = h->data;
  wsn_conns_flush(l);
  wsn_conns_report_closed(l, 0);
  publish(l);
  /* Main-loop mode: publish() ran the JS dispatcher synchronously; what
   * its listeners sent (an echo, say) leaves in this same iteration. */
  if (!l->threaded) wsn_conns_flush(l);
}

static void loop_thread(void *arg) {
  wsn_loop_t *l = arg;
#ifdef __linux__
  /* Named for top -H, perf and gdb (and for test/loopmode.test.js, which
   * looks for it). */
  pthread_setname_np(pthread_self(), "wsn-io");
#endif
  uv_sem_post(&l->started);
  uv_run(l->uv, UV_RUN_DEFAULT);
}

/* One timer per loop, not one per connection: it runs only while some
 * handshake is being read (a slowloris peer sending half a request), ticking
 * at a quarter of the shortest timeout so a deadline is late by at most that
 * much, or while some open connection has an idleTimeout (heartbeat.c),
 * ticking at an eighth of the shortest one. */
static uint64_t sweep_period(uint32_t timeout_ms, uint32_t divisor) {
  uint64_t period = timeout_ms / divisor;
  if (period < 10) period = 10;
  if (period > 1000) period = 1000;
  return period;
}

static void on_sweep(uv_timer_t *t);

static void sweep_every(wsn_loop_t *l, uint64_t period) {
  if (l->sweep_ms == period) return;
  l->sweep_ms = period;
  uv_timer_start(&l->sweep, on_sweep, period, period);
}

static void on_sweep(uv_timer_t *t) {
  wsn_loop_t *l = t->data;
  uint64_t now = uv_now(l->uv);
  size_t reading = wsn_conns_expire(l, now);
  uint32_t idle = wsn_conns_heartbeat(l, now);
  if (reading == 0 && idle == 0) {
    uv_timer_stop(t);
    l->sweep_ms = 0;
  } else if (reading == 0 && sweep_period(idle, 8) > l->sweep_ms) {
    /* The handshakes that wanted it faster are done (the shortest
     * idleTimeout may have closed too): tick no faster than needed. */
    sweep_every(l, sweep_period(idle, 8));
  }
}

void wsn_loop_watch_handshake(wsn_loop_t *l, uint32_t timeout_ms) {
  if (timeout_ms == 0 || l->stopping) return;
  uint64_t period = sweep_period(timeout_ms, 4);
  if (l->sweep_ms != 0 && l->sweep_ms <= period) return;
  sweep_every(l, period);
}

void wsn_loop_watch_idle(wsn_loop_t *l, uint32_t timeout_ms) {
  if (timeout_ms == 0 || l->stopping) return;
  uint64_t period = sweep_period(timeout_ms, 8);
  if (l->sweep_ms != 0 && l->sweep_ms <= period) return;
  sweep_every(l, period);
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
  l->pending_closes = 1 + wsn_conns_stop(l);
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
  wsn_conns_report_closed(l, 1);
  free(l->read_buf);
  l->read_buf = NULL;
  wsn_buf_free(&l->tls_plain);
  free(l->stop_cmd);
  l->stop_cmd = NULL;
  wsn_slots_destroy(&l->slots);
  wsn_loop_spares_free(l->spare_local);
  wsn_loop_spares_free(l->spare_shared);
  l->spare_local = l->spare_local_tail = l->spare_shared = NULL;
  uv_mutex_destroy(&l->cmd_mu);
  uv_mutex_destroy(&l->ev_mu);
}
