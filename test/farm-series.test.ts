/**
 * /metrics renders farm series from state it keeps per farm and re-reads only what changed: a
 * change made through one collector shows on every collector's next scrape, farms are read
 * again once a second for what time alone moves, and a farm removed by a reload goes away.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const redis = useRedis();

describe('farm series', () => {
  it('every collector sharing a Redis shows a change on its next scrape, whichever collector made it', async () => {
    const raw = rawConfig(redis.url, [
      { id: 'farm-a', seats: 10 },
      { id: 'farm-b', seats: 5 },
    ]);
    const a = await InProcessCollector.start(raw);
    onTestFinished(() => a.stop());
    const b = await InProcessCollector.start(raw);
    onTestFinished(() => b.stop());
    const agent = await TestAgent.connect(a.url, 'token-farm-a');
    onTestFinished(async () => void (await agent.close()));
    await agent.hello('farm-a', 'rdsh-1');
    // Both have read (and keep) the farms before the change.
    for (const c of [a, b]) expect((await Scrape.from(c.url)).value('ras_license_users', { farm: 'farm-a' })).toBe(0);
    for (let seq = 1; seq <= 3; seq += 1) {
      if (seq === 1) await agent.snapshot(1, [session('1', 'corp\\ann')]);
      else await agent.events([upsert(seq, session(String(seq), `corp\\user${seq}`))]);
      for (const c of [a, b]) {
        const scrape = await Scrape.from(c.url);
        expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(seq);
        expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'rdsh-1' })).toBe(seq);
        expect(scrape.value('ras_license_users', { farm: 'farm-b' })).toBe(0);
      }
    }
  });

  it('a scrape with nothing changed serves the same farm series, multi-byte label values whole', async () => {
    const c = await InProcessCollector.start(
      rawConfig(redis.url, [
        { id: 'farm-e', seats: 3 },
        { id: 'farm-f', seats: 2 },
      ]),
    );
    onTestFinished(() => c.stop());
    const agent = await TestAgent.connect(c.url, 'token-farm-e');
    onTestFinished(async () => void (await agent.close()));
    await agent.hello('farm-e', 'rdsh-1', 'stream-1', 'agent-ünïcödé-✓ 1.0');
    await agent.snapshot(1, [session('1', 'corp\\ann')]);
    const farmLines = async () =>
      (await fetch(`${c.url}/metrics`).then((r) => r.text()))
        .split('\n')
        .filter((line) => /^(# (HELP|TYPE) )?ras_/.test(line));
    const first = await farmLines();
    expect(first.filter((line) => line.startsWith('ras_agent_info'))).toEqual([
      'ras_agent_info{farm="farm-e",host="rdsh-1",agent="agent-ünïcödé-✓ 1.0"} 1',
    ]);
    // Every family once, its samples of both farms together under its HELP and TYPE.
    const types = first.filter((line) => line.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    expect(first.filter((line) => line.startsWith('ras_license_seats'))).toEqual([
      'ras_license_seats{farm="farm-e"} 3',
      'ras_license_seats{farm="farm-f"} 2',
    ]);
    const second = await farmLines();
    // Last-seen stamps move with lease renewals only, and none is due within this test's heartbeat.
    expect(second).toEqual(first);
  });

  it('a farm removed by a reload leaves the scrape; one added appears', async () => {
    const c = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-c', seats: 3 }]));
    onTestFinished(() => c.stop());
    expect((await Scrape.from(c.url)).value('ras_license_seats', { farm: 'farm-c' })).toBe(3);
    const reloaded = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-d', seats: 4 }]));
    onTestFinished(() => reloaded.stop());
    c.collector.reload(reloaded.config);
    const scrape = await Scrape.from(c.url);
    expect(scrape.value('ras_license_seats', { farm: 'farm-d' })).toBe(4);
    expect(scrape.value('ras_license_seats', { farm: 'farm-c' })).toBeUndefined();
  });
});
