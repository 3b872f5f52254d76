/*
 * libFuzzer target for src/utf8.c, the incremental UTF-8 validator.
 *
 * Input layout: [c0 c1 c2 c3] text...
 *   c0..c3: chunk sizes, cycled: 0 = the rest, 1..191 that many bytes,
 *           192..255 (c - 191) * 16 bytes (so the 16-byte ASCII fast path
 *           sees long chunks too)
 *
 * The text is fed to wsn_utf8_update in those chunks, each copied into its
 * own exactly-sized heap block (ASan catches any read past a chunk). After
 * every chunk the validator's verdict must equal the reference's for all
 * bytes so far: fail-fast, so it must reject as soon as the bytes can no
 * longer start valid UTF-8, and must not reject while they still can. At
 * the end, the state must be ACCEPT exactly when the whole text is valid
 * (an incomplete sequence at the end is invalid), and wsn_utf8_valid on the
 * whole text must agree. Any disagreement aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define CHECK(c)                                                          \
  do {                                                                    \
    if (!(c)) {                                                           \
      fprintf(stderr, "fuzz_utf8: check failed at %s:%d: %s\n", __FILE__, \
              __LINE__, #c);                                              \
      abort();                                                            \
    }                                                                     \
  } while (0)

/* ---- reference: RFC 3629 by decoding, one code point at a time ---------- */

/* Sequence length from the lead byte: 0xxxxxxx 1, 110xxxxx 2, 1110xxxx 3,
 * 11110xxx 4; anything else (a continuation byte, 11111xxx) is 0. */
static size_t seq_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

/*
 * The first k bytes of a sequence whose lead is s[0] (k <= its length).
 * Returns 1 if they can be (or, k == length, are) a valid encoding, else 0.
 *
 * Following bytes must be 10xxxxxx. The code point must be at least the
 * smallest one that needs this length (no overlongs: 0, 0x80, 0x800,
 * 0x10000), at most U+10FFFF and not a surrogate (U+D800..U+DFFF). With
 * bytes missing, the code points the sequence can still become are exactly
 * [lo, hi]: the bits present followed by all zeros, and by all ones; it can
 * be completed iff that interval meets the allowed range outside the
 * surrogates.
 */
static int seq_ok(const uint8_t *s, size_t k) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  static const uint8_t lead_bits[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  size_t len = seq_len(s[0]);
  if (len == 0) return 0;
  uint32_t cp = s[0] & lead_bits[len];
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  uint32_t missing_bits = 6 * (uint32_t)(len - k);
  uint32_t lo = cp << missing_bits;
  uint32_t hi = lo | ((1u << missing_bits) - 1);
  if (lo < min_cp[len]) lo = min_cp[len];
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo > hi) return 0;
  if (lo >= 0xD800 && hi <= 0xDFFF) return 0;
  return 1;
}

/*
 * One pass over b[0..n). boundary[m] = 1 when b[0..m) ends between code
 * points of valid text; *first_bad = the length of the shortest prefix that
 * can no longer be extended into valid UTF-8 (n + 1 if there is none). A
 * prefix of length m is thus acceptable-so-far iff m < *first_bad, and
 * valid as a whole iff also boundary[m].
 */
static void ref_scan(const uint8_t *b, size_t n, uint8_t *boundary,
                     size_t *first_bad) {
  size_t i = 0;
  memset(boundary, 0, n + 1);
  boundary[0] = 1;
  *first_bad = n + 1;
  while (i < n) {
    size_t len = seq_len(b[i]);
    if (len == 0) {
      *first_bad = i + 1;
      return;
    }
    size_t have = n - i < len ? n - i : len;
    for (size_t k = 1; k <= have; k++) {
      if (!seq_ok(b + i, k)) {
        *first_bad = i + k;
        return;
      }
    }
    if (have < len) return; /* cut short at the end: still completable */
    i += len;
    boundary[i] = 1;
  }
}

static size_t chunk_size(uint8_t c, size_t left) {
  size_t n = c == 0 ? left : c < 192 ? c : (size_t)(c - 191) * 16;
  return n > left ? left : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  const uint8_t *pat = data;
  const uint8_t *text = data + 4;
  size_t n = size - 4;

  uint8_t *boundary = malloc(n + 1);
  size_t first_bad;
  CHECK(boundary != NULL);
  ref_scan(text, n, boundary, &first_bad);
  int valid = first_bad > n && boundary[n];

  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  size_t pos = 0, k = 0;

  /* An empty update changes nothing. */
  CHECK(wsn_utf8_update(&s, text, 0) == 0 && s == WSN_UTF8_ACCEPT);

  while (pos < n) {
    size_t c = chunk_size(pat[k++ % 4], n - pos);
    uint8_t *chunk = malloc(c);
    CHECK(chunk != NULL);
    memcpy(chunk, text + pos, c);
    int rc = wsn_utf8_update(&s, chunk, c);
    free(chunk);
    pos += c;

    if (pos >= first_bad) {
      /* Rejected as soon as the bytes so far cannot be valid, and sticky. */
      CHECK(rc == -1);
    } else {
      CHECK(rc == 0);
      /* ACCEPT exactly between code points. */
      CHECK((s == WSN_UTF8_ACCEPT) == (boundary[pos] == 1));
    }
  }

  /* The final verdict: an incomplete sequence at the end is invalid. */
  CHECK((first_bad > n && s == WSN_UTF8_ACCEPT) == valid);
  CHECK(wsn_utf8_valid(text, n) == valid);

  /* Fail-fast position, in one call each: the prefix just before the first
   * bad byte is still fine, the one through it is rejected. */
  if (first_bad <= n) {
    wsn_utf8_state_t t = WSN_UTF8_ACCEPT;
    CHECK(wsn_utf8_update(&t, text, first_bad - 1) == 0);
    CHECK((t == WSN_UTF8_ACCEPT) == (boundary[first_bad - 1] == 1));
    t = WSN_UTF8_ACCEPT;
    CHECK(wsn_utf8_update(&t, text, first_bad) == -1);
    /* And a rejected state stays rejected even on good bytes. */
    CHECK(wsn_utf8_update(&t, (const uint8_t *)"a", 1) == -1);
  }
  free(boundary);
  return 0;
}
