/*
 * TLS client over OpenSSL (see tls.h). Where Node's behaviour is copied, the
 * comment names the Node function it follows (src/crypto/crypto_context.cc,
 * crypto_common.cc, crypto_tls.cc, lib/tls.js of Node 20); expected strings
 * are checked in test/c/test_tls.c.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* tls.DEFAULT_CIPHERS of Node 20 without its TLS 1.3 suites, which are
 * OpenSSL's default TLS 1.3 list in the same order. */
static const char node_tls12_ciphers[] =
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA256:DHE-RSA-AES128-SHA256:"
    "ECDHE-RSA-AES256-SHA384:DHE-RSA-AES256-SHA384:ECDHE-RSA-AES256-SHA256:"
    "DHE-RSA-AES256-SHA256:HIGH:!aNULL:!eNULL:!EXPORT:!DES:!RC4:!MD5:!PSK:"
    "!SRP:!CAMELLIA";

struct wsn_tls_ctx_s {
  SSL_CTX *ssl_ctx;
  BIO_METHOD *bio_method; /* the sessions' BIO, see tls.h */
  int refs;               /* creator + sessions; __atomic */
  int reject;             /* rejectUnauthorized */
};

struct wsn_tls_session_s {
  SSL *ssl;               /* owns the BIO */
  wsn_tls_ctx_t *ctx;
  wsn_buf_t in;           /* fed ciphertext (lazy, freed when drained) */
  size_t in_off;          /* bytes of `in` already read by OpenSSL */
  const uint8_t *borrow;  /* wsn_tls_session_input()'s bytes, during it */
  size_t borrow_len;
  wsn_buf_t out;          /* ciphertext for the socket (lazy) */
  wsn_buf_t held;         /* plaintext written during a renegotiation */
  wsn_tls_error_t *error; /* lazy: only failed sessions pay for it */
  char *host;             /* verify_host (also for renegotiations) */
  int chain_err;          /* last X509_V_ERR_* other than a name mismatch */
  uint8_t host_is_ip;
  uint8_t name_mismatch;  /* OpenSSL reported HOSTNAME/IP_ADDRESS_MISMATCH */
  uint8_t done;           /* handshake complete */
  uint8_t closed;         /* close_notify received */
  uint8_t failed;
  uint8_t shut;           /* close_notify sent (or due after `held`) */
};

/* ---- errors ------------------------------------------------------------- */

void wsn_tls_error_clear(wsn_tls_error_t *err) {
  free(err->message);
  err->message = NULL;
  err->code[0] = '\0';
  OPENSSL_free(err->cert_der);
  err->cert_der = NULL;
  err->cert_der_len = 0;
}

