/*
 * ws_commands — the Centrifugo commands a session runs (see
 * edge/ws_edge_impl.h): connect, refresh, subscribe, unsubscribe, history,
 * publish, presence, ping, rpc, sub_refresh, their calls to the app backend
 * (edge/cproxy.h: connect, subscribe, publish, rpc, refresh and sub-refresh
 * proxies), and the table that dispatches one decoded command
 * (hd_ws_commands_run_line).
 * Layer: edge. Loop thread only.
 * Callers: edge/ws_edge.c (the input pump).
 */
#include "edge/ws_edge_impl.h"
#include "proto/json_text.h"

static struct op *op_new(struct session *s, const struct hd_centrifuge_command *cmd);
static void connect_accept(struct session *s, const struct hd_centrifuge_command *cmd, int64_t exp,
			   const char *data, size_t n);
static void subscribe_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			     size_t n, const char *info, size_t info_len, int64_t exp);
static void publish_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			   size_t n);
static bool chan_opts_json(struct hd_jwt_sub *o, size_t n);
static void publisher_info_add(const struct session *s, const char *channel, struct hd_event *ev);

/* ---- Proxies to the app backend (edge/cproxy.h) -------------------------- */

/* Keeps info[0, n) (minified JSON: the connect token's `info` claim or the
 * connect proxy's) as the session's conn info, which presence, join and
 * leave carry as Centrifugo's ClientInfo.conn_info. Longer than
 * CONN_INFO_MAX: left out of them (docs/websocket.md). */
static void conn_info_set(struct session *s, const char *info, size_t n)
{
	free(s->conn_info);
	s->conn_info = NULL;
	if (info && n && n <= CONN_INFO_MAX) {
		s->conn_info = hd_malloc(n + 1);
		memcpy(s->conn_info, info, n);
		s->conn_info[n] = '\0';
	}
	s->conn.info = s->conn_info;
}


/* Takes the connect proxy's server-side subscriptions as the connection
 * token's are taken: result.subs's channels with their options, then
 * result.channels' others. Returns false when a JSON client could not read
 * one's b64data. */
static bool proxy_channels_take(struct session *s, const struct hd_cproxy_answer *a)
{
	size_t total = a->subs.nchannels + a->nchannels, n = 0;
	if (!total)
		return true;
	s->channels = hd_calloc(total, sizeof(*s->channels));
	if (a->subs.subs)
		s->chan_opts = hd_calloc(total, sizeof(*s->chan_opts));
	for (; n < a->subs.nchannels; n++) {
		const struct hd_jwt_sub *o = &a->subs.subs[n];
		s->channels[n] = hd_strdup(a->subs.channels[n]);
		s->chan_opts[n] = *o;
		s->chan_opts[n].info = o->info ? hd_strdup(o->info) : NULL;
		s->chan_opts[n].data = o->data ? hd_strndup(o->data, o->data_len) : NULL;
	}
	for (size_t i = 0; i < a->nchannels; i++) {
		bool dup = false;
		for (size_t j = 0; j < a->subs.nchannels && !dup; j++)
			dup = strcmp(s->channels[j], a->channels[i]) == 0;
		if (!dup)
			s->channels[n++] = hd_strdup(a->channels[i]);
	}
	s->nchannels = n;
	if (s->format == F_PB || chan_opts_json(s->chan_opts, n))
		return true;
	hd_ws_edge_channels_free(s); /* the client may connect again */
	return false;
}

const char *hd_ws_commands_request_header(void *arg, const char *lname)
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

	if (hd_ws_subs_op_orphaned(op))
		return;
	s->op = NULL;
	/* The line decoded when it came: it decodes again. */
	int rc = s->codec->decode(op->line, op->line_len, &cmd, &err);
	assert(rc == 0);
	(void)rc;
	hd_ws_subs_op_free(op);
	/* b64data's bytes: a JSON client reads them as JSON (minified here),
	 * and a publication is stored as JSON whoever reads it. */
	const char *data = a->data;
	size_t data_len = a->data_len;
	char *own = NULL;
	bool data_bad = false;
	if (a->outcome == HD_CPROXY_RESULT && a->data_b64 &&
	    (s->format != F_PB || cmd.method == HD_CENTRIFUGE_PUBLISH)) {
		struct hd_json_text_scan scan = {0};
		own = hd_malloc(data_len ? data_len : 1);
		data_bad = hd_json_text_minify(data, data_len, own, &scan, NULL) != 0;
		data = own;
		data_len = scan.out_len;
	}
	if (a->outcome == HD_CPROXY_FAILED || data_bad) {
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		hd_ws_output_reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_INTERNAL,
					 data_bad ? "internal server error: the app backend's b64data is not JSON"
						  : "internal server error: the app backend failed",
					 true);
	} else if (a->outcome == HD_CPROXY_ERROR) {
		hd_ws_output_reply_error(s, cmd.id, a->code, a->message, false);
	} else if (a->outcome == HD_CPROXY_DISCONNECT) {
		hd_ws_edge_session_close(s, (uint16_t)a->code, a->message);
	} else if (cmd.method == HD_CENTRIFUGE_CONNECT && !proxy_channels_take(s, a)) {
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		hd_ws_output_reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_INTERNAL,
					 "internal server error: the app backend's subs b64data is not JSON", true);
	} else if (cmd.method == HD_CENTRIFUGE_CONNECT) {
		snprintf(s->conn.user, sizeof(s->conn.user), "%s", a->user);
		conn_info_set(s, a->info, a->info_len);
		s->server_refresh = a->expire_at && hd_cproxy_enabled(s->edge->opts.cproxy, HD_CPROXY_REFRESH);
		connect_accept(s, &cmd, a->expire_at, data, data_len);
	} else if (cmd.method == HD_CENTRIFUGE_SUBSCRIBE && a->expire_at && a->expire_at <= hd_now_ms() / 1000) {
		/* An expiry already past: Centrifugo refuses with 110. */
		hd_ws_output_reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_EXPIRED, "expired", false);
	} else if (cmd.method == HD_CENTRIFUGE_SUBSCRIBE) {
		subscribe_accept(s, &cmd, data, data_len, a->info, a->info_len, a->expire_at);
	} else if (cmd.method == HD_CENTRIFUGE_PUBLISH) {
		publish_accept(s, &cmd, data ? data : cmd.data.p, data ? data_len : cmd.data.n);
	} else {
		struct hd_buf b;
		hd_buf_init(&b, REPLY_MAX);
		if (s->codec->reply_rpc(&b, cmd.id, data, data_len))
			hd_buf_reset(&b);
		hd_ws_output_send_reply(s, &b);
		hd_buf_fini(&b);
	}
	free(own);
	hd_centrifuge_command_fini(&cmd);
	if (!s->op)
		hd_ws_edge_pump(s);
}

