/*
 * b64 — base64 (RFC 4648 §4) and base64url (§5): one digit function and one
 * decoder for both alphabets, and the base64url encoder.
 * Layer: core (pure: no I/O, no allocation). Any thread.
 * Callers: auth/jwt.c (token segments: base64url, canonical; claims'
 * b64info/b64data: standard), edge/cproxy.c (proxy answers' b64info/b64data:
 * standard, as Centrifugo decodes them with Go's base64.StdEncoding),
 * push/jws.c (token parts), push/vapid.c (keys), push/webpush_crypto.c
 * (subscription keys: base64url, lenient, as other software prints them),
 * tests.
 */
#ifndef HD_CORE_B64_H
#define HD_CORE_B64_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes that len characters of base64 decode to, at most. */
#define HD_B64_DECODED_MAX(len) ((len) / 4 * 3 + 3)

/* Characters that n bytes encode to without padding (no NUL). */
#define HD_B64_URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/* Flags of hd_b64_decode. */
enum {
	/* The base64url alphabet ('-', '_'); without it the standard one ('+', '/'). */
	HD_B64_URL = 1,
	/* Canonical form only, so that one byte string has exactly one text:
	 * no '=' padding, and the unused low bits of the last character zero. */
	HD_B64_CANONICAL = 2,
};

/* The value of base64 digit c (0..63): the standard alphabet, or with url
 * the base64url one ('-', '_' for '+', '/'); -1 when c is none of its
 * digits (NUL and '=' included). */
int hd_b64_digit(unsigned char c, bool url);

/*
 * Decodes text[0, len) into out[0, out_cap), in the alphabet flags name
 * (HD_B64_URL or not; the other alphabet's two digits are refused). Without
 * HD_B64_CANONICAL: up to two '=' at the end, only to complete the last
 * group of four (padding may also be left out), and the unused low bits of
 * the last character are ignored (as Go's non-strict decoder does); with
 * it: no '=' at all, and those bits must be zero. Always refused: any other
 * character (no white space), a length of the form 4k+1 (padding aside).
 * Writes the decoded length to *out_len. Returns 0, or -1 (bad text, or
 * out_cap too small: nothing meaningful is in out then).
 */
int hd_b64_decode(const char *text, size_t len, unsigned flags, unsigned char *out, size_t out_cap,
		  size_t *out_len);

/*
 * Encodes data[0, n) as base64url without padding into out (room for
 * HD_B64_URL_LEN(n) + 1), NUL-terminated. Returns the length written
 * (without the NUL), or -1 when out_cap is too small (out then holds an
 * empty string when out_cap > 0).
 */
int hd_b64_url_encode(const void *data, size_t n, char *out, size_t out_cap);

#endif
