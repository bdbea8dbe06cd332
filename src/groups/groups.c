/*
 * groups — see groups.h.
 *
 * A group of one topic is one groups/group_part.h part: its lease window,
 * row, reads (what is due again first, then new events; dead letters) live
 * there. This file keeps the groups by (topic, name), the load, the routes,
 * the start positions of a PUT (oldest, latest, an offset, a time found by
 * consume/seek.h) and the fetch answer.
 *
 * One hub read per group at a time (q.busy): fetches that find the group
 * busy, or nothing to hand out while willing to wait, are held in the
 * group's groups/group_waiters.h queue, and retried when the group becomes
 * idle, when an event is committed to the topic (a hub watch while anyone
 * waits), when an ack or nack frees something, or when the next lease ends.
 *
 * Shared leases. When the engine keeps the leases (hd_hub_glease_shared:
 * several nodes on Redis, engine.h's glease op), a group of one topic keeps
 * no lease window: a fetch asks the engine for offsets (FETCH), then reads
 * their events (group_part.h "shared leases"); ack and nack are the
 * engine's ACK and NACK, answered with its state; a PUT is its SET, a GET
 * its INFO, a DELETE its DROP. A group this node does not know (created on
 * another node after this one loaded) is looked up with INFO first. Other
 * nodes' acks and ending leases are not announced, so held fetches also
 * retry every SHARED_POLL_MS. Groups over a topic pattern do the same per
 * matching topic (group_patterns.c "Shared leases").
 */
#include "groups/groups.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "consume/lease.h"
#include "consume/seek.h"
#include "core/log.h"
#include "core/map.h"
#include "groups/group_request.h"
#include "groups/group_part.h"
#include "groups/group_waiters.h"
#include "groups/group_patterns.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"

#include <http_parser.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Held fetches of a group with shared leases try again at least this
 * often (another node's ack, nack or lease end is not announced). */
#define SHARED_POLL_MS 1000

struct group {
	struct hd_groups *gs;
	char key[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 2]; /* topic "\n" name */
	char name[HD_GROUP_NAME_MAX + 1];
	struct hd_group_conf conf; /* name and row name: name; no pattern */
	struct hd_group_part part; /* the topic's lease window and row */
	bool deleted;             /* out of the map; freed when idle */
	int refs;                 /* requests in flight that point here */
	struct hd_group_waiters q; /* held fetches; q.busy while a fetch's read runs */
	struct hd_watch watch;    /* the topic's events, while anyone waits */
	bool watching;
};

struct hd_groups {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_map groups;     /* key → struct group */
	bool loaded;
	bool stopping;
	struct hd_group_op load;
	struct pending *pending;  /* requests that came before the load ended */
	size_t npending;
	struct hd_group_patterns *patterns; /* the groups over a topic pattern */
	bool shared;              /* the engine keeps the leases */
};

struct pending {
	struct hd_http_request *req;
	enum hd_group_action act;
	struct hd_group_cred cred;
	char topic[HD_TOPIC_NAME_MAX + 1];
	char name[HD_GROUP_NAME_MAX + 1];
	struct pending *next;
};

static const struct hd_group_waiters_ops waiter_ops;
static const struct hd_group_part_ops part_ops;
struct info;
static void apply_create(struct hd_groups *gs, struct info *in, uint64_t last, uint64_t floor);
static void seek_done(struct hd_seek *k, int err);
static void wake(struct group *g);
static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev);
static void shared_fetch(struct group *g, struct hd_group_waiter *w);
static void shared_ack(struct hd_http_request *req, struct group *g, bool nack, json_t *offs,
		       json_t *upto, int64_t delay_ms);
static void shared_set(struct hd_groups *gs, struct info *in, uint64_t last, uint64_t floor);
static void shared_info(struct info *in, uint64_t last);
static void shared_probe(struct hd_groups *gs, struct hd_http_request *req,
			 enum hd_group_action act, const char *topic, const char *name,
			 const struct hd_group_cred *cred);
static void dispatch(struct hd_groups *gs, struct hd_http_request *req, enum hd_group_action act,
		     const char *topic, const char *name, const struct hd_group_cred *cred);

/* ---- groups in memory ------------------------------------------------- */

static void make_key(char *out, size_t n, const char *topic, const char *name)
{
	snprintf(out, n, "%s\n%s", topic, name);
}

struct each_group {
	void (*fn)(void *arg, const char *topic, const char *name);
	void *arg;
};

static void each_group(const char *key, void *value, void *arg)
{
	struct each_group *e = arg;
	const struct group *g = value;
	char topic[HD_TOPIC_NAME_MAX + 1];
	size_t n = strlen(key) - strlen(g->name) - 1; /* key is topic "\n" name */
	memcpy(topic, key, n);
	topic[n] = '\0';
	e->fn(e->arg, topic, g->name);
}

struct hd_hub *hd_groups_hub(const struct hd_groups *gs)
{
	return gs->hub;
}

void hd_groups_each(struct hd_groups *gs, void (*fn)(void *arg, const char *topic, const char *name),
		    void *arg)
{
	struct each_group e = {fn, arg};
	hd_map_each(&gs->groups, each_group, &e);
}

void hd_groups_each_pattern(struct hd_groups *gs,
			    void (*fn)(void *arg, const struct hd_group_pattern_summary *s),
			    void *arg)
{
	hd_group_patterns_each(gs->patterns, fn, arg);
}

static struct group *group_get(struct hd_groups *gs, const char *topic, const char *name)
{
	char key[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 2];
	make_key(key, sizeof(key), topic, name);
	return hd_map_get(&gs->groups, key);
}

