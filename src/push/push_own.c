/*
 * push_own — push subscriptions between nodes that share one engine
 * (docs/cluster.md "Webhook and push ownership"): every node knows every
 * push subscription (loaded at start, then re-listed every HD_RELIST_MS), and
 * one node at a time delivers each: the holder of its ownership lease
 * ("push:<id>", consume/owner.h). A pattern's streams go with the lease.
 *
 * Gaining the lease: the node's copy of the positions is stale (another
 * node delivered meanwhile), so it reads the record again, moves every
 * stream to its stored position and only then delivers. Losing it: the
 * sends in flight are dropped and nothing more is written. Every record
 * write of an owned subscription carries the lease's fencing token
 * (push_delivery_record.c), so a node that lost the lease without knowing
 * it cannot move a position back. Between the owner's last written
 * position and a takeover, events may be pushed twice (at least once),
 * never lost.
 *
 * The re-list pages through the records (LIST_PAGE at a time): a record
 * this node does not know is loaded (and claimed); the copy of one it does
 * not deliver is refreshed from its record (GET shows the owner's
 * positions and counters, at most HD_RELIST_MS old); one whose record is gone
 * (deleted on another node) is dropped here. A pause, resume or replay on
 * a node that does not deliver the subscription is kept, the lease asked
 * for (hd_owner_take), and applied on top of the re-read record once this
 * node holds it; the answer waits for that write.
 *
 * The mechanics webhooks share are in consume/owned.c (claim, re-read,
 * view, sweep test) and consume/relist.c (the pages and the timer).
 * With the local engine every claim is held at once and none of this runs.
 * Layer: push. Callers: push_delivery.c (claims, changes, life),
 * push_delivery_stream.c (the gate), push_delivery_record.c (the fence).
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 500

/* A change made here while another node held the lease. */
struct hd_push_delivery_change {
	bool has_state, pause;
	bool replay, replay_all;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t from;
	struct hd_push_delivery_pending *answers;
};

static const struct hd_owned_kind kind;

void hd_push_own_add(struct hd_push_delivery_sub *s)
{
	hd_owned_add(&s->own, s->d->owner, &kind, s->id, s, s->d->relist.gen);
}

bool hd_push_own_held(const struct hd_push_delivery_sub *s)
{
	return hd_owned_held(&s->own);
}

bool hd_push_own_fence(struct hd_push_delivery_sub *s, struct hd_record_op *op)
{
	bool create = s->unstored;
	s->unstored = false;
	if (!hd_owner_shared(s->d->owner))
		return true;
	if (create)
		return true;
	if (!hd_push_own_held(s) && !(s->own.claimed && s->own.claim.handing))
		return false;
	op->fence = s->own.claim.name;
	op->fence_token = s->own.claim.token;
	return true;
}

void hd_push_own_fenced(struct hd_push_delivery_sub *s, uint64_t token)
{
	if (!s->deleted)
		hd_owned_fenced(&s->own, token);
}

static void change_answer(struct hd_push_delivery_sub *s, int err)
{
	struct hd_push_delivery_change *ch = s->change;
	if (!ch)
		return;
	s->change = NULL;
	hd_push_delivery_record_answer(ch->answers, s, err);
	free(ch);
}

void hd_push_own_remove(struct hd_push_delivery_sub *s, bool drop, int err)
{
	change_answer(s, err);
	if (hd_owned_remove(&s->own, false, drop))
		hd_relist_deleted(&s->d->relist);
}

/* ---- losing ---------------------------------------------------------------- */

static void stream_stop(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_stream *st = value;
	(void)key;
	(void)arg;
	uv_timer_stop(&st->timer);
	if (!st->seeking)
		hd_push_delivery_stream_reset(st, st->lease.floor);
}

static void each_stream(struct hd_push_delivery_sub *s, void (*fn)(const char *, void *, void *))
{
	if (s->pattern)
		hd_map_each(&s->pt.topics, fn, s);
	else if (s->exact)
		fn(s->exact->topic, s->exact, s);
}

