/* keys — see keys.h. */
#include "auth/keys.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/text.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
#define NS_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~@-"

struct hd_keys {
	struct hd_key *keys;
	size_t n, cap;
};

struct hd_keys *hd_keys_new(void)
{
	return hd_calloc(1, sizeof(struct hd_keys));
}

void hd_keys_free(struct hd_keys *ks)
{
	if (!ks)
		return;
	/* Hashes are not secrets, but there is no reason to leave them about. */
	if (ks->keys)
		OPENSSL_cleanse(ks->keys, ks->cap * sizeof(*ks->keys));
	free(ks->keys);
	free(ks);
}

size_t hd_keys_count(const struct hd_keys *ks)
{
	return ks ? ks->n : 0;
}

const struct hd_key *hd_keys_at(const struct hd_keys *ks, size_t i)
{
	return i < hd_keys_count(ks) ? &ks->keys[i] : NULL;
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n <= max && strspn(s, NAME_CHARS) == n;
}

int hd_keys_parse_scopes(struct hd_key *k, const char *text, struct hd_error *err)
{
	k->publish_all = k->read = k->metrics = k->admin = false;
	k->npublish = 0;
	size_t count = 0;
	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		size_t len = strcspn(p, " ,\t");
		if (len == 0)
			break;
		char scope[HD_KEY_NAME_MAX + 16];
		if (len >= sizeof(scope))
			return hd_error_set(err, HD_ECONFIG, "scope '%.*s…' is too long", 32, p);
		memcpy(scope, p, len);
		scope[len] = '\0';
		p += len;
		count++;
		if (strcmp(scope, "read") == 0) {
			k->read = true;
		} else if (strcmp(scope, "metrics") == 0) {
			k->metrics = true;
		} else if (strcmp(scope, "admin") == 0) {
			k->admin = true;
		} else if (strcmp(scope, "publish:*") == 0) {
			k->publish_all = true;
		} else if (strncmp(scope, "publish:", 8) == 0 && scope[8] &&
			   strspn(scope + 8, NS_CHARS) == strlen(scope + 8) &&
			   strlen(scope + 8) <= HD_KEY_NAME_MAX) {
			if (k->npublish == HD_KEY_SCOPES_MAX)
				return hd_error_set(err, HD_ECONFIG, "more than %d publish scopes",
						    HD_KEY_SCOPES_MAX);
			snprintf(k->publish[k->npublish++], sizeof(k->publish[0]), "%.*s", HD_KEY_NAME_MAX,
				 scope + 8);
		} else {
			return hd_error_set(err, HD_ECONFIG,
					    "unknown scope '%s' (publish:NAMESPACE, publish:*, read, "
					    "metrics or admin)",
					    scope);
		}
	}
	if (count == 0)
		return hd_error_set(err, HD_ECONFIG, "a key needs at least one scope");
	return 0;
}

static int parse_time(const char *s, int64_t *out)
{
	*out = 0;
	if (!s || !*s)
		return 0;
	return hd_clock_parse_rfc3339(s, strlen(s), out);
}

int hd_keys_add(struct hd_keys *ks, const struct hd_key *k, struct hd_error *err)
{
	for (size_t i = 0; i < ks->n; i++)
		if (strcmp(ks->keys[i].name, k->name) == 0)
			return hd_error_set(err, HD_ECONFIG, "a key named '%s' already exists", k->name);
	if (ks->n == HD_KEYS_MAX)
		return hd_error_set(err, HD_ECONFIG, "more than %d keys", HD_KEYS_MAX);
	if (ks->n == ks->cap) {
		ks->cap = ks->cap ? ks->cap * 2 : 8;
		ks->keys = hd_realloc(ks->keys, ks->cap * sizeof(*ks->keys));
	}
	ks->keys[ks->n++] = *k;
	return 0;
}

