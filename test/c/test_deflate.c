/*
 * Tests for src/deflate.c. The negotiation tables were produced by running
 * ws 8.23.1's own extension.parse / PerMessageDeflate (accept, offer, format)
 * over each header, so every expected result, response header and message
 * is ws's. Codec expectations come from RFC 7692 section 7.2.3 and from
 * ws's compress() output for the same input.
 */
#include "deflate.h"
#include "runner.h"

#include <stdlib.h>
#include <zlib.h>

#define U WSN_PMD_UNSET
#define F WSN_PMD_FALSE
#define T WSN_PMD_TRUE

/* Expected result kinds, as ws reported them. */
enum { K_OK, K_NONE, K_SyntaxError, K_SYNTAX, K_TypeError, K_Error, K_NOTREQ };

static wsn_pmd_options_t opts4(int snct, int cnct, int smwb, int cmwb) {
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.server_no_context_takeover = snct;
  o.client_no_context_takeover = cnct;
  o.server_max_window_bits = smwb;
  o.client_max_window_bits = cmwb;
  return o;
}

/* The WSN_PMD_E_* that goes with one of ws's messages. */
static int code_for(int kind, const char *msg) {
  switch (kind) {
    case K_OK: return WSN_PMD_OK;
    case K_NONE: return WSN_PMD_NONE;
    case K_SyntaxError:
    case K_SYNTAX: return WSN_PMD_E_SYNTAX;
    case K_TypeError: return WSN_PMD_E_INVALID_VALUE;
    case K_NOTREQ: return WSN_PMD_E_NOT_REQUESTED;
    default: break;
  }
  if (strncmp(msg, "Unknown parameter", 17) == 0)
    return WSN_PMD_E_UNKNOWN_PARAM;
  if (strstr(msg, "must have only a single value"))
    return WSN_PMD_E_MULTIPLE_VALUES;
  if (strncmp(msg, "None of", 7) == 0) return WSN_PMD_E_NO_ACCEPTABLE;
  if (strncmp(msg, "Unexpected parameter", 20) == 0)
    return WSN_PMD_E_UNEXPECTED_CNCT;
  if (strncmp(msg, "Unexpected or invalid", 21) == 0)
    return WSN_PMD_E_UNEXPECTED_CMWB;
  return 999;
}

static const char *ctor_for(int kind) {
  return kind == K_SyntaxError || kind == K_SYNTAX ? "SyntaxError"
         : kind == K_TypeError                    ? "TypeError"
                                                  : "Error";
}

/* ---- server negotiation ---------------------------------------------------- */

typedef struct {
  int snct, cnct, smwb, cmwb;
  const char *header;
  int kind;
  const char *result; /* the response header, or ws's error message */
} server_case_t;

