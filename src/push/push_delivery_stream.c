/*
 * push_delivery_stream — one topic's reading for a push subscription: the
 * hub read after its position, the batch it hands out one event at a
 * time, the hub watch that wakes it (exact topics), the position's moves.
 * See push_delivery_impl.h.
 */
#include "push/push_delivery_impl.h"

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rcbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stream_timer_closed(uv_handle_t *h)
{
	struct hd_push_delivery_stream *st = h->data;
	hd_lease_fini(&st->lease);
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
	hd_lease_init(&st->lease, pos, HD_PUSH_DELIVERY_WINDOW);
	st->latest = latest;
	uv_timer_init(s->d->loop, &st->timer);
	st->timer.data = st;
	st->watch.fire = on_watch;
	st->watch.arg = st;
	return st;
}


static void seek_end(struct hd_push_delivery_stream *st, int err, uint64_t found)
{
	st->seeking = false;
	if (st->dead) {
		hd_push_delivery_stream_maybe_close(st);
		return;
	}
	if (err) {
		hd_log_warn("push_start_seek_failed sub=%s topic=%s err=%d", st->s->id, st->topic,
			    err);
	} else if (found > 1) {
		hd_push_delivery_stream_reset(st, found - 1);
		hd_push_delivery_record_changed(st->s);
	}
	hd_push_delivery_stream_pump(st);
}

static void seek_done(struct hd_seek *sk, int err)
{
	struct hd_push_delivery_stream *st = sk->arg;
	seek_end(st, sk->cancelled ? HD_EUNAVAIL : err, sk->found);
}

static void seek_info_done(struct hd_topic_op *op)
{
	struct hd_push_delivery_stream *st = op->arg;
	uint64_t first, last;
	int err = hd_seek_range(op, &first, &last);
	hd_engine_topic_op_fini(op);
	if (err || st->dead || st->s->d->stopping) {
		seek_end(st, err ? err : HD_EUNAVAIL, 0);
		return;
	}
	hd_seek_start(&st->sk, first, last);
}

void hd_push_delivery_stream_seek(struct hd_push_delivery_stream *st, int64_t time_ms)
{
	st->seeking = true;
	st->sk = (struct hd_seek){.hub = st->s->d->hub, .topic = st->topic, .time_ms = time_ms,
				  .cancel = &st->s->d->stopping, .done = seek_done, .arg = st};
	st->info = (struct hd_topic_op){.kind = HD_TOPIC_INFO, .topic = st->topic,
					.done = seek_info_done, .arg = st};
	int rc = hd_hub_topic_op(st->s->d->hub, &st->info);
	if (rc)
		seek_end(st, rc, 0);
}

/* Closes a dead stream's timer (then frees it) once no read or dead letter
 * points at it. */
void hd_push_delivery_stream_maybe_close(struct hd_push_delivery_stream *st)
{
	if (!st->dead || st->reading || st->seeking || st->ndl || st->closing)
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
	hd_push_delivery_send_drop_all(st);
	hd_push_delivery_stream_maybe_close(st);
}

void hd_push_delivery_stream_reset(struct hd_push_delivery_stream *st, uint64_t pos)
{
	hd_push_delivery_send_drop_all(st);
	hd_push_delivery_stream_free_batch(st);
	st->gen++;
	st->latest = false;
	hd_lease_fini(&st->lease);
	hd_lease_init(&st->lease, pos, HD_PUSH_DELIVERY_WINDOW);
}

bool hd_push_delivery_stream_may_run(const struct hd_push_delivery_stream *st)
{
	const struct hd_push_delivery_sub *s = st->s;
	return !st->dead && !st->seeking && !s->deleted && !s->d->stopping && s->state == HD_PUSH_DELIVERY_ACTIVE &&
	       s->d->loaded && hd_push_own_held(s);
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
	if (r->err || st->read_gen != st->gen) {
		bool stale = !r->err;
		hd_engine_read_fini(r);
		if (stale) {
			hd_push_delivery_stream_pump(st);
			return;
		}
		uv_timer_start(&st->timer, hd_push_delivery_stream_fire, HD_PUSH_DELIVERY_ERROR_WAIT_MS, 0);
		return;
	}
	if (st->latest) {
		uint64_t pos = r->last;
		if (st->seen_min && st->seen_min - 1 < pos)
			pos = st->seen_min - 1;
		hd_engine_read_fini(r);
		hd_push_delivery_stream_reset(st, pos);
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
	} else if (r->truncated && r->next > st->lease.next &&
		   hd_lease_skip(&st->lease, r->next - 1) == 0) {
		hd_push_delivery_record_changed(st->s); /* retention removed events: past them */
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
	if (st->pumping) { /* an event ended from inside the loop below */
		st->pump_again = true;
		return;
	}
	st->pumping = true;
	do {
		st->pump_again = false;
		while (st->ibatch < st->nbatch && hd_push_delivery_stream_may_run(st) &&
		       hd_push_delivery_send_next(st) == 0)
			;
	} while (st->pump_again);
	st->pumping = false;
	if (st->ibatch < st->nbatch || !hd_push_delivery_stream_may_run(st))
		return; /* the window is full: an event's end pumps again */
	hd_push_delivery_stream_free_batch(st);
	if (st->reading) {
		st->again = true;
		return;
	}
	/* latest: one event only, to learn the topic's last offset. */
	st->read_gen = st->gen;
	st->rd = (struct hd_read){.topic = st->topic, .after = st->latest ? 0 : st->lease.next - 1,
				  .limit = st->latest ? 1 : HD_PUSH_DELIVERY_READ_LIMIT,
				  .done = read_done, .arg = st};
	st->reading = true;
	if (hd_hub_read(st->s->d->hub, &st->rd)) {
		st->reading = false;
		uv_timer_start(&st->timer, hd_push_delivery_stream_fire, HD_PUSH_DELIVERY_ERROR_WAIT_MS, 0);
	}
}

