/*
 * Abandonable name lookups. See resolve.h.
 *
 * Every field of the resolver and every lookup's state is guarded by the
 * resolver's mutex. A lookup is in exactly one state: QUEUED (in the wait
 * list, no thread yet), RUNNING (a thread is in getaddrinfo for it; in no
 * list), DONE (in the done list, waiting for the loop's drain) or ABANDONED
 * (RUNNING, but the loop forgot it: the thread frees it). The loop frees a
 * lookup it drained or abandoned while QUEUED or DONE; the thread frees one
 * abandoned while RUNNING, or any it finishes after shutdown.
 */
#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { LK_QUEUED = 1, LK_RUNNING, LK_DONE, LK_ABANDONED };

struct wsn_lookup_s {
  wsn_lookup_t *next;       /* wait or done list */
  wsn_resolver_t *r;
  wsn_lookup_cb cb;
  void *data;
  int state;
  int status;
  struct addrinfo *res;
  char service[8];
  char host[];
};

struct wsn_resolver_s {
  pthread_mutex_t mu;
  void (*wake)(void *);     /* NULL once shut down */
  void *wake_arg;
  wsn_gai_fn gai;
  int shut;
  int refs;                 /* the loop's (until shutdown) + one per thread */
  unsigned threads;         /* lookup threads alive */
  wsn_lookup_t *wait_head, *wait_tail;
  wsn_lookup_t *done_head, *done_tail;
};

static void push(wsn_lookup_t **head, wsn_lookup_t **tail, wsn_lookup_t *lk) {
  lk->next = NULL;
  if (*tail) (*tail)->next = lk;
  else *head = lk;
  *tail = lk;
}

static wsn_lookup_t *pop(wsn_lookup_t **head, wsn_lookup_t **tail) {
  wsn_lookup_t *lk = *head;
  if (lk == NULL) return NULL;
  *head = lk->next;
  if (*head == NULL) *tail = NULL;
  lk->next = NULL;
  return lk;
}

static void unlink_lookup(wsn_lookup_t **head, wsn_lookup_t **tail,
                          wsn_lookup_t *lk) {
  wsn_lookup_t *prev = NULL;
  for (wsn_lookup_t *p = *head; p; prev = p, p = p->next) {
    if (p != lk) continue;
    if (prev) prev->next = p->next;
    else *head = p->next;
    if (*tail == p) *tail = prev;
    p->next = NULL;
    return;
  }
}

static void lookup_free(wsn_lookup_t *lk) {
  if (lk->res) freeaddrinfo(lk->res);
  free(lk);
}

static void free_list(wsn_lookup_t *lk) {
  while (lk) {
    wsn_lookup_t *next = lk->next;
    lookup_free(lk);
    lk = next;
  }
}

static void resolver_free(wsn_resolver_t *r) {
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* getaddrinfo's EAI_* as libuv's UV_EAI_* (what uv_getaddrinfo reported,
 * and what JS maps to Node's error codes). */
static int translate(int rc, int err) {
  switch (rc) {
    case 0: return 0;
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return UV_EAI_ADDRFAMILY;
#endif
    case EAI_AGAIN: return UV_EAI_AGAIN;
    case EAI_BADFLAGS: return UV_EAI_BADFLAGS;
    case EAI_FAIL: return UV_EAI_FAIL;
    case EAI_FAMILY: return UV_EAI_FAMILY;
    case EAI_MEMORY: return UV_EAI_MEMORY;
#ifdef EAI_NODATA
#if !defined(EAI_NONAME) || EAI_NODATA != EAI_NONAME
    case EAI_NODATA: return UV_EAI_NODATA;
#endif
#endif
    case EAI_NONAME: return UV_EAI_NONAME;
#ifdef EAI_OVERFLOW
    case EAI_OVERFLOW: return UV_EAI_OVERFLOW;
#endif
    case EAI_SERVICE: return UV_EAI_SERVICE;
    case EAI_SOCKTYPE: return UV_EAI_SOCKTYPE;
    case EAI_SYSTEM: return err > 0 ? -err : UV_EAI_FAIL;
    default: return UV_EAI_FAIL;
  }
}

static void *lookup_thread(void *arg) {
  wsn_lookup_t *lk = arg;
  wsn_resolver_t *r = lk->r;
  for (;;) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = r->gai(lk->host, lk->service, &hints, &res);
    int status = translate(rc, errno);
    if (rc != 0) res = NULL;
    wsn_lookup_t *forgotten = NULL, *next;
    int last = 0;
    pthread_mutex_lock(&r->mu);
    if (lk->state == LK_ABANDONED || r->shut) {
      forgotten = lk;
      forgotten->res = res;
    } else {
      lk->state = LK_DONE;
      lk->status = status;
      lk->res = res;
      push(&r->done_head, &r->done_tail, lk);
      r->wake(r->wake_arg);
    }
    /* Shutdown empties the wait list, so this takes nothing after it. */
    next = pop(&r->wait_head, &r->wait_tail);
    if (next) {
      next->state = LK_RUNNING;
    } else {
      r->threads--;
      last = --r->refs == 0;
    }
    pthread_mutex_unlock(&r->mu);
    if (forgotten) lookup_free(forgotten);
    if (next == NULL) {
      if (last) resolver_free(r);
      return NULL;
    }
    lk = next;
  }
}

wsn_resolver_t *wsn_resolver_new(void (*wake)(void *), void *wake_arg,
                                 wsn_gai_fn gai) {
  wsn_resolver_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return NULL;
  if (pthread_mutex_init(&r->mu, NULL) != 0) {
    free(r);
    return NULL;
  }
  r->wake = wake;
  r->wake_arg = wake_arg;
  r->gai = gai ? gai : getaddrinfo;
  r->refs = 1;
  return r;
}

/* A detached thread with every signal blocked (signals are for Node's
 * threads, not for one sitting in getaddrinfo). */
static int spawn(wsn_lookup_t *lk) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return UV_ENOMEM;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, lookup_thread, lk);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -rc;
}

