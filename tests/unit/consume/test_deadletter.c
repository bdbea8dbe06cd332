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
	hd_event_fini(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
