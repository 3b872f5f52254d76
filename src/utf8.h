/*
 * Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, max
 * U+10FFFF). Pure. A text message may be split across fragments and reads at
 * any byte, so the state carries across calls; the check fails at the first
 * bad byte (fail-fast, as Autobahn 6.4.x expects). ASCII runs take a fast
 * path 16 bytes at a time.
 */
#ifndef WSN_UTF8_H
#define WSN_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define WSN_UTF8_ACCEPT 0u

/* The carried state: WSN_UTF8_ACCEPT between complete code points. */
typedef uint32_t wsn_utf8_state_t;

/* Returns 0 if buf can still be a prefix of valid UTF-8, -1 if not. */
int wsn_utf8_update(wsn_utf8_state_t *state, const uint8_t *buf, size_t len);

/* Returns 1 if the whole of buf is valid UTF-8 (state starts and ends at
 * ACCEPT). */
int wsn_utf8_valid(const uint8_t *buf, size_t len);

#endif /* WSN_UTF8_H */
