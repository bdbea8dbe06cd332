/*
 * ops — the admin operations of delivery.h (create, replay, list, info,
 * attempts, pause, rotate, delete) and the seek by time that create with
 * start.time and replay by time use (consume/seek.h).
 * Layer: webhook. Callers: edge/webhook_http.c through delivery.h; kids.c
 * (a child's start seek); record.c (answers once durable).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "consume/seek.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void hd_webhook_ops_reply(struct hd_webhook_reply *r, int status)
{
	r->status = status;
	r->err = 0;
	r->done(r);
}

void hd_webhook_ops_reply_err(struct hd_webhook_reply *r, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	r->err = err;
	r->done(r);
}

/* ---- operations ------------------------------------------------------- */

const char *hd_webhooks_topic(const struct hd_webhooks *w, const char *id)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, id);
	return s ? s->cfg.topic : NULL;
}

bool hd_webhooks_loaded(const struct hd_webhooks *w)
{
	return w->loaded;
}

bool hd_webhooks_allow_private(const struct hd_webhooks *w)
{
	return w->opts.http.allow_private;
}

static int random_id(char *out, size_t n)
{
	unsigned char b[8];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return HD_EINTERNAL;
	snprintf(out, n, HD_SUB_ID_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
		 b[3], b[4], b[5], b[6], b[7]);
	return 0;
}

/* Where a create or a replay starts: the topic's info, then for a start
 * time the first offset stored at or after it (consume/seek.h). */
struct seek {
	struct hd_topic_op op;
	struct hd_seek sk;
	struct hd_webhooks *w;
	struct hd_webhook_reply *r;
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_sub_start start;
	uint64_t last;
	/* create: */
	bool create;
	struct hd_sub_config cfg;
	struct hd_webhook_secret secret;
	/* replay: */
	char id[HD_SUB_ID_LEN + 1];
	/* a pattern's child (a reference): its start time, or a replay of
	 * every child (multi) */
	struct hd_webhook_sub *kid;
	struct hd_webhook_multi *m;
};

/* A replay by time of every child of a pattern subscription: one seek per
 * child; answered when the last is done. */
struct hd_webhook_multi {
	struct hd_webhook_sub *p;                /* a reference */
	struct hd_webhook_reply *r;
	size_t left;
	int err;
};

static void seek_found(struct seek *k, uint64_t first);

static void multi_end(struct hd_webhook_multi *m, int err)
{
	struct hd_webhook_sub *p = m->p;
	if (err && !m->err)
		m->err = err;
	if (--m->left > 0)
		return;
	if (m->err) {
		hd_webhook_ops_reply_err(m->r, m->err, "a topic could not be read");
	} else if (p->deleted) {
		hd_webhook_ops_reply_err(m->r, HD_ENOTFOUND, "no such subscription");
	} else {
		hd_webhook_sub_json(&m->r->body, p, NULL);
		hd_webhook_ops_reply(m->r, 200);
	}
	p->refs--;
	free(m);
	hd_webhook_sub_release(p);
}

/* Ends a seek that failed: a request is answered; a child's start seek
 * delivers from its current position (at least once, never a loss). */
static void seek_fail(struct seek *k, int err, const char *msg)
{
	if (k->kid) {
		struct hd_webhook_sub *s = k->kid;
		if (k->m)
			multi_end(k->m, err);
		else if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("webhook_start_seek_failed sub=%s topic=%s err=%d", s->id,
				    s->cfg.topic, err);
		s->st.seeking = false;
		s->refs--;
		if (s->deleted)
			hd_webhook_sub_release(s);
		else
			hd_webhook_sub_activate(s);
	} else {
		hd_webhook_ops_reply_err(k->r, err, "%s", msg);
	}
	free(k);
}

/* The search for the start time ended. */
static void seek_done(struct hd_seek *sk, int err)
{
	struct seek *k = sk->arg;
	if (sk->cancelled)
		seek_fail(k, HD_EUNAVAIL, "herald is stopping");
	else if (err)
		seek_fail(k, err, "the topic could not be read");
	else
		seek_found(k, sk->found);
}

