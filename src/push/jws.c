/*
 * jws — compact JWS signing and private key loading. Layer: push.
 * The contract and the token layout are in jws.h.
 *
 * Signing uses one EVP_DigestSign per token (a fresh context each time, so
 * a shared key is never written to). The ES256 signature OpenSSL returns is
 * DER; to_raw() turns it into r || s.
 */
#include "push/jws.h"

#include "core/alloc.h"
#include "core/b64.h"
#include "push/p256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ES256_HALF 32 /* bytes of r and of s */

const char *hd_jws_alg_name(enum hd_jws_alg alg)
{
	return alg == HD_JWS_ES256 ? "ES256" : "RS256";
}

int hd_jws_key_text_read(const char *path, const char *kind, struct hd_jws_key_text *t,
			 struct hd_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = 0;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	snprintf(t->what, sizeof(t->what), "%s file '%.120s'", kind, path);
	if (fd < 0)
		return hd_error_set(err, HD_ECONFIG, "cannot open %s: %s", t->what, strerror(errno));
	t->text = hd_malloc(HD_JWS_KEY_FILE_MAX + 2);
	/* Until the end of the file, or one byte past the cap to tell a larger one. */
	while (t->len <= HD_JWS_KEY_FILE_MAX) {
		r = read(fd, t->text + t->len, HD_JWS_KEY_FILE_MAX + 1 - t->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		t->len += (size_t)r;
	}
	if (r < 0)
		rc = hd_error_set(err, HD_ECONFIG, "cannot read %s: %s", t->what, strerror(errno));
	else if (t->len > HD_JWS_KEY_FILE_MAX)
		rc = hd_error_set(err, HD_ECONFIG, "%s is larger than %d bytes", t->what,
				  HD_JWS_KEY_FILE_MAX);
	else
		t->text[t->len] = '\0';
	close(fd);
	if (rc)
		hd_jws_key_text_fini(t);
	return rc;
}

void hd_jws_key_text_fini(struct hd_jws_key_text *t)
{
	if (t->text)
		OPENSSL_cleanse(t->text, t->len);
	free(t->text);
	t->text = NULL;
	t->len = 0;
}

/* OpenSSL must never prompt on a terminal: herald has no passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static bool has(const char *text, size_t len, const char *needle)
{
	return memmem(text, len, needle, strlen(needle)) != NULL;
}

int hd_jws_key_from_pem(const char *pem, size_t len, const char *what, EVP_PKEY **out,
			struct hd_error *err)
{
	BIO *in = NULL;
	EVP_PKEY *key = NULL;
	int rc = 0;

	if (len > HD_JWS_KEY_FILE_MAX) {
		rc = hd_error_set(err, HD_ECONFIG, "%s: longer than %d bytes", what,
				  HD_JWS_KEY_FILE_MAX);
		goto out;
	}
	if (has(pem, len, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	    has(pem, len, "Proc-Type: 4,ENCRYPTED")) {
		rc = hd_error_set(err, HD_ECONFIG,
				  "%s: the private key is encrypted; give it unencrypted "
				  "(openssl pkcs8 -nocrypt)",
				  what);
		goto out;
	}
	in = BIO_new_mem_buf(pem, (int)len);
	if (!in) {
		rc = hd_error_set(err, HD_EINTERNAL, "%s: out of memory", what);
		goto out;
	}
	key = PEM_read_bio_PrivateKey(in, NULL, no_passphrase, NULL);
	if (!key) {
		if (has(pem, len, "-----BEGIN PUBLIC KEY-----") ||
		    has(pem, len, "-----BEGIN CERTIFICATE-----"))
			rc = hd_error_set(err, HD_ECONFIG,
					  "%s holds a public key or certificate, not the private key",
					  what);
		else
			rc = hd_error_set(err, HD_ECONFIG,
					  "%s holds no PEM private key (-----BEGIN PRIVATE KEY-----, "
					  "EC PRIVATE KEY or RSA PRIVATE KEY)",
					  what);
		goto out;
	}
	*out = key;
	key = NULL;
out:
	EVP_PKEY_free(key);
	BIO_free(in);
	ERR_clear_error();
	return rc;
}

int hd_jws_key_from_file(const char *path, EVP_PKEY **out, struct hd_error *err)
{
	struct hd_jws_key_text t;
	int rc = hd_jws_key_text_read(path, "key", &t, err);

	if (rc == 0)
		rc = hd_jws_key_from_pem(t.text, t.len, t.what, out, err);
	hd_jws_key_text_fini(&t);
	return rc;
}

/* The short name of key's type for messages ("RSA", "EC", "ED25519"). */
static const char *type_name(const EVP_PKEY *key)
{
	const char *name = EVP_PKEY_get0_type_name(key);
	return name ? name : "unknown";
}

int hd_jws_key_check(const EVP_PKEY *key, enum hd_jws_alg alg, const char *what,
		     struct hd_error *err)
{
	if (alg == HD_JWS_ES256) {
		if (!hd_p256_is(key))
			return hd_error_set(err, HD_ECONFIG,
					    "%s: ES256 needs an EC P-256 private key, found %s%s", what,
					    type_name(key),
					    EVP_PKEY_is_a(key, "EC") ? " on another curve" : "");
		return 0;
	}
	if (!EVP_PKEY_is_a(key, "RSA"))
		return hd_error_set(err, HD_ECONFIG, "%s: RS256 needs an RSA private key, found %s",
				    what, type_name(key));
	if (EVP_PKEY_get_bits(key) < HD_JWS_RSA_BITS_MIN)
		return hd_error_set(err, HD_ECONFIG,
				    "%s: an RSA key of %d bits; RS256 needs at least %d", what,
				    EVP_PKEY_get_bits(key), HD_JWS_RSA_BITS_MIN);
	if (EVP_PKEY_get_size(key) > HD_JWS_SIG_MAX)
		return hd_error_set(err, HD_ECONFIG, "%s: an RSA key of %d bits; at most %d", what,
				    EVP_PKEY_get_bits(key), HD_JWS_SIG_MAX * 8);
	return 0;
}

/* DER ECDSA-Sig-Value → r || s (32 bytes each). Returns 0 or -1. */
static int to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_HALF])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int rc = -1;

	if (!sig || p != der + len)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, ES256_HALF) != ES256_HALF ||
	    BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) != ES256_HALF)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	return rc;
}

