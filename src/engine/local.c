/*
 * local — the embedded engine (see local.h).
 *
 * Publishes become store batches, queued with hd_store_submit, which wakes
 * the writer at once when it is idle (group commit: what arrives while it
 * commits shares its next commit). The writer commits them
 * and wakes the loop through a uv_async handle; the loop then updates each
 * topic's state and ring, fans the events out through on_event and
 * completes the publishes. Reads are answered from a topic's ring when the
 * ring covers the requested range, and otherwise from SQLite on the libuv
 * thread pool. Topic state is cached for at most max_topics_in_memory
 * topics; an evicted topic is simply loaded again from the store.
 *
 * Absent topics: the engine also holds the name of every topic on disk
 * (`names`, loaded at start, then kept by the loop as commits create topics
 * and deletes remove them), so a read of a topic that does not exist, the
 * common case of a user's own topic at connect, is answered on the loop
 * with "absent, last 0" instead of a store read on the thread pool. The set
 * follows the loop's view of the store: a topic counts from the moment its
 * first commit is drained (commit_item), which is also when its first event
 * is fanned out, so a watcher that read "absent" before that moment gets
 * offset 1 through on_event. With more than max_topic_names topics the set
 * is dropped (one log line) and absent topics are read from the store again
 * until the next start.
 */
#include "engine/local.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "store/ring.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

struct ltopic {
	struct hd_ring ring;
	uint64_t last;
	uint64_t low;
	char epoch[HD_EPOCH_LEN + 1];
};

struct local {
	struct hd_engine base;
	uv_loop_t *loop;
	uv_async_t async;
	int open_handles;     /* of async */
	struct hd_store *store;
	struct hd_map topics;         /* name → struct ltopic */
	struct hd_local_opts opts;
	/* Bumped whenever a topic's state leaves memory (eviction or delete).
	 * A commit for a topic that is not in memory puts it there, so a
	 * topic absent both when a store read starts and when it ends, with
	 * no removal in between, had no commit in between either: only then
	 * is the read's snapshot current enough to cache. */
	uint64_t removals;
	size_t evict_cursor;
	/* Every topic name on disk (values: &name_present) while names_complete;
	 * empty otherwise. */
	struct hd_map names;
	bool names_complete;
	bool stopped;
	/* Reads and look-ups on the thread pool not yet done: local_free
	 * leaves the freeing to the last of them (freeing), since their
	 * workers use the store. */
	size_t works;
	bool freeing;
};

static void finish_free(struct local *l);

/* The value of every entry of `names`. */
static char name_present;

/* A thread-pool job of l ended (its done() has run). */
static void work_end(struct local *l)
{
	if (--l->works == 0 && l->freeing)
		finish_free(l);
}

struct pub_job {
	struct hd_store_batch batch;
	struct hd_pub *pub;
	struct hd_store_item items[];
};

/*
 * Every request but a publish is one job, run one of two ways:
 *   - a write (topic delete, group or record put/delete) is job->batch,
 *     handed to the store's writer (job_submit); on_batch finishes it when
 *     the batch is durable;
 *   - a read (history, topic info/list, group list, record get/list) runs
 *     job->pool on the libuv thread pool (job_queue); job_after finishes it
 *     on the loop and counts it in `works`.
 * Either way job->finish(job, err) runs on the loop with err = 0 or the
 * failure (the batch's err, or HD_EINTERNAL when the pool could not run
 * it): it sets the request's result, frees the job and calls the request's
 * done().
 */
struct job {
	struct hd_store_batch batch;  /* first: on_batch casts the batch back */
	uv_work_t work;
	struct local *l;
	void *req;                    /* hd_read, hd_topic_op, hd_group_op or hd_record_op */
	void (*pool)(struct job *j);  /* a pool thread: the read */
	void (*finish)(struct job *j, int err);
};

/* A history read from the store (a job that needs more). */
struct read_job {
	struct job job;               /* first: a struct job * is a struct read_job * */
	struct hd_store_read sr;
	uint64_t removals;
	int rc;
};

