/*
 * checkpoint — the store's checkpointer thread: copies the WAL back into the
 * database off the writer thread.
 * Layer: store, private (store_impl.h). Started by hd_store_open after the
 * writer's connection exists and before the writer thread runs; stopped by
 * hd_store_stop after the writer thread has finished.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL
 * past its threshold, so every publish in that group commit (and every one
 * queued behind it) waited for tens of milliseconds of page copying: that
 * was the p99 of batch publishes. Instead the writer's connection has a WAL
 * hook (wal_hook, called after each commit with the WAL's size in frames)
 * that only wakes this thread once the WAL holds ckpt_pages frames; the
 * thread runs a PASSIVE checkpoint on its own connection, which copies what
 * no reader still needs and never blocks the writer or the readers. The
 * writer starts the WAL over at its next transaction once a checkpoint has
 * copied all of it.
 *
 * Durability is unchanged: the checkpointer's connection has the store's
 * `synchronous` setting, so under FULL and NORMAL it fsyncs the WAL before
 * copying and the database after, as the writer's own checkpoint did, and
 * SQLite marks frames as copied only after that.
 *
 * A backstop bounds the WAL should this thread fall behind (it shares two
 * cores with everything else): past CKPT_BACKSTOP times the threshold, the
 * writer checkpoints itself, as before.
 */
#include "core/log.h"
#include "core/metrics.h"
#include "store/store_impl.h"

#include <stdio.h>
#include <string.h>

#define CKPT_BACKSTOP 4 /* times ckpt_pages at which the writer checkpoints itself */

/* The writer's connection, after each commit: the write lock is released,
 * so a checkpoint from here (the backstop) is allowed. Writer thread. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct hd_store *s = arg;
	int want = atomic_load(&s->ckpt_pages);

	if (frames >= want * CKPT_BACKSTOP) {
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		hd_metrics_inc(HD_M_store_checkpoints_total);
		return SQLITE_OK;
	}
	if (frames >= want) {
		pthread_mutex_lock(&s->ckpt_mu);
		if (!s->ckpt_wanted) {
			s->ckpt_wanted = true;
			pthread_cond_signal(&s->ckpt_cv);
		}
		pthread_mutex_unlock(&s->ckpt_mu);
	}
	return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
	struct hd_store *s = arg;
	long long warn_ms = 0;

	pthread_mutex_lock(&s->ckpt_mu);
	for (;;) {
		while (!s->ckpt_wanted && !s->ckpt_stop)
			pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
		if (s->ckpt_stop)
			break;
		s->ckpt_wanted = false;
		pthread_mutex_unlock(&s->ckpt_mu);

		int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
						   NULL);
		hd_metrics_inc(HD_M_store_checkpoints_total);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && hd_log_ratelimited(&warn_ms))
			hd_log_warn("store_checkpoint_failed err=\"%s\"", sqlite3_errmsg(s->ckpt_db));

		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

int hd_store_checkpointer_start(struct hd_store *s, const char *path, struct hd_error *err)
{
	int rc = hd_store_schema_open(path, HD_CONN_CHECKPOINTER, s->opts.sync, &s->ckpt_db, err);
	if (rc)
		return rc;
	if ((rc = pthread_create(&s->ckpt_thread, NULL, checkpointer_main, s)) != 0)
		return hd_error_set(err, HD_EINTERNAL, "cannot start the store checkpointer: %s",
				    strerror(rc));
	s->ckpt_started = true;
	pthread_setname_np(s->ckpt_thread, "hd-store-ckpt");
	/* Replaces SQLite's automatic checkpoint on the writer's connection. */
	sqlite3_wal_hook(s->db, wal_hook, s);
	return 0;
}

void hd_store_checkpointer_stop(struct hd_store *s)
{
	if (s->ckpt_started) {
		pthread_mutex_lock(&s->ckpt_mu);
		s->ckpt_stop = true;
		pthread_cond_signal(&s->ckpt_cv);
		pthread_mutex_unlock(&s->ckpt_mu);
		pthread_join(s->ckpt_thread, NULL);
		s->ckpt_started = false;
	}
	if (s->db)
		sqlite3_wal_hook(s->db, NULL, NULL);
	sqlite3_close(s->ckpt_db);
	s->ckpt_db = NULL;
}

void hd_store_test_checkpoint_pages(struct hd_store *s, int frames)
{
	atomic_store(&s->ckpt_pages, frames > 0 ? frames : 1);
}
