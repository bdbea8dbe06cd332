/*
 * fcm — see fcm.h for the protocol. State besides the shared request
 * mechanics of provider.c: the service account, the access token with its
 * deadlines and generation, and the one token request (tok_call) that may
 * be in flight; sends that need a token wait as requests with `waiting`
 * set, on the provider's list, and are sent (or finished) when it ends.
 */
#include "push/fcm.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "push/answer.h"
#include "push/jws.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest expires_in believed (a day); longer ones are cut to it. */
#define FCM_TOKEN_LIFE_MAX_S 86400
/* A token is not used in its last seconds (clock skew, request time). */
#define FCM_TOKEN_MARGIN_MS 30000
#define FCM_MEMBER_MAX 1024            /* bytes of client_email, project_id, token_uri */

struct hd_fcm {
	struct hd_push_provider base;  /* first: the provider pointer is this */
	EVP_PKEY *key;
	char client_email[FCM_MEMBER_MAX];
	char project_id[FCM_MEMBER_MAX];
	char token_uri[HD_PROVIDER_URL_MAX + 1];
	char send_url[HD_PROVIDER_URL_MAX + FCM_MEMBER_MAX + 64];
	char *access;                  /* the access token, or NULL */
	uint64_t renew_at_ms;          /* mono: start a renewal from here */
	uint64_t expires_ms;           /* mono: do not use it from here */
	uint64_t gen;                  /* bumped by every new access token */
	bool renewing;                 /* tok_call is in flight */
	struct hd_http_call tok_call;
	struct hd_http_header tok_headers[1];
	char *tok_body;                /* owned while tok_call is in flight */
};

static void token_renew(struct hd_fcm *f);

static bool token_usable(const struct hd_fcm *f)
{
	return f->access && hd_mono_ms() < f->expires_ms;
}

/* The message body for r's send into r->body; 0 or HD_EINVAL. */
static int body_build(struct hd_fcm *f, struct hd_provider_req *r)
{
	const struct hd_push_send *s = r->s;
	const struct hd_push_message *m = &s->msg;
	json_t *msg = json_loadb(m->payload, m->payload_len, 0, NULL);
	json_t *data, *android, *v;
	const char *k;
	int rc = HD_EINVAL;

	if (!json_is_object(msg))
		goto out;
	json_object_set_new(msg, "token", json_string(s->to.token));
	data = json_object_get(msg, "data");
	if (data && !json_is_object(data))
		goto out;
	json_object_foreach(data, k, v) {
		if (json_is_string(v))
			continue;
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		json_object_set_new(data, k, json_string(text ? text : ""));
		free(text);
	}
	android = json_object_get(msg, "android");
	if (!android) {
		android = json_object();
		json_object_set_new(msg, "android", android);
	}
	if (!json_is_object(android))
		goto out;
	bool high = m->mode == HD_PUSH_ALERT && m->urgency != HD_PUSH_URGENCY_LOW;
	json_t *extra = json_object();
	json_object_set_new(extra, "priority", json_string(high ? "high" : "normal"));
	if (m->expiration > 0) {
		int64_t left = m->expiration - hd_now_ms() / 1000;
		char ttl[32];
		snprintf(ttl, sizeof(ttl), "%llds", (long long)(left > 0 ? left : 0));
		json_object_set_new(extra, "ttl", json_string(ttl));
	}
	if (m->collapse_id)
		json_object_set_new(extra, "collapse_key", json_string(m->collapse_id));
	json_object_update_missing(android, extra);
	json_decref(extra);
	json_t *whole = json_pack("{s:O}", "message", msg);
	free(r->body);
	r->body = json_dumps(whole, JSON_COMPACT);
	json_decref(whole);
	rc = r->body ? 0 : HD_EINVAL;
out:
	json_decref(msg);
	return rc;
}

/* Sets r's call up with the current token and sends it: 0 or the error. */
static int request_start(struct hd_fcm *f, struct hd_provider_req *r)
{
	int rc;

	hd_provider_req_reset(r);
	r->gen = f->gen;
	r->call.url = f->send_url;
	r->call.method = "POST";
	r->call.body = r->body;
	r->call.body_len = strlen(r->body);
	rc = hd_provider_req_header(r, "authorization", "Bearer %s", f->access);
	rc |= hd_provider_req_header(r, "content-type", "%s", "application/json");
	return rc ? HD_EINVAL : hd_provider_req_send(r);
}

