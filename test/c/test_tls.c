/*
 * Tests for src/tls.c. The peer is an OpenSSL server in memory (an SSL with
 * its own memory BIOs), with keys and certificates made here with OpenSSL's
 * APIs. Expected error codes and messages were taken from Node 20.20.2
 * (OpenSSL 3.0.19) itself: tls.connect to servers with the same kinds of
 * certificates, tls.createSecureContext with the same bad options, and
 * tls.checkServerIdentity on the certificates printed by
 * WSN_TLS_DUMP_CERTS=1.
 */
#include "tls.h"
#include "runner.h"

#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ASan's allocator statistics (weak: absent without ASan). */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* ---- certificates ------------------------------------------------------- */

typedef struct {
  EVP_PKEY *key;
  X509 *cert;
  char *key_pem;
  char *cert_pem;
} cred_t;

static struct {
  int ready;
  cred_t ss;       /* self-signed, CN=localhost, DNS:localhost, IP:127.0.0.1 */
  cred_t ss_exp;   /* the same key, expired */
  cred_t ca;       /* root CA */
  cred_t inter;    /* intermediate CA, signed by ca */
  cred_t leaf;     /* signed by ca: DNS:localhost, IP:127.0.0.1 */
  cred_t leaf_exp; /* signed by ca, expired */
  cred_t leaf2;    /* signed by inter */
  cred_t cn_only;  /* self-signed, CN=localhost, no subjectAltName */
  cred_t odd;      /* self-signed, every kind of subjectAltName */
  cred_t client;   /* client certificate, signed by ca */
  char *ss_key_enc; /* ss.key encrypted with "secret" */
} F;

static char *bio_to_str(BIO *bio) {
  char *p = NULL;
  long n = BIO_get_mem_data(bio, &p);
  char *s = malloc((size_t)n + 1);
  memcpy(s, p, (size_t)n);
  s[n] = '\0';
  BIO_free(bio);
  return s;
}

static char *cert_pem(X509 *x) {
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  return bio_to_str(bio);
}

static char *key_pem(EVP_PKEY *k, const char *pass) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (pass == NULL)
    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
  else
    PEM_write_bio_PKCS8PrivateKey(bio, k, EVP_aes_256_cbc(), NULL, 0, NULL,
                                  (void *)pass);
  return bio_to_str(bio);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer (self-signed if NULL), valid from
 * `from` to `to` days from now. */
static void make_cred(cred_t *c, EVP_PKEY *key, const char *cn,
                      const char *san, const cred_t *issuer, int is_ca,
                      long from, long to) {
  static long serial = 1;
  c->key = key ? key : EVP_EC_gen("P-256");
  if (key) EVP_PKEY_up_ref(key);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x), to * 86400);
  X509_set_pubkey(x, c->key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509 *icert = issuer ? issuer->cert : x;
  X509_set_issuer_name(x, X509_get_subject_name(icert));
  if (is_ca) {
    add_ext(x, icert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, icert, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  if (san != NULL) add_ext(x, icert, NID_subject_alt_name, san);
  X509_sign(x, issuer ? issuer->key : c->key, EVP_sha256());
  c->cert = x;
  c->cert_pem = cert_pem(x);
  c->key_pem = key_pem(c->key, NULL);
}

/* subjectAltName with names X509V3_EXT_conf cannot write (a comma in a DNS
 * name), to check the escaping Node applies when printing them. */
static void add_odd_san(X509 *x) {
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  struct { int type; const char *v; } ia5[] = {
      {GEN_DNS, "a,b.example"},     {GEN_DNS, "localhost2"},
      {GEN_EMAIL, "x@y.example"},   {GEN_URI, "https://x.example/p?q=1,2"},
      {GEN_DNS, "quote\"d.example"}};
  for (size_t i = 0; i < sizeof(ia5) / sizeof(ia5[0]); i++) {
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, ia5[i].v, -1);
    GENERAL_NAME *g = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(g, ia5[i].type, s);
    sk_GENERAL_NAME_push(names, g);
  }
  const unsigned char ip4[4] = {127, 0, 0, 1};
  const unsigned char ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                 0,    0,    0,    0,    0, 0, 0, 1};
  const unsigned char *ips[] = {ip4, ip6};
  for (int i = 0; i < 2; i++) {
    ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(s, ips[i], i == 0 ? 4 : 16);
    GENERAL_NAME *g = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(g, GEN_IPADD, s);
    sk_GENERAL_NAME_push(names, g);
  }
  GENERAL_NAME *g = GENERAL_NAME_new();
  GENERAL_NAME_set0_value(g, GEN_RID, OBJ_txt2obj("1.2.3.4", 1));
  sk_GENERAL_NAME_push(names, g);
  X509_NAME *dn = X509_NAME_new();
  X509_NAME_add_entry_by_txt(dn, "O", MBSTRING_ASC,
                             (const unsigned char *)"Org, Inc", -1, -1, 0);
  X509_NAME_add_entry_by_txt(dn, "CN", MBSTRING_ASC,
                             (const unsigned char *)"Foo", -1, -1, 0);
  g = GENERAL_NAME_new();
  GENERAL_NAME_set0_value(g, GEN_DIRNAME, dn);
  sk_GENERAL_NAME_push(names, g);
  X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0);
  GENERAL_NAMES_free(names);
}

static void free_cred(cred_t *c) {
  EVP_PKEY_free(c->key);
  X509_free(c->cert);
  free(c->key_pem);
  free(c->cert_pem);
}

__attribute__((constructor)) static void fixtures(void) {
  if (F.ready) return;
  F.ready = 1;
  const char *san = "DNS:localhost,IP:127.0.0.1";
  make_cred(&F.ss, NULL, "localhost", san, NULL, 0, -1, 30);
  make_cred(&F.ss_exp, F.ss.key, "localhost", san, NULL, 0, -60, -30);
  make_cred(&F.ca, NULL, "Test CA", NULL, NULL, 1, -1, 30);
  make_cred(&F.inter, NULL, "Test Intermediate", NULL, &F.ca, 1, -1, 30);
  make_cred(&F.leaf, NULL, "localhost", san, &F.ca, 0, -1, 30);
  make_cred(&F.leaf_exp, F.leaf.key, "localhost", san, &F.ca, 0, -60, -30);
  make_cred(&F.leaf2, NULL, "localhost", san, &F.inter, 0, -1, 30);
  make_cred(&F.cn_only, NULL, "localhost", NULL, NULL, 0, -1, 30);
  make_cred(&F.client, NULL, "client", NULL, &F.ca, 0, -1, 30);
  make_cred(&F.odd, NULL, "odd", NULL, NULL, 0, -1, 30);
  add_odd_san(F.odd.cert);
  X509_sign(F.odd.cert, F.odd.key, EVP_sha256());
  free(F.odd.cert_pem);
  F.odd.cert_pem = cert_pem(F.odd.cert);
  F.ss_key_enc = key_pem(F.ss.key, "secret");
  if (getenv("WSN_TLS_DUMP_CERTS") != NULL)
    fprintf(stderr, "%s%s", F.odd.cert_pem, F.cn_only.cert_pem);
}

