/*
 * group_patterns — see group_patterns.h; the types are in
 * group_patterns_impl.h.
 *
 * Each part is an groups/group_part.h part (its lease window, row, reads and
 * dead letters) plus the topic's last offset known and a reference count.
 *
 * One fetch at a time per group (q.busy); other fetches wait in the group's
 * groups/group_waiters.h queue, and are retried when the group becomes idle,
 * when an event is committed to a matching topic (the prefix watch, always
 * on: it also discovers new topics), when an ack or nack frees something,
 * or when the next lease ends. A fetch reads its
 * parts one after the other (one hub read in flight), appending what it
 * hands out to one answer, until it has `max` events or visited every part.
 * A hub read may complete inside hd_hub_read: the walk loops instead of
 * recursing (`sync`).
 *
 * Parts are held by the group's list and by every request in flight that
 * points at them (refs); a deleted topic's part leaves the list at once and
 * is freed when the last request lets go.
 *
 * Shared leases. When the engine keeps the leases (hd_hub_glease_shared:
 * several nodes on Redis), every operation on the engine's state is in
 * group_patterns_shared.c (its header says how); this file calls it where
 * g->conf.shared. Topics created on another node reach this one through the
 * prefix watch (every node receives every event) and, in case an event was
 * missed, a re-list of every group every RELIST_MS. Held fetches retry at
 * least every SHARED_POLL_MS (another node's ack or lease end is not
 * announced).
 *
 * Layer: groups; loop thread. groups/groups.c calls the hd_group_patterns_*
 * functions of group_patterns.h; the private ones of group_patterns_impl.h
 * are for group_patterns_shared.c.
 */
#include "groups/group_patterns_impl.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "consume/lease.h"
#include "consume/pattern.h"
#include "core/log.h"
#include "core/map.h"
#include "groups/group_request.h"
#include "groups/group_part.h"
#include "groups/group_waiters.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Shared leases (see the top): how often held fetches try again, and how
 * often every group lists its pattern's topics again. */
#define SHARED_POLL_MS 1000
#define RELIST_MS 5000

static const struct hd_group_waiters_ops waiter_ops;
static const struct hd_group_part_ops part_ops;
static const struct hd_pattern_ops pattern_ops;

/* ---- small helpers ---------------------------------------------------- */

size_t hd_group_patterns_part_name(const char *pattern, const char *name, char *out, size_t out_len)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a 64: stable, as it is stored */
	for (const unsigned char *s = (const unsigned char *)pattern; *s; s++) {
		h ^= *s;
		h *= 1099511628211ull;
	}
	int n = snprintf(out, out_len, "%s*%016" PRIx64, name, h);
	return n < 0 ? 0 : (size_t)n;
}

static void make_key(char *out, size_t n, const char *pattern, const char *name)
{
	hd_group_patterns_part_name(pattern, name, out, n);
}

/* ---- parts ------------------------------------------------------------ */

void hd_group_patterns_part_unref(struct part *p)
{
	if (--p->refs == 0) {
		hd_group_part_fini(&p->base);
		free(p);
	}
}

struct part *hd_group_patterns_part_get(struct pgroup *g, const char *topic)
{
	return hd_pattern_get(&g->pt, topic);
}

static struct part *part_of(struct hd_group_part *base)
{
	return (struct part *)((char *)base - offsetof(struct part, base));
}

static void hold(void *owner, struct hd_group_part *base)
{
	struct pgroup *g = owner;
	if (base)
		part_of(base)->refs++;
	g->refs++;
}

static void release_part(void *owner, struct hd_group_part *base)
{
	struct pgroup *g = owner;
	if (base)
		hd_group_patterns_part_unref(part_of(base));
	g->refs--;
	hd_group_patterns_group_release(g);
}

static const struct hd_group_part_ops part_ops = {
	.hold = hold,
	.release = release_part,
};

/* Writes the parent row; answers req with status and answer (taken) once
 * it is durable. */
void hd_group_patterns_put_parent(struct pgroup *g, struct hd_http_request *req, int status,
				  struct hd_buf *answer)
{
	struct hd_group_part_reply *r = hd_group_part_reply_new(req, status, answer);
	hd_group_part_parent_put(&g->conf, r);
	hd_group_part_reply_done(r, 0);
}

/* Adds topic's part at floor, or returns NULL (counted) past the limits.
 * last is the topic's last offset known. */
static struct part *part_add(struct pgroup *g, const char *topic, uint64_t floor, uint64_t last)
{
	struct hd_group_patterns *pg = g->pg;
	if (hd_pattern_admit(&g->pt, topic) != 0 || pg->parts >= HD_GROUP_PARTS_MAX) {
		g->skipped++;
		if (hd_log_ratelimited(&g->conf.warn_ms))
			hd_log_warn("group_pattern_topic_skipped pattern=%s group=%s topic=%s"
				    " skipped=%" PRIu64,
				    g->pt.pattern, g->name, topic, g->skipped);
		return NULL;
	}
	struct part *p = hd_calloc(1, sizeof(*p));
	hd_group_part_init(&p->base, &g->conf, topic, floor);
	p->g = g;
	p->refs = 1;
	p->last = last;
	if (hd_pattern_add(&g->pt, p->base.topic, p) != 0) {
		hd_group_patterns_part_unref(p);
		return NULL;
	}
	g->parts = hd_realloc(g->parts, (g->nparts + 1) * sizeof(*g->parts));
	g->parts[g->nparts++] = p;
	pg->parts++;
	return p;
}