static void job_pool(uv_work_t *w)
{
	struct job *j = w->data;
	j->pool(j);
}

static void job_after(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct local *l = j->l;
	j->finish(j, status ? HD_EINTERNAL : 0);
	work_end(l);
}

/* Runs j (owned) on the thread pool. Returns 0 or HD_EINTERNAL (j freed). */
static int job_queue(struct job *j)
{
	j->work.data = j;
	if (uv_queue_work(j->l->loop, &j->work, job_pool, job_after)) {
		free(j);
		return HD_EINTERNAL;
	}
	j->l->works++;
	return 0;
}

/* Hands j's batch (owned) to the store's writer. Returns 0 or hd_store_submit's
 * error (j freed). */
static int job_submit(struct job *j)
{
	int rc = hd_store_submit(j->l->store, &j->batch);
	if (rc)
		free(j);
	return rc;
}

/* The end of a job whose request keeps its error in *req_err: a failure
 * replaces what the pool work said, success leaves it. Frees j. */
static void job_end(struct job *j, int err, int *req_err)
{
	if (err)
		*req_err = err;
	free(j);
}

static void ltopic_free(struct ltopic *t)
{
	hd_ring_fini(&t->ring);
	free(t);
}

static void evict_one(struct local *l)
{
	/* Any topic will do: its state is reloaded from the store on next use.
	 * The cursor spreads evictions over the buckets. */
	for (size_t i = 0; i < l->topics.nbuckets; i++) {
		size_t b = (l->evict_cursor + i) & (l->topics.nbuckets - 1);
		struct hd_map_entry *e = l->topics.buckets[b];
		if (e) {
			l->evict_cursor = b + 1;
			ltopic_free(hd_map_del(&l->topics, e->key));
			l->removals++;
			return;
		}
	}
}

static struct ltopic *ltopic_get(struct local *l, const char *name, bool create)
{
	struct ltopic *t = hd_map_get(&l->topics, name);
	if (t || !create)
		return t;
	if (l->topics.count >= l->topics.max_entries)
		evict_one(l);
	t = hd_calloc(1, sizeof(*t));
	hd_ring_init(&t->ring, l->opts.ring_events, l->opts.ring_bytes);
	if (hd_map_put(&l->topics, name, t) != 0) {
		ltopic_free(t);
		return NULL;
	}
	return t;
}

/* ---- topic names ------------------------------------------------------ */

static void names_load_one(void *arg, const char *name)
{
	struct local *l = arg;
	hd_map_put(&l->names, name, &name_present); /* fits: the store stops at max */
}

/* Fills `names` from the store; on failure or past the bound the engine
 * runs without it. Owner thread, before any batch is submitted. */
static void names_load(struct local *l)
{
	size_t max = l->names.max_entries;
	int rc = hd_store_topic_names(l->store, max, names_load_one, l);
	l->names_complete = rc == 0;
	if (rc) {
		hd_map_fini(&l->names);
		hd_map_init(&l->names, max);
		hd_log_info("engine_topic_names_off reason=%s max=%zu",
			    rc == HD_ELIMIT ? "limit" : "store", max);
	}
}

/* The set can no longer hold every name: absence goes back to the store. */
static void names_drop(struct local *l)
{
	size_t max = l->names.max_entries;
	l->names_complete = false;
	hd_map_fini(&l->names);
	hd_map_init(&l->names, max);
	hd_log_info("engine_topic_names_off reason=limit max=%zu", max);
}

/* A commit of topic (drained on the loop) means it exists. */
static void names_add(struct local *l, const char *topic)
{
	if (l->names_complete && !hd_map_get(&l->names, topic) &&
	    hd_map_put(&l->names, topic, &name_present) != 0)
		names_drop(l);
}

/* True when the topic is known not to exist in the loop's view. */
static bool names_absent(const struct local *l, const char *topic)
{
	return l->names_complete && !hd_map_get(&l->names, topic);
}