__attribute__((destructor)) static void free_fixtures(void) {
  if (!F.ready) return;
  cred_t *all[] = {&F.ss,    &F.ss_exp, &F.ca,      &F.inter, &F.leaf,
                   &F.leaf_exp, &F.leaf2, &F.cn_only, &F.odd, &F.client};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) free_cred(all[i]);
  free(F.ss_key_enc);
}

/* ---- the in-memory server ----------------------------------------------- */

typedef struct {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rbio, *wbio; /* memory BIOs: what the server reads / writes */
  char sni[256];    /* servername the callback saw */
  int sni_calls;
  int done;
} server_t;

typedef struct {
  int max_version;           /* 0: TLS 1.3 */
  const cred_t *cred;        /* certificate and key */
  const cred_t *chain[2];    /* extra chain certificates sent */
  const cred_t *client_ca;   /* require a client certificate from this CA */
} server_opts_t;

static int sni_cb(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  server_t *srv = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  srv->sni_calls++;
  snprintf(srv->sni, sizeof(srv->sni), "%s", name ? name : "");
  return SSL_TLSEXT_ERR_OK;
}

static void server_init(server_t *srv, const server_opts_t *o) {
  memset(srv, 0, sizeof(*srv));
  srv->ctx = SSL_CTX_new(TLS_server_method());
  if (o->max_version) SSL_CTX_set_max_proto_version(srv->ctx, o->max_version);
  SSL_CTX_use_certificate(srv->ctx, o->cred->cert);
  SSL_CTX_use_PrivateKey(srv->ctx, o->cred->key);
  for (int i = 0; i < 2 && o->chain[i]; i++)
    SSL_CTX_add1_chain_cert(srv->ctx, o->chain[i]->cert);
  SSL_CTX_set_tlsext_servername_callback(srv->ctx, sni_cb);
  SSL_CTX_set_tlsext_servername_arg(srv->ctx, srv);
  if (o->client_ca) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(srv->ctx), o->client_ca->cert);
    SSL_CTX_set_verify(srv->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  srv->ssl = SSL_new(srv->ctx);
  srv->rbio = BIO_new(BIO_s_mem());
  srv->wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(srv->rbio, -1);
  SSL_set_bio(srv->ssl, srv->rbio, srv->wbio);
  SSL_set_accept_state(srv->ssl);
}

static void server_free(server_t *srv) {
  SSL_free(srv->ssl);
  SSL_CTX_free(srv->ctx);
  srv->ssl = NULL;
  srv->ctx = NULL;
}

/* ---- client + server pair ----------------------------------------------- */

typedef struct {
  wsn_tls_ctx_t *ctx;
  wsn_tls_session_t *s;
  server_t srv;
  uint32_t seed;
  size_t max_chunk; /* ciphertext to the client in chunks of 1..max_chunk */
  int mode;         /* 0: feed + handshake/read, 1: input */
  int server_failed;
} pair_t;

static uint32_t rnd(uint32_t *seed) {
  uint32_t x = *seed;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *seed = x;
}

static wsn_tls_ctx_t *client_ctx(const char *ca, int reject) {
  wsn_tls_ctx_options_t o = {0};
  o.ca = ca;
  o.ca_len = ca ? strlen(ca) : 0;
  o.reject_unauthorized = reject;
  wsn_tls_error_t err;
  wsn_tls_ctx_t *c = wsn_tls_ctx_new(&o, &err);
  if (c == NULL) {
    fprintf(stderr, "ctx: %s %s\n", err.code, err.message);
    wsn_tls_error_clear(&err);
  }
  return c;
}

/* Client output -> server (whole). */
static void to_server(pair_t *p) {
  wsn_buf_t *out = wsn_tls_session_output(p->s);
  if (out->len > 0) {
    BIO_write(p->srv.rbio, out->base, (int)out->len);
    wsn_tls_session_output_consume(p->s, out->len);
  }
}

/* Server step: handshake until done, then nothing (reads are explicit). */
static void server_step(pair_t *p) {
  if (p->srv.done || p->server_failed) return;
  ERR_clear_error();
  int r = SSL_do_handshake(p->srv.ssl);
  if (r == 1) {
    p->srv.done = 1;
  } else if (SSL_get_error(p->srv.ssl, r) != SSL_ERROR_WANT_READ) {
    p->server_failed = 1;
  }
  ERR_clear_error();
}

/* Server output -> client in chunks, each followed by a client step.
 * Plaintext the client decrypts goes to `plain` (if non-NULL). Returns the
 * last client status. */
static int to_client(pair_t *p, wsn_buf_t *plain) {
  int st = WSN_TLS_AGAIN;
  uint8_t chunk[65536];
  wsn_buf_t sink = {0};
  if (plain == NULL) plain = &sink;
  for (;;) {
    size_t want = p->max_chunk > 1 ? 1 + rnd(&p->seed) % p->max_chunk : 1;
    if (want > sizeof(chunk)) want = sizeof(chunk);
    int n = BIO_read(p->srv.wbio, chunk, (int)want);
    if (n <= 0) break;
    if (p->mode == 1) {
      st = wsn_tls_session_input(p->s, chunk, (size_t)n, plain);
    } else {
      wsn_tls_session_feed(p->s, chunk, (size_t)n);
      st = wsn_tls_session_handshake_done(p->s)
               ? wsn_tls_session_read_buf(p->s, plain)
               : wsn_tls_session_handshake(p->s);
    }
    if (st == WSN_TLS_ERROR) break;
  }
  wsn_buf_free(&sink);
  return st;
}

/* Runs the handshake to its end. Returns the client's status. */
static int handshake(pair_t *p) {
  int st = wsn_tls_session_handshake(p->s);
  for (int i = 0; i < 20 && st != WSN_TLS_ERROR; i++) {
    to_server(p);
    server_step(p);
    st = to_client(p, NULL);
    if (st != WSN_TLS_ERROR && !wsn_tls_session_handshake_done(p->s))
      st = wsn_tls_session_handshake(p->s);
    if (wsn_tls_session_handshake_done(p->s) && p->srv.done &&
        wsn_tls_session_output(p->s)->len == 0)
      break;
  }
  to_server(p); /* the client's last flight, or its alert */
  server_step(p);
  if (st == WSN_TLS_ERROR) return st;
  return wsn_tls_session_handshake_done(p->s) ? WSN_TLS_OK : st;
}

static void pair_init(pair_t *p, wsn_tls_ctx_t *ctx, const char *servername,
                      const char *host, const server_opts_t *so) {
  memset(p, 0, sizeof(*p));
  p->ctx = ctx;
  p->s = wsn_tls_session_new(ctx, servername, host);
  p->seed = 2463534242u;
  p->max_chunk = 4096;
  server_init(&p->srv, so);
}

static void pair_free(pair_t *p) {
  wsn_tls_session_free(p->s);
  wsn_tls_ctx_release(p->ctx);
  server_free(&p->srv);
}