/* request_start from a done(): a request the client refuses ends RETRY. */
static void request_send(struct hd_fcm *f, struct hd_provider_req *r)
{
	struct hd_push_verdict v;
	int rc = request_start(f, r);

	if (rc == 0)
		return;
	hd_answer_transport(rc == HD_EINVAL ? HD_EINVAL : HD_EUNAVAIL, false,
			    "the FCM request could not be started", &v);
	hd_provider_req_finish(r, &v);
}

/* Makes r wait for the renewal (started if none runs). */
static void request_wait(struct hd_fcm *f, struct hd_provider_req *r)
{
	r->waiting = true;
	if (!f->renewing)
		token_renew(f);
}

/* The renewal ended: send the waiting requests, or finish them with v. */
static void waiting_release(struct hd_fcm *f, const struct hd_push_verdict *v)
{
	bool alarmed = false;

	/* A done() below may start the next renewal (a send that found no
	 * token): the requests still waiting then wait for that one. */
	while (!f->renewing) {
		struct hd_provider_req *r = f->base.reqs;
		while (r && !r->waiting)
			r = r->next;
		if (!r)
			break;
		r->waiting = false;
		if (token_usable(f)) {
			request_send(f, r);
			continue;
		}
		if (v->kind == HD_PUSH_AUTH && !alarmed) {
			hd_provider_alarm(&f->base, v);
			alarmed = true;
		}
		hd_provider_req_finish(r, v);
	}
}

static void on_token(struct hd_http_call *call)
{
	struct hd_fcm *f = call->arg;
	struct hd_push_verdict v = {.kind = HD_PUSH_OK};
	json_t *j = NULL;

	f->renewing = false;
	free(f->tok_body);
	f->tok_body = NULL;
	if (call->err) {
		hd_answer_transport(call->err, call->stream_refused, call->error, &v);
		goto out;
	}
	j = json_loadb(call->response, call->response_len, 0, NULL);
	const char *access = json_string_value(json_object_get(j, "access_token"));
	json_int_t life = json_integer_value(json_object_get(j, "expires_in"));
	if (call->status != 200 || !access || !*access || strlen(access) > HD_FCM_ACCESS_TOKEN_MAX ||
	    strpbrk(access, " \t\r\n") || life <= 0) {
		/* 400 invalid_grant, 401 invalid_client: the account is refused;
		 * a 5xx or a garbled answer may pass. */
		const char *e = json_string_value(json_object_get(j, "error"));
		v.kind = call->status >= 400 && call->status < 500 ? HD_PUSH_AUTH : HD_PUSH_RETRY;
		v.status = call->status;
		v.count_attempt = true;
		v.after_ms = v.kind == HD_PUSH_RETRY ? call->retry_after_ms : -1;
		snprintf(v.reason, sizeof(v.reason), "token endpoint: %s",
			 e ? e : "no access token in the answer");
		goto out;
	}
	if (life > FCM_TOKEN_LIFE_MAX_S)
		life = FCM_TOKEN_LIFE_MAX_S;
	uint64_t now = hd_mono_ms();
	free(f->access);
	f->access = hd_strdup(access);
	f->renew_at_ms = now + (uint64_t)life * 800;
	f->expires_ms = now + (uint64_t)life * 1000 -
			((uint64_t)life * 1000 > 2 * FCM_TOKEN_MARGIN_MS ? FCM_TOKEN_MARGIN_MS : 0);
	f->gen++;
	hd_provider_token_issued(&f->base);
out:
	json_decref(j);
	waiting_release(f, &v);
}

