/*
 * centrifuge_pb — the Centrifugo client protocol (v2) in its protobuf
 * encoding: decoding one Command, encoding Replies and Pushes.
 * Layer: proto. Pure functions (no I/O, no state between calls), used by
 * the WebSocket edge (edge/ws_edge.c) on the loop thread, by the fuzzer and
 * by the unit tests. It decodes into and encodes from the same structs as
 * the JSON codec (proto/centrifuge.h), so a session differs by format only
 * at its two ends.
 *
 * Wire reference: centrifugal/protocol, definitions/client.proto (message
 * and field numbers as listed in ../shared/research/protocols.md §1.2) and
 * the Protocol Buffers encoding guide (protobuf.dev/programming-guides/
 * encoding: varints, tags = field << 3 | wire type, length-delimited
 * fields, maps as repeated {1: key, 2: value} entries).
 *
 * Why by hand and not protoc-c: herald needs a dozen messages of a few
 * fields each, decoded into the structs the JSON codec already fills (so
 * the session runs one code path); protoc-c would add generated code,
 * a runtime library and a second set of structs to convert from, and
 * allocate per nested message. A varint/length-delimited codec is ~500
 * lines with every bound visible.
 *
 * Framing. On a WebSocket a binary frame holds one or more messages, each
 * prefixed by its length as a varint (protobufjs encodeDelimited);
 * hd_centrifuge_pb_next iterates them. A zero-length Command is the pong,
 * a zero-length Reply the server's ping.
 *
 * Decoding rules. Unknown fields of any wire type but the deprecated groups
 * (3, 4) are skipped; a field of a known number but the wrong wire type is
 * an error. The first method field (connect = 4 … sub_refresh = 15) seen
 * chooses the method; later occurrences of the same field merge into it
 * (proto3), other method fields are ignored. Strings must be UTF-8 without
 * NUL; bytes fields (data) are kept as they are. Nesting is bounded by the
 * schema (Command > ConnectRequest > subs entry > SubscribeRequest; deeper
 * messages are skipped unread), connect.subs by HD_CENTRIFUGE_SUBS_MAX and
 * a message by HD_CENTRIFUGE_LINE_MAX.
 *
 * Encoding rules. Every encoder appends one varint-length-delimited Reply
 * to a bounded hd_buf and returns 0, or HD_ETOOBIG with the buffer left as
 * it was. Fields are written in field-number order; zero, false, empty and
 * NULL fields are omitted (proto3), except a method's result, which is
 * present (possibly empty) so that the client sees which command it
 * answers. Publication data is the event text (bytes).
 */
#ifndef HD_PROTO_CENTRIFUGE_PB_H
#define HD_PROTO_CENTRIFUGE_PB_H

#include "proto/centrifuge.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_CENTRIFUGE_PB_VARINT_MAX 10 /* bytes of the longest varint */

/*
 * Iterates the delimited messages of a frame[*pos, len): sets *msg and *n
 * to the next message (borrows frame) and advances *pos past it. Returns 1
 * for a message, 0 at the end, HD_EINVAL when the length prefix is not a
 * varint or runs past the frame, HD_ETOOBIG when it exceeds
 * HD_CENTRIFUGE_LINE_MAX. Start with *pos = 0.
 */
int hd_centrifuge_pb_next(const uint8_t *frame, size_t len, size_t *pos, const uint8_t **msg, size_t *n);

/*
 * Decodes one Command msg[0, len) (without its length prefix). Returns 0
 * and fills cmd (free with hd_centrifuge_command_fini, also after an
 * error); HD_EINVAL with err->msg saying what is wrong; HD_ETOOBIG when
 * len > HD_CENTRIFUGE_LINE_MAX. An empty message is the pong.
 */
int hd_centrifuge_pb_decode(const uint8_t *msg, size_t len, struct hd_centrifuge_command *cmd,
			    struct hd_error *err);

/* An EmulationRequest (node 1, session 2, data 3): what the SDK POSTs to
 * /emulation on the HTTP-streaming transport in protobuf. Spans borrow msg. */
struct hd_centrifuge_pb_emulation {
	const char *session;
	size_t session_len;
	const char *data;
	size_t data_len;
};
/* Decodes msg[0, len) (not delimited). Returns 0 or HD_EINVAL with err set. */
int hd_centrifuge_pb_emulation_decode(const uint8_t *msg, size_t len, struct hd_centrifuge_pb_emulation *out,
				      struct hd_error *err);

/* The same replies and pushes as proto/centrifuge.h, as delimited Replies. */
int hd_centrifuge_pb_reply_error(struct hd_buf *b, uint32_t id, uint32_t code, const char *message,
				 bool temporary);
int hd_centrifuge_pb_reply_empty(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m);
int hd_centrifuge_pb_reply_connect(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r);
int hd_centrifuge_pb_reply_subscribe(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r);
int hd_centrifuge_pb_reply_history(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
				   const char *epoch, uint64_t offset);
int hd_centrifuge_pb_reply_presence(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c,
				    size_t n);
int hd_centrifuge_pb_reply_presence_stats(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users);
int hd_centrifuge_pb_reply_sub_refresh(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl);
/* RPCResult {data 1}: data[0, n) as bytes. */
int hd_centrifuge_pb_reply_rpc(struct hd_buf *b, uint32_t id, const char *data, size_t n);
int hd_centrifuge_pb_reply_refresh(struct hd_buf *b, uint32_t id, const char *client, const char *version,
				   bool expires, uint32_t ttl);
int hd_centrifuge_pb_push_pub(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub);
int hd_centrifuge_pb_push_join(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
int hd_centrifuge_pb_push_leave(struct hd_buf *b, const char *channel,
				const struct hd_centrifuge_client_info *info);
int hd_centrifuge_pb_push_unsubscribe(struct hd_buf *b, const char *channel, uint32_t code, const char *reason);
/* Push.refresh (12): Refresh {expires 1, ttl 2}. */
int hd_centrifuge_pb_push_refresh(struct hd_buf *b, bool expires, uint32_t ttl);
int hd_centrifuge_pb_push_disconnect(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect);

#endif
