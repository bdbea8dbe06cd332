/* text — see text.h. */
#include "core/text.h"

#include <ctype.h>
#include <string.h>

const char *hd_text_show(char dst[HD_TEXT_SHOW_SIZE], const char *s, size_t n)
{
	size_t k = n > HD_TEXT_SHOW_MAX ? HD_TEXT_SHOW_MAX : n, o = 0;

	if (k < n)
		while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
	for (size_t i = 0; i < k; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = c < 0x20 || c == 0x7f || c == '\'' || c == '"' || c == '\\' ? '?' : (char)c;
	}
	if (k < n) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

char *hd_text_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}
