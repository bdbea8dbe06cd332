/* Unit tests for http/fdlimit.c: the soft limit raised to the hard one,
 * the descriptor table grown, and the refusal ceiling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http/fdlimit.h"

static void test_ceiling(void **state)
{
	(void)state;
	assert_int_equal(hd_fdlimit_ceiling(0), 0);
	assert_int_equal(hd_fdlimit_ceiling(256), 224);   /* an eighth kept */
	assert_int_equal(hd_fdlimit_ceiling(20000), 19936); /* at most 64 kept */
	assert_int_equal(hd_fdlimit_ceiling(4), 4);       /* nothing to keep */
}

/* FDSize of /proc/self/status: the slots of the descriptor table. */
static long fd_table_size(void)
{
	char line[256];
	long n = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "FDSize: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static void test_prepare_raises_and_grows(void **state)
{
	(void)state;
	struct rlimit rl;
	struct hd_fdlimit_report r;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048)
		skip();
	/* Lower the soft limit first, so that there is something to raise. */
	rl.rlim_cur = 1024;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	hd_fdlimit_prepare(1000, &r);
	assert_int_equal(r.soft_before, 1024);
	assert_true(r.soft == r.hard);
	assert_int_equal(r.wanted, 1000 + HD_FDLIMIT_RESERVE);
	assert_true(r.fits);
	assert_int_equal(r.table, r.wanted);
	assert_true(fd_table_size() >= (long)r.wanted);
	/* The slot used to grow the table was closed again. */
	assert_int_equal(fcntl((int)r.table - 1, F_GETFD), -1);
	assert_int_equal(hd_fdlimit_soft(), r.soft == RLIM_INFINITY ? 0 : r.soft);
	/* More than the limit allows: reported, not an error. */
	hd_fdlimit_prepare(r.soft + 1, &r);
	assert_false(r.fits);
	assert_true(r.table <= r.soft);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_prepare_raises_and_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
