/*
 * centrifuge_codec — the table of the two Centrifugo wire formats (see
 * proto/centrifuge_codec.h).
 * Layer: proto. Constant data.
 * Callers: edge/ws_output.c, edge/ws_edge.c, tests/fuzz/fuzz_centrifuge*.c.
 */
#include "proto/centrifuge_codec.h"

#include "proto/centrifuge_pb.h"

/* The protobuf decoder reads bytes; the table's decode takes the frame as
 * the session holds it. */
static int pb_decode(const char *p, size_t n, struct hd_centrifuge_command *cmd, struct hd_error *err)
{
	return hd_centrifuge_pb_decode((const uint8_t *)p, n, cmd, err);
}

static const struct hd_centrifuge_codec codecs[HD_CENTRIFUGE_FORMAT_COUNT] = {
	[HD_CENTRIFUGE_FORMAT_JSON] = {
		.name = "json",
		.decode = hd_centrifuge_decode,
		.reply_error = hd_centrifuge_reply_error,
		.reply_empty = hd_centrifuge_reply_empty,
		.reply_connect = hd_centrifuge_reply_connect,
		.reply_subscribe = hd_centrifuge_reply_subscribe,
		.reply_history = hd_centrifuge_reply_history,
		.reply_presence = hd_centrifuge_reply_presence,
		.reply_presence_stats = hd_centrifuge_reply_presence_stats,
		.reply_sub_refresh = hd_centrifuge_reply_sub_refresh,
		.reply_refresh = hd_centrifuge_reply_refresh,
		.reply_rpc = hd_centrifuge_reply_rpc,
		.push_pub = hd_centrifuge_push_pub,
		.push_join = hd_centrifuge_push_join,
		.push_leave = hd_centrifuge_push_leave,
		.push_unsubscribe = hd_centrifuge_push_unsubscribe,
		.push_refresh = hd_centrifuge_push_refresh,
		.push_disconnect = hd_centrifuge_push_disconnect,
	},
	[HD_CENTRIFUGE_FORMAT_PROTOBUF] = {
		.name = "protobuf",
		.decode = pb_decode,
		.reply_error = hd_centrifuge_pb_reply_error,
		.reply_empty = hd_centrifuge_pb_reply_empty,
		.reply_connect = hd_centrifuge_pb_reply_connect,
		.reply_subscribe = hd_centrifuge_pb_reply_subscribe,
		.reply_history = hd_centrifuge_pb_reply_history,
		.reply_presence = hd_centrifuge_pb_reply_presence,
		.reply_presence_stats = hd_centrifuge_pb_reply_presence_stats,
		.reply_sub_refresh = hd_centrifuge_pb_reply_sub_refresh,
		.reply_refresh = hd_centrifuge_pb_reply_refresh,
		.reply_rpc = hd_centrifuge_pb_reply_rpc,
		.push_pub = hd_centrifuge_pb_push_pub,
		.push_join = hd_centrifuge_pb_push_join,
		.push_leave = hd_centrifuge_pb_push_leave,
		.push_unsubscribe = hd_centrifuge_pb_push_unsubscribe,
		.push_refresh = hd_centrifuge_pb_push_refresh,
		.push_disconnect = hd_centrifuge_pb_push_disconnect,
	},
};

const struct hd_centrifuge_codec *hd_centrifuge_codec_of(enum hd_centrifuge_format f)
{
	return &codecs[f];
}