static char *dup_n(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static void error_set(wsn_tls_error_t *err, const char *code, char *message) {
  snprintf(err->code, sizeof(err->code), "%s", code);
  free(err->message);
  err->message = message;
}

static void error_set_str(wsn_tls_error_t *err, const char *code,
                          const char *message) {
  error_set(err, code, dup_n(message, strlen(message)));
}

/* "this error happened" -> "THIS_ERROR_HAPPENED" appended to code. */
static void append_reason_code(char *code, size_t cap, const char *reason) {
  size_t n = strlen(code);
  for (; *reason != '\0' && n + 1 < cap; reason++, n++) {
    char c = *reason;
    code[n] = c == ' ' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
  }
  code[n] = '\0';
}

/* Node's Decorate() (crypto_util.cc): ERR_ + OSSL_ + library prefix + the
 * reason, except that the SSL library gives ERR_SSL_ alone. Libraries not in
 * Node's list (DECODER, Provider, ...) get no library part. */
static void crypto_error_code(unsigned long e, char *code, size_t cap) {
  const char *lib = "";
  switch (ERR_GET_LIB(e)) {
#define LIB(name) case ERR_LIB_##name: lib = #name "_"; break;
    LIB(SYS) LIB(BN) LIB(RSA) LIB(DH) LIB(EVP) LIB(BUF) LIB(OBJ) LIB(PEM)
    LIB(DSA) LIB(X509) LIB(ASN1) LIB(CONF) LIB(CRYPTO) LIB(EC) LIB(SSL)
    LIB(BIO) LIB(PKCS7) LIB(X509V3) LIB(PKCS12) LIB(RAND) LIB(DSO)
    LIB(ENGINE) LIB(OCSP) LIB(UI) LIB(COMP) LIB(ECDSA) LIB(ECDH)
    LIB(OSSL_STORE) LIB(FIPS) LIB(CMS) LIB(TS) LIB(HMAC) LIB(CT) LIB(ASYNC)
    LIB(KDF) LIB(SM2) LIB(USER)
#undef LIB
    default: break;
  }
  const char *reason = ERR_reason_error_string(e);
  if (reason == NULL) {
    code[0] = '\0';
    return;
  }
  snprintf(code, cap, "ERR_%s%s", strcmp(lib, "SSL_") == 0 ? "" : "OSSL_",
           lib);
  append_reason_code(code, cap, reason);
}

/* Node's ThrowCryptoError(env, ERR_get_error()): the earliest error of the
 * queue, as ERR_error_string_n writes it. Empties the queue. */
static void crypto_error(wsn_tls_error_t *err) {
  unsigned long e = ERR_get_error();
  char msg[256];
  if (e == 0) {
    snprintf(msg, sizeof(msg), "%s", "Unknown error");
    err->code[0] = '\0';
  } else {
    ERR_error_string_n(e, msg, sizeof(msg));
    crypto_error_code(e, err->code, sizeof(err->code));
  }
  free(err->message);
  err->message = dup_n(msg, strlen(msg));
  ERR_clear_error();
}

static wsn_tls_error_t *session_error_slot(wsn_tls_session_t *s) {
  s->failed = 1;
  if (s->error == NULL) s->error = calloc(1, sizeof(*s->error));
  return s->error;
}

static void session_oom(wsn_tls_session_t *s) {
  wsn_tls_error_t *e = session_error_slot(s);
  if (e != NULL && e->message == NULL)
    error_set_str(e, "ERR_OUT_OF_MEMORY", "Out of memory");
}

/* Node's TLSWrap::GetSSLError: the message is the whole error queue as
 * ERR_print_errors writes it, the code "ERR_SSL_" + the first error's reason
 * whatever its library. Keeps an error set earlier (certificate rejection).
 * Empties the queue. */
static void session_ssl_error(wsn_tls_session_t *s) {
  int had = s->error != NULL && s->error->message != NULL;
  wsn_tls_error_t *err = session_error_slot(s);
  if (err == NULL || had) {
    ERR_clear_error();
    return;
  }
  unsigned long e = ERR_peek_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  err->code[0] = '\0';
  if (reason != NULL) {
    snprintf(err->code, sizeof(err->code), "%s", "ERR_SSL_");
    append_reason_code(err->code, sizeof(err->code), reason);
  }
  char *message = NULL;
  BIO *bio = BIO_new(BIO_s_mem());
  if (bio != NULL) {
    ERR_print_errors(bio);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    if (n > 0) message = dup_n(p, (size_t)n);
    BIO_free(bio);
  }
  if (message == NULL) message = dup_n("TLS error", 9);
  free(err->message);
  err->message = message;
  ERR_clear_error();
}

const wsn_tls_error_t *wsn_tls_session_error(const wsn_tls_session_t *s) {
  return s->failed ? s->error : NULL;
}

/* The X509 errors Node names (X509ErrorCode in crypto_common.cc, listed in
 * doc/api/tls.md); every other value is "UNSPECIFIED". */
#define WSN_X509_ERRORS(X)                                                    \
  X(UNABLE_TO_GET_ISSUER_CERT) X(UNABLE_TO_GET_CRL)                           \
  X(UNABLE_TO_DECRYPT_CERT_SIGNATURE) X(UNABLE_TO_DECRYPT_CRL_SIGNATURE)      \
  X(UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY) X(CERT_SIGNATURE_FAILURE)             \
  X(CRL_SIGNATURE_FAILURE) X(CERT_NOT_YET_VALID) X(CERT_HAS_EXPIRED)          \
  X(CRL_NOT_YET_VALID) X(CRL_HAS_EXPIRED) X(ERROR_IN_CERT_NOT_BEFORE_FIELD)   \
  X(ERROR_IN_CERT_NOT_AFTER_FIELD) X(ERROR_IN_CRL_LAST_UPDATE_FIELD)          \
  X(ERROR_IN_CRL_NEXT_UPDATE_FIELD) X(OUT_OF_MEM)                             \
  X(DEPTH_ZERO_SELF_SIGNED_CERT) X(SELF_SIGNED_CERT_IN_CHAIN)                 \
  X(UNABLE_TO_GET_ISSUER_CERT_LOCALLY) X(UNABLE_TO_VERIFY_LEAF_SIGNATURE)     \
  X(CERT_CHAIN_TOO_LONG) X(CERT_REVOKED) X(INVALID_CA)                        \
  X(PATH_LENGTH_EXCEEDED) X(INVALID_PURPOSE) X(CERT_UNTRUSTED)                \
  X(CERT_REJECTED) X(HOSTNAME_MISMATCH)

void wsn_tls_x509_error(long verify_result, const char **code,
                        const char **message) {
  switch (verify_result) {
#define X(name) case X509_V_ERR_##name: *code = #name; break;
    WSN_X509_ERRORS(X)
#undef X
    default: *code = "UNSPECIFIED"; break;
  }
  *message = X509_verify_cert_error_string(verify_result);
}

/* ---- the session's BIO -------------------------------------------------- */

static int bio_write(BIO *b, const char *data, int len) {
  wsn_tls_session_t *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (wsn_buf_append(&s->out, data, (size_t)len) != 0) return -1;
  return len;
}

static int bio_read(BIO *b, char *dst, int len) {
  wsn_tls_session_t *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  size_t want = (size_t)len, n = 0;
  if (s->in_off < s->in.len) {
    size_t k = s->in.len - s->in_off;
    if (k > want) k = want;
    memcpy(dst, s->in.base + s->in_off, k);
    s->in_off += k;
    n = k;
    if (s->in_off == s->in.len) {
      wsn_buf_free(&s->in);
      s->in_off = 0;
    }
  }
  if (n < want && s->borrow_len > 0) {
    size_t k = s->borrow_len;
    if (k > want - n) k = want - n;
    memcpy(dst + n, s->borrow, k);
    s->borrow += k;
    s->borrow_len -= k;
    n += k;
  }
  if (n == 0) {
    BIO_set_retry_read(b); /* no EOF here: see wsn_tls_session_eof() */
    return -1;
  }
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  wsn_tls_session_t *s = BIO_get_data(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return s ? (long)(s->in.len - s->in_off + s->borrow_len) : 0;
    default:
      return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static int bio_destroy(BIO *b) {
  (void)b;
  return 1;
}

/* ---- context ------------------------------------------------------------ */

/* Node's PasswordCallback: the passphrase, or an empty one when none was
 * given (so an encrypted key without one fails with "bad decrypt", as in
 * Node, instead of prompting on a terminal). */
static int pass_cb(char *buf, int size, int rwflag, void *u) {
  (void)rwflag;
  const char *pass = u;
  size_t n = pass ? strlen(pass) : 0;
  if (n > (size_t)size) return -1;
  memcpy(buf, pass ? pass : "", n);
  return (int)n;
}

static int no_pass_cb(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return 0;
}

static int verify_cb(int ok, X509_STORE_CTX *x);
static int cert_verify_cb(X509_STORE_CTX *x, void *arg);

/* A read-only BIO over the option's bytes (BIO_new_mem_buf takes an int,
 * and a negative one would mean strlen). */
static BIO *mem_bio(const void *p, size_t len) {
  return len <= INT_MAX ? BIO_new_mem_buf(p, (int)len) : NULL;
}

/* Node's AddCACert: every certificate found is trusted, the rest skipped. */
static int load_ca(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *bio = mem_bio(pem, len);
  if (bio == NULL) return -1;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  X509 *x;
  while ((x = PEM_read_bio_X509_AUX(bio, NULL, no_pass_cb, NULL)) != NULL) {
    X509_STORE_add_cert(store, x);
    X509_free(x);
  }
  BIO_free(bio);
  ERR_clear_error();
  return 0;
}

/* Node's SSL_CTX_use_certificate_chain: the first certificate is ours, the
 * ones after it our chain; a failure after the last PEM block other than
 * "no start line" is an error. Leaves the error queue for the caller. */
static int load_cert(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *bio = mem_bio(pem, len);
  if (bio == NULL) return -1;
  int rc = -1;
  X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, no_pass_cb, NULL);
  if (leaf == NULL) goto done;
  STACK_OF(X509) *extra = sk_X509_new_null();
  if (extra == NULL) goto done;
  X509 *x;
  while ((x = PEM_read_bio_X509(bio, NULL, no_pass_cb, NULL)) != NULL) {
    if (!sk_X509_push(extra, x)) {
      X509_free(x);
      goto free_extra;
    }
  }
  unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
    goto free_extra;
  ERR_clear_error();
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) goto free_extra;
  for (int i = 0; i < sk_X509_num(extra); i++)
    if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(extra, i)) != 1)
      goto free_extra;
  rc = 0;
