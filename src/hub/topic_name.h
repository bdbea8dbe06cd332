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

#include <stddef.h>

/* The old name of HD_TOPIC_NAME_MAX (engine/engine_types.h), kept only until
 * edge/api.c and hub/topic_pattern.c (edited on other branches of issue 15)
 * say HD_TOPIC_NAME_MAX; delete it then. */
#define HD_TOPIC_NAME_LEN_MAX HD_TOPIC_NAME_MAX

/* Returns 0 or HD_EBADTOPIC with err saying why. */
int hd_topic_name_check(const char *name, size_t len, struct hd_error *err);

#endif
