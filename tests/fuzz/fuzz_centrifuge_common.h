/*
 * fuzz_centrifuge_common — what the two Centrifugo fuzzers
 * (fuzz_centrifuge.c: JSON, fuzz_centrifuge_pb.c: protobuf) check on a
 * decoded command, and the run of every encoder of a format
 * (proto/centrifuge_codec.h) over its parts. Each fuzzer supplies what
 * differs by format: how raw data must look and how one encoded message
 * is checked.
 */
#ifndef HD_FUZZ_CENTRIFUGE_COMMON_H
#define HD_FUZZ_CENTRIFUGE_COMMON_H

#include "core/buf.h"
#include "proto/centrifuge.h"
#include "proto/centrifuge_codec.h"
#include "fuzz_check.h"

#include <stdbool.h>
#include <string.h>

#define FUZZ_CENTRIFUGE_OUT_MAX (1 << 20)

/* Checks raw data r of command c (it lies inside c's storage, and more). */
typedef void (*fuzz_centrifuge_raw_fn)(const struct hd_centrifuge_command *c, struct hd_centrifuge_raw r);
/* Checks that encoder result rc left exactly one message in b, then
 * empties b. */
typedef void (*fuzz_centrifuge_output_fn)(struct hd_buf *b, int rc);

static inline bool fuzz_centrifuge_inside(const struct hd_centrifuge_command *c, const char *p, size_t n)
{
	return p >= c->mem && n <= c->mem_len && (size_t)(p - c->mem) <= c->mem_len - n;
}

static inline void fuzz_centrifuge_check_string(const struct hd_centrifuge_command *c, const char *s)
{
	CHECK(s != NULL);
	if (s[0] == '\0')
		return; /* "" may be the decoder's static empty string */
	CHECK(fuzz_centrifuge_inside(c, s, 1));
	CHECK(memchr(s, '\0', c->mem_len - (size_t)(s - c->mem)) != NULL);
}

static inline void fuzz_centrifuge_check_sub(const struct hd_centrifuge_command *c,
					     const struct hd_centrifuge_sub_req *s, fuzz_centrifuge_raw_fn raw)
{
	fuzz_centrifuge_check_string(c, s->channel);
	fuzz_centrifuge_check_string(c, s->token);
	fuzz_centrifuge_check_string(c, s->epoch);
	raw(c, s->data);
}

/* The promises of a refused decode (rc != 0 with err filled, n the input's
 * length): an error code, a message, an empty command. */
static inline void fuzz_centrifuge_check_refused(const struct hd_centrifuge_command *c, int rc,
						 const struct hd_error *err, size_t n)
{
	CHECK(rc < 0 && err->code == rc && err->msg[0]);
	CHECK(c->mem == NULL && c->subs == NULL && c->nsubs == 0);
	CHECK(rc == HD_EINVAL || (rc == HD_ETOOBIG && n > HD_CENTRIFUGE_LINE_MAX));
}

/* The promises of a decoded command: a pong has id 0, an unknown command a
 * non-zero id; every string is NUL-terminated inside the command's storage
 * (or the empty string); raw data passes raw; at most
 * HD_CENTRIFUGE_SUBS_MAX subs. */
static inline void fuzz_centrifuge_check_command(const struct hd_centrifuge_command *c, const struct hd_error *err,
						 fuzz_centrifuge_raw_fn raw)
{
	CHECK(err->code == 0 && err->msg[0] == '\0');
	CHECK(c->method >= HD_CENTRIFUGE_PONG && c->method <= HD_CENTRIFUGE_UNKNOWN);
	CHECK(c->method != HD_CENTRIFUGE_PONG || c->id == 0);
	CHECK(c->method != HD_CENTRIFUGE_UNKNOWN || c->id != 0);
	CHECK(c->nsubs <= HD_CENTRIFUGE_SUBS_MAX && (c->nsubs == 0 || c->subs != NULL));
	fuzz_centrifuge_check_string(c, c->token);
	fuzz_centrifuge_check_string(c, c->name);
	fuzz_centrifuge_check_string(c, c->version);
	fuzz_centrifuge_check_string(c, c->since_epoch);
	fuzz_centrifuge_check_string(c, c->rpc_method);
	raw(c, c->data);
	fuzz_centrifuge_check_sub(c, &c->sub, raw);
	for (size_t i = 0; i < c->nsubs; i++)
		fuzz_centrifuge_check_sub(c, &c->subs[i], raw);
}

/* Encodes parts of command c with every encoder of k (its channel as an
 * error message, its epoch and offset in a subscribe reply, its subs in a
 * connect reply, pub as a publication, …); out checks each message. */
static inline void fuzz_centrifuge_re_encode(const struct hd_centrifuge_codec *k,
					     const struct hd_centrifuge_command *c,
					     const struct hd_centrifuge_pub *pub, fuzz_centrifuge_output_fn out)
{
	struct hd_centrifuge_sub_result subs[HD_CENTRIFUGE_SUBS_MAX];
	struct hd_centrifuge_client_info info = {.client = c->token, .user = c->name};
	struct hd_buf b;

	hd_buf_init(&b, FUZZ_CENTRIFUGE_OUT_MAX);
	out(&b, k->reply_error(&b, c->id, 107, c->sub.channel, c->sub.recover));
	out(&b, k->reply_empty(&b, c->id, c->method));
	struct hd_centrifuge_sub_result r = {
		.recoverable = c->sub.recoverable,
		.positioned = c->sub.positioned,
		.epoch = c->sub.epoch,
		.offset = c->sub.offset,
		.recovered = c->sub.recover,
		.pubs = pub,
		.npubs = c->data.p ? 1 : 0,
	};
	out(&b, k->reply_subscribe(&b, c->id, &r));
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
	out(&b, k->reply_connect(&b, c->id, &cr));
	out(&b, k->reply_history(&b, c->id, pub, c->data.p ? 1 : 0, c->since_epoch, c->since_offset));
	out(&b, k->reply_presence(&b, c->id, &info, 1));
	out(&b, k->reply_presence_stats(&b, c->id, c->id, (uint32_t)c->limit));
	out(&b, k->reply_sub_refresh(&b, c->id, c->reverse, c->id));
	out(&b, k->reply_refresh(&b, c->id, c->token, c->rpc_method, c->reverse, c->id));
	if (c->data.p)
		out(&b, k->push_pub(&b, c->sub.channel, pub));
	out(&b, k->push_join(&b, c->sub.channel, &info));
	out(&b, k->push_leave(&b, c->sub.epoch, &info));
	out(&b, k->push_unsubscribe(&b, c->sub.channel, c->id, c->rpc_method));
	out(&b, k->push_disconnect(&b, c->id, c->since_epoch, c->has_since));
	hd_buf_fini(&b);
}

#endif
