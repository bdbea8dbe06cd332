/* deadletter — see deadletter.h. */
#include "consume/deadletter.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hd_deadletter_event(const struct hd_deadletter *d, struct hd_event *ev)
{
	struct hd_buf b;
	char now[40];

	memset(ev, 0, sizeof(*ev));
	hd_clock_format_rfc3339(d->now_ms, now, sizeof(now));
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

/* ---- publishing ------------------------------------------------------ */

struct publish {
	struct hd_pub pub;
	struct hd_pub_item item;
	struct hd_event ev;
	uint64_t offset, tag;
	hd_deadletter_done_fn done;
	void *arg;
	char topic[HD_TOPIC_NAME_MAX + sizeof(HD_TOPIC_NAME_DLQ_SUFFIX)];
};

static void published(struct hd_pub *p)
{
	struct publish *q = p->arg;
	hd_deadletter_done_fn done = q->done;
	void *arg = q->arg;
	uint64_t offset = q->offset, tag = q->tag;
	int err = q->item.err;
	hd_cloudevent_event_fini(&q->ev);
	free(q);
	done(arg, offset, tag, err);
}

void hd_deadletter_publish(struct hd_hub *hub, const struct hd_deadletter *d, uint64_t tag,
			   hd_deadletter_done_fn done, void *arg)
{
	struct publish *q = hd_calloc(1, sizeof(*q));
	q->offset = d->offset;
	q->tag = tag;
	q->done = done;
	q->arg = arg;
	snprintf(q->topic, sizeof(q->topic), "%s" HD_TOPIC_NAME_DLQ_SUFFIX, d->topic);
	int rc = hd_deadletter_event(d, &q->ev);
	q->item.topic = q->topic;
	q->item.event = &q->ev;
	q->item.stored_ms = d->now_ms;
	q->pub.items = &q->item;
	q->pub.n = 1;
	q->pub.done = published;
	q->pub.arg = q;
	if (rc == 0)
		rc = hd_hub_publish(hub, &q->pub);
	if (rc) {
		q->item.err = rc;
		published(&q->pub);
	}
}
