/* Unit tests for the watch lists of hub/hub.c: fan-out order and removal
 * from inside a fire callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fan_out_and_removal_while_firing),
		cmocka_unit_test(test_prefix_watches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
