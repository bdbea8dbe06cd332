/*
 * server — herald's HTTP/1.1 server on a libuv loop.
 * Layer: http. Created by main.c; calls one handler (the edge router) for
 * every complete request. Every function here runs on the loop thread.
 *
 * Connections are keep-alive by default. Pipelined requests are answered in
 * order: while a request is being handled the connection parses no further
 * (its unread bytes wait in a bounded input buffer and reading stops when
 * that is full). A handler may answer at once or later (for example after
 * the store made a publish durable) by calling hd_http_respond exactly once.
 *
 * Limits (struct hd_http_limits) are enforced before the handler runs:
 * request line + headers larger than header_max → 431, more than max_headers
 * headers → 431, a body larger than body_max (declared or chunked) → 413,
 * headers not complete within header_timeout_ms of the request's first byte
 * → 408, a keep-alive connection idle for idle_timeout_ms → closed,
 * more than max_connections open → the new one is answered 503 and closed.
 * Malformed requests → 400 (HTTP/1.0 and 1.1 only: 505 otherwise), among
 * them an HTTP/1.1 request without a Host field, any request with two, and
 * a Transfer-Encoding that is not "chunked" alone (a coding herald does not
 * implement, as in "gzip, chunked" → 501; request.h has the exact rules).
 * These errors, which the server makes itself, close the connection; a 4xx
 * or 5xx from the handler keeps it open when the client allows. All error
 * bodies are JSON. IPv6 peers are written "[ip]:port" in remote. A 100
 * Continue is sent for "Expect: 100-continue". hd_http_server_free requires
 * hd_http_server_shutdown to have finished (done called).
 */
#ifndef HD_HTTP_SERVER_H
#define HD_HTTP_SERVER_H

#include "core/header.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct hd_http_limits {
	size_t header_max;          /* bytes of request line plus headers */
	size_t max_headers;         /* number of header fields */
	size_t body_max;            /* bytes of (de-chunked) body */
	uint32_t header_timeout_ms; /* slowloris defence */
	uint32_t idle_timeout_ms;   /* keep-alive idle */
	uint32_t max_connections;   /* open at once */
	/* How long a graceful stop waits for connections to finish their
	 * in-flight requests and write their responses; then each one left
	 * is closed. 0: no deadline (idle_timeout_ms still bounds a client
	 * that does not read). */
	uint32_t shutdown_timeout_ms;
};

/* Fills lim with herald's defaults (8 KiB, 100, 1 MiB, 10 s, 60 s, 10000, 5 s). */
void hd_http_limits_default(struct hd_http_limits *lim);

/*
 * One parsed request. Everything it points to is owned by the connection
 * and stays valid from the handler call until hd_http_respond returns, even
 * if the client disconnects in between (then the response is dropped).
 */
struct hd_http_request {
	int method;                /* enum http_method of http_parser.h (HTTP_GET, HTTP_POST, …) */
	const char *method_name;   /* "GET", … */
	const char *path;          /* raw (still percent-encoded) path, no query; NUL-terminated */
	size_t path_len;
	const char *query;         /* raw query string after '?', "" if none; NUL-terminated */
	const struct hd_header *headers; /* names lower-case */
	size_t nheaders;
	const char *body;          /* de-chunked body, NUL-terminated ("" if none) */
	size_t body_len;
	const char *remote;        /* peer address "ip:port" */
	bool keep_alive;           /* whether the connection stays open after the response */
	void *conn;                /* private to the server */
};

/* Returns the value of header lname (lower-case), borrowed from req, or NULL. */
const char *hd_http_header_get(const struct hd_http_request *req, const char *lname);

/* Whether the client is still connected (a handler finishing late may skip work). */
bool hd_http_request_alive(const struct hd_http_request *req);

/*
 * Sends the response and finishes the request. Borrows body (copied before
 * return). extra_headers is NULL or complete header lines, each ending in
 * "\r\n". Content-Length, Connection and Date are added. Call exactly once
 * per request; req is invalid afterwards.
 */
void hd_http_respond(struct hd_http_request *req, int status, const char *content_type,
		     const char *extra_headers, const char *body, size_t body_len);

/* Sends {"error":{"code":<hd_err_slug(code)>,"message":<message>}} with
 * hd_err_http_status(code); message NULL means hd_err_message(code). */
void hd_http_respond_error(struct hd_http_request *req, int code, const char *message);

typedef void (*hd_http_handler)(struct hd_http_request *req, void *arg);

struct hd_http_server;

/* Returns owned; copies lim. handler/arg are borrowed for the server's life. */
struct hd_http_server *hd_http_server_new(uv_loop_t *loop, const struct hd_http_limits *lim,
					  hd_http_handler handler, void *arg);
/* Binds and listens on host:port (IPv4 or IPv6 literal; port 0 picks a free
 * one). Returns 0 or a negative libuv error. */
int hd_http_server_listen(struct hd_http_server *s, const char *host, int port);
/* The bound port, after a successful listen. */
int hd_http_server_port(const struct hd_http_server *s);
/* Number of open connections. */
size_t hd_http_server_connections(const struct hd_http_server *s);
/*
 * Graceful stop: closes the listener, closes idle connections now and every
 * other one right after its in-flight response is written. Once
 * lim.shutdown_timeout_ms has passed, every connection left is closed, its
 * unwritten output dropped; a request still in the handler stays valid and
 * must still be answered with hd_http_respond (the response is dropped).
 * done(arg) runs once every connection is freed (so every in-flight request
 * answered) and every handle closed; then hd_http_server_free may be called.
 * Call once.
 */
void hd_http_server_shutdown(struct hd_http_server *s, void (*done)(void *arg), void *arg);
void hd_http_server_free(struct hd_http_server *s);

#endif
