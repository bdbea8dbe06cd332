/*
 * Unit tests for consume/relist.c: a pass pages through a fake engine's
 * records (one page in flight, each page after the last key seen), hands
 * every record to item in order and ends with done once the list is whole;
 * a failed page ends the pass without done and the next starts over; a
 * delete during a pass sets skip_new (not between passes); a page that
 * comes back after stop reaches neither item nor done; a list longer than
 * HD_RELIST_PAGES_MAX pages ends the pass without done.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "consume/relist.h"
#include "core/config.h"
#include "fake_engine.h"

#include <uv.h>

/* Records "k000000".."k<n-1>" of kind "test"; a LIST is held until answered. */
struct rec_engine {
	struct fake_engine f;
	size_t nrecs;
	struct hd_record_op *held;
	size_t lists;
	int fail_next;                /* the next answer fails with this */
	char last_after[HD_RECORD_KEY_MAX + 1];
};

static int rec_op(struct hd_engine *e, struct hd_record_op *op)
{
	struct rec_engine *r = (struct rec_engine *)e;
	assert_int_equal(op->kind, HD_RECORD_LIST);
	assert_string_equal(op->rec.kind, "test");
	assert_null(r->held); /* one page in flight */
	r->lists++;
	snprintf(r->last_after, sizeof(r->last_after), "%s", op->after ? op->after : "");
	r->held = op;
	return 0;
}

/* Answers the held LIST (false: none held). */
static bool answer(struct rec_engine *r)
{
	struct hd_record_op *op = r->held;
	if (!op)
		return false;
	r->held = NULL;
	if (r->fail_next) {
		op->err = r->fail_next;
		r->fail_next = 0;
		op->done(op);
		return true;
	}
	op->recs = hd_calloc(op->limit, sizeof(*op->recs));
	for (size_t i = 0; i < r->nrecs && op->n < op->limit; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%06zu", i);
		if (op->after && strcmp(key, op->after) <= 0)
			continue;
		snprintf(op->recs[op->n].kind, sizeof(op->recs[0].kind), "test");
		snprintf(op->recs[op->n].key, sizeof(op->recs[0].key), "%s", key);
		op->recs[op->n].value = hd_strdup("{}");
		op->n++;
	}
	op->done(op);
	return true;
}

static struct hd_engine_ops rec_ops;

struct seen {
	struct hd_relist *r;
	size_t items, dones;
	char last[HD_RECORD_KEY_MAX + 1];
	bool in_order;
	const char *delete_at;        /* item calls hd_relist_deleted at this key */
	bool skip_after_delete;
};

static void item(void *arg, const struct hd_record *rec)
{
	struct seen *s = arg;
	if (s->items && strcmp(rec->key, s->last) <= 0)
		s->in_order = false;
	snprintf(s->last, sizeof(s->last), "%s", rec->key);
	s->items++;
	if (s->delete_at && strcmp(rec->key, s->delete_at) == 0) {
		hd_relist_deleted(s->r);
		s->skip_after_delete = s->r->skip_new;
	}
}

static void done(void *arg)
{
	struct seen *s = arg;
	s->dones++;
}

struct fixture {
	uv_loop_t loop;
	struct rec_engine e;
	struct hd_hub *hub;
	struct hd_relist r;
	struct seen s;
};

static void fixture_init(struct fixture *x, size_t nrecs, size_t page)
{
	struct hd_config cfg;
	memset(x, 0, sizeof(*x));
	uv_loop_init(&x->loop);
	fake_init(&x->e.f);
	rec_ops = *x->e.f.base.ops;
	rec_ops.record_op = rec_op;
	x->e.f.base.ops = &rec_ops;
	x->e.nrecs = nrecs;
	hd_config_defaults(&cfg);
	x->hub = hd_hub_new(&cfg);
	hd_hub_set_engine(x->hub, &x->e.f.base);
	x->s.r = &x->r;
	x->s.in_order = true;
	struct hd_relist_cfg c = {
		.name = "test", .kind = "test", .page = page, .item = item, .done = done, .arg = &x->s};
	hd_relist_init(&x->r, &x->loop, x->hub, &c);
}

static void fixture_fini(struct fixture *x)
{
	hd_relist_stop(&x->r);
	hd_relist_stop(&x->r); /* idempotent */
	answer(&x->e);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	hd_hub_free(x->hub);
	fake_fini(&x->e.f);
}

