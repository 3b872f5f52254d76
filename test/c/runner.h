/*
 * A tiny test runner for the pure C layers. Each test file defines tests with
 * TEST(name) { ... } and ends with RUN_TESTS(), which runs them all and prints
 * "N passed, M failed". ASSERT_* print both sides on failure.
 */
#ifndef WSN_TEST_RUNNER_H
#define WSN_TEST_RUNNER_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef void (*wsn_test_fn)(int *failed);
typedef struct { const char *name; wsn_test_fn fn; } wsn_test_t;

#define WSN_MAX_TESTS 512
static wsn_test_t wsn_tests_[WSN_MAX_TESTS];
static int wsn_ntests_;

#define TEST(name)                                                          \
  static void test_##name(int *failed_);                                    \
  __attribute__((constructor)) static void reg_##name(void) {               \
    if (wsn_ntests_ < WSN_MAX_TESTS)                                        \
      wsn_tests_[wsn_ntests_++] = (wsn_test_t){#name, test_##name};         \
  }                                                                         \
  static void test_##name(int *failed_)

#define FAIL_(...)                                                          \
  do {                                                                      \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                       \
    fprintf(stderr, __VA_ARGS__);                                           \
    fprintf(stderr, "\n");                                                  \
    *failed_ = 1;                                                           \
    return;                                                                 \
  } while (0)

#define ASSERT(c)                                                           \
  do { if (!(c)) FAIL_("assertion failed: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                     \
  do {                                                                      \
    long long a_ = (long long)(a), b_ = (long long)(b);                     \
    if (a_ != b_) FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);           \
  } while (0)
#define ASSERT_MEM_EQ(a, b, n)                                              \
  do {                                                                      \
    if (memcmp((a), (b), (n)) != 0) FAIL_("memory differs: %s vs %s", #a, #b); \
  } while (0)
#define ASSERT_STR_EQ(a, b)                                                 \
  do {                                                                      \
    const char *a_ = (a), *b_ = (b);                                        \
    if (strcmp(a_, b_) != 0) FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_, b_); \
  } while (0)

#define RUN_TESTS()                                                         \
  int main(void) {                                                          \
    int passed = 0, failed = 0;                                             \
    for (int i = 0; i < wsn_ntests_; i++) {                                 \
      int f = 0;                                                            \
      wsn_tests_[i].fn(&f);                                                 \
      if (f) { failed++; fprintf(stderr, "FAIL %s\n", wsn_tests_[i].name); } \
      else passed++;                                                        \
    }                                                                       \
    printf("%s: %d passed, %d failed\n", __FILE__, passed, failed);         \
    return failed ? 1 : 0;                                                  \
  }

#endif
