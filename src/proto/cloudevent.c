/*
 * cloudevent — see cloudevent.h for the contract.
 *
 * One file of about 1,250 lines because it is one idea, turning a publish
 * request into the canonical stored JSON of its events: the four modes
 * below share the attribute rules, the checks, the data encoding and the
 * writer of the canonical form, and each mode is only its own front end
 * over them (as Redis keeps t_stream.c whole).
 *
 * The canonical JSON this file produces, by mode:
 *   structured  the members as received (minified, null-valued attributes
 *               and `topic`/`offset` dropped, member names written without
 *               escapes), then `"time":"…"` last when the event had none.
 *   batch       each entry exactly as a structured event.
 *   binary      {"<name>":"<value>",…} for every ce- header in the order
 *               received (values percent-decoded, always JSON strings), then
 *               "time" when absent, then "datacontenttype" from Content-Type
 *               when present, then the body as "data" or "data_base64".
 *   raw         {"specversion":"1.0","id":…,"source":"/topics/<topic>",
 *               "type":"herald.message","time":…,["datacontenttype":…,]
 *               ["data"|"data_base64":…]}.
 *
 * How the body becomes data (binary and raw): a JSON media type (any type
 * with the subtype "json" or a "+json" suffix) embeds the body as a JSON
 * value, minified, and the body must then be JSON; a textual one (type
 * "text", any charset parameter, or application/x-www-form-urlencoded)
 * makes a JSON string when the body is valid UTF-8; everything else, and
 * text that is not UTF-8, becomes data_base64. An empty body is no data.
 *
 * Attribute values with null are unset (CloudEvents JSON format) and are
 * not stored; `data` is not an attribute, so "data":null is kept as is.
 *
 * Costs: a structured event is scanned once, into the buffer that becomes
 * the stored JSON, and then compacted in place; the only other allocations
 * are the id, source and type copies the event owns. A batch is scanned
 * once as a whole; each entry is then copied into its own buffer and split
 * into members by a quick pass that checks nothing (the scan did). The
 * added "time" member is formatted once per request.
 */
#include "proto/cloudevent.h"
#include "core/text.h"
#include "core/uuid.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "proto/json_text.h"
#include "proto/syntax.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CE_MEMBERS_MAX 128      /* members of one event object, ce- headers of one request */
#define CE_NAME_MAX 20          /* bytes of an attribute name */
#define CE_TTL_MAX 31536000     /* one year, in seconds */
/* The refusal of an attribute named like a member herald adds on read. */
#define RESERVED "attribute '%s' is reserved: herald adds 'topic' and 'offset' to every " \
		 "stored event, so a producer's own would be lost; rename it"
#define CE_TIME_MEMBER_MAX 64   /* room for `,"time":"<timestamp>"` and the closing brace */
/* Room for id, source and type after an event of len JSON bytes (their
 * decoded text is never longer than the JSON; past 512 bytes they are
 * allocated on their own). */
#define ARENA(len) (((len) < 509 ? (len) : 509) + 3)
#define CE_SMALL 256            /* decoded strings up to this size stay on the stack */
/*
 * The ceiling of one event's canonical JSON. The HTTP layer admits far
 * smaller bodies; this bounds the worst expansion (a text body of control
 * bytes escapes to six times its size) should that limit ever be raised.
 */

/* A bit for each header that makes a request binary mode. */
enum { CE_HAS_ID = 1, CE_HAS_SOURCE = 2, CE_HAS_TYPE = 4, CE_HAS_SPECVERSION = 8, CE_HAS_ALL = 15 };

enum mode { MODE_RAW, MODE_BINARY, MODE_STRUCTURED, MODE_BATCH };

/* What hd_cloudevent_decode learnt from the request headers. */
struct ctx {
	const struct hd_cloudevent_request *req;
	const char *ctype; /* Content-Type, NULL when absent or empty */
	size_t ctype_len;
	const struct hd_header *idem; /* Idempotency-Key */
	int64_t header_ttl_s;         /* Herald-TTL; 0 when absent */
	char time[CE_TIME_MEMBER_MAX]; /* "time":"<now_ms>", formatted once per request */
	size_t time_len;
	unsigned ce_required;         /* CE_HAS_* bits */
	bool ce_any;                  /* any ce- header at all */
};

/* What the attribute validators learnt about one event. */
struct facts {
	char *id, *source, *type; /* owned until moved into the event, unless borrowed */
	/* Room after a structured event's JSON for id, source and type, so a
	 * decoded event costs one allocation instead of four; a field copied
	 * there has its bit in borrowed (BORROW_*) and is freed with the JSON. */
	char *arena;
	size_t arena_left;
	unsigned borrowed;
	bool specversion, time, expirytime, data, data_base64;
	int64_t time_ms, expiry_ms;
	int64_t ttl_s; /* 0 when absent */
};

/* One top-level member of a structured event. */
struct member {
	char name[CE_NAME_MAX + 1];
	unsigned char len;
	bool keep; /* false for null values and for topic and offset */
};

/* A decoded JSON string: s points into the text when it has no escapes, else
 * into small or heap. */
struct text {
	const char *s;
	size_t n;
	char *heap;
	char small[CE_SMALL];
};

/* The kinds of non-null attribute values (null is handled before). */
enum kind { K_STRING, K_INTEGER, K_NUMBER, K_BOOL, K_OBJECT, K_ARRAY };

/* An attribute value: a decoded string, or a number's token. */
struct value {
	enum kind kind;
	const char *s;
	size_t n;
};

