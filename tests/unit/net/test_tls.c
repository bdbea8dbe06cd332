/*
 * Unit tests for net/tls.c: an OpenSSL client SSL (memory BIOs) and the
 * server-side module talk to each other in memory, with bytes moved by
 * hand: handshake, data both ways (in pieces of every size), close_notify,
 * garbage, refused versions, ciphers and renegotiation, and reloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/err.h"
#include "core/metrics.h"
#include "net/tls.h"
#include "tls_testcert.h"

#define BIG (200 * 1024)

static char dir[] = "/tmp/hd_test_tls_XXXXXX";
static char cert1[256], key1[256], cert2[256], key2[256];

/* A client SSL and a server hd_tls, and the plaintext the server read. */
struct pair {
	SSL_CTX *cctx;
	SSL *cli;
	BIO *cin, *cout; /* the client's read and write BIOs (owned by cli) */
	struct hd_tls *srv;
	char *plain;
	size_t plain_len, plain_cap;
	int srv_rc; /* last hd_tls_read result */
};

static void pair_open(struct pair *p, struct hd_tls_ctx *ctx, int max_version, const char *ciphers)
{
	memset(p, 0, sizeof(*p));
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->cctx);
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
	if (max_version) {
		SSL_CTX_set_security_level(p->cctx, 0);
		SSL_CTX_set_min_proto_version(p->cctx, TLS1_VERSION);
		SSL_CTX_set_max_proto_version(p->cctx, max_version);
	}
	if (ciphers)
		assert_int_equal(SSL_CTX_set_cipher_list(p->cctx, ciphers), 1);
	p->cli = SSL_new(p->cctx);
	p->cin = BIO_new(BIO_s_mem());
	p->cout = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(p->cin, -1);
	SSL_set_bio(p->cli, p->cin, p->cout);
	SSL_set_connect_state(p->cli);
	SSL_set_alpn_protos(p->cli, (const unsigned char *)"\x02h2\x08http/1.1", 12);
	p->srv = hd_tls_new(ctx);
	p->plain_cap = BIG + HD_TLS_READ_SLACK + 65536;
	p->plain = malloc(p->plain_cap);
}

static void pair_close(struct pair *p)
{
	SSL_free(p->cli);
	SSL_CTX_free(p->cctx);
	hd_tls_free(p->srv);
	free(p->plain);
}

/* Moves the client's output to the server in pieces of at most piece bytes
 * (0: all at once), each read with exactly the room the contract asks for. */
static void to_server(struct pair *p, size_t piece)
{
	char buf[64 * 1024];
	int n;

	while ((n = BIO_read(p->cout, buf, sizeof(buf))) > 0) {
		for (size_t off = 0; off < (size_t)n;) {
			size_t len = (size_t)n - off, got = 0;
			if (piece && len > piece)
				len = piece;
			assert_true(p->plain_len + len + HD_TLS_READ_SLACK <= p->plain_cap);
			p->srv_rc = hd_tls_read(p->srv, buf + off, len, p->plain + p->plain_len,
						len + HD_TLS_READ_SLACK, &got);
			p->plain_len += got;
			off += len;
			if (p->srv_rc != 0)
				return;
		}
	}
}

static void to_client(struct pair *p)
{
	char buf[64 * 1024];
	size_t n;

	while ((n = hd_tls_output_take(p->srv, buf, sizeof(buf))) > 0)
		assert_int_equal(BIO_write(p->cin, buf, (int)n), (int)n);
	assert_int_equal(hd_tls_output_pending(p->srv), 0);
}

/* Runs the handshake; returns the client's last SSL_do_handshake result. */
static int handshake(struct pair *p)
{
	int r = 0, e;

	for (int i = 0; i < 10; i++) {
		r = SSL_do_handshake(p->cli);
		/* Before the BIOs are touched: they hold the retry state. */
		e = SSL_get_error(p->cli, r);
		to_server(p, 0);
		to_client(p);
		if (r == 1 || p->srv_rc != 0 || e != SSL_ERROR_WANT_READ)
			break;
	}
	if (p->srv_rc != 0) /* the client reads the server's alert */
		r = SSL_do_handshake(p->cli);
	ERR_clear_error();
	return r;
}

static long peer_serial(struct pair *p)
{
	X509 *x = SSL_get1_peer_certificate(p->cli);
	long v;

	assert_non_null(x);
	v = ASN1_INTEGER_get(X509_get0_serialNumber(x));
	X509_free(x);
	return v;
}

static struct hd_tls_ctx *ctx_of(const char *cert, const char *key)
{
	struct hd_tls_ctx *ctx = NULL;
	struct hd_error err = {0};

	assert_int_equal(hd_tls_ctx_new(cert, key, &ctx, &err), 0);
	assert_non_null(ctx);
	return ctx;
}

