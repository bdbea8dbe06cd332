/*
 * dedup — see dedup.h.
 *
 * The ring grows by doubling up to max (the index is rebuilt then); it
 * never shrinks. The index is at most half full. A slot's upper 32 bits
 * are the upper half of the entry's probe hash, which also picks its home
 * slot, so removal (backward-shift deletion, no tombstones) never reads
 * the ring to learn where a displaced slot belongs.
 */
#include "store/dedup.h"
#include "core/alloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CAP_MIN 1024

static uint64_t probe_hash(int64_t topic_id, uint64_t h)
{
	/* h is a keyed hash already; the topic only needs mixing in. */
	uint64_t x = h ^ ((uint64_t)topic_id * 0x9e3779b97f4a7c15ull);
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static size_t home(const struct hd_dedup *d, uint64_t slot_or_hash)
{
	return (size_t)(slot_or_hash >> 32) & (d->nindex - 1);
}

static struct hd_dedup_entry *at(const struct hd_dedup *d, size_t i)
{
	return &d->ring[(d->head + i) % d->cap];
}

static void index_put(struct hd_dedup *d, size_t idx)
{
	const struct hd_dedup_entry *e = &d->ring[idx];
	uint64_t k = probe_hash(e->topic_id, e->h);
	size_t mask = d->nindex - 1;
	size_t i = home(d, k);
	while (d->index[i])
		i = (i + 1) & mask;
	d->index[i] = (k & 0xffffffff00000000ull) | (uint64_t)(idx + 1);
}

static void index_del(struct hd_dedup *d, size_t idx)
{
	const struct hd_dedup_entry *e = &d->ring[idx];
	size_t mask = d->nindex - 1;
	size_t i = home(d, probe_hash(e->topic_id, e->h));

	while (d->index[i] && (d->index[i] & 0xffffffffu) != idx + 1)
		i = (i + 1) & mask;
	if (!d->index[i])
		return;
	/* Shift back every later slot of the run that may live at i. */
	for (size_t j = (i + 1) & mask; d->index[j]; j = (j + 1) & mask) {
		size_t hj = home(d, d->index[j]);
		/* hj cyclically in (i, j]: it stays. */
		bool stays = i <= j ? (hj > i && hj <= j) : (hj > i || hj <= j);
		if (!stays) {
			d->index[i] = d->index[j];
			i = j;
		}
	}
	d->index[i] = 0;
}

static void rebuild(struct hd_dedup *d, size_t cap)
{
	struct hd_dedup_entry *ring = hd_calloc(cap, sizeof(*ring));
	size_t ni = 1;
	for (size_t i = 0; i < d->n; i++)
		ring[i] = *at(d, i);
	free(d->ring);
	d->ring = ring;
	d->cap = cap;
	d->head = 0;
	while (ni < 2 * cap)
		ni <<= 1;
	free(d->index);
	d->index = hd_calloc(ni, sizeof(*d->index));
	d->nindex = ni;
	for (size_t i = 0; i < d->n; i++)
		index_put(d, i);
}

void hd_dedup_init(struct hd_dedup *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max < 1 ? 1 : max > UINT32_MAX - 1 ? UINT32_MAX - 1 : max;
	rebuild(d, d->max < CAP_MIN ? d->max : CAP_MIN);
}

void hd_dedup_fini(struct hd_dedup *d)
{
	free(d->ring);
	free(d->index);
	memset(d, 0, sizeof(*d));
}

const struct hd_dedup_entry *hd_dedup_find(const struct hd_dedup *d, int64_t topic_id, uint64_t h,
					   int64_t now)
{
	uint64_t k = probe_hash(topic_id, h), tag = k & 0xffffffff00000000ull;
	size_t mask = d->nindex - 1;

	for (size_t i = home(d, k); d->index[i]; i = (i + 1) & mask) {
		if ((d->index[i] & 0xffffffff00000000ull) != tag)
			continue;
		const struct hd_dedup_entry *e = &d->ring[(d->index[i] & 0xffffffffu) - 1];
		if (e->h == h && e->topic_id == topic_id && e->expires_ms > now)
			return e;
	}
	return NULL;
}

static void drop_oldest(struct hd_dedup *d)
{
	index_del(d, d->head);
	d->head = (d->head + 1) % d->cap;
	d->n--;
}

void hd_dedup_add(struct hd_dedup *d, int64_t topic_id, uint64_t h, uint64_t offset,
		  int64_t expires_ms, int64_t now)
{
	while (d->n && at(d, 0)->expires_ms <= now)
		drop_oldest(d);
	if (d->n == d->cap && d->cap < d->max)
		rebuild(d, d->cap * 2 < d->max ? d->cap * 2 : d->max);
	if (d->n == d->cap) {
		drop_oldest(d);
		d->evicted++;
	}
	size_t idx = (d->head + d->n) % d->cap;
	d->ring[idx] = (struct hd_dedup_entry){
		.h = h, .topic_id = topic_id, .offset = offset, .expires_ms = expires_ms};
	index_put(d, idx);
	d->n++;
	d->added++;
}

void hd_dedup_rollback(struct hd_dedup *d, uint64_t mark)
{
	while (d->added > mark && d->n) {
		index_del(d, (d->head + d->n - 1) % d->cap);
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
	memset(d->index, 0, d->nindex * sizeof(*d->index));
	for (size_t i = 0; i < d->n; i++)
		index_put(d, (d->head + i) % d->cap);
}
