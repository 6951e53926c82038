// `npm run screenshots`: the status page's screenshots in docs/, taken from the demo, so they show what
// the demo shows and cannot drift from the page. Starts the demo on a free port, drives Chromium
// (playwright-core; Debian's /usr/bin/chromium or CHROMIUM_PATH) at desktop width and at 390 px, writes
// the PNGs, and stops the demo (which removes its keys from Redis).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DEMO = `${ROOT}demo/dist/demo.js`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DESKTOP = 1280;
const PHONE = 390;
/** How long the demo may take to show its address, and the page its farms. */
const START_MS = 60_000;

function fail(message) {
  process.stderr.write(`screenshots: ${message}\n`);
  process.exit(1);
}

/** Starts the demo on a free port; resolves with the child and the page's address once it prints it. */
function startDemo() {
  const child = spawn(process.execPath, [DEMO, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no address in ${START_MS / 1000} s`)), START_MS);
    child.stdout.on('data', (chunk) => {
      out += chunk.toString();
      const match = /status page (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1] });
      }
    });
    child.stderr.on('data', (chunk) => (err += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited with ${code}: ${err.trim().split('\n')[0] ?? ''}`));
    });
  });
}

/** Stops the demo as Ctrl-C does, and waits for it to have removed its keys. */
function stopDemo(child) {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGINT');
  });
}

async function shoot(browser, url, width, path, { ready, scrollTo } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, timezoneId: 'Europe/Berlin' });
  try {
    const page = await context.newPage();
    await page.goto(url);
    await page.locator(ready).first().waitFor({ timeout: START_MS });
    if (scrollTo) await page.locator(scrollTo).evaluate((el) => el.scrollIntoView());
    await page.screenshot({ path: `${ROOT}docs/${path}`, fullPage: !scrollTo });
    process.stdout.write(`wrote docs/${path}\n`);
  } finally {
    await context.close();
  }
}

async function main() {
  if (!existsSync(DEMO)) fail('no demo/dist/demo.js: build first (npx tsc -b)');
  if (!existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM}: install Debian's chromium or set CHROMIUM_PATH`);
  const { child, url } = await startDemo();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  try {
    // The demo's farm-overuse goes over its seats within seconds of its start: wait for the headline to say so.
    const overview = `${url}/#/`;
    const context = await browser.newContext({ viewport: { width: DESKTOP, height: 900 } });
    const page = await context.newPage();
    await page.goto(overview);
    await page.locator('#headline', { hasText: 'over its seats' }).waitFor({ timeout: START_MS });
    await context.close();

    const overuse = `${url}/#/farm/farm-overuse`;
    const broker = `${url}/#/farm/farm-healthy`;
    await shoot(browser, overview, DESKTOP, 'status-overview.png', { ready: '#farms tbody tr' });
    await shoot(browser, overuse, DESKTOP, 'status-farm.png', { ready: '#hosts tbody tr' });
    await shoot(browser, broker, DESKTOP, 'status-broker.png', { ready: '#ras' });
    await shoot(browser, overview, PHONE, 'status-overview-narrow.png', { ready: '#farms tbody tr' });
    // A phone's first screen of the farm page, from the hosts down: the source column stacked.
    await shoot(browser, overuse, PHONE, 'status-farm-narrow.png', {
      ready: '#hosts tbody tr',
      scrollTo: '#hosts-title',
    });
  } finally {
    await browser.close();
    await stopDemo(child);
  }
}

main().catch((err) => fail(err.message));
