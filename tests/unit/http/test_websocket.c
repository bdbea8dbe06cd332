/*
 * test_websocket — unit tests of src/http/websocket.c: the accept key (RFC 6455's own
 * example), the handshake's checks and its 101 head, the frame encoders,
 * and the decoder against every server rule of websocket.h, with the input fed
 * whole, byte by byte and in other pieces.
 */
#include "http/websocket.h"
#include "core/buf.h"
#include "core/err.h"

#include <http_parser.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- Handshake ----------------------------------------------------------- */

#define MAX_HDRS 16

/* A request as the server hands it to the edge. */
struct req {
	struct hd_http_request r;
	struct hd_header h[MAX_HDRS];
};

static void req_init(struct req *q)
{
	memset(q, 0, sizeof(*q));
	q->r.method = HTTP_GET;
	q->r.method_name = "GET";
	q->r.path = "/connection/websocket";
	q->r.query = "";
	q->r.body = "";
	q->r.http_major = 1;
	q->r.http_minor = 1;
	q->r.headers = q->h;
}

static void req_add(struct req *q, const char *name, const char *value)
{
	struct hd_header *h = &q->h[q->r.nheaders++];

	assert_true(q->r.nheaders <= MAX_HDRS);
	h->name = name;
	h->name_len = strlen(name);
	h->value = value;
	h->value_len = strlen(value);
}

