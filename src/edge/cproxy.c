/*
 * cproxy — see cproxy.h. Two parts: the answer parser (pure, fuzzed by
 * tests/fuzz/fuzz_cproxy.c) and the calls (request body, headers, the
 * HTTP client, done() exactly once).
 *
 * The parser works on the text (proto/json_text.h), not on a DOM: the
 * backend's info and data go to clients byte for byte (no number rewritten),
 * and the scanner bounds nesting and refuses anything that is not strict
 * JSON.
 */
#include "edge/cproxy.h"
#include "core/b64.h"
#include "auth/jwt.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/http_client.h"
#include "proto/json_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBERS_MAX 64                  /* members of one answer object we look at */
#define BODY_MAX (1024 * 1024)          /* a request body (the client's data is smaller) */

static const char *const kind_names[HD_CPROXY_KINDS] = {"connect", "subscribe", "publish", "rpc", "refresh",
								   "sub_refresh"};

/* ---- The answer ---------------------------------------------------------- */

/* A minified object split into members. */
struct obj {
	const char *p;
	size_t n;
	struct hd_json_text_span sp[MEMBERS_MAX];
	size_t nsp;
};

static int fail(struct hd_cproxy_answer *a, const char *fmt, const char *what)
{
	a->outcome = HD_CPROXY_FAILED;
	snprintf(a->message, sizeof(a->message), fmt, what);
	return HD_EINVAL;
}

static int obj_split(struct obj *o, const char *p, size_t n)
{
	o->p = p;
	o->n = n;
	o->nsp = 0;
	if (n < 2 || p[0] != '{')
		return HD_EINVAL;
	return hd_json_text_members(p, n, o->sp, MEMBERS_MAX, &o->nsp);
}

/* The value of member name (a plain ASCII name), or NULL. */
static const char *obj_get(const struct obj *o, const char *name, size_t *n)
{
	size_t k = strlen(name);
	for (size_t i = 0; i < o->nsp; i++) {
		const struct hd_json_text_span *s = &o->sp[i];
		if (s->key_len == k + 2 && memcmp(o->p + s->key_off + 1, name, k) == 0) {
			*n = s->val_len;
			return o->p + s->val_off;
		}
	}
	return NULL;
}

static bool is_null(const char *v, size_t n)
{
	return n == 4 && memcmp(v, "null", 4) == 0;
}

