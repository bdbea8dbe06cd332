/*
 * jwt — see jwt.h for the contract and the rules.
 *
 * The order of the checks in hd_jwt_verify, each refusing with HD_EUNAUTH:
 *   1. the token text: length, alphabet, three non-empty segments;
 *   2. the header: canonical base64url, a JSON object read here, "alg"
 *      exactly one of the table below, a key of that family configured,
 *      no "crit", "typ" JWT when present;
 *   3. the payload: canonical base64url, a JSON object;
 *   4. the signature: canonical base64url of the algorithm's length, then
 *      jwt_decode with each key of the family until one verifies, and
 *      libjwt's idea of the algorithm compared with ours;
 *   5. the claims (see check_claims), HD_EEXPIRED last.
 *
 * Why the header is read here and not by libjwt alone: libjwt 1.10's
 * jwt_decode takes the algorithm from the token with strcasecmp, runs
 * HMAC keyed with whatever bytes it is given (a PEM public key included)
 * and skips the signature for alg "none" when the key is NULL. Steps 1–2
 * make sure it only ever verifies a token whose algorithm the key is for.
 * Both parsers then read the same text: step 1 admits only base64url, both
 * decoders give the same bytes for it, and a repeated member or a NUL
 * byte (where json_loads and json_loadb could differ) is refused.
 *
 * libjwt 1.10 verifies ES256 correctly: it turns the JOSE r||s signature
 * (RFC 7518 §3.4) into DER before EVP_DigestVerifyFinal, and refuses a
 * signature that is not exactly twice the curve's size. It does not tie
 * the curve to the algorithm (ES384 over a P-256 key would pass), which is
 * why only P-256 keys are loaded and only for ES256.
 *
 * Keys are kept as libjwt wants them: a secret's bytes, or the public key
 * re-encoded here as one clean SubjectPublicKeyInfo PEM block (whatever else
 * the file held is dropped), so libjwt parses exactly the key checked at
 * load time.
 *
 * libjwt and OpenSSL leave errors on the thread's OpenSSL error queue when
 * a signature fails; they are cleared here, because the TLS code on the
 * same thread reads that queue (SSL_get_error).
 */
#include "auth/jwt.h"
#include "core/b64.h"
#include "core/alloc.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PEM_FILE_MAX (64 * 1024)   /* bytes read from one public key file */
#define SECRET_MAX (64 * 1024)     /* bytes of one HMAC secret */
#define RSA_BITS_MIN 2048
#define NUMERIC_DATE_MAX 9e15      /* |NumericDate| beyond this is refused: exact in a double */

enum family { FAM_HMAC, FAM_RSA, FAM_EC256, FAM_COUNT };

static const char *const family_names[FAM_COUNT] = {"HMAC secret", "RSA public key",
						    "EC P-256 public key"};

#define KID_MAX 128

struct key {
	enum family fam;
	char kid[KID_MAX + 1];     /* "" for keys without one */
	unsigned char *bytes;      /* the secret, or the public key as PEM text */
	size_t len;
	size_t sig_len;            /* RSA: the modulus size; otherwise unused */
};

struct hd_jwt_keys {
	struct key keys[HD_JWT_KEYS_MAX];
	size_t nkeys;
	size_t per_family[FAM_COUNT];
	char *audience;            /* NULL: not checked */
	char *issuer;              /* NULL: not checked */
	int64_t leeway_s;
};

/* The algorithms a token may name, each with the only key family it may be
 * checked against. sig_len 0: the key's own size (RSA). */
static const struct alg {
	const char *name;
	jwt_alg_t id;
	enum family fam;
	size_t sig_len;
} algs[] = {
	{"HS256", JWT_ALG_HS256, FAM_HMAC, 32},  {"HS384", JWT_ALG_HS384, FAM_HMAC, 48},
	{"HS512", JWT_ALG_HS512, FAM_HMAC, 64},  {"RS256", JWT_ALG_RS256, FAM_RSA, 0},
	{"RS384", JWT_ALG_RS384, FAM_RSA, 0},    {"RS512", JWT_ALG_RS512, FAM_RSA, 0},
	{"ES256", JWT_ALG_ES256, FAM_EC256, 64},
};

/* ---- keys ---- */

static void key_wipe(struct key *k)
{
	if (k->bytes) {
		OPENSSL_cleanse(k->bytes, k->len);
		free(k->bytes);
	}
	memset(k, 0, sizeof(*k));
}

void hd_jwt_keys_free(struct hd_jwt_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->nkeys; i++)
		key_wipe(&k->keys[i]);
	free(k->audience);
	free(k->issuer);
	free(k);
}

