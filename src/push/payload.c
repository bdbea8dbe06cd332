/* payload — see payload.h. */
#include "push/payload.h"
#include "core/alloc.h"
#include "core/rcbuf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the event's extension attributes asked for, after checking. */
struct overrides {
	enum hd_push_sub_mode mode;
	enum hd_push_urgency urgency;
	const char *title, *body, *sound; /* borrowed from the event; NULL = none */
	long long badge;                  /* -1 = none */
};

/* ---- overrides -------------------------------------------------------- */

static void ignore(struct hd_push_payload *out, const char *name, const char *why)
{
	size_t n = strlen(out->ignored);
	out->nignored++;
	if (n + 1 < sizeof(out->ignored))
		snprintf(out->ignored + n, sizeof(out->ignored) - n, "%s%s: %s", n ? "; " : "", name,
			 why);
}

/* The string attribute name of ev of 1..max bytes, or NULL (then, when it
 * is present, ignored with a reason). */
static const char *text_attr(const json_t *ev, const char *name, size_t max,
			     struct hd_push_payload *out)
{
	json_t *v = json_object_get(ev, name);
	char why[64];

	if (!v)
		return NULL;
	if (json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= max &&
	    strlen(json_string_value(v)) == json_string_length(v))
		return json_string_value(v);
	snprintf(why, sizeof(why), "must be a string of 1 to %zu bytes", max);
	ignore(out, name, why);
	return NULL;
}

/* A choice among names[] (n of them) into *index; false when absent or ignored. */
static bool choice_attr(const json_t *ev, const char *name, const char *const *names, size_t n,
			const char *why, size_t *index, struct hd_push_payload *out)
{
	json_t *v = json_object_get(ev, name);
	if (!v)
		return false;
	for (size_t i = 0; json_is_string(v) && i < n; i++) {
		if (strcmp(json_string_value(v), names[i]) == 0) {
			*index = i;
			return true;
		}
	}
	ignore(out, name, why);
	return false;
}

static long long badge_attr(const json_t *ev, struct hd_push_payload *out)
{
	json_t *v = json_object_get(ev, "pushbadge");
	if (!v)
		return -1;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT32_MAX)
		return (long long)json_integer_value(v);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t digits = strspn(s, "0123456789");
		if (digits >= 1 && digits <= 9 && digits == json_string_length(v))
			return strtoll(s, NULL, 10);
	}
	ignore(out, "pushbadge", "must be a whole number from 0 to 2147483647");
	return -1;
}

/* The collapse id: pushcollapse, else the subject when it fits. */
static void collapse_attr(const json_t *ev, struct hd_push_payload *out)
{
	json_t *v = json_object_get(ev, "pushcollapse"), *subject = json_object_get(ev, "subject");

	if (json_is_integer(v)) {
		snprintf(out->collapse, sizeof(out->collapse), "%lld",
			 (long long)json_integer_value(v));
		return;
	}
	const char *c = text_attr(ev, "pushcollapse", HD_PUSH_PAYLOAD_COLLAPSE_MAX, out);
	if (!c && json_is_string(subject) && json_string_length(subject) >= 1 &&
	    json_string_length(subject) <= HD_PUSH_PAYLOAD_COLLAPSE_MAX &&
	    strlen(json_string_value(subject)) == json_string_length(subject))
		c = json_string_value(subject);
	if (c)
		snprintf(out->collapse, sizeof(out->collapse), "%s", c);
}

static void overrides_read(const json_t *ev, enum hd_push_sub_mode mode, struct overrides *o,
			   struct hd_push_payload *out)
{
	static const char *const urgencies[] = {[HD_PUSH_URGENCY_NORMAL] = "normal",
						[HD_PUSH_URGENCY_HIGH] = "high",
						[HD_PUSH_URGENCY_LOW] = "low"};
	size_t i;

	memset(o, 0, sizeof(*o));
	o->mode = mode;
	o->urgency = HD_PUSH_URGENCY_NORMAL;
	json_t *m = json_object_get(ev, "pushmode");
	if (m && hd_push_sub_config_mode_parse(json_string_value(m), &o->mode))
		ignore(out, "pushmode", "must be alert, silent or doorbell");
	if (choice_attr(ev, "pushurgency", urgencies, 3, "must be high, normal or low", &i, out))
		o->urgency = (enum hd_push_urgency)i;
	collapse_attr(ev, out);
	o->title = text_attr(ev, "pushtitle", HD_PUSH_PAYLOAD_TITLE_MAX, out);
	o->body = text_attr(ev, "pushbody", HD_PUSH_PAYLOAD_BODY_MAX, out);
	o->sound = text_attr(ev, "pushsound", HD_PUSH_PAYLOAD_SOUND_MAX, out);
	o->badge = badge_attr(ev, out);
	if (!o->body) {
		/* An alert shows something: the subject, else the type. */
		const char *names[] = {"subject", "type"};
		for (i = 0; i < 2 && !o->body; i++) {
			json_t *v = json_object_get(ev, names[i]);
			if (json_is_string(v) && json_string_length(v) >= 1 &&
			    json_string_length(v) <= HD_PUSH_PAYLOAD_BODY_MAX &&
			    strlen(json_string_value(v)) == json_string_length(v))
				o->body = json_string_value(v);
		}
	}
}