free_extra:
  sk_X509_pop_free(extra, X509_free);
done:
  X509_free(leaf);
  BIO_free(bio);
  return rc;
}

/* Node's SetKey. */
static int load_key(SSL_CTX *ctx, const char *pem, size_t len,
                    const char *pass) {
  BIO *bio = mem_bio(pem, len);
  if (bio == NULL) return -1;
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, (void *)pass);
  BIO_free(bio);
  if (key == NULL) return -1;
  int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  return ok ? 0 : -1;
}

/* Node's LoadPKCS12, including its quirk that the bundle's extra
 * certificates also become trusted CAs. Node reports only the reason. */
static int load_pfx(SSL_CTX *ctx, const uint8_t *der, size_t len,
                    const char *pass, wsn_tls_error_t *err) {
  BIO *bio = mem_bio(der, len);
  PKCS12 *p12 = bio ? d2i_PKCS12_bio(bio, NULL) : NULL; /* as Node reads it */
  BIO_free(bio);
  EVP_PKEY *key = NULL;
  X509 *cert = NULL;
  STACK_OF(X509) *extra = NULL;
  int ok = p12 != NULL && PKCS12_parse(p12, pass, &key, &cert, &extra) == 1 &&
           cert != NULL && SSL_CTX_use_certificate(ctx, cert) == 1;
  for (int i = 0; ok && i < sk_X509_num(extra); i++)
    ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(extra, i)) == 1;
  ok = ok && key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  if (ok) {
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(extra); i++)
      X509_STORE_add_cert(store, sk_X509_value(extra, i));
  } else {
    const char *reason = ERR_reason_error_string(ERR_get_error());
    if (reason == NULL) reason = "Unknown error";
    error_set_str(err, "", reason);
  }
  sk_X509_pop_free(extra, X509_free);
  X509_free(cert);
  EVP_PKEY_free(key);
  PKCS12_free(p12);
  ERR_clear_error();
  return ok ? 0 : -1;
}