/* Takes p out of its group's list (its topic is gone). */
static void part_remove(struct pgroup *g, struct part *p)
{
	for (size_t i = 0; i < g->nparts; i++) {
		if (g->parts[i] == p) {
			memmove(&g->parts[i], &g->parts[i + 1],
				(g->nparts - i - 1) * sizeof(*g->parts));
			g->nparts--;
			break;
		}
	}
	hd_pattern_remove(&g->pt, p->base.topic);
	p->base.gone = true;
	g->pg->parts--;
	g->redeliveries_gone += g->conf.shared ? p->base.sh.redeliveries : p->base.lease.redeliveries;
	hd_group_patterns_part_unref(p);
}

/* A part was added at floor: its row (every node's load) and, for a group
 * being created with shared leases, the engine's group at floor. */
static void part_found(struct pgroup *g, struct part *p, uint64_t floor)
{
	hd_group_part_put(&p->base, NULL);
	if (g->conf.shared && g->create_req)
		hd_group_patterns_shared_part_set(g, p, floor);
}

/* What a part handed out last, from its lease window or the engine's state. */
static uint64_t part_next(const struct part *p)
{
	return p->base.conf->shared ? p->base.sh.next : p->base.lease.next;
}

/* ---- groups in memory ------------------------------------------------- */

/* A committed event of a matching topic (the pattern's prefix watch). */
static void on_watch(void *owner, void *item, const char *topic, const struct hd_stored_event *ev)
{
	struct pgroup *g = owner;
	struct part *p = item;
	if (!p) {
		/* A topic created after the group starts at its first event; one
		 * that got events while the creating LIST ran starts where a
		 * "latest" start would have put it. */
		/* With shared leases, a topic whose first events this node
		 * missed starts at its first event all the same. */
		if (!g->pt.listing && ev->offset != 1 && !g->conf.shared)
			return; /* a skipped topic's later events: counted once */
		uint64_t floor = g->latest && ev->offset > 0 ? ev->offset - 1 : 0;
		p = part_add(g, topic, floor, ev->offset);
		if (!p)
			return;
		part_found(g, p, floor);
	}
	if (ev->offset > p->last)
		p->last = ev->offset;
	/* On the next loop turn, when the whole committed batch is readable. */
	if (ev->offset >= part_next(p) && g->q.head)
		hd_group_waiters_wake_soon(&g->q);
}

struct pgroup *hd_group_patterns_group_new(struct hd_group_patterns *pg, const char *pattern,
					   const char *name)
{
	if (pg->groups.count >= HD_GROUP_PATTERNS_MAX)
		return NULL;
	struct pgroup *g = hd_calloc(1, sizeof(*g));
	g->pg = pg;
	snprintf(g->name, sizeof(g->name), "%s", name);
	make_key(g->key, sizeof(g->key), pattern, name);
	hd_pattern_init(&g->pt, pg->hub, pattern, HD_GROUP_PATTERN_TOPICS_MAX, &pattern_ops, g);
	hd_group_part_conf_init(&g->conf, pg->hub, g->name, g->pt.pattern, g->key, &g->q,
				&part_ops, g);
	g->conf.shared = pg->shared;
	hd_group_waiters_init(&g->q, pg->loop, &waiter_ops, g);
	g->q.serve_before_end = pg->shared;
	if (hd_map_put(&pg->groups, g->key, g) != 0) {
		hd_pattern_fini(&g->pt);
		free(g);
		return NULL;
	}
	if (hd_pattern_watch(&g->pt) != 0)
		hd_log_warn("group_pattern_watch_failed pattern=%s group=%s", pattern, name);
	return g;
}

static void group_free_parts(struct pgroup *g)
{
	for (size_t i = 0; i < g->nparts; i++) {
		hd_pattern_remove(&g->pt, g->parts[i]->base.topic);
		g->pg->parts--;
		hd_group_patterns_part_unref(g->parts[i]);
	}
	free(g->parts);
	g->parts = NULL;
	g->nparts = 0;
	hd_pattern_fini(&g->pt);
}

static void group_free_closed(uv_handle_t *h)
{
	struct hd_group_waiters *q = h->data;
	struct pgroup *g = q->owner;
	group_free_parts(g);
	free(g);
}

/* Frees g once it is deleted and nothing holds it (owner: a struct
 * pgroup, also the waiter queue's release). */
void hd_group_patterns_group_release(void *owner)
{
	struct pgroup *g = owner;
	if (g->deleted && g->test_held) {
		g->test_held = false; /* the test-only hold of a re-list: no list runs */
		g->pt.listing = false;
	}
	if (!g->deleted || g->refs > 0 || g->q.busy || g->q.head || g->pt.listing)
		return;
	hd_pattern_stop(&g->pt);
	if (!hd_group_waiters_close(&g->q, group_free_closed)) {
		group_free_parts(g);
		free(g);
	}
}