static const server_case_t SERVER_CASES[] = {
    {U, U, U, U,
     "permessage-deflate",
     K_OK, "permessage-deflate"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=10",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=10",
     K_OK, "permessage-deflate; server_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     K_OK, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
    {T, U, U, U,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate; server_no_context_takeover"},
    {T, T, 10, 12,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate; client_max_window_bits=12; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"},
    {T, U, U, 10,
     "permessage-deflate; client_max_window_bits; server_no_context_takeover",
     K_OK, "permessage-deflate; client_max_window_bits=10; server_no_context_takeover"},
    {T, U, U, U,
     "permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
     K_OK, "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"},
    {T, U, U, U,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
     K_OK, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"},
    {U, U, U, U,
     "x-webkit-deflate-frame",
     K_NONE, NULL},
    {U, U, U, U,
     "foo; bar=1, baz",
     K_NONE, NULL},
    {U, U, U, U,
     "Permessage-Deflate",
     K_NONE, NULL},
    {U, U, U, U,
     "foo, permessage-deflate; client_max_window_bits=9",
     K_OK, "permessage-deflate; client_max_window_bits=9"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=16",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 16"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=7",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 7"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits",
     K_TypeError, "Invalid value for parameter \"server_max_window_bits\": true"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=abc",
     K_TypeError, "Invalid value for parameter \"server_max_window_bits\": abc"},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover=1",
     K_TypeError, "Invalid value for parameter \"server_no_context_takeover\": 1"},
    {U, U, U, U,
     "permessage-deflate; client_no_context_takeover=\"x\"",
     K_TypeError, "Invalid value for parameter \"client_no_context_takeover\": x"},
    {U, U, U, U,
     "permessage-deflate; foo",
     K_Error, "Unknown parameter \"foo\""},
    {U, U, U, U,
     "permessage-deflate; foo=1",
     K_Error, "Unknown parameter \"foo\""},
    {U, U, U, U,
     "permessage-deflate; foo; foo",
     K_Error, "Parameter \"foo\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
     K_Error, "Parameter \"server_no_context_takeover\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
     K_Error, "Parameter \"client_max_window_bits\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate; foo; server_no_context_takeover; server_no_context_takeover",
     K_Error, "Unknown parameter \"foo\""},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover; foo; server_no_context_takeover",
     K_Error, "Parameter \"server_no_context_takeover\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate; foo; bar; foo",
     K_Error, "Parameter \"foo\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate, permessage-deflate; bogus",
     K_Error, "Unknown parameter \"bogus\""},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"10\"",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"1\\0\"",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"\\1\\0\"",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"1\\6\"",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 16"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=10.0",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 10.0"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=0xa",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0xa"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=0XF",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0XF"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=0o12",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0o12"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=0b1000",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0b1000"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=1e1",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 1e1"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=.9e1",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": .9e1"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=+9",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": +9"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=-9",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": -9"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=009",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 009"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=9.5",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 9.5"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=Infinity",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": Infinity"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=1_0",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 1_0"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=+0x9",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": +0x9"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=100e-1",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 100e-1"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=8.",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 8."},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=8e",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 8e"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=8.00000000000000088817841970012523233890533447265625",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 8.00000000000000088817841970012523233890533447265625"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=8.00000000000000088817841970012523233890533447265626",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 8.00000000000000088817841970012523233890533447265626"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=7.999999999999999555910790149937383830547332763671875",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 7.999999999999999555910790149937383830547332763671875"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=7.999999999999999555910790149937383830547332763671874",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 7.999999999999999555910790149937383830547332763671874"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=14.99999999999999911182158029987476766109466552734375",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 14.99999999999999911182158029987476766109466552734375"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=14.99999999999999911182158029987476766109466552734374",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 14.99999999999999911182158029987476766109466552734374"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=15.00000000000000088817841970012523233890533447265625",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 15.00000000000000088817841970012523233890533447265625"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=15.99999999999999911182158029987476766109466552734375",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 15.99999999999999911182158029987476766109466552734375"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=0.0000000000000000000009e22",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0.0000000000000000000009e22"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=00000000000000000000000000000000012",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 00000000000000000000000000000000012"},
    {F, U, U, U,
     "permessage-deflate; server_no_context_takeover",
     K_Error, "None of the extension offers can be accepted"},
    {F, U, U, U,
     "permessage-deflate; server_no_context_takeover, permessage-deflate",
     K_OK, "permessage-deflate"},
    {U, U, F, U,
     "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate"},
    {U, U, 12, U,
     "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=13",
     K_OK, "permessage-deflate; server_max_window_bits=12"},
    {U, U, 12, U,
     "permessage-deflate; server_max_window_bits=10",
     K_Error, "None of the extension offers can be accepted"},
    {U, U, 12, U,
     "permessage-deflate",
     K_OK, "permessage-deflate; server_max_window_bits=12"},
    {U, U, T, U,
     "permessage-deflate; server_max_window_bits=10",
     K_OK, "permessage-deflate; server_max_window_bits=10"},
    {U, U, U, 10,
     "permessage-deflate",
     K_Error, "None of the extension offers can be accepted"},
    {U, U, U, 10,
     "permessage-deflate; client_max_window_bits=9, permessage-deflate; client_max_window_bits=11",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, 10,
     "permessage-deflate; client_max_window_bits=9, permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate; client_max_window_bits=10"},
    {U, U, U, F,
     "permessage-deflate; client_max_window_bits=11",
     K_OK, "permessage-deflate"},
    {U, U, U, T,
     "permessage-deflate; client_max_window_bits=11",
     K_OK, "permessage-deflate; client_max_window_bits=11"},
    {U, U, U, T,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=11",
     K_OK, "permessage-deflate; client_max_window_bits=11"},
    {F, U, U, U,
     "permessage-deflate; server_no_context_takeover, permessage-deflate; bad=1",
     K_Error, "Unknown parameter \"bad\""},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
     K_OK, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
     K_OK, "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
     K_OK, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
     K_OK, "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
     K_OK, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13",
     K_OK, "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=14; client_max_window_bits=14",
     K_OK, "permessage-deflate; server_max_window_bits=14; client_max_window_bits=14"},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
     K_OK, "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15"},
    {U, U, 8, 8,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate; client_max_window_bits=8; server_max_window_bits=8"},
    {U, U, 15, 15,
     "permessage-deflate; client_max_window_bits",
     K_OK, "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15"},
    {U, U, U, U,
     "",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     " permessage-deflate",
     K_SyntaxError, "Unexpected character at index 0"},
    {U, U, U, U,
     "permessage-deflate ",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     "permessage-deflate;",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     "permessage-deflate,",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     ",permessage-deflate",
     K_SyntaxError, "Unexpected character at index 0"},
    {U, U, U, U,
     "permessage-deflate,,foo",
     K_SyntaxError, "Unexpected character at index 19"},
    {U, U, U, U,
     "permessage-deflate;;",
     K_SyntaxError, "Unexpected character at index 19"},
    {U, U, U, U,
     "permessage deflate",
     K_SyntaxError, "Unexpected character at index 11"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits =10",
     K_SyntaxError, "Unexpected character at index 43"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits= 10",
     K_SyntaxError, "Unexpected character at index 43"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=10 ; server_no_context_takeover",
     K_OK, "permessage-deflate; client_max_window_bits=10; server_no_context_takeover"},
    {U, U, U, U,
     "permessage-deflate ; client_max_window_bits ;server_no_context_takeover , foo",
     K_OK, "permessage-deflate; server_no_context_takeover"},
    {U, U, U, U,
     "permessage-deflate;\tclient_max_window_bits",
     K_OK, "permessage-deflate"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"\"",
     K_SyntaxError, "Unexpected character at index 44"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"10",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"10\"x",
     K_SyntaxError, "Unexpected character at index 47"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"10\" ",
     K_SyntaxError, "Unexpected end of input"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"10\" ; a",
     K_Error, "Unknown parameter \"a\""},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=1\"0\"",
     K_SyntaxError, "Unexpected character at index 44"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"1 0\"",
     K_SyntaxError, "Unexpected character at index 45"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"1\\\"",
     K_SyntaxError, "Unexpected character at index 46"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"\\\\\"",
     K_SyntaxError, "Unexpected character at index 45"},
    {U, U, U, U,
     "permessage-deflate; a=\"b,c\"",
     K_SyntaxError, "Unexpected character at index 24"},
    {U, U, U, U,
     "permessage-deflate; a=b=c",
     K_SyntaxError, "Unexpected character at index 23"},
    {U, U, U, U,
     "permessage-deflate; =b",
     K_SyntaxError, "Unexpected character at index 20"},
    {U, U, U, U,
     "permessage-deflate=1",
     K_SyntaxError, "Unexpected character at index 18"},
    {U, U, U, U,
     "permessage-deflate; a=b c",
     K_SyntaxError, "Unexpected character at index 24"},
    {U, U, U, U,
     "foo; a=\"x\\y\"; b, permessage-deflate",
     K_OK, "permessage-deflate"},
    {U, U, U, U,
     "permessage-deflate; a=\xe9",
     K_SyntaxError, "Unexpected character at index 22"},
    {U, U, U, U,
     "permessage-deflate, foo; a=\"b;c\"",
     K_SyntaxError, "Unexpected character at index 29"},
    {U, U, U, U,
     "permessage-deflate; foo; 1",
     K_Error, "Unknown parameter \"1\""},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover; 7; 3",
     K_Error, "Unknown parameter \"3\""},
    {U, U, U, U,
     "permessage-deflate; foo; 4294967294",
     K_Error, "Unknown parameter \"4294967294\""},
    {U, U, U, U,
     "permessage-deflate; foo; 4294967295",
     K_Error, "Unknown parameter \"foo\""},
    {U, U, U, U,
     "permessage-deflate; foo; 01",
     K_Error, "Unknown parameter \"foo\""},
    {U, U, U, U,
     "permessage-deflate; foo; 10; 9; 10",
     K_Error, "Unknown parameter \"9\""},
    {U, U, U, U,
     "permessage-deflate; foo; 10; 9; 9",
     K_Error, "Parameter \"9\" must have only a single value"},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover=1; 0",
     K_Error, "Unknown parameter \"0\""},
};

