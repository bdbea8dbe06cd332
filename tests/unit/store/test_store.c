/*
 * test_store — unit tests of src/store/ (store.c, writer.c, retention.c,
 * reader.c, schema.c, topic_cache.c) against a real SQLite database in a
 * fresh temporary directory per test.
 *
 * The harness plays the engine: it submits batches on the test thread,
 * waits for the writer's notify (a condition variable, with a deadline)
 * and drains. Maintenance tests poll a condition in a bounded loop; nothing
 * is synchronised by sleeping a fixed time.
 * Topic policies come from the name's namespace (see policy()).
 */
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"
#include "store/store_impl.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 20000

static struct {
	char dir[64];
	struct hd_store *s;
	struct hd_store_opts opts;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int notified;
	bool block_next; /* the next notify blocks the writer until released */
	bool blocked;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Namespaces: "nohist:" keeps no history, "cap:" keeps 3 events, "age:"
 * keeps 60 s, "dd:" dedups within 1 s; anything else keeps everything. */
static void policy(void *arg, const char *topic, struct hd_topic_policy *out)
{
	memset(out, 0, sizeof(*out));
	out->history = strncmp(topic, "nohist:", 7) != 0;
	if (strncmp(topic, "cap:", 4) == 0)
		out->max_count = 3;
	if (strncmp(topic, "age:", 4) == 0)
		out->max_age_ms = 60000;
	if (strncmp(topic, "dd:", 3) == 0)
		out->dedup_window_ms = 1000;
	if (strncmp(topic, "ddn:", 4) == 0) { /* claims only in the dedup table */
		out->dedup_window_ms = 1000;
		out->history = false;
	}
	if (strncmp(topic, "ddc:", 4) == 0) { /* claims outlive the events */
		out->dedup_window_ms = 3600 * 1000;
		out->max_count = 2;
	}
}

static void notify(void *arg)
{
	pthread_mutex_lock(&H.mu);
	H.notified = 1;
	if (H.block_next) {
		H.block_next = false;
		H.blocked = true;
		pthread_cond_broadcast(&H.cv);
		while (H.blocked)
			pthread_cond_wait(&H.cv, &H.mu);
	}
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
}

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Blocks the writer in its next notify; returns once it is blocked. */
static void block_writer_after(struct hd_store_batch *b)
{
	uint64_t end = hd_mono_ms() + WAIT_MS;
	pthread_mutex_lock(&H.mu);
	H.block_next = true;
	pthread_mutex_unlock(&H.mu);
	assert_int_equal(hd_store_submit(H.s, b), 0);
	pthread_mutex_lock(&H.mu);
	while (!H.blocked) {
		struct timespec ts;
		deadline_in(&ts, 50);
		pthread_cond_timedwait(&H.cv, &H.mu, &ts);
		assert_true(hd_mono_ms() < end);
	}
	pthread_mutex_unlock(&H.mu);
}

static void release_writer(void)
{
	pthread_mutex_lock(&H.mu);
	H.blocked = false;
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.mu);
}

static void count_cb(struct hd_store_batch *b, void *arg)
{
	(*(size_t *)arg)++;
}

/* Drains until n batches came back, waiting for notifies in between. */
static void wait_done(size_t n)
{
	uint64_t end = hd_mono_ms() + WAIT_MS;
	size_t got = 0;
	for (;;) {
		hd_store_drain(H.s, count_cb, &got);
		if (got >= n)
			break;
		pthread_mutex_lock(&H.mu);
		if (!H.notified) {
			struct timespec ts;
			deadline_in(&ts, 50);
			pthread_cond_timedwait(&H.cv, &H.mu, &ts);
		}
		H.notified = 0;
		pthread_mutex_unlock(&H.mu);
		assert_true(hd_mono_ms() < end);
	}
	assert_int_equal(got, n);
}

static void open_store(void)
{
	struct hd_error err = {0};
	H.s = hd_store_open(&H.opts, &err);
	if (!H.s)
		fail_msg("open: %s", err.msg);
}

static void close_store(void)
{
	if (!H.s)
		return;
	hd_store_stop(H.s);
	size_t got = 0;
	hd_store_drain(H.s, count_cb, &got);
	hd_store_free(H.s);
	H.s = NULL;
}

static void reopen(void)
{
	close_store();
	open_store();
}

static int setup(void **state)
{
	snprintf(H.dir, sizeof(H.dir), "/tmp/herald-store-XXXXXX");
	if (!mkdtemp(H.dir))
		return -1;
	memset(&H.opts, 0, sizeof(H.opts));
	H.opts.dir = H.dir;
	H.opts.sync = HD_SYNC_NORMAL;
	H.opts.commit_max_events = 1024;
	H.opts.queue_max_events = 4096;
	H.opts.maintenance_interval_ms = 0;
	H.opts.readers = 2;
	H.opts.policy = policy;
	H.opts.notify = notify;
	H.notified = 0;
	H.block_next = H.blocked = false;
	open_store();
	return 0;
}

static int teardown(void **state)
{
	static const char *const files[] = {"herald.db", "herald.db-wal", "herald.db-shm",
					    "herald.lock"};
	char path[128];
	close_store();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", H.dir, files[i]);
		unlink(path);
	}
	rmdir(H.dir);
	return 0;
}

static struct hd_store_item item(const char *topic, const char *json)
{
	return (struct hd_store_item){.topic = topic,
				      .source = "src",
				      .id = NULL,
				      .json = json,
				      .json_len = strlen(json),
				      .time_ms = hd_now_ms()};
}

static struct hd_store_batch batch(struct hd_store_item *items, size_t n)
{
	return (struct hd_store_batch){.op = HD_STORE_APPEND, .items = items, .n = n};
}

/* Submits one batch and waits for it. */
static void run(struct hd_store_batch *b)
{
	assert_int_equal(hd_store_submit(H.s, b), 0);
	wait_done(1);
}

static void free_results(struct hd_store_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		hd_rcbuf_unref(items[i].stored.json);
		items[i].stored.json = NULL;
	}
}

/* Appends one event and returns its offset (0 on an item error). */
static uint64_t append1(const char *topic, const char *json)
{
	struct hd_store_item it = item(topic, json);
	struct hd_store_batch b = batch(&it, 1);
	run(&b);
	assert_int_equal(it.err, 0);
	free_results(&it, 1);
	return it.stored.offset;
}

static void read_topic(const char *topic, uint64_t after, uint32_t limit, struct hd_store_read *r)
{
	memset(r, 0, sizeof(*r));
	r->after = after;
	r->limit = limit;
	r->now_ms = hd_now_ms();
	assert_int_equal(hd_store_read(H.s, topic, r), 0);
}

static void assert_json(const struct hd_rcbuf *b, const char *want)
{
	assert_non_null(b);
	assert_int_equal(b->len, strlen(want));
	assert_memory_equal(b->data, want, b->len);
	assert_int_equal(b->data[b->len], '\0');
}

/* Polls cond up to WAIT_MS, yielding a few ms between tries. */
#define WAIT_UNTIL(cond)                                                               \
	do {                                                                           \
		uint64_t end_ = hd_mono_ms() + WAIT_MS;                                \
		while (!(cond)) {                                                      \
			assert_true(hd_mono_ms() < end_);                              \
			nanosleep(&(struct timespec){0, 5000000}, NULL);               \
		}                                                                      \
	} while (0)

