/*
 * apns — the Apple Push Notification service provider: token-based
 * authentication and POST /3/device/{token} over HTTP/2.
 * Layer: push. Loop thread. Callers: push/push.c (builds it from the
 * --push-apns-* options), tests.
 *
 * The provider token (Apple, "Establishing a token-based connection to
 * APNs") is an ES256 JWS with header {"alg":"ES256","kid":<key id>} and
 * claims {"iss":<team id>,"iat":<seconds>}, signed with the .p8 key. It is
 * reused for HD_APNS_TOKEN_REUSE_S (APNs refuses tokens older than an hour)
 * and never signed again sooner than HD_APNS_TOKEN_RENEW_MIN_S after the
 * last one (APNs answers 429 TooManyProviderTokenUpdates otherwise). A 403
 * answer (ExpiredProviderToken, InvalidProviderToken) gets one new token and
 * one more try when the renewal floor allows (or another send renewed
 * meanwhile); then the verdict is AUTH with an alarm.
 *
 * Each request carries apns-push-type (alert, or background for a silent
 * push), apns-priority (10 for an alert, 5 for a low-urgency alert and for
 * background, which APNs requires), apns-topic (the bundle id),
 * apns-expiration (when the message has one), apns-collapse-id (<= 64
 * bytes); the payload is the caller's JSON (<= 4,096 bytes). The answer's
 * apns-id becomes the send's id.
 */
#ifndef HD_PUSH_APNS_H
#define HD_PUSH_APNS_H

#include "core/err.h"
#include "push/provider.h"

#include <uv.h>

#define HD_APNS_TOKEN_REUSE_S (50 * 60)
#define HD_APNS_TOKEN_RENEW_MIN_S (20 * 60)
#define HD_APNS_ID_MAX 64          /* bytes of a key id or team id */
#define HD_APNS_TOPIC_MAX 255      /* bytes of a bundle id (+ suffix) */
#define HD_APNS_DEVICE_TOKEN_MAX 200 /* hex digits of a device token */
#define HD_APNS_COLLAPSE_ID_MAX 64
#define HD_APNS_HOST_PRODUCTION "https://api.push.apple.com"
#define HD_APNS_HOST_SANDBOX "https://api.sandbox.push.apple.com"

struct hd_apns_opts {
	struct hd_push_provider_opts base; /* base.url overrides the host (--push-apns-url) */
	const char *key_file;          /* the .p8 (PKCS#8 EC P-256); borrowed during new */
	const char *key_id;            /* 10-character key id; copied */
	const char *team_id;           /* copied */
	const char *topic;             /* the bundle id; copied */
	bool sandbox;                  /* api.sandbox.push.apple.com */
	uint32_t token_reuse_ms;       /* 0 = HD_APNS_TOKEN_REUSE_S (tests shorten these) */
	uint32_t token_renew_min_ms;   /* 0 = HD_APNS_TOKEN_RENEW_MIN_S */
};

/*
 * Builds the provider. Returns 0 with *out owned (out->ops->free), or
 * HD_ECONFIG with err naming what is wrong: the key file (missing,
 * unreadable, not an EC P-256 private key), an empty or over-long key id,
 * team id or topic, a URL that is not https://, a CA file.
 */
int hd_apns_new(uv_loop_t *loop, const struct hd_apns_opts *o, struct hd_push_provider **out,
		struct hd_error *err);

#endif
