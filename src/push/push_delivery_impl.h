/*
 * push_delivery_impl — the private insides of the push consumer, shared by
 * its files (the public contract is push/push_delivery.h):
 *   push_delivery.c         the subscriptions (exact topics and patterns:
 *                           consume/pattern.h) and the public operations
 *   push_delivery_stream.c  one topic's reading after its position
 *   push_delivery_send.c    one event's fan-out: devices, skips, payloads,
 *                           sends, retries, outcomes, dead letters
 *   push_delivery_record.c  the durable record: its JSON, writes, loading
 *   push_own.c              ownership between nodes (consume/owner.h): the
 *                           claim, a gain's re-read, a loss, the re-list
 * Layer: push. Nothing outside src/push/push_delivery*.c includes this
 * header. Loop thread.
 */
#ifndef HD_PUSH_DELIVERY_IMPL_H
#define HD_PUSH_DELIVERY_IMPL_H

#include "push/push_delivery.h"

#include "consume/lease.h"
#include "consume/owned.h"
#include "consume/pattern.h"
#include "consume/relist.h"
#include "consume/seek.h"
#include "core/map.h"
#include "push/devices.h"
#include "push/payload.h"
#include "push/webpush_crypto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HD_PUSH_DELIVERY_READ_LIMIT 64
#define HD_PUSH_DELIVERY_ERROR_WAIT_MS 1000
#define HD_PUSH_DELIVERY_SILENT_MAP_MAX 1000000
#define HD_PUSH_DELIVERY_RECORD_MAX HD_RECORD_VALUE_MAX
#define HD_PUSH_DELIVERY_ATTEMPTS_KEPT 20

enum hd_push_delivery_state { HD_PUSH_DELIVERY_ACTIVE, HD_PUSH_DELIVERY_PAUSED };

struct hd_push_delivery_sub;
struct hd_push_delivery_stream;
struct hd_push_delivery_event;

/* One device's send of one event. */
struct hd_push_delivery_send {
	struct hd_push_send ps;
	struct hd_push_delivery_event *e;
	char user[HD_USER_ID_MAX + 1];
	char dev[HD_DEVICE_ID_MAX + 1];
	enum hd_device_platform platform;
	char *token;                  /* owned: APNs/FCM token or Web Push endpoint */
	struct hd_webpush_crypto_keys keys;
	uint32_t attempt, resends;
	bool inflight;                /* accepted by a provider, done() pending */
	bool ended;
	uv_timer_t timer;             /* the wait before a retry */
	struct hd_push_provider *prov;
};

/* The event a stream delivers now. */
struct hd_push_delivery_event {
	struct hd_push_delivery_stream *st;
	uint64_t offset;
	struct hd_stored_event ev;    /* ev.json a reference */
	struct hd_push_payload pl[3]; /* per platform, built once */
	bool built[3];
	struct hd_push_delivery_send **sends;
	size_t nsends, open;
	size_t nstarted;              /* sends[0, nstarted) were started (in order, as the
					 in-flight caps allow: event_start_more) */
	size_t nended;                /* sends ended (an event of 10,000 must not count them
					 on every end) */
	bool failed;                  /* a send ran out of attempts */
	char fail_reason[HD_PUSH_REASON_MAX];
	uint32_t fail_attempts;
	int64_t expires_ms;           /* 0 = none */
	uv_timer_t wait;              /* skip_if_seen's wait */
	struct hd_record_op cur;      /* skip_if_seen's cursor look-up */
	struct hd_devices_refresh fresh; /* to=user, several nodes: the user's devices re-read */
	char user[HD_USER_ID_MAX + 1]; /* to=user */
	bool online;                  /* to=user, skip_if_online: the user was live when it was taken */
	struct hd_hub_reg live;       /* skip_if_online: the topic's followers on every node
					 when it was taken (followers: kept for the fan-out) */
};

struct hd_push_delivery_stream {
	struct hd_push_delivery_sub *s;
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_lease lease;        /* floor: every event up to it ended (the durable
					 position); the window: events in delivery and
					 those ended above the floor */
	bool latest;                  /* the first read only learns the topic's last offset */
	uint64_t seen_min;            /* latest: the first offset the watch saw meanwhile (0 = none) */
	bool reading, again;
	uint64_t gen, read_gen;       /* gen moves with a reset: older reads are dropped */
	struct hd_read rd;
	struct hd_stored_event *batch; /* the rest of the last read (json refs) */
	size_t nbatch, ibatch;
	struct hd_push_delivery_event *evs[HD_PUSH_DELIVERY_WINDOW]; /* in delivery */
	size_t nevs;
	bool pumping, pump_again;
	uv_timer_t timer;             /* a read after an error */
	struct hd_watch watch;        /* exact topics */
	bool watching;
	bool dead;                    /* removed: frees once nothing runs */
	size_t ndl;                   /* dead letters being published */
	bool closing;
	/* start by time: the topic's info, then the search (consume/seek.h);
	 * the stream reads nothing meanwhile */
	bool seeking;
	struct hd_topic_op info;
	struct hd_seek sk;
};

