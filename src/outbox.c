/*
 * A connection's writing (see conn.h): the outbox of frame and handshake
 * records, written with one writev per loop iteration (corking) and an
 * async write for what the kernel did not take; what was written is counted
 * for JS's bufferedAmount and send callbacks; TLS records are made from the
 * plaintext queued in an iteration; the FIN goes once the outbox drains.
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls.h"

/* Links bytes for the socket (after TLS, if any). */
static void wire_push(wsn_conn_t *c, wsn_cmd_t *cmd) {
  cmd->next = NULL;
  if (c->out_tail) c->out_tail->next = cmd;
  else c->out_head = cmd;
  c->out_tail = cmd;
  wsn_conn_mark_dirty(c);
}

/* Queues a frame or handshake bytes. With TLS they wait as plaintext and
 * are encrypted together once per loop iteration (wsn_conn_flush), so a
 * burst of small frames makes one TLS record, not one each. */
void wsn_outbox_push(wsn_conn_t *c, wsn_cmd_t *cmd) {
  /* What consume() will count as written for it (maxBackpressure). */
  if (cmd->flags & WSN_CMD_ACCOUNTED) c->queued += cmd->arg;
  else if (!(cmd->flags & WSN_CMD_UNCOUNTED)) c->queued += cmd->len;
  if (c->tls == NULL) {
    wire_push(c, cmd);
    return;
  }
  cmd->next = NULL;
  if (c->plain_tail) c->plain_tail->next = cmd;
  else c->plain_head = cmd;
  c->plain_tail = cmd;
  wsn_conn_mark_dirty(c);
}

static void plain_free(wsn_conn_t *c) {
  while (c->plain_head) {
    wsn_cmd_t *next = c->plain_head->next;
    wsn_cmd_free(c->loop, c->plain_head);
    c->plain_head = next;
  }
  c->plain_tail = NULL;
}

/* Moves what the TLS session produced (handshake messages, alerts,
 * records) to the socket's queue. `accounted` plaintext bytes are written
 * off when these records leave; `ack` asks for a WRITTEN event then. */
int wsn_outbox_tls_drain(wsn_conn_t *c, uint64_t accounted, int ack,
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
  if (r == WSN_TLS_ERROR || wsn_outbox_tls_drain(c, accounted, ack, pongs) != 0)
    return -1;
  return 0;
}

static void post_tls_error(wsn_conn_t *c) {
  const wsn_tls_error_t *e = wsn_tls_session_error(c->tls);
  char text[1024];
  size_t n = wsn_conn_code_message(text, sizeof(text), e ? e->code : NULL,
                              e && e->message ? e->message : "TLS error");
  if (c->server != NULL && !c->announced) {
    /* A TLS listener's connection JS never heard of (a failed handshake,
     * plain HTTP to the port): its server hears of it, as Node's tls server
     * emits 'tlsClientError', with the peer's address. */
    wsn_buf_t b = {0};
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (wsn_buf_append(&b, text, n + 1) == 0 &&
        wsn_conn_append_addr(&b, &ss) == 0)
      wsn_loop_post(c->loop, WSN_EV_TLS_CLIENT_ERROR, c->server->id, b.base,
                    b.len);
    wsn_buf_free(&b);
    return;
  }
  if (e && e->cert_der && n + 1 < sizeof(text)) {
    /* code NUL message NUL DER: the peer certificate of a name mismatch,
     * for the `cert` of Node's error. */
    wsn_buf_t b = {0};
    if (wsn_buf_append(&b, text, n + 1) == 0 &&
        wsn_buf_append(&b, e->cert_der, e->cert_der_len) == 0) {
      wsn_conn_post(c, WSN_EV_TLS_ERROR, b.base, b.len);
      wsn_buf_free(&b);
      return;
    }
    wsn_buf_free(&b);
  }
  wsn_conn_post(c, WSN_EV_TLS_ERROR, text, n);
}

/* A fatal TLS error: report it, send the alert if the kernel takes it at
 * once, and close (Node destroys the socket too). */
