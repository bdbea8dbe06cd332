/*
 * ws_edge — see ws_edge.h.
 *
 * One file of about 1,700 lines because it is one idea, a Centrifugo
 * session (over a WebSocket or an emulation stream, in JSON or protobuf),
 * laid out from low level to high: formats and carriers, output
 * frames, subscriptions and their hub watches, join/leave, the reads that
 * recover a subscription, the commands (connect, subscribe, history,
 * publish, presence, refresh), input, then the session's life cycle. Every
 * part reads and writes the same struct session and its invariants (one op
 * in flight, live vs held events); split, they would only meet again in a
 * private header.
 */
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
enum format { F_JSON, F_PB, F_COUNT };

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

static const char *const carrier_names[C_COUNT] = {"websocket", "http_stream", "sse"};

struct codec {
	uint8_t opcode;            /* HD_WEBSOCKET_TEXT or _BINARY */
	int (*decode)(const char *p, size_t n, struct hd_centrifuge_command *cmd, struct hd_error *err);
	int (*reply_error)(struct hd_buf *b, uint32_t id, uint32_t code, const char *message, bool temporary);
	int (*reply_empty)(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m);
	int (*reply_connect)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r);
	int (*reply_subscribe)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r);
	int (*reply_history)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
			     const char *epoch, uint64_t offset);
	int (*reply_presence)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c, size_t n);
	int (*reply_presence_stats)(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users);
	int (*reply_sub_refresh)(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl);
	int (*reply_refresh)(struct hd_buf *b, uint32_t id, const char *client, const char *version, bool expires,
			     uint32_t ttl);
	int (*push_pub)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub);
	int (*push_join)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
	int (*push_leave)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
	int (*push_disconnect)(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect);
	int (*reply_rpc)(struct hd_buf *b, uint32_t id, const char *data, size_t n);
};

static int pb_decode(const char *p, size_t n, struct hd_centrifuge_command *cmd, struct hd_error *err)
{
	return hd_centrifuge_pb_decode((const uint8_t *)p, n, cmd, err);
}

static const struct codec codecs[F_COUNT] = {
	[F_JSON] = {HD_WEBSOCKET_TEXT, hd_centrifuge_decode, hd_centrifuge_reply_error, hd_centrifuge_reply_empty,
		    hd_centrifuge_reply_connect, hd_centrifuge_reply_subscribe, hd_centrifuge_reply_history,
		    hd_centrifuge_reply_presence, hd_centrifuge_reply_presence_stats,
		    hd_centrifuge_reply_sub_refresh, hd_centrifuge_reply_refresh,
		    hd_centrifuge_push_pub, hd_centrifuge_push_join, hd_centrifuge_push_leave,
		    hd_centrifuge_push_disconnect, hd_centrifuge_reply_rpc},
	[F_PB] = {HD_WEBSOCKET_BINARY, pb_decode, hd_centrifuge_pb_reply_error, hd_centrifuge_pb_reply_empty,
		  hd_centrifuge_pb_reply_connect, hd_centrifuge_pb_reply_subscribe, hd_centrifuge_pb_reply_history,
		  hd_centrifuge_pb_reply_presence, hd_centrifuge_pb_reply_presence_stats,
		  hd_centrifuge_pb_reply_sub_refresh, hd_centrifuge_pb_reply_refresh, hd_centrifuge_pb_push_pub, hd_centrifuge_pb_push_join,
		  hd_centrifuge_pb_push_leave, hd_centrifuge_pb_push_disconnect, hd_centrifuge_pb_reply_rpc},
};

/* One subscription. Server-side ones (user:U, token channels) are made at
 * connect; client ones by subscribe. */
struct chan_sub {
	struct hd_watch watch;     /* watch.arg = this; watch.conn = &session->conn */
	struct session *s;
	uint64_t cursor;           /* the last offset sent (or the position replied) */
	bool live;                 /* the reply went out: fired events are sent */
	bool server_side;
	bool join_leave;           /* the client asked for join/leave pushes */
	bool delta;                /* fossil delta compression negotiated */
	struct hd_rcbuf *base;     /* delta: the last event sent (a reference), or NULL */
	bool overflow;             /* more than HD_WS_EDGE_HELD_MAX fired while not live */
	struct hd_stored_event *held; /* fired while not live; json referenced */
	size_t nheld, capheld;
	char epoch[HD_EPOCH_LEN + 1];
	char name[];               /* the topic */
};

/* Recovery parameters of one subscribe. */
struct sub_init {
	struct chan_sub *sub;
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
};

enum state { S_NEW, S_READY, S_CLOSING };

struct session {
	struct hd_ws_edge *edge;
	struct hd_http_request *req;   /* NULL once closed */
	struct hd_conn conn;
	struct hd_websocket_decoder *dec;
	enum format format;
	enum carrier carrier;
	const struct codec *codec;     /* &codecs[format] */
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
	char **channels;               /* the connect token's channels claim (owned); NULL = none */
	size_t nchannels;
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

static void pump(struct session *s);
static void session_close(struct session *s, uint16_t code, const char *reason);
static void timer_arm(struct session *s);
static void on_timer(uv_timer_t *t);
static struct chan_sub *sub_find(struct session *s, const char *topic);

struct hd_ws_edge *hd_ws_edge_new(uv_loop_t *loop, struct hd_hub *hub,
				  const struct hd_ws_edge_opts *opts)
{
	struct hd_ws_edge *e = hd_calloc(1, sizeof(*e));
	e->loop = loop;
	e->hub = hub;
	e->opts = *opts;
	hd_map_init(&e->streams, STREAMS_MAX);
	if (!e->opts.max_message)
		e->opts.max_message = HD_WEBSOCKET_MESSAGE_MAX_DEFAULT;
	return e;
}

size_t hd_ws_edge_sessions(const struct hd_ws_edge *e)
{
	return e->count;
}

static int64_t mono(void)
{
	return (int64_t)hd_mono_ms();
}

/* ---- Output ------------------------------------------------------------- */

/* One encoded message payload[0, n) of format f as carrier c sends it,
 * in a new buffer: a WebSocket frame (text or binary), a stream chunk, or
 * an SSE event. */
static struct hd_rcbuf *carrier_frame(enum carrier c, enum format f, const char *payload, size_t n)
{
	uint8_t head[HD_WEBSOCKET_HEADER_MAX];
	const char *pre = "", *post = "";
	size_t hl = 0;
	if (c == C_WS) {
		hl = hd_websocket_frame_header(head, codecs[f].opcode, n);
	} else if (c == C_SSE) {
		pre = "data: "; /* JSON only: a reply has no raw newline */
		post = "\n\n";
	} else if (f == F_JSON) {
		post = "\n";
	}
	size_t pl = strlen(pre), tl = strlen(post);
	struct hd_rcbuf *r = hd_rcbuf_new(hl + pl + n + tl);
	memcpy(r->data, head, hl);
	memcpy(r->data + hl, pre, pl);
	memcpy(r->data + hl + pl, payload, n);
	memcpy(r->data + hl + pl + n, post, tl);
	return r;
}

/* Queues f (a reference is taken). Returns false when the session was
 * closed for it (slow consumer) or is closing. */
static bool send_frame(struct session *s, struct hd_rcbuf *f)
{
	if (!s->req || s->state == S_CLOSING)
		return false;
	int rc = hd_http_stream_write(s->req, f);
	if (rc == HD_ELIMIT) {
		hd_metrics_inc(HD_M_slow_consumer_disconnects_total);
		hd_log_info("ws slow consumer client=%s remote=%s pending=%zu", s->conn.id,
			    s->conn.remote, hd_http_stream_pending(s->req));
		session_close(s, HD_CENTRIFUGE_DISC_SLOW, "slow");
		return false;
	}
	return rc == 0;
}

/* Sends the encoded reply in b as one frame of the session's format. */
static void send_reply(struct session *s, const struct hd_buf *b)
{
	if (b->len == 0) {
		/* The reply did not fit REPLY_MAX: the client would wait for it. */
		session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "reply too large");
		return;
	}
	struct hd_rcbuf *f = carrier_frame(s->carrier, s->format, b->data, b->len);
	send_frame(s, f);
	hd_rcbuf_unref(f);
}

static void reply_error(struct session *s, uint32_t id, uint32_t code, const char *msg, bool temp)
{
	struct hd_buf b;
	hd_buf_init(&b, 4096);
	hd_metrics_inc(HD_M_ws_errors_total);
	if (s->codec->reply_error(&b, id, code, msg, temp))
		hd_buf_reset(&b);
	send_reply(s, &b);
	hd_buf_fini(&b);
}

static void reply_empty(struct session *s, uint32_t id, enum hd_centrifuge_method m)
{
	struct hd_buf b;
	hd_buf_init(&b, 256);
	s->codec->reply_empty(&b, id, m);
	send_reply(s, &b);
	hd_buf_fini(&b);
}

static void slot_clear(struct frame_slot *c)
{
	if (c->json)
		hd_rcbuf_unref(c->json);
	if (c->base)
		hd_rcbuf_unref(c->base);
	for (size_t k = 0; k < C_COUNT; k++)
		for (size_t i = 0; i < F_COUNT; i++)
			if (c->frame[k][i])
				hd_rcbuf_unref(c->frame[k][i]);
	memset(c, 0, sizeof(*c));
}

