/*
 * centrifuge — see centrifuge.h for the contract.
 *
 * Decoding. json_text checks and minifies a command line once, into the
 * command's own storage: one allocation per command, laid out as
 *
 *   [ room for connect.subs entries ][ the minified line ][ decoded strings ]
 *
 * The room for subs entries is bounded by the line itself: every entry is
 * an object, so it costs one '{' beyond the three of the command, the
 * connect and the subs objects; counting '{' bytes (strings included) gives
 * an upper bound, capped at HD_CENTRIFUGE_SUBS_MAX. The decoded strings need no
 * more bytes than the minified line: a string token decodes to fewer bytes
 * than it has (the quotes pay for the NUL), and tokens do not overlap.
 *
 * Each object the decoder enters (the method member, connect.subs, one of
 * its entries, history.since) is a part of the minified line; scanning it
 * again with json_text, in place, rewrites the same bytes and lists its
 * members as spans. Each kind of object has a table of the members herald
 * reads; a member not in the table is skipped. The two members that hold
 * objects of their own (connect.subs, history.since) are only noted while
 * the method object is read and are decoded after it, so the decoder never
 * recurses: the nesting it walks is fixed, and json_text's depth limit
 * bounds the rest. Raw `bytes` members point into the minified line.
 *
 * Encoding. Each encoder writes one message through a small writer that
 * remembers the first error and, on error, cuts the buffer back to where
 * the message began. Members are written in proto field order with
 * proto3's omissions, so every encoder states only which members exist.
 */
#include "proto/centrifuge.h"
#include "core/alloc.h"
#include "core/text.h"
#include "proto/json_text.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF_MEMBERS_MAX 64  /* members of one object of a command; more → HD_EINVAL */
#define CF_KEY_MAX 96      /* a member name token longer than this names nothing we read */
#define CF_WHERE_MAX 112   /* "connect.subs[\"<channel, shortened>\"]" */

static const char empty[] = "";

/* ---- Decoding ----------------------------------------------------------- */

/* How a member's value is read. */
enum kind {
	F_STR,   /* a string, decoded and NUL-terminated: const char * */
	F_RAW,   /* any JSON value, kept as text: struct hd_centrifuge_raw */
	F_BOOL,  /* true or false: bool */
	F_U64,   /* an integer in [0, 2^64): uint64_t */
	F_I64,   /* an integer in [-2^63, 2^63): int64_t */
	F_I32,   /* an integer in [-2^31, 2^31): int32_t */
	F_SINCE, /* history.since: an object, decoded after the method */
	F_SUBS,  /* connect.subs: an object, decoded after the method */
};

/* A member herald reads: its name, how, and where the value goes (an
 * offset from the base the object is decoded into). */
struct field {
	const char *name;
	enum kind kind;
	size_t off;
};

#define CMD(m) offsetof(struct hd_centrifuge_command, m)
#define SUB(m) offsetof(struct hd_centrifuge_sub_req, m)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* SubscribeRequest, into a struct hd_centrifuge_sub_req. A connect.subs entry takes
 * its channel from the map key, so it uses this table without its first row. */
static const struct field sub_fields[] = {
	{"channel", F_STR, SUB(channel)},
	{"token", F_STR, SUB(token)},
	{"recover", F_BOOL, SUB(recover)},
	{"epoch", F_STR, SUB(epoch)},
	{"offset", F_U64, SUB(offset)},
	{"data", F_RAW, SUB(data)},
	{"positioned", F_BOOL, SUB(positioned)},
	{"recoverable", F_BOOL, SUB(recoverable)},
	{"join_leave", F_BOOL, SUB(join_leave)},
	{"flag", F_I64, SUB(flag)},
	{"delta", F_STR, SUB(delta)},
	{"type", F_I32, SUB(type)},
};

/* The other objects decode into the struct hd_centrifuge_command. */
static const struct field connect_fields[] = {
	{"token", F_STR, CMD(token)},
	{"data", F_RAW, CMD(data)},
	{"subs", F_SUBS, 0},
	{"name", F_STR, CMD(name)},
	{"version", F_STR, CMD(version)},
};
static const struct field channel_fields[] = {
	{"channel", F_STR, CMD(sub.channel)},
};
static const struct field publish_fields[] = {
	{"channel", F_STR, CMD(sub.channel)},
	{"data", F_RAW, CMD(data)},
};
static const struct field history_fields[] = {
	{"channel", F_STR, CMD(sub.channel)},
	{"limit", F_I32, CMD(limit)},
	{"since", F_SINCE, 0},
	{"reverse", F_BOOL, CMD(reverse)},
};
static const struct field since_fields[] = {
	{"offset", F_U64, CMD(since_offset)},
	{"epoch", F_STR, CMD(since_epoch)},
};
static const struct field data_fields[] = {
	{"data", F_RAW, CMD(data)},
};
static const struct field rpc_fields[] = {
	{"data", F_RAW, CMD(data)},
	{"method", F_STR, CMD(rpc_method)},
};
static const struct field token_fields[] = {
	{"token", F_STR, CMD(token)},
};
static const struct field sub_refresh_fields[] = {
	{"channel", F_STR, CMD(sub.channel)},
	{"token", F_STR, CMD(token)},
};

