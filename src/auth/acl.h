/*
 * acl — who may subscribe to, publish to, read the history of and see the
 * presence of a topic: the one permission check every edge calls.
 * Layer: auth. Pure (a function of its arguments); any thread. The
 * WebSocket edge calls it for each command, the HTTP edges for reads,
 * Server-Sent Events and long-polls made with a client token (or none).
 * Requests made with an API key are decided by the key's scopes
 * (auth/keys.h) and do not come here.
 *
 * Rules, in order:
 *   1. user:{id} belongs to the user id alone, for every operation; no
 *      namespace option or token claim widens it.
 *   2. The namespace option of the operation (config.h, struct hd_ns_opts):
 *        subscribe = anonymous      every client, even without a token
 *                  | authenticated  a client with a user (a token's sub)
 *                  | token          the connection token's `channels` claim
 *                                   lists the topic, or a subscription
 *                                   token for it was presented
 *        publish   = the same three, or none (only backends, with an API key)
 *        history-access, presence-access
 *                  = subscribe      whoever the subscribe rule allows
 *                  | subscribed     only a connection subscribed to the topic
 *                  | none           no client
 * A refusal is HD_EUNAUTH when the subject is anonymous and a user would
 * be let in (authenticating could help: HTTP 401), else HD_EFORBIDDEN.
 */
#ifndef HD_AUTH_ACL_H
#define HD_AUTH_ACL_H

#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>

enum hd_acl_op { HD_ACL_SUBSCRIBE, HD_ACL_PUBLISH, HD_ACL_HISTORY, HD_ACL_PRESENCE };

/* Who asks. Every pointer is borrowed for the call. */
struct hd_acl_subject {
	const char *user;              /* "" or NULL = anonymous */
	char *const *channels;         /* the connection token's channels claim */
	size_t nchannels;
	const char *sub_channel;       /* a verified subscription token's channel; NULL = none */
	bool subscribed;               /* the connection follows the topic now */
};

/* Returns 0 when who may do op on topic under ns (the topic's namespace
 * options), else HD_EUNAUTH or HD_EFORBIDDEN (see above). */
int hd_acl_check(const struct hd_ns_opts *ns, const char *topic, enum hd_acl_op op,
		 const struct hd_acl_subject *who);

/* Whether ns's subscribe rule lets anonymous clients in (a public topic:
 * GET /v1/topics lists only those to callers who are not admins). */
bool hd_acl_public(const struct hd_ns_opts *ns, const char *topic);

#endif
