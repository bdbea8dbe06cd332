/* devices — see devices.h. The file reads from the pure parts (the body,
 * the record, the answer) to the registry (indexes, changes, load, the
 * coalesced writes of outcomes). It is one idea in about 1,000 lines, the
 * registry laid out from a device's wire and disk forms up to its indexes,
 * the way Redis's t_stream.c goes from encoding to commands: the forms are
 * what the indexes key on (a token's one spelling), so they stay together. */
#include "push/devices.h"
#include "consume/relist.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/siphash.h"
#include "hub/topic_name.h"
#include "push/vapid.h"
#include "push/webpush_crypto.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBERS "platform, token, environment, subscription, topics"

/* ---- the pure parts ------------------------------------------------------ */

static const char *const platforms[] = {"apns", "fcm", "webpush"};

const char *hd_devices_platform_name(enum hd_device_platform p)
{
	return p == HD_DEVICE_WEBPUSH ? "subscription endpoint" : "token";
}

const char *hd_devices_environment_name(enum hd_device_environment e)
{
	return e == HD_DEVICE_ENV_SANDBOX ? "sandbox" : e == HD_DEVICE_ENV_PRODUCTION ? "production" : "";
}

/* Takes tok (owned) as dev's token, stored once as token_key. */
static void token_set(struct hd_device *dev, char *tok)
{
	size_t n = strlen(tok);
	dev->token_key = hd_malloc(n + 3);
	dev->token_key[0] = (char)('0' + dev->platform);
	dev->token_key[1] = '\n';
	memcpy(dev->token_key + 2, tok, n + 1);
	dev->token = dev->token_key + 2;
	free(tok);
}

/* dev's failure part, allocated on first use. */
static struct hd_device_failure *failure_of(struct hd_device *dev)
{
	if (!dev->failure)
		dev->failure = hd_calloc(1, sizeof(*dev->failure));
	return dev->failure;
}

static void failure_free(struct hd_device_failure *f)
{
	if (!f)
		return;
	free(f->invalid_reason);
	free(f->last.reason);
	free(f);
}

bool hd_devices_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > HD_DEVICE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

void hd_devices_device_free(struct hd_device *dev)
{
	if (!dev)
		return;
	free(dev->user);
	failure_free(dev->failure);
	free(dev->token_key);
	free(dev->p256dh);
	free(dev->auth);
	for (size_t i = 0; i < dev->ntopics; i++)
		free(dev->topics[i]);
	free(dev->topics);
	free(dev);
}

/* Replaces *dst by a copy of s (NULL or "" = none), cut at max bytes, each
 * byte outside printable ASCII made '?': reasons come from push services,
 * and a cut must not leave half a UTF-8 sequence for the JSON encoder. */
static void text_set(char **dst, const char *s, size_t max)
{
	free(*dst);
	*dst = s && *s ? hd_strndup(s, strnlen(s, max)) : NULL;
	for (char *c = *dst; c && *c; c++)
		if (*c < ' ' || *c > '~')
			*c = '?';
}

#define TEXT(s) ((s) ? (s) : "")

static int platform_of(const char *s)
{
	for (size_t i = 0; i < sizeof(platforms) / sizeof(platforms[0]); i++)
		if (strcmp(s, platforms[i]) == 0)
			return (int)i;
	return -1;
}

/* An endpoint's host is loopback: localhost, 127.0.0.0/8 or [::1]. */
static bool origin_loopback(const char *origin)
{
	const char *host = strstr(origin, "://") + 3;
	size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");

	if ((n == 9 && strncmp(host, "localhost", 9) == 0) || (n == 5 && strncmp(host, "[::1]", 5) == 0))
		return true;
	return n >= 7 && strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == n;
}

/* Checks a Web Push endpoint and returns its normal form in *out (owned):
 * the origin as hd_vapid_origin writes it (scheme and host lower-cased, a
 * default port dropped) then the rest of the URL as given, so that one
 * endpoint has one spelling in the token index. */
static int endpoint_check(const char *url, size_t len, const struct hd_devices_parse_opts *o,
			  char **out, struct hd_error *err)
{
	char origin[HD_VAPID_ORIGIN_MAX + 1];
	struct hd_error e = {0};
	const char *rest;

	*out = NULL;
	if (len > HD_DEVICE_ENDPOINT_MAX)
		return hd_error_set(err, HD_EINVAL, "'subscription.endpoint' is longer than %d bytes",
				    HD_DEVICE_ENDPOINT_MAX);
	if (hd_vapid_origin(url, len, origin, sizeof(origin), &e))
		return hd_error_set(err, HD_EINVAL, "'subscription.endpoint' is not a push service URL: %s",
				    e.msg);
	if (strncmp(origin, "https://", 8) != 0 && !(o && o->allow_private && origin_loopback(origin)))
		return hd_error_set(err, HD_EINVAL, "'subscription.endpoint' must be an https:// URL%s",
				    o && o->allow_private ? " (or http:// on loopback)" : "");
	rest = strstr(url, "://") + 3;
	rest += strcspn(rest, "/?#");
	size_t n = strlen(origin) + strlen(rest) + 1;
	if (n > HD_DEVICE_ENDPOINT_MAX + 1)
		return hd_error_set(err, HD_EINVAL, "'subscription.endpoint' is longer than %d bytes",
				    HD_DEVICE_ENDPOINT_MAX);
	*out = hd_malloc(n);
	snprintf(*out, n, "%s%s", origin, rest);
	return 0;
}

static int apns_token_check(const char *s, size_t n, struct hd_error *err)
{
	if (n < HD_DEVICE_APNS_TOKEN_MIN || n > HD_DEVICE_APNS_TOKEN_MAX || n % 2 ||
	    strspn(s, "0123456789abcdefABCDEF") != n)
		return hd_error_set(err, HD_EINVAL, "'token' must be the APNs device token in hex: an even "
				    "number of %d-%d hex digits", HD_DEVICE_APNS_TOKEN_MIN,
				    HD_DEVICE_APNS_TOKEN_MAX);
	return 0;
}

static int fcm_token_check(const char *s, size_t n, struct hd_error *err)
{
	bool ok = n > 0 && n <= HD_DEVICE_FCM_TOKEN_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] > ' ' && (unsigned char)s[i] < 0x7f;
	if (!ok)
		return hd_error_set(err, HD_EINVAL, "'token' must be the FCM registration token: 1-%d "
				    "printable ASCII characters without spaces", HD_DEVICE_FCM_TOKEN_MAX);
	return 0;
}

