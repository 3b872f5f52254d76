/*
 * HTTP/1.1 head parser (see http.h). Two steps per call:
 *   1. find the end of the head (CRLFCRLF), scanning only bytes not already
 *      scanned by a previous INCOMPLETE call, and enforce the size limit;
 *   2. once the whole head is present, parse it line by line.
 * Step 2 runs once per head, so the total work stays linear even when the
 * head arrives one byte at a time. Every index is checked against the head's
 * end; the parser never relies on the CRLFCRLF found in step 1 to stop a
 * loop.
 */
#include "http.h"

#include <string.h>

/* RFC 7230 tchar: "!#$%&'*+-.^_`|~" / DIGIT / ALPHA. */
static int is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  /* c | 0x20 folds 'A'-'Z' onto 'a'-'z' and maps nothing else there. */
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
  case '+': case '-': case '.': case '^': case '_': case '`': case '|':
  case '~':
    return 1;
  default:
    return 0;
  }
}

/* field-vchar / SP / HTAB, with obs-text (0x80-0xFF) allowed as RFC 7230
 * does: anything but NUL, CR, LF, the other C0 controls and DEL. */
static int is_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* A request-target byte: visible and not a space or a control. */
static int is_target_char(unsigned char c) { return c > 0x20 && c != 0x7f; }

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static int ieq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

/*
 * Step 1. Sets *head_len and returns 0 when the head is complete. Because
 * line endings must be CRLF, a LF not preceded by CR is rejected here
 * already: otherwise "GET / HTTP/1.1\n\n" would sit INCOMPLETE until it hit
 * the size limit.
 */
static int find_head_end(const char *buf, size_t len, size_t prev_len,
                         size_t *head_len) {
  const size_t limit =
      len < WSN_HTTP_MAX_HEAD_BYTES ? len : WSN_HTTP_MAX_HEAD_BYTES;
  /* Back up 3 bytes: the CRLFCRLF may straddle the old and new bytes. */
  size_t i = prev_len > 3 ? prev_len - 3 : 0;

  while (i < limit) {
    const char *lf = memchr(buf + i, '\n', limit - i);
    if (lf == NULL) break;
    i = (size_t)(lf - buf);
    if (i == 0 || buf[i - 1] != '\r') return WSN_HTTP_E_BAD;
    if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
      *head_len = i + 1;
      return 0;
    }
    i++;
  }
  /* Not found within the first MAX bytes: if that many bytes are here, the
   * head can only end past the limit. */
  return len >= WSN_HTTP_MAX_HEAD_BYTES ? WSN_HTTP_E_TOO_LARGE
                                        : WSN_HTTP_INCOMPLETE;
}

/*
 * "HTTP/" DIGIT "." DIGIT at *pos. Returns 0 and the minor version for
 * HTTP/1.0 and 1.1, E_VERSION for any other well-formed version, E_BAD
 * otherwise. `delim` is the byte that must follow ('\r' or ' '), checked
 * first so that "HTTP/2.0x" is malformed rather than a version mismatch.
 */
static int parse_version(const char *buf, size_t *pos, size_t end, char delim,
                         int *minor) {
  size_t p = *pos;
  if (end - p < 9) return WSN_HTTP_E_BAD;
  if (memcmp(buf + p, "HTTP/", 5) != 0) return WSN_HTTP_E_BAD;
  unsigned char major_c = (unsigned char)buf[p + 5];
  unsigned char minor_c = (unsigned char)buf[p + 7];
  if (major_c < '0' || major_c > '9' || buf[p + 6] != '.' || minor_c < '0' ||
      minor_c > '9' || buf[p + 8] != delim)
    return WSN_HTTP_E_BAD;
  if (major_c != '1' || minor_c > '1') return WSN_HTTP_E_VERSION;
  *minor = minor_c - '0';
  *pos = p + 8;
  return 0;
}

/* Consumes the CRLF at *pos. */
static int expect_crlf(const char *buf, size_t *pos, size_t end) {
  if (end - *pos < 2 || buf[*pos] != '\r' || buf[*pos + 1] != '\n')
    return WSN_HTTP_E_BAD;
  *pos += 2;
  return 0;
}

/*
 * Header lines from pos up to and including the empty line that ends the
 * head at `end`. Rejects obs-fold for free: a line starting with SP or HTAB
 * has an empty name.
 */