static void lost(void *sub)
{
	struct hd_push_delivery_sub *s = sub;
	/* Handing over: the last position is written (fenced by the token
	 * that is still this node's) before the lease is released. */
	if (s->own.claim.handing && s->dirty && s->puts == 0)
		hd_push_delivery_record_changed(s);
	each_stream(s, stream_stop);
	s->dirty = false; /* the new owner writes it from now on */
	s->created_here = false; /* another node may deliver it now: re-read on a gain */
	/* Taken by another node while a change made here waits: ask again. */
	if (s->change)
		hd_owner_take(&s->own.claim);
	hd_log_info("push_owner_lost sub=%s topic=%s holder=\"%s\"", s->id, s->cfg.topic,
		    s->own.claim.holder);
}

/* ---- dropping one deleted on another node -------------------------------- */

static void drop_local(void *sub)
{
	struct hd_push_delivery_sub *s = sub;
	struct hd_push_delivery *d = s->d;
	hd_map_del(&d->subs, s->id);
	hd_push_own_remove(s, false, HD_ENOTFOUND);
	hd_push_delivery_sub_stop(s);
	s->deleted = true;
	hd_push_delivery_record_answer(s->waiting, s, HD_ENOTFOUND);
	s->waiting = NULL;
	hd_log_info("push_sub_dropped sub=%s topic=%s reason=\"deleted on another node\"", s->id,
		    s->cfg.topic);
	hd_push_delivery_sub_release(s);
}

/* ---- gaining (the record is read again: consume/owned.c) ---------------- */

static void replay_stream(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_stream *st = value;
	const struct hd_push_delivery_change *ch = arg;
	if (!ch->replay_all && strcmp(key, ch->topic))
		return;
	hd_push_delivery_stream_reset(st, ch->from - 1);
}

/* The change made here before this node held the lease, on top of the
 * record just read; its answers wait for the write. */
static void apply_change(struct hd_push_delivery_sub *s)
{
	struct hd_push_delivery_change *ch = s->change;
	s->change = NULL;
	if (ch->has_state)
		s->state = ch->pause ? HD_PUSH_DELIVERY_PAUSED : HD_PUSH_DELIVERY_ACTIVE;
	if (ch->replay) {
		if (s->pattern)
			hd_map_each(&s->pt.topics, replay_stream, ch);
		else if (s->exact)
			replay_stream(s->exact->topic, s->exact, ch);
	}
	/* The answers go after those already waiting. */
	struct hd_push_delivery_pending **tail = &s->waiting;
	while (*tail)
		tail = &(*tail)->next;
	*tail = ch->answers;
	free(ch);
	hd_log_info("push_change_applied sub=%s", s->id);
	hd_push_delivery_record_changed(s);
}

static void ready(void *sub)
{
	struct hd_push_delivery_sub *s = sub;
	hd_log_info("push_owner_gained sub=%s topic=%s token=%llu", s->id, s->cfg.topic,
		    (unsigned long long)s->own.claim.token);
	if (s->change)
		apply_change(s);
	hd_push_delivery_sub_run(s);
}

static void gained(void *sub)
{
	struct hd_push_delivery_sub *s = sub;
	if (s->created_here) {
		/* Nobody else ever delivered it: this node's copy is the record. */
		s->created_here = false;
		ready(s);
		return;
	}
	hd_owned_reload(&s->own);
}

bool hd_push_own_change(struct hd_push_delivery_sub *s, bool has_state, bool pause,
			const char *topic, uint64_t replay_from, hd_push_delivery_done_fn done,
			void *arg)
{
	if (!hd_owner_shared(s->d->owner) || hd_push_own_held(s))
		return false;
	if (!s->change)
		s->change = hd_calloc(1, sizeof(*s->change));
	struct hd_push_delivery_change *ch = s->change;
	if (has_state) {
		ch->has_state = true;
		ch->pause = pause;
		s->state = pause ? HD_PUSH_DELIVERY_PAUSED : HD_PUSH_DELIVERY_ACTIVE;
	}
	if (replay_from) {
		ch->replay = true;
		ch->replay_all = topic == NULL;
		snprintf(ch->topic, sizeof(ch->topic), "%s", topic ? topic : "");
		ch->from = replay_from;
	}
	struct hd_push_delivery_pending *p = hd_calloc(1, sizeof(*p));
	p->done = done;
	p->arg = arg;
	p->status = 200;
	p->next = ch->answers;
	ch->answers = p;
	/* Being read again after a gain: applied when that ends. */
	hd_owned_want(&s->own);
	return true;
}

