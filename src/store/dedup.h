/*
 * dedup — the writer's in-memory index of recent dedup keys: which
 * (topic, hash of source and id) was stored at which offset, until when.
 * Layer: store, private (the writer thread only; pure: no I/O, no clock —
 * times are passed in).
 *
 * Why in memory: a lookup-and-insert into an SQLite B-tree keyed by the
 * event's id cost the writer more than storing the event itself (about
 * 2.4 µs of the 4.5 µs per batched event); a hash probe costs a few
 * hundred nanoseconds. Durability is the store's (store.h: the claim in the
 * event's row, or the dedup table), read back into this index at start.
 *
 * Entries live in a ring in insertion order; an open-addressing index
 * (linear probing, 8 bytes a slot: 32 bits of the key's hash and the ring
 * slot) finds them, so a miss costs one cache line of the index and a hit
 * one more of the ring. Neither ever stops the writer for long: the ring
 * is a table of fixed chunks of HD_DEDUP_CHUNK entries, each allocated when
 * the ring first reaches it and never moved (memory follows use), and the
 * index doubles incrementally — the old one is moved into the new a few
 * slots per add, and looked at too until it is empty.
 * An entry past its expiry is never found; the oldest entries leave the
 * ring when they have expired, or, once the ring holds `max` entries, to
 * make room (an eviction: dedup then reaches back less far than the
 * window, counted in evicted). Entries added since a mark can be taken
 * back (a failed transaction).
 */
#ifndef HD_STORE_DEDUP_H
#define HD_STORE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

struct hd_dedup_entry {
	uint64_t h;            /* the hash of source and id */
	int64_t topic_id;
	uint64_t offset;
	int64_t expires_ms;
};

#define HD_DEDUP_CHUNK_BITS 16
#define HD_DEDUP_CHUNK ((size_t)1 << HD_DEDUP_CHUNK_BITS)

struct hd_dedup {
	struct hd_dedup_entry **chunks; /* the ring: max slots in chunks of
					   HD_DEDUP_CHUNK, NULL until used; n used from head */
	size_t head, n, max;
	uint64_t *index;       /* nindex (a power of two, at most half full) slots:
				  0 = empty, else (probe hash >> 32) << 32 | (ring slot + 1) */
	size_t nindex;
	uint64_t *old;         /* while growing: the previous index (deleted slots
				  become tombstones), moved from slot `moved` on */
	size_t nold, moved;
	uint64_t added;        /* entries ever added (marks count these) */
	uint64_t evicted;      /* unexpired entries pushed out by max */
};

/* max: most entries held, 1 .. UINT32_MAX - 1 (memory: at most 48 bytes
 * an entry). */
void hd_dedup_init(struct hd_dedup *d, size_t max);
void hd_dedup_fini(struct hd_dedup *d);

/* The unexpired entry of (topic_id, h) at now, or NULL. */
const struct hd_dedup_entry *hd_dedup_find(const struct hd_dedup *d, int64_t topic_id, uint64_t h,
					   int64_t now);

/* Adds an entry (after hd_dedup_find found none: an expired entry with the
 * same key may remain and is never found again). Drops expired entries at
 * the old end first and, at max, the oldest. */
void hd_dedup_add(struct hd_dedup *d, int64_t topic_id, uint64_t h, uint64_t offset,
		  int64_t expires_ms, int64_t now);

/* Takes back every entry added after hd_dedup_mark returned mark (entries
 * dropped meanwhile at the old end stay dropped). */
static inline uint64_t hd_dedup_mark(const struct hd_dedup *d) { return d->added; }
void hd_dedup_rollback(struct hd_dedup *d, uint64_t mark);

/* Forgets every entry of a topic (deleted; its id may be reused). O(n). */
void hd_dedup_drop_topic(struct hd_dedup *d, int64_t topic_id);

#endif