int hd_keys_add_text(struct hd_keys *ks, const char *name, const char *hash, const char *scopes,
		     const char *created, const char *expires, const char *where, struct hd_error *err)
{
	struct hd_key k;
	int rc;

	memset(&k, 0, sizeof(k));
	if (!name_ok(name, HD_KEY_NAME_MAX))
		return hd_error_set(err, HD_ECONFIG, "%s: key name '%s' must be 1-%d bytes of [A-Za-z0-9._-]",
				    where, name, HD_KEY_NAME_MAX);
	snprintf(k.name, sizeof(k.name), "%s", name);
	if (!hash || strncmp(hash, "sha256:", 7) != 0 || strlen(hash) != 7 + 2 * HD_KEY_HASH_LEN)
		return hd_error_set(err, HD_ECONFIG, "%s: key '%s' needs hash = sha256:<64 hex digits>",
				    where, name);
	for (size_t i = 0; i < HD_KEY_HASH_LEN; i++) {
		int hi = isxdigit((unsigned char)hash[7 + 2 * i]), lo = isxdigit((unsigned char)hash[8 + 2 * i]);
		if (!hi || !lo)
			return hd_error_set(err, HD_ECONFIG, "%s: key '%s': hash is not hexadecimal", where,
					    name);
		unsigned v;
		sscanf(hash + 7 + 2 * i, "%2x", &v);
		k.hash[i] = (uint8_t)v;
	}
	struct hd_error serr = {0};
	if (hd_keys_parse_scopes(&k, scopes ? scopes : "", &serr))
		return hd_error_set(err, HD_ECONFIG, "%s: key '%s': %s", where, name, serr.msg);
	if (parse_time(created, &k.created_ms) || parse_time(expires, &k.expires_ms))
		return hd_error_set(err, HD_ECONFIG,
				    "%s: key '%s': created and expires must be RFC 3339 times "
				    "(2026-11-23T09:17:06Z)",
				    where, name);
	rc = hd_keys_add(ks, &k, &serr);
	if (rc)
		return hd_error_set(err, rc, "%s: %s", where, serr.msg);
	return 0;
}

int hd_keys_remove(struct hd_keys *ks, const char *name)
{
	for (size_t i = 0; i < ks->n; i++) {
		if (strcmp(ks->keys[i].name, name) == 0) {
			memmove(&ks->keys[i], &ks->keys[i + 1], (ks->n - i - 1) * sizeof(*ks->keys));
			ks->n--;
			return 0;
		}
	}
	return HD_ENOTFOUND;
}

/* ---- The file ----------------------------------------------------------- */

struct section {
	bool open;
	char name[HD_KEY_NAME_MAX + 2];
	char hash[80], scopes[1024], created[64], expires[64];
	char where[1100];
};

static int section_end(struct hd_keys *ks, struct section *sec, struct hd_error *err)
{
	if (!sec->open)
		return 0;
	sec->open = false;
	return hd_keys_add_text(ks, sec->name, sec->hash, sec->scopes, sec->created, sec->expires,
				sec->where, err);
}

int hd_keys_load_file(struct hd_keys *ks, const char *path, bool missing_ok, struct hd_error *err)
{
	char line[2048], where[1100];
	struct section sec;
	int rc = 0, lineno = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return hd_error_set(err, HD_ECONFIG, "cannot open keys file %s: %s", path, strerror(errno));
	}
	memset(&sec, 0, sizeof(sec));
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		char *s = hd_text_trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			size_t n = strlen(s);
			if ((rc = section_end(ks, &sec, err)))
				break;
			if (strncmp(s, "[key ", 5) != 0 || s[n - 1] != ']') {
				rc = hd_error_set(err, HD_ECONFIG, "%s: expected [key NAME]", where);
				break;
			}
			s[n - 1] = '\0';
			memset(&sec, 0, sizeof(sec));
			sec.open = true;
			snprintf(sec.name, sizeof(sec.name), "%s", hd_text_trim(s + 5));
			snprintf(sec.where, sizeof(sec.where), "%s", where);
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq || !sec.open) {
			rc = hd_error_set(err, HD_ECONFIG, "%s: expected [key NAME] or key = value", where);
			break;
		}
		*eq = '\0';
		char *k = hd_text_trim(s), *v = hd_text_trim(eq + 1);
		char *dst = strcmp(k, "hash") == 0 ? sec.hash
			  : strcmp(k, "scopes") == 0 ? sec.scopes
			  : strcmp(k, "created") == 0 ? sec.created
			  : strcmp(k, "expires") == 0 ? sec.expires : NULL;
		size_t cap = dst == sec.scopes ? sizeof(sec.scopes) : dst == sec.hash ? sizeof(sec.hash)
										 : sizeof(sec.created);
		if (!dst) {
			rc = hd_error_set(err, HD_ECONFIG, "%s: unknown key setting '%s' (hash, scopes, "
							   "created, expires)", where, k);
			break;
		}
		if (strlen(v) >= cap) {
			rc = hd_error_set(err, HD_ECONFIG, "%s: %s is too long", where, k);
			break;
		}
		strcpy(dst, v);
	}
	if (rc == 0 && ferror(f))
		rc = hd_error_set(err, HD_ECONFIG, "cannot read keys file %s", path);
	if (rc == 0)
		rc = section_end(ks, &sec, err);
	fclose(f);
	return rc;
}

static void scopes_text(const struct hd_key *k, char *out, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
#define ADD(s) len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s", len ? " " : "", s)
	for (size_t i = 0; i < k->npublish; i++) {
		char s[HD_KEY_NAME_MAX + 10];
		snprintf(s, sizeof(s), "publish:%s", k->publish[i]);
		ADD(s);
	}
	if (k->publish_all)
		ADD("publish:*");
	if (k->read)
		ADD("read");
	if (k->metrics)
		ADD("metrics");
	if (k->admin)
		ADD("admin");
#undef ADD
}

