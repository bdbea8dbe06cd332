/*
 * b64 — see b64.h. The decoder is a 6-bit accumulator over the characters,
 * the same for both alphabets; the flags only choose the digits and how
 * the end (padding, unused low bits) is judged.
 */
#include "core/b64.h"

#include <stdint.h>

static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

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

int hd_b64_decode(const char *text, size_t len, unsigned flags, unsigned char *out, size_t out_cap,
		  size_t *out_len)
{
	bool url = flags & HD_B64_URL, canonical = flags & HD_B64_CANONICAL;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0, pad = 0;

	/* Up to two '=' may close the text, and only on a whole group. */
	while (!canonical && pad < 2 && len > 0 && text[len - 1] == '=') {
		len--;
		pad++;
	}
	if ((pad > 0 && (len + pad) % 4 != 0) || len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int d = hd_b64_digit((unsigned char)text[i], url);
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
	if (canonical && acc != 0)
		return -1;
	*out_len = o;
	return 0;
}

int hd_b64_url_encode(const void *data, size_t n, char *out, size_t out_cap)
{
	const unsigned char *p = data;
	size_t need = HD_B64_URL_LEN(n);
	size_t o = 0;
	size_t i = 0;

	if (out_cap < need + 1) {
		if (out_cap > 0)
			out[0] = '\0';
		return -1;
	}
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
		out[o++] = url_alphabet[(v >> 6) & 63];
		out[o++] = url_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = url_alphabet[v >> 18];
		out[o++] = url_alphabet[(v >> 12) & 63];
		out[o++] = url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (int)o;
}
