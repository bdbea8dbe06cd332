/*
 * writer — the store's one writer thread: group commit of appends, topic
 * deletions and consumer group rows (upserts and deletions, which share the
 * transaction of whatever else is queued), and the timer that runs
 * maintenance.
 * Layer: store, private (store_impl.h). Started by hd_store_open; the only
 * thread that writes to the database.
 *
 * A group is every batch waiting in the queue, in order, up to
 * commit_max_events events (always at least one batch, however large). It
 * is applied in ONE transaction and committed with one fsync (under
 * synchronous=FULL), so publishers that arrive while a commit is in flight
 * share the next one. Per item:
 *   - the topic is found in the cache, else read from its row, else created
 *     with last_offset 0, low_offset 1 and a fresh random epoch;
 *   - with a dedup window, (topic, source, id) is upserted into dedup; the
 *     upsert changes nothing when an unexpired entry exists, and then the
 *     item is a duplicate answered with the original offset;
 *   - otherwise the item gets offset last + 1, its stored JSON is built once
 *     into an rcbuf and, if the topic keeps history, queued for events:
 *     HD_STORE_INS_ROWS queued rows go in with one multi-row INSERT (a
 *     statement per row cost about a quarter more writer CPU per event),
 *     and the rest before anything reads or deletes events and before
 *     COMMIT.
 * Before COMMIT each touched topic's row gets one UPDATE and count retention
 * trims what the group pushed past max_count.
 *
 * Offsets are promised only by a transaction that commits: results reach
 * the owner after COMMIT returned, and a failed transaction rolls back,
 * drops every cache entry it touched (the next use reloads the row) and
 * marks every item HD_ESTORE. No offset handed out can be missing from disk,
 * and no offset is skipped.
 */
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/siphash.h"
#include "core/text.h"
#include "store/store_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int hd_store_fail(struct hd_store *s, const char *what, int rc)
{
	if (!s->fail_msg[0])
		snprintf(s->fail_msg, sizeof(s->fail_msg), "%s: %s (%d)", what,
			 sqlite3_errmsg(s->db), rc);
	return HD_ESTORE;
}

int hd_store_exec(struct hd_store *s, enum hd_writer_stmt i, const char *what)
{
	int rc = sqlite3_step(s->st[i]);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		hd_store_fail(s, what, rc);
		sqlite3_reset(s->st[i]);
		return HD_ESTORE;
	}
	sqlite3_reset(s->st[i]);
	return 0;
}

void hd_store_abort(struct hd_store *s, const char *what)
{
	/* After some errors (SQLITE_FULL, SQLITE_IOERR) SQLite has already
	 * rolled back; after others the transaction is still open. */
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_step(s->st[W_ROLLBACK]);
	sqlite3_reset(s->st[W_ROLLBACK]);
	if (hd_log_ratelimited(&s->fail_log_ms))
		hd_log_error("store_%s_failed err=\"%s\"", what,
			     s->fail_msg[0] ? s->fail_msg : "unknown");
}

/* A new topic's epoch: 16 hex digits from the kernel's CSPRNG, so a topic
 * recreated under the same name is told apart from its predecessor. */
static void new_epoch(char out[HD_EPOCH_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[HD_EPOCH_LEN / 2];
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n > 0) {
			got += (size_t)n;
		} else if (n < 0 && errno != EINTR) {
			/* Only without getrandom(2); epochs need to differ, not
			 * to be secret. */
			uint64_t x = hd_mono_us() ^ ((uint64_t)hd_now_ms() << 20) ^ (uint64_t)clock();
			for (; got < sizeof(r); got++, x = x * 6364136223846793005u + 1)
				r[got] = (unsigned char)(x >> 56);
		}
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[HD_EPOCH_LEN] = '\0';
}

static void copy_epoch(char out[HD_EPOCH_LEN + 1], const unsigned char *v)
{
	snprintf(out, HD_EPOCH_LEN + 1, "%s", v ? (const char *)v : "");
}

/* Reads the topic's row into a new cache entry, or creates the row when
 * create is set. *out stays NULL for an absent topic that is not created. */
static int load_topic(struct hd_store *s, const char *name, size_t len, bool create,
		      struct hd_store_topic **out)
{
	sqlite3_stmt *st = s->st[W_TOPIC_GET];
	struct hd_store_topic *t;
	int rc;

