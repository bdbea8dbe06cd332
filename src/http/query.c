/*
 * query — see query.h.
 *
 * Query strings are split on '&' only (not ';'). Parameter names are
 * compared after decoding, so "t%6Fpic=x" matches "topic"; a name with a bad
 * escape matches nothing.
 */
#include "http/query.h"
#include "core/text.h"

#include <string.h>

/*
 * Decodes the character at in[*i] and advances *i past it. Returns the
 * byte (1..255), or -1 for a bad or truncated escape and for NUL, which
 * herald's NUL-terminated strings cannot carry.
 */
static int decode_one(const char *in, size_t len, size_t *i, bool plus_is_space)
{
	unsigned char c = (unsigned char)in[*i];

	if (c == '%') {
		if (len - *i < 3)
			return -1;
		int hi = hd_hex_value(in[*i + 1]), lo = hd_hex_value(in[*i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		c = (unsigned char)(hi * 16 + lo);
		*i += 2;
	} else if (c == '+' && plus_is_space) {
		c = ' ';
	}
	(*i)++;
	return c ? c : -1;
}

long hd_query_url_decode(const char *in, size_t len, char *out, size_t out_max, bool plus_is_space)
{
	size_t o = 0;

	if (out_max == 0)
		return -1;
	for (size_t i = 0; i < len;) {
		int c = decode_one(in, len, &i, plus_is_space);
		if (c < 0 || o + 1 >= out_max)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

/* Whether the encoded key k[0..len) decodes to exactly name. */
static bool key_is(const char *k, size_t len, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		int c = decode_one(k, len, &i, true);
		if (c < 0 || name[n] == '\0' || (unsigned char)name[n] != c)
			return false;
		n++;
	}
	return name[n] == '\0';
}

long hd_query_next(const char *query, const char *name, size_t *pos, char *out, size_t out_max)
{
	const char *p = query + *pos;

	while (*p) {
		size_t pair = strcspn(p, "&");
		size_t key = strcspn(p, "=&");
		const char *value = p + key + (key < pair);
		size_t value_len = pair - key - (key < pair);
		bool match = key_is(p, key, name);

		p += pair + (p[pair] == '&');
		*pos = (size_t)(p - query);
		if (!match)
			continue;
		long n = hd_query_url_decode(value, value_len, out, out_max, true);
		return n < 0 ? -2 : n;
	}
	return -1;
}

long hd_query_get(const char *query, const char *name, char *out, size_t out_max)
{
	size_t pos = 0;

	return hd_query_next(query, name, &pos, out, out_max);
}
