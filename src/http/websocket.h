/*
 * websocket — RFC 6455 WebSocket: the opening handshake and the frame codec.
 * Layer: http. Pure functions and a decoder object with no I/O: the edge
 * (edge/ws_edge.c) feeds it the bytes of an upgraded connection (server.h,
 * hd_http_upgrade) and writes what the encoder builds. Loop thread only
 * (a decoder is not shared); the fuzzer drives hd_websocket_decoder_feed.
 *
 * Decoding uses wslay's frame layer (wslay_frame_recv) for the wire format
 * and adds what RFC 6455 asks of a server on top of it:
 *   - every client frame must be masked (§5.1) → 1002;
 *   - RSV bits must be 0 (no extension is negotiated) → 1002;
 *   - unknown opcodes → 1002;
 *   - control frames: FIN set and payload ≤ 125 bytes (§5.5) → 1002;
 *   - fragmentation (§5.4): a continuation frame with no message open, or a
 *     new text/binary frame while one is open → 1002; control frames may
 *     come between fragments and are delivered at once;
 *   - a message (all its fragments) longer than max_message → 1009;
 *   - a text message that is not valid UTF-8 → 1007 (checked when the
 *     message is complete);
 *   - a close frame: payload of 1 byte → 1002; a code that may not be sent
 *     (below 1000, 1004–1006, 1015, 1016–2999, ≥ 5000) → 1002; a reason that
 *     is not UTF-8 → 1007.
 * The first error ends the decoder: it returns the close code to send and
 * a reason, and must not be fed again.
 */
#ifndef HD_HTTP_WEBSOCKET_H
#define HD_HTTP_WEBSOCKET_H

#include "core/buf.h"
#include "core/err.h"
#include "http/server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hd_websocket_opcode {
	HD_WEBSOCKET_CONT = 0x0,
	HD_WEBSOCKET_TEXT = 0x1,
	HD_WEBSOCKET_BINARY = 0x2,
	HD_WEBSOCKET_CLOSE = 0x8,
	HD_WEBSOCKET_PING = 0x9,
	HD_WEBSOCKET_PONG = 0xA,
};

/* Close codes herald sends from the codec (RFC 6455 §7.4.1). */
#define HD_WEBSOCKET_CLOSE_NORMAL 1000
#define HD_WEBSOCKET_CLOSE_GOING_AWAY 1001
#define HD_WEBSOCKET_CLOSE_PROTOCOL 1002
#define HD_WEBSOCKET_CLOSE_BAD_DATA 1007
#define HD_WEBSOCKET_CLOSE_TOO_BIG 1009

#define HD_WEBSOCKET_HEADER_MAX 10        /* a server frame header: 2 + 8 length bytes, no mask */
#define HD_WEBSOCKET_CONTROL_MAX 125      /* control frame payload */
#define HD_WEBSOCKET_ACCEPT_LEN 28        /* base64 of a SHA-1 digest */
#define HD_WEBSOCKET_MESSAGE_MAX_DEFAULT (64 * 1024)

/* ---- Handshake (RFC 6455 §4.2) ------------------------------------------ */

/* Whether req asks for an upgrade to WebSocket (an "Upgrade" header whose
 * tokens include "websocket", case-insensitive). */
bool hd_websocket_is_upgrade(const struct hd_http_request *req);

