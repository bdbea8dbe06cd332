/*
 * topic_cache — the writer thread's map of topic name → the topic's row
 * (id, epoch, last and low offsets) and what the current transaction did to it.
 * Layer: store, private. Writer thread only.
 *
 * The database is the truth; the cache only saves a SELECT per event. An
 * entry is either clean (equal to its row) or touched by the transaction in
 * progress. When that transaction rolls back, every touched entry is
 * dropped and reloaded from the database on its next use, so the cache can
 * never hand out an offset the database does not back.
 *
 * The map is chained, with a bucket array that doubles as it fills. Its size
 * is capped by the writer (HD_STORE_TOPIC_CACHE_MAX), which empties it
 * between transactions when it grows past the cap.
 */
#ifndef HD_TOPIC_CACHE_H
#define HD_TOPIC_CACHE_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_store_topic {
	struct hd_store_topic *hnext;  /* hash chain */
	struct hd_store_topic *tnext;  /* the transaction's touched list */
	uint64_t txn;                  /* the transaction that last touched it */
	int64_t id;                    /* topics.id */
	uint64_t last;                 /* highest offset assigned */
	uint64_t low;                  /* first offset not removed by retention */
	int64_t dcount;                /* events added by this transaction */
	int64_t dbytes;                /* JSON bytes added by this transaction */
	bool dirty;                    /* the row needs an UPDATE before commit */
	bool deleted;                  /* deleted by this transaction; not in the map */
	bool created;                  /* created by this transaction */
	struct hd_topic_policy policy; /* fetched once per transaction */
	char epoch[HD_EPOCH_LEN + 1];
	uint32_t hash;
	size_t name_len;
	const char *prefix;            /* `,"topic":"<name, JSON-escaped>","offset":` */
	size_t prefix_len;
	char name[];                   /* name, NUL, then prefix, NUL */
};

struct hd_topic_cache {
	struct hd_store_topic **buckets; /* owned, nbuckets (a power of two) */
	size_t nbuckets;
	size_t count;
};

void hd_topic_cache_init(struct hd_topic_cache *c);
/* Frees every entry in the map and the buckets. */
void hd_topic_cache_fini(struct hd_topic_cache *c);
/* Frees every entry in the map; keeps the buckets. */
void hd_topic_cache_clear(struct hd_topic_cache *c);

uint32_t hd_topic_cache_hash(const char *name, size_t len);
/* Returns borrowed, valid until removed or cleared; NULL when absent. */
struct hd_store_topic *hd_topic_cache_find(const struct hd_topic_cache *c, const char *name,
					   size_t len, uint32_t hash);
/* Takes t, whose name must not be in the map. */
void hd_topic_cache_insert(struct hd_topic_cache *c, struct hd_store_topic *t);
/* Unlinks t from the map; the caller then owns it. */
void hd_topic_cache_remove(struct hd_topic_cache *c, struct hd_store_topic *t);

/* Returns owned (free with free()): an entry for name with its JSON member
 * prefix built, every other field zero. */
struct hd_store_topic *hd_store_topic_new(const char *name, size_t len);

#endif
