/*
 * ws_edge — see ws_edge.h; the parts of the session share edge/ws_edge_impl.h.
 * This file: the edge (new, stop, free, routes), the session's life cycle
 * (the upgrade or emulation stream that starts it, its timer: connect
 * deadline, pings, expiry; close and release) and its input (WebSocket
 * messages or emulation posts into the inbox, and the pump that runs one
 * command at a time from it).
 * Layer: edge. Loop thread only.
 * Callers: main.c through ws_edge.h; edge/ws_emulation.c; the other
 * edge/ws_*.c files (hd_ws_edge_session_close, _pump, _timer_arm, ...).
 */
#include "edge/ws_edge_impl.h"

static bool pb_frame_ok(const uint8_t *p, size_t n);
static void timer_closed(uv_handle_t *h);
static struct session *session_new(struct hd_ws_edge *e, struct hd_http_request *req, enum carrier c,
				   enum format f);
static void session_start(struct session *s);

const char *const hd_ws_edge_carrier_names[C_COUNT] = {"websocket", "http_stream", "sse"};

struct hd_ws_edge *hd_ws_edge_new(uv_loop_t *loop, struct hd_hub *hub,
				  const struct hd_ws_edge_opts *opts)
{
	struct hd_ws_edge *e = hd_calloc(1, sizeof(*e));
	e->loop = loop;
	e->hub = hub;
	e->opts = *opts;
	hd_map_init(&e->streams, STREAMS_MAX);
	hd_hub_on_join_leave(hub, hd_ws_subs_on_join_leave, e);
	hd_hub_on_topic_gone(hub, hd_ws_subs_on_topic_gone, e);
	if (!e->opts.max_message)
		e->opts.max_message = HD_WEBSOCKET_MESSAGE_MAX_DEFAULT;
	if (!e->opts.sub_refresh_retry_ms)
		e->opts.sub_refresh_retry_ms = 60 * 1000;
	return e;
}

size_t hd_ws_edge_sessions(const struct hd_ws_edge *e)
{
	return e->count;
}

int64_t hd_ws_edge_mono(void)
{
	return (int64_t)hd_mono_ms();
}

/* Runs the first protobuf message of the inbox (checked when it came). */
static void pump_message(struct session *s)
{
	const uint8_t *msg = NULL;
	size_t pos = 0, n = 0;
	int rc = hd_centrifuge_pb_next((const uint8_t *)s->inbox.data, s->inbox.len, &pos, &msg, &n);
	assert(rc == 1);
	(void)rc;
	/* Copy: the command runs while the inbox may grow. */
	char *copy = hd_malloc(n + 1);
	memcpy(copy, msg, n);
	hd_buf_consume(&s->inbox, pos);
	hd_ws_commands_run_line(s, copy, n);
	free(copy);
}

/* Runs the waiting commands in order until one waits for the hub. */
void hd_ws_edge_pump(struct session *s)
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
			hd_ws_commands_run_line(s, line + a, b - a);
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
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "text frame on a protobuf connection");
			return 1;
		}
		if (session_feed(s, m->data, m->len)) {
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "too much unhandled input");
			return 1;
		}
		return 0;
	case HD_WEBSOCKET_BINARY:
		if (s->format != F_PB) {
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST,
				      "binary frame on a JSON connection (ask for centrifuge-protobuf)");
			return 1;
		}
		switch (session_feed(s, m->data, m->len)) {
		case 0:
			return 0;
		case HD_EINVAL:
			hd_log_info("ws bad protobuf frame client=%s remote=%s", s->conn.id, s->conn.remote);
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "bad request");
			return 1;
		default:
			hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_BAD_REQUEST, "too much unhandled input");
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
		hd_ws_edge_session_close(s, m->close_code ? m->close_code : 0, "");
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
		hd_ws_edge_session_close(s, (uint16_t)rc, reason ? reason : "protocol error");
		return;
	}
	if (!s->req || s->state == S_CLOSING)
		return;
	if (!s->read_paused && s->inbox.len > s->edge->opts.max_message) {
		s->read_paused = true;
		hd_http_stream_read(s->req, false);
	}
	hd_ws_edge_pump(s);
}

/* ---- Lifecycle ---------------------------------------------------------- */

void hd_ws_edge_channels_free(struct session *s)
{
	for (size_t i = 0; i < s->nchannels; i++) {
		free(s->channels[i]);
		if (s->chan_opts) {
			free(s->chan_opts[i].info);
			free(s->chan_opts[i].data);
		}
	}
	free(s->channels);
	free(s->chan_opts);
	s->channels = NULL;
	s->chan_opts = NULL;
	s->nchannels = 0;
}

