/*
 * reader — history reads and topic listings over a pool of read-only
 * connections.
 * Layer: store. Called from any thread but the writer (the engine runs them
 * on the libuv thread pool).
 *
 * WAL mode lets each read connection see the last committed state while the
 * writer commits, so reads never wait for the writer nor it for them. A
 * caller borrows one connection for the duration of a call (waiting on
 * pool_cv when all are lent out); a borrowed connection and its prepared
 * statements belong to the borrower alone. hd_store_read and
 * hd_store_topic_info read the topic row and its events inside one read
 * transaction, so the offsets, the low mark and the events agree.
 */
#include "core/alloc.h"
#include "core/log.h"
#include "store/store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation of a read's event array; it doubles from there. */
#define READ_INITIAL_EVENTS 64

static long long read_fail_log_ms;

static struct hd_store_reader *borrow(struct hd_store *s)
{
	struct hd_store_reader *r;
	pthread_mutex_lock(&s->pool_mu);
	while (s->nfree == 0)
		pthread_cond_wait(&s->pool_cv, &s->pool_mu);
	r = &s->readers[s->free_readers[--s->nfree]];
	pthread_mutex_unlock(&s->pool_mu);
	return r;
}

static void give_back(struct hd_store *s, struct hd_store_reader *r)
{
	pthread_mutex_lock(&s->pool_mu);
	s->free_readers[s->nfree++] = (unsigned)(r - s->readers);
	pthread_cond_signal(&s->pool_cv);
	pthread_mutex_unlock(&s->pool_mu);
}

static int read_fail(struct hd_store_reader *r, const char *what, int rc)
{
	/* Shared by every reader thread; a lost update only shifts the rate
	 * limit by a line. */
	long long last = __atomic_load_n(&read_fail_log_ms, __ATOMIC_RELAXED);
	if (hd_log_ratelimited(&last)) {
		__atomic_store_n(&read_fail_log_ms, last, __ATOMIC_RELAXED);
		hd_log_warn("store_read_failed what=\"%s\" err=\"%s\" code=%d", what,
			    sqlite3_errmsg(r->db), rc);
	}
	return HD_ESTORE;
}

static bool valid_name(const char *topic)
{
	size_t len = topic ? strnlen(topic, HD_TOPIC_NAME_MAX + 1) : 0;
	return len > 0 && len <= HD_TOPIC_NAME_MAX;
}

static void copy_text(char *out, size_t out_len, const unsigned char *v)
{
	snprintf(out, out_len, "%s", v ? (const char *)v : "");
}

/* Steps a one-shot statement (BEGIN, COMMIT) and resets it. */
static int run(struct hd_store_reader *r, enum hd_reader_stmt i, const char *what)
{
	int rc = sqlite3_step(r->st[i]);
	sqlite3_reset(r->st[i]);
	return rc == SQLITE_DONE ? 0 : read_fail(r, what, rc);
}

/* Ends the read transaction; statements must be reset first. */
static int finish(struct hd_store_reader *r, int rc)
{
	int rc2 = run(r, R_COMMIT, "commit");
	return rc ? rc : rc2;
}

/* Reads the topic's row. *found is false for an absent topic. Columns: id,
 * epoch, last_offset, low_offset, count, bytes, created_ms. */
static int topic_row(struct hd_store_reader *r, const char *topic, bool *found)
{
	sqlite3_stmt *st = r->st[R_TOPIC];
	int rc;

	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	sqlite3_reset(st);
	return read_fail(r, "read topic", rc);
}

/*
 * Events past max_age that maintenance has not deleted yet are skipped by
 * the events query; the reader must still hear that retention removed
 * them. They are a prefix in offset order (store time grows with the
 * offset), so looking at the first live event after `after` is enough.
 */
static int aged_out(struct hd_store_reader *r, int64_t topic_id, int64_t cutoff,
		    struct hd_store_read *out)
{
	sqlite3_stmt *st = r->st[R_NEXT_TIME];
	sqlite3_bind_int64(st, 1, topic_id);
	sqlite3_bind_int64(st, 2, (int64_t)out->after);
	sqlite3_bind_int64(st, 3, out->now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) <= cutoff)
		out->aged = true;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : read_fail(r, "read age", rc);
}