TEST(server_negotiation_matches_ws) {
  for (size_t i = 0; i < sizeof(SERVER_CASES) / sizeof(SERVER_CASES[0]); i++) {
    const server_case_t *k = &SERVER_CASES[i];
    wsn_pmd_options_t o = opts4(k->snct, k->cnct, k->smwb, k->cmwb);
    wsn_pmd_params_t p;
    wsn_pmd_error_t err;
    int r = wsn_pmd_accept_offer(&o, k->header, strlen(k->header), &p, &err);
    if (r != code_for(k->kind, k->result))
      FAIL_("case %zu \"%s\": got %d, want %d (%s)", i, k->header, r,
            code_for(k->kind, k->result), r < 0 ? err.detail : "");
    if (r == WSN_PMD_OK) {
      char hdr[WSN_PMD_HEADER_MAX];
      ASSERT(wsn_pmd_format(&p, hdr, sizeof(hdr)) == strlen(k->result));
      if (strcmp(hdr, k->result) != 0)
        FAIL_("case %zu \"%s\": \"%s\" != \"%s\"", i, k->header, hdr,
              k->result);
    } else if (r < 0) {
      if (strcmp(err.detail, k->result) != 0)
        FAIL_("case %zu \"%s\": \"%s\" != \"%s\"", i, k->header, err.detail,
              k->result);
      ASSERT_STR_EQ(err.detail_ctor, ctor_for(k->kind));
      ASSERT_STR_EQ(err.message,
                    "Invalid or unacceptable Sec-WebSocket-Extensions header");
      ASSERT_EQ(err.status, 400);
    }
  }
}

TEST(server_params_fields) {
  wsn_pmd_options_t o = opts4(T, U, 10, 12);
  wsn_pmd_params_t p;
  wsn_pmd_error_t err;
  const char *h = "permessage-deflate; client_max_window_bits";
  ASSERT_EQ(wsn_pmd_accept_offer(&o, h, strlen(h), &p, &err), WSN_PMD_OK);
  ASSERT_EQ(p.server_no_context_takeover, 1);
  ASSERT_EQ(p.client_no_context_takeover, 0);
  ASSERT_EQ(p.server_max_window_bits, 10);
  ASSERT_EQ(p.client_max_window_bits, 12);
  ASSERT_EQ(p.count, 3);
  ASSERT_EQ(p.order[0], WSN_PMD_P_CLIENT_MAX_WINDOW_BITS);
  ASSERT_EQ(p.order[1], WSN_PMD_P_SERVER_NO_CONTEXT_TAKEOVER);
  ASSERT_EQ(p.order[2], WSN_PMD_P_SERVER_MAX_WINDOW_BITS);
}

TEST(server_value_not_nul_terminated) {
  /* The value is a span into the request head: nothing past len is read. */
  const char h[] = "permessage-deflate; client_max_window_bits=10XYZ";
  wsn_pmd_options_t o = opts4(U, U, U, U);
  wsn_pmd_params_t p;
  wsn_pmd_error_t err;
  ASSERT_EQ(wsn_pmd_accept_offer(&o, h, strlen(h) - 3, &p, &err), WSN_PMD_OK);
  ASSERT_EQ(p.client_max_window_bits, 10);
}

TEST(server_long_value_in_message_is_cut) {
  char h[400];
  snprintf(h, sizeof(h), "permessage-deflate; server_max_window_bits=");
  size_t n = strlen(h);
  memset(h + n, '9', 300);
  h[n + 300] = '\0';
  wsn_pmd_options_t o = opts4(U, U, U, U);
  wsn_pmd_params_t p;
  wsn_pmd_error_t err;
  ASSERT_EQ(wsn_pmd_accept_offer(&o, h, strlen(h), &p, &err),
            WSN_PMD_E_INVALID_VALUE);
  ASSERT_EQ(strlen(err.detail), WSN_PMD_DETAIL_MAX - 1);
  ASSERT(strncmp(err.detail,
                 "Invalid value for parameter \"server_max_window_bits\": 999",
                 57) == 0);
  ASSERT_STR_EQ(err.detail + WSN_PMD_DETAIL_MAX - 4, "...");
}

TEST(server_many_offers) {
  /* The first acceptable offer wins; all are validated first. */
  wsn_pmd_options_t o = opts4(U, U, 12, U);
  wsn_pmd_params_t p;
  wsn_pmd_error_t err;
  static char h[8192];
  h[0] = '\0';
  for (int i = 0; i < 100; i++)
    strcat(h, "permessage-deflate; server_max_window_bits=9, ");
  strcat(h, "permessage-deflate; server_max_window_bits=14; "
            "client_max_window_bits");
  ASSERT_EQ(wsn_pmd_accept_offer(&o, h, strlen(h), &p, &err), WSN_PMD_OK);
  char hdr[WSN_PMD_HEADER_MAX];
  wsn_pmd_format(&p, hdr, sizeof(hdr));
  ASSERT_STR_EQ(hdr, "permessage-deflate; server_max_window_bits=12");
}

TEST(format_small_buffer) {
  wsn_pmd_params_t p = {1, 1, 10, 10, 4, {0, 1, 2, 3}};
  char hdr[WSN_PMD_HEADER_MAX];
  size_t n = wsn_pmd_format(&p, hdr, sizeof(hdr));
  ASSERT_STR_EQ(hdr, "permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover; server_max_window_bits=10; "
                     "client_max_window_bits=10");
  ASSERT_EQ(wsn_pmd_format(&p, hdr, n), 0);
  ASSERT_EQ(wsn_pmd_format(&p, hdr, n + 1), n);
}

/* ---- client negotiation ---------------------------------------------------- */

typedef struct {
  int snct, cnct, smwb, cmwb;
  const char *header;
  int kind;
  const char *message;
  int p_snct, p_cnct, p_smwb, p_cmwb;
} client_case_t;

