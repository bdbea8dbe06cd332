/*
 * engine — the seam between the hub and where events live.
 * Layer: engine. The hub calls it; implementations are engine/local.c (the
 * embedded SQLite store, one node) and, later, a Redis engine (several
 * nodes); engine/engine.c holds what they share (the *_fini clean-ups).
 * The types the requests carry are in engine/engine_types.h. Edges never
 * include this header directly except through hub.h.
 *
 * Every call runs on the loop thread, and every completion callback runs on
 * the loop thread. A call that returns 0 completes later (or, for reads the
 * engine can answer from memory, before it returns) by calling the request's
 * done(); a call that returns a negative HD_E* code never calls done().
 * Requests are owned by the caller and must stay valid until done() runs.
 */
#ifndef HD_ENGINE_H
#define HD_ENGINE_H

#include "core/err.h"
#include "proto/cloudevent.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stdint.h>

/* One event of a publish and its outcome. */
struct hd_pub_item {
	const char *topic;            /* borrowed */
	const struct hd_event *event; /* borrowed */
	int64_t stored_ms;            /* the publish time */
	/* Results: */
	int err;                      /* 0 or HD_E* */
	uint64_t offset;              /* assigned, or the original's for a duplicate */
	bool duplicate;
	char epoch[HD_EPOCH_LEN + 1];
};

struct hd_pub {
	struct hd_pub_item *items;    /* borrowed, n entries */
	size_t n;
	void (*done)(struct hd_pub *p);
	void *arg;                    /* the caller's */
	void *priv;                   /* the engine's */
};

/* A history read: events with offset > after, at most limit. */
struct hd_read {
	const char *topic;            /* borrowed */
	uint64_t after;
	uint32_t limit;
	/* Results: */
	int err;
	struct hd_stored_event *events; /* owned by the request; free with hd_engine_read_fini */
	size_t n;
	bool exists;
	bool truncated;               /* events after `after` were removed by retention */
	uint64_t last;                /* the topic's last offset */
	uint64_t next;                /* the cursor to continue from */
	char epoch[HD_EPOCH_LEN + 1];
	bool from_memory;             /* served by the ring */
	void (*done)(struct hd_read *r);
	void *arg;
	void *priv;
};

void hd_engine_read_fini(struct hd_read *r);

enum hd_topic_op_kind { HD_TOPIC_INFO, HD_TOPIC_LIST, HD_TOPIC_DELETE };

struct hd_topic_op {
	enum hd_topic_op_kind kind;
	const char *topic;            /* INFO, DELETE; borrowed */
	const char *prefix;           /* LIST; borrowed */
	const char *after;            /* LIST: names after this one ("" from the start) */
	size_t limit;                 /* LIST: at most this many (≤ 1000) */
	/* Results: */
	int err;                      /* HD_ENOTFOUND for INFO/DELETE of an unknown topic */
	struct hd_topic_info *topics; /* INFO: 1, LIST: n; owned by the request */
	size_t n;
	void (*done)(struct hd_topic_op *op);
	void *arg;
	void *priv;
};

void hd_engine_topic_op_fini(struct hd_topic_op *op);

/* Durable state of pull consumer groups (struct hd_group_row).
 * PUT: insert or replace `row`, done() after it is durable (like a publish);
 * DELETE: remove row.topic/row.name (err HD_ENOTFOUND when absent);
 * LIST: every group, at most limit, into rows. */
enum hd_group_op_kind { HD_GROUP_PUT, HD_GROUP_DELETE, HD_GROUP_LIST };

struct hd_group_op {
	enum hd_group_op_kind kind;
	struct hd_group_row row;      /* PUT, DELETE; row.acked borrowed until done() */
	size_t limit;                 /* LIST */
	/* Results: */
	int err;
	struct hd_group_row *rows;    /* LIST: n, owned by the request */
	size_t n;
	void (*done)(struct hd_group_op *op);
	void *arg;
	void *priv;
};

/* Frees a LIST's rows. */
void hd_engine_group_op_fini(struct hd_group_op *op);

/* Modules' small durable records (struct hd_record: webhook
 * subscriptions, user cursors). PUT: insert or replace rec, done() after it
 * is durable; DELETE: remove rec.kind/rec.key (err HD_ENOTFOUND when
 * absent); GET: rec.kind/rec.key into recs[0] (n = 1, or err
 * HD_ENOTFOUND); LIST: records of rec.kind whose key starts with prefix and
 * sorts after `after`, in key order, at most limit, into recs. */
enum hd_record_op_kind { HD_RECORD_PUT, HD_RECORD_DELETE, HD_RECORD_GET, HD_RECORD_LIST };

