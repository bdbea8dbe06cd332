/*
 * fuzz_centrifuge — libFuzzer target for the Centrifugo JSON command
 * decoder and the reply/push encoders (src/proto/centrifuge.c).
 *
 * Input: a WebSocket text frame as a client would send it (the seeds in
 * tests/fuzz/corpus/centrifuge/ are such frames). The whole input is
 * decoded as one command line, then each line hd_centrifuge_next_line yields from
 * it is decoded too.
 *
 * Properties checked:
 *   - a refused command sets err (code == rc, a message) and leaves the
 *     command empty; decoding again without an error struct gives the
 *     same result;
 *   - a decoded command keeps its promises: a pong has id 0, an unknown
 *     command a non-zero id; every string is NUL-terminated inside the
 *     command's storage (or the empty string); raw data is minified JSON
 *     inside the storage; at most HD_CENTRIFUGE_SUBS_MAX subs;
 *   - re-encoding its parts (its channel as an error message, its epoch
 *     and offset in a subscribe reply, its subs in a connect reply, its
 *     data as a publication, …) gives compact, valid JSON objects with no
 *     raw newline, read back with hd_json_text_minify;
 *   - the subscribe request, written back as a command line with its
 *     strings escaped, decodes to the same values.
 */
#include "core/buf.h"
#include "core/err.h"
#include "proto/centrifuge.h"
#include "proto/json_text.h"
#include "fuzz_check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX (1 << 20)


static bool inside(const struct hd_centrifuge_command *c, const char *p, size_t n)
{
	return p >= c->mem && n <= c->mem_len && (size_t)(p - c->mem) <= c->mem_len - n;
}

static void check_string(const struct hd_centrifuge_command *c, const char *s)
{
	CHECK(s != NULL);
	if (s[0] == '\0')
		return; /* "" may be the decoder's static empty string */
	CHECK(inside(c, s, 1));
	CHECK(memchr(s, '\0', c->mem_len - (size_t)(s - c->mem)) != NULL);
}

static void check_raw(const struct hd_centrifuge_command *c, struct hd_centrifuge_raw r)
{
	struct hd_json_text_scan sc = {0};
	char *out;

	if (!r.p)
		return;
	CHECK(r.n > 0 && inside(c, r.p, r.n));
	out = malloc(r.n);
	CHECK(hd_json_text_minify(r.p, r.n, out, &sc, NULL) == 0);
	CHECK(sc.out_len == r.n && memcmp(out, r.p, r.n) == 0);
	free(out);
}

static void check_sub(const struct hd_centrifuge_command *c, const struct hd_centrifuge_sub_req *s)
{
	check_string(c, s->channel);
	check_string(c, s->token);
	check_string(c, s->epoch);
	check_raw(c, s->data);
}

/* b must hold exactly one compact JSON object with no raw newline. */
static void check_output(struct hd_buf *b, int rc)
{
	struct hd_json_text_scan sc = {0};
	struct hd_error err;
	char *out;

	CHECK(rc == 0);
	CHECK(b->len > 0 && b->data[0] == '{' && strlen(b->data) == b->len);
	CHECK(memchr(b->data, '\n', b->len) == NULL);
	out = malloc(b->len);
	rc = hd_json_text_minify(b->data, b->len, out, &sc, &err);
	if (rc)
		fprintf(stderr, "bad output: %s\n%s\n", err.msg, b->data);
	CHECK(rc == 0);
	CHECK(sc.out_len == b->len && memcmp(out, b->data, b->len) == 0);
	free(out);
	hd_buf_reset(b);
}

