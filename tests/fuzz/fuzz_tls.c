/*
 * fuzz_tls — libFuzzer target for the server side of TLS (src/net/tls.c):
 * the input is what a client sends first (a ClientHello and whatever
 * follows it, or anything else), fed to a fresh session three times: whole,
 * byte by byte, and in pieces of 7, each read given exactly the room the
 * contract asks for (n + HD_TLS_READ_SLACK). Every call must answer 0, 1 or
 * an error and never overrun that room; the output (alerts, handshake
 * records) must drain completely; a session that somehow completes the
 * handshake must take a write and a close_notify. The context (a
 * self-signed P-256 certificate made at start) is built once.
 */
#include "net/tls.h"
#include "../unit/net/tls_testcert.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct hd_tls_ctx *ctx;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_tls: broken promise: %s\n", what);
		abort();
	}
}

static void init(void)
{
	char dir[] = "/tmp/hd_fuzz_tls_XXXXXX", cert[256], key[256];
	struct hd_error err = {0};

	check(mkdtemp(dir) != NULL, "mkdtemp");
	check(testcert_make(dir, "fuzz", 1, cert, key, sizeof(cert)) == 0, "test certificate");
	check(hd_tls_ctx_new(cert, key, &ctx, &err) == 0, err.msg);
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

static void session(const uint8_t *data, size_t size, size_t piece)
{
	struct hd_tls *t = hd_tls_new(ctx);
	char *out = malloc(piece + HD_TLS_READ_SLACK + 1);
	char sink[4096];
	int rc = 0;

	for (size_t off = 0; off < size && rc == 0;) {
		size_t len = size - off < piece ? size - off : piece, got = 99;
		/* A guard byte past the room: it must stay untouched. */
		out[len + HD_TLS_READ_SLACK] = 0x5a;
		rc = hd_tls_read(t, (const char *)data + off, len, out, len + HD_TLS_READ_SLACK, &got);
		check(rc == 0 || rc == 1 || rc == HD_EINVAL || rc == HD_ELIMIT, "result");
		check(got <= len + HD_TLS_READ_SLACK, "plaintext within the room");
		check(out[len + HD_TLS_READ_SLACK] == 0x5a, "guard byte");
		check(rc >= 0 || *hd_tls_error(t), "a reason for the failure");
		while (hd_tls_output_take(t, sink, sizeof(sink)) > 0)
			;
		check(hd_tls_output_pending(t) == 0, "output drains");
		off += len;
	}
	if (hd_tls_established(t) && rc == 0) {
		check(hd_tls_write(t, "HTTP/1.1 200 OK\r\n\r\n", 19) == 0, "write");
		hd_tls_close_notify(t);
		check(hd_tls_output_pending(t) > 0, "records to send");
	}
	free(out);
	hd_tls_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx)
		init();
	session(data, size, size ? size : 1);
	if (size <= 4096) {
		session(data, size, 1);
		session(data, size, 7);
	}
	return 0;
}
