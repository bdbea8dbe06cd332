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
 *   - a decoded command keeps its promises (fuzz_centrifuge_common.h);
 *     raw data is minified JSON inside the storage;
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
#include "fuzz_centrifuge_common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_raw(const struct hd_centrifuge_command *c, struct hd_centrifuge_raw r)
{
	struct hd_json_text_scan sc = {0};
	char *out;

	if (!r.p)
		return;
	CHECK(r.n > 0 && fuzz_centrifuge_inside(c, r.p, r.n));
	out = malloc(r.n);
	CHECK(hd_json_text_minify(r.p, r.n, out, &sc, NULL) == 0);
	CHECK(sc.out_len == r.n && memcmp(out, r.p, r.n) == 0);
	free(out);
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

	hd_buf_init(&b, FUZZ_CENTRIFUGE_OUT_MAX);
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

static void decode_one(const char *line, size_t n)
{
	struct hd_centrifuge_command c;
	struct hd_error err;
	int rc = hd_centrifuge_decode(line, n, &c, &err);

	if (rc) {
		fuzz_centrifuge_check_refused(&c, rc, &err, n);
		hd_centrifuge_command_fini(&c);
		return;
	}
	fuzz_centrifuge_check_command(&c, &err, check_raw);
	/* data is minified JSON (as a stored event is): both shapes apply;
	 * a recoverable epoch doubles as a delta. */
	struct hd_centrifuge_pub pub = {c.data.p, c.data.n, c.sub.offset, c.sub.join_leave, c.sub.positioned,
					c.sub.recoverable ? c.sub.epoch : NULL,
					c.sub.recoverable ? strlen(c.sub.epoch) : 0};
	fuzz_centrifuge_re_encode(hd_centrifuge_codec_of(HD_CENTRIFUGE_FORMAT_JSON), &c, &pub, check_output);
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
