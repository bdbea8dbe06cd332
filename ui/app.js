/* app.js — herald's admin console (docs/console.md). Plain JavaScript, no
 * framework, no build step; served by herald from the binary at /ui.
 *
 * Everything shown comes from herald's public REST API, called with the
 * admin key the operator signed in with. The key lives in this tab's
 * sessionStorage and goes in the Authorization header of every call, never
 * in a URL: the live tail reads the SSE stream with fetch() (which can send
 * headers) instead of EventSource (which cannot).
 *
 * Cost while open: the overview polls GET /v1/stats every 2 s, only while
 * the overview is on screen and the tab is visible; the other pages load
 * once when shown (and after an action); the tail holds one SSE stream
 * while it runs. Text is always set with textContent, never as HTML.
 */
'use strict';

const KEY_STORE = 'herald.admin-key';
const POLL_MS = 2000;
const CHART_POINTS = 60;
const TAIL_ROWS_MAX = 200;

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORE) || '',
  page: '',
  poll: null,
  last: null,          // the previous stats sample {t, pub, del}
  pubRates: [],
  delRates: [],
  topicNext: null,
  topic: '',
  tail: null,          // {ctrl, after, paused}
};

/* ---- the API ---------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, contentType) {
  const headers = { Authorization: 'Bearer ' + state.key };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = contentType || 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'herald is not reachable (' + e.message + ')');
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!r.ok) {
    const err = json && json.error ? json.error : { code: String(r.status), message: text || r.statusText };
    throw new ApiError(r.status, err.code, err.message);
  }
  return json;
}

const enc = encodeURIComponent;

/* ---- small DOM helpers ------------------------------------------------ */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

function td(v, cls) { return el('td', { class: cls || '', text: v === undefined || v === null ? '–' : String(v) }); }

function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: String(cols), class: 'muted', text: empty })));
}

function kv(table, pairs) {
  table.replaceChildren(...pairs.map(([k, v]) => el('tr', {}, td(k), td(v))));
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + ' ' + u[i];
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
}

function rate(v) { return v < 10 ? v.toFixed(1) : Math.round(v).toString(); }

function banner(msg) {
  const b = $('banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

/* Runs an async step; an error goes to the banner (a refused key signs out). */
async function guard(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut('Signed out: ' + e.message);
      return;
    }
    banner(e.message || String(e));
  }
}

/* ---- sign-in ---------------------------------------------------------- */

async function signIn(key) {
  state.key = key;
  const err = $('signin-error');
  err.hidden = true;
  try {
    const s = await api('GET', '/v1/stats');
    sessionStorage.setItem(KEY_STORE, key);
    $('whoami').textContent = s.node + ' · herald ' + s.version;
    $('signin').hidden = true;
    $('nav').hidden = false;
    $('signout').hidden = false;
    banner('');
    route();
  } catch (e) {
    state.key = '';
    sessionStorage.removeItem(KEY_STORE);
    const why = e.status === 401 ? 'the key is unknown, expired or revoked'
      : e.status === 403 ? 'the key has no admin scope' : e.message;
    err.textContent = 'Sign-in failed: ' + why + (e.code ? ' (' + e.code + ')' : '');
    err.hidden = false;
  }
}

function signOut(msg) {
  stopPoll();
  tailStop();
  state.key = '';
  sessionStorage.removeItem(KEY_STORE);
  for (const p of document.querySelectorAll('.page')) p.hidden = true;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('whoami').textContent = '';
  $('signin').hidden = false;
  const err = $('signin-error');
  err.textContent = msg || '';
  err.hidden = !msg;
  banner('');
}

/* ---- pages ------------------------------------------------------------ */

function show(id) {
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== id;
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', id === 'page-' + a.dataset.page || (id === 'page-topic' && a.dataset.page === 'topics'));
}