static struct group *group_new(struct hd_groups *gs, const char *topic, const char *name,
			       uint64_t floor)
{
	if (gs->groups.count >= HD_GROUPS_MAX)
		return NULL;
	struct group *g = hd_calloc(1, sizeof(*g));
	g->gs = gs;
	snprintf(g->name, sizeof(g->name), "%s", name);
	make_key(g->key, sizeof(g->key), topic, name);
	hd_group_part_conf_init(&g->conf, gs->hub, g->name, NULL, g->name, &g->q, &part_ops, g);
	g->conf.shared = gs->shared;
	hd_group_part_init(&g->part, &g->conf, topic, floor);
	hd_group_waiters_init(&g->q, gs->loop, &waiter_ops, g);
	g->watch.fire = on_watch;
	g->watch.arg = g;
	if (hd_map_put(&gs->groups, g->key, g) != 0) {
		hd_group_part_fini(&g->part);
		free(g);
		return NULL;
	}
	return g;
}

static void group_free_closed(uv_handle_t *h)
{
	struct hd_group_waiters *q = h->data;
	struct group *g = q->owner;
	hd_group_part_fini(&g->part);
	free(g);
}

/* Frees g once it is deleted and nothing holds it (owner: a struct group,
 * also the waiter queue's release). */
static void group_release(void *owner)
{
	struct group *g = owner;
	if (!g->deleted || g->refs > 0 || g->q.busy || g->q.head)
		return;
	if (g->watching)
		hd_hub_unwatch(g->gs->hub, &g->watch);
	g->watching = false;
	if (!hd_group_waiters_close(&g->q, group_free_closed)) {
		hd_group_part_fini(&g->part);
		free(g);
	}
}

/* ---- durable state ---------------------------------------------------- */

/* Writes the group's row (config and ack state); answers req with status
 * and answer (taken) once it is durable. req may be NULL. */
static void put_group(struct group *g, struct hd_http_request *req, int status,
		      struct hd_buf *answer)
{
	struct hd_group_part_reply *r = hd_group_part_reply_new(req, status, answer);
	hd_group_part_put(&g->part, r);
	hd_group_part_reply_done(r, 0);
}

static void hold(void *owner, struct hd_group_part *p)
{
	struct group *g = owner;
	(void)p;
	g->refs++;
}

static void release_part(void *owner, struct hd_group_part *p)
{
	struct group *g = owner;
	(void)p;
	g->refs--;
	group_release(g);
}

static const struct hd_group_part_ops part_ops = {
	.hold = hold,
	.release = release_part,
};

/* ---- info ------------------------------------------------------------- */

struct info {
	struct hd_topic_op op;
	struct hd_http_request *req;
	struct group *g;
	char topic[HD_TOPIC_NAME_MAX + 1];
	/* CREATE: the config to apply once the topic's last offset is known. */
	bool create;
	int start;                /* -1 keep, 0 oldest, 1 latest, 2 offset, 3 time */
	uint64_t start_offset;
	int64_t start_ms;         /* time: the first event stored at or after it */
	struct hd_groups *gs;
	uint64_t last;            /* time: the topic's last offset */
	struct hd_seek seek;      /* time: the search for start_ms */
	uint32_t ack_wait_ms, max_deliveries;
	bool ordered;
	char name[HD_GROUP_NAME_MAX + 1];
};

