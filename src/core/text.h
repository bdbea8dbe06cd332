/*
 * text — tiny character helpers shared by the parsers and encoders.
 * Layer: core. Pure; any thread.
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

#endif
