/*
 * redis_deliver — the Redis engine's live delivery (see redis_impl.h): each
 * node SUBSCRIBEs to every shard's channel and hands events to on_event in
 * offset order per topic; a gap (or a PUB/SUB reconnect, or an epoch change)
 * makes it read the missing range first. Also the connections' up/down
 * callbacks (a command connection up loads the scripts), and the notices
 * between nodes (a second channel, NOTICE_CHANNEL: join, leave, deletion).
 * A failed read is retried on a timer (RETRY_MIN_MS doubling to
 * RETRY_MAX_MS, one pending per topic).
 * Layer: engine. Called by rconn on the loop thread; started by redis.c.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void deliver_start(struct redis *r, struct dtopic *t, const char *name);
static void retry_arm(struct redis *r, struct dtopic *t, const char *name);

/* A failed gap read is tried again after this long, doubled per failure. */
#define RETRY_MIN_MS 50u
#define RETRY_MAX_MS 2000u

/* ---- live delivery ----------------------------------------------------- */

static void evict_one(struct redis *r)
{
	for (size_t i = 0; i < r->topics.nbuckets; i++) {
		size_t b = (r->evict_cursor + i) & (r->topics.nbuckets - 1);
		struct hd_map_entry *e = r->topics.buckets[b];
		for (; e; e = e->next) {
			struct dtopic *t = e->value;
			if (t->reading || t->retrying)
				continue; /* its read (or retry) finds it again */
			r->evict_cursor = b + 1;
			free(hd_map_del(&r->topics, e->key));
			return;
		}
	}
}

static struct dtopic *dtopic_get(struct redis *r, const char *name, bool create)
{
	struct dtopic *t = hd_map_get(&r->topics, name);
	if (t || !create)
		return t;
	if (r->topics.count >= r->topics.max_entries)
		evict_one(r);
	t = hd_calloc(1, sizeof(*t));
	t->shard = hd_redis_shard_of(r, name)->index;
	if (hd_map_put(&r->topics, name, t)) {
		free(t);
		return NULL;
	}
	return t;
}

static void fire(struct redis *r, const char *topic, const struct hd_stored_event *ev)
{
	if (r->opts.on_event)
		r->opts.on_event(r->opts.on_event_arg, topic, ev);
}

/* The notice text of a deletion (hub.c's). */
static const char NOTICE_DELETED[] = "deleted";

/* t's epoch changed or went while this node's PUB/SUB connection was down:
 * the deletion notice was missed, so the hub hears it now (the unsubscribe
 * pushes, the SSE resets), as from another node. */
static void missed_deletion(struct redis *r, struct dtopic *t, const char *name)
{
	t->epoch[0] = '\0'; /* told once; the next epoch starts over */
	t->delivered = 0;
	hd_log_info("redis: topic deleted while pub/sub was down topic=%s", name);
	if (r->opts.on_notice)
		r->opts.on_notice(r->opts.on_notice_arg, name, NOTICE_DELETED,
				  sizeof(NOTICE_DELETED) - 1);
}

struct cjob {
	struct hd_read rd;
	struct redis *r;
	bool held;                    /* the test-only delay held it once */
	char topic[HD_TOPIC_NAME_MAX + 1];
};

/* ---- timers: retries of failed reads, held answers (test-only) -------- */

/* One armed timer, in r->dtimers until it fires or the engine stops: a
 * failed read's retry (job NULL; one per topic, dtopic.retrying), a
 * read's answer held back by HERALD_TEST_REDIS_READ_DELAY_MS (job set; one
 * per topic, as its read is still out), or a shard's SUBSCRIBEs held back
 * by HERALD_TEST_REDIS_SUB_DELAY_MS (sh set; one per shard). */
struct dtimer {
	uv_timer_t timer;
	struct redis *r;              /* NULL once fired or stopped */
	struct cjob *job;             /* owned until handed to catchup_done */
	struct shard *sh;             /* borrowed: its SUBSCRIBEs are held */
	struct dtimer *prev, *next;
	char topic[HD_TOPIC_NAME_MAX + 1];
};

static void catchup_done(struct hd_read *rd);
static void subscribe_send(struct shard *sh);

static void dtimer_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Takes d out of r's list and closes it (freed by the close callback). */
static void dtimer_unlink(struct dtimer *d)
{
	struct redis *r = d->r;
	if (d->prev)
		d->prev->next = d->next;
	else
		r->dtimers = d->next;
	if (d->next)
		d->next->prev = d->prev;
	d->r = NULL;
	uv_timer_stop(&d->timer);
	uv_close((uv_handle_t *)&d->timer, dtimer_closed);
}

