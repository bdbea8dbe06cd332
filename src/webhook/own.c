/*
 * own — webhook subscriptions between nodes that share one engine
 * (docs/cluster.md "Webhook and push ownership"): every node knows every
 * subscription (loaded at start, then re-listed every HD_RELIST_MS), and one
 * node at a time delivers each: the holder of its ownership lease
 * ("webhook:<id>", consume/owner.h). A pattern subscription's children go
 * with their parent's lease.
 *
 * Gaining the lease: the node's copy of the position is stale (another
 * node delivered meanwhile), so it reads the record again (and a pattern's
 * children's records), rebuilds the window from it (lifecycle.c) and only
 * then delivers. Losing it (another node took it after this one could not
 * renew, or a write fenced by the lease was refused): calls in flight are
 * abandoned and nothing more is written. Every position write of an owned
 * subscription carries the lease's fencing token (record.c), so a node
 * that lost the lease without knowing it cannot move the position back.
 * Between the owner's last acknowledged write and a takeover, events may
 * be delivered twice (at least once), never lost.
 *
 * The re-list pages through the records (HD_WEBHOOK_LIST_PAGE at a time):
 * a record this node does not know is loaded (and claimed); the copy of a
 * subscription it does not own is refreshed from its record (so GET shows
 * the owner's position, at most HD_RELIST_MS old); a subscription whose record
 * is gone (deleted on another node) is dropped here (consume/relist.h
 * pages and times it).
 *
 * The mechanics push shares are in consume/owned.c (claim, re-read, view,
 * sweep test) and consume/relist.c (the pages and the timer); this file
 * keeps what is about webhooks: what a loss stops, how a change kept for
 * the lease is applied, what the re-list loads or drops.
 * With the local engine every claim is held at once and none of this runs.
 * Layer: webhook. Callers: sub.c (claims), pump.c (the gate), record.c
 * (the fence), lifecycle.c (start, stop), ops.c (delete).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A change kept for the lease (webhook_impl.h HD_WEBHOOK_CHANGE_*). */
struct hd_webhook_change {
	unsigned mask;
	enum hd_webhook_state state;
	char reason[HD_WEBHOOK_REASON_MAX];
	uint32_t streak;
	struct hd_webhook_secret secrets[HD_SIGNATURE_SECRETS_MAX];
	size_t nsecrets;
	uint64_t floor;
	struct hd_webhook_reply *r;   /* answered once written, or NULL */
	int status;
};

static void change_free(struct hd_webhook_sub *s)
{
	if (!s->change)
		return;
	memset(s->change->secrets, 0, sizeof(s->change->secrets));
	free(s->change);
	s->change = NULL;
}

static const struct hd_owned_kind kind;

void hd_webhook_own_add(struct hd_webhook_sub *s)
{
	hd_owned_add(&s->own, s->w->owner, &kind, s->id, s, s->w->relist.gen);
}

bool hd_webhook_own_held(const struct hd_webhook_sub *s)
{
	const struct hd_webhook_sub *o = s->parent ? s->parent : s;
	return hd_owned_held(&o->own);
}

/* ---- losing ------------------------------------------------------------ */

static void stop_one(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	const struct hd_webhook_sub *o = s->parent ? s->parent : s;
	(void)key;
	(void)arg;
	hd_webhook_pump_cancel(s, true);
	hd_webhook_pump_drop_ahead(s);
	uv_timer_stop(&s->timer);
	/* Handing over: the last acks are written (fenced by the token that
	 * is still this node's) before the lease is released. */
	if (o->own.claim.handing && s->dirty && s->puts == 0)
		hd_webhook_record_put(s, NULL, 0);
	s->dirty = false; /* the new owner writes it from now on */
}

static void lost(void *sub)
{
	struct hd_webhook_sub *s = sub;
	/* Taken by another node while a change made here waits: take it back. */
	if (s->change)
		hd_owner_take(&s->own.claim);
	if (s->pattern)
		hd_map_each(&s->pt.topics, stop_one, NULL);
	stop_one(NULL, s, NULL);
	hd_log_info("webhook_owner_lost sub=%s topic=%s holder=\"%s\"", s->id, s->cfg.topic,
		    s->own.claim.holder);
}

