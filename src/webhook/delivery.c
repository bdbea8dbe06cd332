/*
 * delivery — see delivery.h.
 *
 * One subscription's loop (pump): while it is active and has room (its
 * concurrency, and the client's max_inflight in all), it first takes the
 * events whose retry is due (hd_lease_take_due), reading them again from
 * the hub; only when none is due does it read new events after `next`
 * (an ordered subscription only with an empty window). Every event read
 * is filtered: one that does not pass is acked at once. A call's outcome
 * acks (2xx), schedules a retry (nack with not_before), dead-letters (the
 * last attempt failed) or disables the subscription (410), then pumps
 * again. A hub watch on the topic and one timer (the next retry, or "now"
 * when an event was committed) wake the pump.
 *
 * A read answered from memory completes inside hd_hub_read: pump loops
 * instead of recursing (pumping / pump_again). `gen` changes when the
 * position is moved (replay, a recreated topic): reads and dead-letters
 * started before ignore their results.
 */
#include "webhook/delivery.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/lease.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "hub/dlq.h"
#include "hub/topic_pattern.h"
#include "proto/deadletter.h"
#include "webhook/attempts.h"
#include "webhook/ce_http.h"
#include "webhook/retry.h"
#include "webhook/signature.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define REPLY_MAX (1u << 20)
#define RECORD_MAX (HD_RECORD_VALUE_MAX)
#define READ_SPAN 1000          /* offsets one read of due retries covers */
#define EXTRA_HEADERS 8
#define REASON_MAX 256
#define LAST_ERROR_MAX 160
#define KEY_MAX (HD_SUB_ID_LEN + 1 + HD_TOPIC_NAME_MAX)
#define LIST_PAGE 1000          /* topics or records one list request returns */
#define TOPICS_SHOWN 100        /* topics of a pattern subscription in its JSON */
#define SKIPPED_SHOWN 10        /* skipped topics named in its JSON */
#define SKIPPED_SET_MAX 10000   /* skipped topics remembered (counted once) */
#define FLUSH_MS 10             /* a changed record is written this much later */
#define AHEAD_MAX 64            /* events an ordered subscription reads at once */

enum sub_state { ACTIVE, PAUSED, DISABLED };
static const char *state_names[] = {"active", "paused", "disabled"};

struct secret {
	char text[HD_WHSEC_TEXT_MAX];
	struct hd_whsec key;
	int64_t until_ms;             /* 0: the primary; else signs until then */
};

struct sub;
struct multi;

struct call {
	struct hd_http_call http;
	struct sub *s;
	uint64_t offset;
	uint32_t attempt;
	int64_t started_ms;
	struct hd_rcbuf *json;        /* the stored event (a reference) */
	struct hd_ce_http enc;
	struct hd_http_header headers[HD_CE_HTTP_HEADERS_MAX + EXTRA_HEADERS];
	char id[128], ts[24], sig[HD_SIGNATURE_HEADER_MAX], attempt_s[16], offset_s[24];
	struct call *prev, *next;
};

struct sub {
	struct hd_webhooks *w;
	char id[HD_SUB_ID_LEN + 1];
	struct hd_sub_config cfg;
	struct secret secrets[HD_SIGNATURE_SECRETS_MAX]; /* newest first */
	size_t nsecrets;
	enum sub_state state;
	char reason[REASON_MAX];
	int64_t created_ms;
	struct hd_lease lease;
	char epoch[HD_EPOCH_LEN + 1];
	uint64_t topic_last;          /* the topic's last offset as far as known */
	bool last_known;
	uint64_t gen;
	/* Counters (durable). */
	uint64_t delivered, failed_attempts, dead_lettered;
	uint32_t streak;              /* dead-lettered in a row */
	int64_t last_success_ms, last_failure_ms;
	int last_status;
	char last_error[LAST_ERROR_MAX];
	struct hd_attempts attempts;
	/* Work in flight. */
	struct call *calls;
	size_t ncalls;
	size_t ndead;                 /* dead-letter publishes */
	bool reading;
	bool pumping, pump_again;
	bool global_wait;             /* stopped by the client's max_inflight */
	uv_timer_t timer;
	bool timer_closed;
	struct hd_watch watch;
	bool watching;
	int puts;                     /* record writes in flight */
	bool dirty;                   /* changed since the last write was issued */
	bool queued;                  /* on w->flushq (holds a ref) */
	/* Ordered: the rest of the last read of new events, handed out from
	 * memory one at a time instead of one hub read per event. */
	struct hd_read *ahead;        /* owned (its struct rd); NULL = none */
	size_t ahead_pos;             /* the next event of ahead->events */
	uint64_t ahead_gen;           /* gen when it was read: stale once gen moves */
	struct sub *fnext;            /* next on w->flushq */
	bool deleted;
	int refs;                     /* requests in flight that point here */
	long long warn_ms;
	struct sub *znext;            /* on w->zombies once deleted */
	/* Topic patterns. A pattern subscription (pattern) is a parent: it
	 * holds the config (cfg.topic the pattern), the secrets, the state,
	 * the streak and the attempts log, watches the prefix and delivers
	 * nothing itself. Each matching topic is a child (parent set): the
	 * parent's config with cfg.topic the topic, the parent's id, its own
	 * position and durable record (key "<id>/<topic>"). */
	char key[KEY_MAX + 1];        /* the record key: id, or id/topic */
	bool pattern;
	struct sub *parent;
	struct hd_map kids;           /* parent: topic → child, at most pattern_topics_max */
	size_t kid_busy;              /* parent: calls and dead letters of every child */
	size_t kid_waiters;           /* parent: children held by kid_busy */
	bool sub_wait;                /* child: held by the parent's concurrency */
	int listing;                  /* parent: topic lists in flight */
	bool listed;                  /* parent: the first full list is done */
	struct hd_sub_start start;    /* parent: how children of the creation list start */
	bool seeking;                 /* child: waits for its start time to be found */
	bool seen;                    /* child: its topic exists (the list found it, or an event) */
	bool fresh;                   /* parent: created now (not loaded): start applies */
	char prefix[HD_TOPIC_NAME_MAX + 1]; /* parent: the prefix watched */
	struct hd_map skipped_set;    /* parent: topics over the cap (names) */
	uint64_t skipped;
	char skipped_names[SKIPPED_SHOWN][HD_TOPIC_NAME_MAX + 1];
	size_t nskipped_names;
};

struct hd_webhooks {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_webhook_opts opts;
	struct hd_http_client *http;
	struct hd_map subs;           /* id → struct sub */
	struct sub *zombies;          /* deleted, waiting for their requests */
	uv_timer_t flush;             /* writes the records of flushq FLUSH_MS after a change */
	struct sub *flushq;           /* changed subscriptions waiting for their write */
	bool loaded, stopping;
	size_t global_waiters;
	uint64_t rng;
	struct hd_record_op load;
	struct hd_record_op load_kids;
	char load_after[HD_RECORD_KEY_MAX + 1];
	void (*on_loaded)(void *arg);
	void *loaded_arg;
};

static void pump(struct sub *s);
static void changed(struct sub *s);
static void wake_kids(struct sub *s);
static void sub_release(struct sub *s);
static void sub_json(struct hd_buf *b, const struct sub *s, const char *secret);

/* ---- small helpers ---------------------------------------------------- */

static double rnd01(struct hd_webhooks *w)
{
	/* xorshift64*: jitter only, not secrets. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (double)((w->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void reply(struct hd_webhook_reply *r, int status)
{
	r->status = status;
	r->err = 0;
	r->done(r);
}

static void reply_err(struct hd_webhook_reply *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_err(struct hd_webhook_reply *r, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	r->err = err;
	r->done(r);
}

/* The subscription the user sees: a child's parent, else s itself. */
static struct sub *owner(struct sub *s)
{
	return s->parent ? s->parent : s;
}

static bool can_run(const struct sub *s)
{
	const struct sub *o = s->parent ? s->parent : s;
	return o->state == ACTIVE && !s->deleted && !o->deleted && !s->w->stopping && !s->pattern &&
	       !s->seeking;
}

/* Counts calls and dead letters in flight for the whole subscription. */
static void busy_add(struct sub *s, int d)
{
	if (s->parent)
		s->parent->kid_busy = (size_t)((long)s->parent->kid_busy + d);
}

static void time_json(struct hd_buf *b, const char *name, int64_t ms)
{
	char t[40];
	if (!ms) {
		hd_buf_printf(b, ",\"%s\":null", name);
		return;
	}
	hd_format_rfc3339(ms, t, sizeof(t));
	hd_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

/* Drops secrets past their grace and keeps at most HD_SIGNATURE_SECRETS_MAX. */
static void prune_secrets(struct sub *s, int64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < s->nsecrets; i++) {
		if (i == 0 || s->secrets[i].until_ms > now)
			s->secrets[k++] = s->secrets[i];
	}
	s->nsecrets = k;
}

/* ---- subscriptions in memory ------------------------------------------ */

static void on_timer(uv_timer_t *t);
static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev);

static struct sub *sub_new(struct hd_webhooks *w, const char *id, const struct hd_sub_config *c,
			   uint64_t floor)
{
	if (w->subs.count >= w->opts.max_subscriptions)
		return NULL;
	struct sub *s = hd_calloc(1, sizeof(*s));
	s->w = w;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->key, sizeof(s->key), "%s", id);
	s->cfg = *c;
	s->pattern = hd_topic_pattern_is(c->topic);
	if (s->pattern) {
		hd_map_init(&s->kids, w->opts.pattern_topics_max);
		hd_map_init(&s->skipped_set, SKIPPED_SET_MAX);
	}
	s->created_ms = hd_now_ms();
	hd_lease_init(&s->lease, floor, HD_WEBHOOK_WINDOW);
	hd_attempts_init(&s->attempts);
	s->watch.fire = on_watch;
	s->watch.arg = s;
	if (hd_map_put(&w->subs, s->id, s) != 0) {
		hd_lease_fini(&s->lease);
		if (s->pattern) {
			hd_map_fini(&s->kids);
			hd_map_fini(&s->skipped_set);
		}
		free(s);
		return NULL;
	}
	uv_timer_init(w->loop, &s->timer);
	s->timer.data = s;
	hd_metrics_gauge_add(HD_M_webhook_subscriptions, 1);
	return s;
}

