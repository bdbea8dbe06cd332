/* Unit tests for consume/lease.c: leases, redelivery, acks, nacks, the window
 * cap and the durable encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "consume/lease.h"

static void test_lease_ack_and_floor(void **state)
{
	struct hd_lease l;
	struct hd_lease_grant g[8];
	hd_lease_init(&l, 0, 100);
	for (uint64_t o = 1; o <= 5; o++)
		assert_int_equal(hd_lease_add(&l, o, 1000), 0);
	assert_int_equal(l.leased, 5);
	assert_int_equal(hd_lease_add(&l, 3, 1000), HD_EINVAL);
	/* Nothing due before the deadline. */
	assert_int_equal(hd_lease_take_due(&l, 999, 2000, g, 8), 0);
	assert_int_equal(hd_lease_next_due(&l), 1000);
	assert_int_equal(hd_lease_ack(&l, 2), 0);
	assert_int_equal(hd_lease_ack(&l, 2), HD_ENOTFOUND);
	assert_int_equal(l.floor, 0);
	assert_int_equal(hd_lease_ack(&l, 1), 0);
	assert_int_equal(l.floor, 2); /* moved over 1 and 2 */
	assert_int_equal(hd_lease_ack(&l, 1), HD_ENOTFOUND);
	assert_int_equal(hd_lease_ack(&l, 9), HD_ENOTFOUND);
	assert_int_equal(l.leased, 3);
	assert_int_equal(hd_lease_ack_upto(&l, 4), 2);
	assert_int_equal(l.floor, 4);
	assert_int_equal(hd_lease_ack_upto(&l, 100), 1);
	assert_int_equal(l.floor, 5);
	assert_int_equal(l.leased, 0);
	assert_int_equal(hd_lease_window(&l), 0);
	assert_int_equal(hd_lease_next_due(&l), INT64_MAX);
	hd_lease_fini(&l);
}

static void test_lease_redelivery_and_nack(void **state)
{
	struct hd_lease l;
	struct hd_lease_grant g[8];
	hd_lease_init(&l, 10, 100);
	assert_int_equal(hd_lease_add(&l, 11, 100), 0);
	assert_int_equal(hd_lease_add(&l, 12, 100), 0);
	assert_int_equal(hd_lease_add(&l, 13, 100), 0);
	/* The lease of all three ends: they come back, counted. */
	assert_int_equal(hd_lease_take_due(&l, 100, 200, g, 2), 2);
	assert_int_equal(g[0].offset, 11);
	assert_int_equal(g[0].deliveries, 2);
	assert_int_equal(g[1].offset, 12);
	assert_int_equal(l.redeliveries, 2);
	assert_int_equal(l.leased, 3);
	/* A nack with a delay: not before 500. */
	assert_int_equal(hd_lease_nack(&l, 11, 500), 0);
	assert_int_equal(hd_lease_nack(&l, 11, 500), HD_ENOTFOUND);
	assert_int_equal(l.leased, 2);
	assert_int_equal(hd_lease_take_due(&l, 150, 300, g, 8), 1); /* 13 only */
	assert_int_equal(g[0].offset, 13);
	assert_int_equal(hd_lease_next_due(&l), 200);
	/* 12 (lease to 200) and 13 (lease to 300), not 11 (nacked to 500). */
	assert_int_equal(hd_lease_take_due(&l, 499, 600, g, 8), 2);
	assert_int_equal(g[0].offset, 12);
	assert_int_equal(g[0].deliveries, 3);
	assert_int_equal(g[1].offset, 13);
	assert_int_equal(hd_lease_take_due(&l, 500, 700, g, 8), 1);
	assert_int_equal(g[0].offset, 11);
	assert_int_equal(g[0].deliveries, 3);
	/* A nack without delay is due at once. */
	assert_int_equal(hd_lease_nack(&l, 13, 0), 0);
	assert_int_equal(hd_lease_next_due(&l), INT64_MIN);
	assert_int_equal(hd_lease_deliveries(&l, 13), 3);
	hd_lease_fini(&l);
}

