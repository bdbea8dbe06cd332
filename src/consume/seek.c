/* seek — see seek.h. */
#include "consume/seek.h"
#include "core/err.h"

#include <string.h>

int hd_seek_range(const struct hd_topic_op *op, uint64_t *first, uint64_t *last)
{
	bool found = op->err == 0 && op->n == 1;
	*last = found ? op->topics[0].last : 0;
	*first = found ? op->topics[0].first : *last + 1;
	return op->err == HD_ENOTFOUND ? 0 : op->err;
}

static void step(struct hd_seek *k);

static void read_done(struct hd_read *r)
{
	struct hd_seek *k = r->arg;
	uint64_t mid = r->after + 1;
	int err = r->err;
	if (err) {
		hd_engine_read_fini(r);
		k->done(k, err);
		return;
	}
	if (r->n == 0 || r->events[0].time_ms >= k->time_ms)
		k->hi = mid; /* nothing in [mid, the event found) exists */
	else
		k->lo = r->events[0].offset + 1;
	hd_engine_read_fini(r);
	step(k);
}

/* One step of the search in [lo, hi): reads the first event at or after
 * the middle. */
static void step(struct hd_seek *k)
{
	if (k->cancel && *k->cancel) {
		k->cancelled = true;
		k->done(k, HD_EUNAVAIL);
		return;
	}
	if (k->lo >= k->hi) {
		k->found = k->lo;
		k->done(k, 0);
		return;
	}
	memset(&k->rd, 0, sizeof(k->rd));
	k->rd.topic = k->topic;
	k->rd.after = k->lo + (k->hi - k->lo) / 2 - 1;
	k->rd.limit = 1;
	k->rd.done = read_done;
	k->rd.arg = k;
	int rc = hd_hub_read(k->hub, &k->rd);
	if (rc)
		k->done(k, rc);
}

void hd_seek_start(struct hd_seek *k, uint64_t first, uint64_t last)
{
	k->found = 0;
	k->cancelled = false;
	k->lo = first;
	k->hi = last + 1;
	step(k);
}
