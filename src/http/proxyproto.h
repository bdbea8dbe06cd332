/*
 * proxyproto — the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) a load balancer sends before the client's bytes to say
 * whose connection it is.
 * Layer: http. Called by server_input.c on the loop thread for the first
 * bytes of a connection accepted with --proxy-protocol; fuzzed by
 * tests/fuzz/fuzz_proxyproto.c. Pure, no allocation.
 *
 * Version 1 (text), at most 107 bytes with its CRLF:
 *     "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"
 *     "PROXY TCP6 <src> <dst> <sport> <dport>\r\n"
 *     "PROXY UNKNOWN[ anything]\r\n"        (the peer's own address stands)
 * Addresses are dotted quads (TCP4) or IPv6 text (TCP6), ports decimal
 * 0..65535 without a sign, single spaces between the fields.
 *
 * Version 2 (binary), 16 bytes then `len` more:
 *     12-byte signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
 *     1 byte             version (high nibble, must be 2) | command (low:
 *                        0 LOCAL = a health check of the proxy itself, the
 *                        peer's own address stands; 1 PROXY)
 *     1 byte             family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) |
 *                        transport (low: 0 UNSPEC, 1 STREAM, 2 DGRAM)
 *     2 bytes            len, big-endian: the address block and TLVs
 *     INET:  src 4, dst 4, sport 2, dport 2 (len ≥ 12)
 *     INET6: src 16, dst 16, sport 2, dport 2 (len ≥ 36)
 * TLVs after the addresses are skipped. A PROXY command for an UNSPEC or
 * UNIX family keeps the peer's own address. len is capped at
 * HD_PROXYPROTO_V2_MAX (a header longer than that is refused).
 */
#ifndef HD_HTTP_PROXYPROTO_H
#define HD_HTTP_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define HD_PROXYPROTO_V1_MAX 107
#define HD_PROXYPROTO_V2_MAX 2048 /* bytes after the 16-byte head */

struct hd_proxyproto {
	int version;                  /* 1 or 2 */
	bool has_addr;                /* false: LOCAL / UNKNOWN / UNSPEC: the peer stands */
	struct sockaddr_storage src;  /* the client, when has_addr */
};

/*
 * Reads a header at the start of p[0..n) (borrowed). Returns the bytes it
 * takes (> 0) and fills out; 0 when p is a valid beginning that needs more
 * bytes; -1 when p is not a PROXY header or a malformed one.
 */
int hd_proxyproto_parse(const char *p, size_t n, struct hd_proxyproto *out);

#endif