/* Whether publications of topic carry the payload (ws-publication). */
static bool topic_payload(const struct hd_ws_edge *e, const char *topic)
{
	return strcmp(hd_hub_ns(e->hub, topic)->ws_publication, "envelope") != 0;
}

/* The shared push frame of ev on topic in format fmt for carrier car:
 * encoded once per kind (only when a subscriber of that kind asks), cached
 * by the event's JSON buffer. Returns a new reference. */
static struct hd_rcbuf *push_frame(struct hd_ws_edge *e, const char *topic,
				   const struct hd_stored_event *ev, enum carrier car, enum format fmt)
{
	size_t slot = ((uintptr_t)ev->json >> 4) % FRAME_CACHE;
	struct frame_slot *c = &e->cache[slot];
	if (c->json != ev->json) {
		slot_clear(c);
		c->json = hd_rcbuf_ref(ev->json);
	}
	if (c->frame[car][fmt])
		return hd_rcbuf_ref(c->frame[car][fmt]);

	struct hd_buf b;
	struct hd_centrifuge_pub pub = {.data = ev->json->data, .len = ev->json->len, .offset = ev->offset,
				       .payload = topic_payload(e, topic)};
	hd_buf_init(&b, ev->json->len + 1024);
	codecs[fmt].push_pub(&b, topic, &pub);
	struct hd_rcbuf *f = carrier_frame(car, fmt, b.data, b.len);
	hd_buf_fini(&b);
	hd_metrics_inc(HD_M_ws_push_encodes_total);
	c->frame[car][fmt] = hd_rcbuf_ref(f);
	return f;
}

/*
 * The push frame of ev for delta subscribers whose last publication was
 * base (NULL: none yet): a fossil delta from base's text when that is
 * smaller, else the whole text, as a JSON string. Subscribers in step
 * share one base, so the delta is computed once per publication per topic
 * and kind of subscriber (format × carrier). In protobuf the data is the
 * same text's bytes, or the delta's with Publication.delta set. Returns a
 * new reference.
 */
static struct hd_rcbuf *delta_frame(struct hd_ws_edge *e, const char *topic, const struct hd_stored_event *ev,
				    struct hd_rcbuf *base, enum carrier car, enum format fmt)
{
	size_t slot = (((uintptr_t)ev->json >> 4) ^ ((uintptr_t)base >> 4)) % FRAME_CACHE;
	struct frame_slot *c = &e->delta_cache[slot];
	if (c->json != ev->json || c->base != base) {
		slot_clear(c);
		c->json = hd_rcbuf_ref(ev->json);
		c->base = base ? hd_rcbuf_ref(base) : NULL;
	}
	if (c->frame[car][fmt])
		return hd_rcbuf_ref(c->frame[car][fmt]);

	bool payload = topic_payload(e, topic);
	struct hd_centrifuge_pub pub = {.data = ev->json->data, .len = ev->json->len, .offset = ev->offset,
				       .payload = payload, .as_string = true};
	struct hd_buf d, b;
	hd_buf_init(&d, ev->json->len + 1024);
	if (base) {
		struct hd_centrifuge_pub prev = {.data = base->data, .len = base->len, .payload = payload};
		const char *from, *to;
		size_t fn, tn;
		hd_centrifuge_pub_text(&prev, &from, &fn);
		hd_centrifuge_pub_text(&pub, &to, &tn);
		if (hd_fossil_delta(from, fn, to, tn, &d) == 0 && d.len < tn) {
			pub.delta = d.data;
			pub.delta_len = d.len;
		}
	}
	hd_buf_init(&b, 6 * ev->json->len + 1024); /* a JSON string escapes each byte to at most 6 */
	codecs[fmt].push_pub(&b, topic, &pub);
	struct hd_rcbuf *f = carrier_frame(car, fmt, b.data, b.len);
	hd_buf_fini(&b);
	hd_buf_fini(&d);
	hd_metrics_inc(HD_M_ws_push_encodes_total);
	c->frame[car][fmt] = hd_rcbuf_ref(f);
	return f;
}

/* Sends ev to a live subscription if it is new to it. */
static void deliver(struct chan_sub *sub, const struct hd_stored_event *ev)
{
	if (ev->offset <= sub->cursor)
		return;
	sub->cursor = ev->offset;
	struct hd_rcbuf *f;
	if (sub->delta) {
		f = delta_frame(sub->s->edge, sub->name, ev, sub->base, sub->s->carrier, sub->s->format);
		if (sub->base)
			hd_rcbuf_unref(sub->base);
		sub->base = hd_rcbuf_ref(ev->json);
	} else {
		f = push_frame(sub->s->edge, sub->name, ev, sub->s->carrier, sub->s->format);
	}
	send_frame(sub->s, f);
	hd_rcbuf_unref(f);
}

/* ---- Subscriptions ------------------------------------------------------ */

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct chan_sub *sub = w->arg;
	if (sub->live) {
		deliver(sub, ev);
		return;
	}
	if (sub->overflow)
		return;
	if (sub->nheld == HD_WS_EDGE_HELD_MAX) {
		sub->overflow = true;
		return;
	}
	if (sub->nheld == sub->capheld) {
		sub->capheld = sub->capheld ? sub->capheld * 2 : 8;
		sub->held = hd_realloc(sub->held, sub->capheld * sizeof(*sub->held));
	}
	sub->held[sub->nheld] = *ev;
	hd_rcbuf_ref(ev->json);
	sub->nheld++;
}

static void sub_drop_held(struct chan_sub *sub)
{
	for (size_t i = 0; i < sub->nheld; i++)
		hd_rcbuf_unref(sub->held[i].json);
	free(sub->held);
	sub->held = NULL;
	sub->nheld = sub->capheld = 0;
}

static struct chan_sub *sub_find(struct session *s, const char *topic)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strcmp(s->subs[i]->name, topic) == 0)
			return s->subs[i];
	return NULL;
}

/* Adds and watches a subscription. Returns it, or NULL when the hub's cap
 * on watched topics is reached. */
static struct chan_sub *sub_add(struct session *s, const char *topic, bool server_side)
{
	size_t len = strlen(topic);
	struct chan_sub *sub = hd_calloc(1, sizeof(*sub) + len + 1);
	sub->s = s;
	sub->server_side = server_side;
	memcpy(sub->name, topic, len + 1);
	sub->watch.fire = on_watch;
	sub->watch.arg = sub;
	sub->watch.conn = &s->conn;
	if (hd_hub_watch(s->edge->hub, topic, &sub->watch)) {
		free(sub);
		return NULL;
	}
	if (s->nsubs == s->capsubs) {
		s->capsubs = s->capsubs ? s->capsubs * 2 : 4;
		s->subs = hd_realloc(s->subs, s->capsubs * sizeof(*s->subs));
	}
	s->subs[s->nsubs++] = sub;
	return sub;
}

static void sub_free(struct session *s, struct chan_sub *sub)
{
	hd_hub_unwatch(s->edge->hub, &sub->watch);
	sub_drop_held(sub);
	if (sub->base)
		hd_rcbuf_unref(sub->base);
	free(sub);
}

static void sub_remove(struct session *s, struct chan_sub *sub)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		if (s->subs[i] == sub) {
			s->subs[i] = s->subs[--s->nsubs];
			break;
		}
	}
	sub_free(s, sub);
}

/* The subscription's reply went out: sends what fired meanwhile, then
 * goes live. Returns false when the session was closed. */
static bool sub_go_live(struct session *s, struct chan_sub *sub)
{
	if (sub->overflow) {
		session_close(s, HD_CENTRIFUGE_DISC_INSUFFICIENT_STATE, "insufficient state");
		return false;
	}
	sub->live = true;
	/* A slow-consumer close frees sub: check the session before each use. */
	for (size_t i = 0;; i++) {
		if (!s->req)
			return false;
		if (i == sub->nheld)
			break;
		deliver(sub, &sub->held[i]);
	}
	sub_drop_held(sub);
	return true;
}

static void conn_topics(const struct hd_conn *c, void (*each)(void *arg, const char *topic), void *arg)
{
	const struct session *s = (const struct session *)((const char *)c - offsetof(struct session, conn));
	for (size_t i = 0; i < s->nsubs; i++)
		each(arg, s->subs[i]->name);
}

/*
 * Whether the session may do op on topic (auth/acl.h: user:{id} is the
 * user's alone, then the namespace rule). sub_channel is the channel of a
 * verified subscription token, or NULL. Returns 0 or an HD_E* refusal.
 */
static int allowed(const struct session *s, const char *topic, enum hd_acl_op op,
		   const char *sub_channel)
{
	struct hd_acl_subject who = {
		.user = s->conn.user,
		.channels = s->channels,
		.nchannels = s->nchannels,
		.sub_channel = sub_channel,
		.subscribed = sub_find((struct session *)s, topic) != NULL,
	};
	return hd_acl_check(hd_hub_ns(s->edge->hub, topic), topic, op, &who);
}

/* ---- Join and leave ------------------------------------------------------ */

/*
 * Tells every other WebSocket subscriber of topic that asked for it that
 * `from` joined or left. A receiver that is too slow is closed from its
 * timer, not here: closing changes the topic's watchers, and this may run
 * while one session is being released.
 */
