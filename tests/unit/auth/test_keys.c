/*
 * Unit tests for auth/keys.c: generated secrets and their hashes, look-up
 * (unknown, expired), scopes, the keys file round trip and its errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/keys.h"

#define NOW 1800000000000LL

static const char *tmpfile_path(char *buf, size_t n, const char *body)
{
	snprintf(buf, n, "/tmp/herald-test-keys-%d-XXXXXX", (int)getpid());
	int fd = mkstemp(buf);
	assert_true(fd >= 0);
	if (body)
		assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);
	return buf;
}

static void test_generate_and_find(void **state)
{
	struct hd_keys *ks = hd_keys_new();
	struct hd_key k = {0}, k2 = {0};
	char secret[HD_KEY_SECRET_LEN + 1], secret2[HD_KEY_SECRET_LEN + 1];
	const struct hd_key *found;

	snprintf(k.name, sizeof(k.name), "a");
	assert_int_equal(hd_keys_parse_scopes(&k, "read", NULL), 0);
	assert_int_equal(hd_keys_generate(&k, secret), 0);
	assert_int_equal(strlen(secret), HD_KEY_SECRET_LEN);
	assert_memory_equal(secret, "hd_", 3);
	assert_null(strchr(secret, '.')); /* a bearer value with a '.' is a JWT */
	assert_int_equal(strspn(secret + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 HD_KEY_SECRET_LEN - 3);
	snprintf(k2.name, sizeof(k2.name), "b");
	assert_int_equal(hd_keys_parse_scopes(&k2, "admin", NULL), 0);
	assert_int_equal(hd_keys_generate(&k2, secret2), 0);
	assert_string_not_equal(secret, secret2);
	assert_int_equal(hd_keys_add(ks, &k, NULL), 0);
	assert_int_equal(hd_keys_add(ks, &k2, NULL), 0);

	assert_int_equal(hd_keys_find(ks, secret, strlen(secret), NOW, &found), 0);
	assert_string_equal(found->name, "a");
	assert_int_equal(hd_keys_find(ks, secret2, strlen(secret2), NOW, &found), 0);
	assert_string_equal(found->name, "b");
	secret[10] ^= 1;
	assert_int_equal(hd_keys_find(ks, secret, strlen(secret), NOW, &found), HD_EUNAUTH);
	assert_null(found);
	assert_int_equal(hd_keys_find(ks, "", 0, NOW, &found), HD_EUNAUTH);
	assert_int_equal(hd_keys_find(NULL, secret2, strlen(secret2), NOW, &found), HD_EUNAUTH);

	/* The stored hash is the SHA-256 of the secret. */
	uint8_t h[HD_KEY_HASH_LEN];
	hd_keys_hash(secret2, strlen(secret2), h);
	assert_memory_equal(h, k2.hash, HD_KEY_HASH_LEN);
	assert_int_equal(hd_keys_remove(ks, "a"), 0);
	assert_int_equal(hd_keys_remove(ks, "a"), HD_ENOTFOUND);
	assert_int_equal(hd_keys_count(ks), 1);
	/* A repeated name is refused. */
	assert_int_equal(hd_keys_add(ks, &k2, NULL), HD_ECONFIG);
	hd_keys_free(ks);
}

static void test_known_hash_and_expiry(void **state)
{
	struct hd_keys *ks = hd_keys_new();
	struct hd_error err = {0};
	const struct hd_key *found;
	/* sha256("test") */
	const char *hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

	assert_int_equal(hd_keys_add_text(ks, "t", hash, "publish:rides,read", "2027-01-01T00:00:00Z",
					  "2027-02-01T00:00:00Z", "x", &err), 0);
	assert_int_equal(hd_keys_find(ks, "test", 4, 1798761600000LL + 1000, &found), 0);
	assert_string_equal(found->name, "t");
	/* At and after its expiry the key is told apart (and still named). */
	assert_int_equal(hd_keys_find(ks, "test", 4, 1801440000000LL, &found), HD_EEXPIRED);
	assert_string_equal(found->name, "t");
	char fp[HD_KEY_FINGERPRINT_LEN + 1], text[72];
	hd_keys_fingerprint(found, fp);
	assert_string_equal(fp, "9f86d081884c");
	hd_keys_hash_text(found, text);
	assert_string_equal(text, hash);
	hd_keys_free(ks);
}

