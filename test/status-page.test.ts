/**
 * The status page at / in a real browser: Debian's Chromium driven by playwright-core, against a real
 * collector with agents over WebSocket and its Lua in a real Redis.
 * The screenshots in docs/ come from the demo (`npm run screenshots`), not from here.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig, sha256 } from './support/collector-harness.js';
import { TestAgent, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { csvObjects } from './support/csv.js';
import { DAY_MS, clearOfMidnight, dayNumber, daysFromNow, firstOfMonth } from './support/calendar.js';
import {
  RasBrokerSimulator,
  makeTestPki,
  sampleLicense,
  sampleSession,
  type TestPki,
} from './support/ras-broker-simulator.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const redis = useRedis();
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium or set CHROMIUM_PATH`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
});
// Each test reads "today" and "this month": all of it on one UTC day.
beforeEach(() => clearOfMidnight(), 90_000);
afterAll(async () => {
  await browser?.close();
});

/**
 * Eight weeks of day records for farm-b (10 seats) whose peak climbs a user every two weeks, from 3
 * to 6, written before the collector starts: a rising trend the forecast must see.
 */
async function seedRisingPeaks(prefix: string): Promise<void> {
  const client = redis.client();
  const today = dayNumber();
  for (let back = 56; back >= 1; back -= 1) {
    const peak = 3 + Math.floor((56 - back) / 14);
    await client.hset(
      `${prefix}:{farm-b}:peaks`,
      String(today - back),
      [peak, (today - back) * DAY_MS, 10, 0, 0, 0].join(','),
    );
  }
  client.disconnect();
}

async function lab(extra: Record<string, unknown> = {}, options: { risingPeaks?: boolean } = {}) {
  const raw = rawConfig(
    redis.url,
    [
      { id: 'farm-a', seats: 4, licenseKey: 'EU-1', expires: daysFromNow(200) },
      { id: 'farm-b', seats: 10, licenseKey: 'EU-1', expires: daysFromNow(110) },
      { id: 'farm-spla', license: 'spla', expires: daysFromNow(380) },
    ],
    extra,
  );
  if (options.risingPeaks) await seedRisingPeaks((raw.redis as { prefix: string }).prefix);
  // Four weeks of finished day records, as the scripts write them when a UTC day turns; those that fall
  // in this month (none on the 1st, 27 on the 28th) are part of the month's report. Written before the
  // collector starts, so its first forecast of the farm already reads them.
  const client = redis.client();
  const today = dayNumber();
  const seededThisMonth = { peak: 0, over: 0, admissions: 0 };
  for (let back = 28; back >= 1; back -= 1) {
    const peak = 2 + ((back * 7) % 4) + (back % 9 === 0 ? 2 : 0);
    const over = Math.max(0, peak - 4);
    const record = [peak, (today - back) * DAY_MS + 10 * 3_600_000, 4, over, over, over * 1_200_000].join(',');
    await client.hset(`${(raw.redis as { prefix: string }).prefix}:{farm-a}:peaks`, String(today - back), record);
    if (today - back >= firstOfMonth()) {
      seededThisMonth.peak = Math.max(seededThisMonth.peak, peak);
      seededThisMonth.over = Math.max(seededThisMonth.over, over);
      seededThisMonth.admissions += over;
    }
  }
  client.disconnect();
  const collector = await InProcessCollector.start(raw, { tickMs: 200 });
  const agents: TestAgent[] = [];
  const agent = async (farm: string, host: string) => {
    const a = await TestAgent.connect(collector.url, `token-${farm}`);
    agents.push(a);
    await a.hello(farm, host, `stream-${host}`, 'rasmon-agent/0.1.0');
    return a;
  };
  const a1 = await agent('farm-a', 'rdsh-a1');
  await a1.snapshot(1, [
    session('1', 'corp\\alice'),
    session('2', 'corp\\bob', { via: 'rdp' }),
    session('3', 'corp\\admin1', { admin: true }),
    session('4', 'corp\\carol', { state: 'disconnected' }),
  ]);
  const a2 = await agent('farm-a', 'rdsh-a2');
  await a2.snapshot(1, [session('1', 'corp\\dave', { kind: 'app' })]);
  const b1 = await agent('farm-b', 'rdsh-b1');
  await b1.snapshot(
    1,
    Array.from({ length: 6 }, (_, i) => session(String(i), `corp\\user${i}`)),
  );
  const s1 = await agent('farm-spla', 'rdsh-s1');
  await s1.snapshot(
    1,
    Array.from({ length: 5 }, (_, i) => session(String(i), `tenant\\u${i}`)),
  );
  const stop = async () => {
    await Promise.all(agents.map((a) => a.close()));
    await collector.stop();
  };
  return { collector, a1, stop, seededThisMonth };
}

