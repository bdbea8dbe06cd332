/* rcbuf — see rcbuf.h. */
#include "core/rcbuf.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

struct hd_rcbuf *hd_rcbuf_new(size_t len)
{
	struct hd_rcbuf *b = hd_malloc(sizeof(*b) + len + 1);
	atomic_init(&b->refs, 1);
	b->len = len;
	b->data[len] = '\0';
	return b;
}

struct hd_rcbuf *hd_rcbuf_from(const void *p, size_t len)
{
	struct hd_rcbuf *b = hd_rcbuf_new(len);
	if (len)
		memcpy(b->data, p, len);
	return b;
}

struct hd_rcbuf *hd_rcbuf_ref(struct hd_rcbuf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

void hd_rcbuf_unref(struct hd_rcbuf *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
}