/* Each method's member name and the members of its object. */
static const struct method {
	const char *name;
	const struct field *fields;
	size_t nfields;
	bool into_sub; /* the fields are offsets into cmd->sub, not cmd */
} methods[] = {
	[HD_CENTRIFUGE_PONG] = {"", NULL, 0, false},
	[HD_CENTRIFUGE_CONNECT] = {"connect", connect_fields, COUNT(connect_fields), false},
	[HD_CENTRIFUGE_SUBSCRIBE] = {"subscribe", sub_fields, COUNT(sub_fields), true},
	[HD_CENTRIFUGE_UNSUBSCRIBE] = {"unsubscribe", channel_fields, COUNT(channel_fields), false},
	[HD_CENTRIFUGE_PUBLISH] = {"publish", publish_fields, COUNT(publish_fields), false},
	[HD_CENTRIFUGE_PRESENCE] = {"presence", channel_fields, COUNT(channel_fields), false},
	[HD_CENTRIFUGE_PRESENCE_STATS] = {"presence_stats", channel_fields, COUNT(channel_fields), false},
	[HD_CENTRIFUGE_HISTORY] = {"history", history_fields, COUNT(history_fields), false},
	[HD_CENTRIFUGE_PING] = {"ping", NULL, 0, false},
	[HD_CENTRIFUGE_SEND] = {"send", data_fields, COUNT(data_fields), false},
	[HD_CENTRIFUGE_RPC] = {"rpc", rpc_fields, COUNT(rpc_fields), false},
	[HD_CENTRIFUGE_REFRESH] = {"refresh", token_fields, COUNT(token_fields), false},
	[HD_CENTRIFUGE_SUB_REFRESH] = {"sub_refresh", sub_refresh_fields, COUNT(sub_refresh_fields),
			       false},
	[HD_CENTRIFUGE_UNKNOWN] = {"", NULL, 0, false},
};

const char *hd_centrifuge_method_name(enum hd_centrifuge_method m)
{
	return (unsigned)m < COUNT(methods) ? methods[m].name : "";
}

/* A part of the minified line: one JSON value. */
struct span {
	char *p;
	size_t n;
};

/* The state of one hd_centrifuge_decode call. */
struct dec {
	struct hd_centrifuge_command *cmd;
	struct hd_centrifuge_sub_req *room; /* for connect.subs entries */
	size_t room_cap;
	char *str, *str_end;        /* the free part of the strings area */
	struct span subs, since;    /* noted in the method object; p NULL when absent */
	struct hd_error *err;
};

/* A member name, decoded when it has escapes (rare: nobody escapes ASCII). */
struct name {
	const char *s;
	size_t n;
	char buf[CF_KEY_MAX];
};

static void name_from_token(struct name *nm, const char *tok, size_t len)
{
	if (!memchr(tok + 1, '\\', len - 2)) {
		nm->s = tok + 1;
		nm->n = len - 2;
	} else if (len <= sizeof(nm->buf)) {
		nm->n = hd_json_text_unescape(tok, len, nm->buf);
		nm->s = nm->buf;
	} else {
		/* Each byte of a name we read costs at most six bytes escaped,
		 * and none is longer than 14: this one is none of them. */
		nm->s = NULL;
		nm->n = 0;
	}
}

static bool name_is(const struct name *nm, const char *lit)
{
	size_t k = strlen(lit);
	return nm->s && nm->n == k && memcmp(nm->s, lit, k) == 0;
}

/* Decodes the string token tok[0, len) into the strings area. */
static int get_string(struct dec *d, const char *where, const char *member, const char *tok,
		      size_t len, const char **out)
{
	size_t n;

	if (tok[0] != '"')
		return hd_error_set(d->err, HD_EINVAL, "%s.%s must be a string", where, member);
	/* The area holds as many bytes as the line, and each token decodes to
	 * at most len - 1 bytes with its NUL: see the file header. */
	assert((size_t)(d->str_end - d->str) >= len - 1);
	n = hd_json_text_unescape(tok, len, d->str);
	if (memchr(d->str, '\0', n))
		return hd_error_set(d->err, HD_EINVAL, "%s.%s must not contain U+0000", where,
				    member);
	d->str[n] = '\0';
	*out = d->str;
	d->str += n + 1;
	return 0;
}

enum { NUM_OK, NUM_NOT_INTEGER, NUM_RANGE };

/*
 * Reads a number token as an integer in [-neg_max, pos_max]: only plain
 * digits with an optional '-' (no fraction, no exponent), checked for
 * overflow digit by digit. A token that is not a number is NUM_NOT_INTEGER.
 */
