/*
 * provider — the interface every push provider (APNs, FCM, Web Push)
 * implements, what one send carries, and the verdict it ends with.
 * Layer: push. Everything runs on the loop thread.
 * Callers: the push consumer (later: it picks the provider by the device's
 * platform and acts on the verdict), tests; implemented by push/apns.c,
 * push/fcm.c, push/webpush.c; the pure answer classifiers are in
 * push/answer.c.
 *
 * One send is one message to one device (APNs and FCM no longer batch;
 * Web Push has one endpoint per subscription). A provider keeps its own
 * credentials (renewing them as its service requires), its HTTP client and
 * connection, and answers every accepted send exactly once through done(),
 * with a verdict the caller acts on:
 *
 *   OK        delivered to the push service.
 *   INVALID   the device token / subscription is dead: mark the device
 *             invalid and never call it again (reason says why).
 *   REFUSED   this message was refused (too large, bad topic, ...): the
 *             device stays valid, retrying the same message cannot help.
 *   RETRY     try again later (after_ms when the service said, else the
 *             caller's backoff). count_attempt false: the request was never
 *             processed (a refused HTTP/2 stream, a GOAWAY) — send again
 *             at once on a new connection without counting an attempt (the
 *             caller caps how often in a row).
 *   AUTH      the provider's own credentials were refused even after one
 *             renewal; the provider has logged an alarm and counted it in
 *             herald_push_auth_alarms_total. Retry later.
 *   THROTTLED slow down: provider_wide false = this device (APNs 429,
 *             Web Push 429), true = every send of this provider (FCM
 *             quota); after_ms from Retry-After, or -1 for the caller's
 *             default pause.
 */
#ifndef HD_PUSH_PROVIDER_H
#define HD_PUSH_PROVIDER_H

#include "net/http_client.h"
#include "push/webpush_crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_PUSH_REASON_MAX 128  /* bytes of a verdict's reason, NUL included */
#define HD_PUSH_ID_MAX 64       /* bytes of a provider's message id, NUL included */
#define HD_PUSH_PAYLOAD_MAX 4096 /* APNs and FCM payload bytes */

enum hd_push_verdict_kind {
	HD_PUSH_OK,
	HD_PUSH_INVALID,
	HD_PUSH_REFUSED,
	HD_PUSH_RETRY,
	HD_PUSH_AUTH,
	HD_PUSH_THROTTLED,
};

struct hd_push_verdict {
	enum hd_push_verdict_kind kind;
	int status;                    /* the HTTP status; 0 when none came */
	bool count_attempt;            /* RETRY: false for a request never processed */
	bool provider_wide;            /* THROTTLED: the whole provider pauses */
	int64_t after_ms;              /* RETRY, THROTTLED: at least this long; -1 = caller's */
	char reason[HD_PUSH_REASON_MAX]; /* the service's reason ("Unregistered",
					  "UNREGISTERED", "timeout", ...); "" for OK */
};

/* "ok", "invalid", "refused", "retry", "auth", "throttled": the result label
 * of herald_push_sends_total. */
const char *hd_provider_verdict_name(enum hd_push_verdict_kind kind);

enum hd_push_mode { HD_PUSH_ALERT, HD_PUSH_SILENT };
enum hd_push_urgency { HD_PUSH_URGENCY_NORMAL, HD_PUSH_URGENCY_HIGH, HD_PUSH_URGENCY_LOW };

