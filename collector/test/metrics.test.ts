import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { CollectorMetrics } from '../src/metrics/metrics.js';

/** The sum of a family's samples in a scrape. */
function total(text: string, name: string): number {
  let sum = 0;
  for (const [, value] of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(value);
  return sum;
}

async function listen(count: number): Promise<Server[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve) => {
          const server = createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  onTestFinished(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });
  return servers;
}

describe('process metrics that walk every connection', () => {
  afterEach(() => vi.restoreAllMocks());

  it('are counted at most every 10 s and show their last count in between', async () => {
    let now = 1_000_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const metrics = new CollectorMetrics('test');
    const first = await metrics.registry.metrics();
    await listen(20);

    now += 9_000;
    const within = await metrics.registry.metrics();
    for (const name of ['nodejs_active_handles', 'nodejs_active_resources', 'process_open_fds']) {
      expect(total(within, name), name).toBe(total(first, name));
    }

    now += 1_000;
    const after = await metrics.registry.metrics();
    for (const name of ['nodejs_active_handles', 'nodejs_active_resources', 'process_open_fds']) {
      expect(total(after, name), name).toBeGreaterThanOrEqual(total(first, name) + 20);
    }
  });
});
