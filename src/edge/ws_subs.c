/*
 * ws_subs — a session's subscriptions (see edge/ws_edge_impl.h): their hub
 * watches and the events held until a subscription goes live, their expiry
 * (a subscribe proxy's expire_at: the unsubscribe push 2501), the ACL check,
 * join/leave pushes to the other sessions on a topic, and the reads that set
 * up (and recover) the subscriptions of a connect or subscribe: the op that
 * steps through them and replies.
 * Layer: edge. Loop thread only.
 * Callers: edge/ws_edge.c, edge/ws_commands.c.
 */
#include "edge/ws_edge_impl.h"
#include "proto/json_text.h"

/* ---- Subscriptions ------------------------------------------------------ */

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct chan_sub *sub = w->arg;
	if (sub->live) {
		hd_ws_output_deliver(sub, ev);
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

void hd_ws_subs_sub_drop_held(struct chan_sub *sub)
{
	for (size_t i = 0; i < sub->nheld; i++)
		hd_rcbuf_unref(sub->held[i].json);
	free(sub->held);
	sub->held = NULL;
	sub->nheld = sub->capheld = 0;
}

struct chan_sub *hd_ws_subs_sub_find(struct session *s, const char *topic)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strcmp(s->subs[i]->name, topic) == 0)
			return s->subs[i];
	return NULL;
}

/* Adds and watches a subscription. Returns it, or NULL when the hub's cap
 * on watched topics is reached. */
struct chan_sub *hd_ws_subs_sub_add(struct session *s, const char *topic, bool server_side,
				    const char *chan_info, size_t chan_info_len, int announce)
{
	size_t len = strlen(topic);
	struct chan_sub *sub = hd_calloc(1, sizeof(*sub) + len + 1);
	sub->s = s;
	sub->server_side = server_side;
	memcpy(sub->name, topic, len + 1);
	sub->watch.fire = on_watch;
	sub->watch.arg = sub;
	sub->watch.conn = &s->conn;
	hd_ws_subs_chan_info_set(sub, chan_info, chan_info_len);
	/* A WebSocket subscription, server-side ones too, that is announced by
	 * hd_ws_subs_join_leave says so in its presence entry: the sweep of a
	 * dead node leaves it. Decided once, so that its join and its leave
	 * agree. */
	sub->announce = announce >= 0 ? announce != 0 : hd_hub_ns(s->edge->hub, topic)->join_leave;
	sub->watch.join_leave = sub->announce;
	if (hd_hub_watch(s->edge->hub, topic, &sub->watch)) {
		free(sub->chan_info);
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
	hd_ws_subs_sub_drop_held(sub);
	if (sub->base)
		hd_rcbuf_unref(sub->base);
	free(sub->chan_info);
	free(sub);
}

void hd_ws_subs_sub_remove(struct session *s, struct chan_sub *sub)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		if (s->subs[i] == sub) {
			s->subs[i] = s->subs[--s->nsubs];
			break;
		}
	}
	sub_free(s, sub);
}

void hd_ws_subs_chan_info_set(struct chan_sub *sub, const char *info, size_t n)
{
	free(sub->chan_info);
	sub->chan_info = info && n && n <= CONN_INFO_MAX ? hd_strndup(info, n) : NULL;
	sub->watch.chan_info = sub->chan_info;
}

/* ---- Expiry (a subscribe proxy's expire_at) ----------------------------- */

void hd_ws_subs_expiry_arm(struct session *s)
{
	int64_t due = 0;
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i]->expire_at && (!due || s->subs[i]->expire_at < due))
			due = s->subs[i]->expire_at;
	s->sub_expire_at = due;
	hd_ws_edge_timer_arm(s);
}

void hd_ws_subs_expire(struct session *s, struct chan_sub *sub)
{
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_buf b;
	snprintf(topic, sizeof(topic), "%s", sub->name);
	hd_ws_subs_join_leave(s->edge, s, sub, false); /* while sub still has its chan_info */
	hd_ws_subs_sub_remove(s, sub);
	hd_buf_init(&b, 2048);
	if (s->codec->push_unsubscribe(&b, topic, HD_WS_UNSUB_EXPIRED, "subscription expired"))
		hd_buf_reset(&b);
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
}