static int read_events(struct hd_store *s, struct hd_store_reader *r, int64_t topic_id,
		       const char *topic, struct hd_store_read *out)
{
	sqlite3_stmt *st = r->st[R_EVENTS];
	struct hd_topic_policy p;
	size_t cap = 0, bytes = 0;
	int64_t cutoff = INT64_MIN;
	int rc = SQLITE_DONE;

	/* Events past max_age are skipped like expired ones: maintenance may
	 * not have removed them yet. */
	s->opts.policy(s->opts.policy_arg, topic, &p);
	if (p.max_age_ms > 0 && out->now_ms > INT64_MIN + p.max_age_ms)
		cutoff = out->now_ms - p.max_age_ms;
	sqlite3_bind_int64(st, 1, topic_id);
	sqlite3_bind_int64(st, 2, (int64_t)out->after);
	sqlite3_bind_int64(st, 3, out->now_ms);
	sqlite3_bind_int64(st, 4, cutoff);
	sqlite3_bind_int64(st, 5, out->limit);
	while (bytes < HD_READ_BYTES_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->n == cap) {
			cap = cap ? cap * 2 : READ_INITIAL_EVENTS;
			if (cap > out->limit)
				cap = out->limit;
			out->events = hd_realloc(out->events, cap * sizeof(*out->events));
		}
		struct hd_stored_event *ev = &out->events[out->n++];
		ev->offset = (uint64_t)sqlite3_column_int64(st, 0);
		ev->time_ms = sqlite3_column_int64(st, 1);
		ev->expires_ms = sqlite3_column_int64(st, 2);
		ev->json = hd_rcbuf_from(sqlite3_column_blob(st, 3),
					 (size_t)sqlite3_column_bytes(st, 3));
		bytes += ev->json->len;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return read_fail(r, "read events", rc);
	return cutoff == INT64_MIN ? 0 : aged_out(r, topic_id, cutoff, out);
}

int hd_store_read(struct hd_store *s, const char *topic, struct hd_store_read *out)
{
	struct hd_store_reader *r;
	bool found;
	int rc;

	out->events = NULL;
	out->n = 0;
	out->exists = false;
	out->last = out->low = 0;
	out->truncated = false;
	out->aged = false;
	out->epoch[0] = '\0';
	if (!valid_name(topic))
		return 0;

	r = borrow(s);
	if ((rc = run(r, R_BEGIN, "begin")))
		goto out;
	rc = topic_row(r, topic, &found);
	if (!rc && found) {
		sqlite3_stmt *st = r->st[R_TOPIC];
		int64_t id = sqlite3_column_int64(st, 0);
		out->exists = true;
		copy_text(out->epoch, sizeof(out->epoch), sqlite3_column_text(st, 1));
		out->last = (uint64_t)sqlite3_column_int64(st, 2);
		out->low = (uint64_t)sqlite3_column_int64(st, 3);
		sqlite3_reset(st);
		/* Nothing lies after last, and offsets past INT64_MAX do not
		 * exist: skip the query rather than bind a wrapped value. */
		if (out->limit && out->after < out->last)
			rc = read_events(s, r, id, topic, out);
		out->truncated = (out->after + 1 < out->low && out->after < out->last) || out->aged;
	} else {
		sqlite3_reset(r->st[R_TOPIC]);
	}
	rc = finish(r, rc);
out:
	give_back(s, r);
	if (rc) {
		hd_store_read_fini(out);
		out->exists = false;
		out->last = out->low = 0;
		out->truncated = false;
		out->epoch[0] = '\0';
	}
	return rc;
}

void hd_store_read_fini(struct hd_store_read *r)
{
	for (size_t i = 0; i < r->n; i++)
		hd_rcbuf_unref(r->events[i].json);
	free(r->events);
	r->events = NULL;
	r->n = 0;
}