static void group_json(struct hd_buf *b, const struct group *g, uint64_t last)
{
	const struct hd_lease *l = &g->part.lease;
	const struct hd_group_shared *sh = &g->part.sh;
	bool shd = g->conf.shared;
	uint64_t floor = shd ? sh->floor : l->floor;
	char created[40];
	time_t t = (time_t)(g->conf.created_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	hd_buf_puts(b, "{\"topic\":\"");
	hd_buf_json_escape(b, g->part.topic, strlen(g->part.topic));
	hd_buf_puts(b, "\",\"group\":\"");
	hd_buf_json_escape(b, g->name, strlen(g->name));
	hd_buf_printf(b,
		      "\",\"position\":%" PRIu64 ",\"next\":%" PRIu64 ",\"pending\":%zu,"
		      "\"redeliveries\":%" PRIu64 ",\"dead_letters\":%" PRIu64
		      ",\"lag\":%" PRIu64 ",\"last\":%" PRIu64 ",\"ack_wait_ms\":%" PRIu32
		      ",\"max_deliveries\":%" PRIu32 ",\"ordered\":%s,\"created\":\"%s\"}",
		      floor, shd ? sh->next : l->next, shd ? (size_t)sh->leased : l->leased,
		      shd ? sh->redeliveries : l->redeliveries,
		      shd ? sh->dead_letters : g->part.dead_letters,
		      last > floor ? last - floor : 0, last, g->conf.ack_wait_ms,
		      g->conf.max_deliveries, g->conf.ordered ? "true" : "false", created);
}

static void info_done(struct hd_topic_op *op)
{
	struct info *in = op->arg;
	uint64_t first, last;
	int err = hd_seek_range(op, &first, &last);
	struct hd_groups *gs = op->priv;
	struct hd_buf b;

	hd_engine_topic_op_fini(op);
	if (err) {
		hd_http_respond_error(in->req, err, NULL);
		if (in->g) {
			in->g->refs--;
			group_release(in->g);
		}
		goto out;
	}
	if (in->create && in->start == 3) {
		/* The first event stored at or after start_ms. */
		in->gs = gs;
		in->last = last;
		in->seek = (struct hd_seek){
			.hub = gs->hub,
			.topic = in->topic,
			.time_ms = in->start_ms,
			.done = seek_done,
			.arg = in,
		};
		hd_seek_start(&in->seek, first, last);
		return;
	}
	if (in->create) {
		uint64_t floor = in->start == 1	  ? last
				 : in->start == 2 ? (in->start_offset ? in->start_offset - 1 : 0)
						  : 0;
		apply_create(gs, in, last, floor);
		goto out;
	}
	if (in->g->conf.shared) {
		shared_info(in, last);
		goto out;
	}
	hd_buf_init(&b, 4096);
	group_json(&b, in->g, last);
	hd_http_respond_json(in->req, 200, &b);
	in->g->refs--;
	group_release(in->g);
out:
	free(in);
}

/* Creates or changes the group as the PUT asked, its position at floor;
 * answers the request (once durable). */
static void apply_create(struct hd_groups *gs, struct info *in, uint64_t last, uint64_t floor)
{
	struct hd_buf b;
	if (gs->shared) {
		shared_set(gs, in, last, floor);
		return;
	}
	{
		struct group *g = group_get(gs, in->topic, in->name);
		bool created = false;
		if (!g) {
			g = group_new(gs, in->topic, in->name, floor);
			if (!g) {
				hd_http_respond_errorf(in->req, HD_ELIMIT, "at most %d groups", HD_GROUPS_MAX);
				return;
			}
			created = true;
		} else if (in->start >= 0) {
			if (g->part.lease.leased > 0 || g->q.busy) {
				hd_http_respond_errorf(in->req, HD_EINVAL,
						       "the group has leased events; ack them or DELETE the group"
						       " before moving its start");
				return;
			}
			hd_lease_fini(&g->part.lease);
			hd_lease_init(&g->part.lease, floor, HD_GROUP_WINDOW_MAX);
		}
		g->conf.ack_wait_ms = in->ack_wait_ms;
		g->conf.max_deliveries = in->max_deliveries;
		g->conf.ordered = in->ordered;
		hd_buf_init(&b, 4096);
		group_json(&b, g, last);
		put_group(g, in->req, created ? 201 : 200, &b);
		wake(g);
	}
}

/* The search for start_ms ended (consume/seek.h): the position is right
 * before the event found. */
static void seek_done(struct hd_seek *k, int err)
{
	struct info *in = k->arg;
	if (err)
		hd_http_respond_error(in->req, err, NULL);
	else
		apply_create(in->gs, in, in->last, k->found - 1);
	free(in);
}

static void start_info(struct hd_groups *gs, struct info *in)
{
	in->op.kind = HD_TOPIC_INFO;
	in->op.topic = in->topic;
	in->op.done = info_done;
	in->op.arg = in;
	in->op.priv = gs;
	int rc = hd_hub_topic_op(gs->hub, &in->op);
	if (rc) {
		hd_http_respond_error(in->req, rc, NULL);
		if (in->g) {
			in->g->refs--;
			group_release(in->g);
		}
		free(in);
	}
}

/* ---- fetch ------------------------------------------------------------ */

struct fetch {
	struct hd_glease_op op;       /* shared leases: the FETCH */
	struct hd_group_read rd;
	struct group *g;
	struct hd_group_waiter *w;    /* the fetch being answered */
	struct hd_buf b;              /* the answer so far */
	size_t given, sent;           /* events handed out; in the answer */
	bool full;                    /* the answer reached HD_READ_BYTES_MAX */
	int rc;                       /* the answer's first error */
};

/* Starts an answer in b; returns its first error. */
static int answer_open(struct hd_buf *b)
{
	hd_buf_init(b, HD_EVENT_REPLY_MAX);
	return hd_buf_puts(b, "{\"events\":[");
}

/* Closes the answer b (taken; rc its first error) and sends it to w. */
static void answer_close(struct group *g, struct hd_group_waiter *w, struct hd_buf *b, int rc)
{
	if (rc == 0)
		rc = hd_buf_printf(b, "],\"ack_deadline_ms\":%" PRIu32 ",\"position\":%" PRIu64 "}",
				   g->conf.ack_wait_ms,
				   g->conf.shared ? g->part.sh.floor : g->part.lease.floor);
	if (rc == 0) {
		hd_group_waiters_answer(w, b);
	} else {
		hd_buf_fini(b);
		hd_group_waiters_fail(w, HD_EINTERNAL, "the answer would be too large");
	}
}

/* Appends one handed-out event to the answer (hd_group_emit_fn). */
static void emit(void *arg, const struct hd_stored_event *ev, uint32_t deliveries)
{
	struct fetch *f = arg;
	const struct hd_rcbuf *json = ev->json;
	f->given++;
	if (f->rc || f->full)
		return;
	if (f->sent > 0 && f->b.len + 64 + json->len > HD_READ_BYTES_MAX) {
		f->full = true; /* the rest stays leased and comes back after ack_wait */
		return;
	}
	f->rc = hd_buf_printf(&f->b,
			      "%s{\"offset\":%" PRIu64 ",\"deliveries\":%" PRIu32 ",\"event\":",
			      f->sent ? "," : "", ev->offset, deliveries);
	if (f->rc == 0)
		f->rc = hd_buf_append(&f->b, json->data, json->len);
	if (f->rc == 0)
		f->rc = hd_buf_putc(&f->b, '}');
	f->sent++;
}

static void fetch_done(struct hd_read *r)
{
	struct fetch *f = r->arg;
	struct group *g = f->g;
	struct hd_group_waiter *w = f->w;
	int64_t now = hd_now_ms();

	g->q.busy = false;
	int err = g->conf.shared ? hd_group_part_shared_read_done(&g->part, &f->rd, emit, f)
				 : hd_group_part_read_done(&g->part, &f->rd, emit, f);
	hd_engine_read_fini(r);
	if (err) {
		hd_buf_fini(&f->b);
		hd_group_waiters_fail(w, err, NULL);
	} else if (f->given > 0 || now >= w->until_ms || g->gs->stopping || g->deleted) {
		answer_close(g, w, &f->b, f->rc);
	} else {
		/* Nothing for this one after all: back to the front of the line,
		 * and nobody tries again before something changes. */
		hd_buf_fini(&f->b);
		hd_group_waiters_starve(&g->q, w);
	}
	free(f);
	g->refs--;
	hd_group_waiters_try(&g->q);
	group_release(g);
}

/* Starts serving waiter w (off the list). Returns true if it started a
 * read (the group is then busy), false if there was nothing to do now. */
static bool start_fetch(struct group *g, struct hd_group_waiter *w)
{
	struct fetch *f = hd_calloc(1, sizeof(*f));
	if (!hd_group_part_read(&g->part, &f->rd, w->max, false, UINT64_MAX)) {
		free(f);
		return false;
	}
	f->g = g;
	f->w = w;
	f->rd.r.done = fetch_done;
	f->rd.r.arg = f;
	f->rc = answer_open(&f->b);
	g->q.busy = true;
	g->refs++;
	int rc = hd_hub_read(g->gs->hub, &f->rd.r);
	if (rc) {
		g->q.busy = false;
		g->refs--;
		f->rd.r.err = rc;
		hd_group_part_read_done(&g->part, &f->rd, NULL, NULL);
		hd_buf_fini(&f->b);
		free(f);
		hd_group_waiters_fail(w, rc, NULL);
	}
	return true;
}

/* Something changed (an event, an ack, a nack, a lease end, a new fetch):
 * the waiters may find something now. */
static void wake(struct group *g)
{
	hd_group_waiters_wake(&g->q);
}

static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev)
{
	struct group *g = watch->arg;
	(void)topic;
	if (ev->offset < (g->conf.shared ? g->part.sh.next : g->part.lease.next))
		return;
	/* On the next loop turn, when the whole committed batch is readable. */
	hd_group_waiters_wake_soon(&g->q);
}