/* Adds topic t (checked) to dev unless it is listed already. */
static int topics_read(json_t *topics, struct hd_device *dev, struct hd_error *err)
{
	size_t i;
	json_t *t;
	struct hd_error e = {0};

	if (!topics || json_is_null(topics))
		return 0;
	if (!json_is_array(topics) || json_array_size(topics) > HD_DEVICE_TOPICS_MAX)
		return hd_error_set(err, HD_EINVAL, "'topics' must be an array of at most %d topic names",
				    HD_DEVICE_TOPICS_MAX);
	dev->topics = hd_calloc(json_array_size(topics) + 1, sizeof(char *));
	json_array_foreach(topics, i, t)
	{
		const char *s = json_string_value(t);
		size_t n = json_string_length(t);
		bool dup = false;
		if (!json_is_string(t) || hd_topic_name_check(s, n, &e) || strlen(s) != n)
			return hd_error_set(err, HD_EINVAL, "'topics[%zu]' is not a topic name%s%s", i,
					    e.msg[0] ? ": " : "", e.msg);
		for (size_t k = 0; k < dev->ntopics && !dup; k++)
			dup = strcmp(dev->topics[k], s) == 0;
		if (!dup)
			dev->topics[dev->ntopics++] = hd_strdup(s);
	}
	return 0;
}

/* A string member of o, or NULL; a present non-string (or one holding NUL,
 * or longer than max) is an error naming it. */
static int string_member(json_t *o, const char *name, const char *label, size_t max,
			 const char **out, size_t *len, struct hd_error *err)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	*len = 0;
	if (!v)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return hd_error_set(err, HD_EINVAL, "'%s' must be a string", label);
	if (json_string_length(v) > max)
		return hd_error_set(err, HD_EINVAL, "'%s' is longer than %zu bytes", label, max);
	*out = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

static int subscription_read(json_t *sub, const struct hd_devices_parse_opts *o,
			     struct hd_device *dev, struct hd_error *err)
{
	const char *key, *ep, *p, *a;
	char *endpoint;
	size_t ep_len, p_len, a_len;
	json_t *val, *keys;
	struct hd_webpush_crypto_keys k;
	struct hd_error e = {0};

	if (!json_is_object(sub))
		return hd_error_set(err, HD_EINVAL, "'subscription' is required for webpush: the "
				    "browser's PushSubscription as JSON, {\"endpoint\":…,\"keys\":{…}}");
	json_object_foreach(sub, key, val)
	{
		if (strcmp(key, "endpoint") && strcmp(key, "keys") && strcmp(key, "expirationTime"))
			return hd_error_set(err, HD_EINVAL, "unknown member 'subscription.%.64s' (use "
					    "endpoint, keys, expirationTime)", key);
	}
	if (string_member(sub, "endpoint", "subscription.endpoint", HD_DEVICE_ENDPOINT_MAX, &ep,
			  &ep_len, err))
		return err ? err->code : HD_EINVAL;
	if (!ep)
		return hd_error_set(err, HD_EINVAL, "'subscription.endpoint' is required");
	/* dev, and the endpoint with it, is freed by the caller on a refusal. */
	if (endpoint_check(ep, ep_len, o, &endpoint, err))
		return HD_EINVAL;
	token_set(dev, endpoint);
	val = json_object_get(sub, "expirationTime");
	if (val && !json_is_null(val) && !json_is_number(val))
		return hd_error_set(err, HD_EINVAL, "'subscription.expirationTime' must be null or a number");
	keys = json_object_get(sub, "keys");
	if (!json_is_object(keys))
		return hd_error_set(err, HD_EINVAL, "'subscription.keys' is required: {\"p256dh\":…,\"auth\":…}");
	json_object_foreach(keys, key, val)
	{
		if (strcmp(key, "p256dh") && strcmp(key, "auth"))
			return hd_error_set(err, HD_EINVAL, "unknown member 'subscription.keys.%.64s' (use "
					    "p256dh, auth)", key);
	}
	if (string_member(keys, "p256dh", "subscription.keys.p256dh", HD_DEVICE_KEY_TEXT_MAX, &p,
			  &p_len, err) ||
	    string_member(keys, "auth", "subscription.keys.auth", HD_DEVICE_KEY_TEXT_MAX, &a, &a_len,
			  err))
		return HD_EINVAL;
	if (!p || !a)
		return hd_error_set(err, HD_EINVAL, "'subscription.keys.%s' is required", p ? "auth" : "p256dh");
	if (hd_webpush_crypto_keys_parse(p, p_len, a, a_len, &k, &e))
		return hd_error_set(err, HD_EINVAL, "'subscription.keys.%s", e.msg[0] == '\'' ? e.msg + 1 : e.msg);
	dev->p256dh = hd_strdup(p);
	dev->auth = hd_strdup(a);
	return 0;
}

int hd_devices_parse(const char *body, size_t len, const struct hd_devices_parse_opts *o,
		     struct hd_device **out, struct hd_error *err)
{
	struct hd_device *dev = NULL;
	json_error_t jerr;
	json_t *v = NULL, *val;
	const char *key, *plat, *tok, *env;
	size_t plat_len, tok_len, env_len;
	int p, rc = HD_EINVAL;

