/* Unit tests for consume/pattern.c: a topic pattern's expansion over a fake
 * engine's topic list and the hub's prefix watch — matching and
 * dead-letter topics, paging, the cap and the dead-letter name check,
 * pruning of topics gone, stopping, and a failing list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "consume/pattern.h"
#include "core/config.h"
#include "fake_engine.h"

#define ITEMS_MAX 4096

/* The consumer: an item per topic it takes, counts of every callback. */
struct consumer {
	struct hd_pattern pt;
	int items[ITEMS_MAX];         /* an item is a pointer into this */
	size_t nitems;
	bool take;                    /* take every topic listed or watched */
	size_t listed_new, listed_known, events_new, events_known, gone, done;
	int done_err;
	void *last_gone;
};

static void take(struct consumer *c, const char *topic)
{
	if (!c->take || hd_pattern_admit(&c->pt, topic) != 0)
		return;
	assert_int_equal(hd_pattern_add(&c->pt, topic, &c->items[c->nitems++]), 0);
}

static void listed(void *owner, void *item, const struct hd_topic_info *t)
{
	struct consumer *c = owner;
	if (item) {
		c->listed_known++;
		return;
	}
	c->listed_new++;
	take(c, t->name);
}

static void on_watch(void *owner, void *item, const char *topic, const struct hd_stored_event *ev)
{
	struct consumer *c = owner;
	(void)ev;
	if (item) {
		c->events_known++;
		return;
	}
	c->events_new++;
	take(c, topic);
}

static void gone(void *owner, void *item)
{
	struct consumer *c = owner;
	c->gone++;
	c->last_gone = item;
}

static void list_done(void *owner, int err)
{
	struct consumer *c = owner;
	c->done++;
	c->done_err = err;
}

static const struct hd_pattern_ops ops = {listed, on_watch, gone, list_done};
static const struct hd_pattern_ops ops_no_prune = {listed, on_watch, NULL, list_done};

static struct hd_hub *hub_with(struct fake_engine *f)
{
	struct hd_config cfg;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f->base);
	return hub;
}

static struct consumer *consumer_new(struct hd_hub *hub, const char *pattern, size_t cap,
				     const struct hd_pattern_ops *o)
{
	struct consumer *c = hd_calloc(1, sizeof(*c));
	c->take = true;
	hd_pattern_init(&c->pt, hub, pattern, cap, o, c);
	return c;
}

static void consumer_free(struct consumer *c)
{
	hd_pattern_fini(&c->pt);
	free(c);
}

