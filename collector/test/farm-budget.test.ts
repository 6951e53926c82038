/** A farm's budgets: script time reserved when a frame is let in, settled once it ran (docs/design.md §6). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_APPLY_MS_PER_BYTE, FarmBudgets } from '../src/ingest/farm-budget.js';

const MiB = 1_048_576;
/** A 2,000-session snapshot's size. */
const BIG = 220_000;
const T0 = 1_000_000;

describe('farm budgets', () => {
  it("lets a farm's big frames sent together into Redis one after another, at the budget's pace", () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    const waits = Array.from({ length: 8 }, () => budgets.admit('flood', BIG, T0).waitMs);
    const reserve = BIG * DEFAULT_APPLY_MS_PER_BYTE;
    // Each enters when the ones before it are paid for: spaced by its reservation at 250 ms a second.
    for (let i = 1; i < waits.length; i += 1) {
      expect(waits[i]! - waits[i - 1]!).toBeGreaterThanOrEqual(Math.floor((reserve / 250) * 1000));
    }
    // A tenth of a second's budget at once: the first enters with little or no wait, the eighth a
    // little under two seconds later (8 × 88 ms reserved, less the 25 ms burst, at 250 ms a second).
    expect(waits[0]!).toBeLessThanOrEqual(Math.ceil(((reserve - 25) / 250) * 1000));
    expect(waits[7]!).toBeGreaterThan(2000);
  });

  it("never holds another farm's frames back", () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    for (let i = 0; i < 8; i += 1) budgets.admit('flood', BIG, T0);
    expect(budgets.admit('calm', 400, T0)).toMatchObject({ waitMs: 0 });
  });

  it('gives back what a frame reserved beyond what its scripts took, and learns the farm’s cost per byte', () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    const first = budgets.admit('farm', BIG, T0);
    expect(first.reservedMs).toBeCloseTo(BIG * DEFAULT_APPLY_MS_PER_BYTE);
    const second = budgets.admit('farm', BIG, T0);
    expect(second.waitMs).toBeGreaterThan(0);
    // Both took 11 ms: the 154 ms reserved beyond that come back, as if only 22 ms had been used
    // of the 25 ms burst, and a small frame goes in at once.
    budgets.settle('farm', first, BIG, 11, T0);
    budgets.settle('farm', second, BIG, 11, T0);
    expect(budgets.admit('farm', 100, T0).waitMs).toBe(0);
    // Learnt: a quarter of the way from the default (88 ms) to what the frames took (11 ms), twice.
    const third = budgets.admit('farm', BIG, T0);
    expect(third.reservedMs).toBeLessThan(first.reservedMs * 0.7);
    expect(third.reservedMs).toBeGreaterThan(11);
    for (let i = 1; i <= 20; i += 1) {
      const at = T0 + 1000 * i;
      budgets.settle('farm', budgets.admit('farm', BIG, at), BIG, 11, at);
    }
    expect(budgets.admit('farm', BIG, T0 + 30_000).reservedMs).toBeCloseTo(11, 0);
  });

  it('charges a frame whose scripts took longer than reserved the rest, so the farm is charged what it used', () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    const big = budgets.admit('farm', BIG, T0);
    budgets.settle('farm', big, BIG, 600, T0);
    // 600 ms charged in all against the 25 ms burst: the next waits 2.3 s at 250 ms a second.
    expect(budgets.admit('farm', 500, T0).waitMs).toBe(2300);
    // A small frame reserves nothing (its time is mostly the script's fixed cost), but is charged
    // what it took, and teaches nothing of the cost per byte.
    const small = budgets.admit('farm', 500, T0 + 10_000);
    expect(small.reservedMs).toBe(0);
    budgets.settle('farm', small, 500, 525, T0 + 10_000);
    expect(budgets.admit('farm', 500, T0 + 10_000).waitMs).toBe(2000);
    expect(budgets.admit('farm', BIG, T0 + 20_000).reservedMs).toBeGreaterThan(big.reservedMs);
  });

  it('lets small frames through at once, many in a row', () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    // A thousand small frames in the same instant (a farm's snapshots after a Redis loss): nothing
    // is reserved, so none waits for an estimate; each is charged what it took.
    const waits = Array.from({ length: 1000 }, () => budgets.admit('farm', 3000, T0));
    expect(Math.max(...waits.map((a) => a.waitMs))).toBe(0);
    expect(Math.max(...waits.map((a) => a.reservedMs))).toBe(0);
  });

  it("takes a farm's big frames one at a time, in the order they asked; small frames and other farms do not wait", async () => {
    const budgets = new FarmBudgets(16 * MiB, 250);
    const order: string[] = [];
    const first = await budgets.turn('flood', BIG);
    const second = budgets.turn('flood', BIG).then((done) => (order.push('second'), done));
    const third = budgets.turn('flood', BIG).then((done) => (order.push('third'), done));
    (await budgets.turn('flood', 3000))();
    (await budgets.turn('calm', BIG))();
    order.push('small and calm');
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['small and calm']);
    first();
    (await second)();
    (await third)();
    expect(order).toEqual(['small and calm', 'second', 'third']);
  });

  it("holds a farm over its bytes to the bytes' pace, and says so", () => {
    const budgets = new FarmBudgets(1000, 250);
    expect(budgets.admit('farm', 1000, T0)).toMatchObject({ waitMs: 0 });
    expect(budgets.admit('farm', 2000, T0)).toMatchObject({ waitMs: 2000, reason: 'bytes' });
  });
});
