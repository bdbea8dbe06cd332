/*
 * devices — the durable registry of push devices, per user: which phones
 * and browsers a user registered (APNs, FCM, Web Push), the topics each
 * follows, and how the last pushes to it went.
 * Layer: push (a consumer's state; it talks to the hub's record ops only).
 * Callers: edge/push_http.c (the REST routes, loop thread), the push
 * delivery (looks devices up, re-reads a user's: hd_devices_refresh,
 * marks outcomes), main.c (life),
 * tests (hd_devices_parse and the record form are pure, any thread).
 *
 * Durable form: one record of kind HD_DEVICES_RECORD_KIND per device, key
 * "<user id>\n<device id>" (a user id never holds '\n', so one user's
 * devices list by the prefix "<user id>\n"), value the JSON object
 *     {"platform":"apns","token":"<hex>","environment":"production",
 *      "topics":["rides:981"],"state":"active","invalid_reason":"",
 *      "last_success":0,"last_failure":{"time":0,"status":0,"reason":""},
 *      "created":<ms>,"updated":<ms>}
 * where fcm has "token" only, webpush has "subscription":
 * {"endpoint":"https://…","keys":{"p256dh":"…","auth":"…"}} instead of
 * "token", and times are Unix milliseconds (0 = never). Every record is
 * read at start (hd_devices_start, HD_DEVICES_LOAD_PAGE records a time);
 * until then the registry refuses changes with HD_EUNAVAIL. With an engine
 * shared by several nodes (redis) every record is read again every
 * HD_RELIST_MS (consume/relist.h, the same pages): a device registered, changed or
 * deleted on another node is known here at most that long (plus one
 * list's time) later (docs/cluster.md), or at once for one user whose
 * records a sender re-reads (hd_devices_refresh).
 *
 * In memory: every device, indexed by (user, device id), by token (the
 * APNs or FCM token, the Web Push endpoint: unique across users, so
 * registering a token for another user moves it and deletes the old
 * registration durably), by user and by topic (the followers).
 *
 * Limits: HD_DEVICE_* bound each field; opts.max_per_user devices per user
 * (--push-max-devices-per-user), opts.max_total devices in all
 * (--push-max-devices: the registry is in memory, about 0.6 KiB a device measured),
 * HD_DEVICE_TOPICS_MAX topics per device and HD_DEVICES_FOLLOWERS_MAX
 * devices per topic. A registration past one of them is refused with
 * HD_ELIMIT (429) and a message naming the limit.
 *
 * States: a device is "active" until the delivery marks it "invalid" (the
 * service said the token is dead); only a new registration (hd_devices_put)
 * makes it active again. Outcomes marked by the delivery are written
 * coalesced: at most once per HD_DEVICES_FLUSH_MS per device.
 */
#ifndef HD_PUSH_DEVICES_H
#define HD_PUSH_DEVICES_H

#include "core/err.h"
#include "hub/hub.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HD_DEVICES_RECORD_KIND "device"
#define HD_DEVICE_ID_MAX 64           /* 1-64 of [A-Za-z0-9._-] */
#define HD_DEVICE_APNS_TOKEN_MIN 16   /* hex digits, an even number */
#define HD_DEVICE_APNS_TOKEN_MAX 200
#define HD_DEVICE_FCM_TOKEN_MAX 1024  /* printable ASCII, no space */
#define HD_DEVICE_ENDPOINT_MAX 2048   /* bytes of a Web Push endpoint URL (HD_VAPID_URL_MAX) */
#define HD_DEVICE_TOKEN_MAX HD_DEVICE_ENDPOINT_MAX
#define HD_DEVICE_KEY_TEXT_MAX 128    /* base64url text of p256dh or auth */
#define HD_DEVICE_TOPICS_MAX 32
#define HD_DEVICE_REASON_MAX 128      /* bytes of an invalid_reason or failure reason */
#define HD_DEVICE_BODY_MAX 16384      /* bytes of a registration body */
#define HD_DEVICES_FOLLOWERS_MAX 100000
#define HD_DEVICES_LOAD_PAGE 500
#define HD_DEVICES_FLUSH_MS 1000
#define HD_DEVICES_MAX_DEFAULT 1000000
#define HD_DEVICES_REFRESH_MAX 32     /* per-user re-reads in flight (hd_devices_refresh) */
#define HD_DEVICES_REFRESH_QUEUE_MAX 4096 /* per-user re-reads waiting for one of those */
#define HD_DEVICES_SKEW_MS 1000       /* clocks of two nodes may differ by this much */

enum hd_device_platform { HD_DEVICE_APNS, HD_DEVICE_FCM, HD_DEVICE_WEBPUSH };
enum hd_device_state { HD_DEVICE_ACTIVE, HD_DEVICE_INVALID };
/* An APNs device's environment; NONE for the other platforms. */
enum hd_device_environment { HD_DEVICE_ENV_NONE, HD_DEVICE_ENV_PRODUCTION, HD_DEVICE_ENV_SANDBOX };