void wsn_conn_tls_fail(wsn_conn_t *c) {
  post_tls_error(c);
  plain_free(c);
  wsn_outbox_tls_drain(c, 0, 0, 0);
  wsn_conn_flush(c);
  wsn_conn_destroy(c);
}

void wsn_outbox_free(wsn_conn_t *c) {
  plain_free(c);
  wsn_cmd_t *cmd = c->out_head;
  while (cmd) {
    wsn_cmd_t *next = cmd->next;
    wsn_cmd_free(c->loop, cmd);
    cmd = next;
  }
  c->out_head = c->out_tail = NULL;
  c->out_off = 0;
}

/* Queues a frame built here on the loop thread (control frames we answer
 * ourselves). Clients mask with a key from the loop's pool. JS never counted
 * these bytes, so they are never reported as written; an auto-pong counts
 * as pending until it has left whole (maxPendingAutoPongs). */
void wsn_outbox_frame(wsn_conn_t *c, int opcode, const uint8_t *payload,
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
  wsn_outbox_push(c, cmd);
}

/* Queues raw handshake bytes (they do not count as written frame bytes). */
void wsn_outbox_bytes(wsn_conn_t *c, const void *p, size_t len) {
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, len);
  if (cmd == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  cmd->flags |= WSN_CMD_HANDSHAKE_BYTES;
  memcpy(cmd->data, p, len);
  wsn_outbox_push(c, cmd);
}

/* Publishes c->written to JS (bufferedAmount), and reports it when a send
 * callback waits for it. */
static void written_changed(wsn_conn_t *c) {
  wsn_slot_t *sl = wsn_slots_get(&c->loop->slots, c->id);
  if (sl) atomic_store(&sl->written, c->written);
  if (c->want_ack) {
    c->want_ack = 0;
    wsn_event_t *ev = wsn_conn_post(c, WSN_EV_WRITTEN, NULL, 0);
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
    wsn_cmd_free(c->loop, cmd);
  }
  written_changed(c);
}

#define WSN_MAX_IOV 64

/* The buffers of the outbox for one writev, from out_off: one per record,
 * two for an external one (its header, then JS's payload). */
