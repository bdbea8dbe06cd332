/* tail_cmd — see tail_cmd.h. */
#include "cli/tail_cmd.h"
#include "cli/client.h"
#include "core/buf.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One SSE block (an event's stored JSON plus its fields) at most; the
 * server's events are far smaller (HD_EVENT_REPLY_MAX). */
#define TAIL_BLOCK_MAX (32u * 1024 * 1024)
/* An error answer's body, kept to say why. */
#define TAIL_ERROR_MAX 4096
#define TAIL_BACKOFF_FIRST_MS 200
#define TAIL_BACKOFF_MAX_MS 5000
/* No byte for this long (the server sends a keep-alive every 15 s by
 * default): the connection is dead, connect again. */
#define TAIL_SILENCE_S 60L

struct tail {
	struct hd_client_target t;
	const char *topic;
	bool json;
	bool have_after;        /* false: from the tail, until an event is printed */
	uint64_t after;         /* the last offset printed (or --after) */
	struct hd_buf in;       /* bytes of the stream not yet split into blocks */
	struct hd_buf err;      /* the body of an error answer */
	long status;            /* the current answer's status, 0 before its head */
	bool got_event;         /* this connection delivered an event or a comment */
	bool fatal;             /* stop: a refusal or an expiry, exit code 1 */
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Prints one event block's data (the stored event's JSON). */
static void print_event(struct tail *tl, const char *id, const char *data, size_t len)
{
	if (tl->json) {
		fwrite(data, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		json_t *e = json_loadb(data, len, 0, NULL);
		const char *type = json_string_value(json_object_get(e, "type"));
		const char *eid = json_string_value(json_object_get(e, "id"));
		json_t *d = json_object_get(e, "data");
		char *dtext = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		printf("%s %s %s %s\n", id, type ? type : "-", eid ? eid : "-",
		       dtext ? dtext : (e ? "null" : data));
		free(dtext);
		json_decref(e);
	}
	fflush(stdout);
}

/* Handles one block: "id:", "event:" and "data:" lines (WHATWG HTML §9.2). */
static void on_block(struct tail *tl, char *block)
{
	const char *id = NULL, *event = "message";
	struct hd_buf data;
	bool has_data = false;

	hd_buf_init(&data, TAIL_BLOCK_MAX);
	for (char *line = block, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!line[0] || line[0] == ':')
			continue;
		char *v = strchr(line, ':');
		if (v) {
			*v++ = '\0';
			if (*v == ' ')
				v++;
		} else {
			v = line + strlen(line);
		}
		if (strcmp(line, "id") == 0) {
			id = v;
		} else if (strcmp(line, "event") == 0) {
			event = v;
		} else if (strcmp(line, "data") == 0) {
			if (has_data)
				hd_buf_putc(&data, '\n');
			hd_buf_puts(&data, v);
			has_data = true;
		}
	}
	if (has_data) {
		char *end = NULL;
		uint64_t off = id ? strtoull(id, &end, 10) : 0;
		bool numeric = id && *id && end && !*end;
		if (strcmp(event, "reset") == 0) {
			fprintf(stderr, "herald: %s (events were removed by retention)\n", data.data);
		} else if (strcmp(event, "expired") == 0 || strcmp(event, "revoked") == 0) {
			fprintf(stderr, "herald: the stream ended: %s\n", data.data);
			tl->fatal = true;
		} else {
			print_event(tl, id ? id : "-", data.data, data.len);
		}
		/* A reset's id names the offset before its "first" too. */
		if (numeric) {
			tl->after = off;
			tl->have_after = true;
		}
	}
	hd_buf_fini(&data);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct tail *tl = arg;
	size_t len = size * n;

	if (tl->status >= 300) {
		(void)hd_buf_append(&tl->err, p, len); /* past TAIL_ERROR_MAX: not kept, not needed */
		return len;
	}
	if (hd_buf_append(&tl->in, p, len))
		return 0; /* a block past TAIL_BLOCK_MAX: give up on this connection */
	tl->got_event = true;
	char *sep;
	while (!tl->fatal && (sep = strstr(tl->in.data, "\n\n"))) {
		size_t blen = (size_t)(sep - tl->in.data);
		*sep = '\0';
		on_block(tl, tl->in.data);
		hd_buf_consume(&tl->in, blen + 2);
	}
	return tl->fatal ? 0 : len;
}