static int parse_int(const char *t, size_t n, uint64_t neg_max, uint64_t pos_max, bool *neg,
		     uint64_t *mag)
{
	size_t i = n > 0 && t[0] == '-';
	uint64_t v = 0;

	*neg = i;
	if (i == n)
		return NUM_NOT_INTEGER;
	for (; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return NUM_NOT_INTEGER;
		unsigned digit = (unsigned)(t[i] - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return NUM_RANGE;
		v = v * 10 + digit;
	}
	if (v > (*neg ? neg_max : pos_max))
		return NUM_RANGE;
	*mag = v;
	return NUM_OK;
}

static int get_u64(struct dec *d, const char *where, const char *member, const char *t, size_t n,
		   uint64_t *out)
{
	bool neg;
	uint64_t v = 0;

	switch (parse_int(t, n, 0, UINT64_MAX, &neg, &v)) {
	case NUM_OK:
		if (!neg) {
			*out = v;
			return 0;
		}
		break; /* "-0" */
	case NUM_RANGE:
		if (!neg)
			return hd_error_set(d->err, HD_EINVAL,
					    "%s.%s must be at most 18446744073709551615", where,
					    member);
		break;
	}
	return hd_error_set(d->err, HD_EINVAL, "%s.%s must be an unsigned integer", where, member);
}

static int get_signed(struct dec *d, const char *where, const char *member, const char *t,
		      size_t n, int bits, int64_t *out)
{
	uint64_t lim = (uint64_t)1 << (bits - 1), v = 0;
	bool neg;

	if (parse_int(t, n, lim, lim - 1, &neg, &v) != NUM_OK)
		return hd_error_set(d->err, HD_EINVAL, "%s.%s must be an integer from -%llu to %llu",
				    where, member, (unsigned long long)lim,
				    (unsigned long long)(lim - 1));
	/* -2^63 has no positive counterpart, hence the detour through v - 1. */
	*out = !neg ? (int64_t)v : v ? -(int64_t)(v - 1) - 1 : 0;
	return 0;
}

/*
 * Lists the members of the object obj (minified text that the whole line's
 * scan accepted) into spans[0, max). The rescan writes each byte onto
 * itself. Returns 0, or HD_ETOOBIG (err untouched) when there are more.
 */
static int members(struct span obj, struct hd_json_text_span *spans, size_t max, size_t *n)
{
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = max};
	int rc = hd_json_text_minify(obj.p, obj.n, obj.p, &sc, NULL);

	if (rc == HD_ETOOBIG)
		return rc;
	assert(rc == 0 && sc.out_len == obj.n);
	*n = sc.nspans;
	return 0;
}

/* Reads one member's value v (not null) by the rules of f into base. */
static int put_field(struct dec *d, const char *where, const struct field *f, struct span v,
		     char *base)
{
	int64_t s = 0;
	int rc;

	switch (f->kind) {
	case F_STR: {
		const char *str = empty;
		if ((rc = get_string(d, where, f->name, v.p, v.n, &str)))
			return rc;
		memcpy(base + f->off, &str, sizeof(str));
		return 0;
	}
	case F_RAW: {
		struct hd_centrifuge_raw raw = {v.p, v.n};
		memcpy(base + f->off, &raw, sizeof(raw));
		return 0;
	}
	case F_BOOL: {
		if (v.p[0] != 't' && v.p[0] != 'f')
			return hd_error_set(d->err, HD_EINVAL, "%s.%s must be true or false", where,
					    f->name);
		bool b = v.p[0] == 't';
		memcpy(base + f->off, &b, sizeof(b));
		return 0;
	}
	case F_U64: {
		uint64_t u = 0;
		if ((rc = get_u64(d, where, f->name, v.p, v.n, &u)))
			return rc;
		memcpy(base + f->off, &u, sizeof(u));
		return 0;
	}
	case F_I64:
		if ((rc = get_signed(d, where, f->name, v.p, v.n, 64, &s)))
			return rc;
		memcpy(base + f->off, &s, sizeof(s));
		return 0;
	case F_I32: {
		if ((rc = get_signed(d, where, f->name, v.p, v.n, 32, &s)))
			return rc;
		int32_t s32 = (int32_t)s;
		memcpy(base + f->off, &s32, sizeof(s32));
		return 0;
	}
	case F_SINCE:
	case F_SUBS:
		if (v.p[0] != '{')
			return hd_error_set(d->err, HD_EINVAL, "%s.%s must be an object", where,
					    f->name);
		/* The last one wins, as with every other member. */
		*(f->kind == F_SINCE ? &d->since : &d->subs) = v;
		return 0;
	}
	return 0;
}

/* Decodes the members of obj that fields[0, n) names into base; where is
 * the object's path for messages ("subscribe", "history.since", …). */
static int decode_object(struct dec *d, struct span obj, const char *where,
			 const struct field *fields, size_t nfields, void *base)
{
	struct hd_json_text_span spans[CF_MEMBERS_MAX];
	size_t n;
	int rc;

	if (members(obj, spans, CF_MEMBERS_MAX, &n))
		return hd_error_set(d->err, HD_EINVAL, "%s has more than %d members", where,
				    CF_MEMBERS_MAX);
	for (size_t i = 0; i < n; i++) {
		struct span v = {obj.p + spans[i].val_off, spans[i].val_len};
		struct name nm;

		if (v.p[0] == 'n')
			continue; /* null: the member keeps its default */
		name_from_token(&nm, obj.p + spans[i].key_off, spans[i].key_len);
		for (size_t k = 0; k < nfields; k++)
			if (name_is(&nm, fields[k].name)) {
				if ((rc = put_field(d, where, &fields[k], v, base)))
					return rc;
				break;
			}
	}
	return 0;
}

static void sub_req_init(struct hd_centrifuge_sub_req *s)
{
	memset(s, 0, sizeof(*s));
	s->channel = s->token = s->epoch = s->delta = empty;
}

