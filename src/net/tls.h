/*
 * tls — the server side of TLS (OpenSSL 3) over memory BIOs, for HTTPS and
 * WSS. Layer: net. Pure of libuv: http/server.c does the socket I/O and
 * moves bytes in and out of this module. Every function runs on the loop
 * thread (OpenSSL's error queue is per thread; each call clears it first).
 *
 * A context (struct hd_tls_ctx) is one certificate chain and key with
 * herald's fixed policy: TLS 1.2 and 1.3 only; AEAD ciphers only (the TLS
 * 1.3 suites; ECDHE-ECDSA/RSA with AES-GCM or CHACHA20-POLY1305 for 1.2);
 * no compression; no renegotiation; the server's cipher order; ALPN
 * "http/1.1" when the client offers it (otherwise no ALPN). A reload builds
 * a new context for new connections: each connection holds a reference to
 * the SSL_CTX it started with (OpenSSL counts it), so freeing the old
 * context never disturbs a connection that uses it.
 *
 * A connection (struct hd_tls) has two memory BIOs. Input: hd_tls_read
 * takes ciphertext read from the socket, runs the handshake and decrypts
 * every record it completes into the caller's buffer; what is left inside
 * OpenSSL is at most one partial record, and the input BIO is empty again
 * when the call returns. Output: hd_tls_write encrypts; handshake records,
 * alerts, session tickets and close_notify come out of the same BIO;
 * hd_tls_output_take moves them out, and the caller writes them to the
 * socket in that order. Idle connections keep no big buffers: OpenSSL's
 * record buffers are released when empty (SSL_MODE_RELEASE_BUFFERS), and
 * so are BIO buffers that grew past a few KiB.
 */
#ifndef HD_NET_TLS_H
#define HD_NET_TLS_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Largest plaintext one TLS record carries (2^14). hd_tls_read may deliver
 * up to this much more than the ciphertext it is given (a record whose
 * start came with an earlier call), so its output needs n + HD_TLS_READ_SLACK
 * bytes of room for nothing to stay behind.
 */
#define HD_TLS_READ_SLACK 16384

struct hd_tls_ctx;
struct hd_tls;

/*
 * Loads cert_file (PEM: the certificate, then its chain) and key_file (PEM
 * private key matching it) into a new context. Returns 0 with *out owned,
 * or HD_ECONFIG with err naming the file and OpenSSL's reason.
 */
int hd_tls_ctx_new(const char *cert_file, const char *key_file, struct hd_tls_ctx **out,
		   struct hd_error *err);
/* Frees the context; connections made from it keep working. NULL is fine. */
void hd_tls_ctx_free(struct hd_tls_ctx *ctx);
/* Writes "subject=… serial=… not_after=…" of the context's certificate
 * into out (n bytes, NUL-terminated), for log lines. */
void hd_tls_ctx_describe(const struct hd_tls_ctx *ctx, char *out, size_t n);

/* A new server-side connection of ctx (borrowed; the connection holds its
 * own reference to ctx's SSL_CTX). Returns owned. */
struct hd_tls *hd_tls_new(struct hd_tls_ctx *ctx);
void hd_tls_free(struct hd_tls *t);

/*
 * Takes n bytes of ciphertext (borrowed), advances the handshake and
 * decrypts into out[0..cap). *got is the plaintext written. Returns 0
 * (more input may follow; output may be pending even when *got is 0),
 * 1 when the client sent close_notify (after *got bytes: nothing follows),
 * HD_EINVAL on a protocol error or a refused handshake (the alert for the
 * client, if any, is pending output; then close), or HD_ELIMIT when
 * plaintext did not fit in cap (cap < n + HD_TLS_READ_SLACK; then close).
 * Counts tls_handshakes_total and tls_handshake_failures_total.
 */
int hd_tls_read(struct hd_tls *t, const char *in, size_t n, char *out, size_t cap, size_t *got);

/* Encrypts p[0..n) (borrowed) into the output. Returns 0, or HD_EINVAL
 * before the handshake finished, after close_notify or on a failure (then
 * close). */
int hd_tls_write(struct hd_tls *t, const char *p, size_t n);

/* Queues close_notify (once; a no-op before the handshake finished). */
void hd_tls_close_notify(struct hd_tls *t);

/* Ciphertext waiting to be written to the socket. */
size_t hd_tls_output_pending(const struct hd_tls *t);
/* Moves up to cap bytes of that ciphertext into out; returns how many. */
size_t hd_tls_output_take(struct hd_tls *t, char *out, size_t cap);

/* Whether the handshake finished. */
bool hd_tls_established(const struct hd_tls *t);
/* Why the last call failed (OpenSSL's reason), "" if it did not; borrowed,
 * valid until the next call on t. */
const char *hd_tls_error(const struct hd_tls *t);
/* The negotiated protocol version and cipher ("TLSv1.3",
 * "TLS_AES_128_GCM_SHA256"); borrowed, static. */
const char *hd_tls_version(const struct hd_tls *t);
const char *hd_tls_cipher(const struct hd_tls *t);

#endif
