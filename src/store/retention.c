/*
 * retention — removing events the topic policies no longer keep: count
 * retention inside each group commit, and the writer's periodic maintenance
 * round for TTL, age, count and expired dedup entries.
 * Layer: store, private (store_impl.h). Writer thread only.
 *
 * What each removal does to a topic's row:
 *   - retention (max_count, max_age) removes a prefix of the topic's events
 *     and raises low_offset past the last one removed, so a reader resuming
 *     from before it is told of the gap (hd_store_read's `truncated`);
 *   - TTL removes events wherever they are and leaves low_offset alone: an
 *     expired event is gone for every reader alike, not a gap in history;
 *   - both lower count and bytes by exactly what was removed.
 *
 * A maintenance round is one transaction deleting at most
 * HD_STORE_MAINT_ROWS rows in this order: events past their TTL (through
 * the events_expiry index), dedup entries past their window (a walk of
 * up to HD_STORE_DEDUP_SCAN entries in key order, resumed where the previous
 * round stopped: the dedup table has no expiry index), then a sweep of up to HD_STORE_SWEEP_TOPICS topics, resumed where the
 * previous round stopped, applying each topic's max_age and max_count.
 * What does not fit is left for the next round, so a backlog never holds
 * the write lock for long; publishes queue behind at most one round.
 */
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hd_store_trim(struct hd_store *s, int64_t topic_id, uint64_t max_rows, int64_t cutoff_ms,
		  uint64_t *low, uint64_t *removed)
{
	sqlite3_stmt *st = s->st[W_TRIM_SCAN];
	uint64_t n = 0, bytes = 0;
	int64_t last = 0;
	int rc;

	*removed = 0;
	if (!max_rows)
		return 0;
	sqlite3_bind_int64(st, 1, topic_id);
	sqlite3_bind_int64(st, 2, (int64_t)max_rows);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 1) > cutoff_ms)
			break;
		last = sqlite3_column_int64(st, 0);
		bytes += (uint64_t)sqlite3_column_int64(st, 2);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		hd_store_fail(s, "scan for retention", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);
	if (!n)
		return 0;

	/* The scan went up from the smallest offset, so "offset <= last"
	 * removes exactly the n rows it counted. */
	/* Claims of events whose dedup window is still open move to the
	 * dedup table, so a restart still knows them. */
	sqlite3_bind_int64(s->st[W_DEDUP_KEEP_TRIM], 1, topic_id);
	sqlite3_bind_int64(s->st[W_DEDUP_KEEP_TRIM], 2, last);
	sqlite3_bind_int64(s->st[W_DEDUP_KEEP_TRIM], 3, hd_now_ms());
	if ((rc = hd_store_exec(s, W_DEDUP_KEEP_TRIM, "keep dedup claims")))
		return rc;
	sqlite3_bind_int64(s->st[W_TRIM_DEL], 1, topic_id);
	sqlite3_bind_int64(s->st[W_TRIM_DEL], 2, last);
	st = s->st[W_TOPIC_RETAIN];
	sqlite3_bind_int64(st, 1, topic_id);
	sqlite3_bind_int64(st, 2, last + 1);
	sqlite3_bind_int64(st, 3, (int64_t)n);
	sqlite3_bind_int64(st, 4, (int64_t)bytes);
	if ((rc = hd_store_exec(s, W_TRIM_DEL, "delete for retention")) ||
	    (rc = hd_store_exec(s, W_TOPIC_RETAIN, "update topic for retention")))
		return rc;
	if (*low < (uint64_t)last + 1)
		*low = (uint64_t)last + 1;
	*removed = n;
	s->tally.expired += n;
	return 0;
}

static int by_topic(const void *a, const void *b)
{
	int64_t x = ((const struct hd_ttl_row *)a)->topic_id;
	int64_t y = ((const struct hd_ttl_row *)b)->topic_id;
	return (x > y) - (x < y);
}

