/*
 * centrifuge — the Centrifugo client protocol (v2, JSON): decoding one
 * command, encoding replies and pushes.
 * Layer: proto. Pure functions (no I/O, no state between calls), used by
 * the WebSocket edge (edge/ws_edge.c) on the loop thread and by the fuzzer.
 * ../shared/research/protocols.md §1 is the wire reference.
 *
 * A WebSocket text frame holds one or more commands separated by '\n'; the
 * edge splits the frame with hd_centrifuge_next_line and decodes each line with
 * hd_centrifuge_decode. A command is a JSON object {"id":N,"<method>":{…}} with
 * the members in any order; the first known method member whose value is
 * not null is the command. Unknown members are ignored (new clients send
 * fields herald does not know), and a member whose value is null counts as
 * absent (proto3 JSON). "{}" (no id, no method) is a pong. `bytes` fields
 * (connect.data, publish.data, rpc.data, send.data, subscribe.data) are
 * raw JSON values and are kept as their minified text.
 *
 * Every encoder appends one compact JSON text with no raw newline to a
 * bounded hd_buf and returns 0, or the buffer's HD_ETOOBIG with the buffer
 * left as it was (never half a message). Members are written in the order
 * of their proto field numbers; zero, false, empty and NULL members are
 * omitted (proto3 JSON). Strings are escaped; raw JSON members
 * (publication data) are copied as they are and must be minified JSON
 * (herald's stored events are).
 */
#ifndef HD_PROTO_CENTRIFUGE_H
#define HD_PROTO_CENTRIFUGE_H

#include "core/buf.h"
#include "core/err.h"
#include "proto/json_text.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_CENTRIFUGE_LINE_MAX (64 * 1024)   /* longest command accepted */
#define HD_CENTRIFUGE_SUBS_MAX 64            /* connect.subs entries; more → HD_EINVAL */

/* Error codes of replies (protocols.md §1.5). */
enum hd_centrifuge_code {
	HD_CENTRIFUGE_ERR_INTERNAL = 100,
	HD_CENTRIFUGE_ERR_UNAUTHORIZED = 101,
	HD_CENTRIFUGE_ERR_UNKNOWN_CHANNEL = 102,
	HD_CENTRIFUGE_ERR_PERMISSION_DENIED = 103,
	HD_CENTRIFUGE_ERR_METHOD_NOT_FOUND = 104,
	HD_CENTRIFUGE_ERR_ALREADY_SUBSCRIBED = 105,
	HD_CENTRIFUGE_ERR_LIMIT_EXCEEDED = 106,
	HD_CENTRIFUGE_ERR_BAD_REQUEST = 107,
	HD_CENTRIFUGE_ERR_NOT_AVAILABLE = 108,
	HD_CENTRIFUGE_ERR_TOKEN_EXPIRED = 109,
	HD_CENTRIFUGE_ERR_EXPIRED = 110,
	HD_CENTRIFUGE_ERR_TOO_MANY_REQUESTS = 111,
	HD_CENTRIFUGE_ERR_UNRECOVERABLE_POSITION = 112,
};

/* Disconnect codes, sent as the WebSocket close code with a text reason. */
enum hd_centrifuge_disconnect {
	HD_CENTRIFUGE_DISC_SHUTDOWN = 3001,
	HD_CENTRIFUGE_DISC_INTERNAL = 3004,
	HD_CENTRIFUGE_DISC_EXPIRED = 3005,
	HD_CENTRIFUGE_DISC_SLOW = 3008,
	HD_CENTRIFUGE_DISC_WRITE_ERROR = 3009,
	HD_CENTRIFUGE_DISC_INSUFFICIENT_STATE = 3010,
	HD_CENTRIFUGE_DISC_NO_PONG = 3012,
	HD_CENTRIFUGE_DISC_INVALID_TOKEN = 3500,
	HD_CENTRIFUGE_DISC_BAD_REQUEST = 3501,
	HD_CENTRIFUGE_DISC_STALE = 3502,
	HD_CENTRIFUGE_DISC_CONNECTION_LIMIT = 3504,
	HD_CENTRIFUGE_DISC_CHANNEL_LIMIT = 3505,
	HD_CENTRIFUGE_DISC_INAPPROPRIATE_PROTOCOL = 3506,
	HD_CENTRIFUGE_DISC_PERMISSION_DENIED = 3507,
};

