/*
 * start — where a new consumer begins reading: the "start" member of a
 * webhook or push subscription's create body, "latest" (default) |
 * "oldest" | {"offset": N >= 1} | {"time": "RFC 3339"}.
 * Layer: consume (pure: no I/O, no clock). Any thread. Callers:
 * webhook/sub_config.c, push/push_sub_config.c; the consumer turns a TIME
 * start into an offset with consume/seek.h.
 */
#ifndef HD_START_H
#define HD_START_H

#include "core/err.h"

#include <stdint.h>

struct json_t;

enum hd_start_kind { HD_START_LATEST = 0, HD_START_OLDEST, HD_START_OFFSET, HD_START_TIME };

struct hd_start {
	enum hd_start_kind kind;
	uint64_t offset;   /* OFFSET: the first to deliver */
	int64_t time_ms;   /* TIME: the first stored at or after */
};

/* Parses s (borrowed; NULL = absent = LATEST) into out. Returns 0 or
 * HD_EINVAL with err saying what 'start' must be. */
int hd_start_parse(const struct json_t *s, struct hd_start *out, struct hd_error *err);

#endif
