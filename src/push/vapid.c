/*
 * vapid — RFC 8292 application server identification. Layer: push.
 * The key forms, the token and the cache are described in vapid.h.
 *
 * Order: the origin parser (pure text), the key and its loading, tokens,
 * the per-origin cache, key generation.
 */
#include "push/vapid.h"

#include "core/alloc.h"
#include "push/jws.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PORT_DIGITS_MAX 5

/* One origin's signed header value. */
struct entry {
	char origin[HD_VAPID_ORIGIN_MAX + 1];
	int64_t exp;
	char *header; /* owned: "vapid t=…, k=…" */
};

struct hd_vapid {
	EVP_PKEY *key;
	char public_key[HD_VAPID_PUBLIC_KEY_LEN + 1];
	char subject[HD_VAPID_SUBJECT_MAX + 1];
	struct entry cache[HD_VAPID_CACHE_MAX];
	size_t ncache;
};

/* ---- the origin of an endpoint URL ---- */

static bool host_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.';
}

static bool ipv6_char(unsigned char c)
{
	return isxdigit(c) || c == ':' || c == '.';
}

int hd_vapid_origin(const char *url, size_t len, char *out, size_t out_cap,
		    struct hd_error *err)
{
	const char *p, *end, *host, *host_end, *port = NULL;
	size_t scheme_len, host_len, port_len = 0;
	unsigned long port_num = 0;
	bool https;
	int n;

