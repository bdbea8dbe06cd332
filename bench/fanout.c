/*
 * herald-fanout — the fan-out load generator of bench/fanout.sh.
 *
 * One process, one libuv loop. It opens N subscriber connections
 * (WebSocket or Server-Sent Events) to one topic of a server, waits until
 * every one is subscribed, then publishes with HTTP POSTs on a few
 * keep-alive connections of the same loop and measures what the
 * subscribers receive:
 *
 *   --rate R      R messages/s for --duration seconds (latency runs);
 *   (no --rate)   saturation: at most --window messages outstanding, a
 *                 message counting as done once 99% of the live subscribers
 *                 got it (or after --stall-ms, then counted as stalled);
 *   --idle        no publishing: the server's RSS (--server-pids) before
 *                 connecting and after every subscriber is subscribed, per
 *                 connection.
 *
 * Each body is {"t":<uv_hrtime ns at send>,"s":<seq>,"pad":"…"}; a
 * subscriber finds "t" and "s" in what it receives, so publish-to-receive
 * latency is one clock (CLOCK_MONOTONIC of this process) and each
 * subscriber checks its sequence for gaps and duplicates. Latencies go to a
 * fixed log-linear histogram (64 linear buckets, then 32 per power of two:
 * at most 3% relative error); nothing is allocated per message.
 *
 * Targets (--target):
 *   herald  WS  GET /connection/websocket, then one masked text frame
 *               {"connect":{},"id":1}\n{"subscribe":{"channel":"bench"},"id":2};
 *               subscribed on the reply with id 2; server pings "{}" are
 *               answered "{}"; publications are
 *               {"push":{"channel":"bench","pub":{"data":<the body we posted>,…}}}
 *               (ws-publication = payload, the default; with envelope the
 *               data is the whole CloudEvent around it: both carry "t" and "s").
 *           WS with --format protobuf: ?format=protobuf, the same two
 *               commands delimited in one binary frame; replies and
 *               pushes are delimited in binary frames, the push's
 *               Publication.data holding the posted body's bytes.
 *           SSE GET /v1/topics/bench/sse; subscribed on the 200 head.
 *           POST /v1/topics/bench/events (Content-Type: application/json).
 *   nchan   WS and SSE on /sub/bench (the frame or the data line is the raw
 *           body); POST /pub/bench. Subscribed on the 101 / 200 head.
 *
 * The WebSocket client is the minimum of RFC 6455 a subscriber needs:
 * client frames masked (random key per frame), server frames unmasked,
 * fragmented messages reassembled, pings answered, a close frame ends the
 * connection (its code is counted). The handshake checks the 101 status but
 * not Sec-WebSocket-Accept (both servers are trusted here). The SSE parser
 * reads identity (not chunked) bodies, as both servers send them.
 *
 * Reads go into one shared 64 KiB buffer; a connection holds bytes only
 * while a frame or line is incomplete (capped at 1 MiB).
 *
 * The latency breakdown (--rate runs, messages sent while measuring): the
 * publish's HTTP round trip (request written -> response read), each
 * message's first delivery and its last delivery (send -> receive, over
 * the subscribers that got it), and this process's CPU per delivery. The
 * client reads its sockets one after another on one loop, so a message's
 * last delivery includes the client's own reads of every other subscriber:
 * on loopback each read also sends the ACK and runs the server socket's
 * receive path. --delayed-ack re-enters delayed-ACK mode after every read
 * (TCP_QUICKACK 0), so that the ACKs go out on the kernel's timer.
 *
 * Output: one JSON line on stdout per run; progress on stderr.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FO_READ_BUF (64 * 1024)
#define FO_PEND_MAX (1024 * 1024)
#define FO_HEAD_MAX (16 * 1024)
#define FO_SEQ_RING 8192 /* > --window */
#define FO_PUBS_MAX 16
#define FO_PIDS_MAX 16
#define FO_HIST_BUCKETS 1152 /* values up to 2^36 µs */

/* ---- options --------------------------------------------------------- */

enum fo_target { FO_HERALD, FO_NCHAN };
enum fo_proto { FO_WS, FO_SSE };

static struct {
	enum fo_target target;
	enum fo_proto proto;
	const char *host;
	int port;
	int subs;
	double rate;       /* messages/s; 0 = saturation */
	double duration;   /* seconds of publishing */
	int window;        /* saturation: outstanding messages */
	int pubs;          /* publisher connections */
	int payload;       /* body bytes (about) */
	int max_connecting;
	int settle_ms;     /* pause between "all subscribed" and the first publish */
	int stall_ms;
	int drain_ms;
	int subscribe_timeout_s;
	bool idle;
	bool protobuf;     /* herald WS: the protobuf format (?format=protobuf, binary frames) */
	bool delayed_ack;  /* subscribers re-enter delayed-ACK mode after every read */
	int port_lo, port_hi; /* --source-ports: subscribers bind these source ports in turn */
	int connect_batch; /* connect() calls per loop turn; 0 = as many as --max-connecting allows */
	const char *jwt_secret; /* herald WS: connect with an HS256 token (sub "u<index>") */
	double hold;       /* idle: seconds to keep the connections open after measuring */
	int pids[FO_PIDS_MAX];
	int npids;
	/* Several nodes: subscriber i connects to sub_ports[i % nsub_ports];
	 * the publishers to pub_port (both default to port). */
	int sub_ports[FO_PIDS_MAX];
	int nsub_ports;
	int pub_port;
	const char *label;
} opt = {
	.target = FO_HERALD, .proto = FO_WS, .host = "127.0.0.1", .port = 8080,
	.subs = 1000, .rate = 0, .duration = 10, .window = 16, .pubs = 4, .payload = 100,
	.max_connecting = 256, .settle_ms = 500, .stall_ms = 2000, .drain_ms = 3000,
	.subscribe_timeout_s = 120,
};

/* ---- the latency histogram -------------------------------------------- */

struct fo_hist {
	uint64_t b[FO_HIST_BUCKETS];
	uint64_t n, max_us;
};

/* Publish -> receive of every delivery; and, per message (rate mode, sent
 * while measuring), the publish's HTTP round trip (POST written -> 201
 * read), its first delivery and its last delivery (send -> receive). */
static struct fo_hist hist, hist_pub, hist_first, hist_last;

static unsigned hist_index(uint64_t us)
{
	if (us < 64)
		return (unsigned)us;
	if (us >= (UINT64_C(1) << 36))
		us = (UINT64_C(1) << 36) - 1;
	unsigned g = 63u - (unsigned)__builtin_clzll(us); /* 6 … 35 */
	unsigned shift = g - 5;
	return shift * 32 + (unsigned)(us >> shift); /* (us >> shift) in [32, 64) */
}

/* The middle of bucket i, in µs. */
static double hist_value(unsigned i)
{
	if (i < 64)
		return i;
	unsigned shift = i / 32 - 1;
	uint64_t lo = (uint64_t)(i % 32 + 32) << shift;
	return (double)lo + (double)((UINT64_C(1) << shift) - 1) / 2.0;
}

static void hist_add(struct fo_hist *h, uint64_t ns)
{
	uint64_t us = ns / 1000;
	h->b[hist_index(us)]++;
	h->n++;
	if (us > h->max_us)
		h->max_us = us;
}

static double hist_pct(const struct fo_hist *h, double p)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)((double)h->n * p / 100.0);
	if (want >= h->n)
		want = h->n - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < FO_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want)
			return hist_value(i);
	}
	return (double)h->max_us;
}

