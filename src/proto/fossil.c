/*
 * fossil — see fossil.h for the format and the choice of encoder.
 */
#include "proto/fossil.h"

#include <string.h>

static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/* Appends v as a base-64 INT. */
static int put_int(struct hd_buf *out, uint64_t v)
{
	char tmp[12]; /* 64 bits are 11 digits */
	size_t n = 0;

	do {
		tmp[n++] = digits[v & 63];
		v >>= 6;
	} while (v);
	char rev[12];
	for (size_t i = 0; i < n; i++)
		rev[i] = tmp[n - 1 - i];
	return hd_buf_append(out, rev, n);
}

uint32_t hd_fossil_checksum(const char *p, size_t n)
{
	const unsigned char *z = (const unsigned char *)p;
	uint32_t sum = 0;
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		sum += (uint32_t)z[i] << 24 | (uint32_t)z[i + 1] << 16 | (uint32_t)z[i + 2] << 8 | z[i + 3];
	uint32_t last = 0;
	for (size_t k = 0; i + k < n; k++)
		last |= (uint32_t)z[i + k] << (24 - 8 * k);
	return sum + last;
}

/* Whether byte c continues a UTF-8 sequence (10xxxxxx). */
static int continuation(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

int hd_fossil_delta(const char *src, size_t sn, const char *tgt, size_t tn, struct hd_buf *out)
{
	size_t start = out->len, max = sn < tn ? sn : tn;
	size_t pre = 0, suf = 0;
	int rc;

	while (pre < max && src[pre] == tgt[pre])
		pre++;
	while (pre > 0 && pre < tn && continuation(tgt[pre]))
		pre--;
	while (suf < max - pre && src[sn - 1 - suf] == tgt[tn - 1 - suf])
		suf++;
	while (suf > 0 && continuation(tgt[tn - suf]))
		suf--;
	size_t mid = tn - pre - suf;

	if ((rc = put_int(out, tn)) || (rc = hd_buf_putc(out, '\n')))
		goto out;
	if (pre && ((rc = put_int(out, pre)) || (rc = hd_buf_append(out, "@0,", 3))))
		goto out;
	if (mid && ((rc = put_int(out, mid)) || (rc = hd_buf_putc(out, ':')) ||
		    (rc = hd_buf_append(out, tgt + pre, mid))))
		goto out;
	if (suf && ((rc = put_int(out, suf)) || (rc = hd_buf_putc(out, '@')) ||
		    (rc = put_int(out, sn - suf)) || (rc = hd_buf_putc(out, ','))))
		goto out;
	if ((rc = put_int(out, hd_fossil_checksum(tgt, tn))) || (rc = hd_buf_putc(out, ';')))
		goto out;
out:
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return rc;
}
