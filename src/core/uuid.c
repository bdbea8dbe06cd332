/* uuid — see uuid.h. */
#include "core/uuid.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>

void hd_uuid_v4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t got = 0, o = 0;
	int tries = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		/* getrandom(2) fails only when interrupted before the entropy pool
		 * is ready, or on kernels older than 3.17. Without randomness
		 * generated ids would collide and dedup would drop real events,
		 * so giving up is fatal. */
		if (n < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 1000)
			continue;
		hd_log_error("getrandom_failed errno=%d", errno);
		abort();
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
	for (size_t i = 0; i < sizeof(r); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[r[i] >> 4];
		out[o++] = hex[r[i] & 15];
	}
	out[o] = '\0';
}
