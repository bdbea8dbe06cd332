/*
 * sub — one webhook subscription (webhook_impl.h) in memory: made, freed,
 * released once nothing points at it, activated (watch and pump), killed,
 * moved to a new position; its secrets; its JSON as the REST API shows it.
 * Layer: webhook. Callers: ops.c (the operations), lifecycle.c (load, stop,
 * free), kids.c, pump.c, record.c (release after a write).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPICS_SHOWN 100        /* topics of a pattern subscription in its JSON */
#define SKIPPED_SET_MAX 10000   /* skipped topics remembered (counted once) */

const char *const hd_webhook_sub_state_names[] = {"active", "paused", "disabled"};

static void activate_kid(const char *key, void *value, void *arg);

/* Drops secrets past their grace and keeps at most HD_SIGNATURE_SECRETS_MAX. */
void hd_webhook_sub_prune_secrets(struct hd_webhook_sub *s, int64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < s->nsecrets; i++) {
		if (i == 0 || s->secrets[i].until_ms > now)
			s->secrets[k++] = s->secrets[i];
	}
	s->nsecrets = k;
}

struct hd_webhook_sub *hd_webhook_sub_new(struct hd_webhooks *w, const char *id,
					  const struct hd_sub_config *c, uint64_t floor)
{
	if (w->subs.count >= w->opts.max_subscriptions)
		return NULL;
	struct hd_webhook_sub *s = hd_calloc(1, sizeof(*s));
	s->w = w;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->key, sizeof(s->key), "%s", id);
	s->cfg = *c;
	s->pattern = hd_topic_pattern_is(c->topic);
	if (s->pattern) {
		hd_webhook_kids_init(s);
		hd_map_init(&s->skipped_set, SKIPPED_SET_MAX);
	}
	s->created_ms = hd_now_ms();
	hd_lease_init(&s->st.lease, floor, HD_WEBHOOK_WINDOW);
	hd_attempts_init(&s->attempts);
	hd_webhook_pump_watch_init(s);
	if (hd_map_put(&w->subs, s->id, s) != 0) {
		hd_lease_fini(&s->st.lease);
		if (s->pattern) {
			hd_pattern_fini(&s->pt);
			hd_map_fini(&s->skipped_set);
		}
		free(s);
		return NULL;
	}
	uv_timer_init(w->loop, &s->timer);
	s->timer.data = s;
	hd_metrics_gauge_add(HD_M_webhook_subscriptions, 1);
	hd_webhook_own_add(s);
	return s;
}

void hd_webhook_sub_free(struct hd_webhook_sub *s)
{
	hd_webhook_pump_drop_ahead(s);
	if (s->pattern) {
		hd_map_each(&s->pt.topics, hd_webhook_kids_free_one, NULL);
		hd_pattern_fini(&s->pt);
		hd_map_fini(&s->skipped_set);
	}
	hd_lease_fini(&s->st.lease);
	hd_attempts_fini(&s->attempts);
	free(s->change); /* its reply was answered at the kill or the stop */
	free(s);
}

static void timer_closed(uv_handle_t *h)
{
	struct hd_webhook_sub *s = h->data;
	s->timer_closed = true;
	hd_webhook_sub_release(s);
}

/* Frees a deleted subscription once nothing points at it. */
void hd_webhook_sub_release(struct hd_webhook_sub *s)
{
	if (!s->deleted || s->refs > 0 || s->st.ncalls > 0 || s->st.ndead > 0 || !s->timer_closed)
		return;
	struct hd_webhook_sub **pp = &s->w->zombies;
	while (*pp && *pp != s)
		pp = &(*pp)->znext;
	if (*pp)
		*pp = s->znext;
	struct hd_webhook_sub *p = s->parent;
	hd_webhook_sub_free(s);
	if (p) {
		p->refs--;
		hd_webhook_sub_release(p);
	}
}

/* Starts (or restarts) delivering: watch the topic (a pattern: its
 * prefix, list the matching topics and start every child) and pump. */
