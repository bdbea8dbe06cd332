/*
 * own — webhook subscriptions between nodes that share one engine
 * (docs/cluster.md "Webhook and push ownership"): every node knows every
 * subscription (loaded at start, then re-listed every RELIST_MS), and one
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
 * the owner's position, at most RELIST_MS old); a subscription whose record
 * is gone (deleted on another node) is dropped here.
 *
 * With the local engine every claim is held at once and none of this runs.
 * Layer: webhook. Callers: sub.c (claims), pump.c (the gate), record.c
 * (the fence), lifecycle.c (start, stop), ops.c (delete).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/siphash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELIST_MS 2000

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

static void claim_changed(struct hd_owner_claim *c);

void hd_webhook_own_add(struct hd_webhook_sub *s)
{
	snprintf(s->claim.name, sizeof(s->claim.name), "webhook:%s", s->id);
	s->claim.changed = claim_changed;
	s->claim.arg = s;
	s->born_gen = s->w->relist_gen;
	s->claimed = true;
	hd_owner_add(s->w->owner, &s->claim);
}

bool hd_webhook_own_held(const struct hd_webhook_sub *s)
{
	const struct hd_webhook_sub *o = s->parent ? s->parent : s;
	return o->claimed && hd_owner_holds(&o->claim) && !o->reloading;
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
	if (o->claim.handing && s->dirty && s->puts == 0)
		hd_webhook_record_put(s, NULL, 0);
	s->dirty = false; /* the new owner writes it from now on */
}

static void lost(struct hd_webhook_sub *s)
{
	/* Taken by another node while a change made here waits: take it back. */
	if (s->change)
		hd_owner_take(&s->claim);
	s->view_hash = 0;
	if (s->pattern)
		hd_map_each(&s->pt.topics, stop_one, NULL);
	stop_one(NULL, s, NULL);
	hd_log_info("webhook_owner_lost sub=%s topic=%s holder=\"%s\"", s->id, s->cfg.topic,
		    s->claim.holder);
}

/* ---- dropping one deleted on another node ------------------------------ */

static void kill_kid(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_webhook_sub_kill(value);
}

static void drop_local(struct hd_webhook_sub *s)
{
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

/* ---- gaining: read the record again ------------------------------------ */

struct reload {
	struct hd_record_op op;
	struct hd_webhook_sub *s;     /* a reference */
	char after[HD_RECORD_KEY_MAX + 1];
	char prefix[HD_SUB_ID_LEN + 2];
};

static void reload_submit(struct reload *q);

/* Ends a re-read: false when s is gone or no longer held (then nothing
 * more is done). */
static bool reload_still(struct reload *q)
{
	struct hd_webhook_sub *s = q->s;
	if (s->deleted || s->w->stopping || !s->claim.held) {
		s->reloading = false;
		return false;
	}
	return true;
}

static void reload_free(struct reload *q)
{
	struct hd_webhook_sub *s = q->s;
	free(q);
	s->refs--;
	hd_webhook_sub_release(s);
}

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

static void reload_ready(struct hd_webhook_sub *s)
{
	s->reloading = false;
	hd_log_info("webhook_owner_gained sub=%s topic=%s position=%llu token=%llu", s->id,
		    s->cfg.topic, (unsigned long long)s->st.lease.floor,
		    (unsigned long long)s->claim.token);
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
	if (!s->reloading)
		hd_owner_take(&s->claim);
	return true;
}

void hd_webhook_own_forget(struct hd_webhook_sub *s, int err)
{
	struct hd_webhook_reply *r = s->change ? s->change->r : NULL;
	change_free(s);
	if (r)
		hd_webhook_ops_reply_err(r, err, "the change could not be applied");
}

static void reload_done(struct hd_record_op *op)
{
	struct reload *q = op->arg;
	struct hd_webhook_sub *s = q->s;
	bool more = false;
	if (!reload_still(q))
		goto out;
	if (op->kind == HD_RECORD_GET && op->err == HD_ENOTFOUND) {
		s->reloading = false;
		drop_local(s);
		goto out;
	}
	if (op->err) {
		/* Claimed again (and read again) on the next tick. */
		s->reloading = false;
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_reload_failed sub=%s err=%d", s->id, op->err);
		hd_owner_lost(&s->claim);
		goto out;
	}
	if (op->kind == HD_RECORD_GET) {
		json_t *o = json_loads(op->recs[0].value, 0, NULL);
		if (json_is_object(o))
			hd_webhook_lifecycle_apply(s, o);
		json_decref(o);
		if (s->pattern) {
			more = true; /* then the children's records */
			q->after[0] = '\0';
		}
	} else {
		for (size_t i = 0; i < op->n; i++) {
			hd_webhook_lifecycle_load_kid(s->w, &op->recs[i]);
			snprintf(q->after, sizeof(q->after), "%s", op->recs[i].key);
		}
		more = op->n >= HD_WEBHOOK_LIST_PAGE;
	}
	if (!more)
		reload_ready(s);
out:
	hd_engine_record_op_fini(op);
	if (more) {
		memset(&q->op, 0, sizeof(q->op));
		q->op.kind = HD_RECORD_LIST;
		snprintf(q->op.rec.kind, sizeof(q->op.rec.kind), "%s", HD_WEBHOOK_TOPIC_RECORD_KIND);
		q->op.prefix = q->prefix;
		q->op.after = q->after;
		q->op.limit = HD_WEBHOOK_LIST_PAGE;
		reload_submit(q);
		return;
	}
	reload_free(q);
}

static void reload_submit(struct reload *q)
{
	q->op.done = reload_done;
	q->op.arg = q;
	hd_webhook_record_submit(q->s->w, &q->op);
}

static void gained(struct hd_webhook_sub *s)
{
	struct reload *q = hd_calloc(1, sizeof(*q));
	q->s = s;
	snprintf(q->prefix, sizeof(q->prefix), "%s/", s->id);
	s->reloading = true;
	s->refs++;
	q->op.kind = HD_RECORD_GET;
	snprintf(q->op.rec.kind, sizeof(q->op.rec.kind), "%s", HD_WEBHOOK_RECORD_KIND);
	snprintf(q->op.rec.key, sizeof(q->op.rec.key), "%s", s->id);
	reload_submit(q);
}

static void claim_changed(struct hd_owner_claim *c)
{
	struct hd_webhook_sub *s = c->arg;
	if (s->deleted || s->w->stopping)
		return;
	if (c->held)
		gained(s);
	else
		lost(s);
}

/* ---- the re-list --------------------------------------------------------- */

static void relist_page(struct hd_webhooks *w);

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
	if (s->seen_gen != sw->gen && s->born_gen < sw->gen && !s->reloading && s->puts == 0 &&
	    !s->change)
		sw->a[sw->n++] = s;
}

