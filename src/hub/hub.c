/* hub — see hub.h. */
#include "hub/hub.h"
#include "core/alloc.h"
#include "core/map.h"
#include "core/metrics.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Topics with at least one watcher; a list is freed with its last watcher. */
#define HD_HUB_WATCHED_TOPICS_MAX 1000000

struct hd_watch_list {
	char *topic;              /* owned */
	struct hd_watch *head;
	size_t count;
	bool firing;
	struct hd_watch *cursor;  /* the next watch to fire while firing */
};

static void list_free(struct hd_watch_list *l)
{
	free(l->topic);
	free(l);
}

/* The connections of one user, newest first. */
struct hd_user_conns {
	char *user;               /* owned */
	struct hd_conn *head;
};

struct hd_hub {
	const struct hd_config *cfg;
	struct hd_engine *engine;
	struct hd_map watched;    /* topic → struct hd_watch_list */
	struct hd_map users;      /* user → struct hd_user_conns */
	struct hd_watch_list prefixed; /* every prefix watch (topic NULL, never freed) */
	size_t nconns;
	struct {
		hd_hub_topic_fn fn;
		void *arg;
	} deleted[HD_HUB_TOPIC_LISTENERS_MAX]; /* hd_hub_on_topic_deleted */
	size_t ndeleted;
};

struct hd_hub *hd_hub_new(const struct hd_config *cfg)
{
	struct hd_hub *hub = hd_calloc(1, sizeof(*hub));
	hub->cfg = cfg;
	hd_map_init(&hub->watched, HD_HUB_WATCHED_TOPICS_MAX);
	hd_map_init(&hub->users, HD_HUB_CONNS_MAX);
	return hub;
}

void hd_hub_set_engine(struct hd_hub *hub, struct hd_engine *engine)
{
	hub->engine = engine;
}

static void free_list(const char *key, void *value, void *arg)
{
	list_free(value);
}

void hd_hub_free(struct hd_hub *hub)
{
	hd_map_each(&hub->watched, free_list, NULL);
	hd_map_fini(&hub->watched);
	assert(hub->nconns == 0);
	hd_map_fini(&hub->users);
	free(hub);
}

static void list_add(struct hd_watch_list *l, struct hd_watch *w)
{
	w->list = l;
	w->prev = NULL;
	w->next = l->head;
	if (l->head)
		l->head->prev = w;
	l->head = w;
	l->count++;
}

int hd_hub_watch(struct hd_hub *hub, const char *topic, struct hd_watch *w)
{
	struct hd_watch_list *l = hd_map_get(&hub->watched, topic);
	if (!l) {
		l = hd_calloc(1, sizeof(*l));
		l->topic = hd_strdup(topic);
		if (hd_map_put(&hub->watched, topic, l)) {
			list_free(l);
			return HD_ELIMIT;
		}
	}
	w->prefix = NULL;
	list_add(l, w);
	return 0;
}

int hd_hub_watch_prefix(struct hd_hub *hub, const char *prefix, struct hd_watch *w)
{
	if (!prefix || !prefix[0])
		return HD_EINVAL;
	if (hub->prefixed.count >= HD_HUB_PREFIX_WATCHES_MAX)
		return HD_ELIMIT;
	w->prefix = prefix;
	list_add(&hub->prefixed, w);
	return 0;
}

void hd_hub_unwatch(struct hd_hub *hub, struct hd_watch *w)
{
	struct hd_watch_list *l = w->list;
	if (!l)
		return;
	if (l->cursor == w)
		l->cursor = w->next;
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->list = NULL;
	w->prev = w->next = NULL;
	/* While firing, hd_hub_on_event frees an emptied list itself. */
	if (--l->count == 0 && !l->firing && l != &hub->prefixed)
		list_free(hd_map_del(&hub->watched, l->topic));
}

size_t hd_hub_watchers(struct hd_hub *hub, const char *topic)
{
	struct hd_watch_list *l = hd_map_get(&hub->watched, topic);
	return l ? l->count : 0;
}

static int by_user(const void *a, const void *b)
{
	const struct hd_conn *x = *(const struct hd_conn *const *)a;
	const struct hd_conn *y = *(const struct hd_conn *const *)b;
	return strcmp(x->user, y->user);
}

