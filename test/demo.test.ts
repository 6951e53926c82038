/** `npm run demo` as a newcomer runs it: starts, shows the three farms live, and stops cleanly (its refusals are in demo-cli.test.ts). */
import { describe, expect, it } from 'vitest';
import { runDemo } from './support/demo-process.js';
import { useRedis } from './support/use-redis.js';

const redis = useRedis();

describe('npm run demo', () => {
  it('shows one farm over its seats, one in expiry grace, one healthy, then stops cleanly and leaves no keys', async () => {
    const run = await runDemo(['--seconds', '7', '--port', '0'], { REDIS_URL: redis.url });
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/metrics\s+http:\/\/127\.0\.0\.1:\d+\/metrics/);
    // The status page's address comes first, right after the start line.
    expect(run.out.split('\n')[1]).toMatch(/^status page http:\/\/127\.0\.0\.1:\d+\/ {3}\(open it in a browser\)$/);
    const table = run.out.split('\n');
    const last = (farm: string) =>
      table
        .filter((line) => line.startsWith(farm))
        .at(-1)!
        .split(/\s{2,}/);
    const [, overUsers, overuse, , , , hostsUp, license, grace] = last('farm-overuse');
    const [used, seats] = overUsers!.split('/').map(Number);
    expect(used).toBeGreaterThan(seats!);
    expect(Number(overuse)).toBe(used! - seats!);
    expect(hostsUp).toBe('4/4');
    expect(license).toBe('active');
    expect(grace).toMatch(/^running, 6d \d+h left$/);
    expect(last('farm-grace')[7]).toMatch(/^grace, 19d \d+h left$/);
    const healthy = last('farm-healthy');
    expect(healthy[2]).toBe('0');
    expect(healthy[7]).toBe('active');
    expect(run.out).toContain('stopped.');
    const client = redis.client();
    expect(await client.keys('rasmon-demo:*')).toEqual([]);
    client.disconnect();
  });

  it('stops cleanly on Ctrl-C', async () => {
    let sent = false;
    const run = await runDemo(['--port', '0'], { REDIS_URL: redis.url }, (out, child) => {
      if (!sent && /^farm-healthy/m.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(run.code).toBe(0);
    expect(run.out).toContain('stopping (Ctrl-C)');
    expect(run.out).toContain('stopped.');
  });

  it('stops cleanly on Ctrl-C while it is still starting, and leaves no keys', async () => {
    let sent = false;
    // Early: Redis found, the collector and the agents still starting.
    const run = await runDemo(['--port', '0'], { REDIS_URL: redis.url }, (out, child) => {
      if (!sent && out.includes('rasmon demo starting')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toContain('stopped.');
    const client = redis.client();
    expect(await client.keys('rasmon-demo:*')).toEqual([]);
    client.disconnect();
  });
});