static bool is(const char *s, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	return n == k && memcmp(s, lit, k) == 0;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	return n == k && strncasecmp(s, lit, k) == 0;
}

static bool iprefix(const char *s, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	return n >= k && strncasecmp(s, lit, k) == 0;
}

static void text_from_token(struct text *t, const char *tok, size_t len)
{
	t->heap = NULL;
	if (!memchr(tok + 1, '\\', len - 2)) {
		t->s = tok + 1;
		t->n = len - 2;
		return;
	}
	char *dst = len <= sizeof(t->small) ? t->small : (t->heap = hd_malloc(len));
	t->n = hd_json_text_unescape(tok, len, dst);
	t->s = dst;
}

static void text_fini(struct text *t)
{
	free(t->heap);
	t->heap = NULL;
}

/* CloudEvents attribute names: 1 to 20 of [a-z0-9]. */
static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || n > CE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static int bad_name(const char *s, size_t n, struct hd_error *err)
{
	char shown[HD_TEXT_SHOW_SIZE];
	return hd_error_set(err, HD_EBADEVENT,
			    "attribute name '%s' must be 1-20 lower-case letters or digits",
			    hd_text_show(shown, s, n));
}

/*
 * Checks a CloudEvents String: valid UTF-8 with no control character
 * (U+0000-001F, U+007F-009F) and no noncharacter. what/name say where the
 * value came from ("attribute", "subject" or "header", "ce-subject").
 */
static int check_string(const char *what, const char *name, const char *s, size_t n,
			struct hd_error *err)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	uint32_t cp;

	while (p < end) {
		if (*p >= 0x20 && *p < 0x7f) {
			p++;
			continue;
		}
		size_t k = hd_json_text_utf8_next(p, (size_t)(end - p), &cp);
		if (k == 0)
			return hd_error_set(err, HD_EBADEVENT, "%s '%s' is not valid UTF-8", what, name);
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return hd_error_set(err, HD_EBADEVENT,
					    "%s '%s' contains the control character U+%04X", what,
					    name, (unsigned)cp);
		if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
			return hd_error_set(err, HD_EBADEVENT,
					    "%s '%s' contains the noncharacter U+%04X", what, name,
					    (unsigned)cp);
		p += k;
	}
	return 0;
}

/* Parses 1 to CE_TTL_MAX seconds written as ASCII digits. */
static bool parse_seconds(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > CE_TTL_MAX)
			return false;
	}
	if (v < 1)
		return false;
	*out = v;
	return true;
}

/* Whether the integer token s[0, n) (-?[0-9]+) is a CloudEvents Integer (signed 32 bits). */
static bool int32_token(const char *s, size_t n)
{
	bool neg = n > 0 && s[0] == '-';
	int64_t v = 0;

	for (size_t i = neg; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > 2147483648)
			return false;
	}
	return neg || v <= 2147483647;
}

static bool base64_digit(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Standard base64 (RFC 4648 section 4) with its padding. */
static bool base64_valid(const char *s, size_t n)
{
	size_t pad = 0;

	if (n % 4)
		return false;
	if (n && s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++)
		if (!base64_digit((unsigned char)s[i]))
			return false;
	return true;
}

static int base64_append(struct hd_buf *b, const unsigned char *p, size_t n)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char chunk[1024];
	size_t o = 0;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		chunk[o++] = digits[v >> 18];
		chunk[o++] = digits[v >> 12 & 63];
		chunk[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
		chunk[o++] = i + 2 < n ? digits[v & 63] : '=';
		if (o == sizeof(chunk)) {
			rc = hd_buf_append(b, chunk, o);
			o = 0;
		}
	}
	if (rc == 0)
		rc = hd_buf_append(b, chunk, o);
	return rc;
}

/* Writes "time":"<ms as RFC 3339>" to dst; returns its length (at most 48). */
static size_t time_member(char *dst, int64_t ms)
{
	char ts[40];
	size_t n;

	hd_clock_format_rfc3339(ms, ts, sizeof(ts));
	n = strlen(ts);
	memcpy(dst, "\"time\":\"", 8);
	memcpy(dst + 8, ts, n);
	dst[8 + n] = '"';
	return n + 9;
}

static int nonempty_string(const char *name, const struct value *v, struct hd_error *err)
{
	if (v->kind != K_STRING)
		return hd_error_set(err, HD_EBADEVENT, "attribute '%s' must be a string", name);
	if (v->n == 0)
		return hd_error_set(err, HD_EBADEVENT, "attribute '%s' must not be empty", name);
	return check_string("attribute", name, v->s, v->n, err);
}

static int timestamp(const char *name, const struct value *v, int64_t *ms, struct hd_error *err)
{
	if (v->kind != K_STRING || hd_clock_parse_rfc3339(v->s, v->n, ms) != 0)
		return hd_error_set(err, HD_EBADEVENT, "attribute '%s' is not an RFC 3339 timestamp",
				    name);
	return 0;
}

/*
 * Validates one attribute (not data, data_base64, topic or offset, and not
 * null) by the rules of its name, recording what the event needs. name is
 * a valid attribute name, NUL-terminated.
 */
static int apply_attr(struct facts *f, const char *name, size_t nlen, const struct value *v,
		      struct hd_error *err)
{
	char **dst = NULL;
	int rc;