	*out = NULL;
	sqlite3_bind_text(st, 1, name, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = hd_store_topic_new(name, len);
		t->id = sqlite3_column_int64(st, 0);
		copy_epoch(t->epoch, sqlite3_column_text(st, 1));
		t->last = (uint64_t)sqlite3_column_int64(st, 2);
		t->low = (uint64_t)sqlite3_column_int64(st, 3);
		sqlite3_reset(st);
		*out = t;
		return 0;
	}
	if (rc != SQLITE_DONE) {
		hd_store_fail(s, "read topic", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);
	if (!create)
		return 0;
	/* Only this thread creates and deletes topics, so the count of the
	 * last commit plus this transaction's changes is exact. */
	if (s->opts.max_topics && s->ntopics + s->tally.topics >= (int64_t)s->opts.max_topics) {
		hd_metrics_inc(HD_M_topic_limit_hits_total);
		return HD_ELIMIT;
	}

	t = hd_store_topic_new(name, len);
	new_epoch(t->epoch);
	st = s->st[W_TOPIC_NEW];
	sqlite3_bind_text(st, 1, name, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->epoch, HD_EPOCH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, hd_now_ms());
	if ((rc = hd_store_exec(s, W_TOPIC_NEW, "create topic"))) {
		free(t);
		return rc;
	}
	t->id = sqlite3_last_insert_rowid(s->db);
	t->last = 0;
	t->low = 1;
	t->created = true;
	s->tally.topics++;
	*out = t;
	return 0;
}

/* Finds the topic (loading or creating it) and enrols it in the current
 * transaction, fetching its policy once per transaction so a changed
 * namespace option applies from the next commit on. */
static int touch(struct hd_store *s, const char *name, size_t len, bool create,
		 struct hd_store_topic **out)
{
	uint32_t h = hd_topic_cache_hash(name, len);
	struct hd_store_topic *t = hd_topic_cache_find(&s->cache, name, len, h);
	int rc;

