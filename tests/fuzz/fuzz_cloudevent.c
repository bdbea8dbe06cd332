/*
 * fuzz_cloudevent — libFuzzer target for the CloudEvents decoder
 * (src/proto/cloudevent.c) and the JSON text scanner under it
 * (src/proto/json_text.c): the two parsers of untrusted publish input.
 *
 * Input layout (the seeds in tests/fuzz/corpus/cloudevent/ follow it):
 *   byte 0       Content-Type selector: ctypes[byte % NCTYPES] below
 *                (index 0 sends no Content-Type header).
 *   then         either '\n' directly (no header lines), or up to 16 header
 *                lines "name: value\n" ended by an empty line; names are
 *                lower-cased as the HTTP parser does, values trimmed, and a
 *                line without ':' is skipped. When no empty line follows,
 *                there are no header lines at all.
 *   the rest     the request body.
 * So "\x01\n{...}" is a structured event and
 * "\x03ce-id: 1\nce-source: /s\nce-type: t\nce-specversion: 1.0\n\n{...}"
 * is a binary one with a JSON body.
 *
 * Properties checked:
 *   - a failed decode sets err (code == rc, a message) and leaves out empty;
 *   - every event produced is one compact JSON object, already minimal
 *     (minifying it again changes nothing), with no raw newline, exactly
 *     one `time`, no `topic` or `offset`, no repeated or escaped top-level
 *     name; jansson reads it (bar the valid JSON jansson cannot represent,
 *     see jansson_gap) with id, source and type equal to the event's;
 *   - every invalid batch entry has HD_EBADEVENT, a message and no event;
 *   - the scanner and jansson agree on the body as JSON text: what the
 *     scanner accepts jansson reads as the same value (bar jansson_gap),
 *     and what jansson reads the scanner accepts (bar nesting beyond the
 *     scanner's limit and the NUL bytes jansson skips, see error_at_nul).
 */
#include "core/err.h"
#include "core/header.h"
#include "proto/cloudevent.h"
#include "proto/json_text.h"
#include "fuzz_check.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 16

static const char *const ctypes[] = {
	NULL,
	"application/cloudevents+json",
	"application/cloudevents-batch+json",
	"application/json",
	"text/plain",
	"application/octet-stream",
	"text/plain; charset=iso-8859-1",
	"application/x-www-form-urlencoded",
	"application/vnd.example+json; charset=utf-8",
	"application/cloudevents+avro",
	"application/cloudevents; charset=utf-8",
};
#define NCTYPES (sizeof(ctypes) / sizeof(ctypes[0]))


static const int jflags = JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;

/*
 * Valid JSON (RFC 8259) that jansson refuses whatever the flags: numbers
 * beyond a double's range ("1e400") and U+0000 in an object key. herald
 * stores such data as sent, so these two refusals are expected.
 */
static bool jansson_gap(const json_error_t *jerr)
{
	enum json_error_code code = json_error_code(jerr);
	return code == json_error_numeric_overflow || code == json_error_null_byte_in_key;
}

static bool key_is(const char *json, const struct hd_json_text_span *sp, const char *quoted)
{
	return sp->key_len == strlen(quoted) && memcmp(json + sp->key_off, quoted, sp->key_len) == 0;
}

static void check_event(const struct hd_event *ev)
{
	struct hd_json_text_span spans[256];
	struct hd_json_text_scan sc = {.spans = spans, .spans_max = 256};
	json_error_t jerr;
	json_t *root;
	char *again;
	int times = 0;

	CHECK(ev->json && ev->id && ev->source && ev->type);
	CHECK(strlen(ev->json) == ev->json_len);
	CHECK(memchr(ev->json, '\n', ev->json_len) == NULL);

	/* The structure, read with the scanner: this holds for every event,
	 * including those jansson cannot load. Top-level names are stored
	 * unescaped, so comparing their bytes is exact. */
	again = malloc(ev->json_len + 1);
	CHECK(hd_json_text_minify(ev->json, ev->json_len, again, &sc, NULL) == 0);
	CHECK(sc.out_len == ev->json_len && memcmp(again, ev->json, ev->json_len) == 0);
	free(again);
	CHECK(ev->json[0] == '{');
	for (size_t i = 0; i < sc.nspans; i++) {
		CHECK(memchr(ev->json + spans[i].key_off, '\\', spans[i].key_len) == NULL);
		CHECK(!key_is(ev->json, &spans[i], "\"topic\""));
		CHECK(!key_is(ev->json, &spans[i], "\"offset\""));
		times += key_is(ev->json, &spans[i], "\"time\"");
		for (size_t k = 0; k < i; k++)
			CHECK(spans[k].key_len != spans[i].key_len ||
			      memcmp(ev->json + spans[k].key_off, ev->json + spans[i].key_off,
				     spans[i].key_len) != 0);
	}
	CHECK(times == 1);

	root = json_loads(ev->json, jflags, &jerr);
	if (!root) {
		CHECK(jansson_gap(&jerr));
		return;
	}
	CHECK(json_is_object(root));
	CHECK(json_is_string(json_object_get(root, "time")));
	/* Attribute values cannot hold U+0000, so C string comparison is exact. */
	CHECK(strcmp(json_string_value(json_object_get(root, "id")), ev->id) == 0);
	CHECK(strcmp(json_string_value(json_object_get(root, "source")), ev->source) == 0);
	CHECK(strcmp(json_string_value(json_object_get(root, "type")), ev->type) == 0);
	CHECK(json_is_string(json_object_get(root, "specversion")));
	json_decref(root);
}