	if (out_cap > 0)
		out[0] = '\0';
	if (len > HD_VAPID_URL_MAX)
		return hd_error_set(err, HD_EINVAL, "the endpoint URL is longer than %d bytes",
				    HD_VAPID_URL_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
			return hd_error_set(err, HD_EINVAL,
					    "the endpoint URL has a space, control or non-ASCII "
					    "byte at %zu",
					    i + 1);
	p = memmem(url, len, "://", 3);
	if (!p)
		return hd_error_set(err, HD_EINVAL, "the endpoint URL has no \"scheme://\"");
	scheme_len = (size_t)(p - url);
	if (scheme_len == 5 && strncasecmp(url, "https", 5) == 0)
		https = true;
	else if (scheme_len == 4 && strncasecmp(url, "http", 4) == 0)
		https = false;
	else
		return hd_error_set(err, HD_EINVAL, "the endpoint URL's scheme must be https");
	host = p + 3;
	end = host;
	while (end < url + len && *end != '/' && *end != '?' && *end != '#')
		end++;
	if (memchr(host, '@', (size_t)(end - host)))
		return hd_error_set(err, HD_EINVAL,
				    "the endpoint URL must not carry userinfo (user@host)");
	if (host < end && *host == '[') {
		host_end = memchr(host, ']', (size_t)(end - host));
		if (!host_end || host_end == host + 1)
			return hd_error_set(err, HD_EINVAL,
					    "the endpoint URL's IPv6 literal is not closed by ']'");
		for (const char *c = host + 1; c < host_end; c++)
			if (!ipv6_char((unsigned char)*c))
				return hd_error_set(err, HD_EINVAL,
						    "the endpoint URL's IPv6 literal holds '%c'", *c);
		host_end++;
		if (host_end < end && *host_end != ':')
			return hd_error_set(err, HD_EINVAL,
					    "the endpoint URL has text after its IPv6 literal");
	} else {
		host_end = host;
		while (host_end < end && *host_end != ':') {
			if (!host_char((unsigned char)*host_end))
				return hd_error_set(err, HD_EINVAL,
						    "the endpoint URL's host holds '%c'", *host_end);
			host_end++;
		}
	}
	host_len = (size_t)(host_end - host);
	if (host_len == 0)
		return hd_error_set(err, HD_EINVAL, "the endpoint URL has no host");
	if (host_len > HD_VAPID_HOST_MAX)
		return hd_error_set(err, HD_EINVAL, "the endpoint URL's host is longer than %d bytes",
				    HD_VAPID_HOST_MAX);
	if (host_end < end) {
		port = host_end + 1;
		port_len = (size_t)(end - port);
		if (port_len == 0)
			return hd_error_set(err, HD_EINVAL, "the endpoint URL has an empty port");
		while (port_len > 1 && *port == '0') {
			port++;
			port_len--;
		}
		for (size_t i = 0; i < port_len; i++) {
			if (!isdigit((unsigned char)port[i]))
				return hd_error_set(err, HD_EINVAL,
						    "the endpoint URL's port is not a number");
			if (i < PORT_DIGITS_MAX)
				port_num = port_num * 10 + (unsigned long)(port[i] - '0');
		}
		if (port_len > PORT_DIGITS_MAX || port_num == 0 || port_num > 65535)
			return hd_error_set(err, HD_EINVAL,
					    "the endpoint URL's port must be 1 to 65535");
		if (port_num == (https ? 443UL : 80UL))
			port_num = 0;
	}
	n = port_num ? snprintf(out, out_cap, "%s://%.*s:%lu", https ? "https" : "http",
				(int)host_len, host, port_num)
		     : snprintf(out, out_cap, "%s://%.*s", https ? "https" : "http", (int)host_len,
				host);
	if (n < 0 || (size_t)n >= out_cap) {
		if (out_cap > 0)
			out[0] = '\0';
		return hd_error_set(err, HD_EINVAL, "no room for the endpoint's origin");
	}
	for (char *c = out; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return 0;
}

/* ---- the key ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The key of a raw base64url scalar. Returns 0 or HD_ECONFIG. */
static int raw_key(const char *text, size_t len, const char *what, EVP_PKEY **out,
		   struct hd_error *err)
{
	unsigned char d[4 * HD_P256_PUBLIC_LEN]; /* room to say how long a wrong key is */
	size_t n = 0;
	int rc = 0;

	if (hd_b64_decode(text, len, HD_B64_URL, d, sizeof(d), &n) != 0)
		rc = hd_error_set(err, HD_ECONFIG,
				  "%s holds neither a PEM private key nor the base64url of a "
				  "32-byte P-256 private key",
				  what);
	else if (n != HD_P256_PRIVATE_LEN)
		rc = hd_error_set(err, HD_ECONFIG,
				  "%s: a raw P-256 private key is 32 bytes (43 base64url "
				  "characters), not %zu%s",
				  what, n,
				  n == HD_P256_PUBLIC_LEN ? " (this is the public key)" : "");
	else if (hd_p256_from_private(d, out) != 0)
		rc = hd_error_set(err, HD_ECONFIG,
				  "%s: not a valid P-256 private key (zero or not below the "
				  "group order)",
				  what);
	OPENSSL_cleanse(d, sizeof(d));
	ERR_clear_error();
	return rc;
}

/* Whether subject is a "mailto:" or "https:" URI herald can put in the
 * claims unescaped. Returns 0 or HD_ECONFIG. */
static int check_subject(const char *subject, struct hd_error *err)
{
	size_t len = subject ? strlen(subject) : 0;

	if (len == 0 || len > HD_VAPID_SUBJECT_MAX ||
	    (strncmp(subject, "mailto:", 7) != 0 && strncmp(subject, "https:", 6) != 0) ||
	    len <= (subject[0] == 'm' ? 7u : 6u))
		return hd_error_set(err, HD_ECONFIG,
				    "the VAPID subject must be a \"mailto:\" or \"https:\" URI of "
				    "at most %d bytes",
				    HD_VAPID_SUBJECT_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)subject[i];
		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
			return hd_error_set(err, HD_ECONFIG,
					    "the VAPID subject holds a space, quote, backslash, "
					    "control or non-ASCII byte at %zu",
					    i + 1);
	}
	return 0;
}

/* hd_vapid_new with what naming the key's source in messages. */
static int make(const char *key, size_t len, const char *subject, const char *what,
		struct hd_vapid **out, struct hd_error *err)
{
	struct hd_vapid *v = NULL;
	EVP_PKEY *pkey = NULL;
	unsigned char pub[HD_P256_PUBLIC_LEN];
	int rc;

	rc = check_subject(subject, err);
	if (rc)
		goto out;
	while (len > 0 && is_space(*key)) {
		key++;
		len--;
	}
	while (len > 0 && is_space(key[len - 1]))
		len--;
	if (len == 0)
		rc = hd_error_set(err, HD_ECONFIG, "%s is empty", what);
	else if (memmem(key, len, "-----BEGIN", 10))
		rc = hd_jws_key_from_pem(key, len, what, &pkey, err);
	else
		rc = raw_key(key, len, what, &pkey, err);
	if (rc)
		goto out;
	rc = hd_jws_key_check(pkey, HD_JWS_ES256, what, err);
	if (rc)
		goto out;
	if (hd_p256_public(pkey, pub) != 0) {
		rc = hd_error_set(err, HD_ECONFIG, "%s: cannot read the public key", what);
		goto out;
	}
	v = hd_calloc(1, sizeof(*v));
	hd_b64_url_encode(pub, sizeof(pub), v->public_key, sizeof(v->public_key));
	strcpy(v->subject, subject);
	v->key = pkey;
	pkey = NULL;
	*out = v;
out:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rc;
}

int hd_vapid_new(const char *key, size_t len, const char *subject, struct hd_vapid **out,
		 struct hd_error *err)
{
	return make(key, len, subject, "the VAPID private key", out, err);
}

int hd_vapid_new_file(const char *path, const char *subject, struct hd_vapid **out,
		      struct hd_error *err)
{
	struct hd_jws_key_text t;
	int rc = hd_jws_key_text_read(path, "VAPID key", &t, err);