/* A JSON integer in [lo, hi] (no fraction, no exponent). */
static bool get_int(const char *v, size_t n, int64_t lo, int64_t hi, int64_t *out)
{
	size_t i = v[0] == '-';
	if (n == i || n - i > 18)
		return false;
	for (size_t j = i; j < n; j++)
		if (!isdigit((unsigned char)v[j]))
			return false;
	int64_t x = 0;
	for (size_t j = i; j < n; j++)
		x = x * 10 + (v[j] - '0');
	if (i)
		x = -x;
	if (x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

/* A JSON string of at most max bytes decoded, without NUL, into out (max + 1). */
static bool get_str(const char *v, size_t n, char *out, size_t max)
{
	if (n < 2 || v[0] != '"')
		return false;
	char *tmp = hd_malloc(n);
	size_t k = hd_json_text_unescape(v, n, tmp);
	bool ok = k <= max && !memchr(tmp, '\0', k);
	if (ok) {
		memcpy(out, tmp, k);
		out[k] = '\0';
	}
	free(tmp);
	return ok;
}

/* A JSON string of standard base64 (b64info, b64data) decoded into *out
 * (owned, a NUL after the *len bytes); false when it is not one. */
static bool get_b64(const char *v, size_t n, char **out, size_t *len)
{
	if (n < 2 || v[0] != '"')
		return false;
	char *tmp = hd_malloc(n);
	size_t k = hd_json_text_unescape(v, n, tmp);
	unsigned char *buf = hd_malloc(HD_B64_DECODED_MAX(k) + 1);
	bool ok = hd_b64_decode(tmp, k, 0, buf, HD_B64_DECODED_MAX(k), len) == 0;
	free(tmp);
	if (!ok) {
		free(buf);
		return false;
	}
	buf[*len] = '\0';
	*out = (char *)buf;
	return true;
}

/* b64info: base64 of a JSON text of at most HD_JWT_INFO_MAX bytes (as the
 * tokens' b64info), kept minified as a->info. */
static bool get_b64info(const char *v, size_t n, struct hd_cproxy_answer *a)
{
	char *raw;
	size_t len;
	struct hd_json_text_scan scan = {0};
	if (!get_b64(v, n, &raw, &len))
		return false;
	if (len > HD_JWT_INFO_MAX || hd_json_text_minify(raw, len, raw, &scan, NULL)) {
		free(raw);
		return false;
	}
	raw[scan.out_len] = '\0';
	free(a->info);
	a->info = raw;
	a->info_len = scan.out_len;
	return true;
}

static char *dup_raw(const char *v, size_t n)
{
	char *p = hd_malloc(n + 1);
	memcpy(p, v, n);
	p[n] = '\0';
	return p;
}

static int parse_channels(const char *v, size_t n, struct hd_cproxy_answer *a)
{
	if (v[0] != '[')
		return fail(a, "result.%s is not an array", "channels");
	struct hd_json_text_span sp[HD_CPROXY_CHANNELS_MAX];
	struct hd_json_text_scan scan = {.spans = sp, .spans_max = HD_CPROXY_CHANNELS_MAX};
	char *tmp = hd_malloc(n);
	int rc = hd_json_text_minify(v, n, tmp, &scan, NULL);
	if (rc) {
		free(tmp);
		return fail(a, "result.channels: more than %s", "128 channels");
	}
	a->channels = hd_calloc(scan.nspans ? scan.nspans : 1, sizeof(*a->channels));
	for (size_t i = 0; i < scan.nspans; i++) {
		char name[256];
		if (!get_str(tmp + sp[i].val_off, sp[i].val_len, name, sizeof(name) - 1)) {
			free(tmp);
			return fail(a, "result.channels: %s", "an entry is not a string of at most 255 bytes");
		}
		a->channels[a->nchannels++] = hd_strdup(name);
	}
	free(tmp);
	return 0;
}

static int parse_result(enum hd_cproxy_kind kind, const char *v, size_t n, struct hd_cproxy_answer *a)
{
	struct obj r;
	const char *x;
	size_t xn;
	if (obj_split(&r, v, n))
		return fail(a, "%s is not an object (of at most 64 members)", "result");
	if (kind == HD_CPROXY_CONNECT &&
	    (x = obj_get(&r, "user", &xn)) && !is_null(x, xn) &&
	    (!get_str(x, xn, a->user, HD_CPROXY_USER_MAX) || strchr(a->user, ':')))
		return fail(a, "result.%s is not a string of at most 250 bytes without ':'", "user");
	bool refresh = kind == HD_CPROXY_REFRESH || kind == HD_CPROXY_SUB_REFRESH;
	if (refresh && (x = obj_get(&r, "expired", &xn))) {
		if (xn == 4 && memcmp(x, "true", 4) == 0)
			a->expired = true;
		else if (!(xn == 5 && memcmp(x, "false", 5) == 0) && !is_null(x, xn))
			return fail(a, "result.%s is not a boolean", "expired");
	}
	if (kind == HD_CPROXY_CONNECT || kind == HD_CPROXY_SUBSCRIBE || refresh) {
		if ((x = obj_get(&r, "expire_at", &xn)) && !is_null(x, xn) &&
		    !get_int(x, xn, 0, INT64_C(1) << 40, &a->expire_at))
			return fail(a, "result.%s is not a Unix time in seconds", "expire_at");
	}
	if (kind == HD_CPROXY_CONNECT &&
	    (x = obj_get(&r, "channels", &xn)) && !is_null(x, xn) && parse_channels(x, xn, a))
		return HD_EINVAL;
	if (kind == HD_CPROXY_CONNECT || kind == HD_CPROXY_SUBSCRIBE || refresh) {
		if ((x = obj_get(&r, "info", &xn)) && !is_null(x, xn)) {
			a->info = dup_raw(x, xn);
			a->info_len = xn;
		}
	}
	if (kind == HD_CPROXY_CONNECT || kind == HD_CPROXY_SUBSCRIBE || refresh) {
		if ((x = obj_get(&r, "b64info", &xn)) && !is_null(x, xn) && xn != 2 && !get_b64info(x, xn, a))
			return fail(a, "result.%s is not base64 of a JSON text of at most 4096 bytes", "b64info");
	}
	if (kind == HD_CPROXY_CONNECT && (x = obj_get(&r, "subs", &xn)) && !is_null(x, xn)) {
		/* Parsed as the connection token's subs claim is (one parser). */
		struct hd_error err = {0};
		if (hd_jwt_subs_parse(x, xn, "result.subs", &a->subs, &err))
			return fail(a, "%s", err.msg);
	}
	if (!refresh && (x = obj_get(&r, "b64data", &xn)) && !is_null(x, xn) && xn != 2) {
		if (!get_b64(x, xn, &a->data, &a->data_len))
			return fail(a, "result.%s is not base64", "b64data");
		a->data_b64 = true;
	} else if ((x = obj_get(&r, "data", &xn)) && !is_null(x, xn)) {
		a->data = dup_raw(x, xn);
		a->data_len = xn;
	}
	if (kind == HD_CPROXY_PUBLISH && (x = obj_get(&r, "skip_history", &xn))) {
		if (xn == 4 && memcmp(x, "true", 4) == 0)
			a->skip_history = true;
		else if (!(xn == 5 && memcmp(x, "false", 5) == 0) && !is_null(x, xn))
			return fail(a, "result.%s is not a boolean", "skip_history");
	}
	a->outcome = HD_CPROXY_RESULT;
	return 0;
}

int hd_cproxy_answer_parse(enum hd_cproxy_kind kind, const char *body, size_t len, struct hd_cproxy_answer *a)
{
	struct hd_error err = {0};
	struct obj top, o;
	const char *v;
	size_t vn;
	int64_t code;
	int rc;

	memset(a, 0, sizeof(*a));
	char *m = hd_malloc(len ? len : 1);
	struct hd_json_text_scan scan = {0};
	if (hd_json_text_minify(body, len, m, &scan, &err)) {
		rc = fail(a, "not JSON: %.200s", err.msg);
		goto out;
	}
	if (obj_split(&top, m, scan.out_len)) {
		rc = fail(a, "%s", "not an object (of at most 64 members)");
		goto out;
	}
	if ((v = obj_get(&top, "disconnect", &vn)) && !is_null(v, vn)) {
		if (obj_split(&o, v, vn) || !(v = obj_get(&o, "code", &vn)) || !get_int(v, vn, 4000, 4999, &code)) {
			rc = fail(a, "%s.code is not an integer in [4000, 4999]", "disconnect");
			goto out;
		}
		a->code = (uint32_t)code;
		if ((v = obj_get(&o, "reason", &vn)) && !get_str(v, vn, a->message, HD_CPROXY_REASON_MAX)) {
			rc = fail(a, "%s.reason is not a string of at most 123 bytes", "disconnect");
			goto out;
		}
		a->outcome = HD_CPROXY_DISCONNECT;
		rc = 0;
	} else if ((v = obj_get(&top, "error", &vn)) && !is_null(v, vn)) {
		if (obj_split(&o, v, vn) || !(v = obj_get(&o, "code", &vn)) || !get_int(v, vn, 400, 1999, &code)) {
			rc = fail(a, "%s.code is not an integer in [400, 1999]", "error");
			goto out;
		}
		a->code = (uint32_t)code;
		if ((v = obj_get(&o, "message", &vn)) && !get_str(v, vn, a->message, HD_CPROXY_MESSAGE_MAX)) {
			rc = fail(a, "%s.message is not a string of at most 255 bytes", "error");
			goto out;
		}
		a->outcome = HD_CPROXY_ERROR;
		rc = 0;
	} else if ((v = obj_get(&top, "result", &vn)) && !is_null(v, vn)) {
		rc = parse_result(kind, v, vn, a);
	} else {
		rc = fail(a, "%s", "none of result, error, disconnect");
	}
out:
	if (rc)
		hd_cproxy_answer_fini(a); /* a failure carries nothing but its message */
	free(m);
	return rc;
}

void hd_cproxy_answer_fini(struct hd_cproxy_answer *a)
{
	free(a->info);
	free(a->data);
	for (size_t i = 0; i < a->nchannels; i++)
		free(a->channels[i]);
	free(a->channels);
	hd_jwt_claims_fini(&a->subs);
	a->info = a->data = NULL;
	a->channels = NULL;
	a->nchannels = 0;
}

/* ---- Calls --------------------------------------------------------------- */

struct hd_cproxy {
	struct hd_http_client *http;
	char *url[HD_CPROXY_KINDS];
	char *static_name, *static_value;     /* NULL = none */
	char *fwd[HD_CPROXY_HEADERS_MAX];     /* lower-case names to forward */
	size_t nfwd;
	uint32_t max_inflight;
	struct hd_cproxy_call *calls;         /* out now, a list */
	size_t ncalls;
	bool closing;
};

struct hd_cproxy_call {
	struct hd_http_call http;             /* http.arg = this */
	struct hd_cproxy *p;
	enum hd_cproxy_kind kind;
	char *body;
	/* content-type, the static header, the forwarded ones */
	struct hd_http_header h[2 + HD_CPROXY_HEADERS_MAX];
	char *hval[HD_CPROXY_HEADERS_MAX];    /* owned copies of forwarded values */
	size_t nh, nhval;
	hd_cproxy_done_fn done;
	void *arg;
	struct hd_cproxy_call *prev, *next;
};

static bool token_char(char c)
{
	return isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c);
}

static bool header_name_ok(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!token_char(s[i]))
			return false;
	return true;
}

