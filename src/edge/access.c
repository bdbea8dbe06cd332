/* access — see access.h. */
#include "edge/access.h"
#include "core/buf.h"
#include "core/clock.h"
#include "http/query.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool hd_access_keys_on(const struct hd_access *a)
{
	return hd_keys_count(a->keys) > 0;
}

static int verify_token(const struct hd_access *a, const char *tok, size_t len,
			struct hd_access_id *id, struct hd_error *err)
{
	int rc = hd_jwt_verify(a->jwt, tok, len, hd_now_ms() / 1000, &id->claims, err);
	if (rc == HD_EEXPIRED)
		return hd_error_set(err, HD_EEXPIRED, "the token has expired");
	if (rc)
		return rc;
	if (strlen(id->claims.sub) > HD_USER_ID_MAX || strchr(id->claims.sub, ':'))
		return hd_error_set(err, HD_EUNAUTH, "invalid token: bad sub");
	id->token = true;
	id->expires_ms = id->claims.exp * 1000;
	return 0;
}

static int check_key(const struct hd_access *a, const char *secret, struct hd_access_id *id,
		     struct hd_error *err)
{
	if (!hd_access_keys_on(a))
		return 0; /* development mode: keys are ignored */
	const struct hd_key *k = NULL;
	int rc = hd_keys_find(a->keys, secret, strlen(secret), hd_now_ms(), &k);
	if (rc == HD_EEXPIRED)
		return hd_error_set(err, HD_EUNAUTH, "the API key '%s' has expired", k->name);
	if (rc)
		return hd_error_set(err, HD_EUNAUTH, "unknown API key");
	id->key = k;
	return 0;
}

static int64_t expires_of(const struct hd_access_id *id)
{
	if (id->key)
		return id->key->expires_ms;
	return id->token ? id->expires_ms : 0;
}

void hd_access_cred_of(const struct hd_access_id *id, struct hd_access_cred *out)
{
	memset(out, 0, sizeof(*out));
	out->expires_ms = expires_of(id);
	if (!id->key)
		return;
	out->key = true;
	memcpy(out->name, id->key->name, sizeof(out->name));
	memcpy(out->hash, id->key->hash, sizeof(out->hash));
}

uint64_t hd_access_cred_clip(const struct hd_access_cred *c, uint64_t wait_ms, bool *expiry)
{
	*expiry = false;
	if (!c->expires_ms)
		return wait_ms;
	int64_t left = c->expires_ms - hd_now_ms();
	if (left >= 0 && (uint64_t)left >= wait_ms)
		return wait_ms;
	*expiry = true;
	return left > 0 ? (uint64_t)left : 0;
}

int hd_access_recheck(const struct hd_access *a, struct hd_access_cred *c, const char *topic,
		      int64_t now_ms)
{
	if (!c->key || !hd_access_keys_on(a))
		return 0;
	for (size_t i = 0, n = hd_keys_count(a->keys); i < n; i++) {
		const struct hd_key *k = hd_keys_at(a->keys, i);
		if (strcmp(k->name, c->name) != 0)
			continue;
		/* Hashes are public (the keys file holds them): no need for a
		 * constant-time compare. */
		if (memcmp(k->hash, c->hash, sizeof(c->hash)) != 0 ||
		    !hd_keys_allows(k, HD_KEY_READ, topic) || (k->expires_ms && k->expires_ms <= now_ms))
			return HD_EUNAUTH;
		c->expires_ms = k->expires_ms;
		return 0;
	}
	return HD_EUNAUTH;
}

int hd_access_identify(const struct hd_access *a, const struct hd_http_request *req,
		       struct hd_access_id *id, struct hd_error *err)
{
	memset(id, 0, sizeof(*id));
	const char *auth = hd_http_header_get(req, "authorization");
	const char *xkey = hd_http_header_get(req, "x-api-key");
	int rc;

