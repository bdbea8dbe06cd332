/*
 * deadletter — dead letters: the CloudEvent herald publishes to {topic}.dlq
 * for an event that could not be delivered (a pull group's event past
 * max_deliveries, a webhook's event past max_attempts), and its publishing
 * through the hub. The one place the pull groups (groups/group_part.c, for
 * exact and pattern groups) and the webhooks hand an undeliverable event
 * over.
 * Layer: consume. hd_deadletter_event is pure (any thread);
 * hd_deadletter_publish runs on the loop thread.
 *
 * The event: {"specversion":"1.0","id":<id>,"source":<source>,"type":<type>,
 * "time":<now>,"datacontenttype":"application/json","data":{"reason":…,
 * "attempts":N,"topic":<the original's topic>,"offset":N, <extra members>,
 * "event":<the original stored event>}}. Its id is chosen by the caller
 * so that dead-lettering the same event again (after a crash before its
 * acknowledgement was stored) is dropped by dedup where the dead-letter
 * topic's namespace has a dedup window. The dead-letter topic of topic T is
 * T + HD_TOPIC_NAME_DLQ_SUFFIX (hub/topic_name.h).
 */
#ifndef HD_DEADLETTER_H
#define HD_DEADLETTER_H

#include "hub/hub.h"
#include "hub/topic_name.h"
#include "proto/cloudevent.h"

#include <stddef.h>
#include <stdint.h>

struct hd_deadletter {
	const char *id;            /* borrowed, every member */
	const char *source;
	const char *type;
	const char *reason;
	uint32_t attempts;
	const char *topic;
	uint64_t offset;
	const char *extra;         /* more members of data as JSON text ("\"group\":\"g\""), or NULL */
	const char *event;         /* the original stored event JSON */
	size_t event_len;
	int64_t now_ms;
};

/* Fills ev (owned strings; hd_cloudevent_event_fini frees them). Returns 0, or
 * HD_ETOOBIG when the event would pass HD_DEADLETTER_MAX bytes (ev is then
 * empty). */
#define HD_DEADLETTER_MAX HD_EVENT_REPLY_MAX
int hd_deadletter_event(const struct hd_deadletter *d, struct hd_event *ev);

/* err is 0 once the dead letter is committed, else the HD_E* code of the
 * publish; offset and tag are the ones given to hd_deadletter_publish. */
typedef void (*hd_deadletter_done_fn)(void *arg, uint64_t offset, uint64_t tag, int err);

/* Publishes d's event to d->topic + HD_TOPIC_NAME_DLQ_SUFFIX (d and what it
 * points to are copied before the call returns). done runs exactly once,
 * later, or before the call returns when the publish cannot start. */
void hd_deadletter_publish(struct hd_hub *hub, const struct hd_deadletter *d, uint64_t tag,
			   hd_deadletter_done_fn done, void *arg);

#endif