static void test_append_and_read_back(void **state)
{
	struct hd_store_item it[3] = {
		item("t", "{\"id\":\"a\"}"),
		item("t", "{\"id\":\"b\",\"data\":{\"x\":[1,2]}}"),
		item("t", "{\"id\":\"c\"}"),
	};
	struct hd_store_batch b = batch(it, 3);
	struct hd_store_read r;

	run(&b);
	assert_int_equal(b.err, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(it[i].err, 0);
		assert_false(it[i].duplicate);
		assert_int_equal(it[i].stored.offset, i + 1);
		assert_int_equal(it[i].topic_low, 1);
		assert_int_equal(it[i].topic_last, 3);
		assert_int_equal(strlen(it[i].epoch), HD_EPOCH_LEN);
		assert_string_equal(it[i].epoch, it[0].epoch);
	}
	assert_json(it[0].stored.json, "{\"id\":\"a\",\"topic\":\"t\",\"offset\":1}");
	assert_json(it[1].stored.json,
		    "{\"id\":\"b\",\"data\":{\"x\":[1,2]},\"topic\":\"t\",\"offset\":2}");
	assert_json(it[2].stored.json, "{\"id\":\"c\",\"topic\":\"t\",\"offset\":3}");

	read_topic("t", 0, 100, &r);
	assert_true(r.exists);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.last, 3);
	assert_int_equal(r.low, 1);
	assert_false(r.truncated);
	assert_string_equal(r.epoch, it[0].epoch);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(r.events[i].offset, i + 1);
		assert_int_equal(r.events[i].time_ms, it[i].time_ms);
		assert_int_equal(r.events[i].expires_ms, 0);
		assert_json(r.events[i].json, it[i].stored.json->data);
	}
	hd_store_read_fini(&r);

	read_topic("t", 1, 1, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.events[0].offset, 2);
	hd_store_read_fini(&r);
	read_topic("t", 3, 10, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.last, 3);
	hd_store_read_fini(&r);
	read_topic("t", UINT64_MAX, 10, &r);
	assert_int_equal(r.n, 0);
	assert_false(r.truncated);
	hd_store_read_fini(&r);

	read_topic("absent", 0, 10, &r);
	assert_false(r.exists);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.last, 0);
	hd_store_read_fini(&r);
	free_results(it, 3);
}

static void test_json_edge_cases(void **state)
{
	struct hd_store_item it[3] = {
		item("e", "{}"),
		item("quote\"back\\slash\n", "{\"a\":1}"),
		item("e", "{ }"),
	};
	struct hd_store_batch b = batch(it, 3);

	run(&b);
	assert_json(it[0].stored.json, "{\"topic\":\"e\",\"offset\":1}");
	assert_json(it[1].stored.json,
		    "{\"a\":1,\"topic\":\"quote\\\"back\\\\slash\\u000a\",\"offset\":1}");
	assert_json(it[2].stored.json, "{ \"topic\":\"e\",\"offset\":2}");
	free_results(it, 3);
}

static void test_bad_input(void **state)
{
	char longname[HD_TOPIC_NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct hd_store_item it[6] = {
		item("", "{}"),      item(longname, "{}"),      item("ok", "not json"),
		item("ok", "[1]"),   item("ok", "{\"a\":1}"),   item("ok", "{"),
	};
	it[5].json_len = 1;
	struct hd_store_batch b = batch(it, 6);
	struct hd_error err = {0};

	run(&b);
	assert_int_equal(b.err, 0);
	assert_int_equal(it[0].err, HD_EBADTOPIC);
	assert_int_equal(it[1].err, HD_EBADTOPIC);
	assert_int_equal(it[2].err, HD_EBADEVENT);
	assert_int_equal(it[3].err, HD_EBADEVENT);
	assert_int_equal(it[4].err, 0);
	assert_int_equal(it[4].stored.offset, 1);
	assert_int_equal(it[5].err, HD_EBADEVENT);
	assert_null(it[0].stored.json);
	free_results(it, 6);

	/* A name one byte under the limit is fine. */
	longname[HD_TOPIC_NAME_MAX] = '\0';
	assert_int_equal(append1(longname, "{}"), 1);

	/* The directory is locked by this store. */
	assert_null(hd_store_open(&H.opts, &err));
	assert_int_equal(err.code, HD_EUNAVAIL);

	struct hd_store_opts o = H.opts;
	o.readers = 0;
	assert_null(hd_store_open(&o, &err));
	assert_int_equal(err.code, HD_ECONFIG);
}

static void test_dense_offsets_across_topics(void **state)
{
	enum { BATCHES = 20, PER = 5 };
	static const char *const topics[] = {"x", "y", "x", "z", "x"};
	struct hd_store_item it[BATCHES][PER];
	struct hd_store_batch b[BATCHES];
	uint64_t next[3] = {1, 1, 1};

	/* Queue them all at once so the writer groups several per commit. */
	for (int i = 0; i < BATCHES; i++) {
		for (int j = 0; j < PER; j++)
			it[i][j] = item(topics[j], "{\"k\":1}");
		b[i] = batch(it[i], PER);
		assert_int_equal(hd_store_submit(H.s, &b[i]), 0);
	}
	wait_done(BATCHES);
	for (int i = 0; i < BATCHES; i++) {
		for (int j = 0; j < PER; j++) {
			int t = topics[j][0] - 'x';
			assert_int_equal(it[i][j].err, 0);
			assert_int_equal(it[i][j].stored.offset, next[t]++);
		}
		free_results(it[i], PER);
	}
	struct hd_store_read r;
	read_topic("x", 0, 1000, &r);
	assert_int_equal(r.n, BATCHES * 3);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.events[i].offset, i + 1);
	hd_store_read_fini(&r);
	read_topic("z", 0, 1000, &r);
	assert_int_equal(r.n, BATCHES);
	assert_int_equal(r.last, BATCHES);
	hd_store_read_fini(&r);
}

