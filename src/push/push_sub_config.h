/*
 * push_sub_config — the configuration of one push subscription (which
 * events become pushes, to whose devices, how): the body of
 * POST /v1/push/subscriptions parsed and checked with a message for every
 * refusal, and its JSON form (for GET and the durable record).
 * Layer: push (pure: no I/O, no clock). Any thread; the push subscription
 * edge and the push consumer call it on the loop thread.
 *
 * The body (docs/push.md):
 *   topic           required: a topic name, or a pattern (hub/topic_pattern.h,
 *                   "user:*") whose matching topics are each delivered
 *   to              required: "user" (events of user:{id} go to user id's
 *                   devices; the topic must then be user:{id} or a pattern
 *                   whose prefix starts with "user:") | "followers" (every
 *                   device whose registration lists the event's topic)
 *   filter          {type, type_prefix, source, subject_prefix}, as webhooks
 *                   (consume/filter.h)
 *   mode            "alert" (default: visible) | "silent" (background, data
 *                   only) | "doorbell" (silent, only where to read)
 *   ttl             how long after the event was stored a push for it is
 *                   still worth delivering: a duration ("30s", "24h", "7d",
 *                   "500ms", or a whole number of seconds), 1 s to 28 days
 *                   (the longest FCM and Web Push keep a message); null or
 *                   absent = only the event's own expirytime/ttl
 *   skip_if_seen    {"cursor": <user cursor name>, "wait": <duration>}: wait
 *                   `wait` (0 to 1 h, default 3 s), then push only if the
 *                   user's cursor is still before the event's offset
 *   skip_if_online  true: skip when the user had a live connection following
 *                   the topic when the event was delivered (default false)
 *   max_attempts    1..HD_PUSH_SUB_ATTEMPTS_MAX (default 5)
 *   start           "latest" (default) | "oldest" | {"offset": N >= 1} |
 *                   {"time": RFC 3339} (consume/start.h)
 * Unknown members are refused, naming the member, at every level (a typo
 * must not silently change who gets woken up).
 */
#ifndef HD_PUSH_SUB_CONFIG_H
#define HD_PUSH_SUB_CONFIG_H

#include "consume/filter.h"
#include "consume/start.h"
#include "core/err.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_buf;
struct json_t;

#define HD_PUSH_SUB_TTL_MIN_MS 1000LL
#define HD_PUSH_SUB_TTL_MAX_MS (28LL * 86400 * 1000)
#define HD_PUSH_SUB_WAIT_MAX_MS (3600LL * 1000)
#define HD_PUSH_SUB_WAIT_DEFAULT_MS 3000LL
#define HD_PUSH_SUB_CURSOR_MAX 64   /* a user cursor's name (edge/cursors.h) */
#define HD_PUSH_SUB_ATTEMPTS_MAX 50
#define HD_PUSH_SUB_ATTEMPTS_DEFAULT 5
#define HD_PUSH_SUB_DURATION_TEXT_MAX 24 /* bytes of a duration's text, NUL included */

enum hd_push_sub_to { HD_PUSH_SUB_TO_USER = 0, HD_PUSH_SUB_TO_FOLLOWERS };

/* What a push looks like on the device (push/payload.h says per platform). */
enum hd_push_sub_mode { HD_PUSH_SUB_ALERT = 0, HD_PUSH_SUB_SILENT, HD_PUSH_SUB_DOORBELL };

struct hd_push_sub_config {
	char topic[HD_TOPIC_NAME_MAX + 1];
	enum hd_push_sub_to to;
	struct hd_filter filter;
	enum hd_push_sub_mode mode;
	int64_t ttl_ms;                              /* 0 = none */
	bool skip_if_seen;
	char seen_cursor[HD_PUSH_SUB_CURSOR_MAX + 1]; /* skip_if_seen: the cursor's name */
	int64_t seen_wait_ms;                        /* skip_if_seen: how long to wait */
	bool skip_if_online;
	uint32_t max_attempts;
};

/* Fills c with every default (topic empty, to USER). */
void hd_push_sub_config_defaults(struct hd_push_sub_config *c);

/*
 * Parses and checks a POST /v1/push/subscriptions body (len bytes of JSON)
 * into c and start. Returns 0 or HD_EINVAL with err's message naming the
 * member and what it must be.
 */
int hd_push_sub_config_parse(const char *body, size_t len, struct hd_push_sub_config *c,
			     struct hd_start *start, struct hd_error *err);

/* Reads the config members of a JSON object (borrowed) in the form
 * hd_push_sub_config_json writes (a durable record); other members are
 * ignored. Returns 0 or HD_EINVAL with err. */
int hd_push_sub_config_load(const struct json_t *obj, struct hd_push_sub_config *c,
			    struct hd_error *err);

/* Appends the config as JSON object members, without the braces:
 * "topic":…,"to":…,"filter":{…},"mode":…,"ttl":"24h"|null,
 * "skip_if_seen":{"cursor":…,"wait":"3s"}|null,"skip_if_online":…,
 * "max_attempts":… . Returns 0 or HD_ETOOBIG (b's ceiling). */
int hd_push_sub_config_json(struct hd_buf *b, const struct hd_push_sub_config *c);

/* The mode named s ("alert", "silent", "doorbell") into *out: 0, or
 * HD_EINVAL for any other string (or NULL). */
int hd_push_sub_config_mode_parse(const char *s, enum hd_push_sub_mode *out);

/* "alert", "silent" or "doorbell". */
const char *hd_push_sub_config_mode_name(enum hd_push_sub_mode m);

/* A duration from JSON (borrowed): a string of digits with a unit ms, s, m,
 * h or d ("24h"), or a whole number of seconds. 0 with *ms, or HD_EINVAL. */
int hd_push_sub_config_duration(const struct json_t *v, int64_t *ms);

/* Writes ms as the shortest exact duration text ("24h", "90s", "1500ms")
 * into out (HD_PUSH_SUB_DURATION_TEXT_MAX bytes). Returns out. */
const char *hd_push_sub_config_duration_text(int64_t ms, char *out);

#endif
