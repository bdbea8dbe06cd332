/*
 * delivery — webhook subscriptions at work: for each subscription, read its
 * topic from its position through the hub, POST every event that passes its
 * filter to its URL (net/http_client.h), signed (webhook/signature.h) and
 * encoded (webhook/ce_http.h), retry per webhook/retry.h, dead-letter what
 * runs out of attempts, and keep the position durable.
 * Layer: webhook (a consumer over consume/: it talks to the hub and the
 * consume core, below edge). Every call and every reply runs on the loop
 * thread. The REST routes are edge/webhook_http.h.
 * Implemented by lifecycle.c, sub.c, pump.c, record.c, kids.c and ops.c
 * behind the private webhook/webhook_impl.h (which file holds what: there).
 *
 * The delivery state of a subscription is a consume/lease.h window over its
 * topic's offsets: an attempt in flight is LEASED, an event waiting for its
 * retry READY with not_before, a delivered (or dead-lettered, or filtered
 * out) event ACKED; the floor is the position. An ordered subscription
 * has at most one event in flight and reads a new event only when its
 * window is empty, so a retry never lets a later event pass; an unordered
 * one has up to `concurrency` in flight and HD_WEBHOOK_WINDOW un-acked
 * events.
 *
 * Durable (a store record of kind HD_WEBHOOK_RECORD_KIND keyed by the
 * subscription id; JSON): the config, the secrets, the state and its
 * reason, the position (floor and the acked offsets above it, lease.h's
 * durable form), the topic epoch, the failure streak and the counters.
 * Written after every change, at most one write in flight per subscription
 * (changes meanwhile are coalesced into the next), and once more at stop.
 * After a restart every event above the floor that is not acked is
 * delivered again (at least once): an attempt in flight when herald
 * stopped is repeated, with the same webhook-id, and attempt counts start
 * again from 1. In memory only: the attempts log (webhook/attempts.h).
 *
 * Topic patterns ("orders.*", hub/topic_pattern.h): the subscription is a
 * parent that delivers nothing itself; it expands the pattern
 * (consume/pattern.h: the prefix watch, the paged list of the matching
 * topics) and gives each one a child: the same config and id, the topic's own position, window,
 * epoch and durable record (kind HD_WEBHOOK_TOPIC_RECORD_KIND, key
 * "<id>/<topic>"). Topics listed at creation start per `start`; a topic
 * seen first by the watch (made later) at offset 1. The parent holds the
 * secrets, the state, the failure streak and the attempts log; unordered,
 * its concurrency caps all its children together. At most
 * opts.pattern_topics_max children; further topics are skipped (counted
 * in a metric, named in the JSON). A full list (at creation, at load)
 * drops the children whose topic is gone.
 *
 * Limits: opts.max_subscriptions subscriptions; HD_WEBHOOK_WINDOW un-acked
 * events per subscription; the HTTP client's max_inflight deliveries in
 * all; one hub read per subscription at a time.
 */
#ifndef HD_WEBHOOK_DELIVERY_H
#define HD_WEBHOOK_DELIVERY_H

#include "core/buf.h"
#include "hub/hub.h"
#include "net/http_client.h"
#include "webhook/sub_config.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HD_WEBHOOK_RECORD_KIND "webhook"
/* A pattern subscription's per-topic record, key "<id>/<topic>". */
#define HD_WEBHOOK_TOPIC_RECORD_KIND "webhook_topic"
#define HD_WEBHOOK_WINDOW 1000
#define HD_WEBHOOK_SUBS_MAX 100000
#define HD_WEBHOOK_DLQ_TYPE "herald.webhook.deadletter"

struct hd_webhook_opts {
	double time_scale;              /* multiplies retry delays; > 0 */
	uint32_t max_subscriptions;     /* 1 .. HD_WEBHOOK_SUBS_MAX */
	uint32_t pattern_topics_max;    /* topics of one pattern subscription (0 = 1000) */
	int64_t rotation_grace_ms;      /* the previous secret signs this long after a rotation */
	struct hd_http_client_opts http; /* http.allow_private also governs create */
};

/*
 * The answer to one operation: done() runs exactly once, possibly before
 * the call returns. On success err is 0, status the HTTP status (200, 201,
 * 204) and body the JSON answer (owned by the reply; the caller finishes
 * it); else err is an HD_E* code and msg says why.
 */
