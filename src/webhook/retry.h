/*
 * retry — what a webhook delivery attempt's outcome means and when the next
 * attempt may go: the retry policy of docs/api.md "Webhook subscriptions".
 * Layer: webhook (pure: no I/O, no clock, no randomness of its own — the
 * caller passes a uniform number for the jitter). Any thread.
 *
 *   2xx                     success: the event is acknowledged
 *   410 Gone                the receiver retired the endpoint: the
 *                           subscription is disabled (the event stays)
 *   429 or 503 with a valid Retry-After
 *                           a failed attempt; the next one waits
 *                           Retry-After (at least 1 s, at most 24 h)
 *   anything else           a failed attempt (any other status, 3xx
 *                           included — redirects are never followed —,
 *                           a timeout, a refused or reset connection, a
 *                           destination refused by the SSRF rule); the
 *                           next one waits schedule[attempt - 1] (the last
 *                           entry repeats) ± 20 % jitter
 * Every wait is multiplied by the time scale (--webhook-time-scale).
 */
#ifndef HD_WEBHOOK_RETRY_H
#define HD_WEBHOOK_RETRY_H

#include <stddef.h>
#include <stdint.h>

#define HD_RETRY_AFTER_MIN_MS 1000
#define HD_RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)
#define HD_RETRY_JITTER 0.2

enum hd_retry_outcome { HD_RETRY_SUCCESS, HD_RETRY_GONE, HD_RETRY_FAILED };

/* The outcome of an attempt that ended with HTTP status (0 = no response). */
enum hd_retry_outcome hd_retry_classify(int status);

/*
 * The wait in ms before the attempt after attempt number `attempt` (1 =
 * the first) failed with status (0 = no response) and retry_after_ms (the
 * response's Retry-After, -1 when none). schedule has n >= 1 entries in
 * ms; rnd is uniform in [0, 1) and picks the jitter; scale > 0.
 */
int64_t hd_retry_delay_ms(const uint32_t *schedule, size_t n, uint32_t attempt, int status,
			  int64_t retry_after_ms, double scale, double rnd);

#endif