static void answer_empty(void *owner, struct hd_group_waiter *w)
{
	struct hd_buf b;
	int rc = answer_open(&b);
	answer_close(owner, w, &b, rc);
}

static enum hd_group_serve serve(void *owner, struct hd_group_waiter *w)
{
	struct group *g = owner;
	if (g->deleted) {
		hd_group_waiters_fail(w, HD_ENOTFOUND, "the group was deleted");
		return HD_GROUP_SERVED;
	}
	if (g->conf.shared) {
		shared_fetch(g, w);
		return HD_GROUP_SERVED;
	}
	if (start_fetch(g, w))
		return HD_GROUP_SERVED;
	if (hd_now_ms() >= w->until_ms || g->gs->stopping) {
		answer_empty(g, w);
		return HD_GROUP_SERVED;
	}
	return HD_GROUP_STARVED; /* nothing to hand out: everyone waits */
}

/* Arms the wake-ups of the waiters that stay (or drops them). */
static void arm(void *owner)
{
	struct group *g = owner;
	if (g->q.head && !g->deleted && !g->gs->stopping) {
		if (!g->watching && hd_hub_watch(g->gs->hub, g->part.topic, &g->watch) == 0)
			g->watching = true;
		if (!g->q.busy && g->conf.shared) {
			int64_t poll = hd_now_ms() + SHARED_POLL_MS;
			hd_group_waiters_due_at(&g->q, g->part.sh.due_at < poll ? g->part.sh.due_at
										 : poll);
		} else if (!g->q.busy) {
			hd_group_waiters_due_at(&g->q, hd_lease_next_due(&g->part.lease));
		}
	} else if (g->watching) {
		hd_hub_unwatch(g->gs->hub, &g->watch);
		g->watching = false;
	}
}

static const struct hd_group_waiters_ops waiter_ops = {
	.serve = serve,
	.answer_empty = answer_empty,
	.arm = arm,
	.release = group_release,
};

static void handle_fetch(struct hd_groups *gs, struct hd_http_request *req, struct group *g,
			 const char *topic, const char *name, const struct hd_group_cred *cred)
{
	uint32_t max;
	double wait;
	if (!hd_group_request_fetch_args(req, &max, &wait))
		return;
	if (!g) {
		/* Created on first use, at the oldest kept event. */
		g = group_new(gs, topic, name, 0);
		if (!g) {
			hd_http_respond_errorf(req, HD_ELIMIT, "at most %d groups", HD_GROUPS_MAX);
			return;
		}
		if (!gs->shared)
			put_group(g, NULL, 0, NULL); /* shared: once the engine says it is new */
	}
	hd_group_waiters_add(&g->q, req, max, (uint64_t)(wait * 1000), cred);
}

/* ---- ack, nack -------------------------------------------------------- */

static bool offsets_ok(struct hd_http_request *req, json_t *offs)
{
	size_t i;
	json_t *o;
	if (!json_is_array(offs) || json_array_size(offs) == 0 ||
	    json_array_size(offs) > HD_GROUP_ACK_OFFSETS_MAX) {
		hd_http_respond_errorf(req, HD_EINVAL, "'offsets' must be an array of 1 to %d offsets",
				       HD_GROUP_ACK_OFFSETS_MAX);
		return false;
	}
	json_array_foreach(offs, i, o)
	{
		if (!json_is_integer(o) || json_integer_value(o) < 1) {
			hd_http_respond_errorf(req, HD_EINVAL, "'offsets' must hold whole numbers from 1");
			return false;
		}
	}
	return true;
}

static void handle_ack(struct hd_http_request *req, struct group *g, bool nack)
{
	json_t *body = hd_group_request_body(req, false);
	if (!body)
		return;
	json_t *offs = json_object_get(body, "offsets");
	json_t *upto = json_object_get(body, "up_to");
	int64_t delay_ms = 0;
	struct hd_buf b;
	size_t done = 0, i;
	json_t *o;

	if (nack && !hd_group_request_delay_arg(req, body, &delay_ms))
		goto out;
	if (g->conf.shared) {
		if (!nack && upto && (offs || !json_is_integer(upto) || json_integer_value(upto) < 0)) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "give either 'offsets' or 'up_to' (a whole number from 0)");
			goto out;
		}
		if ((nack || !upto) && !offs) {
			hd_http_respond_errorf(req, HD_EINVAL, nack ? "the body needs 'offsets'"
					     : "the body needs 'offsets' or 'up_to'");
			goto out;
		}
		if (offs && !offsets_ok(req, offs))
			goto out;
		shared_ack(req, g, nack, offs, nack ? NULL : upto, delay_ms);
		goto out;
	}
	if (!nack && upto) {
		if (offs || !json_is_integer(upto) || json_integer_value(upto) < 0) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "give either 'offsets' or 'up_to' (a whole number from 0)");
			goto out;
		}
		done = hd_lease_ack_upto(&g->part.lease, (uint64_t)json_integer_value(upto));
		hd_buf_init(&b, 4096);
		hd_buf_printf(&b, "{\"acked\":%zu,\"ignored\":[],\"position\":%" PRIu64 "}", done,
			      g->part.lease.floor);
		goto answer;
	}
	if (!offs) {
		hd_http_respond_errorf(req, HD_EINVAL, nack ? "the body needs 'offsets'"
				     : "the body needs 'offsets' or 'up_to'");
		goto out;
	}
	if (!offsets_ok(req, offs))
		goto out;
	hd_buf_init(&b, 64 * 1024);
	hd_buf_puts(&b, "{\"ignored\":[");
	int64_t now = hd_now_ms();
	size_t nign = 0;
	json_array_foreach(offs, i, o)
	{
		uint64_t off = (uint64_t)json_integer_value(o);
		int rc = nack ? hd_lease_nack(&g->part.lease, off, delay_ms ? now + delay_ms : 0)
			      : hd_lease_ack(&g->part.lease, off);
		if (rc == 0) {
			done++;
		} else {
			hd_buf_printf(&b, "%s%" PRIu64, nign ? "," : "", off);
			nign++;
		}
	}
	hd_buf_printf(&b, "],\"%s\":%zu,\"position\":%" PRIu64 "}", nack ? "nacked" : "acked",
		      done, g->part.lease.floor);
