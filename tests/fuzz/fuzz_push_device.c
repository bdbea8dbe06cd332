/*
 * fuzz_push_device — libFuzzer target for the device registration body
 * parser (hd_devices_parse in src/push/devices.c), which reads what an app
 * sends to PUT /v1/users/{id}/devices/{device}, and for the durable record
 * form behind it (hd_devices_record, hd_devices_record_parse).
 *
 * Input: the whole input is the body. The seeds in
 * tests/fuzz/corpus/push_device/ are registrations of each platform
 * (a browser's PushSubscription.toJSON() included) and refused forms.
 *
 * Properties checked, for both settings of allow_private:
 *   - the result is 0, HD_EINVAL or HD_ETOOBIG, with err->code equal to it
 *     and a message on a refusal, and no device on a refusal;
 *   - what is accepted without allow_private is accepted with it;
 *   - an accepted device has a token within its platform's bounds (APNs:
 *     even count of lower-case hex digits; Web Push: an http(s) URL with
 *     both keys; only APNs has an environment, production or sandbox), at
 *     most HD_DEVICE_TOPICS_MAX distinct topics, state active;
 *   - its record reads back (hd_devices_record_parse) to a device whose
 *     record is the same text, and its answer (hd_devices_json) encodes.
 */
#include "push/devices.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_device(const struct hd_device *d)
{
	size_t n = strlen(d->token);

	CHECK(n > 0 && n <= HD_DEVICE_TOKEN_MAX);
	CHECK(d->state == HD_DEVICE_ACTIVE);
	CHECK(d->ntopics <= HD_DEVICE_TOPICS_MAX);
	for (size_t i = 0; i < d->ntopics; i++)
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(d->topics[i], d->topics[k]) != 0);
	switch (d->platform) {
	case HD_DEVICE_APNS:
		CHECK(n % 2 == 0 && strspn(d->token, "0123456789abcdef") == n);
		CHECK(d->environment == HD_DEVICE_ENV_PRODUCTION || d->environment == HD_DEVICE_ENV_SANDBOX);
		CHECK(!d->p256dh && !d->auth);
		break;
	case HD_DEVICE_FCM:
		CHECK(n <= HD_DEVICE_FCM_TOKEN_MAX && d->environment == HD_DEVICE_ENV_NONE && !d->p256dh);
		break;
	case HD_DEVICE_WEBPUSH:
		CHECK(strncmp(d->token, "https://", 8) == 0 || strncmp(d->token, "http://", 7) == 0);
		CHECK(d->p256dh && d->auth && d->environment == HD_DEVICE_ENV_NONE);
		break;
	default:
		CHECK(0);
	}
}

static void round_trip(struct hd_device *d)
{
	struct hd_device *back = NULL;
	char *rec, *again;
	json_t *j;

	d->user = strdup("42");
	memcpy(d->id, "phone", 6);
	rec = hd_devices_record(d);
	CHECK(hd_devices_record_parse("42\nphone", rec, &back) == 0 && back);
	again = hd_devices_record(back);
	CHECK(strcmp(rec, again) == 0);
	j = hd_devices_json(back);
	char *s = json_dumps(j, JSON_COMPACT);
	CHECK(s != NULL);
	free(s);
	json_decref(j);
	free(rec);
	free(again);
	hd_devices_device_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	bool accepted = false;

	for (int priv = 0; priv < 2; priv++) {
		struct hd_devices_parse_opts o = {.allow_private = priv == 1};
		struct hd_device *d = (struct hd_device *)&o; /* must be reset */
		struct hd_error err = {0};
		int rc = hd_devices_parse(body, size, &o, &d, &err);

		CHECK(rc == 0 || rc == HD_EINVAL || rc == HD_ETOOBIG);
		if (rc) {
			CHECK(err.code == rc && err.msg[0] && d == NULL);
			CHECK(!accepted);
			continue;
		}
		accepted = true;
		CHECK(d != NULL);
		check_device(d);
		round_trip(d);
		hd_devices_device_free(d);
	}
	return 0;
}
