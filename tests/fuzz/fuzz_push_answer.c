/*
 * fuzz_push_answer — libFuzzer target for the push services' answer
 * classifiers (hd_answer_apns, hd_answer_fcm, hd_answer_webpush in
 * src/push/answer.c), which read what APNs, FCM and Web Push services
 * answer: status codes and JSON bodies from the network.
 *
 * Input: byte 0 picks the service (mod 3: APNs, FCM, Web Push), bytes 1-2
 * the status (big-endian, mod 600), byte 3 the Retry-After (0xff = none,
 * else that many seconds); the rest is the body. The seeds in
 * tests/fuzz/corpus/push_answer/ are the documented answers of each
 * service.
 *
 * Properties checked:
 *   - the verdict kind is one of the six, with its name;
 *   - OK exactly for a 2xx status (APNs: 200 only);
 *   - INVALID only for 400, 403 (FCM's SENDER_ID_MISMATCH), 404 and 410;
 *   - after_ms is -1 or the Retry-After, and only on RETRY and THROTTLED;
 *   - an answer always counts an attempt; provider_wide only on THROTTLED;
 *   - the reason is NUL-terminated printable ASCII, empty only for OK;
 *   - classifying is stable: the same input gives the same verdict.
 */
#include "push/answer.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <string.h>

typedef void (*classify_fn)(int, const char *, size_t, int64_t, struct hd_push_verdict *);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const classify_fn fns[] = {hd_answer_apns, hd_answer_fcm, hd_answer_webpush};
	struct hd_push_verdict v, again;

	if (size < 4)
		return 0;
	int which = data[0] % 3;
	int status = ((data[1] << 8) | data[2]) % 600;
	int64_t retry = data[3] == 0xff ? -1 : (int64_t)data[3] * 1000;
	const char *body = (const char *)data + 4;
	size_t len = size - 4;

	fns[which](status, body, len, retry, &v);
	CHECK(v.kind <= HD_PUSH_THROTTLED);
	CHECK(strcmp(hd_provider_verdict_name(v.kind), "?") != 0);
	CHECK(v.status == status);
	CHECK((v.kind == HD_PUSH_OK) == (which == 0 ? status == 200 : status >= 200 && status < 300));
	if (v.kind == HD_PUSH_INVALID)
		CHECK(status == 400 || status == 403 || status == 404 || status == 410);
	if (v.kind == HD_PUSH_RETRY || v.kind == HD_PUSH_THROTTLED)
		CHECK(v.after_ms == retry);
	else
		CHECK(v.after_ms == -1);
	CHECK(v.count_attempt);
	CHECK(!v.provider_wide || v.kind == HD_PUSH_THROTTLED);
	size_t n = strnlen(v.reason, sizeof(v.reason));
	CHECK(n < sizeof(v.reason));
	CHECK((n == 0) == (v.kind == HD_PUSH_OK));
	for (size_t i = 0; i < n; i++)
		CHECK(v.reason[i] >= ' ' && v.reason[i] < 0x7f);
	fns[which](status, body, len, retry, &again);
	CHECK(memcmp(&v, &again, sizeof(v)) == 0);
	return 0;
}
