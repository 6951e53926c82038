/**
 * The RAS broker connector in a running collector, against the broker simulator over real HTTPS
 * with a test CA, a real Redis and real agent connections: adopted seats and expiry, broker users
 * in the count (one person on an RD Session Host and a VDI desktop counted once), the drift against
 * RAS's own count, and every way the broker fails, with the agents' frames acked throughout.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Collector, parseConfig } from '@rasmon/collector';
import { rawConfig, sha256, type FarmSpec } from './support/collector-harness.js';
import { TestAgent, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { useRedis } from './support/use-redis.js';
import { DAY_MS } from './support/calendar.js';
import { sampleLicense, sampleSession, useRasBroker } from './support/ras-broker-simulator.js';

const redis = useRedis();
const USERNAME = 'CORP\\svc-rasmon';
const PASSWORD = 'connector-Pa55word';
const fixture = useRasBroker({ username: USERNAME, password: PASSWORD });
const TOKEN = 'token-farm-a';

const running: Collector[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((collector) => collector.drain(2000)));
});

/** The log lines a collector wrote, as text: the tests look for the password in them. */
class LogLines extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

interface Started {
  collector: Collector;
  url: string;
  log: LogLines;
}

function farmSpec(ras: Record<string, unknown>, farm: Partial<FarmSpec> = {}): FarmSpec {
  return {
    id: 'farm-a',
    token: TOKEN,
    ras: {
      url: fixture.broker.url,
      username: USERNAME,
      passwordFile: fixture.passwordFile,
      ca: fixture.pki.caFile,
      pollSeconds: 3600,
      upnDomains: { 'corp.example': 'CORP' },
      ...ras,
    },
    ...farm,
  };
}

async function start(farm: FarmSpec, prefix?: string, others: FarmSpec[] = []): Promise<Started> {
  const raw = rawConfig(redis.url, [farm, ...others]);
  if (prefix) (raw.redis as Record<string, unknown>).prefix = prefix;
  // rawConfig fills license and expires in; an adopting farm here leaves out what RAS gives.
  const farms = raw.farms as Array<Record<string, unknown>>;
  const adopting = (farm.ras as Record<string, unknown>).adopt === true;
  for (const key of ['license', 'expires']) if (adopting && !(key in farm)) delete farms[0]![key];
  const log = new LogLines();
  const collector = await Collector.start({ config: parseConfig(raw, 'test'), log: pino({ level: 'debug' }, log) });
  running.push(collector);
  for (let i = 0; i < 200 && !collector.ready; i++) await new Promise((r) => setTimeout(r, 25));
  // The poll a collector makes at start, done: each test's polls are then its own.
  await collector.pollBroker('farm-a');
  return { collector, url: `http://127.0.0.1:${collector.address.port}`, log };
}

