/* Unit tests for http/iplimit.c: per-address caps, rates, keys, and the
 * bounded table with its idle eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http/iplimit.h"

static void key_of(const char *ip, char key[HD_IPLIMIT_KEY_MAX])
{
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1) {
		assert_int_equal(hd_iplimit_key((struct sockaddr *)&a4, key), 0);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &a6.sin6_addr), 1);
	assert_int_equal(hd_iplimit_key((struct sockaddr *)&a6, key), 0);
}

static void test_keys(void **state)
{
	(void)state;
	char a[HD_IPLIMIT_KEY_MAX], b[HD_IPLIMIT_KEY_MAX];
	key_of("192.0.2.7", a);
	assert_string_equal(a, "4:192.0.2.7");
	/* IPv4-mapped IPv6 is the IPv4 address. */
	key_of("::ffff:192.0.2.7", b);
	assert_string_equal(a, b);
	/* One /64 is one client. */
	key_of("2001:db8:1:2::1", a);
	key_of("2001:db8:1:2:ffff:ffff:ffff:ffff", b);
	assert_string_equal(a, "6:20010db800010002");
	assert_string_equal(a, b);
	key_of("2001:db8:1:3::1", b);
	assert_string_not_equal(a, b);
	struct sockaddr other = {.sa_family = AF_UNIX};
	assert_int_equal(hd_iplimit_key(&other, a), -1);
}

static void test_cap_per_address(void **state)
{
	(void)state;
	struct hd_iplimit *t = hd_iplimit_new(&(struct hd_iplimit_opts){.max_per_ip = 2, .max_entries = 100});
	struct hd_iplimit_entry *e1, *e2, *e3, *o;
	int64_t retry;
	assert_true(hd_iplimit_on(t));
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e1, &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e2, &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e3, &retry), HD_IPLIMIT_CAP);
	assert_null(e3);
	assert_true(retry >= 1);
	/* Another address is not affected. */
	assert_int_equal(hd_iplimit_admit(t, "4:2.2.2.2", 0, &o, &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_open(t, "4:1.1.1.1"), 2);
	hd_iplimit_release(t, e1, 0);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e3, &retry), HD_IPLIMIT_OK);
	hd_iplimit_release(t, e2, 0);
	hd_iplimit_release(t, e3, 0);
	hd_iplimit_release(t, o, 0);
	/* No rate: nothing left to remember. */
	assert_int_equal(hd_iplimit_entries(t), 0);
	hd_iplimit_free(t);
}

static void test_rate_per_address(void **state)
{
	(void)state;
	struct hd_iplimit *t = hd_iplimit_new(&(struct hd_iplimit_opts){
		.rate = {.per_sec = 2, .burst = 3}, .max_entries = 100});
	struct hd_iplimit_entry *e[4];
	int64_t retry;
	for (int i = 0; i < 3; i++)
		assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e[i], &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 0, &e[3], &retry), HD_IPLIMIT_RATE);
	assert_int_equal(retry, 500);
	for (int i = 0; i < 3; i++)
		hd_iplimit_release(t, e[i], 0);
	/* Closing does not give tokens back: still refused, remembered. */
	assert_int_equal(hd_iplimit_entries(t), 1);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 100, &e[3], &retry), HD_IPLIMIT_RATE);
	assert_int_equal(hd_iplimit_admit(t, "4:1.1.1.1", 500, &e[3], &retry), HD_IPLIMIT_OK);
	hd_iplimit_release(t, e[3], 5000); /* full again: forgotten */
	assert_int_equal(hd_iplimit_entries(t), 0);
	hd_iplimit_free(t);
}

static void test_table_is_bounded(void **state)
{
	(void)state;
	struct hd_iplimit *t = hd_iplimit_new(&(struct hd_iplimit_opts){
		.max_per_ip = 1, .rate = {.per_sec = 1, .burst = 1}, .max_entries = 4});
	struct hd_iplimit_entry *held[2], *e;
	char key[HD_IPLIMIT_KEY_MAX];
	int64_t retry;
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.1", 0, &held[0], &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.2", 0, &held[1], &retry), HD_IPLIMIT_OK);
	/* A thousand addresses pass through, each connecting once and leaving:
	 * the table never holds more than 4, and the two open ones stay. */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "4:10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(hd_iplimit_admit(t, key, 0, &e, &retry), HD_IPLIMIT_OK);
		hd_iplimit_release(t, e, 0);
		assert_true(hd_iplimit_entries(t) <= 4);
	}
	assert_int_equal(hd_iplimit_open(t, "4:9.9.9.1"), 1);
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.1", 0, &e, &retry), HD_IPLIMIT_CAP);
	/* Four addresses with open connections fill it: a fifth is refused. */
	struct hd_iplimit_entry *more[2];
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.3", 0, &more[0], &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.4", 0, &more[1], &retry), HD_IPLIMIT_OK);
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.5", 0, &e, &retry), HD_IPLIMIT_FULL);
	hd_iplimit_release(t, more[1], 0);
	assert_int_equal(hd_iplimit_admit(t, "4:9.9.9.5", 0, &e, &retry), HD_IPLIMIT_OK);
	hd_iplimit_release(t, e, 0);
	hd_iplimit_release(t, more[0], 0);
	hd_iplimit_release(t, held[0], 0);
	hd_iplimit_release(t, held[1], 0);
	hd_iplimit_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_cap_per_address),
		cmocka_unit_test(test_rate_per_address),
		cmocka_unit_test(test_table_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
