/* longpoll — see longpoll.h. */
#include "edge/longpoll.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "edge/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct waiter {
	struct hd_watch watch;
	uv_timer_t timer;
	struct hd_longpoll *lp;
	struct hd_http_request *req;   /* NULL once answered */
	bool woken;                    /* an event came: the re-read is due or under way */
	bool rereading;                /* woken: its re-read is under way */
	bool expires;                  /* the timer is the token's expiry, before the wait's end */
	uint64_t deadline;             /* the wait's end, loop time (ms) */
	struct hd_access_cred cred;
	struct hd_read r;
	struct waiter *prev, *next;    /* in lp->waiters */
	char topic[HD_TOPIC_NAME_MAX + 1];
};

struct hd_longpoll {
	uv_loop_t *loop;
	struct hd_hub *hub;
	hd_longpoll_respond_fn respond;
	struct waiter *waiters;
	size_t count;
};

struct hd_longpoll *hd_longpoll_new(uv_loop_t *loop, struct hd_hub *hub, hd_longpoll_respond_fn respond)
{
	struct hd_longpoll *lp = hd_calloc(1, sizeof(*lp));
	lp->loop = loop;
	lp->hub = hub;
	lp->respond = respond;
	return lp;
}

size_t hd_longpoll_waiting(const struct hd_longpoll *lp)
{
	return lp->count;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Takes w out of the set and the hub, and closes its timer (which frees it). */
static void waiter_end(struct waiter *w)
{
	struct hd_longpoll *lp = w->lp;
	hd_hub_unwatch(lp->hub, &w->watch);
	if (w->prev)
		w->prev->next = w->next;
	else
		lp->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	lp->count--;
	hd_metrics_gauge_add(HD_M_longpoll_waiting, -1);
	uv_close((uv_handle_t *)&w->timer, on_closed);
}

/* The answer to a woken waiter: whatever its re-read found. */
static void reread_done(struct hd_read *r)
{
	struct waiter *w = r->arg;
	struct hd_http_request *req = w->req;
	w->req = NULL;
	w->lp->respond(req, r);
	hd_engine_read_fini(r);
	waiter_end(w);
}

static void answer_now(struct waiter *w)
{
	w->rereading = true;
	w->r.done = reread_done;
	w->r.arg = w;
	if (hd_hub_read(w->lp->hub, &w->r) != 0) {
		struct hd_http_request *req = w->req;
		w->req = NULL;
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		waiter_end(w);
	}
}

static void on_wake(uv_timer_t *t)
{
	answer_now(t->data);
}

static void on_timeout(uv_timer_t *t)
{
	struct waiter *w = t->data;
	struct hd_http_request *req = w->req;
	w->req = NULL;
	if (w->expires) {
		struct hd_error err = {0};
		hd_error_set(&err, HD_EEXPIRED, "the token or API key that was presented expired while the request was held");
		hd_access_deny(req, &err);
	} else {
		w->lp->respond(req, &w->r); /* the empty page the first read found */
	}
	waiter_end(w);
}

static void on_watch(struct hd_watch *watch, const char *topic, const struct hd_stored_event *ev)
{
	struct waiter *w = watch->arg;
	if (ev->offset <= w->r.after)
		return;
	/* Re-read on the next loop turn, when the whole committed batch is in
	 * the ring, so the answer carries every event of it up to the limit. */
	hd_hub_unwatch(w->lp->hub, &w->watch);
	w->woken = true;
	uv_timer_start(&w->timer, on_wake, 0, 0);
}

/* The timer for what comes first: the wait's end or the credential's expiry. */
static void arm(struct waiter *w)
{
	uint64_t now = uv_now(w->lp->loop);
	uint64_t due = hd_access_cred_clip(&w->cred, w->deadline > now ? w->deadline - now : 0,
					   &w->expires);
	uv_timer_start(&w->timer, on_timeout, due, 0);
}

int hd_longpoll_wait(struct hd_longpoll *lp, struct hd_http_request *req, const char *topic,
		     uint64_t after, uint32_t limit, uint32_t wait_ms,
		     const struct hd_access_cred *cred, const struct hd_read *empty)
{
	struct waiter *w = hd_calloc(1, sizeof(*w));
	snprintf(w->topic, sizeof(w->topic), "%s", topic);
	w->lp = lp;
	w->req = req;
	w->watch.fire = on_watch;
	w->watch.arg = w;
	w->r.topic = w->topic;
	w->r.after = after;
	w->r.limit = limit;
	w->r.exists = empty->exists;
	w->r.last = empty->last;
	w->r.next = empty->next;
	memcpy(w->r.epoch, empty->epoch, sizeof(w->r.epoch));
	if (hd_hub_watch(lp->hub, w->topic, &w->watch)) {
		free(w);
		return HD_ELIMIT;
	}
	uv_timer_init(lp->loop, &w->timer);
	w->timer.data = w;
	w->cred = *cred;
	w->deadline = uv_now(lp->loop) + wait_ms;
	arm(w);
	w->next = lp->waiters;
	if (lp->waiters)
		lp->waiters->prev = w;
	lp->waiters = w;
	lp->count++;
	hd_metrics_gauge_add(HD_M_longpoll_waiting, 1);
	return 0;
}

void hd_longpoll_release_all(struct hd_longpoll *lp)
{
	/* A waiter whose re-read is in flight answers when the read completes. */
	struct waiter *w = lp->waiters;
	while (w) {
		struct waiter *next = w->next;
		if (!w->rereading) {
			uv_timer_stop(&w->timer);
			w->expires = false; /* stopping: answer with what it has */
			on_timeout(&w->timer);
		}
		w = next;
	}
}

void hd_longpoll_free(struct hd_longpoll *lp)
{
	free(lp);
}

void hd_longpoll_recheck(struct hd_longpoll *lp, const struct hd_access *ac)
{
	int64_t now = hd_now_ms();
	struct waiter *next;

	for (struct waiter *w = lp->waiters; w; w = next) {
		next = w->next;
		/* A re-read under way answers with what the key could read. */
		if (!w->req || w->rereading || !w->cred.key)
			continue;
		if (hd_access_recheck(ac, &w->cred, w->topic, now) == 0) {
			if (!w->woken)
				arm(w); /* the key's expiry may have moved */
			continue;
		}
		struct hd_http_request *req = w->req;
		struct hd_error err = {0};
		w->req = NULL;
		hd_log_info("longpoll_key_revoked remote=%s key=%s", req->remote, w->cred.name);
		hd_error_set(&err, HD_EUNAUTH, "the API key that was presented was revoked while the request was held");
		hd_access_deny(req, &err);
		waiter_end(w);
	}
}
