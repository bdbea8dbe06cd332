/*
 * test_request — unit tests of src/http/request.c, the request parser:
 * complete messages fed at once and byte by byte, pipelining, every limit
 * crossed and met exactly, malformed input, and the Host and
 * Transfer-Encoding rules of RFC 9112. Every HTTP/1.1 request that is meant
 * to get past its head carries a Host field.
 */
#include "core/err.h"
#include "http/request.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static struct hd_http_limits limits(size_t header_max, size_t max_headers, size_t body_max)
{
	struct hd_http_limits lim;

	hd_http_limits_default(&lim);
	lim.header_max = header_max;
	lim.max_headers = max_headers;
	lim.body_max = body_max;
	return lim;
}

/* Feeds s at once; returns the result and stores the bytes consumed. */
static int feed_str(struct hd_request_parser *p, const char *s, size_t *used)
{
	return hd_request_feed(p, s, strlen(s), used);
}

/* Feeds s one byte at a time until the parser stops; returns its answer. */
static int feed_bytes(struct hd_request_parser *p, const char *s, size_t *used)
{
	size_t len = strlen(s), total = 0;
	int rc = HD_REQUEST_MORE;

	while (total < len && rc == HD_REQUEST_MORE) {
		size_t n;
		rc = hd_request_feed(p, s + total, 1, &n);
		total += n;
	}
	*used = total;
	return rc;
}

static const char *header(const struct hd_http_request *req, const char *name)
{
	return hd_http_header_get(req, name);
}

static void test_simple_get(void **state)
{
	const char *msg = "GET /topics/a%20b?x=1&y=2#frag HTTP/1.1\r\n"
			  "Host: Example.COM\r\n"
			  "X-Padded:   two words \t \r\n"
			  "Empty:\r\n"
			  "\r\n";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_IDLE);
	assert_int_equal(feed_str(&p, msg, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(msg));
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_DONE);
	hd_request_get(&p, &req);
	assert_int_equal(req.method, HTTP_GET);
	assert_string_equal(req.method_name, "GET");
	assert_string_equal(req.path, "/topics/a%20b");
	assert_int_equal(req.path_len, strlen("/topics/a%20b"));
	assert_string_equal(req.query, "x=1&y=2");
	assert_int_equal(req.nheaders, 3);
	assert_string_equal(req.headers[0].name, "host");
	assert_int_equal(req.headers[0].name_len, 4);
	assert_string_equal(header(&req, "host"), "Example.COM");
	assert_string_equal(header(&req, "x-padded"), "two words");
	assert_int_equal(req.headers[1].value_len, strlen("two words"));
	assert_string_equal(header(&req, "empty"), "");
	assert_int_equal(req.headers[2].value_len, 0);
	assert_null(header(&req, "Host"));
	assert_string_equal(req.body, "");
	assert_int_equal(req.body_len, 0);
	assert_true(req.keep_alive);
	hd_request_fini(&p);
}

static void test_no_query_and_absolute_form(void **state)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, "GET /a HTTP/1.0\r\n\r\n", &used), HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/a");
	assert_string_equal(req.query, "");
	assert_int_equal(req.nheaders, 0);

	assert_int_equal(feed_str(&p, "GET http://h:80/x/y?q=1 HTTP/1.1\r\nHost: h:80\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/x/y");
	assert_int_equal(req.path_len, 4);
	assert_string_equal(req.query, "q=1");

	assert_int_equal(feed_str(&p, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "*");
	hd_request_fini(&p);
}

static void test_post_content_length(void **state)
{
	const char *msg = "POST /topics/t/events HTTP/1.1\r\n"
			  "Host: h\r\n"
			  "Content-Type: application/json\r\n"
			  "Content-Length: 13\r\n"
			  "\r\n"
			  "{\"a\":\"hello\"}";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(msg));
	hd_request_get(&p, &req);
	assert_int_equal(req.method, HTTP_POST);
	assert_string_equal(req.method_name, "POST");
	assert_string_equal(header(&req, "content-type"), "application/json");
	assert_int_equal(req.body_len, 13);
	assert_string_equal(req.body, "{\"a\":\"hello\"}");
	hd_request_fini(&p);
}

