/*
 * iplimit — connections per client address: how many are open and how fast
 * new ones come, so that one address cannot take every connection slot.
 * Layer: http. Used by server.c on the loop thread, once per accepted
 * connection (hd_iplimit_admit) and once per counted connection that closes
 * (hd_iplimit_release). Single-threaded.
 *
 * Addresses: an IPv4 client counts per address. An IPv6 client counts per
 * /64 prefix: one subscriber or host is normally given a whole /64, and
 * counting single addresses would let it open 2^64 "clients". An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack listener) counts
 * as the IPv4 address.
 *
 * The table is bounded: at most max_entries addresses. An address with
 * connections open always keeps its entry (the server's max_connections
 * bounds those, so the table is sized above it). An address with none open
 * is idle; idle entries wait in least-recently-used order and the oldest
 * is evicted when a new address needs room. Evicting forgets a partly
 * drained rate bucket, so an address could regain up to one burst only by
 * pushing max_entries other addresses through first. An idle entry whose
 * bucket is full again holds nothing worth keeping and is dropped at once.
 */
#ifndef HD_HTTP_IPLIMIT_H
#define HD_HTTP_IPLIMIT_H

#include "core/ratelimit.h"

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define HD_IPLIMIT_KEY_MAX 48 /* "4:255.255.255.255" or "6:" + 16 hex digits, NUL */

struct hd_iplimit_opts {
	uint32_t max_per_ip;   /* open connections per address; 0 = no cap */
	struct hd_rate rate;   /* new connections per address; per_sec 0 = no limit */
	size_t max_entries;    /* addresses tracked at once (at least 1) */
};

enum hd_iplimit_verdict {
	HD_IPLIMIT_OK,
	HD_IPLIMIT_CAP,   /* the address has max_per_ip open */
	HD_IPLIMIT_RATE,  /* the address connects faster than the rate */
	HD_IPLIMIT_FULL,  /* the table is full of addresses with open connections */
};

struct hd_iplimit;
struct hd_iplimit_entry;

/* Returns owned; copies opts. */
struct hd_iplimit *hd_iplimit_new(const struct hd_iplimit_opts *opts);
/* Every admitted connection must have been released. t may be NULL. */
void hd_iplimit_free(struct hd_iplimit *t);

/* Whether t limits anything (a cap or a rate is set). */
bool hd_iplimit_on(const struct hd_iplimit *t);

/*
 * Writes the counting key of a peer address into key (see "Addresses").
 * Returns 0, or -1 for a family other than AF_INET / AF_INET6.
 */
int hd_iplimit_key(const struct sockaddr *sa, char key[HD_IPLIMIT_KEY_MAX]);

/*
 * A new connection from key at now_ms (a monotonic ms clock). HD_IPLIMIT_OK:
 * it is counted and *entry is its handle (borrowed, valid until
 * hd_iplimit_release, which must be called exactly once); otherwise nothing
 * is counted and *retry_ms says when to try again (at least 1).
 */
enum hd_iplimit_verdict hd_iplimit_admit(struct hd_iplimit *t, const char *key, int64_t now_ms,
					 struct hd_iplimit_entry **entry, int64_t *retry_ms);
/* An admitted connection closed. */
void hd_iplimit_release(struct hd_iplimit *t, struct hd_iplimit_entry *e, int64_t now_ms);

/* Addresses tracked now, and open connections of key (for tests). */
size_t hd_iplimit_entries(const struct hd_iplimit *t);
uint32_t hd_iplimit_open(const struct hd_iplimit *t, const char *key);

#endif