	*out = NULL;
	if (len > HD_DEVICE_BODY_MAX) {
		rc = hd_error_set(err, HD_ETOOBIG, "the body must be at most %d bytes", HD_DEVICE_BODY_MAX);
		goto out;
	}
	v = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		hd_error_set(err, HD_EINVAL, "the body is not JSON: %.200s", jerr.text);
		goto out;
	}
	if (!json_is_object(v)) {
		hd_error_set(err, HD_EINVAL, "the body must be a JSON object like "
			     "{\"platform\":\"fcm\",\"token\":\"…\"}");
		goto out;
	}
	json_object_foreach(v, key, val)
	{
		if (strcmp(key, "platform") && strcmp(key, "token") && strcmp(key, "environment") &&
		    strcmp(key, "subscription") && strcmp(key, "topics")) {
			hd_error_set(err, HD_EINVAL, "unknown member '%.64s' (use " MEMBERS ")", key);
			goto out;
		}
	}
	if (string_member(v, "platform", "platform", 16, &plat, &plat_len, err))
		goto out;
	if (!plat || (p = platform_of(plat)) < 0) {
		hd_error_set(err, HD_EINVAL, "'platform' is required: apns, fcm or webpush");
		goto out;
	}
	if (string_member(v, "token", "token", HD_DEVICE_FCM_TOKEN_MAX, &tok, &tok_len, err) ||
	    string_member(v, "environment", "environment", 16, &env, &env_len, err))
		goto out;
	dev = hd_calloc(1, sizeof(*dev));
	dev->platform = (enum hd_device_platform)p;
	if (p == HD_DEVICE_WEBPUSH) {
		if (tok || env) {
			hd_error_set(err, HD_EINVAL, "'%s' is not for webpush: send the browser's "
				     "'subscription'", tok ? "token" : "environment");
			goto out;
		}
		if (subscription_read(json_object_get(v, "subscription"), o, dev, err))
			goto out;
	} else {
		if (json_object_get(v, "subscription")) {
			hd_error_set(err, HD_EINVAL, "'subscription' is for webpush; %s takes 'token'", plat);
			goto out;
		}
		if (!tok) {
			hd_error_set(err, HD_EINVAL, "'token' is required for %s", plat);
			goto out;
		}
		if (p == HD_DEVICE_APNS ? apns_token_check(tok, tok_len, err)
					: fcm_token_check(tok, tok_len, err))
			goto out;
		if (p == HD_DEVICE_FCM && env) {
			hd_error_set(err, HD_EINVAL, "'environment' is for apns only");
			goto out;
		}
		if (env && strcmp(env, "production") && strcmp(env, "sandbox")) {
			hd_error_set(err, HD_EINVAL, "'environment' must be production or sandbox");
			goto out;
		}
		token_set(dev, hd_strdup(tok));
		/* APNs tokens are hex: one spelling, so that uniqueness holds. */
		for (char *c = dev->token; p == HD_DEVICE_APNS && *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (p == HD_DEVICE_APNS) {
			const char *e = env ? env : o->apns_environment ? o->apns_environment : "production";
			dev->environment = strcmp(e, "sandbox") == 0 ? HD_DEVICE_ENV_SANDBOX
								      : HD_DEVICE_ENV_PRODUCTION;
		}
	}
	if (topics_read(json_object_get(v, "topics"), dev, err))
		goto out;
	*out = dev;
	dev = NULL;
	rc = 0;
out:
	hd_devices_device_free(dev);
	json_decref(v);
	return rc;
}

/* The registration members of a stored record, through the body parser:
 * one set of rules for what a device may be. */
static int registration_parse(json_t *v, const struct hd_devices_parse_opts *o,
			      struct hd_device **out)
{
	static const char *const names[] = {"platform", "token", "environment", "subscription",
					    "topics"};
	json_t *body = json_object();
	char *text;
	int rc;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (json_object_get(v, names[i]))
			json_object_set(body, names[i], json_object_get(v, names[i]));
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	rc = text ? hd_devices_parse(text, strlen(text), o, out, NULL) : HD_EINVAL;
	free(text);
	return rc;
}

static json_t *topics_json(const struct hd_device *dev)
{
	json_t *a = json_array();
	for (size_t i = 0; i < dev->ntopics; i++)
		json_array_append_new(a, json_string(dev->topics[i]));
	return a;
}

/* The members both forms share: platform, token or subscription, environment, topics. */
static json_t *common_json(const struct hd_device *dev)
{
	json_t *o = json_pack("{s:s}", "platform", platforms[dev->platform]);
	if (dev->platform == HD_DEVICE_WEBPUSH)
		json_object_set_new(o, "subscription",
				    json_pack("{s:s, s:{s:s, s:s}}", "endpoint", dev->token, "keys",
					      "p256dh", dev->p256dh, "auth", dev->auth));
	else
		json_object_set_new(o, "token", json_string(dev->token));
	if (dev->platform == HD_DEVICE_APNS)
		json_object_set_new(o, "environment",
				    json_string(hd_devices_environment_name(dev->environment)));
	json_object_set_new(o, "topics", topics_json(dev));
	json_object_set_new(o, "state", json_string(dev->state == HD_DEVICE_ACTIVE ? "active" : "invalid"));
	return o;
}

char *hd_devices_record(const struct hd_device *dev)
{
	static const struct hd_device_failure none;
	const struct hd_device_failure *f = dev->failure ? dev->failure : &none;
	json_t *o = common_json(dev);
	json_object_set_new(o, "invalid_reason", json_string(TEXT(f->invalid_reason)));
	json_object_set_new(o, "last_success", json_integer(dev->last_success_ms));
	json_object_set_new(o, "last_failure",
			    json_pack("{s:I, s:i, s:s}", "time", (json_int_t)f->last.time_ms,
				      "status", f->last.status, "reason", TEXT(f->last.reason)));
	json_object_set_new(o, "created", json_integer(dev->created_ms));
	json_object_set_new(o, "updated", json_integer(dev->updated_ms));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) /* jansson fails only when out of memory: as hd_malloc */
		abort();
	return s;
}

static bool copy_text(json_t *v, char **out)
{
	if (!json_is_string(v) || json_string_length(v) > HD_DEVICE_REASON_MAX)
		return false;
	text_set(out, json_string_value(v), HD_DEVICE_REASON_MAX);
	return true;
}

int hd_devices_record_parse(const char *key, const char *value, struct hd_device **out)
{
	struct hd_devices_parse_opts o = {.allow_private = true};
	struct hd_device *dev = NULL;
	json_t *v = json_loads(value, 0, NULL), *f;
	const char *nl = strchr(key, '\n');
	const char *state;

	*out = NULL;
	if (!json_is_object(v) || !nl || (size_t)(nl - key) > HD_USER_ID_MAX ||
	    !hd_devices_id_ok(nl + 1, strlen(nl + 1)) || registration_parse(v, &o, &dev))
		goto out;
	f = json_object_get(v, "last_failure");
	state = json_string_value(json_object_get(v, "state"));
	struct hd_device_failure *fl = failure_of(dev);
	if (!copy_text(json_object_get(v, "invalid_reason"), &fl->invalid_reason) ||
	    !json_is_integer(json_object_get(v, "last_success")) || !json_is_object(f) ||
	    !json_is_integer(json_object_get(f, "time")) || !json_is_integer(json_object_get(f, "status")) ||
	    !copy_text(json_object_get(f, "reason"), &fl->last.reason) ||
	    !json_is_integer(json_object_get(v, "created")) ||
	    !json_is_integer(json_object_get(v, "updated")) || !state ||
	    (strcmp(state, "active") && strcmp(state, "invalid"))) {
		hd_devices_device_free(dev);
		dev = NULL;
		goto out;
	}
	dev->state = strcmp(state, "active") == 0 ? HD_DEVICE_ACTIVE : HD_DEVICE_INVALID;
	dev->last_success_ms = json_integer_value(json_object_get(v, "last_success"));
	fl->last.time_ms = json_integer_value(json_object_get(f, "time"));
	fl->last.status = (int)json_integer_value(json_object_get(f, "status"));
	if (!fl->invalid_reason && !fl->last.reason && !fl->last.time_ms && !fl->last.status) {
		free(fl); /* never failed: keep none */
		dev->failure = NULL;
	}
	dev->created_ms = json_integer_value(json_object_get(v, "created"));
	dev->updated_ms = json_integer_value(json_object_get(v, "updated"));
	dev->user = hd_strndup(key, (size_t)(nl - key));
	snprintf(dev->id, sizeof(dev->id), "%s", nl + 1);
out:
	json_decref(v);
	*out = dev;
	return dev ? 0 : HD_EINVAL;
}

