/*
 * owner — ownership leases of consumers between nodes (see owner.h): one
 * list of claims, one timer that renews the held ones and tries the others
 * every HD_OWNER_RENEW_MS, at most one lease operation in flight per claim.
 * A tick sends its operations in pages of HD_OWNER_BATCH_MAX, one engine
 * call each (hd_hub_owner_ops): 5,000 claims cost 10 calls a second, not
 * 5,000. A claim's first try (hd_owner_add, hd_owner_take) goes alone, at
 * once.
 * Layer: consume; loop thread. Callers: webhook/, push/.
 */
#include "consume/owner.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hd_owner {
	uv_loop_t *loop;
	struct hd_hub *hub;
	char id[HD_OWNER_ID_MAX + 1];
	bool shared, stopped;
	uv_timer_t timer;
	struct hd_owner_claim *claims;
	size_t nclaims;
	long long warn_ms;
};

/* One lease operation; c is NULL once its claim was removed (then it only
 * frees itself). */
struct hd_owner_req {
	struct hd_owner_op op;
	struct hd_owner_claim *c;
	int64_t sent_ms;
	char owner[HD_OWNER_ID_MAX + 1];
};

static void on_tick(uv_timer_t *t);
static void send_release(struct hd_owner *o, const char *name, const char *owner);

struct hd_owner *hd_owner_new(uv_loop_t *loop, struct hd_hub *hub, const char *node)
{
	struct hd_owner *o = hd_calloc(1, sizeof(*o));
	o->loop = loop;
	o->hub = hub;
	o->shared = hd_hub_owner_shared(hub);
	snprintf(o->id, sizeof(o->id), "%.120s pid=%ld t=%lld", node, (long)getpid(),
		 (long long)hd_now_ms());
	uv_timer_init(loop, &o->timer);
	o->timer.data = o;
	if (o->shared)
		uv_timer_start(&o->timer, on_tick, HD_OWNER_RENEW_MS, HD_OWNER_RENEW_MS);
	return o;
}

bool hd_owner_shared(const struct hd_owner *o)
{
	return o->shared;
}

struct hd_hub *hd_owner_hub(const struct hd_owner *o)
{
	return o->hub;
}

const char *hd_owner_id(const struct hd_owner *o)
{
	return o->id;
}

bool hd_owner_holds(const struct hd_owner_claim *c)
{
	if (!c->held || !c->o)
		return false;
	return !c->o->shared || hd_now_ms() < c->valid_until_ms;
}

static void set_held(struct hd_owner_claim *c, bool held)
{
	if (c->held == held)
		return;
	c->held = held;
	hd_log_info("owner_%s lease=%s holder=\"%s\"", held ? "gained" : "lost", c->name,
		    c->holder);
	c->changed(c);
}

