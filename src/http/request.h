/*
 * request — an incremental HTTP/1.x request parser with herald's limits.
 * Layer: http. Used by server.c (one parser per connection) and by the
 * fuzzer. Pure: no I/O, no globals; single-threaded, the owner decides which
 * thread. Wraps http-parser 2.9, which does the tokenising.
 *
 * The caller feeds bytes as they arrive. The parser stops after exactly one
 * complete message and says how many bytes it consumed, so pipelined bytes
 * that follow stay with the caller until it asks for the next message. A
 * parsed message is returned as the parsing fields of struct hd_http_request:
 *
 *   path     the raw request target up to '?' or '#' (still percent-encoded);
 *            for an absolute-form target ("http://h/p?q") the path part, "/"
 *            when empty; for "*" and CONNECT authority targets the target
 *   query    the raw text between '?' and '#', "" when absent
 *   headers  in the order received; names lower-cased; values with leading
 *            and trailing spaces and tabs removed; all NUL-terminated
 *   body     de-chunked and NUL-terminated ("" when absent); trailer fields
 *            of a chunked body are checked against the limits and dropped
 *
 * Limits, each an ordinary error with the code the server answers:
 *   request line + headers longer than header_max bytes on the wire,
 *       or more than max_headers fields                    HD_EHEADERS (431)
 *   Content-Length above body_max (refused before any body byte is read),
 *       or a chunked body growing past body_max            HD_ETOOBIG  (413)
 *   a version other than HTTP/1.0 or HTTP/1.1              HD_EVERSION (505)
 *   Transfer-Encoding with a coding before "chunked"
 *       ("gzip, chunked"): herald decodes chunked only     HD_ENOTIMPL (501)
 *   Transfer-Encoding that does not end in exactly one
 *       "chunked" (RFC 9112 §6.3), in an HTTP/1.0 request,
 *       or together with Content-Length                    HD_EINVAL   (400)
 *   an HTTP/1.1 request without a Host field, any request
 *       with two, or a Host value that is not an authority
 *       (RFC 9112 §3.2)                                    HD_EINVAL   (400)
 *   anything http-parser rejects (bad request line, bad header syntax,
 *       two Content-Lengths, …)                            HD_EINVAL   (400)
 * The framing and Host checks run once the head is complete, after the
 * version check and before the body_max check on Content-Length.
 * http-parser also stops any head at 80 KiB on its own (HD_EHEADERS), so a
 * header_max above that has no effect.
 */
#ifndef HD_HTTP_REQUEST_H
#define HD_HTTP_REQUEST_H

#include "core/buf.h"
#include "core/header.h"
#include "http/server.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of hd_request_feed besides the negative HD_E* codes. */
enum {
	HD_REQUEST_MORE = 0,     /* every byte consumed; the message is not complete yet */
	HD_REQUEST_COMPLETE = 1, /* one message is complete; the rest is not consumed */
};

/* Where the current message stands; lets the server pick its timers. */
enum hd_request_phase {
	HD_REQUEST_IDLE,   /* no byte of the message yet (blank lines do not count) */
	HD_REQUEST_HEAD,   /* inside the request line or the headers */
	HD_REQUEST_BODY,   /* headers complete, body (or trailers) still to come */
	HD_REQUEST_DONE,   /* complete; hd_request_get may be called */
	HD_REQUEST_FAILED, /* an error was returned; only hd_request_fini remains */
};

/* Where one header field lies inside the head buffer while it is parsed. */
struct hd_request_span {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

/* All members are private: use the functions below. */
struct hd_request_parser {
	http_parser hp;
	size_t header_max, max_headers, body_max;
	enum hd_request_phase phase;
	int err;                 /* the HD_E* code once FAILED */
	const char *why;         /* static text saying why, for some errors; else NULL */
	int last;                /* which data callback ran last */
	size_t head_seen;        /* wire bytes of the head so far */
	size_t trailer_seen;     /* bytes of trailer fields so far */
	struct hd_buf head;      /* "target\0name\0value\0name\0value\0…" */
	struct hd_buf body;
	uint32_t target_len;
	struct hd_request_span *spans;  /* owned; grows up to max_headers */
	struct hd_header *headers;      /* owned; same capacity as spans */
	size_t nspans, spans_cap;
	const char *path, *query;       /* borrowed from head (or static) */
	size_t path_len;
	bool too_many;           /* more than max_headers fields: 431 when the head ends */
	bool expect_continue;
	bool keep_alive;
};

/*
 * Prepares p to parse requests within lim's header_max, max_headers and
 * body_max (the other members are ignored; lim is copied). Buffers grow on
 * demand, so an idle parser holds no memory. Pair with hd_request_fini.
 */
void hd_request_init(struct hd_request_parser *p, const struct hd_http_limits *lim);
void hd_request_fini(struct hd_request_parser *p);

/*
 * Feeds data[0..len) (borrowed; copied as needed) and stores in *consumed
 * how many bytes were used. Returns HD_REQUEST_MORE (all consumed, feed more
 * later), HD_REQUEST_COMPLETE (one message complete; bytes past *consumed
 * belong to the next one), or a negative HD_E* code (see the table above),
 * after which every call returns the same code. Feeding again after
 * COMPLETE starts the next message and invalidates the previous one.
 */
int hd_request_feed(struct hd_request_parser *p, const char *data, size_t len, size_t *consumed);

/* The phase of the message being parsed. */
enum hd_request_phase hd_request_phase(const struct hd_request_parser *p);

/*
 * Once feed returned an error: a sentence for the client saying what was
 * wrong ("more than one Host header"), returns borrowed static text, or NULL
 * when the error's table message says enough. NULL in the other phases.
 */
const char *hd_request_error_reason(const struct hd_request_parser *p);

/*
 * Whether the client sent "Expect: 100-continue" (HTTP/1.1) on a request
 * with a body: it waits for an interim 100 response before sending the
 * body. Meaningful from phase HD_REQUEST_BODY on.
 */
bool hd_request_expects_continue(const struct hd_request_parser *p);

/*
 * Fills method, method_name, path, path_len, query, headers, nheaders, body,
 * body_len and keep_alive of req (the other members are left alone) with
 * pointers borrowed from p, valid until the next hd_request_feed or
 * hd_request_fini. The phase must be HD_REQUEST_DONE.
 */
void hd_request_get(const struct hd_request_parser *p, struct hd_http_request *req);

#endif
