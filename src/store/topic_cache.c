/* topic_cache — see topic_cache.h. */
#include "store/topic_cache.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 256

void hd_topic_cache_init(struct hd_topic_cache *c)
{
	c->nbuckets = INITIAL_BUCKETS;
	c->buckets = hd_calloc(c->nbuckets, sizeof(*c->buckets));
	c->count = 0;
}

void hd_topic_cache_clear(struct hd_topic_cache *c)
{
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct hd_store_topic *t = c->buckets[i];
		while (t) {
			struct hd_store_topic *next = t->hnext;
			free(t);
			t = next;
		}
		c->buckets[i] = NULL;
	}
	c->count = 0;
}

void hd_topic_cache_fini(struct hd_topic_cache *c)
{
	if (!c->buckets)
		return;
	hd_topic_cache_clear(c);
	free(c->buckets);
	c->buckets = NULL;
	c->nbuckets = 0;
}

/* FNV-1a: short keys, no adversary that could choose the names to collide
 * beyond what the topic name limits already allow. */
uint32_t hd_topic_cache_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return h;
}

struct hd_store_topic *hd_topic_cache_find(const struct hd_topic_cache *c, const char *name,
					   size_t len, uint32_t hash)
{
	struct hd_store_topic *t = c->buckets[hash & (c->nbuckets - 1)];
	for (; t; t = t->hnext)
		if (t->hash == hash && t->name_len == len && memcmp(t->name, name, len) == 0)
			return t;
	return NULL;
}

static void grow(struct hd_topic_cache *c)
{
	size_t n = c->nbuckets * 2;
	struct hd_store_topic **b = hd_calloc(n, sizeof(*b));
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct hd_store_topic *t = c->buckets[i];
		while (t) {
			struct hd_store_topic *next = t->hnext;
			size_t j = t->hash & (n - 1);
			t->hnext = b[j];
			b[j] = t;
			t = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

void hd_topic_cache_insert(struct hd_topic_cache *c, struct hd_store_topic *t)
{
	if (c->count >= c->nbuckets)
		grow(c);
	size_t i = t->hash & (c->nbuckets - 1);
	t->hnext = c->buckets[i];
	c->buckets[i] = t;
	c->count++;
}

void hd_topic_cache_remove(struct hd_topic_cache *c, struct hd_store_topic *t)
{
	struct hd_store_topic **p = &c->buckets[t->hash & (c->nbuckets - 1)];
	while (*p && *p != t)
		p = &(*p)->hnext;
	if (*p) {
		*p = t->hnext;
		c->count--;
	}
	t->hnext = NULL;
}

/* Writes name as the body of a JSON string into out (when not NULL) and
 * returns its length; control characters become \u00XX escapes. */
static size_t json_escape(const char *name, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '"' || ch == '\\') {
			if (out) {
				out[n] = '\\';
				out[n + 1] = (char)ch;
			}
			n += 2;
		} else if (ch < 0x20) {
			if (out) {
				memcpy(out + n, "\\u00", 4);
				out[n + 4] = hex[ch >> 4];
				out[n + 5] = hex[ch & 15];
			}
			n += 6;
		} else {
			if (out)
				out[n] = (char)ch;
			n++;
		}
	}
	return n;
}

struct hd_store_topic *hd_store_topic_new(const char *name, size_t len)
{
	static const char head[] = ",\"topic\":\"";
	static const char tail[] = "\",\"offset\":";
	size_t esc = json_escape(name, len, NULL);
	size_t plen = sizeof(head) - 1 + esc + sizeof(tail) - 1;
	struct hd_store_topic *t = hd_calloc(1, sizeof(*t) + len + 1 + plen + 1);
	char *p;

	memcpy(t->name, name, len);
	t->name[len] = '\0';
	t->name_len = len;
	t->hash = hd_topic_cache_hash(name, len);
	p = t->name + len + 1;
	t->prefix = p;
	t->prefix_len = plen;
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	json_escape(name, len, p);
	p += esc;
	memcpy(p, tail, sizeof(tail)); /* with its NUL */
	return t;
}