/* A pair whose client trusts ca (NULL: nobody) and checks `host`. */
static int connect_to(pair_t *p, const cred_t *server_cred, const char *ca,
                      int reject, const char *host) {
  fixtures();
  server_opts_t so = {0};
  so.cred = server_cred;
  pair_init(p, client_ctx(ca, reject), host, host, &so);
  return handshake(p);
}

static const char *code_of(pair_t *p) {
  const wsn_tls_error_t *e = wsn_tls_session_error(p->s);
  return e ? e->code : "(none)";
}

static const char *message_of(pair_t *p) {
  const wsn_tls_error_t *e = wsn_tls_session_error(p->s);
  return e && e->message ? e->message : "(none)";
}

/* ---- handshakes and verification ---------------------------------------- */

TEST(handshake_with_ca) {
  pair_t p;
  int st = connect_to(&p, &F.ss, F.ss.cert_pem, 1, "localhost");
  ASSERT_EQ(st, WSN_TLS_OK);
  ASSERT(p.srv.done);
  ASSERT_STR_EQ(SSL_get_version(p.srv.ssl), "TLSv1.3");
  ASSERT(wsn_tls_session_error(p.s) == NULL);
  /* an idle session holds no buffers of its own */
  ASSERT_EQ(wsn_tls_session_output(p.s)->len, 0);
  pair_free(&p);
}

TEST(handshake_fed_byte_by_byte) {
  fixtures();
  for (int mode = 0; mode < 2; mode++) {
    server_opts_t so = {0};
    so.cred = &F.ss;
    pair_t p;
    pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
    p.max_chunk = 1;
    p.mode = mode;
    int st = handshake(&p);
    ASSERT_EQ(st, WSN_TLS_OK);
    ASSERT(p.srv.done);
    pair_free(&p);
  }
}

TEST(handshake_tls12) {
  fixtures();
  server_opts_t so = {0};
  so.cred = &F.ss;
  so.max_version = TLS1_2_VERSION;
  pair_t p;
  pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
  ASSERT_EQ(handshake(&p), WSN_TLS_OK);
  ASSERT_STR_EQ(SSL_get_version(p.srv.ssl), "TLSv1.2");
  pair_free(&p);
}

TEST(self_signed_without_ca) {
  pair_t p;
  int st = connect_to(&p, &F.ss, NULL, 1, "localhost");
  ASSERT_EQ(st, WSN_TLS_ERROR);
  ASSERT_STR_EQ(code_of(&p), "DEPTH_ZERO_SELF_SIGNED_CERT");
  ASSERT_STR_EQ(message_of(&p), "self-signed certificate");
  ASSERT(!wsn_tls_session_handshake_done(p.s));
  /* OpenSSL's alert went to the server, which failed too */
  ASSERT(p.server_failed);
  /* sticky */
  ASSERT_EQ(wsn_tls_session_handshake(p.s), WSN_TLS_ERROR);
  ASSERT_EQ(wsn_tls_session_write(p.s, "x", 1), WSN_TLS_ERROR);
  pair_free(&p);
}

TEST(verification_off) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, NULL, 0, "localhost"), WSN_TLS_OK);
  pair_free(&p);
  /* nothing is checked: expired, unknown issuer, wrong name */
  ASSERT_EQ(connect_to(&p, &F.ss_exp, NULL, 0, "example.com"), WSN_TLS_OK);
  pair_free(&p);
}

TEST(chain_errors_as_node) {
  fixtures();
  struct {
    const cred_t *cred, *chain0, *chain1;
    const char *ca;
    const char *host;
    const char *code, *message;
  } cases[] = {
      {&F.leaf, NULL, NULL, NULL, "localhost",
       "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
       "unable to verify the first certificate"},
      {&F.leaf, &F.ca, NULL, NULL, "localhost", "SELF_SIGNED_CERT_IN_CHAIN",
       "self-signed certificate in certificate chain"},
      {&F.leaf2, &F.inter, NULL, NULL, "localhost",
       "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
       "unable to get local issuer certificate"},
      {&F.leaf_exp, NULL, NULL, F.ca.cert_pem, "localhost", "CERT_HAS_EXPIRED",
       "certificate has expired"},
      /* Node reports the last chain error: expiry, after self-signed */
      {&F.ss_exp, NULL, NULL, NULL, "localhost", "CERT_HAS_EXPIRED",
       "certificate has expired"},
      /* a chain error wins over a name mismatch */
      {&F.ss, NULL, NULL, NULL, "example.com", "DEPTH_ZERO_SELF_SIGNED_CERT",
       "self-signed certificate"},
      {&F.leaf_exp, NULL, NULL, F.ca.cert_pem, "example.com",
       "CERT_HAS_EXPIRED", "certificate has expired"},
      /* a CA is trusted, the intermediate is sent by the server */
      {&F.leaf2, &F.inter, NULL, F.ca.cert_pem, "localhost", NULL, NULL},
      {&F.leaf, &F.ca, NULL, F.ca.cert_pem, "localhost", NULL, NULL},
      /* the leaf's CA among others, garbage between (skipped, as Node) */
      {&F.leaf, NULL, NULL, NULL, "localhost", NULL, NULL},
  };
  char several[16384];
  snprintf(several, sizeof(several), "junk\n%s\n%s", F.ss.cert_pem,
           F.ca.cert_pem);
  cases[9].ca = several;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    server_opts_t so = {0};
    so.cred = cases[i].cred;
    so.chain[0] = cases[i].chain0;
    so.chain[1] = cases[i].chain1;
    pair_t p;
    pair_init(&p, client_ctx(cases[i].ca, 1), cases[i].host, cases[i].host,
              &so);
    int st = handshake(&p);
    if (cases[i].code == NULL) {
      if (st != WSN_TLS_OK) FAIL_("case %zu: %s", i, message_of(&p));
    } else {
      ASSERT_EQ(st, WSN_TLS_ERROR);
      ASSERT_STR_EQ(code_of(&p), cases[i].code);
      ASSERT_STR_EQ(message_of(&p), cases[i].message);
    }
    pair_free(&p);
  }
}

TEST(hostname_mismatch_name) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "example.com"),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(code_of(&p), "ERR_TLS_CERT_ALTNAME_INVALID");
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: Host: "
                "example.com. is not in the cert's altnames: DNS:localhost, "
                "IP Address:127.0.0.1");
  pair_free(&p);
  /* Node's unfqdn: the trailing dot is not part of the name */
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "example.com."),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: Host: "
                "example.com. is not in the cert's altnames: DNS:localhost, "
                "IP Address:127.0.0.1");
  pair_free(&p);
}

TEST(hostname_mismatch_ip) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "10.0.0.1"),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(code_of(&p), "ERR_TLS_CERT_ALTNAME_INVALID");
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: IP: "
                "10.0.0.1 is not in the cert's list: 127.0.0.1");
  pair_free(&p);
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "[::1]"), WSN_TLS_ERROR);
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: IP: "
                "::1 is not in the cert's list: 127.0.0.1");
  pair_free(&p);
  /* a name that only the CN could match is not an IP match */
  ASSERT_EQ(connect_to(&p, &F.cn_only, F.cn_only.cert_pem, 1, "127.0.0.1"),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: IP: "
                "127.0.0.1 is not in the cert's list: ");
  pair_free(&p);
}

