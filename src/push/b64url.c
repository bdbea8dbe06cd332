/* b64url — base64url without padding. Layer: push. Contract in b64url.h. */
#include "push/b64url.h"

#include <stdint.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of a base64url character, or -1 (NUL included). */
static int digit(unsigned char c)
{
	const char *at = memchr(alphabet, c, sizeof(alphabet) - 1);
	return at ? (int)(at - alphabet) : -1;
}

int hd_b64url_encode(const void *data, size_t n, char *out, size_t out_cap)
{
	const unsigned char *p = data;
	size_t need = HD_B64URL_LEN(n);
	size_t o = 0;
	size_t i = 0;

	if (out_cap < need + 1) {
		if (out_cap > 0)
			out[0] = '\0';
		return -1;
	}
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (int)o;
}

int hd_b64url_decode(const char *text, size_t len, unsigned char *out, size_t out_cap,
		     size_t *out_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	size_t pad = 0;

	/* Up to two '=' may close the text, and only on a whole group. */
	while (pad < 2 && len > 0 && text[len - 1] == '=') {
		len--;
		pad++;
	}
	if (pad > 0 && (len + pad) % 4 != 0)
		return -1;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int d = digit((unsigned char)text[i]);
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
