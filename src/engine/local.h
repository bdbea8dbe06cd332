/*
 * local — the embedded engine: the SQLite store plus a per-topic ring of
 * recent events in memory. One node, no other process.
 * Layer: engine. Created by main.c; used by the hub through engine.h.
 * Only main.c and local.c include this header: it is the one place above
 * store/ that sees the store.
 */
#ifndef HD_ENGINE_LOCAL_H
#define HD_ENGINE_LOCAL_H

#include "engine/engine.h"
#include "store/store.h"

#include <uv.h>

struct hd_local_opts {
	struct hd_store_opts store;   /* notify/notify_arg are set by the engine */
	size_t ring_events;           /* per topic */
	size_t ring_bytes;            /* per topic */
	size_t max_topics_in_memory;  /* topics whose ring is kept */
	hd_engine_event_fn on_event;  /* may be NULL */
	void *on_event_arg;
};

/* Opens the store and starts its writer. Returns owned or NULL with err set. */
struct hd_engine *hd_local_engine_new(uv_loop_t *loop, const struct hd_local_opts *opts,
				      struct hd_error *err);

#endif
