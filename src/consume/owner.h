/*
 * owner — which node delivers a consumer (a webhook subscription, a push
 * subscription) when several nodes share one engine (docs/cluster.md
 * "Ownership"). Each consumer makes a claim on a lease named after it
 * ("webhook:<id>"); the engine (engine.h struct hd_owner_op) gives the
 * lease to one owner string at a time with a fencing token that grows with
 * every new holding. A held claim is renewed every HD_OWNER_RENEW_MS for
 * HD_OWNER_TTL_MS; a claim not held is tried again on the same tick, so a
 * crashed owner's consumers move to another node about HD_OWNER_TTL_MS
 * after its last renewal. The holder itself stops believing it holds the
 * lease HD_OWNER_TTL_MS - HD_OWNER_RENEW_MS after the last renewal it sent
 * that succeeded, before anyone else can take it. What protects the
 * consumer's durable position is the fencing token: its writes carry it
 * (struct hd_record_op fence) and a stale holder's are refused.
 *
 * With an engine of one node (no owner_op: the local engine) every claim
 * is held at once with token 0 and nothing is sent.
 *
 * The owner string is unique per process: node name, pid and start time,
 * so a restarted node never inherits its dead predecessor's leases.
 * Layer: consume. Loop thread only. Callers: consume/owned.c (a consumer's
 * claim, for webhook/own.c and push/push_own.c), webhook/ (lifecycle.c,
 * ops.c) and push/push_delivery*.c.
 */
#ifndef HD_OWNER_H
#define HD_OWNER_H

#include "hub/hub.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HD_OWNER_TTL_MS 3000
#define HD_OWNER_RENEW_MS 1000
#define HD_OWNER_CLAIMS_MAX 200000  /* claims of one struct hd_owner */

struct hd_owner;
struct hd_owner_req;

/* One consumer's claim. The caller owns the struct and fills name, changed
 * and arg before hd_owner_add; the rest is the module's. */
struct hd_owner_claim {
	char name[HD_OWNER_NAME_MAX + 1];
	/* Runs when held flips (a holding that moved to a new token while
	 * held runs it twice: lost, then gained). It may remove the claim. */
	void (*changed)(struct hd_owner_claim *c);
	void *arg;
	/* Read-only for the caller: */
	bool held;
	uint64_t token;               /* the fencing token while held (and the last one after) */
	bool handing;                 /* during changed() for a hand-over: the lease is
					 still this node's, so one last write fenced by
					 token may be issued now; it is released after */
	char holder[HD_OWNER_ID_MAX + 1]; /* the holder as last seen ("" unknown) */
	/* The module's: */
	struct hd_owner *o;
	struct hd_owner_claim *prev, *next;
	struct hd_owner_req *req;     /* the lease operation in flight */
	int64_t valid_until_ms;       /* held: believed until then */
	bool taking;                  /* asking for it (hd_owner_take) until held */
};

/* Returns owned. Borrows loop and hub for its life; node names this node
 * in the owner string. */
struct hd_owner *hd_owner_new(uv_loop_t *loop, struct hd_hub *hub, const char *node);
/* Whether claims go through the engine (several nodes) or are always held. */
bool hd_owner_shared(const struct hd_owner *o);
/* The hub o was made with (borrowed). */
struct hd_hub *hd_owner_hub(const struct hd_owner *o);
/* This process's owner string (returned borrowed, valid for o's life). */
const char *hd_owner_id(const struct hd_owner *o);
/* Whether c is held now: held, and (shared) its last renewal has not run
 * out, even if the tick that notices it has not run yet (a process
 * stopped and resumed must not deliver on a lease it lost meanwhile). */
bool hd_owner_holds(const struct hd_owner_claim *c);
/* Starts claiming c (borrowed until hd_owner_remove). Without a shared
 * engine c is held (token 0) when this returns and changed never runs;
 * else the first attempt is sent now and changed runs when it is won.
 * Past HD_OWNER_CLAIMS_MAX c is never held (logged). */
void hd_owner_add(struct hd_owner *o, struct hd_owner_claim *c);
/* Stops claiming c; release: a held lease is given up in the engine at
 * once (another node may take it now), else it runs out by itself.
 * changed does not run. */
void hd_owner_remove(struct hd_owner_claim *c, bool release);
/* Asks for c's lease (a change made on this node moves the consumer
 * here): the holder hands it over at its next renewal (changed runs there
 * with handing set: it writes what it has, then the lease is released), and
 * this node gets it on one of its next tries (changed runs, a new token). */
void hd_owner_take(struct hd_owner_claim *c);
/* Drops the lease of any holder (the consumer was deleted): writes fenced
 * by it are refused from now on. */
void hd_owner_drop(struct hd_owner *o, const char *name);
/* A write fenced by c's token was refused: c is no longer held (changed
 * runs); it is claimed again on the next tick. */
void hd_owner_lost(struct hd_owner_claim *c);
/* Stops the timer and removes every claim, releasing the held ones.
 * Then hd_owner_free after the loop ran the timer's close. */
void hd_owner_stop(struct hd_owner *o);
void hd_owner_free(struct hd_owner *o);

#endif
