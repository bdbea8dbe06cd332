/* sub_config — see sub_config.h. */
#include "webhook/sub_config.h"
#include "consume/start.h"
#include "core/buf.h"
#include "net/http_client.h"
#include "webhook/signature.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const uint32_t default_schedule[] = HD_SUB_SCHEDULE_DEFAULT;

void hd_sub_config_defaults(struct hd_sub_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = HD_SUB_STRUCTURED;
	c->ordered = true;
	c->concurrency = HD_SUB_CONCURRENCY_DEFAULT;
	c->max_attempts = HD_SUB_ATTEMPTS_DEFAULT;
	c->nschedule = sizeof(default_schedule) / sizeof(default_schedule[0]);
	memcpy(c->schedule, default_schedule, sizeof(default_schedule));
	c->pause_after = HD_SUB_PAUSE_AFTER_DEFAULT;
}

/* ---- url -------------------------------------------------------------- */

/* The host of an http(s) URL into out (brackets of an IPv6 literal
 * removed). Returns 0 or -1 when there is none or it does not fit. */
static int url_host(const char *url, char *out, size_t out_len)
{
	const char *p = strstr(url, "://");
	if (!p)
		return -1;
	p += 3;
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	while (at) { /* the last '@' of the authority ends the userinfo */
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
		at = memchr(p, '@', alen);
	}
	size_t hlen;
	if (alen > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', alen);
		if (!close)
			return -1;
		p++;
		hlen = (size_t)(close - p);
	} else {
		const char *colon = memchr(p, ':', alen);
		hlen = colon ? (size_t)(colon - p) : alen;
	}
	if (hlen == 0 || hlen >= out_len)
		return -1;
	memcpy(out, p, hlen);
	out[hlen] = '\0';
	return 0;
}

bool hd_sub_config_url_private(const char *url)
{
	char host[300];
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	if (url_host(url, host, sizeof(host)))
		return false;
	size_t n = strlen(host);
	if (host[n - 1] == '.')
		host[--n] = '\0';
	if (strcasecmp(host, "localhost") == 0 ||
	    (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
		return true;
	memset(&v4, 0, sizeof(v4));
	memset(&v6, 0, sizeof(v6));
	if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
		v4.sin_family = AF_INET;
		return hd_http_client_addr_is_private((const struct sockaddr *)&v4);
	}
	if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
		v6.sin6_family = AF_INET6;
		return hd_http_client_addr_is_private((const struct sockaddr *)&v6);
	}
	return false;
}

static int check_url(const char *url, bool allow_private, struct hd_error *err)
{
	char host[300];
	size_t n = strlen(url);
	if (n == 0 || n > HD_SUB_URL_MAX)
		return hd_error_set(err, HD_EINVAL, "'url' must be 1 to %d bytes", HD_SUB_URL_MAX);
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return hd_error_set(err, HD_EINVAL, "'url' must start with http:// or https://");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= 0x20 || ch >= 0x7f)
			return hd_error_set(err, HD_EINVAL,
					    "'url' must not contain spaces, control or non-ASCII "
					    "characters (percent-encode them)");
	}
	if (url_host(url, host, sizeof(host)))
		return hd_error_set(err, HD_EINVAL, "'url' has no host");
	if (!allow_private && hd_sub_config_url_private(url))
		return hd_error_set(err, HD_EINVAL,
				    "'url' points to a loopback or private address, which herald "
				    "refuses to call (--webhook-allow-private turns this off)");
	return 0;
}

/* ---- members ---------------------------------------------------------- */

static int u32_member(const json_t *o, const char *name, uint32_t min, uint32_t max,
		      uint32_t *out, struct hd_error *err)
{
	json_t *v = json_object_get(o, name);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
	    json_integer_value(v) > (json_int_t)max)
		return hd_error_set(err, HD_EINVAL,
				    "'%s' must be a whole number from %" PRIu32 " to %" PRIu32, name, min,
				    max);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int parse_schedule(const json_t *s, struct hd_sub_config *c, struct hd_error *err)
{
	size_t i;
	json_t *v;
	if (!s)
		return 0;
	if (!json_is_array(s) || json_array_size(s) == 0 ||
	    json_array_size(s) > HD_SUB_SCHEDULE_MAX)
		return hd_error_set(err, HD_EINVAL,
				    "'retry_schedule' must be an array of 1 to %d delays in ms",
				    HD_SUB_SCHEDULE_MAX);
	json_array_foreach(s, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > HD_SUB_DELAY_MAX_MS)
			return hd_error_set(err, HD_EINVAL,
					    "'retry_schedule' delays must be whole numbers of ms "
					    "from 0 to %lld (7 days)",
					    (long long)HD_SUB_DELAY_MAX_MS);
		c->schedule[i] = (uint32_t)json_integer_value(v);
	}
	c->nschedule = json_array_size(s);
	return 0;
}

_Static_assert(HD_SUB_START_LATEST == (int)HD_START_LATEST &&
		       HD_SUB_START_OLDEST == (int)HD_START_OLDEST &&
		       HD_SUB_START_OFFSET == (int)HD_START_OFFSET &&
		       HD_SUB_START_TIME == (int)HD_START_TIME,
	       "hd_sub_start_kind mirrors hd_start_kind");

static int parse_start(const json_t *s, struct hd_sub_start *start, struct hd_error *err)
{
	struct hd_start st;
	int rc = hd_start_parse(s, &st, err);

	start->kind = (enum hd_sub_start_kind)st.kind;
	start->offset = st.offset;
	start->time_ms = st.time_ms;
	return rc;
}

/* The members both a create body and a durable record carry. */
static int parse_config(const json_t *o, bool allow_private, struct hd_sub_config *c,
			struct hd_error *err)
{
	json_t *topic = json_object_get(o, "topic"), *url = json_object_get(o, "url");
	json_t *mode = json_object_get(o, "mode"), *ordered = json_object_get(o, "ordered");
	int rc;