static bool parse_fwd(struct hd_cproxy *p, const char *list, struct hd_error *err)
{
	const char *s = list ? list : "";
	while (*s) {
		while (*s == ' ' || *s == ',')
			s++;
		const char *e = s;
		while (*e && *e != ',')
			e++;
		size_t n = (size_t)(e - s);
		while (n && s[n - 1] == ' ')
			n--;
		if (n) {
			if (!header_name_ok(s, n) || p->nfwd == HD_CPROXY_HEADERS_MAX) {
				hd_error_set(err, HD_EINVAL, "--proxy-http-headers: \"%.*s\" is not a header name "
					     "(or more than %d names)", (int)n, s, HD_CPROXY_HEADERS_MAX);
				return false;
			}
			char *name = hd_malloc(n + 1);
			for (size_t i = 0; i < n; i++)
				name[i] = (char)tolower((unsigned char)s[i]);
			name[n] = '\0';
			p->fwd[p->nfwd++] = name;
		}
		s = e;
	}
	return true;
}

static bool parse_static(struct hd_cproxy *p, const char *h, struct hd_error *err)
{
	if (!h || !h[0])
		return true;
	const char *colon = strchr(h, ':');
	if (!colon || !header_name_ok(h, (size_t)(colon - h)) || strpbrk(h, "\r\n")) {
		hd_error_set(err, HD_EINVAL, "--proxy-static-header: not \"Name: value\"");
		return false;
	}
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	p->static_name = hd_malloc((size_t)(colon - h) + 1);
	memcpy(p->static_name, h, (size_t)(colon - h));
	p->static_name[colon - h] = '\0';
	p->static_value = hd_strdup(v);
	return true;
}

