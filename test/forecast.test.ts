/**
 * The forecast of the daily peak through the whole collector (docs/design.md §4, "Forecast"): closed
 * days' records in a real Redis, read back into `ras_license_forecast_full_days`, the API's farm
 * summary and document, the report's JSON and CSV and the report command.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { parseConfig } from '../collector/src/config/config.js';
import { FarmReader } from '../collector/src/engine/farm-reader.js';
import { RedisKeys } from '../collector/src/engine/redis-schema.js';
import { Scrape } from './support/prometheus-text.js';
import { csvObjects } from './support/csv.js';
import { DAY_MS, clearOfMidnight, dayNumber, dayText } from './support/calendar.js';

const run = promisify(execFile);
const redis = useRedis();

describe('forecast', () => {
  it('rising, flat, full and uncapped farms: the metric, the API, the report and the command', async () => {
    await clearOfMidnight();
    const raw = rawConfig(redis.url, [
      { id: 'farm-up', seats: 200 },
      { id: 'farm-flat', seats: 200 },
      { id: 'farm-full', seats: 100 },
      { id: 'farm-s', license: 'spla' },
    ]);
    const prefix = (raw.redis as { prefix: string }).prefix;
    const today = dayNumber();
    const client = redis.client();
    // Eight weeks of closed days (peak, when, seats, highest overuse, admissions, ms over seats).
    const write = async (farm: string, peak: (ago: number) => number, seats: number | '') => {
      for (let ago = 56; ago >= 1; ago -= 1) {
        const day = today - ago;
        await client.hset(
          `${prefix}:{${farm}}:peaks`,
          String(day),
          `${peak(ago)},${day * DAY_MS + 36e5},${seats},0,0,0`,
        );
      }
    };
    // One user more every day: yesterday 155, 200 is 44 days from today.
    await write('farm-up', (ago) => 156 - ago, 200);
    await write('farm-flat', () => 150, 200);
    await write('farm-full', () => 100, 100);
    await write('farm-s', (ago) => 156 - ago, '');
    const collector = await InProcessCollector.start(raw, { tickMs: 100 });
    try {
      const rising = { fullInDays: 44, fullBy: dayText(today + 44) };
      const scrape = await vi.waitFor(
        async () => {
          const s = await Scrape.from(collector.url);
          expect(s.value('ras_license_forecast_full_days', { farm: 'farm-up' })).toBe(44);
          return s;
        },
        { timeout: 20_000 },
      );
      expect(scrape.value('ras_license_forecast_full_days', { farm: 'farm-full' })).toBe(0);
      // No forecast, no series.
      expect(scrape.value('ras_license_forecast_full_days', { farm: 'farm-flat' })).toBeUndefined();
      expect(scrape.value('ras_license_forecast_full_days', { farm: 'farm-s' })).toBeUndefined();

      const farms = (await (await fetch(`${collector.url}/api/v1/farms`)).json()) as {
        farms: Array<{ id: string; forecast: unknown }>;
      };
      expect(Object.fromEntries(farms.farms.map((farm) => [farm.id, farm.forecast]))).toEqual({
        'farm-up': rising,
        'farm-flat': null,
        'farm-full': { fullInDays: 0, fullBy: dayText(today) },
        'farm-s': null,
      });
      const document = (await (await fetch(`${collector.url}/api/v1/farms/farm-up`)).json()) as { forecast: unknown };
      expect(document.forecast).toEqual(rising);

      const period = `from=${dayText(today - 7)}&to=${dayText(today - 1)}`;
      const report = (await (await fetch(`${collector.url}/api/v1/report?${period}`)).json()) as {
        farms: Array<{ farm: string; forecast: unknown }>;
      };
      expect(report.farms.map((farm) => [farm.farm, farm.forecast])).toEqual([
        ['farm-up', rising],
        ['farm-flat', null],
        ['farm-full', { fullInDays: 0, fullBy: dayText(today) }],
        ['farm-s', null],
      ]);
      const csv = csvObjects(await (await fetch(`${collector.url}/api/v1/report?${period}&format=csv`)).text());
      expect(csv.map((row) => [row.name, row.forecastFullInDays, row.forecastFullBy])).toEqual([
        ['farm-up', '44', rising.fullBy],
        ['farm-flat', '', ''],
        ['farm-full', '0', dayText(today)],
        ['farm-s', '', ''],
      ]);

      const file = join(mkdtempSync(join(tmpdir(), 'rasmon-forecast-')), 'collector.json');
      writeFileSync(file, JSON.stringify(raw));
      const { stdout } = await run(process.execPath, [
        COLLECTOR_BIN,
        'report',
        '--config',
        file,
        '--from',
        dayText(today - 7),
        '--to',
        dayText(today - 1),
      ]);
      const lines = stdout.split('\n');
      expect(lines[2]).toMatch(/\bfull in days\s+full by$/);
      expect(lines.find((line) => line.startsWith('farm-up '))).toMatch(new RegExp(`\\s44\\s+${rising.fullBy}$`));
      expect(lines.find((line) => line.startsWith('farm-flat '))).toMatch(/\s-\s+-$/);
    } finally {
      await collector.stop();
    }
  });

  it('is made again when the day closes or the seats change, not at every read', async () => {
    await clearOfMidnight();
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 200 }]);
    const prefix = (raw.redis as { prefix: string }).prefix;
    const config = parseConfig(raw, 'test');
    const client = redis.client();
    const keys = new RedisKeys(prefix);
    const reader = new FarmReader(client, keys);
    const today = dayNumber();
    const write = async (peak: (ago: number) => number, until = today) => {
      for (let ago = 56; ago >= 1; ago -= 1)
        await client.hset(keys.farm('farm-a').peaks, String(until - ago), `${peak(ago)},,200,0,0,0`);
    };
    // The open day is the scripts' (meta `day`); the tick would set it, here the test does.
    await client.hset(keys.farm('farm-a').meta, 'day', today);
    await write((ago) => 156 - ago);
    const forecast = async (farms = config.farms) => (await reader.read(farms)).farms[0]!.forecast;
    expect(await forecast()).toEqual({ fullInDays: 44, fullBy: dayText(today + 44) });
    // The records turn flat: the same day and seats keep the forecast made (no refit per read).
    await write(() => 150);
    expect(await forecast()).toEqual({ fullInDays: 44, fullBy: dayText(today + 44) });
    // Other seats: made again, from the flat records: none.
    const more = parseConfig(rawConfig(redis.url, [{ id: 'farm-a', seats: 250 }]), 'test').farms;
    expect(await forecast(more)).toBeNull();
    // Back to 200 seats, the same rising line again, and the day closes: made again for the new day,
    // a day nearer the same date.
    await write((ago) => 157 - ago, today + 1);
    await client.hset(keys.farm('farm-a').meta, 'day', today + 1);
    expect(await forecast()).toEqual({ fullInDays: 43, fullBy: dayText(today + 44) });
  });
});