/* A valid browser upgrade, without Sec-WebSocket-Protocol. */
static void req_valid(struct req *q)
{
	req_init(q);
	req_add(q, "host", "example.com");
	req_add(q, "upgrade", "websocket");
	req_add(q, "connection", "Upgrade");
	req_add(q, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
	req_add(q, "sec-websocket-version", "13");
}

/* Runs the handshake; returns its result, with the status and head. */
static int shake(struct req *q, int *status, struct hd_buf *head, struct hd_error *err)
{
	hd_buf_init(head, 1024);
	hd_error_clear(err);
	return hd_websocket_handshake(&q->r, head, status, err);
}

static void test_accept_key_rfc_example(void **state)
{
	char out[HD_WEBSOCKET_ACCEPT_LEN + 1];
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

	hd_websocket_accept_key(key, strlen(key), out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_handshake_ok(void **state)
{
	struct req q;
	struct hd_buf head;
	struct hd_error err;
	int status = 0;

	req_valid(&q);
	assert_true(hd_websocket_is_upgrade(&q.r));
	assert_int_equal(shake(&q, &status, &head, &err), 0);
	assert_int_equal(status, 101);
	assert_string_equal(head.data, "HTTP/1.1 101 Switching Protocols\r\n"
				       "Upgrade: websocket\r\n"
				       "Connection: Upgrade\r\n"
				       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
				       "\r\n");
	hd_buf_fini(&head);
}

static void test_handshake_tokens_any_case_and_list(void **state)
{
	struct req q;
	struct hd_buf head;
	struct hd_error err;
	int status = 0;

	/* Firefox: "keep-alive, Upgrade"; tokens in any case; the field sent
	 * twice counts as one list. */
	req_init(&q);
	req_add(&q, "host", "x");
	req_add(&q, "upgrade", "WebSocket");
	req_add(&q, "connection", "keep-alive");
	req_add(&q, "connection", "keep-alive ,  UPGRADE");
	req_add(&q, "sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==");
	req_add(&q, "sec-websocket-version", "13");
	assert_int_equal(shake(&q, &status, &head, &err), 0);
	assert_int_equal(status, 101);
	hd_buf_fini(&head);

	req_init(&q);
	req_add(&q, "upgrade", "h2c");
	assert_false(hd_websocket_is_upgrade(&q.r));
	req_add(&q, "upgrade", "foo/2, websocket");
	assert_true(hd_websocket_is_upgrade(&q.r));
	req_init(&q);
	req_add(&q, "upgrade", "websockets");
	assert_false(hd_websocket_is_upgrade(&q.r));
}

static void test_handshake_subprotocols(void **state)
{
	struct req q;
	struct hd_buf head;
	struct hd_error err;
	int status = 0;

	req_valid(&q);
	req_add(&q, "sec-websocket-protocol", "centrifuge-protobuf, centrifuge-json");
	assert_int_equal(shake(&q, &status, &head, &err), 0);
	assert_non_null(strstr(head.data, "\r\nSec-WebSocket-Protocol: centrifuge-json\r\n\r\n"));
	hd_buf_fini(&head);

	req_valid(&q);
	req_add(&q, "sec-websocket-protocol", "centrifuge-protobuf");
	assert_int_equal(shake(&q, &status, &head, &err), 0);
	assert_non_null(strstr(head.data, "\r\nSec-WebSocket-Protocol: centrifuge-protobuf\r\n\r\n"));
	assert_true(hd_websocket_offers(&q.r, "centrifuge-protobuf"));
	assert_false(hd_websocket_offers(&q.r, "centrifuge-json"));
	hd_buf_fini(&head);

	/* Subprotocol names are compared exactly. */
	req_valid(&q);
	req_add(&q, "sec-websocket-protocol", "Centrifuge-JSON");
	assert_int_equal(shake(&q, &status, &head, &err), 0);
	assert_null(strstr(head.data, "Sec-WebSocket-Protocol"));
	hd_buf_fini(&head);
}

/* Expects the handshake of q to fail with status and a message containing
 * what. */
static void refused(struct req *q, int want_status, const char *what)
{
	struct hd_buf head;
	struct hd_error err;
	int status = 0;

	assert_int_equal(shake(q, &status, &head, &err), HD_EINVAL);
	assert_int_equal(status, want_status);
	assert_int_equal(err.code, HD_EINVAL);
	assert_non_null(strstr(err.msg, what));
	assert_int_equal(head.len, 0);
	hd_buf_fini(&head);
}

/* q without its header name (the first one). */
static void req_drop(struct req *q, const char *name)
{
	for (size_t i = 0; i < q->r.nheaders; i++) {
		if (strcmp(q->h[i].name, name) == 0) {
			memmove(&q->h[i], &q->h[i + 1], (q->r.nheaders - i - 1) * sizeof(q->h[0]));
			q->r.nheaders--;
			return;
		}
	}
	fail();
}

static void test_handshake_refusals(void **state)
{
	struct req q;

	req_valid(&q);
	req_drop(&q, "sec-websocket-key");
	refused(&q, 400, "Sec-WebSocket-Key");

	const char *bad_keys[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",    /* 23 characters */
		"dGhlIHNhbXBsZSBub25jZQ===",  /* 25 */
		"dGhlIHNhbXBsZSBub25jZQAA",   /* 18 bytes */
		"dGhlIHNhbXBsZSBub25jZ*==",   /* not base64 */
		"dGhlIHNhbXBsZSBub25j",       /* 15 bytes */
	};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		req_valid(&q);
		req_drop(&q, "sec-websocket-key");
		req_add(&q, "sec-websocket-key", bad_keys[i]);
		refused(&q, 400, "base64 of 16 bytes");
	}
	req_valid(&q);
	req_add(&q, "sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==");
	refused(&q, 400, "more than one Sec-WebSocket-Key");

	req_valid(&q);
	req_drop(&q, "sec-websocket-version");
	req_add(&q, "sec-websocket-version", "8");
	refused(&q, 426, "13");
	req_valid(&q);
	req_drop(&q, "sec-websocket-version");
	refused(&q, 426, "13");

	req_valid(&q);
	q.r.method = HTTP_POST;
	q.r.method_name = "POST";
	refused(&q, 405, "GET");

	req_valid(&q);
	q.r.http_minor = 0;
	refused(&q, 400, "HTTP/1.1");

	req_valid(&q);
	req_drop(&q, "connection");
	req_add(&q, "connection", "keep-alive");
	refused(&q, 400, "Connection");
	req_valid(&q);
	req_drop(&q, "connection");
	req_add(&q, "connection", "upgrades");
	refused(&q, 400, "Connection");

	req_valid(&q);
	req_drop(&q, "upgrade");
	refused(&q, 400, "Upgrade");
}

/* ---- Encoding ------------------------------------------------------------ */

static void test_frame_header_lengths(void **state)
{
	uint8_t h[HD_WEBSOCKET_HEADER_MAX];

	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_TEXT, 0), 2);
	assert_memory_equal(h, "\x81\x00", 2);
	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_TEXT, 125), 2);
	assert_memory_equal(h, "\x81\x7d", 2);
	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_BINARY, 126), 4);
	assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_TEXT, 65535), 4);
	assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_TEXT, 65536), 10);
	assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
	assert_int_equal(hd_websocket_frame_header(h, HD_WEBSOCKET_PING, 0x0102030405060708ULL), 10);
	assert_memory_equal(h, "\x89\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
}

