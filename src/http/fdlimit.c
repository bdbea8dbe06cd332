/*
 * fdlimit — see fdlimit.h.
 */
#include "http/fdlimit.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void hd_fdlimit_prepare(uint64_t max_connections, struct hd_fdlimit_report *r)
{
	struct rlimit rl;
	uint64_t slots;
	int fd;

	memset(r, 0, sizeof(*r));
	r->wanted = max_connections + HD_FDLIMIT_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	r->soft_before = r->soft = (uint64_t)rl.rlim_cur;
	r->hard = (uint64_t)rl.rlim_max;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			r->soft = r->hard;
	}
	r->fits = r->wanted <= r->soft;
	/* The kernel caps a table at fs.nr_open whatever the limit says; a
	 * failed dup2 just leaves the table as it was. */
	slots = r->wanted < r->soft ? r->wanted : r->soft;
	if (slots > (uint64_t)1 << 24)
		slots = (uint64_t)1 << 24;
	if (slots < 2)
		return;
	if (fcntl((int)(slots - 1), F_GETFD) >= 0) {
		r->table = slots; /* that slot is in use: the table is big enough */
		return;
	}
	fd = dup2(STDERR_FILENO, (int)(slots - 1));
	if (fd < 0)
		fd = dup2(STDIN_FILENO, (int)(slots - 1));
	if (fd >= 0) {
		close(fd);
		r->table = slots;
	}
}

int hd_fdlimit_somaxconn(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
	int v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

uint64_t hd_fdlimit_soft(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	return (uint64_t)rl.rlim_cur;
}

uint64_t hd_fdlimit_ceiling(uint64_t soft)
{
	uint64_t headroom = soft / 8 < 64 ? soft / 8 : 64;

	return soft > headroom ? soft - headroom : 0;
}
