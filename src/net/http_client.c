/*
 * http_client — outgoing HTTP/1.1 and HTTP/2 through libcurl's multi
 * interface on the libuv loop. Layer: net. The contract is in http_client.h; this comment says
 * how it is kept.
 *
 * Driving curl: curl tells us which sockets to watch (socket_cb: one
 * uv_poll_t per socket, a struct sock assigned to the socket with
 * curl_multi_assign) and when to call it back (timer_cb: the one uv_timer_t
 * `timer`). Both events end in curl_multi_socket_action followed by
 * finish_done(), which reads curl's CURLMSG_DONE messages and completes
 * those calls.
 *
 * A call (struct hd_http_call, the caller's memory) gets a struct pending
 * (call->priv): the easy handle, the request headers, the response buffer
 * (capped at max_response + 1) and the SSRF verdict. Every pending is on
 * the client's list from send until done or cancel, so close can find them.
 * A pending whose transfer completed goes back to the client's pool (at
 * most EASY_POOL_MAX) with its easy handle and header buffers, and the next
 * send takes it: curl_easy_init/cleanup per request allocated curl's whole
 * per-transfer state and buffers each time. The shared options are set once
 * per handle; a handle reused for another kind of method (GET, HEAD, POST,
 * another verb) is curl_easy_reset first, since curl keeps NOBODY and
 * CUSTOMREQUEST. A cancelled or failed transfer's handle is not reused. The
 * header list is built in the pending's own nodes and text (curl only reads
 * it), not with curl_slist_append.
 *
 * done() never runs inside send: a failure found while setting a call up is
 * parked on the `deferred` list and completed by the zero-delay uv_timer_t
 * `kick` on a later loop iteration. done() never runs inside a curl
 * callback either: finish_done() runs after curl_multi_socket_action
 * returned, so done() may send, cancel or close.
 *
 * SSRF: curl resolves the name, then asks open_socket() for a socket for each
 * address it tries. A private address gets CURL_SOCKET_BAD (curl then sees
 * "could not connect") and the call records the address, so its result
 * becomes HD_EFORBIDDEN with the address named. Proxies are switched off
 * (CURLOPT_PROXY "" and CURLOPT_NOPROXY "*"): the process environment must
 * not route deliveries elsewhere, and a proxy would hide the destination
 * address from the check.
 *
 * Lanes: the curl multis. Without http2 there is one lane for the client's
 * life, and curl queues what exceeds its connection caps. With http2 a lane
 * runs at most max_streams requests at once (so one HTTP/2 connection per
 * host carries them) and takes at most max_requests_per_conn in all; then it is retired and the next
 * send opens a new lane, while the retired one finishes its streams and is
 * cleaned up (closing its connections) on the kick once idle. At most
 * max_per_host lanes exist at once, so that stays the cap on HTTP/2
 * connections to a host (a server allowing fewer streams than max_streams,
 * or a plain http:// one on HTTP/1.1, may get up to max_per_host per lane). A call is set up in send and put on the client's `queue` (FIFO);
 * queue_pump() hands queued calls to the lane taking requests while it runs
 * fewer than max_streams, so curl never holds a backlog of transfers waiting
 * for a stream (its pending list is walked on every completion), and sets
 * each call's curl timeout to what is left of timeout_ms. A plain http://
 * origin answers over HTTP/1.1, one request per connection: once the
 * answers show the client talks to one such origin only, a lane runs at
 * most max_per_host requests (h1_learn, lane_running_cap), so curl holds
 * no backlog for it either; HTTP/2 answers never change the cap. Each lane has its
 * own uv_timer_t for curl's timeout; a struct sock knows its lane.
 *
 * HTTP/2 (opts.http2): CURL_HTTP_VERSION_2TLS per request, CURLPIPE_MULTIPLEX
 * and CURLMOPT_MAX_CONCURRENT_STREAMS on the multi, CURLOPT_PIPEWAIT so a
 * burst waits for the first connection's ALPN answer instead of opening
 * another, CURLOPT_MAXAGE_CONN of an hour so the provider connection stays.
 * A stream that ends without an answer is told apart by its curl code
 * (stream_refused, see stream_lost()).
 *
 * The request body of an HTTP/2 client is read by curl through on_read, and
 * on_seek refuses to rewind it (CURL_SEEKFUNC_CANTSEEK). Why: curl retries a
 * stream refused by REFUSED_STREAM or by a GOAWAY whose last-stream-id is
 * below it on a new connection by itself, rewinding the body; with
 * POSTFIELDS that rewind always works and the resend is invisible to the
 * caller (no attempt, no metric, no log). With the rewind refused, curl
 * ends such a transfer with CURLE_SEND_FAIL_REWIND, which stream_lost()
 * counts as a lost stream: the caller sees it and sends it again on its
 * own terms. (A body curl had not read yet needs no rewind; curl may still
 * resend that one, and the server never saw any of it.) HTTP/1.1 clients
 * keep POSTFIELDS, which sends a small body with the headers.
 *
 * Extra CAs (opts.ca_file): read once into `cas` at new; curl's OpenSSL
 * backend calls ssl_ctx_cb for every new TLS context, which adds them to
 * the context's store next to the default paths curl loaded.
 *
 * Closing: close removes every easy handle (no done()), cleans every lane's
 * multi up (curl asks us to stop watching the sockets of its cached
 * connections; each struct sock closes its uv_poll_t), and closes the lanes'
 * timers and the kick. Every handle
 * counts in open_handles; free releases the client once that is 0, at once
 * when the loop already ran the closes, or else from the last close
 * callback.
 */
