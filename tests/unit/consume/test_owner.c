/*
 * Unit tests for consume/owner.c: with an engine of one node every claim
 * is held at once (token 0, nothing sent); with a shared engine (a fake
 * owner_op that keeps leases like the Redis script) one owner holds a
 * lease at a time, a second owner sees the holder, a lost write drops the
 * claim, a take makes the holder hand over at its next renewal, and a
 * removal with release frees the lease for the other owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "consume/owner.h"
#include "core/config.h"
#include "fake_engine.h"

#include <uv.h>

/* One lease, as the Redis script keeps it (no expiry: the tests do not
 * wait for one). */
struct lease_engine {
	struct fake_engine f;
	char holder[HD_OWNER_ID_MAX + 1];
	char want[HD_OWNER_ID_MAX + 1];
	uint64_t token, next_token;
	size_t ops;
};

static int lease_op(struct hd_engine *e, struct hd_owner_op *op)
{
	struct lease_engine *l = (struct lease_engine *)e;
	l->ops++;
	op->err = 0;
	op->held = op->wanted = false;
	if (op->kind == HD_OWNER_RELEASE) {
		if (!op->owner || !op->owner[0] || strcmp(op->owner, l->holder) == 0)
			l->holder[0] = '\0';
	} else if (l->holder[0]) {
		if (strcmp(l->holder, op->owner) == 0) {
			op->held = true;
			op->wanted = l->want[0] && strcmp(l->want, op->owner) != 0;
		} else if (op->kind == HD_OWNER_TAKE && !l->want[0]) {
			snprintf(l->want, sizeof(l->want), "%s", op->owner);
		}
	} else if (!l->want[0] || strcmp(l->want, op->owner) == 0) {
		l->want[0] = '\0';
		snprintf(l->holder, sizeof(l->holder), "%s", op->owner);
		l->token = ++l->next_token;
		op->held = true;
	}
	op->token = l->holder[0] ? l->token : 0;
	snprintf(op->holder, sizeof(op->holder), "%s", l->holder);
	op->done(op);
	return 0;
}

static struct hd_engine_ops lease_ops;

struct seen {
	int gained, lost;
	bool wrote_while_handing;
};

static void changed(struct hd_owner_claim *c)
{
	struct seen *s = c->arg;
	if (c->held)
		s->gained++;
	else
		s->lost++;
	if (c->handing)
		s->wrote_while_handing = true;
}

static void claim_init(struct hd_owner_claim *c, struct seen *s)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "webhook:sub_1");
	c->changed = changed;
	c->arg = s;
}

static void test_one_node_always_holds(void **state)
{
	(void)state;
	struct hd_config cfg;
	struct fake_engine f;
	uv_loop_t loop;
	uv_loop_init(&loop);
	fake_init(&f);
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f.base);
	struct hd_owner *o = hd_owner_new(&loop, hub, "n1");
	assert_false(hd_owner_shared(o));
	struct seen s = {0};
	struct hd_owner_claim c;
	claim_init(&c, &s);
	hd_owner_add(o, &c);
	assert_true(c.held && hd_owner_holds(&c));
	assert_int_equal(c.token, 0);
	assert_int_equal(s.gained + s.lost, 0);
	hd_owner_lost(&c); /* nothing to lose on one node */
	assert_true(c.held);
	hd_owner_stop(o);
	uv_run(&loop, UV_RUN_DEFAULT);
	hd_owner_free(o);
	assert_int_equal(uv_loop_close(&loop), 0);
	hd_hub_free(hub);
	fake_fini(&f);
}

