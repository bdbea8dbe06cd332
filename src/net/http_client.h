/*
 * http_client — outgoing HTTP requests (webhook deliveries over HTTP/1.1,
 * push providers over HTTP/2): libcurl's multi interface driven by the
 * libuv loop (uv_poll per socket, one uv_timer for curl's timeouts).
 * Layer: net. Every call and every done() runs on the loop thread.
 *
 * What it guarantees the caller:
 *   - done() runs exactly once for every call hd_http_client_send accepted
 *     (returned 0), never from inside hd_http_client_send, unless the call
 *     is cancelled first (then never);
 *   - redirects are never followed (a 3xx is a response like any other);
 *   - a request takes at most timeout_ms in all (connect included);
 *   - at most max_per_host connections to one host and max_total in all
 *     (further requests queue inside curl), at most max_inflight calls
 *     accepted and not yet done (send past it: HD_ELIMIT);
 *   - unless allow_private, a connection to a loopback, private, link-local,
 *     unique-local, CGNAT, multicast or unspecified address (IPv4, IPv6,
 *     IPv4-mapped IPv6) is refused when curl opens the socket, after name
 *     resolution, so DNS cannot smuggle one in (SSRF); the call ends with
 *     err HD_EFORBIDDEN;
 *   - only http and https URLs are accepted (HD_EINVAL otherwise);
 *   - at most max_response bytes of the response body are kept, the rest is
 *     read and dropped;
 *   - with http2, https requests negotiate HTTP/2 (ALPN; HTTP/1.1 when the
 *     server has no h2, and for http:// URLs) and share connections: a
 *     request waits for a connection being opened rather than opening
 *     another (so max_per_host bounds the connections to one host), at
 *     most max_streams run at once on one connection, and an idle
 *     connection is reused for up to an hour;
 *   - with http2, a connection takes at most max_streams requests at once
 *     (the rest wait in the client, in order, their time counting) and at
 *     most max_requests_per_conn in all: then a new connection takes the
 *     next ones and the old one is closed when its last answer came (at
 *     most max_per_host connections at once, old ones included). Why: curl
 *     7.88 sends RST_STREAM for every stream after its answer, and an
 *     nghttp2 >= 1.57 server (Node's among them) counts those as a "rapid
 *     reset" flood and ends the connection with GOAWAY(INTERNAL_ERROR) after
 *     1,000 (then refills 33 a second), cutting off streams it may already
 *     have processed;
 *   - with http2, once answers show the client talks to one HTTP/1.x origin
 *     only (a plain http:// one), at most max_per_host requests run at once
 *     (one per connection) and the rest wait in the client, in order; an
 *     HTTP/2 answer or a second origin's lifts that for the client's life;
 *   - with ca_file, the certificates in it are trusted next to the
 *     system's (read once at new: a missing or empty file fails new);
 *   - a request whose HTTP/2 stream or connection ended before an answer
 *     came (REFUSED_STREAM, a GOAWAY, a reset, a connection that died)
 *     ends with err HD_EUNAVAIL and stream_refused set: the caller may send
 *     it again on a new connection without counting an attempt (bounded by
 *     the caller). With http2, curl never resends a request whose body it
 *     had read (the body cannot be rewound), so every resend of one is the
 *     caller's own and the caller sees it; a request whose body was never
 *     read never reached the server, and curl may still send it again.
 */
#ifndef HD_HTTP_CLIENT_H
#define HD_HTTP_CLIENT_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct hd_http_client_opts {
	uint32_t timeout_ms;          /* whole request; > 0 */
	uint32_t connect_timeout_ms;  /* TCP + TLS connect; > 0, <= timeout_ms */
	uint32_t max_per_host;        /* connections per host; > 0 */
	uint32_t max_total;           /* connections in all; > 0 */
	uint32_t max_inflight;        /* calls accepted and not done; > 0 */
	size_t max_response;          /* response body bytes kept */
	bool allow_private;           /* see the SSRF rule above */
	const char *user_agent;       /* borrowed for the client's life */
	bool http2;                   /* HTTP/2 and multiplexing, see above */
	uint32_t max_streams;         /* with http2: streams at once per connection;
					 0 = 100 (curl's default) */
	uint32_t max_requests_per_conn; /* with http2: requests one connection carries
					 in all before it takes no more and is closed
					 once idle; 0 = no limit (see below) */
	const char *ca_file;          /* extra trusted CAs (PEM), "" or NULL = none;
					 borrowed during new only */
};