answer:
	if (nack || done == 0) {
		hd_http_respond_json(req, 200, &b);
	} else {
		put_group(g, req, 200, &b); /* answered once durable */
	}
	if (done)
		wake(g);
out:
	json_decref(body);
}

/* ---- create, delete --------------------------------------------------- */

static void handle_create(struct hd_groups *gs, struct hd_http_request *req, struct group *g,
			  const char *topic, const char *name)
{
	json_t *body = hd_group_request_body(req, true);
	if (!body)
		return;
	struct info *in = hd_calloc(1, sizeof(*in));
	in->req = req;
	in->create = true;
	in->start = g || gs->shared ? -1 : 0; /* shared: SET creates it at the oldest */
	snprintf(in->topic, sizeof(in->topic), "%s", topic);
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->ack_wait_ms = g ? g->conf.ack_wait_ms : HD_GROUP_ACK_WAIT_DEFAULT_MS;
	in->max_deliveries = g ? g->conf.max_deliveries : HD_GROUP_MAX_DELIVERIES_DEFAULT;
	in->ordered = g ? g->conf.ordered : false;
	json_t *start = json_object_get(body, "start");
	if (!hd_group_request_config_args(req, body, &in->ack_wait_ms, &in->max_deliveries, &in->ordered))
		goto fail;
	if (start) {
		json_t *off = json_is_object(start) ? json_object_get(start, "offset") : NULL;
		if (json_is_string(start) && strcmp(json_string_value(start), "oldest") == 0) {
			in->start = 0;
		} else if (json_is_string(start) && strcmp(json_string_value(start), "latest") == 0) {
			in->start = 1;
		} else if (json_is_object(start) && json_object_size(start) == 1 &&
			   json_is_string(json_object_get(start, "time")) &&
			   hd_clock_parse_rfc3339(json_string_value(json_object_get(start, "time")),
						  strlen(json_string_value(json_object_get(start, "time"))),
						  &in->start_ms) == 0) {
			in->start = 3;
		} else if (off && json_object_size(start) == 1 && json_is_integer(off) &&
			   json_integer_value(off) >= 1) {
			in->start = 2;
			in->start_offset = (uint64_t)json_integer_value(off);
		} else {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "'start' must be \"oldest\", \"latest\", {\"offset\": N >= 1}"
					       " or {\"time\": \"RFC 3339\"}");
			goto fail;
		}
	}
	json_decref(body);
	start_info(gs, in);
	return;
fail:
	json_decref(body);
	free(in);
}

static void del_done(void *arg, int err)
{
	struct hd_http_request *req = arg;
	if (err)
		hd_http_respond_error(req, err, err == HD_ENOTFOUND ? "no such group" : NULL);
	else
		hd_http_respond(req, 204, NULL, NULL, "", 0);
}

static void handle_delete(struct hd_groups *gs, struct hd_http_request *req, struct group *g,
			  const char *topic, const char *name)
{
	if (!g) {
		hd_http_respond_errorf(req, HD_ENOTFOUND, "no such group");
		return;
	}
	hd_map_del(&gs->groups, g->key);
	g->deleted = true;
	if (g->conf.shared)
		hd_group_part_shared_submit(&g->part, HD_GLEASE_DROP, NULL, 0);
	hd_group_waiters_try(&g->q);
	group_release(g);
	hd_group_part_row_delete(gs->hub, topic, name, del_done, req);
}

struct drop {
	const char *topic;
	struct group *list[64];
	size_t n;
};

static void collect(const char *key, void *value, void *arg)
{
	struct drop *d = arg;
	struct group *g = value;
	(void)key;
	if (d->n < sizeof(d->list) / sizeof(d->list[0]) && strcmp(g->part.topic, d->topic) == 0)
		d->list[d->n++] = g;
}

void hd_groups_drop_topic(struct hd_groups *gs, const char *topic)
{
	struct drop d = {.topic = topic};
	hd_group_patterns_drop_topic(gs->patterns, topic);
	do {
		d.n = 0;
		hd_map_each(&gs->groups, collect, &d);
		for (size_t i = 0; i < d.n; i++) {
			struct group *g = d.list[i];
			hd_map_del(&gs->groups, g->key);
			g->deleted = true;
			if (g->conf.shared)
				hd_group_part_shared_submit(&g->part, HD_GLEASE_DROP, NULL, 0);
			hd_group_waiters_try(&g->q);
			group_release(g);
		}
	} while (d.n > 0);
}

/* ---- shared leases (see the top) ------------------------------------ */

/* Takes g out of the map (the engine says it does not exist). */
static void forget(struct group *g)
{
	if (g->deleted)
		return;
	hd_map_del(&g->gs->groups, g->key);
	g->deleted = true;
	hd_group_waiters_try(&g->q);
	group_release(g);
}

