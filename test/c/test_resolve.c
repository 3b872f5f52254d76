/*
 * Tests for src/resolve.c: results reach the loop only through wake+drain,
 * an abandoned lookup (queued, running or finished) never calls back and
 * leaks nothing (ASan's leak check at exit), the thread cap queues the
 * rest, and shutdown never waits for a lookup that hangs.
 *
 * A fake getaddrinfo stands in for the resolver: for names starting with
 * "hang" it blocks until the test opens the gate, then answers as for
 * 127.0.0.1; "fail" fails with EAI_NONAME; anything else is the real one.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "resolve.h"
#include "runner.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int gate_open;   /* hanging lookups may return */
static int entered;     /* fake lookups that started */
static int returned;    /* fake lookups that returned */
static int wakes;       /* wake() calls */

static int fake_gai(const char *node, const char *service,
                    const struct addrinfo *hints, struct addrinfo **res) {
  pthread_mutex_lock(&mu);
  entered++;
  pthread_cond_broadcast(&cv);
  if (strncmp(node, "hang", 4) == 0) {
    while (!gate_open) pthread_cond_wait(&cv, &mu);
    node = "127.0.0.1";
  }
  pthread_mutex_unlock(&mu);
  int rc = strncmp(node, "fail", 4) == 0
               ? EAI_NONAME
               : getaddrinfo(node, service, hints, res);
  pthread_mutex_lock(&mu);
  returned++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return rc;
}

static void wake(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  wakes++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static void reset(void) {
  pthread_mutex_lock(&mu);
  gate_open = 0;
  entered = returned = wakes = 0;
  pthread_mutex_unlock(&mu);
}

/* Waits (up to 10 s) until *counter >= n; returns whether it got there. */
static int wait_for(int *counter, int n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  pthread_mutex_lock(&mu);
  int rc = 0;
  while (*counter < n && rc == 0) rc = pthread_cond_timedwait(&cv, &mu, &ts);
  int ok = *counter >= n;
  pthread_mutex_unlock(&mu);
  return ok;
}

static int get(int *counter) {
  pthread_mutex_lock(&mu);
  int v = *counter;
  pthread_mutex_unlock(&mu);
  return v;
}

static void open_gate(void) {
  pthread_mutex_lock(&mu);
  gate_open = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* After the last fake lookup returned, its thread still frees what it holds:
 * give it a moment so the leak check at exit sees the end state. */
static void settle(int lookups) {
  wait_for(&returned, lookups);
  struct timespec d = {0, 100 * 1000 * 1000};
  nanosleep(&d, NULL);
}

typedef struct {
  int calls;
  int status;
  unsigned port;
} result_t;

static void on_done(void *data, int status, struct addrinfo *res) {
  result_t *r = data;
  r->calls++;
  r->status = status;
  if (res && res->ai_family == AF_INET)
    r->port = ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port);
  if (res) freeaddrinfo(res);
}

TEST(result_arrives_through_wake_and_drain) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  ASSERT(r != NULL);
  result_t res = {0};
  wsn_lookup_t *lk;
  ASSERT_EQ(wsn_lookup_start(r, "127.0.0.1", 8080, on_done, &res, &lk), 0);
  ASSERT(wait_for(&wakes, 1));
  ASSERT_EQ(res.calls, 0); /* only drain calls back */
  wsn_resolver_drain(r);
  ASSERT_EQ(res.calls, 1);
  ASSERT_EQ(res.status, 0);
  ASSERT_EQ(res.port, 8080);
  wsn_resolver_drain(r);
  ASSERT_EQ(res.calls, 1);
  wsn_resolver_shutdown(r);
  settle(1);
}

TEST(failure_is_a_uv_code) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  result_t res = {0};
  wsn_lookup_t *lk;
  ASSERT_EQ(wsn_lookup_start(r, "fail.test", 80, on_done, &res, &lk), 0);
  ASSERT(wait_for(&wakes, 1));
  wsn_resolver_drain(r);
  ASSERT_EQ(res.calls, 1);
  ASSERT_EQ(res.status, UV_EAI_NONAME);
  wsn_resolver_shutdown(r);
  settle(1);
}

