// console_driver.js — drives herald's admin console (/ui) in Debian's
// headless Chromium with puppeteer-core, for tests/e2e/test_console.py.
//
// Input: one JSON object in the environment variable CONSOLE_CFG:
//   {base, key, bad_key, topic, sub_id, user, shots, chromium}
// Output: one JSON line on stdout with what it saw:
//   {ok, step, error, tail_ms, tail_after_ack_ms, console: [{step, type, text, url}],
//    page_errors: [...], shots: [...]}
// Every wait has a bounded timeout; a failed step sets ok=false, names the
// step and still reports what the console logged.
'use strict';
const puppeteer = require('puppeteer-core');
const path = require('path');

const cfg = JSON.parse(process.env.CONSOLE_CFG);
const WAIT = 10000;
const out = { ok: false, step: '', console: [], page_errors: [], shots: [] };

async function api(method, p, body, type) {
  const headers = { Authorization: 'Bearer ' + cfg.key };
  if (body !== undefined) headers['Content-Type'] = type || 'application/json';
  const r = await fetch(cfg.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function publish(id) {
  return api('POST', '/v1/topics/' + encodeURIComponent(cfg.topic) + '/events',
    { specversion: '1.0', id, source: '/console-test', type: 'com.example.console', data: { n: id } },
    'application/cloudevents+json');
}

async function shot(page, name) {
  const file = path.join(cfg.shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  out.shots.push(file);
}

// Waits until the tail table shows a row with the event id.
function tailShows(page, id, timeout) {
  return page.waitForFunction((want) => [...document.querySelectorAll('#tail tbody tr td:nth-child(3)')]
    .some((td) => td.textContent === want), { timeout, polling: 'mutation' }, id);
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions'],
    userDataDir: path.join(cfg.shots, 'profile'),
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    page.on('console', (m) => out.console.push({ step: out.step, type: m.type(), text: m.text(), url: (m.location() || {}).url || '' }));
    page.on('pageerror', (e) => out.page_errors.push({ step: out.step, text: String(e) }));

    out.step = 'load';
    await page.goto(cfg.base + '/ui', { waitUntil: 'load', timeout: WAIT });
    await page.waitForSelector('#signin-form', { visible: true, timeout: WAIT });

    out.step = 'wrong-key';
    await page.type('#key', cfg.bad_key);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#signin-error', { visible: true, timeout: WAIT });
    out.wrong_key_message = await page.$eval('#signin-error', (e) => e.textContent);
    out.signed_in_after_wrong_key = await page.$eval('#nav', (e) => !e.hidden);
    await shot(page, 'wrong-key');

    out.step = 'sign-in';
    await page.$eval('#key', (e) => { e.value = ''; });
    await page.type('#key', cfg.key);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#nav', { visible: true, timeout: WAIT });
    out.stored_key = await page.evaluate(() => sessionStorage.getItem('herald.admin-key') !== null);
    // Two polls make a rate: wait for a number, not the placeholder.
    await page.waitForFunction(() => /\d/.test(document.getElementById('ov-pub').textContent), { timeout: WAIT });
    out.overview = await page.$eval('#ov-node', (t) => t.textContent);
    await shot(page, 'overview');

    out.step = 'topics';
    await publish('first');
    await page.goto(cfg.base + '/ui#topics', { timeout: WAIT });
    await page.waitForFunction((t) => [...document.querySelectorAll('#topic-list a')].some((a) => a.textContent === t),
      { timeout: WAIT }, cfg.topic);
    await shot(page, 'topics');

    out.step = 'topic';
    await page.evaluate((t) => [...document.querySelectorAll('#topic-list a')].find((a) => a.textContent === t).click(), cfg.topic);
    await page.waitForFunction(() => document.getElementById('t-info').rows.length > 0, { timeout: WAIT });
    out.topic_info = await page.$eval('#t-info', (t) => t.textContent);

    out.step = 'tail';
    await page.click('#tail-start');
    await page.waitForFunction(() => document.getElementById('tail-state').textContent.startsWith('live'), { timeout: WAIT });
    const t0 = Date.now();
    await publish('live-1');
    const tAck = Date.now();
    await tailShows(page, 'live-1', WAIT);
    out.tail_ms = Date.now() - t0;
    out.tail_after_ack_ms = Date.now() - tAck;

    out.step = 'tail-pause';
    await page.click('#tail-pause');
    await page.waitForFunction(() => document.getElementById('tail-state').textContent.startsWith('paused'), { timeout: WAIT });
    await publish('while-paused');
    out.paused_state = await page.$eval('#tail-state', (e) => e.textContent);
    await page.click('#tail-resume');
    // Resumed after the last offset seen: the event published meanwhile comes.
    await tailShows(page, 'while-paused', WAIT);
    out.tail_rows = await page.$$eval('#tail tbody tr td:nth-child(3)', (tds) => tds.map((t) => t.textContent));

    out.step = 'tail-from-offset';
    await page.click('#tail-pause');
    await page.$eval('#tail-after', (e) => { e.value = '0'; });
    await page.click('#tail-start');
    await tailShows(page, 'first', WAIT);

    out.step = 'publish-form';
    await page.$eval('#t-type', (e) => { e.value = 'com.example.fromconsole'; });
    await page.click('#t-publish button[type=submit]');
    await page.waitForFunction(() => /stored at offset \d+/.test(document.getElementById('t-published').textContent), { timeout: WAIT });
    out.published = await page.$eval('#t-published', (e) => e.textContent);
    await page.waitForFunction(() => [...document.querySelectorAll('#tail tbody tr td:nth-child(2)')]
      .some((td) => td.textContent === 'com.example.fromconsole'), { timeout: WAIT });
    await shot(page, 'topic');

    out.step = 'consumers';
    await page.goto(cfg.base + '/ui#consumers', { timeout: WAIT });
    const row = `#c-hooks tr[data-id="${cfg.sub_id}"]`;
    await page.waitForSelector(row + ' button[data-act=pause]', { visible: true, timeout: WAIT });
    await page.waitForFunction(() => document.querySelectorAll('#c-groups tbody tr td').length > 1, { timeout: WAIT });
    out.groups = await page.$eval('#c-groups tbody', (t) => t.textContent);
    await page.click(row + ' button[data-act=pause]');
    await page.waitForSelector(row + ' button[data-act=resume]', { visible: true, timeout: WAIT });
    out.sub_state = (await api('GET', '/v1/subscriptions/' + cfg.sub_id)).state;
    out.row_state = await page.$eval(row + ' td:nth-child(4)', (e) => e.textContent);
    await shot(page, 'consumers');

    out.step = 'users';
    await page.goto(cfg.base + '/ui#users/' + encodeURIComponent(cfg.user), { timeout: WAIT });
    await page.waitForSelector('#user-detail', { visible: true, timeout: WAIT });
    await page.waitForFunction(() => document.querySelectorAll('#u-conns tbody tr td').length > 1, { timeout: WAIT });
    out.user_conns = await page.$eval('#u-conns tbody', (t) => t.textContent);
    await shot(page, 'users');

    out.step = 'done';
    out.ok = true;
  } catch (e) {
    out.error = String(e && e.stack || e);
  } finally {
    await browser.close();
  }
}

main().then(() => {
  process.stdout.write(JSON.stringify(out) + '\n');
}, (e) => {
  out.error = String(e);
  process.stdout.write(JSON.stringify(out) + '\n');
});