/* Decodes connect.subs: a map channel → SubscribeRequest. */
static int decode_subs(struct dec *d, struct span obj)
{
	struct hd_json_text_span spans[HD_CENTRIFUGE_SUBS_MAX];
	struct hd_centrifuge_command *cmd = d->cmd;
	size_t n;
	int rc;

	if (members(obj, spans, HD_CENTRIFUGE_SUBS_MAX, &n))
		return hd_error_set(d->err, HD_EINVAL, "connect.subs has more than %d entries",
				    HD_CENTRIFUGE_SUBS_MAX);
	cmd->subs = d->room;
	for (size_t i = 0; i < n; i++) {
		struct span v = {obj.p + spans[i].val_off, spans[i].val_len};
		struct hd_centrifuge_sub_req *s = &d->room[cmd->nsubs];
		char where[CF_WHERE_MAX], shown[HD_TEXT_SHOW_SIZE];
		const char *channel = empty;

		if ((rc = get_string(d, "connect", "subs key", obj.p + spans[i].key_off,
				     spans[i].key_len, &channel)))
			return rc;
		snprintf(where, sizeof(where), "connect.subs[\"%s\"]",
			 hd_text_show(shown, channel, strlen(channel)));
		if (v.p[0] != '{')
			return hd_error_set(d->err, HD_EINVAL, "%s must be an object", where);
		/* Each entry brought a '{' to the count that sized the room. */
		assert(cmd->nsubs < d->room_cap);
		sub_req_init(s);
		s->channel = channel;
		cmd->nsubs++;
		if ((rc = decode_object(d, v, where, sub_fields + 1, COUNT(sub_fields) - 1, s)))
			return rc;
	}
	return 0;
}

/* Prefixes err's message (a json_text diagnosis) with what was being read. */
static int json_error(struct hd_error *err)
{
	char detail[HD_ERROR_MSG_MAX];

	if (!err)
		return HD_EINVAL;
	memcpy(detail, err->msg, sizeof(detail));
	return hd_error_set(err, HD_EINVAL, "command is not valid JSON: %s", detail);
}

/* The room connect.subs may need: see the file header. */
static size_t subs_room(const char *line, size_t len)
{
	size_t braces = 0;

	for (const char *p = line, *end = line + len; (p = memchr(p, '{', (size_t)(end - p)));
	     p++)
		if (++braces >= HD_CENTRIFUGE_SUBS_MAX + 3)
			break;
	return braces > 3 ? braces - 3 : 0;
}

static void command_init(struct hd_centrifuge_command *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->token = cmd->name = cmd->version = cmd->since_epoch = cmd->rpc_method = empty;
	sub_req_init(&cmd->sub);
}

int hd_centrifuge_decode(const char *line, size_t len, struct hd_centrifuge_command *cmd, struct hd_error *err)
{
	struct hd_json_text_span spans[CF_MEMBERS_MAX];
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = CF_MEMBERS_MAX};
	struct dec d = {.cmd = cmd, .err = err};
	const struct method *m = NULL;
	struct span body = {0};
	char *text;
	size_t room;
	int rc;

	command_init(cmd);
	if (err)
		hd_error_clear(err);
	if (len > HD_CENTRIFUGE_LINE_MAX)
		return hd_error_set(err, HD_ETOOBIG, "command is longer than %d bytes",
				    HD_CENTRIFUGE_LINE_MAX);

	d.room_cap = subs_room(line, len);
	room = d.room_cap * sizeof(struct hd_centrifuge_sub_req);
	cmd->mem_len = room + 2 * len + 1;
	cmd->mem = hd_malloc(cmd->mem_len);
	d.room = (struct hd_centrifuge_sub_req *)(void *)cmd->mem;
	text = cmd->mem + room;

	rc = hd_json_text_minify(line, len, text, &sc, err);
	if (rc == HD_ETOOBIG) {
		rc = hd_error_set(err, HD_EINVAL,
				  "command must be a JSON object of at most %d members",
				  CF_MEMBERS_MAX);
		goto out;
	}
	if (rc) {
		rc = json_error(err);
		goto out;
	}
	if (text[0] != '{') {
		rc = hd_error_set(err, HD_EINVAL, "command must be a JSON object");
		goto out;
	}
	d.str = text + sc.out_len;
	d.str_end = d.str + sc.out_len + 1;

	for (size_t i = 0; i < sc.nspans; i++) {
		struct span v = {text + spans[i].val_off, spans[i].val_len};
		struct name nm;
		uint64_t id;

		if (v.p[0] == 'n')
			continue; /* null: absent */
		name_from_token(&nm, text + spans[i].key_off, spans[i].key_len);
		if (name_is(&nm, "id")) {
			bool neg;
			if (parse_int(v.p, v.n, 0, UINT32_MAX, &neg, &id) != NUM_OK || neg) {
				rc = hd_error_set(err, HD_EINVAL,
						  "id must be an integer from 0 to 4294967295");
				goto out;
			}
			cmd->id = (uint32_t)id;
			continue;
		}
		if (m)
			continue; /* the command is chosen; later methods are ignored */
		for (size_t k = HD_CENTRIFUGE_CONNECT; k < HD_CENTRIFUGE_UNKNOWN; k++) {
			if (!name_is(&nm, methods[k].name))
				continue;
			if (v.p[0] != '{') {
				rc = hd_error_set(err, HD_EINVAL, "%s must be an object",
						  methods[k].name);
				goto out;
			}
			m = &methods[k];
			cmd->method = (enum hd_centrifuge_method)k;
			body = v;
			break;
		}
	}

	if (!m) {
		cmd->method = cmd->id ? HD_CENTRIFUGE_UNKNOWN : HD_CENTRIFUGE_PONG;
		goto out;
	}
	rc = decode_object(&d, body, m->name, m->fields, m->nfields,
			   m->into_sub ? (void *)&cmd->sub : (void *)cmd);
	if (rc == 0 && d.since.p) {
		cmd->has_since = true;
		rc = decode_object(&d, d.since, "history.since", since_fields, COUNT(since_fields),
				   cmd);
	}
	if (rc == 0 && d.subs.p)
		rc = decode_subs(&d, d.subs);
