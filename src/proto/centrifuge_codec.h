/*
 * centrifuge_codec — the Centrifugo client protocol's two wire formats
 * behind one table: JSON (proto/centrifuge.c, one command per line, text
 * frames) and protobuf (proto/centrifuge_pb.c, varint-delimited messages,
 * binary frames). Both decode into and encode from the same structs with
 * the same signatures, so a caller picks a format once and never branches
 * on it again.
 * Layer: proto. Constant data, any thread.
 * Callers: edge/ws_output.c, edge/ws_edge.c (a session's format), the
 * fuzzers tests/fuzz/fuzz_centrifuge*.c (every encoder on decoded input).
 */
#ifndef HD_PROTO_CENTRIFUGE_CODEC_H
#define HD_PROTO_CENTRIFUGE_CODEC_H

#include "core/buf.h"
#include "core/err.h"
#include "proto/centrifuge.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hd_centrifuge_format {
	HD_CENTRIFUGE_FORMAT_JSON,
	HD_CENTRIFUGE_FORMAT_PROTOBUF,
	HD_CENTRIFUGE_FORMAT_COUNT,
};

/* The functions of one format; see proto/centrifuge.h for what each writes
 * (the protobuf ones write the same message as a delimited Reply/Push). */
struct hd_centrifuge_codec {
	const char *name; /* "json", "protobuf" */
	int (*decode)(const char *p, size_t n, struct hd_centrifuge_command *cmd, struct hd_error *err);
	int (*reply_error)(struct hd_buf *b, uint32_t id, uint32_t code, const char *message, bool temporary);
	int (*reply_empty)(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m);
	int (*reply_connect)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r);
	int (*reply_subscribe)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r);
	int (*reply_history)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
			     const char *epoch, uint64_t offset);
	int (*reply_presence)(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c, size_t n);
	int (*reply_presence_stats)(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users);
	int (*reply_sub_refresh)(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl);
	int (*reply_refresh)(struct hd_buf *b, uint32_t id, const char *client, const char *version, bool expires,
			     uint32_t ttl);
	int (*reply_rpc)(struct hd_buf *b, uint32_t id, const char *data, size_t n);
	int (*push_pub)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub);
	int (*push_join)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
	int (*push_leave)(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
	int (*push_unsubscribe)(struct hd_buf *b, const char *channel, uint32_t code, const char *reason);
	int (*push_refresh)(struct hd_buf *b, bool expires, uint32_t ttl);
	int (*push_disconnect)(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect);
};

/* The codec of format f (f < HD_CENTRIFUGE_FORMAT_COUNT); static storage. */
const struct hd_centrifuge_codec *hd_centrifuge_codec_of(enum hd_centrifuge_format f);

#endif
