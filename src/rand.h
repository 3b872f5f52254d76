/*
 * Random bytes for client masking keys and Sec-WebSocket-Key, from OpenSSL's
 * RAND_bytes (the node binary's copy), drawn from a pool so that a 4-byte
 * mask does not cost a call into the DRBG. One pool per thread that uses it
 * (the caller owns it), so no locking.
 */
#ifndef WSN_RAND_H
#define WSN_RAND_H

#include <stddef.h>
#include <stdint.h>

#define WSN_RAND_POOL 8192

typedef struct {
  size_t pos; /* next unused byte; == WSN_RAND_POOL when empty */
  uint8_t bytes[WSN_RAND_POOL];
} wsn_rand_pool_t;

void wsn_rand_init(wsn_rand_pool_t *p);
/* Fills out with n (<= WSN_RAND_POOL) random bytes. Returns 0, -1 on error. */
int wsn_rand_fill(wsn_rand_pool_t *p, uint8_t *out, size_t n);

#endif
