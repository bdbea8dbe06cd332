/*
 * answer — what a push service's answer means: pure functions from an HTTP
 * answer (status, body, Retry-After) to a verdict (push/provider.h), one per
 * service, and the verdict of a request that got no answer.
 * Layer: push (pure: no I/O; bodies are JSON parsed with jansson). Any thread.
 * Callers: push/apns.c, push/fcm.c, push/webpush.c; tests and the fuzz target
 * tests/fuzz/fuzz_push_answer.c.
 *
 * APNs (Apple, "Handling notification responses from APNs"): body
 * {"reason":"…"[,"timestamp":ms]} on an error.
 *   200                                        OK
 *   410 (any reason; Unregistered)             INVALID
 *   400 BadDeviceToken, DeviceTokenNotForTopic INVALID
 *   400 other, 404, 405, 413                   REFUSED (the message)
 *   403 (ExpiredProviderToken, InvalidProviderToken, MissingProviderToken, …)
 *                                              AUTH
 *   429 TooManyProviderTokenUpdates            THROTTLED, provider-wide
 *   429 other (TooManyRequests)                THROTTLED, this device
 *   5xx, anything else                         RETRY
 * FCM HTTP v1 (Firebase, "FCM error codes"): body {"error":{"code","message",
 * "status","details":[{"@type":"…FcmError","errorCode":"…"},
 * {"@type":"…BadRequest","fieldViolations":[{"field":"message.token"}]}]}};
 * the FcmError errorCode wins over the status text.
 *   2xx                                        OK
 *   UNREGISTERED (404), SENDER_ID_MISMATCH     INVALID
 *   INVALID_ARGUMENT (400) about the token (a field violation on
 *   message.token, or a message naming the registration token)  INVALID
 *   INVALID_ARGUMENT other, THIRD_PARTY_AUTH_ERROR, other 4xx     REFUSED
 *   401 UNAUTHENTICATED, 403 PERMISSION_DENIED AUTH
 *   429 QUOTA_EXCEEDED                         THROTTLED, provider-wide
 *   5xx, UNAVAILABLE, INTERNAL, anything else  RETRY
 * Web Push (RFC 8030 §5, §8.4; RFC 8292 §4):
 *   2xx                                        OK
 *   404, 410                                   INVALID
 *   401, 403                                   AUTH (VAPID refused)
 *   429                                        THROTTLED, this device
 *   other 4xx (400, 413, …)                    REFUSED
 *   5xx, anything else                         RETRY
 * Retry-After (retry_after_ms >= 0) becomes after_ms of RETRY and THROTTLED;
 * otherwise after_ms is -1. The reason is the service's reason text (cut
 * to fit, printable ASCII only) or "HTTP <status>".
 */
#ifndef HD_PUSH_ANSWER_H
#define HD_PUSH_ANSWER_H

#include "push/provider.h"

#include <stddef.h>
#include <stdint.h>

/* Classify an APNs answer; body[0, len) need not be NUL-terminated. */
void hd_answer_apns(int status, const char *body, size_t len, int64_t retry_after_ms,
		    struct hd_push_verdict *v);

/* Classify an FCM HTTP v1 messages:send answer. */
void hd_answer_fcm(int status, const char *body, size_t len, int64_t retry_after_ms,
		   struct hd_push_verdict *v);

/* Classify a Web Push service's answer. */
void hd_answer_webpush(int status, const char *body, size_t len, int64_t retry_after_ms,
		       struct hd_push_verdict *v);

/* The verdict of a request that got no answer (an hd_http_call's err not 0):
 * RETRY counting an attempt, or not when stream_refused; REFUSED for
 * HD_EFORBIDDEN (a destination the SSRF rule refuses) and HD_EINVAL (a bad
 * URL). reason is the transport's message. */
void hd_answer_transport(int err, bool stream_refused, const char *reason,
			 struct hd_push_verdict *v);

#endif
