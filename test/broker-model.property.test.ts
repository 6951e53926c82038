/**
 * The collector with a RAS broker against the reference model: random sequences of agents' frames
 * on RD Session Hosts and polls of the broker simulator, whose session lists hold random VDI, PC
 * and AVD sessions of random types, states and users (some the same person as an agent's user,
 * spelt as a UPN or in another case). After every step, /metrics and the API must equal a
 * `ReferenceFarm` in which each imported source is one more host (`broker/vdi`, `broker/pc`,
 * `broker/avd`) whose snapshot is the poll's sessions as `expectedImport` below maps them.
 *
 * `expectedImport` is written from the broker connector's rules (issue 19; docs/design.md §2 rules
 * 1, 3 and 4), not from the collector's code: its tables say which RD Sessions `type` belongs to
 * which source, which `state` holds a license, and which person each spelling of a user is.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_LIMITS,
  ReferenceFarm,
  connectionLabelKey,
  countByLabels,
  parseAgentFrame,
  type ParsedEvents,
  type Session,
} from '@rasmon/protocol';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { RasBrokerSimulator, makeTestPki, sampleLicense, type TestPki } from './support/ras-broker-simulator.js';

const USERNAME = 'CORP\\svc-rasmon';
const PASSWORD = 'model-Pa55word';
const TOKEN = 'token-farm-a';
const FARM = { farm: 'farm-a' };

// ---------------------------------------------------------------------------------------------
// The reference of the broker import.

type Source = 'vdi' | 'pc' | 'avd';
/** In the order the pseudo-hosts' snapshots are applied. */
const SOURCES: readonly Source[] = ['vdi', 'pc', 'avd'];

/**
 * RD Sessions `type` → the source it belongs to in the unfiltered list (none: an RD Session Host's
 * own session, which its agent counts, or one no rule counts) and the connection's kind.
 */
const TYPES: Readonly<Record<number, { source?: 'vdi' | 'pc'; kind: Session['kind'] }>> = {
  0: { kind: 'desktop' }, // Desktop (RDS)
  1: { kind: 'app' }, // PublishedApps (RDS)
  3: { source: 'vdi', kind: 'desktop' }, // VDI
  4: { source: 'vdi', kind: 'app' }, // VDIApp
  5: { source: 'pc', kind: 'desktop' }, // PC
  6: { source: 'pc', kind: 'app' }, // PCApp
  7: { kind: 'desktop' }, // Admin
  42: { kind: 'desktop' }, // not in the enum
};

/**
 * RD Sessions `state` → how the session holds its user's license; `null`: no logged-on user
 * (Idle, Listen, Init), not a session. A session without a state is taken as active.
 */
const STATES: Readonly<Record<number, Session['state'] | null>> = {
  0: 'active', // Active
  1: 'active', // Connected
  2: 'active', // ConnectQuery
  3: 'active', // Shadow
  4: 'disconnected', // Disconnected: holds its license as on an RD Session Host
  5: null, // Idle
  6: null, // Listen
  9: null, // Init
};

/**
 * How the broker may spell a user, and who that is in the agents' normalized `domain\user` form
 * with `ras.upnDomains: { corp.example: CORP }`; `null`: no user, not a session.
 */
const BROKER_USERS: ReadonlyArray<readonly [spelt: string | undefined, person: string | null]> = [
  ['alice@corp.example', 'corp\\alice'],
  ['Alice@Corp.Example', 'corp\\alice'],
  ['CORP\\ALICE', 'corp\\alice'],
  [' bob@CORP.EXAMPLE ', 'corp\\bob'],
  ['corp\\carol', 'corp\\carol'],
  ['adm1@corp.example', 'corp\\adm1'],
  ['vdi-only@corp.example', 'corp\\vdi-only'],
  // A suffix the farm does not map: kept as spelt, it cannot be an agent's user.
  ['eve@partner.example', 'eve@partner.example'],
  // No domain: not the agents' corp\dave.
  ['Dave', 'dave'],
  ['   ', null],
  [undefined, null],
];
const PERSON = new Map(BROKER_USERS);

/** One item of a `GET /api/RDSession` answer, as generated. */
interface RasItem {
  sessionID: number;
  serverID: number | undefined;
  type: number;
  state: number | undefined;
  user: string | undefined;
  /** ms. */
  logonTime: number;
}

/** The item as the broker sends it (the RD Sessions reference's shape; absent fields left out). */
function wireItem(item: RasItem): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      sessionID: item.sessionID,
      serverID: item.serverID,
      type: item.type,
      state: item.state,
      user: item.user,
      ip: '10.0.0.10',
      protocol: 2,
      logonTime: new Date(item.logonTime).toISOString(),
    }),
  ) as Record<string, unknown>;
}