static int parse_headers(const char *buf, size_t pos, size_t end,
                         wsn_http_head_t *out) {
  out->num_headers = 0;
  for (;;) {
    if (pos >= end) return WSN_HTTP_E_BAD;
    if (buf[pos] == '\r') {
      /* The empty line: it must be the last two bytes of the head. */
      if (expect_crlf(buf, &pos, end) != 0 || pos != end)
        return WSN_HTTP_E_BAD;
      return 0;
    }
    /* Never truncate: one header more than we can hold is an error. */
    if (out->num_headers == WSN_HTTP_MAX_HEADERS) return WSN_HTTP_E_TOO_MANY;

    size_t name = pos;
    while (pos < end && is_tchar((unsigned char)buf[pos])) pos++;
    if (pos == name || pos >= end || buf[pos] != ':') return WSN_HTTP_E_BAD;
    size_t name_len = pos - name;
    pos++; /* ':' */

    while (pos < end && is_ows((unsigned char)buf[pos])) pos++;
    size_t value = pos;
    while (pos < end && is_value_char((unsigned char)buf[pos])) pos++;
    size_t value_end = pos;
    /* The value must stop at a CRLF: anything else is a NUL, a bare CR or
     * LF, or another control byte. */
    if (expect_crlf(buf, &pos, end) != 0) return WSN_HTTP_E_BAD;
    while (value_end > value && is_ows((unsigned char)buf[value_end - 1]))
      value_end--;

    wsn_http_header_t *h = &out->headers[out->num_headers++];
    h->name = buf + name;
    h->name_len = name_len;
    h->value = buf + value;
    h->value_len = value_end - value;
  }
}

static void clear_head(wsn_http_head_t *out) {
  out->method = NULL;
  out->method_len = 0;
  out->path = NULL;
  out->path_len = 0;
  out->status = 0;
  out->reason = NULL;
  out->reason_len = 0;
  out->minor_version = 0;
  out->num_headers = 0;
}

int wsn_http_parse_request(const char *buf, size_t len, size_t prev_len,
                           wsn_http_head_t *out) {
  size_t end = 0;
  int r = find_head_end(buf, len, prev_len, &end);
  if (r != 0) return r;
  clear_head(out);

  /* method SP request-target SP HTTP-version CRLF, single spaces only. */
  size_t pos = 0;
  while (pos < end && is_tchar((unsigned char)buf[pos])) pos++;
  if (pos == 0 || pos >= end || buf[pos] != ' ') return WSN_HTTP_E_BAD;
  out->method = buf;
  out->method_len = pos;
  pos++;

  size_t path = pos;
  while (pos < end && is_target_char((unsigned char)buf[pos])) pos++;
  if (pos == path || pos >= end || buf[pos] != ' ') return WSN_HTTP_E_BAD;
  out->path = buf + path;
  out->path_len = pos - path;
  pos++;

  r = parse_version(buf, &pos, end, '\r', &out->minor_version);
  if (r != 0) return r;
  if (expect_crlf(buf, &pos, end) != 0) return WSN_HTTP_E_BAD;

  r = parse_headers(buf, pos, end, out);
  return r != 0 ? r : (int)end;
}

int wsn_http_parse_response(const char *buf, size_t len, size_t prev_len,
                            wsn_http_head_t *out) {
  /* Something that cannot become "HTTP/" fails at once, as Node's parser
   * stops at the first wrong byte (after the CRs and LFs it skips): a peer
   * that is not an HTTP server may never send an end of head. */
  size_t lead = 0;
  while (lead < len && (buf[lead] == '\r' || buf[lead] == '\n')) lead++;
  size_t have = len - lead < 5 ? len - lead : 5;
  if (memcmp(buf + lead, "HTTP/", have) != 0) return WSN_HTTP_E_BAD;
  size_t end = 0;
  int r = find_head_end(buf, len, prev_len, &end);
  if (r != 0) return r;
  clear_head(out);

  /* HTTP-version SP 3DIGIT [SP reason] CRLF. The reason may be empty, and
   * like most parsers we also take the line without the SP before it. */
  size_t pos = 0;
  r = parse_version(buf, &pos, end, ' ', &out->minor_version);
  if (r != 0) return r;
  pos++; /* SP */

  if (end - pos < 3) return WSN_HTTP_E_BAD;
  int status = 0;
  for (int i = 0; i < 3; i++) {
    unsigned char c = (unsigned char)buf[pos + (size_t)i];
    if (c < '0' || c > '9') return WSN_HTTP_E_BAD;
    status = status * 10 + (c - '0');
  }
  pos += 3;
  out->status = status;

  if (pos < end && buf[pos] == ' ') {
    pos++;
    size_t reason = pos;
    while (pos < end && is_value_char((unsigned char)buf[pos])) pos++;
    out->reason = buf + reason;
    out->reason_len = pos - reason;
  } else {
    /* Point at the line's end so reason is never NULL on success. */
    out->reason = buf + pos;
    out->reason_len = 0;
  }
  if (expect_crlf(buf, &pos, end) != 0) return WSN_HTTP_E_BAD;

  r = parse_headers(buf, pos, end, out);
  return r != 0 ? r : (int)end;
}

const wsn_http_header_t *wsn_http_find_next(const wsn_http_head_t *h,
                                            const char *name,
                                            const wsn_http_header_t *prev) {
  size_t n = strlen(name);
  size_t i = 0;
  if (prev != NULL) {
    /* Only pointers into h->headers are meaningful here. */
    if (prev < h->headers || prev >= h->headers + h->num_headers) return NULL;
    i = (size_t)(prev - h->headers) + 1;
  }
  for (; i < h->num_headers; i++) {
    const wsn_http_header_t *hd = &h->headers[i];
    if (hd->name_len == n && ieq(hd->name, name, n)) return hd;
  }
  return NULL;
}

