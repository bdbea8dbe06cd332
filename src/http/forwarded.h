/*
 * forwarded — the client address of a request that came through a trusted
 * reverse proxy: the --trusted-proxies list (CIDR blocks, IPv4 and IPv6)
 * and the Forwarded (RFC 7239) / X-Forwarded-For headers.
 * Layer: http. The list is parsed by main.c's configuration check and by
 * server.c, which asks per connection whether its peer is trusted and per
 * request which client the headers name. Pure functions on the loop thread.
 *
 * Which hop is the client: the hops are read right to left (the right-most
 * is the one the nearest proxy added); trusted hops are skipped and the
 * first untrusted one is the client. A hop that cannot be read ("unknown",
 * an obfuscated name, garbage) stops the walk: the last address read stays
 * the client, so a forged or broken left part never wins. When every hop
 * is trusted the left-most one is the client. Forwarded wins over
 * X-Forwarded-For when both are present; several fields of one header
 * count as one list, in order.
 */
#ifndef HD_HTTP_FORWARDED_H
#define HD_HTTP_FORWARDED_H

#include "core/err.h"
#include "core/header.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define HD_FORWARDED_CIDRS_MAX 64 /* blocks in --trusted-proxies */
#define HD_FORWARDED_HOPS_MAX 32  /* hops read from a request's headers */

struct hd_forwarded_cidr {
	int family;          /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

struct hd_forwarded {
	struct hd_forwarded_cidr cidr[HD_FORWARDED_CIDRS_MAX];
	size_t n;
};

/*
 * Parses a comma-separated list of addresses and CIDR blocks
 * ("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8") into t (an empty or NULL text is
 * an empty list). Returns 0, or HD_ECONFIG with err naming the bad entry.
 */
int hd_forwarded_parse(struct hd_forwarded *t, const char *text, struct hd_error *err);

/* Whether sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * IPv4) is in the list. */
bool hd_forwarded_trusts(const struct hd_forwarded *t, const struct sockaddr *sa);

/*
 * The client of a request whose peer is trusted, from its headers (names
 * lower-case, borrowed): writes it to *out (port 0) and returns 0, or
 * returns HD_ENOTFOUND when neither header names a readable address (the peer
 * is then the client).
 */
int hd_forwarded_client(const struct hd_forwarded *t, const struct hd_header *headers,
			size_t nheaders, struct sockaddr_storage *out);

/* Reads one address ("1.2.3.4", "1.2.3.4:80", "::1", "[::1]", "[::1]:80";
 * p[0..n), borrowed) into *out (port as given, else 0). Returns 0 or
 * HD_EINVAL. */
int hd_forwarded_addr(const char *p, size_t n, struct sockaddr_storage *out);

#endif