static void dtimer_fired(uv_timer_t *tm)
{
	struct dtimer *d = tm->data;
	struct redis *r = d->r;
	struct cjob *job = d->job;
	struct shard *sh = d->sh;
	char topic[HD_TOPIC_NAME_MAX + 1];
	memcpy(topic, d->topic, sizeof(topic));
	d->job = NULL;
	dtimer_unlink(d);
	if (sh) {
		/* Down meanwhile: its next on_up holds them again. */
		if (hd_rconn_ready(sh->sub))
			subscribe_send(sh);
		return;
	}
	if (job) {
		catchup_done(&job->rd); /* the held answer, now */
		return;
	}
	struct dtopic *t = hd_map_get(&r->topics, topic);
	if (!t)
		return;
	t->retrying = false;
	if (t->want > t->delivered)
		deliver_start(r, t, topic);
}

/* Returns the armed timer (borrowed: r->dtimers owns it). */
static struct dtimer *dtimer_arm(struct redis *r, const char *name, struct cjob *job,
				 unsigned ms)
{
	struct dtimer *d = hd_calloc(1, sizeof(*d));
	d->r = r;
	d->job = job;
	snprintf(d->topic, sizeof(d->topic), "%s", name);
	uv_timer_init(r->loop, &d->timer);
	d->timer.data = d;
	d->next = r->dtimers;
	if (d->next)
		d->next->prev = d;
	r->dtimers = d;
	uv_timer_start(&d->timer, dtimer_fired, ms, 0);
	return d;
}

/* A failed read of t is tried again later, unless a retry is armed or the
 * command connection is down (its coming back catches the shard up). */
static void retry_arm(struct redis *r, struct dtopic *t, const char *name)
{
	if (t->retrying || r->stopped || !hd_rconn_ready(r->shards[t->shard].cmd))
		return;
	t->retry_ms = t->retry_ms ? t->retry_ms * 2 : RETRY_MIN_MS;
	if (t->retry_ms > RETRY_MAX_MS)
		t->retry_ms = RETRY_MAX_MS;
	t->retrying = true;
	hd_log_info("redis: catch-up read failed topic=%s, retry in %u ms", name, t->retry_ms);
	dtimer_arm(r, name, NULL, t->retry_ms);
}

/* Test-only hooks, read once here (no option, no doc: the e2e tests of the
 * catch-up races use them): HERALD_TEST_REDIS_READ_DELAY_MS=N holds every
 * gap or catch-up read's answer N ms (≤ 60000) on a timer before the
 * delivery logic sees it; HERALD_TEST_REDIS_READ_FAIL=N turns the first N
 * such answers into failures (HD_EUNAVAIL); HERALD_TEST_REDIS_SUB_DELAY_MS=N
 * holds a PUB/SUB connection's SUBSCRIBEs N ms (≤ 60000) after it comes
 * up, and so their answers: a catch-up read sent before them would miss
 * what is published meanwhile. Held timers are freed on stop. */
void hd_redis_deliver_init(struct redis *r)
{
	const char *s = getenv("HERALD_TEST_REDIS_READ_DELAY_MS");
	unsigned long v = s ? strtoul(s, NULL, 10) : 0;
	r->test_read_delay_ms = v > 60000 ? 60000 : (unsigned)v;
	s = getenv("HERALD_TEST_REDIS_READ_FAIL");
	v = s ? strtoul(s, NULL, 10) : 0;
	r->test_read_fail = v > 1000 ? 1000 : (unsigned)v;
	s = getenv("HERALD_TEST_REDIS_SUB_DELAY_MS");
	v = s ? strtoul(s, NULL, 10) : 0;
	r->test_sub_delay_ms = v > 60000 ? 60000 : (unsigned)v;
	if (r->test_read_delay_ms || r->test_read_fail || r->test_sub_delay_ms)
		hd_log_warn("redis: test hooks on: read delay %u ms, %u failed reads, "
			    "subscribe delay %u ms",
			    r->test_read_delay_ms, r->test_read_fail, r->test_sub_delay_ms);
}

void hd_redis_deliver_stop(struct redis *r)
{
	while (r->dtimers) {
		struct dtimer *d = r->dtimers;
		if (d->job) {
			hd_engine_read_fini(&d->job->rd);
			free(d->job);
			d->job = NULL;
		}
		dtimer_unlink(d);
	}
}

