/*
 * node_run — runs one of the Node scripts of tests/js/ from a cmocka test,
 * for checks by an implementation that shares nothing with herald's.
 * Header-only (static functions) so each test program takes its own copy;
 * CMake builds only tests/unit/<layer>/test_<module>.c, so this file is not a test.
 */
#ifndef HD_TEST_NODE_RUN_H
#define HD_TEST_NODE_RUN_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Whether node is on PATH; the tests that need it skip cleanly otherwise. */
static bool node_available(void)
{
	static int known = -1;

	if (known < 0) {
		known = system("command -v node >/dev/null 2>&1") == 0;
		if (!known)
			fprintf(stderr, "node is not on PATH: the Node cross-checks are skipped\n");
	}
	return known;
}

/*
 * Runs `node tests/js/<script> <args>` (args already shell-quoted; the path
 * comes from this file's own, which CMake passes absolute), with stdout into
 * out (NUL-terminated, cut at cap) and stderr inherited. Returns the exit
 * status, or -1 when the command could not run.
 */
static int node_run(const char *script, const char *args, char *out, size_t cap)
{
	char cmd[16384];
	const char *here = __FILE__;
	const char *cut = strstr(here, "tests/unit/push/");
	size_t n = 0;
	FILE *p;
	int status;

	if (!cut)
		return -1;
	snprintf(cmd, sizeof(cmd), "node '%.*stests/js/%s' %s", (int)(cut - here), here, script,
		 args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	for (;;) {
		char scratch[256];
		size_t r = n + 1 < cap ? fread(out + n, 1, cap - 1 - n, p)
				       : fread(scratch, 1, sizeof(scratch), p);
		if (r == 0)
			break;
		if (n + 1 < cap)
			n += r;
	}
	out[n] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
