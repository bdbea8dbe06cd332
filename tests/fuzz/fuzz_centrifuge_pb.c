/*
 * fuzz_centrifuge_pb — libFuzzer target for the Centrifugo protobuf
 * command decoder and the reply/push encoders (src/proto/centrifuge_pb.c).
 *
 * Input: a WebSocket binary frame as a client would send it, that is
 * varint-length-delimited Commands (the seeds in
 * tests/fuzz/corpus/centrifuge_pb/ are frames npm centrifuge's protobuf
 * build sent, from tests/js/pb_fixtures.js). The whole input is decoded as
 * one Command and as an EmulationRequest, then each message
 * hd_centrifuge_pb_next yields is decoded.
 *
 * Properties checked:
 *   - the iterator stays inside the frame and moves forward; it stops with
 *     0 exactly at the end or with an error;
 *   - a refused command sets err (code == rc, a message) and leaves the
 *     command empty; decoding again without an error struct gives the
 *     same answer;
 *   - a decoded command keeps its promises: a pong has id 0, an unknown
 *     command a non-zero id; every string is NUL-terminated inside the
 *     command's storage (or the empty string); raw data lies inside the
 *     storage; at most HD_CENTRIFUGE_SUBS_MAX subs;
 *   - re-encoding its parts with every encoder gives exactly one
 *     delimited message that fills the output (data that is minified
 *     JSON is also encoded as a payload publication: data and tags).
 */
#include "core/buf.h"
#include "core/err.h"
#include "proto/centrifuge_pb.h"
#include "proto/json_text.h"
#include "fuzz_check.h"

#include <stdbool.h>
#include <stdint.h>
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
	if (!r.p)
		return;
	CHECK(inside(c, r.p, r.n));
}

static void check_sub(const struct hd_centrifuge_command *c, const struct hd_centrifuge_sub_req *s)
{
	check_string(c, s->channel);
	check_string(c, s->token);
	check_string(c, s->epoch);
	check_raw(c, s->data);
}

/* b must hold exactly one delimited message. */
static void check_output(struct hd_buf *b, int rc)
{
	size_t pos = 0, n;
	const uint8_t *m;
	CHECK(rc == 0);
	CHECK(hd_centrifuge_pb_next((const uint8_t *)b->data, b->len, &pos, &m, &n) == 1);
	CHECK(pos == b->len);
	hd_buf_reset(b);
}

/* Whether data is minified JSON (a stored event is): then the payload
 * split runs on it too. */
static bool minified_json(struct hd_centrifuge_raw r)
{
	struct hd_json_text_scan sc = {0};
	bool ok;
	char *out;
	if (!r.p || !r.n)
		return false;
	out = malloc(r.n);
	ok = hd_json_text_minify(r.p, r.n, out, &sc, NULL) == 0 && sc.out_len == r.n &&
	     memcmp(out, r.p, r.n) == 0;
	free(out);
	return ok;
}

static void re_encode(const struct hd_centrifuge_command *c)
{
	struct hd_centrifuge_sub_result subs[HD_CENTRIFUGE_SUBS_MAX];
	struct hd_centrifuge_pub pub = {.data = c->data.p, .len = c->data.n, .offset = c->sub.offset,
				       .payload = minified_json(c->data), .as_string = c->sub.recover};
	struct hd_centrifuge_client_info info = {.client = c->token, .user = c->name};
	struct hd_buf b;

	hd_buf_init(&b, OUT_MAX);
	check_output(&b, hd_centrifuge_pb_reply_error(&b, c->id, 107, c->sub.channel, c->sub.recover));
	check_output(&b, hd_centrifuge_pb_reply_empty(&b, c->id, c->method));
	struct hd_centrifuge_sub_result r = {
		.recoverable = c->sub.recoverable,
		.positioned = c->sub.positioned,
		.epoch = c->sub.epoch,
		.offset = c->sub.offset,
		.recovered = c->sub.recover,
		.pubs = &pub,
		.npubs = c->data.p ? 1 : 0,
	};
	check_output(&b, hd_centrifuge_pb_reply_subscribe(&b, c->id, &r));
	for (size_t i = 0; i < c->nsubs; i++)
		subs[i] = (struct hd_centrifuge_sub_result){
			.channel = c->subs[i].channel,
			.epoch = c->subs[i].epoch,
			.offset = c->subs[i].offset,
			.recoverable = c->subs[i].recover,
		};
	struct hd_centrifuge_connect_result cr = {
		.client = c->token, .version = c->version, .node = c->name, .ping = c->id,
		.subs = subs, .nsubs = c->nsubs,
	};
	check_output(&b, hd_centrifuge_pb_reply_connect(&b, c->id, &cr));
	check_output(&b, hd_centrifuge_pb_reply_history(&b, c->id, &pub, c->data.p ? 1 : 0, c->since_epoch,
							c->since_offset));
	check_output(&b, hd_centrifuge_pb_reply_presence(&b, c->id, &info, 1));
	check_output(&b, hd_centrifuge_pb_reply_presence_stats(&b, c->id, c->id, (uint32_t)c->limit));
	check_output(&b, hd_centrifuge_pb_reply_refresh(&b, c->id, c->token, c->rpc_method, c->reverse, c->id));
	check_output(&b, hd_centrifuge_pb_push_pub(&b, c->sub.channel, &pub));
	check_output(&b, hd_centrifuge_pb_push_join(&b, c->sub.channel, &info));
	check_output(&b, hd_centrifuge_pb_push_leave(&b, c->sub.epoch, &info));
	check_output(&b, hd_centrifuge_pb_push_unsubscribe(&b, c->sub.channel, c->id, c->rpc_method));
	check_output(&b, hd_centrifuge_pb_push_disconnect(&b, c->id, c->since_epoch, c->has_since));
	hd_buf_fini(&b);
}

static void decode_one(const uint8_t *msg, size_t n)
{
	struct hd_centrifuge_command c, again;
	struct hd_error err;
	int rc = hd_centrifuge_pb_decode(msg, n, &c, &err);
	int rc2 = hd_centrifuge_pb_decode(msg, n, &again, NULL);

	CHECK(rc == rc2 && c.method == again.method && c.id == again.id);
	hd_centrifuge_command_fini(&again);
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
	hd_centrifuge_command_fini(&c);
	hd_centrifuge_command_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0, last = 0, n;
	const uint8_t *msg;
	int rc;

	struct hd_centrifuge_pb_emulation em;
	if (hd_centrifuge_pb_emulation_decode(data, size, &em, NULL) == 0) {
		CHECK(em.session_len == 0 || ((const uint8_t *)em.session >= data &&
		      (const uint8_t *)em.session + em.session_len <= data + size));
		CHECK(em.data_len == 0 || ((const uint8_t *)em.data >= data &&
		      (const uint8_t *)em.data + em.data_len <= data + size));
	}
	decode_one(data, size);
	while ((rc = hd_centrifuge_pb_next(data, size, &pos, &msg, &n)) == 1) {
		CHECK(msg >= data + last && (size_t)(msg - data) + n <= size);
		CHECK(pos > last && pos <= size);
		last = pos;
		decode_one(msg, n);
	}
	CHECK(rc == 0 ? pos == size : (rc == HD_EINVAL || rc == HD_ETOOBIG));
	return 0;
}
