/*
 * pump — the delivery pump of one stream (webhook_impl.h): see delivery.h.
 *
 * One stream's loop (pump): while its subscription is active and it has
 * room (its concurrency, and the client's max_inflight in all), it first
 * takes the events whose retry is due (hd_lease_take_due), reading them
 * again from the hub; only when none is due does it read new events after
 * `next` (an ordered subscription only with an empty window). Every event
 * read is filtered: one that does not pass is acked at once. A call's
 * outcome acks (2xx), schedules a retry (nack with not_before),
 * dead-letters (the last attempt failed) or disables the subscription
 * (410), then pumps again. A hub watch on the topic (on_watch) and one
 * timer (the next retry, or "now" when an event was committed) wake the
 * pump.
 *
 * A read answered from memory completes inside hd_hub_read: pump loops
 * instead of recursing (pumping / pump_again). `gen` changes when the
 * position is moved (replay, a recreated topic): reads and dead-letters
 * started before ignore their results.
 * Layer: webhook. Callers: sub.c (activate, kill), lifecycle.c (stop),
 * ops.c (reposition), kids.c (a child's events through on_watch, passed
 * on by the parent's consume/pattern.h expansion).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "consume/deadletter.h"
#include "consume/due.h"
#include "webhook/retry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_SPAN 1000          /* offsets one read of due retries covers */
#define AHEAD_MAX 64            /* events an ordered subscription reads at once */

static void on_timer(uv_timer_t *t);
static void wake_kids(struct hd_webhook_sub *s);

/* ---- small helpers ---------------------------------------------------- */

static double rnd01(struct hd_webhooks *w)
{
	/* xorshift64*: jitter only, not secrets. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (double)((w->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* The subscription the user sees: a child's parent, else s itself. */
static struct hd_webhook_sub *owner(struct hd_webhook_sub *s)
{
	return s->parent ? s->parent : s;
}

static bool can_run(const struct hd_webhook_sub *s)
{
	const struct hd_webhook_sub *o = s->parent ? s->parent : s;
	return o->state == HD_WEBHOOK_ACTIVE && !s->deleted && !o->deleted && !s->w->stopping &&
	       !s->pattern && !s->st.seeking && hd_webhook_own_held(s);
}

/* Counts calls and dead letters in flight for the whole subscription. */
static void busy_add(struct hd_webhook_sub *s, int d)
{
	if (s->parent)
		s->parent->kid_busy = (size_t)((long)s->parent->kid_busy + d);
}

/* ---- calls in flight -------------------------------------------------- */

static void call_free(struct hd_webhook_call *c)
{
	hd_ce_http_fini(&c->enc);
	hd_rcbuf_unref(c->json);
	free(c);
}

static void call_unlink(struct hd_webhook_call *c)
{
	struct hd_webhook_sub *s = c->s;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->st.calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->st.ncalls--;
	busy_add(s, -1);
	hd_metrics_gauge_add(HD_M_webhook_inflight, -1);
}

/* Abandons every call in flight; their events go back to READY. */
void hd_webhook_pump_cancel(struct hd_webhook_sub *s, bool give_back)
{
	while (s->st.calls) {
		struct hd_webhook_call *c = s->st.calls;
		hd_http_client_cancel(s->w->http, &c->http);
		call_unlink(c);
		if (give_back)
			hd_lease_nack(&s->st.lease, c->offset, 0);
		call_free(c);
	}
}

/* ---- dead letters ----------------------------------------------------- */

/* tag: the subscription's gen when the dead letter was made. */
static void dead_done(void *arg, uint64_t offset, uint64_t gen, int err)
{
	struct hd_webhook_sub *s = arg, *o = owner(s);
	s->st.ndead--;
	busy_add(s, -1);
	if (err == 0) {
		hd_metrics_inc(HD_M_webhook_dead_letters_total);
		s->st.dead_lettered++;
		o->streak++;
		if (gen == s->st.gen)
			hd_lease_ack(&s->st.lease, offset);
		if (o->cfg.pause_after && o->streak >= o->cfg.pause_after &&
		    o->state == HD_WEBHOOK_ACTIVE) {
			o->state = HD_WEBHOOK_PAUSED;
			snprintf(o->reason, sizeof(o->reason),
				 "paused after %" PRIu32 " consecutive dead-lettered events",
				 o->streak);
			hd_log_warn("webhook_paused sub=%s topic=%s reason=\"%s\"", o->id,
				    o->cfg.topic, o->reason);
		}
		if (o != s)
			hd_webhook_record_changed(o);
		hd_webhook_record_changed(s);
	} else {
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_dead_letter_failed sub=%s topic=%s offset=%" PRIu64
				    " err=%d",
				    s->id, s->cfg.topic, offset, err);
		/* Tried again (with one more delivery) after the last delay. */
		if (gen == s->st.gen) {
			const struct hd_sub_config *c = &s->cfg;
			hd_lease_nack(&s->st.lease, offset,
				      hd_now_ms() + hd_retry_delay_ms(c->schedule, c->nschedule,
								      c->max_attempts, 0, -1,
								      s->w->opts.time_scale, 0.5));
		}
	}
	if (s->deleted) {
		hd_webhook_sub_release(s); /* may free s */
	} else {
		hd_webhook_pump(s);
		wake_kids(s);
	}
}

