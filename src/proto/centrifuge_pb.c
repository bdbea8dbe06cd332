/*
 * centrifuge_pb — see centrifuge_pb.h. Laid out as: the varint reader,
 * the Command decoder (one field function per request message), the
 * writer (which runs each message encoder twice, once to count its length
 * for the prefix and once to write), the Reply and Push encoders.
 */
#include "proto/centrifuge_pb.h"
#include "core/alloc.h"
#include "proto/json_text.h"

#include <stdlib.h>
#include <string.h>

enum wire { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static const char empty[] = "";

/* ---- Reader ------------------------------------------------------------- */

struct rd {
	const uint8_t *p, *end;
};

/* Returns 0, or -1 when the varint is cut short or longer than 64 bits. */
static int rd_varint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < HD_CENTRIFUGE_PB_VARINT_MAX; i++) {
		if (r->p == r->end)
			return -1;
		uint8_t c = *r->p++;
		if (i == HD_CENTRIFUGE_PB_VARINT_MAX - 1 && c > 1)
			return -1;
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

int hd_centrifuge_pb_next(const uint8_t *frame, size_t len, size_t *pos, const uint8_t **msg, size_t *n)
{
	if (*pos >= len)
		return 0;
	struct rd r = {frame + *pos, frame + len};
	uint64_t v;
	if (rd_varint(&r, &v))
		return HD_EINVAL;
	if (v > HD_CENTRIFUGE_LINE_MAX)
		return HD_ETOOBIG;
	if (v > (uint64_t)(r.end - r.p))
		return HD_EINVAL;
	*msg = r.p;
	*n = (size_t)v;
	*pos = (size_t)(r.p - frame) + (size_t)v;
	return 1;
}

/* ---- Command decoder ---------------------------------------------------- */

struct field {
	uint32_t num;
	enum wire wt;
	uint64_t v;             /* WT_VARINT */
	const uint8_t *p;       /* WT_LEN */
	size_t n;
};

struct dec {
	struct hd_centrifuge_command *cmd;
	struct hd_error *err;
	char *str, *str_end;    /* room for strings and bytes, in cmd->mem */
	struct hd_centrifuge_sub_req *room; /* room for connect.subs, in cmd->mem */
	size_t room_cap;
};

typedef int (*field_fn)(struct dec *d, void *arg, const struct field *f);

/* Reads the next field. Returns 1, 0 at the end, or HD_EINVAL. */
static int rd_field(struct dec *d, struct rd *r, struct field *f)
{
	uint64_t tag;
	if (r->p == r->end)
		return 0;
	if (rd_varint(r, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
		return hd_error_set(d->err, HD_EINVAL, "not a protobuf message: bad field tag");
	f->num = (uint32_t)(tag >> 3);
	f->wt = (enum wire)(tag & 7);
	switch (f->wt) {
	case WT_VARINT:
		if (rd_varint(r, &f->v))
			return hd_error_set(d->err, HD_EINVAL, "not a protobuf message: bad varint");
		return 1;
	case WT_I64:
	case WT_I32: {
		size_t k = f->wt == WT_I64 ? 8 : 4;
		if ((size_t)(r->end - r->p) < k)
			return hd_error_set(d->err, HD_EINVAL, "not a protobuf message: field cut short");
		r->p += k;
		return 1;
	}
	case WT_LEN: {
		uint64_t n;
		if (rd_varint(r, &n) || n > (uint64_t)(r->end - r->p))
			return hd_error_set(d->err, HD_EINVAL, "not a protobuf message: field cut short");
		f->p = r->p;
		f->n = (size_t)n;
		r->p += n;
		return 1;
	}
	default:
		return hd_error_set(d->err, HD_EINVAL, "not a protobuf message: wire type %d", (int)f->wt);
	}
}

/* Runs fn on every field of msg[0, n). */
static int decode_msg(struct dec *d, const uint8_t *p, size_t n, field_fn fn, void *arg)
{
	struct rd r = {p, p + n};
	struct field f = {0};
	int rc;
	while ((rc = rd_field(d, &r, &f)) == 1)
		if ((rc = fn(d, arg, &f)))
			return rc;
	return rc;
}

static int wrong_type(struct dec *d, const char *what)
{
	return hd_error_set(d->err, HD_EINVAL, "%s has the wrong wire type", what);
}

static int get_u64(struct dec *d, const struct field *f, const char *what, uint64_t *v)
{
	if (f->wt != WT_VARINT)
		return wrong_type(d, what);
	*v = f->v;
	return 0;
}

static int get_bool(struct dec *d, const struct field *f, const char *what, bool *v)
{
	if (f->wt != WT_VARINT)
		return wrong_type(d, what);
	*v = f->v != 0;
	return 0;
}

/* A string field: UTF-8 without NUL, copied NUL-terminated into mem. */
static int get_str(struct dec *d, const struct field *f, const char *what, const char **out)
{
	if (f->wt != WT_LEN)
		return wrong_type(d, what);
	if (memchr(f->p, 0, f->n) || !hd_json_text_utf8_valid((const char *)f->p, f->n))
		return hd_error_set(d->err, HD_EINVAL, "%s is not UTF-8 text", what);
	if (f->n == 0) {
		*out = empty;
		return 0;
	}
	/* Room: the strings are at most the message's bytes, plus one NUL
	 * each, and each takes at least two bytes of the message. */
	if ((size_t)(d->str_end - d->str) < f->n + 1)
		return hd_error_set(d->err, HD_EINVAL, "command has too many fields");
	memcpy(d->str, f->p, f->n);
	d->str[f->n] = '\0';
	*out = d->str;
	d->str += f->n + 1;
	return 0;
}

/* A bytes field (data), copied into mem. */
static int get_raw(struct dec *d, const struct field *f, const char *what, struct hd_centrifuge_raw *out)
{
	const char *s;
	if (f->wt != WT_LEN)
		return wrong_type(d, what);
	if ((size_t)(d->str_end - d->str) < f->n + 1)
		return hd_error_set(d->err, HD_EINVAL, "command has too many fields");
	memcpy(d->str, f->p, f->n);
	d->str[f->n] = '\0';
	s = d->str;
	d->str += f->n + 1;
	out->p = s;
	out->n = f->n;
	return 0;
}

static void sub_req_init(struct hd_centrifuge_sub_req *s)
{
	memset(s, 0, sizeof(*s));
	s->channel = s->token = s->epoch = s->delta = empty;
}

/* SubscribeRequest: channel 1, token 2, recover 3, epoch 6, offset 7,
 * data 8, positioned 9, recoverable 10, join_leave 11, delta 12, flag 14,
 * type 15. */
static int sub_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_sub_req *s = arg;
	uint64_t v = 0;
	int rc;
	switch (f->num) {
	case 1: return get_str(d, f, "subscribe.channel", &s->channel);
	case 2: return get_str(d, f, "subscribe.token", &s->token);
	case 3: return get_bool(d, f, "subscribe.recover", &s->recover);
	case 6: return get_str(d, f, "subscribe.epoch", &s->epoch);
	case 7: return get_u64(d, f, "subscribe.offset", &s->offset);
	case 8: return get_raw(d, f, "subscribe.data", &s->data);
	case 9: return get_bool(d, f, "subscribe.positioned", &s->positioned);
	case 10: return get_bool(d, f, "subscribe.recoverable", &s->recoverable);
	case 11: return get_bool(d, f, "subscribe.join_leave", &s->join_leave);
	case 12: return get_str(d, f, "subscribe.delta", &s->delta);
	case 15:
		if ((rc = get_u64(d, f, "subscribe.type", &v)))
			return rc;
		if ((int64_t)v < INT32_MIN || (int64_t)v > INT32_MAX)
			return hd_error_set(d->err, HD_EINVAL, "subscribe.type is not an int32");
		s->type = (int32_t)(int64_t)v;
		return 0;
	case 14:
		if ((rc = get_u64(d, f, "subscribe.flag", &v)))
			return rc;
		s->flag = (int64_t)v;
		return 0;
	default: return 0;
	}
}

/* A connect.subs map entry: key 1 (the channel), value 2. */
static int subs_entry_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_sub_req *s = arg;
	const char *key;
	int rc;
	if (f->num == 1) {
		if ((rc = get_str(d, f, "connect.subs key", &key)))
			return rc;
		s->channel = key;
		return 0;
	}
	if (f->num == 2) {
		const char *channel = s->channel;
		if (f->wt != WT_LEN)
			return wrong_type(d, "connect.subs value");
		if ((rc = decode_msg(d, f->p, f->n, sub_field, s)))
			return rc;
		s->channel = channel; /* the key names the channel */
	}
	return 0;
}

/* ConnectRequest: token 1, data 2, subs 3, name 4, version 5. */
static int connect_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	int rc;
	switch (f->num) {
	case 1: return get_str(d, f, "connect.token", &c->token);
	case 2: return get_raw(d, f, "connect.data", &c->data);
	case 3: {
		if (f->wt != WT_LEN)
			return wrong_type(d, "connect.subs");
		if (c->nsubs == d->room_cap)
			return hd_error_set(d->err, HD_EINVAL, "connect.subs has more than %d entries",
					    HD_CENTRIFUGE_SUBS_MAX);
		struct hd_centrifuge_sub_req *s = &d->room[c->nsubs];
		sub_req_init(s);
		if ((rc = decode_msg(d, f->p, f->n, subs_entry_field, s)))
			return rc;
		c->subs = d->room;
		c->nsubs++;
		return 0;
	}
	case 4: return get_str(d, f, "connect.name", &c->name);
	case 5: return get_str(d, f, "connect.version", &c->version);
	default: return 0;
	}
}

