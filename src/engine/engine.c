/*
 * engine — what every engine shares behind engine.h: freeing the results a
 * request returns owned (an engine fills them in the forms engine_types.h
 * gives: arrays from malloc, each row's text owned, so one clean-up serves
 * the local engine and any other), and filling a record LIST request (the
 * loads and re-lists of webhook/ and push/ page through records).
 * Layer: engine. Called by the hub's and the edges' request owners.
 */
#include "engine/engine.h"
#include "core/rcbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hd_engine_read_fini(struct hd_read *r)
{
	for (size_t i = 0; i < r->n; i++)
		hd_rcbuf_unref(r->events[i].json);
	free(r->events);
	r->events = NULL;
	r->n = 0;
}

void hd_engine_topic_op_fini(struct hd_topic_op *op)
{
	free(op->topics);
	op->topics = NULL;
	op->n = 0;
}

void hd_engine_group_op_fini(struct hd_group_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		free(op->rows[i].acked);
	free(op->rows);
	op->rows = NULL;
	op->n = 0;
}

void hd_engine_record_op_fini(struct hd_record_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		free(op->recs[i].value);
	free(op->recs);
	op->recs = NULL;
	op->n = 0;
}

void hd_engine_record_list_init(struct hd_record_op *op, const char *kind, const char *prefix,
				const char *after, size_t limit,
				void (*done)(struct hd_record_op *op), void *arg)
{
	memset(op, 0, sizeof(*op));
	op->kind = HD_RECORD_LIST;
	snprintf(op->rec.kind, sizeof(op->rec.kind), "%s", kind);
	op->prefix = prefix;
	op->after = after;
	op->limit = limit;
	op->done = done;
	op->arg = arg;
}

void hd_engine_glease_op_fini(struct hd_glease_op *op)
{
	free(op->grants);
	op->grants = NULL;
	op->ngrants = 0;
	free(op->ignored);
	op->ignored = NULL;
	op->nignored = 0;
}

void hd_engine_reg_query_fini(struct hd_reg_query *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->values[i]);
	free(q->values);
	q->values = NULL;
	q->n = 0;
}