out:
	if (rc)
		hd_centrifuge_command_fini(cmd);
	return rc;
}

void hd_centrifuge_command_fini(struct hd_centrifuge_command *cmd)
{
	free(cmd->mem);
	command_init(cmd);
}

bool hd_centrifuge_next_line(const char *frame, size_t len, size_t *pos, const char **line, size_t *n)
{
	while (*pos < len) {
		const char *start = frame + *pos;
		const char *nl = memchr(start, '\n', len - *pos);
		size_t k = nl ? (size_t)(nl - start) : len - *pos;

		*pos += nl ? k + 1 : k;
		for (size_t i = 0; i < k; i++)
			if (start[i] != ' ' && start[i] != '\t' && start[i] != '\r') {
				*line = start;
				*n = k;
				return true;
			}
	}
	return false;
}

/* ---- Encoding ----------------------------------------------------------- */

/* One message being appended to b; rc keeps the first error. */
struct out {
	struct hd_buf *b;
	size_t start;
	int rc;
};

/* One JSON object being written: members after the first get a comma. */
struct obj {
	struct out *o;
	bool any;
};

static struct out out_begin(struct hd_buf *b)
{
	return (struct out){.b = b, .start = b->len};
}

/* Ends the message: on error the buffer is cut back to where it began. */
static int out_end(struct out *o)
{
	if (o->rc) {
		o->b->len = o->start;
		if (o->b->data)
			o->b->data[o->start] = '\0';
	}
	return o->rc;
}

static void put(struct out *o, const char *s, size_t n)
{
	if (o->rc == 0)
		o->rc = hd_buf_append(o->b, s, n);
}

static void put_lit(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char digits[20];
	put(o, digits, hd_u64_format(v, digits));
}

static void put_str(struct out *o, const char *s)
{
	put(o, "\"", 1);
	if (o->rc == 0)
		o->rc = hd_buf_json_escape(o->b, s, strlen(s));
	put(o, "\"", 1);
}

/*
 * Copies raw JSON. Minified JSON holds no raw newline (one in a string is
 * invalid, and minifying drops the white space between tokens), but a
 * newline here would split the frame for every subscriber, so any that
 * slipped in as white space is dropped, as Centrifugo does.
 */
static void put_raw(struct out *o, const char *p, size_t n)
{
	const char *end = p + n, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		put(o, p, (size_t)(nl - p));
		p = nl + 1;
	}
	put(o, p, (size_t)(end - p));
}

static struct obj obj_open(struct out *o)
{
	put(o, "{", 1);
	return (struct obj){.o = o};
}

static void obj_close(struct obj *j)
{
	put(j->o, "}", 1);
}

/* Starts a member; name needs no escaping (it is one of ours). */
static void key(struct obj *j, const char *name)
{
	put(j->o, j->any ? ",\"" : "\"", j->any ? 2 : 1);
	put_lit(j->o, name);
	put(j->o, "\":", 2);
	j->any = true;
}

/* A member whose name is data (a channel, a client id): escaped. */
static void key_escaped(struct obj *j, const char *name)
{
	if (j->any)
		put(j->o, ",", 1);
	put_str(j->o, name ? name : empty);
	put(j->o, ":", 1);
	j->any = true;
}

static void m_str(struct obj *j, const char *name, const char *s)
{
	if (s && *s) {
		key(j, name);
		put_str(j->o, s);
	}
}

static void m_u64(struct obj *j, const char *name, uint64_t v)
{
	if (v) {
		key(j, name);
		put_u64(j->o, v);
	}
}

static void m_true(struct obj *j, const char *name, bool v)
{
	if (v) {
		key(j, name);
		put_lit(j->o, "true");
	}
}

/* Opens {"id":N,"<method>":{ and returns the inner object. */
static struct obj reply_open(struct out *o, struct obj *top, uint32_t id, const char *method)
{
	*top = obj_open(o);
	m_u64(top, "id", id);
	key(top, method);
	return obj_open(o);
}

static void reply_close(struct obj *inner, struct obj *top)
{
	obj_close(inner);
	obj_close(top);
}

/* Whether the member name token tok[0, n) (quotes included) is lit. */
static bool key_is(const char *tok, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l + 2 && memcmp(tok + 1, lit, l) == 0;
}

