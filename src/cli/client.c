/* client — see client.h. */
#include "cli/client.h"
#include "core/buf.h"
#include "core/uuid.h"
#include "proto/cloudevent.h"
#include "proto/json_text.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_BODY_MAX (64u * 1024 * 1024)

struct cli_opts {
	struct hd_client_target t;
	const char *type, *source, *id;
	const char *after, *limit;
	const char *pos[2];
	int npos;
};

/* "--limit --server URL" means the value was forgotten, not that the limit
 * is "--server". */
static bool is_flag(const char *a)
{
	return a[0] == '-' && a[1] == '-' && a[2];
}

int hd_client_args(int argc, char **argv, const struct hd_client_flag *flags, size_t nflags,
		   const char **pos, int max_pos, int *npos, struct hd_client_target *t)
{
	const char *env = getenv("HERALD_SERVER");
	const char *server = env && *env ? env : "http://127.0.0.1:8080";
	const char *key = getenv("HERALD_API_KEY");
	t->api_key = key && *key ? key : NULL;
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		bool known = false;
		if (strcmp(a, "--server") == 0)
			slot = &server;
		else if (strcmp(a, "--api-key") == 0)
			slot = &t->api_key;
		for (size_t f = 0; !slot && !known && f < nflags; f++) {
			if (strcmp(a, flags[f].name) != 0)
				continue;
			if (flags[f].on)
				*flags[f].on = known = true;
			else
				slot = flags[f].value;
		}
		if (known)
			continue;
		if (slot) {
			if (i + 1 >= argc || is_flag(argv[i + 1])) {
				fprintf(stderr, "herald: %s needs a value\n", a);
				return 2;
			}
			*slot = argv[++i];
			if (!**slot) {
				fprintf(stderr, "herald: %s must not be empty\n", a);
				return 2;
			}
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "herald: unknown flag %s\n", a);
			return 2;
		} else if (*npos < max_pos) {
			pos[(*npos)++] = a;
		} else {
			fprintf(stderr, "herald: unexpected argument '%s'\n", a);
			return 2;
		}
	}
	/* "http://host:8080/" is how URLs are often written; the API paths
	 * are appended with their own slash. */
	size_t n = strlen(server);
	while (n > 0 && server[n - 1] == '/')
		n--;
	if (n >= sizeof(t->server)) {
		fprintf(stderr, "herald: --server is longer than %zu bytes\n", sizeof(t->server) - 1);
		return 2;
	}
	memcpy(t->server, server, n);
	t->server[n] = '\0';
	return 0;
}

static int parse(int argc, char **argv, struct cli_opts *o, int max_pos)
{
	const struct hd_client_flag flags[] = {
		{"--type", &o->type, NULL},   {"--source", &o->source, NULL},
		{"--id", &o->id, NULL},       {"--after", &o->after, NULL},
		{"--limit", &o->limit, NULL},
	};
	int rc = hd_client_args(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), o->pos, max_pos,
				&o->npos, &o->t);
	if (rc)
		return rc;
	if (o->npos < 1) {
		fprintf(stderr, "herald: a TOPIC is required (see herald --help)\n");
		return 2;
	}
	return 0;
}

/* Whether data is one JSON value, by the same rules the server applies to
 * a JSON body (so big integers and 1E400 count, as they do there). */
static bool is_json(const char *data, size_t n)
{
	struct hd_json_text_scan sc = {.depth_max = HD_JSON_TEXT_DEPTH_MAX - 1};
	char *scratch = malloc(n ? n : 1);
	bool ok = scratch && hd_json_text_minify(data, n, scratch, &sc, NULL) == 0;
	free(scratch);
	return ok;
}

/*
 * Appends "name: value" with value percent-encoded as the CloudEvents HTTP
 * binding asks (section 3.1.3.2): space, '"', '%' and every byte outside
 * printable ASCII. The server decodes it once, so what the user typed
 * arrives unchanged, "%41" included.
 */
