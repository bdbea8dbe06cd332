/* attempts — see attempts.h. */
#include "webhook/attempts.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void hd_attempts_init(struct hd_attempts *a)
{
	memset(a, 0, sizeof(*a));
}

void hd_attempts_fini(struct hd_attempts *a)
{
	free(a->ring);
	memset(a, 0, sizeof(*a));
}

void hd_attempts_add(struct hd_attempts *a, const struct hd_attempt *at)
{
	if (!a->ring)
		a->ring = hd_calloc(HD_ATTEMPTS_MAX, sizeof(*a->ring));
	a->ring[a->head] = *at;
	a->ring[a->head].error[HD_ATTEMPT_ERROR_MAX - 1] = '\0';
	a->head = (a->head + 1) % HD_ATTEMPTS_MAX;
	if (a->n < HD_ATTEMPTS_MAX)
		a->n++;
	a->total++;
}

const struct hd_attempt *hd_attempts_get(const struct hd_attempts *a, size_t i)
{
	if (i >= a->n)
		return NULL;
	return &a->ring[(a->head + HD_ATTEMPTS_MAX - 1 - i) % HD_ATTEMPTS_MAX];
}

static const char *result_name(enum hd_attempt_result r)
{
	switch (r) {
	case HD_ATTEMPT_SUCCESS:
		return "success";
	case HD_ATTEMPT_RETRY:
		return "retry";
	case HD_ATTEMPT_DEAD_LETTER:
		return "dead_letter";
	case HD_ATTEMPT_DISABLED:
		return "disabled";
	}
	return "unknown";
}

int hd_attempts_json(struct hd_buf *b, const struct hd_attempts *a, size_t limit)
{
	int rc = hd_buf_putc(b, '[');
	for (size_t i = 0; i < limit && rc == 0; i++) {
		const struct hd_attempt *at = hd_attempts_get(a, i);
		char when[40], next[40];
		if (!at)
			break;
		hd_clock_format_rfc3339(at->time_ms, when, sizeof(when));
		hd_buf_printf(b,
			      "%s{\"time\":\"%s\",\"offset\":%" PRIu64 ",\"attempt\":%" PRIu32
			      ",\"status\":%d,\"latency_ms\":%.3f,\"result\":\"%s\",\"error\":\"",
			      i ? "," : "", when, at->offset, at->attempt, at->status,
			      (double)at->latency_us / 1000.0, result_name(at->result));
		hd_buf_json_escape(b, at->error, strlen(at->error));
		hd_buf_putc(b, '"');
		if (at->topic[0]) {
			hd_buf_puts(b, ",\"topic\":\"");
			hd_buf_json_escape(b, at->topic, strlen(at->topic));
			hd_buf_putc(b, '"');
		}
		if (at->result == HD_ATTEMPT_RETRY) {
			hd_clock_format_rfc3339(at->next_ms, next, sizeof(next));
			hd_buf_printf(b, ",\"next_attempt\":\"%s\"", next);
		}
		rc = hd_buf_putc(b, '}');
	}
	if (rc == 0)
		rc = hd_buf_putc(b, ']');
	return rc;
}
