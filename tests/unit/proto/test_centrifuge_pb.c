/*
 * test_centrifuge_pb — unit tests of src/proto/centrifuge_pb.c: decoding
 * the exact frames npm centrifuge 5.8's protobuf build sends (captured by
 * tests/js/pb_fixtures.js), connect.subs maps, unknown fields, every
 * refusal (cut short, wire types, NUL and non-UTF-8 strings, too many
 * subs, too long), the frame iterator, and the encoders byte for byte
 * (field numbers of client.proto, omissions, the length prefix, the
 * buffer ceiling).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "proto/centrifuge_pb.h"

static struct hd_centrifuge_command cmd;
static struct hd_error err;

/* hex → bytes in a new buffer; *n its length. */
static uint8_t *unhex(const char *hex, size_t *n)
{
	size_t k = strlen(hex) / 2;
	uint8_t *out = hd_malloc(k + 1);
	for (size_t i = 0; i < k; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	*n = k;
	return out;
}

/* bytes → hex, in a static buffer. */
static const char *tohex(const char *p, size_t n)
{
	static char out[4096];
	assert_true(2 * n < sizeof(out));
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", (unsigned char)p[i]);
	out[2 * n] = '\0';
	return out;
}

/* Decodes the one delimited Command of frame hex and expects success. */
static const struct hd_centrifuge_command *frame_ok(const char *hex)
{
	size_t n, pos = 0, mn;
	const uint8_t *m;
	uint8_t *f = unhex(hex, &n);
	hd_centrifuge_command_fini(&cmd);
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &m, &mn), 1);
	assert_int_equal(pos, n);
	int rc = hd_centrifuge_pb_decode(m, mn, &cmd, &err);
	if (rc)
		fail_msg("refused (%d): %s", rc, err.msg);
	free(f);
	return &cmd;
}