static const char chunked[] = "POST /p HTTP/1.1\r\n"
			      "Host: h\r\n"
			      "Transfer-Encoding: chunked\r\n"
			      "\r\n"
			      "5\r\nhello\r\n"
			      "1\r\n \r\n"
			      "5;ext=1\r\nworld\r\n"
			      "A\r\n0123456789\r\n"
			      "0\r\n"
			      "Trailer-Field: dropped\r\n"
			      "\r\n";

static void check_chunked(const struct hd_request_parser *p)
{
	struct hd_http_request req = {0};

	hd_request_get(p, &req);
	assert_int_equal(req.body_len, 21);
	assert_string_equal(req.body, "hello world0123456789");
	assert_int_equal(req.nheaders, 2);
	assert_null(hd_http_header_get(&req, "trailer-field"));
}

static void test_chunked(void **state)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, chunked, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(chunked));
	check_chunked(&p);
	hd_request_fini(&p);
}

static void test_chunked_byte_by_byte(void **state)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, chunked, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(chunked));
	check_chunked(&p);
	hd_request_fini(&p);
}

static void test_headers_byte_by_byte(void **state)
{
	const char *msg = "PUT /x?k=v HTTP/1.1\r\nHost: h\r\nA-Long-Name: some value  \r\nB: 2\r\n"
			  "Content-Length: 3\r\n\r\nabc";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(msg));
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/x");
	assert_string_equal(req.query, "k=v");
	assert_string_equal(header(&req, "a-long-name"), "some value");
	assert_string_equal(header(&req, "b"), "2");
	assert_string_equal(req.body, "abc");
	hd_request_fini(&p);
}

static void test_pipelined(void **state)
{
	const char *one = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *two = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
	char both[256];
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	snprintf(both, sizeof(both), "%s%s", one, two);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, both, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(one));
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/a");
	assert_int_equal(req.body_len, 0);

	assert_int_equal(feed_str(&p, both + used, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(two));
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/b");
	assert_string_equal(req.body, "hi");
	assert_int_equal(req.nheaders, 2);
	hd_request_fini(&p);
}

static void test_pipelined_byte_by_byte(void **state)
{
	const char *both = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, both, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(both) / 2);
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/a");
	assert_int_equal(feed_bytes(&p, both + used, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(used, strlen(both) / 2);
	hd_request_get(&p, &req);
	assert_string_equal(req.path, "/b");
	hd_request_fini(&p);
}

static void test_keep_alive_rules(void **state)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_false(req.keep_alive);
	/* A close request still lets the caller parse what follows. */
	assert_int_equal(feed_str(&p, "GET / HTTP/1.0\r\n\r\n", &used), HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_false(req.keep_alive);
	assert_int_equal(feed_str(&p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_true(req.keep_alive);
	hd_request_fini(&p);
}

static void test_expect_continue(void **state)
{
	const char *head = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
			   "Expect: 100-Continue\r\n\r\n";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, head, &used), HD_REQUEST_MORE);
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_BODY);
	assert_true(hd_request_expects_continue(&p));
	assert_int_equal(feed_str(&p, "body", &used), HD_REQUEST_COMPLETE);
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
				  &used),
			 HD_REQUEST_COMPLETE);
	assert_false(hd_request_expects_continue(&p));
	hd_request_fini(&p);
}

/* Builds "GET / HTTP/1.1\r\nHost: h\r\nX: aaa…\r\n\r\n" exactly total bytes long. */
static void head_of(char *out, size_t total)
{
	const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
	size_t pad = total - strlen(start) - 4;

	strcpy(out, start);
	memset(out + strlen(start), 'a', pad);
	strcpy(out + strlen(start) + pad, "\r\n\r\n");
}

