/*
 * push_own — push subscriptions between nodes that share one engine
 * (docs/cluster.md "Webhook and push ownership"): every node knows every
 * push subscription (loaded at start, then re-listed every RELIST_MS), and
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
 * positions and counters, at most RELIST_MS old); one whose record is gone
 * (deleted on another node) is dropped here. A pause, resume or replay on
 * a node that does not deliver the subscription is kept, the lease asked
 * for (hd_owner_take), and applied on top of the re-read record once this
 * node holds it; the answer waits for that write.
 *
 * With the local engine every claim is held at once and none of this runs.
 * Layer: push. Callers: push_delivery.c (claims, changes, life),
 * push_delivery_stream.c (the gate), push_delivery_record.c (the fence).
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/siphash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELIST_MS 2000
#define LIST_PAGE 500

/* A change made here while another node held the lease. */
struct hd_push_delivery_change {
	bool has_state, pause;
	bool replay, replay_all;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t from;
	struct hd_push_delivery_pending *answers;
};

static void claim_changed(struct hd_owner_claim *c);

void hd_push_own_add(struct hd_push_delivery_sub *s)
{
	snprintf(s->claim.name, sizeof(s->claim.name), "push:%s", s->id);
	s->claim.changed = claim_changed;
	s->claim.arg = s;
	s->born_gen = s->d->relist_gen;
	s->claimed = true;
	hd_owner_add(s->d->owner, &s->claim);
}

bool hd_push_own_held(const struct hd_push_delivery_sub *s)
{
	return s->claimed && hd_owner_holds(&s->claim) && !s->reloading;
}

bool hd_push_own_fence(struct hd_push_delivery_sub *s, struct hd_record_op *op)
{
	bool create = s->unstored;
	s->unstored = false;
	if (!hd_owner_shared(s->d->owner))
		return true;
	if (create)
		return true;
	if (!hd_push_own_held(s) && !(s->claimed && s->claim.handing))
		return false;
	op->fence = s->claim.name;
	op->fence_token = s->claim.token;
	return true;
}

