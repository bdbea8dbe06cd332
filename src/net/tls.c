/*
 * tls — see tls.h. OpenSSL 3; the SSL objects never see a socket.
 */
#include "net/tls.h"
#include "core/alloc.h"
#include "core/metrics.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* TLS 1.2: forward secrecy and AEAD only, the order the server prefers. */
#define TLS12_CIPHERS                                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"
/* A memory BIO whose buffer is bigger than this is replaced by a fresh
 * one once it is empty, so that an idle connection holds no BIO buffers
 * (measured: 1.7 KiB per idle connection otherwise). It costs an
 * allocation per read and write, small next to the cipher's work. */
#define BIO_KEEP 0
#define ERR_TEXT_MAX 160

struct hd_tls_ctx {
	SSL_CTX *ctx;
};

struct hd_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	bool established;
	bool failed;
	bool notified; /* close_notify queued */
	char err[ERR_TEXT_MAX];
};

/* OpenSSL's reason for the last failure on this thread, then a clean queue. */
static void ssl_reason(char *out, size_t n)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, out, n);
	else
		snprintf(out, n, "unexpected failure");
	ERR_clear_error();
}

/* ALPN: http/1.1 when the client offers it; otherwise none (no alert). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned int i = 0; i < inlen;) {
		unsigned int len = in[i];
		if (i + 1 + len > inlen)
			break;
		if (len == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + len;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static int load_error(struct hd_error *err, const char *what, const char *file)
{
	char reason[ERR_TEXT_MAX];

	ssl_reason(reason, sizeof(reason));
	return hd_error_set(err, HD_ECONFIG, "cannot load %s %s: %s", what, file, reason);
}

int hd_tls_ctx_new(const char *cert_file, const char *key_file, struct hd_tls_ctx **out,
		   struct hd_error *err)
{
	const long options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			     SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX *ctx = NULL;
	FILE *f;
	int rc = 0;

	*out = NULL;
	ERR_clear_error();
	/* fopen first: "No such file or directory" reads better than
	 * OpenSSL's wrapping of it. */
	const char *files[2][2] = {{"--tls-cert", cert_file}, {"--tls-key", key_file}};
	for (int i = 0; i < 2; i++) {
		if (!(f = fopen(files[i][1], "r"))) {
			rc = hd_error_set(err, HD_ECONFIG, "cannot open %s %s: %s", files[i][0],
					  files[i][1], strerror(errno));
			goto out;
		}
		fclose(f);
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		rc = load_error(err, "TLS context for", cert_file);
		goto out;
	}
	SSL_CTX_set_options(ctx, options);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* resumption by ticket only */
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) ||
	    !SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		rc = load_error(err, "TLS policy for", cert_file);
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		rc = load_error(err, "--tls-cert", cert_file);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
		rc = load_error(err, mismatch ? "--tls-key (it does not match the certificate)"
					      : "--tls-key", key_file);
		goto out;
	}
	*out = hd_calloc(1, sizeof(**out));
	(*out)->ctx = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

void hd_tls_ctx_free(struct hd_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ctx); /* connections hold their own references */
	free(ctx);
}

void hd_tls_ctx_describe(const struct hd_tls_ctx *ctx, char *out, size_t n)
{
	X509 *x = SSL_CTX_get0_certificate(ctx->ctx);
	char subject[256] = "?", serial[80] = "?", after[64] = "?";
	BIGNUM *bn;
	BIO *b;

	if (x) {
		X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
		if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL))) {
			char *hex = BN_bn2hex(bn);
			if (hex)
				snprintf(serial, sizeof(serial), "%s", hex);
			OPENSSL_free(hex);
			BN_free(bn);
		}
		if ((b = BIO_new(BIO_s_mem()))) {
			int len;
			if (ASN1_TIME_print(b, X509_get0_notAfter(x)) &&
			    (len = BIO_read(b, after, (int)sizeof(after) - 1)) > 0)
				after[len] = '\0';
			BIO_free(b);
		}
	}
	for (char *p = after; *p; p++)
		if (*p == ' ')
			*p = '_';
	snprintf(out, n, "subject=%s serial=%s not_after=%s", subject, serial, after);
	ERR_clear_error();
}

static BIO *mem_bio(void)
{
	BIO *b = BIO_new(BIO_s_mem());

	if (!b) {
		fprintf(stderr, "herald: out of memory (TLS BIO)\n");
		abort();
	}
	/* Empty means "no more yet", not end of file. */
	BIO_set_mem_eof_return(b, -1);
	return b;
}

struct hd_tls *hd_tls_new(struct hd_tls_ctx *ctx)
{
	struct hd_tls *t = hd_calloc(1, sizeof(*t));

