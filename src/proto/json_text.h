/*
 * json_text — a strict, allocation-free scanner over JSON text (RFC 8259).
 * Layer: proto. Called by the CloudEvents decoder (cloudevent.c) on the
 * loop thread; pure functions of their arguments, so any thread may call
 * them and the fuzzer drives them through hd_cloudevent_decode.
 *
 * Why not a DOM parser: herald stores `data` byte for byte. A parse and
 * re-serialisation (jansson's json_dumps) rewrites numbers (0.1 becomes
 * 0.10000000000000001, integers above 2^63 are refused) and escapes, and
 * costs an allocation per value. This scanner only checks the grammar and
 * copies the text, dropping the white space between tokens.
 *
 * What "well-formed" means here (RFC 8259 with no extensions):
 *   - exactly one value, optionally surrounded by white space (space, HT,
 *     LF, CR); no byte order mark, no comments, no trailing commas;
 *   - numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, any length
 *     and magnitude (range is the reader's business);
 *   - strings: valid UTF-8 (no overlong forms, no encoded surrogates, no
 *     code point above U+10FFFF), no raw byte below 0x20, escapes limited to
 *     \" \\ \/ \b \f \n \r \t \uXXXX, and a \u escape of a surrogate must be
 *     a high one directly followed by a low one (lone surrogates are refused
 *     because most JSON parsers, jansson included, refuse them). \u0000 is
 *     accepted: it is valid JSON;
 *   - containers nest at most depth_max levels (HD_JSON_TEXT_DEPTH_MAX by
 *     default), which bounds the scanner's recursion.
 * Duplicate member names are not checked here: RFC 8259 allows them, and
 * the CloudEvents decoder checks the top-level names it cares about.
 */
#ifndef HD_JSON_TEXT_H
#define HD_JSON_TEXT_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_JSON_TEXT_DEPTH_MAX 64 /* nesting of objects and arrays */

/*
 * One child of the top-level container, as offsets into the minified
 * output. For an object member, the key token (quotes included, escapes as
 * received) is out[key_off, key_off + key_len) and its value is
 * out[val_off, val_off + val_len). For an array element key_off and key_len
 * are 0.
 */
struct hd_json_text_span {
	size_t key_off;
	size_t key_len;
	size_t val_off;
	size_t val_len;
};

struct hd_json_text_scan {
	/* Set by the caller. spans is borrowed and may be NULL (children are
	 * then only counted); spans_max is its capacity. depth_max 0 means
	 * HD_JSON_TEXT_DEPTH_MAX. */
	struct hd_json_text_span *spans;
	size_t spans_max;
	unsigned depth_max;
	/* Set by hd_json_text_minify on success. */
	size_t nspans;  /* children of the top-level object or array, else 0 */
	size_t out_len; /* bytes written to out */
};

/*
 * Checks that in[0, len) is exactly one well-formed JSON value and writes
 * its minified form (the white space between tokens removed, every other
 * byte kept) to out, which must hold len bytes and is not NUL-terminated.
 * out may equal in (the text is then minified in place); it must not
 * overlap in any other way. The top-level value's type is out[0].
 *
 * Returns 0; HD_EINVAL with err saying what is wrong and at which byte of
 * in; or HD_ETOOBIG when spans is not NULL and the top-level container has
 * more than spans_max children. out holds garbage after an error. err may
 * be NULL.
 */
int hd_json_text_minify(const char *in, size_t len, char *out, struct hd_json_text_scan *scan,
			struct hd_error *err);

/*
 * Splits an object that hd_json_text_minify produced (its output, so
 * minified and known to be well-formed: obj[0] is '{' and obj[len - 1] its
 * closing '}') into its members, filling spans as a scan of the object
 * would (offsets into obj). Much cheaper than scanning again: it checks
 * nothing and only finds where strings and containers end. Returns 0 with
 * *n set, or HD_ETOOBIG when the object has more than max members.
 * Calling it on any other text is a programmer error.
 */
int hd_json_text_members(const char *obj, size_t len, struct hd_json_text_span *spans, size_t max,
			 size_t *n);

/*
 * Decodes a string token that hd_json_text_minify accepted (tok[0, len),
 * quotes included) into UTF-8 at out, which must hold len bytes. Returns
 * the decoded length, which is at most len - 2; out is not NUL-terminated.
 * Calling it on anything else is a programmer error.
 */
size_t hd_json_text_unescape(const char *tok, size_t len, char *out);

/*
 * Decodes the UTF-8 sequence at s[0, n) (n > 0) into *cp. Returns its
 * length (1 to 4), or 0 when the bytes are not a valid, shortest-form
 * encoding of a scalar value (overlong forms, surrogates, values above
 * U+10FFFF and truncated sequences are all invalid).
 */
size_t hd_json_text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether s[0, n) is entirely valid UTF-8 in the sense above. */
bool hd_json_text_utf8_valid(const char *s, size_t n);

#endif