TEST(hostname_matches) {
  const char *hosts[] = {"localhost", "LocalHost", "localhost.", "127.0.0.1"};
  for (size_t i = 0; i < 4; i++) {
    pair_t p;
    int st = connect_to(&p, &F.ss, F.ss.cert_pem, 1, hosts[i]);
    if (st != WSN_TLS_OK) FAIL_("%s: %s", hosts[i], message_of(&p));
    pair_free(&p);
  }
}

TEST(hostname_cn_only) {
  pair_t p;
  /* no DNS names: the subject CN is matched, as Node does */
  ASSERT_EQ(connect_to(&p, &F.cn_only, F.cn_only.cert_pem, 1, "localhost"),
            WSN_TLS_OK);
  pair_free(&p);
  ASSERT_EQ(connect_to(&p, &F.cn_only, F.cn_only.cert_pem, 1, "example.com"),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: Host: "
                "example.com. is not cert's CN: localhost");
  pair_free(&p);
}

TEST(hostname_mismatch_altnames_printed_as_node) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.odd, F.odd.cert_pem, 1, "example.com"),
            WSN_TLS_ERROR);
  /* tls.checkServerIdentity('example.com', { subjectaltname:
   * new X509Certificate(pem).subjectAltName }) on Node 20.20.2 */
  ASSERT_STR_EQ(
      message_of(&p),
      "Hostname/IP does not match certificate's altnames: Host: example.com. "
      "is not in the cert's altnames: DNS:\"a\\u002cb.example\", "
      "DNS:localhost2, email:x@y.example, "
      "URI:\"https://x.example/p?q=1\\u002c2\", DNS:\"quote\\\"d.example\", "
      "IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, "
      "Registered ID:1.2.3.4, DirName:\"CN=Foo\\u002cO=Org\\\\\\u002c Inc\"");
  pair_free(&p);
  ASSERT_EQ(connect_to(&p, &F.odd, F.odd.cert_pem, 1, "10.1.2.3"),
            WSN_TLS_ERROR);
  ASSERT_STR_EQ(message_of(&p),
                "Hostname/IP does not match certificate's altnames: IP: "
                "10.1.2.3 is not in the cert's list: 127.0.0.1, 2001:db8::1");
  pair_free(&p);
  ASSERT_EQ(connect_to(&p, &F.odd, F.odd.cert_pem, 1, "2001:DB8::1"),
            WSN_TLS_OK);
  pair_free(&p);
}

TEST(sni) {
  fixtures();
  struct { const char *servername, *sent; } cases[] = {
      {"localhost", "localhost"}, {"127.0.0.1", NULL}, {"::1", NULL},
      {"", NULL},                 {NULL, NULL}};
  for (size_t i = 0; i < 5; i++) {
    server_opts_t so = {0};
    so.cred = &F.ss;
    pair_t p;
    pair_init(&p, client_ctx(NULL, 0), cases[i].servername, NULL, &so);
    ASSERT_EQ(handshake(&p), WSN_TLS_OK);
    if (cases[i].sent) {
      ASSERT_EQ(p.srv.sni_calls, 1);
      ASSERT_STR_EQ(p.srv.sni, cases[i].sent);
    } else {
      /* OpenSSL calls the servername callback without a name */
      ASSERT_STR_EQ(p.srv.sni, "");
      ASSERT(SSL_get_servername(p.srv.ssl, TLSEXT_NAMETYPE_host_name) == NULL);
    }
    pair_free(&p);
  }
}

/* ---- client certificates ------------------------------------------------ */

static int client_cert_pair(pair_t *p, wsn_tls_ctx_options_t *o,
                            int max_version) {
  fixtures();
  memset(p, 0, sizeof(*p));
  o->ca = F.ss.cert_pem;
  o->ca_len = strlen(F.ss.cert_pem);
  o->reject_unauthorized = 1;
  wsn_tls_error_t err;
  wsn_tls_ctx_t *ctx = wsn_tls_ctx_new(o, &err);
  if (ctx == NULL) {
    fprintf(stderr, "  ctx: %s %s\n", err.code, err.message);
    wsn_tls_error_clear(&err);
    return -2;
  }
  server_opts_t so = {0};
  so.cred = &F.ss;
  so.client_ca = &F.ca;
  so.max_version = max_version;
  pair_init(p, ctx, "localhost", "localhost", &so);
  return handshake(p);
}

TEST(client_certificate_pem) {
  wsn_tls_ctx_options_t o = {0};
  o.cert = F.client.cert_pem;
  o.cert_len = strlen(F.client.cert_pem);
  o.key = F.client.key_pem;
  o.key_len = strlen(F.client.key_pem);
  pair_t p;
  ASSERT_EQ(client_cert_pair(&p, &o, 0), WSN_TLS_OK);
  ASSERT(p.srv.done);
  ASSERT_EQ(SSL_get_verify_result(p.srv.ssl), X509_V_OK);
  X509 *peer = SSL_get1_peer_certificate(p.srv.ssl);
  ASSERT(peer != NULL);
  ASSERT_EQ(X509_cmp(peer, F.client.cert), 0);
  X509_free(peer);
  pair_free(&p);
}

TEST(client_certificate_pfx) {
  fixtures();
  STACK_OF(X509) *chain = sk_X509_new_null();
  sk_X509_push(chain, F.ca.cert);
  PKCS12 *p12 = PKCS12_create("pw", "client", F.client.key, F.client.cert,
                              chain, 0, 0, 0, 0, 0);
  sk_X509_free(chain);
  unsigned char *der = NULL;
  int n = i2d_PKCS12(p12, &der);
  PKCS12_free(p12);
  ASSERT(n > 0);
  wsn_tls_ctx_options_t o = {0};
  o.pfx = der;
  o.pfx_len = (size_t)n;
  o.passphrase = "pw";
  pair_t p;
  int st = client_cert_pair(&p, &o, 0);
  if (st == WSN_TLS_OK) {
    X509 *peer = SSL_get1_peer_certificate(p.srv.ssl);
    if (peer == NULL || X509_cmp(peer, F.client.cert) != 0) st = -3;
    X509_free(peer);
  }
  pair_free(&p);
  /* wrong passphrase: Node's LoadPKCS12 throws the bare reason */
  o.passphrase = "nope";
  wsn_tls_error_t err;
  ASSERT(wsn_tls_ctx_new(&o, &err) == NULL);
  OPENSSL_free(der);
  ASSERT_EQ(st, WSN_TLS_OK);
  ASSERT_STR_EQ(err.code, "");
  ASSERT_STR_EQ(err.message, "mac verify failure");
  wsn_tls_error_clear(&err);
}