static const client_case_t CLIENT_CASES[] = {
    {U, U, U, U,
     "permessage-deflate",
     K_OK, NULL, 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=10",
     K_OK, NULL, 0, 0, 0, 10},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": true", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=9; server_no_context_takeover; client_no_context_takeover",
     K_OK, NULL, 1, 1, 9, 0},
    {F, U, U, U,
     "permessage-deflate; server_no_context_takeover",
     K_OK, NULL, 1, 0, 0, 0},
    {U, F, U, U,
     "permessage-deflate; client_no_context_takeover",
     K_Error, "Unexpected parameter \"client_no_context_takeover\"", 0, 0, 0, 0},
    {U, T, U, U,
     "permessage-deflate; client_no_context_takeover",
     K_OK, NULL, 0, 1, 0, 0},
    {U, U, 10, U,
     "permessage-deflate; server_max_window_bits=12",
     K_OK, NULL, 0, 0, 12, 0},
    {U, U, 10, U,
     "permessage-deflate",
     K_OK, NULL, 0, 0, 0, 0},
    {U, U, U, 10,
     "permessage-deflate",
     K_OK, NULL, 0, 0, 0, 10},
    {U, U, U, 10,
     "permessage-deflate; client_max_window_bits=9",
     K_OK, NULL, 0, 0, 0, 9},
    {U, U, U, 10,
     "permessage-deflate; client_max_window_bits=11",
     K_Error, "Unexpected or invalid parameter \"client_max_window_bits\"", 0, 0, 0, 0},
    {U, U, U, F,
     "permessage-deflate; client_max_window_bits=11",
     K_Error, "Unexpected or invalid parameter \"client_max_window_bits\"", 0, 0, 0, 0},
    {U, U, U, F,
     "permessage-deflate",
     K_OK, NULL, 0, 0, 0, 0},
    {U, U, U, T,
     "permessage-deflate; client_max_window_bits=15",
     K_OK, NULL, 0, 0, 0, 15},
    {U, U, U, U,
     "permessage-deflate, permessage-deflate; foo",
     K_Error, "Unknown parameter \"foo\"", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; client_no_context_takeover, permessage-deflate; client_max_window_bits=10",
     K_OK, NULL, 0, 1, 0, 0},
    {U, U, U, U,
     "permessage-deflate, foo",
     K_NOTREQ, NULL, 0, 0, 0, 0},
    {U, U, U, U,
     "foo",
     K_NOTREQ, NULL, 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; server_max_window_bits=16",
     K_TypeError, "Invalid value for parameter \"server_max_window_bits\": 16", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; x",
     K_Error, "Unknown parameter \"x\"", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
     K_Error, "Parameter \"server_no_context_takeover\" must have only a single value", 0, 0, 0, 0},
    {U, U, U, U,
     "",
     K_SYNTAX, "Unexpected end of input", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate;",
     K_SYNTAX, "Unexpected end of input", 0, 0, 0, 0},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits=\"0x8\"",
     K_TypeError, "Invalid value for parameter \"client_max_window_bits\": 0x8", 0, 0, 0, 0},
    {U, U, 8, 8,
     "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
     K_OK, NULL, 0, 0, 8, 8},
    {U, U, 9, 9,
     "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
     K_OK, NULL, 0, 0, 9, 9},
    {U, U, 10, 10,
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
     K_OK, NULL, 0, 0, 10, 10},
    {U, U, 11, 11,
     "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
     K_OK, NULL, 0, 0, 11, 11},
    {U, U, 12, 12,
     "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
     K_OK, NULL, 0, 0, 12, 12},
    {U, U, 13, 13,
     "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13",
     K_OK, NULL, 0, 0, 13, 13},
    {U, U, 14, 14,
     "permessage-deflate; server_max_window_bits=14; client_max_window_bits=14",
     K_OK, NULL, 0, 0, 14, 14},
    {U, U, 15, 15,
     "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
     K_OK, NULL, 0, 0, 15, 15},
};

TEST(client_negotiation_matches_ws) {
  for (size_t i = 0; i < sizeof(CLIENT_CASES) / sizeof(CLIENT_CASES[0]); i++) {
    const client_case_t *k = &CLIENT_CASES[i];
    wsn_pmd_options_t o = opts4(k->snct, k->cnct, k->smwb, k->cmwb);
    wsn_pmd_params_t p;
    wsn_pmd_error_t err;
    int r = wsn_pmd_accept_response(&o, k->header, strlen(k->header), &p, &err);
    int want = code_for(k->kind, k->message);
    if (r != want)
      FAIL_("case %zu \"%s\": got %d, want %d (%s)", i, k->header, r, want,
            r < 0 ? err.detail : "");
    if (r == WSN_PMD_OK) {
      ASSERT_EQ(p.server_no_context_takeover, k->p_snct);
      ASSERT_EQ(p.client_no_context_takeover, k->p_cnct);
      ASSERT_EQ(p.server_max_window_bits, k->p_smwb);
      ASSERT_EQ(p.client_max_window_bits, k->p_cmwb);
    } else if (r == WSN_PMD_E_NOT_REQUESTED) {
      ASSERT_STR_EQ(err.message,
                    "Server indicated an extension that was not requested");
    } else {
      if (strcmp(err.detail, k->message) != 0)
        FAIL_("case %zu \"%s\": \"%s\" != \"%s\"", i, k->header, err.detail,
              k->message);
      ASSERT_STR_EQ(err.detail_ctor, ctor_for(k->kind));
      ASSERT_STR_EQ(err.message, "Invalid Sec-WebSocket-Extensions header");
    }
  }
}

TEST(client_not_offered) {
  wsn_pmd_params_t p;
  wsn_pmd_error_t err;
  ASSERT_EQ(wsn_pmd_accept_response(NULL, "permessage-deflate", 18, &p, &err),
            WSN_PMD_E_NOT_OFFERED);
  ASSERT_STR_EQ(err.message, "Server sent a Sec-WebSocket-Extensions header "
                             "but no extension was requested");
  /* Checked before the syntax, as ws does. */
  ASSERT_EQ(wsn_pmd_accept_response(NULL, ",", 1, &p, &err),
            WSN_PMD_E_NOT_OFFERED);
}

typedef struct {
  int snct, cnct, smwb, cmwb;
  const char *offer;
} offer_case_t;

