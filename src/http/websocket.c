/*
 * websocket — see websocket.h.
 *
 * The decoder hands wslay's frame layer the bytes of the current feed
 * through its recv callback: wslay copies them into its own 4 KiB input
 * buffer, unmasks each payload in place and returns it chunk by chunk
 * (never more than that buffer holds), keeping the bytes of an incomplete
 * header until the next feed. What wslay checks itself: a control frame
 * longer than 125 bytes or without FIN, and a length not in its shortest
 * form or with the top bit set (WSLAY_ERR_PROTO, right after the header).
 * Everything else RFC 6455 asks of a server is checked here, on the first
 * chunk of each frame: wslay fills in the header fields (mask, RSV, opcode,
 * length) only when it returns payload, which it does as soon as one
 * payload byte is there, or at once for an empty payload. So a frame is
 * judged before any of its payload is kept, and a frame announcing more
 * than max_message is refused before its bytes arrive.
 *
 * Memory: wslay's context (about 4.2 KiB), a message buffer that grows up
 * to max_message (freed after a message bigger than MSG_KEEP, so an idle
 * connection does not hold the peak), and 125 bytes for a control frame
 * that arrives in pieces. A frame that arrives whole in one chunk (the
 * common small message) is handed to on_msg straight from wslay's buffer.
 */
#include "http/websocket.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "proto/json_text.h"

#include <assert.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KEY_LEN 24            /* base64 of 16 bytes: 22 characters and "==" */
#define CLOSE_REASON_MAX 123  /* a close frame's payload is the code and at most this */
#define MSG_KEEP (4 * 1024)   /* a message buffer bigger than this is freed after use */

/* ---- Handshake ----------------------------------------------------------- */

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether a[0, n) equals the NUL-terminated b, ASCII case-insensitive when
 * nocase. */
static bool token_eq(const char *a, size_t n, const char *b, bool nocase)
{
	size_t i;

	for (i = 0; i < n && b[i]; i++)
		if (nocase ? lower(a[i]) != lower(b[i]) : a[i] != b[i])
			return false;
	return i == n && b[i] == '\0';
}

/* Whether the comma-separated list value holds token (each element trimmed
 * of spaces and tabs). */
static bool list_has(const char *value, const char *token, bool nocase)
{
	const char *p = value;

	while (*p) {
		const char *end;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',')
			end++;
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0 && token_eq(p, n, token, nocase))
			return true;
		p = end;
	}
	return false;
}

/* Whether any header field lname of req lists token. A field may be sent
 * more than once ("Connection: keep-alive" then "Connection: Upgrade"),
 * which means the same as one field with the values joined by commas. */
static bool header_lists(const struct hd_http_request *req, const char *lname, const char *token,
			 bool nocase)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcmp(req->headers[i].name, lname) == 0 &&
		    list_has(req->headers[i].value, token, nocase))
			return true;
	return false;
}

static size_t header_count(const struct hd_http_request *req, const char *lname)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nheaders; i++)
		if (strcmp(req->headers[i].name, lname) == 0)
			n++;
	return n;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Whether key decodes to exactly 16 bytes: 22 base64 characters then "==".
 * The 4 padding bits of the last character are not checked: decoders
 * ignore them, and browsers send zeros anyway. */
static bool key_valid(const char *key)
{
	if (strlen(key) != KEY_LEN || key[KEY_LEN - 2] != '=' || key[KEY_LEN - 1] != '=')
		return false;
	for (size_t i = 0; i < KEY_LEN - 2; i++)
		if (!is_b64(key[i]))
			return false;
	return true;
}

bool hd_websocket_is_upgrade(const struct hd_http_request *req)
{
	return header_lists(req, "upgrade", "websocket", true);
}

void hd_websocket_accept_key(const char *key, size_t key_len, char out[HD_WEBSOCKET_ACCEPT_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(ctx, key, key_len) ||
	    !EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) ||
	    !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != 20) {
		/* Only an allocation failure gets here; herald aborts on those. */
		hd_log_error("ws_sha1_failed");
		abort();
	}
	EVP_MD_CTX_free(ctx);
	/* 20 bytes give 28 characters and the NUL. */
	EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

bool hd_websocket_offers(const struct hd_http_request *req, const char *subprotocol)
{
	return header_lists(req, "sec-websocket-protocol", subprotocol, false);
}

int hd_websocket_handshake(const struct hd_http_request *req, struct hd_buf *head, int *status,
		    struct hd_error *err)
{
	const char *version = hd_http_header_get(req, "sec-websocket-version");
	const char *key = hd_http_header_get(req, "sec-websocket-key");
	char accept[HD_WEBSOCKET_ACCEPT_LEN + 1];
	int rc;

