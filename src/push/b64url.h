/*
 * b64url — base64url without padding (RFC 4648 §5), the text form of every
 * binary value in JWS (RFC 7515 §2) and in Web Push subscriptions and keys
 * (RFC 8291 §3.2, RFC 8292 §3.2).
 * Layer: push (pure: no I/O, no allocation). Any thread.
 * Callers: push/jws.c (token parts), push/vapid.c (keys), push/webpush_crypto.c
 * (subscription keys), tests.
 *
 * auth/jwt.c keeps a private decoder of its own (canonical-only, for tokens
 * clients send); this one is the shared encoder and a lenient decoder for
 * keys that other software printed. The two may be unified in core/ later.
 */
#ifndef HD_PUSH_B64URL_H
#define HD_PUSH_B64URL_H

#include <stddef.h>

/* Characters that n bytes encode to (no padding, no NUL). */
#define HD_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/*
 * Encodes data[0, n) into out (room for HD_B64URL_LEN(n) + 1), NUL-terminated.
 * Returns the length written (without the NUL), or -1 when out_cap is too
 * small (out then holds an empty string when out_cap > 0). Any thread.
 */
int hd_b64url_encode(const void *data, size_t n, char *out, size_t out_cap);

/*
 * Decodes text[0, len) into out[0, out_cap). Accepts the base64url alphabet
 * and, as a courtesy to tools that add them, '=' padding at the end; refuses
 * any other character, a length of the form 4k+1 and padding in the middle.
 * Unused low bits of the last character are ignored. Writes the decoded
 * length to *out_len. Returns 0, or -1 (bad text, or out_cap too small).
 * Any thread.
 */
int hd_b64url_decode(const char *text, size_t len, unsigned char *out, size_t out_cap,
		     size_t *out_len);

#endif
