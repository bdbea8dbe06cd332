/* stats_cmd — see stats_cmd.h. */
#include "cli/stats_cmd.h"
#include "cli/client.h"
#include "core/buf.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define STATS_BODY_MAX (1u << 20)

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	return hd_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static json_int_t num(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_integer_value(v);
}

/* "1.5 MiB" */
static void human_bytes(json_int_t n, char *out, size_t max)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, max, "%lld B", (long long)n);
	else
		snprintf(out, max, "%.1f %s", v, unit[u]);
}

static void print_overview(const json_t *s)
{
	char size[32];
	json_int_t up = num(s, "uptime_s", NULL);
	human_bytes(num(s, "store_bytes", NULL), size, sizeof(size));
	printf("herald %s on %s, up %lldd %02lld:%02lld:%02lld (since %s)\n",
	       json_string_value(json_object_get(s, "version")), json_string_value(json_object_get(s, "node")),
	       (long long)(up / 86400), (long long)(up / 3600 % 24), (long long)(up / 60 % 60),
	       (long long)(up % 60), json_string_value(json_object_get(s, "started")));
	printf("connections   %lld open: %lld websocket, %lld sse, %lld long-poll waiting\n",
	       (long long)num(s, "connections", "open"), (long long)num(s, "connections", "websocket"),
	       (long long)num(s, "connections", "sse"), (long long)num(s, "connections", "longpoll"));
	printf("users online  %lld\n", (long long)num(s, "users_online", NULL));
	printf("topics        %lld, store %s\n", (long long)num(s, "topics", NULL), size);
	printf("publishes     %lld events stored, %lld refused\n", (long long)num(s, "publishes_total", NULL),
	       (long long)num(s, "publish_errors_total", NULL));
	printf("deliveries    %lld to live subscribers, %lld history reads\n",
	       (long long)num(s, "deliveries_total", NULL), (long long)num(s, "reads_total", NULL));
	printf("webhooks      %lld subscriptions, %lld in flight, %lld delivered, %lld failed attempts, "
	       "%lld dead-lettered\n",
	       (long long)num(s, "webhooks", "subscriptions"), (long long)num(s, "webhooks", "inflight"),
	       (long long)num(s, "webhooks", "deliveries_total"),
	       (long long)num(s, "webhooks", "attempt_failures_total"),
	       (long long)num(s, "webhooks", "dead_letters_total"));
}

int hd_stats_cmd_run(int argc, char **argv)
{
	struct hd_client_target t;
	bool as_json = false;
	const char *pos[1];
	int npos = 0, exit_code = 0;
	const struct hd_client_flag flags[] = {{"--json", NULL, &as_json}};
	int rc = hd_client_args(argc, argv, flags, 1, pos, 0, &npos, &t);
	if (rc)
		return rc;

	struct hd_buf url, body;
	long status = 0;
	hd_buf_init(&url, sizeof(t.server) + 16);
	hd_buf_printf(&url, "%s/v1/stats", t.server);
	hd_buf_init(&body, STATS_BODY_MAX);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *c = curl_easy_init();
	struct curl_slist *headers = hd_client_key_header(NULL, &t);
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	CURLcode cc = curl_easy_perform(c);
	json_t *j = NULL;
	if (cc != CURLE_OK) {
		fprintf(stderr, "herald: %s: %s\n", url.data, curl_easy_strerror(cc));
		exit_code = 1;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
	if (status >= 400 || !json_is_object(j)) {
		const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
		fprintf(stderr, "herald: server answered %ld: %s\n", status,
			msg ? msg : body.data ? body.data : "");
		exit_code = 1;
		goto out;
	}
	if (as_json)
		printf("%s\n", body.data);
	else
		print_overview(j);
out:
	json_decref(j);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	hd_buf_fini(&url);
	hd_buf_fini(&body);
	return exit_code;
}