	t->ssl = SSL_new(ctx->ctx);
	if (!t->ssl) {
		fprintf(stderr, "herald: out of memory (SSL_new)\n");
		abort();
	}
	t->rbio = mem_bio();
	t->wbio = mem_bio();
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_accept_state(t->ssl);
	return t;
}

void hd_tls_free(struct hd_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

/* Replaces an empty BIO whose buffer grew past BIO_KEEP. */
static void trim(struct hd_tls *t)
{
	BUF_MEM *bm;

	if (BIO_ctrl_pending(t->rbio) == 0 && BIO_get_mem_ptr(t->rbio, &bm) > 0 && bm->max > BIO_KEEP) {
		t->rbio = mem_bio();
		SSL_set0_rbio(t->ssl, t->rbio);
	}
	if (BIO_ctrl_pending(t->wbio) == 0 && BIO_get_mem_ptr(t->wbio, &bm) > 0 && bm->max > BIO_KEEP) {
		t->wbio = mem_bio();
		SSL_set0_wbio(t->ssl, t->wbio);
	}
}

static void fail(struct hd_tls *t, const char *what)
{
	size_t len = (size_t)snprintf(t->err, sizeof(t->err), "%s: ", what);

	if (len < sizeof(t->err))
		ssl_reason(t->err + len, sizeof(t->err) - len);
	t->failed = true;
}

int hd_tls_read(struct hd_tls *t, const char *in, size_t n, char *out, size_t cap, size_t *got)
{
	int rc = 0, r;

	*got = 0;
	t->err[0] = '\0';
	ERR_clear_error();
	if (t->failed)
		return HD_EINVAL;
	if (n > INT_MAX || (n > 0 && BIO_write(t->rbio, in, (int)n) != (int)n)) {
		fail(t, "input");
		return HD_EINVAL;
	}
	if (!t->established) {
		r = SSL_do_handshake(t->ssl);
		if (r != 1) {
			if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ)
				goto out;
			fail(t, "handshake");
			hd_metrics_inc(HD_M_tls_handshake_failures_total);
			rc = HD_EINVAL;
			goto out;
		}
		t->established = true;
		hd_metrics_inc(HD_M_tls_handshakes_total);
	}
	/* Decrypt every complete record: the input BIO ends up empty. */
	while (*got < cap) {
		size_t room = cap - *got;
		r = SSL_read(t->ssl, out + *got, room > INT_MAX ? INT_MAX : (int)room);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		switch (SSL_get_error(t->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			goto out;
		case SSL_ERROR_ZERO_RETURN:
			rc = 1;
			goto out;
		default:
			fail(t, "read");
			rc = HD_EINVAL;
			goto out;
		}
	}
	/* Out of room with plaintext or ciphertext left: the caller's buffer
	 * broke the contract (see HD_TLS_READ_SLACK). */
	if (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0) {
		snprintf(t->err, sizeof(t->err), "read: plaintext buffer full");
		t->failed = true;
		rc = HD_ELIMIT;
	}
out:
	trim(t);
	return rc;
}

int hd_tls_write(struct hd_tls *t, const char *p, size_t n)
{
	t->err[0] = '\0';
	if (!t->established || t->failed || t->notified)
		return HD_EINVAL;
	ERR_clear_error();
	while (n > 0) {
		int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
		/* Memory BIOs grow, so a write is never partial (no
		 * SSL_MODE_ENABLE_PARTIAL_WRITE) and never wants to wait. */
		int r = SSL_write(t->ssl, p, chunk);
		if (r <= 0) {
			fail(t, "write");
			return HD_EINVAL;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

void hd_tls_close_notify(struct hd_tls *t)
{
	if (!t->established || t->failed || t->notified)
		return;
	t->notified = true;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl); /* writes close_notify; the answer is not awaited */
	ERR_clear_error();
}

size_t hd_tls_output_pending(const struct hd_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t hd_tls_output_take(struct hd_tls *t, char *out, size_t cap)
{
	int r = BIO_read(t->wbio, out, cap > INT_MAX ? INT_MAX : (int)cap);

	trim(t);
	return r > 0 ? (size_t)r : 0;
}

bool hd_tls_established(const struct hd_tls *t)
{
	return t->established;
}

const char *hd_tls_error(const struct hd_tls *t)
{
	return t->err;
}

const char *hd_tls_version(const struct hd_tls *t)
{
	return SSL_get_version(t->ssl);
}

const char *hd_tls_cipher(const struct hd_tls *t)
{
	return SSL_get_cipher_name(t->ssl);
}