struct hd_cproxy *hd_cproxy_new(uv_loop_t *loop, const struct hd_cproxy_opts *o, struct hd_error *err)
{
	struct hd_cproxy *p = hd_calloc(1, sizeof(*p));
	p->max_inflight = o->max_inflight ? o->max_inflight : 1000;
	for (int k = 0; k < HD_CPROXY_KINDS; k++)
		if (o->url[k] && o->url[k][0])
			p->url[k] = hd_strdup(o->url[k]);
	if (!parse_fwd(p, o->http_headers, err) || !parse_static(p, o->static_header, err))
		goto fail;
	uint32_t t = o->timeout_ms ? o->timeout_ms : 1000;
	struct hd_http_client_opts ho = {
		.timeout_ms = t,
		.connect_timeout_ms = t,
		.max_per_host = 64,
		.max_total = 256,
		.max_inflight = p->max_inflight,
		.max_response = HD_CPROXY_RESPONSE_MAX,
		.allow_private = o->allow_private,
		.user_agent = "herald/" HD_VERSION,
	};
	p->http = hd_http_client_new(loop, &ho, err);
	if (!p->http)
		goto fail;
	return p;
fail:
	hd_cproxy_free(p);
	return NULL;
}

bool hd_cproxy_enabled(const struct hd_cproxy *p, enum hd_cproxy_kind kind)
{
	return p && p->url[kind] != NULL;
}

