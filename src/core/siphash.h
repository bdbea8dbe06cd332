/*
 * siphash — SipHash-2-4, a keyed 64-bit hash (Aumasson and Bernstein,
 * "SipHash: a fast short-input PRF", 2012). With a secret key nobody can
 * pick inputs that collide, so it may key tables that untrusted input fills
 * (the store's dedup keys).
 * Layer: core (pure). Any thread.
 */
#ifndef HD_SIPHASH_H
#define HD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct hd_siphash {
	uint64_t v[4];
	uint64_t tail;   /* up to 7 bytes not yet compressed, little-endian */
	size_t len;      /* bytes added in all */
};

/* key: 16 bytes. */
void hd_siphash_init(struct hd_siphash *h, const unsigned char key[16]);
void hd_siphash_add(struct hd_siphash *h, const void *data, size_t len);
uint64_t hd_siphash_final(struct hd_siphash *h);

/* One call: init, add, final. */
uint64_t hd_siphash(const unsigned char key[16], const void *data, size_t len);

#endif
