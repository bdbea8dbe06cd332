/*
 * forwarded — see forwarded.h.
 */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ADDR_TEXT_MAX 64 /* longest address text read, with brackets and port */

/* An address as bytes: IPv4 (4) or IPv6 (16); IPv4-mapped IPv6 as IPv4. */
static int addr_bytes(const struct sockaddr *sa, unsigned char out[16])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			memcpy(out, a + 12, 4);
			return AF_INET;
		}
		memcpy(out, a, 16);
		return AF_INET6;
	}
	return 0;
}

static bool prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char m = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & m) == (b[whole] & m);
}

bool hd_forwarded_trusts(const struct hd_forwarded *t, const struct sockaddr *sa)
{
	unsigned char a[16];
	int family = addr_bytes(sa, a);

	for (size_t i = 0; family && i < t->n; i++)
		if (t->cidr[i].family == family && prefix_match(a, t->cidr[i].addr, t->cidr[i].bits))
			return true;
	return false;
}

int hd_forwarded_parse(struct hd_forwarded *t, const char *text, struct hd_error *err)
{
	const char *p = text ? text : "";

	t->n = 0;
	while (*p) {
		char entry[ADDR_TEXT_MAX];
		size_t len;
		const char *slash;
		long bits = -1;
		struct hd_forwarded_cidr *c;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		if (len >= sizeof(entry))
			return hd_error_set(err, HD_ECONFIG, "--trusted-proxies: '%.*s' is too long",
					    (int)len, p);
		memcpy(entry, p, len);
		entry[len] = '\0';
		p += len;
		if (t->n >= HD_FORWARDED_CIDRS_MAX)
			return hd_error_set(err, HD_ECONFIG, "--trusted-proxies: more than %d entries",
					    HD_FORWARDED_CIDRS_MAX);
		c = &t->cidr[t->n];
		slash = strchr(entry, '/');
		if (slash) {
			char *end;
			bits = strtol(slash + 1, &end, 10);
			if (*end || slash[1] == '\0' || !isdigit((unsigned char)slash[1]))
				bits = 1000;
			entry[slash - entry] = '\0';
		}
		memset(c->addr, 0, sizeof(c->addr));
		if (inet_pton(AF_INET, entry, c->addr) == 1) {
			c->family = AF_INET;
			if (bits < 0)
				bits = 32;
		} else if (inet_pton(AF_INET6, entry, c->addr) == 1) {
			c->family = AF_INET6;
			if (bits < 0)
				bits = 128;
		} else {
			return hd_error_set(err, HD_ECONFIG, "--trusted-proxies: '%s' is not an IPv4 or "
					    "IPv6 address or CIDR block", entry);
		}
		if (bits > (c->family == AF_INET ? 32 : 128))
			return hd_error_set(err, HD_ECONFIG, "--trusted-proxies: bad prefix length in "
					    "'%s/%s'", entry, slash ? slash + 1 : "");
		c->bits = (unsigned)bits;
		t->n++;
	}
	return 0;
}

int hd_forwarded_addr(const char *p, size_t n, struct sockaddr_storage *out)
{
	char text[ADDR_TEXT_MAX];
	const char *host = text, *port = NULL;
	char *close;
	long portv = 0;

	if (n == 0 || n >= sizeof(text))
		return HD_EINVAL;
	memcpy(text, p, n);
	text[n] = '\0';
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (!close || (close[1] != '\0' && close[1] != ':'))
			return HD_EINVAL;
		*close = '\0';
		host = text + 1;
		if (close[1] == ':')
			port = close + 2;
	} else {
		char *colon = strchr(text, ':');
		if (colon && !strchr(colon + 1, ':')) { /* one colon: IPv4 and a port */
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port) {
		char *end;
		if (!isdigit((unsigned char)*port))
			return HD_EINVAL;
		portv = strtol(port, &end, 10);
		if (*end || portv > 65535)
			return HD_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)portv);
		return 0;
	}
	if (text[0] != '[' && port)
		return HD_EINVAL;
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)portv);
		return 0;
	}
	return HD_EINVAL;
}

struct hop {
	const char *p;
	size_t n;
};

static void trim(const char **p, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*p)[*n - 1]))
		(*n)--;
}

/* One Forwarded element ("for=1.2.3.4;proto=https"): its for= value, or
 * n = 0 when it has none. */
static struct hop forwarded_for(const char *p, size_t n)
{
	struct hop h = {p, 0};

	while (n > 0) {
		const char *semi = memchr(p, ';', n);
		size_t len = semi ? (size_t)(semi - p) : n;
		const char *q = p;
		size_t qn = len;

		trim(&q, &qn);
		if (qn > 4 && strncasecmp(q, "for=", 4) == 0) {
			q += 4;
			qn -= 4;
			if (qn >= 2 && q[0] == '"' && q[qn - 1] == '"') {
				q++;
				qn -= 2;
			}
			h.p = q;
			h.n = qn;
			return h;
		}
		if (!semi)
			break;
		p = semi + 1;
		n -= len + 1;
	}
	return h;
}

/* Appends the comma-separated hops of one header value to hops[]. A value
 * with more hops than fit keeps its right-most ones. */
static void split_hops(const char *v, size_t vn, bool rfc7239, struct hop *hops, size_t *nhops)
{
	while (vn > 0) {
		const char *comma = memchr(v, ',', vn);
		size_t len = comma ? (size_t)(comma - v) : vn;
		struct hop h = {v, len};

		if (rfc7239)
			h = forwarded_for(v, len);
		trim(&h.p, &h.n);
		if (*nhops == HD_FORWARDED_HOPS_MAX) {
			memmove(hops, hops + 1, (HD_FORWARDED_HOPS_MAX - 1) * sizeof(*hops));
			(*nhops)--;
		}
		hops[(*nhops)++] = h;
		if (!comma)
			break;
		v = comma + 1;
		vn -= len + 1;
	}
}

int hd_forwarded_client(const struct hd_forwarded *t, const struct hd_header *headers,
			size_t nheaders, struct sockaddr_storage *out)
{
	struct hop hops[HD_FORWARDED_HOPS_MAX];
	size_t nhops = 0;
	bool rfc7239 = false;
	int rc = HD_ENOTFOUND;

	for (size_t i = 0; i < nheaders; i++)
		if (strcmp(headers[i].name, "forwarded") == 0)
			rfc7239 = true;
	for (size_t i = 0; i < nheaders; i++) {
		const char *want = rfc7239 ? "forwarded" : "x-forwarded-for";
		if (strcmp(headers[i].name, want) == 0)
			split_hops(headers[i].value, headers[i].value_len, rfc7239, hops, &nhops);
	}
	while (nhops > 0) {
		struct sockaddr_storage a;
		struct hop *h = &hops[--nhops];

		if (hd_forwarded_addr(h->p, h->n, &a))
			break; /* unreadable: the last address read is the client */
		*out = a;
		rc = 0;
		if (!hd_forwarded_trusts(t, (const struct sockaddr *)&a))
			break;
	}
	return rc;
}