	if (is(name, nlen, "specversion")) {
		if (v->kind != K_STRING || !is(v->s, v->n, "1.0"))
			return hd_error_set(err, HD_EBADEVENT,
					    "attribute 'specversion' must be \"1.0\"");
		f->specversion = true;
		return 0;
	}
	if (is(name, nlen, "id"))
		dst = &f->id;
	else if (is(name, nlen, "source"))
		dst = &f->source;
	else if (is(name, nlen, "type"))
		dst = &f->type;
	if (dst) {
		unsigned bit = dst == &f->id ? HD_EVENT_BORROW_ID
			       : dst == &f->source ? HD_EVENT_BORROW_SOURCE
						   : HD_EVENT_BORROW_TYPE;
		if ((rc = nonempty_string(name, v, err)))
			return rc;
		const char *why = bit == HD_EVENT_BORROW_SOURCE ? hd_syntax_uri_reference(v->s, v->n) : NULL;
		if (why)
			return hd_error_set(err, HD_EBADEVENT,
					    "attribute 'source' must be a URI-reference (RFC 3986 section 4.1): %s",
					    why);
		if (!(f->borrowed & bit))
			free(*dst);
		if (f->arena && v->n < f->arena_left) {
			memcpy(f->arena, v->s, v->n);
			f->arena[v->n] = '\0';
			*dst = f->arena;
			f->arena += v->n + 1;
			f->arena_left -= v->n + 1;
			f->borrowed |= bit;
		} else {
			*dst = hd_strndup(v->s, v->n);
			f->borrowed &= ~bit;
		}
		return 0;
	}
	if (is(name, nlen, "datacontenttype") || is(name, nlen, "dataschema")) {
		if ((rc = nonempty_string(name, v, err)))
			return rc;
		bool schema = is(name, nlen, "dataschema");
		const char *why = schema ? hd_syntax_absolute_uri(v->s, v->n) : hd_syntax_media_type(v->s, v->n);
		if (why)
			return hd_error_set(err, HD_EBADEVENT, "attribute '%s' must be %s: %s", name,
					    schema ? "an absolute URI (RFC 3986 section 4.3)"
						   : "a media type (RFC 2045 section 5.1: type/subtype[; name=value])",
					    why);
		return 0;
	}
	if (is(name, nlen, "subject"))
		return nonempty_string(name, v, err);
	if (is(name, nlen, "time")) {
		f->time = true;
		return timestamp(name, v, &f->time_ms, err);
	}
	if (is(name, nlen, "expirytime")) {
		f->expirytime = true;
		return timestamp(name, v, &f->expiry_ms, err);
	}
	if (is(name, nlen, "ttl")) {
		if ((v->kind != K_STRING && v->kind != K_INTEGER) ||
		    !parse_seconds(v->s, v->n, &f->ttl_s))
			return hd_error_set(err, HD_EBADEVENT,
					    "attribute 'ttl' must be a whole number of seconds "
					    "from 1 to %d",
					    CE_TTL_MAX);
		return 0;
	}
	/* An extension attribute: a CloudEvents String, Integer or Boolean. */
	switch (v->kind) {
	case K_STRING:
		return check_string("attribute", name, v->s, v->n, err);
	case K_INTEGER:
		if (!int32_token(v->s, v->n))
			return hd_error_set(err, HD_EBADEVENT,
					    "attribute '%s' must be an integer from -2147483648 "
					    "to 2147483647",
					    name);
		return 0;
	case K_BOOL:
		return 0;
	default:
		return hd_error_set(err, HD_EBADEVENT,
				    "attribute '%s' must be a string, an integer or a boolean", name);
	}
}

/* The checks that need every attribute seen. */
static int finish_facts(const struct facts *f, struct hd_error *err)
{
	static const char missing[] = "missing required attribute '%s'";

	if (!f->specversion)
		return hd_error_set(err, HD_EBADEVENT, missing, "specversion");
	if (!f->id)
		return hd_error_set(err, HD_EBADEVENT, missing, "id");
	if (!f->source)
		return hd_error_set(err, HD_EBADEVENT, missing, "source");
	if (!f->type)
		return hd_error_set(err, HD_EBADEVENT, missing, "type");
	if (f->data && f->data_base64)
		return hd_error_set(err, HD_EBADEVENT, "event has both 'data' and 'data_base64'");
	return 0;
}

static void facts_fini(struct facts *f)
{
	if (!(f->borrowed & HD_EVENT_BORROW_ID))
		free(f->id);
	if (!(f->borrowed & HD_EVENT_BORROW_SOURCE))
		free(f->source);
	if (!(f->borrowed & HD_EVENT_BORROW_TYPE))
		free(f->type);
	f->id = f->source = f->type = NULL;
	f->borrowed = 0;
}

/* Moves the facts into ev, with the time and expiry rules of cloudevent.h. */
static void facts_to_event(const struct ctx *cx, struct facts *f, struct hd_event *ev)
{
	int64_t now = cx->req->now_ms;

	ev->id = f->id;
	ev->source = f->source;
	ev->type = f->type;
	ev->borrowed = (unsigned char)f->borrowed;
	f->id = f->source = f->type = NULL;
	f->borrowed = 0;
	ev->time_ms = f->time ? f->time_ms : now;
	if (f->expirytime)
		/* 0 means "never": an expiry at or before the epoch is simply past. */
		ev->expires_ms = f->expiry_ms > 0 ? f->expiry_ms : 1;
	else if (f->ttl_s)
		ev->expires_ms = now + f->ttl_s * 1000;
	else if (cx->header_ttl_s)
		ev->expires_ms = now + cx->header_ttl_s * 1000;
	else
		ev->expires_ms = 0;
}

/* Prefixes err's message (a json_text diagnosis) with what was being read. */
static int json_error(struct hd_error *err, int code, const char *what)
{
	char detail[HD_ERROR_MSG_MAX];

	if (!err)
		return code;
	memcpy(detail, err->msg, sizeof(detail));
	return hd_error_set(err, code, "%s is not valid JSON: %s", what, detail);
}