/* The signature of input[0, n) under key, in JWS form, into sig. Returns
 * its length, or -1 when OpenSSL fails. */
static int sign(enum hd_jws_alg alg, EVP_PKEY *key, const char *input, size_t n,
		unsigned char sig[HD_JWS_SIG_MAX])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char der[HD_JWS_SIG_MAX];
	size_t len = sizeof(der);
	int rc = -1;

	if (!md || EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, key, NULL) <= 0)
		goto out;
	if (alg == HD_JWS_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
		goto out;
	if (EVP_DigestSign(md, der, &len, (const unsigned char *)input, n) <= 0)
		goto out;
	if (alg == HD_JWS_ES256) {
		if (to_raw(der, len, sig) == 0)
			rc = 2 * ES256_HALF;
	} else {
		memcpy(sig, der, len);
		rc = (int)len;
	}
out:
	EVP_MD_CTX_free(md);
	return rc;
}

int hd_jws_sign(enum hd_jws_alg alg, EVP_PKEY *key, const char *header, size_t header_len,
		const char *claims, size_t claims_len, char **out, struct hd_error *err)
{
	unsigned char sig[HD_JWS_SIG_MAX];
	char *t = NULL;
	size_t o;
	int n, rc;

	rc = hd_jws_key_check(key, alg, "the signing key", err);
	if (rc)
		goto out;
	if (header_len == 0 || claims_len == 0 || header_len > HD_JWS_PART_MAX ||
	    claims_len > HD_JWS_PART_MAX) {
		rc = hd_error_set(err, HD_EINVAL,
				  "a JWS header and claims must be 1 to %d bytes (got %zu and %zu)",
				  HD_JWS_PART_MAX, header_len, claims_len);
		goto out;
	}
	t = hd_malloc(HD_JWS_TOKEN_MAX);
	n = hd_b64_url_encode(header, header_len, t, HD_JWS_TOKEN_MAX);
	o = (size_t)n;
	t[o++] = '.';
	n = hd_b64_url_encode(claims, claims_len, t + o, HD_JWS_TOKEN_MAX - o);
	o += (size_t)n;
	n = sign(alg, key, t, o, sig);
	if (n < 0) {
		rc = hd_error_set(err, HD_EINTERNAL, "%s signing failed in OpenSSL",
				  hd_jws_alg_name(alg));
		goto out;
	}
	t[o++] = '.';
	hd_b64_url_encode(sig, (size_t)n, t + o, HD_JWS_TOKEN_MAX - o);
	*out = t;
	t = NULL;
out:
	free(t);
	ERR_clear_error();
	return rc;
}

int hd_jws_sign_json(enum hd_jws_alg alg, EVP_PKEY *key, const json_t *header,
		     const json_t *claims, char **out, struct hd_error *err)
{
	char *h = json_dumps(header, JSON_COMPACT);
	char *c = json_dumps(claims, JSON_COMPACT);
	int rc;

	if (!h || !c || !json_is_object(header) || !json_is_object(claims))
		rc = hd_error_set(err, HD_EINVAL, "a JWS header and claims must be JSON objects");
	else
		rc = hd_jws_sign(alg, key, h, strlen(h), c, strlen(c), out, err);
	free(h);
	free(c);
	return rc;
}
