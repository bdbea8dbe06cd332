/*
 * hub — what the edges talk to: topics, their namespace policies, and the
 * engine behind them.
 * Layer: hub. Created by main.c; called by the edges on the loop thread.
 *
 * The hub validates nothing of the wire formats (the edges do that); it
 * applies namespace options (retention, dedup window, history) and passes
 * publishes, reads and topic operations to the engine. It is also where
 * committed events arrive (hd_hub_on_event) to be fanned out to live
 * subscribers.
 */
#ifndef HD_HUB_H
#define HD_HUB_H

#include "core/buf.h"
#include "core/config.h"
#include "engine/engine.h"
#include "hub/topic_name.h"

struct hd_hub;

/* Returns owned. Borrows cfg for the hub's life. */
struct hd_hub *hd_hub_new(const struct hd_config *cfg);
/* Borrows engine (set once, before any request). */
void hd_hub_set_engine(struct hd_hub *hub, struct hd_engine *engine);
void hd_hub_free(struct hd_hub *hub);

/* The retention policy of a topic from its namespace. Thread-safe (reads only the
 * config); an hd_topic_policy_fn (engine/engine_types.h) with arg = the hub. */
void hd_hub_policy(void *hub, const char *topic, struct hd_topic_policy *out);

/* The namespace options of topic (borrowed from the config). */
const struct hd_ns_opts *hd_hub_ns(const struct hd_hub *hub, const char *topic);

/*
 * The namespace's max-event-size: 0 when an event whose JSON is json_len
 * bytes fits topic's namespace, else HD_ETOOBIG with err naming the size
 * and the limit (and herald_event_size_limit_hits_total counts it).
 * Loop thread (any thread: it reads only the config and a counter).
 */
int hd_hub_event_fits(const struct hd_hub *hub, const char *topic, size_t json_len,
		      struct hd_error *err);

/* Engine hook for each committed event (loop thread). */
void hd_hub_on_event(void *hub, const char *topic, const struct hd_stored_event *ev);

/*
 * A live client connection (a WebSocket session, an SSE stream), known to
 * the hub so that GET /v1/users/{id}/connections and presence can list it.
 * The edge that owns it zeroes it, fills the public part and adds it; it
 * must remove it before freeing it. With an engine shared by several nodes
 * (redis) the hub also writes it to the engine's registry: its listing
 * under its user once per loop turn in which it or its watches changed,
 * and one presence entry per topic watch that names it.
 */
#define HD_USER_ID_MAX 250           /* "user:" + id is a topic name */
#define HD_HUB_CONNS_MAX 1000000

struct hd_conn {
	char id[37];                 /* the client id (a UUID) */
	const char *transport;       /* "websocket", "sse"; static */
	char remote[64];             /* peer "ip:port" */
	int64_t since_ms;            /* connected at */
	char user[HD_USER_ID_MAX + 1]; /* "" when anonymous */
	const char *info;            /* conn info for presence: minified JSON, or NULL; borrowed */
	/* Calls each(arg, topic) for every topic the connection follows. */
	void (*topics)(const struct hd_conn *c, void (*each)(void *arg, const char *topic),
		       void *arg);
	/* Private to the hub: */
	struct hd_conn *uprev, *unext;
	struct hd_user_conns *ulist;
	struct hd_conn *dprev, *dnext; /* in the hub's list of listings to write */
	bool dirty;
	bool added;                  /* between hd_hub_conn_add and _remove */
};

/* Adds c (borrowed until hd_hub_conn_remove); user must be set before. */
void hd_hub_conn_add(struct hd_hub *hub, struct hd_conn *c);
void hd_hub_conn_remove(struct hd_hub *hub, struct hd_conn *c);
/* Calls fn for each connection of user (not for ""), newest first. */
void hd_hub_conns_of_user(struct hd_hub *hub, const char *user,
			  void (*fn)(const struct hd_conn *c, void *arg), void *arg);
/* Connections added and not removed. */
size_t hd_hub_conns(const struct hd_hub *hub);
/* Distinct users (not "") with at least one connection. */
size_t hd_hub_users(const struct hd_hub *hub);
/* The node name connections report (--node-name). */
const char *hd_hub_node(const struct hd_hub *hub);
/* Appends c's listing JSON (an entry of GET /v1/users/{id}/connections:
 * id, transport, remote, since, user, node, topics) to b. */
void hd_hub_conn_json(const struct hd_hub *hub, const struct hd_conn *c, struct hd_buf *b);