/* Validates member i of a structured event (its name and value) into m[i] and f. */
static int member(struct facts *f, const char *j, const struct hd_json_text_span *sp,
		  struct member *m, size_t i, struct hd_error *err)
{
	const char *vtok = j + sp->val_off;
	struct member *cur = &m[i];
	struct text kt, vt;
	struct value v = {.kind = K_STRING};
	int rc = 0;

	text_from_token(&kt, j + sp->key_off, sp->key_len);
	if (!is(kt.s, kt.n, "data") && !is(kt.s, kt.n, "data_base64") && !valid_name(kt.s, kt.n))
		rc = bad_name(kt.s, kt.n, err);
	else {
		memcpy(cur->name, kt.s, kt.n);
		cur->name[kt.n] = '\0';
		cur->len = (unsigned char)kt.n;
	}
	text_fini(&kt);
	if (rc)
		return rc;
	for (size_t k = 0; k < i; k++)
		if (m[k].len == cur->len && memcmp(m[k].name, cur->name, cur->len) == 0)
			return hd_error_set(err, HD_EBADEVENT, "event has more than one '%s' member",
					    cur->name);

	cur->keep = true;
	if (is(cur->name, cur->len, "data")) {
		f->data = true;
		return 0;
	}
	if (*vtok == 'n') {
		/* Null unsets an attribute. */
		cur->keep = false;
		return 0;
	}
	if (is(cur->name, cur->len, "topic") || is(cur->name, cur->len, "offset"))
		return hd_error_set(err, HD_EBADEVENT, RESERVED, cur->name);

	vt.heap = NULL;
	switch (*vtok) {
	case '"':
		text_from_token(&vt, vtok, sp->val_len);
		v.s = vt.s;
		v.n = vt.n;
		break;
	case '{': v.kind = K_OBJECT; break;
	case '[': v.kind = K_ARRAY; break;
	case 't':
	case 'f': v.kind = K_BOOL; break;
	default:
		v.kind = memchr(vtok, '.', sp->val_len) || memchr(vtok, 'e', sp->val_len) ||
				 memchr(vtok, 'E', sp->val_len)
			 ? K_NUMBER
			 : K_INTEGER;
		v.s = vtok;
		v.n = sp->val_len;
	}
	if (is(cur->name, cur->len, "data_base64")) {
		if (v.kind != K_STRING || !base64_valid(v.s, v.n))
			rc = hd_error_set(err, HD_EBADEVENT, "'data_base64' is not valid base64");
		f->data_base64 = true;
	} else {
		rc = apply_attr(f, cur->name, cur->len, &v, err);
	}
	text_fini(&vt);
	return rc;
}

static int too_many_members(struct hd_error *err)
{
	return hd_error_set(err, HD_EBADEVENT, "event has more than %d members", CE_MEMBERS_MAX);
}

/*
 * Validates the members of the minified object in j (which takes
 * CE_TIME_MEMBER_MAX bytes more than the object) and turns j into ev's
 * canonical JSON. Takes j: it becomes ev->json, or is freed on error (ev
 * is then left untouched). The object is compacted in place: dropped
 * members are squeezed out and names are rewritten unescaped, neither of
 * which ever moves a byte forward, and "time" is appended in the room
 * reserved for it.
 */
static int decode_members(const struct ctx *cx, char *j, size_t arena_off,
			  const struct hd_json_text_span *spans, size_t nspans, struct hd_event *ev,
			  struct hd_error *err)
{
	struct member m[CE_MEMBERS_MAX];
	/* The arena is the tail of j's allocation: ARENA(len) bytes after
	 * arena_off, where the event's JSON can never reach. */
	struct facts f = {.arena = j + arena_off, .arena_left = ARENA(arena_off - CE_TIME_MEMBER_MAX)};
	size_t w = 1;
	int rc;

	for (size_t i = 0; i < nspans; i++)
		if ((rc = member(&f, j, &spans[i], m, i, err)))
			goto out;
	if ((rc = finish_facts(&f, err)))
		goto out;

	for (size_t i = 0; i < nspans; i++) {
		if (!m[i].keep)
			continue;
		if (w > 1)
			j[w++] = ',';
		if (w == spans[i].key_off && spans[i].key_len == m[i].len + 2u) {
			/* Nothing before it was dropped and its name has no escape:
			 * the member is already where it belongs. */
			w = spans[i].val_off + spans[i].val_len;
			continue;
		}
		j[w++] = '"';
		memcpy(j + w, m[i].name, m[i].len);
		w += m[i].len;
		j[w++] = '"';
		j[w++] = ':';
		memmove(j + w, j + spans[i].val_off, spans[i].val_len);
		w += spans[i].val_len;
	}
	if (!f.time) {
		if (w > 1)
			j[w++] = ',';
		memcpy(j + w, cx->time, cx->time_len);
		w += cx->time_len;
	}
	j[w++] = '}';
	j[w] = '\0';

	facts_to_event(cx, &f, ev);
	ev->json = j;
	ev->json_len = w;
	j = NULL;
out:
	free(j);
	facts_fini(&f);
	return rc;
}

/* Decodes one structured event from the JSON text[0, len) into ev (left
 * untouched on error): minified straight into the buffer that becomes
 * ev->json, then decode_members. */