/* OpenSSL must never prompt on a terminal for a passphrase: public keys have none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Reads at most PEM_FILE_MAX bytes of path into a new buffer. */
static int read_small_file(const char *path, char **out, size_t *len, struct hd_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;
	int rc = 0;

	if (!f)
		return hd_error_set(err, HD_ECONFIG, "cannot open public key file '%.120s': %s",
				    path, strerror(errno));
	buf = hd_malloc(PEM_FILE_MAX + 1);
	n = fread(buf, 1, PEM_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = hd_error_set(err, HD_ECONFIG, "cannot read public key file '%.120s'", path);
		goto out;
	}
	if (n > PEM_FILE_MAX) {
		rc = hd_error_set(err, HD_ECONFIG, "public key file '%.120s' is larger than %d bytes",
				  path, PEM_FILE_MAX);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return rc;
}

/* The family of a parsed public key, or an HD_ECONFIG naming what is wrong. */
static int classify(EVP_PKEY *pkey, const char *path, enum family *fam, struct hd_error *err)
{
	char group[64];
	size_t glen = 0;
	int nid;

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < RSA_BITS_MIN)
			return hd_error_set(err, HD_ECONFIG,
					    "public key file '%.120s': an RSA key of %d bits, "
					    "at least %d are needed",
					    path, EVP_PKEY_get_bits(pkey), RSA_BITS_MIN);
		*fam = FAM_RSA;
		return 0;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen))
			return hd_error_set(err, HD_ECONFIG,
					    "public key file '%.120s': an EC key on an unnamed curve",
					    path);
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid != NID_X9_62_prime256v1)
			return hd_error_set(err, HD_ECONFIG,
					    "public key file '%.120s': an EC key on curve %.40s, "
					    "only P-256 (ES256) is supported",
					    path, group);
		*fam = FAM_EC256;
		return 0;
	default:
		return hd_error_set(err, HD_ECONFIG,
				    "public key file '%.120s': unsupported key type %.40s, "
				    "expected RSA or EC P-256",
				    path, OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
	}
}

static int load_public_key(const char *path, struct key *k, struct hd_error *err)
{
	char *text = NULL;
	size_t len = 0;
	BIO *in = NULL, *pem = NULL;
	EVP_PKEY *pkey = NULL;
	enum family fam = FAM_COUNT;
	char *data;
	long n;
	int rc;

	rc = read_small_file(path, &text, &len, err);
	if (rc)
		goto out;
	in = BIO_new_mem_buf(text, (int)len);
	if (!in) {
		rc = hd_error_set(err, HD_ECONFIG, "public key file '%.120s': out of memory", path);
		goto out;
	}
	pkey = PEM_read_bio_PUBKEY(in, NULL, no_passphrase, NULL);
	if (!pkey) {
		rc = hd_error_set(err, HD_ECONFIG,
				  "public key file '%.120s' holds no PEM public key "
				  "(-----BEGIN PUBLIC KEY-----)",
				  path);
		goto out;
	}
	rc = classify(pkey, path, &fam, err);
	if (rc)
		goto out;
	pem = BIO_new(BIO_s_mem());
	if (!pem || !PEM_write_bio_PUBKEY(pem, pkey) || (n = BIO_get_mem_data(pem, &data)) <= 0) {
		rc = hd_error_set(err, HD_ECONFIG, "public key file '%.120s': cannot re-encode the key",
				  path);
		goto out;
	}
	k->fam = fam;
	k->len = (size_t)n;
	k->bytes = hd_malloc(k->len);
	memcpy(k->bytes, data, k->len);
	k->sig_len = fam == FAM_RSA ? (size_t)EVP_PKEY_get_size(pkey) : 64;
out:
	EVP_PKEY_free(pkey);
	BIO_free(pem);
	BIO_free(in);
	free(text);
	ERR_clear_error();
	return rc;
}

static int load_secret(const char *secret, size_t index, struct key *k, struct hd_error *err)
{
	size_t len = strlen(secret);

	if (len == 0)
		return hd_error_set(err, HD_ECONFIG, "HMAC secret #%zu is empty", index + 1);
	if (len > SECRET_MAX)
		return hd_error_set(err, HD_ECONFIG, "HMAC secret #%zu is longer than %d bytes",
				    index + 1, SECRET_MAX);
	/* A public key pasted where a secret belongs would make every holder
	 * of that public key able to sign tokens. */
	if (strstr(secret, "-----BEGIN"))
		return hd_error_set(err, HD_ECONFIG,
				    "HMAC secret #%zu is a PEM text; public keys go in the public "
				    "key files",
				    index + 1);
	k->fam = FAM_HMAC;
	k->len = len;
	k->bytes = hd_malloc(len);
	memcpy(k->bytes, secret, len);
	return 0;
}

/* ---- JWKS files (RFC 7517, RFC 7518 §6) ---- */

#define JWKS_FILE_MAX (256 * 1024)

