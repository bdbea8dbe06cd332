/*
 * ui_assets — the admin console's files (ui/ in the repository), compiled
 * into the binary as byte arrays by cmake/embed_ui.cmake at build time;
 * edge/ui.c serves them at /ui. The generated file (build dir,
 * generated/ui_assets.c) defines the table; nothing here is written at run
 * time.
 * Layer: edge (data only). Any thread may read it.
 */
#ifndef HD_EDGE_UI_ASSETS_H
#define HD_EDGE_UI_ASSETS_H

#include <stddef.h>

struct hd_ui_asset {
	const char *name;          /* path under ui/, e.g. "app.js" */
	const char *type;          /* the Content-Type, from the extension */
	const unsigned char *data; /* the file's bytes (NUL after the last one) */
	size_t len;
	const char *etag;          /* "\"<16 hex digits of its SHA-256>\"" (strong) */
};

/* Every file of ui/, sorted by name; static for the process's life. */
extern const struct hd_ui_asset hd_ui_assets[];
extern const size_t hd_ui_assets_n;

#endif
