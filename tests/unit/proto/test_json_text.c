/*
 * test_json_text — unit tests of src/proto/json_text.c: the grammar it
 * accepts and refuses (with the byte it names), byte-exact minification,
 * the spans of top-level children, the depth limit, in-place use, string
 * unescaping and UTF-8 validation. jansson serves as an independent
 * reference for what well-formed JSON means.
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

#include "proto/json_text.h"

/* Minifies s (length n) into a fresh buffer; returns the code, fills out. */
static int minify_n(const char *s, size_t n, char **out, struct hd_json_text_scan *sc,
		    struct hd_error *err)
{
	struct hd_json_text_scan local = {0};
	char *buf = malloc(n + 1);
	int rc;

	if (!sc)
		sc = &local;
	hd_error_clear(err);
	rc = hd_json_text_minify(s, n, buf, sc, err);
	if (rc == 0)
		buf[sc->out_len] = '\0';
	*out = buf;
	return rc;
}

static void expect_minified(const char *in, const char *expected)
{
	struct hd_error err;
	char *out;
	int rc = minify_n(in, strlen(in), &out, NULL, &err);

	if (rc != 0)
		fail_msg("'%s' refused: %s", in, err.msg);
	assert_string_equal(out, expected);
	free(out);
}

static void expect_refused(const char *in, size_t n, const char *msg)
{
	struct hd_error err;
	char *out;
	int rc = minify_n(in, n, &out, NULL, &err);

	if (rc != HD_EINVAL)
		fail_msg("'%.*s' accepted, expected: %s", (int)n, in, msg);
	assert_int_equal(err.code, HD_EINVAL);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("'%.*s': message '%s' lacks '%s'", (int)n, in, err.msg, msg);
	free(out);
}

#define REFUSED(lit, msg) expect_refused(lit, sizeof(lit) - 1, msg)

static void test_minify_removes_only_insignificant_space(void **state)
{
	expect_minified("  {\"a\" : 1 ,\n\t\"b\":[ true,false, null ] }\r\n",
			"{\"a\":1,\"b\":[true,false,null]}");
	expect_minified("{\n  \"s\": \" keep  these \\n spaces \"\n}", "{\"s\":\" keep  these \\n spaces \"}");
	expect_minified("[ ]", "[]");
	expect_minified("{ }", "{}");
	expect_minified(" [ [ ], { } , [ [ 1 ] ] ] ", "[[],{},[[1]]]");
	expect_minified("\"x\"", "\"x\"");
	expect_minified(" true ", "true");
	expect_minified("null", "null");
	expect_minified("\n42\n", "42");
}

static void test_numbers_keep_their_spelling(void **state)
{
	expect_minified("0.1", "0.1");
	expect_minified("12345678901234567890", "12345678901234567890");
	expect_minified("-0", "-0");
	expect_minified("1E+400", "1E+400");
	expect_minified("-1.50e-7", "-1.50e-7");
	expect_minified("[0,-0.0,1e5,2E-3]", "[0,-0.0,1e5,2E-3]");
	expect_minified("123456789012345678901234567890.000000000000000000001",
			"123456789012345678901234567890.000000000000000000001");
}