/* ---- catch-up reads ----------------------------------------------------- */

static void catchup_done(struct hd_read *rd)
{
	struct cjob *job = rd->arg;
	struct redis *r = job->r;
	if (!r->stopped && r->test_read_delay_ms && !job->held) {
		job->held = true;
		dtimer_arm(r, job->topic, job, r->test_read_delay_ms);
		return;
	}
	if (!r->stopped && r->test_read_fail && !rd->err) {
		r->test_read_fail--;
		hd_engine_read_fini(rd);
		rd->err = HD_EUNAVAIL;
	}
	struct dtopic *t = r->stopped ? NULL : hd_map_get(&r->topics, job->topic);

	if (!t)
		goto out;
	t->reading = false;
	/* A read sent before PUB/SUB came back may have missed what was
	 * published before the subscription took: it only delivers, the read
	 * after it decides. */
	bool again = t->again;
	if (rd->err) {
		if (again)
			deliver_start(r, t, job->topic);
		else
			retry_arm(r, t, job->topic); /* or the next message, or reconnect */
		goto out;
	}
	t->retry_ms = 0;
	if (t->recheck && !again) {
		t->recheck = false;
		if (t->epoch[0] && (!rd->exists || strcmp(rd->epoch, t->epoch) != 0)) {
			missed_deletion(r, t, job->topic);
			t = hd_map_get(&r->topics, job->topic);
			if (!t)
				goto out;
		}
	}
	if (!rd->exists) {
		if (again)
			deliver_start(r, t, job->topic);
		goto out; /* the next message (or reconnect) tries again */
	}
	if (strcmp(rd->epoch, t->epoch) != 0) {
		/* A new incarnation of the topic: start it over. */
		memcpy(t->epoch, rd->epoch, sizeof(t->epoch));
		t->delivered = 0;
		if (t->want > rd->last)
			t->want = rd->last;
	}
	for (size_t i = 0; i < rd->n; i++) {
		if (rd->events[i].offset <= t->delivered)
			continue;
		t->delivered = rd->events[i].offset;
		fire(r, job->topic, &rd->events[i]);
		t = hd_map_get(&r->topics, job->topic); /* a hook may not remove it, but be sure */
		if (!t)
			goto out;
	}
	/* Offsets that retention, TTL or no-history left out are passed. */
	uint64_t seen = rd->next < rd->last ? rd->next : rd->last;
	if (rd->n < rd->limit && seen < rd->last)
		seen = rd->last;
	if (t->delivered < seen)
		t->delivered = seen;
	/* Nothing more is visible yet, unless a message came (or PUB/SUB came
	 * back) while the read was out: Redis may have run the read before that
	 * publish (the PUB/SUB message and the read's reply come on two
	 * connections, in either order), so its offsets are read again, not
	 * dropped until the next message. A failover may have lost them: that
	 * read lowers want. */
	if (t->want > rd->last && rd->n < rd->limit && !again)
		t->want = rd->last;
	if (t->want > t->delivered)
		deliver_start(r, t, job->topic);
out:
	hd_engine_read_fini(rd);
	free(job);
}

/* Reads what t misses (after delivered, up to want), unless a read is out. */
static void deliver_start(struct redis *r, struct dtopic *t, const char *name)
{
	if (t->reading || r->stopped)
		return;
	struct cjob *job = hd_calloc(1, sizeof(*job));
	job->r = r;
	snprintf(job->topic, sizeof(job->topic), "%s", name);
	job->rd.topic = job->topic;
	job->rd.after = t->delivered;
	job->rd.limit = CATCHUP_LIMIT;
	job->rd.done = catchup_done;
	job->rd.arg = job;
	t->reading = true;
	t->again = false;
	if (hd_redis_read(&r->base, &job->rd)) {
		t->reading = false;
		free(job);
		retry_arm(r, t, name); /* a full queue */
	}
}

/* ---- the PUB/SUB message (redis.h) ------------------------------------ */

/* The text up to the next '\n' of m (at most cap bytes, no NUL), the '\n' taken. */
static int msg_line(struct hd_redis_msg *m, const char **s, size_t *n, size_t cap)
{
	const char *nl = memchr(m->at, '\n', (size_t)(m->end - m->at));
	if (!nl || (size_t)(nl - m->at) > cap || memchr(m->at, '\0', (size_t)(nl - m->at)))
		return -1;
	*s = m->at;
	*n = (size_t)(nl - m->at);
	m->at = nl + 1;
	return 0;
}

