/*
 * store_impl — the private insides of the store, shared by its files:
 *   store.c      lifecycle: open, submit, drain, stop, free; the queues
 *   schema.c     connections, pragmas, the on-disk schema and its version
 *   topic_cache.c the writer's map of topic name → offsets, epoch, policy
 *   writer.c     the writer thread: group commit of appends and deletes
 *   retention.c  count retention inside a commit, maintenance rounds
 *   reader.c     the pool of read connections and the read calls
 * Layer: store. Nothing outside src/store/ includes this header (the store's
 * unit test does, for the fault-injection knob).
 *
 * Threads: the fields of struct hd_store are grouped by who may touch them;
 * each group names its lock, or its single thread.
 */
#ifndef HD_STORE_IMPL_H
#define HD_STORE_IMPL_H

#include "store/store.h"
#include "store/topic_cache.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include "store/dedup.h"

#include <stdbool.h>
#include <stdint.h>

/* Rows one maintenance round may delete (events and dedup entries together),
 * and the most rows count retention removes from one topic inside a publish
 * commit. Both keep a single transaction short so publishes never wait long
 * behind housekeeping; whatever is left is taken by the next round. */
#define HD_STORE_MAINT_ROWS 10000
/* Dedup entries one maintenance round examines for expiry, walking the
 * table in key order from where the previous round stopped (there is no
 * expiry index: keeping one cost every publish a second B-tree insert).
 * At one round a second a pass over a table of n entries takes about
 * n / HD_STORE_DEDUP_SCAN seconds; an expired entry left over until then
 * only takes room, since the upsert checks expires_ms itself. A round of
 * 10000 holds the writer about 5 ms (50000 measured 19 ms, a p99 stall),
 * and matches HD_STORE_MAINT_ROWS, the most the expiry index let one round
 * delete before. */
#define HD_STORE_DEDUP_SCAN 10000
/* WAL frames (pages) after which the checkpointer copies the WAL back into
 * the database: 32 MiB of 16 KiB pages. */
#define HD_STORE_CHECKPOINT_PAGES 2048
/* Events one multi-row INSERT writes (EVENT_INS_MANY has this many rows;
 * 64 measured no cheaper per event than 32). */
#define HD_STORE_INS_ROWS 32
/* Topics the maintenance sweep examines per round for age and count limits. */
#define HD_STORE_SWEEP_TOPICS 1024
/* Topics in one chunk of the sweep (copied out before they are worked on). */
#define HD_STORE_SWEEP_CHUNK 256
/* Topics the writer's cache holds between transactions; past it the cache is
 * emptied at the start of the next one and refilled from the database. */
#define HD_STORE_TOPIC_CACHE_MAX 65536

/*
 * The writer connection's statements, prepared once at open and reused.
 * X(NAME, sql). Parameters are numbered so each binding names its column.
 */
