/* ratelimit — see ratelimit.h. */
#include "core/ratelimit.h"


static double burst_of(const struct hd_rate *r)
{
	return r->burst ? (double)r->burst : (double)r->per_sec;
}

/* Brings b up to now: refills for the time passed, up to the burst. A
 * clock that goes backwards (it should not) refills nothing. */
static void refill(struct hd_bucket *b, const struct hd_rate *r, int64_t now_ms)
{
	double cap = burst_of(r);

	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) * (double)r->per_sec / 1000.0;
		if (b->tokens > cap)
			b->tokens = cap;
		b->at_ms = now_ms;
	}
}

void hd_ratelimit_init(struct hd_bucket *b, const struct hd_rate *r, int64_t now_ms)
{
	b->tokens = burst_of(r);
	b->at_ms = now_ms;
}

int64_t hd_ratelimit_take(struct hd_bucket *b, const struct hd_rate *r, uint64_t n, int64_t now_ms)
{
	double need;

	if (!hd_ratelimit_on(r))
		return 0;
	refill(b, r, now_ms);
	need = (double)n < burst_of(r) ? (double)n : burst_of(r);
	if (b->tokens >= need) {
		b->tokens -= (double)n;
		return 0;
	}
	double wait = (need - b->tokens) * 1000.0 / (double)r->per_sec;
	int64_t ms = (int64_t)wait;
	if ((double)ms < wait)
		ms++; /* rounded up: the request passes after this wait */
	return ms < 1 ? 1 : ms;
}

bool hd_ratelimit_full(const struct hd_bucket *b, const struct hd_rate *r, int64_t now_ms)
{
	if (!hd_ratelimit_on(r))
		return true;
	double tokens = b->tokens;
	if (now_ms > b->at_ms)
		tokens += (double)(now_ms - b->at_ms) * (double)r->per_sec / 1000.0;
	return tokens >= burst_of(r);
}
