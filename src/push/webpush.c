/*
 * webpush — see webpush.h for the protocol. Nothing but the VAPID signer
 * is kept besides the shared request mechanics of provider.c: each send
 * encrypts its own body (a fresh key and salt per message).
 */
#include "push/webpush.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "push/answer.h"
#include "push/vapid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct hd_webpush {
	struct hd_push_provider base;  /* first: the provider pointer is this */
	struct hd_vapid *vapid;
	bool allow_private;
};

/* Whether the endpoint may be called: https, or http to this machine when
 * private addresses are allowed. */
static bool endpoint_ok(const struct hd_webpush *w, const char *url)
{
	char origin[HD_VAPID_ORIGIN_MAX + 1];
	struct hd_error err = {0};

	if (hd_vapid_origin(url, strlen(url), origin, sizeof(origin), &err) != 0)
		return false;
	if (strncmp(origin, "https://", 8) == 0)
		return true;
	if (!w->allow_private)
		return false;
	const char *host = origin + 7;
	size_t n = strcspn(host[0] == '[' ? host + 1 : host, host[0] == '[' ? "]" : ":");
	return (n == 9 && strncmp(host, "localhost", 9) == 0) ||
	       (n == 9 && strncmp(host, "127.0.0.1", 9) == 0) || strncmp(host, "[::1]", 5) == 0;
}

static bool topic_ok(const char *t)
{
	size_t n = t ? strlen(t) : 0;

	if (n == 0 || n > HD_WEBPUSH_TOPIC_MAX)
		return false;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return false;
	return true;
}

/* r's headers; auth is the Authorization value. 0 or HD_EINVAL. */
static int headers_build(struct hd_provider_req *r, const char *auth)
{
	const struct hd_push_message *m = &r->s->msg;
	static const char *const urgency[] = {[HD_PUSH_URGENCY_NORMAL] = "normal",
					      [HD_PUSH_URGENCY_HIGH] = "high",
					      [HD_PUSH_URGENCY_LOW] = "low"};
	int64_t ttl = HD_WEBPUSH_TTL_DEFAULT_S;
	int rc;

	if (m->expiration > 0) {
		ttl = m->expiration - hd_now_ms() / 1000;
		ttl = ttl < 0 ? 0 : ttl;
	}
	hd_provider_req_reset(r);
	r->call.url = r->s->to.endpoint;
	r->call.method = "POST";
	r->call.body = r->body;
	rc = hd_provider_req_header(r, "TTL", "%lld", (long long)ttl);
	rc |= hd_provider_req_header(r, "Urgency", "%s", urgency[m->urgency]);
	rc |= hd_provider_req_header(r, "Content-Encoding", "%s", "aes128gcm");
	rc |= hd_provider_req_header(r, "Content-Type", "%s", "application/octet-stream");
	rc |= hd_provider_req_header(r, "Authorization", "%s", auth);
	if (topic_ok(m->collapse_id))
		rc |= hd_provider_req_header(r, "Topic", "%s", m->collapse_id);
	return rc ? HD_EINVAL : 0;
}

/* Sends r again with a freshly signed VAPID token (no cache); 0 or an error. */
static int resend_fresh(struct hd_webpush *w, struct hd_provider_req *r)
{
	char origin[HD_VAPID_ORIGIN_MAX + 1];
	struct hd_error err = {0};
	char *jwt = NULL;
	const char *ep = r->s->to.endpoint;
	int64_t now = hd_now_ms() / 1000;
	int rc = hd_vapid_origin(ep, strlen(ep), origin, sizeof(origin), &err);

	if (rc == 0)
		rc = hd_vapid_token(w->vapid, origin, now + HD_VAPID_TTL_S, &jwt, &err);
	if (rc == 0) {
		hd_provider_token_issued(&w->base);
		char *auth = hd_malloc(strlen(jwt) + HD_VAPID_PUBLIC_KEY_LEN + 16);
		sprintf(auth, "vapid t=%s, k=%s", jwt, hd_vapid_public_key(w->vapid));
		rc = headers_build(r, auth);
		free(auth);
		free(jwt);
	}
	return rc ? rc : hd_provider_req_send(r);
}

