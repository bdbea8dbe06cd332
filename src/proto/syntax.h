/*
 * syntax — grammar checks of the CloudEvents attribute types that are
 * defined by other RFCs: URI-reference and absolute URI (RFC 3986), and
 * media type (RFC 2045 §5.1).
 * Layer: proto. Pure functions of their arguments (any thread); called by
 * the CloudEvents decoder (cloudevent.c) for `source`, `dataschema` and
 * `datacontenttype`, and so reached by its fuzzer.
 *
 * Each check returns NULL when s[0, n) matches the grammar, else a short
 * static English reason ("a space is not allowed", …) for the error
 * message; n counts bytes and s need not be NUL-terminated.
 *
 * URI-reference (RFC 3986 §4.1) = URI / relative-ref, with
 *   scheme    = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
 *   authority = [ userinfo "@" ] host [ ":" *DIGIT ]
 *   host      = "[" IPv6address / IPvFuture "]" / reg-name (IPv4 included)
 *   path, query and fragment bytes: unreserved, sub-delims, ":", "@", "/",
 *   "?" (query and fragment only) and %HH; the first segment of a relative
 *   path without an authority has no ":" (path-noscheme).
 * Absolute URI (RFC 3986 §4.3, which CloudEvents names for its URI type)
 *   = scheme ":" hier-part [ "?" query ]: a scheme and no fragment.
 * Media type (RFC 2045 §5.1) = type "/" subtype *( ";" attribute "=" value ),
 *   type, subtype and attribute tokens (US-ASCII but space, controls and
 *   tspecials ()<>@,;:\"/[]?=), value a token or a quoted-string; white
 *   space is allowed around ";" (RFC 9110 §5.6.3 OWS), nowhere else.
 */
#ifndef HD_PROTO_SYNTAX_H
#define HD_PROTO_SYNTAX_H

#include <stddef.h>

const char *hd_syntax_uri_reference(const char *s, size_t n);
const char *hd_syntax_absolute_uri(const char *s, size_t n);
const char *hd_syntax_media_type(const char *s, size_t n);

#endif
