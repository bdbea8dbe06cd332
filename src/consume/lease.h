/*
 * lease — the delivery state of one consumer over one topic (a pull group's
 * part, a webhook subscription's stream): which offsets are acknowledged,
 * which are leased to a consumer until a deadline, which wait to be
 * (re)delivered, and how often each was delivered.
 * Layer: consume (pure: no I/O, no clock; times are passed in).
 * Single-threaded; pull groups (src/groups/) and webhooks (src/webhook/)
 * call it on the loop thread.
 *
 * The model. Every offset <= floor is acknowledged (the group's position).
 * Offsets in the window (floor, next) were handed out at least once (or
 * skipped); each is in one of three states:
 *   LEASED  handed to a consumer until `deadline`; after it, it is READY;
 *   READY   waits to be handed out again, not before `deadline` (a nack
 *           with a delay sets it; 0 = at once);
 *   ACKED   acknowledged above the floor (or an offset that does not exist:
 *           removed by retention or TTL, skipped by hd_lease_add).
 * Offsets >= next were never handed out. The floor advances over every
 * ACKED offset right above it, so the window always starts with a LEASED or
 * READY offset (or is empty).
 *
 * The window holds at most `cap` offsets (next - floor - 1 <= cap): that is
 * the bound on leased and un-acked events per group; hd_lease_add past it
 * fails with HD_ELIMIT and the caller stops handing out new events until
 * acks move the floor. Memory grows with the window (doubling), up to cap
 * slots of 16 bytes.
 *
 * Durable form: floor plus the ACKED offsets above it, as text
 * (hd_lease_encode / hd_lease_restore): comma-separated ranges relative to
 * the floor, "a" or "a-b" with 1 <= a <= b, ascending, e.g. "2-4,7" for
 * floor+2 .. floor+4 and floor+7. Its length is bounded by the window cap.
 * Leases and delivery counts are not part of it: after a restart every
 * offset above the floor that is not ACKED is delivered again with its
 * count starting from 0.
 */
#ifndef HD_LEASE_H
#define HD_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_LEASE_CAP_MAX 100000
/* The longest encoding a window of cap offsets can need. */
#define HD_LEASE_ENCODED_MAX(cap) ((size_t)(cap) * 22 + 1)

enum hd_lease_state { HD_LEASE_READY = 0, HD_LEASE_LEASED = 1, HD_LEASE_ACKED = 2 };

struct hd_lease_slot {
	int64_t deadline;      /* LEASED: lease end; READY: not before */
	uint32_t deliveries;   /* how often handed out since load */
	uint8_t state;         /* enum hd_lease_state */
};

struct hd_lease {
	uint64_t floor;        /* every offset <= floor is acknowledged */
	uint64_t next;         /* first offset never handed out */
	size_t cap;            /* most offsets in the window */
	size_t leased;         /* offsets LEASED now */
	uint64_t redeliveries; /* hand-outs after the first, since load */
	struct hd_lease_slot *slots; /* owned; nslots, indexed by offset % nslots */
	size_t nslots;
};

/* An offset handed out by hd_lease_take_due. */
struct hd_lease_grant {
	uint64_t offset;
	uint32_t deliveries;   /* including this one */
};

/* Starts with every offset <= floor acknowledged, nothing handed out; cap is
 * 1 .. HD_LEASE_CAP_MAX. */
void hd_lease_init(struct hd_lease *l, uint64_t floor, size_t cap);
void hd_lease_fini(struct hd_lease *l);

/* Offsets in the window now. */
static inline size_t hd_lease_window(const struct hd_lease *l)
{
	return (size_t)(l->next - l->floor - 1);
}

/* Hands out up to max READY offsets whose deadline <= now, or LEASED ones
 * whose lease ended (deadline <= now), lowest first: each becomes LEASED
 * until lease_until, its deliveries count goes up (and redeliveries). Fills
 * out (room for max) and returns how many. */
size_t hd_lease_take_due(struct hd_lease *l, int64_t now, int64_t lease_until,
			 struct hd_lease_grant *out, size_t max);

/* Leases a new offset (>= next) until lease_until, first delivery: offsets
 * between next and it are marked ACKED (they do not exist). Returns 0, or
 * HD_ELIMIT if the window would pass cap, HD_EINVAL if offset < next. */
int hd_lease_add(struct hd_lease *l, uint64_t offset, int64_t lease_until);

/* Marks offsets next .. upto ACKED without handing them out (events that
 * turned out not to exist). No-op when upto < next. When every offset of
 * the window is acked the floor simply moves to upto. Returns 0, or
 * HD_ELIMIT when an un-acked offset keeps the window from reaching upto
 * within cap. */
int hd_lease_skip(struct hd_lease *l, uint64_t upto);

/* Acknowledges a LEASED or READY offset. Returns 0, or HD_ENOTFOUND if it is
 * not in the window or already ACKED. */
int hd_lease_ack(struct hd_lease *l, uint64_t offset);

/* Acknowledges every handed-out offset <= upto. Returns how many changed. */
size_t hd_lease_ack_upto(struct hd_lease *l, uint64_t upto);

/* Makes a LEASED offset READY again, not before not_before. Returns 0, or
 * HD_ENOTFOUND if it is not LEASED. */
int hd_lease_nack(struct hd_lease *l, uint64_t offset, int64_t not_before);

/* The state of an offset (offsets <= floor are ACKED, >= next READY). */
enum hd_lease_state hd_lease_state_of(const struct hd_lease *l, uint64_t offset);
/* Deliveries of an offset in the window (0 outside). */
uint32_t hd_lease_deliveries(const struct hd_lease *l, uint64_t offset);

/* The earliest deadline of a LEASED or delayed READY offset, or INT64_MAX
 * when none: when hd_lease_take_due would next have something. A READY
 * offset without delay gives INT64_MIN. */
int64_t hd_lease_next_due(const struct hd_lease *l);

/* Writes the ACKED offsets above the floor in the durable form into out
 * (out_len >= HD_LEASE_ENCODED_MAX(cap) is always enough). Returns the
 * length, or -1 if it did not fit. */
int hd_lease_encode(const struct hd_lease *l, char *out, size_t out_len);

/* Loads floor and the encoded ACKED offsets into an initialised, empty
 * lease: next becomes one past the highest ACKED offset, and the offsets in
 * between are READY. Returns 0, or HD_EINVAL for text that is not the
 * durable form, HD_ELIMIT when it reaches past cap (the lease is then
 * left empty at floor). */
int hd_lease_restore(struct hd_lease *l, uint64_t floor, const char *enc);

#endif