static void test_header_max_exact(void **state)
{
	char msg[300];
	struct hd_http_limits lim = limits(200, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	head_of(msg, 200);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_REQUEST_COMPLETE);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), HD_REQUEST_COMPLETE);
	hd_request_fini(&p);

	head_of(msg, 201);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_EHEADERS);
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_FAILED);
	/* The error sticks. */
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\n\r\n", &used), HD_EHEADERS);
	assert_int_equal(used, 0);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), HD_EHEADERS);
	assert_int_equal(used, 200);
	hd_request_fini(&p);
}

static void test_header_too_large_unterminated(void **state)
{
	char msg[5000];
	struct hd_http_limits lim = limits(1024, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	/* A client that never ends its head is refused once it crosses the
	 * limit, without waiting for the end. */
	strcpy(msg, "GET / HTTP/1.1\r\nCookie: ");
	memset(msg + strlen(msg), 'c', 2000);
	msg[24 + 2000] = '\0';
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_EHEADERS);
	hd_request_fini(&p);
}

static void test_too_many_headers(void **state)
{
	const char *three = "GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\nC: 3\r\n\r\n";
	const char *four = "GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	struct hd_http_limits lim = limits(8192, 3, 1024);
	struct hd_request_parser p;
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, three, &used), HD_REQUEST_COMPLETE);
	assert_int_equal(feed_str(&p, four, &used), HD_EHEADERS);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, four, &used), HD_EHEADERS);
	hd_request_fini(&p);
}

static void test_many_headers_grow(void **state)
{
	char msg[4096];
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used, n;

	n = (size_t)snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 99; i++)
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "H%d: v%d\r\n", i, i);
	snprintf(msg + n, sizeof(msg) - n, "\r\n");
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_int_equal(req.nheaders, 100);
	assert_string_equal(hd_http_header_get(&req, "h0"), "v0");
	assert_string_equal(hd_http_header_get(&req, "h98"), "v98");
	hd_request_fini(&p);
}

static void test_body_too_large_declared(void **state)
{
	const char *head = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n";
	const char *fits = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n";
	struct hd_http_limits lim = limits(8192, 100, 100);
	struct hd_request_parser p;
	size_t used;

	/* Refused on the head alone, before any body byte. */
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, head, &used), HD_ETOOBIG);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, fits, &used), HD_REQUEST_MORE);
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_BODY);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, "POST /p HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
				  &used),
			 HD_EINVAL);
	hd_request_fini(&p);
}

static void test_body_too_large_chunked(void **state)
{
	const char *head = "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	char msg[256];
	struct hd_http_limits lim = limits(8192, 100, 8);
	struct hd_request_parser p;
	size_t used;

	/* 5 + 5 bytes: the second chunk header already crosses 8. */
	snprintf(msg, sizeof(msg), "%s5\r\nhello\r\n5\r\n", head);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_ETOOBIG);
	hd_request_fini(&p);

	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), HD_ETOOBIG);
	hd_request_fini(&p);

	/* Exactly at the limit is fine. */
	snprintf(msg, sizeof(msg), "%s5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", head);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), HD_REQUEST_COMPLETE);
	hd_request_fini(&p);
}

static void expect_error(const char *msg, int code)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), code);
	hd_request_fini(&p);
	hd_request_init(&p, &lim);
	assert_int_equal(feed_bytes(&p, msg, &used), code);
	hd_request_fini(&p);
}

static void test_malformed(void **state)
{
	expect_error("GARBAGE\r\n\r\n", HD_EINVAL);
	expect_error("GET/ HTTP/1.1\r\n\r\n", HD_EINVAL);
	expect_error("GET / HTTP/1.1 extra\r\n\r\n", HD_EINVAL);
	expect_error("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", HD_EINVAL);
	expect_error("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", HD_EINVAL);
	expect_error("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", HD_EINVAL);
	expect_error("GET / HTTP/1.1\r\nA\"b: x\r\n\r\n", HD_EINVAL);
	expect_error("GET /\x01 HTTP/1.1\r\n\r\n", HD_EINVAL);
	expect_error("GET / HTTP/1.1\r\nA:\x01" "b\r\n\r\n", HD_EINVAL);
	expect_error("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", HD_EINVAL);
	/* Request smuggling: both framings, or an unknown one. */
	expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		     HD_EINVAL);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", HD_EINVAL);
	expect_error("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HD_EINVAL);
	expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		     HD_EINVAL);
}

