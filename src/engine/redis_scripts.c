/*
 * redis_scripts — the Lua scripts' text of the Redis engine (see
 * redis_impl.h), indexed by S_*; redis.c hashes them (EVALSHA) and
 * redis_deliver.c loads them on each command connection; and the Redis
 * Cluster key slot that every call's KEYS share (script_call asserts it).
 * Layer: engine. Data and pure functions.
 */
#include "engine/redis_impl.h"

#include <string.h>

/* One call per topic and batch (at most CALL_EVENTS_MAX events).
 * KEYS: meta, stream, boundaries, then the dedup buckets B-2, B-1, B, B+1 of
 * the topic (B = the node's clock / window).
 * ARGV: topic, window ms, maxlen (0 none), new epoch, history 1/0,
 * confirm 1/0, channel, B, created ms, the events' records (each
 * "TIME EXPIRES LEN\n" and LEN bytes of JSON, in order), then each
 * event's dedup field "SOURCE\0ID" and its record's length.
 * → {epoch, dup 1/0, offset, dup, offset, …} per event in order, or,
 * when no event was a duplicate, {epoch, first offset} (the events have
 * the offsets first, first+1, … in order: a shorter reply to build and
 * parse for the common call). The
 * dedup check of every event at once (HMGET of the current and previous
 * bucket by Redis TIME, one clock for every node: the window is exact
 * across nodes; an id seen earlier in the batch is a duplicate too), the
 * next dense offsets, ONE stream entry for the batch's new events (id =
 * its last offset, fields k = their number and p = their records: all of
 * them as sent unless some were duplicates) with the retention cap
 * (MINID: entries wholly below the last maxlen offsets go), one HSET of
 * the new ids into the current bucket; a new topic gets its epoch (the
 * node lists it in herald:topics first: another slot).
 * The meta's low, the topic's first stored offset, is kept exact without
 * reading an entry: set to the batch's first offset when it starts the
 * stream; with a retention cap the boundaries list holds each entry's
 * LAST in order, and a trim pops those below MINID: low = the last popped
 * + 1 (offsets are dense). When the trim removed entries the list did not
 * hold (the cap was set later) low is dropped and topic state reads the
 * first entry instead, until a trim pops again. With
 * confirm it also raises the top and PUBLISHes the new events in one
 * message (redis.h). A Redis clock more than a bucket away from the
 * node's fails the call (HDCLOCK: 503). */