#include "net/http_client.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Longest Retry-After value read; longer ones are invalid (-1). */
#define RETRY_AFTER_TEXT_MAX 64
/* A delta-seconds Retry-After above this (a year) is clamped to it. */
#define RETRY_AFTER_MAX_S (366LL * 24 * 3600)
/* First allocation of a response buffer; it doubles up to max_response + 1. */
#define RESPONSE_FIRST_CAP 1024
/* With http2: how long an idle connection may wait for reuse (seconds). */
#define H2_MAXAGE_CONN_S 3600L
/* With http2 and max_streams 0: streams at once per connection. */
#define H2_STREAMS_DEFAULT 100
/* Longest origin ("scheme://host:port") remembered for the HTTP/1.1 cap;
 * a longer one lifts the cap as a second origin would. */
#define H1_ORIGIN_MAX 256
/* Certificates read from a ca_file at most. */
#define CA_FILE_CERTS_MAX 256

/* Easy handles (with their struct pending) kept for reuse after a call
 * completed: a new handle per request cost an allocation of curl's whole
 * per-transfer state and its buffers every time. At most this many idle. */
#define EASY_POOL_MAX 64
/* Header text a pooled pending keeps; a larger buffer is freed on return. */
#define POOL_HDR_TEXT_KEEP 8192
/* curl's upload buffer per easy handle (its minimum; the default is 64 KiB,
 * kept with every pooled handle). */
#define UPLOAD_BUFFER_SIZE 16384L

/* Which method options an easy handle was set up with: reusing it for
 * another kind resets it first (curl keeps NOBODY, CUSTOMREQUEST, ...). */
enum easy_kind { KIND_NONE, KIND_GET, KIND_HEAD, KIND_POST, KIND_CUSTOM };

/* A curl multi and the connections it holds. With http2 every lane runs at
 * most max_streams requests at once and takes at most max_requests_per_conn
 * in all; then it is retired (takes no more) and, once its last
 * request is done, cleaned up, which closes its connections. */
struct lane {
	struct hd_http_client *c;
	CURLM *multi;
	uv_timer_t timer;              /* curl's timeout for this multi */
	size_t added;                  /* requests given to it in all */
	size_t running;                /* added and not done or cancelled */
	bool retired;                  /* takes no more requests */
	struct lane *prev, *next;      /* on c->lanes until its timer is closed */
};

struct sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct lane *lane;
	struct sock *prev, *next;
};

struct pending {
	struct hd_http_client *c;
	struct hd_http_call *call;
	struct lane *lane;             /* while added to a lane's multi, else NULL */
	CURL *easy;                    /* NULL for a deferred failure; kept in the pool */
	enum easy_kind kind;           /* the method options easy is set up for */
	struct curl_slist *headers;    /* the request headers: hdr_nodes[0..] or NULL */
	struct curl_slist *hdr_nodes;  /* owned, hdr_nodes_cap nodes, kept in the pool */
	size_t hdr_nodes_cap;
	char *hdr_text;                /* owned: the header lines, kept in the pool */
	size_t hdr_text_cap;
	char *body;                    /* the response, NUL-terminated */
	size_t body_len, body_cap;
	size_t sent;                   /* with http2: request body bytes curl has read */
	uint64_t start_us;
	int64_t retry_after_ms;
	bool refused;                  /* open_socket refused an address */
	char refused_addr[INET6_ADDRSTRLEN];
	int deferred_err;              /* for a call on the deferred list */
	bool kick_ready;               /* deferred before the running kick */
	char errbuf[CURL_ERROR_SIZE];
	struct pending *prev, *next;   /* on c->calls, c->queue or c->deferred */
};