static void join_leave(struct hd_ws_edge *e, const struct session *from, const char *topic, bool join)
{
	if (e->stopping || !hd_hub_ns(e->hub, topic)->join_leave)
		return;
	const struct hd_conn **c;
	size_t n = hd_hub_presence(e->hub, topic, &c);
	struct hd_rcbuf *frames[C_COUNT][F_COUNT] = {{0}};
	for (size_t i = 0; i < n; i++) {
		if (c[i] == &from->conn || c[i]->topics != conn_topics) /* not a session of this edge */
			continue;
		struct session *to = (struct session *)((const char *)c[i] - offsetof(struct session, conn));
		struct chan_sub *sub = sub_find(to, topic);
		if (!sub || !sub->live || !sub->join_leave || !to->req || to->slow || to->state == S_CLOSING)
			continue;
		struct hd_rcbuf **f = &frames[to->carrier][to->format];
		if (!*f) {
			struct hd_buf b;
			struct hd_centrifuge_client_info info = {.client = from->conn.id, .user = from->conn.user};
			hd_buf_init(&b, 2048);
			if (join)
				to->codec->push_join(&b, topic, &info);
			else
				to->codec->push_leave(&b, topic, &info);
			*f = carrier_frame(to->carrier, to->format, b.data, b.len);
			hd_buf_fini(&b);
		}
		if (hd_http_stream_write(to->req, *f) == HD_ELIMIT) {
			to->slow = true;
			uv_timer_start(&to->timer, on_timer, 0, 0);
		}
	}
	for (size_t k = 0; k < C_COUNT; k++)
		for (size_t i = 0; i < F_COUNT; i++)
			if (frames[k][i])
				hd_rcbuf_unref(frames[k][i]);
	free(c);
}

/* ---- Reads for subscribe and connect ------------------------------------ */

static void op_free(struct op *op)
{
	for (size_t i = 0; i < op->ninits; i++) {
		hd_engine_read_fini(&op->inits[i].r);
		free(op->inits[i].pubs);
	}
	free(op->inits);
	hd_engine_read_fini(&op->r);
	hd_cloudevent_batch_fini(&op->batch);
	free(op->line);
	free(op->reply_data);
	free(op);
}

/* Decides one subscription's reply from its read (see ws_edge.h). */
static void init_result(struct session *s, struct sub_init *in)
{
	struct hd_read *r = &in->r;
	struct hd_centrifuge_sub_result *res = &in->res;
	struct chan_sub *sub = in->sub;

	res->channel = sub->name;
	res->recoverable = true;
	res->positioned = true;
	res->delta = sub->delta;
	snprintf(sub->epoch, sizeof(sub->epoch), "%s", r->epoch[0] ? r->epoch : EPOCH_NEW);
	res->epoch = sub->epoch;
	res->offset = r->last;
	sub->cursor = r->last;
	if (!in->recover)
		return;
	res->was_recovering = true;
	hd_metrics_inc(HD_M_ws_recoveries_total);
	/* A position past 0 needs its epoch: without one it names nothing
	 * herald can check. Offset 0 (getState's "from the start") needs none. */
	bool epoch_ok = in->epoch[0] ? strcmp(in->epoch, sub->epoch) == 0 || strcmp(in->epoch, EPOCH_NEW) == 0
				     : in->offset == 0;
	bool ok = !r->truncated && in->offset <= r->last && r->n <= s->edge->opts.recover_max && epoch_ok;
	if (ok && r->n > 0 && r->events[r->n - 1].offset != r->last) {
		/* The read stopped early (count or byte cap) unless the rest
		 * expired by TTL, which a shorter read than asked shows. */
		size_t bytes = 0;
		for (size_t i = 0; i < r->n; i++)
			bytes += r->events[i].json->len;
		ok = r->n < r->limit && bytes < HD_READ_BYTES_MAX / 2;
	}
	if (!ok) {
		hd_metrics_inc(HD_M_ws_recovery_failures_total);
		in->unrecoverable = in->reject_unrecovered;
		return;
	}
	res->recovered = true;
	res->offset = in->offset;
	if (r->n) {
		bool payload = topic_payload(s->edge, sub->name);
		in->pubs = hd_calloc(r->n, sizeof(*in->pubs));
		for (size_t i = 0; i < r->n; i++) {
			in->pubs[i].data = r->events[i].json->data;
			in->pubs[i].len = r->events[i].json->len;
			in->pubs[i].offset = r->events[i].offset;
			in->pubs[i].payload = payload;
			in->pubs[i].as_string = sub->delta; /* whole: the SDK's delta base */
		}
		res->pubs = in->pubs;
		res->npubs = r->n;
		/* The client advances its offset with each publication. */
		sub->cursor = r->events[r->n - 1].offset;
		if (sub->delta) {
			if (sub->base)
				hd_rcbuf_unref(sub->base);
			sub->base = hd_rcbuf_ref(r->events[r->n - 1].json);
		}
	}
}

static void op_step(struct op *op);

static void init_read_done(struct hd_read *r)
{
	struct op *op = r->arg;
	struct session *s = op->s;
	struct sub_init *in = &op->inits[op->next];

	if (s && s->req) {
		if (r->err) {
			/* Leave the rest to op_step: the reply is an error. */
			in->res.channel = NULL;
		} else {
			init_result(s, in);
		}
	}
	op->next++;
	op_step(op);
}

/* Sends the reply of a connect or subscribe whose reads are all done. */
static void op_reply_subs(struct session *s, struct op *op)
{
	struct hd_buf b;
	hd_buf_init(&b, REPLY_MAX);
	for (size_t i = 0; i < op->ninits; i++) {
		if (!op->inits[i].res.channel) {
			/* A read failed: the store is broken; let the client retry. */
			for (size_t j = 0; j < op->ninits; j++)
				sub_remove(s, op->inits[j].sub);
			if (op->method == HD_CENTRIFUGE_CONNECT) {
				session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "internal error");
			} else {
				reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
			}
			hd_buf_fini(&b);
			return;
		}
	}
	if (op->method == HD_CENTRIFUGE_CONNECT) {
		struct hd_centrifuge_sub_result *subs = hd_calloc(op->ninits ? op->ninits : 1, sizeof(*subs));
		for (size_t i = 0; i < op->ninits; i++)
			subs[i] = op->inits[i].res;
		struct hd_centrifuge_connect_result cr = {
			.client = s->conn.id,
			.version = VERSION,
			.expires = op->expires,
			.ttl = op->ttl,
			.ping = s->edge->opts.ping_interval_ms / 1000,
			.pong = true,
			.session = s->token[0] ? s->token : NULL,
			.node = hd_hub_node(s->edge->hub),
			.subs = subs,
			.nsubs = op->ninits,
			.data = op->reply_data,
			.data_len = op->reply_data_len,
		};
		if (s->codec->reply_connect(&b, op->id, &cr))
			hd_buf_reset(&b);
		free(subs);
	} else if (op->inits[0].unrecoverable) {
		/* The client asked (getState) to reload rather than resume. */
		sub_remove(s, op->inits[0].sub);
		hd_buf_fini(&b);
		reply_error(s, op->id, HD_CENTRIFUGE_ERR_UNRECOVERABLE_POSITION, "unrecoverable position", false);
		return;
	} else {
		struct hd_centrifuge_sub_result res = op->inits[0].res;
		res.channel = NULL;
		res.data = op->reply_data;
		res.data_len = op->reply_data_len;
		if (s->codec->reply_subscribe(&b, op->id, &res))
			hd_buf_reset(&b);
	}
	send_reply(s, &b);
	hd_buf_fini(&b);
	for (size_t i = 0; i < op->ninits && s->req; i++)
		if (!sub_go_live(s, op->inits[i].sub))
			return;
	if (op->method == HD_CENTRIFUGE_SUBSCRIBE && s->req)
		join_leave(s->edge, s, op->inits[0].sub->name, true);
}

/* Whether op's session ended while op waited for the hub; then frees op. */
static bool op_orphaned(struct op *op)
{
	struct session *s = op->s;
	if (s && s->req)
		return false;
	if (s)
		s->op = NULL;
	op_free(op);
	return true;
}

/* Issues the next read of a connect/subscribe, or replies when all are done. */
static void op_step(struct op *op)
{
	struct session *s = op->s;
	if (op_orphaned(op))
		return;
	while (op->next < op->ninits) {
		struct sub_init *in = &op->inits[op->next];
		in->r.topic = in->sub->name;
		in->r.after = in->recover ? in->offset : READ_TOP_AFTER;
		in->r.limit = in->recover ? s->edge->opts.recover_max + 1 : 1;
		in->r.done = init_read_done;
		in->r.arg = op;
		if (hd_hub_read(s->edge->hub, &in->r) == 0)
			return; /* init_read_done continues (maybe already did) */
		in->res.channel = NULL;
		op->next++;
	}
	op_reply_subs(s, op);
	s->op = NULL;
	op_free(op);
	pump(s);
}

/* ---- Proxies to the app backend (edge/cproxy.h) -------------------------- */

static void connect_accept(struct session *s, const struct hd_centrifuge_command *cmd, int64_t exp,
			   const char *data, size_t n);
static void subscribe_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			     size_t n);
static void publish_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			   size_t n);
static struct op *op_new(struct session *s, const struct hd_centrifuge_command *cmd);

static const char *request_header(void *arg, const char *lname)
{
	return hd_http_header_get(arg, lname);
}

