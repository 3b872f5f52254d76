/*
 * WebSocket opening handshake rules over a parsed HTTP head. Pure (uses
 * OpenSSL's SHA-1, which the node binary exports).
 *
 * Server side follows ws 8's WebSocketServer.handleUpgrade checks, in its
 * order and with its status codes and messages. Client side follows the
 * checks ws's client makes on the 101 response.
 */
#ifndef WSN_HANDSHAKE_H
#define WSN_HANDSHAKE_H

#include <stddef.h>
#include "http.h"

#define WSN_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */
#define WSN_KEY_LEN 24    /* base64 of 16 random bytes */

/* Result of checking an upgrade request. status == 0 means acceptable. */
typedef struct {
  int status;            /* 0, or the HTTP status to answer (400, 405, 426) */
  const char *message;   /* ws's message for that status, e.g.
                            "Missing or invalid Sec-WebSocket-Key header" */
  const char *extra_header; /* a header line to add to the error response,
                               e.g. "Sec-WebSocket-Version: 13, 8", or NULL */
  const char *key;       /* Sec-WebSocket-Key (span into the head) */
  size_t key_len;
  int version;           /* 13 or 8 */
  const char *protocols; /* raw Sec-WebSocket-Protocol value or NULL */
  size_t protocols_len;
  const char *extensions; /* raw Sec-WebSocket-Extensions value or NULL */
  size_t extensions_len;
  /* How many Sec-WebSocket-Protocol / -Extensions lines the request has.
   * protocols and extensions above span the first line only; when a count
   * is > 1, Node (and so ws) sees the lines joined with ", ": walk them with
   * wsn_http_find_next(). The first protocol of a valid list is always the
   * first line's first protocol. */
  size_t protocols_lines;
  size_t extensions_lines;
} wsn_handshake_request_t;

/*
 * Checks an upgrade request as ws does, in this order:
 *  - not GET -> 405 "Invalid HTTP method"
 *  - Upgrade missing or not "websocket" (case-insensitive) -> 400
 *    "Invalid Upgrade header"
 *  - key missing or not /^[+/0-9A-Za-z]{22}==$/ -> 400
 *    "Missing or invalid Sec-WebSocket-Key header"
 *  - version not 13 or 8 -> 400 "Missing or invalid Sec-WebSocket-Version
 *    header", extra header "Sec-WebSocket-Version: 13, 8"
 *  - Sec-WebSocket-Protocol present but not a valid list of tokens
 *    (ws's subprotocol.parse: comma-separated tokens, optional spaces/tabs
 *    around commas, no duplicates, no empty element) -> 400
 *    "Invalid Sec-WebSocket-Protocol header"
 * (A request without "Connection: upgrade" never reaches here: the server
 *  answers it 426 like a plain HTTP request.)
 * Repeated headers are judged as Node joins them ("a, b"): a repeated
 * Upgrade, Key or Version is invalid; repeated Protocol lines form one list.
 * ws's shouldHandle() (the `path` option, plain 400) runs between the
 * version and protocol checks and is left to the caller.
 */
void wsn_handshake_check_request(const wsn_http_head_t *req,
                                 wsn_handshake_request_t *out);

/* Computes Sec-WebSocket-Accept for key into out (28 chars, no NUL). Keys
 * longer than 128 bytes (real ones are WSN_KEY_LEN) give 28 '*', which is
 * never a valid accept value. */
void wsn_handshake_accept(const char *key, size_t key_len,
                          char out[WSN_ACCEPT_LEN]);

/*
 * Iterates the subprotocol list of a valid Sec-WebSocket-Protocol value:
 * writes the first protocol's span. Returns 1 if found, 0 if the list is
 * empty. (Used for ws's default choice: the first offered protocol.)
 */
int wsn_handshake_first_protocol(const char *value, size_t len,
                                 const char **proto, size_t *proto_len);

/*
 * Writes "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection and
 * Sec-WebSocket-Accept, then Sec-WebSocket-Protocol if protocol != NULL, then
 * `extra` verbatim (already CRLF-terminated header lines, may be NULL), then
 * the final CRLF. Returns the length, or 0 if cap is too small. Like ws's
 * `if (protocol)`, an empty protocol (protocol_len 0) adds no header.
 */
size_t wsn_handshake_response_101(char *out, size_t cap, const char *key,
                                  size_t key_len, const char *protocol,
                                  size_t protocol_len, const char *extra,
                                  size_t extra_len);

/*
 * Writes ws's abortHandshake response:
 *   HTTP/1.1 <status> <text>\r\nConnection: close\r\n
 *   Content-Type: text/html\r\nContent-Length: <n>\r\n[extra\r\n]\r\n<message>
 * where message (NULL or "") defaults to the status text. Returns the length
 * or 0. For a status Node has no text for, ws writes the reason
 * "undefined" (and throws if no message is given either); this writes
 * "Unknown" (wsn_http_status_text) in both places.
 */
size_t wsn_handshake_response_error(char *out, size_t cap, int status,
                                    const char *message,
                                    const char *extra_header);

/* Client side: result of checking a 101 response. */
enum {
  WSN_HS_OK = 0,
  WSN_HS_NOT_101 = 1,        /* JS: unexpected-response / "Unexpected server
                                response: <status>" */
  WSN_HS_BAD_UPGRADE = 2,    /* "Invalid Upgrade header" */
  WSN_HS_BAD_ACCEPT = 3,     /* "Invalid Sec-WebSocket-Accept header" */
  WSN_HS_BAD_RESPONSE = 4    /* not HTTP at all: JS words Node's parse error */
};

/*
 * Checks a parsed response against the key the client sent. Subprotocol and
 * extension checks are left to the caller (they need the offered lists).
 * A 101 that Node would not treat as an upgrade (no non-empty Upgrade
 * header, or no "upgrade" token in Connection) is WSN_HS_NOT_101, as ws then
 * reports "Unexpected server response: 101".
 */
int wsn_handshake_check_response(const wsn_http_head_t *res, const char *key,
                                  size_t key_len);

#endif /* WSN_HANDSHAKE_H */
