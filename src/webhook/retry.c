/* retry — see retry.h. */
#include "webhook/retry.h"

#include <math.h>

enum hd_retry_outcome hd_retry_classify(int status)
{
	if (status >= 200 && status <= 299)
		return HD_RETRY_SUCCESS;
	if (status == 410)
		return HD_RETRY_GONE;
	return HD_RETRY_FAILED;
}

int64_t hd_retry_delay_ms(const uint32_t *schedule, size_t n, uint32_t attempt, int status,
			  int64_t retry_after_ms, double scale, double rnd)
{
	double ms;
	if ((status == 429 || status == 503) && retry_after_ms >= 0) {
		ms = (double)(retry_after_ms < HD_RETRY_AFTER_MIN_MS	? HD_RETRY_AFTER_MIN_MS
			      : retry_after_ms > HD_RETRY_AFTER_MAX_MS ? HD_RETRY_AFTER_MAX_MS
								       : retry_after_ms);
	} else {
		size_t i = attempt == 0 ? 0 : attempt - 1;
		if (i >= n)
			i = n - 1;
		if (rnd < 0 || rnd >= 1)
			rnd = 0.5;
		ms = (double)schedule[i] * (1.0 - HD_RETRY_JITTER + 2 * HD_RETRY_JITTER * rnd);
	}
	ms *= scale;
	return ms < 0 ? 0 : (int64_t)llround(ms);
}
