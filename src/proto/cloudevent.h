/*
 * cloudevent — decoding and validating CloudEvents 1.0 from HTTP publishes.
 * Layer: proto. Called by the REST publish edge on the loop thread. Pure:
 * no I/O, no globals, so the fuzzer drives it directly.
 *
 * Modes (chosen from Content-Type, case-insensitive prefix match, per the
 * CloudEvents HTTP binding):
 *   application/cloudevents-batch+json  → batch: a JSON array of structured events
 *   application/cloudevents(+json)      → structured: the body is one event
 *   ce-id, ce-source, ce-type and ce-specversion headers all present → binary:
 *       the body is `data`, Content-Type is `datacontenttype`, every other
 *       attribute is a ce-<name> header (quoted-string unquoted, then
 *       percent-decoded once; raw printable values are accepted as they are)
 *   some but not all of those headers   → HD_EBADEVENT naming the missing one
 *       (treating it as raw would silently drop the id, and with it dedup)
 *   application/cloudevents+<not json>  → HD_EMEDIATYPE (415)
 *   anything else                       → raw: the body is the data of an event
 *       herald completes (id = Idempotency-Key header or a random UUID,
 *       source "/topics/<topic>", type "herald.message")
 *
 * Validation follows CloudEvents 1.0: id/source/type non-empty strings,
 * specversion exactly "1.0", attribute names [a-z0-9]{1,20} except "data",
 * `time` and `expirytime` RFC 3339, `data` and `data_base64` not both,
 * `data_base64` valid base64, subject a non-empty string when present,
 * `source` a URI-reference (RFC 3986 §4.1), `dataschema` an absolute URI
 * (RFC 3986 §4.3), `datacontenttype` (and a binary or raw publish's
 * Content-Type, which becomes it) a media type (RFC 2045 §5.1) — grammars
 * in proto/syntax.h, no duplicate members, attribute string values valid
 * UTF-8 without control characters.
 *
 * The canonical form herald stores is compact JSON (no raw newline) with the
 * members in the order received; `data` is kept byte for byte (only
 * insignificant white space is removed). herald adds `time` (the publish
 * time) when absent. The names `topic` and `offset` are refused
 * (HD_EBADEVENT, saying why): herald adds them to every stored event, so a
 * producer's own would be lost.
 *
 * Expiry: `expirytime` (RFC 3339), else an integer `ttl` attribute in seconds
 * from the publish time, else a Herald-TTL request header (seconds) sets
 * expires_ms (an expirytime at or before the epoch becomes 1: 0 means never).
 *
 * Details: null attributes are unset and not stored (`"data": null` is kept);
 * extension values must be a string, a 32-bit integer or a boolean; binary
 * mode rejects ce-datacontenttype and ce-data headers; any media type
 * ending in "/json" or "+json" is embedded as JSON; a non-object batch
 * entry is a per-entry error. Stored events are valid RFC 8259 JSON, but numbers beyond
 * a double's range or \u0000 in nested keys cannot be loaded by jansson:
 * consumers that parse stored events must handle a failed load.
 */
#ifndef HD_CLOUDEVENT_H
#define HD_CLOUDEVENT_H

#include "core/err.h"
#include "core/header.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_CLOUDEVENT_BATCH_MAX 10000 /* events in one batch request */
/* The ceiling of one event's canonical JSON (larger is HD_ETOOBIG); a
 * buffer that holds one encoded event is sized from it. */
#define HD_EVENT_JSON_MAX ((size_t)64 << 20)
/* The ceiling of what is built around one event at HD_EVENT_JSON_MAX: a
 * read or fetch answer, a dead letter, an encoded stream block. */
#define HD_EVENT_REPLY_MAX (HD_EVENT_JSON_MAX + ((size_t)1 << 20))

/* One validated event, ready to store. */
/* Bits of hd_event.borrowed: the field lives inside json's allocation. */
#define HD_EVENT_BORROW_ID 1u
#define HD_EVENT_BORROW_SOURCE 2u
#define HD_EVENT_BORROW_TYPE 4u

struct hd_event {
	char *id;           /* owned (or inside json's allocation: borrowed) */
	char *source;       /* the same */
	char *type;         /* the same */
	unsigned char borrowed; /* HD_EVENT_BORROW_* bits; 0 = all three owned */
	int64_t time_ms;    /* the event's `time` (as added or given) */
	int64_t expires_ms; /* 0 = never expires */
	char *json;         /* owned: canonical compact JSON object, NUL-terminated */
	size_t json_len;
};

void hd_cloudevent_event_fini(struct hd_event *ev);

struct hd_cloudevent_request {
	const char *topic;               /* borrowed; already validated */
	int64_t now_ms;                  /* publish time */
	const struct hd_header *headers; /* request headers, names lower-case */
	size_t nheaders;
	const char *body;                /* NUL-terminated */
	size_t body_len;
};

/*
 * The decoded request. For single modes n == 1. For batch mode n is the
 * array length and errors[i].code != 0 marks entry i as invalid (its
 * events[i] is zeroed); the other entries are valid.
 */
struct hd_cloudevent_batch {
	bool is_batch;
	size_t n;
	struct hd_event *events; /* owned, n entries */
	struct hd_error *errors; /* n entries, in the allocation of events */
};

/*
 * Decodes and validates the request. Returns 0 (out filled, free it with
 * hd_cloudevent_batch_fini) or a negative HD_E* code with err filled: HD_EBADEVENT
 * for an invalid single event or a batch that is not an array of objects,
 * HD_EINVAL for a bad Herald-TTL header, HD_ETOOBIG for more than
 * HD_CLOUDEVENT_BATCH_MAX entries, HD_EMEDIATYPE for a non-JSON structured format.
 * On error out holds nothing to free.
 */
int hd_cloudevent_decode(const struct hd_cloudevent_request *req, struct hd_cloudevent_batch *out,
			 struct hd_error *err);
void hd_cloudevent_batch_fini(struct hd_cloudevent_batch *b);

#endif