	*status = 400;
	if (req->method != HTTP_GET) {
		*status = 405;
		return hd_error_set(err, HD_EINVAL, "a WebSocket handshake must use GET");
	}
	if (req->http_major != 1 || req->http_minor < 1)
		return hd_error_set(err, HD_EINVAL, "a WebSocket handshake needs HTTP/1.1");
	if (!hd_websocket_is_upgrade(req))
		return hd_error_set(err, HD_EINVAL, "the Upgrade header must include \"websocket\"");
	if (!header_lists(req, "connection", "upgrade", true))
		return hd_error_set(err, HD_EINVAL,
				    "the Connection header must include \"Upgrade\"");
	if (header_count(req, "sec-websocket-version") > 1)
		return hd_error_set(err, HD_EINVAL, "more than one Sec-WebSocket-Version header");
	if (!version || strcmp(version, "13") != 0) {
		*status = 426;
		return hd_error_set(err, HD_EINVAL, "Sec-WebSocket-Version must be 13");
	}
	if (!key)
		return hd_error_set(err, HD_EINVAL, "the Sec-WebSocket-Key header is missing");
	if (header_count(req, "sec-websocket-key") > 1)
		return hd_error_set(err, HD_EINVAL, "more than one Sec-WebSocket-Key header");
	if (!key_valid(key))
		return hd_error_set(err, HD_EINVAL,
				    "Sec-WebSocket-Key must be the base64 of 16 bytes");

	hd_websocket_accept_key(key, strlen(key), accept);
	rc = hd_buf_puts(head, "HTTP/1.1 101 Switching Protocols\r\n"
			       "Upgrade: websocket\r\n"
			       "Connection: Upgrade\r\n"
			       "Sec-WebSocket-Accept: ");
	if (!rc)
		rc = hd_buf_puts(head, accept);
	if (!rc)
		rc = hd_buf_puts(head, "\r\n");
	if (!rc && header_lists(req, "sec-websocket-protocol", "centrifuge-json", false))
		rc = hd_buf_puts(head, "Sec-WebSocket-Protocol: centrifuge-json\r\n");
	else if (!rc && header_lists(req, "sec-websocket-protocol", "centrifuge-protobuf", false))
		rc = hd_buf_puts(head, "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n");
	if (!rc)
		rc = hd_buf_puts(head, "\r\n");
	if (rc) {
		*status = 500;
		return hd_error_set(err, rc, "the handshake response does not fit");
	}
	*status = 101;
	return 0;
}

/* ---- Encoding ------------------------------------------------------------ */

size_t hd_websocket_frame_header(uint8_t out[HD_WEBSOCKET_HEADER_MAX], enum hd_websocket_opcode opcode, uint64_t len)
{
	out[0] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

size_t hd_websocket_close_frame(uint8_t out[2 + HD_WEBSOCKET_CONTROL_MAX], uint16_t code, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;

	if (code == 0)
		return hd_websocket_frame_header(out, HD_WEBSOCKET_CLOSE, 0);
	if (n > CLOSE_REASON_MAX) {
		/* Back up over continuation bytes (10xxxxxx) so that the cut
		 * falls before the first byte of a character. */
		n = CLOSE_REASON_MAX;
		while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80)
			n--;
	}
	hd_websocket_frame_header(out, HD_WEBSOCKET_CLOSE, 2 + n);
	out[2] = (uint8_t)(code >> 8);
	out[3] = (uint8_t)code;
	if (n)
		memcpy(out + 4, reason, n);
	return 4 + n;
}

/* ---- Decoding ------------------------------------------------------------ */

struct hd_websocket_decoder {
	wslay_frame_context_ptr wslay; /* owned */
	size_t max_message;
	bool done; /* a feed returned non-zero */

	/* The bytes of the feed under way that wslay has not taken yet. */
	const char *in;
	size_t in_len;
	/* Bytes fed that belong to no completed frame yet (wslay holds them,
	 * or they are the frame being read). While it is 0 between feeds the
	 * wslay context holds nothing and is freed: an idle connection keeps
	 * no 4 KiB wslay buffer. */
	uint64_t pending;

	/* The frame being read: in_frame from its first chunk until its
	 * payload is complete. */
	bool in_frame;
	bool whole;    /* its first chunk held all of its payload */
	uint8_t opcode;
	bool fin;
	uint64_t got;  /* payload bytes seen */

	/* The text or binary message whose fragments are being gathered. */
	bool msg_open;
	uint8_t msg_opcode;
	struct hd_buf msg; /* ceiling max_message */

	/* A control frame's payload, when it comes in more than one chunk. */
	uint8_t ctrl[HD_WEBSOCKET_CONTROL_MAX];
	size_t ctrl_len;
};