/* The app backend answered the command op waits for: acts on it. */
static void proxy_done(void *arg, const struct hd_cproxy_answer *a)
{
	struct op *op = arg;
	struct session *s = op->s;
	struct hd_centrifuge_command cmd;
	struct hd_error err = {0};

	if (op_orphaned(op))
		return;
	s->op = NULL;
	/* The line decoded when it came: it decodes again. */
	int rc = s->codec->decode(op->line, op->line_len, &cmd, &err);
	assert(rc == 0);
	(void)rc;
	op_free(op);
	if (a->outcome == HD_CPROXY_FAILED) {
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_INTERNAL, "internal server error: the app backend failed",
			    true);
	} else if (a->outcome == HD_CPROXY_ERROR) {
		reply_error(s, cmd.id, a->code, a->message, false);
	} else if (a->outcome == HD_CPROXY_DISCONNECT) {
		session_close(s, (uint16_t)a->code, a->message);
	} else if (cmd.method == HD_CENTRIFUGE_CONNECT) {
		snprintf(s->conn.user, sizeof(s->conn.user), "%s", a->user);
		if (a->nchannels) {
			s->channels = hd_calloc(a->nchannels, sizeof(*s->channels));
			for (size_t i = 0; i < a->nchannels; i++)
				s->channels[i] = hd_strdup(a->channels[i]);
			s->nchannels = a->nchannels;
		}
		connect_accept(s, &cmd, a->expire_at, a->data, a->data_len);
	} else if (cmd.method == HD_CENTRIFUGE_SUBSCRIBE) {
		subscribe_accept(s, &cmd, a->data, a->data_len);
	} else if (cmd.method == HD_CENTRIFUGE_PUBLISH) {
		publish_accept(s, &cmd, a->data ? a->data : cmd.data.p, a->data ? a->data_len : cmd.data.n);
	} else {
		struct hd_buf b;
		hd_buf_init(&b, REPLY_MAX);
		if (s->codec->reply_rpc(&b, cmd.id, a->data, a->data_len))
			hd_buf_reset(&b);
		send_reply(s, &b);
		hd_buf_fini(&b);
	}
	hd_centrifuge_command_fini(&cmd);
	if (!s->op)
		pump(s);
}

/*
 * Sends the running command (cmd, with data[0, n)) to the app backend when
 * kind is proxied: returns true when the command is handled that way (it
 * waits for the answer as the session's op, or the call could not start
 * and the error went out); false when kind is not proxied.
 */
static bool proxy_start(struct session *s, const struct hd_centrifuge_command *cmd, enum hd_cproxy_kind kind,
			const char *data, size_t n)
{
	struct hd_cproxy *p = s->edge->opts.cproxy;
	if (!hd_cproxy_enabled(p, kind))
		return false;
	struct hd_cproxy_req r = {
		.kind = kind,
		.client = s->conn.id,
		.transport = carrier_names[s->carrier],
		.protocol = s->format == F_PB ? "protobuf" : "json",
		.binary = s->format == F_PB,
		.user = s->conn.user,
		.channel = kind == HD_CPROXY_SUBSCRIBE || kind == HD_CPROXY_PUBLISH ? cmd->sub.channel : NULL,
		.method = kind == HD_CPROXY_RPC ? cmd->rpc_method : NULL,
		.name = kind == HD_CPROXY_CONNECT ? cmd->name : NULL,
		.version = kind == HD_CPROXY_CONNECT ? cmd->version : NULL,
		.data = data,
		.data_len = n,
		.get = kind == HD_CPROXY_CONNECT ? hd_cproxy_headers_get : NULL,
		.get_arg = s->proxy_headers,
	};
	struct op *op = op_new(s, cmd);
	op->line = hd_malloc(s->line_len);
	memcpy(op->line, s->line, s->line_len);
	op->line_len = s->line_len;
	int rc = hd_cproxy_send(p, &r, proxy_done, op);
	if (rc) {
		s->op = NULL;
		op_free(op);
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		if (rc == HD_ELIMIT)
			reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS,
				    "too many requests: app backend calls in flight (--proxy-max-inflight)", true);
		else if (rc == HD_EINVAL)
			reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "bad request: not UTF-8", false);
		else
			reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal server error", true);
	}
	return true;
}

/* ---- Commands ----------------------------------------------------------- */

static struct op *op_new(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct op *op = hd_calloc(1, sizeof(*op));
	op->s = s;
	op->id = cmd->id;
	op->method = cmd->method;
	s->op = op;
	return op;
}

/* Keeps data[0, n) (or nothing when NULL) as op's reply data. */
static void op_keep_data(struct op *op, const char *data, size_t n)
{
	if (!data)
		return;
	op->reply_data = hd_malloc(n);
	memcpy(op->reply_data, data, n);
	op->reply_data_len = n;
}

/* Adds the subscription set-up of topic to op (recovery from req if any). */
static bool op_add_init(struct op *op, struct chan_sub *sub, const struct hd_centrifuge_sub_req *req)
{
	struct sub_init *in = &op->inits[op->ninits++];
	in->sub = sub;
	if (req && req->recover) {
		in->recover = true;
		in->offset = req->offset;
		snprintf(in->epoch, sizeof(in->epoch), "%s", req->epoch);
		in->reject_unrecovered = (req->flag & HD_CENTRIFUGE_SUB_FLAG_REJECT_UNRECOVERED) != 0;
	}
	return true;
}

static const struct hd_centrifuge_sub_req *connect_sub_req(const struct hd_centrifuge_command *cmd, const char *topic)
{
	for (size_t i = 0; i < cmd->nsubs; i++)
		if (strcmp(cmd->subs[i].channel, topic) == 0)
			return &cmd->subs[i];
	return NULL;
}

static void cmd_connect(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct hd_ws_edge *e = s->edge;
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	int64_t now_s = hd_now_ms() / 1000;

	if (s->state != S_NEW) {
		session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "already connected");
		return;
	}
	memset(&claims, 0, sizeof(claims));
	if (!cmd->token[0] && proxy_start(s, cmd, HD_CPROXY_CONNECT, cmd->data.p, cmd->data.n))
		return;
	if (!cmd->token[0]) {
		if (!e->opts.anonymous) {
			session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "token required");
			return;
		}
	} else {
		int rc = hd_jwt_verify(e->opts.keys, cmd->token, strlen(cmd->token), now_s, &claims, &err);
		if (rc == HD_EEXPIRED) {
			hd_jwt_claims_fini(&claims);
			reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
			return;
		}
		if (rc) {
			hd_log_info("ws invalid token client=%s remote=%s: %s", s->conn.id, s->conn.remote,
				    err.msg);
			hd_jwt_claims_fini(&claims);
			session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "invalid token");
			return;
		}
		if (strlen(claims.sub) > HD_USER_ID_MAX || strchr(claims.sub, ':')) {
			hd_jwt_claims_fini(&claims);
			session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "invalid token: bad sub");
			return;
		}
		snprintf(s->conn.user, sizeof(s->conn.user), "%s", claims.sub);
		/* Kept for the `token` namespace rule of later subscribes. */
		if (claims.nchannels) {
			s->channels = claims.channels;
			s->nchannels = claims.nchannels;
			claims.channels = NULL;
			claims.nchannels = 0;
		}
	}
	int64_t exp = claims.exp;
	hd_jwt_claims_fini(&claims);
	connect_accept(s, cmd, exp, NULL, 0);
}

/* A connect whose user (conn.user, channels) is known: registers the
 * session and sets up its server-side subscriptions; exp: Unix s or 0;
 * data[0, n): the reply's data (a connect proxy's), or NULL. */
static void connect_accept(struct session *s, const struct hd_centrifuge_command *cmd, int64_t exp,
			   const char *data, size_t n)
{
	struct hd_ws_edge *e = s->edge;
	int64_t now_s = hd_now_ms() / 1000;

	s->state = S_READY;
	s->connect_due = 0;
	hd_cproxy_headers_free(s->proxy_headers);
	s->proxy_headers = NULL;
	hd_hub_conn_add(e->hub, &s->conn);
	s->registered = true;

	/* Server-side subscriptions: user:U and the token's channels. */
	struct op *op = op_new(s, cmd);
	op_keep_data(op, data, n);
	op->inits = hd_calloc(1 + s->nchannels, sizeof(*op->inits));
	if (s->conn.user[0]) {
		char topic[HD_TOPIC_NAME_MAX + 1];
		snprintf(topic, sizeof(topic), "user:%s", s->conn.user);
		if (hd_topic_name_check(topic, strlen(topic), NULL) == 0) {
			struct chan_sub *sub = sub_add(s, topic, true);
			if (sub)
				op_add_init(op, sub, connect_sub_req(cmd, topic));
		}
	}
	for (size_t i = 0; i < s->nchannels; i++) {
		const char *t = s->channels[i];
		if (hd_topic_name_check(t, strlen(t), NULL) || sub_find(s, t) ||
		    allowed(s, t, HD_ACL_SUBSCRIBE, NULL) ||
		    s->nsubs >= e->opts.max_subscriptions)
			continue;
		struct chan_sub *sub = sub_add(s, t, true);
		if (sub)
			op_add_init(op, sub, connect_sub_req(cmd, t));
	}
	if (exp) {
		s->token_exp = exp;
		op->expires = true;
		op->ttl = exp > now_s ? (uint32_t)(exp - now_s) : 1;
		s->expire_at = mono() + (exp - now_s) * 1000 + e->opts.expiry_grace_ms;
	}
	s->ping_due = mono() + e->opts.ping_interval_ms;
	timer_arm(s);
	op_step(op);
}