/* StreamPosition: offset 1, epoch 2. */
static int since_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	if (f->num == 1)
		return get_u64(d, f, "history.since.offset", &c->since_offset);
	if (f->num == 2)
		return get_str(d, f, "history.since.epoch", &c->since_epoch);
	return 0;
}

/* HistoryRequest: channel 1, limit 7, since 8, reverse 9. */
static int history_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	uint64_t v = 0;
	int rc;
	switch (f->num) {
	case 1: return get_str(d, f, "history.channel", &c->sub.channel);
	case 7:
		if ((rc = get_u64(d, f, "history.limit", &v)))
			return rc;
		if ((int64_t)v < INT32_MIN || (int64_t)v > INT32_MAX)
			return hd_error_set(d->err, HD_EINVAL, "history.limit is not an int32");
		c->limit = (int32_t)(int64_t)v;
		return 0;
	case 8:
		if (f->wt != WT_LEN)
			return wrong_type(d, "history.since");
		c->has_since = true;
		return decode_msg(d, f->p, f->n, since_field, c);
	case 9: return get_bool(d, f, "history.reverse", &c->reverse);
	default: return 0;
	}
}

/* The requests whose field 1 is the channel and field 2 nothing herald
 * reads (unsubscribe, presence, presence_stats) or the data (publish) or
 * the token (sub_refresh). */
