/*
 * proxyproto — see proxyproto.h for the two formats.
 */
#include "http/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = "PROXY ";

/* Whether p[0..n) could still become sig[0..len). */
static bool prefix_of(const char *p, size_t n, const char *sig, size_t len)
{
	return memcmp(p, sig, n < len ? n : len) == 0;
}

/* A port: 1 to 5 digits, 0..65535, no leading sign. */
static int v1_port(const char *p, size_t n, uint16_t *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* The next space-separated field of line[*at..n); returns its length (0 if none). */
static size_t v1_field(const char *line, size_t n, size_t *at, const char **f)
{
	size_t start = *at, i = start;

	while (i < n && line[i] != ' ')
		i++;
	*f = line + start;
	*at = i < n ? i + 1 : i;
	return i - start;
}

static int parse_v1(const char *p, size_t n, struct hd_proxyproto *out)
{
	const char *crlf = NULL, *f;
	char text[INET6_ADDRSTRLEN];
	size_t lim = n < HD_PROXYPROTO_V1_MAX ? n : HD_PROXYPROTO_V1_MAX;
	size_t len, at = sizeof(v1_sig), fl;
	int family;
	uint16_t sport, dport;
	unsigned char dst[16];

	for (size_t i = 0; i < lim; i++) {
		if (p[i] == '\r') {
			if (i + 1 == n)
				return 0; /* the LF may follow */
			if (i + 1 == HD_PROXYPROTO_V1_MAX || p[i + 1] != '\n')
				return -1;
			crlf = p + i;
			break;
		}
		if (p[i] == '\n' || p[i] == '\0')
			return -1;
	}
	if (!crlf)
		return n >= HD_PROXYPROTO_V1_MAX ? -1 : 0;
	len = (size_t)(crlf - p);
	out->version = 1;
	out->has_addr = false;
	fl = v1_field(p, len, &at, &f);
	if (fl == 7 && memcmp(f, "UNKNOWN", 7) == 0)
		return (int)len + 2;
	if (fl == 4 && memcmp(f, "TCP4", 4) == 0)
		family = AF_INET;
	else if (fl == 4 && memcmp(f, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return -1;
	memset(&out->src, 0, sizeof(out->src));
	/* source address */
	fl = v1_field(p, len, &at, &f);
	if (fl == 0 || fl >= sizeof(text))
		return -1;
	memcpy(text, f, fl);
	text[fl] = '\0';
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&out->src;
		if (inet_pton(AF_INET, text, &a->sin_addr) != 1)
			return -1;
		a->sin_family = AF_INET;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->src;
		if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
	}
	/* destination address: checked, not kept */
	fl = v1_field(p, len, &at, &f);
	if (fl == 0 || fl >= sizeof(text))
		return -1;
	memcpy(text, f, fl);
	text[fl] = '\0';
	if (inet_pton(family, text, dst) != 1)
		return -1;
	fl = v1_field(p, len, &at, &f);
	if (v1_port(f, fl, &sport))
		return -1;
	fl = v1_field(p, len, &at, &f);
	if (v1_port(f, fl, &dport) || at != len || f + fl != p + len)
		return -1;
	if (family == AF_INET)
		((struct sockaddr_in *)&out->src)->sin_port = htons(sport);
	else
		((struct sockaddr_in6 *)&out->src)->sin6_port = htons(sport);
	out->has_addr = true;
	return (int)len + 2;
}

static int parse_v2(const unsigned char *p, size_t n, struct hd_proxyproto *out)
{
	size_t len;
	unsigned cmd, fam;

	if (n < 16)
		return 0;
	if ((p[12] >> 4) != 2)
		return -1;
	cmd = p[12] & 0x0F;
	fam = p[13];
	len = ((size_t)p[14] << 8) | p[15];
	if (cmd > 1 || len > HD_PROXYPROTO_V2_MAX)
		return -1;
	if (n < 16 + len)
		return 0;
	out->version = 2;
	out->has_addr = false;
	memset(&out->src, 0, sizeof(out->src));
	if (cmd == 0) /* LOCAL */
		return (int)(16 + len);
	switch (fam) {
	case 0x11: { /* TCP over IPv4 */
		struct sockaddr_in *a = (struct sockaddr_in *)&out->src;
		if (len < 12)
			return -1;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, p + 16, 4);
		memcpy(&a->sin_port, p + 24, 2);
		out->has_addr = true;
		break;
	}
	case 0x21: { /* TCP over IPv6 */
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->src;
		if (len < 36)
			return -1;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, p + 16, 16);
		memcpy(&a->sin6_port, p + 48, 2);
		out->has_addr = true;
		break;
	}
	case 0x00: /* UNSPEC */
	case 0x31: /* UNIX stream */
		break;
	default: /* datagrams, unknown families */
		return -1;
	}
	return (int)(16 + len);
}

int hd_proxyproto_parse(const char *p, size_t n, struct hd_proxyproto *out)
{
	if (n == 0)
		return 0;
	if (prefix_of(p, n, v2_sig, sizeof(v2_sig))) {
		if (n < sizeof(v2_sig))
			return 0;
		return parse_v2((const unsigned char *)p, n, out);
	}
	if (prefix_of(p, n, v1_sig, sizeof(v1_sig))) {
		if (n < sizeof(v1_sig))
			return 0;
		return parse_v1(p, n, out);
	}
	return -1;
}