/* Appends n bytes and a NUL at out + len (when out is not NULL). */
static size_t put_field(char *out, size_t len, const char *p, size_t n) {
  if (out != NULL) {
    if (n) memcpy(out + len, p, n);
    out[len + n] = '\0';
  }
  return len + n + 1;
}

size_t wsn_http_encode_response(const wsn_http_head_t *h, char *out) {
  char num[3];
  int status = h->status;
  num[0] = (char)('0' + status / 100 % 10);
  num[1] = (char)('0' + status / 10 % 10);
  num[2] = (char)('0' + status % 10);
  size_t len = put_field(out, 0, num, 3);
  num[0] = (char)('0' + h->minor_version % 10);
  len = put_field(out, len, num, 1);
  len = put_field(out, len, h->reason, h->reason_len);
  for (size_t i = 0; i < h->num_headers; i++) {
    len = put_field(out, len, h->headers[i].name, h->headers[i].name_len);
    len = put_field(out, len, h->headers[i].value, h->headers[i].value_len);
  }
  return len;
}

/* wsn_http_chunked_t.state */
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_END, CH_BAD };

static int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int wsn_http_chunked_decode(wsn_http_chunked_t *ch, uint8_t *buf, size_t len,
                            size_t *out_len) {
  size_t i = 0, o = 0;
  while (i < len && ch->state < CH_END) {
    if (ch->state == CH_DATA) {
      size_t n = len - i;
      if (n > ch->size) n = (size_t)ch->size;
      if (o != i) memmove(buf + o, buf + i, n);
      o += n;
      i += n;
      ch->size -= n;
      if (ch->size == 0) ch->state = CH_DATA_END;
      continue;
    }
    /* The other states read lines, a byte at a time. */
    uint8_t c = buf[i++];
    if (c != '\n') {
      if (++ch->line > WSN_HTTP_CHUNKED_MAX_LINE) {
        ch->state = CH_BAD;
        break;
      }
      ch->last = c;
      if (ch->state == CH_SIZE && ch->digits <= 1) {
        int v = hex_value(c);
        if (v < 0) {
          /* Past the digits: extensions (or the CR) are not looked at. A
           * line that starts so has no size. */
          ch->digits = ch->digits == 1 ? 2 : 3;
        } else if (ch->size > ((UINT64_C(1) << 53) - (uint64_t)v) / 16) {
          ch->state = CH_BAD;
          break;
        } else {
          ch->size = ch->size * 16 + (uint64_t)v;
          ch->digits = 1;
        }
      }
      continue;
    }
    /* A line ended. Empty: nothing before its LF but a CR. */
    int empty = ch->line == 0 || (ch->line == 1 && ch->last == '\r');
    ch->line = 0;
    if (ch->state == CH_DATA_END) {
      ch->state = CH_SIZE;
    } else if (ch->state == CH_SIZE) {
      if (ch->digits != 1 && ch->digits != 2) ch->state = CH_BAD;
      else ch->state = ch->size == 0 ? CH_TRAILER : CH_DATA;
      ch->digits = 0;
    } else if (empty) {
      ch->state = CH_END; /* the empty line after the trailers */
    }
  }
  *out_len = o;
  return ch->state == CH_END   ? WSN_HTTP_CHUNKED_END
         : ch->state == CH_BAD ? WSN_HTTP_CHUNKED_BAD
                               : WSN_HTTP_CHUNKED_MORE;
}

const wsn_http_header_t *wsn_http_find(const wsn_http_head_t *h,
                                       const char *name) {
  return wsn_http_find_next(h, name, NULL);
}

int wsn_http_has_token(const char *value, size_t len, const char *token) {
  if (value == NULL) return 0;
  size_t tlen = strlen(token);
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && value[i] != ',') i++;
    size_t stop = i;
    while (start < stop && is_ows((unsigned char)value[start])) start++;
    while (stop > start && is_ows((unsigned char)value[stop - 1])) stop--;
    if (stop - start == tlen && ieq(value + start, token, tlen)) return 1;
    i++; /* past ',' (or past len, which ends the loop) */
  }
  return 0;
}

/* Generated from Node 20's http.STATUS_CODES. */
const char *wsn_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 102: return "Processing";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 207: return "Multi-Status";
  case 208: return "Already Reported";
  case 226: return "IM Used";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 305: return "Use Proxy";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 418: return "I'm a Teapot";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Entity";
  case 423: return "Locked";
  case 424: return "Failed Dependency";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 451: return "Unavailable For Legal Reasons";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 506: return "Variant Also Negotiates";
  case 507: return "Insufficient Storage";
  case 508: return "Loop Detected";
  case 509: return "Bandwidth Limit Exceeded";
  case 510: return "Not Extended";
  case 511: return "Network Authentication Required";
  default: return "Unknown";
  }
}