/* The status is known once the head has arrived: read it before the body. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct tail *tl = arg;
	size_t len = size * n;
	int code;
	if (len > 9 && strncmp(p, "HTTP/", 5) == 0 && sscanf(p, "HTTP/%*s %d", &code) == 1)
		tl->status = code;
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)arg, (void)dt, (void)dn, (void)ut, (void)un;
	return stopping ? 1 : 0;
}

/* Sleeps ms, in slices, unless a signal asks to stop. */
static void pause_ms(long ms)
{
	while (ms > 0 && !stopping) {
		long slice = ms < 50 ? ms : 50;
		struct timespec ts = {0, slice * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* Says why the server refused, from its JSON error body. */
static void say_refusal(const struct tail *tl)
{
	json_t *j = json_loadb(tl->err.data ? tl->err.data : "", tl->err.len, 0, NULL);
	const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	fprintf(stderr, "herald: server answered %ld: %s\n", tl->status,
		msg ? msg : tl->err.data ? tl->err.data : "");
	json_decref(j);
}

/* One connection: returns when the stream ends, fails or is refused. */
static void follow_once(struct tail *tl, CURL *c, struct curl_slist *headers)
{
	char query[48] = "";
	struct hd_buf url;
	char *esc = curl_easy_escape(c, tl->topic, 0);

	if (tl->have_after)
		snprintf(query, sizeof(query), "?after=%" PRIu64, tl->after);
	hd_buf_init(&url, 16384);
	hd_buf_printf(&url, "%s/v1/topics/%s/sse%s", tl->t.server, esc, query);
	curl_free(esc);
	hd_buf_reset(&tl->in);
	hd_buf_reset(&tl->err);
	tl->status = 0;
	tl->got_event = false;
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	CURLcode rc = curl_easy_perform(c);
	if (stopping) {
		/* asked to stop: nothing to say */
	} else if (tl->status >= 400 && tl->status < 500) {
		say_refusal(tl);
		tl->fatal = true;
	} else if (tl->status >= 300) {
		say_refusal(tl);
	} else if (rc != CURLE_OK && !tl->fatal) {
		fprintf(stderr, "herald: %s: %s; connecting again\n", url.data, curl_easy_strerror(rc));
	} else if (!tl->fatal) {
		fprintf(stderr, "herald: the stream ended; connecting again\n");
	}
	hd_buf_fini(&url);
}

int hd_tail_cmd_run(int argc, char **argv)
{
	struct tail tl = {0};
	const char *after = NULL, *pos[1];
	int npos = 0;
	const struct hd_client_flag flags[] = {
		{"--after", &after, NULL},
		{"--json", NULL, &tl.json},
	};
	int rc = hd_client_args(argc, argv, flags, 2, pos, 1, &npos, &tl.t);
	if (rc)
		return rc;
	if (npos < 1) {
		fprintf(stderr, "herald: usage: herald tail TOPIC [--after N] [--json]\n");
		return 2;
	}
	tl.topic = pos[0];
	if (after) {
		char *end = NULL;
		errno = 0;
		tl.after = strtoull(after, &end, 10);
		if (strspn(after, "0123456789") != strlen(after) || strlen(after) > 20 || errno) {
			fprintf(stderr, "herald: --after takes a whole number\n");
			return 2;
		}
		tl.have_after = true;
	}

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	hd_buf_init(&tl.in, TAIL_BLOCK_MAX);
	hd_buf_init(&tl.err, TAIL_ERROR_MAX);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *c = curl_easy_init();
	struct curl_slist *headers = curl_slist_append(NULL, "Accept: text/event-stream");
	headers = hd_client_key_header(headers, &tl.t);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &tl);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &tl);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, TAIL_SILENCE_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);

	long backoff = TAIL_BACKOFF_FIRST_MS;
	while (!stopping && !tl.fatal) {
		follow_once(&tl, c, headers);
		if (stopping || tl.fatal)
			break;
		if (tl.got_event)
			backoff = TAIL_BACKOFF_FIRST_MS; /* it had been working: retry soon */
		pause_ms(backoff);
		backoff = backoff * 2 > TAIL_BACKOFF_MAX_MS ? TAIL_BACKOFF_MAX_MS : backoff * 2;
	}

	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	hd_buf_fini(&tl.in);
	hd_buf_fini(&tl.err);
	return tl.fatal ? 1 : 0;
}