/* Starts the one renewal: a new assertion posted to token_uri. */
static void token_renew(struct hd_fcm *f)
{
	struct hd_error err = {0};
	int64_t now = hd_now_ms() / 1000;
	json_t *h = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", f->client_email, "scope", HD_FCM_SCOPE,
			      "aud", f->token_uri, "iat", (json_int_t)now, "exp",
			      (json_int_t)(now + HD_FCM_ASSERTION_LIFE_S));
	char *jwt = NULL;
	int rc = hd_jws_sign_json(HD_JWS_RS256, f->key, h, c, &jwt, &err);

	json_decref(h);
	json_decref(c);
	if (rc == 0) {
		size_t n = strlen(jwt) + 128;
		f->tok_body = hd_malloc(n);
		/* The grant type percent-encoded; a JWS is url-safe as it is. */
		snprintf(f->tok_body, n, "grant_type=%s&assertion=%s",
			 "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", jwt);
		free(jwt);
		f->tok_headers[0] = (struct hd_http_header){"content-type",
							    "application/x-www-form-urlencoded"};
		f->tok_call = (struct hd_http_call){
			.url = f->token_uri, .method = "POST", .headers = f->tok_headers,
			.nheaders = 1, .body = f->tok_body, .body_len = strlen(f->tok_body),
			.done = on_token, .arg = f};
		rc = hd_http_client_send(f->base.http, &f->tok_call);
		if (rc == 0) {
			f->renewing = true;
			return;
		}
		free(f->tok_body);
		f->tok_body = NULL;
		snprintf(err.msg, sizeof(err.msg), "the token request could not be started");
	}
	/* Not started: the waiting sends end now (this runs from a done()
	 * or a send; a send's own request is not waiting yet, see fcm_send). */
	struct hd_push_verdict v;
	hd_answer_transport(HD_EUNAVAIL, false, err.msg, &v);
	waiting_release(f, &v);
}

static void on_answer(struct hd_provider_req *r)
{
	struct hd_fcm *f = (struct hd_fcm *)r->p;
	struct hd_http_call *call = &r->call;
	struct hd_push_verdict v;

	if (call->err)
		hd_answer_transport(call->err, call->stream_refused, call->error, &v);
	else
		hd_answer_fcm(call->status, call->response, call->response_len,
			      call->retry_after_ms, &v);
	if (v.kind == HD_PUSH_AUTH && !r->renewed) {
		r->renewed = true;
		if (f->gen != r->gen && token_usable(f)) {
			request_send(f, r); /* another send renewed meanwhile */
			return;
		}
		free(f->access);
		f->access = NULL;
		request_wait(f, r);
		return;
	}
	if (v.kind == HD_PUSH_AUTH)
		hd_provider_alarm(&f->base, &v);
	if (v.kind == HD_PUSH_OK) {
		json_t *j = json_loadb(call->response, call->response_len, 0, NULL);
		const char *name = json_string_value(json_object_get(j, "name"));
		snprintf(r->s->id, sizeof(r->s->id), "%s", name ? name : "");
		json_decref(j);
	}
	hd_provider_req_finish(r, &v);
}

static int fcm_send(struct hd_push_provider *p, struct hd_push_send *s)
{
	struct hd_fcm *f = (struct hd_fcm *)p;
	const struct hd_push_message *m = &s->msg;
	size_t tlen = s->to.token ? strlen(s->to.token) : 0;

	if (tlen == 0 || tlen > HD_FCM_DEVICE_TOKEN_MAX || !m->payload || m->payload_len == 0 ||
	    m->payload_len > HD_PUSH_PAYLOAD_MAX || !s->done)
		return HD_EINVAL;
	struct hd_provider_req *r = hd_provider_req_new(p, s, on_answer);
	if (!r)
		return HD_ELIMIT;
	if (body_build(f, r) != 0) {
		hd_provider_req_drop(r);
		return HD_EINVAL;
	}
	if (token_usable(f)) {
		if (hd_mono_ms() >= f->renew_at_ms && !f->renewing)
			token_renew(f); /* in the background: this send uses the old token */
		int rc = request_start(f, r);
		if (rc != 0)
			hd_provider_req_drop(r);
		return rc;
	}
	if (!f->renewing) {
		token_renew(f); /* ends waiting sends at once if it cannot start */
		if (!f->renewing) {
			hd_provider_req_drop(r);
			return HD_EUNAVAIL;
		}
	}
	r->waiting = true;
	return 0;
}

