/* hub — see hub.h. */
#include "hub/hub.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/map.h"
#include "core/metrics.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest registry entry the hub writes (a listing with its topics). */
#define REG_JSON_MAX (256 * 1024)

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

/* Listeners of one hub event, in the order they were added. fn is stored
 * as a generic function pointer and cast back to the event's type to run. */
typedef void (*listener_fn)(void);
struct listeners {
	struct {
		listener_fn fn;
		void *arg;
	} l[HD_HUB_TOPIC_LISTENERS_MAX];
	size_t n;
};

static void listeners_add(struct listeners *ls, listener_fn fn, void *arg)
{
	assert(ls->n < HD_HUB_TOPIC_LISTENERS_MAX);
	ls->l[ls->n].fn = fn;
	ls->l[ls->n].arg = arg;
	ls->n++;
}

static void listeners_del(struct listeners *ls, listener_fn fn, void *arg)
{
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->l[i].fn == fn && ls->l[i].arg == arg) {
			memmove(&ls->l[i], &ls->l[i + 1], (ls->n - i - 1) * sizeof(ls->l[0]));
			ls->n--;
			return;
		}
	}
}

static void listeners_topic(const struct listeners *ls, const char *topic)
{
	for (size_t i = 0; i < ls->n; i++)
		((hd_hub_topic_fn)ls->l[i].fn)(ls->l[i].arg, topic);
}

struct hd_hub {
	const struct hd_config *cfg;
	struct hd_engine *engine;
	struct hd_map watched;    /* topic → struct hd_watch_list */
	struct hd_map users;      /* user → struct hd_user_conns */
	struct hd_watch_list prefixed; /* every prefix watch (topic NULL, never freed) */
	size_t nconns;
	struct listeners deleted; /* hd_hub_on_topic_deleted (hd_hub_topic_fn) */
	struct listeners gone;    /* hd_hub_on_topic_gone (hd_hub_topic_fn) */
	struct listeners joins;   /* hd_hub_on_join_leave (hd_hub_join_fn) */
	struct hd_conn *dirty;    /* listings to write to the registry (redis) */
};

static bool reg_on(const struct hd_hub *hub);
static void reg_presence(struct hd_hub *hub, const char *topic, const struct hd_watch *w, bool add);
static void reg_mark(struct hd_hub *hub, struct hd_conn *c);
static void reg_online(struct hd_hub *hub, const char *user, bool add);

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
	if (w->conn && w->conn->added && reg_on(hub)) {
		reg_presence(hub, topic, w, true);
		if (w->conn->ulist)
			reg_mark(hub, (struct hd_conn *)w->conn);
	}
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
	if (w->conn && w->conn->added && l != &hub->prefixed && reg_on(hub)) {
		reg_presence(hub, l->topic, w, false);
		if (w->conn->ulist)
			reg_mark(hub, (struct hd_conn *)w->conn);
	}
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

struct reg_walk {
	struct hd_hub *hub;
	const struct hd_conn *c;
	bool add;
};

static void reg_topic(void *arg, const char *topic)
{
	struct reg_walk *w = arg;
	struct hd_watch cw = {.conn = w->c}; /* chan_info: a subscription's watch writes its own */
	reg_presence(w->hub, topic, &cw, w->add);
}

void hd_hub_conn_add(struct hd_hub *hub, struct hd_conn *c)
{
	hub->nconns++;
	c->ulist = NULL;
	c->uprev = c->unext = NULL;
	c->added = true;
	if (reg_on(hub) && c->topics) {
		/* The topics it watched before it was added (its id and user
		 * were not known yet). */
		struct reg_walk w = {hub, c, true};
		c->topics(c, reg_topic, &w);
	}
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
	if (!u->head && reg_on(hub))
		reg_online(hub, c->user, true); /* the user's first connection here */
	c->ulist = u;
	c->unext = u->head;
	if (u->head)
		u->head->uprev = c;
	u->head = c;
	if (reg_on(hub))
		reg_mark(hub, c);
}

