/*
 * redis_groups — pull-group leases shared by every node (engine.h's
 * glease_op) on the Redis engine (see redis_impl.h).
 * Layer: engine. Called by groups/groups.c through the hub; loop thread.
 *
 * Data layout, per group, on the topic's shard under the topic's hash tag
 * (so a Redis Cluster keeps them in one slot with the topic's stream):
 *   {t:TOPIC}:g:NAME    hash: floor (every offset <= it acked), next (first
 *                       offset never handed out), redeliv, dead (counters),
 *                       aw, md, ord (ack_wait_ms, max_deliveries, ordered),
 *                       cr (created, Redis time), ep (the topic's epoch
 *                       when it was created: a group whose topic was
 *                       deleted and created again is gone, like its rows
 *                       on one node; "" until the topic exists)
 *   {t:TOPIC}:gl:NAME   hash: offset → "<deadline ms> <consumer> <deliveries>"
 *                       for every handed-out, un-acked offset; consumer "-"
 *                       when nacked (due again after its deadline)
 *   {t:TOPIC}:gd:NAME   zset: offset scored by its deadline (the expiry scan)
 *   {t:TOPIC}:ga:NAME   zset: acked offsets above the floor (score = offset)
 * Every offset in (floor, next) is in exactly one of gl and ga. The one
 * script (S_GLEASE) takes its time from redis.call('TIME'), never from a
 * node's clock, so any node can fetch, ack or nack any lease, and a lease
 * that ended is handed out by whichever node fetches next. Its work per
 * call is bounded: a fetch scans at most `max` (<= HD_GLEASE_SPAN) due
 * offsets and hands out at most as many; an ack takes at most
 * HD_GLEASE_SPAN offsets; the floor moves at most WINDOW_STEPS per call.
 *
 * Writes (acks, nacks, dead letters, SET, DROP) are followed by a WAIT when
 * replicated, like a publish: an ack answered 200 survives a failover. A
 * fetch does not wait: a lease lost in a failover only means an earlier
 * redelivery.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW_STEPS "100000"

/* KEYS: g, gl, gd, ga, topic meta, topic stream.
 * ARGV: mode, then
 *   fetch: max, window, consumer, default aw, md, ord, span
 *   ack|dead|gone|nack: offsets ("1,2,3" or ""), up_to, delay ms
 *   set: keep (1/0), floor, aw, md, ord
 *   info, drop: nothing
 * → {existed, floor, next, leased, redeliv, dead, aw, md, ord, due ms (-1),
 *    created ms, extra}; extra: fetch {{offset, deliveries, dead 1/0}, …},
 *    ack/nack {changed, {ignored, …}}; {} otherwise. */