/* ---- state -------------------------------------------------------------- */

enum fo_sub_state { SUB_IDLE, SUB_CONNECTING, SUB_HEAD, SUB_SUBSCRIBING, SUB_LIVE, SUB_CLOSED };

struct fo_sub {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uint8_t state;
	bool has_data;     /* SSE: the event being read had a usable data line */
	int64_t ev_t, ev_s;
	char *pend;        /* unparsed bytes (an incomplete frame, line or head) */
	uint32_t plen, pcap;
	char *frag;        /* WS: a fragmented message being reassembled */
	uint32_t flen;
	uint64_t next_seq; /* the lowest sequence not yet received */
	uint64_t seen;     /* bit i: next_seq + 1 + i was received (reordering) */
	/* µs since the start: connect() called, TCP connected, 101 read,
	 * subscribe reply read (the phases of the connect report). */
	uint32_t us_start, us_conn, us_up, us_sub;
};

struct fo_pub {
	uv_tcp_t tcp;
	uv_connect_t creq;
	bool connected, busy, closing;
	bool writing; /* wreq is in use until its callback, which may come after the response */
	char req[FO_HEAD_MAX];
	char resp[FO_HEAD_MAX];
	size_t rlen;
	int64_t body_left; /* -1 while the head is incomplete */
	int status;
	uint64_t sent_ns; /* the request in flight was written (stamped) then; 0: not measured */
	uv_write_t wreq;
};

enum fo_phase { PH_CONNECT, PH_SETTLE, PH_RUN, PH_DRAIN, PH_DONE };

static uv_loop_t *loop;
static struct fo_sub *subs;
static struct fo_pub pubs[FO_PUBS_MAX];
static char readbuf[FO_READ_BUF];
static bool readbuf_busy;
static uv_timer_t tick_timer, phase_timer;
static uv_idle_t connect_idle; /* --connect-batch: the next batch after this loop turn's I/O */
static enum fo_phase phase = PH_CONNECT;
static const char *sub_path, *pub_path;
static char sub_request[1024];
static size_t sub_request_len;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static int next_to_connect, connecting, subscribed, sub_done, live;
static uint64_t start_ns, connect_done_ns, t0, t_end, last_deliver_ns;

static struct {
	uint64_t published, pub_errors, pub_http_errors, pub_reconnects;
	uint64_t deliveries, window_deliveries, gaps, dups, strays;
	uint64_t connect_errors, handshake_errors, subscribe_errors, disconnects;
	uint64_t ws_closes, last_close_code, pongs, stalled, max_pub_lag_us;
} st;

/* Saturation window: per-sequence delivery counts for the outstanding ones. */
static uint32_t seq_count[FO_SEQ_RING];
static uint64_t seq_sent_ns[FO_SEQ_RING];
/* Rate mode: a message's first and last delivery (0: none yet), and whether
 * it was sent while measuring; folded into hist_first / hist_last when its
 * slot is reused or at the end. */
static uint64_t seq_first_ns[FO_SEQ_RING], seq_last_ns[FO_SEQ_RING];
static bool seq_measured[FO_SEQ_RING];
static uint64_t oldest; /* the oldest message not yet done */

static uint64_t rss_before_kb, rss_after_kb;
static uint64_t srv_cpu_t0, srv_cpu_t1; /* clock ticks */
static struct rusage ru0, ru1;
static struct rusage ru_start, ru_connected;      /* the connect phase, this process */
static uint64_t srv_cpu_start, srv_cpu_connected; /* the connect phase, the servers (ticks) */

static void pump(void);
static void finish(void);

static uint32_t since_start_us(void)
{
	return (uint32_t)((uv_hrtime() - start_ns) / 1000);
}

static uint32_t rnd32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "fanout: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

/* ---- /proc ------------------------------------------------------------ */