static int expire_ttl(struct hd_store *s, int64_t now, uint64_t *budget)
{
	sqlite3_stmt *st = s->st[W_TTL_DEL];
	size_t n = 0;
	int rc;

	if (!*budget)
		return 0;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)*budget);
	/* The LIMIT bounds the rows to the budget, which never exceeds the
	 * ttl_rows array; the check keeps that true if either changes. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < HD_STORE_MAINT_ROWS) {
		s->ttl_rows[n].topic_id = sqlite3_column_int64(st, 0);
		s->ttl_rows[n].bytes = (uint64_t)sqlite3_column_int64(st, 1);
		s->ttl_rows[n].offset = (uint64_t)sqlite3_column_int64(st, 2);
		s->ttl_rows[n].dk = (uint64_t)sqlite3_column_int64(st, 3);
		s->ttl_rows[n].dk_expires = sqlite3_column_int64(st, 4);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		hd_store_fail(s, "delete expired events", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);

	/* An event gone before its dedup window closed leaves its claim in
	 * the dedup table, so a restart still knows it. */
	st = s->st[W_DEDUP_PUT];
	for (size_t i = 0; i < n; i++) {
		const struct hd_ttl_row *t = &s->ttl_rows[i];
		if (t->dk_expires <= now)
			continue;
		sqlite3_bind_int64(st, 1, t->topic_id);
		sqlite3_bind_int64(st, 2, (int64_t)t->offset);
		sqlite3_bind_int64(st, 3, (int64_t)t->dk);
		sqlite3_bind_int64(st, 4, t->dk_expires);
		if ((rc = hd_store_exec(s, W_DEDUP_PUT, "keep dedup claim")))
			return rc;
	}

	qsort(s->ttl_rows, n, sizeof(*s->ttl_rows), by_topic);
	st = s->st[W_TOPIC_RETAIN];
	for (size_t i = 0; i < n;) {
		size_t j = i;
		uint64_t bytes = 0;
		for (; j < n && s->ttl_rows[j].topic_id == s->ttl_rows[i].topic_id; j++)
			bytes += s->ttl_rows[j].bytes;
		/* low_offset=max(low_offset, 0): TTL leaves it as it is. */
		sqlite3_bind_int64(st, 1, s->ttl_rows[i].topic_id);
		sqlite3_bind_int64(st, 2, 0);
		sqlite3_bind_int64(st, 3, (int64_t)(j - i));
		sqlite3_bind_int64(st, 4, (int64_t)bytes);
		if ((rc = hd_store_exec(s, W_TOPIC_RETAIN, "update topic for TTL")))
			return rc;
		i = j;
	}
	*budget -= n;
	s->tally.expired += n;
	return 0;
}

/*
 * Deletes the expired entries among the next s->dedup_scan dedup
 * entries after the cursor, at most *budget of them. The cursor moves past
 * the slice only when the budget did not run out inside it (else the next
 * round walks the same slice again, minus what was deleted); past the last
 * entry it starts over. Moving it before the transaction commits is
 * harmless: it only says where to look next.
 */
static int expire_dedup(struct hd_store *s, int64_t now, uint64_t *budget)
{
	sqlite3_stmt *st = s->st[W_DEDUP_SLICE];
	/* Above every key: the end of the table. */
	int64_t end_topic = INT64_MAX, end_h = INT64_MAX;
	bool end = true;
	int rc;

	if (!*budget)
		return 0;
	sqlite3_bind_int64(st, 1, s->dedup_cursor_topic);
	sqlite3_bind_int64(st, 2, s->dedup_cursor_h);
	sqlite3_bind_int64(st, 3, (int64_t)atomic_load(&s->dedup_scan) - 1);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		end_topic = sqlite3_column_int64(st, 0);
		end_h = sqlite3_column_int64(st, 1);
		end = false;
	} else if (rc != SQLITE_DONE) {
		hd_store_fail(s, "scan dedup entries", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);

	st = s->st[W_DEDUP_EXPIRE];
	sqlite3_bind_int64(st, 1, s->dedup_cursor_topic);
	sqlite3_bind_int64(st, 2, s->dedup_cursor_h);
	sqlite3_bind_int64(st, 3, end_topic);
	sqlite3_bind_int64(st, 4, end_h);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int64(st, 6, (int64_t)*budget);
	rc = hd_store_exec(s, W_DEDUP_EXPIRE, "delete expired dedup entries");
	if (rc == 0) {
		uint64_t n = (uint64_t)sqlite3_changes(s->db);
		if (n < *budget) {
			s->dedup_cursor_topic = end ? 0 : end_topic;
			s->dedup_cursor_h = end ? 0 : end_h;
		}
		*budget -= n < *budget ? n : *budget;
	}
	return rc;
}

/* Copies the next chunk of topics after *cursor out of the topics table, so
 * the trims below never run while the SELECT over topics is open. */
