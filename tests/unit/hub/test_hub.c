/* Unit tests for the watch lists of hub/hub.c: fan-out order and removal
 * from inside a fire callback; and the topic-deleted listeners. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "hub/hub.h"

struct probe {
	struct hd_watch w;
	struct hd_hub *hub;
	int fired;
	struct probe *remove; /* unwatched when this probe fires */
};

static void fire(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
	struct probe *p = w->arg;
	p->fired++;
	if (p->remove)
		hd_hub_unwatch(p->hub, &p->remove->w);
}

static void add(struct hd_hub *hub, struct probe *p, const char *topic)
{
	memset(p, 0, sizeof(*p));
	p->hub = hub;
	p->w.fire = fire;
	p->w.arg = p;
	assert_int_equal(hd_hub_watch(hub, topic, &p->w), 0);
}

static void test_fan_out_and_removal_while_firing(void **state)
{
	struct hd_config cfg;
	struct hd_stored_event ev = {.offset = 1};
	struct probe a, b, c, d;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);

	add(hub, &a, "t");
	add(hub, &b, "t");
	add(hub, &c, "t");
	add(hub, &d, "other");
	assert_int_equal(hd_hub_watchers(hub, "t"), 3);

	/* The newest watch fires first (c, b, a); c removes b before it fires
	 * and a removes itself: neither may be touched after removal. */
	c.remove = &b;
	a.remove = &a;
	hd_hub_on_event(hub, "t", &ev);
	assert_int_equal(c.fired, 1);
	assert_int_equal(b.fired, 0);
	assert_int_equal(a.fired, 1);
	assert_int_equal(d.fired, 0);
	assert_int_equal(hd_hub_watchers(hub, "t"), 1);

	/* The last watch of a topic removing itself frees the list. */
	c.remove = &c;
	hd_hub_on_event(hub, "t", &ev);
	assert_int_equal(c.fired, 2);
	assert_int_equal(hd_hub_watchers(hub, "t"), 0);
	hd_hub_on_event(hub, "t", &ev); /* nobody left: a no-op */

	/* Removing outside a fire, and twice, is fine. */
	hd_hub_unwatch(hub, &d.w);
	hd_hub_unwatch(hub, &d.w);
	assert_int_equal(hd_hub_watchers(hub, "other"), 0);
	hd_hub_free(hub);
}

/* Prefix watches fire for every topic under their prefix, after the
 * topic's own watchers, and may remove themselves while firing. */
static void test_prefix_watches(void **state)
{
	struct hd_config cfg;
	struct hd_stored_event ev = {.offset = 1};
	struct probe exact, orders, all;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);

	add(hub, &exact, "orders.eu");
	memset(&orders, 0, sizeof(orders));
	orders.hub = hub;
	orders.w.fire = fire;
	orders.w.arg = &orders;
	all = orders;
	all.w.arg = &all;
	assert_int_equal(hd_hub_watch_prefix(hub, "orders.", &orders.w), 0);
	assert_int_equal(hd_hub_watch_prefix(hub, "o", &all.w), 0);
	assert_int_equal(hd_hub_watch_prefix(hub, "", &all.w), HD_EINVAL);

	hd_hub_on_event(hub, "orders.eu", &ev);
	hd_hub_on_event(hub, "orders.us", &ev);
	hd_hub_on_event(hub, "ordersx", &ev);
	hd_hub_on_event(hub, "users", &ev);
	assert_int_equal(exact.fired, 1);
	assert_int_equal(orders.fired, 2);
	assert_int_equal(all.fired, 3);
	assert_int_equal(hd_hub_watchers(hub, "orders.us"), 0); /* prefix watches not counted */

	orders.remove = &orders;
	hd_hub_on_event(hub, "orders.us", &ev);
	assert_int_equal(orders.fired, 3);
	hd_hub_on_event(hub, "orders.us", &ev);
	assert_int_equal(orders.fired, 3);
	assert_int_equal(all.fired, 5);
	hd_hub_unwatch(hub, &all.w);
	hd_hub_unwatch(hub, &exact.w);
	hd_hub_on_event(hub, "orders.eu", &ev);
	assert_int_equal(all.fired, 5);
	hd_hub_free(hub);
}

/* ---- topic deletion as a hub event ------------------------------------- */

struct heard {
	int n;
	char topic[64];
	int order; /* this listener's turn, from the shared counter */
};
static int turn;
static int engine_ops;

static void on_deleted(void *arg, const char *topic)
{
	struct heard *h = arg;
	h->n++;
	h->order = ++turn;
	snprintf(h->topic, sizeof(h->topic), "%s", topic);
}

static int fake_topic_op(struct hd_engine *e, struct hd_topic_op *op)
{
	(void)e;
	(void)op;
	engine_ops++;
	return 0;
}

static void test_topic_deleted_listeners(void **state)
{
	static const struct hd_engine_ops ops = {.name = "fake", .topic_op = fake_topic_op};
	struct hd_engine engine = {.ops = &ops};
	struct hd_config cfg;
	struct heard a = {0}, b = {0};
	struct hd_topic_op info = {.kind = HD_TOPIC_INFO, .topic = "t"};
	struct hd_topic_op del = {.kind = HD_TOPIC_DELETE, .topic = "t"};
	(void)state;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &engine);

	hd_hub_on_topic_deleted(hub, on_deleted, &a);
	hd_hub_on_topic_deleted(hub, on_deleted, &b);
	/* Only a delete is an event; the engine gets every op. */
	assert_int_equal(hd_hub_topic_op(hub, &info), 0);
	assert_int_equal(a.n + b.n, 0);
	assert_int_equal(hd_hub_topic_op(hub, &del), 0);
	assert_int_equal(engine_ops, 2);
	assert_int_equal(a.n, 1);
	assert_int_equal(b.n, 1);
	assert_string_equal(a.topic, "t");
	assert_true(a.order < b.order); /* in the order they were added */
	/* A removed listener hears nothing more; the other still does. */
	hd_hub_off_topic_deleted(hub, on_deleted, &a);
	assert_int_equal(hd_hub_topic_op(hub, &del), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(b.n, 2);
	hd_hub_off_topic_deleted(hub, on_deleted, &b);
	hd_hub_off_topic_deleted(hub, on_deleted, &b); /* not added: ignored */
	assert_int_equal(hd_hub_topic_op(hub, &del), 0);
	assert_int_equal(b.n, 2);
	hd_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fan_out_and_removal_while_firing),
		cmocka_unit_test(test_prefix_watches),
		cmocka_unit_test(test_topic_deleted_listeners),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