/* Why a device was not pushed an event: herald_push_skips_total{reason}
 * (HD_METRICS_PUSH_SKIPS, same order). */
enum hd_push_delivery_skip {
	HD_PUSH_DELIVERY_SKIP_SEEN,
	HD_PUSH_DELIVERY_SKIP_ONLINE,
	HD_PUSH_DELIVERY_SKIP_EXPIRED,
	HD_PUSH_DELIVERY_SKIP_SILENT,
	HD_PUSH_DELIVERY_SKIP_DEVICES,
};

struct hd_push_delivery_attempt {
	int64_t time_ms;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t offset;
	char device[HD_USER_ID_MAX + HD_DEVICE_ID_MAX + 2];
	char result[16];
	int status;
	char reason[HD_PUSH_REASON_MAX];
};

struct hd_push_delivery_sub {
	struct hd_push_delivery *d;
	char id[HD_PUSH_DELIVERY_ID_LEN + 1];
	struct hd_push_sub_config cfg;
	enum hd_push_delivery_state state;
	int64_t created_ms;
	size_t inflight;              /* sends of every stream in flight */
	bool pattern;
	struct hd_pattern pt;         /* pattern: topic → stream */
	struct hd_push_delivery_stream *exact;      /* exact topic */
	struct hd_map positions;      /* loaded positions, topic → (uint64_t *) */
	bool fresh_latest;            /* created with start latest: listed topics start at their end */
	int64_t fresh_time_ms;        /* created with start time (0 = not): listed topics seek it */
	bool listed;
	/* Counters (durable). */
	uint64_t sent, failed, invalid, refused, dead_lettered;
	uint64_t skipped_seen, skipped_online, skipped_expired, skipped_silent, skipped_devices;
	struct hd_push_delivery_attempt attempts[HD_PUSH_DELIVERY_ATTEMPTS_KEPT];
	size_t nattempts, attempts_head;
	/* Ownership (push_own.c). */
	struct hd_owned own;          /* "push:<id>" */
	bool created_here;            /* created on this node, not held yet: nothing to re-read */
	bool unstored;                /* created: its first write is not fenced */
	struct hd_push_delivery_change *change; /* made here while another node held it */
	/* The record. */
	int puts;
	bool dirty;
	struct hd_push_delivery_pending *waiting;   /* answers once the next put is durable */
	bool deleted;
	int refs;
};

/* An operation's answer after a record write. */
struct hd_push_delivery_pending {
	hd_push_delivery_done_fn done;
	void *arg;
	int status;
	struct hd_push_delivery_pending *next;
};

struct hd_push_delivery_put {
	struct hd_record_op op;
	struct hd_push_delivery_sub *s;
	struct hd_push_delivery_pending *answers;
	char *value;
};

struct hd_push_delivery_silent {
	int64_t hour_ms;
	uint32_t n;
};

struct hd_push_delivery {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_push *push;
	struct hd_push_delivery_opts opts;
	struct hd_map subs;           /* id → struct hd_push_delivery_sub */
	struct hd_map silent;         /* "user\ndevice" → struct hd_push_delivery_silent */
	size_t inflight;
	bool loaded, stopping;
	void (*on_loaded)(void *arg);   /* hd_push_delivery_on_loaded; NULL if none */
	void *on_loaded_arg;
	struct hd_record_op load;
	char load_after[HD_RECORD_KEY_MAX + 1];
	/* Ownership between nodes (push_own.c). */
	struct hd_owner *owner;
	struct hd_relist relist;      /* shared engines: re-lists the records */
};


/* A comma-separated JSON list being written. */
struct hd_push_delivery_json_ctx {
	struct hd_buf *b;
	bool first;
};

/* ---- push_delivery.c: subscriptions ---- */
/* A subscription in d->subs (borrowed: d owns it), or NULL past max_subs. */
struct hd_push_delivery_sub *hd_push_delivery_sub_new(struct hd_push_delivery *d, const char *id,
						       const struct hd_push_sub_config *c);
/* Makes s's streams (exact) or starts its pattern expansion; fresh: just
 * created, with start. */
void hd_push_delivery_sub_activate(struct hd_push_delivery_sub *s, bool fresh,
				   const struct hd_start *start);
/* Starts or wakes every stream of s. */
void hd_push_delivery_sub_run(struct hd_push_delivery_sub *s);
/* Stops every stream of s (deleted or stopping). */
void hd_push_delivery_sub_stop(struct hd_push_delivery_sub *s);
/* Frees a deleted s once no write, list or dead letter points at it. */
void hd_push_delivery_sub_release(struct hd_push_delivery_sub *s);

/* ---- push_delivery_stream.c: one topic's reading ---- */
/* A stream of s over topic after pos; latest: the first read only learns
 * the topic's last offset. Returns owned (hd_push_delivery_stream_kill). */
/* Moves a new stream to the first event of its topic stored at or after
 * time_ms (on a failure it keeps its position: at least once), then pumps. */
void hd_push_delivery_stream_seek(struct hd_push_delivery_stream *st, int64_t time_ms);
struct hd_push_delivery_stream *hd_push_delivery_stream_new(struct hd_push_delivery_sub *s,
							     const char *topic, uint64_t pos,
							     bool latest);
