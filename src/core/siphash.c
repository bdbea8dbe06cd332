/*
 * siphash — see siphash.h. Written from the paper's description (section
 * 2): four 64-bit words of state, c = 2 compression rounds per 8-byte
 * little-endian message word, d = 4 finalisation rounds, the last word
 * carrying the message length in its top byte.
 */
#include "core/siphash.h"

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void round_(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

static inline void compress(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	round_(v);
	round_(v);
	v[0] ^= m;
}

static uint64_t load_le(const unsigned char *p)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

void hd_siphash_init(struct hd_siphash *h, const unsigned char key[16])
{
	uint64_t k0 = load_le(key), k1 = load_le(key + 8);
	h->v[0] = k0 ^ 0x736f6d6570736575ull;
	h->v[1] = k1 ^ 0x646f72616e646f6dull;
	h->v[2] = k0 ^ 0x6c7967656e657261ull;
	h->v[3] = k1 ^ 0x7465646279746573ull;
	h->tail = 0;
	h->len = 0;
}

void hd_siphash_add(struct hd_siphash *h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t fill = h->len & 7;

	h->len += len;
	/* Complete a partial word first. */
	while (fill && len) {
		h->tail |= (uint64_t)*p++ << (8 * fill);
		len--;
		if (++fill == 8) {
			compress(h->v, h->tail);
			h->tail = 0;
			fill = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		compress(h->v, load_le(p));
	for (size_t i = 0; i < len; i++)
		h->tail |= (uint64_t)p[i] << (8 * i);
}

uint64_t hd_siphash_final(struct hd_siphash *h)
{
	uint64_t *v = h->v;
	compress(v, h->tail | ((uint64_t)(h->len & 0xff) << 56));
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		round_(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t hd_siphash(const unsigned char key[16], const void *data, size_t len)
{
	struct hd_siphash h;
	hd_siphash_init(&h, key);
	hd_siphash_add(&h, data, len);
	return hd_siphash_final(&h);
}
