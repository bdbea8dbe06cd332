/*
 * store — lifecycle of the durable store and the hand-off between the owner
 * thread and the writer thread. See store.h for the contract.
 * Layer: store. Called by the local engine on the loop thread.
 *
 * Two lists cross the thread boundary, both under s->mu:
 *   queue  batches submitted and not yet taken by the writer, FIFO. Its size
 *          in events (queued_events, which also counts batches the writer
 *          has taken but not yet committed) is capped by queue_max_events;
 *   done   batches the writer committed (or failed), in commit order, until
 *          the owner drains them.
 * Batches are the caller's memory and are linked through their `next`
 * field, so neither list ever allocates.
 */
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const writer_sql[W__COUNT] = {
#define HD_W_SQL(name, sql) [W_##name] = sql,
	HD_WRITER_SQL(HD_W_SQL)
#undef HD_W_SQL
};

static const char *const reader_sql[R__COUNT] = {
#define HD_R_SQL(name, sql) [R_##name] = sql,
	HD_READER_SQL(HD_R_SQL)
#undef HD_R_SQL
};

static void default_policy(void *arg, const char *topic, struct hd_topic_policy *out)
{
	memset(out, 0, sizeof(*out));
	out->history = true;
}

/* mkdir -p: creates dir and any missing parent. */
static int make_dir(const char *dir, struct hd_error *err)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return hd_error_set(err, HD_ECONFIG, "store directory path is empty or too long");
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return hd_error_set(err, HD_ESTORE, "cannot create directory %s: %s", path,
					    strerror(errno));
		path[i] = saved;
	}
	return 0;
}

/* Two herald processes on one directory would both believe they own the
 * offsets; an advisory lock held for the store's lifetime refuses the second. */
static int lock_dir(struct hd_store *s, struct hd_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/herald.lock", s->dir) >= (int)sizeof(path))
		return hd_error_set(err, HD_ECONFIG, "store directory path is too long");
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lock_fd < 0)
		return hd_error_set(err, HD_ESTORE, "cannot open %s: %s", path, strerror(errno));
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return hd_error_set(err, HD_EUNAVAIL, "store %s is in use by another process: %s",
				    s->dir, strerror(errno));
	return 0;
}

/* meta's dedup_key: 32 hex digits, the 16 bytes of the SipHash key. */
static int load_dedup_key(struct hd_store *s, struct hd_error *err)
{
	sqlite3_stmt *st = s->st[W_DEDUP_KEY];
	const unsigned char *v = NULL;
	int rc = sqlite3_step(st), bad = 1;

	if (rc == SQLITE_ROW && (v = sqlite3_column_text(st, 0)) &&
	    sqlite3_column_bytes(st, 0) == 32) {
		bad = 0;
		for (int i = 0; i < 32 && !bad; i++) {
			int c = v[i], d = c >= '0' && c <= '9'   ? c - '0'
					  : c >= 'A' && c <= 'F' ? c - 'A' + 10
					  : c >= 'a' && c <= 'f' ? c - 'a' + 10
								 : -1;
			if (d < 0)
				bad = 1;
			else if (i % 2)
				s->dedup_key[i / 2] |= (unsigned char)d;
			else
				s->dedup_key[i / 2] = (unsigned char)(d << 4);
		}
	}
	sqlite3_reset(st);
	return bad ? hd_error_set(err, HD_ESTORE, "meta has no valid dedup_key") : 0;
}

/* A dedup claim read back at open. */
struct claim {
	int64_t topic_id;
	uint64_t offset;
	uint64_t h;
	int64_t expires_ms;
};

struct claims {
	struct claim *v;
	size_t n, cap;
};

static void claims_push(struct claims *c, int64_t topic_id, uint64_t offset, uint64_t h,
			int64_t expires_ms)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->v = hd_realloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = (struct claim){topic_id, offset, h, expires_ms};
}

