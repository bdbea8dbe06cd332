/*
 * test_centrifuge — unit tests of src/proto/centrifuge.c: decoding every
 * method, including the exact lines centrifuge-js 5 sends
 * (protocols.md §1.3), member order, unknown and null members, every type
 * and range rule with the message the user sees, escapes, the limits
 * (line length, subs, members, nesting), the frame line iterator, and every
 * encoder byte for byte, with its omissions and escaping. Every encoder
 * output is also read back with jansson to prove it is well-formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "proto/centrifuge.h"

/* ---- helpers ---- */

/* A publication of the JSON literal s at offset off. */
#define PUB(s, off) {(s), sizeof(s) - 1, (off), false, false, NULL, 0}
#define PUB_PAYLOAD(s, off) {(s), sizeof(s) - 1, (off), true, false, NULL, 0}

static struct hd_centrifuge_command cmd;
static struct hd_error err;

/* Decodes line and expects success; returns &cmd (fini'd by the next call). */
static const struct hd_centrifuge_command *ok(const char *line)
{
	hd_centrifuge_command_fini(&cmd);
	memset(&err, 0x55, sizeof(err)); /* prove the decoder sets it */
	int rc = hd_centrifuge_decode(line, strlen(line), &cmd, &err);
	if (rc != 0)
		fail_msg("refused (%d): %s\nline: %s", rc, err.msg, line);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
	return &cmd;
}

/* Decodes line[0, n) and expects code with exactly msg. */
static void bad_n(const char *line, size_t n, int code, const char *msg)
{
	hd_centrifuge_command_fini(&cmd);
	memset(&err, 0x55, sizeof(err));
	int rc = hd_centrifuge_decode(line, n, &cmd, &err);
	if (rc == 0)
		fail_msg("accepted: %.*s\nexpected: %s", (int)n, line, msg);
	assert_int_equal(rc, code);
	assert_int_equal(err.code, code);
	if (msg)
		assert_string_equal(err.msg, msg);
	/* A refused command is left empty. */
	assert_null(cmd.mem);
	assert_null(cmd.subs);
	assert_int_equal(cmd.nsubs, 0);
	assert_string_equal(cmd.sub.channel, "");
	assert_string_equal(cmd.token, "");
}

static void bad(const char *line, const char *msg)
{
	bad_n(line, strlen(line), HD_EINVAL, msg);
}

static void raw_is(struct hd_centrifuge_raw r, const char *text)
{
	if (!text) {
		assert_null(r.p);
		return;
	}
	assert_non_null(r.p);
	assert_int_equal(r.n, strlen(text));
	assert_memory_equal(r.p, text, r.n);
}

static int teardown(void **state)
{
	hd_centrifuge_command_fini(&cmd);
	return 0;
}

/* ---- decoding: what centrifuge-js 5 sends ---- */

