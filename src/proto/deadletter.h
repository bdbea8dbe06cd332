/*
 * deadletter — the CloudEvent herald publishes to {topic}.dlq for an event
 * that could not be delivered (a pull group's event past max_deliveries, a
 * webhook's event past max_attempts).
 * Layer: proto (pure). Any thread; the pull-group and webhook edges call it
 * on the loop thread.
 *
 * The event: {"specversion":"1.0","id":<id>,"source":<source>,"type":<type>,
 * "time":<now>,"datacontenttype":"application/json","data":{"reason":…,
 * "attempts":N,"topic":<the original's topic>,"offset":N, <extra members>,
 * "event":<the original stored event>}}. Its id is chosen by the caller
 * so that dead-lettering the same event again (after a crash before its
 * acknowledgement was stored) is dropped by dedup where the dead-letter
 * topic's namespace has a dedup window.
 */
#ifndef HD_DEADLETTER_H
#define HD_DEADLETTER_H

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

/* Fills ev (owned strings; hd_event_fini frees them). Returns 0, or
 * HD_ETOOBIG when the event would pass HD_DEADLETTER_MAX bytes (ev is then
 * empty). */
#define HD_DEADLETTER_MAX (65u * 1024 * 1024)
int hd_deadletter_event(const struct hd_deadletter *d, struct hd_event *ev);

#endif