static uint64_t proc_rss_kb(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	uint64_t kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtoull(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static uint64_t proc_cpu_ticks(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return 0;
	unsigned long ut = 0, stt = 0;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
		return 0;
	return ut + stt;
}

static uint64_t servers_rss_kb(void)
{
	uint64_t kb = 0;
	for (int i = 0; i < opt.npids; i++)
		kb += proc_rss_kb(opt.pids[i]);
	return kb;
}

static uint64_t servers_cpu_ticks(void)
{
	uint64_t t = 0;
	for (int i = 0; i < opt.npids; i++)
		t += proc_cpu_ticks(opt.pids[i]);
	return t;
}

/* ---- writing ------------------------------------------------------------ */

struct fo_wreq {
	uv_write_t req;
	char data[];
};

static void on_write_copy(uv_write_t *req, int status)
{
	free(req);
}

/* Writes data now if the socket takes it, else queues a copy. */
static int write_copy(uv_stream_t *s, const char *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	int n = uv_try_write(s, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN)
		return n;
	if (n < 0)
		n = 0;
	struct fo_wreq *w = xrealloc(NULL, sizeof(*w) + len - (size_t)n);
	memcpy(w->data, data + n, len - (size_t)n);
	b = uv_buf_init(w->data, (unsigned)(len - (size_t)n));
	int rc = uv_write(&w->req, s, &b, 1, on_write_copy);
	if (rc)
		free(w);
	return rc;
}

/* Sends one masked client frame (FIN set). */
static int ws_send(struct fo_sub *c, int opcode, const char *payload, size_t len)
{
	char frame[14 + 1024];
	size_t h = 0;
	if (len > 1024)
		return UV_EINVAL;
	frame[h++] = (char)(0x80 | opcode);
	if (len < 126) {
		frame[h++] = (char)(0x80 | len);
	} else {
		frame[h++] = (char)(0x80 | 126);
		frame[h++] = (char)(len >> 8);
		frame[h++] = (char)(len & 0xff);
	}
	uint32_t key = rnd32();
	uint8_t k[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8), (uint8_t)key};
	memcpy(frame + h, k, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		frame[h + i] = (char)(payload[i] ^ k[i & 3]);
	return write_copy((uv_stream_t *)&c->tcp, frame, h + len);
}

/* ---- subscribers ---------------------------------------------------------- */

static void connect_more(void);

static void on_sub_close(uv_handle_t *h)
{
	struct fo_sub *c = h->data;
	free(c->pend);
	free(c->frag);
	c->pend = c->frag = NULL;
	c->plen = c->pcap = c->flen = 0;
}

/* The end of one subscriber's connect phase, good or bad: let the next start. */
static void sub_mark_done(bool ok)
{
	connecting--;
	sub_done++;
	if (ok)
		subscribed++;
	if (phase == PH_CONNECT)
		connect_more();
}

static void sub_close(struct fo_sub *c, uint64_t *counter)
{
	if (c->state == SUB_CLOSED)
		return;
	if (counter)
		(*counter)++;
	uint8_t was = c->state;
	c->state = SUB_CLOSED;
	if (was == SUB_LIVE)
		live--;
	if (was == SUB_CONNECTING || was == SUB_HEAD || was == SUB_SUBSCRIBING)
		sub_mark_done(false);
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_sub_close);
}

static void sub_live(struct fo_sub *c)
{
	c->us_sub = since_start_us();
	c->state = SUB_LIVE;
	live++;
	sub_mark_done(true);
}

static uint64_t deliver_now;

/* Finds `"key":` in [p, end) and parses the unsigned number after it. */
static bool find_num(const char *p, const char *end, const char *key, size_t klen, int64_t *out)
{
	const char *q = p;
	while (q < end) {
		const char *m = memmem(q, (size_t)(end - q), key, klen);
		if (!m)
			return false;
		const char *v = m + klen;
		while (v < end && *v == ' ')
			v++;
		if (v < end && *v == ':') {
			v++;
			while (v < end && *v == ' ')
				v++;
			if (v < end && *v >= '0' && *v <= '9') {
				int64_t n = 0;
				while (v < end && *v >= '0' && *v <= '9')
					n = n * 10 + (*v++ - '0');
				*out = n;
				return true;
			}
		}
		q = m + klen;
	}
	return false;
}

static void window_advance(void)
{
	uint64_t need = (uint64_t)((double)live * 0.99 + 0.999);
	if (need == 0)
		need = 1;
	bool moved = false;
	while (oldest < st.published && seq_count[oldest % FO_SEQ_RING] >= need) {
		seq_count[oldest % FO_SEQ_RING] = 0;
		oldest++;
		moved = true;
	}
	if (moved)
		pump();
}

/* next_seq is done (received or given up): move to the next missing one. */
static void seq_step(struct fo_sub *c)
{
	c->next_seq++;
	while (c->seen & 1) {
		c->seen >>= 1;
		c->next_seq++;
	}
	c->seen >>= 1;
}

/* Adds message seq's first and last delivery to their histograms. */
static void seq_fold(uint64_t seq)
{
	size_t i = seq % FO_SEQ_RING;
	if (seq_measured[i] && seq_first_ns[i]) {
		hist_add(&hist_first, seq_first_ns[i] - seq_sent_ns[i]);
		hist_add(&hist_last, seq_last_ns[i] - seq_sent_ns[i]);
	}
	seq_measured[i] = false;
	seq_first_ns[i] = seq_last_ns[i] = 0;
}

static void deliver(struct fo_sub *c, int64_t t, int64_t s)
{
	if (t < 0 || s < 0 || (uint64_t)t < start_ns || (uint64_t)s >= st.published) {
		st.strays++;
		return;
	}
	st.deliveries++;
	if (phase == PH_RUN)
		st.window_deliveries++;
	last_deliver_ns = deliver_now;
	/* Concurrent publishes may commit out of order, so each subscriber
	 * keeps a 64-message window past the lowest missing sequence. */
	uint64_t u = (uint64_t)s;
	if (u < c->next_seq) {
		st.dups++;
	} else {
		while (u - c->next_seq > 64) { /* past the window: the lowest is lost */
			st.gaps++;
			seq_step(c);
		}
		if (u == c->next_seq) {
			seq_step(c);
		} else {
			uint64_t bit = UINT64_C(1) << (u - c->next_seq - 1);
			if (c->seen & bit)
				st.dups++;
			c->seen |= bit;
		}
	}
	hist_add(&hist, deliver_now > (uint64_t)t ? deliver_now - (uint64_t)t : 0);
	if ((uint64_t)s + FO_SEQ_RING > st.published && deliver_now >= (uint64_t)t) {
		size_t i = (size_t)s % FO_SEQ_RING;
		if (!seq_first_ns[i])
			seq_first_ns[i] = deliver_now;
		seq_last_ns[i] = deliver_now;
	}
	if ((uint64_t)s >= oldest) {
		seq_count[s % FO_SEQ_RING]++;
		if ((uint64_t)s == oldest)
			window_advance();
	}
}

static void deliver_text(struct fo_sub *c, const char *p, size_t len)
{
	int64_t t = -1, s = -1;
	const char *end = p + len;
	if (!find_num(p, end, "\"t\"", 3, &t)) {
		st.strays++;
		return;
	}
	if (!find_num(p, end, "\"s\"", 3, &s)) {
		st.strays++;
		return;
	}
	deliver(c, t, s);
}

/* One line of the Centrifugo JSON protocol (herald). */
static void cf_line(struct fo_sub *c, const char *p, size_t len)
{
	if (len == 0)
		return;
	if (len == 2 && p[0] == '{' && p[1] == '}') {
		st.pongs++;
		ws_send(c, 1, "{}", 2);
		return;
	}
	if (len > 8 && !memcmp(p, "{\"push\":", 8)) {
		deliver_text(c, p, len);
		return;
	}
	int64_t id = -1;
	find_num(p, p + len, "\"id\"", 4, &id);
	bool err = memmem(p, len, "\"error\"", 7) != NULL;
	if (id == 1 && err) {
		fprintf(stderr, "fanout: connect refused: %.*s\n", (int)(len > 300 ? 300 : len), p);
		sub_close(c, &st.subscribe_errors);
	} else if (id == 2 && err) {
		fprintf(stderr, "fanout: subscribe refused: %.*s\n", (int)(len > 300 ? 300 : len), p);
		sub_close(c, &st.subscribe_errors);
	} else if (id == 2 && c->state == SUB_SUBSCRIBING) {
		sub_live(c);
	}
}

/* One delimited Reply of the protobuf format (herald): a push (field 4
 * first) holds the posted body's bytes, where "t" and "s" are found as in
 * JSON; the empty one is the server's ping, answered with the empty
 * Command; a reply to id 2 without an error (field 2) is the subscribe's. */
static void pb_reply(struct fo_sub *c, const uint8_t *p, size_t len)
{
	if (len == 0) {
		static const char pong[] = {0};
		st.pongs++;
		ws_send(c, 2, pong, 1);
		return;
	}
	if (p[0] == 0x22) {
		deliver_text(c, (const char *)p, len);
		return;
	}
	if (len >= 3 && p[0] == 0x08 && p[1] <= 2) {
		bool err = p[2] == 0x12;
		if (err) {
			fprintf(stderr, "fanout: command %d refused\n", p[1]);
			sub_close(c, &st.subscribe_errors);
		} else if (p[1] == 2 && c->state == SUB_SUBSCRIBING) {
			sub_live(c);
		}
	}
}

/* Splits a binary frame into its varint-delimited Replies. */
static void pb_message(struct fo_sub *c, const char *p, size_t len)
{
	const uint8_t *u = (const uint8_t *)p, *end = u + len;
	while (u < end && c->state != SUB_CLOSED) {
		uint64_t n = 0;
		int shift = 0;
		while (u < end && shift < 64) {
			n |= (uint64_t)(*u & 0x7f) << shift;
			shift += 7;
			if (!(*u++ & 0x80))
				break;
		}
		if (n > (uint64_t)(end - u)) {
			st.strays++;
			return;
		}
		pb_reply(c, u, (size_t)n);
		u += n;
	}
}

static void ws_message(struct fo_sub *c, const char *p, size_t len)
{
	if (opt.target == FO_NCHAN) {
		deliver_text(c, p, len);
		return;
	}
	if (opt.protobuf) {
		pb_message(c, p, len);
		return;
	}
	const char *end = p + len;
	while (p < end && c->state != SUB_CLOSED) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		cf_line(c, p, (size_t)(e - p));
		p = nl ? nl + 1 : end;
	}
}