/* Decodes the undelimited Command hex and expects the refusal rc. */
static void msg_bad(const char *hex, int rc, const char *needle)
{
	size_t n;
	uint8_t *m = unhex(hex, &n);
	hd_centrifuge_command_fini(&cmd);
	assert_int_equal(hd_centrifuge_pb_decode(m, n, &cmd, &err), rc);
	assert_int_equal(err.code, rc);
	if (!strstr(err.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
	assert_null(cmd.mem);
	free(m);
}

static const struct hd_centrifuge_command *msg_ok(const char *hex)
{
	size_t n;
	uint8_t *m = unhex(hex, &n);
	hd_centrifuge_command_fini(&cmd);
	int rc = hd_centrifuge_pb_decode(m, n, &cmd, &err);
	if (rc)
		fail_msg("refused (%d): %s", rc, err.msg);
	free(m);
	return &cmd;
}

static int teardown(void **state)
{
	(void)state;
	hd_centrifuge_command_fini(&cmd);
	return 0;
}

/* ---- the SDK's own frames ---- */

static void test_sdk_connect(void **state)
{
	(void)state;
	const struct hd_centrifuge_command *c =
		frame_ok("16080122120a03746f6b12077b2261223a317d22026678");
	assert_int_equal(c->id, 1);
	assert_int_equal(c->method, HD_CENTRIFUGE_CONNECT);
	assert_string_equal(c->token, "tok");
	assert_string_equal(c->name, "fx");
	assert_string_equal(c->version, "");
	assert_int_equal(c->data.n, 7);
	assert_memory_equal(c->data.p, "{\"a\":1}", 7);
	assert_int_equal(c->nsubs, 0);
}

static void test_sdk_subscribe(void **state)
{
	(void)state;
	const struct hd_centrifuge_command *c =
		frame_ok("1608022a120a046e657773180132026570380558017001");
	assert_int_equal(c->id, 2);
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_string_equal(c->sub.channel, "news");
	assert_true(c->sub.recover);
	assert_string_equal(c->sub.epoch, "ep");
	assert_int_equal(c->sub.offset, 5);
	assert_true(c->sub.join_leave);
	assert_int_equal(c->sub.flag, 1);
	assert_null(c->sub.data.p);
}

static void test_sdk_publish_history_presence_rpc_unsubscribe(void **state)
{
	(void)state;
	const struct hd_centrifuge_command *c = frame_ok("1508033a110a046e65777312097b2278223a2279227d");
	assert_int_equal(c->method, HD_CENTRIFUGE_PUBLISH);
	assert_int_equal(c->id, 3);
	assert_string_equal(c->sub.channel, "news");
	assert_int_equal(c->data.n, 9);
	assert_memory_equal(c->data.p, "{\"x\":\"y\"}", 9);

	c = frame_ok("16080452120a046e657773380a42060803120265334801");
	assert_int_equal(c->method, HD_CENTRIFUGE_HISTORY);
	assert_string_equal(c->sub.channel, "news");
	assert_int_equal(c->limit, 10);
	assert_true(c->has_since);
	assert_int_equal(c->since_offset, 3);
	assert_string_equal(c->since_epoch, "e3");
	assert_true(c->reverse);

	c = frame_ok("0a080542060a046e657773");
	assert_int_equal(c->method, HD_CENTRIFUGE_PRESENCE);
	assert_string_equal(c->sub.channel, "news");
	c = frame_ok("0a08064a060a046e657773");
	assert_int_equal(c->method, HD_CENTRIFUGE_PRESENCE_STATS);
	assert_int_equal(c->id, 6);

	c = frame_ok("0b08076a070a027b7d12016d");
	assert_int_equal(c->method, HD_CENTRIFUGE_RPC);
	assert_string_equal(c->rpc_method, "m");
	assert_int_equal(c->data.n, 2);

	c = frame_ok("0a080832060a046e657773");
	assert_int_equal(c->method, HD_CENTRIFUGE_UNSUBSCRIBE);
	assert_int_equal(c->id, 8);
	assert_string_equal(c->sub.channel, "news");
}

/* ---- hand-made messages ---- */

static void test_pong_unknown_and_subs(void **state)
{
	(void)state;
	const struct hd_centrifuge_command *c = msg_ok("");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	assert_int_equal(c->id, 0);
	c = msg_ok("0809");
	assert_int_equal(c->method, HD_CENTRIFUGE_UNKNOWN);
	assert_int_equal(c->id, 9);
	/* ping with unknown fields of every wire type: 99 varint, 98 fixed64,
	 * 97 fixed32, 96 bytes */
	c = msg_ok("08025a00" "98060f" "91060102030405060708" "8d0601020304" "82060161");
	assert_int_equal(c->method, HD_CENTRIFUGE_PING);
	/* connect.subs {"a": {recover, epoch "e", offset 9}} */
	c = msg_ok("0801220e1a0c0a0161120718013201653809");
	assert_int_equal(c->nsubs, 1);
	assert_string_equal(c->subs[0].channel, "a");
	assert_true(c->subs[0].recover);
	assert_string_equal(c->subs[0].epoch, "e");
	assert_int_equal(c->subs[0].offset, 9);
	/* the first method stays: connect, then publish */
	c = msg_ok("080122003a030a0162");
	assert_int_equal(c->method, HD_CENTRIFUGE_CONNECT);
	/* sub_refresh and refresh tokens, send data */
	c = msg_ok("08017a060a0163120174");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUB_REFRESH);
	assert_string_equal(c->sub.channel, "c");
	assert_string_equal(c->token, "t");
	c = msg_ok("080172030a0174");
	assert_int_equal(c->method, HD_CENTRIFUGE_REFRESH);
	assert_string_equal(c->token, "t");
	c = msg_ok("6203" "0a017b");
	assert_int_equal(c->method, HD_CENTRIFUGE_SEND);
	assert_int_equal(c->data.n, 1);
	/* an offset of 2^64 - 1 (ten varint bytes) */
	c = msg_ok("08012a0b38ffffffffffffffffff01");
	assert_int_equal(c->sub.offset, UINT64_MAX);
}

static void test_refusals(void **state)
{
	(void)state;
	msg_bad("08", HD_EINVAL, "bad varint");
	msg_bad("0801" "2a05" "0a", HD_EINVAL, "cut short");
	msg_bad("00", HD_EINVAL, "bad field tag");
	msg_bad("0b", HD_EINVAL, "wire type 3");
	msg_bad("0e", HD_EINVAL, "wire type 6");
	msg_bad("0a0131", HD_EINVAL, "id has the wrong wire type");
	msg_bad("2a01", HD_EINVAL, "cut short");
	msg_bad("2001", HD_EINVAL, "connect must be a message");
	msg_bad("08808080801f", HD_EINVAL, "id must be");
	msg_bad("08012a030a0100", HD_EINVAL, "not UTF-8");
	msg_bad("08012a030a01ff", HD_EINVAL, "not UTF-8");
	msg_bad("08012a020801", HD_EINVAL, "channel has the wrong wire type");
	msg_bad("080152020801", HD_EINVAL, "history.channel has the wrong wire type");
}

static void test_refusal_limits(void **state)
{
	(void)state;
	/* 65 connect.subs entries of {key "a"} */
	size_t n = 0;
	uint8_t *m = hd_malloc(1024);
	m[n++] = 0x08;
	m[n++] = 0x01;
	m[n++] = 0x22;
	m[n++] = 65 * 5 > 127 ? 0 : 0; /* patched below */
	size_t lenpos = n - 1;
	m[n++] = 0; /* room for a two-byte length */
	size_t start = n;
	for (int i = 0; i < HD_CENTRIFUGE_SUBS_MAX + 1; i++) {
		m[n++] = 0x1a;
		m[n++] = 3;
		m[n++] = 0x0a;
		m[n++] = 1;
		m[n++] = 'a';
	}
	size_t body = n - start;
	m[lenpos] = (uint8_t)(0x80 | (body & 0x7f));
	m[lenpos + 1] = (uint8_t)(body >> 7);
	hd_centrifuge_command_fini(&cmd);
	assert_int_equal(hd_centrifuge_pb_decode(m, n, &cmd, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "more than 64"));
	/* exactly 64 pass */
	body -= 5;
	m[lenpos] = (uint8_t)(0x80 | (body & 0x7f));
	m[lenpos + 1] = (uint8_t)(body >> 7);
	assert_int_equal(hd_centrifuge_pb_decode(m, n - 5, &cmd, &err), 0);
	assert_int_equal(cmd.nsubs, HD_CENTRIFUGE_SUBS_MAX);
	free(m);

	uint8_t *big = calloc(1, HD_CENTRIFUGE_LINE_MAX + 1);
	hd_centrifuge_command_fini(&cmd);
	assert_int_equal(hd_centrifuge_pb_decode(big, HD_CENTRIFUGE_LINE_MAX + 1, &cmd, &err), HD_ETOOBIG);
	free(big);
}

static void test_frame_iterator(void **state)
{
	(void)state;
	/* two commands and a pong in one frame */
	size_t n, pos = 0, mn;
	const uint8_t *msg;
	uint8_t *f = unhex("0a080542060a046e657773" "00" "0408025a00", &n);
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), 1);
	assert_int_equal(mn, 10);
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), 1);
	assert_int_equal(mn, 0);
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), 1);
	assert_int_equal(mn, 4);
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), 0);
	free(f);
	/* a prefix past the end, a cut varint, one over the line limit */
	f = unhex("0501", &n);
	pos = 0;
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), HD_EINVAL);
	free(f);
	f = unhex("80", &n);
	pos = 0;
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), HD_EINVAL);
	free(f);
	f = unhex("818004", &n); /* 65537 */
	pos = 0;
	assert_int_equal(hd_centrifuge_pb_next(f, n, &pos, &msg, &mn), HD_ETOOBIG);
	free(f);
}

