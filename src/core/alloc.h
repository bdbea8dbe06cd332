/*
 * alloc — memory allocation that never returns NULL.
 * Layer: core. Used by every module.
 *
 * herald defends itself with limits, not NULL checks: an allocation failure
 * logs the size asked for and aborts. Callers therefore never test results.
 */
#ifndef HD_ALLOC_H
#define HD_ALLOC_H

#include <stddef.h>

/* Each returns owned memory (free with free()) or aborts. Any thread. */
void *hd_malloc(size_t n);
void *hd_calloc(size_t count, size_t n);
void *hd_realloc(void *p, size_t n);
char *hd_strdup(const char *s);
char *hd_strndup(const char *s, size_t n);

#endif