async function farmDoc(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/api/v1/farms/farm-a`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

describe('the broker connector in a running collector', () => {
  it('adopts seats, license and expiry from RAS, and imports VDI and PC users, one person counted once', async () => {
    const now = new Date();
    fixture.broker.license = sampleLicense(now, { installedUsers: '3', usersLicenseInfo: '4', type: 1 });
    fixture.broker.sessions = [
      // The same person as the agent's CORP\alice, spelt as a UPN: one user.
      sampleSession({ type: 3, user: 'alice@corp.example', serverID: 10 }),
      sampleSession({ type: 4, user: 'CORP\\Carol', serverID: 10, state: 4 }),
      sampleSession({ type: 5, user: 'CORP\\dave', serverID: 11 }),
      // An RD Session Host's own session (the agent counts it) and an admin one: not imported.
      sampleSession({ type: 0, user: 'CORP\\erin' }),
      sampleSession({ type: 7, user: 'CORP\\frank' }),
      // No logged-on user (Listen): not a session.
      sampleSession({ type: 3, user: 'CORP\\gina', state: 6 }),
    ];
    const { collector, url, log } = await start(farmSpec({ adopt: true }));
    const agent = await TestAgent.connect(url, TOKEN);
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('s1', 'CORP\\alice'), session('s2', 'CORP\\bob')]);
    expect(await collector.pollBroker('farm-a')).toBe(true);

    const scrape = await Scrape.from(url);
    const farm = { farm: 'farm-a' };
    expect(scrape.value('ras_broker_up', farm)).toBe(1);
    // alice (agent and VDI), bob (agent), carol (VDI app, disconnected), dave (PC).
    expect(scrape.value('ras_license_users', farm)).toBe(4);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'vdi' })).toBe(2);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'pc' })).toBe(1);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'avd' })).toBe(0);
    expect(scrape.value('ras_broker_license_users', farm)).toBe(4);
    expect(scrape.value('ras_license_count_drift_users', farm)).toBe(0);
    // Adopted: 3 seats, so one user over.
    expect(scrape.value('ras_license_seats', farm)).toBe(3);
    expect(scrape.value('ras_broker_license_seats', farm)).toBe(3);
    expect(scrape.value('ras_license_overuse_users', farm)).toBe(1);
    const expiry = Date.parse(`${new Date(now.getTime() + 365 * DAY_MS).toISOString().slice(0, 10)}T00:00:00Z`) / 1000;
    expect(scrape.value('ras_license_expiry_timestamp_seconds', farm)).toBe(expiry);
    expect(scrape.value('ras_license_state', { farm: 'farm-a', state: 'active' })).toBe(1);
    expect(scrape.samples.filter((s) => s.name === 'ras_agent_up').map((s) => s.labels.host)).toEqual(['rdsh-1']);

    const doc = await farmDoc(url);
    expect(doc.seats).toBe(3);
    expect(doc.license).toBe('primary');
    expect(doc.users).toBe(4);
    expect(log.text).not.toContain(PASSWORD);
    await agent.close();
  });

  it('follows RAS when it disagrees with the configured fallback, and says so once', async () => {
    fixture.broker.license = sampleLicense(new Date(), { installedUsers: '300', type: 3 });
    const { collector, url, log } = await start(
      farmSpec({ adopt: true }, { seats: 250, license: 'primary' }),
      undefined,
    );
    await collector.pollBroker('farm-a');
    await collector.pollBroker('farm-a');
    const scrape = await Scrape.from(url);
    expect(scrape.value('ras_license_seats', { farm: 'farm-a' })).toBe(300);
    expect(scrape.value('ras_license_info', { farm: 'farm-a', license: 'spla' })).toBe(1);
    const warnings = log.text.split('\n').filter((line) => line.includes('disagree on the license'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"field":"seats"');
    expect(warnings[0]).toContain('"field":"license"');
    const doc = await farmDoc(url);
    expect(doc.licenseFrom).toBe('ras');
    expect(doc.configDisagrees).toEqual([
      { field: 'seats', configured: 250, ras: 300 },
      { field: 'license', configured: 'primary', ras: 'spla' },
    ]);
    expect((doc.broker as Record<string, unknown>).text).toBe('RAS counts 120, rasmon 0');
  });

  it('warns, naming the key and its farms and no secret, when the license type RAS gives mixes a licenseKey', async () => {
    // farm-b is primary under key-1; farm-a adopts its type from RAS, which says SPLA (type 3).
    fixture.broker.license = sampleLicense(new Date(), { installedUsers: '300', type: 3 });
    const { url, log } = await start(farmSpec({ adopt: true }, { licenseKey: 'key-1' }), undefined, [
      { id: 'farm-b', token: 'token-farm-b', seats: 10, license: 'primary', licenseKey: 'key-1' },
    ]);
    // The poll's answer is laid over the farm just after the poll: wait until the API shows it.
    for (let i = 0; i < 200 && (await farmDoc(url)).licenseFrom !== 'ras'; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await farmDoc(url)).toMatchObject({ licenseFrom: 'ras', license: 'spla' });
    const warnings = log.text.split('\n').filter((line) => line.includes('a licenseKey is shared by SPLA farms'));
    expect(warnings).toHaveLength(1);
    const line = JSON.parse(warnings[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, licenseKey: 'key-1', splaFarms: ['farm-a'], otherFarms: ['farm-b'] });
    for (const secret of [PASSWORD, TOKEN, 'token-farm-b', sha256(TOKEN), sha256('token-farm-b')]) {
      expect(warnings[0]).not.toContain(secret);
    }
    expect(log.text).not.toContain(PASSWORD);
  });

  it('an adopting farm without a fallback shows no seats, license or expiry until RAS answers', async () => {
    await fixture.broker.stop();
    const { url } = await start(farmSpec({ adopt: true }));
    const doc = await farmDoc(url);
    expect(doc).toMatchObject({ seats: null, license: null, state: null, expires: null, licenseFrom: 'config' });
    expect((doc.broker as Record<string, unknown>).up).toBe(false);
    const scrape = await Scrape.from(url);
    expect(scrape.value('ras_license_info', { farm: 'farm-a', license: 'unknown' })).toBe(1);
    expect(scrape.all('ras_license_state', { farm: 'farm-a' })).toEqual([]);
    expect(scrape.value('ras_license_seats', { farm: 'farm-a' })).toBeUndefined();
    expect(scrape.value('ras_broker_up', { farm: 'farm-a' })).toBe(0);
  });

  it('keeps the broker users through a broker outage, counts the reason, and comes back', async () => {
    fixture.broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\vdi-1' }),
      sampleSession({ type: 3, user: 'CORP\\vdi-2' }),
    ];
    const { collector, url } = await start(farmSpec({}, { seats: 10 }));
    await collector.pollBroker('farm-a');
    expect((await Scrape.from(url)).value('ras_license_users', { farm: 'farm-a' })).toBe(2);

    const port = new URL(fixture.broker.url).port;
    await fixture.broker.stop();
    await collector.pollBroker('farm-a');
    let scrape = await Scrape.from(url);
    expect(scrape.value('ras_broker_up', { farm: 'farm-a' })).toBe(0);
    expect(scrape.value('rasmon_collector_broker_errors_total', { farm: 'farm-a', reason: 'unreachable' })).toBe(1);
    // A blip is not users leaving: they stay counted (held until the pseudo-host's lease lapses).
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(2);
    expect(((await farmDoc(url)).broker as Record<string, unknown>).reason).toBe('unreachable');

    await fixture.restart(Number(port));
    fixture.broker.sessions = [sampleSession({ type: 3, user: 'CORP\\vdi-1' })];
    await collector.pollBroker('farm-a');
    scrape = await Scrape.from(url);
    expect(scrape.value('ras_broker_up', { farm: 'farm-a' })).toBe(1);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
    // A user leaving between two polls is the broker's news, not an event an agent lost.
    expect(scrape.value('ras_snapshot_corrections_total', { farm: 'farm-a' })).toBe(0);
  });

  it('a wrong password: reason auth, no lock-out loop, no password in any log line', async () => {
    const { collector, url, log } = await start(farmSpec({}, { seats: 10 }));
    await collector.pollBroker('farm-a');
    expect(fixture.broker.logons).toBe(1);
    fixture.broker.password = 'changed-on-the-broker';
    fixture.broker.expireTokens();
    await collector.pollBroker('farm-a');
    await collector.pollBroker('farm-a');
    await collector.pollBroker('farm-a');
    const scrape = await Scrape.from(url);
    expect(scrape.value('ras_broker_up', { farm: 'farm-a' })).toBe(0);
    expect(scrape.value('rasmon_collector_broker_errors_total', { farm: 'farm-a', reason: 'auth' })).toBe(3);
    // One refused logon after the token expired; the backoff holds the next ones back.
    expect(fixture.broker.logons).toBe(2);
    expect(log.text).toContain('the RAS broker refused the logon');
    expect(log.text).not.toContain(PASSWORD);
    expect(log.text).not.toContain('changed-on-the-broker');
  });

  it('an expired auth token logs on again once and the poll answers', async () => {
    fixture.broker.sessions = [sampleSession({ type: 3, user: 'CORP\\vdi-1' })];
    const { collector, url } = await start(farmSpec({}, { seats: 10 }));
    await collector.pollBroker('farm-a');
    fixture.broker.expireTokens();
    await collector.pollBroker('farm-a');
    expect(fixture.broker.logons).toBe(2);
    expect((await Scrape.from(url)).value('ras_broker_up', { farm: 'farm-a' })).toBe(1);
  });

  it('an unknown CA is refused (tls), a 5 MB body and a body with wrong types are bad_response', async () => {
    const { collector, url, log } = await start(farmSpec({ ca: fixture.pki.otherCaFile }, { seats: 10 }));
    const tls = async () =>
      (await Scrape.from(url)).value('rasmon_collector_broker_errors_total', { farm: 'farm-a', reason: 'tls' })!;
    const before = await tls();
    await collector.pollBroker('farm-a');
    expect(await tls()).toBe(before + 1);
    expect((await Scrape.from(url)).value('ras_broker_up', { farm: 'farm-a' })).toBe(0);
    await collector.drain(2000);

    const second = await start(farmSpec({}, { seats: 10 }));
    fixture.broker.hugeBodyBytes = 5 * 1024 * 1024;
    await second.collector.pollBroker('farm-a');
    fixture.broker.hugeBodyBytes = 0;
    fixture.broker.license = sampleLicense(new Date(), { installedUsers: 'many' });
    await second.collector.pollBroker('farm-a');
    const scrape = await Scrape.from(second.url);
    expect(scrape.value('rasmon_collector_broker_errors_total', { farm: 'farm-a', reason: 'bad_response' })).toBe(2);
    expect(second.log.text).toContain('installedUsers');
    expect(log.text + second.log.text).not.toContain(PASSWORD);
  });

  it("a slow broker (beyond the timeout) is a timeout, and the agents' frames are acked meanwhile", async () => {
    const { collector, url } = await start(farmSpec({ timeoutSeconds: 2 }, { seats: 10 }));
    await collector.pollBroker('farm-a');
    const agent = await TestAgent.connect(url, TOKEN);
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, []);
    fixture.broker.delayMs = 5000;
    let pollDone = false;
    const poll = collector.pollBroker('farm-a').then(() => (pollDone = true));
    for (let seq = 2; seq < 12; seq++) {
      const ack = await agent.events([upsert(seq, session(`s${seq}`, `CORP\\user${seq}`))]);
      expect(ack.seq).toBe(seq);
    }
    // Every ack came back while the broker still had not answered.
    expect(pollDone).toBe(false);
    await poll;
    const scrape = await Scrape.from(url);
    expect(scrape.value('rasmon_collector_broker_errors_total', { farm: 'farm-a', reason: 'timeout' })).toBe(1);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(10);
    await agent.close();
  });

  it('two collectors, one broker: one polls, both export the same numbers', async () => {
    fixture.broker.license = sampleLicense(new Date(), { usersLicenseInfo: '7' });
    fixture.broker.sessions = [sampleSession({ type: 3, user: 'CORP\\vdi-1' })];
    const prefix = `t${Date.now().toString(36)}`;
    const a = await start(farmSpec({}, { seats: 10 }), prefix);
    const b = await start(farmSpec({}, { seats: 10 }), prefix);
    const reads = () => fixture.broker.requests.filter((r) => r.path.toLowerCase() === '/api/license').length;
    const before = reads();
    for (let i = 0; i < 3; i++) {
      await a.collector.pollBroker('farm-a');
      await b.collector.pollBroker('farm-a');
    }
    // Six polls asked for, three by each collector: only the one holding the lease read the fixture.broker.
    expect(reads() - before).toBe(3);
    expect(fixture.broker.logons).toBe(1);
    const [sa, sb] = await Promise.all([Scrape.from(a.url), Scrape.from(b.url)]);
    for (const name of [
      'ras_broker_up',
      'ras_broker_license_users',
      'ras_license_count_drift_users',
      'ras_license_users',
    ]) {
      expect(sa.value(name, { farm: 'farm-a' }), name).toBe(sb.value(name, { farm: 'farm-a' }));
    }
    expect(sa.value('ras_license_count_drift_users', { farm: 'farm-a' })).toBe(1 - 7);
  });

  it('imports AVD sessions from the Source=AVD list, once, and empties a source a reload stops importing', async () => {
    fixture.broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\vdi-1', serverID: 1, sessionID: 1 }),
      // Listed in both: AVD says what it is.
      sampleSession({ type: 0, user: 'CORP\\avd-1', serverID: 9, sessionID: 5 }),
    ];
    fixture.broker.avdSessions = [sampleSession({ type: 0, user: 'CORP\\avd-1', serverID: 9, sessionID: 5 })];
    const spec = farmSpec({}, { seats: 10 });
    const prefix = `t${Date.now().toString(36)}r`;
    const { collector, url } = await start(spec, prefix);
    let scrape = await Scrape.from(url);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'avd' })).toBe(1);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'vdi' })).toBe(1);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(2);
    expect(fixture.broker.requests.some((r) => r.path === '/api/RDSession?Source=AVD')).toBe(true);

    const raw = rawConfig(redis.url, [{ ...spec, ras: { ...(spec.ras as object), sessions: ['vdi'] } }]);
    (raw.redis as Record<string, unknown>).prefix = prefix;
    collector.reload(parseConfig(raw, 'test'));
    await collector.pollBroker('farm-a');
    scrape = await Scrape.from(url);
    expect(scrape.value('ras_broker_sessions', { farm: 'farm-a', source: 'avd' })).toBeUndefined();
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
    expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'broker/avd' })).toBe(0);
  });

  it('logs off the broker when the collector stops', async () => {
    const { collector } = await start(farmSpec({}, { seats: 10 }));
    expect(fixture.broker.liveTokens).toBe(1);
    await collector.drain(2000);
    expect(fixture.broker.liveTokens).toBe(0);
    expect(fixture.broker.requests.at(-1)?.path).toBe('/api/session/logoff');
  });
});
