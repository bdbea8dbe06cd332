/* owned — see owned.h. */
#include "consume/owned.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/siphash.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the claim ---------------------------------------------------------- */

static void claim_changed(struct hd_owner_claim *c)
{
	struct hd_owned *x = c->arg;
	if (x->kind->gone(x->sub))
		return;
	if (c->held) {
		x->kind->gained(x->sub);
		return;
	}
	x->view_hash = 0;
	x->kind->lost(x->sub);
}

void hd_owned_add(struct hd_owned *x, struct hd_owner *o, const struct hd_owned_kind *kind,
		  const char *id, void *sub, uint64_t gen)
{
	*x = (struct hd_owned){.claim = {.changed = claim_changed, .arg = x},
			       .claimed = true, .born_gen = gen,
			       .kind = kind, .sub = sub, .id = id, .owner = o};
	snprintf(x->claim.name, sizeof(x->claim.name), "%s:%s", kind->name, id);
	hd_owner_add(o, &x->claim);
}

bool hd_owned_held(const struct hd_owned *x)
{
	return x->claimed && hd_owner_holds(&x->claim) && !x->reloading;
}

bool hd_owned_remove(struct hd_owned *x, bool release, bool drop)
{
	if (!x->claimed)
		return false;
	x->claimed = false;
	hd_owner_remove(&x->claim, release);
	if (drop && hd_owner_shared(x->owner))
		hd_owner_drop(x->owner, x->claim.name);
	return true;
}

void hd_owned_want(struct hd_owned *x)
{
	if (!x->reloading)
		hd_owner_take(&x->claim);
}

void hd_owned_fenced(struct hd_owned *x, uint64_t token)
{
	if (x->claimed && x->claim.held && x->claim.token == token)
		hd_owner_lost(&x->claim);
}

/* ---- the re-list's view ------------------------------------------------- */

bool hd_owned_view(struct hd_owned *x, uint64_t gen, bool busy, const char *value)
{
	static const unsigned char key[16] = "herald-owned-vw";
	x->seen_gen = gen;
	if (hd_owned_held(x) || x->reloading || busy)
		return false;
	uint64_t h = hd_siphash(key, value, strlen(value));
	if (h == x->view_hash)
		return false;
	x->view_hash = h;
	return true;
}

bool hd_owned_unseen(const struct hd_owned *x, uint64_t gen)
{
	return x->seen_gen != gen && x->born_gen < gen && !x->reloading;
}

/* ---- gaining: the re-read ----------------------------------------------- */

struct reload {
	struct hd_record_op op;
	struct hd_owned *x;           /* its sub held (kind->hold) */
	char after[HD_RECORD_KEY_MAX + 1];
	char prefix[HD_RECORD_KEY_MAX + 1];
};

static void reload_send(struct reload *q);

static void reload_done(struct hd_record_op *op)
{
	struct reload *q = op->arg;
	struct hd_owned *x = q->x;
	const struct hd_owned_kind *k = x->kind;
	bool more = false;

	if (k->gone(x->sub) || !x->claim.held) {
		x->reloading = false;
		goto out;
	}
	if (op->kind == HD_RECORD_GET && op->err == HD_ENOTFOUND) {
		x->reloading = false;
		k->missing(x->sub);
		goto out;
	}
	if (op->err) {
		/* Claimed again (and read again) on the next tick. */
		x->reloading = false;
		if (hd_log_ratelimited(&x->warn_ms))
			hd_log_warn("%s_reload_failed sub=%s err=%d", k->name, x->id, op->err);
		hd_owner_lost(&x->claim);
		goto out;
	}
	if (op->kind == HD_RECORD_GET) {
		json_t *o = json_loads(op->recs[0].value, 0, NULL);
		if (json_is_object(o))
			k->apply(x->sub, o);
		json_decref(o);
		x->view_hash = 0;
		if (k->kids_kind && k->has_kids(x->sub)) {
			more = true; /* then the children's records */
			q->after[0] = '\0';
		}
	} else {
		for (size_t i = 0; i < op->n; i++) {
			k->kid(x->sub, &op->recs[i]);
			snprintf(q->after, sizeof(q->after), "%s", op->recs[i].key);
		}
		more = op->n >= k->kids_page;
	}
	if (!more) {
		x->reloading = false;
		k->ready(x->sub);
	}
out:
	hd_engine_record_op_fini(op);
	if (more) {
		hd_engine_record_list_init(&q->op, k->kids_kind, q->prefix, q->after, k->kids_page,
					   reload_done, q);
		reload_send(q);
		return;
	}
	free(q);
	k->ref(x->sub, -1);
}

static void reload_send(struct reload *q)
{
	int rc = hd_hub_record_op(hd_owner_hub(q->x->owner), &q->op);
	if (rc) {
		q->op.err = rc;
		q->op.done(&q->op);
	}
}

void hd_owned_reload(struct hd_owned *x)
{
	struct reload *q = hd_calloc(1, sizeof(*q));
	q->x = x;
	snprintf(q->prefix, sizeof(q->prefix), "%s/", x->id);
	x->reloading = true;
	x->kind->ref(x->sub, 1);
	q->op.kind = HD_RECORD_GET;
	snprintf(q->op.rec.kind, sizeof(q->op.rec.kind), "%s", x->kind->record_kind);
	snprintf(q->op.rec.key, sizeof(q->op.rec.key), "%s", x->id);
	q->op.done = reload_done;
	q->op.arg = q;
	reload_send(q);
}