static void test_dedup(void **state)
{
	int64_t now = hd_now_ms();
	int64_t dups = hd_metrics_get(HD_M_duplicates_total);
	struct hd_store_item it[6] = {
		item("dd:x", "{\"id\":\"a\"}"),
		item("dd:x", "{\"id\":\"a\"}"),     /* same (source, id): duplicate */
		item("dd:x", "{\"id\":\"a\"}"),     /* other source: new */
		item("dd:x", "{\"id\":\"a\"}"),     /* same, after the window: new */
		item("dd:x", "{\"id\":\"a\"}"),     /* duplicate of the previous */
		item("plain", "{\"id\":\"a\"}"),    /* no window on this topic */
	};
	for (int i = 0; i < 6; i++) {
		it[i].id = "a";
		it[i].time_ms = now;
	}
	it[1].time_ms = now + 999;
	it[2].source = "other";
	it[3].time_ms = now + 1000;
	it[4].time_ms = now + 1500;
	struct hd_store_batch b = batch(it, 6);

	run(&b);
	assert_int_equal(it[0].stored.offset, 1);
	assert_true(it[1].duplicate);
	assert_int_equal(it[1].stored.offset, 1);
	assert_null(it[1].stored.json);
	assert_int_equal(it[1].err, 0);
	assert_string_equal(it[1].epoch, it[0].epoch);
	assert_false(it[2].duplicate);
	assert_int_equal(it[2].stored.offset, 2);
	assert_false(it[3].duplicate);
	assert_int_equal(it[3].stored.offset, 3);
	assert_true(it[4].duplicate);
	assert_int_equal(it[4].stored.offset, 3);
	assert_int_equal(it[4].topic_last, 3);
	assert_int_equal(it[5].stored.offset, 1);
	assert_int_equal(hd_metrics_get(HD_M_duplicates_total) - dups, 2);
	free_results(it, 6);

	/* Duplicates leave no event behind. */
	struct hd_store_read r;
	read_topic("dd:x", 0, 100, &r);
	assert_int_equal(r.n, 3);
	hd_store_read_fini(&r);

	/* The window survives a restart. */
	reopen();
	struct hd_store_item again = item("dd:x", "{\"id\":\"a\"}");
	again.id = "a";
	again.time_ms = now + 1900;
	struct hd_store_batch b2 = batch(&again, 1);
	run(&b2);
	assert_true(again.duplicate);
	assert_int_equal(again.stored.offset, 3);
	assert_int_equal(again.topic_last, 3);
}

static void test_history_false(void **state)
{
	struct hd_store_item it[2] = {item("nohist:a", "{\"n\":1}"), item("nohist:a", "{\"n\":2}")};
	struct hd_store_batch b = batch(it, 2);
	struct hd_store_read r;
	struct hd_topic_info info;

	run(&b);
	assert_int_equal(it[0].stored.offset, 1);
	assert_int_equal(it[1].stored.offset, 2);
	/* The JSON is still built: live subscribers get it. */
	assert_json(it[1].stored.json, "{\"n\":2,\"topic\":\"nohist:a\",\"offset\":2}");
	assert_int_equal(it[1].topic_last, 2);
	assert_int_equal(it[1].topic_low, 3);
	free_results(it, 2);

	read_topic("nohist:a", 0, 10, &r);
	assert_true(r.exists);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.last, 2);
	assert_int_equal(r.low, 3);
	assert_true(r.truncated);
	hd_store_read_fini(&r);
	read_topic("nohist:a", 2, 10, &r);
	assert_false(r.truncated);
	hd_store_read_fini(&r);

	assert_int_equal(hd_store_topic_info(H.s, "nohist:a", &info), 0);
	assert_int_equal(info.count, 0);
	assert_int_equal(info.bytes, 0);
	assert_int_equal(info.last, 2);
	assert_int_equal(info.first, 3);
	assert_int_equal(append1("nohist:a", "{}"), 3);
}

static void test_count_retention(void **state)
{
	struct hd_store_item it[5];
	struct hd_store_read r;
	struct hd_topic_info info;
	int64_t expired = hd_metrics_get(HD_M_events_expired_total);

	for (int i = 0; i < 5; i++)
		it[i] = item("cap:a", "{}");
	struct hd_store_batch b = batch(it, 5);
	run(&b);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(it[i].stored.offset, i + 1);
		assert_int_equal(it[i].topic_low, 3); /* the state after the commit */
		assert_int_equal(it[i].topic_last, 5);
	}
	free_results(it, 5);
	assert_int_equal(hd_metrics_get(HD_M_events_expired_total) - expired, 2);

	read_topic("cap:a", 0, 10, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.events[0].offset, 3);
	assert_int_equal(r.low, 3);
	assert_true(r.truncated);
	hd_store_read_fini(&r);
	read_topic("cap:a", 1, 10, &r);
	assert_true(r.truncated);
	hd_store_read_fini(&r);
	read_topic("cap:a", 2, 10, &r);
	assert_false(r.truncated);
	assert_int_equal(r.n, 3);
	hd_store_read_fini(&r);

	assert_int_equal(hd_store_topic_info(H.s, "cap:a", &info), 0);
	assert_int_equal(info.count, 3);
	assert_int_equal(info.first, 3);
	assert_int_equal(info.bytes, 3 * strlen("{\"topic\":\"cap:a\",\"offset\":3}"));

	assert_int_equal(append1("cap:a", "{}"), 6);
	read_topic("cap:a", 0, 10, &r);
	assert_int_equal(r.low, 4);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.events[0].offset, 4);
	hd_store_read_fini(&r);

	/* The low mark survives a restart (the cache is rebuilt from rows). */
	reopen();
	assert_int_equal(append1("cap:a", "{}"), 7);
	read_topic("cap:a", 0, 10, &r);
	assert_int_equal(r.low, 5);
	hd_store_read_fini(&r);
}

static uint64_t topic_count(const char *topic)
{
	struct hd_topic_info info;
	assert_int_equal(hd_store_topic_info(H.s, topic, &info), 0);
	return info.count;
}

static void test_age_retention(void **state)
{
	int64_t now = hd_now_ms();
	int64_t expired = hd_metrics_get(HD_M_events_expired_total);
	struct hd_store_item it[5];
	struct hd_store_read r;

	H.opts.maintenance_interval_ms = 10;
	reopen();
	for (int i = 0; i < 5; i++) {
		it[i] = item("age:a", "{}");
		it[i].time_ms = i < 3 ? now - 120000 : now;
	}
	struct hd_store_batch b = batch(it, 5);
	run(&b);
	free_results(it, 5);

	/* Reads skip events past max_age before maintenance removes them. */
	read_topic("age:a", 0, 10, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.events[0].offset, 4);
	hd_store_read_fini(&r);

	WAIT_UNTIL(topic_count("age:a") == 2);
	read_topic("age:a", 0, 10, &r);
	assert_int_equal(r.low, 4);
	assert_int_equal(r.last, 5);
	assert_true(r.truncated);
	assert_int_equal(r.n, 2);
	hd_store_read_fini(&r);
	assert_int_equal(hd_metrics_get(HD_M_events_expired_total) - expired, 3);

	/* The writer's cached low follows: the next commit reports it. */
	struct hd_store_item one = item("age:a", "{}");
	struct hd_store_batch b1 = batch(&one, 1);
	run(&b1);
	assert_int_equal(one.stored.offset, 6);
	assert_int_equal(one.topic_low, 4);
	free_results(&one, 1);
}