void hd_push_own_fenced(struct hd_push_delivery_sub *s, uint64_t token)
{
	if (s->claimed && s->claim.held && s->claim.token == token && !s->deleted)
		hd_owner_lost(&s->claim);
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
	if (!s->claimed)
		return;
	s->claimed = false;
	s->d->relist_skip_new = true;
	hd_owner_remove(&s->claim, false);
	if (drop && hd_owner_shared(s->d->owner))
		hd_owner_drop(s->d->owner, s->claim.name);
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

static void lost(struct hd_push_delivery_sub *s)
{
	/* Handing over: the last position is written (fenced by the token
	 * that is still this node's) before the lease is released. */
	if (s->claim.handing && s->dirty && s->puts == 0)
		hd_push_delivery_record_changed(s);
	each_stream(s, stream_stop);
	s->dirty = false; /* the new owner writes it from now on */
	s->created_here = false; /* another node may deliver it now: re-read on a gain */
	s->view_hash = 0;
	/* Taken by another node while a change made here waits: ask again. */
	if (s->change)
		hd_owner_take(&s->claim);
	hd_log_info("push_owner_lost sub=%s topic=%s holder=\"%s\"", s->id, s->cfg.topic,
		    s->claim.holder);
}

/* ---- dropping one deleted on another node -------------------------------- */

static void drop_local(struct hd_push_delivery_sub *s)
{
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

/* ---- gaining: read the record again -------------------------------------- */

struct reload {
	struct hd_record_op op;
	struct hd_push_delivery_sub *s; /* a reference */
};

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

static void reload_done(struct hd_record_op *op)
{
	struct reload *q = op->arg;
	struct hd_push_delivery_sub *s = q->s;
	s->reloading = false;
	if (s->deleted || s->d->stopping || !s->claim.held)
		goto out;
	if (op->err == HD_ENOTFOUND) {
		drop_local(s);
		goto out;
	}
	if (op->err) {
		/* Claimed again (and read again) on the next tick. */
		hd_log_warn("push_reload_failed sub=%s err=%d", s->id, op->err);
		hd_owner_lost(&s->claim);
		goto out;
	}
	json_t *v = json_loads(op->recs[0].value, 0, NULL);
	if (json_is_object(v))
		hd_push_delivery_record_apply(s, v);
	json_decref(v);
	s->view_hash = 0;
	hd_log_info("push_owner_gained sub=%s topic=%s token=%llu", s->id, s->cfg.topic,
		    (unsigned long long)s->claim.token);
	if (s->change)
		apply_change(s);
	hd_push_delivery_sub_run(s);
out:
	hd_engine_record_op_fini(op);
	free(q);
	s->refs--;
	hd_push_delivery_sub_release(s);
}

static void gained(struct hd_push_delivery_sub *s)
{
	if (s->created_here) {
		/* Nobody else ever delivered it: this node's copy is the record. */
		s->created_here = false;
		hd_log_info("push_owner_gained sub=%s topic=%s token=%llu", s->id, s->cfg.topic,
			    (unsigned long long)s->claim.token);
		if (s->change)
			apply_change(s);
		hd_push_delivery_sub_run(s);
		return;
	}
	struct reload *q = hd_calloc(1, sizeof(*q));
	q->s = s;
	s->refs++;
	s->reloading = true;
	q->op.kind = HD_RECORD_GET;
	snprintf(q->op.rec.kind, sizeof(q->op.rec.kind), "%s", HD_PUSH_DELIVERY_RECORD_KIND);
	snprintf(q->op.rec.key, sizeof(q->op.rec.key), "%s", s->id);
	q->op.done = reload_done;
	q->op.arg = q;
	int rc = hd_hub_record_op(s->d->hub, &q->op);
	if (rc) {
		q->op.err = rc;
		reload_done(&q->op);
	}
}

static void claim_changed(struct hd_owner_claim *c)
{
	struct hd_push_delivery_sub *s = c->arg;
	if (s->deleted || s->d->stopping)
		return;
	if (c->held)
		gained(s);
	else
		lost(s);
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
	if (!s->reloading)
		hd_owner_take(&s->claim);
	return true;
}

/* ---- the re-list ----------------------------------------------------------- */

static void relist_page(struct hd_push_delivery *d);

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
	if (s->seen_gen != sw->gen && s->born_gen < sw->gen && !s->reloading && s->puts == 0 &&
	    !s->change && !s->unstored)
		sw->a[sw->n++] = s;
}

static void relist_seen(struct hd_push_delivery *d, const struct hd_record *rec)
{
	struct hd_push_delivery_sub *s = hd_map_get(&d->subs, rec->key);
	if (!s) {
		/* A list that may predate a delete made here must not bring
		 * the deleted one back; the next re-list loads it if it is new. */
		if (d->relist_skip_new)
			return;
		s = hd_push_delivery_record_load_one(d, rec);
		if (!s)
			return;
		s->seen_gen = d->relist_gen;
		hd_log_info("push_sub_learned sub=%s topic=%s", s->id, s->cfg.topic);
		return;
	}
	s->seen_gen = d->relist_gen;
	if (hd_push_own_held(s) || s->reloading || s->puts > 0 || s->unstored || s->change)
		return;
	/* Not ours: show the owner's state, positions and counters. */
	static const unsigned char key[16] = "herald-push-subs";
	uint64_t h = hd_siphash(key, rec->value, strlen(rec->value));
	if (h == s->view_hash)
		return;
	s->view_hash = h;
	json_t *v = json_loads(rec->value, 0, NULL);
	if (json_is_object(v))
		hd_push_delivery_record_apply(s, v);
	json_decref(v);
}

static void relist_done(struct hd_record_op *op)
{
	struct hd_push_delivery *d = op->arg;
	d->relisting = false;
	if (d->stopping || op->err) {
		if (op->err && !d->stopping)
			hd_log_debug("push_relist_failed err=%d", op->err);
		hd_engine_record_op_fini(op);
		return;
	}
	for (size_t i = 0; i < op->n && !d->stopping; i++) {
		relist_seen(d, &op->recs[i]);
		snprintf(d->relist_after, sizeof(d->relist_after), "%s", op->recs[i].key);
	}
	bool more = op->n >= LIST_PAGE;
	hd_engine_record_op_fini(op);
	if (more) {
		relist_page(d);
		return;
	}
	/* The whole list is read: what it did not have was deleted. */
	struct sweep sw = {.a = hd_calloc(d->subs.count + 1, sizeof(*sw.a)), .gen = d->relist_gen};
	hd_map_each(&d->subs, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++)
		drop_local(sw.a[i]);
	free(sw.a);
}

static void relist_page(struct hd_push_delivery *d)
{
	memset(&d->relist_op, 0, sizeof(d->relist_op));
	d->relist_op.kind = HD_RECORD_LIST;
	snprintf(d->relist_op.rec.kind, sizeof(d->relist_op.rec.kind), "%s",
		 HD_PUSH_DELIVERY_RECORD_KIND);
	d->relist_op.after = d->relist_after;
	d->relist_op.limit = LIST_PAGE;
	d->relist_op.done = relist_done;
	d->relist_op.arg = d;
	d->relisting = true;
	int rc = hd_hub_record_op(d->hub, &d->relist_op);
	if (rc) {
		d->relist_op.err = rc;
		relist_done(&d->relist_op);
	}
}

static void on_relist(uv_timer_t *t)
{
	struct hd_push_delivery *d = t->data;
	if (d->relisting || d->stopping || !d->loaded)
		return;
	d->relist_gen++;
	d->relist_skip_new = false;
	d->relist_after[0] = '\0';
	relist_page(d);
}

void hd_push_own_start(struct hd_push_delivery *d)
{
	if (hd_owner_shared(d->owner) && !d->stopping)
		uv_timer_start(&d->relist, on_relist, RELIST_MS, RELIST_MS);
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
	uv_timer_stop(&d->relist);
	if (!uv_is_closing((uv_handle_t *)&d->relist))
		uv_close((uv_handle_t *)&d->relist, NULL);
	hd_owner_stop(d->owner);
}