static int channel_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	if (f->num == 1)
		return get_str(d, f, "channel", &c->sub.channel);
	if (f->num == 2 && c->method == HD_CENTRIFUGE_PUBLISH)
		return get_raw(d, f, "publish.data", &c->data);
	if (f->num == 2 && c->method == HD_CENTRIFUGE_SUB_REFRESH)
		return get_str(d, f, "sub_refresh.token", &c->token);
	return 0;
}

/* SendRequest: data 1. RPCRequest: data 1, method 2. RefreshRequest: token 1. */
static int misc_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	if (c->method == HD_CENTRIFUGE_REFRESH)
		return f->num == 1 ? get_str(d, f, "refresh.token", &c->token) : 0;
	if (f->num == 1)
		return get_raw(d, f, "data", &c->data);
	if (f->num == 2 && c->method == HD_CENTRIFUGE_RPC)
		return get_str(d, f, "rpc.method", &c->rpc_method);
	return 0;
}

static int ignore_field(struct dec *d, void *arg, const struct field *f)
{
	(void)d;
	(void)arg;
	(void)f;
	return 0;
}

/* The method of a Command field (connect = 4 … sub_refresh = 15), or PONG. */
static enum hd_centrifuge_method command_method(uint32_t num)
{
	return num >= 4 && num <= 15 ? (enum hd_centrifuge_method)(num - 3) : HD_CENTRIFUGE_PONG;
}

static field_fn method_fields(enum hd_centrifuge_method m)
{
	switch (m) {
	case HD_CENTRIFUGE_CONNECT: return connect_field;
	case HD_CENTRIFUGE_HISTORY: return history_field;
	case HD_CENTRIFUGE_UNSUBSCRIBE:
	case HD_CENTRIFUGE_PUBLISH:
	case HD_CENTRIFUGE_PRESENCE:
	case HD_CENTRIFUGE_PRESENCE_STATS:
	case HD_CENTRIFUGE_SUB_REFRESH: return channel_field;
	case HD_CENTRIFUGE_SEND:
	case HD_CENTRIFUGE_RPC:
	case HD_CENTRIFUGE_REFRESH: return misc_field;
	default: return ignore_field;
	}
}

