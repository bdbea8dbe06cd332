/*
 * record — a webhook subscription's durable record (delivery.h "Durable"):
 * its JSON (config, secrets, state, position, epoch, counters), writes
 * coalesced FLUSH_MS after a change with at most one in flight per
 * subscription, and record deletes.
 * Layer: webhook; reaches the store only through the hub's record ops.
 * Callers: pump.c, kids.c, ops.c, sub.c (hd_webhook_record_changed),
 * lifecycle.c (the last write at stop, loading).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX (HD_RECORD_VALUE_MAX)
#define FLUSH_MS 10             /* a changed record is written this much later */

/* ---- durable record --------------------------------------------------- */

struct put {
	struct hd_record_op op;
	struct hd_webhook_sub *s;
	char *value;
	struct hd_webhook_reply *r;   /* answered once durable, or NULL */
	int status;
};

/* Issues a record op; one the hub refuses at once completes at once, with
 * that error, so op->done runs exactly once either way. */
void hd_webhook_record_submit(struct hd_webhooks *w, struct hd_record_op *op)
{
	int rc = hd_hub_record_op(w->hub, op);
	if (rc) {
		op->err = rc;
		op->done(op);
	}
}

static char *record_json(const struct hd_webhook_sub *s)
{
	struct hd_buf b;
	size_t cap = HD_LEASE_ENCODED_MAX(HD_WEBHOOK_WINDOW);
	char *acked = hd_malloc(cap);
	if (hd_lease_encode(&s->st.lease, acked, cap) < 0)
		acked[0] = '\0';
	hd_buf_init(&b, RECORD_MAX);
	hd_buf_puts(&b, "{\"v\":1,\"config\":{");
	hd_sub_config_json(&b, &s->cfg);
	hd_buf_printf(&b, "},\"created\":%" PRId64 ",\"state\":\"%s\",\"reason\":\"", s->created_ms,
		      hd_webhook_sub_state_names[s->state]);
	hd_buf_json_escape(&b, s->reason, strlen(s->reason));
	hd_buf_puts(&b, "\",\"secrets\":[");
	for (size_t i = 0; i < s->nsecrets; i++)
		hd_buf_printf(&b, "%s{\"secret\":\"%s\",\"until\":%" PRId64 "}", i ? "," : "",
			      s->secrets[i].text, s->secrets[i].until_ms);
	hd_buf_printf(&b,
		      "],\"floor\":%" PRIu64
		      ",\"acked\":\"%s\",\"epoch\":\"%s\",\"streak\":%" PRIu32
		      ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
		      ",\"last_success\":%" PRId64 ",\"last_failure\":%" PRId64
		      ",\"last_status\":%d,\"last_error\":\"",
		      s->st.lease.floor, acked, s->st.epoch, s->streak, s->st.delivered,
		      s->st.failed_attempts, s->st.dead_lettered, s->st.last_success_ms,
		      s->st.last_failure_ms, s->st.last_status);
	hd_buf_json_escape(&b, s->st.last_error, strlen(s->st.last_error));
	hd_buf_puts(&b, "\"}");
	free(acked);
	return hd_buf_steal(&b, NULL);
}

static void put_done(struct hd_record_op *op)
{
	struct put *p = op->arg;
	struct hd_webhook_sub *s = p->s;
	struct hd_webhook_sub *o = s->parent ? s->parent : s;
	if (!op->err && op->fenced_out) {
		/* Another node holds the lease now: stop, write nothing more. */
		hd_log_warn("webhook_write_fenced sub=%s key=%s token=%llu", s->id, s->key,
			    (unsigned long long)op->fence_token);
		op->err = HD_EUNAVAIL;
		if (!o->deleted)
			hd_owned_fenced(&o->own, op->fence_token);
	}
	if (p->r) {
		if (op->err)
			hd_webhook_ops_reply_err(p->r, op->err,
						 "the subscription could not be stored");
		else
			hd_webhook_ops_reply(p->r, p->status);
	}
	if (op->err && hd_log_ratelimited(&s->warn_ms))
		hd_log_error("webhook_put_failed sub=%s err=%d", s->id, op->err);
	free(p->value);
	free(p);
	s->puts--;
	s->refs--;
	if (s->dirty)
		hd_webhook_record_changed(s);
	hd_webhook_sub_release(s);
}