static const offer_case_t OFFER_CASES[] = {
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits"},
    {T, T, 10, 12,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"},
    {U, U, U, F,
     "permessage-deflate"},
    {U, U, T, T,
     "permessage-deflate; server_max_window_bits; client_max_window_bits"},
    {U, U, U, U,
     "permessage-deflate; client_max_window_bits"},
    {F, F, F, U,
     "permessage-deflate; client_max_window_bits"},
    {T, U, 9, U,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits"},
};

TEST(client_offer_matches_ws) {
  for (size_t i = 0; i < sizeof(OFFER_CASES) / sizeof(OFFER_CASES[0]); i++) {
    const offer_case_t *k = &OFFER_CASES[i];
    wsn_pmd_options_t o = opts4(k->snct, k->cnct, k->smwb, k->cmwb);
    char hdr[WSN_PMD_HEADER_MAX];
    size_t n = wsn_pmd_offer(&o, hdr, sizeof(hdr));
    ASSERT_EQ(n, strlen(k->offer));
    ASSERT_STR_EQ(hdr, k->offer);
    ASSERT_EQ(wsn_pmd_offer(&o, hdr, n), 0);
  }
}

TEST(client_offer_accepted_by_server) {
  /* Every window bits pair, offered by our client and accepted by our
   * server, then the answer accepted by the client. */
  for (int s = 8; s <= 15; s++) {
    for (int c = 8; c <= 15; c++) {
      wsn_pmd_options_t co = opts4(U, U, s, c), so = opts4(U, U, U, U);
      wsn_pmd_params_t sp, cp;
      wsn_pmd_error_t err;
      char offer[WSN_PMD_HEADER_MAX], answer[WSN_PMD_HEADER_MAX];
      wsn_pmd_offer(&co, offer, sizeof(offer));
      ASSERT_EQ(wsn_pmd_accept_offer(&so, offer, strlen(offer), &sp, &err),
                WSN_PMD_OK);
      ASSERT_EQ(sp.server_max_window_bits, s);
      ASSERT_EQ(sp.client_max_window_bits, c);
      wsn_pmd_format(&sp, answer, sizeof(answer));
      ASSERT_EQ(wsn_pmd_accept_response(&co, answer, strlen(answer), &cp, &err),
                WSN_PMD_OK);
      ASSERT_EQ(cp.server_max_window_bits, s);
      ASSERT_EQ(cp.client_max_window_bits, c);
    }
  }
}

TEST(should_compress_threshold) {
  wsn_pmd_params_t p = {0};
  /* With context takeover ws compresses everything. */
  ASSERT(wsn_pmd_should_compress(&p, 1, 1024, 1));
  p.server_no_context_takeover = 1;
  ASSERT(!wsn_pmd_should_compress(&p, 1, 1024, 1023));
  ASSERT(wsn_pmd_should_compress(&p, 1, 1024, 1024));
  ASSERT(wsn_pmd_should_compress(&p, 0, 1024, 1)); /* the client's side */
}

/* ---- codec helpers ---------------------------------------------------------- */

static wsn_pmd_params_t params(int nct, int bits) {
  wsn_pmd_params_t p = {0};
  p.server_no_context_takeover = p.client_no_context_takeover = (uint8_t)nct;
  p.server_max_window_bits = p.client_max_window_bits = bits;
  return p;
}

/* A server and a client codec agreeing on p. */
static void pair(wsn_pmd_codec_t *srv, wsn_pmd_codec_t *cli,
                 const wsn_pmd_params_t *p, uint64_t max_payload) {
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  wsn_pmd_codec_init(srv, p, 1, &o, max_payload);
  wsn_pmd_codec_init(cli, p, 0, &o, max_payload);
}

static int bytes_eq(const wsn_buf_t *b, const uint8_t *p, size_t n) {
  return b->len == n && (n == 0 || memcmp(b->base, p, n) == 0);
}

/* Deterministic text-like data: words from a small vocabulary, so that it
 * compresses, with a seed so that messages differ. */
static void make_text(uint8_t *out, size_t n, uint32_t seed) {
  static const char *words[] = {"websocket ", "frame ", "deflate ",
                                "message ",   "window ", "context ",
                                "takeover ",  "zlib ",   "payload "};
  size_t i = 0;
  while (i < n) {
    seed = seed * 1103515245u + 12345u;
    const char *w = words[(seed >> 16) % 9];
    for (; *w && i < n; w++) out[i++] = (uint8_t)*w;
  }
}

static void make_random(uint8_t *out, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    out[i] = (uint8_t)(seed >> 16);
  }
}

/* ---- codec: RFC 7692 section 7.2.3 ---------------------------------------- */

static const uint8_t HELLO[] = {'H', 'e', 'l', 'l', 'o'};

TEST(rfc_7_2_3_1_hello) {
  static const uint8_t want[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t out = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, want, sizeof(want)));
  out.len = 0;
  ASSERT_EQ(wsn_pmd_decompress(&c, want, sizeof(want), 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, HELLO, 5));
  /* Fragmented as in the RFC: f2 48 cd | c9 c9 07 00. */
  out.len = 0;
  ASSERT_EQ(wsn_pmd_decompress(&c, want, 3, 0, &out), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, want + 3, 4, 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, HELLO, 5));
  wsn_buf_free(&out);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(rfc_7_2_3_2_sharing_context) {
  static const uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t out = {0}, in = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &in), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, in.base, in.len, 1, &out), WSN_PMD_OK);
  in.len = out.len = 0;
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &in), WSN_PMD_OK);
  ASSERT(bytes_eq(&in, second, sizeof(second)));
  ASSERT_EQ(wsn_pmd_decompress(&c, in.base, in.len, 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, HELLO, 5));
  wsn_buf_free(&out);
  wsn_buf_free(&in);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(rfc_no_context_takeover_repeats_first_form) {
  static const uint8_t want[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  wsn_pmd_params_t p = params(1, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t out = {0};
  pair(&s, &c, &p, 0);
  for (int i = 0; i < 3; i++) {
    out.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &out), WSN_PMD_OK);
    ASSERT(bytes_eq(&out, want, sizeof(want)));
  }
  wsn_buf_free(&out);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(rfc_other_block_forms_decompress) {
  /* 7.2.3.3 stored block, 7.2.3.4 BFINAL set (twice: the second message
   * needs a fresh stream), 7.2.3.5 two blocks in one message. */
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
                                   0x00};
  static const uint8_t two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t out = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_decompress(&c, stored, sizeof(stored), 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, HELLO, 5));
  for (int i = 0; i < 2; i++) {
    out.len = 0;
    ASSERT_EQ(wsn_pmd_decompress(&c, bfinal, sizeof(bfinal), 1, &out),
              WSN_PMD_OK);
    ASSERT(bytes_eq(&out, HELLO, 5));
  }
  out.len = 0;
  ASSERT_EQ(wsn_pmd_decompress(&c, two, sizeof(two), 1, &out), WSN_PMD_OK);
  ASSERT(bytes_eq(&out, HELLO, 5));
  wsn_buf_free(&out);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(empty_message_is_one_zero_byte) {
  /* ws gives 00 for every empty message, also right after another one and
   * after a non-final fragment. */
  static const uint8_t zero[] = {0x00};
  static const uint8_t hel[] = {0xf2, 0x48, 0xcd, 0x01, 0x00,
                                0x00, 0x00, 0xff, 0xff};
  for (int nct = 0; nct <= 1; nct++) {
    wsn_pmd_params_t p = params(nct, 0);
    wsn_pmd_codec_t s, c;
    wsn_buf_t out = {0}, msg = {0};
    pair(&s, &c, &p, 0);
    for (int i = 0; i < 3; i++) {
      out.len = 0;
      ASSERT_EQ(wsn_pmd_compress(&s, NULL, 0, 1, &out), WSN_PMD_OK);
      ASSERT(bytes_eq(&out, zero, 1));
      ASSERT_EQ(wsn_pmd_decompress(&c, out.base, out.len, 1, &msg), WSN_PMD_OK);
      ASSERT_EQ(msg.len, 0);
    }
    out.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 3, 0, &out), WSN_PMD_OK);
    ASSERT(bytes_eq(&out, hel, sizeof(hel)));
    ASSERT_EQ(wsn_pmd_decompress(&c, out.base, out.len, 0, &msg), WSN_PMD_OK);
    out.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, NULL, 0, 1, &out), WSN_PMD_OK);
    ASSERT(bytes_eq(&out, zero, 1));
    ASSERT_EQ(wsn_pmd_decompress(&c, out.base, out.len, 1, &msg), WSN_PMD_OK);
    ASSERT(bytes_eq(&msg, HELLO, 3));
    wsn_buf_free(&out);
    wsn_buf_free(&msg);
    wsn_pmd_codec_free(&s);
    wsn_pmd_codec_free(&c);
  }
}

