/*
 * group_part — see group_part.h.
 */
#include "groups/group_part.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "groups/groups.h"
#include "consume/deadletter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hd_group_part_conf_init(struct hd_group_conf *c, struct hd_hub *hub, const char *name,
			     const char *pattern, const char *row_name,
			     struct hd_group_waiters *q, const struct hd_group_part_ops *ops,
			     void *owner)
{
	*c = (struct hd_group_conf){
		.hub = hub,
		.name = name,
		.pattern = pattern,
		.row_name = row_name,
		.ack_wait_ms = HD_GROUP_ACK_WAIT_DEFAULT_MS,
		.max_deliveries = HD_GROUP_MAX_DELIVERIES_DEFAULT,
		.created_ms = hd_now_ms(),
		.q = q,
		.ops = ops,
		.owner = owner,
	};
}

void hd_group_part_init(struct hd_group_part *p, struct hd_group_conf *conf, const char *topic,
			uint64_t floor)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	hd_lease_init(&p->lease, floor, HD_GROUP_WINDOW_MAX);
	p->conf = conf;
	p->sh.floor = floor;
	p->sh.next = floor + 1;
	p->sh.due_at = INT64_MAX;
}

void hd_group_part_fini(struct hd_group_part *p)
{
	hd_lease_fini(&p->lease);
}

/* ---- rows ------------------------------------------------------------- */

struct hd_group_part_reply {
	struct hd_http_request *req;
	struct hd_buf body;
	int status;
	int left;                     /* writes to wait for, + the caller's share */
	int err;
};

struct hd_group_part_reply *hd_group_part_reply_new(struct hd_http_request *req, int status,
					  struct hd_buf *body)
{
	if (!req)
		return NULL;
	struct hd_group_part_reply *r = hd_calloc(1, sizeof(*r));
	r->req = req;
	r->status = status;
	r->body = *body;
	r->left = 1;
	return r;
}

void hd_group_part_reply_done(struct hd_group_part_reply *r, int err)
{
	if (!r)
		return;
	if (err)
		r->err = err;
	if (--r->left > 0)
		return;
	if (r->err) {
		hd_buf_fini(&r->body);
		hd_http_respond_error(r->req, r->err, "the group state could not be stored");
	} else {
		hd_http_respond_json(r->req, r->status, &r->body);
	}
	free(r);
}

/* Issues op; one the hub refuses at once completes at once. */
static void submit(struct hd_hub *hub, struct hd_group_op *op)
{
	int rc = hd_hub_group_op(hub, op);
	if (rc) {
		op->err = rc;
		op->done(op);
	}
}

/* A durable write of one row. */
struct put {
	struct hd_group_op op;
	struct hd_group_conf *c;
	struct hd_group_part *p;      /* NULL for a parent row */
	struct hd_group_part_reply *reply;
	char *acked;                  /* owned: op.row.acked */
};

static void put_done(struct hd_group_op *op)
{
	struct put *u = op->arg;
	struct hd_group_conf *c = u->c;
	hd_group_part_reply_done(u->reply, op->err);
	if (op->err && hd_log_ratelimited(&c->warn_ms))
		hd_log_error("group_put_failed %s=%s group=%s err=%d",
			     c->pattern ? "pattern" : "topic",
			     c->pattern ? c->pattern : op->row.topic, c->name, op->err);
	c->ops->release(c->owner, u->p);
	free(u->acked);
	free(u);
}

static void put_row(struct hd_group_conf *c, struct hd_group_part *p, const char *topic,
		    const char *name, struct hd_group_part_reply *reply)
{
	struct put *u = hd_calloc(1, sizeof(*u));
	size_t cap = HD_LEASE_ENCODED_MAX(HD_GROUP_WINDOW_MAX);
	u->c = c;
	u->p = p;
	u->reply = reply;
	if (reply)
		reply->left++;
	u->acked = hd_malloc(cap);
	u->acked[0] = '\0';
	if (p && hd_lease_encode(&p->lease, u->acked, cap) < 0)
		u->acked[0] = '\0'; /* cannot happen: cap is the bound */
	u->op.kind = HD_GROUP_PUT;
	snprintf(u->op.row.topic, sizeof(u->op.row.topic), "%s", topic);
	snprintf(u->op.row.name, sizeof(u->op.row.name), "%s", name);
	u->op.row.ack_floor = p ? p->lease.floor : 0;
	u->op.row.acked = u->acked;
	u->op.row.ack_wait_ms = c->ack_wait_ms;
	u->op.row.max_deliveries = c->max_deliveries;
	u->op.row.ordered = c->ordered;
	u->op.row.created_ms = c->created_ms;
	u->op.done = put_done;
	u->op.arg = u;
	c->ops->hold(c->owner, p);
	submit(c->hub, &u->op);
}

