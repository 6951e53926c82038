/**
 * The collector against the reference model: random sequences of snapshots, upserts and ends over
 * several hosts (admins, apps, disconnected sessions, case variants of user names, duplicate and
 * replayed frames, invalid items, agents dropping off) go through real WebSockets into the Lua in a
 * real Redis; after every frame, /metrics and the API must equal `ReferenceFarm`.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_LIMITS,
  ReferenceFarm,
  connectionLabelKey,
  countByLabels,
  parseAgentFrame,
  type AckFrame,
  type ParsedEvents,
} from '@rasmon/protocol';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { clearOfMidnight } from './support/calendar.js';

const HOSTS = ['rdsh-1', 'RDSH-2', 'rdsh-3'];
const USERS = [
  'corp\\alice',
  'CORP\\Alice',
  ' corp\\bob',
  'corp\\carol',
  'corp\\dave',
  'corp\\eve',
  'corp\\adm1',
  'CORP\\ADM2',
];
const IDS = ['1', '2', '3', '4', '5', '6'];

const sessionArb = fc.record({
  id: fc.constantFrom(...IDS),
  user: fc.constantFrom(...USERS),
  admin: fc.constantFrom(true, true, false),
  // Desktops outnumber apps so that hosts often hold three or more admin desktops (docs/design.md §2 rule 2).
  kind: fc.constantFrom('desktop', 'desktop', 'desktop', 'app'),
  via: fc.constantFrom('ras', 'rdp'),
  state: fc.constantFrom('active', 'disconnected'),
  // Few distinct logon times, so exemption ties on `since` are broken by id.
  since: fc.integer({ min: 1, max: 4 }).map((n) => 1_700_000_000_000 + n * 1000),
});

/** Mostly valid sessions; now and then one the collector must reject. */
const itemSessionArb = fc.oneof(
  { weight: 12, arbitrary: sessionArb },
  { weight: 1, arbitrary: sessionArb.map((s) => ({ ...s, user: '   ' })) },
  { weight: 1, arbitrary: sessionArb.map((s) => ({ ...s, kind: 'tablet' })) },
);

type Command =
  | { type: 'snapshot'; host: number; sessions: unknown[]; jump: number }
  | {
      type: 'events';
      host: number;
      items: Array<{ op: 'upsert'; session: unknown } | { op: 'end'; id: string } | { op: 'bogus' }>;
    }
  | { type: 'replay'; host: number }
  | { type: 'drop'; host: number };

const hostArb = fc.integer({ min: 0, max: HOSTS.length - 1 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('snapshot' as const),
      host: hostArb,
      sessions: fc.array(itemSessionArb, { maxLength: 6 }),
      jump: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('events' as const),
      host: hostArb,
      items: fc.array(
        fc.oneof(
          { weight: 6, arbitrary: itemSessionArb.map((session) => ({ op: 'upsert' as const, session })) },
          { weight: 3, arbitrary: fc.constantFrom(...IDS).map((id) => ({ op: 'end' as const, id })) },
          { weight: 1, arbitrary: fc.constant({ op: 'bogus' as const }) },
        ),
        { minLength: 1, maxLength: 4 },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('replay' as const), host: hostArb }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('drop' as const), host: hostArb }) },
);

const redis = useRedis();

interface HostAgent {
  agent: TestAgent | undefined;
  seq: number;
  lastFrame: string | undefined;
}