/**
 * The sessions each imported source's pseudo-host must hold after a poll. A session is
 * `serverID:sessionID` (0 for no server) and is one connection however often it is listed: the
 * first listing that counts is taken. With `avd` imported, every session of the `Source=AVD` list is
 * an AVD one whatever its type, and is not taken again from the unfiltered list.
 */
function expectedImport(
  unfiltered: readonly RasItem[],
  avdList: readonly RasItem[],
  imported: readonly Source[],
): Record<Source, Session[]> {
  const out: Record<Source, Session[]> = { vdi: [], pc: [], avd: [] };
  const idOf = (item: RasItem) => `${item.serverID ?? 0}:${item.sessionID}`;
  const avd = imported.includes('avd') ? avdList : [];
  const avdIds = new Set(avd.map(idOf));
  const listings: Array<{ item: RasItem; source: Source | undefined }> = [
    ...avd.map((item) => ({ item, source: 'avd' as const })),
    ...unfiltered.filter((item) => !avdIds.has(idOf(item))).map((item) => ({ item, source: TYPES[item.type]!.source })),
  ];
  const taken = new Set<string>();
  for (const { item, source } of listings) {
    if (source === undefined || !imported.includes(source)) continue;
    const state = item.state === undefined ? 'active' : STATES[item.state];
    const person = PERSON.get(item.user);
    if (!state || !person || taken.has(idOf(item))) continue;
    taken.add(idOf(item));
    out[source].push({
      id: idOf(item),
      user: person,
      // The two free admin desktops are an RD Session Host rule: no broker session is admin.
      admin: false,
      kind: TYPES[item.type]!.kind,
      via: 'ras',
      state,
      since: item.logonTime,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands.

const HOSTS = ['rdsh-1', 'RDSH-2'];
const AGENT_USERS = ['corp\\alice', 'CORP\\Alice', 'corp\\bob', 'corp\\carol', 'corp\\dave', 'CORP\\ADM1'];
const IDS = ['1', '2', '3', '4'];

const agentSessionArb = fc.record({
  id: fc.constantFrom(...IDS),
  user: fc.constantFrom(...AGENT_USERS),
  admin: fc.boolean(),
  kind: fc.constantFrom('desktop', 'desktop', 'app'),
  via: fc.constantFrom('ras', 'rdp'),
  state: fc.constantFrom('active', 'disconnected'),
  since: fc.integer({ min: 1, max: 4 }).map((n) => 1_700_000_000_000 + n * 1000),
});

/** Logon times an hour or more before the run (`since` is the logon time for those). */
const LOGON_BASE = Date.now() - 3_600_000;

const rasItemArb: fc.Arbitrary<RasItem> = fc.record({
  // Few ids on few servers, so that lists repeat sessions and the AVD list overlaps the other.
  sessionID: fc.integer({ min: 1, max: 3 }),
  serverID: fc.constantFrom(10, 11, undefined),
  // VDI and PC types most often, the rest now and then.
  type: fc.constantFrom(3, 3, 4, 5, 5, 6, 0, 1, 7, 42),
  state: fc.constantFrom(0, 0, 0, 1, 2, 3, 4, 4, 5, 6, 9, undefined),
  user: fc.constantFrom(...BROKER_USERS.map(([spelt]) => spelt)),
  logonTime: fc.integer({ min: 0, max: 5 }).map((n) => LOGON_BASE - n * 60_000),
});

type Command =
  | { type: 'snapshot'; host: number; sessions: unknown[] }
  | { type: 'events'; host: number; items: Array<{ op: 'upsert'; session: unknown } | { op: 'end'; id: string }> }
  | { type: 'poll'; sessions: RasItem[]; avd: RasItem[]; rasUsers: number | undefined }
  | { type: 'failedPoll'; sessions: RasItem[] };

const hostArb = fc.integer({ min: 0, max: HOSTS.length - 1 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('snapshot' as const),
      host: hostArb,
      sessions: fc.uniqueArray(agentSessionArb, { selector: (s) => s.id, maxLength: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('events' as const),
      host: hostArb,
      items: fc.array(
        fc.oneof(
          { weight: 2, arbitrary: agentSessionArb.map((session) => ({ op: 'upsert' as const, session })) },
          { weight: 1, arbitrary: fc.constantFrom(...IDS).map((id) => ({ op: 'end' as const, id })) },
        ),
        { minLength: 1, maxLength: 3 },
      ),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('poll' as const),
      sessions: fc.array(rasItemArb, { maxLength: 8 }),
      avd: fc.array(rasItemArb, { maxLength: 3 }),
      rasUsers: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('failedPoll' as const),
      sessions: fc.array(rasItemArb, { maxLength: 4 }),
    }),
  },
);

// ---------------------------------------------------------------------------------------------
// The run.

const redis = useRedis();
let pki: TestPki;
let dir: string;
let passwordFile: string;
let broker: RasBrokerSimulator;

beforeAll(async () => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'rasmon-broker-model-'));
  passwordFile = join(dir, 'ras-password');
  writeFileSync(passwordFile, `${PASSWORD}\n`);
  broker = await RasBrokerSimulator.start({ pki, username: USERNAME, password: PASSWORD });
});
afterAll(async () => {
  await broker.stop();
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

/** What the model holds besides the farm: RAS's last answered license count and poll outcomes. */
interface BrokerModel {
  up: boolean;
  /** RAS's `usersLicenseInfo` as of the last poll it answered; undefined when it gave none. */
  rasUsers: number | undefined;
  /** Sessions each imported source applied at the last answered poll. */
  counts: Partial<Record<Source, number>>;
  badResponses: number;
}

async function expectSameState(
  url: string,
  model: ReferenceFarm,
  brokerModel: BrokerModel,
  context: string,
): Promise<void> {
  const scrape = await Scrape.from(url);
  const usage = model.usage();
  const got = {
    users: scrape.value('ras_license_users', FARM),
    overuse: scrape.value('ras_license_overuse_users', FARM),
    unverified: scrape.value('ras_license_users_unverified', FARM),
    admissions: scrape.value('ras_license_overuse_admissions_total', FARM),
    peak: scrape.value('ras_license_peak_users', FARM),
    brokerUp: scrape.value('ras_broker_up', FARM),
    brokerSessions: Object.fromEntries(
      SOURCES.map((source) => [source, scrape.value('ras_broker_sessions', { ...FARM, source })]),
    ),
    rasUsers: scrape.value('ras_broker_license_users', FARM),
    drift: scrape.value('ras_license_count_drift_users', FARM),
    badResponses: scrape.value('rasmon_collector_broker_errors_total', { ...FARM, reason: 'bad_response' }),
    labels: Object.fromEntries(
      scrape
        .all('ras_connections', FARM)
        .map((s) => [`${s.labels.kind}|${s.labels.via}|${s.labels.admin}|${s.labels.session_state}`, s.value]),
    ),
    hostConnections: Object.fromEntries(scrape.all('ras_host_connections', FARM).map((s) => [s.labels.host, s.value])),
  };
  const want = {
    users: usage.users,
    overuse: usage.overuseUsers,
    unverified: usage.unverifiedUsers,
    admissions: model.overuseAdmissions,
    peak: model.peakUsers,
    brokerUp: brokerModel.up ? 1 : 0,
    brokerSessions: Object.fromEntries(SOURCES.map((source) => [source, brokerModel.counts[source]])),
    rasUsers: brokerModel.rasUsers,
    drift: brokerModel.rasUsers === undefined ? undefined : usage.users - brokerModel.rasUsers,
    badResponses: brokerModel.badResponses,
    labels: Object.fromEntries(countByLabels(usage.connections)),
    hostConnections: Object.fromEntries(model.hostViews().map((host) => [host.host, host.connections.length])),
  };
  expect(got, context).toEqual(want);

  const detail = (await (await fetch(`${url}/api/v1/farms/farm-a`)).json()) as {
    connections: Array<Record<string, unknown>>;
    overLimit: string[];
  };
  const key = (c: Record<string, unknown>) => `${String(c.host)}/${String(c.id)}`;
  const apiConnections = detail.connections
    .map((c) => ({
      key: key(c),
      user: c.user,
      label: `${String(c.kind)}|${String(c.via)}|${String(c.admin)}|${String(c.state)}`,
      since: Date.parse(String(c.since)),
      consumes: c.consumes,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
  const modelConnections = usage.connections
    .map((c) => ({
      key: key(c as unknown as Record<string, unknown>),
      user: c.user,
      label: connectionLabelKey(c),
      since: c.since,
      consumes: c.consumes,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
  expect(apiConnections, `${context}: API connections`).toEqual(modelConnections);
  expect(detail.overLimit, `${context}: overLimit`).toEqual(model.overLimit());
}

describe('collector with a RAS broker equals the reference model', () => {
  it('after every agent frame and broker poll, users, overuse, broker sessions and drift equal the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commandArb, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        // All three sources most often (a session listed under two of them needs both imported).
        fc.oneof(
          { weight: 2, arbitrary: fc.constant([...SOURCES]) },
          { weight: 1, arbitrary: fc.subarray([...SOURCES]) },
        ),
        async (commands, seats, countDisconnected, imported) => {
          broker.sessions = [];
          broker.avdSessions = [];
          broker.license = sampleLicense(new Date(), { usersLicenseInfo: '0' });
          const collector = await InProcessCollector.start(
            rawConfig(
              redis.url,
              [
                {
                  id: 'farm-a',
                  token: TOKEN,
                  seats,
                  countDisconnected,
                  ras: {
                    url: broker.url,
                    username: USERNAME,
                    passwordFile,
                    ca: pki.caFile,
                    pollSeconds: 3600,
                    sessions: imported,
                    upnDomains: { 'corp.example': 'CORP' },
                  },
                },
              ],
              { heartbeatSeconds: 30 },
            ),
            { tickMs: 60_000 },
          );
          const model = new ReferenceFarm({ seats, countDisconnected });
          const brokerModel: BrokerModel = { up: true, rasUsers: 0, counts: {}, badResponses: 0 };
          const agents: Array<{ agent: TestAgent | undefined; seq: number }> = HOSTS.map(() => ({
            agent: undefined,
            seq: 0,
          }));

          /** The model's side of a poll RAS answered: each imported source's pseudo-host takes its snapshot. */
          const applyPoll = (sessions: readonly RasItem[], avd: readonly RasItem[]) => {
            const expected = expectedImport(sessions, avd, imported);
            for (const source of SOURCES) {
              if (!imported.includes(source)) continue;
              const now = Date.now();
              model.connect(`broker/${source}`, now);
              model.snapshot(`broker/${source}`, expected[source], now);
              brokerModel.counts[source] = expected[source].length;
            }
          };

          try {
            // The poll the collector makes at start, done (on the empty lists set above).
            await collector.collector.pollBroker('farm-a');
            applyPoll([], []);
            await expectSameState(collector.url, model, brokerModel, 'after start');

            for (const [index, command] of commands.entries()) {
              const context = `command ${index}: ${JSON.stringify(command)}`;
              if (command.type === 'poll' || command.type === 'failedPoll') {
                broker.sessions = command.sessions.map(wireItem);
                broker.avdSessions = command.type === 'poll' ? command.avd.map(wireItem) : [];
                broker.license =
                  command.type === 'poll'
                    ? sampleLicense(new Date(), { usersLicenseInfo: String(command.rasUsers ?? '') })
                    : // A field of another shape: the poll fails as bad_response and applies nothing.
                      sampleLicense(new Date(), { installedUsers: 'many' });
                expect(await collector.collector.pollBroker('farm-a'), context).toBe(true);
                if (command.type === 'poll') {
                  applyPoll(command.sessions, command.avd);
                  brokerModel.up = true;
                  brokerModel.rasUsers = command.rasUsers;
                } else {
                  brokerModel.up = false;
                  brokerModel.badResponses += 1;
                }
                await expectSameState(collector.url, model, brokerModel, context);
                continue;
              }

              const host = HOSTS[command.host]!;
              const slot = agents[command.host]!;
              if (!slot.agent) {
                slot.agent = await TestAgent.connect(collector.url, TOKEN);
                await slot.agent.hello('farm-a', host, `stream-${host}`);
                model.connect(host, Date.now());
              }
              let frame: string;
              if (command.type === 'snapshot') {
                slot.seq += 1;
                frame = JSON.stringify({ type: 'snapshot', seq: slot.seq, at: Date.now(), sessions: command.sessions });
              } else {
                const events = command.items.map((item) => ({ ...item, seq: (slot.seq += 1), at: Date.now() }));
                frame = JSON.stringify({ type: 'events', events });
              }
              slot.agent.send(frame);
              const ack = await slot.agent.next('ack');
              expect(ack, context).toMatchObject({ seq: slot.seq });
              const parsed = parseAgentFrame(frame, DEFAULT_LIMITS);
              if (!parsed.ok) throw new Error(parsed.message);
              const now = Date.now();
              if (parsed.frame.type === 'snapshot') {
                model.snapshot(host, parsed.frame.sessions, now);
              } else {
                for (const event of (parsed.frame as ParsedEvents).events) {
                  if (event.op === 'upsert') model.upsert(host, event.session, now);
                  else if (event.op === 'end') model.end(host, event.id, now);
                }
              }
              await expectSameState(collector.url, model, brokerModel, context);
            }
          } finally {
            await Promise.all(agents.flatMap((slot) => (slot.agent ? [slot.agent.close()] : [])));
            await collector.stop();
          }
        },
      ),
      { numRuns: 40 },
    );
  }, 240_000);
});
