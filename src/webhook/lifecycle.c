/*
 * lifecycle — the webhook deliverer's life (delivery.h): new, start (load
 * every subscription record, then the pattern children's, then activate
 * them all), stop (the last writes) and free.
 * Layer: webhook. Callers: main.c through delivery.h; own.c (a record read
 * again when this node gains a subscription, or seen first by a re-list).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- load ------------------------------------------------------------- */

static int64_t num_member(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* The position and the counters of a record (a subscription's or a
 * pattern child's). */
static void restore_position(struct hd_webhook_sub *s, json_t *o, uint64_t floor)
{
	const char *acked = json_string_value(json_object_get(o, "acked"));
	if (acked && hd_lease_restore(&s->st.lease, floor, acked) != 0)
		hd_log_warn("webhook_acked_ignored sub=%s", s->key);
	snprintf(s->st.epoch, sizeof(s->st.epoch), "%s",
		 json_string_value(json_object_get(o, "epoch")) ?: "");
	snprintf(s->st.last_error, sizeof(s->st.last_error), "%s",
		 json_string_value(json_object_get(o, "last_error")) ?: "");
	s->st.delivered = (uint64_t)num_member(o, "delivered");
	s->st.failed_attempts = (uint64_t)num_member(o, "failed");
	s->st.dead_lettered = (uint64_t)num_member(o, "dead_lettered");
	s->st.last_success_ms = num_member(o, "last_success");
	s->st.last_failure_ms = num_member(o, "last_failure");
	s->st.last_status = (int)num_member(o, "last_status");
}

/* A pattern child's record "<id>/<topic>": attached to its parent (its
 * position restored if the child exists: a re-read after a gain); one
 * whose parent is gone is deleted. */
void hd_webhook_lifecycle_load_kid(struct hd_webhooks *w, const struct hd_record *rec)
{
	char id[HD_SUB_ID_LEN + 1];
	const char *slash = strchr(rec->key, '/');
	json_t *o = json_loads(rec->value, 0, NULL);
	struct hd_webhook_sub *p = NULL;
	if (slash && (size_t)(slash - rec->key) == HD_SUB_ID_LEN) {
		memcpy(id, rec->key, HD_SUB_ID_LEN);
		id[HD_SUB_ID_LEN] = '\0';
		p = hd_map_get(&w->subs, id);
	}
	if (!p || !p->pattern) {
		/* Another node may have made the parent a moment ago: only
		 * the one owning engine deletes orphans, at its start. */
		if (!hd_owner_shared(w->owner)) {
			hd_log_warn("webhook_topic_record_orphan key=%s (deleted)", rec->key);
			hd_webhook_record_delete(w, HD_WEBHOOK_TOPIC_RECORD_KIND, rec->key, NULL);
		}
		goto out;
	}
	if (!json_is_object(o)) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"not JSON\"", rec->key);
		goto out;
	}
	uint64_t floor = (uint64_t)num_member(o, "floor");
	struct hd_webhook_sub *s = hd_pattern_get(&p->pt, slash + 1);
	if (s) {
		hd_webhook_pump_cancel(s, false);
		hd_webhook_pump_drop_ahead(s);
		hd_lease_fini(&s->st.lease);
		hd_lease_init(&s->st.lease, floor, HD_WEBHOOK_WINDOW);
		s->st.gen++;
	} else {
		s = hd_webhook_kids_add(p, slash + 1, floor);
	}
	if (!s)
		goto out;
	restore_position(s, o, floor);
	s->created_ms = num_member(o, "created");
out:
	json_decref(o);
}

/* The state, reason, streak and secrets of a subscription record. */
static void apply_state(struct hd_webhook_sub *s, json_t *o)
{
	struct hd_error err = {0};
	const char *state = json_string_value(json_object_get(o, "state"));
	json_t *secrets = json_object_get(o, "secrets"), *v;
	size_t i;
	s->created_ms = num_member(o, "created");
	s->state = state && strcmp(state, "paused") == 0     ? HD_WEBHOOK_PAUSED
		   : state && strcmp(state, "disabled") == 0 ? HD_WEBHOOK_DISABLED
							     : HD_WEBHOOK_ACTIVE;
	snprintf(s->reason, sizeof(s->reason), "%s",
		 json_string_value(json_object_get(o, "reason")) ?: "");
	s->streak = (uint32_t)num_member(o, "streak");
	s->nsecrets = 0;
	json_array_foreach(secrets, i, v)
	{
		struct hd_webhook_secret sec;
		const char *text = json_string_value(json_object_get(v, "secret"));
		if (s->nsecrets >= HD_SIGNATURE_SECRETS_MAX || !text ||
		    hd_webhook_sub_make_secret(text, &sec, &err))
			continue;
		sec.until_ms = num_member(v, "until");
		s->secrets[s->nsecrets++] = sec;
	}
	if (s->nsecrets == 0) {
		hd_log_error("webhook_secret_missing sub=%s (a new one was made; rotate it)",
			     s->id);
		hd_webhook_sub_make_secret("", &s->secrets[0], &err);
		s->nsecrets = 1;
		hd_webhook_record_changed(s);
	}
}

void hd_webhook_lifecycle_apply(struct hd_webhook_sub *s, json_t *o)
{
	uint64_t floor = (uint64_t)num_member(o, "floor");
	if (!s->pattern) {
		hd_webhook_pump_cancel(s, false);
		hd_webhook_pump_drop_ahead(s);
		hd_lease_fini(&s->st.lease);
		hd_lease_init(&s->st.lease, floor, HD_WEBHOOK_WINDOW);
		s->st.gen++;
		restore_position(s, o, floor);
	}
	apply_state(s, o);
}

