/*
 * Topics on the loop thread (see conn.h, topics.h and docs/topics.md):
 * joining and leaving, and a publish's fan-out. One PUBLISH command carries
 * one frame, built once on the JS thread; every subscriber's outbox gets a
 * small record pointing to the same reference-counted bytes, written with
 * that connection's other corked writes.
 *
 * permessage-deflate: a subscriber whose side has no context takeover
 * (server_no_context_takeover) can take a frame compressed for anyone with
 * the same window, so the message is compressed once per window size for
 * all of them (uWS's SHARED_COMPRESSOR); a subscriber with context takeover
 * has its own stream, so its frame goes through its own compressor, in
 * order with its other sends.
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

void wsn_conn_topic_command(wsn_conn_t *c, wsn_cmd_t *cmd) {
  wsn_loop_t *l = c->loop;
  uint32_t hub = (uint32_t)cmd->arg;
  const uint8_t *name = cmd->data + cmd->off;
  if (cmd->type == WSN_CMD_SUBSCRIBE) {
    /* A client's frames are masked, each with its own key: one frame can
     * never be shared with it (lib/topics.js refuses clients first). */
    if (!c->is_server) {
      free(cmd);
      return;
    }
    if (l->topics == NULL) l->topics = wsn_topics_new();
    /* Out of memory: JS believes the socket subscribed, and it would miss
     * messages without a word; closing says so (as other lost commands). */
    if (l->topics == NULL ||
        wsn_topics_subscribe(l->topics, &c->subs, c, hub, name, cmd->len) < 0)
      wsn_conn_destroy(c);
  } else if (l->topics) {
    wsn_topics_unsubscribe(l->topics, &c->subs, hub, name, cmd->len);
  }
  free(cmd);
  if (l->topics && l->topics->ntopics == 0) {
    wsn_topics_free(l->topics);
    l->topics = NULL;
  }
}

void wsn_conn_leave_topics(wsn_conn_t *c) {
  wsn_loop_t *l = c->loop;
  if (c->subs == NULL || l->topics == NULL) return;
  wsn_topics_leave_all(l->topics, &c->subs);
  if (l->topics->ntopics == 0) {
    wsn_topics_free(l->topics);
    l->topics = NULL;
  }
}

/* Window sizes zlib takes for a raw deflater (deflate.c makes 8 a 9). */
#define BITS_MIN 9
#define BITS_COUNT 7

typedef struct {
  const uint8_t *payload;
  size_t len;
  int opcode;
  uint64_t counted;
  wsn_shared_t *plain;              /* the frame as JS built it (lazy) */
  wsn_shared_t *deflated[BITS_COUNT]; /* shared compressed frames (lazy) */
  int deflate_failed[BITS_COUNT];
} fanout_t;

/* A compressed frame (server: unmasked, RSV1) of out's bytes in a new
 * shared block: NULL when out of memory. */
static uint8_t *frame_of(const wsn_buf_t *out, int opcode, size_t *len,
                         wsn_shared_t **sh) {
  size_t h = wsn_frame_header_size(out->len, 0);
  *sh = wsn_shared_new(h + out->len);
  if (*sh == NULL) return NULL;
  uint8_t *p = (*sh)->data;
  wsn_frame_header(p, 1, 1, opcode, out->len, NULL);
  if (out->len) memcpy(p + h, out->base, out->len);
  *len = h + out->len;
  return p;
}

/* The frame compressed once for every no-context-takeover subscriber with
 * this codec's window. A fresh raw-deflate stream per message is exactly
 * what such a peer expects (each message starts from an empty window), so
 * the bytes are valid for all of them; level, memLevel and strategy are
 * the first such subscriber's (one server's options: the same for all). */
static wsn_shared_t *shared_deflated(fanout_t *f, const wsn_pmd_codec_t *pc) {
  int i = pc->def_bits - BITS_MIN;
  if (i < 0 || i >= BITS_COUNT) i = BITS_COUNT - 1;
  if (f->deflated[i] || f->deflate_failed[i]) return f->deflated[i];
  wsn_pmd_codec_t tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.def_bits = (int8_t)(BITS_MIN + i);
  tmp.level = pc->level;
  tmp.mem_level = pc->mem_level;
  tmp.strategy = pc->strategy;
  tmp.def_no_takeover = 1;
  wsn_buf_t out = {0};
  wsn_shared_t *sh = NULL;
  size_t n;
  if (wsn_pmd_compress(&tmp, f->payload, f->len, 1, &out) == WSN_PMD_OK)
    frame_of(&out, f->opcode, &n, &sh);
  wsn_pmd_codec_free(&tmp);
  wsn_buf_free(&out);
  if (sh == NULL) f->deflate_failed[i] = 1;
  f->deflated[i] = sh;
  return sh;
}

/* Through the subscriber's own compressor (context takeover): its frame
 * only. Returns -1 after failing the connection. */