static const char pub_lua[] =
	"local m=KEYS[1]\n"
	"local h=redis.call('HMGET',m,'epoch','last')\n"
	"local epoch=h[1]\n"
	"local last=tonumber(h[2])\n"
	"local win=tonumber(ARGV[2])\n"
	"local maxlen=tonumber(ARGV[3])\n"
	"local n=(#ARGV-10)/2\n"
	"if not epoch then\n"
	" epoch=ARGV[4]\n"
	" last=0\n"
	" redis.call('HSET',m,'epoch',epoch,'created',ARGV[9],'last',0,'top',0)\n"
	"end\n"
	"local first=last\n"
	"local out=nil\n"
	"local cur,prv,now,bk,pre,sfx\n"
	"local seen={}\n"
	"local hs={}\n"
	"local function hit(d)\n"
	" if not d then return nil end\n"
	" local de,o,e=string.match(d,'^(.*):(%d+):(%d+)$')\n"
	" if de==epoch and tonumber(e)>now then return tonumber(o) end\n"
	" return nil\n"
	"end\n"
	"if win>0 then\n"
	" local tm=redis.call('TIME')\n"
	" now=tonumber(tm[1])*1000+math.floor(tonumber(tm[2])/1000)\n"
	" local c=math.floor(now/win)-tonumber(ARGV[8])+6\n"
	" if c<5 or c>7 then return redis.error_reply('HDCLOCK redis and node clocks a dedup window apart') end\n"
	" local ids={}\n"
	" for i=1,n do ids[i]=ARGV[9+2*i] end\n"
	" cur=redis.call('HMGET',KEYS[c],unpack(ids))\n"
	" prv=redis.call('HMGET',KEYS[c-1],unpack(ids))\n"
	" bk=KEYS[c]\n"
	" pre=epoch..':'\n"
	" sfx=':'..(now+win)\n"
	"end\n"
	"local new={}\n"
	"for i=1,n do\n"
	" local id=ARGV[9+2*i]\n"
	" local dup=nil\n"
	" if win>0 then dup=seen[id] or hit(cur[i]) or hit(prv[i]) end\n"
	" if dup then\n"
	"  if not out then\n"
	"   out={epoch}\n"
	"   for j=1,i-1 do out[2*j]=0 out[2*j+1]=first+j end\n"
	"  end\n"
	"  out[#out+1]=1\n"
	"  out[#out+1]=dup\n"
	" else\n"
	"  last=last+1\n"
	"  new[i]=last\n"
	"  if win>0 then\n"
	"   seen[id]=last\n"
	"   hs[#hs+1]=id\n"
	"   hs[#hs+1]=pre..last..sfx\n"
	"  end\n"
	"  if out then\n"
	"   out[#out+1]=0\n"
	"   out[#out+1]=last\n"
	"  end\n"
	" end\n"
	"end\n"
	"if last>first then\n"
	" local recs=ARGV[10]\n"
	" local ev={}\n"
	" if last-first<n or ARGV[6]=='1' then\n"
	"  local pos,keep=1,{}\n"
	"  for i=1,n do\n"
	"   local len=tonumber(ARGV[10+2*i])\n"
	"   if new[i] then\n"
	"    local r=string.sub(recs,pos,pos+len-1)\n"
	"    keep[#keep+1]=r\n"
	"    ev[#ev+1]=new[i]..' '..r\n"
	"   end\n"
	"   pos=pos+len\n"
	"  end\n"
	"  if last-first<n then recs=table.concat(keep) end\n"
	" end\n"
	" if ARGV[5]=='1' then\n"
	"  local n0=redis.call('XLEN',KEYS[2])\n"
	"  if maxlen>0 and last-maxlen>=1 then\n"
	"   local mid=last-maxlen+1\n"
	"   redis.call('XADD',KEYS[2],'MINID',mid..'-0',last..'-0','k',last-first,'p',recs)\n"
	"   local gone=n0+1-redis.call('XLEN',KEYS[2])\n"
	"   local popped,lp=0,nil\n"
	"   while true do\n"
	"    local b=redis.call('LINDEX',KEYS[3],0)\n"
	"    if not b or tonumber(b)>=mid then break end\n"
	"    lp=redis.call('LPOP',KEYS[3])\n"
	"    popped=popped+1\n"
	"   end\n"
	"   if gone>0 and popped==gone then redis.call('HSET',m,'low',tonumber(lp)+1)\n"
	"   elseif gone>0 or popped>0 then redis.call('HDEL',m,'low') end\n"
	"  else\n"
	"   redis.call('XADD',KEYS[2],last..'-0','k',last-first,'p',recs)\n"
	"  end\n"
	"  if maxlen>0 then redis.call('RPUSH',KEYS[3],last) end\n"
	"  if n0==0 then redis.call('HSET',m,'low',first+1) end\n"
	" end\n"
	" if win>0 then\n"
	"  redis.call('HSET',bk,unpack(hs))\n"
	"  redis.call('PEXPIRE',bk,2*win)\n"
	" end\n"
	" redis.call('HSET',m,'last',last)\n"
	" if ARGV[6]=='1' then\n"
	"  local prev=redis.call('HGET',m,'top')\n"
	"  redis.call('HSET',m,'top',last)\n"
	"  redis.call('PUBLISH',ARGV[7],\n"
	"   prev..'\\n'..epoch..'\\n'..last..'\\n'..ARGV[1]..'\\n'..#ev..'\\n'..table.concat(ev))\n"
	" end\n"
	"end\n"
	"if not out then return {epoch,first+1} end\n"
	"return out\n";

/* KEYS: meta. ARGV: last offset, epoch, channel, message without its
 * "PREV\n" (redis.h), events 1/0. One call per topic and batch: raises the
 * top to the batch's last offset of the topic and publishes its events in
 * one message (or, with none, a notice when the top rose).
 * Its effects go to the replicas only, not to the AOF: a write to the AOF
 * would hold the reply (and so the 201) for another fsync with appendfsync
 * always; the publish path writes the tops to the AOF with its next batch
 * (tops_lua). */
static const char confirm_lua[] =
	"local h=redis.call('HMGET',KEYS[1],'epoch','top')\n"
	"if h[1]~=ARGV[2] then return 0 end\n"
	"redis.set_repl(redis.REPL_REPLICA)\n"
	"local off=tonumber(ARGV[1])\n"
	"local top=tonumber(h[2])\n"
	"if off>top then redis.call('HSET',KEYS[1],'top',off) end\n"
	"if ARGV[5]=='1' or off>top then redis.call('PUBLISH',ARGV[3],top..'\\n'..ARGV[4]) end\n"
	"return 1\n";

/* KEYS: topic meta keys: writes each one's current top to the AOF only
 * (the publish path's tops_flush, redis_publish.c). */
