/*
 * push_delivery_send — one event's fan-out for a push subscription: its
 * devices (to=user, to=followers), the skips (online, seen, silent quota,
 * expired), one payload per platform, the sends through the providers,
 * retries with backoff, outcomes (hd_push_outcome) and the dead letter.
 * See push_delivery_impl.h.
 */
#include "push/push_delivery_impl.h"

#include "consume/deadletter.h"
#include "consume/filter.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rcbuf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void skip_count(enum hd_push_delivery_skip why, size_t n)
{
	hd_metrics_add_at(HD_M_push_skips_total, why, 0, (int64_t)n);
}

static void send_start(struct hd_push_delivery_send *x);

/* Drops one of the things an event waits for (its handles' closes, a
 * cursor look-up); the last frees it. */
static void event_unref(struct hd_push_delivery_event *e)
{
	if (--e->open)
		return;
	for (int i = 0; i < 3; i++)
		if (e->built[i])
			hd_push_payload_fini(&e->pl[i]);
	hd_hub_reg_fini(&e->live);
	free(e->sends);
	free(e);
}

static void send_timer_closed(uv_handle_t *h)
{
	struct hd_push_delivery_send *x = h->data;
	struct hd_push_delivery_event *e = x->e;
	free(x->token);
	free(x);
	event_unref(e);
}

static void event_wait_closed(uv_handle_t *h)
{
	event_unref(h->data);
}

/* Cancels the event's sends and frees it (its handles close first). A
 * cursor look-up in flight keeps it: the look-up's done frees. */
void hd_push_delivery_send_free_event(struct hd_push_delivery_event *e)
{
	struct hd_push_delivery_sub *s = e->st->s;
	struct hd_push_delivery *d = s->d;
	e->st = NULL;
	hd_rcbuf_unref(e->ev.json);
	e->ev.json = NULL;
	e->open++; /* the wait timer */
	for (size_t i = 0; i < e->nsends; i++) {
		struct hd_push_delivery_send *x = e->sends[i];
		if (x->inflight) {
			x->prov->ops->cancel(x->prov, &x->ps);
			d->inflight--;
			s->inflight--;
		}
		x->inflight = false;
		e->open++;
		uv_close((uv_handle_t *)&x->timer, send_timer_closed);
	}
	uv_close((uv_handle_t *)&e->wait, event_wait_closed);
}

static void record_attempt(struct hd_push_delivery_sub *s, const struct hd_push_delivery_send *x, const char *result,
			   int status, const char *reason)
{
	struct hd_push_delivery_attempt *a = &s->attempts[s->attempts_head];
	s->attempts_head = (s->attempts_head + 1) % HD_PUSH_DELIVERY_ATTEMPTS_KEPT;
	if (s->nattempts < HD_PUSH_DELIVERY_ATTEMPTS_KEPT)
		s->nattempts++;
	a->time_ms = hd_now_ms();
	snprintf(a->topic, sizeof(a->topic), "%s", x->e->st->topic);
	a->offset = x->e->offset;
	snprintf(a->device, sizeof(a->device), "%s/%s", x->user, x->dev);
	snprintf(a->result, sizeof(a->result), "%s", result);
	a->status = status;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
}

static void dl_done(void *arg, uint64_t offset, uint64_t tag, int err)
{
	struct hd_push_delivery_stream *st = arg;
	(void)tag;
	st->ndl--;
	if (st->dead) {
		hd_push_delivery_stream_maybe_close(st);
		return;
	}
	if (err)
		hd_log_warn("push subscription %s: the dead letter of %s offset %llu could not be "
			    "published (%d); the event is passed over", st->s->id, st->topic,
			    (unsigned long long)offset, err);
	else
		st->s->dead_lettered++;
	hd_lease_ack(&st->lease, offset); /* HD_ENOTFOUND after a replay: ignored */
	hd_push_delivery_record_changed(st->s);
	hd_push_delivery_stream_pump(st);
}

/* Takes e out of its stream's window list. */
static void event_unlist(struct hd_push_delivery_event *e)
{
	struct hd_push_delivery_stream *st = e->st;
	for (size_t i = 0; i < st->nevs; i++) {
		if (st->evs[i] == e) {
			st->evs[i] = st->evs[--st->nevs];
			return;
		}
	}
}

void hd_push_delivery_send_drop_all(struct hd_push_delivery_stream *st)
{
	while (st->nevs)
		hd_push_delivery_send_free_event(st->evs[--st->nevs]);
}