/* ---- GET -------------------------------------------------------------- */

/* A part's counters: its lease window's, or (shared leases) the engine's
 * as last answered. */
static void part_state(const struct part *p, struct hd_group_shared *st)
{
	if (p->base.conf->shared) {
		*st = p->base.sh;
		return;
	}
	*st = (struct hd_group_shared){
		.floor = p->base.lease.floor,
		.next = p->base.lease.next,
		.leased = p->base.lease.leased,
		.redeliveries = p->base.lease.redeliveries,
		.dead_letters = p->base.dead_letters,
	};
}

void hd_group_patterns_group_json(struct hd_buf *b, const struct pgroup *g)
{
	char created[40];
	time_t t = (time_t)(g->conf.created_ms / 1000);
	struct tm tm;
	uint64_t pending = 0, lag = 0, dead = 0, redeliveries = g->redeliveries_gone;
	gmtime_r(&t, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	hd_buf_puts(b, "{\"pattern\":\"");
	hd_buf_json_escape(b, g->pt.pattern, strlen(g->pt.pattern));
	hd_buf_puts(b, "\",\"group\":\"");
	hd_buf_json_escape(b, g->name, strlen(g->name));
	hd_buf_puts(b, "\",\"topics\":[");
	for (size_t i = 0; i < g->nparts; i++) {
		const struct part *p = g->parts[i];
		struct hd_group_shared st;
		part_state(p, &st);
		uint64_t plag = p->last > st.floor ? p->last - st.floor : 0;
		pending += st.leased;
		lag += plag;
		dead += st.dead_letters;
		redeliveries += st.redeliveries;
		if (i >= HD_GROUP_PATTERN_INFO_TOPICS)
			continue;
		hd_buf_puts(b, i ? ",{\"topic\":\"" : "{\"topic\":\"");
		hd_buf_json_escape(b, p->base.topic, strlen(p->base.topic));
		hd_buf_printf(b,
			      "\",\"position\":%" PRIu64 ",\"next\":%" PRIu64 ",\"pending\":%" PRIu64
			      ",\"lag\":%" PRIu64 ",\"last\":%" PRIu64 ",\"dead_letters\":%" PRIu64 "}",
			      st.floor, st.next, st.leased, plag, p->last, st.dead_letters);
	}
	hd_buf_printf(b,
		      "],\"topics_count\":%zu,\"topics_truncated\":%s,\"topics_skipped\":%" PRIu64
		      ",\"pending\":%" PRIu64 ",\"lag\":%" PRIu64 ",\"redeliveries\":%" PRIu64
		      ",\"dead_letters\":%" PRIu64 ",\"ack_wait_ms\":%" PRIu32
		      ",\"max_deliveries\":%" PRIu32 ",\"ordered\":%s,\"created\":\"%s\"}",
		      g->nparts, g->nparts > HD_GROUP_PATTERN_INFO_TOPICS ? "true" : "false",
		      g->skipped, pending, lag, redeliveries, dead, g->conf.ack_wait_ms,
		      g->conf.max_deliveries, g->conf.ordered ? "true" : "false", created);
}

/* ---- discovery ------------------------------------------------------ */

/* A matching topic the pattern's list found (consume/pattern.h). */
static void listed(void *owner, void *item, const struct hd_topic_info *t)
{
	struct pgroup *g = owner;
	struct part *p = item;
	if (p) {
		if (t->last > p->last)
			p->last = t->last;
		return;
	}
	/* Existing now: the group's start applies (created with "latest");
	 * at load, a topic created while herald was down starts at its first
	 * event. */
	uint64_t floor = g->latest ? t->last : 0;
	p = part_add(g, t->name, floor, t->last);
	if (p)
		part_found(g, p, floor);
}

/* The list ended: every existing topic is a part. */
static void list_done(void *owner, int err)
{
	struct pgroup *g = owner;
	if (err && hd_log_ratelimited(&g->conf.warn_ms))
		hd_log_error("group_pattern_list_failed pattern=%s group=%s err=%d", g->pt.pattern,
			     g->name, err);
	g->latest = false;
	g->listed_once = true;
	if (g->create_req && g->conf.shared) {
		/* The engine's parent, then the answer (after the parts' SETs:
		 * one connection per shard keeps them in order per topic). */
		hd_group_patterns_shared_parent_set(g, false, g->create_req);
		g->create_req = NULL;
	} else if (g->create_req) {
		struct hd_buf b;
		hd_buf_init(&b, 64 * 1024);
		hd_group_patterns_group_json(&b, g);
		/* After the part rows: the writer commits in order. */
		hd_group_patterns_put_parent(g, g->create_req, 201, &b);
		g->create_req = NULL;
	}
	hd_group_patterns_wake(g);
	hd_group_patterns_group_release(g);
}

static const struct hd_pattern_ops pattern_ops = {
	.listed = listed,
	.on_watch = on_watch,
	.list_done = list_done,
};

/* ---- fetch ------------------------------------------------------------ */


static void answer_empty(void *owner, struct hd_group_waiter *w)
{
	struct pgroup *g = owner;
	struct hd_buf b;
	hd_buf_init(&b, 64);
	hd_buf_printf(&b, "{\"events\":[],\"ack_deadline_ms\":%" PRIu32 "}", g->conf.ack_wait_ms);
	hd_group_waiters_answer(w, &b);
}

/* Appends one handed-out event to the answer. */
static void append_event(void *arg, const struct hd_stored_event *ev, uint32_t deliveries)
{
	struct fetch *f = arg;
	const struct hd_rcbuf *json = ev->json;
	if (f->full || (f->sent > 0 && f->b.len + 600 + json->len > HD_READ_BYTES_MAX)) {
		f->full = true; /* stays leased and comes back after ack_wait */
		return;
	}
	hd_buf_puts(&f->b, f->sent ? ",{\"topic\":\"" : "{\"topic\":\"");
	hd_buf_json_escape(&f->b, f->p->base.topic, strlen(f->p->base.topic));
	hd_buf_printf(&f->b, "\",\"offset\":%" PRIu64 ",\"deliveries\":%" PRIu32 ",\"event\":",
		      ev->offset, deliveries);
	hd_buf_append(&f->b, json->data, json->len);
	hd_buf_putc(&f->b, '}');
	f->sent++;
}

void hd_group_patterns_read_done(struct hd_read *r)
{
	struct fetch *f = r->arg;
	struct part *p = f->p;
	bool fresh = !f->rd.grants;

	int err = p->base.conf->shared
		? hd_group_part_shared_read_done(&p->base, &f->rd, append_event, f)
		: hd_group_part_read_done(&p->base, &f->rd, append_event, f);
	if (err)
		f->err = err;
	else if (fresh && r->last > p->last)
		p->last = r->last;
	hd_engine_read_fini(r);
	f->p = NULL;
	hd_group_patterns_part_unref(p);
	f->reading = false;
	if (!f->sync)
		hd_group_patterns_fetch_step(f);
}

/* Prepares the read of part p for fetch f: what is due again first, then
 * (new_only, the next visit) new events. Returns false when p has nothing
 * to hand out now. */
static bool part_read(struct fetch *f, struct part *p, bool new_only)
{
	if (!hd_group_part_read(&p->base, &f->rd, f->w->max - f->sent, new_only, p->last))
		return false;
	f->rd.r.done = hd_group_patterns_read_done;
	f->rd.r.arg = f;
	f->p = p;
	p->refs++;
	return true;
}

void hd_group_patterns_fetch_finish(struct fetch *f)
{
	struct pgroup *g = f->g;
	struct hd_group_waiter *w = f->w;
	g->q.busy = false;
	if (f->again)
		hd_group_patterns_part_unref(f->again);
	if (f->sent == 0 && f->err) {
		hd_buf_fini(&f->b);
		hd_group_waiters_fail(w, f->err, NULL);
	} else if (f->sent > 0 || hd_now_ms() >= w->until_ms || g->pg->stopping || g->deleted) {
		hd_buf_printf(&f->b, "],\"ack_deadline_ms\":%" PRIu32 "}", g->conf.ack_wait_ms);
		hd_group_waiters_answer(w, &f->b);
	} else {
		/* Nothing for this one: back to the front of the line, and nobody
		 * tries again before something changes. */
		hd_buf_fini(&f->b);
		hd_group_waiters_starve(&g->q, w);
	}
	free(f);
	g->refs--;
	hd_group_waiters_try(&g->q);
	hd_group_patterns_group_release(g);
}

/* Walks the parts from f->pos until the answer is full or every part was
 * visited; one read in flight. */
void hd_group_patterns_fetch_step(struct fetch *f)
{
	struct pgroup *g = f->g;
	while (!f->reading) {
		if (f->sent >= f->w->max || f->full || f->visited >= g->nparts || g->deleted ||
		    g->pg->stopping) {
			hd_group_patterns_fetch_finish(f);
			return;
		}
		if (g->conf.shared) {
			struct part *sp = g->parts[f->pos % g->nparts];
			f->pos++;
			f->visited++;
			hd_group_patterns_shared_part_fetch(f, sp);
			continue;
		}
		struct part *p = f->again;
		bool new_only = p != NULL;
		f->again = NULL;
		if (!p) {
			p = g->parts[f->pos % g->nparts];
			f->pos++;
			f->visited++;
		}
		if (!part_read(f, p, new_only)) {
			if (new_only)
				hd_group_patterns_part_unref(p);
			continue;
		}
		if (new_only)
			hd_group_patterns_part_unref(p); /* part_read took its own reference */
		else if (f->rd.grants) {
			f->again = p;
			p->refs++;
		}
		f->reading = true;
		f->sync = true;
		int rc = hd_hub_read(g->pg->hub, &f->rd.r);
		f->sync = false;
		if (rc) {
			f->rd.r.err = rc;
			hd_group_patterns_read_done(&f->rd.r);
		}
	}
}

/* Starts serving waiter w (off the list): the group is busy until the
 * fetch finishes. */
static void start_fetch(struct pgroup *g, struct hd_group_waiter *w)
{
	struct fetch *f = hd_calloc(1, sizeof(*f));
	f->g = g;
	f->w = w;
	f->pos = g->nparts ? g->rr % g->nparts : 0;
	g->rr = f->pos + 1;
	hd_buf_init(&f->b, HD_EVENT_REPLY_MAX);
	hd_buf_puts(&f->b, "{\"events\":[");
	g->q.busy = true;
	g->refs++;
	if (g->conf.shared)
		hd_group_patterns_shared_fetch_start(f); /* the parent first */
	else
		hd_group_patterns_fetch_step(f);
}

void hd_group_patterns_wake(struct pgroup *g)
{
	hd_group_waiters_wake(&g->q);
}

static enum hd_group_serve serve(void *owner, struct hd_group_waiter *w)
{
	struct pgroup *g = owner;
	if (g->deleted) {
		hd_group_waiters_fail(w, HD_ENOTFOUND, "the group was deleted");
		return HD_GROUP_SERVED;
	}
	if (!g->listed_once)
		return HD_GROUP_HELD; /* list_done wakes it; later lists (shared) run beside fetches */
	start_fetch(g, w);
	return HD_GROUP_SERVED;
}

/* Arms the timer of the next lease end while anyone waits. */
static void arm(void *owner)
{
	struct pgroup *g = owner;
	if (!g->q.head || g->deleted || g->pg->stopping || g->q.busy)
		return;
	int64_t due = g->conf.shared ? hd_now_ms() + SHARED_POLL_MS : INT64_MAX;
	for (size_t i = 0; i < g->nparts; i++) {
		const struct hd_group_part *b = &g->parts[i]->base;
		int64_t d = g->conf.shared ? b->sh.due_at : hd_lease_next_due(&b->lease);
		if (d < due)
			due = d;
	}
	hd_group_waiters_due_at(&g->q, due);
}

static const struct hd_group_waiters_ops waiter_ops = {
	.serve = serve,
	.answer_empty = answer_empty,
	.arm = arm,
	.release = hd_group_patterns_group_release,
};

static void handle_fetch(struct hd_group_patterns *pg, struct hd_http_request *req,
			 struct pgroup *g, const struct hd_group_cred *cred)
{
	uint32_t max;
	double wait;
	if (!hd_group_request_fetch_args(req, &max, &wait))
		return;
	(void)pg;
	hd_group_waiters_add(&g->q, req, max, (uint64_t)(wait * 1000), cred);
}

/* ---- ack, nack -------------------------------------------------------- */

static void handle_ack(struct hd_http_request *req, struct pgroup *g, bool nack)
{
	json_t *body = hd_group_request_body(req, false);
	if (!body)
		return;
	json_t *evs = json_object_get(body, "events");
	int64_t delay_ms = 0, now = hd_now_ms();
	struct hd_buf b;
	size_t done = 0, nign = 0, i;
	json_t *o;

	if (json_object_get(body, "offsets") || json_object_get(body, "up_to")) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "a pattern group acks (topic, offset) pairs: "
				       "{\"events\":[{\"topic\":\"…\",\"offset\":N},…]}; "
				       "'offsets' and 'up_to' are for groups of one topic");
		goto out;
	}
	if (nack && !hd_group_request_delay_arg(req, body, &delay_ms))
		goto out;
	if (!json_is_array(evs) || json_array_size(evs) == 0 ||
	    json_array_size(evs) > HD_GROUP_ACK_OFFSETS_MAX) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "the body needs 'events': an array of 1 to %d {\"topic\",\"offset\"} objects",
				       HD_GROUP_ACK_OFFSETS_MAX);
		goto out;
	}
	json_array_foreach(evs, i, o)
	{
		json_t *t = json_object_get(o, "topic"), *off = json_object_get(o, "offset");
		if (!json_is_object(o) || !json_is_string(t) || !json_is_integer(off) ||
		    json_integer_value(off) < 1) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "each of 'events' must be {\"topic\": name, \"offset\": N >= 1}");
			goto out;
		}
	}
	if (g->conf.shared) {
		hd_group_patterns_shared_ack(req, g, nack, evs, delay_ms);
		goto out;
	}
	hd_buf_init(&b, 256 * 1024);
	hd_buf_puts(&b, "{\"ignored\":[");
	json_array_foreach(evs, i, o)
	{
		const char *topic = json_string_value(json_object_get(o, "topic"));
		uint64_t off = (uint64_t)json_integer_value(json_object_get(o, "offset"));
		struct part *p = hd_group_patterns_part_get(g, topic);
		int rc = !p ? HD_ENOTFOUND
		       : nack ? hd_lease_nack(&p->base.lease, off, delay_ms ? now + delay_ms : 0)
			      : hd_lease_ack(&p->base.lease, off);
		if (rc == 0) {
			done++;
			p->dirty = true;
		} else {
			hd_buf_puts(&b, nign ? ",{\"topic\":\"" : "{\"topic\":\"");
			hd_buf_json_escape(&b, topic, strlen(topic));
			hd_buf_printf(&b, "\",\"offset\":%" PRIu64 "}", off);
			nign++;
		}
	}
	hd_buf_printf(&b, "],\"%s\":%zu}", nack ? "nacked" : "acked", done);
	if (nack || done == 0) {
		for (i = 0; i < g->nparts; i++)
			g->parts[i]->dirty = false;
		hd_http_respond_json(req, 200, &b);
	} else {
		/* Answered once every changed part's row is durable. */
		struct hd_group_part_reply *r = hd_group_part_reply_new(req, 200, &b);
		for (i = 0; i < g->nparts; i++) {
			struct part *p = g->parts[i];
			if (!p->dirty)
				continue;
			p->dirty = false;
			hd_group_part_put(&p->base, r);
		}
		hd_group_part_reply_done(r, 0);
	}
	if (done)
		hd_group_patterns_wake(g);