/* Ends st's work; it frees itself once no read or dead letter points at it. */
void hd_push_delivery_stream_kill(struct hd_push_delivery_stream *st);
/* A killed stream whose read or dead letter ended: closes and frees it. */
void hd_push_delivery_stream_maybe_close(struct hd_push_delivery_stream *st);
/* Starts what st may do now: its next event, or a read. */
void hd_push_delivery_stream_pump(struct hd_push_delivery_stream *st);
/* Whether st may deliver (active, loaded, not stopping). */
bool hd_push_delivery_stream_may_run(const struct hd_push_delivery_stream *st);
/* Moves st to deliver after pos: drops its events in delivery and its
 * batch; a new window at floor pos. */
void hd_push_delivery_stream_reset(struct hd_push_delivery_stream *st, uint64_t pos);
/* Drops the rest of st's last read. */
void hd_push_delivery_stream_free_batch(struct hd_push_delivery_stream *st);
/* st's timer callback: pumps it. */
void hd_push_delivery_stream_fire(uv_timer_t *t);

/* ---- push_delivery_send.c: one event's fan-out ---- */
/* Takes st's next read event into the window: the filter, the skips, then
 * its sends. Returns 0, or HD_ELIMIT when the window is full (the event
 * stays next). */
int hd_push_delivery_send_next(struct hd_push_delivery_stream *st);
/* Cancels and frees every event of st in delivery. */
void hd_push_delivery_send_drop_all(struct hd_push_delivery_stream *st);
/* Cancels e's sends and frees it once its handles closed. */
void hd_push_delivery_send_free_event(struct hd_push_delivery_event *e);

/* ---- push_delivery_record.c: the durable record and loading ---- */
/* Appends s as a JSON string b. */
void hd_push_delivery_record_jstr(struct hd_buf *b, const char *s);
/* Appends s's JSON: the record's form (record: created in ms) or the
 * answers' (created in RFC 3339). */
void hd_push_delivery_record_json(struct hd_buf *b, const struct hd_push_delivery_sub *s,
				  bool record);
/* Answers every pending of p (s's JSON, or err) and frees them. */
void hd_push_delivery_record_answer(struct hd_push_delivery_pending *p,
				    struct hd_push_delivery_sub *s, int err);
/* The done of a record put or delete (op->arg a struct hd_push_delivery_put). */
void hd_push_delivery_record_done(struct hd_record_op *op);
/* s changed: its record is written now, or after the write in flight. */
void hd_push_delivery_record_changed(struct hd_push_delivery_sub *s);
/* Answers done(arg) with status and s's JSON once s's next write is durable. */
void hd_push_delivery_record_answer_after(struct hd_push_delivery_sub *s, int status,
					  hd_push_delivery_done_fn done, void *arg);
/* Reads every record (a page at a time) into subscriptions; then loaded. */
void hd_push_delivery_record_load(struct hd_push_delivery *d);
/* One record read into a new subscription (claimed, activated); NULL when
 * it is unreadable or past max_subs. */
struct hd_push_delivery_sub *hd_push_delivery_record_load_one(struct hd_push_delivery *d,
							       const struct hd_record *rec);
/* Applies a record's state, counters and positions to s (a gain's re-read,
 * a copy shown by a node that does not deliver it): every stream moves to
 * its stored position. */
void hd_push_delivery_record_apply(struct hd_push_delivery_sub *s, json_t *v);

/* ---- push_own.c: ownership between nodes (consume/owner.h) ---- */
/* Starts claiming s ("push:<id>"). */
void hd_push_own_add(struct hd_push_delivery_sub *s);
/* Whether this node delivers s now (always with one node). */
bool hd_push_own_held(const struct hd_push_delivery_sub *s);
/* Whether s's record may be written now (held, handing over, or its
 * creation); sets the fence of op when the engine is shared. */
bool hd_push_own_fence(struct hd_push_delivery_sub *s, struct hd_record_op *op);
/* A write fenced by token was refused: s is no longer held here. */
void hd_push_own_fenced(struct hd_push_delivery_sub *s, uint64_t token);
/* A change on a node that does not hold s: kept, the lease is asked for,
 * and it is applied (then done answers) once this node holds it. Returns
 * false when s is held here (the caller applies it itself). replay_from 0:
 * a pause/resume; else a replay of topic (NULL: every stream). */
bool hd_push_own_change(struct hd_push_delivery_sub *s, bool has_state, bool pause,
			const char *topic, uint64_t replay_from, hd_push_delivery_done_fn done,
			void *arg);
/* s is deleted here: its claim goes and any holder's lease is dropped;
 * a kept change is answered with err. */
void hd_push_own_remove(struct hd_push_delivery_sub *s, bool drop, int err);
/* Sets up d's re-list (hd_push_delivery_new; d->loop and d->hub set). */
void hd_push_own_init(struct hd_push_delivery *d);
/* The re-list timer (shared engine only), and its end before the engine stops. */
void hd_push_own_start(struct hd_push_delivery *d);
void hd_push_own_stop(struct hd_push_delivery *d);

#endif