/* Every send of the stream's event ended: dead letter if one failed, then
 * it is acknowledged in the window (the floor, the durable position, moves
 * past it once every event before it ended too). */
static void event_end(struct hd_push_delivery_event *e)
{
	struct hd_push_delivery_stream *st = e->st;
	struct hd_push_delivery_sub *s = st->s;
	uint64_t off = e->offset;
	event_unlist(e);
	if (e->failed) {
		char id[HD_PUSH_DELIVERY_ID_LEN + HD_TOPIC_NAME_MAX + 32];
		char extra[HD_PUSH_DELIVERY_ID_LEN + 32];
		snprintf(id, sizeof(id), "push-%s-%s-%llu", s->id, st->topic, (unsigned long long)off);
		snprintf(extra, sizeof(extra), "\"push_subscription\":\"%s\"", s->id);
		struct hd_deadletter dl = {
			.id = id, .source = "herald/push", .type = "herald.push.deadletter",
			.reason = e->fail_reason, .attempts = e->fail_attempts, .topic = st->topic,
			.offset = off, .extra = extra, .event = e->ev.json->data,
			.event_len = e->ev.json->len, .now_ms = hd_now_ms(),
		};
		st->ndl++;
		hd_deadletter_publish(s->d->hub, &dl, 0, dl_done, st);
		hd_push_delivery_send_free_event(e);
		return;
	}
	hd_push_delivery_send_free_event(e);
	hd_lease_ack(&st->lease, off);
	hd_push_delivery_record_changed(s);
	hd_push_delivery_stream_pump(st);
}

static void send_end(struct hd_push_delivery_send *x)
{
	struct hd_push_delivery_event *e = x->e;
	if (!x->ended) {
		x->ended = true;
		e->nended++;
	}
	if (e->nended == e->nsends)
		event_end(e);
}

static void send_retry_fire(uv_timer_t *t)
{
	send_start(t->data);
}

enum hd_push_delivery_step hd_push_delivery_send_plan(const struct hd_push_verdict *v,
						      uint32_t attempt, uint32_t resends,
						      uint32_t max_attempts, int64_t now_ms,
						      int64_t expires_ms, uint32_t backoff_base_ms,
						      int64_t *wait_ms)
{
	int64_t ms = backoff_base_ms;

	*wait_ms = 0;
	switch (v->kind) {
	case HD_PUSH_OK:
		return HD_PUSH_DELIVERY_SENT;
	case HD_PUSH_INVALID:
		return HD_PUSH_DELIVERY_INVALID;
	case HD_PUSH_REFUSED:
		return HD_PUSH_DELIVERY_REFUSED;
	default:
		break;
	}
	if (v->kind == HD_PUSH_RETRY && !v->count_attempt && resends < HD_PUSH_DELIVERY_RESEND_MAX)
		return HD_PUSH_DELIVERY_RESEND;
	for (uint32_t i = 1; i < attempt && ms < HD_PUSH_DELIVERY_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > HD_PUSH_DELIVERY_BACKOFF_MAX_MS)
		ms = HD_PUSH_DELIVERY_BACKOFF_MAX_MS;
	*wait_ms = v->after_ms >= 0 ? v->after_ms : ms;
	if (attempt >= max_attempts || (expires_ms && now_ms + *wait_ms >= expires_ms))
		return HD_PUSH_DELIVERY_GIVE_UP;
	return HD_PUSH_DELIVERY_RETRY;
}

/* A provider-wide THROTTLED (FCM quota): every send through prov waits
 * until the pause ends (bounded), then resumes. */
static void provider_pause(struct hd_push_provider *prov, int64_t ms)
{
	if (ms > HD_PUSH_DELIVERY_PAUSE_MAX_MS)
		ms = HD_PUSH_DELIVERY_PAUSE_MAX_MS;
	int64_t until = hd_now_ms() + ms;
	if (until > prov->paused_until_ms) {
		hd_log_warn("push_provider_paused provider=%s ms=%lld", prov->ops->name,
			    (long long)ms);
		prov->paused_until_ms = until;
	}
}

/* Whether a send now would pass the in-flight caps (all, or s's). */
static bool caps_full(const struct hd_push_delivery *d, const struct hd_push_delivery_sub *s)
{
	return d->inflight >= d->opts.inflight_max || s->inflight >= d->opts.sub_inflight_max;
}

