/* route — see route.h. */
#include "edge/route.h"
#include "core/buf.h"
#include "http/query.h"
#include "hub/topic_pattern.h"

#include <assert.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

/* Whether the pattern segment p[0..len) is the parameter name. */
static bool seg_is(const char *p, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(p, name, len) == 0;
}

/* Whether path matches pat; then m's slices are set. */
static bool match(const char *pat, const char *path, struct hd_route_match *m)
{
	const char *p = pat, *s = path;

	m->topic = m->param = NULL;
	m->topic_len = m->param_len = 0;
	m->kind = 0;
	for (;;) {
		if (*p == '\0' || *s == '\0')
			return *p == *s;
		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
		if (*p != '{') {
			if (pl != sl || memcmp(p, s, pl) != 0)
				return false;
		} else if (seg_is(p, pl, "{topic}") || seg_is(p, pl, "{pattern}") ||
			   seg_is(p, pl, "{user}")) {
			m->kind = p[1] == 'p' ? 'p' : p[1] == 'u' ? 'u' : 't';
			m->topic = s;
			m->topic_len = sl;
		} else {
			m->param = s;
			m->param_len = sl;
		}
		p += pl;
		s += sl;
	}
}

/*
 * Decodes and checks the topic-like parameter of m into topic (room for
 * HD_TOPIC_NAME_MAX + 1 bytes); *user points into it for {user}.
 * Returns 0, or an HD_E* with err (the 400 the API documents).
 */
static int decode_topic(const struct hd_route_match *m, char *topic, const char **user,
			struct hd_error *err)
{
	long n;

	if (m->kind == 'u') {
		/* POST /v1/users/{id}/notifications publishes to "user:{id}". */
		n = hd_query_url_decode(m->topic, m->topic_len, topic + 5, HD_TOPIC_NAME_MAX + 1 - 5, false);
		memcpy(topic, "user:", 5);
		if (n <= 0 || memchr(topic + 5, ':', (size_t)n) ||
		    hd_topic_name_check(topic, (size_t)n + 5, err))
			return hd_error_set(err, HD_EBADTOPIC,
					    "user id must be 1-%d bytes of [A-Za-z0-9._~@-]",
					    HD_TOPIC_NAME_MAX - 5);
		*user = topic + 5;
		return 0;
	}
	n = hd_query_url_decode(m->topic, m->topic_len, topic, HD_TOPIC_NAME_MAX + 1, false);
	if (n > 0 && hd_topic_pattern_is(topic)) {
		if (hd_topic_pattern_check(topic, err))
			return err->code;
		if (m->kind != 'p')
			return hd_error_set(err, HD_EINVAL,
					    "a topic pattern is only allowed in consumer group routes");
		return 0;
	}
	if (n < 0)
		return hd_error_set(err, HD_EBADTOPIC,
				    "topic name is not valid percent-encoding or longer than %d bytes",
				    HD_TOPIC_NAME_MAX);
	return hd_topic_name_check(topic, (size_t)n, err);
}

/* The guard of row for the caller who on topic (and user, for {user}
 * routes): 0 or HD_E* with err. */
static int guard(const struct hd_route_table *t, const struct hd_route *row,
		 const struct hd_access_id *who, const char *topic, const char *user,
		 struct hd_error *err)
{
	switch (row->guard) {
	case HD_ROUTE_KEY:
		return hd_access_key(t->access, who, row->scope, topic, err);
	case HD_ROUTE_READ:
		if (!hd_topic_pattern_is(topic))
			return hd_access_read(t->access, who, topic, err);
		/* Every topic the pattern may ever match is read: a client
		 * token's namespace rules cannot be checked for all of them, and
		 * an API key's read scope is global. */
		if (who->token && !who->key)
			return hd_error_set(err, HD_EFORBIDDEN,
					    "client tokens cannot use a topic pattern; use an API key with"
					    " read scope");
		return hd_access_key(t->access, who, HD_KEY_READ, NULL, err);
	case HD_ROUTE_USER:
		return hd_access_user(t->access, who, user ? user : "", row->scope, err);
	case HD_ROUTE_OPEN:
	case HD_ROUTE_SELF:
		break;
	}
	return 0;
}

static bool method_ok(const struct hd_route *row, int method)
{
	if (row->method == HD_ROUTE_ANY || row->method == method)
		return true;
	return method == HTTP_HEAD && row->method == HTTP_GET && !(row->flags & HD_ROUTE_NO_HEAD);
}