static void free_kid(const char *key, void *value, void *arg);

static void drop_ahead(struct sub *s);

static void sub_free(struct sub *s)
{
	drop_ahead(s);
	if (s->pattern) {
		hd_map_each(&s->kids, free_kid, NULL);
		hd_map_fini(&s->kids);
		hd_map_fini(&s->skipped_set);
	}
	hd_lease_fini(&s->lease);
	hd_attempts_fini(&s->attempts);
	free(s);
}

static void timer_closed(uv_handle_t *h)
{
	struct sub *s = h->data;
	s->timer_closed = true;
	sub_release(s);
}

/* Frees a deleted subscription once nothing points at it. */
static void sub_release(struct sub *s)
{
	if (!s->deleted || s->refs > 0 || s->ncalls > 0 || s->ndead > 0 || !s->timer_closed)
		return;
	struct sub **pp = &s->w->zombies;
	while (*pp && *pp != s)
		pp = &(*pp)->znext;
	if (*pp)
		*pp = s->znext;
	struct sub *p = s->parent;
	sub_free(s);
	if (p) {
		p->refs--;
		sub_release(p);
	}
}

static void call_free(struct call *c)
{
	hd_ce_http_fini(&c->enc);
	hd_rcbuf_unref(c->json);
	free(c);
}

static void call_unlink(struct call *c)
{
	struct sub *s = c->s;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->ncalls--;
	busy_add(s, -1);
	hd_metrics_gauge_add(HD_M_webhook_inflight, -1);
}

/* Abandons every call in flight; their events go back to READY. */
static void cancel_calls(struct sub *s, bool give_back)
{
	while (s->calls) {
		struct call *c = s->calls;
		hd_http_client_cancel(s->w->http, &c->http);
		call_unlink(c);
		if (give_back)
			hd_lease_nack(&s->lease, c->offset, 0);
		call_free(c);
	}
}

/* ---- durable record --------------------------------------------------- */

struct put {
	struct hd_record_op op;
	struct sub *s;
	char *value;
	struct hd_webhook_reply *r;   /* answered once durable, or NULL */
	int status;
};

/* Issues a record op; one the hub refuses at once completes at once, with
 * that error, so op->done runs exactly once either way. */
static void submit_record(struct hd_webhooks *w, struct hd_record_op *op)
{
	int rc = hd_hub_record_op(w->hub, op);
	if (rc) {
		op->err = rc;
		op->done(op);
	}
}

static char *record_json(const struct sub *s)
{
	struct hd_buf b;
	size_t cap = HD_LEASE_ENCODED_MAX(HD_WEBHOOK_WINDOW);
	char *acked = hd_malloc(cap);
	if (hd_lease_encode(&s->lease, acked, cap) < 0)
		acked[0] = '\0';
	hd_buf_init(&b, RECORD_MAX);
	hd_buf_puts(&b, "{\"v\":1,\"config\":{");
	hd_sub_config_json(&b, &s->cfg);
	hd_buf_printf(&b, "},\"created\":%" PRId64 ",\"state\":\"%s\",\"reason\":\"", s->created_ms,
		      state_names[s->state]);
	hd_buf_json_escape(&b, s->reason, strlen(s->reason));
	hd_buf_puts(&b, "\",\"secrets\":[");
	for (size_t i = 0; i < s->nsecrets; i++)
		hd_buf_printf(&b, "%s{\"secret\":\"%s\",\"until\":%" PRId64 "}", i ? "," : "",
			      s->secrets[i].text, s->secrets[i].until_ms);
	hd_buf_printf(&b,
		      "],\"floor\":%" PRIu64 ",\"acked\":\"%s\",\"epoch\":\"%s\",\"streak\":%" PRIu32
		      ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
		      ",\"last_success\":%" PRId64 ",\"last_failure\":%" PRId64
		      ",\"last_status\":%d,\"last_error\":\"",
		      s->lease.floor, acked, s->epoch, s->streak, s->delivered, s->failed_attempts,
		      s->dead_lettered, s->last_success_ms, s->last_failure_ms, s->last_status);
	hd_buf_json_escape(&b, s->last_error, strlen(s->last_error));
	hd_buf_puts(&b, "\"}");
	free(acked);
	return hd_buf_steal(&b, NULL);
}

static void issue_put(struct sub *s, struct hd_webhook_reply *r, int status);

static void put_done(struct hd_record_op *op)
{
	struct put *p = op->arg;
	struct sub *s = p->s;
	if (p->r) {
		if (op->err)
			reply_err(p->r, op->err, "the subscription could not be stored");
		else
			reply(p->r, p->status);
	}
	if (op->err && hd_log_ratelimited(&s->warn_ms))
		hd_log_error("webhook_put_failed sub=%s err=%d", s->id, op->err);
	free(p->value);
	free(p);
	s->puts--;
	s->refs--;
	if (s->dirty)
		changed(s);
	sub_release(s);
}

static void issue_put(struct sub *s, struct hd_webhook_reply *r, int status)
{
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
	p->op.done = put_done;
	p->op.arg = p;
	s->dirty = false;
	s->puts++;
	s->refs++;
	submit_record(s->w, &p->op);
}

static void on_flush(uv_timer_t *t)
{
	struct hd_webhooks *w = t->data;
	struct sub *q = w->flushq;
	w->flushq = NULL;
	while (q) {
		struct sub *s = q;
		q = s->fnext;
		s->queued = false;
		s->refs--;
		if (s->dirty && s->puts == 0 && !s->deleted && !w->stopping)
			issue_put(s, NULL, 0);
		else
			sub_release(s);
	}
}

/* The subscription's durable state changed: write it FLUSH_MS later, so
 * that the acks of a busy subscription share one write (and one commit)
 * instead of one each; at most one write in flight per subscription. An
 * ack not yet written when herald dies means that event is sent again
 * (at least once); a clean stop writes everything (hd_webhooks_stop). */
static void changed(struct sub *s)
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

/* ---- dead letters ----------------------------------------------------- */


/* tag: the subscription's gen when the dead letter was made. */
static void dead_done(void *arg, uint64_t offset, uint64_t gen, int err)
{
	struct sub *s = arg, *o = owner(s);
	s->ndead--;
	busy_add(s, -1);
	if (err == 0) {
		hd_metrics_inc(HD_M_webhook_dead_letters_total);
		s->dead_lettered++;
		o->streak++;
		if (gen == s->gen)
			hd_lease_ack(&s->lease, offset);
		if (o->cfg.pause_after && o->streak >= o->cfg.pause_after && o->state == ACTIVE) {
			o->state = PAUSED;
			snprintf(o->reason, sizeof(o->reason),
				 "paused after %" PRIu32 " consecutive dead-lettered events", o->streak);
			hd_log_warn("webhook_paused sub=%s topic=%s reason=\"%s\"", o->id, o->cfg.topic,
				    o->reason);
		}
		if (o != s)
			changed(o);
		changed(s);
	} else {
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_dead_letter_failed sub=%s topic=%s offset=%" PRIu64
				    " err=%d",
				    s->id, s->cfg.topic, offset, err);
		/* Tried again (with one more delivery) after the last delay. */
		if (gen == s->gen) {
			const struct hd_sub_config *c = &s->cfg;
			hd_lease_nack(&s->lease, offset,
				      hd_now_ms() + hd_retry_delay_ms(c->schedule, c->nschedule,
								       c->max_attempts, 0, -1,
								       s->w->opts.time_scale, 0.5));
		}
	}
	if (s->deleted) {
		sub_release(s); /* may free s */
	} else {
		pump(s);
		wake_kids(s);
	}
}

/* Publishes the event at offset (json) to {topic}.dlq; acked once stored. */
static void dead_letter(struct sub *s, uint64_t offset, const struct hd_rcbuf *json,
			uint32_t attempts)
{
	struct hd_buf extra;
	char id[HD_SUB_ID_LEN + HD_EPOCH_LEN + 48], src[HD_SUB_ID_LEN + 32];
	int64_t now = hd_now_ms();

	snprintf(id, sizeof(id), "%s/%s/%" PRIu64, s->id, s->epoch, offset);
	snprintf(src, sizeof(src), "/herald/webhooks/%s", s->id);
	hd_buf_init(&extra, 8192);
	hd_buf_printf(&extra, "\"subscription\":\"%s\",\"url\":\"", s->id);
	hd_buf_json_escape(&extra, s->cfg.url, strlen(s->cfg.url));
	hd_buf_printf(&extra, "\",\"last_status\":%d,\"last_error\":\"", s->last_status);
	hd_buf_json_escape(&extra, s->last_error, strlen(s->last_error));
	hd_buf_putc(&extra, '"');
	s->ndead++;
	busy_add(s, 1);
	hd_dlq_publish(s->w->hub,
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
		       s->gen, dead_done, s);
	hd_buf_fini(&extra);
}

/* ---- one delivery ----------------------------------------------------- */

static void outcome(struct sub *s, struct call *c, int status, int err, const char *error,
		    int64_t retry_after_ms, uint64_t latency_us)
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
	struct sub *own = owner(s);

	snprintf(at.error, sizeof(at.error), "%s", err ? error : "");
	if (s->parent)
		snprintf(at.topic, sizeof(at.topic), "%s", s->cfg.topic);
	hd_metrics_inc(HD_M_webhook_attempts_total);
	if (o == HD_RETRY_SUCCESS) {
		at.result = HD_ATTEMPT_SUCCESS;
		hd_metrics_inc(HD_M_webhook_deliveries_total);
		hd_lease_ack(&s->lease, c->offset);
		s->delivered++;
		s->streak = 0;
		if (own->streak) {
			own->streak = 0;
			changed(own);
		}
		s->last_success_ms = now;
	} else {
		hd_metrics_inc(HD_M_webhook_attempt_failures_total);
		s->failed_attempts++;
		s->last_failure_ms = now;
		s->last_status = status;
		if (err)
			snprintf(s->last_error, sizeof(s->last_error), "%s", error);
		else
			snprintf(s->last_error, sizeof(s->last_error), "HTTP status %d", status);
		if (o == HD_RETRY_GONE) {
			at.result = HD_ATTEMPT_DISABLED;
			hd_lease_nack(&s->lease, c->offset, 0);
			if (own->state != DISABLED) {
				char t[40];
				hd_format_rfc3339(now, t, sizeof(t));
				own->state = DISABLED;
				snprintf(own->reason, sizeof(own->reason),
					 "the receiver answered 410 Gone at %s (topic %.100s, offset %" PRIu64
					 "); resume to re-enable",
					 t, s->cfg.topic, c->offset);
				hd_log_warn("webhook_disabled sub=%s topic=%s reason=\"%s\"", s->id,
					    s->cfg.topic, own->reason);
				if (own != s)
					changed(own);
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
			hd_lease_nack(&s->lease, c->offset, now + delay);
		}
	}
	hd_attempts_add(&own->attempts, &at);
	changed(s);
}