static void seek_info_done(struct hd_topic_op *op)
{
	struct seek *k = op->arg;
	uint64_t first, last;
	int err = hd_seek_range(op, &first, &last);
	hd_engine_topic_op_fini(op);
	if (err) {
		seek_fail(k, err, "the topic could not be read");
		return;
	}
	if (k->w->stopping) {
		seek_fail(k, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	k->last = last;
	switch (k->start.kind) {
	case HD_SUB_START_LATEST:
		seek_found(k, last + 1);
		return;
	case HD_SUB_START_OLDEST:
		seek_found(k, 1);
		return;
	case HD_SUB_START_OFFSET:
		seek_found(k, k->start.offset);
		return;
	case HD_SUB_START_TIME:
		k->sk = (struct hd_seek){
			.hub = k->w->hub,
			.topic = k->topic,
			.time_ms = k->start.time_ms,
			.cancel = &k->w->stopping,
			.done = seek_done,
			.arg = k,
		};
		hd_seek_start(&k->sk, first, last);
		return;
	}
}

static void seek_begin(struct seek *k)
{
	k->op.kind = HD_TOPIC_INFO;
	k->op.topic = k->topic;
	k->op.done = seek_info_done;
	k->op.arg = k;
	int rc = hd_hub_topic_op(k->w->hub, &k->op);
	if (rc)
		seek_fail(k, rc, "the topic could not be read");
}

/* Finds where child s starts (the first event at or after time_ms) and
 * moves it there; s waits meanwhile (seeking). m: part of a replay. */
void hd_webhook_ops_kid_seek(struct hd_webhook_sub *s, int64_t time_ms, struct hd_webhook_multi *m)
{
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = s->w;
	k->kid = s;
	k->m = m;
	k->start.kind = HD_SUB_START_TIME;
	k->start.time_ms = time_ms;
	snprintf(k->topic, sizeof(k->topic), "%s", s->cfg.topic);
	s->st.seeking = true;
	s->refs++;
	seek_begin(k);
}

static void seek_found(struct seek *k, uint64_t first)
{
	struct hd_webhooks *w = k->w;
	struct hd_webhook_reply *r = k->r;
	if (w->stopping) {
		seek_fail(k, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (k->kid) {
		struct hd_webhook_sub *s = k->kid;
		s->st.seeking = false;
		if (!s->deleted) {
			hd_webhook_sub_reposition(s, first);
			hd_log_info("webhook_seek sub=%s topic=%s from=%" PRIu64, s->id,
				    s->cfg.topic, first);
		}
		if (k->m)
			multi_end(k->m, 0);
		s->refs--;
		hd_webhook_sub_release(s);
		goto out;
	}
	if (k->create) {
		char id[HD_SUB_ID_LEN + 1];
		struct hd_webhook_sub *s = NULL;
		for (int tries = 0; tries < 4 && !s; tries++) {
			if (random_id(id, sizeof(id))) {
				hd_webhook_ops_reply_err(r, HD_EINTERNAL, "no id could be made");
				goto out;
			}
			if (hd_map_get(&w->subs, id))
				continue;
			s = hd_webhook_sub_new(w, id, &k->cfg, first ? first - 1 : 0);
			if (!s) {
				hd_webhook_ops_reply_err(
					r, HD_ELIMIT, "at most %" PRIu32 " webhook subscriptions",
					w->opts.max_subscriptions);
				goto out;
			}
		}
		if (!s) {
			hd_webhook_ops_reply_err(r, HD_EINTERNAL, "no id could be made");
			goto out;
		}
		s->secrets[0] = k->secret;
		s->nsecrets = 1;
		s->unstored = true;
		s->st.topic_last = k->last;
		/* The answer, with the secret this once. */
		hd_webhook_sub_json(&r->body, s, s->secrets[0].text);
		hd_log_info("webhook_created sub=%s topic=%s url_len=%zu position=%" PRIu64, s->id,
			    s->cfg.topic, strlen(s->cfg.url), s->st.lease.floor);
		hd_webhook_record_put(s, r, 201);
		hd_webhook_sub_activate(s);
	} else {
		struct hd_webhook_sub *s = hd_map_get(&w->subs, k->id);
		if (!s) {
			hd_webhook_ops_reply_err(r, HD_ENOTFOUND, "no such subscription");
			goto out;
		}
		hd_webhook_sub_reposition(s, first);
		hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, s->cfg.topic,
			    first);
		hd_webhook_sub_json(&r->body, s, NULL);
		hd_webhook_ops_reply(r, 200);
	}
out:
	memset(&k->secret, 0, sizeof(k->secret));
	free(k);
}

/* A pattern subscription needs no seek: each child finds its own start
 * when the topic list (or the first event of a new topic) makes it. */
static void create_pattern(struct hd_webhooks *w, const struct hd_sub_config *c,
			   const struct hd_sub_start *start, const char *secret,
			   struct hd_webhook_reply *r)
{
	struct hd_error err = {0};
	struct hd_webhook_secret sec;
	char id[HD_SUB_ID_LEN + 1];
	struct hd_webhook_sub *s = NULL;
	if (hd_webhook_sub_make_secret(secret, &sec, &err)) {
		hd_webhook_ops_reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		return;
	}
	for (int tries = 0; tries < 4 && !s; tries++) {
		if (random_id(id, sizeof(id)))
			break;
		if (hd_map_get(&w->subs, id))
			continue;
		s = hd_webhook_sub_new(w, id, c, 0);
		if (!s) {
			hd_webhook_ops_reply_err(r, HD_ELIMIT,
						 "at most %" PRIu32 " webhook subscriptions",
						 w->opts.max_subscriptions);
			goto out;
		}
	}
	if (!s) {
		hd_webhook_ops_reply_err(r, HD_EINTERNAL, "no id could be made");
		goto out;
	}
	s->secrets[0] = sec;
	s->nsecrets = 1;
	s->unstored = true;
	s->fresh = true;
	s->start = *start;
	hd_webhook_sub_json(&r->body, s, s->secrets[0].text);
	hd_log_info("webhook_created sub=%s pattern=%s url_len=%zu", s->id, s->cfg.topic,
		    strlen(s->cfg.url));
	hd_webhook_record_put(s, r, 201);
	hd_webhook_sub_activate(s);
out:
	memset(&sec, 0, sizeof(sec));
}

void hd_webhooks_create(struct hd_webhooks *w, const struct hd_sub_config *c,
			const struct hd_sub_start *start, const char *secret,
			struct hd_webhook_reply *r)
{
	struct hd_error err = {0};
	if (w->stopping) {
		hd_webhook_ops_reply_err(r, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (w->subs.count >= w->opts.max_subscriptions) {
		hd_webhook_ops_reply_err(r, HD_ELIMIT, "at most %" PRIu32 " webhook subscriptions",
					 w->opts.max_subscriptions);
		return;
	}
	if (hd_topic_pattern_is(c->topic)) {
		create_pattern(w, c, start, secret, r);
		return;
	}
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = w;
	k->r = r;
	k->create = true;
	k->cfg = *c;
	k->start = *start;
	snprintf(k->topic, sizeof(k->topic), "%s", c->topic);
	if (hd_webhook_sub_make_secret(secret, &k->secret, &err)) {
		hd_webhook_ops_reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		free(k);
		return;
	}
	seek_begin(k);
}

/* The subscription a changing request names, or NULL with r answered
 * (herald stopping: 503; unknown id: 404). */
static struct hd_webhook_sub *writable_sub(struct hd_webhooks *w, const char *id,
					   struct hd_webhook_reply *r)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, id);
	if (w->stopping) {
		hd_webhook_ops_reply_err(r, HD_EUNAVAIL, "herald is stopping");
		return NULL;
	}
	if (!s)
		hd_webhook_ops_reply_err(r, HD_ENOTFOUND, "no such subscription");
	return s;
}

/* Whether this node may change s (its owner, or the only node). A change
 * made elsewhere moves the subscription here (own.c), but a replay of a
 * pattern subscription's topics is not kept for that: it is refused while
 * this node takes the lease over, and a retry succeeds. */
static bool may_replay(struct hd_webhook_sub *s, struct hd_webhook_reply *r)
{
	if (!s->pattern || !hd_owner_shared(s->w->owner) || hd_webhook_own_held(s))
		return true;
	hd_owned_want(&s->own);
	hd_webhook_ops_reply_err(r, HD_EUNAVAIL,
				 "the subscription was delivered by another node (%.120s): this "
				 "node takes it over now; retry",
				 s->own.claim.holder[0] ? s->own.claim.holder : "not known yet");
	return false;
}

struct multi_ctx {
	struct hd_webhook_multi *m;
	int64_t time_ms;
};

static void replay_kid(const char *key, void *value, void *arg)
{
	struct multi_ctx *c = arg;
	(void)key;
	c->m->left++;
	hd_webhook_ops_kid_seek(value, c->time_ms, c->m);
}

void hd_webhooks_replay(struct hd_webhooks *w, const char *id, const char *topic, bool by_time,
			uint64_t from, int64_t time_ms, struct hd_webhook_reply *r)
{
	struct hd_webhook_sub *s = writable_sub(w, id, r);
	if (!s)
		return;
	if (!may_replay(s, r))
		return;
	if (topic && !s->pattern && strcmp(topic, s->cfg.topic) != 0) {
		hd_webhook_ops_reply_err(r, HD_EINVAL, "'topic' must be the subscription's topic");
		return;
	}
	if (s->pattern && topic) {
		struct hd_webhook_sub *p = s;
		s = hd_pattern_get(&p->pt, topic);
		if (!s) {
			hd_webhook_ops_reply_err(r, HD_ENOTFOUND,
						 "the subscription delivers no topic '%.200s'",
						 topic);
			return;
		}
		if (!by_time) {
			hd_webhook_sub_reposition(s, from);
			hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, topic,
				    from);
			hd_webhook_sub_json(&r->body, p, NULL);
			hd_webhook_ops_reply(r, 200);
			return;
		}
		struct hd_webhook_multi *m = hd_calloc(1, sizeof(*m));
		m->p = p;
		m->r = r;
		m->left = 1;
		p->refs++;
		hd_webhook_ops_kid_seek(s, time_ms, m);
		return;
	}
	if (s->pattern) {
		if (!by_time) {
			hd_webhook_ops_reply_err(
				r, HD_EINVAL,
				"offsets are per topic: replay a pattern subscription from an "
				"RFC 3339 time, or give topic=<name> with from=<offset>");
			return;
		}
		/* One seek per child; `left` starts at 1 so that seeks answered
		 * at once cannot end the replay before every one is started. */
		struct hd_webhook_multi *m = hd_calloc(1, sizeof(*m));
		m->p = s;
		m->r = r;
		m->left = 1;
		s->refs++;
		struct multi_ctx c = {.m = m, .time_ms = time_ms};
		hd_map_each(&s->pt.topics, replay_kid, &c);
		hd_log_info("webhook_replay sub=%s pattern=%s from_time=%" PRId64 " topics=%zu",
			    s->id, s->cfg.topic, time_ms, s->pt.topics.count);
		multi_end(m, 0);
		return;
	}
	if (!by_time) {
		hd_webhook_sub_reposition(s, from);
		hd_log_info("webhook_replay sub=%s topic=%s from=%" PRIu64, s->id, s->cfg.topic,
			    from);
		hd_webhook_sub_json(&r->body, s, NULL);
		hd_webhook_ops_reply(r, 200);
		return;
	}
	struct seek *k = hd_calloc(1, sizeof(*k));
	k->w = w;
	k->r = r;
	k->start.kind = HD_SUB_START_TIME;
	k->start.time_ms = time_ms;
	snprintf(k->id, sizeof(k->id), "%s", id);
	snprintf(k->topic, sizeof(k->topic), "%s", s->cfg.topic);
	seek_begin(k);
}

struct list_ctx {
	struct hd_buf *out;
	const char *topic;
	const struct hd_webhook_sub **subs;
	size_t n;
};

static void collect_sub(const char *key, void *value, void *arg)
{
	struct list_ctx *l = arg;
	const struct hd_webhook_sub *s = value;
	(void)key;
	if (!l->topic || strcmp(l->topic, s->cfg.topic) == 0 ||
	    (s->pattern && hd_topic_pattern_match(s->cfg.topic, l->topic)))
		l->subs[l->n++] = s;
}

static int by_created(const void *a, const void *b)
{
	const struct hd_webhook_sub *x = *(const struct hd_webhook_sub *const *)a;
	const struct hd_webhook_sub *y = *(const struct hd_webhook_sub *const *)b;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

void hd_webhooks_list(struct hd_webhooks *w, const char *topic, struct hd_buf *out)
{
	struct list_ctx l = {.out = out, .topic = topic};
	l.subs = hd_calloc(w->subs.count + 1, sizeof(*l.subs));
	hd_map_each(&w->subs, collect_sub, &l);
	qsort(l.subs, l.n, sizeof(*l.subs), by_created);
	hd_buf_puts(out, "{\"subscriptions\":[");
	for (size_t i = 0; i < l.n; i++) {
		if (i)
			hd_buf_putc(out, ',');
		hd_webhook_sub_json(out, l.subs[i], NULL);
	}
	hd_buf_printf(out, "],\"count\":%zu}", l.n);
	free(l.subs);
}

int hd_webhooks_info(struct hd_webhooks *w, const char *id, struct hd_buf *out)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	hd_webhook_sub_json(out, s, NULL);
	return 0;
}

int hd_webhooks_attempts(struct hd_webhooks *w, const char *id, size_t limit, struct hd_buf *out)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	hd_buf_printf(out, "{\"id\":\"%s\",\"total\":%" PRIu64 ",\"attempts\":", s->id,
		      s->attempts.total);
	hd_attempts_json(out, &s->attempts, limit);
	hd_buf_putc(out, '}');
	return 0;
}

int hd_webhooks_pause(struct hd_webhooks *w, const char *id, bool pause, struct hd_buf *out)
{
	struct hd_webhook_sub *s = hd_map_get(&w->subs, id);
	if (!s)
		return HD_ENOTFOUND;
	if (pause) {
		if (s->state == HD_WEBHOOK_ACTIVE) {
			s->state = HD_WEBHOOK_PAUSED;
			snprintf(s->reason, sizeof(s->reason), "paused by request");
			uv_timer_stop(&s->timer);
			hd_webhook_record_changed(s);
		}
	} else {
		if (s->state != HD_WEBHOOK_ACTIVE || s->streak) {
			s->state = HD_WEBHOOK_ACTIVE;
			s->reason[0] = '\0';
			s->streak = 0;
			hd_webhook_record_changed(s);
		}
		if (!w->stopping)
			hd_webhook_sub_activate(s);
	}
	/* On a node that does not deliver it: this node takes it over. */
	hd_webhook_own_changed(s, HD_WEBHOOK_CHANGE_STATE, NULL, 0);
	hd_log_info("webhook_%s sub=%s topic=%s", pause ? "paused" : "resumed", s->id,
		    s->cfg.topic);
	hd_webhook_sub_json(out, s, NULL);
	return 0;
}

void hd_webhooks_rotate(struct hd_webhooks *w, const char *id, const char *secret,
			struct hd_webhook_reply *r)
{
	struct hd_webhook_sub *s = writable_sub(w, id, r);
	struct hd_error err = {0};
	struct hd_webhook_secret fresh;
	int64_t now = hd_now_ms();
	if (!s)
		return;
	if (hd_webhook_sub_make_secret(secret, &fresh, &err)) {
		hd_webhook_ops_reply_err(r, HD_EINVAL, "'secret': %s", err.msg);
		return;
	}
	if (s->nsecrets > 0)
		s->secrets[0].until_ms =
			w->opts.rotation_grace_ms ? now + w->opts.rotation_grace_ms : 0;
	size_t keep = s->nsecrets < HD_SIGNATURE_SECRETS_MAX ? s->nsecrets
							     : HD_SIGNATURE_SECRETS_MAX - 1;
	memmove(&s->secrets[1], &s->secrets[0], keep * sizeof(s->secrets[0]));
	s->secrets[0] = fresh;
	s->nsecrets = keep + 1;
	/* Without grace the previous secret stops at once. */
	for (size_t i = 1; i < s->nsecrets; i++)
		if (s->secrets[i].until_ms == 0)
			s->secrets[i].until_ms = 1;
	hd_webhook_sub_prune_secrets(s, now);
	hd_log_info("webhook_secret_rotated sub=%s signing_secrets=%zu", s->id, s->nsecrets);
	hd_buf_printf(&r->body, "{\"id\":\"%s\",\"secret\":\"%s\",\"signing_secrets\":%zu}", s->id,
		      fresh.text, s->nsecrets);
	memset(&fresh, 0, sizeof(fresh));
	/* Answered once this state is durable: a write of its own even when
	 * one is in flight (the store applies writes in order); on a node
	 * that does not deliver it, once it took it over and wrote it. */
	if (!hd_webhook_own_changed(s, HD_WEBHOOK_CHANGE_SECRETS, r, 200))
		hd_webhook_record_put(s, r, 200);
}

void hd_webhooks_delete(struct hd_webhooks *w, const char *id, struct hd_webhook_reply *r)
{
	struct hd_webhook_sub *s = writable_sub(w, id, r);
	if (!s)
		return;
	hd_map_del(&w->subs, s->id);
	hd_metrics_gauge_add(HD_M_webhook_subscriptions, -1);
	/* From any node: the lease goes first, so that the owner's next
	 * position write is refused instead of making the record again. */
	hd_owner_drop(w->owner, s->own.claim.name);
	hd_relist_deleted(&w->relist);
	hd_webhook_sub_kill(s);
	if (s->pattern) {
		/* The children go first (each releases the parent when freed);
		 * the map is emptied so that freeing the parent frees none. */
		hd_map_each(&s->pt.topics, hd_webhook_kids_kill_one, NULL);
		hd_pattern_clear(&s->pt);
	}
	hd_log_info("webhook_deleted sub=%s topic=%s", s->id, s->cfg.topic);
	hd_webhook_record_delete(w, HD_WEBHOOK_RECORD_KIND, s->id, r);
}