/** The viewer's zone in these tests: UTC+05:30 all year, so its clock differs from UTC's on every date. */
const ZONE = { id: 'Asia/Kolkata', offsetMs: 5.5 * 3_600_000 };

async function open(url: string, width = 1280): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width, height: 900 },
    acceptDownloads: true,
    timezoneId: ZONE.id,
  });
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

const rowText = (page: Page, farm: string, column: string) =>
  page.locator(`#farms tr[data-farm="${farm}"] td[data-label="${column}"]`).innerText();

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "12 Dec 14:05 UTC (19:35 your time)" for the viewer in ZONE, written out here from the instant. */
function deactivationWords(iso: string): string {
  const ms = Date.parse(iso);
  const thisYear = new Date().getUTCFullYear();
  const parts = (t: number) => {
    const d = new Date(t);
    const year = d.getUTCFullYear() === thisYear ? '' : ` ${d.getUTCFullYear()}`;
    const clock = `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    return { date: `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}${year}`, clock };
  };
  const utc = parts(ms);
  const local = parts(ms + ZONE.offsetMs);
  return `${utc.date} ${utc.clock} UTC (${local.date === utc.date ? '' : `${local.date} `}${local.clock} your time)`;
}

/**
 * The cells of a stacked table whose value is not beside its column's name: each value's box (and
 * every part inside it) must sit on the name's row and to its right. Measured boxes, not a timing.
 */
async function valuesOffTheirLabel(page: Page, table: string): Promise<string[]> {
  // In one evaluation: the page re-renders every second, so boxes read one by one could be of two renders.
  const found = await page.locator(`${table} tbody td[data-label]`).evaluateAll((cells) => {
    const problems: string[] = [];
    cells.forEach((cell, i) => {
      const name = `${cell.getAttribute('data-label')} #${i}`;
      const labelBox = cell.querySelector(':scope > .cell-label');
      const valueBox = cell.querySelector(':scope > .cell-value');
      if (!labelBox || !valueBox) return void problems.push(`${name}: no label or value box`);
      const label = labelBox.getBoundingClientRect();
      const value = valueBox.getBoundingClientRect();
      if (label.width === 0)
        return void problems.push(
          `${name}: its label is not shown (display ${cell.ownerDocument.defaultView?.getComputedStyle(labelBox).display}, window ${cell.ownerDocument.defaultView?.innerWidth} px)`,
        );
      if (Math.abs(value.top - label.top) > 1)
        problems.push(`${name}: value at y ${value.top}, label at y ${label.top}`);
      if (value.left < label.right) problems.push(`${name}: value starts inside the label's column`);
      for (const part of valueBox.querySelectorAll('*')) {
        const box = part.getBoundingClientRect();
        if (box.width > 0 && box.left < label.right)
          problems.push(`${name}: "${part.textContent}" in the label's column`);
      }
    });
    return { cells: cells.length, problems };
  });
  expect(found.cells).toBeGreaterThan(0);
  return found.problems;
}