/* Whether a kind call goes to the app backend: its URL is set and, for a
 * channel's call (channel not NULL), the channel's namespace does not turn
 * that proxy off (proxy-subscribe, proxy-publish, proxy-sub-refresh). */
static bool proxy_on(const struct session *s, enum hd_cproxy_kind kind, const char *channel)
{
	if (!hd_cproxy_enabled(s->edge->opts.cproxy, kind))
		return false;
	if (!channel)
		return true;
	const struct hd_ns_opts *ns = hd_hub_ns(s->edge->hub, channel);
	switch (kind) {
	case HD_CPROXY_SUBSCRIBE:
		return ns->proxy_subscribe;
	case HD_CPROXY_PUBLISH:
		return ns->proxy_publish;
	case HD_CPROXY_SUB_REFRESH:
		return ns->proxy_sub_refresh;
	default:
		return true;
	}
}

/* What every proxy call says about the session. */
static struct hd_cproxy_req proxy_req(const struct session *s, enum hd_cproxy_kind kind)
{
	return (struct hd_cproxy_req){
		.kind = kind,
		.client = s->conn.id,
		.transport = hd_ws_edge_carrier_names[s->carrier],
		.protocol = s->format == F_PB ? "protobuf" : "json",
		.binary = s->format == F_PB,
		.user = s->conn.user,
	};
}

/* The refresh proxy answered: the session's expiry moves, or it ends. */
static void refresh_done(void *arg, const struct hd_cproxy_answer *a)
{
	struct op *op = arg;
	struct session *s = op->s;
	int64_t now_s = hd_now_ms() / 1000;

	if (hd_ws_subs_op_orphaned(op))
		return;
	s->op = NULL;
	hd_ws_subs_op_free(op);
	if (a->outcome == HD_CPROXY_FAILED || a->outcome == HD_CPROXY_ERROR) {
		/* Reconnectable: the client connects again through the connect proxy. */
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "internal server error: refresh failed");
		return;
	}
	if (a->outcome == HD_CPROXY_DISCONNECT) {
		hd_ws_edge_session_close(s, (uint16_t)a->code, a->message);
		return;
	}
	if (a->expired || (a->expire_at && a->expire_at <= now_s)) {
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_EXPIRED, "expired");
		return;
	}
	s->token_exp = a->expire_at;
	s->expire_at = a->expire_at ? hd_ws_edge_mono() + (a->expire_at - now_s) * 1000 : 0;
	if (a->info)
		conn_info_set(s, a->info, a->info_len);
	/* The client learns its new expiry, as from Centrifugo (Push.refresh). */
	struct hd_buf b;
	hd_buf_init(&b, REPLY_MAX);
	int64_t ttl = a->expire_at ? a->expire_at - now_s : 0;
	if (s->codec->push_refresh(&b, a->expire_at != 0, (uint32_t)(ttl > UINT32_MAX ? UINT32_MAX : ttl)))
		hd_buf_reset(&b);
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
	if (s->state == S_CLOSING)
		return; /* a slow client, closed by the write */
	hd_ws_edge_timer_arm(s);
	hd_ws_edge_pump(s);
}

void hd_ws_commands_refresh(struct session *s)
{
	struct hd_centrifuge_command cmd = {.id = 0, .method = HD_CENTRIFUGE_REFRESH};
	struct hd_cproxy_req r = proxy_req(s, HD_CPROXY_REFRESH);
	struct op *op = op_new(s, &cmd);
	s->expire_at = 0;
	int rc = hd_cproxy_send(s->edge->opts.cproxy, &r, refresh_done, op);
	if (rc) {
		s->op = NULL;
		hd_ws_subs_op_free(op);
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "internal server error: refresh failed");
	}
}