/*
 * The connection registry across nodes: a user's connections (HD_REG_USER),
 * a topic's followers (HD_REG_TOPIC) on every node, or the number of
 * distinct users connected to any node (HD_REG_ONLINE, key "": count,
 * no items). The local engine
 * answers from this node's lists before the call returns; the redis engine
 * asks Redis (engine.h's reg_query) and answers later. Request contract as
 * in engine.h: 0 and done() later (or already), or a negative HD_E* and
 * done() never runs. Loop thread.
 */
struct hd_hub_reg_item {
	char *json;                  /* owned: the listing JSON (USER), or
	                              * {"id","transport","user","node"[,"chan_info"][,"info"]}
	                              * (TOPIC; the two infos raw JSON, in this order, last) */
	char id[40];
	char user[HD_USER_ID_MAX + 1];
	char transport[16];
};

struct hd_hub_reg {
	enum hd_reg_kind kind;
	const char *key;             /* the user or the topic; borrowed until done() */
	/* Results: */
	int err;
	struct hd_hub_reg_item *items; /* n, owned by the request (hd_hub_reg_fini);
	                                * TOPIC: sorted by user, then id */
	size_t n;
	uint64_t count;              /* ONLINE: the distinct users */
	void (*done)(struct hd_hub_reg *q);
	void *arg;
	/* Private to the hub: */
	struct hd_reg_query eq;
};

int hd_hub_reg_query(struct hd_hub *hub, struct hd_hub_reg *q);
/* Whether registry queries ask an engine shared by several nodes (they
 * answer later, and cost a round trip to it). */
bool hd_hub_reg_shared(const struct hd_hub *hub);
/* Frees q's items (again: nothing). */
void hd_hub_reg_fini(struct hd_hub_reg *q);
/* The distinct non-anonymous users of a TOPIC answer. */
size_t hd_hub_reg_users(const struct hd_hub_reg *q);

/*
 * A watch: a callback run on the loop thread for every event committed to
 * one topic, in offset order, from the moment it is added. The live
 * deliveries (long-poll, SSE, WebSocket) are built on watches. A fire
 * callback may remove its own watch (or any other) while running. Every
 * module names its fire callback on_watch, so a grep finds them all.
 */
struct hd_watch {
	void (*fire)(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev);
	void *arg;
	const struct hd_conn *conn;  /* the connection it serves, for presence; may be NULL */
	const char *chan_info;       /* the subscription's info for presence (minified JSON,
	                              * Centrifugo's chan_info), or NULL; borrowed */
	bool join_leave;             /* its start and end are announced as a join and a
	                              * leave (a WebSocket client's own subscribe) when the
	                              * namespace has join-leave: presence entries say so,
	                              * so that another node announces the leave of a dead
	                              * node's entry only for these */
	/* Private to the hub: */
	const char *prefix;          /* a prefix watch's (borrowed); NULL for a topic watch */
	struct hd_watch *prev, *next;
	struct hd_watch_list *list;
};

/* Adds w (borrowed until hd_hub_unwatch) to topic's watchers. Returns 0 or
 * HD_ELIMIT when the hub's cap on watched topics is reached. */
int hd_hub_watch(struct hd_hub *hub, const char *topic, struct hd_watch *w);
/* Adds w (borrowed, and prefix with it, until hd_hub_unwatch) to the
 * watchers of every topic whose name starts with prefix, existing or
 * created later: the building block of topic patterns ("orders.*" watches
 * "orders."). Fired after the topic's own watchers; the cost is one prefix
 * compare per committed event and prefix watch. Returns 0, or HD_ELIMIT
 * past HD_HUB_PREFIX_WATCHES_MAX, HD_EINVAL for an empty prefix. Not
 * counted by hd_hub_watchers or presence. */
#define HD_HUB_PREFIX_WATCHES_MAX 10000
int hd_hub_watch_prefix(struct hd_hub *hub, const char *prefix, struct hd_watch *w);
/* Removes w (a topic or a prefix watch); a watch that is not added is
 * ignored. */
void hd_hub_unwatch(struct hd_hub *hub, struct hd_watch *w);
/* Watchers of topic (for presence counts and tests). */
size_t hd_hub_watchers(struct hd_hub *hub, const char *topic);
/*
 * Presence: the connections following topic, each once (an edge never
 * watches one topic twice for one connection), sorted by user so that a
 * user's connections are adjacent. Returns their number and *out (owned,
 * free() it; NULL when none). The pointers are valid until the loop runs
 * again.
 */
size_t hd_hub_presence(struct hd_hub *hub, const char *topic, const struct hd_conn ***out);
/* The distinct non-anonymous users of a presence list from hd_hub_presence. */
size_t hd_hub_presence_users(const struct hd_conn *const *c, size_t n);

