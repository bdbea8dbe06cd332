/*
 * engine_types — the engine seam's vocabulary: the limits, rows and events
 * that engine.h's requests carry.
 * Layer: engine (types only, no code). Included by engine/engine.h (and so
 * by the hub and every edge) and by store/store.h, which implements these
 * types for the embedded engine (engine/local.c). Any engine (the local
 * SQLite one, a Redis one) speaks in these; none of them is the store's.
 */
#ifndef HD_ENGINE_TYPES_H
#define HD_ENGINE_TYPES_H

#include "core/rcbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A topic's epoch: random text, new each time a topic of the name is created. */
#define HD_EPOCH_LEN 16
/* A topic name is 1..HD_TOPIC_NAME_MAX bytes (hub/topic_name.h says of what). */
#define HD_TOPIC_NAME_MAX 255
/* A pull consumer group's name. */
#define HD_GROUP_NAME_MAX 128
/* A durable record's kind, key and value (text) limits. */
#define HD_RECORD_KIND_MAX 15
#define HD_RECORD_KEY_MAX 512
#define HD_RECORD_VALUE_MAX (256u * 1024)
/* A history read stops after this many bytes of event JSON (at least one
 * event is returned), so `limit` large events cannot make one read unbounded. */
#define HD_READ_BYTES_MAX (8u * 1024 * 1024)

/* An event as stored: what reads return, the ring keeps and fan-out sends. */
struct hd_stored_event {
	uint64_t offset;
	int64_t time_ms;         /* when it was stored */
	int64_t expires_ms;      /* 0 = never */
	struct hd_rcbuf *json;   /* the event JSON including "topic" and "offset" members */
};

/* What an engine knows of one topic. */
struct hd_topic_info {
	char name[HD_TOPIC_NAME_MAX + 1];
	char epoch[HD_EPOCH_LEN + 1];
	uint64_t first;          /* smallest kept offset, or last + 1 when none kept */
	uint64_t last;
	uint64_t count;
	uint64_t bytes;
	int64_t created_ms;
};

/* How long a topic keeps events; supplied per topic by the hub. */
struct hd_topic_policy {
	int64_t max_age_ms;      /* 0 = no age limit */
	uint64_t max_count;      /* 0 = no count limit */
	int64_t dedup_window_ms; /* 0 = no dedup */
	bool history;            /* false: offsets are assigned but events are not kept,
				    and low stays at last + 1 (a reader resuming from an
				    earlier offset is told truncated, never silently) */
};

/* Fills out with topic's policy. Must be thread-safe: an engine may call it
 * from its writer and reader threads. */
typedef void (*hd_topic_policy_fn)(void *arg, const char *topic, struct hd_topic_policy *out);

/* A pull consumer group's durable state. */
struct hd_group_row {
	char topic[HD_TOPIC_NAME_MAX + 1];
	char name[HD_GROUP_NAME_MAX + 1];
	uint64_t ack_floor;      /* every offset <= it is acked */
	char *acked;             /* acked offsets above the floor, consume/lease.h's durable
				    form; borrowed when submitted, owned (free) when returned */
	uint32_t ack_wait_ms;
	uint32_t max_deliveries;
	bool ordered;
	int64_t created_ms;
};

/* A module's small durable record: (kind, key) → value. The engine does not
 * look inside value; the module owning `kind` does. */
struct hd_record {
	char kind[HD_RECORD_KIND_MAX + 1];
	char key[HD_RECORD_KEY_MAX + 1];
	char *value;             /* NUL-terminated text, <= HD_RECORD_VALUE_MAX bytes;
				    borrowed when submitted, owned (free) when returned */
	int64_t updated_ms;
};

#endif