/* Node's https server's ALPN (SelectALPNCallback): "http/1.1" if the
 * client offers it; no overlap, no ALPN in the answer (Node 20 would send a
 * fatal alert there: lenient, as a WebSocket client has nothing else to
 * speak). */
static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char http11[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11) - 1, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static wsn_tls_ctx_t *ctx_build(const wsn_tls_ctx_options_t *o,
                                wsn_tls_error_t *err, int server) {
  err->code[0] = '\0';
  err->message = NULL;
  err->cert_der = NULL;
  err->cert_der_len = 0;
  ERR_clear_error();
  wsn_tls_ctx_t *c = calloc(1, sizeof(*c));
  if (c == NULL) goto oom;
  c->refs = 1;
  c->reject = !server && o->reject_unauthorized != 0;
  c->ssl_ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  c->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "wsn_tls");
  if (c->ssl_ctx == NULL || c->bio_method == NULL) goto fail;
  BIO_meth_set_write(c->bio_method, bio_write);
  BIO_meth_set_read(c->bio_method, bio_read);
  BIO_meth_set_ctrl(c->bio_method, bio_ctrl);
  BIO_meth_set_create(c->bio_method, bio_create);
  BIO_meth_set_destroy(c->bio_method, bio_destroy);

  SSL_CTX *ctx = c->ssl_ctx;
  /* Node's defaults: tls.DEFAULT_MIN_VERSION / MAX_VERSION, ciphers. */
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, node_tls12_ciphers) != 1)
    goto fail;
  /* Idle sessions drop OpenSSL's 16 KiB+ record buffers (tls.h has the
   * figures). */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* A TLS 1.2 server may renegotiate, as with Node's client: refusing
   * (SSL_OP_NO_RENEGOTIATION) makes an OpenSSL server fail the connection.
   * Meanwhile SSL_write waits for the peer; wsn_tls_session_write() then
   * keeps the plaintext (`held`) and retries it with a different length and
   * address, which this mode allows. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Verification runs in cert_verify_cb, which applies Node's rules; it
   * also skips the work entirely when rejectUnauthorized is false. */
  if (server) {
    /* No client certificate is asked for (Node's requestCert: false). */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    /* Stateless tickets only (tls.h): a stateful cache would keep up to
     * 20,480 sessions of clients long gone. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  } else {
    SSL_CTX_set_verify(ctx, c->reject ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       verify_cb);
    SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, c);
  }

  if (o->ca != NULL && o->ca_len > 0 && load_ca(ctx, o->ca, o->ca_len) != 0)
    goto fail;
  if (o->cert != NULL && o->cert_len > 0 &&
      load_cert(ctx, o->cert, o->cert_len) != 0)
    goto fail;
  if (o->key != NULL && o->key_len > 0 &&
      load_key(ctx, o->key, o->key_len, o->passphrase) != 0)
    goto fail;
  if (o->pfx != NULL && o->pfx_len > 0 &&
      load_pfx(ctx, o->pfx, o->pfx_len, o->passphrase, err) != 0)
    goto release;
  ERR_clear_error();
  return c;

fail:
  crypto_error(err);
release:
  wsn_tls_ctx_release(c);
  ERR_clear_error();
  if (err->message != NULL) return NULL;
oom:
  error_set_str(err, "ERR_OUT_OF_MEMORY", "Out of memory");
  return NULL;
}

wsn_tls_ctx_t *wsn_tls_ctx_new(const wsn_tls_ctx_options_t *o,
                               wsn_tls_error_t *err) {
  return ctx_build(o, err, 0);
}

wsn_tls_ctx_t *wsn_tls_server_ctx_new(const wsn_tls_ctx_options_t *o,
                                      wsn_tls_error_t *err) {
  return ctx_build(o, err, 1);
}

void wsn_tls_ctx_ref(wsn_tls_ctx_t *c) {
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void wsn_tls_ctx_release(wsn_tls_ctx_t *c) {
  if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  SSL_CTX_free(c->ssl_ctx);
  BIO_meth_free(c->bio_method);
  free(c);
}

/* ---- certificate verification ------------------------------------------- */

static wsn_tls_session_t *session_of(X509_STORE_CTX *x) {
  SSL *ssl =
      X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
  return ssl ? SSL_get_app_data(ssl) : NULL;
}

/* Lets OpenSSL go on after every error, as Node's VerifyCallback does, and
 * remembers what it saw: Node reports the last chain error (the store's
 * final error), and a name mismatch only when the chain is fine (its name
 * check, checkServerIdentity, runs only then). */
static int verify_cb(int ok, X509_STORE_CTX *x) {
  wsn_tls_session_t *s;
  if (!ok && (s = session_of(x)) != NULL) {
    int e = X509_STORE_CTX_get_error(x);
    if (e == X509_V_ERR_HOSTNAME_MISMATCH ||
        e == X509_V_ERR_IP_ADDRESS_MISMATCH)
      s->name_mismatch = 1;
    else
      s->chain_err = e;
  }
  return 1;
}

/* Node's PrintAltName (crypto_common.cc): a name with characters that would
 * make the list ambiguous is printed as a JSON string. */
static int alt_name_safe(const unsigned char *p, size_t n, int utf8) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\' || c == ',' || c == '\'') return 0;
    if (utf8 ? (c < ' ' || c == 0x7f) : (c < ' ' || c > '~')) return 0;
  }
  return 1;
}

