/*
 * ui — serves the admin console at /ui: the HTML, CSS and JavaScript of
 * ui/ compiled into the binary (edge/ui_assets.h). The console is a static
 * page; everything it shows comes from the public REST API, called by the
 * browser with the admin key the operator signs in with (docs/console.md).
 * Layer: edge. Registered in the route table by main.c unless --ui off;
 * loop thread.
 *
 *   GET /ui, /ui/          index.html
 *   GET /ui/{name}         one file of ui/ (404 for any other name)
 *
 * The files are public (no key: they hold no secret; the API calls they
 * make need one). Every answer carries a strong ETag (If-None-Match → 304),
 * Cache-Control: no-cache (the browser revalidates, so a new binary's
 * console is seen at once), and a Content-Security-Policy that allows
 * scripts, styles and connections to this origin only: no inline script,
 * no eval, no other host, no framing.
 */
#ifndef HD_EDGE_UI_H
#define HD_EDGE_UI_H

#include "edge/route.h"

/* The Content-Security-Policy of every /ui answer. */
#define HD_UI_CSP                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* Adds the /ui rows to t. Before the first request. */
void hd_ui_routes(struct hd_route_table *t);
/* The asset called name (name_len bytes, not NUL-terminated), or NULL. */
const struct hd_ui_asset *hd_ui_find(const char *name, size_t name_len);

#endif