size_t hd_cproxy_inflight(const struct hd_cproxy *p)
{
	return p->ncalls;
}

static void m_str(struct hd_buf *b, bool *any, const char *name, const char *v)
{
	if (!v || !v[0])
		return;
	hd_buf_printf(b, "%s\"%s\":\"", *any ? "," : "", name);
	hd_buf_json_escape(b, v, strlen(v));
	hd_buf_putc(b, '"');
	*any = true;
}

/* The request body, or NULL when a string is not UTF-8. */
static char *request_body(const struct hd_cproxy_req *r)
{
	const char *strs[] = {r->client, r->transport, r->protocol, r->user, r->channel, r->method, r->name,
			      r->version};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strs[i] && !hd_json_text_utf8_valid(strs[i], strlen(strs[i])))
			return NULL;
	struct hd_buf b;
	bool any = false;
	hd_buf_init(&b, BODY_MAX + 4096);
	hd_buf_putc(&b, '{');
	m_str(&b, &any, "client", r->client);
	m_str(&b, &any, "transport", r->transport);
	m_str(&b, &any, "protocol", r->protocol);
	m_str(&b, &any, "encoding", r->binary ? "binary" : "json");
	m_str(&b, &any, "user", r->user);
	m_str(&b, &any, "channel", r->channel);
	m_str(&b, &any, "method", r->method);
	m_str(&b, &any, "name", r->name);
	m_str(&b, &any, "version", r->version);
	if (r->data && r->data_len && r->data_len <= BODY_MAX) {
		/* Protobuf clients may send data that is not JSON: left out. */
		char *m = hd_malloc(r->data_len);
		struct hd_json_text_scan scan = {0};
		if (hd_json_text_minify(r->data, r->data_len, m, &scan, NULL) == 0) {
			hd_buf_puts(&b, ",\"data\":");
			hd_buf_append(&b, m, scan.out_len);
		}
		free(m);
	}
	hd_buf_putc(&b, '}');
	return hd_buf_steal(&b, NULL);
}

static void call_free(struct hd_cproxy_call *c)
{
	for (size_t i = 0; i < c->nhval; i++)
		free(c->hval[i]);
	free(c->body);
	free(c);
}

static void call_unlink(struct hd_cproxy_call *c)
{
	struct hd_cproxy *p = c->p;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->ncalls--;
}

static void on_http_done(struct hd_http_call *h)
{
	struct hd_cproxy_call *c = h->arg;
	struct hd_cproxy_answer a;
	call_unlink(c);
	if (h->err) {
		memset(&a, 0, sizeof(a));
		a.outcome = HD_CPROXY_FAILED;
		snprintf(a.message, sizeof(a.message), "%s: %.200s",
			 h->err == HD_ETIMEOUT ? "backend timed out" : "backend unavailable", h->error);
	} else if (h->status != 200) {
		memset(&a, 0, sizeof(a));
		a.outcome = HD_CPROXY_FAILED;
		snprintf(a.message, sizeof(a.message), "backend answered HTTP %d", h->status);
	} else {
		hd_cproxy_answer_parse(c->kind, h->response, h->response_len, &a);
	}
	if (a.outcome == HD_CPROXY_FAILED)
		hd_log_warn("proxy failed kind=%s url=%s: %s", kind_names[c->kind], c->p->url[c->kind],
			    a.message);
	c->done(c->arg, &a);
	hd_cproxy_answer_fini(&a);
	call_free(c);
}

