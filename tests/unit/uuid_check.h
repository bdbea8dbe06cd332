/* uuid_check — is_uuid_v4(s): whether s is a lowercase version 4 UUID
 * (36 characters, hyphens at 8, 13, 18, 23, version 4, variant 10xx).
 * Shared by the unit tests of core/uuid.c and proto/cloudevent.c. */
#ifndef HD_TEST_UUID_CHECK_H
#define HD_TEST_UUID_CHECK_H

#include <stdbool.h>
#include <string.h>

static inline bool is_uuid_v4(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!strchr("0123456789abcdef", s[i])) {
			return false;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

#endif
