/* hub — see hub.h. */
#include "hub/hub.h"
#include "core/alloc.h"

#include <stdlib.h>

struct hd_hub {
	const struct hd_config *cfg;
	struct hd_engine *engine;
};

struct hd_hub *hd_hub_new(const struct hd_config *cfg)
{
	struct hd_hub *hub = hd_calloc(1, sizeof(*hub));
	hub->cfg = cfg;
	return hub;
}

void hd_hub_set_engine(struct hd_hub *hub, struct hd_engine *engine)
{
	hub->engine = engine;
}

void hd_hub_free(struct hd_hub *hub)
{
	free(hub);
}

void hd_hub_policy(void *arg, const char *topic, struct hd_topic_policy *out)
{
	struct hd_hub *hub = arg;
	const struct hd_ns_opts *ns = hd_config_ns(hub->cfg, topic);
	out->max_age_ms = ns->retention_max_age_ms;
	out->max_count = ns->retention_max_count;
	out->dedup_window_ms = ns->dedup_window_ms;
	out->history = ns->history;
}

void hd_hub_on_event(void *arg, const char *topic, const struct hd_stored_event *ev)
{
	/* Live fan-out to subscribers attaches here. */
	(void)arg;
	(void)topic;
	(void)ev;
}

int hd_hub_publish(struct hd_hub *hub, struct hd_pub *p)
{
	return hd_engine_publish(hub->engine, p);
}

int hd_hub_read(struct hd_hub *hub, struct hd_read *r)
{
	return hd_engine_read(hub->engine, r);
}

int hd_hub_topic_op(struct hd_hub *hub, struct hd_topic_op *op)
{
	return hd_engine_topic_op(hub->engine, op);
}

bool hd_hub_ready(struct hd_hub *hub)
{
	return hub->engine && hub->engine->ops->ready(hub->engine);
}