static void test_close_frame(void **state)
{
	uint8_t f[2 + HD_WEBSOCKET_CONTROL_MAX];
	char reason[200];

	assert_int_equal(hd_websocket_close_frame(f, 0, "ignored"), 2);
	assert_memory_equal(f, "\x88\x00", 2);
	assert_int_equal(hd_websocket_close_frame(f, 1000, NULL), 4);
	assert_memory_equal(f, "\x88\x02\x03\xe8", 4);
	assert_int_equal(hd_websocket_close_frame(f, 3501, "bad request"), 15);
	assert_memory_equal(f, "\x88\x0d\x0d\xad" "bad request", 15);

	/* 122 ASCII bytes and a 2-byte character: the cut at 123 would split
	 * it, so the reason stops before it. */
	memset(reason, 'a', 122);
	strcpy(reason + 122, "\xc3\xa9tail");
	assert_int_equal(hd_websocket_close_frame(f, 1001, reason), 4 + 122);
	assert_int_equal(f[1], 2 + 122);
	assert_memory_equal(f + 4, reason, 122);
	/* 123 ASCII bytes fit exactly. */
	memset(reason, 'b', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	assert_int_equal(hd_websocket_close_frame(f, 1001, reason), 2 + HD_WEBSOCKET_CONTROL_MAX);
	assert_int_equal(f[1], HD_WEBSOCKET_CONTROL_MAX);
}

/* ---- Decoding ------------------------------------------------------------ */

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 §5.7 */

/* Appends a client frame to b. len64 > 0 announces that length instead of
 * len (only the header and len bytes of payload are written). */
static void frame_ex(struct hd_buf *b, bool fin, uint8_t rsv, uint8_t opcode, bool mask,
		     const void *payload, size_t len, uint64_t len64, int len_bytes)
{
	uint64_t announced = len64 ? len64 : len;
	uint8_t h[14];
	size_t n = 0;

	h[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
	if (len_bytes == 0)
		len_bytes = announced < 126 ? 1 : announced <= 0xffff ? 2 : 8;
	if (len_bytes == 1) {
		h[n++] = (uint8_t)((mask ? 0x80 : 0) | announced);
	} else if (len_bytes == 2) {
		h[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
		h[n++] = (uint8_t)(announced >> 8);
		h[n++] = (uint8_t)announced;
	} else {
		h[n++] = (uint8_t)((mask ? 0x80 : 0) | 127);
		for (int i = 0; i < 8; i++)
			h[n++] = (uint8_t)(announced >> (56 - 8 * i));
	}
	if (mask) {
		memcpy(h + n, mask_key, 4);
		n += 4;
	}
	assert_int_equal(hd_buf_append(b, h, n), 0);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = ((const uint8_t *)payload)[i];
		if (mask)
			c ^= mask_key[i % 4];
		assert_int_equal(hd_buf_putc(b, (char)c), 0);
	}
}

static void frame(struct hd_buf *b, bool fin, uint8_t opcode, const void *payload, size_t len)
{
	frame_ex(b, fin, 0, opcode, true, payload, len, 0, 0);
}

static void frame_str(struct hd_buf *b, bool fin, uint8_t opcode, const char *s)
{
	frame(b, fin, opcode, s, strlen(s));
}

#define MAX_MSGS 16

/* What on_msg saw. */
struct seen {
	int n;
	int stop_after; /* on_msg returns 1 after this many (0: never) */
	struct {
		enum hd_websocket_opcode opcode;
		char *data;
		size_t len;
		uint16_t close_code;
	} m[MAX_MSGS];
};

static int on_msg(void *arg, const struct hd_websocket_msg *m)
{
	struct seen *s = arg;

	assert_true(s->n < MAX_MSGS);
	assert_non_null(m->data);
	s->m[s->n].opcode = m->opcode;
	s->m[s->n].data = malloc(m->len + 1);
	memcpy(s->m[s->n].data, m->data, m->len);
	s->m[s->n].data[m->len] = '\0';
	s->m[s->n].len = m->len;
	s->m[s->n].close_code = m->close_code;
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

static void seen_clear(struct seen *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->m[i].data);
	memset(s, 0, sizeof(*s)); /* stop_after too */
}

/*
 * Feeds b to a new decoder in pieces of step bytes (0: all at once) and
 * returns the first non-zero result, or 0. *reason gets the reason.
 */
static int decode(const struct hd_buf *b, size_t step, size_t max, struct seen *s,
		  const char **reason)
{
	struct hd_websocket_decoder *d = hd_websocket_decoder_new(max);
	size_t off = 0;
	int rc = 0;

	*reason = NULL;
	do {
		size_t n = step && b->len - off > step ? step : b->len - off;
		rc = hd_websocket_decoder_feed(d, b->data ? b->data + off : "", n, on_msg, s, reason);
		off += n;
	} while (rc == 0 && off < b->len);
	hd_websocket_decoder_free(d);
	return rc;
}

/* Decodes b whole, byte by byte and in 3- and 7-byte pieces; each must give
 * want (and, for an error, a reason) and the same messages. Returns the
 * messages of the whole feed in s. */
static void decode_all_ways(const struct hd_buf *b, size_t max, int want, struct seen *s)
{
	static const size_t steps[] = {1, 3, 7};
	const char *reason;
	int stop_after = s->stop_after;

	seen_clear(s);
	s->stop_after = stop_after;
	assert_int_equal(decode(b, 0, max, s, &reason), want);
	if (want > 1)
		assert_non_null(reason);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct seen t = {.stop_after = s->stop_after};
		assert_int_equal(decode(b, steps[i], max, &t, &reason), want);
		assert_int_equal(t.n, s->n);
		for (int k = 0; k < t.n; k++) {
			assert_int_equal(t.m[k].opcode, s->m[k].opcode);
			assert_int_equal(t.m[k].len, s->m[k].len);
			assert_memory_equal(t.m[k].data, s->m[k].data, t.m[k].len);
			assert_int_equal(t.m[k].close_code, s->m[k].close_code);
		}
		seen_clear(&t);
	}
}

static void test_decode_masked_text(void **state)
{
	struct hd_buf b;
	struct seen s = {0};

	hd_buf_init(&b, 1 << 20);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "Hello");
	/* RFC 6455 §5.7's masked "Hello". */
	assert_memory_equal(b.data, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
	frame_str(&b, true, HD_WEBSOCKET_BINARY, "");
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "h\xc3\xa9llo \xf0\x9f\x98\x80");
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.m[0].opcode, HD_WEBSOCKET_TEXT);
	assert_string_equal(s.m[0].data, "Hello");
	assert_int_equal(s.m[1].opcode, HD_WEBSOCKET_BINARY);
	assert_int_equal(s.m[1].len, 0);
	assert_string_equal(s.m[2].data, "h\xc3\xa9llo \xf0\x9f\x98\x80");
	seen_clear(&s);
	hd_buf_fini(&b);
}

