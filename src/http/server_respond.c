/*
 * server_respond — responses: the status line, Server and Date, the
 * headers, CORS and herald's JSON error body, and the handler's side of a
 * request (hd_http_respond). See server.c; server_impl.h.
 * Layer: http; loop thread.
 */
#include "http/server_impl.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/text.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- The head of a response ---------------------------------------------- */

/* The Date header's value, formatted once per second. */
static const char *server_date(struct hd_http_server *s)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	if (now != s->date_at && gmtime_r(&now, &tm)) {
		snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
			 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
		s->date_at = now;
	}
	return s->date;
}

/* "HTTP/1.1 <status> <reason>\r\nServer: herald\r\nDate: <date>\r\n" for
 * status, rebuilt when the status or the second changes. */
static const char *status_head(struct hd_http_server *s, int status, size_t *len)
{
	const char *date = server_date(s);

	if (status != s->head_status || s->date_at != s->head_at) {
		int n = snprintf(s->head, sizeof(s->head),
				 "HTTP/1.1 %d %s\r\nServer: herald\r\nDate: %s\r\n", status,
				 http_status_str((enum http_status)status), date);
		/* The longest reason phrase and the date take under 100 bytes. */
		assert(n > 0 && (size_t)n < sizeof(s->head));
		s->head_len = (size_t)n;
		s->head_status = status;
		s->head_at = s->date_at;
	}
	*len = s->head_len;
	return s->head;
}

/* Appends each string up to a NULL; returns 0 or HD_ETOOBIG. Cheaper than
 * hd_buf_printf on the path every response takes. */
static int put_strs(struct hd_buf *b, ...)
{
	const char *str;
	va_list ap;
	int rc = 0;

	va_start(ap, b);
	while (rc == 0 && (str = va_arg(ap, const char *)))
		rc = hd_buf_puts(b, str);
	va_end(ap);
	return rc;
}

/* Writes v in decimal into out (at least 21 bytes); returns out. */
static const char *decimal(size_t v, char *out)
{
	out[hd_u64_format(v, out)] = '\0';
	return out;
}

/* Appends one response to the output, or (stream) a head without
 * Content-Length whose body follows until the connection closes. Returns
 * 0, or HD_ETOOBIG with the output unchanged. Statuses that have no body
 * get no Content-Length. */
int hd_server_respond_put(struct conn *c, int status, const char *ctype, const char *extra,
			  const char *body, size_t len, bool keep, bool head_only, bool stream)
{
	struct hd_buf *b = &c->out[c->fill].buf;
	size_t mark = b->len;
	bool bodiless = status < 200 || status == 204 || status == 304 || stream;
	char num[24];
	size_t head_len;
	const char *head = status_head(c->srv, status, &head_len);
	int rc;

	/* One reserve for the usual head (the extras are short) and body. */
	hd_buf_reserve(b, head_len + 128 + (ctype ? strlen(ctype) : 0) + len);
	rc = hd_buf_append(b, head, head_len);
	if (!rc && ctype)
		rc = put_strs(b, "Content-Type: ", ctype, "\r\n", NULL);
	if (!rc && !bodiless)
		rc = put_strs(b, "Content-Length: ", decimal(len, num), "\r\n", NULL);
	if (!rc)
		rc = hd_buf_puts(b, keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
	if (!rc && extra)
		rc = hd_buf_puts(b, extra);
	if (!rc && c->cors)
		rc = hd_buf_puts(b, c->cors);
	if (!rc)
		rc = hd_buf_puts(b, "\r\n");
	if (!rc && !bodiless && !head_only)
		rc = hd_buf_append(b, body, len);
	if (rc) {
		/* Take back the partial response; hd_buf has no truncate. */
		b->len = mark;
		if (b->data)
			b->data[mark] = '\0';
	}
	return rc;
}

/* Fills b (which this initialises) with herald's JSON error body. */
void hd_server_respond_error_body(struct hd_buf *b, int code, const char *message)
{
	const char *slug = hd_err_slug(code);

	hd_buf_init(b, ERROR_BODY_MAX);
	if (!message)
		message = hd_err_message(code);
	if (hd_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"", slug) == 0 &&
	    hd_buf_json_escape(b, message, strlen(message)) == 0 && hd_buf_puts(b, "\"}}") == 0)
		return;
	/* The message was too long; the table's own message always fits. */
	hd_buf_reset(b);
	(void)hd_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", slug,
			    hd_err_message(code));
}