function route() {
  if (!state.key) return;
  const h = decodeURIComponent(location.hash.slice(1)) || 'overview';
  const [page, ...rest] = h.split('/');
  const arg = rest.join('/');
  stopPoll();
  if (page !== 'topic') tailStop();
  banner('');
  state.page = page;
  if (page === 'topics') { show('page-topics'); guard(() => loadTopics(false)); }
  else if (page === 'topic' && arg) { show('page-topic'); guard(() => loadTopic(arg)); }
  else if (page === 'consumers') { show('page-consumers'); guard(loadConsumers); }
  else if (page === 'users') { show('page-users'); guard(() => loadUsers(arg)); }
  else { show('page-overview'); startPoll(); }
}

/* Overview: one GET /v1/stats every POLL_MS while it is on screen. */
function startPoll() {
  stopPoll();
  const tick = () => { if (document.visibilityState === 'visible') guard(pollStats); };
  tick();
  state.poll = setInterval(tick, POLL_MS);
}

function stopPoll() {
  if (state.poll) clearInterval(state.poll);
  state.poll = null;
  state.last = null;
}

async function pollStats() {
  const s = await api('GET', '/v1/stats');
  const now = performance.now();
  if (state.last) {
    const dt = (now - state.last.t) / 1000;
    const push = (arr, v) => { arr.push(Math.max(0, v)); if (arr.length > CHART_POINTS) arr.shift(); };
    push(state.pubRates, (s.publishes_total - state.last.pub) / dt);
    push(state.delRates, (s.deliveries_total - state.last.del) / dt);
    $('ov-pub').textContent = rate(state.pubRates[state.pubRates.length - 1]);
    $('ov-del').textContent = rate(state.delRates[state.delRates.length - 1]);
    HdChart.sparkline($('ov-pub-chart'), state.pubRates);
    HdChart.sparkline($('ov-del-chart'), state.delRates);
  }
  state.last = { t: now, pub: s.publishes_total, del: s.deliveries_total };
  kv($('ov-conns'), [
    ['WebSocket', s.connections.websocket], ['SSE', s.connections.sse],
    ['long-poll waiting', s.connections.longpoll], ['HTTP connections', s.connections.open],
    ['users online', s.users_online],
  ]);
  kv($('ov-node'), [
    ['version', s.version], ['node', s.node], ['uptime', duration(s.uptime_s)],
    ['topics', s.topics], ['store size', bytes(s.store_bytes)],
    ['published since start', s.publishes_total], ['webhooks', s.webhooks.subscriptions],
  ]);
}

/* Topics: the list, a prefix search, pages of 100. */
async function loadTopics(more) {
  const prefix = $('topic-prefix').value.trim();
  let q = '?limit=100' + (prefix ? '&prefix=' + enc(prefix) : '');
  if (more && state.topicNext) q += '&after=' + enc(state.topicNext);
  const r = await api('GET', '/v1/topics' + q);
  const rows = r.topics.map((t) => el('tr', {},
    el('td', {}, el('a', { href: '#topic/' + enc(t.name), class: 'mono', text: t.name })),
    td(t.first), td(t.last), td(t.count), td(bytes(t.bytes)), td(t.created)));
  const tbody = $('topic-list').tBodies[0];
  if (more) tbody.append(...rows);
  else fill(tbody, rows, prefix ? 'No topic starts with ' + prefix : 'No topics yet', 6);
  state.topicNext = r.next;
  $('topic-more').hidden = !r.next;
}