enum hd_centrifuge_method {
	HD_CENTRIFUGE_PONG = 0,      /* the empty command {} */
	HD_CENTRIFUGE_CONNECT,
	HD_CENTRIFUGE_SUBSCRIBE,
	HD_CENTRIFUGE_UNSUBSCRIBE,
	HD_CENTRIFUGE_PUBLISH,
	HD_CENTRIFUGE_PRESENCE,
	HD_CENTRIFUGE_PRESENCE_STATS,
	HD_CENTRIFUGE_HISTORY,
	HD_CENTRIFUGE_PING,
	HD_CENTRIFUGE_SEND,
	HD_CENTRIFUGE_RPC,
	HD_CENTRIFUGE_REFRESH,
	HD_CENTRIFUGE_SUB_REFRESH,
	HD_CENTRIFUGE_UNKNOWN,       /* an id with no known method member */
};

/* The member name of a method ("connect", …; "" for PONG and UNKNOWN). */
const char *hd_centrifuge_method_name(enum hd_centrifuge_method m);

/* Raw minified JSON text inside the command's storage; p NULL when absent. */
struct hd_centrifuge_raw {
	const char *p;
	size_t n;
};

/*
 * A SubscribeRequest (subscribe, and each entry of connect.subs whose
 * channel is the map key). Strings are decoded, NUL-terminated, owned by
 * the command, and "" when absent.
 */
struct hd_centrifuge_sub_req {
	const char *channel;
	const char *token;
	const char *epoch;
	uint64_t offset;
	bool recover;
	bool positioned;
	bool recoverable;
	bool join_leave;
	int64_t flag;              /* HD_CENTRIFUGE_SUB_FLAG_* bits */
	const char *delta;         /* "fossil" asks for delta compression */
	int32_t type;              /* 0 stream; 1-3 map, 4 shared poll (herald has neither) */
	struct hd_centrifuge_raw data;
};

/* SubscribeRequest.flag bits (centrifuge-js subscriptionFlags). */
#define HD_CENTRIFUGE_SUB_FLAG_CHANNEL_COMPACTION 1  /* ignored: herald never sends the id */
#define HD_CENTRIFUGE_SUB_FLAG_REJECT_UNRECOVERED 2  /* an unrecoverable position is error 112 */

struct hd_centrifuge_command {
	uint32_t id;               /* 0 when absent */
	enum hd_centrifuge_method method;
	/* connect */
	const char *token;         /* connect.token, refresh.token, sub_refresh.token */
	const char *name;          /* connect.name */
	const char *version;       /* connect.version */
	struct hd_centrifuge_sub_req *subs; /* connect.subs, nsubs entries */
	size_t nsubs;
	/* subscribe (all of it); unsubscribe, publish, presence, presence_stats,
	 * history, sub_refresh (sub.channel) */
	struct hd_centrifuge_sub_req sub;
	/* connect, publish, rpc, send */
	struct hd_centrifuge_raw data;
	/* history */
	int32_t limit;             /* 0 when absent */
	bool has_since;
	uint64_t since_offset;
	const char *since_epoch;
	bool reverse;
	/* rpc */
	const char *rpc_method;
	/* Private: the storage the pointers above point into. */
	char *mem;
	size_t mem_len;
};

/*
 * Decodes one command line[0, len). Returns 0 and fills cmd (free with
 * hd_centrifuge_command_fini, also after an error); HD_EINVAL with err->msg saying
 * what is wrong (not JSON, not an object, a member of the wrong type, an
 * id that is not an integer in [0, 2^32), an offset that is not an
 * integer in [0, 2^64), more than HD_CENTRIFUGE_SUBS_MAX subs, a method member
 * that is not an object); HD_ETOOBIG when len > HD_CENTRIFUGE_LINE_MAX.
 * A non-pong command with id 0 is accepted here (the session decides).
 */
int hd_centrifuge_decode(const char *line, size_t len, struct hd_centrifuge_command *cmd, struct hd_error *err);
/* Frees what the command owns and leaves it empty; calling it twice is safe. */
void hd_centrifuge_command_fini(struct hd_centrifuge_command *cmd);

/*
 * Iterates the commands of a frame: finds the next line of frame[*pos, len)
 * that holds anything but white space (space, tab, CR), sets *line and *n
 * to it (its '\n' excluded; it borrows frame) and advances *pos past it.
 * Returns false when no such line is left. Start with *pos = 0. Lines are
 * not length-checked here: hd_centrifuge_decode refuses those over HD_CENTRIFUGE_LINE_MAX.
 */