static int put(wsn_buf_t *b, const char *s) {
  return wsn_buf_append(b, s, strlen(s));
}

static int put_alt_name(wsn_buf_t *b, const unsigned char *p, size_t n,
                        int utf8, const char *safe_prefix) {
  int rc = 0;
  if (alt_name_safe(p, n, utf8)) {
    if (safe_prefix != NULL) rc |= put(b, safe_prefix) | put(b, ":");
    return rc | wsn_buf_append(b, p, n);
  }
  rc |= put(b, "\"");
  if (safe_prefix != NULL) rc |= put(b, safe_prefix) | put(b, ":");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    if (c == '\\') {
      rc |= put(b, "\\\\");
    } else if (c == '"') {
      rc |= put(b, "\\\"");
    } else if ((c >= ' ' && c != ',' && c <= '~') || (utf8 && (c & 0x80))) {
      rc |= wsn_buf_append(b, &c, 1);
    } else {
      char u[7];
      snprintf(u, sizeof(u), "\\u00%02x", c);
      rc |= put(b, u);
    }
  }
  return rc | put(b, "\"");
}

static int put_asn1(wsn_buf_t *b, const ASN1_STRING *a, int utf8,
                    const char *safe_prefix) {
  return put_alt_name(b, ASN1_STRING_get0_data(a),
                      (size_t)ASN1_STRING_length(a), utf8, safe_prefix);
}

/* Node's PrintGeneralName, which makes cert.subjectaltname. */
static int put_general_name(wsn_buf_t *b, const GENERAL_NAME *g) {
  char tmp[256];
  switch (g->type) {
    case GEN_DNS:
      return put(b, "DNS:") | put_asn1(b, g->d.dNSName, 0, NULL);
    case GEN_EMAIL:
      return put(b, "email:") | put_asn1(b, g->d.rfc822Name, 0, NULL);
    case GEN_URI:
      return put(b, "URI:") |
             put_asn1(b, g->d.uniformResourceIdentifier, 0, NULL);
    case GEN_DIRNAME: {
      /* Node's kX509NameFlagsRFC2253WithinUtf8JSON */
      unsigned long flags =
          XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB & ~ASN1_STRFLGS_ESC_CTRL;
      BIO *bio = BIO_new(BIO_s_mem());
      if (bio == NULL) return -1;
      int rc = put(b, "DirName:");
      if (X509_NAME_print_ex(bio, g->d.directoryName, 0, flags) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0)
          rc |= put_alt_name(b, (unsigned char *)p, (size_t)n, 1, NULL);
      }
      BIO_free(bio);
      return rc;
    }
    case GEN_IPADD: {
      const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
      int n = ASN1_STRING_length(g->d.iPAddress);
      int rc = put(b, "IP Address:");
      if (n == 4) {
        snprintf(tmp, sizeof(tmp), "%d.%d.%d.%d", p[0], p[1], p[2], p[3]);
        return rc | put(b, tmp);
      }
      if (n == 16) {
        for (int j = 0; j < 8; j++) {
          snprintf(tmp, sizeof(tmp), j == 0 ? "%X" : ":%X",
                   (unsigned)(p[2 * j] << 8 | p[2 * j + 1]));
          rc |= put(b, tmp);
        }
        return rc;
      }
      snprintf(tmp, sizeof(tmp), "<invalid length=%d>", n);
      return rc | put(b, tmp);
    }
    case GEN_RID:
      OBJ_obj2txt(tmp, sizeof(tmp), g->d.registeredID, 1);
      return put(b, "Registered ID:") | put(b, tmp);
    case GEN_OTHERNAME: {
      const char *prefix = NULL;
      int unicode = 1;
      switch (OBJ_obj2nid(g->d.otherName->type_id)) {
        case NID_id_on_SmtpUTF8Mailbox: prefix = "SmtpUTF8Mailbox"; break;
        case NID_XmppAddr: prefix = "XmppAddr"; break;
        case NID_SRVName: prefix = "SRVName"; unicode = 0; break;
        case NID_ms_upn: prefix = "UPN"; break;
        case NID_NAIRealm: prefix = "NAIRealm"; break;
      }
      const ASN1_TYPE *v = g->d.otherName->value;
      if (prefix == NULL ||
          v->type != (unicode ? V_ASN1_UTF8STRING : V_ASN1_IA5STRING))
        return put(b, "othername:<unsupported>");
      return put(b, "othername:") |
             put_asn1(b, unicode ? v->value.utf8string : v->value.ia5string,
                      unicode, prefix);
    }
    case GEN_X400:
      return put(b, "X400Name:<unsupported>");
    case GEN_EDIPARTY:
      return put(b, "EdiPartyName:<unsupported>");
    default:
      return 0;
  }
}

/*
 * tls.checkServerIdentity's reason for a mismatch (lib/tls.js), as the
 * message of ERR_TLS_CERT_ALTNAME_INVALID. OpenSSL decided that the name
 * does not match; this only words it. Returns a malloc'd string or NULL.
 */