TEST(fragmented_compress) {
  /* ws's send(data, { fin: false }): each fragment keeps 00 00 ff ff. */
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t wire = {0}, msg = {0};
  pair(&s, &c, &p, 0);
  for (int round = 0; round < 2; round++) {
    wire.len = msg.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 2, 0, &wire), WSN_PMD_OK);
    ASSERT_MEM_EQ(wire.base + wire.len - 4, "\x00\x00\xff\xff", 4);
    ASSERT_EQ(wsn_pmd_compress(&s, HELLO + 2, 3, 1, &wire), WSN_PMD_OK);
    ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
    ASSERT(bytes_eq(&msg, HELLO, 5));
  }
  wsn_buf_free(&wire);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

/* ---- codec: round trips ----------------------------------------------------- */

TEST(round_trip_every_window_bits) {
  enum { N = 6000, MSGS = 6 };
  uint8_t *data = malloc(N);
  for (int bits = 8; bits <= 15; bits++) {
    for (int nct = 0; nct <= 1; nct++) {
      wsn_pmd_params_t p = params(nct, bits);
      wsn_pmd_codec_t s, c;
      wsn_buf_t wire = {0}, msg = {0};
      size_t sizes[MSGS];
      pair(&s, &c, &p, 0);
      ASSERT_EQ(s.def_bits, bits == 8 ? 9 : bits);
      ASSERT_EQ(c.inf_bits, bits);
      for (int m = 0; m < MSGS; m++) {
        /* The same message every time: with context takeover the window
         * (if it holds the message) makes the repeats cheaper. */
        make_text(data, N, 7);
        wire.len = msg.len = 0;
        ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
        sizes[m] = wire.len;
        ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg),
                  WSN_PMD_OK);
        ASSERT(bytes_eq(&msg, data, N));
        /* And the other direction. */
        wire.len = msg.len = 0;
        ASSERT_EQ(wsn_pmd_compress(&c, data, N, 1, &wire), WSN_PMD_OK);
        ASSERT_EQ(wsn_pmd_decompress(&s, wire.base, wire.len, 1, &msg),
                  WSN_PMD_OK);
        ASSERT(bytes_eq(&msg, data, N));
      }
      if (nct) {
        for (int m = 1; m < MSGS; m++) ASSERT_EQ(sizes[m], sizes[0]);
      } else {
        ASSERT(sizes[1] < sizes[0]);
        if (bits == 15) ASSERT(sizes[1] * 10 < sizes[0]);
      }
      wsn_buf_free(&wire);
      wsn_buf_free(&msg);
      wsn_pmd_codec_free(&s);
      wsn_pmd_codec_free(&c);
      ASSERT_EQ(wsn_pmd_codec_memory(&s), 0);
      ASSERT_EQ(wsn_pmd_codec_memory(&c), 0);
    }
  }
  free(data);
}

TEST(round_trip_window_8_long_distances) {
  /* Repeats at distances of 300-500 bytes, across messages: the 9-bit
   * deflater must never reach further than the 8-bit inflater's window. */
  enum { N = 450 };
  uint8_t block[N];
  make_random(block, N, 99);
  wsn_pmd_params_t p = params(0, 8);
  wsn_pmd_codec_t s, c;
  wsn_buf_t wire = {0}, msg = {0};
  pair(&s, &c, &p, 0);
  for (int m = 0; m < 50; m++) {
    size_t off = (size_t)(m * 37) % 100;
    wire.len = msg.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, block + off, N - off, 1, &wire), WSN_PMD_OK);
    ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
    ASSERT(bytes_eq(&msg, block + off, N - off));
  }
  wsn_buf_free(&wire);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(round_trip_large_incompressible) {
  enum { N = 3 << 20 };
  uint8_t *data = malloc(N);
  make_random(data, N, 5);
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t wire = {0}, msg = {0};
  pair(&s, &c, &p, N);
  ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
  ASSERT(wire.len > N && wire.len < N + N / 100);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
  ASSERT(bytes_eq(&msg, data, N));
  wsn_buf_free(&wire);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
  free(data);
}

TEST(decompress_byte_by_byte) {
  enum { N = 20000 };
  uint8_t *data = malloc(N);
  for (int nct = 0; nct <= 1; nct++) {
    wsn_pmd_params_t p = params(nct, 0);
    wsn_pmd_codec_t s, c;
    wsn_buf_t wire = {0}, msg = {0};
    pair(&s, &c, &p, 0);
    for (int m = 0; m < 3; m++) {
      make_text(data, N, (uint32_t)m);
      wire.len = msg.len = 0;
      ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
      for (size_t i = 0; i < wire.len; i++)
        ASSERT_EQ(wsn_pmd_decompress(&c, wire.base + i, 1, 0, &msg),
                  WSN_PMD_OK);
      ASSERT_EQ(wsn_pmd_decompress(&c, NULL, 0, 1, &msg), WSN_PMD_OK);
      ASSERT(bytes_eq(&msg, data, N));
    }
    wsn_buf_free(&wire);
    wsn_buf_free(&msg);
    wsn_pmd_codec_free(&s);
    wsn_pmd_codec_free(&c);
  }
  free(data);
}

