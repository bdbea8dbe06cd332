/*
 * dedup — see dedup.h.
 *
 * The index is linear probing at most half full. A slot's upper 32 bits
 * are the upper half of the entry's probe hash, which also picks its home
 * slot, so removal (backward-shift deletion, no tombstones) never reads
 * the ring to learn where a displaced slot belongs. Growing: when an add
 * would fill the index past half, a new one of twice the size takes every
 * later add, and each add moves MOVE_STEP slots of the old one into it; a
 * slot removed from the old one meanwhile becomes a tombstone there (a
 * backward shift could carry a slot behind the move cursor). Every live
 * entry is in the new index or not yet moved out of the old one, so a
 * look-up probes the new, then the old. The old is gone long before the
 * new fills in turn (the move needs nold / MOVE_STEP adds, the next growth
 * nold / 2).
 */
#include "store/dedup.h"
#include "core/alloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_MIN 2048
#define MOVE_STEP 8
#define TOMBSTONE 0xffffffff00000000ull /* ring slot part 0: no entry */
#define HIGH 0xffffffff00000000ull

static uint64_t probe_hash(int64_t topic_id, uint64_t h)
{
	/* h is a keyed hash already; the topic only needs mixing in. */
	uint64_t x = h ^ ((uint64_t)topic_id * 0x9e3779b97f4a7c15ull);
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static size_t home(size_t n, uint64_t slot_or_hash)
{
	return (size_t)(slot_or_hash >> 32) & (n - 1);
}

/* Ring slot idx (its chunk exists once anything was written there). */
static struct hd_dedup_entry *slot(const struct hd_dedup *d, size_t idx)
{
	return &d->chunks[idx >> HD_DEDUP_CHUNK_BITS][idx & (HD_DEDUP_CHUNK - 1)];
}

/* The i-th entry from the oldest. */
static struct hd_dedup_entry *at(const struct hd_dedup *d, size_t i)
{
	return slot(d, (d->head + i) % d->max);
}

/* Puts a slot value into a table that has room. */
static void table_put(uint64_t *t, size_t n, uint64_t v)
{
	size_t i = home(n, v);
	while (t[i])
		i = (i + 1) & (n - 1);
	t[i] = v;
}

static uint64_t slot_value(const struct hd_dedup *d, size_t idx)
{
	const struct hd_dedup_entry *e = slot(d, idx);
	return (probe_hash(e->topic_id, e->h) & HIGH) | (uint64_t)(idx + 1);
}

/* Removes ring slot idx's entry from table t: a tombstone, or a backward
 * shift of the rest of its run. */
static void table_del(uint64_t *t, size_t n, uint64_t v, bool tombstone)
{
	size_t mask = n - 1, i = home(n, v);
	while (t[i] && t[i] != v)
		i = (i + 1) & mask;
	if (!t[i])
		return;
	if (tombstone) {
		t[i] = TOMBSTONE;
		return;
	}
	for (size_t j = (i + 1) & mask; t[j]; j = (j + 1) & mask) {
		size_t hj = home(n, t[j]);
		/* hj cyclically in (i, j]: it stays. */
		bool stays = i <= j ? (hj > i && hj <= j) : (hj > i || hj <= j);
		if (!stays) {
			t[i] = t[j];
			i = j;
		}
	}
	t[i] = 0;
}

static void move_some(struct hd_dedup *d, size_t k)
{
	while (d->old && k--) {
		uint64_t v = d->old[d->moved];
		if (v && (v & 0xffffffffu))
			table_put(d->index, d->nindex, v);
		if (++d->moved == d->nold) {
			free(d->old);
			d->old = NULL;
			d->nold = d->moved = 0;
		}
	}
}

static void grow(struct hd_dedup *d)
{
	move_some(d, SIZE_MAX); /* never two old tables */
	d->old = d->index;
	d->nold = d->nindex;
	d->moved = 0;
	d->nindex *= 2;
	d->index = hd_calloc(d->nindex, sizeof(*d->index));
}

static void unindex(struct hd_dedup *d, size_t idx)
{
	uint64_t v = slot_value(d, idx);
	table_del(d->index, d->nindex, v, false);
	if (d->old)
		table_del(d->old, d->nold, v, true);
}

void hd_dedup_init(struct hd_dedup *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max < 1 ? 1 : max > UINT32_MAX - 1 ? UINT32_MAX - 1 : max;
	d->chunks = hd_calloc((d->max + HD_DEDUP_CHUNK - 1) >> HD_DEDUP_CHUNK_BITS,
			      sizeof(*d->chunks));
	d->nindex = INDEX_MIN;
	d->index = hd_calloc(d->nindex, sizeof(*d->index));
}

void hd_dedup_fini(struct hd_dedup *d)
{
	size_t nchunks = (d->max + HD_DEDUP_CHUNK - 1) >> HD_DEDUP_CHUNK_BITS;
	for (size_t i = 0; d->chunks && i < nchunks; i++)
		free(d->chunks[i]);
	free(d->chunks);
	free(d->index);
	free(d->old);
	memset(d, 0, sizeof(*d));
}

static const struct hd_dedup_entry *probe(const struct hd_dedup *d, const uint64_t *t, size_t n,
					  uint64_t k, int64_t topic_id, uint64_t h, int64_t now)
{
	uint64_t tag = k & HIGH;
	for (size_t i = home(n, k); t[i]; i = (i + 1) & (n - 1)) {
		if ((t[i] & HIGH) != tag || !(t[i] & 0xffffffffu))
			continue;
		const struct hd_dedup_entry *e = slot(d, (t[i] & 0xffffffffu) - 1);
		if (e->h == h && e->topic_id == topic_id && e->expires_ms > now)
			return e;
	}
	return NULL;
}

const struct hd_dedup_entry *hd_dedup_find(const struct hd_dedup *d, int64_t topic_id, uint64_t h,
					   int64_t now)
{
	uint64_t k = probe_hash(topic_id, h);
	const struct hd_dedup_entry *e = probe(d, d->index, d->nindex, k, topic_id, h, now);
	if (!e && d->old)
		e = probe(d, d->old, d->nold, k, topic_id, h, now);
	return e;
}

static void drop_oldest(struct hd_dedup *d)
{
	unindex(d, d->head);
	d->head = (d->head + 1) % d->max;
	d->n--;
}

void hd_dedup_add(struct hd_dedup *d, int64_t topic_id, uint64_t h, uint64_t offset,
		  int64_t expires_ms, int64_t now)
{
	while (d->n && at(d, 0)->expires_ms <= now)
		drop_oldest(d);
	if (d->n == d->max) {
		drop_oldest(d);
		d->evicted++;
	}
	move_some(d, MOVE_STEP);
	if (2 * (d->n + 1) > d->nindex)
		grow(d);
	size_t idx = (d->head + d->n) % d->max;
	struct hd_dedup_entry **chunk = &d->chunks[idx >> HD_DEDUP_CHUNK_BITS];
	if (!*chunk) {
		size_t left = d->max - (idx & ~(HD_DEDUP_CHUNK - 1));
		*chunk = hd_malloc((left < HD_DEDUP_CHUNK ? left : HD_DEDUP_CHUNK) * sizeof(**chunk));
	}
	*slot(d, idx) = (struct hd_dedup_entry){
		.h = h, .topic_id = topic_id, .offset = offset, .expires_ms = expires_ms};
	table_put(d->index, d->nindex, slot_value(d, idx));
	d->n++;
	d->added++;
}

void hd_dedup_rollback(struct hd_dedup *d, uint64_t mark)
{
	while (d->added > mark && d->n) {
		unindex(d, (d->head + d->n - 1) % d->max);
		d->n--;
		d->added--;
	}
	d->added = mark;
}

void hd_dedup_drop_topic(struct hd_dedup *d, int64_t topic_id)
{
	size_t keep = 0, n = d->n;
	/* Compact the survivors towards the old end, keeping their order. */
	for (size_t i = 0; i < n; i++) {
		struct hd_dedup_entry *e = at(d, i);
		if (e->topic_id != topic_id)
			*at(d, keep++) = *e;
	}
	d->n = keep;
	free(d->old);
	d->old = NULL;
	d->nold = d->moved = 0;
	memset(d->index, 0, d->nindex * sizeof(*d->index));
	for (size_t i = 0; i < d->n; i++)
		table_put(d->index, d->nindex, slot_value(d, (d->head + i) % d->max));
}
