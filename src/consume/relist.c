/* relist — see relist.h. */
#include "consume/relist.h"
#include "core/clock.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

static void page_send(struct hd_relist *r);

static void page_done(struct hd_record_op *op)
{
	struct hd_relist *r = op->arg;
	bool more = false, whole = false;

	if (op->err || r->stopping) {
		if (op->err && !r->stopping)
			hd_log_debug("%s_relist_failed err=%d", r->cfg.name, op->err);
		goto out;
	}
	for (size_t i = 0; i < op->n && !r->stopping; i++) {
		r->cfg.item(r->cfg.arg, &op->recs[i]);
		snprintf(r->after, sizeof(r->after), "%s", op->recs[i].key);
	}
	if (r->stopping)
		goto out;
	if (op->n < r->cfg.page)
		whole = true;
	else if (r->pages < HD_RELIST_PAGES_MAX)
		more = true;
	else
		hd_log_warn("%s_relist_cut pages=%zu records=%zu", r->cfg.name, r->pages,
			    r->pages * r->cfg.page);
out:
	hd_engine_record_op_fini(op);
	if (more) {
		page_send(r);
		return;
	}
	r->running = false;
	if (whole && r->cfg.done)
		r->cfg.done(r->cfg.arg);
}

static void page_send(struct hd_relist *r)
{
	hd_engine_record_list_init(&r->op, r->cfg.kind, NULL, r->after, r->cfg.page, page_done,
				   r);
	r->running = true;
	r->pages++;
	int rc = hd_hub_record_op(r->hub, &r->op);
	if (rc) {
		r->op.err = rc;
		page_done(&r->op);
	}
}

void hd_relist_run(struct hd_relist *r)
{
	if (r->running || r->stopping)
		return;
	r->gen++;
	r->begun_ms = hd_now_ms();
	r->skip_new = false;
	r->after[0] = '\0';
	r->pages = 0;
	page_send(r);
}

static void on_tick(uv_timer_t *t)
{
	hd_relist_run(t->data);
}

void hd_relist_init(struct hd_relist *r, uv_loop_t *loop, struct hd_hub *hub,
		    const struct hd_relist_cfg *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	if (r->cfg.page == 0 || r->cfg.page > HD_RELIST_PAGE_MAX)
		r->cfg.page = HD_RELIST_PAGE_MAX;
	r->hub = hub;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
}

void hd_relist_start(struct hd_relist *r)
{
	if (r->stopping || r->started)
		return;
	r->started = true;
	uv_timer_start(&r->timer, on_tick, HD_RELIST_MS, HD_RELIST_MS);
}

void hd_relist_deleted(struct hd_relist *r)
{
	if (r->running)
		r->skip_new = true;
}

void hd_relist_stop(struct hd_relist *r)
{
	if (r->stopping)
		return;
	r->stopping = true;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, NULL);
}
