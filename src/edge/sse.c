/* sse — see sse.h. */
#include "edge/sse.h"
#include "core/text.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rcbuf.h"
#include "core/uuid.h"
#include "http/query.h"
#include "proto/cloudevent.h"

#include <http_parser.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_EVENTS 100            /* events per catch-up read */
#define CACHE_SLOTS 256            /* encoded event blocks kept for sharing */
#define CACHE_BLOCK_MAX (64 * 1024) /* bigger blocks are not cached */
#define BLOCK_MAX HD_EVENT_REPLY_MAX /* one encoded event: its JSON at the ceiling */
#define TYPE_MAX 1024              /* the event: line's value */
/* A composite cursor: every topic's name, '=', an offset and ','. */
#define CURSOR_MAX (HD_SSE_TOPICS_MAX * (HD_TOPIC_NAME_MAX + 22) + 1)
#define STREAM_HEADERS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
#define STREAM_TYPE "text/event-stream"

struct stream;

/* One topic of a stream. */
struct stopic {
	struct hd_watch watch;   /* watch.arg = this */
	struct stream *st;
	uint64_t cursor;         /* the last offset delivered (or the resume point) */
	bool tail;               /* no cursor given: start at the topic's last offset */
	bool live;               /* caught up: fired events are written */
	unsigned fired;          /* commits fired while not live */
	char name[HD_TOPIC_NAME_MAX + 1];
};

struct stream {
	struct hd_sse *sse;
	struct hd_conn conn;         /* known to the hub while req is set */
	struct hd_http_request *req; /* NULL once ended or closed */
	uv_timer_t ka;               /* ka.data = this; its close callback frees */
	struct stream *prev, *next;  /* in sse->streams while req is set */
	bool multi;                  /* composite ids */
	bool reading;                /* r is with the hub */
	bool completed;              /* r's done ran (possibly inside hd_hub_read) */
	bool pumping;
	bool paused;                 /* waiting for the output to drain */
	bool released;               /* ka is closing */
	struct hd_access_cred cred;  /* its expiry ends the stream, and so does
					the key's revocation (hd_sse_recheck) */
	unsigned fired_at;           /* the topic's `fired` when r was issued */
	size_t cur;                  /* the topic being caught up; n when all are live */
	size_t n;
	struct hd_read r;
	struct stopic topics[];
};

struct cache_slot {
	struct hd_rcbuf *json;  /* a reference: the key stays unique while cached */
	struct hd_rcbuf *block; /* "event:"/"data:" lines, for multi-topic streams */
	struct hd_rcbuf *block_id; /* the same after "id: <offset>", for single-topic ones */
};

struct hd_sse {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_sse_opts opts;
	struct stream *streams;
	size_t count;
	bool stopping;
	long long warn_ms;
	struct cache_slot cache[CACHE_SLOTS];
};

static void pump(struct stream *st);
static void on_topic_gone(void *arg, const char *topic);

struct hd_sse *hd_sse_new(uv_loop_t *loop, struct hd_hub *hub, const struct hd_sse_opts *opts)
{
	struct hd_sse *sse = hd_calloc(1, sizeof(*sse));

	sse->loop = loop;
	sse->hub = hub;
	sse->opts = *opts;
	hd_hub_on_topic_gone(hub, on_topic_gone, sse);
	return sse;
}

size_t hd_sse_streams(const struct hd_sse *sse)
{
	return sse->count;
}

/* ---- Encoding ------------------------------------------------------------ */

/*
 * Finds the string value of the top-level "type" member of the stored
 * (minified, well-formed) event JSON. Returns its raw text (escapes as
 * stored) and sets *len, or NULL.
 */
static const char *find_type(const char *p, size_t n, size_t *len)
{
	size_t i = 0;
	int depth = 0;
	bool expect_key = false;

	while (i < n) {
		char c = p[i];
		if (c == '"') {
			size_t start = ++i, end;
			while (i < n && p[i] != '"')
				i += p[i] == '\\' ? 2 : 1;
			if (i >= n)
				return NULL;
			end = i++;
			if (depth == 1 && expect_key) {
				expect_key = false;
				if (end - start == 4 && memcmp(p + start, "type", 4) == 0 && i + 1 < n &&
				    p[i] == ':' && p[i + 1] == '"') {
					size_t vs = i + 2, j = vs;
					while (j < n && p[j] != '"')
						j += p[j] == '\\' ? 2 : 1;
					if (j >= n)
						return NULL;
					*len = j - vs;
					return p + vs;
				}
			}
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
			expect_key = c == '{' && depth == 1;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ',' && depth == 1) {
			expect_key = true;
		}
		i++;
	}
	return NULL;
}