static void test_decode_fragments_with_ping_between(void **state)
{
	struct hd_buf b;
	struct seen s = {0};

	hd_buf_init(&b, 1 << 20);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "frag");
	frame_str(&b, true, HD_WEBSOCKET_PING, "p1");
	frame_str(&b, false, HD_WEBSOCKET_CONT, "ment");
	frame_str(&b, false, HD_WEBSOCKET_CONT, "");
	frame_str(&b, true, HD_WEBSOCKET_PONG, "");
	frame_str(&b, true, HD_WEBSOCKET_CONT, "ed");
	frame(&b, false, HD_WEBSOCKET_BINARY, "\x00\xff", 2);
	frame(&b, true, HD_WEBSOCKET_CONT, "\x01", 1);
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.m[0].opcode, HD_WEBSOCKET_PING);
	assert_string_equal(s.m[0].data, "p1");
	assert_int_equal(s.m[1].opcode, HD_WEBSOCKET_PONG);
	assert_int_equal(s.m[1].len, 0);
	assert_int_equal(s.m[2].opcode, HD_WEBSOCKET_TEXT);
	assert_string_equal(s.m[2].data, "fragmented");
	assert_int_equal(s.m[3].opcode, HD_WEBSOCKET_BINARY);
	assert_int_equal(s.m[3].len, 3);
	assert_memory_equal(s.m[3].data, "\x00\xff\x01", 3);
	seen_clear(&s);
	hd_buf_fini(&b);
}

