/* buf — see buf.h. */
#include "core/buf.h"
#include "core/alloc.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hd_buf_init(struct hd_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void hd_buf_fini(struct hd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void hd_buf_reset(struct hd_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int reserve(struct hd_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return HD_ETOOBIG;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	b->data = hd_realloc(b->data, cap);
	b->cap = cap;
	return 0;
}

void hd_buf_reserve(struct hd_buf *b, size_t extra)
{
	if (extra > b->max - b->len)
		extra = b->max - b->len;
	(void)reserve(b, extra); /* cannot fail: len + extra <= max */
}

int hd_buf_append(struct hd_buf *b, const void *p, size_t n)
{
	/* Room for n and the NUL already (cap never exceeds max + 1, so max
	 * holds too): the common case skips reserve. */
	if (n >= b->cap - b->len) {
		int rc = reserve(b, n);
		if (rc)
			return rc;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int hd_buf_puts(struct hd_buf *b, const char *s)
{
	return hd_buf_append(b, s, strlen(s));
}

int hd_buf_putc(struct hd_buf *b, char c)
{
	if (b->cap - b->len < 2) {
		int rc = reserve(b, 1);
		if (rc)
			return rc;
	}
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}

int hd_buf_printf(struct hd_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return HD_EINTERNAL;
	if ((size_t)n < sizeof(small))
		return hd_buf_append(b, small, (size_t)n);
	int rc = reserve(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int hd_buf_json_escape(struct hd_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		rc = hd_buf_append(b, s + i - run, run);
		run = 0;
		if (rc)
			break;
		switch (c) {
		case '"': rc = hd_buf_append(b, "\\\"", 2); break;
		case '\\': rc = hd_buf_append(b, "\\\\", 2); break;
		case '\n': rc = hd_buf_append(b, "\\n", 2); break;
		case '\r': rc = hd_buf_append(b, "\\r", 2); break;
		case '\t': rc = hd_buf_append(b, "\\t", 2); break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			rc = hd_buf_append(b, e, 6);
		}
		}
	}
	if (rc == 0)
		rc = hd_buf_append(b, s + n - run, run);
	return rc;
}

void hd_buf_consume(struct hd_buf *b, size_t n)
{
	if (n >= b->len) {
		hd_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *hd_buf_steal(struct hd_buf *b, size_t *len)
{
	char *p = b->data ? b->data : hd_strdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