static void more_fire(uv_timer_t *t);

/* Starts e's sends not yet started, in order, while the in-flight caps allow.
 * At a cap, the first one waiting arms its timer (more_fire) for
 * HD_PUSH_DELIVERY_WAIT_MS, so an event waits with one timer however many
 * of its sends wait; an answer to one of its sends starts the next at once
 * (send_done). */
static void event_start_more(struct hd_push_delivery_event *e)
{
	while (e->st && e->nstarted < e->nsends) {
		struct hd_push_delivery_send *x = e->sends[e->nstarted];
		if (caps_full(e->st->s->d, e->st->s)) {
			uv_timer_start(&x->timer, more_fire, HD_PUSH_DELIVERY_WAIT_MS, 0);
			return;
		}
		uv_timer_stop(&x->timer);
		e->nstarted++;
		send_start(x);
	}
}

static void more_fire(uv_timer_t *t)
{
	struct hd_push_delivery_send *x = t->data;
	event_start_more(x->e);
}

static void send_settle(struct hd_push_send *ps);

static void send_done(struct hd_push_send *ps)
{
	struct hd_push_delivery_send *x = ps->arg;
	struct hd_push_delivery_event *e = x->e;

	send_settle(ps);
	/* A slot is free: the event's next waiting send takes it. An event that
	 * ended meanwhile has e->st NULL (its memory stays until its handles
	 * closed) and nothing waiting. */
	event_start_more(e);
}

/* Acts on the verdict of one of x's sends. */
static void send_settle(struct hd_push_send *ps)
{
	struct hd_push_delivery_send *x = ps->arg;
	struct hd_push_delivery_event *e = x->e;
	struct hd_push_delivery_sub *s = e->st->s;
	struct hd_push_delivery *d = s->d;
	const struct hd_push_verdict *v = &ps->verdict;
	const struct hd_device *dev = hd_devices_get(hd_push_devices(d->push), x->user, x->dev);

	int64_t wait;
	enum hd_push_delivery_step step = hd_push_delivery_send_plan(
		v, x->attempt, x->resends, s->cfg.max_attempts, hd_now_ms(), e->expires_ms,
		d->opts.backoff_base_ms, &wait);

	x->inflight = false;
	d->inflight--;
	s->inflight--;
	if (dev)
		hd_push_outcome(d->push, dev, v);
	if (v->kind == HD_PUSH_THROTTLED && v->provider_wide)
		provider_pause(x->prov, v->after_ms >= 0 ? v->after_ms : (int64_t)d->opts.backoff_base_ms);
	switch (step) {
	case HD_PUSH_DELIVERY_SENT:
		s->sent++;
		send_end(x);
		return;
	case HD_PUSH_DELIVERY_INVALID:
	case HD_PUSH_DELIVERY_REFUSED:
		if (step == HD_PUSH_DELIVERY_INVALID)
			s->invalid++;
		else
			s->refused++;
		record_attempt(s, x, hd_provider_verdict_name(v->kind), v->status, v->reason);
		send_end(x);
		return;
	case HD_PUSH_DELIVERY_RESEND:
		x->resends++;
		send_start(x);
		return;
	default:
		break;
	}
	x->resends = 0;
	record_attempt(s, x, hd_provider_verdict_name(v->kind), v->status, v->reason);
	if (step == HD_PUSH_DELIVERY_GIVE_UP) {
		s->failed++;
		e->failed = true;
		e->fail_attempts = x->attempt;
		snprintf(e->fail_reason, sizeof(e->fail_reason), "%s %d %.100s",
			 hd_provider_verdict_name(v->kind), v->status, v->reason);
		send_end(x);
		return;
	}
	uv_timer_start(&x->timer, send_retry_fire, (uint64_t)wait, 0);
}