const char hd_redis_groups_lua[] =
	"local g,gl,gd,ga=KEYS[1],KEYS[2],KEYS[3],KEYS[4]\n"
	"local mode=ARGV[1]\n"
	"local t=redis.call('TIME')\n"
	"local now=tonumber(t[1])*1000+math.floor(tonumber(t[2])/1000)\n"
	"local existed=redis.call('EXISTS',g)\n"
	"local te=redis.call('HGET',KEYS[5],'epoch') or ''\n"
	"if existed==1 then\n"
	" local ge=redis.call('HGET',g,'ep') or ''\n"
	" if ge~='' and te~='' and ge~=te then redis.call('DEL',g,gl,gd,ga) existed=0\n"
	" elseif ge=='' and te~='' then redis.call('HSET',g,'ep',te) end\n"
	"end\n"
	"local function state(extra)\n"
	" local h=redis.call('HMGET',g,'floor','next','redeliv','dead','aw','md','ord','cr')\n"
	" local due=-1\n"
	" local f=redis.call('ZRANGE',gd,0,0,'WITHSCORES')\n"
	" if f[1] then due=tonumber(f[2])-now if due<0 then due=0 end end\n"
	" local leased=redis.call('ZCOUNT',gd,'('..now,'+inf')\n"
	" return {existed,tonumber(h[1]) or 0,tonumber(h[2]) or 1,leased,tonumber(h[3]) or 0,\n"
	"  tonumber(h[4]) or 0,tonumber(h[5]) or 0,tonumber(h[6]) or 0,tonumber(h[7]) or 0,due,\n"
	"  tonumber(h[8]) or 0,extra}\n"
	"end\n"
	"if mode=='info' then return state({}) end\n"
	"if mode=='drop' then\n"
	" redis.call('DEL',g,gl,gd,ga)\n"
	" return state({})\n"
	"end\n"
	"if mode=='set' then\n"
	" if ARGV[2]=='1' and existed==1 then\n"
	"  redis.call('HSET',g,'aw',ARGV[4],'md',ARGV[5],'ord',ARGV[6])\n"
	" else\n"
	"  redis.call('DEL',g,gl,gd,ga)\n"
	"  local fl=tonumber(ARGV[3])\n"
	"  redis.call('HSET',g,'floor',fl,'next',fl+1,'redeliv',0,'dead',0,'aw',ARGV[4],'md',ARGV[5],'ord',ARGV[6],\n"
	"   'cr',now,'ep',te)\n"
	" end\n"
	" return state({})\n"
	"end\n"
	"if mode=='fetch' then\n"
	" local max,win,who,span=tonumber(ARGV[2]),tonumber(ARGV[3]),ARGV[4],tonumber(ARGV[8])\n"
	" if existed==0 then\n"
	"  redis.call('HSET',g,'floor',0,'next',1,'redeliv',0,'dead',0,'aw',ARGV[5],'md',ARGV[6],'ord',ARGV[7],\n"
	"   'cr',now,'ep',te)\n"
	" end\n"
	" local h=redis.call('HMGET',g,'floor','next','aw','md','ord')\n"
	" local floor,nxt,aw,md,ord=tonumber(h[1]),tonumber(h[2]),tonumber(h[3]),tonumber(h[4]),h[5]=='1'\n"
	" local out={}\n"
	" local due=redis.call('ZRANGEBYSCORE',gd,'-inf',now,'LIMIT',0,max)\n"
	" if #due>0 then\n"
	"  local offs={}\n"
	"  for i,o in ipairs(due) do offs[i]=tonumber(o) end\n"
	"  table.sort(offs)\n"
	"  local red=0\n"
	"  for _,o in ipairs(offs) do\n"
	"   if o-offs[1]>=span then break end\n"
	"   local v=redis.call('HGET',gl,o)\n"
	"   local d=1\n"
	"   if v then d=tonumber(string.match(v,'(%d+)$'))+1 end\n"
	"   redis.call('HSET',gl,o,(now+aw)..' '..who..' '..d)\n"
	"   redis.call('ZADD',gd,now+aw,o)\n"
	"   if d>1 then red=red+1 end\n"
	"   local dead=0\n"
	"   if md>0 and d>md then dead=1 end\n"
	"   table.insert(out,{o,d,dead})\n"
	"  end\n"
	"  if red>0 then redis.call('HINCRBY',g,'redeliv',red) end\n"
	" elseif (not ord) or nxt-floor-1==0 then\n"
	"  local top=tonumber(redis.call('HGET',KEYS[5],'top') or '0')\n"
	"  if nxt-floor-1==0 and top>=nxt then\n"
	"   local f=redis.call('XRANGE',KEYS[6],'-','+','COUNT',1)\n"
	"   local lo=top+1\n"
	"   if f[1] then lo=tonumber(string.match(f[1][1],'^%d+'))-tonumber(f[1][2][2])+1 end\n"
	"   if lo>nxt then floor=lo-1 nxt=lo redis.call('HSET',g,'floor',floor,'next',nxt) end\n"
	"  end\n"
	"  local n=math.min(max,win-(nxt-floor-1),top-nxt+1)\n"
	"  if n>0 then\n"
	"   for o=nxt,nxt+n-1 do\n"
	"    redis.call('HSET',gl,o,(now+aw)..' '..who..' 1')\n"
	"    redis.call('ZADD',gd,now+aw,o)\n"
	"    table.insert(out,{o,1,0})\n"
	"   end\n"
	"   redis.call('HSET',g,'next',nxt+n)\n"
	"  end\n"
	" end\n"
	" return state(out)\n"
	"end\n"
	"if existed==0 then return state({0,{}}) end\n"
	"local changed,ign=0,{}\n"
	"local function one(o)\n"
	" if mode=='nack' then\n"
	"  local v=redis.call('HGET',gl,o)\n"
	"  if not v or string.match(v,'^%S+ (%S+)')=='-' then return false end\n"
	"  local dl=now+tonumber(ARGV[4])\n"
	"  redis.call('HSET',gl,o,dl..' - '..string.match(v,'(%d+)$'))\n"
	"  redis.call('ZADD',gd,dl,o)\n"
	"  return true\n"
	" end\n"
	" if redis.call('HDEL',gl,o)==0 then return false end\n"
	" redis.call('ZREM',gd,o)\n"
	" redis.call('ZADD',ga,o,o)\n"
	" return true\n"
	"end\n"
	"if ARGV[2]~='' then\n"
	" for s in string.gmatch(ARGV[2],'%d+') do\n"
	"  local o=tonumber(s)\n"
	"  if one(o) then changed=changed+1 else table.insert(ign,o) end\n"
	" end\n"
	"else\n"
	" local h=redis.call('HMGET',g,'floor','next')\n"
	" local hi=math.min(tonumber(ARGV[3]),tonumber(h[2])-1)\n"
	" for o=tonumber(h[1])+1,hi do if one(o) then changed=changed+1 end end\n"
	"end\n"
	"if mode~='nack' and changed>0 then\n"
	" local h=redis.call('HMGET',g,'floor','next')\n"
	" local floor,nxt=tonumber(h[1]),tonumber(h[2])\n"
	" local f0,steps=floor,0\n"
	" while steps<" WINDOW_STEPS " and floor+1<nxt and redis.call('ZSCORE',ga,floor+1) do\n"
	"  floor=floor+1 steps=steps+1\n"
	" end\n"
	" if floor>f0 then\n"
	"  redis.call('ZREMRANGEBYSCORE',ga,'-inf',floor)\n"
	"  redis.call('HSET',g,'floor',floor)\n"
	" end\n"
	" if mode=='dead' then redis.call('HINCRBY',g,'dead',changed) end\n"
	"end\n"
	"return state({changed,ign})\n";