/* Publishes the event at offset (json) to {topic}.dlq; acked once stored. */
static void dead_letter(struct hd_webhook_sub *s, uint64_t offset, const struct hd_rcbuf *json,
			uint32_t attempts)
{
	struct hd_buf extra;
	char id[HD_SUB_ID_LEN + HD_EPOCH_LEN + 48], src[HD_SUB_ID_LEN + 32];
	int64_t now = hd_now_ms();

	snprintf(id, sizeof(id), "%s/%s/%" PRIu64, s->id, s->st.epoch, offset);
	snprintf(src, sizeof(src), "/herald/webhooks/%s", s->id);
	hd_buf_init(&extra, 8192);
	hd_buf_printf(&extra, "\"subscription\":\"%s\",\"url\":\"", s->id);
	hd_buf_json_escape(&extra, s->cfg.url, strlen(s->cfg.url));
	hd_buf_printf(&extra, "\",\"last_status\":%d,\"last_error\":\"", s->st.last_status);
	hd_buf_json_escape(&extra, s->st.last_error, strlen(s->st.last_error));
	hd_buf_putc(&extra, '"');
	s->st.ndead++;
	busy_add(s, 1);
	hd_deadletter_publish(s->w->hub,
			      &(struct hd_deadletter){
				      .id = id,
				      .source = src,
				      .type = HD_WEBHOOK_DLQ_TYPE,
				      .reason = "max_attempts",
				      .attempts = attempts,
				      .topic = s->cfg.topic,
				      .offset = offset,
				      .extra = extra.data,
				      .event = json->data,
				      .event_len = json->len,
				      .now_ms = now,
			      },
			      s->st.gen, dead_done, s);
	hd_buf_fini(&extra);
}

/* ---- one delivery ----------------------------------------------------- */

