/* map — see map.h. FNV-1a hashing with chained buckets. */
#include "core/map.h"
#include "core/alloc.h"
#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void hd_map_init(struct hd_map *m, size_t max_entries)
{
	m->nbuckets = 16;
	m->buckets = hd_calloc(m->nbuckets, sizeof(*m->buckets));
	m->count = 0;
	m->max_entries = max_entries;
	m->borrowed_keys = false;
}

void hd_map_init_borrowed(struct hd_map *m, size_t max_entries)
{
	hd_map_init(m, max_entries);
	m->borrowed_keys = true;
}

static void entry_free(const struct hd_map *m, struct hd_map_entry *e)
{
	if (!m->borrowed_keys)
		free(e->key);
	free(e);
}

void hd_map_fini(struct hd_map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct hd_map_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			entry_free(m, e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->count = m->nbuckets = 0;
}

static struct hd_map_entry **slot(const struct hd_map *m, const char *key)
{
	struct hd_map_entry **p = &m->buckets[hash(key) & (m->nbuckets - 1)];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

void *hd_map_get(const struct hd_map *m, const char *key)
{
	struct hd_map_entry *e = *slot(m, key);
	return e ? e->value : NULL;
}

static void grow(struct hd_map *m)
{
	size_t n = m->nbuckets * 2;
	struct hd_map_entry **b = hd_calloc(n, sizeof(*b));
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct hd_map_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t j = hash(e->key) & (n - 1);
			e->next = b[j];
			b[j] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

int hd_map_put(struct hd_map *m, const char *key, void *value)
{
	struct hd_map_entry **p = slot(m, key);
	if (*p) {
		(*p)->value = value;
		if (m->borrowed_keys)
			(*p)->key = (char *)key; /* the old key's owner may go */
		return 0;
	}
	if (m->count >= m->max_entries)
		return HD_ELIMIT;
	struct hd_map_entry *e = hd_malloc(sizeof(*e));
	e->key = m->borrowed_keys ? (char *)key : hd_strdup(key);
	e->value = value;
	e->next = NULL;
	*p = e;
	m->count++;
	if (m->count * 4 > m->nbuckets * 3)
		grow(m);
	return 0;
}

void *hd_map_del(struct hd_map *m, const char *key)
{
	struct hd_map_entry **p = slot(m, key), *e = *p;
	if (!e)
		return NULL;
	void *v = e->value;
	*p = e->next;
	entry_free(m, e);
	m->count--;
	return v;
}

void hd_map_each(const struct hd_map *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct hd_map_entry *e = m->buckets[i]; e; e = e->next)
			fn(e->key, e->value, arg);
}
