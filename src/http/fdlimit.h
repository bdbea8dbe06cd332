/*
 * fdlimit — the process's descriptor budget, prepared once at start for a
 * reconnect storm: the soft RLIMIT_NOFILE raised to the hard limit, and the
 * kernel's descriptor table grown to fit --max-connections.
 * Layer: http. Called by main.c (serve) before any thread exists; the
 * listen backlog helper is called by server.c when it listens.
 *
 * Why before any thread: accept4() that needs a larger descriptor table
 * (at descriptor 256, 512, 1024, …) makes the kernel grow it, and in a
 * multi-threaded process that waits for an RCU grace period (8–16 ms
 * measured). A storm of connects fills the accept queue meanwhile and the
 * kernel drops SYNs. Growing the table once, while the process still has
 * one thread, costs nothing later: a table never shrinks.
 */
#ifndef HD_HTTP_FDLIMIT_H
#define HD_HTTP_FDLIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Descriptors herald needs next to its client connections: the store and
 * its readers, outgoing webhook and push connections, log and config
 * files, the loop's own. */
#define HD_FDLIMIT_RESERVE 512

struct hd_fdlimit_report {
	uint64_t soft_before; /* soft RLIMIT_NOFILE at start */
	uint64_t soft;        /* soft limit now (raised to hard when it could be) */
	uint64_t hard;
	uint64_t wanted;      /* max_connections + HD_FDLIMIT_RESERVE */
	uint64_t table;       /* descriptor slots the table was grown to (0: not grown) */
	bool fits;            /* wanted <= soft */
};

/*
 * Raises the soft open-files limit to the hard one, then grows the
 * descriptor table to min(wanted, soft) slots (dup2 onto the highest slot,
 * then close it). Fills r. Call before any thread starts. Never fails:
 * what could not be done shows in r (fits false: the caller warns).
 */
void hd_fdlimit_prepare(uint64_t max_connections, struct hd_fdlimit_report *r);

/* The soft open-files limit now (0 if unknown or unlimited). */
uint64_t hd_fdlimit_soft(void);

/* The descriptor number from which a new client connection is refused
 * (503) rather than served: the last few descriptors stay for the store,
 * outgoing connections and the answers themselves. soft as returned by
 * hd_fdlimit_soft; 0 means no ceiling. */
uint64_t hd_fdlimit_ceiling(uint64_t soft);

/* The system's cap on a listen backlog (/proc/sys/net/core/somaxconn),
 * or 0 when it cannot be read. */
int hd_fdlimit_somaxconn(void);

#endif