TEST(client_certificate_missing_tls13) {
  /* TLS 1.3: the client finishes first; the server's alert comes with the
   * next read, as with Node's client (secureConnect, then 'error'). */
  wsn_tls_ctx_options_t o = {0};
  pair_t p;
  memset(&p, 0, sizeof(p));
  client_cert_pair(&p, &o, 0);
  ASSERT(p.server_failed);
  ASSERT_STR_EQ(code_of(&p), "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
  ASSERT(strstr(message_of(&p), ":error:0A00045C:SSL routines:"
                                "ssl3_read_bytes:tlsv13 alert certificate "
                                "required:") != NULL);
  pair_free(&p);
}

TEST(alert_handshake_failure_tls12) {
  /* TLS 1.2: the server rejects the handshake with handshake_failure */
  wsn_tls_ctx_options_t o = {0};
  pair_t p;
  ASSERT_EQ(client_cert_pair(&p, &o, TLS1_2_VERSION), WSN_TLS_ERROR);
  ASSERT_STR_EQ(code_of(&p), "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE");
  const char *m = message_of(&p);
  /* "<thread>:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert
   *  handshake failure:<file>:<line>:SSL alert number 40\n" */
  ASSERT(strstr(m, ":error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert "
                   "handshake failure:") != NULL);
  ASSERT(strstr(m, ":SSL alert number 40\n") != NULL);
  pair_free(&p);
}

/* ---- context errors ----------------------------------------------------- */

static void ctx_error(wsn_tls_ctx_options_t *o, wsn_tls_error_t *err) {
  wsn_tls_ctx_t *c = wsn_tls_ctx_new(o, err);
  if (c != NULL) {
    wsn_tls_ctx_release(c);
    snprintf(err->code, sizeof(err->code), "(ok)");
    err->message = NULL;
  }
}

#define CTX_ERROR(o, code_, message_)                                    \
  do {                                                                   \
    wsn_tls_error_t e_;                                                  \
    ctx_error(&(o), &e_);                                                \
    ASSERT_EQ(ERR_peek_error(), 0); /* never leaves the queue dirty */   \
    ASSERT_STR_EQ(e_.code, code_);                                       \
    if (message_ != NULL) ASSERT_STR_EQ(e_.message, message_);           \
    wsn_tls_error_clear(&e_);                                            \
  } while (0)

#define SET(o, field, s)           \
  do {                             \
    (o).field = (s);               \
    (o).field##_len = strlen(s);   \
  } while (0)

TEST(context_errors_as_node) {
  fixtures();
  wsn_tls_ctx_options_t o = {0};
  SET(o, cert, F.ss.cert_pem);
  SET(o, key, "garbage");
  CTX_ERROR(o, "ERR_OSSL_UNSUPPORTED",
            "error:1E08010C:DECODER routines::unsupported");
  SET(o, key, F.leaf.key_pem);
  CTX_ERROR(o, "ERR_OSSL_X509_KEY_VALUES_MISMATCH",
            "error:05800074:x509 certificate routines::key values mismatch");
  SET(o, key, F.ss_key_enc);
  o.passphrase = "nope";
  CTX_ERROR(o, "ERR_OSSL_BAD_DECRYPT",
            "error:1C800064:Provider routines::bad decrypt");
  o.passphrase = NULL;
  CTX_ERROR(o, "ERR_OSSL_BAD_DECRYPT",
            "error:1C800064:Provider routines::bad decrypt");
  o.passphrase = "secret";
  CTX_ERROR(o, "(ok)", NULL);
  SET(o, cert, "garbage");
  CTX_ERROR(o, "ERR_OSSL_PEM_NO_START_LINE",
            "error:0480006C:PEM routines::no start line");
  /* Node ignores what follows the last certificate */
  char cert_junk[8192];
  snprintf(cert_junk, sizeof(cert_junk), "%sjunk", F.ss.cert_pem);
  SET(o, cert, cert_junk);
  CTX_ERROR(o, "(ok)", NULL);
  /* a key without a certificate is accepted at this point, as in Node */
  wsn_tls_ctx_options_t k = {0};
  SET(k, key, F.ss.key_pem);
  CTX_ERROR(k, "(ok)", NULL);
  /* CA text without certificates is no error for Node either */
  wsn_tls_ctx_options_t ca = {0};
  SET(ca, ca, "garbage");
  CTX_ERROR(ca, "(ok)", NULL);
  wsn_tls_ctx_options_t pfx = {0};
  pfx.pfx = (const uint8_t *)"garbage";
  pfx.pfx_len = 7;
  CTX_ERROR(pfx, "", "not enough data");
}

TEST(x509_error_table) {
  struct { long err; const char *code, *message; } cases[] = {
      {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "DEPTH_ZERO_SELF_SIGNED_CERT",
       "self-signed certificate"},
      {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "SELF_SIGNED_CERT_IN_CHAIN",
       "self-signed certificate in certificate chain"},
      {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE,
       "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
       "unable to verify the first certificate"},
      {X509_V_ERR_CERT_HAS_EXPIRED, "CERT_HAS_EXPIRED",
       "certificate has expired"},
      {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
       "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
       "unable to get local issuer certificate"},
      {X509_V_ERR_CERT_NOT_YET_VALID, "CERT_NOT_YET_VALID",
       "certificate is not yet valid"},
      {X509_V_ERR_HOSTNAME_MISMATCH, "HOSTNAME_MISMATCH", "hostname mismatch"},
      {X509_V_ERR_CERT_REVOKED, "CERT_REVOKED", "certificate revoked"},
      {X509_V_ERR_EE_KEY_TOO_SMALL, "UNSPECIFIED",
       "EE certificate key too weak"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *code, *message;
    wsn_tls_x509_error(cases[i].err, &code, &message);
    ASSERT_STR_EQ(code, cases[i].code);
    ASSERT_STR_EQ(message, cases[i].message);
  }
}

/* ---- data --------------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rnd(&seed) >> 24);
}

/* Server -> client: n bytes; the client reads with `how`: 0 read() into a
 * small buffer, 1 read_buf(), 2 input(). */
static int server_to_client(pair_t *p, size_t n, int how, uint32_t seed) {
  uint8_t *data = malloc(n), *got = malloc(n);
  fill(data, n, seed);
  size_t off = 0;
  int ok = 1;
  /* the server writes in pieces, so records and chunks do not line up */
  for (size_t w = 0; w < n;) {
    size_t k = 1 + rnd(&p->seed) % 40000;
    if (k > n - w) k = n - w;
    if (SSL_write(p->srv.ssl, data + w, (int)k) != (int)k) ok = 0;
    w += k;
  }
  uint8_t chunk[65536];
  for (int r; (r = BIO_read(p->srv.wbio, chunk,
                           (int)(1 + rnd(&p->seed) % p->max_chunk))) > 0;) {
    wsn_buf_t plain = {0};
    int st;
    if (how == 2) {
      st = wsn_tls_session_input(p->s, chunk, (size_t)r, &plain);
    } else {
      wsn_tls_session_feed(p->s, chunk, (size_t)r);
      if (how == 1) {
        st = wsn_tls_session_read_buf(p->s, &plain);
      } else {
        uint8_t small[1000];
        size_t got_n;
        while ((st = wsn_tls_session_read(p->s, small, sizeof(small),
                                          &got_n)) == WSN_TLS_OK)
          wsn_buf_append(&plain, small, got_n);
      }
    }
    if (st != WSN_TLS_AGAIN || off + plain.len > n) ok = 0;
    if (ok && plain.len > 0) memcpy(got + off, plain.base, plain.len);
    off += plain.len;
    wsn_buf_free(&plain);
  }
  ok = ok && off == n && memcmp(data, got, n) == 0;
  free(data);
  free(got);
  return ok;
}

/* Client -> server: n bytes written in random pieces. */
static int client_to_server(pair_t *p, size_t n, uint32_t seed) {
  uint8_t *data = malloc(n), *got = malloc(n);
  fill(data, n, seed);
  int ok = 1;
  for (size_t w = 0; w < n;) {
    size_t k = 1 + rnd(&p->seed) % 70000;
    if (k > n - w) k = n - w;
    if (wsn_tls_session_write(p->s, data + w, k) != WSN_TLS_OK) ok = 0;
    w += k;
  }
  to_server(p);
  size_t off = 0;
  for (int r; off < n && (r = SSL_read(p->srv.ssl, got + off,
                                       (int)(n - off))) > 0;)
    off += (size_t)r;
  ok = ok && off == n && memcmp(data, got, n) == 0;
  free(data);
  free(got);
  return ok;
}

TEST(data_round_trips) {
  fixtures();
  const size_t sizes[] = {1, 16385, 1 << 20};
  for (int version = 0; version < 2; version++) {
    server_opts_t so = {0};
    so.cred = &F.ss;
    so.max_version = version ? TLS1_2_VERSION : 0;
    pair_t p;
    pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
    ASSERT_EQ(handshake(&p), WSN_TLS_OK);
    for (size_t i = 0; i < 3; i++) {
      for (int how = 0; how < 3; how++) {
        /* 1 byte chunks for 1 byte, else up to 4 KiB, 16 KiB+, 64 KiB */
        p.max_chunk = sizes[i] == 1 ? 1 : (size_t[]){4096, 17000, 65536}[how];
        if (!server_to_client(&p, sizes[i], how, (uint32_t)(i * 7 + how + 1)))
          FAIL_("server->client %zu bytes, read mode %d, TLS 1.%d", sizes[i],
                how, version ? 2 : 3);
      }
      if (!client_to_server(&p, sizes[i], (uint32_t)i + 100))
        FAIL_("client->server %zu bytes", sizes[i]);
    }
    pair_free(&p);
  }
}

TEST(write_before_handshake_waits) {
  fixtures();
  server_opts_t so = {0};
  so.cred = &F.ss;
  pair_t p;
  pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
  ASSERT_EQ(wsn_tls_session_write(p.s, "GET", 3), WSN_TLS_AGAIN);
  ASSERT_EQ(wsn_tls_session_output(p.s)->len, 0);
  ASSERT_EQ(wsn_tls_session_handshake(p.s), WSN_TLS_AGAIN);
  ASSERT(wsn_tls_session_output(p.s)->len > 0); /* the ClientHello */
  ASSERT_EQ(handshake(&p), WSN_TLS_OK);
  ASSERT_EQ(wsn_tls_session_write(p.s, "GET", 3), WSN_TLS_OK);
  ASSERT(wsn_tls_session_output(p.s)->len > 3);
  pair_free(&p);
}

TEST(key_update) {
  /* TLS 1.3 KeyUpdate with update_requested: OpenSSL answers with its own
   * KeyUpdate before the next record it writes, not from the read. */
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "localhost"), WSN_TLS_OK);
  ASSERT_EQ(SSL_key_update(p.srv.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
  ASSERT_EQ(SSL_write(p.srv.ssl, "hi", 2), 2);
  wsn_buf_t plain = {0};
  ASSERT_EQ(to_client(&p, &plain), WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 2);
  wsn_buf_free(&plain);
  ASSERT(client_to_server(&p, 100, 3)); /* KeyUpdate, then the new keys */
  ASSERT(server_to_client(&p, 100, 2, 4));
  pair_free(&p);
}

TEST(renegotiation_tls12) {
  /* The server renegotiates (as Node's client allows); what the client
   * writes meanwhile waits in the session and goes out after it. */
  fixtures();
  server_opts_t so = {0};
  so.cred = &F.ss;
  so.max_version = TLS1_2_VERSION;
  pair_t p;
  pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
  ASSERT_EQ(handshake(&p), WSN_TLS_OK);
  ASSERT_EQ(SSL_renegotiate(p.srv.ssl), 1);
  ASSERT_EQ(SSL_do_handshake(p.srv.ssl), 1); /* HelloRequest sent */
  ASSERT_EQ(SSL_write(p.srv.ssl, "hi", 2), 2);
  wsn_buf_t plain = {0};
  ASSERT_EQ(to_client(&p, &plain), WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 2);
  ASSERT(wsn_tls_session_output(p.s)->len > 0); /* a new ClientHello */
  /* written mid-renegotiation: accepted, held */
  ASSERT_EQ(wsn_tls_session_write(p.s, "during", 6), WSN_TLS_OK);
  ASSERT_EQ(wsn_tls_session_shutdown(p.s), WSN_TLS_OK); /* after it */
  char got[64];
  size_t n = 0;
  for (int i = 0; i < 10; i++) {
    to_server(&p);
    ERR_clear_error();
    int r = SSL_read(p.srv.ssl, got + n, (int)(sizeof(got) - n));
    if (r > 0) n += (size_t)r;
    if (r <= 0 && SSL_get_error(p.srv.ssl, r) == SSL_ERROR_ZERO_RETURN) break;
    ASSERT(r > 0 || SSL_get_error(p.srv.ssl, r) == SSL_ERROR_WANT_READ);
    ASSERT(to_client(&p, &plain) != WSN_TLS_ERROR);
  }
  ERR_clear_error();
  ASSERT_EQ(n, 6);
  ASSERT_MEM_EQ(got, "during", 6);
  ASSERT(SSL_get_shutdown(p.srv.ssl) & SSL_RECEIVED_SHUTDOWN);
  ASSERT(SSL_renegotiate_pending(p.srv.ssl) == 0);
  ASSERT_EQ(plain.len, 2);
  wsn_buf_free(&plain);
  pair_free(&p);
}

/* ---- ends --------------------------------------------------------------- */

TEST(close_notify_is_clean_eof) {
  for (int version = 0; version < 2; version++) {
    fixtures();
    server_opts_t so = {0};
    so.cred = &F.ss;
    so.max_version = version ? TLS1_2_VERSION : 0;
    pair_t p;
    pair_init(&p, client_ctx(F.ss.cert_pem, 1), "localhost", "localhost", &so);
    ASSERT_EQ(handshake(&p), WSN_TLS_OK);
    ASSERT_EQ(SSL_write(p.srv.ssl, "bye", 3), 3);
    ASSERT_EQ(SSL_shutdown(p.srv.ssl), 0);
    wsn_buf_t plain = {0};
    p.max_chunk = 1;
    ASSERT_EQ(to_client(&p, &plain), WSN_TLS_CLOSED);
    ASSERT_EQ(plain.len, 3);
    ASSERT_MEM_EQ(plain.base, "bye", 3);
    wsn_buf_free(&plain);
    ASSERT_EQ(wsn_tls_session_eof(p.s), 1);
    ASSERT_EQ(wsn_tls_session_read_buf(p.s, &plain), WSN_TLS_CLOSED);
    ASSERT(wsn_tls_session_error(p.s) == NULL);
    /* our close_notify in answer; the server sees a clean close */
    ASSERT_EQ(wsn_tls_session_shutdown(p.s), WSN_TLS_OK);
    ASSERT_EQ(wsn_tls_session_shutdown(p.s), WSN_TLS_OK);
    to_server(&p);
    ASSERT_EQ(SSL_shutdown(p.srv.ssl), 1);
    ASSERT_EQ(wsn_tls_session_write(p.s, "x", 1), WSN_TLS_ERROR);
    ASSERT_STR_EQ(code_of(&p), "ERR_STREAM_WRITE_AFTER_END");
    pair_free(&p);
  }
}

TEST(client_shutdown_reaches_server) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "localhost"), WSN_TLS_OK);
  ASSERT_EQ(wsn_tls_session_shutdown(p.s), WSN_TLS_OK);
  to_server(&p);
  char b[8];
  ERR_clear_error();
  ASSERT_EQ(SSL_read(p.srv.ssl, b, sizeof(b)), 0);
  ASSERT_EQ(SSL_get_error(p.srv.ssl, 0), SSL_ERROR_ZERO_RETURN);
  ASSERT_EQ(wsn_tls_session_eof(p.s), 0); /* the server has not answered */
  pair_free(&p);
}