int wsn_lookup_start(wsn_resolver_t *r, const char *host, unsigned port,
                     wsn_lookup_cb cb, void *data, wsn_lookup_t **out) {
  size_t hl = strlen(host);
  wsn_lookup_t *lk = malloc(sizeof(*lk) + hl + 1);
  if (lk == NULL) return UV_ENOMEM;
  memset(lk, 0, sizeof(*lk));
  memcpy(lk->host, host, hl + 1);
  snprintf(lk->service, sizeof(lk->service), "%u", port & 0xffffu);
  lk->r = r;
  lk->cb = cb;
  lk->data = data;
  pthread_mutex_lock(&r->mu);
  if (r->threads >= WSN_RESOLVE_MAX_THREADS) {
    lk->state = LK_QUEUED;
    push(&r->wait_head, &r->wait_tail, lk);
    pthread_mutex_unlock(&r->mu);
    *out = lk;
    return 0;
  }
  r->threads++;
  r->refs++;
  lk->state = LK_RUNNING;
  pthread_mutex_unlock(&r->mu);
  /* From here the thread may finish (and even drain into the done list)
   * before we look again: only the failure path below touches lk. */
  *out = lk;
  int err = spawn(lk);
  if (err == 0) return 0;
  pthread_mutex_lock(&r->mu);
  r->threads--;
  r->refs--; /* never the last: the loop holds one */
  if (r->threads > 0) {
    /* A running thread takes it when it finishes. */
    lk->state = LK_QUEUED;
    push(&r->wait_head, &r->wait_tail, lk);
    pthread_mutex_unlock(&r->mu);
    return 0;
  }
  pthread_mutex_unlock(&r->mu);
  free(lk);
  *out = NULL;
  return err;
}

void wsn_lookup_abandon(wsn_resolver_t *r, wsn_lookup_t *lk) {
  int mine = 1;
  pthread_mutex_lock(&r->mu);
  switch (lk->state) {
    case LK_QUEUED:
      unlink_lookup(&r->wait_head, &r->wait_tail, lk);
      break;
    case LK_DONE:
      unlink_lookup(&r->done_head, &r->done_tail, lk);
      break;
    default: /* RUNNING: its thread frees it when getaddrinfo returns */
      lk->state = LK_ABANDONED;
      mine = 0;
      break;
  }
  pthread_mutex_unlock(&r->mu);
  if (mine) lookup_free(lk);
}

void wsn_resolver_drain(wsn_resolver_t *r) {
  /* One at a time: a callback may abandon another finished lookup, which
   * must then still be in the done list to be found. */
  for (;;) {
    pthread_mutex_lock(&r->mu);
    wsn_lookup_t *lk = pop(&r->done_head, &r->done_tail);
    pthread_mutex_unlock(&r->mu);
    if (lk == NULL) return;
    struct addrinfo *res = lk->res;
    lk->res = NULL;
    lk->cb(lk->data, lk->status, res);
    free(lk);
  }
}

void wsn_resolver_shutdown(wsn_resolver_t *r) {
  pthread_mutex_lock(&r->mu);
  r->shut = 1;
  r->wake = NULL;
  wsn_lookup_t *waiting = r->wait_head, *done = r->done_head;
  r->wait_head = r->wait_tail = NULL;
  r->done_head = r->done_tail = NULL;
  int last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  free_list(waiting);
  free_list(done);
  if (last) resolver_free(r);
}