#define HD_WRITER_SQL(X)                                                                   \
	X(BEGIN, "BEGIN IMMEDIATE")                                                        \
	X(COMMIT, "COMMIT")                                                                \
	X(ROLLBACK, "ROLLBACK")                                                            \
	X(TOPIC_GET, "SELECT id, epoch, last_offset, low_offset FROM topics WHERE name=?1") \
	X(TOPIC_NEW, "INSERT INTO topics(name, epoch, created_ms, last_offset, low_offset," \
		     " count, bytes) VALUES(?1, ?2, ?3, 0, 1, 0, 0)")                     \
	X(TOPIC_UPDATE, "UPDATE topics SET last_offset=?2, low_offset=?3,"                \
			" count=count+?4, bytes=bytes+?5 WHERE id=?1 RETURNING count")    \
	X(TOPIC_RETAIN, "UPDATE topics SET low_offset=max(low_offset, ?2),"               \
			" count=count-?3, bytes=bytes-?4 WHERE id=?1")                    \
	X(TOPIC_DEL, "DELETE FROM topics WHERE id=?1")                                     \
	X(TOPIC_COUNT, "SELECT count(*) FROM topics")                                      \
	X(EVENT_INS, "INSERT INTO events(topic_id, offset, time_ms, expires_ms, json, dk, dk_expires)" \
		     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")                                \
	X(EVENT_INS_MANY, "INSERT INTO events(topic_id, offset, time_ms, expires_ms, json, dk,"  \
		" dk_expires) VALUES" \
		" (?1, ?2, ?3, ?4, ?5, ?6, ?7), (?8, ?9, ?10, ?11, ?12, ?13, ?14)," \
		" (?15, ?16, ?17, ?18, ?19, ?20, ?21), (?22, ?23, ?24, ?25, ?26, ?27, ?28)," \
		" (?29, ?30, ?31, ?32, ?33, ?34, ?35), (?36, ?37, ?38, ?39, ?40, ?41, ?42)," \
		" (?43, ?44, ?45, ?46, ?47, ?48, ?49), (?50, ?51, ?52, ?53, ?54, ?55, ?56)," \
		" (?57, ?58, ?59, ?60, ?61, ?62, ?63), (?64, ?65, ?66, ?67, ?68, ?69, ?70)," \
		" (?71, ?72, ?73, ?74, ?75, ?76, ?77), (?78, ?79, ?80, ?81, ?82, ?83, ?84)," \
		" (?85, ?86, ?87, ?88, ?89, ?90, ?91), (?92, ?93, ?94, ?95, ?96, ?97, ?98)," \
		" (?99, ?100, ?101, ?102, ?103, ?104, ?105), (?106, ?107, ?108, ?109, ?110, ?111, ?112)," \
		" (?113, ?114, ?115, ?116, ?117, ?118, ?119), (?120, ?121, ?122, ?123, ?124, ?125, ?126)," \
		" (?127, ?128, ?129, ?130, ?131, ?132, ?133), (?134, ?135, ?136, ?137, ?138, ?139, ?140)," \
		" (?141, ?142, ?143, ?144, ?145, ?146, ?147), (?148, ?149, ?150, ?151, ?152, ?153, ?154)," \
		" (?155, ?156, ?157, ?158, ?159, ?160, ?161), (?162, ?163, ?164, ?165, ?166, ?167, ?168)," \
		" (?169, ?170, ?171, ?172, ?173, ?174, ?175), (?176, ?177, ?178, ?179, ?180, ?181, ?182)," \
		" (?183, ?184, ?185, ?186, ?187, ?188, ?189), (?190, ?191, ?192, ?193, ?194, ?195, ?196)," \
		" (?197, ?198, ?199, ?200, ?201, ?202, ?203), (?204, ?205, ?206, ?207, ?208, ?209, ?210)," \
		" (?211, ?212, ?213, ?214, ?215, ?216, ?217), (?218, ?219, ?220, ?221, ?222, ?223, ?224)") \
	X(EVENTS_DEL_TOPIC, "DELETE FROM events WHERE topic_id=?1")                        \
	X(DEDUP_PUT, "INSERT OR REPLACE INTO dedup(topic_id, offset, h, expires_ms)"       \
		     " VALUES(?1, ?2, ?3, ?4)")                                           \
	X(DEDUP_LOAD, "SELECT topic_id, offset, h, expires_ms FROM dedup"                  \
		      " WHERE expires_ms > ?1")                                           \
	X(DEDUP_TOPICS, "SELECT id, name FROM topics")                                     \
	X(DEDUP_RECENT, "SELECT offset, dk, dk_expires, time_ms FROM events"               \
			" WHERE topic_id=?1 ORDER BY offset DESC")                         \
	X(DEDUP_KEEP_TRIM, "INSERT OR REPLACE INTO dedup(topic_id, offset, h, expires_ms)" \
			   " SELECT topic_id, offset, dk, dk_expires FROM events"          \
			   " WHERE topic_id=?1 AND offset<=?2 AND dk_expires>?3")          \
	X(EVENT_KEY, "SELECT json_extract(CAST(json AS TEXT), '$.source'),"                \
		     " json_extract(CAST(json AS TEXT), '$.id') FROM events"               \
		     " WHERE topic_id=?1 AND offset=?2")                                  \
	X(DEDUP_KEY, "SELECT value FROM meta WHERE key='dedup_key'")                       \
	X(DEDUP_DEL_TOPIC, "DELETE FROM dedup WHERE topic_id=?1")                          \
	X(GROUPS_DEL_TOPIC, "DELETE FROM groups WHERE topic=?1")                           \
	X(GROUP_PUT, "INSERT OR REPLACE INTO groups(topic, name, ack_floor, acked,"        \
		     " ack_wait_ms, max_deliveries, ordered, created_ms)"                 \
		     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                           \
	X(GROUP_DEL, "DELETE FROM groups WHERE topic=?1 AND name=?2")                      \
	X(RECORD_PUT, "INSERT OR REPLACE INTO records(kind, key, value, updated_ms)"       \
		      " VALUES(?1, ?2, ?3, ?4)")                                          \
	X(RECORD_DEL, "DELETE FROM records WHERE kind=?1 AND key=?2")                      \
	X(TRIM_SCAN, "SELECT offset, time_ms, length(json) FROM events WHERE topic_id=?1"  \
		     " ORDER BY offset LIMIT ?2")                                         \
	X(TRIM_DEL, "DELETE FROM events WHERE topic_id=?1 AND offset<=?2")                 \
	X(TTL_DEL, "DELETE FROM events WHERE (topic_id, offset) IN (SELECT topic_id, offset" \
		   " FROM events WHERE expires_ms > 0 AND expires_ms <= ?1 LIMIT ?2)"      \
		   " RETURNING topic_id, length(json), offset, dk, dk_expires")           \
	X(DEDUP_SLICE, "SELECT topic_id, offset FROM dedup WHERE (topic_id, offset) > (?1, ?2)" \
		       " ORDER BY topic_id, offset LIMIT 1 OFFSET ?3")                     \
	X(DEDUP_EXPIRE, "DELETE FROM dedup WHERE (topic_id, offset) IN (SELECT topic_id,"  \
			" offset FROM dedup WHERE (topic_id, offset) > (?1, ?2)"           \
			" AND (topic_id, offset) <= (?3, ?4) AND expires_ms <= ?5"         \
			" ORDER BY topic_id, offset LIMIT ?6)")                            \
	X(SWEEP, "SELECT id, name, count FROM topics WHERE id > ?1 ORDER BY id LIMIT ?2")

enum hd_writer_stmt {
#define HD_W_ENUM(name, sql) W_##name,
	HD_WRITER_SQL(HD_W_ENUM)
#undef HD_W_ENUM
	W__COUNT
};

/* A read connection's statements; each read runs them inside BEGIN … COMMIT
 * so the topic row and its events come from one snapshot. */
#define HD_READER_SQL(X)                                                                   \
	X(BEGIN, "BEGIN")                                                                  \
	X(COMMIT, "COMMIT")                                                                \
	X(TOPIC, "SELECT id, epoch, last_offset, low_offset, count, bytes, created_ms"     \
		 " FROM topics WHERE name=?1")                                             \
	X(EVENTS, "SELECT offset, time_ms, expires_ms, json FROM events WHERE topic_id=?1" \
		  " AND offset>?2 AND (expires_ms=0 OR expires_ms>?3) AND time_ms>?4"      \
		  " ORDER BY offset LIMIT ?5")                                             \
	X(FIRST, "SELECT min(offset) FROM events WHERE topic_id=?1")                       \
	X(NEXT_TIME, "SELECT time_ms FROM events WHERE topic_id=?1 AND offset>?2"          \
		     " AND (expires_ms=0 OR expires_ms>?3) ORDER BY offset LIMIT 1")       \
	X(LIST, "SELECT t.name, t.epoch, t.created_ms, t.last_offset, t.count, t.bytes,"   \
		" (SELECT min(e.offset) FROM events e WHERE e.topic_id=t.id)"              \
		" FROM topics t WHERE t.name >= ?1 AND t.name <> ?2 ORDER BY t.name")       \
	X(NAMES, "SELECT name FROM topics")                                                \
	X(GROUPS, "SELECT topic, name, ack_floor, acked, ack_wait_ms, max_deliveries,"     \
		  " ordered, created_ms FROM groups ORDER BY topic, name LIMIT ?1")         \
	X(RECORD, "SELECT value, updated_ms FROM records WHERE kind=?1 AND key=?2")        \
	X(RECORDS, "SELECT key, value, updated_ms FROM records WHERE kind=?1"              \
		   " AND key > ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4)"               \
		   " ORDER BY key LIMIT ?5")

enum hd_reader_stmt {
#define HD_R_ENUM(name, sql) R_##name,
	HD_READER_SQL(HD_R_ENUM)
#undef HD_R_ENUM
	R__COUNT
};

struct hd_store_reader {
	sqlite3 *db;
	sqlite3_stmt *st[R__COUNT];
};

/* Counts of one transaction, added to the metrics only once it commits. */
struct hd_store_tally {
	uint64_t events;     /* events applied (stored or assigned an offset) */
	uint64_t publishes;
	uint64_t bytes;
	uint64_t duplicates;
	uint64_t expired;    /* removed by TTL or retention */
	int64_t topics;      /* topics created minus topics deleted */
};

/* One topic of the maintenance sweep, copied out of the topics table. */
struct hd_sweep_topic {
	int64_t id;
	uint64_t count;
	char name[HD_TOPIC_NAME_MAX + 1];
};

/* One row the TTL pass removed: which topic, how many JSON bytes. */
struct hd_ttl_row {
	int64_t topic_id;
	uint64_t bytes;
	uint64_t offset;
	uint64_t dk;           /* the event's dedup claim, kept when still open */
	int64_t dk_expires;
};

struct hd_store {
	struct hd_store_opts opts; /* a copy; opts.dir points to dir */
	char *dir;                 /* owned */
	int lock_fd;               /* flock on <dir>/herald.lock: one process per store */

	/* Guarded by mu: the queue of submitted batches, the done list and the
	 * stop flag. The writer waits on wake for work, a stop or its timer. */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct hd_store_batch *queue_head, *queue_tail;
	struct hd_store_batch *done_head, *done_tail;
	size_t queued_events;      /* submitted and not yet committed */
	bool stopping;
	bool idle; /* the writer waits for work (read and written under mu) */
	bool sync_ready;           /* mu, wake and pool_mu were initialised */

	/* Owner thread only. */
	pthread_t thread;
	bool started;              /* the writer thread was created */
	bool joined;

	/* Writer thread only (and the owner before start and after join). */
	sqlite3 *db;
	sqlite3_stmt *st[W__COUNT];
	struct hd_topic_cache cache;
	int64_t ntopics;               /* topics on disk as of the last commit */
	uint64_t txn;                  /* number of the current transaction */
	struct hd_store_topic *touched; /* entries touched by this transaction */
	struct hd_store_topic **slots; /* per item of a group: its topic, or NULL */
	/* Events of the current transaction not yet inserted: they go in
	 * HD_STORE_INS_ROWS at a time (one statement), the rest before
	 * anything reads or deletes events (flush_events). */
	struct hd_pending_event {
		int64_t topic_id;
		uint64_t offset;
		int64_t time_ms;
		int64_t expires_ms;
		const struct hd_rcbuf *json;
		uint64_t dk;           /* dedup hash, with dk_expires (0: none) */
		int64_t dk_expires;
	} pending[HD_STORE_INS_ROWS];
	size_t npending;
	size_t slots_cap;
	struct hd_store_tally tally;
	char fail_msg[160];            /* the first error of a failing transaction */
	long long fail_log_ms;         /* rate limit of the failure log line */
	int64_t sweep_cursor;          /* last topic id the sweep examined */
	/* The dedup row (topic id, offset) the expiry walk resumes after;
	 * (0, 0) is before every row. */
	atomic_size_t dedup_scan;      /* HD_STORE_DEDUP_SCAN; tests lower it */
	int64_t dedup_cursor_topic;
	int64_t dedup_cursor_h;        /* the offset */
	struct hd_dedup dedup;         /* the keys in their windows (dedup.h) */
	uint64_t dedup_mark;           /* hd_dedup_mark at the group's BEGIN */
	unsigned char dedup_key[16];   /* SipHash key of the dedup hashes (meta) */
	_Atomic uint64_t dedup_mask;   /* all ones; tests force collisions with it */
	struct hd_sweep_topic *sweep;  /* HD_STORE_SWEEP_CHUNK entries */
	struct hd_ttl_row *ttl_rows;   /* HD_STORE_MAINT_ROWS entries */
	uint64_t next_maint_ms;        /* hd_mono_ms deadline of the next round */

	/* Fault injection for tests: the next n group commits fail as if COMMIT
	 * had returned SQLITE_FULL, exercising the whole rollback path. */
	atomic_int fault_commits;

	/* The checkpointer (checkpoint.c): ckpt_mu guards ckpt_wanted and
	 * ckpt_stop; its thread waits on ckpt_cv. ckpt_db is that thread's
	 * own connection. ckpt_pages is HD_STORE_CHECKPOINT_PAGES (tests lower
	 * it), read by the writer's WAL hook. */
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	bool ckpt_wanted;
	bool ckpt_stop;
	pthread_t ckpt_thread;         /* owner thread */
	bool ckpt_started;             /* owner thread */
	sqlite3 *ckpt_db;
	atomic_int ckpt_pages;

	/* The reader pool: pool_mu guards the free list; borrowers wait on
	 * pool_cv. A borrowed connection belongs to its borrower alone. */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct hd_store_reader *readers; /* owned, nreaders */
	unsigned nreaders;
	unsigned *free_readers;          /* owned stack of indices into readers */
	unsigned nfree;
};

/* schema.c */
enum hd_conn_kind { HD_CONN_WRITER, HD_CONN_READER, HD_CONN_CHECKPOINTER };
/* Opens <dir>/herald.db, applies the connection pragmas and, for the
 * writer, creates or checks the schema. Returns 0 or HD_ESTORE with err
 * filled; *out is NULL on failure. Owner thread, at open. */
int hd_store_schema_open(const char *path, enum hd_conn_kind kind, enum hd_store_sync sync,
			 sqlite3 **out, struct hd_error *err);

/* checkpoint.c */
/* Opens the checkpointer's connection, starts its thread and hooks the
 * writer's connection (s->db, open; the writer thread not yet started).
 * Returns 0 or an HD_E* code with err filled. Owner thread. */
int hd_store_checkpointer_start(struct hd_store *s, const char *path, struct hd_error *err);
/* Stops and joins the thread and closes its connection; safe when it never
 * started. Owner thread, after the writer thread has been joined. */
void hd_store_checkpointer_stop(struct hd_store *s);
/* Test hook: WAL frames that ask for a checkpoint (see ckpt_pages). */
void hd_store_test_checkpoint_pages(struct hd_store *s, int frames);
/* Prepares sql as a persistent statement. Returns 0 or HD_ESTORE with err
 * filled. */
int hd_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, struct hd_error *err);