static void test_ttl(void **state)
{
	int64_t now = hd_now_ms();
	struct hd_store_item it[4];
	struct hd_store_read r;
	struct hd_topic_info info;

	for (int i = 0; i < 4; i++)
		it[i] = item("ttl", "{}");
	it[1].expires_ms = now - 1;
	it[2].expires_ms = now - 1;
	it[3].expires_ms = now + 3600 * 1000;
	struct hd_store_batch b = batch(it, 4);
	run(&b);
	size_t keep_bytes = it[0].stored.json->len + it[3].stored.json->len;
	free_results(it, 4);

	read_topic("ttl", 0, 10, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.events[0].offset, 1);
	assert_int_equal(r.events[1].offset, 4);
	assert_int_equal(r.events[1].expires_ms, now + 3600 * 1000);
	hd_store_read_fini(&r);
	/* Seen from later, the last one has expired too. */
	memset(&r, 0, sizeof(r));
	r.limit = 10;
	r.now_ms = now + 3600 * 1000;
	assert_int_equal(hd_store_read(H.s, "ttl", &r), 0);
	assert_int_equal(r.n, 1);
	hd_store_read_fini(&r);

	assert_int_equal(topic_count("ttl"), 4);
	H.opts.maintenance_interval_ms = 10;
	reopen();
	WAIT_UNTIL(topic_count("ttl") == 2);
	assert_int_equal(hd_store_topic_info(H.s, "ttl", &info), 0);
	assert_int_equal(info.bytes, keep_bytes);
	assert_int_equal(info.first, 1);
	/* TTL is no gap in history: low does not move. */
	read_topic("ttl", 0, 10, &r);
	assert_int_equal(r.low, 1);
	assert_false(r.truncated);
	assert_int_equal(r.n, 2);
	hd_store_read_fini(&r);
}

static void test_dedup_entries_expire(void **state)
{
	int64_t now = hd_now_ms();
	struct hd_store_item a = item("dd:e", "{}");
	a.id = "1";
	a.time_ms = now - 5000; /* its window closed long ago */
	struct hd_store_batch b = batch(&a, 1);
	run(&b);
	free_results(&a, 1);

	H.opts.maintenance_interval_ms = 10;
	reopen();
	/* Maintenance removes the stale dedup row; poll the table directly. */
	sqlite3 *db;
	char path[128];
	snprintf(path, sizeof(path), "%s/herald.db", H.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	int rows = -1;
	uint64_t end = hd_mono_ms() + WAIT_MS;
	while (rows != 0) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM dedup", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		rows = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		assert_true(hd_mono_ms() < end);
		if (rows)
			nanosleep(&(struct timespec){0, 5000000}, NULL);
	}
	sqlite3_close(db);
}

static void test_delete_topic(void **state)
{
	struct hd_store_item it[3] = {item("del", "{}"), item("del", "{}"), item("del", "{}")};
	struct hd_store_batch b = batch(it, 3);
	struct hd_store_batch d = {.op = HD_STORE_DELETE_TOPIC, .topic = "del"};
	struct hd_topic_info info;
	struct hd_store_read r;
	char epoch[HD_EPOCH_LEN + 1];

	it[0].id = "x";
	run(&b);
	memcpy(epoch, it[0].epoch, sizeof(epoch));
	free_results(it, 3);

	run(&d);
	assert_int_equal(d.err, 0);
	assert_int_equal(hd_store_topic_info(H.s, "del", &info), HD_ENOTFOUND);
	read_topic("del", 0, 10, &r);
	assert_false(r.exists);
	hd_store_read_fini(&r);

	run(&d);
	assert_int_equal(d.err, HD_ENOTFOUND);

	/* Recreated: new epoch, offsets from 1. */
	struct hd_store_item again = item("del", "{}");
	struct hd_store_batch b2 = batch(&again, 1);
	run(&b2);
	assert_int_equal(again.stored.offset, 1);
	assert_int_equal(strlen(again.epoch), HD_EPOCH_LEN);
	assert_string_not_equal(again.epoch, epoch);
	free_results(&again, 1);

	/* Delete and append in one queue, applied in order; the dedup entry
	 * went with the old topic. */
	struct hd_store_item w[2] = {item("dd:del", "{}"), item("dd:del", "{}")};
	w[0].id = w[1].id = "same";
	struct hd_store_batch a1 = batch(&w[0], 1), a2 = batch(&w[1], 1);
	struct hd_store_batch d2 = {.op = HD_STORE_DELETE_TOPIC, .topic = "dd:del"};
	block_writer_after(&a1);
	assert_int_equal(hd_store_submit(H.s, &d2), 0);
	assert_int_equal(hd_store_submit(H.s, &a2), 0);
	release_writer();
	wait_done(3);
	assert_int_equal(w[0].stored.offset, 1);
	assert_int_equal(d2.err, 0);
	assert_false(w[1].duplicate);
	assert_int_equal(w[1].stored.offset, 1);
	assert_string_not_equal(w[0].epoch, w[1].epoch);
	free_results(w, 2);
	assert_int_equal(topic_count("dd:del"), 1);
}

static void test_queue_full(void **state)
{
	struct hd_store_item it[12];
	for (int i = 0; i < 12; i++)
		it[i] = item("q", "{}");
	struct hd_store_batch b1 = batch(&it[0], 1), b2 = batch(&it[1], 3), b3 = batch(&it[4], 2),
			      b4 = batch(&it[6], 1), b5 = batch(&it[7], 1), b6 = batch(&it[7], 5);

	H.opts.queue_max_events = 4;
	reopen();
	block_writer_after(&b1); /* committed; the writer now waits in notify */
	assert_int_equal(hd_store_submit(H.s, &b2), 0);
	assert_int_equal(hd_store_submit(H.s, &b3), HD_EUNAVAIL);
	assert_int_equal(hd_store_submit(H.s, &b4), 0);
	assert_int_equal(hd_store_submit(H.s, &b5), HD_EUNAVAIL);
	assert_int_equal(hd_store_submit(H.s, &b6), HD_EUNAVAIL);
	release_writer();
	wait_done(3);
	assert_int_equal(it[0].stored.offset, 1);
	assert_int_equal(it[3].stored.offset, 4);
	assert_int_equal(it[6].stored.offset, 5);
	free_results(it, 12);
	/* Room again once committed. */
	assert_int_equal(hd_store_submit(H.s, &b3), 0);
	wait_done(1);
	assert_int_equal(it[5].stored.offset, 7);
	free_results(it, 12);
}

static void test_stop_drains_queue(void **state)
{
	enum { N = 6 };
	struct hd_store_item it[N][2];
	struct hd_store_batch b[N];
	size_t got = 0;

	for (int i = 0; i < N; i++) {
		it[i][0] = item("s1", "{}");
		it[i][1] = item("s2", "{}");
		b[i] = batch(it[i], 2);
	}
	block_writer_after(&b[0]);
	for (int i = 1; i < N; i++)
		assert_int_equal(hd_store_submit(H.s, &b[i]), 0);
	release_writer();
	hd_store_stop(H.s);
	struct hd_store_item late = item("s1", "{}");
	struct hd_store_batch lb = batch(&late, 1);
	assert_int_equal(hd_store_submit(H.s, &lb), HD_EUNAVAIL);
	hd_store_drain(H.s, count_cb, &got);
	assert_int_equal(got, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(b[i].err, 0);
		assert_int_equal(it[i][0].stored.offset, i + 1);
		assert_int_equal(it[i][1].stored.offset, i + 1);
		free_results(it[i], 2);
	}
	/* Everything drained is on disk. */
	reopen();
	struct hd_store_read r;
	read_topic("s2", 0, 100, &r);
	assert_int_equal(r.n, N);
	hd_store_read_fini(&r);
}

