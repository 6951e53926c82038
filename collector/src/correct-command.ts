/**
 * `rasmon-collector correct --config FILE --farm ID --day YYYY-MM-DD --peak N [--admissions N]
 * [--max-overuse N] [--minutes-over N] --reason TEXT [--by NAME]`: rewrites one closed day's record
 * (docs/design.md §6, "History a bad host cannot falsify"). A host that lived an hour with made-up
 * users leaves its peak in the day's record, the farm's all-time peak and an SPLA farm's billed
 * users; this is the way back. The day's record before and after, who and why are kept beside it
 * (reports and the history show the day as corrected) and logged. The farm's all-time peak follows
 * when the corrected day had set it. Exit 0 when rewritten, 1 when the farm has no record of that
 * day or Redis cannot be reached, 2 on bad usage or configuration.
 */
import { userInfo } from 'node:os';
import { DAY_MS } from '@rasmon/protocol';
import { parseFlags } from './cli-flags.js';
import { loadCommandFarm } from './farm-command.js';
import { createLogger } from './logger.js';
import { createRedis } from './engine/redis-client.js';
import {
  DAY_RECORD_FIELDS,
  RedisKeys,
  splitDayRecord,
  type DayRecordField,
  type MetaField,
  type StoredCorrection,
} from './engine/redis-schema.js';
import { parseDay } from './report/report-period.js';

export const CORRECT_USAGE = `Usage: rasmon-collector correct --config FILE --farm ID --day YYYY-MM-DD --peak N
         [--admissions N] [--max-overuse N] [--minutes-over N] --reason TEXT [--by NAME]

Rewrites a closed UTC day's record of the farm (a day a made-up host falsified): its peak users,
and when given its admissions, highest overuse and minutes over the seats. The record before and
after, --by (default: the user running the command) and --reason are kept with the day, which
reports and the history show as corrected. The farm's all-time peak follows when that day had set
it. Today cannot be corrected: it is still being recorded.`;

/** A whole number from 0, or undefined when not given; fails on anything else. */
function count(value: string | undefined, flag: string, fail: (message: string) => never): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) fail(`--${flag} must be a whole number from 0, not ${JSON.stringify(value)}`);
  return Number(value);
}

export async function correctDay(argv: string[], fail: (message: string) => never): Promise<number> {
  const values = parseFlags(
    argv,
    {
      config: { type: 'string', short: 'c' },
      farm: { type: 'string' },
      day: { type: 'string' },
      peak: { type: 'string' },
      admissions: { type: 'string' },
      'max-overuse': { type: 'string' },
      'minutes-over': { type: 'string' },
      reason: { type: 'string' },
      by: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    (message) => fail(`${message}\n${CORRECT_USAGE}`),
  );
  if (values.help) {
    process.stdout.write(`${CORRECT_USAGE}\n`);
    return 0;
  }
  if (!values.farm || !values.day || values.peak === undefined)
    fail(`correct needs --farm, --day and --peak\n${CORRECT_USAGE}`);
  const reason = values.reason?.trim() ?? '';
  if (reason === '' || reason.length > 500)
    fail('correct needs --reason: why the day is rewritten (1 to 500 characters)');
  const by = (values.by ?? userInfo().username).trim().slice(0, 100) || 'unknown';
  const day = parseDay(values.day);
  if (day === undefined) fail(`--day ${JSON.stringify(values.day)} is not a date YYYY-MM-DD`);
  const wanted: Partial<Record<DayRecordField, number>> = { peakUsers: count(values.peak, 'peak', fail)! };
  const admissions = count(values.admissions, 'admissions', fail);
  const maxOveruse = count(values['max-overuse'], 'max-overuse', fail);
  const minutesOver = count(values['minutes-over'], 'minutes-over', fail);
  if (admissions !== undefined) wanted.admissions = admissions;
  if (maxOveruse !== undefined) wanted.maxOveruse = maxOveruse;
  if (minutesOver !== undefined) wanted.msOverSeats = minutesOver * 60_000;
  const { config, farm } = loadCommandFarm(values.config, values.farm, fail);

  const log = createLogger();
  const redis = createRedis(config.redis);
  redis.on('error', () => undefined);
  const keys = new RedisKeys(config.redis.prefix);
  const peaks = keys.farm(farm.id).peaks;
  const meta = keys.farm(farm.id).meta;
  try {
    await redis.connect();
    const [seconds] = await redis.time();
    if (day >= Math.floor((Number(seconds) * 1000) / DAY_MS)) {
      process.stderr.write(`rasmon-collector: ${values.day} is not over yet (UTC): correct it from tomorrow\n`);
      return 1;
    }
    // Read, then write only if neither the day nor the farm's records changed meanwhile.
    for (let attempt = 0; attempt < 5; attempt++) {
      await redis.watch(peaks, meta);
      const [before, all, peak] = await Promise.all([
        redis.hget(peaks, String(day)),
        redis.hgetall(peaks),
        redis.hget(meta, 'peak' satisfies MetaField),
      ]);
      if (before === null) {
        await redis.unwatch();
        process.stderr.write(`rasmon-collector: farm ${farm.id} has no record of ${values.day}\n`);
        return 1;
      }
      const record = splitDayRecord(before);
      const after = DAY_RECORD_FIELDS.map((field) => String(wanted[field] ?? record[field] ?? '')).join(',');
      // The all-time peak follows only when this day had set it: an older day's peak may be gone
      // from the hash (kept 450 days), and must not be lowered.
      const oldDayPeak = Number(record.peakUsers);
      let newPeak: number | undefined;
      if (peak !== null && Number(peak) === oldDayPeak) {
        newPeak = Math.max(
          wanted.peakUsers!,
          ...Object.entries(all)
            .filter(([field]) => field !== String(day))
            .map(([, value]) => Number(splitDayRecord(value).peakUsers) || 0),
        );
      }
      const correction: StoredCorrection = { at: Date.now(), by, reason, before, after };
      const multi = redis
        .multi()
        .hset(peaks, String(day), after)
        .hset(keys.corrections(farm.id), String(day), JSON.stringify(correction))
        .hincrby(meta, 'version' satisfies MetaField, 1);
      if (newPeak !== undefined) multi.hset(meta, 'peak' satisfies MetaField, newPeak);
      const done = await multi.exec();
      if (done === null) continue;
      for (const [err] of done) if (err) throw err;
      log.info(
        { farm: farm.id, day: values.day, by, reason, before, after, peak: newPeak ?? Number(peak) },
        'day record corrected',
      );
      process.stdout.write(
        `corrected ${values.day} of farm ${farm.id}: ${before} -> ${after}` +
          (newPeak === undefined ? '' : `; all-time peak now ${newPeak}`) +
          '\n',
      );
      return 0;
    }
    process.stderr.write('rasmon-collector: the farm kept changing while correcting; run it again\n');
    return 1;
  } catch (err) {
    process.stderr.write(`rasmon-collector: Redis did not answer: ${(err as Error).message}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}
