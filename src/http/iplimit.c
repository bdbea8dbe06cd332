/* iplimit — see iplimit.h. */
#include "http/iplimit.h"
#include "core/alloc.h"
#include "core/map.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct hd_iplimit_entry {
	char key[HD_IPLIMIT_KEY_MAX];
	uint32_t open;
	struct hd_bucket bucket;
	/* In the idle list (open == 0), oldest first. */
	struct hd_iplimit_entry *iprev, *inext;
};

struct hd_iplimit {
	struct hd_iplimit_opts opts;
	struct hd_map map; /* key → entry (owned) */
	struct hd_iplimit_entry *idle_head, *idle_tail;
};

struct hd_iplimit *hd_iplimit_new(const struct hd_iplimit_opts *opts)
{
	struct hd_iplimit *t = hd_calloc(1, sizeof(*t));

	t->opts = *opts;
	if (t->opts.max_entries == 0)
		t->opts.max_entries = 1;
	hd_map_init(&t->map, t->opts.max_entries);
	return t;
}

static void free_value(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

void hd_iplimit_free(struct hd_iplimit *t)
{
	if (!t)
		return;
	hd_map_each(&t->map, free_value, NULL);
	hd_map_fini(&t->map);
	free(t);
}

bool hd_iplimit_on(const struct hd_iplimit *t)
{
	return t->opts.max_per_ip > 0 || hd_ratelimit_on(&t->opts.rate);
}

int hd_iplimit_key(const struct sockaddr *sa, char key[HD_IPLIMIT_KEY_MAX])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const uint8_t *a;

	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) != 0) {
			/* The /64 prefix: the first eight bytes. */
			snprintf(key, HD_IPLIMIT_KEY_MAX, "6:%02x%02x%02x%02x%02x%02x%02x%02x", a[0],
				 a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
			return 0;
		}
		a += sizeof(mapped);
	} else {
		return -1;
	}
	snprintf(key, HD_IPLIMIT_KEY_MAX, "4:%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	return 0;
}

static void idle_unlink(struct hd_iplimit *t, struct hd_iplimit_entry *e)
{
	if (e->iprev)
		e->iprev->inext = e->inext;
	else
		t->idle_head = e->inext;
	if (e->inext)
		e->inext->iprev = e->iprev;
	else
		t->idle_tail = e->iprev;
	e->iprev = e->inext = NULL;
}

static void idle_push(struct hd_iplimit *t, struct hd_iplimit_entry *e)
{
	e->iprev = t->idle_tail;
	e->inext = NULL;
	if (t->idle_tail)
		t->idle_tail->inext = e;
	else
		t->idle_head = e;
	t->idle_tail = e;
}

/* Drops an idle entry from the table. */
static void drop(struct hd_iplimit *t, struct hd_iplimit_entry *e)
{
	idle_unlink(t, e);
	hd_map_del(&t->map, e->key);
	free(e);
}

/* The entry of key, created (idle, with a full bucket) if need be; NULL
 * when the table is full of addresses with open connections. */
static struct hd_iplimit_entry *lookup(struct hd_iplimit *t, const char *key, int64_t now_ms)
{
	struct hd_iplimit_entry *e = hd_map_get(&t->map, key);

	if (e)
		return e;
	if (t->map.count >= t->opts.max_entries) {
		if (!t->idle_head)
			return NULL;
		drop(t, t->idle_head); /* the least recently used idle address */
	}
	e = hd_calloc(1, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	hd_ratelimit_init(&e->bucket, &t->opts.rate, now_ms);
	if (hd_map_put(&t->map, e->key, e)) {
		free(e); /* cannot happen: room was made above */
		return NULL;
	}
	idle_push(t, e);
	return e;
}

enum hd_iplimit_verdict hd_iplimit_admit(struct hd_iplimit *t, const char *key, int64_t now_ms,
					 struct hd_iplimit_entry **entry, int64_t *retry_ms)
{
	struct hd_iplimit_entry *e = lookup(t, key, now_ms);
	int64_t wait;

	*entry = NULL;
	*retry_ms = 1000;
	if (!e)
		return HD_IPLIMIT_FULL;
	if (t->opts.max_per_ip && e->open >= t->opts.max_per_ip)
		return HD_IPLIMIT_CAP; /* no token taken: the cap refuses anyway */
	if ((wait = hd_ratelimit_take(&e->bucket, &t->opts.rate, 1, now_ms)) > 0) {
		*retry_ms = wait;
		if (e->open == 0) {
			/* Refused and idle: the most recently used idle entry. */
			idle_unlink(t, e);
			idle_push(t, e);
		}
		return HD_IPLIMIT_RATE;
	}
	if (e->open++ == 0)
		idle_unlink(t, e);
	*entry = e;
	return HD_IPLIMIT_OK;
}

void hd_iplimit_release(struct hd_iplimit *t, struct hd_iplimit_entry *e, int64_t now_ms)
{
	if (!e)
		return;
	if (--e->open > 0)
		return;
	if (hd_ratelimit_full(&e->bucket, &t->opts.rate, now_ms)) {
		/* Nothing to remember: as if the address had never come. */
		hd_map_del(&t->map, e->key);
		free(e);
		return;
	}
	idle_push(t, e);
}

size_t hd_iplimit_entries(const struct hd_iplimit *t)
{
	return t->map.count;
}

uint32_t hd_iplimit_open(const struct hd_iplimit *t, const char *key)
{
	const struct hd_iplimit_entry *e = hd_map_get(&t->map, key);
	return e ? e->open : 0;
}