size_t hd_hub_presence(struct hd_hub *hub, const char *topic, const struct hd_conn ***out)
{
	struct hd_watch_list *l = hd_map_get(&hub->watched, topic);
	const struct hd_conn **c = NULL;
	size_t n = 0;

	*out = NULL;
	if (!l)
		return 0;
	c = hd_malloc(l->count * sizeof(*c));
	for (struct hd_watch *w = l->head; w; w = w->next)
		if (w->conn)
			c[n++] = w->conn;
	if (n == 0) {
		free(c);
		return 0;
	}
	qsort(c, n, sizeof(*c), by_user);
	*out = c;
	return n;
}

size_t hd_hub_presence_users(const struct hd_conn *const *c, size_t n)
{
	size_t users = 0;
	for (size_t i = 0; i < n; i++)
		users += c[i]->user[0] && (i == 0 || strcmp(c[i - 1]->user, c[i]->user) != 0);
	return users;
}

/* ---- connections ------------------------------------------------------- */

void hd_hub_conn_add(struct hd_hub *hub, struct hd_conn *c)
{
	hub->nconns++;
	c->ulist = NULL;
	c->uprev = c->unext = NULL;
	if (!c->user[0])
		return;
	struct hd_user_conns *u = hd_map_get(&hub->users, c->user);
	if (!u) {
		u = hd_calloc(1, sizeof(*u));
		u->user = hd_strdup(c->user);
		/* The map's cap equals the connection cap, which the HTTP
		 * server's max-connections keeps far below. */
		if (hd_map_put(&hub->users, c->user, u)) {
			free(u->user);
			free(u);
			return;
		}
	}
	c->ulist = u;
	c->unext = u->head;
	if (u->head)
		u->head->uprev = c;
	u->head = c;
}

void hd_hub_conn_remove(struct hd_hub *hub, struct hd_conn *c)
{
	assert(hub->nconns > 0);
	hub->nconns--;
	struct hd_user_conns *u = c->ulist;
	if (!u)
		return;
	if (c->uprev)
		c->uprev->unext = c->unext;
	else
		u->head = c->unext;
	if (c->unext)
		c->unext->uprev = c->uprev;
	c->ulist = NULL;
	c->uprev = c->unext = NULL;
	if (!u->head) {
		hd_map_del(&hub->users, u->user);
		free(u->user);
		free(u);
	}
}

void hd_hub_conns_of_user(struct hd_hub *hub, const char *user,
			  void (*fn)(const struct hd_conn *c, void *arg), void *arg)
{
	struct hd_user_conns *u = *user ? hd_map_get(&hub->users, user) : NULL;
	for (struct hd_conn *c = u ? u->head : NULL; c; c = c->unext)
		fn(c, arg);
}

size_t hd_hub_users(const struct hd_hub *hub)
{
	return hub->users.count;
}

size_t hd_hub_conns(const struct hd_hub *hub)
{
	return hub->nconns;
}

const char *hd_hub_node(const struct hd_hub *hub)
{
	return hub->cfg->node_name;
}

const struct hd_ns_opts *hd_hub_ns(const struct hd_hub *hub, const char *topic)
{
	return hd_config_ns(hub->cfg, topic);
}

int hd_hub_event_fits(const struct hd_hub *hub, const char *topic, size_t json_len,
		      struct hd_error *err)
{
	const struct hd_ns_opts *ns = hd_config_ns(hub->cfg, topic);

	if (ns->max_event_size == 0 || json_len <= ns->max_event_size)
		return 0;
	hd_metrics_inc(HD_M_event_size_limit_hits_total);
	return hd_error_set(err, HD_ETOOBIG,
			    "the event is %zu bytes; topic '%.64s' takes at most %llu (max-event-size)",
			    json_len, topic, (unsigned long long)ns->max_event_size);
}

void hd_hub_policy(void *arg, const char *topic, struct hd_topic_policy *out)
{
	struct hd_hub *hub = arg;
	const struct hd_ns_opts *ns = hd_config_ns(hub->cfg, topic);
	out->max_age_ms = ns->retention_max_age_ms;
	out->max_count = ns->retention_max_count;
	out->dedup_window_ms = ns->dedup_window_ms;
	out->history = ns->history;
}

