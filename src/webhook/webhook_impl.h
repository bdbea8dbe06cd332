/*
 * webhook_impl — the private insides of webhook delivery, shared by its files
 * (the public contract is webhook/delivery.h):
 *   lifecycle.c  hd_webhooks_new/start/stop/free; loading the records at start
 *   own.c        ownership between nodes (consume/owner.h): each
 *                subscription's claim, re-reading its record when this node
 *                gains it, stopping when it loses it; the periodic re-list
 *                of the records (subscriptions made or deleted elsewhere)
 *   sub.c        one subscription: new, free, release, activate, kill,
 *                reposition, its secrets and its JSON
 *   pump.c       the delivery pump of one stream: reading the topic (due
 *                retries, new events, read-ahead), the calls, their
 *                outcomes, retries and dead letters; the hub watch (on_watch)
 *   record.c     the durable record: its JSON, coalesced writes, deletes
 *   kids.c       topic patterns: the children (one per matching topic) over
 *                consume/pattern.h's expansion: where each starts, skipped
 *                topics, a gone child's end
 *   ops.c        the admin operations (create, replay, list, info, attempts,
 *                pause, rotate, delete) and the seek by time they use
 * Layer: webhook. Nothing outside src/webhook/ includes this header.
 * Threads: everything here runs on the loop thread.
 *
 * Two roles in one struct (struct hd_webhook_sub):
 *   the subscription — id, config, secrets, state and reason, failure
 *     streak, attempts log and, for a topic pattern, its children;
 *   its stream (struct hd_webhook_stream, member `st`) — one topic's
 *     delivery: the lease window and position, the topic epoch, the calls
 *     and dead letters in flight, the read in flight and the read-ahead,
 *     and the per-topic counters.
 * An exact subscription uses its own stream. A pattern subscription (the
 * parent, `pattern` set) delivers nothing itself: each matching topic gets
 * a child, a struct hd_webhook_sub with `parent` set whose stream delivers
 * that topic (the subscription fields of a child copy the parent's config
 * and id; the parent's secrets, state, streak and attempts log apply).
 */
#ifndef HD_WEBHOOK_IMPL_H
#define HD_WEBHOOK_IMPL_H

#include "webhook/delivery.h"
#include "consume/lease.h"
#include "consume/owned.h"
#include "consume/pattern.h"
#include "consume/relist.h"
#include "core/map.h"
#include "webhook/attempts.h"
#include "webhook/ce_http.h"
#include "webhook/signature.h"

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#define HD_WEBHOOK_EXTRA_HEADERS 8   /* headers a call adds to the encoded event's */
#define HD_WEBHOOK_REASON_MAX 256
#define HD_WEBHOOK_LAST_ERROR_MAX 160
#define HD_WEBHOOK_KEY_MAX (HD_SUB_ID_LEN + 1 + HD_TOPIC_NAME_MAX)
#define HD_WEBHOOK_LIST_PAGE 1000    /* topics or records one list request returns */
#define HD_WEBHOOK_SKIPPED_SHOWN 10  /* skipped topics named in its JSON */

enum hd_webhook_state { HD_WEBHOOK_ACTIVE, HD_WEBHOOK_PAUSED, HD_WEBHOOK_DISABLED };
/* The state's name in the JSON and the record, indexed by the state. */
extern const char *const hd_webhook_sub_state_names[];

struct hd_webhook_secret {
	char text[HD_WHSEC_TEXT_MAX];
	struct hd_whsec key;
	int64_t until_ms;             /* 0: the primary; else signs until then */
};

struct hd_webhook_sub;
struct hd_webhook_multi;
struct hd_webhook_change;

/* A change made on a node that did not deliver the subscription (own.c),
 * kept until the node has taken the lease over and read the record again,
 * then applied on top of it. */
enum {
	HD_WEBHOOK_CHANGE_STATE = 1,   /* state, reason, streak (pause, resume) */
	HD_WEBHOOK_CHANGE_SECRETS = 2, /* rotate */
	HD_WEBHOOK_CHANGE_MOVED = 4,   /* replay: deliver after floor */
};