static int fill_iov(wsn_conn_t *c, uv_buf_t *iov, size_t *total) {
  int n = 0;
  size_t sum = 0;
  size_t off = c->out_off;
  for (wsn_cmd_t *cmd = c->out_head; cmd && n < WSN_MAX_IOV - 1;
       cmd = cmd->next) {
    if (cmd->flags & WSN_CMD_SHARED) {
      wsn_shared_t *sh;
      memcpy(&sh, cmd->data, sizeof(sh));
      iov[n].base = (char *)sh->data + cmd->off + off;
      iov[n].len = cmd->len - off;
    } else if (cmd->flags & WSN_CMD_EXTERNAL) {
      wsn_cmd_ext_t x = wsn_cmd_ext(cmd);
      size_t h = cmd->len - x.len;
      if (off < h) {
        iov[n].base = (char *)cmd->data + cmd->off + off;
        iov[n].len = h - off;
        sum += iov[n].len;
        n++;
        off = 0;
      } else {
        off -= h;
      }
      iov[n].base = (char *)x.base + off;
      iov[n].len = x.len - off;
    } else {
      iov[n].base = (char *)cmd->data + cmd->off + off;
      iov[n].len = cmd->len - off;
    }
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
      if (wsn_outbox_tls_drain(c, 0, 0, 0) != 0) {
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
  if (c->out_head) wsn_conn_mark_dirty(c);
  else maybe_shutdown(c);
}

/* uv_try_write, by sendmsg(): libuv writes with write()/writev(), whose
 * VFS path (file position lock, fsnotify) costs a socket more than the
 * socket call does, and a broadcast makes one such call per connection per
 * message (S9: ~9% of the server's kernel time). Only while libuv has no
 * write of ours queued or a connect under way, as uv_try_write; where the
 * handle has no fd to give (or off Linux), uv_try_write itself. */
static ssize_t try_write(wsn_conn_t *c, uv_buf_t *iov, unsigned n) {
#ifdef __linux__
  uv_os_fd_t fd;
  if (c->tcp.write_queue_size == 0 && c->tcp.connect_req == NULL &&
      uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0) {
    /* uv_buf_t is laid out as struct iovec on Unix (libuv's promise). */
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = n;
    ssize_t w;
    do {
      w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) return w;
    return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
  }
#endif
  return uv_try_write((uv_stream_t *)&c->tcp, iov, n);
}

void wsn_conn_flush(wsn_conn_t *c) {
  if (c->state == WSN_CS_CLOSING_HANDLE || c->state == WSN_CS_RESOLVING)
    return;
  if (c->tls && tls_encrypt_pending(c) != 0) {
    wsn_conn_tls_fail(c);
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
  ssize_t r = try_write(c, iov, (unsigned)n);
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

/* Compresses a bare payload JS queued (WSN_SEND_COMPRESS) into a whole
 * frame record: RSV1 on a message's first frame, masked for a client. The
 * new record keeps the size JS counted (arg), written off when it leaves
 * whole (consume). Returns NULL after failing the connection. */
wsn_cmd_t *wsn_outbox_compress(wsn_conn_t *c, wsn_cmd_t *cmd) {
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

/* An external record as an ordinary one (header and payload copied in),
 * its reference released; NULL after failing the connection. */
wsn_cmd_t *wsn_outbox_inline(wsn_conn_t *c, wsn_cmd_t *cmd) {
  wsn_cmd_ext_t x = wsn_cmd_ext(cmd);
  size_t h = cmd->len - x.len;
  wsn_cmd_t *copy = wsn_cmd_new(cmd->type, cmd->id, cmd->len);
  if (copy == NULL) {
    wsn_cmd_free(c->loop, cmd);
    wsn_conn_destroy(c);
    return NULL;
  }
  memcpy(copy->data, cmd->data + cmd->off, h);
  memcpy(copy->data + h, x.base, x.len);
  copy->flags = cmd->flags & ~(WSN_CMD_EXTERNAL | WSN_CMD_POOLED);
  copy->arg = cmd->arg;
  wsn_cmd_free(c->loop, cmd);
  return copy;
}

/* A frame JS counted (bufferedAmount) that will never be sent: our close
 * frame went first. It is written off at once, so bufferedAmount does not
 * stay above zero for bytes that can never leave. */
void wsn_outbox_drop(wsn_conn_t *c, wsn_cmd_t *cmd) {
  uint64_t n = (cmd->flags & WSN_SEND_COMPRESS) ? cmd->arg : cmd->len;
  c->queued += n;
  c->written += n;
  if (cmd->flags & WSN_SEND_WANT_ACK) c->want_ack = 1;
  wsn_cmd_free(c->loop, cmd);
  written_changed(c);
}

void wsn_outbox_write_off(wsn_conn_t *c, uint64_t counted) {
  c->queued += counted;
  c->written += counted;
  written_changed(c);
}

/* A publish's frame for this connection: a small record pointing to the
 * shared bytes (no copy), written with the rest of the outbox. TLS
 * encrypts plaintext records that hold their bytes: a copy for it. */
int wsn_outbox_shared(wsn_conn_t *c, wsn_shared_t *sh, uint64_t counted,
                      int accounted) {
  wsn_cmd_t *cmd;
  if (c->tls) {
    cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, sh->len);
    if (cmd) memcpy(cmd->data, sh->data, sh->len);
  } else {
    cmd = wsn_cmd_new(WSN_CMD_SEND, c->id, sizeof(sh));
    if (cmd) {
      memcpy(cmd->data, &sh, sizeof(sh));
      wsn_shared_ref(sh);
      cmd->flags = WSN_CMD_SHARED;
      cmd->len = sh->len;
    }
  }
  if (cmd == NULL) {
    wsn_conn_destroy(c);
    return -1;
  }
  if (accounted) {
    cmd->flags |= WSN_CMD_ACCOUNTED;
    cmd->arg = counted;
  }
  wsn_outbox_push(c, cmd);
  return 0;
}
