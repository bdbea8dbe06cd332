/*
 * Unit tests for consume/deadletter.c: the dead-letter CloudEvent's
 * attributes and data, with extra members and the original event embedded
 * as JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "consume/deadletter.h"
#include "core/config.h"
#include "fake_engine.h"

static void test_event(void **state)
{
	struct hd_event ev;
	const char *orig = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"topic\":\"t\",\"offset\":4}";
	(void)state;
	assert_int_equal(hd_deadletter_event(&(struct hd_deadletter){
						     .id = "sub_1/ep/4",
						     .source = "/herald/webhooks/sub_1",
						     .type = "herald.webhook.deadletter",
						     .reason = "max_attempts",
						     .attempts = 8,
						     .topic = "t",
						     .offset = 4,
						     .extra = "\"last_status\":500",
						     .event = orig,
						     .event_len = strlen(orig),
						     .now_ms = 1000,
					     },
					     &ev),
			 0);
	assert_string_equal(ev.id, "sub_1/ep/4");
	assert_string_equal(ev.type, "herald.webhook.deadletter");
	assert_int_equal(ev.time_ms, 1000);
	json_t *o = json_loadb(ev.json, ev.json_len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(o);
	json_t *data = json_object_get(o, "data");
	assert_string_equal(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:01.000Z");
	assert_string_equal(json_string_value(json_object_get(o, "source")), "/herald/webhooks/sub_1");
	assert_string_equal(json_string_value(json_object_get(data, "reason")), "max_attempts");
	assert_int_equal(json_integer_value(json_object_get(data, "attempts")), 8);
	assert_int_equal(json_integer_value(json_object_get(data, "offset")), 4);
	assert_int_equal(json_integer_value(json_object_get(data, "last_status")), 500);
	assert_string_equal(json_string_value(json_object_get(json_object_get(data, "event"), "id")),
			    "e1");
	json_decref(o);
	hd_cloudevent_event_fini(&ev);
}

struct outcome {
	int calls, err;
	uint64_t offset, tag;
};

static void done(void *arg, uint64_t offset, uint64_t tag, int err)
{
	struct outcome *o = arg;
	o->calls++;
	o->offset = offset;
	o->tag = tag;
	o->err = err;
}

static void test_publish(void **state)
{
	struct fake_engine f;
	struct hd_config cfg;
	struct outcome o = {0};
	const char *orig = "{\"id\":\"e9\"}";
	struct hd_deadletter d = {
		.id = "g/9", .source = "/herald/groups/orders/g", .type = "herald.group.deadletter",
		.reason = "max_deliveries", .attempts = 5, .topic = "orders", .offset = 9,
		.extra = "\"group\":\"g\"", .event = orig, .event_len = strlen(orig), .now_ms = 1,
	};
	(void)state;
	fake_init(&f);
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f.base);

	/* Committed later: done once, with the offset and tag given. */
	f.hold = true;
	hd_deadletter_publish(hub, &d, 42, done, &o);
	assert_int_equal(o.calls, 0);
	assert_string_equal(f.pub_topic, "orders" HD_TOPIC_NAME_DLQ_SUFFIX);
	json_t *ev = json_loads(f.pub_json, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(ev, "id")), "g/9");
	assert_string_equal(json_string_value(
				    json_object_get(json_object_get(ev, "data"), "group")), "g");
	json_decref(ev);
	f.held->done(f.held);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.offset, 9);
	assert_int_equal(o.tag, 42);

	/* The commit failed. */
	f.hold = false;
	f.pub_err = HD_ESTORE;
	o = (struct outcome){0};
	hd_deadletter_publish(hub, &d, 1, done, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, HD_ESTORE);

	/* Refused at once: done before the call returns. */
	f.fail = HD_EUNAVAIL;
	o = (struct outcome){0};
	hd_deadletter_publish(hub, &d, 1, done, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, HD_EUNAVAIL);
	f.fail = 0;

	/* Too large to build: never published. */
	size_t pubs = f.pubs;
	char *big = malloc(HD_DEADLETTER_MAX);
	memset(big, 'x', HD_DEADLETTER_MAX);
	d.event = big;
	d.event_len = HD_DEADLETTER_MAX;
	o = (struct outcome){0};
	hd_deadletter_publish(hub, &d, 1, done, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.err, HD_ETOOBIG);
	assert_int_equal(f.pubs, pubs);
	free(big);
	hd_hub_free(hub);
	fake_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_publish),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
