/*
 * map — a string-keyed hash map with a ceiling on its entry count.
 * Layer: core. Single-threaded; the owner decides which thread.
 *
 * Keys are copied (hd_map_init) or borrowed (hd_map_init_borrowed: the
 * caller keeps each key alive and unchanged while its entry exists, and a
 * replacing put takes the new key); values are borrowed pointers the owner
 * manages. The
 * table doubles when it is three quarters full; hd_map_put past max_entries
 * fails with HD_ELIMIT so a map can never grow without limit.
 */
#ifndef HD_MAP_H
#define HD_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct hd_map_entry {
	char *key;           /* owned; borrowed in a borrowed_keys map */
	void *value;         /* borrowed */
	struct hd_map_entry *next;
};

struct hd_map {
	struct hd_map_entry **buckets; /* owned */
	size_t nbuckets;
	size_t count;
	size_t max_entries;
	bool borrowed_keys;  /* hd_map_init_borrowed */
};

void hd_map_init(struct hd_map *m, size_t max_entries);
/* A map whose keys are borrowed, not copied (see above). */
void hd_map_init_borrowed(struct hd_map *m, size_t max_entries);
/* Frees the entries (not the values). */
void hd_map_fini(struct hd_map *m);
/* Returns the value or NULL. */
void *hd_map_get(const struct hd_map *m, const char *key);
/* Inserts or replaces. Returns 0 or HD_ELIMIT when full. */
int hd_map_put(struct hd_map *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *hd_map_del(struct hd_map *m, const char *key);
/* Calls fn for every entry (the map must not change meanwhile). */
void hd_map_each(const struct hd_map *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
