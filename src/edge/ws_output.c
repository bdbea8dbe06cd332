/*
 * ws_output — what a session sends (see edge/ws_edge_impl.h): the two wire
 * formats' codecs, the carrier framing (WebSocket frame, stream chunk, SSE
 * event), replies and errors, and pushes of events: the per-event push frame
 * cache shared by every subscriber of a kind (carrier x format) and fossil
 * delta frames cached by (event, base).
 * Layer: edge. Loop thread only.
 * Callers: edge/ws_edge.c, edge/ws_subs.c, edge/ws_commands.c.
 */
#include "edge/ws_edge_impl.h"

/* ---- Output ------------------------------------------------------------- */

/* One encoded message payload[0, n) of format f as carrier c sends it,
 * in a new buffer: a WebSocket frame (text or binary), a stream chunk, or
 * an SSE event. */
struct hd_rcbuf *hd_ws_output_carrier_frame(enum carrier c, enum format f, const char *payload, size_t n)
{
	uint8_t head[HD_WEBSOCKET_HEADER_MAX];
	const char *pre = "", *post = "";
	size_t hl = 0;
	if (c == C_WS) {
		hl = hd_websocket_frame_header(head, f == F_PB ? HD_WEBSOCKET_BINARY : HD_WEBSOCKET_TEXT, n);
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
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_SLOW, "slow");
		return false;
	}
	return rc == 0;
}

/* Sends the encoded reply in b as one frame of the session's format. */
void hd_ws_output_send_reply(struct session *s, const struct hd_buf *b)
{
	if (b->len == 0) {
		/* The reply did not fit REPLY_MAX: the client would wait for it. */
		hd_ws_edge_session_close(s, HD_CENTRIFUGE_DISC_INTERNAL, "reply too large");
		return;
	}
	struct hd_rcbuf *f = hd_ws_output_carrier_frame(s->carrier, s->format, b->data, b->len);
	send_frame(s, f);
	hd_rcbuf_unref(f);
}

void hd_ws_output_reply_error(struct session *s, uint32_t id, uint32_t code, const char *msg, bool temp)
{
	struct hd_buf b;
	hd_buf_init(&b, 4096);
	hd_metrics_inc(HD_M_ws_errors_total);
	if (s->codec->reply_error(&b, id, code, msg, temp))
		hd_buf_reset(&b);
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
}

void hd_ws_output_reply_empty(struct session *s, uint32_t id, enum hd_centrifuge_method m)
{
	struct hd_buf b;
	hd_buf_init(&b, 256);
	s->codec->reply_empty(&b, id, m);
	hd_ws_output_send_reply(s, &b);
	hd_buf_fini(&b);
}

void hd_ws_output_slot_clear(struct frame_slot *c)
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
bool hd_ws_output_topic_payload(const struct hd_ws_edge *e, const char *topic)
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
		hd_ws_output_slot_clear(c);
		c->json = hd_rcbuf_ref(ev->json);
	}
	if (c->frame[car][fmt])
		return hd_rcbuf_ref(c->frame[car][fmt]);

	struct hd_buf b;
	struct hd_centrifuge_pub pub = {.data = ev->json->data, .len = ev->json->len, .offset = ev->offset,
				       .payload = hd_ws_output_topic_payload(e, topic)};
	hd_buf_init(&b, ev->json->len + 1024);
	hd_centrifuge_codec_of((enum hd_centrifuge_format)fmt)->push_pub(&b, topic, &pub);
	struct hd_rcbuf *f = hd_ws_output_carrier_frame(car, fmt, b.data, b.len);
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
		hd_ws_output_slot_clear(c);
		c->json = hd_rcbuf_ref(ev->json);
		c->base = base ? hd_rcbuf_ref(base) : NULL;
	}
	if (c->frame[car][fmt])
		return hd_rcbuf_ref(c->frame[car][fmt]);

	bool payload = hd_ws_output_topic_payload(e, topic);
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
	hd_centrifuge_codec_of((enum hd_centrifuge_format)fmt)->push_pub(&b, topic, &pub);
	struct hd_rcbuf *f = hd_ws_output_carrier_frame(car, fmt, b.data, b.len);
	hd_buf_fini(&b);
	hd_buf_fini(&d);
	hd_metrics_inc(HD_M_ws_push_encodes_total);
	c->frame[car][fmt] = hd_rcbuf_ref(f);
	return f;
}

/* Sends ev to a live subscription if it is new to it. */
void hd_ws_output_deliver(struct chan_sub *sub, const struct hd_stored_event *ev)
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
