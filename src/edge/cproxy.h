/*
 * cproxy — proxies of Centrifugo-protocol commands to the application's
 * backend (Centrifugo's "proxy" feature): herald POSTs a JSON description
 * of a connect, subscribe, publish or RPC, or a refresh of a connection's
 * or a subscription's expiry, to a URL the operator configured and acts on
 * the answer. docs/proxy.md is the user's description.
 *
 * Layer: edge. Called by edge/ws_commands.c (the session's command handlers)
 * on the loop thread; the calls go out through net/http_client.h (libcurl
 * multi on the loop, its SSRF guard: loopback and private addresses only
 * with allow_private).
 *
 * The request body (one JSON object; members left out when empty):
 *   {"client":"<id>","transport":"websocket|http_stream|sse",
 *    "protocol":"json|protobuf","encoding":"json|binary",
 *    "user":"<id>"            subscribe, publish, rpc, refresh, sub_refresh (may be "")
 *    "channel":"<topic>"      subscribe, publish, sub_refresh
 *    "method":"<name>"        rpc
 *    "name","version"         connect (the SDK's name and version)
 *    "data":<JSON>}           connect, subscribe, publish, rpc: the client's data
 * with Content-Type: application/json, the client's own request headers
 * named by http_headers (Cookie, Authorization, …) copied as they came, and
 * the static header (the backend's proof that herald calls it).
 *
 * The answer (parsed by hd_cproxy_answer_parse, untrusted input):
 *   {"disconnect":{"code":4000..4999,"reason":"…"}}  close the session
 *   {"error":{"code":400..1999,"message":"…"}}        refuse, error to client
 *   {"result":{…}}                                   accept:
 *     connect:   user (string, may be ""), expire_at (Unix s), info, data,
 *                channels (array of topic names), subs (object channel →
 *                {info, b64info, data, b64data, override}, read by
 *                hd_jwt_subs_parse as the connection token's subs claim:
 *                at most HD_JWT_CHANNELS_MAX, a bad entry is a failure)
 *     subscribe: info, data, expire_at (Unix s: the subscription expires
 *                then and is refreshed through the sub_refresh proxy)
 *     publish:   data (replaces the client's data), skip_history (read,
 *                not acted on: herald stores every event)
 *     rpc:       data (the RPC's answer)
 *     refresh:   expired (true: close the session), expire_at (Unix s, the
 *                new expiry; absent or 0: none), info (the new conn info)
 *     sub_refresh: as refresh, for one subscription: expired (true: it
 *                ends), expire_at, info (its new chan info)
 *   b64info (connect, subscribe, refresh, sub_refresh): standard base64 of a JSON text of
 *   at most HD_JWT_INFO_MAX bytes, used instead of info; b64data (connect,
 *   subscribe, publish, rpc): standard base64 of any bytes, used instead of
 *   data (data_b64; a JSON client then needs a JSON text, and so does every
 *   publish: herald stores JSON data).
 * Anything else (not HTTP 200, not JSON, none of the three, a member of the
 * wrong type, a code out of its range, a string over its limit) is a
 * failure (HD_CPROXY_FAILED), like a backend that is down or too slow.
 */
#ifndef HD_CPROXY_H
#define HD_CPROXY_H

#include "auth/jwt.h"
#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HD_CPROXY_MESSAGE_MAX 255       /* an error message's bytes */
#define HD_CPROXY_REASON_MAX 123        /* a disconnect reason (a close frame's room) */
#define HD_CPROXY_USER_MAX 250          /* = HD_USER_ID_MAX */
#define HD_CPROXY_CHANNELS_MAX 128      /* channels of a connect result */
#define HD_CPROXY_RESPONSE_MAX (64 * 1024) /* an answer's body bytes */
#define HD_CPROXY_HEADERS_MAX 16        /* forwarded client headers */

enum hd_cproxy_kind {
	HD_CPROXY_CONNECT,
	HD_CPROXY_SUBSCRIBE,
	HD_CPROXY_PUBLISH,
	HD_CPROXY_RPC,
	HD_CPROXY_REFRESH,     /* not a command: a connect proxy's expiry came */
	HD_CPROXY_SUB_REFRESH, /* not a command: a subscribe proxy's expiry came */
	HD_CPROXY_KINDS
};

struct hd_cproxy_opts {
	const char *url[HD_CPROXY_KINDS]; /* "" or NULL: that command is not proxied */
	uint32_t timeout_ms;              /* one call in all; > 0 */
	uint32_t max_inflight;            /* calls at once on this node; > 0 */
	const char *http_headers;         /* comma-separated header names to forward, or "" */
	const char *static_header;        /* "Name: value" sent with every call, or "" */
	bool allow_private;               /* loopback/private backends (see http_client.h) */
};