/* One delivery attempt in flight (on its stream's calls list). */
struct hd_webhook_call {
	struct hd_http_call http;
	struct hd_webhook_sub *s;
	uint64_t offset;
	uint32_t attempt;
	int64_t started_ms;
	struct hd_rcbuf *json;        /* the stored event (a reference) */
	struct hd_ce_http enc;
	struct hd_http_header headers[HD_CE_HTTP_HEADERS_MAX + HD_WEBHOOK_EXTRA_HEADERS];
	char id[128], ts[24], sig[HD_SIGNATURE_HEADER_MAX], attempt_s[16], offset_s[24];
	struct hd_webhook_call *prev, *next;
};

/* One topic's delivery (see the top of this file). */
struct hd_webhook_stream {
	struct hd_lease lease;
	char epoch[HD_EPOCH_LEN + 1];
	uint64_t topic_last;          /* the topic's last offset as far as known */
	bool last_known;
	uint64_t gen;                 /* moves with the position: older reads are ignored */
	/* Counters (durable, in this stream's record). */
	uint64_t delivered, failed_attempts, dead_lettered;
	int64_t last_success_ms, last_failure_ms;
	int last_status;
	char last_error[HD_WEBHOOK_LAST_ERROR_MAX];
	/* Work in flight. */
	struct hd_webhook_call *calls;
	size_t ncalls;
	size_t ndead;                 /* dead-letter publishes */
	bool reading;
	bool pumping, pump_again;
	bool global_wait;             /* stopped by the client's max_inflight */
	bool sub_wait;                /* child: held by the parent's concurrency */
	/* Ordered: the rest of the last read of new events, handed out from
	 * memory one at a time instead of one hub read per event. */
	struct hd_read *ahead;        /* owned (its struct rd); NULL = none */
	size_t ahead_pos;             /* the next event of ahead->events */
	uint64_t ahead_gen;           /* gen when it was read: stale once gen moves */
	bool seeking;                 /* child: waits for its start time to be found */
};

struct hd_webhook_sub {
	struct hd_webhooks *w;
	char id[HD_SUB_ID_LEN + 1];
	char key[HD_WEBHOOK_KEY_MAX + 1]; /* the record key: id, or id/topic */
	struct hd_sub_config cfg;     /* a child: cfg.topic is its topic */
	/* The subscription. */
	struct hd_webhook_secret secrets[HD_SIGNATURE_SECRETS_MAX]; /* newest first */
	size_t nsecrets;
	enum hd_webhook_state state;
	char reason[HD_WEBHOOK_REASON_MAX];
	int64_t created_ms;
	uint32_t streak;              /* dead-lettered in a row (durable) */
	struct hd_attempts attempts;
	/* Its stream (a pattern parent's is unused). */
	struct hd_webhook_stream st;
	/* Waking: the hub watch (a pattern: pt's prefix watch) and the timer. */
	uv_timer_t timer;
	bool timer_closed;
	struct hd_watch watch;
	bool watching;
	/* The durable record's writes (record.c). */
	int puts;                     /* record writes in flight */
	bool dirty;                   /* changed since the last write was issued */
	bool queued;                  /* on w->flushq (holds a ref) */
	struct hd_webhook_sub *fnext; /* next on w->flushq */
	/* Ownership (own.c; a top-level subscription's, children follow
	 * their parent's): delivered and written only while own.claim.held. */
	struct hd_owned own;
	bool unstored;                /* created here, its first write not issued */
	struct hd_webhook_change *change; /* owned; NULL = none (own.c) */
	/* Lifetime. */
	bool deleted;
	int refs;                     /* requests in flight that point here */
	long long warn_ms;
	struct hd_webhook_sub *znext; /* on w->zombies once deleted */
	/* Topic patterns (kids.c): a parent holds the config (cfg.topic the
	 * pattern), expands the pattern (pt: the prefix watch, the topic
	 * list, topic → child) and delivers nothing itself; each matching
	 * topic is a child (parent set). */
	bool pattern;
	struct hd_webhook_sub *parent;
	struct hd_pattern pt;         /* parent: pt.topics: topic → child, at most pattern_topics_max */
	size_t kid_busy;              /* parent: calls and dead letters of every child */
	size_t kid_waiters;           /* parent: children held by kid_busy */
	bool listed;                  /* parent: the first full list is done */
	struct hd_sub_start start;    /* parent: how children of the creation list start */
	bool fresh;                   /* parent: created now (not loaded): start applies */
	struct hd_map skipped_set;    /* parent: topics over the cap (names) */
	uint64_t skipped;
	char skipped_names[HD_WEBHOOK_SKIPPED_SHOWN][HD_TOPIC_NAME_MAX + 1];
	size_t nskipped_names;
};