static void outcome(struct hd_webhook_sub *s, struct hd_webhook_call *c, int status, int err,
		    const char *error, int64_t retry_after_ms, uint64_t latency_us)
{
	struct hd_attempt at = {
		.time_ms = c->started_ms,
		.offset = c->offset,
		.attempt = c->attempt,
		.status = status,
		.latency_us = latency_us,
	};
	int64_t now = hd_now_ms();
	enum hd_retry_outcome o = err ? HD_RETRY_FAILED : hd_retry_classify(status);
	struct hd_webhook_sub *own = owner(s);

	snprintf(at.error, sizeof(at.error), "%s", err ? error : "");
	if (s->parent)
		snprintf(at.topic, sizeof(at.topic), "%s", s->cfg.topic);
	hd_metrics_inc(HD_M_webhook_attempts_total);
	if (o == HD_RETRY_SUCCESS) {
		at.result = HD_ATTEMPT_SUCCESS;
		hd_metrics_inc(HD_M_webhook_deliveries_total);
		hd_lease_ack(&s->st.lease, c->offset);
		s->st.delivered++;
		s->streak = 0;
		if (own->streak) {
			own->streak = 0;
			hd_webhook_record_changed(own);
		}
		s->st.last_success_ms = now;
	} else {
		hd_metrics_inc(HD_M_webhook_attempt_failures_total);
		s->st.failed_attempts++;
		s->st.last_failure_ms = now;
		s->st.last_status = status;
		if (err)
			snprintf(s->st.last_error, sizeof(s->st.last_error), "%s", error);
		else
			snprintf(s->st.last_error, sizeof(s->st.last_error), "HTTP status %d",
				 status);
		if (o == HD_RETRY_GONE) {
			at.result = HD_ATTEMPT_DISABLED;
			hd_lease_nack(&s->st.lease, c->offset, 0);
			if (own->state != HD_WEBHOOK_DISABLED) {
				char t[40];
				hd_clock_format_rfc3339(now, t, sizeof(t));
				own->state = HD_WEBHOOK_DISABLED;
				snprintf(own->reason, sizeof(own->reason),
					 "the receiver answered 410 Gone at %s (topic %.100s, "
					 "offset %" PRIu64 "); resume to re-enable",
					 t, s->cfg.topic, c->offset);
				hd_log_warn("webhook_disabled sub=%s topic=%s reason=\"%s\"", s->id,
					    s->cfg.topic, own->reason);
				if (own != s)
					hd_webhook_record_changed(own);
			}
		} else if (c->attempt >= s->cfg.max_attempts) {
			at.result = HD_ATTEMPT_DEAD_LETTER;
			dead_letter(s, c->offset, c->json, c->attempt);
		} else {
			const struct hd_sub_config *cf = &s->cfg;
			int64_t delay = hd_retry_delay_ms(cf->schedule, cf->nschedule, c->attempt,
							  status, err ? -1 : retry_after_ms,
							  s->w->opts.time_scale, rnd01(s->w));
			at.result = HD_ATTEMPT_RETRY;
			at.next_ms = now + delay;
			hd_lease_nack(&s->st.lease, c->offset, now + delay);
		}
	}
	hd_attempts_add(&own->attempts, &at);
	hd_webhook_record_changed(s);
}

static void wake_global(struct hd_webhooks *w);

static void on_call_done(struct hd_http_call *hc)
{
	struct hd_webhook_call *c = hc->arg;
	struct hd_webhook_sub *s = c->s;
	call_unlink(c);
	outcome(s, c, hc->status, hc->err, hc->error[0] ? hc->error : hd_err_message(hc->err),
		hc->retry_after_ms, hc->latency_us);
	call_free(c);
	wake_global(s->w);
	if (s->deleted) {
		hd_webhook_sub_release(s); /* may free s */
	} else {
		hd_webhook_pump(s);
		wake_kids(s);
	}
}