/*
 * The sub-refresh proxy answered for the subscription op->topic, as
 * Centrifugo's does: result.expire_at extends it (absent or 0: it no longer
 * expires) and its info, when present, becomes the chan info; expired, an
 * expire_at already past or an error answer end it (the unsubscribe push
 * 2501); a disconnect closes the session; a failing backend leaves it and
 * herald asks again sub_refresh_retry_ms later. The client is not told of
 * an extension (Centrifugo sends nothing for a server-side sub refresh).
 */
static void sub_refresh_done(void *arg, const struct hd_cproxy_answer *a)
{
	struct op *op = arg;
	struct session *s = op->s;
	int64_t now_s = hd_now_ms() / 1000, now = hd_ws_edge_mono();

	if (hd_ws_subs_op_orphaned(op))
		return;
	s->op = NULL;
	/* Gone meanwhile (its topic deleted): nothing to refresh. Commands
	 * waited for this call, so no other subscription took its name. */
	struct chan_sub *sub = hd_ws_subs_sub_find(s, op->topic);
	hd_ws_subs_op_free(op);
	if (sub && a->outcome == HD_CPROXY_FAILED) {
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		sub->expire_at = now + s->edge->opts.sub_refresh_retry_ms;
	} else if (sub && a->outcome == HD_CPROXY_DISCONNECT) {
		hd_ws_edge_session_close(s, (uint16_t)a->code, a->message);
		return;
	} else if (sub && (a->outcome == HD_CPROXY_ERROR || a->expired ||
			   (a->expire_at && a->expire_at <= now_s))) {
		hd_ws_subs_expire(s, sub);
	} else if (sub) {
		sub->expire_at = a->expire_at ? now + (a->expire_at - now_s) * 1000 : 0;
		if (a->info)
			hd_ws_subs_chan_info_set(sub, a->info, a->info_len);
	}
	if (!s->req || s->state == S_CLOSING)
		return; /* a slow client, closed by the write */
	hd_ws_commands_sub_expiry(s); /* the next expired one, if any */
	if (!s->op)
		hd_ws_edge_pump(s);
}

/* Asks the sub-refresh proxy about sub (as the session's op). Returns
 * false when the call could not start: sub is then asked about again
 * sub_refresh_retry_ms later. */
static bool sub_refresh_start(struct session *s, struct chan_sub *sub)
{
	struct hd_centrifuge_command cmd = {.id = 0, .method = HD_CENTRIFUGE_SUB_REFRESH};
	struct hd_cproxy_req r = proxy_req(s, HD_CPROXY_SUB_REFRESH);
	r.channel = sub->name;
	struct op *op = op_new(s, &cmd);
	snprintf(op->topic, sizeof(op->topic), "%s", sub->name);
	sub->expire_at = 0;
	if (hd_cproxy_send(s->edge->opts.cproxy, &r, sub_refresh_done, op) == 0)
		return true;
	s->op = NULL;
	hd_ws_subs_op_free(op);
	hd_metrics_inc(HD_M_ws_proxy_failures_total);
	sub->expire_at = hd_ws_edge_mono() + s->edge->opts.sub_refresh_retry_ms;
	return false;
}

void hd_ws_commands_sub_expiry(struct session *s)
{
	int64_t now = hd_ws_edge_mono();
	size_t i = 0;
	while (i < s->nsubs && !s->op && s->req && s->state == S_READY) {
		struct chan_sub *sub = s->subs[i];
		if (!sub->expire_at || sub->expire_at > now)
			i++;
		else if (proxy_on(s, HD_CPROXY_SUB_REFRESH, sub->name))
			i += !sub_refresh_start(s, sub);
		else
			hd_ws_subs_expire(s, sub); /* s->subs[i] is another one now */
	}
	if (s->req && s->state == S_READY)
		hd_ws_subs_expiry_arm(s);
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
	const char *channel = kind == HD_CPROXY_SUBSCRIBE || kind == HD_CPROXY_PUBLISH ? cmd->sub.channel : NULL;
	if (!proxy_on(s, kind, channel))
		return false;
	struct hd_cproxy_req r = proxy_req(s, kind);
	r.channel = channel;
	r.method = kind == HD_CPROXY_RPC ? cmd->rpc_method : NULL;
	r.name = kind == HD_CPROXY_CONNECT ? cmd->name : NULL;
	r.version = kind == HD_CPROXY_CONNECT ? cmd->version : NULL;
	r.data = data;
	r.data_len = n;
	r.get = kind == HD_CPROXY_CONNECT ? hd_cproxy_headers_get : NULL;
	r.get_arg = s->proxy_headers;
	struct op *op = op_new(s, cmd);
	op->line = hd_malloc(s->line_len);
	memcpy(op->line, s->line, s->line_len);
	op->line_len = s->line_len;
	int rc = hd_cproxy_send(p, &r, proxy_done, op);
	if (rc) {
		s->op = NULL;
		hd_ws_subs_op_free(op);
		hd_metrics_inc(HD_M_ws_proxy_failures_total);
		if (rc == HD_ELIMIT)
			hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS,
				    "too many requests: app backend calls in flight (--proxy-max-inflight)", true);
		else if (rc == HD_EINVAL)
			hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "bad request: not UTF-8", false);
		else
			hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal server error", true);
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

