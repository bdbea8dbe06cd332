/*
 * fuzz_proxyproto — libFuzzer target for the PROXY protocol parser
 * (src/http/proxyproto.c) and the forwarded-address readers
 * (src/http/forwarded.c).
 *
 * PROXY: the answer for the whole input is -1, 0 or a length within it;
 * every prefix of an accepted header answers 0 (more needed) and the
 * header alone answers the same length and address: where reads end must
 * not change the result. Forwarded: the input is also read as the value of
 * an X-Forwarded-For and of a Forwarded field, behind a trusted list; a
 * client it names is an IPv4 or IPv6 address.
 */
#include "fuzz_check.h"
#include "http/forwarded.h"
#include "http/proxyproto.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void proxy(const char *p, size_t n)
{
	struct hd_proxyproto a, b;
	int rc = hd_proxyproto_parse(p, n, &a);

	CHECK(rc >= -1 && (size_t)(rc > 0 ? rc : 0) <= n);
	if (rc <= 0)
		return;
	CHECK(a.version == 1 || a.version == 2);
	if (a.has_addr)
		CHECK(a.src.ss_family == AF_INET || a.src.ss_family == AF_INET6);
	for (size_t k = 0; k < (size_t)rc; k++)
		CHECK(hd_proxyproto_parse(p, k, &b) == 0);
	CHECK(hd_proxyproto_parse(p, (size_t)rc, &b) == rc);
	CHECK(b.version == a.version && b.has_addr == a.has_addr);
	if (a.has_addr)
		CHECK(memcmp(&a.src, &b.src, sizeof(a.src)) == 0);
}

static void forwarded(const char *p, size_t n)
{
	static struct hd_forwarded trusted;
	static int ready;
	struct hd_header h[2];
	struct sockaddr_storage out;
	char *v = malloc(n + 1);

	if (!ready) {
		CHECK(hd_forwarded_parse(&trusted, "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8", NULL) == 0);
		ready = 1;
	}
	memcpy(v, p, n);
	v[n] = '\0';
	h[0] = (struct hd_header){"x-forwarded-for", 15, v, n};
	h[1] = (struct hd_header){"forwarded", 9, v, n};
	for (size_t i = 0; i < 2; i++) {
		int rc = hd_forwarded_client(&trusted, h + i, 1, &out);
		CHECK(rc == 0 || rc == HD_ENOTFOUND);
		if (rc == 0)
			CHECK(out.ss_family == AF_INET || out.ss_family == AF_INET6);
	}
	if (hd_forwarded_addr(v, n, &out) == 0)
		CHECK(out.ss_family == AF_INET || out.ss_family == AF_INET6);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	proxy((const char *)data, size);
	forwarded((const char *)data, size);
	return 0;
}