static void req_done(struct hd_owner_op *op)
{
	struct hd_owner_req *q = op->arg;
	struct hd_owner_claim *c = q->c;
	if (c)
		c->req = NULL;
	if (!c || op->kind == HD_OWNER_RELEASE) {
		free(q);
		return;
	}
	int64_t sent = q->sent_ms;
	int err = op->err;
	bool held = !err && op->held;
	bool wanted = held && op->wanted;
	uint64_t token = op->token;
	if (!err)
		snprintf(c->holder, sizeof(c->holder), "%s", op->holder);
	free(q);
	if (err) {
		/* Unknown: held on only until the last renewal runs out. */
		if (c->held && hd_now_ms() >= c->valid_until_ms)
			set_held(c, false);
		return;
	}
	if (held && wanted && c->held && c->token == token && !c->taking) {
		/* Another node asked for it: write what is held, then hand over. */
		struct hd_owner *o = c->o;
		char name[HD_OWNER_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", c->name);
		hd_log_info("owner_handover lease=%s", c->name);
		c->handing = true;
		set_held(c, false);
		c->handing = false;
		send_release(o, name, o->id);
		return;
	}
	if (held) {
		c->taking = false;
		bool lapsed = c->held && !hd_owner_holds(c);
		c->valid_until_ms = sent + HD_OWNER_TTL_MS - HD_OWNER_RENEW_MS;
		if (c->held && (c->token != token || lapsed)) {
			/* Lost meanwhile (it ran out, maybe taken by another node
			 * and back) and held again: a new holding, read afresh. */
			set_held(c, false);
			if (c->req || !c->o || c->o->stopped)
				return; /* removed or re-sent by changed() */
		}
		c->token = token;
		set_held(c, true);
	} else {
		set_held(c, false);
	}
}

/* c's lease operation (acquire or renew; take: take it over), made c's
 * request in flight; the caller sends it. */
static struct hd_owner_req *acquire_new(struct hd_owner *o, struct hd_owner_claim *c, bool take)
{
	struct hd_owner_req *q = hd_calloc(1, sizeof(*q));
	q->c = c;
	q->sent_ms = hd_now_ms();
	snprintf(q->owner, sizeof(q->owner), "%s", o->id);
	q->op.kind = take ? HD_OWNER_TAKE : HD_OWNER_ACQUIRE;
	snprintf(q->op.name, sizeof(q->op.name), "%s", c->name);
	q->op.owner = q->owner;
	q->op.ttl_ms = HD_OWNER_TTL_MS;
	q->op.done = req_done;
	q->op.arg = q;
	c->req = q;
	return q;
}

/* Sends c's lease operation alone. */
static void send_acquire(struct hd_owner *o, struct hd_owner_claim *c, bool take)
{
	struct hd_owner_req *q = acquire_new(o, c, take);
	int rc = hd_hub_owner_op(o->hub, &q->op);
	if (rc) {
		q->op.err = rc;
		req_done(&q->op);
	}
}

/* Sends a tick's page of operations in one engine call. */
static void send_page(struct hd_owner *o, struct hd_owner_op **ops, size_t n)
{
	int rc = hd_hub_owner_ops(o->hub, ops, n);
	for (size_t i = 0; rc && i < n; i++) {
		ops[i]->err = rc;
		ops[i]->done(ops[i]);
	}
}

static void send_release(struct hd_owner *o, const char *name, const char *owner)
{
	struct hd_owner_req *q = hd_calloc(1, sizeof(*q));
	snprintf(q->owner, sizeof(q->owner), "%s", owner);
	q->op.kind = HD_OWNER_RELEASE;
	snprintf(q->op.name, sizeof(q->op.name), "%s", name);
	q->op.owner = q->owner;
	q->op.done = req_done;
	q->op.arg = q;
	if (hd_hub_owner_op(o->hub, &q->op))
		free(q);
}

void hd_owner_add(struct hd_owner *o, struct hd_owner_claim *c)
{
	c->o = o;
	c->held = false;
	c->handing = false;
	c->taking = false;
	c->token = 0;
	c->holder[0] = '\0';
	c->req = NULL;
	c->prev = NULL;
	c->next = o->claims;
	if (o->claims)
		o->claims->prev = c;
	o->claims = c;
	o->nclaims++;
	if (!o->shared) {
		c->held = true;
		return;
	}
	if (o->nclaims > HD_OWNER_CLAIMS_MAX) {
		if (hd_log_ratelimited(&o->warn_ms))
			hd_log_error("owner_claims_over_limit lease=%s max=%d (never delivered here)",
				     c->name, HD_OWNER_CLAIMS_MAX);
		return;
	}
	if (!o->stopped)
		send_acquire(o, c, false);
}

void hd_owner_remove(struct hd_owner_claim *c, bool release)
{
	struct hd_owner *o = c->o;
	if (!o)
		return;
	if (c->req) {
		c->req->c = NULL;
		c->req = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		o->claims = c->next;
	if (c->next)
		c->next->prev = c->prev;
	o->nclaims--;
	if (release && o->shared && c->held)
		send_release(o, c->name, o->id);
	c->held = false;
	c->o = NULL;
	c->prev = c->next = NULL;
}

void hd_owner_take(struct hd_owner_claim *c)
{
	struct hd_owner *o = c->o;
	if (!o || !o->shared || o->stopped || o->nclaims > HD_OWNER_CLAIMS_MAX)
		return;
	if (c->req) {
		c->req->c = NULL; /* its answer is older than the take's */
		c->req = NULL;
	}
	hd_log_info("owner_take lease=%s holder=\"%s\"", c->name, c->holder);
	c->taking = true;
	send_acquire(o, c, true);
}

void hd_owner_drop(struct hd_owner *o, const char *name)
{
	if (o->shared)
		send_release(o, name, "");
}

void hd_owner_lost(struct hd_owner_claim *c)
{
	if (!c->o || !c->o->shared)
		return;
	set_held(c, false);
}

static void on_tick(uv_timer_t *t)
{
	struct hd_owner *o = t->data;
	int64_t now = hd_now_ms();
	size_t i = 0, n = 0;
	struct hd_owner_op *page[HD_OWNER_BATCH_MAX];
	struct hd_owner_claim *c = o->claims, *next;
	/* changed() may remove the claim it runs for (not others); a claim
	 * whose operation waits in the page is removed safely (its request
	 * only frees itself when answered). */
	for (; c && i < HD_OWNER_CLAIMS_MAX; c = next, i++) {
		next = c->next;
		if (c->held && now >= c->valid_until_ms && !c->req) {
			set_held(c, false);
		} else if (!c->req) {
			page[n++] = &acquire_new(o, c, c->taking)->op;
			if (n == HD_OWNER_BATCH_MAX) {
				send_page(o, page, n);
				n = 0;
			}
		}
	}
	if (n)
		send_page(o, page, n);
}

void hd_owner_stop(struct hd_owner *o)
{
	if (o->stopped)
		return;
	o->stopped = true;
	uv_timer_stop(&o->timer);
	while (o->claims)
		hd_owner_remove(o->claims, true);
	uv_close((uv_handle_t *)&o->timer, NULL);
}

void hd_owner_free(struct hd_owner *o)
{
	free(o);
}