int hd_store_topic_info(struct hd_store *s, const char *topic, struct hd_topic_info *out)
{
	struct hd_store_reader *r;
	bool found = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!valid_name(topic))
		return HD_ENOTFOUND;

	r = borrow(s);
	if ((rc = run(r, R_BEGIN, "begin")))
		goto out;
	if ((rc = topic_row(r, topic, &found)) || !found) {
		sqlite3_reset(r->st[R_TOPIC]);
		rc = finish(r, rc);
		goto out;
	}
	sqlite3_stmt *st = r->st[R_TOPIC];
	int64_t id = sqlite3_column_int64(st, 0);
	snprintf(out->name, sizeof(out->name), "%s", topic);
	copy_text(out->epoch, sizeof(out->epoch), sqlite3_column_text(st, 1));
	out->last = (uint64_t)sqlite3_column_int64(st, 2);
	out->count = (uint64_t)sqlite3_column_int64(st, 4);
	out->bytes = (uint64_t)sqlite3_column_int64(st, 5);
	out->created_ms = sqlite3_column_int64(st, 6);
	sqlite3_reset(st);

	st = r->st[R_FIRST];
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->first = sqlite3_column_type(st, 0) == SQLITE_NULL
				     ? out->last + 1
				     : (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = read_fail(r, "first offset", rc);
	}
	sqlite3_reset(st);
	rc = finish(r, rc);
out:
	give_back(s, r);
	if (!rc && !found)
		rc = HD_ENOTFOUND;
	return rc;
}

int hd_store_topic_list(struct hd_store *s, const char *prefix, const char *after_name,
			struct hd_topic_info *out, size_t max, size_t *n)
{
	struct hd_store_reader *r;
	sqlite3_stmt *st;
	size_t plen;
	int rc;

	*n = 0;
	prefix = prefix ? prefix : "";
	after_name = after_name ? after_name : "";
	if (!max)
		return 0;
	plen = strlen(prefix);

	/* Names in the prefix sort together from the prefix on, so the scan
	 * starts at the later of prefix and after_name (excluding after_name
	 * itself) and stops at the first name outside the prefix. One
	 * statement is one snapshot, so no explicit transaction is needed. */
	r = borrow(s);
	st = r->st[R_LIST];
	sqlite3_bind_text(st, 1, strcmp(after_name, prefix) > 0 ? after_name : prefix, -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after_name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name || strncmp(name, prefix, plen) != 0)
			break;
		struct hd_topic_info *t = &out[*n];
		snprintf(t->name, sizeof(t->name), "%s", name);
		copy_text(t->epoch, sizeof(t->epoch), sqlite3_column_text(st, 1));
		t->created_ms = sqlite3_column_int64(st, 2);
		t->last = (uint64_t)sqlite3_column_int64(st, 3);
		t->count = (uint64_t)sqlite3_column_int64(st, 4);
		t->bytes = (uint64_t)sqlite3_column_int64(st, 5);
		t->first = sqlite3_column_type(st, 6) == SQLITE_NULL
				   ? t->last + 1
				   : (uint64_t)sqlite3_column_int64(st, 6);
		if (++*n == max)
			break;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : read_fail(r, "list topics", rc);
	sqlite3_reset(st);
	give_back(s, r);
	if (rc)
		*n = 0;
	return rc;
}

