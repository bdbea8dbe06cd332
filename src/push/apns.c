/*
 * apns — see apns.h for the protocol. The provider token is the only state
 * besides the shared request mechanics of provider.c: the current JWS, when
 * it was signed, and its generation (a send remembers the generation it
 * carried, so a 403 renews only a token no other send renewed already).
 */
#include "push/apns.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "push/answer.h"
#include "push/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hd_apns {
	struct hd_push_provider base;  /* first: the provider pointer is this */
	EVP_PKEY *key;
	char key_id[HD_APNS_ID_MAX + 1];
	char team_id[HD_APNS_ID_MAX + 1];
	char topic[HD_APNS_TOPIC_MAX + 1];
	char origin[HD_PROVIDER_URL_MAX + 1];
	uint32_t reuse_ms, renew_min_ms;
	char *jwt;                     /* the current provider token, or NULL */
	uint64_t jwt_mono_ms;          /* when it was signed */
	uint64_t gen;                  /* bumped by every signature */
};

static const struct hd_push_provider_ops apns_ops;

/* Signs a new provider token; 0 or an error. */
static int token_sign(struct hd_apns *a, struct hd_error *err)
{
	json_t *h = json_pack("{s:s,s:s}", "alg", "ES256", "kid", a->key_id);
	json_t *c = json_pack("{s:s,s:I}", "iss", a->team_id, "iat", (json_int_t)(hd_now_ms() / 1000));
	char *jwt = NULL;
	int rc = hd_jws_sign_json(HD_JWS_ES256, a->key, h, c, &jwt, err);

	json_decref(h);
	json_decref(c);
	if (rc == 0) {
		free(a->jwt);
		a->jwt = jwt;
		a->jwt_mono_ms = hd_mono_ms();
		a->gen++;
		hd_provider_token_issued(&a->base);
	}
	return rc;
}

/* The token to send with: the current one unless it is due for reuse's end. */
static const char *token_get(struct hd_apns *a)
{
	struct hd_error err = {0};

	if (!a->jwt || hd_mono_ms() - a->jwt_mono_ms >= a->reuse_ms)
		token_sign(a, &err); /* on failure the old token (if any) is tried */
	return a->jwt;
}

static int request_build(struct hd_apns *a, struct hd_provider_req *r)
{
	const struct hd_push_send *s = r->s;
	const struct hd_push_message *m = &s->msg;
	const char *jwt = token_get(a);
	bool silent = m->mode == HD_PUSH_SILENT;
	int rc = 0;

	if (!jwt)
		return HD_EINTERNAL;
	hd_provider_req_reset(r);
	r->gen = a->gen;
	r->call.url = hd_provider_req_text(r, "%s/3/device/%s", a->origin, s->to.token);
	r->call.method = "POST";
	r->call.body = m->payload;
	r->call.body_len = m->payload_len;
	r->want[0].name = "apns-id";
	r->call.want = r->want;
	r->call.nwant = 1;
	rc |= hd_provider_req_header(r, "authorization", "bearer %s", jwt);
	rc |= hd_provider_req_header(r, "apns-push-type", "%s", silent ? "background" : "alert");
	rc |= hd_provider_req_header(r, "apns-priority", "%s",
				     silent || m->urgency == HD_PUSH_URGENCY_LOW ? "5" : "10");
	rc |= hd_provider_req_header(r, "apns-topic", "%s", a->topic);
	rc |= hd_provider_req_header(r, "content-type", "%s", "application/json");
	if (m->expiration > 0)
		rc |= hd_provider_req_header(r, "apns-expiration", "%lld", (long long)m->expiration);
	if (m->collapse_id)
		rc |= hd_provider_req_header(r, "apns-collapse-id", "%s", m->collapse_id);
	return rc || !r->call.url ? HD_EINVAL : 0;
}

static void on_answer(struct hd_provider_req *r)
{
	struct hd_apns *a = (struct hd_apns *)r->p;
	struct hd_http_call *call = &r->call;
	struct hd_push_verdict v;

	if (call->err)
		hd_answer_transport(call->err, call->stream_refused, call->error, &v);
	else
		hd_answer_apns(call->status, call->response, call->response_len,
			       call->retry_after_ms, &v);
	if (v.kind == HD_PUSH_AUTH && !r->renewed) {
		struct hd_error err = {0};
		bool fresh = a->gen != r->gen; /* another send renewed already */
		if (!fresh && hd_mono_ms() - a->jwt_mono_ms >= a->renew_min_ms)
			fresh = token_sign(a, &err) == 0;
		r->renewed = true;
		if (fresh && request_build(a, r) == 0 && hd_provider_req_send(r) == 0)
			return;
	}
	if (v.kind == HD_PUSH_AUTH)
		hd_provider_alarm(&a->base, &v);
	if (v.kind == HD_PUSH_OK && r->want[0].found)
		snprintf(r->s->id, sizeof(r->s->id), "%.*s", (int)sizeof(r->s->id) - 1,
			 r->want[0].value);
	hd_provider_req_finish(r, &v);
}

