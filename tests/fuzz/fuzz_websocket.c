/*
 * fuzz_websocket — libFuzzer target for the WebSocket frame decoder
 * (src/http/websocket.c, hd_websocket_decoder_*) and wslay's frame layer under it: the
 * parser of everything a WebSocket client sends.
 *
 * Input layout (the seeds in tests/fuzz/corpus/websocket/ follow it):
 *   byte 0     bits 0-5: the size of the pieces the stream is fed in
 *              (0: all at once); bit 6: on_msg stops the feed after a
 *              CLOSE, as an edge does; bit 7: unused.
 *   the rest   the bytes a client sends after the handshake.
 * The decoder accepts messages of at most MAX_MESSAGE bytes.
 *
 * Properties checked:
 *   - a feed returns 0, 1 (stopped by on_msg) or a close code of 1002,
 *     1007 or 1009 with a reason; nothing is fed after a non-zero return;
 *   - every message is within its limits: text and binary at most
 *     MAX_MESSAGE bytes, control frames at most 125; text and close reasons
 *     are valid UTF-8; a close code is 0 (no payload) or one a peer may send;
 *   - the outcome does not depend on where reads end: feeding in the
 *     chosen pieces, all at once and byte by byte gives the same messages
 *     and the same final result.
 */
#include "http/websocket.h"
#include "proto/json_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE 1024
#define BYTEWISE_MAX 4096 /* inputs longer than this skip the byte-by-byte run */

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_websocket: broken promise: %s\n", what);
		abort();
	}
}

struct run {
	uint64_t hash; /* of every message, in order */
	int count;
	int stop_on_close;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static int on_msg(void *arg, const struct hd_websocket_msg *m)
{
	struct run *r = arg;
	uint32_t head[3] = {(uint32_t)m->opcode, (uint32_t)m->len, m->close_code};

	check(m->data != NULL, "message data is not NULL");
	switch (m->opcode) {
	case HD_WEBSOCKET_TEXT:
		check(hd_json_text_utf8_valid(m->data, m->len), "text is UTF-8");
		/* fall through */
	case HD_WEBSOCKET_BINARY:
		check(m->len <= MAX_MESSAGE, "message within max_message");
		check(m->close_code == 0, "no close code on a data message");
		break;
	case HD_WEBSOCKET_CLOSE:
		check(m->len <= HD_WEBSOCKET_CONTROL_MAX - 2, "close reason within 123 bytes");
		check(hd_json_text_utf8_valid(m->data, m->len), "close reason is UTF-8");
		check(m->close_code == 0 || (m->close_code >= 1000 && m->close_code <= 4999 &&
					     m->close_code != 1004 && m->close_code != 1005 &&
					     m->close_code != 1006 &&
					     (m->close_code < 1015 || m->close_code >= 3000)),
		      "close code may be sent");
		check(m->close_code != 0 || m->len == 0, "no reason without a code");
		break;
	case HD_WEBSOCKET_PING:
	case HD_WEBSOCKET_PONG:
		check(m->len <= HD_WEBSOCKET_CONTROL_MAX, "control payload within 125 bytes");
		check(m->close_code == 0, "no close code on a ping or pong");
		break;
	default:
		check(0, "opcode of a complete message");
	}
	/* Touch every byte, so that ASan sees a read past the data. */
	r->hash = mix(mix(r->hash, head, sizeof(head)), m->data, m->len);
	r->count++;
	return r->stop_on_close && m->opcode == HD_WEBSOCKET_CLOSE;
}

/* Feeds p[0, n) in pieces of step bytes (0: whole); returns the result. */
static int run(const uint8_t *p, size_t n, size_t step, struct run *r)
{
	struct hd_websocket_decoder *d = hd_websocket_decoder_new(MAX_MESSAGE);
	const char *reason = NULL;
	size_t off = 0;
	int rc;

	do {
		size_t k = step && n - off > step ? step : n - off;
		/* A copy of exactly the piece, so that ASan catches a read past it. */
		char *piece = malloc(k ? k : 1);
		memcpy(piece, p + off, k);
		rc = hd_websocket_decoder_feed(d, piece, k, on_msg, r, &reason);
		free(piece);
		off += k;
	} while (rc == 0 && off < n);
	check(rc == 0 || rc == 1 || rc == HD_WEBSOCKET_CLOSE_PROTOCOL || rc == HD_WEBSOCKET_CLOSE_BAD_DATA ||
		      rc == HD_WEBSOCKET_CLOSE_TOO_BIG,
	      "result is 0, 1 or a close code");
	check(rc <= 1 || (reason && *reason), "an error has a reason");
	check(rc != 0 || off == n, "0 means all input was fed");
	hd_websocket_decoder_free(d);
	r->hash = mix(r->hash, &rc, sizeof(rc));
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a = {0}, b = {0}, c = {0};
	size_t step;
	int ra, rb, rc;

	if (size < 1)
		return 0;
	step = data[0] & 0x3f;
	a.stop_on_close = b.stop_on_close = c.stop_on_close = (data[0] & 0x40) != 0;
	data++;
	size--;

	ra = run(data, size, step, &a);
	rb = run(data, size, 0, &b);
	check(ra == rb && a.count == b.count && a.hash == b.hash,
	      "pieces and the whole input give the same outcome");
	if (size <= BYTEWISE_MAX) {
		rc = run(data, size, 1, &c);
		check(rc == rb && c.count == b.count && c.hash == b.hash,
		      "byte by byte and the whole input give the same outcome");
	}
	return 0;
}