/* Writes the subscribe request back as a command and decodes it again. */
static void round_trip(const struct hd_centrifuge_command *c)
{
	const struct hd_centrifuge_sub_req *s = &c->sub;
	struct hd_centrifuge_command again;
	struct hd_error err;
	struct hd_buf b;
	int rc = 0;

	hd_buf_init(&b, OUT_MAX);
	rc |= hd_buf_printf(&b, "{\"subscribe\":{\"channel\":\"");
	rc |= hd_buf_json_escape(&b, s->channel, strlen(s->channel));
	rc |= hd_buf_puts(&b, "\",\"token\":\"");
	rc |= hd_buf_json_escape(&b, s->token, strlen(s->token));
	rc |= hd_buf_puts(&b, "\",\"epoch\":\"");
	rc |= hd_buf_json_escape(&b, s->epoch, strlen(s->epoch));
	rc |= hd_buf_printf(&b, "\",\"offset\":%llu,\"flag\":%lld,\"recover\":%s",
			    (unsigned long long)s->offset, (long long)s->flag,
			    s->recover ? "true" : "false");
	if (s->data.p) {
		rc |= hd_buf_puts(&b, ",\"data\":");
		rc |= hd_buf_append(&b, s->data.p, s->data.n);
	}
	rc |= hd_buf_printf(&b, "},\"id\":%u}", c->id);
	CHECK(rc == 0);
	if (b.len <= HD_CENTRIFUGE_LINE_MAX) {
		rc = hd_centrifuge_decode(b.data, b.len, &again, &err);
		if (rc)
			fprintf(stderr, "round trip refused: %s\n%s\n", err.msg, b.data);
		CHECK(rc == 0);
		CHECK(again.method == HD_CENTRIFUGE_SUBSCRIBE && again.id == c->id);
		CHECK(strcmp(again.sub.channel, s->channel) == 0);
		CHECK(strcmp(again.sub.token, s->token) == 0);
		CHECK(strcmp(again.sub.epoch, s->epoch) == 0);
		CHECK(again.sub.offset == s->offset && again.sub.flag == s->flag);
		CHECK(again.sub.recover == s->recover);
		CHECK(again.sub.data.n == s->data.n);
		CHECK(s->data.n == 0 || memcmp(again.sub.data.p, s->data.p, s->data.n) == 0);
		hd_centrifuge_command_fini(&again);
	}
	hd_buf_fini(&b);
}

/* Encodes parts of a decoded command with every encoder. */
static void re_encode(const struct hd_centrifuge_command *c)
{
	struct hd_centrifuge_sub_result subs[HD_CENTRIFUGE_SUBS_MAX];
	/* data is minified JSON (as a stored event is): both shapes apply. */
	struct hd_centrifuge_pub pub = {c->data.p, c->data.n, c->sub.offset, c->sub.join_leave,
					c->sub.positioned, c->sub.recoverable ? c->sub.epoch : NULL,
					c->sub.recoverable ? strlen(c->sub.epoch) : 0};
	struct hd_centrifuge_client_info info = {.client = c->token, .user = c->name};
	struct hd_buf b;

	hd_buf_init(&b, OUT_MAX);
	check_output(&b, hd_centrifuge_reply_error(&b, c->id, 107, c->sub.channel, c->sub.recover));
	check_output(&b, hd_centrifuge_reply_empty(&b, c->id, c->method));
	struct hd_centrifuge_sub_result r = {
		.recoverable = c->sub.recoverable,
		.positioned = c->sub.positioned,
		.epoch = c->sub.epoch,
		.offset = c->sub.offset,
		.recovered = c->sub.recover,
		.pubs = &pub,
		.npubs = c->data.p ? 1 : 0,
	};
	check_output(&b, hd_centrifuge_reply_subscribe(&b, c->id, &r));
	for (size_t i = 0; i < c->nsubs; i++)
		subs[i] = (struct hd_centrifuge_sub_result){
			.channel = c->subs[i].channel,
			.epoch = c->subs[i].epoch,
			.offset = c->subs[i].offset,
			.recoverable = c->subs[i].recover,
		};
	struct hd_centrifuge_connect_result cr = {
		.client = c->token,
		.version = c->version,
		.node = c->name,
		.ping = c->id,
		.subs = subs,
		.nsubs = c->nsubs,
	};
	check_output(&b, hd_centrifuge_reply_connect(&b, c->id, &cr));
	check_output(&b, hd_centrifuge_reply_history(&b, c->id, &pub, c->data.p ? 1 : 0, c->since_epoch,
					     c->since_offset));
	check_output(&b, hd_centrifuge_reply_presence(&b, c->id, &info, 1));
	check_output(&b, hd_centrifuge_reply_presence_stats(&b, c->id, c->id, (uint32_t)c->limit));
	check_output(&b, hd_centrifuge_reply_refresh(&b, c->id, c->token, c->rpc_method, c->reverse,
					     c->id));
	if (c->data.p)
		check_output(&b, hd_centrifuge_push_pub(&b, c->sub.channel, &pub));
	check_output(&b, hd_centrifuge_push_join(&b, c->sub.channel, &info));
	check_output(&b, hd_centrifuge_push_leave(&b, c->sub.epoch, &info));
	check_output(&b, hd_centrifuge_push_unsubscribe(&b, c->sub.channel, c->id, c->rpc_method));
	check_output(&b, hd_centrifuge_push_disconnect(&b, c->id, c->since_epoch, c->has_since));
	hd_buf_fini(&b);
}