int hd_store_topic_names(struct hd_store *s, size_t max, void (*fn)(void *arg, const char *name),
			 void *arg)
{
	struct hd_store_reader *r = borrow(s);
	sqlite3_stmt *st = r->st[R_NAMES];
	size_t n = 0;
	int rc;

	/* One statement is one snapshot: no explicit transaction needed. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (!name)
			continue;
		if (n++ == max)
			break;
		fn(arg, name);
	}
	if (rc == SQLITE_ROW)
		rc = HD_ELIMIT;
	else
		rc = rc == SQLITE_DONE ? 0 : read_fail(r, "list topic names", rc);
	sqlite3_reset(st);
	give_back(s, r);
	return rc;
}

int hd_store_group_list(struct hd_store *s, struct hd_group_row **out, size_t max, size_t *n)
{
	struct hd_store_reader *r;
	struct hd_group_row *rows = NULL;
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!max)
		return 0;
	r = borrow(s);
	st = r->st[R_GROUPS];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = hd_realloc(rows, cap * sizeof(*rows));
		}
		struct hd_group_row *g = &rows[*n];
		memset(g, 0, sizeof(*g));
		copy_text(g->topic, sizeof(g->topic), sqlite3_column_text(st, 0));
		copy_text(g->name, sizeof(g->name), sqlite3_column_text(st, 1));
		g->ack_floor = (uint64_t)sqlite3_column_int64(st, 2);
		const unsigned char *acked = sqlite3_column_text(st, 3);
		g->acked = hd_strdup(acked ? (const char *)acked : "");
		g->ack_wait_ms = (uint32_t)sqlite3_column_int64(st, 4);
		g->max_deliveries = (uint32_t)sqlite3_column_int64(st, 5);
		g->ordered = sqlite3_column_int(st, 6) != 0;
		g->created_ms = sqlite3_column_int64(st, 7);
		++*n;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : read_fail(r, "list groups", rc);
	sqlite3_reset(st);
	give_back(s, r);
	if (rc) {
		hd_store_group_rows_free(rows, *n);
		rows = NULL;
		*n = 0;
	}
	*out = rows;
	return rc;
}

int hd_store_record_get(struct hd_store *s, const char *kind, const char *key,
			struct hd_record *out)
{
	struct hd_store_reader *r = borrow(s);
	sqlite3_stmt *st = r->st[R_RECORD];
	int rc;

	memset(out, 0, sizeof(*out));
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		copy_text(out->kind, sizeof(out->kind), (const unsigned char *)kind);
		copy_text(out->key, sizeof(out->key), (const unsigned char *)key);
		out->value = hd_strdup(v ? (const char *)v : "");
		out->updated_ms = sqlite3_column_int64(st, 1);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = HD_ENOTFOUND;
	} else {
		rc = read_fail(r, "get record", rc);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	give_back(s, r);
	return rc;
}

int hd_store_record_list(struct hd_store *s, const char *kind, const char *prefix,
			 const char *after, struct hd_record **out, size_t max, size_t *n)
{
	struct hd_store_reader *r;
	struct hd_record *recs = NULL;
	size_t cap = 0, plen = strlen(prefix);
	char upper[HD_RECORD_KEY_MAX + 1];
	bool bounded = false;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if (!max)
		return 0;
	/* Keys with the prefix sort below the prefix with its last byte that
	 * is not 0xff raised by one (and the rest cut off). */
	if (plen && plen < sizeof(upper)) {
		memcpy(upper, prefix, plen + 1);
		for (size_t i = plen; i-- > 0;) {
			if ((unsigned char)upper[i] != 0xff) {
				upper[i] = (char)((unsigned char)upper[i] + 1);
				upper[i + 1] = '\0';
				bounded = true;
				break;
			}
		}
	}
	r = borrow(s);
	st = r->st[R_RECORDS];
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC);
	if (bounded)
		sqlite3_bind_text(st, 4, upper, -1, SQLITE_STATIC); /* BINARY: bytewise */
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *key = sqlite3_column_text(st, 0);
		const unsigned char *v = sqlite3_column_text(st, 1);
		if (plen && (!key || strncmp((const char *)key, prefix, plen) != 0))
			break;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = hd_realloc(recs, cap * sizeof(*recs));
		}
		struct hd_record *rec = &recs[*n];
		memset(rec, 0, sizeof(*rec));
		copy_text(rec->kind, sizeof(rec->kind), (const unsigned char *)kind);
		copy_text(rec->key, sizeof(rec->key), key);
		rec->value = hd_strdup(v ? (const char *)v : "");
		rec->updated_ms = sqlite3_column_int64(st, 2);
		++*n;
	}
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : read_fail(r, "list records", rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	give_back(s, r);
	if (rc) {
		hd_store_records_free(recs, *n);
		recs = NULL;
		*n = 0;
	}
	*out = recs;
	return rc;
}

void hd_store_records_free(struct hd_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(recs[i].value);
	free(recs);
}

void hd_store_group_rows_free(struct hd_group_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i].acked);
	free(rows);
}