/* 1 to 19 decimal digits at *s, then the byte stop (both taken). */
static int msg_u64(const char **s, const char *end, char stop, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	while (p < end && *p >= '0' && *p <= '9' && p - *s < 19)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == *s || p >= end || *p != stop)
		return -1;
	*v = x;
	*s = p + 1;
	return 0;
}

int hd_redis_deliver_msg_open(struct hd_redis_msg *m, const char *p, size_t n)
{
	const char *s;
	size_t len;
	uint64_t count;
	m->at = p;
	m->end = p + n;
	if (msg_u64(&m->at, m->end, '\n', &m->prev))
		return -1;
	if (msg_line(m, &s, &len, HD_EPOCH_LEN))
		return -1;
	memcpy(m->epoch, s, len);
	m->epoch[len] = '\0';
	if (msg_u64(&m->at, m->end, '\n', &m->last))
		return -1;
	if (msg_line(m, &s, &len, HD_TOPIC_NAME_MAX) || len == 0)
		return -1;
	memcpy(m->topic, s, len);
	m->topic[len] = '\0';
	if (msg_u64(&m->at, m->end, '\n', &count))
		return -1;
	m->left = (size_t)count;
	return 0;
}

int hd_redis_deliver_msg_next(struct hd_redis_msg *m, struct hd_redis_msg_event *ev)
{
	uint64_t t, x, len;
	if (m->left == 0)
		return 0;
	if (msg_u64(&m->at, m->end, ' ', &ev->offset) || msg_u64(&m->at, m->end, ' ', &t) ||
	    msg_u64(&m->at, m->end, ' ', &x) || msg_u64(&m->at, m->end, '\n', &len) ||
	    t > INT64_MAX || x > INT64_MAX || len > (uint64_t)(m->end - m->at)) {
		m->left = 0;
		return -1;
	}
	ev->time_ms = (int64_t)t;
	ev->expires_ms = (int64_t)x;
	ev->json = m->at;
	ev->len = (size_t)len;
	m->at += len;
	m->left--;
	return 1;
}

int hd_redis_deliver_msg_head(struct hd_buf *b, const char *epoch, uint64_t last,
			      const char *topic, size_t n)
{
	return hd_buf_printf(b, "%s\n%llu\n%s\n%zu\n", epoch, (unsigned long long)last, topic, n);
}

int hd_redis_deliver_msg_add(struct hd_buf *b, uint64_t offset, int64_t time_ms,
			     int64_t expires_ms, const char *json, size_t len)
{
	int rc = hd_buf_printf(b, "%llu %lld %lld %zu\n", (unsigned long long)offset,
			       (long long)(time_ms > 0 ? time_ms : 0),
			       (long long)(expires_ms > 0 ? expires_ms : 0), len);
	return rc ? rc : hd_buf_append(b, json, len);
}

/* One PUB/SUB message: its events in offset order go out at once; a gap
 * before one, or offsets up to LAST that it does not carry, are read
 * first (deliver_start), and the read delivers the rest. */
static void on_message(struct redis *r, const char *p, size_t n)
{
	struct hd_redis_msg m;
	struct hd_redis_msg_event ev;
	if (hd_redis_deliver_msg_open(&m, p, n))
		return;
	struct dtopic *t = dtopic_get(r, m.topic, false);
	if (!t) {
		t = dtopic_get(r, m.topic, true);
		if (!t)
			return;
		memcpy(t->epoch, m.epoch, sizeof(t->epoch));
		/* Only what was visible before this confirm is behind us: confirms
		 * from other nodes may still bring offsets below LAST (PREV+1..LAST
		 * became visible together), so those are read, not skipped. */
		t->delivered = m.prev;
		t->want = m.last > m.prev ? m.last : m.prev;
	}
	if (strcmp(t->epoch, m.epoch) != 0) {
		if (t->recheck && !t->reading && t->epoch[0]) {
			t->recheck = false;
			missed_deletion(r, t, m.topic);
			t = hd_map_get(&r->topics, m.topic);
			if (!t)
				return;
		}
		if (t->reading) {
			if (m.last > t->want)
				t->want = m.last; /* the read sees the new epoch */
			t->again = true;
			return;
		}
		memcpy(t->epoch, m.epoch, sizeof(t->epoch));
		t->delivered = 0;
		t->want = 0;
	}
	while (!t->reading && hd_redis_deliver_msg_next(&m, &ev) == 1) {
		if (ev.offset <= t->delivered)
			continue;
		if (ev.offset != t->delivered + 1)
			break; /* a gap: the read delivers it and what follows */
		struct hd_stored_event se = {
			.offset = ev.offset,
			.time_ms = ev.time_ms,
			.expires_ms = ev.expires_ms,
			.json = hd_redis_stored_json(m.topic, ev.offset, ev.json, ev.len),
		};
		t->delivered = ev.offset;
		if (t->want < ev.offset)
			t->want = ev.offset;
		fire(r, m.topic, &se);
		hd_rcbuf_unref(se.json);
		t = hd_map_get(&r->topics, m.topic); /* a hook may not remove it, but be sure */
		if (!t)
			return;
	}
	if (m.last > t->want)
		t->want = m.last;
	if (t->reading && m.last > t->delivered)
		t->again = true;
	if (t->want > t->delivered)
		deliver_start(r, t, m.topic);
}

