/*
 * push_delivery — see push_delivery.h. One file: the subscriptions, their
 * streams (one per topic), one event's fan-out to its devices, and the
 * durable record are one consumer.
 */
#include "push/push_delivery.h"

#include "consume/deadletter.h"
#include "consume/filter.h"
#include "consume/pattern.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/rcbuf.h"
#include "core/uuid.h"
#include "hub/topic_pattern.h"
#include "push/devices.h"
#include "push/payload.h"
#include "push/webpush_crypto.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_LIMIT 64
#define ERROR_WAIT_MS 1000
#define RESEND_MAX 3          /* sends again in a row without an attempt counted */
#define SILENT_MAP_MAX 1000000
#define RECORD_MAX HD_RECORD_VALUE_MAX
#define ATTEMPTS_KEPT 20

enum sub_state { SUB_ACTIVE, SUB_PAUSED };

struct pd_sub;
struct pd_stream;
struct pd_event;

/* One device's send of one event. */
struct pd_send {
	struct hd_push_send ps;
	struct pd_event *e;
	char user[HD_USER_ID_MAX + 1];
	char dev[HD_DEVICE_ID_MAX + 1];
	enum hd_device_platform platform;
	char *token;                  /* owned: APNs/FCM token or Web Push endpoint */
	struct hd_webpush_crypto_keys keys;
	uint32_t attempt, resends;
	bool inflight;                /* accepted by a provider, done() pending */
	bool ended;
	uv_timer_t timer;             /* the wait before a retry */
	struct hd_push_provider *prov;
};

/* The event a stream delivers now. */
struct pd_event {
	struct pd_stream *st;
	uint64_t offset;
	struct hd_stored_event ev;    /* ev.json a reference */
	struct hd_push_payload pl[3]; /* per platform, built once */
	bool built[3];
	struct pd_send **sends;
	size_t nsends, open;
	bool failed;                  /* a send ran out of attempts */
	char fail_reason[HD_PUSH_REASON_MAX];
	uint32_t fail_attempts;
	int64_t expires_ms;           /* 0 = none */
	uv_timer_t wait;              /* skip_if_seen's wait */
	struct hd_record_op cur;      /* skip_if_seen's cursor look-up */
	char user[HD_USER_ID_MAX + 1]; /* to=user */
};

struct pd_stream {
	struct pd_sub *s;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t pos;                 /* the last offset whose sends all ended */
	bool latest;                  /* the first read only learns the topic's last offset */
	uint64_t seen_min;            /* latest: the first offset the watch saw meanwhile (0 = none) */
	bool reading, again;
	struct hd_read rd;
	struct hd_stored_event *batch; /* the rest of the last read (json refs) */
	size_t nbatch, ibatch;
	struct pd_event *e;           /* the event in delivery, or NULL */
	uv_timer_t timer;             /* a read after an error */
	struct hd_watch watch;        /* exact topics */
	bool watching;
	bool dead;                    /* removed: frees once nothing runs */
	bool dl;                      /* a dead letter is being published */
	bool closing;
};

struct pd_attempt {
	int64_t time_ms;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t offset;
	char device[HD_USER_ID_MAX + HD_DEVICE_ID_MAX + 2];
	char result[16];
	int status;
	char reason[HD_PUSH_REASON_MAX];
};

struct pd_sub {
	struct hd_push_delivery *d;
	char id[HD_PUSH_DELIVERY_ID_LEN + 1];
	struct hd_push_sub_config cfg;
	enum sub_state state;
	int64_t created_ms;
	bool pattern;
	struct hd_pattern pt;         /* pattern: topic → stream */
	struct pd_stream *exact;      /* exact topic */
	struct hd_map positions;      /* loaded positions, topic → (uint64_t *) */
	bool fresh_latest;            /* created with start latest: listed topics start at their end */
	bool listed;
	/* Counters (durable). */
	uint64_t sent, failed, invalid, refused, dead_lettered;
	uint64_t skipped_seen, skipped_online, skipped_expired, skipped_silent, skipped_devices;
	struct pd_attempt attempts[ATTEMPTS_KEPT];
	size_t nattempts, attempts_head;
	/* The record. */
	int puts;
	bool dirty;
	struct pd_pending *waiting;   /* answers once the next put is durable */
	bool deleted;
	int refs;
};

/* An operation's answer after a record write. */
struct pd_pending {
	hd_push_delivery_done_fn done;
	void *arg;
	int status;
	struct pd_pending *next;
};

struct pd_put {
	struct hd_record_op op;
	struct pd_sub *s;
	struct pd_pending *answers;
	char *value;
};

struct pd_silent {
	int64_t hour_ms;
	uint32_t n;
};

struct hd_push_delivery {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_push *push;
	struct hd_push_delivery_opts opts;
	struct hd_map subs;           /* id → struct pd_sub */
	struct hd_map silent;         /* "user\ndevice" → struct pd_silent */
	size_t inflight;
	bool loaded, stopping;
	struct hd_record_op load;
	char load_after[HD_RECORD_KEY_MAX + 1];
};

static void stream_pump(struct pd_stream *st);
static void event_next(struct pd_stream *st);
static void send_start(struct pd_send *x);
static void sub_changed(struct pd_sub *s);
static void sub_release(struct pd_sub *s);

static int64_t now_ms(void)
{
	return hd_now_ms();
}

/* ---- streams ---------------------------------------------------------- */

static void stream_timer_closed(uv_handle_t *h)
{
	struct pd_stream *st = h->data;
	free(st);
}

static void stream_free_batch(struct pd_stream *st)
{
	for (size_t i = st->ibatch; i < st->nbatch; i++)
		hd_rcbuf_unref(st->batch[i].json);
	free(st->batch);
	st->batch = NULL;
	st->nbatch = st->ibatch = 0;
}

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct pd_stream *st = w->arg;
	(void)topic;
	if (st->latest && ev && (!st->seen_min || ev->offset < st->seen_min))
		st->seen_min = ev->offset; /* committed after the start: delivered */
	stream_pump(st);
}

