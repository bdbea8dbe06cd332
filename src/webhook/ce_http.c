/* ce_http — see ce_http.h. */
#include "webhook/ce_http.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STRUCTURED_TYPE "application/cloudevents+json; charset=utf-8"

long hd_ce_http_header_encode(const char *in, size_t n, char *out, size_t out_len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		bool plain = c >= 0x21 && c <= 0x7e && c != '"' && c != '%';
		if (o + (plain ? 1 : 3) >= out_len)
			return -1;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= out_len)
		return -1;
	out[o] = '\0';
	return (long)o;
}

/* ---- the raw text of a top-level member ------------------------------- */

/* Skips a JSON string starting at s[i] == '"'; returns the index after it. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return len;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Skips one JSON value starting at s[i]; returns the index after it. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
	if (i >= len)
		return len;
	if (s[i] == '"')
		return skip_string(s, len, i);
	if (s[i] == '{' || s[i] == '[') {
		int depth = 0;
		for (; i < len; i++) {
			if (s[i] == '"') {
				i = skip_string(s, len, i) - 1;
			} else if (s[i] == '{' || s[i] == '[') {
				depth++;
			} else if (s[i] == '}' || s[i] == ']') {
				if (--depth == 0)
					return i + 1;
			}
		}
		return len;
	}
	while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
	       s[i] != '\t' && s[i] != '\r')
		i++;
	return i;
}

/* Finds the value of the top-level member "name" of the JSON object text
 * (valid JSON, as the store keeps it). Returns true with its raw text. */
static bool raw_member(const char *s, size_t len, const char *name, const char **val,
		       size_t *vlen)
{
	size_t nlen = strlen(name);
	size_t i = skip_ws(s, len, 0);
	if (i >= len || s[i] != '{')
		return false;
	i++;
	while (i < len) {
		i = skip_ws(s, len, i);
		if (i >= len || s[i] != '"')
			return false;
		size_t kstart = i + 1, kend = skip_string(s, len, i);
		i = skip_ws(s, len, kend);
		if (i >= len || s[i] != ':')
			return false;
		i = skip_ws(s, len, i + 1);
		size_t vstart = i;
		i = skip_value(s, len, i);
		/* Member names of a stored event are plain [a-z0-9_] (no escapes). */
		if (kend - 1 - kstart == nlen && memcmp(s + kstart, name, nlen) == 0) {
			*val = s + vstart;
			*vlen = i - vstart;
			return true;
		}
		i = skip_ws(s, len, i);
		if (i < len && s[i] == ',')
			i++;
		else
			return false;
	}
	return false;
}

/* ---- encoding --------------------------------------------------------- */

static bool json_media_type(const char *t)
{
	if (!t)
		return true;
	size_t n = strcspn(t, ";");
	while (n > 0 && t[n - 1] == ' ')
		n--;
	return (n >= 5 && strncasecmp(t + n - 5, "/json", 5) == 0) ||
	       (n >= 5 && strncasecmp(t + n - 5, "+json", 5) == 0);
}

struct hdr_off {
	size_t name, value;
};