	*out = NULL;
	if (!t) {
		if ((rc = load_topic(s, name, len, create, &t)))
			return rc;
		if (!t)
			return 0;
		hd_topic_cache_insert(&s->cache, t);
	}
	if (t->txn != s->txn) {
		t->txn = s->txn;
		t->tnext = s->touched;
		s->touched = t;
		s->opts.policy(s->opts.policy_arg, t->name, &t->policy);
	}
	*out = t;
	return 0;
}

/* The canonical JSON is a compact object: '{' … '}'. Anything else would
 * produce stored JSON that is not JSON, so it is refused here, always on. */
static bool json_object(const char *json, size_t len, bool *empty)
{
	if (!json || len < 2 || json[0] != '{' || json[len - 1] != '}')
		return false;
	*empty = true;
	for (size_t i = 1; i < len - 1; i++) {
		char c = json[i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			*empty = false;
			break;
		}
	}
	return true;
}

/* The stored JSON: the item's object with `,"topic":"<name>","offset":<n>`
 * inserted before its closing brace (without the comma for `{}`). One
 * allocation, shared from here on by the ring, the fan-out and the reply. */
static struct hd_rcbuf *build_json(const struct hd_store_topic *t, const struct hd_store_item *it,
				   uint64_t offset, bool empty)
{
	const char *prefix = empty ? t->prefix + 1 : t->prefix;
	size_t plen = empty ? t->prefix_len - 1 : t->prefix_len;
	size_t body = it->json_len - 1;
	char digits[20];
	size_t nd = hd_u64_format(offset, digits);
	struct hd_rcbuf *b = hd_rcbuf_new(body + plen + nd + 1);
	char *p = b->data;

	memcpy(p, it->json, body);
	p += body;
	memcpy(p, prefix, plen);
	p += plen;
	memcpy(p, digits, nd);
	p[nd] = '}';
	return b;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* The dedup key of (source, id): SipHash-2-4 under the database's key, of
 * both lengths and both strings, so ("ab", "c") and ("a", "bc") differ. */
static uint64_t dedup_hash(const struct hd_store *s, const char *source, const char *id)
{
	struct hd_siphash h;
	uint32_t len[2] = {(uint32_t)strlen(source), (uint32_t)strlen(id)};
	hd_siphash_init(&h, s->dedup_key);
	hd_siphash_add(&h, len, sizeof(len));
	hd_siphash_add(&h, source, len[0]);
	hd_siphash_add(&h, id, len[1]);
	return hd_siphash_final(&h) & atomic_load_explicit(&s->dedup_mask, memory_order_relaxed);
}

static int flush_events(struct hd_store *s);

/* Whether the stored event at offset has this source and id, read back from
 * its JSON. An event that is no longer stored (no history, retention, TTL),
 * or whose JSON lacks the attribute, cannot be checked and counts as a
 * match. */
static int same_event(struct hd_store *s, const struct hd_store_topic *t, uint64_t offset,
		      const char *source, const char *id, bool *same)
{
	sqlite3_stmt *st = s->st[W_EVENT_KEY];
	int rc;

	/* The original may still wait in this group's pending rows. */
	if ((rc = flush_events(s)))
		return rc;
	*same = true;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_int64(st, 2, (int64_t)offset);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *src = sqlite3_column_text(st, 0);
		const unsigned char *eid = sqlite3_column_text(st, 1);
		*same = (!src || strcmp((const char *)src, source) == 0) &&
			(!eid || strcmp((const char *)eid, id) == 0);
	} else if (rc != SQLITE_DONE) {
		hd_store_fail(s, "dedup check", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);
	return 0;
}

/* Claims (topic, hash of source and id) for offset, unless an entry inside
 * its window already holds it: then *dup is set and *orig is that entry's
 * offset. The claim goes into the in-memory index at once and is made
 * durable with the event: in its row (*dk, *dk_expires) when the topic
 * keeps history, else here in the dedup table. A held hash whose stored
 * event has another source or id is a collision (about one in 2^64 per
 * pair): the item is not a duplicate and is stored without a claim. */
static int dedup(struct hd_store *s, struct hd_store_topic *t, const struct hd_store_item *it,
		 uint64_t offset, bool *dup, uint64_t *orig, uint64_t *dk, int64_t *dk_expires)
{
	const char *source = it->source ? it->source : "";
	uint64_t h = dedup_hash(s, source, it->id);
	int64_t expires = add_sat(it->time_ms, t->policy.dedup_window_ms);
	const struct hd_dedup_entry *e = hd_dedup_find(&s->dedup, t->id, h, it->time_ms);
	int rc;

	*dup = false;
	if (e) {
		bool same;
		*orig = e->offset;
		if ((rc = same_event(s, t, *orig, source, it->id, &same)))
			return rc;
		if (same)
			*dup = true;
		else
			hd_metrics_inc(HD_M_dedup_collisions_total);
		return 0;
	}
	if (!t->policy.history) {
		sqlite3_stmt *st = s->st[W_DEDUP_PUT];
		sqlite3_bind_int64(st, 1, t->id);
		sqlite3_bind_int64(st, 2, (int64_t)offset);
		sqlite3_bind_int64(st, 3, (int64_t)h);
		sqlite3_bind_int64(st, 4, expires);
		if ((rc = hd_store_exec(s, W_DEDUP_PUT, "dedup")))
			return rc;
	}
	uint64_t evicted = s->dedup.evicted;
	hd_dedup_add(&s->dedup, t->id, h, offset, expires, it->time_ms);
	if (s->dedup.evicted != evicted)
		hd_metrics_inc(HD_M_dedup_evictions_total);
	*dk = h;
	*dk_expires = expires;
	return 0;
}

/* Inserts the pending events: HD_STORE_INS_ROWS of them with one statement,
 * fewer one by one. Writer thread, inside the group's transaction. */
static int flush_events(struct hd_store *s)
{
	size_t n = s->npending;
	int rc = 0;

	s->npending = 0;
	if (n == HD_STORE_INS_ROWS) {
		sqlite3_stmt *st = s->st[W_EVENT_INS_MANY];
		for (size_t i = 0; i < n; i++) {
			const struct hd_pending_event *e = &s->pending[i];
			int k = (int)(7 * i);
			sqlite3_bind_int64(st, k + 1, e->topic_id);
			sqlite3_bind_int64(st, k + 2, (int64_t)e->offset);
			sqlite3_bind_int64(st, k + 3, e->time_ms);
			sqlite3_bind_int64(st, k + 4, e->expires_ms);
			sqlite3_bind_blob(st, k + 5, e->json->data, (int)e->json->len, SQLITE_STATIC);
			sqlite3_bind_int64(st, k + 6, (int64_t)e->dk);
			sqlite3_bind_int64(st, k + 7, e->dk_expires);
		}
		return hd_store_exec(s, W_EVENT_INS_MANY, "insert events");
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct hd_pending_event *e = &s->pending[i];
		sqlite3_stmt *st = s->st[W_EVENT_INS];
		sqlite3_bind_int64(st, 1, e->topic_id);
		sqlite3_bind_int64(st, 2, (int64_t)e->offset);
		sqlite3_bind_int64(st, 3, e->time_ms);
		sqlite3_bind_int64(st, 4, e->expires_ms);
		sqlite3_bind_blob(st, 5, e->json->data, (int)e->json->len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (int64_t)e->dk);
		sqlite3_bind_int64(st, 7, e->dk_expires);
		rc = hd_store_exec(s, W_EVENT_INS, "insert event");
	}
	return rc;
}

static int apply_item(struct hd_store *s, struct hd_store_item *it, struct hd_store_topic **slot)
{
	size_t tlen = it->topic ? strnlen(it->topic, HD_TOPIC_NAME_MAX + 1) : 0;
	struct hd_store_topic *t;
	struct hd_rcbuf *json;
	uint64_t offset, dk = 0;
	int64_t dk_expires = 0;
	bool empty;
	int rc;

	*slot = NULL;
	if (tlen == 0 || tlen > HD_TOPIC_NAME_MAX) {
		it->err = HD_EBADTOPIC;
		return 0;
	}
	if (!json_object(it->json, it->json_len, &empty)) {
		it->err = HD_EBADEVENT;
		return 0;
	}
	if ((rc = touch(s, it->topic, tlen, true, &t))) {
		if (rc != HD_ELIMIT)
			return rc;
		it->err = HD_ELIMIT; /* a new topic beyond max_topics: this item only */
		return 0;
	}
	*slot = t;
	memcpy(it->epoch, t->epoch, sizeof(it->epoch));
	offset = t->last + 1;

	if (t->policy.dedup_window_ms > 0 && it->id && it->id[0]) {
		bool dup;
		uint64_t orig = 0;
		if ((rc = dedup(s, t, it, offset, &dup, &orig, &dk, &dk_expires)))
			return rc;
		if (dup) {
			it->duplicate = true;
			it->stored.offset = orig;
			it->stored.time_ms = it->time_ms;
			it->stored.expires_ms = it->expires_ms;
			s->tally.duplicates++;
			return 0;
		}
	}

	json = build_json(t, it, offset, empty);
	/* Handed out now so that a failing insert (of this event or, later, of
	 * the pending ones) is cleaned up by fail_group like any result. */
	it->stored.json = json;
	if (t->policy.history) {
		s->pending[s->npending++] = (struct hd_pending_event){
			.topic_id = t->id,
			.offset = offset,
			.time_ms = it->time_ms,
			.expires_ms = it->expires_ms,
			.json = json,
			.dk = dk,
			.dk_expires = dk_expires,
		};
		if (s->npending == HD_STORE_INS_ROWS && (rc = flush_events(s)))
			return rc;
		t->dcount++;
		t->dbytes += (int64_t)json->len;
		s->tally.bytes += json->len;
	} else {
		/* Nothing is kept, so nothing at or below this offset can be
		 * read back: a resume from before it is told of the gap. */
		t->low = offset + 1;
	}
	t->last = offset;
	t->dirty = true;
	it->stored.offset = offset;
	it->stored.time_ms = it->time_ms;
	it->stored.expires_ms = it->expires_ms;
	s->tally.publishes++;
	return 0;
}

static void apply_delete(struct hd_store *s, struct hd_store_batch *b, int *rc)
{
	size_t tlen = b->topic ? strnlen(b->topic, HD_TOPIC_NAME_MAX + 1) : 0;
	struct hd_store_topic *t = NULL;

	if (tlen == 0 || tlen > HD_TOPIC_NAME_MAX) {
		b->err = HD_ENOTFOUND;
		return;
	}
	/* The group's events so far must be in the table this deletes from. */
	if ((*rc = flush_events(s)) || (*rc = touch(s, b->topic, tlen, false, &t)))
		return;
	if (!t) {
		b->err = HD_ENOTFOUND;
		return;
	}
	sqlite3_bind_int64(s->st[W_EVENTS_DEL_TOPIC], 1, t->id);
	sqlite3_bind_int64(s->st[W_DEDUP_DEL_TOPIC], 1, t->id);
	sqlite3_bind_int64(s->st[W_TOPIC_DEL], 1, t->id);
	sqlite3_bind_text(s->st[W_GROUPS_DEL_TOPIC], 1, b->topic, (int)tlen, SQLITE_STATIC);
	if ((*rc = hd_store_exec(s, W_EVENTS_DEL_TOPIC, "delete topic events")) ||
	    (*rc = hd_store_exec(s, W_DEDUP_DEL_TOPIC, "delete topic dedup")) ||
	    (*rc = hd_store_exec(s, W_GROUPS_DEL_TOPIC, "delete topic groups")) ||
	    (*rc = hd_store_exec(s, W_TOPIC_DEL, "delete topic")))
		return;
	/* Out of the map, so a later item of this group recreates the topic;
	 * still on the touched list, so it is freed when the group ends. */
	hd_topic_cache_remove(&s->cache, t);
	t->deleted = true;
	/* Its id may be given to a topic created later. */
	hd_dedup_drop_topic(&s->dedup, t->id);
	s->tally.topics--;
}

/* Upserts or removes one group row. Groups live in their own table, keyed by
 * topic name, so nothing here touches the topic cache. */
static void apply_group(struct hd_store *s, struct hd_store_batch *b, int *rc)
{
	const struct hd_group_row *g = b->group;
	if (b->op == HD_STORE_GROUP_DELETE) {
		sqlite3_bind_text(s->st[W_GROUP_DEL], 1, g->topic, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->st[W_GROUP_DEL], 2, g->name, -1, SQLITE_STATIC);
		if (!(*rc = hd_store_exec(s, W_GROUP_DEL, "delete group")) &&
		    sqlite3_changes(s->db) == 0)
			b->err = HD_ENOTFOUND;
		return;
	}
	sqlite3_stmt *st = s->st[W_GROUP_PUT];
	sqlite3_bind_text(st, 1, g->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, g->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)g->ack_floor);
	sqlite3_bind_text(st, 4, g->acked ? g->acked : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, g->ack_wait_ms);
	sqlite3_bind_int64(st, 6, g->max_deliveries);
	sqlite3_bind_int(st, 7, g->ordered ? 1 : 0);
	sqlite3_bind_int64(st, 8, g->created_ms);
	*rc = hd_store_exec(s, W_GROUP_PUT, "put group");
}

/* Upserts or removes one record (the records table; no topic involved). */
static void apply_record(struct hd_store *s, struct hd_store_batch *b, int *rc)
{
	const struct hd_record *r = b->record;
	sqlite3_stmt *st;
	if (b->op == HD_STORE_RECORD_DELETE) {
		st = s->st[W_RECORD_DEL];
		sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->key, -1, SQLITE_STATIC);
		if (!(*rc = hd_store_exec(s, W_RECORD_DEL, "delete record")) &&
		    sqlite3_changes(s->db) == 0)
			b->err = HD_ENOTFOUND;
		return;
	}
	st = s->st[W_RECORD_PUT];
	sqlite3_bind_text(st, 1, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->value ? r->value : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->updated_ms);
	*rc = hd_store_exec(s, W_RECORD_PUT, "put record");
}