/* Parses frames from [p, p+len); returns the bytes consumed. */
static size_t ws_frames(struct fo_sub *c, const char *p, size_t len)
{
	size_t off = 0;
	while (len - off >= 2 && c->state != SUB_CLOSED) {
		const uint8_t *h = (const uint8_t *)p + off;
		bool fin = h[0] & 0x80;
		int opcode = h[0] & 0x0f;
		if ((h[1] & 0x80) || (h[0] & 0x70)) { /* servers never mask; no extensions */
			fprintf(stderr, "fanout: bad frame from server (byte0=0x%02x byte1=0x%02x)\n", h[0], h[1]);
			sub_close(c, &st.disconnects);
			return len;
		}
		uint64_t plen = h[1] & 0x7f;
		size_t hl = 2;
		if (plen == 126) {
			if (len - off < 4)
				break;
			plen = ((uint64_t)h[2] << 8) | h[3];
			hl = 4;
		} else if (plen == 127) {
			if (len - off < 10)
				break;
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = (plen << 8) | h[2 + i];
			hl = 10;
		}
		if (plen > FO_PEND_MAX) {
			fprintf(stderr, "fanout: frame of %" PRIu64 " bytes\n", plen);
			sub_close(c, &st.disconnects);
			return len;
		}
		if (len - off < hl + plen)
			break;
		const char *pl = p + off + hl;
		off += hl + (size_t)plen;
		switch (opcode) {
		case 0x8: { /* close */
			st.ws_closes++;
			if (plen >= 2)
				st.last_close_code = ((uint64_t)(uint8_t)pl[0] << 8) | (uint8_t)pl[1];
			sub_close(c, &st.disconnects);
			return len;
		}
		case 0x9:
			ws_send(c, 0xA, pl, (size_t)plen);
			break;
		case 0xA:
			break;
		case 0x0:
		case 0x1:
		case 0x2:
			if (fin && opcode != 0 && !c->flen) {
				ws_message(c, pl, (size_t)plen);
			} else {
				c->frag = xrealloc(c->frag, c->flen + plen);
				memcpy(c->frag + c->flen, pl, plen);
				c->flen += (uint32_t)plen;
				if (fin) {
					ws_message(c, c->frag, c->flen);
					c->flen = 0;
				}
			}
			break;
		default:
			fprintf(stderr, "fanout: unknown opcode %d\n", opcode);
			sub_close(c, &st.disconnects);
			return len;
		}
	}
	return off;
}

/* Parses SSE lines from [p, p+len); returns the bytes consumed. */
static size_t sse_lines(struct fo_sub *c, const char *p, size_t len)
{
	size_t off = 0;
	while (off < len) {
		const char *nl = memchr(p + off, '\n', len - off);
		if (!nl)
			break;
		size_t l = (size_t)(nl - (p + off));
		const char *line = p + off;
		off += l + 1;
		if (l && line[l - 1] == '\r')
			l--;
		if (l == 0) {
			if (c->has_data)
				deliver(c, c->ev_t, c->ev_s);
			c->has_data = false;
		} else if (l > 5 && !memcmp(line, "data:", 5)) {
			int64_t t, s;
			if (find_num(line, line + l, "\"t\"", 3, &t) && find_num(line, line + l, "\"s\"", 3, &s)) {
				c->ev_t = t;
				c->ev_s = s;
				c->has_data = true;
			}
		}
	}
	return off;
}

/* base64url without padding of [p, p+n) into out (room for 4*n/3+4). */
static size_t b64url(char *out, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
	}
	return o;
}

/* The connect + subscribe commands with an HS256 token whose sub is
 * "u<index>" (as bench/storm.py makes them); minted per connection, so
 * the client pays for it here instead of ahead of time. */
static size_t jwt_hello(char *out, size_t cap, long index)
{
	char payload[64], token[512];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t t = (size_t)snprintf(token, sizeof(token), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.");
	int pl = snprintf(payload, sizeof(payload), "{\"sub\":\"u%ld\"}", index);
	t += b64url(token + t, (const unsigned char *)payload, (size_t)pl);
	HMAC(EVP_sha256(), opt.jwt_secret, (int)strlen(opt.jwt_secret), (const unsigned char *)token, t,
	     mac, &maclen);
	token[t++] = '.';
	t += b64url(token + t, mac, maclen);
	return (size_t)snprintf(out, cap,
				"{\"connect\":{\"token\":\"%.*s\"},\"id\":1}\n"
				"{\"subscribe\":{\"channel\":\"bench\"},\"id\":2}",
				(int)t, token);
}

static void sub_start_protocol(struct fo_sub *c)
{
	if (opt.proto == FO_WS && opt.target == FO_HERALD && opt.jwt_secret) {
		char hello[1024];
		size_t n = jwt_hello(hello, sizeof(hello), (long)(c - subs));
		c->state = SUB_SUBSCRIBING;
		if (n >= sizeof(hello) || ws_send(c, 1, hello, n))
			sub_close(c, &st.handshake_errors);
	} else if (opt.proto == FO_WS && opt.target == FO_HERALD) {
		static const char hello[] = "{\"connect\":{},\"id\":1}\n{\"subscribe\":{\"channel\":\"bench\"},\"id\":2}";
		/* The same two Commands, delimited: {id 1, connect {}}, {id 2,
		 * subscribe {channel "bench"}}. */
		static const char pb_hello[] = "\x04\x08\x01\x22\x00\x0b\x08\x02\x2a\x07\x0a\x05" "bench";
		c->state = SUB_SUBSCRIBING;
		if (opt.protobuf ? ws_send(c, 2, pb_hello, sizeof(pb_hello) - 1) : ws_send(c, 1, hello, sizeof(hello) - 1))
			sub_close(c, &st.handshake_errors);
	} else {
		sub_live(c);
	}
}

/* Parses the response head; returns bytes consumed (0 while incomplete). */
static size_t sub_head(struct fo_sub *c, const char *p, size_t len)
{
	const char *e = memmem(p, len, "\r\n\r\n", 4);
	if (!e) {
		if (len > FO_HEAD_MAX)
			sub_close(c, &st.handshake_errors);
		return 0;
	}
	size_t hl = (size_t)(e - p) + 4;
	int want = opt.proto == FO_WS ? 101 : 200;
	int status = 0;
	if (len > 12 && !memcmp(p, "HTTP/1.", 7))
		status = atoi(p + 9);
	if (status != want) {
		if (st.handshake_errors < 5) {
			const char *cr = memchr(p, '\r', hl);
			fprintf(stderr, "fanout: subscriber got \"%.*s\"\n", (int)(cr - p), p);
		}
		sub_close(c, &st.handshake_errors);
		return len;
	}
	c->us_up = since_start_us();
	if (opt.proto == FO_SSE) {
		/* Only identity bodies are read (see the file header). */
		for (const char *q = p; q < e; q++)
			if ((*q == 'T' || *q == 't') && !strncasecmp(q, "transfer-encoding: chunked", 26)) {
				fprintf(stderr, "fanout: chunked SSE responses are not supported\n");
				sub_close(c, &st.handshake_errors);
				return len;
			}
	}
	sub_start_protocol(c);
	return hl;
}

static size_t sub_parse(struct fo_sub *c, const char *p, size_t len)
{
	size_t off = 0;
	if (c->state == SUB_HEAD) {
		off = sub_head(c, p, len);
		if (off == 0 || c->state == SUB_CLOSED)
			return c->state == SUB_CLOSED ? len : 0;
	}
	if (opt.proto == FO_WS)
		off += ws_frames(c, p + off, len - off);
	else
		off += sse_lines(c, p + off, len - off);
	return off;
}

static void on_sub_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	/* Reads are parsed in the read callback, so one buffer serves all. */
	if (readbuf_busy) {
		b->base = NULL;
		b->len = 0;
		return;
	}
	readbuf_busy = true;
	b->base = readbuf;
	b->len = sizeof(readbuf);
}