static void decode_one(const char *line, size_t n)
{
	struct hd_centrifuge_command c;
	struct hd_error err;
	int rc = hd_centrifuge_decode(line, n, &c, &err);

	if (rc) {
		CHECK(rc < 0 && err.code == rc && err.msg[0]);
		CHECK(c.mem == NULL && c.subs == NULL && c.nsubs == 0);
		CHECK(rc == HD_EINVAL || (rc == HD_ETOOBIG && n > HD_CENTRIFUGE_LINE_MAX));
		hd_centrifuge_command_fini(&c);
		return;
	}
	CHECK(err.code == 0 && err.msg[0] == '\0');
	CHECK(c.method >= HD_CENTRIFUGE_PONG && c.method <= HD_CENTRIFUGE_UNKNOWN);
	CHECK(c.method != HD_CENTRIFUGE_PONG || c.id == 0);
	CHECK(c.method != HD_CENTRIFUGE_UNKNOWN || c.id != 0);
	CHECK(c.nsubs <= HD_CENTRIFUGE_SUBS_MAX && (c.nsubs == 0 || c.subs != NULL));
	check_string(&c, c.token);
	check_string(&c, c.name);
	check_string(&c, c.version);
	check_string(&c, c.since_epoch);
	check_string(&c, c.rpc_method);
	check_raw(&c, c.data);
	check_sub(&c, &c.sub);
	for (size_t i = 0; i < c.nsubs; i++)
		check_sub(&c, &c.subs[i]);
	re_encode(&c);
	if (c.method == HD_CENTRIFUGE_SUBSCRIBE)
		round_trip(&c);
	hd_centrifuge_command_fini(&c);
	hd_centrifuge_command_fini(&c);
}

/* Decoding without an error struct must give the same answer. */
static void same_without_err(const char *line, size_t n)
{
	struct hd_centrifuge_command a, b;
	int ra = hd_centrifuge_decode(line, n, &a, NULL);
	int rb = hd_centrifuge_decode(line, n, &b, NULL);

	CHECK(ra == rb && a.method == b.method && a.id == b.id);
	hd_centrifuge_command_fini(&a);
	hd_centrifuge_command_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *frame = (const char *)data, *line;
	size_t pos = 0, n, last = 0;

	decode_one(frame, size);
	same_without_err(frame, size);
	while (hd_centrifuge_next_line(frame, size, &pos, &line, &n)) {
		CHECK(line >= frame + last && n > 0 && (size_t)(line - frame) + n <= size);
		CHECK(memchr(line, '\n', n) == NULL);
		CHECK(pos > last && pos <= size);
		last = pos;
		decode_one(line, n);
	}
	CHECK(pos == size);
	return 0;
}