static int by_expiry(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	if (x->expires_ms != y->expires_ms)
		return x->expires_ms < y->expires_ms ? -1 : 1;
	if (x->topic_id != y->topic_id)
		return x->topic_id < y->topic_id ? -1 : 1;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* A topic's newest events, newest first, until this many in a row carry no
 * open claim: claims are made in offset order with one window per topic, so
 * the open ones are the newest (the margin covers events without an id and
 * a window that was changed). */
#define CLAIM_SCAN_SLACK 64

/* The open dedup claims of one topic's stored events. */
static int load_topic_claims(struct hd_store *s, int64_t topic_id, int64_t now,
			     struct claims *c)
{
	sqlite3_stmt *st = s->st[W_DEDUP_RECENT];
	int closed = 0, rc;

	sqlite3_bind_int64(st, 1, topic_id);
	while (closed < CLAIM_SCAN_SLACK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t expires = sqlite3_column_int64(st, 2);
		if (expires <= now) {
			closed++;
			continue;
		}
		closed = 0;
		claims_push(c, topic_id, (uint64_t)sqlite3_column_int64(st, 0),
			    (uint64_t)sqlite3_column_int64(st, 1), expires);
	}
	sqlite3_reset(st);
	return closed == CLAIM_SCAN_SLACK || rc == SQLITE_DONE ? 0 : HD_ESTORE;
}

/* Every open dedup claim, from the events that carry one and from the dedup
 * table (topics without history, events removed before their window
 * closed), into the writer's index in the order they were made. */
static int load_dedup(struct hd_store *s, struct hd_error *err)
{
	struct claims c = {0};
	int64_t now = hd_now_ms();
	sqlite3_stmt *st = s->st[W_DEDUP_LOAD];
	int rc;

	hd_dedup_init(&s->dedup, s->opts.dedup_max_entries ? s->opts.dedup_max_entries
							   : HD_STORE_DEDUP_MAX_DEFAULT);
	sqlite3_bind_int64(st, 1, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		claims_push(&c, sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
			    (uint64_t)sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3));
	sqlite3_reset(st);
	if (rc == SQLITE_DONE) {
		st = s->st[W_DEDUP_TOPICS];
		while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
		       !load_topic_claims(s, sqlite3_column_int64(st, 0), now, &c))
			;
		sqlite3_reset(st);
	}
	if (rc != SQLITE_DONE) {
		free(c.v);
		return hd_error_set(err, HD_ESTORE, "cannot load dedup claims: %s",
				    sqlite3_errmsg(s->db));
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), by_expiry);
	for (size_t i = 0; i < c.n; i++)
		hd_dedup_add(&s->dedup, c.v[i].topic_id, c.v[i].h, c.v[i].offset,
			     c.v[i].expires_ms, now);
	s->dedup.evicted = 0;
	free(c.v);
	return 0;
}

static int open_writer(struct hd_store *s, const char *path, struct hd_error *err)
{
	int rc = hd_store_schema_open(path, HD_CONN_WRITER, s->opts.sync, &s->db, err);
	for (int i = 0; !rc && i < W__COUNT; i++)
		rc = hd_store_prepare(s->db, writer_sql[i], &s->st[i], err);
	if (rc)
		return rc;

	/* The gauge counts the topics on disk; the writer keeps it current. */
	sqlite3_stmt *st = s->st[W_TOPIC_COUNT];
	if (sqlite3_step(st) == SQLITE_ROW) {
		s->ntopics = sqlite3_column_int64(st, 0);
		hd_metrics_gauge_set(HD_M_topics, s->ntopics);
	}
	rc = sqlite3_reset(st);
	if (rc != SQLITE_OK)
		return hd_error_set(err, HD_ESTORE, "cannot count topics: %s", sqlite3_errmsg(s->db));
	if ((rc = load_dedup_key(s, err)))
		return rc;
	return load_dedup(s, err);
}