/* Writes each touched topic's row once and applies count retention. */
static int flush_topics(struct hd_store *s)
{
	sqlite3_stmt *st = s->st[W_TOPIC_UPDATE];
	for (struct hd_store_topic *t = s->touched; t; t = t->tnext) {
		if (t->deleted || !t->dirty)
			continue;
		sqlite3_bind_int64(st, 1, t->id);
		sqlite3_bind_int64(st, 2, (int64_t)t->last);
		sqlite3_bind_int64(st, 3, (int64_t)t->low);
		sqlite3_bind_int64(st, 4, t->dcount);
		sqlite3_bind_int64(st, 5, t->dbytes);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			hd_store_fail(s, "update topic", rc);
			sqlite3_reset(st);
			return HD_ESTORE;
		}
		uint64_t count = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		uint64_t max = t->policy.max_count;
		if (max && count > max) {
			uint64_t n = count - max, removed;
			if (n > HD_STORE_MAINT_ROWS)
				n = HD_STORE_MAINT_ROWS;
			if ((rc = hd_store_trim(s, t->id, n, INT64_MAX, &t->low, &removed)))
				return rc;
		}
	}
	return 0;
}

static void reserve_slots(struct hd_store *s, size_t n)
{
	if (n <= s->slots_cap)
		return;
	free(s->slots);
	s->slots_cap = n;
	s->slots = hd_malloc(n * sizeof(*s->slots));
}

