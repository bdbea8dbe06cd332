/*
 * store — durable event history in SQLite (WAL), one writer thread with
 * group commit.
 * Layer: store. Owned by the local engine (engine/local.c). Knows nothing of
 * the network, HTTP or libuv.
 *
 * Threads:
 *   - the owner thread (the loop) calls hd_store_submit and hd_store_drain;
 *   - one writer thread, started by hd_store_open, takes every queued batch
 *     it can (up to commit_max_events), applies them in ONE transaction,
 *     commits (fsync per opts.sync), moves them to the done list and calls
 *     opts.notify(notify_arg) on the writer thread (the engine wires that to
 *     uv_async_send). The owner then calls hd_store_drain to collect them;
 *   - hd_store_read, hd_store_topic_info, hd_store_topic_list and
 *     hd_store_topic_names may be called from any other thread (the libuv
 *     thread pool; the engine also lists topic names once at start): they
 *     use a pool of read-only connections and see the last committed state.
 *   - the writer also runs maintenance every maintenance_interval_ms: it
 *     deletes events past their TTL, events outside the topic policy's
 *     max_age/max_count, and dedup entries past their window;
 *   - one checkpointer thread copies the WAL back into the database once
 *     it passes a threshold (PASSIVE checkpoints on its own connection), so
 *     that work never runs inside a group commit.
 *
 * On-disk layout (schema version 4, in <dir>/herald.db):
 *   meta(key TEXT PRIMARY KEY, value TEXT)            -- schema_version
 *   topics(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, epoch TEXT NOT NULL,
 *          created_ms INTEGER, last_offset INTEGER,  -- highest offset ever assigned
 *          low_offset INTEGER,                        -- first offset not removed by retention
 *          count INTEGER, bytes INTEGER)              -- events and JSON bytes kept
 *   events(topic_id, offset, time_ms, expires_ms, json BLOB,
 *          PRIMARY KEY(topic_id, offset)) WITHOUT ROWID
 *   dedup(topic_id, offset, h, expires_ms,             -- an event's dedup key while its window
 *         PRIMARY KEY(topic_id, offset)) WITHOUT ROWID --   is open; h: SipHash-2-4 of its source
 *                                                     --   and id under meta's dedup_key. Written
 *                                                     --   in offset order, looked up in memory
 *   INDEX events_expiry ON events(expires_ms) WHERE expires_ms > 0   -- TTL sweep
 *   groups(topic TEXT, name TEXT,                     -- a pull consumer group
 *          ack_floor INTEGER,                         -- every offset <= it is acked
 *          acked TEXT,                                -- acked offsets above the floor,
 *                                                     --   consume/lease.h's durable form
 *          ack_wait_ms INTEGER, max_deliveries INTEGER, ordered INTEGER,
 *          created_ms INTEGER, PRIMARY KEY(topic, name)) WITHOUT ROWID
 *   records(kind TEXT, key TEXT,                       -- a module's small durable record:
 *           value TEXT, updated_ms INTEGER,            --   webhook subscriptions, user cursors
 *           PRIMARY KEY(kind, key)) WITHOUT ROWID
 * The events, rows and limits above are the engine seam's vocabulary
 * (engine/engine_types.h): the store implements them, nothing more.
 * (dedup has no expiry index: maintenance walks it in key order.)
 * Offsets are dense per topic from 1 and never reused while the topic
 * exists; deleting a topic removes its rows (its groups too), and a topic of
 * the same name created later gets a new random epoch and starts again at 1.
 * Groups are keyed by topic name, not id: a group may be created before the
 * first event of its topic. Version 3 added groups, version 4 records and
 * hashed dedup keys; older databases are refused (nothing was released
 * with them).
 */
#ifndef HD_STORE_H
#define HD_STORE_H

#include "core/err.h"
#include "core/rcbuf.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hd_store_sync { HD_SYNC_FULL, HD_SYNC_NORMAL, HD_SYNC_OFF };

#define HD_STORE_DEDUP_MAX_DEFAULT 4000000

struct hd_store_opts {
	const char *dir;                 /* created if missing */
	enum hd_store_sync sync;
	size_t commit_max_events;        /* events per transaction (group commit size cap) */
	size_t queue_max_events;         /* queued, uncommitted events; submit beyond → HD_EUNAVAIL */
	uint32_t maintenance_interval_ms;
	unsigned readers;                /* read connections in the pool */
	/* Topics the store may hold; an append that would create one more
	 * fails that item with HD_ELIMIT (existing topics still take events).
	 * 0 = no limit. */
	uint64_t max_topics;
	/* Dedup keys the writer holds in memory (store/dedup.h); past it the
	 * oldest go early. 0 = HD_STORE_DEDUP_MAX_DEFAULT. */
	size_t dedup_max_entries;
	hd_topic_policy_fn policy;       /* engine/engine_types.h */
	void *policy_arg;
	void (*notify)(void *arg);       /* writer thread: completed batches are ready */
	void *notify_arg;
};

/* One event to append. Inputs are borrowed until the batch is drained. */
struct hd_store_item {
	const char *topic;
	const char *source;      /* dedup key, with id */
	const char *id;
	const char *json;        /* canonical event JSON object, without topic/offset */
	size_t json_len;
	int64_t time_ms;         /* store time (now) */
	int64_t expires_ms;      /* 0 = never */
	/* Results, set by the writer thread: */
	int err;                 /* 0, or HD_ESTORE / HD_EBADTOPIC / HD_EBADEVENT */
	bool duplicate;          /* an event with this (source, id) is inside the dedup window */
	struct hd_stored_event stored; /* offset (the original's for a duplicate);
					  json returns owned, NULL for duplicates and errors */
	uint64_t topic_low;      /* topic state right after this commit */
	uint64_t topic_last;
	char epoch[HD_EPOCH_LEN + 1];
};

