/*
 * access — who is calling an HTTP route, and whether they may: the check
 * the REST, Server-Sent Events and long-poll edges share.
 * Layer: edge (a helper of the HTTP edges, not an edge itself: it has no
 * route). Loop thread. The decisions are made by auth/keys.h (API keys and
 * their scopes) and auth/acl.h (namespace rules for client tokens); this
 * file reads the credentials off a request and answers refusals.
 *
 * Credentials:
 *   Authorization: Bearer <API key>  or  X-API-Key: <API key>
 *   Authorization: Bearer <JWT>      or  ?token=<JWT>  (client tokens, for
 *                                    EventSource, which cannot set headers)
 * A bearer value with a '.' is a JWT (API keys have none). An API key is
 * never taken from the URL, where it would end up in access logs.
 *
 * Development mode: when no API key is configured, API keys are ignored
 * and a request without credentials may do everything, as before keys
 * existed; only a request that carries a client token is held to the
 * namespace rules. Once a key is configured every publish, read and admin
 * call needs a key with the right scope; reads may instead carry a client
 * token (then the namespace rules decide, auth/acl.h).
 */
#ifndef HD_EDGE_ACCESS_H
#define HD_EDGE_ACCESS_H

#include "auth/acl.h"
#include "auth/jwt.h"
#include "auth/keys.h"
#include "http/server.h"
#include "hub/hub.h"

struct hd_access {
	const struct hd_keys *keys;    /* borrowed; NULL or empty: development mode */
	const struct hd_jwt_keys *jwt; /* borrowed; NULL: no client tokens accepted */
	struct hd_hub *hub;            /* borrowed: namespace options */
};

/* The credentials of one request. */
struct hd_access_id {
	const struct hd_key *key;      /* a valid API key (borrowed from the store); NULL = none */
	bool token;                    /* a client token was presented and verified */
	struct hd_jwt_claims claims;   /* its claims (sub "" = anonymous) */
	int64_t expires_ms;            /* the token's exp in Unix ms; 0 = none */
};

/*
 * Reads and verifies req's credentials into id (zeroed first). Returns 0
 * (also when none was presented), or HD_EUNAUTH / HD_EEXPIRED with err
 * saying why: an unknown or expired API key, a bad or expired token.
 * id must be finished with hd_access_id_fini in every case.
 */
int hd_access_identify(const struct hd_access *a, const struct hd_http_request *req,
		       struct hd_access_id *id, struct hd_error *err);
void hd_access_id_fini(struct hd_access_id *id);

/*
 * What a stream or held request keeps of the credential that opened it,
 * so that a reload of the API keys (SIGHUP) can end it when that key was
 * revoked, like an expiry does.
 */
struct hd_access_cred {
	/* When the credential stops being valid, Unix ms (0 = never): the API
	 * key's expiry when a key was presented (the key decides, a token
	 * beside it is not used), else the token's exp. What it holds open
	 * must end then. */
	int64_t expires_ms;
	bool key;                       /* an API key granted access (not a token) */
	char name[HD_KEY_NAME_MAX + 1]; /* that key's name and secret's hash */
	uint8_t hash[HD_KEY_HASH_LEN];
};

void hd_access_cred_of(const struct hd_access_id *id, struct hd_access_cred *out);

/* The delay (ms) until what comes first: wait_ms from now, or c's expiry
 * (then *expiry is set; a passed expiry gives 0). For the timer of a
 * stream or held request. */
uint64_t hd_access_cred_clip(const struct hd_access_cred *c, uint64_t wait_ms, bool *expiry);

/*
 * After the keys changed: 0 when c still grants reading topic (a token's
 * credential, development mode, or the same key — name and secret — still
 * configured with a read scope for topic and not expired at now_ms), with
 * c->expires_ms set to that key's expiry as configured now; HD_EUNAUTH
 * when the key was removed, its secret replaced, its read scope taken
 * away, or it expired.
 */
int hd_access_recheck(const struct hd_access *a, struct hd_access_cred *c, const char *topic,
		      int64_t now_ms);

/* Whether API keys are configured (not development mode). */
bool hd_access_keys_on(const struct hd_access *a);

/* A route guarded by an API key scope (publish to topic, metrics, admin):
 * 0, or HD_EUNAUTH (no key) / HD_EFORBIDDEN (outside its scopes) with err.
 * Development mode: always 0. */
int hd_access_key(const struct hd_access *a, const struct hd_access_id *id,
		  enum hd_key_action action, const char *topic, struct hd_error *err);

/* A read of topic (events, long-poll, SSE, topic info): a key with read
 * scope may; a client token is held to the namespace subscribe rule for
 * its user; a caller with neither may only in development mode.
 * 0, HD_EUNAUTH or HD_EFORBIDDEN with err. */
int hd_access_read(const struct hd_access *a, const struct hd_access_id *id, const char *topic,
		   struct hd_error *err);

/* What belongs to user (their cursors): a client token whose sub is user
 * may, and an API key with scope `action` (any topic); development mode:
 * a caller without a token. 0, HD_EUNAUTH or HD_EFORBIDDEN with err. */
int hd_access_user(const struct hd_access *a, const struct hd_access_id *id, const char *user,
		   enum hd_key_action action, struct hd_error *err);
/* Whether id holds an admin key, or is a caller without credentials in
 * development mode (sees private topics in the list). */
bool hd_access_admin(const struct hd_access *a, const struct hd_access_id *id);

/* Answers a refusal: 401 with WWW-Authenticate: Bearer (HD_EUNAUTH,
 * HD_EEXPIRED) or 403 (HD_EFORBIDDEN), with err's message. */
void hd_access_deny(struct hd_http_request *req, const struct hd_error *err);

#endif
