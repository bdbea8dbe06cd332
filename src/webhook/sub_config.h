/*
 * sub_config — the configuration of one webhook subscription: the body of
 * POST /v1/subscriptions parsed and checked (with a message for every
 * refusal) and its JSON form.
 * Layer: webhook (pure: no I/O, no clock). Any thread; the subscriptions
 * edge and webhook/ops.c and webhook/pump.c call it on the loop thread.
 *
 * The body (docs/api.md "Webhook subscriptions"):
 *   topic           a topic name, or a topic pattern (hub/topic_pattern.h:
 *                   "orders.*"): then every matching topic, existing or
 *                   created later, is delivered on its own (delivery.h)
 *   url             http:// or https://, at most HD_SUB_URL_MAX bytes; a
 *                   host that is a literal loopback/private address is
 *                   refused unless allow_private (names are checked when
 *                   the delivery connects, net/http_client.h)
 *   filter          {type, type_prefix, source, subject_prefix}, all
 *                   optional, AND-ed (consume/filter.h, which also matches)
 *   secret          "whsec_…" (optional: generated when absent)
 *   mode            "structured" (default) | "binary"
 *   ordered         true (default): one event in flight, in offset order
 *   concurrency     deliveries in flight when not ordered (1..100, 10)
 *   max_attempts    1..50 (8: the first try and 7 retries)
 *   retry_schedule  delays in ms between attempts (1..HD_SUB_SCHEDULE_MAX
 *                   entries of 0..HD_SUB_DELAY_MAX_MS); the last repeats
 *   start           "latest" (default) | "oldest" | {"offset": N >= 1} |
 *                   {"time": RFC 3339} (consume/start.h)
 *   pause_after     dead-lettered events in a row before the subscription
 *                   pauses (0 = never; default 5)
 * Unknown members are refused (a typo must not silently change delivery).
 */
#ifndef HD_WEBHOOK_SUB_CONFIG_H
#define HD_WEBHOOK_SUB_CONFIG_H

#include "consume/filter.h"
#include "core/err.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_buf;

#define HD_SUB_ID_PREFIX "sub_"
#define HD_SUB_ID_LEN 20                  /* "sub_" + 16 hex digits */
#define HD_SUB_URL_MAX 2048
#define HD_SUB_SCHEDULE_MAX 20
#define HD_SUB_DELAY_MAX_MS (7LL * 86400 * 1000)
#define HD_SUB_ATTEMPTS_MAX 50
#define HD_SUB_ATTEMPTS_DEFAULT 8
#define HD_SUB_CONCURRENCY_MAX 100
#define HD_SUB_CONCURRENCY_DEFAULT 10
#define HD_SUB_PAUSE_AFTER_DEFAULT 5
#define HD_SUB_PAUSE_AFTER_MAX 1000000
/* The default retry schedule in ms: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
#define HD_SUB_SCHEDULE_DEFAULT {5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000}

enum hd_sub_mode { HD_SUB_STRUCTURED = 0, HD_SUB_BINARY = 1 };

struct hd_sub_config {
	char topic[HD_TOPIC_NAME_MAX + 1];
	char url[HD_SUB_URL_MAX + 1];
	struct hd_filter filter;                     /* consume/filter.h */
	enum hd_sub_mode mode;
	bool ordered;
	uint32_t concurrency;                        /* 1 when ordered */
	uint32_t max_attempts;
	uint32_t schedule[HD_SUB_SCHEDULE_MAX];      /* ms */
	size_t nschedule;
	uint32_t pause_after;
};

enum hd_sub_start_kind {
	HD_SUB_START_LATEST = 0, HD_SUB_START_OLDEST, HD_SUB_START_OFFSET, HD_SUB_START_TIME
};

struct hd_sub_start {
	enum hd_sub_start_kind kind;
	uint64_t offset;                             /* OFFSET: the first to deliver */
	int64_t time_ms;                             /* TIME: the first stored at or after */
};

/* Fills c with every default (topic and url empty). */
void hd_sub_config_defaults(struct hd_sub_config *c);

/*
 * Parses and checks a POST /v1/subscriptions body (len bytes of JSON) into
 * c, start and secret (room for secret_len; "" when the body has none, else
 * a checked "whsec_" secret). Returns 0 or HD_EINVAL with err's message
 * naming the member and what it must be.
 */
int hd_sub_config_parse(const char *body, size_t len, bool allow_private, struct hd_sub_config *c,
		 struct hd_sub_start *start, char *secret, size_t secret_len, struct hd_error *err);

/*
 * Reads the config members of a JSON object in the form hd_sub_config_json
 * writes (for a durable record). Members the config does not know are
 * ignored. Returns 0 or HD_EINVAL with err.
 */
struct json_t;
int hd_sub_config_load(const struct json_t *obj, struct hd_sub_config *c, struct hd_error *err);

/* Appends the config as JSON object members, without the braces:
 * "topic":…,"url":…,"filter":{…},"mode":…,"ordered":…,"concurrency":…,
 * "max_attempts":…,"retry_schedule":[…],"pause_after":… . Returns 0 or
 * HD_ETOOBIG (b's ceiling). */
int hd_sub_config_json(struct hd_buf *b, const struct hd_sub_config *c);

/* Whether a url's host (as written) is a literal address the SSRF rule
 * refuses: a loopback/private IPv4 or IPv6 address, or "localhost". */
bool hd_sub_config_url_private(const char *url);

#endif