static int open_readers(struct hd_store *s, const char *path, struct hd_error *err)
{
	s->readers = hd_calloc(s->opts.readers, sizeof(*s->readers));
	s->free_readers = hd_calloc(s->opts.readers, sizeof(*s->free_readers));
	for (unsigned i = 0; i < s->opts.readers; i++) {
		struct hd_store_reader *r = &s->readers[i];
		int rc = hd_store_schema_open(path, HD_CONN_READER, s->opts.sync, &r->db, err);
		s->nreaders = i + 1;
		for (int j = 0; !rc && j < R__COUNT; j++)
			rc = hd_store_prepare(r->db, reader_sql[j], &r->st[j], err);
		if (rc)
			return rc;
		s->free_readers[s->nfree++] = i;
	}
	return 0;
}

static int init_sync(struct hd_store *s, struct hd_error *err)
{
	pthread_condattr_t ca;
	/* The writer's maintenance timer waits on the monotonic clock, so a
	 * wall-clock step neither stalls nor races the housekeeping. */
	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_mutex_init(&s->mu, NULL) || pthread_cond_init(&s->wake, &ca) ||
	    pthread_mutex_init(&s->pool_mu, NULL) || pthread_cond_init(&s->pool_cv, NULL) ||
	    pthread_mutex_init(&s->ckpt_mu, NULL) || pthread_cond_init(&s->ckpt_cv, NULL))
		return hd_error_set(err, HD_EINTERNAL, "cannot initialise store locks");
	pthread_condattr_destroy(&ca);
	s->sync_ready = true;
	return 0;
}

/* SQLite's memory statistics take a process-wide mutex on every allocation
 * it makes; herald never reads them. This must run before SQLite
 * initialises, and the store is herald's only user of SQLite; if SQLite
 * was initialised already the call fails harmlessly. */
static void configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

struct hd_store *hd_store_open(const struct hd_store_opts *opts, struct hd_error *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct hd_store *s = hd_calloc(1, sizeof(*s));
	char path[PATH_MAX];
	int rc;

	pthread_once(&once, configure_sqlite);
	s->lock_fd = -1;
	s->opts = *opts;
	if (!opts->dir || !opts->commit_max_events || !opts->queue_max_events ||
	    !opts->readers || (unsigned)opts->sync > HD_SYNC_OFF) {
		hd_error_set(err, HD_ECONFIG, "store options: dir, commit_max_events, "
					      "queue_max_events and readers must be set");
		goto fail;
	}
	s->dir = hd_strdup(opts->dir);
	s->opts.dir = s->dir;
	if (!s->opts.policy)
		s->opts.policy = default_policy;
	if (snprintf(path, sizeof(path), "%s/herald.db", s->dir) >= (int)sizeof(path)) {
		hd_error_set(err, HD_ECONFIG, "store directory path is too long");
		goto fail;
	}
	atomic_init(&s->ckpt_pages, HD_STORE_CHECKPOINT_PAGES);
	if ((rc = make_dir(s->dir, err)) || (rc = lock_dir(s, err)) ||
	    (rc = open_writer(s, path, err)) || (rc = open_readers(s, path, err)) ||
	    (rc = init_sync(s, err)) || (rc = hd_store_checkpointer_start(s, path, err)))
		goto fail;

	hd_topic_cache_init(&s->cache);
	s->sweep = hd_calloc(HD_STORE_SWEEP_CHUNK, sizeof(*s->sweep));
	s->ttl_rows = hd_calloc(HD_STORE_MAINT_ROWS, sizeof(*s->ttl_rows));
	atomic_init(&s->dedup_scan, HD_STORE_DEDUP_SCAN);
	s->next_maint_ms = hd_mono_ms() + s->opts.maintenance_interval_ms;
	atomic_init(&s->fault_commits, 0);
	atomic_init(&s->dedup_mask, UINT64_MAX);

	if ((rc = pthread_create(&s->thread, NULL, hd_store_writer_main, s)) != 0) {
		hd_error_set(err, HD_EINTERNAL, "cannot start the store writer: %s", strerror(rc));
		goto fail;
	}
	s->started = true;
	pthread_setname_np(s->thread, "hd-store-writer");
	hd_log_info("store_open dir=%s sync=%d readers=%u", s->dir, (int)s->opts.sync,
		    s->opts.readers);
	return s;

fail:
	s->joined = true;
	hd_store_free(s);
	return NULL;
}

