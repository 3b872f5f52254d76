/*
 * RFC 6455 frame codec: incremental parser, header encoder, masking and the
 * close payload checks. The checks and their order mirror ws 8's
 * lib/receiver.js (getInfo, getPayloadLength64, haveLength) so that every
 * malformed stream produces the same error ws would, at the same point.
 */
#include "frame.h"

#include <string.h>

#include "utf8.h"

enum { ST_HEADER = 0, ST_DATA, ST_END, ST_ERROR };

static uint32_t load_be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

void wsn_frame_parser_init(wsn_frame_parser_t *p, int is_server,
                           uint64_t max_payload) {
  memset(p, 0, sizeof(*p));
  p->is_server = is_server ? 1 : 0;
  p->max_payload = max_payload;
}

/*
 * Validates and decodes the header in h[0..n). Returns 0 if more bytes are
 * needed, the header size (2..14) once it is complete (the parser state is
 * then updated for the new frame), or a WSN_E_* id with *arg set.
 *
 * Every check runs as soon as the bytes it looks at are present, so a bad
 * first two bytes fail even if the rest of the header never arrives (as in
 * ws). Re-running it on a growing spill buffer is harmless: nothing is
 * committed before the header is complete, and headers are at most 14 bytes.
 */
static int parse_header(wsn_frame_parser_t *p, const uint8_t *h, size_t n,
                        uint32_t *arg) {
  unsigned b0, b1, op, fin, rsv1, len7, masked;
  size_t size;
  uint64_t length;

  if (n < 2) return 0;
  b0 = h[0];
  b1 = h[1];
  op = b0 & 0x0F;
  fin = b0 >> 7;
  rsv1 = (b0 >> 6) & 1;
  len7 = b1 & 0x7F;
  masked = b1 >> 7;
  *arg = 0;

  if (b0 & 0x30) return WSN_E_RSV_2_3;
  if (rsv1 && !p->rsv1_allowed) return WSN_E_RSV_1;

  if (op == WSN_OP_CONT) {
    /* RSV1 marks the first frame of a compressed message only. */
    if (rsv1) return WSN_E_RSV_1;
    if (!p->in_message) return WSN_E_INVALID_OPCODE;
  } else if (op == WSN_OP_TEXT || op == WSN_OP_BINARY) {
    if (p->in_message) {
      *arg = op;
      return WSN_E_INVALID_OPCODE;
    }
  } else if (op >= WSN_OP_CLOSE && op <= WSN_OP_PONG) {
    if (!fin) return WSN_E_EXPECTED_FIN;
    if (rsv1) return WSN_E_RSV_1;
    /* ws reports the 7-bit field, so 126/127 here, never the extended one. */
    if (len7 > 125 || (op == WSN_OP_CLOSE && len7 == 1)) {
      *arg = len7;
      return WSN_E_CONTROL_LENGTH;
    }
  } else {
    *arg = op;
    return WSN_E_INVALID_OPCODE;
  }

  if (masked != (p->is_server ? 1u : 0u))
    return p->is_server ? WSN_E_EXPECTED_MASK : WSN_E_UNEXPECTED_MASK;

  size = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
  if (n < size) return 0;
  if (len7 == 126) {
    length = (uint64_t)h[2] << 8 | h[3];
  } else if (len7 == 127) {
    uint32_t hi = load_be32(h + 2);
    /* ws keeps lengths in JS numbers: above 2^53 - 1 is unsupported. */
    if (hi > 0x1FFFFF) return WSN_E_DATA_LENGTH;
    length = (uint64_t)hi << 32 | load_be32(h + 6);
  } else {
    length = len7;
  }

  /* Data frames count towards the message: ws fails on the header that
   * announces too much, before any of that payload is read. Written as a
   * subtraction so no sum can overflow. */
  if (op < WSN_OP_CLOSE && p->max_payload &&
      (p->message_len > p->max_payload ||
       length > p->max_payload - p->message_len))
    return WSN_E_MESSAGE_LENGTH;

  if (masked) {
    size += 4;
    if (n < size) return 0;
    memcpy(p->mask, h + size - 4, 4);
  } else {
    /* An all-zero key lets the data path skip unmasking. */
    memset(p->mask, 0, 4);
  }

  p->opcode = (uint8_t)op;
  p->fin = (uint8_t)fin;
  p->remaining = length;
  p->mask_pos = 0;
  if (op < WSN_OP_CLOSE) {
    p->message_len += length;
    if (!fin) p->in_message = 1;
  }
  return (int)size;
}