int hd_keys_save_file(const struct hd_keys *ks, const char *path, struct hd_error *err)
{
	char tmp[4200], hash[72], scopes[2048], t[40];
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return hd_error_set(err, HD_EIO, "keys file path too long");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return hd_error_set(err, HD_EIO, "cannot write %s: %s", tmp, strerror(errno));
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return hd_error_set(err, HD_EIO, "cannot write %s: %s", tmp, strerror(errno));
	}
	fprintf(f, "# herald API keys, written by `herald keys`. Only hashes are kept here;\n"
		   "# a secret is shown once, when it is created.\n");
	for (size_t i = 0; i < hd_keys_count(ks); i++) {
		const struct hd_key *k = &ks->keys[i];
		hd_keys_hash_text(k, hash);
		scopes_text(k, scopes, sizeof(scopes));
		fprintf(f, "\n[key %s]\nhash = %s\nscopes = %s\n", k->name, hash, scopes);
		if (k->created_ms) {
			hd_clock_format_rfc3339(k->created_ms, t, sizeof(t));
			fprintf(f, "created = %s\n", t);
		}
		if (k->expires_ms) {
			hd_clock_format_rfc3339(k->expires_ms, t, sizeof(t));
			fprintf(f, "expires = %s\n", t);
		}
	}
	if (fflush(f) || fsync(fd))
		rc = hd_error_set(err, HD_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (fclose(f) && rc == 0)
		rc = hd_error_set(err, HD_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path))
		rc = hd_error_set(err, HD_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- Secrets and hashes --------------------------------------------------- */

void hd_keys_hash(const char *secret, size_t len, uint8_t out[HD_KEY_HASH_LEN])
{
	unsigned int n = 0;
	if (!EVP_Digest(secret, len, out, &n, EVP_sha256(), NULL) || n != HD_KEY_HASH_LEN) {
		/* Only a broken OpenSSL gets here; match nothing rather than all. */
		memset(out, 0xff, HD_KEY_HASH_LEN);
	}
}

int hd_keys_generate(struct hd_key *k, char *secret)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[33];
	size_t n = 3;

	if (RAND_bytes(raw, 32) != 1)
		return HD_EINTERNAL;
	raw[32] = 0;
	memcpy(secret, "hd_", 3);
	/* 32 bytes → 43 base64url characters (the last carries 4 bits). */
	for (size_t i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)(i + 1 < 33 ? raw[i + 1] : 0) << 8 |
			     (i + 2 < 33 ? raw[i + 2] : 0);
		for (int j = 0; j < 4 && n < HD_KEY_SECRET_LEN; j++)
			secret[n++] = b64[(v >> (18 - 6 * j)) & 63];
	}
	secret[n] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	hd_keys_hash(secret, HD_KEY_SECRET_LEN, k->hash);
	return 0;
}

void hd_keys_hash_text(const struct hd_key *k, char out[72])
{
	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < HD_KEY_HASH_LEN; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", k->hash[i]);
}

void hd_keys_fingerprint(const struct hd_key *k, char out[HD_KEY_FINGERPRINT_LEN + 1])
{
	for (size_t i = 0; i < HD_KEY_FINGERPRINT_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", k->hash[i]);
}

int hd_keys_find(const struct hd_keys *ks, const char *secret, size_t len, int64_t now_ms,
		 const struct hd_key **out)
{
	uint8_t h[HD_KEY_HASH_LEN];
	const struct hd_key *found = NULL;

	*out = NULL;
	if (!ks || ks->n == 0)
		return HD_EUNAUTH;
	hd_keys_hash(secret, len, h);
	for (size_t i = 0; i < ks->n; i++) {
		/* No early exit: every key is compared. */
		bool eq = CRYPTO_memcmp(h, ks->keys[i].hash, HD_KEY_HASH_LEN) == 0;
		if (eq && !found)
			found = &ks->keys[i];
	}
	if (!found)
		return HD_EUNAUTH;
	*out = found;
	if (found->expires_ms && found->expires_ms <= now_ms)
		return HD_EEXPIRED;
	return 0;
}

bool hd_keys_allows(const struct hd_key *k, enum hd_key_action action, const char *topic)
{
	if (k->admin)
		return true;
	switch (action) {
	case HD_KEY_READ:
		return k->read;
	case HD_KEY_METRICS:
		return k->metrics;
	case HD_KEY_ADMIN:
		return false;
	case HD_KEY_PUBLISH:
		break;
	}
	if (k->publish_all)
		return true;
	const char *colon = topic ? strchr(topic, ':') : NULL;
	if (!colon)
		return false;
	size_t len = (size_t)(colon - topic);
	for (size_t i = 0; i < k->npublish; i++)
		if (strlen(k->publish[i]) == len && memcmp(k->publish[i], topic, len) == 0)
			return true;
	return false;
}