/* ---- dropping one deleted on another node ------------------------------ */

static void kill_kid(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_webhook_sub_kill(value);
}

static void drop_local(void *sub)
{
	struct hd_webhook_sub *s = sub;
	struct hd_webhooks *w = s->w;
	hd_webhook_own_forget(s, HD_ENOTFOUND);
	hd_map_del(&w->subs, s->id);
	hd_metrics_gauge_add(HD_M_webhook_subscriptions, -1);
	hd_webhook_sub_kill(s);
	if (s->pattern) {
		hd_map_each(&s->pt.topics, kill_kid, NULL);
		hd_pattern_clear(&s->pt);
	}
	hd_log_info("webhook_dropped sub=%s topic=%s reason=\"deleted on another node\"", s->id,
		    s->cfg.topic);
}

/* ---- gaining (the record was read again: consume/owned.c) --------------- */

/* The change made here before this node held the lease, on top of the
 * record just read. */
static void apply_change(struct hd_webhook_sub *s)
{
	struct hd_webhook_change *ch = s->change;
	unsigned m = ch->mask;
	struct hd_webhook_reply *r = ch->r;
	int status = ch->status;
	uint64_t floor = ch->floor;
	if (m & HD_WEBHOOK_CHANGE_STATE) {
		s->state = ch->state;
		memcpy(s->reason, ch->reason, sizeof(s->reason));
		s->streak = ch->streak;
	}
	if (m & HD_WEBHOOK_CHANGE_SECRETS) {
		memcpy(s->secrets, ch->secrets, sizeof(s->secrets));
		s->nsecrets = ch->nsecrets;
	}
	change_free(s);
	hd_log_info("webhook_change_applied sub=%s what=%u", s->id, m);
	if (r)
		hd_webhook_record_put(s, r, status);
	else
		hd_webhook_record_changed(s);
	if ((m & HD_WEBHOOK_CHANGE_MOVED) && !s->pattern)
		hd_webhook_sub_reposition(s, floor + 1); /* activates */
	else
		hd_webhook_sub_activate(s);
}

static void ready(void *sub)
{
	struct hd_webhook_sub *s = sub;
	hd_log_info("webhook_owner_gained sub=%s topic=%s position=%llu token=%llu", s->id,
		    s->cfg.topic, (unsigned long long)s->st.lease.floor,
		    (unsigned long long)s->own.claim.token);
	if (s->change)
		apply_change(s);
	else
		hd_webhook_sub_activate(s);
}

bool hd_webhook_own_changed(struct hd_webhook_sub *s, unsigned what,
			    struct hd_webhook_reply *r, int status)
{
	if (s->parent || hd_webhook_own_held(s))
		return false;
	if (s->change && s->change->r && r) {
		hd_webhook_ops_reply_err(r, HD_EUNAVAIL,
					 "another change of this subscription is being applied; retry");
		return true;
	}
	if (!s->change)
		s->change = hd_calloc(1, sizeof(*s->change));
	struct hd_webhook_change *ch = s->change;
	ch->mask |= what;
	if (what & HD_WEBHOOK_CHANGE_STATE) {
		ch->state = s->state;
		memcpy(ch->reason, s->reason, sizeof(s->reason));
		ch->streak = s->streak;
	}
	if (what & HD_WEBHOOK_CHANGE_SECRETS) {
		memcpy(ch->secrets, s->secrets, sizeof(s->secrets));
		ch->nsecrets = s->nsecrets;
	}
	if (what & HD_WEBHOOK_CHANGE_MOVED)
		ch->floor = s->st.lease.floor;
	if (r) {
		ch->r = r;
		ch->status = status;
	}
	/* Being read again after a gain: applied when that ends. */
	hd_owned_want(&s->own);
	return true;
}

void hd_webhook_own_forget(struct hd_webhook_sub *s, int err)
{
	struct hd_webhook_reply *r = s->change ? s->change->r : NULL;
	change_free(s);
	if (r)
		hd_webhook_ops_reply_err(r, err, "the change could not be applied");
}

/* ---- the re-list (consume/relist.h) ------------------------------------ */

struct sweep {
	struct hd_webhook_sub **a;
	size_t n;
	uint64_t gen;
};