static void wake_global(struct hd_webhooks *w);

static void on_call_done(struct hd_http_call *hc)
{
	struct call *c = hc->arg;
	struct sub *s = c->s;
	call_unlink(c);
	outcome(s, c, hc->status, hc->err, hc->error[0] ? hc->error : hd_err_message(hc->err),
		hc->retry_after_ms, hc->latency_us);
	call_free(c);
	wake_global(s->w);
	if (s->deleted) {
		sub_release(s); /* may free s */
	} else {
		pump(s);
		wake_kids(s);
	}
}

/* Sends the event (offset, json) as attempt number `attempt`. */
static void start_call(struct sub *s, uint64_t offset, struct hd_rcbuf *json, uint32_t attempt,
		       const char *epoch)
{
	struct call *c = hd_calloc(1, sizeof(*c));
	struct hd_error err = {0};
	struct hd_whsec keys[HD_SIGNATURE_SECRETS_MAX];
	struct sub *own = owner(s);
	int64_t now = hd_now_ms();
	size_t n = 0;

	c->s = s;
	c->offset = offset;
	c->attempt = attempt;
	c->started_ms = now;
	c->json = hd_rcbuf_ref(json);
	c->prev = NULL;
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	s->ncalls++;
	busy_add(s, 1);
	hd_metrics_gauge_add(HD_M_webhook_inflight, 1);

	int rc = hd_ce_http_encode(&c->enc, s->cfg.mode, json->data, json->len, &err);
	if (rc == 0) {
		prune_secrets(own, now);
		for (size_t i = 0; i < own->nsecrets; i++)
			keys[i] = own->secrets[i].key;
		/* The id names (subscription, topic epoch, offset): the same on
		 * every retry, after restarts and on replays. */
		snprintf(c->id, sizeof(c->id), "msg_%s_%s_%" PRIu64, s->id + strlen(HD_SUB_ID_PREFIX),
			 epoch, offset);
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
	struct sub *s;
	uint64_t gen;
	struct hd_lease_grant *grants; /* due retries, or NULL for new events */
	size_t ngrants;
	size_t room;                  /* calls that may start */
};

/* The topic was deleted and made again: start over at its beginning. */
static void topic_recreated(struct sub *s, const char *epoch)
{
	hd_log_warn("webhook_topic_recreated sub=%s topic=%s old_epoch=%s epoch=%s", s->id,
		    s->cfg.topic, s->epoch, epoch);
	cancel_calls(s, false);
	hd_lease_fini(&s->lease);
	hd_lease_init(&s->lease, 0, HD_WEBHOOK_WINDOW);
	snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
	s->gen++;
	changed(s);
}

/* Whether the event passes the filter; if not it is acked. */
static bool passes(struct sub *s, const struct hd_stored_event *ev)
{
	if (hd_sub_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len))
		return true;
	hd_lease_ack(&s->lease, ev->offset);
	return false;
}

static void read_due(struct sub *s, struct rd *q)
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
				hd_lease_nack(&s->lease, o, 0);
			} else if (passes(s, &r->events[j])) {
				start_call(s, o, r->events[j].json, q->grants[i].deliveries, r->epoch);
			} else {
				acked = true;
			}
		} else if (r->truncated || j < r->n || o <= r->last) {
			hd_lease_ack(&s->lease, o); /* gone: retention or TTL */
			acked = true;
		} else {
			hd_lease_nack(&s->lease, o, 0);
		}
	}
	if (acked)
		changed(s);
}

/* Hands out new events from r->events[from ..] (at most q_room calls) and
 * returns the index where it stopped (r->n when every event was taken). */
static size_t read_new(struct sub *s, const struct hd_read *r, size_t from, size_t q_room)
{
	size_t started = 0, i;
	bool acked = false;
	for (i = from; i < r->n; i++) {
		const struct hd_stored_event *ev = &r->events[i];
		if (ev->offset < s->lease.next)
			continue; /* handed out already (a read-ahead overlapping) */
		bool match = hd_sub_filter_match_json(&s->cfg.filter, ev->json->data, ev->json->len);
		if (match && (started >= q_room || !can_run(s)))
			break;
		if (ev->offset > s->lease.next)
			hd_lease_skip(&s->lease, ev->offset - 1);
		if (hd_lease_add(&s->lease, ev->offset, INT64_MAX) != 0)
			break;
		if (match) {
			start_call(s, ev->offset, ev->json, 1, r->epoch);
			started++;
		} else {
			hd_lease_ack(&s->lease, ev->offset);
			acked = true;
		}
	}
	/* Events that do not exist any more (expired, removed) are passed. */
	if (i == r->n && r->last >= s->lease.next && (r->n == 0 || r->n < r->limit)) {
		if (hd_lease_skip(&s->lease, r->last) == 0)
			acked = true;
	}
	if (acked)
		changed(s);
	return i;
}

static void drop_ahead(struct sub *s)
{
	if (!s->ahead)
		return;
	struct rd *q = s->ahead->arg;
	hd_read_fini(s->ahead);
	free(q);
	s->ahead = NULL;
}

static void read_done(struct hd_read *r)
{
	struct rd *q = r->arg;
	struct sub *s = q->s;

	s->reading = false;
	s->refs--;
	if (r->err) {
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->lease, q->grants[i].offset, hd_now_ms() + 1000);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_read_failed sub=%s topic=%s err=%d", s->id, s->cfg.topic,
				    r->err);
		goto out;
	}
	if (s->deleted || s->w->stopping)
		goto out;
	if (q->gen != s->gen) {
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->lease, q->grants[i].offset, 0);
		goto out;
	}
	if (r->exists && r->epoch[0]) {
		if (s->epoch[0] && strcmp(s->epoch, r->epoch) != 0) {
			topic_recreated(s, r->epoch);
			goto out;
		}
		if (!s->epoch[0]) {
			snprintf(s->epoch, sizeof(s->epoch), "%s", r->epoch);
			changed(s);
		}
	}
	if (r->last > s->topic_last)
		s->topic_last = r->last;
	s->last_known = true;
	if (q->grants) {
		read_due(s, q);
	} else {
		size_t stop = read_new(s, r, 0, q->room);
		if (s->cfg.ordered && stop < r->n && !s->ahead) {
			/* Kept: the next events come from here, not a read each. */
			s->ahead = r;
			s->ahead_pos = stop;
			s->ahead_gen = s->gen;
			q = NULL;
		}
	}
out:
	if (q) {
		free(q->grants);
		hd_read_fini(r);
		free(q);
	}
	if (s->deleted)
		sub_release(s);
	else
		pump(s);
}

static size_t room_of(struct sub *s)
{
	size_t cap = s->cfg.ordered ? 1 : s->cfg.concurrency;
	size_t busy = s->ncalls + s->ndead;
	size_t room = busy >= cap ? 0 : cap - busy;
	/* Unordered: the concurrency is the whole pattern subscription's. */
	if (s->parent && !s->cfg.ordered) {
		size_t all = s->parent->kid_busy;
		size_t sroom = all >= cap ? 0 : cap - all;
		if (sroom < room) {
			room = sroom;
			if (room == 0 && !s->sub_wait) {
				s->sub_wait = true;
				s->parent->kid_waiters++;
			}
		}
	}
	size_t in = hd_http_client_inflight(s->w->http);
	size_t global = in >= s->w->opts.http.max_inflight ? 0 : s->w->opts.http.max_inflight - in;
	if (global < room) {
		room = global;
		if (!s->global_wait && room == 0) {
			s->global_wait = true;
			s->w->global_waiters++;
		}
	}
	return room;
}

/* Starts one read (due retries first, else new events). */
static void pump_once(struct sub *s)
{
	struct hd_lease_grant *grants;
	size_t room, n, keep;
	int64_t now;

	if (!can_run(s) || s->reading)
		return;
	room = room_of(s);
	if (room == 0)
		return;
	now = hd_now_ms();
	grants = hd_calloc(room, sizeof(*grants));
	n = hd_lease_take_due(&s->lease, now, INT64_MAX, grants, room);
	keep = n;
	for (size_t i = 1; i < n; i++) {
		if (grants[i].offset - grants[0].offset >= READ_SPAN) {
			keep = i;
			break;
		}
	}
	for (size_t i = keep; i < n; i++) {
		/* Not handed out after all: undo the count. */
		hd_lease_nack(&s->lease, grants[i].offset, 0);
		s->lease.redeliveries -= grants[i].deliveries > 1;
		s->lease.slots[grants[i].offset & (s->lease.nslots - 1)].deliveries--;
	}
	n = keep;
	struct rd *q = hd_calloc(1, sizeof(*q));
	q->s = s;
	q->gen = s->gen;
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
		size_t wroom = HD_WEBHOOK_WINDOW - hd_lease_window(&s->lease);
		if ((s->cfg.ordered && hd_lease_window(&s->lease) > 0) || wroom == 0 ||
		    (s->last_known && s->topic_last < s->lease.next)) {
			free(q);
			return;
		}
		if (s->ahead && (s->ahead_gen != s->gen || s->ahead_pos >= s->ahead->n))
			drop_ahead(s);
		if (s->ahead) {
			free(q);
			s->ahead_pos = read_new(s, s->ahead, s->ahead_pos, room);
			if (s->ahead_pos >= s->ahead->n)
				drop_ahead(s);
			return;
		}
		q->r.after = s->lease.next - 1;
		/* Read past the room when filtering, so that events the filter
		 * drops do not cost one read each; an ordered subscription reads
		 * ahead and hands the rest out from memory (s->ahead). */
		size_t want = hd_sub_filter_empty(&s->cfg.filter) ? room : 100;
		if (s->cfg.ordered && want < AHEAD_MAX)
			want = AHEAD_MAX;
		q->r.limit = (uint32_t)(want < wroom ? want : wroom);
	}
	s->reading = true;
	s->refs++;
	int rc = hd_hub_read(s->w->hub, &q->r);
	if (rc) {
		s->reading = false;
		s->refs--;
		for (size_t i = 0; i < q->ngrants; i++)
			hd_lease_nack(&s->lease, q->grants[i].offset, now + 1000);
		free(q->grants);
		free(q);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_read_failed sub=%s topic=%s err=%d", s->id, s->cfg.topic,
				    rc);
	}
}

