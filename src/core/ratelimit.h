/*
 * ratelimit — a token bucket: the one shape of every rate limit herald
 * enforces (connections per IP address, publishes per API key and per
 * WebSocket connection).
 * Layer: core. Pure: no clock, no allocation; the caller passes the time,
 * so tests drive it with made-up times. Single-threaded; the owner decides
 * which thread.
 *
 * A bucket holds up to `burst` tokens and refills at `per_sec` tokens a
 * second. A request for n tokens passes when the bucket holds at least
 * min(n, burst) of them, and then takes all n: a request larger than the
 * burst (a big publish batch) passes only on a full bucket and leaves it in
 * debt, so the long-run rate stays per_sec whatever the request sizes.
 */
#ifndef HD_RATELIMIT_H
#define HD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A rate: per_sec = 0 means no limit (every take passes). */
struct hd_rate {
	uint32_t per_sec;
	uint32_t burst;  /* bucket size; 0 = per_sec (one second's worth) */
};

struct hd_bucket {
	double tokens;   /* may be negative: debt of a request above the burst */
	int64_t at_ms;   /* when tokens was last brought up to date */
};

/* Whether r limits anything. */
static inline bool hd_ratelimit_on(const struct hd_rate *r)
{
	return r->per_sec > 0;
}

/* A full bucket at now_ms (any monotonic millisecond clock). */
void hd_ratelimit_init(struct hd_bucket *b, const struct hd_rate *r, int64_t now_ms);

/*
 * Takes n tokens at now_ms. Returns 0 when they were taken, else the
 * milliseconds until the same request would pass (at least 1); nothing is
 * taken then. A rate that is off always returns 0.
 */
int64_t hd_ratelimit_take(struct hd_bucket *b, const struct hd_rate *r, uint64_t n, int64_t now_ms);

/* Whether b is full at now_ms (holds no state worth keeping). */
bool hd_ratelimit_full(const struct hd_bucket *b, const struct hd_rate *r, int64_t now_ms);

/* Seconds for a Retry-After header from a wait in ms: rounded up, at least 1. */
static inline int64_t hd_ratelimit_retry_after_s(int64_t wait_ms)
{
	return wait_ms <= 1000 ? 1 : (wait_ms + 999) / 1000;
}

#endif