static char *altname_message(const char *host, int is_ip, X509 *cert) {
  wsn_buf_t b = {0}, ips = {0}, alt = {0};
  int rc = put(&b, "Hostname/IP does not match certificate's altnames: ");
  size_t dns = 0, nips = 0;
  GENERAL_NAMES *names =
      X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (i > 0) rc |= put(&alt, ", ");
    rc |= put_general_name(&alt, g);
    if (g->type == GEN_DNS) dns++;
    if (g->type != GEN_IPADD) continue;
    /* Node lists the IPs through canonicalizeIP (inet_pton + inet_ntop). */
    char ip[INET6_ADDRSTRLEN] = "";
    const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
    int n = ASN1_STRING_length(g->d.iPAddress);
    if (n == 4 || n == 16)
      inet_ntop(n == 4 ? AF_INET : AF_INET6, p, ip, sizeof(ip));
    rc |= put(&ips, nips++ ? ", " : "") | put(&ips, ip);
  }
  GENERAL_NAMES_free(names);
  if (is_ip) {
    rc |= put(&b, "IP: ") | put(&b, host) |
          put(&b, " is not in the cert's list: ");
    rc |= wsn_buf_append(&b, ips.base, ips.len);
  } else if (dns > 0) {
    rc |= put(&b, "Host: ") | put(&b, host) |
          put(&b, ". is not in the cert's altnames: ");
    rc |= wsn_buf_append(&b, alt.base, alt.len);
  } else {
    /* No DNS names: Node matches subject.CN (an array if repeated, which
     * prints joined by ","). */
    X509_NAME *subject = X509_get_subject_name(cert);
    int idx = -1, ncn = 0;
    wsn_buf_t cn = {0};
    while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >=
           0) {
      unsigned char *u = NULL;
      ASN1_STRING *d =
          X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      int n = ASN1_STRING_to_UTF8(&u, d);
      if (n >= 0) {
        rc |= put(&cn, ncn++ ? "," : "") | wsn_buf_append(&cn, u, (size_t)n);
        OPENSSL_free(u);
      }
    }
    if (ncn > 0) {
      rc |= put(&b, "Host: ") | put(&b, host) |
            put(&b, ". is not cert's CN: ");
      rc |= wsn_buf_append(&b, cn.base, cn.len);
    } else {
      rc |= put(&b, "Cert does not contain a DNS name");
    }
    wsn_buf_free(&cn);
  }
  rc |= wsn_buf_append(&b, "", 1);
  wsn_buf_free(&ips);
  wsn_buf_free(&alt);
  if (rc != 0) {
    wsn_buf_free(&b);
    return NULL;
  }
  return (char *)wsn_buf_steal(&b);
}

/*
 * Replaces OpenSSL's chain check (SSL_CTX_set_cert_verify_callback): runs
 * it with verify_cb collecting errors, then decides as Node does (tls.h).
 * Returning 0 fails the handshake; OpenSSL then sends the alert matching
 * the error set on the store.
 */
static int cert_verify_cb(X509_STORE_CTX *x, void *arg) {
  const wsn_tls_ctx_t *c = arg;
  if (!c->reject) return 1;
  wsn_tls_session_t *s = session_of(x);
  if (s == NULL) return 0;
  s->chain_err = 0;
  s->name_mismatch = 0;
  int r = X509_verify_cert(x);
  if (r <= 0 && s->chain_err == 0 && !s->name_mismatch) {
    s->chain_err = X509_STORE_CTX_get_error(x);
    if (s->chain_err == X509_V_OK) s->chain_err = X509_V_ERR_UNSPECIFIED;
  }
  if (s->chain_err == 0 && !s->name_mismatch) return 1;
  wsn_tls_error_t *err = session_error_slot(s);
  if (err == NULL) return 0;
  if (s->chain_err != 0) {
    const char *code, *message;
    wsn_tls_x509_error(s->chain_err, &code, &message);
    error_set_str(err, code, message);
    X509_STORE_CTX_set_error(x, s->chain_err);
  } else {
    X509 *cert = X509_STORE_CTX_get0_cert(x);
    error_set(err, "ERR_TLS_CERT_ALTNAME_INVALID",
              altname_message(s->host ? s->host : "", s->host_is_ip, cert));
    /* Node's error carries the certificate: JS rebuilds it from the DER
     * (without it, the error just has no `cert`). */
    OPENSSL_free(err->cert_der);
    err->cert_der = NULL;
    err->cert_der_len = 0;
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len > 0) {
      err->cert_der = der;
      err->cert_der_len = (size_t)der_len;
    }
    X509_STORE_CTX_set_error(x, s->host_is_ip ? X509_V_ERR_IP_ADDRESS_MISMATCH
                                              : X509_V_ERR_HOSTNAME_MISMATCH);
  }
  if (err->message == NULL)
    error_set_str(err, "ERR_OUT_OF_MEMORY", "Out of memory");
  return 0;
}

/* ---- session ------------------------------------------------------------ */

