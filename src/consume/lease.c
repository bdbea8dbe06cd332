/*
 * lease — a consumer's delivery state over one topic (see lease.h).
 *
 * The window (floor, next) lives in a ring of slots indexed by
 * offset % nslots; nslots is a power of two >= the window, grown by
 * doubling (re-indexing the window) up to the first power of two >= cap.
 * Scans are linear in the window, which cap bounds.
 */
#include "consume/lease.h"
#include "core/alloc.h"
#include "core/err.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 64

void hd_lease_init(struct hd_lease *l, uint64_t floor, size_t cap)
{
	assert(cap >= 1 && cap <= HD_LEASE_CAP_MAX);
	memset(l, 0, sizeof(*l));
	l->floor = floor;
	l->next = floor + 1;
	l->cap = cap;
}

void hd_lease_fini(struct hd_lease *l)
{
	free(l->slots);
	l->slots = NULL;
	l->nslots = 0;
}

static struct hd_lease_slot *slot(const struct hd_lease *l, uint64_t offset)
{
	return &l->slots[offset & (l->nslots - 1)];
}

/* Makes room for a window of want offsets (want <= cap). */
static void reserve(struct hd_lease *l, size_t want)
{
	if (want <= l->nslots)
		return;
	size_t n = l->nslots ? l->nslots : INITIAL_SLOTS;
	while (n < want)
		n *= 2;
	struct hd_lease_slot *s = hd_calloc(n, sizeof(*s));
	for (uint64_t o = l->floor + 1; o < l->next; o++)
		s[o & (n - 1)] = *slot(l, o);
	free(l->slots);
	l->slots = s;
	l->nslots = n;
}

/* Moves the floor over the ACKED offsets right above it. */
static void advance(struct hd_lease *l)
{
	while (l->floor + 1 < l->next && slot(l, l->floor + 1)->state == HD_LEASE_ACKED)
		l->floor++;
}

size_t hd_lease_take_due(struct hd_lease *l, int64_t now, int64_t lease_until,
			 struct hd_lease_grant *out, size_t max)
{
	size_t n = 0;
	for (uint64_t o = l->floor + 1; o < l->next && n < max; o++) {
		struct hd_lease_slot *s = slot(l, o);
		if (s->state == HD_LEASE_ACKED || s->deadline > now)
			continue;
		if (s->state == HD_LEASE_READY)
			l->leased++;
		s->state = HD_LEASE_LEASED;
		s->deadline = lease_until;
		if (s->deliveries > 0)
			l->redeliveries++;
		if (s->deliveries < UINT32_MAX)
			s->deliveries++;
		out[n].offset = o;
		out[n].deliveries = s->deliveries;
		n++;
	}
	return n;
}

/* Appends offsets next .. upto in state st (ACKED or READY). The caller has
 * checked the window fits cap. */
static void extend(struct hd_lease *l, uint64_t upto, uint8_t st)
{
	reserve(l, (size_t)(upto - l->floor));
	for (; l->next <= upto; l->next++) {
		struct hd_lease_slot *s = slot(l, l->next);
		memset(s, 0, sizeof(*s));
		s->state = st;
	}
}

int hd_lease_skip(struct hd_lease *l, uint64_t upto)
{
	if (upto < l->next)
		return 0;
	if (hd_lease_window(l) == 0) {
		l->floor = upto;
		l->next = upto + 1;
		return 0;
	}
	if (upto - l->floor > l->cap)
		return HD_ELIMIT;
	extend(l, upto, HD_LEASE_ACKED);
	advance(l);
	return 0;
}

int hd_lease_add(struct hd_lease *l, uint64_t offset, int64_t lease_until)
{
	if (offset < l->next)
		return HD_EINVAL;
	int rc = hd_lease_skip(l, offset - 1);
	if (rc)
		return rc;
	if (offset - l->floor > l->cap)
		return HD_ELIMIT;
	extend(l, offset, HD_LEASE_LEASED);
	struct hd_lease_slot *s = slot(l, offset);
	s->deadline = lease_until;
	s->deliveries = 1;
	l->leased++;
	return 0;
}

int hd_lease_ack(struct hd_lease *l, uint64_t offset)
{
	if (offset <= l->floor || offset >= l->next)
		return HD_ENOTFOUND;
	struct hd_lease_slot *s = slot(l, offset);
	if (s->state == HD_LEASE_ACKED)
		return HD_ENOTFOUND;
	if (s->state == HD_LEASE_LEASED)
		l->leased--;
	s->state = HD_LEASE_ACKED;
	advance(l);
	return 0;
}