/* Sends x now, or waits when the caps are reached. */
static void send_start(struct hd_push_delivery_send *x)
{
	struct hd_push_delivery_event *e = x->e;
	struct hd_push_delivery *d = e->st->s->d;
	struct hd_push_payload *pl = &e->pl[x->platform];
	int rc;

	if (!hd_push_delivery_stream_may_run(e->st)) {
		uv_timer_start(&x->timer, send_retry_fire, HD_PUSH_DELIVERY_WAIT_MS * 10, 0);
		return;
	}
	int64_t now = hd_now_ms();
	if (x->prov->paused_until_ms > now) { /* the provider is paused (quota) */
		int64_t wait = x->prov->paused_until_ms - now;
		uv_timer_start(&x->timer, send_retry_fire,
			       (uint64_t)(wait < HD_PUSH_DELIVERY_PAUSE_MAX_MS ? wait
					  : HD_PUSH_DELIVERY_PAUSE_MAX_MS), 0);
		return;
	}
	if (caps_full(d, e->st->s)) {
		uv_timer_start(&x->timer, send_retry_fire, HD_PUSH_DELIVERY_WAIT_MS, 0);
		return;
	}
	memset(&x->ps, 0, sizeof(x->ps));
	x->ps.msg = pl->msg;
	if (x->platform == HD_DEVICE_WEBPUSH) {
		x->ps.to.endpoint = x->token;
		x->ps.to.keys = &x->keys;
	} else {
		x->ps.to.token = x->token;
	}
	x->ps.done = send_done;
	x->ps.arg = x;
	rc = x->prov->ops->send(x->prov, &x->ps);
	if (rc == HD_ELIMIT) {
		uv_timer_start(&x->timer, send_retry_fire, HD_PUSH_DELIVERY_WAIT_MS, 0);
		return;
	}
	if (rc) {
		struct hd_push_delivery_sub *s = e->st->s;
		s->refused++;
		record_attempt(s, x, "refused", 0, "the provider cannot send this message");
		send_end(x);
		return;
	}
	if (x->resends == 0)
		x->attempt++;
	x->inflight = true;
	d->inflight++;
	e->st->s->inflight++;
}

static enum hd_push_payload_platform payload_platform(enum hd_device_platform p)
{
	return p == HD_DEVICE_APNS ? HD_PUSH_PAYLOAD_APNS
	       : p == HD_DEVICE_FCM ? HD_PUSH_PAYLOAD_FCM : HD_PUSH_PAYLOAD_WEBPUSH;
}

static int by_user(const void *key, const void *item)
{
	return strcmp(key, ((const struct hd_hub_reg_item *)item)->user);
}

/* Whether user had a live connection following the event's topic, on any
 * node, when the event was taken (e->live: sorted by user). */
static bool user_online(const struct hd_push_delivery_event *e, const char *user)
{
	return user[0] && e->live.n && bsearch(user, e->live.items, e->live.n, sizeof(*e->live.items), by_user);
}

/* Whether a silent push to user/dev fits this hour; counts it. */
static bool silent_fits(struct hd_push_delivery *d, const char *user, const char *dev)
{
	char key[HD_USER_ID_MAX + HD_DEVICE_ID_MAX + 2];
	int64_t hour = hd_now_ms() / 3600000;
	snprintf(key, sizeof(key), "%s\n%s", user, dev);
	struct hd_push_delivery_silent *q = hd_map_get(&d->silent, key);
	if (!q) {
		q = hd_calloc(1, sizeof(*q));
		if (hd_map_put(&d->silent, key, q)) {
			free(q);
			return true; /* the map is full: no limit rather than no push */
		}
	}
	if (q->hour_ms != hour) {
		q->hour_ms = hour;
		q->n = 0;
	}
	if (q->n >= d->opts.silent_per_hour)
		return false;
	q->n++;
	return true;
}