/* Arms the timer for the next due retry (when the pump is idle). */
static void arm(struct sub *s)
{
	if (!can_run(s) || s->timer_closed || uv_is_closing((uv_handle_t *)&s->timer))
		return;
	if (s->reading || room_of(s) == 0)
		return; /* a read or a call ending pumps again */
	int64_t due = hd_lease_next_due(&s->lease);
	if (due == INT64_MAX)
		return;
	int64_t left = due == INT64_MIN ? 0 : due - hd_now_ms();
	uint64_t ms = left > 0 ? (uint64_t)left : 0;
	if (!uv_is_active((uv_handle_t *)&s->timer) || uv_timer_get_due_in(&s->timer) > ms)
		uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void pump(struct sub *s)
{
	if (s->pumping) {
		s->pump_again = true;
		return;
	}
	s->pumping = true;
	do {
		s->pump_again = false;
		pump_once(s);
	} while (s->pump_again);
	s->pumping = false;
	arm(s);
}

static void on_timer(uv_timer_t *t)
{
	pump(t->data);
}

static void pattern_event(struct sub *p, const char *topic, const struct hd_stored_event *ev);

/* Pumps s on the next loop turn, if it may run. */
static void pump_soon(struct sub *s)
{
	if (can_run(s) && !s->timer_closed)
		uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev)
{
	struct sub *s = watch->arg;
	if (s->pattern) {
		pattern_event(s, topic, ev);
		return;
	}
	if (ev->offset > s->topic_last)
		s->topic_last = ev->offset;
	/* On the next loop turn, when the whole committed batch is readable. */
	if (ev->offset >= s->lease.next)
		pump_soon(s);
}

static void pump_waiter(const char *key, void *value, void *arg)
{
	struct sub *s = value;
	(void)key;
	if (s->pattern)
		hd_map_each(&s->kids, pump_waiter, arg);
	if (s->global_wait) {
		s->global_wait = false;
		s->w->global_waiters--;
		pump_soon(s);
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
	struct sub *s = value;
	(void)key;
	(void)arg;
	if (s->sub_wait) {
		s->sub_wait = false;
		s->parent->kid_waiters--;
		pump_soon(s);
	}
}

/* A child's call or dead letter ended: siblings held back by the whole
 * subscription's concurrency may go on. */
static void wake_kids(struct sub *s)
{
	struct sub *p = s->parent;
	if (p && p->kid_waiters > 0 && !p->deleted && !s->w->stopping)
		hd_map_each(&p->kids, kid_waiter, NULL);
}

static void start_list(struct sub *p);

static void activate_kid(const char *key, void *value, void *arg);

/* Starts (or restarts) delivering: watch the topic (a pattern: its
 * prefix, list the matching topics and start every child) and pump. */
static void sub_activate(struct sub *s)
{
	if (s->parent) {
		/* Woken by the parent's prefix watch; on the next loop turn. */
		s->last_known = false;
		pump_soon(s);
		return;
	}
	if (!s->watching && !s->w->stopping) {
		int rc;
		if (s->pattern) {
			hd_topic_pattern_prefix(s->cfg.topic, s->prefix, sizeof(s->prefix));
			rc = hd_hub_watch_prefix(s->w->hub, s->prefix, &s->watch);
		} else {
			rc = hd_hub_watch(s->w->hub, s->cfg.topic, &s->watch);
		}
		if (rc == 0)
			s->watching = true;
		else
			hd_log_warn("webhook_watch_failed sub=%s topic=%s (new events are picked up "
				    "only by retries and restarts)",
				    s->id, s->cfg.topic);
	}
	if (s->pattern) {
		if (!s->listed && !s->listing && !s->w->stopping)
			start_list(s);
		hd_map_each(&s->kids, activate_kid, NULL);
		return;
	}
	s->last_known = false; /* read once to learn the topic's state */
	pump(s);
}

static void activate_kid(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	sub_activate(value);
}

/* ---- topic patterns: the children ------------------------------------- */

/* Children gathered from a parent's map (for sorting or removal). */
struct kids_ctx {
	const struct sub **a;
	size_t n;
};

static void collect_kid(const char *key, void *value, void *arg)
{
	struct kids_ctx *c = arg;
	(void)key;
	c->a[c->n++] = value;
}

/* A matching topic that gets no child: counted once, named in the JSON. */
static void skip_topic(struct sub *p, const char *topic, const char *why)
{
	if (hd_map_get(&p->skipped_set, topic))
		return;
	(void)hd_map_put(&p->skipped_set, topic, p); /* full: counted again next time */
	p->skipped++;
	hd_metrics_inc(HD_M_webhook_pattern_topics_skipped_total);
	if (p->nskipped_names < SKIPPED_SHOWN)
		snprintf(p->skipped_names[p->nskipped_names++], sizeof(p->skipped_names[0]), "%s",
			 topic);
	if (hd_log_ratelimited(&p->warn_ms))
		hd_log_warn("webhook_pattern_topic_skipped sub=%s pattern=%s topic=%s reason=\"%s\" "
			    "skipped=%" PRIu64,
			    p->id, p->cfg.topic, topic, why, p->skipped);
}

/* Makes the child of pattern subscription p for topic, delivering after
 * floor. Returns borrowed (p owns it), or NULL when the topic is skipped. */
static struct sub *kid_add(struct sub *p, const char *topic, uint64_t floor)
{
	struct hd_webhooks *w = p->w;
	if (strlen(topic) + strlen(HD_WEBHOOK_DLQ_SUFFIX) > HD_TOPIC_NAME_MAX) {
		skip_topic(p, topic, "the name is too long for its dead-letter topic");
		return NULL;
	}
	if (p->kids.count >= w->opts.pattern_topics_max) {
		skip_topic(p, topic, "over --webhook-pattern-topics-max");
		return NULL;
	}
	struct sub *s = hd_calloc(1, sizeof(*s));
	s->w = w;
	s->parent = p;
	snprintf(s->id, sizeof(s->id), "%s", p->id);
	snprintf(s->key, sizeof(s->key), "%s/%s", p->id, topic);
	s->cfg = p->cfg;
	snprintf(s->cfg.topic, sizeof(s->cfg.topic), "%s", topic);
	s->created_ms = hd_now_ms();
	hd_lease_init(&s->lease, floor, HD_WEBHOOK_WINDOW);
	hd_attempts_init(&s->attempts);
	s->watch.fire = on_watch;
	s->watch.arg = s;
	if (hd_map_put(&p->kids, s->cfg.topic, s) != 0) {
		hd_lease_fini(&s->lease);
		free(s);
		skip_topic(p, topic, "over --webhook-pattern-topics-max");
		return NULL;
	}
	uv_timer_init(w->loop, &s->timer);
	s->timer.data = s;
	p->refs++; /* a child keeps its parent (released in sub_release) */
	hd_log_info("webhook_pattern_topic sub=%s pattern=%s topic=%s position=%" PRIu64, p->id,
		    p->cfg.topic, topic, floor);
	return s;
}

static void free_kid(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	sub_free(value);
}

static void kid_seek(struct sub *s, int64_t time_ms, struct multi *m);

/* A committed event of a topic under p's prefix. */
static void pattern_event(struct sub *p, const char *topic, const struct hd_stored_event *ev)
{
	if (!hd_topic_pattern_match(p->cfg.topic, topic))
		return;
	struct sub *s = hd_map_get(&p->kids, topic);
	if (s)
		s->seen = true;
	if (!s) {
		if (p->deleted || p->w->stopping || hd_map_get(&p->skipped_set, topic))
			return;
		/* A topic not listed: new (from its first event on), or made
		 * while the first list runs (from this event on). */
		s = kid_add(p, topic, p->listed ? 0 : ev->offset - 1);
		if (!s)
			return;
		s->seen = true;
		changed(s);
		sub_activate(s);
		return;
	}
	on_watch(&s->watch, topic, ev);
}

static void kill_kid(const char *key, void *value, void *arg);

static void collect_unseen(const char *key, void *value, void *arg)
{
	struct sub *s = value;
	struct kids_ctx *c = arg;
	(void)key;
	if (!s->seen)
		c->a[c->n++] = s;
}

/* After a full list: the children whose topic is gone (deleted while the
 * subscription lived, or while herald was down) are dropped with their
 * records, so they stop counting against the cap. A topic made again
 * later gets a new child from its offset 1, as an exact subscription
 * starts a recreated topic over. */
static void prune_kids(struct sub *p)
{
	struct kids_ctx c = {.a = hd_calloc(p->kids.count + 1, sizeof(*c.a))};
	hd_map_each(&p->kids, collect_unseen, &c);
	for (size_t i = 0; i < c.n; i++) {
		struct sub *s = (struct sub *)c.a[i];
		hd_log_info("webhook_pattern_topic_gone sub=%s topic=%s", s->id, s->cfg.topic);
		hd_map_del(&p->kids, s->cfg.topic);
		kill_kid(NULL, s, NULL);
	}
	free(c.a);
}

struct lister {
	struct hd_topic_op op;
	struct sub *p;
	char after[HD_TOPIC_NAME_MAX + 1];
};

static void list_page(struct lister *l);

static void list_done(struct hd_topic_op *op)
{
	struct lister *l = op->arg;
	struct sub *p = l->p;
	bool more = false;
	if (op->err) {
		hd_log_warn("webhook_pattern_list_failed sub=%s pattern=%s err=%d (topics are "
			    "picked up at their next event)",
			    p->id, p->cfg.topic, op->err);
	} else if (!p->deleted && !p->w->stopping) {
		for (size_t i = 0; i < op->n; i++) {
			const struct hd_topic_info *t = &op->topics[i];
			snprintf(l->after, sizeof(l->after), "%s", t->name);
			struct sub *had = hd_map_get(&p->kids, t->name);
			if (had)
				had->seen = true;
			if (!hd_topic_pattern_match(p->cfg.topic, t->name) || had ||
			    hd_map_get(&p->skipped_set, t->name))
				continue;
			uint64_t floor = 0;
			bool seek = false;
			/* A topic made after the subscription (its first events may
			 * commit while this list runs) starts at offset 1 too. */
			if (p->fresh && t->created_ms < p->created_ms) {
				switch (p->start.kind) {
				case HD_SUB_START_LATEST: floor = t->last; break;
				case HD_SUB_START_OLDEST: floor = 0; break;
				case HD_SUB_START_OFFSET: floor = p->start.offset - 1; break;
				case HD_SUB_START_TIME: seek = true; break;
				}
			}
			struct sub *s = kid_add(p, t->name, floor);
			if (!s)
				continue;
			s->seen = true;
			s->topic_last = t->last;
			changed(s);
			if (seek)
				kid_seek(s, p->start.time_ms, NULL);
			else
				sub_activate(s);
		}
		more = op->n >= LIST_PAGE;
	}
	bool failed = op->err != 0;
	hd_topic_op_fini(op);
	if (more) {
		list_page(l);
		return;
	}
	p->listing--;
	p->listed = true;
	if (!failed && !p->deleted && !p->w->stopping)
		prune_kids(p);
	p->refs--;
	free(l);
	sub_release(p);
}

static void list_page(struct lister *l)
{
	memset(&l->op, 0, sizeof(l->op));
	l->op.kind = HD_TOPIC_LIST;
	l->op.prefix = l->p->prefix;
	l->op.after = l->after;
	l->op.limit = LIST_PAGE;
	l->op.done = list_done;
	l->op.arg = l;
	int rc = hd_hub_topic_op(l->p->w->hub, &l->op);
	if (rc) {
		l->op.err = rc;
		list_done(&l->op);
	}
}

/* Lists the topics under p's prefix (paged) and makes a child for each
 * matching one that has none. */
static void start_list(struct sub *p)
{
	struct lister *l = hd_calloc(1, sizeof(*l));
	l->p = p;
	p->listing++;
	p->refs++;
	hd_topic_pattern_prefix(p->cfg.topic, p->prefix, sizeof(p->prefix));
	list_page(l);
}

/* ---- JSON of one subscription ----------------------------------------- */

/* Appends the subscription's JSON; secret (or NULL) only in the answers
 * to create. */

static int by_topic(const void *a, const void *b)
{
	const struct sub *x = *(const struct sub *const *)a, *y = *(const struct sub *const *)b;
	return strcmp(x->cfg.topic, y->cfg.topic);
}

static size_t pending_of(const struct sub *s)
{
	size_t pending = 0;
	for (uint64_t o = s->lease.floor + 1; o < s->lease.next; o++)
		pending += hd_lease_state_of(&s->lease, o) == HD_LEASE_READY;
	return pending;
}

/* The per-topic part of a pattern subscription's JSON: the sums over its
 * children, and the first TOPICS_SHOWN children by name. */
static void pattern_json(struct hd_buf *b, const struct sub *p)
{
	struct kids_ctx c = {.a = hd_calloc(p->kids.count + 1, sizeof(*c.a))};
	uint64_t delivered = 0, failed = 0, dead = 0, lag = 0;
	size_t inflight = 0, pending = 0;
	int64_t last_success = 0;
	const struct sub *last_fail = NULL;
	hd_map_each(&p->kids, collect_kid, &c);
	qsort(c.a, c.n, sizeof(*c.a), by_topic);
	hd_buf_puts(b, ",\"pattern\":true,\"topics\":[");
	for (size_t i = 0; i < c.n; i++) {
		const struct sub *s = c.a[i];
		uint64_t l = s->topic_last > s->lease.floor ? s->topic_last - s->lease.floor : 0;
		size_t pend = pending_of(s);
		delivered += s->delivered;
		failed += s->failed_attempts;
		dead += s->dead_lettered;
		lag += l;
		inflight += s->ncalls;
		pending += pend;
		if (s->last_success_ms > last_success)
			last_success = s->last_success_ms;
		if (s->last_failure_ms && (!last_fail || s->last_failure_ms > last_fail->last_failure_ms))
			last_fail = s;
		if (i >= TOPICS_SHOWN)
			continue;
		hd_buf_printf(b, "%s{\"topic\":\"", i ? "," : "");
		hd_buf_json_escape(b, s->cfg.topic, strlen(s->cfg.topic));
		hd_buf_printf(b,
			      "\",\"position\":%" PRIu64 ",\"next\":%" PRIu64 ",\"last_offset\":%" PRIu64
			      ",\"lag\":%" PRIu64 ",\"in_flight\":%zu,\"pending_retries\":%zu"
			      ",\"delivered\":%" PRIu64 ",\"failed_attempts\":%" PRIu64
			      ",\"dead_lettered\":%" PRIu64 "}",
			      s->lease.floor, s->lease.next, s->topic_last, l, s->ncalls, pend,
			      s->delivered, s->failed_attempts, s->dead_lettered);
	}
	hd_buf_printf(b, "],\"topics_count\":%zu,\"topics_truncated\":%s,\"topics_skipped\":%" PRIu64
			 ",\"skipped_topics\":[",
		      c.n, c.n > TOPICS_SHOWN ? "true" : "false", p->skipped);
	for (size_t i = 0; i < p->nskipped_names; i++) {
		hd_buf_printf(b, "%s\"", i ? "," : "");
		hd_buf_json_escape(b, p->skipped_names[i], strlen(p->skipped_names[i]));
		hd_buf_putc(b, '"');
	}
	hd_buf_printf(b,
		      "],\"lag\":%" PRIu64 ",\"in_flight\":%zu,\"pending_retries\":%zu"
		      ",\"consecutive_failures\":%" PRIu32 ",\"delivered\":%" PRIu64
		      ",\"failed_attempts\":%" PRIu64 ",\"dead_lettered\":%" PRIu64,
		      lag, inflight, pending, p->streak, delivered, failed, dead);
	time_json(b, "last_success", last_success);
	if (last_fail) {
		char t[40];
		hd_format_rfc3339(last_fail->last_failure_ms, t, sizeof(t));
		hd_buf_printf(b, ",\"last_failure\":{\"time\":\"%s\",\"topic\":\"", t);
		hd_buf_json_escape(b, last_fail->cfg.topic, strlen(last_fail->cfg.topic));
		hd_buf_printf(b, "\",\"status\":%d,\"error\":\"", last_fail->last_status);
		hd_buf_json_escape(b, last_fail->last_error, strlen(last_fail->last_error));
		hd_buf_puts(b, "\"}");
	} else {
		hd_buf_puts(b, ",\"last_failure\":null");
	}
	free(c.a);
}

static void sub_json(struct hd_buf *b, const struct sub *s, const char *secret)
{
	size_t pending = pending_of(s);
	hd_buf_printf(b, "{\"id\":\"%s\",", s->id);
	hd_sub_config_json(b, &s->cfg);
	hd_buf_printf(b, ",\"state\":\"%s\",\"reason\":", state_names[s->state]);
	if (s->reason[0]) {
		hd_buf_putc(b, '"');
		hd_buf_json_escape(b, s->reason, strlen(s->reason));
		hd_buf_putc(b, '"');
	} else {
		hd_buf_puts(b, "null");
	}
	time_json(b, "created", s->created_ms);
	if (s->pattern) {
		pattern_json(b, s);
		goto tail;
	}
	hd_buf_printf(b,
		      ",\"position\":%" PRIu64 ",\"next\":%" PRIu64 ",\"last_offset\":%" PRIu64
		      ",\"lag\":%" PRIu64 ",\"in_flight\":%zu,\"pending_retries\":%zu"
		      ",\"consecutive_failures\":%" PRIu32 ",\"delivered\":%" PRIu64
		      ",\"failed_attempts\":%" PRIu64 ",\"dead_lettered\":%" PRIu64,
		      s->lease.floor, s->lease.next, s->topic_last,
		      s->topic_last > s->lease.floor ? s->topic_last - s->lease.floor : 0, s->ncalls,
		      pending, s->streak, s->delivered, s->failed_attempts, s->dead_lettered);
	time_json(b, "last_success", s->last_success_ms);
	if (s->last_failure_ms) {
		char t[40];
		hd_format_rfc3339(s->last_failure_ms, t, sizeof(t));
		hd_buf_printf(b, ",\"last_failure\":{\"time\":\"%s\",\"status\":%d,\"error\":\"", t,
			      s->last_status);
		hd_buf_json_escape(b, s->last_error, strlen(s->last_error));
		hd_buf_puts(b, "\"}");
	} else {
		hd_buf_puts(b, ",\"last_failure\":null");
	}
tail:
	hd_buf_printf(b, ",\"signing_secrets\":%zu", s->nsecrets);
	if (secret)
		hd_buf_printf(b, ",\"secret\":\"%s\"", secret);
	hd_buf_putc(b, '}');
}

/* ---- operations ------------------------------------------------------- */

const char *hd_webhooks_topic(const struct hd_webhooks *w, const char *id)
{
	struct sub *s = hd_map_get(&w->subs, id);
	return s ? s->cfg.topic : NULL;
}

bool hd_webhooks_loaded(const struct hd_webhooks *w)
{
	return w->loaded;
}

bool hd_webhooks_allow_private(const struct hd_webhooks *w)
{
	return w->opts.http.allow_private;
}

static int random_id(char *out, size_t n)
{
	unsigned char b[8];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return HD_EINTERNAL;
	snprintf(out, n, HD_SUB_ID_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
		 b[4], b[5], b[6], b[7]);
	return 0;
}

/* A secret from text ("" = a new one) into out. */
static int make_secret(const char *text, struct secret *out, struct hd_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!text[0]) {
		if (hd_whsec_generate(out->text, sizeof(out->text)))
			return hd_error_set(err, HD_EINTERNAL, "no secret could be generated");
	} else {
		snprintf(out->text, sizeof(out->text), "%s", text);
	}
	return hd_whsec_parse(out->text, &out->key, err);
}

/* Finding the first offset stored at or after a time (create with
 * start.time, replay by time): a binary search with one-event reads. */
struct seek {
	struct hd_topic_op op;
	struct hd_read rd;
	struct hd_webhooks *w;
	struct hd_webhook_reply *r;
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_sub_start start;
	uint64_t last, lo, hi;
	/* create: */
	bool create;
	struct hd_sub_config cfg;
	struct secret secret;
	/* replay: */
	char id[HD_SUB_ID_LEN + 1];
	/* a pattern's child (a reference): its start time, or a replay of
	 * every child (multi) */
	struct sub *kid;
	struct multi *m;
};

/* A replay by time of every child of a pattern subscription: one seek per
 * child; answered when the last is done. */
struct multi {
	struct sub *p;                /* a reference */
	struct hd_webhook_reply *r;
	size_t left;
	int err;
};

static void seek_found(struct seek *k, uint64_t first);

static void multi_end(struct multi *m, int err)
{
	struct sub *p = m->p;
	if (err && !m->err)
		m->err = err;
	if (--m->left > 0)
		return;
	if (m->err) {
		reply_err(m->r, m->err, "a topic could not be read");
	} else if (p->deleted) {
		reply_err(m->r, HD_ENOTFOUND, "no such subscription");
	} else {
		sub_json(&m->r->body, p, NULL);
		reply(m->r, 200);
	}
	p->refs--;
	free(m);
	sub_release(p);
}

/* Ends a seek that failed: a request is answered; a child's start seek
 * delivers from its current position (at least once, never a loss). */
static void seek_fail(struct seek *k, int err, const char *msg)
{
	if (k->kid) {
		struct sub *s = k->kid;
		if (k->m)
			multi_end(k->m, err);
		else if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_start_seek_failed sub=%s topic=%s err=%d", s->id,
				    s->cfg.topic, err);
		s->seeking = false;
		s->refs--;
		if (s->deleted)
			sub_release(s);
		else
			sub_activate(s);
	} else {
		reply_err(k->r, err, "%s", msg);
	}
	free(k);
}