static void put_ce_header(struct hd_buf *h, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	hd_buf_reset(h);
	hd_buf_printf(h, "%s: ", name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '%') {
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			hd_buf_append(h, esc, 3);
		} else {
			hd_buf_putc(h, (char)*p);
		}
	}
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	return hd_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* Performs the request and prints the answer. Returns the exit code. */
static int perform(CURL *c, const char *url, struct curl_slist *headers)
{
	struct hd_buf body;
	long status = 0;
	hd_buf_init(&body, CLI_BODY_MAX);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	/* Send "/v1/topics/../events" as it is, so the server can say why
	 * ".." is not a topic instead of curl resolving it away. */
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	CURLcode rc = curl_easy_perform(c);
	int exit_code = 0;
	if (rc != CURLE_OK) {
		fprintf(stderr, "herald: %s: %s\n", url, curl_easy_strerror(rc));
		exit_code = 1;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 400) {
			json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
			const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
			fprintf(stderr, "herald: server answered %ld: %s\n", status, msg ? msg : body.data ? body.data : "");
			json_decref(j);
			exit_code = 1;
		} else {
			printf("%s\n", body.data ? body.data : "");
		}
	}
	hd_buf_fini(&body);
	return exit_code;
}

static int read_stdin(struct hd_buf *b)
{
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if (hd_buf_append(b, chunk, n))
			return -1;
	return 0;
}

struct curl_slist *hd_client_key_header(struct curl_slist *headers, const struct hd_client_target *t)
{
	char h[512];
	if (!t->api_key)
		return headers;
	snprintf(h, sizeof(h), "X-API-Key: %s", t->api_key);
	return curl_slist_append(headers, h);
}

static char *url_for(CURL *c, const char *server, const char *topic, const char *query)
{
	char *esc = curl_easy_escape(c, topic, 0);
	struct hd_buf u;
	hd_buf_init(&u, 8192);
	hd_buf_printf(&u, "%s/v1/topics/%s/events%s", server, esc, query ? query : "");
	curl_free(esc);
	return hd_buf_steal(&u, NULL);
}

int hd_client_publish(int argc, char **argv)
{
	struct cli_opts o = {0};
	struct hd_buf data, h;
	struct curl_slist *headers = NULL;
	int rc = parse(argc, argv, &o, 2);
	if (rc)
		return rc;
	hd_buf_init(&data, CLI_BODY_MAX);
	hd_buf_init(&h, 4096);
	if (o.npos < 2 || strcmp(o.pos[1], "-") == 0) {
		if (read_stdin(&data)) {
			fprintf(stderr, "herald: stdin is larger than %u bytes\n", CLI_BODY_MAX);
			hd_buf_fini(&data);
			return 2;
		}
	} else {
		hd_buf_puts(&data, o.pos[1]);
	}
	const char *body = data.data ? data.data : "";
	headers = curl_slist_append(headers,
				    is_json(body, data.len) ? "Content-Type: application/json"
				    : hd_json_text_utf8_valid(body, data.len)
					    ? "Content-Type: text/plain; charset=utf-8"
					    : "Content-Type: application/octet-stream");
	if (o.type || o.source || o.id) {
		/* Binary-mode CloudEvent: the attributes travel as ce- headers. */
		char uuid[37];
		hd_uuid_v4(uuid);
		const char *attrs[][2] = {{"ce-specversion", "1.0"}, {"ce-id", o.id ? o.id : uuid},
					  {"ce-source", o.source ? o.source : "/herald-cli"},
					  {"ce-type", o.type ? o.type : "herald.message"}};
		for (size_t i = 0; i < 4; i++) {
			put_ce_header(&h, attrs[i][0], attrs[i][1]);
			headers = curl_slist_append(headers, h.data);
		}
	}
	headers = hd_client_key_header(headers, &o.t);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *c = curl_easy_init();
	char *url = url_for(c, o.t.server, o.pos[0], NULL);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, data.data ? data.data : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)data.len);
	rc = perform(c, url, headers);
	free(url);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	hd_buf_fini(&data);
	hd_buf_fini(&h);
	return rc;
}

int hd_client_read(int argc, char **argv)
{
	struct cli_opts o = {0};
	char query[128];
	int rc = parse(argc, argv, &o, 1);
	if (rc)
		return rc;
	if ((o.after && (!*o.after || strspn(o.after, "0123456789") != strlen(o.after) || strlen(o.after) > 20)) ||
	    (o.limit && (!*o.limit || strspn(o.limit, "0123456789") != strlen(o.limit) || strlen(o.limit) > 20))) {
		fprintf(stderr, "herald: --after and --limit take whole numbers\n");
		return 2;
	}
	snprintf(query, sizeof(query), "?after=%s&limit=%s", o.after ? o.after : "0",
		 o.limit ? o.limit : "100");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *c = curl_easy_init();
	char *url = url_for(c, o.t.server, o.pos[0], query);
	struct curl_slist *headers = hd_client_key_header(NULL, &o.t);
	rc = perform(c, url, headers);
	curl_slist_free_all(headers);
	free(url);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return rc;
}
