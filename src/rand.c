#include "rand.h"

#include <openssl/rand.h>
#include <string.h>

void wsn_rand_init(wsn_rand_pool_t *p) { p->pos = WSN_RAND_POOL; }

int wsn_rand_fill(wsn_rand_pool_t *p, uint8_t *out, size_t n) {
  if (n > WSN_RAND_POOL) return -1;
  if (WSN_RAND_POOL - p->pos < n) {
    if (RAND_bytes(p->bytes, WSN_RAND_POOL) != 1) return -1;
    p->pos = 0;
  }
  memcpy(out, p->bytes + p->pos, n);
  /* Used bytes are wiped so a mask is never readable twice. */
  memset(p->bytes + p->pos, 0, n);
  p->pos += n;
  return 0;
}
