/*
 * clock — wall-clock and monotonic time in milliseconds, RFC 3339 text.
 * Layer: core. Any thread.
 */
#ifndef HD_CLOCK_H
#define HD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t hd_now_ms(void);
/* Milliseconds from an arbitrary start (CLOCK_MONOTONIC); for intervals. */
uint64_t hd_mono_ms(void);
/* Microseconds, monotonic; for latency histograms. */
uint64_t hd_mono_us(void);

/* Writes "2026-11-23T09:17:06.123Z" (24 bytes + NUL) into out; out_len >= 25. */
void hd_clock_format_rfc3339(int64_t ms, char *out, size_t out_len);

/*
 * Parses an RFC 3339 date-time ("2026-11-23T09:17:06Z", fractional seconds of
 * any length, "z", or a ±hh:mm offset) into milliseconds since the epoch.
 * Returns 0 or HD_EINVAL for anything else (including out-of-range fields).
 * The input need not be NUL-terminated.
 */
int hd_clock_parse_rfc3339(const char *s, size_t len, int64_t *out_ms);

#endif
