/*
 * text — tiny character helpers shared by the parsers and encoders.
 * Layer: core. Pure; any thread. (hd_hex_value and hd_u64_format are
 * inline here; hd_text_show and hd_text_trim are in text.c.)
 */
#ifndef HD_TEXT_H
#define HD_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The value of hexadecimal digit c (either case), or -1. */
static inline int hd_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Writes v in decimal into out (no NUL) and returns the digit count (1–20).
 * Faster than snprintf on hot paths. */
static inline size_t hd_u64_format(uint64_t v, char out[20])
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Bytes of a client's text quoted in an error message, and the buffer
 * hd_text_show needs for them ("..." and the NUL). */
#define HD_TEXT_SHOW_MAX 64
#define HD_TEXT_SHOW_SIZE (HD_TEXT_SHOW_MAX + 4)

/* Copies s[0, n) into dst for an error message and returns dst: at most
 * HD_TEXT_SHOW_MAX bytes, cut on a UTF-8 boundary with "..." appended;
 * bytes below 0x20, DEL, quotes and backslashes become '?', so hostile
 * text cannot garble the message. */
const char *hd_text_show(char dst[HD_TEXT_SHOW_SIZE], const char *s, size_t n);

/* Cuts the white space (isspace) off both ends of s in place: returns the
 * first other byte of s, and writes a NUL after the last. */
char *hd_text_trim(char *s);

#endif
