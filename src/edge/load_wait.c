/* load_wait — see load_wait.h. */
#include "edge/load_wait.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"

#include <stdlib.h>

/* One waiting request and when its wait ends. */
struct item {
	struct hd_http_request *req;
	int64_t deadline_ms;
	struct item *next;
};

struct hd_load_wait {
	uv_timer_t timer;               /* fires at the head's deadline */
	const struct hd_route_table *t; /* borrowed */
	const char *what;               /* static */
	struct item *head, **tail;      /* arrival order, so deadlines ascend */
	size_t n, max;
	uint32_t wait_ms;
	long long warn_ms;              /* hd_log_ratelimited stamp */
};

static void on_timer(uv_timer_t *h);

/* A positive integer from the test hook name, or def. */
static long long test_hook(const char *name, long long def)
{
	const char *s = getenv(name);
	char *end;
	long long v = s ? strtoll(s, &end, 10) : 0;
	return s && *s && !*end && v > 0 ? v : def;
}

struct hd_load_wait *hd_load_wait_new(uv_loop_t *loop, const struct hd_route_table *t,
				      const char *what)
{
	struct hd_load_wait *w = hd_calloc(1, sizeof(*w));
	w->t = t;
	w->what = what;
	w->tail = &w->head;
	w->max = (size_t)test_hook("HERALD_TEST_LOAD_WAIT_MAX", HD_LOAD_WAIT_MAX);
	w->wait_ms = (uint32_t)test_hook("HERALD_TEST_LOAD_WAIT_MS", HD_LOAD_WAIT_MS);
	uv_timer_init(loop, &w->timer);
	w->timer.data = w;
	return w;
}

static void refuse(struct hd_load_wait *w, struct hd_http_request *req, const char *why)
{
	hd_metrics_inc(HD_M_load_wait_refused_total);
	if (hd_log_ratelimited(&w->warn_ms))
		hd_log_warn("load_wait_refused what=\"%s\" why=%s waiting=%zu", w->what, why, w->n);
	hd_http_respond_errorf(req, HD_EUNAVAIL, "%s is still loading; retry shortly", w->what);
}

/* Arms the timer for the head's deadline (none waiting: stopped). */
static void arm(struct hd_load_wait *w)
{
	if (!w->head) {
		uv_timer_stop(&w->timer);
		return;
	}
	int64_t left = w->head->deadline_ms - hd_now_ms();
	uv_timer_start(&w->timer, on_timer, left > 0 ? (uint64_t)left : 0, 0);
}

/* Takes the whole queue out of w (so handlers run on a list of their own). */
static struct item *take_all(struct hd_load_wait *w)
{
	struct item *all = w->head;
	hd_metrics_gauge_add(HD_M_load_waiting, -(int64_t)w->n);
	w->head = NULL;
	w->tail = &w->head;
	w->n = 0;
	return all;
}

static void on_timer(uv_timer_t *h)
{
	struct hd_load_wait *w = h->data;
	int64_t now = hd_now_ms();

	while (w->head && w->head->deadline_ms <= now) {
		struct item *it = w->head;
		w->head = it->next;
		if (!w->head)
			w->tail = &w->head;
		w->n--;
		hd_metrics_gauge_add(HD_M_load_waiting, -1);
		refuse(w, it->req, "deadline");
		free(it);
	}
	arm(w);
}

void hd_load_wait_hold(struct hd_load_wait *w, struct hd_http_request *req)
{
	if (w->n >= w->max) {
		refuse(w, req, "limit");
		return;
	}
	struct item *it = hd_calloc(1, sizeof(*it));
	it->req = req;
	it->deadline_ms = hd_now_ms() + w->wait_ms;
	*w->tail = it;
	w->tail = &it->next;
	hd_metrics_gauge_add(HD_M_load_waiting, 1);
	if (w->n++ == 0)
		arm(w);
}

void hd_load_wait_loaded(struct hd_load_wait *w)
{
	struct item *it = take_all(w);
	uv_timer_stop(&w->timer);
	while (it) {
		struct item *next = it->next;
		hd_route_dispatch(w->t, it->req);
		free(it);
		it = next;
	}
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void hd_load_wait_close(struct hd_load_wait *w)
{
	if (!w)
		return;
	struct item *it = take_all(w);
	while (it) {
		struct item *next = it->next;
		hd_http_respond_error(it->req, HD_EUNAVAIL, "herald is stopping");
		free(it);
		it = next;
	}
	uv_close((uv_handle_t *)&w->timer, on_closed);
}
