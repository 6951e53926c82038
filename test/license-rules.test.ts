/**
 * Each rule of DESIGN §2 pinned through the real path: a WebSocket agent, the collector, its Lua
 * in a real Redis, and what /metrics and the API then say.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './support/redis-server.js';
import { InProcessCollector, eventually, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis.stop();
});

/** A collector with one farm of the given seats, and helpers to reach it. */
async function farmWith(seats: number, farmOptions: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats, ...farmOptions }], extra), {
    tickMs: 100,
  });
  const agents: TestAgent[] = [];
  const agent = async (host: string, stream = `stream-${host}`) => {
    const a = await TestAgent.connect(collector.url, 'token-farm-a');
    agents.push(a);
    await a.hello('farm-a', host, stream);
    return a;
  };
  const scrape = () => Scrape.from(collector.url);
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    (await scrape()).value(name, { farm: 'farm-a', ...labels });
  const detail = async () => (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json() as Promise<any>;
  const stop = async () => {
    await Promise.all(agents.map((a) => a.close()));
    await collector.stop();
  };
  return { collector, agent, scrape, metric, detail, stop };
}

const admin = (id: string, user: string, since: number, fields = {}) =>
  session(id, user, { admin: true, kind: 'desktop', since, ...fields });

describe('license rules (DESIGN §2)', () => {
  it('a third admin desktop on one host consumes a license', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [admin('1', 'corp\\adm1', 1), admin('2', 'corp\\adm2', 2), admin('3', 'corp\\adm3', 3)]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(await farm.metric('ras_connections_exempt')).toBe(2);
    const detail = await farm.detail();
    expect(detail.connections.filter((c: any) => c.consumes).map((c: any) => c.user)).toEqual(['corp\\adm3']);
    await farm.stop();
  });

  it('an admin published app consumes a license', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\adm', { admin: true, kind: 'app', via: 'ras' })]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(await farm.metric('ras_connections_exempt')).toBe(0);
    await farm.stop();
  });

  it('when an exempt admin desktop ends the next one becomes exempt', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [admin('1', 'corp\\adm1', 1), admin('2', 'corp\\adm2', 2, { via: 'rdp' }), admin('3', 'corp\\adm3', 3)]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    await a.events([end(2, '1')]);
    expect(await farm.metric('ras_license_users')).toBe(0);
    expect(await farm.metric('ras_connections_exempt')).toBe(2);
    const exempt = (await farm.detail()).connections.filter((c: any) => c.exempt).map((c: any) => c.id);
    expect(exempt).toEqual(['2', '3']);
    await farm.stop();
  });

  it("a disconnected session still holds its user's license", async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice', { state: 'disconnected' })]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(
      await farm.metric('ras_connections', { kind: 'desktop', via: 'ras', admin: 'false', session_state: 'disconnected' }),
    ).toBe(1);
    await farm.stop();
  });

  it('countDisconnected false drops disconnected sessions from counting but still shows them', async () => {
    const farm = await farmWith(10, { countDisconnected: false });
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice', { state: 'disconnected' }), session('2', 'corp\\bob')]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(await farm.metric('ras_host_connections', { host: 'rdsh-1' })).toBe(2);
    await farm.stop();
  });

  it('one user on several hosts and in several case variants takes one license', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    const b = await farm.agent('RDSH-2');
    await a.snapshot(1, [session('1', 'CORP\\Alice'), session('2', ' corp\\alice ', { kind: 'app' })]);
    await b.snapshot(1, [session('1', 'corp\\ALICE')]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(await farm.metric('ras_host_connections', { host: 'rdsh-2' })).toBe(1);
    await farm.stop();
  });

  it('the overuse-admission counter catches an overuse that ends before the next scrape', async () => {
    const farm = await farmWith(1);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice')]);
    await a.events([upsert(2, session('2', 'corp\\bob')), end(3, '2')]);
    expect(await farm.metric('ras_license_overuse_users')).toBe(0);
    expect(await farm.metric('ras_license_overuse_admissions_total')).toBe(1);
    expect(await farm.metric('ras_license_peak_users')).toBe(2);
    await farm.stop();
  });
});
