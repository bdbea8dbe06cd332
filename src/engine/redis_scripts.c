/*
 * redis_scripts — the Lua scripts' text of the Redis engine (see
 * redis_impl.h), indexed by S_*; redis.c hashes them (EVALSHA) and
 * redis_deliver.c loads them on each command connection.
 * Layer: engine. Data only.
 */
#include "engine/redis_impl.h"

/* One call per topic and batch (at most CALL_EVENTS_MAX events).
 * KEYS: meta, stream, topics, then each event's dedup key.
 * ARGV: topic, window ms, maxlen (0 none), new epoch, history 1/0,
 * confirm 1/0, channel, then each event's json, time, expires.
 * → {epoch, dup 1/0, offset, dup, offset, …} per event in order. Each
 * event: the dedup check, the next dense offset, the append with the
 * retention cap; a new topic gets its epoch. With confirm it also raises
 * the top and PUBLISHes the new events in one message (redis.h). */
static const char pub_lua[] =
	"local m=KEYS[1]\n"
	"local h=redis.call('HMGET',m,'epoch','last')\n"
	"local epoch=h[1]\n"
	"local last=tonumber(h[2])\n"
	"local win=tonumber(ARGV[2])\n"
	"local maxlen=tonumber(ARGV[3])\n"
	"local n=(#ARGV-7)/3\n"
	"if not epoch then\n"
	" epoch=ARGV[4]\n"
	" last=0\n"
	" redis.call('HSET',m,'epoch',epoch,'created',ARGV[9],'last',0,'top',0)\n"
	" redis.call('ZADD',KEYS[3],0,ARGV[1])\n"
	"end\n"
	"local first=last\n"
	"local out={epoch}\n"
	"local ev={}\n"
	"for i=1,n do\n"
	" local j,t,x=ARGV[5+3*i],ARGV[6+3*i],ARGV[7+3*i]\n"
	" local dup=nil\n"
	" if win>0 then\n"
	"  local d=redis.call('GET',KEYS[3+i])\n"
	"  if d then\n"
	"   local sep=string.find(d,':',1,true)\n"
	"   if sep and string.sub(d,1,sep-1)==epoch then dup=tonumber(string.sub(d,sep+1)) end\n"
	"  end\n"
	" end\n"
	" if dup then\n"
	"  out[#out+1]=1\n"
	"  out[#out+1]=dup\n"
	" else\n"
	"  last=last+1\n"
	"  if ARGV[5]=='1' then\n"
	"   if maxlen>0 then\n"
	"    redis.call('XADD',KEYS[2],'MAXLEN',ARGV[3],last..'-0','j',j,'t',t,'x',x)\n"
	"   else\n"
	"    redis.call('XADD',KEYS[2],last..'-0','j',j,'t',t,'x',x)\n"
	"   end\n"
	"  end\n"
	"  if win>0 then redis.call('SET',KEYS[3+i],epoch..':'..last,'PX',win) end\n"
	"  out[#out+1]=0\n"
	"  out[#out+1]=last\n"
	"  if ARGV[6]=='1' then ev[#ev+1]=last..' '..t..' '..x..' '..#j..'\\n'..j end\n"
	" end\n"
	"end\n"
	"if last>first then\n"
	" redis.call('HSET',m,'last',last)\n"
	" if ARGV[6]=='1' then\n"
	"  local prev=redis.call('HGET',m,'top')\n"
	"  redis.call('HSET',m,'top',last)\n"
	"  redis.call('PUBLISH',ARGV[7],\n"
	"   prev..'\\n'..epoch..'\\n'..last..'\\n'..ARGV[1]..'\\n'..#ev..'\\n'..table.concat(ev))\n"
	" end\n"
	"end\n"
	"return out\n";

/* KEYS: meta. ARGV: last offset, epoch, channel, message without its
 * "PREV\n" (redis.h), events 1/0. One call per topic and batch: raises the
 * top to the batch's last offset of the topic and publishes its events in
 * one message (or, with none, a notice when the top rose).
 * Its effects go to the replicas only, not to the AOF: a write to the AOF
 * would hold the reply (and so the 201) for another fsync with appendfsync
 * always; the publish path writes the tops to the AOF with its next batch
 * (hd_redis_script_tops). */