/* Delta compression when req (a subscribe or a connect.subs entry; NULL:
 * none) asks for it by name; any other is not negotiated. */
static void sub_delta_set(struct chan_sub *sub, const struct hd_centrifuge_sub_req *req)
{
	sub->delta = req && req->delta && strcmp(req->delta, "fossil") == 0;
}

static const struct hd_centrifuge_sub_req *connect_sub_req(const struct hd_centrifuge_command *cmd, const char *topic)
{
	for (size_t i = 0; i < cmd->nsubs; i++)
		if (strcmp(cmd->subs[i].channel, topic) == 0)
			return &cmd->subs[i];
	return NULL;
}

/* A JSON client gets a server-side subscription's data as JSON: the subs
 * claim's b64data (o[0, n), NULL: none) must decode to a JSON text, then
 * kept minified. Returns false when one does not. */
static bool chan_opts_json(struct hd_jwt_sub *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++) {
		struct hd_json_text_scan scan = {0};
		if (!o[i].data_b64)
			continue;
		if (hd_json_text_minify(o[i].data, o[i].data_len, o[i].data, &scan, NULL))
			return false;
		o[i].data_len = scan.out_len;
		o[i].data[scan.out_len] = '\0';
	}
	return true;
}

static void cmd_connect(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct hd_ws_edge *e = s->edge;
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	int64_t now_s = hd_now_ms() / 1000;

	if (s->state != S_NEW) {
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "already connected");
		return;
	}
	memset(&claims, 0, sizeof(claims));
	if (!cmd->token[0] && proxy_start(s, cmd, HD_CPROXY_CONNECT, cmd->data.p, cmd->data.n))
		return;
	if (!cmd->token[0]) {
		if (!e->opts.anonymous) {
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "token required");
			return;
		}
	} else {
		int rc = hd_jwt_verify(e->opts.keys, cmd->token, strlen(cmd->token), now_s, &claims, &err);
		if (rc == HD_EEXPIRED) {
			hd_jwt_claims_fini(&claims);
			hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
			return;
		}
		if (rc) {
			hd_log_info("ws invalid token client=%s remote=%s: %s", s->conn.id, s->conn.remote,
				    err.msg);
			hd_jwt_claims_fini(&claims);
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "invalid token");
			return;
		}
		if (strlen(claims.sub) > HD_USER_ID_MAX || strchr(claims.sub, ':')) {
			hd_jwt_claims_fini(&claims);
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, "invalid token: bad sub");
			return;
		}
		if (s->format != F_PB && !chan_opts_json(claims.subs, claims.nchannels)) {
			hd_jwt_claims_fini(&claims);
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN,
						 "invalid token: b64data is not JSON (JSON protocol)");
			return;
		}
		snprintf(s->conn.user, sizeof(s->conn.user), "%s", claims.sub);
		/* Kept for the `token` namespace rule of later subscribes. */
		if (claims.nchannels) {
			s->channels = claims.channels;
			s->chan_opts = claims.subs;
			s->nchannels = claims.nchannels;
			claims.channels = NULL;
			claims.subs = NULL;
			claims.nchannels = 0;
		}
	}
	if (claims.info)
		conn_info_set(s, claims.info, strlen(claims.info));
	int64_t exp = claims.exp;
	hd_jwt_claims_fini(&claims);
	connect_accept(s, cmd, exp, NULL, 0);
}

/* The token's subs claim options for topic, or NULL. */
static const struct hd_jwt_sub *chan_opts_find(const struct session *s, const char *topic)
{
	for (size_t i = 0; s->chan_opts && i < s->nchannels; i++)
		if (strcmp(s->channels[i], topic) == 0)
			return &s->chan_opts[i];
	return NULL;
}

/* Adds the server-side subscription to topic to the connect op, with its
 * subs options (chan_info, reply data, join/leave pushes and announces). */
