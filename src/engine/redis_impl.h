/*
 * redis_impl — the private insides of the Redis engine (engine/redis.h),
 * shared by the files that implement it. Nothing outside src/engine/redis*.c
 * includes it.
 * Layer: engine. Loop thread only.
 *
 * The engine is one idea split along its parts (redis_publish.c tells the
 * publish design, redis.c the reads'):
 *   redis.c           helpers (sharding, replies, script calls), reads,
 *                     topic operations, life cycle (new, ready, stop, free)
 *                     and the URL parser
 *   redis_publish.c   publish: batches, the PUB/WAIT/CONFIRM/TOPS calls,
 *                     folded cycles, the hold, the MULTI bracket
 *   redis_scripts.c   the Lua scripts' text (their KEYS and ARGV)
 *   redis_deliver.c   live delivery: PUB/SUB messages in offset order per
 *                     topic, gap-filling reads, the connections' up/down
 *   redis_records.c   durable writes (a command, then WAIT when replicated):
 *                     pull group rows and records (fenced by ownership
 *                     leases), the ownership leases themselves
 *   redis_groups.c    pull-group leases shared by every node (glease_op)
 *   redis_presence.c  the connection registry and presence (soft state):
 *                     writes, queries, the heartbeat and the swept
 *                     check/rejoin paging of the beat
 *   redis_online.c    the users_online count (HD_REG_ONLINE queries)
 *   redis_sweep.c     the sweep of dead nodes' entries (their leaves, the
 *                     swept sets) and the clean-up at a node's start
 *   redis_heal.c      once per primary life: raises tops left below stored
 *                     events (a primary restarted from its AOF)
 */
#ifndef HD_ENGINE_REDIS_IMPL_H
#define HD_ENGINE_REDIS_IMPL_H

#include "engine/redis.h"
#include "core/buf.h"
#include "core/map.h"
#include "core/rcbuf.h"
#include "redis/rconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHANNEL "herald:events"
#define NOTICE_CHANNEL "herald:notices" /* the notice op's messages (redis_deliver.c) */
#define TOPICS_KEY "herald:topics"
#define GROUPS_KEY "herald:groups"
#define HEAL_KEY "{herald}:healed" /* per shard: hash run, after[, done] (redis_heal.c) */
#define HEAL_LEASE_KEY "{herald}:heal-lease" /* per shard: "RUNID NODE", PX (redis_heal.c) */
/* The keys that one script call names together with a lease (the token
 * counter, want keys, fenced records) share the hash tag {herald}: one
 * Redis Cluster slot (docs/cluster.md "Data layout"). */
#define LEASE_PREFIX "{herald}:lease:"   /* + the lease name: "TOKEN OWNER", PX ttl */
#define LEASE_TOKEN_KEY "{herald}:lease-token"
#define LEASE_WANT_PREFIX "{herald}:lease-want:" /* + the lease name: who asked for it */
#define RECORD_PREFIX "{herald}:r:"     /* + KIND: hash key → "MS VALUE" */
#define RECORD_INDEX_PREFIX "{herald}:rk:" /* + KIND: its key index (sorted set) */
#define MAX_PENDING 65536          /* commands in flight per connection */
#define POINTS_PER_SHARD 64        /* consistent-hash points per shard */
#define CATCHUP_LIMIT 256          /* events per gap-filling read */
#define ARGS_MAX 16                /* hd_redis_script_call's; _call_n has none */
#define HOLD_MS 2                  /* longest hold of a next batch (replicated) */
#define TOPS_PER_CALL 256          /* meta keys per TOPS script call */
#define NOW_AFTER "9007199254740992" /* an `after` past any offset: no events */
#define CALL_EVENTS_MAX 256        /* events per PUB or CONFIRM call (and message) */
#define CALL_BYTES_MAX (1u << 20)  /* JSON bytes per such call, past its first event */