static void test_strings_are_copied_byte_for_byte(void **state)
{
	expect_minified("\"\\u00e9\\n\\/\\\"\\\\\\b\\f\\r\\t\"", "\"\\u00e9\\n\\/\\\"\\\\\\b\\f\\r\\t\"");
	expect_minified("\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\"");
	expect_minified("\"\\ud834\\udd1e\"", "\"\\ud834\\udd1e\"");
	expect_minified("\"\\u0000\"", "\"\\u0000\""); /* valid JSON, even if jansson needs a flag */
	expect_minified("\"\x7f\"", "\"\x7f\"");          /* DEL needs no escape */
	expect_minified("\"\\uDBFF\\uDFFF\"", "\"\\uDBFF\\uDFFF\"");
	expect_minified("\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

static void test_malformed_text_is_refused_with_its_position(void **state)
{
	REFUSED("", "the text is empty");
	REFUSED(" \n\t ", "the text is empty");
	REFUSED("{", "unexpected end of text at byte 1");
	REFUSED("{\"a\"", "unexpected end of text at byte 4");
	REFUSED("{\"a\":", "unexpected end of text at byte 5");
	REFUSED("{\"a\":1", "unexpected end of text at byte 6");
	REFUSED("[1", "unexpected end of text at byte 2");
	REFUSED("{\"\\x\":1}", "invalid escape at byte 2");
	REFUSED("\"\\", "unexpected end of text at byte 2");
	REFUSED("[1,]", "unexpected character ']' at byte 3");
	REFUSED("{\"a\":1,}", "unexpected character '}' at byte 7, expected a member name");
	REFUSED("{\"a\" 1}", "unexpected character '1' at byte 5, expected ':'");
	REFUSED("{a:1}", "unexpected character 'a' at byte 1, expected a member name");
	REFUSED("[1 2]", "unexpected character '2' at byte 3, expected ',' or ']'");
	REFUSED("{\"a\":1 \"b\":2}", "expected ',' or '}'");
	REFUSED("01", "invalid number at byte 0");
	REFUSED("[-01]", "invalid number at byte 1");
	REFUSED("1.", "invalid number at byte 0");
	REFUSED("-", "invalid number at byte 0");
	REFUSED("1e", "invalid number at byte 0");
	REFUSED("1e+", "invalid number at byte 0");
	REFUSED(".5", "unexpected character '.' at byte 0");
	REFUSED("+1", "unexpected character '+' at byte 0");
	REFUSED("NaN", "unexpected character 'N' at byte 0");
	REFUSED("[Infinity]", "unexpected character 'I' at byte 1");
	REFUSED("tru", "unexpected character 't' at byte 0");
	REFUSED("nul", "unexpected character 'n'");
	REFUSED("True", "unexpected character 'T'");
	REFUSED("'a'", "unexpected character '''");
	REFUSED("/* c */ 1", "unexpected character '/'");
	REFUSED("{} x", "unexpected data after the JSON value at byte 3");
	REFUSED("{}{}", "unexpected data after the JSON value at byte 2");
	REFUSED("1 2", "unexpected data after the JSON value at byte 2");
	REFUSED("\xef\xbb\xbf{}", "unexpected byte 0xef at byte 0");
	REFUSED("\"abc", "unterminated string starting at byte 0");
	REFUSED("[\"abc\\\"]", "unterminated string starting at byte 1");
	REFUSED("\"\\x\"", "invalid escape at byte 1");
	REFUSED("\"\\u12G4\"", "invalid \\u escape at byte 1");
	REFUSED("\"\\u12\"", "invalid \\u escape at byte 1");
	REFUSED("\"\\ud800\"", "unpaired surrogate escape at byte 1");
	REFUSED("\"\\udc00\"", "unpaired surrogate escape at byte 1");
	REFUSED("\"\\ud800\\u0041\"", "unpaired surrogate escape at byte 1");
	REFUSED("\"\\ud800\\ud800\"", "unpaired surrogate escape at byte 1");
	REFUSED("\"a\nb\"", "unescaped control character 0x0a in a string at byte 2");
	REFUSED("\"\t\"", "unescaped control character 0x09");
	REFUSED("\"\xc0\xa0\"", "invalid UTF-8 in a string at byte 1");     /* overlong */
	REFUSED("\"\xed\xa0\x80\"", "invalid UTF-8 in a string at byte 1"); /* a surrogate */
	REFUSED("\"\xf4\x90\x80\x80\"", "invalid UTF-8");                     /* above U+10FFFF */
	REFUSED("\"\xe2\x82\"", "invalid UTF-8");                             /* truncated */
	REFUSED("\"\x80\"", "invalid UTF-8");
	REFUSED("\"\xff\"", "invalid UTF-8");
	REFUSED("[\x01]", "unexpected byte 0x01 at byte 1");
	REFUSED("\0", "unexpected byte 0x00 at byte 0");
	REFUSED("[1]\0", "unexpected data after the JSON value at byte 3");
}

/* Every single byte inside a string: accepted exactly when RFC 8259 allows it raw. */
static void test_every_byte_in_a_string(void **state)
{
	for (int c = 0; c < 256; c++) {
		char in[3] = {'"', (char)c, '"'};
		struct hd_json_text_scan sc = {0};
		struct hd_error err;
		char out[3];
		int rc = hd_json_text_minify(in, 3, out, &sc, &err);
		bool allowed = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
		if (allowed != (rc == 0))
			fail_msg("byte 0x%02x: rc %d (%s)", c, rc, err.msg);
	}
}

/* Every byte at every position of a long string, so it lands in each lane
 * of the eight-bytes-at-a-time scan and in the byte-wise tail: accepted
 * exactly when allowed raw (a lead byte of UTF-8 alone never is), and the
 * output is the input. */
static void test_every_byte_at_every_position(void **state)
{
	enum { LEN = 27 }; /* the quotes and 25 bytes: three words and a tail */
	for (int c = 0; c < 256; c++) {
		for (int at = 1; at < LEN - 1; at++) {
			char in[LEN], out[LEN];
			struct hd_json_text_scan sc = {0};
			struct hd_error err;
			memset(in, 'a', sizeof(in));
			in[0] = in[LEN - 1] = '"';
			in[at] = (char)c;
			int rc = hd_json_text_minify(in, LEN, out, &sc, &err);
			bool allowed = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
			if (c == '"') /* ends the string early: text follows the value */
				allowed = false;
			if (allowed != (rc == 0))
				fail_msg("byte 0x%02x at %d: rc %d (%s)", c, at, rc, err.msg);
			if (rc == 0)
				assert_memory_equal(out, in, LEN);
		}
	}
	/* A backslash escape in any lane. */
	for (int at = 1; at < LEN - 2; at++) {
		char in[LEN], out[LEN];
		struct hd_json_text_scan sc = {0};
		struct hd_error err;
		memset(in, 'a', sizeof(in));
		in[0] = in[LEN - 1] = '"';
		in[at] = '\\';
		in[at + 1] = 'n';
		assert_int_equal(hd_json_text_minify(in, LEN, out, &sc, &err), 0);
		assert_memory_equal(out, in, LEN);
	}
}

static char *nested(int depth, char open, char close)
{
	char *s = malloc((size_t)depth * 2 + 1);
	for (int i = 0; i < depth; i++) {
		s[i] = open;
		s[depth * 2 - 1 - i] = close;
	}
	s[depth * 2] = '\0';
	return s;
}

static void test_depth_limit(void **state)
{
	struct hd_json_text_scan sc = {0};
	struct hd_error err;
	char *ok = nested(HD_JSON_TEXT_DEPTH_MAX, '[', ']');
	char *deep = nested(HD_JSON_TEXT_DEPTH_MAX + 1, '[', ']');
	char *out;

	assert_int_equal(minify_n(ok, strlen(ok), &out, NULL, &err), 0);
	free(out);
	assert_int_equal(minify_n(deep, strlen(deep), &out, NULL, &err), HD_EINVAL);
	assert_string_equal(err.msg, "nesting deeper than 64 levels at byte 64");
	free(out);
	/* A caller may grant more, as the batch decoder does for its outer array. */
	sc.depth_max = HD_JSON_TEXT_DEPTH_MAX + 1;
	assert_int_equal(minify_n(deep, strlen(deep), &out, &sc, &err), 0);
	free(out);
	free(ok);
	free(deep);

	/* Far past the limit, the scanner stops early instead of recursing. */
	char *huge = nested(100000, '[', ']');
	assert_int_equal(minify_n(huge, strlen(huge), &out, NULL, &err), HD_EINVAL);
	free(out);
	free(huge);
}

static void test_object_spans(void **state)
{
	const char *in = "{ \"id\" : \"1\",\n \"d\\u0061ta\": { \"x\": [1, 2] }, \"n\":null }";
	struct hd_json_text_span spans[4];
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = 4};
	struct hd_error err;
	char *out;

	assert_int_equal(minify_n(in, strlen(in), &out, &sc, &err), 0);
	assert_string_equal(out, "{\"id\":\"1\",\"d\\u0061ta\":{\"x\":[1,2]},\"n\":null}");
	assert_int_equal(sc.nspans, 3);
	assert_int_equal(sc.out_len, strlen(out));
	assert_memory_equal(out + spans[0].key_off, "\"id\"", spans[0].key_len);
	assert_int_equal(spans[0].key_len, 4);
	assert_memory_equal(out + spans[0].val_off, "\"1\"", spans[0].val_len);
	assert_int_equal(spans[1].key_len, strlen("\"d\\u0061ta\""));
	assert_memory_equal(out + spans[1].key_off, "\"d\\u0061ta\"", spans[1].key_len);
	assert_int_equal(spans[1].val_len, strlen("{\"x\":[1,2]}"));
	assert_memory_equal(out + spans[1].val_off, "{\"x\":[1,2]}", spans[1].val_len);
	assert_memory_equal(out + spans[2].val_off, "null", 4);
	assert_int_equal(spans[2].val_len, 4);
	free(out);
}

static void test_array_spans_and_limits(void **state)
{
	const char *in = "[ {\"a\":1} , 2,\"x\" , [3] ]";
	struct hd_json_text_span spans[4];
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = 4};
	struct hd_error err;
	char *out;

	assert_int_equal(minify_n(in, strlen(in), &out, &sc, &err), 0);
	assert_int_equal(sc.nspans, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(spans[i].key_len, 0);
	assert_memory_equal(out + spans[0].val_off, "{\"a\":1}", spans[0].val_len);
	assert_memory_equal(out + spans[1].val_off, "2", spans[1].val_len);
	assert_memory_equal(out + spans[2].val_off, "\"x\"", spans[2].val_len);
	assert_memory_equal(out + spans[3].val_off, "[3]", spans[3].val_len);
	free(out);

	/* One child too many is HD_ETOOBIG; without spans children are only counted. */
	sc.spans_max = 3;
	assert_int_equal(minify_n(in, strlen(in), &out, &sc, &err), HD_ETOOBIG);
	assert_string_equal(err.msg, "more than 3 members");
	free(out);
	sc = (struct hd_json_text_scan){0};
	assert_int_equal(minify_n(in, strlen(in), &out, &sc, &err), 0);
	assert_int_equal(sc.nspans, 4);
	free(out);

	/* A scalar has no children. */
	sc = (struct hd_json_text_scan){.spans = spans, .spans_max = 4};
	assert_int_equal(minify_n("\"s\"", 3, &out, &sc, &err), 0);
	assert_int_equal(sc.nspans, 0);
	free(out);
}

/* hd_json_text_members splits minified objects exactly as a scan does. */
static void test_members_agree_with_the_scan(void **state)
{
	static const char *const objects[] = {
		"{}",
		"{\"a\":1}",
		"{\"a\":-1.5e+3,\"b\":true,\"c\":false,\"d\":null}",
		"{\"q\":\"say \\\"hi\\\"\",\"bs\":\"\\\\\",\"x\":0}",
		"{\"k\\\"ey\":\"v\",\"\":\"\"}",
		"{\"data\":{\"s\":\"}]\\\\\\\"{[\",\"a\":[1,[2,{}],\"]\"]},\"n\":[]}",
		"  { \"spaced\" : [ 1 , { \"x\" : \"y\" } ] , \"u\" : \"\\u00e9\u00e9\" }  ",
	};
	for (size_t k = 0; k < sizeof(objects) / sizeof(objects[0]); k++) {
		const char *in = objects[k];
		char out[256];
		struct hd_json_text_span want[8], got[8];
		struct hd_json_text_scan sc = {.spans = want, .spans_max = 8};
		size_t n = 99;

		assert_int_equal(hd_json_text_minify(in, strlen(in), out, &sc, NULL), 0);
		assert_int_equal(hd_json_text_members(out, sc.out_len, got, 8, &n), 0);
		assert_int_equal(n, sc.nspans);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(got[i].key_off, want[i].key_off);
			assert_int_equal(got[i].key_len, want[i].key_len);
			assert_int_equal(got[i].val_off, want[i].val_off);
			assert_int_equal(got[i].val_len, want[i].val_len);
		}
	}
}

