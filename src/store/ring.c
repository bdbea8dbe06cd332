/*
 * ring — see ring.h. A fixed array of cap slots used circularly: slot
 * (head + i) % cap holds the i-th oldest entry, whose offset is
 * first + i, because pushes that would break the run clear it first.
 *
 * Ownership: hd_ring_push borrows ev and takes a reference of its own to
 * ev->json (the caller keeps, and later drops, its own); eviction and
 * clearing drop the ring's. An entry whose JSON alone is larger than
 * max_bytes is not kept at all (the ring is left empty rather than holding
 * a hole), so the ring never holds more than max_bytes.
 */
#include "store/ring.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

void hd_ring_init(struct hd_ring *r, size_t cap, size_t max_bytes)
{
	r->slots = cap ? hd_calloc(cap, sizeof(*r->slots)) : NULL;
	r->cap = cap;
	r->head = 0;
	r->count = 0;
	r->bytes = 0;
	r->max_bytes = max_bytes;
}

static void drop_oldest(struct hd_ring *r)
{
	struct hd_stored_event *ev = &r->slots[r->head];
	r->bytes -= ev->json ? ev->json->len : 0;
	hd_rcbuf_unref(ev->json);
	ev->json = NULL;
	r->head = (r->head + 1) % r->cap;
	r->count--;
}

void hd_ring_clear(struct hd_ring *r)
{
	while (r->count)
		drop_oldest(r);
	r->head = 0;
}

void hd_ring_fini(struct hd_ring *r)
{
	hd_ring_clear(r);
	free(r->slots);
	r->slots = NULL;
	r->cap = 0;
}

uint64_t hd_ring_first(const struct hd_ring *r)
{
	return r->count ? r->slots[r->head].offset : 0;
}

uint64_t hd_ring_last(const struct hd_ring *r)
{
	return r->count ? r->slots[(r->head + r->count - 1) % r->cap].offset : 0;
}

void hd_ring_push(struct hd_ring *r, const struct hd_stored_event *ev)
{
	size_t len = ev->json ? ev->json->len : 0;

	if (r->count && ev->offset != hd_ring_last(r) + 1)
		hd_ring_clear(r);
	if (!r->cap || len > r->max_bytes) {
		/* Keeping it would break a limit; evicting everything else
		 * would not help, and a ring with a hole is not allowed. */
		hd_ring_clear(r);
		return;
	}
	while (r->count && (r->count == r->cap || r->bytes + len > r->max_bytes))
		drop_oldest(r);
	r->slots[(r->head + r->count) % r->cap] = *ev;
	if (ev->json)
		hd_rcbuf_ref(ev->json);
	r->count++;
	r->bytes += len;
}

size_t hd_ring_read(const struct hd_ring *r, uint64_t after, size_t max,
		    const struct hd_stored_event **out)
{
	uint64_t first = hd_ring_first(r), last = hd_ring_last(r);
	size_t skip, n = 0;

	if (!r->count || after >= last)
		return 0;
	skip = after < first ? 0 : (size_t)(after - first + 1);
	for (size_t i = skip; i < r->count && n < max; i++)
		out[n++] = &r->slots[(r->head + i) % r->cap];
	return n;
}