enum hd_cproxy_outcome {
	HD_CPROXY_RESULT,      /* accepted (result) */
	HD_CPROXY_ERROR,       /* refused with code/message */
	HD_CPROXY_DISCONNECT,  /* close the session with code/message */
	HD_CPROXY_FAILED,      /* down, timeout, not 200, malformed: message says which */
};

struct hd_cproxy_answer {
	enum hd_cproxy_outcome outcome;
	uint32_t code;                              /* ERROR, DISCONNECT */
	char message[HD_CPROXY_MESSAGE_MAX + 1];    /* ERROR's message, DISCONNECT's reason,
						     * FAILED's cause (for the log) */
	char user[HD_CPROXY_USER_MAX + 1];          /* connect: "" = anonymous */
	int64_t expire_at;                          /* connect, subscribe, refresh, sub_refresh:
						     * Unix seconds, 0 = none */
	bool expired;                               /* refresh, sub_refresh: the connection
						     * (the subscription) ends */
	char *info, *data;                          /* owned minified JSON text, or NULL; */
	size_t info_len, data_len;                  /* info also from b64info (decoded JSON) */
	bool data_b64;                              /* data is b64data's bytes (any) */
	char **channels;                            /* connect: owned, nchannels */
	size_t nchannels;
	struct hd_jwt_claims subs;                  /* connect: result.subs (its channels,
						     * subs, nchannels only; owned) */
	bool skip_history;                          /* publish */
};

/*
 * Parses an answer body[0, len) to a call of kind. Returns 0 with a filled
 * (ERROR, DISCONNECT or RESULT); HD_EINVAL with a->outcome FAILED and
 * a->message saying what is wrong. Free with hd_cproxy_answer_fini in
 * both cases. Pure.
 */
int hd_cproxy_answer_parse(enum hd_cproxy_kind kind, const char *body, size_t len, struct hd_cproxy_answer *a);
void hd_cproxy_answer_fini(struct hd_cproxy_answer *a);

/* What herald tells the backend about one command; every pointer borrowed
 * during hd_cproxy_send only. */
struct hd_cproxy_req {
	enum hd_cproxy_kind kind;
	const char *client, *transport, *protocol;
	bool binary;                    /* protobuf: "encoding":"binary" */
	const char *user, *channel, *method, *name, *version; /* NULL or "" = left out */
	const char *data;               /* the client's data (JSON text), or NULL */
	size_t data_len;
	/* The client's request headers: get(arg, lower-case name) returns one
	 * (borrowed) or NULL. NULL get: none forwarded. */
	const char *(*get)(void *arg, const char *lname);
	void *get_arg;
};

struct hd_cproxy;
struct hd_cproxy_call;
struct hd_cproxy_headers;

/*
 * Copies the client request headers a connect call forwards (get as in
 * struct hd_cproxy_req), taken when the request arrives: an upgraded
 * request keeps no headers. Returns owned (free with
 * hd_cproxy_headers_free), or NULL when connect is not proxied or none of
 * the headers is present.
 */
struct hd_cproxy_headers *hd_cproxy_headers_take(const struct hd_cproxy *p,
						 const char *(*get)(void *arg, const char *lname), void *arg);
/* A get for struct hd_cproxy_req over a copy (arg: the headers, or NULL). */
const char *hd_cproxy_headers_get(void *arg, const char *lname);
void hd_cproxy_headers_free(struct hd_cproxy_headers *h);

/* done() gets the answer (borrowed during the call) and the caller's arg. */
typedef void (*hd_cproxy_done_fn)(void *arg, const struct hd_cproxy_answer *a);

/* Returns owned, or NULL with err filled (a static header without ':' or
 * with CR/LF, a header name list with a bad name, the HTTP client failed).
 * No URL set is valid (nothing is proxied). Borrows loop. */
struct hd_cproxy *hd_cproxy_new(uv_loop_t *loop, const struct hd_cproxy_opts *o, struct hd_error *err);

/* Whether commands of kind go to the backend (p may be NULL: no). */
bool hd_cproxy_enabled(const struct hd_cproxy *p, enum hd_cproxy_kind kind);

/*
 * Sends r to kind's URL. Returns 0: done(arg, answer) runs exactly once,
 * later, never inside this call (also when the call fails or the proxy
 * closes: then with FAILED). HD_ELIMIT: max_inflight calls are out;
 * HD_EINVAL: kind not enabled; HD_EUNAVAIL: closing. Loop thread.
 */
int hd_cproxy_send(struct hd_cproxy *p, const struct hd_cproxy_req *r, hd_cproxy_done_fn done, void *arg);

/* Calls out now. */
size_t hd_cproxy_inflight(const struct hd_cproxy *p);

/* Ends every call (each done() runs with FAILED "shutting down") and closes
 * the HTTP client; free after the loop ran the closes. */
void hd_cproxy_close(struct hd_cproxy *p);
void hd_cproxy_free(struct hd_cproxy *p);

#endif
