/* Unit tests for the watch lists of hub/hub.c: fan-out order and removal
 * from inside a fire callback; the topic-deleted listeners; the connection
 * registry (what the hub writes to an engine shared by several nodes, and
 * the local answers of hd_hub_reg_query). */
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

static int fake_topic_err; /* what the fake engine's ops answer */

/* Completes at once, with fake_topic_err. */
static int fake_topic_op(struct hd_engine *e, struct hd_topic_op *op)
{
	(void)e;
	engine_ops++;
	op->err = fake_topic_err;
	if (op->done)
		op->done(op);
	return 0;
}

static int topic_done_n;

static void topic_done(struct hd_topic_op *op)
{
	topic_done_n++;
	assert_ptr_equal(op->arg, &topic_done_n); /* the caller's arg, back */
}

static void test_topic_deleted_listeners(void **state)
{
	static const struct hd_engine_ops ops = {.name = "fake", .topic_op = fake_topic_op};
	struct hd_engine engine = {.ops = &ops};
	struct hd_config cfg;
	struct heard a = {0}, b = {0};
	struct hd_topic_op info = {.kind = HD_TOPIC_INFO, .topic = "t"};
	struct hd_topic_op del = {.kind = HD_TOPIC_DELETE, .topic = "t", .done = topic_done,
				  .arg = &topic_done_n};
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
	assert_int_equal(topic_done_n, 3);
	hd_hub_free(hub);
}

/* ---- notices across nodes ---------------------------------------------- */

static char noticed[256];
static int nnoticed;

static void fake_notice(struct hd_engine *e, const char *topic, const char *msg, size_t len)
{
	nnoticed++;
	snprintf(noticed, sizeof(noticed), "%s|%.*s", topic, (int)len, msg);
}

struct joined {
	int n;
	char text[256];
};

static void on_join(void *arg, const char *topic, const char *client, const char *user,
		    const char *infos, size_t infos_len, bool join)
{
	struct joined *j = arg;
	j->n++;
	snprintf(j->text, sizeof(j->text), "%s %s %s %s%s%.*s", join ? "join" : "leave", topic, client,
		 user, infos ? " " : "", (int)infos_len, infos ? infos : "");
}

/* A successful delete through this node is gone for the listeners (after
 * the engine's answer) and a notice for the other nodes; a failed one is
 * neither. Another node's notices run the listeners; joins and leaves
 * become notices. */
static void test_notices(void **state)
{
	static const struct hd_engine_ops ops = {.name = "fake", .topic_op = fake_topic_op,
						 .notice = fake_notice};
	struct hd_engine engine = {.ops = &ops};
	struct hd_config cfg;
	struct heard gone = {0};
	struct joined j = {0};
	struct hd_topic_op del = {.kind = HD_TOPIC_DELETE, .topic = "t", .done = topic_done,
				  .arg = &topic_done_n};
	(void)state;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &engine);
	hd_hub_on_topic_gone(hub, on_deleted, &gone);
	hd_hub_on_join_leave(hub, on_join, &j);
	nnoticed = 0;

	fake_topic_err = HD_ENOTFOUND;
	assert_int_equal(hd_hub_topic_op(hub, &del), 0);
	assert_int_equal(gone.n, 0);
	assert_int_equal(nnoticed, 0);
	fake_topic_err = 0;
	assert_int_equal(hd_hub_topic_op(hub, &del), 0);
	assert_int_equal(gone.n, 1);
	assert_string_equal(gone.topic, "t");
	assert_int_equal(nnoticed, 1);
	assert_string_equal(noticed, "t|deleted");

	hd_hub_on_notice(hub, "other", "deleted", 7);
	assert_int_equal(gone.n, 2);
	assert_string_equal(gone.topic, "other");

	hd_hub_join_leave(hub, "room:1", "c-1", "alice", NULL, NULL, true);
	assert_string_equal(noticed, "room:1|join\nc-1\nalice");
	hd_hub_join_leave(hub, "room:1", "c-1", "alice", "{\"a\":1}", "[2]", false);
	assert_string_equal(noticed, "room:1|leave\nc-1\nalice\n{\"chan_info\":[2],\"info\":{\"a\":1}}");
	nnoticed = 1;
	assert_int_equal(j.n, 0); /* this node's own: the edge told its subscribers */
	hd_hub_on_notice(hub, "room:1", "join\nc-1\nalice", 14);
	assert_int_equal(j.n, 1);
	assert_string_equal(j.text, "join room:1 c-1 alice");
	hd_hub_on_notice(hub, "room:1", "leave\nc-2\n", 10);
	assert_string_equal(j.text, "leave room:1 c-2 ");
	/* With the infos: a sender's object, or a presence entry (the sweep's). */
	static const char with[] = "join\nc-3\nbob\n{\"chan_info\":[2],\"info\":{\"a\":1}}";
	hd_hub_on_notice(hub, "room:1", with, sizeof(with) - 1);
	assert_string_equal(j.text, "join room:1 c-3 bob {\"chan_info\":[2],\"info\":{\"a\":1}}");
	/* Malformed or unknown notices are ignored. */
	hd_hub_on_notice(hub, "room:1", "leave\nc-2", 9);
	hd_hub_on_notice(hub, "room:1", "wave\nc\nu", 8);
	hd_hub_on_notice(hub, "room:1", "", 0);
	assert_int_equal(j.n, 3);
	assert_int_equal(gone.n, 2);

	hd_hub_off_join_leave(hub, on_join, &j);
	hd_hub_off_topic_gone(hub, on_deleted, &gone);
	hd_hub_on_notice(hub, "room:1", "join\nc-1\nalice", 14);
	hd_hub_on_notice(hub, "x", "deleted", 7);
	assert_int_equal(j.n, 3);
	assert_int_equal(gone.n, 2);
	hd_hub_free(hub);
}