TEST(truncated_stream_is_not_clean) {
  pair_t p;
  ASSERT_EQ(connect_to(&p, &F.ss, F.ss.cert_pem, 1, "localhost"), WSN_TLS_OK);
  /* whole records, then TCP ends without close_notify */
  ASSERT_EQ(SSL_write(p.srv.ssl, "data", 4), 4);
  wsn_buf_t plain = {0};
  ASSERT_EQ(to_client(&p, &plain), WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 4);
  ASSERT_EQ(wsn_tls_session_eof(p.s), 0);
  /* half a record, then the end */
  ASSERT_EQ(SSL_write(p.srv.ssl, "more data", 9), 9);
  uint8_t rec[256];
  int n = BIO_read(p.srv.wbio, rec, sizeof(rec));
  ASSERT(n > 10);
  ASSERT_EQ(wsn_tls_session_input(p.s, rec, (size_t)n / 2, &plain),
            WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 4);
  ASSERT_EQ(wsn_tls_session_eof(p.s), 0);
  ASSERT(wsn_tls_session_error(p.s) == NULL);
  /* the rest still completes the record (the half was kept) */
  ASSERT_EQ(wsn_tls_session_input(p.s, rec + n / 2, (size_t)(n - n / 2),
                                  &plain),
            WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 13);
  ASSERT_MEM_EQ(plain.base, "datamore data", 13);
  wsn_buf_free(&plain);
  pair_free(&p);
}

