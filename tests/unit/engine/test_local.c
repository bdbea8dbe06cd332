/*
 * test_local — unit tests of the local engine's set of topic names
 * (src/engine/local.c): a read of a topic that does not exist is answered
 * on the loop, at once, and the set follows every commit and delete.
 *
 * Each test runs a real engine (store in a fresh temporary directory) on
 * its own libuv loop. "Answered at once" means the read's done() ran before
 * hd_engine_read returned; a store read can only finish on a later loop
 * turn. The loop is run until a condition holds, with a deadline and a
 * 20 ms timer so a missed wake-up fails the test instead of hanging it.
 */
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "engine/local.h"
#include "proto/cloudevent.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 20000

static struct {
	char dir[64];
	uv_loop_t loop;
	uv_timer_t tick;
	struct hd_engine *e;
	size_t max_names;
	/* on_event's last call */
	char ev_topic[64];
	uint64_t ev_offset;
	size_t events;
} H;

static void policy(void *arg, const char *topic, struct hd_topic_policy *out)
{
	memset(out, 0, sizeof(*out));
	out->history = true;
}

static void on_event(void *arg, const char *topic, const struct hd_stored_event *ev)
{
	snprintf(H.ev_topic, sizeof(H.ev_topic), "%s", topic);
	H.ev_offset = ev->offset;
	H.events++;
}

static void on_tick(uv_timer_t *t)
{
}

static void engine_open(void)
{
	struct hd_local_opts o = {
		.store = {.dir = H.dir,
			  .sync = HD_SYNC_NORMAL,
			  .commit_max_events = 1024,
			  .queue_max_events = 4096,
			  .readers = 2,
			  .policy = policy},
		.ring_events = 16,
		.ring_bytes = 65536,
		.max_topics_in_memory = 1000,
		.max_topic_names = H.max_names,
		.on_event = on_event,
	};
	struct hd_error err = {0};
	H.e = hd_local_engine_new(&H.loop, &o, &err);
	if (!H.e)
		fail_msg("open: %s", err.msg);
}

static void engine_close(void)
{
	if (!H.e)
		return;
	H.e->ops->free(H.e);
	H.e = NULL;
	/* Its handle closes (and its pool jobs end) on the next turns: with the
	 * tick stopped, the loop returns once they are all done. */
	uv_timer_stop(&H.tick);
	uv_run(&H.loop, UV_RUN_DEFAULT);
	uv_timer_start(&H.tick, on_tick, 20, 20);
}

static void reopen(size_t max_names)
{
	engine_close();
	H.max_names = max_names;
	engine_open();
}

/* Runs the loop until *flag is true (bounded). */
static void run_until(const bool *flag)
{
	uint64_t end = hd_mono_ms() + WAIT_MS;
	while (!*flag) {
		assert_true(hd_mono_ms() < end);
		uv_run(&H.loop, UV_RUN_ONCE);
	}
}

static int setup(void **state)
{
	memset(&H, 0, sizeof(H));
	snprintf(H.dir, sizeof(H.dir), "/tmp/herald-local-XXXXXX");
	if (!mkdtemp(H.dir))
		return -1;
	if (uv_loop_init(&H.loop))
		return -1;
	uv_timer_init(&H.loop, &H.tick);
	uv_timer_start(&H.tick, on_tick, 20, 20);
	engine_open();
	return 0;
}

static int teardown(void **state)
{
	static const char *const files[] = {"herald.db", "herald.db-wal", "herald.db-shm",
					    "herald.lock"};
	char path[128];
	engine_close();
	uv_close((uv_handle_t *)&H.tick, NULL);
	uv_run(&H.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&H.loop), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", H.dir, files[i]);
		unlink(path);
	}
	rmdir(H.dir);
	return 0;
}

/* ---- requests ---------------------------------------------------------- */

struct pub_req {
	struct hd_pub p;
	struct hd_pub_item item;
	struct hd_event ev;
	char json[64];
	char id[16];
	bool done;
};

static void pub_done(struct hd_pub *p)
{
	((struct pub_req *)p->arg)->done = true;
}

/* Submits one event to topic; the caller runs the loop for it. */
static void publish_start(struct pub_req *q, const char *topic)
{
	static unsigned seq;
	memset(q, 0, sizeof(*q));
	snprintf(q->id, sizeof(q->id), "e%u", ++seq);
	snprintf(q->json, sizeof(q->json), "{\"id\":\"%s\",\"data\":1}", q->id);
	q->ev.id = q->id;
	q->ev.source = "test";
	q->ev.json = q->json;
	q->ev.json_len = strlen(q->json);
	q->item.topic = topic;
	q->item.event = &q->ev;
	q->item.stored_ms = hd_now_ms();
	q->p.items = &q->item;
	q->p.n = 1;
	q->p.done = pub_done;
	q->p.arg = q;
	assert_int_equal(hd_engine_publish(H.e, &q->p), 0);
}

static uint64_t publish(const char *topic)
{
	struct pub_req q;
	publish_start(&q, topic);
	run_until(&q.done);
	assert_int_equal(q.item.err, 0);
	return q.item.offset;
}