describe('status page', () => {
  it('shows the forecast the API gives under the farm’s users, and none for a farm without one', async () => {
    const { collector, stop } = await lab({}, { risingPeaks: true });
    const page = await open(`${collector.url}/`);
    try {
      const { farms } = (await (await fetch(`${collector.url}/api/v1/farms`)).json()) as {
        farms: Array<{ id: string; forecast: { fullInDays: number; fullBy: string } | null }>;
      };
      const forecast = farms.find((farm) => farm.id === 'farm-b')!.forecast;
      // Eight rising weeks reach 10 seats within the forecast's horizon: the case is not vacuous.
      expect(forecast).not.toBeNull();
      expect(forecast!.fullInDays).toBeGreaterThan(0);
      const [year, month, day] = forecast!.fullBy.split('-').map(Number) as [number, number, number];
      const monthName = new Date(Date.UTC(year, month - 1, day)).toLocaleString('en-GB', {
        month: 'long',
        timeZone: 'UTC',
      });
      const line = page.locator('#farms tr[data-farm="farm-b"] .forecast');
      await line.waitFor();
      expect(await line.innerText()).toMatch(
        new RegExp(`^at this trend, full in about ${forecast!.fullInDays} days?, by ${day} ${monthName}( ${year})?$`),
      );
      // farm-a's weekly peaks (up to 6 on 4 seats) are over its seats already: full now.
      expect(farms.find((farm) => farm.id === 'farm-a')!.forecast).toMatchObject({ fullInDays: 0 });
      expect(await page.locator('#farms tr[data-farm="farm-a"] .forecast').innerText()).toBe(
        'at this trend, the daily peak has reached the seats',
      );
      // The SPLA farm has no seats to fill.
      expect(await page.locator('#farms tr[data-farm="farm-spla"] .forecast').count()).toBe(0);
    } finally {
      await page.context().close();
      await stop();
    }
  });

  it('shows the numbers /metrics has, follows a logon beyond the seats live, and lists the users over the limit', async () => {
    const { collector, a1, stop, seededThisMonth } = await lab();
    const page = await open(`${collector.url}/`);
    try {
      await page.locator('#farms tr[data-farm="farm-spla"]').waitFor();
      expect(await page.locator('#headline').innerText()).toBe(
        'All farms within their seats · no license expired or expiring',
      );
      const scrape = await Scrape.from(collector.url);
      for (const farm of ['farm-a', 'farm-b']) {
        const users = scrape.value('ras_license_users', { farm });
        const seats = scrape.value('ras_license_seats', { farm });
        expect(await rowText(page, farm, 'Users / seats')).toContain(`${users} / ${seats}`);
      }
      expect(await rowText(page, 'farm-spla', 'Users / seats')).toContain(
        `${scrape.value('ras_license_users', { farm: 'farm-spla' })} users`,
      );
      expect(await rowText(page, 'farm-a', 'Overuse')).toBe(
        scrape.value('ras_license_overuse_users', { farm: 'farm-a' })! > 0 ? 'OVER by 1' : 'within seats',
      );
      expect(await rowText(page, 'farm-a', 'Hosts')).toBe('2 up, 0 stale, 0 retired');
      expect(await rowText(page, 'farm-a', 'License')).toMatch(/^active \d+ days to expiry$/);
      expect(await rowText(page, 'farm-a', 'Overuse grace')).toBe('not started');

      // farm-a holds 4 of 4 seats (the admin's first desktop is exempt, the disconnected one counts).
      expect(await rowText(page, 'farm-a', 'Users / seats')).toContain('4 / 4');
      const sent = Date.now();
      await a1.events([upsert(2, session('5', 'corp\\erin')), upsert(3, session('6', 'corp\\frank'))]);
      await page
        .locator('#farms tr[data-farm="farm-a"] td[data-label="Overuse"]', { hasText: 'OVER by 2' })
        .waitFor({ timeout: 10_000 });
      const shownAfterMs = Date.now() - sent;
      expect(await rowText(page, 'farm-a', 'Users / seats')).toContain('6 / 4');
      expect(await rowText(page, 'farm-a', 'Overuse grace')).toMatch(/^7 d 0 h left|^6 d 23 h left/);
      const endsAt = ((await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as any).overuseGrace.endsAt;
      expect(await rowText(page, 'farm-a', 'Overuse grace')).toContain(
        `deactivates ${deactivationWords(endsAt)} if still over`,
      );
      await page.locator('#headline', { hasText: '1 farm over its seats' }).waitFor();
      expect(await page.locator('#headline .part').allInnerTexts()).toEqual([
        '1 farm over its seats',
        `1 in overuse grace: farm-a deactivates ${deactivationWords(endsAt)} if still over`,
      ]);
      expect(await page.locator('#headline').getAttribute('class')).toContain('bad');
      console.log(`status page showed the overuse ${shownAfterMs} ms after the frame was acked`);

      // The keyboard reaches the farm page: Tab to its link, Enter.
      await page.locator('#farms a[href="#/farm/farm-a"]').focus();
      await page.keyboard.press('Enter');
      await page.locator('#over-limit li').first().waitFor();
      const api = (await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as any;
      expect(api.overLimit).toEqual(['corp\\erin', 'corp\\frank']);
      expect(await page.locator('#over-limit li').allInnerTexts()).toEqual(api.overLimit);
      expect(await page.locator('#hosts tbody tr').count()).toBe(2);
      expect(await page.locator('#exempt').innerText()).toContain('corp\\admin1');
      // This month: today's 6 users, 2 over the seats in 2 admissions, beside the seeded days of the month.
      const month = {
        peakUsers: String(Math.max(6, seededThisMonth.peak)),
        maxOveruse: String(Math.max(2, seededThisMonth.over)),
        admissions: String(2 + seededThisMonth.admissions),
      };
      expect(await page.locator('#month td[data-label="Peak users"]').innerText()).toBe(month.peakUsers);
      await page.locator('svg.chart rect.peak').first().waitFor();
      // The 28 finished days and today, those above the seats marked in text too.
      expect(await page.locator('svg.chart rect.peak').count()).toBe(29);
      expect(await page.locator('svg.chart rect.peak.over').count()).toBeGreaterThan(0);

      // The CSV download is one RFC 4180 table with the farm's row.
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download-report').click()]);
      const rows = csvObjects(await readFile(await download.path(), 'utf8'));
      const farmA = rows.find((row) => row.row === 'farm' && row.name === 'farm-a')!;
      expect(farmA).toMatchObject({ seats: '4', ...month });
      expect(rows.find((row) => row.row === 'licenseKey')).toMatchObject({ name: 'EU-1', farms: 'farm-a farm-b' });
    } finally {
      await page.context().close();
      await stop();
    }
  });

  it('fits a narrow window without sideways scrolling', async () => {
    const { collector, stop } = await lab();
    const page = await open(`${collector.url}/#/farm/farm-a`, 360);
    try {
      await page.locator('#hosts tbody tr').first().waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
      await page.goto(`${collector.url}/#/`);
      await page.locator('#farms tr[data-farm="farm-a"]').waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    } finally {
      await page.context().close();
      await stop();
    }
  });

  /**
   * Farms named so that their order by name is not their order by severity: delta (1 seat, 14 users,
   * an overuse grace seeded 3 days ago) and charlie (1 seat, 3 users, a grace that starts now) over
   * their seats, echo's license expired, foxtrot's in its expiry grace, bravo's expiring in 12 days,
   * alpha within its seats.
   */
  async function severityLab() {
    const raw = rawConfig(redis.url, [
      { id: 'alpha', seats: 10 },
      { id: 'bravo', seats: 10, expires: daysFromNow(12) },
      { id: 'charlie', seats: 1 },
      { id: 'delta', seats: 1, overuseGraceStartedAt: daysFromNow(-3) },
      { id: 'echo', seats: 10, expires: daysFromNow(-40) },
      { id: 'foxtrot', seats: 10, expires: daysFromNow(-5) },
    ]);
    const collector = await InProcessCollector.start(raw, { tickMs: 200 });
    const agents: TestAgent[] = [];
    const users = async (farm: string, count: number) => {
      const agent = await TestAgent.connect(collector.url, `token-${farm}`);
      agents.push(agent);
      await agent.hello(farm, `rdsh-${farm}`, `stream-${farm}`, 'rasmon-agent/0.1.0');
      await agent.snapshot(
        1,
        Array.from({ length: count }, (_, i) => session(String(i), `corp\\${farm}-user${String(i).padStart(2, '0')}`)),
      );
    };
    await users('alpha', 1);
    await users('charlie', 3);
    await users('delta', 14);
    const stop = async () => {
      await Promise.all(agents.map((a) => a.close()));
      await collector.stop();
    };
    return { collector, stop };
  }

  it('leads with the problem: a headline, the farms by severity, the deactivation date and the RAS words explained', async () => {
    const { collector, stop } = await severityLab();
    const page = await open(`${collector.url}/`);
    try {
      await page.locator('#farms tr[data-farm="delta"] td[data-label="Overuse"]', { hasText: 'OVER by 13' }).waitFor();
      await page.locator('#farms tr[data-farm="charlie"] td[data-label="Overuse"]', { hasText: 'OVER by 2' }).waitFor();
      const farms = (await (await fetch(`${collector.url}/api/v1/farms`)).json()) as any;
      const delta = farms.farms.find((farm: any) => farm.id === 'delta');
      expect(await page.locator('#headline .part').allInnerTexts()).toEqual([
        '2 farms over their seats',
        `2 in overuse grace: delta deactivates ${deactivationWords(delta.overuseGrace.endsAt)} if still over`,
        '1 license expired',
        '1 license past its expiry, in the expiry grace',
        '1 license expiring within 30 days',
      ]);
      // The headline comes first in the page, before the table.
      const order = await page.locator('#view > *').evaluateAll((nodes) => nodes.map((node) => node.id));
      expect(order.indexOf('headline')).toBe(0);
      // Over the seats, the soonest deactivation first; then licenses, the one that runs out first; then the rest.
      expect(await page.locator('#farms tbody tr').evaluateAll((rows) => rows.map((row) => row.dataset.farm))).toEqual([
        'delta',
        'charlie',
        'echo',
        'foxtrot',
        'bravo',
        'alpha',
      ]);
      expect(await rowText(page, 'delta', 'Overuse grace')).toMatch(
        new RegExp(
          `^[34] d \\d+ h left deactivates ${deactivationWords(delta.overuseGrace.endsAt).replace(/[()]/g, '\\$&')} if still over$`,
        ),
      );
      expect(await rowText(page, 'echo', 'License')).toBe('EXPIRED');
      // Each RAS word in a heading explains itself on hover and points at the glossary's line.
      const grace = page.locator('#farms th', { hasText: 'Overuse grace' });
      expect(await grace.getAttribute('title')).toMatch(/^Overuse grace: the days \(7 by default\)/);
      const described = await grace.getAttribute('aria-describedby');
      expect(await page.locator(`[id="${described}"]`).innerText()).toContain('only more seats reset it');
      expect(await page.locator('#terms dt').allInnerTexts()).toEqual(
        expect.arrayContaining(['Overuse grace', 'Sublicense', 'SPLA', 'Unverified users', 'Deactivation']),
      );
      // Nothing forecasts here: no forecast line.
      expect(await page.locator('.forecast').count()).toBe(0);

      // delta's 13 users over the limit: the first 10, then the rest folded, staying open across refreshes.
      await page.goto(`${collector.url}/#/farm/delta`);
      await page.locator('#over-limit li').first().waitFor();
      const api = (await (await fetch(`${collector.url}/api/v1/farms/delta`)).json()) as any;
      expect(api.overLimit).toHaveLength(13);
      expect(await page.locator('#over-limit li').allInnerTexts()).toEqual(api.overLimit.slice(0, 10));
      expect(await page.locator('#over-limit-more summary').innerText()).toBe('and 3 more');
      expect(await page.locator('#over-limit-more li').first().isVisible()).toBe(false);
      await page.locator('#over-limit-more summary').click();
      // After the next refresh, the fold is still open.
      const shown = await page.locator('#live').innerText();
      await vi.waitFor(async () => expect(await page.locator('#live').innerText()).not.toBe(shown), {
        timeout: 10_000,
      });
      expect(await page.locator('#over-limit-more').getAttribute('open')).toBe('');
      expect(await page.locator('#over-limit-more li').allInnerTexts()).toEqual(api.overLimit.slice(10));
      expect(await page.locator('#card-grace .detail').innerText()).toBe(
        `deactivates ${deactivationWords(delta.overuseGrace.endsAt)} if still over`,
      );
    } finally {
      await page.context().close();
      await stop();
    }
  });

  it('keeps each value beside its label at 390 px', async () => {
    const { collector, stop } = await severityLab();
    const page = await open(`${collector.url}/`, 390);
    try {
      await page.locator('#farms tr[data-farm="delta"] td[data-label="Overuse"]', { hasText: 'OVER' }).waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(await valuesOffTheirLabel(page, '#farms')).toEqual([]);
      // The parts the issue found in the label column: "(1400 %)", "… days to expiry", "ends in …".
      expect(await rowText(page, 'delta', 'Users / seats')).toContain('(1400 %)');
      expect(await rowText(page, 'foxtrot', 'License')).toMatch(/ends in \d+ d/);
      await page.goto(`${collector.url}/#/farm/delta`);
      await page.locator('#hosts tbody tr').first().waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(await valuesOffTheirLabel(page, '#hosts')).toEqual([]);
      expect(await valuesOffTheirLabel(page, '#month')).toEqual([]);
    } finally {
      await page.context().close();
      await stop();
    }
  });

  it('asks for the API token and shows nothing without it', async () => {
    const { collector, stop } = await lab({ api: { tokensSha256: [sha256('helpdesk-secret')] } });
    const page = await open(`${collector.url}/`);
    try {
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await page.locator('#view').innerText()).toBe('');
      expect(await page.locator('body').innerText()).not.toContain('farm-a');
      await page.locator('#token').fill('wrong');
      await page.locator('#token').press('Enter');
      await page.locator('#login-error', { hasText: 'That token was not accepted.' }).waitFor();
      expect(await page.locator('body').innerText()).not.toContain('farm-a');
      await page.locator('#token').fill('helpdesk-secret');
      await page.locator('#login-form button').click();
      await page.locator('#farms tr[data-farm="farm-a"]').waitFor();
      expect(await page.locator('#login').isHidden()).toBe(true);
      await page.locator('#forget').click();
      await page.locator('#login').waitFor({ state: 'visible' });
      expect(await page.locator('#view').innerText()).toBe('');
    } finally {
      await page.context().close();
      await stop();
    }
  });
});

describe('status page with a RAS broker', () => {
  const USERNAME = 'CORP\\svc-rasmon';
  const PASSWORD = 'page-Pa55word';
  let pki: TestPki;
  let dir: string;
  let passwordFile: string;
  beforeAll(() => {
    pki = makeTestPki();
    dir = mkdtempSync(join(tmpdir(), 'rasmon-page-ras-'));
    passwordFile = join(dir, 'ras-password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
  });
  afterAll(() => {
    pki?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * farm-r: seats and expiry adopted from RAS (the configuration's 10 seats contradicted by RAS's 20),
   * two VDI users from the broker beside an agent's host with one user; RAS counts 5 and asks for
   * attention. farm-a: no broker.
   */
  async function brokerLab() {
    const broker = await RasBrokerSimulator.start({ pki, username: USERNAME, password: PASSWORD });
    broker.license = sampleLicense(new Date(), {
      installedUsers: '20',
      usersLicenseInfo: '5',
      usersPeak: '9',
      needsAttention: true,
      alertMessage: 'Your license is about to expire',
      statusMessage: 'License expires soon',
    });
    broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\vdi-1' }),
      sampleSession({ type: 3, user: 'CORP\\vdi-2', state: 4 }),
    ];
    const raw = rawConfig(redis.url, [
      { id: 'farm-a', seats: 4, expires: daysFromNow(200) },
      {
        id: 'farm-r',
        seats: 10,
        ras: { url: broker.url, username: USERNAME, passwordFile, ca: pki.caFile, pollSeconds: 3600, adopt: true },
      },
    ]);
    // rawConfig fills an expiry in; farm-r takes RAS's.
    delete (raw.farms as Array<Record<string, unknown>>)[1]!.expires;
    const collector = await InProcessCollector.start(raw, { tickMs: 200 });
    expect(await collector.collector.pollBroker('farm-r')).toBe(true);
    const agent = await TestAgent.connect(collector.url, 'token-farm-r');
    await agent.hello('farm-r', 'rdsh-r1', 'stream-r1', 'rasmon-agent/0.1.0');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);
    agent.send({ type: 'status', source: 'quser', ok: true, lastListAt: Date.now() });
    const failing = await TestAgent.connect(collector.url, 'token-farm-r');
    await failing.hello('farm-r', 'rdsh-r2', 'stream-r2', 'rasmon-agent/0.1.0');
    await failing.snapshot(1, []);
    failing.send({ type: 'status', source: 'wts', ok: false, error: 'WTSEnumerateSessions failed' });
    // The status frames have no ack: wait until the API has both.
    await vi.waitFor(
      async () => {
        const doc = (await (await fetch(`${collector.url}/api/v1/farms/farm-r`)).json()) as any;
        expect(doc.hosts.filter((host: any) => host.source !== null)).toHaveLength(2);
      },
      { timeout: 10_000 },
    );
    const stop = async () => {
      await Promise.all([agent.close(), failing.close()]);
      await collector.stop();
      await broker.stop().catch(() => undefined);
    };
    return { collector, broker, stop };
  }

  const hostCell = (page: Page, host: string, column: string) =>
    page.locator(`#hosts tr[data-host="${host}"] td[data-label="${column}"]`).innerText();

  it("shows RAS's count beside rasmon's, RAS's alert, the sessions it imported and its pseudo-hosts, and a broker that stops answering", async () => {
    const { collector, broker, stop } = await brokerLab();
    const page = await open(`${collector.url}/`);
    try {
      await page.locator('#farms tr[data-farm="farm-r"]').waitFor();
      // alice on the agent's host and the two VDI users: rasmon 3; RAS says 5.
      expect(await rowText(page, 'farm-r', 'Users / seats')).toContain('3 / 20');
      expect(await rowText(page, 'farm-r', 'Users / seats')).toContain('RAS counts 5, rasmon 3');
      expect(await rowText(page, 'farm-a', 'Users / seats')).not.toContain('RAS');
      // The hosts are the agents' (as ras_agent_up has them): the broker's sources are not among them.
      expect(await rowText(page, 'farm-r', 'Hosts')).toBe('2 up, 0 stale, 0 retired');
      expect(await page.locator('.attention[data-farm="farm-r"]').innerText()).toBe(
        'RAS needs attention (farm-r): Your license is about to expire',
      );

      await page.goto(`${collector.url}/#/farm/farm-r`);
      await page.locator('#ras').waitFor();
      expect(await page.locator('#broker-state').innerText()).toMatch(
        /^RAS broker answers last answer \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
      );
      expect(await page.locator('#card-hosts .value').innerText()).toBe('2 up, 0 stale, 0 retired');
      expect(await page.locator('#card-ras-users .value').innerText()).toBe('RAS counts 5, rasmon 3');
      expect(await page.locator('#card-ras-seats .value').innerText()).toBe('20');
      expect(await page.locator('#card-ras-peak .value').innerText()).toBe('9');
      expect(await page.locator('#card-ras-expiry .value').innerText()).toMatch(/^\d{4}-\d\d-\d\d$/);
      expect(await page.locator('#card-ras-sessions .value').innerText()).toBe('VDI 2, PC 0, AVD 0');
      expect(await page.locator('#ras .attention').innerText()).toContain('Your license is about to expire');
      expect(await page.locator('#broker-status-message').innerText()).toBe('RAS says: License expires soon');
      expect(await page.locator('#license-from').innerText()).toContain('come from RAS');
      expect(await page.locator('#config-disagrees li').allInnerTexts()).toEqual(['seats: configured 10, RAS 20']);

      // The broker's sources are hosts of their own kind, after the agents' hosts.
      const hostNames = await page.locator('#hosts td[data-label="Host"]').allInnerTexts();
      expect(hostNames.slice(0, 2)).toEqual(['rdsh-r1', 'rdsh-r2']);
      expect(hostNames).toContain('RAS broker: VDI');
      expect(await hostCell(page, 'broker/vdi', 'Connections')).toBe('2');
      expect(await hostCell(page, 'broker/vdi', 'Agent')).not.toContain('ras-broker');
      // The session source by name, its health in words and colour: a failing one keeps its red badge.
      const badge = (host: string) =>
        page.locator(`#hosts tr[data-host="${host}"] td[data-label="Session source"] .tag`);
      expect(await hostCell(page, 'broker/vdi', 'Session source')).toBe('RAS broker (VDI sessions) answers');
      expect(await badge('broker/vdi').getAttribute('class')).toBe('tag ok');
      expect(await hostCell(page, 'rdsh-r1', 'Agent')).toBe('rasmon-agent/0.1.0');
      expect(await hostCell(page, 'rdsh-r1', 'Session source')).toMatch(
        /^quser working\nlast list \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
      );
      expect(await badge('rdsh-r1').getAttribute('class')).toBe('tag ok');
      expect(await hostCell(page, 'rdsh-r2', 'Session source')).toBe('wts failing\nWTSEnumerateSessions failed');
      expect(await badge('rdsh-r2').getAttribute('class')).toBe('tag bad');
      expect(await page.locator('#hosts').innerText()).not.toContain('[object Object]');

      await broker.stop();
      await collector.collector.pollBroker('farm-r');
      await page.locator('#broker-state', { hasText: 'not answering' }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#broker-state').innerText()).toMatch(
        /^RAS broker not answering since \d{4}-\d\d-\d\d \d\d:\d\d UTC: unreachable$/,
      );
      // What RAS last said stays shown beside it.
      expect(await page.locator('#card-ras-users .value').innerText()).toBe('RAS counts 5, rasmon 3');
      expect(await hostCell(page, 'broker/vdi', 'Session source')).toBe('RAS broker (VDI sessions) not answering');
      expect(await badge('broker/vdi').getAttribute('class')).toBe('tag bad');
      await page.goto(`${collector.url}/#/`);
      await page
        .locator('#farms tr[data-farm="farm-r"] td[data-label="Users / seats"]', {
          hasText: 'broker not answering',
        })
        .waitFor();
    } finally {
      await page.context().close();
      await stop();
    }
  });

  it('fits a 390 px window with the broker shown', async () => {
    const { collector, stop } = await brokerLab();
    const page = await open(`${collector.url}/#/farm/farm-r`, 390);
    try {
      await page.locator('#ras').waitFor();
      await page.locator('#hosts tr[data-host="broker/vdi"]').waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(await valuesOffTheirLabel(page, '#hosts')).toEqual([]);
      await page.goto(`${collector.url}/#/`);
      await page.locator('#farms tr[data-farm="farm-r"]').waitFor();
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    } finally {
      await page.context().close();
      await stop();
    }
  });
});
