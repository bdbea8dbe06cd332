/*
 * payload — the message one push carries: from a stored event, its push
 * subscription's mode and ttl, the event's push extension attributes and
 * the device's platform, the struct hd_push_message a provider sends
 * (push/provider.h), or the reason no message goes out.
 * Layer: push (pure: no I/O, no clock — now is passed in). Any thread.
 * Callers: the push consumer (one build per event and platform; the same
 * message serves every device of that platform), tests.
 *
 * The payload. Every push carries {"herald":{"topic","offset","epoch",
 * "id","type"}} (where the app reads the event from herald) and, unless the
 * mode is doorbell, the event's "data" (or "data_base64") byte for byte
 * when the whole payload still fits the platform: HD_PUSH_PAYLOAD_MAX
 * (4,096) bytes for APNs and FCM, HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX (3,993)
 * for Web Push. When it does not fit, data is left out (data_left_out),
 * never truncated; when even that does not fit (a huge id or type, say),
 * the result is TOO_BIG.
 *
 *   mode      APNs                        FCM (message members)        Web Push (plaintext)
 *   alert     {"aps":{"alert":{title,     {"notification":{title,      {"herald","data",
 *             body},"badge","sound"},     body},"android":{"notifica-   "notification":{title,
 *             "herald","data"}            tion":{sound,notification_   body,badge,sound}}
 *             push type alert             count}},"data":{…}}
 *   silent    {"aps":{"content-available" {"data":{"herald":"<JSON>",  {"herald","data"}
 *             :1},"herald","data"}        "data":"<value>"}}
 *             push type background, priority 5 (msg.mode SILENT)
 *   doorbell  silent with herald only     {"data":{"herald":"<JSON>"}} {"herald"}
 *
 * FCM data values are strings, as FCM requires: "herald" is the JSON text
 * of the herald object, "data" the event's data as is when it is a JSON
 * string, else its JSON text. An alert's body is pushbody, else the
 * event's subject, else its type (each only when at most
 * HD_PUSH_PAYLOAD_BODY_MAX bytes); its title is pushtitle, else none.
 *
 * Event extension attributes that override (CloudEvents extensions are
 * flat scalars; in binary mode every value arrives as a string):
 *   pushmode      "alert" | "silent" | "doorbell": the subscription's mode
 *   pushurgency   "high" | "normal" | "low" (default normal): Web Push
 *                 Urgency; a low alert goes with APNs priority 5 and FCM
 *                 priority normal
 *   pushcollapse  1..HD_PUSH_PAYLOAD_COLLAPSE_MAX bytes (a string or an
 *                 integer): apns-collapse-id, FCM collapse_key, Web Push
 *                 Topic; absent → the event's subject when it fits
 *   pushtitle     1..HD_PUSH_PAYLOAD_TITLE_MAX bytes
 *   pushbody      1..HD_PUSH_PAYLOAD_BODY_MAX bytes
 *   pushbadge     a whole number 0..2^31-1 (an integer or a string of digits)
 *   pushsound     1..HD_PUSH_PAYLOAD_SOUND_MAX bytes
 * A value of the wrong type or out of these bounds is ignored, never a
 * failed delivery (a producer's typo must not cost the push): the override
 * is dropped, counted in nignored and named in ignored ("pushurgency: must
 * be high, normal or low"). pushtitle, pushbody, pushbadge and pushsound
 * matter only for an alert.
 *
 * Expiry: the event's expires_ms (its expirytime, ttl attribute or
 * Herald-TTL) and, when the subscription has a ttl, the event's stored time
 * + ttl; the earlier of the two, rounded up to a second, is
 * msg.expiration (APNs apns-expiration, FCM android.ttl, Web Push TTL). An
 * event expired at now is EXPIRED: skipped, no message.
 */
#ifndef HD_PUSH_PAYLOAD_H
#define HD_PUSH_PAYLOAD_H

#include "engine/engine_types.h"
#include "push/provider.h"
#include "push/push_sub_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_PUSH_PAYLOAD_WEBPUSH_MAX HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX
#define HD_PUSH_PAYLOAD_COLLAPSE_MAX 64  /* APNs' limit on apns-collapse-id */
#define HD_PUSH_PAYLOAD_TITLE_MAX 256
#define HD_PUSH_PAYLOAD_BODY_MAX 1024
#define HD_PUSH_PAYLOAD_SOUND_MAX 256
#define HD_PUSH_PAYLOAD_IGNORED_MAX 512  /* bytes of the ignored note, NUL included */

enum hd_push_payload_platform { HD_PUSH_PAYLOAD_APNS = 0, HD_PUSH_PAYLOAD_FCM, HD_PUSH_PAYLOAD_WEBPUSH };

enum hd_push_payload_result {
	HD_PUSH_PAYLOAD_OK = 0,    /* msg is ready to send */
	HD_PUSH_PAYLOAD_EXPIRED,   /* skip: the event expired at now */
	HD_PUSH_PAYLOAD_TOO_BIG,   /* even without data the payload exceeds the platform's limit */
	HD_PUSH_PAYLOAD_UNREADABLE /* the stored event JSON does not load as an object */
};

struct hd_push_payload_in {
	const struct hd_stored_event *ev; /* borrowed during build */
	const char *topic;             /* the event's topic; borrowed during build */
	const char *epoch;             /* the topic's epoch; borrowed during build */
	enum hd_push_sub_mode mode;    /* the subscription's */
	int64_t ttl_ms;                /* the subscription's; 0 = none */
	enum hd_push_payload_platform platform;
	int64_t now_ms;                /* wall clock, ms since the epoch */
};

struct hd_push_payload {
	enum hd_push_payload_result result;
	enum hd_push_sub_mode mode;    /* after pushmode */
	struct hd_push_message msg;    /* OK: payload and collapse_id point into this struct */
	bool data_left_out;            /* the event has data that did not fit */
	unsigned nignored;             /* overrides ignored */
	char ignored[HD_PUSH_PAYLOAD_IGNORED_MAX]; /* "name: why; …" ("" when none) */
	char collapse[HD_PUSH_PAYLOAD_COLLAPSE_MAX + 1];
	char *text;                    /* owned: the payload, NUL-terminated */
};

/* Builds out from in; returns out->result. Free out with
 * hd_push_payload_fini whatever the result. */
enum hd_push_payload_result hd_push_payload_build(const struct hd_push_payload_in *in,
						  struct hd_push_payload *out);

/* Frees what out owns (the message's payload with it). */
void hd_push_payload_fini(struct hd_push_payload *out);

/* "ok", "skip: expired", "too big", "unreadable". */
const char *hd_push_payload_result_name(enum hd_push_payload_result r);

#endif
