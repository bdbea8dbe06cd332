/*
 * test_syntax — unit tests of src/proto/syntax.c: URI-reference and
 * absolute URI (RFC 3986, including its §1.1.2 and §5.4 examples) and media
 * types (RFC 2045 §5.1), each accepted or refused with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/syntax.h"

typedef const char *(*check_fn)(const char *s, size_t n);

static void good(check_fn f, const char *s)
{
	const char *why = f(s, strlen(s));
	if (why)
		fail_msg("'%s' refused: %s", s, why);
}

static void bad(check_fn f, const char *s, const char *reason_part)
{
	const char *why = f(s, strlen(s));
	if (!why)
		fail_msg("'%s' accepted", s);
	if (!strstr(why, reason_part))
		fail_msg("'%s': reason '%s' lacks '%s'", s, why, reason_part);
}

static void test_uri_reference(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"ftp://ftp.is.co.za/rfc/rfc1808.txt", "http://www.ietf.org/rfc/rfc2396.txt",
		"ldap://[2001:db8::7]/c=GB?objectClass?one", "mailto:John.Doe@example.com",
		"news:comp.infosystems.www.servers.unix", "tel:+1-816-555-1212",
		"telnet://192.0.2.16:80/", "urn:oasis:names:specification:docbook:dtd:xml:4.1.2",
		"/cloudevents/spec/pull/123", "https://github.com/cloudevents", "mailto:cncf-wg-serverless@lists.cncf.io",
		"1-555-123-4567", "g", "./g", "g/", "/g", "//g", "?y", "g?y", "#s", "g#s", "g?y#s", ";x", "g;x",
		"", ".", "./", "..", "../g", "../..", "http://[v1.fe:x]/", "http://u:p@h:8080/p%20q?a=b/c?d#f",
		"/topics/rides:981", "http://[::ffff:192.0.2.1]/",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		good(hd_syntax_uri_reference, ok[i]);
	bad(hd_syntax_uri_reference, "/a b", "space");
	bad(hd_syntax_uri_reference, "http://[::1", "must end with ']'");
	bad(hd_syntax_uri_reference, "http://[::g]/", "IPv6");
	bad(hd_syntax_uri_reference, "http://[::1]x/", "only ':' and a port");
	bad(hd_syntax_uri_reference, "http://h:8o/", "port must be digits");
	bad(hd_syntax_uri_reference, "1a:b", "scheme must start with a letter");
	bad(hd_syntax_uri_reference, "a_b:c", "scheme may hold only");
	bad(hd_syntax_uri_reference, "/a%2", "two hex digits");
	bad(hd_syntax_uri_reference, "/a%zz", "two hex digits");
	bad(hd_syntax_uri_reference, "/a#b#c", "second '#'");
	bad(hd_syntax_uri_reference, "/a<b>", "outside the URI grammar");
	bad(hd_syntax_uri_reference, "/\xc3\xa9", "non-ASCII");
	bad(hd_syntax_uri_reference, "/a\tb", "control");
	bad(hd_syntax_uri_reference, "http://a b/", "space");
}

static void test_absolute_uri(void **state)
{
	(void)state;
	good(hd_syntax_absolute_uri, "https://example.com/schema.json");
	good(hd_syntax_absolute_uri, "urn:example:schema");
	good(hd_syntax_absolute_uri, "http://a/b?c=d");
	bad(hd_syntax_absolute_uri, "/schema.json", "no scheme");
	bad(hd_syntax_absolute_uri, "schema.json", "no scheme");
	bad(hd_syntax_absolute_uri, "https://example.com/s#v1", "no fragment");
}

static void test_media_type(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"application/json", "text/plain; charset=utf-8", "text/plain;charset=\"utf-8\"",
		"application/cloudevents+json", "application/vnd.api+json", "multipart/mixed; boundary=\"a b;c\"",
		"text/plain ; a=b ;", "application/x-www-form-urlencoded", "image/svg+xml",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		good(hd_syntax_media_type, ok[i]);
	bad(hd_syntax_media_type, "", "type token");
	bad(hd_syntax_media_type, "json", "followed by '/'");
	bad(hd_syntax_media_type, "text/", "subtype");
	bad(hd_syntax_media_type, "text/plain charset", "only parameters");
	bad(hd_syntax_media_type, "text plain", "followed by '/'");
	bad(hd_syntax_media_type, "text/plain; charset", "name=value");
	bad(hd_syntax_media_type, "text/plain; charset=", "token or a quoted string");
	bad(hd_syntax_media_type, "text/plain; a=\"b", "must end");
	bad(hd_syntax_media_type, "te(x)t/plain", "followed by '/'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_reference),
		cmocka_unit_test(test_absolute_uri),
		cmocka_unit_test(test_media_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