/* One topic: offsets, policy, consumers, the publish form, the tail. */
async function loadTopic(name) {
  if (state.topic !== name) {
    tailStop();
    $('tail').tBodies[0].replaceChildren();
    $('tail-after').value = '';
    $('t-published').textContent = '';
  }
  state.topic = name;
  $('t-name').textContent = name;
  const t = await api('GET', '/v1/topics/' + enc(name)).catch((e) => {
    if (e.status === 404) return null;
    throw e;
  });
  const p = await api('GET', '/v1/topics/' + enc(name) + '/policy');
  const retention = [p.retention_max_age_ms ? 'age ' + duration(Math.round(p.retention_max_age_ms / 1000)) : null,
    p.retention_max_count ? 'count ' + p.retention_max_count : null].filter(Boolean).join(', ') || 'keep forever';
  kv($('t-info'), t ? [
    ['epoch', t.epoch], ['first', t.first], ['last', t.last], ['events', t.count],
    ['bytes', bytes(t.bytes)], ['created', t.created], ['retention', retention],
    ['namespace', p.namespace || '(none)'],
  ] : [['state', 'no events yet (created by its first publish)'], ['retention', retention]]);
  const [pres, groups, hooks] = await Promise.all([
    api('GET', '/v1/topics/' + enc(name) + '/presence'),
    api('GET', '/v1/groups'),
    api('GET', '/v1/subscriptions?topic=' + enc(name)),
  ]);
  kv($('t-subs'), [
    ['live subscribers', pres.subscribers], ['users', pres.users.length],
    ['pull groups', groups.groups.filter((g) => g.topic === name).map((g) => g.group).join(', ') || 'none'],
    ['webhooks', hooks.count],
  ]);
}

async function publishTest(ev) {
  ev.preventDefault();
  let data;
  const raw = $('t-data').value.trim();
  try { data = raw ? JSON.parse(raw) : null; } catch (e) { banner('data is not JSON: ' + e.message); return; }
  const ce = { specversion: '1.0', id: crypto.randomUUID(), source: '/herald/console', type: $('t-type').value.trim() || 'com.example.test' };
  if (data !== null) { ce.datacontenttype = 'application/json'; ce.data = data; }
  await guard(async () => {
    const r = await api('POST', '/v1/topics/' + enc(state.topic) + '/events', ce, 'application/cloudevents+json');
    $('t-published').textContent = 'stored at offset ' + r.offset;
    await loadTopic(state.topic);
  });
}

/* ---- the live tail: SSE read with fetch(), so the key stays a header -- */

function tailUi(text) {
  const t = state.tail;
  $('tail-state').textContent = text;
  $('tail-start').textContent = t ? 'Restart' : 'Start';
  $('tail-pause').disabled = !t || t.paused;
  $('tail-resume').disabled = !t || !t.paused;
}

function tailRow(offset, type, id, data) {
  const tbody = $('tail').tBodies[0];
  tbody.prepend(el('tr', {}, td(offset), td(type), td(id), td(data, 'data')));
  while (tbody.rows.length > TAIL_ROWS_MAX) tbody.deleteRow(-1);
}

function tailBlock(t, block) {
  let id = null, event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line[0] === ':') continue;
    const i = line.indexOf(':');
    const f = i < 0 ? line : line.slice(0, i);
    const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (f === 'id') id = v;
    else if (f === 'event') event = v;
    else if (f === 'data') data.push(v);
  }
  if (!data.length) return;
  const body = data.join('\n');
  if (id !== null && /^\d+$/.test(id)) t.after = Number(id);
  if (event === 'reset' || event === 'expired' || event === 'revoked') {
    tailRow(id || '', event, '', body);
    return;
  }
  let e = null;
  try { e = JSON.parse(body); } catch (x) { e = null; }
  tailRow(id || '', e ? e.type : event, e ? e.id : '', e && 'data' in e ? JSON.stringify(e.data) : body);
}

