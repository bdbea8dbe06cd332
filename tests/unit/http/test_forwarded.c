/* Unit tests for http/forwarded.c (trusted CIDR lists, the client of
 * Forwarded / X-Forwarded-For) and http/proxyproto.c (PROXY v1 and v2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http/forwarded.h"
#include "http/proxyproto.h"

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;
	assert_int_equal(hd_forwarded_addr(ip, strlen(ip), &ss), 0);
	return ss;
}

static const char *text(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)n);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)n);
	return buf;
}

static void test_cidr_lists(void **state)
{
	(void)state;
	struct hd_forwarded t;
	struct hd_error err = {0};
	assert_int_equal(hd_forwarded_parse(&t, "10.0.0.0/8, 192.0.2.1,fd00::/8 ::1", &err), 0);
	assert_int_equal(t.n, 4);
	struct sockaddr_storage a = addr("10.200.3.4"), b = addr("11.0.0.1"), c = addr("::ffff:10.1.1.1"),
				d = addr("fdab::1"), e = addr("fe00::1"), f = addr("192.0.2.1");
	assert_true(hd_forwarded_trusts(&t, (struct sockaddr *)&a));
	assert_false(hd_forwarded_trusts(&t, (struct sockaddr *)&b));
	assert_true(hd_forwarded_trusts(&t, (struct sockaddr *)&c)); /* mapped counts as IPv4 */
	assert_true(hd_forwarded_trusts(&t, (struct sockaddr *)&d));
	assert_false(hd_forwarded_trusts(&t, (struct sockaddr *)&e));
	assert_true(hd_forwarded_trusts(&t, (struct sockaddr *)&f));
	assert_int_equal(hd_forwarded_parse(&t, "", &err), 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(hd_forwarded_parse(&t, "10.0.0.0/33", &err), HD_ECONFIG);
	assert_int_equal(hd_forwarded_parse(&t, "::/129", &err), HD_ECONFIG);
	assert_int_equal(hd_forwarded_parse(&t, "example.com", &err), HD_ECONFIG);
	assert_int_equal(hd_forwarded_parse(&t, "10.0.0.0/", &err), HD_ECONFIG);
	assert_int_equal(hd_forwarded_parse(&t, "10.0.0.0/-1", &err), HD_ECONFIG);
}

static const char *client(const struct hd_forwarded *t, const char *name, const char *value,
			  const char *name2, const char *value2, char *buf)
{
	struct hd_header h[2] = {{name, strlen(name), value, strlen(value)},
				 {name2 ? name2 : "x", name2 ? strlen(name2) : 1, value2 ? value2 : "",
				  value2 ? strlen(value2) : 0}};
	struct sockaddr_storage ss;
	if (hd_forwarded_client(t, h, name2 ? 2 : 1, &ss))
		return NULL;
	return text(&ss, buf, 64);
}

static void test_rightmost_untrusted_hop(void **state)
{
	(void)state;
	struct hd_forwarded t;
	char buf[64];
	assert_int_equal(hd_forwarded_parse(&t, "10.0.0.0/8, 127.0.0.1", NULL), 0);
	assert_string_equal(client(&t, "x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.0.0.2", NULL, NULL, buf),
			    "203.0.113.5");
	assert_string_equal(client(&t, "x-forwarded-for", "203.0.113.5:4444", NULL, NULL, buf), "203.0.113.5");
	assert_string_equal(client(&t, "x-forwarded-for", "[2001:db8::1]:80", NULL, NULL, buf), "2001:db8::1");
	assert_string_equal(client(&t, "x-forwarded-for", "2001:db8::1", NULL, NULL, buf), "2001:db8::1");
	/* Every hop trusted: the left-most. */
	assert_string_equal(client(&t, "x-forwarded-for", "10.0.0.9, 10.0.0.2", NULL, NULL, buf), "10.0.0.9");
	/* An unreadable hop stops the walk at the last address read. */
	assert_string_equal(client(&t, "x-forwarded-for", "203.0.113.1, garbage, 10.0.0.2", NULL, NULL, buf),
			    "10.0.0.2");
	assert_null(client(&t, "x-forwarded-for", "unknown", NULL, NULL, buf));
	assert_null(client(&t, "x-forwarded-for", "", NULL, NULL, buf));
	/* Two fields are one list, in order. */
	assert_string_equal(client(&t, "x-forwarded-for", "203.0.113.1", "x-forwarded-for", "10.0.0.3", buf),
			    "203.0.113.1");
	/* Forwarded wins over X-Forwarded-For. */
	assert_string_equal(client(&t, "x-forwarded-for", "203.0.113.1", "forwarded",
				   "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"",
				   buf),
			    "2001:db8:cafe::17");
	assert_string_equal(client(&t, "forwarded", "For=\"192.0.2.7:80\"", NULL, NULL, buf), "192.0.2.7");
	assert_null(client(&t, "forwarded", "for=_hidden, proto=https", NULL, NULL, buf));
}