static int is_ip(const char *host) {
  unsigned char a[16];
  return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* A session's SSL and BIO over c, either side. */
static wsn_tls_session_t *session_alloc(wsn_tls_ctx_t *c) {
  wsn_tls_session_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
  s->ctx = c;
  ERR_clear_error();
  s->ssl = SSL_new(c->ssl_ctx);
  BIO *bio = s->ssl ? BIO_new(c->bio_method) : NULL;
  if (bio == NULL) {
    ERR_clear_error();
    wsn_tls_session_free(s);
    return NULL;
  }
  BIO_set_data(bio, s);
  SSL_set_bio(s->ssl, bio, bio); /* one reference, for both directions */
  SSL_set_app_data(s->ssl, s);
  return s;
}

wsn_tls_session_t *wsn_tls_session_new_server(wsn_tls_ctx_t *c) {
  wsn_tls_session_t *s = session_alloc(c);
  if (s != NULL) SSL_set_accept_state(s->ssl);
  return s;
}

wsn_tls_session_t *wsn_tls_session_new(wsn_tls_ctx_t *c,
                                       const char *servername,
                                       const char *verify_host) {
  wsn_tls_session_t *s = session_alloc(c);
  if (s == NULL) return NULL;
  SSL_set_connect_state(s->ssl);
  if (servername != NULL && servername[0] != '\0' && !is_ip(servername) &&
      SSL_set_tlsext_host_name(s->ssl, servername) != 1)
    goto fail;
  if (verify_host != NULL && c->reject) {
    /* "[::1]" -> "::1"; "example.com." -> "example.com" (Node's unfqdn) */
    size_t n = strlen(verify_host);
    if (n >= 2 && verify_host[0] == '[' && verify_host[n - 1] == ']')
      s->host = dup_n(verify_host + 1, n - 2);
    else
      s->host = dup_n(verify_host,
                      n > 1 && verify_host[n - 1] == '.' ? n - 1 : n);
    if (s->host == NULL) goto fail;
    X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
    s->host_is_ip = is_ip(s->host);
    if (s->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, s->host) != 1
                      : X509_VERIFY_PARAM_set1_host(param, s->host, 0) != 1)
      goto fail;
  }
  return s;
fail:
  ERR_clear_error();
  wsn_tls_session_free(s);
  return NULL;
}

void wsn_tls_session_free(wsn_tls_session_t *s) {
  if (s == NULL) return;
  SSL_free(s->ssl);
  wsn_buf_free(&s->in);
  wsn_buf_free(&s->out);
  wsn_buf_free(&s->held);
  if (s->error != NULL) wsn_tls_error_clear(s->error);
  free(s->error);
  free(s->host);
  wsn_tls_ctx_release(s->ctx);
  free(s);
}

/* Maps a failed SSL call's result to a status. */
static int ssl_status(wsn_tls_session_t *s, int r) {
  switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      ERR_clear_error();
      return WSN_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      s->closed = 1;
      return WSN_TLS_CLOSED;
    default:
      session_ssl_error(s);
      return WSN_TLS_ERROR;
  }
}

/* Writes `held` once a renegotiation lets SSL_write through, then the
 * close_notify that waited for it. */
static int flush_held(wsn_tls_session_t *s) {
  size_t written = 0;
  ERR_clear_error();
  int r = SSL_write_ex(s->ssl, s->held.base, s->held.len, &written);
  if (r != 1) {
    r = ssl_status(s, r);
    return r == WSN_TLS_ERROR ? r : WSN_TLS_OK;
  }
  wsn_buf_free(&s->held);
  if (s->shut) {
    ERR_clear_error();
    if (SSL_shutdown(s->ssl) < 0) {
      session_ssl_error(s);
      return WSN_TLS_ERROR;
    }
  }
  return WSN_TLS_OK;
}

/* After a read call: a renegotiation may have ended. */
static int after_read(wsn_tls_session_t *s, int r) {
  if (s->held.len > 0 && (r == WSN_TLS_OK || r == WSN_TLS_AGAIN) &&
      flush_held(s) != WSN_TLS_OK)
    return WSN_TLS_ERROR;
  return r;
}

int wsn_tls_session_handshake(wsn_tls_session_t *s) {
  if (s->failed) return WSN_TLS_ERROR;
  if (s->done) return WSN_TLS_OK;
  ERR_clear_error();
  int r = SSL_do_handshake(s->ssl);
  if (r == 1) {
    s->done = 1;
    return WSN_TLS_OK;
  }
  r = ssl_status(s, r);
  if (r == WSN_TLS_CLOSED) {
    /* close_notify in the middle of a handshake: it never succeeded */
    wsn_tls_error_t *e = session_error_slot(s);
    if (e != NULL)
      error_set_str(e, "ECONNRESET",
                    "Client network socket disconnected before secure TLS "
                    "connection was established");
    return WSN_TLS_ERROR;
  }
  if (s->failed && (s->error == NULL || s->error->message == NULL))
    session_oom(s);
  return r;
}

int wsn_tls_session_handshake_done(const wsn_tls_session_t *s) {
  return s->done && !s->failed;
}

