/*
 * dlq — publishing a dead letter: the event of proto/deadletter.h, to the
 * original topic's dead-letter topic ({topic}.dlq), through the hub. The
 * one place the pull groups (edge/group_part.c, for exact and pattern
 * groups) and the webhooks (webhook/delivery.c) hand an undeliverable event
 * over.
 * Layer: hub. Loop thread.
 */
#ifndef HD_HUB_DLQ_H
#define HD_HUB_DLQ_H

#include "hub/hub.h"
#include "proto/deadletter.h"

#include <stdint.h>

/* The dead-letter topic of topic T is T + this suffix. */
#define HD_DLQ_SUFFIX ".dlq"

/* err is 0 once the dead letter is committed, else the HD_E* code of the
 * publish; offset and tag are the ones given to hd_dlq_publish. */
typedef void (*hd_dlq_done_fn)(void *arg, uint64_t offset, uint64_t tag, int err);

/* Publishes d's event to d->topic + HD_DLQ_SUFFIX (d and what it points
 * to are copied before the call returns). done runs exactly once, later,
 * or before the call returns when the publish cannot start. */
void hd_dlq_publish(struct hd_hub *hub, const struct hd_deadletter *d, uint64_t tag,
		    hd_dlq_done_fn done, void *arg);

#endif
