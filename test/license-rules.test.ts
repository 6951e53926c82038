/**
 * Each rule of docs/design.md §2 pinned through the real path: a WebSocket agent, the collector, its Lua
 * in a real Redis, and what /metrics and the API then say.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { parseConfig } from '@rasmon/collector';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { DAY_MS, clearOfMidnight, daysFromNow } from './support/calendar.js';

const redis = useRedis();
// Peaks of today, expiry and grace: each test on one UTC day.
beforeEach(() => clearOfMidnight(), 90_000);

/** A collector with one farm of the given seats, and helpers to reach it. */
async function farmWith(seats: number, farmOptions: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const raw = rawConfig(redis.url, [{ id: 'farm-a', seats, ...farmOptions }], extra);
  const collector = await InProcessCollector.start(raw, { tickMs: 100 });
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
  /** Reloads the farm with other settings, as SIGHUP would. */
  const reload = (options: Record<string, unknown>) =>
    collector.collector.reload(
      parseConfig({ ...raw, farms: [{ ...(raw.farms as object[])[0], ...options }] }, 'test reload'),
    );
  const stop = async () => {
    await Promise.all(agents.map((a) => a.close()));
    await collector.stop();
  };
  return { collector, agent, scrape, metric, detail, reload, stop };
}

const admin = (id: string, user: string, since: number, fields = {}) =>
  session(id, user, { admin: true, kind: 'desktop', since, ...fields });

