/* Unit tests for the route table of edge/route.c: which row a path and a
 * method find, the parameters handed over, and the Allow list of a 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/route.h"

static void fn(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	(void)req;
	(void)ctx;
}

static void table(struct hd_route_table *t)
{
	static const struct hd_route rows[] = {
		{HD_ROUTE_ANY, "/healthz", HD_ROUTE_OPEN, 0, fn, NULL, 0, 0},
		{HTTP_GET, "/connection/websocket", HD_ROUTE_OPEN, 0, fn, NULL, 0, HD_ROUTE_NO_HEAD},
		{HTTP_GET, "/v1/topics/{topic}/events", HD_ROUTE_READ, 0, fn, NULL, 1, 0},
		{HTTP_POST, "/v1/topics/{topic}/events", HD_ROUTE_KEY, HD_KEY_PUBLISH, fn, NULL, 2, 0},
		{HTTP_GET, "/v1/topics", HD_ROUTE_KEY, HD_KEY_READ, fn, NULL, 3, 0},
		{HTTP_GET, "/v1/topics/", HD_ROUTE_KEY, HD_KEY_READ, fn, NULL, 4, 0},
		{HTTP_GET, "/v1/topics/{topic}", HD_ROUTE_READ, 0, fn, NULL, 5, 0},
		{HTTP_DELETE, "/v1/topics/{topic}", HD_ROUTE_KEY, HD_KEY_ADMIN, fn, NULL, 6, 0},
		{HTTP_PUT, "/v1/topics/{pattern}/groups/{group}", HD_ROUTE_READ, 0, fn, NULL, 7, 0},
		{HTTP_POST, "/v1/users/{user}/notifications", HD_ROUTE_KEY, HD_KEY_PUBLISH, fn, NULL, 8, 0},
		{HTTP_GET, "/v1/users/{user}/cursors/", HD_ROUTE_USER, HD_KEY_ADMIN, fn, NULL, 9, 0},
		{HTTP_DELETE, "/v1/users/{user}/cursors/{name}", HD_ROUTE_USER, HD_KEY_ADMIN, fn, NULL, 11, 0},
		{HTTP_GET, "/v1/subscriptions/{id}/attempts", HD_ROUTE_SELF, 0, fn, NULL, 10, 0},
	};
	hd_route_init(t, NULL);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		hd_route_add(t, &rows[i]);
}

/* The op of the row path and method find, -404 or -405 when none. */
static int find(const struct hd_route_table *t, const char *path, int method,
		struct hd_route_match *m)
{
	hd_route_lookup(t, path, method, m);
	return m->status ? -m->status : m->row->op;
}

static void test_rows_and_methods(void **state)
{
	struct hd_route_table t;
	struct hd_route_match m;
	(void)state;
	table(&t);

	assert_int_equal(find(&t, "/healthz", HTTP_PATCH, &m), 0);
	assert_int_equal(find(&t, "/v1/topics/a/events", HTTP_POST, &m), 2);
	assert_int_equal(find(&t, "/v1/topics/a/events", HTTP_GET, &m), 1);
	assert_int_equal(find(&t, "/v1/topics/a/events", HTTP_HEAD, &m), 1);
	assert_int_equal(find(&t, "/v1/topics", HTTP_GET, &m), 3);
	assert_int_equal(find(&t, "/v1/topics/", HTTP_GET, &m), 4);
	assert_int_equal(find(&t, "/v1/topics/a", HTTP_DELETE, &m), 6);
	/* HEAD reaches a GET row unless the row says no. */
	assert_int_equal(find(&t, "/connection/websocket", HTTP_HEAD, &m), -405);
	/* Literals match whole segments; nothing is left over. */
	assert_int_equal(find(&t, "/v1/topicsx", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/v1/topics/a/", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/v1/topics/a/events/1", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/healthz/x", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/v1/users/42", HTTP_POST, &m), -404);
	assert_int_equal(find(&t, "/v1/subscriptionsx", HTTP_GET, &m), -404);
	assert_int_equal(find(&t, "/v1/users/42/cursorsx", HTTP_GET, &m), -404);
}

static void test_parameters(void **state)
{
	struct hd_route_table t;
	struct hd_route_match m;
	(void)state;
	table(&t);

	assert_int_equal(find(&t, "/v1/topics/user%3A42/events", HTTP_POST, &m), 2);
	assert_int_equal(m.kind, 't');
	assert_int_equal(m.topic_len, 9);
	assert_memory_equal(m.topic, "user%3A42", 9);
	assert_null(m.param);

	assert_int_equal(find(&t, "/v1/topics/orders.*/groups/g1", HTTP_PUT, &m), 7);
	assert_int_equal(m.kind, 'p');
	assert_memory_equal(m.topic, "orders.*", 8);
	assert_int_equal(m.param_len, 2);
	assert_memory_equal(m.param, "g1", 2);

	assert_int_equal(find(&t, "/v1/users/42/notifications", HTTP_POST, &m), 8);
	assert_int_equal(m.kind, 'u');
	assert_int_equal(m.topic_len, 2);

	/* An empty parameter matches: its decoder refuses it (400, not 404). */
	assert_int_equal(find(&t, "/v1/topics//events", HTTP_POST, &m), 2);
	assert_int_equal(m.topic_len, 0);

	/* {name} is any other parameter, handed over raw. */
	assert_int_equal(find(&t, "/v1/subscriptions/a%2Fb/attempts", HTTP_GET, &m), 10);
	assert_int_equal(m.kind, 0);
	assert_int_equal(m.param_len, 5);
	assert_memory_equal(m.param, "a%2Fb", 5);
	assert_int_equal(find(&t, "/v1/subscriptions/abc/attempts/x", HTTP_GET, &m), -404);

	/* A literal empty segment comes before the {name} that would take it. */
	assert_int_equal(find(&t, "/v1/users/7/cursors/", HTTP_GET, &m), 9);
	assert_int_equal(find(&t, "/v1/users/7/cursors/phone", HTTP_DELETE, &m), 11);
	assert_memory_equal(m.param, "phone", 5);
	assert_memory_equal(m.topic, "7", 1);
}

static void test_allow_lists_the_pattern_methods_in_order(void **state)
{
	struct hd_route_table t;
	struct hd_route_match m;
	char allow[64];
	(void)state;
	table(&t);

	assert_int_equal(find(&t, "/v1/topics/a/events", HTTP_PUT, &m), -405);
	hd_route_allow(&t, m.first, allow, sizeof(allow));
	assert_string_equal(allow, "GET, POST");
	assert_int_equal(find(&t, "/v1/topics/a", HTTP_POST, &m), -405);
	hd_route_allow(&t, m.first, allow, sizeof(allow));
	assert_string_equal(allow, "GET, DELETE");
	/* "/v1/topics/" is its own path, not the {topic} rows'. */
	assert_int_equal(find(&t, "/v1/topics/", HTTP_DELETE, &m), -405);
	hd_route_allow(&t, m.first, allow, sizeof(allow));
	assert_string_equal(allow, "GET");
	assert_int_equal(find(&t, "/v1/users/42/notifications", HTTP_GET, &m), -405);
	hd_route_allow(&t, m.first, allow, sizeof(allow));
	assert_string_equal(allow, "POST");
	/* A short buffer is cut at a whole method. */
	assert_int_equal(find(&t, "/v1/topics/a", HTTP_POST, &m), -405);
	hd_route_allow(&t, m.first, allow, 6);
	assert_string_equal(allow, "GET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_and_methods),
		cmocka_unit_test(test_parameters),
		cmocka_unit_test(test_allow_lists_the_pattern_methods_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