static void cmd_refresh(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	int64_t now_s = hd_now_ms() / 1000;

	memset(&claims, 0, sizeof(claims));
	int rc = hd_jwt_verify(s->edge->opts.keys, cmd->token, strlen(cmd->token), now_s, &claims, &err);
	if (rc == HD_EEXPIRED) {
		hd_jwt_claims_fini(&claims);
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
		return;
	}
	if (rc || strcmp(claims.sub, s->conn.user) != 0) {
		hd_jwt_claims_fini(&claims);
		session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, rc ? "invalid token" : "token of another user");
		return;
	}
	uint32_t ttl = 0;
	if (claims.exp) {
		s->token_exp = claims.exp;
		ttl = claims.exp > now_s ? (uint32_t)(claims.exp - now_s) : 1;
		s->expire_at = mono() + (claims.exp - now_s) * 1000 + s->edge->opts.expiry_grace_ms;
	} else {
		s->token_exp = 0;
		s->expire_at = 0;
	}
	hd_jwt_claims_fini(&claims);
	struct hd_buf b;
	hd_buf_init(&b, 1024);
	s->codec->reply_refresh(&b, cmd->id, s->conn.id, VERSION, ttl != 0, ttl);
	send_reply(s, &b);
	hd_buf_fini(&b);
	timer_arm(s);
}

/* Checks a channel argument and the session's permission for op on it
 * (sub_channel: a verified subscription token's channel, or NULL); replies
 * the error and returns false when bad. */
static bool channel_ok(struct session *s, const struct hd_centrifuge_command *cmd, enum hd_acl_op op,
		       const char *sub_channel)
{
	const char *t = cmd->sub.channel;
	struct hd_error err = {0};
	if (!t[0]) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "channel required", false);
		return false;
	}
	if (hd_topic_name_check(t, strlen(t), &err)) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_UNKNOWN_CHANNEL, err.msg, false);
		return false;
	}
	if (allowed(s, t, op, sub_channel)) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED, "permission denied", false);
		return false;
	}
	return true;
}

/*
 * A subscription token (subscribe's `token`): a JWT whose `channel` is the
 * topic and whose `sub` is the connection's user. Returns true with the
 * channel in chan (HD_TOPIC_NAME_MAX + 1 bytes, "" when no token was
 * given); replies the error and returns false when it is expired or bad.
 */
static bool sub_token_ok(struct session *s, const struct hd_centrifuge_command *cmd, char *chan)
{
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	const char *tok = cmd->sub.token;
	bool ok;

	chan[0] = '\0';
	if (!tok || !tok[0])
		return true;
	memset(&claims, 0, sizeof(claims));
	int rc = hd_jwt_verify(s->edge->opts.keys, tok, strlen(tok), hd_now_ms() / 1000, &claims, &err);
	if (rc == HD_EEXPIRED) {
		hd_jwt_claims_fini(&claims);
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
		return false;
	}
	ok = rc == 0 && claims.channel && strcmp(claims.channel, cmd->sub.channel) == 0 &&
	     strcmp(claims.sub, s->conn.user) == 0;
	if (ok)
		snprintf(chan, HD_TOPIC_NAME_MAX + 1, "%s", claims.channel);
	else
		hd_log_info("ws subscription token refused client=%s channel=%s: %s", s->conn.id,
			    cmd->sub.channel, rc ? err.msg : "channel or sub does not match");
	hd_jwt_claims_fini(&claims);
	if (!ok)
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED,
			    "permission denied: invalid subscription token", false);
	return ok;
}

static void cmd_subscribe(struct session *s, const struct hd_centrifuge_command *cmd)
{
	char chan[HD_TOPIC_NAME_MAX + 1];
	if (cmd->sub.type != 0) {
		/* Map (1-3) and shared-poll (4) subscriptions: a normal stream
		 * reply would leave the SDK waiting for a state it never gets. */
		char msg[128];
		snprintf(msg, sizeof(msg), "not available: subscription type %d (%s); herald has stream "
			 "subscriptions only", (int)cmd->sub.type,
			 cmd->sub.type == 4 ? "shared poll" : cmd->sub.type <= 3 && cmd->sub.type > 0 ? "map" : "unknown");
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_NOT_AVAILABLE, msg, false);
		return;
	}
	if (!sub_token_ok(s, cmd, chan) ||
	    !channel_ok(s, cmd, HD_ACL_SUBSCRIBE, chan[0] ? chan : NULL))
		return;
	if (!sub_find(s, cmd->sub.channel) && s->nsubs < s->edge->opts.max_subscriptions &&
	    proxy_start(s, cmd, HD_CPROXY_SUBSCRIBE, cmd->sub.data.p, cmd->sub.data.n))
		return;
	subscribe_accept(s, cmd, NULL, 0);
}

/* A subscribe allowed (by herald's rules and the app backend, if asked);
 * data[0, n): the reply's data (the subscribe proxy's), or NULL. */
static void subscribe_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			     size_t n)
{
	if (sub_find(s, cmd->sub.channel)) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_ALREADY_SUBSCRIBED, "already subscribed", false);
		return;
	}
	if (s->nsubs >= s->edge->opts.max_subscriptions) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED, "too many subscriptions", false);
		return;
	}
	struct chan_sub *sub = sub_add(s, cmd->sub.channel, false);
	if (!sub) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED, "too many topics watched", true);
		return;
	}
	sub->join_leave = cmd->sub.join_leave;
	/* Delta compression when asked for by name; any other is not negotiated. */
	sub->delta = strcmp(cmd->sub.delta, "fossil") == 0;
	struct op *op = op_new(s, cmd);
	op_keep_data(op, data, n);
	op->inits = hd_calloc(1, sizeof(*op->inits));
	op_add_init(op, sub, &cmd->sub);
	op_step(op);
}

static void cmd_unsubscribe(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct chan_sub *sub = sub_find(s, cmd->sub.channel);
	if (sub) {
		sub_remove(s, sub);
		join_leave(s->edge, s, cmd->sub.channel, false);
	}
	reply_empty(s, cmd->id, HD_CENTRIFUGE_UNSUBSCRIBE);
}

/* ---- history ---- */

/*
 * history reads forward from `since` (or the oldest event kept), at most
 * `limit` (HISTORY_MAX when -1 or absent). limit 0 returns only the
 * position. reverse without since returns the newest `limit`, newest first:
 * a first read learns the position, a second reads the last `limit`.
 */
static void history_done(struct hd_read *r)
{
	struct op *op = r->arg;
	struct session *s = op->s;
	if (op_orphaned(op))
		return;
	if (!r->err && op->reverse && op->next == 0) {
		/* Phase one gave the position: read the newest `limit`. */
		uint32_t lim = r->limit;
		uint64_t last = r->last;
		hd_engine_read_fini(r);
		memset(r, 0, sizeof(*r));
		op->next = 1;
		r->topic = op->topic;
		r->after = last > lim ? last - lim : 0;
		r->limit = lim;
		r->done = history_done;
		r->arg = op;
		if (hd_hub_read(s->edge->hub, r) == 0)
			return;
		r->err = HD_EINTERNAL;
	}
	if (r->err) {
		reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
	} else if (op->epoch[0] && r->epoch[0] && strcmp(op->epoch, r->epoch) != 0 &&
		   strcmp(op->epoch, EPOCH_NEW) != 0) {
		reply_error(s, op->id, HD_CENTRIFUGE_ERR_UNRECOVERABLE_POSITION, "unrecoverable position", false);
	} else {
		size_t n = op->limit == 0 ? 0 : r->n;
		bool payload = topic_payload(s->edge, op->topic);
		struct hd_centrifuge_pub *pubs = hd_calloc(n ? n : 1, sizeof(*pubs));
		for (size_t i = 0; i < n; i++) {
			size_t j = op->reverse ? n - 1 - i : i;
			pubs[i].data = r->events[j].json->data;
			pubs[i].len = r->events[j].json->len;
			pubs[i].offset = r->events[j].offset;
			pubs[i].payload = payload;
		}
		struct hd_buf b;
		hd_buf_init(&b, REPLY_MAX);
		if (s->codec->reply_history(&b, op->id, pubs, n, r->epoch[0] ? r->epoch : EPOCH_NEW, r->last))
			hd_buf_reset(&b);
		send_reply(s, &b);
		hd_buf_fini(&b);
		free(pubs);
	}
	s->op = NULL;
	op_free(op);
	pump(s);
}

static void cmd_history(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (!channel_ok(s, cmd, HD_ACL_HISTORY, NULL))
		return;
	struct op *op = op_new(s, cmd);
	op->limit = cmd->limit;
	op->reverse = cmd->reverse && cmd->limit != 0;
	snprintf(op->topic, sizeof(op->topic), "%s", cmd->sub.channel);
	op->r.topic = op->topic;
	op->r.limit = cmd->limit < 0 || cmd->limit > HISTORY_MAX ? HISTORY_MAX : (uint32_t)cmd->limit;
	if (cmd->has_since)
		snprintf(op->epoch, sizeof(op->epoch), "%s", cmd->since_epoch);
	if (cmd->has_since && op->reverse) {
		/* Older than since.offset, newest first: the `limit` before it. */
		uint64_t before = cmd->since_offset ? cmd->since_offset - 1 : 0;
		op->next = 1; /* one read: no phase for the position */
		op->r.after = before > op->r.limit ? before - op->r.limit : 0;
		op->r.limit = (uint32_t)(before - op->r.after);
		if (op->r.limit == 0) {
			op->r.after = READ_TOP_AFTER;
			op->r.limit = 1;
			op->limit = 0; /* only the position */
		}
	} else if (cmd->has_since) {
		op->r.after = cmd->since_offset;
	}
	if (cmd->limit == 0 || (op->reverse && !cmd->has_since))
		op->r.after = READ_TOP_AFTER; /* the position only (phase one of reverse) */
	if (cmd->limit == 0)
		op->r.limit = 1;
	op->r.done = history_done;
	op->r.arg = op;
	if (hd_hub_read(s->edge->hub, &op->r)) {
		s->op = NULL;
		op_free(op);
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
	}
}