/*
 * Topic deletion as an event: the consumers that keep state per topic
 * (pull groups) listen for it instead of the REST handler calling each.
 * fn(arg, topic) runs on the loop thread when hd_hub_topic_op is given an
 * HD_TOPIC_DELETE, before the engine deletes the topic (whatever its
 * outcome), in the order the listeners were added. At most
 * HD_HUB_TOPIC_LISTENERS_MAX; adding more is a programmer error (assert).
 * hd_hub_off_topic_deleted removes the listener of the same fn and arg.
 */
#define HD_HUB_TOPIC_LISTENERS_MAX 8
typedef void (*hd_hub_topic_fn)(void *arg, const char *topic);
void hd_hub_on_topic_deleted(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg);
void hd_hub_off_topic_deleted(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg);

/*
 * A topic is gone: fn(arg, topic) runs on the loop thread after a delete
 * through this node succeeded (before the deleter's done()) and when
 * another node says it deleted one (an engine shared by several nodes),
 * so that every node's subscribers hear of it. Same cap and assert as
 * above; hd_hub_off_topic_gone removes the listener of the same fn and
 * arg.
 */
void hd_hub_on_topic_gone(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg);
void hd_hub_off_topic_gone(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg);

/*
 * Joins and leaves across nodes (a namespace's join-leave): an edge calls
 * hd_hub_join_leave when one of its clients joins or leaves topic (and
 * tells its own subscribers itself); the hub sends it to every other node
 * (nothing with the local engine), whose hub runs the join-leave
 * listeners with it. client, user, conn_info and chan_info are borrowed
 * for the call; user may be ""; conn_info (the connection's info) and
 * chan_info (the subscription's), minified JSON, may be NULL, and one
 * longer than HD_HUB_INFO_MAX is not sent. The notice's text is
 * "join\nCLIENT\nUSER" or "leave\n…", then, when there is an info,
 * "\n" and a JSON object with "info" and/or "chan_info" (a presence
 * entry, as the redis engine's sweep sends, fits too). Same cap and
 * assert as above. Loop thread.
 */
#define HD_HUB_INFO_MAX 4096
#define HD_HUB_NOTICE_MAX (4 * HD_HUB_INFO_MAX) /* a longer join/leave notice is ignored */
/* infos[0, infos_len): another node's object with "info" and/or
 * "chan_info" as it came (unchecked JSON text: the listener checks it), or
 * NULL and 0. */
typedef void (*hd_hub_join_fn)(void *arg, const char *topic, const char *client,
			       const char *user, const char *infos, size_t infos_len, bool join);
void hd_hub_join_leave(struct hd_hub *hub, const char *topic, const char *client,
		       const char *user, const char *conn_info, const char *chan_info, bool join);
void hd_hub_on_join_leave(struct hd_hub *hub, hd_hub_join_fn fn, void *arg);
void hd_hub_off_join_leave(struct hd_hub *hub, hd_hub_join_fn fn, void *arg);
/* The engine's hook for another node's notice (an hd_engine_notice_fn,
 * arg = the hub): runs the listeners above. */
void hd_hub_on_notice(void *hub, const char *topic, const char *msg, size_t len);

/* See engine.h for the request contracts. */
int hd_hub_publish(struct hd_hub *hub, struct hd_pub *p);
int hd_hub_read(struct hd_hub *hub, struct hd_read *r);
int hd_hub_topic_op(struct hd_hub *hub, struct hd_topic_op *op);
int hd_hub_group_op(struct hd_hub *hub, struct hd_group_op *op);
int hd_hub_record_op(struct hd_hub *hub, struct hd_record_op *op);
/* Whether the engine is shared by several nodes (it has ownership
 * leases); hd_hub_owner_op returns HD_ENOTIMPL when it is not. */
bool hd_hub_owner_shared(const struct hd_hub *hub);
int hd_hub_owner_op(struct hd_hub *hub, struct hd_owner_op *op);
/* n (≤ HD_OWNER_BATCH_MAX) ACQUIRE/TAKE ops of one owner in one engine call
 * when the engine has owner_ops, else one owner_op each (engine.h). Returns
 * 0 and each op's done() runs (already, or later), or a negative HD_E* and
 * none does. */
int hd_hub_owner_ops(struct hd_hub *hub, struct hd_owner_op *const *ops, size_t n);

/* Whether the engine keeps pull-group leases (shared by several nodes), and
 * its glease op (engine.h; HD_ENOTIMPL when it does not). Loop thread. */
bool hd_hub_glease_shared(struct hd_hub *hub);
int hd_hub_glease_op(struct hd_hub *hub, struct hd_glease_op *op);
bool hd_hub_ready(struct hd_hub *hub);
/* Whether the engine can take writes; when not, one line saying why into
 * why (cap bytes, NUL-terminated). Loop thread. */
bool hd_hub_ready_why(struct hd_hub *hub, char *why, size_t cap);

#endif