static void test_handshake_and_data_both_ways(void **state)
{
	struct hd_tls_ctx *ctx = ctx_of(cert1, key1);
	int64_t before = hd_metrics_get(HD_M_tls_handshakes_total);
	const unsigned char *alpn;
	unsigned alpn_len;
	struct pair p;

	pair_open(&p, ctx, 0, NULL);
	assert_false(hd_tls_established(p.srv));
	assert_int_equal(handshake(&p), 1);
	assert_true(hd_tls_established(p.srv));
	assert_int_equal(hd_metrics_get(HD_M_tls_handshakes_total), before + 1);
	assert_string_equal(hd_tls_version(p.srv), "TLSv1.3");
	assert_string_equal(SSL_get_version(p.cli), "TLSv1.3");
	SSL_get0_alpn_selected(p.cli, &alpn, &alpn_len);
	assert_int_equal(alpn_len, 8);
	assert_memory_equal(alpn, "http/1.1", 8);

	/* Client to server: a request, then BIG bytes in records of every size,
	 * fed to the server in pieces of 1, 7, 1000 and 20000 bytes. */
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(SSL_write(p.cli, req, sizeof(req) - 1), (int)sizeof(req) - 1);
	to_server(&p, 0);
	assert_int_equal(p.srv_rc, 0);
	assert_int_equal(p.plain_len, sizeof(req) - 1);
	assert_memory_equal(p.plain, req, sizeof(req) - 1);
	char *big = malloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)(i * 131 + 7);
	const size_t pieces[] = {1, 7, 1000, 20000};
	for (size_t k = 0; k < 4; k++) {
		p.plain_len = 0;
		for (size_t off = 0; off < BIG;) {
			size_t len = (off / 3 + k * 5000) % 17000 + 1;
			if (len > BIG - off)
				len = BIG - off;
			assert_int_equal(SSL_write(p.cli, big + off, (int)len), (int)len);
			off += len;
		}
		to_server(&p, pieces[k]);
		assert_int_equal(p.srv_rc, 0);
		assert_int_equal(p.plain_len, BIG);
		assert_memory_equal(p.plain, big, BIG);
	}

	/* Server to client. */
	assert_int_equal(hd_tls_write(p.srv, big, BIG), 0);
	to_client(&p);
	size_t got = 0;
	char *back = malloc(BIG);
	int r;
	while (got < BIG && (r = SSL_read(p.cli, back + got, (int)(BIG - got))) > 0)
		got += (size_t)r;
	assert_int_equal(got, BIG);
	assert_memory_equal(back, big, BIG);
	free(back);
	free(big);
	pair_close(&p);
	hd_tls_ctx_free(ctx);
}