/* The Lua scripts (redis_scripts.c), by index. */
enum { S_PUB, S_CONFIRM, S_READ, S_DEL, S_RPUT, S_RDEL, S_RLIST, S_OWN, S_UNOWN, S_GLEASE, S_OWNB, S_TOPS, S_HEAL,
       S_HCLAIM, S_COUNT };

struct redis;

struct shard {
	struct redis *r;
	unsigned index;
	char host[256];
	int port;
	int db;
	char master[128];             /* with Sentinels: its name */
	struct hd_rconn *cmd;
	struct hd_rconn *sub;
	bool subscribed;
	/* Group commit (replicated), one WAIT out at a time: the batch's PUB
	 * scripts and one WAIT; then its confirms, with the next batch
	 * written right behind them when items are queued (folded cycles,
	 * redis_publish.c), else a short hold so that the publishers just answered
	 * join the next batch. Items arriving meanwhile wait in the queue. */
	struct pitem *queued_head, **queued_tail;
	size_t nqueued;
	struct pitem *batch;
	bool wait_out;
	size_t confirming;            /* confirms out */
	size_t hold_for;              /* holding: flush once this many are queued */
	struct shard_hold *hold;      /* its timer (owned; closed on stop) */
	/* Topics whose top the last confirms raised: written to the AOF with
	 * the next batch (TOPS script). At most one entry per item. */
	char **tops;
	size_t ntops, captops;
};

/* Where delivery of one topic stands on this node. */
struct dtopic {
	char epoch[HD_EPOCH_LEN + 1];
	uint64_t delivered;   /* handed to on_event up to here */
	uint64_t want;        /* known visible up to here */
	bool reading;         /* a gap-filling read is out */
	bool recheck;         /* PUB/SUB came back: a changed or missing epoch
				 is a deletion whose notice was missed */
	bool again;           /* a message raised want, or PUB/SUB came back,
				 while a read was out: that read may predate
				 them, read once more */
	bool retrying;        /* a failed read's retry timer is armed */
	uint32_t retry_ms;    /* the next retry's backoff (0: none failed) */
	unsigned shard;
};

struct redis {
	struct hd_engine base;
	uv_loop_t *loop;
	struct hd_redis_opts opts;
	struct shard shards[HD_REDIS_SHARDS_MAX];
	unsigned nshards;
	struct point { uint64_t h; unsigned shard; } *points;
	size_t npoints;
	char sha[S_COUNT][41];
	struct hd_map topics;         /* name → struct dtopic */
	size_t evict_cursor;
	bool stopped;
	char node[256];               /* --node-name: names this node's notices */
	struct hd_redis_presence *presence; /* redis_presence.c; NULL once stopped */
	struct hd_redis_heal *heal;   /* redis_heal.c; NULL once stopped */
	struct dtimer *dtimers;       /* redis_deliver.c: retries, held answers */
	unsigned test_read_delay_ms;  /* test-only hooks (redis_deliver.c) */
	unsigned test_read_fail;
	unsigned test_sub_delay_ms;
	bool multi;                   /* --redis-transactions: a cycle's writes in MULTI/EXEC
				         (redis_publish.c) */
};


/* ---- redis.c ----------------------------------------------------------- */

/* The shard that holds topic. */
struct shard *hd_redis_shard_of(struct redis *r, const char *topic);
/* Whether sh's command connection is up and its PUB/SUB one subscribed. */
bool hd_redis_shard_ready(const struct shard *sh);
/* "{t:NAME}:SUFFIX" into out (at least HD_TOPIC_NAME_MAX + 16 bytes);
 * returns its length. */
size_t hd_redis_topic_key(char *out, size_t cap, const char *topic, const char *suffix);
/* 0, or the error a reply stands for (NULL: HD_EUNAVAIL; logged). */
int hd_redis_reply_err(const redisReply *rep);
/* The reply function of a command whose reply only matters as an error
 * (the topic list's ZADD and ZREM, TOPS: the next publish or confirm writes
 * it again): an error reply is logged (hd_redis_reply_err). */