out:
	json_decref(body);
}

/* ---- create, delete --------------------------------------------------- */

static void handle_create(struct hd_group_patterns *pg, struct hd_http_request *req,
			  struct pgroup *g, const char *pattern, const char *name)
{
	json_t *body = hd_group_request_body(req, true);
	uint32_t ack_wait = g ? g->conf.ack_wait_ms : HD_GROUP_ACK_WAIT_DEFAULT_MS;
	uint32_t maxd = g ? g->conf.max_deliveries : HD_GROUP_MAX_DELIVERIES_DEFAULT;
	bool ordered = g ? g->conf.ordered : false, latest = false;
	struct hd_buf b;

	if (!body)
		return;
	json_t *start = json_object_get(body, "start");
	if (!hd_group_request_config_args(req, body, &ack_wait, &maxd, &ordered))
		goto out;
	if (start) {
		const char *s = json_is_string(start) ? json_string_value(start) : "";
		if (strcmp(s, "oldest") != 0 && strcmp(s, "latest") != 0) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "'start' of a pattern group must be \"oldest\" or \"latest\"");
			goto out;
		}
		if (g) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "a pattern group's start cannot be moved; DELETE the group first");
			goto out;
		}
		latest = strcmp(s, "latest") == 0;
	}
	if (g) {
		g->conf.ack_wait_ms = ack_wait;
		g->conf.max_deliveries = maxd;
		g->conf.ordered = ordered;
		if (g->conf.shared) {
			hd_group_patterns_shared_update(g, req);
			goto out;
		}
		hd_buf_init(&b, 64 * 1024);
		hd_group_patterns_group_json(&b, g);
		hd_group_patterns_put_parent(g, req, 200, &b);
		hd_group_patterns_wake(g);
		goto out;
	}
	if (strlen(name) > HD_GROUP_PATTERN_NAME_MAX) {
		hd_http_respond_errorf(req, HD_EINVAL, "the name of a pattern group must be 1-%d bytes",
				       HD_GROUP_PATTERN_NAME_MAX);
		goto out;
	}
	g = hd_group_patterns_group_new(pg, pattern, name);
	if (!g) {
		hd_http_respond_errorf(req, HD_ELIMIT, "at most %d pattern groups", HD_GROUP_PATTERNS_MAX);
		goto out;
	}
	g->conf.ack_wait_ms = ack_wait;
	g->conf.max_deliveries = maxd;
	g->conf.ordered = ordered;
	g->latest = latest;
	g->create_req = req;
	hd_pattern_list(&g->pt); /* answers req when every existing topic is a part */
