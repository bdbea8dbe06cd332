/*
 * request — see request.h.
 *
 * http-parser reports the target, header names and header values as pieces
 * (a piece ends wherever a feed ends), so the pieces are appended to one head
 * buffer: "target\0name\0value\0…". While the head grows the buffer may move,
 * so fields are recorded as offsets (spans) and turned into pointers once the
 * head is complete; nothing is added to the head buffer after that.
 *
 * The header_max limit counts wire bytes: while the head is incomplete, the
 * parser is never given more than the bytes left in the budget, so the
 * limit holds exactly whatever the feed sizes are.
 *
 * The answer must not depend on where feeds end (the fuzzer checks this).
 * http-parser hands over a piece either at the end of its token or at the
 * end of the feed, so a check made when a piece arrives could beat or lose
 * to a syntax error later in the same token depending on the feed sizes.
 * Checks that can wait therefore run at fixed points of the message: too
 * many fields is noted and reported when the head ends, oversized trailers
 * when the message ends; the rest run in on_headers_complete and
 * on_chunk_header. Only the character checks of names and values run on
 * arrival: a bad character is final whatever follows.
 */
#include "http/request.h"
#include "core/alloc.h"
#include "core/err.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A body buffer that grew past this is released between messages rather
 * than kept for the connection's life. */
#define BODY_KEEP_MAX (16 * 1024)

/* The first capacity of the header arrays; they double up to max_headers. */
#define SPANS_FIRST 16

enum last_cb { LAST_NONE, LAST_TARGET, LAST_FIELD, LAST_VALUE };

static int on_message_begin(http_parser *hp);
static int on_url(http_parser *hp, const char *at, size_t len);
static int on_header_field(http_parser *hp, const char *at, size_t len);
static int on_header_value(http_parser *hp, const char *at, size_t len);
static int on_headers_complete(http_parser *hp);
static int on_body(http_parser *hp, const char *at, size_t len);
static int on_chunk_header(http_parser *hp);
static int on_message_complete(http_parser *hp);

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_chunk_header = on_chunk_header,
	.on_message_complete = on_message_complete,
};