struct read_req {
	struct hd_read r;
	bool done;
};

static void read_done(struct hd_read *r)
{
	((struct read_req *)r->arg)->done = true;
}

/* Reads the top of topic; *at_once tells whether it was answered before
 * hd_engine_read returned. */
static void read_top(struct read_req *q, const char *topic, bool *at_once)
{
	memset(q, 0, sizeof(*q));
	q->r.topic = topic;
	q->r.after = 0;
	q->r.limit = 10;
	q->r.done = read_done;
	q->r.arg = q;
	assert_int_equal(hd_engine_read(H.e, &q->r), 0);
	*at_once = q->done;
	run_until(&q->done);
	assert_int_equal(q->r.err, 0);
}

struct topic_req {
	struct hd_topic_op op;
	bool done;
};

static void topic_done(struct hd_topic_op *op)
{
	((struct topic_req *)op->arg)->done = true;
}

static int delete_topic(const char *topic)
{
	struct topic_req q = {.op = {.kind = HD_TOPIC_DELETE, .topic = topic, .done = topic_done}};
	q.op.arg = &q;
	assert_int_equal(hd_engine_topic_op(H.e, &q.op), 0);
	run_until(&q.done);
	int err = q.op.err;
	hd_engine_topic_op_fini(&q.op);
	return err;
}

/* Asserts a read of topic says "absent" and whether it came at once. */
static void expect_absent(const char *topic, bool at_once)
{
	struct read_req q;
	bool now;
	read_top(&q, topic, &now);
	assert_int_equal(now, at_once);
	assert_false(q.r.exists);
	assert_int_equal(q.r.last, 0);
	assert_int_equal(q.r.n, 0);
	assert_string_equal(q.r.epoch, "");
	hd_engine_read_fini(&q.r);
}

static void expect_last(const char *topic, uint64_t last)
{
	struct read_req q;
	bool now;
	read_top(&q, topic, &now);
	assert_true(q.r.exists);
	assert_int_equal(q.r.last, last);
	assert_int_equal(q.r.n, last);
	hd_engine_read_fini(&q.r);
}

/* ---- tests ------------------------------------------------------------- */

/* A topic nobody published to: answered at once, as the store would. */
static void test_absent_at_once(void **state)
{
	expect_absent("user:alice", true);
	expect_absent("user:bob", true);
	publish("news");
	expect_last("news", 1);
	expect_absent("user:alice", true);
}

/* A subscriber that reads while the first publish is in flight sees
 * "absent, last 0", then offset 1 through on_event: the set learns of the
 * topic when its commit is drained, which is when the event fans out. */
static void test_first_publish_in_flight(void **state)
{
	struct pub_req q;
	publish_start(&q, "user:carol");
	expect_absent("user:carol", true);
	assert_int_equal(H.events, 0);
	run_until(&q.done);
	assert_int_equal(H.events, 1);
	assert_string_equal(H.ev_topic, "user:carol");
	assert_int_equal(H.ev_offset, 1);
	expect_last("user:carol", 1);
}

/* The names on disk are loaded at start: an existing topic not in memory
 * goes to the store, an absent one does not. */
static void test_loaded_at_start(void **state)
{
	publish("a");
	publish("b");
	publish("b");
	reopen(0);
	struct read_req q;
	bool now;
	read_top(&q, "b", &now);
	assert_false(now); /* not in memory after a restart: a store read */
	assert_true(q.r.exists);
	assert_int_equal(q.r.last, 2);
	hd_engine_read_fini(&q.r);
	expect_last("a", 1);
	expect_absent("c", true);
}

/* A delete removes the name; a publish after it adds it back. */
static void test_delete(void **state)
{
	publish("d");
	assert_int_equal(delete_topic("d"), 0);
	expect_absent("d", true);
	assert_int_equal(delete_topic("d"), HD_ENOTFOUND);
	expect_absent("d", true);
	assert_int_equal(publish("d"), 1);
	expect_last("d", 1);
	reopen(0);
	expect_last("d", 1);
}

/* More topics on disk than the bound at start: absence is read from the
 * store (still right, not at once). */
static void test_bound_at_start(void **state)
{
	publish("x1");
	publish("x2");
	publish("x3");
	reopen(2);
	expect_absent("y", false);
	expect_last("x3", 1);
	reopen(3); /* exactly at the bound: held */
	expect_absent("y", true);
}

/* Crossing the bound while running drops the set: absence goes back to
 * the store, and every answer stays right. */
static void test_bound_crossed(void **state)
{
	reopen(2);
	publish("p1");
	publish("p2");
	expect_absent("q", true);
	publish("p3"); /* a third name does not fit */
	expect_absent("q", false);
	expect_last("p1", 1);
	expect_last("p3", 1);
	assert_int_equal(delete_topic("p3"), 0);
	expect_absent("p3", false);
}

int main(void)
{
	hd_log_min = HD_LOG_ERROR;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_absent_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_publish_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loaded_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_crossed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
