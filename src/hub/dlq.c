/* dlq — see dlq.h. */
#include "hub/dlq.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>

struct dlq_pub {
	struct hd_pub pub;
	struct hd_pub_item item;
	struct hd_event ev;
	uint64_t offset, tag;
	hd_dlq_done_fn done;
	void *arg;
	char topic[HD_TOPIC_NAME_MAX + sizeof(HD_DLQ_SUFFIX)];
};

static void published(struct hd_pub *p)
{
	struct dlq_pub *q = p->arg;
	hd_dlq_done_fn done = q->done;
	void *arg = q->arg;
	uint64_t offset = q->offset, tag = q->tag;
	int err = q->item.err;
	hd_event_fini(&q->ev);
	free(q);
	done(arg, offset, tag, err);
}

void hd_dlq_publish(struct hd_hub *hub, const struct hd_deadletter *d, uint64_t tag,
		    hd_dlq_done_fn done, void *arg)
{
	struct dlq_pub *q = hd_calloc(1, sizeof(*q));
	q->offset = d->offset;
	q->tag = tag;
	q->done = done;
	q->arg = arg;
	snprintf(q->topic, sizeof(q->topic), "%s" HD_DLQ_SUFFIX, d->topic);
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
