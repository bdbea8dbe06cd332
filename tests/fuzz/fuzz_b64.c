/*
 * fuzz_b64 — libFuzzer target for the base64 module (src/core/b64.c).
 *
 * The input is read as text under each set of flags: an accepted text
 * decodes to at most HD_B64_DECODED_MAX bytes; a canonical text is also
 * accepted leniently, with the same bytes, and is exactly what the encoder
 * prints for them (one text per byte string); whatever the lenient url
 * decoder accepts re-encodes to a canonical text of the same bytes. The
 * input is also read as bytes: encoded, it has HD_B64_URL_LEN characters
 * and decodes canonically back to itself.
 */
#include "core/b64.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 4096

static unsigned char out[2][HD_B64_DECODED_MAX(MAX_IN)];
static char text[HD_B64_URL_LEN(HD_B64_DECODED_MAX(MAX_IN)) + 1];

/* Encodes b[0, n) and checks the length, the NUL and that the text decodes
 * canonically back to b. */
static void check_encodes_to(const unsigned char *b, size_t n)
{
	unsigned char back[HD_B64_DECODED_MAX(sizeof(text))];
	size_t m = 0;
	int k = hd_b64_url_encode(b, n, text, sizeof(text));

	CHECK(k >= 0 && (size_t)k == HD_B64_URL_LEN(n) && text[k] == '\0');
	CHECK(hd_b64_decode(text, (size_t)k, HD_B64_URL | HD_B64_CANONICAL, back, sizeof(back), &m) == 0);
	CHECK(m == n && memcmp(back, b, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	size_t n[2] = {0, 0};

	if (size > MAX_IN)
		return 0;
	for (unsigned url = 0; url <= 1; url++) {
		unsigned flags = url ? HD_B64_URL : 0;
		int lenient = hd_b64_decode(t, size, flags, out[0], sizeof(out[0]), &n[0]);
		int canonical = hd_b64_decode(t, size, flags | HD_B64_CANONICAL, out[1], sizeof(out[1]), &n[1]);

		CHECK(lenient == 0 || lenient == -1);
		CHECK(canonical == 0 || canonical == -1);
		if (lenient == 0) {
			CHECK(n[0] <= HD_B64_DECODED_MAX(size));
			check_encodes_to(out[0], n[0]);
		}
		if (canonical == 0) {
			CHECK(lenient == 0 && n[1] == n[0] && memcmp(out[1], out[0], n[0]) == 0);
			CHECK(memchr(t, '=', size) == NULL);
			if (url) {
				hd_b64_url_encode(out[1], n[1], text, sizeof(text));
				CHECK(strlen(text) == size && memcmp(text, t, size) == 0);
			}
		}
		/* Too small an output is refused, never overrun. */
		if (lenient == 0 && n[0] > 0)
			CHECK(hd_b64_decode(t, size, flags, out[1], n[0] - 1, &n[1]) == -1);
	}
	check_encodes_to(data, size);
	return 0;
}
