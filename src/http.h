/*
 * HTTP/1.1 head parser for the WebSocket upgrade. Pure.
 *
 * Shaped like picohttpparser: a stateless call over the bytes accumulated so
 * far, with prev_len (bytes already scanned by an earlier call that returned
 * INCOMPLETE) so only new bytes are searched for the end of the head. Method,
 * path, reason, and header names and values come back as spans into buf.
 * Nothing is truncated silently: too many headers or too many bytes is an
 * error (431), never a shorter header list.
 */
#ifndef WSN_HTTP_H
#define WSN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define WSN_HTTP_MAX_HEAD_BYTES (16 * 1024) /* Node's default maxHeaderSize */
#define WSN_HTTP_MAX_HEADERS 128

enum {
  WSN_HTTP_INCOMPLETE = -1,     /* need more bytes */
  WSN_HTTP_E_BAD = -2,          /* malformed: answer 400 */
  WSN_HTTP_E_TOO_LARGE = -3,    /* head > MAX_HEAD_BYTES: answer 431 */
  WSN_HTTP_E_TOO_MANY = -4,     /* > MAX_HEADERS headers: answer 431 */
  WSN_HTTP_E_VERSION = -5       /* not HTTP/1.x: answer 505 (Node says 400) */
};

typedef struct {
  const char *name;
  size_t name_len;
  const char *value;  /* leading and trailing spaces/tabs trimmed */
  size_t value_len;
} wsn_http_header_t;

typedef struct {
  /* request line */
  const char *method;
  size_t method_len;
  const char *path;
  size_t path_len;
  /* status line (responses) */
  int status;
  const char *reason;
  size_t reason_len;
  int minor_version; /* HTTP/1.x */
  size_t num_headers;
  wsn_http_header_t headers[WSN_HTTP_MAX_HEADERS];
} wsn_http_head_t;

/*
 * Parse a request head. Returns the head's length in bytes (through the final
 * CRLFCRLF) when complete, or a WSN_HTTP_* value < 0. Rules: method is a
 * token; request target has no control chars or spaces; version HTTP/1.0 or
 * 1.1; header names are tokens (RFC 7230 tchar); values contain no NUL, no
 * bare CR and no other control chars except tab; obs-fold (a line starting
 * with space/tab) is an error. Strict line endings: CRLF only; a bare LF or
 * bare CR anywhere in the head is an error (a bare LF is reported as soon as
 * it arrives, before the head is complete). Bytes after the head (the
 * returned length) are never looked at.
 */
int wsn_http_parse_request(const char *buf, size_t len, size_t prev_len,
                           wsn_http_head_t *out);

/* Parse a response head ("HTTP/1.1 101 Switching Protocols"). Same returns.
 * Status is exactly 3 digits; the reason may be empty, with or without the
 * space before it. */
int wsn_http_parse_response(const char *buf, size_t len, size_t prev_len,
                            wsn_http_head_t *out);

/*
 * A parsed response head as JS takes it (the client's WSN_EV_OPEN): fields
 * that each end with a NUL, "status\0minor\0reason\0" (status as 3 digits,
 * minor as 1) then "name\0value\0" for each header in order, names in the
 * case they came in, values trimmed as parsed. A parsed head holds no NUL.
 * Returns the encoded length; writes to out only when out is not NULL (a
 * first call with NULL sizes the buffer).
 */
size_t wsn_http_encode_response(const wsn_http_head_t *h, char *out);

/*
 * A chunked body (Transfer-Encoding: chunked) being decoded, for the body of
 * a client's unexpected response. Zeroed to start. Bytes come as they
 * arrive, in any split. A chunk-size line is hex digits (at least one) and
 * whatever follows them up to its LF (extensions, a CR): ignored; the line
 * after a chunk's data is skipped whatever it holds; after the last chunk
 * (size 0), trailer lines are skipped up to an empty one, which ends the
 * body. A line longer than WSN_HTTP_CHUNKED_MAX_LINE, a size line with no
 * digit or a size past 2^53 (what JS numbers count) makes the body bad.
 */
#define WSN_HTTP_CHUNKED_MAX_LINE 8192

typedef struct {
  uint64_t size;  /* data bytes left in the chunk being read */
  uint32_t line;  /* bytes of the line being read, so far */
  uint8_t state;  /* internal: what is being read */
  uint8_t digits; /* size line: 1 in its digits, 2 past them, 3 none */
  uint8_t last;   /* the line's last byte so far */
} wsn_http_chunked_t;

enum {
  WSN_HTTP_CHUNKED_MORE = 0, /* all bytes used: more of the body to come */
  WSN_HTTP_CHUNKED_END = 1,  /* the body ended (bytes after it not looked at) */
  WSN_HTTP_CHUNKED_BAD = 2   /* not a chunked body: stop there */
};

/*
 * Decodes buf[0, len) in place: the chunks' data moves to the front of buf,
 * *out_len says how much. Returns a WSN_HTTP_CHUNKED_* value; once END or
 * BAD, later calls return it again with no data.
 */
int wsn_http_chunked_decode(wsn_http_chunked_t *ch, uint8_t *buf, size_t len,
                            size_t *out_len);

/* Case-insensitive header lookup; returns the first match or NULL. */
const wsn_http_header_t *wsn_http_find(const wsn_http_head_t *h,
                                       const char *name);

/*
 * The next header named name after prev (a pointer into h->headers, or NULL
 * to start from the first), or NULL. For headers that may repeat, which Node
 * joins with ", " (e.g. Sec-WebSocket-Protocol, RFC 6455 section 11.3.4).
 */
const wsn_http_header_t *wsn_http_find_next(const wsn_http_head_t *h,
                                            const char *name,
                                            const wsn_http_header_t *prev);

/* 1 if the comma-separated value list contains token (case-insensitive). */
int wsn_http_has_token(const char *value, size_t len, const char *token);

/* The reason phrase Node uses for a status (http.STATUS_CODES), or
 * "Unknown". */
const char *wsn_http_status_text(int status);

#endif /* WSN_HTTP_H */