static void stream_timer_fire(uv_timer_t *t)
{
	stream_pump(t->data);
}

static struct pd_stream *stream_new(struct pd_sub *s, const char *topic, uint64_t pos, bool latest)
{
	struct pd_stream *st = hd_calloc(1, sizeof(*st));
	st->s = s;
	snprintf(st->topic, sizeof(st->topic), "%s", topic);
	st->pos = pos;
	st->latest = latest;
	uv_timer_init(s->d->loop, &st->timer);
	st->timer.data = st;
	st->watch.fire = on_watch;
	st->watch.arg = st;
	return st;
}

static void event_free(struct pd_event *e);

/* Closes a dead stream's timer (then frees it) once no read or dead letter
 * points at it. */
static void stream_maybe_close(struct pd_stream *st)
{
	if (!st->dead || st->reading || st->dl || st->closing)
		return;
	st->closing = true;
	uv_close((uv_handle_t *)&st->timer, stream_timer_closed);
}

/* Ends the stream's work; frees it once its reads and sends are gone. */
static void stream_kill(struct pd_stream *st)
{
	st->dead = true;
	if (st->watching)
		hd_hub_unwatch(st->s->d->hub, &st->watch);
	st->watching = false;
	stream_free_batch(st);
	if (st->e)
		event_free(st->e);
	st->e = NULL;
	stream_maybe_close(st);
}

static bool stream_may_run(const struct pd_stream *st)
{
	const struct pd_sub *s = st->s;
	return !st->dead && !s->deleted && !s->d->stopping && s->state == SUB_ACTIVE &&
	       s->d->loaded;
}

static void read_done(struct hd_read *r)
{
	struct pd_stream *st = r->arg;
	st->reading = false;
	if (st->dead) {
		hd_engine_read_fini(r);
		stream_maybe_close(st);
		return;
	}
	if (r->err) {
		hd_engine_read_fini(r);
		uv_timer_start(&st->timer, stream_timer_fire, ERROR_WAIT_MS, 0);
		return;
	}
	if (st->latest) {
		st->latest = false;
		if (r->last > st->pos)
			st->pos = r->last;
		if (st->seen_min && st->seen_min - 1 < st->pos)
			st->pos = st->seen_min - 1;
		hd_engine_read_fini(r);
		sub_changed(st->s);
		stream_pump(st);
		return;
	}
	if (r->n) {
		st->batch = hd_calloc(r->n, sizeof(*st->batch));
		for (size_t i = 0; i < r->n; i++) {
			st->batch[i] = r->events[i];
			st->batch[i].json = hd_rcbuf_ref(r->events[i].json);
		}
		st->nbatch = r->n;
		st->ibatch = 0;
	} else if (r->next > st->pos + 1 && r->truncated) {
		st->pos = r->next - 1; /* retention removed events: move past them */
		sub_changed(st->s);
	}
	hd_engine_read_fini(r);
	bool again = st->again;
	st->again = false;
	if (again || st->nbatch)
		stream_pump(st);
}

/* Starts what the stream may do now: the next event, or a read. */
static void stream_pump(struct pd_stream *st)
{
	if (!stream_may_run(st))
		return;
	if (!hd_push_devices(st->s->d->push) || !hd_devices_loaded(hd_push_devices(st->s->d->push))) {
		if (!uv_is_active((uv_handle_t *)&st->timer))
			uv_timer_start(&st->timer, stream_timer_fire, HD_PUSH_DELIVERY_WAIT_MS, 0);
		return;
	}
	if (!st->watching && !st->s->pattern) {
		if (hd_hub_watch(st->s->d->hub, st->topic, &st->watch) == 0)
			st->watching = true;
	}
	if (st->e || st->dl)
		return;
	if (st->ibatch < st->nbatch) {
		event_next(st);
		return;
	}
	stream_free_batch(st);
	if (st->reading) {
		st->again = true;
		return;
	}
	memset(&st->rd, 0, sizeof(st->rd));
	st->rd.topic = st->topic;
	st->rd.after = st->latest ? 0 : st->pos;
	st->rd.limit = st->latest ? 1 : READ_LIMIT;
	st->rd.done = read_done;
	st->rd.arg = st;
	st->reading = true;
	int rc = hd_hub_read(st->s->d->hub, &st->rd);
	if (rc) {
		st->reading = false;
		uv_timer_start(&st->timer, stream_timer_fire, ERROR_WAIT_MS, 0);
	}
}

/* ---- one event's fan-out ---------------------------------------------- */

/* Drops one of the things an event waits for (its handles' closes, a
 * cursor look-up); the last frees it. */
static void event_unref(struct pd_event *e)
{
	if (--e->open)
		return;
	for (int i = 0; i < 3; i++)
		if (e->built[i])
			hd_push_payload_fini(&e->pl[i]);
	free(e->sends);
	free(e);
}

