/*
 * provider_run — what the provider tests (test_apns.c, test_fcm.c,
 * test_webpush.c) share: sending through a provider on a libuv loop and
 * waiting for the verdicts, and reading a mock's JSON over plain libcurl.
 * Header-only (static functions); CMake builds only test_*.c files.
 */
#ifndef HD_TEST_PROVIDER_RUN_H
#define HD_TEST_PROVIDER_RUN_H

#include "core/clock.h"
#include "push/provider.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define PROVIDER_WAIT_MS 30000

struct sent {
	struct hd_push_send s;
	bool done;
};

static inline void sent_done(struct hd_push_send *s)
{
	((struct sent *)s->arg)->done = true;
}

/* Runs loop until every sent is done (the deadline fails the test). */
static inline void sent_wait(uv_loop_t *loop, struct sent *v, size_t n)
{
	uint64_t end = hd_mono_ms() + PROVIDER_WAIT_MS;

	for (;;) {
		size_t k = 0;
		while (k < n && v[k].done)
			k++;
		if (k == n)
			return;
		if (hd_mono_ms() > end)
			fail_msg("sends not done after %d ms", PROVIDER_WAIT_MS);
		uv_run(loop, UV_RUN_ONCE);
	}
}

/* Sends one message to one target and waits for its verdict (in *out). */
static inline void send_one(uv_loop_t *loop, struct hd_push_provider *p, const struct hd_push_target *to,
		     const struct hd_push_message *msg, struct sent *out)
{
	memset(out, 0, sizeof(*out));
	out->s.to = *to;
	out->s.msg = *msg;
	out->s.done = sent_done;
	out->s.arg = out;
	assert_int_equal(p->ops->send(p, &out->s), 0);
	sent_wait(loop, out, 1);
}

/* Frees p and runs the loop until its handles closed. */
static inline void provider_free_run(uv_loop_t *loop, struct hd_push_provider *p)
{
	p->ops->free(p);
	uv_run(loop, UV_RUN_DEFAULT);
}

static inline size_t curl_collect(char *d, size_t size, size_t n, void *arg)
{
	char *buf = arg;
	size_t have = strlen(buf), add = size * n;
	size_t room = 65536 - 1 - have;

	memcpy(buf + have, d, add < room ? add : room);
	buf[have + (add < room ? add : room)] = '\0';
	return size * n;
}

/* POSTs body (or GETs when NULL) to url, trusting ca (may be NULL), and
 * returns the JSON answer (owned) or NULL. */
static inline json_t *mock_json(const char *url, const char *ca, const char *body)
{
	static char buf[65536];
	CURL *e = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "content-type: application/json");

	buf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)buf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	return rc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
}

#endif
