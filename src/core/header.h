/*
 * header — one name/value pair of an HTTP request, as the parser hands it
 * to the edges and to the CloudEvents decoder.
 * Layer: core (shared by http and proto, which must not include each other).
 */
#ifndef HD_HEADER_H
#define HD_HEADER_H

#include <stddef.h>

struct hd_header {
	const char *name; /* lower-case, NUL-terminated */
	size_t name_len;
	const char *value; /* as received, surrounding white space trimmed, NUL-terminated */
	size_t value_len;
};

#endif