static void seek_step(struct seek *k);

static void seek_read_done(struct hd_read *r)
{
	struct seek *k = r->arg;
	uint64_t mid = r->after + 1;
	if (r->err) {
		int err = r->err;
		hd_read_fini(r);
		seek_fail(k, err, "the topic could not be read");
		return;
	}
	if (r->n == 0 || r->events[0].time_ms >= k->start.time_ms)
		k->hi = mid; /* nothing in [mid, the event found) exists */
	else
		k->lo = r->events[0].offset + 1;
	hd_read_fini(r);
	seek_step(k);
}

static void seek_step(struct seek *k)
{
	if (k->lo >= k->hi || k->w->stopping) {
		if (k->w->stopping) {
			seek_fail(k, HD_EUNAVAIL, "herald is stopping");
			return;
		}
		seek_found(k, k->lo);
		return;
	}
	memset(&k->rd, 0, sizeof(k->rd));
	k->rd.topic = k->topic;
	k->rd.after = k->lo + (k->hi - k->lo) / 2 - 1;
	k->rd.limit = 1;
	k->rd.done = seek_read_done;
	k->rd.arg = k;
	int rc = hd_hub_read(k->w->hub, &k->rd);
	if (rc)
		seek_fail(k, rc, "the topic could not be read");
}