/* The FETCH answered: read what it handed out, or tell the waiter. */
static void shared_fetch_leased(struct hd_glease_op *op)
{
	struct fetch *f = op->arg;
	struct group *g = f->g;
	struct hd_group_waiter *w = f->w;
	int err = op->err;

	if (err == 0) {
		hd_group_part_mirror(&g->part, op);
		if (!op->exists && !g->deleted)
			put_group(g, NULL, 0, NULL); /* a new group: its row, for every node's load */
	}
	if (err == 0 && op->ngrants > 0) {
		hd_group_part_shared_read(&g->part, &f->rd, op);
		hd_engine_glease_op_fini(op);
		f->rd.r.done = fetch_done;
		f->rd.r.arg = f;
		f->rc = answer_open(&f->b);
		int rc = hd_hub_read(g->gs->hub, &f->rd.r);
		if (rc) {
			f->rd.r.err = rc;
			fetch_done(&f->rd.r); /* gives the grants back, fails w */
		}
		return;
	}
	hd_engine_glease_op_fini(op);
	g->q.busy = false;
	if (err)
		hd_group_waiters_fail(w, err, NULL);
	else if (g->deleted)
		hd_group_waiters_fail(w, HD_ENOTFOUND, "the group was deleted");
	else if (hd_now_ms() >= w->until_ms || g->gs->stopping)
		answer_empty(g, w);
	else
		hd_group_waiters_starve(&g->q, w);
	free(f);
	g->refs--;
	hd_group_waiters_try(&g->q);
	group_release(g);
}

/* Serves waiter w (off the list): the engine's FETCH, then a read. */
static void shared_fetch(struct group *g, struct hd_group_waiter *w)
{
	struct fetch *f = hd_calloc(1, sizeof(*f));
	f->g = g;
	f->w = w;
	f->op = (struct hd_glease_op){
		.kind = HD_GLEASE_FETCH,
		.topic = g->part.topic,
		.group = g->name,
		.max = w->max,
		.window = HD_GROUP_WINDOW_MAX,
		.ack_wait_ms = g->conf.ack_wait_ms,
		.max_deliveries = g->conf.max_deliveries,
		.ordered = g->conf.ordered,
		.done = shared_fetch_leased,
		.arg = f,
	};
	g->q.busy = true;
	g->refs++;
	int rc = hd_hub_glease_op(g->gs->hub, &f->op);
	if (rc) {
		f->op.err = rc;
		shared_fetch_leased(&f->op);
	}
}

struct sack {
	struct hd_glease_op op;
	struct group *g;
	struct hd_http_request *req;
	bool upto;
	uint64_t offsets[];
};

static void shared_ack_done(struct hd_glease_op *op)
{
	struct sack *a = op->arg;
	struct group *g = a->g;
	bool nack = op->kind == HD_GLEASE_NACK;
	struct hd_buf b;

	if (op->err) {
		hd_http_respond_error(a->req, op->err, "the group state could not be stored");
	} else if (!op->exists) {
		hd_http_respond_errorf(a->req, HD_ENOTFOUND, "no such group");
		forget(g);
	} else {
		hd_group_part_mirror(&g->part, op);
		hd_buf_init(&b, 64 * 1024);
		if (a->upto) {
			hd_buf_printf(&b, "{\"acked\":%zu,\"ignored\":[]", op->changed);
		} else {
			hd_buf_puts(&b, "{\"ignored\":[");
			for (size_t i = 0; i < op->nignored; i++)
				hd_buf_printf(&b, "%s%" PRIu64, i ? "," : "", op->ignored[i]);
			hd_buf_printf(&b, "],\"%s\":%zu", nack ? "nacked" : "acked", op->changed);
		}
		hd_buf_printf(&b, ",\"position\":%" PRIu64 "}", g->part.sh.floor);
		hd_http_respond_json(a->req, 200, &b);
		if (op->changed)
			wake(g);
	}
	hd_engine_glease_op_fini(op);
	g->refs--;
	group_release(g);
	free(a);
}

/* An ack (offsets or up_to) or a nack (offsets, delay_ms), checked. */
static void shared_ack(struct hd_http_request *req, struct group *g, bool nack, json_t *offs,
		       json_t *upto, int64_t delay_ms)
{
	size_t n = offs ? json_array_size(offs) : 0, i;
	json_t *o;
	struct sack *a = hd_calloc(1, sizeof(*a) + (n ? n : 1) * sizeof(a->offsets[0]));
	if (offs)
		json_array_foreach(offs, i, o)
			a->offsets[i] = (uint64_t)json_integer_value(o);
	a->g = g;
	a->req = req;
	a->upto = !offs;
	a->op = (struct hd_glease_op){
		.kind = nack ? HD_GLEASE_NACK : HD_GLEASE_ACK,
		.topic = g->part.topic,
		.group = g->name,
		.offsets = a->offsets,
		.noffsets = n,
		.up_to = upto ? (uint64_t)json_integer_value(upto) : 0,
		.delay_ms = delay_ms,
		.done = shared_ack_done,
		.arg = a,
	};
	g->refs++;
	int rc = hd_hub_glease_op(g->gs->hub, &a->op);
	if (rc) {
		a->op.err = rc;
		shared_ack_done(&a->op);
	}
}

/* A SET, or an INFO for a GET. */
struct sset {
	struct hd_glease_op op;
	struct group *g;
	struct hd_http_request *req;
	uint64_t last;
};

static void shared_set_done(struct hd_glease_op *op)
{
	struct sset *t = op->arg;
	struct group *g = t->g;
	struct hd_buf b;
	if (op->err) {
		hd_http_respond_error(t->req, op->err, "the group state could not be stored");
	} else if (op->kind == HD_GLEASE_INFO && !op->exists) {
		hd_http_respond_errorf(t->req, HD_ENOTFOUND, "no such group");
		forget(g);
	} else {
		hd_group_part_mirror(&g->part, op);
		hd_buf_init(&b, 4096);
		group_json(&b, g, t->last);
		if (op->kind == HD_GLEASE_INFO)
			hd_http_respond_json(t->req, 200, &b);
		else
			put_group(g, t->req, op->exists ? 200 : 201, &b); /* the row: every node's load */
		wake(g);
	}
	hd_engine_glease_op_fini(op);
	g->refs--;
	group_release(g);
	free(t);
}