/* ---- encoders ---- */

#define EXPECT(b, hex)                                   \
	do {                                             \
		assert_string_equal(tohex((b)->data, (b)->len), hex); \
		hd_buf_reset(b);                         \
	} while (0)

static void test_encoders(void **state)
{
	(void)state;
	struct hd_buf b;
	hd_buf_init(&b, 1 << 20);
	assert_int_equal(hd_centrifuge_pb_reply_error(&b, 3, 107, "bad", false), 0);
	EXPECT(&b, "0b08031207086b1203626164");
	assert_int_equal(hd_centrifuge_pb_reply_empty(&b, 5, HD_CENTRIFUGE_PUBLISH), 0);
	EXPECT(&b, "0408054200");
	assert_int_equal(hd_centrifuge_pb_reply_empty(&b, 0, HD_CENTRIFUGE_PONG), 0);
	EXPECT(&b, "00");
	assert_int_equal(hd_centrifuge_pb_reply_empty(&b, 9, HD_CENTRIFUGE_SUB_REFRESH), 0);
	EXPECT(&b, "0408097a00");
	struct hd_centrifuge_pub pub = {.data = "{}", .len = 2, .offset = 7};
	assert_int_equal(hd_centrifuge_pb_push_pub(&b, "ch", &pub), 0);
	EXPECT(&b, "0e220c12026368220622027b7d3007");
	assert_int_equal(hd_centrifuge_pb_reply_presence_stats(&b, 2, 3, 1), 0);
	EXPECT(&b, "080802520408031001");
	assert_int_equal(hd_centrifuge_pb_push_disconnect(&b, 3501, "bad request", false), 0);
	EXPECT(&b, "1422125a1008ad1b120b62616420726571756573" "74");
	struct hd_centrifuge_client_info info = {.client = "c1", .user = "u"};
	assert_int_equal(hd_centrifuge_pb_push_join(&b, "ch", &info), 0);
	/* Push{channel "ch", join{info{user "u", client "c1"}}} */
	EXPECT(&b, "11220f120263682a090a070a0175120263" "31");
	assert_int_equal(hd_centrifuge_pb_reply_presence(&b, 4, &info, 1), 0);
	/* presence map entry {key "c1", value {user "u", client "c1"}} */
	EXPECT(&b, "1308044a0f" "0a0d0a0263311207" "0a0175120263" "31");
	/* conn_info 3: the JSON text's bytes. */
	struct hd_centrifuge_client_info with = {.client = "c1", .user = "u", .conn_info = "{}",
						 .conn_info_len = 2};
	assert_int_equal(hd_centrifuge_pb_push_join(&b, "ch", &with), 0);
	EXPECT(&b, "152213120263682a0d0a0b0a0175120263" "31" "1a027b7d");
	/* chan_info 4 after it. */
	with.chan_info = "[]";
	with.chan_info_len = 2;
	assert_int_equal(hd_centrifuge_pb_push_join(&b, "ch", &with), 0);
	EXPECT(&b, "19" "2217" "12026368" "2a11" "0a0f" "0a0175" "120263" "31" "1a027b7d" "22025b5d");
	/* Push.refresh 12: Refresh{expires 1, ttl 2}; empty when it no longer expires. */
	assert_int_equal(hd_centrifuge_pb_push_refresh(&b, true, 5), 0);
	EXPECT(&b, "08" "2206" "6204" "0801" "1005");
	assert_int_equal(hd_centrifuge_pb_push_refresh(&b, false, 0), 0);
	EXPECT(&b, "04" "2202" "6200");
	struct hd_centrifuge_sub_result sr = {
		.recoverable = true, .positioned = true, .epoch = "ep", .offset = 2,
		.recovered = true, .was_recovering = true, .pubs = &pub, .npubs = 1,
	};
	assert_int_equal(hd_centrifuge_pb_reply_subscribe(&b, 6, &sr), 0);
	/* 18 01 | 32 02 "ep" | 3a 06 <pub> | 40 01 | 48 02 | 50 01 | 60 01 */
	EXPECT(&b, "1a08063216" "1801" "32026570" "3a0622027b7d3007" "4001" "4802" "5001" "6001");
	struct hd_centrifuge_connect_result cr = {.client = "c", .version = "v", .ping = 25, .pong = true,
						  .subs = &sr, .nsubs = 0};
	assert_int_equal(hd_centrifuge_pb_reply_connect(&b, 1, &cr), 0);
	EXPECT(&b, "0e08012a0a0a0163120176381940" "01");
	hd_buf_fini(&b);
}

