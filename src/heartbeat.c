/*
 * The heartbeat (options idleTimeout and sendPings; docs/flow-control.md):
 * a connection that has read nothing for half its idleTimeout gets a ping
 * made here (with sendPings), and one that has read nothing for all of it
 * is terminated, as ws's terminate() (JS sees 'close' with 1006). Any byte
 * read counts as life: a pong, a message, anything.
 *
 * No timer per connection: the loop's one sweep timer (loop.c) calls
 * wsn_conns_heartbeat, which walks the connections in C. An idle connection
 * costs JS nothing, and the pong that answers our ping is not posted to JS
 * (uWebSockets.js does not show it either): it is recognised by its payload.
 */
#include "conn.h"

#include <string.h>

/* The payload of our pings: a peer echoes it in its pong (RFC 6455 5.5.3),
 * which tells that pong from one answering a ping JS sent. */
static const uint8_t hb_payload[] = "wsn-heartbeat";
#define HB_PAYLOAD_LEN (sizeof(hb_payload) - 1)

/* The stamp's clock: ms, mod 2^31 (bit 31 of `heartbeat` is the ping
 * flag). Differences are taken mod 2^31 too, so they stay right across a
 * wrap for any interval under 24.8 days; JS caps idleTimeout below that. */
#define HB_MASK 0x7fffffffu
#define HB_PINGED 0x80000000u

void wsn_conn_heartbeat_start(wsn_conn_t *c) {
  if (c->limits.idle_timeout_ms == 0) return;
  c->heartbeat = (uint32_t)uv_now(c->loop->uv) & HB_MASK;
  wsn_loop_watch_idle(c->loop, c->limits.idle_timeout_ms);
}

int wsn_conn_heartbeat_pong(wsn_conn_t *c, const uint8_t *p, size_t n) {
  return c->limits.idle_timeout_ms != 0 && c->limits.send_pings &&
         n == HB_PAYLOAD_LEN && memcmp(p, hb_payload, n) == 0;
}

uint32_t wsn_conns_heartbeat(wsn_loop_t *l, uint64_t now) {
  uint32_t shortest = 0;
  uint32_t t = (uint32_t)now & HB_MASK;
  wsn_conn_t *next;
  for (wsn_conn_t *c = l->conns; c; c = next) {
    /* Destroying c does not unlink it (its close callback does), but take
     * the next one first all the same. */
    next = c->next;
    uint32_t timeout = c->limits.idle_timeout_ms;
    if (timeout == 0 || c->state != WSN_CS_OPEN) continue;
    if (shortest == 0 || timeout < shortest) shortest = timeout;
    if (c->paused || c->throttled) {
      /* Not reading, by JS's wish (pause()) or ours (JS has not taken
       * its events yet): the peer cannot prove it is alive, so the clock
       * waits until reading resumes. */
      c->heartbeat = t;
      continue;
    }
    uint32_t idle = (t - (c->heartbeat & HB_MASK)) & HB_MASK;
    if (idle >= timeout) {
      wsn_conn_destroy(c);
      continue;
    }
    if (idle >= timeout / 2 && !(c->heartbeat & HB_PINGED) &&
        c->limits.send_pings && !c->close_sent && !c->close_received &&
        !c->shut && !c->end_after_flush) {
      /* (Never after our FIN, or once it is due: the peer ended, or our
       * close handshake did; nothing may follow it on the wire.) */
      c->heartbeat |= HB_PINGED;
      /* Not counted in bufferedAmount (an own frame, as an auto-pong). */
      wsn_outbox_frame(c, WSN_OP_PING, hb_payload, HB_PAYLOAD_LEN);
    }
  }
  return shortest;
}
