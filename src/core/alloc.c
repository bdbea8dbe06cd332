/* alloc — see alloc.h. */
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	fprintf(stderr, "level=fatal msg=out_of_memory size=%zu\n", n);
	abort();
}

void *hd_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *hd_calloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	if (!p)
		oom(count * n);
	return p;
}

void *hd_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *hd_strndup(const char *s, size_t n)
{
	char *d = hd_malloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *hd_strdup(const char *s)
{
	return hd_strndup(s, strlen(s));
}