static const char tops_lua[] =
	"redis.set_repl(redis.REPL_AOF)\n"
	"for _,m in ipairs(KEYS) do\n"
	" local t=redis.call('HGET',m,'top')\n"
	" if t then redis.call('HSET',m,'top',t) end\n"
	"end\n"
	"return 1\n";

/* The state of topic NAME (meta m, stream s): {epoch, top, low, created,
 * count}. A stream entry holds the events LAST-K+1..LAST (id LAST, fields
 * k = K then p = their records); offsets are dense and trimmed only from
 * the front, so count = top - low + 1. The first stored offset is the
 * meta's low (pub_lua) while the stream exists; only without it is the
 * first entry read (whole: up to a batch of events). */
#define TOPIC_STATE_LUA                                                                            \
	"local function state(m,s)\n"                                                              \
	" local h=redis.call('HMGET',m,'epoch','top','created','low')\n"                           \
	" if not h[1] then return nil end\n"                                                       \
	" local top=tonumber(h[2])\n"                                                              \
	" local low=top+1\n"                                                                       \
	" local o=tonumber(h[4])\n"                                                                \
	" if o then\n"                                                                             \
	"  if o<low and redis.call('EXISTS',s)==1 then low=o end\n"                                \
	" else\n"                                                                                  \
	"  local f=redis.call('XRANGE',s,'-','+','COUNT',1)\n"                                     \
	"  if f[1] then\n"                                                                         \
	"   o=tonumber(string.match(f[1][1],'^%d+'))-tonumber(f[1][2][2])+1\n"                     \
	"   if o<low then low=o end\n"                                                             \
	"  end\n"                                                                                  \
	" end\n"                                                                                   \
	" return {h[1],top,low,tonumber(h[3]),top-low+1}\n"                                        \
	"end\n"

/* KEYS: meta, stream. ARGV: after, limit (events).
 * → {0} or {1, epoch, top, low, created, count, events}, each event
 * {"OFFSET-0", {j, JSON, t, MS, x, MS}} for offsets after+1.. up to the
 * top: the entries from after+1 on, a few at a time, skipping the events
 * of the first one at or below after. */
static const char read_lua[] =
	TOPIC_STATE_LUA
	"local st=state(KEYS[1],KEYS[2])\n"
	"if not st then return {0} end\n"
	"local after=tonumber(ARGV[1])\n"
	"local lim=tonumber(ARGV[2])\n"
	"local top=st[2]\n"
	"local ev={}\n"
	"local from=after+1\n"
	"local o=from\n"
	"while #ev<lim and from<=top do\n"
	" local es=redis.call('XRANGE',KEYS[2],from..'-0','+','COUNT',math.min(lim-#ev,16))\n"
	" if #es==0 then break end\n"
	" for _,e in ipairs(es) do\n"
	"  local l=tonumber(string.match(e[1],'^%d+'))\n"
	"  local k=tonumber(e[2][2])\n"
	"  local b=e[2][4]\n"
	"  local pos=1\n"
	"  o=l-k+1\n"
	"  for q=1,k do\n"
	"   if o>top or #ev>=lim then break end\n"
	"   local _,hd,t,x,len=string.find(b,'^(%-?%d+) (%-?%d+) (%d+)\\n',pos)\n"
	"   if not hd then break end\n"
	"   pos=hd+1+tonumber(len)\n"
	"   if o>after then ev[#ev+1]={o..'-0',{'j',string.sub(b,hd+1,pos-1),'t',t,'x',x}} end\n"
	"   o=o+1\n"
	"  end\n"
	"  from=l+1\n"
	"  if o>top or #ev>=lim then break end\n"
	" end\n"
	"end\n"
	"return {1,st[1],st[2],st[3],st[4],st[5],ev}\n";

/* KEYS: meta, stream, boundaries → 0 (absent) or 1. (The node unlists
 * the topic from herald:topics: another slot.) */
static const char del_lua[] =
	"if redis.call('EXISTS',KEYS[1])==0 then return 0 end\n"
	"redis.call('DEL',KEYS[1],KEYS[2],KEYS[3])\n"
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

/* The heal of a primary's life (redis_heal.c). KEYS: meta. ARGV: mode
 * ('check' or 'raise'), epoch, last, channel, message without its
 * "PREV\n" (redis.h: a head with no events, the confirm's notice).
 * check → {epoch, last} when the meta's last is above its top (and then
 * rewrites the top unchanged: a write, so that a WAIT on the same
 * connection after it covers every write before it, whoever made them),
 * else 0. raise → 1 when the epoch is still ARGV[2] and the top was below
 * ARGV[3] (≤ last): the top rises to it, replicated AND written to the
 * AOF (no set_repl), and the notice is PUBLISHed so that following nodes
 * read the range; else 0 (never lowered). */