/* ---- publish ---------------------------------------------------------- */

static void commit_item(struct local *l, struct hd_store_item *it)
{
	struct ltopic *t = ltopic_get(l, it->topic, true);
	struct hd_topic_policy policy;

	names_add(l, it->topic);
	if (!t)
		l->removals++; /* its state could not be kept: see `removals` */
	if (t) {
		if (strcmp(t->epoch, it->epoch) != 0) {
			hd_ring_clear(&t->ring); /* a new incarnation of the topic */
			memcpy(t->epoch, it->epoch, sizeof(t->epoch));
		}
		t->last = it->topic_last;
		t->low = it->topic_low;
	}
	if (it->duplicate || !it->stored.json)
		return;
	l->opts.store.policy(l->opts.store.policy_arg, it->topic, &policy);
	if (t && policy.history)
		hd_ring_push(&t->ring, &it->stored);
	if (l->opts.on_event)
		l->opts.on_event(l->opts.on_event_arg, it->topic, &it->stored);
}

static void finish_pub(struct local *l, struct pub_job *job)
{
	struct hd_pub *p = job->pub;
	for (size_t i = 0; i < job->batch.n; i++) {
		struct hd_store_item *it = &job->items[i];
		struct hd_pub_item *out = &p->items[i];
		out->err = it->err;
		out->offset = it->stored.offset;
		out->duplicate = it->duplicate;
		memcpy(out->epoch, it->epoch, sizeof(out->epoch));
		if (!it->err)
			commit_item(l, it);
		hd_rcbuf_unref(it->stored.json);
	}
	free(job);
	p->done(p);
}

static void on_batch(struct hd_store_batch *b, void *arg)
{
	struct local *l = arg;
	if (b->op == HD_STORE_APPEND) {
		finish_pub(l, (struct pub_job *)b);
	} else {
		struct job *j = (struct job *)b;
		j->finish(j, b->err);
	}
}

static void on_async(uv_async_t *h)
{
	struct local *l = h->data;
	hd_store_drain(l->store, on_batch, l);
}

static void notify(void *arg)
{
	struct local *l = arg;
	uv_async_send(&l->async);
}

static int local_publish(struct hd_engine *e, struct hd_pub *p)
{
	struct local *l = (struct local *)e;
	if (l->stopped)
		return HD_EUNAVAIL;
	struct pub_job *job = hd_calloc(1, sizeof(*job) + p->n * sizeof(job->items[0]));
	job->pub = p;
	job->batch.op = HD_STORE_APPEND;
	job->batch.items = job->items;
	job->batch.n = p->n;
	for (size_t i = 0; i < p->n; i++) {
		const struct hd_pub_item *in = &p->items[i];
		struct hd_store_item *it = &job->items[i];
		it->topic = in->topic;
		it->source = in->event->source;
		it->id = in->event->id;
		it->json = in->event->json;
		it->json_len = in->event->json_len;
		it->time_ms = in->stored_ms;
		it->expires_ms = in->event->expires_ms;
	}
	int rc = hd_store_submit(l->store, &job->batch);
	if (rc)
		free(job);
	return rc;
}

/* ---- read ------------------------------------------------------------- */

static void set_next(struct hd_read *r)
{
	if (r->n)
		r->next = r->events[r->n - 1].offset;
	else
		r->next = r->after > r->last ? r->after : r->last;
}

