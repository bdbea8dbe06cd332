/*
 * fuzz_cproxy — libFuzzer target for the parser of the app backend's
 * answers to proxy calls (hd_cproxy_answer_parse in src/edge/cproxy.c):
 * untrusted JSON from the network.
 *
 * Input: byte 0 picks the call (mod HD_CPROXY_KINDS: connect, subscribe,
 * publish, rpc, refresh, sub_refresh);
 * the rest is the answer's body. The seeds in tests/fuzz/corpus/cproxy/ are
 * the answers docs/proxy.md describes, and broken ones.
 *
 * Properties checked:
 *   - 0 exactly when the outcome is not FAILED; a failure says why;
 *   - error codes lie in [400, 1999], disconnect codes in [4000, 4999];
 *     messages and reasons are NUL-terminated within their limits;
 *   - a result's user is at most 250 bytes without ':', expire_at >= 0
 *     (connect, subscribe and the refreshes only), expired only for the
 *     refreshes; channels only for connect (at most 128), info only for
 *     connect, subscribe and the refreshes, skip_history only for publish;
 *   - info and data are one well-formed, minified JSON value each, with no
 *     raw newline (they go into client frames as they are); data from
 *     b64data (not the refreshes) is any bytes, NUL-terminated;
 *   - subs (connect only, at most HD_JWT_CHANNELS_MAX): each channel named,
 *     each info minified JSON, each data NUL-terminated (minified JSON
 *     unless from b64data);
 *   - parsing is stable: the same input gives the same answer.
 */
#include "edge/cproxy.h"
#include "proto/json_text.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_json(const char *p, size_t n)
{
	struct hd_json_text_scan scan = {0};
	char *m = malloc(n ? n : 1);
	CHECK(p[n] == '\0');
	CHECK(hd_json_text_minify(p, n, m, &scan, NULL) == 0);
	CHECK(scan.out_len == n && memcmp(m, p, n) == 0);
	CHECK(!memchr(p, '\n', n));
	free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hd_cproxy_answer a, b;

	if (size < 1)
		return 0;
	enum hd_cproxy_kind kind = (enum hd_cproxy_kind)(data[0] % HD_CPROXY_KINDS);
	const char *body = (const char *)data + 1;
	size_t len = size - 1;

	int rc = hd_cproxy_answer_parse(kind, body, len, &a);
	CHECK((rc == 0) == (a.outcome != HD_CPROXY_FAILED));
	CHECK(rc == 0 || rc == HD_EINVAL);
	size_t mn = strnlen(a.message, sizeof(a.message));
	CHECK(mn < sizeof(a.message));
	if (a.outcome == HD_CPROXY_FAILED)
		CHECK(mn > 0);
	if (a.outcome == HD_CPROXY_ERROR)
		CHECK(a.code >= 400 && a.code <= 1999 && mn <= HD_CPROXY_MESSAGE_MAX);
	if (a.outcome == HD_CPROXY_DISCONNECT)
		CHECK(a.code >= 4000 && a.code <= 4999 && mn <= HD_CPROXY_REASON_MAX);
	if (a.outcome == HD_CPROXY_RESULT) {
		size_t un = strnlen(a.user, sizeof(a.user));
		CHECK(un <= HD_CPROXY_USER_MAX && !memchr(a.user, ':', un));
		CHECK(a.expire_at >= 0);
		CHECK(a.nchannels <= HD_CPROXY_CHANNELS_MAX);
		CHECK(kind == HD_CPROXY_CONNECT || (a.nchannels == 0 && !a.user[0]));
		bool refresh = kind == HD_CPROXY_REFRESH || kind == HD_CPROXY_SUB_REFRESH;
		CHECK(kind == HD_CPROXY_CONNECT || kind == HD_CPROXY_SUBSCRIBE || refresh || !a.expire_at);
		CHECK(refresh || !a.expired);
		CHECK(kind == HD_CPROXY_CONNECT || kind == HD_CPROXY_SUBSCRIBE || refresh || !a.info);
		CHECK(kind == HD_CPROXY_PUBLISH || !a.skip_history);
		for (size_t i = 0; i < a.nchannels; i++)
			CHECK(strlen(a.channels[i]) <= 255);
		if (a.info)
			check_json(a.info, a.info_len);
		if (a.data && !a.data_b64)
			check_json(a.data, a.data_len);
		if (a.data_b64)
			CHECK(a.data && a.data[a.data_len] == '\0' && !refresh);
		CHECK(a.subs.nchannels <= HD_JWT_CHANNELS_MAX);
		CHECK(kind == HD_CPROXY_CONNECT || !a.subs.nchannels);
		CHECK(!a.subs.nchannels || a.subs.subs);
		for (size_t i = 0; i < a.subs.nchannels; i++) {
			const struct hd_jwt_sub *o = &a.subs.subs[i];
			CHECK(a.subs.channels[i] != NULL);
			if (o->info)
				check_json(o->info, strlen(o->info));
			if (o->data && !o->data_b64)
				check_json(o->data, o->data_len);
			if (o->data)
				CHECK(o->data[o->data_len] == '\0');
		}
	} else {
		CHECK(!a.info && !a.data && !a.nchannels && !a.data_b64 && !a.subs.nchannels);
	}
	int rc2 = hd_cproxy_answer_parse(kind, body, len, &b);
	CHECK(rc2 == rc && b.outcome == a.outcome && b.code == a.code && strcmp(a.message, b.message) == 0);
	CHECK(b.expire_at == a.expire_at && b.expired == a.expired);
	CHECK(b.data_len == a.data_len && b.data_b64 == a.data_b64 &&
	      (!a.data || memcmp(a.data, b.data, a.data_len) == 0));
	CHECK(b.info_len == a.info_len && (!a.info || memcmp(a.info, b.info, a.info_len) == 0));
	CHECK(b.subs.nchannels == a.subs.nchannels);
	hd_cproxy_answer_fini(&a);
	hd_cproxy_answer_fini(&a);
	hd_cproxy_answer_fini(&b);
	return 0;
}