static void send_timer_closed(uv_handle_t *h)
{
	struct pd_send *x = h->data;
	struct pd_event *e = x->e;
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
static void event_free(struct pd_event *e)
{
	struct hd_push_delivery *d = e->st->s->d;
	e->st = NULL;
	hd_rcbuf_unref(e->ev.json);
	e->ev.json = NULL;
	e->open++; /* the wait timer */
	for (size_t i = 0; i < e->nsends; i++) {
		struct pd_send *x = e->sends[i];
		if (x->inflight) {
			x->prov->ops->cancel(x->prov, &x->ps);
			d->inflight--;
		}
		x->inflight = false;
		e->open++;
		uv_close((uv_handle_t *)&x->timer, send_timer_closed);
	}
	uv_close((uv_handle_t *)&e->wait, event_wait_closed);
}

static void record_attempt(struct pd_sub *s, const struct pd_send *x, const char *result,
			   int status, const char *reason)
{
	struct pd_attempt *a = &s->attempts[s->attempts_head];
	s->attempts_head = (s->attempts_head + 1) % ATTEMPTS_KEPT;
	if (s->nattempts < ATTEMPTS_KEPT)
		s->nattempts++;
	a->time_ms = now_ms();
	snprintf(a->topic, sizeof(a->topic), "%s", x->e->st->topic);
	a->offset = x->e->offset;
	snprintf(a->device, sizeof(a->device), "%s/%s", x->user, x->dev);
	snprintf(a->result, sizeof(a->result), "%s", result);
	a->status = status;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
}

static void dl_done(void *arg, uint64_t offset, uint64_t tag, int err)
{
	struct pd_stream *st = arg;
	(void)tag;
	st->dl = false;
	if (st->dead) {
		stream_maybe_close(st);
		return;
	}
	if (err) {
		hd_log_warn("push subscription %s: the dead letter of %s offset %llu failed (%d); "
			    "retrying", st->s->id, st->topic, (unsigned long long)offset, err);
		uv_timer_start(&st->timer, stream_timer_fire, ERROR_WAIT_MS, 0);
		return;
	}
	st->s->dead_lettered++;
	st->pos = offset;
	sub_changed(st->s);
	stream_pump(st);
}

/* Every send of the stream's event ended: dead letter if one failed, then
 * the position moves past it. */
static void event_end(struct pd_event *e)
{
	struct pd_stream *st = e->st;
	struct pd_sub *s = st->s;
	uint64_t off = e->offset;
	if (e->failed) {
		char id[HD_PUSH_DELIVERY_ID_LEN + HD_TOPIC_NAME_MAX + 32];
		char extra[HD_PUSH_DELIVERY_ID_LEN + 32];
		snprintf(id, sizeof(id), "push-%s-%s-%llu", s->id, st->topic, (unsigned long long)off);
		snprintf(extra, sizeof(extra), "\"push_subscription\":\"%s\"", s->id);
		struct hd_deadletter dl = {
			.id = id, .source = "herald/push", .type = "herald.push.deadletter",
			.reason = e->fail_reason, .attempts = e->fail_attempts, .topic = st->topic,
			.offset = off, .extra = extra, .event = e->ev.json->data,
			.event_len = e->ev.json->len, .now_ms = now_ms(),
		};
		st->e = NULL;
		st->dl = true;
		hd_deadletter_publish(s->d->hub, &dl, 0, dl_done, st);
		event_free(e);
		return;
	}
	event_free(e);
	st->e = NULL;
	st->pos = off;
	sub_changed(s);
	stream_pump(st);
}

static void send_end(struct pd_send *x)
{
	struct pd_event *e = x->e;
	x->ended = true;
	size_t left = 0;
	for (size_t i = 0; i < e->nsends; i++)
		left += !e->sends[i]->ended;
	if (left == 0)
		event_end(e);
}

static void send_retry_fire(uv_timer_t *t)
{
	send_start(t->data);
}

static int64_t backoff_ms(const struct hd_push_delivery *d, uint32_t attempt)
{
	int64_t ms = d->opts.backoff_base_ms;
	for (uint32_t i = 1; i < attempt && ms < HD_PUSH_DELIVERY_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return ms < HD_PUSH_DELIVERY_BACKOFF_MAX_MS ? ms : HD_PUSH_DELIVERY_BACKOFF_MAX_MS;
}

static void send_done(struct hd_push_send *ps)
{
	struct pd_send *x = ps->arg;
	struct pd_event *e = x->e;
	struct pd_sub *s = e->st->s;
	struct hd_push_delivery *d = s->d;
	const struct hd_push_verdict *v = &ps->verdict;
	const struct hd_device *dev = hd_devices_get(hd_push_devices(d->push), x->user, x->dev);

	x->inflight = false;
	d->inflight--;
	if (dev)
		hd_push_outcome(d->push, dev, v);
	switch (v->kind) {
	case HD_PUSH_OK:
		s->sent++;
		send_end(x);
		return;
	case HD_PUSH_INVALID:
		s->invalid++;
		record_attempt(s, x, "invalid", v->status, v->reason);
		send_end(x);
		return;
	case HD_PUSH_REFUSED:
		s->refused++;
		record_attempt(s, x, "refused", v->status, v->reason);
		send_end(x);
		return;
	default:
		break;
	}
	if (v->kind == HD_PUSH_RETRY && !v->count_attempt && x->resends < RESEND_MAX) {
		x->resends++;
		send_start(x);
		return;
	}
	x->resends = 0;
	record_attempt(s, x, hd_provider_verdict_name(v->kind), v->status, v->reason);
	int64_t wait = v->after_ms >= 0 ? v->after_ms : backoff_ms(d, x->attempt);
	if (x->attempt >= s->cfg.max_attempts ||
	    (e->expires_ms && now_ms() + wait >= e->expires_ms)) {
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
static void send_start(struct pd_send *x)
{
	struct pd_event *e = x->e;
	struct hd_push_delivery *d = e->st->s->d;
	struct hd_push_payload *pl = &e->pl[x->platform];
	int rc;

	if (!stream_may_run(e->st)) {
		uv_timer_start(&x->timer, send_retry_fire, HD_PUSH_DELIVERY_WAIT_MS * 10, 0);
		return;
	}
	if (d->inflight >= d->opts.inflight_max) {
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
		struct pd_sub *s = e->st->s;
		s->refused++;
		record_attempt(s, x, "refused", 0, "the provider cannot send this message");
		send_end(x);
		return;
	}
	if (x->resends == 0)
		x->attempt++;
	x->inflight = true;
	d->inflight++;
}

static enum hd_push_payload_platform payload_platform(enum hd_device_platform p)
{
	return p == HD_DEVICE_APNS ? HD_PUSH_PAYLOAD_APNS
	       : p == HD_DEVICE_FCM ? HD_PUSH_PAYLOAD_FCM : HD_PUSH_PAYLOAD_WEBPUSH;
}

struct online {
	const char *topic;
	bool yes;
};

static void online_topic(void *arg, const char *topic)
{
	struct online *o = arg;
	if (strcmp(topic, o->topic) == 0)
		o->yes = true;
}

static void online_conn(const struct hd_conn *c, void *arg)
{
	if (c->topics)
		c->topics(c, online_topic, arg);
}

static bool user_online(struct hd_push_delivery *d, const char *user, const char *topic)
{
	struct online o = {.topic = topic};
	hd_hub_conns_of_user(d->hub, user, online_conn, &o);
	return o.yes;
}

/* Whether a silent push to user/dev fits this hour; counts it. */
static bool silent_fits(struct hd_push_delivery *d, const char *user, const char *dev)
{
	char key[HD_USER_ID_MAX + HD_DEVICE_ID_MAX + 2];
	int64_t hour = now_ms() / 3600000;
	snprintf(key, sizeof(key), "%s\n%s", user, dev);
	struct pd_silent *q = hd_map_get(&d->silent, key);
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
static void event_fan_out(struct pd_event *e)
{
	struct pd_stream *st = e->st;
	struct pd_sub *s = st->s;
	struct hd_push_delivery *d = s->d;
	struct hd_devices *reg = hd_push_devices(d->push);
	struct hd_device *const *devs = NULL;
	size_t n = 0;

	if (reg)
		n = s->cfg.to == HD_PUSH_SUB_TO_USER ? hd_devices_of_user(reg, e->user, &devs)
						     : hd_devices_followers(reg, st->topic, &devs);
	if (n > d->opts.devices_per_event) {
		s->skipped_devices += n - d->opts.devices_per_event;
		n = d->opts.devices_per_event;
	}
	e->sends = hd_calloc(n ? n : 1, sizeof(*e->sends));
	for (size_t i = 0; i < n; i++) {
		const struct hd_device *dev = devs[i];
		struct hd_push_provider *prov = hd_push_provider_of(d->push, dev->platform);
		enum hd_push_payload_platform pp = payload_platform(dev->platform);
		if (dev->state != HD_DEVICE_ACTIVE || !prov)
			continue;
		if (s->cfg.skip_if_online && user_online(d, dev->user, st->topic)) {
			s->skipped_online++;
			continue;
		}
		if (!e->built[pp]) {
			struct hd_push_payload_in in = {
				.ev = &e->ev, .topic = st->topic, .epoch = "", .mode = s->cfg.mode,
				.ttl_ms = s->cfg.ttl_ms, .platform = pp, .now_ms = now_ms(),
			};
			hd_push_payload_build(&in, &e->pl[pp]);
			e->built[pp] = true;
			if (e->pl[pp].result == HD_PUSH_PAYLOAD_OK && e->pl[pp].msg.expiration &&
			    (!e->expires_ms || e->pl[pp].msg.expiration * 1000 < e->expires_ms))
				e->expires_ms = e->pl[pp].msg.expiration * 1000;
		}
		if (e->pl[pp].result == HD_PUSH_PAYLOAD_EXPIRED) {
			s->skipped_expired++;
			continue;
		}
		if (e->pl[pp].result != HD_PUSH_PAYLOAD_OK) {
			s->refused++;
			continue;
		}
		if (e->pl[pp].mode != HD_PUSH_SUB_ALERT && !silent_fits(d, dev->user, dev->id)) {
			s->skipped_silent++;
			continue;
		}
		struct pd_send *x = hd_calloc(1, sizeof(*x));
		x->e = e;
		snprintf(x->user, sizeof(x->user), "%s", dev->user);
		snprintf(x->dev, sizeof(x->dev), "%s", dev->id);
		x->platform = dev->platform;
		x->token = hd_strdup(dev->token);
		x->prov = prov;
		if (dev->platform == HD_DEVICE_WEBPUSH &&
		    hd_webpush_crypto_keys_parse(dev->p256dh, strlen(dev->p256dh), dev->auth,
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
	/* Copy the list: a send may end the event synchronously. */
	size_t ns = e->nsends;
	struct pd_send **copy = hd_calloc(ns, sizeof(*copy));
	memcpy(copy, e->sends, ns * sizeof(*copy));
	uint64_t off = e->offset;
	for (size_t i = 0; i < ns; i++) {
		if (st->e != e || st->e->offset != off)
			break;
		send_start(copy[i]);
	}
	free(copy);
}

static void cursor_done(struct hd_record_op *op)
{
	struct pd_event *e = op->arg;
	struct pd_stream *st = e->st;
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
		event_end(e);
		return;
	}
	event_fan_out(e);
}

static void seen_wait_fire(uv_timer_t *t)
{
	struct pd_event *e = t->data;
	struct pd_sub *s = e->st->s;
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

/* Takes the next event of the batch: filter, skips, then its sends. */
static void event_next(struct pd_stream *st)
{
	struct pd_sub *s = st->s;
	struct hd_stored_event *ev = &st->batch[st->ibatch++];
	struct pd_event *e;

	if (ev->offset <= st->pos ||
	    !hd_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len)) {
		if (ev->offset > st->pos) {
			st->pos = ev->offset;
			sub_changed(s);
		}
		hd_rcbuf_unref(ev->json);
		stream_pump(st);
		return;
	}
	e = hd_calloc(1, sizeof(*e));
	e->st = st;
	e->offset = ev->offset;
	e->ev = *ev; /* takes the reference */
	e->expires_ms = ev->expires_ms;
	uv_timer_init(s->d->loop, &e->wait);
	e->wait.data = e;
	st->e = e;
	if (s->cfg.to == HD_PUSH_SUB_TO_USER) {
		if (strncmp(st->topic, "user:", 5) != 0) {
			event_end(e);
			return;
		}
		snprintf(e->user, sizeof(e->user), "%s", st->topic + 5);
	}
	if (s->cfg.skip_if_seen && e->user[0]) {
		uv_timer_start(&e->wait, seen_wait_fire, (uint64_t)s->cfg.seen_wait_ms, 0);
		return;
	}
	event_fan_out(e);
}

/* ---- subscriptions ---------------------------------------------------- */

static uint64_t loaded_pos(struct pd_sub *s, const char *topic, bool *found)
{
	uint64_t *p = hd_map_get(&s->positions, topic);
	*found = p != NULL;
	return p ? *p : 0;
}

static void pt_listed(void *owner, void *item, const struct hd_topic_info *t)
{
	struct pd_sub *s = owner;
	bool found;
	if (item || hd_pattern_admit(&s->pt, t->name))
		return;
	uint64_t pos = loaded_pos(s, t->name, &found);
	struct pd_stream *st = stream_new(s, t->name, pos, !found && s->fresh_latest);
	if (!found && s->fresh_latest)
		st->pos = t->last;
	st->latest = false;
	if (hd_pattern_add(&s->pt, t->name, st)) {
		stream_kill(st);
		return;
	}
	stream_pump(st);
}

static void pt_on_watch(void *owner, void *item, const char *topic,
			const struct hd_stored_event *ev)
{
	struct pd_sub *s = owner;
	struct pd_stream *st = item;
	bool found;
	if (!st) {
		if (hd_pattern_admit(&s->pt, topic))
			return;
		/* Its stored position; else, before the first list of a
		 * subscription created with start latest, from this event (it
		 * was committed after the creation); else a topic created after
		 * the subscription: from its start. */
		uint64_t pos = loaded_pos(s, topic, &found);
		if (!found && s->fresh_latest && ev && ev->offset)
			pos = ev->offset - 1;
		st = stream_new(s, topic, pos, false);
		if (hd_pattern_add(&s->pt, topic, st)) {
			stream_kill(st);
			return;
		}
	}
	stream_pump(st);
}

static void pt_list_done(void *owner, int err)
{
	struct pd_sub *s = owner;
	s->refs--;
	if (s->deleted) {
		sub_release(s);
		return;
	}
	s->listed = true;
	if (s->fresh_latest) {
		s->fresh_latest = false;
		sub_changed(s);
	}
	if (err)
		hd_log_warn("push subscription %s: listing topics failed (%d)", s->id, err);
}

static const struct hd_pattern_ops pt_ops = {
	.listed = pt_listed,
	.on_watch = pt_on_watch,
	.list_done = pt_list_done,
};

static void each_pump(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	stream_pump(value);
}

static void each_kill(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	stream_kill(value);
}

static void each_free(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

/* Starts or wakes every stream of s. */
static void sub_run(struct pd_sub *s)
{
	if (s->pattern) {
		if (!s->pt.watching)
			hd_pattern_watch(&s->pt);
		if (!s->listed && !s->pt.listing) {
			s->refs++;
			hd_pattern_list(&s->pt);
		}
		hd_map_each(&s->pt.topics, each_pump, NULL);
	} else {
		stream_pump(s->exact);
	}
}

static struct pd_sub *sub_new(struct hd_push_delivery *d, const char *id,
			      const struct hd_push_sub_config *c)
{
	struct pd_sub *s = hd_calloc(1, sizeof(*s));
	s->d = d;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->cfg = *c;
	s->pattern = hd_topic_pattern_is(c->topic);
	hd_map_init(&s->positions, d->opts.pattern_topics_max + 1);
	if (s->pattern)
		hd_pattern_init(&s->pt, d->hub, c->topic, d->opts.pattern_topics_max, &pt_ops, s);
	if (hd_map_put(&d->subs, s->id, s)) {
		hd_map_fini(&s->positions);
		if (s->pattern)
			hd_pattern_fini(&s->pt);
		free(s);
		return NULL;
	}
	return s;
}

static void sub_release(struct pd_sub *s)
{
	if (!s->deleted || s->refs || s->puts)
		return;
	hd_map_each(&s->positions, each_free, NULL);
	hd_map_fini(&s->positions);
	if (s->pattern)
		hd_pattern_fini(&s->pt);
	free(s);
}

/* Stops every stream of s (deleted or stopping). */
static void sub_stop(struct pd_sub *s)
{
	if (s->pattern) {
		hd_pattern_stop(&s->pt);
		hd_map_each(&s->pt.topics, each_kill, NULL);
		hd_pattern_clear(&s->pt);
	} else if (s->exact) {
		stream_kill(s->exact);
		s->exact = NULL;
	}
}

/* ---- the record ------------------------------------------------------- */

/* Appends s as a JSON string. */
static void jstr(struct hd_buf *b, const char *s)
{
	hd_buf_putc(b, '"');
	hd_buf_json_escape(b, s, strlen(s));
	hd_buf_putc(b, '"');
}

struct json_ctx {
	struct hd_buf *b;
	bool first;
};

static void pos_json(const char *key, void *value, void *arg)
{
	struct json_ctx *j = arg;
	struct pd_stream *st = value;
	hd_buf_puts(j->b, j->first ? "" : ",");
	j->first = false;
	jstr(j->b, key);
	hd_buf_printf(j->b, ":%llu", (unsigned long long)st->pos);
}

/* Appends the subscription's members (the record's and the answer's). */
static void sub_json(struct hd_buf *b, const struct pd_sub *s, bool counters)
{
	hd_buf_puts(b, "{\"id\":");
	jstr(b, s->id);
	hd_buf_printf(b, ",\"created\":%lld,", (long long)s->created_ms);
	hd_push_sub_config_json(b, &s->cfg);
	hd_buf_printf(b, ",\"state\":\"%s\",\"positions\":{",
		      s->state == SUB_PAUSED ? "paused" : "active");
	struct json_ctx j = {.b = b, .first = true};
	if (s->pattern)
		hd_map_each(&s->pt.topics, pos_json, &j);
	else if (s->exact)
		pos_json(s->exact->topic, s->exact, &j);
	hd_buf_puts(b, "}");
	if (counters)
		hd_buf_printf(b, ",\"sent\":%llu,\"failed\":%llu,\"invalid\":%llu,\"refused\":%llu,"
			      "\"dead_lettered\":%llu,\"skipped_seen\":%llu,\"skipped_online\":%llu,"
			      "\"skipped_expired\":%llu,\"skipped_silent\":%llu,"
			      "\"skipped_devices\":%llu",
			      (unsigned long long)s->sent, (unsigned long long)s->failed,
			      (unsigned long long)s->invalid, (unsigned long long)s->refused,
			      (unsigned long long)s->dead_lettered,
			      (unsigned long long)s->skipped_seen,
			      (unsigned long long)s->skipped_online,
			      (unsigned long long)s->skipped_expired,
			      (unsigned long long)s->skipped_silent,
			      (unsigned long long)s->skipped_devices);
	hd_buf_puts(b, "}");
}

static void answer_all(struct pd_pending *p, struct pd_sub *s, int err)
{
	while (p) {
		struct pd_pending *next = p->next;
		if (err) {
			p->done(p->arg, 0, NULL, err, "the push subscription could not be stored");
		} else if (p->status == 204) {
			p->done(p->arg, 204, "", 0, NULL);
		} else {
			struct hd_buf b;
			hd_buf_init(&b, RECORD_MAX);
			sub_json(&b, s, true);
			hd_buf_putc(&b, '\0');
			p->done(p->arg, p->status, b.data, 0, NULL);
			hd_buf_fini(&b);
		}
		free(p);
		p = next;
	}
}

static void sub_put(struct pd_sub *s);

static void put_done(struct hd_record_op *op)
{
	struct pd_put *p = op->arg;
	struct pd_sub *s = p->s;
	s->puts--;
	free(p->value);
	answer_all(p->answers, s, op->err);
	free(p);
	if (s->deleted) {
		sub_release(s);
		return;
	}
	if (s->dirty && !s->d->stopping)
		sub_put(s);
}

static void sub_put(struct pd_sub *s)
{
	struct pd_put *p = hd_calloc(1, sizeof(*p));
	struct hd_buf b;
	hd_buf_init(&b, RECORD_MAX);
	sub_json(&b, s, true);
	hd_buf_putc(&b, '\0');
	p->value = hd_buf_steal(&b, NULL);
	p->s = s;
	p->answers = s->waiting;
	s->waiting = NULL;
	s->dirty = false;
	p->op.kind = HD_RECORD_PUT;
	snprintf(p->op.rec.kind, sizeof(p->op.rec.kind), HD_PUSH_DELIVERY_RECORD_KIND);
	snprintf(p->op.rec.key, sizeof(p->op.rec.key), "%s", s->id);
	p->op.rec.value = p->value;
	p->op.done = put_done;
	p->op.arg = p;
	s->puts++;
	int rc = hd_hub_record_op(s->d->hub, &p->op);
	if (rc) {
		p->op.err = rc;
		put_done(&p->op);
	}
}

/* s changed: written now when no write runs, else after it. */
static void sub_changed(struct pd_sub *s)
{
	s->dirty = true;
	if (s->puts == 0 && !s->deleted)
		sub_put(s);
}

static void sub_answer_after_put(struct pd_sub *s, int status, hd_push_delivery_done_fn done,
				 void *arg)
{
	struct pd_pending *p = hd_calloc(1, sizeof(*p));
	p->done = done;
	p->arg = arg;
	p->status = status;
	p->next = s->waiting;
	s->waiting = p;
	sub_changed(s);
}

/* ---- loading ---------------------------------------------------------- */

static void sub_activate(struct pd_sub *s, bool fresh, const struct hd_start *start)
{
	if (s->pattern) {
		s->fresh_latest = fresh && start->kind == HD_START_LATEST;
	} else {
		bool found;
		uint64_t pos = loaded_pos(s, s->cfg.topic, &found);
		bool latest = fresh && start->kind == HD_START_LATEST;
		if (fresh && start->kind == HD_START_OFFSET && start->offset > 0)
			pos = start->offset - 1;
		s->exact = stream_new(s, s->cfg.topic, pos, latest);
	}
	sub_run(s);
}

static void each_sub_run(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	sub_run(value);
}

static void load_one(struct hd_push_delivery *d, const struct hd_record *rec)
{
	struct hd_push_sub_config c;
	struct hd_error err = {0};
	json_t *v = json_loads(rec->value, 0, NULL);
	json_t *pos, *val;
	const char *k;
	struct pd_sub *s;

	if (!json_is_object(v) || hd_push_sub_config_load(v, &c, &err) ||
	    !(s = sub_new(d, rec->key, &c))) {
		hd_log_warn("push subscription record %s not loaded: %s", rec->key, err.msg);
		json_decref(v);
		return;
	}
	s->created_ms = json_integer_value(json_object_get(v, "created"));
	s->state = json_is_string(json_object_get(v, "state")) &&
			   strcmp(json_string_value(json_object_get(v, "state")), "paused") == 0
		   ? SUB_PAUSED : SUB_ACTIVE;
#define LOAD_COUNTER(name) s->name = (uint64_t)json_integer_value(json_object_get(v, #name))
	LOAD_COUNTER(sent);
	LOAD_COUNTER(failed);
	LOAD_COUNTER(invalid);
	LOAD_COUNTER(refused);
	LOAD_COUNTER(dead_lettered);
	LOAD_COUNTER(skipped_seen);
	LOAD_COUNTER(skipped_online);
	LOAD_COUNTER(skipped_expired);
	LOAD_COUNTER(skipped_silent);
	LOAD_COUNTER(skipped_devices);
#undef LOAD_COUNTER
	pos = json_object_get(v, "positions");
	json_object_foreach(pos, k, val) {
		uint64_t *p = hd_malloc(sizeof(*p));
		*p = (uint64_t)json_integer_value(val);
		if (hd_map_put(&s->positions, k, p))
			free(p);
	}
	s->listed = false;
	json_decref(v);
	sub_activate(s, false, &(struct hd_start){0});
}

static void load_done(struct hd_record_op *op)
{
	struct hd_push_delivery *d = op->arg;
	size_t n = op->n;
	if (op->err) {
		hd_log_error("push subscriptions could not be loaded (%d); push delivery is off",
			     op->err);
		hd_engine_record_op_fini(op);
		return;
	}
	for (size_t i = 0; i < n; i++)
		load_one(d, &op->recs[i]);
	if (n)
		snprintf(d->load_after, sizeof(d->load_after), "%s", op->recs[n - 1].key);
	hd_engine_record_op_fini(op);
	if (d->stopping)
		return;
	if (n == op->limit) {
		hd_push_delivery_start(d);
		return;
	}
	d->loaded = true;
	hd_log_info("push subscriptions loaded: %zu", d->subs.count);
	/* The streams made while loading waited for loaded. */
	hd_map_each(&d->subs, each_sub_run, NULL);
}

/* ---- public ----------------------------------------------------------- */

struct hd_push_delivery *hd_push_delivery_new(uv_loop_t *loop, struct hd_hub *hub,
					      struct hd_push *push,
					      const struct hd_push_delivery_opts *o)
{
	struct hd_push_delivery *d = hd_calloc(1, sizeof(*d));
	d->loop = loop;
	d->hub = hub;
	d->push = push;
	d->opts = *o;
	if (!d->opts.silent_per_hour)
		d->opts.silent_per_hour = 3;
	if (!d->opts.max_subs)
		d->opts.max_subs = 1000;
	if (!d->opts.devices_per_event)
		d->opts.devices_per_event = 10000;
	if (!d->opts.inflight_max)
		d->opts.inflight_max = 2000;
	if (!d->opts.pattern_topics_max)
		d->opts.pattern_topics_max = 10000;
	if (!d->opts.backoff_base_ms)
		d->opts.backoff_base_ms = 1000;
	hd_map_init(&d->subs, d->opts.max_subs);
	hd_map_init(&d->silent, SILENT_MAP_MAX);
	return d;
}

void hd_push_delivery_start(struct hd_push_delivery *d)
{
	memset(&d->load, 0, sizeof(d->load));
	d->load.kind = HD_RECORD_LIST;
	snprintf(d->load.rec.kind, sizeof(d->load.rec.kind), HD_PUSH_DELIVERY_RECORD_KIND);
	d->load.after = d->load_after;
	d->load.limit = 500;
	d->load.done = load_done;
	d->load.arg = d;
	int rc = hd_hub_record_op(d->hub, &d->load);
	if (rc) {
		d->load.err = rc;
		load_done(&d->load);
	}
}

bool hd_push_delivery_loaded(const struct hd_push_delivery *d)
{
	return d->loaded;
}

static void each_sub_stop(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	sub_stop(value);
}

void hd_push_delivery_stop(struct hd_push_delivery *d)
{
	if (!d || d->stopping)
		return;
	d->stopping = true;
	hd_map_each(&d->subs, each_sub_stop, NULL);
}

static void each_sub_free(const char *key, void *value, void *arg)
{
	struct pd_sub *s = value;
	(void)key;
	(void)arg;
	answer_all(s->waiting, s, HD_EUNAVAIL);
	s->waiting = NULL;
	s->deleted = true;
	s->refs = 0;
	s->puts = 0;
	sub_release(s);
}

void hd_push_delivery_free(struct hd_push_delivery *d)
{
	if (!d)
		return;
	hd_map_each(&d->subs, each_sub_free, NULL);
	hd_map_fini(&d->subs);
	hd_map_each(&d->silent, each_free, NULL);
	hd_map_fini(&d->silent);
	free(d);
}

static struct pd_sub *find(struct hd_push_delivery *d, const char *id,
			   hd_push_delivery_done_fn done, void *arg)
{
	struct pd_sub *s = d->loaded ? hd_map_get(&d->subs, id) : NULL;
	if (!d->loaded)
		done(arg, 0, NULL, HD_EUNAVAIL, "push subscriptions are loading; retry shortly");
	else if (!s || s->deleted)
		done(arg, 0, NULL, HD_ENOTFOUND, "no push subscription with this id");
	return s && !s->deleted ? s : NULL;
}

void hd_push_delivery_create(struct hd_push_delivery *d, const struct hd_push_sub_config *c,
			     const struct hd_start *start, hd_push_delivery_done_fn done,
			     void *arg)
{
	char uuid[37], id[HD_PUSH_DELIVERY_ID_LEN + 1];
	struct pd_sub *s;
	size_t n = 3;

	if (!d->loaded || d->stopping) {
		done(arg, 0, NULL, HD_EUNAVAIL, "push subscriptions are loading; retry shortly");
		return;
	}
	if (start->kind == HD_START_TIME) {
		done(arg, 0, NULL, HD_EINVAL, "'start' by time is not supported for push "
		     "subscriptions yet: use \"latest\", \"oldest\" or {\"offset\": N}");
		return;
	}
	hd_uuid_v4(uuid);
	memcpy(id, "ps_", 3);
	for (const char *p = uuid; *p && n < HD_PUSH_DELIVERY_ID_LEN; p++)
		if (*p != '-')
			id[n++] = *p;
	id[n] = '\0';
	s = sub_new(d, id, c);
	if (!s) {
		done(arg, 0, NULL, HD_ELIMIT, "too many push subscriptions");
		return;
	}
	s->created_ms = now_ms();
	sub_activate(s, true, start);
	sub_answer_after_put(s, 201, done, arg);
}

void hd_push_delivery_delete(struct hd_push_delivery *d, const char *id,
			     hd_push_delivery_done_fn done, void *arg)
{
	struct pd_sub *s = find(d, id, done, arg);
	struct pd_put *p;
	if (!s)
		return;
	hd_map_del(&d->subs, s->id);
	sub_stop(s);
	s->deleted = true;
	answer_all(s->waiting, s, HD_ENOTFOUND);
	s->waiting = NULL;
	p = hd_calloc(1, sizeof(*p));
	p->s = s;
	p->answers = hd_calloc(1, sizeof(*p->answers));
	p->answers->done = done;
	p->answers->arg = arg;
	p->answers->status = 204;
	p->op.kind = HD_RECORD_DELETE;
	snprintf(p->op.rec.kind, sizeof(p->op.rec.kind), HD_PUSH_DELIVERY_RECORD_KIND);
	snprintf(p->op.rec.key, sizeof(p->op.rec.key), "%s", s->id);
	p->op.done = put_done;
	p->op.arg = p;
	s->puts++;
	int rc = hd_hub_record_op(d->hub, &p->op);
	if (rc) {
		p->op.err = rc;
		put_done(&p->op);
	}
}

void hd_push_delivery_pause(struct hd_push_delivery *d, const char *id, bool pause,
			    hd_push_delivery_done_fn done, void *arg)
{
	struct pd_sub *s = find(d, id, done, arg);
	if (!s)
		return;
	s->state = pause ? SUB_PAUSED : SUB_ACTIVE;
	sub_answer_after_put(s, 200, done, arg);
	if (!pause)
		sub_run(s);
}

static void replay_one(const char *key, void *value, void *arg)
{
	struct pd_stream *st = value;
	uint64_t from = *(uint64_t *)arg;
	(void)key;
	if (st->e) {
		event_free(st->e);
		st->e = NULL;
	}
	stream_free_batch(st);
	st->latest = false;
	st->pos = from - 1;
	stream_pump(st);
}

void hd_push_delivery_replay(struct hd_push_delivery *d, const char *id, const char *topic,
			     uint64_t from, hd_push_delivery_done_fn done, void *arg)
{
	struct pd_sub *s = find(d, id, done, arg);
	if (!s)
		return;
	if (s->pattern) {
		struct pd_stream *st = topic ? hd_pattern_get(&s->pt, topic) : NULL;
		if (topic && !st) {
			done(arg, 0, NULL, HD_ENOTFOUND, "the subscription delivers no such topic");
			return;
		}
		if (st)
			replay_one(topic, st, &from);
		else
			hd_map_each(&s->pt.topics, replay_one, &from);
	} else {
		if (topic && strcmp(topic, s->cfg.topic)) {
			done(arg, 0, NULL, HD_ENOTFOUND, "the subscription delivers no such topic");
			return;
		}
		replay_one(s->cfg.topic, s->exact, &from);
	}
	sub_answer_after_put(s, 200, done, arg);
}

static void list_one(const char *key, void *value, void *arg)
{
	struct json_ctx *j = arg;
	(void)key;
	hd_buf_puts(j->b, j->first ? "" : ",");
	j->first = false;
	sub_json(j->b, value, true);
}

void hd_push_delivery_list(struct hd_push_delivery *d, struct hd_buf *b)
{
	struct json_ctx j = {.b = b, .first = true};
	hd_buf_puts(b, "{\"subscriptions\":[");
	hd_map_each(&d->subs, list_one, &j);
	hd_buf_puts(b, "]}");
}

int hd_push_delivery_info(struct hd_push_delivery *d, const char *id, struct hd_buf *b)
{
	struct pd_sub *s = hd_map_get(&d->subs, id);
	if (!s || s->deleted)
		return HD_ENOTFOUND;
	sub_json(b, s, true);
	return 0;
}

int hd_push_delivery_attempts(struct hd_push_delivery *d, const char *id, struct hd_buf *b)
{
	struct pd_sub *s = hd_map_get(&d->subs, id);
	char ts[40];
	if (!s || s->deleted)
		return HD_ENOTFOUND;
	hd_buf_puts(b, "{\"attempts\":[");
	for (size_t i = 0; i < s->nattempts; i++) {
		const struct pd_attempt *a =
			&s->attempts[(s->attempts_head + ATTEMPTS_KEPT - 1 - i) % ATTEMPTS_KEPT];
		hd_clock_format_rfc3339(a->time_ms, ts, sizeof(ts));
		hd_buf_printf(b, "%s{\"time\":\"%s\",\"topic\":", i ? "," : "", ts);
		jstr(b, a->topic);
		hd_buf_printf(b, ",\"offset\":%llu,\"device\":", (unsigned long long)a->offset);
		jstr(b, a->device);
		hd_buf_printf(b, ",\"result\":\"%s\",\"status\":%d,\"reason\":", a->result, a->status);
		jstr(b, a->reason);
		hd_buf_puts(b, "}");
	}
	hd_buf_puts(b, "]}");
	return 0;
}