/* Sends the event (offset, json) as attempt number `attempt`. */
static void start_call(struct hd_webhook_sub *s, uint64_t offset, struct hd_rcbuf *json,
		       uint32_t attempt, const char *epoch)
{
	struct hd_webhook_call *c = hd_calloc(1, sizeof(*c));
	struct hd_error err = {0};
	struct hd_whsec keys[HD_SIGNATURE_SECRETS_MAX];
	struct hd_webhook_sub *own = owner(s);
	int64_t now = hd_now_ms();
	size_t n = 0;

	c->s = s;
	c->offset = offset;
	c->attempt = attempt;
	c->started_ms = now;
	c->json = hd_rcbuf_ref(json);
	c->prev = NULL;
	c->next = s->st.calls;
	if (s->st.calls)
		s->st.calls->prev = c;
	s->st.calls = c;
	s->st.ncalls++;
	busy_add(s, 1);
	hd_metrics_gauge_add(HD_M_webhook_inflight, 1);

	int rc = hd_ce_http_encode(&c->enc, s->cfg.mode, json->data, json->len, &err);
	if (rc == 0) {
		hd_webhook_sub_prune_secrets(own, now);
		for (size_t i = 0; i < own->nsecrets; i++)
			keys[i] = own->secrets[i].key;
		/* The id names (subscription, topic epoch, offset): the same on
		 * every retry, after restarts and on replays. */
		snprintf(c->id, sizeof(c->id), "msg_%s_%s_%" PRIu64,
			 s->id + strlen(HD_SUB_ID_PREFIX), epoch, offset);
		snprintf(c->ts, sizeof(c->ts), "%" PRId64, now / 1000);
		snprintf(c->attempt_s, sizeof(c->attempt_s), "%" PRIu32, attempt);
		snprintf(c->offset_s, sizeof(c->offset_s), "%" PRIu64, offset);
		if (hd_signature_header(keys, own->nsecrets, c->id, now / 1000, c->enc.body,
					c->enc.body_len, c->sig, sizeof(c->sig)) < 0) {
			rc = HD_EINTERNAL;
			snprintf(err.msg, sizeof(err.msg), "the delivery could not be signed");
		}
	}
	if (rc == 0) {
		for (size_t i = 0; i < c->enc.nheaders; i++)
			c->headers[n++] = c->enc.headers[i];
		c->headers[n++] = (struct hd_http_header){"webhook-id", c->id};
		c->headers[n++] = (struct hd_http_header){"webhook-timestamp", c->ts};
		c->headers[n++] = (struct hd_http_header){"webhook-signature", c->sig};
		c->headers[n++] = (struct hd_http_header){"herald-topic", s->cfg.topic};
		c->headers[n++] = (struct hd_http_header){"herald-offset", c->offset_s};
		c->headers[n++] = (struct hd_http_header){"herald-attempt", c->attempt_s};
		c->headers[n++] = (struct hd_http_header){"herald-node", hd_hub_node(s->w->hub)};
		c->http.url = s->cfg.url;
		c->http.method = "POST";
		c->http.headers = c->headers;
		c->http.nheaders = n;
		c->http.body = c->enc.body;
		c->http.body_len = c->enc.body_len;
		c->http.done = on_call_done;
		c->http.arg = c;
		rc = hd_http_client_send(s->w->http, &c->http);
		if (rc)
			snprintf(err.msg, sizeof(err.msg), "the request could not be started: %s",
				 hd_err_message(rc));
	}
	if (rc) {
		/* A failed attempt like any other (it counts, and is retried). */
		call_unlink(c);
		outcome(s, c, 0, rc, err.msg, -1, 0);
		call_free(c);
	}
}

/* ---- reading the topic ------------------------------------------------ */

struct rd {
	struct hd_read r;
	struct hd_webhook_sub *s;
	uint64_t gen;
	struct hd_lease_grant *grants; /* due retries, or NULL for new events */
	size_t ngrants;
	size_t room;                  /* calls that may start */
};

/* The topic was deleted and made again: start over at its beginning. */
static void topic_recreated(struct hd_webhook_sub *s, const char *epoch)
{
	hd_log_warn("webhook_topic_recreated sub=%s topic=%s old_epoch=%s epoch=%s", s->id,
		    s->cfg.topic, s->st.epoch, epoch);
	hd_webhook_pump_cancel(s, false);
	hd_lease_fini(&s->st.lease);
	hd_lease_init(&s->st.lease, 0, HD_WEBHOOK_WINDOW);
	snprintf(s->st.epoch, sizeof(s->st.epoch), "%s", epoch);
	s->st.gen++;
	hd_webhook_record_changed(s);
}