struct hd_http_header {
	const char *name;             /* borrowed */
	const char *value;            /* borrowed */
};

#define HD_HTTP_CALL_ERROR_MAX 256
#define HD_HTTP_WANT_VALUE_MAX 256    /* bytes kept of a wanted response header */
#define HD_HTTP_WANT_MAX 8            /* wanted response headers per call */

/* A response header the caller wants (APNs' apns-id): name in, value out. */
struct hd_http_want {
	const char *name;             /* borrowed; matched without case */
	char value[HD_HTTP_WANT_VALUE_MAX]; /* out: the value, white space trimmed,
					 cut to fit; "" when absent */
	bool found;                   /* out */
};

struct hd_http_call {
	/* In; borrowed until done() or cancel: */
	const char *url;
	const char *method;           /* e.g. "POST" */
	const struct hd_http_header *headers;
	size_t nheaders;
	const char *body;
	size_t body_len;
	struct hd_http_want *want;    /* borrowed and written until done(); the values
					 are those of the final response */
	size_t nwant;                 /* at most HD_HTTP_WANT_MAX */
	/* Out, valid in done(): */
	int status;                   /* the HTTP status; 0 when no response came
					 (always 0 when err is not 0) */
	int err;                      /* 0 when a response came (any status); else
					 HD_ETIMEOUT (timed out), HD_EFORBIDDEN (refused
					 destination), HD_EUNAVAIL (could not connect,
					 resolve, TLS, connection reset), HD_EINVAL (bad URL),
					 HD_EINTERNAL */
	char error[HD_HTTP_CALL_ERROR_MAX]; /* what went wrong, for people ("" when err 0) */
	bool stream_refused;          /* err is HD_EUNAVAIL because the HTTP/2 stream or its
					 connection ended before an answer (see above) */
	int64_t retry_after_ms;       /* the response's Retry-After (delta-seconds or
					 HTTP-date, relative to now; a date in the past is 0,
					 at most a year), -1 when absent or invalid */
	char *response;               /* the first max_response bytes of the body,
					 NUL-terminated (never NULL in done()); owned by
					 the client, valid only during done() */
	size_t response_len;
	uint64_t latency_us;          /* from send to the end of the response */
	void (*done)(struct hd_http_call *call);
	void *arg;                    /* the caller's */
	void *priv;                   /* the client's */
};

struct hd_http_client;

/* Returns owned, or NULL with err filled (bad options, an unreadable
 * ca_file or one without a certificate, curl init failed).
 * Borrows loop for its life. */
struct hd_http_client *hd_http_client_new(uv_loop_t *loop, const struct hd_http_client_opts *o,
					  struct hd_error *err);

/* Starts a call. Returns 0 (done() will run), HD_ELIMIT (max_inflight
 * reached), HD_EINVAL (not an http/https URL, no method or no done, a
 * method, header name or header value holding CR or LF, a method or header
 * name with blanks, a header name with ':', body_len without body, more
 * than HD_HTTP_WANT_MAX wanted headers or one without a name),
 * HD_EUNAVAIL (the client is closing). A URL curl cannot parse is accepted
 * and ends in done() with err HD_EINVAL. The out fields are reset here. */
int hd_http_client_send(struct hd_http_client *c, struct hd_http_call *call);

/* Abandons an accepted call whose done() has not run: done() never runs and
 * the call's memory is the caller's again at return. */
void hd_http_client_cancel(struct hd_http_client *c, struct hd_http_call *call);

/* Calls accepted and not yet done. */
size_t hd_http_client_inflight(const struct hd_http_client *c);

/* Cancels every call (no done()) and closes the loop handles; free after
 * the loop has run the closes. */
void hd_http_client_close(struct hd_http_client *c);
void hd_http_client_free(struct hd_http_client *c);

/* Whether addr (AF_INET or AF_INET6 sockaddr) is one the SSRF rule refuses.
 * Pure; for tests and for checking a subscription's literal address early. */
struct sockaddr;
bool hd_http_client_addr_is_private(const struct sockaddr *addr);

#endif
