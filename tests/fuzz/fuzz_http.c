/*
 * fuzz_http — libFuzzer target for the HTTP request parser
 * (src/http/request.c) and the query helpers (src/http/query.c).
 *
 * The input is parsed as a stream of pipelined requests, the way the server
 * feeds it: bytes "arrive" in pieces, and after each complete request the
 * unconsumed rest is fed again. This is done several times with different
 * piece sizes (the whole input, single bytes, a size taken from the first
 * byte, and sizes read from the input itself), and every run must produce
 * the same requests and the same final answer: the parser must not depend
 * on where reads happen to end. Each complete request is checked against
 * the parser's promises (NUL-terminated strings, lower-case token names,
 * trimmed values, limits), and its path and query go through hd_query_url_decode
 * and hd_query_next. A broken promise aborts.
 */
#include "http/query.h"
#include "http/request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX 1024
#define MAX_HEADERS 16
#define BODY_MAX 2048
#define DECODE_MAX 64

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_FIXED, SPLIT_DATA, SPLIT__COUNT };

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http: broken promise: %s\n", what);
		abort();
	}
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t mix_int(uint64_t h, long v)
{
	return mix(h, &v, sizeof(v));
}

static uint64_t mix_str(uint64_t h, const char *s, size_t n)
{
	return mix(mix_int(h, (long)n), s, n);
}

/* Exercises the query helpers on one request's path and query. */
static void decode_parts(const struct hd_http_request *req)
{
	char out[DECODE_MAX];
	size_t pos = 0, last = 0, qlen = strlen(req->query);
	long n;

	n = hd_query_url_decode(req->path, req->path_len, out, sizeof(out), false);
	check(n < (long)sizeof(out) && (n < 0 || strlen(out) == (size_t)n), "path decode length");
	/* Every parameter named like the first one, then a fixed name. */
	char name[DECODE_MAX];
	size_t key = strcspn(req->query, "=&");
	if (hd_query_url_decode(req->query, key, name, sizeof(name), true) < 0)
		strcpy(name, "a");
	while ((n = hd_query_next(req->query, name, &pos, out, sizeof(out))) != -1) {
		check(n == -2 || (n >= 0 && n < (long)sizeof(out) && strlen(out) == (size_t)n),
		      "query value length");
		check(pos > last && pos <= qlen, "query position advances");
		last = pos;
	}
	n = hd_query_get(req->query, "topic", out, 4);
	check(n >= -2 && n < 4, "query_get bounds");
}

static uint64_t check_request(const struct hd_http_request *req, uint64_t h)
{
	check(strlen(req->path) == req->path_len, "path length");
	check(req->nheaders <= MAX_HEADERS, "max_headers");
	check(req->body_len <= BODY_MAX && req->body[req->body_len] == '\0', "body");
	h = mix_int(h, req->method);
	h = mix_int(h, req->keep_alive);
	h = mix_str(h, req->path, req->path_len);
	h = mix_str(h, req->query, strlen(req->query));
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct hd_header *f = &req->headers[i];
		check(strlen(f->name) == f->name_len && f->name_len > 0, "name length");
		check(strlen(f->value) == f->value_len, "value length");
		for (size_t j = 0; j < f->name_len; j++)
			check(!(f->name[j] >= 'A' && f->name[j] <= 'Z') && f->name[j] != ' ',
			      "lower-case token name");
		check(f->value_len == 0 || (f->value[0] != ' ' && f->value[0] != '\t' &&
					    f->value[f->value_len - 1] != ' ' &&
					    f->value[f->value_len - 1] != '\t'),
		      "trimmed value");
		h = mix_str(h, f->name, f->name_len);
		h = mix_str(h, f->value, f->value_len);
	}
	h = mix_str(h, req->body, req->body_len);
	decode_parts(req);
	return h;
}

/* The size of the next piece to arrive. */
static size_t piece(enum split split, const uint8_t *data, size_t size, size_t k)
{
	switch (split) {
	case SPLIT_WHOLE:
		return size;
	case SPLIT_BYTES:
		return 1;
	case SPLIT_FIXED:
		return (size_t)(data[0] % 29) + 2;
	default:
		return (size_t)(data[(k * 7 + 1) % size] % 64) + 1;
	}
}

/* Parses the whole input as pipelined requests; returns a digest of what
 * was seen. */
static uint64_t run(const uint8_t *data, size_t size, enum split split)
{
	const char *in = (const char *)data;
	struct hd_http_limits lim;
	struct hd_request_parser p;
	struct hd_http_request req;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t off = 0, avail = 0, k = 0;
	int rc = HD_REQUEST_MORE;

	hd_http_limits_default(&lim);
	lim.header_max = HEADER_MAX;
	lim.max_headers = MAX_HEADERS;
	lim.body_max = BODY_MAX;
	hd_request_init(&p, &lim);
	while (off < size && rc >= 0) {
		size_t used;
		if (off == avail) {
			size_t n = piece(split, data, size, k++);
			avail = n > size - avail ? size : avail + n;
		}
		rc = hd_request_feed(&p, in + off, avail - off, &used);
		check(used <= avail - off, "consumed within the input");
		check(rc != HD_REQUEST_MORE || used == avail - off, "MORE consumes everything");
		off += used;
		if (rc == HD_REQUEST_COMPLETE) {
			memset(&req, 0, sizeof(req));
			hd_request_get(&p, &req);
			h = check_request(&req, h);
		}
	}
	h = mix_int(h, rc);
	h = mix_int(h, rc == HD_REQUEST_COMPLETE ? HD_REQUEST_DONE : hd_request_phase(&p));
	hd_request_fini(&p);
	return h;
}

static void decode_raw(const uint8_t *data, size_t size)
{
	char out[DECODE_MAX];
	size_t n = size < 3 * DECODE_MAX ? size : 3 * DECODE_MAX;
	long r;

	for (int plus = 0; plus < 2; plus++) {
		r = hd_query_url_decode((const char *)data, n, out, sizeof(out), plus);
		check(r < (long)sizeof(out) && (r < 0 || out[r] == '\0'), "raw decode");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t first;

	if (size == 0)
		return 0;
	first = run(data, size, SPLIT_WHOLE);
	for (int s = SPLIT_BYTES; s < SPLIT__COUNT; s++)
		check(run(data, size, (enum split)s) == first, "same requests for every split");
	decode_raw(data, size);
	return 0;
}