/* ---- the connection registry ------------------------------------------ */

struct regcall {
	enum hd_reg_kind kind;
	char key[64], client[64], value[1024];
	bool del;
};
static struct regcall calls[32];
static size_t ncalls;
static hd_engine_reg_flush_fn flush_fn;
static void *flush_arg;

static void fake_reg_put(struct hd_engine *e, enum hd_reg_kind kind, const char *key,
			 const char *client, const char *value)
{
	assert_true(ncalls < 32);
	struct regcall *c = &calls[ncalls++];
	c->kind = kind;
	snprintf(c->key, sizeof(c->key), "%s", key);
	snprintf(c->client, sizeof(c->client), "%s", client);
	snprintf(c->value, sizeof(c->value), "%s", value ? value : "");
	c->del = value == NULL;
}

static void fake_reg_flush(struct hd_engine *e, hd_engine_reg_flush_fn fn, void *arg)
{
	flush_fn = fn;
	flush_arg = arg;
}

/* A connection following the topics in names. */
struct tconn {
	struct hd_conn c;
	const char *names[4];
	size_t n;
};

static void tconn_topics(const struct hd_conn *c, void (*each)(void *arg, const char *topic), void *arg)
{
	const struct tconn *t = (const struct tconn *)c;
	for (size_t i = 0; i < t->n; i++)
		each(arg, t->names[i]);
}

static void tconn_init(struct tconn *t, const char *id, const char *user)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->c.id, sizeof(t->c.id), "%s", id);
	snprintf(t->c.user, sizeof(t->c.user), "%s", user);
	snprintf(t->c.remote, sizeof(t->c.remote), "127.0.0.1:5");
	t->c.transport = "sse";
	t->c.since_ms = 1000;
	t->c.topics = tconn_topics;
}

static void nop_fire(struct hd_watch *w, const char *topic, const struct hd_stored_event *ev)
{
}

/* Writes follow the connection's life: presence per topic watch once it is
 * added (a watch made before, as SSE does, is written at the add), its
 * listing when the engine's batch asks, removals at unwatch and remove. */
