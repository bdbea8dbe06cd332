/*
 * ws_edge_impl — the private parts of the Centrifugo session (edge/ws_edge.h),
 * shared by the files that implement it, as http/server_impl.h is for the
 * HTTP server. Nothing outside src/edge/ws_*.c includes it.
 * Layer: edge. Loop thread only.
 *
 * A session (over a WebSocket or an emulation stream, in JSON or protobuf) is
 * one idea split by role; every part reads and writes the same struct
 * session and its invariants (one op in flight, live vs held events):
 *   ws_edge.c      the edge, the session's life cycle and carriers, input
 *                  and the pump
 *   ws_output.c    codecs, frames and replies, the push frame cache, deltas
 *   ws_subs.c      subscriptions, hub watches, join/leave, their expiry, the
 *                  reads that set up and recover subscriptions (the op's steps)
 *   ws_commands.c  the commands and the app-backend proxy hooks
 */
#ifndef HD_EDGE_WS_EDGE_IMPL_H
#define HD_EDGE_WS_EDGE_IMPL_H

#include "edge/ws_edge.h"
#include "edge/ws_emulation.h"
#include "edge/cproxy.h"
#include "auth/acl.h"
#include "auth/jwt.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/rcbuf.h"
#include "core/uuid.h"
#include "http/query.h"
#include "http/websocket.h"
#include "proto/centrifuge.h"
#include "proto/centrifuge_codec.h"
#include "proto/centrifuge_pb.h"
#include "proto/cloudevent.h"
#include "proto/fossil.h"

#include <assert.h>
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_CACHE 64                 /* shared push frames kept, by event */
#define REPLY_MAX (HD_READ_BYTES_MAX + 1024 * 1024) /* one reply (a recovery) */
#define HISTORY_MAX 1000               /* events in one history reply */
/* Longest conn info (the connect token's or proxy's `info`, minified JSON)
 * put in presence, join and leave; a longer one is left out of them. */
#define CONN_INFO_MAX 4096
/* A server-side refresh due while a command runs waits this long again. */
#define REFRESH_RETRY_MS 50
#define STREAMS_MAX (1u << 20)         /* emulated sessions (each is also a connection) */
#define READ_TOP_AFTER ((uint64_t)INT64_MAX) /* a read past every offset: only the position */
#define VERSION "herald " HD_VERSION
/* The epoch replied for a topic that does not exist yet (real epochs are 16
 * hex digits, so it never equals one). A recover that sends it back matches
 * whatever the topic is now: the topic was created after that subscribe. */
#define EPOCH_NEW "new"

struct session;

/*
 * A wire format of the Centrifugo protocol: JSON in text frames or
 * protobuf (varint-delimited) in binary frames, chosen at the upgrade
 * (the centrifuge-protobuf subprotocol or ?format=protobuf). The session
 * runs the same commands for both; only decoding and these encoders differ.
 */
enum format { F_JSON = HD_CENTRIFUGE_FORMAT_JSON, F_PB = HD_CENTRIFUGE_FORMAT_PROTOBUF, F_COUNT };

/*
 * What carries a session (ws_edge.h): a WebSocket (frames both ways), or
 * one of the SDK's emulation transports, where the server's replies go
 * down one streaming HTTP response (HTTP-streaming: the replies as the
 * format writes them, JSON ones '\n'-terminated; SSE: one "data:" event per
 * JSON reply) and the client's commands come as POST /emulation requests
 * (edge/ws_emulation.c). Only carrier_frame, session_close and the ping
 * differ by carrier; the session's commands do not.
 */
enum carrier { C_WS, C_STREAM, C_SSE, C_COUNT };





/* One subscription. Server-side ones (user:U, token channels) are made at
 * connect; client ones by subscribe. */
struct chan_sub {
	struct hd_watch watch;     /* watch.arg = this; watch.conn = &session->conn */
	struct session *s;
	uint64_t cursor;           /* the last offset sent (or the position replied) */
	bool live;                 /* the reply went out: fired events are sent */
	bool server_side;
	bool join_leave;           /* the client asked for join/leave pushes */
	bool announce;             /* its own join and leave are announced (the namespace's
	                            * join-leave or an override.join_leave; = watch.join_leave) */
	bool delta;                /* fossil delta compression negotiated */
	struct hd_rcbuf *base;     /* delta: the last event sent (a reference), or NULL */
	bool overflow;             /* more than HD_WS_EDGE_HELD_MAX fired while not live */
	struct hd_stored_event *held; /* fired while not live; json referenced */
	size_t nheld, capheld;
	char epoch[HD_EPOCH_LEN + 1];
	char *chan_info;           /* the subscribe proxy's or subscription token's info (owned,
	                            * minified JSON, at most CONN_INFO_MAX; a sub-refresh proxy
	                            * may replace it) or NULL; watch.chan_info: presence, join
	                            * and leave carry it */
	int64_t expire_at;         /* monotonic ms: the subscribe proxy's expire_at, when the
	                            * sub-refresh proxy is asked or it ends; 0 = never (also
	                            * while the sub-refresh call is out) */
	char name[];               /* the topic */
};

