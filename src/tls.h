/*
 * TLS client over OpenSSL, bytes in and bytes out. Pure: no sockets, threads
 * or N-API. The connection code hands it the ciphertext it read from the
 * socket and writes out the ciphertext this layer produces; in between it
 * gets plaintext. OpenSSL is the node binary's copy (Node 20 exports its
 * OpenSSL 3 symbols); the C tests link the system's libssl of the same
 * version.
 *
 * Node is the reference for behaviour: TLS 1.2 minimum, TLS 1.3 maximum,
 * Node's default cipher list, no ALPN, SNI only for host names, and errors
 * carrying the `code` and `message` a `ws` user sees from Node's `tls`
 * (certificate errors as in Node's X509ErrorCode table, hostname mismatch
 * as tls.checkServerIdentity words it, OpenSSL errors as TLSWrap builds
 * them). Expected strings in test/c/test_tls.c were checked against Node
 * 20.20.2 (OpenSSL 3.0.19).
 *
 * I/O: one BIO per session, of a BIO_METHOD owned by the context. Its read
 * side takes bytes from the session's input (the caller's bytes, borrowed
 * for the duration of wsn_tls_session_input(), or a copy made by
 * wsn_tls_session_feed()); its write side appends to the session's output
 * buffer, so a write never blocks and SSL_write never returns WANT_WRITE.
 * Why not a pair of BIO_s_mem: two BIOs and two BUF_MEMs per session, and a
 * mem BIO keeps its high-water buffer after it drains; here both buffers are
 * freed when empty, so an idle session owns only OpenSSL's own state.
 * SSL_MODE_RELEASE_BUFFERS makes OpenSSL drop its record buffers when idle.
 *
 * Memory per idle session after the handshake (TLS 1.3, a P-256
 * self-signed server certificate, the server's tickets and one record read,
 * input and output drained), measured by test_tls.c with ASan's allocator
 * counters: 17,354 bytes requested in about 126 blocks; 20.0 to 20.5 KB
 * counted by glibc's mallinfo2 in a plain -O2 build. OpenSSL 3.0 owns
 * nearly all of it: the SSL struct alone is 7,608 bytes, the two AES-GCM
 * contexts 1,920, the SSL_SESSION 928 plus the peer's parsed certificate
 * chain, which OpenSSL keeps for the session's life (with a leaf +
 * intermediate chain the total is 20.6 KB requested for P-256, 21.7 KB for
 * RSA-2048, 24 to 25 KB with malloc's overhead), eleven reference-count
 * locks of 56 bytes. This layer's own struct is 144 bytes. Without
 * SSL_MODE_RELEASE_BUFFERS it is 50,617 bytes: the read and write record
 * buffers (16 KiB + 200 each) stay allocated. The read buffer goes at the
 * first application data record after the handshake, so between the
 * handshake and the server's first bytes (the HTTP 101) a session holds
 * 33.9 KB.
 *
 * Threading: a session is used by one thread at a time (the I/O thread). A
 * context may be built on one thread and used on another; it is shared by
 * reference count (atomic), so it is freed when its creator and its last
 * session have released it. OpenSSL's error queue is per thread; every call
 * here leaves it empty.
 */
#ifndef WSN_TLS_H
#define WSN_TLS_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

typedef struct wsn_tls_ctx_s wsn_tls_ctx_t;
typedef struct wsn_tls_session_s wsn_tls_session_t;

/*
 * An error as Node would give it to a ws user: JS builds an Error with this
 * message and sets err.code = code (unless code is ""). message is
 * malloc'd; it is NULL only if memory ran out while building it.
 */
typedef struct {
  char code[96];
  char *message;
  /* ERR_TLS_CERT_ALTNAME_INVALID only: the peer certificate (DER,
   * malloc'd), for the `cert` Node's error carries; else NULL. */
  unsigned char *cert_der;
  size_t cert_der_len;
} wsn_tls_error_t;

/* Frees err->message and empties err. */
void wsn_tls_error_clear(wsn_tls_error_t *err);

