/*
 * fuzz_push_sub — libFuzzer target for the push subscription body parser
 * (hd_push_sub_config_parse in src/push/push_sub_config.c, with the
 * filter and start parsers of src/consume/ under it): the body of
 * POST /v1/push/subscriptions, untrusted input.
 *
 * Input: the whole body. The seeds in tests/fuzz/corpus/push_sub/ are
 * documented bodies and near misses.
 *
 * Properties checked:
 *   - the answer is 0 or HD_EINVAL, and a refusal has err.code == rc and a
 *     message;
 *   - an accepted config keeps every bound: a valid topic or pattern, "to":
 *     "user" only under "user:", ttl 0 or 1 s..28 d, wait 0..1 h, a cursor
 *     exactly when skip_if_seen, max_attempts 1..50, a known mode and
 *     start;
 *   - its JSON form is valid JSON that loads back to the same config;
 *   - parsing is stable: the same body gives the same answer.
 */
#include "core/buf.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"
#include "push/push_sub_config.h"
#include "fuzz_check.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hd_push_sub_config c, again, back;
	struct hd_start st, st2;
	struct hd_error err = {0}, err2 = {0};
	const char *body = (const char *)data;

	int rc = hd_push_sub_config_parse(body, size, &c, &st, &err);
	int rc2 = hd_push_sub_config_parse(body, size, &again, &st2, &err2);
	CHECK(rc == rc2);
	CHECK(rc == 0 || rc == HD_EINVAL);
	if (rc) {
		CHECK(err.code == rc);
		CHECK(err.msg[0] != '\0');
		CHECK(strcmp(err.msg, err2.msg) == 0);
		return 0;
	}
	CHECK(memcmp(&c, &again, sizeof(c)) == 0);
	CHECK(memcmp(&st, &st2, sizeof(st)) == 0);
	size_t tlen = strnlen(c.topic, sizeof(c.topic));
	CHECK(tlen > 0 && tlen < sizeof(c.topic));
	if (hd_topic_pattern_is(c.topic))
		CHECK(hd_topic_pattern_check(c.topic, NULL) == 0);
	else
		CHECK(hd_topic_name_check(c.topic, tlen, NULL) == 0);
	CHECK(c.to == HD_PUSH_SUB_TO_USER || c.to == HD_PUSH_SUB_TO_FOLLOWERS);
	if (c.to == HD_PUSH_SUB_TO_USER)
		CHECK(strncmp(c.topic, "user:", 5) == 0 && tlen > 5);
	CHECK(c.mode <= HD_PUSH_SUB_DOORBELL);
	CHECK(c.ttl_ms == 0 ||
	      (c.ttl_ms >= HD_PUSH_SUB_TTL_MIN_MS && c.ttl_ms <= HD_PUSH_SUB_TTL_MAX_MS));
	CHECK(c.seen_wait_ms >= 0 && c.seen_wait_ms <= HD_PUSH_SUB_WAIT_MAX_MS);
	CHECK(c.skip_if_seen == (c.seen_cursor[0] != '\0'));
	CHECK(c.max_attempts >= 1 && c.max_attempts <= HD_PUSH_SUB_ATTEMPTS_MAX);
	CHECK(st.kind <= HD_START_TIME);
	CHECK(st.kind != HD_START_OFFSET || st.offset >= 1);

	struct hd_buf b;
	hd_buf_init(&b, 1 << 16);
	hd_buf_putc(&b, '{');
	CHECK(hd_push_sub_config_json(&b, &c) == 0);
	hd_buf_putc(&b, '}');
	json_t *o = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
	CHECK(json_is_object(o));
	CHECK(hd_push_sub_config_load(o, &back, &err) == 0);
	CHECK(memcmp(&c, &back, sizeof(c)) == 0);
	json_decref(o);
	hd_buf_fini(&b);
	return 0;
}
