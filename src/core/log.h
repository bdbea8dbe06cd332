/*
 * log — one key=value line per event on stderr.
 * Layer: core. Any thread may log; lines are written with one write(2) so
 * they do not interleave.
 *
 * The format string starts with the event name, then key=value pairs:
 *   hd_log_info("listening addr=%s", addr)
 *   → ts=2026-11-23T09:17:06.123Z level=info msg=listening addr=127.0.0.1:8080
 * The level is checked before the arguments are evaluated. Repeated
 * warnings go through hd_log_ratelimited().
 */
#ifndef HD_LOG_H
#define HD_LOG_H

#include <stdbool.h>

enum hd_log_level { HD_LOG_DEBUG, HD_LOG_INFO, HD_LOG_WARN, HD_LOG_ERROR, HD_LOG_OFF };

extern enum hd_log_level hd_log_min;

/* Parses "debug|info|warn|error|off"; returns 0 or HD_EINVAL. */
int hd_log_parse_level(const char *s, enum hd_log_level *out);
void hd_log_write(enum hd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* True at most once per second per *last stamp; for rate-limited warnings. */
bool hd_log_ratelimited(long long *last_ms);

#define hd_log_at(level, ...)                                                  \
	do {                                                                   \
		if ((level) >= hd_log_min)                                     \
			hd_log_write((level), __VA_ARGS__);                    \
	} while (0)
#define hd_log_debug(...) hd_log_at(HD_LOG_DEBUG, __VA_ARGS__)
#define hd_log_info(...) hd_log_at(HD_LOG_INFO, __VA_ARGS__)
#define hd_log_warn(...) hd_log_at(HD_LOG_WARN, __VA_ARGS__)
#define hd_log_error(...) hd_log_at(HD_LOG_ERROR, __VA_ARGS__)

#endif