/* Recovery parameters of one subscribe. */
struct sub_init {
	struct chan_sub *sub;
	const char *data;              /* the reply's data for it (a connect token's subs claim; */
	size_t data_len;               /* borrowed from the session), or NULL */
	bool recover;
	bool reject_unrecovered;       /* flag 2: error 112 instead of recovered:false */
	bool unrecoverable;            /* set when recovery failed and reject_unrecovered */
	uint64_t offset;
	char epoch[HD_EPOCH_LEN + 1];
	struct hd_centrifuge_sub_result res;   /* filled when its read is done */
	struct hd_read r;              /* its events back the publications of res */
	struct hd_centrifuge_pub *pubs;
};

/* A command that waits for the hub. */
struct op {
	struct session *s;             /* NULL once the session is gone */
	enum hd_centrifuge_method method;
	uint32_t id;
	/* connect / subscribe: the subscriptions being set up, one read each */
	struct sub_init *inits;
	size_t ninits, next;
	uint32_t ttl;
	bool expires;
	/* history */
	struct hd_read r;
	bool reverse;
	int32_t limit;
	char epoch[HD_EPOCH_LEN + 1];
	/* publish */
	struct hd_cloudevent_batch batch;
	struct hd_pub pub;
	struct hd_pub_item item;
	char topic[HD_TOPIC_NAME_MAX + 1];
	/* waiting for the app backend (edge/cproxy.h): the command, decoded
	 * again when the answer comes */
	char *line;
	size_t line_len;
	char *reply_data;              /* the backend's result.data for the reply, or NULL */
	size_t reply_data_len;
	/* presence / presence_stats: the registry look-up (topic in `topic`) */
	struct hd_hub_reg reg;
};

enum state { S_NEW, S_READY, S_CLOSING };

struct session {
	struct hd_ws_edge *edge;
	struct hd_http_request *req;   /* NULL once closed */
	struct hd_conn conn;
	struct hd_websocket_decoder *dec;
	enum format format;
	enum carrier carrier;
	const struct hd_centrifuge_codec *codec; /* hd_centrifuge_codec_of(format) */
	char token[37];                /* emulation: the session id /emulation names (secret) */
	uv_timer_t timer;              /* timer.data = this; its close callback frees */
	struct session *prev, *next;   /* in edge->sessions while req is set */
	enum state state;
	bool timer_closed;
	bool pumping;
	bool read_paused;
	bool ping_out;                 /* a ping awaits its pong */
	bool registered;               /* conn is known to the hub */
	bool slow;                     /* close 3008 from the timer (see broadcast) */
	struct op *op;                 /* the command in flight */
	struct hd_buf inbox;           /* commands not yet handled: '\n'-separated lines (JSON)
					* or varint-delimited messages (protobuf) */
	struct chan_sub **subs;
	size_t nsubs, capsubs;
	int64_t connect_due;           /* monotonic ms */
	int64_t ping_due, pong_due;
	int64_t expire_at;             /* monotonic ms; 0 = never */
	int64_t token_exp;             /* the token's exp, Unix seconds; 0 = none */
	char **channels;               /* the connect token's channels (and subs) claim (owned); */
	size_t nchannels;              /* NULL = none */
	struct hd_jwt_sub *chan_opts;  /* the token's subs claim: nchannels options, parallel to
					* channels (owned); NULL = none */
	int64_t sub_expire_at;         /* monotonic ms: the earliest expire_at of its
					* subscriptions (or earlier: a removed one's); 0 = none */
	bool server_refresh;           /* the expiry is a connect proxy's and the refresh proxy
					* extends it (not the client) */
	char *conn_info;               /* the token's or connect proxy's info (owned, minified
					* JSON, at most CONN_INFO_MAX); NULL = none. conn.info */
	struct hd_bucket publish_bucket; /* opts.publish_rate */
	struct hd_cproxy_headers *proxy_headers; /* the client's headers a connect proxy
						  * call forwards (owned), until connected */
	const char *line;              /* the command running (run_line), borrowed */
	size_t line_len;
};

struct frame_slot {
	struct hd_rcbuf *json;         /* a reference: the key stays unique while cached */
	struct hd_rcbuf *base;         /* delta frames: the event it is a delta from (a reference) */
	struct hd_rcbuf *frame[C_COUNT][F_COUNT]; /* encoded when a subscriber of the kind needs it */
};

