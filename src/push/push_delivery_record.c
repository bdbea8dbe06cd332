/*
 * push_delivery_record — the durable record of a push subscription (kind
 * HD_PUSH_DELIVERY_RECORD_KIND, key its id): its JSON (also the answers'),
 * coalesced writes with the answers that wait for them, and loading every
 * record at start. See push_delivery_impl.h.
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends s as a JSON string. */
void hd_push_delivery_record_jstr(struct hd_buf *b, const char *s)
{
	hd_buf_putc(b, '"');
	hd_buf_json_escape(b, s, strlen(s));
	hd_buf_putc(b, '"');
}


static void pos_put(struct hd_push_delivery_json_ctx *j, const char *topic, uint64_t pos)
{
	hd_buf_puts(j->b, j->first ? "" : ",");
	j->first = false;
	hd_push_delivery_record_jstr(j->b, topic);
	hd_buf_printf(j->b, ":%llu", (unsigned long long)pos);
}

static void pos_json(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_stream *st = value;
	pos_put(arg, key, st->lease.floor);
}

struct loaded_ctx {
	struct hd_push_delivery_json_ctx j;
	const struct hd_pattern *pt;
};

/* A loaded position whose topic has no stream yet (the pattern's list has
 * not reached it): kept, so that a write before the list ends loses none. */
static void loaded_json(const char *key, void *value, void *arg)
{
	struct loaded_ctx *c = arg;
	if (!hd_pattern_get(c->pt, key))
		pos_put(&c->j, key, *(const uint64_t *)value);
}