static bool b64url_decode(const char *s, size_t n, unsigned char **out, size_t *out_len);

/* A base64url member of a JWK, decoded (owned), or NULL when absent or bad. */
static unsigned char *jwk_bytes(const json_t *jwk, const char *name, size_t *len)
{
	const json_t *v = json_object_get(jwk, name);
	unsigned char *out = NULL;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    !b64url_decode(json_string_value(v), json_string_length(v), &out, len))
		return NULL;
	return out;
}

/* Builds the public key of an RSA or EC JWK. Returns NULL with err set. */
static EVP_PKEY *jwk_pkey(const json_t *jwk, const char *kty, const char *where, struct hd_error *err)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char *a = NULL, *b = NULL, *point = NULL;
	size_t alen = 0, blen = 0;
	bool rsa = strcmp(kty, "RSA") == 0;

	if (rsa) {
		a = jwk_bytes(jwk, "n", &alen);
		b = jwk_bytes(jwk, "e", &blen);
		if (!a || !b) {
			hd_error_set(err, HD_ECONFIG, "%s: an RSA key needs base64url \"n\" and \"e\"", where);
			goto out;
		}
		n = BN_bin2bn(a, (int)alen, NULL);
		e = BN_bin2bn(b, (int)blen, NULL);
		if (!bld || !n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			goto fail;
	} else {
		const json_t *crv = json_object_get(jwk, "crv");
		if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
			hd_error_set(err, HD_ECONFIG, "%s: only EC keys on P-256 (ES256) are supported", where);
			goto out;
		}
		a = jwk_bytes(jwk, "x", &alen);
		b = jwk_bytes(jwk, "y", &blen);
		if (!a || !b || alen != 32 || blen != 32) {
			hd_error_set(err, HD_ECONFIG, "%s: a P-256 key needs 32-byte \"x\" and \"y\"", where);
			goto out;
		}
		point = hd_malloc(65);
		point[0] = 0x04; /* uncompressed */
		memcpy(point + 1, a, 32);
		memcpy(point + 33, b, 32);
		if (!bld ||
		    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65))
			goto fail;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto fail;
	goto out;
fail:
	EVP_PKEY_free(pkey);
	pkey = NULL;
	hd_error_set(err, HD_ECONFIG, "%s: not a valid %s public key", where, kty);
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	free(a);
	free(b);
	free(point);
	ERR_clear_error();
	return pkey;
}

/* The public key as PEM text into k (libjwt takes PEM). */
static int key_from_pkey(EVP_PKEY *pkey, enum family fam, struct key *k, const char *where,
			 struct hd_error *err)
{
	BIO *pem = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc = 0;

	if (!pem || !PEM_write_bio_PUBKEY(pem, pkey) || (n = BIO_get_mem_data(pem, &data)) <= 0) {
		rc = hd_error_set(err, HD_ECONFIG, "%s: cannot encode the key", where);
	} else {
		k->fam = fam;
		k->len = (size_t)n;
		k->bytes = hd_malloc(k->len);
		memcpy(k->bytes, data, k->len);
		k->sig_len = fam == FAM_RSA ? (size_t)EVP_PKEY_get_size(pkey) : 64;
	}
	BIO_free(pem);
	ERR_clear_error();
	return rc;
}