static json_t *time_json(int64_t ms)
{
	char t[40];
	if (ms <= 0)
		return json_null();
	hd_clock_format_rfc3339(ms, t, sizeof(t));
	return json_string(t);
}

json_t *hd_devices_json(const struct hd_device *dev)
{
	static const struct hd_device_failure none;
	const struct hd_device_failure *f = dev->failure ? dev->failure : &none;
	json_t *o = json_pack("{s:s, s:s}", "user", TEXT(dev->user), "device", dev->id);
	json_t *common = common_json(dev);
	json_object_update(o, common);
	json_decref(common);
	json_object_set_new(o, "invalid_reason", dev->state == HD_DEVICE_INVALID
							 ? json_string(TEXT(f->invalid_reason))
							 : json_null());
	json_object_set_new(o, "last_success", time_json(dev->last_success_ms));
	json_object_set_new(o, "last_failure",
			    f->last.time_ms <= 0
				    ? json_null()
				    : json_pack("{s:o, s:i, s:s}", "time", time_json(f->last.time_ms),
						"status", f->last.status, "reason", TEXT(f->last.reason)));
	json_object_set_new(o, "created", time_json(dev->created_ms));
	json_object_set_new(o, "updated", time_json(dev->updated_ms));
	return o;
}

/* ---- the registry -------------------------------------------------------- */

/* The devices of one user or one topic, in registration order. */
struct vec {
	struct hd_device **v;
	size_t n, cap;
};

struct hd_devices {
	uv_loop_t *loop;                /* borrowed */
	struct hd_hub *hub;             /* borrowed */
	struct hd_devices_opts o;
	struct hd_map by_key;           /* "user\nid" → device (owned) */
	struct hd_map by_token;         /* "platform\ntoken" → device (borrowed from by_key);
					   keys borrowed: the device's token_key */
	struct hd_map by_user;          /* user → struct vec (owned) */
	struct hd_map by_topic;         /* topic → struct vec (owned) */
	struct hd_map dirty;            /* "user\nid" of devices with outcomes to write */
	uv_timer_t timer;
	bool timer_armed, loaded, stopping;
	void (*on_loaded)(void *arg);   /* hd_devices_on_loaded; NULL if none */
	void *on_loaded_arg;
	struct hd_record_op load;
	char load_after[HD_RECORD_KEY_MAX + 1];
	/* The re-list (shared engine): every record again, a page at a time. */
	struct hd_relist relist;
	bool shared;
	int64_t whole_begun_ms;         /* when the last whole re-list (or the load) began */
	/* Counts for the per-user re-reads (hd_devices_refresh): */
	uint64_t wseq;                  /* devices written or added here */
	uint64_t dels;                  /* deletes made here */
	size_t refresh_running, refresh_waiting;
	struct hd_devices_refresh *rq_head, *rq_tail; /* waiting, oldest first */
	long long refresh_log_ms;       /* hd_log_ratelimited's stamp */
};

/* One change the caller waits for: its record ops. */
struct change {
	hd_devices_done_fn done;
	void *arg;
	int pending;
	int err;
};

/* One record op in flight. */
struct wop {
	struct hd_record_op op;
	char *value;                    /* PUT: owned */
	struct change *c;               /* NULL: nobody waits */
};

static void dev_key(const struct hd_device *dev, char *out, size_t cap)
{
	snprintf(out, cap, "%s\n%s", dev->user, dev->id);
}

static struct vec *vec_get(const struct hd_map *m, const char *name)
{
	return hd_map_get(m, name);
}

static int vec_add(struct hd_map *m, const char *name, struct hd_device *dev)
{
	struct vec *v = hd_map_get(m, name);
	if (!v) {
		v = hd_calloc(1, sizeof(*v));
		if (hd_map_put(m, name, v)) {
			free(v);
			return HD_ELIMIT;
		}
	}
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 4;
		v->v = hd_realloc(v->v, v->cap * sizeof(*v->v));
	}
	v->v[v->n++] = dev;
	return 0;
}

static void vec_remove(struct hd_map *m, const char *name, const struct hd_device *dev)
{
	struct vec *v = hd_map_get(m, name);
	for (size_t i = 0; v && i < v->n; i++) {
		if (v->v[i] != dev)
			continue;
		memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof(*v->v));
		if (--v->n == 0) {
			hd_map_del(m, name);
			free(v->v);
			free(v);
		}
		return;
	}
}

static void index_del(struct hd_devices *d, struct hd_device *dev)
{
	char key[HD_RECORD_KEY_MAX + 1];
	const char *tk = dev->token_key;

	dev_key(dev, key, sizeof(key));
	hd_map_del(&d->by_key, key);
	hd_map_del(&d->dirty, key);
	if (hd_map_get(&d->by_token, tk) == dev)
		hd_map_del(&d->by_token, tk);
	vec_remove(&d->by_user, dev->user, dev);
	for (size_t i = 0; i < dev->ntopics; i++)
		vec_remove(&d->by_topic, dev->topics[i], dev);
	hd_metrics_add_at(HD_M_push_devices, dev->platform, dev->state, -1);
}

/* Adds dev (taken by the registry on 0) to every index; HD_ELIMIT when a
 * map is full (then nothing is added). */
