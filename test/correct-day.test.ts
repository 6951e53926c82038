/**
 * `rasmon-collector correct`: the way back from a day a made-up host falsified. The attack of issue
 * 22 (a host living an hour with 2,000 made-up users) leaves yesterday's record at a peak of 2,000, the
 * farm's all-time peak at 2,000 and an SPLA farm's billed users at 2,000. The day's record is written
 * here as the day-close script writes it (a day cannot be closed faster than it passes); the command
 * is the real bin against a real Redis, and the report and history come from a real collector.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { DAY_MS, clearOfMidnight, dayText } from './support/calendar.js';

const run = promisify(execFile);
const redis = useRedis();

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, ...args], {
      env: { ...process.env, RASMON_LOG_LEVEL: 'info' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('correct', () => {
  it("rewrites a falsified day: its record, the all-time peak it set, an SPLA farm's billed users; kept and shown as corrected", async () => {
    await clearOfMidnight();
    const raw = rawConfig(redis.url, [{ id: 'farm-s', license: 'spla' }]);
    const prefix = (raw.redis as { prefix: string }).prefix;
    const file = join(mkdtempSync(join(tmpdir(), 'rasmon-correct-')), 'collector.json');
    writeFileSync(file, JSON.stringify(raw));
    const today = Math.floor(Date.now() / DAY_MS);
    const [yesterday, before] = [today - 1, today - 2];
    const client = redis.client();
    const peaks = `${prefix}:{farm-s}:peaks`;
    // Two days ago a real peak of 40; yesterday the made-up host's 2,000 (peak, when, seats, highest
    // overuse, admissions, ms over the seats), and the all-time peak it set.
    await client.hset(peaks, String(before), `40,${before * DAY_MS + 36e5},,0,0,0`);
    await client.hset(peaks, String(yesterday), `2000,${yesterday * DAY_MS + 72e5},,0,1995,0`);
    await client.hset(`${prefix}:{farm-s}:meta`, 'peak', 2000);

    const day = dayText(yesterday);
    const done = await cli([
      'correct',
      '--config',
      file,
      '--farm',
      'farm-s',
      '--day',
      day,
      '--peak',
      '38',
      '--admissions',
      '0',
      '--reason',
      'made-up host rdsh-x with a leaked token, INC-4711',
      '--by',
      'ops-alice',
    ]);
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(`corrected ${day} of farm farm-s`);
    expect(done.stdout).toContain('all-time peak now 40');
    expect(await client.hget(peaks, String(yesterday))).toBe(`38,${yesterday * DAY_MS + 72e5},,0,0,0`);
    expect(await client.hget(`${prefix}:{farm-s}:meta`, 'peak')).toBe('40');
    const kept = JSON.parse((await client.hget(`${prefix}:{farm-s}:corrections`, String(yesterday)))!) as Record<
      string,
      unknown
    >;
    expect(kept).toMatchObject({
      by: 'ops-alice',
      reason: 'made-up host rdsh-x with a leaked token, INC-4711',
      before: `2000,${yesterday * DAY_MS + 72e5},,0,1995,0`,
    });

    const collector = await InProcessCollector.start(raw);
    try {
      const from = dayText(before);
      const report = (await (await fetch(`${collector.url}/api/v1/report?from=${from}&to=${day}`)).json()) as {
        farms: Array<Record<string, unknown>>;
      };
      expect(report.farms[0]).toMatchObject({ peakUsers: 40, billedUsers: 40, admissions: 0, daysCorrected: [day] });
      const history = (await (
        await fetch(`${collector.url}/api/v1/farms/farm-s/history?from=${from}&to=${day}`)
      ).json()) as { days: Array<Record<string, unknown>> };
      expect(history.days.map((d) => [d.day, d.peakUsers, (d.corrected as { by?: string } | undefined)?.by])).toEqual([
        [from, 40, undefined],
        [day, 38, 'ops-alice'],
      ]);
      const csv = await (
        await fetch(`${collector.url}/api/v1/farms/farm-s/history?from=${from}&to=${day}&format=csv`)
      ).text();
      expect(csv).toContain('made-up host rdsh-x with a leaked token');
    } finally {
      await collector.stop();
    }

    // Today is still being recorded; a day without a record, a bad day and no reason are refused.
    const base = ['correct', '--config', file, '--farm', 'farm-s', '--peak', '1'];
    const todayRun = await cli([...base, '--day', dayText(today), '--reason', 'x']);
    expect(todayRun.code).toBe(1);
    expect(todayRun.stderr).toContain('is not over yet');
    const none = await cli([...base, '--day', dayText(today - 30), '--reason', 'x']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('has no record of');
    expect((await cli([...base, '--day', '2026-02-30', '--reason', 'x'])).code).toBe(2);
    expect((await cli([...base, '--day', day])).stderr).toContain('--reason');
    expect((await cli([...base, '--day', day, '--reason', 'x', '--admissions', '-1'])).code).toBe(2);
    client.disconnect();
  });
});
