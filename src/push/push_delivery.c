/*
 * push_delivery — see push_delivery.h: the subscriptions (an exact topic's
 * stream, a pattern's expansion into streams) and the public operations.
 * The streams, the fan-out and the record are in the files named in
 * push_delivery_impl.h.
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/uuid.h"
#include "hub/topic_pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t loaded_pos(struct hd_push_delivery_sub *s, const char *topic, bool *found)
{
	uint64_t *p = hd_map_get(&s->positions, topic);
	*found = p != NULL;
	return p ? *p : 0;
}

static void pt_listed(void *owner, void *item, const struct hd_topic_info *t)
{
	struct hd_push_delivery_sub *s = owner;
	bool found;
	if (item || hd_pattern_admit(&s->pt, t->name))
		return;
	uint64_t pos = loaded_pos(s, t->name, &found);
	if (!found && s->fresh_latest)
		pos = t->last;
	struct hd_push_delivery_stream *st = hd_push_delivery_stream_new(s, t->name, pos, false);
	if (hd_pattern_add(&s->pt, t->name, st)) {
		hd_push_delivery_stream_kill(st);
		return;
	}
	if (!found && s->fresh_time_ms)
		hd_push_delivery_stream_seek(st, s->fresh_time_ms);
	else
		hd_push_delivery_stream_pump(st);
}

static void pt_on_watch(void *owner, void *item, const char *topic,
			const struct hd_stored_event *ev)
{
	struct hd_push_delivery_sub *s = owner;
	struct hd_push_delivery_stream *st = item;
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
		st = hd_push_delivery_stream_new(s, topic, pos, false);
		if (hd_pattern_add(&s->pt, topic, st)) {
			hd_push_delivery_stream_kill(st);
			return;
		}
		if (!found && s->fresh_time_ms) {
			hd_push_delivery_stream_seek(st, s->fresh_time_ms);
			return;
		}
	}
	hd_push_delivery_stream_pump(st);
}

static void pt_list_done(void *owner, int err)
{
	struct hd_push_delivery_sub *s = owner;
	s->refs--;
	if (s->deleted) {
		hd_push_delivery_sub_release(s);
		return;
	}
	s->listed = true;
	if (s->fresh_latest || s->fresh_time_ms) {
		s->fresh_latest = false;
		s->fresh_time_ms = 0;
		hd_push_delivery_record_changed(s);
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
	hd_push_delivery_stream_pump(value);
}

static void each_kill(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_push_delivery_stream_kill(value);
}

static void each_free(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

/* Starts or wakes every stream of s. */
void hd_push_delivery_sub_run(struct hd_push_delivery_sub *s)
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
		hd_push_delivery_stream_pump(s->exact);
	}
}

struct hd_push_delivery_sub *hd_push_delivery_sub_new(struct hd_push_delivery *d, const char *id,
			      const struct hd_push_sub_config *c)
{
	struct hd_push_delivery_sub *s = hd_calloc(1, sizeof(*s));
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

void hd_push_delivery_sub_release(struct hd_push_delivery_sub *s)
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
void hd_push_delivery_sub_stop(struct hd_push_delivery_sub *s)
{
	if (s->pattern) {
		hd_pattern_stop(&s->pt);
		hd_map_each(&s->pt.topics, each_kill, NULL);
		hd_pattern_clear(&s->pt);
	} else if (s->exact) {
		hd_push_delivery_stream_kill(s->exact);
		s->exact = NULL;
	}
}

void hd_push_delivery_sub_activate(struct hd_push_delivery_sub *s, bool fresh, const struct hd_start *start)
{
	if (s->pattern) {
		s->fresh_latest = fresh && start->kind == HD_START_LATEST;
		if (fresh && start->kind == HD_START_TIME)
			s->fresh_time_ms = start->time_ms > 0 ? start->time_ms : 1;
	} else {
		bool found;
		uint64_t pos = loaded_pos(s, s->cfg.topic, &found);
		bool latest = fresh && start->kind == HD_START_LATEST;
		if (fresh && start->kind == HD_START_OFFSET && start->offset > 0)
			pos = start->offset - 1;
		s->exact = hd_push_delivery_stream_new(s, s->cfg.topic, pos, latest);
		if (fresh && start->kind == HD_START_TIME) {
			hd_push_delivery_stream_seek(s->exact, start->time_ms);
			return;
		}
	}
	hd_push_delivery_sub_run(s);
}

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
	if (!d->opts.sub_inflight_max)
		d->opts.sub_inflight_max = 1000;
	if (!d->opts.pattern_topics_max)
		d->opts.pattern_topics_max = 10000;
	if (!d->opts.backoff_base_ms)
		d->opts.backoff_base_ms = 1000;
	hd_map_init(&d->subs, d->opts.max_subs);
	hd_map_init(&d->silent, HD_PUSH_DELIVERY_SILENT_MAP_MAX);
	hd_push_own_init(d);
	d->owner = hd_owner_new(loop, hub, hd_hub_node(hub));
	return d;
}