/* Adds every key of one JWKS file to keys. */
static int load_jwks(const char *path, struct hd_jwt_keys *keys, struct hd_error *err)
{
	char *text = NULL;
	size_t len = 0;
	json_t *root = NULL;
	json_error_t jerr;
	char where[200];
	int rc = read_small_file(path, &text, &len, err);

	if (rc)
		return rc;
	if (len > JWKS_FILE_MAX) {
		rc = hd_error_set(err, HD_ECONFIG, "JWKS file '%.120s' is larger than %d bytes", path,
				  JWKS_FILE_MAX);
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *list = root ? json_object_get(root, "keys") : NULL;
	if (!json_is_array(list) || json_array_size(list) == 0) {
		rc = hd_error_set(err, HD_ECONFIG, "JWKS file '%.120s' is not {\"keys\":[…]} with keys",
				  path);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *jwk = json_array_get(list, i);
		const json_t *kty = json_object_get(jwk, "kty");
		const json_t *kid = json_object_get(jwk, "kid");
		const json_t *use = json_object_get(jwk, "use");
		snprintf(where, sizeof(where), "JWKS file '%.120s', key #%zu", path, i + 1);
		if (!json_is_object(jwk) || !json_is_string(kty)) {
			rc = hd_error_set(err, HD_ECONFIG, "%s has no \"kty\"", where);
			goto out;
		}
		if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
			continue; /* an encryption key: not for verifying tokens */
		if (kid && (!json_is_string(kid) || json_string_length(kid) > KID_MAX)) {
			rc = hd_error_set(err, HD_ECONFIG, "%s: \"kid\" must be a string of at most %d bytes",
					  where, KID_MAX);
			goto out;
		}
		if (keys->nkeys == HD_JWT_KEYS_MAX) {
			rc = hd_error_set(err, HD_ECONFIG, "more than %d JWT keys configured",
					  HD_JWT_KEYS_MAX);
			goto out;
		}
		struct key *k = &keys->keys[keys->nkeys];
		const char *t = json_string_value(kty);
		if (strcmp(t, "oct") == 0) {
			size_t klen = 0;
			unsigned char *secret = jwk_bytes(jwk, "k", &klen);
			if (!secret) {
				rc = hd_error_set(err, HD_ECONFIG, "%s: an oct key needs base64url \"k\"", where);
				goto out;
			}
			k->fam = FAM_HMAC;
			k->bytes = secret;
			k->len = klen;
		} else if (strcmp(t, "RSA") == 0 || strcmp(t, "EC") == 0) {
			EVP_PKEY *pkey = jwk_pkey(jwk, t, where, err);
			enum family fam = FAM_COUNT;
			if (!pkey) {
				rc = HD_ECONFIG;
				goto out;
			}
			rc = classify(pkey, where, &fam, err);
			if (!rc)
				rc = key_from_pkey(pkey, fam, k, where, err);
			EVP_PKEY_free(pkey);
			if (rc)
				goto out;
		} else {
			rc = hd_error_set(err, HD_ECONFIG, "%s: unsupported kty (RSA, EC and oct are)", where);
			goto out;
		}
		if (kid)
			snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
		keys->per_family[k->fam]++;
		keys->nkeys++;
	}
out:
	json_decref(root);
	free(text);
	return rc;
}

int hd_jwt_keys_new(const struct hd_jwt_config *cfg, struct hd_jwt_keys **out,
		    struct hd_error *err)
{
	struct hd_jwt_keys *k = hd_calloc(1, sizeof(*k));
	size_t nsecrets = 0, nfiles = 0;
	int rc = 0;

	*out = NULL;
	while (cfg->hmac_secrets && cfg->hmac_secrets[nsecrets])
		nsecrets++;
	while (cfg->public_key_files && cfg->public_key_files[nfiles])
		nfiles++;
	if (nsecrets + nfiles > HD_JWT_KEYS_MAX) {
		rc = hd_error_set(err, HD_ECONFIG, "%zu JWT keys configured, at most %d are allowed",
				  nsecrets + nfiles, HD_JWT_KEYS_MAX);
		goto out;
	}
	for (size_t i = 0; i < nsecrets; i++) {
		rc = load_secret(cfg->hmac_secrets[i], i, &k->keys[k->nkeys], err);
		if (rc)
			goto out;
		k->per_family[k->keys[k->nkeys++].fam]++;
	}
	for (size_t i = 0; i < nfiles; i++) {
		rc = load_public_key(cfg->public_key_files[i], &k->keys[k->nkeys], err);
		if (rc)
			goto out;
		k->per_family[k->keys[k->nkeys++].fam]++;
	}
	for (size_t i = 0; cfg->jwks_files && cfg->jwks_files[i]; i++) {
		rc = load_jwks(cfg->jwks_files[i], k, err);
		if (rc)
			goto out;
	}
	if (k->nkeys == 0)
		goto out;
	k->audience = cfg->audience ? hd_strdup(cfg->audience) : NULL;
	k->issuer = cfg->issuer ? hd_strdup(cfg->issuer) : NULL;
	k->leeway_s = cfg->leeway_s;
	*out = k;
	k = NULL;
out:
	hd_jwt_keys_free(k);
	return rc;
}

/* ---- token text ---- */

/*
 * Decodes s[0, n) (base64url characters only, already checked) into a new
 * buffer with a NUL after the bytes. Canonical form only (HD_B64_CANONICAL:
 * no length of the form 4k+1, the unused low bits of the last character
 * zero), so that one byte string has exactly one text. Returns false
 * otherwise.
 */
static bool b64url_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
	unsigned char *buf = hd_malloc(HD_B64_DECODED_MAX(n) + 1);

	if (hd_b64_decode(s, n, HD_B64_URL | HD_B64_CANONICAL, buf, HD_B64_DECODED_MAX(n), out_len)) {
		free(buf);
		return false;
	}
	buf[*out_len] = '\0';
	*out = buf;
	return true;
}