void hd_group_part_put(struct hd_group_part *p, struct hd_group_part_reply *r)
{
	if (!p->gone)
		put_row(p->conf, p, p->topic, p->conf->row_name, r);
}

void hd_group_part_parent_put(struct hd_group_conf *c, struct hd_group_part_reply *r)
{
	put_row(c, NULL, c->pattern, c->name, r);
}

struct del {
	struct hd_group_op op;
	void (*done)(void *arg, int err);
	void *arg;
};

static void del_done(struct hd_group_op *op)
{
	struct del *d = op->arg;
	d->done(d->arg, op->err);
	free(d);
}

void hd_group_part_row_delete(struct hd_hub *hub, const char *topic, const char *name,
			 void (*done)(void *arg, int err), void *arg)
{
	struct del *d = hd_malloc(sizeof(*d));
	*d = (struct del){.op = {.kind = HD_GROUP_DELETE, .done = del_done, .arg = d},
			  .done = done,
			  .arg = arg};
	snprintf(d->op.row.topic, sizeof(d->op.row.topic), "%s", topic);
	snprintf(d->op.row.name, sizeof(d->op.row.name), "%s", name);
	submit(hub, &d->op);
}

/* ---- dead letters ----------------------------------------------------- */

static void dead_done(void *arg, uint64_t offset, uint64_t tag, int err)
{
	struct hd_group_part *p = arg;
	struct hd_group_conf *c = p->conf;
	(void)tag;
	if (err == 0 && c->shared) {
		/* The engine moves the floor and counts it; a node that dies
		 * before this leaves the lease to end, and the next fetch
		 * dead-letters it again (the same id: dedup drops it). */
		hd_group_part_shared_submit(p, HD_GLEASE_ACK_DEAD, &offset, 1);
	} else if (err == 0) {
		if (hd_lease_ack(&p->lease, offset) == 0) {
			p->dead_letters++;
			hd_group_part_put(p, NULL);
		}
	} else if (hd_log_ratelimited(&c->warn_ms)) {
		if (c->pattern)
			hd_log_warn("group_dead_letter_failed pattern=%s group=%s topic=%s"
				    " offset=%" PRIu64 " err=%d",
				    c->pattern, c->name, p->topic, offset, err);
		else
			hd_log_warn("group_dead_letter_failed topic=%s group=%s offset=%" PRIu64
				    " err=%d",
				    p->topic, c->name, offset, err);
	}
	hd_group_waiters_wake(c->q);
	c->ops->release(c->owner, p);
}

/* Publishes one event that ran out of deliveries to {topic}.dlq: a
 * CloudEvent whose data is {"event": the original, "reason", "attempts",
 * "group", ["pattern",] "topic", "offset"}; acked once committed. */
static void dead_letter(struct hd_group_part *p, const struct hd_stored_event *ev,
			uint32_t attempts)
{
	struct hd_group_conf *c = p->conf;
	struct hd_buf extra;
	char id[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 24];
	char src[2 * HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 32];

	/* (row name, offset) as the id: a dead-lettering repeated after a
	 * crash before the ack was stored is dropped by dedup where enabled. */
	snprintf(id, sizeof(id), "%s/%" PRIu64, c->row_name, ev->offset);
	snprintf(src, sizeof(src), "/herald/groups/%s/%s", c->pattern ? c->pattern : p->topic,
		 c->name);
	hd_buf_init(&extra, 1024);
	hd_buf_puts(&extra, "\"group\":\"");
	hd_buf_json_escape(&extra, c->name, strlen(c->name));
	if (c->pattern) {
		hd_buf_puts(&extra, "\",\"pattern\":\"");
		hd_buf_json_escape(&extra, c->pattern, strlen(c->pattern));
	}
	hd_buf_putc(&extra, '"');
	c->ops->hold(c->owner, p);
	hd_deadletter_publish(c->hub,
			      &(struct hd_deadletter){
				      .id = id,
				      .source = src,
				      .type = "herald.group.deadletter",
				      .reason = "max_deliveries",
				      .attempts = attempts,
				      .topic = p->topic,
				      .offset = ev->offset,
				      .extra = extra.data,
				      .event = ev->json->data,
				      .event_len = ev->json->len,
				      .now_ms = hd_now_ms(),
			      },
			      0, dead_done, p);
	hd_buf_fini(&extra);
}

/* ---- reading ---------------------------------------------------------- */

