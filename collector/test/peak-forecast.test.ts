/**
 * The forecast of the daily peak (docs/design.md §4, "Forecast"): a pure function of the closed
 * days' peaks, the day still open and the seats. Every series is built from a fixed day, never from
 * the clock.
 */
import { DAY_MS } from '@rasmon/protocol';
import { describe, expect, it } from 'vitest';
import { forecastDays, forecastFull, type DayPeak } from '../src/engine/peak-forecast.js';

/** Monday 7 December 2026, the day still open. */
const TODAY = Date.UTC(2026, 11, 7) / DAY_MS;
const dayText = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10);

/** The closed days `count` days back from TODAY, each with the peak `peak(daysAgo, day)`. */
function series(count: number, peak: (daysAgo: number, day: number) => number, today = TODAY): DayPeak[] {
  const days: DayPeak[] = [];
  for (let ago = count; ago >= 1; ago -= 1)
    days.push({ day: today - ago, peakUsers: Math.round(peak(ago, today - ago)) });
  return days;
}

/** A small deterministic generator (a linear congruential one), uniform in [-1, 1). */
function noise(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
}

/** Saturday and Sunday of a day number (1 January 1970 was a Thursday). */
const weekend = (day: number) => [2, 3].includes(day % 7);

describe('forecast of the daily peak', () => {
  it('a peak rising one user a day from 100 reaches 200 seats on the day the line says', () => {
    // Yesterday's peak is 155: 200 is 45 days after it, 44 after today.
    const forecast = forecastFull(
      series(56, (ago) => 156 - ago),
      TODAY,
      200,
    );
    expect(forecast).toEqual({ fullInDays: 44, fullBy: dayText(TODAY + 44) });
  });

  it('a flat peak gives no forecast, however close to the seats', () => {
    expect(
      forecastFull(
        series(56, () => 190),
        TODAY,
        200,
      ),
    ).toBeNull();
  });

  it('a falling peak gives no forecast', () => {
    expect(
      forecastFull(
        series(56, (ago) => 120 + ago),
        TODAY,
        200,
      ),
    ).toBeNull();
  });

  it('a weekly pattern (weekdays high, weekends low) is not read as a trend, whatever the weekday today', () => {
    for (let shift = 0; shift < 7; shift += 1) {
      const today = TODAY + shift;
      const days = series(56, (_, day) => (weekend(day) ? 30 : 180), today);
      expect(forecastFull(days, today, 200), `today ${dayText(today)}`).toBeNull();
    }
  });

  it('a weekly pattern on a rising trend gives the forecast of its weekdays', () => {
    // Weekdays rise a user a day; weekends stay low and would drag a fit on the days down.
    const days = series(56, (ago, day) => (weekend(day) ? 20 : 150 - ago));
    const forecast = forecastFull(days, TODAY, 200)!;
    expect(forecast).not.toBeNull();
    // The weekday line reaches 200 50 days from today.
    expect(forecast.fullInDays).toBeGreaterThanOrEqual(49);
    expect(forecast.fullInDays).toBeLessThanOrEqual(52);
  });

  it('a noisy rising peak gives about the forecast of its trend', () => {
    // 100 + 0.5 a day, ±8 of noise: the line of the days reaches 170 84 days from today, the
    // weekly maxima (a few users above the line) somewhat sooner.
    const next = noise(7);
    const forecast = forecastFull(
      series(56, (ago) => 100 + 0.5 * (56 - ago) + 8 * next()),
      TODAY,
      170,
    )!;
    expect(forecast).not.toBeNull();
    expect(forecast.fullInDays).toBeGreaterThan(60);
    expect(forecast.fullInDays).toBeLessThanOrEqual(84);
  });

  it('noise around a flat peak reads as a trend in few series (the test is one-sided at 10 %)', () => {
    let forecasts = 0;
    const runs = 300;
    for (let seed = 1; seed <= runs; seed += 1) {
      const next = noise(seed);
      if (
        forecastFull(
          series(56, () => 150 + 10 * next()),
          TODAY,
          200,
        ) !== null
      )
        forecasts += 1;
    }
    expect(forecasts / runs).toBeLessThan(0.12);
  });

  it('a week of holidays does not tilt the fit', () => {
    const rising = (ago: number) => 156 - ago;
    const clean = forecastFull(series(56, rising), TODAY, 200)!;
    // Three weeks ago the farm was nearly empty all week.
    const holiday = forecastFull(
      series(56, (ago) => (ago >= 15 && ago <= 21 ? 10 : rising(ago))),
      TODAY,
      200,
    )!;
    expect(holiday).not.toBeNull();
    expect(Math.abs(holiday.fullInDays - clean.fullInDays)).toBeLessThanOrEqual(3);
  });

  it('needs 4 weekly blocks of 4 or more recorded days before it says anything: 25 closed days at the least', () => {
    expect(
      forecastFull(
        series(24, (ago) => 160 - ago),
        TODAY,
        200,
      ),
    ).toBeNull();
    expect(
      forecastFull(
        series(25, (ago) => 160 - ago),
        TODAY,
        200,
      ),
    ).toEqual({
      fullInDays: 40,
      fullBy: dayText(TODAY + 40),
    });
  });

  it('a week with records on fewer than 4 days does not count', () => {
    // 28 days, but the oldest week has only 3 of them.
    const days = series(28, (ago) => 160 - ago).filter((d) => d.day >= TODAY - 24);
    expect(forecastFull(days, TODAY, 200)).toBeNull();
  });

  it('a farm whose weekly peak has reached the seats is full now: 0 days, today', () => {
    expect(
      forecastFull(
        series(56, () => 200),
        TODAY,
        200,
      ),
    ).toEqual({ fullInDays: 0, fullBy: dayText(TODAY) });
    expect(
      forecastFull(
        series(56, (ago) => 260 - ago),
        TODAY,
        200,
      ),
    ).toEqual({
      fullInDays: 0,
      fullBy: dayText(TODAY),
    });
  });

  it('no seats (SPLA without a cap), no forecast', () => {
    expect(
      forecastFull(
        series(56, (ago) => 156 - ago),
        TODAY,
        undefined,
      ),
    ).toBeNull();
  });

  it('a trend that reaches the seats only after 365 days gives no forecast', () => {
    // One user a week from 100: 200 seats are about 640 days away.
    expect(
      forecastFull(
        series(56, (ago) => 108 - ago / 7),
        TODAY,
        200,
      ),
    ).toBeNull();
  });

  it('days before the 8 weeks it reads are ignored', () => {
    const recent = series(56, (ago) => 156 - ago);
    const old = series(400, (ago) => 900 - ago).filter((d) => d.day < TODAY - 56);
    expect(forecastFull([...old, ...recent], TODAY, 200)).toEqual(forecastFull(recent, TODAY, 200));
    expect(forecastDays(TODAY)).toHaveLength(56);
    expect(forecastDays(TODAY).at(-1)).toBe(TODAY - 1);
  });
});