/* Makes and starts the sends of the stream's event. */
static void event_fan_out(struct hd_push_delivery_event *e)
{
	struct hd_push_delivery_stream *st = e->st;
	struct hd_push_delivery_sub *s = st->s;
	struct hd_push_delivery *d = s->d;
	struct hd_devices *reg = hd_push_devices(d->push);
	struct hd_device *const *devs = NULL;
	size_t n = 0;

	if (reg)
		n = s->cfg.to == HD_PUSH_SUB_TO_USER ? hd_devices_of_user(reg, e->user, &devs)
						     : hd_devices_followers(reg, st->topic, &devs);
	if (n > d->opts.devices_per_event) {
		s->skipped_devices += n - d->opts.devices_per_event;
		skip_count(HD_PUSH_DELIVERY_SKIP_DEVICES, n - d->opts.devices_per_event);
		n = d->opts.devices_per_event;
	}
	e->sends = hd_calloc(n ? n : 1, sizeof(*e->sends));
	for (size_t i = 0; i < n; i++) {
		const struct hd_device *dev = devs[i];
		struct hd_push_provider *prov = hd_push_provider_for(d->push, dev);
		enum hd_push_payload_platform pp = payload_platform(dev->platform);
		if (dev->state != HD_DEVICE_ACTIVE || !prov)
			continue;
		/* to=user: whether the user was live when the event was taken
		 * (before a skip_if_seen wait); followers: now. */
		if (s->cfg.skip_if_online &&
		    (e->user[0] ? e->online : user_online(e, dev->user))) {
			s->skipped_online++;
			skip_count(HD_PUSH_DELIVERY_SKIP_ONLINE, 1);
			continue;
		}
		if (!e->built[pp]) {
			struct hd_push_payload_in in = {
				.ev = &e->ev, .topic = st->topic, .epoch = "", .mode = s->cfg.mode,
				.ttl_ms = s->cfg.ttl_ms, .platform = pp, .now_ms = hd_now_ms(),
			};
			hd_push_payload_build(&in, &e->pl[pp]);
			e->built[pp] = true;
			if (e->pl[pp].result == HD_PUSH_PAYLOAD_OK && e->pl[pp].msg.expiration &&
			    (!e->expires_ms || e->pl[pp].msg.expiration * 1000 < e->expires_ms))
				e->expires_ms = e->pl[pp].msg.expiration * 1000;
		}
		if (e->pl[pp].result == HD_PUSH_PAYLOAD_EXPIRED) {
			s->skipped_expired++;
			skip_count(HD_PUSH_DELIVERY_SKIP_EXPIRED, 1);
			continue;
		}
		if (e->pl[pp].result != HD_PUSH_PAYLOAD_OK) {
			s->refused++;
			continue;
		}
		if (e->pl[pp].mode != HD_PUSH_SUB_ALERT && !silent_fits(d, dev->user, dev->id)) {
			s->skipped_silent++;
			skip_count(HD_PUSH_DELIVERY_SKIP_SILENT, 1);
			continue;
		}
		struct hd_push_delivery_send *x = hd_calloc(1, sizeof(*x));
		x->e = e;
		snprintf(x->user, sizeof(x->user), "%s", dev->user);
		snprintf(x->dev, sizeof(x->dev), "%s", dev->id);
		x->platform = dev->platform;
		x->token = hd_strdup(dev->token);
		x->prov = prov;
		if (dev->platform == HD_DEVICE_WEBPUSH &&
		    hd_webpush_crypto_keys_decode(dev->p256dh, strlen(dev->p256dh), dev->auth,
						  strlen(dev->auth), &x->keys, NULL)) {
			free(x->token);
			free(x);
			continue;
		}
		uv_timer_init(d->loop, &x->timer);
		x->timer.data = x;
		e->sends[e->nsends++] = x;
	}
	if (e->nsends == 0) {
		event_end(e);
		return;
	}
	/* A send may end the event synchronously: event_start_more stops then
	 * (e->st NULL; e->sends stays until the event's handles closed). */
	event_start_more(e);
}

/* The user's devices were re-read (or could not be: the cached ones go). */
static void fresh_done(void *arg, int err)
{
	struct hd_push_delivery_event *e = arg;
	(void)err; /* logged by the registry */
	if (!e->st) { /* freed meanwhile */
		event_unref(e);
		return;
	}
	e->open--;
	event_fan_out(e);
}

/* Before the fan-out of a to=user event: with several nodes, the view of
 * the user's devices here may predate the event (a device registered or
 * deleted on another node a moment ago): it is re-read first
 * (docs/cluster.md "The device registry"). The local engine never waits. */
static void event_devices(struct hd_push_delivery_event *e)
{
	struct hd_devices *reg = hd_push_devices(e->st->s->d->push);

	if (!reg || !e->user[0] || !hd_devices_stale(reg, e->ev.time_ms)) {
		event_fan_out(e);
		return;
	}
	e->open++;
	if (hd_devices_refresh(reg, &e->fresh, e->user, fresh_done, e)) {
		e->open--;
		event_fan_out(e);
	}
}