bool hd_centrifuge_pub_split(const struct hd_centrifuge_pub *p, struct hd_centrifuge_pub_parts *parts)
{
	const char *ev = p->data;

	parts->data = SIZE_MAX;
	parts->base64 = false;
	if (p->len < 2 || ev[0] != '{' || ev[p->len - 1] != '}' ||
	    hd_json_text_members(ev, p->len, parts->sp, HD_CENTRIFUGE_PUB_MEMBERS_MAX, &parts->n))
		return false;
	for (size_t i = 0; i < parts->n; i++) {
		const char *k = ev + parts->sp[i].key_off;
		if (key_is(k, parts->sp[i].key_len, "data") || key_is(k, parts->sp[i].key_len, "data_base64")) {
			parts->data = i;
			parts->base64 = key_is(k, parts->sp[i].key_len, "data_base64");
		}
	}
	return true;
}

bool hd_centrifuge_pub_tag(const struct hd_centrifuge_pub *p, const struct hd_centrifuge_pub_parts *parts, size_t i)
{
	const char *k = p->data + parts->sp[i].key_off, *v = p->data + parts->sp[i].val_off;
	size_t kl = parts->sp[i].key_len;
	return i != parts->data && !key_is(k, kl, "specversion") && !key_is(k, kl, "topic") &&
	       !key_is(k, kl, "offset") && v[0] != 'n' && v[0] != '{' && v[0] != '[';
}

bool hd_centrifuge_pub_info(const struct hd_centrifuge_pub *p, const char **info, size_t *n)
{
	struct hd_json_text_span sp[HD_CENTRIFUGE_PUB_MEMBERS_MAX];
	size_t nm;

	/* Most events have none: only scan the members when the name occurs. */
	if (p->len < 2 || p->data[0] != '{' || p->data[p->len - 1] != '}' ||
	    !memmem(p->data, p->len, "\"client_info\":{", 15) ||
	    hd_json_text_members(p->data, p->len, sp, HD_CENTRIFUGE_PUB_MEMBERS_MAX, &nm))
		return false;
	for (size_t i = 0; i < nm; i++) {
		if (key_is(p->data + sp[i].key_off, sp[i].key_len, "client_info") && p->data[sp[i].val_off] == '{') {
			*info = p->data + sp[i].val_off;
			*n = sp[i].val_len;
			return true;
		}
	}
	return false;
}

void hd_centrifuge_pub_text(const struct hd_centrifuge_pub *p, const char **text, size_t *n)
{
	struct hd_centrifuge_pub_parts parts;

	*text = p->data;
	*n = p->len;
	if (!p->payload || !hd_centrifuge_pub_split(p, &parts))
		return;
	if (parts.data == SIZE_MAX) {
		*text = "null";
		*n = 4;
		return;
	}
	*text = p->data + parts.sp[parts.data].val_off;
	*n = parts.sp[parts.data].val_len;
}

/* The data member: raw text, or (delta compression) a JSON string. */
static void put_data(struct obj *j, const struct hd_centrifuge_pub *p, const char *text, size_t n)
{
	if (p->delta || p->as_string) {
		if (!text) {
			text = "null";
			n = 4;
		}
		key(j, "data");
		put(j->o, "\"", 1);
		if (j->o->rc == 0)
			j->o->rc = p->delta ? hd_buf_json_escape(j->o->b, p->delta, p->delta_len)
					    : hd_buf_json_escape(j->o->b, text, n);
		put(j->o, "\"", 1);
	} else if (text && n) {
		key(j, "data");
		put_raw(j->o, text, n);
	}
}

/* The members of a payload publication (see hd_centrifuge_pub): data 4,
 * offset 6, tags 7. Returns false, writing nothing, when ev is not an
 * object whose members can be split. */
static bool put_pub_payload(struct obj *j, const struct hd_centrifuge_pub *p)
{
	struct hd_centrifuge_pub_parts parts;
	const char *ev = p->data;

	if (!hd_centrifuge_pub_split(p, &parts))
		return false;
	if (parts.data != SIZE_MAX)
		put_data(j, p, ev + parts.sp[parts.data].val_off, parts.sp[parts.data].val_len);
	else
		put_data(j, p, NULL, 0);
	m_u64(j, "offset", p->offset);
	struct obj tags = {.o = j->o};
	for (size_t i = 0; i < parts.n; i++) {
		const char *k = ev + parts.sp[i].key_off, *v = ev + parts.sp[i].val_off;
		size_t kl = parts.sp[i].key_len, vl = parts.sp[i].val_len;
		if (!hd_centrifuge_pub_tag(p, &parts, i))
			continue;
		if (!tags.any)
			key(j, "tags");
		put(j->o, tags.any ? "," : "{", 1);
		tags.any = true;
		put(j->o, k, kl);
		put(j->o, ":", 1);
		if (v[0] == '"') {
			put(j->o, v, vl);
		} else {
			/* A number or a boolean: its text needs no escaping. */
			put(j->o, "\"", 1);
			put(j->o, v, vl);
			put(j->o, "\"", 1);
		}
	}
	if (parts.base64) {
		if (!tags.any)
			key(j, "tags");
		put_lit(j->o, tags.any ? ",\"data_base64\":\"true\"" : "{\"data_base64\":\"true\"");
		tags.any = true;
	}
	if (tags.any)
		obj_close(&tags);
	return true;
}