/* The subscription's reply went out: sends what fired meanwhile, then
 * goes live. Returns false when the session was closed. */
static bool sub_go_live(struct session *s, struct chan_sub *sub)
{
	if (sub->overflow) {
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INSUFFICIENT_STATE, "insufficient state");
		return false;
	}
	sub->live = true;
	/* A slow-consumer close frees sub: check the session before each use. */
	for (size_t i = 0;; i++) {
		if (!s->req)
			return false;
		if (i == sub->nheld)
			break;
		hd_ws_output_deliver(sub, &sub->held[i]);
	}
	hd_ws_subs_sub_drop_held(sub);
	return true;
}

void hd_ws_subs_conn_topics(const struct hd_conn *c, void (*each)(void *arg, const char *topic), void *arg)
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
int hd_ws_subs_allowed(const struct session *s, const char *topic, enum hd_acl_op op,
		   const char *sub_channel)
{
	struct hd_acl_subject who = {
		.user = s->conn.user,
		.channels = s->channels,
		.nchannels = s->nchannels,
		.sub_channel = sub_channel,
		.subscribed = hd_ws_subs_sub_find((struct session *)s, topic) != NULL,
	};
	return hd_acl_check(hd_hub_ns(s->edge->hub, topic), topic, op, &who);
}

/* ---- Join and leave, topic deletion ---------------------------------------- */

/* The session of c, when it is one of this edge's (NULL otherwise). */
static struct session *session_of(const struct hd_conn *c)
{
	if (c->topics != hd_ws_subs_conn_topics)
		return NULL;
	return (struct session *)((const char *)c - offsetof(struct session, conn));
}

/* Writes f to `to`; a receiver that is too slow is closed from its timer. */
static void push_frame(struct session *to, struct hd_rcbuf *f)
{
	if (hd_http_stream_write(to->req, f) == HD_ELIMIT) {
		to->slow = true;
		uv_timer_start(&to->timer, hd_ws_edge_on_timer, 0, 0);
	}
}

/* Drops the frames built once per carrier and format. */
static void frames_unref(struct hd_rcbuf *frames[C_COUNT][F_COUNT])
{
	for (size_t k = 0; k < C_COUNT; k++)
		for (size_t i = 0; i < F_COUNT; i++)
			if (frames[k][i])
				hd_rcbuf_unref(frames[k][i]);
}

/*
 * Tells every WebSocket subscriber of topic on this node that asked for it
 * (but `from`, NULL for another node's client) that client (of user,
 * with conn_info and chan_info or NULL) joined or left. A receiver that is too slow is closed from its timer,
 * not here: closing changes the topic's watchers, and this may run while
 * one session is being released.
 */
static void push_join_leave(struct hd_ws_edge *e, const struct session *from, const char *client,
			    const char *user, const char *conn_info, const char *chan_info, const char *topic,
			    bool join)
{
	const struct hd_conn **c;
	size_t n = hd_hub_presence(e->hub, topic, &c);
	struct hd_rcbuf *frames[C_COUNT][F_COUNT] = {{0}};
	for (size_t i = 0; i < n; i++) {
		struct session *to = session_of(c[i]);
		if (!to || to == from)
			continue;
		struct chan_sub *sub = hd_ws_subs_sub_find(to, topic);
		if (!sub || !sub->live || !sub->join_leave || !to->req || to->slow || to->state == S_CLOSING)
			continue;
		struct hd_rcbuf **f = &frames[to->carrier][to->format];
		if (!*f) {
			struct hd_buf b;
			struct hd_centrifuge_client_info info = {
				.client = client, .user = user, .conn_info = conn_info,
				.conn_info_len = conn_info ? strlen(conn_info) : 0, .chan_info = chan_info,
				.chan_info_len = chan_info ? strlen(chan_info) : 0};
			hd_buf_init(&b, 2048 + 2 * CONN_INFO_MAX);
			if (join)
				to->codec->push_join(&b, topic, &info);
			else
				to->codec->push_leave(&b, topic, &info);
			*f = hd_ws_output_carrier_frame(to->carrier, to->format, b.data, b.len);
			hd_buf_fini(&b);
		}
		push_frame(to, *f);
	}
	frames_unref(frames);
	free(c);
}