static void cursor_done(struct hd_record_op *op)
{
	struct hd_push_delivery_event *e = op->arg;
	struct hd_push_delivery_stream *st = e->st;
	bool seen = false;

	if (!st) { /* freed meanwhile */
		hd_engine_record_op_fini(op);
		event_unref(e);
		return;
	}
	e->open--;
	if (op->err == 0 && op->n == 1 && op->recs[0].value) {
		json_t *v = json_loads(op->recs[0].value, 0, NULL);
		json_t *t = json_object_get(v, "topic"), *o = json_object_get(v, "offset");
		seen = json_is_string(t) && strcmp(json_string_value(t), st->topic) == 0 &&
		       json_is_integer(o) && (uint64_t)json_integer_value(o) >= e->offset;
		json_decref(v);
	}
	hd_engine_record_op_fini(op);
	if (seen) {
		st->s->skipped_seen++;
		skip_count(HD_PUSH_DELIVERY_SKIP_SEEN, 1);
		event_end(e);
		return;
	}
	event_devices(e);
}

static void seen_wait_fire(uv_timer_t *t)
{
	struct hd_push_delivery_event *e = t->data;
	struct hd_push_delivery_sub *s = e->st->s;
	memset(&e->cur, 0, sizeof(e->cur));
	e->cur.kind = HD_RECORD_GET;
	snprintf(e->cur.rec.kind, sizeof(e->cur.rec.kind), "cursor");
	snprintf(e->cur.rec.key, sizeof(e->cur.rec.key), "%s\n%s", e->user, s->cfg.seen_cursor);
	e->cur.done = cursor_done;
	e->cur.arg = e;
	e->open++;
	int rc = hd_hub_record_op(s->d->hub, &e->cur);
	if (rc) {
		e->cur.err = rc;
		cursor_done(&e->cur);
	}
}

/* After the online look-up (if any): skip_if_seen's wait, or the fan-out. */
static void event_taken(struct hd_push_delivery_event *e)
{
	struct hd_push_delivery_sub *s = e->st->s;
	if (s->cfg.skip_if_seen && e->user[0]) {
		uv_timer_start(&e->wait, seen_wait_fire, (uint64_t)s->cfg.seen_wait_ms, 0);
		return;
	}
	event_devices(e);
}

/* skip_if_online: the topic's followers answered (every node's with the
 * redis engine; before hd_hub_reg_query returned with the local one). A
 * failed look-up counts nobody as online: the push goes out. */
static void online_done(struct hd_hub_reg *q)
{
	struct hd_push_delivery_event *e = q->arg;
	if (!e->st) { /* freed meanwhile */
		event_unref(e);
		return;
	}
	e->open--;
	if (q->err)
		hd_hub_reg_fini(q);
	if (e->user[0]) {
		e->online = user_online(e, e->user);
		hd_hub_reg_fini(q);
	}
	event_taken(e);
}

static void online_start(struct hd_push_delivery_event *e)
{
	e->live.kind = HD_REG_TOPIC;
	e->live.key = e->st->topic;
	e->live.done = online_done;
	e->live.arg = e;
	e->open++;
	int rc = hd_hub_reg_query(e->st->s->d->hub, &e->live);
	if (rc) {
		e->live.err = rc;
		online_done(&e->live);
	}
}

int hd_push_delivery_send_next(struct hd_push_delivery_stream *st)
{
	struct hd_push_delivery_sub *s = st->s;
	struct hd_stored_event *ev = &st->batch[st->ibatch];
	struct hd_push_delivery_event *e;

	if (ev->offset < st->lease.next) { /* handed out already */
		st->ibatch++;
		hd_rcbuf_unref(ev->json);
		return 0;
	}
	if (st->nevs >= HD_PUSH_DELIVERY_WINDOW || hd_lease_add(&st->lease, ev->offset, INT64_MAX))
		return HD_ELIMIT; /* the window is full: it stays next */
	st->ibatch++;
	if (!hd_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len)) {
		hd_lease_ack(&st->lease, ev->offset);
		hd_rcbuf_unref(ev->json);
		hd_push_delivery_record_changed(s);
		return 0;
	}
	e = hd_calloc(1, sizeof(*e));
	e->st = st;
	e->offset = ev->offset;
	e->ev = *ev; /* takes the reference */
	e->expires_ms = ev->expires_ms;
	uv_timer_init(s->d->loop, &e->wait);
	e->wait.data = e;
	st->evs[st->nevs++] = e;
	if (s->cfg.to == HD_PUSH_SUB_TO_USER) {
		if (strncmp(st->topic, "user:", 5) != 0) {
			event_end(e);
			return 0;
		}
		snprintf(e->user, sizeof(e->user), "%s", st->topic + 5);
	}
	if (s->cfg.skip_if_online) {
		online_start(e);
		return 0;
	}
	event_taken(e);
	return 0;
}