static void test_decode_big_message(void **state)
{
	struct hd_buf b;
	struct seen s = {0};
	size_t n = 70000; /* a 64-bit length, and more than wslay's 4 KiB buffer */
	char *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
	hd_buf_init(&b, 1 << 20);
	frame(&b, true, HD_WEBSOCKET_TEXT, p, n);
	frame(&b, false, HD_WEBSOCKET_BINARY, p, 300); /* a 16-bit length */
	frame(&b, true, HD_WEBSOCKET_CONT, p + 300, n - 300);
	decode_all_ways(&b, n, 0, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.m[0].len, n);
	assert_memory_equal(s.m[0].data, p, n);
	assert_int_equal(s.m[1].opcode, HD_WEBSOCKET_BINARY);
	assert_int_equal(s.m[1].len, n);
	assert_memory_equal(s.m[1].data, p, n);
	seen_clear(&s);
	hd_buf_fini(&b);
	free(p);
}

/* Expects b, decoded every way, to end with code after the messages seen. */
static void expect_close(struct hd_buf *b, size_t max, int code, int msgs_before)
{
	struct seen s = {0};

	decode_all_ways(b, max, code, &s);
	assert_int_equal(s.n, msgs_before);
	seen_clear(&s);
}

static void test_decode_unmasked(void **state)
{
	struct hd_buf b;

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "ok");
	frame_ex(&b, true, 0, HD_WEBSOCKET_TEXT, false, "x", 1, 0, 0);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 1);
	hd_buf_reset(&b);
	frame_ex(&b, true, 0, HD_WEBSOCKET_PING, false, "", 0, 0, 0);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_fini(&b);
}

static void test_decode_too_big(void **state)
{
	struct hd_buf b;
	char p[200];

	memset(p, 'x', sizeof(p));
	hd_buf_init(&b, 4096);
	/* One frame: exactly max passes, one byte more does not. */
	frame(&b, true, HD_WEBSOCKET_TEXT, p, 100);
	frame(&b, true, HD_WEBSOCKET_BINARY, p, 101);
	expect_close(&b, 100, HD_WEBSOCKET_CLOSE_TOO_BIG, 1);
	/* Fragments that add up past max. */
	hd_buf_reset(&b);
	frame(&b, false, HD_WEBSOCKET_TEXT, p, 60);
	frame(&b, false, HD_WEBSOCKET_CONT, p, 40);
	frame(&b, true, HD_WEBSOCKET_CONT, p, 1);
	expect_close(&b, 100, HD_WEBSOCKET_CLOSE_TOO_BIG, 0);
	/* A 64-bit length far past max is refused on its first payload byte. */
	hd_buf_reset(&b);
	frame_ex(&b, true, 0, HD_WEBSOCKET_BINARY, true, "x", 1, 1ULL << 40, 0);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_TOO_BIG, 0);
	hd_buf_fini(&b);
}

