/*
 * topic_pattern — what a topic pattern may be, and which topics it matches.
 * Layer: hub. Pure; any thread. Webhook subscriptions and pull consumer
 * groups accept a pattern where they accept a topic name.
 *
 * A pattern is a non-empty topic-name prefix followed by one trailing '*':
 * "orders.*", "orders:*", "tenant-7*". '*' is not a topic-name character
 * (topic_name.h), so a trailing '*' cannot be confused with a name; a '*'
 * anywhere else is refused, and so is a lone "*" (it would match every
 * topic of every namespace, which no access scope short of "all" covers).
 *
 * A pattern matches every topic whose name starts with its prefix (the '*'
 * matches zero or more characters), except dead-letter topics, the names
 * ending in ".dlq": a subscription on "orders.*" must never receive the
 * dead letters of its own "orders.x" children.
 */
#ifndef HD_TOPIC_PATTERN_H
#define HD_TOPIC_PATTERN_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>

/* True when s ends with '*', i.e. is meant as a pattern (valid or not);
 * false for NULL. Callers use it to pick hd_topic_pattern_check over
 * hd_topic_name_check. */
bool hd_topic_pattern_is(const char *s);

/* Returns 0 when s is a valid pattern, else HD_EBADTOPIC with err (may be
 * NULL) saying why. */
int hd_topic_pattern_check(const char *s, struct hd_error *err);

/* True when topic matches pattern (a pattern that passed
 * hd_topic_pattern_check): topic starts with the prefix and is not a
 * dead-letter topic. */
bool hd_topic_pattern_match(const char *pattern, const char *topic);

/* True when topic is a dead-letter topic (ends with
 * HD_TOPIC_NAME_DLQ_SUFFIX). */
bool hd_topic_pattern_is_dlq(const char *topic);

/* Copies the prefix of pattern (all but the trailing '*') into out, always
 * NUL-terminated when out_len > 0. Returns the prefix length (as snprintf:
 * the copy is truncated when the return is >= out_len). */
size_t hd_topic_pattern_prefix(const char *pattern, char *out, size_t out_len);

#endif
