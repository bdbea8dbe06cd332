/* err — see err.h. */
#include "core/err.h"

#include <stdio.h>

struct row {
	int code;
	const char *slug;
	int http;
	int ws;
	const char *msg;
};

static const struct row rows[] = {
#define HD_ERR_ROW(name, val, slug, http, ws, msg) {val, slug, http, ws, msg},
	HD_ERRORS(HD_ERR_ROW)
#undef HD_ERR_ROW
};

static const struct row *find(int code)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (rows[i].code == code)
			return &rows[i];
	return find(HD_EINTERNAL);
}

const char *hd_err_slug(int code) { return find(code)->slug; }
const char *hd_err_message(int code) { return find(code)->msg; }
int hd_err_http_status(int code) { return find(code)->http; }
int hd_err_ws_close(int code) { return find(code)->ws; }

int hd_error_set(struct hd_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void hd_error_clear(struct hd_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}