static void test_registry_writes(void **state)
{
	struct hd_config cfg;
	static const struct hd_engine_ops ops = {.name = "fake", .reg_put = fake_reg_put,
						 .reg_flush = fake_reg_flush};
	struct hd_engine engine = {.ops = &ops};
	struct tconn t;
	struct hd_watch w = {.fire = nop_fire};
	hd_config_defaults(&cfg);
	snprintf(cfg.node_name, sizeof(cfg.node_name), "n1");
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &engine);
	ncalls = 0;
	flush_fn = NULL;

	tconn_init(&t, "c1", "u1");
	w.conn = &t.c;
	t.names[t.n++] = "room";
	assert_int_equal(hd_hub_watch(hub, "room", &w), 0);
	assert_int_equal(ncalls, 0); /* not added yet: no id or user known */
	hd_hub_conn_add(hub, &t.c);
	assert_int_equal(ncalls, 2);
	assert_int_equal(calls[1].kind, HD_REG_ONLINE); /* the user's first connection */
	assert_string_equal(calls[1].client, "u1");
	assert_string_equal(calls[1].value, "1");
	assert_int_equal(calls[0].kind, HD_REG_TOPIC);
	assert_string_equal(calls[0].key, "room");
	assert_string_equal(calls[0].client, "c1");
	assert_string_equal(calls[0].value,
			    "{\"id\":\"c1\",\"transport\":\"sse\",\"user\":\"u1\",\"node\":\"n1\"}");
	/* The listing goes with the batch. */
	assert_non_null(flush_fn);
	flush_fn(flush_arg, false);
	assert_int_equal(ncalls, 3);
	assert_int_equal(calls[2].kind, HD_REG_USER);
	assert_string_equal(calls[2].key, "u1");
	assert_non_null(strstr(calls[2].value, "\"node\":\"n1\",\"topics\":[\"room\"]"));
	flush_fn(flush_arg, false); /* nothing changed: nothing written */
	assert_int_equal(ncalls, 3);
	/* After a reconnect, everything again (online, listing, presence). */
	flush_fn(flush_arg, true);
	assert_int_equal(ncalls, 6);
	/* Unwatch and remove take the entries away. */
	t.n = 0;
	hd_hub_unwatch(hub, &w);
	assert_true(calls[6].del && calls[6].kind == HD_REG_TOPIC);
	hd_hub_conn_remove(hub, &t.c);
	assert_true(calls[ncalls - 2].del && calls[ncalls - 2].kind == HD_REG_USER);
	assert_true(calls[ncalls - 1].del && calls[ncalls - 1].kind == HD_REG_ONLINE);
	size_t n = ncalls;
	flush_fn(flush_arg, false); /* the removed connection's listing is not written */
	assert_int_equal(ncalls, n);
	hd_hub_free(hub);
}

static struct hd_hub_reg *answered;

static void reg_done(struct hd_hub_reg *q)
{
	answered = q;
}

/* Without registry ops the hub answers from its own lists, at once. */
static void test_registry_local_answers(void **state)
{
	struct hd_config cfg;
	static const struct hd_engine_ops ops = {.name = "fake"};
	struct hd_engine engine = {.ops = &ops};
	struct tconn a, b, anon;
	struct hd_watch wa = {.fire = nop_fire}, wb = {.fire = nop_fire}, wn = {.fire = nop_fire};
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &engine);
	tconn_init(&a, "c-a", "zed");
	tconn_init(&b, "c-b", "amy");
	tconn_init(&anon, "c-n", "");
	wa.conn = &a.c;
	wb.conn = &b.c;
	wn.conn = &anon.c;
	hd_hub_conn_add(hub, &a.c);
	hd_hub_conn_add(hub, &b.c);
	hd_hub_conn_add(hub, &anon.c);
	hd_hub_watch(hub, "room", &wa);
	hd_hub_watch(hub, "room", &wb);
	hd_hub_watch(hub, "room", &wn);

	struct hd_hub_reg q = {.kind = HD_REG_TOPIC, .key = "room", .done = reg_done};
	answered = NULL;
	assert_int_equal(hd_hub_reg_query(hub, &q), 0);
	assert_ptr_equal(answered, &q);
	assert_int_equal(q.n, 3);
	assert_string_equal(q.items[0].user, ""); /* sorted by user */
	assert_string_equal(q.items[1].user, "amy");
	assert_string_equal(q.items[2].id, "c-a");
	assert_int_equal(hd_hub_reg_users(&q), 2);
	hd_hub_reg_fini(&q);
	hd_hub_reg_fini(&q); /* again: nothing */

	struct hd_hub_reg u = {.kind = HD_REG_USER, .key = "zed", .done = reg_done};
	assert_int_equal(hd_hub_reg_query(hub, &u), 0);
	assert_int_equal(u.n, 1);
	assert_string_equal(u.items[0].transport, "sse");
	assert_non_null(strstr(u.items[0].json, "\"id\":\"c-a\""));
	hd_hub_reg_fini(&u);

	hd_hub_unwatch(hub, &wa);
	hd_hub_unwatch(hub, &wb);
	hd_hub_unwatch(hub, &wn);
	hd_hub_conn_remove(hub, &a.c);
	hd_hub_conn_remove(hub, &b.c);
	hd_hub_conn_remove(hub, &anon.c);
	hd_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fan_out_and_removal_while_firing),
		cmocka_unit_test(test_prefix_watches),
		cmocka_unit_test(test_topic_deleted_listeners),
		cmocka_unit_test(test_notices),
		cmocka_unit_test(test_registry_writes),
		cmocka_unit_test(test_registry_local_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
