/*
 * group_waiters — the held fetches of one pull consumer group: a FIFO of
 * fetches (long polls) waiting for events, each with a timer for the end of
 * its wait, served one at a time by the group that owns the queue.
 * Layer: groups; loop thread. Owners: groups/groups.c (a group of one topic) and
 * groups/group_patterns.c (a group over a topic pattern); the owner decides
 * how a waiter is served (its ops), the queue decides when.
 *
 * When. A waiter is served when it reaches the front while the group is not
 * `busy` (the owner sets busy while a fetch's reads run) and not starved (a
 * fetch found nothing to hand out: nobody is tried again before a wake-up).
 * hd_group_waiters_wake ends starvation: the owner calls it when something
 * changed (an event committed, an ack or nack, a new fetch); the queue's
 * `due` timer calls it at the next lease end the owner arms
 * (hd_group_waiters_due_at) and on the next loop turn after a watched event
 * (hd_group_waiters_wake_soon). A waiter whose wait ends while it is in the
 * queue is answered empty (with serve_before_end, not while a fetch runs or
 * the owner holds). Serving may complete inside itself (a read
 * answered from memory): the queue loops instead of recursing.
 *
 * Memory: a waiter is freed in its timer's close callback, after it was
 * answered; the queue lives inside the owner, which frees it after
 * hd_group_waiters_close's callback. No cap of its own: each waiter is one
 * HTTP request, bounded by the server's connection limits.
 */
#ifndef HD_GROUP_WAITERS_H
#define HD_GROUP_WAITERS_H

#include "core/buf.h"
#include "auth/keys.h"
#include "http/server.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct hd_group_waiters;

/*
 * What a held fetch keeps of the credential that allowed it, as plain data
 * the edge fills in (edge/group_http.c, from edge/access.h's credential):
 * groups read only the expiry; the key's identity is for the edge's check
 * after a reload of the API keys (struct hd_group_recheck).
 */
struct hd_group_cred {
	int64_t expires_ms;                 /* Unix ms; 0 = never */
	bool key;                           /* an API key allowed it (a reload may revoke it) */
	char key_name[HD_KEY_NAME_MAX + 1]; /* that key's name and secret's hash */
	uint8_t key_hash[HD_KEY_HASH_LEN];
};

/* The edge's check after the API keys were reloaded: 0 while c still
 * grants reading topic (c->expires_ms set to the key's expiry as configured
 * now), else HD_EUNAUTH. arg is the edge's. */
struct hd_group_recheck {
	int (*check)(void *arg, struct hd_group_cred *c, const char *topic, int64_t now_ms);
	void *arg;
};

/* One held fetch. */
struct hd_group_waiter {
	struct hd_http_request *req;  /* NULL once answered */
	struct hd_group_waiters *q;
	uint32_t max;                 /* events it takes at most */
	int64_t until_ms;             /* the end of its wait (hd_now_ms) */
	/* Private: */
	struct hd_group_cred cred;    /* what allowed the fetch */
	bool expires;                 /* the timer is the credential's expiry */
	uv_timer_t timer;
	struct hd_group_waiter *next;
};

/* What the owner's serve did with the waiter it was handed. */
enum hd_group_serve {
	HD_GROUP_SERVED,  /* taken: answered, or a fetch started that answers it */
	HD_GROUP_STARVED, /* nothing to hand out: back to the front; nobody is
			     served before hd_group_waiters_wake */
	HD_GROUP_HELD,    /* not yet: back to the front until the next try */
};

/* The owner's side; each gets the owner pointer given to init. */
struct hd_group_waiters_ops {
	/* Serves w, which is off the queue (set q->busy while a fetch runs). */
	enum hd_group_serve (*serve)(void *owner, struct hd_group_waiter *w);
	/* Answers w with no events (hd_group_waiters_answer). */
	void (*answer_empty)(void *owner, struct hd_group_waiter *w);
	/* After every try: arm the wake-ups of the waiters that stay. */
	void (*arm)(void *owner);
	/* A waiter left by its timer: the owner may be freed now. */
	void (*release)(void *owner);
};

