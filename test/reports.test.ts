/**
 * Day records, the history and report endpoints, the report command, license keys and SPLA farms:
 * real agents over WebSocket, the collector's Lua in a real Redis, and the bin run as operators run it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, InProcessCollector, rawConfig, sha256 } from './support/collector-harness.js';
import {
  MonthUsers,
  REWRITE_AFTER_MS,
  RedisKeys,
  NoMonthDataError,
  monthText,
  readDistinctUsers,
  userListCsv,
  type FarmConfig,
  type FarmHistory,
} from '@rasmon/collector';
import { TestAgent, end, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { csvObjects, parseCsv } from './support/csv.js';
import { RasBrokerSimulator, makeTestPki, sampleLicense, sampleSession } from './support/ras-broker-simulator.js';
import { DAY_MS, clearOfMidnight, dayNumber, dayText, firstOfMonth } from './support/calendar.js';

const run = promisify(execFile);

const redis = useRedis();
// Each test reads what "today" holds: all of it on one UTC day.
beforeEach(() => clearOfMidnight(), 90_000);

const today = () => dayText(dayNumber());

async function started(farms: Array<Record<string, unknown> & { id: string }>, extra: Record<string, unknown> = {}) {
  const raw = rawConfig(redis.url, farms, extra);
  const collector = await InProcessCollector.start(raw, { tickMs: 100 });
  const agents: TestAgent[] = [];
  const agent = async (farm: string, host: string) => {
    const a = await TestAgent.connect(collector.url, `token-${farm}`);
    agents.push(a);
    await a.hello(farm, host, `stream-${host}`);
    return a;
  };
  const get = async (path: string, headers: Record<string, string> = {}) =>
    fetch(`${collector.url}${path}`, { headers });
  const json = async (path: string) => (await get(path)).json() as Promise<any>;
  const stop = async () => {
    await Promise.all(agents.map((a) => a.close()));
    await collector.stop();
  };
  return { raw, collector, agent, get, json, stop, prefix: (raw.redis as { prefix: string }).prefix };
}

describe('day records', () => {
  it('today records the peak and when, the seats, the highest overuse, admissions and time over seats', async () => {
    const farm = await started([{ id: 'farm-a', seats: 2 }]);
    const a = await farm.agent('farm-a', 'rdsh-1');
    const before = Date.now();
    await a.snapshot(1, [
      session('1', 'corp\\a'),
      session('2', 'corp\\b'),
      session('3', 'corp\\c'),
      session('4', 'corp\\d'),
    ]);
    await a.events([end(2, '4')]);
    // Time over seats is counted by the Redis clock in tenths of a minute.
    const history = await vi.waitFor(
      async () => {
        const body = await farm.json('/api/v1/farms/farm-a/history');
        expect(body.days[0].minutesOverSeats).toBeGreaterThanOrEqual(0.1);
        return body;
      },
      { timeout: 20_000 },
    );
    expect(history.farm).toBe('farm-a');
    expect(history.days).toHaveLength(1);
    const [day] = history.days;
    expect(day).toMatchObject({ day: today(), peakUsers: 4, seats: 2, maxOveruse: 2, admissions: 2 });
    expect(Date.parse(day.peakAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(day.peakAt)).toBeLessThanOrEqual(Date.now());
    // Back within the seats, the time over stops running.
    await a.events([end(3, '3')]);
    const stopped = (await farm.json('/api/v1/farms/farm-a/history')).days[0].minutesOverSeats;
    await new Promise((resolve) => setTimeout(resolve, 6500));
    expect((await farm.json('/api/v1/farms/farm-a/history')).days[0].minutesOverSeats).toBe(stopped);
    // The existing daily peaks read the same records.
    expect(await farm.json('/api/v1/farms/farm-a/peaks')).toEqual({ peaks: [{ day: today(), users: 4 }] });
    await farm.stop();
  }, 60_000);

  it('the turn of the UTC day closes the record at midnight and carries an overuse into the new day', async () => {
    const farm = await started([{ id: 'farm-a', seats: 1 }]);
    const a = await farm.agent('farm-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    const client = redis.client();
    const meta = `${farm.prefix}:{farm-a}:meta`;
    const peaks = `${farm.prefix}:{farm-a}:peaks`;
    const todayNumber = dayNumber();
    const midnight = todayNumber * DAY_MS;
    const admissions = Number(await client.hget(meta, 'admissions'));
    // The open day as the scripts would hold it had the collector run through yesterday evening,
    // over the seats since 23:58 after one closed minute; plus a day from before full records.
    await client.hdel(peaks, String(todayNumber));
    await client.hset(peaks, String(todayNumber - 5), '7');
    await client.hset(meta, {
      day: todayNumber - 1,
      peakToday: 9,
      peakAt: midnight - 3_600_000,
      daySeats: 1,
      overToday: 4,
      admDay: admissions - 3,
      overMs: 60_000,
      overSince: midnight - 120_000,
    });
    const stored = await vi.waitFor(
      async () => {
        const value = await client.hget(peaks, String(todayNumber - 1));
        expect(value).toContain(',');
        return value;
      },
      { timeout: 10_000 },
    );
    expect(stored).toBe(`9,${midnight - 3_600_000},1,4,3,180000`);
    const history = await farm.json(`/api/v1/farms/farm-a/history?from=${dayText(todayNumber - 10)}&to=${today()}`);
    expect(history.days.map((d: any) => d.day)).toEqual([dayText(todayNumber - 5), dayText(todayNumber - 1), today()]);
    expect(history.days[0]).toEqual({
      day: dayText(todayNumber - 5),
      peakUsers: 7,
      peakAt: null,
      seats: null,
      maxOveruse: null,
      admissions: null,
      minutesOverSeats: null,
    });
    expect(history.days[1]).toEqual({
      day: dayText(todayNumber - 1),
      peakUsers: 9,
      peakAt: new Date(midnight - 3_600_000).toISOString(),
      seats: 1,
      maxOveruse: 4,
      admissions: 3,
      minutesOverSeats: 3,
    });
    // Still over: the new day counts from midnight.
    const minutesToday = (Date.now() - midnight) / 60_000;
    expect(history.days[2]).toMatchObject({ peakUsers: 2, seats: 1, maxOveruse: 1, admissions: 0 });
    expect(Math.abs(history.days[2].minutesOverSeats - minutesToday)).toBeLessThan(0.3);
    // The old peaks list every kept day.
    const listed = (await farm.json('/api/v1/farms/farm-a/peaks')).peaks;
    expect(listed).toEqual([
      { day: dayText(todayNumber - 5), users: 7 },
      { day: dayText(todayNumber - 1), users: 9 },
      { day: today(), users: 2 },
    ]);
    client.disconnect();
    await farm.stop();
  });
});

describe('history and report endpoints', () => {
  it('report per farm and per license key, as JSON and as RFC 4180 CSV', async () => {
    const farm = await started([
      { id: 'farm-a', seats: 1, licenseKey: 'EU key 1' },
      { id: 'farm-b', seats: 5, licenseKey: 'EU key 1' },
      { id: 'farm-s', license: 'spla', licenseKey: 'SPLA/2026' },
    ]);
    const a = await farm.agent('farm-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    const b = await farm.agent('farm-b', 'rdsh-1');
    await b.snapshot(1, [session('1', 'corp\\x'), session('2', 'corp\\y'), session('3', 'corp\\z')]);
    const s = await farm.agent('farm-s', 'rdsh-1');
    await s.snapshot(
      1,
      Array.from({ length: 4 }, (_, i) => session(String(i), `corp\\s${i}`)),
    );
    const report = await farm.json(`/api/v1/report?from=${today()}&to=${today()}`);
    expect(report.from).toBe(today());
    const byFarm = Object.fromEntries(report.farms.map((f: any) => [f.farm, f]));
    expect(byFarm['farm-a']).toMatchObject({
      seats: 1,
      peakUsers: 2,
      peakDay: today(),
      daysOverSeats: 1,
      maxOveruse: 1,
      admissions: 1,
      billedUsers: null,
      licenseKey: 'EU key 1',
    });
    expect(byFarm['farm-b']).toMatchObject({ seats: 5, peakUsers: 3, daysOverSeats: 0, maxOveruse: 0, admissions: 0 });
    // SPLA: no seats, so no overuse; billed by the period peak.
    expect(byFarm['farm-s']).toMatchObject({
      license: 'spla',
      seats: null,
      peakUsers: 4,
      billedUsers: 4,
      maxOveruse: 0,
      daysOverSeats: 0,
    });
    expect(report.licenseKeys).toMatchObject([
      { licenseKey: 'EU key 1', farms: ['farm-a', 'farm-b'], peakUsersSum: 5, spla: false, billedUsers: null },
      { licenseKey: 'SPLA/2026', farms: ['farm-s'], peakUsersSum: 4, spla: true, billedUsers: 4 },
    ]);

    const csv = await farm.get(`/api/v1/report?from=${today()}&to=${today()}&format=csv`);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toBe(
      `attachment; filename="rasmon-report-${today()}-${today()}.csv"`,
    );
    const rows = csvObjects(await csv.text());
    expect(rows.filter((r) => r.row !== 'keyDay').map((r) => [r.row, r.name, r.peakUsers])).toEqual([
      ['farm', 'farm-a', '2'],
      ['farm', 'farm-b', '3'],
      ['farm', 'farm-s', '4'],
      ['licenseKey', 'EU key 1', '5'],
      ['licenseKey', 'SPLA/2026', '4'],
    ]);
    expect(rows[2]).toMatchObject({ seats: '', billedUsers: '4', license: 'spla' });
    expect(rows[3]!.farms).toBe('farm-a farm-b');

    const accepted = await farm.get(`/api/v1/farms/farm-a/history?from=${today()}&to=${today()}`, {
      Accept: 'text/csv',
    });
    const days = csvObjects(await accepted.text());
    expect(days).toEqual([
      expect.objectContaining({ farm: 'farm-a', day: today(), peakUsers: '2', seats: '1', maxOveruse: '1' }),
    ]);

    // The license key groups farms in ras_license_info; an SPLA farm without seats has no seats series.
    const scrape = await Scrape.from(farm.collector.url);
    expect(scrape.value('ras_license_info', { farm: 'farm-a' })).toBe(1);
    expect(scrape.all('ras_license_info', { farm: 'farm-a' })[0]!.labels.license_key).toBe('EU key 1');
    expect(scrape.value('ras_license_seats', { farm: 'farm-s' })).toBeUndefined();
    expect(scrape.value('ras_license_overuse_users', { farm: 'farm-s' })).toBe(0);
    expect(scrape.value('ras_license_users', { farm: 'farm-s' })).toBe(4);
    await farm.stop();
  });

  it('answers bad periods and formats with 400, unknown farms with 404, and needs the API token', async () => {
    const farm = await started([{ id: 'farm-a', seats: 1 }], { api: { tokensSha256: [sha256('api-secret')] } });
    const auth = { Authorization: 'Bearer api-secret' };
    expect((await farm.get('/api/v1/report')).status).toBe(401);
    expect((await farm.get('/api/v1/farms/farm-a/history')).status).toBe(401);
    const bad = async (path: string) => {
      const res = await farm.get(path, auth);
      return { status: res.status, error: ((await res.json()) as any).error };
    };
    expect(await bad('/api/v1/report?from=2026-02-30&to=2026-03-01')).toEqual({
      status: 400,
      error: 'from must be a date YYYY-MM-DD (UTC) from 0001-01-01 to 9999-12-31, got "2026-02-30"',
    });
    expect(await bad('/api/v1/report?from=2026-03-02&to=2026-03-01')).toEqual({
      status: 400,
      error: 'from 2026-03-02 is after to 2026-03-01',
    });
    expect(await bad('/api/v1/report?from=2026-03-02')).toEqual({
      status: 400,
      error: 'from and to go together: give both or neither',
    });
    expect(await bad('/api/v1/report?from=2020-01-01&to=2026-01-01')).toEqual({
      status: 400,
      error: 'the period from 2020-01-01 to 2026-01-01 is longer than 1000 days',
    });
    expect(await bad('/api/v1/report?format=xml')).toEqual({ status: 400, error: 'format must be json or csv' });
    expect(await bad('/api/v1/farms/nope/history')).toEqual({ status: 404, error: 'no farm nope' });
    // A bad escape is the request's fault, not Redis's; so is a segment that cannot be a farm id.
    expect(await bad('/api/v1/farms/%E0%A4%A/history')).toEqual({
      status: 400,
      error: 'a farm id matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
    });
    expect(await bad('/api/v1/farms/.hidden/history')).toEqual({
      status: 400,
      error: 'a farm id matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
    });
    // Farm ids compare case-insensitively here too.
    expect((await farm.get('/api/v1/farms/FARM-A/history', auth)).status).toBe(200);
    // No period: the last full calendar month (UTC).
    const report = (await (await farm.get('/api/v1/report', auth)).json()) as any;
    const now = new Date();
    const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
    const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 0));
    expect([report.from, report.to]).toEqual([first.toISOString().slice(0, 10), last.toISOString().slice(0, 10)]);
    await farm.stop();
  });
});

describe('rasmon-collector report', () => {
  async function command(args: string[]) {
    try {
      const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, 'report', ...args]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const failed = err as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it('prints the report as a table, CSV or JSON; bad dates are one line and exit 2', async () => {
    const farm = await started([
      { id: 'farm-a', seats: 1, licenseKey: 'key-1' },
      { id: 'farm-b', seats: 3, licenseKey: 'key-1' },
    ]);
    const a = await farm.agent('farm-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    const file = join(mkdtempSync(join(tmpdir(), 'rasmon-report-')), 'collector.json');
    writeFileSync(file, JSON.stringify(farm.raw));
    const period = ['--from', today(), '--to', today()];

    const table = await command(['--config', file, ...period]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`License report ${today()} to ${today()} (UTC)`);
    expect(table.stdout).toMatch(/^farm-a\s+primary\s+key-1\s+1\s+2\s+\S+\s+-\s+1\s+[\d.]+\s+1\s+1$/m);
    expect(table.stdout).toMatch(/^key-1\s+farm-a farm-b\s+2\s+-$/m);

    const csv = await command(['--config', file, ...period, '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csvObjects(csv.stdout).map((r) => [r.row, r.name, r.peakUsers])).toEqual([
      ['farm', 'farm-a', '2'],
      // The collector recorded farm-b's day: nobody logged on, a real 0 (a farm without a record says "no data").
      ['farm', 'farm-b', '0'],
      ['licenseKey', 'key-1', '2'],
      ['keyDay', 'farm-a', '2'],
      ['keyDay', 'farm-b', '0'],
    ]);

    const json = await command(['--config', file, '--format', 'json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    const now = new Date();
    expect(report.from).toBe(
      new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString().slice(0, 10),
    );

    for (const args of [
      ['--from', '2026-13-01', '--to', '2026-12-31'],
      ['--from', '2026-12-01'],
      ['--format', 'xml'],
    ]) {
      const bad = await command(['--config', file, ...args]);
      expect(bad.code).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await command(['--config', file, '--from', '2026-13-01', '--to', '2026-12-31'])).stderr).toBe(
      'rasmon-collector report: --from must be a date YYYY-MM-DD (UTC) from 0001-01-01 to 9999-12-31, got "2026-13-01"\n',
    );
    await farm.stop();
  });
});

describe("RAS's figures in the report", () => {
  const USERNAME = 'CORP\\svc-rasmon';
  const PASSWORD = 'report-Pa55word';
  const pki = makeTestPki();
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-report-ras-'));
  const passwordFile = join(dir, 'ras-password');
  writeFileSync(passwordFile, `${PASSWORD}\n`);
  let broker: RasBrokerSimulator;
  beforeAll(async () => {
    broker = await RasBrokerSimulator.start({ pki, username: USERNAME, password: PASSWORD });
  });
  afterAll(async () => {
    await broker?.stop();
    pki.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('beside a farm with a broker as of its last answer, in JSON, CSV and the command; null or empty for one without', async () => {
    broker.license = sampleLicense(new Date(), {
      installedUsers: '20',
      usersLicenseInfo: '3',
      usersPeak: '9',
      currPeriodUsage: '7',
    });
    broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\vdi-1' }),
      sampleSession({ type: 3, user: 'CORP\\vdi-2' }),
    ];
    const ras = { url: broker.url, username: USERNAME, passwordFile, ca: pki.caFile, pollSeconds: 3600 };
    const farm = await started([
      { id: 'farm-a', seats: 5 },
      { id: 'farm-r', seats: 10, ras },
    ]);
    expect(await farm.collector.collector.pollBroker('farm-r')).toBe(true);
    const r = await farm.agent('farm-r', 'rdsh-1');
    await r.snapshot(1, [session('1', 'CORP\\alice')]);
    const doc = await farm.json('/api/v1/farms/farm-r');
    expect(doc.broker).toMatchObject({ up: true, users: 3 });
    const at = doc.broker.lastAnswerAt as string;
    expect(Date.parse(at)).toBeGreaterThan(0);

    const report = await farm.json(`/api/v1/report?from=${today()}&to=${today()}`);
    const byFarm = Object.fromEntries(report.farms.map((f: any) => [f.farm, f]));
    // rasmon's own figures: alice on the agent's host and the two VDI users.
    expect(byFarm['farm-r']).toMatchObject({ seats: 10, peakUsers: 3 });
    expect(byFarm['farm-r'].ras).toEqual({
      users: 3,
      peakUsers: 9,
      seats: 20,
      currPeriodUsage: 7,
      billingPeriodStart: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/),
      billingPeriodEnd: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/),
      at,
    });
    expect(byFarm['farm-a'].ras).toBeNull();

    const csvText = await (await farm.get(`/api/v1/report?from=${today()}&to=${today()}&format=csv`)).text();
    // The columns there were keep their order; RAS's come after them, then the corrected days, the
    // forecast, the customer, the key's highest day and the distinct users of a month.
    expect(parseCsv(csvText)[0]!.slice(-14)).toEqual([
      'daysPeakOnly',
      'rasUsers',
      'rasPeakUsers',
      'rasSeats',
      'rasCurrPeriodUsage',
      'rasAt',
      'daysCorrected',
      'forecastFullInDays',
      'forecastFullBy',
      'customer',
      'day',
      'highestDayTotal',
      'month',
      'distinctUsers',
    ]);
    const rows = csvObjects(csvText);
    expect(rows.find((row) => row.name === 'farm-r')).toMatchObject({
      peakUsers: '3',
      rasUsers: '3',
      rasPeakUsers: '9',
      rasSeats: '20',
      rasCurrPeriodUsage: '7',
      rasAt: at,
    });
    expect(rows.find((row) => row.name === 'farm-a')).toMatchObject({ rasUsers: '', rasPeakUsers: '', rasAt: '' });

    const file = join(dir, 'collector.json');
    writeFileSync(file, JSON.stringify(farm.raw));
    const period = ['--from', today(), '--to', today()];
    const table = await run(process.execPath, [COLLECTOR_BIN, 'report', '--config', file, ...period]);
    const lines = table.stdout.split('\n');
    expect(lines.find((line) => line.startsWith('farm '))).toMatch(/\s+ras users\s+ras peak\s+ras seats\s+ras as of$/);
    const asOf = `${at.slice(0, 16).replace('T', ' ')} UTC`;
    expect(lines.find((line) => line.startsWith('farm-r '))).toMatch(new RegExp(`\\s3\\s+9\\s+20\\s+${asOf}$`));
    expect(lines.find((line) => line.startsWith('farm-a '))).toMatch(/\s-\s+-\s+-\s+-$/);
    const json = await run(process.execPath, [
      COLLECTOR_BIN,
      'report',
      '--config',
      file,
      ...period,
      '--format',
      'json',
    ]);
    expect(JSON.parse(json.stdout).farms.map((f: any) => f.ras)).toEqual([null, byFarm['farm-r'].ras]);
    await farm.stop();
  });
});

async function reportCommand(args: string[], command = 'report') {
  try {
    const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, command, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function configFile(raw: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'rasmon-billing-')), 'collector.json');
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

describe('customers, the SPLA invoice check and distinct users', () => {
  it("an SPLA key over a billing period: the billed figure is each farm's highest daily peak, summed; a corrected day flows through", async () => {
    const farm = await started([
      { id: 'spla-p', license: 'spla', licenseKey: 'SPLA-7', customer: 'Acme' },
      // One key shared by two customers, as a provider's key often is.
      { id: 'spla-q', license: 'spla', licenseKey: 'SPLA-7', customer: 'Initech' },
      { id: 'other', seats: 5, licenseKey: 'EU-1', customer: 'Globex' },
    ]);
    const file = configFile(farm.raw);
    // The billing period: the last full calendar month (the command's default), three days of it recorded.
    const first = firstOfMonth(firstOfMonth() * DAY_MS - DAY_MS);
    const [d1, d2, d3] = [first, first + 1, first + 2];
    const client = redis.client();
    const put = (id: string, day: number, peak: number) =>
      client.hset(`${farm.prefix}:{${id}}:peaks`, String(day), `${peak},${day * DAY_MS + 36e5},,0,0,0`);
    // Daily peaks (hand computation below): p 4, 30, 6; q 5, 2, 9.
    await Promise.all([put('spla-p', d1, 4), put('spla-p', d2, 30), put('spla-p', d3, 6)]);
    await Promise.all([put('spla-q', d1, 5), put('spla-q', d2, 2), put('spla-q', d3, 9)]);
    // The 30 was a made-up host: `correct` takes it down to 7, and the billed figure follows.
    const corrected = await reportCommand(
      ['--config', file, '--farm', 'spla-p', '--day', dayText(d2), '--peak', '7', '--reason', 'made-up host, INC-1'],
      'correct',
    );
    expect(corrected.stderr).toBe('');
    expect(corrected.code).toBe(0);
    // By hand: p's highest day is 7 (the 2nd, corrected), q's is 9 (the 3rd): billed 7 + 9 = 16.
    // The highest single day is the 3rd, 6 + 9 = 15.
    const json = await reportCommand(['--config', file, '--format', 'json']);
    expect(json.stderr).toBe('');
    const report = JSON.parse(json.stdout);
    const key = report.licenseKeys.find((k: any) => k.licenseKey === 'SPLA-7');
    expect(key).toEqual({
      licenseKey: 'SPLA-7',
      farms: ['spla-p', 'spla-q'],
      peakUsersSum: 16,
      spla: true,
      billedUsers: 16,
      highestDayTotal: 15,
      highestDay: dayText(d3),
      days: [
        { day: dayText(d1), peaks: { 'spla-p': 4, 'spla-q': 5 }, total: 9 },
        { day: dayText(d2), peaks: { 'spla-p': 7, 'spla-q': 2 }, total: 9 },
        { day: dayText(d3), peaks: { 'spla-p': 6, 'spla-q': 9 }, total: 15 },
      ],
    });
    expect(report.farms.find((f: any) => f.farm === 'spla-p')).toMatchObject({
      customer: 'Acme',
      billedUsers: 7,
      daysCorrected: [dayText(d2)],
    });
    // A farm with no day in the period: no data, and so is its key.
    expect(report.farms.find((f: any) => f.farm === 'other').peakUsers).toBeNull();
    expect(report.licenseKeys.find((k: any) => k.licenseKey === 'EU-1')).toMatchObject({ peakUsersSum: null });
    expect(report.customers).toEqual([
      { customer: 'Acme', farms: ['spla-p'] },
      { customer: 'Globex', farms: ['other'] },
      { customer: 'Initech', farms: ['spla-q'] },
    ]);
    // The farm's own document names its customer too.
    expect((await farm.json('/api/v1/farms/spla-p')).customer).toBe('Acme');
    expect((await farm.json('/api/v1/farms')).farms.map((f: any) => f.customer)).toEqual(['Acme', 'Initech', 'Globex']);

    // One customer of the shared key: its own farm's rows, and the key's figures still the whole key's
    // (what Parallels bills the key), from the command and from the API.
    const acme = JSON.parse((await reportCommand(['--config', file, '--customer', 'Acme', '--format', 'json'])).stdout);
    const acmeApi = await farm.json(`/api/v1/report?from=${dayText(first)}&to=${dayText(d3 + 20)}&customer=Acme`);
    for (const narrowed of [acme, acmeApi]) {
      expect(narrowed.farms.map((f: any) => f.farm)).toEqual(['spla-p']);
      expect(narrowed.customers).toEqual([{ customer: 'Acme', farms: ['spla-p'] }]);
      expect(narrowed.licenseKeys).toHaveLength(1);
      expect(narrowed.licenseKeys[0]).toMatchObject({
        licenseKey: 'SPLA-7',
        farms: ['spla-p', 'spla-q'],
        billedUsers: 16,
      });
    }
    // The API and the command narrow through one filter: the same refusal, as 404 and as exit 2.
    for (const [path, error] of [
      ['/api/v1/report?customer=Nobody', 'no farm has customer "Nobody"'],
      ['/api/v1/report?key=NO-SUCH-KEY', 'no farm has licenseKey "NO-SUCH-KEY"'],
      ['/api/v1/report?customer=Globex&key=SPLA-7', 'no farm of customer "Globex" has licenseKey "SPLA-7"'],
    ] as const) {
      const refused = await farm.get(path);
      expect(refused.status).toBe(404);
      expect(((await refused.json()) as { error: string }).error).toBe(error);
    }
    const badFlag = await farm.get('/api/v1/report?distinctUsers=yes');
    expect(badFlag.status).toBe(400);
    expect(((await badFlag.json()) as { error: string }).error).toBe('distinctUsers must be true or false, not "yes"');

    // The invoice check as a mail reads it, for one key.
    const table = await reportCommand(['--config', file, '--key', 'SPLA-7']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('Invoice check, SPLA license key SPLA-7');
    expect(table.stdout).toMatch(new RegExp(`^${dayText(d3)}\\s+6\\s+9\\s+15$`, 'm'));
    expect(table.stdout).toMatch(/^period peak\s+7\s+9\s+-$/m);
    expect(table.stdout).toContain(
      "billed users (each farm's highest daily peak, summed over the key's SPLA farms): 16",
    );
    expect(table.stdout).not.toContain('other');
    const csv = csvObjects((await reportCommand(['--config', file, '--key', 'SPLA-7', '--format', 'csv'])).stdout);
    expect(csv.find((r) => r.row === 'licenseKey')).toMatchObject({
      name: 'SPLA-7',
      peakUsers: '16',
      billedUsers: '16',
      highestDayTotal: '15',
      day: dayText(d3),
    });
    expect(csv.filter((r) => r.row === 'keyDay' && r.name === 'spla-q').map((r) => [r.day, r.peakUsers])).toEqual([
      [dayText(d1), '5'],
      [dayText(d2), '2'],
      [dayText(d3), '9'],
    ]);
    // The other key's month has no data: the table says so instead of a peak of 0.
    const none = await reportCommand(['--config', file, '--customer', 'Globex']);
    expect(none.stdout).toMatch(/^other\s+primary\s+EU-1\s+5\s+no data\s+-\s+-\s+-\s+-\s+-\s+-$/m);
    expect(none.stdout).toMatch(/^EU-1\s+other\s+no data\s+-$/m);
    for (const [args, message] of [
      [['--customer', 'Nobody'], '--customer: no farm has customer "Nobody"'],
      [['--key', 'NO-SUCH-KEY'], '--key: no farm has licenseKey "NO-SUCH-KEY"'],
      [['--customer', 'Globex', '--key', 'SPLA-7'], '--key: no farm of customer "Globex" has licenseKey "SPLA-7"'],
    ] as const) {
      const bad = await reportCommand(['--config', file, ...args]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe(`rasmon-collector report: ${message}\n`);
    }
    await farm.stop();
  });

  it('distinct users per month per farm and per customer: a user on two farms of one customer counts once', async () => {
    const farm = await started(
      [
        { id: 'acme-1', seats: 10, customer: 'Acme' },
        { id: 'acme-2', seats: 10, customer: 'Acme' },
        { id: 'globex', seats: 10, customer: 'Globex' },
        { id: 'idle', seats: 10, customer: 'Initech' },
      ],
      { api: { tokensSha256: [sha256('api-secret')] }, distinctUsers: { retentionMonths: 40 } },
    );
    const a1 = await farm.agent('acme-1', 'rdsh-1');
    await a1.snapshot(1, [session('1', 'CORP\\Alice'), session('2', 'corp\\bob')]);
    // Bob logs off; he still counts for the month. Alice comes back later on the other farm.
    await a1.events([end(2, '2')]);
    const a2 = await farm.agent('acme-2', 'rdsh-1');
    await a2.snapshot(1, [session('1', 'corp\\alice'), session('2', 'corp\\carol')]);
    const g = await farm.agent('globex', 'rdsh-1');
    await g.snapshot(1, [session('1', 'corp\\alice')]);
    const month = today().slice(0, 7);
    const client = redis.client();
    const setKey = `${farm.prefix}:{acme-1}:monthusers:${month}`;
    await vi.waitFor(async () => expect(await client.smembers(setKey)).toHaveLength(2), { timeout: 10_000 });
    // Kept through the month 40 months after this one.
    const ttlDays = (await client.pttl(setKey)) / DAY_MS;
    expect(ttlDays).toBeGreaterThan(40 * 28);
    expect(ttlDays).toBeLessThan(41 * 31 + 1);

    const file = configFile(farm.raw);
    const period = ['--from', today(), '--to', today()];
    const json = JSON.parse(
      (await reportCommand(['--config', file, ...period, '--distinct-users', '--format', 'json'])).stdout,
    );
    expect(json.distinctUsers).toEqual([
      {
        month,
        farms: [
          { farm: 'acme-1', customer: 'Acme', distinctUsers: 2 },
          { farm: 'acme-2', customer: 'Acme', distinctUsers: 2 },
          { farm: 'globex', customer: 'Globex', distinctUsers: 1 },
          // The collector recorded the idle farm's day: nobody, a real 0.
          { farm: 'idle', customer: 'Initech', distinctUsers: 0 },
        ],
        customers: [
          { customer: 'Acme', farms: ['acme-1', 'acme-2'], distinctUsers: 3 },
          { customer: 'Globex', farms: ['globex'], distinctUsers: 1 },
          { customer: 'Initech', farms: ['idle'], distinctUsers: 0 },
        ],
      },
    ]);
    // The month before: no record, no user: no data, never 0.
    const before = dayText(firstOfMonth() - 1);
    const earlier = JSON.parse(
      (
        await reportCommand([
          '--config',
          file,
          '--from',
          before,
          '--to',
          before,
          '--distinct-users',
          '--format',
          'json',
        ])
      ).stdout,
    );
    expect(earlier.distinctUsers[0].customers.map((c: any) => c.distinctUsers)).toEqual([null, null, null]);
    const table = await reportCommand(['--config', file, ...period, '--distinct-users']);
    expect(table.stdout).toMatch(new RegExp(`^${month}\\s+Acme\\s+acme-1 acme-2\\s+3$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${month}\\s+Initech\\s+idle\\s+0$`, 'm'));
    const csv = csvObjects(
      (await reportCommand(['--config', file, ...period, '--distinct-users', '--customer', 'Acme', '--format', 'csv']))
        .stdout,
    );
    expect(csv.filter((r) => r.row === 'customerMonth').map((r) => [r.name, r.month, r.distinctUsers])).toEqual([
      ['Acme', month, '3'],
    ]);

    // The user list behind the counts: only with the API token.
    const list = `/api/v1/distinct-users/users?month=${month}&customer=Acme`;
    expect((await farm.get(list)).status).toBe(401);
    const served = await farm.get(list, { Authorization: 'Bearer api-secret' });
    expect(served.status).toBe(200);
    expect(served.headers.get('content-disposition')).toBe(`attachment; filename="rasmon-users-${month}-Acme.csv"`);
    expect(csvObjects(await served.text())).toEqual([
      { month, customer: 'Acme', user: 'corp\\alice', farms: 'acme-1 acme-2' },
      { month, customer: 'Acme', user: 'corp\\bob', farms: 'acme-1' },
      { month, customer: 'Acme', user: 'corp\\carol', farms: 'acme-2' },
    ]);
    const badMonth = await farm.get('/api/v1/distinct-users/users?month=2026-13', {
      Authorization: 'Bearer api-secret',
    });
    expect(badMonth.status).toBe(400);
    // A month whose counts are "no data" has no list either, rather than an empty one that would
    // read as no users: before the first month recorded, and past the retention.
    const previousMonth = dayText(firstOfMonth() - 1).slice(0, 7);
    const noList = await farm.get(`/api/v1/distinct-users/users?month=${previousMonth}&customer=Acme`, {
      Authorization: 'Bearer api-secret',
    });
    expect(noList.status).toBe(404);
    expect(await noList.json()).toEqual({
      error: `no distinct-user data for ${previousMonth}: it is before the first month recorded`,
    });
    const longAgo = await farm.get('/api/v1/distinct-users/users?month=2000-01', {
      Authorization: 'Bearer api-secret',
    });
    expect(await longAgo.json()).toEqual({
      error: 'no distinct-user data for 2000-01: it is past distinctUsers.retentionMonths (40)',
    });
    expect(served.headers.get('x-rasmon-farms-without-data')).toBeNull();
    // The report over HTTP carries the counts, never the names.
    const report = (await (
      await farm.get(`/api/v1/report?from=${today()}&to=${today()}&distinctUsers=true&customer=Acme`, {
        Authorization: 'Bearer api-secret',
      })
    ).json()) as any;
    expect(report.farms.map((f: any) => f.farm)).toEqual(['acme-1', 'acme-2']);
    expect(report.distinctUsers[0].customers).toEqual([
      { customer: 'Acme', farms: ['acme-1', 'acme-2'], distinctUsers: 3 },
    ]);
    await farm.stop();
  });

  it("users of sessions the farm's quota refused are not counted", async () => {
    const farm = await started([{ id: 'quota-a', seats: 10, maxSessions: 2 }]);
    const a = await farm.agent('quota-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    // The farm holds its 2 sessions: a third upsert is refused, and so is a made-up host's snapshot.
    const upsert = await a.events([{ seq: 2, at: Date.now(), op: 'upsert', session: session('3', 'corp\\x') }]);
    expect(upsert.rejected).toHaveLength(1);
    const fake = await farm.agent('quota-a', 'made-up-1');
    const snapshot = await fake.snapshot(1, [session('1', 'corp\\y'), session('2', 'corp\\z')]);
    expect(snapshot.rejected).toHaveLength(1);
    const key = `${farm.prefix}:{quota-a}:monthusers:${today().slice(0, 7)}`;
    expect((await redis.client().smembers(key)).sort()).toEqual(['corp\\a', 'corp\\b']);
    await farm.stop();
  });

  it('users of events the script did not apply, past a seq gap or duplicates, are not counted', async () => {
    const farm = await started([{ id: 'gap-a', seats: 10 }]);
    const a = await farm.agent('gap-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a')]);
    // Seq 3 is missing: seq 2 applies, seq 4 waits behind the gap; seq 1 again is a duplicate.
    await a.events([
      { seq: 1, at: Date.now(), op: 'upsert', session: session('9', 'corp\\dup') },
      { seq: 2, at: Date.now(), op: 'upsert', session: session('2', 'corp\\b') },
      { seq: 4, at: Date.now(), op: 'upsert', session: session('4', 'corp\\late') },
    ]);
    const key = `${farm.prefix}:{gap-a}:monthusers:${today().slice(0, 7)}`;
    expect((await redis.client().smembers(key)).sort()).toEqual(['corp\\a', 'corp\\b']);
    await farm.stop();
  });

  it('an API without tokens refuses the user list, saying how to get it', async () => {
    const farm = await started([{ id: 'acme-1', seats: 10, customer: 'Acme' }]);
    const res = await farm.get(`/api/v1/distinct-users/users?month=${today().slice(0, 7)}`);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error:
        'the user list is served only with an API token: set api.tokensSha256 in the configuration and send Authorization: Bearer <token>',
    });
    await farm.stop();
  });
});

describe("a month's set of distinct users", () => {
  it('the user list leaves out and names the farms without data for the month; with none, there is no list', async () => {
    const client = redis.client();
    const keys = new RedisKeys(`list-${Date.now()}`);
    const now = Date.now();
    const month = monthText(now);
    const nextMonth = monthText(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth() + 1, 15));
    const farm = (id: string) => ({ id, customer: 'Acme' }) as FarmConfig;
    // acme-1 recorded users this month; acme-2's first recorded month is the next (Redis lost what it
    // had, say); acme-3 never recorded any.
    await new MonthUsers(client, keys, () => 36).record('acme-1', ['corp\\alice'], now);
    await client.set(keys.monthUsersSince('acme-2'), nextMonth);
    const retention = { months: 36, now };
    const list = await userListCsv(client, keys, [farm('acme-1'), farm('acme-2'), farm('acme-3')], month, retention);
    expect(csvObjects(list.csv)).toEqual([{ month, customer: 'Acme', user: 'corp\\alice', farms: 'acme-1' }]);
    expect(list.farmsWithoutData).toEqual(['acme-2', 'acme-3']);
    await expect(userListCsv(client, keys, [farm('acme-2'), farm('acme-3')], month, retention)).rejects.toThrow(
      new NoMonthDataError(`no distinct-user data for ${month}: it is before the first month recorded`),
    );
    client.disconnect();
  });

  it('takes the month of the Redis clock near a turn, expires after the retention, and is not rewritten for ten minutes', async () => {
    const client = redis.client();
    const keys = new RedisKeys(`month-${Date.now()}`);
    let local = Date.UTC(2031, 4, 15, 12);
    const users = new MonthUsers(
      client,
      keys,
      () => 36,
      () => local,
    );
    // Mid-month, the collector's clock names the month.
    await users.record('farm-a', ['corp\\a', 'corp\\b', 'corp\\a']);
    const may = keys.monthUsers('farm-a', '2031-05');
    expect((await client.smembers(may)).sort()).toEqual(['corp\\a', 'corp\\b']);
    // Kept through the end of the month 36 months later: expires 2034-06-01 00:00 UTC.
    expect(await client.pexpiretime(may)).toBe(Date.UTC(2034, 5, 1));
    // Written once per ten minutes: a set Redis lost is not refilled before that, then it is.
    await client.del(may);
    await users.record('farm-a', ['corp\\a']);
    expect(await client.exists(may)).toBe(0);
    local += REWRITE_AFTER_MS;
    await users.record('farm-a', ['corp\\a']);
    expect(await client.smembers(may)).toEqual(['corp\\a']);
    // Seconds from a month's turn by the collector's clock, Redis's clock decides the month.
    local = Date.UTC(2031, 5, 1, 0, 0, 5);
    const before = monthText(Date.now());
    await users.record('farm-a', ['corp\\c']);
    const after = monthText(Date.now());
    const found = await Promise.all(
      [...new Set([before, after])].map((month) => client.sismember(keys.monthUsers('farm-a', month), 'corp\\c')),
    );
    expect(found).toContain(1);
    expect(await client.exists(keys.monthUsers('farm-a', '2031-06'))).toBe(0);
  });

  it('a collector starting over old month sets deletes those past the retention and re-expires the rest', async () => {
    const raw = rawConfig(redis.url, [{ id: 'sweep-a', seats: 10 }], { distinctUsers: { retentionMonths: 3 } });
    const keys = new RedisKeys((raw.redis as { prefix: string }).prefix);
    const client = redis.client();
    // Months counted back from the clock the suite runs at (Redis runs at the same one).
    const now = new Date();
    const monthStart = (add: number) => Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + add, 1);
    const key = (back: number) => keys.monthUsers('sweep-a', monthText(monthStart(-back)));
    // Sets written before, without an expiry: this month, the oldest month kept, and two past it.
    for (const back of [0, 3, 4, 24]) await client.sadd(key(back), `corp\\user-${back}`);
    const collector = await InProcessCollector.start(raw);
    try {
      // The sweep at Redis's ready sets the first-month marker last, after the pipeline's replies.
      await vi.waitFor(async () => expect(await client.get(keys.monthUsersSince('sweep-a'))).not.toBeNull(), {
        timeout: 10_000,
      });
      expect(await client.exists(key(4))).toBe(0);
      expect(await client.exists(key(24))).toBe(0);
      // Kept through the end of the month 3 months after their own.
      expect(await client.smembers(key(0))).toEqual(['corp\\user-0']);
      expect(await client.pexpiretime(key(0))).toBe(monthStart(4));
      expect(await client.smembers(key(3))).toEqual(['corp\\user-3']);
      expect(await client.pexpiretime(key(3))).toBe(monthStart(1));
      expect(await client.get(keys.monthUsersSince('sweep-a'))).toBe(monthText(monthStart(-3)));
    } finally {
      await collector.stop();
    }
  });

  it('reports no data for months before the first recorded one or past the retention, and a lowered retention shortens what is written', async () => {
    const client = redis.client();
    const keys = new RedisKeys(`since-${Date.now()}`);
    // A year ahead of any clock the suite runs at: Redis expires keys by its own clock, so every
    // expiry this test sets must lie in its future.
    const Y = new Date().getUTCFullYear() + 5;
    const now = Date.UTC(Y, 4, 15, 12);
    // Sets written before the first-month marker existed: one within 36 months, one older.
    await client.sadd(keys.monthUsers('farm-a', `${Y}-03`), 'corp\\old');
    await client.sadd(keys.monthUsers('farm-a', `${Y - 4}-01`), 'corp\\older');
    const users = new MonthUsers(
      client,
      keys,
      () => 36,
      () => now,
    );
    await users.record('farm-a', ['corp\\a', 'corp\\b']);
    // The first write swept the farm's months: the older set is gone, the marker names the oldest kept.
    expect(await client.exists(keys.monthUsers('farm-a', `${Y - 4}-01`))).toBe(0);
    expect(await client.get(keys.monthUsersSince('farm-a'))).toBe(`${Y}-03`);
    expect(await client.pexpiretime(keys.monthUsers('farm-a', `${Y}-03`))).toBe(Date.UTC(Y + 3, 3, 1));

    const farm = { id: 'farm-a' } as FarmConfig;
    const history: FarmHistory = {
      farm,
      days: [`${Y}-02-10`, `${Y}-03-10`, `${Y}-04-10`, `${Y}-05-10`].map(
        (day) => ({ day }) as FarmHistory['days'][number],
      ),
    };
    const period = { fromDay: Date.UTC(Y, 1, 1) / DAY_MS, toDay: Date.UTC(Y, 4, 31) / DAY_MS };
    const counts = async (months: number) =>
      (await readDistinctUsers(client, keys, [history], period, { months, now })).map((month) => [
        month.month,
        month.farms[0]!.distinctUsers,
      ]);
    // February had days but no users recorded yet: no data, not 0. April had days and no users: 0.
    expect(await counts(36)).toEqual([
      [`${Y}-02`, null],
      [`${Y}-03`, 1],
      [`${Y}-04`, 0],
      [`${Y}-05`, 2],
    ]);

    // Retention lowered to 1 month: March is past it, deleted at the sweep and no data in reports.
    const shorter = new MonthUsers(
      client,
      keys,
      () => 1,
      () => now,
    );
    expect(await shorter.sweep('farm-a')).toEqual({ deleted: 1, kept: 1 });
    expect(await client.exists(keys.monthUsers('farm-a', `${Y}-03`))).toBe(0);
    expect(await client.pexpiretime(keys.monthUsers('farm-a', `${Y}-05`))).toBe(Date.UTC(Y, 6, 1));
    expect(await counts(1)).toEqual([
      [`${Y}-02`, null],
      [`${Y}-03`, null],
      [`${Y}-04`, 0],
      [`${Y}-05`, 2],
    ]);
  });
});
