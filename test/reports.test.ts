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
import { TestAgent, end, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { csvObjects, parseCsv } from './support/csv.js';
import { RasBrokerSimulator, makeTestPki, sampleLicense, sampleSession } from './support/ras-broker-simulator.js';
import { DAY_MS, clearOfMidnight, dayNumber, dayText } from './support/calendar.js';

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
    expect(report.licenseKeys).toEqual([
      { licenseKey: 'EU key 1', farms: ['farm-a', 'farm-b'], peakUsersSum: 5 },
      { licenseKey: 'SPLA/2026', farms: ['farm-s'], peakUsersSum: 4 },
    ]);

    const csv = await farm.get(`/api/v1/report?from=${today()}&to=${today()}&format=csv`);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toBe(
      `attachment; filename="rasmon-report-${today()}-${today()}.csv"`,
    );
    const rows = csvObjects(await csv.text());
    expect(rows.map((r) => [r.row, r.name, r.peakUsers])).toEqual([
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
    expect(table.stdout).toMatch(/^key-1\s+farm-a farm-b\s+2$/m);

    const csv = await command(['--config', file, ...period, '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csvObjects(csv.stdout).map((r) => [r.row, r.name, r.peakUsers])).toEqual([
      ['farm', 'farm-a', '2'],
      ['farm', 'farm-b', '0'],
      ['licenseKey', 'key-1', '2'],
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
    // The columns there were keep their order; RAS's come after them, then the corrected days and
    // the forecast.
    expect(parseCsv(csvText)[0]!.slice(-9)).toEqual([
      'daysPeakOnly',
      'rasUsers',
      'rasPeakUsers',
      'rasSeats',
      'rasCurrPeriodUsage',
      'rasAt',
      'daysCorrected',
      'forecastFullInDays',
      'forecastFullBy',
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