struct hd_http_client {
	uv_loop_t *loop;
	struct hd_http_client_opts o;
	struct lane *lanes;            /* the one taking requests (if any) first */
	size_t nlanes;                 /* on lanes and not yet cleaned up */
	size_t lanes_max;              /* lanes at once (max_per_host with http2, else 1) */
	size_t lane_requests;          /* requests a lane takes in all (SIZE_MAX: no limit) */
	size_t lane_running_max;       /* requests running at once in a lane */
	/* With http2, what the answers showed (see h1_learn): */
	char h1_origin[H1_ORIGIN_MAX]; /* the one origin answered over HTTP/1.x, "" = none yet */
	size_t h1_origin_len;
	bool h1_capped;                /* lanes run at most max_per_host requests */
	bool h1_lifted;                /* an HTTP/2 answer or a second origin came: never again */
	uv_timer_t kick;               /* deferred calls, idle retired lanes, the queue */
	struct pending *calls;         /* added to a lane's multi */
	struct pending *queue;         /* set up, waiting for room in a lane (FIFO) */
	struct pending *queue_tail;
	size_t queued;
	struct pending *deferred;      /* failed in send, done() on the next iteration */
	struct sock *socks;            /* sockets being watched */
	struct pending *pool;          /* idle pendings with their easy handles (next) */
	size_t npool, pool_max;
	size_t inflight;
	int open_handles;              /* uv handles not yet closed */
	bool closing;
	bool free_wanted;
	STACK_OF(X509) *cas;           /* ca_file's certificates, NULL when none */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists -------------------------------------------------------------- */

static void pending_link(struct pending **head, struct pending *p)
{
	p->prev = NULL;
	p->next = *head;
	if (*head)
		(*head)->prev = p;
	*head = p;
}

static void pending_unlink(struct pending **head, struct pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		*head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

/* ---- the SSRF rule -------------------------------------------------------- */

static bool v4_is_private(const unsigned char a[4])
{
	return a[0] == 0 ||                                   /* 0/8 "this network" */
	       a[0] == 10 ||                                  /* 10/8 */
	       (a[0] == 100 && (a[1] & 0xc0) == 64) ||        /* 100.64/10 CGNAT */
	       a[0] == 127 ||                                 /* 127/8 loopback */
	       (a[0] == 169 && a[1] == 254) ||                /* 169.254/16 link-local */
	       (a[0] == 172 && (a[1] & 0xf0) == 16) ||        /* 172.16/12 */
	       (a[0] == 192 && a[1] == 168) ||                /* 192.168/16 */
	       (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) || /* 192.0.0/24
								 special, 192.0.2/24 TEST-NET-1 */
	       (a[0] == 198 && (a[1] & 0xfe) == 18) ||         /* 198.18/15 benchmarking */
	       (a[0] == 198 && a[1] == 51 && a[2] == 100) ||   /* 198.51.100/24 TEST-NET-2 */
	       (a[0] == 203 && a[1] == 0 && a[2] == 113) ||    /* 203.0.113/24 TEST-NET-3 */
	       a[0] >= 224;                                   /* 224/4 multicast, 240/4 and
								 255.255.255.255 */
}

bool hd_http_client_addr_is_private(const struct sockaddr *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char zero[12] = {0};

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		return v4_is_private((const unsigned char *)&in->sin_addr.s_addr);
	}
	if (addr->sa_family != AF_INET6)
		return true; /* nothing else is a destination */
	const unsigned char *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return v4_is_private(a + 12);         /* ::ffff:a.b.c.d, 64:ff9b::a.b.c.d */
	if (memcmp(a, zero, 12) == 0)
		return true;                          /* ::, ::1 and IPv4-compatible ::/96 */
	if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1)
		return true;                          /* 64:ff9b:1::/48 local-use NAT64 */
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_is_private(a + 2);          /* 2002:a.b.c.d::/48 6to4 */
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0)
		return true;                          /* 2001::/32 Teredo (its IPv4 is hidden) */
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
		return true;                          /* 2001:db8::/32 documentation */
	if (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, zero, 6) == 0)
		return true;                          /* 100::/64 discard */
	return a[0] == 0xff ||                        /* ff00::/8 multicast */
	       (a[0] & 0xfe) == 0xfc ||               /* fc00::/7 unique-local */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
	       (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0);   /* fec0::/10 old site-local */
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct pending *p = clientp;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	/* curl declares addr as a struct sockaddr (16 bytes) and stores up to
	 * addrlen bytes there: copied out whole, an IPv6 address is read
	 * within an object of its size. */
	struct sockaddr_storage ss = {0};
	memcpy(&ss, &a->addr, a->addrlen < sizeof(ss) ? a->addrlen : sizeof(ss));
	if (!p->c->o.allow_private && hd_http_client_addr_is_private((const struct sockaddr *)&ss)) {
		const void *bytes = a->family == AF_INET6
					    ? (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr
					    : (const void *)&((const struct sockaddr_in *)&ss)->sin_addr;
		p->refused = true;
		if (!inet_ntop(a->family, bytes, p->refused_addr, sizeof(p->refused_addr)))
			strcpy(p->refused_addr, "?");
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- response callbacks --------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct pending *p = arg;
	size_t n = size * nmemb;
	size_t max = p->c->o.max_response;
	size_t keep = p->body_len < max ? max - p->body_len : 0;

	if (keep > n)
		keep = n;
	if (keep) {
		if (p->body_len + keep + 1 > p->body_cap) {
			size_t cap = p->body_cap ? p->body_cap : RESPONSE_FIRST_CAP;
			while (cap < p->body_len + keep + 1)
				cap *= 2;
			if (cap > max + 1)
				cap = max + 1;
			p->body = hd_realloc(p->body, cap);
			p->body_cap = cap;
		}
		memcpy(p->body + p->body_len, data, keep);
		p->body_len += keep;
		p->body[p->body_len] = '\0';
	}
	return n; /* the rest is read and dropped */
}

/* Retry-After (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date. */
static int64_t parse_retry_after(const char *v, size_t n)
{
	char text[RETRY_AFTER_TEXT_MAX + 1];
	bool digits = n > 0;

	if (n == 0 || n > RETRY_AFTER_TEXT_MAX)
		return -1;
	memcpy(text, v, n);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		digits = digits && text[i] >= '0' && text[i] <= '9';
	if (digits) {
		int64_t s = 0;
		for (size_t i = 0; i < n && s <= RETRY_AFTER_MAX_S; i++)
			s = s * 10 + (text[i] - '0');
		return (s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s) * 1000;
	}
	time_t t = curl_getdate(text, NULL);
	if (t == (time_t)-1)
		return -1;
	int64_t ms = (int64_t)t * 1000 - hd_now_ms();
	return ms < 0 ? 0 : ms;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	static const char name[] = "retry-after:";
	struct pending *p = arg;
	size_t n = size * nmemb;

	/* A new status line starts a new response (an interim 1xx before it). */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		p->retry_after_ms = -1;
		for (size_t i = 0; i < p->call->nwant; i++) {
			p->call->want[i].value[0] = '\0';
			p->call->want[i].found = false;
		}
		return n;
	}
	const char *colon = memchr(data, ':', n);
	if (!colon)
		return n;
	size_t name_len = (size_t)(colon - data);
	const char *v = colon + 1, *end = data + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (name_len == sizeof(name) - 2 && strncasecmp(data, name, name_len) == 0)
		p->retry_after_ms = parse_retry_after(v, (size_t)(end - v));
	for (size_t i = 0; i < p->call->nwant; i++) {
		struct hd_http_want *w = &p->call->want[i];
		if (strlen(w->name) != name_len || strncasecmp(data, w->name, name_len) != 0)
			continue;
		size_t len = (size_t)(end - v);
		if (len >= sizeof(w->value))
			len = sizeof(w->value) - 1;
		memcpy(w->value, v, len);
		w->value[len] = '\0';
		w->found = true;
	}
	return n;
}

/* ---- completing a call ---------------------------------------------------- */