/* A JSON object from a base64url segment, or NULL with err set. */
static json_t *segment_object(const char *s, size_t n, const char *what, struct hd_error *err)
{
	unsigned char *text;
	size_t len;
	json_error_t jerr;
	json_t *v;

	if (!b64url_decode(s, n, &text, &len)) {
		hd_error_set(err, HD_EUNAUTH, "the token %s is not canonical base64url", what);
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		free(text);
		hd_error_set(err, HD_EUNAUTH, "the token %s holds a NUL byte", what);
		return NULL;
	}
	v = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!v || !json_is_object(v)) {
		json_decref(v);
		hd_error_set(err, HD_EUNAUTH, "the token %s is not a JSON object", what);
		return NULL;
	}
	return v;
}

/* The algorithm the header names, checked against the configured keys. */
static const struct alg *check_header(const struct hd_jwt_keys *keys, const json_t *hdr,
				      struct hd_error *err)
{
	const json_t *alg = json_object_get(hdr, "alg");
	const json_t *typ = json_object_get(hdr, "typ");
	const char *name;

	if (!json_is_string(alg)) {
		hd_error_set(err, HD_EUNAUTH, "the token header has no \"alg\" string");
		return NULL;
	}
	name = json_string_value(alg);
	if (strcasecmp(name, "none") == 0) {
		hd_error_set(err, HD_EUNAUTH, "unsigned tokens (alg none) are refused");
		return NULL;
	}
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(name, algs[i].name) != 0)
			continue;
		if (keys->per_family[algs[i].fam] == 0) {
			hd_error_set(err, HD_EUNAUTH, "alg %s refused: no %s is configured",
				     algs[i].name, family_names[algs[i].fam]);
			return NULL;
		}
		if (json_object_get(hdr, "crit")) {
			hd_error_set(err, HD_EUNAUTH, "the token header has \"crit\" extensions");
			return NULL;
		}
		if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
			hd_error_set(err, HD_EUNAUTH, "the token header \"typ\" is not JWT");
			return NULL;
		}
		return &algs[i];
	}
	hd_error_set(err, HD_EUNAUTH, "unsupported alg (HS256/384/512, RS256/384/512 and ES256 are)");
	return NULL;
}

/*
 * Tries each key of the algorithm's family on the whole token (NUL-terminated,
 * already checked). sig_len is the decoded signature's length.
 */
static int check_signature(const struct hd_jwt_keys *keys, const struct alg *a, const char *token,
			   size_t sig_len, const char *kid, struct hd_error *err)
{
	bool length_fits = false;

	for (size_t i = 0; i < keys->nkeys; i++) {
		const struct key *k = &keys->keys[i];
		jwt_t *j = NULL;
		bool ok;

		if (k->fam != a->fam || sig_len != (a->sig_len ? a->sig_len : k->sig_len))
			continue;
		if (kid && k->kid[0] && strcmp(kid, k->kid) != 0)
			continue; /* the token names another key */
		length_fits = true;
		ok = jwt_decode(&j, token, k->bytes, (int)k->len) == 0 && j &&
		     jwt_get_alg(j) == a->id;
		jwt_free(j);
		ERR_clear_error();
		if (ok)
			return 0;
	}
	if (!length_fits)
		return hd_error_set(err, HD_EUNAUTH, "the %s signature has the wrong length",
				    a->name);
	return hd_error_set(err, HD_EUNAUTH, "the %s signature does not verify", a->name);
}

/* ---- claims ---- */

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* A NumericDate claim: absent (0, *present false), or a number rounded down. */
static int numeric_date(const json_t *obj, const char *name, int64_t *out, bool *present,
			struct hd_error *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = 0;
	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d >= -NUMERIC_DATE_MAX && d <= NUMERIC_DATE_MAX))
			return hd_error_set(err, HD_EUNAUTH, "claim %s is out of range", name);
		*out = (int64_t)floor(d);
		return 0;
	}
	return hd_error_set(err, HD_EUNAUTH, "claim %s must be a number", name);
}

/* A string claim copied into *out; absent leaves *out NULL. */
static int string_claim(const json_t *obj, const char *name, char **out, struct hd_error *err)
{
	const json_t *v = json_object_get(obj, name);

	if (!v)
		return 0;
	if (!json_is_string(v))
		return hd_error_set(err, HD_EUNAUTH, "claim %s must be a string", name);
	/* The payload held no NUL byte, so the value has none either. */
	*out = hd_strdup(json_string_value(v));
	return 0;
}

/* The strings of the channels claim, checked (none: *n 0). */
static int channels_check(const json_t *v, size_t *n, struct hd_error *err)
{
	*n = 0;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return hd_error_set(err, HD_EUNAUTH, "claim channels must be an array of strings");
	if (json_array_size(v) > HD_JWT_CHANNELS_MAX)
		return hd_error_set(err, HD_EUNAUTH, "claim channels has %zu entries, at most %d",
				    json_array_size(v), HD_JWT_CHANNELS_MAX);
	for (size_t i = 0; i < json_array_size(v); i++)
		if (!json_is_string(json_array_get(v, i)))
			return hd_error_set(err, HD_EUNAUTH,
					    "claim channels must be an array of strings");
	*n = json_array_size(v);
	return 0;
}

