/*
 * group_waiters — see group_waiters.h.
 */
#include "groups/group_waiters.h"
#include "consume/due.h"
#include "core/alloc.h"
#include "core/clock.h"

#include <stdlib.h>

static void waiter_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Ends an answered waiter: frees it once its timer is closed. */
static void waiter_end(struct hd_group_waiter *w)
{
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

/* Takes w off the queue (it must be there). */
static void waiter_unlink(struct hd_group_waiter *w)
{
	struct hd_group_waiters *q = w->q;
	struct hd_group_waiter **pp = &q->head;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	if (!q->head) {
		q->tail = &q->head;
	} else if (q->tail == &w->next) {
		struct hd_group_waiter *t = q->head;
		while (t->next)
			t = t->next;
		q->tail = &t->next;
	}
	w->next = NULL;
}

static void push_front(struct hd_group_waiters *q, struct hd_group_waiter *w)
{
	w->next = q->head;
	q->head = w;
	if (!w->next)
		q->tail = &w->next;
}

void hd_group_waiters_answer(struct hd_group_waiter *w, struct hd_buf *body)
{
	hd_http_respond_json(w->req, 200, body);
	w->req = NULL;
	waiter_end(w);
}

void hd_group_waiters_fail(struct hd_group_waiter *w, int code, const char *message)
{
	hd_http_respond_error(w->req, code, message);
	w->req = NULL;
	waiter_end(w);
}

void hd_group_waiters_init(struct hd_group_waiters *q, uv_loop_t *loop,
			   const struct hd_group_waiters_ops *ops, void *owner)
{
	*q = (struct hd_group_waiters){.loop = loop, .ops = ops, .owner = owner};
	q->tail = &q->head;
}

/* How often a waiter whose wait ended looks again whether the group is
 * still busy (serve_before_end). */
#define BUSY_RETRY_MS 5

static bool queued(const struct hd_group_waiters *q, const struct hd_group_waiter *w)
{
	for (const struct hd_group_waiter *x = q->head; x; x = x->next)
		if (x == w)
			return true;
	return false;
}

static void on_wait_end(uv_timer_t *t)
{
	struct hd_group_waiter *w = t->data;
	struct hd_group_waiters *q = w->q;
	if (!w->req || !queued(q, w))
		return; /* being served: its fetch answers */
	if (q->serve_before_end && (q->busy || q->held) && !w->expires) {
		uv_timer_start(&w->timer, on_wait_end, BUSY_RETRY_MS, 0);
		return; /* after the running fetch: served, or answered here */
	}
	waiter_unlink(w);
	if (w->expires)
		hd_group_waiters_fail(w, HD_EEXPIRED, "the token or API key that was presented expired "
					 "while the fetch was held");
	else
		q->ops->answer_empty(q->owner, w);
	hd_group_waiters_try(q);
	q->ops->release(q->owner);
}

/* The timer for what comes first: the wait's end or the credential's expiry. */
static void arm_waiter(struct hd_group_waiter *w)
{
	int64_t now = hd_now_ms();
	int64_t left = w->until_ms - now;
	uint64_t due = left > 0 ? (uint64_t)left : 0;
	int64_t to_expiry = w->cred.expires_ms - now;
	w->expires = w->cred.expires_ms && (to_expiry < 0 || (uint64_t)to_expiry < due);
	if (w->expires)
		due = to_expiry > 0 ? (uint64_t)to_expiry : 0;
	uv_timer_start(&w->timer, on_wait_end, due, 0);
}

void hd_group_waiters_add(struct hd_group_waiters *q, struct hd_http_request *req, uint32_t max,
			  uint64_t wait_ms, const struct hd_group_cred *cred)
{
	struct hd_group_waiter *w = hd_calloc(1, sizeof(*w));
	w->req = req;
	w->q = q;
	w->max = max;
	w->until_ms = hd_now_ms() + (int64_t)wait_ms;
	if (cred)
		w->cred = *cred;
	uv_timer_init(q->loop, &w->timer);
	w->timer.data = w;
	arm_waiter(w);
	*q->tail = w;
	q->tail = &w->next;
	hd_group_waiters_wake(q);
}

static void serve(struct hd_group_waiters *q)
{
	q->held = false;
	while (!q->busy && !q->starved && q->head) {
		struct hd_group_waiter *w = q->head;
		waiter_unlink(w);
		enum hd_group_serve r = q->ops->serve(q->owner, w);
		if (r == HD_GROUP_SERVED)
			continue;
		push_front(q, w);
		q->held = r == HD_GROUP_HELD;
		if (r == HD_GROUP_STARVED)
			q->starved = true; /* nothing to hand out: everyone waits */
		break;
	}
}

void hd_group_waiters_try(struct hd_group_waiters *q)
{
	/* A read answered from memory completes inside the owner's serve, and
	 * its completion calls here again: loop instead of recursing. */
	if (q->trying) {
		q->try_again = true;
		return;
	}
	q->trying = true;
	do {
		q->try_again = false;
		serve(q);
	} while (q->try_again);
	q->trying = false;
	q->ops->arm(q->owner);
}

void hd_group_waiters_wake(struct hd_group_waiters *q)
{
	q->starved = false;
	hd_group_waiters_try(q);
}

void hd_group_waiters_starve(struct hd_group_waiters *q, struct hd_group_waiter *w)
{
	q->starved = true;
	push_front(q, w);
}

static void on_due(uv_timer_t *t)
{
	hd_group_waiters_wake(t->data);
}

static bool due_open(struct hd_group_waiters *q)
{
	if (!q->due_open && !q->closed) {
		uv_timer_init(q->loop, &q->due);
		q->due.data = q;
		q->due_open = true;
	}
	return q->due_open;
}

void hd_group_waiters_wake_soon(struct hd_group_waiters *q)
{
	if (due_open(q))
		uv_timer_start(&q->due, on_due, 0, 0);
}

void hd_group_waiters_due_at(struct hd_group_waiters *q, int64_t due)
{
	if (due == INT64_MAX || !due_open(q))
		return;
	hd_due_arm(&q->due, on_due, due);
}

void hd_group_waiters_stop(struct hd_group_waiters *q)
{
	while (q->head) {
		struct hd_group_waiter *w = q->head;
		waiter_unlink(w);
		q->ops->answer_empty(q->owner, w);
	}
	hd_group_waiters_close(q, NULL);
}

bool hd_group_waiters_close(struct hd_group_waiters *q, uv_close_cb cb)
{
	bool open = q->due_open;
	q->closed = true;
	q->due_open = false;
	if (open)
		uv_close((uv_handle_t *)&q->due, cb);
	return open;
}

void hd_group_waiters_recheck(struct hd_group_waiters *q, const struct hd_group_recheck *rc,
			      const char *topic)
{
	int64_t now = hd_now_ms();
	size_t ended = 0;
	struct hd_group_waiter *next;

	for (struct hd_group_waiter *w = q->head; w; w = next) {
		next = w->next;
		if (!w->cred.key)
			continue;
		if (rc->check(rc->arg, &w->cred, topic, now) == 0) {
			arm_waiter(w); /* the key's expiry may have moved */
			continue;
		}
		waiter_unlink(w);
		hd_group_waiters_fail(w, HD_EUNAUTH, "the API key that was presented was revoked "
				     "while the fetch was held");
		ended++;
	}
	if (ended)
		hd_group_waiters_try(q);
}