static void test_decode_bad_utf8(void **state)
{
	struct hd_buf b;
	struct seen s = {0};

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "bad \xc3\x28");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	/* Binary messages are not checked. */
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_BINARY, "\xc3\x28");
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 1);
	seen_clear(&s);
	/* A character split across fragments is fine... */
	hd_buf_reset(&b);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "caf\xc3");
	frame_str(&b, false, HD_WEBSOCKET_CONT, "");
	frame_str(&b, true, HD_WEBSOCKET_CONT, "\xa9!");
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.m[0].data, "caf\xc3\xa9!");
	seen_clear(&s);
	/* ...a broken one is not, nor one cut short by the end. */
	hd_buf_reset(&b);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "caf\xc3");
	frame_str(&b, true, HD_WEBSOCKET_CONT, "!");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	hd_buf_reset(&b);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "ok");
	frame_str(&b, true, HD_WEBSOCKET_CONT, "\xf0\x9f\x98");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	/* Surrogates and overlong forms are not UTF-8. */
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "\xed\xa0\x80");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "\xc0\xaf");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	hd_buf_fini(&b);
}

static void test_decode_control_rules(void **state)
{
	struct hd_buf b;
	char p[126];

	memset(p, 'p', sizeof(p));
	hd_buf_init(&b, 1024);
	/* 125 bytes is the most a control frame may carry. */
	frame(&b, true, HD_WEBSOCKET_PING, p, 125);
	frame(&b, true, HD_WEBSOCKET_PING, p, 126);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 1);
	hd_buf_reset(&b);
	frame(&b, false, HD_WEBSOCKET_PING, p, 1);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_reset(&b);
	frame(&b, false, HD_WEBSOCKET_CLOSE, "", 0);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_fini(&b);
}

static void test_decode_fragmentation_rules(void **state)
{
	struct hd_buf b;

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_CONT, "orphan");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "done");
	frame_str(&b, true, HD_WEBSOCKET_CONT, "orphan");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 1);
	hd_buf_reset(&b);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "open");
	frame_str(&b, true, HD_WEBSOCKET_BINARY, "new");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_reset(&b);
	frame_str(&b, false, HD_WEBSOCKET_TEXT, "open");
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "new");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_fini(&b);
}

static void test_decode_rsv_and_opcodes(void **state)
{
	struct hd_buf b;

	hd_buf_init(&b, 1024);
	for (uint8_t rsv = 1; rsv < 8; rsv++) {
		hd_buf_reset(&b);
		frame_ex(&b, true, rsv, HD_WEBSOCKET_TEXT, true, "x", 1, 0, 0);
		expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	}
	hd_buf_reset(&b);
	frame_ex(&b, true, 4, HD_WEBSOCKET_PING, true, "", 0, 0, 0);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	const uint8_t unknown[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf};
	for (size_t i = 0; i < sizeof(unknown); i++) {
		hd_buf_reset(&b);
		frame_str(&b, true, HD_WEBSOCKET_TEXT, "ok");
		frame_str(&b, true, unknown[i], "");
		expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 1);
	}
	hd_buf_fini(&b);
}

static void test_decode_lengths(void **state)
{
	struct hd_buf b;
	struct seen s = {0};
	char p[300];

	memset(p, 'L', sizeof(p));
	hd_buf_init(&b, 1 << 20);
	/* 126 and 65535 in the 16-bit form; lengths in a longer form than
	 * needed are refused (RFC 6455 §5.2: the minimal number of bytes). */
	frame(&b, true, HD_WEBSOCKET_BINARY, p, 126);
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.m[0].len, 126);
	seen_clear(&s);
	hd_buf_reset(&b);
	frame_ex(&b, true, 0, HD_WEBSOCKET_BINARY, true, p, 5, 0, 2);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_reset(&b);
	frame_ex(&b, true, 0, HD_WEBSOCKET_BINARY, true, p, 200, 0, 8);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	/* The top bit of a 64-bit length must be 0. */
	hd_buf_reset(&b);
	frame_ex(&b, true, 0, HD_WEBSOCKET_BINARY, true, "x", 1, 1ULL << 63, 8);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	hd_buf_fini(&b);
}

static void close_frame_of(struct hd_buf *b, uint16_t code, const char *reason, size_t n)
{
	char p[200];

	p[0] = (char)(code >> 8);
	p[1] = (char)code;
	memcpy(p + 2, reason, n);
	frame(b, true, HD_WEBSOCKET_CLOSE, p, 2 + n);
}

