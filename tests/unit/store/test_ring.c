/*
 * test_ring — unit tests of src/store/ring.c: eviction by count and by
 * bytes, contiguity, reads after any offset, and the references the ring
 * holds: push adds one, eviction and clearing drop it (run under ASan,
 * which fails the run on a leaked or doubly freed buffer).
 */
#include "core/rcbuf.h"
#include "store/ring.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* An event with json of len bytes; the caller holds its one reference. */
static struct hd_stored_event ev(uint64_t offset, size_t len)
{
	struct hd_stored_event e = {.offset = offset, .time_ms = 1000 + (int64_t)offset};
	e.json = hd_rcbuf_new(len);
	memset(e.json->data, 'a' + (int)(offset % 26), len);
	return e;
}

/* Pushes a new event and drops the test's reference, as the engine does
 * once it has pushed: afterwards only the ring holds the buffer. */
static void push(struct hd_ring *r, uint64_t offset, size_t len)
{
	struct hd_stored_event e = ev(offset, len);
	hd_ring_push(r, &e);
	hd_rcbuf_unref(e.json);
}

static unsigned refs(const struct hd_rcbuf *b)
{
	return atomic_load(&b->refs);
}

static void test_push_and_read(void **state)
{
	struct hd_ring r;
	const struct hd_stored_event *out[8];

	hd_ring_init(&r, 4, 1000);
	assert_int_equal(hd_ring_first(&r), 0);
	assert_int_equal(hd_ring_last(&r), 0);
	assert_int_equal(hd_ring_read(&r, 0, 8, out), 0);
	for (uint64_t o = 1; o <= 3; o++) {
		push(&r, o, 10);
	}
	assert_int_equal(hd_ring_first(&r), 1);
	assert_int_equal(hd_ring_last(&r), 3);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.bytes, 30);

	/* after before first, inside, at last, past last */
	assert_int_equal(hd_ring_read(&r, 0, 8, out), 3);
	assert_int_equal(out[0]->offset, 1);
	assert_int_equal(out[2]->offset, 3);
	assert_int_equal(hd_ring_read(&r, 1, 8, out), 2);
	assert_int_equal(out[0]->offset, 2);
	assert_int_equal(out[1]->offset, 3);
	assert_int_equal(out[1]->json->data[0], 'a' + 3);
	assert_int_equal(hd_ring_read(&r, 3, 8, out), 0);
	assert_int_equal(hd_ring_read(&r, 99, 8, out), 0);
	/* max caps the copy */
	assert_int_equal(hd_ring_read(&r, 0, 2, out), 2);
	assert_int_equal(out[1]->offset, 2);
	assert_int_equal(hd_ring_read(&r, 0, 0, out), 0);
	hd_ring_fini(&r);
}

static void test_evict_by_count(void **state)
{
	struct hd_ring r;
	struct hd_rcbuf *held[6];
	const struct hd_stored_event *out[8];

	hd_ring_init(&r, 3, 1 << 20);
	for (uint64_t o = 1; o <= 5; o++) {
		struct hd_stored_event e = ev(o, 8);
		held[o] = e.json; /* the test keeps its reference; the ring adds one */
		hd_ring_push(&r, &e);
		assert_int_equal(refs(held[o]), 2);
	}
	assert_int_equal(r.count, 3);
	assert_int_equal(r.bytes, 24);
	assert_int_equal(hd_ring_first(&r), 3);
	assert_int_equal(hd_ring_last(&r), 5);
	/* Evicted entries gave their reference back; kept ones still hold it. */
	assert_int_equal(refs(held[1]), 1);
	assert_int_equal(refs(held[2]), 1);
	assert_int_equal(refs(held[3]), 2);
	assert_int_equal(refs(held[5]), 2);
	/* An after older than the ring returns everything it has. */
	assert_int_equal(hd_ring_read(&r, 1, 8, out), 3);
	assert_int_equal(out[0]->offset, 3);
	assert_int_equal(hd_ring_read(&r, 4, 8, out), 1);
	assert_int_equal(out[0]->offset, 5);

	hd_ring_fini(&r);
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(refs(held[i]), 1);
		hd_rcbuf_unref(held[i]);
	}
}