TEST(zlib_options) {
  /* level 0 (stored), memLevel 1 and 9, every strategy. */
  static const int settings[][3] = {{0, 8, 0}, {1, 1, 0}, {9, 9, 0},
                                    {6, 8, 1}, {6, 8, 2}, {6, 8, 3},
                                    {6, 8, 4}};
  enum { N = 5000 };
  uint8_t data[N];
  make_text(data, N, 3);
  for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
    wsn_pmd_options_t o;
    wsn_pmd_options_init(&o);
    o.level = settings[i][0];
    o.mem_level = settings[i][1];
    o.strategy = settings[i][2];
    wsn_pmd_params_t p = params(0, 10);
    wsn_pmd_codec_t s, c;
    wsn_buf_t wire = {0}, msg = {0};
    wsn_pmd_codec_init(&s, &p, 1, &o, 0);
    wsn_pmd_codec_init(&c, &p, 0, &o, 0);
    ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
    if (o.level == 0) ASSERT(wire.len > N);
    ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
    ASSERT(bytes_eq(&msg, data, N));
    wsn_buf_free(&wire);
    wsn_buf_free(&msg);
    wsn_pmd_codec_free(&s);
    wsn_pmd_codec_free(&c);
  }
}

TEST(bad_zlib_options) {
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.level = 12;
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s;
  wsn_buf_t wire = {0};
  wsn_pmd_codec_init(&s, &p, 1, &o, 0);
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &wire), WSN_PMD_E_ZLIB);
  ASSERT_EQ(s.error_code, Z_STREAM_ERROR);
  ASSERT_EQ(wire.len, 0);
  ASSERT_EQ(wsn_pmd_codec_memory(&s), 0);
  /* Window bits out of range (a nonsense option ws would also fail on). */
  wsn_pmd_options_init(&o);
  p = params(0, 16);
  wsn_pmd_codec_init(&s, &p, 1, &o, 0);
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &wire), WSN_PMD_E_ZLIB);
  ASSERT_EQ(wsn_pmd_decompress(&s, HELLO, 5, 1, &wire), WSN_PMD_E_ZLIB);
  wsn_buf_free(&wire);
  wsn_pmd_codec_free(&s);
}

/* ---- codec: limits and bad data -------------------------------------------- */

/* A zip bomb: the first piece inflates to 1 MiB of zeros, and `repeat`,
 * about 1 KB, to another 1 MiB each time it is fed again (after a sync
 * flush it only refers back to zeros). */
static void make_bomb(wsn_buf_t *first, wsn_buf_t *repeat) {
  enum { MB = 1 << 20 };
  uint8_t *zeros = calloc(1, MB);
  z_stream z;
  memset(&z, 0, sizeof(z));
  deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  wsn_buf_t *outs[2] = {first, repeat};
  for (int i = 0; i < 2; i++) {
    wsn_buf_reserve(outs[i], 8192);
    z.next_in = zeros;
    z.avail_in = MB;
    z.next_out = outs[i]->base;
    z.avail_out = (unsigned)outs[i]->cap;
    deflate(&z, Z_SYNC_FLUSH);
    outs[i]->len = outs[i]->cap - z.avail_out;
  }
  deflateEnd(&z);
  free(zeros);
}

static void bomb_test(int *failed_, uint64_t limit, size_t max_rounds) {
  wsn_buf_t first = {0}, repeat = {0}, msg = {0};
  make_bomb(&first, &repeat);
  ASSERT(first.len + repeat.len < 4096);
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  pair(&s, &c, &p, limit);
  int r = wsn_pmd_decompress(&c, first.base, first.len, 0, &msg);
  size_t rounds = 0;
  while (r == WSN_PMD_OK && rounds < max_rounds) {
    r = wsn_pmd_decompress(&c, repeat.base, repeat.len, 0, &msg);
    rounds++;
  }
  ASSERT_EQ(r, WSN_PMD_E_TOO_BIG);
  /* It stopped at the first byte over the limit, and the buffer never had
   * room for more. */
  ASSERT_EQ(msg.len, limit + 1);
  ASSERT(msg.cap <= limit + 1);
  ASSERT_EQ(rounds, limit >> 20);
  ASSERT(c.inf == NULL);
  ASSERT_EQ(wsn_pmd_codec_memory(&c), 0);
  wsn_buf_free(&first);
  wsn_buf_free(&repeat);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(zip_bomb_stops_at_limit) {
  /* Fed until it is refused; without a limit it would inflate to 1 GiB. */
  bomb_test(failed_, 1 << 20, 1024);
  if (*failed_) return;
  bomb_test(failed_, 3 << 20, 1024);
}

TEST(zip_bomb_ws_default_limit) {
  /* ws's default maxPayload, 100 MiB: the bomb (a few KB fed as ~100
   * fragments) is stopped at 100 MiB + 1. */
  bomb_test(failed_, 100u << 20, 1024);
}

TEST(limit_exact_boundary) {
  enum { N = 10000 };
  uint8_t data[N + 1];
  make_text(data, N + 1, 11);
  for (int over = 0; over <= 1; over++) {
    wsn_pmd_params_t p = params(0, 0);
    wsn_pmd_codec_t s, c;
    wsn_buf_t wire = {0}, msg = {0};
    pair(&s, &c, &p, N);
    /* Two fragments, the limit spanning them. */
    ASSERT_EQ(wsn_pmd_compress(&s, data, N + over, 1, &wire), WSN_PMD_OK);
    int r = wsn_pmd_decompress(&c, wire.base, wire.len / 2, 0, &msg);
    ASSERT_EQ(r, WSN_PMD_OK);
    r = wsn_pmd_decompress(&c, wire.base + wire.len / 2,
                           wire.len - wire.len / 2, 1, &msg);
    ASSERT_EQ(r, over ? WSN_PMD_E_TOO_BIG : WSN_PMD_OK);
    if (!over) ASSERT(bytes_eq(&msg, data, N));
    /* The limit is per message: the next N bytes are fine again. */
    if (!over) {
      wire.len = msg.len = 0;
      ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
      ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg),
                WSN_PMD_OK);
      ASSERT(bytes_eq(&msg, data, N));
    }
    wsn_buf_free(&wire);
    wsn_buf_free(&msg);
    wsn_pmd_codec_free(&s);
    wsn_pmd_codec_free(&c);
  }
}