/* v (any JSON value) as minified JSON text (owned); name: the member's
 * label in the message ("claim info", "result.subs[a].data"). */
static int json_text(const json_t *v, const char *name, char **out, struct hd_error *err)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return hd_error_set(err, HD_EUNAUTH, "%s cannot be encoded", name);
	*out = hd_strdup(text);
	free(text);
	return 0;
}

/* v, a string of standard base64, decoded into *out (owned, a NUL after
 * the bytes; *len bytes); refused when it is not, or decodes to more than
 * max bytes. */
static int b64_bytes(const json_t *v, const char *name, size_t max, char **out, size_t *len,
		     struct hd_error *err)
{
	if (!json_is_string(v))
		return hd_error_set(err, HD_EUNAUTH, "%s must be a string", name);
	size_t n = json_string_length(v);
	unsigned char *buf = hd_malloc(HD_B64_DECODED_MAX(n) + 1);
	if (hd_b64_decode(json_string_value(v), n, 0, buf, HD_B64_DECODED_MAX(n), len)) {
		free(buf);
		return hd_error_set(err, HD_EUNAUTH, "%s is not base64", name);
	}
	if (*len > max) {
		free(buf);
		return hd_error_set(err, HD_EUNAUTH, "%s decodes to %zu bytes, at most %zu", name, *len, max);
	}
	buf[*len] = '\0';
	*out = (char *)buf;
	return 0;
}

/* Whether a b64 member is there: absent, null and "" (as Go's omitempty
 * leaves it) are not. */
static bool b64_present(const json_t *v)
{
	return v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0);
}

/*
 * The info of an object (the payload or a subs entry): b64info, whose
 * bytes must be a JSON text of at most HD_JWT_INFO_MAX bytes (herald keeps
 * every info as JSON so that JSON and protobuf clients read it alike), else
 * info; minified into *out (owned), NULL when neither is there (or, for a
 * subs entry, null). where: the labels' prefix ("claim ", "claim subs[a].").
 */
static int info_claim(const json_t *obj, const char *where, bool entry, char **out, struct hd_error *err)
{
	const json_t *b64 = json_object_get(obj, "b64info");
	const json_t *info = json_object_get(obj, "info");
	char name[HD_ERROR_MSG_MAX / 2];
	int rc;

	snprintf(name, sizeof(name), "%sb64info", where);
	if (b64_present(b64)) {
		char *raw;
		size_t len;
		if ((rc = b64_bytes(b64, name, HD_JWT_INFO_MAX, &raw, &len, err)))
			return rc;
		json_t *v = json_loadb(raw, len, JSON_DECODE_ANY, NULL);
		free(raw);
		if (!v)
			return hd_error_set(err, HD_EUNAUTH, "%s is not base64 of a JSON text", name);
		rc = json_text(v, name, out, err);
		json_decref(v);
		return rc;
	}
	snprintf(name, sizeof(name), "%sinfo", where);
	if (info && json_is_null(info) && entry)
		return 0; /* a subs entry's null info: none */
	return info ? json_text(info, name, out, err) : 0;
}

/* override.NAME of a subs entry (o: the override object or NULL): absent
 * or null leaves *set alone; else it must be {"value":<boolean>}. */
static int override_bool(const json_t *o, const char *where, const char *name, bool *set, bool *value,
			 struct hd_error *err)
{
	const json_t *f = json_is_object(o) ? json_object_get(o, name) : NULL;
	if (!f || json_is_null(f))
		return 0;
	const json_t *val = json_is_object(f) ? json_object_get(f, "value") : NULL;
	if (!json_is_boolean(val))
		return hd_error_set(err, HD_EUNAUTH, "%soverride.%s must be {\"value\":<boolean>}", where, name);
	*set = true;
	*value = json_is_true(val);
	return 0;
}

/* One entry of a subs object (v: its options, an object or null). */
static int sub_options(const char *label, const char *channel, const json_t *v, struct hd_jwt_sub *out,
		       struct hd_error *err)
{
	char where[HD_ERROR_MSG_MAX / 4];
	bool set = false;
	int rc;

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return hd_error_set(err, HD_EUNAUTH, "%s: the options of a channel must be an object", label);
	snprintf(where, sizeof(where), "%s[%.32s].", label, channel);
	if ((rc = info_claim(v, where, true, &out->info, err)))
		return rc;
	const json_t *o = json_object_get(v, "override");
	if (o && !json_is_null(o) && !json_is_object(o))
		return hd_error_set(err, HD_EUNAUTH, "%soverride must be an object", where);
	if ((rc = override_bool(o, where, "force_push_join_leave", &set, &out->push_join_leave, err)) ||
	    (rc = override_bool(o, where, "join_leave", &out->join_leave_set, &out->join_leave, err)))
		return rc;
	const json_t *b64 = json_object_get(v, "b64data");
	const json_t *data = json_object_get(v, "data");
	char name[HD_ERROR_MSG_MAX / 2];
	if (b64_present(b64)) {
		snprintf(name, sizeof(name), "%sb64data", where);
		out->data_b64 = true;
		return b64_bytes(b64, name, HD_JWT_TOKEN_MAX, &out->data, &out->data_len, err);
	}
	if (data && !json_is_null(data)) {
		snprintf(name, sizeof(name), "%sdata", where);
		if ((rc = json_text(data, name, &out->data, err)))
			return rc;
		out->data_len = strlen(out->data);
	}
	return 0;
}