/* Fires the watches of l (those whose prefix topic starts with, for the
 * prefix list). The cursor lets a fire callback remove any watch, itself
 * included: hd_hub_unwatch advances it past a removed watch. */
static void fire(struct hd_watch_list *l, const char *topic, const struct hd_stored_event *ev)
{
	uint64_t fired = 0;
	l->firing = true;
	l->cursor = l->head;
	while (l->cursor) {
		struct hd_watch *w = l->cursor;
		l->cursor = w->next;
		if (!w->prefix || strncmp(topic, w->prefix, strlen(w->prefix)) == 0) {
			w->fire(w, topic, ev);
			fired++;
		}
	}
	l->firing = false;
	hd_metrics_add(HD_M_deliveries_total, fired);
}

void hd_hub_on_event(void *arg, const char *topic, const struct hd_stored_event *ev)
{
	struct hd_hub *hub = arg;
	struct hd_watch_list *l = hd_map_get(&hub->watched, topic);
	if (l) {
		fire(l, topic, ev);
		if (l->count == 0)
			list_free(hd_map_del(&hub->watched, topic));
	}
	if (hub->prefixed.head)
		fire(&hub->prefixed, topic, ev);
}

int hd_hub_publish(struct hd_hub *hub, struct hd_pub *p)
{
	return hd_engine_publish(hub->engine, p);
}

int hd_hub_read(struct hd_hub *hub, struct hd_read *r)
{
	return hd_engine_read(hub->engine, r);
}

void hd_hub_on_topic_deleted(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg)
{
	assert(hub->ndeleted < HD_HUB_TOPIC_LISTENERS_MAX);
	hub->deleted[hub->ndeleted].fn = fn;
	hub->deleted[hub->ndeleted].arg = arg;
	hub->ndeleted++;
}

void hd_hub_off_topic_deleted(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg)
{
	for (size_t i = 0; i < hub->ndeleted; i++) {
		if (hub->deleted[i].fn == fn && hub->deleted[i].arg == arg) {
			memmove(&hub->deleted[i], &hub->deleted[i + 1],
				(hub->ndeleted - i - 1) * sizeof(hub->deleted[0]));
			hub->ndeleted--;
			return;
		}
	}
}

int hd_hub_topic_op(struct hd_hub *hub, struct hd_topic_op *op)
{
	if (op->kind == HD_TOPIC_DELETE)
		for (size_t i = 0; i < hub->ndeleted; i++)
			hub->deleted[i].fn(hub->deleted[i].arg, op->topic);
	return hd_engine_topic_op(hub->engine, op);
}

int hd_hub_record_op(struct hd_hub *hub, struct hd_record_op *op)
{
	return hd_engine_record_op(hub->engine, op);
}

bool hd_hub_owner_shared(const struct hd_hub *hub)
{
	return hub->engine && hub->engine->ops->owner_op;
}

int hd_hub_owner_op(struct hd_hub *hub, struct hd_owner_op *op)
{
	if (!hd_hub_owner_shared(hub))
		return HD_ENOTIMPL;
	return hub->engine->ops->owner_op(hub->engine, op);
}

int hd_hub_group_op(struct hd_hub *hub, struct hd_group_op *op)
{
	return hd_engine_group_op(hub->engine, op);
}

bool hd_hub_glease_shared(struct hd_hub *hub)
{
	return hub->engine->ops->glease_op != NULL;
}

int hd_hub_glease_op(struct hd_hub *hub, struct hd_glease_op *op)
{
	if (!hub->engine->ops->glease_op)
		return HD_ENOTIMPL;
	return hub->engine->ops->glease_op(hub->engine, op);
}

bool hd_hub_ready(struct hd_hub *hub)
{
	return hub->engine && hub->engine->ops->ready(hub->engine);
}

bool hd_hub_ready_why(struct hd_hub *hub, char *why, size_t cap)
{
	if (hd_hub_ready(hub))
		return true;
	snprintf(why, cap, "%s", hub->engine ? "herald is stopping" : "no engine yet");
	if (hub->engine && hub->engine->ops->why_not_ready)
		hub->engine->ops->why_not_ready(hub->engine, why, cap);
	return false;
}
