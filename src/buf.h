/*
 * Growable byte buffer. Empty buffers own no memory, so a connection that
 * is not assembling a message costs only the struct.
 */
#ifndef WSN_BUF_H
#define WSN_BUF_H

#include <stdlib.h>
#include <string.h>
#include "wsn.h"

typedef struct {
  uint8_t *base;
  size_t len;
  size_t cap;
} wsn_buf_t;

/* Makes room for `extra` more bytes. Returns 0, or -1 on overflow/ENOMEM
 * (the buffer is unchanged then). */
static inline int wsn_buf_reserve(wsn_buf_t *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(b->base, cap);
  if (p == NULL) return -1;
  b->base = p;
  b->cap = cap;
  return 0;
}

static inline int wsn_buf_append(wsn_buf_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (wsn_buf_reserve(b, n) != 0) return -1;
  memcpy(b->base + b->len, p, n);
  b->len += n;
  return 0;
}

static inline void wsn_buf_free(wsn_buf_t *b) {
  free(b->base);
  b->base = NULL;
  b->len = b->cap = 0;
}

/* Hands the memory to the caller (who frees it) and leaves b empty. */
static inline uint8_t *wsn_buf_steal(wsn_buf_t *b) {
  uint8_t *p = b->base;
  b->base = NULL;
  b->len = b->cap = 0;
  return p;
}

#endif /* WSN_BUF_H */
