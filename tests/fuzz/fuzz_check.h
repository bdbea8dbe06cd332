/* CHECK for fuzz targets: aborts with the failed condition, which libFuzzer
 * reports as a crash together with the input. */
#ifndef HD_FUZZ_CHECK_H
#define HD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, \
				__LINE__);                                             \
			abort();                                                       \
		}                                                                      \
	} while (0)

#endif