static void sweep_one(const char *key, void *value, void *arg)
{
	struct sweep *sw = arg;
	struct hd_webhook_sub *s = value;
	(void)key;
	if (hd_owned_unseen(&s->own, sw->gen) && s->puts == 0 && !s->change)
		sw->a[sw->n++] = s;
}

static void relist_seen(void *arg, const struct hd_record *rec)
{
	struct hd_webhooks *w = arg;
	struct hd_webhook_sub *s = hd_map_get(&w->subs, rec->key);
	if (!s) {
		/* A list that may predate a delete made here must not bring
		 * the deleted one back; the next re-list loads it if it is new. */
		if (w->relist.skip_new)
			return;
		s = hd_webhook_lifecycle_load_one(w, rec);
		if (!s)
			return;
		s->own.seen_gen = w->relist.gen;
		hd_log_info("webhook_learned sub=%s topic=%s", s->id, s->cfg.topic);
		hd_webhook_sub_activate(s);
		return;
	}
	/* Not ours: show the owner's state and position (when it changed:
	 * rebuilding the window costs more than a hash). */
	if (!hd_owned_view(&s->own, w->relist.gen, s->puts > 0 || s->unstored || s->change,
			   rec->value))
		return;
	json_t *o = json_loads(rec->value, 0, NULL);
	if (json_is_object(o))
		hd_webhook_lifecycle_apply(s, o);
	json_decref(o);
}

/* The whole list is read: what it did not have was deleted. */
static void relist_swept(void *arg)
{
	struct hd_webhooks *w = arg;
	struct sweep sw = {.a = hd_calloc(w->subs.count + 1, sizeof(*sw.a)), .gen = w->relist.gen};
	hd_map_each(&w->subs, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++)
		drop_local(sw.a[i]);
	free(sw.a);
}

/* ---- the kind (consume/owned.h) ------------------------------------------ */

static bool sub_gone(void *sub)
{
	struct hd_webhook_sub *s = sub;
	return s->deleted || s->w->stopping;
}

static void sub_gained(void *sub)
{
	hd_owned_reload(&((struct hd_webhook_sub *)sub)->own);
}

static void sub_apply(void *sub, json_t *o)
{
	hd_webhook_lifecycle_apply(sub, o);
}

static bool sub_has_kids(void *sub)
{
	return ((struct hd_webhook_sub *)sub)->pattern;
}

static void sub_kid(void *sub, const struct hd_record *rec)
{
	hd_webhook_lifecycle_load_kid(((struct hd_webhook_sub *)sub)->w, rec);
}

static void sub_ref(void *sub, int delta)
{
	struct hd_webhook_sub *s = sub;
	s->refs += delta;
	if (delta < 0)
		hd_webhook_sub_release(s);
}

/* The record, then a pattern's children's records; the lease's changes. */
static const struct hd_owned_kind kind = {
	.name = "webhook", .record_kind = HD_WEBHOOK_RECORD_KIND,
	.kids_kind = HD_WEBHOOK_TOPIC_RECORD_KIND, .kids_page = HD_WEBHOOK_LIST_PAGE,
	.apply = sub_apply, .has_kids = sub_has_kids, .kid = sub_kid,
	.ready = ready, .missing = drop_local, .ref = sub_ref,
	.gone = sub_gone, .gained = sub_gained, .lost = lost,
};

void hd_webhook_own_init(struct hd_webhooks *w)
{
	struct hd_relist_cfg c = {.name = "webhook",
				  .kind = HD_WEBHOOK_RECORD_KIND,
				  .page = HD_WEBHOOK_LIST_PAGE,
				  .item = relist_seen,
				  .done = relist_swept,
				  .arg = w};
	hd_relist_init(&w->relist, w->loop, w->hub, &c);
	w->owner = hd_owner_new(w->loop, w->hub, hd_hub_node(w->hub));
}

void hd_webhook_own_start(struct hd_webhooks *w)
{
	if (hd_owner_shared(w->owner) && !w->stopping)
		hd_relist_start(&w->relist);
}

void hd_webhook_own_stop(struct hd_webhooks *w)
{
	hd_relist_stop(&w->relist);
	hd_owner_stop(w->owner);
}
