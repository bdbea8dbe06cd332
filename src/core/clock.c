/* clock — see clock.h. */
#include "core/clock.h"
#include "core/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t hd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t hd_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t hd_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Writes v as exactly n decimal digits. */
static void put_digits(char *out, int v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* Hand-written rather than snprintf: every event without a `time` gets one
 * at publish, so this is on the publish path. */
void hd_clock_format_rfc3339(int64_t ms, char *out, size_t out_len)
{
	/* The date and time of the last second formatted on this thread:
	 * most calls (a publish stamps its events with now) repeat it, and
	 * gmtime_r is most of the cost. */
	static _Thread_local time_t cached_secs = -1;
	static _Thread_local char cached[19];
	time_t secs = (time_t)(ms / 1000);
	char buf[25];

	if (ms < 0 || secs != cached_secs) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		put_digits(buf, (tm.tm_year + 1900) % 10000, 4);
		buf[4] = '-';
		put_digits(buf + 5, tm.tm_mon + 1, 2);
		buf[7] = '-';
		put_digits(buf + 8, tm.tm_mday, 2);
		buf[10] = 'T';
		put_digits(buf + 11, tm.tm_hour, 2);
		buf[13] = ':';
		put_digits(buf + 14, tm.tm_min, 2);
		buf[16] = ':';
		put_digits(buf + 17, tm.tm_sec, 2);
		if (ms >= 0) {
			memcpy(cached, buf, sizeof(cached));
			cached_secs = secs;
		}
	} else {
		memcpy(buf, cached, sizeof(cached));
	}
	buf[19] = '.';
	put_digits(buf + 20, (int)(ms % 1000), 3);
	buf[23] = 'Z';
	buf[24] = '\0';
	if (out_len == 0)
		return;
	size_t n = out_len < sizeof(buf) ? out_len - 1 : sizeof(buf) - 1;
	memcpy(out, buf, n);
	out[n] = '\0';
}

/* Reads exactly n digits at *p; returns false if any is not a digit. */
static bool digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	if (end - *p < n)
		return false;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, const char *end, char a, char b)
{
	if (*p >= end || (**p != a && **p != b))
		return false;
	(*p)++;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

int hd_clock_parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
	const char *p = s, *end = s + len;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac_ms = 0;

	if (!digits(&p, end, 4, &y) || !expect(&p, end, '-', '-') || !digits(&p, end, 2, &mo) ||
	    !expect(&p, end, '-', '-') || !digits(&p, end, 2, &d) || !expect(&p, end, 'T', 't') ||
	    !digits(&p, end, 2, &h) || !expect(&p, end, ':', ':') || !digits(&p, end, 2, &mi) ||
	    !expect(&p, end, ':', ':') || !digits(&p, end, 2, &sec))
		return HD_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 60)
		return HD_EINVAL;
	if (p < end && *p == '.') {
		int n = 0;
		p++;
		while (p < end && *p >= '0' && *p <= '9') {
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0)
			return HD_EINVAL;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (p >= end)
		return HD_EINVAL;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		if (!digits(&p, end, 2, &oh) || !expect(&p, end, ':', ':') || !digits(&p, end, 2, &om) ||
		    oh > 23 || om > 59)
			return HD_EINVAL;
		oh *= sign;
		om *= sign;
	} else {
		return HD_EINVAL;
	}
	if (p != end)
		return HD_EINVAL;
	if (sec == 60)
		sec = 59; /* A leap second is folded into the second before it. */
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (int64_t)oh * 3600 + (int64_t)om * 60;
	*out_ms = t * 1000 + frac_ms;
	return 0;
}
