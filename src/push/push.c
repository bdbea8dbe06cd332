/*
 * push — see push.h. Translates the --push-* options into each provider's
 * options; the providers check their own values.
 */
#include "push/push.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "push/apns.h"
#include "push/fcm.h"
#include "push/webpush.h"

#include <stdlib.h>
#include <string.h>

int hd_push_new(uv_loop_t *loop, const struct hd_config *cfg, struct hd_push **out,
		struct hd_error *err)
{
	struct hd_push *p = hd_calloc(1, sizeof(*p));
	struct hd_push_provider_opts base = {
		.ca_file = cfg->push_ca_file,
		.allow_private = cfg->push_allow_private,
	};
	int rc = 0;

	*out = NULL;
	if (cfg->push_apns_key_file[0] || cfg->push_apns_key_id[0] || cfg->push_apns_team_id[0] ||
	    cfg->push_apns_topic[0]) {
		struct hd_apns_opts o = {
			.base = base,
			.key_file = cfg->push_apns_key_file,
			.key_id = cfg->push_apns_key_id,
			.team_id = cfg->push_apns_team_id,
			.topic = cfg->push_apns_topic,
			.sandbox = strcmp(cfg->push_apns_environment, "sandbox") == 0,
		};
		o.base.url = cfg->push_apns_url;
		rc = hd_apns_new(loop, &o, &p->apns, err);
	}
	if (rc == 0 && cfg->push_fcm_credentials_file[0]) {
		struct hd_fcm_opts o = {.base = base,
					.credentials_file = cfg->push_fcm_credentials_file};
		o.base.url = cfg->push_fcm_url;
		rc = hd_fcm_new(loop, &o, &p->fcm, err);
	}
	if (rc == 0 && (cfg->push_vapid_private_key_file[0] || cfg->push_vapid_subject[0])) {
		struct hd_webpush_opts o = {.base = base,
					    .vapid_key_file = cfg->push_vapid_private_key_file,
					    .subject = cfg->push_vapid_subject};
		rc = hd_webpush_new(loop, &o, &p->webpush, err);
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
	if (p->apns)
		p->apns->ops->free(p->apns);
	if (p->fcm)
		p->fcm->ops->free(p->fcm);
	if (p->webpush)
		p->webpush->ops->free(p->webpush);
	free(p);
}

int hd_push_check(const struct hd_config *cfg, struct hd_error *err)
{
	uv_loop_t loop;
	struct hd_push *p = NULL;
	int rc;

	uv_loop_init(&loop);
	rc = hd_push_new(&loop, cfg, &p, err);
	hd_push_free(p);
	uv_run(&loop, UV_RUN_DEFAULT); /* the HTTP clients' handles close */
	uv_loop_close(&loop);
	return rc;
}

struct hd_push_provider *hd_push_provider_of(struct hd_push *p, enum hd_device_platform platform)
{
	if (!p)
		return NULL;
	switch (platform) {
	case HD_DEVICE_APNS:
		return p->apns;
	case HD_DEVICE_FCM:
		return p->fcm;
	case HD_DEVICE_WEBPUSH:
		return p->webpush;
	}
	return NULL;
}

void hd_push_outcome(struct hd_push *p, const struct hd_device *dev, const struct hd_push_verdict *v)
{
	int64_t now = hd_now_ms();
	if (!p || !p->devices || !dev)
		return;
	if (v->kind == HD_PUSH_OK)
		hd_devices_mark_success(p->devices, dev->user, dev->id, now);
	else if (v->kind == HD_PUSH_INVALID)
		hd_devices_mark_invalid(p->devices, dev->user, dev->id, now, v->status, v->reason);
	else
		hd_devices_mark_failure(p->devices, dev->user, dev->id, now, v->status, v->reason);
}

struct hd_devices *hd_push_devices(struct hd_push *p)
{
	return p ? p->devices : NULL;
}