static void fcm_free(struct hd_push_provider *p)
{
	struct hd_fcm *f = (struct hd_fcm *)p;

	if (!f)
		return;
	if (f->renewing)
		hd_http_client_cancel(p->http, &f->tok_call);
	hd_provider_fini(p);
	free(f->tok_body);
	free(f->access);
	EVP_PKEY_free(f->key);
	free(f);
}

static const struct hd_push_provider_ops fcm_ops = {
	.name = "fcm",
	.send = fcm_send,
	.cancel = hd_provider_cancel,
	.free = fcm_free,
};

/* Copies the string member name of the account into dst. */
static int member(const json_t *sa, const char *name, char *dst, size_t cap, const char *path,
		  struct hd_error *err)
{
	const char *v = json_string_value(json_object_get(sa, name));

	if (!v || !*v || strlen(v) >= cap) {
		hd_error_set(err, HD_ECONFIG, "FCM credentials file '%s': \"%s\" is missing, empty "
					      "or longer than %zu bytes", path, name, cap - 1);
		return HD_ECONFIG;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int hd_fcm_new(uv_loop_t *loop, const struct hd_fcm_opts *o, struct hd_push_provider **out,
	       struct hd_error *err)
{
	struct hd_fcm *f = hd_calloc(1, sizeof(*f));
	struct hd_jws_key_text t = {0};
	const char *path = o->credentials_file ? o->credentials_file : "";
	char origin[HD_PROVIDER_URL_MAX + 1];
	char uri[HD_PROVIDER_URL_MAX + 1];
	json_t *sa = NULL;
	json_error_t je;
	int rc;

	*out = NULL;
	if ((rc = hd_jws_key_text_read(path, "FCM credentials", &t, err)))
		goto out;
	sa = json_loadb(t.text, t.len, 0, &je);
	if (!json_is_object(sa)) {
		hd_error_set(err, HD_ECONFIG, "FCM credentials file '%s': not a JSON object (%s)",
			     path, sa ? "another JSON value" : je.text);
		rc = HD_ECONFIG;
		goto out;
	}
	const char *pem = json_string_value(json_object_get(sa, "private_key"));
	if ((rc = member(sa, "client_email", f->client_email, sizeof(f->client_email), path, err)) ||
	    (rc = member(sa, "project_id", f->project_id, sizeof(f->project_id), path, err)) ||
	    (rc = member(sa, "token_uri", uri, sizeof(uri), path, err)))
		goto out;
	if (!pem) {
		hd_error_set(err, HD_ECONFIG, "FCM credentials file '%s': \"private_key\" is missing",
			     path);
		rc = HD_ECONFIG;
		goto out;
	}
	if ((rc = hd_jws_key_from_pem(pem, strlen(pem), t.what, &f->key, err)) ||
	    (rc = hd_jws_key_check(f->key, HD_JWS_RS256, t.what, err)) ||
	    (rc = hd_provider_url_check(uri, "the FCM token_uri", f->token_uri,
					sizeof(f->token_uri), err)) ||
	    (rc = hd_provider_url_check(o->base.url && *o->base.url ? o->base.url : HD_FCM_HOST,
					"--push-fcm-url", origin, sizeof(origin), err)))
		goto out;
	for (const char *c = f->project_id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      (*c >= 'A' && *c <= 'Z') || *c == '_' || *c == '.' || *c == ':')) {
			hd_error_set(err, HD_ECONFIG, "FCM credentials file '%s': project_id "
						      "'%s' has characters a project id has not",
				     path, f->project_id);
			rc = HD_ECONFIG;
			goto out;
		}
	snprintf(f->send_url, sizeof(f->send_url), "%s/v1/projects/%s/messages:send", origin,
		 f->project_id);
	if ((rc = hd_provider_init(&f->base, &fcm_ops, loop, &o->base, err)))
		goto out;
	*out = &f->base;
out:
	json_decref(sa);
	hd_jws_key_text_fini(&t);
	if (rc) {
		EVP_PKEY_free(f->key);
		free(f);
	}
	return rc;
}
