/*
 * permessage-deflate (RFC 7692): negotiation with ws 8.23.1's semantics and a
 * per-connection zlib codec. See deflate.h for the contract.
 */
#include "deflate.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char EXT_NAME[] = "permessage-deflate";
static const char SERVER_MSG[] =
    "Invalid or unacceptable Sec-WebSocket-Extensions header";
static const char CLIENT_MSG[] = "Invalid Sec-WebSocket-Extensions header";
static const char NOT_REQUESTED_MSG[] =
    "Server indicated an extension that was not requested";
static const char NOT_OFFERED_MSG[] =
    "Server sent a Sec-WebSocket-Extensions header but no extension was "
    "requested";

static const char *const PARAM_NAMES[4] = {
    "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits"};

void wsn_pmd_options_init(wsn_pmd_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->threshold = 1024;
  o->level = Z_DEFAULT_COMPRESSION;
  o->mem_level = 8;
  o->strategy = Z_DEFAULT_STRATEGY;
}

/* ---- errors ---------------------------------------------------------------- */

/* A bounded string builder: what does not fit is cut and marked "...". */
typedef struct {
  char *p;
  size_t cap, len;
  int cut;
} sb_t;

static void sb_putc(sb_t *b, char ch) {
  if (b->len + 1 < b->cap) b->p[b->len++] = ch;
  else b->cut = 1;
}

static void sb_puts(sb_t *b, const char *s) {
  while (*s) sb_putc(b, *s++);
}

/* Appends s[0..n) without its backslashes: ws unescapes quoted values by
 * removing every backslash (a valid value holds no literal one). */
static void sb_put_unescaped(sb_t *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != '\\') sb_putc(b, s[i]);
}

static void sb_end(sb_t *b) {
  if (b->cut && b->cap >= 4) {
    b->len = b->len < b->cap - 4 ? b->len : b->cap - 4;
    memcpy(b->p + b->len, "...", 3);
    b->len += 3;
  }
  b->p[b->len] = '\0';
}

static sb_t err_start(wsn_pmd_error_t *err, int code, const char *ctor) {
  err->code = code;
  err->detail_ctor = ctor;
  return (sb_t){err->detail, sizeof(err->detail), 0, 0};
}

static int err_simple(wsn_pmd_error_t *err, int code, const char *ctor,
                      const char *detail) {
  sb_t b = err_start(err, code, ctor);
  sb_puts(&b, detail);
  sb_end(&b);
  return code;
}

/* ---- Sec-WebSocket-Extensions grammar ---------------------------------------- */

/* RFC 7230 tchar, as ws's validation.tokenChars. */
static int is_tchar(unsigned char ch) {
  if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
      (ch >= 'A' && ch <= 'Z'))
    return 1;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_ws(unsigned char ch) { return ch == ' ' || ch == '\t'; }

#define NONE SIZE_MAX

/*
 * Checks a header value against the grammar ws's extension.parse accepts,
 * with its quirks: no space before '=' or right after it, a quoted value
 * must open right after '=', holds only token characters (a backslash
 * escapes one) and is not empty; a name may not start at index 0 with
 * whitespace; the value may not end with whitespace. Returns 0, or 1 with
 * *at = the index of the unexpected character, or 2 for "Unexpected end of
 * input".
 */
static int ext_syntax(const char *h, size_t n, size_t *at) {
  enum { NAME, PARAM, VALUE } st = NAME;
  size_t start = NONE, end = NONE, i;
  int quoted = 0, escaping = 0, last = -1;

  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)h[i];
    last = ch;
    if (st == NAME || st == PARAM) {
      if (end == NONE && is_tchar(ch)) {
        if (start == NONE) start = i;
      } else if (is_ws(ch) && (st == PARAM || i != 0)) {
        if (end == NONE && start != NONE) end = i;
      } else if (ch == ';' || ch == ',') {
        if (start == NONE) goto bad;
        st = ch == ';' ? PARAM : NAME;
        start = end = NONE;
      } else if (st == PARAM && ch == '=' && start != NONE && end == NONE) {
        st = VALUE;
        start = end = NONE;
      } else {
        goto bad;
      }
    } else if (escaping) {
      if (!is_tchar(ch)) goto bad;
      if (start == NONE) start = i;
      escaping = 0;
    } else if (quoted) {
      if (is_tchar(ch)) {
        if (start == NONE) start = i;
      } else if (ch == '"' && start != NONE) {
        quoted = 0;
        end = i;
      } else if (ch == '\\') {
        escaping = 1;
      } else {
        goto bad;
      }
    } else if (ch == '"' && h[i - 1] == '=') { /* VALUE is entered after '=' */
      quoted = 1;
    } else if (end == NONE && is_tchar(ch)) {
      if (start == NONE) start = i;
    } else if (start != NONE && is_ws(ch)) {
      if (end == NONE) end = i;
    } else if (ch == ';' || ch == ',') {
      if (start == NONE) goto bad;
      st = ch == ';' ? PARAM : NAME;
      start = end = NONE;
    } else {
      goto bad;
    }
  }
  if (start == NONE || quoted || is_ws((unsigned char)last)) return 2;
  return 0;