static int decode_object(const struct ctx *cx, const char *text, size_t len,
			 struct hd_event *ev, struct hd_error *err)
{
	struct hd_json_text_span spans[CE_MEMBERS_MAX];
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = CE_MEMBERS_MAX};
	char *j = hd_malloc(len + CE_TIME_MEMBER_MAX + ARENA(len));
	int rc;

	rc = hd_json_text_minify(text, len, j, &sc, err);
	if (rc == HD_ETOOBIG)
		rc = too_many_members(err);
	else if (rc)
		rc = json_error(err, HD_EBADEVENT, "event");
	else if (j[0] != '{')
		rc = hd_error_set(err, HD_EBADEVENT, "event must be a JSON object");
	if (rc) {
		free(j);
		return rc;
	}
	return decode_members(cx, j, len + CE_TIME_MEMBER_MAX, spans, sc.nspans, ev, err);
}

/* Decodes batch entry e[0, len), an object in the batch's minified and
 * checked text, into ev: a copy and a split into members, no second scan. */
static int decode_entry(const struct ctx *cx, const char *e, size_t len, struct hd_event *ev,
			struct hd_error *err)
{
	struct hd_json_text_span spans[CE_MEMBERS_MAX];
	char *j = hd_malloc(len + CE_TIME_MEMBER_MAX + ARENA(len));
	size_t n;

	memcpy(j, e, len);
	if (hd_json_text_members(j, len, spans, CE_MEMBERS_MAX, &n)) {
		free(j);
		return too_many_members(err);
	}
	return decode_members(cx, j, len + CE_TIME_MEMBER_MAX, spans, n, ev, err);
}

/* Sets out up for n entries: zeroed events and clear errors, both arrays
 * in one allocation (events first). Not calloc: an error is 260 bytes of
 * which only the code and the message's first byte need clearing, and
 * zeroing them all was a tenth of a batch's decoding. */
static void batch_alloc(struct hd_cloudevent_batch *out, size_t n)
{
	out->n = n;
	out->events = hd_malloc(n * (sizeof(*out->events) + sizeof(*out->errors)));
	out->errors = (struct hd_error *)(void *)(out->events + n);
	memset(out->events, 0, n * sizeof(*out->events));
	for (size_t i = 0; i < n; i++)
		hd_error_clear(&out->errors[i]);
}

/*
 * Undoes the HTTP binding's encoding of a ce- header value into out (which
 * holds n bytes) and returns the decoded length: an RFC 7230 quoted-string
 * is unquoted, then each %XX is decoded once. A value that is not a
 * well-formed quoted-string, and a '%' not followed by two hex digits, are
 * taken as they are: the npm SDK sends values without any encoding.
 */
