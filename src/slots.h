/*
 * Handle table: names a connection or server across threads by
 * {slot, generation}, never by pointer (DESIGN.md "The two threads").
 *
 * Slots are allocated by either thread (a client's id is needed on the JS
 * thread before the I/O thread sees its CONNECT command), under a mutex.
 * Only the I/O thread sets and reads `ptr`, and only it frees a slot (bumping
 * the generation), so a stale command resolves to NULL and is dropped.
 * Memory is allocated in fixed chunks that never move, so the JS thread may
 * read a slot's atomic counters (bytes written) without the lock.
 */
#ifndef WSN_SLOTS_H
#define WSN_SLOTS_H

#include <stdatomic.h>
#include <uv.h>
#include "wsn.h"

#define WSN_SLOT_BITS 24
#define WSN_SLOT_MASK ((1u << WSN_SLOT_BITS) - 1)
#define WSN_SLOTS_PER_CHUNK 1024
#define WSN_SLOT_CHUNKS ((1u << WSN_SLOT_BITS) / WSN_SLOTS_PER_CHUNK)

typedef struct {
  void *ptr;                  /* owner object; I/O thread only */
  _Atomic uint32_t gen;       /* bumped when the slot is freed */
  uint32_t next_free;         /* free list link (slot index + 1), 0 = end */
  _Atomic uint64_t written;   /* bytes handed to the kernel, cumulative */
  /* A listening server: its fd + 1 (0: none), set by the I/O thread once it
   * listens. The JS thread takes it (exchange with 0) in close() to
   * shutdown() the listener at once, as net.Server.close() stops accepting
   * before it returns; the I/O thread clears it before it closes the fd, so
   * the fd is used at most once and never after it was closed. */
  _Atomic int32_t listen_fd;
  _Atomic uint32_t throttled; /* the loop stopped reading for lack of credit */
  /* Credited by the JS thread once it dispatched a batch: what conn.c
   * charged for the connection's events (bytes, records), cumulative. */
  _Atomic uint64_t delivered;
  _Atomic uint64_t delivered_events;
} wsn_slot_t;

typedef struct {
  uv_mutex_t mu;
  wsn_slot_t *chunks[WSN_SLOT_CHUNKS];
  uint32_t count;     /* slots ever created */
  uint32_t free_head; /* slot index + 1 of the first free slot, 0 = none */
} wsn_slots_t;

/* A cross-thread id: generation in the high bits, slot in the low 24. Fits a
 * JS number exactly (gen < 2^29). */
typedef uint64_t wsn_id_t;

static inline uint32_t wsn_id_slot(wsn_id_t id) {
  return (uint32_t)(id & WSN_SLOT_MASK);
}
static inline uint32_t wsn_id_gen(wsn_id_t id) {
  return (uint32_t)(id >> WSN_SLOT_BITS);
}
static inline wsn_id_t wsn_id_make(uint32_t slot, uint32_t gen) {
  return ((wsn_id_t)gen << WSN_SLOT_BITS) | slot;
}

int wsn_slots_init(wsn_slots_t *s);
void wsn_slots_destroy(wsn_slots_t *s);
/* Allocates a slot; returns its id, or 0 when full (id 0 is never used). */
wsn_id_t wsn_slots_alloc(wsn_slots_t *s);
/* I/O thread: frees the slot of id (its generation is bumped). */
void wsn_slots_free(wsn_slots_t *s, wsn_id_t id);
/* The slot of a live id, or NULL if that generation has gone. */
wsn_slot_t *wsn_slots_get(wsn_slots_t *s, wsn_id_t id);
/* I/O thread: the owner object of a live id, or NULL. */
static inline void *wsn_slots_ptr(wsn_slots_t *s, wsn_id_t id) {
  wsn_slot_t *sl = wsn_slots_get(s, id);
  return sl ? sl->ptr : NULL;
}

#endif /* WSN_SLOTS_H */