static void test_topic_info_and_list(void **state)
{
	static const char *const names[] = {"b:1", "a:2", "ab", "a:1", "a:3"};
	struct hd_topic_info out[10];
	size_t n;
	int64_t before = hd_now_ms();

	for (size_t i = 0; i < 5; i++)
		append1(names[i], "{\"v\":1}");
	append1("a:1", "{\"v\":22}");
	assert_int_equal(hd_metrics_get(HD_M_topics), 5);

	assert_int_equal(hd_store_topic_info(H.s, "a:1", &out[0]), 0);
	assert_string_equal(out[0].name, "a:1");
	assert_int_equal(strlen(out[0].epoch), HD_EPOCH_LEN);
	assert_int_equal(out[0].first, 1);
	assert_int_equal(out[0].last, 2);
	assert_int_equal(out[0].count, 2);
	assert_int_equal(out[0].bytes, strlen("{\"v\":1,\"topic\":\"a:1\",\"offset\":1}") +
					       strlen("{\"v\":22,\"topic\":\"a:1\",\"offset\":2}"));
	assert_true(out[0].created_ms >= before && out[0].created_ms <= hd_now_ms());
	assert_int_equal(hd_store_topic_info(H.s, "nope", &out[0]), HD_ENOTFOUND);
	assert_int_equal(hd_store_topic_info(H.s, "", &out[0]), HD_ENOTFOUND);

	assert_int_equal(hd_store_topic_list(H.s, "", "", out, 10, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(out[0].name, "a:1");
	assert_string_equal(out[1].name, "a:2");
	assert_string_equal(out[2].name, "a:3");
	assert_string_equal(out[3].name, "ab");
	assert_string_equal(out[4].name, "b:1");
	assert_int_equal(out[0].last, 2);
	assert_int_equal(out[0].first, 1);
	assert_int_equal(out[4].count, 1);

	/* Paging through a prefix. */
	assert_int_equal(hd_store_topic_list(H.s, "a:", "", out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].name, "a:1");
	assert_string_equal(out[1].name, "a:2");
	assert_int_equal(hd_store_topic_list(H.s, "a:", "a:2", out, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].name, "a:3");
	assert_int_equal(hd_store_topic_list(H.s, "a:", "a:3", out, 2, &n), 0);
	assert_int_equal(n, 0);
	/* after_name before the prefix, after it, and exactly the prefix */
	assert_int_equal(hd_store_topic_list(H.s, "a:", "0", out, 10, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(hd_store_topic_list(H.s, "a:", "zzz", out, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(hd_store_topic_list(H.s, "", "ab", out, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].name, "b:1");
	assert_int_equal(hd_store_topic_list(H.s, "c", "", out, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(hd_store_topic_list(H.s, "", "", out, 0, &n), 0);
	assert_int_equal(n, 0);

	/* The gauge follows deletions. */
	struct hd_store_batch d = {.op = HD_STORE_DELETE_TOPIC, .topic = "ab"};
	run(&d);
	assert_int_equal(hd_metrics_get(HD_M_topics), 4);
}

static void test_reopen_continues(void **state)
{
	char epoch[HD_EPOCH_LEN + 1];
	struct hd_store_read r;

	H.opts.sync = HD_SYNC_FULL;
	reopen();
	for (int i = 1; i <= 3; i++)
		assert_int_equal(append1("r", "{}"), i);
	read_topic("r", 0, 1, &r);
	memcpy(epoch, r.epoch, sizeof(epoch));
	hd_store_read_fini(&r);

	H.opts.sync = HD_SYNC_OFF;
	reopen();
	struct hd_store_item it = item("r", "{}");
	struct hd_store_batch b = batch(&it, 1);
	run(&b);
	assert_int_equal(it.stored.offset, 4);
	assert_string_equal(it.epoch, epoch);
	assert_int_equal(it.topic_last, 4);
	free_results(&it, 1);
	read_topic("r", 0, 100, &r);
	assert_int_equal(r.n, 4);
	hd_store_read_fini(&r);
}

static void test_commit_failure_rolls_back(void **state)
{
	struct hd_store_item first = item("dd:f", "{}");
	first.id = "x";
	struct hd_store_batch b0 = batch(&first, 1);
	run(&b0);
	free_results(&first, 1);

	struct hd_store_item it[4] = {item("dd:f", "{}"), item("dd:f", "{}"), item("new:u", "{}"),
				      item("", "{}")};
	it[0].id = "y";
	it[1].id = "x"; /* a duplicate, but nothing of a failed group is reported */
	struct hd_store_batch b = batch(it, 4);
	struct hd_store_batch d = {.op = HD_STORE_DELETE_TOPIC, .topic = "dd:f"};
	hd_store_fault_fail_commits(H.s, 1);
	block_writer_after(&b);
	assert_int_equal(hd_store_submit(H.s, &d), 0);
	release_writer();
	wait_done(2);
	assert_int_equal(b.err, HD_ESTORE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(it[i].err, HD_ESTORE);
		assert_int_equal(it[i].stored.offset, 0);
		assert_null(it[i].stored.json);
		assert_false(it[i].duplicate);
	}
	assert_int_equal(it[3].err, HD_EBADTOPIC);
	/* The delete was in the next group, which committed. */
	assert_int_equal(d.err, 0);

	/* Nothing of the failed group is on disk, and offsets go on with no
	 * hole: the topic was deleted, so it starts again at 1. */
	struct hd_topic_info info;
	assert_int_equal(hd_store_topic_info(H.s, "new:u", &info), HD_ENOTFOUND);
	assert_int_equal(hd_store_topic_info(H.s, "dd:f", &info), HD_ENOTFOUND);

	/* A failure inside one topic's run leaves no hole either. */
	assert_int_equal(append1("g", "{}"), 1);
	hd_store_fault_fail_commits(H.s, 1);
	struct hd_store_item g[2] = {item("g", "{}"), item("g", "{}")};
	g[0].id = "dup-me";
	struct hd_store_batch bg = batch(g, 2);
	run(&bg);
	assert_int_equal(bg.err, HD_ESTORE);
	assert_int_equal(g[0].err, HD_ESTORE);
	run(&bg);
	assert_int_equal(bg.err, 0);
	assert_int_equal(g[0].stored.offset, 2);
	assert_int_equal(g[1].stored.offset, 3);
	free_results(g, 2);
	struct hd_store_read r;
	read_topic("g", 0, 10, &r);
	assert_int_equal(r.n, 3);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.events[i].offset, i + 1);
	hd_store_read_fini(&r);
}

static void test_group_commit_metrics(void **state)
{
	enum { N = 8 };
	struct hd_store_item it[N][4];
	struct hd_store_batch b[N];
	int64_t pubs = hd_metrics_get(HD_M_publishes_total);
	int64_t commits = hd_metrics_get(HD_M_store_commit_batch_events);

	for (int i = 0; i < N; i++) {
		for (int j = 0; j < 4; j++)
			it[i][j] = item("m", "{}");
		b[i] = batch(it[i], 4);
	}
	/* Hold the writer so every batch is queued: one group takes them. */
	block_writer_after(&b[0]);
	for (int i = 1; i < N; i++)
		assert_int_equal(hd_store_submit(H.s, &b[i]), 0);
	release_writer();
	wait_done(N);
	assert_int_equal(hd_metrics_get(HD_M_publishes_total) - pubs, N * 4);
	assert_int_equal(hd_metrics_get(HD_M_store_commit_batch_events) - commits, 2);
	for (int i = 0; i < N; i++)
		free_results(it[i], 4);
}

struct reader_arg {
	atomic_bool stop;
	atomic_uint_fast64_t reads;
	int errors;
};

/* Reads while the writer commits: every snapshot must be dense from the
 * first offset returned and never pass the topic's last. */
static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	uint64_t after = 0;
	while (!atomic_load(&a->stop)) {
		struct hd_store_read r = {.after = after, .limit = 50, .now_ms = hd_now_ms()};
		struct hd_topic_info info[4];
		size_t n;
		if (hd_store_read(H.s, "conc", &r) != 0)
			a->errors++;
		for (size_t i = 0; i < r.n; i++) {
			if (r.events[i].offset != after + 1 + i || r.events[i].offset > r.last)
				a->errors++;
		}
		if (r.n)
			after = r.events[r.n - 1].offset;
		hd_store_read_fini(&r);
		if (hd_store_topic_list(H.s, "", "", info, 4, &n) != 0)
			a->errors++;
		atomic_fetch_add(&a->reads, 1);
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	enum { BATCHES = 100, PER = 10 };
	static struct hd_store_item it[BATCHES][PER];
	static struct hd_store_batch b[BATCHES];
	struct reader_arg args[3] = {0};
	pthread_t th[3];

	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	/* Every reader is running before the writer starts, however the
	 * scheduler orders the threads; at most ~10 s. */
	for (int i = 0, spins = 0; i < 3 && spins < 10000; spins++) {
		if (atomic_load(&args[i].reads) > 0)
			i++;
		else
			usleep(1000);
	}
	for (int i = 0; i < BATCHES; i++) {
		for (int j = 0; j < PER; j++)
			it[i][j] = item("conc", "{\"payload\":\"0123456789\"}");
		b[i] = batch(it[i], PER);
		assert_int_equal(hd_store_submit(H.s, &b[i]), 0);
	}
	wait_done(BATCHES);
	/* Join every reader before any assertion can jump out of the test. */
	for (int i = 0; i < 3; i++)
		atomic_store(&args[i].stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(args[i].errors, 0);
		assert_true(atomic_load(&args[i].reads) > 0);
	}
	for (int i = 0; i < BATCHES; i++) {
		for (int j = 0; j < PER; j++)
			assert_int_equal(it[i][j].stored.offset, i * PER + j + 1);
		free_results(it[i], PER);
	}
}

/* Runs a one-row query on a separate connection and returns column 0. */
static void query_text(const char *sql, char *out, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char path[128];
	snprintf(path, sizeof(path), "%s/herald.db", H.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_on_disk_format(void **state)
{
	char v[64];
	append1("fmt", "{}");
	query_text("PRAGMA journal_mode", v, sizeof(v));
	assert_string_equal(v, "wal");
	query_text("PRAGMA page_size", v, sizeof(v));
	assert_string_equal(v, "16384");
	query_text("SELECT value FROM meta WHERE key='schema_version'", v, sizeof(v));
	assert_string_equal(v, "4");
	query_text("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema"
		   " WHERE name NOT LIKE 'sqlite_%' ORDER BY name)",
		   v, sizeof(v));
	assert_string_equal(v, "dedup,events,events_expiry,groups,meta,records,topics");
	query_text("SELECT length(value) FROM meta WHERE key='dedup_key'", v, sizeof(v));
	assert_string_equal(v, "32");
	query_text("SELECT name || ' ' || last_offset || ' ' || low_offset || ' ' || count"
		   " FROM topics",
		   v, sizeof(v));
	assert_string_equal(v, "fmt 1 1 1");
	query_text("SELECT json FROM events", v, sizeof(v));
	assert_string_equal(v, "{\"topic\":\"fmt\",\"offset\":1}");
}

/* A group's events are inserted HD_STORE_INS_ROWS at a time and the rest one
 * by one; interleaved topics and a delete in the same group see them all. */
static void test_multi_row_inserts(void **state)
{
	enum { N = 2 * HD_STORE_INS_ROWS + 7 };
	struct hd_store_item it[N], more[3];
	char json[N][32];
	struct hd_store_read r;

	for (int i = 0; i < N; i++) {
		snprintf(json[i], sizeof(json[i]), "{\"i\":%d}", i);
		it[i] = item(i % 3 ? "mr:a" : "mr:b", json[i]);
	}
	struct hd_store_batch b = batch(it, N);
	struct hd_store_batch d = {.op = HD_STORE_DELETE_TOPIC, .topic = "mr:b"};
	for (int i = 0; i < 3; i++)
		more[i] = item("mr:b", "{}");
	struct hd_store_batch b2 = batch(more, 3);
	struct hd_store_item hold = item("mr:hold", "{}");
	struct hd_store_batch hb = batch(&hold, 1);
	/* Hold the writer so that all three batches form one group. */
	block_writer_after(&hb);
	assert_int_equal(hd_store_submit(H.s, &b), 0);
	assert_int_equal(hd_store_submit(H.s, &d), 0);
	assert_int_equal(hd_store_submit(H.s, &b2), 0);
	release_writer();
	wait_done(4);
	free_results(&hold, 1);

	read_topic("mr:a", 0, 1000, &r);
	assert_int_equal(r.n, N - (N + 2) / 3);
	for (size_t k = 0, i = 0; i < N; i++) {
		if (i % 3 == 0)
			continue;
		char want[64];
		snprintf(want, sizeof(want), "{\"i\":%zu,\"topic\":\"mr:a\",\"offset\":%zu}", i, k + 1);
		assert_int_equal(r.events[k].offset, k + 1);
		assert_json(r.events[k].json, want);
		k++;
	}
	hd_store_read_fini(&r);
	/* mr:b's events of the first batch went with the topic; the topic
	 * made again by the last batch has only its three. */
	assert_int_equal(d.err, 0);
	read_topic("mr:b", 0, 1000, &r);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.last, 3);
	hd_store_read_fini(&r);
	/* No event of the deleted topic was inserted after its delete. */
	char v[32];
	query_text("SELECT count(*) FROM events WHERE topic_id NOT IN (SELECT id FROM topics)", v,
		   sizeof(v));
	assert_string_equal(v, "0");
	free_results(it, N);
	free_results(more, 3);
}

/* The WAL is copied back by the checkpointer thread once it holds
 * ckpt_pages frames, and the writer then starts it over. */
static void test_checkpointer_copies_the_wal(void **state)
{
	int64_t before = hd_metrics_get(HD_M_store_checkpoints_total);
	char big[4096], v[64];

	memset(big, 'x', sizeof(big));
	memcpy(big, "{\"p\":\"", 6);
	memcpy(big + sizeof(big) - 3, "\"}", 3); /* and the NUL */
	hd_store_test_checkpoint_pages(H.s, 8);
	for (int i = 0; i < 40; i++)
		assert_int_equal(append1("ckpt", big), (uint64_t)i + 1);
	WAIT_UNTIL(hd_metrics_get(HD_M_store_checkpoints_total) > before);
	/* Another commit after a full checkpoint starts the WAL over; either
	 * way every event is still there. */
	append1("ckpt", "{}");
	query_text("SELECT count(*) FROM events WHERE topic_id = (SELECT id FROM topics"
		   " WHERE name = 'ckpt')",
		   v, sizeof(v));
	assert_string_equal(v, "41");
}

/* A store written by another schema version is refused with a clear error. */
static void test_old_schema_version_refused(void **state)
{
	struct hd_error err = {0};
	char path[128];
	sqlite3 *db;

	close_store();
	snprintf(path, sizeof(path), "%s/herald.db", H.dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value='2' WHERE key='schema_version'",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_null(hd_store_open(&H.opts, &err));
	assert_int_equal(err.code, HD_ESTORE);
	assert_non_null(strstr(err.msg, "unsupported schema version 2 (this herald reads 4)"));
}

/* Expired dedup entries are found without an index: maintenance walks the
 * table a slice at a time, resuming where it stopped and starting over at
 * the end, and deletes only what has expired. */
static void test_dedup_expiry_walks_in_slices(void **state)
{
	static const char *const ids[9] = {"1", "2", "3", "4", "5", "6", "7", "8", "9"};
	int64_t now = hd_now_ms();
	struct hd_store_item it[12];
	char v[64];

	for (int i = 0; i < 12; i++) {
		it[i] = item(i < 9 ? "ddn:w" : "ddn:v", "{}");
		it[i].id = ids[i % 9];
		it[i].time_ms = now - 5000; /* its 1 s window closed long ago */
	}
	/* Two entries whose window is still open (an hour from now). */
	it[2].time_ms = it[6].time_ms = now + 3600 * 1000;
	struct hd_store_batch b = batch(it, 12);
	run(&b);
	free_results(it, 12);
	query_text("SELECT count(*) FROM dedup", v, sizeof(v));
	assert_string_equal(v, "12");

	H.opts.maintenance_interval_ms = 10;
	reopen();
	hd_store_test_dedup_scan(H.s, 2);
	WAIT_UNTIL((query_text("SELECT count(*) FROM dedup", v, sizeof(v)), strcmp(v, "2") == 0));
	query_text("SELECT group_concat(offset, ',') FROM (SELECT offset FROM dedup ORDER BY offset)",
		   v, sizeof(v));
	assert_string_equal(v, "3,7"); /* ids 3 and 7 of ddn:w */

	/* What is left still answers as a duplicate. */
	struct hd_store_item dup = item("ddn:w", "{}");
	dup.id = "3";
	dup.time_ms = now;
	b = batch(&dup, 1);
	run(&b);
	assert_true(dup.duplicate);
	assert_int_equal(dup.stored.offset, 3);
}

/* The child of test_kill9: publishes batches of 10 with synchronous=FULL
 * and writes the last acknowledged offset to fd after each one, forever. */
static void kill9_child(int fd)
{
	struct hd_store_item it[10];
	struct hd_store_batch b;
	H.opts.sync = HD_SYNC_FULL;
	open_store();
	for (;;) {
		for (int i = 0; i < 10; i++)
			it[i] = item("k", "{\"payload\":\"durable\"}");
		b = batch(it, 10);
		run(&b);
		for (int i = 0; i < 10; i++)
			if (it[i].err)
				_exit(3);
		uint64_t acked = it[9].stored.offset;
		free_results(it, 10);
		if (write(fd, &acked, sizeof(acked)) != sizeof(acked))
			_exit(2);
	}
}

/* Guarantee 1 at the store's level: kill -9 in the middle of a stream of
 * commits loses no acknowledged event and leaves offsets dense. */
static void test_kill9_loses_nothing_acknowledged(void **state)
{
	int fds[2];
	uint64_t acked = 0, v;
	pid_t pid;

	close_store(); /* the child takes the directory's lock */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		kill9_child(fds[1]);
	}
	close(fds[1]);
	/* Let it acknowledge a few hundred events, then kill it mid-flight. */
	while (acked < 300 && read(fds[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	assert_true(acked >= 300);
	kill(pid, SIGKILL);
	while (read(fds[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));

	open_store();
	struct hd_store_read r;
	read_topic("k", 0, 1000000, &r);
	assert_true(r.exists);
	assert_true(r.last >= acked);
	assert_int_equal(r.n, r.last);
	for (size_t i = 0; i < r.n; i++) {
		char want[64];
		snprintf(want, sizeof(want), "{\"payload\":\"durable\",\"topic\":\"k\",\"offset\":%zu}",
			 i + 1);
		assert_int_equal(r.events[i].offset, i + 1);
		assert_json(r.events[i].json, want);
	}
	hd_store_read_fini(&r);
	/* And the writer goes on from there. */
	assert_int_equal(append1("k", "{}"), r.last + 1);
}

/* Group rows: put (insert, then replace), list back after a reopen, delete
 * one, and deleting a topic removes its groups. */
static void test_groups(void **state)
{
	struct hd_group_row g = {.topic = "gt", .name = "g1", .ack_floor = 0, .acked = "",
				 .ack_wait_ms = 30000, .max_deliveries = 5, .created_ms = 7};
	struct hd_group_row g2 = {.topic = "gt", .name = "g2", .ack_floor = 4, .acked = "2-3",
				  .ack_wait_ms = 100, .max_deliveries = 2, .ordered = true,
				  .created_ms = 8};
	struct hd_group_row other = {.topic = "ot", .name = "g1", .acked = ""};
	struct hd_store_batch b = {.op = HD_STORE_GROUP_PUT, .group = &g};
	struct hd_group_row *rows;
	size_t n;

	append1("gt", "{}");
	run(&b);
	assert_int_equal(b.err, 0);
	g.ack_floor = 9;
	g.acked = "1,5";
	run(&b);
	b.group = &g2;
	run(&b);
	b.group = &other;
	run(&b);
	reopen();
	assert_int_equal(hd_store_group_list(H.s, &rows, 100, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].topic, "gt");
	assert_string_equal(rows[0].name, "g1");
	assert_int_equal(rows[0].ack_floor, 9);
	assert_string_equal(rows[0].acked, "1,5");
	assert_int_equal(rows[0].ack_wait_ms, 30000);
	assert_int_equal(rows[0].max_deliveries, 5);
	assert_false(rows[0].ordered);
	assert_int_equal(rows[0].created_ms, 7);
	assert_string_equal(rows[1].name, "g2");
	assert_true(rows[1].ordered);
	assert_string_equal(rows[1].acked, "2-3");
	assert_string_equal(rows[2].topic, "ot");
	hd_store_group_rows_free(rows, n);
	assert_int_equal(hd_store_group_list(H.s, &rows, 1, &n), 0);
	assert_int_equal(n, 1);
	hd_store_group_rows_free(rows, n);

	struct hd_store_batch d = {.op = HD_STORE_GROUP_DELETE, .group = &other};
	run(&d);
	assert_int_equal(d.err, 0);
	run(&d);
	assert_int_equal(d.err, HD_ENOTFOUND);
	struct hd_store_batch dt = {.op = HD_STORE_DELETE_TOPIC, .topic = "gt"};
	run(&dt);
	assert_int_equal(dt.err, 0);
	assert_int_equal(hd_store_group_list(H.s, &rows, 100, &n), 0);
	assert_int_equal(n, 0);
	hd_store_group_rows_free(rows, n);
}

/* When two events' dedup hashes collide, the second is checked against the
 * stored first one: another source or id is a new event (stored, counted as
 * a collision); the same source and id is still a duplicate. */
static void test_dedup_collision(void **state)
{
	int64_t coll = hd_metrics_get(HD_M_dedup_collisions_total);
	struct hd_store_item it[3] = {
		item("dd:x", "{\"source\":\"/s\",\"id\":\"a\"}"),
		item("dd:x", "{\"source\":\"/s\",\"id\":\"b\"}"),
		item("dd:x", "{\"source\":\"/s\",\"id\":\"a\"}"),
	};
	it[0].id = it[2].id = "a";
	it[1].id = "b";
	for (int i = 0; i < 3; i++)
		it[i].source = "/s";
	hd_store_test_dedup_mask(H.s, 0);
	struct hd_store_batch b = batch(it, 3);
	run(&b);
	assert_false(it[1].duplicate);
	assert_int_equal(it[1].stored.offset, 2);
	assert_true(it[2].duplicate);
	assert_int_equal(it[2].stored.offset, 1);
	assert_int_equal(hd_metrics_get(HD_M_dedup_collisions_total) - coll, 1);
	free_results(it, 3);
}

/* Claims of stored events live in their rows and are read back at open;
 * events removed by retention or TTL inside their window leave the claim in
 * the dedup table. Either way a reopened store still answers duplicates. */
static void test_dedup_claims_survive_reopen(void **state)
{
	static const char *const ids[5] = {"a", "b", "c", "d", "t"};
	int64_t now = hd_now_ms();
	struct hd_store_item it[5], again[5];
	char v[64];

	for (int i = 0; i < 5; i++) {
		it[i] = item("ddc:x", "{}");
		it[i].id = ids[i];
		it[i].time_ms = now;
	}
	it[4].expires_ms = now + 50; /* TTL: gone long before its window closes */
	struct hd_store_batch b = batch(it, 4);
	run(&b);
	free_results(it, 4);
	/* max_count 2 trimmed a and b; c and d are stored. */
	query_text("SELECT group_concat(offset, ',') FROM (SELECT offset FROM dedup ORDER BY offset)",
		   v, sizeof(v));
	assert_string_equal(v, "1,2");
	b = batch(&it[4], 1);
	run(&b);
	free_results(&it[4], 1);

	H.opts.maintenance_interval_ms = 10;
	reopen();
	WAIT_UNTIL((query_text("SELECT count(*) FROM events WHERE offset=5", v, sizeof(v)),
		    strcmp(v, "0") == 0));
	reopen();
	for (int i = 0; i < 5; i++) {
		again[i] = item("ddc:x", "{}");
		again[i].id = ids[i];
		again[i].time_ms = now + 1000;
	}
	b = batch(again, 5);
	run(&b);
	for (int i = 0; i < 5; i++) {
		assert_true(again[i].duplicate);
		assert_int_equal(again[i].stored.offset, i + 1);
	}
	free_results(again, 5);
}

static void put_record(const char *kind, const char *key, const char *value, int op)
{
	struct hd_record r = {.value = (char *)value, .updated_ms = 5};
	snprintf(r.kind, sizeof(r.kind), "%s", kind);
	snprintf(r.key, sizeof(r.key), "%s", key);
	struct hd_store_batch b = {.op = op, .record = &r};
	run(&b);
	assert_int_equal(b.err, 0);
}

/* Records: put replaces, get and list by kind and key prefix in key order,
 * delete; they survive a reopen. */
static void test_records(void **state)
{
	struct hd_record *recs, one;
	size_t n;

	put_record("cur", "u1\na", "{\"v\":1}", HD_STORE_RECORD_PUT);
	put_record("cur", "u1\na", "{\"v\":2}", HD_STORE_RECORD_PUT);
	put_record("cur", "u1\nb", "b", HD_STORE_RECORD_PUT);
	put_record("cur", "u10\na", "c", HD_STORE_RECORD_PUT);
	put_record("cur", "u2\na", "d", HD_STORE_RECORD_PUT);
	put_record("sub", "u1\na", "other kind", HD_STORE_RECORD_PUT);
	reopen();

	assert_int_equal(hd_store_record_get(H.s, "cur", "u1\na", &one), 0);
	assert_string_equal(one.value, "{\"v\":2}");
	assert_int_equal(one.updated_ms, 5);
	free(one.value);
	assert_int_equal(hd_store_record_get(H.s, "cur", "nope", &one), HD_ENOTFOUND);
	assert_null(one.value);

	assert_int_equal(hd_store_record_list(H.s, "cur", "u1\n", "", &recs, 100, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].key, "u1\na");
	assert_string_equal(recs[1].key, "u1\nb");
	assert_string_equal(recs[1].value, "b");
	hd_store_records_free(recs, n);
	assert_int_equal(hd_store_record_list(H.s, "cur", "", "u1\na", &recs, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].key, "u1\nb");
	assert_string_equal(recs[1].key, "u10\na");
	hd_store_records_free(recs, n);
	assert_int_equal(hd_store_record_list(H.s, "sub", "", "", &recs, 100, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].value, "other kind");
	hd_store_records_free(recs, n);

	put_record("cur", "u1\na", NULL, HD_STORE_RECORD_DELETE);
	struct hd_record r = {.kind = "cur", .key = "u1\na"};
	struct hd_store_batch d = {.op = HD_STORE_RECORD_DELETE, .record = &r};
	run(&d);
	assert_int_equal(d.err, HD_ENOTFOUND);
	assert_int_equal(hd_store_record_list(H.s, "cur", "u1", "", &recs, 100, &n), 0);
	assert_int_equal(n, 2); /* u1\nb, u10\na */
	hd_store_records_free(recs, n);
}

int main(void)
{
	hd_log_min = HD_LOG_OFF; /* the failure tests log on purpose */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_append_and_read_back),
		T(test_json_edge_cases),
		T(test_bad_input),
		T(test_dense_offsets_across_topics),
		T(test_dedup),
		T(test_history_false),
		T(test_count_retention),
		T(test_age_retention),
		T(test_ttl),
		T(test_dedup_entries_expire),
		T(test_delete_topic),
		T(test_queue_full),
		T(test_stop_drains_queue),
		T(test_topic_info_and_list),
		T(test_reopen_continues),
		T(test_commit_failure_rolls_back),
		T(test_group_commit_metrics),
		T(test_concurrent_readers),
		T(test_on_disk_format),
		T(test_old_schema_version_refused),
		T(test_checkpointer_copies_the_wal),
		T(test_multi_row_inserts),
		T(test_dedup_expiry_walks_in_slices),
		T(test_kill9_loses_nothing_acknowledged),
		T(test_groups),
		T(test_records),
		T(test_dedup_collision),
		T(test_dedup_claims_survive_reopen),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