bool hd_push_delivery_loaded(const struct hd_push_delivery *d)
{
	return d->loaded;
}

void hd_push_delivery_on_loaded(struct hd_push_delivery *d, void (*fn)(void *arg), void *arg)
{
	d->on_loaded = fn;
	d->on_loaded_arg = arg;
}

static void each_sub_stop(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_push_delivery_sub_stop(value);
}

void hd_push_delivery_start(struct hd_push_delivery *d)
{
	hd_push_delivery_record_load(d);
}

void hd_push_delivery_stop(struct hd_push_delivery *d)
{
	if (!d || d->stopping)
		return;
	d->stopping = true;
	hd_map_each(&d->subs, each_sub_stop, NULL);
	/* After the last writes were issued: another node may take over. */
	hd_push_own_stop(d);
}

static void each_sub_free(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_sub *s = value;
	(void)key;
	(void)arg;
	hd_push_delivery_record_answer(s->waiting, s, HD_EUNAVAIL);
	s->waiting = NULL;
	s->deleted = true;
	s->refs = 0;
	s->puts = 0;
	hd_push_delivery_sub_release(s);
}

void hd_push_delivery_free(struct hd_push_delivery *d)
{
	if (!d)
		return;
	hd_map_each(&d->subs, each_sub_free, NULL);
	hd_map_fini(&d->subs);
	hd_map_each(&d->silent, each_free, NULL);
	hd_map_fini(&d->silent);
	hd_owner_free(d->owner);
	free(d);
}

static struct hd_push_delivery_sub *find(struct hd_push_delivery *d, const char *id,
			   hd_push_delivery_done_fn done, void *arg)
{
	struct hd_push_delivery_sub *s = d->loaded ? hd_map_get(&d->subs, id) : NULL;
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
	struct hd_push_delivery_sub *s;
	size_t n = 3;

	if (!d->loaded || d->stopping) {
		done(arg, 0, NULL, HD_EUNAVAIL, "push subscriptions are loading; retry shortly");
		return;
	}
	hd_uuid_v4(uuid);
	memcpy(id, "ps_", 3);
	for (const char *p = uuid; *p && n < HD_PUSH_DELIVERY_ID_LEN; p++)
		if (*p != '-')
			id[n++] = *p;
	id[n] = '\0';
	s = hd_push_delivery_sub_new(d, id, c);
	if (!s) {
		done(arg, 0, NULL, HD_ELIMIT, "too many push subscriptions");
		return;
	}
	s->created_ms = hd_now_ms();
	s->created_here = true;
	s->unstored = true;
	hd_push_own_add(s);
	hd_push_delivery_sub_activate(s, true, start);
	hd_push_delivery_record_answer_after(s, 201, done, arg);
}

void hd_push_delivery_delete(struct hd_push_delivery *d, const char *id,
			     hd_push_delivery_done_fn done, void *arg)
{
	struct hd_push_delivery_sub *s = find(d, id, done, arg);
	struct hd_push_delivery_put *p;
	if (!s)
		return;
	hd_map_del(&d->subs, s->id);
	hd_push_own_remove(s, true, HD_ENOTFOUND);
	hd_push_delivery_sub_stop(s);
	s->deleted = true;
	hd_push_delivery_record_answer(s->waiting, s, HD_ENOTFOUND);
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
	p->op.done = hd_push_delivery_record_done;
	p->op.arg = p;
	s->puts++;
	int rc = hd_hub_record_op(d->hub, &p->op);
	if (rc) {
		p->op.err = rc;
		hd_push_delivery_record_done(&p->op);
	}
}

