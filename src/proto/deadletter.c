/* deadletter — see deadletter.h. */
#include "proto/deadletter.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"

#include <inttypes.h>
#include <string.h>

int hd_deadletter_event(const struct hd_deadletter *d, struct hd_event *ev)
{
	struct hd_buf b;
	char now[40];

	memset(ev, 0, sizeof(*ev));
	hd_format_rfc3339(d->now_ms, now, sizeof(now));
	hd_buf_init(&b, HD_DEADLETTER_MAX);
	hd_buf_puts(&b, "{\"specversion\":\"1.0\",\"id\":\"");
	hd_buf_json_escape(&b, d->id, strlen(d->id));
	hd_buf_puts(&b, "\",\"source\":\"");
	hd_buf_json_escape(&b, d->source, strlen(d->source));
	hd_buf_puts(&b, "\",\"type\":\"");
	hd_buf_json_escape(&b, d->type, strlen(d->type));
	hd_buf_printf(&b, "\",\"time\":\"%s\",\"datacontenttype\":\"application/json\","
			  "\"data\":{\"reason\":\"", now);
	hd_buf_json_escape(&b, d->reason, strlen(d->reason));
	hd_buf_printf(&b, "\",\"attempts\":%" PRIu32 ",\"topic\":\"", d->attempts);
	hd_buf_json_escape(&b, d->topic, strlen(d->topic));
	hd_buf_printf(&b, "\",\"offset\":%" PRIu64 ",", d->offset);
	if (d->extra && d->extra[0]) {
		hd_buf_puts(&b, d->extra);
		hd_buf_putc(&b, ',');
	}
	hd_buf_puts(&b, "\"event\":");
	int rc = hd_buf_append(&b, d->event, d->event_len);
	if (rc == 0)
		rc = hd_buf_puts(&b, "}}");
	if (rc) {
		hd_buf_fini(&b);
		return HD_ETOOBIG;
	}
	ev->json = hd_buf_steal(&b, &ev->json_len);
	ev->id = hd_strdup(d->id);
	ev->source = hd_strdup(d->source);
	ev->type = hd_strdup(d->type);
	ev->time_ms = d->now_ms;
	hd_buf_fini(&b);
	return 0;
}