/* Publication: data 4, info 5, offset 6, tags 7, delta 8. */
static void put_pub(struct out *o, const struct hd_centrifuge_pub *p)
{
	struct obj j = obj_open(o);

	if (!p->payload || !put_pub_payload(&j, p)) {
		put_data(&j, p, p->len ? p->data : NULL, p->len);
		m_u64(&j, "offset", p->offset);
	}
	const char *info;
	size_t info_len;
	if (hd_centrifuge_pub_info(p, &info, &info_len)) {
		key(&j, "info");
		put_raw(j.o, info, info_len);
	}
	m_true(&j, "delta", p->delta != NULL);
	obj_close(&j);
}

static void m_pubs(struct obj *j, const char *name, const struct hd_centrifuge_pub *pubs, size_t n)
{
	if (n == 0)
		return;
	key(j, name);
	put(j->o, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(j->o, ",", 1);
		put_pub(j->o, &pubs[i]);
	}
	put(j->o, "]", 1);
}

/* SubscribeResult's members: expires 1, ttl 2, recoverable 3, epoch 6,
 * publications 7, recovered 8, offset 9, positioned 10, was_recovering 12. */
/* A member holding raw minified JSON text; left out when p is NULL. */
static void m_raw(struct obj *j, const char *name, const char *p, size_t n)
{
	if (p && n) {
		key(j, name);
		put_raw(j->o, p, n);
	}
}

static void sub_result_members(struct obj *j, const struct hd_centrifuge_sub_result *r)
{
	m_true(j, "expires", r->expires);
	m_u64(j, "ttl", r->ttl);
	m_true(j, "recoverable", r->recoverable);
	m_str(j, "epoch", r->epoch);
	m_pubs(j, "publications", r->pubs, r->npubs);
	m_true(j, "recovered", r->recovered);
	m_u64(j, "offset", r->offset);
	m_true(j, "positioned", r->positioned);
	m_raw(j, "data", r->data, r->data_len);
	m_true(j, "was_recovering", r->was_recovering);
	m_true(j, "delta", r->delta);
}

/* ClientInfo: user 1, client 2, conn_info 3, chan_info 4 (raw JSON, left
 * out when empty). */
static void put_client_info(struct out *o, const struct hd_centrifuge_client_info *c)
{
	struct obj j = obj_open(o);

	m_str(&j, "user", c->user);
	m_str(&j, "client", c->client);
	if (c->conn_info_len) {
		key(&j, "conn_info");
		put_raw(o, c->conn_info, c->conn_info_len);
	}
	if (c->chan_info_len) {
		key(&j, "chan_info");
		put_raw(o, c->chan_info, c->chan_info_len);
	}
	obj_close(&j);
}

int hd_centrifuge_reply_error(struct hd_buf *b, uint32_t id, uint32_t code, const char *message,
		      bool temporary)
{
	struct out o = out_begin(b);
	struct obj top, e = reply_open(&o, &top, id, "error");

	m_u64(&e, "code", code);
	m_str(&e, "message", message);
	m_true(&e, "temporary", temporary);
	reply_close(&e, &top);
	return out_end(&o);
}

int hd_centrifuge_reply_empty(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m)
{
	struct out o = out_begin(b);
	struct obj top;
	const char *name = hd_centrifuge_method_name(m);

	if (!*name) {
		top = obj_open(&o);
		m_u64(&top, "id", id);
		obj_close(&top);
	} else {
		struct obj r = reply_open(&o, &top, id, name);
		reply_close(&r, &top);
	}
	return out_end(&o);
}

/* ConnectResult: client 1, version 2, expires 3, ttl 4, subs 6, ping 7,
 * pong 8, node 10. */
int hd_centrifuge_reply_connect(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r)
{
	struct out o = out_begin(b);
	struct obj top, c = reply_open(&o, &top, id, "connect");

	m_str(&c, "client", r->client);
	m_str(&c, "version", r->version);
	m_true(&c, "expires", r->expires);
	m_u64(&c, "ttl", r->ttl);
	m_raw(&c, "data", r->data, r->data_len);
	if (r->nsubs) {
		struct obj subs;
		key(&c, "subs");
		subs = obj_open(&o);
		for (size_t i = 0; i < r->nsubs; i++) {
			struct obj s;
			key_escaped(&subs, r->subs[i].channel);
			s = obj_open(&o);
			sub_result_members(&s, &r->subs[i]);
			obj_close(&s);
		}
		obj_close(&subs);
	}
	m_u64(&c, "ping", r->ping);
	m_true(&c, "pong", r->pong);
	m_str(&c, "session", r->session);
	m_str(&c, "node", r->node);
	reply_close(&c, &top);
	return out_end(&o);
}

int hd_centrifuge_reply_subscribe(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r)
{
	struct out o = out_begin(b);
	struct obj top, s = reply_open(&o, &top, id, "subscribe");

	sub_result_members(&s, r);
	reply_close(&s, &top);
	return out_end(&o);
}

/* HistoryResult: publications 1, epoch 2, offset 3. */
int hd_centrifuge_reply_history(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
			const char *epoch, uint64_t offset)
{
	struct out o = out_begin(b);
	struct obj top, h = reply_open(&o, &top, id, "history");

	m_pubs(&h, "publications", pubs, n);
	m_str(&h, "epoch", epoch);
	m_u64(&h, "offset", offset);
	reply_close(&h, &top);
	return out_end(&o);
}