/* Command: id 1, then one method field. */
static int command_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_command *c = arg;
	uint64_t v = 0;
	int rc;
	if (f->num == 1) {
		if ((rc = get_u64(d, f, "id", &v)))
			return rc;
		if (v > UINT32_MAX)
			return hd_error_set(d->err, HD_EINVAL, "id must be an integer from 0 to 4294967295");
		c->id = (uint32_t)v;
		return 0;
	}
	enum hd_centrifuge_method m = command_method(f->num);
	if (m == HD_CENTRIFUGE_PONG)
		return 0;
	if (c->method != HD_CENTRIFUGE_PONG && c->method != m)
		return 0; /* the first method chosen stays */
	if (f->wt != WT_LEN)
		return hd_error_set(d->err, HD_EINVAL, "%s must be a message", hd_centrifuge_method_name(m));
	c->method = m;
	if (m == HD_CENTRIFUGE_SUBSCRIBE)
		return decode_msg(d, f->p, f->n, sub_field, &c->sub);
	return decode_msg(d, f->p, f->n, method_fields(m), c);
}

int hd_centrifuge_pb_decode(const uint8_t *msg, size_t len, struct hd_centrifuge_command *cmd,
			    struct hd_error *err)
{
	struct dec d = {.cmd = cmd, .err = err};
	size_t room;
	int rc;

	memset(cmd, 0, sizeof(*cmd));
	cmd->token = cmd->name = cmd->version = cmd->since_epoch = cmd->rpc_method = empty;
	sub_req_init(&cmd->sub);
	if (err)
		hd_error_clear(err);
	if (len > HD_CENTRIFUGE_LINE_MAX)
		return hd_error_set(err, HD_ETOOBIG, "command is longer than %d bytes", HD_CENTRIFUGE_LINE_MAX);

	/* A subs entry takes at least two bytes. */
	d.room_cap = len / 2 < HD_CENTRIFUGE_SUBS_MAX ? len / 2 : HD_CENTRIFUGE_SUBS_MAX;
	room = d.room_cap * sizeof(struct hd_centrifuge_sub_req);
	cmd->mem_len = room + 2 * len + 1;
	cmd->mem = hd_malloc(cmd->mem_len);
	d.room = (struct hd_centrifuge_sub_req *)(void *)cmd->mem;
	d.str = cmd->mem + room;
	d.str_end = cmd->mem + cmd->mem_len;

	rc = decode_msg(&d, msg, len, command_field, cmd);
	if (rc == 0 && cmd->method == HD_CENTRIFUGE_PONG && cmd->id != 0)
		cmd->method = HD_CENTRIFUGE_UNKNOWN;
	if (rc)
		hd_centrifuge_command_fini(cmd);
	return rc;
}

static int emulation_field(struct dec *d, void *arg, const struct field *f)
{
	struct hd_centrifuge_pb_emulation *e = arg;
	if (f->num != 2 && f->num != 3)
		return 0;
	if (f->wt != WT_LEN)
		return wrong_type(d, f->num == 2 ? "session" : "data");
	if (f->num == 2) {
		e->session = (const char *)f->p;
		e->session_len = f->n;
	} else {
		e->data = (const char *)f->p;
		e->data_len = f->n;
	}
	return 0;
}

int hd_centrifuge_pb_emulation_decode(const uint8_t *msg, size_t len, struct hd_centrifuge_pb_emulation *out,
				      struct hd_error *err)
{
	struct dec d = {.err = err};
	memset(out, 0, sizeof(*out));
	out->session = out->data = empty;
	if (err)
		hd_error_clear(err);
	return decode_msg(&d, msg, len, emulation_field, out);
}

/* ---- Writer ------------------------------------------------------------- */

/* Counts when b is NULL, else appends; the first error sticks. */
struct w {
	struct hd_buf *b;
	size_t n;
	int err;
};

typedef void (*enc_fn)(struct w *w, const void *arg);

static void w_raw(struct w *w, const void *p, size_t n)
{
	w->n += n;
	if (w->b && !w->err && n)
		w->err = hd_buf_append(w->b, p, n);
}

