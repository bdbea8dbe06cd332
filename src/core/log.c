/* log — see log.h. */
#include "core/log.h"
#include "core/clock.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum hd_log_level hd_log_min = HD_LOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error", "off"};

int hd_log_parse_level(const char *s, enum hd_log_level *out)
{
	for (int i = 0; i <= HD_LOG_OFF; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum hd_log_level)i;
			return 0;
		}
	}
	return HD_EINVAL;
}

void hd_log_write(enum hd_log_level level, const char *fmt, ...)
{
	char line[1024];
	char ts[32];
	size_t n;
	va_list ap;

	hd_clock_format_rfc3339(hd_now_ms(), ts, sizeof(ts));
	n = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s msg=", ts, names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}

bool hd_log_ratelimited(long long *last_ms)
{
	long long now = (long long)hd_mono_ms();
	if (now - *last_ms < 1000)
		return false;
	*last_ms = now;
	return true;
}