/* Whether the event passes the filter; if not it is acked. */
static bool passes(struct hd_webhook_sub *s, const struct hd_stored_event *ev)
{
	if (hd_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len))
		return true;
	hd_lease_ack(&s->st.lease, ev->offset);
	return false;
}

static void read_due(struct hd_webhook_sub *s, struct rd *q)
{
	struct hd_read *r = &q->r;
	size_t j = 0;
	bool acked = false;
	for (size_t i = 0; i < q->ngrants; i++) {
		uint64_t o = q->grants[i].offset;
		while (j < r->n && r->events[j].offset < o)
			j++;
		if (j < r->n && r->events[j].offset == o) {
			if (!can_run(s)) {
				hd_lease_nack(&s->st.lease, o, 0);
			} else if (passes(s, &r->events[j])) {
				start_call(s, o, r->events[j].json, q->grants[i].deliveries,
					   r->epoch);
			} else {
				acked = true;
			}
		} else if (r->truncated || j < r->n || o <= r->last) {
			hd_lease_ack(&s->st.lease, o); /* gone: retention or TTL */
			acked = true;
		} else {
			hd_lease_nack(&s->st.lease, o, 0);
		}
	}
	if (acked)
		hd_webhook_record_changed(s);
}

/* Hands out new events from r->events[from ..] (at most q_room calls) and
 * returns the index where it stopped (r->n when every event was taken). */
static size_t read_new(struct hd_webhook_sub *s, const struct hd_read *r, size_t from,
		       size_t q_room)
{
	size_t started = 0, i;
	bool acked = false;
	for (i = from; i < r->n; i++) {
		const struct hd_stored_event *ev = &r->events[i];
		if (ev->offset < s->st.lease.next)
			continue; /* handed out already (a read-ahead overlapping) */
		bool match = hd_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len);
		if (match && (started >= q_room || !can_run(s)))
			break;
		if (ev->offset > s->st.lease.next)
			hd_lease_skip(&s->st.lease, ev->offset - 1);
		if (hd_lease_add(&s->st.lease, ev->offset, INT64_MAX) != 0)
			break;
		if (match) {
			start_call(s, ev->offset, ev->json, 1, r->epoch);
			started++;
		} else {
			hd_lease_ack(&s->st.lease, ev->offset);
			acked = true;
		}
	}
	/* Events that do not exist any more (expired, removed) are passed. */
	if (i == r->n && r->last >= s->st.lease.next && (r->n == 0 || r->n < r->limit)) {
		if (hd_lease_skip(&s->st.lease, r->last) == 0)
			acked = true;
	}
	if (acked)
		hd_webhook_record_changed(s);
	return i;
}

void hd_webhook_pump_drop_ahead(struct hd_webhook_sub *s)
{
	if (!s->st.ahead)
		return;
	struct rd *q = s->st.ahead->arg;
	hd_engine_read_fini(s->st.ahead);
	free(q);
	s->st.ahead = NULL;
}

static void read_done(struct hd_read *r)
{
	struct rd *q = r->arg;
	struct hd_webhook_sub *s = q->s;

	s->st.reading = false;
	s->refs--;
	if (r->err) {
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->st.lease, q->grants[i].offset, hd_now_ms() + 1000);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_read_failed sub=%s topic=%s err=%d", s->id,
				    s->cfg.topic, r->err);
		goto out;
	}
	if (s->deleted || s->w->stopping)
		goto out;
	if (q->gen != s->st.gen) {
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->st.lease, q->grants[i].offset, 0);
		goto out;
	}
	if (r->exists && r->epoch[0]) {
		if (s->st.epoch[0] && strcmp(s->st.epoch, r->epoch) != 0) {
			topic_recreated(s, r->epoch);
			goto out;
		}
		if (!s->st.epoch[0]) {
			snprintf(s->st.epoch, sizeof(s->st.epoch), "%s", r->epoch);
			hd_webhook_record_changed(s);
		}
	}
	if (r->last > s->st.topic_last)
		s->st.topic_last = r->last;
	s->st.last_known = true;
	if (q->grants) {
		read_due(s, q);
	} else {
		size_t stop = read_new(s, r, 0, q->room);
		if (s->cfg.ordered && stop < r->n && !s->st.ahead) {
			/* Kept: the next events come from here, not a read each. */
			s->st.ahead = r;
			s->st.ahead_pos = stop;
			s->st.ahead_gen = s->st.gen;
			q = NULL;
		}
	}