bool hd_centrifuge_next_line(const char *frame, size_t len, size_t *pos, const char **line, size_t *n);

/* ---- Replies ------------------------------------------------------------ */

/*
 * A publication made from a stored event: data[0, len) is the event's
 * canonical JSON (raw, minified). With payload false the publication's
 * data is that whole CloudEvent. With payload true (namespace option
 * ws-publication = payload) it is split the way a Centrifugo app reads it:
 *   - the event's `data` member, as it is, is the publication's `data`
 *     (absent when the event has none);
 *   - binary data (`data_base64`) is the publication's `data` as the JSON
 *     string of its base64 text, with the tag "data_base64":"true" (a name
 *     no CloudEvent attribute can have: attribute names are [a-z0-9]);
 *   - every other attribute but specversion and herald's own topic and
 *     offset is a tag: id, source, type, time, subject, datacontenttype,
 *     dataschema, extensions; strings as they are, numbers and booleans
 *     as their JSON text in a string;
 *   - the offset is `offset`.
 * Text that is not a JSON object is sent whole, as with payload false.
 *
 * Delta compression (a subscription that negotiated delta "fossil"): the
 * data member is then always a JSON string. With as_string it holds the
 * text the data stands for (hd_centrifuge_pub_text: the payload, "null"
 * when the event has none); with delta set it holds delta[0, delta_len),
 * a fossil delta (proto/fossil.h) from the previous publication's text,
 * and the publication gets "delta":true.
 */
struct hd_centrifuge_pub {
	const char *data;
	size_t len;
	uint64_t offset;
	bool payload;
	bool as_string;
	const char *delta;
	size_t delta_len;
};

#define HD_CENTRIFUGE_PUB_MEMBERS_MAX 136 /* members of a stored event: the CloudEvents limit (128), topic, offset */

/* A payload publication's event split into its members, for the JSON and
 * protobuf encoders (one rule for both). */
struct hd_centrifuge_pub_parts {
	struct hd_json_text_span sp[HD_CENTRIFUGE_PUB_MEMBERS_MAX]; /* offsets into pub->data */
	size_t n;
	size_t data;               /* the member data or data_base64; SIZE_MAX: none */
	bool base64;               /* it is data_base64 */
};
/* Splits p->data (an event as stored). Returns false when it is not an
 * object whose members can be split (then it is sent whole). */
bool hd_centrifuge_pub_split(const struct hd_centrifuge_pub *p, struct hd_centrifuge_pub_parts *parts);
/* Whether member i of parts is a tag (see hd_centrifuge_pub). */
bool hd_centrifuge_pub_tag(const struct hd_centrifuge_pub *p, const struct hd_centrifuge_pub_parts *parts,
			   size_t i);
/*
 * The text a publication's data stands for: the event's `data` member as
 * it is (payload true; "null" when absent, the base64 string token for
 * data_base64), or the whole event. *text borrows p->data (or a literal).
 */
void hd_centrifuge_pub_text(const struct hd_centrifuge_pub *p, const char **text, size_t *n);

/*
 * The publisher's ClientInfo of a client-published event: herald's own
 * member `client_info` of the stored event (edge/ws_commands.c adds it,
 * minified: {"user":"u","client":"id"[,"conn_info":<JSON>][,"chan_info":
 * <JSON>]}, the JSON form of Centrifugo's ClientInfo), sent as the
 * publication's info. Sets *info (borrows p->data) and *n; returns false
 * when the event has none (HTTP publishes, events stored before it).
 */
bool hd_centrifuge_pub_info(const struct hd_centrifuge_pub *p, const char **info, size_t *n);

/* A SubscribeResult. Zero/false/empty members are omitted on the wire. */
struct hd_centrifuge_sub_result {
	const char *channel;       /* only for connect.subs (the map key) */
	bool expires;
	uint32_t ttl;
	bool recoverable;
	bool positioned;
	const char *epoch;
	uint64_t offset;
	bool recovered;
	bool was_recovering;
	bool delta;                /* delta compression negotiated */
	const struct hd_centrifuge_pub *pubs;
	size_t npubs;
	const char *data;          /* minified JSON for the app (a subscribe proxy's), or NULL */
	size_t data_len;
};