/* A payload publication: data is the event's data member, attributes are
 * tags (strings decoded, numbers as text), specversion/topic/offset none. */
static void test_payload_publication(void **state)
{
	(void)state;
	static const char ev[] = "{\"specversion\":\"1.0\",\"id\":\"a\\\"b\",\"source\":\"/s\",\"type\":\"t\","
				 "\"data\":{\"x\":1},\"topic\":\"ch\",\"offset\":3,\"n\":5}";
	struct hd_centrifuge_pub pub = {.data = ev, .len = sizeof(ev) - 1, .offset = 7, .payload = true};
	struct hd_buf b;
	hd_buf_init(&b, 1 << 20);
	assert_int_equal(hd_centrifuge_pb_push_pub(&b, "ch", &pub), 0);
	EXPECT(&b, "3f223d1202636822" "37" "22077b2278223a317d" "3007"
		   "3a090a026964120361" "2262"
		   "3a0c0a06736f7572636512022f73"
		   "3a090a04747970651201" "74"
		   "3a060a016e120135");
	/* The same publication in a history reply. */
	assert_int_equal(hd_centrifuge_pb_reply_history(&b, 2, &pub, 1, "", 0), 0);
	EXPECT(&b, "3d08025a39" "0a37" "22077b2278223a317d" "3007"
		   "3a090a026964120361" "2262"
		   "3a0c0a06736f7572636512022f73"
		   "3a090a04747970651201" "74"
		   "3a060a016e120135");
	/* base64 data: the string's JSON text, and the tag data_base64. */
	static const char bin[] = "{\"data_base64\":\"AAE=\"}";
	struct hd_centrifuge_pub pb = {.data = bin, .len = sizeof(bin) - 1, .offset = 1, .payload = true};
	assert_int_equal(hd_centrifuge_pb_push_pub(&b, "c", &pb), 0);
	EXPECT(&b, "26222412016322" "1f" "220622414145" "3d22" "3001"
		   "3a130a0b646174615f62617365363412" "0474727565");
	/* Delta compression: the delta's bytes as data, and delta (8) set. */
	static const char one[] = "{\"data\":1}";
	struct hd_centrifuge_pub d = {.data = one, .len = sizeof(one) - 1, .offset = 2, .payload = true,
				      .as_string = true, .delta = "2\n", .delta_len = 2};
	assert_int_equal(hd_centrifuge_pb_push_pub(&b, "c", &d), 0);
	EXPECT(&b, "0f220d120163220822" "02320a" "30024001");
	hd_buf_fini(&b);
}