/* ---- publish ---- */

static void publish_done(struct hd_pub *p)
{
	struct op *op = p->arg;
	struct session *s = op->s;
	if (s && s->req) {
		if (op->item.err == HD_ELIMIT) {
			/* The store's topic limit (--max-topics-total). */
			hd_metrics_inc(HD_M_publish_errors_total);
			reply_error(s, op->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED,
				    "no new topic can be created (--max-topics-total)", false);
		} else if (op->item.err) {
			hd_metrics_inc(HD_M_publish_errors_total);
			reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, hd_err_message(op->item.err), true);
		} else {
			reply_empty(s, op->id, HD_CENTRIFUGE_PUBLISH);
		}
	}
	if (s) {
		s->op = NULL;
		op_free(op);
		pump(s);
	} else {
		op_free(op);
	}
}

/* Whether raw JSON text is an object with a top-level "specversion". */
static bool looks_structured(const char *p, size_t n)
{
	return n > 0 && p[0] == '{' && memmem(p, n, "\"specversion\"", 13) != NULL;
}

static void cmd_publish(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (!channel_ok(s, cmd, HD_ACL_PUBLISH, NULL))
		return;
	if (!cmd->data.p) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "publish.data required", false);
		return;
	}
	if (hd_ratelimit_take(&s->publish_bucket, &s->edge->opts.publish_rate, 1,
			      (int64_t)hd_mono_ms()) > 0) {
		hd_metrics_inc(HD_M_publish_rate_connection_hits_total);
		hd_metrics_inc(HD_M_publish_errors_total);
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS,
			    "too many requests: publishes come faster than --publish-rate-per-connection",
			    true);
		return;
	}
	if (proxy_start(s, cmd, HD_CPROXY_PUBLISH, cmd->data.p, cmd->data.n))
		return;
	publish_accept(s, cmd, cmd->data.p, cmd->data.n);
}

/* A publish allowed; data[0, n): the client's data or the app backend's. */
static void publish_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			   size_t n)
{
	struct hd_error err = {0};
	struct op *op = op_new(s, cmd);
	snprintf(op->topic, sizeof(op->topic), "%s", cmd->sub.channel);
	bool structured = looks_structured(data, n);
	const char *ctype = structured ? "application/cloudevents+json" : HD_HTTP_JSON_TYPE;
	struct hd_header h = {
		.name = "content-type",
		.name_len = 12,
		.value = ctype,
		.value_len = strlen(ctype),
	};
	/* The decoder wants a NUL-terminated body. */
	char *body = hd_malloc(n + 1);
	memcpy(body, data, n);
	body[n] = '\0';
	struct hd_cloudevent_request cr = {
		.topic = op->topic,
		.now_ms = hd_now_ms(),
		.headers = &h,
		.nheaders = 1,
		.body = body,
		.body_len = n,
	};
	int rc = hd_cloudevent_decode(&cr, &op->batch, &err);
	free(body);
	if (!rc)
		rc = hd_hub_event_fits(s->edge->hub, op->topic, op->batch.events[0].json_len, &err);
	if (rc) {
		s->op = NULL;
		op_free(op);
		hd_metrics_inc(HD_M_publish_errors_total);
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, err.msg, false);
		return;
	}
	op->item.topic = op->topic;
	op->item.event = &op->batch.events[0];
	op->item.stored_ms = cr.now_ms;
	op->pub.items = &op->item;
	op->pub.n = 1;
	op->pub.done = publish_done;
	op->pub.arg = op;
	rc = hd_hub_publish(s->edge->hub, &op->pub);
	if (rc) {
		s->op = NULL;
		op_free(op);
		hd_metrics_inc(HD_M_publish_errors_total);
		reply_error(s, cmd->id, rc == HD_EUNAVAIL ? HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS : HD_CENTRIFUGE_ERR_INTERNAL,
			    hd_err_message(rc), true);
	}
}

/* ---- presence ---- */

static void cmd_presence(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (!channel_ok(s, cmd, HD_ACL_PRESENCE, NULL))
		return;
	const struct hd_conn **c;
	size_t n = hd_hub_presence(s->edge->hub, cmd->sub.channel, &c);
	struct hd_buf b;
	hd_buf_init(&b, REPLY_MAX);
	if (cmd->method == HD_CENTRIFUGE_PRESENCE) {
		struct hd_centrifuge_client_info *info = hd_calloc(n ? n : 1, sizeof(*info));
		for (size_t i = 0; i < n; i++) {
			info[i].client = c[i]->id;
			info[i].user = c[i]->user;
		}
		if (s->codec->reply_presence(&b, cmd->id, info, n))
			hd_buf_reset(&b);
		free(info);
	} else {
		/* Centrifugo counts an anonymous client as one user. */
		size_t users = hd_hub_presence_users(c, n);
		for (size_t i = 0; i < n; i++)
			users += c[i]->user[0] == '\0';
		s->codec->reply_presence_stats(&b, cmd->id, (uint32_t)n, (uint32_t)users);
	}
	send_reply(s, &b);
	hd_buf_fini(&b);
	free(c);
}

static void cmd_ping(struct session *s, const struct hd_centrifuge_command *cmd)
{
	reply_empty(s, cmd->id, HD_CENTRIFUGE_PING);
}

/* RPC goes to the app backend (--proxy-rpc-url); without one herald has no
 * RPC handlers (Centrifugo without an RPC proxy answers so). */
static void cmd_rpc(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (proxy_start(s, cmd, HD_CPROXY_RPC, cmd->data.p, cmd->data.n))
		return;
	reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_NOT_AVAILABLE, "not available", false);
}

/*
 * sub_refresh {channel, token}: a new subscription token for a channel the
 * session is subscribed to (centrifuge-js sends it before the old one's
 * exp). Checked like subscribe's token; answers its expiry.
 */
static void cmd_sub_refresh(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	int64_t now_s = hd_now_ms() / 1000;

	if (!sub_find(s, cmd->sub.channel)) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_UNKNOWN_CHANNEL, "not subscribed", false);
		return;
	}
	memset(&claims, 0, sizeof(claims));
	int rc = hd_jwt_verify(s->edge->opts.keys, cmd->token, strlen(cmd->token), now_s, &claims, &err);
	if (rc == HD_EEXPIRED) {
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
	} else if (rc || !claims.channel || strcmp(claims.channel, cmd->sub.channel) != 0 ||
		   strcmp(claims.sub, s->conn.user) != 0) {
		hd_log_info("ws sub_refresh token refused client=%s channel=%s: %s", s->conn.id,
			    cmd->sub.channel, rc ? err.msg : "channel or sub does not match");
		reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED,
			    "permission denied: invalid subscription token", false);
	} else {
		struct hd_buf b;
		uint32_t ttl = claims.exp ? (claims.exp > now_s ? (uint32_t)(claims.exp - now_s) : 1) : 0;
		hd_buf_init(&b, 256);
		s->codec->reply_sub_refresh(&b, cmd->id, ttl != 0, ttl);
		send_reply(s, &b);
		hd_buf_fini(&b);
	}
	hd_jwt_claims_fini(&claims);
}

/* The commands a client with an id may send, by method; NULL: method not
 * found. PONG and SEND never reach the table (run_line answers them). */
static void (*const commands[HD_CENTRIFUGE_UNKNOWN + 1])(struct session *s,
							  const struct hd_centrifuge_command *cmd) = {
	[HD_CENTRIFUGE_CONNECT] = cmd_connect,
	[HD_CENTRIFUGE_SUBSCRIBE] = cmd_subscribe,
	[HD_CENTRIFUGE_UNSUBSCRIBE] = cmd_unsubscribe,
	[HD_CENTRIFUGE_PUBLISH] = cmd_publish,
	[HD_CENTRIFUGE_HISTORY] = cmd_history,
	[HD_CENTRIFUGE_PRESENCE] = cmd_presence,
	[HD_CENTRIFUGE_PRESENCE_STATS] = cmd_presence,
	[HD_CENTRIFUGE_REFRESH] = cmd_refresh,
	[HD_CENTRIFUGE_PING] = cmd_ping,
	[HD_CENTRIFUGE_RPC] = cmd_rpc,
	[HD_CENTRIFUGE_SUB_REFRESH] = cmd_sub_refresh,
};