/* What to send; every pointer borrowed until done(). */
struct hd_push_message {
	enum hd_push_mode mode;        /* APNs push type and priority, FCM priority */
	enum hd_push_urgency urgency;  /* Web Push Urgency; APNs/FCM priority of an alert */
	int64_t expiration;            /* seconds since the epoch; 0 = none (APNs
					  apns-expiration, FCM android.ttl, Web Push TTL) */
	const char *collapse_id;       /* NULL = none: apns-collapse-id (<= 64 bytes),
					  FCM collapse_key, Web Push Topic (<= 32 base64url
					  characters, else not sent) */
	/* APNs: the whole JSON payload ({"aps":…}), <= 4,096 bytes.
	 * FCM: a JSON object of the message's members other than "token"
	 * ("data", "notification", "android", "apns", …), <= 4,096 bytes; data
	 * values that are not strings are sent as their JSON text.
	 * Web Push: the plaintext, <= 3,993 bytes. */
	const char *payload;
	size_t payload_len;
};

/* Whom to send to; borrowed until done(). */
struct hd_push_target {
	const char *token;             /* APNs (hex) and FCM device tokens */
	const char *endpoint;          /* Web Push subscription endpoint */
	const struct hd_webpush_crypto_keys *keys; /* Web Push subscription keys */
};

struct hd_push_send {
	/* In: */
	struct hd_push_target to;
	struct hd_push_message msg;
	void (*done)(struct hd_push_send *s); /* may send, cancel or free the provider */
	void *arg;                     /* the caller's */
	/* Out, valid in done(): */
	struct hd_push_verdict verdict;
	char id[HD_PUSH_ID_MAX];       /* apns-id / FCM message name; "" when none */
	uint64_t latency_us;           /* the last request's */
	void *priv;                    /* the provider's */
};

struct hd_push_provider;

struct hd_push_provider_ops {
	const char *name;              /* "apns", "fcm", "webpush" */
	/* Starts s. Returns 0 (done() will run, never from inside send), or
	 * HD_EINVAL (a target or message this provider cannot send: missing
	 * token, payload too large, ...) or HD_ELIMIT (too many in flight),
	 * with done() never run. */
	int (*send)(struct hd_push_provider *p, struct hd_push_send *s);
	/* Abandons an accepted send whose done() has not run (done() never runs). */
	void (*cancel)(struct hd_push_provider *p, struct hd_push_send *s);
	/* Cancels every send (no done()) and frees the provider once its loop
	 * handles closed (the loop must run afterwards). */
	void (*free)(struct hd_push_provider *p);
};

struct hd_provider_req;

/* Every provider starts with this. */
struct hd_push_provider {
	const struct hd_push_provider_ops *ops;
	struct hd_http_client *http;   /* owned: the provider's connections */
	struct hd_provider_req *reqs;  /* sends accepted and not done */
	size_t nreqs;
	struct hd_provider_req *pool;  /* finished requests for reuse (next), at most
					  HD_PROVIDER_REQ_POOL_MAX */
	size_t npool;
	bool closing;                  /* fini began: finished requests are freed */
	uint32_t max_inflight;
	uint64_t auth_alarms;          /* AUTH verdicts given (also in the metric) */
	uint64_t tokens_issued;        /* provider tokens signed / access tokens obtained */
	int64_t paused_until_ms;       /* a provider-wide THROTTLED: the push consumer sends
					  nothing through it before this wall-clock time */
};

/* What every provider is built with. */
struct hd_push_provider_opts {
	const char *ca_file;           /* extra trusted CAs; borrowed during new */
	bool allow_private;            /* --push-allow-private */
	uint32_t timeout_ms;           /* one request; 0 = 10 s */
	uint32_t max_inflight;         /* sends accepted and not done; 0 = 1000 */
	uint32_t max_connections;      /* per host; 0 = 2 */
	const char *url;               /* overrides the service's origin ("https://h:p"), or NULL */
};

/*
 * One send in flight: the shared mechanics of the three providers (the
 * HTTP call, its headers, the list of sends for cancel and free). A
 * provider fills the call and headers, sends, and in `answered` (run from
 * the call's done()) classifies and either sends again or finishes.
 */
#define HD_PROVIDER_HEADERS_MAX 10
#define HD_PROVIDER_TEXT_MAX 6144      /* bytes of header values of one request */