static ssize_t recv_from_feed(uint8_t *buf, size_t len, int flags, void *user_data)
{
	struct hd_websocket_decoder *d = user_data;
	size_t n = len < d->in_len ? len : d->in_len;

	if (n == 0)
		return WSLAY_ERR_WANT_READ; /* wslay reads any value <= 0 as "no more for now" */
	memcpy(buf, d->in, n);
	d->in += n;
	d->in_len -= n;
	return (ssize_t)n;
}

struct hd_websocket_decoder *hd_websocket_decoder_new(size_t max_message)
{
	struct hd_websocket_decoder *d = hd_calloc(1, sizeof(*d));

	d->max_message = max_message ? max_message : HD_WEBSOCKET_MESSAGE_MAX_DEFAULT;
	hd_buf_init(&d->msg, d->max_message);
	return d;
}

static void wslay_open(struct hd_websocket_decoder *d)
{
	static const struct wslay_frame_callbacks callbacks = {
		.recv_callback = recv_from_feed, /* never sends: no send or mask callbacks */
	};
	if (wslay_frame_context_init(&d->wslay, &callbacks, d) != 0) {
		hd_log_error("ws_decoder_alloc_failed");
		abort();
	}
}

/* The bytes a client frame took on the wire: wslay refuses lengths not in
 * their shortest form, so the header length follows from the payload's. */
static uint64_t frame_bytes(const struct wslay_frame_iocb *io)
{
	uint64_t len = io->payload_length;
	uint64_t head = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (io->mask ? 4 : 0);
	return head + len;
}

void hd_websocket_decoder_free(struct hd_websocket_decoder *d)
{
	if (!d)
		return;
	if (d->wslay)
		wslay_frame_context_free(d->wslay);
	hd_buf_fini(&d->msg);
	free(d);
}

static bool is_control(uint8_t opcode)
{
	return (opcode & 0x8) != 0;
}

/* The close codes a peer may send (RFC 6455 §7.4 and the IANA registry):
 * 1000–1003, 1007–1014 and the ranges for libraries (3000–3999) and
 * applications (4000–4999). 1004–1006 and 1015 are reserved, never sent. */