/* ConnectResult. */
struct hd_centrifuge_connect_result {
	const char *client;
	const char *version;
	bool expires;
	uint32_t ttl;
	uint32_t ping;             /* seconds */
	bool pong;
	const char *session;       /* emulation transports: the id /emulation names */
	const char *node;
	const struct hd_centrifuge_sub_result *subs; /* server-side subscriptions, nsubs */
	size_t nsubs;
	const char *data;          /* minified JSON for the app (a connect proxy's), or NULL */
	size_t data_len;
};

/* A presence entry (also join/leave's). */
struct hd_centrifuge_client_info {
	const char *client;
	const char *user;
	const char *conn_info;     /* minified JSON (the connect token's or proxy's info), */
	size_t conn_info_len;      /* conn_info_len bytes; 0 leaves conn_info out */
	const char *chan_info;     /* minified JSON (the subscribe proxy's or subscription */
	size_t chan_info_len;      /* token's info); 0 leaves chan_info out */
};

/* {"id":N,"error":{"code":C,"message":"…"[,"temporary":true]}} */
int hd_centrifuge_reply_error(struct hd_buf *b, uint32_t id, uint32_t code, const char *message,
		      bool temporary);
/* {"id":N,"<method>":{}} (unsubscribe, publish, ping, sub_refresh, …).
 * With HD_CENTRIFUGE_PONG or HD_CENTRIFUGE_UNKNOWN there is no method member: id 0 gives
 * {}, the server's ping. */
int hd_centrifuge_reply_empty(struct hd_buf *b, uint32_t id, enum hd_centrifuge_method m);
/* {"id":N,"connect":{…}} */
int hd_centrifuge_reply_connect(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_connect_result *r);
/* {"id":N,"subscribe":{…}} */
int hd_centrifuge_reply_subscribe(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_sub_result *r);
/* {"id":N,"history":{"publications":[…],"epoch":"e","offset":top}} */
int hd_centrifuge_reply_history(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_pub *pubs, size_t n,
			const char *epoch, uint64_t offset);
/* {"id":N,"presence":{"presence":{"<client>":{"user":"u","client":"<client>"},…}}}; the map is
 * always there ({} when nobody is present). */
int hd_centrifuge_reply_presence(struct hd_buf *b, uint32_t id, const struct hd_centrifuge_client_info *c,
			 size_t n);
/* {"id":N,"presence_stats":{"num_clients":C,"num_users":U}}, both always (0 too). */
int hd_centrifuge_reply_presence_stats(struct hd_buf *b, uint32_t id, uint32_t clients, uint32_t users);
/* {"id":N,"sub_refresh":{"expires":true,"ttl":T}} */
int hd_centrifuge_reply_sub_refresh(struct hd_buf *b, uint32_t id, bool expires, uint32_t ttl);
/* {"id":N,"rpc":{"data":<data>}}: data[0, n) is minified JSON text (an RPC
 * proxy's answer); n 0 leaves data out. */
int hd_centrifuge_reply_rpc(struct hd_buf *b, uint32_t id, const char *data, size_t n);
/* {"id":N,"refresh":{"client":"c","version":"v","expires":true,"ttl":T}} */
int hd_centrifuge_reply_refresh(struct hd_buf *b, uint32_t id, const char *client, const char *version,
			bool expires, uint32_t ttl);

/* ---- Pushes ------------------------------------------------------------- */

/* {"push":{"channel":"c","pub":{"data":<data>,"offset":N,"tags":{…}}}} — encoded
 * once per event and shared by every subscriber. */
int hd_centrifuge_push_pub(struct hd_buf *b, const char *channel, const struct hd_centrifuge_pub *pub);
/* {"push":{"channel":"c","join":{"info":{"user":"u","client":"c"}}}}; leave likewise. */
int hd_centrifuge_push_join(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
int hd_centrifuge_push_leave(struct hd_buf *b, const char *channel, const struct hd_centrifuge_client_info *info);
/* {"push":{"channel":"c","unsubscribe":{"code":C,"reason":"r"}}} */
int hd_centrifuge_push_unsubscribe(struct hd_buf *b, const char *channel, uint32_t code,
			   const char *reason);
/* {"push":{"refresh":{"expires":bool,"ttl":N}}}: the server refreshed the
 * connection (Push.refresh); expires false: it no longer expires. */
int hd_centrifuge_push_refresh(struct hd_buf *b, bool expires, uint32_t ttl);
/* {"push":{"disconnect":{"code":C,"reason":"r","reconnect":bool}}} */
int hd_centrifuge_push_disconnect(struct hd_buf *b, uint32_t code, const char *reason, bool reconnect);

#endif