static void corrupt_case(int *failed_, const uint8_t *in, size_t n,
                         const char *msg) {
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t out = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_decompress(&c, in, n, 1, &out), WSN_PMD_E_DATA);
  ASSERT_STR_EQ(c.error, msg);
  ASSERT_EQ(c.error_code, Z_DATA_ERROR);
  ASSERT_STR_EQ(wsn_pmd_zlib_code_name(c.error_code), "Z_DATA_ERROR");
  ASSERT(c.inf == NULL);
  ASSERT_EQ(wsn_pmd_codec_memory(&c), 0);
  wsn_buf_free(&out);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(corrupt_streams) {
  /* Messages as Node's zlib reports them (ws emits these with code
   * Z_DATA_ERROR, errno -3, close 1007). */
  static const uint8_t bad_type[] = {0xff, 0xff, 0xff};
  static const uint8_t bad_stored[] = {0x00, 0x05, 0x00, 0x00, 0x00};
  static const uint8_t too_far[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  corrupt_case(failed_, bad_type, sizeof(bad_type), "invalid block type");
  if (*failed_) return;
  corrupt_case(failed_, bad_stored, sizeof(bad_stored),
               "invalid stored block lengths");
  if (*failed_) return;
  /* RFC 7.2.3.2's second message refers to a first one never seen. */
  corrupt_case(failed_, too_far, sizeof(too_far),
               "invalid distance too far back");
}

TEST(corrupt_after_good_fragments) {
  enum { N = 3000 };
  uint8_t data[N];
  make_text(data, N, 1);
  wsn_pmd_params_t p = params(0, 0);
  wsn_pmd_codec_t s, c;
  wsn_buf_t wire = {0}, msg = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_compress(&s, data, N, 1, &wire), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, 10, 0, &msg), WSN_PMD_OK);
  memset(wire.base + 10, 0xff, wire.len - 10);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base + 10, wire.len - 10, 1, &msg),
            WSN_PMD_E_DATA);
  ASSERT(c.error != NULL && strlen(c.error) > 0);
  wsn_buf_free(&wire);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
}

TEST(zlib_code_names) {
  ASSERT_STR_EQ(wsn_pmd_zlib_code_name(Z_BUF_ERROR), "Z_BUF_ERROR");
  ASSERT_STR_EQ(wsn_pmd_zlib_code_name(Z_NEED_DICT), "Z_NEED_DICT");
  ASSERT_STR_EQ(wsn_pmd_zlib_code_name(42), "Z_UNKNOWN");
}

/* ---- codec: memory ------------------------------------------------------------ */

static size_t deflate_mem(int bits, int mem_level) {
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  o.mem_level = mem_level;
  wsn_pmd_params_t p = params(0, bits);
  wsn_pmd_codec_t s;
  wsn_buf_t wire = {0};
  wsn_pmd_codec_init(&s, &p, 1, &o, 0);
  wsn_pmd_compress(&s, HELLO, 5, 1, &wire);
  size_t m = wsn_pmd_codec_memory(&s);
  wsn_buf_free(&wire);
  wsn_pmd_codec_free(&s);
  return m;
}

static size_t inflate_mem(int bits) {
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  wsn_pmd_options_t o;
  wsn_pmd_options_init(&o);
  wsn_pmd_params_t p = params(0, bits);
  wsn_pmd_codec_t c;
  wsn_buf_t msg = {0};
  wsn_pmd_codec_init(&c, &p, 0, &o, 0);
  wsn_pmd_decompress(&c, hello, sizeof(hello), 1, &msg);
  size_t m = wsn_pmd_codec_memory(&c);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&c);
  return m;
}

TEST(memory_per_state) {
  /* deflate: window 2 * 2^wb, prev 2 * 2^wb, head 2 * 2^(ml+7), pending
   * 4 * 2^(ml+6), plus the state; inflate: state plus a 2^wb window. */
  size_t d15 = deflate_mem(15, 8), d9 = deflate_mem(9, 8);
  size_t d9m1 = deflate_mem(9, 1), i15 = inflate_mem(15), i8 = inflate_mem(8);
  if (getenv("WSN_PRINT_MEMORY")) {
    for (int ml = 1; ml <= 9; ml += ml == 1 ? 6 : 1)
      for (int wb = 9; wb <= 15; wb += 3)
        printf("deflate wb %d ml %d: %zu\n", wb, ml, deflate_mem(wb, ml));
    for (int wb = 8; wb <= 15; wb++)
      printf("inflate wb %d: %zu\n", wb, inflate_mem(wb));
  }
  ASSERT(d15 > 256 * 1024 && d15 < 256 * 1024 + 12 * 1024);
  ASSERT(d9 > 128 * 1024 + 2048 && d9 < 128 * 1024 + 16 * 1024);
  ASSERT(d9m1 < 12 * 1024);
  ASSERT(i15 > 32 * 1024 && i15 < 32 * 1024 + 12 * 1024);
  ASSERT(i8 < 12 * 1024);
}

TEST(lazy_and_idle) {
  wsn_pmd_params_t p = params(0, 0);
  p.server_no_context_takeover = 1; /* server: resets its deflater */
  wsn_pmd_codec_t s, c;
  wsn_buf_t wire = {0}, msg = {0};
  pair(&s, &c, &p, 0);
  ASSERT_EQ(wsn_pmd_codec_memory(&s), 0); /* nothing until first use */
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &wire), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
  wire.len = 0;
  ASSERT_EQ(wsn_pmd_compress(&c, HELLO, 5, 1, &wire), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&s, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
  size_t before = wsn_pmd_codec_memory(&s);
  /* Server: its deflater goes (no takeover), its inflater stays (the
   * client keeps context). Client: the reverse. */
  wsn_pmd_codec_idle(&s);
  wsn_pmd_codec_idle(&c);
  ASSERT(s.def == NULL && s.inf != NULL);
  ASSERT(c.def != NULL && c.inf == NULL);
  ASSERT(wsn_pmd_codec_memory(&s) < before);
  /* And they come back on use, still agreeing. */
  for (int i = 0; i < 3; i++) {
    wire.len = msg.len = 0;
    ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 5, 1, &wire), WSN_PMD_OK);
    ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
    ASSERT(bytes_eq(&msg, HELLO, 5));
    wsn_pmd_codec_idle(&s);
    wsn_pmd_codec_idle(&c);
  }
  /* Mid-message, nothing is freed. */
  wire.len = msg.len = 0;
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO, 2, 0, &wire), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 0, &msg), WSN_PMD_OK);
  wsn_pmd_codec_idle(&s);
  wsn_pmd_codec_idle(&c);
  ASSERT(s.def != NULL && c.inf != NULL);
  wire.len = 0;
  ASSERT_EQ(wsn_pmd_compress(&s, HELLO + 2, 3, 1, &wire), WSN_PMD_OK);
  ASSERT_EQ(wsn_pmd_decompress(&c, wire.base, wire.len, 1, &msg), WSN_PMD_OK);
  ASSERT(bytes_eq(&msg, HELLO, 5));
  wsn_buf_free(&wire);
  wsn_buf_free(&msg);
  wsn_pmd_codec_free(&s);
  wsn_pmd_codec_free(&c);
  ASSERT_EQ(wsn_pmd_codec_memory(&s), 0);
  ASSERT_EQ(wsn_pmd_codec_memory(&c), 0);
}

RUN_TESTS()
