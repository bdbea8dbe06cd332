/* ui — see ui.h. */
#include "edge/ui.h"
#include "edge/ui_assets.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define UI_HEADERS_MAX 640

const struct hd_ui_asset *hd_ui_find(const char *name, size_t name_len)
{
	for (size_t i = 0; i < hd_ui_assets_n; i++) {
		const struct hd_ui_asset *a = &hd_ui_assets[i];
		if (strlen(a->name) == name_len && memcmp(a->name, name, name_len) == 0)
			return a;
	}
	return NULL;
}

/* Whether the request's If-None-Match names etag (a list, or "*"). */
static bool not_modified(const struct hd_http_request *req, const char *etag)
{
	const char *inm = hd_http_header_get(req, "if-none-match");
	if (!inm)
		return false;
	if (strcmp(inm, "*") == 0)
		return true;
	/* A weak validator of the same tag matches too (RFC 9110 §13.1.2:
	 * If-None-Match uses the weak comparison). */
	return strstr(inm, etag) != NULL;
}

static void serve(struct hd_http_request *req, const struct hd_ui_asset *a)
{
	char extra[UI_HEADERS_MAX];
	snprintf(extra, sizeof(extra),
		 "ETag: %s\r\n"
		 "Cache-Control: no-cache\r\n"
		 "Content-Security-Policy: " HD_UI_CSP "\r\n"
		 "X-Content-Type-Options: nosniff\r\n"
		 "X-Frame-Options: DENY\r\n"
		 "Referrer-Policy: no-referrer\r\n",
		 a->etag);
	if (not_modified(req, a->etag))
		hd_http_respond(req, 304, NULL, extra, "", 0);
	else
		hd_http_respond(req, 200, a->type, extra, (const char *)a->data, a->len);
}

static void route_index(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	(void)ctx;
	const struct hd_ui_asset *a = hd_ui_find("index.html", 10);
	if (a)
		serve(req, a);
	else
		hd_route_not_found(req);
}

static void route_file(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	const struct hd_ui_asset *a = hd_ui_find(ctx->param, ctx->param_len);
	if (a)
		serve(req, a);
	else
		hd_route_not_found(req);
}

void hd_ui_routes(struct hd_route_table *t)
{
	const struct hd_route rows[] = {
		{HTTP_GET, "/ui", HD_ROUTE_OPEN, 0, route_index, NULL, 0, 0},
		{HTTP_GET, "/ui/", HD_ROUTE_OPEN, 0, route_index, NULL, 0, 0},
		{HTTP_GET, "/ui/{name}", HD_ROUTE_OPEN, 0, route_file, NULL, 0, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}