static void test_decode_js_connect(void **state)
{
	const struct hd_centrifuge_command *c =
		ok("{\"connect\":{\"token\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig\","
		   "\"name\":\"js\"},\"id\":1}");
	assert_int_equal(c->method, HD_CENTRIFUGE_CONNECT);
	assert_int_equal(c->id, 1);
	assert_string_equal(c->token, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig");
	assert_string_equal(c->name, "js");
	assert_string_equal(c->version, "");
	assert_int_equal(c->nsubs, 0);
	raw_is(c->data, NULL);

	c = ok("{\"connect\":{\"token\":\"t\",\"data\":{\"a\" : [1, 2]},\"name\":\"js\","
	       "\"version\":\"5.7.4\",\"headers\":{\"x\":\"y\"},\"flag\":3},\"id\":4294967295}");
	assert_int_equal(c->id, 4294967295u);
	assert_string_equal(c->version, "5.7.4");
	raw_is(c->data, "{\"a\":[1,2]}");
}

static void test_decode_js_connect_subs(void **state)
{
	const struct hd_centrifuge_command *c =
		ok("{\"connect\":{\"token\":\"t\",\"subs\":{"
		   "\"user:42\":{\"recover\":true,\"offset\":7,\"epoch\":\"e1\"},"
		   "\"rides:981\":{},"
		   "\"x\":{\"channel\":\"ignored\",\"token\":\"st\",\"flag\":1}}},\"id\":1}");
	assert_int_equal(c->method, HD_CENTRIFUGE_CONNECT);
	assert_int_equal(c->nsubs, 3);
	assert_string_equal(c->subs[0].channel, "user:42");
	assert_true(c->subs[0].recover);
	assert_int_equal(c->subs[0].offset, 7);
	assert_string_equal(c->subs[0].epoch, "e1");
	assert_string_equal(c->subs[0].token, "");
	assert_string_equal(c->subs[1].channel, "rides:981");
	assert_false(c->subs[1].recover);
	assert_int_equal(c->subs[1].offset, 0);
	assert_string_equal(c->subs[1].epoch, "");
	/* The map key is the channel; a channel member inside is not read. */
	assert_string_equal(c->subs[2].channel, "x");
	assert_string_equal(c->subs[2].token, "st");
	assert_int_equal(c->subs[2].flag, 1);
	/* The subscribe request of the command stays empty. */
	assert_string_equal(c->sub.channel, "");

	c = ok("{\"connect\":{\"subs\":{}},\"id\":2}");
	assert_int_equal(c->nsubs, 0);
}

static void test_decode_js_subscribe(void **state)
{
	const struct hd_centrifuge_command *c =
		ok("{\"subscribe\":{\"channel\":\"rides:981\",\"flag\":1},\"id\":2}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_int_equal(c->id, 2);
	assert_string_equal(c->sub.channel, "rides:981");
	assert_int_equal(c->sub.flag, 1);
	assert_false(c->sub.recover);
	assert_int_equal(c->sub.offset, 0);
	assert_string_equal(c->sub.epoch, "");
	assert_string_equal(c->sub.delta, "");
	assert_int_equal(c->sub.type, 0);

	/* A shared-poll subscription with delta, and getState's flag. */
	c = ok("{\"subscribe\":{\"channel\":\"p\",\"type\":4,\"delta\":\"fossil\",\"flag\":3},\"id\":3}");
	assert_int_equal(c->sub.type, 4);
	assert_string_equal(c->sub.delta, "fossil");
	assert_true(c->sub.flag & HD_CENTRIFUGE_SUB_FLAG_REJECT_UNRECOVERED);

	/* The resubscribe with recovery. */
	c = ok("{\"subscribe\":{\"channel\":\"c\",\"recover\":true,\"offset\":42,"
	       "\"epoch\":\"k3x9\",\"flag\":1},\"id\":7}");
	assert_string_equal(c->sub.channel, "c");
	assert_true(c->sub.recover);
	assert_int_equal(c->sub.offset, 42);
	assert_string_equal(c->sub.epoch, "k3x9");
	assert_int_equal(c->sub.flag, 1);
	assert_int_equal(c->id, 7);

	/* Every member of SubscribeRequest herald reads, and some it does not. */
	c = ok("{\"id\":3,\"subscribe\":{\"channel\":\"c\",\"token\":\"st\",\"recover\":false,"
	       "\"epoch\":\"e\",\"offset\":1,\"data\":\"hello\",\"positioned\":true,"
	       "\"recoverable\":true,\"join_leave\":true,\"delta\":\"fossil\","
	       "\"tf\":{\"op\":1},\"flag\":3,\"type\":0}}");
	assert_string_equal(c->sub.token, "st");
	assert_true(c->sub.positioned);
	assert_true(c->sub.recoverable);
	assert_true(c->sub.join_leave);
	assert_int_equal(c->sub.flag, 3);
	raw_is(c->sub.data, "\"hello\"");
}

static void test_decode_js_history_publish_refresh_pong(void **state)
{
	const struct hd_centrifuge_command *c =
		ok("{\"history\":{\"channel\":\"c\",\"limit\":10,\"since\":{\"offset\":5,"
		   "\"epoch\":\"e\"},\"reverse\":true},\"id\":8}");
	assert_int_equal(c->method, HD_CENTRIFUGE_HISTORY);
	assert_string_equal(c->sub.channel, "c");
	assert_int_equal(c->limit, 10);
	assert_true(c->has_since);
	assert_int_equal(c->since_offset, 5);
	assert_string_equal(c->since_epoch, "e");
	assert_true(c->reverse);

	c = ok("{\"history\":{\"channel\":\"c\",\"limit\":-1},\"id\":9}");
	assert_int_equal(c->limit, -1);
	assert_false(c->has_since);
	assert_false(c->reverse);
	assert_string_equal(c->since_epoch, "");

	c = ok("{\"history\":{\"channel\":\"c\",\"since\":{}},\"id\":9}");
	assert_true(c->has_since);
	assert_int_equal(c->since_offset, 0);

	c = ok("{\"publish\":{\"channel\":\"chat\",\"data\":{\"text\":\"hi there\",\"n\":[1, "
	       "2.50, {\"x\" : null}]}},\"id\":5}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PUBLISH);
	assert_string_equal(c->sub.channel, "chat");
	raw_is(c->data, "{\"text\":\"hi there\",\"n\":[1,2.50,{\"x\":null}]}");

	c = ok("{\"refresh\":{\"token\":\"new.jwt.token\"},\"id\":11}");
	assert_int_equal(c->method, HD_CENTRIFUGE_REFRESH);
	assert_string_equal(c->token, "new.jwt.token");

	c = ok("{}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	assert_int_equal(c->id, 0);
	c = ok("  {  }\r");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
}

static void test_decode_other_methods(void **state)
{
	const struct hd_centrifuge_command *c = ok("{\"id\":3,\"unsubscribe\":{\"channel\":\"a\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_UNSUBSCRIBE);
	assert_string_equal(c->sub.channel, "a");

	c = ok("{\"id\":4,\"presence\":{\"channel\":\"p\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PRESENCE);
	assert_string_equal(c->sub.channel, "p");

	c = ok("{\"id\":5,\"presence_stats\":{\"channel\":\"ps\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PRESENCE_STATS);
	assert_string_equal(c->sub.channel, "ps");

	c = ok("{\"id\":6,\"ping\":{}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PING);

	c = ok("{\"send\":{\"data\":[1,true]}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SEND);
	assert_int_equal(c->id, 0);
	raw_is(c->data, "[1,true]");

	c = ok("{\"id\":7,\"rpc\":{\"method\":\"sum\",\"data\":{\"a\":1}}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_RPC);
	assert_string_equal(c->rpc_method, "sum");
	raw_is(c->data, "{\"a\":1}");

	c = ok("{\"id\":8,\"sub_refresh\":{\"channel\":\"c\",\"token\":\"t\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUB_REFRESH);
	assert_string_equal(c->sub.channel, "c");
	assert_string_equal(c->token, "t");

	/* An id with no known method is UNKNOWN (the session answers 104). */
	c = ok("{\"id\":9}");
	assert_int_equal(c->method, HD_CENTRIFUGE_UNKNOWN);
	c = ok("{\"id\":9,\"teleport\":{\"to\":\"mars\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_UNKNOWN);
	/* No id and no known method is a pong. */
	c = ok("{\"teleport\":{}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	c = ok("{\"id\":0}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	/* A non-pong command with id 0 is left to the session. */
	c = ok("{\"id\":0,\"subscribe\":{\"channel\":\"c\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_int_equal(c->id, 0);
}

/* ---- decoding: members ---- */

static void test_decode_member_order_unknown_and_null(void **state)
{
	/* Unknown members anywhere, of any type, before and after. */
	const struct hd_centrifuge_command *c =
		ok("{\"future\":[1,{\"a\":[]}],\"subscribe\":{\"zz\":{\"deep\":[[[]]]},"
		   "\"channel\":\"c\",\"extra\":null},\"later\":\"x\",\"id\":12}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_int_equal(c->id, 12);
	assert_string_equal(c->sub.channel, "c");

	/* The first known method is the command; later ones are not read. */
	c = ok("{\"publish\":{\"channel\":\"p\"},\"subscribe\":{\"channel\":7},\"id\":1}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PUBLISH);
	assert_string_equal(c->sub.channel, "p");
	c = ok("{\"ping\":{},\"connect\":5,\"id\":1}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PING);

	/* null means absent, for a method member and for any other. */
	c = ok("{\"connect\":null,\"subscribe\":{\"channel\":\"s\",\"offset\":null,"
	       "\"recover\":null,\"data\":null},\"id\":null}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_int_equal(c->id, 0);
	assert_int_equal(c->sub.offset, 0);
	raw_is(c->sub.data, NULL);
	c = ok("{\"connect\":null}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);

	/* Repeated members: the last one wins. */
	c = ok("{\"id\":1,\"subscribe\":{\"channel\":\"a\",\"channel\":\"b\"},\"id\":2}");
	assert_string_equal(c->sub.channel, "b");
	assert_int_equal(c->id, 2);

	/* Names with escapes are compared decoded. */
	c = ok("{\"\\u0069d\":3,\"sub\\u0073cribe\":{\"chan\\u006eel\":\"c\"}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_SUBSCRIBE);
	assert_int_equal(c->id, 3);
	assert_string_equal(c->sub.channel, "c");
	/* A long escaped name is no name we know. */
	c = ok("{\"\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069"
	       "\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\\u0069\":1}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	/* Names are case-sensitive. */
	c = ok("{\"ID\":3,\"Subscribe\":{}}");
	assert_int_equal(c->method, HD_CENTRIFUGE_PONG);
	assert_int_equal(c->id, 0);
}

static void test_decode_strings(void **state)
{
	const struct hd_centrifuge_command *c =
		ok("{\"subscribe\":{\"channel\":\"caf\\u00e9:\\n\\\"x\\\"\\\\\\/\\t\",\"epoch\":"
		   "\"\\ud83d\\ude00\",\"token\":\"caf\xc3\xa9\"},\"id\":1}");
	assert_string_equal(c->sub.channel, "caf\xc3\xa9:\n\"x\"\\/\t");
	assert_string_equal(c->sub.epoch, "\xf0\x9f\x98\x80");
	assert_string_equal(c->sub.token, "caf\xc3\xa9");

	/* Escaped subs keys are decoded channels. */
	c = ok("{\"connect\":{\"subs\":{\"a\\nb\":{},\"\\u00e9\":{\"epoch\":\"\"}}}}");
	assert_int_equal(c->nsubs, 2);
	assert_string_equal(c->subs[0].channel, "a\nb");
	assert_string_equal(c->subs[1].channel, "\xc3\xa9");

	/* Empty strings stay empty strings. */
	c = ok("{\"subscribe\":{\"channel\":\"\"},\"id\":1}");
	assert_string_equal(c->sub.channel, "");

	/* U+0000 would cut a C string short: refused. */
	bad("{\"subscribe\":{\"channel\":\"a\\u0000b\"},\"id\":1}",
	    "subscribe.channel must not contain U+0000");
	bad("{\"connect\":{\"subs\":{\"a\\u0000\":{}}}}",
	    "connect.subs key must not contain U+0000");
	/* json_text refuses raw control bytes, bad UTF-8 and lone surrogates. */
	bad("{\"subscribe\":{\"channel\":\"a\nb\"}}",
	    "command is not valid JSON: unescaped control character 0x0a in a string at byte 26");
	bad("{\"subscribe\":{\"channel\":\"\xc3\"}}",
	    "command is not valid JSON: invalid UTF-8 in a string at byte 25");
	bad("{\"subscribe\":{\"channel\":\"\\ud800\"}}",
	    "command is not valid JSON: unpaired surrogate escape at byte 25");
}

/* ---- decoding: numbers ---- */

static void test_decode_id(void **state)
{
	static const char msg[] = "id must be an integer from 0 to 4294967295";

	assert_int_equal(ok("{\"id\":4294967295}")->id, 4294967295u);
	assert_int_equal(ok("{\"id\":1,\"ping\":{}}")->id, 1);
	bad("{\"id\":4294967296}", msg);
	bad("{\"id\":99999999999999999999999}", msg);
	bad("{\"id\":-1}", msg);
	bad("{\"id\":-0}", msg);
	bad("{\"id\":1.0}", msg);
	bad("{\"id\":1e2}", msg);
	bad("{\"id\":\"1\"}", msg);
	bad("{\"id\":true}", msg);
	bad("{\"id\":[1]}", msg);
	bad("{\"connect\":{},\"id\":{}}", msg);
}

static void test_decode_offsets(void **state)
{
	static const char msg[] = "subscribe.offset must be an unsigned integer";

	assert_true(ok("{\"subscribe\":{\"offset\":18446744073709551615}}")->sub.offset ==
		    UINT64_MAX);
	assert_int_equal(ok("{\"subscribe\":{\"offset\":0}}")->sub.offset, 0);
	bad("{\"subscribe\":{\"offset\":18446744073709551616}}",
	    "subscribe.offset must be at most 18446744073709551615");
	bad("{\"subscribe\":{\"offset\":100000000000000000000}}",
	    "subscribe.offset must be at most 18446744073709551615");
	bad("{\"subscribe\":{\"offset\":-1}}", msg);
	bad("{\"subscribe\":{\"offset\":-0}}", msg);
	bad("{\"subscribe\":{\"offset\":-18446744073709551616}}", msg);
	bad("{\"subscribe\":{\"offset\":1.5}}", msg);
	bad("{\"subscribe\":{\"offset\":1.0}}", msg);
	bad("{\"subscribe\":{\"offset\":1e3}}", msg);
	bad("{\"subscribe\":{\"offset\":1E+3}}", msg);
	bad("{\"subscribe\":{\"offset\":\"42\"}}", msg);
	bad("{\"subscribe\":{\"offset\":false}}", msg);

	assert_true(ok("{\"history\":{\"since\":{\"offset\":18446744073709551615}}}")
			    ->since_offset == UINT64_MAX);
	bad("{\"history\":{\"since\":{\"offset\":18446744073709551616}}}",
	    "history.since.offset must be at most 18446744073709551615");
	bad("{\"history\":{\"since\":{\"offset\":2.5}}}",
	    "history.since.offset must be an unsigned integer");
	bad("{\"connect\":{\"subs\":{\"c\":{\"offset\":-3}}}}",
	    "connect.subs[\"c\"].offset must be an unsigned integer");
}

static void test_decode_limit_and_flag(void **state)
{
	static const char lmsg[] = "history.limit must be an integer from -2147483648 to 2147483647";
	static const char fmsg[] = "subscribe.flag must be an integer from -9223372036854775808 to "
				   "9223372036854775807";

	assert_int_equal(ok("{\"history\":{\"limit\":2147483647}}")->limit, INT32_MAX);
	assert_int_equal(ok("{\"history\":{\"limit\":-2147483648}}")->limit, INT32_MIN);
	assert_int_equal(ok("{\"history\":{\"limit\":0}}")->limit, 0);
	assert_int_equal(ok("{\"history\":{\"limit\":-0}}")->limit, 0);
	bad("{\"history\":{\"limit\":2147483648}}", lmsg);
	bad("{\"history\":{\"limit\":-2147483649}}", lmsg);
	bad("{\"history\":{\"limit\":1.5}}", lmsg);
	bad("{\"history\":{\"limit\":\"10\"}}", lmsg);

	assert_true(ok("{\"subscribe\":{\"flag\":9223372036854775807}}")->sub.flag == INT64_MAX);
	assert_true(ok("{\"subscribe\":{\"flag\":-9223372036854775808}}")->sub.flag == INT64_MIN);
	bad("{\"subscribe\":{\"flag\":9223372036854775808}}", fmsg);
	bad("{\"subscribe\":{\"flag\":-9223372036854775809}}", fmsg);
	bad("{\"subscribe\":{\"flag\":1e0}}", fmsg);
}

/* ---- decoding: types and shapes ---- */

static void test_decode_wrong_types(void **state)
{
	bad("{\"subscribe\":{\"recover\":1}}", "subscribe.recover must be true or false");
	bad("{\"subscribe\":{\"recover\":\"true\"}}", "subscribe.recover must be true or false");
	bad("{\"history\":{\"reverse\":0}}", "history.reverse must be true or false");
	bad("{\"subscribe\":{\"channel\":5}}", "subscribe.channel must be a string");
	bad("{\"subscribe\":{\"channel\":[\"a\"]}}", "subscribe.channel must be a string");
	bad("{\"connect\":{\"token\":{}}}", "connect.token must be a string");
	bad("{\"rpc\":{\"method\":1}}", "rpc.method must be a string");
	bad("{\"sub_refresh\":{\"token\":true}}", "sub_refresh.token must be a string");
	bad("{\"connect\":{\"subs\":{\"c\":{\"epoch\":1}}}}",
	    "connect.subs[\"c\"].epoch must be a string");
	bad("{\"connect\":{\"subs\":{\"a\\\"b\\n\":{\"recover\":1}}}}",
	    "connect.subs[\"a?b?\"].recover must be true or false");

	bad("{\"subscribe\":[]}", "subscribe must be an object");
	bad("{\"connect\":\"x\",\"id\":1}", "connect must be an object");
	bad("{\"ping\":true}", "ping must be an object");
	bad("{\"history\":{\"since\":5}}", "history.since must be an object");
	bad("{\"history\":{\"since\":[]}}", "history.since must be an object");
	bad("{\"connect\":{\"subs\":[]}}", "connect.subs must be an object");
	bad("{\"connect\":{\"subs\":{\"c\":true}}}", "connect.subs[\"c\"] must be an object");

	/* bytes fields take any JSON value. */
	raw_is(ok("{\"publish\":{\"data\":\"text\"}}")->data, "\"text\"");
	raw_is(ok("{\"publish\":{\"data\":12.5e3}}")->data, "12.5e3");
	raw_is(ok("{\"publish\":{\"data\":false}}")->data, "false");
	raw_is(ok("{\"publish\":{\"data\":[ ]}}")->data, "[]");
}

static void test_decode_subs_limit(void **state)
{
	char line[8192];
	size_t o = 0;

	o += (size_t)sprintf(line + o, "{\"connect\":{\"subs\":{");
	for (int i = 0; i < HD_CENTRIFUGE_SUBS_MAX; i++)
		o += (size_t)sprintf(line + o, "%s\"ch%d\":{\"offset\":%d}", i ? "," : "", i, i);
	strcpy(line + o, "}},\"id\":1}");
	const struct hd_centrifuge_command *c = ok(line);
	assert_int_equal(c->nsubs, HD_CENTRIFUGE_SUBS_MAX);
	assert_string_equal(c->subs[HD_CENTRIFUGE_SUBS_MAX - 1].channel, "ch63");
	assert_int_equal(c->subs[HD_CENTRIFUGE_SUBS_MAX - 1].offset, 63);

	sprintf(line + o, ",\"one-more\":{}}},\"id\":1}");
	bad(line, "connect.subs has more than 64 entries");

	/* Braces in strings do not fool the room count, nor do non-object entries. */
	c = ok("{\"connect\":{\"token\":\"{{{{\",\"subs\":{\"a{\":{},\"b\":{\"epoch\":\"{\"}}}}");
	assert_int_equal(c->nsubs, 2);
	bad("{\"connect\":{\"subs\":{\"a\":{},\"b\":1,\"c\":{}}}}",
	    "connect.subs[\"b\"] must be an object");
	/* A long channel is shortened in the message. */
	bad("{\"connect\":{\"subs\":{\"0123456789012345678901234567890123456789"
	    "01234567890123456789012345678901234567890123456789\":5}}}",
	    "connect.subs[\"0123456789012345678901234567890123456789012345678901234567890123"
	    "...\"] must be an object");
}

static void test_decode_not_a_command(void **state)
{
	bad("[]", "command must be a JSON object");
	bad("[{\"id\":1}]", "command must be a JSON object");
	bad("\"connect\"", "command must be a JSON object");
	bad("42", "command must be a JSON object");
	bad("null", "command must be a JSON object");
	bad("", "command is not valid JSON: the text is empty");
	bad(" \r\t", "command is not valid JSON: the text is empty");
	bad("{\"id\":1} x", "command is not valid JSON: unexpected data after the JSON value at byte 9");
	bad("{\"id\":1}{\"id\":2}",
	    "command is not valid JSON: unexpected data after the JSON value at byte 8");
	bad("{\"id\":1,}", "command is not valid JSON: unexpected character '}' at byte 8, "
			   "expected a member name");
	bad("{\"id\":1", "command is not valid JSON: unexpected end of text at byte 7");
	bad("{'id':1}", "command is not valid JSON: unexpected character ''' at byte 1, "
			"expected a member name");
	bad("\xef\xbb\xbf{}", NULL);
	bad_n("{\"id\":1}\0", 9, HD_EINVAL,
	      "command is not valid JSON: unexpected data after the JSON value at byte 8");

	/* Nesting is bounded by json_text, even in members nobody reads. */
	char deep[200];
	size_t o = 0;
	deep[o++] = '{';
	memcpy(deep + o, "\"x\":", 4);
	o += 4;
	for (int i = 0; i < 70; i++)
		deep[o++] = '[';
	for (int i = 0; i < 70; i++)
		deep[o++] = ']';
	deep[o++] = '}';
	bad_n(deep, o, HD_EINVAL, "command is not valid JSON: nesting deeper than 64 levels at byte 68");

	/* Members per object are bounded. */
	char many[2048];
	o = (size_t)sprintf(many, "{");
	for (int i = 0; i < 65; i++)
		o += (size_t)sprintf(many + o, "%s\"m%d\":0", i ? "," : "", i);
	strcpy(many + o, "}");
	bad(many, "command must be a JSON object of at most 64 members");
	o = (size_t)sprintf(many, "{\"id\":1,\"subscribe\":{");
	for (int i = 0; i < 65; i++)
		o += (size_t)sprintf(many + o, "%s\"m%d\":0", i ? "," : "", i);
	strcpy(many + o, "}}");
	bad(many, "subscribe has more than 64 members");
}

static void test_decode_line_limit(void **state)
{
	char *line = malloc(HD_CENTRIFUGE_LINE_MAX + 2);
	const char head[] = "{\"subscribe\":{\"channel\":\"";

	/* Exactly HD_CENTRIFUGE_LINE_MAX bytes: accepted. */
	memcpy(line, head, sizeof(head) - 1);
	memset(line + sizeof(head) - 1, 'a', HD_CENTRIFUGE_LINE_MAX - (sizeof(head) - 1) - 3);
	memcpy(line + HD_CENTRIFUGE_LINE_MAX - 3, "\"}}", 3);
	assert_int_equal(hd_centrifuge_decode(line, HD_CENTRIFUGE_LINE_MAX, &cmd, &err), 0);
	assert_int_equal(strlen(cmd.sub.channel), HD_CENTRIFUGE_LINE_MAX - (sizeof(head) - 1) - 3);
	hd_centrifuge_command_fini(&cmd);

	/* One byte more: refused before it is read. */
	line[HD_CENTRIFUGE_LINE_MAX] = ' ';
	bad_n(line, HD_CENTRIFUGE_LINE_MAX + 1, HD_ETOOBIG, "command is longer than 65536 bytes");
	free(line);
}

static void test_decode_without_error_struct(void **state)
{
	struct hd_centrifuge_command c;

	assert_int_equal(hd_centrifuge_decode("{\"id\":-1}", 9, &c, NULL), HD_EINVAL);
	assert_int_equal(hd_centrifuge_decode("[", 1, &c, NULL), HD_EINVAL);
	assert_int_equal(hd_centrifuge_decode("{\"ping\":{}}", 11, &c, NULL), 0);
	assert_int_equal(c.method, HD_CENTRIFUGE_PING);
	hd_centrifuge_command_fini(&c);
	hd_centrifuge_command_fini(&c); /* twice is safe */
	assert_null(c.mem);
}

static void test_method_names(void **state)
{
	static const char *const names[] = {
		"", "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
		"history", "ping", "send", "rpc", "refresh", "sub_refresh", "",
	};
	for (int m = HD_CENTRIFUGE_PONG; m <= HD_CENTRIFUGE_UNKNOWN; m++)
		assert_string_equal(hd_centrifuge_method_name((enum hd_centrifuge_method)m), names[m]);
	assert_string_equal(hd_centrifuge_method_name((enum hd_centrifuge_method)99), "");

	/* Every method's member decodes back to that method. */
	for (int m = HD_CENTRIFUGE_CONNECT; m < HD_CENTRIFUGE_UNKNOWN; m++) {
		char line[64];
		snprintf(line, sizeof(line), "{\"%s\":{},\"id\":1}", names[m]);
		assert_int_equal(ok(line)->method, m);
	}
}

/* ---- frames ---- */

static void test_next_line(void **state)
{
	static const char frame[] = "{\"connect\":{},\"id\":1}\n{\"subscribe\":{},\"id\":2}\n\n"
				    " \r\n{}\r\n{\"id\":3}";
	const char *expect[] = {"{\"connect\":{},\"id\":1}", "{\"subscribe\":{},\"id\":2}", "{}\r",
				"{\"id\":3}"};
	const char *line;
	size_t pos = 0, n = 0, i = 0;

	while (hd_centrifuge_next_line(frame, sizeof(frame) - 1, &pos, &line, &n)) {
		assert_true(i < 4);
		assert_int_equal(n, strlen(expect[i]));
		assert_memory_equal(line, expect[i], n);
		assert_int_equal(hd_centrifuge_decode(line, n, &cmd, &err), 0);
		hd_centrifuge_command_fini(&cmd);
		i++;
	}
	assert_int_equal(i, 4);
	assert_int_equal(pos, sizeof(frame) - 1);
	assert_false(hd_centrifuge_next_line(frame, sizeof(frame) - 1, &pos, &line, &n));

	pos = 0;
	assert_false(hd_centrifuge_next_line("", 0, &pos, &line, &n));
	assert_false(hd_centrifuge_next_line("\n\n \t\r\n", 6, &pos, &line, &n));
	assert_int_equal(pos, 6);
	pos = 0;
	assert_true(hd_centrifuge_next_line("{}\n", 3, &pos, &line, &n));
	assert_int_equal(n, 2);
	assert_false(hd_centrifuge_next_line("{}\n", 3, &pos, &line, &n));
}

/* ---- encoders ---- */

/* Checks b holds exactly expect, which jansson reads as one JSON object,
 * with no raw newline; then empties b. */
static void expect_out(struct hd_buf *b, const char *expect)
{
	json_error_t jerr;
	json_t *root;

	assert_non_null(b->data);
	assert_string_equal(b->data, expect);
	assert_int_equal(strlen(b->data), b->len);
	assert_null(strchr(b->data, '\n'));
	root = json_loads(b->data, JSON_DECODE_INT_AS_REAL, &jerr);
	if (!root)
		fail_msg("jansson cannot read '%s': %s", b->data, jerr.text);
	assert_true(json_is_object(root));
	json_decref(root);
	hd_buf_reset(b);
}

static void test_reply_error_and_empty(void **state)
{
	struct hd_buf b;

	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_reply_error(&b, 3, HD_CENTRIFUGE_ERR_METHOD_NOT_FOUND, "method not found",
					   false), 0);
	expect_out(&b, "{\"id\":3,\"error\":{\"code\":104,\"message\":\"method not found\"}}");
	assert_int_equal(hd_centrifuge_reply_error(&b, 4, HD_CENTRIFUGE_ERR_INTERNAL, "internal", true), 0);
	expect_out(&b, "{\"id\":4,\"error\":{\"code\":100,\"message\":\"internal\",\"temporary\":true}}");
	assert_int_equal(hd_centrifuge_reply_error(&b, 5, 103, "no \"rides\\x\"\n\x01 here", false), 0);
	expect_out(&b, "{\"id\":5,\"error\":{\"code\":103,"
		       "\"message\":\"no \\\"rides\\\\x\\\"\\n\\u0001 here\"}}");
	/* Omitted: id 0, an empty or NULL message, code 0. */
	assert_int_equal(hd_centrifuge_reply_error(&b, 0, 107, "", false), 0);
	expect_out(&b, "{\"error\":{\"code\":107}}");
	assert_int_equal(hd_centrifuge_reply_error(&b, 1, 0, NULL, false), 0);
	expect_out(&b, "{\"id\":1,\"error\":{}}");

	assert_int_equal(hd_centrifuge_reply_empty(&b, 7, HD_CENTRIFUGE_UNSUBSCRIBE), 0);
	expect_out(&b, "{\"id\":7,\"unsubscribe\":{}}");
	assert_int_equal(hd_centrifuge_reply_empty(&b, 8, HD_CENTRIFUGE_PUBLISH), 0);
	expect_out(&b, "{\"id\":8,\"publish\":{}}");
	assert_int_equal(hd_centrifuge_reply_empty(&b, 9, HD_CENTRIFUGE_PING), 0);
	expect_out(&b, "{\"id\":9,\"ping\":{}}");
	assert_int_equal(hd_centrifuge_reply_empty(&b, 10, HD_CENTRIFUGE_SUB_REFRESH), 0);
	expect_out(&b, "{\"id\":10,\"sub_refresh\":{}}");
	/* The server ping. */
	assert_int_equal(hd_centrifuge_reply_empty(&b, 0, HD_CENTRIFUGE_PONG), 0);
	expect_out(&b, "{}");
	assert_int_equal(hd_centrifuge_reply_empty(&b, 11, HD_CENTRIFUGE_UNKNOWN), 0);
	expect_out(&b, "{\"id\":11}");
	hd_buf_fini(&b);
}

static void test_reply_connect(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pubs[] = {PUB("{\"a\":1}", 8)};
	struct hd_centrifuge_sub_result subs[] = {
		{.channel = "user:42", .recoverable = true, .positioned = true, .epoch = "e1",
		 .offset = 7, .recovered = true, .was_recovering = true, .pubs = pubs, .npubs = 1},
		{.channel = "a\"b"},
	};
	struct hd_centrifuge_connect_result r = {
		.client = "6f1c-uuid", .version = "herald 0.1", .ping = 25, .pong = true,
	};

	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_reply_connect(&b, 1, &r), 0);
	expect_out(&b, "{\"id\":1,\"connect\":{\"client\":\"6f1c-uuid\",\"version\":\"herald 0.1\","
		       "\"ping\":25,\"pong\":true}}");

	r.expires = true;
	r.ttl = 3600;
	r.node = "n1";
	r.subs = subs;
	r.nsubs = 2;
	assert_int_equal(hd_centrifuge_reply_connect(&b, 1, &r), 0);
	expect_out(&b, "{\"id\":1,\"connect\":{\"client\":\"6f1c-uuid\",\"version\":\"herald 0.1\","
		       "\"expires\":true,\"ttl\":3600,\"subs\":{\"user:42\":{\"recoverable\":true,"
		       "\"epoch\":\"e1\",\"publications\":[{\"data\":{\"a\":1},\"offset\":8}],"
		       "\"recovered\":true,\"offset\":7,\"positioned\":true,"
		       "\"was_recovering\":true},\"a\\\"b\":{}},\"ping\":25,\"pong\":true,"
		       "\"node\":\"n1\"}}");

	struct hd_centrifuge_connect_result none = {0};
	assert_int_equal(hd_centrifuge_reply_connect(&b, 2, &none), 0);
	expect_out(&b, "{\"id\":2,\"connect\":{}}");
	hd_buf_fini(&b);
}

static void test_reply_subscribe(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pubs[] = {
		PUB("{\"specversion\":\"1.0\",\"id\":\"e-43\"}", 43),
		PUB("[1,2]", 44),
		{NULL, 0, 45, false, false, NULL, 0},
	};
	struct hd_centrifuge_sub_result r = {.recoverable = true, .positioned = true, .epoch = "k3x9",
				     .offset = 41};

	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_reply_subscribe(&b, 2, &r), 0);
	expect_out(&b, "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"k3x9\","
		       "\"offset\":41,\"positioned\":true}}");

	r.offset = 42;
	r.recovered = true;
	r.was_recovering = true;
	r.pubs = pubs;
	r.npubs = 3;
	r.expires = true;
	r.ttl = 60;
	assert_int_equal(hd_centrifuge_reply_subscribe(&b, 7, &r), 0);
	expect_out(&b, "{\"id\":7,\"subscribe\":{\"expires\":true,\"ttl\":60,\"recoverable\":true,"
		       "\"epoch\":\"k3x9\",\"publications\":[{\"data\":{\"specversion\":\"1.0\","
		       "\"id\":\"e-43\"},\"offset\":43},{\"data\":[1,2],\"offset\":44},"
		       "{\"offset\":45}],\"recovered\":true,\"offset\":42,\"positioned\":true,"
		       "\"was_recovering\":true}}");

	/* Not recovered: recovered absent, offset the top. */
	struct hd_centrifuge_sub_result nr = {.recoverable = true, .positioned = true, .epoch = "k3x9",
				      .offset = 99, .was_recovering = true};
	assert_int_equal(hd_centrifuge_reply_subscribe(&b, 8, &nr), 0);
	expect_out(&b, "{\"id\":8,\"subscribe\":{\"recoverable\":true,\"epoch\":\"k3x9\","
		       "\"offset\":99,\"positioned\":true,\"was_recovering\":true}}");

	struct hd_centrifuge_sub_result big = {.epoch = "q\"e", .offset = UINT64_MAX};
	assert_int_equal(hd_centrifuge_reply_subscribe(&b, 4294967295u, &big), 0);
	expect_out(&b, "{\"id\":4294967295,\"subscribe\":{\"epoch\":\"q\\\"e\","
		       "\"offset\":18446744073709551615}}");

	struct hd_centrifuge_sub_result none = {0};
	assert_int_equal(hd_centrifuge_reply_subscribe(&b, 3, &none), 0);
	expect_out(&b, "{\"id\":3,\"subscribe\":{}}");
	hd_buf_fini(&b);
}

static void test_reply_history_presence_refresh(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pubs[] = {PUB("{\"x\":\"a\\nb\"}", 5), PUB("7", 6)};
	struct hd_centrifuge_client_info who[] = {
		{.client = "c1", .user = "42"}, {.client = "c\"2", .user = ""},
		{.client = "c3", .user = "7", .conn_info = "{\"name\":\"Ann\",\"n\":1.50}", .conn_info_len = 23}};

	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_reply_history(&b, 5, pubs, 2, "e", 6), 0);
	expect_out(&b, "{\"id\":5,\"history\":{\"publications\":[{\"data\":{\"x\":\"a\\nb\"},"
		       "\"offset\":5},{\"data\":7,\"offset\":6}],\"epoch\":\"e\",\"offset\":6}}");
	assert_int_equal(hd_centrifuge_reply_history(&b, 5, NULL, 0, "e", 6), 0);
	expect_out(&b, "{\"id\":5,\"history\":{\"epoch\":\"e\",\"offset\":6}}");
	assert_int_equal(hd_centrifuge_reply_history(&b, 5, NULL, 0, NULL, 0), 0);
	expect_out(&b, "{\"id\":5,\"history\":{}}");

	assert_int_equal(hd_centrifuge_reply_presence(&b, 6, who, 1), 0);
	expect_out(&b, "{\"id\":6,\"presence\":{\"presence\":{\"c1\":{\"user\":\"42\","
		       "\"client\":\"c1\"}}}}");
	assert_int_equal(hd_centrifuge_reply_presence(&b, 6, who, 2), 0);
	expect_out(&b, "{\"id\":6,\"presence\":{\"presence\":{\"c1\":{\"user\":\"42\","
		       "\"client\":\"c1\"},\"c\\\"2\":{\"client\":\"c\\\"2\"}}}}");
	/* The conn info goes byte for byte (1.50 stays 1.50). */
	assert_int_equal(hd_centrifuge_reply_presence(&b, 6, who + 2, 1), 0);
	expect_out(&b, "{\"id\":6,\"presence\":{\"presence\":{\"c3\":{\"user\":\"7\","
		       "\"client\":\"c3\",\"conn_info\":{\"name\":\"Ann\",\"n\":1.50}}}}}");
	assert_int_equal(hd_centrifuge_reply_presence(&b, 6, NULL, 0), 0);
	expect_out(&b, "{\"id\":6,\"presence\":{\"presence\":{}}}");

	assert_int_equal(hd_centrifuge_reply_presence_stats(&b, 7, 2, 1), 0);
	expect_out(&b, "{\"id\":7,\"presence_stats\":{\"num_clients\":2,\"num_users\":1}}");
	assert_int_equal(hd_centrifuge_reply_presence_stats(&b, 7, 0, 0), 0);
	expect_out(&b, "{\"id\":7,\"presence_stats\":{\"num_clients\":0,\"num_users\":0}}");
	assert_int_equal(hd_centrifuge_reply_sub_refresh(&b, 8, true, 60), 0);
	expect_out(&b, "{\"id\":8,\"sub_refresh\":{\"expires\":true,\"ttl\":60}}");

	assert_int_equal(hd_centrifuge_reply_refresh(&b, 11, "c1", "herald 0.1", true, 3600), 0);
	expect_out(&b, "{\"id\":11,\"refresh\":{\"client\":\"c1\",\"version\":\"herald 0.1\","
		       "\"expires\":true,\"ttl\":3600}}");
	assert_int_equal(hd_centrifuge_reply_refresh(&b, 12, "c1", NULL, false, 0), 0);
	expect_out(&b, "{\"id\":12,\"refresh\":{\"client\":\"c1\"}}");
	hd_buf_fini(&b);
}

/* ws-publication = payload: data is the event's data, attributes are tags. */
static void test_push_payload(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pub = PUB_PAYLOAD(
		"{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"/s\",\"type\":\"t\","
		"\"data\":{\"my\":\"data\"},\"n\":7,\"b\":true,\"time\":\"2026-01-01T00:00:00Z\","
		"\"topic\":\"c\",\"offset\":3}", 3);
	struct hd_centrifuge_pub bin = PUB_PAYLOAD(
		"{\"specversion\":\"1.0\",\"id\":\"e-2\",\"data_base64\":\"AAE=\",\"offset\":4}", 4);
	struct hd_centrifuge_pub nodata = PUB_PAYLOAD("{\"specversion\":\"1.0\",\"offset\":5}", 5);
	struct hd_centrifuge_pub notobj = PUB_PAYLOAD("[1]", 6);

	(void)state;
	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &pub), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\"my\":\"data\"},\"offset\":3,"
		       "\"tags\":{\"id\":\"e-1\",\"source\":\"/s\",\"type\":\"t\",\"n\":\"7\","
		       "\"b\":\"true\",\"time\":\"2026-01-01T00:00:00Z\"}}}}");
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &bin), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":\"AAE=\",\"offset\":4,"
		       "\"tags\":{\"id\":\"e-2\",\"data_base64\":\"true\"}}}}");
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &nodata), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"offset\":5}}}");
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &notobj), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":[1],\"offset\":6}}}");
	/* Delta compression: data as a JSON string, full or a delta. */
	const char *text;
	size_t tn;
	hd_centrifuge_pub_text(&pub, &text, &tn);
	assert_int_equal(tn, 13);
	assert_memory_equal(text, "{\"my\":\"data\"}", 13);
	hd_centrifuge_pub_text(&nodata, &text, &tn);
	assert_memory_equal(text, "null", tn);
	nodata.as_string = true;
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &nodata), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":\"null\",\"offset\":5}}}");
	notobj.delta = "2\n1:[;";
	notobj.delta_len = 6;
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &notobj), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":\"2\\n1:[;\",\"offset\":6,"
		       "\"delta\":true}}}");
	hd_buf_fini(&b);
}

/* A client-published event's client_info member is the publication's
 * info (never a tag); an event without it has none. */
static void test_push_publisher_info(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pub = PUB_PAYLOAD(
		"{\"specversion\":\"1.0\",\"id\":\"e-1\",\"data\":{\"n\":1},\"client_info\":{\"user\":\"u\","
		"\"client\":\"c1\",\"conn_info\":{\"a\":1}},\"topic\":\"c\",\"offset\":3}", 3);
	struct hd_centrifuge_pub in_data = PUB_PAYLOAD(
		"{\"specversion\":\"1.0\",\"data\":{\"client_info\":{}},\"offset\":4}", 4);
	const char *info;
	size_t n;

	(void)state;
	hd_buf_init(&b, 4096);
	assert_true(hd_centrifuge_pub_info(&pub, &info, &n));
	assert_int_equal(n, 46);
	assert_false(hd_centrifuge_pub_info(&in_data, &info, &n));
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &pub), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\"n\":1},\"offset\":3,"
		       "\"tags\":{\"id\":\"e-1\"},\"info\":{\"user\":\"u\",\"client\":\"c1\","
		       "\"conn_info\":{\"a\":1}}}}}");
	assert_int_equal(hd_centrifuge_push_pub(&b, "c", &in_data), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":{\"client_info\":{}},"
		       "\"offset\":4}}}");
	hd_buf_fini(&b);
}

static void test_pushes(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pub = PUB("{\"specversion\":\"1.0\",\"id\":\"e-42\"}", 42);
	struct hd_centrifuge_client_info info = {.client = "c1", .user = "42"};

	hd_buf_init(&b, 4096);
	assert_int_equal(hd_centrifuge_push_pub(&b, "rides:981", &pub), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"rides:981\",\"pub\":{\"data\":{\"specversion\":"
		       "\"1.0\",\"id\":\"e-42\"},\"offset\":42}}}");
	/* A raw newline that slipped into data as white space is dropped. */
	struct hd_centrifuge_pub nl = PUB("{\"a\":\n1}\n", 1);
	assert_int_equal(hd_centrifuge_push_pub(&b, "c\"q\n", &nl), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\\\"q\\n\",\"pub\":{\"data\":{\"a\":1},"
		       "\"offset\":1}}}");

	assert_int_equal(hd_centrifuge_push_join(&b, "room", &info), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"room\",\"join\":{\"info\":{\"user\":\"42\","
		       "\"client\":\"c1\"}}}}");
	assert_int_equal(hd_centrifuge_push_leave(&b, "room", &info), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"room\",\"leave\":{\"info\":{\"user\":\"42\","
		       "\"client\":\"c1\"}}}}");

	struct hd_centrifuge_client_info both = {.client = "c1", .user = "42", .conn_info = "{\"n\":1.50}",
						 .conn_info_len = 10, .chan_info = "[1]", .chan_info_len = 3};
	assert_int_equal(hd_centrifuge_push_join(&b, "room", &both), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"room\",\"join\":{\"info\":{\"user\":\"42\","
		       "\"client\":\"c1\",\"conn_info\":{\"n\":1.50},\"chan_info\":[1]}}}}");
	assert_int_equal(hd_centrifuge_push_refresh(&b, true, 5), 0);
	expect_out(&b, "{\"push\":{\"refresh\":{\"expires\":true,\"ttl\":5}}}");
	assert_int_equal(hd_centrifuge_push_refresh(&b, false, 0), 0);
	expect_out(&b, "{\"push\":{\"refresh\":{}}}");

	assert_int_equal(hd_centrifuge_push_unsubscribe(&b, "c", 2000, "server unsubscribe"), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"unsubscribe\":{\"code\":2000,"
		       "\"reason\":\"server unsubscribe\"}}}");
	assert_int_equal(hd_centrifuge_push_unsubscribe(&b, "c", 2500, "say \"again\"\r\n"), 0);
	expect_out(&b, "{\"push\":{\"channel\":\"c\",\"unsubscribe\":{\"code\":2500,"
		       "\"reason\":\"say \\\"again\\\"\\r\\n\"}}}");

	assert_int_equal(hd_centrifuge_push_disconnect(&b, 3001, "shutdown", true), 0);
	expect_out(&b, "{\"push\":{\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\","
		       "\"reconnect\":true}}}");
	assert_int_equal(hd_centrifuge_push_disconnect(&b, 3501, "bad \"request\"", false), 0);
	expect_out(&b, "{\"push\":{\"disconnect\":{\"code\":3501,\"reason\":\"bad "
		       "\\\"request\\\"\"}}}");
	hd_buf_fini(&b);
}

/* Encoders append; hitting the ceiling leaves the buffer as it was. */
static void test_encoders_append_and_respect_the_ceiling(void **state)
{
	struct hd_buf b;
	struct hd_centrifuge_pub pub = PUB("{\"k\":\"0123456789\"}", 9);

	hd_buf_init(&b, 64);
	assert_int_equal(hd_centrifuge_reply_empty(&b, 1, HD_CENTRIFUGE_PING), 0);
	assert_int_equal(hd_buf_putc(&b, '\n'), 0);
	assert_int_equal(hd_centrifuge_reply_empty(&b, 0, HD_CENTRIFUGE_PONG), 0);
	assert_string_equal(b.data, "{\"id\":1,\"ping\":{}}\n{}");
	size_t before = b.len;

	assert_int_equal(hd_centrifuge_push_pub(&b, "a-long-channel-name", &pub), HD_ETOOBIG);
	assert_int_equal(b.len, before);
	assert_string_equal(b.data, "{\"id\":1,\"ping\":{}}\n{}");
	assert_int_equal(hd_centrifuge_reply_error(&b, 1, 100, "a message much too long for the rest",
					   true), HD_ETOOBIG);
	assert_string_equal(b.data, "{\"id\":1,\"ping\":{}}\n{}");

	/* Each byte count up to the message's size fails cleanly. */
	struct hd_buf full;
	hd_buf_init(&full, 1024);
	assert_int_equal(hd_centrifuge_push_pub(&full, "c", &pub), 0);
	for (size_t max = 0; max < full.len; max++) {
		struct hd_buf small;
		hd_buf_init(&small, max);
		assert_int_equal(hd_centrifuge_push_pub(&small, "c", &pub), HD_ETOOBIG);
		assert_int_equal(small.len, 0);
		assert_true(small.data == NULL || small.data[0] == '\0');
		hd_buf_fini(&small);
	}
	hd_buf_fini(&full);
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_decode_js_connect, teardown),
		cmocka_unit_test_teardown(test_decode_js_connect_subs, teardown),
		cmocka_unit_test_teardown(test_decode_js_subscribe, teardown),
		cmocka_unit_test_teardown(test_decode_js_history_publish_refresh_pong, teardown),
		cmocka_unit_test_teardown(test_decode_other_methods, teardown),
		cmocka_unit_test_teardown(test_decode_member_order_unknown_and_null, teardown),
		cmocka_unit_test_teardown(test_decode_strings, teardown),
		cmocka_unit_test_teardown(test_decode_id, teardown),
		cmocka_unit_test_teardown(test_decode_offsets, teardown),
		cmocka_unit_test_teardown(test_decode_limit_and_flag, teardown),
		cmocka_unit_test_teardown(test_decode_wrong_types, teardown),
		cmocka_unit_test_teardown(test_decode_subs_limit, teardown),
		cmocka_unit_test_teardown(test_decode_not_a_command, teardown),
		cmocka_unit_test_teardown(test_decode_line_limit, teardown),
		cmocka_unit_test(test_decode_without_error_struct),
		cmocka_unit_test_teardown(test_method_names, teardown),
		cmocka_unit_test_teardown(test_next_line, teardown),
		cmocka_unit_test(test_reply_error_and_empty),
		cmocka_unit_test(test_reply_connect),
		cmocka_unit_test(test_reply_subscribe),
		cmocka_unit_test(test_reply_history_presence_refresh),
		cmocka_unit_test(test_pushes),
		cmocka_unit_test(test_push_payload),
		cmocka_unit_test(test_push_publisher_info),
		cmocka_unit_test(test_encoders_append_and_respect_the_ceiling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