/* A push's outcome as the service answered it. */
struct hd_device_outcome {
	int64_t time_ms;                /* 0 = never */
	int status;                     /* the HTTP status */
	char *reason;                   /* owned, at most HD_DEVICE_REASON_MAX bytes; NULL = none */
};

/* What only a device that failed has: out of line, allocated on the first
 * failure (most devices never have one). */
struct hd_device_failure {
	struct hd_device_outcome last;  /* the last failure */
	char *invalid_reason;           /* owned, like a reason; NULL = none */
};

/* A device. The text that is often absent or long is out of line, so that
 * a registry of 100,000 devices stays within a few tens of MiB. */
struct hd_device {
	char *user;                     /* owned; NULL until registered */
	char id[HD_DEVICE_ID_MAX + 1];
	bool dirty;                     /* an outcome waits for the coalesced write */
	uint64_t seen_gen;              /* the last re-list that saw it (or a change here) */
	uint64_t rec_hash;              /* of the record value last read or written */
	uint64_t wseq;                  /* the registry's write count when this node last wrote it */
	enum hd_device_platform platform;
	char *token_key;                /* owned: "<platform digit>\n<token>", the token
					   index's key (the token is stored once) */
	char *token;                    /* APNs/FCM token or the Web Push endpoint;
					   borrowed: token_key + 2 */
	char *p256dh, *auth;            /* Web Push keys, base64url as given; owned; else NULL */
	char **topics;                  /* owned, each owned */
	size_t ntopics;
	enum hd_device_state state;
	enum hd_device_environment environment; /* APNs: production or sandbox; else NONE */
	int64_t last_success_ms;        /* 0 = never */
	struct hd_device_failure *failure; /* owned; NULL = never failed */
	int64_t created_ms, updated_ms;
};

/* What hd_devices_parse accepts. */
struct hd_devices_parse_opts {
	bool allow_private;             /* Web Push endpoints may be http:// on loopback */
	const char *apns_environment;   /* an APNs device without one: NULL = "production"
					   (--push-apns-environment) */
};

/*
 * Reads a registration body body[0, len): {"platform":"apns","token":"<hex>",
 * "environment":"production|sandbox","topics":[…]}, {"platform":"fcm",
 * "token":"…","topics":[…]} or {"platform":"webpush","subscription":
 * {"endpoint":"https://…","keys":{"p256dh":"…","auth":"…"}},"topics":[…]}.
 * Returns 0 with *out owned (hd_devices_device_free; user and id empty, state
 * active, no times), or HD_EINVAL/HD_ETOOBIG with err naming the member
 * that is wrong (an unknown member included). Pure; any thread.
 */
int hd_devices_parse(const char *body, size_t len, const struct hd_devices_parse_opts *o,
		     struct hd_device **out, struct hd_error *err);

/* Whether s[0, n) is a device id (1-HD_DEVICE_ID_MAX of [A-Za-z0-9._-]). */
bool hd_devices_id_ok(const char *s, size_t n);

/* The record value of dev (returns owned, free()). Pure. */
char *hd_devices_record(const struct hd_device *dev);
/* Reads a record value back; user and id are set from the key "<user>\n<id>".
 * Returns 0 with *out owned, or HD_EINVAL for a value or key this module
 * did not write. Pure. */
int hd_devices_record_parse(const char *key, const char *value, struct hd_device **out);

/* The answer's form of dev: times in RFC 3339 or null (returns owned). */
json_t *hd_devices_json(const struct hd_device *dev);

/* "production", "sandbox" or "" (NONE). */
const char *hd_devices_environment_name(enum hd_device_environment e);

/* The token's name in messages: "token" or "subscription endpoint". */
const char *hd_devices_platform_name(enum hd_device_platform p);

void hd_devices_device_free(struct hd_device *dev);

struct hd_devices_opts {
	size_t max_per_user;            /* 1..1000 (--push-max-devices-per-user) */
	size_t max_total;               /* (--push-max-devices) */
};

struct hd_devices;

/* Returns owned. Borrows loop and hub for its life; copies o. */
struct hd_devices *hd_devices_new(uv_loop_t *loop, struct hd_hub *hub,
				  const struct hd_devices_opts *o);
/* Starts loading the records (the engine must be set). */
void hd_devices_start(struct hd_devices *d);
/* Whether every record has been read. */
bool hd_devices_loaded(const struct hd_devices *d);
/* fn(arg) runs once, when the load ends (hd_devices_loaded turns true);
 * one callback, the last set wins (the device routes). Loop thread. */
void hd_devices_on_loaded(struct hd_devices *d, void (*fn)(void *arg), void *arg);
/* Writes the pending outcomes and stops the flush timer; before the engine stops. */
void hd_devices_stop(struct hd_devices *d);
/* After the engine has stopped (every record op has finished) and the
 * loop ran the timer's close. NULL is a no-op. */