struct hd_group_waiters {
	struct hd_group_waiter *head; /* FIFO; NULL when nobody waits */
	bool busy;                    /* the owner's: a fetch runs */
	/* The owner's: a waiter whose wait ends while a fetch runs, or while
	 * the owner holds the front waiter (HD_GROUP_HELD), stays (a fetch that
	 * takes round trips, e.g. shared leases, would otherwise answer wait=0
	 * fetches empty while events are left); it is answered when served,
	 * empty if nothing is left. */
	bool serve_before_end;
	/* Private: */
	struct hd_group_waiter **tail;
	bool starved, trying, try_again;
	bool held;                    /* the last serve answered HD_GROUP_HELD */
	uv_loop_t *loop;
	uv_timer_t due;               /* data = the queue */
	bool due_open, closed;
	const struct hd_group_waiters_ops *ops; /* borrowed */
	void *owner;
};

/* An empty queue; its timer is opened when first needed. Borrows loop and
 * ops for its life. */
void hd_group_waiters_init(struct hd_group_waiters *q, uv_loop_t *loop,
			   const struct hd_group_waiters_ops *ops, void *owner);

/* Holds req (borrowed until answered) for up to max events and wait_ms at
 * the back of the queue, then wakes it. cred (copied; NULL: none) is the
 * credential that allowed the fetch: a waiter still queued at its expiry
 * is answered 401 token_expired. */
void hd_group_waiters_add(struct hd_group_waiters *q, struct hd_http_request *req, uint32_t max,
			  uint64_t wait_ms, const struct hd_group_cred *cred);
/* After the API keys were reloaded: every queued waiter whose key is gone,
 * has a new secret, lost its read scope (for topic, the group's topic or
 * pattern) or expired is answered 401; the others follow their key's
 * expiry as configured now. For a group that is not deleted (the owner's
 * release would do nothing). */
void hd_group_waiters_recheck(struct hd_group_waiters *q, const struct hd_group_recheck *rc,
			      const char *topic);

/* Something changed: ends starvation and tries the waiters. */
void hd_group_waiters_wake(struct hd_group_waiters *q);
/* Serves the waiters in order while the owner is idle and they are not
 * starved, then calls ops->arm. */
void hd_group_waiters_try(struct hd_group_waiters *q);
/* Wakes the queue on the next loop turn (an event was committed: the whole
 * batch is readable then). */
void hd_group_waiters_wake_soon(struct hd_group_waiters *q);
/* Wakes the queue at due (hd_now_ms time; INT64_MIN: at once, INT64_MAX:
 * never), unless a sooner wake-up is set. */
void hd_group_waiters_due_at(struct hd_group_waiters *q, int64_t due);

/* Puts w (being served, not answered) back at the front, and nobody is
 * served before the next wake: its fetch found nothing after all. */
void hd_group_waiters_starve(struct hd_group_waiters *q, struct hd_group_waiter *w);

/* Answers w (being served, or handed to answer_empty) with 200 and body
 * (taken, JSON) and ends it. */
void hd_group_waiters_answer(struct hd_group_waiter *w, struct hd_buf *body);
/* Answers w with the error code (HD_E*) and message (NULL: the code's)
 * and ends it. */
void hd_group_waiters_fail(struct hd_group_waiter *w, int code, const char *message);

/* Answers every waiter empty (in order) and closes the timer: shutdown.
 * Later adds are the owner's to refuse. */
void hd_group_waiters_stop(struct hd_group_waiters *q);
/* Closes the timer; returns true when cb will run (with the timer handle,
 * whose data is q): free the owner there; false when it was never opened
 * or already closed: free it now. The queue must be empty. */
bool hd_group_waiters_close(struct hd_group_waiters *q, uv_close_cb cb);

#endif