static void test_scopes(void **state)
{
	struct hd_key k = {0};
	struct hd_error err = {0};

	assert_int_equal(hd_keys_parse_scopes(&k, "publish:rides publish:user", &err), 0);
	assert_true(hd_keys_allows(&k, HD_KEY_PUBLISH, "rides:9"));
	assert_true(hd_keys_allows(&k, HD_KEY_PUBLISH, "user:42"));
	assert_false(hd_keys_allows(&k, HD_KEY_PUBLISH, "ridesx:9"));
	assert_false(hd_keys_allows(&k, HD_KEY_PUBLISH, "ride:9"));
	assert_false(hd_keys_allows(&k, HD_KEY_PUBLISH, "rides")); /* no namespace */
	assert_false(hd_keys_allows(&k, HD_KEY_READ, "rides:9"));
	assert_false(hd_keys_allows(&k, HD_KEY_ADMIN, NULL));
	assert_false(hd_keys_allows(&k, HD_KEY_METRICS, NULL));

	assert_int_equal(hd_keys_parse_scopes(&k, "publish:*", &err), 0);
	assert_true(hd_keys_allows(&k, HD_KEY_PUBLISH, "rides"));
	assert_false(hd_keys_allows(&k, HD_KEY_READ, "rides"));

	assert_int_equal(hd_keys_parse_scopes(&k, "read, metrics", &err), 0);
	assert_true(hd_keys_allows(&k, HD_KEY_READ, "x"));
	assert_true(hd_keys_allows(&k, HD_KEY_METRICS, NULL));
	assert_false(hd_keys_allows(&k, HD_KEY_PUBLISH, "x:1"));

	assert_int_equal(hd_keys_parse_scopes(&k, "admin", &err), 0);
	assert_true(hd_keys_allows(&k, HD_KEY_PUBLISH, "x"));
	assert_true(hd_keys_allows(&k, HD_KEY_READ, "x"));
	assert_true(hd_keys_allows(&k, HD_KEY_METRICS, NULL));
	assert_true(hd_keys_allows(&k, HD_KEY_ADMIN, NULL));

	assert_int_equal(hd_keys_parse_scopes(&k, "write", &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "unknown scope 'write'"));
	assert_int_equal(hd_keys_parse_scopes(&k, "publish:", &err), HD_ECONFIG);
	assert_int_equal(hd_keys_parse_scopes(&k, "publish:a/b", &err), HD_ECONFIG);
	assert_int_equal(hd_keys_parse_scopes(&k, " , ", &err), HD_ECONFIG);
	assert_int_equal(hd_keys_parse_scopes(&k, "", &err), HD_ECONFIG);
}

static void test_file_round_trip(void **state)
{
	char path[128];
	struct hd_keys *ks = hd_keys_new(), *back = hd_keys_new();
	struct hd_key k = {0};
	struct hd_error err = {0};
	char secret[HD_KEY_SECRET_LEN + 1];
	const struct hd_key *found;

	tmpfile_path(path, sizeof(path), NULL);
	snprintf(k.name, sizeof(k.name), "billing-1");
	assert_int_equal(hd_keys_parse_scopes(&k, "publish:rides publish:* read metrics admin", &err), 0);
	k.created_ms = NOW;
	k.expires_ms = NOW + 86400000;
	assert_int_equal(hd_keys_generate(&k, secret), 0);
	assert_int_equal(hd_keys_add(ks, &k, &err), 0);
	assert_int_equal(hd_keys_save_file(ks, path, &err), 0);

	/* The secret is nowhere in the file. */
	FILE *f = fopen(path, "r");
	char text[4096] = "";
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_null(strstr(text, secret));
	assert_null(strstr(text, secret + 3));
	assert_non_null(strstr(text, "[key billing-1]"));

	assert_int_equal(hd_keys_load_file(back, path, false, &err), 0);
	assert_int_equal(hd_keys_count(back), 1);
	const struct hd_key *b = hd_keys_at(back, 0);
	assert_string_equal(b->name, "billing-1");
	assert_memory_equal(b->hash, k.hash, HD_KEY_HASH_LEN);
	assert_int_equal(b->created_ms, NOW);
	assert_int_equal(b->expires_ms, NOW + 86400000);
	assert_true(b->read && b->metrics && b->admin && b->publish_all);
	assert_int_equal(b->npublish, 1);
	assert_string_equal(b->publish[0], "rides");
	assert_int_equal(hd_keys_find(back, secret, strlen(secret), NOW, &found), 0);
	unlink(path);
	hd_keys_free(ks);
	hd_keys_free(back);
}

static void test_file_errors(void **state)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
		{"hash = x\n", ":1: expected [key NAME]"},
		{"[key a]\nhash = sha256:00\nscopes = read\n", "key 'a' needs hash"},
		{"[key a]\nhash = sha256:zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nscopes = read\n",
		 "not hexadecimal"},
		{"[key a]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n", "at least one scope"},
		{"[key a]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nscopes = read\n"
		 "expires = tomorrow\n", "RFC 3339"},
		{"[key a]\ncolour = red\n", ":2: unknown key setting 'colour'"},
		{"[key a b]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nscopes = read\n",
		 "key name 'a b'"},
		{"[key a]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nscopes = read\n"
		 "[key a]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\nscopes = read\n",
		 "already exists"},
	};
	char path[128];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hd_keys *ks = hd_keys_new();
		struct hd_error err = {0};
		tmpfile_path(path, sizeof(path), cases[i].body);
		assert_int_equal(hd_keys_load_file(ks, path, false, &err), HD_ECONFIG);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
		unlink(path);
		hd_keys_free(ks);
	}
	/* A missing file: empty when allowed, an error when named. */
	struct hd_keys *ks = hd_keys_new();
	struct hd_error err = {0};
	assert_int_equal(hd_keys_load_file(ks, "/nonexistent/herald/keys", true, &err), 0);
	assert_int_equal(hd_keys_count(ks), 0);
	assert_int_equal(hd_keys_load_file(ks, "/nonexistent/herald/keys", false, &err), HD_ECONFIG);
	hd_keys_free(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_and_find),
		cmocka_unit_test(test_known_hash_and_expiry),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_file_round_trip),
		cmocka_unit_test(test_file_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
