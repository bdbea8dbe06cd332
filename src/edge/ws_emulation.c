/* ws_emulation — see ws_emulation.h. */
#include "edge/ws_emulation.h"
#include "core/alloc.h"
#include "edge/ws_edge.h"
#include "http/query.h"
#include "proto/centrifuge.h"
#include "proto/centrifuge_pb.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MAX 64 /* an /emulation session id; ours are 36 */

/* Whether the request's body is protobuf (Content-Type application/octet-stream). */
static bool body_protobuf(const struct hd_http_request *req)
{
	const char *ct = hd_http_header_get(req, "content-type");
	return ct && strncmp(ct, "application/octet-stream", 24) == 0;
}

static void answer(struct hd_http_request *req, int rc, const char *why)
{
	if (rc == HD_EINVAL)
		hd_http_respond_error(req, rc, why);
	else
		hd_http_respond_error(req, rc, NULL);
}

/* POST /connection/http_stream: the body holds the first commands. */
static void route_http_stream(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_ws_edge *e = ctx->row->arg;
	int rc = hd_ws_edge_stream(e, req, false, body_protobuf(req), req->body, req->body_len);
	if (rc)
		answer(req, rc, "the body must hold Centrifugo commands");
}

/* GET /connection/sse?cf_connect=<commands>. */
static void route_sse(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_ws_edge *e = ctx->row->arg;
	char *cmds = hd_malloc(HD_CENTRIFUGE_LINE_MAX + 1);
	long n = hd_query_get(req->query, "cf_connect", cmds, HD_CENTRIFUGE_LINE_MAX + 1);
	int rc;
	if (n <= 0)
		rc = n == -2 ? HD_ETOOBIG : HD_EINVAL;
	else
		rc = hd_ws_edge_stream(e, req, true, false, cmds, (size_t)n);
	free(cmds);
	if (rc)
		answer(req, rc, "cf_connect must hold the connect command (JSON)");
}

/* POST /emulation: one batch of commands for a streaming session. */
static void route_emulation(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_ws_edge *e = ctx->row->arg;
	char session[SESSION_MAX + 1];
	const char *data = NULL;
	size_t n = 0;
	char *owned = NULL;
	json_t *root = NULL;
	int rc = HD_EINVAL;

	if (body_protobuf(req)) {
		struct hd_centrifuge_pb_emulation em;
		if (hd_centrifuge_pb_emulation_decode((const uint8_t *)req->body, req->body_len, &em, NULL) ||
		    em.session_len == 0 || em.session_len > SESSION_MAX)
			goto out;
		memcpy(session, em.session, em.session_len);
		session[em.session_len] = '\0';
		data = em.data;
		n = em.data_len;
	} else {
		root = json_loadb(req->body, req->body_len, 0, NULL);
		const char *sid = json_string_value(json_object_get(root, "session"));
		json_t *d = json_object_get(root, "data");
		if (!sid || strlen(sid) > SESSION_MAX || !sid[0])
			goto out;
		strcpy(session, sid);
		if (json_is_string(d)) {
			data = json_string_value(d);
			n = json_string_length(d);
		} else if (json_is_object(d)) {
			owned = json_dumps(d, JSON_COMPACT);
			data = owned;
			n = owned ? strlen(owned) : 0;
		} else {
			goto out;
		}
	}
	rc = hd_ws_edge_emulate(e, session, data, n);
out:
	if (root)
		json_decref(root);
	free(owned);
	if (rc)
		answer(req, rc, "an emulation request is {\"session\":…,\"data\":…} or a protobuf EmulationRequest");
	else
		hd_http_respond(req, 204, NULL, NULL, "", 0);
}

void hd_ws_emulation_routes(struct hd_ws_edge *e, struct hd_route_table *t)
{
	hd_route_add(t, &(struct hd_route){HTTP_POST, "/connection/http_stream", HD_ROUTE_OPEN, 0,
					   route_http_stream, e, 0, 0});
	hd_route_add(t, &(struct hd_route){HTTP_GET, "/connection/sse", HD_ROUTE_OPEN, 0, route_sse, e, 0,
					   HD_ROUTE_NO_HEAD});
	hd_route_add(t, &(struct hd_route){HTTP_POST, "/emulation", HD_ROUTE_OPEN, 0, route_emulation, e, 0, 0});
}
