/*
 * redis_deliver — the Redis engine's live delivery (see redis_impl.h): each
 * node SUBSCRIBEs to every shard's channel and hands events to on_event in
 * offset order per topic; a gap (or a PUB/SUB reconnect, or an epoch change)
 * makes it read the missing range first. Also the connections' up/down
 * callbacks (a command connection up loads the scripts), and the notices
 * between nodes (a second channel, NOTICE_CHANNEL: join, leave, deletion).
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

/* ---- live delivery ----------------------------------------------------- */

static void evict_one(struct redis *r)
{
	for (size_t i = 0; i < r->topics.nbuckets; i++) {
		size_t b = (r->evict_cursor + i) & (r->topics.nbuckets - 1);
		struct hd_map_entry *e = r->topics.buckets[b];
		for (; e; e = e->next) {
			struct dtopic *t = e->value;
			if (t->reading)
				continue; /* its read finds it again */
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

struct cjob {
	struct hd_read rd;
	struct redis *r;
	char topic[HD_TOPIC_NAME_MAX + 1];
};

static void catchup_done(struct hd_read *rd)
{
	struct cjob *job = rd->arg;
	struct redis *r = job->r;
	struct dtopic *t = r->stopped ? NULL : hd_map_get(&r->topics, job->topic);

	if (!t)
		goto out;
	t->reading = false;
	if (rd->err || !rd->exists)
		goto out; /* the next message (or reconnect) tries again */
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
	if (t->want > rd->last && rd->n < rd->limit)
		t->want = rd->last; /* nothing more is visible yet */
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
	if (hd_redis_read(&r->base, &job->rd)) {
		t->reading = false;
		free(job);
	}
}

/* One PUB/SUB payload (see redis.h). */
static void on_message(struct redis *r, const char *p, size_t n)
{
	const char *f[6];
	size_t flen[6];
	const char *end = p + n, *q = p;
	for (int i = 0; i < 6; i++) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		if (!nl)
			return;
		f[i] = q;
		flen[i] = (size_t)(nl - q);
		q = nl + 1;
	}
	char epoch[HD_EPOCH_LEN + 1], topic[HD_TOPIC_NAME_MAX + 1];
	if (flen[1] > HD_EPOCH_LEN || flen[5] > HD_TOPIC_NAME_MAX || flen[5] == 0)
		return;
	uint64_t prev = strtoull(f[0], NULL, 10);
	memcpy(epoch, f[1], flen[1]);
	epoch[flen[1]] = '\0';
	memcpy(topic, f[5], flen[5]);
	topic[flen[5]] = '\0';
	uint64_t off = strtoull(f[2], NULL, 10);
	const char *json = q;
	size_t jl = (size_t)(end - q);

	struct dtopic *t = dtopic_get(r, topic, false);
	if (!t) {
		t = dtopic_get(r, topic, true);
		if (!t)
			return;
		memcpy(t->epoch, epoch, sizeof(t->epoch));
		/* Only what was visible before this confirm is behind us: confirms
		 * from other nodes may still bring offsets below off (prev+1..off
		 * became visible together), so those are read, not skipped. */
		t->delivered = prev;
		t->want = off > prev ? off : prev;
	}
	if (strcmp(t->epoch, epoch) != 0) {
		if (t->reading) {
			if (off > t->want)
				t->want = off; /* the read sees the new epoch */
			return;
		}
		memcpy(t->epoch, epoch, sizeof(t->epoch));
		t->delivered = 0;
		t->want = 0;
	}
	if (off <= t->delivered)
		return;
	if (!t->reading && off == t->delivered + 1 && jl) {
		struct hd_stored_event ev = {
			.offset = off,
			.time_ms = strtoll(f[3], NULL, 10),
			.expires_ms = strtoll(f[4], NULL, 10),
			.json = hd_redis_stored_json(topic, off, json, jl),
		};
		t->delivered = off;
		if (t->want < off)
			t->want = off;
		fire(r, topic, &ev);
		hd_rcbuf_unref(ev.json);
		return;
	}
	if (off > t->want)
		t->want = off;
	deliver_start(r, t, topic);
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
		sh->subscribed = true;
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
			t->want = UINT64_MAX;
			deliver_start(r, t, cc.names[i]);
		}
	}
	free(cc.names);
}

void hd_redis_deliver_sub_up(struct hd_rconn *c, void *arg)
{
	struct shard *sh = arg;
	const char *argv[] = {"SUBSCRIBE", CHANNEL};
	size_t lens[] = {9, strlen(CHANNEL)};
	hd_rconn_command(c, sub_reply, sh, 2, argv, lens);
	subscribe_notices(c, sh);
	if (hd_rconn_ready(sh->cmd))
		catch_up_shard(sh->r, sh->index);
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
}