	hd_sub_config_defaults(c);
	if ((rc = hd_filter_topic(topic, c->topic, err)))
		return rc;
	if (!json_is_string(url))
		return hd_error_set(err, HD_EINVAL, "'url' is required: where to POST the events");
	if (json_string_length(url) > HD_SUB_URL_MAX)
		return hd_error_set(err, HD_EINVAL, "'url' must be 1 to %d bytes", HD_SUB_URL_MAX);
	if (strlen(json_string_value(url)) != json_string_length(url))
		return hd_error_set(err, HD_EINVAL, "'url' must not contain NUL");
	if ((rc = check_url(json_string_value(url), allow_private, err)))
		return rc;
	memcpy(c->url, json_string_value(url), json_string_length(url) + 1);
	if ((rc = hd_filter_parse(json_object_get(o, "filter"), &c->filter, err)))
		return rc;
	if (mode) {
		if (json_is_string(mode) && strcmp(json_string_value(mode), "structured") == 0)
			c->mode = HD_SUB_STRUCTURED;
		else if (json_is_string(mode) && strcmp(json_string_value(mode), "binary") == 0)
			c->mode = HD_SUB_BINARY;
		else
			return hd_error_set(err, HD_EINVAL,
					    "'mode' must be \"structured\" or \"binary\"");
	}
	if (ordered) {
		if (!json_is_boolean(ordered))
			return hd_error_set(err, HD_EINVAL, "'ordered' must be true or false");
		c->ordered = json_is_true(ordered);
	}
	if ((rc = u32_member(o, "concurrency", 1, HD_SUB_CONCURRENCY_MAX, &c->concurrency, err)) ||
	    (rc = u32_member(o, "max_attempts", 1, HD_SUB_ATTEMPTS_MAX, &c->max_attempts, err)) ||
	    (rc = u32_member(o, "pause_after", 0, HD_SUB_PAUSE_AFTER_MAX, &c->pause_after, err)) ||
	    (rc = parse_schedule(json_object_get(o, "retry_schedule"), c, err)))
		return rc;
	if (c->ordered)
		c->concurrency = 1;
	return 0;
}

int hd_sub_config_parse(const char *body, size_t len, bool allow_private, struct hd_sub_config *c,
		 struct hd_sub_start *start, char *secret, size_t secret_len, struct hd_error *err)
{
	static const char *known[] = {"topic",	      "url",	      "filter",	     "secret",
				      "mode",	      "ordered",      "concurrency", "max_attempts",
				      "retry_schedule", "start",      "pause_after"};
	json_error_t jerr;
	const char *key;
	json_t *v, *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc = 0;

	secret[0] = '\0';
	if (!o || !json_is_object(o)) {
		rc = hd_error_set(err, HD_EINVAL, "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(o, key, v)
	{
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok) {
			rc = hd_error_set(err, HD_EINVAL, "unknown member '%.64s' (see docs/api.md)", key);
			goto out;
		}
	}
	json_t *conc = json_object_get(o, "concurrency");
	if (conc && !json_is_false(json_object_get(o, "ordered")) &&
	    !(json_is_integer(conc) && json_integer_value(conc) == 1)) {
		rc = hd_error_set(err, HD_EINVAL,
				  "'concurrency' applies to unordered subscriptions (\"ordered\": "
				  "false); an ordered one delivers one event at a time");
		goto out;
	}
	if ((rc = parse_config(o, allow_private, c, err)))
		goto out;
	if ((rc = parse_start(json_object_get(o, "start"), start, err)))
		goto out;
	v = json_object_get(o, "secret");
	if (v && !json_is_null(v)) {
		struct hd_whsec ws;
		if (!json_is_string(v) || json_string_length(v) >= secret_len) {
			rc = hd_error_set(err, HD_EINVAL, "'secret' must be a string \"whsec_<base64>\"");
			goto out;
		}
		if (hd_signature_secret_parse(json_string_value(v), &ws, err)) {
			rc = hd_error_set(err, HD_EINVAL, "'secret': %s", err->msg);
			goto out;
		}
		memcpy(secret, json_string_value(v), json_string_length(v) + 1);
	}
out:
	json_decref(o);
	return rc;
}

int hd_sub_config_load(const struct json_t *obj, struct hd_sub_config *c, struct hd_error *err)
{
	if (!json_is_object(obj))
		return hd_error_set(err, HD_EINVAL, "the config is not an object");
	return parse_config(obj, true, c, err);
}

/* ---- JSON out --------------------------------------------------------- */

int hd_sub_config_json(struct hd_buf *b, const struct hd_sub_config *c)
{
	hd_buf_puts(b, "\"topic\":\"");
	hd_buf_json_escape(b, c->topic, strlen(c->topic));
	hd_buf_puts(b, "\",\"url\":\"");
	hd_buf_json_escape(b, c->url, strlen(c->url));
	hd_buf_puts(b, "\",\"filter\":");
	hd_filter_json(b, &c->filter);
	hd_buf_printf(b,
		      ",\"mode\":\"%s\",\"ordered\":%s,\"concurrency\":%" PRIu32
		      ",\"max_attempts\":%" PRIu32 ",\"retry_schedule\":[",
		      c->mode == HD_SUB_BINARY ? "binary" : "structured",
		      c->ordered ? "true" : "false", c->concurrency, c->max_attempts);
	for (size_t i = 0; i < c->nschedule; i++)
		hd_buf_printf(b, "%s%" PRIu32, i ? "," : "", c->schedule[i]);
	return hd_buf_printf(b, "],\"pause_after\":%" PRIu32, c->pause_after);
}