static void test_decode_close(void **state)
{
	struct hd_buf b;
	struct seen s = {.stop_after = 2};

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "bye");
	close_frame_of(&b, 1000, "see you", 7);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "after the close: dropped");
	decode_all_ways(&b, 0, 1, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.m[1].opcode, HD_WEBSOCKET_CLOSE);
	assert_int_equal(s.m[1].close_code, 1000);
	assert_string_equal(s.m[1].data, "see you");
	seen_clear(&s);

	/* No payload: code 0. */
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_CLOSE, "");
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.m[0].close_code, 0);
	assert_int_equal(s.m[0].len, 0);
	seen_clear(&s);

	const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014,
				 3000, 3501, 4000, 4999};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		hd_buf_reset(&b);
		close_frame_of(&b, good[i], "", 0);
		decode_all_ways(&b, 0, 0, &s);
		assert_int_equal(s.n, 1);
		assert_int_equal(s.m[0].close_code, good[i]);
		seen_clear(&s);
	}
	const uint16_t bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
				65535};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hd_buf_reset(&b);
		close_frame_of(&b, bad[i], "r", 1);
		expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	}
	/* One byte of payload. */
	hd_buf_reset(&b);
	frame_str(&b, true, HD_WEBSOCKET_CLOSE, "\x03");
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_PROTOCOL, 0);
	/* A reason that is not UTF-8. */
	hd_buf_reset(&b);
	close_frame_of(&b, 1000, "\xff", 1);
	expect_close(&b, 0, HD_WEBSOCKET_CLOSE_BAD_DATA, 0);
	/* 123 bytes of reason: the longest. */
	char r[123];
	memset(r, 'r', sizeof(r));
	hd_buf_reset(&b);
	close_frame_of(&b, 4001, r, sizeof(r));
	decode_all_ways(&b, 0, 0, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.m[0].len, 123);
	seen_clear(&s);
	hd_buf_fini(&b);
}

static void test_decode_stop_from_callback(void **state)
{
	struct hd_buf b;
	struct seen s = {.stop_after = 1};

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "one");
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "two");
	decode_all_ways(&b, 0, 1, &s);
	assert_int_equal(s.n, 1);
	seen_clear(&s);
	hd_buf_fini(&b);
}

static void test_decode_partial_frame_kept(void **state)
{
	struct hd_buf b;
	struct seen s = {0};
	struct hd_websocket_decoder *d = hd_websocket_decoder_new(0);
	const char *reason;

	hd_buf_init(&b, 1024);
	frame_str(&b, true, HD_WEBSOCKET_TEXT, "split here");
	/* Nothing is delivered until the last byte; an empty feed is fine. */
	assert_int_equal(hd_websocket_decoder_feed(d, b.data, b.len - 1, on_msg, &s, &reason), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(hd_websocket_decoder_feed(d, "", 0, on_msg, &s, &reason), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(hd_websocket_decoder_feed(d, b.data + b.len - 1, 1, on_msg, &s, &reason), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.m[0].data, "split here");
	seen_clear(&s);
	hd_websocket_decoder_free(d);
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key_rfc_example),
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_handshake_tokens_any_case_and_list),
		cmocka_unit_test(test_handshake_subprotocols),
		cmocka_unit_test(test_handshake_refusals),
		cmocka_unit_test(test_frame_header_lengths),
		cmocka_unit_test(test_close_frame),
		cmocka_unit_test(test_decode_masked_text),
		cmocka_unit_test(test_decode_fragments_with_ping_between),
		cmocka_unit_test(test_decode_big_message),
		cmocka_unit_test(test_decode_unmasked),
		cmocka_unit_test(test_decode_too_big),
		cmocka_unit_test(test_decode_bad_utf8),
		cmocka_unit_test(test_decode_control_rules),
		cmocka_unit_test(test_decode_fragmentation_rules),
		cmocka_unit_test(test_decode_rsv_and_opcodes),
		cmocka_unit_test(test_decode_lengths),
		cmocka_unit_test(test_decode_close),
		cmocka_unit_test(test_decode_stop_from_callback),
		cmocka_unit_test(test_decode_partial_frame_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
