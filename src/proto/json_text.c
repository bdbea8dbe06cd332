/*
 * json_text — see json_text.h.
 *
 * A recursive-descent scanner: one function per grammar rule, a depth
 * counter bounding the recursion.
 *
 * Output is written lazily: the bytes read since the last white space
 * (the "run", from s->run to s->p) are copied only when white space is
 * skipped and at the end, so already minified text, the common case, costs
 * one copy in all instead of one per token. A token's output offset is
 * therefore s->o plus its distance from s->run (out_at). The write position
 * never runs ahead of the read position (minifying only drops bytes), which
 * is what makes the in-place mode safe; the copies therefore use memmove.
 */
#include "proto/json_text.h"
#include "core/text.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

struct scanner {
	const unsigned char *in;  /* start of the text, for error offsets */
	const unsigned char *p;   /* read position */
	const unsigned char *end;
	const unsigned char *run; /* start of the bytes read but not yet written */
	char *out;
	size_t o;                 /* write position in out: where run goes */
	unsigned depth;
	unsigned depth_max;
	struct hd_json_text_scan *scan;
	struct hd_error *err;
};

/*
 * plain[c] is 1 for a byte that stands for itself inside a string: ASCII
 * from 0x20 except '"' and '\\'. Everything else (control bytes, the two
 * specials, the lead bytes of multi-byte UTF-8) takes the slow path.
 */
static const unsigned char plain[256] = {
	['\x20'] = 1, 1, 0 /* " */, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                     /* 0x30-0x3f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                     /* 0x40-0x4f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 /* \ */, 1, 1, 1,             /* 0x50-0x5f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                     /* 0x60-0x6f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                     /* 0x70-0x7f */
};

static size_t at(const struct scanner *s, const unsigned char *p)
{
	return (size_t)(p - s->in);
}

/* Names the byte at p for an error message: 'x' when printable, else hex. */
static int fail_char(struct scanner *s, const unsigned char *p, const char *expected)
{
	if (*p >= 0x21 && *p <= 0x7e)
		return hd_error_set(s->err, HD_EINVAL, "unexpected character '%c' at byte %zu%s%s",
				    *p, at(s, p), *expected ? ", expected " : "", expected);
	return hd_error_set(s->err, HD_EINVAL, "unexpected byte 0x%02x at byte %zu%s%s", *p,
			    at(s, p), *expected ? ", expected " : "", expected);
}

