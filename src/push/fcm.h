/*
 * fcm — the Firebase Cloud Messaging HTTP v1 provider: an OAuth 2.0 access
 * token from the service account, and POST /v1/projects/{project}/messages:send.
 * Layer: push. Loop thread. Callers: push/push.c (from
 * --push-fcm-credentials-file and --push-fcm-url), tests.
 *
 * Credentials: the service-account JSON file Firebase hands out; herald
 * reads client_email, private_key (PKCS#8 RSA), token_uri and project_id.
 * The access token comes from the JWT-bearer grant (RFC 7523 §2.1): an
 * RS256 JWS with claims {iss: client_email, scope:
 * https://www.googleapis.com/auth/firebase.messaging, aud: token_uri, iat,
 * exp: iat + 3600}, posted form-encoded to token_uri with
 * grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer. The answer's
 * access_token is used until 80% of expires_in has passed; then one renewal
 * runs while sends keep using the old token until it expires. Sends that
 * find no usable token wait for the one renewal in flight (at most
 * max_inflight of them, at most the request timeout). A 401 answer drops
 * the token, renews it and sends once more; a second 401 is an AUTH
 * verdict with an alarm.
 *
 * The message: the caller's JSON object gets "token", its "data" values
 * become strings (FCM requires strings), and android.priority (high for an
 * alert unless low urgency, else normal), android.ttl ("<seconds>s" until
 * the expiration) and android.collapse_key unless the caller set them.
 */
#ifndef HD_PUSH_FCM_H
#define HD_PUSH_FCM_H

#include "core/err.h"
#include "push/provider.h"

#include <uv.h>

#define HD_FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define HD_FCM_GRANT_TYPE "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define HD_FCM_HOST "https://fcm.googleapis.com"
#define HD_FCM_ASSERTION_LIFE_S 3600
#define HD_FCM_ACCESS_TOKEN_MAX 4096   /* bytes of an access token */
#define HD_FCM_DEVICE_TOKEN_MAX 4096

struct hd_fcm_opts {
	struct hd_push_provider_opts base; /* base.url overrides the send host (--push-fcm-url) */
	const char *credentials_file;  /* borrowed during new */
};

/*
 * Builds the provider. Returns 0 with *out owned (out->ops->free), or
 * HD_ECONFIG with err naming the file and what is wrong (unreadable, not
 * JSON, a member missing, a private key that is not RSA >= 2048 bits, a
 * token_uri or URL that is not https://).
 */
int hd_fcm_new(uv_loop_t *loop, const struct hd_fcm_opts *o, struct hd_push_provider **out,
	       struct hd_error *err);

#endif