static void server_sub_add(struct session *s, struct op *op, const struct hd_centrifuge_command *cmd,
			   const char *topic)
{
	const struct hd_jwt_sub *o = chan_opts_find(s, topic);
	const char *info = o ? o->info : NULL;
	int announce = o && o->join_leave_set ? o->join_leave : -1;
	struct chan_sub *sub = hd_ws_subs_sub_add(s, topic, true, info, info ? strlen(info) : 0, announce);
	if (!sub)
		return;
	sub_delta_set(sub, connect_sub_req(cmd, topic));
	sub->join_leave = o && o->push_join_leave;
	op_add_init(op, sub, connect_sub_req(cmd, topic));
	if (o) {
		op->inits[op->ninits - 1].data = o->data;
		op->inits[op->ninits - 1].data_len = o->data_len;
	}
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

	/* Server-side subscriptions: user:U and the token's channels (with
	 * their subs claim's info and data). */
	struct op *op = op_new(s, cmd);
	op_keep_data(op, data, n);
	op->inits = hd_calloc(1 + s->nchannels, sizeof(*op->inits));
	if (s->conn.user[0]) {
		char topic[HD_TOPIC_NAME_MAX + 1];
		snprintf(topic, sizeof(topic), "user:%s", s->conn.user);
		if (hd_topic_name_check(topic, strlen(topic), NULL) == 0)
			server_sub_add(s, op, cmd, topic);
	}
	for (size_t i = 0; i < s->nchannels; i++) {
		const char *t = s->channels[i];
		if (hd_topic_name_check(t, strlen(t), NULL) || hd_ws_subs_sub_find(s, t) ||
		    hd_ws_subs_allowed(s, t, HD_ACL_SUBSCRIBE, NULL) ||
		    s->nsubs >= e->opts.max_subscriptions)
			continue;
		server_sub_add(s, op, cmd, t);
	}
	if (exp && s->server_refresh) {
		/* The refresh proxy extends it when it comes: the client is not
		 * told (Centrifugo's server-side refresh), and no grace. */
		s->token_exp = exp;
		s->expire_at = hd_ws_edge_mono() + (exp > now_s ? (exp - now_s) * 1000 : 0);
	} else if (exp) {
		s->token_exp = exp;
		op->expires = true;
		op->ttl = exp > now_s ? (uint32_t)(exp - now_s) : 1;
		s->expire_at = hd_ws_edge_mono() + (exp - now_s) * 1000 + e->opts.expiry_grace_ms;
	}
	s->ping_due = hd_ws_edge_mono() + e->opts.ping_interval_ms;
	hd_ws_edge_timer_arm(s);
	hd_ws_subs_op_step(op);
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
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
		return;
	}
	if (rc || strcmp(claims.sub, s->conn.user) != 0) {
		hd_jwt_claims_fini(&claims);
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INVALID_TOKEN, rc ? "invalid token" : "token of another user");
		return;
	}
	uint32_t ttl = 0;
	if (claims.exp) {
		s->token_exp = claims.exp;
		ttl = claims.exp > now_s ? (uint32_t)(claims.exp - now_s) : 1;
		s->expire_at = hd_ws_edge_mono() + (claims.exp - now_s) * 1000 + s->edge->opts.expiry_grace_ms;
	} else {
		s->token_exp = 0;
		s->expire_at = 0;
	}
	hd_jwt_claims_fini(&claims);
	struct hd_buf b;
	hd_buf_init(&b, 1024);
	s->codec->reply_refresh(&b, cmd->id, s->conn.id, VERSION, ttl != 0, ttl);
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
	hd_ws_edge_timer_arm(s);
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
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "channel required", false);
		return false;
	}
	if (hd_topic_name_check(t, strlen(t), &err)) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_UNKNOWN_CHANNEL, err.msg, false);
		return false;
	}
	if (hd_ws_subs_allowed(s, t, op, sub_channel)) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED, "permission denied", false);
		return false;
	}
	return true;
}

/*
 * A subscription token (subscribe's `token`): a JWT whose `channel` is the
 * topic and whose `sub` is the connection's user. Returns true with the
 * channel in chan (HD_TOPIC_NAME_MAX + 1 bytes, "" when no token was
 * given) and its `info` claim in *info (returns owned minified JSON, or
 * NULL); replies the error and returns false when it is expired or bad.
 */
static bool sub_token_ok(struct session *s, const struct hd_centrifuge_command *cmd, char *chan, char **info)
{
	struct hd_jwt_claims claims;
	struct hd_error err = {0};
	const char *tok = cmd->sub.token;
	bool ok;

	chan[0] = '\0';
	*info = NULL;
	if (!tok || !tok[0])
		return true;
	memset(&claims, 0, sizeof(claims));
	int rc = hd_jwt_verify(s->edge->opts.keys, tok, strlen(tok), hd_now_ms() / 1000, &claims, &err);
	if (rc == HD_EEXPIRED) {
		hd_jwt_claims_fini(&claims);
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
		return false;
	}
	ok = rc == 0 && claims.channel && strcmp(claims.channel, cmd->sub.channel) == 0 &&
	     strcmp(claims.sub, s->conn.user) == 0;
	if (ok) {
		snprintf(chan, HD_TOPIC_NAME_MAX + 1, "%s", claims.channel);
		*info = claims.info;
		claims.info = NULL;
	} else
		hd_log_info("ws subscription token refused client=%s channel=%s: %s", s->conn.id,
			    cmd->sub.channel, rc ? err.msg : "channel or sub does not match");
	hd_jwt_claims_fini(&claims);
	if (!ok)
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED,
			    "permission denied: invalid subscription token", false);
	return ok;
}