/* ---- the re-list (consume/relist.h) ---------------------------------------- */

struct sweep {
	struct hd_push_delivery_sub **a;
	size_t n;
	uint64_t gen;
};

static void sweep_one(const char *key, void *value, void *arg)
{
	struct sweep *sw = arg;
	struct hd_push_delivery_sub *s = value;
	(void)key;
	if (hd_owned_unseen(&s->own, sw->gen) && s->puts == 0 && !s->change && !s->unstored)
		sw->a[sw->n++] = s;
}

static void relist_seen(void *arg, const struct hd_record *rec)
{
	struct hd_push_delivery *d = arg;
	struct hd_push_delivery_sub *s = hd_map_get(&d->subs, rec->key);
	if (!s) {
		/* A list that may predate a delete made here must not bring
		 * the deleted one back; the next re-list loads it if it is new. */
		if (d->relist.skip_new)
			return;
		s = hd_push_delivery_record_load_one(d, rec);
		if (!s)
			return;
		s->own.seen_gen = d->relist.gen;
		hd_log_info("push_sub_learned sub=%s topic=%s", s->id, s->cfg.topic);
		return;
	}
	/* Not ours: show the owner's state, positions and counters. */
	if (!hd_owned_view(&s->own, d->relist.gen, s->puts > 0 || s->unstored || s->change,
			   rec->value))
		return;
	json_t *v = json_loads(rec->value, 0, NULL);
	if (json_is_object(v))
		hd_push_delivery_record_apply(s, v);
	json_decref(v);
}

/* The whole list is read: what it did not have was deleted. */
static void relist_swept(void *arg)
{
	struct hd_push_delivery *d = arg;
	struct sweep sw = {.a = hd_calloc(d->subs.count + 1, sizeof(*sw.a)), .gen = d->relist.gen};
	hd_map_each(&d->subs, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++)
		drop_local(sw.a[i]);
	free(sw.a);
}

/* ---- the kind (consume/owned.h) -------------------------------------------- */

static bool sub_gone(void *sub)
{
	struct hd_push_delivery_sub *s = sub;
	return s->deleted || s->d->stopping;
}

static void sub_apply(void *sub, json_t *o)
{
	hd_push_delivery_record_apply(sub, o);
}

static void sub_ref(void *sub, int delta)
{
	struct hd_push_delivery_sub *s = sub;
	s->refs += delta;
	if (delta < 0)
		hd_push_delivery_sub_release(s);
}

/* The record only (a pattern's streams are in it); the lease's changes. */
static const struct hd_owned_kind kind = {
	.name = "push", .record_kind = HD_PUSH_DELIVERY_RECORD_KIND,
	.apply = sub_apply, .ready = ready, .missing = drop_local, .ref = sub_ref,
	.gone = sub_gone, .gained = gained, .lost = lost,
};

void hd_push_own_init(struct hd_push_delivery *d)
{
	struct hd_relist_cfg c = {.name = "push",
				  .kind = HD_PUSH_DELIVERY_RECORD_KIND,
				  .page = LIST_PAGE,
				  .item = relist_seen,
				  .done = relist_swept,
				  .arg = d};
	hd_relist_init(&d->relist, d->loop, d->hub, &c);
}

void hd_push_own_start(struct hd_push_delivery *d)
{
	if (hd_owner_shared(d->owner) && !d->stopping)
		hd_relist_start(&d->relist);
}

static void forget_one(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_sub *s = value;
	(void)key;
	(void)arg;
	change_answer(s, HD_EUNAVAIL);
	/* The last position, before the lease is released: the next owner
	 * goes on from it without repeats. */
	if (s->dirty && s->puts == 0 && hd_owner_shared(s->d->owner) && hd_push_own_held(s))
		hd_push_delivery_record_changed(s);
}

void hd_push_own_stop(struct hd_push_delivery *d)
{
	hd_map_each(&d->subs, forget_one, NULL);
	hd_relist_stop(&d->relist);
	hd_owner_stop(d->owner);
}
