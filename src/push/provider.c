/*
 * provider — the parts every push provider shares: verdict names, the HTTP
 * client options, the credential alarm and token counting. The interface
 * itself is in provider.h.
 */
#include "push/provider.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/http_client.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROVIDER_TIMEOUT_MS_DEFAULT 10000
#define PROVIDER_CONNECT_TIMEOUT_MS_MAX 5000
#define PROVIDER_INFLIGHT_DEFAULT 1000
#define PROVIDER_CONNECTIONS_DEFAULT 2
/* Requests one provider connection carries before herald opens the next:
 * under the 1,000 RST_STREAM frames an nghttp2 server takes in a burst (curl
 * 7.88 sends one after every answer; see net/http_client.h). */
#define PROVIDER_REQUESTS_PER_CONN 900
/* Answers of push services are small; longer bodies are cut. */
#define PROVIDER_RESPONSE_MAX 16384

const char *hd_provider_verdict_name(enum hd_push_verdict_kind kind)
{
	switch (kind) {
	case HD_PUSH_OK:
		return "ok";
	case HD_PUSH_INVALID:
		return "invalid";
	case HD_PUSH_REFUSED:
		return "refused";
	case HD_PUSH_RETRY:
		return "retry";
	case HD_PUSH_AUTH:
		return "auth";
	case HD_PUSH_THROTTLED:
		return "throttled";
	}
	return "?";
}

void hd_provider_http_opts(const struct hd_push_provider_opts *o, struct hd_http_client_opts *out)
{
	uint32_t timeout = o->timeout_ms ? o->timeout_ms : PROVIDER_TIMEOUT_MS_DEFAULT;

	memset(out, 0, sizeof(*out));
	out->timeout_ms = timeout;
	out->connect_timeout_ms = timeout < PROVIDER_CONNECT_TIMEOUT_MS_MAX
					  ? timeout : PROVIDER_CONNECT_TIMEOUT_MS_MAX;
	out->max_per_host = o->max_connections ? o->max_connections : PROVIDER_CONNECTIONS_DEFAULT;
	out->max_total = out->max_per_host * 4;
	out->max_inflight = o->max_inflight ? o->max_inflight : PROVIDER_INFLIGHT_DEFAULT;
	out->max_response = PROVIDER_RESPONSE_MAX;
	out->allow_private = o->allow_private;
	out->user_agent = "herald/" HD_VERSION;
	out->http2 = true;
	out->max_requests_per_conn = PROVIDER_REQUESTS_PER_CONN;
	out->ca_file = o->ca_file;
}

void hd_provider_alarm(struct hd_push_provider *p, const struct hd_push_verdict *v)
{
	static long long last_ms;

	p->auth_alarms++;
	hd_metrics_inc(HD_M_push_auth_alarms_total);
	if (hd_log_ratelimited(&last_ms))
		hd_log_error("push_auth_alarm provider=%s status=%d reason=\"%s\" "
			     "msg=\"the push service refused herald's credentials after a renewal\"",
			     p->ops->name, v->status, v->reason);
}

void hd_provider_token_issued(struct hd_push_provider *p)
{
	p->tokens_issued++;
	hd_metrics_inc(HD_M_push_provider_tokens_total);
}

/* ---- requests ------------------------------------------------------------------- */

static void on_call_done(struct hd_http_call *call)
{
	struct hd_provider_req *r = call->arg;

	r->s->latency_us = call->latency_us;
	hd_metrics_observe(HD_M_push_send_seconds, call->latency_us);
	r->answered(r);
}

int hd_provider_init(struct hd_push_provider *p, const struct hd_push_provider_ops *ops,
		     uv_loop_t *loop, const struct hd_push_provider_opts *o, struct hd_error *err)
{
	struct hd_http_client_opts ho;

	memset(p, 0, sizeof(*p));
	p->ops = ops;
	hd_provider_http_opts(o, &ho);
	p->max_inflight = ho.max_inflight;
	p->http = hd_http_client_new(loop, &ho, err);
	return p->http ? 0 : err->code;
}

