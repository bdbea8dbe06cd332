/*
 * answer — see answer.h for the tables. The bodies come from the network:
 * they are parsed with jansson (no recursion limit needed: jansson caps
 * depth), and only string members of the expected shape are read.
 */
#include "push/answer.h"

#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Longest body parsed; a longer one is classified by its status alone. */
#define ANSWER_BODY_MAX 65536

static void verdict_set(struct hd_push_verdict *v, enum hd_push_verdict_kind kind, int status,
			int64_t after_ms, const char *reason)
{
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->status = status;
	v->count_attempt = true;
	v->after_ms = (kind == HD_PUSH_RETRY || kind == HD_PUSH_THROTTLED) && after_ms >= 0
			      ? after_ms : -1;
	size_t n = 0;
	for (const char *r = reason ? reason : ""; *r && n + 1 < sizeof(v->reason); r++)
		v->reason[n++] = *r >= ' ' && *r < 0x7f ? *r : '?';
	v->reason[n] = '\0';
	if (n == 0 && kind != HD_PUSH_OK)
		snprintf(v->reason, sizeof(v->reason), "HTTP %d", status);
}

static json_t *body_parse(const char *body, size_t len)
{
	if (!body || len == 0 || len > ANSWER_BODY_MAX)
		return NULL;
	json_t *j = json_loadb(body, len, 0, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The string member name of object o, or NULL. */
static const char *str_of(const json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/* ---- APNs ------------------------------------------------------------------- */

void hd_answer_apns(int status, const char *body, size_t len, int64_t retry_after_ms,
		    struct hd_push_verdict *v)
{
	json_t *j = body_parse(body, len);
	const char *reason = j ? str_of(j, "reason") : NULL;
	enum hd_push_verdict_kind kind;
	bool wide = false;

	if (status == 200)
		kind = HD_PUSH_OK;
	else if (status == 410)
		kind = HD_PUSH_INVALID;
	else if (status == 400 && reason &&
		 (strcmp(reason, "BadDeviceToken") == 0 ||
		  strcmp(reason, "DeviceTokenNotForTopic") == 0))
		kind = HD_PUSH_INVALID;
	else if (status == 403)
		kind = HD_PUSH_AUTH;
	else if (status == 429) {
		kind = HD_PUSH_THROTTLED;
		wide = reason && strcmp(reason, "TooManyProviderTokenUpdates") == 0;
	} else if (status >= 400 && status < 500)
		kind = HD_PUSH_REFUSED;
	else
		kind = HD_PUSH_RETRY;
	verdict_set(v, kind, status, retry_after_ms, kind == HD_PUSH_OK ? NULL : reason);
	v->provider_wide = wide;
	json_decref(j);
}

/* ---- FCM ---------------------------------------------------------------------- */

/* The FcmError errorCode of details[], or NULL; *token_violation set when a
 * BadRequest field violation names message.token. */
static const char *fcm_details(const json_t *err, bool *token_violation)
{
	const json_t *details = json_object_get(err, "details");
	const char *code = NULL;
	size_t i;
	json_t *d;

	if (!json_is_array(details))
		return NULL;
	json_array_foreach(details, i, d) {
		const char *type = str_of(d, "@type");
		if (!type)
			continue;
		if (strstr(type, "FcmError") && str_of(d, "errorCode"))
			code = str_of(d, "errorCode");
		const json_t *fv = json_object_get(d, "fieldViolations");
		size_t k;
		json_t *f;
		if (json_is_array(fv))
			json_array_foreach(fv, k, f) {
				const char *field = str_of(f, "field");
				if (field && strcmp(field, "message.token") == 0)
					*token_violation = true;
			}
	}
	return code;
}

void hd_answer_fcm(int status, const char *body, size_t len, int64_t retry_after_ms,
		   struct hd_push_verdict *v)
{
	json_t *j = body_parse(body, len);
	const json_t *err = j ? json_object_get(j, "error") : NULL;
	bool token_violation = false;
	const char *code = err ? fcm_details(err, &token_violation) : NULL;
	const char *st = err ? str_of(err, "status") : NULL;
	const char *msg = err ? str_of(err, "message") : NULL;
	const char *what = code ? code : st;
	enum hd_push_verdict_kind kind;
	bool wide = false;

#define IS(x) (what && strcmp(what, (x)) == 0)
	if (status >= 200 && status < 300)
		kind = HD_PUSH_OK;
	else if (status < 400 || status >= 500)
		kind = HD_PUSH_RETRY; /* 5xx, UNAVAILABLE, INTERNAL, odd statuses */
	else if ((IS("UNREGISTERED") || IS("SENDER_ID_MISMATCH") || (status == 404 && !what)) &&
		 (status == 400 || status == 403 || status == 404 || status == 410))
		kind = HD_PUSH_INVALID;
	else if (status == 400 || IS("INVALID_ARGUMENT"))
		kind = status == 400 && (token_violation || (msg && strstr(msg, "registration token")))
			       ? HD_PUSH_INVALID : HD_PUSH_REFUSED;
	else if (status == 429 || IS("QUOTA_EXCEEDED")) {
		kind = HD_PUSH_THROTTLED;
		wide = true;
	} else if (IS("THIRD_PARTY_AUTH_ERROR"))
		kind = HD_PUSH_REFUSED;
	else if (status == 401 || status == 403 || IS("UNAUTHENTICATED") || IS("PERMISSION_DENIED"))
		kind = HD_PUSH_AUTH;
	else
		kind = HD_PUSH_REFUSED;
#undef IS
	verdict_set(v, kind, status, retry_after_ms, kind == HD_PUSH_OK ? NULL : what);
	v->provider_wide = wide;
	json_decref(j);
}

/* ---- Web Push ------------------------------------------------------------------ */

void hd_answer_webpush(int status, const char *body, size_t len, int64_t retry_after_ms,
		       struct hd_push_verdict *v)
{
	json_t *j = body_parse(body, len);
	/* Mozilla's autopush answers {"errno","message","reason"}, Apple
	 * {"reason"}, web-push-testing {"reason"} or {"error":{"message"}}. */
	const char *reason = j ? str_of(j, "reason") : NULL;
	enum hd_push_verdict_kind kind;

	if (!reason && j)
		reason = str_of(json_object_get(j, "error"), "message");
	if (status >= 200 && status < 300)
		kind = HD_PUSH_OK;
	else if (status == 404 || status == 410)
		kind = HD_PUSH_INVALID;
	else if (status == 401 || status == 403)
		kind = HD_PUSH_AUTH;
	else if (status == 429)
		kind = HD_PUSH_THROTTLED;
	else if (status >= 400 && status < 500)
		kind = HD_PUSH_REFUSED;
	else
		kind = HD_PUSH_RETRY;
	verdict_set(v, kind, status, retry_after_ms, kind == HD_PUSH_OK ? NULL : reason);
	json_decref(j);
}

/* ---- no answer ------------------------------------------------------------------ */

void hd_answer_transport(int err, bool stream_refused, const char *reason,
			 struct hd_push_verdict *v)
{
	bool refused = err == HD_EFORBIDDEN || err == HD_EINVAL;

	verdict_set(v, refused ? HD_PUSH_REFUSED : HD_PUSH_RETRY, 0, -1,
		    reason && *reason ? reason : hd_err_message(err));
	v->count_attempt = refused || !stream_refused;
	if (!refused && stream_refused)
		v->after_ms = 0;
}