static void seek_info_done(struct hd_topic_op *op)
{
	struct seek *k = op->arg;
	int err = op->err == HD_ENOTFOUND ? 0 : op->err;
	uint64_t last = op->err == 0 && op->n == 1 ? op->topics[0].last : 0;
	uint64_t first = op->err == 0 && op->n == 1 ? op->topics[0].first : last + 1;
	hd_topic_op_fini(op);
	if (err) {
		seek_fail(k, err, "the topic could not be read");
		return;
	}
	if (k->w->stopping) {
		seek_fail(k, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	k->last = last;
	switch (k->start.kind) {
	case HD_SUB_START_LATEST:
		seek_found(k, last + 1);
		return;
	case HD_SUB_START_OLDEST:
		seek_found(k, 1);
		return;
	case HD_SUB_START_OFFSET:
		seek_found(k, k->start.offset);
		return;
	case HD_SUB_START_TIME:
		k->lo = first;
		k->hi = last + 1;
		seek_step(k);
		return;
	}
}

static void seek_begin(struct seek *k)
{
	k->op.kind = HD_TOPIC_INFO;
	k->op.topic = k->topic;
	k->op.done = seek_info_done;
	k->op.arg = k;
	int rc = hd_hub_topic_op(k->w->hub, &k->op);
	if (rc)
		seek_fail(k, rc, "the topic could not be read");
}

/* Finds where child s starts (the first event at or after time_ms) and
 * moves it there; s waits meanwhile (seeking). m: part of a replay. */
static void kid_seek(struct sub *s, int64_t time_ms, struct multi *m)
{
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = s->w;
	k->kid = s;
	k->m = m;
	k->start.kind = HD_SUB_START_TIME;
	k->start.time_ms = time_ms;
	snprintf(k->topic, sizeof(k->topic), "%s", s->cfg.topic);
	s->seeking = true;
	s->refs++;
	seek_begin(k);
}

/* Moves s to deliver from offset `first` on. */
static void sub_reposition(struct sub *s, uint64_t first)
{
	cancel_calls(s, false);
	hd_lease_fini(&s->lease);
	hd_lease_init(&s->lease, first ? first - 1 : 0, HD_WEBHOOK_WINDOW);
	s->gen++;
	changed(s);
	sub_activate(s);
}

static void seek_found(struct seek *k, uint64_t first)
{
	struct hd_webhooks *w = k->w;
	struct hd_webhook_reply *r = k->r;
	if (w->stopping) {
		seek_fail(k, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (k->kid) {
		struct sub *s = k->kid;
		s->seeking = false;
		if (!s->deleted) {
			sub_reposition(s, first);
			hd_log_info("webhook_seek sub=%s topic=%s from=%" PRIu64, s->id, s->cfg.topic,
				    first);
		}
		if (k->m)
			multi_end(k->m, 0);
		s->refs--;
		sub_release(s);
		goto out;
	}
	if (k->create) {
		char id[HD_SUB_ID_LEN + 1];
		struct sub *s = NULL;
		for (int tries = 0; tries < 4 && !s; tries++) {
			if (random_id(id, sizeof(id))) {
				reply_err(r, HD_EINTERNAL, "no id could be made");
				goto out;
			}
			if (hd_map_get(&w->subs, id))
				continue;
			s = sub_new(w, id, &k->cfg, first ? first - 1 : 0);
			if (!s) {
				reply_err(r, HD_ELIMIT, "at most %" PRIu32 " webhook subscriptions",
					  w->opts.max_subscriptions);
				goto out;
			}
		}
		if (!s) {
			reply_err(r, HD_EINTERNAL, "no id could be made");
			goto out;
		}
		s->secrets[0] = k->secret;
		s->nsecrets = 1;
		s->topic_last = k->last;
		/* The answer, with the secret this once. */
		sub_json(&r->body, s, s->secrets[0].text);
		hd_log_info("webhook_created sub=%s topic=%s url_len=%zu position=%" PRIu64, s->id,
			    s->cfg.topic, strlen(s->cfg.url), s->lease.floor);
		issue_put(s, r, 201);
		sub_activate(s);
	} else {
		struct sub *s = hd_map_get(&w->subs, k->id);
		if (!s) {
			reply_err(r, HD_ENOTFOUND, "no such subscription");
			goto out;
		}
		sub_reposition(s, first);
		hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, s->cfg.topic,
			    first);
		sub_json(&r->body, s, NULL);
		reply(r, 200);
	}
out:
	memset(&k->secret, 0, sizeof(k->secret));
	free(k);
}

/* A pattern subscription needs no seek: each child finds its own start
 * when the topic list (or the first event of a new topic) makes it. */
static void create_pattern(struct hd_webhooks *w, const struct hd_sub_config *c,
			   const struct hd_sub_start *start, const char *secret,
			   struct hd_webhook_reply *r)
{
	struct hd_error err = {0};
	struct secret sec;
	char id[HD_SUB_ID_LEN + 1];
	struct sub *s = NULL;
	if (make_secret(secret, &sec, &err)) {
		reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		return;
	}
	for (int tries = 0; tries < 4 && !s; tries++) {
		if (random_id(id, sizeof(id)))
			break;
		if (hd_map_get(&w->subs, id))
			continue;
		s = sub_new(w, id, c, 0);
		if (!s) {
			reply_err(r, HD_ELIMIT, "at most %" PRIu32 " webhook subscriptions",
				  w->opts.max_subscriptions);
			goto out;
		}
	}
	if (!s) {
		reply_err(r, HD_EINTERNAL, "no id could be made");
		goto out;
	}
	s->secrets[0] = sec;
	s->nsecrets = 1;
	s->fresh = true;
	s->start = *start;
	sub_json(&r->body, s, s->secrets[0].text);
	hd_log_info("webhook_created sub=%s pattern=%s url_len=%zu", s->id, s->cfg.topic,
		    strlen(s->cfg.url));
	issue_put(s, r, 201);
	sub_activate(s);
out:
	memset(&sec, 0, sizeof(sec));
}

void hd_webhooks_create(struct hd_webhooks *w, const struct hd_sub_config *c,
			const struct hd_sub_start *start, const char *secret,
			struct hd_webhook_reply *r)
{
	struct hd_error err = {0};
	if (w->stopping) {
		reply_err(r, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (w->subs.count >= w->opts.max_subscriptions) {
		reply_err(r, HD_ELIMIT, "at most %" PRIu32 " webhook subscriptions",
			  w->opts.max_subscriptions);
		return;
	}
	if (hd_topic_pattern_is(c->topic)) {
		create_pattern(w, c, start, secret, r);
		return;
	}
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = w;
	k->r = r;
	k->create = true;
	k->cfg = *c;
	k->start = *start;
	snprintf(k->topic, sizeof(k->topic), "%s", c->topic);
	if (make_secret(secret, &k->secret, &err)) {
		reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		free(k);
		return;
	}
	seek_begin(k);
}

/* The subscription a changing request names, or NULL with r answered
 * (herald stopping: 503; unknown id: 404). */
static struct sub *writable_sub(struct hd_webhooks *w, const char *id, struct hd_webhook_reply *r)
{
	struct sub *s = hd_map_get(&w->subs, id);
	if (w->stopping) {
		reply_err(r, HD_EUNAVAIL, "herald is stopping");
		return NULL;
	}
	if (!s)
		reply_err(r, HD_ENOTFOUND, "no such subscription");
	return s;
}

struct multi_ctx {
	struct multi *m;
	int64_t time_ms;
};

static void replay_kid(const char *key, void *value, void *arg)
{
	struct multi_ctx *c = arg;
	(void)key;
	c->m->left++;
	kid_seek(value, c->time_ms, c->m);
}

void hd_webhooks_replay(struct hd_webhooks *w, const char *id, const char *topic, bool by_time,
			uint64_t from, int64_t time_ms, struct hd_webhook_reply *r)
{
	struct sub *s = writable_sub(w, id, r);
	if (!s)
		return;
	if (topic && !s->pattern && strcmp(topic, s->cfg.topic) != 0) {
		reply_err(r, HD_EINVAL, "'topic' must be the subscription's topic");
		return;
	}
	if (s->pattern && topic) {
		struct sub *p = s;
		s = hd_map_get(&p->kids, topic);
		if (!s) {
			reply_err(r, HD_ENOTFOUND, "the subscription delivers no topic '%.200s'", topic);
			return;
		}
		if (!by_time) {
			sub_reposition(s, from);
			hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, topic, from);
			sub_json(&r->body, p, NULL);
			reply(r, 200);
			return;
		}
		struct multi *m = hd_calloc(1, sizeof(*m));
		m->p = p;
		m->r = r;
		m->left = 1;
		p->refs++;
		kid_seek(s, time_ms, m);
		return;
	}
	if (s->pattern) {
		if (!by_time) {
			reply_err(r, HD_EINVAL,
				  "offsets are per topic: replay a pattern subscription from an "
				  "RFC 3339 time, or give topic=<name> with from=<offset>");
			return;
		}
		/* One seek per child; `left` starts at 1 so that seeks answered
		 * at once cannot end the replay before every one is started. */
		struct multi *m = hd_calloc(1, sizeof(*m));
		m->p = s;
		m->r = r;
		m->left = 1;
		s->refs++;
		struct multi_ctx c = {.m = m, .time_ms = time_ms};
		hd_map_each(&s->kids, replay_kid, &c);
		hd_log_info("webhook_replay sub=%s pattern=%s from_time=%" PRId64 " topics=%zu", s->id,
			    s->cfg.topic, time_ms, s->kids.count);
		multi_end(m, 0);
		return;
	}
	if (!by_time) {
		sub_reposition(s, from);
		hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, s->cfg.topic,
			    from);
		sub_json(&r->body, s, NULL);
		reply(r, 200);
		return;
	}
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = w;
	k->r = r;
	k->start.kind = HD_SUB_START_TIME;
	k->start.time_ms = time_ms;
	snprintf(k->id, sizeof(k->id), "%s", id);
	snprintf(k->topic, sizeof(k->topic), "%s", s->cfg.topic);
	seek_begin(k);
}

void hd_webhooks_list(struct hd_webhooks *w, const char *topic, struct hd_buf *out);

struct list_ctx {
	struct hd_buf *out;
	const char *topic;
	const struct sub **subs;
	size_t n;
};

static void collect_sub(const char *key, void *value, void *arg)
{
	struct list_ctx *l = arg;
	const struct sub *s = value;
	(void)key;
	if (!l->topic || strcmp(l->topic, s->cfg.topic) == 0 ||
	    (s->pattern && hd_topic_pattern_match(s->cfg.topic, l->topic)))
		l->subs[l->n++] = s;
}

static int by_created(const void *a, const void *b)
{
	const struct sub *x = *(const struct sub *const *)a, *y = *(const struct sub *const *)b;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

void hd_webhooks_list(struct hd_webhooks *w, const char *topic, struct hd_buf *out)
{
	struct list_ctx l = {.out = out, .topic = topic};
	l.subs = hd_calloc(w->subs.count + 1, sizeof(*l.subs));
	hd_map_each(&w->subs, collect_sub, &l);
	qsort(l.subs, l.n, sizeof(*l.subs), by_created);
	hd_buf_puts(out, "{\"subscriptions\":[");
	for (size_t i = 0; i < l.n; i++) {
		if (i)
			hd_buf_putc(out, ',');
		sub_json(out, l.subs[i], NULL);
	}
	hd_buf_printf(out, "],\"count\":%zu}", l.n);
	free(l.subs);
}

int hd_webhooks_info(struct hd_webhooks *w, const char *id, struct hd_buf *out)
{
	struct sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	sub_json(out, s, NULL);
	return 0;
}

int hd_webhooks_attempts(struct hd_webhooks *w, const char *id, size_t limit, struct hd_buf *out)
{
	struct sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	hd_buf_printf(out, "{\"id\":\"%s\",\"total\":%" PRIu64 ",\"attempts\":", s->id,
		      s->attempts.total);
	hd_attempts_json(out, &s->attempts, limit);
	hd_buf_putc(out, '}');
	return 0;
}

int hd_webhooks_pause(struct hd_webhooks *w, const char *id, bool pause, struct hd_buf *out)
{
	struct sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	if (pause) {
		if (s->state == ACTIVE) {
			s->state = PAUSED;
			snprintf(s->reason, sizeof(s->reason), "paused by request");
			uv_timer_stop(&s->timer);
			changed(s);
		}
	} else {
		if (s->state != ACTIVE || s->streak) {
			s->state = ACTIVE;
			s->reason[0] = '\0';
			s->streak = 0;
			changed(s);
		}
		if (!w->stopping)
			sub_activate(s);
	}
	hd_log_info("webhook_%s sub=%s topic=%s", pause ? "paused" : "resumed", s->id, s->cfg.topic);
	sub_json(out, s, NULL);
	return 0;
}

void hd_webhooks_rotate(struct hd_webhooks *w, const char *id, const char *secret,
			struct hd_webhook_reply *r)
{
	struct sub *s = writable_sub(w, id, r);
	struct hd_error err = {0};
	struct secret fresh;
	int64_t now = hd_now_ms();
	if (!s)
		return;
	if (make_secret(secret, &fresh, &err)) {
		reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		return;
	}
	if (s->nsecrets > 0)
		s->secrets[0].until_ms = w->opts.rotation_grace_ms ? now + w->opts.rotation_grace_ms : 0;
	size_t keep = s->nsecrets < HD_SIGNATURE_SECRETS_MAX ? s->nsecrets
							     : HD_SIGNATURE_SECRETS_MAX - 1;
	memmove(&s->secrets[1], &s->secrets[0], keep * sizeof(s->secrets[0]));
	s->secrets[0] = fresh;
	s->nsecrets = keep + 1;
	/* Without grace the previous secret stops at once. */
	for (size_t i = 1; i < s->nsecrets; i++)
		if (s->secrets[i].until_ms == 0)
			s->secrets[i].until_ms = 1;
	prune_secrets(s, now);
	hd_log_info("webhook_secret_rotated sub=%s signing_secrets=%zu", s->id, s->nsecrets);
	hd_buf_printf(&r->body, "{\"id\":\"%s\",\"secret\":\"%s\",\"signing_secrets\":%zu}", s->id,
		      fresh.text, s->nsecrets);
	memset(&fresh, 0, sizeof(fresh));
	/* Answered once this state is durable: a write of its own even when
	 * one is in flight (the store applies writes in order). */
	issue_put(s, r, 200);
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
		reply_err(d->r, op->err, "the subscription could not be deleted");
	} else {
		reply(d->r, 204);
	}
	free(d);
}

/* Deletes the record kind/key; r (or NULL) is answered when it is gone. */
static void delete_record(struct hd_webhooks *w, const char *kind, const char *key,
			  struct hd_webhook_reply *r)
{
	struct del *d = hd_calloc(1, sizeof(*d));
	d->r = r;
	d->op.kind = HD_RECORD_DELETE;
	snprintf(d->op.rec.kind, sizeof(d->op.rec.kind), "%s", kind);
	snprintf(d->op.rec.key, sizeof(d->op.rec.key), "%s", key);
	d->op.done = del_done;
	d->op.arg = d;
	submit_record(w, &d->op);
}

/* Stops s for good and puts it on the zombies until nothing points at it. */
static void sub_kill(struct sub *s)
{
	struct hd_webhooks *w = s->w;
	s->deleted = true;
	if (s->global_wait) {
		s->global_wait = false;
		w->global_waiters--;
	}
	if (s->sub_wait) {
		s->sub_wait = false;
		s->parent->kid_waiters--;
	}
	cancel_calls(s, false);
	if (s->watching)
		hd_hub_unwatch(w->hub, &s->watch);
	s->watching = false;
	s->znext = w->zombies;
	w->zombies = s;
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static void kill_kid(const char *key, void *value, void *arg)
{
	struct sub *s = value;
	(void)key;
	(void)arg;
	sub_kill(s);
	delete_record(s->w, HD_WEBHOOK_TOPIC_RECORD_KIND, s->key, NULL);
}

void hd_webhooks_delete(struct hd_webhooks *w, const char *id, struct hd_webhook_reply *r)
{
	struct sub *s = writable_sub(w, id, r);
	if (!s)
		return;
	hd_map_del(&w->subs, s->id);
	hd_metrics_gauge_add(HD_M_webhook_subscriptions, -1);
	sub_kill(s);
	if (s->pattern) {
		/* The children go first (each releases the parent when freed);
		 * the map is emptied so that freeing the parent frees none. */
		hd_map_each(&s->kids, kill_kid, NULL);
		hd_map_fini(&s->kids);
		hd_map_init(&s->kids, 1);
	}
	hd_log_info("webhook_deleted sub=%s topic=%s", s->id, s->cfg.topic);
	delete_record(w, HD_WEBHOOK_RECORD_KIND, s->id, r);
}

/* ---- load ------------------------------------------------------------- */

static int64_t num_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* The position and the counters of a record (a subscription's or a
 * pattern child's). */
static void restore_position(struct sub *s, json_t *o, uint64_t floor)
{
	const char *acked = json_string_value(json_object_get(o, "acked"));
	if (acked && hd_lease_restore(&s->lease, floor, acked) != 0)
		hd_log_warn("webhook_acked_ignored sub=%s", s->key);
	snprintf(s->epoch, sizeof(s->epoch), "%s",
		 json_string_value(json_object_get(o, "epoch")) ?: "");
	snprintf(s->last_error, sizeof(s->last_error), "%s",
		 json_string_value(json_object_get(o, "last_error")) ?: "");
	s->delivered = (uint64_t)num_member(o, "delivered");
	s->failed_attempts = (uint64_t)num_member(o, "failed");
	s->dead_lettered = (uint64_t)num_member(o, "dead_lettered");
	s->last_success_ms = num_member(o, "last_success");
	s->last_failure_ms = num_member(o, "last_failure");
	s->last_status = (int)num_member(o, "last_status");
}

/* A pattern child's record "<id>/<topic>": attached to its parent; one
 * whose parent is gone is deleted. */
static void load_kid(struct hd_webhooks *w, const struct hd_record *rec)
{
	char id[HD_SUB_ID_LEN + 1];
	const char *slash = strchr(rec->key, '/');
	json_t *o = json_loads(rec->value, 0, NULL);
	struct sub *p = NULL;
	if (slash && (size_t)(slash - rec->key) == HD_SUB_ID_LEN) {
		memcpy(id, rec->key, HD_SUB_ID_LEN);
		id[HD_SUB_ID_LEN] = '\0';
		p = hd_map_get(&w->subs, id);
	}
	if (!p || !p->pattern) {
		hd_log_warn("webhook_topic_record_orphan key=%s (deleted)", rec->key);
		delete_record(w, HD_WEBHOOK_TOPIC_RECORD_KIND, rec->key, NULL);
		goto out;
	}
	if (!json_is_object(o)) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"not JSON\"", rec->key);
		goto out;
	}
	uint64_t floor = (uint64_t)num_member(o, "floor");
	struct sub *s = kid_add(p, slash + 1, floor);
	if (!s)
		goto out;
	restore_position(s, o, floor);
	s->created_ms = num_member(o, "created");
out:
	json_decref(o);
}

static void load_one(struct hd_webhooks *w, const struct hd_record *rec)
{
	struct hd_error err = {0};
	struct hd_sub_config cfg;
	json_t *o = json_loads(rec->value, 0, NULL);
	json_t *secrets = json_object_get(o, "secrets"), *v;
	const char *state = json_string_value(json_object_get(o, "state"));
	size_t i;

	if (!json_is_object(o) || hd_sub_config_load(json_object_get(o, "config"), &cfg, &err)) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"%s\"", rec->key,
			     err.msg[0] ? err.msg : "not JSON");
		goto out;
	}
	uint64_t floor = (uint64_t)num_member(o, "floor");
	struct sub *s = sub_new(w, rec->key, &cfg, floor);
	if (!s) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"over "
			     "--webhook-subscriptions-max\"",
			     rec->key);
		goto out;
	}
	restore_position(s, o, floor);
	s->created_ms = num_member(o, "created");
	s->state = state && strcmp(state, "paused") == 0     ? PAUSED
		   : state && strcmp(state, "disabled") == 0 ? DISABLED
							     : ACTIVE;
	snprintf(s->reason, sizeof(s->reason), "%s",
		 json_string_value(json_object_get(o, "reason")) ?: "");
	s->streak = (uint32_t)num_member(o, "streak");
	json_array_foreach(secrets, i, v)
	{
		struct secret sec;
		const char *text = json_string_value(json_object_get(v, "secret"));
		if (s->nsecrets >= HD_SIGNATURE_SECRETS_MAX || !text ||
		    make_secret(text, &sec, &err))
			continue;
		sec.until_ms = num_member(v, "until");
		s->secrets[s->nsecrets++] = sec;
	}
	if (s->nsecrets == 0) {
		hd_log_error("webhook_secret_missing sub=%s (a new one was made; rotate it)", s->id);
		make_secret("", &s->secrets[0], &err);
		s->nsecrets = 1;
		changed(s);
	}