/* Runs one command (a JSON line or a protobuf message). */
static void run_line(struct session *s, const char *line, size_t len)
{
	struct hd_centrifuge_command cmd;
	struct hd_error err = {0};

	hd_metrics_inc(HD_M_ws_commands_total);
	s->line = line;
	s->line_len = len;
	if (s->codec->decode(line, len, &cmd, &err)) {
		hd_log_info("ws bad command client=%s remote=%s: %s", s->conn.id, s->conn.remote, err.msg);
		session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "bad request");
		goto out;
	}
	if (cmd.method == HD_CENTRIFUGE_PONG) {
		s->ping_out = false;
		s->pong_due = 0;
		timer_arm(s);
	} else if (cmd.method == HD_CENTRIFUGE_SEND) {
		/* asynchronous messages: nobody listens */
	} else if (cmd.id == 0) {
		session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "command without id");
	} else if (cmd.method != HD_CENTRIFUGE_CONNECT && s->state != S_READY) {
		session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "connect first");
	} else if ((size_t)cmd.method < sizeof(commands) / sizeof(commands[0]) && commands[cmd.method]) {
		commands[cmd.method](s, &cmd);
	} else {
		reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_METHOD_NOT_FOUND, "method not found", false);
	}
out:
	hd_centrifuge_command_fini(&cmd);
}

/* Runs the first protobuf message of the inbox (checked when it came). */
static void pump_message(struct session *s)
{
	const uint8_t *msg;
	size_t pos = 0, n;
	int rc = hd_centrifuge_pb_next((const uint8_t *)s->inbox.data, s->inbox.len, &pos, &msg, &n);
	assert(rc == 1);
	(void)rc;
	/* Copy: the command runs while the inbox may grow. */
	char *copy = hd_malloc(n + 1);
	memcpy(copy, msg, n);
	hd_buf_consume(&s->inbox, pos);
	run_line(s, copy, n);
	free(copy);
}

/* Runs the waiting commands in order until one waits for the hub. */
static void pump(struct session *s)
{
	if (s->pumping)
		return;
	s->pumping = true;
	while (s->req && s->state != S_CLOSING && !s->op && s->inbox.len) {
		if (s->format == F_PB) {
			pump_message(s);
			continue;
		}
		char *nl = memchr(s->inbox.data, '\n', s->inbox.len);
		size_t len = nl ? (size_t)(nl - s->inbox.data) : s->inbox.len;
		/* Copy: the command runs while the inbox may grow. */
		char *line = hd_malloc(len + 1);
		memcpy(line, s->inbox.data, len);
		line[len] = '\0';
		hd_buf_consume(&s->inbox, nl ? len + 1 : len);
		size_t a = 0, b = len;
		while (a < b && (line[a] == ' ' || line[a] == '\r' || line[a] == '\t'))
			a++;
		while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\r' || line[b - 1] == '\t'))
			b--;
		if (b > a)
			run_line(s, line + a, b - a);
		free(line);
	}
	if (s->inbox.len == 0 && s->inbox.cap) {
		/* Idle sessions hold no input memory. */
		hd_buf_fini(&s->inbox);
		hd_buf_init(&s->inbox, 4 * s->edge->opts.max_message);
	}
	if (s->req && s->read_paused && s->inbox.len <= s->edge->opts.max_message) {
		s->read_paused = false;
		hd_http_stream_read(s->req, true);
	}
	s->pumping = false;
}

/* ---- Input -------------------------------------------------------------- */

static bool pb_frame_ok(const uint8_t *p, size_t n);

/*
 * Adds the commands of one message from the client (a WebSocket frame, a
 * stream's opening body, an /emulation request's data) to the inbox.
 * Returns 0; HD_EINVAL when a protobuf message is not whole delimited
 * Commands; HD_ETOOBIG when the inbox would pass its ceiling.
 */
static int session_feed(struct session *s, const char *p, size_t n)
{
	if (s->format == F_PB) {
		if (!pb_frame_ok((const uint8_t *)p, n))
			return HD_EINVAL;
		return hd_buf_append(&s->inbox, p, n);
	}
	size_t len = s->inbox.len;
	int rc = hd_buf_append(&s->inbox, p, n);
	if (!rc)
		rc = hd_buf_putc(&s->inbox, '\n');
	if (rc) {
		s->inbox.len = len;
		if (s->inbox.data)
			s->inbox.data[len] = '\0';
	}
	return rc;
}

/* Whether a binary frame is whole varint-delimited messages. */
static bool pb_frame_ok(const uint8_t *p, size_t n)
{
	size_t pos = 0, mn;
	const uint8_t *msg;
	int rc;
	while ((rc = hd_centrifuge_pb_next(p, n, &pos, &msg, &mn)) == 1)
		;
	return rc == 0;
}

static int on_msg(void *arg, const struct hd_websocket_msg *m)
{
	struct session *s = arg;
	uint8_t frame[2 + HD_WEBSOCKET_CONTROL_MAX + HD_WEBSOCKET_HEADER_MAX];

	switch (m->opcode) {
	case HD_WEBSOCKET_TEXT:
		if (s->format != F_JSON) {
			session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "text frame on a protobuf connection");
			return 1;
		}
		if (session_feed(s, m->data, m->len)) {
			session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "too much unhandled input");
			return 1;
		}
		return 0;
	case HD_WEBSOCKET_BINARY:
		if (s->format != F_PB) {
			session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST,
				      "binary frame on a JSON connection (ask for centrifuge-protobuf)");
			return 1;
		}
		switch (session_feed(s, m->data, m->len)) {
		case 0:
			return 0;
		case HD_EINVAL:
			hd_log_info("ws bad protobuf frame client=%s remote=%s", s->conn.id, s->conn.remote);
			session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "bad request");
			return 1;
		default:
			session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "too much unhandled input");
			return 1;
		}
	case HD_WEBSOCKET_PING: {
		size_t hl = hd_websocket_frame_header(frame, HD_WEBSOCKET_PONG, m->len);
		memcpy(frame + hl, m->data, m->len);
		if (s->req)
			hd_http_stream_write_copy(s->req, (const char *)frame, hl + m->len);
		return 0;
	}
	case HD_WEBSOCKET_CLOSE:
		/* Echo the code (RFC 6455 §5.5.1) and end. */
		session_close(s, m->close_code ? m->close_code : 0, "");
		return 1;
	default:
		return 0;
	}
}

static void on_input(void *arg, const char *p, size_t n)
{
	struct session *s = arg;
	const char *reason = NULL;
	if (!s->req || s->state == S_CLOSING)
		return;
	int rc = hd_websocket_decoder_feed(s->dec, p, n, on_msg, s, &reason);
	if (rc > 1) {
		hd_log_info("ws protocol error client=%s remote=%s code=%d: %s", s->conn.id, s->conn.remote,
			    rc, reason ? reason : "");
		session_close(s, (uint16_t)rc, reason ? reason : "protocol error");
		return;
	}
	if (!s->req || s->state == S_CLOSING)
		return;
	if (!s->read_paused && s->inbox.len > s->edge->opts.max_message) {
		s->read_paused = true;
		hd_http_stream_read(s->req, false);
	}
	pump(s);
}

/* ---- Lifecycle ---------------------------------------------------------- */

static void session_maybe_free(struct session *s)
{
	if (s->req || !s->timer_closed || s->op)
		return;
	hd_websocket_decoder_free(s->dec);
	hd_buf_fini(&s->inbox);
	free(s->subs);
	for (size_t i = 0; i < s->nchannels; i++)
		free(s->channels[i]);
	free(s->channels);
	free(s);
}

static void timer_closed(uv_handle_t *h)
{
	struct session *s = h->data;
	s->timer_closed = true;
	session_maybe_free(s);
}

/* Forgets the connection: subscriptions, registration, the edge's list. */
static void session_release(struct session *s)
{
	struct hd_ws_edge *e = s->edge;
	size_t n = s->nsubs;
	s->nsubs = 0; /* join_leave must not find this session's subscriptions */
	for (size_t i = 0; i < n; i++) {
		struct chan_sub *sub = s->subs[i];
		hd_hub_unwatch(e->hub, &sub->watch);
		if (!sub->server_side)
			join_leave(e, s, sub->name, false);
		sub_drop_held(sub);
		if (sub->base)
			hd_rcbuf_unref(sub->base);
		free(sub);
	}
	if (s->registered)
		hd_hub_conn_remove(e->hub, &s->conn);
	s->registered = false;
	if (s->token[0])
		hd_map_del(&e->streams, s->token);
	if (s->prev)
		s->prev->next = s->next;
	else
		e->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	e->count--;
	hd_metrics_gauge_add(HD_M_ws_sessions, -1);
	s->req = NULL;
	hd_cproxy_headers_free(s->proxy_headers);
	s->proxy_headers = NULL;
	if (s->op)
		s->op->s = NULL; /* its completion frees it */
	s->op = NULL;
	uv_close((uv_handle_t *)&s->timer, timer_closed);
}

/* The client went away (or the server closed the connection). */
static void on_close(void *arg)
{
	struct session *s = arg;
	session_release(s);
}