void hd_hub_conn_remove(struct hd_hub *hub, struct hd_conn *c)
{
	assert(hub->nconns > 0);
	hub->nconns--;
	if (reg_on(hub) && c->topics) {
		/* Watches still there (an edge may unwatch after this). */
		struct reg_walk w = {hub, c, false};
		c->topics(c, reg_topic, &w);
	}
	c->added = false;
	struct hd_user_conns *u = c->ulist;
	if (!u)
		return;
	if (c->dirty) {
		if (c->dprev)
			c->dprev->dnext = c->dnext;
		else
			hub->dirty = c->dnext;
		if (c->dnext)
			c->dnext->dprev = c->dprev;
		c->dirty = false;
		c->dprev = c->dnext = NULL;
	}
	if (reg_on(hub))
		hub->engine->ops->reg_put(hub->engine, HD_REG_USER, c->user, c->id, NULL);
	if (c->uprev)
		c->uprev->unext = c->unext;
	else
		u->head = c->unext;
	if (c->unext)
		c->unext->uprev = c->uprev;
	c->ulist = NULL;
	c->uprev = c->unext = NULL;
	if (!u->head) {
		if (reg_on(hub))
			reg_online(hub, u->user, false);
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
	listeners_add(&hub->deleted, (listener_fn)fn, arg);
}

void hd_hub_off_topic_deleted(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg)
{
	listeners_del(&hub->deleted, (listener_fn)fn, arg);
}

void hd_hub_on_topic_gone(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg)
{
	listeners_add(&hub->gone, (listener_fn)fn, arg);
}

void hd_hub_off_topic_gone(struct hd_hub *hub, hd_hub_topic_fn fn, void *arg)
{
	listeners_del(&hub->gone, (listener_fn)fn, arg);
}


/* A delete through this node, on its way: the caller's done and arg. */
struct del_wrap {
	struct hd_hub *hub;
	void (*done)(struct hd_topic_op *op);
	void *arg;
};

static const char NOTICE_DELETED[] = "deleted";

static void deleted_done(struct hd_topic_op *op)
{
	struct del_wrap *w = op->arg;
	struct hd_hub *hub = w->hub;
	op->done = w->done;
	op->arg = w->arg;
	free(w);
	if (!op->err && hub->engine) {
		/* The other nodes first: their subscribers hear of it as soon as
		 * this node's. */
		if (hub->engine->ops->notice)
			hub->engine->ops->notice(hub->engine, op->topic, NOTICE_DELETED,
						 sizeof(NOTICE_DELETED) - 1);
		listeners_topic(&hub->gone, op->topic);
	}
	op->done(op);
}

int hd_hub_topic_op(struct hd_hub *hub, struct hd_topic_op *op)
{
	if (op->kind != HD_TOPIC_DELETE)
		return hd_engine_topic_op(hub->engine, op);
	listeners_topic(&hub->deleted, op->topic);
	struct del_wrap *w = hd_malloc(sizeof(*w));
	*w = (struct del_wrap){hub, op->done, op->arg};
	op->done = deleted_done;
	op->arg = w;
	int rc = hd_engine_topic_op(hub->engine, op);
	if (rc) {
		op->done = w->done;
		op->arg = w->arg;
		free(w);
	}
	return rc;
}

/* ---- joins, leaves and deletions across nodes -------------------------- */

void hd_hub_on_join_leave(struct hd_hub *hub, hd_hub_join_fn fn, void *arg)
{
	listeners_add(&hub->joins, (listener_fn)fn, arg);
}

void hd_hub_off_join_leave(struct hd_hub *hub, hd_hub_join_fn fn, void *arg)
{
	listeners_del(&hub->joins, (listener_fn)fn, arg);
}

/* Appends ,"key":json to b when json is there and at most HD_HUB_INFO_MAX. */
static void info_member(struct hd_buf *b, const char *key, const char *json, bool *first)
{
	if (!json || strlen(json) > HD_HUB_INFO_MAX)
		return;
	hd_buf_printf(b, "%s\"%s\":%s", *first ? "" : ",", key, json);
	*first = false;
}

/* A notice's text: "deleted", or "join\nCLIENT\nUSER[\n{infos}]" /
 * "leave\nCLIENT\nUSER[\n{infos}]" (hub.h). */
void hd_hub_join_leave(struct hd_hub *hub, const char *topic, const char *client,
		       const char *user, const char *conn_info, const char *chan_info, bool join)
{
	if (!hub->engine || !hub->engine->ops->notice)
		return;
	if (strlen(client) >= 40 || strlen(user) > HD_USER_ID_MAX)
		return; /* an id longer than a UUID: not ours */
	struct hd_buf b;
	hd_buf_init(&b, HD_HUB_NOTICE_MAX);
	hd_buf_printf(&b, "%s\n%s\n%s", join ? "join" : "leave", client, user);
	size_t head = b.len;
	bool first = true;
	hd_buf_puts(&b, "\n{");
	info_member(&b, "chan_info", chan_info, &first);
	info_member(&b, "info", conn_info, &first);
	hd_buf_putc(&b, '}');
	if (first) { /* no info: the short form */
		b.len = head;
		b.data[head] = '\0';
	}
	if (b.data)
		hub->engine->ops->notice(hub->engine, topic, b.data, b.len);
	hd_buf_fini(&b);
}

void hd_hub_on_notice(void *arg, const char *topic, const char *msg, size_t len)
{
	struct hd_hub *hub = arg;
	if (len == sizeof(NOTICE_DELETED) - 1 && !memcmp(msg, NOTICE_DELETED, len)) {
		listeners_topic(&hub->gone, topic);
		return;
	}
	bool join = len > 5 && !memcmp(msg, "join\n", 5);
	if (!join && !(len > 6 && !memcmp(msg, "leave\n", 6)))
		return; /* a notice of a later version: not for us */
	if (len > HD_HUB_NOTICE_MAX)
		return;
	const char *client = msg + (join ? 5 : 6), *end = msg + len;
	const char *nl = memchr(client, '\n', (size_t)(end - client));
	char id[40], user[HD_USER_ID_MAX + 1];
	if (!nl || (size_t)(nl - client) >= sizeof(id))
		return;
	memcpy(id, client, (size_t)(nl - client));
	id[nl - client] = '\0';
	const char *u = nl + 1, *nl2 = memchr(u, '\n', (size_t)(end - u));
	size_t ulen = (size_t)((nl2 ? nl2 : end) - u);
	if (ulen > HD_USER_ID_MAX)
		return;
	memcpy(user, u, ulen);
	user[ulen] = '\0';
	/* The rest: {"info","chan_info"}, a sender's or the sweep's presence entry. */
	const char *infos = nl2 ? nl2 + 1 : NULL;
	size_t ilen = nl2 ? (size_t)(end - nl2 - 1) : 0;
	for (size_t i = 0; i < hub->joins.n; i++)
		((hd_hub_join_fn)hub->joins.l[i].fn)(hub->joins.l[i].arg, topic, id, user, infos, ilen,
						     join);
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

int hd_hub_owner_ops(struct hd_hub *hub, struct hd_owner_op *const *ops, size_t n)
{
	if (!hd_hub_owner_shared(hub))
		return HD_ENOTIMPL;
	if (hub->engine->ops->owner_ops)
		return hub->engine->ops->owner_ops(hub->engine, ops, n);
	for (size_t i = 0; i < n; i++) {
		int rc = hub->engine->ops->owner_op(hub->engine, ops[i]);
		if (rc) {
			ops[i]->err = rc;
			ops[i]->done(ops[i]);
		}
	}
	return 0;
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

/* ---- the registry across nodes (engine.h's reg_*) ---------------------- */

struct conn_walk {
	struct hd_buf *b;
	bool first;
};

static void conn_topic_json(void *arg, const char *topic)
{
	struct conn_walk *w = arg;
	if (!w->first)
		hd_buf_putc(w->b, ',');
	w->first = false;
	hd_buf_putc(w->b, '"');
	hd_buf_json_escape(w->b, topic, strlen(topic));
	hd_buf_putc(w->b, '"');
}

void hd_hub_conn_json(const struct hd_hub *hub, const struct hd_conn *c, struct hd_buf *b)
{
	const char *node = hd_hub_node(hub);
	char since[40];
	struct conn_walk w = {.b = b, .first = true};
	hd_clock_format_rfc3339(c->since_ms, since, sizeof(since));
	hd_buf_puts(b, "{\"id\":\"");
	hd_buf_puts(b, c->id);
	hd_buf_printf(b, "\",\"transport\":\"%s\",\"remote\":\"", c->transport);
	hd_buf_json_escape(b, c->remote, strlen(c->remote));
	hd_buf_printf(b, "\",\"since\":\"%s\",\"user\":\"", since);
	hd_buf_json_escape(b, c->user, strlen(c->user));
	hd_buf_puts(b, "\",\"node\":\"");
	hd_buf_json_escape(b, node, strlen(node));
	hd_buf_puts(b, "\",\"topics\":[");
	if (c->topics)
		c->topics(c, conn_topic_json, &w);
	hd_buf_puts(b, "]}");
}

/* The presence entry of w's connection c:
 * {"id","transport","user","node"[,"join_leave"][,"chan_info"][,"info"]}. */
static void presence_json(const struct hd_hub *hub, const struct hd_watch *w, struct hd_buf *b)
{
	const struct hd_conn *c = w->conn;
	const char *node = hd_hub_node(hub);
	hd_buf_printf(b, "{\"id\":\"%s\",\"transport\":\"%s\",\"user\":\"", c->id, c->transport);
	hd_buf_json_escape(b, c->user, strlen(c->user));
	hd_buf_puts(b, "\",\"node\":\"");
	hd_buf_json_escape(b, node, strlen(node));
	hd_buf_putc(b, '"');
	if (w->join_leave)
		hd_buf_puts(b, ",\"join_leave\":true");
	/* chan_info then info, last: edge/ws_commands.c reads them there. */
	if (w->chan_info)
		hd_buf_printf(b, ",\"chan_info\":%s", w->chan_info);
	hd_buf_puts(b, c->info ? ",\"info\":" : "}");
	if (c->info)
		hd_buf_printf(b, "%s}", c->info);
}

static bool reg_on(const struct hd_hub *hub)
{
	return hub->engine && hub->engine->ops->reg_put;
}

static void reg_presence(struct hd_hub *hub, const char *topic, const struct hd_watch *w, bool add)
{
	struct hd_buf b;
	hd_buf_init(&b, REG_JSON_MAX);
	if (add)
		presence_json(hub, w, &b);
	hub->engine->ops->reg_put(hub->engine, HD_REG_TOPIC, topic, w->conn->id, add ? b.data : NULL);
	hd_buf_fini(&b);
}

/* user's entry among the users online (HD_REG_ONLINE): one per user and node. */
static void reg_online(struct hd_hub *hub, const char *user, bool add)
{
	hub->engine->ops->reg_put(hub->engine, HD_REG_ONLINE, "", user, add ? "1" : NULL);
}

static void reg_flush(void *arg, int mode);

/* c's listing changed: written in this loop turn's batch. */
static void reg_mark(struct hd_hub *hub, struct hd_conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		c->dprev = NULL;
		c->dnext = hub->dirty;
		if (hub->dirty)
			hub->dirty->dprev = c;
		hub->dirty = c;
	}
	hub->engine->ops->reg_flush(hub->engine, reg_flush, hub);
}

static void mark_user(const char *key, void *value, void *arg)
{
	struct hd_user_conns *u = value;
	if (u->head)
		reg_online(arg, u->user, true);
	for (struct hd_conn *c = u->head; c; c = c->unext)
		if (!c->dirty)
			reg_mark(arg, c);
}

static void put_followers(const char *key, void *value, void *arg)
{
	struct hd_watch_list *l = value;
	for (struct hd_watch *w = l->head; w; w = w->next)
		if (w->conn && w->conn->added)
			reg_presence(arg, l->topic, w, true);
}

/* The joins of l's announced watches again, to the other nodes (a watch's
 * join_leave was decided when it was added: its namespace's join-leave or
 * a `subs` override, so the namespace is not asked again here). */
static void rejoin_followers(const char *key, void *value, void *arg)
{
	struct hd_watch_list *l = value;
	struct hd_hub *hub = arg;
	const struct hd_engine_ops *ops = hub->engine->ops;
	for (struct hd_watch *w = l->head; w; w = w->next)
		if (w->conn && w->conn->added && w->join_leave &&
		    (!ops->reg_left || ops->reg_left(hub->engine, l->topic, w->conn->id)))
			hd_hub_join_leave(hub, l->topic, w->conn->id, w->conn->user, w->conn->info,
					  w->chan_info, true);
}

/* The engine's batch is about to go: write the changed listings (every
 * entry after a reconnect; and the joins again after a sweep, engine.h). */
static void reg_flush(void *arg, int mode)
{
	struct hd_hub *hub = arg;
	struct hd_buf b;
	if (mode == HD_REG_FLUSH_ALL || mode == HD_REG_FLUSH_REJOIN) {
		hd_map_each(&hub->users, mark_user, hub);
		hd_map_each(&hub->watched, put_followers, hub);
	}
	if (mode == HD_REG_FLUSH_REJOIN || mode == HD_REG_FLUSH_JOINS)
		hd_map_each(&hub->watched, rejoin_followers, hub);
	hd_buf_init(&b, REG_JSON_MAX);
	while (hub->dirty) {
		struct hd_conn *c = hub->dirty;
		hub->dirty = c->dnext;
		if (hub->dirty)
			hub->dirty->dprev = NULL;
		c->dirty = false;
		c->dprev = c->dnext = NULL;
		hd_buf_reset(&b);
		hd_hub_conn_json(hub, c, &b);
		if (b.data)
			hub->engine->ops->reg_put(hub->engine, HD_REG_USER, c->user, c->id, b.data);
	}
	hd_buf_fini(&b);
}

static void item_set(struct hd_hub_reg_item *it, char *json, const char *id, const char *user,
		     const char *transport)
{
	it->json = json;
	snprintf(it->id, sizeof(it->id), "%s", id);
	snprintf(it->user, sizeof(it->user), "%s", user);
	snprintf(it->transport, sizeof(it->transport), "%s", transport);
}

static int by_item_user(const void *a, const void *b)
{
	const struct hd_hub_reg_item *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	return c ? c : strcmp(x->id, y->id);
}

static void reg_done(struct hd_reg_query *eq)
{
	struct hd_hub_reg *q = eq->arg;
	q->err = eq->err;
	q->count = eq->count;
	q->items = hd_calloc(eq->n ? eq->n : 1, sizeof(*q->items));
	q->n = 0;
	for (size_t i = 0; i < eq->n; i++) {
		json_t *o = json_loads(eq->values[i], 0, NULL);
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *user = json_string_value(json_object_get(o, "user"));
		const char *tr = json_string_value(json_object_get(o, "transport"));
		if (id && user && tr) {
			item_set(&q->items[q->n++], eq->values[i], id, user, tr);
			eq->values[i] = NULL; /* handed to the item */
		}
		json_decref(o);
	}
	hd_engine_reg_query_fini(eq);
	if (q->kind == HD_REG_TOPIC && q->n > 1)
		qsort(q->items, q->n, sizeof(*q->items), by_item_user);
	q->done(q);
}

/* Takes b's bytes as an item's JSON. */
static void local_item(struct hd_hub_reg *q, struct hd_buf *b, const struct hd_conn *c)
{
	size_t len;
	item_set(&q->items[q->n++], hd_buf_steal(b, &len), c->id, c->user, c->transport);
	hd_buf_fini(b);
}

int hd_hub_reg_query(struct hd_hub *hub, struct hd_hub_reg *q)
{
	struct hd_buf b;
	size_t cap = 0;
	q->err = 0;
	q->items = NULL;
	q->n = 0;
	q->count = 0;
	if (hd_hub_reg_shared(hub)) {
		q->eq = (struct hd_reg_query){.kind = q->kind, .key = q->key, .done = reg_done, .arg = q};
		return hub->engine->ops->reg_query(hub->engine, &q->eq);
	}
	/* One node: this node's lists. */
	if (q->kind == HD_REG_ONLINE) {
		q->count = hd_hub_users(hub);
	} else if (q->kind == HD_REG_USER) {
		struct hd_user_conns *u = q->key[0] ? hd_map_get(&hub->users, q->key) : NULL;
		for (struct hd_conn *c = u ? u->head : NULL; c; c = c->unext)
			cap++;
		q->items = hd_calloc(cap ? cap : 1, sizeof(*q->items));
		for (struct hd_conn *c = u ? u->head : NULL; c; c = c->unext) {
			hd_buf_init(&b, REG_JSON_MAX);
			hd_hub_conn_json(hub, c, &b);
			local_item(q, &b, c);
		}
	} else {
		/* The topic's watches, for their chan_info. */
		struct hd_watch_list *l = hd_map_get(&hub->watched, q->key);
		q->items = hd_calloc(l && l->count ? l->count : 1, sizeof(*q->items));
		for (struct hd_watch *w = l ? l->head : NULL; w; w = w->next) {
			if (!w->conn)
				continue;
			hd_buf_init(&b, REG_JSON_MAX);
			presence_json(hub, w, &b);
			local_item(q, &b, w->conn);
		}
		if (q->n > 1)
			qsort(q->items, q->n, sizeof(*q->items), by_item_user);
	}
	q->done(q);
	return 0;
}

bool hd_hub_reg_shared(const struct hd_hub *hub)
{
	return reg_on(hub) && hub->engine->ops->reg_query;
}

void hd_hub_reg_fini(struct hd_hub_reg *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->items[i].json);
	free(q->items);
	q->items = NULL;
	q->n = 0;
}

size_t hd_hub_reg_users(const struct hd_hub_reg *q)
{
	size_t users = 0;
	for (size_t i = 0; i < q->n; i++)
		users += q->items[i].user[0] &&
			 (i == 0 || strcmp(q->items[i - 1].user, q->items[i].user) != 0);
	return users;
}
