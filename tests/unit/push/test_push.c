/* Unit tests of push/push.c without a hub: which providers a configuration
 * builds (none, Web Push alone), a bad option is HD_ECONFIG naming it, and
 * hd_push_outcome counts herald_push_sends_total{provider,result} even with
 * no registry to mark. The registry marks and push.feedback events are
 * tested end to end (tests/e2e/test_push_test.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/metrics.h"
#include "push/push.h"

static void close_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT); /* the providers' handles close */
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_nothing_configured(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct hd_config *cfg = calloc(1, sizeof(*cfg));
	struct hd_error err = {0};
	struct hd_push *p = NULL;

	uv_loop_init(&loop);
	hd_config_defaults(cfg);
	assert_int_equal(hd_push_new(&loop, cfg, NULL, NULL, &p, &err), 0);
	assert_non_null(p);
	assert_null(hd_push_provider_of(p, HD_DEVICE_APNS));
	assert_null(hd_push_provider_of(p, HD_DEVICE_FCM));
	assert_null(hd_push_provider_of(p, HD_DEVICE_WEBPUSH));
	assert_null(hd_push_vapid_public_key(p));
	assert_null(hd_push_devices(p));

	/* Counted by provider and result; nothing to mark. */
	struct hd_device dev = {.platform = HD_DEVICE_FCM, .id = "pixel"};
	struct hd_push_verdict v = {.kind = HD_PUSH_THROTTLED, .status = 429};
	int64_t before = hd_metrics_get_at(HD_M_push_sends_total, HD_DEVICE_FCM, HD_PUSH_THROTTLED);
	hd_push_outcome(p, &dev, &v);
	assert_int_equal(hd_metrics_get_at(HD_M_push_sends_total, HD_DEVICE_FCM, HD_PUSH_THROTTLED),
			 before + 1);
	hd_push_free(p);
	close_loop(&loop);
	free(cfg);
}

static void test_webpush_alone(void **state)
{
	(void)state;
	/* A key as `web-push generate-vapid-keys` prints it (base64url). */
	char path[] = "/tmp/herald_test_push_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *key = "bkbYpsNQP1sWPJG2FEP7Mf428RCCU7I-LTAkeNWuKV4\n";
	assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
	close(fd);
	uv_loop_t loop;
	struct hd_config *cfg = calloc(1, sizeof(*cfg));
	struct hd_error err = {0};
	struct hd_push *p = NULL;

	uv_loop_init(&loop);
	hd_config_defaults(cfg);
	snprintf(cfg->push_vapid_private_key_file, sizeof(cfg->push_vapid_private_key_file), "%s", path);
	snprintf(cfg->push_vapid_subject, sizeof(cfg->push_vapid_subject), "mailto:ops@example.com");
	assert_int_equal(hd_push_new(&loop, cfg, NULL, NULL, &p, &err), 0);
	assert_null(hd_push_provider_of(p, HD_DEVICE_APNS));
	assert_non_null(hd_push_provider_of(p, HD_DEVICE_WEBPUSH));
	assert_string_equal(hd_push_provider_of(p, HD_DEVICE_WEBPUSH)->ops->name, "webpush");
	const char *pub = hd_push_vapid_public_key(p);
	assert_non_null(pub);
	assert_int_equal(strlen(pub), 87);
	assert_int_equal(pub[0], 'B');
	hd_push_free(p);
	close_loop(&loop);
	free(cfg);
	unlink(path);
}

static void test_bad_option(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct hd_config *cfg = calloc(1, sizeof(*cfg));
	struct hd_error err = {0};
	struct hd_push *p = (struct hd_push *)1;

	uv_loop_init(&loop);
	hd_config_defaults(cfg);
	snprintf(cfg->push_apns_key_file, sizeof(cfg->push_apns_key_file), "/nonexistent/AuthKey.p8");
	assert_int_equal(hd_push_new(&loop, cfg, NULL, NULL, &p, &err), HD_ECONFIG);
	assert_null(p);
	assert_non_null(strstr(err.msg, "--push-apns"));
	close_loop(&loop);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_configured),
		cmocka_unit_test(test_webpush_alone),
		cmocka_unit_test(test_bad_option),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
