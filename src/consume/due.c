/* due — see due.h. */
#include "consume/due.h"
#include "core/clock.h"

void hd_due_arm(uv_timer_t *t, uv_timer_cb cb, int64_t due)
{
	if (due == INT64_MAX)
		return;
	int64_t left = due == INT64_MIN ? 0 : due - hd_now_ms();
	uint64_t ms = left > 0 ? (uint64_t)left : 0;
	if (!uv_is_active((uv_handle_t *)t) || uv_timer_get_due_in(t) > ms)
		uv_timer_start(t, cb, ms, 0);
}