/* The channels of subs (an object, or null/absent: none), room made for
 * extra more, into out's channels and subs. */
static int subs_read(const json_t *subs, const char *label, size_t extra, struct hd_jwt_claims *out,
		     struct hd_error *err)
{
	int rc;
	size_t nsubs = 0;

	if (subs && !json_is_null(subs)) {
		if (!json_is_object(subs))
			return hd_error_set(err, HD_EUNAUTH, "%s must be an object", label);
		nsubs = json_object_size(subs);
		if (nsubs > HD_JWT_CHANNELS_MAX)
			return hd_error_set(err, HD_EUNAUTH, "%s has %zu channels, at most %d", label, nsubs,
					    HD_JWT_CHANNELS_MAX);
	}
	if (nsubs + extra == 0)
		return 0;
	out->channels = hd_calloc(nsubs + extra, sizeof(char *));
	if (nsubs) {
		const char *ch;
		const json_t *v;
		out->subs = hd_calloc(nsubs + extra, sizeof(*out->subs));
		json_object_foreach((json_t *)subs, ch, v) {
			out->channels[out->nchannels] = hd_strdup(ch);
			if ((rc = sub_options(label, ch, v, &out->subs[out->nchannels++], err)))
				return rc;
		}
	}
	return 0;
}

/* The server-side subscriptions: the subs claim's channels with their
 * options, then the channels claim's that subs does not name. */
static int channels_claim(const json_t *p, struct hd_jwt_claims *out, struct hd_error *err)
{
	const json_t *chans = json_object_get(p, "channels");
	size_t nchans;
	int rc;

	if ((rc = channels_check(chans, &nchans, err)) ||
	    (rc = subs_read(json_object_get(p, "subs"), "claim subs", nchans, out, err)))
		return rc;
	for (size_t i = 0; i < nchans; i++) {
		const char *ch = json_string_value(json_array_get(chans, i));
		bool dup = false;
		for (size_t j = 0; j < out->nchannels && !dup; j++)
			dup = strcmp(out->channels[j], ch) == 0;
		if (dup)
			continue;
		if (out->nchannels == HD_JWT_CHANNELS_MAX)
			return hd_error_set(err, HD_EUNAUTH, "claims subs and channels name more than %d channels",
					    HD_JWT_CHANNELS_MAX);
		out->channels[out->nchannels++] = hd_strdup(ch);
	}
	return 0;
}

int hd_jwt_subs_parse(const char *text, size_t len, const char *label, struct hd_jwt_claims *out,
		      struct hd_error *err)
{
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	int rc;

	if (!v)
		return hd_error_set(err, HD_EUNAUTH, "%s is not JSON (or repeats a channel)", label);
	rc = subs_read(v, label, 0, out, err);
	json_decref(v);
	return rc;
}

static int check_audience(const json_t *obj, const char *want, struct hd_error *err)
{
	const json_t *aud = json_object_get(obj, "aud");

	if (!aud)
		return hd_error_set(err, HD_EUNAUTH, "claim aud is missing");
	if (json_is_string(aud)) {
		if (strcmp(json_string_value(aud), want) == 0)
			return 0;
	} else if (json_is_array(aud)) {
		bool found = false;
		for (size_t i = 0; i < json_array_size(aud); i++) {
			const json_t *e = json_array_get(aud, i);
			if (!json_is_string(e))
				return hd_error_set(err, HD_EUNAUTH,
						    "claim aud must be a string or an array of strings");
			found = found || strcmp(json_string_value(e), want) == 0;
		}
		if (found)
			return 0;
	} else {
		return hd_error_set(err, HD_EUNAUTH,
				    "claim aud must be a string or an array of strings");
	}
	return hd_error_set(err, HD_EUNAUTH, "the token is not for this audience");
}

/* The claims of a payload whose signature holds; fills out (the caller
 * empties it on an error). */
static int check_claims(const struct hd_jwt_keys *keys, const json_t *p, int64_t now_s,
			struct hd_jwt_claims *out, struct hd_error *err)
{
	int64_t nbf;
	bool has_exp, has_nbf;
	int rc;