static void test_version(void **state)
{
	expect_error("GET / HTTP/2.0\r\n\r\n", HD_EVERSION);
	expect_error("GET / HTTP/1.2\r\nHost: x\r\n\r\n", HD_EVERSION);
	expect_error("GET / HTTP/0.9\r\n\r\n", HD_EVERSION);
}

static void test_leading_blank_lines(void **state)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used;

	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, "\r\n", &used), HD_REQUEST_MORE);
	assert_int_equal(hd_request_phase(&p), HD_REQUEST_IDLE);
	assert_int_equal(feed_str(&p, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_int_equal(req.method, HTTP_DELETE);
	hd_request_fini(&p);
}

static void test_large_body_released(void **state)
{
	static char msg[300000];
	struct hd_http_limits lim = limits(8192, 100, 256 * 1024);
	struct hd_request_parser p;
	struct hd_http_request req = {0};
	size_t used, n;

	n = (size_t)snprintf(msg, sizeof(msg),
			     "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 200000);
	memset(msg + n, 'b', 200000);
	msg[n + 200000] = '\0';
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, msg, &used), HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_int_equal(req.body_len, 200000);
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &used),
			 HD_REQUEST_COMPLETE);
	hd_request_get(&p, &req);
	assert_int_equal(req.body_len, 0);
	assert_string_equal(req.body, "");
	hd_request_fini(&p);
}

/*
 * Feeds msg at once and byte by byte; both must end in code. For an error
 * the reason must contain why (NULL: no reason); a complete request must
 * have consumed all of msg.
 */
static void expect_result(const char *msg, int code, const char *why)
{
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	for (int bytes = 0; bytes < 2; bytes++) {
		hd_request_init(&p, &lim);
		assert_int_equal(bytes ? feed_bytes(&p, msg, &used) : feed_str(&p, msg, &used), code);
		if (code == HD_REQUEST_COMPLETE)
			assert_int_equal(used, strlen(msg));
		if (why)
			assert_non_null(strstr(hd_request_error_reason(&p), why));
		else
			assert_null(hd_request_error_reason(&p));
		hd_request_fini(&p);
	}
}