/* Answers r from the topic's ring if the ring covers the range. */
static bool read_ring(struct local *l, struct ltopic *t, struct hd_read *r, int64_t now)
{
	struct hd_topic_policy policy;
	uint64_t start = r->after + 1 > t->low ? r->after + 1 : t->low;
	uint64_t first = hd_ring_first(&t->ring);

	if (r->after < t->last && (first == 0 || start < first))
		return false;
	l->opts.store.policy(l->opts.store.policy_arg, r->topic, &policy);
	r->exists = true;
	r->last = t->last;
	r->truncated = r->after + 1 < t->low && r->after < t->last;
	memcpy(r->epoch, t->epoch, sizeof(r->epoch));
	r->events = NULL;
	r->n = 0;
	if (r->after < t->last) {
		const struct hd_stored_event *view[256];
		size_t cap = r->limit < 256 ? r->limit : 256, got;
		r->events = hd_malloc(cap * sizeof(*r->events));
		uint64_t pos = start - 1;
		while (r->n < r->limit && (got = hd_ring_read(&t->ring, pos, 256, view)) > 0) {
			for (size_t i = 0; i < got && r->n < r->limit; i++) {
				const struct hd_stored_event *ev = view[i];
				pos = ev->offset;
				if (policy.max_age_ms && ev->time_ms <= now - policy.max_age_ms) {
					r->truncated = true; /* removed by retention, not yet deleted */
					continue;
				}
				if (ev->expires_ms && ev->expires_ms <= now)
					continue;
				if (r->n == cap) {
					cap *= 2;
					r->events = hd_realloc(r->events, cap * sizeof(*r->events));
				}
				r->events[r->n] = *ev;
				hd_rcbuf_ref(ev->json);
				r->n++;
			}
		}
	}
	r->from_memory = true;
	set_next(r);
	hd_metrics_inc(HD_M_ring_reads_total);
	return true;
}

/* Answers r for a topic that does not exist, as hd_store_read would. */
static void read_absent(struct hd_read *r)
{
	r->exists = false;
	r->last = 0;
	r->truncated = false;
	r->epoch[0] = '\0';
	r->events = NULL;
	r->n = 0;
	r->from_memory = true;
	set_next(r);
	hd_metrics_inc(HD_M_ring_reads_total);
}

static void read_pool(struct job *j)
{
	struct read_job *job = (struct read_job *)j;
	struct hd_read *r = j->req;
	job->rc = hd_store_read(j->l->store, r->topic, &job->sr);
}

static void read_finish(struct job *j, int err)
{
	struct read_job *job = (struct read_job *)j;
	struct hd_read *r = j->req;
	struct local *l = j->l;

	r->err = err ? err : job->rc;
	if (!r->err) {
		r->events = job->sr.events;
		r->n = job->sr.n;
		r->exists = job->sr.exists;
		r->truncated = job->sr.truncated;
		r->last = job->sr.last;
		memcpy(r->epoch, job->sr.epoch, sizeof(r->epoch));
		job->sr.events = NULL;
		job->sr.n = 0;
		set_next(r);
		/* Remember what the store said unless a commit or delete of this
		 * topic may have got here first (its state would be newer than
		 * this snapshot): see `removals`. */
		if (job->sr.exists && job->removals == l->removals && !hd_map_get(&l->topics, r->topic)) {
			struct ltopic *t = ltopic_get(l, r->topic, true);
			if (t) {
				t->last = job->sr.last;
				t->low = job->sr.low;
				memcpy(t->epoch, job->sr.epoch, sizeof(t->epoch));
			}
		}
	}
	hd_store_read_fini(&job->sr);
	free(job);
	r->done(r);
}

static int local_read(struct hd_engine *e, struct hd_read *r)
{
	struct local *l = (struct local *)e;
	int64_t now = hd_now_ms();
	struct ltopic *t = hd_map_get(&l->topics, r->topic);

	hd_metrics_inc(HD_M_reads_total);
	r->err = 0;
	r->from_memory = false;
	if (t && read_ring(l, t, r, now)) {
		r->done(r);
		return 0;
	}
	if (!t && names_absent(l, r->topic)) {
		read_absent(r);
		r->done(r);
		return 0;
	}
	struct read_job *job = hd_calloc(1, sizeof(*job));
	job->job.l = l;
	job->job.req = r;
	job->job.pool = read_pool;
	job->job.finish = read_finish;
	job->removals = l->removals;
	job->sr.after = r->after;
	job->sr.limit = r->limit;
	job->sr.now_ms = now;
	return job_queue(&job->job);
}

