/* Unit tests for store/dedup.c: the writer's in-memory dedup index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "store/dedup.h"

static void test_find_add_expire(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 100);
	assert_null(hd_dedup_find(&d, 1, 42, 0));
	hd_dedup_add(&d, 1, 42, 7, 1000, 0);
	const struct hd_dedup_entry *e = hd_dedup_find(&d, 1, 42, 999);
	assert_non_null(e);
	assert_int_equal(e->offset, 7);
	assert_null(hd_dedup_find(&d, 2, 42, 999));   /* other topic */
	assert_null(hd_dedup_find(&d, 1, 43, 999));   /* other key */
	assert_null(hd_dedup_find(&d, 1, 42, 1000));  /* expired */
	/* The expired entry leaves when something is added after it. */
	hd_dedup_add(&d, 1, 42, 8, 3000, 2000);
	assert_int_equal(d.n, 1);
	assert_int_equal(hd_dedup_find(&d, 1, 42, 2000)->offset, 8);
	hd_dedup_fini(&d);
}

static void test_max_evicts_oldest(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 3);
	for (uint64_t i = 1; i <= 5; i++)
		hd_dedup_add(&d, 1, i, i, 1000000, 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.evicted, 2);
	assert_null(hd_dedup_find(&d, 1, 1, 0));
	assert_null(hd_dedup_find(&d, 1, 2, 0));
	for (uint64_t i = 3; i <= 5; i++)
		assert_int_equal(hd_dedup_find(&d, 1, i, 0)->offset, i);
	hd_dedup_fini(&d);
}

static void test_rollback_and_drop_topic(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 1000);
	for (uint64_t i = 1; i <= 10; i++)
		hd_dedup_add(&d, (int64_t)(i % 2), i, i, 1000000, 0);
	uint64_t mark = hd_dedup_mark(&d);
	for (uint64_t i = 11; i <= 20; i++)
		hd_dedup_add(&d, 1, i, i, 1000000, 0);
	hd_dedup_rollback(&d, mark);
	assert_int_equal(d.n, 10);
	for (uint64_t i = 1; i <= 20; i++)
		assert_true((hd_dedup_find(&d, (int64_t)(i % 2), i, 0) != NULL) == (i <= 10));
	hd_dedup_drop_topic(&d, 1);
	assert_int_equal(d.n, 5);
	for (uint64_t i = 1; i <= 10; i++)
		assert_true((hd_dedup_find(&d, (int64_t)(i % 2), i, 0) != NULL) == (i % 2 == 0));
	hd_dedup_fini(&d);
}

/* Many keys through growth, eviction and removal (backward-shift deletion)
 * with deliberately clustered hashes: every live key is found, no evicted
 * one is. */
static void test_many_keys(void **state)
{
	enum { MAX = 5000, N = 20000 };
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, MAX);
	for (uint64_t i = 0; i < N; i++) {
		/* Keys that differ only in high bits cluster in the index. */
		hd_dedup_add(&d, 1, i << 40, i, 1000000, 0);
		if (i % 997 == 0) {
			for (uint64_t j = i >= MAX ? i - MAX + 1 : 0; j <= i; j++)
				assert_non_null(hd_dedup_find(&d, 1, j << 40, 0));
			if (i >= MAX)
				assert_null(hd_dedup_find(&d, 1, (i - MAX) << 40, 0));
		}
	}
	assert_int_equal(d.n, MAX);
	assert_int_equal(d.evicted, N - MAX);
	hd_dedup_fini(&d);
}

/* A model of the ring (live entries, oldest first) to check against. */
struct model {
	struct hd_dedup_entry e[4096];
	size_t n;
};

static const struct hd_dedup_entry *model_find(const struct model *m, int64_t topic, uint64_t h,
					       int64_t now)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].h == h && m->e[i].topic_id == topic && m->e[i].expires_ms > now)
			return &m->e[i];
	return NULL;
}

/* Random adds (with expiries, evictions at max), rollbacks and topic drops
 * across several index doublings, each step checked against the model,
 * while the index grows incrementally (look-ups in both tables, deletions
 * in both). Keys collide in their upper bits so probe runs are long. */