static int index_add(struct hd_devices *d, struct hd_device *dev)
{
	char key[HD_RECORD_KEY_MAX + 1];
	const char *tk = dev->token_key;
	int rc;

	dev_key(dev, key, sizeof(key));
	rc = hd_map_put(&d->by_key, key, dev);
	if (!rc && (rc = hd_map_put(&d->by_token, tk, dev)))
		hd_map_del(&d->by_key, key);
	if (!rc && (rc = vec_add(&d->by_user, dev->user, dev))) {
		hd_map_del(&d->by_key, key);
		hd_map_del(&d->by_token, tk);
	}
	for (size_t i = 0; !rc && i < dev->ntopics; i++)
		if (vec_add(&d->by_topic, dev->topics[i], dev))
			hd_log_warn("device_topic_index_full user=%s device=%s topic=%s", dev->user, dev->id,
				    dev->topics[i]);
	if (!rc)
		hd_metrics_add_at(HD_M_push_devices, dev->platform, dev->state, 1);
	return rc;
}

static void change_end(struct change *c)
{
	if (c && --c->pending == 0) {
		if (c->done)
			c->done(c->arg, c->err);
		free(c);
	}
}

static void wop_done(struct hd_record_op *op)
{
	struct wop *w = op->arg;
	int err = op->err == HD_ENOTFOUND && op->kind == HD_RECORD_DELETE ? 0 : op->err;

	if (err)
		hd_log_error("device_write_failed kind=%s key=%s err=%d", op->rec.kind, op->rec.key, err);
	if (w->c && err && !w->c->err)
		w->c->err = err;
	change_end(w->c);
	hd_engine_record_op_fini(op);
	free(w->value);
	free(w);
}

static uint64_t value_hash(const char *value)
{
	static const unsigned char k[16] = "herald-devices!";
	return hd_siphash(k, value, strlen(value));
}

/* Writes dev's record (dev non-NULL) or deletes key's; c (may be NULL)
 * counts the op. */
static void submit(struct hd_devices *d, const char *key, struct hd_device *dev,
		   struct change *c)
{
	struct wop *w = hd_calloc(1, sizeof(*w));
	int rc;

	w->c = c;
	if (c)
		c->pending++;
	w->op.kind = dev ? HD_RECORD_PUT : HD_RECORD_DELETE;
	snprintf(w->op.rec.kind, sizeof(w->op.rec.kind), HD_DEVICES_RECORD_KIND);
	snprintf(w->op.rec.key, sizeof(w->op.rec.key), "%s", key);
	if (dev) {
		w->value = hd_devices_record(dev);
		w->op.rec.value = w->value;
		dev->rec_hash = value_hash(w->value);
		dev->seen_gen = d->relist.gen;
		dev->wseq = ++d->wseq;
	} else {
		d->dels++;
		hd_relist_deleted(&d->relist);
	}
	w->op.done = wop_done;
	w->op.arg = w;
	rc = hd_hub_record_op(d->hub, &w->op);
	if (rc) {
		w->op.err = rc;
		wop_done(&w->op);
	}
}

static bool lists_topic(const struct hd_device *dev, const char *topic)
{
	for (size_t i = 0; dev && i < dev->ntopics; i++)
		if (strcmp(dev->topics[i], topic) == 0)
			return true;
	return false;
}

int hd_devices_put(struct hd_devices *d, const char *user, const char *id, struct hd_device *dev,
		   bool *created, hd_devices_done_fn done, void *arg, struct hd_error *err)
{
	char key[HD_RECORD_KEY_MAX + 1];
	struct hd_device *old, *holder;
	struct vec *uv;
	const char *tk;
	size_t n_user, total;
	int rc = 0;

	if (!d->loaded || d->stopping) {
		rc = hd_error_set(err, HD_EUNAVAIL, "the device registry is %s; retry shortly",
				  d->stopping ? "stopping" : "loading");
		goto out;
	}
	text_set(&dev->user, user, HD_USER_ID_MAX);
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	dev_key(dev, key, sizeof(key));
	tk = dev->token_key;
	old = hd_map_get(&d->by_key, key);
	holder = hd_map_get(&d->by_token, tk);
	if (holder == old)
		holder = NULL;
	uv = vec_get(&d->by_user, user);
	n_user = (uv ? uv->n : 0) + (old ? 0 : 1) - (holder && strcmp(holder->user, user) == 0 ? 1 : 0);
	total = d->by_key.count + (old ? 0 : 1) - (holder ? 1 : 0);
	if (n_user > d->o.max_per_user) {
		rc = hd_error_set(err, HD_ELIMIT, "user '%s' has %zu devices, the most "
				  "--push-max-devices-per-user allows; delete one first",
				  user, uv ? uv->n : 0);
		goto out;
	}
	if (total > d->o.max_total) {
		rc = hd_error_set(err, HD_ELIMIT, "herald holds %zu devices, the most --push-max-devices "
				  "allows", d->by_key.count);
		goto out;
	}
	for (size_t i = 0; i < dev->ntopics; i++) {
		struct vec *tv = vec_get(&d->by_topic, dev->topics[i]);
		size_t n = tv ? tv->n : 0;
		if (lists_topic(old, dev->topics[i]) || lists_topic(holder, dev->topics[i]))
			continue;
		if (n >= HD_DEVICES_FOLLOWERS_MAX) {
			rc = hd_error_set(err, HD_ELIMIT, "topic '%s' has %d devices following it, the most "
					  "herald allows", dev->topics[i], HD_DEVICES_FOLLOWERS_MAX);
			goto out;
		}
	}
	struct change *c = hd_calloc(1, sizeof(*c));
	c->done = done;
	c->arg = arg;
	c->pending = 1; /* until every op is submitted */
	*created = !old;
	dev->state = HD_DEVICE_ACTIVE;
	dev->updated_ms = hd_now_ms();
	dev->created_ms = old ? old->created_ms : dev->updated_ms;
	if (old) {
		dev->last_success_ms = old->last_success_ms;
		/* The last failure stays; the invalid reason goes (active again). */
		failure_free(dev->failure);
		dev->failure = old->failure;
		old->failure = NULL; /* moved */
		if (dev->failure) {
			free(dev->failure->invalid_reason);
			dev->failure->invalid_reason = NULL;
		}
		index_del(d, old);
		hd_devices_device_free(old);
	}
	if (holder) {
		char hkey[HD_RECORD_KEY_MAX + 1];
		dev_key(holder, hkey, sizeof(hkey));
		hd_log_info("device_token_moved from_user=%s from_device=%s to_user=%s to_device=%s",
			    holder->user, holder->id, user, id);
		index_del(d, holder);
		hd_devices_device_free(holder);
		submit(d, hkey, NULL, c);
	}
	rc = index_add(d, dev);
	assert(rc == 0); /* the caps above keep every map below its ceiling */
	submit(d, key, dev, c);
	dev = NULL;
	change_end(c);
out:
	hd_devices_device_free(dev);
	return rc;
}