static void on_answer(struct hd_provider_req *r)
{
	struct hd_webpush *w = (struct hd_webpush *)r->p;
	struct hd_http_call *call = &r->call;
	struct hd_push_verdict v;

	if (call->err)
		hd_answer_transport(call->err, call->stream_refused, call->error, &v);
	else
		hd_answer_webpush(call->status, call->response, call->response_len,
				  call->retry_after_ms, &v);
	if (call->err == HD_EFORBIDDEN)
		v.kind = HD_PUSH_INVALID; /* the endpoint is a private address */
	if (v.kind == HD_PUSH_AUTH && !r->renewed) {
		r->renewed = true;
		if (resend_fresh(w, r) == 0)
			return;
	}
	if (v.kind == HD_PUSH_AUTH)
		hd_provider_alarm(&w->base, &v);
	hd_provider_req_finish(r, &v);
}

static int webpush_send(struct hd_push_provider *p, struct hd_push_send *s)
{
	struct hd_webpush *w = (struct hd_webpush *)p;
	const struct hd_push_message *m = &s->msg;
	char auth[HD_VAPID_HEADER_MAX];
	struct hd_error err = {0};
	size_t len = 0;

	if (!s->to.endpoint || !s->to.keys || !endpoint_ok(w, s->to.endpoint) ||
	    (m->payload_len && !m->payload) || m->payload_len > HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX ||
	    m->urgency > HD_PUSH_URGENCY_LOW || !s->done)
		return HD_EINVAL;
	if (hd_vapid_header(w->vapid, s->to.endpoint, strlen(s->to.endpoint), hd_now_ms() / 1000,
			    auth, sizeof(auth), &err) != 0)
		return HD_EINVAL;
	struct hd_provider_req *r = hd_provider_req_new(p, s, on_answer);
	if (!r)
		return HD_ELIMIT;
	/* Exact size: the request (and its body) lives until the answer. */
	r->body = hd_malloc(HD_WEBPUSH_CRYPTO_BODY_LEN(m->payload_len));
	int rc = hd_webpush_crypto_encrypt(s->to.keys, m->payload ? m->payload : "",
					   m->payload_len, (unsigned char *)r->body,
					   HD_WEBPUSH_CRYPTO_BODY_LEN(m->payload_len), &len, &err);
	if (rc == 0)
		rc = headers_build(r, auth);
	r->call.body_len = len;
	if (rc == 0)
		rc = hd_provider_req_send(r);
	if (rc != 0)
		hd_provider_req_drop(r);
	return rc;
}

static void webpush_free(struct hd_push_provider *p)
{
	struct hd_webpush *w = (struct hd_webpush *)p;

	if (!w)
		return;
	hd_provider_fini(p);
	hd_vapid_free(w->vapid);
	free(w);
}

static const struct hd_push_provider_ops webpush_ops = {
	.name = "webpush",
	.send = webpush_send,
	.cancel = hd_provider_cancel,
	.free = webpush_free,
};

int hd_webpush_new(uv_loop_t *loop, const struct hd_webpush_opts *o,
		   struct hd_push_provider **out, struct hd_error *err)
{
	struct hd_webpush *w = hd_calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	w->allow_private = o->base.allow_private;
	if (!o->vapid_key_file || !*o->vapid_key_file) {
		hd_error_set(err, HD_ECONFIG, "--push-vapid-private-key-file is required for Web Push");
		rc = HD_ECONFIG;
	} else if (!o->subject || !*o->subject) {
		hd_error_set(err, HD_ECONFIG, "--push-vapid-subject (mailto: or https:) is required "
					      "with --push-vapid-private-key-file");
		rc = HD_ECONFIG;
	} else {
		rc = hd_vapid_new_file(o->vapid_key_file, o->subject, &w->vapid, err);
	}
	if (rc == 0)
		rc = hd_provider_init(&w->base, &webpush_ops, loop, &o->base, err);
	if (rc) {
		hd_vapid_free(w->vapid);
		free(w);
		return rc;
	}
	*out = &w->base;
	return 0;
}

const char *hd_webpush_public_key(const struct hd_push_provider *p)
{
	return hd_vapid_public_key(((const struct hd_webpush *)p)->vapid);
}