static void shared_set_submit(struct sset *t)
{
	struct group *g = t->g;
	t->op.topic = g->part.topic;
	t->op.group = g->name;
	t->op.done = shared_set_done;
	t->op.arg = t;
	g->refs++;
	int rc = hd_hub_glease_op(g->gs->hub, &t->op);
	if (rc) {
		t->op.err = rc;
		shared_set_done(&t->op);
	}
}

/* A PUT: the engine's SET (keeping the position unless `start` moves it). */
static void shared_set(struct hd_groups *gs, struct info *in, uint64_t last, uint64_t floor)
{
	struct group *g = group_get(gs, in->topic, in->name);
	if (!g && !(g = group_new(gs, in->topic, in->name, floor))) {
		hd_http_respond_errorf(in->req, HD_ELIMIT, "at most %d groups", HD_GROUPS_MAX);
		return;
	}
	if (in->start >= 0 && (g->part.sh.leased > 0 || g->q.busy)) {
		hd_http_respond_errorf(in->req, HD_EINVAL,
				       "the group has leased events; ack them or DELETE the group"
				       " before moving its start");
		return;
	}
	struct sset *t = hd_calloc(1, sizeof(*t));
	t->g = g;
	t->req = in->req;
	t->last = last;
	t->op = (struct hd_glease_op){
		.kind = HD_GLEASE_SET,
		.floor = floor,
		.keep_position = in->start < 0,
		.ack_wait_ms = in->ack_wait_ms,
		.max_deliveries = in->max_deliveries,
		.ordered = in->ordered,
	};
	shared_set_submit(t);
}

/* A GET: the engine's INFO; takes in's hold of in->g. */
static void shared_info(struct info *in, uint64_t last)
{
	struct sset *t = hd_calloc(1, sizeof(*t));
	t->g = in->g;
	t->req = in->req;
	t->last = last;
	t->op.kind = HD_GLEASE_INFO;
	in->g->refs--; /* shared_set_submit takes its own */
	shared_set_submit(t);
}

/* A request for a group this node does not know: asks the engine. */
struct probe {
	struct hd_glease_op op;
	struct hd_groups *gs;
	struct group *g;
	struct hd_http_request *req;
	enum hd_group_action act;
	struct hd_group_cred cred;
	char topic[HD_TOPIC_NAME_MAX + 1];
	char name[HD_GROUP_NAME_MAX + 1];
};

static void probe_done(struct hd_glease_op *op)
{
	struct probe *pr = op->arg;
	struct group *g = pr->g;
	g->refs--;
	if (op->err) {
		hd_http_respond_error(pr->req, op->err, NULL);
		group_release(g);
	} else if (!op->exists && pr->act != HD_GROUP_ACT_CREATE) {
		hd_http_respond_errorf(pr->req, HD_ENOTFOUND, "no such group");
		forget(g);
	} else {
		if (op->exists)
			hd_group_part_mirror(&g->part, op);
		group_release(g);
		dispatch(pr->gs, pr->req, pr->act, pr->topic, pr->name, &pr->cred);
	}
	hd_engine_glease_op_fini(op);
	free(pr);
}

static void shared_probe(struct hd_groups *gs, struct hd_http_request *req,
			 enum hd_group_action act, const char *topic, const char *name,
			 const struct hd_group_cred *cred)
{
	struct group *g = group_new(gs, topic, name, 0);
	if (!g) {
		hd_http_respond_errorf(req, HD_ELIMIT, "at most %d groups", HD_GROUPS_MAX);
		return;
	}
	struct probe *pr = hd_calloc(1, sizeof(*pr));
	pr->gs = gs;
	pr->g = g;
	pr->req = req;
	pr->act = act;
	pr->cred = *cred;
	snprintf(pr->topic, sizeof(pr->topic), "%s", topic);
	snprintf(pr->name, sizeof(pr->name), "%s", name);
	pr->op = (struct hd_glease_op){
		.kind = HD_GLEASE_INFO,
		.topic = g->part.topic,
		.group = g->name,
		.done = probe_done,
		.arg = pr,
	};
	g->refs++;
	int rc = hd_hub_glease_op(gs->hub, &pr->op);
	if (rc) {
		pr->op.err = rc;
		probe_done(&pr->op);
	}
}

/* ---- entry ------------------------------------------------------------ */

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > HD_GROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '~'))
			return false;
	}
	return true;
}

