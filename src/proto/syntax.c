/*
 * syntax — see syntax.h. Each grammar is walked left to right once; the
 * reasons name the rule that failed so a producer can fix its event.
 */
#include "proto/syntax.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#define IPV6_TEXT_MAX 64 /* longer than any IPv6address text */

static bool alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool hexdig(char c)
{
	return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool unreserved(char c)
{
	return alpha(c) || digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool sub_delim(char c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Checks s[0, n) as *( unreserved / pct-encoded / sub-delims / extra ). */
static const char *chars(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n || !hexdig(s[i + 1]) || !hexdig(s[i + 2]))
				return "'%' must be followed by two hex digits";
			i += 2;
			continue;
		}
		if (unreserved(c) || sub_delim(c) || (c != '\0' && strchr(extra, c)))
			continue;
		if (c == ' ')
			return "a space is not allowed (write %20)";
		if ((unsigned char)c < 0x20 || c == 0x7f)
			return "a control character is not allowed";
		if ((unsigned char)c >= 0x80)
			return "a non-ASCII byte is not allowed (percent-encode it)";
		if (c == '#')
			return "a second '#' is not allowed";
		return "a character outside the URI grammar is not allowed (percent-encode it)";
	}
	return NULL;
}

/* host [":" port] of an authority, userinfo already removed. */
static const char *host_port(const char *s, size_t n)
{
	size_t hn = n;
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return "an IP literal host must end with ']'";
		size_t in = (size_t)(close - s) - 1;
		hn = in + 2;
		if (in && (s[1] == 'v' || s[1] == 'V')) {
			/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
			size_t i = 2;
			while (i < in + 1 && hexdig(s[i]))
				i++;
			if (i == 2 || i >= in + 1 || s[i] != '.' || i + 1 == in + 1 ||
			    chars(s + i + 1, in - i, ":"))
				return "the IPvFuture host is not v<hex>.<text>";
		} else {
			char text[IPV6_TEXT_MAX];
			unsigned char bin[16];
			if (in == 0 || in >= sizeof(text) || memchr(s + 1, '%', in))
				return "the IPv6 host is not a valid IPv6 address";
			memcpy(text, s + 1, in);
			text[in] = '\0';
			if (inet_pton(AF_INET6, text, bin) != 1)
				return "the IPv6 host is not a valid IPv6 address";
		}
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon)
			hn = (size_t)(colon - s);
		const char *why = chars(s, hn, "");
		if (why)
			return why;
	}
	if (hn == n)
		return NULL;
	if (s[hn] != ':')
		return "only ':' and a port may follow the IP literal host";
	for (size_t i = hn + 1; i < n; i++)
		if (!digit(s[i]))
			return "the port must be digits";
	return NULL;
}

/* The URI grammar; want_scheme: an absolute URI (a scheme, no fragment). */
static const char *uri(const char *s, size_t n, bool want_scheme)
{
	size_t i = 0, scheme_end = 0;

	/* A scheme is the text before the first ':' when it comes before any
	 * '/', '?' or '#' (otherwise the reference is relative). */
	for (size_t k = 0; k < n; k++) {
		if (s[k] == ':') {
			scheme_end = k;
			break;
		}
		if (s[k] == '/' || s[k] == '?' || s[k] == '#')
			break;
	}
	if (scheme_end || (n && s[0] == ':')) {
		if (!alpha(s[0]))
			return "the scheme must start with a letter (or, for a relative reference, "
			       "the first path segment must have no ':')";
		for (size_t k = 1; k < scheme_end; k++)
			if (!alpha(s[k]) && !digit(s[k]) && s[k] != '+' && s[k] != '-' && s[k] != '.')
				return "the scheme may hold only letters, digits, '+', '-' and '.' (or, "
				       "for a relative reference, the first path segment must have no ':')";
		i = scheme_end + 1;
	} else if (want_scheme) {
		return "it has no scheme (an absolute URI starts with one, such as https:)";
	}

	/* hier-part / relative-part up to '?' or '#'. */
	size_t end = i;
	while (end < n && s[end] != '?' && s[end] != '#')
		end++;
	if (end - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
		size_t a = i + 2, ae = a;
		while (ae < end && s[ae] != '/')
			ae++;
		const char *at = memchr(s + a, '@', ae - a);
		if (at) {
			const char *why = chars(s + a, (size_t)(at - (s + a)), ":");
			if (why)
				return why;
			a = (size_t)(at - s) + 1;
		}
		const char *why = host_port(s + a, ae - a);
		if (why)
			return why;
		i = ae;
	}
	const char *why = chars(s + i, end - i, ":@/");
	if (why)
		return why;
	if (end == n)
		return NULL;
	/* [ "?" query ] [ "#" fragment ] */
	size_t hash = end;
	while (hash < n && s[hash] != '#')
		hash++;
	if (s[end] == '?' && (why = chars(s + end + 1, hash - end - 1, ":@/?")))
		return why;
	if (hash < n) {
		if (want_scheme)
			return "an absolute URI has no fragment ('#…')";
		if ((why = chars(s + hash + 1, n - hash - 1, ":@/?")))
			return why;
	}
	return NULL;
}

const char *hd_syntax_uri_reference(const char *s, size_t n)
{
	return uri(s, n, false);
}

const char *hd_syntax_absolute_uri(const char *s, size_t n)
{
	return uri(s, n, true);
}

/* RFC 2045 token: 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>. */
static bool token_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u > 0x20 && u < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static size_t token(const char *s, size_t n, size_t i)
{
	size_t k = i;
	while (k < n && token_char(s[k]))
		k++;
	return k - i;
}

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

const char *hd_syntax_media_type(const char *s, size_t n)
{
	size_t i = token(s, n, 0);
	if (i == 0)
		return "it must start with a type token (such as application)";
	if (i == n || s[i] != '/')
		return "the type must be followed by '/' and a subtype (type/subtype)";
	size_t t = token(s, n, ++i);
	if (t == 0)
		return "the subtype after '/' is missing or holds a character not allowed in a token";
	i += t;
	for (;;) {
		while (i < n && ows(s[i]))
			i++;
		if (i == n)
			return NULL;
		if (s[i] != ';')
			return "only parameters (; name=value) may follow type/subtype";
		i++;
		while (i < n && ows(s[i]))
			i++;
		if (i == n)
			return NULL;
		if (s[i] == ';')
			continue;
		t = token(s, n, i);
		if (t == 0)
			return "a parameter name must be a token";
		i += t;
		if (i == n || s[i] != '=')
			return "a parameter must be name=value";
		i++;
		if (i < n && s[i] == '"') {
			for (i++;; i++) {
				if (i >= n)
					return "a quoted parameter value must end with '\"'";
				if (s[i] == '"')
					break;
				if (s[i] == '\\') {
					if (++i >= n)
						return "a quoted parameter value must end with '\"'";
				} else if (s[i] == '\r' || ((unsigned char)s[i] < 0x20 && s[i] != '\t')) {
					return "a control character is not allowed in a quoted value";
				}
			}
			i++;
		} else {
			t = token(s, n, i);
			if (t == 0)
				return "a parameter value must be a token or a quoted string";
			i += t;
		}
	}
}