static void stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Runs the loop for ms (the owners' ticks). */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
	uv_timer_t t;
	uv_timer_init(loop, &t);
	uv_timer_start(&t, stop_loop, ms, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void test_two_owners_one_lease(void **state)
{
	(void)state;
	struct hd_config cfg;
	struct lease_engine l;
	uv_loop_t loop;
	uv_loop_init(&loop);
	memset(&l, 0, sizeof(l));
	fake_init(&l.f);
	lease_ops = *l.f.base.ops;
	lease_ops.owner_op = lease_op;
	l.f.base.ops = &lease_ops;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &l.f.base);
	struct hd_owner *a = hd_owner_new(&loop, hub, "a"), *b = hd_owner_new(&loop, hub, "b");
	assert_true(hd_owner_shared(a));
	assert_string_not_equal(hd_owner_id(a), hd_owner_id(b));
	struct seen sa = {0}, sb = {0};
	struct hd_owner_claim ca, cb;
	claim_init(&ca, &sa);
	claim_init(&cb, &sb);

	hd_owner_add(a, &ca);
	assert_true(ca.held && hd_owner_holds(&ca));
	assert_int_equal(ca.token, 1);
	assert_int_equal(sa.gained, 1);
	hd_owner_add(b, &cb);
	assert_false(cb.held);
	assert_string_equal(cb.holder, hd_owner_id(a));
	assert_int_equal(sb.gained + sb.lost, 0);

	/* A fenced write refused: a stops; the lease is still its own in
	 * the engine, so its next renewal holds it again (a new holding). */
	hd_owner_lost(&ca);
	assert_false(ca.held);
	assert_int_equal(sa.lost, 1);

	/* b asks for it: a (held again at its next tick) hands it over at the
	 * renewal after, writing once more while handing; b gets it with a
	 * new token. */
	run_for(&loop, 1100);
	assert_true(ca.held);
	hd_owner_take(&cb);
	assert_string_equal(l.want, hd_owner_id(b));
	run_for(&loop, 2100);
	assert_true(sa.wrote_while_handing);
	assert_false(ca.held);
	assert_true(cb.held && hd_owner_holds(&cb));
	assert_true(cb.token > 1);
	assert_int_equal(sb.gained, 1);

	/* b goes away releasing it: a takes it at its next tick. */
	hd_owner_remove(&cb, true);
	assert_string_equal(l.holder, "");
	run_for(&loop, 1100);
	assert_true(ca.held);

	hd_owner_stop(a);
	hd_owner_stop(b);
	assert_string_equal(l.holder, ""); /* released at stop */
	uv_run(&loop, UV_RUN_DEFAULT);
	hd_owner_free(a);
	hd_owner_free(b);
	assert_int_equal(uv_loop_close(&loop), 0);
	hd_hub_free(hub);
	fake_fini(&l.f);
}

/* Many leases, kept like the Redis script keeps them, with the engine's
 * owner_ops (one call per page): counts the calls. */
#define MANY 1200
struct many_engine {
	struct fake_engine f;
	struct lease_engine leases[MANY];
	size_t singles, batches, batch_max, batched;
};

static struct lease_engine *lease_of(struct many_engine *m, const char *name)
{
	unsigned i = (unsigned)atoi(strchr(name, '_') + 1);
	assert_true(i < MANY);
	return &m->leases[i];
}

static int many_op(struct hd_engine *e, struct hd_owner_op *op)
{
	struct many_engine *m = (struct many_engine *)e;
	m->singles++;
	return lease_op(&lease_of(m, op->name)->f.base, op);
}

static int many_ops(struct hd_engine *e, struct hd_owner_op *const *ops, size_t n)
{
	struct many_engine *m = (struct many_engine *)e;
	assert_true(n >= 1 && n <= HD_OWNER_BATCH_MAX);
	m->batches++;
	m->batched += n;
	if (n > m->batch_max)
		m->batch_max = n;
	char owner[HD_OWNER_ID_MAX + 1];
	snprintf(owner, sizeof(owner), "%s", ops[0]->owner); /* ops[0] is freed by its done() */
	for (size_t i = 0; i < n; i++) {
		assert_int_not_equal(ops[i]->kind, HD_OWNER_RELEASE);
		assert_string_equal(ops[i]->owner, owner);
		lease_op(&lease_of(m, ops[i]->name)->f.base, ops[i]);
	}
	return 0;
}

static struct hd_engine_ops many_ops_table;

static void claims_init(struct hd_owner_claim *c, struct seen *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		snprintf(c[i].name, sizeof(c[i].name), "webhook:sub_%zu", i);
		c[i].changed = changed;
		c[i].arg = s;
	}
}

/* A tick renews every held lease in pages of HD_OWNER_BATCH_MAX, one
 * engine call each, with the fencing semantics of single operations: the
 * holder keeps its tokens, the other owner's tries leave them alone, and
 * after the holder goes the other takes every lease with a greater token. */
static void test_renewals_go_in_pages(void **state)
{
	(void)state;
	struct hd_config cfg;
	struct many_engine *m = calloc(1, sizeof(*m));
	struct hd_owner_claim *ca = calloc(MANY, sizeof(*ca)), *cb = calloc(MANY, sizeof(*cb));
	uint64_t *tok = calloc(MANY, sizeof(*tok));
	struct seen sa = {0}, sb = {0};
	uv_loop_t loop;
	uv_loop_init(&loop);
	fake_init(&m->f);
	many_ops_table = *m->f.base.ops;
	many_ops_table.owner_op = many_op;
	many_ops_table.owner_ops = many_ops;
	m->f.base.ops = &many_ops_table;
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &m->f.base);
	struct hd_owner *a = hd_owner_new(&loop, hub, "a"), *b = hd_owner_new(&loop, hub, "b");
	claims_init(ca, &sa, MANY);
	claims_init(cb, &sb, MANY);

	/* First tries go alone, at once: a holds all; b none. */
	for (size_t i = 0; i < MANY; i++)
		hd_owner_add(a, &ca[i]);
	for (size_t i = 0; i < MANY; i++)
		hd_owner_add(b, &cb[i]);
	assert_int_equal(m->singles, 2 * MANY);
	assert_int_equal(m->batches, 0);
	for (size_t i = 0; i < MANY; i++) {
		assert_true(ca[i].held && !cb[i].held);
		tok[i] = ca[i].token;
	}
	assert_int_equal(sa.gained, MANY);

	/* One tick: each owner sends its 1,200 operations in 3 calls. */
	run_for(&loop, 1100);
	assert_int_equal(m->singles, 2 * MANY);
	assert_int_equal(m->batches, 2 * 3);
	assert_int_equal(m->batched, 2 * MANY);
	assert_int_equal(m->batch_max, HD_OWNER_BATCH_MAX);
	for (size_t i = 0; i < MANY; i++) {
		assert_true(ca[i].held && hd_owner_holds(&ca[i]) && !cb[i].held);
		assert_int_equal(ca[i].token, tok[i]); /* a renewal keeps the token */
		assert_string_equal(cb[i].holder, hd_owner_id(a));
	}
	assert_int_equal(sa.gained, MANY);
	assert_int_equal(sa.lost + sb.gained + sb.lost, 0);

	/* a goes (releasing): b's next tick takes every lease, new tokens. */
	hd_owner_stop(a);
	run_for(&loop, 1100);
	for (size_t i = 0; i < MANY; i++) {
		assert_true(cb[i].held);
		assert_true(cb[i].token > tok[i]);
	}
	assert_int_equal(sb.gained, MANY);

	hd_owner_stop(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	hd_owner_free(a);
	hd_owner_free(b);
	assert_int_equal(uv_loop_close(&loop), 0);
	hd_hub_free(hub);
	fake_fini(&m->f);
	free(m);
	free(ca);
	free(cb);
	free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_node_always_holds),
		cmocka_unit_test(test_two_owners_one_lease),
		cmocka_unit_test(test_renewals_go_in_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
