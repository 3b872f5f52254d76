/*
 * One connection's life on the loop thread (see conn.h): how it is created
 * and freed, what it reads (frames into events, with the limits of ws 8 and
 * the undelivered bound), the commands JS sends it, and its closing.
 *
 * The close rules mirror ws 8 (websocket.js): a close frame is answered with
 * the same code and reason; once a close frame has been both sent and
 * received (or a protocol error was reported), our side ends the TCP stream
 * after the outbox drains; the socket is destroyed once the peer's end has
 * arrived too. A protocol error reports ws's error, and JS answers it with
 * the matching close code (error_with_payload); data read after a close
 * frame or an error is ignored, but the socket is still read to notice the
 * peer's end.
 *
 * The other concerns of a connection have files of their own: outbox.c
 * (writing), server.c (listening, accepting, the server handshake),
 * client.c (connecting, the client handshake).
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "resolve.h"
#include "tls.h"

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_plaintext(wsn_conn_t *c, uint8_t *p, size_t n);
static void process_frames(wsn_conn_t *c, uint8_t *buf, size_t len);
static void unmark_dirty(wsn_loop_t *l, wsn_conn_t *c);

/* ---- events and their bound -------------------------------------- */

/* Whether the connection's events waiting for JS (what was charged,
 * minus what the JS thread credited to its slot) are at the bound: past
 * 4 MiB or at maxBufferedChunks records; with `resume`, whether they are
 * still above half of it. */
static int over_bound(wsn_conn_t *c, int resume) {
  wsn_slot_t *sl = wsn_slots_get(&c->loop->slots, c->id);
  uint64_t bytes = sl ? atomic_load(&sl->delivered) : 0;
  uint64_t events = sl ? atomic_load(&sl->delivered_events) : 0;
  bytes = c->charged > bytes ? c->charged - bytes : 0;
  events = c->charged_events > events ? c->charged_events - events : 0;
  uint64_t max_events = c->limits.max_buffered_chunks;
  if (resume)
    return bytes > WSN_UNDELIVERED_MAX / 2 ||
           (max_events != 0 && events > max_events / 2);
  return bytes > WSN_UNDELIVERED_MAX || (max_events != 0 && events >= max_events);
}

/* Counts bytes and records against the connection's undelivered bound; the
 * JS thread credits them back once it dispatched the batch
 * (wsn_loop_credit). At the bound the connection stops reading until JS
 * catches up: a peer can make us hold at most that much for a busy JS
 * thread, whatever the size of its events. */
static void charge(wsn_conn_t *c, size_t bytes, uint32_t events) {
  c->charged += bytes;
  c->charged_events += events;
  if (c->throttled || !over_bound(c, 0)) return;
  c->throttled = 1;
  /* The flag first, then the credit again: a JS thread crediting in
   * between either sees the flag (and sends CREDIT) or is seen here. */
  wsn_slot_t *sl = wsn_slots_get(&c->loop->slots, c->id);
  if (sl) atomic_store(&sl->throttled, 1);
  if (!over_bound(c, 0)) {
    c->throttled = 0;
    if (sl) atomic_store(&sl->throttled, 0);
    return;
  }
  wsn_conn_update_reading(c);
}

/* Posts an event of this connection, charged at WSN_EVENT_COST. */
wsn_event_t *wsn_conn_post(wsn_conn_t *c, uint32_t type, const void *p,
                              size_t n) {
  wsn_event_t *ev = wsn_loop_post(c->loop, type, c->id, p, n);
  if (ev) charge(c, WSN_EVENT_COST(ev), 1);
  return ev;
}

static void conn_link(wsn_loop_t *l, wsn_conn_t *c) {
  c->next = l->conns;
  c->prev = NULL;
  if (l->conns) l->conns->prev = c;
  l->conns = c;
}

