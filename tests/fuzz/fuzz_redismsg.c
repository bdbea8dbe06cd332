/*
 * fuzz_redismsg — libFuzzer target for the Redis engine's PUB/SUB message
 * reader (hd_redis_deliver_msg_open/_next, src/engine/redis_deliver.c):
 * every node reads each message another node's confirm published.
 *
 * Input: the whole input is one message (format in src/engine/redis.h),
 * copied to a buffer of exactly its size so that a read past its end is
 * an ASan report. The seeds in tests/fuzz/corpus/redismsg/ are a batch of
 * two events, a notice and broken messages.
 *
 * Properties checked:
 *   - the head's epoch and topic fit their buffers, the topic is not empty;
 *   - every event's JSON lies inside the message, after the previous one;
 *   - once the events end (0) or break (-1), further calls answer the same
 *     way: no event after a malformed one;
 *   - a message read to its end without error, written again with
 *     hd_redis_deliver_msg_head/_add, reads back to the same values.
 */
#include "engine/redis_impl.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	struct hd_redis_msg m;
	struct hd_redis_msg_event ev[EVENTS_MAX];
	if (hd_redis_deliver_msg_open(&m, p, size)) {
		free(p);
		return 0;
	}
	CHECK(strlen(m.epoch) <= HD_EPOCH_LEN);
	CHECK(strlen(m.topic) >= 1 && strlen(m.topic) <= HD_TOPIC_NAME_MAX);
	size_t n = 0;
	int rc;
	const char *after = m.at;
	struct hd_redis_msg_event e;
	while ((rc = hd_redis_deliver_msg_next(&m, &e)) == 1) {
		CHECK(e.json >= after && e.json + e.len <= p + size);
		after = e.json + e.len;
		if (n < EVENTS_MAX)
			ev[n] = e;
		n++;
	}
	CHECK(hd_redis_deliver_msg_next(&m, &e) == 0 || rc == -1);
	CHECK(hd_redis_deliver_msg_next(&m, &e) != 1);
	if (rc == 0 && n <= EVENTS_MAX) {
		struct hd_buf b;
		hd_buf_init(&b, size + 64 + 80 * n);
		CHECK(hd_buf_printf(&b, "%llu\n", (unsigned long long)m.prev) == 0);
		CHECK(hd_redis_deliver_msg_head(&b, m.epoch, m.last, m.topic, n) == 0);
		for (size_t i = 0; i < n; i++)
			CHECK(hd_redis_deliver_msg_add(&b, ev[i].offset, ev[i].time_ms,
						       ev[i].expires_ms, ev[i].json, ev[i].len) == 0);
		struct hd_redis_msg m2;
		CHECK(hd_redis_deliver_msg_open(&m2, b.data, b.len) == 0);
		CHECK(m2.prev == m.prev && m2.last == m.last && m2.left == n);
		CHECK(!strcmp(m2.epoch, m.epoch) && !strcmp(m2.topic, m.topic));
		for (size_t i = 0; i < n; i++) {
			CHECK(hd_redis_deliver_msg_next(&m2, &e) == 1);
			CHECK(e.offset == ev[i].offset && e.time_ms == ev[i].time_ms &&
			      e.expires_ms == ev[i].expires_ms && e.len == ev[i].len &&
			      !memcmp(e.json, ev[i].json, e.len));
		}
		CHECK(hd_redis_deliver_msg_next(&m2, &e) == 0);
		hd_buf_fini(&b);
	}
	free(p);
	return 0;
}
