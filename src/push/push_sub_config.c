/* push_sub_config — see push_sub_config.h. */
#include "push/push_sub_config.h"
#include "core/buf.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define DURATION_DIGITS_MAX 12 /* keeps digits × the largest unit far from overflow */

static const char *const mode_names[] = {[HD_PUSH_SUB_ALERT] = "alert",
					 [HD_PUSH_SUB_SILENT] = "silent",
					 [HD_PUSH_SUB_DOORBELL] = "doorbell"};

static const struct {
	const char *suffix;
	int64_t ms;
} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
#define NUNITS (sizeof(units) / sizeof(units[0]))

static const struct hd_push_sub_config defaults = {
	.to = HD_PUSH_SUB_TO_USER,
	.mode = HD_PUSH_SUB_ALERT,
	.seen_wait_ms = HD_PUSH_SUB_WAIT_DEFAULT_MS,
	.max_attempts = HD_PUSH_SUB_ATTEMPTS_DEFAULT,
};

void hd_push_sub_config_defaults(struct hd_push_sub_config *c)
{
	memcpy(c, &defaults, sizeof(*c));
}

int hd_push_sub_config_mode_parse(const char *s, enum hd_push_sub_mode *out)
{
	for (size_t i = 0; s && i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (enum hd_push_sub_mode)i;
			return 0;
		}
	}
	return HD_EINVAL;
}

const char *hd_push_sub_config_mode_name(enum hd_push_sub_mode m)
{
	return (size_t)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

/* ---- durations -------------------------------------------------------- */

int hd_push_sub_config_duration(const struct json_t *v, int64_t *ms)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || n > INT64_MAX / 1000)
			return HD_EINVAL;
		*ms = (int64_t)n * 1000;
		return 0;
	}
	if (!json_is_string(v))
		return HD_EINVAL;
	const char *s = json_string_value(v);
	size_t digits = strspn(s, "0123456789");
	if (digits == 0 || digits > DURATION_DIGITS_MAX)
		return HD_EINVAL;
	int64_t n = 0;
	for (size_t i = 0; i < digits; i++)
		n = n * 10 + (s[i] - '0');
	for (size_t i = 0; i < NUNITS; i++) {
		if (strcmp(s + digits, units[i].suffix) == 0 &&
		    strlen(s) == json_string_length(v)) {
			*ms = n * units[i].ms;
			return 0;
		}
	}
	return HD_EINVAL;
}

const char *hd_push_sub_config_duration_text(int64_t ms, char *out)
{
	size_t i = 0;
	while (i + 1 < NUNITS && (ms == 0 || ms % units[i].ms != 0))
		i++;
	if (ms == 0)
		i = NUNITS - 2; /* "0s" */
	snprintf(out, HD_PUSH_SUB_DURATION_TEXT_MAX, "%" PRId64 "%s", ms / units[i].ms,
		 units[i].suffix);
	return out;
}

/* ---- members ---------------------------------------------------------- */

/* Refuses a member of o not in known[] (n names), naming it after where. */
static int only_known(const json_t *o, const char *const *known, size_t n, const char *where,
		      struct hd_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)o, key, v) {
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = strcmp(key, known[i]) == 0;
		if (!ok)
			return hd_error_set(err, HD_EINVAL, "%sunknown member '%.64s' (see docs/push.md)",
					    where, key);
	}
	return 0;
}

static int parse_topic(const json_t *topic, const json_t *to, struct hd_push_sub_config *c,
		       struct hd_error *err)
{
	int rc;

	if ((rc = hd_filter_topic(topic, c->topic, err)))
		return rc;
	const char *t = c->topic;
	size_t tlen = strlen(t);
	bool pattern = hd_topic_pattern_is(t);

	if (json_is_string(to) && strcmp(json_string_value(to), "user") == 0)
		c->to = HD_PUSH_SUB_TO_USER;
	else if (json_is_string(to) && strcmp(json_string_value(to), "followers") == 0)
		c->to = HD_PUSH_SUB_TO_FOLLOWERS;
	else
		return hd_error_set(err, HD_EINVAL,
				    "'to' is required: \"user\" (events of user:{id} go to user id's "
				    "devices) or \"followers\" (devices that list the topic)");
	/* A user topic names exactly one user: "user:" then an id without ':'. */
	if (c->to == HD_PUSH_SUB_TO_USER &&
	    (strncmp(t, "user:", 5) != 0 || (!pattern && (tlen == 5 || strchr(t + 5, ':')))))
		return hd_error_set(err, HD_EINVAL,
				    "'to': \"user\" needs 'topic' to be user:{id} or a pattern under "
				    "\"user:\" (like \"user:*\"); use \"followers\" for other topics");
	return 0;
}

static int parse_ttl(const json_t *v, struct hd_push_sub_config *c, struct hd_error *err)
{
	if (!v || json_is_null(v))
		return 0;
	if (hd_push_sub_config_duration(v, &c->ttl_ms) || c->ttl_ms < HD_PUSH_SUB_TTL_MIN_MS ||
	    c->ttl_ms > HD_PUSH_SUB_TTL_MAX_MS)
		return hd_error_set(err, HD_EINVAL,
				    "'ttl' must be a duration from 1s to 28d (like \"30s\", \"24h\", "
				    "\"7d\", or whole seconds)");
	return 0;
}