struct hd_ws_edge {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_ws_edge_opts opts;
	struct session *sessions;
	size_t count;
	struct hd_map streams;         /* emulated sessions by token (values borrowed) */
	bool stopping;
	struct frame_slot cache[FRAME_CACHE];
	struct frame_slot delta_cache[FRAME_CACHE]; /* delta-compressed frames, by (event, base) */
};

extern const char *const hd_ws_edge_carrier_names[C_COUNT];

/* ws_edge.c */
int64_t hd_ws_edge_mono(void);
void hd_ws_edge_pump(struct session *s);
void hd_ws_edge_session_close(struct session *s, uint16_t code, const char *reason);
/* Frees the session's server-side channels and their options (channels,
 * chan_opts) and empties them. */
void hd_ws_edge_channels_free(struct session *s);
void hd_ws_edge_on_timer(uv_timer_t *t);
void hd_ws_edge_timer_arm(struct session *s);

/* ws_output.c */
struct hd_rcbuf *hd_ws_output_carrier_frame(enum carrier c, enum format f, const char *payload, size_t n);
void hd_ws_output_send_reply(struct session *s, const struct hd_buf *b);
void hd_ws_output_reply_error(struct session *s, uint32_t id, uint32_t code, const char *msg, bool temp);
void hd_ws_output_reply_empty(struct session *s, uint32_t id, enum hd_centrifuge_method m);
void hd_ws_output_slot_clear(struct frame_slot *c);
bool hd_ws_output_topic_payload(const struct hd_ws_edge *e, const char *topic);
void hd_ws_output_deliver(struct chan_sub *sub, const struct hd_stored_event *ev);

/* ws_subs.c */
void hd_ws_subs_sub_drop_held(struct chan_sub *sub);
struct chan_sub *hd_ws_subs_sub_find(struct session *s, const char *topic);
/* chan_info[0, chan_info_len): the subscription's info (copied; NULL or
 * longer than CONN_INFO_MAX: none). announce: 1 or 0 (a subs option's
 * override.join_leave) whether the client's join and leave on topic are
 * announced, -1 as topic's namespace says (join-leave). */
struct chan_sub *hd_ws_subs_sub_add(struct session *s, const char *topic, bool server_side,
				    const char *chan_info, size_t chan_info_len, int announce);
void hd_ws_subs_sub_remove(struct session *s, struct chan_sub *sub);
/* Replaces sub's chan_info (and its watch's) by info[0, n) (copied; NULL or
 * longer than CONN_INFO_MAX: none). */
void hd_ws_subs_chan_info_set(struct chan_sub *sub, const char *info, size_t n);
/* Sets s->sub_expire_at to its subscriptions' earliest expire_at and arms
 * the session's timer. */
void hd_ws_subs_expiry_arm(struct session *s);
/* sub expired: its leave is announced, it is removed, and the client gets
 * the unsubscribe push 2501 "subscription expired" (Centrifugo's SDKs
 * subscribe again, which asks the subscribe proxy again). The push may
 * close a slow session. */
void hd_ws_subs_expire(struct session *s, struct chan_sub *sub);
void hd_ws_subs_conn_topics(const struct hd_conn *c, void (*each)(void *arg, const char *topic), void *arg);
int hd_ws_subs_allowed(const struct session *s, const char *topic, enum hd_acl_op op,
			const char *sub_channel);
void hd_ws_subs_join_leave(struct hd_ws_edge *e, const struct session *from, const struct chan_sub *sub,
			   bool join);
/* The hub's listeners (arg: the edge): another node's join or leave, and a
 * deleted topic (this node's or another's). */
#define HD_WS_UNSUB_TOPIC_DELETED 2500 /* Centrifugo's "insufficient state": the SDK resubscribes */
#define HD_WS_UNSUB_EXPIRED 2501       /* Centrifugo's "subscription expired": the SDK resubscribes */
void hd_ws_subs_on_join_leave(void *arg, const char *topic, const char *client, const char *user,
			      const char *infos, size_t infos_len, bool join);
void hd_ws_subs_on_topic_gone(void *arg, const char *topic);
void hd_ws_subs_op_free(struct op *op);
bool hd_ws_subs_op_orphaned(struct op *op);
void hd_ws_subs_op_step(struct op *op);

/* ws_commands.c */
const char *hd_ws_commands_request_header(void *arg, const char *lname);
void hd_ws_commands_run_line(struct session *s, const char *line, size_t len);
/* The session's expiry came and s->server_refresh: asks the refresh proxy
 * (as the session's op; none may be running). */
void hd_ws_commands_refresh(struct session *s);
/* A subscription's expiry came (s->sub_expire_at passed; no op running):
 * asks the sub-refresh proxy about the first expired one (as the session's
 * op), or ends the expired ones when there is no such proxy; then arms the
 * timer for the next. */
void hd_ws_commands_sub_expiry(struct session *s);

#endif
