/*
 * group_http — see group_http.h.
 */
#include "edge/group_http.h"
#include "core/err.h"
#include "groups/groups.h"
#include "http/query.h"

#include <http_parser.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void hd_group_http_json(struct hd_http_request *req, int status, struct hd_buf *b)
{
	hd_http_respond(req, status, "application/json", NULL, b->data ? b->data : "", b->len);
	hd_buf_fini(b);
}

void hd_group_http_error(struct hd_http_request *req, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hd_http_respond_error(req, code, msg);
}

json_t *hd_group_http_body(struct hd_http_request *req, bool empty_ok)
{
	json_error_t jerr;
	json_t *v = empty_ok && req->body_len == 0
			    ? json_object()
			    : json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v || !json_is_object(v)) {
		json_decref(v);
		hd_group_http_error(req, HD_EINVAL, "the body must be a JSON object");
		return NULL;
	}
	return v;
}

/* A query number from 0 to max, def when absent. Returns 0, or -1 for one
 * that is not such a number. */
static int query_num(const struct hd_http_request *req, const char *name, double def, double max,
		     double *out)
{
	char v[32], *end;
	long n = hd_query_get(req->query, name, v, sizeof(v));
	*out = def;
	if (n == -1)
		return 0;
	double x = n > 0 && v[0] >= '0' && v[0] <= '9' ? strtod(v, &end) : -1;
	if (n <= 0 || x < 0 || *end || x > max)
		return -1;
	*out = x;
	return 0;
}

bool hd_group_http_fetch_args(struct hd_http_request *req, uint32_t *max, double *wait_s)
{
	double m;
	if (query_num(req, "max", HD_GROUP_FETCH_DEFAULT, HD_GROUP_FETCH_MAX, &m) || m < 1 ||
	    m != (double)(uint32_t)m) {
		hd_group_http_error(req, HD_EINVAL,
				     "query parameter 'max' must be a whole number from 1 to %d",
				     HD_GROUP_FETCH_MAX);
		return false;
	}
	if (query_num(req, "wait", 0, HD_GROUP_WAIT_MAX_S, wait_s)) {
		hd_group_http_error(req, HD_EINVAL,
				     "query parameter 'wait' must be seconds from 0 to %d",
				     HD_GROUP_WAIT_MAX_S);
		return false;
	}
	*max = (uint32_t)m;
	return true;
}

static bool u32_member(struct hd_http_request *req, json_t *body, const char *name, uint32_t min,
		       uint32_t max, uint32_t *out)
{
	json_t *v = json_object_get(body, name);
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		hd_group_http_error(req, HD_EINVAL,
				     "'%s' must be a whole number from %" PRIu32 " to %" PRIu32, name,
				     min, max);
		return false;
	}
	*out = (uint32_t)json_integer_value(v);
	return true;
}

bool hd_group_http_config_args(struct hd_http_request *req, json_t *body, uint32_t *ack_wait_ms,
			  uint32_t *max_deliveries, bool *ordered)
{
	json_t *ord = json_object_get(body, "ordered");
	if (!u32_member(req, body, "ack_wait_ms", 100, HD_GROUP_ACK_WAIT_MAX_MS, ack_wait_ms) ||
	    !u32_member(req, body, "max_deliveries", 0, HD_GROUP_MAX_DELIVERIES_MAX,
			max_deliveries))
		return false;
	if (ord) {
		if (!json_is_boolean(ord)) {
			hd_group_http_error(req, HD_EINVAL, "'ordered' must be true or false");
			return false;
		}
		*ordered = json_is_true(ord);
	}
	return true;
}

bool hd_group_http_delay_arg(struct hd_http_request *req, json_t *body, int64_t *delay_ms)
{
	json_t *delay = json_object_get(body, "delay_ms");
	if (!delay)
		return true;
	if (!json_is_integer(delay) || json_integer_value(delay) < 0 ||
	    json_integer_value(delay) > HD_GROUP_NACK_DELAY_MAX_MS) {
		hd_group_http_error(req, HD_EINVAL, "'delay_ms' must be from 0 to %d",
				     HD_GROUP_NACK_DELAY_MAX_MS);
		return false;
	}
	*delay_ms = json_integer_value(delay);
	return true;
}

/* Decodes the {group} segment and hands the action (row->op) to groups. */
static void route_group(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	char name[HD_GROUP_NAME_MAX + 1];
	struct hd_access_cred cred;

	if (hd_url_decode(ctx->param, ctx->param_len, name, sizeof(name), false) <= 0) {
		hd_http_respond_error(req, HD_EINVAL, "group name must be 1-128 bytes of [A-Za-z0-9._~-]");
		return;
	}
	hd_access_cred_of(ctx->who, &cred);
	hd_groups_handle(ctx->row->arg, req, (enum hd_group_action)ctx->row->op, ctx->topic, name, &cred);
}

void hd_group_http_routes(struct hd_groups *groups, struct hd_route_table *t)
{
	const char *one = "/v1/topics/{pattern}/groups/{group}";
	const enum hd_route_guard g = HD_ROUTE_READ;
	const hd_route_fn fn = route_group;
	const struct hd_route rows[] = {
		{HTTP_GET, one, g, 0, fn, groups, HD_GROUP_ACT_INFO, 0},
		{HTTP_PUT, one, g, 0, fn, groups, HD_GROUP_ACT_CREATE, 0},
		{HTTP_DELETE, one, g, 0, fn, groups, HD_GROUP_ACT_DELETE, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/fetch", g, 0, fn, groups, HD_GROUP_ACT_FETCH, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/ack", g, 0, fn, groups, HD_GROUP_ACT_ACK, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/nack", g, 0, fn, groups, HD_GROUP_ACT_NACK, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}