/* One op on its way: the script, then (writes, replicated) a WAIT. */
struct gcall {
	struct redis *r;
	struct hd_glease_op *op;
	int left;
};

static const char *mode_of(enum hd_glease_kind k)
{
	switch (k) {
	case HD_GLEASE_FETCH: return "fetch";
	case HD_GLEASE_ACK: return "ack";
	case HD_GLEASE_ACK_DEAD: return "dead";
	case HD_GLEASE_ACK_GONE: return "gone";
	case HD_GLEASE_NACK: return "nack";
	case HD_GLEASE_INFO: return "info";
	case HD_GLEASE_SET: return "set";
	case HD_GLEASE_DROP: return "drop";
	}
	return "info";
}

static void gcall_end(struct gcall *k)
{
	if (--k->left > 0)
		return;
	struct hd_glease_op *op = k->op;
	if (op->err)
		hd_engine_glease_op_fini(op);
	free(k);
	op->done(op);
}

static int64_t rep_i64(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_INTEGER ? (int64_t)rep->integer
						       : (int64_t)hd_redis_rep_u64(rep);
}

/* The script's answer into op (see the script's comment). */
static int take(struct hd_glease_op *op, const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 12)
		return HD_EINTERNAL;
	redisReply *const *e = rep->element;
	op->exists = rep_i64(e[0]) == 1;
	op->st_floor = hd_redis_rep_u64(e[1]);
	op->st_next = hd_redis_rep_u64(e[2]);
	op->st_leased = hd_redis_rep_u64(e[3]);
	op->st_redeliveries = hd_redis_rep_u64(e[4]);
	op->st_dead_letters = hd_redis_rep_u64(e[5]);
	op->st_ack_wait_ms = (uint32_t)hd_redis_rep_u64(e[6]);
	op->st_max_deliveries = (uint32_t)hd_redis_rep_u64(e[7]);
	op->st_ordered = hd_redis_rep_u64(e[8]) != 0;
	op->next_due_ms = rep_i64(e[9]);
	op->st_created_ms = rep_i64(e[10]);
	const redisReply *x = e[11];
	if (x->type != REDIS_REPLY_ARRAY)
		return HD_EINTERNAL;
	if (op->kind == HD_GLEASE_FETCH) {
		op->grants = hd_calloc(x->elements ? x->elements : 1, sizeof(*op->grants));
		for (size_t i = 0; i < x->elements; i++) {
			const redisReply *gr = x->element[i];
			if (gr->type != REDIS_REPLY_ARRAY || gr->elements != 3)
				return HD_EINTERNAL;
			op->grants[op->ngrants++] = (struct hd_glease_grant){
				.offset = hd_redis_rep_u64(gr->element[0]),
				.deliveries = (uint32_t)hd_redis_rep_u64(gr->element[1]),
				.dead = hd_redis_rep_u64(gr->element[2]) == 1,
			};
		}
	} else if (x->elements == 2 && x->element[1]->type == REDIS_REPLY_ARRAY) {
		const redisReply *ign = x->element[1];
		op->changed = (size_t)hd_redis_rep_u64(x->element[0]);
		op->ignored = hd_calloc(ign->elements ? ign->elements : 1, sizeof(*op->ignored));
		for (size_t i = 0; i < ign->elements; i++)
			op->ignored[op->nignored++] = hd_redis_rep_u64(ign->element[i]);
	}
	return 0;
}

