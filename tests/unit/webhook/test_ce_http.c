/*
 * Unit tests for webhook/ce_http.c: the binding's percent-encoding, the
 * structured request (the stored JSON byte for byte), and binary requests
 * for JSON data (kept exactly as stored), text data, data_base64, no data,
 * extensions of every type, and an event with too many attributes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "webhook/ce_http.h"

static const char *header(const struct hd_ce_http *h, const char *name)
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (strcmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

static void test_percent_encoding(void **state)
{
	char out[64];
	(void)state;
	const char *euro = "Euro \xe2\x82\xac";
	assert_int_equal(hd_ce_http_header_encode(euro, strlen(euro), out, sizeof(out)), 16);
	assert_string_equal(out, "Euro%20%E2%82%AC");
	assert_int_equal(hd_ce_http_header_encode("a\"b%c", 5, out, sizeof(out)), 9);
	assert_string_equal(out, "a%22b%25c");
	assert_int_equal(hd_ce_http_header_encode("\t~!", 3, out, sizeof(out)), 5);
	assert_string_equal(out, "%09~!");
	assert_int_equal(hd_ce_http_header_encode("abc", 3, out, 3), -1);
}

static void test_structured(void **state)
{
	struct hd_ce_http h;
	struct hd_error err = {0};
	const char *ev = "{\"specversion\":\"1.0\",\"id\":\"1\",\"data\":{\"x\":1.10}}";
	(void)state;
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_STRUCTURED, ev, strlen(ev), &err), 0);
	assert_ptr_equal(h.body, ev);
	assert_int_equal(h.body_len, strlen(ev));
	assert_int_equal(h.nheaders, 1);
	assert_string_equal(header(&h, "content-type"), "application/cloudevents+json; charset=utf-8");
	hd_ce_http_fini(&h);
}

static void test_binary_json(void **state)
{
	struct hd_ce_http h;
	struct hd_error err = {0};
	const char *ev = "{\"specversion\":\"1.0\",\"id\":\"a1\",\"source\":\"/s\",\"type\":\"t\","
			 "\"subject\":\"Euro \xe2\x82\xac\",\"time\":\"2026-01-01T00:00:00Z\","
			 "\"data\":{\"total\":1.10,\"s\":\"}\\\"{\"},\"flag\":true,\"n\":-7,"
			 "\"gone\":null,\"topic\":\"orders\",\"offset\":12}";
	(void)state;
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, ev, strlen(ev), &err), 0);
	assert_int_equal(h.body_len, strlen("{\"total\":1.10,\"s\":\"}\\\"{\"}"));
	assert_memory_equal(h.body, "{\"total\":1.10,\"s\":\"}\\\"{\"}", h.body_len);
	assert_string_equal(header(&h, "content-type"), "application/json");
	assert_string_equal(header(&h, "ce-id"), "a1");
	assert_string_equal(header(&h, "ce-specversion"), "1.0");
	assert_string_equal(header(&h, "ce-subject"), "Euro%20%E2%82%AC");
	assert_string_equal(header(&h, "ce-flag"), "true");
	assert_string_equal(header(&h, "ce-n"), "-7");
	assert_string_equal(header(&h, "ce-offset"), "12");
	assert_string_equal(header(&h, "ce-topic"), "orders");
	assert_null(header(&h, "ce-gone"));
	assert_null(header(&h, "ce-data"));
	assert_null(header(&h, "ce-datacontenttype"));
	hd_ce_http_fini(&h);
}

static void test_binary_text_base64_none(void **state)
{
	struct hd_ce_http h;
	struct hd_error err = {0};
	(void)state;
	const char *text = "{\"id\":\"1\",\"datacontenttype\":\"text/plain\",\"data\":\"a\\nb\"}";
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, text, strlen(text), &err), 0);
	assert_int_equal(h.body_len, 3);
	assert_memory_equal(h.body, "a\nb", 3);
	assert_string_equal(header(&h, "content-type"), "text/plain");
	hd_ce_http_fini(&h);

	/* A JSON string under a JSON type stays JSON text. */
	const char *jstr = "{\"id\":\"1\",\"data\":\"hi\"}";
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, jstr, strlen(jstr), &err), 0);
	assert_int_equal(h.body_len, 4);
	assert_memory_equal(h.body, "\"hi\"", 4);
	hd_ce_http_fini(&h);

	const char *b64 = "{\"id\":\"1\",\"datacontenttype\":\"image/png\",\"data_base64\":\"AAEC/w==\"}";
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, b64, strlen(b64), &err), 0);
	assert_int_equal(h.body_len, 4);
	assert_memory_equal(h.body, "\x00\x01\x02\xff", 4);
	assert_string_equal(header(&h, "content-type"), "image/png");
	hd_ce_http_fini(&h);

	const char *none = "{\"id\":\"1\",\"type\":\"t\"}";
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, none, strlen(none), &err), 0);
	assert_int_equal(h.body_len, 0);
	assert_null(header(&h, "content-type"));
	assert_string_equal(header(&h, "ce-type"), "t");
	hd_ce_http_fini(&h);
}

static void test_binary_refused(void **state)
{
	struct hd_ce_http h;
	struct hd_error err = {0};
	char ev[8192];
	size_t n = 0;
	(void)state;
	n += (size_t)snprintf(ev + n, sizeof(ev) - n, "{\"id\":\"1\"");
	for (int i = 0; i < HD_CE_HTTP_HEADERS_MAX + 2; i++)
		n += (size_t)snprintf(ev + n, sizeof(ev) - n, ",\"x%d\":\"v\"", i);
	snprintf(ev + n, sizeof(ev) - n, "}");
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, ev, strlen(ev), &err), HD_EBADEVENT);
	hd_ce_http_fini(&h);
	assert_int_equal(hd_ce_http_encode(&h, HD_SUB_BINARY, "[1]", 3, &err), HD_EBADEVENT);
	hd_ce_http_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percent_encoding),
		cmocka_unit_test(test_structured),
		cmocka_unit_test(test_binary_json),
		cmocka_unit_test(test_binary_text_base64_none),
		cmocka_unit_test(test_binary_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