void hd_redis_logged_reply(struct hd_rconn *c, redisReply *rep, void *priv);
/* An integer or numeric text reply as a number (0 otherwise). */
uint64_t hd_redis_rep_u64(const redisReply *rep);
/* A string or status reply's text into out (cut to cap - 1 bytes; "" for
 * any other reply). */
void hd_redis_rep_text(const redisReply *rep, char *out, size_t cap);
/* Runs script on c with nkeys keys then args (texts, lens; copied). fn gets
 * the reply (NULL when the connection failed) exactly once, unless this
 * returns HD_EUNAVAIL. */
int hd_redis_script_call(struct redis *r, struct hd_rconn *c, int script, hd_rconn_reply_fn fn,
			 void *priv, int nargs, const char **args, const size_t *lens, int nkeys);
/* hd_redis_script_call without ARGS_MAX (the caller bounds nargs). */
int hd_redis_script_call_n(struct redis *r, struct hd_rconn *c, int script, hd_rconn_reply_fn fn,
			   void *priv, int nargs, const char **args, const size_t *lens, int nkeys);
/* The stored event's JSON with topic and offset (returned: owned, one ref). */
struct hd_rcbuf *hd_redis_stored_json(const char *topic, uint64_t offset, const char *json,
				      size_t len);
/* The engine's read (engine.h). */
int hd_redis_read(struct hd_engine *e, struct hd_read *rd);
/* ZRANGEBYLEX bounds for names starting with prefix, after `after`. */
void hd_redis_lex_range(const char *prefix, const char *after, char *min, size_t mincap, char *max,
			size_t maxcap);

/* ---- redis_publish.c --------------------------------------------------- */

/* The engine's publish (engine.h). */
int hd_redis_publish(struct hd_engine *e, struct hd_pub *p);
/* At engine start (the shards parsed): empties the shards' queues and reads
 * --redis-transactions. */
void hd_redis_publish_init(struct redis *r);
/* At engine stop, once sh's connections are freed: fails the items queued
 * (HD_EUNAVAIL), closes the hold timer, drops the tops not written. */
void hd_redis_publish_stop(struct shard *sh);

/* ---- redis_scripts.c --------------------------------------------------- */

extern const char *const hd_redis_scripts_text[S_COUNT];
/* The Redis Cluster slot of key (CRC16 of its hash tag, or of the whole
 * key when it has none), 0..16383. */
unsigned hd_redis_scripts_slot(const char *key, size_t len);
/* Whether the n keys lie in one slot (a script call's KEYS must: the Redis
 * Cluster rule that the data layout keeps; script_call asserts it). */
bool hd_redis_scripts_one_slot(const char *const *keys, const size_t *lens, int n);

/* ---- redis_deliver.c --------------------------------------------------- */

/* rconn callbacks (arg: the struct shard): the PUB/SUB connection up and
 * down, and the command connection up (loads the scripts, catches up). */
void hd_redis_deliver_sub_up(struct hd_rconn *c, void *arg);
void hd_redis_deliver_sub_down(struct hd_rconn *c, void *arg);
void hd_redis_deliver_cmd_up(struct hd_rconn *c, void *arg);
/* At engine start: reads the test-only environment hooks. */
void hd_redis_deliver_init(struct redis *r);
/* At engine stop: closes the file's timers (retries, held answers). */
void hd_redis_deliver_stop(struct redis *r);
/* The engine's notice op (engine.h): PUBLISH "NODE\nTOPIC\nMSG" to
 * NOTICE_CHANNEL on the topic's shard; the other nodes' sub_reply hands it
 * to on_notice. */
void hd_redis_deliver_notice(struct hd_engine *e, const char *topic, const char *msg, size_t len);