/* Appends the subscription's members (the record's and the answer's). */
void hd_push_delivery_record_json(struct hd_buf *b, const struct hd_push_delivery_sub *s, bool record)
{
	char created[40];
	hd_buf_puts(b, "{\"id\":");
	hd_push_delivery_record_jstr(b, s->id);
	if (record) {
		hd_buf_printf(b, ",\"created\":%lld,", (long long)s->created_ms);
	} else {
		hd_clock_format_rfc3339(s->created_ms, created, sizeof(created));
		hd_buf_printf(b, ",\"created\":\"%s\",", created);
	}
	hd_push_sub_config_json(b, &s->cfg);
	hd_buf_printf(b, ",\"state\":\"%s\",\"positions\":{",
		      s->state == HD_PUSH_DELIVERY_PAUSED ? "paused" : "active");
	struct loaded_ctx c = {.j = {.b = b, .first = true}, .pt = &s->pt};
	if (s->pattern) {
		hd_map_each(&s->positions, loaded_json, &c);
		hd_map_each(&s->pt.topics, pos_json, &c.j);
	} else if (s->exact) {
		pos_json(s->exact->topic, s->exact, &c.j);
	}
	hd_buf_puts(b, "}");
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

void hd_push_delivery_record_answer(struct hd_push_delivery_pending *p, struct hd_push_delivery_sub *s, int err)
{
	while (p) {
		struct hd_push_delivery_pending *next = p->next;
		if (err) {
			p->done(p->arg, 0, NULL, err, "the push subscription could not be stored");
		} else if (p->status == 204) {
			p->done(p->arg, 204, "", 0, NULL);
		} else {
			struct hd_buf b;
			hd_buf_init(&b, HD_PUSH_DELIVERY_RECORD_MAX);
			hd_push_delivery_record_json(&b, s, false);
			hd_buf_putc(&b, '\0');
			p->done(p->arg, p->status, b.data, 0, NULL);
			hd_buf_fini(&b);
		}
		free(p);
		p = next;
	}
}

static void record_put(struct hd_push_delivery_sub *s);

void hd_push_delivery_record_done(struct hd_record_op *op)
{
	struct hd_push_delivery_put *p = op->arg;
	struct hd_push_delivery_sub *s = p->s;
	s->puts--;
	if (!op->err && op->fenced_out) {
		/* Another node holds the lease now: stop, write nothing more. */
		hd_log_warn("push_write_fenced sub=%s token=%llu", s->id,
			    (unsigned long long)op->fence_token);
		op->err = HD_EUNAVAIL;
		hd_push_own_fenced(s, op->fence_token);
	}
	free(p->value);
	hd_push_delivery_record_answer(p->answers, s, op->err);
	free(p);
	if (s->deleted) {
		hd_push_delivery_sub_release(s);
		return;
	}
	if (s->dirty && !s->d->stopping)
		record_put(s);
}

static void record_put(struct hd_push_delivery_sub *s)
{
	struct hd_push_delivery_put *p = hd_calloc(1, sizeof(*p));
	struct hd_buf b;
	if (!hd_push_own_fence(s, &p->op)) {
		/* Not this node's to write (push_own.c): the owner writes it. */
		s->dirty = false;
		hd_push_delivery_record_answer(s->waiting, s, HD_EUNAVAIL);
		s->waiting = NULL;
		free(p);
		return;
	}
	hd_buf_init(&b, HD_PUSH_DELIVERY_RECORD_MAX);
	hd_push_delivery_record_json(&b, s, true);
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
	p->op.done = hd_push_delivery_record_done;
	p->op.arg = p;
	s->puts++;
	int rc = hd_hub_record_op(s->d->hub, &p->op);
	if (rc) {
		p->op.err = rc;
		hd_push_delivery_record_done(&p->op);
	}
}

/* s changed: written now when no write runs, else after it. */
void hd_push_delivery_record_changed(struct hd_push_delivery_sub *s)
{
	s->dirty = true;
	if (s->puts == 0 && !s->deleted)
		record_put(s);
}

void hd_push_delivery_record_answer_after(struct hd_push_delivery_sub *s, int status, hd_push_delivery_done_fn done,
				 void *arg)
{
	struct hd_push_delivery_pending *p = hd_calloc(1, sizeof(*p));
	p->done = done;
	p->arg = arg;
	p->status = status;
	p->next = s->waiting;
	s->waiting = p;
	hd_push_delivery_record_changed(s);
}

static void each_sub_run(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_push_delivery_sub_run(value);
}

/* Positions of the record v into s->positions (replaced). */
static void positions_load(struct hd_push_delivery_sub *s, json_t *v)
{
	json_t *pos = json_object_get(v, "positions"), *val;
	const char *k;
	json_object_foreach(pos, k, val) {
		uint64_t *p = hd_map_get(&s->positions, k);
		if (p) {
			*p = (uint64_t)json_integer_value(val);
			continue;
		}
		p = hd_malloc(sizeof(*p));
		*p = (uint64_t)json_integer_value(val);
		if (hd_map_put(&s->positions, k, p))
			free(p);
	}
}

static void counters_load(struct hd_push_delivery_sub *s, json_t *v)
{
	s->state = json_is_string(json_object_get(v, "state")) &&
			   strcmp(json_string_value(json_object_get(v, "state")), "paused") == 0
		   ? HD_PUSH_DELIVERY_PAUSED : HD_PUSH_DELIVERY_ACTIVE;
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
}

static void stream_apply(const char *key, void *value, void *arg)
{
	struct hd_push_delivery_stream *st = value;
	struct hd_push_delivery_sub *s = arg;
	uint64_t *p = hd_map_get(&s->positions, key);
	if (p && !st->seeking && (*p != st->lease.floor || st->nevs || st->lease.next != *p + 1))
		hd_push_delivery_stream_reset(st, *p);
}

void hd_push_delivery_record_apply(struct hd_push_delivery_sub *s, json_t *v)
{
	counters_load(s, v);
	positions_load(s, v);
	if (s->pattern)
		hd_map_each(&s->pt.topics, stream_apply, s);
	else if (s->exact)
		stream_apply(s->exact->topic, s->exact, s);
}

struct hd_push_delivery_sub *hd_push_delivery_record_load_one(struct hd_push_delivery *d,
							       const struct hd_record *rec)
{
	struct hd_push_sub_config c;
	struct hd_error err = {0};
	json_t *v = json_loads(rec->value, 0, NULL);
	struct hd_push_delivery_sub *s;

	if (!json_is_object(v) || hd_push_sub_config_load(v, &c, &err) ||
	    !(s = hd_push_delivery_sub_new(d, rec->key, &c))) {
		hd_log_warn("push subscription record %s not loaded: %s", rec->key, err.msg);
		json_decref(v);
		return NULL;
	}
	s->created_ms = json_integer_value(json_object_get(v, "created"));
	counters_load(s, v);
	positions_load(s, v);
	s->listed = false;
	json_decref(v);
	hd_push_delivery_sub_activate(s, false, &(struct hd_start){0});
	hd_push_own_add(s);
	return s;
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
		hd_push_delivery_record_load_one(d, &op->recs[i]);
	if (n)
		snprintf(d->load_after, sizeof(d->load_after), "%s", op->recs[n - 1].key);
	hd_engine_record_op_fini(op);
	if (d->stopping)
		return;
	if (n == op->limit) {
		hd_push_delivery_record_load(d);
		return;
	}
	d->loaded = true;
	hd_log_info("push subscriptions loaded: %zu", d->subs.count);
	hd_push_own_start(d);
	/* The streams made while loading waited for loaded. */
	hd_map_each(&d->subs, each_sub_run, NULL);
	if (d->on_loaded)
		d->on_loaded(d->on_loaded_arg);
}

void hd_push_delivery_record_load(struct hd_push_delivery *d)
{
	hd_engine_record_list_init(&d->load, HD_PUSH_DELIVERY_RECORD_KIND, NULL, d->load_after, 500,
				   load_done, d);
	int rc = hd_hub_record_op(d->hub, &d->load);
	if (rc) {
		d->load.err = rc;
		load_done(&d->load);
	}
}

