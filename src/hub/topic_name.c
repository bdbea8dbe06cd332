/* topic_name — see topic_name.h. */
#include "hub/topic_name.h"

#include <stdbool.h>
#include <string.h>

static bool allowed(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == ':' || c == '@' || c == '-';
}

int hd_topic_name_check(const char *name, size_t len, struct hd_error *err)
{
	if (len == 0)
		return hd_error_set(err, HD_EBADTOPIC, "topic name is empty");
	if (len > HD_TOPIC_NAME_MAX)
		return hd_error_set(err, HD_EBADTOPIC, "topic name is longer than %d bytes",
				    HD_TOPIC_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		if (!allowed((unsigned char)name[i]))
			return hd_error_set(err, HD_EBADTOPIC,
					    "topic name has a character outside [A-Za-z0-9._~:@-] at byte %zu",
					    i);
	}
	if ((len == 1 && name[0] == '.') || (len == 2 && memcmp(name, "..", 2) == 0))
		return hd_error_set(err, HD_EBADTOPIC, "topic name cannot be '.' or '..'");
	return 0;
}

bool hd_topic_name_dlq_fits(const char *name)
{
	return strlen(name) + strlen(HD_TOPIC_NAME_DLQ_SUFFIX) <= HD_TOPIC_NAME_MAX;
}
