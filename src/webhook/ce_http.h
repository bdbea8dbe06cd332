/*
 * ce_http — a stored CloudEvent as an outgoing HTTP request, per the
 * CloudEvents HTTP protocol binding (../shared/research/protocols.md):
 * the content headers and the body of a webhook delivery.
 * Layer: webhook (pure: no I/O). Any thread; webhook/pump.c calls it on
 * the loop thread.
 *
 * Structured mode: Content-Type: application/cloudevents+json;
 * charset=utf-8 and the stored event JSON, byte for byte, as the body
 * (with herald's "topic" and "offset" members).
 *
 * Binary mode: the body is the event's data — for a JSON datacontenttype
 * (absent, "…/json" or "…/…+json") the JSON text of `data` exactly as
 * stored, for another type the decoded string, for data_base64 the decoded
 * bytes; Content-Type is datacontenttype (application/json when absent and
 * there is data; no Content-Type without data). Every other attribute,
 * extensions and herald's topic and offset included, becomes a ce-<name>
 * header: strings percent-encoded as the binding says (space, '"', '%'
 * and every byte outside U+0021..U+007E as %XX, upper-case hex), integers
 * in decimal, booleans true/false. Null members are left out.
 */
#ifndef HD_WEBHOOK_CE_HTTP_H
#define HD_WEBHOOK_CE_HTTP_H

#include "core/err.h"
#include "net/http_client.h"
#include "webhook/sub_config.h"

#include <stddef.h>

/* Header fields one encoded event may need (an event with more attributes
 * cannot be sent in binary mode). */
#define HD_CE_HTTP_HEADERS_MAX 48

struct hd_ce_http {
	struct hd_http_header headers[HD_CE_HTTP_HEADERS_MAX]; /* names and values point into store */
	size_t nheaders;
	const char *body;          /* the stored JSON (structured) or into own_body */
	size_t body_len;
	char *store;               /* owned */
	char *own_body;            /* owned; NULL in structured mode */
};

/* Encodes the stored event JSON (len bytes, borrowed: in structured mode
 * out->body points into it until it is freed) in mode. Returns 0, or
 * HD_EBADEVENT with err (not an object, too many attributes, bad
 * data_base64). out needs hd_ce_http_fini in every case. */
int hd_ce_http_encode(struct hd_ce_http *out, enum hd_sub_mode mode, const char *json, size_t len,
		      struct hd_error *err);
void hd_ce_http_fini(struct hd_ce_http *h);

/* Percent-encodes the n bytes of in as a ce- header value into out (room
 * for out_len, NUL-terminated). Returns the length, or -1 if it does not
 * fit. */
long hd_ce_http_header_encode(const char *in, size_t n, char *out, size_t out_len);

#endif
