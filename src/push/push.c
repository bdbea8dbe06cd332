/*
 * push — see push.h. Translates the --push-* options into each provider's
 * options (the providers check their own values) and turns verdicts into
 * registry marks, push.feedback events and metrics.
 */
#include "push/push.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/uuid.h"
#include "push/apns.h"
#include "push/fcm.h"
#include "push/webpush.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define NPLATFORMS 3

/* By enum hd_device_platform: the provider label of the metrics and the
 * feedback event's "platform". */
static const char *const platform_names[NPLATFORMS] = {"apns", "fcm", "webpush"};

struct hd_push {
	struct hd_hub *hub;                 /* borrowed; NULL for a check */
	struct hd_devices *devices;         /* borrowed; NULL for a check */
	/* owned, indexed by enum hd_device_platform; NULL when not configured */
	struct hd_push_provider *providers[NPLATFORMS];
	struct hd_push_provider *apns_sandbox; /* owned: APNs devices of environment sandbox */
	size_t feedback_inflight;           /* push.feedback publishes not done */
	bool freed;                         /* hd_push_free ran: the last publish frees p */
};

static struct hd_push_provider **slot(struct hd_push *p, enum hd_device_platform platform)
{
	return &p->providers[platform];
}

int hd_push_new(uv_loop_t *loop, const struct hd_config *cfg, struct hd_hub *hub,
		struct hd_devices *devices, struct hd_push **out, struct hd_error *err)
{
	struct hd_push *p = hd_calloc(1, sizeof(*p));
	struct hd_push_provider_opts base = {
		.ca_file = cfg->push_ca_file,
		.allow_private = cfg->push_allow_private,
		.max_inflight = (uint32_t)cfg->push_max_inflight,
	};
	int rc = 0;

	*out = NULL;
	p->hub = hub;
	p->devices = devices;
	if (cfg->push_apns_key_file[0] || cfg->push_apns_key_id[0] || cfg->push_apns_team_id[0] ||
	    cfg->push_apns_topic[0]) {
		struct hd_apns_opts o = {
			.base = base,
			.key_file = cfg->push_apns_key_file,
			.key_id = cfg->push_apns_key_id,
			.team_id = cfg->push_apns_team_id,
			.topic = cfg->push_apns_topic,
			.sandbox = false,
		};
		/* One instance per host: a device's environment picks it. */
		o.base.url = cfg->push_apns_url;
		rc = hd_apns_new(loop, &o, slot(p, HD_DEVICE_APNS), err);
		o.sandbox = true;
		o.base.url = cfg->push_apns_sandbox_url[0] ? cfg->push_apns_sandbox_url
							    : cfg->push_apns_url;
		if (rc == 0)
			rc = hd_apns_new(loop, &o, &p->apns_sandbox, err);
	}
	if (rc == 0 && cfg->push_fcm_credentials_file[0]) {
		struct hd_fcm_opts o = {.base = base,
					.credentials_file = cfg->push_fcm_credentials_file};
		o.base.url = cfg->push_fcm_url;
		rc = hd_fcm_new(loop, &o, slot(p, HD_DEVICE_FCM), err);
	}
	if (rc == 0 && (cfg->push_vapid_private_key_file[0] || cfg->push_vapid_subject[0])) {
		struct hd_webpush_opts o = {.base = base,
					    .vapid_key_file = cfg->push_vapid_private_key_file,
					    .subject = cfg->push_vapid_subject};
		rc = hd_webpush_new(loop, &o, slot(p, HD_DEVICE_WEBPUSH), err);
	}
	if (rc) {
		hd_push_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void hd_push_free(struct hd_push *p)
{
	if (!p)
		return;
	for (int i = 0; i < NPLATFORMS; i++) {
		if (p->providers[i])
			p->providers[i]->ops->free(p->providers[i]);
		p->providers[i] = NULL;
	}
	if (p->apns_sandbox)
		p->apns_sandbox->ops->free(p->apns_sandbox);
	p->apns_sandbox = NULL;
	p->freed = true;
	if (p->feedback_inflight == 0)
		free(p);
}

struct hd_push_provider *hd_push_provider_of(struct hd_push *p, enum hd_device_platform platform)
{
	if ((unsigned)platform >= NPLATFORMS)
		return NULL;
	return p->providers[platform];
}

struct hd_push_provider *hd_push_provider_for(struct hd_push *p, const struct hd_device *dev)
{
	if (dev->platform == HD_DEVICE_APNS && dev->environment == HD_DEVICE_ENV_SANDBOX)
		return p->apns_sandbox;
	return hd_push_provider_of(p, dev->platform);
}

struct hd_devices *hd_push_devices(struct hd_push *p)
{
	return p->devices;
}

const char *hd_push_vapid_public_key(struct hd_push *p)
{
	struct hd_push_provider *w = p->providers[HD_DEVICE_WEBPUSH];
	return w ? hd_webpush_public_key(w) : NULL;
}

/* ---- push.feedback ------------------------------------------------------- */

struct feedback {
	struct hd_push *p;
	struct hd_pub pub;
	struct hd_pub_item item;
	struct hd_event ev;
};

static void feedback_done(struct hd_pub *pub)
{
	struct feedback *f = pub->arg;
	struct hd_push *p = f->p;

	if (f->item.err)
		hd_log_warn("push_feedback_not_published topic=%s id=%s error=%d",
			    HD_PUSH_FEEDBACK_TOPIC, f->ev.id, f->item.err);
	else
		hd_metrics_inc(HD_M_push_feedback_events_total);
	hd_cloudevent_event_fini(&f->ev);
	free(f);
	p->feedback_inflight--;
	if (p->freed && p->feedback_inflight == 0)
		free(p);
}

/* The CloudEvent of dev made invalid by v into ev (fields owned). */
static void feedback_event(const struct hd_device *dev, const struct hd_push_verdict *v,
			   int64_t now_ms, struct hd_event *ev)
{
	char id[37], now[40];

	hd_uuid_v4(id);
	hd_clock_format_rfc3339(now_ms, now, sizeof(now));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:i}}",
			      "specversion", "1.0", "id", id, "source", HD_PUSH_FEEDBACK_SOURCE,
			      "type", HD_PUSH_FEEDBACK_TYPE, "time", now,
			      "datacontenttype", "application/json", "data",
			      "user", dev->user ? dev->user : "", "device", dev->id,
			      "platform", platform_names[dev->platform],
			      "reason", v->reason, "status", v->status);
	memset(ev, 0, sizeof(*ev));
	ev->json = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!ev->json) { /* only memory can fail here: every string is ours and short */
		hd_log_error("push_feedback_encode_failed msg=\"out of memory\"");
		abort();
	}
	ev->json_len = strlen(ev->json);
	ev->id = hd_strdup(id);
	ev->source = hd_strdup(HD_PUSH_FEEDBACK_SOURCE);
	ev->type = hd_strdup(HD_PUSH_FEEDBACK_TYPE);
	ev->time_ms = now_ms;
}

