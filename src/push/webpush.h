/*
 * webpush — the Web Push provider (RFC 8030): one POST to the
 * subscription's endpoint per message, encrypted with RFC 8291 aes128gcm
 * (push/webpush_crypto.c) and signed with RFC 8292 VAPID (push/vapid.c).
 * Layer: push. Loop thread. Callers: push/push.c (from
 * --push-vapid-private-key-file and --push-vapid-subject), tests.
 *
 * Request headers: TTL (seconds until the message's expiration, else
 * HD_WEBPUSH_TTL_DEFAULT_S), Urgency (low | normal | high, RFC 8030 §5.3),
 * Topic (the collapse id when it is 1 to 32 base64url characters, §5.4;
 * otherwise none), Content-Encoding: aes128gcm, Content-Type:
 * application/octet-stream, Authorization: vapid t=…, k=… (per origin,
 * cached). A 401/403 answer gets one freshly signed token and one more try;
 * then AUTH with an alarm. An endpoint the SSRF rule refuses (a private or
 * loopback address) makes the subscription INVALID.
 *
 * Endpoints must be https://; plain http:// only to localhost, 127.0.0.1 or
 * [::1] and only with allow_private (--push-allow-private, for tests).
 */
#ifndef HD_PUSH_WEBPUSH_H
#define HD_PUSH_WEBPUSH_H

#include "core/err.h"
#include "push/provider.h"

#include <uv.h>

#define HD_WEBPUSH_TTL_DEFAULT_S (28 * 24 * 3600) /* no expiration: four weeks */
#define HD_WEBPUSH_TOPIC_MAX 32

struct hd_webpush_opts {
	struct hd_push_provider_opts base; /* base.url is not used */
	const char *vapid_key_file;    /* borrowed during new */
	const char *subject;           /* "mailto:…" or "https:…"; copied */
};

/* Builds the provider. Returns 0 with *out owned (out->ops->free), or
 * HD_ECONFIG with err (the key file, the subject, a CA file). */
int hd_webpush_new(uv_loop_t *loop, const struct hd_webpush_opts *o,
		   struct hd_push_provider **out, struct hd_error *err);

/* The VAPID public key (base64url), for GET /v1/push/vapid-public-key.
 * Returns borrowed, valid until the provider is freed. */
const char *hd_webpush_public_key(const struct hd_push_provider *p);

#endif