static int fail_end(struct scanner *s)
{
	return hd_error_set(s->err, HD_EINVAL, "unexpected end of text at byte %zu",
			    at(s, s->end));
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Writes the pending run (the bytes read since the last white space). */
static void flush(struct scanner *s)
{
	size_t n = (size_t)(s->p - s->run);

	if (n && s->out + s->o != (const char *)s->run)
		memmove(s->out + s->o, s->run, n);
	s->o += n;
	s->run = s->p;
}

/* The output offset of the byte at the read position. */
static size_t out_at(const struct scanner *s)
{
	return s->o + (size_t)(s->p - s->run);
}

static void skip_ws(struct scanner *s)
{
	if (s->p == s->end || !is_ws(*s->p))
		return;
	flush(s);
	while (s->p < s->end && is_ws(*s->p))
		s->p++;
	s->run = s->p;
}

/* Reads four hex digits at p (which must have 4 bytes); -1 if any is not. */
static long hex4(const unsigned char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hd_hex_value(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

size_t hd_json_text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t v;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong three-byte forms */
		else if (c == 0xed)
			hi = 0x9f; /* no encoded surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90; /* no overlong four-byte forms */
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return 0; /* a continuation byte, C0, C1 or F5..FF */
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	v = v << 6 | (s[1] & 0x3f);
	for (size_t i = 2; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	*cp = v;
	return len;
}

bool hd_json_text_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	uint32_t cp;

	while (p < end) {
		/* Eight ASCII bytes at a time: text bodies are mostly ASCII. */
		if (end - p >= 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			if ((w & 0x8080808080808080ull) == 0) {
				p += 8;
				continue;
			}
		}
		size_t k = hd_json_text_utf8_next(p, (size_t)(end - p), &cp);
		if (k == 0)
			return false;
		p += k;
	}
	return true;
}

static int string(struct scanner *s)
{
	const unsigned char *start = s->p, *p = s->p + 1, *end = s->end;
	uint32_t cp;

	for (;;) {
		/* Eight bytes at a time while none needs a look (a control
		 * byte, a quote, a backslash, a byte from 0x80). With every byte
		 * below 0x80, subtracting a constant from a byte sets its top
		 * bit exactly when the byte is below that constant, and no
		 * borrow crosses into the next byte unless one did, so each
		 * test below is exact for "some byte matches". */
		while (end - p >= 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			uint64_t special = (w | (w - 0x2020202020202020ull) |
					    ((w ^ 0x2222222222222222ull) - 0x0101010101010101ull) |
					    ((w ^ 0x5c5c5c5c5c5c5c5cull) - 0x0101010101010101ull)) &
					   0x8080808080808080ull;
			if (special)
				break;
			p += 8;
		}
		while (p < end && plain[*p])
			p++;
		if (p == end)
			return hd_error_set(s->err, HD_EINVAL,
					    "unterminated string starting at byte %zu", at(s, start));
		if (*p == '"') {
			p++;
			break;
		}
		if (*p == '\\') {
			const unsigned char *esc = p;
			if (end - p < 2)
				return fail_end(s);
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				break;
			default:
				return hd_error_set(s->err, HD_EINVAL, "invalid escape at byte %zu",
						    at(s, esc));
			}
			long u = end - p >= 6 ? hex4(p + 2) : -1;
			if (u < 0)
				return hd_error_set(s->err, HD_EINVAL,
						    "invalid \\u escape at byte %zu", at(s, esc));
			p += 6;
			if (u >= 0xdc00 && u <= 0xdfff)
				return hd_error_set(s->err, HD_EINVAL,
						    "unpaired surrogate escape at byte %zu", at(s, esc));
			if (u >= 0xd800 && u <= 0xdbff) {
				/* A high surrogate must be followed by a low one. */
				long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return hd_error_set(s->err, HD_EINVAL,
							    "unpaired surrogate escape at byte %zu",
							    at(s, esc));
				p += 6;
			}
			continue;
		}
		if (*p < 0x20)
			return hd_error_set(s->err, HD_EINVAL,
					    "unescaped control character 0x%02x in a string at byte %zu",
					    *p, at(s, p));
		size_t k = hd_json_text_utf8_next(p, (size_t)(end - p), &cp);
		if (k == 0)
			return hd_error_set(s->err, HD_EINVAL, "invalid UTF-8 in a string at byte %zu",
					    at(s, p));
		p += k;
	}
	s->p = p;
	return 0;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static int number(struct scanner *s)
{
	const unsigned char *start = s->p, *p = s->p, *end = s->end;

	if (*p == '-')
		p++;
	if (!is_digit(p, end))
		goto bad;
	if (*p == '0') {
		p++;
		if (is_digit(p, end))
			goto bad; /* a leading zero */
	} else {
		while (is_digit(p, end))
			p++;
	}
	if (p < end && *p == '.') {
		p++;
		if (!is_digit(p, end))
			goto bad;
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			goto bad;
		while (is_digit(p, end))
			p++;
	}
	s->p = p;
	return 0;
bad:
	return hd_error_set(s->err, HD_EINVAL, "invalid number at byte %zu", at(s, start));
}

static int literal(struct scanner *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail_char(s, s->p, "a JSON value");
	s->p += n;
	return 0;
}

/* Records one child of the top-level container. */
static int child(struct scanner *s, size_t key_off, size_t key_len, size_t val_off,
		 size_t val_end)
{
	struct hd_json_text_scan *sc = s->scan;

	if (sc->spans) {
		if (sc->nspans == sc->spans_max)
			return hd_error_set(s->err, HD_ETOOBIG, "more than %zu members",
					    sc->spans_max);
		sc->spans[sc->nspans] = (struct hd_json_text_span){
			.key_off = key_off,
			.key_len = key_len,
			.val_off = val_off,
			.val_len = val_end - val_off,
		};
	}
	sc->nspans++;
	return 0;
}

static int value(struct scanner *s);

/* Scans an object or an array; s->p is at its opening bracket. */
static int container(struct scanner *s)
{
	bool top = s->depth == 0, object = *s->p == '{';
	char close = object ? '}' : ']';
	int rc;

	if (++s->depth > s->depth_max)
		return hd_error_set(s->err, HD_EINVAL, "nesting deeper than %u levels at byte %zu",
				    s->depth_max, at(s, s->p));
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 0;
	}
	for (;;) {
		size_t key_off = 0, key_len = 0, val_off;

		skip_ws(s);
		if (s->p == s->end)
			return fail_end(s);
		if (object) {
			if (*s->p != '"')
				return fail_char(s, s->p, "a member name");
			key_off = out_at(s);
			if ((rc = string(s)))
				return rc;
			key_len = out_at(s) - key_off;
			skip_ws(s);
			if (s->p == s->end)
				return fail_end(s);
			if (*s->p != ':')
				return fail_char(s, s->p, "':'");
			s->p++;
			skip_ws(s);
		}
		val_off = out_at(s);
		if ((rc = value(s)))
			return rc;
		if (top && (rc = child(s, key_off, key_len, val_off, out_at(s))))
			return rc;
		skip_ws(s);
		if (s->p == s->end)
			return fail_end(s);
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p == close) {
			s->p++;
			break;
		}
		return fail_char(s, s->p, object ? "',' or '}'" : "',' or ']'");
	}
	s->depth--;
	return 0;
}