async function tailRun(t) {
  const q = t.after === null ? '' : '?after=' + t.after;
  let failures = 0;
  while (!t.ctrl.signal.aborted) {
    try {
      const r = await fetch('/v1/topics/' + enc(t.topic) + '/sse' + (t.after === null ? q : '?after=' + t.after),
        { headers: { Authorization: 'Bearer ' + state.key, Accept: 'text/event-stream' }, signal: t.ctrl.signal });
      if (!r.ok) {
        const j = await r.json().catch(() => null);
        throw new ApiError(r.status, j && j.error ? j.error.code : '', j && j.error ? j.error.message : r.statusText);
      }
      failures = 0;
      tailUi('live' + (t.after === null ? ' (from the tail)' : ' after ' + t.after));
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          tailBlock(t, buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (t.ctrl.signal.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
        banner('Live tail: ' + e.message);
        tailUi('stopped');
        return;
      }
    }
    if (t.ctrl.signal.aborted) return;
    // The stream ended (herald restarted, a proxy timed out): reconnect
    // from the last offset seen, waiting longer after each failure.
    failures++;
    tailUi('reconnecting…');
    await new Promise((res) => setTimeout(res, Math.min(1000 * failures, 10000)));
  }
}

function tailStart() {
  tailStop();
  const v = $('tail-after').value.trim();
  const t = { topic: state.topic, after: v === '' ? null : Number(v), paused: false, ctrl: new AbortController() };
  state.tail = t;
  $('tail').tBodies[0].replaceChildren();
  tailUi('connecting…');
  tailRun(t);
}

function tailPause() {
  const t = state.tail;
  if (!t || t.paused) return;
  t.paused = true;
  t.ctrl.abort();
  tailUi('paused' + (t.after === null ? '' : ' after ' + t.after));
}

function tailResume() {
  const t = state.tail;
  if (!t || !t.paused) return;
  t.paused = false;
  t.ctrl = new AbortController();
  tailUi('connecting…');
  tailRun(t);
}

function tailStop() {
  if (state.tail) state.tail.ctrl.abort();
  state.tail = null;
  if ($('tail-state')) tailUi('stopped');
}

/* ---- consumers -------------------------------------------------------- */

async function loadConsumers() {
  const [groups, hooks, push] = await Promise.all([
    api('GET', '/v1/groups'),
    api('GET', '/v1/subscriptions'),
    api('GET', '/v1/push/subscriptions').catch((e) => { if (e.status === 404) return null; throw e; }),
  ]);
  // A group over a topic pattern is listed with its counts summed over its
  // topics; it has no one position and its "topic" is not a topic page.
  const infos = await Promise.all(groups.groups.map((g) => g.pattern ? null :
    api('GET', '/v1/topics/' + enc(g.topic) + '/groups/' + enc(g.group)).catch(() => null)));
  const gl = groups.groups.map((g, i) => ({ ...g, info: g.pattern ? g : infos[i] || {} }))
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.group.localeCompare(b.group));
  fill($('c-groups').tBodies[0], gl.map((g) => el('tr', {},
    g.pattern ? el('td', { class: 'mono', text: g.pattern + ' (pattern, ' + g.topics_count + ' topics)' })
      : el('td', {}, el('a', { href: '#topic/' + enc(g.topic), class: 'mono', text: g.topic })),
    td(g.group), td(g.info.position), td(g.info.lag), td(g.info.pending),
    td(g.info.redeliveries), td(g.info.dead_letters))), 'No pull groups', 7);

  fill($('c-hooks').tBodies[0], hooks.subscriptions.map((s) => {
    const from = el('input', { type: 'number', min: '0', class: 'num', placeholder: 'from offset', 'aria-label': 'replay from' });
    const act = (verb, q) => () => guard(async () => {
      await api('POST', '/v1/subscriptions/' + enc(s.id) + '/' + verb + (q ? q() : ''));
      await loadConsumers();
    });
    const lastErr = s.last_failure ? (s.last_failure.error || 'status ' + s.last_failure.status) : null;
    return el('tr', { 'data-id': s.id },
      td(s.id, 'mono'), td(s.topic, 'mono'), td(s.url, 'mono'),
      el('td', { class: 'state-' + s.state, text: s.state + (s.reason ? ' (' + s.reason + ')' : '') }),
      td(s.lag), td(s.delivered), td(s.failed_attempts), td(lastErr),
      el('td', {},
        s.state === 'active'
          ? el('button', { type: 'button', class: 'small', 'data-act': 'pause', onclick: act('pause') }, 'Pause')
          : el('button', { type: 'button', class: 'small', 'data-act': 'resume', onclick: act('resume') }, 'Resume'),
        ' ', from, ' ',
        el('button', { type: 'button', class: 'small', 'data-act': 'replay',
          onclick: act('replay', () => '?from=' + enc(from.value || '0')) }, 'Replay'),
        ' ',
        el('button', { type: 'button', class: 'small', 'data-act': 'attempts', onclick: () => guard(() => loadAttempts(s.id)) }, 'Attempts')));
  }), 'No webhook subscriptions', 9);

  $('c-push-none').hidden = push !== null;
  $('c-push').hidden = push === null;
  if (push) {
    fill($('c-push').tBodies[0], push.subscriptions.map((s) => {
      const act = (verb) => () => guard(async () => {
        await api('POST', '/v1/push/subscriptions/' + enc(s.id) + '/' + verb);
        await loadConsumers();
      });
      return el('tr', {}, td(s.id, 'mono'), td(s.topic, 'mono'), td(s.to),
        el('td', { class: 'state-' + s.state, text: s.state }), td(s.sent), td(s.failed), td(s.dead_lettered),
        el('td', {}, s.state === 'active'
          ? el('button', { type: 'button', class: 'small', onclick: act('pause') }, 'Pause')
          : el('button', { type: 'button', class: 'small', onclick: act('resume') }, 'Resume')));
    }), 'No push subscriptions', 8);
  }
}