static void test_host_rules(void **state)
{
	/* RFC 9112 §3.2: HTTP/1.1 needs exactly one Host. */
	expect_result("GET / HTTP/1.1\r\n\r\n", HD_EINVAL, "needs a Host");
	expect_result("GET / HTTP/1.1\r\nX: y\r\n\r\n", HD_EINVAL, "needs a Host");
	expect_result("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", HD_EINVAL, "needs a Host");
	expect_result("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HD_EINVAL,
		      "more than one Host");
	expect_result("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhOsT: b\r\n\r\n", HD_EINVAL,
		      "more than one Host");
	/* HTTP/1.0 may omit it, but two are refused there too. */
	expect_result("GET / HTTP/1.0\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.0\r\nHost: a\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HD_EINVAL,
		      "more than one Host");
	/* The forms of an authority pass, an empty value too; others do not. */
	expect_result("GET / HTTP/1.1\r\nHost:\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", HD_REQUEST_COMPLETE,
		      NULL);
	expect_result("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.1\r\nHost: a%2Db.example\r\n\r\n", HD_REQUEST_COMPLETE, NULL);
	expect_result("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HD_EINVAL, "invalid Host");
	expect_result("GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", HD_EINVAL, "invalid Host");
	expect_result("GET / HTTP/1.1\r\nHost: h/p\r\n\r\n", HD_EINVAL, "invalid Host");
	/* The version is checked first. */
	expect_result("GET / HTTP/2.0\r\n\r\n", HD_EVERSION, NULL);
}

static void test_host_rule_per_message(void **state)
{
	const char *both = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	struct hd_http_limits lim = limits(8192, 100, 1024);
	struct hd_request_parser p;
	size_t used;

	/* A Host in one pipelined request does not count for the next. */
	hd_request_init(&p, &lim);
	assert_int_equal(feed_str(&p, both, &used), HD_REQUEST_COMPLETE);
	assert_null(hd_request_error_reason(&p));
	assert_int_equal(feed_str(&p, both + used, &used), HD_EINVAL);
	assert_non_null(strstr(hd_request_error_reason(&p), "Host"));
	hd_request_fini(&p);
}

#define TE_HEAD "POST /p HTTP/1.1\r\nHost: h\r\n"
#define TE_BODY "\r\n5\r\nhello\r\n0\r\n\r\n"

static void test_transfer_codings(void **state)
{
	/* chunked alone, in any case, is the one accepted. */
	expect_result(TE_HEAD "Transfer-Encoding: chunked\r\n" TE_BODY, HD_REQUEST_COMPLETE, NULL);
	expect_result(TE_HEAD "Transfer-Encoding: Chunked\r\n" TE_BODY, HD_REQUEST_COMPLETE, NULL);
	/* A coding herald does not implement before chunked: 501. */
	expect_result(TE_HEAD "Transfer-Encoding: gzip, chunked\r\n" TE_BODY, HD_ENOTIMPL,
		      "only transfer coding");
	expect_result(TE_HEAD "Transfer-Encoding: gzip,chunked\r\n" TE_BODY, HD_ENOTIMPL,
		      "only transfer coding");
	expect_result(TE_HEAD "Transfer-Encoding: identity, chunked\r\n" TE_BODY, HD_ENOTIMPL,
		      "only transfer coding");
	expect_result(TE_HEAD "Transfer-Encoding: x-custom;level=1 , chunked\r\n" TE_BODY,
		      HD_ENOTIMPL, "only transfer coding");
	/* Several fields are one list. */
	expect_result(TE_HEAD "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n" TE_BODY,
		      HD_ENOTIMPL, "only transfer coding");
	/* chunked not last, twice, with parameters, or absent: the length is
	 * unknown, 400. */
	expect_result(TE_HEAD "Transfer-Encoding: gzip\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked, gzip\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked, chunked\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n" TE_BODY,
		      HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n" TE_BODY,
		      HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked;x=1\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked,\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: gzip,,chunked\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: chunked x\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding: \"chunked\"\r\n" TE_BODY, HD_EINVAL, "chunked");
	expect_result(TE_HEAD "Transfer-Encoding:\r\n" TE_BODY, HD_EINVAL, "chunked");
	/* In HTTP/1.0, or together with Content-Length: 400, even for an
	 * unknown coding. */
	expect_result("POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n" TE_BODY, HD_EINVAL,
		      "HTTP/1.0");
	expect_result("POST /p HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n" TE_BODY, HD_EINVAL,
		      "HTTP/1.0");
	expect_result(TE_HEAD "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n" TE_BODY,
		      HD_EINVAL, NULL);
	expect_result(TE_HEAD "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", HD_EINVAL,
		      NULL);
	/* The framing is checked before the Host, and before body_max. */
	expect_result("POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n" TE_BODY,
		      HD_ENOTIMPL, "only transfer coding");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_no_query_and_absolute_form),
		cmocka_unit_test(test_post_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_byte_by_byte),
		cmocka_unit_test(test_headers_byte_by_byte),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_pipelined_byte_by_byte),
		cmocka_unit_test(test_keep_alive_rules),
		cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_header_max_exact),
		cmocka_unit_test(test_header_too_large_unterminated),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_many_headers_grow),
		cmocka_unit_test(test_body_too_large_declared),
		cmocka_unit_test(test_body_too_large_chunked),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_leading_blank_lines),
		cmocka_unit_test(test_large_body_released),
		cmocka_unit_test(test_host_rules),
		cmocka_unit_test(test_host_rule_per_message),
		cmocka_unit_test(test_transfer_codings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