static int value(struct scanner *s)
{
	if (s->p == s->end)
		return fail_end(s);
	switch (*s->p) {
	case '{':
	case '[':
		return container(s);
	case '"':
		return string(s);
	case 't':
		return literal(s, "true", 4);
	case 'f':
		return literal(s, "false", 5);
	case 'n':
		return literal(s, "null", 4);
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return number(s);
	default:
		return fail_char(s, s->p, "a JSON value");
	}
}

int hd_json_text_minify(const char *in, size_t len, char *out, struct hd_json_text_scan *scan,
			struct hd_error *err)
{
	struct scanner s = {
		.in = (const unsigned char *)in,
		.p = (const unsigned char *)in,
		.end = (const unsigned char *)in + len,
		.run = (const unsigned char *)in,
		.out = out,
		.depth_max = scan->depth_max ? scan->depth_max : HD_JSON_TEXT_DEPTH_MAX,
		.scan = scan,
		.err = err,
	};
	int rc;

	scan->nspans = 0;
	scan->out_len = 0;
	skip_ws(&s);
	if (s.p == s.end)
		return hd_error_set(err, HD_EINVAL, "the text is empty");
	if ((rc = value(&s)))
		goto out;
	skip_ws(&s);
	if (s.p != s.end) {
		rc = hd_error_set(err, HD_EINVAL, "unexpected data after the JSON value at byte %zu",
				  at(&s, s.p));
		goto out;
	}
	flush(&s);
	scan->out_len = s.o;
out:
	if (rc)
		scan->nspans = 0;
	return rc;
}

/* Returns the position just past the string token that starts at p (its
 * opening quote), in well-formed text that ends before end. */
static const char *skip_string(const char *p, const char *end)
{
	const char *q = p + 1;

	for (;;) {
		const char *quote = memchr(q, '"', (size_t)(end - q));
		assert(quote);
		/* The quote is escaped when an odd number of backslashes precede it. */
		size_t bs = 0;
		while (quote - bs > q && quote[-1 - (ptrdiff_t)bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			return quote + 1;
		q = quote + 1;
	}
}

/* Returns the position just past the value that starts at p, in minified,
 * well-formed text that ends before end. */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;

	if (*p == '"')
		return skip_string(p, end);
	if (*p != '{' && *p != '[') {
		/* A number or a literal: up to the ',', '}' or ']' after it. */
		while (p < end && *p != ',' && *p != '}' && *p != ']')
			p++;
		return p;
	}
	while (p < end) {
		switch (*p) {
		case '"':
			p = skip_string(p, end);
			continue;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	assert(!"unterminated container");
	return end;
}

int hd_json_text_members(const char *obj, size_t len, struct hd_json_text_span *spans, size_t max,
			 size_t *n)
{
	const char *p = obj + 1, *end = obj + len;

	assert(len >= 2 && obj[0] == '{' && obj[len - 1] == '}');
	*n = 0;
	if (*p == '}')
		return 0;
	for (;;) {
		if (*n == max)
			return HD_ETOOBIG;
		const char *key = p;
		p = skip_string(p, end);
		size_t key_len = (size_t)(p - key);
		assert(*p == ':');
		const char *val = ++p;
		p = skip_value(p, end);
		spans[(*n)++] = (struct hd_json_text_span){
			.key_off = (size_t)(key - obj),
			.key_len = key_len,
			.val_off = (size_t)(val - obj),
			.val_len = (size_t)(p - val),
		};
		if (*p == '}')
			return 0;
		assert(*p == ',');
		p++;
	}
}

/* Writes code point cp (a Unicode scalar value) as UTF-8; returns its length. */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t hd_json_text_unescape(const char *tok, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)tok + 1;
	const unsigned char *end = (const unsigned char *)tok + len - 1;
	size_t o = 0;

	while (p < end) {
		const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs ? bs : end) - p);
		memcpy(out + o, p, run);
		o += run;
		p += run;
		if (!bs)
			break;
		unsigned char e = p[1];
		p += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			uint32_t cp = (uint32_t)hex4(p);
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				uint32_t lo = (uint32_t)hex4(p + 2);
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			o += put_utf8(out + o, cp);
			break;
		}
		default: out[o++] = (char)e; break; /* '"', '\\' and '/' stand for themselves */
		}
	}
	return o;
}