static void on_sub_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fo_sub *c = s->data;
	if (b->base == readbuf)
		readbuf_busy = false;
	if (n == 0)
		return;
	if (n < 0) {
		if (c->state == SUB_LIVE && phase != PH_DONE)
			fprintf(stderr, "fanout: subscriber %td disconnected: %s\n", c - subs, uv_strerror((int)n));
		sub_close(c, c->state == SUB_LIVE ? &st.disconnects : &st.handshake_errors);
		return;
	}
	if (c->state == SUB_CLOSED)
		return;
	deliver_now = uv_hrtime();
	if (opt.delayed_ack) {
		/* Linux ACKs a read that empties a pushed segment at once unless
		 * the socket is in "pingpong" (interactive) mode, which
		 * TCP_QUICKACK 0 enters; the delayed-ACK timer leaves it. */
		uv_os_fd_t fd;
		int zero = 0;
		if (uv_fileno((uv_handle_t *)s, &fd) == 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
	}
	const char *p = b->base;
	size_t len = (size_t)n;
	if (c->plen) {
		if (c->plen + len > FO_PEND_MAX) {
			fprintf(stderr, "fanout: subscriber buffer over %d bytes\n", FO_PEND_MAX);
			sub_close(c, &st.disconnects);
			return;
		}
		if (c->plen + len > c->pcap) {
			c->pcap = (uint32_t)(c->plen + len) * 2;
			c->pend = xrealloc(c->pend, c->pcap);
		}
		memcpy(c->pend + c->plen, p, len);
		c->plen += (uint32_t)len;
		p = c->pend;
		len = c->plen;
	}
	size_t used = sub_parse(c, p, len);
	if (c->state == SUB_CLOSED)
		return;
	size_t rest = len - used;
	if (!rest) {
		c->plen = 0;
		if (c->pcap > 64 * 1024) {
			free(c->pend);
			c->pend = NULL;
			c->pcap = 0;
		}
		return;
	}
	if (rest > FO_PEND_MAX) {
		sub_close(c, &st.disconnects);
		return;
	}
	if (p == c->pend) {
		memmove(c->pend, c->pend + used, rest);
	} else {
		if (rest > c->pcap) {
			c->pcap = (uint32_t)(rest < 4096 ? 4096 : rest);
			c->pend = xrealloc(c->pend, c->pcap);
		}
		memcpy(c->pend, p + used, rest);
	}
	c->plen = (uint32_t)rest;
}

static void on_sub_connect(uv_connect_t *req, int status)
{
	struct fo_sub *c = req->data;
	if (status) {
		if (st.connect_errors < 5)
			fprintf(stderr, "fanout: connect: %s\n", uv_strerror(status));
		sub_close(c, &st.connect_errors);
		return;
	}
	c->state = SUB_HEAD;
	c->us_conn = since_start_us();
	int rc = write_copy((uv_stream_t *)&c->tcp, sub_request, sub_request_len);
	if (!rc)
		rc = uv_read_start((uv_stream_t *)&c->tcp, on_sub_alloc, on_sub_read);
	if (rc)
		sub_close(c, &st.handshake_errors);
}

/*
 * --source-ports: a socket bound to the next free port of the range, or
 * -errno. Linux picks an ephemeral port for connect() by scanning the even
 * ports first, then the odd ones, checking each against the connections to
 * the same destination; once about half the range is taken, every further
 * connect() scans thousands of ports (in one trial 74% of this process's
 * CPU went to __inet_hash_connect and __inet_check_established for 19,500
 * connects). Real clients each open a connection or two, so that cost
 * belongs to this generator, not to the server; walking an explicit range
 * makes each bind one hash lookup. A port some other socket holds
 * (EADDRINUSE) is skipped; at most one pass over the range.
 */
static int next_source_port;

static int bound_socket(const struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, span = opt.port_hi - opt.port_lo + 1, rc = -EADDRINUSE;
	if (fd < 0)
		return -errno;
	/* Lets a port still in TIME_WAIT from an earlier run be bound again. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	for (int tries = 0; tries < span && rc == -EADDRINUSE; tries++) {
		struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = dst->sin_addr};
		if (next_source_port < opt.port_lo || next_source_port > opt.port_hi)
			next_source_port = opt.port_lo;
		src.sin_port = htons((uint16_t)next_source_port++);
		rc = bind(fd, (const struct sockaddr *)&src, sizeof(src)) ? -errno : 0;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

static void on_connect_idle(uv_idle_t *h)
{
	uv_idle_stop(h);
	connect_more();
}

/*
 * Starts connects while --max-connecting allows. With --connect-batch B,
 * at most B per loop turn: the rest wait until the loop has handled the
 * I/O that is ready, so that a client whose connect completed sends its
 * request at once, as 19,500 separate clients would, instead of after all
 * the other connect() calls of this process (which, on loopback, each run
 * the whole TCP handshake in the kernel: seconds for 19,500).
 */
static void connect_more(void)
{
	int started = 0;
	while (next_to_connect < opt.subs && connecting < opt.max_connecting) {
		if (opt.connect_batch && started++ == opt.connect_batch) {
			uv_idle_start(&connect_idle, on_connect_idle);
			return;
		}
		struct fo_sub *c = &subs[next_to_connect];
		struct sockaddr_in sa;
		int rc = 0;
		uv_ip4_addr(opt.host,
			    opt.nsub_ports ? opt.sub_ports[next_to_connect % opt.nsub_ports] : opt.port,
			    &sa);
		next_to_connect++;
		uv_tcp_init(loop, &c->tcp);
		c->tcp.data = c;
		c->creq.data = c;
		c->state = SUB_CONNECTING;
		c->us_start = since_start_us();
		connecting++;
		if (opt.port_lo) {
			int fd = bound_socket(&sa);
			rc = fd < 0 ? uv_translate_sys_error(-fd) : uv_tcp_open(&c->tcp, fd);
			if (rc && fd >= 0)
				close(fd);
		}
		if (!rc)
			rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&sa, on_sub_connect);
		if (rc) {
			if (st.connect_errors < 5)
				fprintf(stderr, "fanout: connect: %s\n", uv_strerror(rc));
			sub_close(c, &st.connect_errors);
		}
	}
}

/* ---- publishers ------------------------------------------------------------ */

static void pub_connect(struct fo_pub *p);

static void on_pub_close(uv_handle_t *h)
{
	struct fo_pub *p = h->data;
	p->closing = false;
	if (phase == PH_SETTLE || phase == PH_RUN || phase == PH_CONNECT) {
		st.pub_reconnects++;
		pub_connect(p);
	}
}

static void pub_fail(struct fo_pub *p, const char *why)
{
	if (p->closing)
		return;
	if (st.pub_errors < 5)
		fprintf(stderr, "fanout: publisher: %s\n", why);
	st.pub_errors++;
	p->connected = false;
	p->busy = false;
	p->closing = true;
	uv_close((uv_handle_t *)&p->tcp, on_pub_close);
}

static void on_pub_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct fo_pub *p = h->data;
	b->base = p->resp + p->rlen;
	b->len = sizeof(p->resp) - p->rlen;
}