static void w_varint(struct w *w, uint64_t v)
{
	uint8_t out[HD_CENTRIFUGE_PB_VARINT_MAX];
	size_t k = 0;
	do {
		out[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	w_raw(w, out, k);
}

static void w_tag(struct w *w, uint32_t field, enum wire wt)
{
	w_varint(w, (uint64_t)field << 3 | wt);
}

static void w_u64(struct w *w, uint32_t field, uint64_t v)
{
	if (!v)
		return;
	w_tag(w, field, WT_VARINT);
	w_varint(w, v);
}

static void w_bool(struct w *w, uint32_t field, bool v)
{
	w_u64(w, field, v ? 1 : 0);
}

static void w_bytes(struct w *w, uint32_t field, const void *p, size_t n)
{
	if (!n)
		return;
	w_tag(w, field, WT_LEN);
	w_varint(w, n);
	w_raw(w, p, n);
}

static void w_str(struct w *w, uint32_t field, const char *s)
{
	if (s)
		w_bytes(w, field, s, strlen(s));
}

/* A message field: its length first (a counting pass), then its fields.
 * An empty message is written only when always is set. */
static void w_msg(struct w *w, uint32_t field, enc_fn fn, const void *arg, bool always)
{
	struct w c = {0};
	fn(&c, arg);
	if (!c.n && !always)
		return;
	w_tag(w, field, WT_LEN);
	w_varint(w, c.n);
	fn(w, arg);
}

/* Appends fn's message with its length prefix, or nothing on error. */
static int emit(struct hd_buf *b, enc_fn fn, const void *arg)
{
	struct w c = {0};
	size_t start = b->len;
	fn(&c, arg);
	struct w w = {.b = b};
	w_varint(&w, c.n);
	fn(&w, arg);
	if (w.err) {
		b->len = start;
		if (b->data)
			b->data[start] = '\0';
	}
	return w.err;
}

/* ---- Messages ----------------------------------------------------------- */

static void enc_nothing(struct w *w, const void *arg)
{
	(void)w;
	(void)arg;
}

struct tag {
	const char *key, *val;     /* key: a name token ([a-z0-9], quoted); val: a JSON token */
	size_t key_len, val_len;
};

/* A tags map entry: key 1, value 2 (a string token decoded, a number or
 * boolean as its text). */
static void enc_tag(struct w *w, const void *arg)
{
	const struct tag *t = arg;
	w_bytes(w, 1, t->key + 1, t->key_len - 2);
	if (t->val[0] != '"') {
		w_bytes(w, 2, t->val, t->val_len);
	} else if (!memchr(t->val, '\\', t->val_len)) {
		w_bytes(w, 2, t->val + 1, t->val_len - 2);
	} else {
		char *out = hd_malloc(t->val_len);
		size_t n = hd_json_text_unescape(t->val, t->val_len, out);
		w_bytes(w, 2, out, n);
		free(out);
	}
}

static void enc_client_info(struct w *w, const void *arg);

/* A string token decoded (returns owned, NUL-terminated). */
static char *token_str(const char *tok, size_t len)
{
	char *out = hd_malloc(len + 1);
	size_t n = hd_json_text_unescape(tok, len, out);
	out[n] = '\0';
	return out;
}

/* The publication's info field (5) from the event's client_info member
 * (hd_centrifuge_pub_info), as ClientInfo with the infos' JSON text. */
static void w_pub_info(struct w *w, const struct hd_centrifuge_pub *p)
{
	struct hd_json_text_span sp[8];
	struct hd_centrifuge_client_info c = {0};
	char *user = NULL, *client = NULL;
	const char *info;
	size_t n, nm;

	if (!hd_centrifuge_pub_info(p, &info, &n) || hd_json_text_members(info, n, sp, 8, &nm))
		return;
	for (size_t i = 0; i < nm; i++) {
		const char *k = info + sp[i].key_off, *v = info + sp[i].val_off;
		size_t kl = sp[i].key_len, vl = sp[i].val_len;
		if (kl == 6 && memcmp(k, "\"user\"", 6) == 0 && v[0] == '"' && !user)
			user = token_str(v, vl);
		else if (kl == 8 && memcmp(k, "\"client\"", 8) == 0 && v[0] == '"' && !client)
			client = token_str(v, vl);
		else if (kl == 11 && memcmp(k, "\"conn_info\"", 11) == 0) {
			c.conn_info = v;
			c.conn_info_len = vl;
		} else if (kl == 11 && memcmp(k, "\"chan_info\"", 11) == 0) {
			c.chan_info = v;
			c.chan_info_len = vl;
		}
	}
	c.user = user;
	c.client = client;
	w_msg(w, 5, enc_client_info, &c, true);
	free(user);
	free(client);
}

struct pub_parts {
	const struct hd_centrifuge_pub *pub;
	const struct hd_centrifuge_pub_parts *parts; /* NULL: the event is sent whole */
};

/* Publication: data 4, info 5, offset 6, tags 7, delta 8. The data is the JSON
 * text the JSON format carries as data: the whole event, or (payload) its
 * data member, with the attributes as tags (see hd_centrifuge_pub); with
 * delta compression the fossil delta's bytes and delta set (the base is the
 * previous publication's data bytes, as the SDK applies it). */
static void enc_pub_parts(struct w *w, const void *arg)
{
	const struct pub_parts *pp = arg;
	const struct hd_centrifuge_pub *p = pp->pub;
	const struct hd_centrifuge_pub_parts *parts = pp->parts;
	if (p->delta) {
		w_bytes(w, 4, p->delta, p->delta_len);
	} else if (!parts) {
		w_bytes(w, 4, p->data, p->len);
	} else if (parts->data != SIZE_MAX) {
		w_bytes(w, 4, p->data + parts->sp[parts->data].val_off, parts->sp[parts->data].val_len);
	} else if (p->as_string) {
		w_bytes(w, 4, "null", 4); /* the text a delta subscriber's next delta applies to */
	}
	w_pub_info(w, p);
	w_u64(w, 6, p->offset);
	w_bool(w, 8, p->delta != NULL);
	if (!parts)
		return;
	for (size_t i = 0; i < parts->n; i++) {
		if (!hd_centrifuge_pub_tag(p, parts, i))
			continue;
		struct tag t = {p->data + parts->sp[i].key_off, p->data + parts->sp[i].val_off,
				parts->sp[i].key_len, parts->sp[i].val_len};
		w_msg(w, 7, enc_tag, &t, true);
	}
	if (parts->base64) {
		struct tag t = {"\"data_base64\"", "true", 13, 4};
		w_msg(w, 7, enc_tag, &t, true);
	}
}

/* The parts of a payload publication (returns owned), or NULL when p is
 * sent whole. Split once per publication: the nested encoders run its
 * encoder several times. */
static struct hd_centrifuge_pub_parts *pub_split(const struct hd_centrifuge_pub *p)
{
	struct hd_centrifuge_pub_parts *parts;
	if (!p->payload)
		return NULL;
	parts = hd_malloc(sizeof(*parts));
	if (!hd_centrifuge_pub_split(p, parts)) {
		free(parts);
		return NULL;
	}
	return parts;
}

/* A publication field (number field) of p. */
static void w_pub(struct w *w, uint32_t field, const struct hd_centrifuge_pub *p)
{
	struct pub_parts pp = {p, pub_split(p)};
	w_msg(w, field, enc_pub_parts, &pp, true);
	free((void *)pp.parts);
}

/* ClientInfo: user 1, client 2, conn_info 3, chan_info 4 (the JSON text's bytes, as
 * Centrifugo sends a JSON info to protobuf clients). */
static void enc_client_info(struct w *w, const void *arg)
{
	const struct hd_centrifuge_client_info *c = arg;
	w_str(w, 1, c->user);
	w_str(w, 2, c->client);
	w_bytes(w, 3, c->conn_info, c->conn_info_len);
	w_bytes(w, 4, c->chan_info, c->chan_info_len);
}

/* Join / Leave: info 1. */
static void enc_join(struct w *w, const void *arg)
{
	w_msg(w, 1, enc_client_info, arg, true);
}

/* SubscribeResult: expires 1, ttl 2, recoverable 3, epoch 6,
 * publications 7, recovered 8, offset 9, positioned 10, was_recovering 12,
 * delta 13. */
static void enc_sub_result(struct w *w, const void *arg)
{
	const struct hd_centrifuge_sub_result *r = arg;
	w_bool(w, 1, r->expires);
	w_u64(w, 2, r->ttl);
	w_bool(w, 3, r->recoverable);
	w_str(w, 6, r->epoch);
	for (size_t i = 0; i < r->npubs; i++)
		w_pub(w, 7, &r->pubs[i]);
	w_bool(w, 8, r->recovered);
	w_u64(w, 9, r->offset);
	w_bool(w, 10, r->positioned);
	if (r->data)
		w_bytes(w, 11, r->data, r->data_len);
	w_bool(w, 12, r->was_recovering);
	w_bool(w, 13, r->delta);
}

/* A ConnectResult.subs map entry: key 1 (the channel), value 2. */
static void enc_sub_entry(struct w *w, const void *arg)
{
	const struct hd_centrifuge_sub_result *r = arg;
	w_str(w, 1, r->channel);
	w_msg(w, 2, enc_sub_result, r, true);
}

/* ConnectResult: client 1, version 2, expires 3, ttl 4, subs 6, ping 7,
 * pong 8, session 9, node 10. */
static void enc_connect(struct w *w, const void *arg)
{
	const struct hd_centrifuge_connect_result *r = arg;
	w_str(w, 1, r->client);
	w_str(w, 2, r->version);
	w_bool(w, 3, r->expires);
	w_u64(w, 4, r->ttl);
	if (r->data)
		w_bytes(w, 5, r->data, r->data_len);
	for (size_t i = 0; i < r->nsubs; i++)
		w_msg(w, 6, enc_sub_entry, &r->subs[i], true);
	w_u64(w, 7, r->ping);
	w_bool(w, 8, r->pong);
	w_str(w, 9, r->session);
	w_str(w, 10, r->node);
}

struct history {
	const struct hd_centrifuge_pub *pubs;
	size_t n;
	const char *epoch;
	uint64_t offset;
};

/* HistoryResult: publications 1, epoch 2, offset 3. */
static void enc_history(struct w *w, const void *arg)
{
	const struct history *h = arg;
	for (size_t i = 0; i < h->n; i++)
		w_pub(w, 1, &h->pubs[i]);
	w_str(w, 2, h->epoch);
	w_u64(w, 3, h->offset);
}

/* A PresenceResult.presence map entry: key 1 (the client), value 2. */
static void enc_presence_entry(struct w *w, const void *arg)
{
	const struct hd_centrifuge_client_info *c = arg;
	w_str(w, 1, c->client);
	w_msg(w, 2, enc_client_info, c, true);
}

struct presence {
	const struct hd_centrifuge_client_info *c;
	size_t n;
};

/* PresenceResult: presence 1 (a map). */
static void enc_presence(struct w *w, const void *arg)
{
	const struct presence *p = arg;
	for (size_t i = 0; i < p->n; i++)
		w_msg(w, 1, enc_presence_entry, &p->c[i], true);
}

/* PresenceStatsResult: num_clients 1, num_users 2. */
static void enc_presence_stats(struct w *w, const void *arg)
{
	const uint32_t *v = arg;
	w_u64(w, 1, v[0]);
	w_u64(w, 2, v[1]);
}

struct sub_refresh {
	bool expires;
	uint32_t ttl;
};

/* SubRefreshResult and the Refresh push: expires 1, ttl 2. */
static void enc_sub_refresh(struct w *w, const void *arg)
{
	const struct sub_refresh *r = arg;
	w_bool(w, 1, r->expires);
	w_u64(w, 2, r->ttl);
}

struct refresh {
	const char *client, *version;
	bool expires;
	uint32_t ttl;
};

/* RefreshResult: client 1, version 2, expires 3, ttl 4. */
static void enc_refresh(struct w *w, const void *arg)
{
	const struct refresh *r = arg;
	w_str(w, 1, r->client);
	w_str(w, 2, r->version);
	w_bool(w, 3, r->expires);
	w_u64(w, 4, r->ttl);
}

struct error {
	uint32_t code;
	const char *message;
	bool temporary;
};

/* Error: code 1, message 2, temporary 3. */
static void enc_error(struct w *w, const void *arg)
{
	const struct error *e = arg;
	w_u64(w, 1, e->code);
	w_str(w, 2, e->message);
	w_bool(w, 3, e->temporary);
}

struct unsub {
	uint32_t code;
	const char *reason;
	bool reconnect;
};

/* Unsubscribe: code 2, reason 3. */
static void enc_unsubscribe(struct w *w, const void *arg)
{
	const struct unsub *u = arg;
	w_u64(w, 2, u->code);
	w_str(w, 3, u->reason);
}

/* Disconnect: code 1, reason 2, reconnect 3. */
static void enc_disconnect(struct w *w, const void *arg)
{
	const struct unsub *u = arg;
	w_u64(w, 1, u->code);
	w_str(w, 2, u->reason);
	w_bool(w, 3, u->reconnect);
}

/* One field of a Reply or a Push holding a message. */
struct part {
	uint32_t field;         /* 0: none */
	enc_fn fn;
	const void *arg;
};

struct push {
	const char *channel;
	struct part body;
};

/* Push: channel 2, then pub 4, join 5, leave 6, unsubscribe 7 or
 * disconnect 11. */
static void enc_push(struct w *w, const void *arg)
{
	const struct push *p = arg;
	w_str(w, 2, p->channel);
	w_msg(w, p->body.field, p->body.fn, p->body.arg, true);
}

struct reply {
	uint32_t id;
	struct part body;
};

/* Reply: id 1, then error 2, push 4 or a result 5…15. */
static void enc_reply(struct w *w, const void *arg)
{
	const struct reply *r = arg;
	w_u64(w, 1, r->id);
	if (r->body.field)
		w_msg(w, r->body.field, r->body.fn, r->body.arg, true);
}

/* The Reply field of a method's result (connect = 5 … sub_refresh = 15;
 * send has none), or 0. */
static uint32_t result_field(enum hd_centrifuge_method m)
{
	if (m >= HD_CENTRIFUGE_CONNECT && m <= HD_CENTRIFUGE_PING)
		return (uint32_t)m + 4;
	if (m >= HD_CENTRIFUGE_RPC && m <= HD_CENTRIFUGE_SUB_REFRESH)
		return (uint32_t)m + 3;
	return 0;
}

static int reply(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m, enc_fn fn, const void *arg)
{
	struct reply r = {.id = id, .body = {result_field(m), fn, arg}};
	return emit(b, enc_reply, &r);
}

static int push(struct hd_buf *b, const char *channel, uint32_t field, enc_fn fn, const void *arg)
{
	struct push p = {.channel = channel, .body = {field, fn, arg}};
	struct reply r = {.body = {4, enc_push, &p}};
	return emit(b, enc_reply, &r);
}

/* ---- Public encoders ---------------------------------------------------- */

int hd_centrifuge_pb_reply_error(struct hd_buf *b, uint32_t id, uint32_t code, const char *message,
				 bool temporary)
{
	struct error e = {code, message, temporary};
	struct reply r = {.id = id, .body = {2, enc_error, &e}};
	return emit(b, enc_reply, &r);
}

int hd_centrifuge_pb_reply_empty(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m)
{
	return reply(b, id, m, enc_nothing, NULL);
}

int hd_centrifuge_pb_reply_connect(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r)
{
	return reply(b, id, HD_CENTRIFUGE_CONNECT, enc_connect, r);
}

int hd_centrifuge_pb_reply_subscribe(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r)
{
	return reply(b, id, HD_CENTRIFUGE_SUBSCRIBE, enc_sub_result, r);
}

int hd_centrifuge_pb_reply_history(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
				   const char *epoch, uint64_t offset)
{
	struct history h = {pubs, n, epoch, offset};
	return reply(b, id, HD_CENTRIFUGE_HISTORY, enc_history, &h);
}

int hd_centrifuge_pb_reply_presence(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c,
				    size_t n)
{
	struct presence p = {c, n};
	return reply(b, id, HD_CENTRIFUGE_PRESENCE, enc_presence, &p);
}

int hd_centrifuge_pb_reply_presence_stats(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users)
{
	uint32_t v[2] = {clients, users};
	return reply(b, id, HD_CENTRIFUGE_PRESENCE_STATS, enc_presence_stats, v);
}

int hd_centrifuge_pb_reply_sub_refresh(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl)
{
	struct sub_refresh r = {expires, ttl};
	return reply(b, id, HD_CENTRIFUGE_SUB_REFRESH, enc_sub_refresh, &r);
}

struct rpc_result {
	const char *data;
	size_t n;
};

static void enc_rpc(struct w *w, const void *arg)
{
	const struct rpc_result *r = arg;
	w_bytes(w, 1, r->data, r->n);
}

int hd_centrifuge_pb_reply_rpc(struct hd_buf *b, uint32_t id, const char *data, size_t n)
{
	struct rpc_result r = {data, n};
	return reply(b, id, HD_CENTRIFUGE_RPC, enc_rpc, &r);
}

int hd_centrifuge_pb_reply_refresh(struct hd_buf *b, uint32_t id, const char *client, const char *version,
				   bool expires, uint32_t ttl)
{
	struct refresh r = {client, version, expires, ttl};
	return reply(b, id, HD_CENTRIFUGE_REFRESH, enc_refresh, &r);
}

int hd_centrifuge_pb_push_pub(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub)
{
	struct pub_parts pp = {pub, pub_split(pub)};
	int rc = push(b, channel, 4, enc_pub_parts, &pp);
	free((void *)pp.parts);
	return rc;
}

int hd_centrifuge_pb_push_join(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info)
{
	return push(b, channel, 5, enc_join, info);
}

int hd_centrifuge_pb_push_leave(struct hd_buf *b, const char *channel,
				const struct hd_centrifuge_client_info *info)
{
	return push(b, channel, 6, enc_join, info);
}

int hd_centrifuge_pb_push_unsubscribe(struct hd_buf *b, const char *channel, uint32_t code, const char *reason)
{
	struct unsub u = {code, reason, false};
	return push(b, channel, 7, enc_unsubscribe, &u);
}

int hd_centrifuge_pb_push_refresh(struct hd_buf *b, bool expires, uint32_t ttl)
{
	struct sub_refresh r = {expires, ttl};
	return push(b, NULL, 12, enc_sub_refresh, &r);
}

int hd_centrifuge_pb_push_disconnect(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect)
{
	struct unsub u = {code, reason, reconnect};
	return push(b, NULL, 11, enc_disconnect, &u);
}