static void script_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct gcall *k = priv;
	(void)c;
	int err = hd_redis_reply_err(rep);
	if (!err)
		err = take(k->op, rep);
	if (err && !k->op->err)
		k->op->err = err;
	gcall_end(k);
}

static void wait_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct gcall *k = priv;
	(void)c;
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_INTEGER || rep->integer < 1))
		err = HD_EUNAVAIL;
	if (err && !k->op->err)
		k->op->err = err;
	gcall_end(k);
}

/* Who took a lease, as the leases show it: this process. */
static const char *consumer_name(void)
{
	static char name[96];
	if (!name[0]) {
		char host[64] = "";
		gethostname(host, sizeof(host) - 1);
		for (char *p = host; *p; p++)
			if (*p == ' ')
				*p = '_';
		snprintf(name, sizeof(name), "%s/%ld", host[0] ? host : "node", (long)getpid());
	}
	return name;
}

int hd_redis_groups_op(struct hd_engine *e, struct hd_glease_op *op)
{
	struct redis *r = (struct redis *)e;
	char keys[4][HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 16];
	char meta[HD_TOPIC_NAME_MAX + 16], stream[HD_TOPIC_NAME_MAX + 16];
	static const char *const sfx[4] = {"g", "gl", "gd", "ga"};
	char n1[24], n2[24], n3[24], n4[24], n5[24], n6[24], n7[24];
	const char *args[ARGS_MAX];
	struct hd_buf offs;
	int argc = 0;

	op->err = 0;
	op->grants = NULL;
	op->ngrants = 0;
	op->ignored = NULL;
	op->nignored = 0;
	op->changed = 0;
	if (r->stopped)
		return HD_EUNAVAIL;
	if (op->noffsets > HD_GLEASE_SPAN || (op->kind == HD_GLEASE_FETCH && op->max == 0))
		return HD_EINVAL;
	for (int i = 0; i < 4; i++) {
		snprintf(keys[i], sizeof(keys[i]), "{t:%s}:%s:%s", op->topic, sfx[i], op->group);
		args[argc++] = keys[i];
	}
	snprintf(meta, sizeof(meta), "{t:%s}:m", op->topic);
	snprintf(stream, sizeof(stream), "{t:%s}:s", op->topic);
	args[argc++] = meta;
	args[argc++] = stream;
	args[argc++] = mode_of(op->kind);
	hd_buf_init(&offs, (size_t)HD_GLEASE_SPAN * 21 + 1);
	switch (op->kind) {
	case HD_GLEASE_FETCH:
		snprintf(n1, sizeof(n1), "%" PRIu32, op->max > HD_GLEASE_SPAN ? HD_GLEASE_SPAN : op->max);
		snprintf(n2, sizeof(n2), "%" PRIu32, op->window);
		snprintf(n3, sizeof(n3), "%" PRIu32, op->ack_wait_ms);
		snprintf(n4, sizeof(n4), "%" PRIu32, op->max_deliveries);
		snprintf(n5, sizeof(n5), "%d", HD_GLEASE_SPAN);
		args[argc++] = n1;
		args[argc++] = n2;
		args[argc++] = consumer_name();
		args[argc++] = n3;
		args[argc++] = n4;
		args[argc++] = op->ordered ? "1" : "0";
		args[argc++] = n5;
		break;
	case HD_GLEASE_ACK:
	case HD_GLEASE_ACK_DEAD:
	case HD_GLEASE_ACK_GONE:
	case HD_GLEASE_NACK:
		for (size_t i = 0; i < op->noffsets; i++)
			hd_buf_printf(&offs, "%s%" PRIu64, i ? "," : "", op->offsets[i]);
		hd_buf_putc(&offs, '\0');
		snprintf(n1, sizeof(n1), "%" PRIu64, op->up_to);
		snprintf(n2, sizeof(n2), "%" PRId64, op->delay_ms > 0 ? op->delay_ms : 0);
		args[argc++] = offs.data;
		args[argc++] = n1;
		args[argc++] = n2;
		break;
	case HD_GLEASE_SET:
		snprintf(n5, sizeof(n5), "%" PRIu64, op->floor);
		snprintf(n6, sizeof(n6), "%" PRIu32, op->ack_wait_ms);
		snprintf(n7, sizeof(n7), "%" PRIu32, op->max_deliveries);
		args[argc++] = op->keep_position ? "1" : "0";
		args[argc++] = n5;
		args[argc++] = n6;
		args[argc++] = n7;
		args[argc++] = op->ordered ? "1" : "0";
		break;
	case HD_GLEASE_INFO:
	case HD_GLEASE_DROP:
		break;
	}
	size_t lens[ARGS_MAX];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(args[i]);

	struct gcall *k = hd_calloc(1, sizeof(*k));
	k->r = r;
	k->op = op;
	k->left = 1;
	struct hd_rconn *c = hd_redis_shard_of(r, op->topic)->cmd;
	int rc = hd_redis_script_call(r, c, S_GLEASE, script_reply, k, argc, args, lens, 6);
	hd_buf_fini(&offs);
	if (rc) {
		free(k);
		return rc;
	}
	bool write = op->kind != HD_GLEASE_FETCH && op->kind != HD_GLEASE_INFO;
	if (write && r->opts.durability == HD_REDIS_REPLICATED) {
		char tmo[24];
		snprintf(tmo, sizeof(tmo), "%u", (unsigned)r->opts.wait_timeout_ms);
		const char *wargv[] = {"WAIT", "1", tmo};
		size_t wlens[] = {4, 1, strlen(tmo)};
		k->left++;
		if (hd_rconn_command(c, wait_reply, k, 3, wargv, wlens)) {
			k->left--;
			op->err = HD_EUNAVAIL;
		}
	}
	return 0;
}