/* Reads responses (Content-Length bodies only; the body is skipped). */
static void on_pub_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fo_pub *p = s->data;
	if (n < 0) {
		pub_fail(p, uv_strerror((int)n));
		return;
	}
	p->rlen += (size_t)n;
	for (;;) {
		if (p->body_left < 0) {
			char *e = memmem(p->resp, p->rlen, "\r\n\r\n", 4);
			if (!e) {
				if (p->rlen == sizeof(p->resp))
					pub_fail(p, "response head too large");
				return;
			}
			size_t hl = (size_t)(e - p->resp) + 4;
			p->status = p->rlen > 12 ? atoi(p->resp + 9) : 0;
			p->body_left = -2;
			for (char *q = p->resp; q < e; q++)
				if ((*q == 'C' || *q == 'c') && !strncasecmp(q, "content-length:", 15)) {
					p->body_left = strtoll(q + 15, NULL, 10);
					break;
				}
			if (p->body_left < 0) {
				pub_fail(p, "response without Content-Length");
				return;
			}
			memmove(p->resp, p->resp + hl, p->rlen - hl);
			p->rlen -= hl;
		}
		size_t take = p->rlen < (size_t)p->body_left ? p->rlen : (size_t)p->body_left;
		p->body_left -= (int64_t)take;
		memmove(p->resp, p->resp + take, p->rlen - take);
		p->rlen -= take;
		if (p->body_left > 0)
			return;
		/* One complete response. */
		p->body_left = -1;
		p->busy = false;
		if (p->sent_ns)
			hist_add(&hist_pub, uv_hrtime() - p->sent_ns);
		p->sent_ns = 0;
		if (p->status < 200 || p->status > 299) {
			if (st.pub_http_errors < 5)
				fprintf(stderr, "fanout: publish answered %d\n", p->status);
			st.pub_http_errors++;
		}
		if (!p->rlen)
			break;
	}
	pump();
}

static void on_pub_connect(uv_connect_t *req, int status)
{
	struct fo_pub *p = req->data;
	if (status) {
		p->closing = true;
		fprintf(stderr, "fanout: publisher connect: %s\n", uv_strerror(status));
		st.pub_errors++;
		uv_close((uv_handle_t *)&p->tcp, NULL);
		p->closing = false;
		return;
	}
	p->connected = true;
	p->rlen = 0;
	p->body_left = -1;
	uv_read_start((uv_stream_t *)&p->tcp, on_pub_alloc, on_pub_read);
	pump();
}

static void pub_connect(struct fo_pub *p)
{
	struct sockaddr_in sa;
	uv_ip4_addr(opt.host, opt.pub_port ? opt.pub_port : opt.port, &sa);
	uv_tcp_init(loop, &p->tcp);
	uv_tcp_nodelay(&p->tcp, 1);
	p->tcp.data = p;
	p->creq.data = p;
	p->connected = p->busy = p->writing = false;
	if (uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&sa, on_pub_connect))
		st.pub_errors++;
}

static void on_pub_write(uv_write_t *req, int status)
{
	struct fo_pub *p = req->data;
	p->writing = false;
	if (status == UV_ECANCELED)
		return;
	if (status)
		pub_fail(p, uv_strerror(status));
	else
		pump();
}

static struct fo_pub *free_pub(void)
{
	for (int i = 0; i < opt.pubs; i++)
		if (pubs[i].connected && !pubs[i].busy && !pubs[i].writing)
			return &pubs[i];
	return NULL;
}

static void publish(struct fo_pub *p, uint64_t due_ns)
{
	static char body[8192];
	uint64_t now = uv_hrtime();
	uint64_t seq = st.published;
	int bl = snprintf(body, sizeof(body), "{\"t\":%" PRIu64 ",\"s\":%" PRIu64 ",\"pad\":\"", now, seq);
	while (bl < opt.payload - 2 && bl < (int)sizeof(body) - 3)
		body[bl++] = 'x';
	body[bl++] = '"';
	body[bl++] = '}';
	int n = snprintf(p->req, sizeof(p->req),
			 "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\n\r\n%.*s",
			 pub_path, opt.host, opt.port, bl, bl, body);
	if (due_ns && now > due_ns && (now - due_ns) / 1000 > st.max_pub_lag_us)
		st.max_pub_lag_us = (now - due_ns) / 1000;
	if (seq >= FO_SEQ_RING)
		seq_fold(seq - FO_SEQ_RING);
	seq_sent_ns[seq % FO_SEQ_RING] = now;
	seq_count[seq % FO_SEQ_RING] = 0;
	seq_measured[seq % FO_SEQ_RING] = opt.rate > 0 && phase == PH_RUN;
	p->sent_ns = opt.rate > 0 && phase == PH_RUN ? now : 0;
	st.published++;
	p->busy = true;
	p->writing = true;
	p->wreq.data = p;
	uv_buf_t b = uv_buf_init(p->req, (unsigned)n);
	if (uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, on_pub_write)) {
		p->writing = false;
		pub_fail(p, "write");
	}
}

/* Publishes what the mode allows now. */
static void pump(void)
{
	if (phase != PH_RUN || opt.idle)
		return;
	struct fo_pub *p;
	if (opt.rate > 0) {
		uint64_t now = uv_hrtime();
		uint64_t due = (uint64_t)((double)(now - t0) * opt.rate / 1e9) + 1;
		while (st.published < due && st.published - oldest < FO_SEQ_RING / 2 && (p = free_pub()) != NULL)
			publish(p, t0 + (uint64_t)((double)st.published * 1e9 / opt.rate));
		return;
	}
	while (st.published - oldest < (uint64_t)opt.window && (p = free_pub()) != NULL)
		publish(p, 0);
}

/* ---- phases ------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
	uint64_t now = uv_hrtime();
	if (phase == PH_CONNECT) {
		if (now - start_ns > (uint64_t)opt.subscribe_timeout_s * 1000000000u) {
			fprintf(stderr, "fanout: only %d of %d subscribed after %d s; going on\n", subscribed, opt.subs,
				opt.subscribe_timeout_s);
			sub_done = opt.subs;
		}
		if (sub_done >= opt.subs) {
			connect_done_ns = now;
			getrusage(RUSAGE_SELF, &ru_connected);
			srv_cpu_connected = servers_cpu_ticks();
			if (!subscribed) {
				fprintf(stderr, "fanout: no subscriber; nothing to measure\n");
				finish();
				return;
			}
			fprintf(stderr, "fanout: %d/%d subscribed in %.2f s\n", subscribed, opt.subs,
				(double)(now - start_ns) / 1e9);
			phase = PH_SETTLE;
			uv_timer_start(&phase_timer, on_tick, (uint64_t)opt.settle_ms, 0);
		}
		return;
	}
	if (phase == PH_SETTLE && t == &phase_timer) {
		if (opt.idle) {
			rss_after_kb = servers_rss_kb();
			if (opt.hold > 0) {
				phase = PH_DRAIN;
				uv_timer_start(&phase_timer, on_tick, (uint64_t)(opt.hold * 1000), 0);
			} else {
				finish();
			}
			return;
		}
		phase = PH_RUN;
		t0 = now;
		getrusage(RUSAGE_SELF, &ru0);
		srv_cpu_t0 = servers_cpu_ticks();
		uv_timer_start(&phase_timer, on_tick, (uint64_t)(opt.duration * 1000), 0);
		pump();
		return;
	}
	if (phase == PH_RUN && t == &phase_timer) {
		t_end = now;
		getrusage(RUSAGE_SELF, &ru1);
		srv_cpu_t1 = servers_cpu_ticks();
		phase = PH_DRAIN;
		uv_timer_start(&phase_timer, on_tick, (uint64_t)opt.drain_ms, 0);
		return;
	}
	if (phase == PH_DRAIN && t == &phase_timer) {
		finish();
		return;
	}
	if (phase == PH_RUN || phase == PH_DRAIN) {
		window_advance(); /* the 99% mark falls when subscribers leave */
		if (opt.rate > 0 && phase == PH_RUN)
			pump();
		/* A message that stays below 99% for stall_ms is counted and let go. */
		now = uv_hrtime(); /* pump() may have just stamped a message */
		if (oldest < st.published && now > seq_sent_ns[oldest % FO_SEQ_RING] &&
		    now - seq_sent_ns[oldest % FO_SEQ_RING] > (uint64_t)opt.stall_ms * 1000000u) {
			st.stalled++;
			seq_count[oldest % FO_SEQ_RING] = 0;
			oldest++;
			window_advance();
			pump();
		}
		if (phase == PH_DRAIN && oldest == st.published && !opt.idle) {
			/* Everything is done: wait only for the last 1% a little. */
			if (now - last_deliver_ns > 200000000u)
				finish();
		}
	}
}