int hd_devices_delete(struct hd_devices *d, const char *user, const char *id,
		      hd_devices_done_fn done, void *arg)
{
	char key[HD_RECORD_KEY_MAX + 1];
	struct hd_device *dev;

	if (!d->loaded || d->stopping)
		return HD_EUNAVAIL;
	snprintf(key, sizeof(key), "%s\n%s", user, id);
	dev = hd_map_get(&d->by_key, key);
	if (!dev)
		return HD_ENOTFOUND;
	index_del(d, dev);
	hd_devices_device_free(dev);
	struct change *c = hd_calloc(1, sizeof(*c));
	c->done = done;
	c->arg = arg;
	c->pending = 1;
	submit(d, key, NULL, c);
	change_end(c);
	return 0;
}

const struct hd_device *hd_devices_get(const struct hd_devices *d, const char *user,
				       const char *id)
{
	char key[HD_RECORD_KEY_MAX + 1];
	snprintf(key, sizeof(key), "%s\n%s", user, id);
	return hd_map_get(&d->by_key, key);
}

size_t hd_devices_of_user(const struct hd_devices *d, const char *user,
			  struct hd_device *const **out)
{
	struct vec *v = vec_get(&d->by_user, user);
	*out = v ? v->v : NULL;
	return v ? v->n : 0;
}

size_t hd_devices_followers(const struct hd_devices *d, const char *topic,
			    struct hd_device *const **out)
{
	struct vec *v = vec_get(&d->by_topic, topic);
	*out = v ? v->v : NULL;
	return v ? v->n : 0;
}

size_t hd_devices_count(const struct hd_devices *d)
{
	return d->by_key.count;
}

/* ---- outcomes, written coalesced ---------------------------------------- */

static void collect_key(const char *key, void *value, void *arg)
{
	(void)value;
	struct hd_buf *b = arg;
	hd_buf_append(b, key, strlen(key) + 1);
}

/* Writes every device with pending outcomes. */
static void flush(struct hd_devices *d)
{
	struct hd_buf keys;

	if (!d->dirty.count)
		return;
	hd_buf_init(&keys, d->dirty.count * (HD_RECORD_KEY_MAX + 1));
	hd_map_each(&d->dirty, collect_key, &keys);
	for (size_t at = 0; at < keys.len; at += strlen(keys.data + at) + 1) {
		const char *key = keys.data + at;
		struct hd_device *dev = hd_map_get(&d->by_key, key);
		hd_map_del(&d->dirty, key);
		if (dev) {
			dev->dirty = false;
			submit(d, key, dev, NULL);
		}
	}
	hd_buf_fini(&keys);
}

static void on_flush_timer(uv_timer_t *t)
{
	struct hd_devices *d = t->data;
	d->timer_armed = false;
	flush(d);
}

/* The device to mark, or NULL; schedules its write. */
static struct hd_device *mark(struct hd_devices *d, const char *user, const char *id)
{
	char key[HD_RECORD_KEY_MAX + 1];
	struct hd_device *dev;

	snprintf(key, sizeof(key), "%s\n%s", user, id);
	dev = hd_map_get(&d->by_key, key);
	if (!dev || d->stopping)
		return dev;
	if (!dev->dirty && hd_map_put(&d->dirty, key, dev) == 0)
		dev->dirty = true;
	if (!d->timer_armed) {
		uv_timer_start(&d->timer, on_flush_timer, HD_DEVICES_FLUSH_MS, 0);
		d->timer_armed = true;
	}
	return dev;
}

void hd_devices_mark_success(struct hd_devices *d, const char *user, const char *id, int64_t now_ms)
{
	struct hd_device *dev = mark(d, user, id);
	if (dev)
		dev->last_success_ms = now_ms;
}

void hd_devices_mark_failure(struct hd_devices *d, const char *user, const char *id,
			     int64_t now_ms, int status, const char *reason)
{
	struct hd_device *dev = mark(d, user, id);
	if (!dev)
		return;
	struct hd_device_failure *f = failure_of(dev);
	f->last.time_ms = now_ms;
	f->last.status = status;
	text_set(&f->last.reason, reason, HD_DEVICE_REASON_MAX);
}

void hd_devices_mark_invalid(struct hd_devices *d, const char *user, const char *id,
			     int64_t now_ms, int status, const char *reason)
{
	struct hd_device *dev = mark(d, user, id);
	if (!dev)
		return;
	hd_devices_mark_failure(d, user, id, now_ms, status, reason);
	hd_metrics_add_at(HD_M_push_devices, dev->platform, dev->state, -1);
	hd_metrics_add_at(HD_M_push_devices, dev->platform, HD_DEVICE_INVALID, 1);
	dev->state = HD_DEVICE_INVALID;
	text_set(&failure_of(dev)->invalid_reason, reason, HD_DEVICE_REASON_MAX);
}

/* ---- load at start ------------------------------------------------------- */

static void load_page(struct hd_devices *d);

/* One stored device into the indexes; of two holding one token the newer
 * stays and the other is deleted (a move cut short by a crash). */
static void load_one(struct hd_devices *d, const struct hd_record *rec)
{
	struct hd_device *dev, *holder;
	char hkey[HD_RECORD_KEY_MAX + 1];
	const char *tk;

	if (hd_devices_record_parse(rec->key, rec->value, &dev)) {
		hd_log_warn("device_record_unreadable key=%s", rec->key);
		return;
	}
	tk = dev->token_key;
	holder = hd_map_get(&d->by_token, tk);
	if (holder && holder->updated_ms > dev->updated_ms) {
		hd_log_warn("device_token_duplicate kept_user=%s dropped_key=%s", holder->user, rec->key);
		submit(d, rec->key, NULL, NULL);
		hd_devices_device_free(dev);
		return;
	}
	if (holder) {
		hd_log_warn("device_token_duplicate kept_user=%s dropped_user=%s", dev->user, holder->user);
		dev_key(holder, hkey, sizeof(hkey));
		index_del(d, holder);
		hd_devices_device_free(holder);
		submit(d, hkey, NULL, NULL);
	}
	dev->rec_hash = value_hash(rec->value);
	dev->seen_gen = d->relist.gen;
	if (d->by_key.count >= d->o.max_total || index_add(d, dev)) {
		hd_log_warn("device_over_cap key=%s max=%zu", rec->key, d->o.max_total);
		hd_devices_device_free(dev);
	}
}