int hd_ce_http_encode(struct hd_ce_http *out, enum hd_sub_mode mode, const char *json, size_t len,
		      struct hd_error *err)
{
	struct hdr_off offs[HD_CE_HTTP_HEADERS_MAX];
	struct hd_buf st;
	json_t *o = NULL;
	const char *key;
	json_t *v;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	hd_buf_init(&st, 1u << 20);
	if (mode == HD_SUB_STRUCTURED) {
		hd_buf_puts(&st, "content-type");
		hd_buf_putc(&st, '\0');
		hd_buf_puts(&st, STRUCTURED_TYPE);
		offs[0] = (struct hdr_off){0, sizeof("content-type")};
		out->nheaders = 1;
		out->body = json;
		out->body_len = len;
		goto fix;
	}
	o = json_loadb(json, len, 0, NULL);
	if (!json_is_object(o)) {
		rc = hd_error_set(err, HD_EBADEVENT, "the stored event is not a JSON object");
		goto out;
	}
	const char *ctype = json_string_value(json_object_get(o, "datacontenttype"));
	json_t *data = json_object_get(o, "data");
	json_t *b64 = json_object_get(o, "data_base64");
	if (json_is_string(b64)) {
		size_t n = json_string_length(b64);
		const char *s = json_string_value(b64);
		out->own_body = hd_malloc(n / 4 * 3 + 4);
		int got = n ? EVP_DecodeBlock((unsigned char *)out->own_body, (const unsigned char *)s,
					      (int)n)
			    : 0;
		if (got < 0 || n % 4) {
			rc = hd_error_set(err, HD_EBADEVENT, "the event's data_base64 is not base64");
			goto out;
		}
		while (n > 0 && s[n - 1] == '=' && got > 0) {
			n--;
			got--;
		}
		out->body = out->own_body;
		out->body_len = (size_t)got;
		if (!ctype)
			ctype = "application/octet-stream";
	} else if (data) {
		if (json_is_string(data) && !json_media_type(ctype)) {
			out->own_body = hd_strndup(json_string_value(data), json_string_length(data));
			out->body = out->own_body;
			out->body_len = json_string_length(data);
		} else {
			const char *raw;
			size_t rlen;
			if (!raw_member(json, len, "data", &raw, &rlen)) {
				rc = hd_error_set(err, HD_EBADEVENT, "the event's data cannot be found");
				goto out;
			}
			out->body = raw;
			out->body_len = rlen;
		}
		if (!ctype)
			ctype = "application/json";
	} else {
		out->body = "";
		out->body_len = 0;
	}
	if (ctype) {
		offs[out->nheaders].name = st.len;
		hd_buf_puts(&st, "content-type");
		hd_buf_putc(&st, '\0');
		offs[out->nheaders].value = st.len;
		hd_buf_puts(&st, ctype);
		hd_buf_putc(&st, '\0');
		out->nheaders++;
	}
	json_object_foreach(o, key, v)
	{
		char num[32], enc[4096];
		const char *text;
		size_t tlen;
		if (strcmp(key, "data") == 0 || strcmp(key, "data_base64") == 0 ||
		    strcmp(key, "datacontenttype") == 0 || json_is_null(v))
			continue;
		if (json_is_string(v)) {
			text = json_string_value(v);
			tlen = json_string_length(v);
		} else if (json_is_integer(v)) {
			tlen = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
						json_integer_value(v));
			text = num;
		} else if (json_is_boolean(v)) {
			text = json_is_true(v) ? "true" : "false";
			tlen = strlen(text);
		} else {
			continue; /* not a CloudEvents attribute type */
		}
		if (out->nheaders >= HD_CE_HTTP_HEADERS_MAX) {
			rc = hd_error_set(err, HD_EBADEVENT,
					  "the event has more than %d attributes for binary mode",
					  HD_CE_HTTP_HEADERS_MAX - 1);
			goto out;
		}
		char *big = NULL;
		char *dst = enc;
		size_t cap = sizeof(enc);
		if (tlen * 3 + 1 > cap) {
			cap = tlen * 3 + 1;
			big = dst = hd_malloc(cap);
		}
		long elen = hd_ce_http_header_encode(text, tlen, dst, cap);
		offs[out->nheaders].name = st.len;
		hd_buf_printf(&st, "ce-%s", key);
		hd_buf_putc(&st, '\0');
		offs[out->nheaders].value = st.len;
		int brc = hd_buf_append(&st, dst, elen > 0 ? (size_t)elen : 0);
		if (brc == 0)
			brc = hd_buf_putc(&st, '\0');
		free(big);
		if (brc) {
			rc = hd_error_set(err, HD_EBADEVENT, "the event's attributes are too large");
			goto out;
		}
		out->nheaders++;
	}
fix:
	hd_buf_putc(&st, '\0');
	out->store = hd_buf_steal(&st, NULL);
	for (size_t i = 0; i < out->nheaders; i++) {
		out->headers[i].name = out->store + offs[i].name;
		out->headers[i].value = out->store + offs[i].value;
	}
out:
	hd_buf_fini(&st);
	json_decref(o);
	return rc;
}

void hd_ce_http_fini(struct hd_ce_http *h)
{
	free(h->store);
	free(h->own_body);
	memset(h, 0, sizeof(*h));
}