static void test_lease_gaps_and_cap(void **state)
{
	struct hd_lease l;
	hd_lease_init(&l, 0, 4);
	/* Offsets 1 and 2 do not exist (expired): skipped as acked. */
	assert_int_equal(hd_lease_add(&l, 3, 100), 0);
	assert_int_equal(l.floor, 2);
	assert_int_equal(hd_lease_state_of(&l, 1), HD_LEASE_ACKED);
	assert_int_equal(hd_lease_add(&l, 4, 100), 0);
	assert_int_equal(hd_lease_add(&l, 5, 100), 0);
	assert_int_equal(hd_lease_add(&l, 6, 100), 0);
	/* The window (2, 7) holds 4: full. */
	assert_int_equal(hd_lease_add(&l, 7, 100), HD_ELIMIT);
	assert_int_equal(hd_lease_skip(&l, 7), HD_ELIMIT);
	assert_int_equal(hd_lease_ack(&l, 3), 0);
	assert_int_equal(hd_lease_add(&l, 7, 100), 0);
	/* With everything acked, a skip moves the floor any distance. */
	assert_int_equal(hd_lease_ack_upto(&l, 7), 4);
	assert_int_equal(hd_lease_skip(&l, 1000000), 0);
	assert_int_equal(l.floor, 1000000);
	assert_int_equal(l.next, 1000001);
	hd_lease_fini(&l);
}

static void test_lease_growth(void **state)
{
	struct hd_lease l;
	hd_lease_init(&l, 0, 10000);
	for (uint64_t o = 1; o <= 10000; o++)
		assert_int_equal(hd_lease_add(&l, o, 5), 0);
	assert_int_equal(hd_lease_add(&l, 10001, 5), HD_ELIMIT);
	for (uint64_t o = 2; o <= 10000; o += 2)
		assert_int_equal(hd_lease_ack(&l, o), 0);
	assert_int_equal(l.leased, 5000);
	assert_int_equal(hd_lease_state_of(&l, 9999), HD_LEASE_LEASED);
	assert_int_equal(hd_lease_state_of(&l, 10000), HD_LEASE_ACKED);
	hd_lease_fini(&l);
}

static void test_lease_encode_restore(void **state)
{
	struct hd_lease l, r;
	char buf[HD_LEASE_ENCODED_MAX(100)];
	hd_lease_init(&l, 100, 100);
	for (uint64_t o = 101; o <= 110; o++)
		assert_int_equal(hd_lease_add(&l, o, 5), 0);
	assert_int_equal(hd_lease_ack(&l, 103), 0);
	assert_int_equal(hd_lease_ack(&l, 104), 0);
	assert_int_equal(hd_lease_ack(&l, 105), 0);
	assert_int_equal(hd_lease_ack(&l, 108), 0);
	assert_int_equal(hd_lease_encode(&l, buf, sizeof(buf)), (int)strlen("3-5,8"));
	assert_string_equal(buf, "3-5,8");
	assert_int_equal(hd_lease_encode(&l, buf, 3), -1);

	hd_lease_init(&r, 0, 100);
	assert_int_equal(hd_lease_restore(&r, 100, "3-5,8"), 0);
	assert_int_equal(r.floor, 100);
	assert_int_equal(r.next, 109);
	assert_int_equal(r.leased, 0);
	assert_int_equal(hd_lease_state_of(&r, 101), HD_LEASE_READY);
	assert_int_equal(hd_lease_state_of(&r, 104), HD_LEASE_ACKED);
	assert_int_equal(hd_lease_state_of(&r, 107), HD_LEASE_READY);
	assert_int_equal(hd_lease_state_of(&r, 108), HD_LEASE_ACKED);
	/* Everything not acked is handed out again, counted from 0. */
	struct hd_lease_grant g[10];
	assert_int_equal(hd_lease_take_due(&r, 0, 50, g, 10), 4);
	assert_int_equal(g[0].offset, 101);
	assert_int_equal(g[0].deliveries, 1);
	assert_int_equal(g[3].offset, 107);
	assert_int_equal(r.redeliveries, 0);
	assert_int_equal(hd_lease_encode(&r, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "3-5,8");

	/* An empty encoding; bad ones; one past the cap. */
	assert_int_equal(hd_lease_restore(&r, 7, ""), 0);
	assert_int_equal(r.next, 8);
	static const char *const bad[] = {"x", "0", "3,2", "3-2", "1,,2", ",1", "1-", "2-3,3",
					  "99999999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hd_lease_restore(&r, 7, bad[i]), HD_EINVAL);
		assert_int_equal(r.floor, 7);
		assert_int_equal(r.next, 8);
	}
	assert_int_equal(hd_lease_restore(&r, 7, "101"), HD_ELIMIT);
	assert_int_equal(hd_lease_window(&r), 0);
	/* An encoding that starts with 1 moves the floor. */
	assert_int_equal(hd_lease_restore(&r, 7, "1-2,4"), 0);
	assert_int_equal(r.floor, 9);
	assert_int_equal(r.next, 12);
	hd_lease_fini(&r);
	hd_lease_fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_ack_and_floor),
		cmocka_unit_test(test_lease_redelivery_and_nack),
		cmocka_unit_test(test_lease_gaps_and_cap),
		cmocka_unit_test(test_lease_growth),
		cmocka_unit_test(test_lease_encode_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