static const char heal_lua[] =
	"local h=redis.call('HMGET',KEYS[1],'epoch','top','last')\n"
	"if not h[1] then return 0 end\n"
	"local top=tonumber(h[2])\n"
	"local last=tonumber(h[3])\n"
	"if not top or not last then return 0 end\n"
	"if ARGV[1]=='check' then\n"
	" if last<=top then return 0 end\n"
	" redis.call('HSET',KEYS[1],'top',h[2])\n"
	" return {h[1],h[3]}\n"
	"end\n"
	"if h[1]~=ARGV[2] then return 0 end\n"
	"local off=tonumber(ARGV[3])\n"
	"if not off or off<=top or off>last then return 0 end\n"
	"redis.call('HSET',KEYS[1],'top',off)\n"
	"redis.call('PUBLISH',ARGV[4],h[2]..'\\n'..ARGV[5])\n"
	"return 1\n";

/* The heal's claim and lease (redis_heal.c). KEYS: the shard's HEAL_KEY, a
 * hash {run, after[, done]} (the life RUNID, the cursor: the last topic name
 * healed, done once finished), and HEAL_LEASE_KEY, "RUNID NODE" with a PX
 * expiry while NODE heals. ARGV: run_id, node, mode ('claim', 'page' or
 * 'done'), cursor, lease ms.
 * claim → {after} (heal from after: a new life, an unfinished life whose
 * lease expired, or this node's own), 0 (this life was healed) or 1
 * (another node holds the lease: try again once it may have expired).
 * page → 1 (the cursor saved and the lease renewed) or 0 (the lease is
 * another node's, or the life changed: stop). done → 1 (marked) or 0. */
static const char hclaim_lua[] =
	"if redis.call('TYPE',KEYS[1]).ok~='hash' then redis.call('DEL',KEYS[1]) end\n"
	"local run=redis.call('HGET',KEYS[1],'run')\n"
	"local mine=ARGV[1]..' '..ARGV[2]\n"
	"local l=redis.call('GET',KEYS[2])\n"
	"if l and string.sub(l,1,#ARGV[1]+1)~=ARGV[1]..' ' then l=nil end\n"
	"if ARGV[3]=='claim' then\n"
	" if run~=ARGV[1] then\n"
	"  redis.call('DEL',KEYS[1])\n"
	"  redis.call('HSET',KEYS[1],'run',ARGV[1],'after','')\n"
	" elseif redis.call('HEXISTS',KEYS[1],'done')==1 then return 0\n"
	" elseif l and l~=mine then return 1 end\n"
	" redis.call('SET',KEYS[2],mine,'PX',ARGV[5])\n"
	" return {redis.call('HGET',KEYS[1],'after') or ''}\n"
	"end\n"
	"if run~=ARGV[1] or (l and l~=mine) then return 0 end\n"
	"if ARGV[3]=='done' then\n"
	" redis.call('HSET',KEYS[1],'done','1')\n"
	" redis.call('DEL',KEYS[2])\n"
	" return 1\n"
	"end\n"
	"redis.call('HSET',KEYS[1],'after',ARGV[4])\n"
	"redis.call('SET',KEYS[2],mine,'PX',ARGV[5])\n"
	"return 1\n";

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the Redis Cluster
 * key hash (its specification, "Keys distribution model"). */
static unsigned crc16(const char *p, size_t n)
{
	unsigned crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (unsigned)(unsigned char)p[i] << 8;
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
	}
	return crc;
}

unsigned hd_redis_scripts_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open) {
		size_t at = (size_t)(open - key) + 1;
		const char *close = memchr(open + 1, '}', len - at);
		if (close && close > open + 1)
			return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
	}
	return crc16(key, len) & 16383;
}

bool hd_redis_scripts_one_slot(const char *const *keys, const size_t *lens, int n)
{
	for (int i = 1; i < n; i++)
		if (hd_redis_scripts_slot(keys[i], lens[i]) != hd_redis_scripts_slot(keys[0], lens[0]))
			return false;
	return true;
}

const char *const hd_redis_scripts_text[S_COUNT] = {
	pub_lua, confirm_lua, read_lua, del_lua, rput_lua, rdel_lua, rlist_lua,
	own_lua, unown_lua,
	[S_GLEASE] = hd_redis_groups_lua,
	[S_OWNB] = ownb_lua,
	[S_TOPS] = tops_lua,
	[S_HEAL] = heal_lua,
	[S_HCLAIM] = hclaim_lua,
};