/* Sends a close frame with code and reason (code 0: none), then ends. */
static void session_close(struct session *s, uint16_t code, const char *reason)
{
	if (!s->req || s->state == S_CLOSING)
		return;
	uint8_t frame[2 + HD_WEBSOCKET_CONTROL_MAX];
	if (code != HD_CENTRIFUGE_DISC_SHUTDOWN && code != HD_WEBSOCKET_CLOSE_NORMAL && code != 0)
		hd_metrics_inc(HD_M_ws_disconnects_total);
	if (s->carrier == C_WS) {
		size_t n = hd_websocket_close_frame(frame, code, reason);
		hd_http_stream_write_copy(s->req, (const char *)frame, n);
	} else if (code && code != HD_WEBSOCKET_CLOSE_NORMAL) {
		/* A stream has no close frame: the disconnect push says why
		 * (reconnect for the codes below 3500, as Centrifugo's). */
		struct hd_buf b;
		hd_buf_init(&b, 1024);
		if (!s->codec->push_disconnect(&b, code, reason, code < 3500)) {
			struct hd_rcbuf *f = carrier_frame(s->carrier, s->format, b.data, b.len);
			hd_http_stream_write(s->req, f);
			hd_rcbuf_unref(f);
		}
		hd_buf_fini(&b);
	}
	s->state = S_CLOSING;
	struct hd_http_request *req = s->req;
	session_release(s);
	hd_http_stream_end(req);
}

static void on_timer(uv_timer_t *t)
{
	struct session *s = t->data;
	int64_t now = mono();
	if (!s->req)
		return;
	/* The deadlines that end a session, in the order they are checked. */
	const struct {
		bool passed;
		uint16_t code;
		const char *reason;
	} ends[] = {
		{s->slow, HD_CENTRIFUGE_DISC_SLOW, "slow"},
		{s->connect_due && now >= s->connect_due, HD_CENTRIFUGE_DISC_STALE, "stale"},
		{s->expire_at && now >= s->expire_at, HD_CENTRIFUGE_DISC_EXPIRED, "expired"},
		{s->pong_due && now >= s->pong_due, HD_CENTRIFUGE_DISC_NO_PONG, "no pong"},
	};
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		if (ends[i].passed) {
			session_close(s, ends[i].code, ends[i].reason);
			return;
		}
	}
	if (s->ping_due && now >= s->ping_due) {
		/* The server's ping: an empty reply, {} or a zero-length message. */
		static const char json_ping[] = {(char)0x81, 2, '{', '}'};
		static const char pb_ping[] = {(char)0x82, 1, 0};
		if (s->carrier != C_WS)
			reply_empty(s, 0, HD_CENTRIFUGE_PONG);
		else if (s->format == F_PB)
			hd_http_stream_write_copy(s->req, pb_ping, sizeof(pb_ping));
		else
			hd_http_stream_write_copy(s->req, json_ping, sizeof(json_ping));
		/* The first unanswered ping's deadline stands (a pong timeout
		 * longer than the interval must not be pushed back by each ping). */
		if (!s->ping_out)
			s->pong_due = now + s->edge->opts.pong_timeout_ms;
		s->ping_out = true;
		s->ping_due = now + s->edge->opts.ping_interval_ms;
	}
	timer_arm(s);
}

static void timer_arm(struct session *s)
{
	int64_t due = s->slow ? mono() : 0;
	int64_t cand[] = {s->connect_due, s->expire_at, s->pong_due, s->ping_due};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] && (!due || cand[i] < due))
			due = cand[i];
	if (!due) {
		uv_timer_stop(&s->timer);
		return;
	}
	int64_t now = mono();
	uv_timer_start(&s->timer, on_timer, due > now ? (uint64_t)(due - now) : 0, 0);
}

/* The protobuf format: the centrifuge-protobuf subprotocol (selected by
 * the handshake when centrifuge-json is not offered) or ?format=protobuf. */
static bool wants_protobuf(const struct hd_http_request *req)
{
	char v[16];
	if (hd_websocket_offers(req, "centrifuge-protobuf") && !hd_websocket_offers(req, "centrifuge-json"))
		return true;
	return hd_query_get(req->query, "format", v, sizeof(v)) > 0 && strcmp(v, "protobuf") == 0;
}

static struct session *session_new(struct hd_ws_edge *e, struct hd_http_request *req, enum carrier c,
				   enum format f);
static void session_start(struct session *s);

/* GET /connection/websocket: upgrades req (or answers 400/426/503). */
static void route_websocket(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_ws_edge *e = ctx->row->arg;
	struct hd_buf head;
	struct hd_error err = {0};
	int status = 400;

	if (e->stopping) {
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	hd_buf_init(&head, 1024);
	if (hd_websocket_handshake(req, &head, &status, &err)) {
		hd_buf_reset(&head);
		hd_buf_printf(&head, "{\"error\":{\"code\":\"invalid_request\",\"message\":\"");
		hd_buf_json_escape(&head, err.msg, strlen(err.msg));
		hd_buf_puts(&head, "\"}}");
		hd_http_respond(req, status, HD_HTTP_JSON_TYPE,
				status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL, head.data, head.len);
		hd_buf_fini(&head);
		return;
	}
	struct session *s = session_new(e, req, C_WS, wants_protobuf(req) ? F_PB : F_JSON);
	if (hd_http_upgrade(req, head.data, head.len, on_input, on_close, s)) {
		hd_buf_fini(&head);
		hd_cproxy_headers_free(s->proxy_headers);
		free(s);
		hd_http_respond_error(req, HD_EUNAVAIL, NULL);
		return;
	}
	hd_buf_fini(&head);
	s->dec = hd_websocket_decoder_new(e->opts.max_message);
	session_start(s);
}

/* A session of carrier c and format f for req, not started yet. */
static struct session *session_new(struct hd_ws_edge *e, struct hd_http_request *req, enum carrier c,
				   enum format f)
{
	struct session *s = hd_calloc(1, sizeof(*s));
	s->edge = e;
	s->req = req;
	s->format = f;
	s->carrier = c;
	s->codec = &codecs[s->format];
	hd_uuid_v4(s->conn.id);
	s->conn.transport = carrier_names[c];
	snprintf(s->conn.remote, sizeof(s->conn.remote), "%s", req->remote);
	s->conn.since_ms = hd_now_ms();
	s->conn.topics = conn_topics;
	s->proxy_headers = hd_cproxy_headers_take(e->opts.cproxy, request_header, req);
	return s;
}

/* The connection is the session's: its inbox, timer and place in the edge. */
static void session_start(struct session *s)
{
	struct hd_ws_edge *e = s->edge;
	hd_buf_init(&s->inbox, 4 * e->opts.max_message);
	uv_timer_init(e->loop, &s->timer);
	s->timer.data = s;
	s->connect_due = mono() + e->opts.connect_timeout_ms;
	hd_ratelimit_init(&s->publish_bucket, &e->opts.publish_rate, (int64_t)hd_mono_ms());
	s->next = e->sessions;
	if (e->sessions)
		e->sessions->prev = s;
	e->sessions = s;
	e->count++;
	hd_metrics_gauge_add(HD_M_ws_sessions, 1);
	timer_arm(s);
}

int hd_ws_edge_stream(struct hd_ws_edge *e, struct hd_http_request *req, bool sse, bool protobuf,
		      const char *initial, size_t n)
{
	static const char headers[] = "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
	if (e->stopping)
		return HD_EUNAVAIL;
	if (sse && protobuf)
		return HD_EINVAL; /* SSE carries text */
	struct session *s = session_new(e, req, sse ? C_SSE : C_STREAM, protobuf ? F_PB : F_JSON);
	hd_buf_init(&s->inbox, 4 * e->opts.max_message);
	int rc = session_feed(s, initial, n);
	hd_buf_fini(&s->inbox);
	if (rc) {
		hd_cproxy_headers_free(s->proxy_headers);
		free(s);
		return rc;
	}
	const char *type = sse ? "text/event-stream" : protobuf ? "application/octet-stream" : HD_HTTP_JSON_TYPE;
	rc = hd_http_stream_start(req, 200, type, headers, on_close, s);
	if (rc) {
		hd_cproxy_headers_free(s->proxy_headers);
		free(s);
		return rc;
	}
	hd_uuid_v4(s->token);
	if (hd_map_put(&e->streams, s->token, s)) {
		s->token[0] = '\0'; /* not findable: its connect reply has no session */
		hd_log_warn("ws emulated sessions at their cap (%u)", STREAMS_MAX);
	}
	session_start(s);
	session_feed(s, initial, n); /* checked above */
	pump(s);
	return 0;
}

int hd_ws_edge_emulate(struct hd_ws_edge *e, const char *session, const char *data, size_t n)
{
	struct session *s = hd_map_get(&e->streams, session);
	if (!s || !s->req || s->state == S_CLOSING)
		return HD_ENOTFOUND;
	int rc = session_feed(s, data, n);
	if (rc == HD_ETOOBIG)
		return HD_ELIMIT;
	if (rc)
		return rc;
	pump(s);
	return 0;
}

void hd_ws_edge_stop(struct hd_ws_edge *e)
{
	e->stopping = true;
	while (e->sessions)
		session_close(e->sessions, HD_CENTRIFUGE_DISC_SHUTDOWN, "shutdown");
}

void hd_ws_edge_free(struct hd_ws_edge *e)
{
	assert(e->count == 0);
	for (size_t i = 0; i < FRAME_CACHE; i++) {
		slot_clear(&e->cache[i]);
		slot_clear(&e->delta_cache[i]);
	}
	hd_map_fini(&e->streams);
	free(e);
}

void hd_ws_edge_routes(struct hd_ws_edge *e, struct hd_route_table *t)
{
	hd_route_add(t, &(struct hd_route){HTTP_GET, "/connection/websocket", HD_ROUTE_OPEN, 0,
					   route_websocket, e, 0, HD_ROUTE_NO_HEAD});
	hd_ws_emulation_routes(e, t);
}
