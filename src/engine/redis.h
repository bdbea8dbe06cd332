/*
 * redis — the Redis engine: events, topics, group rows and records live in
 * Redis, shared by several herald nodes (docs/cluster.md).
 * Layer: engine. Created by main.c with --engine redis; used by the hub
 * through engine.h. Built on redis/rconn.h (hiredis on the loop thread).
 *
 * Layout (every key of a topic shares the hash tag {t:NAME}; every script
 * call's KEYS lie in one Redis Cluster slot, asserted by script_call;
 * docs/cluster.md "Every key" is the full table):
 *   {t:NAME}:m     hash: epoch, created (ms), last (highest offset given),
 *                  top (highest offset visible: confirmed), low (the first
 *                  stored offset, kept by the PUB script: redis_scripts.c)
 *   {t:NAME}:s     stream: one entry per PUB call (topic and batch), id
 *                  LAST-0 (its last offset), holding the events
 *                  LAST-K+1..LAST: fields k (K) and p (their records in
 *                  offset order, each "TIME EXPIRES LEN\n" and LEN bytes
 *                  of the event JSON without topic/offset; TIME stored ms,
 *                  EXPIRES ms or 0); trimmed by MINID so that at least the
 *                  retention cap's events stay
 *   {t:NAME}:b     list: each stream entry's LAST in order, kept only with
 *                  a retention cap (so that a trim knows the new low)
 *   {t:NAME}:d:B   hash "SOURCE\0ID" → "EPOCH:OFFSET:EXPIRES_MS": the ids
 *                  published in dedup bucket B = Redis TIME / window
 *                  (PEXPIRE 2 windows); a publish looks in B and B-1
 *   {t:NAME}:g:G, :gl:G, :gd:G, :ga:G   a pull group's state (redis_groups.c)
 *   herald:topics  sorted set (score 0) of topic names, per shard (ZADD NX
 *                  by the node before the PUB script: another slot)
 *   herald:groups  hash "TOPIC\nNAME" → a pull group row (shard 0)
 *   {herald}:r:KIND / {herald}:rk:KIND   hash key → "MS VALUE" and its key
 *                  index (sorted set, score 0) for records (shard 0)
 *   {herald}:lease:NAME  string "TOKEN OWNER" with PX: an ownership lease
 *   {herald}:lease-token counter of the fencing tokens (shard 0)
 *   {herald}:lease-want:NAME  string OWNER with PX: who asked for lease NAME
 *   (the {herald} tag: a fenced record write, the token counter and the
 *   leases are named by one script call, so they share a slot)
 *   herald:conns:USER, {t:NAME}:presence, herald:node:NODE,
 *   herald:nodekeys:NODE   the connection registry and presence
 *                  (redis_presence.c)
 * PUB/SUB: each shard's channel herald:events carries, per confirm call,
 *   "PREV\nEPOCH\nLAST\nTOPIC\nN\n" then N events, each
 *   "OFFSET TIME EXPIRES LEN\n" and LEN bytes of JSON, in offset order.
 *   PREV is the visible top just before this confirm ran and LAST the top
 *   it raised (so offsets PREV+1..LAST became visible with it: confirms
 *   from several nodes can raise the top out of offset order, and a
 *   batch's duplicates carry no event); offsets in PREV+1..LAST that the
 *   message does not carry are read from the stream. N = 0 is a notice.
 * Each shard's channel herald:notices carries the notice op's messages,
 *   "NODE\nTOPIC\nMSG" on the topic's shard (redis_deliver.c); a node
 *   drops its own.
 */
#ifndef HD_ENGINE_REDIS_H
#define HD_ENGINE_REDIS_H

#include "engine/engine.h"

#include <uv.h>

enum hd_redis_durability { HD_REDIS_REPLICATED, HD_REDIS_PRIMARY, HD_REDIS_NONE };

#define HD_REDIS_SHARDS_MAX 64

struct hd_redis_opts {
	const char *urls;             /* borrowed for the call: "redis://H:P[/DB],…" */
	/* With Sentinels ("H:P,…", borrowed for the call, "" = none): one shard
	 * per name of master_names ("a,b"), found through them; urls unused. */
	const char *sentinels;
	const char *master_names;
	enum hd_redis_durability durability;
	uint32_t wait_timeout_ms;     /* WAIT's timeout (replicated) */
	bool transactions;            /* a publish cycle's writes in MULTI … EXEC */
	size_t max_topics_in_memory;  /* topics whose delivery position is kept */
	hd_topic_policy_fn policy;
	void *policy_arg;
	hd_engine_event_fn on_event;  /* may be NULL */
	void *on_event_arg;
	hd_engine_notice_fn on_notice; /* other nodes' notices; may be NULL */
	void *on_notice_arg;
	const char *node;             /* borrowed for the call: --node-name (registry fields) */
};

/* Parses one "redis://HOST:PORT[/DB]" (PORT defaults to 6379). Returns 0 or
 * HD_ECONFIG. */
int hd_redis_parse_url(const char *url, size_t len, char host[256], int *port, int *db);

/* Connects to every shard (in the background: ready() says when). Returns
 * owned, or NULL with err set for bad options. Loop thread. */
struct hd_engine *hd_redis_engine_new(uv_loop_t *loop, const struct hd_redis_opts *opts,
				      struct hd_error *err);

#endif
