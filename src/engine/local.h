/*
 * local — the embedded engine: the SQLite store plus a per-topic ring of
 * recent events in memory. One node, no other process.
 * Layer: engine. Created by main.c; used by the hub through engine.h.
 * Only main.c, local.c and its unit test include this header: it is the
 * one place above store/ that sees the store.
 */
#ifndef HD_ENGINE_LOCAL_H
#define HD_ENGINE_LOCAL_H

#include "engine/engine.h"
#include "store/store.h"

#include <uv.h>

/* About 100 bytes of memory per name: 1,000,000 names cost ~100 MB, and
 * only when that many topics exist. */
#define HD_LOCAL_TOPIC_NAMES_MAX 1000000

struct hd_local_opts {
	struct hd_store_opts store;   /* notify/notify_arg are set by the engine */
	size_t ring_events;           /* per topic */
	size_t ring_bytes;            /* per topic */
	size_t max_topics_in_memory;  /* topics whose ring is kept */
	/* Topic names held so that a read of a topic that does not exist is
	 * answered on the loop without a store read; with more topics than
	 * this on disk such reads go to the store. 0 = HD_LOCAL_TOPIC_NAMES_MAX. */
	size_t max_topic_names;
	hd_engine_event_fn on_event;  /* may be NULL */
	void *on_event_arg;
};

/* Opens the store and starts its writer. Returns owned or NULL with err set. */
struct hd_engine *hd_local_engine_new(uv_loop_t *loop, const struct hd_local_opts *opts,
				      struct hd_error *err);

#endif
