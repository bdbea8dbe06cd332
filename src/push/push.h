/*
 * push — the push providers herald is configured with: APNs, FCM and Web
 * Push, each built from its --push-* options only when they are given.
 * Layer: push. Loop thread. Callers: main.c (hd_push_check at start, so a
 * bad key file is a startup error), the push consumer later (hd_push_new,
 * then the provider of a device's platform), tests.
 *
 * A provider is configured when: APNs — any of --push-apns-key-file,
 * -key-id, -team-id, -topic is set (then all four must be); FCM —
 * --push-fcm-credentials-file is set; Web Push —
 * --push-vapid-private-key-file is set (then --push-vapid-subject must be;
 * a subject alone is an error too). All share --push-ca-file and
 * --push-allow-private.
 */
#ifndef HD_PUSH_PUSH_H
#define HD_PUSH_PUSH_H

#include "core/config.h"
#include "core/err.h"
#include "push/devices.h"
#include "push/provider.h"

#include <uv.h>

struct hd_push {
	struct hd_push_provider *apns;    /* owned, NULL when not configured */
	struct hd_push_provider *fcm;     /* owned, NULL when not configured */
	struct hd_push_provider *webpush; /* owned, NULL when not configured */
	struct hd_devices *devices;       /* borrowed (main.c sets it), or NULL */
};

/* Builds the configured providers on loop (borrowed for their life).
 * Returns 0 with *out owned (hd_push_free), or HD_ECONFIG with err naming
 * the option and what is wrong. */
int hd_push_new(uv_loop_t *loop, const struct hd_config *cfg, struct hd_push **out,
		struct hd_error *err);

/* Frees the providers (their loop handles close on the loop's next run,
 * which must follow) and p. NULL is a no-op. */
void hd_push_free(struct hd_push *p);

/* Builds and frees the providers on a loop of its own: whether the push
 * options are usable. 0 or HD_ECONFIG with err. */
int hd_push_check(const struct hd_config *cfg, struct hd_error *err);

/* The provider of platform's devices. Returns borrowed; NULL: not configured. */
struct hd_push_provider *hd_push_provider_of(struct hd_push *p, enum hd_device_platform platform);

/* Acts on a send's verdict for dev: marks the device success (OK),
 * failure (REFUSED, RETRY, AUTH, THROTTLED) or invalid (INVALID). */
void hd_push_outcome(struct hd_push *p, const struct hd_device *dev, const struct hd_push_verdict *v);

/* The device registry, or NULL. Returns borrowed. */
struct hd_devices *hd_push_devices(struct hd_push *p);

#endif
