/*
 * tls_testcert — throw-away self-signed P-256 certificates for the TLS unit
 * tests and the TLS fuzzer (test code only: the keys are made per run).
 */
#ifndef HD_TEST_TLS_TESTCERT_H
#define HD_TEST_TLS_TESTCERT_H

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/*
 * Writes <dir>/<name>.pem (a self-signed certificate for CN=localhost with
 * the given serial) and <dir>/<name>.key into cert[n] and key[n] paths.
 * Returns 0, or -1 (with a message on stderr).
 */
static inline int testcert_make(const char *dir, const char *name, long serial, char *cert,
				char *key, size_t n)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;
	int rc = -1;

	snprintf(cert, n, "%s/%s.pem", dir, name);
	snprintf(key, n, "%s/%s.key", dir, name);
	if (!pkey || !x)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650);
	X509_set_pubkey(x, pkey);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;
	if (!(f = fopen(cert, "w")))
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	if (!(f = fopen(key, "w")))
		goto out;
	PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "testcert_make: cannot write %s\n", cert);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

#endif
