/*
 * attempts — the record of a webhook subscription's last delivery attempts
 * (GET /v1/subscriptions/{id}/attempts): a ring of the newest
 * HD_ATTEMPTS_MAX, in memory only (a restart empties it).
 * Layer: webhook (pure). Single-threaded; the loop thread.
 */
#ifndef HD_WEBHOOK_ATTEMPTS_H
#define HD_WEBHOOK_ATTEMPTS_H

#include "engine/engine_types.h"

#include <stddef.h>
#include <stdint.h>

struct hd_buf;

#define HD_ATTEMPTS_MAX 100
#define HD_ATTEMPT_ERROR_MAX 120

/* What came of an attempt. */
enum hd_attempt_result {
	HD_ATTEMPT_SUCCESS,      /* 2xx */
	HD_ATTEMPT_RETRY,        /* failed; another attempt is scheduled */
	HD_ATTEMPT_DEAD_LETTER,  /* failed, the last one: dead-lettered */
	HD_ATTEMPT_DISABLED,     /* 410: the subscription was disabled */
};

struct hd_attempt {
	int64_t time_ms;         /* when it started */
	uint64_t offset;
	uint32_t attempt;        /* 1 = the first */
	int status;              /* HTTP status; 0 = no response */
	uint64_t latency_us;
	int64_t next_ms;         /* RETRY: when the next attempt may go */
	enum hd_attempt_result result;
	char error[HD_ATTEMPT_ERROR_MAX]; /* "" when a response came */
	char topic[HD_TOPIC_NAME_MAX + 1]; /* a pattern subscription's topic; "" otherwise */
};

struct hd_attempts {
	struct hd_attempt *ring; /* owned; HD_ATTEMPTS_MAX once the first is added */
	size_t head;             /* where the next goes */
	size_t n;                /* held, <= HD_ATTEMPTS_MAX */
	uint64_t total;          /* added since start */
};

void hd_attempts_init(struct hd_attempts *a);
void hd_attempts_fini(struct hd_attempts *a);
/* Adds one (copied), dropping the oldest past HD_ATTEMPTS_MAX. */
void hd_attempts_add(struct hd_attempts *a, const struct hd_attempt *at);
/* The i-th newest (0 = the newest), or NULL past n. Borrowed until the next add. */
const struct hd_attempt *hd_attempts_get(const struct hd_attempts *a, size_t i);
/* Appends a JSON array of the newest limit attempts, newest first:
 * [{"time","offset","attempt","status","latency_ms","result","error"[,"next_attempt"]}].
 * Returns 0 or HD_ETOOBIG. */
int hd_attempts_json(struct hd_buf *b, const struct hd_attempts *a, size_t limit);

#endif
