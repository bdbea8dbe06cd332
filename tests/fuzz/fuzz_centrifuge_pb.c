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
 *   - a decoded command keeps its promises (fuzz_centrifuge_common.h);
 *     raw data lies inside the storage;
 *   - re-encoding its parts with every encoder gives exactly one
 *     delimited message that fills the output (data that is minified
 *     JSON is also encoded as a payload publication: data and tags).
 */
#include "core/buf.h"
#include "core/err.h"
#include "proto/centrifuge_pb.h"
#include "proto/json_text.h"
#include "fuzz_centrifuge_common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_raw(const struct hd_centrifuge_command *c, struct hd_centrifuge_raw r)
{
	if (r.p)
		CHECK(fuzz_centrifuge_inside(c, r.p, r.n));
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

static void decode_one(const uint8_t *msg, size_t n)
{
	struct hd_centrifuge_command c, again;
	struct hd_error err;
	int rc = hd_centrifuge_pb_decode(msg, n, &c, &err);
	int rc2 = hd_centrifuge_pb_decode(msg, n, &again, NULL);

	CHECK(rc == rc2 && c.method == again.method && c.id == again.id);
	hd_centrifuge_command_fini(&again);
	if (rc) {
		fuzz_centrifuge_check_refused(&c, rc, &err, n);
		hd_centrifuge_command_fini(&c);
		return;
	}
	fuzz_centrifuge_check_command(&c, &err, check_raw);
	struct hd_centrifuge_pub pub = {.data = c.data.p, .len = c.data.n, .offset = c.sub.offset,
				       .payload = minified_json(c.data), .as_string = c.sub.recover};
	fuzz_centrifuge_re_encode(hd_centrifuge_codec_of(HD_CENTRIFUGE_FORMAT_PROTOBUF), &c, &pub, check_output);
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
