/**
 * The HTTP surface against a page that rebinds its own DNS name to the collector's address: the
 * browser then sends that page's name in `Host`. Requests are made as such a browser makes them
 * (node:http, the Host header set), against a real collector and Redis.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { useRedis } from './support/use-redis.js';

const redis = useRedis();
const running: InProcessCollector[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((collector) => collector.stop()));
});

async function start(extra: Record<string, unknown> = {}): Promise<InProcessCollector> {
  const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], extra));
  running.push(collector);
  return collector;
}

function get(collector: InProcessCollector, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: collector.collector.address.port, path, headers: { Host: host } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the Host header allow-list', () => {
  it('refuses the API and the status page to a rebound name, and answers metrics and health', async () => {
    const collector = await start();
    const port = collector.collector.address.port;
    for (const path of ['/api/v1/farms', '/api/v1/farms/farm-a', '/']) {
      const refused = await get(collector, path, `attacker.example:${port}`);
      expect(refused.status, path).toBe(421);
      expect(refused.body).toContain('http.allowedHosts');
      expect(refused.body).not.toContain('farm-a');
    }
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      expect((await get(collector, path, `attacker.example:${port}`)).status, path).toBe(200);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST`, `[::1]:${port}`]) {
      expect((await get(collector, '/api/v1/farms', host)).status, host).toBe(200);
    }
  });

  it('answers exactly the configured names, wildcards included', async () => {
    const collector = await start({ http: { allowedHosts: ['rasmon.corp.example', '*.lb.corp.example'] } });
    expect((await get(collector, '/api/v1/farms', 'rasmon.corp.example:9420')).status).toBe(200);
    expect((await get(collector, '/api/v1/farms', 'eu1.lb.corp.example')).status).toBe(200);
    expect((await get(collector, '/api/v1/farms', 'lb.corp.example.attacker.example')).status).toBe(421);
    expect((await get(collector, '/api/v1/farms', '127.0.0.1')).status).toBe(421);
  });
});
