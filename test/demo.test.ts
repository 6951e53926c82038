/**
 * `npm run demo` as a newcomer runs it: starts, shows the three farms live, the healthy one with the
 * users of its simulated RAS broker, and stops cleanly (its refusals are in demo-cli.test.ts).
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDemo } from './support/demo-process.js';
import { Scrape } from './support/prometheus-text.js';
import { useRedis } from './support/use-redis.js';

const redis = useRedis();

describe('npm run demo', () => {
  it('shows one farm over its seats, one in expiry grace, one healthy with its RAS broker, then stops cleanly and leaves no keys or files', async () => {
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
    // Its broker's line follows the table: the sessions RAS lists, and RAS's count beside rasmon's.
    const brokerLine = table.filter((line) => line.startsWith('  RAS broker of farm-healthy:')).at(-1);
    const broker = /: (\d+) VDI(?:, | and )?.* sessions; RAS counts (\d+), rasmon (\d+)(?: \(drift [+-]\d+\))?$/.exec(
      brokerLine ?? '',
    );
    expect(broker, brokerLine).not.toBeNull();
    expect(Number(broker![1])).toBeGreaterThan(0);
    // rasmon's count on the broker's line is the one in the table above it.
    expect(broker![3]).toBe(healthy[1]!.split('/')[0]);
    expect(
      table.filter((line) => line.startsWith('  RAS broker of')).every((line) => line.includes('farm-healthy')),
    ).toBe(true);
    expect(run.out).toContain('stopped.');
    const client = redis.client();
    expect(await client.keys('rasmon-demo:*')).toEqual([]);
    client.disconnect();
    // Its files (the log, the spools, the broker's certificate and password) are gone with it.
    const logFile = /^ {2}logs\s+(\S+)$/m.exec(run.out)![1]!;
    expect(existsSync(dirname(logFile))).toBe(false);
  });

  it("polls farm-healthy's simulated RAS broker over HTTPS: the collector's /metrics has it up with its VDI sessions", async () => {
    let scrape: Promise<Scrape> | undefined;
    // Stopped by Ctrl-C once the broker's line is out; --seconds only ends a run where it never comes.
    const run = await runDemo(['--port', '0', '--seconds', '40'], { REDIS_URL: redis.url }, (out, child) => {
      if (scrape || !/^ {2}RAS broker of farm-healthy: \d+ VDI/m.test(out)) return;
      const base = /metrics\s+(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)![1]!;
      scrape = Scrape.from(base).finally(() => child.kill('SIGINT'));
    });
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(scrape).toBeDefined();
    const metrics = await scrape!;
    const healthy = { farm: 'farm-healthy' };
    expect(metrics.value('ras_broker_up', healthy)).toBe(1);
    expect(metrics.value('ras_broker_sessions', { ...healthy, source: 'vdi' })).toBeGreaterThan(0);
    expect(metrics.value('ras_broker_sessions', { ...healthy, source: 'pc' })).toBeGreaterThanOrEqual(0);
    expect(metrics.value('ras_broker_license_seats', healthy)).toBe(200);
    expect(metrics.value('ras_broker_license_users', healthy)).toBeGreaterThan(0);
    expect(metrics.value('ras_license_count_drift_users', healthy)).toEqual(expect.any(Number));
    const errors = metrics.all('rasmon_collector_broker_errors_total', healthy);
    expect(errors.map((sample) => sample.labels.reason)).toContain('tls');
    expect(errors.every((sample) => sample.value === 0)).toBe(true);
    // The other two farms have no broker.
    expect(metrics.all('ras_broker_up').map((sample) => sample.labels.farm)).toEqual(['farm-healthy']);
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