/* ---- The handler's side -------------------------------------------------- */

const char *hd_http_header_get(const struct hd_http_request *req, const char *lname)
{
	size_t n = strlen(lname);

	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name_len == n && memcmp(req->headers[i].name, lname, n) == 0)
			return req->headers[i].value;
	return NULL;
}

bool hd_http_request_alive(const struct hd_http_request *req)
{
	const struct conn *c = req->conn;

	return !c->closing;
}

void hd_server_respond_count(int status)
{
	if (status >= 400)
		hd_metrics_inc(HD_M_http_errors_total);
}

/*
 * Points c->cors at the CORS lines for a response to req (in out, or a
 * constant): with cors_origins "*", any Origin is
 * allowed; otherwise an Origin equal to one of the comma-separated entries
 * is echoed (with Vary: Origin). No Origin, or one not listed: nothing.
 */
void hd_server_respond_cors(struct conn *c, const struct hd_http_request *req,
			    char out[CORS_HEADER_MAX])
{
	const char *list = c->srv->lim.cors_origins;
	const char *origin;
	size_t olen;

	c->cors = NULL;
	if (!list || !*list || !(origin = hd_http_header_get(req, "origin")))
		return;
	if (strcmp(list, "*") == 0) {
		c->cors = "Access-Control-Allow-Origin: *\r\n";
		return;
	}
	olen = strlen(origin);
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		const char *a = p, *e = comma ? comma : p + strlen(p);
		while (a < e && *a == ' ')
			a++;
		while (e > a && e[-1] == ' ')
			e--;
		if ((size_t)(e - a) == olen && memcmp(a, origin, olen) == 0 &&
		    olen < CORS_HEADER_MAX - 64) {
			snprintf(out, CORS_HEADER_MAX,
				 "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
			c->cors = out;
			return;
		}
		if (!comma)
			return;
		p = comma + 1;
	}
}

void hd_http_respond(struct hd_http_request *req, int status, const char *content_type,
		     const char *extra_headers, const char *body, size_t body_len)
{
	struct conn *c = req->conn;
	bool keep = req->keep_alive && !c->srv->stopping;

	assert(c->in_flight && req == &c->req);
	assert(status >= 100 && status <= 999);
	c->in_flight = false;
	if (c->closing) {
		/* The client left while the handler ran: drop the response. */
		hd_server_conn_maybe_free(c);
		return;
	}
	char cors[CORS_HEADER_MAX];
	hd_server_respond_cors(c, req, cors);
	int put = hd_server_respond_put(c, status, content_type, extra_headers, body, body_len, keep,
					req->method == HTTP_HEAD, false);
	c->cors = NULL;
	if (put == 0) {
		hd_server_respond_count(status);
		if (keep)
			hd_server_input_next(c);
		else
			hd_server_conn_end(c);
	} else {
		hd_log_error("http_response_too_big remote=%s status=%d bytes=%zu", c->remote,
			     status, body_len);
		hd_server_conn_fail(c, HD_EINTERNAL, NULL, NULL, false);
	}
	hd_server_input_pump(c);
}

void hd_http_respond_error(struct hd_http_request *req, int code, const char *message)
{
	struct hd_buf body;

	int status = hd_err_http_status(code);
	hd_server_respond_error_body(&body, code, message);
	/* 503 is a passing state (a busy store, a Redis failover): say when
	 * to come back. */
	hd_http_respond(req, status, HD_HTTP_JSON_TYPE, status == 503 ? "Retry-After: 1\r\n" : NULL,
			body.data, body.len);
	hd_buf_fini(&body);
}

void hd_http_respond_errorf(struct hd_http_request *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hd_http_respond_error(req, code, msg);
}

void hd_http_respond_json(struct hd_http_request *req, int status, struct hd_buf *b)
{
	hd_http_respond(req, status, HD_HTTP_JSON_TYPE, NULL, b->data ? b->data : "", b->len);
	hd_buf_fini(b);
}
