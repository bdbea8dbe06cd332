/*
 * query — percent-decoding and query-string look-ups.
 * Layer: http. Pure functions; any thread.
 */
#ifndef HD_HTTP_QUERY_H
#define HD_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Percent-decodes in[0..len) into out (out_max bytes including the NUL).
 * plus_is_space turns '+' into ' ' (query strings). Returns the decoded
 * length, or -1 for a bad escape ("%G1", truncated "%4"), an encoded NUL,
 * or output that does not fit.
 */
long hd_query_url_decode(const char *in, size_t len, char *out, size_t out_max, bool plus_is_space);

/*
 * Iterates the values of parameter `name` in a raw query string ("a=1&b=2").
 * *pos starts at 0 and is advanced. On a match writes the decoded value into
 * out and returns its length; returns -1 when there are no more matches and
 * -2 when the matching value cannot be decoded or does not fit. A parameter
 * with no '=' has the empty value.
 */
long hd_query_next(const char *query, const char *name, size_t *pos, char *out, size_t out_max);

/* First value of name, or -1 if absent (-2 if undecodable). */
long hd_query_get(const char *query, const char *name, char *out, size_t out_max);

#endif
