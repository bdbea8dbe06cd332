/*
 * due — waking a consumer when its lease window next has something due
 * (hd_lease_next_due of consume/lease.h): one libuv timer, armed at a time
 * of the hd_now_ms clock, never pushed back past a sooner wake-up that is
 * already set (a watched event's "now").
 * Layer: consume; loop thread. Callers: the held fetches of a pull group
 * (groups/group_waiters.c) and a webhook stream's pump.
 */
#ifndef HD_DUE_H
#define HD_DUE_H

#include <stdint.h>
#include <uv.h>

/* Starts t (initialised, not closing) to run cb at due: INT64_MIN at once,
 * INT64_MAX never (no-op), a time past already at once; unless t is
 * already set to run sooner. */
void hd_due_arm(uv_timer_t *t, uv_timer_cb cb, int64_t due);

#endif