out:
	json_decref(body);
}

/* The parent row's delete answers req; the parts' have none. */
static void del_done(void *arg, int err)
{
	struct hd_http_request *req = arg;
	if (!req)
		return;
	if (err && err != HD_ENOTFOUND)
		hd_http_respond_error(req, err, NULL);
	else
		hd_http_respond(req, 204, NULL, NULL, "", 0);
}

/* Takes g out of the map: it was deleted (here, or on another node: the
 * engine no longer has it). Freed once idle. */
void hd_group_patterns_forget(struct pgroup *g)
{
	if (g->deleted)
		return;
	hd_map_del(&g->pg->groups, g->key);
	g->deleted = true;
	hd_pattern_stop(&g->pt);
	if (g->create_req) {
		hd_http_respond_error(g->create_req, HD_ENOTFOUND, "the group was deleted");
		g->create_req = NULL;
	}
	hd_group_waiters_try(&g->q);
	hd_group_patterns_group_release(g);
}

/* Deletes g's rows (parts, then the parent, whose delete answers req). */
void hd_group_patterns_delete_rows(struct pgroup *g, struct hd_http_request *req)
{
	struct hd_hub *hub = g->pg->hub;
	for (size_t i = 0; i < g->nparts; i++)
		hd_group_part_row_delete(hub, g->parts[i]->base.topic, g->key, del_done, NULL);
	/* Last: the writer runs them in order. */
	hd_group_part_row_delete(hub, g->pt.pattern, g->name, del_done, req);
}