static void test_random_against_model(void **state)
{
	enum { MAX = 3000, STEPS = 25000 };
	static struct model m;
	struct hd_dedup d;
	uint64_t x = 88172645463325252ull;
	int64_t now = 0;
	(void)state;
	hd_dedup_init(&d, MAX);
	m.n = 0;
	for (int step = 0; step < STEPS; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int64_t topic = (int64_t)(x % 3) + 1;
		uint64_t h = (x >> 8) % 5000 | (x & 0xff00000000000000ull);
		now += (int64_t)(x % 3);
		int op = (int)(x >> 60);
		if (op == 0 && step % 7 == 0) {
			/* Take back the last few adds. */
			size_t k = (size_t)(x % 5);
			if (k > m.n)
				k = m.n;
			hd_dedup_rollback(&d, hd_dedup_mark(&d) - k);
			m.n -= k;
		} else if (op == 1 && step % 97 == 0) {
			hd_dedup_drop_topic(&d, topic);
			size_t keep = 0;
			for (size_t i = 0; i < m.n; i++)
				if (m.e[i].topic_id != topic)
					m.e[keep++] = m.e[i];
			m.n = keep;
		} else if (!model_find(&m, topic, h, now)) {
			int64_t exp = now + 1 + (int64_t)(x % 2000);
			hd_dedup_add(&d, topic, h, (uint64_t)step, exp, now);
			/* The model: expired oldest leave, then the oldest at max. */
			size_t drop = 0;
			while (drop < m.n && m.e[drop].expires_ms <= now)
				drop++;
			if (m.n - drop == MAX)
				drop++;
			memmove(m.e, m.e + drop, (m.n - drop) * sizeof(m.e[0]));
			m.n -= drop;
			m.e[m.n++] = (struct hd_dedup_entry){h, topic, (uint64_t)step, exp};
		}
		assert_int_equal(d.n, m.n);
		/* Often while the index grows, now and then else: every live
		 * entry is found. */
		if (d.old ? step % 3 == 0 : step % 200 == 0) {
			for (size_t i = 0; i < m.n; i++) {
				const struct hd_dedup_entry *a =
					hd_dedup_find(&d, m.e[i].topic_id, m.e[i].h, now);
				if (m.e[i].expires_ms > now) {
					assert_non_null(a);
					assert_int_equal(a->offset, model_find(&m, m.e[i].topic_id,
									      m.e[i].h, now)->offset);
				}
			}
		}
		/* Probe a few keys, present and absent. */
		for (int j = 0; j < 4; j++) {
			uint64_t hh = j < 2 && m.n ? m.e[(x >> (8 * j)) % m.n].h : (x >> (16 * j)) % 5000;
			for (int64_t t = 1; t <= 3; t++) {
				const struct hd_dedup_entry *a = hd_dedup_find(&d, t, hh, now);
				const struct hd_dedup_entry *b = model_find(&m, t, hh, now);
				assert_true((a == NULL) == (b == NULL));
				if (a)
					assert_int_equal(a->offset, b->offset);
			}
		}
	}
	hd_dedup_fini(&d);
}

/* Deletions while the index grows: entries removed from the old index
 * (expired at the old end, rolled back) leave tombstones there, since a
 * backward shift could carry a slot behind the move cursor. Every entry
 * still held must be found across them, before and after the move
 * finishes, no removed one may be, and the move must not carry a
 * tombstone into the new index. */
static void test_tombstones_while_growing(void **state)
{
	enum { N = 1100 }; /* past half of the first index: it grows */
	const uint64_t mul = 0x9e3779b97f4a7c15ull;
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 100000);
	/* The first half expires at 10, the rest at 1000. */
	for (uint64_t i = 0; i < N; i++)
		hd_dedup_add(&d, (int64_t)(i % 2) + 1, i * mul, i, i < N / 2 ? 10 : 1000, 0);
	assert_non_null(d.old); /* growing: the old index still holds most */
	size_t tombs = 0;
	for (size_t i = 0; i < d.nold; i++)
		tombs += d.old[i] != 0 && (d.old[i] & 0xffffffffu) == 0;
	assert_int_equal(tombs, 0);
	/* An add at 10 drops the expired half; then the last three adds (the
	 * one at 10 and two before it) are taken back. */
	hd_dedup_add(&d, 3, 7, 7, 1000, 10);
	hd_dedup_rollback(&d, hd_dedup_mark(&d) - 3);
	assert_non_null(d.old);
	for (size_t i = 0; i < d.nold; i++)
		tombs += d.old[i] != 0 && (d.old[i] & 0xffffffffu) == 0;
	assert_true(tombs > 0);
	assert_int_equal(d.n, N - N / 2 - 2);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < N; i++) {
			const struct hd_dedup_entry *e =
				hd_dedup_find(&d, (int64_t)(i % 2) + 1, i * mul, 10);
			if (i < N / 2 || i >= N - 2) {
				assert_null(e);
			} else {
				assert_non_null(e);
				assert_int_equal(e->offset, i);
			}
		}
		assert_null(hd_dedup_find(&d, 3, 7, 10));
		if (pass == 1)
			break;
		/* Adds of another topic finish the move. */
		for (uint64_t i = 0; d.old; i++) {
			assert_true(i < 100000);
			hd_dedup_add(&d, 4, i, i, 1000, 10);
		}
		for (size_t i = 0; i < d.nindex; i++)
			assert_true(d.index[i] == 0 || (d.index[i] & 0xffffffffu) != 0);
	}
	hd_dedup_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_add_expire),
		cmocka_unit_test(test_max_evicts_oldest),
		cmocka_unit_test(test_rollback_and_drop_topic),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_tombstones_while_growing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