static void reset_results(struct hd_store_batch *group)
{
	for (struct hd_store_batch *b = group; b; b = b->next) {
		b->err = 0;
		if (b->op != HD_STORE_APPEND)
			continue;
		for (size_t i = 0; i < b->n; i++) {
			struct hd_store_item *it = &b->items[i];
			it->err = 0;
			it->duplicate = false;
			memset(&it->stored, 0, sizeof(it->stored));
			it->topic_low = it->topic_last = 0;
			it->epoch[0] = '\0';
		}
	}
}

/* The group committed: hand out the topics' final state, make the cache
 * entries clean again and count what happened. */
static void finish_group(struct hd_store *s, struct hd_store_batch *group, size_t nevents,
			 uint64_t started_us)
{
	size_t k = 0;

	for (struct hd_store_batch *b = group; b; b = b->next) {
		if (b->op != HD_STORE_APPEND)
			continue;
		for (size_t i = 0; i < b->n; i++, k++) {
			struct hd_store_topic *t = s->slots[k];
			if (!t)
				continue;
			b->items[i].topic_low = t->low;
			b->items[i].topic_last = t->last;
		}
	}
	while (s->touched) {
		struct hd_store_topic *t = s->touched;
		s->touched = t->tnext;
		t->tnext = NULL;
		if (t->deleted) {
			free(t);
			continue;
		}
		t->dirty = t->created = false;
		t->dcount = t->dbytes = 0;
	}
	hd_metrics_add(HD_M_publishes_total, s->tally.publishes);
	hd_metrics_add(HD_M_publish_bytes_total, s->tally.bytes);
	hd_metrics_add(HD_M_duplicates_total, s->tally.duplicates);
	hd_metrics_add(HD_M_events_expired_total, s->tally.expired);
	hd_metrics_gauge_add(HD_M_topics, s->tally.topics);
	s->ntopics += s->tally.topics;
	hd_metrics_observe(HD_M_store_commit_batch_events, nevents);
	hd_metrics_observe(HD_M_store_commit_seconds, hd_mono_us() - started_us);
}

