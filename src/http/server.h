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
 * → 408 (a connection that sent no byte at all is closed without an answer:
 * it is a port probe or a client that gave up, and a 408 would be noise), a keep-alive connection idle for idle_timeout_ms → closed,
 * more than max_connections open → the new one is answered 503 and closed,
 * more than max_connections_per_ip open from its address, or new ones from
 * it faster than connection_rate_per_ip → 429 with Retry-After and closed
 * (a TLS connection is closed without an answer, as for the 503).
 * Malformed requests → 400 (HTTP/1.0 and 1.1 only: 505 otherwise), among
 * them an HTTP/1.1 request without a Host field, any request with two, and
 * a Transfer-Encoding that is not "chunked" alone (a coding herald does not
 * implement, as in "gzip, chunked" → 501; request.h has the exact rules).
 * These errors, which the server makes itself, close the connection; a 4xx
 * or 5xx from the handler keeps it open when the client allows. All error
 * bodies are JSON. IPv6 peers are written "[ip]:port" in remote. A 100
 * Continue is sent for "Expect: 100-continue". hd_http_server_free requires
 * hd_http_server_shutdown to have finished (done called).
 *
 * HTTPS (hd_http_server_listen_tls) is the same server on a second
 * listener: TLS sits under the parser and the write path, and
 * max_connections, the limits and the shutdown cover both listeners.
 */
#ifndef HD_HTTP_SERVER_H
#define HD_HTTP_SERVER_H

#include "core/header.h"
#include "core/ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The content type of every JSON answer. */
#define HD_HTTP_JSON_TYPE "application/json"

struct hd_http_limits {
	size_t header_max;          /* bytes of request line plus headers */
	size_t max_headers;         /* number of header fields */
	size_t body_max;            /* bytes of (de-chunked) body */
	uint32_t header_timeout_ms; /* slowloris defence */
	uint32_t idle_timeout_ms;   /* keep-alive idle */
	uint32_t max_connections;   /* open at once */
	/* Per client address (http/iplimit.h: IPv4 per address, IPv6 per
	 * /64): open connections (0 = no cap) and new connections a second
	 * with a burst (per_sec 0 = no limit). Over either → 429 with
	 * Retry-After, closed. */
	uint32_t max_connections_per_ip;
	struct hd_rate connection_rate_per_ip;
	/* How long a graceful stop waits for connections to finish their
	 * in-flight requests and write their responses; then each one left
	 * is closed. 0: no deadline (idle_timeout_ms still bounds a client
	 * that does not read). */
	uint32_t shutdown_timeout_ms;
	/* Unsent output of a streaming response (hd_http_stream_write)
	 * allowed per connection; beyond it writes fail with HD_ELIMIT. */
	size_t max_pending_bytes;
	/* CORS: "*" (any origin), a comma-separated list of origins
	 * ("https://a.example, https://b.example"), or NULL/"" (no CORS
	 * headers). Responses to a request whose Origin is allowed carry
	 * Access-Control-Allow-Origin. Borrowed for the server's life. */
	const char *cors_origins;
	/* The listen backlog: connections the kernel completes and queues
	 * for accept (a reconnect storm needs thousands). The kernel caps it
	 * at net.core.somaxconn. */
	int listen_backlog;
	/* --trusted-proxies: addresses and CIDR blocks (http/forwarded.h
	 * syntax, already checked; borrowed for the call to
	 * hd_http_server_new, which copies it), NULL or "" for none. A
	 * request on a connection from one of them names its client in
	 * Forwarded / X-Forwarded-For; that client is the request's remote
	 * and is what the per-address limits count. */
	const char *trusted_proxies;
	/* --proxy-protocol: every connection on both listeners starts
	 * with a PROXY protocol v1 or v2 header (http/proxyproto.h; on the
	 * HTTPS listener before the TLS handshake) naming its client; a
	 * connection without a valid one is closed and counted. With
	 * trusted_proxies set, the header is believed only from a trusted
	 * peer. */
	bool proxy_protocol;
};