static void close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static double secs(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile of v[0..n) in ms (sorts v). */
static double pct_ms(uint32_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u32);
	size_t i = (size_t)((double)n * p / 100.0);
	return (double)v[i < n ? i : n - 1] / 1000.0;
}

/*
 * The connect phase, from the subscribers that got through it: when the
 * last one was connected (TCP), upgraded (101 read) and subscribed (reply
 * read), in s since the start; each phase's p50/p99 per connection (TCP:
 * from connect() to the kernel's answer, a dropped SYN costing 1 s;
 * upgrade: from then to the 101; subscribe: from the 101 to the reply);
 * and the CPU this process and the --server-pids spent in the phase.
 */
static void print_connect_phases(void)
{
	uint32_t *v = calloc((size_t)opt.subs, sizeof(*v));
	uint32_t last_conn = 0, last_up = 0, last_sub = 0;
	size_t n = 0;
	long hz = sysconf(_SC_CLK_TCK);
	if (!v)
		abort();
	for (int i = 0; i < opt.subs; i++) {
		const struct fo_sub *c = &subs[i];
		if (c->state != SUB_LIVE)
			continue;
		last_conn = c->us_conn > last_conn ? c->us_conn : last_conn;
		last_up = c->us_up > last_up ? c->us_up : last_up;
		last_sub = c->us_sub > last_sub ? c->us_sub : last_sub;
	}
	printf(",\"connected_s\":%.3f,\"upgraded_s\":%.3f,\"subscribed_s\":%.3f", last_conn / 1e6,
	       last_up / 1e6, last_sub / 1e6);
	static const char *const names[] = {"tcp", "upgrade", "subscribe"};
	for (int ph = 0; ph < 3; ph++) {
		n = 0;
		for (int i = 0; i < opt.subs; i++) {
			const struct fo_sub *c = &subs[i];
			if (c->state != SUB_LIVE)
				continue;
			v[n++] = ph == 0 ? c->us_conn - c->us_start : ph == 1 ? c->us_up - c->us_conn : c->us_sub - c->us_up;
		}
		double p50 = pct_ms(v, n, 50), p99 = pct_ms(v, n, 99);
		printf(",\"%s_p50_ms\":%.1f,\"%s_p99_ms\":%.1f", names[ph], p50, names[ph], p99);
	}
	free(v);
	printf(",\"connect_client_cpu_s\":%.2f", secs(&ru_start.ru_utime, &ru_connected.ru_utime) +
							 secs(&ru_start.ru_stime, &ru_connected.ru_stime));
	if (opt.npids && hz > 0 && srv_cpu_connected >= srv_cpu_start)
		printf(",\"connect_server_cpu_s\":%.2f", (double)(srv_cpu_connected - srv_cpu_start) / (double)hz);
}

