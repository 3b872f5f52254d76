/*
 * Topics: the (hub, name) -> members index and shared bytes (topics.h).
 */
#include "topics.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 16u

/* FNV-1a over the hub and the name: topic names come from the application
 * (never from the peer), so a keyed hash against flooding is not needed. */
static uint64_t topic_hash(uint32_t hub, const uint8_t *name, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 4; i++) {
    h ^= (uint8_t)(hub >> (8 * i));
    h *= 1099511628211ull;
  }
  for (size_t i = 0; i < len; i++) {
    h ^= name[i];
    h *= 1099511628211ull;
  }
  return h;
}

wsn_topics_t *wsn_topics_new(void) {
  wsn_topics_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
  if (t->buckets == NULL) {
    free(t);
    return NULL;
  }
  t->nbuckets = INITIAL_BUCKETS;
  return t;
}

static void topic_free(wsn_topic_t *tp) {
  for (uint32_t i = 0; i < tp->count; i++) free(tp->members[i]);
  free(tp->members);
  free(tp);
}

void wsn_topics_free(wsn_topics_t *t) {
  if (t == NULL) return;
  for (uint32_t b = 0; b < t->nbuckets; b++) {
    wsn_topic_t *tp = t->buckets[b];
    while (tp) {
      wsn_topic_t *next = tp->next;
      topic_free(tp);
      tp = next;
    }
  }
  free(t->buckets);
  free(t);
}

static wsn_topic_t **find_link(const wsn_topics_t *t, uint64_t h, uint32_t hub,
                               const uint8_t *name, size_t len) {
  wsn_topic_t **pp = &t->buckets[h & (t->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next) {
    wsn_topic_t *tp = *pp;
    if (tp->hash == h && tp->hub == hub && tp->name_len == len &&
        (len == 0 || memcmp(tp->name, name, len) == 0))
      return pp;
  }
  return pp;
}

wsn_topic_t *wsn_topics_find(const wsn_topics_t *t, uint32_t hub,
                             const uint8_t *name, size_t len) {
  if (t == NULL) return NULL;
  return *find_link(t, topic_hash(hub, name, len), hub, name, len);
}

/* Doubles the table once topics outnumber buckets (best effort: a failed
 * grow leaves longer chains, never an error). */
static void maybe_grow(wsn_topics_t *t) {
  if (t->ntopics < t->nbuckets || t->nbuckets > UINT32_MAX / 2) return;
  uint32_t n = t->nbuckets * 2;
  wsn_topic_t **nb = calloc(n, sizeof(*nb));
  if (nb == NULL) return;
  for (uint32_t b = 0; b < t->nbuckets; b++) {
    wsn_topic_t *tp = t->buckets[b];
    while (tp) {
      wsn_topic_t *next = tp->next;
      tp->next = nb[tp->hash & (n - 1)];
      nb[tp->hash & (n - 1)] = tp;
      tp = next;
    }
  }
  free(t->buckets);
  t->buckets = nb;
  t->nbuckets = n;
}

/* Room for one more pointer in an array of `count` of `*cap`. */
static int grow_ptrs(void ***items, uint32_t count, uint32_t *cap) {
  if (count < *cap) return 0;
  if (*cap > UINT32_MAX / 2) return -1;
  uint32_t n = *cap ? *cap * 2 : 4;
  void **p = realloc(*items, (size_t)n * sizeof(void *));
  if (p == NULL) return -1;
  *items = p;
  *cap = n;
  return 0;
}

int wsn_topics_subscribe(wsn_topics_t *t, wsn_subs_t **subs, void *owner,
                         uint32_t hub, const uint8_t *name, size_t len) {
  if (len > WSN_TOPIC_MAX) return -1;
  uint64_t h = topic_hash(hub, name, len);
  wsn_topic_t **pp = find_link(t, h, hub, name, len);
  wsn_topic_t *tp = *pp;
  if (tp && *subs) {
    for (uint32_t i = 0; i < (*subs)->count; i++)
      if ((*subs)->items[i]->topic == tp) return 0;
  }
  /* Everything that can fail first, so that -1 changes nothing. */
  wsn_subs_t *list = *subs;
  int new_list = list == NULL;
  if (new_list && (list = calloc(1, sizeof(*list))) == NULL) return -1;
  wsn_sub_t *sub = malloc(sizeof(*sub));
  int new_topic = tp == NULL;
  if (sub && new_topic) {
    tp = malloc(sizeof(*tp) + len);
    if (tp) {
      memset(tp, 0, sizeof(*tp));
      tp->hash = h;
      tp->hub = hub;
      tp->name_len = len;
      if (len) memcpy(tp->name, name, len);
    }
  }
  if (sub == NULL || tp == NULL ||
      grow_ptrs((void ***)&tp->members, tp->count, &tp->cap) != 0 ||
      grow_ptrs((void ***)&list->items, list->count, &list->cap) != 0) {
    free(sub);
    if (new_topic && tp) {
      free(tp->members);
      free(tp);
    }
    if (new_list) {
      free(list->items);
      free(list);
    }
    return -1;
  }
  if (new_topic) {
    tp->next = *pp;
    *pp = tp;
    t->ntopics++;
    maybe_grow(t);
  }
  sub->topic = tp;
  sub->owner = owner;
  sub->pos = tp->count;
  tp->members[tp->count++] = sub;
  list->items[list->count++] = sub;
  *subs = list;
  return 1;
}

/* Takes `sub` out of its topic (freeing the topic if it empties) and frees
 * it; the owner's list is the caller's. */
static void leave(wsn_topics_t *t, wsn_sub_t *sub) {
  wsn_topic_t *tp = sub->topic;
  wsn_sub_t *last = tp->members[--tp->count];
  tp->members[sub->pos] = last;
  last->pos = sub->pos;
  free(sub);
  if (tp->count > 0) return;
  wsn_topic_t **pp = find_link(t, tp->hash, tp->hub, tp->name, tp->name_len);
  if (*pp == tp) *pp = tp->next;
  t->ntopics--;
  free(tp->members);
  free(tp);
}

int wsn_topics_unsubscribe(wsn_topics_t *t, wsn_subs_t **subs, uint32_t hub,
                           const uint8_t *name, size_t len) {
  wsn_subs_t *list = *subs;
  if (list == NULL) return 0;
  wsn_topic_t *tp = wsn_topics_find(t, hub, name, len);
  if (tp == NULL) return 0;
  for (uint32_t i = 0; i < list->count; i++) {
    if (list->items[i]->topic != tp) continue;
    leave(t, list->items[i]);
    list->items[i] = list->items[--list->count];
    if (list->count == 0) {
      free(list->items);
      free(list);
      *subs = NULL;
    }
    return 1;
  }
  return 0;
}

void wsn_topics_leave_all(wsn_topics_t *t, wsn_subs_t **subs) {
  wsn_subs_t *list = *subs;
  if (list == NULL) return;
  for (uint32_t i = 0; i < list->count; i++) leave(t, list->items[i]);
  free(list->items);
  free(list);
  *subs = NULL;
}

wsn_shared_t *wsn_shared_new(size_t len) {
  if (len > SIZE_MAX - sizeof(wsn_shared_t)) return NULL;
  wsn_shared_t *s = malloc(sizeof(*s) + len);
  if (s == NULL) return NULL;
  s->refs = 1;
  s->len = len;
  return s;
}

void wsn_shared_unref(wsn_shared_t *s) {
  if (s && --s->refs == 0) free(s);
}