static void pending_free(struct pending *p)
{
	if (p->easy)
		curl_easy_cleanup(p->easy);
	free(p->hdr_nodes);
	free(p->hdr_text);
	free(p->body);
	free(p);
}

/* Ends p's use for a call: an easy handle whose transfer completed goes back
 * to the pool with p (while there is room and the client is not closing);
 * anything else is freed. p is on no list. */
static void pending_put(struct hd_http_client *c, struct pending *p, bool reusable)
{
	if (!reusable || !p->easy || c->closing || c->npool >= c->pool_max) {
		pending_free(p);
		return;
	}
	free(p->body);
	p->body = NULL;
	p->body_len = p->body_cap = 0;
	p->call = NULL;
	p->headers = NULL;
	if (p->hdr_text_cap > POOL_HDR_TEXT_KEEP) {
		free(p->hdr_text);
		p->hdr_text = NULL;
		p->hdr_text_cap = 0;
	}
	p->prev = NULL;
	p->next = c->pool;
	c->pool = p;
	c->npool++;
}

/* A pending for a new call: a pooled one (its easy handle set up for the
 * kind it last ran) or a new one without an easy handle yet. */
static struct pending *pending_get(struct hd_http_client *c)
{
	struct pending *p = c->pool;

	if (p) {
		c->pool = p->next;
		c->npool--;
		p->next = NULL;
	} else {
		p = hd_calloc(1, sizeof(*p));
	}
	p->c = c;
	p->lane = NULL;
	p->retry_after_ms = -1;
	p->refused = false;
	p->refused_addr[0] = '\0';
	p->sent = 0;
	p->deferred_err = 0;
	p->kick_ready = false;
	p->errbuf[0] = '\0';
	return p;
}

/* Frees every pooled pending (close). */
static void pool_drain(struct hd_http_client *c)
{
	while (c->pool) {
		struct pending *p = c->pool;
		c->pool = p->next;
		pending_free(p);
	}
	c->npool = 0;
}

static int map_curl_result(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return HD_ETIMEOUT;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return HD_EINVAL;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_NOT_BUILT_IN:
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return HD_EINTERNAL;
	default:
		/* Resolving, connecting, TLS, a reset or a malformed reply: the
		 * other end was not usable. */
		return HD_EUNAVAIL;
	}
}

/* Whether a failed HTTP/2 request ended without an answer because its
 * stream or connection went away (REFUSED_STREAM once curl stopped
 * retrying, a GOAWAY, RST_STREAM, a connection that died mid-stream): the
 * caller may send it again on a new connection. */
static bool stream_lost(struct pending *p, CURLcode rc)
{
	if (!p->c->o.http2 || !p->easy)
		return false;
	switch (rc) {
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SEND_FAIL_REWIND:
		/* The last: curl wanted to send the body again on a new
		 * connection after a refused stream or a GOAWAY (on_seek). */
		return true;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		/* What curl 7.88 reports after retrying a refused stream five
		 * times ("Connection died") or after a GOAWAY cut a stream off;
		 * it has no HTTP version by then, so any https request of an
		 * HTTP/2 client counts (a plain http:// one never spoke HTTP/2). */
		return strncasecmp(p->call->url, "https://", 8) == 0;
	default:
		return false;
	}
}

/* Fills the call's results, frees p and runs done(). p is on no list. */
static void complete(struct pending *p, CURLcode rc)
{
	struct hd_http_client *c = p->c;
	struct hd_http_call *call = p->call;
	long status = 0;

	call->err = p->easy ? map_curl_result(rc) : p->deferred_err;
	call->error[0] = '\0';
	call->stream_refused = call->err == HD_EUNAVAIL && !p->refused && stream_lost(p, rc);
	if (call->err == HD_EUNAVAIL && p->refused) {
		call->err = HD_EFORBIDDEN;
		snprintf(call->error, sizeof(call->error),
			 "destination %s is a private or loopback address", p->refused_addr);
	} else if (call->err && p->easy) {
		snprintf(call->error, sizeof(call->error), "%s",
			 p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc));
	} else if (call->err) {
		snprintf(call->error, sizeof(call->error), "%s", p->errbuf);
	}
	if (call->err == 0)
		curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
	call->status = (int)status;
	call->retry_after_ms = call->err == 0 ? p->retry_after_ms : -1;
	call->latency_us = hd_mono_us() - p->start_us;
	/* The buffer is handed to the caller for done() and freed after it. */
	static char empty_body[1]; /* "" for every call without a body: never written */
	char *body = p->body ? p->body : empty_body;
	call->response = body;
	call->response_len = p->body_len;
	call->priv = NULL;
	p->body = NULL;
	pending_put(c, p, p->easy && rc == CURLE_OK);
	c->inflight--;
	call->done(call);
	/* done() may have closed the client (it stays until free) and may have
	 * freed the call: touch neither. */
	if (body != empty_body)
		free(body);
}

static void lanes_reap(struct hd_http_client *c);
static void queue_pump(struct hd_http_client *c);
static void on_kick(uv_timer_t *t);

/* The origin of an http(s) URL: its text up to the end of the authority. */
static size_t url_origin_len(const char *url)
{
	const char *a = strstr(url, "://");
	if (!a)
		return strlen(url);
	a += 3;
	return (size_t)(a - url) + strcspn(a, "/?#");
}

/* With http2: learns from a completed transfer whether the client talks to
 * one HTTP/1.x origin only. Such an origin runs one request per connection,
 * so a lane given max_streams requests would keep all but max_per_host of
 * them in curl's pending list, which curl walks on every completion (and
 * wakes the timer for); capped, the rest wait in c->queue instead. An
 * HTTP/2 answer or an HTTP/1.x answer from a second origin lifts the cap
 * for the client's life (lanes are shared by every origin; the cap must
 * not hold one origin's requests behind another's connections). */