bad:
  *at = i;
  return 1;
}

/*
 * Walking a value that passed ext_syntax: ',' and ';' appear only as
 * separators there (neither is a token character, so neither can be inside
 * a quoted value), and no piece is empty, so splitting and trimming gives
 * exactly the elements and parameters ws's parser builds.
 */
typedef struct {
  const char *p;
  size_t n;
} span_t;

static span_t trim(const char *p, size_t n) {
  while (n && is_ws((unsigned char)p[0])) p++, n--;
  while (n && is_ws((unsigned char)p[n - 1])) n--;
  return (span_t){p, n};
}

/* Cuts the next piece up to sep (or the end) off *rest. 0 when *rest is
 * exhausted. */
static int next_piece(span_t *rest, char sep, span_t *piece) {
  if (rest->p == NULL) return 0;
  const char *s = memchr(rest->p, sep, rest->n);
  size_t k = s ? (size_t)(s - rest->p) : rest->n;
  *piece = trim(rest->p, k);
  if (s) {
    rest->p += k + 1;
    rest->n -= k + 1;
  } else {
    rest->p = NULL;
    rest->n = 0;
  }
  return 1;
}

typedef struct {
  span_t name;
  span_t value; /* without quotes; may hold escaping backslashes */
  int has_value;
} param_t;

static void split_param(span_t piece, param_t *out) {
  const char *eq = memchr(piece.p, '=', piece.n);
  out->has_value = eq != NULL;
  if (eq == NULL) {
    out->name = piece;
    out->value = (span_t){NULL, 0};
    return;
  }
  out->name = (span_t){piece.p, (size_t)(eq - piece.p)};
  out->value = (span_t){eq + 1, piece.n - out->name.n - 1};
  if (out->value.n >= 2 && out->value.p[0] == '"') {
    out->value.p++;
    out->value.n -= 2;
  }
}