/* The group failed: nothing of it is on disk, so nothing of it may be
 * handed out, and the cache forgets every topic the group touched. */
static void fail_group(struct hd_store *s, struct hd_store_batch *group)
{
	hd_store_abort(s, "commit");
	hd_dedup_rollback(&s->dedup, s->dedup_mark);
	while (s->touched) {
		struct hd_store_topic *t = s->touched;
		s->touched = t->tnext;
		if (!t->deleted)
			hd_topic_cache_remove(&s->cache, t);
		free(t);
	}
	for (struct hd_store_batch *b = group; b; b = b->next) {
		b->err = HD_ESTORE;
		if (b->op != HD_STORE_APPEND)
			continue;
		for (size_t i = 0; i < b->n; i++) {
			struct hd_store_item *it = &b->items[i];
			hd_rcbuf_unref(it->stored.json);
			memset(&it->stored, 0, sizeof(it->stored));
			it->duplicate = false;
			it->topic_low = it->topic_last = 0;
			it->epoch[0] = '\0';
			/* A validation error is the more useful answer. */
			if (!it->err)
				it->err = HD_ESTORE;
		}
	}
}

static void run_group(struct hd_store *s, struct hd_store_batch *group, size_t nitems,
		      size_t nevents)
{
	uint64_t started_us = hd_mono_us();
	size_t k = 0;
	int rc;

	/* Between transactions every entry is clean, so emptying the cache
	 * loses nothing but the rows it saved reading. */
	if (s->cache.count > HD_STORE_TOPIC_CACHE_MAX)
		hd_topic_cache_clear(&s->cache);
	reserve_slots(s, nitems);
	reset_results(group);
	s->txn++;
	s->touched = NULL;
	s->npending = 0;
	s->fail_msg[0] = '\0';
	memset(&s->tally, 0, sizeof(s->tally));

	s->dedup_mark = hd_dedup_mark(&s->dedup);
	rc = hd_store_exec(s, W_BEGIN, "begin");
	for (struct hd_store_batch *b = group; !rc && b; b = b->next) {
		if (b->op == HD_STORE_APPEND) {
			for (size_t i = 0; !rc && i < b->n; i++)
				rc = apply_item(s, &b->items[i], &s->slots[k++]);
		} else if (b->op == HD_STORE_DELETE_TOPIC) {
			apply_delete(s, b, &rc);
		} else if (b->op == HD_STORE_RECORD_PUT || b->op == HD_STORE_RECORD_DELETE) {
			apply_record(s, b, &rc);
		} else {
			apply_group(s, b, &rc);
		}
	}
	if (!rc)
		rc = flush_events(s);
	if (!rc)
		rc = flush_topics(s);
	if (!rc && atomic_load(&s->fault_commits) > 0) {
		atomic_fetch_sub(&s->fault_commits, 1);
		snprintf(s->fail_msg, sizeof(s->fail_msg), "commit: injected fault (%d)",
			 SQLITE_FULL);
		rc = HD_ESTORE;
	}
	if (!rc)
		rc = hd_store_exec(s, W_COMMIT, "commit");
	if (rc)
		fail_group(s, group);
	else
		finish_group(s, group, nevents, started_us);
	hd_metrics_gauge_set(HD_M_dedup_entries, (int64_t)s->dedup.n);
}