static void test_close_notify_both_ways(void **state)
{
	struct hd_tls_ctx *ctx = ctx_of(cert1, key1);
	struct pair p;
	char c;

	/* The client's close_notify ends the server's input, after the data
	 * that came with it. */
	pair_open(&p, ctx, 0, NULL);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(SSL_write(p.cli, "bye", 3), 3);
	assert_int_equal(SSL_shutdown(p.cli), 0);
	to_server(&p, 0);
	assert_int_equal(p.srv_rc, 1);
	assert_int_equal(p.plain_len, 3);
	assert_memory_equal(p.plain, "bye", 3);
	pair_close(&p);

	/* The server's close_notify ends the client's input; then no writes. */
	pair_open(&p, ctx, 0, NULL);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(hd_tls_write(p.srv, "last", 4), 0);
	hd_tls_close_notify(p.srv);
	hd_tls_close_notify(p.srv); /* once */
	assert_int_equal(hd_tls_write(p.srv, "more", 4), HD_EINVAL);
	to_client(&p);
	char buf[8];
	assert_int_equal(SSL_read(p.cli, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "last", 4);
	assert_int_equal(SSL_read(p.cli, &c, 1), 0);
	assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
	pair_close(&p);
	hd_tls_ctx_free(ctx);
}

static void test_garbage_fails_the_handshake(void **state)
{
	struct hd_tls_ctx *ctx = ctx_of(cert1, key1);
	int64_t before = hd_metrics_get(HD_M_tls_handshake_failures_total);
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	char out[sizeof(http) + HD_TLS_READ_SLACK];
	struct hd_tls *t = hd_tls_new(ctx);
	size_t got = 1;

	assert_int_equal(hd_tls_write(t, "x", 1), HD_EINVAL); /* before the handshake */
	assert_int_equal(hd_tls_read(t, http, sizeof(http) - 1, out, sizeof(out), &got), HD_EINVAL);
	assert_int_equal(got, 0);
	assert_non_null(strstr(hd_tls_error(t), "http request"));
	assert_int_equal(hd_metrics_get(HD_M_tls_handshake_failures_total), before + 1);
	/* Failed stays failed. */
	assert_int_equal(hd_tls_read(t, "\x16", 1, out, sizeof(out), &got), HD_EINVAL);
	hd_tls_free(t);

	/* A record header announcing a handshake, then junk. */
	t = hd_tls_new(ctx);
	char junk[64] = "\x16\x03\x01\x00\x30";
	for (size_t i = 5; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37);
	assert_int_equal(hd_tls_read(t, junk, sizeof(junk), out, sizeof(out), &got), HD_EINVAL);
	hd_tls_free(t);

	/* A partial ClientHello is not an error: more may come. */
	t = hd_tls_new(ctx);
	assert_int_equal(hd_tls_read(t, "\x16\x03\x01\x02\x00\x01", 6, out, sizeof(out), &got), 0);
	assert_int_equal(got, 0);
	hd_tls_free(t);
	hd_tls_ctx_free(ctx);
}

static void test_old_versions_cbc_and_renegotiation_are_refused(void **state)
{
	struct hd_tls_ctx *ctx = ctx_of(cert1, key1);
	struct pair p;

	pair_open(&p, ctx, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0");
	assert_int_not_equal(handshake(&p), 1);
	assert_int_equal(p.srv_rc, HD_EINVAL);
	assert_non_null(strstr(hd_tls_error(p.srv), "unsupported protocol"));
	pair_close(&p);

	pair_open(&p, ctx, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384");
	assert_int_not_equal(handshake(&p), 1);
	assert_int_equal(p.srv_rc, HD_EINVAL);
	assert_non_null(strstr(hd_tls_error(p.srv), "no shared cipher"));
	pair_close(&p);

	/* TLS 1.2 with an AEAD suite works; a renegotiation does not. */
	pair_open(&p, ctx, TLS1_2_VERSION, NULL);
	assert_int_equal(handshake(&p), 1);
	assert_string_equal(hd_tls_version(p.srv), "TLSv1.2");
	assert_non_null(strstr(hd_tls_cipher(p.srv), "GCM"));
	assert_int_equal(SSL_renegotiate(p.cli), 1);
	int r = handshake(&p);
	assert_int_not_equal(r, 1);
	pair_close(&p);
	hd_tls_ctx_free(ctx);
}

static void test_read_room_contract(void **state)
{
	struct hd_tls_ctx *ctx = ctx_of(cert1, key1);
	char rec[16384], out[4096], cipher[32768];
	struct pair p;
	size_t got;
	int n;

	/* A full record read into less room than the contract asks for. */
	pair_open(&p, ctx, 0, NULL);
	assert_int_equal(handshake(&p), 1);
	memset(rec, 'r', sizeof(rec));
	assert_int_equal(SSL_write(p.cli, rec, sizeof(rec)), (int)sizeof(rec));
	n = BIO_read(p.cout, cipher, sizeof(cipher));
	assert_true(n > (int)sizeof(rec));
	assert_int_equal(hd_tls_read(p.srv, cipher, (size_t)n, out, sizeof(out), &got), HD_ELIMIT);
	pair_close(&p);
	hd_tls_ctx_free(ctx);
}

static void test_reload_new_context_old_connections_keep_theirs(void **state)
{
	struct hd_tls_ctx *ctx1 = ctx_of(cert1, key1), *ctx2;
	struct pair a, b;
	char desc[512];

	hd_tls_ctx_describe(ctx1, desc, sizeof(desc));
	assert_non_null(strstr(desc, "subject=/CN=localhost"));
	assert_non_null(strstr(desc, "serial=01"));
	assert_non_null(strstr(desc, "not_after="));
	pair_open(&a, ctx1, 0, NULL);
	/* The reload: the old context is freed while a uses it. */
	ctx2 = ctx_of(cert2, key2);
	hd_tls_ctx_free(ctx1);
	pair_open(&b, ctx2, 0, NULL);
	assert_int_equal(handshake(&a), 1);
	assert_int_equal(handshake(&b), 1);
	assert_int_equal(peer_serial(&a), 1);
	assert_int_equal(peer_serial(&b), 2);
	assert_int_equal(SSL_write(a.cli, "still", 5), 5);
	to_server(&a, 0);
	assert_int_equal(a.plain_len, 5);
	pair_close(&a);
	pair_close(&b);
	hd_tls_ctx_free(ctx2);
}

static void test_context_errors(void **state)
{
	struct hd_tls_ctx *ctx = (struct hd_tls_ctx *)1;
	struct hd_error err = {0};

	assert_int_equal(hd_tls_ctx_new("/nonexistent/c.pem", key1, &ctx, &err), HD_ECONFIG);
	assert_null(ctx);
	assert_non_null(strstr(err.msg, "--tls-cert /nonexistent/c.pem"));
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(hd_tls_ctx_new(key1, key1, &ctx, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "cannot load --tls-cert"));
	assert_int_equal(hd_tls_ctx_new(cert1, cert1, &ctx, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "cannot load --tls-key"));
	assert_int_equal(hd_tls_ctx_new(cert1, key2, &ctx, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_null(ctx);
	hd_tls_ctx_free(NULL);
	hd_tls_free(NULL);
}

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	if (testcert_make(dir, "one", 1, cert1, key1, sizeof(cert1)) ||
	    testcert_make(dir, "two", 2, cert2, key2, sizeof(cert2)))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	unlink(cert1);
	unlink(key1);
	unlink(cert2);
	unlink(key2);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_data_both_ways),
		cmocka_unit_test(test_close_notify_both_ways),
		cmocka_unit_test(test_garbage_fails_the_handshake),
		cmocka_unit_test(test_old_versions_cbc_and_renegotiation_are_refused),
		cmocka_unit_test(test_read_room_contract),
		cmocka_unit_test(test_reload_new_context_old_connections_keep_theirs),
		cmocka_unit_test(test_context_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