static bool close_code_valid(uint16_t code)
{
	if (code >= 3000 && code <= 4999)
		return true;
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

/* Checks a complete message or control frame and hands it to on_msg;
 * returns like hd_websocket_decoder_feed. */
static int deliver(uint8_t opcode, const char *data, size_t len, hd_websocket_msg_fn on_msg, void *arg,
		   const char **reason)
{
	struct hd_websocket_msg m = {.opcode = (enum hd_websocket_opcode)opcode, .data = data, .len = len};

	if (opcode == HD_WEBSOCKET_TEXT && !hd_json_text_utf8_valid(data, len)) {
		*reason = "a text message is not valid UTF-8";
		return HD_WEBSOCKET_CLOSE_BAD_DATA;
	}
	if (opcode == HD_WEBSOCKET_CLOSE && len > 0) {
		if (len == 1) {
			*reason = "a close frame's payload is 1 byte";
			return HD_WEBSOCKET_CLOSE_PROTOCOL;
		}
		m.close_code = (uint16_t)((uint8_t)data[0] << 8 | (uint8_t)data[1]);
		if (!close_code_valid(m.close_code)) {
			*reason = "a close frame carries a code that may not be sent";
			return HD_WEBSOCKET_CLOSE_PROTOCOL;
		}
		m.data += 2;
		m.len -= 2;
		if (!hd_json_text_utf8_valid(m.data, m.len)) {
			*reason = "a close frame's reason is not valid UTF-8";
			return HD_WEBSOCKET_CLOSE_BAD_DATA;
		}
	}
	return on_msg(arg, &m) != 0 ? 1 : 0;
}

/* Judges a frame on its first chunk (see the top of the file); returns 0
 * or a close code. */
static int frame_start(struct hd_websocket_decoder *d, const struct wslay_frame_iocb *io,
		       const char **reason)
{
	uint8_t op = io->opcode;

	if (!io->mask) {
		*reason = "a client frame is not masked";
		return HD_WEBSOCKET_CLOSE_PROTOCOL;
	}
	if (io->rsv != 0) {
		*reason = "a reserved bit is set and no extension was negotiated";
		return HD_WEBSOCKET_CLOSE_PROTOCOL;
	}
	if (op != HD_WEBSOCKET_CONT && op != HD_WEBSOCKET_TEXT && op != HD_WEBSOCKET_BINARY && op != HD_WEBSOCKET_CLOSE &&
	    op != HD_WEBSOCKET_PING && op != HD_WEBSOCKET_PONG) {
		*reason = "a frame has an unknown opcode";
		return HD_WEBSOCKET_CLOSE_PROTOCOL;
	}
	if (is_control(op)) {
		/* wslay refuses these already; kept so that this file states
		 * every rule it relies on. */
		if (!io->fin || io->payload_length > HD_WEBSOCKET_CONTROL_MAX) {
			*reason = "a control frame is fragmented or longer than 125 bytes";
			return HD_WEBSOCKET_CLOSE_PROTOCOL;
		}
		return 0;
	}
	if (op == HD_WEBSOCKET_CONT && !d->msg_open) {
		*reason = "a continuation frame has no message to continue";
		return HD_WEBSOCKET_CLOSE_PROTOCOL;
	}
	if (op != HD_WEBSOCKET_CONT && d->msg_open) {
		*reason = "a new message began before the previous one ended";
		return HD_WEBSOCKET_CLOSE_PROTOCOL;
	}
	if (io->payload_length > d->max_message - d->msg.len) {
		*reason = "the message is too big";
		return HD_WEBSOCKET_CLOSE_TOO_BIG;
	}
	if (op != HD_WEBSOCKET_CONT) {
		d->msg_open = true;
		d->msg_opcode = op;
	}
	return 0;
}

/* The message is handed over: forget it, and its memory if it was big. */
static void msg_reset(struct hd_websocket_decoder *d)
{
	d->msg_open = false;
	if (d->msg.cap > MSG_KEEP)
		hd_buf_fini(&d->msg);
	else
		hd_buf_reset(&d->msg);
}

/* One chunk of payload from wslay (possibly empty); returns like feed. */
static int on_chunk(struct hd_websocket_decoder *d, const struct wslay_frame_iocb *io,
		    hd_websocket_msg_fn on_msg, void *arg, const char **reason)
{
	const char *data = (const char *)io->data;
	size_t n = io->data_length;
	bool end;
	int rc;

	if (!d->in_frame) {
		rc = frame_start(d, io, reason);
		if (rc)
			return rc;
		d->in_frame = true;
		d->opcode = io->opcode;
		d->fin = io->fin;
		d->got = 0;
		d->whole = n == io->payload_length;
		d->ctrl_len = 0;
	}
	d->got += n;
	end = d->got == io->payload_length;
	if (end) {
		d->in_frame = false;
		d->pending -= frame_bytes(io);
	}

	if (is_control(d->opcode)) {
		if (d->whole)
			return deliver(d->opcode, n ? data : "", n, on_msg, arg, reason);
		memcpy(d->ctrl + d->ctrl_len, data, n); /* frame_start bounded it to 125 */
		d->ctrl_len += n;
		if (!end)
			return 0;
		return deliver(d->opcode, (const char *)d->ctrl, d->ctrl_len, on_msg, arg, reason);
	}
	/* A single-frame message that came in one chunk: no copy. */
	if (d->whole && d->fin && d->opcode != HD_WEBSOCKET_CONT) {
		d->msg_open = false;
		return deliver(d->opcode, n ? data : "", n, on_msg, arg, reason);
	}
	if (n && hd_buf_append(&d->msg, data, n) != 0) {
		/* frame_start checked the frame's whole length against the room. */
		assert(!"message buffer past its ceiling");
		*reason = "the message is too big";
		return HD_WEBSOCKET_CLOSE_TOO_BIG;
	}
	if (!end || !d->fin)
		return 0;
	rc = deliver(d->msg_opcode, d->msg.data ? d->msg.data : "", d->msg.len, on_msg, arg, reason);
	msg_reset(d);
	return rc;
}

int hd_websocket_decoder_feed(struct hd_websocket_decoder *d, const char *p, size_t n, hd_websocket_msg_fn on_msg,
		       void *arg, const char **reason)
{
	struct wslay_frame_iocb io;
	ssize_t r;
	int rc = 0;

	assert(!d->done);
	*reason = NULL;
	if (!d->wslay)
		wslay_open(d);
	d->in = p;
	d->in_len = n;
	d->pending += n;
	for (;;) {
		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(d->wslay, &io);
		if (r == WSLAY_ERR_WANT_READ)
			break;
		if (r < 0) {
			/* WSLAY_ERR_PROTO: the header broke one of wslay's rules. */
			*reason = "a frame header is invalid (a control frame fragmented or longer "
				  "than 125 bytes, or a length not in its shortest form)";
			rc = HD_WEBSOCKET_CLOSE_PROTOCOL;
			break;
		}
		rc = on_chunk(d, &io, on_msg, arg, reason);
		if (rc)
			break;
	}
	/* wslay asks for more only once its recv callback found nothing left:
	 * every byte fed is either handled or kept in its buffer. */
	assert(rc || d->in_len == 0);
	d->in = NULL;
	d->in_len = 0;
	if (rc) {
		d->done = true;
	} else if (d->pending == 0 && !d->in_frame && !d->msg_open) {
		/* Between frames with nothing buffered: give the memory back. */
		wslay_frame_context_free(d->wslay);
		d->wslay = NULL;
		hd_buf_fini(&d->msg);
		hd_buf_init(&d->msg, d->max_message);
	}
	return rc;
}