int hd_store_submit(struct hd_store *s, struct hd_store_batch *b)
{
	size_t n = b->op == HD_STORE_APPEND ? b->n : 1;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	/* A batch larger than the whole queue could never be accepted; it is
	 * refused like any other overflow rather than waited for. */
	if (s->stopping || n > s->opts.queue_max_events ||
	    s->queued_events > s->opts.queue_max_events - n) {
		rc = HD_EUNAVAIL;
		goto out;
	}
	/* A refused batch is left untouched: it may still be linked in the
	 * done list if the caller resubmits before draining. */
	b->err = 0;
	b->next = NULL;
	b->submitted_us = hd_mono_us();
	if (s->queue_tail)
		s->queue_tail->next = b;
	else
		s->queue_head = b;
	s->queue_tail = b;
	s->queued_events += n;
	/* Group commit: an idle writer starts on the first batch at once, and
	 * a busy one takes all that queued meanwhile when its commit ends (it
	 * looks at the queue under mu before it waits, so only an idle one
	 * needs the signal). Holding the first publish of a loop iteration
	 * back until the iteration's end, so that all of them shared a commit,
	 * was slower: single publishes from 64 connections went from 31.5k/s
	 * to 35k/s (medians of 4 alternating runs) and batches from 258k to
	 * 272k events/s when the writer started at once. */
	if (s->idle) {
		s->idle = false;
		pthread_cond_signal(&s->wake);
	}
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void hd_store_drain(struct hd_store *s, void (*cb)(struct hd_store_batch *b, void *arg), void *arg)
{
	struct hd_store_batch *b;

	pthread_mutex_lock(&s->mu);
	b = s->done_head;
	s->done_head = s->done_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	while (b) {
		/* cb may free or resubmit the batch: read the link first. */
		struct hd_store_batch *next = b->next;
		b->next = NULL;
		cb(b, arg);
		b = next;
	}
}

void hd_store_stop(struct hd_store *s)
{
	if (!s->started || s->joined)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->joined = true;
	hd_store_checkpointer_stop(s);

	/* The writer is gone, so its connection is ours now. Folding the WAL
	 * back into the database leaves one self-contained file behind; if a
	 * reader holds a snapshot the checkpoint is partial, which is harmless. */
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		hd_log_warn("store_checkpoint_failed err=\"%s\"", sqlite3_errmsg(s->db));
	hd_log_info("store_stopped dir=%s", s->dir);
}

void hd_store_free(struct hd_store *s)
{
	if (!s)
		return;
	hd_store_stop(s);
	/* When open failed before the writer started, hd_store_stop did not
	 * get this far. */
	hd_store_checkpointer_stop(s);
	if (s->readers) {
		for (unsigned i = 0; i < s->nreaders; i++) {
			for (int j = 0; j < R__COUNT; j++)
				sqlite3_finalize(s->readers[i].st[j]);
			sqlite3_close(s->readers[i].db);
		}
	}
	for (int i = 0; i < W__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	/* Closed last: the last connection to close checkpoints the WAL and
	 * removes it. */
	sqlite3_close(s->db);
	hd_topic_cache_fini(&s->cache);
	hd_dedup_fini(&s->dedup);
	if (s->sync_ready) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->pool_mu);
		pthread_cond_destroy(&s->pool_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		pthread_cond_destroy(&s->ckpt_cv);
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->readers);
	free(s->free_readers);
	free(s->slots);
	free(s->sweep);
	free(s->ttl_rows);
	free(s->dir);
	free(s);
}

void hd_store_fault_fail_commits(struct hd_store *s, int n)
{
	atomic_store(&s->fault_commits, n);
}

void hd_store_test_dedup_mask(struct hd_store *s, uint64_t mask)
{
	atomic_store(&s->dedup_mask, mask);
}

void hd_store_test_dedup_scan(struct hd_store *s, size_t n)
{
	atomic_store(&s->dedup_scan, n ? n : 1);
}