static void relist_seen(struct hd_webhooks *w, const struct hd_record *rec)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, rec->key);
	if (!s) {
		/* A list that may predate a delete made here must not bring
		 * the deleted one back; the next re-list loads it if it is new. */
		if (w->relist_skip_new)
			return;
		s = hd_webhook_lifecycle_load_one(w, rec);
		if (!s)
			return;
		s->seen_gen = w->relist_gen;
		hd_log_info("webhook_learned sub=%s topic=%s", s->id, s->cfg.topic);
		hd_webhook_sub_activate(s);
		return;
	}
	s->seen_gen = w->relist_gen;
	if (hd_webhook_own_held(s) || s->reloading || s->puts > 0 || s->unstored ||
	    s->change)
		return;
	/* Not ours: show the owner's state and position (when it changed:
	 * rebuilding the window costs more than a hash). */
	static const unsigned char key[16] = "herald-webhooks";
	uint64_t h = hd_siphash(key, rec->value, strlen(rec->value));
	if (h == s->view_hash)
		return;
	s->view_hash = h;
	json_t *o = json_loads(rec->value, 0, NULL);
	if (json_is_object(o))
		hd_webhook_lifecycle_apply(s, o);
	json_decref(o);
}

static void relist_done(struct hd_record_op *op)
{
	struct hd_webhooks *w = op->arg;
	bool more = false;
	w->relisting = false;
	if (w->stopping || op->err) {
		if (op->err && !w->stopping)
			hd_log_debug("webhook_relist_failed err=%d", op->err);
		hd_engine_record_op_fini(op);
		return;
	}
	for (size_t i = 0; i < op->n && !w->stopping; i++) {
		relist_seen(w, &op->recs[i]);
		snprintf(w->relist_after, sizeof(w->relist_after), "%s", op->recs[i].key);
	}
	more = op->n >= HD_WEBHOOK_LIST_PAGE;
	hd_engine_record_op_fini(op);
	if (more) {
		relist_page(w);
		return;
	}
	/* The whole list is read: what it did not have was deleted. */
	struct sweep sw = {.a = hd_calloc(w->subs.count + 1, sizeof(*sw.a)), .gen = w->relist_gen};
	hd_map_each(&w->subs, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++)
		drop_local(sw.a[i]);
	free(sw.a);
}

static void relist_page(struct hd_webhooks *w)
{
	memset(&w->relist_op, 0, sizeof(w->relist_op));
	w->relist_op.kind = HD_RECORD_LIST;
	snprintf(w->relist_op.rec.kind, sizeof(w->relist_op.rec.kind), "%s",
		 HD_WEBHOOK_RECORD_KIND);
	w->relist_op.after = w->relist_after;
	w->relist_op.limit = HD_WEBHOOK_LIST_PAGE;
	w->relist_op.done = relist_done;
	w->relist_op.arg = w;
	w->relisting = true;
	hd_webhook_record_submit(w, &w->relist_op);
}

static void on_relist(uv_timer_t *t)
{
	struct hd_webhooks *w = t->data;
	if (w->relisting || w->stopping || !w->loaded)
		return;
	w->relist_gen++;
	w->relist_skip_new = false;
	w->relist_after[0] = '\0';
	relist_page(w);
}

void hd_webhook_own_start(struct hd_webhooks *w)
{
	if (hd_owner_shared(w->owner) && !w->stopping)
		uv_timer_start(&w->relist, on_relist, RELIST_MS, RELIST_MS);
}

void hd_webhook_own_stop(struct hd_webhooks *w)
{
	uv_timer_stop(&w->relist);
	if (!uv_is_closing((uv_handle_t *)&w->relist))
		uv_close((uv_handle_t *)&w->relist, NULL);
	hd_owner_stop(w->owner);
}