static void cmd_subscribe(struct session *s, const struct hd_centrifuge_command *cmd)
{
	char chan[HD_TOPIC_NAME_MAX + 1];
	char *info = NULL;
	if (cmd->sub.type != 0) {
		/* Map (1-3) and shared-poll (4) subscriptions: a normal stream
		 * reply would leave the SDK waiting for a state it never gets. */
		char msg[128];
		snprintf(msg, sizeof(msg), "not available: subscription type %d (%s); herald has stream "
			 "subscriptions only", (int)cmd->sub.type,
			 cmd->sub.type == 4 ? "shared poll" : cmd->sub.type <= 3 && cmd->sub.type > 0 ? "map" : "unknown");
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_NOT_AVAILABLE, msg, false);
		return;
	}
	if (!sub_token_ok(s, cmd, chan, &info) ||
	    !channel_ok(s, cmd, HD_ACL_SUBSCRIBE, chan[0] ? chan : NULL))
		goto out;
	/* When the subscribe proxy is asked, its answer's info is the
	 * subscription's (a token's info is then not used). */
	if (!hd_ws_subs_sub_find(s, cmd->sub.channel) && s->nsubs < s->edge->opts.max_subscriptions &&
	    proxy_start(s, cmd, HD_CPROXY_SUBSCRIBE, cmd->sub.data.p, cmd->sub.data.n))
		goto out;
	subscribe_accept(s, cmd, NULL, 0, info, info ? strlen(info) : 0, 0);
out:
	free(info);
}

/* A subscribe allowed (by herald's rules and the app backend, if asked);
 * data[0, n): the reply's data (the subscribe proxy's), or NULL;
 * info[0, info_len): the subscription's chan_info (the proxy's or the
 * subscription token's), or NULL; exp: the subscribe proxy's expire_at
 * (Unix s, in the future), 0 = none. The reply carries no expires/ttl for
 * it: the server refreshes it (the sub-refresh proxy), not the client. */
static void subscribe_accept(struct session *s, const struct hd_centrifuge_command *cmd, const char *data,
			     size_t n, const char *info, size_t info_len, int64_t exp)
{
	if (hd_ws_subs_sub_find(s, cmd->sub.channel)) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_ALREADY_SUBSCRIBED, "already subscribed", false);
		return;
	}
	if (s->nsubs >= s->edge->opts.max_subscriptions) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED, "too many subscriptions", false);
		return;
	}
	struct chan_sub *sub = hd_ws_subs_sub_add(s, cmd->sub.channel, false, info, info_len, -1);
	if (!sub) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED, "too many topics watched", true);
		return;
	}
	sub->join_leave = cmd->sub.join_leave;
	sub_delta_set(sub, &cmd->sub);
	if (exp) {
		int64_t now_s = hd_now_ms() / 1000;
		sub->expire_at = hd_ws_edge_mono() + (exp > now_s ? (exp - now_s) * 1000 : 0);
		hd_ws_subs_expiry_arm(s);
	}
	struct op *op = op_new(s, cmd);
	op_keep_data(op, data, n);
	op->inits = hd_calloc(1, sizeof(*op->inits));
	op_add_init(op, sub, &cmd->sub);
	hd_ws_subs_op_step(op);
}

static void cmd_unsubscribe(struct session *s, const struct hd_centrifuge_command *cmd)
{
	struct chan_sub *sub = hd_ws_subs_sub_find(s, cmd->sub.channel);
	if (sub) {
		hd_ws_subs_join_leave(s->edge, s, sub, false); /* while sub still has its chan_info */
		hd_ws_subs_sub_remove(s, sub);
	}
	hd_ws_output_reply_empty(s, cmd->id, HD_CENTRIFUGE_UNSUBSCRIBE);
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
	if (hd_ws_subs_op_orphaned(op))
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
		hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
	} else if (op->epoch[0] && r->epoch[0] && strcmp(op->epoch, r->epoch) != 0 &&
		   strcmp(op->epoch, EPOCH_NEW) != 0) {
		hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_UNRECOVERABLE_POSITION, "unrecoverable position", false);
	} else {
		size_t n = op->limit == 0 ? 0 : r->n;
		bool payload = hd_ws_output_topic_payload(s->edge, op->topic);
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
		hd_ws_output_send_reply(s, &b);
		hd_buf_fini(&b);
		free(pubs);
	}
	s->op = NULL;
	hd_ws_subs_op_free(op);
	hd_ws_edge_pump(s);
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
		hd_ws_subs_op_free(op);
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_INTERNAL, "internal error", true);
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
			hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED,
				    "no new topic can be created (--max-topics-total)", false);
		} else if (op->item.err) {
			hd_metrics_inc(HD_M_publish_errors_total);
			hd_ws_output_reply_error(s, op->id, HD_CENTRIFUGE_ERR_INTERNAL, hd_err_message(op->item.err), true);
		} else {
			hd_ws_output_reply_empty(s, op->id, HD_CENTRIFUGE_PUBLISH);
		}
	}
	if (s) {
		s->op = NULL;
		hd_ws_subs_op_free(op);
		hd_ws_edge_pump(s);
	} else {
		hd_ws_subs_op_free(op);
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
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, "publish.data required", false);
		return;
	}
	if (hd_ratelimit_take(&s->publish_bucket, &s->edge->opts.publish_rate, 1,
			      (int64_t)hd_mono_ms()) > 0) {
		hd_metrics_inc(HD_M_publish_rate_connection_hits_total);
		hd_metrics_inc(HD_M_publish_errors_total);
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS,
			    "too many requests: publishes come faster than --publish-rate-per-connection",
			    true);
		return;
	}
	if (proxy_start(s, cmd, HD_CPROXY_PUBLISH, cmd->data.p, cmd->data.n))
		return;
	publish_accept(s, cmd, cmd->data.p, cmd->data.n);
}