static void handle_delete(struct hd_group_patterns *pg, struct hd_http_request *req,
			  struct pgroup *g)
{
	(void)pg;
	if (g->conf.shared) {
		hd_group_patterns_shared_delete(g, req); /* the engine's DROPs, then the rows */
		return;
	}
	g->refs++;
	hd_group_patterns_forget(g);
	hd_group_patterns_delete_rows(g, req);
	g->refs--;
	hd_group_patterns_group_release(g);
}

/* ---- entry ------------------------------------------------------------ */

void hd_group_patterns_handle(struct hd_group_patterns *pg, struct hd_http_request *req,
		       enum hd_group_action act, const char *pattern, const char *name,
		       const struct hd_group_cred *cred)
{
	hd_group_patterns_dispatch(pg, req, act, pattern, name, cred, false);
}

/* probed: the engine was asked about a group this node did not know. */
void hd_group_patterns_dispatch(struct hd_group_patterns *pg, struct hd_http_request *req,
				enum hd_group_action act, const char *pattern, const char *name,
				const struct hd_group_cred *cred, bool probed)
{
	char key[HD_GROUP_NAME_MAX + 1];
	make_key(key, sizeof(key), pattern, name);
	struct pgroup *g = strlen(name) <= HD_GROUP_PATTERN_NAME_MAX ? hd_map_get(&pg->groups, key)
								       : NULL;
	if (g && strcmp(g->pt.pattern, pattern) != 0) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "the group name clashes with another pattern's; pick another");
		return;
	}
	if (pg->stopping) {
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (!g && pg->shared && !probed && strlen(name) <= HD_GROUP_PATTERN_NAME_MAX) {
		/* Created on another node? */
		hd_group_patterns_shared_probe(pg, req, act, pattern, name, cred);
		return;
	}
	if (act == HD_GROUP_ACT_CREATE) {
		if (g && g->create_req) {
			hd_http_respond_errorf(req, HD_EINVAL, "the group is being created");
			return;
		}
		handle_create(pg, req, g, pattern, name);
		return;
	}
	if (!g) {
		hd_http_respond_errorf(req, HD_ENOTFOUND,
				       act == HD_GROUP_ACT_FETCH
				     ? "no such group; a pattern group is created with PUT"
				     : "no such group");
		return;
	}
	struct hd_buf b;
	switch (act) {
	case HD_GROUP_ACT_INFO:
		if (g->conf.shared) {
			hd_group_patterns_shared_info(g, req);
			return;
		}
		hd_buf_init(&b, 64 * 1024);
		hd_group_patterns_group_json(&b, g);
		hd_http_respond_json(req, 200, &b);
		return;
	case HD_GROUP_ACT_DELETE:
		handle_delete(pg, req, g);
		return;
	case HD_GROUP_ACT_FETCH:
		handle_fetch(pg, req, g, cred);
		return;
	case HD_GROUP_ACT_ACK:
	case HD_GROUP_ACT_NACK:
		handle_ack(req, g, act == HD_GROUP_ACT_NACK);
		return;
	case HD_GROUP_ACT_CREATE:
		return;
	}
}