struct hd_provider_req *hd_provider_req_new(struct hd_push_provider *p, struct hd_push_send *s,
					    void (*answered)(struct hd_provider_req *r))
{
	if (p->nreqs >= p->max_inflight)
		return NULL;
	struct hd_provider_req *r = p->pool;
	if (r) {
		p->pool = r->next;
		p->npool--;
		memset(r, 0, offsetof(struct hd_provider_req, text));
	} else {
		r = hd_calloc(1, sizeof(*r));
	}
	r->p = p;
	r->s = s;
	r->answered = answered;
	r->call.arg = r;
	r->call.done = on_call_done;
	r->call.headers = r->headers;
	r->next = p->reqs;
	if (p->reqs)
		p->reqs->prev = r;
	p->reqs = r;
	p->nreqs++;
	s->priv = r;
	s->id[0] = '\0';
	s->latency_us = 0;
	memset(&s->verdict, 0, sizeof(s->verdict));
	return r;
}

static const char *text_vadd(struct hd_provider_req *r, const char *fmt, va_list ap)
{
	size_t room = sizeof(r->text) - r->text_len;
	int n = vsnprintf(r->text + r->text_len, room, fmt, ap);

	if (n < 0 || (size_t)n >= room)
		return NULL;
	const char *t = r->text + r->text_len;
	r->text_len += (size_t)n + 1;
	return t;
}

const char *hd_provider_req_text(struct hd_provider_req *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	const char *t = text_vadd(r, fmt, ap);
	va_end(ap);
	return t;
}

void hd_provider_req_reset(struct hd_provider_req *r)
{
	r->text_len = 0;
	r->call.nheaders = 0;
}

int hd_provider_req_header(struct hd_provider_req *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (r->call.nheaders >= HD_PROVIDER_HEADERS_MAX)
		return HD_EINVAL;
	va_start(ap, fmt);
	const char *v = text_vadd(r, fmt, ap);
	va_end(ap);
	if (!v)
		return HD_EINVAL;
	r->headers[r->call.nheaders].name = name;
	r->headers[r->call.nheaders].value = v;
	r->call.nheaders++;
	return 0;
}

int hd_provider_req_send(struct hd_provider_req *r)
{
	r->waiting = false;
	return hd_http_client_send(r->p->http, &r->call);
}

static void req_unlink(struct hd_provider_req *r)
{
	struct hd_push_provider *p = r->p;

	if (r->prev)
		r->prev->next = r->next;
	else
		p->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	p->nreqs--;
	r->s->priv = NULL;
}

void hd_provider_req_drop(struct hd_provider_req *r)
{
	struct hd_push_provider *p = r->p;

	req_unlink(r);
	free(r->body);
	r->body = NULL;
	if (p->npool < HD_PROVIDER_REQ_POOL_MAX && !p->closing) {
		r->next = p->pool;
		p->pool = r;
		p->npool++;
	} else {
		free(r);
	}
}

void hd_provider_req_finish(struct hd_provider_req *r, const struct hd_push_verdict *v)
{
	struct hd_push_send *s = r->s;

	s->verdict = *v;
	hd_provider_req_drop(r);
	s->done(s);
}

void hd_provider_cancel(struct hd_push_provider *p, struct hd_push_send *s)
{
	struct hd_provider_req *r = s->priv;

	if (!r)
		return;
	hd_http_client_cancel(p->http, &r->call);
	hd_provider_req_drop(r);
}

void hd_provider_fini(struct hd_push_provider *p)
{
	p->closing = true;
	while (p->reqs)
		hd_provider_cancel(p, p->reqs->s);
	while (p->pool) {
		struct hd_provider_req *r = p->pool;
		p->pool = r->next;
		free(r);
	}
	p->npool = 0;
	hd_http_client_free(p->http);
	p->http = NULL;
}

int hd_provider_url_check(const char *url, const char *option, char *out, size_t out_cap,
			  struct hd_error *err)
{
	size_t n = strlen(url);

	if (strncasecmp(url, "https://", 8) != 0 || n == 8 || n >= out_cap ||
	    n > HD_PROVIDER_URL_MAX || strpbrk(url, "@?# \t\r\n")) {
		hd_error_set(err, HD_ECONFIG, "%s '%s': not an https:// URL (no user, query or "
					      "fragment, at most %d bytes)", option, url,
			     HD_PROVIDER_URL_MAX);
		return HD_ECONFIG;
	}
	memcpy(out, url, n + 1);
	while (n > 8 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}