/* Writes the event's type, unescaped and safe for one field line, into
 * out (TYPE_MAX bytes); returns its length (0: none found). */
static size_t event_type(const struct hd_rcbuf *json, char *out)
{
	size_t len = 0, n = 0;
	const char *raw = find_type(json->data, json->len, &len);

	if (!raw || len == 0)
		return 0;
	if (!memchr(raw, '\\', len)) {
		n = len < TYPE_MAX - 1 ? len : TYPE_MAX - 1;
		memcpy(out, raw, n);
	} else {
		json_t *v = json_loadb(raw - 1, len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		if (json_is_string(v)) {
			size_t vl = json_string_length(v);
			n = vl < TYPE_MAX - 1 ? vl : TYPE_MAX - 1;
			memcpy(out, json_string_value(v), n);
		}
		json_decref(v);
	}
	/* A line break or NUL would end or corrupt the field line. */
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\n' || out[i] == '\r' || out[i] == '\0')
			out[i] = ' ';
	out[n] = '\0';
	return n;
}

/* "event: <type>\ndata: <json>\n\n" (returns owned). The stored JSON holds
 * no raw line break; one would still be split into data lines. */
/* Encodes an event's block; with_id puts "id: <offset>" first (the whole
 * cursor of a single-topic stream, so the block is the same for all of them). */
static struct hd_rcbuf *build_block(const struct hd_stored_event *ev, bool with_id)
{
	const struct hd_rcbuf *json = ev->json;
	char type[TYPE_MAX];
	size_t tlen = event_type(json, type);
	struct hd_buf b;
	struct hd_rcbuf *out;
	const char *p = json->data, *end = json->data + json->len;

	hd_buf_init(&b, BLOCK_MAX);
	if (with_id)
		(void)hd_buf_printf(&b, "id: %" PRIu64 "\n", ev->offset);
	if (tlen)
		(void)hd_buf_printf(&b, "event: %s\n", type);
	do {
		const char *nl = p;
		while (nl < end && *nl != '\n' && *nl != '\r')
			nl++;
		(void)hd_buf_puts(&b, "data: ");
		(void)hd_buf_append(&b, p, (size_t)(nl - p));
		(void)hd_buf_putc(&b, '\n');
		if (nl < end && *nl == '\r' && nl + 1 < end && nl[1] == '\n')
			nl++;
		p = nl + 1;
	} while (p < end);
	(void)hd_buf_putc(&b, '\n');
	out = hd_rcbuf_from(b.data, b.len);
	hd_buf_fini(&b);
	return out;
}

/* The shared block of a committed event (returns owned): encoded once per
 * form and kept in a small cache keyed by the stored JSON buffer, which the
 * ring, the watch fire and memory reads all share. */
static struct hd_rcbuf *event_block(struct hd_sse *sse, const struct hd_stored_event *ev, bool with_id)
{
	uintptr_t key = (uintptr_t)ev->json;
	struct cache_slot *s = &sse->cache[((key >> 4) * 2654435761u) % CACHE_SLOTS];
	struct hd_rcbuf **form = with_id ? &s->block_id : &s->block;
	struct hd_rcbuf *b;

	if (s->json == ev->json && *form)
		return hd_rcbuf_ref(*form);
	b = build_block(ev, with_id);
	if (b->len > CACHE_BLOCK_MAX)
		return b;
	if (s->json != ev->json) {
		hd_rcbuf_unref(s->json);
		hd_rcbuf_unref(s->block);
		hd_rcbuf_unref(s->block_id);
		s->json = hd_rcbuf_ref(ev->json);
		s->block = s->block_id = NULL;
	}
	*form = hd_rcbuf_ref(b);
	return b;
}

/* "id: <cursor>\n" of the stream as it is now; returns its length (out has
 * CURSOR_MAX + 8 bytes). */
static size_t put_id(const struct stream *st, char *out)
{
	size_t n = 4;
	memcpy(out, "id: ", 4);
	if (!st->multi)
		n += hd_u64_format(st->topics[0].cursor, out + n);
	for (size_t i = 0; st->multi && i < st->n; i++)
		n += (size_t)snprintf(out + n, CURSOR_MAX + 8 - n, "%s%s=%" PRIu64, i ? "," : "",
				      st->topics[i].name, st->topics[i].cursor);
	out[n++] = '\n';
	return n;
}

/* ---- Stream lifecycle ------------------------------------------------------ */

static void on_ka_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Frees st once no read of it is with the hub (the timer's close callback frees). */
static void maybe_release(struct stream *st)
{
	if (st->req || st->reading || st->released)
		return;
	st->released = true;
	uv_close((uv_handle_t *)&st->ka, on_ka_closed);
}

static void conn_topics(const struct hd_conn *c, void (*each)(void *arg, const char *topic), void *arg)
{
	const struct stream *st = (const struct stream *)((const char *)c - offsetof(struct stream, conn));
	for (size_t i = 0; i < st->n; i++)
		each(arg, st->topics[i].name);
}

/*
 * The stream as a connection: of the user of its client token, else (an API
 * key, or development mode) of user U when it follows U's topic user:U.
 */
static void conn_init(struct stream *st, const struct hd_http_request *req, const char *user)
{
	hd_uuid_v4(st->conn.id);
	st->conn.transport = "sse";
	snprintf(st->conn.remote, sizeof(st->conn.remote), "%s", req->remote);
	st->conn.since_ms = hd_now_ms();
	st->conn.topics = conn_topics;
	snprintf(st->conn.user, sizeof(st->conn.user), "%s", user ? user : "");
	for (size_t i = 0; i < st->n && !st->conn.user[0]; i++)
		if (strncmp(st->topics[i].name, "user:", 5) == 0)
			snprintf(st->conn.user, sizeof(st->conn.user), "%s", st->topics[i].name + 5);
}

/* The edge is done with req (or it is gone): unwatch, unlink, release. */
static void stream_done(struct stream *st)
{
	struct hd_sse *sse = st->sse;

	if (!st->req)
		return;
	st->req = NULL;
	for (size_t i = 0; i < st->n; i++)
		hd_hub_unwatch(sse->hub, &st->topics[i].watch);
	hd_hub_conn_remove(sse->hub, &st->conn);
	if (st->prev)
		st->prev->next = st->next;
	else
		sse->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	sse->count--;
	hd_metrics_gauge_add(HD_M_sse_streams, -1);
	uv_timer_stop(&st->ka);
	maybe_release(st);
}

/* The server's on_close: the client left. */
static void on_stream_close(void *arg)
{
	stream_done(arg);
}

static void stream_end(struct stream *st)
{
	struct hd_http_request *req = st->req;

	if (!req)
		return;
	stream_done(st);
	hd_http_stream_end(req);
}

/* A write failed: a slow consumer is cut off; a closing connection
 * (HD_EUNAVAIL) is left to on_close. */
static void write_failed(struct stream *st, int rc)
{
	struct hd_http_request *req = st->req;

	if (rc != HD_ELIMIT || !req)
		return;
	hd_metrics_inc(HD_M_slow_consumer_disconnects_total);
	if (hd_log_ratelimited(&st->sse->warn_ms))
		hd_log_warn("sse_slow_consumer remote=%s pending=%zu", req->remote,
			    hd_http_stream_pending(req));
	stream_done(st);
	hd_http_stream_abort(req);
}

/*
 * The hub's listener of deleted topics (deleted through this node or
 * another): a live stream of the topic gets the reset a reconnect past the
 * topic's end gets, with first 1, and goes on with the new epoch's events
 * (which its old cursor would otherwise skip). A topic still catching up
 * finds out from its read.
 */
static int send_reset(struct stream *st, struct stopic *t, uint64_t first);

static void on_topic_gone(void *arg, const char *topic)
{
	struct hd_sse *sse = arg;
	struct stream *next;
	for (struct stream *st = sse->streams; st; st = next) {
		next = st->next; /* a failed write ends st */
		for (size_t i = 0; i < st->n && st->req; i++) {
			struct stopic *t = &st->topics[i];
			if (t->live && t->cursor > 0 && !strcmp(t->name, topic)) {
				(void)send_reset(st, t, 1);
				break;
			}
		}
	}
}

/* Writes one event of topic t (its cursor already set to ev's offset).
 * A single-topic stream writes the shared block alone, with no allocation of
 * its own; a multi-topic stream adds its composite id line first. */
static int send_event(struct stream *st, const struct hd_stored_event *ev)
{
	struct hd_rcbuf *block;
	int rc = 0;

	if (st->multi) {
		char id[CURSOR_MAX + 8];
		rc = hd_http_stream_write_copy(st->req, id, put_id(st, id));
	}
	if (rc == 0) {
		block = event_block(st->sse, ev, !st->multi);
		rc = hd_http_stream_write(st->req, block);
		hd_rcbuf_unref(block);
	}
	if (rc)
		write_failed(st, rc);
	return rc;
}

/* Events after `after` are gone (retention): tell the client, move on to first. */
static int send_reset(struct stream *st, struct stopic *t, uint64_t first)
{
	uint64_t after = t->cursor;
	struct hd_buf b;
	int rc;

	char id[CURSOR_MAX + 8];

	t->cursor = first - 1;
	hd_buf_init(&b, CURSOR_MAX + 512);
	(void)hd_buf_append(&b, id, put_id(st, id));
	(void)hd_buf_printf(&b, "event: reset\ndata: {\"topic\":\"%s\",\"after\":%" PRIu64
				",\"first\":%" PRIu64 "}\n\n",
			    t->name, after, first);
	rc = hd_http_stream_write_copy(st->req, b.data, b.len);
	hd_buf_fini(&b);
	if (rc)
		write_failed(st, rc);
	return rc;
}

static void on_watch(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct stopic *t = w->arg;
	struct stream *st = t->st;

	(void)topic;
	if (!st->req)
		return;
	if (!t->live) {
		t->fired++; /* the catch-up read will find it */
		return;
	}
	if (ev->offset <= t->cursor)
		return;
	t->cursor = ev->offset;
	(void)send_event(st, ev);
}

static void on_keepalive(uv_timer_t *h);

/* The next keep-alive, or the token's expiry if that comes first. */
static void ka_arm(struct stream *st)
{
	bool expiry;
	uint64_t due = hd_access_cred_clip(&st->cred, st->sse->opts.keepalive_ms, &expiry);
	uv_timer_start(&st->ka, on_keepalive, due, 0);
}

static void on_keepalive(uv_timer_t *h)
{
	static const char token_expired[] =
		"event: expired\ndata: {\"reason\":\"token expired\"}\n\n";
	static const char key_expired[] =
		"event: expired\ndata: {\"reason\":\"API key expired\"}\n\n";
	struct stream *st = h->data;
	int rc;

	if (!st->req)
		return;
	if (st->cred.expires_ms && hd_now_ms() >= st->cred.expires_ms) {
		/* The client learns why before the end, and fetches a new token. */
		rc = st->cred.key
			     ? hd_http_stream_write_copy(st->req, key_expired, sizeof(key_expired) - 1)
			     : hd_http_stream_write_copy(st->req, token_expired,
							 sizeof(token_expired) - 1);
		if (rc)
			write_failed(st, rc);
		else
			stream_end(st);
		return;
	}
	rc = hd_http_stream_write_copy(st->req, ": ka\n\n", 6);
	if (rc)
		write_failed(st, rc);
	else
		ka_arm(st);
}

static size_t half_cap(const struct stream *st)
{
	return st->sse->opts.max_pending_bytes / 2;
}

static void on_drain(void *arg)
{
	struct stream *st = arg;

	st->paused = false;
	pump(st);
}

/* Takes the answer of a catch-up read. */
static void page(struct stream *st)
{
	struct hd_read *r = &st->r;
	struct stopic *t = &st->topics[st->cur];
	bool empty, memory;

	st->reading = false;
	if (!st->req) {
		hd_engine_read_fini(r);
		maybe_release(st);
		return;
	}
	if (r->err) {
		hd_log_warn("sse_read_failed topic=%s error=%s", t->name, hd_err_slug(r->err));
		hd_engine_read_fini(r);
		stream_end(st);
		return;
	}
	if (t->tail) {
		/* The start point of a stream without a cursor; read on from it. */
		t->tail = false;
		t->cursor = r->last;
		hd_engine_read_fini(r);
		return;
	}
	if (r->truncated) {
		uint64_t first = r->n ? r->events[0].offset : r->last + 1;
		if (first > t->cursor + 1 && send_reset(st, t, first)) {
			hd_engine_read_fini(r);
			return;
		}
	} else if (r->n == 0 && r->last < t->cursor) {
		/* A cursor past the end (the topic was deleted and made anew):
		 * the stream starts over at the topic's next offset. */
		if (send_reset(st, t, r->last + 1)) {
			hd_engine_read_fini(r);
			return;
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct hd_stored_event *ev = &r->events[i];
		if (ev->offset <= t->cursor)
			continue;
		if (i > 0 && hd_http_stream_pending(st->req) > half_cap(st))
			break; /* read on from here once the client caught up */
		t->cursor = ev->offset;
		if (send_event(st, ev)) {
			hd_engine_read_fini(r);
			return;
		}
	}
	empty = r->n == 0;
	memory = r->from_memory;
	hd_engine_read_fini(r);
	if (empty && (memory || t->fired == st->fired_at)) {
		/* Nothing new, and nothing committed since the read looked:
		 * from here on the watch delivers. */
		t->live = true;
		st->cur++;
	}
	if (hd_http_stream_pending(st->req) > half_cap(st)) {
		st->paused = true;
		hd_http_stream_want_drain(st->req, on_drain);
	}
}

static void read_done(struct hd_read *r)
{
	struct stream *st = r->arg;

	st->completed = true;
	if (st->pumping)
		return; /* answered inside hd_hub_read: pump takes it */
	page(st);
	pump(st);
}

/* Catch-up: reads the topics in turn until each is live. Memory reads
 * complete inside hd_hub_read; a loop (not recursion) takes them. */
static void pump(struct stream *st)
{
	if (st->pumping)
		return;
	st->pumping = true;
	while (st->req && !st->reading && !st->paused && st->cur < st->n) {
		struct stopic *t = &st->topics[st->cur];
		int rc;

		memset(&st->r, 0, sizeof(st->r));
		st->r.topic = t->name;
		st->r.after = t->tail ? 0 : t->cursor;
		st->r.limit = t->tail ? 1 : PAGE_EVENTS;
		st->r.done = read_done;
		st->r.arg = st;
		st->fired_at = t->fired;
		st->reading = true;
		st->completed = false;
		rc = hd_hub_read(st->sse->hub, &st->r);
		if (rc) {
			st->reading = false;
			stream_end(st);
			break;
		}
		if (!st->completed)
			break; /* from disk: read_done continues */
		page(st);
	}
	st->pumping = false;
}

/* ---- Requests ---------------------------------------------------------------- */

struct start {
	size_t n;
	bool multi;
	char names[HD_SSE_TOPICS_MAX][HD_TOPIC_NAME_MAX + 1];
	bool has[HD_SSE_TOPICS_MAX];
	uint64_t after[HD_SSE_TOPICS_MAX];
};

static int parse_offset(const char *s, size_t n, uint64_t *out)
{
	char tmp[24];

	if (n == 0 || n > 20 || strspn(s, "0123456789") < n)
		return HD_EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	unsigned long long v = strtoull(tmp, NULL, 10);
	if (n == 20 && strcmp(tmp, "18446744073709551614") > 0)
		return HD_EINVAL;
	*out = v;
	return 0;
}

/* A cursor for the topics of sp: an offset (one topic) or "a=5,b=7". */
static int parse_cursor(struct start *sp, const char *c, struct hd_error *err)
{
	if (!sp->multi) {
		if (parse_offset(c, strlen(c), &sp->after[0]))
			return hd_error_set(err, HD_EINVAL, "the cursor must be an offset (a whole number)");
		sp->has[0] = true;
		return 0;
	}
	for (const char *p = c; *p;) {
		const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		size_t i;
		if (!eq)
			return hd_error_set(err, HD_EINVAL, "the cursor must look like a=5,b=7");
		for (i = 0; i < sp->n; i++)
			if (strlen(sp->names[i]) == (size_t)(eq - p) && memcmp(sp->names[i], p, (size_t)(eq - p)) == 0)
				break;
		if (i == sp->n || sp->has[i])
			return hd_error_set(err, HD_EINVAL,
					    "the cursor names a topic that is not in the stream, or one twice");
		if (parse_offset(eq + 1, (size_t)(end - eq - 1), &sp->after[i]))
			return hd_error_set(err, HD_EINVAL, "the cursor must look like a=5,b=7");
		sp->has[i] = true;
		if (!comma)
			break;
		p = comma + 1;
		if (!*p)
			return hd_error_set(err, HD_EINVAL, "the cursor must look like a=5,b=7");
	}
	return 0;
}

/* Last-Event-ID wins over ?after=; neither: every topic starts at its tail. */
static int resume_point(struct start *sp, const struct hd_http_request *req, struct hd_error *err)
{
	const char *h = hd_http_header_get(req, "last-event-id");
	char *q;
	long n;
	int rc;

	if (h && *h)
		return parse_cursor(sp, h, err);
	q = hd_malloc(CURSOR_MAX);
	n = hd_query_get(req->query, "after", q, CURSOR_MAX);
	if (n == -2 || n == 0)
		rc = hd_error_set(err, HD_EINVAL, "query parameter 'after' is not a valid cursor");
	else
		rc = n > 0 ? parse_cursor(sp, q, err) : 0;
	free(q);
	return rc;
}

static void start_stream(struct hd_sse *sse, struct hd_http_request *req, struct start *sp,
			 const struct hd_access *ac, const struct hd_access_id *who)
{
	struct hd_error err = {0};
	struct stream *st;
	char retry[48];
	int rc;

	/* One topic's stream was checked by its route's guard (edge/route.h);
	 * the topics of /v1/sse come from the query, checked here. */
	for (size_t i = 0; sp->multi && i < sp->n; i++) {
		if (hd_access_read(ac, who, sp->names[i], &err)) {
			hd_access_deny(req, &err);
			return;
		}
	}
	if (resume_point(sp, req, &err)) {
		hd_http_respond_error(req, err.code, err.msg);
		return;
	}
	if (sse->stopping) {
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		return;
	}
	if (req->method == HTTP_HEAD) {
		hd_http_respond(req, 200, STREAM_TYPE, STREAM_HEADERS, "", 0);
		return;
	}
	st = hd_calloc(1, sizeof(*st) + sp->n * sizeof(st->topics[0]));
	st->sse = sse;
	st->multi = sp->multi;
	st->n = sp->n;
	hd_access_cred_of(who, &st->cred);
	for (size_t i = 0; i < sp->n; i++) {
		struct stopic *t = &st->topics[i];
		t->st = st;
		t->watch.fire = on_watch;
		t->watch.arg = t;
		t->watch.conn = &st->conn;
		memcpy(t->name, sp->names[i], sizeof(t->name));
		t->cursor = sp->after[i];
		t->tail = !sp->has[i];
		/* Watched from the start, so no commit escapes catch-up. */
		rc = hd_hub_watch(sse->hub, t->name, &t->watch);
		if (rc) {
			for (size_t j = 0; j < i; j++)
				hd_hub_unwatch(sse->hub, &st->topics[j].watch);
			free(st);
			hd_http_respond_error(req, rc, "too many watched topics; retry later");
			return;
		}
	}
	rc = hd_http_stream_start(req, 200, STREAM_TYPE, STREAM_HEADERS, on_stream_close, st);
	if (rc) {
		for (size_t i = 0; i < st->n; i++)
			hd_hub_unwatch(sse->hub, &st->topics[i].watch);
		free(st);
		hd_http_respond_error(req, rc, NULL);
		return;
	}
	st->req = req;
	conn_init(st, req, who->token ? who->claims.sub : NULL);
	hd_hub_conn_add(sse->hub, &st->conn);
	st->next = sse->streams;
	if (sse->streams)
		sse->streams->prev = st;
	sse->streams = st;
	sse->count++;
	hd_metrics_gauge_add(HD_M_sse_streams, 1);
	uv_timer_init(sse->loop, &st->ka);
	st->ka.data = st;
	ka_arm(st);
	snprintf(retry, sizeof(retry), "retry: %u\n\n", sse->opts.retry_ms);
	rc = hd_http_stream_write_copy(req, retry, strlen(retry));
	if (rc) {
		write_failed(st, rc);
		return;
	}
	pump(st);
}

void hd_sse_handle_topic(struct hd_sse *sse, struct hd_http_request *req, const char *topic,
			 const struct hd_access *ac, const struct hd_access_id *who)
{
	struct start *sp = hd_calloc(1, sizeof(*sp));

	sp->n = 1;
	snprintf(sp->names[0], sizeof(sp->names[0]), "%s", topic);
	start_stream(sse, req, sp, ac, who);
	free(sp);
}

void hd_sse_handle_multi(struct hd_sse *sse, struct hd_http_request *req,
			 const struct hd_access *ac, const struct hd_access_id *who)
{
	struct start *sp = hd_calloc(1, sizeof(*sp));
	struct hd_error err = {0};
	char name[HD_TOPIC_NAME_MAX + 1];
	size_t pos = 0;
	long n;

	sp->multi = true;
	while ((n = hd_query_next(req->query, "topic", &pos, name, sizeof(name))) != -1) {
		if (n == -2 || hd_topic_name_check(name, (size_t)n, &err)) {
			if (!err.code)
				hd_error_set(&err, HD_EBADTOPIC, "a topic name is not valid percent-encoding or longer than %d bytes",
					     HD_TOPIC_NAME_MAX);
			goto out;
		}
		if (sp->n == HD_SSE_TOPICS_MAX) {
			hd_error_set(&err, HD_EINVAL, "at most %d topics per stream", HD_SSE_TOPICS_MAX);
			goto out;
		}
		for (size_t i = 0; i < sp->n; i++) {
			if (strcmp(sp->names[i], name) == 0) {
				hd_error_set(&err, HD_EINVAL, "topic '%s' is listed twice", name);
				goto out;
			}
		}
		memcpy(sp->names[sp->n++], name, (size_t)n + 1);
	}
	if (sp->n == 0)
		hd_error_set(&err, HD_EINVAL, "name at least one topic: /v1/sse?topic=a&topic=b");
out:
	if (err.code)
		hd_http_respond_error(req, err.code, err.msg);
	else
		start_stream(sse, req, sp, ac, who);
	free(sp);
}

void hd_sse_stop(struct hd_sse *sse)
{
	struct stream *st = sse->streams;

	sse->stopping = true;
	while (st) {
		struct stream *next = st->next;
		stream_end(st);
		st = next;
	}
}

void hd_sse_free(struct hd_sse *sse)
{
	if (!sse)
		return;
	hd_hub_off_topic_gone(sse->hub, on_topic_gone, sse);
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		hd_rcbuf_unref(sse->cache[i].json);
		hd_rcbuf_unref(sse->cache[i].block);
		hd_rcbuf_unref(sse->cache[i].block_id);
	}
	free(sse);
}

void hd_sse_recheck(struct hd_sse *sse, const struct hd_access *ac)
{
	static const char revoked[] = "event: revoked\ndata: {\"reason\":\"API key revoked\"}\n\n";
	int64_t now = hd_now_ms();
	struct stream *next;

	for (struct stream *st = sse->streams; st; st = next) {
		next = st->next;
		if (!st->req || !st->cred.key)
			continue;
		bool ok = true;
		for (size_t i = 0; ok && i < st->n; i++)
			ok = hd_access_recheck(ac, &st->cred, st->topics[i].name, now) == 0;
		if (ok) {
			if (!st->released)
				ka_arm(st); /* the key's expiry may have moved */
			continue;
		}
		hd_log_info("sse_key_revoked remote=%s key=%s", st->req->remote, st->cred.name);
		int rc = hd_http_stream_write_copy(st->req, revoked, sizeof(revoked) - 1);
		if (rc)
			write_failed(st, rc);
		else
			stream_end(st);
	}
}

static void route_topic(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	hd_sse_handle_topic(ctx->row->arg, req, ctx->topic, ctx->access, ctx->who);
}

static void route_multi(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	hd_sse_handle_multi(ctx->row->arg, req, ctx->access, ctx->who);
}

void hd_sse_routes(struct hd_sse *sse, struct hd_route_table *t)
{
	hd_route_add(t, &(struct hd_route){HTTP_GET, "/v1/topics/{topic}/sse", HD_ROUTE_READ, 0,
					   route_topic, sse, 0, 0});
	/* Special case: each topic of the query is checked by the handler. */
	hd_route_add(t, &(struct hd_route){HTTP_GET, "/v1/sse", HD_ROUTE_SELF, 0, route_multi, sse, 0, 0});
}
