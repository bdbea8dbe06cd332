/*
 * fossil — see fossil.h for the format and the choice of encoder.
 */
#include "proto/fossil.h"
#include "core/alloc.h"

#include <stdlib.h>
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

/* Copy and insert commands, appended after the header. */
static int put_copy(struct hd_buf *out, size_t n, size_t off)
{
	int rc;
	if ((rc = put_int(out, n)) || (rc = hd_buf_putc(out, '@')) || (rc = put_int(out, off)))
		return rc;
	return hd_buf_putc(out, ',');
}

static int put_insert(struct hd_buf *out, const char *p, size_t n)
{
	int rc;
	if (n == 0)
		return 0;
	if ((rc = put_int(out, n)) || (rc = hd_buf_putc(out, ':')))
		return rc;
	return hd_buf_append(out, p, n);
}

/* Small texts: the common prefix and suffix copied, the middle inserted. */
static int encode_ends(const char *src, size_t sn, const char *tgt, size_t tn, struct hd_buf *out)
{
	size_t max = sn < tn ? sn : tn, pre = 0, suf = 0;
	int rc;

	while (pre < max && src[pre] == tgt[pre])
		pre++;
	while (pre > 0 && pre < tn && continuation(tgt[pre]))
		pre--;
	while (suf < max - pre && src[sn - 1 - suf] == tgt[tn - 1 - suf])
		suf++;
	while (suf > 0 && continuation(tgt[tn - suf]))
		suf--;
	if (pre && (rc = put_copy(out, pre, 0)))
		return rc;
	if ((rc = put_insert(out, tgt + pre, tn - pre - suf)))
		return rc;
	if (suf && (rc = put_copy(out, suf, sn - suf)))
		return rc;
	return 0;
}

#define BLOCK 16          /* bytes hashed per source block */
#define CHAIN_TRIES 64    /* candidates tried per target position */
#define HASH_MUL 31u
#define NONE SIZE_MAX

static uint32_t block_hash(const char *p)
{
	uint32_t h = 0;
	for (size_t i = 0; i < BLOCK; i++)
		h = h * HASH_MUL + (unsigned char)p[i];
	return h;
}

/*
 * Larger texts: the source is indexed by the hash of each aligned BLOCK;
 * a rolling hash over the target finds candidate blocks, each match is
 * extended both ways, and the longest is copied (the bytes before it are
 * inserted). This finds a document's unchanged parts wherever the edits
 * are, as fossil's own encoder does, in time linear in the sizes.
 */
static int encode_blocks(const char *src, size_t sn, const char *tgt, size_t tn, struct hd_buf *out)
{
	size_t nblocks = sn / BLOCK, mask = 1, lit = 0, i = 0;
	uint32_t pow = 1, h;
	int rc = 0;

	while (mask < 2 * nblocks)
		mask <<= 1;
	size_t *heads = hd_malloc(mask * sizeof(*heads));
	size_t *next = hd_malloc(nblocks * sizeof(*next));
	mask -= 1;
	for (size_t k = 0; k <= mask; k++)
		heads[k] = NONE;
	for (size_t b = 0; b < nblocks; b++) {
		size_t slot = block_hash(src + b * BLOCK) & mask;
		next[b] = heads[slot];
		heads[slot] = b;
	}
	for (size_t k = 1; k < BLOCK; k++)
		pow *= HASH_MUL;
	h = block_hash(tgt);
	while (i + BLOCK <= tn) {
		size_t best = 0, best_src = 0, best_tgt = 0, tries = 0;
		for (size_t b = heads[h & mask]; b != NONE && tries < CHAIN_TRIES; b = next[b], tries++) {
			size_t s0 = b * BLOCK, f = 0, k = 0;
			while (s0 + f < sn && i + f < tn && src[s0 + f] == tgt[i + f])
				f++;
			if (f < BLOCK)
				continue;
			while (k < i - lit && k < s0 && src[s0 - 1 - k] == tgt[i - 1 - k])
				k++;
			if (f + k > best) {
				best = f + k;
				best_src = s0 - k;
				best_tgt = i - k;
			}
		}
		if (best) {
			/* Never split a UTF-8 sequence: the inserts stay valid text. */
			size_t t0 = best_tgt, t1 = best_tgt + best, s0 = best_src;
			while (t0 < t1 && continuation(tgt[t0])) {
				t0++;
				s0++;
			}
			while (t1 > t0 && t1 < tn && continuation(tgt[t1]))
				t1--;
			if (t1 > t0) {
				if ((rc = put_insert(out, tgt + lit, t0 - lit)) || (rc = put_copy(out, t1 - t0, s0)))
					goto out;
				lit = i = t1;
				if (i + BLOCK <= tn)
					h = block_hash(tgt + i);
				continue;
			}
		}
		if (i + BLOCK >= tn)
			break;
		h = (h - pow * (unsigned char)tgt[i]) * HASH_MUL + (unsigned char)tgt[i + BLOCK];
		i++;
	}
	rc = put_insert(out, tgt + lit, tn - lit);
out:
	free(heads);
	free(next);
	return rc;
}

int hd_fossil_delta(const char *src, size_t sn, const char *tgt, size_t tn, struct hd_buf *out)
{
	size_t start = out->len;
	int rc;

	if ((rc = put_int(out, tn)) || (rc = hd_buf_putc(out, '\n')))
		goto out;
	rc = sn < BLOCK || tn < BLOCK ? encode_ends(src, sn, tgt, tn, out)
				      : encode_blocks(src, sn, tgt, tn, out);
	if (rc)
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
