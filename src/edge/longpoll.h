/*
 * longpoll — reads that wait: GET /v1/topics/{topic}/events?after=N&wait=S
 * answers at once when events after N exist; otherwise the request is held
 * until an event is committed to the topic or S seconds pass.
 * Layer: edge. Called by the api edge on the loop thread.
 *
 * A waiter is a hub watch plus a timer. When an event arrives every waiter
 * of the topic is woken by that one publish; each re-reads on the next loop
 * turn (after the whole committed batch is in the ring), so each gets up to
 * its `limit` events at once, not one at a time. On timeout the answer is an
 * empty page whose `next` is the caller's `after`.
 */
#ifndef HD_LONGPOLL_H
#define HD_LONGPOLL_H

#include "edge/access.h"
#include "http/server.h"
#include "hub/hub.h"

#include <uv.h>

#define HD_LONGPOLL_WAIT_MAX_S 60

/* Sends the page of r as the answer to req (the api's read responder);
 * borrows r. */
typedef void (*hd_longpoll_respond_fn)(struct hd_http_request *req, struct hd_read *r);

struct hd_longpoll;

/* Returns owned. Borrows loop and hub for its life. */
struct hd_longpoll *hd_longpoll_new(uv_loop_t *loop, struct hd_hub *hub, hd_longpoll_respond_fn respond);

/*
 * Holds req until an event after `after` is committed to topic or wait_ms
 * passes. `empty` is the read that found nothing (its epoch and last are
 * reused for the timeout answer; borrowed for the call). cred (copied) is
 * the credential that allowed the read: a request still held at its
 * expiry is answered 401 token_expired, and one whose API key a reload
 * revoked is answered 401 unauthorized (hd_longpoll_recheck). Returns 0,
 * or HD_ELIMIT when the hub cannot watch more topics (then req is
 * untouched).
 */
int hd_longpoll_wait(struct hd_longpoll *lp, struct hd_http_request *req, const char *topic,
		     uint64_t after, uint32_t limit, uint32_t wait_ms,
		     const struct hd_access_cred *cred, const struct hd_read *empty);

/* After the API keys were reloaded: answers 401 every held request whose
 * key is gone, has a new secret, lost its read scope or expired; the
 * others follow their key's expiry as configured now. */
void hd_longpoll_recheck(struct hd_longpoll *lp, const struct hd_access *ac);

/* Number of requests waiting. */
size_t hd_longpoll_waiting(const struct hd_longpoll *lp);

/* Answers every waiting request now with what it has (for shutdown). */
void hd_longpoll_release_all(struct hd_longpoll *lp);

/* Frees lp; call after release_all once the loop has run the closes. */
void hd_longpoll_free(struct hd_longpoll *lp);

#endif