bool hd_group_part_read(struct hd_group_part *p, struct hd_group_read *rd, size_t want,
			bool new_only, uint64_t last)
{
	struct hd_group_conf *c = p->conf;
	struct hd_lease *l = &p->lease;
	int64_t now = hd_now_ms();
	struct hd_lease_grant *grants = hd_calloc(want, sizeof(*grants));
	size_t n = new_only ? 0 : hd_lease_take_due(l, now, now + c->ack_wait_ms, grants, want);

	/* One read must cover every grant: keep those within a read's reach
	 * of the first and give the rest back. */
	size_t keep = n;
	for (size_t i = 1; i < n; i++) {
		if (grants[i].offset - grants[0].offset >= HD_GROUP_FETCH_MAX) {
			keep = i;
			break;
		}
	}
	for (size_t i = keep; i < n; i++) {
		hd_lease_nack(l, grants[i].offset, 0);
		l->redeliveries -= grants[i].deliveries > 1;
		/* The count went up for a hand-out that did not happen. */
		l->slots[grants[i].offset & (l->nslots - 1)].deliveries--;
	}
	n = keep;
	memset(rd, 0, sizeof(*rd));
	rd->r.topic = p->topic;
	if (n > 0) {
		rd->grants = grants;
		rd->ngrants = n;
		rd->r.after = grants[0].offset - 1;
		rd->r.limit = (uint32_t)(grants[n - 1].offset - grants[0].offset + 1);
		return true;
	}
	free(grants);
	size_t room = HD_GROUP_WINDOW_MAX - hd_lease_window(l);
	if ((c->ordered && hd_lease_window(l) > 0) || room == 0 || last < l->next)
		return false;
	rd->r.after = l->next - 1;
	rd->r.limit = (uint32_t)(room < want ? room : want);
	return true;
}

/* Hands out ev, due for its delivery number d: to emit, or past
 * max_deliveries to the dead-letter topic. */
static void hand_out(struct hd_group_part *p, const struct hd_stored_event *ev, uint32_t d,
		     hd_group_emit_fn emit, void *arg)
{
	uint32_t maxd = p->conf->max_deliveries;
	if (maxd && d > maxd)
		dead_letter(p, ev, d - 1);
	else
		emit(arg, ev, d);
}

/* Redeliveries: matches the read to the grants. */
static void apply_grants(struct hd_group_part *p, struct hd_group_read *rd, hd_group_emit_fn emit,
			 void *arg)
{
	struct hd_read *r = &rd->r;
	size_t j = 0, n = r->n;
	for (size_t i = 0; i < rd->ngrants; i++) {
		uint64_t o = rd->grants[i].offset;
		uint32_t d = rd->grants[i].deliveries;
		while (j < n && r->events[j].offset < o)
			j++;
		if (j < n && r->events[j].offset == o) {
			hand_out(p, &r->events[j], d, emit, arg);
		} else if (r->truncated || j < n || o <= r->last) {
			hd_lease_ack(&p->lease, o); /* gone: retention, TTL */
		} else {
			hd_lease_nack(&p->lease, o, 0);
		}
	}
}

/* New events: each leased for the first time, up to the window's cap. */
static void apply_new(struct hd_group_part *p, struct hd_read *r, hd_group_emit_fn emit,
		      void *arg)
{
	struct hd_lease *l = &p->lease;
	int64_t until = hd_now_ms() + p->conf->ack_wait_ms;
	size_t n = r->n, given = 0;
	for (size_t i = 0; i < n; i++) {
		if (hd_lease_add(l, r->events[i].offset, until) != 0)
			break;
		emit(arg, &r->events[i], 1);
		given++;
	}
	if (n == 0 && r->last >= l->next)
		hd_lease_skip(l, r->last); /* all expired or removed */
	else if (n > 0 && given == n && r->n < r->limit && r->last > r->events[n - 1].offset)
		hd_lease_skip(l, r->last);
}

int hd_group_part_read_done(struct hd_group_part *p, struct hd_group_read *rd,
			    hd_group_emit_fn emit, void *arg)
{
	int err = rd->r.err;
	if (err) {
		/* Give the grants back: due again at once. */
		for (size_t i = 0; i < rd->ngrants; i++)
			hd_lease_nack(&p->lease, rd->grants[i].offset, 0);
	} else if (rd->grants) {
		apply_grants(p, rd, emit, arg);
	} else {
		apply_new(p, &rd->r, emit, arg);
	}
	free(rd->grants);
	rd->grants = NULL;
	rd->ngrants = 0;
	return err;
}

/* ---- shared leases ---------------------------------------------------- */