/* PresenceResult: presence 1, a map client id → ClientInfo. */
int hd_centrifuge_reply_presence(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c,
			 size_t n)
{
	struct out o = out_begin(b);
	struct obj top, p = reply_open(&o, &top, id, "presence");

	/* Always the map, {} too: the SDK reads its keys. */
	struct obj map;
	key(&p, "presence");
	map = obj_open(&o);
	for (size_t i = 0; i < n; i++) {
		key_escaped(&map, c[i].client);
		put_client_info(&o, &c[i]);
	}
	obj_close(&map);
	reply_close(&p, &top);
	return out_end(&o);
}

int hd_centrifuge_reply_presence_stats(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users)
{
	struct out o = out_begin(b);
	struct obj top, s = reply_open(&o, &top, id, "presence_stats");

	/* Both always, 0 included: clients read them as counts. */
	key(&s, "num_clients");
	put_u64(&o, clients);
	key(&s, "num_users");
	put_u64(&o, users);
	reply_close(&s, &top);
	return out_end(&o);
}

/* SubRefreshResult: expires 1, ttl 2. */
int hd_centrifuge_reply_sub_refresh(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl)
{
	struct out o = out_begin(b);
	struct obj top, s = reply_open(&o, &top, id, "sub_refresh");

	m_true(&s, "expires", expires);
	m_u64(&s, "ttl", ttl);
	reply_close(&s, &top);
	return out_end(&o);
}

/* RPCResult: data 1 (raw JSON text; the member is left out when n is 0). */
int hd_centrifuge_reply_rpc(struct hd_buf *b, uint32_t id, const char *data, size_t n)
{
	struct out o = out_begin(b);
	struct obj top, r = reply_open(&o, &top, id, "rpc");

	if (n) {
		key(&r, "data");
		put_raw(&o, data, n);
	}
	reply_close(&r, &top);
	return out_end(&o);
}

/* RefreshResult: client 1, version 2, expires 3, ttl 4. */
int hd_centrifuge_reply_refresh(struct hd_buf *b, uint32_t id, const char *client, const char *version,
			bool expires, uint32_t ttl)
{
	struct out o = out_begin(b);
	struct obj top, r = reply_open(&o, &top, id, "refresh");

	m_str(&r, "client", client);
	m_str(&r, "version", version);
	m_true(&r, "expires", expires);
	m_u64(&r, "ttl", ttl);
	reply_close(&r, &top);
	return out_end(&o);
}

/* Opens {"push":{["channel":"c",]"<kind>": and returns the push object. */
static struct obj push_open(struct out *o, struct obj *top, const char *channel, const char *kind)
{
	struct obj p;

	*top = obj_open(o);
	key(top, "push");
	p = obj_open(o);
	m_str(&p, "channel", channel);
	key(&p, kind);
	return p;
}

int hd_centrifuge_push_pub(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub)
{
	struct out o = out_begin(b);
	struct obj top, p = push_open(&o, &top, channel, "pub");

	put_pub(&o, pub);
	reply_close(&p, &top);
	return out_end(&o);
}

/* Join and Leave: info 1. */
static int push_presence(struct hd_buf *b, const char *channel, const char *kind,
			 const struct hd_centrifuge_client_info *info)
{
	struct out o = out_begin(b);
	struct obj top, p = push_open(&o, &top, channel, kind), j = obj_open(&o);

	key(&j, "info");
	put_client_info(&o, info);
	obj_close(&j);
	reply_close(&p, &top);
	return out_end(&o);
}

int hd_centrifuge_push_join(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info)
{
	return push_presence(b, channel, "join", info);
}

int hd_centrifuge_push_leave(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info)
{
	return push_presence(b, channel, "leave", info);
}

/* Unsubscribe: code 2, reason 3. */
int hd_centrifuge_push_unsubscribe(struct hd_buf *b, const char *channel, uint32_t code,
			   const char *reason)
{
	struct out o = out_begin(b);
	struct obj top, p = push_open(&o, &top, channel, "unsubscribe"), u = obj_open(&o);

	m_u64(&u, "code", code);
	m_str(&u, "reason", reason);
	obj_close(&u);
	reply_close(&p, &top);
	return out_end(&o);
}

/* Disconnect: code 1, reason 2, reconnect 3. */
int hd_centrifuge_push_refresh(struct hd_buf *b, bool expires, uint32_t ttl)
{
	struct out o = out_begin(b);
	struct obj top, p = push_open(&o, &top, NULL, "refresh"), r = obj_open(&o);

	m_true(&r, "expires", expires);
	m_u64(&r, "ttl", ttl);
	obj_close(&r);
	reply_close(&p, &top);
	return out_end(&o);
}

int hd_centrifuge_push_disconnect(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect)
{
	struct out o = out_begin(b);
	struct obj top, p = push_open(&o, &top, NULL, "disconnect"), dc = obj_open(&o);

	m_u64(&dc, "code", code);
	m_str(&dc, "reason", reason);
	m_true(&dc, "reconnect", reconnect);
	obj_close(&dc);
	reply_close(&p, &top);
	return out_end(&o);
}