int wsn_tls_session_feed(wsn_tls_session_t *s, const uint8_t *data,
                         size_t len) {
  if (s->failed) return WSN_TLS_ERROR;
  if (s->in_off > 0 && s->in_off == s->in.len) {
    s->in.len = 0;
    s->in_off = 0;
  }
  if (wsn_buf_append(&s->in, data, len) != 0) {
    session_oom(s);
    return WSN_TLS_ERROR;
  }
  return WSN_TLS_OK;
}

/* Preconditions of every read: not failed, not closed, handshake done. */
static int read_ready(wsn_tls_session_t *s) {
  if (s->failed) return WSN_TLS_ERROR;
  if (s->closed) return WSN_TLS_CLOSED;
  return s->done ? WSN_TLS_OK : wsn_tls_session_handshake(s);
}

int wsn_tls_session_read(wsn_tls_session_t *s, uint8_t *dst, size_t cap,
                         size_t *nread) {
  *nread = 0;
  int r = read_ready(s);
  if (r != WSN_TLS_OK) return r;
  if (cap == 0) return WSN_TLS_OK;
  ERR_clear_error();
  r = SSL_read_ex(s->ssl, dst, cap, nread);
  return after_read(s, r == 1 ? WSN_TLS_OK : ssl_status(s, r));
}

/* A TLS record holds at most 16 KiB of plaintext. */
#define READ_CHUNK 16384

int wsn_tls_session_read_buf(wsn_tls_session_t *s, wsn_buf_t *out) {
  int r = read_ready(s);
  while (r == WSN_TLS_OK) {
    if (wsn_buf_reserve(out, READ_CHUNK) != 0) {
      session_oom(s);
      return WSN_TLS_ERROR;
    }
    size_t n = 0;
    ERR_clear_error();
    int ok =
        SSL_read_ex(s->ssl, out->base + out->len, out->cap - out->len, &n);
    if (ok != 1) return after_read(s, ssl_status(s, ok));
    out->len += n;
  }
  return r;
}

int wsn_tls_session_input(wsn_tls_session_t *s, const uint8_t *data,
                          size_t len, wsn_buf_t *out) {
  if (s->failed) return WSN_TLS_ERROR;
  s->borrow = data;
  s->borrow_len = len;
  int r = wsn_tls_session_read_buf(s, out);
  /* OpenSSL stops reading only when the BIO runs dry, so bytes are left
   * only after close_notify or an error, where they mean nothing; keep
   * them anyway if not, for they are the peer's next record. */
  if (s->borrow_len > 0 && r == WSN_TLS_AGAIN &&
      wsn_tls_session_feed(s, s->borrow, s->borrow_len) != WSN_TLS_OK)
    r = WSN_TLS_ERROR;
  s->borrow = NULL;
  s->borrow_len = 0;
  return r;
}

int wsn_tls_session_write(wsn_tls_session_t *s, const void *data,
                          size_t len) {
  if (s->failed) return WSN_TLS_ERROR;
  if (s->shut) {
    wsn_tls_error_t *e = session_error_slot(s);
    if (e != NULL)
      error_set_str(e, "ERR_STREAM_WRITE_AFTER_END", "write after end");
    return WSN_TLS_ERROR;
  }
  if (!s->done) return WSN_TLS_AGAIN;
  if (len == 0) return WSN_TLS_OK;
  if (s->held.len == 0) {
    size_t written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(s->ssl, data, len, &written);
    if (r == 1) return WSN_TLS_OK;
    /* WANT_READ: a renegotiation is waiting for the server; no byte of
     * this write has gone into a record yet */
    r = ssl_status(s, r);
    if (r == WSN_TLS_CLOSED) { /* not a result SSL_write gives */
      wsn_tls_error_t *e = session_error_slot(s);
      if (e != NULL) error_set_str(e, "ERR_SSL_WRITE", "TLS write failed");
    }
    if (r != WSN_TLS_AGAIN) return WSN_TLS_ERROR;
  }
  if (wsn_buf_append(&s->held, data, len) != 0) {
    session_oom(s);
    return WSN_TLS_ERROR;
  }
  return WSN_TLS_OK;
}

wsn_buf_t *wsn_tls_session_output(wsn_tls_session_t *s) { return &s->out; }

void wsn_tls_session_output_consume(wsn_tls_session_t *s, size_t n) {
  if (n >= s->out.len) {
    wsn_buf_free(&s->out);
    return;
  }
  memmove(s->out.base, s->out.base + n, s->out.len - n);
  s->out.len -= n;
}

int wsn_tls_session_shutdown(wsn_tls_session_t *s) {
  if (s->failed) return WSN_TLS_ERROR;
  if (!s->done || s->shut) return WSN_TLS_OK;
  s->shut = 1;
  if (s->held.len > 0) return WSN_TLS_OK; /* sent after it, by flush_held */
  ERR_clear_error();
  int r = SSL_shutdown(s->ssl); /* 0: sent; 1: the peer's had come too */
  if (r >= 0) return WSN_TLS_OK;
  session_ssl_error(s);
  return WSN_TLS_ERROR;
}

int wsn_tls_session_eof(const wsn_tls_session_t *s) {
  return s->closed || (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}