static void test_members_limit(void **state)
{
	const char *obj = "{\"a\":1,\"b\":2,\"c\":3}";
	struct hd_json_text_span spans[3];
	size_t n;

	assert_int_equal(hd_json_text_members(obj, strlen(obj), spans, 2, &n), HD_ETOOBIG);
	assert_int_equal(hd_json_text_members(obj, strlen(obj), spans, 3, &n), 0);
	assert_int_equal(n, 3);
}

static void test_minify_in_place(void **state)
{
	char buf[] = " { \"a\" : [ 1 , \"b c\" ] , \"d\" : { } } ";
	struct hd_json_text_scan sc = {0};
	struct hd_error err;

	assert_int_equal(hd_json_text_minify(buf, strlen(buf), buf, &sc, &err), 0);
	assert_int_equal(sc.out_len, strlen("{\"a\":[1,\"b c\"],\"d\":{}}"));
	assert_memory_equal(buf, "{\"a\":[1,\"b c\"],\"d\":{}}", sc.out_len);
}

/* jansson, an independent parser, must read the minified text as the same value. */
static void test_agrees_with_jansson(void **state)
{
	static const char *const docs[] = {
		"{\"a\": [1, 2.5, -3e2, true, false, null], \"b\": {\"c\": \"\\u00e9\\ud834\\udd1e\"}}",
		"[ \"\xe2\x82\xac\" , { } , [ ] , 0 ]",
		"  \"just a string with \\\"quotes\\\"\"  ",
		"{\"k\\n\": \"v\\t\", \"\": \"\"}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct hd_error err;
		json_error_t jerr;
		char *out;
		assert_int_equal(minify_n(docs[i], strlen(docs[i]), &out, NULL, &err), 0);
		json_t *a = json_loads(docs[i], JSON_DECODE_ANY, &jerr);
		json_t *b = json_loads(out, JSON_DECODE_ANY, &jerr);
		assert_non_null(a);
		assert_non_null(b);
		assert_true(json_equal(a, b));
		assert_null(strchr(out, '\n'));
		json_decref(a);
		json_decref(b);
		free(out);
	}
}

