/*
 * fake_engine — a tiny engine for the consume tests: reads and topic lists
 * answered synchronously from arrays, through the real hub
 * (hd_hub_set_engine). Not a test program itself (CMake picks up test_*.c
 * only); included by the tests that need an engine.
 */
#ifndef HD_TEST_FAKE_ENGINE_H
#define HD_TEST_FAKE_ENGINE_H

#include "core/alloc.h"
#include "core/err.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

#define FAKE_EVENTS_MAX 256
#define FAKE_TOPICS_MAX 4096

struct fake_engine {
	struct hd_engine base;
	/* One topic's events, by offset ascending (reads ignore r->topic). */
	uint64_t offsets[FAKE_EVENTS_MAX];
	int64_t times[FAKE_EVENTS_MAX];
	size_t nevents;
	/* Topic names, sorted (lists). */
	char (*topics)[HD_TOPIC_NAME_MAX + 1];
	size_t ntopics;
	int fail;                 /* reads, lists and publishes fail with this when set */
	size_t reads, lists;
	/* The last publish (answered at once, or held when hold is set). */
	char pub_topic[HD_TOPIC_NAME_MAX + 8];
	char pub_json[4096];
	int pub_err;              /* the item's err when answered */
	bool hold;
	struct hd_pub *held;
	size_t pubs;
};

static int fake_publish(struct hd_engine *e, struct hd_pub *p)
{
	struct fake_engine *f = (struct fake_engine *)e;
	f->pubs++;
	if (f->fail)
		return f->fail;
	snprintf(f->pub_topic, sizeof(f->pub_topic), "%s", p->items[0].topic);
	snprintf(f->pub_json, sizeof(f->pub_json), "%.*s", (int)p->items[0].event->json_len,
		 p->items[0].event->json);
	p->items[0].err = f->pub_err;
	if (f->hold)
		f->held = p;
	else
		p->done(p);
	return 0;
}

static int fake_read(struct hd_engine *e, struct hd_read *r)
{
	struct fake_engine *f = (struct fake_engine *)e;
	f->reads++;
	if (f->fail)
		return f->fail;
	r->events = hd_calloc(r->limit ? r->limit : 1, sizeof(*r->events));
	for (size_t i = 0; i < f->nevents && r->n < r->limit; i++) {
		if (f->offsets[i] <= r->after)
			continue;
		r->events[r->n].offset = f->offsets[i];
		r->events[r->n].time_ms = f->times[i];
		r->n++;
	}
	r->last = f->nevents ? f->offsets[f->nevents - 1] : 0;
	r->done(r);
	return 0;
}

static int fake_topic_op(struct hd_engine *e, struct hd_topic_op *op)
{
	struct fake_engine *f = (struct fake_engine *)e;
	f->lists++;
	if (f->fail)
		return f->fail;
	op->topics = hd_calloc(op->limit ? op->limit : 1, sizeof(*op->topics));
	for (size_t i = 0; i < f->ntopics && op->n < op->limit; i++) {
		const char *t = f->topics[i];
		if (strncmp(t, op->prefix, strlen(op->prefix)) != 0 || strcmp(t, op->after) <= 0)
			continue;
		snprintf(op->topics[op->n].name, sizeof(op->topics[0].name), "%s", t);
		op->topics[op->n].last = 7;
		op->n++;
	}
	op->done(op);
	return 0;
}

static const struct hd_engine_ops fake_ops = {
	.name = "fake",
	.publish = fake_publish,
	.read = fake_read,
	.topic_op = fake_topic_op,
};

static inline void fake_init(struct fake_engine *f)
{
	memset(f, 0, sizeof(*f));
	f->base.ops = &fake_ops;
	f->topics = hd_calloc(FAKE_TOPICS_MAX, sizeof(*f->topics));
}

static inline void fake_fini(struct fake_engine *f)
{
	free(f->topics);
}

/* Adds a topic name; callers add them in sorted order. */
static inline void fake_topic(struct fake_engine *f, const char *name)
{
	snprintf(f->topics[f->ntopics++], sizeof(f->topics[0]), "%s", name);
}

#endif