TEST(garbage_from_server) {
  fixtures();
  /* an HTTP server answering the ClientHello */
  wsn_tls_session_t *s;
  wsn_tls_ctx_t *ctx = client_ctx(F.ss.cert_pem, 1);
  s = wsn_tls_session_new(ctx, "localhost", "localhost");
  ASSERT_EQ(wsn_tls_session_handshake(s), WSN_TLS_AGAIN);
  const char *http = "HTTP/1.1 400 Bad Request\r\n\r\n";
  wsn_tls_session_feed(s, (const uint8_t *)http, strlen(http));
  ASSERT_EQ(wsn_tls_session_handshake(s), WSN_TLS_ERROR);
  const wsn_tls_error_t *e = wsn_tls_session_error(s);
  ASSERT(e != NULL);
  ASSERT_STR_EQ(e->code, "ERR_SSL_WRONG_VERSION_NUMBER");
  ASSERT(strstr(e->message, "wrong version number") != NULL);
  wsn_tls_session_free(s);
  /* random bytes, in random chunks, before and after the handshake */
  uint32_t seed = 12345;
  for (int i = 0; i < 200; i++) {
    uint8_t junk[2048];
    size_t n = 1 + rnd(&seed) % sizeof(junk);
    fill(junk, n, rnd(&seed));
    if (i % 2 == 0) {
      s = wsn_tls_session_new(ctx, "localhost", "localhost");
      wsn_tls_session_handshake(s);
      if (i % 4 == 0) junk[0] = 22, junk[1] = 3, junk[2] = 3; /* handshake */
    } else {
      server_opts_t so = {0};
      so.cred = &F.ss;
      pair_t p;
      wsn_tls_ctx_t *c2 = client_ctx(F.ss.cert_pem, 1);
      pair_init(&p, c2, "localhost", "localhost", &so);
      ASSERT_EQ(handshake(&p), WSN_TLS_OK);
      if (i % 4 == 1) junk[0] = 23, junk[1] = 3, junk[2] = 3; /* app data */
      s = p.s;
      p.s = NULL;
      pair_free(&p);
    }
    int st = WSN_TLS_AGAIN;
    wsn_buf_t plain = {0};
    for (size_t off = 0; off < n && st == WSN_TLS_AGAIN;) {
      size_t k = 1 + rnd(&seed) % 64;
      if (k > n - off) k = n - off;
      st = wsn_tls_session_input(s, junk + off, k, &plain);
      off += k;
    }
    ASSERT(st == WSN_TLS_AGAIN || st == WSN_TLS_ERROR);
    ASSERT_EQ(plain.len, 0);
    if (st == WSN_TLS_ERROR) {
      e = wsn_tls_session_error(s);
      ASSERT(e != NULL && e->message != NULL);
      ASSERT(strncmp(e->code, "ERR_SSL_", 8) == 0);
    }
    ASSERT_EQ(ERR_peek_error(), 0);
    wsn_buf_free(&plain);
    wsn_tls_session_free(s);
  }
  wsn_tls_ctx_release(ctx);
}

/* ---- server sessions ---------------------------------------------------- */

/* Moves one session's output into the other's input; returns the reading
 * side's status. */
static int pump(wsn_tls_session_t *from, wsn_tls_session_t *to,
                wsn_buf_t *plain) {
  wsn_buf_t *out = wsn_tls_session_output(from);
  int r = wsn_tls_session_input(to, out->base, out->len, plain);
  wsn_tls_session_output_consume(from, out->len);
  return r;
}

static wsn_tls_ctx_t *server_ctx(const cred_t *cred) {
  wsn_tls_ctx_options_t o = {0};
  o.cert = cred->cert_pem;
  o.cert_len = strlen(cred->cert_pem);
  o.key = cred->key_pem;
  o.key_len = strlen(cred->key_pem);
  wsn_tls_error_t err;
  wsn_tls_ctx_t *ctx = wsn_tls_server_ctx_new(&o, &err);
  if (ctx == NULL) fprintf(stderr, "  %s: %s\n", err.code, err.message);
  wsn_tls_error_clear(&err);
  return ctx;
}

/* This layer's client against its own server: the handshake (the client
 * verifies the server's certificate and name), data both ways, ALPN. */