/* APPEND: events. DELETE_TOPIC: a topic with its events, dedup entries and
 * groups. GROUP_PUT: insert or replace one group row. GROUP_DELETE: remove
 * one (err HD_ENOTFOUND when there was none). RECORD_PUT / RECORD_DELETE:
 * the same for one record (kind and key; value too for a put). */
enum hd_store_op { HD_STORE_APPEND, HD_STORE_DELETE_TOPIC, HD_STORE_GROUP_PUT,
		   HD_STORE_GROUP_DELETE, HD_STORE_RECORD_PUT, HD_STORE_RECORD_DELETE };

struct hd_store_batch {
	enum hd_store_op op;
	struct hd_store_item *items;  /* APPEND: items in order; topics may differ */
	size_t n;
	const char *topic;            /* DELETE_TOPIC: borrowed until drained */
	const struct hd_group_row *group; /* GROUP_PUT, GROUP_DELETE (topic and name):
					     borrowed until drained */
	const struct hd_record *record;   /* RECORD_PUT, RECORD_DELETE: borrowed until drained */
	int err;                      /* DELETE_TOPIC, GROUP_DELETE: 0 or HD_ENOTFOUND; any op: HD_ESTORE if
					 the transaction failed (then every item has err set) */
	void *owner;                  /* the caller's */
	uint64_t submitted_us;        /* set by hd_store_submit (hd_mono_us) */
	struct hd_store_batch *next;  /* private to the store */
};

struct hd_store;

/* Opens (creating) the database and starts the writer thread. Returns owned
 * or NULL with err filled. Owner thread. */
struct hd_store *hd_store_open(const struct hd_store_opts *opts, struct hd_error *err);

/* Queues a batch (borrowed until it comes back from hd_store_drain).
 * Returns 0, or HD_EUNAVAIL if the queue is full or the store is stopping.
 * Group commit: a writer that waits for work starts on it at once; one that
 * is committing takes every batch queued meanwhile (up to
 * commit_max_events) into its next commit. Owner thread. */
int hd_store_submit(struct hd_store *s, struct hd_store_batch *b);


/* Calls cb for each completed batch, in commit order. Owner thread. */
void hd_store_drain(struct hd_store *s, void (*cb)(struct hd_store_batch *b, void *arg), void *arg);

/* Refuses new batches, lets the writer finish every queued one, stops the
 * thread. Blocks. Drain once more afterwards, then free. Owner thread. */
void hd_store_stop(struct hd_store *s);
void hd_store_free(struct hd_store *s);

/* Read of a topic's history after an offset. */
struct hd_store_read {
	uint64_t after;          /* in: return events with offset > after */
	uint32_t limit;          /* in: at most this many */
	int64_t now_ms;          /* in: events expired at this time are skipped */
	struct hd_stored_event *events; /* out: owned array of n (each json owned) */
	size_t n;
	bool exists;             /* out: the topic exists */
	uint64_t last;           /* out: the topic's last assigned offset (0 if none) */
	uint64_t low;            /* out: first offset not removed by retention */
	bool truncated;          /* out: a gap: after + 1 < low and after < last, or the
				    first event after `after` is past the policy's max_age */
	bool aged;               /* private to the reader */
	char epoch[HD_EPOCH_LEN + 1];
};

/* Any thread but the writer. Returns 0 (also for a topic that does not exist:
 * exists=false, n=0) or HD_ESTORE. */
int hd_store_read(struct hd_store *s, const char *topic, struct hd_store_read *r);
void hd_store_read_fini(struct hd_store_read *r);

/* Any thread but the writer. Returns 0 or HD_ENOTFOUND / HD_ESTORE. */
int hd_store_topic_info(struct hd_store *s, const char *topic, struct hd_topic_info *out);
/* Topics whose name starts with prefix ("" for all) and sorts after
 * after_name ("" to start), in name order, at most max. Returns 0 or HD_ESTORE. */
int hd_store_topic_list(struct hd_store *s, const char *prefix, const char *after_name,
			struct hd_topic_info *out, size_t max, size_t *n);

/* Calls fn(arg, name) for every topic name on disk (one snapshot, in no
 * particular order; name borrowed for the call). Stops with HD_ELIMIT before
 * the (max + 1)-th name. Returns 0, HD_ELIMIT or HD_ESTORE. Any thread but
 * the writer; fn must not call into the store. */
int hd_store_topic_names(struct hd_store *s, size_t max, void (*fn)(void *arg, const char *name),
			 void *arg);

/* Every group row, in (topic, name) order, at most max. *out returns owned
 * (free with hd_store_group_rows_free). Any thread but the writer. Returns 0
 * or HD_ESTORE. */
int hd_store_group_list(struct hd_store *s, struct hd_group_row **out, size_t max, size_t *n);
void hd_store_group_rows_free(struct hd_group_row *rows, size_t n);

/* One record into *out (value owned: free it). Returns 0, HD_ENOTFOUND or
 * HD_ESTORE. Any thread but the writer. */
int hd_store_record_get(struct hd_store *s, const char *kind, const char *key,
			struct hd_record *out);
/* Records of kind whose key starts with prefix ("" for all) and sorts after
 * after ("" to start), in key order (bytewise), at most max. *out returns
 * owned (free with hd_store_records_free). Returns 0 or HD_ESTORE. Any
 * thread but the writer. */
int hd_store_record_list(struct hd_store *s, const char *kind, const char *prefix,
			 const char *after, struct hd_record **out, size_t max, size_t *n);
void hd_store_records_free(struct hd_record *recs, size_t n);

#endif