/* writer.c */
/* The writer thread's body; arg is the store. */
void *hd_store_writer_main(void *arg);
/* Records the first failure of the current transaction for its one log
 * line; returns HD_ESTORE so callers can `return hd_store_fail(...)`. */
int hd_store_fail(struct hd_store *s, const char *what, int rc);
/* Steps writer statement i (already bound) to its end and resets it.
 * Returns 0 or HD_ESTORE (through hd_store_fail, naming `what`). */
int hd_store_exec(struct hd_store *s, enum hd_writer_stmt i, const char *what);
/* Ends a failed transaction: rolls back whatever SQLite has not already
 * rolled back and logs the failure, at most once a second. */
void hd_store_abort(struct hd_store *s, const char *what);

/* retention.c */
/* Removes up to max_rows of a topic's oldest events, stopping at the first
 * whose time_ms is above cutoff_ms (INT64_MAX: no age limit), and updates
 * the topic row. Sets *removed and raises *low past the last one removed.
 * Writer thread, inside a transaction. Returns 0 or HD_ESTORE. */
int hd_store_trim(struct hd_store *s, int64_t topic_id, uint64_t max_rows, int64_t cutoff_ms,
		  uint64_t *low, uint64_t *removed);
/* One maintenance round in its own transaction. Writer thread. */
void hd_store_maintain(struct hd_store *s);

/* Test hook: makes the next n group commits fail (see fault_commits). */
void hd_store_fault_fail_commits(struct hd_store *s, int n);
/* Test hook: dedup entries a maintenance round examines (see dedup_scan). */
void hd_store_test_dedup_scan(struct hd_store *s, size_t n);
/* Test hook: dedup hashes are ANDed with mask (0: every key collides). */
void hd_store_test_dedup_mask(struct hd_store *s, uint64_t mask);

#endif