/*
 * Appends the publisher's ClientInfo to a client-published event as
 * herald's own member `client_info` (see proto/centrifuge.h,
 * hd_centrifuge_pub_info): {"user":"u","client":"id"[,"conn_info":<raw
 * JSON>][,"chan_info":<raw JSON>]}, the conn info and the chan info of the
 * publisher's subscription to channel, if any (each at most CONN_INFO_MAX).
 * The name has an underscore, which no CloudEvents attribute can have, so
 * no published event can carry one of its own. Stored with the event, it
 * reaches live subscribers, history and recovery alike (and Redis).
 */
static void publisher_info_add(const struct session *s, const char *channel, struct hd_event *ev)
{
	struct hd_buf b;
	const struct chan_sub *sub = hd_ws_subs_sub_find((struct session *)s, channel);
	bool empty = ev->json_len == 2;

	assert(ev->json_len >= 2 && ev->json[ev->json_len - 1] == '}');
	/* The infos are at most CONN_INFO_MAX each; user and client escaped at
	 * most 6 bytes a byte. */
	hd_buf_init(&b, ev->json_len + 2 * CONN_INFO_MAX + 6 * (HD_USER_ID_MAX + 37) + 128);
	hd_buf_reserve(&b, ev->json_len + 128 + (s->conn_info ? strlen(s->conn_info) : 0) +
				   (sub && sub->chan_info ? strlen(sub->chan_info) : 0));
	hd_buf_append(&b, ev->json, ev->json_len - 1);
	hd_buf_puts(&b, empty ? "\"client_info\":{\"user\":\"" : ",\"client_info\":{\"user\":\"");
	hd_buf_json_escape(&b, s->conn.user, strlen(s->conn.user));
	hd_buf_puts(&b, "\",\"client\":\"");
	hd_buf_json_escape(&b, s->conn.id, strlen(s->conn.id));
	hd_buf_putc(&b, '"');
	if (s->conn_info) {
		hd_buf_puts(&b, ",\"conn_info\":");
		hd_buf_puts(&b, s->conn_info);
	}
	if (sub && sub->chan_info) {
		hd_buf_puts(&b, ",\"chan_info\":");
		hd_buf_puts(&b, sub->chan_info);
	}
	hd_buf_puts(&b, "}}");
	/* id, source and type may live inside the old text: own them first. */
	if (ev->borrowed & HD_EVENT_BORROW_ID)
		ev->id = hd_strdup(ev->id);
	if (ev->borrowed & HD_EVENT_BORROW_SOURCE)
		ev->source = hd_strdup(ev->source);
	if (ev->borrowed & HD_EVENT_BORROW_TYPE)
		ev->type = hd_strdup(ev->type);
	ev->borrowed = 0;
	free(ev->json);
	ev->json = hd_buf_steal(&b, &ev->json_len);
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
		publisher_info_add(s, cmd->sub.channel, &op->batch.events[0]);
	if (!rc)
		rc = hd_hub_event_fits(s->edge->hub, op->topic, op->batch.events[0].json_len, &err);
	if (rc) {
		s->op = NULL;
		hd_ws_subs_op_free(op);
		hd_metrics_inc(HD_M_publish_errors_total);
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_BAD_REQUEST, err.msg, false);
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
		hd_ws_subs_op_free(op);
		hd_metrics_inc(HD_M_publish_errors_total);
		hd_ws_output_reply_error(s, cmd->id, rc == HD_EUNAVAIL ? HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS : HD_CENTRIFUGE_ERR_INTERNAL,
			    hd_err_message(rc), true);
	}
}

/* ---- presence ---- */

/* The conn and chan info of a registry TOPIC item (hub.c writes it,
 * minified: {"id":…,"node":"…"[,"chan_info":<raw JSON>][,"info":<raw JSON>]}):
 * pointers into json. */