void hd_webhook_sub_activate(struct hd_webhook_sub *s)
{
	if (s->parent) {
		/* Woken by the parent's prefix watch; on the next loop turn. */
		s->st.last_known = false;
		hd_webhook_pump_soon(s);
		return;
	}
	if (!s->watching && !s->w->stopping) {
		int rc = s->pattern ? hd_pattern_watch(&s->pt)
				    : hd_hub_watch(s->w->hub, s->cfg.topic, &s->watch);
		if (rc == 0)
			s->watching = true;
		else
			hd_log_warn(
				"webhook_watch_failed sub=%s topic=%s (new events are picked up "
				"only by retries and restarts)",
				s->id, s->cfg.topic);
	}
	if (s->pattern) {
		if (!s->listed && !s->pt.listing && !s->w->stopping)
			hd_webhook_kids_list_start(s);
		hd_map_each(&s->pt.topics, activate_kid, NULL);
		return;
	}
	s->st.last_known = false; /* read once to learn the topic's state */
	hd_webhook_pump(s);
}

static void activate_kid(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_webhook_sub_activate(value);
}

/* Stops s for good and puts it on the zombies until nothing points at it. */
void hd_webhook_sub_kill(struct hd_webhook_sub *s)
{
	struct hd_webhooks *w = s->w;
	s->deleted = true;
	hd_webhook_own_forget(s, HD_ENOTFOUND);
	hd_owned_remove(&s->own, true, false);
	if (s->st.global_wait) {
		s->st.global_wait = false;
		w->global_waiters--;
	}
	if (s->st.sub_wait) {
		s->st.sub_wait = false;
		s->parent->kid_waiters--;
	}
	hd_webhook_pump_cancel(s, false);
	if (s->pattern)
		hd_pattern_stop(&s->pt);
	else if (s->watching)
		hd_hub_unwatch(w->hub, &s->watch);
	s->watching = false;
	s->znext = w->zombies;
	w->zombies = s;
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, timer_closed);
}

/* Moves s to deliver from offset `first` on. */
void hd_webhook_sub_reposition(struct hd_webhook_sub *s, uint64_t first)
{
	hd_webhook_pump_cancel(s, false);
	hd_lease_fini(&s->st.lease);
	hd_lease_init(&s->st.lease, first ? first - 1 : 0, HD_WEBHOOK_WINDOW);
	s->st.gen++;
	/* On a node that does not deliver it: kept until it does (own.c). */
	if (hd_webhook_own_changed(s, HD_WEBHOOK_CHANGE_MOVED, NULL, 0))
		return;
	hd_webhook_record_changed(s);
	hd_webhook_sub_activate(s);
}

/* A secret from text ("" = a new one) into out. */
int hd_webhook_sub_make_secret(const char *text, struct hd_webhook_secret *out,
			       struct hd_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!text[0]) {
		if (hd_signature_secret_generate(out->text, sizeof(out->text)))
			return hd_error_set(err, HD_EINTERNAL, "no secret could be generated");
	} else {
		snprintf(out->text, sizeof(out->text), "%s", text);
	}
	return hd_signature_secret_parse(out->text, &out->key, err);
}

/* ---- JSON of one subscription ----------------------------------------- */