static size_t header_value_decode(const char *v, size_t n, char *out)
{
	const char *src = v;
	size_t len = n, o = 0;

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		bool ok = true;
		for (size_t i = 1; i < n - 1 && ok; i++) {
			if (v[i] == '\\') {
				ok = i + 1 < n - 1; /* else the closing quote is escaped */
				out[o++] = v[++i];
			} else if (v[i] == '"') {
				ok = false;
			} else {
				out[o++] = v[i];
			}
		}
		if (ok) {
			src = out;
			len = o;
		}
	}
	o = 0;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (src[i] == '%' && i + 2 < len && (hi = hd_hex_value(src[i + 1])) >= 0 &&
		    (lo = hd_hex_value(src[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = src[i];
		}
	}
	return o;
}

/* The media type of a Content-Type value: the part before any ';', without
 * trailing white space. Returns its length. */
static size_t media_type_len(const char *ct, size_t n)
{
	const char *semi = memchr(ct, ';', n);
	size_t k = semi ? (size_t)(semi - ct) : n;

	while (k > 0 && (ct[k - 1] == ' ' || ct[k - 1] == '\t'))
		k--;
	return k;
}

static bool has_charset(const char *ct, size_t n)
{
	const char *end = ct + n, *p = memchr(ct, ';', n);

	while (p) {
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (iprefix(p, (size_t)(end - p), "charset="))
			return true;
		p = memchr(p, ';', (size_t)(end - p));
	}
	return false;
}

enum data_kind { DATA_JSON, DATA_TEXT, DATA_BINARY };

/* How a body of media type ct becomes the event's data (see the file header). */
static enum data_kind data_kind(const char *ct, size_t n)
{
	size_t mt;
	const char *slash;

	if (!ct)
		return DATA_BINARY;
	mt = media_type_len(ct, n);
	slash = memchr(ct, '/', mt);
	if (slash) {
		const char *sub = slash + 1;
		size_t sn = (size_t)(ct + mt - sub);
		if (ieq(sub, sn, "json") || (sn >= 5 && strncasecmp(sub + sn - 5, "+json", 5) == 0))
			return DATA_JSON;
		if (ieq(ct, (size_t)(slash - ct), "text"))
			return DATA_TEXT;
	}
	if (ieq(ct, mt, "application/x-www-form-urlencoded") || has_charset(ct, n))
		return DATA_TEXT;
	return DATA_BINARY;
}

/* Appends ,"name":"<s escaped>" (no comma right after the opening brace). */
static int put_string_member(struct hd_buf *b, const char *name, const char *s, size_t n)
{
	int rc = 0;

	if (b->len > 1)
		rc = hd_buf_putc(b, ',');
	if (rc == 0)
		rc = hd_buf_putc(b, '"');
	if (rc == 0)
		rc = hd_buf_puts(b, name);
	if (rc == 0)
		rc = hd_buf_append(b, "\":\"", 3);
	if (rc == 0)
		rc = hd_buf_json_escape(b, s, n);
	if (rc == 0)
		rc = hd_buf_putc(b, '"');
	return rc;
}

static int put_time_member(struct hd_buf *b, int64_t ms)
{
	char tm[CE_TIME_MEMBER_MAX];
	size_t n;

	tm[0] = ',';
	n = time_member(tm + 1, ms) + 1;
	return b->len > 1 ? hd_buf_append(b, tm, n) : hd_buf_append(b, tm + 1, n - 1);
}

/* Appends the request body as data or data_base64 (binary and raw modes). */
static int put_data(const struct ctx *cx, struct hd_buf *b, struct hd_error *err)
{
	const char *body = cx->req->body;
	size_t n = cx->req->body_len, start;
	/* The body nests one level below the event object, which must itself
	 * keep to the scanner's limit: the same budget data has in a
	 * structured event. */
	struct hd_json_text_scan sc = {.depth_max = HD_JSON_TEXT_DEPTH_MAX - 1};
	int rc;

	if (n == 0)
		return 0;
	switch (data_kind(cx->ctype, cx->ctype_len)) {
	case DATA_JSON:
		if ((rc = hd_buf_puts(b, ",\"data\":")) || (rc = hd_buf_append(b, body, n)))
			return rc;
		start = b->len - n;
		if (hd_json_text_minify(b->data + start, n, b->data + start, &sc, err))
			return json_error(err, HD_EBADEVENT, "body");
		/* Minifying only shortens the text: cut the tail it left behind. */
		b->len = start + sc.out_len;
		b->data[b->len] = '\0';
		return 0;
	case DATA_TEXT:
		if (hd_json_text_utf8_valid(body, n)) {
			if ((rc = hd_buf_puts(b, ",\"data\":\"")) || (rc = hd_buf_json_escape(b, body, n)))
				return rc;
			return hd_buf_putc(b, '"');
		}
		break; /* Text in another encoding is carried as bytes. */
	case DATA_BINARY:
		break;
	}
	if ((rc = hd_buf_puts(b, ",\"data_base64\":\"")) ||
	    (rc = base64_append(b, (const unsigned char *)body, n)))
		return rc;
	return hd_buf_putc(b, '"');
}

/* Checks Content-Type before it becomes the datacontenttype attribute. */
static int put_content_type(const struct ctx *cx, struct hd_buf *b, struct hd_error *err)
{
	int rc;

	if (!cx->ctype)
		return 0;
	if ((rc = check_string("header", "content-type", cx->ctype, cx->ctype_len, err)))
		return rc;
	const char *why = hd_syntax_media_type(cx->ctype, cx->ctype_len);
	if (why)
		return hd_error_set(err, HD_EBADEVENT,
				    "header 'content-type' (the event's datacontenttype) must be a media "
				    "type (RFC 2045 section 5.1: type/subtype[; name=value]): %s",
				    why);
	return put_string_member(b, "datacontenttype", cx->ctype, cx->ctype_len);
}

static bool is_ce(const struct hd_header *h)
{
	return h->name_len >= 3 && memcmp(h->name, "ce-", 3) == 0;
}

/* The members a binary- or raw-mode event ends with (datacontenttype and
 * data) and its closing brace. */
static int put_tail(const struct ctx *cx, struct hd_buf *b, struct hd_error *err)
{
	int rc = put_content_type(cx, b, err);
	if (rc == 0)
		rc = put_data(cx, b, err);
	if (rc == 0)
		rc = hd_buf_putc(b, '}');
	return rc;
}

/* Ends a binary- or raw-mode decode with rc: on success the facts and the
 * JSON in b go to ev; either way b and f are released. Returns rc. */
static int end_event(const struct ctx *cx, int rc, struct hd_buf *b, struct facts *f,
		     struct hd_event *ev, struct hd_error *err)
{
	if (rc == 0) {
		facts_to_event(cx, f, ev);
		ev->json = hd_buf_steal(b, &ev->json_len);
	}
	if (rc == HD_ETOOBIG)
		hd_error_set(err, rc, "the event would be larger than %zu bytes", HD_EVENT_JSON_MAX);
	hd_buf_fini(b);
	facts_fini(f);
	return rc;
}

/* Decodes a binary-mode event: attributes from ce- headers, data from the body. */
static int decode_binary(const struct ctx *cx, struct hd_event *ev, struct hd_error *err)
{
	const struct hd_cloudevent_request *req = cx->req;
	struct facts f = {0};
	struct hd_buf b;
	char *scratch;
	size_t max = 0, count = 0;
	int rc;

	/* One scratch buffer, sized for the longest value, serves every header. */
	for (size_t i = 0; i < req->nheaders; i++)
		if (is_ce(&req->headers[i]) && req->headers[i].value_len > max)
			max = req->headers[i].value_len;
	scratch = hd_malloc(max + 1);
	hd_buf_init(&b, HD_EVENT_JSON_MAX);

	rc = hd_buf_putc(&b, '{');
	for (size_t i = 0; i < req->nheaders && rc == 0; i++) {
		const struct hd_header *h = &req->headers[i];
		const char *name = h->name + 3;
		size_t nlen = h->name_len - 3, n;
		struct value v = {.kind = K_STRING};
		char shown[HD_TEXT_SHOW_SIZE];

		if (!is_ce(h))
			continue;
		if (!valid_name(name, nlen)) {
			rc = bad_name(name, nlen, err);
			goto out;
		}
		if (is(name, nlen, "data")) {
			rc = hd_error_set(err, HD_EBADEVENT,
					  "header 'ce-data' is not allowed: the body is the data");
			goto out;
		}
		if (is(name, nlen, "datacontenttype")) {
			rc = hd_error_set(err, HD_EBADEVENT,
					  "header 'ce-datacontenttype' is not allowed: binary mode "
					  "sends the data's media type as Content-Type");
			goto out;
		}
		for (size_t k = 0; k < i; k++) {
			const struct hd_header *o = &req->headers[k];
			if (o->name_len == h->name_len && memcmp(o->name, h->name, h->name_len) == 0) {
				rc = hd_error_set(err, HD_EBADEVENT,
						  "header '%s' appears more than once", h->name);
				goto out;
			}
		}
		if (++count > CE_MEMBERS_MAX) {
			rc = hd_error_set(err, HD_EBADEVENT, "event has more than %d attributes",
					  CE_MEMBERS_MAX);
			goto out;
		}
		n = header_value_decode(h->value, h->value_len, scratch);
		if (!hd_json_text_utf8_valid(scratch, n)) {
			rc = hd_error_set(err, HD_EBADEVENT,
					  "header '%s' is not valid UTF-8 after percent-decoding",
					  hd_text_show(shown, h->name, h->name_len));
			goto out;
		}
		if (is(name, nlen, "topic") || is(name, nlen, "offset")) {
			rc = hd_error_set(err, HD_EBADEVENT, RESERVED, name);
			goto out;
		}
		v.s = scratch;
		v.n = n;
		if ((rc = apply_attr(&f, name, nlen, &v, err)))
			goto out;
		rc = put_string_member(&b, name, scratch, n);
	}
	if (rc == 0 && !f.time)
		rc = put_time_member(&b, req->now_ms);
	if (rc == 0)
		rc = put_tail(cx, &b, err);
	if (rc == 0)
		rc = finish_facts(&f, err);
out:
	free(scratch);
	return end_event(cx, rc, &b, &f, ev, err);
}

/* Completes a raw publish into an event (see the file header for its form). */
static int decode_raw(const struct ctx *cx, struct hd_event *ev, struct hd_error *err)
{
	const struct hd_cloudevent_request *req = cx->req;
	struct facts f = {0};
	struct hd_buf b;
	char uuid[37];
	const char *id = uuid;
	size_t idlen = 36, tlen = strlen(req->topic);
	int rc;

	if (cx->idem) {
		id = cx->idem->value;
		idlen = cx->idem->value_len;
		if (idlen == 0)
			return hd_error_set(err, HD_EBADEVENT,
					    "header 'idempotency-key' must not be empty");
		if ((rc = check_string("header", "idempotency-key", id, idlen, err)))
			return rc;
	} else {
		hd_uuid_v4(uuid);
	}
	f.specversion = true;
	f.id = hd_strndup(id, idlen);
	f.source = hd_malloc(tlen + 9);
	memcpy(f.source, "/topics/", 8);
	memcpy(f.source + 8, req->topic, tlen + 1);
	f.type = hd_strdup("herald.message");

	hd_buf_init(&b, HD_EVENT_JSON_MAX);
	rc = hd_buf_putc(&b, '{');
	if (rc == 0)
		rc = put_string_member(&b, "specversion", "1.0", 3);
	if (rc == 0)
		rc = put_string_member(&b, "id", id, idlen);
	if (rc == 0)
		rc = put_string_member(&b, "source", f.source, tlen + 8);
	if (rc == 0)
		rc = put_string_member(&b, "type", f.type, strlen(f.type));
	if (rc == 0)
		rc = put_time_member(&b, req->now_ms);
	if (rc == 0)
		rc = put_tail(cx, &b, err);
	return end_event(cx, rc, &b, &f, ev, err);
}

/*
 * Decodes a batch: the whole array is checked and minified once, then each
 * element is split into its members (without scanning it again) and
 * validated on its own as a structured event, so one bad entry does not
 * spoil the others.
 */
static int decode_batch(const struct ctx *cx, struct hd_cloudevent_batch *out, struct hd_error *err)
{
	const struct hd_cloudevent_request *req = cx->req;
	/* An array of n values takes at least 2n + 1 bytes, which bounds the spans needed. */
	size_t cap = req->body_len / 2 + 1;
	struct hd_json_text_span *spans;
	struct hd_json_text_scan sc = {.depth_max = HD_JSON_TEXT_DEPTH_MAX + 1};
	char *text;
	int rc;

	if (cap > HD_CLOUDEVENT_BATCH_MAX)
		cap = HD_CLOUDEVENT_BATCH_MAX;
	spans = hd_malloc(cap * sizeof(*spans));
	text = hd_malloc(req->body_len + 1);
	sc.spans = spans;
	sc.spans_max = cap;
	rc = hd_json_text_minify(req->body, req->body_len, text, &sc, err);
	if (rc == HD_ETOOBIG) {
		rc = hd_error_set(err, HD_ETOOBIG, "batch has more than %d events", HD_CLOUDEVENT_BATCH_MAX);
		goto out;
	}
	if (rc) {
		rc = json_error(err, HD_EBADEVENT, "batch");
		goto out;
	}
	if (text[0] != '[') {
		rc = hd_error_set(err, HD_EBADEVENT, "batch must be a JSON array of events");
		goto out;
	}
	out->is_batch = true;
	out->n = sc.nspans;
	if (sc.nspans == 0)
		goto out;
	batch_alloc(out, sc.nspans);
	for (size_t i = 0; i < sc.nspans; i++) {
		const char *e = text + spans[i].val_off;
		if (*e != '{')
			hd_error_set(&out->errors[i], HD_EBADEVENT, "batch entry must be a JSON object");
		else
			decode_entry(cx, e, spans[i].val_len, &out->events[i], &out->errors[i]);
	}
out:
	free(spans);
	free(text);
	return rc;
}

/* Reads the headers hd_cloudevent_decode needs and checks Herald-TTL. */
static int scan_headers(const struct hd_cloudevent_request *req, struct ctx *cx,
			struct hd_error *err)
{
	const struct hd_header *ct = NULL, *ttl = NULL;

	memset(cx, 0, sizeof(*cx));
	cx->req = req;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct hd_header *h = &req->headers[i];
		if (is(h->name, h->name_len, "content-type")) {
			if (!ct)
				ct = h;
		} else if (is(h->name, h->name_len, "herald-ttl")) {
			if (!ttl)
				ttl = h;
		} else if (is(h->name, h->name_len, "idempotency-key")) {
			if (!cx->idem)
				cx->idem = h;
		} else if (is_ce(h)) {
			const char *n = h->name + 3;
			size_t len = h->name_len - 3;
			cx->ce_any = true;
			if (is(n, len, "id"))
				cx->ce_required |= CE_HAS_ID;
			else if (is(n, len, "source"))
				cx->ce_required |= CE_HAS_SOURCE;
			else if (is(n, len, "type"))
				cx->ce_required |= CE_HAS_TYPE;
			else if (is(n, len, "specversion"))
				cx->ce_required |= CE_HAS_SPECVERSION;
		}
	}
	if (ct && ct->value_len) {
		cx->ctype = ct->value;
		cx->ctype_len = ct->value_len;
	}
	if (ttl && !parse_seconds(ttl->value, ttl->value_len, &cx->header_ttl_s))
		return hd_error_set(err, HD_EINVAL,
				    "header 'herald-ttl' must be a whole number of seconds from 1 to %d",
				    CE_TTL_MAX);
	return 0;
}