void hd_route_lookup(const struct hd_route_table *t, const char *path, int method,
		     struct hd_route_match *m)
{
	size_t i = 0;

	m->status = 404;
	m->row = m->first = NULL;
	while (i < t->n && !match(t->rows[i].pattern, path, m))
		i++;
	if (i == t->n)
		return;
	m->first = &t->rows[i];
	m->status = 405;
	for (; i < t->n; i++) {
		if (strcmp(t->rows[i].pattern, m->first->pattern) == 0 && method_ok(&t->rows[i], method)) {
			m->row = &t->rows[i];
			m->status = 0;
			return;
		}
	}
}

void hd_route_allow(const struct hd_route_table *t, const struct hd_route *first, char *out,
		    size_t max)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = (size_t)(first - t->rows); i < t->n; i++) {
		if (strcmp(t->rows[i].pattern, first->pattern) != 0 || t->rows[i].method == HD_ROUTE_ANY)
			continue;
		int w = snprintf(out + len, max - len, "%s%s", len ? ", " : "",
				 http_method_str(t->rows[i].method));
		if (w < 0 || (size_t)w >= max - len) {
			out[len] = '\0'; /* cut at a whole method */
			return;
		}
		len += (size_t)w;
	}
}

/* Answers 405 with the methods of first's pattern. */
static void not_allowed(const struct hd_route_table *t, struct hd_http_request *req,
			const struct hd_route *first)
{
	char allow[64];

	hd_route_allow(t, first, allow, sizeof(allow));
	hd_route_method_not_allowed(req, allow);
}

void hd_route_dispatch(const struct hd_route_table *t, struct hd_http_request *req)
{
	struct hd_access_id who;
	struct hd_error err = {0};
	struct hd_route_match m = {0};
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_route_ctx ctx = {.access = t->access};

	hd_route_lookup(t, req->path, req->method, &m);
	ctx.method = req->method == HTTP_HEAD ? HTTP_GET : req->method;
	if (m.first && m.first->guard == HD_ROUTE_OPEN) {
		if (m.row) {
			ctx.row = m.row;
			ctx.param = m.param; /* open rows get their {name} too (/ui/{name}) */
			ctx.param_len = m.param_len;
			m.row->fn(req, &ctx);
		} else {
			not_allowed(t, req, m.first);
		}
		return;
	}
	if (hd_access_identify(t->access, req, &who, &err)) {
		hd_access_deny(req, &err);
		goto out;
	}
	if (!m.first) {
		hd_route_not_found(req);
		goto out;
	}
	if (m.kind) {
		if (decode_topic(&m, topic, &ctx.user, &err)) {
			hd_http_respond_error(req, err.code, err.msg[0] ? err.msg : NULL);
			goto out;
		}
		ctx.topic = topic;
	}
	if (!m.row) {
		not_allowed(t, req, m.first);
		goto out;
	}
	if (guard(t, m.row, &who, ctx.topic, ctx.user, &err)) {
		hd_access_deny(req, &err);
		goto out;
	}
	ctx.row = m.row;
	ctx.who = &who;
	ctx.param = m.param;
	ctx.param_len = m.param_len;
	m.row->fn(req, &ctx);
out:
	hd_access_id_fini(&who);
}

void hd_route_init(struct hd_route_table *t, const struct hd_access *access)
{
	memset(t, 0, sizeof(*t));
	t->access = access;
}

void hd_route_add(struct hd_route_table *t, const struct hd_route *row)
{
	assert(t->n < HD_ROUTE_MAX);
	t->rows[t->n++] = *row;
}

void hd_route_add_all(struct hd_route_table *t, const struct hd_route *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hd_route_add(t, &rows[i]);
}

void hd_route_method_not_allowed(struct hd_http_request *req, const char *allow)
{
	char hdr[96], msg[128];
	struct hd_buf b;

	snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
	snprintf(msg, sizeof(msg), "use %s on this path", allow);
	hd_buf_init(&b, 512);
	hd_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", hd_err_slug(HD_EMETHOD),
		      msg);
	hd_http_respond(req, 405, HD_HTTP_JSON_TYPE, hdr, b.data, b.len);
	hd_buf_fini(&b);
}

void hd_route_not_found(struct hd_http_request *req)
{
	hd_http_respond_error(req, HD_ENOTFOUND, "no such route; see docs/api.md");
}
