/*
 * Incremental UTF-8 validator: a byte-class DFA derived from the table of
 * well-formed byte sequences in the Unicode standard (ch. 3, table 3-7).
 *
 * Each byte is mapped to one of 12 classes; the state is kept pre-multiplied
 * by the number of classes so one transition is a single table load
 * (trans[state + class]). Only the lead bytes E0, ED, F0 and F4 restrict the
 * range of the next byte, which is how overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..BF) are
 * rejected; C0, C1 and F5..FF can never appear.
 */
#include "utf8.h"

#include "wsn.h"

#include <string.h>

/* Byte classes. */
enum {
  C_ASCII = 0, /* 00..7F */
  C_CONT_LO,   /* 80..8F */
  C_CONT_MID,  /* 90..9F */
  C_CONT_HI,   /* A0..BF */
  C_BAD,       /* C0, C1, F5..FF: never valid */
  C_LEAD2,     /* C2..DF */
  C_E0,        /* E0: second byte A0..BF (no overlongs) */
  C_LEAD3,     /* E1..EC, EE, EF */
  C_ED,        /* ED: second byte 80..9F (no surrogates) */
  C_F0,        /* F0: second byte 90..BF (no overlongs) */
  C_LEAD4,     /* F1..F3 */
  C_F4,        /* F4: second byte 80..8F (max U+10FFFF) */
  C_COUNT
};

/* States, pre-multiplied by C_COUNT. S_ACC must be 0 (WSN_UTF8_ACCEPT). */
enum {
  S_ACC = 0 * C_COUNT, /* between code points */
  S_REJ = 1 * C_COUNT, /* invalid; sticky */
  S_C1 = 2 * C_COUNT,  /* one more continuation byte (80..BF) needed */
  S_C2 = 3 * C_COUNT,  /* two more needed */
  S_C3 = 4 * C_COUNT,  /* three more needed */
  S_E0 = 5 * C_COUNT,  /* after E0: A0..BF, then one more */
  S_ED = 6 * C_COUNT,  /* after ED: 80..9F, then one more */
  S_F0 = 7 * C_COUNT,  /* after F0: 90..BF, then two more */
  S_F4 = 8 * C_COUNT   /* after F4: 80..8F, then two more */
};

static const uint8_t byte_class[256] = {
  /* 00..7F */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  /* 80..8F */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  /* 90..9F */
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  /* A0..BF */
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  /* C0..DF: C0, C1 bad, the rest 2-byte leads */
  4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
  /* E0..EF */
  6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
  /* F0..FF */
  9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

#define R S_REJ
static const uint8_t transition[9 * C_COUNT] = {
  /*        ASCII  LO    MID   HI    BAD  LEAD2 E0    LEAD3 ED    F0    LEAD4 F4 */
  /* ACC */ S_ACC, R,    R,    R,    R,   S_C1, S_E0, S_C2, S_ED, S_F0, S_C3, S_F4,
  /* REJ */ R,     R,    R,    R,    R,   R,    R,    R,    R,    R,    R,    R,
  /* C1  */ R,     S_ACC,S_ACC,S_ACC,R,   R,    R,    R,    R,    R,    R,    R,
  /* C2  */ R,     S_C1, S_C1, S_C1, R,   R,    R,    R,    R,    R,    R,    R,
  /* C3  */ R,     S_C2, S_C2, S_C2, R,   R,    R,    R,    R,    R,    R,    R,
  /* E0  */ R,     R,    R,    S_C1, R,   R,    R,    R,    R,    R,    R,    R,
  /* ED  */ R,     S_C1, S_C1, R,    R,   R,    R,    R,    R,    R,    R,    R,
  /* F0  */ R,     R,    S_C2, S_C2, R,   R,    R,    R,    R,    R,    R,    R,
  /* F4  */ R,     S_C2, R,    R,    R,   R,    R,    R,    R,    R,    R,    R,
};
#undef R

#define HIGH_BITS 0x8080808080808080ull

int wsn_utf8_update(wsn_utf8_state_t *state, const uint8_t *buf, size_t len) {
  uint32_t s = *state;
  size_t i = 0;

  /* A state we never produce (corrupted or already rejected) stays bad, and
   * this bound keeps the table index in range whatever the caller passes. */
  if (WSN_UNLIKELY(s > S_F4 || s == S_REJ)) {
    *state = S_REJ;
    return -1;
  }

  while (i < len) {
    size_t end;

    if (s == S_ACC && len - i >= 16) {
      uint64_t a, b;
      memcpy(&a, buf + i, 8);
      memcpy(&b, buf + i + 8, 8);
      if (WSN_LIKELY(((a | b) & HIGH_BITS) == 0)) {
        i += 16;
        continue;
      }
      /* This block has non-ASCII bytes: walk exactly it with the DFA and
       * retry the fast path after, so mixed text does not pay a 16-byte
       * probe per byte. */
      end = i + 16;
    } else {
      /* Mid-sequence or a short tail: step at most 16 bytes, then go back
       * to the top where the fast path may apply again. */
      end = len - i > 16 ? i + 16 : len;
    }

    for (; i < end; i++) {
      s = transition[s + byte_class[buf[i]]];
      if (WSN_UNLIKELY(s == S_REJ)) {
        *state = S_REJ;
        return -1;
      }
    }
  }

  *state = s;
  return 0;
}

int wsn_utf8_valid(const uint8_t *buf, size_t len) {
  wsn_utf8_state_t s = WSN_UTF8_ACCEPT;
  return wsn_utf8_update(&s, buf, len) == 0 && s == WSN_UTF8_ACCEPT;
}
