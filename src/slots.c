#include "slots.h"

#include <stdlib.h>
#include <string.h>

int wsn_slots_init(wsn_slots_t *s) {
  memset(s, 0, sizeof(*s));
  return uv_mutex_init(&s->mu);
}

void wsn_slots_destroy(wsn_slots_t *s) {
  for (uint32_t i = 0; i < WSN_SLOT_CHUNKS && s->chunks[i]; i++)
    free(s->chunks[i]);
  uv_mutex_destroy(&s->mu);
}

static wsn_slot_t *slot_at(wsn_slots_t *s, uint32_t slot) {
  return &s->chunks[slot / WSN_SLOTS_PER_CHUNK][slot % WSN_SLOTS_PER_CHUNK];
}

wsn_id_t wsn_slots_alloc(wsn_slots_t *s) {
  wsn_id_t id = 0;
  uv_mutex_lock(&s->mu);
  if (s->free_head == 0) {
    /* Slot 0 is skipped so that id 0 can mean "none". */
    if (s->count == 0) s->count = 1;
    uint32_t slot = s->count;
    if (slot > WSN_SLOT_MASK) goto out;
    uint32_t chunk = slot / WSN_SLOTS_PER_CHUNK;
    if (s->chunks[chunk] == NULL) {
      s->chunks[chunk] = calloc(WSN_SLOTS_PER_CHUNK, sizeof(wsn_slot_t));
      if (s->chunks[chunk] == NULL) goto out;
    }
    s->count++;
    s->free_head = slot + 1;
    slot_at(s, slot)->next_free = 0;
    atomic_store(&slot_at(s, slot)->gen, 1);
  }
  uint32_t slot = s->free_head - 1;
  wsn_slot_t *sl = slot_at(s, slot);
  s->free_head = sl->next_free;
  sl->next_free = 0;
  sl->ptr = NULL;
  atomic_store(&sl->written, 0);
  atomic_store(&sl->delivered, 0);
  atomic_store(&sl->delivered_events, 0);
  atomic_store(&sl->throttled, 0);
  id = wsn_id_make(slot, atomic_load(&sl->gen));
out:
  uv_mutex_unlock(&s->mu);
  return id;
}

void wsn_slots_free(wsn_slots_t *s, wsn_id_t id) {
  uint32_t slot = wsn_id_slot(id);
  uv_mutex_lock(&s->mu);
  if (slot != 0 && slot < s->count) {
    wsn_slot_t *sl = slot_at(s, slot);
    if (atomic_load(&sl->gen) == wsn_id_gen(id)) {
      uint32_t g = atomic_load(&sl->gen) + 1;
      /* Generations wrap within 29 bits so ids stay exact JS numbers. */
      if (g >= (1u << 29)) g = 1;
      atomic_store(&sl->gen, g);
      sl->ptr = NULL;
      sl->next_free = s->free_head;
      s->free_head = slot + 1;
    }
  }
  uv_mutex_unlock(&s->mu);
}

wsn_slot_t *wsn_slots_get(wsn_slots_t *s, wsn_id_t id) {
  uint32_t slot = wsn_id_slot(id);
  uint32_t chunk = slot / WSN_SLOTS_PER_CHUNK;
  if (slot == 0 || chunk >= WSN_SLOT_CHUNKS) return NULL;
  /* A chunk pointer is published under the mutex before any id in it is
   * handed out, and ids reach the other thread through a mutex-protected
   * queue, so the plain read is ordered. */
  wsn_slot_t *c = s->chunks[chunk];
  if (c == NULL) return NULL;
  wsn_slot_t *sl = &c[slot % WSN_SLOTS_PER_CHUNK];
  return atomic_load(&sl->gen) == wsn_id_gen(id) ? sl : NULL;
}