static void time_json(struct hd_buf *b, const char *name, int64_t ms)
{
	char t[40];
	if (!ms) {
		hd_buf_printf(b, ",\"%s\":null", name);
		return;
	}
	hd_clock_format_rfc3339(ms, t, sizeof(t));
	hd_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

static int by_topic(const void *a, const void *b)
{
	const struct hd_webhook_sub *x = *(const struct hd_webhook_sub *const *)a;
	const struct hd_webhook_sub *y = *(const struct hd_webhook_sub *const *)b;
	return strcmp(x->cfg.topic, y->cfg.topic);
}

static size_t pending_of(const struct hd_webhook_sub *s)
{
	size_t pending = 0;
	for (uint64_t o = s->st.lease.floor + 1; o < s->st.lease.next; o++)
		pending += hd_lease_state_of(&s->st.lease, o) == HD_LEASE_READY;
	return pending;
}

/* The per-topic part of a pattern subscription's JSON: the sums over its
 * children, and the first TOPICS_SHOWN children by name. */
static void pattern_json(struct hd_buf *b, const struct hd_webhook_sub *p)
{
	struct hd_webhook_kids_list c = {.a = hd_calloc(p->pt.topics.count + 1, sizeof(*c.a))};
	uint64_t delivered = 0, failed = 0, dead = 0, lag = 0;
	size_t inflight = 0, pending = 0;
	int64_t last_success = 0;
	const struct hd_webhook_sub *last_fail = NULL;
	hd_map_each(&p->pt.topics, hd_webhook_kids_collect, &c);
	qsort(c.a, c.n, sizeof(*c.a), by_topic);
	hd_buf_puts(b, ",\"pattern\":true,\"topics\":[");
	for (size_t i = 0; i < c.n; i++) {
		const struct hd_webhook_sub *s = c.a[i];
		uint64_t l = s->st.topic_last > s->st.lease.floor
				     ? s->st.topic_last - s->st.lease.floor
				     : 0;
		size_t pend = pending_of(s);
		delivered += s->st.delivered;
		failed += s->st.failed_attempts;
		dead += s->st.dead_lettered;
		lag += l;
		inflight += s->st.ncalls;
		pending += pend;
		if (s->st.last_success_ms > last_success)
			last_success = s->st.last_success_ms;
		if (s->st.last_failure_ms &&
		    (!last_fail || s->st.last_failure_ms > last_fail->st.last_failure_ms))
			last_fail = s;
		if (i >= TOPICS_SHOWN)
			continue;
		hd_buf_printf(b, "%s{\"topic\":\"", i ? "," : "");
		hd_buf_json_escape(b, s->cfg.topic, strlen(s->cfg.topic));
		hd_buf_printf(
			b,
			"\",\"position\":%" PRIu64 ",\"next\":%" PRIu64 ",\"last_offset\":%" PRIu64
			",\"lag\":%" PRIu64 ",\"in_flight\":%zu,\"pending_retries\":%zu"
			",\"delivered\":%" PRIu64 ",\"failed_attempts\":%" PRIu64
			",\"dead_lettered\":%" PRIu64 "}",
			s->st.lease.floor, s->st.lease.next, s->st.topic_last, l, s->st.ncalls,
			pend, s->st.delivered, s->st.failed_attempts, s->st.dead_lettered);
	}
	hd_buf_printf(b,
		      "],\"topics_count\":%zu,\"topics_truncated\":%s,\"topics_skipped\":%" PRIu64
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
		hd_clock_format_rfc3339(last_fail->st.last_failure_ms, t, sizeof(t));
		hd_buf_printf(b, ",\"last_failure\":{\"time\":\"%s\",\"topic\":\"", t);
		hd_buf_json_escape(b, last_fail->cfg.topic, strlen(last_fail->cfg.topic));
		hd_buf_printf(b, "\",\"status\":%d,\"error\":\"", last_fail->st.last_status);
		hd_buf_json_escape(b, last_fail->st.last_error, strlen(last_fail->st.last_error));
		hd_buf_puts(b, "\"}");
	} else {
		hd_buf_puts(b, ",\"last_failure\":null");
	}
	free(c.a);
}

void hd_webhook_sub_json(struct hd_buf *b, const struct hd_webhook_sub *s, const char *secret)
{
	size_t pending = pending_of(s);
	hd_buf_printf(b, "{\"id\":\"%s\",", s->id);
	hd_sub_config_json(b, &s->cfg);
	hd_buf_printf(b, ",\"state\":\"%s\",\"reason\":", hd_webhook_sub_state_names[s->state]);
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
		      s->st.lease.floor, s->st.lease.next, s->st.topic_last,
		      s->st.topic_last > s->st.lease.floor ? s->st.topic_last - s->st.lease.floor
							   : 0,
		      s->st.ncalls, pending, s->streak, s->st.delivered, s->st.failed_attempts,
		      s->st.dead_lettered);
	time_json(b, "last_success", s->st.last_success_ms);
	if (s->st.last_failure_ms) {
		char t[40];
		hd_clock_format_rfc3339(s->st.last_failure_ms, t, sizeof(t));
		hd_buf_printf(b, ",\"last_failure\":{\"time\":\"%s\",\"status\":%d,\"error\":\"", t,
			      s->st.last_status);
		hd_buf_json_escape(b, s->st.last_error, strlen(s->st.last_error));
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