	if (auth) {
		if (strncasecmp(auth, "Bearer ", 7) != 0)
			return hd_error_set(err, HD_EUNAUTH, "Authorization must be 'Bearer <key or token>'");
		const char *v = auth + 7;
		while (*v == ' ')
			v++;
		if (!*v)
			return hd_error_set(err, HD_EUNAUTH, "empty bearer credential");
		if (strchr(v, '.'))
			return verify_token(a, v, strlen(v), id, err);
		if ((rc = check_key(a, v, id, err)))
			return rc;
	}
	if (xkey && !id->key) {
		if ((rc = check_key(a, xkey, id, err)))
			return rc;
	}
	if (!auth) {
		char tok[HD_JWT_TOKEN_MAX + 1];
		long n = hd_query_get(req->query, "token", tok, sizeof(tok));
		if (n == -2 || n == 0)
			return hd_error_set(err, HD_EUNAUTH, "query parameter 'token' is not a valid token");
		if (n > 0)
			return verify_token(a, tok, (size_t)n, id, err);
	}
	return 0;
}

void hd_access_id_fini(struct hd_access_id *id)
{
	hd_jwt_claims_fini(&id->claims);
	id->key = NULL;
	id->token = false;
}

int hd_access_key(const struct hd_access *a, const struct hd_access_id *id,
		  enum hd_key_action action, const char *topic, struct hd_error *err)
{
	static const char *what[] = {"publish", "read", "metrics", "admin"};
	if (!hd_access_keys_on(a))
		return 0;
	if (!id->key)
		return hd_error_set(err, HD_EUNAUTH, "an API key is required (Authorization: Bearer <key>)");
	if (!hd_keys_allows(id->key, action, topic)) {
		if (action == HD_KEY_PUBLISH)
			return hd_error_set(err, HD_EFORBIDDEN, "the key '%s' may not publish to '%s'",
					    id->key->name, topic ? topic : "");
		return hd_error_set(err, HD_EFORBIDDEN, "the key '%s' has no %s scope", id->key->name,
				    what[action]);
	}
	return 0;
}

int hd_access_read(const struct hd_access *a, const struct hd_access_id *id, const char *topic,
		   struct hd_error *err)
{
	if (id->key) {
		if (hd_keys_allows(id->key, HD_KEY_READ, topic))
			return 0;
		return hd_error_set(err, HD_EFORBIDDEN, "the key '%s' has no read scope", id->key->name);
	}
	if (!id->token) {
		if (!hd_access_keys_on(a))
			return 0; /* development mode: the caller is the backend */
		return hd_error_set(err, HD_EUNAUTH, "an API key or a client token is required");
	}
	struct hd_acl_subject who = {
		.user = id->claims.sub,
		.channels = id->claims.channels,
		.nchannels = id->claims.nchannels,
		.sub_channel = id->claims.channel,
	};
	int rc = hd_acl_check(hd_hub_ns(a->hub, topic), topic, HD_ACL_SUBSCRIBE, &who);
	if (rc == HD_EUNAUTH)
		return hd_error_set(err, rc, "'%s' needs a client token (Authorization: Bearer or ?token=)",
				    topic);
	if (rc)
		return hd_error_set(err, rc, "this token may not read '%s'", topic);
	return 0;
}

int hd_access_user(const struct hd_access *a, const struct hd_access_id *id, const char *user,
		   enum hd_key_action action, struct hd_error *err)
{
	if (id->token && !id->key) {
		if (id->claims.sub[0] && strcmp(id->claims.sub, user) == 0)
			return 0;
		return hd_error_set(err, HD_EFORBIDDEN,
				    "a client token may use only the cursors of its own user (sub)");
	}
	return hd_access_key(a, id, action, NULL, err);
}

bool hd_access_admin(const struct hd_access *a, const struct hd_access_id *id)
{
	if (!hd_access_keys_on(a))
		return !id->token;
	return id->key && hd_keys_allows(id->key, HD_KEY_ADMIN, NULL);
}

void hd_access_deny(struct hd_http_request *req, const struct hd_error *err)
{
	struct hd_buf b;
	const char *msg = err->msg[0] ? err->msg : hd_err_message(err->code);
	bool unauth = err->code == HD_EUNAUTH || err->code == HD_EEXPIRED;

	hd_buf_init(&b, 1024);
	hd_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", hd_err_slug(err->code));
	hd_buf_json_escape(&b, msg, strlen(msg));
	hd_buf_puts(&b, "\"}}");
	hd_http_respond(req, hd_err_http_status(err->code), HD_HTTP_JSON_TYPE,
			unauth ? (err->code == HD_EEXPIRED
					  ? "WWW-Authenticate: Bearer error=\"invalid_token\", "
					    "error_description=\"expired\"\r\n"
					  : "WWW-Authenticate: Bearer\r\n")
			       : NULL,
			b.data, b.len);
	hd_buf_fini(&b);
}
