/*
 * fuzz_push_origin — libFuzzer target for the endpoint URL origin parser
 * (hd_vapid_origin in src/push/vapid.c), which reads the endpoint a
 * browser's push subscription names: text a client sends.
 *
 * Input: the whole input is the URL. The seeds in
 * tests/fuzz/corpus/push_origin/ are endpoints of the real push services,
 * ports, IPv6 literals, and refused forms (userinfo, bad ports, odd bytes).
 *
 * Properties checked:
 *   - the result is 0 or HD_EINVAL, with err->code equal to it and a
 *     message on a refusal, and out empty on a refusal;
 *   - an origin is "http://" or "https://" then a host, then ":" and a
 *     port only when it is 1..65535 and not the scheme's default, with no
 *     upper-case letter, no '@', no '/', at most HD_VAPID_ORIGIN_MAX bytes;
 *   - it is accepted only for a URL of at most HD_VAPID_URL_MAX bytes with
 *     no '@' before its path;
 *   - parsing is stable: the origin, and the origin with "/p" after it,
 *     both parse to the same origin again.
 */
#include "push/vapid.h"
#include "fuzz_check.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The origin text is well formed, as the header promises. */
static void check_origin(const char *o)
{
	size_t len = strlen(o);
	const char *host, *colon;

	CHECK(len <= HD_VAPID_ORIGIN_MAX);
	CHECK(strncmp(o, "https://", 8) == 0 || strncmp(o, "http://", 7) == 0);
	host = strstr(o, "://") + 3;
	CHECK(*host != '\0');
	for (const char *c = o; *c; c++)
		CHECK(!isupper((unsigned char)*c) && *c != '@' && (c < host || *c != '/') &&
		      *c > ' ' && (unsigned char)*c < 0x7f);
	colon = strrchr(host, ':');
	if (colon && host[0] == '[')
		colon = colon > strchr(host, ']') ? colon : NULL;
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		CHECK(*end == '\0' && port >= 1 && port <= 65535 && colon[1] != '0');
		CHECK(port != (o[4] == 's' ? 443 : 80));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *url = (const char *)data;
	char out[HD_VAPID_ORIGIN_MAX + 1];
	char again[HD_VAPID_ORIGIN_MAX + 1];
	char with_path[HD_VAPID_ORIGIN_MAX + 3];
	struct hd_error err = {0};
	int rc = hd_vapid_origin(url, size, out, sizeof(out), &err);

	CHECK(rc == 0 || rc == HD_EINVAL);
	CHECK(err.code == rc);
	if (rc != 0) {
		CHECK(err.msg[0] != '\0');
		CHECK(out[0] == '\0');
		return 0;
	}
	CHECK(size <= HD_VAPID_URL_MAX);
	for (const char *p = (const char *)memmem(url, size, "://", 3) + 3;
	     p < url + size && *p != '/' && *p != '?' && *p != '#'; p++)
		CHECK(*p != '@');
	check_origin(out);
	CHECK(hd_vapid_origin(out, strlen(out), again, sizeof(again), &err) == 0);
	CHECK(strcmp(out, again) == 0);
	memcpy(with_path, out, strlen(out));
	memcpy(with_path + strlen(out), "/p", 2);
	CHECK(hd_vapid_origin(with_path, strlen(out) + 2, again, sizeof(again), &err) == 0);
	CHECK(strcmp(out, again) == 0);
	return 0;
}
