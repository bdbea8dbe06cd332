/* topic_pattern — see topic_pattern.h. */
#include "hub/topic_pattern.h"

#include "hub/topic_name.h"

#include <string.h>

bool hd_topic_pattern_is(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n > 0 && s[n - 1] == '*';
}

int hd_topic_pattern_check(const char *s, struct hd_error *err)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || s[n - 1] != '*')
		return hd_error_set(err, HD_EBADTOPIC, "a topic pattern must end with '*'");
	if (n == 1)
		return hd_error_set(err, HD_EBADTOPIC,
				    "topic pattern '*' alone is refused: give a prefix, e.g. \"orders.*\"");
	const char *star = memchr(s, '*', n - 1);
	if (star)
		return hd_error_set(err, HD_EBADTOPIC,
				    "topic pattern has '*' at byte %zu: only one trailing '*' is allowed",
				    (size_t)(star - s));
	struct hd_error sub;
	hd_error_clear(&sub);
	size_t plen = n - 1;
	if (plen > HD_TOPIC_NAME_MAX)
		return hd_error_set(err, HD_EBADTOPIC, "topic pattern prefix is longer than %d bytes",
				    HD_TOPIC_NAME_MAX);
	/* The prefix obeys the name's alphabet; "." and ".." are fine as
	 * prefixes ("..x" is a valid name), so only the characters are checked. */
	if (plen > 2 || (plen == 1 && s[0] != '.') || (plen == 2 && memcmp(s, "..", 2) != 0)) {
		if (hd_topic_name_check(s, plen, &sub) != 0)
			return hd_error_set(err, HD_EBADTOPIC, "topic pattern prefix: %s", sub.msg);
	}
	return 0;
}

bool hd_topic_pattern_is_dlq(const char *topic)
{
	size_t n = strlen(topic), k = strlen(HD_TOPIC_NAME_DLQ_SUFFIX);
	return n >= k && memcmp(topic + n - k, HD_TOPIC_NAME_DLQ_SUFFIX, k) == 0;
}

bool hd_topic_pattern_match(const char *pattern, const char *topic)
{
	size_t n = strlen(pattern);
	if (n == 0 || pattern[n - 1] != '*')
		return false;
	return strncmp(topic, pattern, n - 1) == 0 && !hd_topic_pattern_is_dlq(topic);
}

size_t hd_topic_pattern_prefix(const char *pattern, char *out, size_t out_len)
{
	size_t n = strlen(pattern);
	size_t plen = (n > 0 && pattern[n - 1] == '*') ? n - 1 : n;
	if (out_len > 0) {
		size_t c = plen < out_len ? plen : out_len - 1;
		memcpy(out, pattern, c);
		out[c] = '\0';
	}
	return plen;
}