static void load_done(struct hd_record_op *op)
{
	struct hd_devices *d = op->arg;
	bool more;

	if (op->err && op->err != HD_ENOTFOUND)
		hd_log_error("devices_load_failed err=%d", op->err);
	for (size_t i = 0; !op->err && i < op->n; i++) {
		load_one(d, &op->recs[i]);
		snprintf(d->load_after, sizeof(d->load_after), "%s", op->recs[i].key);
	}
	more = !op->err && op->n >= HD_DEVICES_LOAD_PAGE && !d->stopping;
	hd_engine_record_op_fini(op);
	if (more) {
		load_page(d);
		return;
	}
	d->loaded = true;
	hd_log_info("devices_loaded count=%zu", d->by_key.count);
	if (d->shared && !d->stopping)
		hd_relist_start(&d->relist);
	if (d->on_loaded)
		d->on_loaded(d->on_loaded_arg);
}

/* Lists the next page of device records after load_after. */
static void load_page(struct hd_devices *d)
{
	int rc;

	hd_engine_record_list_init(&d->load, HD_DEVICES_RECORD_KIND, NULL, d->load_after,
				   HD_DEVICES_LOAD_PAGE, load_done, d);
	rc = hd_hub_record_op(d->hub, &d->load);
	if (rc) {
		d->load.err = rc;
		load_done(&d->load);
	}
}

/* ---- the re-list (several nodes; consume/relist.h) ------------------------ */

/* One record read back (the re-list or a user's re-read): a device new
 * here is added (unless may_add is false: the list may predate a delete
 * made here), one whose record changed on another node is replaced (unless
 * outcomes of its own wait to be written here; they go to the record
 * within HD_DEVICES_FLUSH_MS). */
static void merge_record(struct hd_devices *d, const struct hd_record *rec, bool may_add)
{
	struct hd_device *old = hd_map_get(&d->by_key, rec->key), *dev, *holder;
	uint64_t h = value_hash(rec->value);

	if (old) {
		old->seen_gen = d->relist.gen;
		if (old->rec_hash == h || old->dirty)
			return;
	} else if (!may_add) {
		return;
	}
	if (hd_devices_record_parse(rec->key, rec->value, &dev))
		return;
	if (old && old->updated_ms > dev->updated_ms) {
		hd_devices_device_free(dev); /* a list older than a change made here */
		return;
	}
	holder = hd_map_get(&d->by_token, dev->token_key);
	if (holder && holder != old) {
		if (holder->updated_ms > dev->updated_ms) {
			hd_devices_device_free(dev);
			return;
		}
		index_del(d, holder); /* its token moved on another node */
		hd_devices_device_free(holder);
	}
	if (old) {
		index_del(d, old);
		hd_devices_device_free(old);
	}
	dev->rec_hash = h;
	dev->seen_gen = d->relist.gen;
	dev->wseq = ++d->wseq;
	if (d->by_key.count >= d->o.max_total || index_add(d, dev)) {
		hd_log_warn("device_over_cap key=%s max=%zu", rec->key, d->o.max_total);
		hd_devices_device_free(dev);
	}
}

static void relist_seen(void *arg, const struct hd_record *rec)
{
	struct hd_devices *d = arg;
	merge_record(d, rec, !d->relist.skip_new);
}

struct sweep {
	struct hd_buf keys;
	uint64_t gen;
};

static void sweep_one(const char *key, void *value, void *arg)
{
	struct sweep *sw = arg;
	const struct hd_device *dev = value;
	/* Missing from two lists in a row: a write made here just before a
	 * list began may not be in that list yet. */
	if (sw->gen - dev->seen_gen >= 2 && !dev->dirty)
		hd_buf_append(&sw->keys, key, strlen(key) + 1);
}

/* The whole list was read: a device neither it nor the one before had was
 * deleted on another node. */
static void relist_sweep(void *arg)
{
	struct hd_devices *d = arg;
	struct sweep sw = {.gen = d->relist.gen};
	hd_buf_init(&sw.keys, d->by_key.count * (HD_RECORD_KEY_MAX + 1) + 1);
	hd_map_each(&d->by_key, sweep_one, &sw);
	for (size_t at = 0; at < sw.keys.len; at += strlen(sw.keys.data + at) + 1) {
		struct hd_device *dev = hd_map_get(&d->by_key, sw.keys.data + at);
		if (!dev)
			continue;
		hd_log_info("device_dropped user=%s device=%s reason=\"deleted on another node\"",
			    dev->user, dev->id);
		index_del(d, dev);
		hd_devices_device_free(dev);
	}
	hd_buf_fini(&sw.keys);
	d->whole_begun_ms = d->relist.begun_ms;
}

/* ---- one user's re-read (several nodes; hd_devices_refresh) --------------- */

bool hd_devices_stale(const struct hd_devices *d, int64_t stored_ms)
{
	return d->shared && d->whole_begun_ms < stored_ms + HD_DEVICES_SKEW_MS;
}

/* The user's devices the list lacked go: deleted on another node (or their
 * token moved there). Not one written or added here since the read was
 * sent (its record may postdate the list). One with outcomes waiting goes
 * too, and they with it (their write would bring the record back). */
static void refresh_drop(struct hd_devices *d, struct hd_devices_refresh *r)
{
	struct hd_record_op *op = &r->op;
	struct hd_device *gone[HD_RELIST_PAGE_MAX];
	size_t ngone = 0;
	struct hd_map got;
	struct vec *v;

	r->prefix[strlen(r->prefix) - 1] = '\0'; /* the user */
	v = vec_get(&d->by_user, r->prefix);
	if (!v)
		return;
	hd_map_init_borrowed(&got, op->n + 1);
	for (size_t i = 0; i < op->n; i++)
		hd_map_put(&got, op->recs[i].key, &op->recs[i]);
	for (size_t i = 0; i < v->n && ngone < HD_RELIST_PAGE_MAX; i++) {
		char key[HD_RECORD_KEY_MAX + 1];
		struct hd_device *dev = v->v[i];
		dev_key(dev, key, sizeof(key));
		if (!hd_map_get(&got, key) && dev->wseq <= r->start_seq)
			gone[ngone++] = dev;
	}
	hd_map_fini(&got);
	for (size_t i = 0; i < ngone; i++) {
		hd_log_info("device_dropped user=%s device=%s reason=\"deleted on another node\"",
			    gone[i]->user, gone[i]->id);
		index_del(d, gone[i]);
		hd_devices_device_free(gone[i]);
	}
}