static void test_pass_pages_in_order(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, 25, 10);
	assert_int_equal(x.r.gen, 0);
	hd_relist_run(&x.r);
	assert_int_equal(x.r.gen, 1);
	assert_true(x.r.running);
	hd_relist_run(&x.r); /* a pass runs: no second one */
	assert_int_equal(x.r.gen, 1);
	assert_int_equal(x.e.lists, 1);
	assert_string_equal(x.e.last_after, "");
	assert_true(answer(&x.e));
	assert_int_equal(x.s.items, 10);
	assert_string_equal(x.e.last_after, "k000009"); /* the next page: after the last key */
	assert_true(answer(&x.e));
	assert_int_equal(x.s.dones, 0);
	assert_true(answer(&x.e)); /* 5 records: short, the list is whole */
	assert_false(answer(&x.e));
	assert_int_equal(x.s.items, 25);
	assert_true(x.s.in_order);
	assert_int_equal(x.s.dones, 1);
	assert_false(x.r.running);

	/* A list that is an exact number of pages ends on an empty page. */
	x.e.nrecs = 20;
	hd_relist_run(&x.r);
	assert_int_equal(x.r.gen, 2);
	while (answer(&x.e))
		;
	assert_int_equal(x.s.items, 45);
	assert_int_equal(x.s.dones, 2);
	assert_int_equal(x.e.lists, 6);
	fixture_fini(&x);
}

static void test_failed_page_ends_pass(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, 25, 10);
	hd_relist_run(&x.r);
	assert_true(answer(&x.e));
	x.e.fail_next = HD_EUNAVAIL;
	assert_true(answer(&x.e));
	assert_false(x.r.running);
	assert_false(answer(&x.e)); /* nothing more asked */
	assert_int_equal(x.s.dones, 0);
	/* The next pass starts from the beginning. */
	hd_relist_run(&x.r);
	assert_int_equal(x.r.gen, 2);
	assert_string_equal(x.e.last_after, "");
	while (answer(&x.e))
		;
	assert_int_equal(x.s.dones, 1);
	fixture_fini(&x);
}

static void test_deleted_during_pass(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, 25, 10);
	hd_relist_deleted(&x.r); /* no pass runs: nothing to skip */
	assert_false(x.r.skip_new);
	x.s.delete_at = "k000012";
	hd_relist_run(&x.r);
	while (answer(&x.e))
		;
	assert_true(x.s.skip_after_delete);
	assert_true(x.r.skip_new); /* until the next pass */
	x.s.delete_at = NULL;
	hd_relist_run(&x.r);
	assert_false(x.r.skip_new);
	while (answer(&x.e))
		;
	fixture_fini(&x);
}

static void test_stop_drops_page_in_flight(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, 25, 10);
	hd_relist_start(&x.r);
	hd_relist_run(&x.r);
	hd_relist_stop(&x.r);
	assert_true(answer(&x.e)); /* comes back after the stop */
	assert_int_equal(x.s.items, 0);
	assert_int_equal(x.s.dones, 0);
	assert_false(answer(&x.e));
	hd_relist_run(&x.r); /* stopped: no pass */
	assert_false(answer(&x.e));
	fixture_fini(&x);
}

static void stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void test_timer_runs_passes(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, 3, 10);
	hd_relist_start(&x.r);
	uv_timer_t t;
	uv_timer_init(&x.loop, &t);
	uv_timer_start(&t, stop_loop, HD_RELIST_MS + 300, 0);
	uv_run(&x.loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	assert_int_equal(x.r.gen, 1);
	assert_true(answer(&x.e));
	assert_int_equal(x.s.dones, 1);
	fixture_fini(&x);
}

static void test_pages_max_cuts_pass(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x, HD_RELIST_PAGES_MAX + 5, 1);
	hd_relist_run(&x.r);
	while (answer(&x.e))
		;
	assert_int_equal(x.e.lists, HD_RELIST_PAGES_MAX);
	assert_int_equal(x.s.items, HD_RELIST_PAGES_MAX);
	assert_int_equal(x.s.dones, 0); /* not whole: nothing may be swept */
	fixture_fini(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_pages_in_order),
		cmocka_unit_test(test_failed_page_ends_pass),
		cmocka_unit_test(test_deleted_during_pass),
		cmocka_unit_test(test_stop_drops_page_in_flight),
		cmocka_unit_test(test_timer_runs_passes),
		cmocka_unit_test(test_pages_max_cuts_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