static void session_maybe_free(struct session *s)
{
	if (s->req || !s->timer_closed || s->op)
		return;
	hd_websocket_decoder_free(s->dec);
	hd_buf_fini(&s->inbox);
	free(s->subs);
	hd_ws_edge_channels_free(s);
	free(s->conn_info);
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
		if (sub->live) /* it joined: its reply went out */
			hd_ws_subs_join_leave(e, s, sub, false);
		hd_ws_subs_sub_drop_held(sub);
		if (sub->base)
			hd_rcbuf_unref(sub->base);
		free(sub->chan_info);
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
void hd_ws_edge_session_close(struct session *s, uint16_t code, const char *reason)
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
			struct hd_rcbuf *f = hd_ws_output_carrier_frame(s->carrier, s->format, b.data, b.len);
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

void hd_ws_edge_on_timer(uv_timer_t *t)
{
	struct session *s = t->data;
	int64_t now = hd_ws_edge_mono();
	if (!s->req)
		return;
	/* A connect proxy's expiry with a refresh proxy: herald asks it. */
	if (s->server_refresh && s->expire_at && now >= s->expire_at && s->state == S_READY) {
		if (s->op)
			s->expire_at = now + REFRESH_RETRY_MS;
		else
			hd_ws_commands_refresh(s); /* expire_at is 0 while it runs */
		if (!s->req || s->state == S_CLOSING)
			return;
	}
	/* A subscribe proxy's expiry: herald asks the sub-refresh proxy, or the
	 * subscription ends. */
	if (s->sub_expire_at && now >= s->sub_expire_at && s->state == S_READY) {
		if (s->op)
			s->sub_expire_at = now + REFRESH_RETRY_MS;
		else
			hd_ws_commands_sub_expiry(s);
		if (!s->req || s->state == S_CLOSING)
			return;
	}
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
			hd_ws_edge_session_close(s, ends[i].code, ends[i].reason);
			return;
		}
	}
	if (s->ping_due && now >= s->ping_due) {
		/* The server's ping: an empty reply, {} or a zero-length message. */
		static const char json_ping[] = {(char)0x81, 2, '{', '}'};
		static const char pb_ping[] = {(char)0x82, 1, 0};
		if (s->carrier != C_WS)
			hd_ws_output_reply_empty(s, 0, HD_CENTRIFUGE_PONG);
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
	hd_ws_edge_timer_arm(s);
}

void hd_ws_edge_timer_arm(struct session *s)
{
	int64_t due = s->slow ? hd_ws_edge_mono() : 0;
	int64_t cand[] = {s->connect_due, s->expire_at, s->pong_due, s->ping_due, s->sub_expire_at};
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] && (!due || cand[i] < due))
			due = cand[i];
	if (!due) {
		uv_timer_stop(&s->timer);
		return;
	}
	int64_t now = hd_ws_edge_mono();
	uv_timer_start(&s->timer, hd_ws_edge_on_timer, due > now ? (uint64_t)(due - now) : 0, 0);
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
	s->codec = hd_centrifuge_codec_of((enum hd_centrifuge_format)f);
	hd_uuid_v4(s->conn.id);
	s->conn.transport = hd_ws_edge_carrier_names[c];
	snprintf(s->conn.remote, sizeof(s->conn.remote), "%s", req->remote);
	s->conn.since_ms = hd_now_ms();
	s->conn.topics = hd_ws_subs_conn_topics;
	s->proxy_headers = hd_cproxy_headers_take(e->opts.cproxy, hd_ws_commands_request_header, req);
	return s;
}

/* The connection is the session's: its inbox, timer and place in the edge. */
static void session_start(struct session *s)
{
	struct hd_ws_edge *e = s->edge;
	hd_buf_init(&s->inbox, 4 * e->opts.max_message);
	uv_timer_init(e->loop, &s->timer);
	s->timer.data = s;
	s->connect_due = hd_ws_edge_mono() + e->opts.connect_timeout_ms;
	hd_ratelimit_init(&s->publish_bucket, &e->opts.publish_rate, (int64_t)hd_mono_ms());
	s->next = e->sessions;
	if (e->sessions)
		e->sessions->prev = s;
	e->sessions = s;
	e->count++;
	hd_metrics_gauge_add(HD_M_ws_sessions, 1);
	hd_ws_edge_timer_arm(s);
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
	hd_ws_edge_pump(s);
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
	hd_ws_edge_pump(s);
	return 0;
}

void hd_ws_edge_stop(struct hd_ws_edge *e)
{
	e->stopping = true;
	while (e->sessions)
		hd_ws_edge_session_close(e->sessions, HD_CENTRIFUGE_DISC_SHUTDOWN, "shutdown");
}

void hd_ws_edge_free(struct hd_ws_edge *e)
{
	assert(e->count == 0);
	hd_hub_off_join_leave(e->hub, hd_ws_subs_on_join_leave, e);
	hd_hub_off_topic_gone(e->hub, hd_ws_subs_on_topic_gone, e);
	for (size_t i = 0; i < FRAME_CACHE; i++) {
		hd_ws_output_slot_clear(&e->cache[i]);
		hd_ws_output_slot_clear(&e->delta_cache[i]);
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