async function expectSameState(collector: InProcessCollector, model: ReferenceFarm, context: string): Promise<void> {
  const scrape = await Scrape.from(collector.url);
  const usage = model.usage();
  const farm = { farm: 'farm-a' };
  const got = {
    users: scrape.value('ras_license_users', farm),
    overuse: scrape.value('ras_license_overuse_users', farm),
    unverified: scrape.value('ras_license_users_unverified', farm),
    admissions: scrape.value('ras_license_overuse_admissions_total', farm),
    peak: scrape.value('ras_license_peak_users', farm),
    peakToday: scrape.value('ras_license_peak_users_today', farm),
    exempt: scrape.value('ras_connections_exempt', farm),
    corrections: scrape.value('ras_snapshot_corrections_total', farm),
    graceStarted: scrape.value('ras_license_overuse_grace_start_timestamp_seconds', farm) !== undefined,
    labels: Object.fromEntries(
      scrape
        .all('ras_connections', farm)
        .map((s) => [`${s.labels.kind}|${s.labels.via}|${s.labels.admin}|${s.labels.session_state}`, s.value]),
    ),
    hostConnections: Object.fromEntries(scrape.all('ras_host_connections', farm).map((s) => [s.labels.host, s.value])),
  };
  const hosts = model.hostViews();
  const want = {
    users: usage.users,
    overuse: usage.overuseUsers,
    unverified: usage.unverifiedUsers,
    admissions: model.overuseAdmissions,
    peak: model.peakUsers,
    peakToday: model.peakUsersToday,
    exempt: usage.exemptConnections,
    corrections: model.snapshotCorrections,
    graceStarted: model.graceStartedAt !== undefined,
    labels: Object.fromEntries(countByLabels(usage.connections)),
    hostConnections: Object.fromEntries(hosts.map((host) => [host.host, host.retired ? 0 : host.connections.length])),
  };
  expect(got, context).toEqual(want);

  const detail = (await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as {
    connections: Array<{ host: string; id: string } & Record<string, unknown>>;
    overLimit: string[];
  };
  const key = (c: { host: unknown; id: unknown }) => `${String(c.host)}/${String(c.id)}`;
  const apiConnections = detail.connections
    .map((c) => ({
      key: key(c),
      user: c.user,
      label: `${String(c.kind)}|${String(c.via)}|${String(c.admin)}|${String(c.state)}`,
      exempt: c.exempt,
      consumes: c.consumes,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
  const modelConnections = usage.connections
    .map((c) => ({ key: key(c), user: c.user, label: connectionLabelKey(c), exempt: c.exempt, consumes: c.consumes }))
    .sort((a, b) => a.key.localeCompare(b.key));
  expect(apiConnections, `${context}: API connections`).toEqual(modelConnections);
  expect(detail.overLimit, `${context}: overLimit`).toEqual(model.overLimit());
}

describe('collector equals the reference model', () => {
  it('after every frame of random multi-host sequences, metrics and API equal ReferenceFarm', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commandArb, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        // Snapshots whole (one script), or applied in slices of one or two items (beginSnapshot.lua,
        // snapshotSlice.lua): the farm must come out the same.
        fc.constantFrom(undefined, 1, 2),
        async (commands, seats, countDisconnected, snapshotSliceItems) => {
          // The model dates each item when its ack arrives, the collector by Redis's clock when it
          // applied it: a frame across a UTC midnight would put today's peak on different days.
          await clearOfMidnight();
          const collector = await InProcessCollector.start(
            rawConfig(redis.url, [{ id: 'farm-a', seats, countDisconnected }], { heartbeatSeconds: 30 }),
            { tickMs: 60_000, snapshotSliceItems },
          );
          const model = new ReferenceFarm({ seats, countDisconnected });
          const agents: HostAgent[] = HOSTS.map(() => ({ agent: undefined, seq: 0, lastFrame: undefined }));
          try {
            for (const [index, command] of commands.entries()) {
              const host = HOSTS[command.host]!;
              const slot = agents[command.host]!;
              const context = `command ${index}: ${JSON.stringify(command)}`;
              if (command.type === 'drop') {
                if (!slot.agent) continue;
                await slot.agent.close();
                slot.agent = undefined;
                model.disconnect(host, Date.now());
                // The lease is released when the collector sees the close.
                await vi.waitFor(
                  async () => {
                    const up = (await Scrape.from(collector.url)).value('ras_agent_up', {
                      farm: 'farm-a',
                      host: host.toLowerCase(),
                    });
                    expect(up).toBe(0);
                  },
                  { timeout: 10_000 },
                );
                await expectSameState(collector, model, context);
                continue;
              }
              if (!slot.agent) {
                slot.agent = await TestAgent.connect(collector.url, 'token-farm-a');
                const welcome = await slot.agent.hello('farm-a', host, `stream-${host}`);
                expect(welcome.ack).toBe(slot.seq);
                model.connect(host, Date.now());
              }
              let frame: string;
              if (command.type === 'replay') {
                if (!slot.lastFrame) continue;
                frame = slot.lastFrame;
              } else if (command.type === 'snapshot') {
                slot.seq += command.jump;
                frame = JSON.stringify({ type: 'snapshot', seq: slot.seq, at: Date.now(), sessions: command.sessions });
              } else {
                const events = command.items.map((item) => ({ ...item, seq: (slot.seq += 1), at: Date.now() }));
                frame = JSON.stringify({ type: 'events', events });
              }
              slot.agent.send(frame);
              const ack = await slot.agent.next<AckFrame>('ack');
              expect(ack.seq, context).toBe(slot.seq);
              if (command.type !== 'replay') {
                slot.lastFrame = frame;
                const parsed = parseAgentFrame(frame, DEFAULT_LIMITS);
                if (!parsed.ok) throw new Error(parsed.message);
                const now = Date.now();
                if (parsed.frame.type === 'snapshot') {
                  const snapshot = parsed.frame;
                  model.snapshot(host, snapshot.sessions, now);
                  expect(ack.rejected ?? [], context).toEqual(snapshot.rejected);
                } else {
                  const events = parsed.frame as ParsedEvents;
                  for (const event of events.events) {
                    if (event.op === 'upsert') model.upsert(host, event.session, now);
                    else if (event.op === 'end') model.end(host, event.id, now);
                  }
                  expect(ack.rejected ?? [], context).toEqual(events.rejected);
                }
              }
              await expectSameState(collector, model, context);
            }
          } finally {
            await Promise.all(agents.flatMap((slot) => (slot.agent ? [slot.agent.close()] : [])));
            await collector.stop();
          }
        },
      ),
      { numRuns: 80 },
    );
    // 80 runs take about 30 s alone; the margin is for a machine busy with other suites, and for
    // the wait past a midnight the clock may be close to.
  }, 300_000);
});