size_t wsn_frame_parse(wsn_frame_parser_t *p, uint8_t *buf, size_t len,
                       wsn_frame_event_t *ev) {
  switch (p->state) {
  case ST_DATA: {
    size_t n;
    uint32_t key;

    if (len == 0) break;
    n = len < p->remaining ? len : (size_t)p->remaining;
    memcpy(&key, p->mask, 4);
    if (key) wsn_frame_mask(buf, n, p->mask, p->mask_pos);
    p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
    p->remaining -= n;
    if (p->remaining == 0) p->state = ST_END;
    *ev = (wsn_frame_event_t){.type = WSN_FRAME_DATA,
                              .opcode = p->opcode,
                              .fin = p->fin,
                              .data = {buf, n}};
    return n;
  }

  case ST_END:
    /* The final frame of a data message ends it; control frames never
     * touch the message state, even when they arrive between fragments. */
    if (p->opcode < WSN_OP_CLOSE && p->fin) {
      p->in_message = 0;
      p->message_len = 0;
    }
    p->state = ST_HEADER;
    *ev = (wsn_frame_event_t){
        .type = WSN_FRAME_END, .opcode = p->opcode, .fin = p->fin};
    return 0;

  case ST_ERROR:
    *ev = (wsn_frame_event_t){.type = WSN_FRAME_ERROR,
                              .error = p->error,
                              .error_arg = p->error_arg};
    return 0;

  default: {
    const uint8_t *h = buf;
    size_t n = len, had = p->hdr_len;
    uint32_t arg;
    int rc;

    if (len == 0) break;
    /* Fast path: with nothing spilled the header is read straight from
     * buf. Only a header split across calls is gathered in hdr, and then we
     * take no more than fits so the payload stays in the caller's buffer. */
    if (had) {
      size_t take = sizeof(p->hdr) - had;
      if (take > len) take = len;
      memcpy(p->hdr + had, buf, take);
      h = p->hdr;
      n = had + take;
    }
    rc = parse_header(p, h, n, &arg);
    if (rc == 0) {
      /* Incomplete, so n < 14 and all of buf fits the spill. */
      if (!had) memcpy(p->hdr, buf, len);
      p->hdr_len = (uint8_t)n;
      *ev = (wsn_frame_event_t){.type = WSN_FRAME_NEED_MORE};
      return len;
    }
    if (rc < 0) {
      p->state = ST_ERROR;
      p->error = (int8_t)rc;
      p->error_arg = arg;
      *ev = (wsn_frame_event_t){
          .type = WSN_FRAME_ERROR, .error = rc, .error_arg = arg};
      return 0;
    }
    p->hdr_len = 0;
    p->state = p->remaining ? ST_DATA : ST_END;
    *ev = (wsn_frame_event_t){.type = WSN_FRAME_HEADER,
                              .opcode = p->opcode,
                              .fin = p->fin,
                              .rsv1 = (uint8_t)((h[0] >> 6) & 1),
                              .length = p->remaining};
    return (size_t)rc - had;
  }
  }

  *ev = (wsn_frame_event_t){.type = WSN_FRAME_NEED_MORE};
  return 0;
}

size_t wsn_frame_header_size(uint64_t payload_len, int masked) {
  size_t n = payload_len > 0xFFFF ? 10 : payload_len > 125 ? 4 : 2;
  return masked ? n + 4 : n;
}

