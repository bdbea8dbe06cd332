/*
 * schema — the store's connections and its on-disk schema.
 * Layer: store, private (store_impl.h). Called by hd_store_open on the owner
 * thread, before the writer thread starts.
 *
 * The tables are those of the comment at the top of store.h (version 4),
 * plus one index that only serves housekeeping:
 *   events_expiry ON events(expires_ms) WHERE expires_ms > 0
 *       finds events past their TTL without scanning every event; partial,
 *       so events without a TTL cost no index entry.
 * The dedup table has no index on expires_ms: maintenance finds expired
 * entries by walking the table in key order (retention.c), which costs far
 * less than a second B-tree insert on every publish.
 * meta holds ('schema_version', '4') and ('dedup_key', 32 hex digits: the
 * SipHash key of the dedup hashes, random per database); a database with
 * another version is refused rather than guessed at. Version 2 dropped
 * version 1's dedup_expiry index, version 3 added groups, version 4 records
 * and 64-bit hashed dedup keys; there is no migration
 * (nothing was released with 1 or 2).
 *
 * Durability is SQLite's: WAL mode, and `synchronous` FULL (the WAL is
 * fsynced at every commit, so an acknowledged event survives power loss),
 * NORMAL (fsync only at checkpoints: survives kill -9 of herald, not a power
 * cut) or OFF. Nothing here caches what the database holds.
 */
#include "core/err.h"
#include "store/store_impl.h"

#include <stdio.h>
#include <string.h>

#define SCHEMA_VERSION "4"

/* 16 KiB pages for a new database: measured on small (~300-byte) events,
 * 8 KiB pages committed large batches 20-30% faster than 4 KiB, and 16 KiB
 * cost the writer another ~15% less CPU per batched event (fewer page
 * splits, each a full rebalance in a WITHOUT ROWID table) at the same
 * speed for the small fsync'd commits of concurrent single publishes;
 * 32 KiB made those slower. An existing database keeps its page size. */
#define PAGE_SIZE 16384
/* Page cache per connection in KiB. A bigger writer cache measured no
 * faster: the OS page cache already holds the hot pages. */
#define WRITER_CACHE_KIB 16384
#define READER_CACHE_KIB 8192
/* Cut the WAL file back to 64 MiB once it starts over, so one burst does not
 * keep a huge WAL (the checkpoints themselves are checkpoint.c's). */
