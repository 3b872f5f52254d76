/*
 * Connection state machine on the loop thread. See conn.h.
 *
 * The close rules mirror ws 8 (websocket.js): a close frame is answered with
 * the same code and reason; once a close frame has been both sent and
 * received (or a protocol error was reported), our side ends the TCP stream
 * after the outbox drains; the socket is destroyed once the peer's end has
 * arrived too. A protocol error reports ws's error, and JS answers it with
 * the matching close code (error_with_payload); data read after a close
 * frame or an error is ignored, but the socket is still read to notice the
 * peer's end.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handshake.h"
#include "http.h"
#include "resolve.h"
#include "tls.h"

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_close(uv_handle_t *h);
static void process_frames(wsn_conn_t *c, uint8_t *buf, size_t len);
static void update_reading(wsn_conn_t *c);

/* ---- small helpers ---------------------------------------------------- */

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
  update_reading(c);
}

/* Posts an event of this connection, charged at WSN_EVENT_COST. */
static wsn_event_t *conn_post(wsn_conn_t *c, uint32_t type, const void *p,
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

/* Links bytes for the socket (after TLS, if any). */
static void wire_push(wsn_conn_t *c, wsn_cmd_t *cmd) {
  cmd->next = NULL;
  if (c->out_tail) c->out_tail->next = cmd;
  else c->out_head = cmd;
  c->out_tail = cmd;
  wsn_loop_mark_dirty(c->loop, c);
}

/* Queues a frame or handshake bytes. With TLS they wait as plaintext and
 * are encrypted together once per loop iteration (wsn_conn_flush), so a
 * burst of small frames makes one TLS record, not one each. */
static void outbox_push(wsn_conn_t *c, wsn_cmd_t *cmd) {
  if (c->tls == NULL) {
    wire_push(c, cmd);
    return;
  }
  cmd->next = NULL;
  if (c->plain_tail) c->plain_tail->next = cmd;
  else c->plain_head = cmd;
  c->plain_tail = cmd;
  wsn_loop_mark_dirty(c->loop, c);
}

/* Writes "code\0message" (the payload of TLS_ERROR and of zlib's ERROR:
 * JS builds Node's or zlib's error from it), cut to fit. Returns the
 * length. */
static size_t code_and_message(char *out, size_t cap, const char *code,
                               const char *message) {
  int n = snprintf(out, cap, "%s%c%s", code ? code : "", 0, message);
  if (n < 0) return 0;
  return (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* ---- TLS ------------------------------------------------------------- */

static void plain_free(wsn_conn_t *c) {
  while (c->plain_head) {
    wsn_cmd_t *next = c->plain_head->next;
    free(c->plain_head);
    c->plain_head = next;
  }
  c->plain_tail = NULL;
}

/* Moves what the TLS session produced (handshake messages, alerts,
 * records) to the socket's queue. `accounted` plaintext bytes are written
 * off when these records leave; `ack` asks for a WRITTEN event then. */
static int tls_drain(wsn_conn_t *c, uint64_t accounted, int ack,
                     uint32_t pongs) {
  wsn_buf_t *out = wsn_tls_session_output(c->tls);
  if (out->len == 0) {
    /* No record to carry them (cannot happen after a write; kept exact). */
    c->written += accounted;
    c->pending_pongs -= pongs < c->pending_pongs ? pongs : c->pending_pongs;
    if (ack) c->want_ack = 1;
    return 0;
  }
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, out->len);
  if (cmd == NULL) return -1;
  memcpy(cmd->data, out->base, out->len);
  wsn_tls_session_output_consume(c->tls, out->len);
  cmd->flags = WSN_CMD_ACCOUNTED | (ack ? WSN_SEND_WANT_ACK : 0);
  cmd->arg = accounted;
  cmd->pongs = (uint16_t)(pongs > UINT16_MAX ? UINT16_MAX : pongs);
  wire_push(c, cmd);
  return 0;
}

/* Encrypts the queued plaintext, in order, once the handshake is done. */
static int tls_encrypt_pending(wsn_conn_t *c) {
  if (c->plain_head == NULL || !wsn_tls_session_handshake_done(c->tls))
    return 0;
  uint64_t accounted = 0;
  uint32_t pongs = 0;
  int ack = 0, r = WSN_TLS_OK;
  wsn_buf_t joined = {0};
  int single = c->plain_head->next == NULL;
  for (wsn_cmd_t *cmd = c->plain_head; cmd; cmd = cmd->next) {
    if (cmd->flags & WSN_CMD_ACCOUNTED) accounted += cmd->arg;
    else if (!(cmd->flags & WSN_CMD_UNCOUNTED)) accounted += cmd->len;
    pongs += cmd->pongs;
    if (cmd->flags & WSN_SEND_WANT_ACK) ack = 1;
    if (!single && wsn_buf_append(&joined, cmd->data + cmd->off, cmd->len) != 0)
      r = WSN_TLS_ERROR;
  }
  if (r == WSN_TLS_OK) {
    r = single ? wsn_tls_session_write(c->tls, c->plain_head->data + c->plain_head->off,
                                       c->plain_head->len)
               : wsn_tls_session_write(c->tls, joined.base, joined.len);
  }
  wsn_buf_free(&joined);
  plain_free(c);
  if (r == WSN_TLS_ERROR || tls_drain(c, accounted, ack, pongs) != 0)
    return -1;
  return 0;
}

static void post_tls_error(wsn_conn_t *c) {
  const wsn_tls_error_t *e = wsn_tls_session_error(c->tls);
  char text[1024];
  size_t n = code_and_message(text, sizeof(text), e ? e->code : NULL,
                              e && e->message ? e->message : "TLS error");
  if (e && e->cert_der && n + 1 < sizeof(text)) {
    /* code NUL message NUL DER: the peer certificate of a name mismatch,
     * for the `cert` of Node's error. */
    wsn_buf_t b = {0};
    if (wsn_buf_append(&b, text, n + 1) == 0 &&
        wsn_buf_append(&b, e->cert_der, e->cert_der_len) == 0) {
      conn_post(c, WSN_EV_TLS_ERROR, b.base, b.len);
      wsn_buf_free(&b);
      return;
    }
    wsn_buf_free(&b);
  }
  conn_post(c, WSN_EV_TLS_ERROR, text, n);
}

/* A fatal TLS error: report it, send the alert if the kernel takes it at
 * once, and close (Node destroys the socket too). */
static void tls_fail(wsn_conn_t *c) {
  post_tls_error(c);
  plain_free(c);
  tls_drain(c, 0, 0, 0);
  wsn_conn_flush(c);
  wsn_conn_destroy(c);
}

static void plain_free(wsn_conn_t *c);

static void outbox_free(wsn_conn_t *c) {
  plain_free(c);
  wsn_cmd_t *cmd = c->out_head;
  while (cmd) {
    wsn_cmd_t *next = cmd->next;
    free(cmd);
    cmd = next;
  }
  c->out_head = c->out_tail = NULL;
  c->out_off = 0;
}

/* Queues a frame built here on the loop thread (control frames we answer
 * ourselves). Clients mask with a key from the loop's pool. JS never counted
 * these bytes, so they are never reported as written; an auto-pong counts
 * as pending until it has left whole (maxPendingAutoPongs). */
static void queue_frame(wsn_conn_t *c, int opcode, const uint8_t *payload,
                        size_t len) {
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, 14 + len);
  if (cmd == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  uint8_t mask[4];
  int masked = !c->is_server;
  if (masked && wsn_rand_fill(&c->loop->rand, mask, 4) != 0) {
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  size_t h = wsn_frame_header(cmd->data, 1, 0, opcode, len, masked ? mask : NULL);
  if (masked) wsn_frame_mask_copy(cmd->data + h, payload, len, mask);
  else if (len) memcpy(cmd->data + h, payload, len);
  cmd->off = 0;
  cmd->len = h + len;
  cmd->flags |= WSN_CMD_OWN_FRAME;
  if (opcode == WSN_OP_PONG) {
    cmd->pongs = 1;
    c->pending_pongs++;
  }
  outbox_push(c, cmd);
}

/* Queues raw handshake bytes (they do not count as written frame bytes). */
static void queue_bytes(wsn_conn_t *c, const void *p, size_t len) {
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, len);
  if (cmd == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
  memcpy(cmd->data, p, len);
  outbox_push(c, cmd);
}

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
  wsn_event_t *ev = conn_post(c, WSN_EV_ERROR, payload, len);
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
    wsn_loop_mark_dirty(c->loop, c);
  }
  update_reading(c);
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
  size_t n = code_and_message(text, sizeof(text),
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
static int pmd_enable(wsn_conn_t *c, const wsn_pmd_setup_t *s) {
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
    ev = conn_post(c, WSN_EV_MESSAGE, NULL, 0);
    if (ev == NULL) {
      free(block);
      wsn_conn_destroy(c);
      return;
    }
    ev->len = (uint32_t)n;
    ev->a = flags | WSN_MSG_EXTERNAL;
    ev->c = (uint64_t)(uintptr_t)block;
    charge(c, WSN_EVENT_ALIGN(n), 0); /* conn_post charged the record */
    /* Lengths above 4 GiB cannot be expressed in the record; maxPayload
     * must keep messages below that (checked when listening/connecting). */
  } else {
    ev = conn_post(c, WSN_EV_MESSAGE, p, n);
    if (ev == NULL) {
      wsn_conn_destroy(c);
      return;
    }
    ev->a = flags;
  }
}

/* ---- reading ---------------------------------------------------------- */

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

static void update_reading(wsn_conn_t *c) {
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

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wsn_conn_t *c = h->data;
  /* One receive buffer serves every socket of the loop: a read is processed
   * completely before the next one starts, so an idle connection owns no
   * read memory (uSockets does the same). */
  buf->base = (char *)c->loop->read_buf;
  buf->len = WSN_READ_BUF_SIZE;
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
  update_reading(c);
  if (c->shut && c->sreq == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  c->end_after_flush = 1;
  wsn_loop_mark_dirty(c->loop, c);
}

static void server_handshake(wsn_conn_t *c, const uint8_t *data, size_t n);
static void client_handshake(wsn_conn_t *c, const uint8_t *data, size_t n);

static void on_plaintext(wsn_conn_t *c, uint8_t *p, size_t n);

/* Ciphertext in: decrypt into the loop's plaintext buffer, send whatever
 * the session answers (handshake, alerts), then read the plaintext. */
static void tls_read(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int was_done = wsn_tls_session_handshake_done(c->tls);
  wsn_buf_t *plain = &c->loop->tls_plain;
  plain->len = 0;
  int r = wsn_tls_session_input(c->tls, data, n, plain);
  if (r == WSN_TLS_ERROR) {
    tls_fail(c);
    return;
  }
  if (tls_drain(c, 0, 0, 0) != 0) {
    wsn_conn_destroy(c);
    return;
  }
  /* The request waited for the handshake: it can go now. */
  if (!was_done && wsn_tls_session_handshake_done(c->tls))
    wsn_loop_mark_dirty(c->loop, c);
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
  if (c->tls) tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
  else on_plaintext(c, (uint8_t *)buf->base, (size_t)nread);
}

static void on_plaintext(wsn_conn_t *c, uint8_t *p, size_t n) {
  switch (c->state) {
    case WSN_CS_SERVER_HS:
      server_handshake(c, p, n);
      break;
    case WSN_CS_CLIENT_HS:
      client_handshake(c, p, n);
      break;
    case WSN_CS_OPEN:
      if (!c->ignore_reads) process_frames(c, p, n);
      break;
    case WSN_CS_RAW:
      if (conn_post(c, WSN_EV_DATA, p, n) == NULL) wsn_conn_destroy(c);
      break;
    case WSN_CS_WAIT_JS:
      /* Frames sent before the 101: parsed after the accept (become_open).
       * on_alloc keeps this within the cap. */
      if (wsn_buf_append(&c->hs, p, n) != 0) {
        wsn_conn_destroy(c);
        return;
      }
      update_reading(c);
      break;
    default:
      break; /* rejecting: input is not used */
  }
}

/* ---- frames ----------------------------------------------------------- */

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
        queue_frame(c, WSN_OP_PONG, p, n);
    }
    /* Out of memory for the event: JS must not miss it (its pong may be
     * on its way already), so the connection closes, as for every event
     * that cannot be posted. */
    if (conn_post(c, WSN_EV_PING, p, n) == NULL) wsn_conn_destroy(c);
  } else if (opcode == WSN_OP_PONG) {
    if (conn_post(c, WSN_EV_PONG, p, n) == NULL) wsn_conn_destroy(c);
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
        conn_post(c, WSN_EV_CLOSE_FRAME, reason.base, reason.len);
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
      wsn_loop_mark_dirty(c->loop, c);
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
          if (conn_post(c, WSN_EV_FRAGMENTS, c->frag_lens.base,
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

/* ---- handshakes ------------------------------------------------------- */

/* Answers a request that cannot be upgraded, then closes. */
static void reject_raw(wsn_conn_t *c, const char *resp, size_t len) {
  c->state = WSN_CS_REJECTING;
  wsn_buf_free(&c->hs);
  queue_bytes(c, resp, len);
  c->end_after_flush = 1;
  update_reading(c);
}

static void reject_status(wsn_conn_t *c, int status, const char *message,
                          const char *extra) {
  char resp[512];
  size_t n = wsn_handshake_response_error(resp, sizeof(resp), status, message,
                                          extra);
  reject_raw(c, resp, n);
}

/* Appends "name\0" fields describing the socket's addresses. */
static int append_addr(wsn_buf_t *b, const struct sockaddr_storage *ss) {
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

/* Posts CONNECTION or HANDSHAKE: "protocol\0remote addr\0port\0family\0
 * local addr\0port\0family\0" then the request head. */
static int post_request(wsn_conn_t *c, uint32_t type, const char *proto,
                        size_t proto_len, size_t head_len) {
  wsn_buf_t b = {0};
  struct sockaddr_storage ss;
  int len;
  int rc = wsn_buf_append(&b, proto, proto_len);
  rc |= wsn_buf_append(&b, "", 1);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= append_addr(&b, &ss);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= append_addr(&b, &ss);
  rc |= wsn_buf_append(&b, c->hs.base, head_len);
  wsn_event_t *ev = rc ? NULL : conn_post(c, type, b.base, b.len);
  wsn_buf_free(&b);
  if (ev == NULL) return -1;
  ev->c = c->server->id;
  c->announced = 1;
  return 0;
}

/* Switches to frames and feeds them what followed the head. */
static void become_open(wsn_conn_t *c) {
  c->state = WSN_CS_OPEN;
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
  update_reading(c);
}

static void server_accept(wsn_conn_t *c, const char *proto, size_t proto_len) {
  wsn_http_head_t *head = malloc(sizeof(*head));
  if (head == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  int r = wsn_http_parse_request((const char *)c->hs.base, c->hs_head_len, 0,
                                 head);
  const wsn_http_header_t *key = r > 0 ? wsn_http_find(head, "sec-websocket-key") : NULL;
  if (key == NULL) {
    free(head);
    wsn_conn_destroy(c);
    return;
  }
  size_t cap = 256 + proto_len;
  char *resp = malloc(cap);
  size_t n = resp ? wsn_handshake_response_101(resp, cap, key->value,
                                               key->value_len, proto, proto_len,
                                               NULL, 0)
                  : 0;
  free(head);
  if (n == 0) {
    free(resp);
    wsn_conn_destroy(c);
    return;
  }
  queue_bytes(c, resp, n);
  free(resp);
  if (c->state != WSN_CS_CLOSING_HANDLE) become_open(c);
}

/* Appends a read to the handshake bytes and parses the head so far with
 * `parse`. Returns the parsed head (malloc'd: the caller frees it) and the
 * parser's result in *r, or NULL when there is nothing to act on yet (the
 * head is incomplete, or the connection was destroyed for lack of memory). */
static wsn_http_head_t *read_head(wsn_conn_t *c, const uint8_t *data, size_t n,
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

static void server_handshake(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int r;
  wsn_http_head_t *head = read_head(c, data, n, wsn_http_parse_request, &r);
  if (head == NULL) return;
  if (r < 0) {
    free(head);
    /* What Node's http server answers a request it cannot parse. */
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
    static const char big[] =
        "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
    if (r == WSN_HTTP_E_TOO_LARGE || r == WSN_HTTP_E_TOO_MANY)
      reject_raw(c, big, sizeof(big) - 1);
    else
      reject_raw(c, bad, sizeof(bad) - 1);
    return;
  }
  c->hs_head_len = (uint32_t)r;

  /* Node emits 'upgrade' only for a non-empty Upgrade header plus an
   * "upgrade" token in some Connection header; anything else is a plain
   * request, which ws answers 426. */
  const wsn_http_header_t *upg_h = wsn_http_find(head, "upgrade");
  int conn_upgrade = 0;
  for (const wsn_http_header_t *h = wsn_http_find(head, "connection"); h;
       h = wsn_http_find_next(head, "connection", h)) {
    if (wsn_http_has_token(h->value, h->value_len, "upgrade")) conn_upgrade = 1;
  }
  if (upg_h == NULL || upg_h->value_len == 0 || !conn_upgrade) {
    free(head);
    static const char upgrade_required[] =
        "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: 16\r\n\r\nUpgrade Required";
    reject_raw(c, upgrade_required, sizeof(upgrade_required) - 1);
    return;
  }

  /* ws's order: method, Upgrade, key and version checks; then shouldHandle
   * (the pathname must equal the server's path: a plain 400); then the
   * subprotocol list. */
  wsn_handshake_request_t hr;
  wsn_handshake_check_request(head, &hr);
  wsn_server_t *srv = c->server;
  int path_ok = 1;
  if (srv->path != NULL) {
    size_t plen = 0;
    while (plen < head->path_len && head->path[plen] != '?') plen++;
    path_ok = plen == srv->path_len && memcmp(head->path, srv->path, plen) == 0;
  }
  int protocol_error_only =
      hr.status != 0 && strcmp(hr.message, "Invalid Sec-WebSocket-Protocol header") == 0;
  if (hr.status != 0 && !protocol_error_only) {
    free(head);
    reject_status(c, hr.status, hr.message, hr.extra_header);
    return;
  }
  if (!path_ok) {
    free(head);
    reject_status(c, 400, NULL, NULL);
    return;
  }
  if (hr.status != 0) {
    free(head);
    reject_status(c, hr.status, hr.message, hr.extra_header);
    return;
  }

  if (srv->flags & WSN_SERVER_NEEDS_JS) {
    free(head);
    c->state = WSN_CS_WAIT_JS;
    update_reading(c);
    if (post_request(c, WSN_EV_HANDSHAKE, "", 0, c->hs_head_len) != 0)
      wsn_conn_destroy(c);
    return;
  }

  /* ws's default: the first protocol the client offered. */
  const char *proto = NULL;
  size_t proto_len = 0;
  if (hr.protocols)
    wsn_handshake_first_protocol(hr.protocols, hr.protocols_len, &proto,
                                 &proto_len);
  free(head);
  if (post_request(c, WSN_EV_CONNECTION, proto ? proto : "", proto_len,
                   c->hs_head_len) != 0) {
    wsn_conn_destroy(c);
    return;
  }
  server_accept(c, proto, proto_len);
}

/* Client: the socket's addresses for JS's ws._socket, which a server's
 * connections get in their CONNECTION payload. Out of memory: none are
 * posted, and JS reports them as undefined. */
static void post_addresses(wsn_conn_t *c) {
  wsn_buf_t b = {0};
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
  int rc = append_addr(&b, &ss);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= append_addr(&b, &ss);
  if (rc == 0) conn_post(c, WSN_EV_ADDRESS, b.base, b.len);
  wsn_buf_free(&b);
}

static void client_handshake(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int r;
  wsn_http_head_t *head = read_head(c, data, n, wsn_http_parse_response, &r);
  if (head == NULL) return;
  uint32_t result;
  size_t head_len;
  if (r < 0) {
    result = WSN_HS_BAD_RESPONSE;
    head_len = 0;
  } else {
    result = (uint32_t)wsn_handshake_check_response(head, c->key, strlen(c->key));
    head_len = (size_t)r;
    /* The answer to our compression offer is set up here, before the first
     * frame is read. JS checks the same header again for ws's error (a bad
     * answer fails the handshake there). */
    const wsn_http_header_t *ext = wsn_http_find(head, "sec-websocket-extensions");
    if (result == WSN_HS_OK && c->pmd_offer && ext) {
      wsn_pmd_setup_t setup;
      wsn_pmd_error_t err;
      memset(&setup, 0, sizeof(setup));
      setup.opts = *c->pmd_offer;
      if (wsn_pmd_accept_response(c->pmd_offer, ext->value, ext->value_len,
                                  &setup.params, &err) == WSN_PMD_OK) {
        setup.enabled = 1;
        if (pmd_enable(c, &setup) != 0) {
          free(head);
          wsn_conn_destroy(c);
          return;
        }
      }
    }
  }
  free(head);
  /* For an unexpected response, whatever body bytes came with the head are
   * passed on too. */
  size_t post_len = result == WSN_HS_NOT_101 ? c->hs.len : head_len;
  /* A response that is not HTTP: JS words Node's parse error from it. */
  if (result == WSN_HS_BAD_RESPONSE) post_len = c->hs.len;
  post_addresses(c);
  wsn_event_t *ev = conn_post(c, WSN_EV_OPEN, c->hs.base, post_len);
  if (ev) {
    ev->a = result;
    ev->b = (uint32_t)head_len;
  }
  c->announced = 1;
  free(c->key);
  c->key = NULL;
  if (result == WSN_HS_NOT_101 && ev != NULL) {
    /* The rest of the body follows as DATA events until the server closes
     * or JS (having read what it wanted) terminates. */
    c->state = WSN_CS_RAW;
    wsn_buf_free(&c->hs);
    update_reading(c);
    return;
  }
  if (result != WSN_HS_OK || ev == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  c->hs_head_len = (uint32_t)head_len;
  become_open(c);
}

/* ---- accept and connect ----------------------------------------------- */

static wsn_conn_t *conn_new(wsn_loop_t *l, wsn_id_t id) {
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

static void on_refused_close(uv_handle_t *h) {
  free(h);
}

/* No room for a connection libuv has accepted (no id left, out of memory):
 * it must still be taken off libuv's hands, which watches the listener
 * again only after uv_accept; then it is closed (the peer sees it end). */
static void refuse_accepted(wsn_server_t *srv) {
  uv_tcp_t *t = malloc(sizeof(*t));
  if (t == NULL) return;
  if (uv_tcp_init(srv->loop->uv, t) != 0) {
    free(t);
    return;
  }
  (void)uv_accept((uv_stream_t *)&srv->tcp, (uv_stream_t *)t);
  uv_close((uv_handle_t *)t, on_refused_close);
}

void wsn_conn_accept(wsn_server_t *srv, int fd) {
  wsn_loop_t *l = srv->loop;
  wsn_id_t id = wsn_slots_alloc(&l->slots);
  wsn_conn_t *c = id ? conn_new(l, id) : NULL;
  if (c == NULL) {
    if (id) wsn_slots_free(&l->slots, id);
    if (fd >= 0) close(fd); /* refused: the peer sees a reset */
    else refuse_accepted(srv);
    return;
  }
  c->server = srv;
  srv->conns++;
  c->is_server = 1;
  c->state = WSN_CS_SERVER_HS;
  c->auto_pong = !(srv->flags & WSN_SERVER_NO_AUTO_PONG);
  c->skip_utf8 = !!(srv->flags & WSN_SERVER_SKIP_UTF8);
  c->limits = srv->limits;
  wsn_frame_parser_init(&c->parser, 1, srv->max_payload);
  if (srv->handshake_timeout_ms) {
    c->hs_deadline = uv_now(l->uv) + srv->handshake_timeout_ms;
    wsn_loop_watch_handshake(l, srv->handshake_timeout_ms);
  }
  int r = fd >= 0 ? uv_tcp_open(&c->tcp, fd)
                  : uv_accept((uv_stream_t *)&srv->tcp, (uv_stream_t *)&c->tcp);
  if (r != 0) {
    if (fd >= 0) close(fd);
    wsn_conn_destroy(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* ws calls socket.setNoDelay() too */
  update_reading(c);
}

/* A socket Node's http server accepted and JS upgraded (or, with
 * WSN_ADOPT_CLIENT, one Node's http.request upgraded for a client): from
 * here it is ours as if we had accepted or connected it, past the
 * handshake. */
void wsn_conn_adopt(wsn_loop_t *l, wsn_cmd_t *cmd) {
  const wsn_adopt_args_t *a = (const wsn_adopt_args_t *)cmd->data;
  const uint8_t *head = cmd->data + sizeof(*a);
  int fd = a->fd;
  wsn_conn_t *c = conn_new(l, cmd->id);
  if (c == NULL) {
    close(fd);
    wsn_loop_post(l, WSN_EV_CLOSED, cmd->id, NULL, 0);
    wsn_slots_free(&l->slots, cmd->id);
    free(cmd);
    return;
  }
  c->is_server = !(a->flags & WSN_ADOPT_CLIENT);
  c->announced = 1; /* JS created this id */
  c->state = WSN_CS_OPEN;
  c->auto_pong = !(a->flags & WSN_SERVER_NO_AUTO_PONG);
  c->skip_utf8 = !!(a->flags & WSN_SERVER_SKIP_UTF8);
  c->limits = a->limits;
  wsn_frame_parser_init(&c->parser, c->is_server, a->max_payload);
  if (pmd_enable(c, &a->pmd) != 0) {
    close(fd);
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  /* Fails harmlessly on the AF_UNIX end of a stream-transport socketpair. */
  uv_tcp_nodelay(&c->tcp, 1);
  /* The 101 leaves first: the command record becomes its outbox entry. */
  cmd->off = sizeof(*a) + a->head_len;
  cmd->len = a->response_len;
  cmd->type = WSN_CMD_SEND;
  cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
  cmd->next = NULL;
  /* What Node read past the request goes to the parser before any read. */
  if (a->head_len > 0 && wsn_buf_append(&c->hs, head, a->head_len) != 0) {
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  if (cmd->len > 0) outbox_push(c, cmd); /* a client has no response */
  else free(cmd);
  c->hs_head_len = 0;
  become_open(c);
}

size_t wsn_conn_expire_handshakes(wsn_loop_t *l, uint64_t now) {
  /* Node's http server answers a request that is too slow the same way. */
  static const char timeout[] =
      "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";
  size_t reading = 0;
  for (wsn_conn_t *c = l->conns; c; c = c->next) {
    /* A request JS has not answered yet (a verifyClient that never calls
     * back) is timed out like a slow one, with the same 408: the peer learns
     * why, and the fd is released either way. */
    if ((c->state != WSN_CS_SERVER_HS && c->state != WSN_CS_WAIT_JS) ||
        c->hs_deadline == 0)
      continue;
    if (c->hs_deadline <= now) reject_raw(c, timeout, sizeof(timeout) - 1);
    else reading++;
  }
  return reading;
}

static void post_socket_error(wsn_conn_t *c, int err, const char *syscall) {
  char buf[512];
  const char *host = c->host ? c->host : "";
  /* A connect error names the address tried, as Node's does (for a name:
   * the last one the lookup gave, the one whose failure is reported). */
  char ip[64];
  if (c->addrs && strcmp(syscall, "connect") == 0) {
    const struct addrinfo *ai = c->addrs;
    while (ai->ai_next && ai->ai_next != c->next_addr) ai = ai->ai_next;
    if (ai->ai_family == AF_INET6
            ? uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip,
                          sizeof(ip)) == 0
            : uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip,
                          sizeof(ip)) == 0)
      host = ip;
  }
  int n = snprintf(buf, sizeof(buf), "%s%c%s%c%u", syscall, 0, host, 0,
                   c->port);
  if (n < 0) return;
  if ((size_t)n >= sizeof(buf)) n = sizeof(buf) - 1;
  wsn_event_t *ev = conn_post(c, WSN_EV_SOCKET_ERROR, buf, (size_t)n);
  if (ev) ev->a = (uint32_t)err;
}

static void try_connect(wsn_conn_t *c);
static void on_retry_close(uv_handle_t *h);

static void on_connect(uv_connect_t *req, int status) {
  wsn_conn_t *c = req->data;
  free(req);
  c->creq = NULL;
  if (status == UV_ECANCELED || c->state == WSN_CS_CLOSING_HANDLE) return;
  if (status != 0) {
    if (c->next_addr) {
      c->reconnecting = 1;
      uv_close((uv_handle_t *)&c->tcp, on_retry_close);
      return;
    }
    post_socket_error(c, status, "connect");
    wsn_conn_destroy(c);
    return;
  }
  if (c->addrs) {
    uv_freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = WSN_CS_CLIENT_HS;
  if (c->tls) {
    /* The ClientHello first; the request follows the handshake. */
    if (wsn_tls_session_handshake(c->tls) == WSN_TLS_ERROR) {
      tls_fail(c);
      return;
    }
    if (tls_drain(c, 0, 0, 0) != 0) {
      wsn_conn_destroy(c);
      return;
    }
  }
  update_reading(c);
  wsn_loop_mark_dirty(c->loop, c); /* the request is in the outbox */
}

static void connect_addr(wsn_conn_t *c, const struct sockaddr *sa) {
  uv_connect_t *req = malloc(sizeof(*req));
  if (req == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  req->data = c;
  int r = uv_tcp_connect(req, &c->tcp, sa, on_connect);
  if (r != 0) {
    free(req);
    post_socket_error(c, r, "connect");
    wsn_conn_destroy(c);
    return;
  }
  c->creq = req;
}

/* A socket whose connect failed cannot be reused (and the next address may
 * be of the other family), so the handle is closed and a fresh one opened,
 * as Node's autoSelectFamily moves on to the next address. */
static void on_retry_close(uv_handle_t *h) {
  wsn_conn_t *c = h->data;
  c->reconnecting = 0;
  if (c->state == WSN_CS_CLOSING_HANDLE) {
    on_close(h); /* destroyed meanwhile: finish that close now */
    return;
  }
  if (uv_tcp_init(c->loop->uv, &c->tcp) != 0) {
    c->state = WSN_CS_CLOSING_HANDLE;
    on_close(h);
    return;
  }
  c->tcp.data = c;
  try_connect(c);
}

static void try_connect(wsn_conn_t *c) {
  struct addrinfo *ai = c->next_addr;
  c->next_addr = ai->ai_next;
  connect_addr(c, ai->ai_addr);
}

/* Never called for a destroyed connection: wsn_conn_destroy abandons the
 * lookup. */
static void on_resolved(void *data, int status, struct addrinfo *res) {
  wsn_conn_t *c = data;
  c->gai = NULL;
  if (status != 0 || res == NULL) {
    if (res) uv_freeaddrinfo(res);
    /* Node reports a failed lookup as getaddrinfo ENOTFOUND. */
    post_socket_error(c, status == UV_EAI_NONAME || status == UV_EAI_NODATA
                             ? UV_EAI_NONAME : status,
                      "getaddrinfo");
    wsn_conn_destroy(c);
    return;
  }
  c->addrs = res;
  c->next_addr = res;
  try_connect(c);
}

void wsn_conn_connect(wsn_loop_t *l, wsn_cmd_t *cmd) {
  const wsn_connect_args_t *a = (const wsn_connect_args_t *)cmd->data;
  const char *host = (const char *)cmd->data + sizeof(*a);
  const char *key = host + a->host_len;
  wsn_conn_t *c = conn_new(l, cmd->id);
  if (c == NULL) {
    wsn_tls_session_free(a->tls);
    wsn_event_t *ev = wsn_loop_post(l, WSN_EV_SOCKET_ERROR, cmd->id, "connect", 7);
    if (ev) ev->a = (uint32_t)UV_ENOMEM;
    wsn_loop_post(l, WSN_EV_CLOSED, cmd->id, NULL, 0);
    wsn_slots_free(&l->slots, cmd->id);
    free(cmd);
    return;
  }
  c->tls = a->tls; /* owned from here: every exit below frees it */
  c->state = WSN_CS_RESOLVING;
  c->port = a->port;
  c->auto_pong = !(a->flags & WSN_CONN_NO_AUTO_PONG);
  c->skip_utf8 = !!(a->flags & WSN_CONN_SKIP_UTF8);
  c->limits = a->limits;
  c->announced = 1; /* JS created this id */
  wsn_frame_parser_init(&c->parser, 0, a->max_payload);
  c->host = malloc(a->host_len + 1);
  c->key = malloc(a->key_len + 1);
  if (c->host == NULL || c->key == NULL) {
    free(cmd);
    wsn_conn_destroy(c);
    return;
  }
  memcpy(c->host, host, a->host_len);
  c->host[a->host_len] = 0;
  memcpy(c->key, key, a->key_len);
  c->key[a->key_len] = 0;
  if (a->pmd.offered) {
    c->pmd_offer = malloc(sizeof(*c->pmd_offer));
    if (c->pmd_offer == NULL) {
      free(cmd);
      wsn_conn_destroy(c);
      return;
    }
    *c->pmd_offer = a->pmd.opts;
  }
  /* The command record itself becomes the outbox entry for the request
   * (with TLS: sent once the TLS handshake is done). */
  cmd->off = sizeof(*a) + a->host_len + a->key_len;
  cmd->len = a->request_len;
  cmd->type = WSN_CMD_SEND;
  cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
  cmd->next = NULL;
  if (c->tls) c->plain_head = c->plain_tail = cmd;
  else c->out_head = c->out_tail = cmd;

  /* IP literals connect at once; names are looked up on a thread of the
   * loop's resolver (never on the JS thread), which a stop never waits for. */
  struct sockaddr_storage ss;
  char hostbuf[256];
  const char *h = c->host;
  size_t hl = strlen(h);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']' && hl - 2 < sizeof(hostbuf)) {
    memcpy(hostbuf, h + 1, hl - 2);
    hostbuf[hl - 2] = 0;
    h = hostbuf;
  }
  if (uv_ip4_addr(h, (int)c->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(h, (int)c->port, (struct sockaddr_in6 *)&ss) == 0) {
    connect_addr(c, (struct sockaddr *)&ss);
    return;
  }
  wsn_resolver_t *rs = wsn_loop_resolver(l);
  int r = rs ? wsn_lookup_start(rs, h, c->port, on_resolved, c, &c->gai)
             : UV_ENOMEM;
  if (r != 0) {
    post_socket_error(c, r, "getaddrinfo");
    wsn_conn_destroy(c);
  }
}

/* ---- writing ---------------------------------------------------------- */

/* Publishes c->written to JS (bufferedAmount), and reports it when a send
 * callback waits for it. */
static void written_changed(wsn_conn_t *c) {
  wsn_slot_t *sl = wsn_slots_get(&c->loop->slots, c->id);
  if (sl) atomic_store(&sl->written, c->written);
  if (c->want_ack) {
    c->want_ack = 0;
    wsn_event_t *ev = conn_post(c, WSN_EV_WRITTEN, NULL, 0);
    /* Out of memory: a send callback would wait for ever. Closing calls
     * every waiting callback (with an error), as other lost events do. */
    if (ev) ev->c = c->written;
    else wsn_conn_destroy(c);
  }
}

/* Drops `bytes` written bytes from the front of the outbox. Only frame
 * bytes count towards `written` (JS's bufferedAmount knows no handshake). */
static void consume(wsn_conn_t *c, size_t bytes) {
  while (bytes > 0 && c->out_head) {
    wsn_cmd_t *cmd = c->out_head;
    size_t left = cmd->len - c->out_off;
    size_t take = bytes < left ? bytes : left;
    /* A compressed frame counts as the size JS gave it, once it is out. */
    int accounted = (cmd->flags & WSN_CMD_ACCOUNTED) != 0;
    if (!(cmd->flags & WSN_CMD_UNCOUNTED) && !accounted) c->written += take;
    bytes -= take;
    if (take < left) {
      c->out_off += take;
      break;
    }
    if (accounted) c->written += cmd->arg;
    /* Its auto-pongs are written: ws's pong callback has run. */
    c->pending_pongs -= cmd->pongs < c->pending_pongs ? cmd->pongs
                                                       : c->pending_pongs;
    c->out_off = 0;
    if (cmd->flags & WSN_SEND_WANT_ACK) c->want_ack = 1;
    c->out_head = cmd->next;
    if (c->out_head == NULL) c->out_tail = NULL;
    free(cmd);
  }
  written_changed(c);
}

#define WSN_MAX_IOV 64

static int fill_iov(wsn_conn_t *c, uv_buf_t *iov, size_t *total) {
  int n = 0;
  size_t sum = 0;
  size_t off = c->out_off;
  for (wsn_cmd_t *cmd = c->out_head; cmd && n < WSN_MAX_IOV; cmd = cmd->next) {
    iov[n].base = (char *)cmd->data + cmd->off + off;
    iov[n].len = cmd->len - off;
    sum += iov[n].len;
    off = 0;
    n++;
  }
  *total = sum;
  return n;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  wsn_conn_t *c = req->data;
  free(req);
  c->sreq = NULL;
  if (status == UV_ECANCELED || c->state == WSN_CS_CLOSING_HANDLE) return;
  /* A rejected handshake is done once its response is out (ws destroys the
   * socket on 'finish'); otherwise wait for the peer's end. */
  if (status < 0 || c->eof || c->state == WSN_CS_REJECTING) wsn_conn_destroy(c);
}

static void maybe_shutdown(wsn_conn_t *c) {
  if (!c->end_after_flush || c->shut || c->out_head || c->wreq) return;
  if (c->tls) {
    /* Frames still waiting for the handshake never go; otherwise they go
     * before the close_notify, which goes before the FIN. */
    if (c->plain_head && wsn_tls_session_handshake_done(c->tls)) return;
    if (!c->tls_shut) {
      c->tls_shut = 1;
      plain_free(c);
      wsn_tls_session_shutdown(c->tls);
      if (tls_drain(c, 0, 0, 0) != 0) {
        wsn_conn_destroy(c);
        return;
      }
      if (c->out_head) return; /* flushed on the next pass */
    }
  }
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  req->data = c;
  c->shut = 1;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    wsn_conn_destroy(c);
    return;
  }
  c->sreq = req;
}

static void on_write(uv_write_t *req, int status) {
  wsn_conn_t *c = req->data;
  free(req);
  c->wreq = NULL;
  if (status == UV_ECANCELED || c->state == WSN_CS_CLOSING_HANDLE) return;
  if (status < 0) {
    wsn_conn_destroy(c);
    return;
  }
  consume(c, c->wreq_bytes);
  c->wreq_bytes = 0;
  if (c->state == WSN_CS_CLOSING_HANDLE) return;
  if (c->out_head) wsn_loop_mark_dirty(c->loop, c);
  else maybe_shutdown(c);
}

void wsn_conn_flush(wsn_conn_t *c) {
  if (c->state == WSN_CS_CLOSING_HANDLE || c->state == WSN_CS_RESOLVING)
    return;
  if (c->tls && tls_encrypt_pending(c) != 0) {
    tls_fail(c);
    return;
  }
  if (c->wreq) return;
  uv_buf_t iov[WSN_MAX_IOV];
  size_t total;
  int n = fill_iov(c, iov, &total);
  if (n == 0) {
    maybe_shutdown(c);
    return;
  }
  /* One writev for everything queued this iteration (corking). */
  int r = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
  if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
  if (r < 0) {
    wsn_conn_destroy(c);
    return;
  }
  if (r > 0) consume(c, (size_t)r);
  if (c->state == WSN_CS_CLOSING_HANDLE) return;
  if (c->out_head == NULL) {
    maybe_shutdown(c);
    return;
  }
  /* The kernel is full: hand the rest to an async write, which keeps the
   * records alive until it completes. */
  n = fill_iov(c, iov, &total);
  uv_write_t *req = malloc(sizeof(*req));
  if (req == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  req->data = c;
  if (uv_write(req, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_write) != 0) {
    free(req);
    wsn_conn_destroy(c);
    return;
  }
  c->wreq = req;
  c->wreq_bytes = total;
}

/* ---- commands --------------------------------------------------------- */

/* Compresses a bare payload JS queued (WSN_SEND_COMPRESS) into a whole
 * frame record: RSV1 on a message's first frame, masked for a client. The
 * new record keeps the size JS counted (arg), written off when it leaves
 * whole (consume). Returns NULL after failing the connection. */
static wsn_cmd_t *compress_frame(wsn_conn_t *c, wsn_cmd_t *cmd) {
  int opcode = (int)((cmd->flags >> WSN_SEND_OPCODE_SHIFT) & 0xF);
  int fin = (cmd->flags & WSN_SEND_FIN) != 0;
  int masked = !c->is_server;
  wsn_buf_t out = {0};
  int r = c->pmd ? wsn_pmd_compress(c->pmd, cmd->data + cmd->off, cmd->len,
                                    fin, &out)
                 : WSN_PMD_E_ZLIB;
  wsn_cmd_t *frame = NULL;
  if (r == WSN_PMD_OK) {
    frame = wsn_cmd_new(WSN_CMD_SEND, c->id,
                        wsn_frame_header_size(out.len, masked) + out.len);
  }
  if (frame == NULL) {
    wsn_buf_free(&out);
    free(cmd);
    wsn_conn_destroy(c);
    return NULL;
  }
  uint8_t mask[4];
  if (masked) wsn_rand_fill(&c->loop->rand, mask, 4);
  size_t h = wsn_frame_header(frame->data, fin, opcode != WSN_OP_CONT, opcode,
                              out.len, masked ? mask : NULL);
  if (masked) wsn_frame_mask_copy(frame->data + h, out.base, out.len, mask);
  else if (out.len) memcpy(frame->data + h, out.base, out.len);
  frame->flags = (cmd->flags & WSN_SEND_WANT_ACK) | WSN_CMD_ACCOUNTED;
  frame->arg = cmd->arg;
  wsn_buf_free(&out);
  free(cmd);
  if (fin) wsn_pmd_codec_idle(c->pmd);
  return frame;
}

/* A frame JS counted (bufferedAmount) that will never be sent: our close
 * frame went first. It is written off at once, so bufferedAmount does not
 * stay above zero for bytes that can never leave. */
static void drop_js_frame(wsn_conn_t *c, wsn_cmd_t *cmd) {
  c->written += (cmd->flags & WSN_SEND_COMPRESS) ? cmd->arg : cmd->len;
  if (cmd->flags & WSN_SEND_WANT_ACK) c->want_ack = 1;
  free(cmd);
  written_changed(c);
}

void wsn_conn_command(wsn_conn_t *c, wsn_cmd_t *cmd) {
  if (c->state == WSN_CS_CLOSING_HANDLE) {
    free(cmd);
    return;
  }
  switch (cmd->type) {
    case WSN_CMD_SEND:
      /* Frames after our close frame are dropped (the peer would fail us),
       * and so are frames after our FIN (the peer ended its side first, and
       * we ended ours: ws ends the socket on 'end', and its writes after
       * that go nowhere; libuv would refuse them with EPIPE). */
      if (c->close_sent || c->state != WSN_CS_OPEN || c->shut) {
        drop_js_frame(c, cmd);
        return;
      }
      if ((cmd->flags & WSN_SEND_COMPRESS) &&
          (cmd = compress_frame(c, cmd)) == NULL)
        return;
      outbox_push(c, cmd);
      return;
    case WSN_CMD_CLOSE:
      if (c->close_sent || c->state != WSN_CS_OPEN || c->shut) {
        drop_js_frame(c, cmd);
      } else {
        outbox_push(c, cmd);
        c->close_sent = 1;
      }
      /* ws ends the socket once close frames went both ways (or after an
       * error); the peer's end then completes the close. */
      if (c->close_received || c->errored) {
        c->end_after_flush = 1;
        wsn_loop_mark_dirty(c->loop, c);
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
      update_reading(c);
      return;
    case WSN_CMD_ACCEPT:
      /* JS built the whole 101 response (its 'headers' listeners saw it). */
      if (c->state == WSN_CS_WAIT_JS && cmd->len >= sizeof(wsn_pmd_setup_t)) {
        wsn_pmd_setup_t setup;
        memcpy(&setup, cmd->data, sizeof(setup));
        cmd->off = sizeof(setup);
        cmd->len -= sizeof(setup);
        cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
        outbox_push(c, cmd);
        if (pmd_enable(c, &setup) != 0) {
          wsn_conn_destroy(c);
          return;
        }
        become_open(c);
        return;
      }
      free(cmd);
      return;
    case WSN_CMD_REJECT:
      if (c->state == WSN_CS_WAIT_JS) reject_raw(c, (const char *)cmd->data, cmd->len);
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
  update_reading(c);
}

/* ---- closing ---------------------------------------------------------- */

void wsn_server_maybe_closed(wsn_server_t *s) {
  if (!s->listener_closed || s->conns > 0) return;
  wsn_loop_t *l = s->loop;
  wsn_loop_post(l, WSN_EV_SERVER_CLOSED, s->id, NULL, 0);
  wsn_slots_free(&l->slots, s->id);
  wsn_server_unlink(l, s);
  free(s->path);
  free(s);
}

void wsn_conn_report_closed(wsn_loop_t *l, int discard) {
  while (l->unreported) {
    wsn_conn_t *c = l->unreported;
    if (!discard && wsn_loop_post(l, WSN_EV_CLOSED, c->id, NULL, 0) == NULL)
      return; /* still no memory: the next publish tries again */
    l->unreported = c->next;
    free(c);
  }
}

static void on_close(uv_handle_t *h) {
  wsn_conn_t *c = h->data;
  wsn_loop_t *l = c->loop;
  /* Out of memory for the event: the struct itself carries the id until it
   * can be posted (a stopping loop posts nothing and needs nothing). */
  int unreported = c->announced && !l->stopping &&
                   wsn_loop_post(l, WSN_EV_CLOSED, c->id, NULL, 0) == NULL;
  wsn_slots_free(&l->slots, c->id);
  wsn_loop_unmark_dirty(l, c);
  conn_unlink(l, c);
  l->live_handles--;
  outbox_free(c);
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
  if (!c->reconnecting) uv_close((uv_handle_t *)&c->tcp, on_close);
}
