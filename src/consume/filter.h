/*
 * filter — which events a consumer takes: its topic (a name or a pattern)
 * and the filter of a webhook or push subscription ({type, type_prefix,
 * source, subject_prefix}, all optional, AND-ed), parsed from their JSON
 * members, the filter written back as JSON and matched against an event's
 * attributes or its stored JSON.
 * Layer: consume (pure: no I/O, no clock). Any thread. Callers:
 * webhook/sub_config.c, webhook/pump.c, push/push_sub_config.c.
 *
 * An empty value means "any". type and source match exactly, type_prefix
 * and subject_prefix as byte prefixes; an event without a subject fails a
 * subject_prefix. Unknown members of the filter object are refused, naming
 * the member.
 */
#ifndef HD_FILTER_H
#define HD_FILTER_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>

struct hd_buf;
struct json_t;

#define HD_FILTER_VALUE_MAX 256 /* bytes of one filter value */

struct hd_filter {
	char type[HD_FILTER_VALUE_MAX + 1];            /* "" = any */
	char type_prefix[HD_FILTER_VALUE_MAX + 1];
	char source[HD_FILTER_VALUE_MAX + 1];
	char subject_prefix[HD_FILTER_VALUE_MAX + 1];
};

/*
 * Checks the "topic" member v (borrowed): a topic name (hub/topic_name.h)
 * or a pattern (hub/topic_pattern.h), short enough for its dead-letter
 * topic, copied into out (HD_TOPIC_NAME_MAX + 1 bytes). Returns 0 or
 * HD_EINVAL with err ("'topic' is required: …", "'topic': <why>").
 */
int hd_filter_topic(const struct json_t *v, char *out, struct hd_error *err);

/*
 * Parses the "filter" member f (borrowed; NULL or JSON null = empty) into
 * out, which the caller has zeroed. Returns 0 or HD_EINVAL with err naming
 * the member ("'filter.type' must be …", "'filter' has an unknown member
 * 'x'").
 */
int hd_filter_parse(const struct json_t *f, struct hd_filter *out, struct hd_error *err);

/* Appends f as a JSON object ({} when empty; empty values left out).
 * Returns 0 or HD_ETOOBIG (b's ceiling). */
int hd_filter_json(struct hd_buf *b, const struct hd_filter *f);

/* Whether the filter is empty (every event passes). */
bool hd_filter_empty(const struct hd_filter *f);

/* Whether an event with these attributes passes f; any may be NULL
 * (absent). */
bool hd_filter_match(const struct hd_filter *f, const char *type, const char *source,
		     const char *subject);

/* Whether the stored event JSON (len bytes) passes f. An event whose JSON
 * cannot be loaded passes only an empty filter. */
bool hd_filter_match_json(const struct hd_filter *f, const char *json, size_t len);

#endif
