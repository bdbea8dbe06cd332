/*
 * pattern — see pattern.h.
 *
 * Pruning needs to know which items were seen: a second map of the topics
 * that a list page or an event named since the last prune, kept only when
 * the consumer prunes (ops->gone) and only for topics with an item, so it
 * is bounded by cap.
 */
#include "consume/pattern.h"
#include "core/alloc.h"
#include "core/err.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void list_page(struct hd_pattern *pt);

/* topic was named by a list page or an event: not gone. */
static void mark_seen(struct hd_pattern *pt, const char *topic)
{
	if (pt->ops->gone && hd_map_get(&pt->topics, topic) && !hd_map_get(&pt->seen, topic))
		(void)hd_map_put(&pt->seen, topic, pt); /* both capped at cap */
}

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct hd_pattern *pt = w->arg;
	if (pt->stopped || !hd_topic_pattern_match(pt->pattern, topic))
		return;
	pt->ops->on_watch(pt->owner, hd_map_get(&pt->topics, topic), topic, ev);
	mark_seen(pt, topic);
}

void hd_pattern_init(struct hd_pattern *pt, struct hd_hub *hub, const char *pattern, size_t cap,
		     const struct hd_pattern_ops *ops, void *owner)
{
	memset(pt, 0, sizeof(*pt));
	snprintf(pt->pattern, sizeof(pt->pattern), "%s", pattern);
	hd_topic_pattern_prefix(pattern, pt->prefix, sizeof(pt->prefix));
	hd_map_init(&pt->topics, cap);
	hd_map_init(&pt->seen, cap);
	pt->hub = hub;
	pt->cap = cap;
	pt->ops = ops;
	pt->owner = owner;
	pt->watch.fire = on_watch;
	pt->watch.arg = pt;
}

void hd_pattern_fini(struct hd_pattern *pt)
{
	if (pt->watching)
		hd_hub_unwatch(pt->hub, &pt->watch);
	pt->watching = false;
	hd_map_fini(&pt->topics);
	hd_map_fini(&pt->seen);
}

int hd_pattern_watch(struct hd_pattern *pt)
{
	if (pt->watching || pt->stopped)
		return 0;
	int rc = hd_hub_watch_prefix(pt->hub, pt->prefix, &pt->watch);
	if (rc == 0)
		pt->watching = true;
	return rc;
}

void hd_pattern_stop(struct hd_pattern *pt)
{
	pt->stopped = true;
	if (pt->watching)
		hd_hub_unwatch(pt->hub, &pt->watch);
	pt->watching = false;
}

int hd_pattern_admit(const struct hd_pattern *pt, const char *topic)
{
	if (!hd_topic_name_dlq_fits(topic))
		return HD_EBADTOPIC;
	return pt->topics.count >= pt->cap ? HD_ELIMIT : 0;
}

int hd_pattern_add(struct hd_pattern *pt, const char *topic, void *item)
{
	return hd_map_put(&pt->topics, topic, item) == 0 ? 0 : HD_ELIMIT;
}

void *hd_pattern_get(const struct hd_pattern *pt, const char *topic)
{
	return hd_map_get(&pt->topics, topic);
}

void *hd_pattern_remove(struct hd_pattern *pt, const char *topic)
{
	hd_map_del(&pt->seen, topic);
	return hd_map_del(&pt->topics, topic);
}

void hd_pattern_clear(struct hd_pattern *pt)
{
	hd_map_fini(&pt->topics);
	hd_map_init(&pt->topics, pt->cap);
	hd_map_fini(&pt->seen);
	hd_map_init(&pt->seen, pt->cap);
}

/* ---- prune ------------------------------------------------------------ */

struct unseen {
	struct hd_pattern *pt;
	char **topics;                /* n, owned copies */
	size_t n;
};

static void collect_unseen(const char *topic, void *item, void *arg)
{
	struct unseen *u = arg;
	(void)item;
	if (!hd_map_get(&u->pt->seen, topic))
		u->topics[u->n++] = hd_strdup(topic);
}

/* After a full list: every item not seen is gone. */
static void prune(struct hd_pattern *pt)
{
	struct unseen u = {.pt = pt, .topics = hd_calloc(pt->topics.count + 1, sizeof(char *))};
	hd_map_each(&pt->topics, collect_unseen, &u);
	for (size_t i = 0; i < u.n; i++) {
		void *item = hd_map_del(&pt->topics, u.topics[i]);
		if (item && !pt->stopped)
			pt->ops->gone(pt->owner, item);
		free(u.topics[i]);
	}
	free(u.topics);
	/* The next prune counts from here. */
	hd_map_fini(&pt->seen);
	hd_map_init(&pt->seen, pt->cap);
}

/* ---- the list --------------------------------------------------------- */

static void list_done(struct hd_topic_op *op)
{
	struct hd_pattern *pt = op->arg;
	int err = op->err;
	size_t n = err ? 0 : op->n;
	bool more = n == HD_PATTERN_LIST_PAGE;
	for (size_t i = 0; i < n && !pt->stopped; i++) {
		const struct hd_topic_info *t = &op->topics[i];
		if (!hd_topic_pattern_match(pt->pattern, t->name))
			continue;
		pt->ops->listed(pt->owner, hd_map_get(&pt->topics, t->name), t);
		mark_seen(pt, t->name);
	}
	if (n > 0)
		snprintf(pt->after, sizeof(pt->after), "%s", op->topics[n - 1].name);
	hd_engine_topic_op_fini(op);
	if (more && !pt->stopped) {
		list_page(pt);
		return;
	}
	pt->listing = false;
	if (!err && !pt->stopped && pt->ops->gone)
		prune(pt);
	pt->ops->list_done(pt->owner, err);
}

/* Lists the next page of the topics under the prefix. */
static void list_page(struct hd_pattern *pt)
{
	memset(&pt->list, 0, sizeof(pt->list));
	pt->list.kind = HD_TOPIC_LIST;
	pt->list.prefix = pt->prefix;
	pt->list.after = pt->after;
	pt->list.limit = HD_PATTERN_LIST_PAGE;
	pt->list.done = list_done;
	pt->list.arg = pt;
	int rc = hd_hub_topic_op(pt->hub, &pt->list);
	if (rc) {
		pt->list.err = rc;
		list_done(&pt->list);
	}
}

void hd_pattern_list(struct hd_pattern *pt)
{
	if (pt->listing)
		return;
	pt->listing = true;
	pt->after[0] = '\0';
	list_page(pt);
}