static void feedback_publish(struct hd_push *p, const struct hd_device *dev,
			     const struct hd_push_verdict *v, int64_t now_ms)
{
	static long long last_ms;

	if (!p->hub)
		return;
	if (p->feedback_inflight >= HD_PUSH_FEEDBACK_INFLIGHT_MAX) {
		if (hd_log_ratelimited(&last_ms))
			hd_log_warn("push_feedback_dropped user=%s device=%s inflight=%zu "
				    "msg=\"too many push.feedback events wait for the store\"",
				    dev->user ? dev->user : "", dev->id, p->feedback_inflight);
		return;
	}
	struct feedback *f = hd_calloc(1, sizeof(*f));
	f->p = p;
	feedback_event(dev, v, now_ms, &f->ev);
	f->item.topic = HD_PUSH_FEEDBACK_TOPIC;
	f->item.event = &f->ev;
	f->item.stored_ms = now_ms;
	f->pub.items = &f->item;
	f->pub.n = 1;
	f->pub.done = feedback_done;
	f->pub.arg = f;
	p->feedback_inflight++;
	int rc = hd_hub_publish(p->hub, &f->pub);
	if (rc) {
		f->item.err = rc;
		feedback_done(&f->pub);
	}
}

/* ---- outcomes ------------------------------------------------------------ */

void hd_push_outcome(struct hd_push *p, const struct hd_device *dev, const struct hd_push_verdict *v)
{
	int64_t now = hd_now_ms();

	hd_metrics_add_at(HD_M_push_sends_total, dev->platform, v->kind, 1);
	if (!p->devices || !dev->user)
		return;
	switch (v->kind) {
	case HD_PUSH_OK:
		hd_devices_mark_success(p->devices, dev->user, dev->id, now);
		break;
	case HD_PUSH_INVALID:
		hd_log_info("push_device_invalid user=%s device=%s platform=%s status=%d reason=\"%s\"",
			    dev->user, dev->id, platform_names[dev->platform], v->status,
			    v->reason);
		/* The event first: marking may be the last use of dev. */
		feedback_publish(p, dev, v, now);
		hd_devices_mark_invalid(p->devices, dev->user, dev->id, now, v->status, v->reason);
		break;
	case HD_PUSH_RETRY:
		if (!v->count_attempt)
			break;
		/* fall through */
	case HD_PUSH_REFUSED:
	case HD_PUSH_AUTH:
	case HD_PUSH_THROTTLED:
		hd_devices_mark_failure(p->devices, dev->user, dev->id, now, v->status,
					v->reason[0] ? v->reason : hd_provider_verdict_name(v->kind));
		break;
	}
}
