/*
 * push_delivery — the push consumer: push subscriptions (which events
 * become pushes, push/push_sub_config.h) as durable records, each reading
 * its topic (or every topic of its pattern, consume/pattern.h) after a
 * durable position through the hub, and sending each event that passes
 * the filter to the event's devices (to=user: the devices of user {id} of
 * topic user:{id}; to=followers: every device listing the topic) through
 * the providers (push/push.h), with per-device retries and dead letters.
 * Layer: push (a consumer: it talks to the hub, the device registry and
 * the providers). Loop thread. Callers: main.c (life), edge/push_sub_http.c
 * (the admin operations), tests.
 *
 * Durable form: one record of kind HD_PUSH_DELIVERY_RECORD_KIND per
 * subscription, key its id, value {"id","created",<config members>,
 * "state":"active|paused","positions":{"<topic>":<last ended offset>},
 * counters}.
 *
 * Delivery, per topic (a stream): events are handed out in offset order
 * into a lease window (consume/lease.h) of HD_PUSH_DELIVERY_WINDOW events
 * in delivery at once (so a skip_if_seen wait or a slow device does not
 * hold back the events after it). An event's sends
 * (one per device, at most opts.devices_per_event) run in parallel; each
 * ends OK, INVALID (the device is marked invalid through hd_push_outcome
 * and never called again), REFUSED (no retry), or after RETRY/THROTTLED/
 * AUTH answers with backoff up to max_attempts and never past the event's
 * expiry (then: failed). An event is acknowledged in the window once every
 * send of it ended (a failed send: the event is dead-lettered first,
 * consume/deadletter.h); the position — the window's floor, every event up
 * to it ended — is written durably after it moves: a crash re-sends the
 * events above it (at least once per device).
 *
 * Skips (counted, in the JSON): the filter (not counted), expired events
 * (skipped_expired), skip_if_online (skipped_online: the device's user had
 * a live connection following the topic when the event was read),
 * skip_if_seen (skipped_seen: after `wait`, the user's cursor record
 * (kind "cursor", key "<user>\n<name>") names the topic at or past the
 * event's offset), silent pushes over opts.silent_per_hour per device per
 * hour (skipped_silent).
 *
 * Limits: opts.max_subs subscriptions, opts.devices_per_event devices per
 * event (more are counted in skipped_devices), opts.inflight_max sends in
 * flight in all and opts.sub_inflight_max per subscription (an event's
 * sends past either wait in order: the next starts when one of the event's
 * sends is answered, or after HD_PUSH_DELIVERY_WAIT_MS), HD_PUSH_DELIVERY_WINDOW
 * events per stream in delivery and HD_PUSH_DELIVERY_READ_LIMIT read ahead, opts.pattern_topics_max topics per pattern.
 */
#ifndef HD_PUSH_DELIVERY_H
#define HD_PUSH_DELIVERY_H

#include "consume/start.h"
#include "core/buf.h"
#include "hub/hub.h"
#include "push/push.h"
#include "push/push_sub_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HD_PUSH_DELIVERY_RECORD_KIND "push_sub"
#define HD_PUSH_DELIVERY_ID_LEN 32     /* "ps_" + hex */
#define HD_PUSH_DELIVERY_WAIT_MS 100   /* a send past the in-flight caps waits this long */
#define HD_PUSH_DELIVERY_BACKOFF_MAX_MS 300000
#define HD_PUSH_DELIVERY_PAUSE_MAX_MS 600000 /* a provider-wide pause (Retry-After) at most */
#define HD_PUSH_DELIVERY_LIST_MAX (16u * 1024 * 1024)
#define HD_PUSH_DELIVERY_WINDOW 64     /* events of one topic in delivery at once */

struct hd_push_delivery_opts {
	uint32_t silent_per_hour;      /* 0 = 3 */
	size_t max_subs;               /* 0 = 1000 */
	size_t devices_per_event;      /* 0 = 10000 */
	size_t inflight_max;           /* 0 = 2000 */
	size_t sub_inflight_max;       /* one subscription's (every topic of a pattern); 0 = 1000 */
	size_t pattern_topics_max;     /* 0 = 10000 */
	uint32_t backoff_base_ms;      /* 0 = 1000: the first retry's wait, doubling */
};

struct hd_push_delivery;

