/*
 * Name lookups that the loop can walk away from.
 *
 * libuv's uv_getaddrinfo runs on its threadpool and cannot be cancelled
 * once a pool thread has picked it up, so a loop that stops while a
 * resolver hangs would wait for the resolver's timeout (process.exit(), a
 * worker being terminated). Here each lookup runs getaddrinfo on a detached
 * thread of ours, and the loop may ABANDON it at any moment: from then on
 * the loop never waits for it and never hears from it again; the thread
 * frees everything when getaddrinfo finally returns.
 *
 * A finished lookup is queued on its resolver and the loop is told through
 * `wake` (called with the resolver's lock held, never after
 * wsn_resolver_shutdown returned); the loop thread then calls
 * wsn_resolver_drain, which runs each finished lookup's callback there.
 *
 * The resolver is shared by the loop and its lookup threads and freed by
 * whichever lets go of it last, so the loop's own memory may be freed right
 * after wsn_resolver_shutdown.
 *
 * Knows nothing of libuv handles: only its error codes (UV_EAI_*), so a
 * callback can hand the status straight to ws's error reporting.
 */
#ifndef WSN_RESOLVE_H
#define WSN_RESOLVE_H

#include <netdb.h>

typedef struct wsn_resolver_s wsn_resolver_t;
typedef struct wsn_lookup_s wsn_lookup_t;

/* Loop thread, from wsn_resolver_drain: status is 0 or a negative UV_EAI_*
 * (or -errno) code; on success `res` is a getaddrinfo list the callback
 * owns (free it with freeaddrinfo or uv_freeaddrinfo). */
typedef void (*wsn_lookup_cb)(void *data, int status, struct addrinfo *res);

/* getaddrinfo's signature: tests substitute a slow one. */
typedef int (*wsn_gai_fn)(const char *node, const char *service,
                          const struct addrinfo *hints, struct addrinfo **res);

/* At most this many lookup threads run per resolver (one per loop), the
 * abandoned ones still finishing included; further lookups wait in FIFO
 * order and a thread that finishes takes the next one. The cap keeps a burst
 * of connects to a hanging name from creating threads without bound (each
 * abandoned lookup keeps its thread until the resolver gives up); it is
 * libuv's default threadpool size (4) doubled, since these threads only
 * ever resolve names and a lookup queued behind hung ones is no worse off
 * than it was on libuv's pool shared with file I/O. */
#define WSN_RESOLVE_MAX_THREADS 8

/* `wake(arg)` is called from a lookup thread (under the resolver's lock)
 * when a finished lookup was queued; gai NULL means getaddrinfo. Returns
 * NULL when out of memory. */
wsn_resolver_t *wsn_resolver_new(void (*wake)(void *), void *wake_arg,
                                 wsn_gai_fn gai);

/* Loop thread: starts looking up host:port (any family, SOCK_STREAM).
 * Returns 0 and sets *out, or a negative UV_* code (nothing started; cb is
 * never called). */
int wsn_lookup_start(wsn_resolver_t *r, const char *host, unsigned port,
                     wsn_lookup_cb cb, void *data, wsn_lookup_t **out);

/* Loop thread: forget a lookup whose callback has not run yet. Its callback
 * will never run; whatever it found is freed. Never blocks on the lookup. */
void wsn_lookup_abandon(wsn_resolver_t *r, wsn_lookup_t *lk);

/* Loop thread: runs the callbacks of the finished lookups. */
void wsn_resolver_drain(wsn_resolver_t *r);

/* Loop thread, once: abandons every lookup, promises never to call wake
 * again, and lets go of the resolver (freed now, or by the last lookup
 * thread to finish). */
void wsn_resolver_shutdown(wsn_resolver_t *r);

#endif /* WSN_RESOLVE_H */