/*
 * Checks an upgrade request per §4.2.1: method GET, HTTP/1.1 (req->http_minor
 * 1; 1.0 is refused), a "Connection" header whose
 * comma-separated tokens include "upgrade" (case-insensitive), an
 * "Upgrade" header including "websocket", "Sec-WebSocket-Version: 13", and
 * a "Sec-WebSocket-Key" that is base64 of exactly 16 bytes.
 *
 * On success returns 0 and appends the complete response head to head:
 *   HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n
 *   Connection: Upgrade\r\nSec-WebSocket-Accept: <accept>\r\n
 *   [Sec-WebSocket-Protocol: centrifuge-json\r\n]   (when offered)
 *   [Sec-WebSocket-Protocol: centrifuge-protobuf\r\n] (when offered without centrifuge-json)
 *   \r\n
 * No other subprotocol is ever selected; the edge speaks the format of
 * the one selected (hd_websocket_offers tells which).
 *
 * On failure returns HD_EINVAL with err->msg saying what is wrong; *status
 * is the HTTP status to answer with: 426 for a missing or other version
 * (then the caller adds "Sec-WebSocket-Version: 13"), 405 for a method
 * other than GET, 400 otherwise. err may be NULL. (Should head's ceiling
 * not take the response, which is under 200 bytes, the return is
 * HD_ETOOBIG with *status 500 and head keeps what was appended.)
 */
/* Whether req's Sec-WebSocket-Protocol headers list subprotocol (exact). */
bool hd_websocket_offers(const struct hd_http_request *req, const char *subprotocol);

int hd_websocket_handshake(const struct hd_http_request *req, struct hd_buf *head, int *status,
		    struct hd_error *err);

/* Computes Sec-WebSocket-Accept for key[0, key_len): base64(SHA-1(key +
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), written NUL-terminated. */
void hd_websocket_accept_key(const char *key, size_t key_len, char out[HD_WEBSOCKET_ACCEPT_LEN + 1]);

/* ---- Encoding (server → client: never masked, always FIN) --------------- */

/* Writes the header of a frame with opcode and a payload of len bytes to
 * out; returns its length (2, 4 or 10). */
size_t hd_websocket_frame_header(uint8_t out[HD_WEBSOCKET_HEADER_MAX], enum hd_websocket_opcode opcode, uint64_t len);

/*
 * Writes a complete close frame to out: code (network order) and reason,
 * the reason cut to at most 123 bytes at a UTF-8 character boundary.
 * code 0 writes a close frame with no payload. Returns the frame length.
 */
size_t hd_websocket_close_frame(uint8_t out[2 + HD_WEBSOCKET_CONTROL_MAX], uint16_t code, const char *reason);

/* ---- Decoding (client → server) ----------------------------------------- */

/* A complete message or control frame. data is borrowed for the callback
 * (unmasked; for CLOSE it is the reason after the code). */
struct hd_websocket_msg {
	enum hd_websocket_opcode opcode; /* TEXT, BINARY, CLOSE, PING or PONG */
	const char *data;
	size_t len;
	uint16_t close_code;      /* CLOSE: the code, 0 when the frame had no payload */
};

/* Returns 0 to go on; anything else stops the feed (the rest of the input
 * is dropped and the decoder must not be fed again), for instance after a
 * CLOSE or when the edge ends the connection from the callback. */
typedef int (*hd_websocket_msg_fn)(void *arg, const struct hd_websocket_msg *m);

struct hd_websocket_decoder;

/* Returns owned. max_message: the longest text/binary message accepted
 * (0 means HD_WEBSOCKET_MESSAGE_MAX_DEFAULT). Memory held: at most about
 * max_message plus wslay's frame context (about 4 KiB, its input buffer)
 * while a frame is incomplete; between frames, when every byte fed was
 * handled, only the decoder's own ~250 bytes (an idle connection costs
 * little). */
struct hd_websocket_decoder *hd_websocket_decoder_new(size_t max_message);
void hd_websocket_decoder_free(struct hd_websocket_decoder *d);

/*
 * Feeds p[0, n) (any split of the stream; bytes of an incomplete frame are
 * kept) and calls on_msg for each complete message and control frame, in
 * order. Returns 0 when all input was consumed; 1 when on_msg stopped the
 * feed; or a close code (1002, 1007, 1009) with *reason set to a static
 * sentence when the input breaks the rules above. After a non-zero return
 * the decoder is finished.
 */
int hd_websocket_decoder_feed(struct hd_websocket_decoder *d, const char *p, size_t n, hd_websocket_msg_fn on_msg,
		       void *arg, const char **reason);

#endif
