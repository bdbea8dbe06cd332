/*
 * Unit tests for consume/owned.c on an engine of one node (every claim
 * held at once, token 0) with a fake record store: the claim's name, the
 * gate, the re-read on a gain (the record, then its children's records a
 * page at a time, then ready; a missing record; a failed read), the
 * re-list's view (only a changed value of one not held and not busy) and
 * the sweep's test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "consume/owned.h"
#include "core/config.h"
#include "fake_engine.h"

#include <uv.h>

/* A record "s1" of kind "sub" ({"n":7}) and nkids records "s1/kNN" of kind "kid". */
struct rec_engine {
	struct fake_engine f;
	bool has_record;
	size_t nkids;
	int fail;                     /* every record op fails with this */
	size_t gets, lists;
};

static int rec_op(struct hd_engine *e, struct hd_record_op *op)
{
	struct rec_engine *r = (struct rec_engine *)e;
	if (r->fail)
		return r->fail;
	if (op->kind == HD_RECORD_GET) {
		r->gets++;
		assert_string_equal(op->rec.kind, "sub");
		assert_string_equal(op->rec.key, "s1");
		if (!r->has_record) {
			op->err = HD_ENOTFOUND;
		} else {
			op->recs = hd_calloc(1, sizeof(*op->recs));
			op->recs[0].value = hd_strdup("{\"n\":7}");
			op->n = 1;
		}
		op->done(op);
		return 0;
	}
	r->lists++;
	assert_int_equal(op->kind, HD_RECORD_LIST);
	assert_string_equal(op->rec.kind, "kid");
	assert_string_equal(op->prefix, "s1/");
	op->recs = hd_calloc(op->limit, sizeof(*op->recs));
	for (size_t i = 0; i < r->nkids && op->n < op->limit; i++) {
		char key[32];
		snprintf(key, sizeof(key), "s1/k%02zu", i);
		if (op->after && strcmp(key, op->after) <= 0)
			continue;
		snprintf(op->recs[op->n].key, sizeof(op->recs[0].key), "%s", key);
		op->recs[op->n].value = hd_strdup("{}");
		op->n++;
	}
	op->done(op);
	return 0;
}

static struct hd_engine_ops rec_ops;

struct sub {
	struct hd_owned own;
	char id[8];
	bool gone, kids;
	int gained, lost, applied, nkid, ready, missing, refs;
	json_int_t n;
};

static bool s_gone(void *p) { return ((struct sub *)p)->gone; }
static void s_gained(void *p) { ((struct sub *)p)->gained++; }
static void s_lost(void *p) { ((struct sub *)p)->lost++; }
static bool s_has_kids(void *p) { return ((struct sub *)p)->kids; }
static void s_ready(void *p) { ((struct sub *)p)->ready++; }
static void s_missing(void *p) { ((struct sub *)p)->missing++; }
static void s_ref(void *p, int delta) { ((struct sub *)p)->refs += delta; }

static void s_apply(void *p, json_t *o)
{
	struct sub *s = p;
	s->applied++;
	s->n = json_integer_value(json_object_get(o, "n"));
}

static void s_kid(void *p, const struct hd_record *rec)
{
	(void)rec;
	((struct sub *)p)->nkid++;
}

static const struct hd_owned_kind kind = {
	.name = "test", .record_kind = "sub", .kids_kind = "kid", .kids_page = 4,
	.gone = s_gone, .gained = s_gained, .lost = s_lost, .apply = s_apply,
	.has_kids = s_has_kids, .kid = s_kid, .ready = s_ready, .missing = s_missing,
	.ref = s_ref,
};

struct fixture {
	uv_loop_t loop;
	struct rec_engine e;
	struct hd_hub *hub;
	struct hd_owner *o;
	struct sub s;
};

static void fixture_init(struct fixture *x)
{
	struct hd_config cfg;
	memset(x, 0, sizeof(*x));
	uv_loop_init(&x->loop);
	fake_init(&x->e.f);
	rec_ops = *x->e.f.base.ops;
	rec_ops.record_op = rec_op;
	x->e.f.base.ops = &rec_ops;
	x->e.has_record = true;
	hd_config_defaults(&cfg);
	x->hub = hd_hub_new(&cfg);
	hd_hub_set_engine(x->hub, &x->e.f.base);
	x->o = hd_owner_new(&x->loop, x->hub, "n1");
	snprintf(x->s.id, sizeof(x->s.id), "s1");
	hd_owned_add(&x->s.own, x->o, &kind, x->s.id, &x->s, 3);
}