void hd_group_part_mirror(struct hd_group_part *p, const struct hd_glease_op *op)
{
	struct hd_group_conf *c = p->conf;
	p->sh = (struct hd_group_shared){
		.floor = op->st_floor,
		.next = op->st_next,
		.leased = op->st_leased,
		.redeliveries = op->st_redeliveries,
		.dead_letters = op->st_dead_letters,
		.due_at = op->next_due_ms < 0 ? INT64_MAX : hd_now_ms() + op->next_due_ms,
	};
	/* A pattern group's config is its parent's (group_patterns.c). */
	if (!c->pattern && (op->exists || op->kind == HD_GLEASE_FETCH || op->kind == HD_GLEASE_SET)) {
		c->ack_wait_ms = op->st_ack_wait_ms;
		c->max_deliveries = op->st_max_deliveries;
		c->ordered = op->st_ordered;
		if (op->st_created_ms > 0)
			c->created_ms = op->st_created_ms;
	}
}

struct gsub {
	struct hd_glease_op op;
	struct hd_group_part *p;
	uint64_t offsets[];
};

static void gsub_done(struct hd_glease_op *op)
{
	struct gsub *s = op->arg;
	struct hd_group_part *p = s->p;
	struct hd_group_conf *c = p->conf;
	if (op->err == 0)
		hd_group_part_mirror(p, op);
	else if (hd_log_ratelimited(&c->warn_ms))
		hd_log_warn("group_lease_write_failed topic=%s group=%s kind=%d err=%d", p->topic,
			    c->name, (int)op->kind, op->err);
	hd_engine_glease_op_fini(op);
	hd_group_waiters_wake(c->q);
	c->ops->release(c->owner, p);
	free(s);
}

void hd_group_part_shared_submit(struct hd_group_part *p, enum hd_glease_kind kind,
				 const uint64_t *offsets, size_t n)
{
	struct hd_group_conf *c = p->conf;
	if (p->gone || n > HD_GLEASE_SPAN)
		return;
	struct gsub *s = hd_calloc(1, sizeof(*s) + n * sizeof(s->offsets[0]));
	if (n)
		memcpy(s->offsets, offsets, n * sizeof(s->offsets[0]));
	s->p = p;
	s->op = (struct hd_glease_op){
		.kind = kind,
		.topic = p->topic,
		.group = c->row_name,
		.offsets = s->offsets,
		.noffsets = n,
		.done = gsub_done,
		.arg = s,
	};
	c->ops->hold(c->owner, p);
	int rc = hd_hub_glease_op(c->hub, &s->op);
	if (rc) {
		s->op.err = rc;
		gsub_done(&s->op);
	}
}

void hd_group_part_shared_read(struct hd_group_part *p, struct hd_group_read *rd,
			       const struct hd_glease_op *fop)
{
	size_t n = fop->ngrants;
	uint64_t lo = fop->grants[0].offset, hi = lo;
	memset(rd, 0, sizeof(*rd));
	rd->grants = hd_calloc(n, sizeof(*rd->grants));
	for (size_t i = 0; i < n; i++) {
		rd->grants[i].offset = fop->grants[i].offset;
		rd->grants[i].deliveries = fop->grants[i].deliveries;
		if (fop->grants[i].offset < lo)
			lo = fop->grants[i].offset;
		if (fop->grants[i].offset > hi)
			hi = fop->grants[i].offset;
	}
	rd->ngrants = n;
	rd->r.topic = p->topic;
	rd->r.after = lo - 1;
	rd->r.limit = (uint32_t)(hi - lo + 1);
}

int hd_group_part_shared_read_done(struct hd_group_part *p, struct hd_group_read *rd,
				   hd_group_emit_fn emit, void *arg)
{
	struct hd_read *r = &rd->r;
	int err = r->err;
	uint64_t *back = hd_calloc(rd->ngrants ? rd->ngrants : 1, sizeof(*back));
	size_t nback = 0, n = r->n, j = 0;

	/* The grants are in offset order (the engine's FETCH sorts them). */
	for (size_t i = 0; i < rd->ngrants; i++) {
		uint64_t o = rd->grants[i].offset;
		uint32_t d = rd->grants[i].deliveries;
		if (err) {
			back[nback++] = o;
			continue;
		}
		while (j < n && r->events[j].offset < o)
			j++;
		if (j < n && r->events[j].offset == o) {
			hand_out(p, &r->events[j], d, emit, arg);
		} else if (j < n || (n == 0 && o <= r->last) || (r->truncated && n == 0)) {
			back[nback++] = o; /* gone: retention, TTL */
		}
		/* else: past what one read returned (its byte cap): it stays
		 * leased and comes back when the lease ends. */
	}
	if (nback)
		hd_group_part_shared_submit(p, err ? HD_GLEASE_NACK : HD_GLEASE_ACK_GONE, back, nback);
	free(back);
	free(rd->grants);
	rd->grants = NULL;
	rd->ngrants = 0;
	return err;
}
