/*
 * TEMPORARY forwarding header: core/lease.h moved to consume/lease.h (the consumer core).
 * Only src/webhook/ still includes this path, until webhooks are converted
 * to the consume core (held back while webhook/delivery.c is being split);
 * it goes with that conversion. Nothing new may include it.
 */
#ifndef HD_COMPAT_CORE_LEASE_H
#define HD_COMPAT_CORE_LEASE_H

#include "consume/lease.h"

#endif