/* ---- notices between nodes (the notice op) ------------------------------ */

/* One NOTICE_CHANNEL payload, "NODE\nTOPIC\nMSG": another node's goes to
 * on_notice, this node's own is dropped (it acted on it already). */
static void on_notice(struct redis *r, const char *p, size_t n)
{
	const char *end = p + n;
	const char *nl1 = memchr(p, '\n', n);
	const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
	if (!nl2 || !r->opts.on_notice || r->stopped)
		return;
	size_t nodelen = (size_t)(nl1 - p), tlen = (size_t)(nl2 - nl1 - 1);
	if ((nodelen == strlen(r->node) && !memcmp(p, r->node, nodelen)) || tlen == 0 ||
	    tlen > HD_TOPIC_NAME_MAX)
		return;
	char topic[HD_TOPIC_NAME_MAX + 1];
	memcpy(topic, nl1 + 1, tlen);
	topic[tlen] = '\0';
	size_t mlen = (size_t)(end - nl2 - 1);
	char *msg = hd_strndup(nl2 + 1, mlen);
	struct dtopic *t = hd_map_get(&r->topics, topic);
	if (t && mlen == sizeof(NOTICE_DELETED) - 1 && !memcmp(msg, NOTICE_DELETED, mlen)) {
		t->epoch[0] = '\0'; /* heard: a reconnect's check does not tell it again */
		t->recheck = false;
	}
	r->opts.on_notice(r->opts.on_notice_arg, topic, msg, mlen);
	free(msg);
}

static void notice_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	if (rep)
		(void)hd_redis_reply_err(rep); /* logs an error reply */
}

void hd_redis_deliver_notice(struct hd_engine *e, const char *topic, const char *msg, size_t len)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return;
	struct shard *sh = hd_redis_shard_of(r, topic);
	size_t nlen = strlen(r->node), tlen = strlen(topic);
	char *payload = hd_malloc(nlen + tlen + len + 2);
	memcpy(payload, r->node, nlen);
	payload[nlen] = '\n';
	memcpy(payload + nlen + 1, topic, tlen);
	payload[nlen + 1 + tlen] = '\n';
	memcpy(payload + nlen + tlen + 2, msg, len);
	const char *argv[] = {"PUBLISH", NOTICE_CHANNEL, payload};
	size_t lens[] = {7, sizeof(NOTICE_CHANNEL) - 1, nlen + tlen + len + 2};
	/* Down or full: dropped (soft state, engine.h). */
	(void)hd_rconn_command(sh->cmd, notice_reply, sh, 3, argv, lens);
	free(payload);
}

static void sub_reply(struct hd_rconn *c, redisReply *rep, void *priv);
static void catch_up_shard(struct redis *r, unsigned shard);

/* A SUBSCRIBE of its own (rconn keeps one record per SUBSCRIBE command,
 * freed once per channel when the connection goes). */
static void subscribe_notices(struct hd_rconn *c, struct shard *sh)
{
	const char *argv[] = {"SUBSCRIBE", NOTICE_CHANNEL};
	size_t lens[] = {9, sizeof(NOTICE_CHANNEL) - 1};
	hd_rconn_command(c, sub_reply, sh, 2, argv, lens);
}