struct hd_webhook_reply {
	void (*done)(struct hd_webhook_reply *r);
	void *arg;
	int status;
	int err;
	char msg[256];
	struct hd_buf body;
};

struct hd_webhooks;

/* Returns owned, or NULL with err (the HTTP client could not be made).
 * Borrows loop and hub (whose engine must be set) for its life. */
struct hd_webhooks *hd_webhooks_new(uv_loop_t *loop, struct hd_hub *hub,
				    const struct hd_webhook_opts *o, struct hd_error *err);
/* Loads the durable subscriptions and starts delivering; loaded(arg) runs
 * once they are in memory (also when the load failed: then none). */
void hd_webhooks_start(struct hd_webhooks *w, void (*loaded)(void *arg), void *arg);
bool hd_webhooks_loaded(const struct hd_webhooks *w);
/* Whether create lets a url name a private or loopback address. */
bool hd_webhooks_allow_private(const struct hd_webhooks *w);

/* The topic (or topic pattern) of subscription id (borrowed, valid until
 * the loop runs again), or NULL when there is none: for the caller's
 * access check. */
const char *hd_webhooks_topic(const struct hd_webhooks *w, const char *id);

/* Creates a subscription (secret "" = generate one); replies 201 with it
 * (secret included) once it is durable; HD_ELIMIT past max_subscriptions. */
void hd_webhooks_create(struct hd_webhooks *w, const struct hd_sub_config *c,
			const struct hd_sub_start *start, const char *secret,
			struct hd_webhook_reply *r);
/* Appends {"subscriptions":[…]} (every one, or those of topic when not
 * NULL), without secrets. */
void hd_webhooks_list(struct hd_webhooks *w, const char *topic, struct hd_buf *out);
/* Appends one subscription's JSON. Returns 0 or HD_ENOTFOUND. */
int hd_webhooks_info(struct hd_webhooks *w, const char *id, struct hd_buf *out);
/* Deletes a subscription: deliveries stop at once (calls in flight are
 * abandoned); replies 204 once the record is gone. */
void hd_webhooks_delete(struct hd_webhooks *w, const char *id, struct hd_webhook_reply *r);
/* Pauses (nothing new is sent; attempts in flight finish) or resumes (also
 * re-enables a disabled one and resets the failure streak); appends the
 * subscription's JSON. Returns 0 or HD_ENOTFOUND. */
int hd_webhooks_pause(struct hd_webhooks *w, const char *id, bool pause, struct hd_buf *out);
/* Appends {"attempts":[…]} with the newest limit attempts. 0 or HD_ENOTFOUND. */
int hd_webhooks_attempts(struct hd_webhooks *w, const char *id, size_t limit, struct hd_buf *out);
/* Moves the position so that delivery goes on from offset `from` (by_time:
 * the first event stored at or after time_ms); attempts in flight are
 * abandoned; events are re-sent with their webhook-id. Replies 200. topic
 * (or NULL) names one topic: of a pattern subscription, only that topic
 * moves (HD_ENOTFOUND when it has no such topic); an exact subscription's
 * topic must be it (else HD_EINVAL). A pattern subscription without topic
 * accepts only by_time (else HD_EINVAL), and moves every topic. */
void hd_webhooks_replay(struct hd_webhooks *w, const char *id, const char *topic, bool by_time,
			uint64_t from, int64_t time_ms, struct hd_webhook_reply *r);
/* Rotates the secret (secret "" = generate one): the new one signs first,
 * the previous one too for rotation_grace_ms. Replies 200 with the new
 * secret once durable. */
void hd_webhooks_rotate(struct hd_webhooks *w, const char *id, const char *secret,
			struct hd_webhook_reply *r);

/* With several nodes (an engine with ownership leases), a change (pause,
 * resume, rotate, replay) made on a node that does not deliver the
 * subscription moves its delivery to that node: it takes the lease over,
 * reads the record again and applies the change on top (webhook/own.c);
 * a replay of a pattern subscription there answers HD_EUNAVAIL meanwhile
 * (retry). Delete works from any node. */

/* Stops: abandons calls in flight (they are sent again after a restart),
 * writes what changed, closes the handles. Later operations reply
 * HD_EUNAVAIL. */
void hd_webhooks_stop(struct hd_webhooks *w);
/* After the loop ran the closes of hd_webhooks_stop. */
void hd_webhooks_free(struct hd_webhooks *w);

#endif