TEST(abandoned_while_running_never_calls_back) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  result_t res = {0};
  wsn_lookup_t *lk;
  ASSERT_EQ(wsn_lookup_start(r, "hang.test", 80, on_done, &res, &lk), 0);
  ASSERT(wait_for(&entered, 1));
  wsn_lookup_abandon(r, lk);
  open_gate();
  ASSERT(wait_for(&returned, 1));
  settle(1);
  ASSERT_EQ(get(&wakes), 0);
  wsn_resolver_drain(r);
  ASSERT_EQ(res.calls, 0);
  wsn_resolver_shutdown(r);
}

TEST(abandoned_after_finishing_never_calls_back) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  result_t res = {0};
  wsn_lookup_t *lk;
  ASSERT_EQ(wsn_lookup_start(r, "127.0.0.1", 80, on_done, &res, &lk), 0);
  ASSERT(wait_for(&wakes, 1));
  wsn_lookup_abandon(r, lk); /* its result is freed here */
  wsn_resolver_drain(r);
  ASSERT_EQ(res.calls, 0);
  wsn_resolver_shutdown(r);
  settle(1);
}

TEST(cap_queues_the_rest_in_order) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  enum { N = WSN_RESOLVE_MAX_THREADS + 3 };
  result_t res[N] = {{0}};
  wsn_lookup_t *lk[N];
  for (int i = 0; i < N; i++)
    ASSERT_EQ(wsn_lookup_start(r, "hang.test", 1000 + i, on_done, &res[i], &lk[i]), 0);
  ASSERT(wait_for(&entered, WSN_RESOLVE_MAX_THREADS));
  struct timespec d = {0, 100 * 1000 * 1000};
  nanosleep(&d, NULL);
  ASSERT_EQ(get(&entered), WSN_RESOLVE_MAX_THREADS);
  /* A queued lookup abandoned before it started never runs. */
  wsn_lookup_abandon(r, lk[N - 1]);
  open_gate();
  ASSERT(wait_for(&returned, N - 1));
  for (int i = 0; i < N - 1; i++) {
    while (res[i].calls == 0) {
      wsn_resolver_drain(r);
      if (res[i].calls == 0) nanosleep(&d, NULL);
    }
  }
  settle(N - 1);
  wsn_resolver_drain(r);
  ASSERT_EQ(get(&entered), N - 1);
  for (int i = 0; i < N - 1; i++) {
    ASSERT_EQ(res[i].calls, 1);
    ASSERT_EQ(res[i].status, 0);
    ASSERT_EQ(res[i].port, 1000 + i);
  }
  ASSERT_EQ(res[N - 1].calls, 0);
  wsn_resolver_shutdown(r);
}

TEST(shutdown_does_not_wait_and_silences_everything) {
  reset();
  wsn_resolver_t *r = wsn_resolver_new(wake, NULL, fake_gai);
  enum { N = WSN_RESOLVE_MAX_THREADS + 2 };
  result_t res[N + 1] = {{0}};
  wsn_lookup_t *lk;
  /* One finished and not drained, the rest hanging or queued. */
  ASSERT_EQ(wsn_lookup_start(r, "127.0.0.1", 80, on_done, &res[N], &lk), 0);
  ASSERT(wait_for(&wakes, 1));
  for (int i = 0; i < N; i++)
    ASSERT_EQ(wsn_lookup_start(r, "hang.test", 80, on_done, &res[i], &lk), 0);
  ASSERT(wait_for(&entered, 1 + WSN_RESOLVE_MAX_THREADS));
  wsn_resolver_shutdown(r); /* returns with lookups still hanging */
  ASSERT_EQ(get(&returned), 1);
  open_gate();
  /* The queued ones were dropped: only the running ones return. */
  settle(1 + WSN_RESOLVE_MAX_THREADS);
  ASSERT_EQ(get(&entered), 1 + WSN_RESOLVE_MAX_THREADS);
  ASSERT_EQ(get(&wakes), 1);
  for (int i = 0; i <= N; i++) ASSERT_EQ(res[i].calls, 0);
}

RUN_TESTS()
