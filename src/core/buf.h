/*
 * buf — a growable byte buffer with a ceiling fixed at creation.
 * Layer: core. Single-threaded; the owner decides which thread.
 *
 * Every growable buffer in herald has a limit: appending past `max` fails
 * with HD_ETOOBIG and leaves the buffer unchanged, so callers turn it into
 * an ordinary error (413, close 3009, …). The data is always NUL-terminated
 * one byte past len (the terminator does not count toward max).
 */
#ifndef HD_BUF_H
#define HD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct hd_buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;
};

void hd_buf_init(struct hd_buf *b, size_t max);
void hd_buf_fini(struct hd_buf *b);
/* Empties the buffer and keeps its memory. */
void hd_buf_reset(struct hd_buf *b);
/* Makes room for extra more bytes (no more than max allows) in one
 * allocation, for a buffer whose final size is roughly known. */
void hd_buf_reserve(struct hd_buf *b, size_t extra);
/* Returns 0 or HD_ETOOBIG. */
int hd_buf_append(struct hd_buf *b, const void *p, size_t n);
int hd_buf_puts(struct hd_buf *b, const char *s);
int hd_buf_putc(struct hd_buf *b, char c);
int hd_buf_printf(struct hd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the body of a JSON string (escaped, no quotes). */
int hd_buf_json_escape(struct hd_buf *b, const char *s, size_t n);
/* Drops the first n bytes. */
void hd_buf_consume(struct hd_buf *b, size_t n);
/* Hands the bytes to the caller (returns owned, NUL-terminated; never NULL)
 * and leaves the buffer empty. */
char *hd_buf_steal(struct hd_buf *b, size_t *len);

#endif