struct hd_webhooks {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_webhook_opts opts;
	struct hd_http_client *http;
	struct hd_map subs;           /* id → struct hd_webhook_sub */
	struct hd_webhook_sub *zombies; /* deleted, waiting for their requests */
	uv_timer_t flush;             /* writes the records of flushq a little after a change */
	struct hd_webhook_sub *flushq; /* changed subscriptions waiting for their write */
	bool loaded, stopping;
	size_t global_waiters;
	uint64_t rng;
	struct hd_record_op load;
	struct hd_record_op load_kids;
	char load_after[HD_RECORD_KEY_MAX + 1];
	void (*on_loaded)(void *arg);
	void *loaded_arg;
	/* Ownership between nodes (own.c). */
	struct hd_owner *owner;
	struct hd_relist relist;      /* shared engines: re-lists the records */
};

/* Children gathered from a parent's map (for sorting or removal). */
struct hd_webhook_kids_list {
	const struct hd_webhook_sub **a;
	size_t n;
};

/* ---- sub.c ---- */
/* A subscription in w->subs with position floor; NULL past max_subscriptions.
 * Returns borrowed (w owns it). */
struct hd_webhook_sub *hd_webhook_sub_new(struct hd_webhooks *w, const char *id,
					  const struct hd_sub_config *c, uint64_t floor);
/* Frees s and (a parent) its children; nothing may point at them. */
void hd_webhook_sub_free(struct hd_webhook_sub *s);
/* Frees a deleted subscription once nothing points at it. */
void hd_webhook_sub_release(struct hd_webhook_sub *s);
/* Starts (or restarts) delivering. */
void hd_webhook_sub_activate(struct hd_webhook_sub *s);
/* Stops s for good and puts it on the zombies until nothing points at it. */
void hd_webhook_sub_kill(struct hd_webhook_sub *s);
/* Moves s to deliver from offset `first` on. */
void hd_webhook_sub_reposition(struct hd_webhook_sub *s, uint64_t first);
/* Drops secrets past their grace and keeps at most HD_SIGNATURE_SECRETS_MAX. */
void hd_webhook_sub_prune_secrets(struct hd_webhook_sub *s, int64_t now);
/* A secret from text ("" = a new one) into out. */
int hd_webhook_sub_make_secret(const char *text, struct hd_webhook_secret *out,
			       struct hd_error *err);
/* Appends the subscription's JSON; secret (or NULL) only in the answers to
 * create. */
void hd_webhook_sub_json(struct hd_buf *b, const struct hd_webhook_sub *s, const char *secret);

/* ---- pump.c ---- */
/* Sets s's hub watch to call on_watch. */
void hd_webhook_pump_watch_init(struct hd_webhook_sub *s);
/* Starts what s's stream may start now, then arms its timer. */
void hd_webhook_pump(struct hd_webhook_sub *s);
/* Pumps s on the next loop turn, if it may run. */
void hd_webhook_pump_soon(struct hd_webhook_sub *s);
/* Abandons every call in flight; give_back: their events go back to READY. */
void hd_webhook_pump_cancel(struct hd_webhook_sub *s, bool give_back);
/* Frees the read-ahead of s, if any. */
void hd_webhook_pump_drop_ahead(struct hd_webhook_sub *s);