	if (rc == 0)
		rc = make(t.text, t.len, subject, t.what, out, err);
	hd_jws_key_text_fini(&t);
	return rc;
}

void hd_vapid_free(struct hd_vapid *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->ncache; i++)
		free(v->cache[i].header);
	EVP_PKEY_free(v->key);
	free(v);
}

const char *hd_vapid_public_key(const struct hd_vapid *v)
{
	return v->public_key;
}

/* ---- tokens ---- */

int hd_vapid_token(const struct hd_vapid *v, const char *origin, int64_t exp, char **out,
		   struct hd_error *err)
{
	json_t *header = json_pack("{s:s, s:s}", "typ", "JWT", "alg", "ES256");
	json_t *claims = json_pack("{s:s, s:I, s:s}", "aud", origin, "exp", (json_int_t)exp,
				   "sub", v->subject);
	int rc;

	if (!header || !claims)
		rc = hd_error_set(err, HD_EINVAL, "cannot build the VAPID claims");
	else
		rc = hd_jws_sign_json(HD_JWS_ES256, v->key, header, claims, out, err);
	json_decref(header);
	json_decref(claims);
	return rc;
}

/* ---- the per-origin cache ---- */

/* The entry for origin: found, a free slot, or the one expiring first (emptied). */
static struct entry *slot(struct hd_vapid *v, const char *origin)
{
	struct entry *oldest = NULL;

	for (size_t i = 0; i < v->ncache; i++) {
		struct entry *e = &v->cache[i];
		if (strcmp(e->origin, origin) == 0)
			return e;
		if (!oldest || e->exp < oldest->exp)
			oldest = e;
	}
	if (v->ncache < HD_VAPID_CACHE_MAX) {
		struct entry *e = &v->cache[v->ncache++];
		strcpy(e->origin, origin);
		return e;
	}
	free(oldest->header);
	oldest->header = NULL;
	oldest->exp = 0;
	strcpy(oldest->origin, origin);
	return oldest;
}

int hd_vapid_header(struct hd_vapid *v, const char *endpoint, size_t len, int64_t now, char *out,
		    size_t out_cap, struct hd_error *err)
{
	char origin[HD_VAPID_ORIGIN_MAX + 1];
	char *token = NULL;
	struct entry *e;
	size_t n;
	int rc;

	if (out_cap > 0)
		out[0] = '\0';
	rc = hd_vapid_origin(endpoint, len, origin, sizeof(origin), err);
	if (rc)
		return rc;
	e = slot(v, origin);
	if (!e->header || e->exp - now < HD_VAPID_RENEW_S || e->exp - now > HD_VAPID_EXP_MAX_S) {
		int64_t exp = now + HD_VAPID_TTL_S;
		rc = hd_vapid_token(v, origin, exp, &token, err);
		if (rc)
			goto out;
		n = strlen("vapid t=, k=") + strlen(token) + HD_VAPID_PUBLIC_KEY_LEN + 1;
		free(e->header);
		e->header = hd_malloc(n);
		snprintf(e->header, n, "vapid t=%s, k=%s", token, v->public_key);
		e->exp = exp;
	}
	n = strlen(e->header);
	if (n >= out_cap) {
		rc = hd_error_set(err, HD_EINVAL, "the VAPID header needs %zu bytes, room for %zu",
				  n + 1, out_cap);
		goto out;
	}
	memcpy(out, e->header, n + 1);
out:
	free(token);
	return rc;
}

/* ---- new key pairs ---- */

int hd_vapid_keys_generate(char *private_key, char *public_key, struct hd_error *err)
{
	EVP_PKEY *key = hd_p256_generate();
	unsigned char d[HD_P256_PRIVATE_LEN];
	unsigned char pub[HD_P256_PUBLIC_LEN];
	int rc = 0;

	if (!key || hd_p256_private(key, d) != 0 || hd_p256_public(key, pub) != 0) {
		rc = hd_error_set(err, HD_EINTERNAL, "OpenSSL could not make a P-256 key pair");
		goto out;
	}
	hd_b64_url_encode(d, sizeof(d), private_key, HD_VAPID_PRIVATE_KEY_LEN + 1);
	hd_b64_url_encode(pub, sizeof(pub), public_key, HD_VAPID_PUBLIC_KEY_LEN + 1);
out:
	OPENSSL_cleanse(d, sizeof(d));
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}
