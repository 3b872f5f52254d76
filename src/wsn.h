/*
 * Common definitions shared by every C layer of ws-native.
 *
 * The error table is the single source of the strings, `code`s and close
 * codes that ws 8 attaches to its errors (receiver.js createError). binding.c
 * exports it to JS at init, so JS never repeats a message. A message may hold
 * one "%u", replaced by the numeric argument that travels with the error.
 */
#ifndef WSN_H
#define WSN_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define WSN_LIKELY(x) __builtin_expect(!!(x), 1)
#define WSN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define WSN_LIKELY(x) (x)
#define WSN_UNLIKELY(x) (x)
#endif

/* A read-only view of bytes owned by someone else. */
typedef struct {
  const uint8_t *base;
  size_t len;
} wsn_span_t;

/*
 * X(name, ws error code, JS constructor, "Invalid WebSocket frame: " prefix,
 *   message, close code)
 */
#define WSN_ERRORS(X)                                                          \
  X(RSV_2_3, "WS_ERR_UNEXPECTED_RSV_2_3", "RangeError", 1,                     \
    "RSV2 and RSV3 must be clear", 1002)                                       \
  X(RSV_1, "WS_ERR_UNEXPECTED_RSV_1", "RangeError", 1, "RSV1 must be clear",   \
    1002)                                                                      \
  X(INVALID_OPCODE, "WS_ERR_INVALID_OPCODE", "RangeError", 1,                  \
    "invalid opcode %u", 1002)                                                 \
  X(EXPECTED_FIN, "WS_ERR_EXPECTED_FIN", "RangeError", 1, "FIN must be set",   \
    1002)                                                                      \
  X(CONTROL_LENGTH, "WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH", "RangeError", 1,  \
    "invalid payload length %u", 1002)                                         \
  X(EXPECTED_MASK, "WS_ERR_EXPECTED_MASK", "RangeError", 1, "MASK must be set",\
    1002)                                                                      \
  X(UNEXPECTED_MASK, "WS_ERR_UNEXPECTED_MASK", "RangeError", 1,                \
    "MASK must be clear", 1002)                                                \
  X(DATA_LENGTH, "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH", "RangeError", 0,    \
    "Unsupported WebSocket frame: payload length > 2^53 - 1", 1009)            \
  X(MESSAGE_LENGTH, "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH", "RangeError", 0,      \
    "Max payload size exceeded", 1009)                                         \
  X(INVALID_UTF8, "WS_ERR_INVALID_UTF8", "Error", 1, "invalid UTF-8 sequence", \
    1007)                                                                      \
  X(CLOSE_CODE, "WS_ERR_INVALID_CLOSE_CODE", "RangeError", 1,                  \
    "invalid status code %u", 1002)                                            \
  /* maxFragments (ws 8.21.1+): one message in too many frames. */           \
  X(FRAGMENTS, "WS_ERR_TOO_MANY_BUFFERED_PARTS", "RangeError", 0,              \
    "Too many message fragments", 1008)                                        \
  /* Corrupt compressed data: ws passes zlib's own error on (its message  \
   * and code come in the event's payload as "code\0message"). */         \
  X(INFLATE, "", "Error", 0, "%s", 1007)

/* Error ids are negative so that "returns < 0 on error" reads naturally. */
typedef enum {
  WSN_OK = 0,
#define WSN_ERR_ENUM(name, code, ctor, prefix, msg, close) WSN_E_##name,
  WSN_E_FIRST_ = -100,
  WSN_ERRORS(WSN_ERR_ENUM)
#undef WSN_ERR_ENUM
  WSN_E_LAST_
} wsn_err_t;

/* WebSocket opcodes (RFC 6455 section 5.2). */
enum {
  WSN_OP_CONT = 0x0,
  WSN_OP_TEXT = 0x1,
  WSN_OP_BINARY = 0x2,
  WSN_OP_CLOSE = 0x8,
  WSN_OP_PING = 0x9,
  WSN_OP_PONG = 0xA
};

#endif /* WSN_H */