/*
 * Node's code and message for an X509_V_ERR_* verification result (what
 * Node's TLSSocket reports on a rejected certificate): the code is the
 * constant's name without X509_V_ERR_ for the 28 errors Node names
 * ("UNSPECIFIED" for the others, as Node), the message OpenSSL's
 * X509_verify_cert_error_string, which is what Node uses (so for
 * DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate").
 */
void wsn_tls_x509_error(long verify_result, const char **code,
                        const char **message);

/*
 * Options of a client context, the subset of tls.connect options ws passes
 * on that C can honour. Pointers are borrowed for the call only. A length of
 * 0 (or NULL) means "not given", as an empty string is for Node.
 */
typedef struct {
  /* Trusted CAs: PEM, one or more CERTIFICATE blocks. Node trusts only
   * these when `ca` is given; without it the caller passes Node's default
   * set (tls.rootCertificates joined by "\n"), so no system store is read.
   * Like Node, text that is not a certificate is skipped silently. */
  const char *ca;
  size_t ca_len;
  /* Client certificate: PEM, the leaf first, then its chain. */
  const char *cert;
  size_t cert_len;
  /* Private key: PEM, possibly encrypted with `passphrase`. */
  const char *key;
  size_t key_len;
  /* PKCS#12 (DER bytes) holding key, certificate and chain. */
  const uint8_t *pfx;
  size_t pfx_len;
  /* NUL-terminated, for key and pfx; NULL: none. */
  const char *passphrase;
  /* rejectUnauthorized (Node's default is true): when 0 nothing about the
   * peer's certificate is checked, as with Node. */
  int reject_unauthorized;
} wsn_tls_ctx_options_t;

/*
 * Builds a context (an SSL_CTX and its trust store). Build one per distinct
 * set of options and share it: parsing Node's ~140 root certificates takes
 * milliseconds, while a session costs about 20 KB (see above). On failure
 * returns NULL and fills *err with Node's error for the same option:
 *   garbage key      "error:1E08010C:DECODER routines::unsupported"
 *                    code ERR_OSSL_UNSUPPORTED
 *   wrong passphrase "error:1C800064:Provider routines::bad decrypt"
 *                    code ERR_OSSL_BAD_DECRYPT
 *   key not the cert's "error:05800074:x509 certificate routines::key
 *                    values mismatch", code ERR_OSSL_X509_KEY_VALUES_MISMATCH
 *   garbage cert     "error:0480006C:PEM routines::no start line"
 *                    code ERR_OSSL_PEM_NO_START_LINE
 *   bad pfx          OpenSSL's reason alone, no code ("mac verify failure",
 *                    "not enough data"), as Node's LoadPKCS12 throws it.
 * Node applies ca, then cert, then key, then pfx; so does this.
 */
wsn_tls_ctx_t *wsn_tls_ctx_new(const wsn_tls_ctx_options_t *opts,
                               wsn_tls_error_t *err);

/*
 * A server context: the same options (and the same errors, thrown as
 * Node's tls.createSecureContext throws them) but ca only builds the store
 * (no client certificate is requested) and reject_unauthorized is unused.
 * Node's tls server defaults: TLS 1.2 to 1.3, Node's cipher list, ALPN
 * "http/1.1" chosen when the client offers it (as Node's https server
 * does; a client offering only other protocols gets no ALPN answer), TLS
 * 1.3 tickets. No session cache: resumption is by stateless tickets, so an
 * idle server holds nothing per past client.
 */
wsn_tls_ctx_t *wsn_tls_server_ctx_new(const wsn_tls_ctx_options_t *opts,
                                      wsn_tls_error_t *err);

/* Takes one more reference (a listener holds one while it accepts). */
void wsn_tls_ctx_ref(wsn_tls_ctx_t *ctx);

/* Drops the creator's reference; the context lives on while sessions use
 * it. */
void wsn_tls_ctx_release(wsn_tls_ctx_t *ctx);

/*
 * Statuses returned by the session calls. Errors are sticky: after
 * WSN_TLS_ERROR every call returns it again. On an error, still write out
 * the pending output (it may hold the alert that tells the peer why), then
 * close the socket.
 */