/* Chooses the mode, per the table in cloudevent.h. */
static int detect(const struct ctx *cx, enum mode *mode, struct hd_error *err)
{
	static const struct {
		unsigned bit;
		const char *name;
	} required[] = {
		{CE_HAS_ID, "ce-id"},
		{CE_HAS_SOURCE, "ce-source"},
		{CE_HAS_TYPE, "ce-type"},
		{CE_HAS_SPECVERSION, "ce-specversion"},
	};
	/* The event formats, batch first ("application/cloudevents" is a prefix
	 * of its name): a media type starting with `type` is that format, and
	 * only `type` itself or its `json` form is accepted. */
	static const struct {
		const char *type;
		const char *json;
		enum mode mode;
	} formats[] = {
		{"application/cloudevents-batch", "application/cloudevents-batch+json", MODE_BATCH},
		{"application/cloudevents", "application/cloudevents+json", MODE_STRUCTURED},
	};
	const char *ct = cx->ctype;
	size_t mt = ct ? media_type_len(ct, cx->ctype_len) : 0;
	char shown[HD_TEXT_SHOW_SIZE];

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (!iprefix(ct, mt, formats[i].type))
			continue;
		*mode = formats[i].mode;
		if (ieq(ct, mt, formats[i].type) || ieq(ct, mt, formats[i].json))
			return 0;
		return hd_error_set(err, HD_EMEDIATYPE, "event format '%s' is not supported: send %s",
				    hd_text_show(shown, ct, mt), formats[i].json);
	}
	*mode = cx->ce_required == CE_HAS_ALL ? MODE_BINARY : MODE_RAW;
	if (*mode == MODE_RAW && cx->ce_any) {
		/* Some ce- headers but not the four that make binary mode: the
		 * client meant a CloudEvent, and a raw publish would silently
		 * drop its attributes (and its id, so dedup too). */
		for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
			if (!(cx->ce_required & required[i].bit))
				return hd_error_set(err, HD_EBADEVENT,
						    "binary-mode event is missing header '%s'",
						    required[i].name);
	}
	return 0;
}