/* Fills lim with herald's defaults (8 KiB, 100, 1 MiB, 10 s, 60 s, 10000,
 * 1000 per IP, 100/s burst 200 per IP, 5 s, 1 MiB, no CORS, backlog 4096, no trusted proxies, no PROXY protocol). */
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
	unsigned short http_major, http_minor; /* 1.0 or 1.1 */
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
/* hd_http_respond_error with a printf message (cut at 511 bytes). */
void hd_http_respond_errorf(struct hd_http_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sends b's bytes as application/json with status; takes b (finished here). */
struct hd_buf;
void hd_http_respond_json(struct hd_http_request *req, int status, struct hd_buf *b);

/*
 * Streaming responses (Server-Sent Events and the like).
 *
 * hd_http_stream_start answers req with a head that has no Content-Length
 * and "Connection: close": the body is every byte written until the stream
 * ends, with no chunked framing, so shared buffers go out unchanged. It
 * replaces hd_http_respond for this request. Returns 0, or HD_EUNAVAIL
 * (the client left or the server is stopping) / HD_ETOOBIG, in which case
 * nothing was sent and the request must still be answered with
 * hd_http_respond. borrows content_type and extra_headers (as for
 * hd_http_respond).
 *
 * After a successful start the edge keeps req until it calls
 * hd_http_stream_end or hd_http_stream_abort, or until the client goes
 * away (or the shutdown deadline closes the connection): then on_close(arg)
 * runs once, from a close callback, and from then on the edge must not
 * touch req. on_close is not called after an explicit end or abort, and it
 * must not call the hd_http_stream_* functions. Input the client sends
 * while streaming is read and dropped; its EOF ends the stream.
 */
int hd_http_stream_start(struct hd_http_request *req, int status, const char *content_type,
			 const char *extra_headers, void (*on_close)(void *arg), void *arg);

struct hd_rcbuf;

/*
 * Queues buf (takes a reference; no copy) behind the stream's output.
 * Returns 0; HD_ELIMIT when output is already waiting and buf would take
 * the unsent bytes past limits.max_pending_bytes (a slow consumer: nothing
 * is queued and the caller should end the stream; one buffer is always
 * accepted when nothing waits); HD_EUNAVAIL when the connection is closing
 * (on_close follows).
 */
int hd_http_stream_write(struct hd_http_request *req, struct hd_rcbuf *buf);
/* hd_http_stream_write of a copy of p[0..n) (borrowed), for small bytes. */
int hd_http_stream_write_copy(struct hd_http_request *req, const char *p, size_t n);
/* Bytes queued or being written on the stream. */
size_t hd_http_stream_pending(const struct hd_http_request *req);
/*
 * One-shot: on_drain(arg) runs from a write callback once the unsent bytes
 * are at or below half of max_pending_bytes. Call it only while more than
 * that is pending (a write is then under way). on_drain may write or end.
 */
void hd_http_stream_want_drain(struct hd_http_request *req, void (*on_drain)(void *arg));
/* Sends what is queued, then closes; req is invalid afterwards. */
void hd_http_stream_end(struct hd_http_request *req);
/* Closes now, dropping unsent output (slow consumer); req is invalid afterwards. */
void hd_http_stream_abort(struct hd_http_request *req);

/*
 * Upgrades (WebSocket). hd_http_upgrade answers req with head (the
 * complete response head, "HTTP/1.1 101 …\r\n…\r\n\r\n", borrowed and
 * copied) and turns the connection into a raw byte stream owned by the
 * edge: the HTTP parser is done with it, and every byte the client sends
 * from then on, including bytes already read past the request, goes to
 * on_input(arg, p, n) (p borrowed for the call; called from the read
 * callback, never from inside hd_http_upgrade). The edge writes with
 * hd_http_stream_write/_write_copy; pending, want_drain, end, abort and
 * on_close behave as for a streaming response, and req stays the handle
 * of the connection (its path, query, headers and body are gone once
 * hd_http_upgrade returns: copy what is needed before). The header and idle timeouts no longer apply (the
 * edge runs its own); as for any stream, a write the client does not take
 * within idle_timeout_ms still closes the connection. on_input may write,
 * call hd_http_stream_read, end or abort the stream; after an end or abort
 * it is not called again. Writes made inside on_input are sent together
 * once it returns. The client's EOF closes the connection (on_close) after
 * the input before it was handed over. A graceful stop treats an upgraded
 * connection as in flight until the edge ends it (the edge stops its
 * connections itself). Returns 0, or HD_EUNAVAIL (client gone or server
 * stopping) / HD_ETOOBIG (the output is full of unread responses); then
 * nothing was sent and req must still be answered with hd_http_respond.
 */
int hd_http_upgrade(struct hd_http_request *req, const char *head, size_t head_len,
		    void (*on_input)(void *arg, const char *p, size_t n),
		    void (*on_close)(void *arg), void *arg);
/* Stops (on = false) or resumes reading an upgraded connection's input,
 * so an edge can bound what it has not handled yet. After on = false,
 * on_input is not called until on = true; input already buffered is then
 * handed over from the loop (never from inside this call). */
void hd_http_stream_read(struct hd_http_request *req, bool on);

typedef void (*hd_http_handler)(struct hd_http_request *req, void *arg);

struct hd_http_server;
struct hd_tls_ctx;

/* Returns owned; copies lim. handler/arg are borrowed for the server's life. */
struct hd_http_server *hd_http_server_new(uv_loop_t *loop, const struct hd_http_limits *lim,
					  hd_http_handler handler, void *arg);
/* Binds and listens on host:port (IPv4 or IPv6 literal; port 0 picks a free
 * one). Returns 0 or a negative libuv error. */
int hd_http_server_listen(struct hd_http_server *s, const char *host, int port);
/*
 * Binds and listens for HTTPS on host:port next to (or instead of) the
 * plain listener; connections accepted there speak TLS (net/tls.h) with
 * ctx, then exactly the HTTP and upgrades of a plain connection: handlers
 * and edges cannot tell them apart. Takes ctx. Call once, before the loop
 * runs. Returns 0 or a negative libuv error (ctx is still taken).
 */
int hd_http_server_listen_tls(struct hd_http_server *s, const char *host, int port,
			      struct hd_tls_ctx *ctx);
/* Replaces the TLS context of new HTTPS connections (a certificate
 * reload); connections already open keep theirs. Takes ctx. Only after
 * hd_http_server_listen_tls. */
void hd_http_server_set_tls(struct hd_http_server *s, struct hd_tls_ctx *ctx);
/* The bound port, after a successful listen (listen_tls: tls_port). */
int hd_http_server_port(const struct hd_http_server *s);
int hd_http_server_tls_port(const struct hd_http_server *s);
/* Number of open connections. */
size_t hd_http_server_connections(const struct hd_http_server *s);
/*
 * Graceful stop: closes the listener, closes idle connections now and every
 * other one right after its in-flight response is written (a streaming
 * response counts as in flight until the edge ends it). Once
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
