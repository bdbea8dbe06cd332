/*
 * route — the route table of herald's HTTP edges: one row per method and
 * path pattern, with the guard that decides who may call it and the
 * handler that answers, in the manner of h2o's h2o_config_register_path and
 * nginx's access phase. Each edge registers its own rows (api.c the REST
 * core and the WebSocket upgrade, sse.c, cursors.c, group_http.c,
 * webhook_http.c); the api dispatches every request through the table.
 * Layer: edge (a helper of the HTTP edges, like access.h). Loop thread.
 *
 * A pattern is a path of '/'-separated segments; a segment is a literal or
 * a parameter:
 *   {topic}    a topic name, percent-decoded and checked; a topic pattern
 *              ("orders.*") is refused with 400
 *   {pattern}  a topic name or a topic pattern (consumer group routes)
 *   {user}     a user id; the route's topic is "user:{id}"
 *   {name}     any other parameter: the raw segment, for the handler
 * A parameter may be empty (the decoder then answers 400, as for a bad one).
 *
 * Dispatch, in this order (what the API answered before routes were data):
 *   1. The first row whose pattern matches the path picks the path; the
 *      rows of that same pattern are its methods. No row: 404.
 *   2. Unless the path is open (HD_ROUTE_OPEN), the credentials are read
 *      (edge/access.h); bad ones get 401 — before a 404 too.
 *   3. {topic}, {pattern} and {user} are decoded and checked: 400.
 *   4. No row of the method (HEAD counts as GET, unless HD_ROUTE_NO_HEAD):
 *      405 with Allow listing the rows' methods in registration order.
 *   5. The guard (the only access check of guarded rows): 401 or 403.
 *   6. The handler, which answers the request exactly once, now or later.
 * A lookup allocates nothing: a linear scan over the rows.
 */
#ifndef HD_EDGE_ROUTE_H
#define HD_EDGE_ROUTE_H

#include "edge/access.h"
#include "http/server.h"

#include <http_parser.h> /* the methods of the rows: HTTP_GET, … */

#define HD_ROUTE_MAX 64
/* A row whose method is any: the handler answers 405 itself. */
#define HD_ROUTE_ANY (-1)
/* Flag: HEAD does not reach this GET row (405 instead). */
#define HD_ROUTE_NO_HEAD 1u

/* Who may call a row. */
enum hd_route_guard {
	HD_ROUTE_OPEN,   /* anyone; no credentials are read (health, WebSocket) */
	HD_ROUTE_KEY,    /* an API key of the row's scope for the route's topic (or any topic) */
	HD_ROUTE_READ,   /* a read of the route's topic (hd_access_read); a topic pattern needs a key */
	HD_ROUTE_USER,   /* {user}'s own client token, or an API key of the row's scope */
	HD_ROUTE_SELF,   /* credentials are read; the handler decides, because access depends
			  * on the body, the query or a stored object (explicit special cases) */
};

struct hd_route;

/* What a handler gets, borrowed for the call. */
struct hd_route_ctx {
	const struct hd_route *row;
	const struct hd_access *access;
	const struct hd_access_id *who; /* the caller; NULL on open rows */
	int method;                     /* HEAD as GET */
	const char *topic;              /* {topic}, {pattern} or "user:{user}", decoded; NULL if none */
	const char *user;               /* {user}, decoded (inside topic); NULL if none */
	const char *param;              /* the raw {name} segment; NULL if none */
	size_t param_len;
};

typedef void (*hd_route_fn)(struct hd_http_request *req, const struct hd_route_ctx *ctx);

struct hd_route {
	int method;                     /* an http_parser method, or HD_ROUTE_ANY */
	const char *pattern;            /* static */
	enum hd_route_guard guard;
	enum hd_key_action scope;       /* HD_ROUTE_KEY's scope */
	hd_route_fn fn;
	void *arg;                      /* the handler's object, borrowed */
	int op;                         /* the handler's own selector (e.g. a group action) */
	unsigned flags;                 /* HD_ROUTE_NO_HEAD */
};

struct hd_route_table {
	struct hd_route rows[HD_ROUTE_MAX];
	size_t n;
	const struct hd_access *access; /* borrowed */
};

/* What a path and a method find in a table (hd_route_lookup). */
struct hd_route_match {
	int status;                     /* 0: row found; 404: no pattern; 405: not this method */
	const struct hd_route *row;     /* the row to run (status 0) */
	const struct hd_route *first;   /* the path's first row (status 0 or 405) */
	/* Slices of the path (raw), of first's pattern: */
	const char *topic;              /* {topic}, {pattern} or {user}; NULL if none */
	size_t topic_len;
	char kind;                      /* 't', 'p' or 'u' for those; 0 if none */
	const char *param;              /* {name}; NULL if none */
	size_t param_len;
};

/* Starts an empty table; access is borrowed for its life. */
void hd_route_init(struct hd_route_table *t, const struct hd_access *access);
/* Appends a copy of row (its pattern and arg borrowed). More than
 * HD_ROUTE_MAX rows is a programmer error (assert). Before the first
 * request. */
void hd_route_add(struct hd_route_table *t, const struct hd_route *row);
/* hd_route_add of each of rows[0..n). */
void hd_route_add_all(struct hd_route_table *t, const struct hd_route *rows, size_t n);
/* Steps 1 and 4 above, for path (NUL-terminated, raw) and method (an
 * http_parser method); m borrows from path and t. Allocates nothing. */
void hd_route_lookup(const struct hd_route_table *t, const char *path, int method,
		     struct hd_route_match *m);
/* Writes the methods of first's pattern, "GET, POST", into out (cut at
 * max - 1 bytes); for the Allow header of a 405. */
void hd_route_allow(const struct hd_route_table *t, const struct hd_route *first, char *out,
		    size_t max);
/* Answers req through the table (the steps above). */
void hd_route_dispatch(const struct hd_route_table *t, struct hd_http_request *req);
/* Answers 405 with "Allow: <allow>" and the API's error body. */
void hd_route_method_not_allowed(struct hd_http_request *req, const char *allow);
/* Answers 404 "no such route; see docs/api.md". */
void hd_route_not_found(struct hd_http_request *req);

#endif