static const char confirm_lua[] =
	"local h=redis.call('HMGET',KEYS[1],'epoch','top')\n"
	"if h[1]~=ARGV[2] then return 0 end\n"
	"redis.set_repl(redis.REPL_REPLICA)\n"
	"local off=tonumber(ARGV[1])\n"
	"local top=tonumber(h[2])\n"
	"if off>top then redis.call('HSET',KEYS[1],'top',off) end\n"
	"if ARGV[5]=='1' or off>top then redis.call('PUBLISH',ARGV[3],top..'\\n'..ARGV[4]) end\n"
	"return 1\n";

const char hd_redis_script_tops[] =
	"redis.set_repl(redis.REPL_AOF)\n"
	"for _,m in ipairs(KEYS) do\n"
	" local t=redis.call('HGET',m,'top')\n"
	" if t then redis.call('HSET',m,'top',t) end\n"
	"end\n"
	"return 1\n";

/* The state of topic NAME (meta m, stream s): {epoch, top, low, created, count}. */
#define TOPIC_STATE_LUA                                                                            \
	"local function state(m,s)\n"                                                              \
	" local h=redis.call('HMGET',m,'epoch','top','created')\n"                                 \
	" if not h[1] then return nil end\n"                                                       \
	" local top=tonumber(h[2])\n"                                                              \
	" local low=top+1\n"                                                                       \
	" local f=redis.call('XRANGE',s,'-','+','COUNT',1)\n"                                      \
	" if f[1] then local o=tonumber(string.match(f[1][1],'^%d+')) if o<low then low=o end end\n" \
	" return {h[1],top,low,tonumber(h[3]),redis.call('XLEN',s)}\n"                              \
	"end\n"

/* KEYS: meta, stream. ARGV: after, limit.
 * → {0} or {1, epoch, top, low, created, count, entries}. */
static const char read_lua[] =
	TOPIC_STATE_LUA
	"local st=state(KEYS[1],KEYS[2])\n"
	"if not st then return {0} end\n"
	"local after=tonumber(ARGV[1])\n"
	"local ev={}\n"
	"if after<st[2] then\n"
	" ev=redis.call('XRANGE',KEYS[2],(after+1)..'-0',st[2]..'-0','COUNT',tonumber(ARGV[2]))\n"
	"end\n"
	"return {1,st[1],st[2],st[3],st[4],st[5],ev}\n";

/* KEYS: topics. ARGV: min, max, limit → {{name, epoch, top, low, created, count}, …}. */
static const char list_lua[] =
	TOPIC_STATE_LUA
	"local names=redis.call('ZRANGEBYLEX',KEYS[1],ARGV[1],ARGV[2],'LIMIT',0,tonumber(ARGV[3]))\n"
	"local out={}\n"
	"for _,n in ipairs(names) do\n"
	" local st=state('{t:'..n..'}:m','{t:'..n..'}:s')\n"
	" if st then table.insert(out,{n,st[1],st[2],st[3],st[4],st[5]}) end\n"
	"end\n"
	"return out\n";

/* KEYS: meta, stream, topics. ARGV: name → 0 (absent) or 1. */
static const char del_lua[] =
	"if redis.call('EXISTS',KEYS[1])==0 then return 0 end\n"
	"redis.call('DEL',KEYS[1],KEYS[2])\n"
	"redis.call('ZREM',KEYS[3],ARGV[1])\n"
	"return 1\n";

/* KEYS: values hash, key index, fence lease (any key when unfenced).
 * ARGV: key, "MS VALUE", compare-and-set ('' none, '0' only if absent, '1'
 * only if the stored VALUE is ARGV[4]), expected VALUE, fencing token (''
 * none: else written only while the lease KEYS[3] holds that token)
 * → 1, 0 when the stored value differs, -1 when fenced out (nothing written). */
static const char rput_lua[] =
	"if ARGV[5]~='' then\n"
	" local l=redis.call('GET',KEYS[3])\n"
	" if not l or string.sub(l,1,(string.find(l,' ',1,true) or 0)-1)~=ARGV[5] then return -1 end\n"
	"end\n"
	"if ARGV[3]~='' then\n"
	" local cur=redis.call('HGET',KEYS[1],ARGV[1])\n"
	" if ARGV[3]=='0' then if cur then return 0 end\n"
	" else\n"
	"  if not cur then return 0 end\n"
	"  local sp=string.find(cur,' ',1,true)\n"
	"  if not sp or string.sub(cur,sp+1)~=ARGV[4] then return 0 end\n"
	" end\n"
	"end\n"
	"redis.call('HSET',KEYS[1],ARGV[1],ARGV[2])\n"
	"redis.call('ZADD',KEYS[2],0,ARGV[1])\n"
	"return 1\n";

