/* Unit tests for the console's embedded files (edge/ui.c and the table
 * cmake/embed_ui.cmake generates): every file of ui/ is there with its
 * bytes, a content type and a strong ETag, and hd_ui_find finds exactly
 * the names it holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "edge/ui.h"
#include "edge/ui_assets.h"

#ifndef HD_UI_SOURCE_DIR
#define HD_UI_SOURCE_DIR "ui"
#endif

static void test_index_and_scripts_present(void **state)
{
	(void)state;
	const char *want[] = {"index.html", "app.js", "chart.js", "console.css"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct hd_ui_asset *a = hd_ui_find(want[i], strlen(want[i]));
		assert_non_null(a);
		assert_true(a->len > 0);
		assert_int_equal(a->data[a->len], 0); /* NUL after the last byte */
	}
	assert_string_equal(hd_ui_find("index.html", 10)->type, "text/html; charset=utf-8");
	assert_string_equal(hd_ui_find("app.js", 6)->type, "text/javascript; charset=utf-8");
	assert_string_equal(hd_ui_find("console.css", 11)->type, "text/css; charset=utf-8");
}

static void test_etags_strong_and_distinct(void **state)
{
	(void)state;
	for (size_t i = 0; i < hd_ui_assets_n; i++) {
		const char *e = hd_ui_assets[i].etag;
		assert_int_equal(strlen(e), 18);
		assert_int_equal(e[0], '"');
		assert_int_equal(e[17], '"');
		assert_int_equal(strspn(e + 1, "0123456789abcdef"), 16);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(e, hd_ui_assets[j].etag);
	}
}

static void test_find_exact_names_only(void **state)
{
	(void)state;
	assert_null(hd_ui_find("", 0));
	assert_null(hd_ui_find("app.j", 5));
	assert_null(hd_ui_find("app.jsx", 7));
	assert_null(hd_ui_find("../CMakeLists.txt", 17));
	assert_non_null(hd_ui_find("app.js/x", 6)); /* the length decides */
}

/* The embedded bytes are the file's bytes. */
static void test_bytes_match_the_source(void **state)
{
	(void)state;
	for (size_t i = 0; i < hd_ui_assets_n; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", HD_UI_SOURCE_DIR, hd_ui_assets[i].name);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		size_t n = 0;
		int c;
		while ((c = fgetc(f)) != EOF) {
			assert_true(n < hd_ui_assets[i].len);
			assert_int_equal((unsigned char)c, hd_ui_assets[i].data[n]);
			n++;
		}
		fclose(f);
		assert_int_equal(n, hd_ui_assets[i].len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_and_scripts_present),
		cmocka_unit_test(test_etags_strong_and_distinct),
		cmocka_unit_test(test_find_exact_names_only),
		cmocka_unit_test(test_bytes_match_the_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