static void fixture_fini(struct fixture *x)
{
	hd_owned_remove(&x->s.own, true, true);
	assert_false(hd_owned_remove(&x->s.own, true, true)); /* once */
	hd_owner_stop(x->o);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	hd_owner_free(x->o);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	hd_hub_free(x->hub);
	fake_fini(&x->e.f);
}

static void test_claim_and_reload(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x);
	assert_string_equal(x.s.own.claim.name, "test:s1");
	assert_true(x.s.own.claimed);
	assert_true(hd_owned_held(&x.s.own)); /* one node: held at once */
	assert_int_equal(x.s.own.born_gen, 3);

	/* The record, then 9 children in pages of 4 (4, 4, 1), then ready. */
	x.s.kids = true;
	x.e.nkids = 9;
	hd_owned_reload(&x.s.own);
	assert_int_equal(x.s.applied, 1);
	assert_int_equal(x.s.n, 7);
	assert_int_equal(x.s.nkid, 9);
	assert_int_equal(x.e.lists, 3);
	assert_int_equal(x.s.ready, 1);
	assert_int_equal(x.s.refs, 0); /* the reference is given back */
	assert_false(x.s.own.reloading);

	/* Without children: the record only. */
	x.s.kids = false;
	hd_owned_reload(&x.s.own);
	assert_int_equal(x.e.lists, 3);
	assert_int_equal(x.s.ready, 2);

	/* Gone meanwhile: nothing is applied. */
	x.s.gone = true;
	hd_owned_reload(&x.s.own);
	assert_int_equal(x.s.applied, 2);
	assert_int_equal(x.s.ready, 2);
	assert_false(x.s.own.reloading);
	x.s.gone = false;

	/* The record is gone: missing. */
	x.e.has_record = false;
	hd_owned_reload(&x.s.own);
	assert_int_equal(x.s.missing, 1);
	assert_int_equal(x.s.ready, 2);
	x.e.has_record = true;

	/* A failed read: the lease is given up (nothing to lose on one node). */
	x.e.fail = HD_EUNAVAIL;
	hd_owned_reload(&x.s.own);
	assert_int_equal(x.s.ready, 2);
	assert_false(x.s.own.reloading);
	assert_int_equal(x.s.refs, 0);
	x.e.fail = 0;
	fixture_fini(&x);
}

static void test_view_and_sweep(void **state)
{
	(void)state;
	struct fixture x;
	fixture_init(&x);
	/* Held here: this node writes it, the view is never applied. */
	assert_false(hd_owned_view(&x.s.own, 4, false, "{\"a\":1}"));
	assert_int_equal(x.s.own.seen_gen, 4);
	/* Not held (claim removed): a new value is shown once. */
	hd_owned_remove(&x.s.own, false, false);
	assert_true(hd_owned_view(&x.s.own, 5, false, "{\"a\":1}"));
	assert_false(hd_owned_view(&x.s.own, 6, false, "{\"a\":1}"));
	assert_true(hd_owned_view(&x.s.own, 7, false, "{\"a\":2}"));
	assert_false(hd_owned_view(&x.s.own, 8, true, "{\"a\":3}")); /* busy */
	assert_int_equal(x.s.own.seen_gen, 8);

	/* The sweep: not seen by a pass that began after it was made. */
	assert_false(hd_owned_unseen(&x.s.own, 8)); /* seen */
	assert_true(hd_owned_unseen(&x.s.own, 9));
	x.s.own.born_gen = 9;
	assert_false(hd_owned_unseen(&x.s.own, 9)); /* made during that pass */
	x.s.own.born_gen = 3;
	x.s.own.reloading = true;
	assert_false(hd_owned_unseen(&x.s.own, 9));
	x.s.own.reloading = false;
	fixture_fini(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claim_and_reload),
		cmocka_unit_test(test_view_and_sweep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