static int load_chunk(struct hd_store *s, int64_t cursor, size_t *n)
{
	sqlite3_stmt *st = s->st[W_SWEEP];
	int rc;

	*n = 0;
	sqlite3_bind_int64(st, 1, cursor);
	sqlite3_bind_int64(st, 2, HD_STORE_SWEEP_CHUNK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < HD_STORE_SWEEP_CHUNK) {
		struct hd_sweep_topic *t = &s->sweep[(*n)++];
		const unsigned char *name = sqlite3_column_text(st, 1);
		t->id = sqlite3_column_int64(st, 0);
		t->count = (uint64_t)sqlite3_column_int64(st, 2);
		snprintf(t->name, sizeof(t->name), "%s", name ? (const char *)name : "");
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		hd_store_fail(s, "list topics", rc);
		sqlite3_reset(st);
		return HD_ESTORE;
	}
	sqlite3_reset(st);
	return 0;
}

/* Applies one topic's max_age and max_count. Returns 0 or HD_ESTORE. */
static int sweep_topic(struct hd_store *s, const struct hd_sweep_topic *t, int64_t now,
		       uint64_t *budget)
{
	struct hd_topic_policy p;
	uint64_t low = 0, removed = 0, count = t->count;
	int rc;

	s->opts.policy(s->opts.policy_arg, t->name, &p);
	if (p.max_age_ms > 0 && *budget) {
		int64_t cutoff = now > INT64_MIN + p.max_age_ms ? now - p.max_age_ms : INT64_MIN;
		if ((rc = hd_store_trim(s, t->id, *budget, cutoff, &low, &removed)))
			return rc;
		*budget -= removed;
		count -= removed < count ? removed : count;
	}
	if (p.max_count && count > p.max_count && *budget) {
		uint64_t n = count - p.max_count;
		if ((rc = hd_store_trim(s, t->id, n < *budget ? n : *budget, INT64_MAX, &low,
					&removed)))
			return rc;
		*budget -= removed;
	}
	if (low) {
		size_t len = strlen(t->name);
		struct hd_store_topic *c =
			hd_topic_cache_find(&s->cache, t->name, len, hd_topic_cache_hash(t->name, len));
		if (c && c->low < low)
			c->low = low;
	}
	return 0;
}

static int sweep(struct hd_store *s, int64_t now, uint64_t *budget, int64_t *cursor)
{
	size_t examined = 0;
	int rc;

	while (*budget && examined < HD_STORE_SWEEP_TOPICS) {
		size_t n;
		if ((rc = load_chunk(s, *cursor, &n)))
			return rc;
		for (size_t i = 0; i < n; i++) {
			if ((rc = sweep_topic(s, &s->sweep[i], now, budget)))
				return rc;
			/* A topic the budget ran out on is visited first next
			 * round; the others are done for this pass. */
			if (!*budget)
				return 0;
			*cursor = s->sweep[i].id;
		}
		examined += n;
		if (n < HD_STORE_SWEEP_CHUNK) {
			*cursor = 0; /* the end of the table: start over next round */
			break;
		}
	}
	return 0;
}

void hd_store_maintain(struct hd_store *s)
{
	int64_t now = hd_now_ms();
	uint64_t budget = HD_STORE_MAINT_ROWS;
	int64_t cursor = s->sweep_cursor;
	int rc;

	s->fail_msg[0] = '\0';
	memset(&s->tally, 0, sizeof(s->tally));
	if ((rc = hd_store_exec(s, W_BEGIN, "begin")) || (rc = expire_ttl(s, now, &budget)) ||
	    (rc = expire_dedup(s, now, &budget)) || (rc = sweep(s, now, &budget, &cursor)) ||
	    (rc = hd_store_exec(s, W_COMMIT, "commit")))
		goto out;
	s->sweep_cursor = cursor;
	hd_metrics_add(HD_M_events_expired_total, s->tally.expired);
	if (s->tally.expired)
		hd_log_debug("store_maintenance removed=%llu budget_left=%llu",
			     (unsigned long long)s->tally.expired, (unsigned long long)budget);
out:
	if (rc) {
		hd_store_abort(s, "maintenance");
		/* The sweep may have raised lows in the cache that the
		 * rollback undid; every entry is clean here, so start over. */
		hd_topic_cache_clear(&s->cache);
	}
}