/* KEYS: values hash, key index. ARGV: key → 0 (absent) or 1. */
static const char rdel_lua[] =
	"if redis.call('HDEL',KEYS[1],ARGV[1])==0 then return 0 end\n"
	"redis.call('ZREM',KEYS[2],ARGV[1])\n"
	"return 1\n";

/* KEYS: values hash, key index. ARGV: min, max, limit → {keys, values}. */
static const char rlist_lua[] =
	"local k=redis.call('ZRANGEBYLEX',KEYS[2],ARGV[1],ARGV[2],'LIMIT',0,tonumber(ARGV[3]))\n"
	"if #k==0 then return {{},{}} end\n"
	"return {k,redis.call('HMGET',KEYS[1],unpack(k))}\n";

/* Ownership leases: KEYS[1] holds "TOKEN OWNER" with PX ttl; KEYS[2]
 * counts the fencing tokens; KEYS[3] names an owner that asked for the
 * lease (take), PX ttl (both read by one MGET). ARGV: owner, ttl ms, take 1/0 → {held 1/0, token,
 * holder, new 1/0, wanted 1/0}. The owner's own lease is renewed (wanted:
 * another owner asked for it: hand it over); another's is left alone
 * (take: ask for it); a free one is taken with the next token, unless
 * another owner asked for it first. */
#define OWN_FN \
	"local function own(lk,tk,wk,me,ttl,take,v,want)\n" \
	" if v then\n" \
	"  local sp=string.find(v,' ',1,true) or 0\n" \
	"  local tok=string.sub(v,1,sp-1)\n" \
	"  local who=string.sub(v,sp+1)\n" \
	"  if who==me then\n" \
	"   redis.call('PEXPIRE',lk,ttl)\n" \
	"   local w=0\n" \
	"   if want and want~=me then w=1 end\n" \
	"   return {1,tok,who,0,w}\n" \
	"  end\n" \
	"  if take=='1' and (not want or want==me) then\n" \
	"   redis.call('SET',wk,me,'PX',ttl)\n" \
	"  end\n" \
	"  return {0,tok,who,0,0}\n" \
	" end\n" \
	" if want and want~=me then return {0,'0','',0,0} end\n" \
	" if want then redis.call('DEL',wk) end\n" \
	" local tok=redis.call('INCR',tk)\n" \
	" redis.call('SET',lk,tok..' '..me,'PX',ttl)\n" \
	" return {1,tostring(tok),me,1,0}\n" \
	"end\n"
static const char own_lua[] = OWN_FN
	"local vw=redis.call('MGET',KEYS[1],KEYS[3])\n"
	"return own(KEYS[1],KEYS[2],KEYS[3],ARGV[1],ARGV[2],ARGV[3],vw[1],vw[2])\n";

/* A batch of own_lua for one owner: KEYS[1] counts the fencing tokens,
 * then each lease's key and its want key; ARGV: owner, ttl ms, then one
 * character 1/0 per lease (take) → own_lua's five values per lease, one
 * flat array. One call renews a node's page of leases (consume/owner.c):
 * one MGET reads them all, then a renewal costs one PEXPIRE. */
static const char ownb_lua[] = OWN_FN
	"local vw=redis.call('MGET',unpack(KEYS,2))\n"
	"local out={}\n"
	"for i=1,(#KEYS-1)/2 do\n"
	" local r=own(KEYS[2*i],KEYS[1],KEYS[2*i+1],ARGV[1],ARGV[2],string.sub(ARGV[3],i,i),vw[2*i-1],vw[2*i])\n"
	" for j=1,5 do out[#out+1]=r[j] end\n"
	"end\n"
	"return out\n";

/* KEYS: the lease. ARGV: owner ('' = whoever holds it) → 1 dropped, 0 not. */
static const char unown_lua[] =
	"local v=redis.call('GET',KEYS[1])\n"
	"if not v then return 0 end\n"
	"if ARGV[1]~='' and string.sub(v,(string.find(v,' ',1,true) or 0)+1)~=ARGV[1] then return 0 end\n"
	"redis.call('DEL',KEYS[1])\n"
	"return 1\n";

const char *const hd_redis_scripts_text[S_COUNT] = {
	pub_lua, confirm_lua, read_lua, list_lua, del_lua, rput_lua, rdel_lua, rlist_lua,
	own_lua, unown_lua,
	[S_GLEASE] = hd_redis_groups_lua,
	[S_OWNB] = ownb_lua,
};