/* ---- the event's data, byte for byte ------------------------------------ */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* The end of the JSON value at p (valid JSON: jansson has loaded it), or
 * NULL when it runs past end. */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;
	do {
		if (p >= end)
			return NULL;
		if (*p == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= end)
				return NULL;
			p++;
		} else if (*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if (*p == '}' || *p == ']') {
			depth--;
			p++;
		} else if (depth == 0) {
			while (p < end && !strchr(",}] \t\r\n", *p))
				p++;
			return p;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/* The raw text of the top-level member name of the object json; false when
 * it is not there as written (an escaped key: the caller falls back). */
static bool raw_member(const char *json, size_t len, const char *name, const char **v,
		       size_t *vlen)
{
	const char *p = json, *end = json + len, *k, *kend, *vend;
	size_t nlen = strlen(name);

	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return false;
	for (;;) {
		p = skip_ws(p, end);
		if (p >= end || *p != '"' || !(kend = skip_value(p, end)))
			return false;
		k = p + 1;
		p = skip_ws(kend, end);
		if (p >= end || *p++ != ':')
			return false;
		p = skip_ws(p, end);
		if (!(vend = skip_value(p, end)))
			return false;
		if ((size_t)(kend - 1 - k) == nlen && memcmp(k, name, nlen) == 0) {
			*v = p;
			*vlen = (size_t)(vend - p);
			return true;
		}
		p = skip_ws(vend, end);
		if (p >= end || *p++ != ',')
			return false;
	}
}

/* The event's data member: its name, value and raw text (owned in *raw). */
struct data {
	const char *name;              /* "data" or "data_base64"; NULL = none */
	const json_t *value;           /* borrowed from the event */
	char *raw;                     /* owned */
	size_t raw_len;
};

static void data_find(const json_t *ev, const struct hd_stored_event *se, struct data *d)
{
	static const char *const names[] = {"data", "data_base64"};
	const char *v;
	size_t n;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < 2 && !d->name; i++) {
		if (!(d->value = json_object_get(ev, names[i])))
			continue;
		d->name = names[i];
		/* jansson skips NUL bytes outside strings; a stored event has none,
		 * but the payload must never carry one. */
		if (raw_member(se->json->data, se->json->len, d->name, &v, &n) && !memchr(v, 0, n)) {
			d->raw = hd_malloc(n + 1);
			memcpy(d->raw, v, n);
			d->raw[n] = '\0';
			d->raw_len = n;
		} else {
			d->raw = json_dumps(d->value, JSON_COMPACT | JSON_ENCODE_ANY);
			if (!d->raw)
				abort();
			d->raw_len = strlen(d->raw);
		}
	}
}

/* ---- the platforms' payloads -------------------------------------------- */

static json_t *herald_object(const struct hd_push_payload_in *in, const json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *type = json_string_value(json_object_get(ev, "type"));
	return json_pack("{s:s,s:I,s:s,s:s,s:s}", "topic", in->topic, "offset",
			 (json_int_t)in->ev->offset, "epoch", in->epoch, "id", id ? id : "", "type",
			 type ? type : "");
}

static void set_text(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

/* The payload object without data; *fcm_data is FCM's "data" map (borrowed
 * from the result), NULL for the other platforms. */
static json_t *platform_object(const struct hd_push_payload_in *in, const struct overrides *o,
			       json_t *herald, json_t **fcm_data)
{
	json_t *obj = json_object(), *n;
	bool alert = o->mode == HD_PUSH_SUB_ALERT;

	*fcm_data = NULL;
	switch (in->platform) {
	case HD_PUSH_PAYLOAD_APNS: {
		json_t *aps = json_object();
		if (alert) {
			n = json_object();
			set_text(n, "title", o->title);
			set_text(n, "body", o->body);
			json_object_set_new(aps, "alert", n);
			if (o->badge >= 0)
				json_object_set_new(aps, "badge", json_integer(o->badge));
			set_text(aps, "sound", o->sound);
		} else {
			json_object_set_new(aps, "content-available", json_integer(1));
		}
		json_object_set_new(obj, "aps", aps);
		json_object_set(obj, "herald", herald);
		break;
	}
	case HD_PUSH_PAYLOAD_FCM: {
		char *text = json_dumps(herald, JSON_COMPACT);
		if (!text)
			abort();
		if (alert) {
			n = json_object();
			set_text(n, "title", o->title);
			set_text(n, "body", o->body);
			json_object_set_new(obj, "notification", n);
			if (o->sound || o->badge >= 0) {
				json_t *an = json_object();
				set_text(an, "sound", o->sound);
				if (o->badge >= 0)
					json_object_set_new(an, "notification_count",
							    json_integer(o->badge));
				json_object_set_new(obj, "android", json_pack("{s:o}", "notification", an));
			}
		}
		*fcm_data = json_object();
		json_object_set_new(*fcm_data, "herald", json_string(text));
		json_object_set_new(obj, "data", *fcm_data);
		free(text);
		break;
	}
	case HD_PUSH_PAYLOAD_WEBPUSH:
		json_object_set(obj, "herald", herald);
		if (alert) {
			n = json_object();
			set_text(n, "title", o->title);
			set_text(n, "body", o->body);
			if (o->badge >= 0)
				json_object_set_new(n, "badge", json_integer(o->badge));
			set_text(n, "sound", o->sound);
			json_object_set_new(obj, "notification", n);
		}
		break;
	}
	return obj;
}

/* The payload text with the data (NULL: without), or NULL when it is
 * longer than max. */
static char *payload_text(json_t *obj, json_t *fcm_data, const struct data *d, size_t max)
{
	char *text, *with;
	size_t len, klen, wlen;

	if (d && fcm_data) {
		json_object_set_new(fcm_data, d->name,
				    json_is_string(d->value) ? json_string(json_string_value(d->value))
							     : json_string(d->raw));
		text = json_dumps(obj, JSON_COMPACT);
		json_object_del(fcm_data, d->name);
		if (!text)
			abort();
		if (strlen(text) <= max)
			return text;
		free(text);
		return NULL;
	}
	text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		abort();
	len = strlen(text);
	if (!d)
		goto out;
	/* {…} becomes {…,"<name>":<raw>}: the data byte for byte. */
	klen = strlen(d->name);
	wlen = len - 1 + 2 + klen + 2 + d->raw_len + 1;
	if (wlen > max) {
		free(text);
		return NULL;
	}
	with = hd_malloc(wlen + 1);
	memcpy(with, text, len - 1);
	char *w = with + len - 1;
	w += sprintf(w, ",\"%s\":", d->name);
	memcpy(w, d->raw, d->raw_len);
	memcpy(w + d->raw_len, "}", 2);
	free(text);
	return with;
out:
	if (len <= max)
		return text;
	free(text);
	return NULL;
}

/* The expiry in ms (0 = none) of the event under a subscription ttl. */
static int64_t expiry_ms(const struct hd_push_payload_in *in)
{
	int64_t e = in->ev->expires_ms;
	if (in->ttl_ms > 0) {
		int64_t t = in->ev->time_ms + in->ttl_ms;
		if (e == 0 || t < e)
			e = t;
	}
	return e;
}

enum hd_push_payload_result hd_push_payload_build(const struct hd_push_payload_in *in,
						  struct hd_push_payload *out)
{
	size_t max = in->platform == HD_PUSH_PAYLOAD_WEBPUSH ? HD_PUSH_PAYLOAD_WEBPUSH_MAX
							      : HD_PUSH_PAYLOAD_MAX;
	json_t *ev, *herald = NULL, *obj = NULL, *fcm_data;
	struct overrides o;
	struct data d = {0};
	int64_t expiry = expiry_ms(in);

	memset(out, 0, sizeof(*out));
	ev = json_loadb(in->ev->json->data, in->ev->json->len, 0, NULL);
	if (!json_is_object(ev)) {
		out->result = HD_PUSH_PAYLOAD_UNREADABLE;
		goto out;
	}
	if (expiry > 0 && expiry <= in->now_ms) {
		out->result = HD_PUSH_PAYLOAD_EXPIRED;
		goto out;
	}
	overrides_read(ev, in->mode, &o, out);
	out->mode = o.mode;
	herald = herald_object(in, ev);
	obj = platform_object(in, &o, herald, &fcm_data);
	if (o.mode != HD_PUSH_SUB_DOORBELL)
		data_find(ev, in->ev, &d);
	if (d.name)
		out->text = payload_text(obj, fcm_data, &d, max);
	if (!out->text) {
		out->data_left_out = d.name != NULL;
		out->text = payload_text(obj, fcm_data, NULL, max);
	}
	if (!out->text) {
		out->result = HD_PUSH_PAYLOAD_TOO_BIG;
		goto out;
	}
	out->result = HD_PUSH_PAYLOAD_OK;
	out->msg.mode = o.mode == HD_PUSH_SUB_ALERT ? HD_PUSH_ALERT : HD_PUSH_SILENT;
	out->msg.urgency = o.urgency;
	out->msg.expiration = expiry > 0 ? (expiry + 999) / 1000 : 0;
	out->msg.collapse_id = out->collapse[0] ? out->collapse : NULL;
	out->msg.payload = out->text;
	out->msg.payload_len = strlen(out->text);
out:
	free(d.raw);
	json_decref(obj);
	json_decref(herald);
	json_decref(ev);
	return out->result;
}

void hd_push_payload_fini(struct hd_push_payload *out)
{
	free(out->text);
	out->text = NULL;
	out->msg.payload = NULL;
	out->msg.payload_len = 0;
}

const char *hd_push_payload_result_name(enum hd_push_payload_result r)
{
	static const char *const names[] = {[HD_PUSH_PAYLOAD_OK] = "ok",
					    [HD_PUSH_PAYLOAD_EXPIRED] = "skip: expired",
					    [HD_PUSH_PAYLOAD_TOO_BIG] = "too big",
					    [HD_PUSH_PAYLOAD_UNREADABLE] = "unreadable"};
	return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