void hd_devices_free(struct hd_devices *d);

/* done(arg, err) of a change: 0 once its records are durable, else why not. */
typedef void (*hd_devices_done_fn)(void *arg, int err);

/*
 * Registers dev (taken, on success and failure alike) as device id of
 * user: a new device, or a replacement of the stored one (created kept,
 * state active again). A token held by another registration (this user's
 * or another's) moves: that one is deleted. Memory changes now; done runs
 * once the records are durable. Returns 0 with *created set, or (done not
 * called) HD_EUNAVAIL (loading or stopping) or HD_ELIMIT (a cap, see
 * above), with err. Loop thread.
 */
int hd_devices_put(struct hd_devices *d, const char *user, const char *id, struct hd_device *dev,
		   bool *created, hd_devices_done_fn done, void *arg, struct hd_error *err);
/* Removes the device; done runs once durable. Returns 0, HD_ENOTFOUND or
 * HD_EUNAVAIL (done not called). Loop thread. */
int hd_devices_delete(struct hd_devices *d, const char *user, const char *id,
		      hd_devices_done_fn done, void *arg);

/* The device, or NULL. Returns borrowed, valid until the next change of the
 * registry (a put, delete or the loop running again). Loop thread. */
const struct hd_device *hd_devices_get(const struct hd_devices *d, const char *user,
				       const char *id);
/* user's devices in registration order into *out (borrowed, valid as for
 * hd_devices_get); returns their number. Loop thread. */
size_t hd_devices_of_user(const struct hd_devices *d, const char *user,
			  struct hd_device *const **out);
/* The devices that list topic (followers), as hd_devices_of_user. */
size_t hd_devices_followers(const struct hd_devices *d, const char *topic,
			    struct hd_device *const **out);
/* Devices registered in all. */
size_t hd_devices_count(const struct hd_devices *d);

/*
 * The fresh view of one user (several nodes; docs/cluster.md "The device
 * registry"). The re-list makes a device registered, changed or deleted on
 * another node known here up to ~2 s later; a sender that must not miss
 * it asks hd_devices_stale first and, if so, re-reads that user's records
 * (a LIST with prefix "<user>\n") with hd_devices_refresh before it picks
 * the user's devices: the records are merged into the registry (added,
 * changed, removed) and then done(arg, err) runs. Bounded:
 * HD_DEVICES_REFRESH_MAX re-reads in flight, HD_DEVICES_REFRESH_QUEUE_MAX
 * waiting; past that hd_devices_refresh refuses (logged, rate-limited) and
 * the caller uses the cached view, as it does on an engine error (err).
 */
typedef void (*hd_devices_refresh_fn)(void *arg, int err);

/* One re-read; embedded in its caller, which owns it; the module's fields. */
struct hd_devices_refresh {
	struct hd_devices *d;
	struct hd_devices_refresh *next; /* the waiting queue */
	struct hd_record_op op;
	char prefix[HD_RECORD_KEY_MAX + 1]; /* "<user>\n" */
	uint64_t start_seq, start_dels; /* the registry's write and delete counts at the read */
	hd_devices_refresh_fn done;
	void *arg;
};

/* Whether the view of a user here may be older than an event stored at
 * stored_ms (another node's clock): the engine is shared and the last
 * whole re-list (or the load) began before stored_ms + HD_DEVICES_SKEW_MS.
 * Always false with an engine of one node (local). Loop thread. */
bool hd_devices_stale(const struct hd_devices *d, int64_t stored_ms);
/* Starts re-reading user's records into r (which must stay valid until
 * done): 0 and done(arg, err) runs once, later (or before this returns
 * when the request could not be sent) (err 0: merged; else the cached
 * view stays; HD_EUNAVAIL when the registry stopped meanwhile), or,
 * done not called, HD_ELIMIT (the queue is full) or HD_EUNAVAIL (not
 * loaded, stopping). Loop thread. */
int hd_devices_refresh(struct hd_devices *d, struct hd_devices_refresh *r, const char *user,
		       hd_devices_refresh_fn done, void *arg);

/* Outcomes from the delivery, at now_ms; written coalesced. A device that
 * is not registered (deleted meanwhile) is ignored. Loop thread. */
void hd_devices_mark_success(struct hd_devices *d, const char *user, const char *id,
			     int64_t now_ms);
void hd_devices_mark_failure(struct hd_devices *d, const char *user, const char *id,
			     int64_t now_ms, int status, const char *reason);
/* The service said the token is dead: state invalid with reason (also the
 * last failure); it stays so until registered again. */
void hd_devices_mark_invalid(struct hd_devices *d, const char *user, const char *id,
			     int64_t now_ms, int status, const char *reason);

#endif
