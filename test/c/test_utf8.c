/*
 * Tests for src/utf8.c: Autobahn 6.x style cases, fail-fast position, every
 * split point against the whole buffer, and a randomized comparison against
 * a deliberately naive reference decoder.
 */
#include <stdlib.h>

#include "runner.h"
#include "utf8.h"

/* ---- reference: decode code point by code point, no tables, no tricks ---- */

/*
 * Returns 1 if b[0..n) is valid UTF-8. Decodes each sequence to its code
 * point and checks it against the minimum for its length (no overlongs),
 * the surrogate range and U+10FFFF.
 */
static int ref_valid(const uint8_t *b, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = b[i], cp, min;
    size_t len;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((b[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (b[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/*
 * Returns 1 if b[0..n) can still be extended into valid UTF-8: it is valid
 * as is, or valid after appending up to 3 continuation bytes. 80, 90 and A0
 * cover every second-byte restriction (E0 needs A0.., ED ..9F, F0 90..,
 * F4 ..8F), so trying those is exhaustive.
 */
static int ref_valid_prefix(const uint8_t *b, size_t n) {
  static const uint8_t conts[3] = {0x80, 0x90, 0xA0};
  uint8_t *t = malloc(n + 3 + 1);
  int ok = 0;
  memcpy(t, b, n);
  for (int k = 0; k <= 3 && !ok; k++) {
    int combos = k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 9 : 27;
    for (int c = 0; c < combos && !ok; c++) {
      int x = c;
      for (int j = 0; j < k; j++, x /= 3) t[n + j] = conts[x % 3];
      ok = ref_valid(t, n + (size_t)k);
    }
  }
  free(t);
  return ok;
}

/* Index of the first byte at which the input stops being a valid prefix,
 * or n if it never does. */
static size_t ref_fail_pos(const uint8_t *b, size_t n) {
  for (size_t i = 1; i <= n; i++)
    if (!ref_valid_prefix(b, i)) return i - 1;
  return n;
}

/* Feeds b byte by byte; returns the index of the byte update rejected. */
static size_t dfa_fail_pos(const uint8_t *b, size_t n) {
  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  for (size_t i = 0; i < n; i++)
    if (wsn_utf8_update(&s, b + i, 1) != 0) return i;
  return n;
}

/* Checks validity whole, split at every position, and byte by byte. Each
 * piece lives in its own exact-size allocation so ASan sees over-reads. */
static int check_all_splits(const uint8_t *b, size_t n, int expect) {
  if (wsn_utf8_valid(b, n) != expect) return 0;
  for (size_t cut = 0; cut <= n; cut++) {
    wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
    uint8_t *a = malloc(cut + 1), *c = malloc(n - cut + 1);
    memcpy(a, b, cut);
    memcpy(c, b + cut, n - cut);
    int r1 = wsn_utf8_update(&s, a, cut);
    int r2 = r1 == 0 ? wsn_utf8_update(&s, c, n - cut) : -1;
    int got = r1 == 0 && r2 == 0 && s == WSN_UTF8_ACCEPT;
    free(a);
    free(c);
    if (got != expect) return 0;
  }
  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) ok = wsn_utf8_update(&s, b + i, 1) == 0;
  return (ok && s == WSN_UTF8_ACCEPT) == expect;
}

typedef struct {
  const char *name;
  const char *bytes;
  size_t len;
  int valid;
} utf8_case_t;

#define V(name, s) {name, s, sizeof(s) - 1, 1}
#define I(name, s) {name, s, sizeof(s) - 1, 0}

static const utf8_case_t cases[] = {
  V("empty", ""),
  V("ascii", "Hello, world"),
  V("6.2.1 mixed", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0"
                   "\xc3\xa1-UTF-8!!"),
  V("6.5.1 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
  /* 6.7 first possible sequence of each length */
  V("U+0000", "\x00"),
  V("U+0080", "\xc2\x80"),
  V("U+0800", "\xe0\xa0\x80"),
  V("U+10000", "\xf0\x90\x80\x80"),
  /* 6.8 / 6.9 last possible of each length */
  V("U+007F", "\x7f"),
  V("U+07FF", "\xdf\xbf"),
  V("U+FFFF", "\xef\xbf\xbf"),
  V("U+10FFFF", "\xf4\x8f\xbf\xbf"),
  /* 6.11 other boundaries */
  V("U+D7FF", "\xed\x9f\xbf"),
  V("U+E000", "\xee\x80\x80"),
  V("U+FFFD", "\xef\xbf\xbd"),
  V("U+FFFE noncharacter", "\xef\xbf\xbe"),
  V("U+1FFFF", "\xf0\x9f\xbf\xbf"),
  V("U+FDD0", "\xef\xb7\x90"),
  /* beyond the range */
  I("U+110000", "\xf4\x90\x80\x80"),
  I("F4 BF", "\xf4\xbf\xbf\xbf"),
  I("5-byte U+200000", "\xf8\x88\x80\x80\x80"),
  I("6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80"),
  I("5-byte last", "\xfb\xbf\xbf\xbf\xbf"),
  I("6-byte last", "\xfd\xbf\xbf\xbf\xbf\xbf"),
  I("F5", "\xf5\x80\x80\x80"),
  I("F7 (old 4-byte max)", "\xf7\xbf\xbf\xbf"),
  /* 6.12 unexpected continuation bytes */
  I("lone 80", "\x80"),
  I("lone BF", "\xbf"),
  I("80 BF", "\x80\xbf"),
  I("80 BF 80", "\x80\xbf\x80"),
  I("ascii then 80", "abc\x80"),
  /* 6.13 lonely start characters */
  I("C0 space", "\xc0\x20"),
  I("C2 space", "\xc2\x20"),
  I("E0 space", "\xe0\x20"),
  I("F0 space", "\xf0\x20"),
  I("E1 80 space", "\xe1\x80\x20"),
  /* 6.14 sequences with the last continuation byte missing */
  I("C0 truncated", "\xc0"),
  I("E0 80 truncated", "\xe0\x80"),
  I("F0 80 80 truncated", "\xf0\x80\x80"),
  I("DF truncated", "\xdf"),
  I("EF BF truncated", "\xef\xbf"),
  I("F7 BF BF truncated", "\xf7\xbf\xbf"),
  I("C2 truncated", "\xc2"),
  I("E1 80 truncated", "\xe1\x80"),
  I("F1 80 80 truncated", "\xf1\x80\x80"),
  I("F4 8F BF truncated", "\xf4\x8f\xbf"),
  I("6.15 all truncated", "\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf"),
  /* 6.16 impossible bytes */
  I("FE", "\xfe"),
  I("FF", "\xff"),
  I("FE FE FF FF", "\xfe\xfe\xff\xff"),
  /* 6.17 overlongs of '/' */
  I("overlong / 2", "\xc0\xaf"),
  I("overlong / 3", "\xe0\x80\xaf"),
  I("overlong / 4", "\xf0\x80\x80\xaf"),
  I("overlong / 5", "\xf8\x80\x80\x80\xaf"),
  I("overlong / 6", "\xfc\x80\x80\x80\x80\xaf"),
  /* 6.18 maximum overlongs */
  I("max overlong 2 (C1 BF)", "\xc1\xbf"),
  I("max overlong 3 (E0 9F BF)", "\xe0\x9f\xbf"),
  I("max overlong 4 (F0 8F BF BF)", "\xf0\x8f\xbf\xbf"),
  /* 6.19 overlong NUL */
  I("overlong NUL 2", "\xc0\x80"),
  I("overlong NUL 3", "\xe0\x80\x80"),
  I("overlong NUL 4", "\xf0\x80\x80\x80"),
  /* 6.20 single surrogates */
  I("U+D800", "\xed\xa0\x80"),
  I("U+DB7F", "\xed\xad\xbf"),
  I("U+DB80", "\xed\xae\x80"),
  I("U+DBFF", "\xed\xaf\xbf"),
  I("U+DC00", "\xed\xb0\x80"),
  I("U+DF80", "\xed\xbe\x80"),
  I("U+DFFF", "\xed\xbf\xbf"),
  /* 6.21 paired surrogates */
  I("U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80"),
  I("U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf"),
  /* 6.3 kosme with a surrogate in the middle */
  I("6.3.1 kosme + surrogate",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69"
    "\x74\x65\x64"),
  /* 6.4 fail-fast cases */
  I("6.4.1", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
             "\x65\x64\x69\x74\x65\x64"),
  I("6.4.3", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"),
  /* invalid byte after a long ASCII run (fast path then DFA) */
  I("32 ascii then FF", "0123456789abcdef0123456789abcdef\xff"),
  I("15 ascii then C0", "0123456789abcde\xc0\x80"),
  I("16 ascii then ED A0", "0123456789abcdef\xed\xa0\x80xxxxxxxxxxxxxxxx"),
  V("long mixed", "0123456789abcdef\xc3\xa9" "0123456789abcdef\xf0\x9f\x98\x80"
                  "0123456789abcdef0123456789abcdef\xe2\x82\xac"),
};

TEST(utf8_case_table) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const utf8_case_t *c = &cases[i];
    const uint8_t *b = (const uint8_t *)c->bytes;
    if (ref_valid(b, c->len) != c->valid)
      FAIL_("reference disagrees with table: %s", c->name);
    if (wsn_utf8_valid(b, c->len) != c->valid)
      FAIL_("wsn_utf8_valid wrong for %s (expected %d)", c->name, c->valid);
    if (!check_all_splits(b, c->len, c->valid))
      FAIL_("split/byte-by-byte result wrong for %s", c->name);
    if (dfa_fail_pos(b, c->len) != ref_fail_pos(b, c->len))
      FAIL_("fail position for %s: %zu, reference %zu", c->name,
            dfa_fail_pos(b, c->len), ref_fail_pos(b, c->len));
  }
}

TEST(utf8_fail_fast_positions) {
  /* 6.4.1: F4 is fine, 90 after F4 is the first bad byte (index 11). */
  const uint8_t a[] = {0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce,
                       0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80, 0x65};
  ASSERT_EQ(dfa_fail_pos(a, sizeof(a)), 12);
  /* Surrogate: ED is fine, A0 is not. */
  const uint8_t s[] = {'a', 0xed, 0xa0, 0x80};
  ASSERT_EQ(dfa_fail_pos(s, sizeof(s)), 2);
  /* C0 can never start anything: fails on itself. */
  const uint8_t c0[] = {'a', 'b', 0xc0, 0x80};
  ASSERT_EQ(dfa_fail_pos(c0, sizeof(c0)), 2);
  /* Overlong E0 80: fails on the 80. */
  const uint8_t e0[] = {0xe0, 0x80, 0x80};
  ASSERT_EQ(dfa_fail_pos(e0, sizeof(e0)), 1);
  /* A whole-buffer update stops at the first bad byte too (result only). */
  wsn_utf8_state_t st = WSN_UTF8_ACCEPT;
  ASSERT_EQ(wsn_utf8_update(&st, a, 12), 0);
  ASSERT(st != WSN_UTF8_ACCEPT);
  ASSERT_EQ(wsn_utf8_update(&st, a + 12, 1), -1);
}

TEST(utf8_truncated_is_valid_prefix_but_not_valid) {
  const char *prefixes[] = {"\xc2", "\xe0\xa0", "\xe1", "\xed\x9f",
                            "\xf0\x90\x80", "\xf4\x8f", "\xf3"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    const uint8_t *b = (const uint8_t *)prefixes[i];
    size_t n = strlen(prefixes[i]);
    wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
    ASSERT_EQ(wsn_utf8_update(&s, b, n), 0);
    ASSERT(s != WSN_UTF8_ACCEPT);
    ASSERT_EQ(wsn_utf8_valid(b, n), 0);
  }
}

TEST(utf8_reject_is_sticky) {
  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  ASSERT_EQ(wsn_utf8_update(&s, (const uint8_t *)"\xff", 1), -1);
  ASSERT_EQ(wsn_utf8_update(&s, (const uint8_t *)"abc", 3), -1);
  ASSERT_EQ(wsn_utf8_update(&s, NULL, 0), -1);
  /* A garbage state must not index out of the table. */
  s = 0xFFFFFFFFu;
  ASSERT_EQ(wsn_utf8_update(&s, (const uint8_t *)"a", 1), -1);
}

TEST(utf8_empty_update) {
  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  ASSERT_EQ(wsn_utf8_update(&s, NULL, 0), 0);
  ASSERT_EQ(s, WSN_UTF8_ACCEPT);
  ASSERT_EQ(wsn_utf8_valid(NULL, 0), 1);
}

TEST(utf8_every_code_point) {
  /* Encode each scalar value by hand and check it alone and inside ASCII
   * padding (so both the fast path and the DFA see it at every offset % 16);
   * surrogates encoded the same way must fail. */
  uint8_t buf[64];
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t e[4];
    size_t n;
    if (cp < 0x80) {
      e[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
      e[0] = (uint8_t)(0xC0 | cp >> 6), e[1] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 2;
    } else if (cp < 0x10000) {
      e[0] = (uint8_t)(0xE0 | cp >> 12);
      e[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
      e[2] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 3;
    } else {
      e[0] = (uint8_t)(0xF0 | cp >> 18);
      e[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
      e[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
      e[3] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 4;
    }
    int expect = !(cp >= 0xD800 && cp <= 0xDFFF);
    if (wsn_utf8_valid(e, n) != expect) FAIL_("code point U+%04X", cp);
    size_t pad = cp % 19;
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + pad, e, n);
    if (wsn_utf8_valid(buf, sizeof(buf)) != expect)
      FAIL_("code point U+%04X padded by %zu", cp, pad);
  }
  /* Above U+10FFFF with the same 4-byte scheme, up to the F7 limit. */
  for (uint32_t cp = 0x110000; cp < 0x200000; cp += 0x111) {
    uint8_t e[4] = {(uint8_t)(0xF0 | cp >> 18),
                    (uint8_t)(0x80 | (cp >> 12 & 0x3F)),
                    (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
                    (uint8_t)(0x80 | (cp & 0x3F))};
    if (wsn_utf8_valid(e, 4)) FAIL_("U+%X accepted", cp);
  }
}

TEST(utf8_all_two_and_three_byte_inputs) {
  /* Exhaustive over every 1-, 2- and 3-byte string against the reference,
   * both for the final result and for the fail-fast position. */
  uint8_t b[3];
  for (int x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    ASSERT_EQ(wsn_utf8_valid(b, 1), ref_valid(b, 1));
    for (int y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      if (wsn_utf8_valid(b, 2) != ref_valid(b, 2)) FAIL_("%02x %02x", x, y);
      for (int z = 0; z < 256; z++) {
        b[2] = (uint8_t)z;
        if (wsn_utf8_valid(b, 3) != ref_valid(b, 3))
          FAIL_("%02x %02x %02x", x, y, z);
      }
    }
  }
}

TEST(utf8_four_byte_lead_second_byte_table) {
  /* Every lead F0..FF with every second byte, followed by 80 80: checks the
   * F0/F4 second-byte limits and the F5+ rejection exhaustively. */
  for (int x = 0xF0; x < 256; x++) {
    for (int y = 0; y < 256; y++) {
      uint8_t b[4] = {(uint8_t)x, (uint8_t)y, 0x80, 0x80};
      if (wsn_utf8_valid(b, 4) != ref_valid(b, 4)) FAIL_("%02x %02x", x, y);
      if (dfa_fail_pos(b, 4) != ref_fail_pos(b, 4))
        FAIL_("fail pos %02x %02x", x, y);
    }
  }
}

/* xorshift64*: fixed-seed, platform-independent. */
static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Appends one random piece: mostly valid code points near the interesting
 * boundaries, ASCII runs for the fast path, and occasionally raw junk. */
static size_t gen_piece(uint8_t *o, int allow_bad) {
  static const uint32_t edges[] = {0x0,    0x7F,   0x80,    0x7FF,   0x800,
                                   0xD7FF, 0xE000, 0xFFFD,  0xFFFF,  0x10000,
                                   0x3FFFF, 0x40000, 0xFFFFF, 0x100000,
                                   0x10FFFF};
  uint32_t r = rnd() % 100, cp;
  if (r < 30) {
    size_t n = 1 + rnd() % 40;
    for (size_t i = 0; i < n; i++) o[i] = (uint8_t)(0x20 + rnd() % 95);
    return n;
  }
  if (r < 37 && allow_bad) {
    o[0] = (uint8_t)rnd();
    return 1;
  }
  if (r < 40 && allow_bad) {
    /* A surrogate or out-of-range value encoded the naive way. */
    cp = rnd() % 2 ? 0xD800 + rnd() % 0x800 : 0x110000 + rnd() % 0x1000;
  } else if (r < 60) {
    cp = edges[rnd() % (sizeof(edges) / sizeof(edges[0]))];
  } else {
    do cp = rnd() % 0x110000;
    while (cp >= 0xD800 && cp <= 0xDFFF);
  }
  size_t n;
  if (cp < 0x80) {
    o[0] = (uint8_t)cp, n = 1;
  } else if (cp < 0x800) {
    o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | cp >> 12);
    o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 4;
  }
  /* Sometimes drop the tail to make a truncated sequence. */
  if (allow_bad && n > 1 && rnd() % 25 == 0) n -= 1 + rnd() % (n - 1);
  return n;
}

TEST(utf8_randomized_vs_reference) {
  enum { MAXLEN = 600 };
  uint8_t buf[MAXLEN + 64];
  int n_valid = 0, n_invalid = 0;
  rng_state = 0x9E3779B97F4A7C15ull;
  for (int iter = 0; iter < 20000; iter++) {
    size_t len = 0, target = rnd() % MAXLEN;
    /* Odd iterations draw only valid pieces (so the valid path is well
     * exercised); even ones may draw junk, which mostly gives invalid input.
     * The reference decides either way. */
    int allow_bad = iter % 2 == 0;
    while (len < target) len += gen_piece(buf + len, allow_bad);
    int expect = ref_valid(buf, len);
    expect ? n_valid++ : n_invalid++;

    /* Whole buffer, in an exact-size allocation. */
    uint8_t *copy = malloc(len + 1);
    memcpy(copy, buf, len);
    if (wsn_utf8_valid(copy, len) != expect) FAIL_("iter %d whole", iter);

    /* Random chunking with state carried across calls. */
    wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
      size_t n = 1 + rnd() % 48;
      if (n > len - off) n = len - off;
      uint8_t *chunk = malloc(n);
      memcpy(chunk, copy + off, n);
      rc = wsn_utf8_update(&s, chunk, n);
      free(chunk);
      off += n;
    }
    free(copy);
    if ((rc == 0 && s == WSN_UTF8_ACCEPT) != expect)
      FAIL_("iter %d chunked", iter);

    /* Fail-fast position on a sample (the reference is slow). */
    if (iter % 20 == 0 && len < 200 &&
        dfa_fail_pos(buf, len) != ref_fail_pos(buf, len))
      FAIL_("iter %d fail pos %zu vs %zu", iter, dfa_fail_pos(buf, len),
            ref_fail_pos(buf, len));
  }
  /* The generator must exercise both outcomes meaningfully. */
  ASSERT(n_valid > 2000);
  ASSERT(n_invalid > 2000);
}

TEST(utf8_split_every_position_long) {
  /* A long valid text with every sequence length, split at every byte. */
  const char *t = "ASCII run long enough for the fast path...... \xc2\xa9 "
                  "\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf end of "
                  "text, and more ASCII to cross 16-byte blocks \xed\x9f\xbf";
  ASSERT(check_all_splits((const uint8_t *)t, strlen(t), 1));
  uint8_t bad[128];
  size_t n = strlen(t);
  memcpy(bad, t, n);
  bad[20] = 0xC0; /* inside the ASCII run, i.e. in a fast-path block */
  ASSERT(check_all_splits(bad, n, 0));
}

RUN_TESTS()