static void test_list_and_watch(void **state)
{
	struct fake_engine f;
	struct hd_stored_event ev = {.offset = 1};
	(void)state;
	fake_init(&f);
	fake_topic(&f, "o.a");
	fake_topic(&f, "o.a.dlq");    /* dead letters never match */
	fake_topic(&f, "o.b");
	fake_topic(&f, "ob");         /* under the prefix "o." no more */
	fake_topic(&f, "p.a");
	struct hd_hub *hub = hub_with(&f);
	struct consumer *c = consumer_new(hub, "o.*", 10, &ops);
	assert_string_equal(c->pt.prefix, "o.");

	assert_int_equal(hd_pattern_watch(&c->pt), 0);
	assert_true(c->pt.watching);
	hd_pattern_list(&c->pt);
	assert_false(c->pt.listing);
	assert_int_equal(c->done, 1);
	assert_int_equal(c->done_err, 0);
	assert_int_equal(c->listed_new, 2);
	assert_non_null(hd_pattern_get(&c->pt, "o.a"));
	assert_non_null(hd_pattern_get(&c->pt, "o.b"));
	assert_null(hd_pattern_get(&c->pt, "o.a.dlq"));
	assert_int_equal(c->gone, 0);

	/* Events: a new matching topic, a known one, a dead-letter topic and
	 * another prefix. */
	hd_hub_on_event(hub, "o.c", &ev);
	hd_hub_on_event(hub, "o.a", &ev);
	hd_hub_on_event(hub, "o.c.dlq", &ev);
	hd_hub_on_event(hub, "p.x", &ev);
	assert_int_equal(c->events_new, 1);
	assert_int_equal(c->events_known, 1);
	assert_non_null(hd_pattern_get(&c->pt, "o.c"));

	/* Listing again: the known ones are handed over with their item. */
	hd_pattern_list(&c->pt);
	assert_int_equal(c->listed_known, 2);
	assert_int_equal(c->done, 2);

	void *b = hd_pattern_get(&c->pt, "o.b");
	assert_ptr_equal(hd_pattern_remove(&c->pt, "o.b"), b);
	assert_null(hd_pattern_get(&c->pt, "o.b"));

	hd_pattern_stop(&c->pt);
	assert_false(c->pt.watching);
	hd_hub_on_event(hub, "o.d", &ev);
	assert_int_equal(c->events_new, 1); /* stopped: nothing more */
	consumer_free(c);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_pages(void **state)
{
	struct fake_engine f;
	char name[32];
	(void)state;
	fake_init(&f);
	for (int i = 0; i < 2500; i++) {
		snprintf(name, sizeof(name), "o.%05d", i);
		fake_topic(&f, name);
	}
	struct hd_hub *hub = hub_with(&f);
	struct consumer *c = consumer_new(hub, "o.*", ITEMS_MAX, &ops);
	hd_pattern_list(&c->pt);
	assert_int_equal(f.lists, 3); /* 1000 + 1000 + 500 */
	assert_int_equal(c->listed_new, 2500);
	assert_int_equal(c->pt.topics.count, 2500);
	assert_int_equal(c->done, 1);
	consumer_free(c);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_cap_and_dlq_name(void **state)
{
	struct fake_engine f;
	char longname[HD_TOPIC_NAME_MAX + 1];
	(void)state;
	fake_init(&f);
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "o.%d", i);
		fake_topic(&f, name);
	}
	struct hd_hub *hub = hub_with(&f);
	struct consumer *c = consumer_new(hub, "o.*", 3, &ops_no_prune);
	hd_pattern_list(&c->pt);
	assert_int_equal(c->listed_new, 5);
	assert_int_equal(c->pt.topics.count, 3);
	assert_int_equal(hd_pattern_admit(&c->pt, "o.9"), HD_ELIMIT);
	assert_int_equal(hd_pattern_add(&c->pt, "o.9", &c->items[0]), HD_ELIMIT);

	memset(longname, 'x', HD_TOPIC_NAME_MAX);
	longname[HD_TOPIC_NAME_MAX] = '\0';
	assert_int_equal(hd_pattern_admit(&c->pt, longname), HD_EBADTOPIC);
	longname[HD_TOPIC_NAME_MAX - strlen(HD_TOPIC_NAME_DLQ_SUFFIX)] = '\0';
	hd_pattern_remove(&c->pt, "o.0");
	assert_int_equal(hd_pattern_admit(&c->pt, longname), 0); /* its .dlq just fits */
	consumer_free(c);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_prune(void **state)
{
	struct fake_engine f;
	struct hd_stored_event ev = {.offset = 3};
	(void)state;
	fake_init(&f);
	fake_topic(&f, "o.a");
	fake_topic(&f, "o.b");
	struct hd_hub *hub = hub_with(&f);
	struct consumer *c = consumer_new(hub, "o.*", 10, &ops);
	assert_int_equal(hd_pattern_watch(&c->pt), 0);
	/* Loaded before the list: a (listed), c (gone), d (an event only). */
	assert_int_equal(hd_pattern_add(&c->pt, "o.a", &c->items[0]), 0);
	assert_int_equal(hd_pattern_add(&c->pt, "o.c", &c->items[1]), 0);
	assert_int_equal(hd_pattern_add(&c->pt, "o.d", &c->items[2]), 0);
	c->nitems = 3;
	hd_hub_on_event(hub, "o.d", &ev);
	hd_pattern_list(&c->pt);
	assert_int_equal(c->gone, 1);
	assert_ptr_equal(c->last_gone, &c->items[1]);
	assert_null(hd_pattern_get(&c->pt, "o.c"));
	assert_non_null(hd_pattern_get(&c->pt, "o.d"));
	assert_non_null(hd_pattern_get(&c->pt, "o.b")); /* new, taken */

	/* The next prune counts from the last: o.d is gone now. */
	hd_pattern_list(&c->pt);
	assert_int_equal(c->gone, 2);
	assert_ptr_equal(c->last_gone, &c->items[2]);

	/* A list that fails prunes nothing. */
	assert_int_equal(hd_pattern_add(&c->pt, "o.z", &c->items[3]), 0);
	f.fail = HD_ESTORE;
	hd_pattern_list(&c->pt);
	assert_int_equal(c->done_err, HD_ESTORE);
	assert_false(c->pt.listing);
	assert_int_equal(c->gone, 2);
	assert_non_null(hd_pattern_get(&c->pt, "o.z"));
	consumer_free(c);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void test_stopped_list(void **state)
{
	struct fake_engine f;
	(void)state;
	fake_init(&f);
	fake_topic(&f, "o.a");
	struct hd_hub *hub = hub_with(&f);
	struct consumer *c = consumer_new(hub, "o.*", 10, &ops);
	hd_pattern_stop(&c->pt);
	assert_int_equal(hd_pattern_watch(&c->pt), 0);
	assert_false(c->pt.watching);
	hd_pattern_list(&c->pt);
	assert_int_equal(c->done, 1);       /* list_done still runs */
	assert_int_equal(c->listed_new, 0); /* nothing else */
	consumer_free(c);
	hd_hub_free(hub);
	fake_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_and_watch),
		cmocka_unit_test(test_pages),
		cmocka_unit_test(test_cap_and_dlq_name),
		cmocka_unit_test(test_prune),
		cmocka_unit_test(test_stopped_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