/* The EmulationRequest the SDK POSTs: node 1, session 2, data 3. */
static void test_emulation_request(void **state)
{
	(void)state;
	size_t n;
	struct hd_centrifuge_pb_emulation em;
	uint8_t *m = unhex("0a016e" "120273" "31" "1a03" "020801" "2001", &n);
	assert_int_equal(hd_centrifuge_pb_emulation_decode(m, n, &em, &err), 0);
	assert_int_equal(em.session_len, 2);
	assert_memory_equal(em.session, "s1", 2);
	assert_int_equal(em.data_len, 3);
	assert_memory_equal(em.data, "\x02\x08\x01", 3);
	free(m);
	m = unhex("1001", &n);
	assert_int_equal(hd_centrifuge_pb_emulation_decode(m, n, &em, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "session"));
	free(m);
}

static void test_encoders_respect_the_ceiling(void **state)
{
	(void)state;
	struct hd_buf b;
	char data[100];
	memset(data, 'x', sizeof(data));
	struct hd_centrifuge_pub pub = {.data = data, .len = sizeof(data), .offset = 1};
	hd_buf_init(&b, 64);
	assert_int_equal(hd_centrifuge_pb_reply_empty(&b, 1, HD_CENTRIFUGE_PING), 0);
	size_t len = b.len;
	assert_int_equal(hd_centrifuge_pb_push_pub(&b, "ch", &pub), HD_ETOOBIG);
	assert_int_equal(b.len, len);
	EXPECT(&b, "0408016200");
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sdk_connect, teardown),
		cmocka_unit_test_teardown(test_sdk_subscribe, teardown),
		cmocka_unit_test_teardown(test_sdk_publish_history_presence_rpc_unsubscribe, teardown),
		cmocka_unit_test_teardown(test_pong_unknown_and_subs, teardown),
		cmocka_unit_test_teardown(test_refusals, teardown),
		cmocka_unit_test_teardown(test_refusal_limits, teardown),
		cmocka_unit_test(test_frame_iterator),
		cmocka_unit_test(test_encoders),
		cmocka_unit_test(test_payload_publication),
		cmocka_unit_test(test_emulation_request),
		cmocka_unit_test(test_encoders_respect_the_ceiling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