static void conn_unlink(wsn_loop_t *l, wsn_conn_t *c) {
  if (c->prev) c->prev->next = c->next;
  else if (l->conns == c) l->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* Writes "code\0message" (the payload of TLS_ERROR and of zlib's ERROR:
 * JS builds Node's or zlib's error from it), cut to fit. Returns the
 * length. */
size_t wsn_conn_code_message(char *out, size_t cap, const char *code,
                               const char *message) {
  int n = snprintf(out, cap, "%s%c%s", code ? code : "", 0, message);
  if (n < 0) return 0;
  return (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* ---- errors and messages ----------------------------------------- */

static void free_message(wsn_conn_t *c) {
  wsn_buf_free(&c->msg);
  wsn_buf_free(&c->frag_lens);
}

/* Reports ws's error for a bad frame and stops acting on input. The close
 * frame with the error's code is not sent from here: JS sends it when it
 * handles the ERROR event (ws: receiverOnError calls close(code)), through
 * the ordinary close command, so that whatever JS sent while handling the
 * events read before the bad frame (an echo of the message that preceded
 * it) goes out first, as in ws, where those listeners run, and write, before
 * the Receiver reports the error. JS always handles it: the dispatcher runs
 * every event of a live id, and a loop that stops (exit, a worker ending)
 * destroys the socket anyway. If our close frame already went, nothing JS
 * sends can follow it: end the socket once the outbox drains. */
static void error_with_payload(wsn_conn_t *c, int err, uint32_t arg,
                               const void *payload, size_t len) {
  if (c->errored) return;
  wsn_event_t *ev = wsn_conn_post(c, WSN_EV_ERROR, payload, len);
  if (ev == NULL) {
    /* JS will not hear of it, so no close frame would come: drop the
     * socket (close 1006) rather than leave it open. */
    wsn_conn_destroy(c);
    return;
  }
  ev->a = (uint32_t)err;
  ev->b = arg;
  c->errored = 1;
  c->ignore_reads = 1;
  free_message(c);
  if (c->close_sent) {
    c->end_after_flush = 1;
    wsn_conn_mark_dirty(c);
  }
  wsn_conn_update_reading(c);
}

static void protocol_error(wsn_conn_t *c, int err, uint32_t arg) {
  error_with_payload(c, err, arg, NULL, 0);
}

/* A decompression failure, as ws reports it: too big is its own 1009
 * error; corrupt data is zlib's error (code and message) with 1007. */
static void inflate_error(wsn_conn_t *c, int r) {
  if (r == WSN_PMD_E_TOO_BIG) {
    protocol_error(c, WSN_E_MESSAGE_LENGTH, 0);
    return;
  }
  if (r == WSN_PMD_E_NOMEM) {
    wsn_conn_destroy(c);
    return;
  }
  char text[256];
  size_t n = wsn_conn_code_message(text, sizeof(text),
                              wsn_pmd_zlib_code_name(c->pmd->error_code),
                              c->pmd->error ? c->pmd->error : "Zlib error");
  error_with_payload(c, WSN_E_INFLATE, (uint32_t)-c->pmd->error_code, text, n);
}

/* Inflates a compressed frame's payload (or, with fin, ends the message)
 * into c->msg, and validates what came out if it is text. */
static int inflate_into_message(wsn_conn_t *c, const uint8_t *p, size_t n,
                                int fin) {
  size_t before = c->msg.len;
  int r = wsn_pmd_decompress(c->pmd, p, n, fin, &c->msg);
  if (r != WSN_PMD_OK) {
    inflate_error(c, r);
    return -1;
  }
  if (c->msg_opcode == WSN_OP_TEXT && !c->skip_utf8 &&
      wsn_utf8_update(&c->utf8, c->msg.base + before, c->msg.len - before) != 0) {
    protocol_error(c, WSN_E_INVALID_UTF8, 0);
    return -1;
  }
  return 0;
}

/* Turns permessage-deflate on for this connection (from a handshake). */
int wsn_conn_pmd_enable(wsn_conn_t *c, const wsn_pmd_setup_t *s) {
  if (!s->enabled) return 0;
  c->pmd = malloc(sizeof(*c->pmd));
  if (c->pmd == NULL) return -1;
  wsn_pmd_codec_init(c->pmd, &s->params, c->is_server, &s->opts,
                     c->parser.max_payload);
  c->parser.rsv1_allowed = 1;
  return 0;
}

/* Posts a whole message (fragments were joined here, as ws's Receiver joins
 * them: one event, one Buffer, however many frames). Large payloads leave as
 * a malloc'd block that JS wraps without copying; `steal` says p is c->msg's
 * own memory. */
static void post_message(wsn_conn_t *c, const uint8_t *p, size_t n,
                         uint32_t flags, int steal) {
  if (n > UINT32_MAX) { /* only reachable with maxPayload 0 (no limit) */
    protocol_error(c, WSN_E_MESSAGE_LENGTH, 0);
    return;
  }
  wsn_event_t *ev;
  if (n >= WSN_EXTERNAL_MIN) {
    uint8_t *block;
    if (steal) {
      block = wsn_buf_steal(&c->msg);
    } else {
      block = malloc(n);
      if (block == NULL) {
        wsn_conn_destroy(c);
        return;
      }
      memcpy(block, p, n);
    }
    ev = wsn_conn_post(c, WSN_EV_MESSAGE, NULL, 0);
    if (ev == NULL) {
      free(block);
      wsn_conn_destroy(c);
      return;
    }
    ev->len = (uint32_t)n;
    ev->a = flags | WSN_MSG_EXTERNAL;
    ev->c = (uint64_t)(uintptr_t)block;
    charge(c, WSN_EVENT_ALIGN(n), 0); /* wsn_conn_post charged the record */
    /* Lengths above 4 GiB cannot be expressed in the record; maxPayload
     * must keep messages below that (checked when listening/connecting). */
  } else {
    ev = wsn_conn_post(c, WSN_EV_MESSAGE, p, n);
    if (ev == NULL) {
      wsn_conn_destroy(c);
      return;
    }
    ev->a = flags;
  }
}

/* ---- reading ----------------------------------------------------- */

/* While JS decides on a handshake (WAIT_JS) the socket is still read, so
 * that the peer's FIN is seen (the connection is then dropped, not held
 * until verifyClient answers), and what follows the request head (frames a
 * client may send before the 101) is kept in c->hs for after the accept.
 * That early data is capped: a peer must not make us buffer without bound
 * while JS has not even accepted it; at the cap reading stops until JS
 * answers (the handshake timeout still applies). The read that completed
 * the head may have brought up to one read buffer more; then reading stops
 * at once. */
static size_t wait_js_room(const wsn_conn_t *c) {
  size_t early = c->hs.len - c->hs_head_len;
  return early >= WSN_WAIT_JS_EARLY_MAX ? 0 : WSN_WAIT_JS_EARLY_MAX - early;
}

void wsn_conn_update_reading(wsn_conn_t *c) {
  if (c->state == WSN_CS_CLOSING_HANDLE || c->state == WSN_CS_RESOLVING)
    return;
  int want = !c->eof &&
             (c->state != WSN_CS_WAIT_JS || wait_js_room(c) > 0) &&
             (c->ignore_reads || (!c->paused && !c->throttled));
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

#define READ_INTO_MSG_MIN (16u * 1024)

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wsn_conn_t *c = h->data;
  /* One receive buffer serves every socket of the loop: a read is processed
   * completely before the next one starts, so an idle connection owns no
   * read memory (uSockets does the same). */
  buf->base = (char *)c->loop->read_buf;
  buf->len = WSN_READ_BUF_SIZE;
  /* In the payload of a large frame being gathered (its buffer was sized
   * at its header): the kernel copies straight into the message, which the
   * parser then unmasks in place, and no copy out of the shared buffer is
   * needed (process_frames sees the bytes already where they belong). Only
   * this frame's payload is read so, never the next header. */
  if (c->state == WSN_CS_OPEN && c->tls == NULL && !c->ignore_reads &&
      !c->msg_compressed && c->parser.opcode < 8 &&
      c->parser.remaining >= READ_INTO_MSG_MIN && c->msg.base != NULL) {
    size_t room = c->msg.cap - c->msg.len;
    size_t want = c->parser.remaining < room ? (size_t)c->parser.remaining
                                             : room;
    if (want >= READ_INTO_MSG_MIN) {
      buf->base = (char *)c->msg.base + c->msg.len;
      buf->len = want;
      return;
    }
  }
  /* Waiting for JS: read no more than the early data cap allows. A TLS
   * record decrypts to no more bytes than it had. */
  if (c->state == WSN_CS_WAIT_JS && wait_js_room(c) < buf->len)
    buf->len = wait_js_room(c);
}

/* The peer ended its side: end ours after the outbox, then close. */
static void on_eof(wsn_conn_t *c) {
  if (c->state == WSN_CS_RAW) {
    wsn_conn_destroy(c); /* the end of the body: JS sees CLOSED */
    return;
  }
  /* The peer gave up while JS decides (a connect flood against a slow
   * verifyClient): drop it now. JS sees CLOSED for the handshake id and
   * ignores a later answer, as ws destroys such a socket. */
  if (c->state == WSN_CS_WAIT_JS) {
    wsn_conn_destroy(c);
    return;
  }
  /* A request the peer cut short with its end never becomes a WebSocket
   * (Node's parser fails it at 'end'; ws never hears of it): drop it now.
   * Ending our side and waiting would leave the handshake timeout to answer
   * 408 into a socket we had already shut. */
  if (c->state == WSN_CS_SERVER_HS) {
    wsn_conn_destroy(c);
    return;
  }
  c->eof = 1;
  wsn_conn_update_reading(c);
  if (c->shut && c->sreq == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  c->end_after_flush = 1;
  wsn_conn_mark_dirty(c);
}

/* Ciphertext in: decrypt into the loop's plaintext buffer, send whatever
 * the session answers (handshake, alerts), then read the plaintext. */
static void tls_read(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int was_done = wsn_tls_session_handshake_done(c->tls);
  wsn_buf_t *plain = &c->loop->tls_plain;
  plain->len = 0;
  int r = wsn_tls_session_input(c->tls, data, n, plain);
  if (r == WSN_TLS_ERROR) {
    wsn_conn_tls_fail(c);
    return;
  }
  if (wsn_outbox_tls_drain(c, 0, 0, 0) != 0) {
    wsn_conn_destroy(c);
    return;
  }
  /* The request waited for the handshake: it can go now. */
  if (!was_done && wsn_tls_session_handshake_done(c->tls))
    wsn_conn_mark_dirty(c);
  if (plain->len) on_plaintext(c, plain->base, plain->len);
  /* The peer's close_notify: its end of the stream. */
  if (r == WSN_TLS_CLOSED && c->state != WSN_CS_CLOSING_HANDLE) on_eof(c);
  /* Give a big burst's buffer back. */
  if (plain->cap > WSN_READ_BUF_SIZE * 2) wsn_buf_free(plain);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wsn_conn_t *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) on_eof(c);
    else wsn_conn_destroy(c); /* ws swallows socket errors: close 1006 */
    return;
  }
  wsn_conn_heartbeat_read(c);
  if (c->tls) tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
  else on_plaintext(c, (uint8_t *)buf->base, (size_t)nread);
}

static void on_plaintext(wsn_conn_t *c, uint8_t *p, size_t n) {
  switch (c->state) {
    case WSN_CS_SERVER_HS:
      wsn_server_handshake(c, p, n);
      break;
    case WSN_CS_CLIENT_HS:
      wsn_client_handshake(c, p, n);
      break;
    case WSN_CS_OPEN:
      if (!c->ignore_reads) process_frames(c, p, n);
      break;
    case WSN_CS_RAW:
      if (wsn_conn_post(c, WSN_EV_DATA, p, n) == NULL) wsn_conn_destroy(c);
      break;
    case WSN_CS_WAIT_JS:
      /* Frames sent before the 101: parsed after the accept (wsn_conn_become_open).
       * on_alloc keeps this within the cap. */
      if (wsn_buf_append(&c->hs, p, n) != 0) {
        wsn_conn_destroy(c);
        return;
      }
      wsn_conn_update_reading(c);
      break;
    default:
      break; /* rejecting: input is not used */
  }
}

/* ---- frames ------------------------------------------------------ */

static void handle_control(wsn_conn_t *c, uint8_t opcode) {
  const uint8_t *p = c->ctrl;
  size_t n = c->ctrl_len;
  c->ctrl_len = 0;
  if (opcode == WSN_OP_PING) {
    /* ws answers only while OPEN: never after our close frame. Like ws's
     * maxPendingAutoPongs, a ping that finds that many auto-pongs still
     * unwritten (a peer that pings and never reads) terminates the
     * connection. ws still parses the rest of the chunk it was reading,
     * emitting its events (and answering no more pings): so do we, up to
     * the end of this read (process_frames). */
    if (c->auto_pong && !c->close_sent && !c->terminating) {
      if (c->limits.max_pending_pongs != 0 &&
          c->pending_pongs >= c->limits.max_pending_pongs)
        c->terminating = 1;
      else
        wsn_outbox_frame(c, WSN_OP_PONG, p, n);
    }
    /* Out of memory for the event: JS must not miss it (its pong may be
     * on its way already), so the connection closes, as for every event
     * that cannot be posted. */
    if (wsn_conn_post(c, WSN_EV_PING, p, n) == NULL) wsn_conn_destroy(c);
  } else if (opcode == WSN_OP_PONG) {
    /* The answer to the heartbeat's ping is C's business, not JS's. */
    if (wsn_conn_heartbeat_pong(c, p, n)) return;
    if (wsn_conn_post(c, WSN_EV_PONG, p, n) == NULL) wsn_conn_destroy(c);
  } else {
    uint32_t code, arg;
    wsn_span_t reason;
    int r = wsn_frame_check_close(p, n, c->skip_utf8, &code, &reason, &arg);
    if (r != WSN_OK) {
      protocol_error(c, r, arg);
      return;
    }
    c->close_received = 1;
    c->ignore_reads = 1;
    free_message(c);
    wsn_event_t *ev =
        wsn_conn_post(c, WSN_EV_CLOSE_FRAME, reason.base, reason.len);
    if (ev == NULL) {
      /* JS will not answer a close it never heard of. */
      wsn_conn_destroy(c);
      return;
    }
    ev->a = code;
    /* ws answers with the same code and reason (receiverOnConclude), and
     * so does JS on this event, through the close command: the answer
     * follows whatever the listeners of the messages before it sent. Once
     * close frames went both ways the socket ends (WSN_CMD_CLOSE). */
    if (c->close_sent) {
      c->end_after_flush = 1;
      wsn_conn_mark_dirty(c);
    }
  }
  free(c->ctrl);
  c->ctrl = NULL;
}

/* The end of a data frame: maxFragments, and for a binary message the
 * frame's length (binaryType 'fragments' gets the frames back from them).
 * Returns -1 after failing the connection. */
static int end_data_frame(wsn_conn_t *c, int fin) {
  /* ws counts every data frame, empty ones too, once its payload is in. */
  if (c->limits.max_fragments != 0 &&
      ++c->fragments > c->limits.max_fragments) {
    protocol_error(c, WSN_E_FRAGMENTS, 0);
    return -1;
  }
  if (fin || c->msg_opcode != WSN_OP_BINARY || c->msg_compressed) return 0;
  size_t n = c->msg.len - c->frag_start;
  if (n == 0 || c->frag_lens.len >= WSN_FRAG_LENS_MAX * sizeof(uint32_t))
    return 0; /* an empty frame adds no fragment, as in ws */
  uint32_t v = (uint32_t)n;
  if (wsn_buf_append(&c->frag_lens, &v, sizeof(v)) != 0) {
    wsn_conn_destroy(c);
    return -1;
  }
  c->frag_start = c->msg.len;
  return 0;
}

#define PRESIZE_MIN (64u * 1024)
#define PRESIZE_MAX (16u * 1024 * 1024)

static void process_frames(wsn_conn_t *c, uint8_t *buf, size_t len) {
  size_t off = 0;
  while (!c->ignore_reads && c->state == WSN_CS_OPEN) {
    wsn_frame_event_t ev;
    off += wsn_frame_parse(&c->parser, buf + off, len - off, &ev);
    switch (ev.type) {
      case WSN_FRAME_NEED_MORE:
        if (c->terminating) wsn_conn_destroy(c); /* maxPendingAutoPongs */
        return;
      case WSN_FRAME_HEADER:
        if (ev.opcode >= 8) {
          c->ctrl_len = 0;
          break;
        }
        if (ev.opcode != WSN_OP_CONT) {
          c->msg_opcode = ev.opcode;
          c->utf8 = WSN_UTF8_ACCEPT;
          c->msg_compressed = ev.rsv1; /* the parser allows it if agreed */
          c->fragments = 0;
          c->frag_start = 0;
        }
        /* A message in one frame whose whole payload is already in this
         * read is posted straight from the read buffer: one copy, into the
         * batch. Other frames gather in c->msg until the last one. */
        c->direct = ev.fin && !c->msg_compressed && c->msg.len == 0 &&
                    ev.length <= len - off;
        /* A large frame that spans reads: room for all of it at once, so
         * the message buffer is not grown (and copied) read after read.
         * The length is within maxPayload (the parser checked); without
         * one, a peer's claim is only trusted up to PRESIZE_MAX. On no
         * memory, the buffer grows as it fills. */
        if (!c->direct && !c->msg_compressed && ev.length >= PRESIZE_MIN) {
          uint64_t want = ev.length < PRESIZE_MAX ? ev.length : PRESIZE_MAX;
          (void)wsn_buf_reserve(&c->msg, (size_t)want);
        }
        break;
      case WSN_FRAME_DATA: {
        const uint8_t *p = ev.data.base;
        size_t n = ev.data.len;
        if (c->parser.opcode >= 8) {
          if (c->ctrl == NULL && (c->ctrl = malloc(125)) == NULL) {
            wsn_conn_destroy(c);
            return;
          }
          if (n > 125u - c->ctrl_len) n = 125u - c->ctrl_len; /* parser caps */
          memcpy(c->ctrl + c->ctrl_len, p, n);
          c->ctrl_len = (uint8_t)(c->ctrl_len + n);
          break;
        }
        if (c->msg_compressed) {
          if (inflate_into_message(c, p, n, 0) != 0) return;
          break;
        }
        int text = c->msg_opcode == WSN_OP_TEXT;
        if (text && !c->skip_utf8 && wsn_utf8_update(&c->utf8, p, n) != 0) {
          protocol_error(c, WSN_E_INVALID_UTF8, 0);
          return;
        }
        if (c->direct == 1 && c->parser.remaining == 0) {
          c->direct = 2; /* posted at END, from this span */
          c->direct_base = p;
          c->direct_len = n;
          break;
        }
        c->direct = 0;
        /* Read straight into the message (on_alloc): already in place. */
        if (c->msg.base != NULL && p == c->msg.base + c->msg.len) {
          c->msg.len += n;
          break;
        }
        if (wsn_buf_append(&c->msg, p, n) != 0) {
          wsn_conn_destroy(c);
          return;
        }
        break;
      }
      case WSN_FRAME_END: {
        if (ev.opcode >= 8) {
          handle_control(c, ev.opcode);
          break;
        }
        if (end_data_frame(c, ev.fin) != 0) return;
        if (!ev.fin) break;
        int text = c->msg_opcode == WSN_OP_TEXT;
        if (c->msg_compressed && inflate_into_message(c, NULL, 0, 1) != 0)
          return;
        if (text && !c->skip_utf8 && c->utf8 != WSN_UTF8_ACCEPT) {
          protocol_error(c, WSN_E_INVALID_UTF8, 0);
          return;
        }
        /* A binary message of several non-empty frames: their lengths go
         * first (the last frame is what remains). */
        if (c->frag_lens.len != 0) {
          if (wsn_conn_post(c, WSN_EV_FRAGMENTS, c->frag_lens.base,
                        c->frag_lens.len) == NULL) {
            wsn_conn_destroy(c);
            return;
          }
          wsn_buf_free(&c->frag_lens);
        }
        uint32_t flags = text ? 0 : WSN_MSG_BINARY;
        if (c->direct == 2) {
          post_message(c, c->direct_base, c->direct_len, flags, 0);
        } else {
          post_message(c, c->msg.base, c->msg.len, flags, 1);
          /* Keep a small buffer for the next message; give back big ones. */
          if (c->msg.cap > 16384) wsn_buf_free(&c->msg);
          else c->msg.len = 0;
        }
        c->direct = 0;
        c->fragments = 0;
        /* Between messages a side without context takeover needs no zlib
         * state: give it back. */
        if (c->pmd) wsn_pmd_codec_idle(c->pmd);
        break;
      }
      case WSN_FRAME_ERROR:
        protocol_error(c, ev.error, ev.error_arg);
        return;
    }
  }
}

/* ---- life: open, commands, close --------------------------------- */

/* Switches to frames and feeds them what followed the head. */
void wsn_conn_become_open(wsn_conn_t *c) {
  c->state = WSN_CS_OPEN;
  wsn_conn_heartbeat_start(c);
  size_t head = c->hs_head_len;
  size_t rest = c->hs.len - head;
  if (rest > 0) {
    /* The leftover is copied out first: processing may free c->hs. */
    wsn_buf_t tmp = c->hs;
    c->hs = (wsn_buf_t){0};
    process_frames(c, tmp.base + head, rest);
    wsn_buf_free(&tmp);
  } else {
    wsn_buf_free(&c->hs);
  }
  wsn_conn_update_reading(c);
}

wsn_conn_t *wsn_conn_new(wsn_loop_t *l, wsn_id_t id) {
  wsn_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->loop = l;
  c->id = id;
  c->auto_pong = 1;
  if (uv_tcp_init(l->uv, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  conn_link(l, c);
  l->live_handles++;
  wsn_slot_t *sl = wsn_slots_get(&l->slots, id);
  if (sl) sl->ptr = c;
  return c;
}

void wsn_conn_command(wsn_conn_t *c, wsn_cmd_t *cmd) {
  if (c->state == WSN_CS_CLOSING_HANDLE) {
    wsn_cmd_free(c->loop, cmd);
    return;
  }
  switch (cmd->type) {
    case WSN_CMD_SEND:
      /* Frames after our close frame are dropped (the peer would fail us),
       * and so are frames after our FIN (the peer ended its side first, and
       * we ended ours: ws ends the socket on 'end', and its writes after
       * that go nowhere; libuv would refuse them with EPIPE). */
      if (c->close_sent || c->state != WSN_CS_OPEN || c->shut) {
        wsn_outbox_drop(c, cmd);
        return;
      }
      if ((cmd->flags & WSN_SEND_COMPRESS) &&
          (cmd = wsn_outbox_compress(c, cmd)) == NULL)
        return;
      /* TLS encrypts plaintext records, which must hold their bytes. */
      if ((cmd->flags & WSN_CMD_EXTERNAL) && c->tls &&
          (cmd = wsn_outbox_inline(c, cmd)) == NULL)
        return;
      /* A data frame without FIN opens (or continues) a fragmented
       * message, which no published frame may interrupt. */
      if (cmd->len && (cmd->data[cmd->off] & 0x0F) < WSN_OP_CLOSE)
        c->send_frag = !(cmd->data[cmd->off] & 0x80);
      wsn_outbox_push(c, cmd);
      return;
    case WSN_CMD_CLOSE:
      if (c->close_sent || c->state != WSN_CS_OPEN || c->shut) {
        wsn_outbox_drop(c, cmd);
      } else {
        wsn_outbox_push(c, cmd);
        c->close_sent = 1;
      }
      /* ws ends the socket once close frames went both ways (or after an
       * error); the peer's end then completes the close. */
      if (c->close_received || c->errored) {
        c->end_after_flush = 1;
        wsn_conn_mark_dirty(c);
      }
      return;
    case WSN_CMD_TERMINATE:
      free(cmd);
      wsn_conn_destroy(c);
      return;
    case WSN_CMD_PAUSE:
    case WSN_CMD_RESUME:
      c->paused = cmd->type == WSN_CMD_PAUSE;
      free(cmd);
      wsn_conn_update_reading(c);
      return;
    case WSN_CMD_ACCEPT:
      /* JS built the whole 101 response (its 'headers' listeners saw it). */
      if (c->state == WSN_CS_WAIT_JS && cmd->len >= sizeof(wsn_pmd_setup_t)) {
        wsn_pmd_setup_t setup;
        memcpy(&setup, cmd->data, sizeof(setup));
        cmd->off = sizeof(setup);
        cmd->len -= sizeof(setup);
        cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
        wsn_outbox_push(c, cmd);
        if (wsn_conn_pmd_enable(c, &setup) != 0) {
          wsn_conn_destroy(c);
          return;
        }
        wsn_conn_become_open(c);
        return;
      }
      free(cmd);
      return;
    case WSN_CMD_REJECT:
      if (c->state == WSN_CS_WAIT_JS) wsn_server_reject(c, (const char *)cmd->data, cmd->len);
      free(cmd);
      return;
    case WSN_CMD_SOCKOPT: {
      /* net.Socket's setKeepAlive/setNoDelay/ref/unref on ws._socket. As
       * Node's, failures are ignored (an adopted socketpair has no TCP
       * options). Unref matters in main-loop mode, where this handle is on
       * Node's loop; on the I/O thread the wake handle keeps the loop up. */
      unsigned on = (unsigned)(cmd->arg & 1u);
      if (cmd->flags == WSN_SOCKOPT_KEEPALIVE)
        (void)uv_tcp_keepalive(&c->tcp, (int)on, (unsigned)(cmd->arg >> 1));
      else if (cmd->flags == WSN_SOCKOPT_NODELAY)
        (void)uv_tcp_nodelay(&c->tcp, (int)on);
      else if (cmd->flags == WSN_SOCKOPT_REF && on)
        uv_ref((uv_handle_t *)&c->tcp);
      else if (cmd->flags == WSN_SOCKOPT_REF)
        uv_unref((uv_handle_t *)&c->tcp);
      free(cmd);
      return;
    }
    case WSN_CMD_SUBSCRIBE:
    case WSN_CMD_UNSUBSCRIBE:
      wsn_conn_topic_command(c, cmd);
      return;
    default:
      free(cmd);
      return;
  }
}

void wsn_conn_credited(wsn_conn_t *c) {
  if (!c->throttled || over_bound(c, 1)) return;
  c->throttled = 0;
  wsn_slot_t *sl = wsn_slots_get(&c->loop->slots, c->id);
  if (sl) atomic_store(&sl->throttled, 0);
  wsn_conn_update_reading(c);
}

void wsn_conns_report_closed(wsn_loop_t *l, int discard) {
  while (l->unreported) {
    wsn_conn_t *c = l->unreported;
    if (!discard && wsn_loop_post(l, WSN_EV_CLOSED, c->id, NULL, 0) == NULL)
      return; /* still no memory: the next publish tries again */
    l->unreported = c->next;
    free(c);
  }
}

void wsn_conn_on_close(uv_handle_t *h) {
  wsn_conn_t *c = h->data;
  wsn_loop_t *l = c->loop;
  /* Out of memory for the event: the struct itself carries the id until it
   * can be posted (a stopping loop posts nothing and needs nothing). */
  int unreported = c->announced && !l->stopping &&
                   wsn_loop_post(l, WSN_EV_CLOSED, c->id, NULL, 0) == NULL;
  wsn_slots_free(&l->slots, c->id);
  wsn_conn_leave_topics(c);
  unmark_dirty(l, c);
  conn_unlink(l, c);
  l->live_handles--;
  wsn_outbox_free(c);
  free_message(c);
  wsn_buf_free(&c->hs);
  free(c->ctrl);
  free(c->key);
  free(c->host);
  if (c->pmd) {
    wsn_pmd_codec_free(c->pmd);
    free(c->pmd);
  }
  free(c->pmd_offer);
  wsn_tls_session_free(c->tls);
  if (c->addrs) uv_freeaddrinfo(c->addrs);
  wsn_server_t *srv = c->server;
  if (srv) {
    srv->conns--;
    wsn_server_maybe_closed(srv);
  }
  if (unreported) {
    c->next = l->unreported;
    l->unreported = c;
  } else {
    free(c);
  }
  wsn_loop_closed_one(l);
}

void wsn_conn_destroy(wsn_conn_t *c) {
  if (c->state == WSN_CS_CLOSING_HANDLE) return;
  c->state = WSN_CS_CLOSING_HANDLE;
  if (c->gai) {
    /* Never waits: the lookup's thread frees what it finds. */
    wsn_lookup_abandon(c->loop->resolver, c->gai);
    c->gai = NULL;
  }
  /* While reconnecting the handle is already closing; on_retry_close sees
   * the state and finishes the close. */
  if (!c->reconnecting) uv_close((uv_handle_t *)&c->tcp, wsn_conn_on_close);
}

/* ---- the loop's side: dispatch, writes, stop --------------------------- */

void wsn_conn_mark_dirty(wsn_conn_t *c) {
  wsn_loop_t *l = c->loop;
  if (c->in_dirty) return;
  c->in_dirty = 1;
  c->dirty_next = l->dirty;
  l->dirty = c;
}

static void unmark_dirty(wsn_loop_t *l, wsn_conn_t *c) {
  if (!c->in_dirty) return;
  for (wsn_conn_t **pp = &l->dirty; *pp; pp = &(*pp)->dirty_next) {
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  }
  c->in_dirty = 0;
}

void wsn_conns_flush(wsn_loop_t *l) {
  while (l->dirty) {
    wsn_conn_t *c = l->dirty;
    l->dirty = c->dirty_next;
    c->in_dirty = 0;
    wsn_conn_flush(c);
  }
}

void wsn_conns_command(wsn_loop_t *l, wsn_cmd_t *cmd) {
  switch (cmd->type) {
    case WSN_CMD_LISTEN:
      wsn_server_listen(l, cmd);
      free(cmd);
      return;
    case WSN_CMD_CONNECT:
      wsn_conn_connect(l, cmd); /* takes cmd */
      return;
    case WSN_CMD_ADOPT:
      wsn_conn_adopt(l, cmd); /* takes cmd */
      return;
    case WSN_CMD_PUBLISH:
      wsn_conns_publish(l, cmd); /* takes cmd; id is the one to skip */
      return;
    case WSN_CMD_CREDIT: {
      wsn_conn_t *c = wsn_slots_ptr(&l->slots, cmd->id);
      if (c) wsn_conn_credited(c);
      free(cmd);
      return;
    }
    case WSN_CMD_SERVER_CLOSE:
    case WSN_CMD_SERVER_SETTINGS: {
      wsn_server_t *s = wsn_slots_ptr(&l->slots, cmd->id);
      if (s) {
        if (cmd->type == WSN_CMD_SERVER_CLOSE) {
          wsn_server_close(s);
        } else {
          const wsn_server_settings_t *st = (const void *)cmd->data;
          /* Out of memory: the previous settings stay. */
          wsn_server_apply(s, st, (const char *)cmd->data + sizeof(*st));
        }
      }
      free(cmd);
      return;
    }
    default: {
      wsn_conn_t *c = wsn_slots_ptr(&l->slots, cmd->id);
      if (c == NULL) {
        wsn_cmd_free(l, cmd); /* that connection has gone: a no-op */
        return;
      }
      wsn_conn_command(c, cmd);
      return;
    }
  }
}

int wsn_conns_stop(wsn_loop_t *l) {
  int due = 0;
  for (wsn_conn_t *c = l->conns; c; c = c->next) {
    due++; /* its close callback, already due or from now */
    wsn_conn_destroy(c);
  }
  return due + wsn_servers_stop(l);
}

/* ---- shared by the server and client sides ------------------------------ */

/* Appends "name\0" fields describing the socket's addresses. */
int wsn_conn_append_addr(wsn_buf_t *b, const struct sockaddr_storage *ss) {
  char ip[INET6_ADDRSTRLEN] = "";
  char port[8] = "";
  const char *family = "";
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof(ip));
    snprintf(port, sizeof(port), "%u", ntohs(a->sin_port));
    family = "IPv4";
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof(ip));
    snprintf(port, sizeof(port), "%u", ntohs(a->sin6_port));
    family = "IPv6";
  }
  if (wsn_buf_append(b, ip, strlen(ip) + 1) ||
      wsn_buf_append(b, port, strlen(port) + 1) ||
      wsn_buf_append(b, family, strlen(family) + 1))
    return -1;
  return 0;
}

/* Appends a read to the handshake bytes and parses the head so far with
 * `parse`. Returns the parsed head (malloc'd: the caller frees it) and the
 * parser's result in *r, or NULL when there is nothing to act on yet (the
 * head is incomplete, or the connection was destroyed for lack of memory). */
wsn_http_head_t *wsn_conn_read_head(wsn_conn_t *c, const uint8_t *data, size_t n,
                                  int (*parse)(const char *, size_t, size_t,
                                               wsn_http_head_t *),
                                  int *r) {
  size_t prev = c->hs.len;
  if (wsn_buf_append(&c->hs, data, n) != 0) {
    wsn_conn_destroy(c);
    return NULL;
  }
  /* The head is large (128 headers): keep it off the small stacks. */
  wsn_http_head_t *head = malloc(sizeof(*head));
  if (head == NULL) {
    wsn_conn_destroy(c);
    return NULL;
  }
  *r = parse((const char *)c->hs.base, c->hs.len, prev, head);
  if (*r == WSN_HTTP_INCOMPLETE) {
    free(head);
    return NULL;
  }
  return head;
}