describe('license rules (docs/design.md §2)', () => {
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
    await a.snapshot(1, [
      admin('1', 'corp\\adm1', 1),
      admin('2', 'corp\\adm2', 2, { via: 'rdp' }),
      admin('3', 'corp\\adm3', 3),
    ]);
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
      await farm.metric('ras_connections', {
        kind: 'desktop',
        via: 'ras',
        admin: 'false',
        session_state: 'disconnected',
      }),
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

  it('the overuse grace starts once and restarts only when seats increase', async () => {
    const farm = await farmWith(1);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice'), session('2', 'corp\\bob')]);
    const started = await farm.metric('ras_license_overuse_grace_start_timestamp_seconds');
    expect(started).toBeGreaterThan(0);
    expect(await farm.metric('ras_license_overuse_grace_end_timestamp_seconds')).toBe(started! + 7 * 86400);
    // Overuse ends and comes back: the same grace goes on.
    await a.events([end(2, '2')]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await a.events([upsert(3, session('3', 'corp\\carol'))]);
    expect(await farm.metric('ras_license_overuse_grace_start_timestamp_seconds')).toBe(started);
    // Fewer or equal seats do not reset it.
    farm.reload({ seats: 0 });
    farm.reload({ seats: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await farm.metric('ras_license_overuse_grace_start_timestamp_seconds')).toBe(started);
    // More seats than it recorded reset it.
    farm.reload({ seats: 5 });
    await expect
      .poll(() => farm.metric('ras_license_overuse_grace_start_timestamp_seconds'), { timeout: 10_000 })
      .toBeUndefined();
    expect(await farm.metric('ras_license_overuse_grace_exhausted')).toBe(0);
    // A later overuse starts a new grace, found by the clock without any frame.
    farm.reload({ seats: 1 });
    const restarted = await vi.waitFor(
      async () => {
        const value = await farm.metric('ras_license_overuse_grace_start_timestamp_seconds');
        expect(value).toBeGreaterThan(started!);
        return value;
      },
      { timeout: 10_000 },
    );
    expect(restarted).toBeGreaterThan(started!);
    await farm.stop();
  });

  it('a grace seeded from the console that has run out makes any overuse a deactivation risk', async () => {
    const seeded = Date.now() - 8 * DAY_MS;
    const farm = await farmWith(1, { overuseGraceStartedAt: new Date(seeded).toISOString() });
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice')]);
    expect(await farm.metric('ras_license_overuse_grace_start_timestamp_seconds')).toBe(seeded / 1000);
    expect(await farm.metric('ras_license_overuse_grace_exhausted')).toBe(1);
    expect(await farm.metric('ras_license_deactivation_risk')).toBe(0);
    await a.events([upsert(2, session('2', 'corp\\bob'))]);
    expect(await farm.metric('ras_license_deactivation_risk')).toBe(1);
    const summary = (await (await fetch(`${farm.collector.url}/api/v1/farms`)).json()) as any;
    expect(summary.farms[0]).toMatchObject({ id: 'farm-a', users: 2, overuseUsers: 1, deactivationRisk: true });
    await farm.stop();
  });

  it('a sublicense has no expiry grace', async () => {
    const expired = daysFromNow(-1);
    const sub = await farmWith(5, { license: 'sublicense', expires: expired });
    expect(await sub.metric('ras_license_state', { state: 'expired' })).toBe(1);
    expect(await sub.metric('ras_license_state', { state: 'grace' })).toBe(0);
    expect(await sub.metric('ras_license_grace_end_timestamp_seconds')).toBe(
      await sub.metric('ras_license_expiry_timestamp_seconds'),
    );
    expect(await sub.metric('ras_license_info', { license: 'sublicense' })).toBe(1);
    await sub.stop();
    const primary = await farmWith(5, { license: 'primary', expires: expired });
    expect(await primary.metric('ras_license_state', { state: 'grace' })).toBe(1);
    expect(await primary.metric('ras_license_grace_end_timestamp_seconds')).toBe(
      Date.parse(expired) / 1000 + 30 * 86400,
    );
    await primary.stop();
  });

  it('a primary license is active before it expires and expired after its grace', async () => {
    const active = await farmWith(5, { expires: daysFromNow(10) });
    expect(await active.metric('ras_license_state', { state: 'active' })).toBe(1);
    await active.stop();
    const expired = await farmWith(5, { expires: daysFromNow(-31) });
    expect(await expired.metric('ras_license_state', { state: 'expired' })).toBe(1);
    await expired.stop();
  });

  it("a stale host's users still count and are reported unverified; a user also on a live host is verified", async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    const b = await farm.agent('rdsh-2');
    await a.snapshot(1, [session('1', 'corp\\alice'), session('2', 'corp\\bob')]);
    await b.snapshot(1, [session('1', 'corp\\bob')]);
    await a.close();
    await expect.poll(() => farm.metric('ras_agent_up', { host: 'rdsh-1' }), { timeout: 10_000 }).toBe(0);
    expect(await farm.metric('ras_agent_up', { host: 'rdsh-2' })).toBe(1);
    expect(await farm.metric('ras_license_users')).toBe(2);
    expect(await farm.metric('ras_license_users_unverified')).toBe(1);
    expect(await farm.metric('ras_host_connections', { host: 'rdsh-1' })).toBe(2);
    await farm.agent('rdsh-1');
    expect(await farm.metric('ras_license_users_unverified')).toBe(0);
    await farm.stop();
  });

  it("a retired host's connections stop counting until its agent's next snapshot", async () => {
    // Long enough that the host is still only stale when first read after its agent leaves, on a busy
    // machine too; retirement itself is what the poll below waits for.
    const farm = await farmWith(10, {}, { hostRetireSeconds: 4 });
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\alice'), session('2', 'corp\\bob')]);
    await a.close();
    expect(await farm.metric('ras_host_retired', { host: 'rdsh-1' })).toBe(0);
    await expect.poll(() => farm.metric('ras_host_connections', { host: 'rdsh-1' }), { timeout: 10_000 }).toBe(0);
    expect(await farm.metric('ras_license_users')).toBe(0);
    expect(await farm.metric('ras_host_retired', { host: 'rdsh-1' })).toBe(1);
    const back = await farm.agent('rdsh-1');
    // Events before the snapshot do not bring the host back…
    await back.events([upsert(2, session('3', 'corp\\carol'))]);
    expect(await farm.metric('ras_license_users')).toBe(0);
    // …its snapshot does, and corrects nothing (retirement is not drift).
    await back.snapshot(5, [session('1', 'corp\\alice'), session('3', 'corp\\carol')]);
    expect(await farm.metric('ras_license_users')).toBe(2);
    expect(await farm.metric('ras_host_retired', { host: 'rdsh-1' })).toBe(0);
    expect(await farm.metric('ras_snapshot_corrections_total')).toBe(0);
    await farm.stop();
  });

  it('peaks to date, today, and the daily history', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b'), session('3', 'corp\\c')]);
    await a.events([end(2, '1'), end(3, '2')]);
    expect(await farm.metric('ras_license_users')).toBe(1);
    expect(await farm.metric('ras_license_peak_users')).toBe(3);
    expect(await farm.metric('ras_license_peak_users_today')).toBe(3);
    const peaks = (await (await fetch(`${farm.collector.url}/api/v1/farms/farm-a/peaks`)).json()) as any;
    expect(peaks).toEqual({ peaks: [{ day: new Date().toISOString().slice(0, 10), users: 3 }] });
    await farm.stop();
  });

  it('overLimit names the users who started consuming last, oldest first', async () => {
    const farm = await farmWith(2);
    const a = await farm.agent('rdsh-1');
    await a.events([
      upsert(1, session('1', 'corp\\a')),
      upsert(2, session('2', 'corp\\b')),
      upsert(3, session('3', 'corp\\c')),
      upsert(4, session('4', 'corp\\d')),
      upsert(5, session('5', 'corp\\a', { kind: 'app' })),
    ]);
    const detail = await farm.detail();
    expect(detail.overuseUsers).toBe(2);
    expect(detail.overLimit).toEqual(['corp\\c', 'corp\\d']);
    expect(await farm.metric('ras_license_overuse_admissions_total')).toBe(2);
    await farm.stop();
  });

  it('snapshot corrections count what a later snapshot had to add, change or end', async () => {
    const farm = await farmWith(10);
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a', { since: 5 }), session('2', 'corp\\b', { since: 6 })]);
    expect(await farm.metric('ras_snapshot_corrections_total')).toBe(0);
    await a.snapshot(2, [
      session('1', 'corp\\a', { since: 5, state: 'disconnected' }),
      session('3', 'corp\\c', { since: 7 }),
    ]);
    expect(await farm.metric('ras_snapshot_corrections_total')).toBe(3);
    await farm.stop();
  });
});

