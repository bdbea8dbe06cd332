/*
 * fuzz_push_payload — libFuzzer target for the push payload builder
 * (hd_push_payload_build in src/push/payload.c): it reads a stored event's
 * JSON, the producer's push extension attributes, and splices the event's
 * data into the payload byte for byte with a scanner of its own.
 *
 * Input: byte 0 picks the platform (mod 3: APNs, FCM, Web Push), byte 1
 * the subscription's mode (mod 3: alert, silent, doorbell); the rest is
 * the event JSON. The seeds in tests/fuzz/corpus/push_payload/ are stored
 * events with and without data and overrides.
 *
 * Properties checked:
 *   - UNREADABLE exactly when jansson cannot load the event as an object;
 *     never EXPIRED (no expiry is given);
 *   - an OK payload is at most the platform's limit, NUL-terminated, and
 *     one JSON object that carries the herald object (FCM: as a string of
 *     JSON in its data map, whose values are all strings), and no data for
 *     a doorbell;
 *   - the collapse id is at most 64 bytes; the ignored note is
 *     NUL-terminated and empty exactly when nothing was ignored;
 *   - building is stable: the same input gives the same payload.
 */
#include "core/rcbuf.h"
#include "push/payload.h"
#include "fuzz_check.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

static void check_ok(const struct hd_push_payload *p, enum hd_push_payload_platform platform,
		     enum hd_push_sub_mode mode)
{
	size_t max = platform == HD_PUSH_PAYLOAD_WEBPUSH ? HD_PUSH_PAYLOAD_WEBPUSH_MAX
							 : HD_PUSH_PAYLOAD_MAX;
	CHECK(p->msg.payload == p->text);
	CHECK(p->msg.payload_len == strlen(p->text));
	CHECK(p->msg.payload_len <= max);
	/* Not JSON_REJECT_DUPLICATES: the data goes byte for byte, as the
	 * producer wrote it. */
	json_t *j = json_loadb(p->text, p->msg.payload_len, 0, NULL);
	CHECK(json_is_object(j));
	json_t *herald = json_object_get(j, "herald");
	json_t *data = json_object_get(j, "data");
	if (platform == HD_PUSH_PAYLOAD_FCM) {
		const char *k;
		json_t *v;
		CHECK(json_is_object(data));
		json_object_foreach(data, k, v)
			CHECK(json_is_string(v));
		herald = json_loads(json_string_value(json_object_get(data, "herald")), 0, NULL);
		CHECK(json_is_object(herald));
		if (p->mode == HD_PUSH_SUB_DOORBELL)
			CHECK(json_object_size(data) == 1);
		json_decref(herald);
	} else {
		CHECK(json_is_object(herald));
		if (p->mode == HD_PUSH_SUB_DOORBELL)
			CHECK(!data && !json_object_get(j, "data_base64"));
	}
	CHECK((p->msg.mode == HD_PUSH_ALERT) == (p->mode == HD_PUSH_SUB_ALERT));
	(void)mode;
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hd_stored_event ev = {.offset = 7, .time_ms = 1000};
	struct hd_push_payload_in in = {.ev = &ev, .topic = "user:42", .epoch = "00112233445566ff",
					.now_ms = 2000};
	struct hd_push_payload out, again;

	if (size < 2)
		return 0;
	in.platform = (enum hd_push_payload_platform)(data[0] % 3);
	in.mode = (enum hd_push_sub_mode)(data[1] % 3);
	ev.json = hd_rcbuf_from(data + 2, size - 2);

	enum hd_push_payload_result r = hd_push_payload_build(&in, &out);
	CHECK(r == out.result);
	json_t *loaded = json_loadb(ev.json->data, ev.json->len, 0, NULL);
	CHECK((r == HD_PUSH_PAYLOAD_UNREADABLE) == !json_is_object(loaded));
	json_decref(loaded);
	CHECK(r != HD_PUSH_PAYLOAD_EXPIRED);
	if (r == HD_PUSH_PAYLOAD_OK)
		check_ok(&out, in.platform, in.mode);
	else
		CHECK(!out.msg.payload);
	CHECK(strnlen(out.collapse, sizeof(out.collapse)) <= HD_PUSH_PAYLOAD_COLLAPSE_MAX);
	CHECK(!out.msg.collapse_id || out.msg.collapse_id == out.collapse);
	CHECK(strnlen(out.ignored, sizeof(out.ignored)) < sizeof(out.ignored));
	CHECK((out.ignored[0] == '\0') == (out.nignored == 0));

	CHECK(hd_push_payload_build(&in, &again) == r);
	CHECK(again.msg.payload_len == out.msg.payload_len);
	CHECK(!out.text || memcmp(again.text, out.text, out.msg.payload_len) == 0);
	hd_push_payload_fini(&again);
	hd_push_payload_fini(&out);
	hd_rcbuf_unref(ev.json);
	return 0;
}
