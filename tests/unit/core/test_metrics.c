/* Unit tests of core/metrics.c: the labelled (V) rows — every pair of
 * label values exported, 0 included, each cell counted on its own — and
 * that plain counters and histograms render as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"

/* The rendered text (owned by b). */
static const char *render(struct hd_buf *b)
{
	hd_buf_init(b, 1 << 20);
	hd_metrics_render(b);
	hd_buf_putc(b, '\0');
	return b->data;
}

static void test_vector_counter(void **state)
{
	(void)state;
	struct hd_buf b;

	/* provider fcm (1), result invalid (1); provider webpush (2), result throttled (5). */
	hd_metrics_add_at(HD_M_push_sends_total, 1, 1, 1);
	hd_metrics_add_at(HD_M_push_sends_total, 1, 1, 2);
	hd_metrics_add_at(HD_M_push_sends_total, 2, 5, 1);
	assert_int_equal(hd_metrics_get_at(HD_M_push_sends_total, 1, 1), 3);
	assert_int_equal(hd_metrics_get_at(HD_M_push_sends_total, 2, 5), 1);
	assert_int_equal(hd_metrics_get_at(HD_M_push_sends_total, 0, 0), 0);
	const char *t = render(&b);
	assert_non_null(strstr(t, "# TYPE herald_push_sends_total counter\n"));
	assert_non_null(strstr(t, "herald_push_sends_total{provider=\"fcm\",result=\"invalid\"} 3\n"));
	assert_non_null(strstr(t, "herald_push_sends_total{provider=\"webpush\",result=\"throttled\"} 1\n"));
	assert_non_null(strstr(t, "herald_push_sends_total{provider=\"apns\",result=\"ok\"} 0\n"));
	/* No unlabelled sample for a V row. */
	assert_null(strstr(t, "herald_push_sends_total 0"));
	hd_buf_fini(&b);
}

static void test_vector_gauge(void **state)
{
	(void)state;
	struct hd_buf b;

	hd_metrics_add_at(HD_M_push_devices, 0, 0, 2);
	hd_metrics_add_at(HD_M_push_devices, 0, 0, -1);
	hd_metrics_add_at(HD_M_push_devices, 0, 1, 1);
	const char *t = render(&b);
	assert_non_null(strstr(t, "# TYPE herald_push_devices gauge\n"));
	assert_non_null(strstr(t, "herald_push_devices{platform=\"apns\",state=\"active\"} 1\n"));
	assert_non_null(strstr(t, "herald_push_devices{platform=\"apns\",state=\"invalid\"} 1\n"));
	assert_non_null(strstr(t, "herald_push_devices{platform=\"webpush\",state=\"invalid\"} 0\n"));
	hd_buf_fini(&b);
}

static void test_plain_rows_unchanged(void **state)
{
	(void)state;
	struct hd_buf b;

	hd_metrics_inc(HD_M_push_provider_tokens_total);
	hd_metrics_observe(HD_M_push_send_seconds, 300);
	const char *t = render(&b);
	assert_non_null(strstr(t, "herald_push_provider_tokens_total 1\n"));
	assert_non_null(strstr(t, "herald_push_send_seconds_bucket{le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(t, "herald_push_send_seconds_count 1\n"));
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_counter),
		cmocka_unit_test(test_vector_gauge),
		cmocka_unit_test(test_plain_rows_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
