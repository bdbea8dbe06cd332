/* Unit tests for engine/redis.c: what can be checked without a Redis (the
 * --redis-url syntax, the options hd_redis_engine_new refuses, and the
 * PUB/SUB message a confirm publishes, redis_deliver.c). The
 * engine itself is tested end to end in tests/e2e/test_cluster*.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "engine/redis.h"
#include "engine/redis_impl.h"

static int parse(const char *url, char host[256], int *port, int *db)
{
	return hd_redis_parse_url(url, strlen(url), host, port, db);
}

static void test_parse_url(void **state)
{
	char host[256];
	int port, db;
	assert_int_equal(parse("redis://127.0.0.1:6380/3", host, &port, &db), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6380);
	assert_int_equal(db, 3);
	assert_int_equal(parse("redis://cache.internal", host, &port, &db), 0);
	assert_string_equal(host, "cache.internal");
	assert_int_equal(port, 6379);
	assert_int_equal(db, 0);
	assert_int_equal(parse("redis://h:1/", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:1/16", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:0", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:65536", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:12x", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://:6379", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("http://h:6379", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://", host, &port, &db), HD_ECONFIG);
}

static unsigned slot(const char *key)
{
	return hd_redis_scripts_slot(key, strlen(key));
}

/* Redis Cluster key slots (the values CLUSTER KEYSLOT answers; the e2e
 * test_cluster_keys.py compares its own with a cluster-enabled server's). */
static void test_key_slots(void **state)
{
	(void)state;
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("123456789"), 12739);
	assert_int_equal(slot("{t:orders}:m"), 5579);
	assert_int_equal(slot("{t:orders}:d:-3"), 5579);
	assert_int_equal(slot("{herald}:lease:webhook:x"), 2546);
	assert_int_equal(slot("{herald}:lease-token"), 2546);
	assert_int_equal(slot("herald:topics"), 13289);
	assert_int_equal(slot("{}:x"), 5106);   /* an empty tag: the whole key */
	assert_int_equal(slot("a{}b{c}"), 7353);
	assert_int_equal(slot("{t:a}b}:s"), 4625);
	const char *one[] = {"{t:x}:m", "{t:x}:s", "{t:x}:d:7"};
	const char *two[] = {"{t:x}:m", "{t:x}:s", "herald:topics"};
	size_t lens[] = {7, 7, 9};
	size_t lens2[] = {7, 7, 13};
	assert_true(hd_redis_scripts_one_slot(one, lens, 3));
	assert_false(hd_redis_scripts_one_slot(two, lens2, 3));
	assert_true(hd_redis_scripts_one_slot(two, lens2, 0));
}

static void test_bad_options_are_refused(void **state)
{
	struct hd_error err = {0};
	struct hd_redis_opts o = {.urls = "redis://h:1,nope"};
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	assert_int_equal(err.code, HD_ECONFIG);
	assert_non_null(strstr(err.msg, "nope"));
	o.urls = "";
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	o = (struct hd_redis_opts){.urls = "redis://h:1", .sentinels = "h:26379"};
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	assert_non_null(strstr(err.msg, "--redis-master-name"));
}

/* A confirm's message as the script publishes it: "PREV\n" + the body. */
static char *message(struct hd_buf *b, const char *prev, size_t *len)
{
	struct hd_buf m;
	hd_buf_init(&m, 1 << 20);
	assert_int_equal(hd_buf_puts(&m, prev), 0);
	assert_int_equal(hd_buf_append(&m, b->data, b->len), 0);
	return hd_buf_steal(&m, len);
}

static void test_batch_message_carries_events_in_order(void **state)
{
	struct hd_buf b;
	hd_buf_init(&b, 1 << 20);
	/* Offsets 5 and 7 (6 is another node's, 8 a duplicate): LAST is 8. */
	assert_int_equal(hd_redis_deliver_msg_head(&b, "ep1", 8, "news", 2), 0);
	assert_int_equal(hd_redis_deliver_msg_add(&b, 5, 1000, 0, "{\"a\":\"x\ny\"}", 11), 0);
	assert_int_equal(hd_redis_deliver_msg_add(&b, 7, 1001, 99, "{}", 2), 0);
	size_t len;
	char *msg = message(&b, "4\n", &len);
	struct hd_redis_msg m;
	struct hd_redis_msg_event ev;
	assert_int_equal(hd_redis_deliver_msg_open(&m, msg, len), 0);
	assert_int_equal(m.prev, 4);
	assert_int_equal(m.last, 8);
	assert_string_equal(m.epoch, "ep1");
	assert_string_equal(m.topic, "news");
	assert_int_equal(hd_redis_deliver_msg_next(&m, &ev), 1);
	assert_int_equal(ev.offset, 5);
	assert_int_equal(ev.time_ms, 1000);
	assert_int_equal(ev.expires_ms, 0);
	assert_int_equal(ev.len, 11);
	assert_memory_equal(ev.json, "{\"a\":\"x\ny\"}", 11);
	assert_int_equal(hd_redis_deliver_msg_next(&m, &ev), 1);
	assert_int_equal(ev.offset, 7);
	assert_int_equal(ev.expires_ms, 99);
	assert_memory_equal(ev.json, "{}", 2);
	assert_int_equal(hd_redis_deliver_msg_next(&m, &ev), 0);
	/* Cut anywhere inside, the message never reads past its end. */
	for (size_t cut = 0; cut < len; cut++) {
		int rc = hd_redis_deliver_msg_open(&m, msg, cut), got = 0;
		while (!rc && (rc = hd_redis_deliver_msg_next(&m, &ev)) == 1) {
			assert_true(ev.json + ev.len <= msg + cut);
			got++;
		}
		assert_true(rc == -1 || got < 2 || cut == len);
	}
	free(msg);
	/* A notice: no events. */
	hd_buf_reset(&b);
	assert_int_equal(hd_redis_deliver_msg_head(&b, "ep1", 9, "news", 0), 0);
	msg = message(&b, "8\n", &len);
	assert_int_equal(hd_redis_deliver_msg_open(&m, msg, len), 0);
	assert_int_equal(m.last, 9);
	assert_int_equal(hd_redis_deliver_msg_next(&m, &ev), 0);
	free(msg);
	hd_buf_fini(&b);
	const char *bad[] = {"", "x\nep\n1\nt\n0\n", "1\nep\n1\n\n0\n", "1\nep\n1\nt\n",
			     "1\nep\n2\nt\n1\n2 0 0 5\n{}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = hd_redis_deliver_msg_open(&m, bad[i], strlen(bad[i]));
		if (!rc)
			rc = hd_redis_deliver_msg_next(&m, &ev);
		assert_int_equal(rc, -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_key_slots),
		cmocka_unit_test(test_bad_options_are_refused),
		cmocka_unit_test(test_batch_message_carries_events_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
