/*
 * err — herald's error codes: 0 or a negative HD_E* value.
 * Layer: core. Used by every module; the edges map codes to HTTP statuses
 * and WebSocket close codes through this one table.
 *
 * HD_ERRORS(X) is the single table: X(NAME, value, slug, http_status, ws_close, message).
 * The slug is the stable machine-readable "code" of JSON error bodies.
 */
#ifndef HD_ERR_H
#define HD_ERR_H

#include <stdarg.h>

#define HD_ERRORS(X)                                                                   \
	X(EINVAL, -1, "invalid_request", 400, 3501, "invalid request")                    \
	X(EBADEVENT, -2, "invalid_event", 400, 3501, "invalid CloudEvent")                \
	X(EBADTOPIC, -3, "invalid_topic", 400, 3501, "invalid topic name")                \
	X(ENOTFOUND, -4, "not_found", 404, 3501, "not found")                             \
	X(EMETHOD, -5, "method_not_allowed", 405, 3501, "method not allowed")             \
	X(ETOOBIG, -6, "payload_too_large", 413, 3009, "payload too large")               \
	X(EHEADERS, -7, "headers_too_large", 431, 3501, "request headers too large")      \
	X(ETIMEOUT, -8, "request_timeout", 408, 3501, "request timeout")                  \
	X(EMEDIATYPE, -9, "unsupported_media_type", 415, 3501, "unsupported media type")  \
	X(ELIMIT, -10, "too_many_requests", 429, 3501, "too many requests")               \
	X(EUNAVAIL, -11, "unavailable", 503, 3001, "service unavailable")                 \
	X(ESTORE, -12, "store_error", 500, 3004, "storage error")                         \
	X(EINTERNAL, -13, "internal_error", 500, 3004, "internal error")                  \
	X(ECONFIG, -14, "invalid_config", 400, 3501, "invalid configuration")             \
	X(EIO, -15, "io_error", 500, 3004, "input/output error")                          \
	X(ELENGTH, -16, "length_required", 411, 3501, "length required")                  \
	X(EVERSION, -17, "http_version_not_supported", 505, 3501, "HTTP version not supported") \
	X(ENOTIMPL, -18, "not_implemented", 501, 3501, "not implemented")                 \
	X(EUNAUTH, -19, "unauthorized", 401, 3500, "unauthorized")                        \
	X(EFORBIDDEN, -20, "forbidden", 403, 3507, "permission denied")                   \
	X(EEXPIRED, -21, "token_expired", 401, 3005, "token expired")

enum hd_err {
	HD_OK = 0,
#define HD_ERR_ENUM(name, val, slug, http, ws, msg) HD_##name = val,
	HD_ERRORS(HD_ERR_ENUM)
#undef HD_ERR_ENUM
};

/* Table look-ups; an unknown code maps to EINTERNAL's row. Any thread. */
const char *hd_err_slug(int code);
const char *hd_err_message(int code);
int hd_err_http_status(int code);
int hd_err_ws_close(int code);

/*
 * A validation error for the user: the code plus a sentence saying what was
 * wrong ("attribute 'specversion' must be \"1.0\""). Validators fill it; edges
 * send it. msg is always NUL-terminated (empty when unset).
 */
#define HD_ERROR_MSG_MAX 256
struct hd_error {
	int code;
	char msg[HD_ERROR_MSG_MAX];
};

/* Sets code and a printf-style message; returns code so callers can
 * `return hd_error_set(err, HD_EBADEVENT, "...")`. err may be NULL. */
int hd_error_set(struct hd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hd_error_clear(struct hd_error *err);

#endif