enum {
  WSN_TLS_OK = 0,     /* done (handshake complete, bytes written) */
  WSN_TLS_AGAIN = 1,  /* needs more ciphertext from the peer */
  WSN_TLS_CLOSED = 2, /* the peer sent close_notify: no more plaintext */
  WSN_TLS_ERROR = -1  /* fatal: see wsn_tls_session_error() */
};

/*
 * A client session over ctx (which it references). servername is sent as
 * SNI unless it is NULL, empty or an IP literal (RFC 6066 forbids IPs; Node
 * sends one only if the user sets servername to an IP explicitly, with a
 * deprecation warning, while ws itself passes "" for IP hosts). verify_host
 * is the name checked against the certificate, Node's
 * `options.servername || options.host`: an IP literal (also "[v6]") is
 * checked against the iPAddress SANs (X509_VERIFY_PARAM_set1_ip_asc), a
 * name against the dNSName SANs or, if there are none, the subject CN
 * (X509_VERIFY_PARAM_set1_host; one trailing dot is ignored, as Node's
 * unfqdn does). NULL skips the name check (the chain is still verified).
 * The rules are OpenSSL's, which agree with checkServerIdentity on RFC 6125:
 * case-insensitive, a wildcard only in the leftmost label, never in an
 * xn-- label, never *.tld. Returns NULL when out of memory.
 */
wsn_tls_session_t *wsn_tls_session_new(wsn_tls_ctx_t *ctx,
                                       const char *servername,
                                       const char *verify_host);

/*
 * A server session over a server context (which it references): it waits
 * for the ClientHello (SSL_set_accept_state); feed and read as for a
 * client. A failed handshake's error is Node's as a tls server reports it
 * in 'tlsClientError' (plain HTTP: code ERR_SSL_HTTP_REQUEST). Returns NULL
 * when out of memory.
 */
wsn_tls_session_t *wsn_tls_session_new_server(wsn_tls_ctx_t *ctx);

/* Frees the session (and its reference to the context). Sends nothing: call
 * wsn_tls_session_shutdown() first for a close_notify. */
void wsn_tls_session_free(wsn_tls_session_t *s);

/*
 * Starts or continues the handshake: WSN_TLS_OK once it is complete, AGAIN
 * while it waits for the peer, ERROR if it failed. The first call writes the
 * ClientHello to the output. The read calls below also advance the
 * handshake, so a caller may just feed and read, and test
 * wsn_tls_session_handshake_done() after each call.
 * Certificate rejections (only with reject_unauthorized) are decided at the
 * end of OpenSSL's verification, in Node's order: a chain error wins over a
 * name mismatch, and among chain errors the last one OpenSSL reports wins
 * (so an expired self-signed certificate gives CERT_HAS_EXPIRED, as in
 * Node). Node completes the handshake and then destroys the socket; here the
 * handshake fails at once with OpenSSL's alert to the server, which is the
 * same error for the ws user and sends nothing more to an unverified peer.
 */
int wsn_tls_session_handshake(wsn_tls_session_t *s);

/* 1 once the handshake has completed (and the certificate was accepted). */
int wsn_tls_session_handshake_done(const wsn_tls_session_t *s);

/*
 * Gives ciphertext from the socket to the session, copied: data may be
 * reused at once. Nothing is decrypted until a read call. Returns WSN_TLS_OK
 * or WSN_TLS_ERROR (out of memory, or the session has failed).
 */
int wsn_tls_session_feed(wsn_tls_session_t *s, const uint8_t *data,
                         size_t len);

/*
 * Decrypts fed ciphertext into dst[0..cap): *nread bytes, at most one TLS
 * record's worth per call (16 KiB), so loop while it returns OK. Returns OK
 * (*nread > 0), AGAIN (all fed bytes consumed, *nread == 0), CLOSED or
 * ERROR. Advances the handshake first if needed. Like every read call, it
 * may also append to the output (a renegotiation's handshake, the writes
 * held during one, an alert): check the output after reading too.
 */