struct hd_record_op {
	enum hd_record_op_kind kind;
	struct hd_record rec;         /* rec.value borrowed until done() (PUT) */
	const char *prefix;           /* LIST; borrowed; NULL = "" */
	const char *after;            /* LIST; borrowed; NULL = "" */
	size_t limit;                 /* LIST */
	/* PUT as a compare-and-set: when expect_set, written only if the
	 * stored value equals expect (NULL: only if there is none); else err
	 * stays 0 and conflict is set. Engines shared by several nodes (redis)
	 * check it atomically; the local engine, whose one node's callers
	 * serialise a key's writes on the loop (edge/cursors.c), skips it. */
	bool expect_set;
	const char *expect;           /* borrowed until done() */
	/* Results: */
	int err;
	bool conflict;                /* PUT with expect_set: not written */
	struct hd_record *recs;       /* GET: 1, LIST: n; owned by the request */
	size_t n;
	void (*done)(struct hd_record_op *op);
	void *arg;
	void *priv;
};

/* Frees a GET's or LIST's records. */
void hd_engine_record_op_fini(struct hd_record_op *op);

/*
 * The connection registry and presence of engines shared by several nodes
 * (redis; the ops are NULL in the local engine, whose one node answers from
 * the hub's own lists). Soft state: writes are neither durable nor
 * acknowledged, they are queued and sent in batches once per loop turn.
 * An entry is (kind, key, client) → value: HD_REG_USER keys a user's
 * connections (value: the listing JSON of GET /v1/users/{id}/connections),
 * HD_REG_TOPIC a topic's followers (value: {"id","transport","user","node"}).
 * A query returns the values of every live node's entries of one key.
 */
enum hd_reg_kind { HD_REG_USER, HD_REG_TOPIC };

#define HD_REG_QUERY_MAX 10000        /* values a query returns at most */

struct hd_reg_query {
	enum hd_reg_kind kind;
	const char *key;              /* borrowed until done() */
	/* Results: */
	int err;
	char **values;                /* n, each owned by the request */
	size_t n;
	void (*done)(struct hd_reg_query *q);
	void *arg;
	void *priv;
};

/* Frees a query's values. */
void hd_engine_reg_query_fini(struct hd_reg_query *q);

/* Runs before each batch of registry writes goes out: all = true after a
 * reconnect to Redis (write every entry again: a failover may have lost
 * them), else false (write what changed since the last call). */
typedef void (*hd_engine_reg_flush_fn)(void *arg, bool all);

struct hd_engine;

struct hd_engine_ops {
	const char *name;
	int (*publish)(struct hd_engine *e, struct hd_pub *p);
	int (*read)(struct hd_engine *e, struct hd_read *r);
	int (*topic_op)(struct hd_engine *e, struct hd_topic_op *op);
	int (*group_op)(struct hd_engine *e, struct hd_group_op *op);
	int (*record_op)(struct hd_engine *e, struct hd_record_op *op);
	/* Whether the engine can take writes (for /readyz). */
	bool (*ready)(struct hd_engine *e);
	/* Finishes every accepted publish (their done() runs), then stops. Blocks briefly. */
	void (*stop)(struct hd_engine *e);
	/* Stops, then frees once every read or look-up still running on the
	 * thread pool has finished (their done() runs, later, on the loop;
	 * calls made from them get HD_EUNAVAIL). The loop must run on until
	 * then. */
	void (*free)(struct hd_engine *e);
	/* The registry (see above); all three NULL in an engine of one node.
	 * reg_put: value (NULL: remove the entry) copied; sent in this loop
	 * turn's batch, a later put of the same entry in the same turn wins.
	 * reg_flush: asks for a batch in this loop turn; fn(arg, …) runs
	 * before it goes out (and before every later batch; the last fn
	 * given wins).
	 * reg_query: engine.h's request contract. */
	void (*reg_put)(struct hd_engine *e, enum hd_reg_kind kind, const char *key,
			const char *client, const char *value);
	void (*reg_flush)(struct hd_engine *e, hd_engine_reg_flush_fn fn, void *arg);
	int (*reg_query)(struct hd_engine *e, struct hd_reg_query *q);
};

struct hd_engine {
	const struct hd_engine_ops *ops;
};

/* Called by an engine for each committed event, on the loop thread, in
 * offset order per topic: the hub's fan-out hook. */
typedef void (*hd_engine_event_fn)(void *arg, const char *topic, const struct hd_stored_event *ev);

static inline int hd_engine_publish(struct hd_engine *e, struct hd_pub *p) { return e->ops->publish(e, p); }
static inline int hd_engine_read(struct hd_engine *e, struct hd_read *r) { return e->ops->read(e, r); }
static inline int hd_engine_topic_op(struct hd_engine *e, struct hd_topic_op *op) { return e->ops->topic_op(e, op); }
static inline int hd_engine_group_op(struct hd_engine *e, struct hd_group_op *op) { return e->ops->group_op(e, op); }
static inline int hd_engine_record_op(struct hd_engine *e, struct hd_record_op *op) { return e->ops->record_op(e, op); }

#endif
