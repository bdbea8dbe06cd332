/*
 * signature — Standard Webhooks secrets and signatures. Layer: webhook.
 * The contract is in signature.h.
 *
 * Base64 is OpenSSL's (EVP_EncodeBlock / EVP_DecodeBlock, the standard
 * alphabet with padding). EVP_DecodeBlock wants whole 4-character groups and
 * counts padding as zero bytes, so parse() checks the alphabet itself, pads
 * the text to a whole group and subtracts the padding from the length.
 * HMAC-SHA256 is OpenSSL's EVP_MAC, fed the three parts of the signed content
 * one after the other, so a large body is never copied.
 */
#include "webhook/signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Base64 characters of the longest key, without padding. */
#define KEY_TEXT_MAX (4 * ((HD_WHSEC_KEY_MAX + 2) / 3))
#define GENERATED_KEY_LEN 32
#define SHA256_LEN 32

static bool b64_digit(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int hd_signature_secret_parse(const char *text, struct hd_whsec *out, struct hd_error *err)
{
	const size_t plen = sizeof(HD_WHSEC_PREFIX) - 1;
	char padded[KEY_TEXT_MAX + 1];
	unsigned char raw[KEY_TEXT_MAX / 4 * 3];
	size_t n, pad = 0;
	int rc = 0;

	if (!text || strncmp(text, HD_WHSEC_PREFIX, plen) != 0)
		return hd_error_set(err, HD_EINVAL, "a webhook secret starts with \"" HD_WHSEC_PREFIX "\"");
	text += plen;
	n = strlen(text);
	/* Padding is optional; when present it must complete the last group. */
	while (n > 0 && text[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (pad && (n + pad) % 4)
		return hd_error_set(err, HD_EINVAL, "the webhook secret has misplaced base64 padding");
	if (n > KEY_TEXT_MAX)
		return hd_error_set(err, HD_EINVAL, "the webhook secret is longer than %d bytes",
				    HD_WHSEC_KEY_MAX);
	for (size_t i = 0; i < n; i++)
		if (!b64_digit((unsigned char)text[i]))
			return hd_error_set(err, HD_EINVAL,
					    "the webhook secret is not base64 (character %zu)", plen + i + 1);
	if (n % 4 == 1)
		return hd_error_set(err, HD_EINVAL, "the webhook secret is truncated base64");
	memcpy(padded, text, n);
	pad = (4 - n % 4) % 4;
	memset(padded + n, '=', pad);
	padded[n + pad] = '\0';
	int got = EVP_DecodeBlock(raw, (const unsigned char *)padded, (int)(n + pad));
	if (got < 0) {
		rc = hd_error_set(err, HD_EINVAL, "the webhook secret is not base64");
		goto out;
	}
	size_t len = (size_t)got - pad;
	if (len < HD_WHSEC_KEY_MIN || len > HD_WHSEC_KEY_MAX) {
		rc = hd_error_set(err, HD_EINVAL, "a webhook secret holds %d to %d bytes, not %zu",
				  HD_WHSEC_KEY_MIN, HD_WHSEC_KEY_MAX, len);
		goto out;
	}
	memcpy(out->key, raw, len);
	out->len = len;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(padded, sizeof(padded));
	return rc;
}

int hd_signature_secret_generate(char *out, size_t out_len)
{
	const size_t plen = sizeof(HD_WHSEC_PREFIX) - 1;
	unsigned char raw[GENERATED_KEY_LEN];

	if (out_len < plen + 4 * ((GENERATED_KEY_LEN + 2) / 3) + 1)
		return HD_EINTERNAL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return HD_EINTERNAL;
	memcpy(out, HD_WHSEC_PREFIX, plen);
	EVP_EncodeBlock((unsigned char *)out + plen, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* base64(HMAC-SHA256(key, id "." ts "." body)) into out (45 bytes); 0 or -1. */
static int sign_one(EVP_MAC *mac, const struct hd_whsec *k, const char *id, const char *ts,
		    const void *body, size_t body_len, char *out)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	unsigned char md[SHA256_LEN];
	size_t md_len = 0;
	int rc = -1;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);

	if (!ctx)
		return -1;
	if (EVP_MAC_init(ctx, k->key, k->len, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    (body_len && EVP_MAC_update(ctx, body, body_len) != 1) ||
	    EVP_MAC_final(ctx, md, &md_len, sizeof(md)) != 1 || md_len != SHA256_LEN)
		goto out;
	EVP_EncodeBlock((unsigned char *)out, md, SHA256_LEN);
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

int hd_signature_header(const struct hd_whsec *secrets, size_t n, const char *id, int64_t timestamp,
			const void *body, size_t body_len, char *out, size_t out_len)
{
	char ts[24];
	size_t o = 0;
	int rc = -1;

	if (n < 1 || n > HD_SIGNATURE_SECRETS_MAX || !id || !*id || strchr(id, '.') ||
	    (body_len && !body) || out_len < n * (HD_SIGNATURE_ONE_MAX + 1))
		return -1;
	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (secrets[i].len < HD_WHSEC_KEY_MIN || secrets[i].len > HD_WHSEC_KEY_MAX)
			goto out;
		if (i)
			out[o++] = ' ';
		memcpy(out + o, "v1,", 3);
		if (sign_one(mac, &secrets[i], id, ts, body, body_len, out + o + 3) != 0)
			goto out;
		o += HD_SIGNATURE_ONE_MAX;
	}
	out[o] = '\0';
	rc = (int)o;
out:
	EVP_MAC_free(mac);
	if (rc < 0)
		out[0] = '\0';
	return rc;
}