int wsn_tls_session_read(wsn_tls_session_t *s, uint8_t *dst, size_t cap,
                         size_t *nread);

/*
 * Decrypts all fed ciphertext, appending the plaintext to out. Returns AGAIN
 * (everything consumed; the usual result), CLOSED or ERROR; in every case
 * the bytes appended before it are valid plaintext.
 */
int wsn_tls_session_read_buf(wsn_tls_session_t *s, wsn_buf_t *out);

/*
 * feed + read_buf without copying the ciphertext: OpenSSL reads the records
 * straight from data, which is borrowed only for this call (a trailing
 * partial record is copied into the session). This is the read path for a
 * socket: the loop's shared read buffer in, the plaintext appended to a
 * buffer the frame parser then works on in place. Same results as
 * read_buf.
 */
int wsn_tls_session_input(wsn_tls_session_t *s, const uint8_t *data,
                          size_t len, wsn_buf_t *out);

/*
 * Encrypts data[0..len) and appends the records to the output. Only after
 * the handshake is done (WSN_TLS_AGAIN before, nothing written). Each call
 * closes at least one record (22+ bytes of overhead in TLS 1.3), so write a
 * turn's frames in one call where possible, as corking does anyway.
 * Returns OK or ERROR (also after this side's shutdown). While a TLS 1.2
 * server renegotiates (Node's client accepts that, so this one does),
 * OpenSSL cannot write: the bytes are then kept in the session, still
 * returning OK, and go out in order from the read call that completes the
 * renegotiation. A KeyUpdate the server requested goes out before the next
 * record written.
 */
int wsn_tls_session_write(wsn_tls_session_t *s, const void *data,
                          size_t len);

/*
 * The ciphertext waiting for the socket: handshake messages, records,
 * alerts, close_notify. The caller writes it out and then either calls
 * wsn_tls_session_output_consume() or takes the memory whole with
 * wsn_buf_steal() (for an async write, which needs it until its callback).
 * Never NULL. Its length is the "want to write" signal.
 */
wsn_buf_t *wsn_tls_session_output(wsn_tls_session_t *s);

/* Drops the first n bytes of the output; frees the buffer once empty. */
void wsn_tls_session_output_consume(wsn_tls_session_t *s, size_t n);

/*
 * Appends a close_notify to the output (once; after the handshake only:
 * before it there is nothing to close cleanly; after any held writes).
 * Writes are refused after. Returns OK or ERROR.
 */
int wsn_tls_session_shutdown(wsn_tls_session_t *s);

/*
 * For the socket's EOF: 1 if the peer's close_notify has been read (a clean
 * end), 0 if the stream was cut short (truncation: an attacker or a crash
 * can end TCP, only the peer can send close_notify). Call it after the
 * read calls have consumed what was fed. Node itself does not treat a
 * truncated stream as an error, so what to do with 0 is the caller's call.
 */
int wsn_tls_session_eof(const wsn_tls_session_t *s);

/*
 * The session's error after WSN_TLS_ERROR (NULL before). Certificate errors:
 * see wsn_tls_x509_error(). Name mismatch: code ERR_TLS_CERT_ALTNAME_INVALID
 * and checkServerIdentity's text, e.g.
 *   "Hostname/IP does not match certificate's altnames: Host: example.com.
 *    is not in the cert's altnames: DNS:localhost, IP Address:127.0.0.1"
 *   "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not
 *    in the cert's list: 127.0.0.1"
 * (the altnames printed as Node prints subjectaltname). Other TLS errors
 * (alerts, protocol errors, garbage): as Node's TLSWrap, the message is
 * OpenSSL's error queue as ERR_print_errors writes it, e.g.
 *   "<thread id>:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert
 *    handshake failure:<file>:<line>:SSL alert number 40\n"
 * and the code is "ERR_SSL_" + the first error's reason, upper-cased with
 * spaces as underscores (ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE). Out of
 * memory: code "ERR_OUT_OF_MEMORY".
 */
const wsn_tls_error_t *wsn_tls_session_error(const wsn_tls_session_t *s);

#endif /* WSN_TLS_H */
