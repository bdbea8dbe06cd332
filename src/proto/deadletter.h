/*
 * TEMPORARY forwarding header: proto/deadletter.h moved to consume/deadletter.h (the consumer core).
 * Only src/webhook/ still includes this path, until webhooks are converted
 * to the consume core (held back while webhook/delivery.c is being split);
 * it goes with that conversion. Nothing new may include it.
 */
#ifndef HD_COMPAT_PROTO_DEADLETTER_H
#define HD_COMPAT_PROTO_DEADLETTER_H

#include "consume/deadletter.h"

#endif