void hd_push_delivery_pause(struct hd_push_delivery *d, const char *id, bool pause,
			    hd_push_delivery_done_fn done, void *arg)
{
	struct hd_push_delivery_sub *s = find(d, id, done, arg);
	if (!s || hd_push_own_change(s, true, pause, NULL, 0, done, arg))
		return;
	s->state = pause ? HD_PUSH_DELIVERY_PAUSED : HD_PUSH_DELIVERY_ACTIVE;
	hd_push_delivery_record_answer_after(s, 200, done, arg);
	if (!pause)
		hd_push_delivery_sub_run(s);
}

static void replay_one(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_stream *st = value;
	uint64_t from = *(uint64_t *)arg;
	(void)key;
	hd_push_delivery_stream_reset(st, from - 1);
	hd_push_delivery_stream_pump(st);
}

void hd_push_delivery_replay(struct hd_push_delivery *d, const char *id, const char *topic,
			     uint64_t from, hd_push_delivery_done_fn done, void *arg)
{
	struct hd_push_delivery_sub *s = find(d, id, done, arg);
	if (!s)
		return;
	if (s->pattern) {
		struct hd_push_delivery_stream *st = topic ? hd_pattern_get(&s->pt, topic) : NULL;
		if (topic && !st) {
			done(arg, 0, NULL, HD_ENOTFOUND, "the subscription delivers no such topic");
			return;
		}
		if (hd_push_own_change(s, false, false, topic, from, done, arg))
			return;
		if (st)
			replay_one(topic, st, &from);
		else
			hd_map_each(&s->pt.topics, replay_one, &from);
	} else {
		if (topic && strcmp(topic, s->cfg.topic)) {
			done(arg, 0, NULL, HD_ENOTFOUND, "the subscription delivers no such topic");
			return;
		}
		if (hd_push_own_change(s, false, false, topic, from, done, arg))
			return;
		replay_one(s->cfg.topic, s->exact, &from);
	}
	hd_push_delivery_record_answer_after(s, 200, done, arg);
}

static void list_one(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_json_ctx *j = arg;
	(void)key;
	hd_buf_puts(j->b, j->first ? "" : ",");
	j->first = false;
	hd_push_delivery_record_json(j->b, value, false);
}

void hd_push_delivery_list(struct hd_push_delivery *d, struct hd_buf *b)
{
	struct hd_push_delivery_json_ctx j = {.b = b, .first = true};
	hd_buf_puts(b, "{\"subscriptions\":[");
	hd_map_each(&d->subs, list_one, &j);
	hd_buf_puts(b, "]}");
}

int hd_push_delivery_info(struct hd_push_delivery *d, const char *id, struct hd_buf *b)
{
	struct hd_push_delivery_sub *s = hd_map_get(&d->subs, id);
	if (!s || s->deleted)
		return HD_ENOTFOUND;
	hd_push_delivery_record_json(b, s, false);
	return 0;
}

int hd_push_delivery_attempts(struct hd_push_delivery *d, const char *id, struct hd_buf *b)
{
	struct hd_push_delivery_sub *s = hd_map_get(&d->subs, id);
	char ts[40];
	if (!s || s->deleted)
		return HD_ENOTFOUND;
	hd_buf_puts(b, "{\"attempts\":[");
	for (size_t i = 0; i < s->nattempts; i++) {
		const struct hd_push_delivery_attempt *a =
			&s->attempts[(s->attempts_head + HD_PUSH_DELIVERY_ATTEMPTS_KEPT - 1 - i) % HD_PUSH_DELIVERY_ATTEMPTS_KEPT];
		hd_clock_format_rfc3339(a->time_ms, ts, sizeof(ts));
		hd_buf_printf(b, "%s{\"time\":\"%s\",\"topic\":", i ? "," : "", ts);
		hd_push_delivery_record_jstr(b, a->topic);
		hd_buf_printf(b, ",\"offset\":%llu,\"device\":", (unsigned long long)a->offset);
		hd_push_delivery_record_jstr(b, a->device);
		hd_buf_printf(b, ",\"result\":\"%s\",\"status\":%d,\"reason\":", a->result, a->status);
		hd_push_delivery_record_jstr(b, a->reason);
		hd_buf_puts(b, "}");
	}
	hd_buf_puts(b, "]}");
	return 0;
}