out:
	json_decref(o);
}

static void load_kids_page(struct hd_webhooks *w);
static void load_end(struct hd_webhooks *w);

static void load_kids_done(struct hd_record_op *op)
{
	struct hd_webhooks *w = op->arg;
	bool more = false;
	if (op->err)
		hd_log_error("webhooks_load_failed kind=%s err=%d", HD_WEBHOOK_TOPIC_RECORD_KIND,
			     op->err);
	for (size_t i = 0; i < op->n && !w->stopping; i++) {
		load_kid(w, &op->recs[i]);
		snprintf(w->load_after, sizeof(w->load_after), "%s", op->recs[i].key);
	}
	more = !op->err && op->n >= LIST_PAGE && !w->stopping;
	hd_record_op_fini(op);
	if (more)
		load_kids_page(w);
	else
		load_end(w);
}

/* The children of the pattern subscriptions, LIST_PAGE records a time. */
static void load_kids_page(struct hd_webhooks *w)
{
	memset(&w->load_kids, 0, sizeof(w->load_kids));
	w->load_kids.kind = HD_RECORD_LIST;
	snprintf(w->load_kids.rec.kind, sizeof(w->load_kids.rec.kind), "%s",
		 HD_WEBHOOK_TOPIC_RECORD_KIND);
	w->load_kids.after = w->load_after;
	w->load_kids.limit = LIST_PAGE;
	w->load_kids.done = load_kids_done;
	w->load_kids.arg = w;
	submit_record(w, &w->load_kids);
}