struct hd_provider_req {
	struct hd_push_provider *p;
	struct hd_push_send *s;
	struct hd_http_call call;      /* call.arg is this request */
	struct hd_http_header headers[HD_PROVIDER_HEADERS_MAX];
	struct hd_http_want want[1];
	size_t text_len;
	char *body;                    /* owned request body, or NULL */
	uint64_t gen;                  /* the credential generation it was sent with */
	bool renewed;                  /* already sent again after an AUTH answer */
	bool waiting;                  /* waits for a credential, not sent */
	void (*answered)(struct hd_provider_req *r); /* the provider's */
	struct hd_provider_req *prev, *next;
	/* Last: a request taken from the provider's pool is zeroed up to here
	 * (text is written before it is read: text_len says how much). */
	char text[HD_PROVIDER_TEXT_MAX]; /* header values and the URL */
};

/* Finished requests a provider keeps for its next sends (a request is
 * about 6.5 KiB: allocating and zeroing one per push showed in profiles). */
#define HD_PROVIDER_REQ_POOL_MAX 64

/* Starts p: its HTTP client from o (see hd_provider_http_opts). Returns 0 or
 * the client's error with err. */
int hd_provider_init(struct hd_push_provider *p, const struct hd_push_provider_ops *ops,
		     uv_loop_t *loop, const struct hd_push_provider_opts *o, struct hd_error *err);

/* Returns a new request for s (owned by p until finished or cancelled), or
 * NULL when max_inflight sends are in flight. */
struct hd_provider_req *hd_provider_req_new(struct hd_push_provider *p, struct hd_push_send *s,
					    void (*answered)(struct hd_provider_req *r));

/* Copies the NUL-terminated text of fmt into r's text; returns it, or NULL
 * when it does not fit. */
const char *hd_provider_req_text(struct hd_provider_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears r's headers and text (before building a request again). */
void hd_provider_req_reset(struct hd_provider_req *r);

/* Adds a header (value formatted into r's text). 0 or HD_EINVAL (no room). */
int hd_provider_req_header(struct hd_provider_req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Sends r's call (url, method, headers and body already set). 0 or the
 * client's error (then nothing runs). */
int hd_provider_req_send(struct hd_provider_req *r);

/* Ends r: s's verdict is v (copied), its latency the call's; frees r and
 * runs s->done. */
void hd_provider_req_finish(struct hd_provider_req *r, const struct hd_push_verdict *v);

/* Frees r without running done (a send refused before it started). */
void hd_provider_req_drop(struct hd_provider_req *r);

/* The shared ops: cancel one send; close every call and free the client
 * (the provider's own memory is the caller's). */
void hd_provider_cancel(struct hd_push_provider *p, struct hd_push_send *s);
void hd_provider_fini(struct hd_push_provider *p);

/* Checks a service URL (an --push-*-url option): https:// then a host, no
 * userinfo, query or fragment, at most HD_PROVIDER_URL_MAX bytes; copies it
 * to out without a trailing '/'. 0 or HD_ECONFIG naming option. */
#define HD_PROVIDER_URL_MAX 1024
int hd_provider_url_check(const char *url, const char *option, char *out, size_t out_cap,
			  struct hd_error *err);

/* The HTTP client options of a provider (HTTP/2, its CA file, its SSRF
 * rule, its caps) from o, defaults applied. user_agent "herald/<version>". */
struct hd_http_client_opts;
void hd_provider_http_opts(const struct hd_push_provider_opts *o,
			   struct hd_http_client_opts *out);

/* Gives the AUTH verdict for an answer v already classified AUTH after the
 * one renewal: counts it in p->auth_alarms and the metric and logs one
 * line naming the provider, status and reason (rate-limited). */
void hd_provider_alarm(struct hd_push_provider *p, const struct hd_push_verdict *v);

/* Counts one provider token issued (p->tokens_issued and the metric). */
void hd_provider_token_issued(struct hd_push_provider *p);

#endif
