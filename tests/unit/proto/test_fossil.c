/*
 * test_fossil — unit tests of src/proto/fossil.c: exact deltas for known
 * cases, the checksum, and round trips through an applier written here from
 * the format description (fossil.h), including UTF-8 boundaries. The SDK's
 * own decoder applies herald's deltas in tests/e2e/test_ws_delta.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/fossil.h"

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

static uint64_t get_int(const char **p, const char *end)
{
	uint64_t v = 0;
	const char *d;
	while (*p < end && **p && (d = strchr(alphabet, **p)) != NULL) {
		v = v * 64 + (uint64_t)(d - alphabet);
		(*p)++;
	}
	return v;
}

/* Applies delta to src; returns the target (malloc'd, *tn set) or fails the test. */
static char *apply(const char *src, size_t sn, const char *delta, size_t dn, size_t *tn)
{
	const char *p = delta, *end = delta + dn;
	size_t len = (size_t)get_int(&p, end), n = 0;
	assert_true(p < end && *p++ == '\n');
	char *out = malloc(len + 1);
	for (;;) {
		assert_true(p < end);
		uint64_t v = get_int(&p, end);
		char c = *p++;
		if (c == '@') {
			uint64_t off = get_int(&p, end);
			assert_true(*p++ == ',');
			assert_true(off + v <= sn && n + v <= len);
			memcpy(out + n, src + off, v);
			n += v;
		} else if (c == ':') {
			assert_true(n + v <= len && p + v <= end);
			memcpy(out + n, p, v);
			p += v;
			n += v;
		} else {
			assert_int_equal(c, ';');
			assert_int_equal(v, hd_fossil_checksum(out, n));
			break;
		}
	}
	assert_true(p == end);
	assert_int_equal(n, len);
	*tn = n;
	return out;
}

static void round_trip(const char *src, const char *tgt)
{
	struct hd_buf b;
	size_t tn;
	hd_buf_init(&b, 1 << 20);
	assert_int_equal(hd_fossil_delta(src, strlen(src), tgt, strlen(tgt), &b), 0);
	char *got = apply(src, strlen(src), b.data, b.len, &tn);
	assert_int_equal(tn, strlen(tgt));
	assert_memory_equal(got, tgt, tn);
	free(got);
	hd_buf_fini(&b);
}

static void test_known_deltas(void **state)
{
	struct hd_buf b;
	(void)state;
	hd_buf_init(&b, 4096);
	/* 13 bytes: copy 11 from 0, insert "3", copy 1 from 12, the checksum. */
	assert_int_equal(hd_fossil_delta("{\"counter\":2}", 13, "{\"counter\":3}", 13, &b), 0);
	char want[64];
	uint32_t sum = hd_fossil_checksum("{\"counter\":3}", 13);
	char digits[12];
	size_t nd = 0;
	do {
		digits[nd++] = alphabet[sum & 63];
		sum >>= 6;
	} while (sum);
	char rev[13] = {0};
	for (size_t i = 0; i < nd; i++)
		rev[i] = digits[nd - 1 - i];
	snprintf(want, sizeof(want), "D\nB@0,1:31@C,%s;", rev);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	hd_buf_fini(&b);
	/* The checksum: big-endian words, the tail padded with zeros. */
	assert_int_equal(hd_fossil_checksum("", 0), 0);
	assert_int_equal(hd_fossil_checksum("\x01\x02\x03\x04", 4), 0x01020304u);
	assert_int_equal(hd_fossil_checksum("\x01\x02\x03\x04\x05", 5), 0x01020304u + 0x05000000u);
	assert_int_equal(hd_fossil_checksum("\xff\xff\xff\xff\x00\x00\x00\x02", 8), 1u);
}

static void test_round_trips(void **state)
{
	(void)state;
	round_trip("", "");
	round_trip("", "abc");
	round_trip("abc", "");
	round_trip("abc", "abc");
	round_trip("aaaa", "aaaaaa");
	round_trip("aaaaaa", "aaaa");
	round_trip("{\"a\":1,\"b\":\"xyz\"}", "{\"a\":2,\"b\":\"xyz\"}");
	round_trip("hello world", "goodbye moon");
	/* A change inside a multi-byte character: the insert holds whole ones. */
	round_trip("caf\xc3\xa9 ok", "caf\xc3\xa8 ok");
	round_trip("\xe2\x82\xac\xe2\x82\xac", "\xe2\x82\xac\xe2\x82\xad");
	char big_a[5000], big_b[5000];
	memset(big_a, 'x', sizeof(big_a) - 1);
	big_a[sizeof(big_a) - 1] = '\0';
	memcpy(big_b, big_a, sizeof(big_b));
	big_b[2500] = 'y';
	round_trip(big_a, big_b);
}

/* Edits in two places of a larger document: the delta stays small. */
static void test_edits_anywhere(void **state)
{
	char a[700], t[700];
	struct hd_buf b;
	size_t tn;
	(void)state;
	memset(a, 'a', 600);
	memcpy(a, "{\"counter\":1,\"payload\":\"", 23);
	strcpy(a + 600, "\"}");
	memcpy(t, a, sizeof(a));
	t[11] = '2';
	t[599] = 'b';
	hd_buf_init(&b, 1 << 16);
	assert_int_equal(hd_fossil_delta(a, strlen(a), t, strlen(t), &b), 0);
	assert_true(b.len < 40);
	char *got = apply(a, strlen(a), b.data, b.len, &tn);
	assert_memory_equal(got, t, strlen(t));
	free(got);
	hd_buf_fini(&b);
	/* Blocks moved around, a non-ASCII insert, the source shorter than the target. */
	round_trip("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZ-caf\xc3\xa9-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij");
	round_trip("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
		   "x\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
	/* Pseudo-random texts against edited copies. */
	unsigned seed = 7;
	for (int round = 0; round < 200; round++) {
		char src[300], tgt[320];
		size_t sn = 20 + round % 250, tl = 0;
		for (size_t k = 0; k < sn; k++) {
			seed = seed * 1103515245u + 12345u;
			src[k] = (char)('a' + (seed >> 16) % 4);
		}
		src[sn] = '\0';
		for (size_t k = 0; k < sn && tl < sizeof(tgt) - 2; k++) {
			seed = seed * 1103515245u + 12345u;
			unsigned op = (seed >> 16) % 20;
			if (op == 0)
				continue;                 /* delete */
			if (op == 1)
				tgt[tl++] = 'z';          /* insert */
			tgt[tl++] = op == 2 ? 'q' : src[k]; /* change or keep */
		}
		tgt[tl] = '\0';
		round_trip(src, tgt);
	}
}

static void test_utf8_boundaries(void **state)
{
	struct hd_buf b;
	(void)state;
	hd_buf_init(&b, 4096);
	/* é (c3 a9) vs è (c3 a8): the shared c3 must not be copied alone. */
	assert_int_equal(hd_fossil_delta("\xc3\xa9", 2, "\xc3\xa8", 2, &b), 0);
	assert_non_null(memmem(b.data, b.len, "2:\xc3\xa8", 4));
	hd_buf_fini(&b);
}

static void test_too_big_leaves_the_buffer(void **state)
{
	struct hd_buf b;
	(void)state;
	hd_buf_init(&b, 8);
	assert_int_equal(hd_buf_append(&b, "ab", 2), 0);
	assert_int_not_equal(hd_fossil_delta("", 0, "0123456789", 10, &b), 0);
	assert_int_equal(b.len, 2);
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_deltas),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_edits_anywhere),
		cmocka_unit_test(test_utf8_boundaries),
		cmocka_unit_test(test_too_big_leaves_the_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
