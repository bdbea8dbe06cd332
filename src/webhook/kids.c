/*
 * kids — topic patterns (delivery.h "Topic patterns"): the children of a
 * pattern subscription, one per matching topic; made from the paged topic
 * list or the first event of a new topic (the prefix watch), skipped past
 * the cap or when a name is too long, pruned when their topic is gone.
 * Layer: webhook. Callers: pump.c (on_watch of a parent), sub.c (activate,
 * free), ops.c (delete, replay), lifecycle.c (loading the children).
 */
#include "webhook/webhook_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
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
	if (strlen(topic) + strlen(HD_WEBHOOK_DLQ_SUFFIX) > HD_TOPIC_NAME_MAX) {
		skip_topic(p, topic, "the name is too long for its dead-letter topic");
		return NULL;
	}
	if (p->kids.count >= w->opts.pattern_topics_max) {
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
	if (hd_map_put(&p->kids, s->cfg.topic, s) != 0) {
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

/* A committed event of a topic under p's prefix. */
void hd_webhook_kids_event(struct hd_webhook_sub *p, const char *topic,
			   const struct hd_stored_event *ev)
{
	if (!hd_topic_pattern_match(p->cfg.topic, topic))
		return;
	struct hd_webhook_sub *s = hd_map_get(&p->kids, topic);
	if (s)
		s->st.seen = true;
	if (!s) {
		if (p->deleted || p->w->stopping || hd_map_get(&p->skipped_set, topic))
			return;
		/* A topic not listed: new (from its first event on), or made
		 * while the first list runs (from this event on). */
		s = hd_webhook_kids_add(p, topic, p->listed ? 0 : ev->offset - 1);
		if (!s)
			return;
		s->st.seen = true;
		hd_webhook_record_changed(s);
		hd_webhook_sub_activate(s);
		return;
	}
	s->watch.fire(&s->watch, topic, ev);
}

static void collect_unseen(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	struct hd_webhook_kids_list *c = arg;
	(void)key;
	if (!s->st.seen)
		c->a[c->n++] = s;
}

/* After a full list: the children whose topic is gone (deleted while the
 * subscription lived, or while herald was down) are dropped with their
 * records, so they stop counting against the cap. A topic made again
 * later gets a new child from its offset 1, as an exact subscription
 * starts a recreated topic over. */
static void prune_kids(struct hd_webhook_sub *p)
{
	struct hd_webhook_kids_list c = {.a = hd_calloc(p->kids.count + 1, sizeof(*c.a))};
	hd_map_each(&p->kids, collect_unseen, &c);
	for (size_t i = 0; i < c.n; i++) {
		struct hd_webhook_sub *s = (struct hd_webhook_sub *)c.a[i];
		hd_log_info("webhook_pattern_topic_gone sub=%s topic=%s", s->id, s->cfg.topic);
		hd_map_del(&p->kids, s->cfg.topic);
		hd_webhook_kids_kill_one(NULL, s, NULL);
	}
	free(c.a);
}

struct lister {
	struct hd_topic_op op;
	struct hd_webhook_sub *p;
	char after[HD_TOPIC_NAME_MAX + 1];
};

static void list_page(struct lister *l);

static void list_done(struct hd_topic_op *op)
{
	struct lister *l = op->arg;
	struct hd_webhook_sub *p = l->p;
	bool more = false;
	if (op->err) {
		hd_log_warn("webhook_pattern_list_failed sub=%s pattern=%s err=%d (topics are "
			    "picked up at their next event)",
			    p->id, p->cfg.topic, op->err);
	} else if (!p->deleted && !p->w->stopping) {
		for (size_t i = 0; i < op->n; i++) {
			const struct hd_topic_info *t = &op->topics[i];
			snprintf(l->after, sizeof(l->after), "%s", t->name);
			struct hd_webhook_sub *had = hd_map_get(&p->kids, t->name);
			if (had)
				had->st.seen = true;
			if (!hd_topic_pattern_match(p->cfg.topic, t->name) || had ||
			    hd_map_get(&p->skipped_set, t->name))
				continue;
			uint64_t floor = 0;
			bool seek = false;
			/* A topic made after the subscription (its first events may
			 * commit while this list runs) starts at offset 1 too. */
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
				continue;
			s->st.seen = true;
			s->st.topic_last = t->last;
			hd_webhook_record_changed(s);
			if (seek)
				hd_webhook_ops_kid_seek(s, p->start.time_ms, NULL);
			else
				hd_webhook_sub_activate(s);
		}
		more = op->n >= HD_WEBHOOK_LIST_PAGE;
	}
	bool failed = op->err != 0;
	hd_topic_op_fini(op);
	if (more) {
		list_page(l);
		return;
	}
	p->listing--;
	p->listed = true;
	if (!failed && !p->deleted && !p->w->stopping)
		prune_kids(p);
	p->refs--;
	free(l);
	hd_webhook_sub_release(p);
}

static void list_page(struct lister *l)
{
	memset(&l->op, 0, sizeof(l->op));
	l->op.kind = HD_TOPIC_LIST;
	l->op.prefix = l->p->prefix;
	l->op.after = l->after;
	l->op.limit = HD_WEBHOOK_LIST_PAGE;
	l->op.done = list_done;
	l->op.arg = l;
	int rc = hd_hub_topic_op(l->p->w->hub, &l->op);
	if (rc) {
		l->op.err = rc;
		list_done(&l->op);
	}
}

/* Lists the topics under p's prefix (paged) and makes a child for each
 * matching one that has none. */
void hd_webhook_kids_list_start(struct hd_webhook_sub *p)
{
	struct lister *l = hd_calloc(1, sizeof(*l));
	l->p = p;
	p->listing++;
	p->refs++;
	hd_topic_pattern_prefix(p->cfg.topic, p->prefix, sizeof(p->prefix));
	list_page(l);
}

void hd_webhook_kids_kill_one(const char *key, void *value, void *arg)
{
	struct hd_webhook_sub *s = value;
	(void)key;
	(void)arg;
	hd_webhook_sub_kill(s);
	hd_webhook_record_delete(s->w, HD_WEBHOOK_TOPIC_RECORD_KIND, s->key, NULL);
}