static void refresh_send(struct hd_devices *d, struct hd_devices_refresh *r);

/* Starts waiting re-reads while there is room. */
static void refresh_next(struct hd_devices *d)
{
	while (d->refresh_running < HD_DEVICES_REFRESH_MAX && d->rq_head && !d->stopping) {
		struct hd_devices_refresh *r = d->rq_head;
		d->rq_head = r->next;
		if (!d->rq_head)
			d->rq_tail = NULL;
		d->refresh_waiting--;
		refresh_send(d, r);
	}
}

/* The read's answer (or its failure to be sent, sync = true). */
static void refresh_end(struct hd_devices_refresh *r, bool sync)
{
	struct hd_devices *d = r->d;
	struct hd_record_op *op = &r->op;
	int err = op->err == HD_ENOTFOUND ? 0 : op->err;
	size_t plen = strlen(r->prefix);

	d->refresh_running--;
	if (!err && d->stopping)
		err = HD_EUNAVAIL;
	if (err && err != HD_EUNAVAIL && hd_log_ratelimited(&d->refresh_log_ms))
		hd_log_warn("device_refresh_failed user=%.*s err=%d (the cached devices are used)",
			    (int)(plen - 1), r->prefix, err);
	for (size_t i = 0; !err && i < op->n; i++)
		if (strncmp(op->recs[i].key, r->prefix, plen) == 0)
			merge_record(d, &op->recs[i], d->dels == r->start_dels);
	if (!err && op->n < op->limit)
		refresh_drop(d, r); /* the list was whole */
	hd_engine_record_op_fini(op);
	r->done(r->arg, err);
	if (!sync)
		refresh_next(d);
}

static void refresh_done(struct hd_record_op *op)
{
	refresh_end(op->arg, false);
}

static void refresh_send(struct hd_devices *d, struct hd_devices_refresh *r)
{
	int rc;

	d->refresh_running++;
	r->start_seq = d->wseq;
	r->start_dels = d->dels;
	hd_engine_record_list_init(&r->op, HD_DEVICES_RECORD_KIND, r->prefix, NULL,
				   HD_RELIST_PAGE_MAX, refresh_done, r);
	rc = hd_hub_record_op(d->hub, &r->op);
	if (rc) {
		r->op.err = rc;
		refresh_end(r, true);
	}
}

int hd_devices_refresh(struct hd_devices *d, struct hd_devices_refresh *r, const char *user,
		       hd_devices_refresh_fn done, void *arg)
{
	if (!d->loaded || d->stopping)
		return HD_EUNAVAIL;
	if (d->refresh_running >= HD_DEVICES_REFRESH_MAX &&
	    d->refresh_waiting >= HD_DEVICES_REFRESH_QUEUE_MAX) {
		if (hd_log_ratelimited(&d->refresh_log_ms))
			hd_log_warn("device_refresh_queue_full waiting=%zu (the cached devices are "
				    "used)", d->refresh_waiting);
		return HD_ELIMIT;
	}
	memset(r, 0, sizeof(*r));
	r->d = d;
	r->done = done;
	r->arg = arg;
	snprintf(r->prefix, sizeof(r->prefix), "%s\n", user);
	if (d->refresh_running < HD_DEVICES_REFRESH_MAX) {
		refresh_send(d, r);
		return 0;
	}
	if (d->rq_tail)
		d->rq_tail->next = r;
	else
		d->rq_head = r;
	d->rq_tail = r;
	d->refresh_waiting++;
	return 0;
}

/* ---- life ---------------------------------------------------------------- */

struct hd_devices *hd_devices_new(uv_loop_t *loop, struct hd_hub *hub,
				  const struct hd_devices_opts *o)
{
	struct hd_devices *d = hd_calloc(1, sizeof(*d));
	size_t max = o->max_total ? o->max_total : HD_DEVICES_MAX_DEFAULT;

	d->loop = loop;
	d->hub = hub;
	d->o = *o;
	d->o.max_total = max;
	hd_map_init(&d->by_key, max);
	hd_map_init_borrowed(&d->by_token, max);
	hd_map_init(&d->by_user, max);
	hd_map_init(&d->by_topic, max * HD_DEVICE_TOPICS_MAX);
	hd_map_init(&d->dirty, max);
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	hd_relist_init(&d->relist, loop, hub,
		       &(struct hd_relist_cfg){.name = "devices",
					       .kind = HD_DEVICES_RECORD_KIND,
					       .page = HD_DEVICES_LOAD_PAGE,
					       .item = relist_seen,
					       .done = relist_sweep,
					       .arg = d});
	return d;
}

void hd_devices_start(struct hd_devices *d)
{
	d->shared = hd_hub_owner_shared(d->hub); /* the engine is set now */
	d->whole_begun_ms = hd_now_ms();
	d->load_after[0] = '\0';
	load_page(d);
}

bool hd_devices_loaded(const struct hd_devices *d)
{
	return d->loaded;
}

void hd_devices_on_loaded(struct hd_devices *d, void (*fn)(void *arg), void *arg)
{
	d->on_loaded = fn;
	d->on_loaded_arg = arg;
}

void hd_devices_stop(struct hd_devices *d)
{
	if (d->stopping)
		return;
	flush(d);
	d->stopping = true;
	uv_timer_stop(&d->timer);
	uv_close((uv_handle_t *)&d->timer, NULL);
	hd_relist_stop(&d->relist);
	while (d->rq_head) { /* the waiting re-reads end unread */
		struct hd_devices_refresh *r = d->rq_head;
		d->rq_head = r->next;
		d->refresh_waiting--;
		r->done(r->arg, HD_EUNAVAIL);
	}
	d->rq_tail = NULL;
}

static void free_device(const char *key, void *value, void *arg)
{
	struct hd_device *dev = value;

	(void)key;
	(void)arg;
	hd_metrics_add_at(HD_M_push_devices, dev->platform, dev->state, -1);
	hd_devices_device_free(dev);
}

static void free_vec(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	struct vec *v = value;
	free(v->v);
	free(v);
}

void hd_devices_free(struct hd_devices *d)
{
	if (!d)
		return;
	hd_map_each(&d->by_key, free_device, NULL);
	hd_map_each(&d->by_user, free_vec, NULL);
	hd_map_each(&d->by_topic, free_vec, NULL);
	hd_map_fini(&d->by_key);
	hd_map_fini(&d->by_token);
	hd_map_fini(&d->by_user);
	hd_map_fini(&d->by_topic);
	hd_map_fini(&d->dirty);
	free(d);
}