static void item_infos(const char *json, struct hd_centrifuge_client_info *c)
{
	struct hd_json_text_span sp[16];
	size_t n = 0, len = json ? strlen(json) : 0;

	if (len < 2 || json[0] != '{' || json[len - 1] != '}' || hd_json_text_members(json, len, sp, 16, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *k = json + sp[i].key_off;
		if (sp[i].key_len == 6 && memcmp(k, "\"info\"", 6) == 0) {
			c->conn_info = json + sp[i].val_off;
			c->conn_info_len = sp[i].val_len;
		} else if (sp[i].key_len == 11 && memcmp(k, "\"chan_info\"", 11) == 0) {
			c->chan_info = json + sp[i].val_off;
			c->chan_info_len = sp[i].val_len;
		}
	}
}

/* The registry answered a presence or presence_stats: followers on every
 * node (the redis engine) or this one. */
static void presence_done(struct hd_hub_reg *q)
{
	struct op *op = q->arg;
	struct session *s = op->s;
	struct hd_buf b;

	if (hd_ws_subs_op_orphaned(op))
		return;
	s->op = NULL;
	if (q->err) {
		hd_ws_output_reply_error(s, op->id, q->err == HD_EUNAVAIL ? HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS : HD_CENTRIFUGE_ERR_INTERNAL,
					 hd_err_message(q->err), false);
		goto out;
	}
	hd_buf_init(&b, REPLY_MAX);
	if (op->method == HD_CENTRIFUGE_PRESENCE) {
		struct hd_centrifuge_client_info *info = hd_calloc(q->n ? q->n : 1, sizeof(*info));
		for (size_t i = 0; i < q->n; i++) {
			info[i].client = q->items[i].id;
			info[i].user = q->items[i].user;
			item_infos(q->items[i].json, &info[i]);
		}
		if (s->codec->reply_presence(&b, op->id, info, q->n))
			hd_buf_reset(&b);
		free(info);
	} else {
		/* Centrifugo counts an anonymous client as one user. */
		size_t users = hd_hub_reg_users(q);
		for (size_t i = 0; i < q->n; i++)
			users += q->items[i].user[0] == '\0';
		s->codec->reply_presence_stats(&b, op->id, (uint32_t)q->n, (uint32_t)users);
	}
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
out:
	hd_ws_subs_op_free(op);
	hd_ws_edge_pump(s);
}

static void cmd_presence(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (!channel_ok(s, cmd, HD_ACL_PRESENCE, NULL))
		return;
	struct op *op = op_new(s, cmd);
	snprintf(op->topic, sizeof(op->topic), "%s", cmd->sub.channel);
	op->reg.kind = HD_REG_TOPIC;
	op->reg.key = op->topic;
	op->reg.done = presence_done;
	op->reg.arg = op;
	int rc = hd_hub_reg_query(s->edge->hub, &op->reg);
	if (rc) {
		s->op = NULL;
		hd_ws_subs_op_free(op);
		hd_ws_output_reply_error(s, cmd->id, rc == HD_EUNAVAIL ? HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS : HD_CENTRIFUGE_ERR_INTERNAL,
					 hd_err_message(rc), false);
	}
}

static void cmd_ping(struct session *s, const struct hd_centrifuge_command *cmd)
{
	hd_ws_output_reply_empty(s, cmd->id, HD_CENTRIFUGE_PING);
}

/* RPC goes to the app backend (--proxy-rpc-url); without one herald has no
 * RPC handlers (Centrifugo without an RPC proxy answers so). */
static void cmd_rpc(struct session *s, const struct hd_centrifuge_command *cmd)
{
	if (proxy_start(s, cmd, HD_CPROXY_RPC, cmd->data.p, cmd->data.n))
		return;
	hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_NOT_AVAILABLE, "not available", false);
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

	if (!hd_ws_subs_sub_find(s, cmd->sub.channel)) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_UNKNOWN_CHANNEL, "not subscribed", false);
		return;
	}
	memset(&claims, 0, sizeof(claims));
	int rc = hd_jwt_verify(s->edge->opts.keys, cmd->token, strlen(cmd->token), now_s, &claims, &err);
	if (rc == HD_EEXPIRED) {
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_TOKEN_EXPIRED, "token expired", false);
	} else if (rc || !claims.channel || strcmp(claims.channel, cmd->sub.channel) != 0 ||
		   strcmp(claims.sub, s->conn.user) != 0) {
		hd_log_info("ws sub_refresh token refused client=%s channel=%s: %s", s->conn.id,
			    cmd->sub.channel, rc ? err.msg : "channel or sub does not match");
		hd_ws_output_reply_error(s, cmd->id, HD_CENTRIFUGE_ERR_PERMISSION_DENIED,
			    "permission denied: invalid subscription token", false);
	} else {
		struct hd_buf b;
		uint32_t ttl = claims.exp ? (claims.exp > now_s ? (uint32_t)(claims.exp - now_s) : 1) : 0;
		hd_buf_init(&b, 256);
		s->codec->reply_sub_refresh(&b, cmd->id, ttl != 0, ttl);
		hd_ws_output_send_reply(s, &b);
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
void hd_ws_commands_run_line(struct session *s, const char *line, size_t len)
{
	struct hd_centrifuge_command cmd;
	struct hd_error err = {0};

	hd_metrics_inc(HD_M_ws_commands_total);
	s->line = line;
	s->line_len = len;
	if (s->codec->decode(line, len, &cmd, &err)) {
		hd_log_info("ws bad command client=%s remote=%s: %s", s->conn.id, s->conn.remote, err.msg);
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "bad request");
		goto out;
	}
	if (cmd.method == HD_CENTRIFUGE_PONG) {
		s->ping_out = false;
		s->pong_due = 0;
		hd_ws_edge_timer_arm(s);
	} else if (cmd.method == HD_CENTRIFUGE_SEND) {
		/* asynchronous messages: nobody listens */
	} else if (cmd.id == 0) {
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "command without id");
	} else if (cmd.method != HD_CENTRIFUGE_CONNECT && s->state != S_READY) {
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "connect first");
	} else if ((size_t)cmd.method < sizeof(commands) / sizeof(commands[0]) && commands[cmd.method]) {
		commands[cmd.method](s, &cmd);
	} else {
		hd_ws_output_reply_error(s, cmd.id, HD_CENTRIFUGE_ERR_METHOD_NOT_FOUND, "method not found", false);
	}
out:
	hd_centrifuge_command_fini(&cmd);
}