static int own_deflated(wsn_conn_t *c, fanout_t *f) {
  wsn_buf_t out = {0};
  wsn_shared_t *sh = NULL;
  size_t n;
  if (wsn_pmd_compress(c->pmd, f->payload, f->len, 1, &out) != WSN_PMD_OK ||
      frame_of(&out, f->opcode, &n, &sh) == NULL) {
    wsn_buf_free(&out);
    wsn_conn_destroy(c);
    return -1;
  }
  wsn_buf_free(&out);
  int r = wsn_outbox_shared(c, sh, f->counted, 1);
  wsn_shared_unref(sh);
  return r;
}

/* Ids of the subscribers skipped for backpressure, for one DROPPED event. */
static int note_dropped(wsn_buf_t *ids, wsn_id_t id) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(id >> (8 * i));
  return wsn_buf_append(ids, le, 8);
}

static void post_dropped(wsn_loop_t *l, const wsn_publish_args_t *a,
                         const uint8_t *topic, wsn_buf_t *ids,
                         const fanout_t *f) {
  uint64_t count = ids->len / 8;
  if (wsn_buf_append(ids, topic, a->topic_len) != 0 ||
      wsn_buf_append(ids, f->payload, f->len) != 0)
    return; /* out of memory: the event is lost, the skip stays */
  wsn_event_t *ev = wsn_loop_post(l, WSN_EV_DROPPED, 0, ids->base, ids->len);
  if (ev == NULL) return;
  ev->a = a->flags & WSN_PUB_BINARY;
  ev->b = a->topic_len;
  ev->c = count;
}

void wsn_conns_publish(wsn_loop_t *l, wsn_cmd_t *cmd) {
  wsn_publish_args_t a;
  /* One fewer waiting (binding.c counted it in). */
  if (atomic_load(&l->pub_pending) > 0) atomic_fetch_sub(&l->pub_pending, 1);
  if (cmd->off < sizeof(a)) {
    free(cmd);
    return;
  }
  memcpy(&a, cmd->data, sizeof(a));
  const uint8_t *topic = cmd->data + sizeof(a);
  wsn_topic_t *tp = wsn_topics_find(l->topics, a.hub, topic, a.topic_len);
  if (tp == NULL || a.header_len > cmd->len) {
    free(cmd);
    return;
  }
  const uint8_t *frame = cmd->data + cmd->off;
  fanout_t f;
  memset(&f, 0, sizeof(f));
  f.payload = frame + a.header_len;
  f.len = cmd->len - a.header_len;
  f.opcode = (a.flags & WSN_PUB_BINARY) ? WSN_OP_BINARY : WSN_OP_TEXT;
  f.counted = a.counted;
  wsn_buf_t dropped = {0};
  /* Members do not leave during the loop: a connection that fails here is
   * destroyed, and leaves its topics only in its close callback. */
  for (uint32_t i = 0; i < tp->count; i++) {
    wsn_conn_t *c = wsn_topic_member(tp, i);
    if (c->id == cmd->id || c->state == WSN_CS_CLOSING_HANDLE) continue;
    if (c->close_sent || c->state != WSN_CS_OPEN || c->shut) {
      /* Closing: frames after our close frame never go (as a send). */
      wsn_outbox_write_off(c, f.counted);
      continue;
    }
    if (c->send_frag || wsn_outbox_buffered(c) > a.max_backpressure) {
      /* A slow subscriber never slows or grows the others: skipped, or
       * closed at once (its backlog would hold a close frame back). */
      if ((a.flags & WSN_PUB_CLOSE_ON_LIMIT) && !c->send_frag) {
        wsn_conn_destroy(c);
        continue;
      }
      wsn_outbox_write_off(c, f.counted);
      if (note_dropped(&dropped, c->id) != 0) {
        /* No memory to tell JS: ws's way with a lost event is a close. */
        wsn_conn_destroy(c);
      }
      continue;
    }
    int compress = (a.flags & WSN_PUB_COMPRESS) && c->pmd &&
                   (!c->pmd->def_no_takeover || f.len >= a.threshold);
    if (compress && !c->pmd->def_no_takeover) {
      own_deflated(c, &f);
      continue;
    }
    wsn_shared_t *sh = NULL;
    if (compress) sh = shared_deflated(&f, c->pmd);
    if (sh) {
      wsn_outbox_shared(c, sh, f.counted, 1);
      continue;
    }
    if (compress) {
      wsn_conn_destroy(c); /* out of memory compressing */
      continue;
    }
    if (f.plain == NULL) {
      f.plain = wsn_shared_new(cmd->len);
      if (f.plain == NULL) {
        wsn_conn_destroy(c);
        continue;
      }
      memcpy(f.plain->data, frame, cmd->len);
    }
    wsn_outbox_shared(c, f.plain, f.counted, 0);
  }
  if (dropped.len) post_dropped(l, &a, topic, &dropped, &f);
  wsn_buf_free(&dropped);
  wsn_shared_unref(f.plain);
  for (int i = 0; i < BITS_COUNT; i++) wsn_shared_unref(f.deflated[i]);
  free(cmd);
}
