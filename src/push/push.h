/*
 * push — the push module: the providers herald is configured with (APNs,
 * FCM and Web Push, each built from its --push-* options only when they are
 * given), the device registry it acts on, and what a send's verdict does to
 * a device (registry state, push.feedback event, metrics).
 * Layer: push. Loop thread. Callers: main.c (life), edge/push_http.c (the
 * test send), the push delivery (a device's provider, the outcome), tests.
 *
 * A provider is configured when: APNs — any of --push-apns-key-file,
 * -key-id, -team-id, -topic is set (then all four must be); FCM —
 * --push-fcm-credentials-file is set; Web Push —
 * --push-vapid-private-key-file is set (then --push-vapid-subject must be;
 * a subject alone is an error too). All share --push-ca-file,
 * --push-allow-private and --push-max-inflight (sends in flight per
 * provider).
 *
 * push.feedback: every INVALID verdict publishes one CloudEvent to the topic
 * HD_PUSH_FEEDBACK_TOPIC, type HD_PUSH_FEEDBACK_TYPE, source
 * HD_PUSH_FEEDBACK_SOURCE, data {"user","device","platform","reason",
 * "status"}, so the application can drop the token on its side too. At most
 * HD_PUSH_FEEDBACK_INFLIGHT_MAX such publishes wait for the store; past it
 * one is dropped with a log line (the device is still marked invalid).
 */
#ifndef HD_PUSH_PUSH_H
#define HD_PUSH_PUSH_H

#include "core/config.h"
#include "core/err.h"
#include "hub/hub.h"
#include "push/devices.h"
#include "push/provider.h"

#include <uv.h>

#define HD_PUSH_FEEDBACK_TOPIC "push.feedback"
#define HD_PUSH_FEEDBACK_TYPE "herald.push.invalidated"
#define HD_PUSH_FEEDBACK_SOURCE "/herald/push"
#define HD_PUSH_FEEDBACK_INFLIGHT_MAX 1024

struct hd_push;

/* Builds the configured providers on loop (borrowed for their life); hub
 * and devices are borrowed for p's life (NULL both for a check that sends
 * nothing). Returns 0 with *out owned (hd_push_free), or HD_ECONFIG with
 * err naming the option and what is wrong. */
int hd_push_new(uv_loop_t *loop, const struct hd_config *cfg, struct hd_hub *hub,
		struct hd_devices *devices, struct hd_push **out, struct hd_error *err);

/* Frees the providers (cancelling their sends: no done() runs; their loop
 * handles close on the loop's next run, which must follow) and p (once its
 * push.feedback publishes have finished). NULL is a no-op. */
void hd_push_free(struct hd_push *p);

/* Returns the provider for a platform, or NULL when it is not configured.
 * Borrowed for the push module's life. */
struct hd_push_provider *hd_push_provider_of(struct hd_push *p, enum hd_device_platform platform);
/* The provider that serves dev: its platform's; for APNs the instance of
 * the device's environment (production or sandbox host). NULL when not
 * configured. Borrowed for the push module's life. */
struct hd_push_provider *hd_push_provider_for(struct hd_push *p, const struct hd_device *dev);

/* Acts on a send's verdict for dev: marks it success / failure / invalid in
 * the registry (an INVALID verdict makes it invalid and publishes one
 * CloudEvent to the topic "push.feedback"), counts the metrics
 * (herald_push_sends_total{provider,result}). dev and v are borrowed for
 * the call. A RETRY that was never processed (count_attempt false) leaves
 * the device as it is. */
void hd_push_outcome(struct hd_push *p, const struct hd_device *dev, const struct hd_push_verdict *v);

/* The registry the module was given. Borrowed. */
struct hd_devices *hd_push_devices(struct hd_push *p);

/* The Web Push application server key (base64url), or NULL without Web
 * Push. Borrowed for p's life. */
const char *hd_push_vapid_public_key(struct hd_push *p);

#endif