static size_t add_sat(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static void start_message(struct hd_request_parser *p)
{
	http_parser_init(&p->hp, HTTP_REQUEST);
	p->hp.data = p;
	p->phase = HD_REQUEST_IDLE;
	p->err = 0;
	p->why = NULL;
	p->last = LAST_NONE;
	p->head_seen = 0;
	p->trailer_seen = 0;
	p->too_many = false;
	p->target_len = 0;
	p->nspans = 0;
	p->path = p->query = "";
	p->path_len = 0;
	p->expect_continue = false;
	p->keep_alive = false;
	hd_buf_reset(&p->head);
	if (p->body.cap > BODY_KEEP_MAX) {
		size_t max = p->body.max;
		hd_buf_fini(&p->body);
		hd_buf_init(&p->body, max);
	}
	hd_buf_reset(&p->body);
}

void hd_request_init(struct hd_request_parser *p, const struct hd_http_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->header_max = lim->header_max;
	p->max_headers = lim->max_headers;
	p->body_max = lim->body_max;
	/* The stored head is never longer than the wire head, plus one NUL
	 * for the target and two per header field. */
	hd_buf_init(&p->head, add_sat(p->header_max, add_sat(add_sat(p->max_headers, p->max_headers), 1)));
	hd_buf_init(&p->body, p->body_max);
	start_message(p);
}

void hd_request_fini(struct hd_request_parser *p)
{
	hd_buf_fini(&p->head);
	hd_buf_fini(&p->body);
	free(p->spans);
	free(p->headers);
	p->spans = NULL;
	p->headers = NULL;
	p->nspans = p->spans_cap = 0;
}

/* Records the error for good; returns it. */
static int set_error(struct hd_request_parser *p, int code)
{
	p->phase = HD_REQUEST_FAILED;
	p->err = code;
	return code;
}

/* The same from a callback: a non-zero return stops http-parser. */
static int fail(struct hd_request_parser *p, int code)
{
	set_error(p, code);
	return -1;
}

static struct hd_request_parser *parser_of(http_parser *hp)
{
	return hp->data;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Ends the piece in progress (target, name or value) before another starts. */
static int end_piece(struct hd_request_parser *p)
{
	struct hd_request_span *s = p->nspans ? &p->spans[p->nspans - 1] : NULL;

	if (p->too_many)
		return 0; /* the last kept field was ended when it was set */
	switch (p->last) {
	case LAST_TARGET:
		p->target_len = (uint32_t)p->head.len;
		break;
	case LAST_FIELD:
		/* A name with no value callback: its value is empty. */
		s->name_len = (uint32_t)(p->head.len - s->name_off);
		if (hd_buf_putc(&p->head, '\0'))
			return HD_EHEADERS;
		s->value_off = (uint32_t)p->head.len;
		s->value_len = 0;
		break;
	case LAST_VALUE:
		/* http-parser skips most leading white space, but not all of
		 * it around folded lines, so both ends are trimmed here. */
		while (s->value_off < p->head.len && is_space(p->head.data[s->value_off]))
			s->value_off++;
		while (p->head.len > s->value_off && is_space(p->head.data[p->head.len - 1]))
			p->head.len--;
		s->value_len = (uint32_t)(p->head.len - s->value_off);
		break;
	default:
		return 0;
	}
	return hd_buf_putc(&p->head, '\0') ? HD_EHEADERS : 0;
}

static int on_message_begin(http_parser *hp)
{
	parser_of(hp)->phase = HD_REQUEST_HEAD;
	return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
	struct hd_request_parser *p = parser_of(hp);

	p->last = LAST_TARGET;
	if (hd_buf_append(&p->head, at, len))
		return fail(p, HD_EHEADERS);
	return 0;
}

/* Trailer fields of a chunked body are not kept, only counted; their
 * size is checked when the message ends. Always 0, for the callbacks. */
static int count_trailer(struct hd_request_parser *p, size_t len)
{
	p->trailer_seen = add_sat(p->trailer_seen, len);
	return 0;
}

static void grow_spans(struct hd_request_parser *p)
{
	size_t cap = p->spans_cap ? p->spans_cap * 2 : SPANS_FIRST;

	if (cap > p->max_headers)
		cap = p->max_headers;
	p->spans = hd_realloc(p->spans, cap * sizeof(*p->spans));
	p->headers = hd_realloc(p->headers, cap * sizeof(*p->headers));
	p->spans_cap = cap;
}

/*
 * Whether c may appear in a header name (RFC 9110 token). Debian builds
 * http-parser without HTTP_PARSER_STRICT, which lets spaces through: a
 * "Content-Length : 5" that a proxy in front reads differently is a
 * request-smuggling risk, so names are checked here.
 */
static bool is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

static bool is_token(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_tchar(s[i]))
			return false;
	return true;
}

/* Whether a header value may hold these bytes: no control characters but
 * tab. http-parser lets some through (a NUL right after the colon). */
static bool is_field_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static int start_field(struct hd_request_parser *p)
{
	int rc = end_piece(p);

	if (rc)
		return rc;
	if (p->nspans >= p->max_headers) {
		p->too_many = true;
		return 0;
	}
	if (p->nspans == p->spans_cap)
		grow_spans(p);
	p->spans[p->nspans++] = (struct hd_request_span){.name_off = (uint32_t)p->head.len};
	return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct hd_request_parser *p = parser_of(hp);
	int rc;

	if (p->phase == HD_REQUEST_BODY)
		return count_trailer(p, len);
	if (!is_token(at, len))
		return fail(p, HD_EINVAL);
	if (p->last != LAST_FIELD && (rc = start_field(p)))
		return fail(p, rc);
	p->last = LAST_FIELD;
	if (p->too_many)
		return 0;
	size_t from = p->head.len;
	if (hd_buf_append(&p->head, at, len))
		return fail(p, HD_EHEADERS);
	for (size_t i = from; i < p->head.len; i++)
		if (p->head.data[i] >= 'A' && p->head.data[i] <= 'Z')
			p->head.data[i] = (char)(p->head.data[i] - 'A' + 'a');
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct hd_request_parser *p = parser_of(hp);

	if (p->phase == HD_REQUEST_BODY)
		return count_trailer(p, len);
	if (!is_field_text(at, len))
		return fail(p, HD_EINVAL);
	if (p->too_many) {
		p->last = LAST_VALUE;
		return 0;
	}
	if (p->last == LAST_FIELD) {
		struct hd_request_span *s = &p->spans[p->nspans - 1];
		s->name_len = (uint32_t)(p->head.len - s->name_off);
		if (hd_buf_putc(&p->head, '\0'))
			return fail(p, HD_EHEADERS);
		s->value_off = (uint32_t)p->head.len;
	}
	p->last = LAST_VALUE;
	if (hd_buf_append(&p->head, at, len))
		return fail(p, HD_EHEADERS);
	return 0;
}

/*
 * Splits the target into path and query (see request.h), writing NULs over
 * the separators. The head buffer no longer moves, so pointers are final.
 */
static void split_target(struct hd_request_parser *p)
{
	char *t = p->head.data;
	size_t end = p->target_len;
	struct http_parser_url u;

	if (t[0] != '/') {
		/* http_parser_url keeps 16-bit offsets. */
		http_parser_url_init(&u);
		if (end > UINT16_MAX ||
		    http_parser_parse_url(t, end, p->hp.method == HTTP_CONNECT, &u) ||
		    !(u.field_set & (1 << UF_SCHEMA))) {
			p->path = t;
			p->path_len = end;
			return;
		}
		p->path = "/";
		p->path_len = 1;
		if (u.field_set & (1 << UF_QUERY)) {
			p->query = t + u.field_data[UF_QUERY].off;
			t[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
		}
		if (u.field_set & (1 << UF_PATH)) {
			p->path = t + u.field_data[UF_PATH].off;
			p->path_len = u.field_data[UF_PATH].len;
			t[u.field_data[UF_PATH].off + p->path_len] = '\0';
		}
		return;
	}
	size_t cut = strcspn(t, "?#");
	if (t[cut] == '?') {
		size_t q = cut + 1;
		p->query = t + q;
		t[q + strcspn(t + q, "#")] = '\0';
	}
	t[cut] = '\0';
	p->path = t;
	p->path_len = cut;
}

static void build_headers(struct hd_request_parser *p)
{
	for (size_t i = 0; i < p->nspans; i++) {
		const struct hd_request_span *s = &p->spans[i];
		p->headers[i] = (struct hd_header){
			.name = p->head.data + s->name_off,
			.name_len = s->name_len,
			.value = p->head.data + s->value_off,
			.value_len = s->value_len,
		};
	}
}

static bool has_body(const http_parser *hp)
{
	return (hp->flags & F_CHUNKED) ||
	       (hp->content_length > 0 && hp->content_length != ULLONG_MAX);
}

static bool wants_continue(const struct hd_request_parser *p)
{
	if (p->hp.http_minor < 1 || !has_body(&p->hp))
		return false;
	for (size_t i = 0; i < p->nspans; i++)
		if (strcmp(p->headers[i].name, "expect") == 0 &&
		    strcasecmp(p->headers[i].value, "100-continue") == 0)
			return true;
	return false;
}

/*
 * Scans one Transfer-Encoding field value: a comma-separated list of
 * codings, each a token optionally followed by ";" parameters. Adds to
 * *ncodings and *nchunked across the fields of one request. Returns 0, or
 * HD_EINVAL for a list that is not well formed, a "chunked" with
 * parameters, a second "chunked" or any coding after it.
 */
static int scan_codings(const char *v, size_t *ncodings, size_t *nchunked)
{
	static const char chunked[] = "chunked";

	for (;;) {
		size_t tok = 0, end, i;

		while (is_space(*v))
			v++;
		while (is_tchar(v[tok]))
			tok++;
		/* An empty element ("gzip,,chunked", "chunked,") is refused,
		 * as http-parser would not frame it as chunked either; so is
		 * any element after chunked. */
		if (tok == 0 || *nchunked > 0)
			return HD_EINVAL;
		end = tok + strcspn(v + tok, ",");
		for (i = tok; i < end && is_space(v[i]); i++)
			;
		if (tok == sizeof(chunked) - 1 && strncasecmp(v, chunked, tok) == 0) {
			if (i < end)
				return HD_EINVAL;
			(*nchunked)++;
		} else if (i < end && v[i] != ';') {
			return HD_EINVAL;
		}
		(*ncodings)++;
		if (v[end] == '\0')
			return 0;
		v += end + 1;
	}
}

/*
 * The framing rules of RFC 9112 §6 that http-parser leaves to us. The one
 * transfer coding herald decodes is chunked, so a request that carries
 * Transfer-Encoding must name chunked exactly once and last (otherwise its
 * length cannot be known: 400), must not carry Content-Length as well (400)
 * and must be HTTP/1.1 (an HTTP/1.0 recipient cannot trust the framing:
 * 400). A well-framed request with another coding before chunked ("gzip,
 * chunked") is 501: its de-chunked body would still be gzip, and storing it
 * as if it were the content would be wrong. Several Transfer-Encoding
 * fields are one list, in order. Returns 0 or the code.
 */
static int check_framing(struct hd_request_parser *p)
{
	static const char *const not_last = "Transfer-Encoding must end in one \"chunked\"";
	bool te = false, cl = false;
	size_t ncodings = 0, nchunked = 0;

	for (size_t i = 0; i < p->nspans; i++) {
		const struct hd_header *h = &p->headers[i];
		if (h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0) {
			cl = true;
		} else if (h->name_len == 17 && memcmp(h->name, "transfer-encoding", 17) == 0) {
			te = true;
			if (scan_codings(h->value, &ncodings, &nchunked)) {
				p->why = not_last;
				return HD_EINVAL;
			}
		}
	}
	/* http-parser frames the body by its own reading of the fields; both
	 * readings must agree on chunked. */
	if (!te)
		return (p->hp.flags & F_CHUNKED) ? HD_EINVAL : 0;
	if (p->hp.http_minor == 0) {
		p->why = "Transfer-Encoding is not allowed in an HTTP/1.0 request";
		return HD_EINVAL;
	}
	if (cl) {
		p->why = "Transfer-Encoding and Content-Length together";
		return HD_EINVAL;
	}
	if (nchunked == 0 || !(p->hp.flags & F_CHUNKED)) {
		p->why = not_last;
		return HD_EINVAL;
	}
	if (ncodings > 1) {
		p->why = "the only transfer coding supported is \"chunked\"";
		return HD_ENOTIMPL;
	}
	return 0;
}

/* Whether c may appear in a Host value: uri-host [":" port] of RFC 3986
 * (reg-name, IPv4, IP-literal in brackets, percent-encoding). */
static bool is_host_char(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
	case '(': case ')': case '*': case '+': case ',': case ';': case '=': case '%':
	case ':': case '[': case ']':
		return true;
	default:
		return false;
	}
}

/*
 * RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host field, and no
 * request has two (a proxy in front and herald could each pick another);
 * an HTTP/1.0 request may have none. The value may be empty, otherwise it
 * must look like an authority. Returns 0 or HD_EINVAL.
 */
static int check_host(struct hd_request_parser *p)
{
	const struct hd_header *host = NULL;

	for (size_t i = 0; i < p->nspans; i++) {
		if (p->headers[i].name_len != 4 || memcmp(p->headers[i].name, "host", 4) != 0)
			continue;
		if (host) {
			p->why = "more than one Host header";
			return HD_EINVAL;
		}
		host = &p->headers[i];
	}
	if (!host) {
		if (p->hp.http_minor == 0)
			return 0;
		p->why = "an HTTP/1.1 request needs a Host header";
		return HD_EINVAL;
	}
	for (size_t i = 0; i < host->value_len; i++) {
		if (!is_host_char(host->value[i])) {
			p->why = "invalid Host header";
			return HD_EINVAL;
		}
	}
	return 0;
}

static int on_headers_complete(http_parser *hp)
{
	struct hd_request_parser *p = parser_of(hp);
	int rc = end_piece(p);

	if (rc)
		return fail(p, rc);
	if (p->too_many)
		return fail(p, HD_EHEADERS);
	if (hp->http_major != 1 || hp->http_minor > 1)
		return fail(p, HD_EVERSION);
	build_headers(p);
	/* Framing first: a body whose length is unknown must not be
	 * measured against body_max. */
	if ((rc = check_framing(p)) || (rc = check_host(p)))
		return fail(p, rc);
	if (!(hp->flags & F_CHUNKED) && hp->content_length != ULLONG_MAX &&
	    hp->content_length > p->body_max)
		return fail(p, HD_ETOOBIG);
	split_target(p);
	p->expect_continue = wants_continue(p);
	p->phase = HD_REQUEST_BODY;
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
	struct hd_request_parser *p = parser_of(hp);

	return hd_buf_append(&p->body, at, len) ? fail(p, HD_ETOOBIG) : 0;
}

/* A chunk that cannot fit is refused before its bytes are read. */
static int on_chunk_header(http_parser *hp)
{
	struct hd_request_parser *p = parser_of(hp);

	if (hp->content_length > p->body_max - p->body.len)
		return fail(p, HD_ETOOBIG);
	return 0;
}

/* Pausing makes http_parser_execute return right after this message. */
static int on_message_complete(http_parser *hp)
{
	struct hd_request_parser *p = parser_of(hp);

	if (p->trailer_seen > p->header_max)
		return fail(p, HD_EHEADERS);
	p->keep_alive = http_should_keep_alive(hp);
	p->phase = HD_REQUEST_DONE;
	http_parser_pause(hp, 1);
	return 0;
}

static int error_of(const struct hd_request_parser *p)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);

	if (p->phase == HD_REQUEST_FAILED)
		return p->err;
	return e == HPE_HEADER_OVERFLOW ? HD_EHEADERS : HD_EINVAL;
}