static void each_group(struct hd_group_patterns *pg, void (*fn)(struct pgroup *g, void *arg),
		       void *arg);

static void discover_one(struct pgroup *g, void *arg)
{
	(void)arg;
	hd_pattern_list(&g->pt);
}

bool hd_group_patterns_row_is(const struct hd_group_row *row)
{
	return strchr(row->topic, '*') != NULL || strchr(row->name, '*') != NULL;
}

static void relist_one(struct pgroup *g, void *arg)
{
	(void)arg;
	if (g->test_held) {
		/* Test-only: the held re-list runs now. */
		g->test_held = false;
		g->pt.listing = false;
	} else if (g->pg->test_relist_hold && !g->pt.listing && !g->create_req) {
		/* Test-only: for one period the group looks as if a re-list ran
		 * (pt.listing, no list out), so a fetch meanwhile shows whether
		 * it is served beside a re-list or held until it ends. */
		g->test_held = true;
		g->pt.listing = true;
		hd_log_debug("group_pattern_relist_held pattern=%s group=%s", g->pt.pattern,
			     g->name);
		return;
	}
	if (g->pt.listing || g->create_req)
		return;
	/* Debug: tests/e2e/test_cluster_pattern_groups.py waits for it. */
	hd_log_debug("group_pattern_relist pattern=%s group=%s parts=%zu", g->pt.pattern, g->name,
		     g->nparts);
	hd_pattern_list(&g->pt);
}

/* Shared leases: topics created on another node whose events this node
 * missed (a PUB/SUB gap) are found by listing again. */
static void on_relist(uv_timer_t *t)
{
	struct hd_group_patterns *pg = t->data;
	if (!pg->stopping)
		each_group(pg, relist_one, NULL);
}

