/* Unit tests for consume/seek.c: the binary search for the first offset
 * stored at or after a time, over a fake engine's reads (dense offsets,
 * gaps, an empty topic, a failing read, cancellation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "consume/seek.h"
#include "core/config.h"
#include "fake_engine.h"

struct run {
	struct hd_seek k;
	int calls, err;
	uint64_t found;
};

static void done(struct hd_seek *k, int err)
{
	struct run *r = k->arg;
	r->calls++;
	r->err = err;
	r->found = k->found;
}

/* Seeks time_ms over f's events; returns the run. */
static struct run seek(struct hd_hub *hub, struct fake_engine *f, int64_t time_ms,
		       const bool *cancel)
{
	struct run r = {0};
	r.k = (struct hd_seek){.hub = hub, .topic = "t", .time_ms = time_ms, .cancel = cancel,
			       .done = done};
	r.k.arg = &r;
	f->reads = 0;
	uint64_t first = f->nevents ? f->offsets[0] : 1;
	uint64_t last = f->nevents ? f->offsets[f->nevents - 1] : 0;
	hd_seek_start(&r.k, first, last);
	assert_int_equal(r.calls, 1);
	return r;
}

/* The first offset of f at or after found (last + 1 if none): where a
 * consumer starting at found - 1 reads its first event. */
static uint64_t existing(const struct fake_engine *f, uint64_t found)
{
	for (size_t i = 0; i < f->nevents; i++)
		if (f->offsets[i] >= found)
			return f->offsets[i];
	return f->nevents ? f->offsets[f->nevents - 1] + 1 : 1;
}

static struct hd_hub *hub_with(struct fake_engine *f)
{
	struct hd_config cfg;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f->base);
	return hub;
}

static void test_dense(void **state)
{
	struct fake_engine f;
	(void)state;
	fake_init(&f);
	for (size_t i = 0; i < 100; i++) {
		f.offsets[i] = i + 1;
		f.times[i] = (int64_t)(i + 1) * 10;
	}
	f.nevents = 100;
	struct hd_hub *hub = hub_with(&f);

	struct run r = seek(hub, &f, 255, NULL);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.found, 26);
	assert_true(f.reads <= 8); /* about log2(100) one-event reads */
	assert_int_equal(seek(hub, &f, 250, NULL).found, 25); /* at: that event */
	assert_int_equal(seek(hub, &f, 0, NULL).found, 1);
	assert_int_equal(seek(hub, &f, 10, NULL).found, 1);
	assert_int_equal(seek(hub, &f, 1000, NULL).found, 100);
	assert_int_equal(seek(hub, &f, 1001, NULL).found, 101); /* none: last + 1 */
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_gaps(void **state)
{
	struct fake_engine f;
	const uint64_t offs[] = {5, 6, 9, 20, 21, 40};
	const int64_t times[] = {100, 100, 200, 300, 300, 900};
	(void)state;
	fake_init(&f);
	for (size_t i = 0; i < 6; i++) {
		f.offsets[i] = offs[i];
		f.times[i] = times[i];
	}
	f.nevents = 6;
	struct hd_hub *hub = hub_with(&f);
	assert_int_equal(existing(&f, seek(hub, &f, 50, NULL).found), 5);
	assert_int_equal(existing(&f, seek(hub, &f, 100, NULL).found), 5);  /* the first of equal times */
	assert_int_equal(existing(&f, seek(hub, &f, 150, NULL).found), 9);
	assert_int_equal(existing(&f, seek(hub, &f, 250, NULL).found), 20); /* across the gap 10..19 */
	assert_int_equal(existing(&f, seek(hub, &f, 301, NULL).found), 40);
	assert_int_equal(existing(&f, seek(hub, &f, 901, NULL).found), 41);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_empty_and_range(void **state)
{
	struct fake_engine f;
	struct hd_topic_info info = {.first = 3, .last = 9};
	struct hd_topic_op op = {.topics = &info, .n = 1};
	uint64_t first, last;
	(void)state;
	fake_init(&f);
	struct hd_hub *hub = hub_with(&f);

	/* An empty range needs no read: the answer is 1. */
	struct run r = seek(hub, &f, 5, NULL);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.found, 1);
	assert_int_equal(f.reads, 0);

	assert_int_equal(hd_seek_range(&op, &first, &last), 0);
	assert_int_equal(first, 3);
	assert_int_equal(last, 9);
	op = (struct hd_topic_op){.err = HD_ENOTFOUND};
	assert_int_equal(hd_seek_range(&op, &first, &last), 0); /* no topic: empty */
	assert_int_equal(first, 1);
	assert_int_equal(last, 0);
	op = (struct hd_topic_op){.err = HD_ESTORE};
	assert_int_equal(hd_seek_range(&op, &first, &last), HD_ESTORE);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_failure_and_cancel(void **state)
{
	struct fake_engine f;
	bool cancel = true;
	(void)state;
	fake_init(&f);
	for (size_t i = 0; i < 10; i++) {
		f.offsets[i] = i + 1;
		f.times[i] = (int64_t)i;
	}
	f.nevents = 10;
	struct hd_hub *hub = hub_with(&f);

	f.fail = HD_ESTORE;
	struct run r = seek(hub, &f, 5, NULL);
	assert_int_equal(r.err, HD_ESTORE);
	assert_false(r.k.cancelled);
	f.fail = 0;

	r = seek(hub, &f, 5, &cancel);
	assert_int_equal(r.err, HD_EUNAVAIL);
	assert_true(r.k.cancelled);
	assert_int_equal(f.reads, 0);
	hd_hub_free(hub);
	fake_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense),
		cmocka_unit_test(test_gaps),
		cmocka_unit_test(test_empty_and_range),
		cmocka_unit_test(test_failure_and_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
