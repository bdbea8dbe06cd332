/*
 * b64 — see b64.h. A 6-bit accumulator over the characters; the unused low
 * bits of the last character are ignored (as Go's non-strict decoder does).
 */
#include "auth/b64.h"

#include <stdint.h>

int hd_b64_digit(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

int hd_b64_decode(const char *text, size_t len, unsigned char *out, size_t out_cap, size_t *out_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0, pad = 0;

	while (pad < 2 && len > 0 && text[len - 1] == '=') {
		len--;
		pad++;
	}
	if ((pad > 0 && (len + pad) % 4 != 0) || len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int d = hd_b64_digit((unsigned char)text[i], false);
		if (d < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == out_cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out_len = o;
	return 0;
}
