/*
 * topic_name — what a topic name may be.
 * Layer: hub. Pure; any thread. Edges check names from URLs with it.
 *
 * A topic name is 1–HD_TOPIC_NAME_MAX (255) bytes of [A-Za-z0-9._~:@-]. The part before the
 * first ':' is its namespace ("rides:981" is in namespace "rides"); a name
 * without ':' is in the default namespace. "." and ".." are refused so a
 * name can never look like a path step.
 */
#ifndef HD_TOPIC_NAME_H
#define HD_TOPIC_NAME_H

#include "core/err.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stddef.h>

/* The dead-letter topic of topic T is T + this suffix (consume/deadletter.h
 * publishes there; topic patterns never match such a name). */
#define HD_TOPIC_NAME_DLQ_SUFFIX ".dlq"

/* Returns 0 or HD_EBADTOPIC with err saying why. */
int hd_topic_name_check(const char *name, size_t len, struct hd_error *err);

/* True when name's dead-letter topic (name + HD_TOPIC_NAME_DLQ_SUFFIX) is
 * still a valid topic name's length: consumers refuse or skip topics
 * whose dead letters could not be published. */
bool hd_topic_name_dlq_fits(const char *name);

#endif
