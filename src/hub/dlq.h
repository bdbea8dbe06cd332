/*
 * TEMPORARY forwarding header: hub/dlq.h moved to consume/deadletter.h (the consumer core).
 * Only src/webhook/ still includes this path, until webhooks are converted
 * to the consume core (held back while webhook/delivery.c is being split);
 * it goes with that conversion. Nothing new may include it.
 */
#ifndef HD_COMPAT_HUB_DLQ_H
#define HD_COMPAT_HUB_DLQ_H

#include "consume/deadletter.h"

#define HD_DLQ_SUFFIX HD_TOPIC_NAME_DLQ_SUFFIX
#define hd_dlq_publish hd_deadletter_publish

#endif
