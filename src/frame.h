/*
 * RFC 6455 frame codec. Pure: no sockets, threads or N-API.
 *
 * The parser is an incremental pull parser: the caller hands it the bytes it
 * has (any chunking, down to one byte at a time) and it returns one event per
 * call plus the number of bytes it consumed. Payload bytes are unmasked in
 * place in the caller's buffer and returned as a span into it, so a complete
 * frame in one read costs no copy. A partial header (at most 14 bytes) is kept
 * inside the parser, so the caller never has to keep unconsumed bytes.
 *
 * Rules enforced here, each with ws 8's error (see WSN_ERRORS in wsn.h):
 * RSV2/RSV3 set; RSV1 set (unless `rsv1_allowed` and on a first data frame);
 * unknown opcode; continuation without a message in progress, or a new data
 * frame inside one ("invalid opcode N"); control frame not FIN; control frame
 * longer than 125; mask bit not as expected for the side; 64-bit length above
 * 2^53-1; message length (sum of fragments) above max_payload (if non-zero).
 * Close payload rules (length 1, code validity, UTF-8 reason) are checked by
 * wsn_frame_check_close(), called by the owner of the assembled payload.
 * Like ws, the parser also rejects a close header announcing length 1
 * (WSN_E_CONTROL_LENGTH, arg 1) before looking at the mask bit, so the error
 * and its timing match ws exactly. For a control frame longer than 125 the
 * arg is the 7-bit length field (126 or 127), as in ws.
 */
#ifndef WSN_FRAME_H
#define WSN_FRAME_H

#include "wsn.h"

typedef enum {
  WSN_FRAME_NEED_MORE = 0, /* all input consumed, no event */
  WSN_FRAME_HEADER,        /* a frame header was parsed: see ev fields */
  WSN_FRAME_DATA,          /* ev->data: unmasked payload bytes of the frame */
  WSN_FRAME_END,           /* the current frame's payload is complete */
  WSN_FRAME_ERROR          /* ev->error (< 0), ev->error_arg; parser is dead */
} wsn_frame_event_type_t;

typedef struct {
  wsn_frame_event_type_t type;
  uint8_t opcode;      /* HEADER/DATA/END: the frame's opcode (0 for cont.) */
  uint8_t fin;         /* HEADER/DATA/END: FIN bit */
  uint8_t rsv1;        /* HEADER: RSV1 bit (compressed message) */
  uint64_t length;     /* HEADER: payload length of this frame */
  wsn_span_t data;     /* DATA: span into the caller's buffer */
  int error;           /* ERROR: a WSN_E_* id */
  uint32_t error_arg;  /* ERROR: the number in the message, if any */
} wsn_frame_event_t;

/* Parser state; keep it small (it lives in every connection). */
typedef struct {
  uint64_t remaining;    /* payload bytes left in the current frame */
  uint64_t message_len;  /* data bytes of the current message so far */
  uint64_t max_payload;  /* 0 = no limit */
  uint8_t mask[4];       /* current frame's masking key */
  uint8_t mask_pos;      /* bytes of payload already unmasked, mod 4 */
  uint8_t state;         /* internal state */
  uint8_t hdr_len;       /* bytes of header kept in hdr */
  uint8_t hdr[14];       /* partial header spill */
  uint8_t opcode;        /* current frame's opcode */
  uint8_t fin;           /* current frame's FIN */
  uint8_t in_message;    /* a fragmented data message is in progress */
  uint8_t is_server;     /* 1: frames must be masked; 0: must not be */
  uint8_t rsv1_allowed;  /* permessage-deflate negotiated */
  int8_t error;          /* after ERROR: the WSN_E_* id, repeated forever */
  uint32_t error_arg;    /* after ERROR: its argument */
} wsn_frame_parser_t;

void wsn_frame_parser_init(wsn_frame_parser_t *p, int is_server,
                           uint64_t max_payload);

/*
 * Parses at most one event from buf[0..len). Returns the number of bytes
 * consumed (possibly 0 for END/ERROR events) and fills *ev. The caller loops
 * until it has consumed all its bytes and gets NEED_MORE. buf is modified:
 * payload bytes are unmasked in place. Zero-length frames give HEADER then
 * END with no DATA. After ERROR every call returns ERROR again.
 */
size_t wsn_frame_parse(wsn_frame_parser_t *p, uint8_t *buf, size_t len,
                       wsn_frame_event_t *ev);

/*
 * Writes a frame header into out (at most 14 bytes) and returns its length.
 * If mask is non-NULL the MASK bit is set and the 4 key bytes are appended.
 */
size_t wsn_frame_header(uint8_t out[14], int fin, int rsv1, int opcode,
                        uint64_t payload_len, const uint8_t *mask);

/* Size of the header wsn_frame_header would write. */
size_t wsn_frame_header_size(uint64_t payload_len, int masked);

/*
 * XORs buf[0..len) with the 4-byte key, starting at key byte (offset % 4).
 * Works a machine word at a time (memcpy loads, no aliasing UB).
 */
void wsn_frame_mask(uint8_t *buf, size_t len, const uint8_t mask[4],
                    size_t offset);

/* Copies src to dst masking on the way (dst and src may not overlap). */
void wsn_frame_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                         const uint8_t mask[4]);

/* ws's isValidStatusCode: 1000-1014 except 1004-1006, and 3000-4999. */
int wsn_frame_close_code_valid(uint32_t code);

/*
 * Validates a complete close frame payload. Returns WSN_OK and sets *code
 * (1005 when the payload is empty) and *reason (span into payload), or
 * WSN_E_CONTROL_LENGTH (length 1, arg 1), WSN_E_CLOSE_CODE (arg = code) or
 * WSN_E_INVALID_UTF8 (unless skip_utf8). *error_arg gets the argument.
 */
int wsn_frame_check_close(const uint8_t *payload, size_t len, int skip_utf8,
                          uint32_t *code, wsn_span_t *reason,
                          uint32_t *error_arg);

#endif /* WSN_FRAME_H */