static size_t batch_events(const struct hd_store_batch *b)
{
	return b->op == HD_STORE_APPEND ? b->n : 1;
}

static void deadline(struct timespec *ts, uint64_t mono_ms)
{
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

void *hd_store_writer_main(void *arg)
{
	struct hd_store *s = arg;
	uint32_t interval = s->opts.maintenance_interval_ms;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		/* Maintenance is checked first on every turn so a queue that
		 * never empties cannot starve it; a round is bounded, so it
		 * cannot starve publishes either. */
		if (interval && !s->stopping && hd_mono_ms() >= s->next_maint_ms) {
			pthread_mutex_unlock(&s->mu);
			hd_store_maintain(s);
			s->next_maint_ms = hd_mono_ms() + interval;
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (s->queue_head) {
			struct hd_store_batch *group = s->queue_head, *last = group;
			size_t nevents = batch_events(group);
			size_t nitems = group->op == HD_STORE_APPEND ? group->n : 0;
			while (last->next &&
			       nevents + batch_events(last->next) <= s->opts.commit_max_events) {
				last = last->next;
				nevents += batch_events(last);
				nitems += last->op == HD_STORE_APPEND ? last->n : 0;
			}
			s->queue_head = last->next;
			if (!s->queue_head)
				s->queue_tail = NULL;
			last->next = NULL;
			pthread_mutex_unlock(&s->mu);

			run_group(s, group, nitems, nevents);

			pthread_mutex_lock(&s->mu);
			s->queued_events -= nevents;
			if (s->done_tail)
				s->done_tail->next = group;
			else
				s->done_head = group;
			s->done_tail = last;
			pthread_mutex_unlock(&s->mu);
			if (s->opts.notify)
				s->opts.notify(s->opts.notify_arg);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (s->stopping)
			break;
		s->idle = true;
		if (interval) {
			struct timespec ts;
			deadline(&ts, s->next_maint_ms);
			pthread_cond_timedwait(&s->wake, &s->mu, &ts);
		} else {
			pthread_cond_wait(&s->wake, &s->mu);
		}
		s->idle = false;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}
