/*
 * Topics (publish/subscribe): the index a publish fans out from, and the
 * reference-counted bytes every subscriber's outbox record points to.
 * Pure: no sockets, threads or N-API. Members are opaque owners (the loop's
 * connections), so this file is unit-tested alone (test/c/test_topics.c).
 *
 * One index per loop, used only by that loop's thread. A topic is named by
 * (hub, name): a hub is one WebSocketServer, so that two servers in one
 * process have separate topics, as Bun's and uWS's servers do.
 *
 * Both directions are O(1) per membership change: a topic holds an array of
 * its memberships (swap-removed, each knowing its position), and an owner
 * holds a list of its memberships, so that a closing connection leaves all
 * its topics without a search of the index. Unsubscribing one topic scans
 * the owner's own list (the topics one socket joined: the user's choice,
 * never the peer's).
 */
#ifndef WSN_TOPICS_H
#define WSN_TOPICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsn_topic_s wsn_topic_t;

/* One owner in one topic. */
typedef struct {
  wsn_topic_t *topic;
  void *owner;
  uint32_t pos; /* its index in topic->members */
} wsn_sub_t;

/* An owner's memberships (a connection keeps a pointer to one, lazily). */
typedef struct {
  wsn_sub_t **items;
  uint32_t count, cap;
} wsn_subs_t;

struct wsn_topic_s {
  wsn_topic_t *next; /* hash chain */
  uint64_t hash;
  uint32_t hub;
  uint32_t count, cap;
  wsn_sub_t **members;
  size_t name_len;
  uint8_t name[];
};

typedef struct wsn_topics_s {
  wsn_topic_t **buckets;
  uint32_t nbuckets; /* a power of two */
  uint32_t ntopics;
} wsn_topics_t;

/* Longest topic name C accepts (JS checks it first, with a RangeError). */
#define WSN_TOPIC_MAX (64u * 1024)

/* An empty index (NULL: no memory). */
wsn_topics_t *wsn_topics_new(void);
/* Frees the index. Owners leave first (wsn_topics_leave_all): their lists
 * are theirs; what is left of topics and memberships is freed here. */
void wsn_topics_free(wsn_topics_t *t);

/* Adds owner (whose list is *subs, created on first use) to (hub, name).
 * Returns 1 if added, 0 if it was a member already, -1 out of memory (or a
 * name longer than WSN_TOPIC_MAX); nothing changes on -1. */
int wsn_topics_subscribe(wsn_topics_t *t, wsn_subs_t **subs, void *owner,
                         uint32_t hub, const uint8_t *name, size_t len);
/* Removes the owner from (hub, name): 1 if it was a member, else 0. A topic
 * with no member left is freed, and so is an empty list (*subs = NULL). */
int wsn_topics_unsubscribe(wsn_topics_t *t, wsn_subs_t **subs, uint32_t hub,
                           const uint8_t *name, size_t len);
/* Removes the owner from every topic it is in; *subs becomes NULL. */
void wsn_topics_leave_all(wsn_topics_t *t, wsn_subs_t **subs);
/* The topic (hub, name), or NULL when it has no member. */
wsn_topic_t *wsn_topics_find(const wsn_topics_t *t, uint32_t hub,
                             const uint8_t *name, size_t len);

static inline void *wsn_topic_member(const wsn_topic_t *tp, uint32_t i) {
  return tp->members[i]->owner;
}

/* ---- shared bytes ------------------------------------------------------- */

/* Bytes several outbox records point to: a publish's frame, built once. One
 * thread (the loop's) takes and drops references, so the count is a plain
 * integer. */
typedef struct {
  uint32_t refs;
  size_t len;
  uint8_t data[];
} wsn_shared_t;

/* A block of len bytes with one reference (NULL: no memory). */
wsn_shared_t *wsn_shared_new(size_t len);
static inline wsn_shared_t *wsn_shared_ref(wsn_shared_t *s) {
  s->refs++;
  return s;
}
/* Drops a reference; the last one frees the block. NULL is a no-op. */
void wsn_shared_unref(wsn_shared_t *s);

#endif /* WSN_TOPICS_H */