static void h1_learn(struct hd_http_client *c, struct pending *p)
{
	long version = 0;

	curl_easy_getinfo(p->easy, CURLINFO_HTTP_VERSION, &version);
	if (version == CURL_HTTP_VERSION_2_0 || version == CURL_HTTP_VERSION_3) {
		c->h1_lifted = true;
	} else if (version == CURL_HTTP_VERSION_1_0 || version == CURL_HTTP_VERSION_1_1) {
		size_t n = url_origin_len(p->call->url);
		if (!c->h1_origin_len && n < sizeof(c->h1_origin)) {
			memcpy(c->h1_origin, p->call->url, n);
			c->h1_origin[n] = '\0';
			c->h1_origin_len = n;
		} else if (n != c->h1_origin_len || strncasecmp(c->h1_origin, p->call->url, n) != 0) {
			c->h1_lifted = true;
		}
	}
	c->h1_capped = c->h1_origin_len && !c->h1_lifted;
}

static void finish_done(struct lane *lane)
{
	CURLMsg *m;
	int left;

	/* A cleaned-up lane (close, or done() closing the client) is not read. */
	while (lane->multi && (m = curl_multi_info_read(lane->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		struct pending *p = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&p);
		if (lane->c->o.http2 && !lane->c->h1_lifted && rc == CURLE_OK)
			h1_learn(lane->c, p);
		curl_multi_remove_handle(lane->multi, easy);
		pending_unlink(&lane->c->calls, p);
		p->lane = NULL;
		lane->running--;
		complete(p, rc);
	}
	struct hd_http_client *c = lane->c;
	if (c->closing)
		return;
	/* Room in a lane: the queue goes on; a retired lane that is idle now is
	 * cleaned up on the kick (never inside its own socket_action). */
	queue_pump(c);
	if (lane->retired && lane->running == 0 && lane->multi)
		uv_timer_start(&c->kick, on_kick, 0, 0);
}

static void on_kick(uv_timer_t *t)
{
	struct hd_http_client *c = t->data;

	lanes_reap(c);
	queue_pump(c);
	/* Only the calls deferred before this kick: a done() may defer more
	 * (they wait for the next kick), cancel some or close the client. The
	 * list is short (failures to set a call up), so walking it is fine. */
	for (struct pending *p = c->deferred; p; p = p->next)
		p->kick_ready = true;
	for (;;) {
		struct pending *p = c->deferred;
		while (p && !p->kick_ready)
			p = p->next;
		if (!p)
			break;
		pending_unlink(&c->deferred, p);
		complete(p, CURLE_OK);
	}
	if (c->deferred && !c->closing)
		uv_timer_start(&c->kick, on_kick, 0, 0);
}

static void defer_failure(struct pending *p, int err, const char *msg)
{
	struct hd_http_client *c = p->c;

	p->deferred_err = err;
	snprintf(p->errbuf, sizeof(p->errbuf), "%s", msg);
	if (p->easy) {
		curl_easy_cleanup(p->easy);
		p->easy = NULL;
	}
	pending_link(&c->deferred, p);
	uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---- curl's sockets and timer on the loop --------------------------------- */

static void handle_closed(struct hd_http_client *c)
{
	if (--c->open_handles == 0 && c->free_wanted)
		free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void on_lane_closed(uv_handle_t *h)
{
	struct lane *lane = h->data;
	struct hd_http_client *c = lane->c;

	free(lane);
	handle_closed(c);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct sock *s = (struct sock *)h;
	struct hd_http_client *c = h->data;

	free(s);
	handle_closed(c);
}

static void sock_close(struct hd_http_client *c, struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *s = (struct sock *)h;
	struct lane *lane = s->lane;
	int flags = 0;
	int running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(lane->multi, s->fd, flags, &running);
	finish_done(lane);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct lane *lane = userp;
	struct hd_http_client *c = lane->c;
	struct sock *s = socketp;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(lane->multi, fd, NULL);
			sock_close(c, s);
		}
		return 0;
	}
	if (!s) {
		s = hd_calloc(1, sizeof(*s));
		if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
			free(s);
			return -1; /* curl fails the transfer */
		}
		s->fd = fd;
		s->lane = lane;
		s->poll.data = c;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		c->open_handles++;
		curl_multi_assign(lane->multi, fd, s);
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

static void on_timer(uv_timer_t *t)
{
	struct lane *lane = t->data;
	int running;

	curl_multi_socket_action(lane->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	finish_done(lane);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct lane *lane = userp;

	if (lane->c->closing || !lane->multi)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&lane->timer);
	else
		/* Even 0 waits for the loop: curl must not be re-entered here. */
		uv_timer_start(&lane->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- lanes ------------------------------------------------------------------ */

/* A new lane taking requests, first on c->lanes; NULL when curl fails. */
static struct lane *lane_new(struct hd_http_client *c)
{
	const struct hd_http_client_opts *o = &c->o;
	CURLM *m = curl_multi_init();

	if (!m)
		return NULL;
	struct lane *lane = hd_calloc(1, sizeof(*lane));
	lane->c = c;
	lane->multi = m;
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, lane);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, lane);
	/* With http2 a lane runs at most max_streams requests, so an HTTP/2 host
	 * needs one connection in it (more only when the server allows fewer
	 * streams); a plain http:// host of an http2 client speaks HTTP/1.1. */
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_per_host);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->max_total);
	/* Idle connections kept for reuse: no more than may be open at all. */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)o->max_total);
	if (o->http2) {
		curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
		/* Twice what the lane runs: curl counts a stream until its
		 * connection noticed the end, and at its own cap it would open
		 * another connection for the next one. */
		curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)c->lane_running_max * 2);
	}
	uv_timer_init(c->loop, &lane->timer);
	lane->timer.data = lane;
	c->open_handles++;
	lane->next = c->lanes;
	if (c->lanes)
		c->lanes->prev = lane;
	c->lanes = lane;
	c->nlanes++;
	return lane;
}

