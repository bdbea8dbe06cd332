/*
 * b64 — standard base64 (RFC 4648 §4) decoding for the `b64info` and
 * `b64data` fields Centrifugo apps send (token claims and proxy answers;
 * Centrifugo decodes them with Go's base64.StdEncoding).
 * Layer: auth (pure: no I/O, no allocation). Any thread.
 * Callers: auth/jwt.c (claims; its canonical base64url decoder of token
 * segments uses hd_b64_digit), edge/cproxy.c (proxy answers), tests.
 */
#ifndef HD_AUTH_B64_H
#define HD_AUTH_B64_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes that len characters of base64 decode to, at most. */
#define HD_B64_DECODED_MAX(len) ((len) / 4 * 3 + 3)

/* The value of base64 digit c (0..63): the standard alphabet, or with url
 * the base64url one ('-', '_' for '+', '/'; RFC 4648 §5); -1 when c is
 * none of its digits. */
int hd_b64_digit(unsigned char c, bool url);

/*
 * Decodes text[0, len) into out[0, out_cap). The standard alphabet
 * ('+', '/'); '=' padding at the end, only to complete the last group of
 * four (padding is also accepted when left out, as JavaScript encoders
 * sometimes do); no other character (no white space), no length of the
 * form 4k+1. Writes the decoded length to *out_len. Returns 0, or -1 (bad
 * text, or out_cap too small: nothing meaningful is in out then).
 */
int hd_b64_decode(const char *text, size_t len, unsigned char *out, size_t out_cap, size_t *out_len);

#endif