static int pp(const char *p, size_t n, struct hd_proxyproto *out)
{
	return hd_proxyproto_parse(p, n, out);
}

static void test_proxy_v1(void **state)
{
	(void)state;
	struct hd_proxyproto r;
	char buf[64];
	const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET";
	size_t hl = strlen(h) - 3;
	for (size_t k = 0; k < hl; k++)
		assert_int_equal(pp(h, k, &r), 0);
	assert_int_equal(pp(h, strlen(h), &r), (int)hl);
	assert_int_equal(r.version, 1);
	assert_true(r.has_addr);
	assert_string_equal(text(&r.src, buf, sizeof(buf)), "192.0.2.1");
	assert_int_equal(ntohs(((struct sockaddr_in *)&r.src)->sin_port), 56324);
	h = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
	assert_int_equal(pp(h, strlen(h), &r), (int)strlen(h));
	assert_string_equal(text(&r.src, buf, sizeof(buf)), "2001:db8::1");
	h = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
	assert_int_equal(pp(h, strlen(h), &r), (int)strlen(h));
	assert_false(r.has_addr);
	const char *bad[] = {"GET / HTTP/1.1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
			     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
			     "PROXY TCP4 ::1 ::2 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
			     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
			     "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pp(bad[i], strlen(bad[i]), &r), -1);
	char longer[200];
	memset(longer, 'A', sizeof(longer));
	memcpy(longer, "PROXY ", 6);
	assert_int_equal(pp(longer, sizeof(longer), &r), -1);
	assert_int_equal(pp(longer, 100, &r), 0);
}

static void test_proxy_v2(void **state)
{
	(void)state;
	static const char sig[] = "\r\n\r\n\0\r\nQUIT\n";
	struct hd_proxyproto r;
	char h[64], buf[64];
	memcpy(h, sig, 12);
	h[12] = 0x21;
	h[13] = 0x11;
	h[14] = 0;
	h[15] = 12 + 3;
	memcpy(h + 16, "\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb", 12);
	memcpy(h + 28, "\x04\x00\x00", 3); /* a NOOP TLV */
	for (size_t k = 0; k < 31; k++)
		assert_int_equal(pp(h, k, &r), 0);
	assert_int_equal(pp(h, 31, &r), 31);
	assert_int_equal(r.version, 2);
	assert_true(r.has_addr);
	assert_string_equal(text(&r.src, buf, sizeof(buf)), "192.0.2.1");
	assert_int_equal(ntohs(((struct sockaddr_in *)&r.src)->sin_port), 56324);
	h[12] = 0x20; /* LOCAL */
	assert_int_equal(pp(h, 31, &r), 31);
	assert_false(r.has_addr);
	h[12] = 0x21;
	h[15] = 4; /* INET with too short an address block */
	assert_int_equal(pp(h, 31, &r), -1);
	h[15] = 12;
	h[13] = 0x12; /* UDP */
	assert_int_equal(pp(h, 31, &r), -1);
	h[13] = 0x11;
	h[12] = 0x31; /* version 3 */
	assert_int_equal(pp(h, 31, &r), -1);
	h[12] = 0x21;
	h[14] = 0x10; /* 4096 bytes: over the cap */
	assert_int_equal(pp(h, 31, &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_lists),
		cmocka_unit_test(test_rightmost_untrusted_hop),
		cmocka_unit_test(test_proxy_v1),
		cmocka_unit_test(test_proxy_v2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