/* Runs http-parser over at most the head budget; returns like feed. */
static int execute(struct hd_request_parser *p, const char *data, size_t len, size_t *used)
{
	bool in_head = p->phase < HD_REQUEST_BODY;
	size_t n = len;

	*used = 0;
	if (in_head) {
		if (p->head_seen >= p->header_max)
			return set_error(p, HD_EHEADERS);
		if (n > p->header_max - p->head_seen)
			n = p->header_max - p->head_seen;
	}
	*used = http_parser_execute(&p->hp, &settings, data, n);
	if (in_head)
		p->head_seen += *used;
	if (p->phase == HD_REQUEST_DONE)
		return HD_REQUEST_COMPLETE;
	if (p->phase == HD_REQUEST_FAILED || HTTP_PARSER_ERRNO(&p->hp) != HPE_OK)
		return set_error(p, error_of(p));
	if (*used != n)
		return set_error(p, HD_EINVAL); /* stopped without saying why */
	if (p->phase < HD_REQUEST_BODY && p->head_seen >= p->header_max)
		return set_error(p, HD_EHEADERS);
	return HD_REQUEST_MORE;
}

int hd_request_feed(struct hd_request_parser *p, const char *data, size_t len, size_t *consumed)
{
	size_t total = 0;
	int rc = HD_REQUEST_MORE;

	if (p->phase == HD_REQUEST_DONE)
		start_message(p);
	if (p->phase == HD_REQUEST_FAILED) {
		rc = p->err;
		goto out;
	}
	while (total < len && rc == HD_REQUEST_MORE) {
		size_t used;
		rc = execute(p, data + total, len - total, &used);
		total += used;
	}
out:
	*consumed = total;
	return rc;
}

enum hd_request_phase hd_request_phase(const struct hd_request_parser *p)
{
	return p->phase;
}

const char *hd_request_error_reason(const struct hd_request_parser *p)
{
	return p->phase == HD_REQUEST_FAILED ? p->why : NULL;
}

bool hd_request_expects_continue(const struct hd_request_parser *p)
{
	return p->expect_continue;
}

void hd_request_get(const struct hd_request_parser *p, struct hd_http_request *req)
{
	assert(p->phase == HD_REQUEST_DONE);
	req->method = (int)p->hp.method;
	req->method_name = http_method_str((enum http_method)p->hp.method);
	req->path = p->path;
	req->path_len = p->path_len;
	req->query = p->query;
	req->headers = p->headers;
	req->nheaders = p->nspans;
	req->body = p->body.data ? p->body.data : "";
	req->body_len = p->body.len;
	req->keep_alive = p->keep_alive;
}
