/**
 * The words of the status page (collector/static/status.js, a browser module with no DOM): the forecast
 * line, the headline, the order of the farms and the dates. Every instant is fixed here; the zone is
 * UTC, so the viewer's time is left out (test/status-page.test.ts shows it in a browser in another zone).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Farm {
  id: string;
  seats: number | null;
  overuseUsers: number;
  deactivationRisk: boolean;
  overuseGrace: { started: boolean; endsAt: string | null; exhausted: boolean };
  state: 'active' | 'grace' | 'expired';
  expires: string;
  graceEnd: string;
  broker: { needsAttention: boolean } | null;
}

interface StatusWords {
  forecastText(forecast: unknown, now: number): string | null;
  headline(farms: Farm[], now: number): { level: string; parts: string[] };
  bySeverity(farms: Farm[], now: number): Farm[];
  dayTime(ms: number, now: number, local: boolean): string;
  whenText(ms: number, now: number): string;
}

const words = (await import(new URL('../collector/static/status.js', import.meta.url).href)) as StatusWords;

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-06T10:00:00Z');
const at = (ms: number) => new Date(ms).toISOString();

function farm(id: string, over: Partial<Farm> = {}): Farm {
  return {
    id,
    seats: 10,
    overuseUsers: 0,
    deactivationRisk: false,
    overuseGrace: { started: false, endsAt: null, exhausted: false },
    state: 'active',
    expires: at(NOW + 300 * DAY),
    graceEnd: at(NOW + 330 * DAY),
    broker: null,
    ...over,
  };
}

const overFor = (id: string, endsInMs: number) =>
  farm(id, { overuseUsers: 2, overuseGrace: { started: true, endsAt: at(NOW + endsInMs), exhausted: false } });

let zone: string | undefined;
beforeAll(() => {
  zone = process.env.TZ;
  process.env.TZ = 'UTC';
});
afterAll(() => {
  if (zone === undefined) delete process.env.TZ;
  else process.env.TZ = zone;
});

describe('the status page in words', () => {
  it('says the forecast when the API gives one, and nothing when it is null or absent', () => {
    expect(words.forecastText({ fullInDays: 9, fullBy: '2026-12-15' }, NOW)).toBe(
      'at this trend, full in about 9 days, by 15 December',
    );
    expect(words.forecastText({ fullInDays: 1.2, fullBy: '2026-12-07' }, NOW)).toBe(
      'at this trend, full in about 1 day, by 7 December',
    );
    expect(words.forecastText({ fullInDays: 0, fullBy: '2026-12-06' }, NOW)).toBe(
      'at this trend, the daily peak has reached the seats',
    );
    // Past the turn of the year the year is named.
    expect(words.forecastText({ fullInDays: 40, fullBy: '2027-01-15' }, NOW)).toBe(
      'at this trend, full in about 40 days, by 15 January 2027',
    );
    expect(words.forecastText(null, NOW)).toBeNull();
    expect(words.forecastText(undefined, NOW)).toBeNull();
    expect(words.forecastText({ fullInDays: 'soon' }, NOW)).toBeNull();
  });

  it('says "All farms within their seats" when none is over, with nothing else wrong', () => {
    expect(words.headline([farm('a'), farm('b', { seats: null })], NOW)).toEqual({
      level: 'ok',
      parts: ['All farms within their seats', 'no license expired or expiring'],
    });
  });

  it('counts the farms over their seats, in overuse grace, expired and expiring, naming the first deactivation', () => {
    const farms = [
      overFor('late', 6 * DAY),
      overFor('soon', 2 * DAY + 5 * 60_000),
      farm('gone', { state: 'expired', expires: at(NOW - 40 * DAY), graceEnd: at(NOW - 10 * DAY) }),
      farm('lapsed', { state: 'grace', expires: at(NOW - 5 * DAY), graceEnd: at(NOW + 25 * DAY) }),
      farm('ending', { expires: at(NOW + 12 * DAY), graceEnd: at(NOW + 42 * DAY) }),
      farm('fine'),
    ];
    expect(words.headline(farms, NOW)).toEqual({
      level: 'bad',
      parts: [
        '2 farms over their seats',
        '2 in overuse grace: soon deactivates 8 Dec 10:05 UTC if still over',
        '1 license expired',
        '1 license past its expiry, in the expiry grace',
        '1 license expiring within 30 days',
      ],
    });
    expect(words.headline([overFor('only', DAY)], NOW).parts[0]).toBe('1 farm over its seats');
  });

  it('orders the farms: over seats by the soonest deactivation, then in grace, then expired or expiring, then by name', () => {
    const farms = [
      farm('alpha'),
      farm('bravo', { expires: at(NOW + 12 * DAY), graceEnd: at(NOW + 42 * DAY) }),
      overFor('charlie', 6 * DAY),
      overFor('delta', 2 * DAY),
      farm('echo', { state: 'expired', expires: at(NOW - 40 * DAY), graceEnd: at(NOW - 10 * DAY) }),
      farm('foxtrot', { state: 'grace', expires: at(NOW - 5 * DAY), graceEnd: at(NOW + 25 * DAY) }),
      farm('golf', { overuseGrace: { started: true, endsAt: at(NOW + 3 * DAY), exhausted: false } }),
      farm('hotel', {
        overuseUsers: 1,
        deactivationRisk: true,
        overuseGrace: { started: true, endsAt: at(NOW - DAY), exhausted: true },
      }),
      farm('india', { seats: null, overuseUsers: 0 }),
    ];
    expect(words.bySeverity(farms, NOW).map((f) => f.id)).toEqual([
      'hotel',
      'delta',
      'charlie',
      'golf',
      'echo',
      'foxtrot',
      'bravo',
      'alpha',
      'india',
    ]);
  });

  it('writes a moment as day, month and UTC time, with the year only when it is not this one', () => {
    expect(words.dayTime(Date.parse('2026-12-12T14:05:00Z'), NOW, false)).toBe('12 Dec 14:05');
    expect(words.dayTime(Date.parse('2027-01-02T03:04:00Z'), NOW, false)).toBe('2 Jan 2027 03:04');
    expect(words.whenText(Date.parse('2026-12-12T14:05:00Z'), NOW)).toBe('12 Dec 14:05 UTC');
  });
});