/* Cleans a lane's multi up (curl closes its connections and asks us to stop
 * watching their sockets) and closes its timer; the lane is freed by the
 * close callback. Its requests must be done or cancelled. */
static void lane_close(struct hd_http_client *c, struct lane *lane)
{
	curl_multi_cleanup(lane->multi);
	lane->multi = NULL;
	for (struct sock *s = c->socks, *next; s; s = next) {
		next = s->next;
		if (s->lane == lane)
			sock_close(c, s);
	}
	if (lane->prev)
		lane->prev->next = lane->next;
	else
		c->lanes = lane->next;
	if (lane->next)
		lane->next->prev = lane->prev;
	c->nlanes--;
	uv_timer_stop(&lane->timer);
	uv_close((uv_handle_t *)&lane->timer, on_lane_closed);
}

static void lanes_reap(struct hd_http_client *c)
{
	for (struct lane *l = c->lanes, *next; l; l = next) {
		next = l->next;
		if (l->retired && l->running == 0)
			lane_close(c, l);
	}
}

/* The lane taking requests, a new one when there is room for it, or NULL. */
static struct lane *lane_taking(struct hd_http_client *c)
{
	if (c->lanes && !c->lanes->retired)
		return c->lanes;
	if (c->nlanes >= c->lanes_max)
		return NULL;
	return lane_new(c);
}

static void queue_append(struct hd_http_client *c, struct pending *p)
{
	p->next = NULL;
	p->prev = c->queue_tail;
	if (c->queue_tail)
		c->queue_tail->next = p;
	else
		c->queue = p;
	c->queue_tail = p;
	c->queued++;
}

static void queue_unlink(struct hd_http_client *c, struct pending *p)
{
	if (c->queue_tail == p)
		c->queue_tail = p->prev;
	pending_unlink(&c->queue, p);
	c->queued--;
}

/* Requests a lane runs at once: max_streams, or max_per_host while the
 * client talks to one HTTP/1.x origin only (h1_learn). */
static size_t lane_running_cap(const struct hd_http_client *c)
{
	if (c->h1_capped && c->o.max_per_host < c->lane_running_max)
		return c->o.max_per_host;
	return c->lane_running_max;
}

/* Hands queued calls to the lane taking requests while it has room; a
 * call whose whole time went by in the queue fails with HD_ETIMEOUT. */
static void queue_pump(struct hd_http_client *c)
{
	while (c->queue && !c->closing) {
		struct lane *lane = lane_taking(c);
		struct pending *p = c->queue;
		if (!lane && c->nlanes == 0) {
			/* curl could not make a multi and none is left to wait for. */
			queue_unlink(c, p);
			defer_failure(p, HD_EINTERNAL, "curl_multi_init failed");
			continue;
		}
		if (!lane || lane->running >= lane_running_cap(c))
			return;
		queue_unlink(c, p);
		uint64_t waited_ms = (hd_mono_us() - p->start_us) / 1000;
		if (waited_ms >= c->o.timeout_ms) {
			defer_failure(p, HD_ETIMEOUT, "timed out waiting for a connection");
			continue;
		}
		/* The request's whole time counts from send, the queue included. */
		curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)(c->o.timeout_ms - waited_ms));
		CURLMcode mrc = curl_multi_add_handle(lane->multi, p->easy);
		if (mrc != CURLM_OK) {
			defer_failure(p, HD_EINTERNAL, curl_multi_strerror(mrc));
			continue;
		}
		pending_link(&c->calls, p);
		p->lane = lane;
		lane->running++;
		if (++lane->added >= c->lane_requests)
			lane->retired = true;
	}
}

/* ---- extra trusted CAs ----------------------------------------------------- */

static CURLcode ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *arg)
{
	struct hd_http_client *c = arg;
	X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);

	for (int i = 0; i < sk_X509_num(c->cas); i++)
		X509_STORE_add_cert(store, sk_X509_value(c->cas, i)); /* a duplicate is harmless */
	return CURLE_OK;
}

/* Reads every certificate of path into c->cas; 0 or HD_ECONFIG. */
static int cas_read(struct hd_http_client *c, const char *path, struct hd_error *err)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f) {
		hd_error_set(err, HD_ECONFIG, "CA file '%s': cannot open it", path);
		return HD_ECONFIG;
	}
	c->cas = sk_X509_new_null();
	while (sk_X509_num(c->cas) < CA_FILE_CERTS_MAX && (x = PEM_read_X509(f, NULL, NULL, NULL)))
		sk_X509_push(c->cas, x);
	fclose(f);
	if (sk_X509_num(c->cas) == 0) {
		hd_error_set(err, HD_ECONFIG, "CA file '%s': no PEM certificate in it", path);
		return HD_ECONFIG;
	}
	return 0;
}

/* ---- the API -------------------------------------------------------------- */