/* `from` joined or left topic: its subscribers here, and (through the hub)
 * on every other node. */
void hd_ws_subs_join_leave(struct hd_ws_edge *e, const struct session *from, const struct chan_sub *sub,
			   bool join)
{
	const char *topic = sub->name;
	if (!sub->announce)
		return;
	/* Even while stopping: the other nodes' subscribers see the leaves. */
	hd_hub_join_leave(e->hub, topic, from->conn.id, from->conn.user, from->conn.info, sub->chan_info,
			  join);
	if (!e->stopping)
		push_join_leave(e, from, from->conn.id, from->conn.user, from->conn.info, sub->chan_info, topic,
				join);
}

/* infos' member key (quotes included) as an owned string, when it is at
 * most CONN_INFO_MAX and not null; else NULL. m[0, len): a minified object. */
static char *info_member(const char *m, const struct hd_json_text_span *sp, size_t n, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < n; i++) {
		if (sp[i].key_len != klen || memcmp(m + sp[i].key_off, key, klen))
			continue;
		const char *v = m + sp[i].val_off;
		size_t vlen = sp[i].val_len;
		if (vlen > CONN_INFO_MAX || (vlen == 4 && !memcmp(v, "null", 4)))
			return NULL;
		return hd_strndup(v, vlen);
	}
	return NULL;
}

void hd_ws_subs_on_join_leave(void *arg, const char *topic, const char *client, const char *user,
			      const char *infos, size_t infos_len, bool join)
{
	struct hd_ws_edge *e = arg;
	char *conn_info = NULL, *chan_info = NULL;
	/* The sending node decided (its subscription's announce), as the
	 * sweep of a dead node's join_leave entries did. */
	if (e->stopping)
		return;
	if (infos_len) { /* another node's {"info","chan_info"} or presence entry: bytes kept */
		struct hd_json_text_span sp[16];
		struct hd_json_text_scan scan = {.spans = sp, .spans_max = 16};
		char *m = hd_malloc(infos_len);
		if (hd_json_text_minify(infos, infos_len, m, &scan, NULL) || m[0] != '{') {
			free(m);
			return; /* not ours */
		}
		conn_info = info_member(m, sp, scan.nspans, "\"info\"");
		chan_info = info_member(m, sp, scan.nspans, "\"chan_info\"");
		free(m);
	}
	push_join_leave(e, NULL, client, user, conn_info, chan_info, topic, join);
	free(conn_info);
	free(chan_info);
}

/*
 * topic was deleted (through this node or another): every live
 * subscription a client made to it gets the unsubscribe push with code
 * 2500 and ends here. Centrifugo's SDKs subscribe again after a code of
 * 2500 or more, with recovery from their position, which the new epoch
 * refuses: the app reloads its state. A session with a server-side
 * subscription to it (user:{id}, the token's channels, the connect proxy's
 * subs) is closed with 3010 "insufficient state" instead, as Centrifugo
 * does when a server-side subscription cannot go on: a client cannot
 * subscribe to a server-side channel again by itself, so it reconnects and
 * gets the subscription back on the new epoch (not recovered). Those are
 * closed after the loop: a close releases the session's watches.
 */
