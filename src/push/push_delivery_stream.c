/*
 * push_delivery_stream — one topic's reading for a push subscription: the
 * hub read after its position, the batch it hands out one event at a
 * time, the hub watch that wakes it (exact topics), the position's moves.
 * See push_delivery_impl.h.
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/rcbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stream_timer_closed(uv_handle_t *h)
{
	struct hd_push_delivery_stream *st = h->data;
	free(st);
}

void hd_push_delivery_stream_free_batch(struct hd_push_delivery_stream *st)
{
	for (size_t i = st->ibatch; i < st->nbatch; i++)
		hd_rcbuf_unref(st->batch[i].json);
	free(st->batch);
	st->batch = NULL;
	st->nbatch = st->ibatch = 0;
}

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct hd_push_delivery_stream *st = w->arg;
	(void)topic;
	if (st->latest && ev && (!st->seen_min || ev->offset < st->seen_min))
		st->seen_min = ev->offset; /* committed after the start: delivered */
	hd_push_delivery_stream_pump(st);
}

void hd_push_delivery_stream_fire(uv_timer_t *t)
{
	hd_push_delivery_stream_pump(t->data);
}

struct hd_push_delivery_stream *hd_push_delivery_stream_new(struct hd_push_delivery_sub *s, const char *topic, uint64_t pos, bool latest)
{
	struct hd_push_delivery_stream *st = hd_calloc(1, sizeof(*st));
	st->s = s;
	snprintf(st->topic, sizeof(st->topic), "%s", topic);
	st->pos = pos;
	st->latest = latest;
	uv_timer_init(s->d->loop, &st->timer);
	st->timer.data = st;
	st->watch.fire = on_watch;
	st->watch.arg = st;
	return st;
}


/* Closes a dead stream's timer (then frees it) once no read or dead letter
 * points at it. */
void hd_push_delivery_stream_maybe_close(struct hd_push_delivery_stream *st)
{
	if (!st->dead || st->reading || st->dl || st->closing)
		return;
	st->closing = true;
	uv_close((uv_handle_t *)&st->timer, stream_timer_closed);
}

/* Ends the stream's work; frees it once its reads and sends are gone. */
void hd_push_delivery_stream_kill(struct hd_push_delivery_stream *st)
{
	st->dead = true;
	if (st->watching)
		hd_hub_unwatch(st->s->d->hub, &st->watch);
	st->watching = false;
	hd_push_delivery_stream_free_batch(st);
	if (st->e)
		hd_push_delivery_send_free_event(st->e);
	st->e = NULL;
	hd_push_delivery_stream_maybe_close(st);
}

bool hd_push_delivery_stream_may_run(const struct hd_push_delivery_stream *st)
{
	const struct hd_push_delivery_sub *s = st->s;
	return !st->dead && !s->deleted && !s->d->stopping && s->state == HD_PUSH_DELIVERY_ACTIVE &&
	       s->d->loaded;
}

static void read_done(struct hd_read *r)
{
	struct hd_push_delivery_stream *st = r->arg;
	st->reading = false;
	if (st->dead) {
		hd_engine_read_fini(r);
		hd_push_delivery_stream_maybe_close(st);
		return;
	}
	if (r->err) {
		hd_engine_read_fini(r);
		uv_timer_start(&st->timer, hd_push_delivery_stream_fire, HD_PUSH_DELIVERY_ERROR_WAIT_MS, 0);
		return;
	}
	if (st->latest) {
		st->latest = false;
		if (r->last > st->pos)
			st->pos = r->last;
		if (st->seen_min && st->seen_min - 1 < st->pos)
			st->pos = st->seen_min - 1;
		hd_engine_read_fini(r);
		hd_push_delivery_record_changed(st->s);
		hd_push_delivery_stream_pump(st);
		return;
	}
	if (r->n) {
		st->batch = hd_calloc(r->n, sizeof(*st->batch));
		for (size_t i = 0; i < r->n; i++) {
			st->batch[i] = r->events[i];
			st->batch[i].json = hd_rcbuf_ref(r->events[i].json);
		}
		st->nbatch = r->n;
		st->ibatch = 0;
	} else if (r->next > st->pos + 1 && r->truncated) {
		st->pos = r->next - 1; /* retention removed events: move past them */
		hd_push_delivery_record_changed(st->s);
	}
	hd_engine_read_fini(r);
	bool again = st->again;
	st->again = false;
	if (again || st->nbatch)
		hd_push_delivery_stream_pump(st);
}

/* Starts what the stream may do now: the next event, or a read. */
void hd_push_delivery_stream_pump(struct hd_push_delivery_stream *st)
{
	if (!hd_push_delivery_stream_may_run(st))
		return;
	if (!hd_push_devices(st->s->d->push) || !hd_devices_loaded(hd_push_devices(st->s->d->push))) {
		if (!uv_is_active((uv_handle_t *)&st->timer))
			uv_timer_start(&st->timer, hd_push_delivery_stream_fire, HD_PUSH_DELIVERY_WAIT_MS, 0);
		return;
	}
	if (!st->watching && !st->s->pattern) {
		if (hd_hub_watch(st->s->d->hub, st->topic, &st->watch) == 0)
			st->watching = true;
	}
	if (st->e || st->dl)
		return;
	if (st->ibatch < st->nbatch) {
		hd_push_delivery_send_next(st);
		return;
	}
	hd_push_delivery_stream_free_batch(st);
	if (st->reading) {
		st->again = true;
		return;
	}
	/* latest: one event only, to learn the topic's last offset. */
	st->rd = (struct hd_read){.topic = st->topic, .after = st->latest ? 0 : st->pos,
				  .limit = st->latest ? 1 : HD_PUSH_DELIVERY_READ_LIMIT,
				  .done = read_done, .arg = st};
	st->reading = true;
	if (hd_hub_read(st->s->d->hub, &st->rd)) {
		st->reading = false;
		uv_timer_start(&st->timer, hd_push_delivery_stream_fire, HD_PUSH_DELIVERY_ERROR_WAIT_MS, 0);
	}
}