async function loadAttempts(id) {
  const r = await api('GET', '/v1/subscriptions/' + enc(id) + '/attempts?limit=20');
  $('c-attempts').hidden = false;
  $('c-attempts-id').textContent = id;
  fill($('c-attempts-list').tBodies[0], r.attempts.map((a) => el('tr', {},
    td(a.time), td(a.offset), td(a.attempt), td(a.status), td(a.error))), 'No attempts yet', 5);
}

/* ---- users ------------------------------------------------------------ */

async function loadUsers(user) {
  const s = await api('GET', '/v1/stats');
  $('u-online').textContent = s.users_online;
  if (!user) { $('user-detail').hidden = true; return; }
  $('user-id').value = user;
  const u = enc(user);
  const [conns, devices, cursors] = await Promise.all([
    api('GET', '/v1/users/' + u + '/connections'),
    api('GET', '/v1/users/' + u + '/devices').catch((e) => { if (e.status === 404) return null; throw e; }),
    api('GET', '/v1/users/' + u + '/cursors'),
  ]);
  $('user-detail').hidden = false;
  $('u-name').textContent = user;
  fill($('u-conns').tBodies[0], conns.connections.map((c) => el('tr', {},
    td(c.node), td(c.transport), td(c.since), td(c.remote, 'mono'), td((c.topics || []).join(' '), 'mono'))),
  'No live connection on this node', 5);
  $('u-devices-none').hidden = devices !== null;
  $('u-devices-none').textContent = devices ? '' : 'Push is not configured on this node.';
  $('u-devices').hidden = devices === null;
  if (devices) {
    fill($('u-devices').tBodies[0], devices.devices.map((d) => el('tr', {},
      td(d.device, 'mono'), td(d.platform), el('td', { class: 'state-' + d.state, text: d.state }),
      td(d.registered || d.created))), 'No devices', 4);
  }
  fill($('u-cursors').tBodies[0], cursors.cursors.map((c) => el('tr', {},
    td(c.name), td(c.topic, 'mono'), td(c.offset), td(c.updated))), 'No cursors', 4);
}

/* ---- wiring ----------------------------------------------------------- */

window.addEventListener('error', (e) => banner('Console error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => banner('Console error: ' + (e.reason && e.reason.message || e.reason)));
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => {
  if (state.page === 'overview' && document.visibilityState === 'visible' && state.key) startPoll();
});
$('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('key').value.trim()); });
$('signout').addEventListener('click', () => signOut(''));
$('topic-search').addEventListener('submit', (e) => { e.preventDefault(); guard(() => loadTopics(false)); });
$('topic-more').addEventListener('click', () => guard(() => loadTopics(true)));
$('t-publish').addEventListener('submit', publishTest);
$('tail-start').addEventListener('click', tailStart);
$('tail-pause').addEventListener('click', tailPause);
$('tail-resume').addEventListener('click', tailResume);
$('user-search').addEventListener('submit', (e) => {
  e.preventDefault();
  const u = $('user-id').value.trim();
  if (u) location.hash = '#users/' + enc(u);
});

if (state.key) signIn(state.key);