static int span_eq(span_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

static int param_id(span_t name) {
  for (int i = 0; i < 4; i++)
    if (span_eq(name, PARAM_NAMES[i])) return i;
  return -1;
}

/* ---- window bits values ------------------------------------------------------ */

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/*
 * ws 8.23.1 accepts a window bits value only if it matches
 * /^(?:[89]|1[0-5])$/ (so "010", "+10", "10.0" or "0xa" are invalid, as
 * they are there). Returns 8..15, or 0.
 */
static int window_bits_literal(const char *s, size_t n) {
  if (n == 1 && (s[0] == '8' || s[0] == '9')) return s[0] - '0';
  if (n == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5')
    return 10 + (s[1] - '0');
  return 0;
}

/* Window bits of a value that may hold escaping backslashes. */
static int window_bits_value(span_t v) {
  if (memchr(v.p, '\\', v.n) == NULL) return window_bits_literal(v.p, v.n);
  char *tmp = malloc(v.n);
  if (tmp == NULL) return 0; /* cannot happen for a header-sized value */
  size_t k = 0;
  for (size_t i = 0; i < v.n; i++)
    if (v.p[i] != '\\') tmp[k++] = v.p[i];
  int r = window_bits_literal(tmp, k);
  free(tmp);
  return r;
}

/* ---- normalizeParams ------------------------------------------------------------ */

static void params_set(wsn_pmd_params_t *p, int id, int value) {
  int present = 0;
  for (int i = 0; i < p->count; i++) present |= p->order[i] == id;
  if (!present) p->order[p->count++] = (uint8_t)id;
  switch (id) {
    case WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER:
      p->server_no_context_takeover = 1;
      break;
    case WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER:
      p->client_no_context_takeover = 1;
      break;
    case WSN_PMD_P_SERVER_MAX_WINDOW_BITS:
      p->server_max_window_bits = value;
      break;
    default:
      p->client_max_window_bits = value;
      break;
  }
}

static void params_delete_cmwb(wsn_pmd_params_t *p) {
  int k = 0;
  for (int i = 0; i < p->count; i++)
    if (p->order[i] != WSN_PMD_P_CLIENT_MAX_WINDOW_BITS)
      p->order[k++] = p->order[i];
  p->count = (uint8_t)k;
  p->client_max_window_bits = 0;
}

static int err_param(wsn_pmd_error_t *err, int code, const char *ctor,
                     const param_t *pm) {
  sb_t b = err_start(err, code, ctor);
  switch (code) {
    case WSN_PMD_E_MULTIPLE_VALUES: sb_puts(&b, "Parameter \""); break;
    case WSN_PMD_E_INVALID_VALUE:
      sb_puts(&b, "Invalid value for parameter \"");
      break;
    default: sb_puts(&b, "Unknown parameter \""); break;
  }
  for (size_t i = 0; i < pm->name.n; i++) sb_putc(&b, pm->name.p[i]);
  sb_putc(&b, '"');
  if (code == WSN_PMD_E_MULTIPLE_VALUES) {
    sb_puts(&b, " must have only a single value");
  } else if (code == WSN_PMD_E_INVALID_VALUE) {
    /* ws prints the value it tested: the unescaped string, or `true`
     * for a parameter without one. */
    sb_puts(&b, ": ");
    if (pm->has_value) sb_put_unescaped(&b, pm->value.p, pm->value.n);
    else sb_puts(&b, "true");
  }
  sb_end(&b);
  return code;
}

/* JS orders an object's keys that are array indices ("0" to "4294967294",
 * no leading zero) first, ascending, then the other keys by insertion.
 * Returns the index, or -1 if name is not one. */
static int64_t array_index(span_t name) {
  if (name.n == 0 || name.n > 10 || (name.n > 1 && name.p[0] == '0'))
    return -1;
  int64_t v = 0;
  for (size_t i = 0; i < name.n; i++) {
    if (!is_digit(name.p[i])) return -1;
    v = v * 10 + (name.p[i] - '0');
  }
  return v <= 4294967294LL ? v : -1;
}

/* Counts the parameters named `name` in the rest of an element. */
static int name_occurs(span_t rest, span_t name) {
  span_t piece;
  param_t pm;
  while (next_piece(&rest, ';', &piece)) {
    split_param(piece, &pm);
    if (pm.name.n == name.n && memcmp(pm.name.p, name.p, name.n) == 0)
      return 1;
  }
  return 0;
}

/*
 * ws's normalizeParams for one element (params = its text after the name).
 * ws visits the keys of the params object in JS key order (array indices,
 * then the rest by first occurrence), and for each checks "single value"
 * before anything
 * else; a bare client_max_window_bits is allowed only on the server (kept
 * as WSN_PMD_TRUE here). Fills *out with the keys in that order.
 */
static int normalize(span_t params, int is_server, wsn_pmd_params_t *out,
                     wsn_pmd_error_t *err) {
  int count[4] = {0, 0, 0, 0}, seen[4] = {0, 0, 0, 0};
  span_t rest = params, piece;
  param_t pm;

  memset(out, 0, sizeof(*out));
  /* ws visits the keys in JS order, so an array-index name (a parameter
   * called "1", necessarily unknown) comes before all others. */
  int64_t min_index = -1;
  param_t first_index = {{NULL, 0}, {NULL, 0}, 0};
  span_t after_index = {NULL, 0};
  while (next_piece(&rest, ';', &piece)) {
    split_param(piece, &pm);
    int id = param_id(pm.name);
    if (id >= 0) count[id]++;
    int64_t ix = array_index(pm.name);
    if (ix >= 0 && (min_index < 0 || ix < min_index)) {
      min_index = ix;
      first_index = pm;
      after_index = rest;
    }
  }
  if (min_index >= 0) {
    if (name_occurs(after_index, first_index.name))
      return err_param(err, WSN_PMD_E_MULTIPLE_VALUES, "Error", &first_index);
    return err_param(err, WSN_PMD_E_UNKNOWN_PARAM, "Error", &first_index);
  }
  rest = params;
  while (next_piece(&rest, ';', &piece)) {
    split_param(piece, &pm);
    int id = param_id(pm.name);
    if (id < 0) {
      /* The first unknown name met is its first occurrence; it is an
       * error either way, the message depends on a repeat. */
      if (name_occurs(rest, pm.name))
        return err_param(err, WSN_PMD_E_MULTIPLE_VALUES, "Error", &pm);
      return err_param(err, WSN_PMD_E_UNKNOWN_PARAM, "Error", &pm);
    }
    if (seen[id]) continue;
    seen[id] = 1;
    if (count[id] > 1)
      return err_param(err, WSN_PMD_E_MULTIPLE_VALUES, "Error", &pm);
    int value = 1;
    if (id == WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER ||
        id == WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER) {
      if (pm.has_value)
        return err_param(err, WSN_PMD_E_INVALID_VALUE, "TypeError", &pm);
    } else if (!pm.has_value && id == WSN_PMD_P_CLIENT_MAX_WINDOW_BITS &&
               is_server) {
      value = WSN_PMD_TRUE;
    } else {
      /* A bare server_max_window_bits is `true`, which ws's pattern rejects. */
      value = pm.has_value ? window_bits_value(pm.value) : 0;
      if (value == 0)
        return err_param(err, WSN_PMD_E_INVALID_VALUE, "TypeError", &pm);
    }
    params_set(out, id, value);
  }
  return WSN_PMD_OK;
}

/* Splits an element into its name and the text of its parameters. */
static void split_element(span_t el, span_t *name, span_t *params) {
  span_t rest = el;
  next_piece(&rest, ';', name);
  *params = rest.p ? rest : (span_t){NULL, 0};
}

static int syntax_error(const char *value, size_t len, wsn_pmd_error_t *err) {
  size_t at = 0;
  int r = ext_syntax(value, len, &at);
  if (r == 0) return WSN_PMD_OK;
  if (r == 2)
    return err_simple(err, WSN_PMD_E_SYNTAX, "SyntaxError",
                      "Unexpected end of input");
  char msg[64];
  snprintf(msg, sizeof(msg), "Unexpected character at index %zu", at);
  return err_simple(err, WSN_PMD_E_SYNTAX, "SyntaxError", msg);
}

/* ---- server ------------------------------------------------------------------- */

/* ws's acceptAsServer filter. */
static int acceptable(const wsn_pmd_options_t *o, const wsn_pmd_params_t *p) {
  if (o->server_no_context_takeover == WSN_PMD_FALSE &&
      p->server_no_context_takeover)
    return 0;
  if (p->server_max_window_bits &&
      (o->server_max_window_bits == WSN_PMD_FALSE ||
       (o->server_max_window_bits > 0 &&
        o->server_max_window_bits > p->server_max_window_bits)))
    return 0;
  if (o->client_max_window_bits > 0 &&
      (p->client_max_window_bits > 0
           ? o->client_max_window_bits > p->client_max_window_bits
           : p->client_max_window_bits != WSN_PMD_TRUE))
    return 0;
  return 1;
}

int wsn_pmd_accept_offer(const wsn_pmd_options_t *opts, const char *value,
                         size_t len, wsn_pmd_params_t *out,
                         wsn_pmd_error_t *err) {
  span_t rest = {value, len}, el, name, params;
  wsn_pmd_params_t p;
  int r, offers = 0;

  memset(out, 0, sizeof(*out));
  memset(err, 0, sizeof(*err));
  err->message = SERVER_MSG;
  err->status = 400;
  if ((r = syntax_error(value, len, err)) != WSN_PMD_OK) return r;

  /* Every offer is validated before any is chosen. */
  while (next_piece(&rest, ',', &el)) {
    split_element(el, &name, &params);
    if (!span_eq(name, EXT_NAME)) continue;
    if ((r = normalize(params, 1, &p, err)) != WSN_PMD_OK) return r;
    offers++;
  }
  if (offers == 0) return WSN_PMD_NONE;

  rest = (span_t){value, len};
  while (next_piece(&rest, ',', &el)) {
    split_element(el, &name, &params);
    if (!span_eq(name, EXT_NAME)) continue;
    normalize(params, 1, &p, err);
    if (!acceptable(opts, &p)) continue;
    if (opts->server_no_context_takeover == WSN_PMD_TRUE)
      params_set(&p, WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER, 1);
    if (opts->client_no_context_takeover == WSN_PMD_TRUE)
      params_set(&p, WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER, 1);
    if (opts->server_max_window_bits > 0)
      params_set(&p, WSN_PMD_P_SERVER_MAX_WINDOW_BITS,
                 opts->server_max_window_bits);
    if (opts->client_max_window_bits > 0)
      params_set(&p, WSN_PMD_P_CLIENT_MAX_WINDOW_BITS,
                 opts->client_max_window_bits);
    else if (p.client_max_window_bits == WSN_PMD_TRUE ||
             opts->client_max_window_bits == WSN_PMD_FALSE)
      params_delete_cmwb(&p);
    *out = p;
    return WSN_PMD_OK;
  }
  return err_simple(err, WSN_PMD_E_NO_ACCEPTABLE, "Error",
                    "None of the extension offers can be accepted");
}

/* "; name" or "; name=N" */
static void put_param(sb_t *b, int id, int value) {
  sb_puts(b, "; ");
  sb_puts(b, PARAM_NAMES[id]);
  if (value != WSN_PMD_TRUE) {
    char num[16];
    snprintf(num, sizeof(num), "=%d", value);
    sb_puts(b, num);
  }
}

static size_t sb_result(sb_t *b) {
  if (b->cut) return 0;
  b->p[b->len] = '\0';
  return b->len;
}

size_t wsn_pmd_format(const wsn_pmd_params_t *p, char *out, size_t cap) {
  if (cap == 0) return 0;
  sb_t b = {out, cap, 0, 0};
  sb_puts(&b, EXT_NAME);
  for (int i = 0; i < p->count; i++) {
    int id = p->order[i];
    int v = id == WSN_PMD_P_SERVER_MAX_WINDOW_BITS ? p->server_max_window_bits
            : id == WSN_PMD_P_CLIENT_MAX_WINDOW_BITS
                ? p->client_max_window_bits
                : WSN_PMD_TRUE;
    put_param(&b, id, v);
  }
  return sb_result(&b);
}

/* ---- client ------------------------------------------------------------------- */

size_t wsn_pmd_offer(const wsn_pmd_options_t *o, char *out, size_t cap) {
  if (cap == 0) return 0;
  sb_t b = {out, cap, 0, 0};
  sb_puts(&b, EXT_NAME);
  /* ws's offer(): truthy options, in this order; an unset (undefined or
   * null) clientMaxWindowBits offers the bare parameter. */
  if (o->server_no_context_takeover == WSN_PMD_TRUE)
    put_param(&b, WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER, WSN_PMD_TRUE);
  if (o->client_no_context_takeover == WSN_PMD_TRUE)
    put_param(&b, WSN_PMD_P_CLIENT_NO_CONTEXT_TAKEOVER, WSN_PMD_TRUE);
  if (o->server_max_window_bits == WSN_PMD_TRUE ||
      o->server_max_window_bits > 0)
    put_param(&b, WSN_PMD_P_SERVER_MAX_WINDOW_BITS, o->server_max_window_bits);
  if (o->client_max_window_bits == WSN_PMD_TRUE ||
      o->client_max_window_bits > 0)
    put_param(&b, WSN_PMD_P_CLIENT_MAX_WINDOW_BITS, o->client_max_window_bits);
  else if (o->client_max_window_bits == WSN_PMD_UNSET)
    put_param(&b, WSN_PMD_P_CLIENT_MAX_WINDOW_BITS, WSN_PMD_TRUE);
  return sb_result(&b);
}

int wsn_pmd_accept_response(const wsn_pmd_options_t *o, const char *value,
                            size_t len, wsn_pmd_params_t *out,
                            wsn_pmd_error_t *err) {
  span_t rest = {value, len}, el, name, params, first = {NULL, 0};
  wsn_pmd_params_t p;
  int r, have_first = 0;

  memset(out, 0, sizeof(*out));
  memset(err, 0, sizeof(*err));
  if (o == NULL) {
    err->message = NOT_OFFERED_MSG;
    return err_simple(err, WSN_PMD_E_NOT_OFFERED, "Error", NOT_OFFERED_MSG);
  }
  err->message = CLIENT_MSG;
  if ((r = syntax_error(value, len, err)) != WSN_PMD_OK) return r;

  while (next_piece(&rest, ',', &el)) {
    split_element(el, &name, &params);
    if (!span_eq(name, EXT_NAME)) {
      err->message = NOT_REQUESTED_MSG;
      return err_simple(err, WSN_PMD_E_NOT_REQUESTED, "Error",
                        NOT_REQUESTED_MSG);
    }
  }
  rest = (span_t){value, len};
  while (next_piece(&rest, ',', &el)) {
    split_element(el, &name, &params);
    if ((r = normalize(params, 0, &p, err)) != WSN_PMD_OK) return r;
    if (!have_first) first = params, have_first = 1;
  }
  normalize(first, 0, &p, err);

  /* ws's acceptAsClient on the first element. */
  if (o->client_no_context_takeover == WSN_PMD_FALSE &&
      p.client_no_context_takeover)
    return err_simple(err, WSN_PMD_E_UNEXPECTED_CNCT, "Error",
                      "Unexpected parameter \"client_no_context_takeover\"");
  if (!p.client_max_window_bits) {
    if (o->client_max_window_bits > 0)
      params_set(&p, WSN_PMD_P_CLIENT_MAX_WINDOW_BITS,
                 o->client_max_window_bits);
  } else if (o->client_max_window_bits == WSN_PMD_FALSE ||
             (o->client_max_window_bits > 0 &&
              p.client_max_window_bits > o->client_max_window_bits)) {
    return err_simple(
        err, WSN_PMD_E_UNEXPECTED_CMWB, "Error",
        "Unexpected or invalid parameter \"client_max_window_bits\"");
  }
  *out = p;
  return WSN_PMD_OK;
}

/* ---- codec ------------------------------------------------------------------- */

enum { INF_IDLE = 0, INF_IN_MESSAGE = 1, INF_ENDED = 2 };

static const uint8_t TRAILER[4] = {0x00, 0x00, 0xff, 0xff};

/*
 * zlib allocations go through here so that c->mem is exact: each block
 * carries its size in a header as large as malloc's alignment.
 */
typedef union {
  size_t n;
  max_align_t align;
} zhdr_t;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  wsn_pmd_codec_t *c = opaque;
  size_t n = (size_t)items * size;
  if (size && n / size != items) return Z_NULL;
  if (n > SIZE_MAX - sizeof(zhdr_t)) return Z_NULL;
  zhdr_t *h = malloc(sizeof(zhdr_t) + n);
  if (h == NULL) return Z_NULL;
  h->n = n;
  c->mem += n;
  return h + 1;
}

static void z_free(voidpf opaque, voidpf p) {
  wsn_pmd_codec_t *c = opaque;
  if (p == NULL) return;
  zhdr_t *h = (zhdr_t *)p - 1;
  c->mem -= h->n;
  free(h);
}

static z_stream *stream_new(wsn_pmd_codec_t *c) {
  z_stream *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->zalloc = z_alloc;
  s->zfree = z_free;
  s->opaque = c;
  c->mem += sizeof(*s);
  return s;
}

static void stream_delete(wsn_pmd_codec_t *c, z_stream *s) {
  c->mem -= sizeof(*s);
  free(s);
}

/* Records zlib's error for the caller (c->error, c->error_code) and maps
 * it to our result. */
static int fail(wsn_pmd_codec_t *c, int zret, const char *msg, int result) {
  c->error_code = zret;
  c->error = msg ? msg : "Zlib error"; /* Node's text when zlib has none */
  return zret == Z_MEM_ERROR ? WSN_PMD_E_NOMEM : result;
}

void wsn_pmd_codec_init(wsn_pmd_codec_t *c, const wsn_pmd_params_t *p,
                        int is_server, const wsn_pmd_options_t *o,
                        uint64_t max_payload) {
  int own = is_server ? p->server_max_window_bits : p->client_max_window_bits;
  int peer = is_server ? p->client_max_window_bits : p->server_max_window_bits;
  memset(c, 0, sizeof(*c));
  c->max_payload = max_payload;
  /* zlib (since 1.2.9) refuses raw deflate with 8; Node's DeflateRaw turns
   * 8 into 9, and so do we. Out-of-range values (only from nonsense
   * options) make the first compress fail with E_ZLIB. */
  c->def_bits = (int8_t)(own > 0 && own <= 15 ? (own == 8 ? 9 : own)
                         : own > 15 ? 16 : 15);
  c->inf_bits = (int8_t)(peer > 0 && peer <= 15 ? peer : peer > 15 ? 16 : 15);
  c->level = (int8_t)o->level;
  c->mem_level = (int8_t)o->mem_level;
  c->strategy = (int8_t)o->strategy;
  c->def_no_takeover = is_server ? p->server_no_context_takeover
                                 : p->client_no_context_takeover;
  c->inf_no_takeover = is_server ? p->client_no_context_takeover
                                 : p->server_no_context_takeover;
}

static void def_close(wsn_pmd_codec_t *c) {
  if (c->def == NULL) return;
  deflateEnd(c->def);
  stream_delete(c, c->def);
  c->def = NULL;
  c->def_in_message = 0;
}

static void inf_close(wsn_pmd_codec_t *c) {
  if (c->inf == NULL) return;
  inflateEnd(c->inf);
  stream_delete(c, c->inf);
  c->inf = NULL;
  c->inf_state = INF_IDLE;
  c->inflated = 0;
}

static unsigned clamp_uint(size_t n) {
  return n > UINT_MAX ? UINT_MAX : (unsigned)n;
}

int wsn_pmd_compress(wsn_pmd_codec_t *c, const uint8_t *data, size_t len,
                     int fin, wsn_buf_t *out) {
  const size_t start = out->len;
  int ret;

  if (c->def == NULL) {
    if ((c->def = stream_new(c)) == NULL) return WSN_PMD_E_NOMEM;
    ret = deflateInit2(c->def, c->level, Z_DEFLATED, -c->def_bits,
                       c->mem_level, c->strategy);
    if (ret != Z_OK) {
      const char *msg = c->def->msg;
      stream_delete(c, c->def);
      c->def = NULL;
      return fail(c, ret, msg, WSN_PMD_E_ZLIB);
    }
  }
  z_stream *s = c->def;
  /* A first guess at the size; the loop grows the buffer if it is short. */
  size_t guess = len < (1u << 20) ? len : (size_t)deflateBound(s, 1u << 20);
  if (wsn_buf_reserve(out, guess + 16) != 0) goto nomem;

  const uint8_t *next = data;
  size_t left = len;
  s->avail_in = 0;
  s->next_in = (Bytef *)(uintptr_t)data;
  if (len == 0) {
    /* Node writes the data, then flushes: for an empty message the write
     * is an empty Z_NO_FLUSH call, which lets the flush emit an empty
     * stored block even right after the previous message's flush (zlib
     * skips a second flush in a row). Without it the message would come
     * out as nothing instead of ws's 00. */
    s->next_out = out->base + out->len;
    s->avail_out = clamp_uint(out->cap - out->len);
    deflate(s, Z_NO_FLUSH);
    out->len = (size_t)(s->next_out - out->base);
  }
  for (;;) {
    if (s->avail_in == 0 && left) {
      s->next_in = (Bytef *)(uintptr_t)next;
      s->avail_in = clamp_uint(left);
      next += s->avail_in;
      left -= s->avail_in;
    }
    if (out->cap == out->len && wsn_buf_reserve(out, out->cap / 2 + 64) != 0)
      goto nomem;
    s->next_out = out->base + out->len;
    s->avail_out = clamp_uint(out->cap - out->len);
    int flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    ret = deflate(s, flush);
    out->len = (size_t)(s->next_out - out->base);
    if (ret != Z_OK && ret != Z_BUF_ERROR) {
      const char *msg = s->msg;
      out->len = start;
      def_close(c);
      return fail(c, ret, msg, WSN_PMD_E_ZLIB);
    }
    if (flush == Z_SYNC_FLUSH && s->avail_in == 0 && s->avail_out != 0) break;
  }
  if (fin) {
    /* A sync flush always ends with an empty stored block 00 00 ff ff. */
    if (out->len - start < 4 ||
        memcmp(out->base + out->len - 4, TRAILER, 4) != 0) {
      out->len = start;
      def_close(c);
      return fail(c, Z_STREAM_ERROR, NULL, WSN_PMD_E_ZLIB);
    }
    out->len -= 4;
    if (c->def_no_takeover) deflateReset(s);
  }
  c->def_in_message = !fin;
  return WSN_PMD_OK;

nomem:
  out->len = start;
  def_close(c);
  return WSN_PMD_E_NOMEM;
}

/* Makes room for up to `want` more bytes, never more: realloc to the exact
 * size, so the inflate limit bounds the allocation. */
static int reserve_exact(wsn_buf_t *b, size_t want) {
  if (b->cap - b->len >= want) return 0;
  if (want > SIZE_MAX - b->len) return -1;
  uint8_t *p = realloc(b->base, b->len + want);
  if (p == NULL) return -1;
  b->base = p;
  b->cap = b->len + want;
  return 0;
}

/* Inflates data into out. Returns WSN_PMD_OK (all consumed, or the stream
 * ended) or an error, after which the inflater is closed. */
static int inflate_feed(wsn_pmd_codec_t *c, const uint8_t *data, size_t len,
                        wsn_buf_t *out) {
  z_stream *s = c->inf;
  const uint8_t *next = data;
  size_t left = len;

  s->avail_in = 0;
  s->next_in = (Bytef *)(uintptr_t)data;
  for (;;) {
    if (s->avail_in == 0 && left) {
      s->next_in = (Bytef *)(uintptr_t)next;
      s->avail_in = clamp_uint(left);
      next += s->avail_in;
      left -= s->avail_in;
    }
    /* At most max_payload + 1 bytes per message: one byte over is enough
     * to know the message is too big. */
    size_t room = SIZE_MAX;
    if (c->max_payload && c->max_payload - c->inflated < SIZE_MAX)
      room = (size_t)(c->max_payload - c->inflated) + 1;
    if (out->cap == out->len) {
      size_t want = out->cap > 1024 ? out->cap : 1024;
      if (want > room) want = room;
      if (reserve_exact(out, want) != 0) {
        inf_close(c);
        return WSN_PMD_E_NOMEM;
      }
    }
    size_t avail = out->cap - out->len;
    if (avail > room) avail = room;
    s->next_out = out->base + out->len;
    s->avail_out = clamp_uint(avail);
    int ret = inflate(s, Z_SYNC_FLUSH);
    size_t produced = (size_t)(s->next_out - (out->base + out->len));
    out->len += produced;
    c->inflated += produced;
    if (c->max_payload && c->inflated > c->max_payload) {
      inf_close(c);
      return WSN_PMD_E_TOO_BIG;
    }
    switch (ret) {
      case Z_STREAM_END:
        /* A final block: what follows in this message is ignored. */
        c->inf_state = INF_ENDED;
        return WSN_PMD_OK;
      case Z_OK:
      case Z_BUF_ERROR: /* no progress possible: all input consumed */
        if (s->avail_in == 0 && left == 0 && s->avail_out != 0)
          return WSN_PMD_OK;
        break;
      default: { /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR, Z_MEM_ERROR */
        const char *msg = s->msg;
        inf_close(c);
        if (ret == Z_NEED_DICT && msg == NULL) msg = "Missing dictionary";
        return fail(c, ret, msg, WSN_PMD_E_DATA);
      }
    }
  }
}

int wsn_pmd_decompress(wsn_pmd_codec_t *c, const uint8_t *data, size_t len,
                       int fin, wsn_buf_t *out) {
  int r;
  if (c->inf == NULL) {
    if ((c->inf = stream_new(c)) == NULL) return WSN_PMD_E_NOMEM;
    int ret = inflateInit2(c->inf, -c->inf_bits);
    if (ret != Z_OK) {
      const char *msg = c->inf->msg;
      stream_delete(c, c->inf);
      c->inf = NULL;
      return fail(c, ret, msg, WSN_PMD_E_ZLIB);
    }
    c->inf_state = INF_IDLE;
    c->inflated = 0;
  }
  if (c->inf_state != INF_ENDED) {
    c->inf_state = INF_IN_MESSAGE;
    if (len && (r = inflate_feed(c, data, len, out)) != WSN_PMD_OK) return r;
  }
  if (!fin) return WSN_PMD_OK;
  if (c->inf_state != INF_ENDED &&
      (r = inflate_feed(c, TRAILER, sizeof(TRAILER), out)) != WSN_PMD_OK)
    return r;
  /* After a final block the next message needs a fresh stream (Node's
   * stream has ended, and ws makes a new one). */
  if (c->inf_no_takeover || c->inf_state == INF_ENDED) inflateReset(c->inf);
  c->inf_state = INF_IDLE;
  c->inflated = 0;
  return WSN_PMD_OK;
}

void wsn_pmd_codec_idle(wsn_pmd_codec_t *c) {
  if (c->def_no_takeover && !c->def_in_message) def_close(c);
  if (c->inf_no_takeover && c->inf_state == INF_IDLE) inf_close(c);
}

void wsn_pmd_codec_free(wsn_pmd_codec_t *c) {
  def_close(c);
  inf_close(c);
}

const char *wsn_pmd_zlib_code_name(int code) {
  switch (code) {
    case Z_OK: return "Z_OK";
    case Z_STREAM_END: return "Z_STREAM_END";
    case Z_NEED_DICT: return "Z_NEED_DICT";
    case Z_ERRNO: return "Z_ERRNO";
    case Z_STREAM_ERROR: return "Z_STREAM_ERROR";
    case Z_DATA_ERROR: return "Z_DATA_ERROR";
    case Z_MEM_ERROR: return "Z_MEM_ERROR";
    case Z_BUF_ERROR: return "Z_BUF_ERROR";
    case Z_VERSION_ERROR: return "Z_VERSION_ERROR";
    default: return "Z_UNKNOWN";
  }
}