void hd_webhook_record_put(struct hd_webhook_sub *s, struct hd_webhook_reply *r, int status)
{
	struct hd_webhook_sub *o = s->parent ? s->parent : s;
	bool create = o == s && s->unstored;
	s->unstored = false;
	if (!create && !hd_webhook_own_held(s) && !o->own.claim.handing) {
		/* Not this node's to write (own.c): the owner writes it. */
		s->dirty = false;
		if (r)
			hd_webhook_ops_reply_err(r, HD_EUNAVAIL,
						 "the subscription is delivered by another node");
		return;
	}
	struct put *p = hd_calloc(1, sizeof(*p));
	p->s = s;
	p->r = r;
	p->status = status;
	p->value = record_json(s);
	p->op.kind = HD_RECORD_PUT;
	snprintf(p->op.rec.kind, sizeof(p->op.rec.kind), "%s",
		 s->parent ? HD_WEBHOOK_TOPIC_RECORD_KIND : HD_WEBHOOK_RECORD_KIND);
	snprintf(p->op.rec.key, sizeof(p->op.rec.key), "%s", s->key);
	p->op.rec.value = p->value;
	if (!create && hd_owner_shared(s->w->owner)) {
		/* Fenced: refused once another node holds the lease. */
		p->op.fence = o->own.claim.name;
		p->op.fence_token = o->own.claim.token;
	}
	p->op.done = put_done;
	p->op.arg = p;
	s->dirty = false;
	s->puts++;
	s->refs++;
	hd_webhook_record_submit(s->w, &p->op);
}

static void on_flush(uv_timer_t *t)
{
	struct hd_webhooks *w = t->data;
	struct hd_webhook_sub *q = w->flushq;
	w->flushq = NULL;
	while (q) {
		struct hd_webhook_sub *s = q;
		q = s->fnext;
		s->queued = false;
		s->refs--;
		if (s->dirty && s->puts == 0 && !s->deleted && !w->stopping)
			hd_webhook_record_put(s, NULL, 0);
		else
			hd_webhook_sub_release(s);
	}
}

/* The subscription's durable state changed: write it FLUSH_MS later, so
 * that the acks of a busy subscription share one write (and one commit)
 * instead of one each; at most one write in flight per subscription. An
 * ack not yet written when herald dies means that event is sent again
 * (at least once); a clean stop writes everything (hd_webhooks_stop). */
void hd_webhook_record_changed(struct hd_webhook_sub *s)
{
	struct hd_webhooks *w = s->w;
	s->dirty = true;
	if (s->puts > 0 || s->queued || s->deleted || w->stopping)
		return;
	s->queued = true;
	s->refs++;
	s->fnext = w->flushq;
	w->flushq = s;
	if (!uv_is_active((uv_handle_t *)&w->flush))
		uv_timer_start(&w->flush, on_flush, FLUSH_MS, 0);
}

struct del {
	struct hd_record_op op;
	struct hd_webhook_reply *r;
};

static void del_done(struct hd_record_op *op)
{
	struct del *d = op->arg;
	if (!d->r) {
		if (op->err && op->err != HD_ENOTFOUND)
			hd_log_error("webhook_delete_failed key=%s err=%d", op->rec.key, op->err);
	} else if (op->err && op->err != HD_ENOTFOUND) {
		hd_webhook_ops_reply_err(d->r, op->err, "the subscription could not be deleted");
	} else {
		hd_webhook_ops_reply(d->r, 204);
	}
	free(d);
}

/* Deletes the record kind/key; r (or NULL) is answered when it is gone. */
void hd_webhook_record_delete(struct hd_webhooks *w, const char *kind, const char *key,
			      struct hd_webhook_reply *r)
{
	struct del *d = hd_calloc(1, sizeof(*d));
	d->r = r;
	d->op.kind = HD_RECORD_DELETE;
	snprintf(d->op.rec.kind, sizeof(d->op.rec.kind), "%s", kind);
	snprintf(d->op.rec.key, sizeof(d->op.rec.key), "%s", key);
	d->op.done = del_done;
	d->op.arg = d;
	hd_webhook_record_submit(w, &d->op);
}