/*
 * Whether the scanner's error names a NUL byte of the text. jansson skips a
 * NUL that directly follows a number or a literal (its look-ahead buffer
 * uses '\0' as "empty", so a pushed-back NUL vanishes): it reads "[1\0,2]"
 * as [1,2]. RFC 8259 allows no NUL outside strings, so there the scanner
 * is right and the disagreement is expected.
 */
static bool error_at_nul(const struct hd_error *err, const char *text, size_t len)
{
	const char *at = NULL, *p = err->msg;
	size_t off;

	while ((p = strstr(p, "at byte ")) != NULL)
		at = p++;
	return at && sscanf(at, "at byte %zu", &off) == 1 && off < len && text[off] == '\0';
}

/* The scanner against jansson, on the body taken as JSON text. */
static void differential(const char *body, size_t len)
{
	struct hd_json_text_scan sc = {0};
	struct hd_error err;
	json_error_t jerr;
	char *out = malloc(len + 1);
	int rc = hd_json_text_minify(body, len, out, &sc, &err);
	json_t *a = json_loadb(body, len, jflags, &jerr);

	if (rc == 0) {
		CHECK(sc.out_len <= len);
		CHECK(a || jansson_gap(&jerr));
		if (a) {
			json_t *b = json_loadb(out, sc.out_len, jflags, &jerr);
			CHECK(b && json_equal(a, b));
			json_decref(b);
		}
	} else {
		CHECK(rc == HD_EINVAL && err.msg[0]);
		CHECK(!a || error_at_nul(&err, body, len) || strstr(err.msg, "nesting deeper than"));
	}
	json_decref(a);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hd_header headers[MAX_HEADERS + 1];
	char *copy, *p, *end, *body, *sep;
	size_t n = 0;
	struct hd_cloudevent_batch out;
	struct hd_error err;
	int rc;

	if (size == 0)
		return 0;
	/* One NUL-terminated copy; header names and values are cut out of it in place. */
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	p = copy + 1;
	end = copy + size;

	const char *ct = ctypes[(unsigned char)copy[0] % NCTYPES];
	if (ct)
		headers[n++] = (struct hd_header){"content-type", 12, ct, strlen(ct)};
	if (p < end && *p == '\n') {
		body = p + 1;
	} else if ((sep = memmem(p, (size_t)(end - p), "\n\n", 2)) != NULL) {
		body = sep + 2;
		*sep = '\0';
		while (p < sep && n < MAX_HEADERS + 1) {
			char *nl = memchr(p, '\n', (size_t)(sep - p));
			char *line_end = nl ? nl : sep;
			char *colon = memchr(p, ':', (size_t)(line_end - p));
			*line_end = '\0';
			if (colon) {
				char *v = colon + 1, *ve = line_end;
				*colon = '\0';
				for (char *c = p; c < colon; c++)
					if (*c >= 'A' && *c <= 'Z')
						*c = (char)(*c - 'A' + 'a');
				while (v < ve && (*v == ' ' || *v == '\t'))
					v++;
				while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
					ve--;
				*ve = '\0';
				headers[n++] = (struct hd_header){p, (size_t)(colon - p), v,
								  (size_t)(ve - v)};
			}
			p = line_end + 1;
		}
	} else {
		body = p;
	}
	if (body > end)
		body = end;

	struct hd_cloudevent_request req = {
		.topic = "fuzz",
		.now_ms = 1700000000123LL,
		.headers = headers,
		.nheaders = n,
		.body = body,
		.body_len = (size_t)(end - body),
	};
	rc = hd_cloudevent_decode(&req, &out, &err);
	if (rc == 0) {
		CHECK(err.code == 0);
		CHECK(out.is_batch || out.n == 1);
		for (size_t i = 0; i < out.n; i++) {
			if (out.errors[i].code == 0) {
				check_event(&out.events[i]);
			} else {
				CHECK(out.is_batch);
				CHECK(out.errors[i].code == HD_EBADEVENT && out.errors[i].msg[0]);
				CHECK(out.events[i].json == NULL && out.events[i].id == NULL);
			}
		}
	} else {
		CHECK(rc < 0 && err.code == rc && err.msg[0]);
		CHECK(out.n == 0 && out.events == NULL && out.errors == NULL);
	}
	hd_cloudevent_batch_fini(&out);

	differential(req.body, req.body_len);
	free(copy);
	return 0;
}