static void dispatch(struct hd_groups *gs, struct hd_http_request *req, enum hd_group_action act,
		     const char *topic, const char *name, const struct hd_group_cred *cred)
{
	if (hd_topic_pattern_is(topic)) {
		hd_group_patterns_handle(gs->patterns, req, act, topic, name, cred);
		return;
	}
	struct group *g = group_get(gs, topic, name);
	if (gs->stopping) {
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (!g && gs->shared && act != HD_GROUP_ACT_FETCH) {
		shared_probe(gs, req, act, topic, name, cred); /* created on another node? */
		return;
	}
	switch (act) {
	case HD_GROUP_ACT_INFO:
		if (!g) {
			hd_http_respond_errorf(req, HD_ENOTFOUND, "no such group");
			return;
		}
		struct info *in = hd_calloc(1, sizeof(*in));
		in->req = req;
		in->g = g;
		g->refs++;
		snprintf(in->topic, sizeof(in->topic), "%s", topic);
		start_info(gs, in);
		return;
	case HD_GROUP_ACT_CREATE:
		handle_create(gs, req, g, topic, name);
		return;
	case HD_GROUP_ACT_DELETE:
		handle_delete(gs, req, g, topic, name);
		return;
	case HD_GROUP_ACT_FETCH:
		handle_fetch(gs, req, g, topic, name, cred);
		return;
	case HD_GROUP_ACT_ACK:
	case HD_GROUP_ACT_NACK:
		if (!g) {
			hd_http_respond_errorf(req, HD_ENOTFOUND, "no such group");
			return;
		}
		handle_ack(req, g, act == HD_GROUP_ACT_NACK);
		return;
	}
}

void hd_groups_handle(struct hd_groups *gs, struct hd_http_request *req, enum hd_group_action act,
		      const char *topic, const char *name, const struct hd_group_cred *cred)
{
	if (!name_ok(name)) {
		hd_http_respond_errorf(req, HD_EINVAL, "group name must be 1-%d bytes of [A-Za-z0-9._~-]",
				       HD_GROUP_NAME_MAX);
		return;
	}
	if (!hd_topic_pattern_is(topic) && !hd_topic_name_dlq_fits(topic)) {
		hd_http_respond_errorf(req, HD_EINVAL, "the topic name is too long for a dead-letter topic");
		return;
	}
	if (!gs->loaded) {
		if (gs->npending >= 1000) {
			hd_http_respond_error(req, HD_EUNAVAIL, "groups are still loading");
			return;
		}
		struct pending *p = hd_calloc(1, sizeof(*p));
		p->req = req;
		p->act = act;
		p->cred = *cred;
		snprintf(p->topic, sizeof(p->topic), "%s", topic);
		snprintf(p->name, sizeof(p->name), "%s", name);
		struct pending **pp = &gs->pending;
		while (*pp)
			pp = &(*pp)->next;
		*pp = p;
		gs->npending++;
		return;
	}
	dispatch(gs, req, act, topic, name, cred);
}

static void recheck_one(const char *key, void *value, void *arg)
{
	struct group *g = value;
	(void)key;
	hd_group_waiters_recheck(&g->q, arg, g->part.topic);
}

void hd_groups_recheck(struct hd_groups *gs, const struct hd_group_recheck *rc)
{
	/* Groups in the map are not deleted: nothing here can free one. */
	hd_map_each(&gs->groups, recheck_one, (void *)rc);
	hd_group_patterns_recheck(gs->patterns, rc);
}

/* Dispatches the requests that came before the load ended, in order
 * (after hd_groups_stop, dispatch answers each 503). */
static void dispatch_pending(struct hd_groups *gs)
{
	while (gs->pending) {
		struct pending *p = gs->pending;
		gs->pending = p->next;
		gs->npending--;
		dispatch(gs, p->req, p->act, p->topic, p->name, &p->cred);
		free(p);
	}
}

static void load_done(struct hd_group_op *op)
{
	struct hd_groups *gs = op->arg;
	if (op->err)
		hd_log_error("groups_load_failed err=%d", op->err);
	for (size_t i = 0; i < op->n; i++) {
		const struct hd_group_row *row = &op->rows[i];
		if (hd_group_patterns_row_is(row))
			continue; /* a pattern group's, below */
		struct group *g = group_new(gs, row->topic, row->name, row->ack_floor);
		if (!g)
			break;
		if (hd_lease_restore(&g->part.lease, row->ack_floor, row->acked) != 0)
			hd_log_warn("group_state_ignored topic=%s group=%s", row->topic, row->name);
		g->conf.ack_wait_ms = row->ack_wait_ms;
		g->conf.max_deliveries = row->max_deliveries;
		g->conf.ordered = row->ordered;
		g->conf.created_ms = row->created_ms;
	}
	hd_group_patterns_load(gs->patterns, op->rows, op->n);
	hd_engine_group_op_fini(op);
	gs->loaded = true;
	dispatch_pending(gs);
}

/* The hub's topic-deleted event (hd_hub_on_topic_deleted). */
static void on_topic_deleted(void *gs, const char *topic)
{
	hd_groups_drop_topic(gs, topic);
}

struct hd_groups *hd_groups_new(uv_loop_t *loop, struct hd_hub *hub)
{
	struct hd_groups *gs = hd_calloc(1, sizeof(*gs));
	gs->loop = loop;
	gs->hub = hub;
	hd_map_init(&gs->groups, HD_GROUPS_MAX);
	gs->patterns = hd_group_patterns_new(loop, hub);
	hd_hub_on_topic_deleted(hub, on_topic_deleted, gs);
	return gs;
}

void hd_groups_start(struct hd_groups *gs)
{
	gs->shared = hd_hub_glease_shared(gs->hub);
	gs->load.kind = HD_GROUP_LIST;
	gs->load.limit = HD_GROUPS_MAX + HD_GROUP_PATTERNS_MAX + HD_GROUP_PARTS_MAX;
	gs->load.done = load_done;
	gs->load.arg = gs;
	int rc = hd_hub_group_op(gs->hub, &gs->load);
	if (rc) {
		gs->load.err = rc;
		load_done(&gs->load);
	}
}

static void stop_group(const char *key, void *value, void *arg)
{
	struct group *g = value;
	(void)key;
	(void)arg;
	hd_group_waiters_stop(&g->q);
	if (g->watching)
		hd_hub_unwatch(g->gs->hub, &g->watch);
	g->watching = false;
}

void hd_groups_stop(struct hd_groups *gs)
{
	gs->stopping = true;
	hd_map_each(&gs->groups, stop_group, NULL);
	hd_group_patterns_stop(gs->patterns);
	dispatch_pending(gs);
}

static void free_group(const char *key, void *value, void *arg)
{
	struct group *g = value;
	(void)key;
	(void)arg;
	hd_group_part_fini(&g->part);
	free(g);
}

void hd_groups_free(struct hd_groups *gs)
{
	if (!gs)
		return;
	hd_hub_off_topic_deleted(gs->hub, on_topic_deleted, gs);
	hd_map_each(&gs->groups, free_group, NULL);
	hd_map_fini(&gs->groups);
	hd_group_patterns_free(gs->patterns);
	free(gs);
}
