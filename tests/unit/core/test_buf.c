/* Unit tests for core/buf.c and core/rcbuf.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/rcbuf.h"

static void test_append_within_ceiling(void **state)
{
	struct hd_buf b;
	hd_buf_init(&b, 8);
	assert_int_equal(hd_buf_puts(&b, "abcd"), 0);
	assert_int_equal(hd_buf_printf(&b, "%d", 1234), 0);
	assert_string_equal(b.data, "abcd1234");
	/* One more byte crosses the ceiling and leaves the buffer unchanged. */
	assert_int_equal(hd_buf_putc(&b, 'x'), HD_ETOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcd1234");
	hd_buf_fini(&b);
}

static void test_printf_large(void **state)
{
	struct hd_buf b;
	char big[1000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hd_buf_init(&b, 4096);
	assert_int_equal(hd_buf_printf(&b, "<%s>", big), 0);
	assert_int_equal(b.len, 1001);
	assert_int_equal(hd_buf_printf(&b, "%s%s%s%s", big, big, big, big), HD_ETOOBIG);
	assert_int_equal(b.len, 1001);
	hd_buf_fini(&b);
}

static void test_json_escape(void **state)
{
	struct hd_buf b;
	hd_buf_init(&b, 256);
	const char in[] = "a\"b\\c\nd\x01\x7f";
	assert_int_equal(hd_buf_json_escape(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001\x7f");
	hd_buf_fini(&b);
}

static void test_consume_and_steal(void **state)
{
	struct hd_buf b;
	size_t len;
	hd_buf_init(&b, 64);
	hd_buf_puts(&b, "hello world");
	hd_buf_consume(&b, 6);
	assert_string_equal(b.data, "world");
	char *s = hd_buf_steal(&b, &len);
	assert_string_equal(s, "world");
	assert_int_equal(len, 5);
	assert_null(b.data);
	free(s);
}

static void test_rcbuf_refs(void **state)
{
	struct hd_rcbuf *r = hd_rcbuf_from("abc", 3);
	assert_ptr_equal(hd_rcbuf_ref(r), r);
	assert_int_equal(r->len, 3);
	assert_string_equal(r->data, "abc");
	hd_rcbuf_unref(r);
	hd_rcbuf_unref(r); /* the last reference frees it; ASan checks */
	hd_rcbuf_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_within_ceiling),
		cmocka_unit_test(test_printf_large),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_consume_and_steal),
		cmocka_unit_test(test_rcbuf_refs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