/* A PUB/SUB message (format in redis.h): its head, then its events. */
struct hd_redis_msg {
	uint64_t prev, last;
	char epoch[HD_EPOCH_LEN + 1];
	char topic[HD_TOPIC_NAME_MAX + 1];
	size_t left;                  /* events not taken yet */
	const char *at, *end;         /* borrowed: the message */
};
struct hd_redis_msg_event {
	uint64_t offset;
	int64_t time_ms, expires_ms;
	const char *json;             /* borrowed: in the message */
	size_t len;
};
/* Reads the head of message p (n bytes, borrowed while m is used).
 * Returns 0, or -1 when it is malformed. */
int hd_redis_deliver_msg_open(struct hd_redis_msg *m, const char *p, size_t n);
/* The next event: 1, 0 after the last, -1 when malformed. */
int hd_redis_deliver_msg_next(struct hd_redis_msg *m, struct hd_redis_msg_event *ev);
/* Appends to b a message's part after "PREV\n" (the confirm script adds
 * that): the head, for n events to be added with hd_redis_deliver_msg_add. */
int hd_redis_deliver_msg_head(struct hd_buf *b, const char *epoch, uint64_t last,
			      const char *topic, size_t n);
int hd_redis_deliver_msg_add(struct hd_buf *b, uint64_t offset, int64_t time_ms,
			     int64_t expires_ms, const char *json, size_t len);

/* ---- redis_records.c --------------------------------------------------- */

/* The engine's group_op and record_op (engine.h). */
int hd_redis_records_group_op(struct hd_engine *e, struct hd_group_op *op);
int hd_redis_records_record_op(struct hd_engine *e, struct hd_record_op *op);
/* The engine's owner_op (engine.h): leases LEASE_PREFIX+name on shard 0. */
int hd_redis_records_owner_op(struct hd_engine *e, struct hd_owner_op *op);
/* The engine's owner_ops (engine.h): one S_OWNB call on shard 0, where
 * every lease lives (a standalone primary: the script may name keys of
 * any slot, as S_OWN does with the token counter). */
int hd_redis_records_owner_ops(struct hd_engine *e, struct hd_owner_op *const *ops, size_t n);

/* ---- redis_groups.c ---------------------------------------------------- */

/* The S_GLEASE script's text. */
extern const char hd_redis_groups_lua[];
/* The engine's glease_op (engine.h). */
int hd_redis_groups_op(struct hd_engine *e, struct hd_glease_op *op);

/* ---- redis_presence.c -------------------------------------------------- */

#define PRESENCE_KEY_MAX 600       /* a registry key or field name's bytes */
#define PRESENCE_NODES_MAX 256     /* other nodes a query or a sweep round checks */

struct pend;
/* The registry's state (owned by redis_presence.c; redis_sweep.c reads the
 * node, the connections and the sweep's pace, and sets sweeping/cleaning). */
struct hd_redis_presence {
	struct redis *r;
	char node[256];
	char token[64];               /* this process's heartbeat value */
	struct hd_map pending;        /* mkey → struct pend */
	struct pend *head, **tail;
	size_t inflight;              /* writes sent, not answered */
	struct hd_map listed;         /* hashes SADDed to herald:nodekeys (value: p) */
	uv_timer_t flush_timer;
	uv_timer_t beat_timer;
	uv_timer_t sweep_timer;
	bool sweeping[HD_REDIS_SHARDS_MAX]; /* a sweep round is out on the shard */
	bool cleaning[HD_REDIS_SHARDS_MAX]; /* the clean-up at start runs: writes wait */
	int open_handles;
	bool armed;
	bool asked;                   /* reg_flush was called since the last batch */
	bool want_all;                /* write every entry again */
	bool want_rejoin;             /* and announce the joins again (engine.h) */
	bool beaten[HD_REDIS_SHARDS_MAX]; /* a beat's swept check answered on the shard */
	struct beat_ctx {
		struct hd_redis_presence *p;
		unsigned shard;
	} beat_ctx[HD_REDIS_SHARDS_MAX];
	unsigned beat_wait;           /* swept checks of this round not answered */
	bool beat_swept;              /* one of them found swept entries */
	bool rejoining;               /* the last round found some too */
	bool want_joins;              /* announce the joins of `left` */
	struct hd_map left;           /* "TOPIC\nCLIENT" the other nodes announced as
				         left, taken from herald:swept:NODE: the
				         joins of the next flush (values: p) */
	/* The sweep's pace (test-only overrides: HERALD_TEST_SWEEP_COUNT,
	 * _WORK, _RETRY_MS; HERALD_TEST_REJOIN_PAGE). */
	char sweep_count[16];
	long sweep_work;
	uint64_t sweep_retry_ms;
	char rejoin_page[16];
	hd_engine_reg_flush_fn fn;
	void *fn_arg;
	bool up_once[HD_REDIS_SHARDS_MAX];
	bool stopped;
	size_t dropped;
	long long warn_ms;
};