/* ---- record.c ---- */
/* Issues a record op; one the hub refuses at once completes at once. */
void hd_webhook_record_submit(struct hd_webhooks *w, struct hd_record_op *op);
/* Writes s's record now; r (or NULL) is answered status once durable. */
void hd_webhook_record_put(struct hd_webhook_sub *s, struct hd_webhook_reply *r, int status);
/* s's durable state changed: its record is written a little later. */
void hd_webhook_record_changed(struct hd_webhook_sub *s);
/* Deletes the record kind/key; r (or NULL) is answered when it is gone. */
void hd_webhook_record_delete(struct hd_webhooks *w, const char *kind, const char *key,
			      struct hd_webhook_reply *r);

/* ---- own.c ---- */
/* Starts claiming top-level subscription s (sub_new). */
void hd_webhook_own_add(struct hd_webhook_sub *s);
/* Whether s (a child: its parent) may deliver and write its position. */
bool hd_webhook_own_held(const struct hd_webhook_sub *s);
/* A REST change (what: HD_WEBHOOK_CHANGE_*) was made to top-level s in
 * memory. Returns false when this node may write it (the only node, or
 * the owner): go on as usual. Else it is kept, the lease is taken over,
 * and it is applied and written once the record is read again; r (or
 * NULL) is then answered status (true: r is taken). */
bool hd_webhook_own_changed(struct hd_webhook_sub *s, unsigned what,
			    struct hd_webhook_reply *r, int status);
/* Drops s's kept change; its reply (if any) is answered err. */
void hd_webhook_own_forget(struct hd_webhook_sub *s, int err);
/* Makes w's owner and re-list (hd_webhooks_new; w->loop and w->hub set). */
void hd_webhook_own_init(struct hd_webhooks *w);
/* Starts the periodic re-list (shared engines only). */
void hd_webhook_own_start(struct hd_webhooks *w);
/* Stops the re-list timer and every claim (releasing the held ones). */
void hd_webhook_own_stop(struct hd_webhooks *w);

/* ---- lifecycle.c ---- */
/* Applies a subscription record's JSON o (state, reason, streak,
 * secrets, position, counters) to s, dropping its window and calls. */
void hd_webhook_lifecycle_apply(struct hd_webhook_sub *s, json_t *o);
/* Applies a pattern child's record to its parent p (made if missing). */
void hd_webhook_lifecycle_load_kid(struct hd_webhooks *w, const struct hd_record *rec);
/* Makes subscription rec (loaded, or seen by a re-list); NULL if ignored. */
struct hd_webhook_sub *hd_webhook_lifecycle_load_one(struct hd_webhooks *w,
						     const struct hd_record *rec);

/* ---- kids.c ---- */
/* Makes the child of pattern subscription p for topic, delivering after
 * floor. Returns borrowed (p owns it), or NULL when the topic is skipped. */
struct hd_webhook_sub *hd_webhook_kids_add(struct hd_webhook_sub *p, const char *topic,
					   uint64_t floor);
/* Sets up parent p's pattern expansion (p->pt; its callbacks are kids.c's). */
void hd_webhook_kids_init(struct hd_webhook_sub *p);
/* Lists the topics under p's prefix and makes the missing children. */
void hd_webhook_kids_list_start(struct hd_webhook_sub *p);
/* hd_map_each callbacks over a parent's kids: gather into a
 * struct hd_webhook_kids_list; free one; kill one and delete its record. */
void hd_webhook_kids_collect(const char *key, void *value, void *arg);
void hd_webhook_kids_free_one(const char *key, void *value, void *arg);
void hd_webhook_kids_kill_one(const char *key, void *value, void *arg);

/* ---- ops.c ---- */
/* Answers r with status, or with err and a message. */
void hd_webhook_ops_reply(struct hd_webhook_reply *r, int status);
void hd_webhook_ops_reply_err(struct hd_webhook_reply *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Finds where child s starts (the first event at or after time_ms) and
 * moves it there; s waits meanwhile (seeking). m (or NULL): part of a replay. */
void hd_webhook_ops_kid_seek(struct hd_webhook_sub *s, int64_t time_ms,
			     struct hd_webhook_multi *m);

#endif
