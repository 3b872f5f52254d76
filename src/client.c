/*
 * The client side (see conn.h): connecting (an address at once, a name
 * through the loop's resolver, each address in turn), TLS's ClientHello,
 * and reading the server's response to the request JS built.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "http.h"
#include "resolve.h"
#include "tls.h"

static void on_retry_close(uv_handle_t *h);
static void try_connect(wsn_conn_t *c);

/* Client: the socket's addresses for JS's ws._socket, which a server's
 * connections get in their CONNECTION payload. Out of memory: none are
 * posted, and JS reports them as undefined. */
static void post_addresses(wsn_conn_t *c) {
  wsn_buf_t b = {0};
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
  int rc = wsn_conn_append_addr(&b, &ss);
  len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len);
  rc |= wsn_conn_append_addr(&b, &ss);
  if (rc == 0) wsn_conn_post(c, WSN_EV_ADDRESS, b.base, b.len);
  wsn_buf_free(&b);
}

void wsn_client_handshake(wsn_conn_t *c, const uint8_t *data, size_t n) {
  int r;
  wsn_http_head_t *head = wsn_conn_read_head(c, data, n, wsn_http_parse_response, &r);
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
        if (wsn_conn_pmd_enable(c, &setup) != 0) {
          free(head);
          wsn_conn_destroy(c);
          return;
        }
      }
    }
  }
  /* JS gets the head parsed (wsn_http_encode_response), for the response
   * object of its 'upgrade' or 'unexpected-response'; for an unexpected
   * response, whatever body bytes came with the head follow it. A response
   * that is not HTTP goes as its bytes: JS words Node's parse error from
   * them. */
  uint8_t *payload = c->hs.base;
  size_t post_len = c->hs.len;
  size_t enc_len = 0;
  if (result != WSN_HS_BAD_RESPONSE) {
    size_t body = result == WSN_HS_NOT_101 ? c->hs.len - head_len : 0;
    enc_len = wsn_http_encode_response(head, NULL);
    payload = malloc(enc_len + body);
    if (payload == NULL) {
      free(head);
      wsn_conn_destroy(c);
      return;
    }
    wsn_http_encode_response(head, (char *)payload);
    if (body) memcpy(payload + enc_len, c->hs.base + head_len, body);
    post_len = enc_len + body;
  }
  free(head);
  post_addresses(c);
  wsn_event_t *ev = wsn_conn_post(c, WSN_EV_OPEN, payload, post_len);
  if (payload != c->hs.base) free(payload);
  if (ev) {
    ev->a = result;
    ev->b = (uint32_t)enc_len;
  }
  c->announced = 1;
  free(c->key);
  c->key = NULL;
  if (result == WSN_HS_NOT_101 && ev != NULL) {
    /* The rest of the body follows as DATA events until the server closes
     * or JS (having read what it wanted) terminates. */
    c->state = WSN_CS_RAW;
    wsn_buf_free(&c->hs);
    wsn_conn_update_reading(c);
    return;
  }
  if (result != WSN_HS_OK || ev == NULL) {
    wsn_conn_destroy(c);
    return;
  }
  c->hs_head_len = (uint32_t)head_len;
  wsn_conn_become_open(c);
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
  wsn_event_t *ev = wsn_conn_post(c, WSN_EV_SOCKET_ERROR, buf, (size_t)n);
  if (ev) ev->a = (uint32_t)err;
}

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
      wsn_conn_tls_fail(c);
      return;
    }
    if (wsn_outbox_tls_drain(c, 0, 0, 0) != 0) {
      wsn_conn_destroy(c);
      return;
    }
  }
  wsn_conn_update_reading(c);
  wsn_conn_mark_dirty(c); /* the request is in the outbox */
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
    wsn_conn_on_close(h); /* destroyed meanwhile: finish that close now */
    return;
  }
  if (uv_tcp_init(c->loop->uv, &c->tcp) != 0) {
    c->state = WSN_CS_CLOSING_HANDLE;
    wsn_conn_on_close(h);
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
  wsn_conn_t *c = wsn_conn_new(l, cmd->id);
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