#define JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)
/* Readers may meet a brief lock while the WAL is reset; wait, don't fail. */
#define BUSY_TIMEOUT_MS 5000

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE IF NOT EXISTS topics("
	" id INTEGER PRIMARY KEY,"
	" name TEXT UNIQUE NOT NULL,"
	" epoch TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" last_offset INTEGER NOT NULL,"
	" low_offset INTEGER NOT NULL,"
	" count INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS events("
	" topic_id INTEGER NOT NULL,"
	" offset INTEGER NOT NULL,"
	" time_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL,"
	" json BLOB NOT NULL,"
	" dk INTEGER NOT NULL,"
	" dk_expires INTEGER NOT NULL,"
	" PRIMARY KEY(topic_id, offset)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS events_expiry ON events(expires_ms) WHERE expires_ms > 0;"
	"CREATE TABLE IF NOT EXISTS dedup("
	" topic_id INTEGER NOT NULL,"
	" offset INTEGER NOT NULL,"
	" h INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL,"
	" PRIMARY KEY(topic_id, offset)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS groups("
	" topic TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" ack_floor INTEGER NOT NULL,"
	" acked TEXT NOT NULL,"
	" ack_wait_ms INTEGER NOT NULL,"
	" max_deliveries INTEGER NOT NULL,"
	" ordered INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" PRIMARY KEY(topic, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS records("
	" kind TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" PRIMARY KEY(kind, key)) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');"
	"INSERT OR IGNORE INTO meta(key, value) VALUES('dedup_key', hex(randomblob(16)));";

static int db_error(sqlite3 *db, const char *what, int rc, struct hd_error *err)
{
	return hd_error_set(err, HD_ESTORE, "%s: %s", what,
			    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int hd_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct hd_error *err)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK) {
		*out = NULL;
		return hd_error_set(err, HD_ESTORE, "prepare failed: %s: %s", sqlite3_errmsg(db),
				    sql);
	}
	return 0;
}

/* Runs a statement that returns at most one row and copies its first column
 * as text into out (empty when no row). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t out_len,
		      struct hd_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_error(db, sql, rc, err);
	out[0] = '\0';
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		snprintf(out, out_len, "%s", v ? (const char *)v : "");
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE)
		db_error(db, sql, rc, err);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HD_ESTORE;
}

static int exec(sqlite3 *db, const char *sql, struct hd_error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_error(db, sql, rc, err);
}

static int setup_writer(sqlite3 *db, enum hd_store_sync sync, struct hd_error *err)
{
	static const char *const sync_sql[] = {
		[HD_SYNC_FULL] = "PRAGMA synchronous=FULL",
		[HD_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
		[HD_SYNC_OFF] = "PRAGMA synchronous=OFF",
	};
	char v[32];
	char sql[256];
	int rc;

	/* Only takes effect while the file is still empty (before WAL mode
	 * is set); later it is a harmless no-op. */
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", PAGE_SIZE);
	if ((rc = exec(db, sql, err)))
		return rc;
	if ((rc = query_text(db, "PRAGMA journal_mode=WAL", v, sizeof(v), err)))
		return rc;
	if (strcmp(v, "wal") != 0)
		return hd_error_set(err, HD_ESTORE, "cannot enable WAL mode (journal_mode=%s)", v);
	if ((rc = exec(db, sync_sql[sync], err)))
		return rc;
	snprintf(sql, sizeof(sql),
		 "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%d;"
		 " PRAGMA cache_size=-%d; PRAGMA temp_store=MEMORY;"
		 " PRAGMA secure_delete=FAST",
		 JOURNAL_SIZE_LIMIT, WRITER_CACHE_KIB);
	if ((rc = exec(db, sql, err)))
		return rc;
	if ((rc = exec(db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = exec(db, schema_sql, err)) ||
	    (rc = query_text(db, "SELECT value FROM meta WHERE key='schema_version'", v,
			     sizeof(v), err))) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (strcmp(v, SCHEMA_VERSION) != 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return hd_error_set(err, HD_ESTORE,
				    "unsupported schema version %s (this herald reads %s)", v,
				    SCHEMA_VERSION);
	}
	return exec(db, "COMMIT", err);
}

/* The checkpointer copies pages and fsyncs as the store's sync mode says;
 * it never reads through the page cache, so it gets a small one. */
static int setup_checkpointer(sqlite3 *db, enum hd_store_sync sync, struct hd_error *err)
{
	static const char *const sync_sql[] = {
		[HD_SYNC_FULL] = "PRAGMA synchronous=FULL; PRAGMA cache_size=-256",
		[HD_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-256",
		[HD_SYNC_OFF] = "PRAGMA synchronous=OFF; PRAGMA cache_size=-256",
	};
	return exec(db, sync_sql[sync], err);
}

static int setup_reader(sqlite3 *db, struct hd_error *err)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%d; PRAGMA temp_store=MEMORY",
		 READER_CACHE_KIB);
	return exec(db, sql, err);
}

int hd_store_schema_open(const char *path, enum hd_conn_kind kind, enum hd_store_sync sync,
			 sqlite3 **out, struct hd_error *err)
{
	bool writer = kind == HD_CONN_WRITER;
	/* NOMUTEX: each connection is used by one thread at a time (the writer,
	 * or whoever borrowed it from the pool under pool_mu), so SQLite's own
	 * per-connection mutex would only cost time. */
	int flags = SQLITE_OPEN_NOMUTEX |
		    (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
			    : kind == HD_CONN_CHECKPOINTER ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);

	*out = NULL;
	if (rc != SQLITE_OK) {
		hd_error_set(err, HD_ESTORE, "cannot open %s: %s", path,
			     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return HD_ESTORE;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	rc = writer			      ? setup_writer(db, sync, err)
	     : kind == HD_CONN_CHECKPOINTER ? setup_checkpointer(db, sync, err)
					      : setup_reader(db, err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}
