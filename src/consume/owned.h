/*
 * owned — one consumer (a webhook subscription, a push subscription) that
 * every node sharing one engine knows and one node delivers
 * (docs/cluster.md "Webhook and push ownership"): the mechanics both kinds
 * share on top of owner.h. Its claim on the lease "<kind>:<id>"; on a gain,
 * the re-read of its record (and of its children's records, "<id>/…": a
 * pattern's per-topic positions) before it delivers; on a loss, a kept
 * change asks for the lease again; the re-list's view of a record that
 * another node writes (only when it changed: a hash); the sweep's test of
 * a consumer the whole list did not have; a fenced write refused.
 *
 * What is about the kind of consumer (what a loss stops, how a record is
 * applied, what a gain starts) is the caller's, in struct hd_owned_kind.
 * Layer: consume. Loop thread only. Callers: webhook/own.c, record.c,
 * sub.c, ops.c and push/push_own.c.
 */
#ifndef HD_OWNED_H
#define HD_OWNED_H

#include "consume/owner.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* A kind of consumer: static, borrowed for the life of its consumers. The
 * callbacks get the consumer's own pointer (struct hd_owned sub). */
struct hd_owned_kind {
	const char *name;             /* "webhook", "push": the lease name and the log */
	const char *record_kind;      /* the consumer's record, keyed by its id */
	const char *kids_kind;        /* NULL, or its children's records ("<id>/…") */
	size_t kids_page;             /* records per LIST of the children */
	/* Deleted or stopping: a change of the claim is ignored. */
	bool (*gone)(void *sub);
	/* The lease was won (changed ran: held) or lost. */
	void (*gained)(void *sub);
	void (*lost)(void *sub);
	/* The re-read (hd_owned_reload): the record read (o: its JSON
	 * object), each child record (only when has_kids), then ready; or
	 * missing when the record is gone (deleted on another node). Nothing
	 * more runs once gone() or the claim is no longer held. */
	void (*apply)(void *sub, json_t *o);
	bool (*has_kids)(void *sub);
	void (*kid)(void *sub, const struct hd_record *rec);
	void (*ready)(void *sub);
	void (*missing)(void *sub);
	/* Adds delta (+1, -1) to the references of sub: one is held while a
	 * read is in flight (the last -1 may free sub). */
	void (*ref)(void *sub, int delta);
};

/* Embedded in the consumer; the caller reads claim and the flags. */
struct hd_owned {
	struct hd_owner_claim claim;
	bool claimed;                 /* claim is added */
	bool reloading;               /* gained: its record is being read again */
	uint64_t born_gen;            /* the re-list generation when it was made here */
	uint64_t seen_gen;            /* the last re-list that saw its record */
	uint64_t view_hash;           /* not held: the record value last shown (a hash) */
	/* The module's: */
	const struct hd_owned_kind *kind;
	void *sub;
	const char *id;               /* borrowed from sub */
	struct hd_owner *owner;
	long long warn_ms;
};

/* Sets x up (every field) and starts claiming it ("<kind>:<id>"; id and
 * sub borrowed for x's life) with o; gen is the re-list's current
 * generation. */
void hd_owned_add(struct hd_owned *x, struct hd_owner *o, const struct hd_owned_kind *kind,
		  const char *id, void *sub, uint64_t gen);
/* Whether x may deliver and write: claimed, held, not being re-read. */
bool hd_owned_held(const struct hd_owned *x);
/* Stops claiming x (hd_owner_remove with release; drop: the lease is
 * dropped for any holder too, shared engines). False when it was not
 * claimed. */
bool hd_owned_remove(struct hd_owned *x, bool release, bool drop);
/* Asks for x's lease for a change made here (unless a re-read runs: the
 * change is applied when that ends). */
void hd_owned_want(struct hd_owned *x);
/* Reads x's record again (then its children's) into the kind's apply,
 * kid and ready; errors give the lease up (hd_owner_lost: tried again on
 * the next tick). reloading is set until it ends. */
void hd_owned_reload(struct hd_owned *x);
/* A write fenced by token was refused: x lost its lease (if that token
 * is still its holding's). */
void hd_owned_fenced(struct hd_owned *x, uint64_t token);
/* The re-list saw x's record value (pass gen): true when x is not this
 * node's to write (not held, not re-read, not busy: writes or a change of
 * the caller's in flight) and the value changed since it was last shown:
 * the caller applies it. */
bool hd_owned_view(struct hd_owned *x, uint64_t gen, bool busy, const char *value);
/* After a whole pass gen: true when x was neither seen by it nor made
 * after it began, and is not being re-read (deleted on another node,
 * unless the caller has writes in flight). */
bool hd_owned_unseen(const struct hd_owned *x, uint64_t gen);

#endif