static void test_unescape(void **state)
{
	static const struct {
		const char *tok;
		const char *want;
		size_t want_len;
	} cases[] = {
		{"\"\"", "", 0},
		{"\"plain\"", "plain", 5},
		{"\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7},
		{"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5},
		{"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6},
		{"\"\\ud834\\udd1e!\"", "\xf0\x9d\x84\x9e!", 5},
		{"\"x\\u0000y\"", "x\0y", 3},
		{"\"\\u0069d\"", "id", 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		size_t n = hd_json_text_unescape(cases[i].tok, strlen(cases[i].tok), out);
		assert_int_equal(n, cases[i].want_len);
		assert_memory_equal(out, cases[i].want, n);
		assert_true(n <= strlen(cases[i].tok) - 2);
	}
}

static void test_utf8(void **state)
{
	uint32_t cp;

	assert_int_equal(hd_json_text_utf8_next((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(hd_json_text_utf8_next((const unsigned char *)"\xc2\x80", 2, &cp), 2);
	assert_int_equal(cp, 0x80);
	assert_int_equal(hd_json_text_utf8_next((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(hd_json_text_utf8_next((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	static const char *const bad[] = {
		"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xc2", "\xe2\x82",
		"\xc2\x41", "\xe2\x28\xa1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hd_json_text_utf8_next((const unsigned char *)bad[i], strlen(bad[i]), &cp), 0);
		assert_false(hd_json_text_utf8_valid(bad[i], strlen(bad[i])));
	}
	assert_true(hd_json_text_utf8_valid("", 0));
	assert_true(hd_json_text_utf8_valid("Euro \xe2\x82\xac", 8));

	/* The eight-bytes-at-a-time path: a bad byte at every position of a long text. */
	char text[41];
	memset(text, 'a', sizeof(text));
	assert_true(hd_json_text_utf8_valid(text, sizeof(text)));
	for (size_t i = 0; i < sizeof(text); i++) {
		text[i] = '\xff';
		assert_false(hd_json_text_utf8_valid(text, sizeof(text)));
		text[i] = 'a';
	}
	/* A multi-byte sequence straddling a word boundary. */
	memcpy(text + 6, "\xe2\x82\xac", 3);
	assert_true(hd_json_text_utf8_valid(text, sizeof(text)));
	assert_false(hd_json_text_utf8_valid(text, 8)); /* cut inside the sequence */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minify_removes_only_insignificant_space),
		cmocka_unit_test(test_numbers_keep_their_spelling),
		cmocka_unit_test(test_strings_are_copied_byte_for_byte),
		cmocka_unit_test(test_malformed_text_is_refused_with_its_position),
		cmocka_unit_test(test_every_byte_in_a_string),
		cmocka_unit_test(test_every_byte_at_every_position),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_object_spans),
		cmocka_unit_test(test_array_spans_and_limits),
		cmocka_unit_test(test_members_agree_with_the_scan),
		cmocka_unit_test(test_members_limit),
		cmocka_unit_test(test_minify_in_place),
		cmocka_unit_test(test_agrees_with_jansson),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