TEST(server_session_talks_to_client_session) {
  fixtures();
  wsn_tls_ctx_t *sctx = server_ctx(&F.ss);
  ASSERT(sctx != NULL);
  wsn_tls_ctx_t *cctx = client_ctx(F.ss.cert_pem, 1);
  wsn_tls_session_t *srv = wsn_tls_session_new_server(sctx);
  wsn_tls_session_t *cli = wsn_tls_session_new(cctx, "localhost", "localhost");
  wsn_tls_ctx_release(sctx); /* the session keeps it */
  ASSERT(srv != NULL && cli != NULL);
  wsn_buf_t plain = {0};
  ASSERT_EQ(wsn_tls_session_handshake(cli), WSN_TLS_AGAIN);
  for (int i = 0; i < 4 && !(wsn_tls_session_handshake_done(cli) &&
                            wsn_tls_session_handshake_done(srv));
       i++) {
    ASSERT_EQ(pump(cli, srv, &plain), WSN_TLS_AGAIN);
    ASSERT_EQ(pump(srv, cli, &plain), WSN_TLS_AGAIN);
  }
  ASSERT(wsn_tls_session_handshake_done(cli));
  ASSERT(wsn_tls_session_handshake_done(srv));
  ASSERT_EQ(plain.len, 0);
  ASSERT_EQ(wsn_tls_session_write(cli, "GET / HTTP/1.1\r\n\r\n", 18),
            WSN_TLS_OK);
  ASSERT_EQ(pump(cli, srv, &plain), WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, 18);
  ASSERT(memcmp(plain.base, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
  plain.len = 0;
  static uint8_t big[100000];
  fill(big, sizeof(big), 7);
  ASSERT_EQ(wsn_tls_session_write(srv, big, sizeof(big)), WSN_TLS_OK);
  ASSERT_EQ(pump(srv, cli, &plain), WSN_TLS_AGAIN);
  ASSERT_EQ(plain.len, sizeof(big));
  ASSERT(memcmp(plain.base, big, sizeof(big)) == 0);
  plain.len = 0;
  ASSERT_EQ(wsn_tls_session_shutdown(srv), WSN_TLS_OK);
  ASSERT_EQ(pump(srv, cli, &plain), WSN_TLS_CLOSED);
  ASSERT(wsn_tls_session_eof(cli));
  ASSERT_EQ(ERR_peek_error(), 0);
  wsn_buf_free(&plain);
  wsn_tls_session_free(srv);
  wsn_tls_session_free(cli);
  wsn_tls_ctx_release(cctx);
}

/* Plain HTTP to a TLS port fails the handshake with Node's code. */
TEST(server_session_rejects_plain_http) {
  fixtures();
  wsn_tls_ctx_t *sctx = server_ctx(&F.ss);
  ASSERT(sctx != NULL);
  wsn_tls_session_t *srv = wsn_tls_session_new_server(sctx);
  wsn_tls_ctx_release(sctx);
  wsn_buf_t plain = {0};
  static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(wsn_tls_session_input(srv, (const uint8_t *)req, sizeof(req) - 1,
                                  &plain),
            WSN_TLS_ERROR);
  ASSERT_EQ(plain.len, 0);
  const wsn_tls_error_t *e = wsn_tls_session_error(srv);
  ASSERT(e != NULL && e->message != NULL);
  ASSERT_STR_EQ(e->code, "ERR_SSL_HTTP_REQUEST");
  ASSERT_EQ(ERR_peek_error(), 0);
  wsn_buf_free(&plain);
  wsn_tls_session_free(srv);
}

/* A server context takes the same options and fails the same way. */
TEST(server_context_errors) {
  fixtures();
  wsn_tls_ctx_options_t o = {0};
  o.cert = F.ss.cert_pem;
  o.cert_len = strlen(F.ss.cert_pem);
  o.key = F.leaf.key_pem; /* not the certificate's */
  o.key_len = strlen(F.leaf.key_pem);
  wsn_tls_error_t err;
  ASSERT(wsn_tls_server_ctx_new(&o, &err) == NULL);
  ASSERT_STR_EQ(err.code, "ERR_OSSL_X509_KEY_VALUES_MISMATCH");
  wsn_tls_error_clear(&err);
  o.key = "garbage";
  o.key_len = 7;
  ASSERT(wsn_tls_server_ctx_new(&o, &err) == NULL);
  ASSERT_STR_EQ(err.code, "ERR_OSSL_UNSUPPORTED");
  wsn_tls_error_clear(&err);
  ASSERT_EQ(ERR_peek_error(), 0);
}

/* ---- lifetime and memory ------------------------------------------------ */

TEST(context_outlives_its_creator_reference) {
  fixtures();
  wsn_tls_ctx_t *ctx = client_ctx(F.ss.cert_pem, 1);
  wsn_tls_session_t *a = wsn_tls_session_new(ctx, "localhost", "localhost");
  wsn_tls_session_t *b = wsn_tls_session_new(ctx, "localhost", "localhost");
  wsn_tls_ctx_release(ctx); /* sessions keep it */
  ASSERT_EQ(wsn_tls_session_handshake(a), WSN_TLS_AGAIN);
  wsn_tls_session_free(a);
  ASSERT_EQ(wsn_tls_session_handshake(b), WSN_TLS_AGAIN);
  wsn_tls_session_free(b); /* frees the context; ASan checks the rest */
}

/* Bytes an idle client session keeps after its handshake: sessions that
 * have handshaken and read the server's tickets, then the server is gone
 * and the output consumed. Counted by ASan's allocator (requested bytes),
 * which sees OpenSSL's allocations and ours alike. */
TEST(memory_per_idle_session) {
  if (__sanitizer_get_current_allocated_bytes == NULL) return;
  fixtures();
  enum { N = 32 };
  wsn_tls_ctx_t *ctx = client_ctx(F.ss.cert_pem, 1);
  wsn_tls_session_t *s[N];
  size_t before = 0;
  for (int i = -1; i < N; i++) { /* i == -1 warms OpenSSL's lazy state */
    if (i == 0) before = __sanitizer_get_current_allocated_bytes();
    server_opts_t so = {0};
    so.cred = &F.ss;
    pair_t p;
    pair_init(&p, ctx, "localhost", "localhost", &so);
    p.ctx = NULL; /* released below */
    ASSERT_EQ(handshake(&p), WSN_TLS_OK);
    ASSERT(server_to_client(&p, 100, 1, 1)); /* and the tickets */
    ASSERT(client_to_server(&p, 100, 2));
    wsn_tls_session_output_consume(p.s, SIZE_MAX);
    if (i >= 0) {
      s[i] = p.s;
      p.s = NULL;
    }
    pair_free(&p);
  }
  size_t after = __sanitizer_get_current_allocated_bytes();
  size_t per = (after - before) / N;
  fprintf(stderr, "  idle client session after the handshake: %zu bytes\n",
          per);
  for (int i = 0; i < N; i++) wsn_tls_session_free(s[i]);
  wsn_tls_ctx_release(ctx);
  /* about 17 KB; without RELEASE_BUFFERS the two 16 KiB+ record buffers
   * would stay (about 50 KB) */
  ASSERT(per < 30000);
}

RUN_TESTS()
