/* start — see start.h. */
#include "consume/start.h"
#include "core/clock.h"

#include <jansson.h>
#include <string.h>

int hd_start_parse(const struct json_t *s, struct hd_start *out, struct hd_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return 0;
	if (json_is_string(s) && strcmp(json_string_value(s), "latest") == 0)
		return 0;
	if (json_is_string(s) && strcmp(json_string_value(s), "oldest") == 0) {
		out->kind = HD_START_OLDEST;
		return 0;
	}
	if (json_is_object(s) && json_object_size(s) == 1) {
		json_t *off = json_object_get(s, "offset"), *t = json_object_get(s, "time");
		if (json_is_integer(off) && json_integer_value(off) >= 1) {
			out->kind = HD_START_OFFSET;
			out->offset = (uint64_t)json_integer_value(off);
			return 0;
		}
		if (json_is_string(t) && hd_clock_parse_rfc3339(json_string_value(t), json_string_length(t),
							  &out->time_ms) == 0) {
			out->kind = HD_START_TIME;
			return 0;
		}
	}
	return hd_error_set(err, HD_EINVAL,
			    "'start' must be \"latest\", \"oldest\", {\"offset\": N >= 1} or "
			    "{\"time\": \"RFC 3339\"}");
}