/* ---- topic operations ------------------------------------------------- */

static void topic_pool(struct job *j)
{
	struct hd_topic_op *op = j->req;
	struct hd_store *s = j->l->store;

	if (op->kind == HD_TOPIC_INFO) {
		op->topics = hd_calloc(1, sizeof(*op->topics));
		op->err = hd_store_topic_info(s, op->topic, op->topics);
		op->n = op->err ? 0 : 1;
	} else {
		op->topics = hd_calloc(op->limit ? op->limit : 1, sizeof(*op->topics));
		op->err = hd_store_topic_list(s, op->prefix ? op->prefix : "", op->after ? op->after : "",
					      op->topics, op->limit, &op->n);
	}
}

static void topic_finish(struct job *j, int err)
{
	struct hd_topic_op *op = j->req;
	struct local *l = j->l;

	if (op->kind == HD_TOPIC_DELETE) {
		/* The topic's state leaves memory (see `removals`). */
		struct ltopic *t = hd_map_del(&l->topics, op->topic);
		if (t)
			ltopic_free(t);
		l->removals++;
		if (!err)
			hd_map_del(&l->names, op->topic);
	}
	job_end(j, err, &op->err);
	op->done(op);
}

static int local_topic_op(struct hd_engine *e, struct hd_topic_op *op)
{
	struct local *l = (struct local *)e;
	op->err = 0;
	op->topics = NULL;
	op->n = 0;
	if (op->kind == HD_TOPIC_DELETE && l->stopped)
		return HD_EUNAVAIL;
	struct job *j = hd_calloc(1, sizeof(*j));
	j->l = l;
	j->req = op;
	j->finish = topic_finish;
	if (op->kind != HD_TOPIC_DELETE) {
		j->pool = topic_pool;
		return job_queue(j);
	}
	j->batch.op = HD_STORE_DELETE_TOPIC;
	j->batch.topic = op->topic;
	return job_submit(j);
}

/* ---- group state ------------------------------------------------------ */

static void group_pool(struct job *j)
{
	struct hd_group_op *op = j->req;
	op->err = hd_store_group_list(j->l->store, &op->rows, op->limit, &op->n);
}

static void group_finish(struct job *j, int err)
{
	struct hd_group_op *op = j->req;
	job_end(j, err, &op->err);
	op->done(op);
}

static int local_group_op(struct hd_engine *e, struct hd_group_op *op)
{
	struct local *l = (struct local *)e;
	op->err = 0;
	op->rows = NULL;
	op->n = 0;
	if (l->stopped)
		return HD_EUNAVAIL;
	struct job *j = hd_calloc(1, sizeof(*j));
	j->l = l;
	j->req = op;
	j->finish = group_finish;
	if (op->kind == HD_GROUP_LIST) {
		j->pool = group_pool;
		return job_queue(j);
	}
	j->batch.op = op->kind == HD_GROUP_PUT ? HD_STORE_GROUP_PUT : HD_STORE_GROUP_DELETE;
	j->batch.group = &op->row;
	return job_submit(j);
}

/* ---- records ---------------------------------------------------------- */

static void record_pool(struct job *j)
{
	struct hd_record_op *op = j->req;
	struct hd_store *s = j->l->store;
	if (op->kind == HD_RECORD_GET) {
		struct hd_record *rec = hd_calloc(1, sizeof(*rec));
		op->err = hd_store_record_get(s, op->rec.kind, op->rec.key, rec);
		if (op->err) {
			free(rec);
		} else {
			op->recs = rec;
			op->n = 1;
		}
		return;
	}
	op->err = hd_store_record_list(s, op->rec.kind, op->prefix ? op->prefix : "",
				       op->after ? op->after : "", &op->recs, op->limit, &op->n);
}

