/**
 * The farm series are rendered by a worker thread with a Redis connection of its own: a worker
 * that dies is replaced at the next scrape, and a Redis that goes away fails the render (the
 * collector then shows no farm series and redis_up 0) until it is back.
 */
import type { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { parseConfig } from '@rasmon/collector';
// The built module: its worker is loaded by Node from the file beside it, not through the test runner.
import { FarmSeriesThread } from '../collector/dist/metrics/farm-series-thread.js';
import { useRedis } from './support/use-redis.js';
import { rawConfig } from './support/collector-harness.js';

const redis = useRedis();

function start() {
  const config = parseConfig(rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }]), 'test');
  const thread = new FarmSeriesThread(config.redis);
  onTestFinished(() => thread.close());
  return { thread, farms: config.farms };
}

describe('the farm series worker', () => {
  it('renders the farm series, and a worker that died is replaced at the next render', async () => {
    const { thread, farms } = start();
    const body = (await thread.render(farms)).toString();
    expect(body).toContain('ras_license_seats{farm="farm-a"} 10\n');

    const worker = (thread as unknown as { worker: Worker }).worker;
    const owed = thread.render(farms);
    await worker.terminate();
    // The render it may have owed fails rather than hanging (or it had already answered).
    await owed.then(
      (text) => expect(text.toString()).toContain('ras_license_seats'),
      (err: Error) => expect(err.message).toMatch(/exited/),
    );
    expect((await thread.render(farms)).toString()).toContain('ras_license_seats{farm="farm-a"} 10\n');
  });

  it('fails the render while Redis is away and renders again once it is back', async () => {
    const { thread, farms } = start();
    await thread.render(farms);
    await redis.kill();
    await expect(thread.render(farms)).rejects.toThrow();
    await redis.restart();
    await vi.waitFor(async () => expect((await thread.render(farms)).toString()).toContain('ras_license_seats'), {
      timeout: 15_000,
      interval: 200,
    });
  });

  it('after close, renders fail at once', async () => {
    const { thread, farms } = start();
    await thread.close();
    await expect(thread.render(farms)).rejects.toThrow(/stopping/);
  });
});