size_t wsn_frame_header(uint8_t out[14], int fin, int rsv1, int opcode,
                        uint64_t payload_len, const uint8_t *mask) {
  size_t n;

  out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
  if (payload_len <= 125) {
    out[1] = (uint8_t)payload_len;
    n = 2;
  } else if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    n = 4;
  } else {
    out[1] = 127;
    for (int i = 0; i < 8; i++)
      out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    n = 10;
  }
  if (mask) {
    out[1] |= 0x80;
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

/*
 * Both masking loops XOR 8 bytes at a time with the key repeated twice.
 * Loads and stores go through memcpy (no alignment or aliasing UB; compilers
 * turn them into plain moves), and since key and data are both taken as
 * bytes in memory order the result is the same on any endianness.
 */
void wsn_frame_mask(uint8_t *buf, size_t len, const uint8_t mask[4],
                    size_t offset) {
  uint8_t key[8];
  uint64_t k, w0, w1, w2, w3;
  size_t i = 0;

  /* Rotate so key[0] is the key byte for buf[0]. */
  for (int j = 0; j < 8; j++) key[j] = mask[(offset + (size_t)j) & 3];
  memcpy(&k, key, 8);

  for (; len - i >= 32; i += 32) {
    memcpy(&w0, buf + i, 8);
    memcpy(&w1, buf + i + 8, 8);
    memcpy(&w2, buf + i + 16, 8);
    memcpy(&w3, buf + i + 24, 8);
    w0 ^= k;
    w1 ^= k;
    w2 ^= k;
    w3 ^= k;
    memcpy(buf + i, &w0, 8);
    memcpy(buf + i + 8, &w1, 8);
    memcpy(buf + i + 16, &w2, 8);
    memcpy(buf + i + 24, &w3, 8);
  }
  for (; len - i >= 8; i += 8) {
    memcpy(&w0, buf + i, 8);
    w0 ^= k;
    memcpy(buf + i, &w0, 8);
  }
  /* i is a multiple of 8 here, so key[i & 3] continues the rotation. */
  for (; i < len; i++) buf[i] ^= key[i & 3];
}

void wsn_frame_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                         const uint8_t mask[4]) {
  uint8_t key[8];
  uint64_t k, w;
  size_t i = 0;

  memcpy(key, mask, 4);
  memcpy(key + 4, mask, 4);
  memcpy(&k, key, 8);
  for (; len - i >= 8; i += 8) {
    memcpy(&w, src + i, 8);
    w ^= k;
    memcpy(dst + i, &w, 8);
  }
  for (; i < len; i++) dst[i] = src[i] ^ key[i & 3];
}

int wsn_frame_close_code_valid(uint32_t code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
          code != 1006) ||
         (code >= 3000 && code <= 4999);
}

int wsn_frame_check_close(const uint8_t *payload, size_t len, int skip_utf8,
                          uint32_t *code, wsn_span_t *reason,
                          uint32_t *error_arg) {
  uint32_t c;

  /* Outputs are optional; set them to "nothing" first so a failed check
   * never leaves stale values behind. */
  if (error_arg) *error_arg = 0;
  if (reason) *reason = (wsn_span_t){payload, 0};
  if (len == 0) {
    if (code) *code = 1005;
    return WSN_OK;
  }
  if (len == 1) {
    if (error_arg) *error_arg = 1;
    return WSN_E_CONTROL_LENGTH;
  }
  c = (uint32_t)payload[0] << 8 | payload[1];
  if (code) *code = c;
  if (!wsn_frame_close_code_valid(c)) {
    if (error_arg) *error_arg = c;
    return WSN_E_CLOSE_CODE;
  }
  if (!skip_utf8 && !wsn_utf8_valid(payload + 2, len - 2))
    return WSN_E_INVALID_UTF8;
  if (reason) *reason = (wsn_span_t){payload + 2, len - 2};
  return WSN_OK;
}
