/*
 * rcbuf — an immutable, reference-counted byte buffer.
 * Layer: core. The count is atomic, so a buffer made on the writer thread
 * may be handed to the loop thread.
 *
 * "Encode once, send many": an event is serialized once per wire format into
 * an rcbuf; every pending write, ring slot or response holds one reference.
 */
#ifndef HD_RCBUF_H
#define HD_RCBUF_H

#include <stdatomic.h>
#include <stddef.h>

struct hd_rcbuf {
	atomic_uint refs;
	size_t len;
	char data[]; /* len bytes, then a NUL */
};

/* Returns owned (refs = 1) with len uninitialised bytes to fill before sharing. */
struct hd_rcbuf *hd_rcbuf_new(size_t len);
/* Returns owned (refs = 1), a copy of p[0..len). */
struct hd_rcbuf *hd_rcbuf_from(const void *p, size_t len);
struct hd_rcbuf *hd_rcbuf_ref(struct hd_rcbuf *b);
/* Drops one reference; frees on the last. NULL is ignored. */
void hd_rcbuf_unref(struct hd_rcbuf *b);

#endif
