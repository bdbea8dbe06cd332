/*
 * group_request — see group_request.h.
 */
#include "groups/group_request.h"
#include "core/err.h"
#include "groups/groups.h"
#include "http/query.h"

#include <inttypes.h>
#include <stdlib.h>

json_t *hd_group_request_body(struct hd_http_request *req, bool empty_ok)
{
	json_error_t jerr;
	json_t *v = empty_ok && req->body_len == 0
			    ? json_object()
			    : json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v || !json_is_object(v)) {
		json_decref(v);
		hd_http_respond_errorf(req, HD_EINVAL, "the body must be a JSON object");
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

bool hd_group_request_fetch_args(struct hd_http_request *req, uint32_t *max, double *wait_s)
{
	double m;
	if (query_num(req, "max", HD_GROUP_FETCH_DEFAULT, HD_GROUP_FETCH_MAX, &m) || m < 1 ||
	    m != (double)(uint32_t)m) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "query parameter 'max' must be a whole number from 1 to %d",
				       HD_GROUP_FETCH_MAX);
		return false;
	}
	if (query_num(req, "wait", 0, HD_GROUP_WAIT_MAX_S, wait_s)) {
		hd_http_respond_errorf(req, HD_EINVAL,
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
		hd_http_respond_errorf(req, HD_EINVAL,
				       "'%s' must be a whole number from %" PRIu32 " to %" PRIu32, name,
				       min, max);
		return false;
	}
	*out = (uint32_t)json_integer_value(v);
	return true;
}

bool hd_group_request_config_args(struct hd_http_request *req, json_t *body, uint32_t *ack_wait_ms,
				  uint32_t *max_deliveries, bool *ordered)
{
	json_t *ord = json_object_get(body, "ordered");
	if (!u32_member(req, body, "ack_wait_ms", 100, HD_GROUP_ACK_WAIT_MAX_MS, ack_wait_ms) ||
	    !u32_member(req, body, "max_deliveries", 0, HD_GROUP_MAX_DELIVERIES_MAX,
			max_deliveries))
		return false;
	if (ord) {
		if (!json_is_boolean(ord)) {
			hd_http_respond_errorf(req, HD_EINVAL, "'ordered' must be true or false");
			return false;
		}
		*ordered = json_is_true(ord);
	}
	return true;
}

bool hd_group_request_delay_arg(struct hd_http_request *req, json_t *body, int64_t *delay_ms)
{
	json_t *delay = json_object_get(body, "delay_ms");
	if (!delay)
		return true;
	if (!json_is_integer(delay) || json_integer_value(delay) < 0 ||
	    json_integer_value(delay) > HD_GROUP_NACK_DELAY_MAX_MS) {
		hd_http_respond_errorf(req, HD_EINVAL, "'delay_ms' must be from 0 to %d",
				       HD_GROUP_NACK_DELAY_MAX_MS);
		return false;
	}
	*delay_ms = json_integer_value(delay);
	return true;
}
