/*
 * kids — topic patterns (delivery.h "Topic patterns"): the children of a
 * pattern subscription, one per matching topic. The expansion itself (the
 * prefix watch, the paged topic list, the cap, pruning) is the consume
 * core's (consume/pattern.h); this file is its per-topic part: where a
 * child starts, skipped topics counted once and named, a child's events
 * passed to its pump, a gone child killed with its record.
 * Layer: webhook. Callers: sub.c (activate, new, free), ops.c (delete,
 * replay), lifecycle.c (loading the children).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "consume/pattern.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- topic patterns: the children ------------------------------------- */

void hd_webhook_kids_collect(const char *key, void *value, void *arg)
{
	struct hd_webhook_kids_list *c = arg;
	(void)key;
	c->a[c->n++] = value;
}

/* A matching topic that gets no child: counted once, named in the JSON. */
static void skip_topic(struct hd_webhook_sub *p, const char *topic, const char *why)
{
	if (hd_map_get(&p->skipped_set, topic))
		return;
	(void)hd_map_put(&p->skipped_set, topic, p); /* full: counted again next time */
	p->skipped++;
	hd_metrics_inc(HD_M_webhook_pattern_topics_skipped_total);
	if (p->nskipped_names < HD_WEBHOOK_SKIPPED_SHOWN)
		snprintf(p->skipped_names[p->nskipped_names++], sizeof(p->skipped_names[0]), "%s",
			 topic);
	if (hd_log_ratelimited(&p->warn_ms))
		hd_log_warn(
			"webhook_pattern_topic_skipped sub=%s pattern=%s topic=%s reason=\"%s\" "
			"skipped=%" PRIu64,
			p->id, p->cfg.topic, topic, why, p->skipped);
}

/* Makes the child of pattern subscription p for topic, delivering after
 * floor. Returns borrowed (p owns it), or NULL when the topic is skipped. */
struct hd_webhook_sub *hd_webhook_kids_add(struct hd_webhook_sub *p, const char *topic,
					   uint64_t floor)
{
	struct hd_webhooks *w = p->w;
	int why = hd_pattern_admit(&p->pt, topic);
	if (why == HD_EBADTOPIC) {
		skip_topic(p, topic, "the name is too long for its dead-letter topic");
		return NULL;
	}
	if (why) {
		skip_topic(p, topic, "over --webhook-pattern-topics-max");
		return NULL;
	}
	struct hd_webhook_sub *s = hd_calloc(1, sizeof(*s));
	s->w = w;
	s->parent = p;
	snprintf(s->id, sizeof(s->id), "%s", p->id);
	snprintf(s->key, sizeof(s->key), "%s/%s", p->id, topic);
	s->cfg = p->cfg;
	snprintf(s->cfg.topic, sizeof(s->cfg.topic), "%s", topic);
	s->created_ms = hd_now_ms();
	hd_lease_init(&s->st.lease, floor, HD_WEBHOOK_WINDOW);
	hd_attempts_init(&s->attempts);
	hd_webhook_pump_watch_init(s);
	if (hd_pattern_add(&p->pt, s->cfg.topic, s) != 0) {
		hd_lease_fini(&s->st.lease);
		free(s);
		skip_topic(p, topic, "over --webhook-pattern-topics-max");
		return NULL;
	}
	uv_timer_init(w->loop, &s->timer);
	s->timer.data = s;
	p->refs++; /* a child keeps its parent (released in hd_webhook_sub_release) */
	hd_log_info("webhook_pattern_topic sub=%s pattern=%s topic=%s position=%" PRIu64, p->id,
		    p->cfg.topic, topic, floor);
	return s;
}

void hd_webhook_kids_free_one(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	hd_webhook_sub_free(value);
}

/* A committed event of a matching topic (the parent's prefix watch,
 * consume/pattern.h): to its child's pump, or a new child. */
static void on_watch(void *owner, void *item, const char *topic, const struct hd_stored_event *ev)
{
	struct hd_webhook_sub *p = owner, *s = item;
	if (s) {
		s->watch.fire(&s->watch, topic, ev);
		return;
	}
	if (p->deleted || p->w->stopping || hd_map_get(&p->skipped_set, topic))
		return;
	/* A topic not listed: new (from its first event on), or made while the
	 * first list runs (from this event on). */
	s = hd_webhook_kids_add(p, topic, p->listed ? 0 : ev->offset - 1);
	if (!s)
		return;
	hd_webhook_record_changed(s);
	hd_webhook_sub_activate(s);
}

/* A matching topic the parent's list found: a child for it, if it has
 * none, starting per `start` when the subscription was just created. */
static void listed(void *owner, void *item, const struct hd_topic_info *t)
{
	struct hd_webhook_sub *p = owner;
	if (item || hd_map_get(&p->skipped_set, t->name))
		return;
	uint64_t floor = 0;
	bool seek = false;
	/* A topic made after the subscription (its first events may commit
	 * while this list runs) starts at offset 1 too. */
	if (p->fresh && t->created_ms < p->created_ms) {
		switch (p->start.kind) {
		case HD_SUB_START_LATEST: floor = t->last; break;
		case HD_SUB_START_OLDEST: floor = 0; break;
		case HD_SUB_START_OFFSET: floor = p->start.offset - 1; break;
		case HD_SUB_START_TIME: seek = true; break;
		}
	}
	struct hd_webhook_sub *s = hd_webhook_kids_add(p, t->name, floor);
	if (!s)
		return;
	s->st.topic_last = t->last;
	hd_webhook_record_changed(s);
	if (seek)
		hd_webhook_ops_kid_seek(s, p->start.time_ms, NULL);
	else
		hd_webhook_sub_activate(s);
}

/* After a full list: a child whose topic is gone (deleted while the
 * subscription lived, or while herald was down) is dropped with its
 * record, so it stops counting against the cap. A topic made again later
 * gets a new child from its offset 1, as an exact subscription starts a
 * recreated topic over. */
static void gone(void *owner, void *item)
{
	struct hd_webhook_sub *s = item;
	(void)owner;
	hd_log_info("webhook_pattern_topic_gone sub=%s topic=%s", s->id, s->cfg.topic);
	hd_webhook_kids_kill_one(NULL, s, NULL);
}

static void list_done(void *owner, int err)
{
	struct hd_webhook_sub *p = owner;
	if (err)
		hd_log_warn("webhook_pattern_list_failed sub=%s pattern=%s err=%d (topics are "
			    "picked up at their next event)",
			    p->id, p->cfg.topic, err);
	p->listed = true;
	p->refs--;
	hd_webhook_sub_release(p);
}

static const struct hd_pattern_ops pattern_ops = {
	.listed = listed,
	.on_watch = on_watch,
	.gone = gone,
	.list_done = list_done,
};

void hd_webhook_kids_init(struct hd_webhook_sub *p)
{
	hd_pattern_init(&p->pt, p->w->hub, p->cfg.topic, p->w->opts.pattern_topics_max,
			&pattern_ops, p);
}

/* Lists the topics under p's prefix (paged) and makes a child for each
 * matching one that has none. */
void hd_webhook_kids_list_start(struct hd_webhook_sub *p)
{
	if (p->pt.listing)
		return;
	p->refs++;
	hd_pattern_list(&p->pt);
}

void hd_webhook_kids_kill_one(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	(void)key;
	(void)arg;
	hd_webhook_sub_kill(s);
	hd_webhook_record_delete(s->w, HD_WEBHOOK_TOPIC_RECORD_KIND, s->key, NULL);
}