int hd_cproxy_send(struct hd_cproxy *p, const struct hd_cproxy_req *r, hd_cproxy_done_fn done, void *arg)
{
	if (p->closing)
		return HD_EUNAVAIL;
	if (!hd_cproxy_enabled(p, r->kind))
		return HD_EINVAL;
	if (p->ncalls >= p->max_inflight)
		return HD_ELIMIT;
	char *body = request_body(r);
	if (!body)
		return HD_EINVAL;
	struct hd_cproxy_call *c = hd_calloc(1, sizeof(*c));
	c->p = p;
	c->kind = r->kind;
	c->body = body;
	c->done = done;
	c->arg = arg;
	c->h[c->nh++] = (struct hd_http_header){"Content-Type", "application/json"};
	if (p->static_name)
		c->h[c->nh++] = (struct hd_http_header){p->static_name, p->static_value};
	for (size_t i = 0; r->get && i < p->nfwd; i++) {
		const char *v = r->get(r->get_arg, p->fwd[i]);
		if (!v || strpbrk(v, "\r\n"))
			continue;
		c->hval[c->nhval] = hd_strdup(v);
		c->h[c->nh++] = (struct hd_http_header){p->fwd[i], c->hval[c->nhval++]};
	}
	c->http.url = p->url[r->kind];
	c->http.method = "POST";
	c->http.headers = c->h;
	c->http.nheaders = c->nh;
	c->http.body = c->body;
	c->http.body_len = strlen(c->body);
	c->http.done = on_http_done;
	c->http.arg = c;
	int rc = hd_http_client_send(p->http, &c->http);
	if (rc) {
		call_free(c);
		return rc == HD_ELIMIT ? HD_ELIMIT : HD_EUNAVAIL;
	}
	c->next = p->calls;
	if (p->calls)
		p->calls->prev = c;
	p->calls = c;
	p->ncalls++;
	return 0;
}

struct hd_cproxy_headers {
	size_t n;
	char *name[HD_CPROXY_HEADERS_MAX];
	char *value[HD_CPROXY_HEADERS_MAX];
};

struct hd_cproxy_headers *hd_cproxy_headers_take(const struct hd_cproxy *p,
						 const char *(*get)(void *arg, const char *lname), void *arg)
{
	struct hd_cproxy_headers *h = NULL;
	if (!hd_cproxy_enabled(p, HD_CPROXY_CONNECT))
		return NULL;
	for (size_t i = 0; i < p->nfwd; i++) {
		const char *v = get(arg, p->fwd[i]);
		if (!v)
			continue;
		if (!h)
			h = hd_calloc(1, sizeof(*h));
		h->name[h->n] = hd_strdup(p->fwd[i]);
		h->value[h->n++] = hd_strdup(v);
	}
	return h;
}

const char *hd_cproxy_headers_get(void *arg, const char *lname)
{
	const struct hd_cproxy_headers *h = arg;
	for (size_t i = 0; h && i < h->n; i++)
		if (strcmp(h->name[i], lname) == 0)
			return h->value[i];
	return NULL;
}

void hd_cproxy_headers_free(struct hd_cproxy_headers *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->name[i]);
		free(h->value[i]);
	}
	free(h);
}

void hd_cproxy_close(struct hd_cproxy *p)
{
	if (!p || p->closing)
		return;
	p->closing = true;
	while (p->calls) {
		struct hd_cproxy_call *c = p->calls;
		hd_http_client_cancel(p->http, &c->http);
		call_unlink(c);
		struct hd_cproxy_answer a = {.outcome = HD_CPROXY_FAILED};
		snprintf(a.message, sizeof(a.message), "shutting down");
		c->done(c->arg, &a);
		call_free(c);
	}
	if (p->http)
		hd_http_client_close(p->http);
}

void hd_cproxy_free(struct hd_cproxy *p)
{
	if (!p)
		return;
	if (p->http)
		hd_http_client_free(p->http);
	for (int k = 0; k < HD_CPROXY_KINDS; k++)
		free(p->url[k]);
	for (size_t i = 0; i < p->nfwd; i++)
		free(p->fwd[i]);
	free(p->static_name);
	free(p->static_value);
	free(p);
}