struct hd_http_client *hd_http_client_new(uv_loop_t *loop, const struct hd_http_client_opts *o,
					  struct hd_error *err)
{
	if (!o->timeout_ms || !o->connect_timeout_ms || o->connect_timeout_ms > o->timeout_ms ||
	    !o->max_per_host || !o->max_total || !o->max_inflight || !o->user_agent) {
		hd_error_set(err, HD_EINVAL, "http client: timeouts, connection caps, max_inflight "
					     "and user_agent must be set, connect timeout <= timeout");
		return NULL;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		hd_error_set(err, HD_EINTERNAL, "http client: curl_global_init: %s",
			     curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	struct hd_http_client *c = hd_calloc(1, sizeof(*c));
	c->loop = loop;
	c->o = *o;
	c->o.ca_file = NULL; /* borrowed during new only */
	c->pool_max = o->max_inflight < EASY_POOL_MAX ? o->max_inflight : EASY_POOL_MAX;
	if (o->ca_file && *o->ca_file && cas_read(c, o->ca_file, err) != 0) {
		sk_X509_pop_free(c->cas, X509_free);
		free(c);
		return NULL;
	}
	if (o->http2) {
		c->lanes_max = o->max_per_host;
		c->lane_requests = o->max_requests_per_conn ? o->max_requests_per_conn : SIZE_MAX;
		c->lane_running_max = o->max_streams ? o->max_streams : H2_STREAMS_DEFAULT;
	} else {
		c->lanes_max = 1;
		c->lane_requests = SIZE_MAX;
		c->lane_running_max = SIZE_MAX;
	}
	/* The first lane now, so a curl that cannot make a multi fails new. */
	if (!lane_new(c)) {
		hd_error_set(err, HD_EINTERNAL, "http client: curl_multi_init failed");
		sk_X509_pop_free(c->cas, X509_free);
		free(c);
		return NULL;
	}
	uv_timer_init(loop, &c->kick);
	c->kick.data = c;
	c->open_handles++;
	return c;
}

static bool url_scheme_ok(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static bool header_text_ok(const char *s, bool name)
{
	if (!s || (name && !*s))
		return false;
	for (; *s; s++)
		if (*s == '\r' || *s == '\n' || (name && (*s == ':' || *s == ' ' || *s == '\t')))
			return false;
	return true;
}

/* curl reads the request body of an HTTP/2 call (see the file comment). */
static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct pending *p = arg;
	const struct hd_http_call *call = p->call;
	size_t room = size * nitems;
	size_t left = call->body_len - p->sent;
	size_t n = left < room ? left : room;

	if (n)
		memcpy(buf, call->body + p->sent, n);
	p->sent += n;
	return n;
}

/* Rewinding a body curl already read is refused, so curl never resends a
 * request by itself: it fails the transfer (CURLE_SEND_FAIL_REWIND). */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct pending *p = arg;

	if (origin == SEEK_SET && offset == 0 && p->sent == 0)
		return CURL_SEEKFUNC_OK; /* nothing read yet: nothing to resend */
	return CURL_SEEKFUNC_CANTSEEK;
}

/* The options every call of c shares, set once per easy handle (again
 * after a reset): 0 or the curl error that stopped it. */
static CURLcode setup_easy_const(struct hd_http_client *c, struct pending *p)
{
	const struct hd_http_client_opts *o = &c->o;
	CURL *e = p->easy;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                    \
	do {                                                             \
		if (rc == CURLE_OK)                                      \
			rc = curl_easy_setopt(e, opt, val);              \
	} while (0)
	SET(CURLOPT_PRIVATE, p);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_USERAGENT, o->user_agent);
	SET(CURLOPT_ERRORBUFFER, p->errbuf);
	SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
	SET(CURLOPT_OPENSOCKETDATA, p);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, p);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, p);
	SET(CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER_SIZE);
	if (o->http2) {
		SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		SET(CURLOPT_PIPEWAIT, 1L);
		SET(CURLOPT_MAXAGE_CONN, H2_MAXAGE_CONN_S);
	} else {
		SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	}
	if (c->cas) {
		SET(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		SET(CURLOPT_SSL_CTX_DATA, c);
	}
#undef SET
	return rc;
}

static enum easy_kind call_kind(const struct hd_http_call *call)
{
	if (strcasecmp(call->method, "GET") == 0 && !call->body_len)
		return KIND_GET;
	if (strcasecmp(call->method, "HEAD") == 0 && !call->body_len)
		return KIND_HEAD;
	return strcmp(call->method, "POST") == 0 ? KIND_POST : KIND_CUSTOM;
}

/* Sets p's easy handle up for its call: a new handle (or one last used for
 * another kind of method, reset) gets the shared options first; then the
 * call's own. 0 or the curl error that stopped it. */
static CURLcode setup_easy(struct hd_http_client *c, struct pending *p)
{
	struct hd_http_call *call = p->call;
	enum easy_kind kind = call_kind(call);
	CURL *e = p->easy;
	CURLcode rc = CURLE_OK;

	if (p->kind != kind) {
		if (p->kind != KIND_NONE)
			curl_easy_reset(e);
		p->kind = KIND_NONE;
		rc = setup_easy_const(c, p);
		if (rc != CURLE_OK)
			return rc;
		p->kind = kind;
	}
#define SET(opt, val)                                                    \
	do {                                                             \
		if (rc == CURLE_OK)                                      \
			rc = curl_easy_setopt(e, opt, val);              \
	} while (0)
	SET(CURLOPT_TIMEOUT_MS, (long)c->o.timeout_ms);
	if (kind == KIND_GET) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (kind == KIND_HEAD) {
		SET(CURLOPT_NOBODY, 1L);
	} else {
		/* Borrowed until done(): curl does not copy it. */
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
		if (c->o.http2) {
			SET(CURLOPT_POST, 1L);
			SET(CURLOPT_READFUNCTION, on_read);
			SET(CURLOPT_READDATA, p);
			SET(CURLOPT_SEEKFUNCTION, on_seek);
			SET(CURLOPT_SEEKDATA, p);
		} else {
			SET(CURLOPT_POSTFIELDS, call->body ? call->body : "");
		}
		if (kind == KIND_CUSTOM)
			SET(CURLOPT_CUSTOMREQUEST, call->method);
	}
	SET(CURLOPT_HTTPHEADER, p->headers);
#undef SET
	if (rc != CURLE_OK)
		p->kind = KIND_NONE; /* half set: reset at the next use */
	return rc;
}