static void test_evict_by_bytes(void **state)
{
	struct hd_ring r;
	const struct hd_stored_event *out[8];

	hd_ring_init(&r, 10, 25);
	for (uint64_t o = 1; o <= 3; o++) {
		push(&r, o, 10);
	}
	/* 30 bytes would pass 25: the oldest went. */
	assert_int_equal(r.count, 2);
	assert_int_equal(r.bytes, 20);
	assert_int_equal(hd_ring_first(&r), 2);

	/* A big one pushes out as many as it needs. */
	push(&r, 4, 24);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.bytes, 24);
	assert_int_equal(hd_ring_first(&r), 4);

	/* Exactly max_bytes fits. */
	push(&r, 5, 25);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.bytes, 25);
	assert_int_equal(hd_ring_read(&r, 0, 8, out), 1);
	assert_int_equal(out[0]->offset, 5);
	hd_ring_fini(&r);
}

static void test_oversize_entry_not_kept(void **state)
{
	struct hd_ring r;

	hd_ring_init(&r, 4, 16);
	push(&r, 1, 4);
	struct hd_stored_event huge = ev(2, 17);
	hd_ring_push(&r, &huge);
	/* Not kept (no reference taken), and the ring holds no hole. */
	assert_int_equal(refs(huge.json), 1);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.bytes, 0);
	hd_rcbuf_unref(huge.json);

	/* The run starts again with the next offset. */
	push(&r, 3, 4);
	assert_int_equal(hd_ring_first(&r), 3);
	assert_int_equal(hd_ring_last(&r), 3);
	hd_ring_fini(&r);
}

static void test_contiguity_reset(void **state)
{
	struct hd_ring r;
	const struct hd_stored_event *out[8];

	hd_ring_init(&r, 8, 1000);
	for (uint64_t o = 1; o <= 3; o++) {
		push(&r, o, 5);
	}
	/* A gap: the ring restarts at 7. */
	push(&r, 7, 5);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.bytes, 5);
	assert_int_equal(hd_ring_first(&r), 7);
	assert_int_equal(hd_ring_read(&r, 2, 8, out), 1);
	assert_int_equal(out[0]->offset, 7);

	/* Going backwards (a recreated topic) restarts it too. */
	push(&r, 1, 5);
	assert_int_equal(r.count, 1);
	assert_int_equal(hd_ring_first(&r), 1);
	assert_int_equal(hd_ring_last(&r), 1);
	hd_ring_fini(&r);
}

static void test_wraparound(void **state)
{
	struct hd_ring r;
	const struct hd_stored_event *out[8];

	hd_ring_init(&r, 3, 1000);
	for (uint64_t o = 1; o <= 100; o++) {
		push(&r, o, 1);
		uint64_t first = o > 3 ? o - 2 : 1;
		assert_int_equal(hd_ring_first(&r), first);
		assert_int_equal(hd_ring_last(&r), o);
		size_t n = hd_ring_read(&r, 0, 8, out);
		assert_int_equal(n, o - first + 1);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i]->offset, first + i);
	}
	assert_int_equal(r.bytes, 3);
	hd_ring_fini(&r);
}

static void test_clear_keeps_slots(void **state)
{
	struct hd_ring r;
	struct hd_rcbuf *held;

	hd_ring_init(&r, 2, 100);
	struct hd_stored_event a = ev(1, 3);
	held = a.json;
	hd_ring_push(&r, &a);
	assert_int_equal(refs(held), 2);
	hd_ring_clear(&r);
	assert_int_equal(refs(held), 1);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.bytes, 0);
	assert_int_equal(hd_ring_first(&r), 0);
	assert_non_null(r.slots);
	assert_int_equal(r.cap, 2);
	hd_rcbuf_unref(held);

	push(&r, 1, 3);
	assert_int_equal(hd_ring_last(&r), 1);
	hd_ring_fini(&r);
	assert_null(r.slots);
}

static void test_zero_capacity(void **state)
{
	struct hd_ring r;
	const struct hd_stored_event *out[2];

	hd_ring_init(&r, 0, 100);
	push(&r, 1, 3);
	assert_int_equal(r.count, 0);
	assert_int_equal(hd_ring_read(&r, 0, 2, out), 0);
	hd_ring_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_and_read),
		cmocka_unit_test(test_evict_by_count),
		cmocka_unit_test(test_evict_by_bytes),
		cmocka_unit_test(test_oversize_entry_not_kept),
		cmocka_unit_test(test_contiguity_reset),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_clear_keeps_slots),
		cmocka_unit_test(test_zero_capacity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
