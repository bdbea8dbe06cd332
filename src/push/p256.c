/*
 * p256 — P-256 raw key forms. Layer: push. Contract in p256.h.
 *
 * OpenSSL 3 builds keys from parameters (EVP_PKEY_fromdata). A private key
 * needs its public point too, so from_private computes d·G with the EC_POINT
 * API (not deprecated in 3.0, unlike EC_KEY). The public point is read in
 * its encoded form when that is uncompressed, else as its X and Y
 * coordinates laid out here, so the output is uncompressed whatever
 * conversion form a loaded PEM file asked for.
 */
#include "push/p256.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <string.h>

#define COORD_LEN 32
#define GROUP_NAME "prime256v1"

bool hd_p256_is(const EVP_PKEY *key)
{
	char name[64];
	size_t len = 0;
	int nid;

	if (!key || !EVP_PKEY_is_a(key, "EC"))
		return false;
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
					    &len))
		return false;
	nid = OBJ_sn2nid(name);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(name);
	return nid == NID_X9_62_prime256v1;
}

EVP_PKEY *hd_p256_generate(void)
{
	return EVP_EC_gen(GROUP_NAME);
}

/* A key from the parameters built in bld (selection: keypair or public). */
static int from_params(OSSL_PARAM_BLD *bld, int selection, EVP_PKEY **out)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;
	int rc = -1;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, selection, params) <= 0)
		goto out;
	*out = key;
	key = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return rc;
}

int hd_p256_from_private(const unsigned char d[HD_P256_PRIVATE_LEN], EVP_PKEY **out)
{
	EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pub = group ? EC_POINT_new(group) : NULL;
	BIGNUM *priv = BN_secure_new();
	BN_CTX *bnctx = BN_CTX_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	unsigned char pt[HD_P256_PUBLIC_LEN];
	int rc = -1;

	if (!pub || !priv || !bnctx || !bld || !BN_bin2bn(d, HD_P256_PRIVATE_LEN, priv))
		goto out;
	if (BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0)
		goto out;
	if (!EC_POINT_mul(group, pub, priv, NULL, NULL, bnctx) ||
	    EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), bnctx) !=
		    sizeof(pt))
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, GROUP_NAME, 0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)))
		goto out;
	rc = from_params(bld, EVP_PKEY_KEYPAIR, out);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_CTX_free(bnctx);
	BN_clear_free(priv);
	EC_POINT_free(pub);
	EC_GROUP_free(group);
	return rc;
}

int hd_p256_from_public(const unsigned char pt[HD_P256_PUBLIC_LEN], EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	int rc = -1;

	if (!bld || pt[0] != POINT_CONVERSION_UNCOMPRESSED)
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, GROUP_NAME, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, HD_P256_PUBLIC_LEN))
		goto out;
	rc = from_params(bld, EVP_PKEY_PUBLIC_KEY, out);
out:
	OSSL_PARAM_BLD_free(bld);
	return rc;
}

int hd_p256_public(const EVP_PKEY *key, unsigned char out[HD_P256_PUBLIC_LEN])
{
	BIGNUM *x = NULL, *y = NULL;
	size_t len = 0;
	int rc = -1;

	if (!hd_p256_is(key))
		goto out;
	/* The encoded form is the quick path; a key loaded in compressed form
	 * falls through to its coordinates. */
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
					    HD_P256_PUBLIC_LEN, &len) &&
	    len == HD_P256_PUBLIC_LEN && out[0] == POINT_CONVERSION_UNCOMPRESSED) {
		rc = 0;
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		goto out;
	out[0] = POINT_CONVERSION_UNCOMPRESSED;
	if (BN_bn2binpad(x, out + 1, COORD_LEN) != COORD_LEN ||
	    BN_bn2binpad(y, out + 1 + COORD_LEN, COORD_LEN) != COORD_LEN)
		goto out;
	rc = 0;
out:
	BN_free(x);
	BN_free(y);
	return rc;
}

int hd_p256_private(const EVP_PKEY *key, unsigned char out[HD_P256_PRIVATE_LEN])
{
	BIGNUM *d = NULL;
	int rc = -1;

	if (!hd_p256_is(key) || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d))
		goto out;
	if (BN_bn2binpad(d, out, HD_P256_PRIVATE_LEN) != HD_P256_PRIVATE_LEN)
		goto out;
	rc = 0;
out:
	BN_clear_free(d);
	return rc;
}