void hd_ws_subs_on_topic_gone(void *arg, const char *topic)
{
	struct hd_ws_edge *e = arg;
	if (e->stopping)
		return;
	const struct hd_conn **c;
	size_t n = hd_hub_presence(e->hub, topic, &c);
	struct hd_rcbuf *frames[C_COUNT][F_COUNT] = {{0}};
	struct session **closing = NULL;
	size_t nclosing = 0;
	for (size_t i = 0; i < n; i++) {
		struct session *to = session_of(c[i]);
		if (!to)
			continue;
		struct chan_sub *sub = hd_ws_subs_sub_find(to, topic);
		if (!sub || !sub->live || !to->req || to->state == S_CLOSING)
			continue;
		if (sub->server_side) {
			if (!closing)
				closing = hd_malloc(n * sizeof(*closing));
			closing[nclosing++] = to;
			continue;
		}
		hd_ws_subs_sub_remove(to, sub);
		if (to->slow)
			continue;
		struct hd_rcbuf **f = &frames[to->carrier][to->format];
		if (!*f) {
			struct hd_buf b;
			hd_buf_init(&b, 2048);
			to->codec->push_unsubscribe(&b, topic, HD_WS_UNSUB_TOPIC_DELETED, "topic deleted");
			*f = hd_ws_output_carrier_frame(to->carrier, to->format, b.data, b.len);
			hd_buf_fini(&b);
		}
		push_frame(to, *f);
	}
	frames_unref(frames);
	free(c);
	for (size_t i = 0; i < nclosing; i++)
		hd_ws_edge_session_close(closing[i], HD_CENTRIFUGE_DISC_INSUFFICIENT_STATE,
					 "insufficient state");
	free(closing);
}

/* ---- Reads for subscribe and connect ------------------------------------ */

void hd_ws_subs_op_free(struct op *op)
{
	for (size_t i = 0; i < op->ninits; i++) {
		hd_engine_read_fini(&op->inits[i].r);
		free(op->inits[i].pubs);
	}
	free(op->inits);
	hd_engine_read_fini(&op->r);
	hd_hub_reg_fini(&op->reg);
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
		bool payload = hd_ws_output_topic_payload(s->edge, sub->name);
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
	hd_ws_subs_op_step(op);
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
				hd_ws_subs_sub_remove(s, op->inits[j].sub);
			if (op->method == HD_CENTRIFUGE_CONNECT) {
				hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "internal error");
			} else {
				hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
			}
			hd_buf_fini(&b);
			return;
		}
	}
	if (op->method == HD_CENTRIFUGE_CONNECT) {
		struct hd_centrifuge_sub_result *subs = hd_calloc(op->ninits ? op->ninits : 1, sizeof(*subs));
		for (size_t i = 0; i < op->ninits; i++) {
			subs[i] = op->inits[i].res;
			subs[i].data = op->inits[i].data;
			subs[i].data_len = op->inits[i].data_len;
		}
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
		hd_ws_subs_sub_remove(s, op->inits[0].sub);
		hd_buf_fini(&b);
		hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_UNRECOVERABLE_POSITION, "unrecoverable position", false);
		return;
	} else {
		struct hd_centrifuge_sub_result res = op->inits[0].res;
		res.channel = NULL;
		res.data = op->reply_data;
		res.data_len = op->reply_data_len;
		if (s->codec->reply_subscribe(&b, op->id, &res))
			hd_buf_reset(&b);
	}
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
	for (size_t i = 0; i < op->ninits && s->req; i++)
		if (!sub_go_live(s, op->inits[i].sub))
			return;
	/* Server-side subscriptions join too, as in Centrifugo. */
	for (size_t i = 0; i < op->ninits && s->req; i++)
		hd_ws_subs_join_leave(s->edge, s, op->inits[i].sub, true);
}

/* Whether op's session ended while op waited for the hub; then frees op. */
bool hd_ws_subs_op_orphaned(struct op *op)
{
	struct session *s = op->s;
	if (s && s->req)
		return false;
	if (s)
		s->op = NULL;
	hd_ws_subs_op_free(op);
	return true;
}

/* Issues the next read of a connect/subscribe, or replies when all are done. */
void hd_ws_subs_op_step(struct op *op)
{
	struct session *s = op->s;
	if (hd_ws_subs_op_orphaned(op))
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
	hd_ws_subs_op_free(op);
	hd_ws_edge_pump(s);
}