static bool token_ok(const char *t)
{
	size_t n = t ? strlen(t) : 0;

	if (n == 0 || n > HD_APNS_DEVICE_TOKEN_MAX)
		return false;
	for (; *t; t++)
		if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f') || (*t >= 'A' && *t <= 'F')))
			return false;
	return true;
}

static int apns_send(struct hd_push_provider *p, struct hd_push_send *s)
{
	struct hd_apns *a = (struct hd_apns *)p;
	const struct hd_push_message *m = &s->msg;

	if (!token_ok(s->to.token) || !m->payload || m->payload_len == 0 ||
	    m->payload_len > HD_PUSH_PAYLOAD_MAX || !s->done ||
	    (m->collapse_id && strlen(m->collapse_id) > HD_APNS_COLLAPSE_ID_MAX))
		return HD_EINVAL;
	struct hd_provider_req *r = hd_provider_req_new(p, s, on_answer);
	if (!r)
		return HD_ELIMIT;
	int rc = request_build(a, r);
	if (rc == 0)
		rc = hd_provider_req_send(r);
	if (rc != 0)
		hd_provider_req_drop(r);
	return rc;
}

static void apns_free(struct hd_push_provider *p)
{
	struct hd_apns *a = (struct hd_apns *)p;

	if (!a)
		return;
	hd_provider_fini(p);
	EVP_PKEY_free(a->key);
	free(a->jwt);
	free(a);
}

static const struct hd_push_provider_ops apns_ops = {
	.name = "apns",
	.send = apns_send,
	.cancel = hd_provider_cancel,
	.free = apns_free,
};

/* Copies a non-empty printable option value of at most cap - 1 bytes. */
static int copy_opt(char *dst, size_t cap, const char *v, const char *option,
		    struct hd_error *err)
{
	size_t n = v ? strlen(v) : 0;

	for (size_t i = 0; i < n; i++)
		if (v[i] <= ' ' || v[i] >= 0x7f)
			n = cap; /* refused below */
	if (n == 0 || n >= cap) {
		hd_error_set(err, HD_ECONFIG, "%s must be 1 to %zu printable characters without "
					      "spaces", option, cap - 1);
		return HD_ECONFIG;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

int hd_apns_new(uv_loop_t *loop, const struct hd_apns_opts *o, struct hd_push_provider **out,
		struct hd_error *err)
{
	struct hd_apns *a = hd_calloc(1, sizeof(*a));
	const char *url = o->base.url && *o->base.url
				  ? o->base.url
				  : (o->sandbox ? HD_APNS_HOST_SANDBOX : HD_APNS_HOST_PRODUCTION);
	int rc;

	*out = NULL;
	a->reuse_ms = o->token_reuse_ms ? o->token_reuse_ms : HD_APNS_TOKEN_REUSE_S * 1000u;
	a->renew_min_ms = o->token_renew_min_ms ? o->token_renew_min_ms
						: HD_APNS_TOKEN_RENEW_MIN_S * 1000u;
	if ((rc = copy_opt(a->key_id, sizeof(a->key_id), o->key_id, "--push-apns-key-id", err)) ||
	    (rc = copy_opt(a->team_id, sizeof(a->team_id), o->team_id, "--push-apns-team-id",
			   err)) ||
	    (rc = copy_opt(a->topic, sizeof(a->topic), o->topic, "--push-apns-topic", err)) ||
	    (rc = hd_provider_url_check(url, "--push-apns-url", a->origin, sizeof(a->origin),
					err)))
		goto out;
	if (!o->key_file || !*o->key_file) {
		hd_error_set(err, HD_ECONFIG, "--push-apns-key-file is required for APNs");
		rc = HD_ECONFIG;
		goto out;
	}
	if ((rc = hd_jws_key_from_file(o->key_file, &a->key, err)) ||
	    (rc = hd_jws_key_check(a->key, HD_JWS_ES256, "--push-apns-key-file", err)))
		goto out;
	/* Sign once now: a key that cannot sign fails at start, not at the first push. */
	if ((rc = token_sign(a, err)) ||
	    (rc = hd_provider_init(&a->base, &apns_ops, loop, &o->base, err)))
		goto out;
	a->base.tokens_issued = 1; /* hd_provider_init cleared the count of the first */
	*out = &a->base;
out:
	if (rc) {
		EVP_PKEY_free(a->key);
		free(a->jwt);
		free(a);
	}
	return rc;
}