describe('limits', () => {
  it('an upsert of a new session on a host that holds maxSessions is rejected, changes nothing, and stalls nothing', async () => {
    const farm = await farmWith(10, {}, { limits: { maxSessions: 2 } });
    const a = await farm.agent('rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    const ack = await a.events([
      upsert(2, session('3', 'corp\\c')),
      upsert(3, session('1', 'corp\\a', { state: 'disconnected' })),
      end(4, '2'),
      upsert(5, session('4', 'corp\\d')),
    ]);
    expect(ack.seq).toBe(5);
    expect(ack.rejected).toEqual([{ seq: 2, reason: 'host already holds the maximum of 2 sessions' }]);
    const users = (await farm.detail()).connections.map((c: any) => c.user).sort();
    expect(users).toEqual(['corp\\a', 'corp\\d']);
    await farm.stop();
  });
});

describe('one clock (docs/design.md §2 rule 11)', () => {
  it('a lease lapses within seconds of its collector dying, without any frame', async () => {
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 1 });
    const dying = await CollectorProcess.start(raw);
    const watcher = await InProcessCollector.start(raw, { tickMs: 100 });
    try {
      const a = await TestAgent.connect(dying.url, 'token-farm-a');
      await a.hello('farm-a', 'rdsh-1');
      await a.snapshot(1, [session('1', 'corp\\alice')]);
      const up = async () => (await Scrape.from(watcher.url)).value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-1' });
      expect(await up()).toBe(1);
      dying.signal('SIGKILL');
      await dying.exited;
      await expect.poll(() => up(), { timeout: 15_000 }).toBe(0);
      const scrape = await Scrape.from(watcher.url);
      expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
      expect(scrape.value('ras_license_users_unverified', { farm: 'farm-a' })).toBe(1);
    } finally {
      await dying.stop();
      await watcher.stop();
    }
  });
});