/* The request header list of p's call in p's own buffers (curl only reads
 * the list, so its nodes need not come from curl_slist_append): "Expect:"
 * (empty, so curl never waits for 100-continue on a body), then "Name:
 * value", or "Name;" for an empty value (curl's way to send one). */
static void headers_build(struct pending *p)
{
	const struct hd_http_call *call = p->call;
	size_t text = sizeof("Expect:");
	size_t nodes = call->nheaders + 1;

	for (size_t i = 0; i < call->nheaders; i++)
		text += strlen(call->headers[i].name) + strlen(call->headers[i].value) + 3;
	if (nodes > p->hdr_nodes_cap) {
		free(p->hdr_nodes);
		p->hdr_nodes = hd_malloc(nodes * sizeof(*p->hdr_nodes));
		p->hdr_nodes_cap = nodes;
	}
	if (text > p->hdr_text_cap) {
		free(p->hdr_text);
		p->hdr_text = hd_malloc(text);
		p->hdr_text_cap = text;
	}
	char *t = p->hdr_text;
	size_t room = p->hdr_text_cap;
	int n = snprintf(t, room, "Expect:");
	p->hdr_nodes[0].data = t;
	for (size_t i = 0; i < call->nheaders; i++) {
		const struct hd_http_header *h = &call->headers[i];
		t += n + 1;
		room -= (size_t)n + 1;
		n = *h->value ? snprintf(t, room, "%s: %s", h->name, h->value)
			      : snprintf(t, room, "%s;", h->name);
		p->hdr_nodes[i].next = &p->hdr_nodes[i + 1];
		p->hdr_nodes[i + 1].data = t;
	}
	p->hdr_nodes[call->nheaders].next = NULL;
	p->headers = p->hdr_nodes;
}

int hd_http_client_send(struct hd_http_client *c, struct hd_http_call *call)
{
	if (c->closing)
		return HD_EUNAVAIL;
	if (!call->url || !url_scheme_ok(call->url) || !call->method || !*call->method ||
	    !header_text_ok(call->method, true) || (call->body_len && !call->body) || !call->done ||
	    call->nwant > HD_HTTP_WANT_MAX || (call->nwant && !call->want))
		return HD_EINVAL;
	for (size_t i = 0; i < call->nwant; i++) {
		if (!call->want[i].name || !*call->want[i].name)
			return HD_EINVAL;
		call->want[i].value[0] = '\0';
		call->want[i].found = false;
	}
	for (size_t i = 0; i < call->nheaders; i++)
		if (!header_text_ok(call->headers[i].name, true) ||
		    !header_text_ok(call->headers[i].value, false))
			return HD_EINVAL;
	if (c->inflight >= c->o.max_inflight)
		return HD_ELIMIT;

	struct pending *p = pending_get(c);
	p->call = call;
	p->start_us = hd_mono_us();
	call->priv = p;
	call->status = 0;
	call->err = 0;
	call->error[0] = '\0';
	call->stream_refused = false;
	call->retry_after_ms = -1;
	call->response = NULL;
	call->response_len = 0;
	call->latency_us = 0;
	c->inflight++;

	headers_build(p);
	if (!p->easy) {
		p->easy = curl_easy_init();
		p->kind = KIND_NONE;
		if (!p->easy) {
			defer_failure(p, HD_EINTERNAL, "curl_easy_init failed");
			return 0;
		}
	}
	/* Options first: reusing a handle for another kind of method resets it. */
	CURLcode rc = setup_easy(c, p);
	if (rc != CURLE_OK) {
		defer_failure(p, HD_EINTERNAL, curl_easy_strerror(rc));
		return 0;
	}
	/* curl refuses a URL over its input limit (8 MiB) when it is set. */
	if (curl_easy_setopt(p->easy, CURLOPT_URL, call->url) != CURLE_OK) {
		defer_failure(p, HD_EINVAL, "the URL is too long");
		return 0;
	}
	queue_append(c, p);
	queue_pump(c);
	return 0;
}

void hd_http_client_cancel(struct hd_http_client *c, struct hd_http_call *call)
{
	struct pending *p = call->priv;

	if (!p)
		return;
	if (p->lane) {
		struct lane *lane = p->lane;
		curl_multi_remove_handle(lane->multi, p->easy);
		pending_unlink(&c->calls, p);
		lane->running--;
		/* An idle retired lane is cleaned up on the kick; room for the queue. */
		if (!c->closing && ((lane->retired && lane->running == 0) || c->queue))
			uv_timer_start(&c->kick, on_kick, 0, 0);
	} else if (p->easy) {
		queue_unlink(c, p);
	} else {
		pending_unlink(&c->deferred, p);
	}
	call->priv = NULL;
	c->inflight--;
	pending_free(p);
}

size_t hd_http_client_inflight(const struct hd_http_client *c)
{
	return c->inflight;
}

void hd_http_client_close(struct hd_http_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	while (c->calls)
		hd_http_client_cancel(c, c->calls->call);
	while (c->queue)
		hd_http_client_cancel(c, c->queue->call);
	while (c->deferred)
		hd_http_client_cancel(c, c->deferred->call);
	pool_drain(c);
	/* curl closes its cached connections and asks us to stop watching them. */
	while (c->lanes)
		lane_close(c, c->lanes);
	while (c->socks)
		sock_close(c, c->socks);
	uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

void hd_http_client_free(struct hd_http_client *c)
{
	if (!c)
		return;
	hd_http_client_close(c);
	sk_X509_pop_free(c->cas, X509_free);
	c->cas = NULL;
	if (c->open_handles == 0)
		free(c);
	else
		c->free_wanted = true;
}
