/*
 * ring — the in-memory ring of a topic's most recent stored events.
 * Layer: store. Owned by the local engine, one per topic, loop thread only.
 *
 * Entries are pushed in offset order right after each commit, so the ring
 * holds a contiguous run of offsets [first, last]. It keeps at most `cap`
 * entries and `max_bytes` of JSON; pushing past either evicts the oldest.
 * Each entry holds one reference to its event's JSON rcbuf.
 */
#ifndef HD_RING_H
#define HD_RING_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct hd_ring {
	struct hd_stored_event *slots; /* owned, cap entries */
	size_t cap;
	size_t head;                   /* index of the oldest entry */
	size_t count;
	size_t bytes;
	size_t max_bytes;
};

void hd_ring_init(struct hd_ring *r, size_t cap, size_t max_bytes);
/* Drops every entry and frees the slots. */
void hd_ring_fini(struct hd_ring *r);
/* Drops every entry, keeps the slots (a topic was deleted). */
void hd_ring_clear(struct hd_ring *r);
/* Appends ev. Borrows ev; the ring takes a reference of its own to ev->json.
 * An entry larger than max_bytes is not kept. ev->offset must be greater than
 * the last entry's; if it is not last + 1 the ring is cleared first so it
 * stays contiguous. */
void hd_ring_push(struct hd_ring *r, const struct hd_stored_event *ev);
/* Offset of the oldest entry, 0 when empty. */
uint64_t hd_ring_first(const struct hd_ring *r);
/* Offset of the newest entry, 0 when empty. */
uint64_t hd_ring_last(const struct hd_ring *r);
/* Copies up to max entries with offset > after into out (borrowed: valid
 * until the next push or clear); returns how many. */
size_t hd_ring_read(const struct hd_ring *r, uint64_t after, size_t max,
		    const struct hd_stored_event **out);

#endif