static void record_finish(struct job *j, int err)
{
	struct hd_record_op *op = j->req;
	job_end(j, err, &op->err);
	op->done(op);
}

static int local_record_op(struct hd_engine *e, struct hd_record_op *op)
{
	struct local *l = (struct local *)e;
	op->err = 0;
	op->recs = NULL;
	op->n = 0;
	if (l->stopped)
		return HD_EUNAVAIL;
	if (!op->rec.kind[0] || (op->kind != HD_RECORD_LIST && !op->rec.key[0]) ||
	    (op->kind == HD_RECORD_PUT && op->rec.value &&
	     strlen(op->rec.value) > HD_RECORD_VALUE_MAX))
		return HD_EINVAL;
	struct job *j = hd_calloc(1, sizeof(*j));
	j->l = l;
	j->req = op;
	j->finish = record_finish;
	if (op->kind == HD_RECORD_GET || op->kind == HD_RECORD_LIST) {
		j->pool = record_pool;
		return job_queue(j);
	}
	j->batch.op = op->kind == HD_RECORD_PUT ? HD_STORE_RECORD_PUT : HD_STORE_RECORD_DELETE;
	j->batch.record = &op->rec;
	return job_submit(j);
}

/* ---- life cycle ------------------------------------------------------- */

static bool local_ready(struct hd_engine *e)
{
	return !((struct local *)e)->stopped;
}

static void local_stop(struct hd_engine *e)
{
	struct local *l = (struct local *)e;
	if (l->stopped)
		return;
	l->stopped = true;
	hd_store_stop(l->store); /* commits every queued batch */
	hd_store_drain(l->store, on_batch, l);
}

static void free_topic(const char *key, void *value, void *arg)
{
	ltopic_free(value);
}

static void on_close(uv_handle_t *h)
{
	struct local *l = h->data;
	if (--l->open_handles == 0)
		free(l);
}

static void local_free(struct hd_engine *e)
{
	struct local *l = (struct local *)e;
	local_stop(e);
	if (l->works > 0) {
		l->freeing = true; /* finished by the last job's work_end */
		return;
	}
	finish_free(l);
}

static void finish_free(struct local *l)
{
	hd_store_free(l->store);
	hd_map_each(&l->topics, free_topic, NULL);
	hd_map_fini(&l->topics);
	hd_map_fini(&l->names);
	uv_close((uv_handle_t *)&l->async, on_close);
}

static const struct hd_engine_ops local_ops = {
	.name = "local",
	.publish = local_publish,
	.read = local_read,
	.topic_op = local_topic_op,
	.group_op = local_group_op,
	.record_op = local_record_op,
	.ready = local_ready,
	.stop = local_stop,
	.free = local_free,
};

struct hd_engine *hd_local_engine_new(uv_loop_t *loop, const struct hd_local_opts *opts,
				      struct hd_error *err)
{
	struct local *l = hd_calloc(1, sizeof(*l));
	l->base.ops = &local_ops;
	l->loop = loop;
	l->opts = *opts;
	l->opts.store.notify = notify;
	l->opts.store.notify_arg = l;
	hd_map_init(&l->topics, opts->max_topics_in_memory ? opts->max_topics_in_memory : 1);
	hd_map_init(&l->names, opts->max_topic_names ? opts->max_topic_names : HD_LOCAL_TOPIC_NAMES_MAX);
	if (uv_async_init(loop, &l->async, on_async)) {
		hd_error_set(err, HD_EINTERNAL, "cannot create the store wake-up handle");
		hd_map_fini(&l->topics);
		hd_map_fini(&l->names);
		free(l);
		return NULL;
	}
	l->async.data = l;
	l->open_handles = 1;
	l->store = hd_store_open(&l->opts.store, err);
	if (!l->store) {
		hd_map_fini(&l->topics);
		hd_map_fini(&l->names);
		uv_close((uv_handle_t *)&l->async, on_close);
		return NULL;
	}
	names_load(l);
	return &l->base;
}