out:
	if (q) {
		free(q->grants);
		hd_engine_read_fini(r);
		free(q);
	}
	if (s->deleted)
		hd_webhook_sub_release(s);
	else
		hd_webhook_pump(s);
}

static size_t room_of(struct hd_webhook_sub *s)
{
	size_t cap = s->cfg.ordered ? 1 : s->cfg.concurrency;
	size_t busy = s->st.ncalls + s->st.ndead;
	size_t room = busy >= cap ? 0 : cap - busy;
	/* Unordered: the concurrency is the whole pattern subscription's. */
	if (s->parent && !s->cfg.ordered) {
		size_t all = s->parent->kid_busy;
		size_t sroom = all >= cap ? 0 : cap - all;
		if (sroom < room) {
			room = sroom;
			if (room == 0 && !s->st.sub_wait) {
				s->st.sub_wait = true;
				s->parent->kid_waiters++;
			}
		}
	}
	size_t in = hd_http_client_inflight(s->w->http);
	size_t global = in >= s->w->opts.http.max_inflight ? 0 : s->w->opts.http.max_inflight - in;
	if (global < room) {
		room = global;
		if (!s->st.global_wait && room == 0) {
			s->st.global_wait = true;
			s->w->global_waiters++;
		}
	}
	return room;
}

/* Starts one read (due retries first, else new events). */
static void pump_once(struct hd_webhook_sub *s)
{
	struct hd_lease_grant *grants;
	size_t room, n, keep;
	int64_t now;

	if (!can_run(s) || s->st.reading)
		return;
	room = room_of(s);
	if (room == 0)
		return;
	now = hd_now_ms();
	grants = hd_calloc(room, sizeof(*grants));
	n = hd_lease_take_due(&s->st.lease, now, INT64_MAX, grants, room);
	keep = n;
	for (size_t i = 1; i < n; i++) {
		if (grants[i].offset - grants[0].offset >= READ_SPAN) {
			keep = i;
			break;
		}
	}
	for (size_t i = keep; i < n; i++) {
		/* Not handed out after all: undo the count. */
		hd_lease_nack(&s->st.lease, grants[i].offset, 0);
		s->st.lease.redeliveries -= grants[i].deliveries > 1;
		s->st.lease.slots[grants[i].offset & (s->st.lease.nslots - 1)].deliveries--;
	}
	n = keep;
	struct rd *q = hd_calloc(1, sizeof(*q));
	q->s = s;
	q->gen = s->st.gen;
	q->room = room;
	q->r.topic = s->cfg.topic;
	q->r.done = read_done;
	q->r.arg = q;
	if (n > 0) {
		q->grants = grants;
		q->ngrants = n;
		q->r.after = grants[0].offset - 1;
		q->r.limit = (uint32_t)(grants[n - 1].offset - grants[0].offset + 1);
	} else {
		free(grants);
		size_t wroom = HD_WEBHOOK_WINDOW - hd_lease_window(&s->st.lease);
		if ((s->cfg.ordered && hd_lease_window(&s->st.lease) > 0) || wroom == 0 ||
		    (s->st.last_known && s->st.topic_last < s->st.lease.next)) {
			free(q);
			return;
		}
		if (s->st.ahead &&
		    (s->st.ahead_gen != s->st.gen || s->st.ahead_pos >= s->st.ahead->n))
			hd_webhook_pump_drop_ahead(s);
		if (s->st.ahead) {
			free(q);
			s->st.ahead_pos = read_new(s, s->st.ahead, s->st.ahead_pos, room);
			if (s->st.ahead_pos >= s->st.ahead->n)
				hd_webhook_pump_drop_ahead(s);
			return;
		}
		q->r.after = s->st.lease.next - 1;
		/* Read past the room when filtering, so that events the filter
		 * drops do not cost one read each; an ordered subscription reads
		 * ahead and hands the rest out from memory (s->st.ahead). */
		size_t want = hd_filter_empty(&s->cfg.filter) ? room : 100;
		if (s->cfg.ordered && want < AHEAD_MAX)
			want = AHEAD_MAX;
		q->r.limit = (uint32_t)(want < wroom ? want : wroom);
	}
	s->st.reading = true;
	s->refs++;
	int rc = hd_hub_read(s->w->hub, &q->r);
	if (rc) {
		s->st.reading = false;
		s->refs--;
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->st.lease, q->grants[i].offset, now + 1000);
		free(q->grants);
		free(q);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_read_failed sub=%s topic=%s err=%d", s->id,
				    s->cfg.topic, rc);
	}
}

