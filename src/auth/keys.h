/*
 * keys — the API keys of publishers, readers and operators: the key store,
 * its file, and the scope check.
 * Layer: auth. Built by main.c at start (from the keys file and the
 * [key NAME] sections of the config file) and by `herald keys`; looked up
 * by the edges on the loop thread. Pure apart from reading and writing the
 * keys file; a store is read-only once built, so any thread may look up.
 *
 * A key is "hd_" followed by 43 base64url characters: 32 bytes from the
 * OpenSSL CSPRNG. Only its SHA-256 is kept. A plain, unsalted hash is
 * enough here because the secret has 256 bits of entropy: nobody can
 * search that space, so the slow, salted hashes made for passwords
 * (bcrypt, argon2) would add cost per request and no safety; and an
 * unsalted hash lets a look-up hash the presented key once. Comparisons
 * are constant-time (CRYPTO_memcmp) and visit every key, so timing tells
 * nothing about which hash, or how much of one, matched.
 *
 * Scopes (a key has one or more):
 *   publish:NS   publish to topics of namespace NS ("rides:9" is in rides;
 *                the user notifications route publishes to user:{id},
 *                namespace "user")
 *   publish:*    publish to every topic, also ones without a namespace
 *   read         read events (also long-poll and Server-Sent Events), list
 *                topics, a topic's info
 *   metrics      GET /metrics (a Prometheus scraper's key)
 *   admin        everything: the above plus topic delete, presence,
 *                a user's connections, and private topics in the list
 *
 * The keys file (and a [key NAME] section of the config file) is
 *     # comment
 *     [key NAME]
 *     hash = sha256:<64 lower-case hex digits>
 *     scopes = publish:rides read        (spaces or commas between)
 *     created = 2026-11-23T09:17:06Z     (optional, RFC 3339)
 *     expires = 2026-12-23T09:17:06Z     (optional; absent = never)
 * NAME is 1–64 bytes of [A-Za-z0-9._-]; names are unique in a store.
 */
#ifndef HD_AUTH_KEYS_H
#define HD_AUTH_KEYS_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_KEYS_MAX 4096         /* keys in one store */
#define HD_KEY_NAME_MAX 64
#define HD_KEY_SCOPES_MAX 16     /* scopes of one key */
#define HD_KEY_SECRET_LEN 46     /* "hd_" + 43 base64url characters */
#define HD_KEY_HASH_LEN 32       /* SHA-256 */
#define HD_KEY_FINGERPRINT_LEN 12 /* hex digits of the hash shown by `keys list` */

/* What a request wants to do. */
enum hd_key_action { HD_KEY_PUBLISH, HD_KEY_READ, HD_KEY_METRICS, HD_KEY_ADMIN };

struct hd_key {
	char name[HD_KEY_NAME_MAX + 1];
	uint8_t hash[HD_KEY_HASH_LEN];
	int64_t created_ms;      /* 0 = unknown */
	int64_t expires_ms;      /* 0 = never */
	bool publish_all, read, metrics, admin;
	size_t npublish;
	char publish[HD_KEY_SCOPES_MAX][HD_KEY_NAME_MAX + 1]; /* namespaces */
};

struct hd_keys;

/* Returns owned, empty. */
struct hd_keys *hd_keys_new(void);
/* k may be NULL. */
void hd_keys_free(struct hd_keys *ks);
/* Keys in the store. ks may be NULL (0). */
size_t hd_keys_count(const struct hd_keys *ks);
/* The i-th key (borrowed, valid until the store changes), in the order added. */
const struct hd_key *hd_keys_at(const struct hd_keys *ks, size_t i);

/*
 * Adds a key given as text (as in a file section): name, "sha256:<hex>",
 * scopes, and RFC 3339 created/expires (NULL or "" = absent). where names
 * the source for messages ("herald.conf:12"). Returns 0, or HD_ECONFIG
 * with err saying what is wrong (bad name, hash or scope, a repeated name,
 * more than HD_KEYS_MAX keys).
 */
int hd_keys_add_text(struct hd_keys *ks, const char *name, const char *hash, const char *scopes,
		     const char *created, const char *expires, const char *where, struct hd_error *err);
/* Adds a copy of k; HD_ECONFIG for a repeated name or a full store. */
int hd_keys_add(struct hd_keys *ks, const struct hd_key *k, struct hd_error *err);
/* Removes the key named name; returns 0 or HD_ENOTFOUND. */
int hd_keys_remove(struct hd_keys *ks, const char *name);
/* Parses scope text ("publish:rides, read") into k's scope fields. */
int hd_keys_parse_scopes(struct hd_key *k, const char *text, struct hd_error *err);

/*
 * Reads a keys file into ks. A missing file is an empty store when
 * missing_ok (the default file under the data directory), else HD_ECONFIG.
 * Other errors are HD_ECONFIG naming the file and line.
 */
int hd_keys_load_file(struct hd_keys *ks, const char *path, bool missing_ok, struct hd_error *err);
/* Writes every key of ks to path atomically (a temporary file, fsync,
 * rename), mode 0600. Returns 0 or HD_EIO with err. */
int hd_keys_save_file(const struct hd_keys *ks, const char *path, struct hd_error *err);

/*
 * Makes a new key: fills secret (HD_KEY_SECRET_LEN + 1 bytes, NUL-ended)
 * from the CSPRNG and k->hash from it. Returns 0 or HD_EINTERNAL when the
 * CSPRNG fails.
 */
int hd_keys_generate(struct hd_key *k, char *secret);
/* SHA-256 of secret[0, len) into out. */
void hd_keys_hash(const char *secret, size_t len, uint8_t out[HD_KEY_HASH_LEN]);
/* "sha256:<hex>" of k's hash into out (72 bytes). */
void hd_keys_hash_text(const struct hd_key *k, char out[72]);
/* The first HD_KEY_FINGERPRINT_LEN hex digits of k's hash into out (+ NUL). */
void hd_keys_fingerprint(const struct hd_key *k, char out[HD_KEY_FINGERPRINT_LEN + 1]);

/*
 * Finds the key whose hash is the hash of secret[0, len) (constant-time,
 * see above). Returns 0 and *out (borrowed, valid while ks is unchanged);
 * HD_EUNAUTH when no key matches; HD_EEXPIRED when the key's expiry is at
 * or before now_ms (*out is set then too). ks may be NULL.
 */
int hd_keys_find(const struct hd_keys *ks, const char *secret, size_t len, int64_t now_ms,
		 const struct hd_key **out);

/* Whether k's scopes allow action (on topic, for HD_KEY_PUBLISH). */
bool hd_keys_allows(const struct hd_key *k, enum hd_key_action action, const char *topic);

#endif