/* One command whose reply is only logged when it is an error (counted in
 * p's in-flight writes). Returns 0 or hd_rconn_command's error. */
int hd_redis_presence_send(struct hd_redis_presence *p, struct hd_rconn *c, int argc,
			   const char **argv, const size_t *lens);
/* Sends the queued writes after ms (unless already armed or stopped). */
void hd_redis_presence_arm(struct hd_redis_presence *p, uint64_t ms);
/* Frees the n owned strings of v, then v. */
void hd_redis_presence_strv_free(char **v, size_t n);
/* Returns owned (its heartbeat timer runs); node copied. */
struct hd_redis_presence *hd_redis_presence_new(struct redis *r, const char *node);
/* Drops what is queued and frees p once its timers are closed (the loop
 * runs on); queries still out finish when their connections answer. */
void hd_redis_presence_stop(struct hd_redis_presence *p);
/* Shard's command connection came up (from its on_up). */
void hd_redis_presence_cmd_up(struct hd_redis_presence *p, unsigned shard);
/* The engine's reg_put, reg_flush and reg_query (engine.h). */
void hd_redis_presence_put(struct hd_engine *e, enum hd_reg_kind kind, const char *key,
			   const char *client, const char *value);
void hd_redis_presence_flush(struct hd_engine *e, hd_engine_reg_flush_fn fn, void *arg);
int hd_redis_presence_query(struct hd_engine *e, struct hd_reg_query *q);
bool hd_redis_presence_left(struct hd_engine *e, const char *topic, const char *client);

/* ---- redis_online.c ---------------------------------------------------- */

/* Starts the users_online count of q (HD_REG_ONLINE; q->count, then
 * q->done). Returns 0 (q->done is called once, q->err set), or the error
 * of its first command (q->done not called). */
int hd_redis_online_query(struct hd_redis_presence *p, struct hd_reg_query *q);

/* ---- redis_heal.c ------------------------------------------------------ */

struct hd_redis_heal;
/* Returns owned (its timers are idle until a command connection is up). */
struct hd_redis_heal *hd_redis_heal_new(struct redis *r);
/* Shard's command connection came up (from its on_up): claims the heal of
 * the primary's life (run_id) and, when claimed, heals the shard's topics. */
void hd_redis_heal_cmd_up(struct hd_redis_heal *h, unsigned shard);
/* Stops healing; frees h once its timers are closed (calls still out are
 * answered NULL by the connections' free and ignored). */
void hd_redis_heal_stop(struct hd_redis_heal *h);

/* ---- redis_sweep.c ---------------------------------------------------- */

/* Reads the sweep's test-only pace and starts its timer (a round per
 * SWEEP_MS on every shard); hd_redis_presence_stop closes the timer. */
void hd_redis_sweep_start(struct hd_redis_presence *p);
/* The clean-up at the node's start on shard: removes the fields a previous
 * run of it left in the hashes of its herald:nodekeys set, then the set;
 * the shard's writes wait (p->cleaning) until it ends. */
void hd_redis_sweep_cleanup(struct hd_redis_presence *p, unsigned shard);

#endif