struct hd_webhook_sub *hd_webhook_lifecycle_load_one(struct hd_webhooks *w,
						     const struct hd_record *rec)
{
	struct hd_error err = {0};
	struct hd_sub_config cfg;
	struct hd_webhook_sub *s = NULL;
	json_t *o = json_loads(rec->value, 0, NULL);

	if (!json_is_object(o) || hd_sub_config_load(json_object_get(o, "config"), &cfg, &err)) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"%s\"", rec->key,
			     err.msg[0] ? err.msg : "not JSON");
		goto out;
	}
	uint64_t floor = (uint64_t)num_member(o, "floor");
	s = hd_webhook_sub_new(w, rec->key, &cfg, floor);
	if (!s) {
		hd_log_error("webhook_record_ignored sub=%s reason=\"over "
			     "--webhook-subscriptions-max\"",
			     rec->key);
		goto out;
	}
	restore_position(s, o, floor);
	apply_state(s, o);
out:
	json_decref(o);
	return s;
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
		hd_webhook_lifecycle_load_kid(w, &op->recs[i]);
		snprintf(w->load_after, sizeof(w->load_after), "%s", op->recs[i].key);
	}
	more = !op->err && op->n >= HD_WEBHOOK_LIST_PAGE && !w->stopping;
	hd_engine_record_op_fini(op);
	if (more)
		load_kids_page(w);
	else
		load_end(w);
}

/* The children of the pattern subscriptions, HD_WEBHOOK_LIST_PAGE records a time. */
static void load_kids_page(struct hd_webhooks *w)
{
	hd_engine_record_list_init(&w->load_kids, HD_WEBHOOK_TOPIC_RECORD_KIND, NULL, w->load_after,
				   HD_WEBHOOK_LIST_PAGE, load_kids_done, w);
	hd_webhook_record_submit(w, &w->load_kids);
}

static void load_done(struct hd_record_op *op)
{
	struct hd_webhooks *w = op->arg;
	if (op->err)
		hd_log_error("webhooks_load_failed err=%d", op->err);
	for (size_t i = 0; i < op->n && !w->stopping; i++)
		hd_webhook_lifecycle_load_one(w, &op->recs[i]);
	hd_engine_record_op_fini(op);
	if (w->stopping) { /* the engine may be gone: no next page */
		load_end(w);
		return;
	}
	w->load_after[0] = '\0';
	load_kids_page(w);
}

static void load_end(struct hd_webhooks *w)
{
	w->loaded = true;
	if (w->subs.count)
		hd_log_info("webhooks_loaded subscriptions=%zu", w->subs.count);
	struct hd_webhook_sub **all = hd_calloc(w->subs.count + 1, sizeof(*all));
	struct hd_webhook_kids_list l = {.a = (const struct hd_webhook_sub **)all};
	hd_map_each(&w->subs, hd_webhook_kids_collect, &l); /* every one */
	for (size_t i = 0; i < l.n; i++)
		if (!w->stopping)
			hd_webhook_sub_activate(all[i]);
	free(all);
	hd_webhook_own_start(w);
	if (w->on_loaded)
		w->on_loaded(w->loaded_arg);
}

/* ---- start, new, stop, free ------------------------------------------ */

void hd_webhooks_start(struct hd_webhooks *w, void (*loaded)(void *arg), void *arg)
{
	w->on_loaded = loaded;
	w->loaded_arg = arg;
	hd_engine_record_list_init(&w->load, HD_WEBHOOK_RECORD_KIND, NULL, NULL,
				   w->opts.max_subscriptions, load_done, w);
	hd_webhook_record_submit(w, &w->load);
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
	hd_webhook_own_init(w);
	return w;
}

static void stop_sub(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	(void)key;
	hd_webhook_own_forget(s, HD_EUNAVAIL);
	if (s->pattern)
		hd_map_each(&s->pt.topics, stop_sub, arg);
	hd_webhook_pump_cancel(s, true);
	if (s->st.global_wait) {
		s->st.global_wait = false;
		s->w->global_waiters--;
	}
	if (s->pattern)
		hd_pattern_stop(&s->pt);
	else if (s->watching)
		hd_hub_unwatch(s->w->hub, &s->watch);
	s->watching = false;
	uv_timer_stop(&s->timer);
	hd_webhook_pump_drop_ahead(s);
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, NULL);
	/* The last write: the store applies writes in order, so this one
	 * lands after any still in flight. */
	if (s->dirty)
		hd_webhook_record_put(s, NULL, 0);
}

void hd_webhooks_stop(struct hd_webhooks *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	/* Queued writes are issued by stop_sub's last write. */
	uv_timer_stop(&w->flush);
	while (w->flushq) {
		struct hd_webhook_sub *s = w->flushq;
		w->flushq = s->fnext;
		s->queued = false;
		s->refs--;
		hd_webhook_sub_release(s);
	}
	uv_close((uv_handle_t *)&w->flush, NULL);
	hd_map_each(&w->subs, stop_sub, NULL);
	/* After the last writes: another node may take over at once. */
	hd_webhook_own_stop(w);
	hd_http_client_close(w->http);
}

static void free_sub(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_webhook_sub_free(value);
}

void hd_webhooks_free(struct hd_webhooks *w)
{
	if (!w)
		return;
	hd_map_each(&w->subs, free_sub, NULL);
	hd_map_fini(&w->subs);
	while (w->zombies) {
		struct hd_webhook_sub *s = w->zombies;
		w->zombies = s->znext;
		hd_webhook_sub_free(s);
	}
	hd_http_client_free(w->http);
	hd_owner_free(w->owner);
	free(w);
}