/* What follows a device send's verdict (hd_push_delivery_send_plan). */
enum hd_push_delivery_step {
	HD_PUSH_DELIVERY_SENT,     /* OK: the send ended */
	HD_PUSH_DELIVERY_INVALID,  /* the device is dead: ended, never again */
	HD_PUSH_DELIVERY_REFUSED,  /* this message cannot go: ended, no retry */
	HD_PUSH_DELIVERY_RESEND,   /* never processed: again now, no attempt counted */
	HD_PUSH_DELIVERY_RETRY,    /* again after *wait_ms */
	HD_PUSH_DELIVERY_GIVE_UP,  /* out of attempts, or the wait passes the expiry */
};

/*
 * The step after verdict v of a send that was attempt `attempt` (1..) of
 * max_attempts, after `resends` sends in a row not counted (at most
 * HD_PUSH_DELIVERY_RESEND_MAX), at now_ms, for an event expiring at
 * expires_ms (0 = never): the wait of a RETRY in *wait_ms — v's after_ms
 * when the service said, else backoff_base_ms doubling per attempt up to
 * HD_PUSH_DELIVERY_BACKOFF_MAX_MS. Pure.
 */
#define HD_PUSH_DELIVERY_RESEND_MAX 3
enum hd_push_delivery_step hd_push_delivery_send_plan(const struct hd_push_verdict *v,
						      uint32_t attempt, uint32_t resends,
						      uint32_t max_attempts, int64_t now_ms,
						      int64_t expires_ms, uint32_t backoff_base_ms,
						      int64_t *wait_ms);

/* Returns owned. Borrows loop, hub and push (its providers and devices)
 * for its life. */
struct hd_push_delivery *hd_push_delivery_new(uv_loop_t *loop, struct hd_hub *hub,
					      struct hd_push *push,
					      const struct hd_push_delivery_opts *o);
/* Loads the records and starts delivering (the engine must be set). */
void hd_push_delivery_start(struct hd_push_delivery *d);
bool hd_push_delivery_loaded(const struct hd_push_delivery *d);
/* fn(arg) runs once, when the load ends (hd_push_delivery_loaded turns
 * true; a failed load never ends); one callback, the last set wins (the
 * push subscription routes). Loop thread. */
void hd_push_delivery_on_loaded(struct hd_push_delivery *d, void (*fn)(void *arg), void *arg);
/* Cancels every send and timer; before the engine stops. */
void hd_push_delivery_stop(struct hd_push_delivery *d);
/* After the engine stopped and the loop ran the handles' closes. NULL: no-op. */
void hd_push_delivery_free(struct hd_push_delivery *d);

/* done(arg, status, body, err, msg) of an operation: status 200/201/204
 * with body (JSON, borrowed during the call) or err with msg. */
typedef void (*hd_push_delivery_done_fn)(void *arg, int status, const char *body, int err,
					 const char *msg);

/* Creates a subscription; done once its record is durable (201). */
void hd_push_delivery_create(struct hd_push_delivery *d, const struct hd_push_sub_config *c,
			     const struct hd_start *start, hd_push_delivery_done_fn done,
			     void *arg);
/* Deletes one (204 once its record is gone; HD_ENOTFOUND). */
void hd_push_delivery_delete(struct hd_push_delivery *d, const char *id,
			     hd_push_delivery_done_fn done, void *arg);
/* Pauses or resumes one (200 with its JSON once durable). */
void hd_push_delivery_pause(struct hd_push_delivery *d, const char *id, bool pause,
			    hd_push_delivery_done_fn done, void *arg);
/* Moves one (every stream, or topic's only) to deliver from offset `from`
 * (>= 1) on (200 with its JSON once durable). */
void hd_push_delivery_replay(struct hd_push_delivery *d, const char *id, const char *topic,
			     uint64_t from, hd_push_delivery_done_fn done, void *arg);
/* Appends {"subscriptions":[…]} to b. */
void hd_push_delivery_list(struct hd_push_delivery *d, struct hd_buf *b);
/* Appends one's JSON to b: 0 or HD_ENOTFOUND. */
int hd_push_delivery_info(struct hd_push_delivery *d, const char *id, struct hd_buf *b);
/* Appends {"attempts":[…]}: the last failed sends of one, newest first:
 * 0 or HD_ENOTFOUND. */
int hd_push_delivery_attempts(struct hd_push_delivery *d, const char *id, struct hd_buf *b);

#endif