size_t hd_lease_ack_upto(struct hd_lease *l, uint64_t upto)
{
	size_t n = 0;
	uint64_t end = upto < l->next ? upto : l->next - 1;
	for (uint64_t o = l->floor + 1; o <= end; o++) {
		struct hd_lease_slot *s = slot(l, o);
		if (s->state == HD_LEASE_ACKED)
			continue;
		if (s->state == HD_LEASE_LEASED)
			l->leased--;
		s->state = HD_LEASE_ACKED;
		n++;
	}
	advance(l);
	return n;
}

int hd_lease_nack(struct hd_lease *l, uint64_t offset, int64_t not_before)
{
	if (offset <= l->floor || offset >= l->next)
		return HD_ENOTFOUND;
	struct hd_lease_slot *s = slot(l, offset);
	if (s->state != HD_LEASE_LEASED)
		return HD_ENOTFOUND;
	s->state = HD_LEASE_READY;
	s->deadline = not_before;
	l->leased--;
	return 0;
}

enum hd_lease_state hd_lease_state_of(const struct hd_lease *l, uint64_t offset)
{
	if (offset <= l->floor)
		return HD_LEASE_ACKED;
	if (offset >= l->next)
		return HD_LEASE_READY;
	return (enum hd_lease_state)slot(l, offset)->state;
}

uint32_t hd_lease_deliveries(const struct hd_lease *l, uint64_t offset)
{
	if (offset <= l->floor || offset >= l->next)
		return 0;
	return slot(l, offset)->deliveries;
}

int64_t hd_lease_next_due(const struct hd_lease *l)
{
	int64_t due = INT64_MAX;
	for (uint64_t o = l->floor + 1; o < l->next; o++) {
		const struct hd_lease_slot *s = slot(l, o);
		if (s->state == HD_LEASE_ACKED)
			continue;
		if (s->state == HD_LEASE_READY && s->deadline <= 0)
			return INT64_MIN;
		if (s->deadline < due)
			due = s->deadline;
	}
	return due;
}

int hd_lease_encode(const struct hd_lease *l, char *out, size_t out_len)
{
	size_t len = 0;
	if (out_len == 0)
		return -1;
	out[0] = '\0';
	for (uint64_t o = l->floor + 1; o < l->next; o++) {
		if (slot(l, o)->state != HD_LEASE_ACKED)
			continue;
		uint64_t end = o;
		while (end + 1 < l->next && slot(l, end + 1)->state == HD_LEASE_ACKED)
			end++;
		int w = end == o ? snprintf(out + len, out_len - len, "%s%" PRIu64, len ? "," : "",
					    o - l->floor)
				 : snprintf(out + len, out_len - len, "%s%" PRIu64 "-%" PRIu64,
					    len ? "," : "", o - l->floor, end - l->floor);
		if (w < 0 || (size_t)w >= out_len - len) {
			out[0] = '\0';
			return -1;
		}
		len += (size_t)w;
		o = end;
	}
	return (int)len;
}

/* Parses a decimal number >= 1 at *p, advancing it. */
static bool parse_num(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return v >= 1;
}

int hd_lease_restore(struct hd_lease *l, uint64_t floor, const char *enc)
{
	const char *p = enc;
	uint64_t prev = 0;

	hd_lease_fini(l);
	hd_lease_init(l, floor, l->cap);
	while (*p) {
		uint64_t a, b;
		if (prev && *p++ != ',')
			goto bad;
		if (!parse_num(&p, &a))
			goto bad;
		b = a;
		if (*p == '-') {
			p++;
			if (!parse_num(&p, &b) || b < a)
				goto bad;
		}
		if (a <= prev)
			goto bad;
		if (b > l->cap || floor + b < floor) {
			hd_lease_fini(l);
			hd_lease_init(l, floor, l->cap);
			return HD_ELIMIT;
		}
		extend(l, floor + a - 1, HD_LEASE_READY);
		extend(l, floor + b, HD_LEASE_ACKED);
		prev = b;
	}
	advance(l);
	return 0;
bad:
	hd_lease_fini(l);
	hd_lease_init(l, floor, l->cap);
	return HD_EINVAL;
}