static void sub_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct shard *sh = priv;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(rep->element[0]->str, "subscribe")) {
		/* The notices' channel is subscribed last: once its answer is
		 * here, both channels are, and only now can a read be sure that
		 * whatever it does not see will arrive as a message. */
		const redisReply *ch = rep->element[1];
		if (ch->type == REDIS_REPLY_STRING && ch->len == sizeof(NOTICE_CHANNEL) - 1 &&
		    !memcmp(ch->str, NOTICE_CHANNEL, ch->len)) {
			sh->subscribed = true;
			if (hd_rconn_ready(sh->cmd))
				catch_up_shard(sh->r, sh->index);
		}
		return;
	}
	if (!strcmp(rep->element[0]->str, "message") && rep->element[2]->type == REDIS_REPLY_STRING) {
		const redisReply *ch = rep->element[1];
		if (ch->type == REDIS_REPLY_STRING && ch->len == sizeof(NOTICE_CHANNEL) - 1 &&
		    !memcmp(ch->str, NOTICE_CHANNEL, ch->len))
			on_notice(sh->r, rep->element[2]->str, rep->element[2]->len);
		else
			on_message(sh->r, rep->element[2]->str, rep->element[2]->len);
	}
}

struct catchup_ctx {
	struct redis *r;
	unsigned shard;
	char (*names)[HD_TOPIC_NAME_MAX + 1];
	size_t n, cap;
};

static void collect(const char *key, void *value, void *arg)
{
	struct catchup_ctx *cc = arg;
	struct dtopic *t = value;
	if (t->shard != cc->shard)
		return;
	if (cc->n == cc->cap) {
		cc->cap = cc->cap ? cc->cap * 2 : 64;
		cc->names = hd_realloc(cc->names, cc->cap * sizeof(*cc->names));
	}
	snprintf(cc->names[cc->n++], HD_TOPIC_NAME_MAX + 1, "%s", key);
}

/* After a PUB/SUB (re)connect: every followed topic of the shard reads
 * what it may have missed. */
static void catch_up_shard(struct redis *r, unsigned shard)
{
	struct catchup_ctx cc = {.r = r, .shard = shard};
	hd_map_each(&r->topics, collect, &cc);
	for (size_t i = 0; i < cc.n; i++) {
		struct dtopic *t = hd_map_get(&r->topics, cc.names[i]);
		if (t) {
			t->recheck = true;
			t->want = UINT64_MAX;
			if (t->reading)
				t->again = true;
			deliver_start(r, t, cc.names[i]);
		}
	}
	free(cc.names);
}

/* Both channels, the notices' last (its answer says both are subscribed). */
static void subscribe_send(struct shard *sh)
{
	const char *argv[] = {"SUBSCRIBE", CHANNEL};
	size_t lens[] = {9, strlen(CHANNEL)};
	hd_rconn_command(sh->sub, sub_reply, sh, 2, argv, lens);
	subscribe_notices(sh->sub, sh);
}

void hd_redis_deliver_sub_up(struct hd_rconn *c, void *arg)
{
	struct shard *sh = arg;
	struct redis *r = sh->r;
	if (!r->test_sub_delay_ms) {
		subscribe_send(sh);
		return;
	}
	/* Test-only: held on a timer, one per shard (an armed one sends them). */
	for (struct dtimer *d = r->dtimers; d; d = d->next)
		if (d->sh == sh)
			return;
	hd_log_info("redis: test hook: SUBSCRIBE held %u ms shard=%u", r->test_sub_delay_ms,
		    sh->index);
	dtimer_arm(r, "", NULL, r->test_sub_delay_ms)->sh = sh;
}

void hd_redis_deliver_sub_down(struct hd_rconn *c, void *arg)
{
	struct shard *sh = arg;
	sh->subscribed = false;
}

static void script_load_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)hd_redis_reply_err(rep);
}

void hd_redis_deliver_cmd_up(struct hd_rconn *c, void *arg)
{
	struct shard *sh = arg;
	/* Load the scripts first: later EVALSHAs on this connection find them. */
	for (int s = 0; s < S_COUNT; s++) {
		const char *argv[] = {"SCRIPT", "LOAD", hd_redis_scripts_text[s]};
		size_t lens[] = {6, 4, strlen(hd_redis_scripts_text[s])};
		hd_rconn_command(c, script_load_reply, sh, 3, argv, lens);
	}
	if (sh->subscribed)
		catch_up_shard(sh->r, sh->index);
	hd_redis_presence_cmd_up(sh->r->presence, sh->index);
	hd_redis_heal_cmd_up(sh->r->heal, sh->index);
}