int hd_cloudevent_decode(const struct hd_cloudevent_request *req, struct hd_cloudevent_batch *out,
			 struct hd_error *err)
{
	struct hd_event ev = {0};
	struct ctx cx;
	enum mode mode;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err)
		hd_error_clear(err);
	if ((rc = scan_headers(req, &cx, err)) || (rc = detect(&cx, &mode, err)))
		return rc;
	cx.time_len = time_member(cx.time, req->now_ms);
	switch (mode) {
	case MODE_BATCH:
		return decode_batch(&cx, out, err);
	case MODE_STRUCTURED:
		rc = decode_object(&cx, req->body, req->body_len, &ev, err);
		break;
	case MODE_BINARY:
		rc = decode_binary(&cx, &ev, err);
		break;
	case MODE_RAW:
		rc = decode_raw(&cx, &ev, err);
		break;
	}
	if (rc)
		return rc;
	batch_alloc(out, 1);
	out->events[0] = ev;
	return 0;
}

void hd_cloudevent_event_fini(struct hd_event *ev)
{
	if (!(ev->borrowed & HD_EVENT_BORROW_ID))
		free(ev->id);
	if (!(ev->borrowed & HD_EVENT_BORROW_SOURCE))
		free(ev->source);
	if (!(ev->borrowed & HD_EVENT_BORROW_TYPE))
		free(ev->type);
	free(ev->json);
	memset(ev, 0, sizeof(*ev));
}

void hd_cloudevent_batch_fini(struct hd_cloudevent_batch *b)
{
	for (size_t i = 0; i < b->n && b->events; i++)
		hd_cloudevent_event_fini(&b->events[i]);
	free(b->events); /* the errors share its allocation */
	memset(b, 0, sizeof(*b));
}