static bool cursor_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > HD_PUSH_SUB_CURSOR_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static int parse_seen(const json_t *v, struct hd_push_sub_config *c, struct hd_error *err)
{
	static const char *const known[] = {"cursor", "wait"};
	json_t *cursor, *wait;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return hd_error_set(err, HD_EINVAL,
				    "'skip_if_seen' must be an object {\"cursor\": name, \"wait\": "
				    "duration}");
	if ((rc = only_known(v, known, 2, "'skip_if_seen' has an ", err)))
		return rc;
	cursor = json_object_get(v, "cursor");
	wait = json_object_get(v, "wait");
	if (!json_is_string(cursor) ||
	    !cursor_name_ok(json_string_value(cursor), json_string_length(cursor)))
		return hd_error_set(err, HD_EINVAL,
				    "'skip_if_seen.cursor' is required: the name of a user cursor, 1 "
				    "to %d bytes of [A-Za-z0-9._-]",
				    HD_PUSH_SUB_CURSOR_MAX);
	memcpy(c->seen_cursor, json_string_value(cursor), json_string_length(cursor) + 1);
	if (wait && (hd_push_sub_config_duration(wait, &c->seen_wait_ms) ||
		     c->seen_wait_ms > HD_PUSH_SUB_WAIT_MAX_MS))
		return hd_error_set(err, HD_EINVAL,
				    "'skip_if_seen.wait' must be a duration from 0s to 1h (like "
				    "\"3s\" or \"500ms\")");
	c->skip_if_seen = true;
	return 0;
}

/* The members both a create body and a durable record carry. */
static int parse_config(const json_t *o, struct hd_push_sub_config *c, struct hd_error *err)
{
	json_t *mode = json_object_get(o, "mode"), *online = json_object_get(o, "skip_if_online");
	json_t *attempts = json_object_get(o, "max_attempts");
	int rc;

	hd_push_sub_config_defaults(c);
	if ((rc = parse_topic(json_object_get(o, "topic"), json_object_get(o, "to"), c, err)) ||
	    (rc = hd_filter_parse(json_object_get(o, "filter"), &c->filter, err)))
		return rc;
	if (mode && (!json_is_string(mode) ||
		     hd_push_sub_config_mode_parse(json_string_value(mode), &c->mode)))
		return hd_error_set(err, HD_EINVAL,
				    "'mode' must be \"alert\", \"silent\" or \"doorbell\"");
	if ((rc = parse_ttl(json_object_get(o, "ttl"), c, err)) ||
	    (rc = parse_seen(json_object_get(o, "skip_if_seen"), c, err)))
		return rc;
	if (online) {
		if (!json_is_boolean(online))
			return hd_error_set(err, HD_EINVAL, "'skip_if_online' must be true or false");
		c->skip_if_online = json_is_true(online);
	}
	if (attempts) {
		if (!json_is_integer(attempts) || json_integer_value(attempts) < 1 ||
		    json_integer_value(attempts) > HD_PUSH_SUB_ATTEMPTS_MAX)
			return hd_error_set(err, HD_EINVAL,
					    "'max_attempts' must be a whole number from 1 to %d",
					    HD_PUSH_SUB_ATTEMPTS_MAX);
		c->max_attempts = (uint32_t)json_integer_value(attempts);
	}
	return 0;
}

int hd_push_sub_config_parse(const char *body, size_t len, struct hd_push_sub_config *c,
			     struct hd_start *start, struct hd_error *err)
{
	static const char *const known[] = {"topic", "to",	       "filter",	 "mode",
					    "ttl",   "skip_if_seen", "skip_if_online", "max_attempts",
					    "start"};
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	int rc;

	hd_push_sub_config_defaults(c);
	memset(start, 0, sizeof(*start));
	if (!json_is_object(o)) {
		rc = hd_error_set(err, HD_EINVAL, "the body must be a JSON object");
		goto out;
	}
	if ((rc = only_known(o, known, sizeof(known) / sizeof(known[0]), "", err)) ||
	    (rc = parse_config(o, c, err)) ||
	    (rc = hd_start_parse(json_object_get(o, "start"), start, err)))
		goto out;
out:
	json_decref(o);
	return rc;
}

int hd_push_sub_config_load(const struct json_t *obj, struct hd_push_sub_config *c,
			    struct hd_error *err)
{
	if (!json_is_object(obj))
		return hd_error_set(err, HD_EINVAL, "the config is not an object");
	return parse_config(obj, c, err);
}

/* ---- JSON out --------------------------------------------------------- */

static void string_value(struct hd_buf *b, const char *s)
{
	hd_buf_putc(b, '"');
	hd_buf_json_escape(b, s, strlen(s));
	hd_buf_putc(b, '"');
}

int hd_push_sub_config_json(struct hd_buf *b, const struct hd_push_sub_config *c)
{
	char text[HD_PUSH_SUB_DURATION_TEXT_MAX];

	hd_buf_puts(b, "\"topic\":");
	string_value(b, c->topic);
	hd_buf_printf(b, ",\"to\":\"%s\",\"filter\":",
		      c->to == HD_PUSH_SUB_TO_FOLLOWERS ? "followers" : "user");
	hd_filter_json(b, &c->filter);
	hd_buf_printf(b, ",\"mode\":\"%s\",\"ttl\":", hd_push_sub_config_mode_name(c->mode));
	if (c->ttl_ms)
		hd_buf_printf(b, "\"%s\"", hd_push_sub_config_duration_text(c->ttl_ms, text));
	else
		hd_buf_puts(b, "null");
	hd_buf_puts(b, ",\"skip_if_seen\":");
	if (c->skip_if_seen) {
		hd_buf_puts(b, "{\"cursor\":");
		string_value(b, c->seen_cursor);
		hd_buf_printf(b, ",\"wait\":\"%s\"}",
			      hd_push_sub_config_duration_text(c->seen_wait_ms, text));
	} else {
		hd_buf_puts(b, "null");
	}
	return hd_buf_printf(b, ",\"skip_if_online\":%s,\"max_attempts\":%" PRIu32,
			     c->skip_if_online ? "true" : "false", c->max_attempts);
}