void hd_group_patterns_load(struct hd_group_patterns *pg, const struct hd_group_row *rows, size_t n)
{
	pg->shared = hd_hub_glease_shared(pg->hub);
	if (pg->shared && !pg->relist_on) {
		/* Test-only (no option, no doc): HERALD_TEST_GROUP_RELIST_MS lists
		 * more often, so tests/e2e/test_cluster_pattern_groups.py sees
		 * many re-lists during its fetches. */
		const char *env = getenv("HERALD_TEST_GROUP_RELIST_MS");
		unsigned long ms = env ? strtoul(env, NULL, 10) : 0;
		ms = ms >= 1 && ms <= RELIST_MS ? ms : RELIST_MS;
		/* HERALD_TEST_GROUP_RELIST_HOLD=1: each re-list is held one period
		 * with pt.listing set first (relist_one). */
		env = getenv("HERALD_TEST_GROUP_RELIST_HOLD");
		pg->test_relist_hold = env && !strcmp(env, "1");
		uv_timer_init(pg->loop, &pg->relist);
		pg->relist.data = pg;
		uv_timer_start(&pg->relist, on_relist, ms, ms);
		uv_unref((uv_handle_t *)&pg->relist);
		pg->relist_on = true;
	}
	/* The parents first, then their parts. */
	for (size_t i = 0; i < n; i++) {
		const struct hd_group_row *row = &rows[i];
		if (!strchr(row->topic, '*') ||
		    hd_topic_pattern_check(row->topic, &(struct hd_error){0}) != 0)
			continue;
		struct pgroup *g = hd_group_patterns_group_new(pg, row->topic, row->name);
		if (!g)
			continue;
		g->conf.ack_wait_ms = row->ack_wait_ms;
		g->conf.max_deliveries = row->max_deliveries;
		g->conf.ordered = row->ordered;
		g->conf.created_ms = row->created_ms;
		if (g->conf.shared) /* a group of an older version */
			hd_group_patterns_shared_parent_set(g, true, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		const struct hd_group_row *row = &rows[i];
		if (strchr(row->topic, '*') || !strchr(row->name, '*'))
			continue;
		struct pgroup *g = hd_map_get(&pg->groups, row->name);
		if (!g || !hd_topic_pattern_match(g->pt.pattern, row->topic) ||
		    hd_group_patterns_part_get(g, row->topic))
			continue;
		struct part *p = part_add(g, row->topic, row->ack_floor, row->ack_floor);
		if (p && hd_lease_restore(&p->base.lease, row->ack_floor, row->acked) != 0)
			hd_log_warn("group_state_ignored topic=%s group=%s", row->topic, row->name);
	}
	/* Then each group lists its topics: the last offsets, and topics made
	 * while herald was down (they start at their first event). */
	each_group(pg, discover_one, NULL);
}

struct walk {
	void (*fn)(struct pgroup *g, void *arg);
	void *arg;
};

static void walk_one(const char *key, void *value, void *arg)
{
	struct walk *w = arg;
	(void)key;
	w->fn(value, w->arg);
}

static void each_group(struct hd_group_patterns *pg, void (*fn)(struct pgroup *g, void *arg),
		       void *arg)
{
	struct walk w = {fn, arg};
	hd_map_each(&pg->groups, walk_one, &w);
}

static void recheck_one(struct pgroup *g, void *arg)
{
	hd_group_waiters_recheck(&g->q, arg, g->pt.pattern);
}

void hd_group_patterns_recheck(struct hd_group_patterns *pg, const struct hd_group_recheck *rc)
{
	/* Groups in the map are not deleted: nothing here can free one. */
	each_group(pg, recheck_one, (void *)rc);
}

static void drop_one(struct pgroup *g, void *arg)
{
	struct part *p = hd_group_patterns_part_get(g, arg);
	if (!p)
		return;
	if (g->conf.shared)
		hd_group_part_shared_submit(&p->base, HD_GLEASE_DROP, NULL, 0);
	part_remove(g, p);
}

void hd_group_patterns_drop_topic(struct hd_group_patterns *pg, const char *topic)
{
	each_group(pg, drop_one, (void *)topic);
}

struct hd_group_patterns *hd_group_patterns_new(uv_loop_t *loop, struct hd_hub *hub)
{
	struct hd_group_patterns *pg = hd_calloc(1, sizeof(*pg));
	pg->loop = loop;
	pg->hub = hub;
	hd_map_init(&pg->groups, HD_GROUP_PATTERNS_MAX);
	return pg;
}

static void stop_one(struct pgroup *g, void *arg)
{
	(void)arg;
	hd_group_waiters_stop(&g->q);
	hd_pattern_stop(&g->pt);
}

void hd_group_patterns_stop(struct hd_group_patterns *pg)
{
	pg->stopping = true;
	each_group(pg, stop_one, NULL);
	if (pg->relist_on) {
		uv_timer_stop(&pg->relist);
		uv_close((uv_handle_t *)&pg->relist, NULL);
	}
}

struct each_summary {
	void (*fn)(void *arg, const struct hd_group_pattern_summary *s);
	void *arg;
};

static void summary_one(struct pgroup *g, void *arg)
{
	struct each_summary *e = arg;
	struct hd_group_pattern_summary s = {
		.pattern = g->pt.pattern,
		.name = g->name,
		.topics = g->nparts,
	};
	for (size_t i = 0; i < g->nparts; i++) {
		const struct part *p = g->parts[i];
		struct hd_group_shared st;
		part_state(p, &st);
		s.pending += st.leased;
		s.lag += p->last > st.floor ? p->last - st.floor : 0;
		s.dead_letters += st.dead_letters;
	}
	e->fn(e->arg, &s);
}

void hd_group_patterns_each(struct hd_group_patterns *pg,
			    void (*fn)(void *arg, const struct hd_group_pattern_summary *s), void *arg)
{
	struct each_summary e = {fn, arg};
	each_group(pg, summary_one, &e);
}

static void free_one(struct pgroup *g, void *arg)
{
	(void)arg;
	group_free_parts(g);
	free(g);
}

void hd_group_patterns_free(struct hd_group_patterns *pg)
{
	if (!pg)
		return;
	each_group(pg, free_one, NULL);
	hd_map_fini(&pg->groups);
	free(pg);
}