static void load_done(struct hd_record_op *op)
{
	struct hd_webhooks *w = op->arg;
	if (op->err)
		hd_log_error("webhooks_load_failed err=%d", op->err);
	for (size_t i = 0; i < op->n && !w->stopping; i++)
		load_one(w, &op->recs[i]);
	hd_record_op_fini(op);
	w->load_after[0] = '\0';
	load_kids_page(w);
}

static void load_end(struct hd_webhooks *w)
{
	w->loaded = true;
	if (w->subs.count)
		hd_log_info("webhooks_loaded subscriptions=%zu", w->subs.count);
	struct sub **all = hd_calloc(w->subs.count + 1, sizeof(*all));
	struct list_ctx l = {.subs = (const struct sub **)all};
	hd_map_each(&w->subs, collect_sub, &l);
	for (size_t i = 0; i < l.n; i++)
		if (!w->stopping)
			sub_activate(all[i]);
	free(all);
	if (w->on_loaded)
		w->on_loaded(w->loaded_arg);
}

void hd_webhooks_start(struct hd_webhooks *w, void (*loaded)(void *arg), void *arg)
{
	w->on_loaded = loaded;
	w->loaded_arg = arg;
	w->load.kind = HD_RECORD_LIST;
	snprintf(w->load.rec.kind, sizeof(w->load.rec.kind), "%s", HD_WEBHOOK_RECORD_KIND);
	w->load.limit = w->opts.max_subscriptions;
	w->load.done = load_done;
	w->load.arg = w;
	submit_record(w, &w->load);
}

struct hd_webhooks *hd_webhooks_new(uv_loop_t *loop, struct hd_hub *hub,
				    const struct hd_webhook_opts *o, struct hd_error *err)
{
	struct hd_webhooks *w = hd_calloc(1, sizeof(*w));
	w->loop = loop;
	w->hub = hub;
	w->opts = *o;
	if (w->opts.time_scale <= 0)
		w->opts.time_scale = 1;
	if (w->opts.pattern_topics_max == 0)
		w->opts.pattern_topics_max = 1000;
	if (w->opts.max_subscriptions == 0 || w->opts.max_subscriptions > HD_WEBHOOK_SUBS_MAX)
		w->opts.max_subscriptions = HD_WEBHOOK_SUBS_MAX;
	w->http = hd_http_client_new(loop, &w->opts.http, err);
	if (!w->http) {
		free(w);
		return NULL;
	}
	if (getrandom(&w->rng, sizeof(w->rng), 0) != (ssize_t)sizeof(w->rng) || w->rng == 0)
		w->rng = (uint64_t)hd_now_ms() | 1;
	hd_map_init(&w->subs, w->opts.max_subscriptions);
	uv_timer_init(loop, &w->flush);
	w->flush.data = w;
	return w;
}

static void stop_sub(const char *key, void *value, void *arg)
{
	struct sub *s = value;
	(void)key;
	if (s->pattern)
		hd_map_each(&s->kids, stop_sub, arg);
	cancel_calls(s, true);
	if (s->global_wait) {
		s->global_wait = false;
		s->w->global_waiters--;
	}
	if (s->watching)
		hd_hub_unwatch(s->w->hub, &s->watch);
	s->watching = false;
	uv_timer_stop(&s->timer);
	drop_ahead(s);
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, NULL);
	/* The last write: the store applies writes in order, so this one
	 * lands after any still in flight. */
	if (s->dirty)
		issue_put(s, NULL, 0);
}

void hd_webhooks_stop(struct hd_webhooks *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	/* Queued writes are issued by stop_sub's last write. */
	uv_timer_stop(&w->flush);
	while (w->flushq) {
		struct sub *s = w->flushq;
		w->flushq = s->fnext;
		s->queued = false;
		s->refs--;
		sub_release(s);
	}
	uv_close((uv_handle_t *)&w->flush, NULL);
	hd_map_each(&w->subs, stop_sub, NULL);
	hd_http_client_close(w->http);
}

static void free_sub(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	sub_free(value);
}

void hd_webhooks_free(struct hd_webhooks *w)
{
	if (!w)
		return;
	hd_map_each(&w->subs, free_sub, NULL);
	hd_map_fini(&w->subs);
	while (w->zombies) {
		struct sub *s = w->zombies;
		w->zombies = s->znext;
		sub_free(s);
	}
	hd_http_client_free(w->http);
	free(w);
}