	if ((rc = string_claim(p, "sub", &out->sub, err)) ||
	    (rc = numeric_date(p, "exp", &out->exp, &has_exp, err)) ||
	    (rc = numeric_date(p, "nbf", &nbf, &has_nbf, err)) ||
	    (rc = numeric_date(p, "iat", &out->iat, NULL, err)) ||
	    (rc = string_claim(p, "channel", &out->channel, err)) ||
	    (rc = channels_claim(p, out, err)) ||
	    (rc = info_claim(p, "claim ", false, &out->info, err)))
		return rc;
	if (!out->sub)
		out->sub = hd_strdup("");

	if (has_nbf && nbf > sat_add(now_s, keys->leeway_s))
		return hd_error_set(err, HD_EUNAUTH, "the token is not valid yet (nbf)");
	if (keys->audience && (rc = check_audience(p, keys->audience, err)))
		return rc;
	if (keys->issuer) {
		const json_t *iss = json_object_get(p, "iss");
		if (!json_is_string(iss) || strcmp(json_string_value(iss), keys->issuer) != 0)
			return hd_error_set(err, HD_EUNAUTH, "the token is not from the expected issuer");
	}
	/* RFC 7519 §4.1.4: the token is valid only before exp. */
	if (has_exp && sat_add(out->exp, keys->leeway_s) <= now_s)
		return hd_error_set(err, HD_EEXPIRED, "the token has expired");
	return 0;
}

/* ---- verify ---- */

int hd_jwt_verify(const struct hd_jwt_keys *keys, const char *token, size_t len, int64_t now_s,
		  struct hd_jwt_claims *out, struct hd_error *err)
{
	size_t dot[2], ndots = 0;
	json_t *hdr = NULL, *payload = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	char *text = NULL;
	const struct alg *a;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err)
		hd_error_clear(err);
	if (!keys) {
		rc = hd_error_set(err, HD_EUNAUTH, "no JWT keys are configured");
		goto out;
	}
	if (!token || len == 0) {
		rc = hd_error_set(err, HD_EUNAUTH, "the token is empty");
		goto out;
	}
	if (len > HD_JWT_TOKEN_MAX) {
		rc = hd_error_set(err, HD_EUNAUTH, "the token is longer than %d bytes",
				  HD_JWT_TOKEN_MAX);
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if (token[i] == '.') {
			if (ndots == 2) {
				rc = hd_error_set(err, HD_EUNAUTH, "the token has more than three parts");
				goto out;
			}
			dot[ndots++] = i;
		} else if (hd_b64_digit((unsigned char)token[i], true) < 0) {
			rc = hd_error_set(err, HD_EUNAUTH,
					  "the token holds a character outside base64url");
			goto out;
		}
	}
	if (ndots != 2) {
		rc = hd_error_set(err, HD_EUNAUTH, "the token has %zu parts, not three", ndots + 1);
		goto out;
	}
	if (dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] + 1 == len) {
		rc = hd_error_set(err, HD_EUNAUTH, "the token has an empty part");
		goto out;
	}

	hdr = segment_object(token, dot[0], "header", err);
	if (!hdr) {
		rc = HD_EUNAUTH;
		goto out;
	}
	a = check_header(keys, hdr, err);
	if (!a) {
		rc = HD_EUNAUTH;
		goto out;
	}
	payload = segment_object(token + dot[0] + 1, dot[1] - dot[0] - 1, "payload", err);
	if (!payload) {
		rc = HD_EUNAUTH;
		goto out;
	}
	if (!b64url_decode(token + dot[1] + 1, len - dot[1] - 1, &sig, &sig_len)) {
		rc = hd_error_set(err, HD_EUNAUTH, "the token signature is not canonical base64url");
		goto out;
	}
	text = hd_strndup(token, len);
	const json_t *kid = json_object_get(hdr, "kid");
	rc = check_signature(keys, a, text, sig_len, json_is_string(kid) ? json_string_value(kid) : NULL,
			     err);
	if (rc)
		goto out;
	rc = check_claims(keys, payload, now_s, out, err);
out:
	if (rc)
		hd_jwt_claims_fini(out);
	json_decref(hdr);
	json_decref(payload);
	free(sig);
	free(text);
	return rc;
}

void hd_jwt_claims_fini(struct hd_jwt_claims *c)
{
	free(c->sub);
	free(c->channel);
	for (size_t i = 0; i < c->nchannels; i++) {
		free(c->channels[i]);
		if (c->subs) {
			free(c->subs[i].info);
			free(c->subs[i].data);
		}
	}
	free(c->channels);
	free(c->subs);
	free(c->info);
	memset(c, 0, sizeof(*c));
}