/* Arms the timer for the next due retry (when the pump is idle). */
static void arm(struct hd_webhook_sub *s)
{
	if (!can_run(s) || s->timer_closed || uv_is_closing((uv_handle_t *)&s->timer))
		return;
	if (s->st.reading || room_of(s) == 0)
		return; /* a read or a call ending pumps again */
	hd_due_arm(&s->timer, on_timer, hd_lease_next_due(&s->st.lease));
}

void hd_webhook_pump(struct hd_webhook_sub *s)
{
	if (s->st.pumping) {
		s->st.pump_again = true;
		return;
	}
	s->st.pumping = true;
	do {
		s->st.pump_again = false;
		pump_once(s);
	} while (s->st.pump_again);
	s->st.pumping = false;
	arm(s);
}

static void on_timer(uv_timer_t *t)
{
	hd_webhook_pump(t->data);
}

/* Pumps s on the next loop turn, if it may run. */
void hd_webhook_pump_soon(struct hd_webhook_sub *s)
{
	if (can_run(s) && !s->timer_closed)
		uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev)
{
	struct hd_webhook_sub *s = watch->arg;
	(void)topic;
	if (ev->offset > s->st.topic_last)
		s->st.topic_last = ev->offset;
	/* On the next loop turn, when the whole committed batch is readable. */
	if (ev->offset >= s->st.lease.next)
		hd_webhook_pump_soon(s);
}

void hd_webhook_pump_watch_init(struct hd_webhook_sub *s)
{
	s->watch.fire = on_watch;
	s->watch.arg = s;
}

static void pump_waiter(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	(void)key;
	if (s->pattern)
		hd_map_each(&s->pt.topics, pump_waiter, arg);
	if (s->st.global_wait) {
		s->st.global_wait = false;
		s->w->global_waiters--;
		hd_webhook_pump_soon(s);
	}
}

/* A call ended: subscriptions held back by max_inflight may go on. */
static void wake_global(struct hd_webhooks *w)
{
	if (w->global_waiters > 0 && !w->stopping)
		hd_map_each(&w->subs, pump_waiter, NULL);
}

static void kid_waiter(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	(void)key;
	(void)arg;
	if (s->st.sub_wait) {
		s->st.sub_wait = false;
		s->parent->kid_waiters--;
		hd_webhook_pump_soon(s);
	}
}

/* A child's call or dead letter ended: siblings held back by the whole
 * subscription's concurrency may go on. */
static void wake_kids(struct hd_webhook_sub *s)
{
	struct hd_webhook_sub *p = s->parent;
	if (p && p->kid_waiters > 0 && !p->deleted && !s->w->stopping)
		hd_map_each(&p->pt.topics, kid_waiter, NULL);
}
