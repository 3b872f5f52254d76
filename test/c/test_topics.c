/*
 * Tests for src/topics.c: membership both ways, hubs kept apart, swap
 * removal keeping positions right, leave-all, growth of the table, and a
 * randomized run against a naive model (a bit per owner and topic).
 */
#include <stdlib.h>

#include "runner.h"
#include "topics.h"

#define S(str) (const uint8_t *)(str), strlen(str)

static int has(const wsn_topics_t *t, uint32_t hub, const char *name,
               void *owner) {
  wsn_topic_t *tp = wsn_topics_find(t, hub, S(name));
  if (tp == NULL) return 0;
  for (uint32_t i = 0; i < tp->count; i++) {
    if (tp->members[i]->pos != i) return -1; /* positions must be exact */
    if (wsn_topic_member(tp, i) == owner) return 1;
  }
  return 0;
}

TEST(subscribe_unsubscribe) {
  wsn_topics_t *t = wsn_topics_new();
  ASSERT(t != NULL);
  int a, b;
  wsn_subs_t *sa = NULL, *sb = NULL;
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, S("news")), 1);
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, S("news")), 0);
  ASSERT_EQ(wsn_topics_subscribe(t, &sb, &b, 1, S("news")), 1);
  ASSERT_EQ(wsn_topics_subscribe(t, &sb, &b, 2, S("news")), 1);
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, S("")), 1);
  ASSERT_EQ(t->ntopics, 3);
  ASSERT_EQ(wsn_topics_find(t, 1, S("news"))->count, 2);
  ASSERT_EQ(wsn_topics_find(t, 2, S("news"))->count, 1);
  ASSERT(wsn_topics_find(t, 3, S("news")) == NULL);
  ASSERT(wsn_topics_find(t, 1, S("new")) == NULL);
  ASSERT_EQ(has(t, 1, "news", &a), 1);
  ASSERT_EQ(has(t, 1, "news", &b), 1);
  ASSERT_EQ(wsn_topics_unsubscribe(t, &sa, 1, S("news")), 1);
  ASSERT_EQ(wsn_topics_unsubscribe(t, &sa, 1, S("news")), 0);
  ASSERT_EQ(wsn_topics_unsubscribe(t, &sa, 9, S("x")), 0);
  ASSERT_EQ(has(t, 1, "news", &a), 0);
  ASSERT_EQ(has(t, 1, "news", &b), 1);
  ASSERT(sa != NULL); /* still in "" */
  ASSERT_EQ(wsn_topics_unsubscribe(t, &sa, 1, S("")), 1);
  ASSERT(sa == NULL);
  ASSERT_EQ(t->ntopics, 2);
  wsn_topics_leave_all(t, &sb);
  ASSERT(sb == NULL);
  ASSERT_EQ(t->ntopics, 0);
  wsn_topics_leave_all(t, &sb); /* nothing: a no-op */
  wsn_topics_free(t);
}

TEST(long_names_and_limit) {
  wsn_topics_t *t = wsn_topics_new();
  uint8_t *name = malloc(WSN_TOPIC_MAX + 1);
  ASSERT(name != NULL);
  memset(name, 'x', WSN_TOPIC_MAX + 1);
  int a;
  wsn_subs_t *sa = NULL;
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, name, WSN_TOPIC_MAX), 1);
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, name, WSN_TOPIC_MAX + 1), -1);
  ASSERT(wsn_topics_find(t, 1, name, WSN_TOPIC_MAX) != NULL);
  wsn_topics_leave_all(t, &sa);
  free(name);
  wsn_topics_free(t);
}

/* Many owners and topics (the table grows), against a naive model. */
#define OWNERS 200
#define TOPICS 300
TEST(random_against_model) {
  static uint8_t model[OWNERS][TOPICS];
  memset(model, 0, sizeof(model));
  wsn_topics_t *t = wsn_topics_new();
  wsn_subs_t *subs[OWNERS] = {0};
  int owners[OWNERS];
  srand(7);
  for (int step = 0; step < 200000; step++) {
    int o = rand() % OWNERS, k = rand() % TOPICS, op = rand() % 10;
    char name[16];
    snprintf(name, sizeof(name), "t%d", k);
    uint32_t hub = (uint32_t)(k % 3);
    if (op < 6) {
      int r = wsn_topics_subscribe(t, &subs[o], &owners[o], hub, S(name));
      ASSERT_EQ(r, model[o][k] ? 0 : 1);
      model[o][k] = 1;
    } else if (op < 9) {
      int r = wsn_topics_unsubscribe(t, &subs[o], hub, S(name));
      ASSERT_EQ(r, model[o][k]);
      model[o][k] = 0;
    } else if (step % 7 == 0) {
      wsn_topics_leave_all(t, &subs[o]);
      memset(model[o], 0, TOPICS);
    }
  }
  uint32_t topics = 0;
  for (int k = 0; k < TOPICS; k++) {
    char name[16];
    snprintf(name, sizeof(name), "t%d", k);
    uint32_t count = 0;
    for (int o = 0; o < OWNERS; o++) {
      count += model[o][k];
      ASSERT_EQ(has(t, (uint32_t)(k % 3), name, &owners[o]), model[o][k]);
    }
    wsn_topic_t *tp = wsn_topics_find(t, (uint32_t)(k % 3), S(name));
    ASSERT_EQ(tp ? tp->count : 0, count);
    topics += count > 0;
  }
  ASSERT_EQ(t->ntopics, topics);
  ASSERT(t->nbuckets >= 16);
  for (int o = 0; o < OWNERS; o++) {
    wsn_topics_leave_all(t, &subs[o]);
    ASSERT(subs[o] == NULL);
  }
  ASSERT_EQ(t->ntopics, 0);
  wsn_topics_free(t);
}

TEST(shared_refcount) {
  wsn_shared_t *s = wsn_shared_new(5);
  ASSERT(s != NULL);
  ASSERT_EQ(s->refs, 1);
  ASSERT_EQ(s->len, 5);
  memcpy(s->data, "hello", 5);
  wsn_shared_ref(s);
  wsn_shared_ref(s);
  wsn_shared_unref(s);
  wsn_shared_unref(s);
  ASSERT_EQ(s->refs, 1);
  ASSERT_MEM_EQ(s->data, "hello", 5);
  wsn_shared_unref(s); /* freed: ASan reports a leak otherwise */
  wsn_shared_unref(NULL);
  ASSERT(wsn_shared_new(SIZE_MAX) == NULL);
}

TEST(free_with_members_left) {
  /* An index freed with topics in it frees them (owners' lists are theirs
   * and freed here by the test, after). */
  wsn_topics_t *t = wsn_topics_new();
  int a;
  wsn_subs_t *sa = NULL;
  ASSERT_EQ(wsn_topics_subscribe(t, &sa, &a, 1, S("x")), 1);
  wsn_topics_free(t);
  free(sa->items);
  free(sa);
}

RUN_TESTS()
