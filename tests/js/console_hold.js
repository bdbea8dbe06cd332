// console_hold.js — opens herald's admin console in headless Chromium,
// signs in and keeps one view open, for bench/ui.sh (the CPU the console's
// live views cost herald). CONSOLE_CFG = {base, key, chromium, view:
// "overview" | "tail", topic}; prints "ready" once the view is live, then
// holds it until stdin closes, then prints {"console_errors": n}.
'use strict';
const puppeteer = require('puppeteer-core');
const os = require('os');
const path = require('path');
const fs = require('fs');

const cfg = JSON.parse(process.env.CONSOLE_CFG);

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-'));
  const browser = await puppeteer.launch({ executablePath: cfg.chromium, headless: true, userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions'] });
  let errors = 0;
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') errors++; });
    await page.goto(cfg.base + '/ui', { waitUntil: 'load', timeout: 15000 });
    await page.type('#key', cfg.key);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#nav', { visible: true, timeout: 15000 });
    if (cfg.view === 'tail') {
      await page.goto(cfg.base + '/ui#topic/' + encodeURIComponent(cfg.topic), { timeout: 15000 });
      await page.waitForSelector('#tail-start', { visible: true, timeout: 15000 });
      await page.click('#tail-start');
      await page.waitForFunction(() => document.getElementById('tail-state').textContent.startsWith('live'), { timeout: 15000 });
    } else {
      await page.waitForFunction(() => /\d/.test(document.getElementById('ov-pub').textContent), { timeout: 15000 });
    }
    process.stdout.write('ready\n');
    await new Promise((res) => { process.stdin.on('end', res); process.stdin.on('close', res); process.stdin.resume(); });
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ console_errors: errors }) + '\n');
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