static void finish(void)
{
	if (phase == PH_DONE)
		return;
	phase = PH_DONE;
	long hz = sysconf(_SC_CLK_TCK);
	double run_s = t_end > t0 ? (double)(t_end - t0) / 1e9 : 0;
	double client_cpu = secs(&ru0.ru_utime, &ru1.ru_utime) + secs(&ru0.ru_stime, &ru1.ru_stime);
	uint64_t tail_missing = 0; /* not received by the end (gaps count the middle) */
	for (uint64_t q = st.published > FO_SEQ_RING ? st.published - FO_SEQ_RING : 0; q < st.published; q++)
		seq_fold(q);
	for (int i = 0; i < opt.subs; i++)
		if (subs[i].state == SUB_LIVE)
			tail_missing += st.published - subs[i].next_seq - (uint64_t)__builtin_popcountll(subs[i].seen);
	printf("{\"label\":\"%s\",\"target\":\"%s\",\"proto\":\"%s\",\"subs\":%d,\"subscribed\":%d,"
	       "\"connect_s\":%.2f",
	       opt.label ? opt.label : "", opt.target == FO_HERALD ? "herald" : "nchan",
	       opt.proto == FO_WS ? "ws" : "sse", opt.subs, subscribed,
	       (double)(connect_done_ns - start_ns) / 1e9);
	print_connect_phases();
	if (opt.idle) {
		printf(",\"mode\":\"idle\",\"rss_before_kb\":%" PRIu64 ",\"rss_after_kb\":%" PRIu64
		       ",\"bytes_per_conn\":%.0f",
		       rss_before_kb, rss_after_kb,
		       subscribed ? ((double)rss_after_kb - (double)rss_before_kb) * 1024.0 / subscribed : 0);
	} else {
		printf(",\"mode\":\"%s\",\"rate\":%.0f,\"window\":%d,\"payload\":%d,\"run_s\":%.2f,"
		       "\"published\":%" PRIu64 ",\"published_per_s\":%.0f,\"deliveries\":%" PRIu64
		       ",\"deliveries_per_s\":%.0f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,"
		       "\"p999_us\":%.0f,\"max_us\":%" PRIu64 ",\"not_received\":%" PRIu64 ",\"gaps\":%" PRIu64
		       ",\"dups\":%" PRIu64 ",\"stalled\":%" PRIu64 ",\"max_publish_lag_us\":%" PRIu64
		       ",\"client_cpu_pct\":%.0f,\"server_cpu_pct\":%.0f",
		       opt.rate > 0 ? "rate" : "saturation", opt.rate, opt.rate > 0 ? 0 : opt.window, opt.payload,
		       run_s, st.published, run_s ? (double)st.published / run_s : 0, st.deliveries,
		       run_s ? (double)st.window_deliveries / run_s : 0, hist_pct(&hist, 50), hist_pct(&hist, 90), hist_pct(&hist, 99),
		       hist_pct(&hist, 99.9), hist.max_us, tail_missing, st.gaps, st.dups, st.stalled, st.max_pub_lag_us,
		       run_s ? 100.0 * client_cpu / run_s : 0,
		       run_s && hz > 0 && srv_cpu_t1 >= srv_cpu_t0 ? 100.0 * (double)(srv_cpu_t1 - srv_cpu_t0) / (double)hz / run_s : 0);
	}
	if (opt.rate > 0 && !opt.idle)
		printf(",\"publish_rtt_p50_us\":%.0f,\"publish_rtt_p99_us\":%.0f,\"first_p50_us\":%.0f,"
		       "\"first_p99_us\":%.0f,\"last_p50_us\":%.0f,\"last_p99_us\":%.0f,"
		       "\"client_cpu_us_per_delivery\":%.2f",
		       hist_pct(&hist_pub, 50), hist_pct(&hist_pub, 99), hist_pct(&hist_first, 50),
		       hist_pct(&hist_first, 99), hist_pct(&hist_last, 50), hist_pct(&hist_last, 99),
		       st.window_deliveries ? client_cpu * 1e6 / (double)st.window_deliveries : 0);
	printf(",\"connect_errors\":%" PRIu64 ",\"handshake_errors\":%" PRIu64 ",\"subscribe_errors\":%" PRIu64
	       ",\"disconnects\":%" PRIu64 ",\"ws_closes\":%" PRIu64 ",\"last_close_code\":%" PRIu64
	       ",\"publish_errors\":%" PRIu64 ",\"publish_http_errors\":%" PRIu64 ",\"strays\":%" PRIu64
	       ",\"pongs\":%" PRIu64 "}\n",
	       st.connect_errors, st.handshake_errors, st.subscribe_errors, st.disconnects, st.ws_closes,
	       st.last_close_code, st.pub_errors, st.pub_http_errors, st.strays, st.pongs);
	fflush(stdout);
	uv_walk(loop, close_walk, NULL);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: herald-fanout --target herald|nchan --proto ws|sse --port PORT [options]\n"
		"  --host H           server address (127.0.0.1)\n"
		"  --subs N           subscribers (1000)\n"
		"  --rate R           publish R messages/s (default: saturation)\n"
		"  --duration S       seconds of publishing (10)\n"
		"  --window K         saturation: messages outstanding (16)\n"
		"  --pubs P           publisher connections (4, at most 16)\n"
		"  --payload B        body bytes (100)\n"
		"  --idle             measure server RSS per connection, publish nothing\n"
		"  --format F         herald WS: json (default) or protobuf\n"
		"  --hold S           idle: keep the connections S more seconds\n"
		"  --server-pids L    comma-separated PIDs for RSS and CPU (/proc)\n"
		"  --max-connecting N handshakes in flight (256)\n"
		"  --connect-batch B  at most B connect() calls per loop turn (default: no limit)\n"
		"  --source-ports L-H subscribers bind source ports L..H in turn (default: the kernel's\n"
		"                     ephemeral choice, slow past half the range to one destination)\n"
		"  --settle-ms MS     pause after the last subscribe (500)\n"
		"  --jwt-secret S     herald WS: connect with an HS256 token (sub \"u<index>\")\n"
		"  --label TEXT       copied into the result line\n"
		"  --sub-ports P,...  subscribers round-robin over these ports (several nodes)\n"
		"  --pub-port P       the publishers' port (default --port)\n"
		"  --delayed-ack      subscribers ACK on the delayed-ACK timer, not on every read\n"
		"                     (TCP_QUICKACK 0 after each read: the client's CPU per delivery)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
		if (ARG("--target"))
			opt.target = !strcmp(v, "nchan") ? FO_NCHAN : FO_HERALD;
		else if (ARG("--proto"))
			opt.proto = !strcmp(v, "sse") ? FO_SSE : FO_WS;
		else if (ARG("--host"))
			opt.host = v;
		else if (ARG("--port"))
			opt.port = atoi(v);
		else if (ARG("--subs"))
			opt.subs = atoi(v);
		else if (ARG("--rate"))
			opt.rate = atof(v);
		else if (ARG("--duration"))
			opt.duration = atof(v);
		else if (ARG("--window"))
			opt.window = atoi(v);
		else if (ARG("--pubs"))
			opt.pubs = atoi(v);
		else if (ARG("--payload"))
			opt.payload = atoi(v);
		else if (ARG("--hold"))
			opt.hold = atof(v);
		else if (ARG("--max-connecting"))
			opt.max_connecting = atoi(v);
		else if (ARG("--settle-ms"))
			opt.settle_ms = atoi(v);
		else if (ARG("--source-ports")) {
			if (sscanf(v, "%d-%d", &opt.port_lo, &opt.port_hi) != 2 || opt.port_lo < 1 ||
			    opt.port_hi > 65535 || opt.port_lo > opt.port_hi)
				usage();
		} else if (ARG("--connect-batch")) {
			opt.connect_batch = atoi(v);
		} else if (ARG("--jwt-secret")) {
			opt.jwt_secret = v;
		} else if (ARG("--label"))
			opt.label = v;
		else if (ARG("--server-pids")) {
			for (const char *p = v; *p && opt.npids < FO_PIDS_MAX;) {
				opt.pids[opt.npids++] = atoi(p);
				p = strchr(p, ',');
				if (!p)
					break;
				p++;
			}
		} else if (ARG("--sub-ports")) {
			for (const char *p = v; *p && opt.nsub_ports < FO_PIDS_MAX;) {
				opt.sub_ports[opt.nsub_ports++] = atoi(p);
				p = strchr(p, ',');
				if (!p)
					break;
				p++;
			}
		} else if (ARG("--pub-port"))
			opt.pub_port = atoi(v);
		else if (ARG("--format"))
			opt.protobuf = !strcmp(v, "protobuf");
		else if (!strcmp(a, "--idle"))
			opt.idle = true;
		else if (!strcmp(a, "--delayed-ack"))
			opt.delayed_ack = true;
		else
			usage();
#undef ARG
	}
	if (opt.subs < 1 || opt.port <= 0 || opt.window < 1 || opt.window >= FO_SEQ_RING / 2 || opt.pubs < 1 ||
	    opt.pubs > FO_PUBS_MAX || opt.payload < 40 || opt.payload > 4096)
		usage();

	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)opt.subs + opt.pubs + 32)
		fprintf(stderr, "fanout: warning: only %llu file descriptors for %d connections\n",
			(unsigned long long)rl.rlim_cur, opt.subs + opt.pubs);

	if (opt.target == FO_HERALD) {
		sub_path = opt.proto == FO_SSE ? "/v1/topics/bench/sse"
			 : opt.protobuf ? "/connection/websocket?format=protobuf" : "/connection/websocket";
		pub_path = "/v1/topics/bench/events";
	} else {
		sub_path = "/sub/bench";
		pub_path = "/pub/bench";
	}
	if (opt.proto == FO_WS)
		sub_request_len = (size_t)snprintf(sub_request, sizeof(sub_request),
						   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
						   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
						   "Sec-WebSocket-Version: 13\r\n\r\n",
						   sub_path, opt.host, opt.port);
	else
		sub_request_len = (size_t)snprintf(sub_request, sizeof(sub_request),
						   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
						   "Cache-Control: no-cache\r\n\r\n",
						   sub_path, opt.host, opt.port);

	loop = uv_default_loop();
	subs = calloc((size_t)opt.subs, sizeof(*subs));
	if (!subs)
		abort();
	rng ^= (uint64_t)getpid() << 32 ^ uv_hrtime();

	rss_before_kb = servers_rss_kb();
	srv_cpu_start = servers_cpu_ticks();
	getrusage(RUSAGE_SELF, &ru_start);
	start_ns = uv_hrtime();
	uv_timer_init(loop, &tick_timer);
	uv_timer_init(loop, &phase_timer);
	uv_idle_init(loop, &connect_idle);
	uv_timer_start(&tick_timer, on_tick, 1, 1);
	if (!opt.idle)
		for (int i = 0; i < opt.pubs; i++)
			pub_connect(&pubs[i]);
	connect_more();
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	free(subs);
	return subscribed == opt.subs && !st.disconnects ? 0 : 1;
}
