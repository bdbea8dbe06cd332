/* filter — see filter.h. */
#include "consume/filter.h"
#include "core/buf.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"

#include <jansson.h>
#include <string.h>

static const char *const members[] = {"type", "type_prefix", "source", "subject_prefix"};
#define NMEMBERS (sizeof(members) / sizeof(members[0]))

/* The value of member i of f. */
static const char *value_of(const struct hd_filter *f, size_t i)
{
	const char *v[NMEMBERS] = {f->type, f->type_prefix, f->source, f->subject_prefix};
	return v[i];
}

static char *slot_of(struct hd_filter *f, size_t i)
{
	char *v[NMEMBERS] = {f->type, f->type_prefix, f->source, f->subject_prefix};
	return v[i];
}

static bool known(const char *key, size_t *index)
{
	for (size_t i = 0; i < NMEMBERS; i++) {
		if (strcmp(key, members[i]) == 0) {
			*index = i;
			return true;
		}
	}
	return false;
}

int hd_filter_topic(const struct json_t *v, char *out, struct hd_error *err)
{
	if (!json_is_string(v))
		return hd_error_set(err, HD_EINVAL,
				    "'topic' is required: a topic name, or a pattern like \"orders.*\"");
	const char *t = json_string_value(v);
	size_t tlen = json_string_length(v);
	if (strlen(t) != tlen)
		return hd_error_set(err, HD_EINVAL, "'topic' must not contain NUL");
	if (hd_topic_pattern_is(t) ? hd_topic_pattern_check(t, err) : hd_topic_name_check(t, tlen, err))
		return hd_error_set(err, HD_EINVAL, "'topic': %s", err->msg);
	if (!hd_topic_name_dlq_fits(t))
		return hd_error_set(err, HD_EINVAL,
				    "'topic' is too long for its dead-letter topic (name + \".dlq\")");
	memcpy(out, t, tlen + 1);
	return 0;
}

int hd_filter_parse(const struct json_t *f, struct hd_filter *out, struct hd_error *err)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!f || json_is_null(f))
		return 0;
	if (!json_is_object(f))
		return hd_error_set(err, HD_EINVAL,
				    "'filter' must be an object with type, type_prefix, source or "
				    "subject_prefix");
	json_object_foreach((json_t *)f, key, v) {
		if (!known(key, &i))
			return hd_error_set(err, HD_EINVAL,
					    "'filter' has an unknown member '%.64s' (known: type, "
					    "type_prefix, source, subject_prefix)",
					    key);
	}
	for (i = 0; i < NMEMBERS; i++) {
		v = json_object_get(f, members[i]);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > HD_FILTER_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return hd_error_set(err, HD_EINVAL,
					    "'filter.%s' must be a string of 1 to %d bytes", members[i],
					    HD_FILTER_VALUE_MAX);
		memcpy(slot_of(out, i), json_string_value(v), json_string_length(v) + 1);
	}
	return 0;
}

int hd_filter_json(struct hd_buf *b, const struct hd_filter *f)
{
	bool first = true;

	hd_buf_putc(b, '{');
	for (size_t i = 0; i < NMEMBERS; i++) {
		const char *v = value_of(f, i);
		if (!v[0])
			continue;
		hd_buf_printf(b, "%s\"%s\":\"", first ? "" : ",", members[i]);
		hd_buf_json_escape(b, v, strlen(v));
		hd_buf_putc(b, '"');
		first = false;
	}
	return hd_buf_putc(b, '}');
}

bool hd_filter_empty(const struct hd_filter *f)
{
	return !f->type[0] && !f->type_prefix[0] && !f->source[0] && !f->subject_prefix[0];
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool hd_filter_match(const struct hd_filter *f, const char *type, const char *source,
		     const char *subject)
{
	type = type ? type : "";
	source = source ? source : "";
	if (f->type[0] && strcmp(type, f->type) != 0)
		return false;
	if (f->type_prefix[0] && !has_prefix(type, f->type_prefix))
		return false;
	if (f->source[0] && strcmp(source, f->source) != 0)
		return false;
	if (f->subject_prefix[0] && (!subject || !has_prefix(subject, f->subject_prefix)))
		return false;
	return true;
}

bool hd_filter_match_json(const struct hd_filter *f, const char *json, size_t len)
{
	if (hd_filter_empty(f))
		return true;
	json_t *o = json_loadb(json, len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return false;
	}
	json_t *subject = json_object_get(o, "subject");
	bool ok = hd_filter_match(f, json_string_value(json_object_get(o, "type")),
				  json_string_value(json_object_get(o, "source")),
				  json_is_string(subject) ? json_string_value(subject) : NULL);
	json_decref(o);
	return ok;
}
