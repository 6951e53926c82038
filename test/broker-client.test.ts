/**
 * The RAS broker client over real HTTPS against the simulator (test/support/ras-broker-simulator.ts),
 * which follows the RAS REST API guide: every way a broker fails gives its documented reason, an
 * expired token is renewed once, refused logons back off, and the password reaches no error or log.
 */
import { Writable } from 'node:stream';
import { createRootLogger } from '@rasmon/protocol/kit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BrokerError,
  LOGON_BACKOFF,
  LogonBackoff,
  RasClient,
  Secret,
  type BrokerFailureReason,
  type RasClientOptions,
} from '@rasmon/collector';
import {
  RAS_CONTENT_TYPE,
  dayFirst,
  sampleLicense,
  sampleSession,
  useRasBroker,
} from './support/ras-broker-simulator.js';

const USERNAME = 'CORP\\svc-rasmon';
const PASSWORD = 'S3cret-pa55word-for-rasmon';
const fixture = useRasBroker({ username: USERNAME, password: PASSWORD });

let logLines: string[];

beforeEach(() => {
  logLines = [];
});
afterEach(async () => {
  // Whatever a test did, the password reached no log line.
  expect(logLines.join('\n')).not.toContain(PASSWORD);
});

function client(options: Partial<RasClientOptions> = {}): RasClient {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  });
  return new RasClient({
    url: fixture.broker.url,
    username: USERNAME,
    password: new Secret(PASSWORD),
    ca: fixture.pki.ca,
    timeoutMs: 5_000,
    log: createRootLogger('test', { level: 'debug' }, sink),
    ...options,
  });
}

/** The BrokerError `action` rejects with; checks its reason and that the password is nowhere in it. */
async function failure(action: Promise<unknown>, reason: BrokerFailureReason): Promise<BrokerError> {
  const err = await action.then(
    () => {
      throw new Error(`expected a ${reason} failure`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BrokerError);
  const error = err as BrokerError;
  expect(error.reason, error.message).toBe(reason);
  expect(error.message).not.toContain('\n');
  expect(`${error.message} ${String(error.stack)} ${JSON.stringify(error)}`).not.toContain(PASSWORD);
  return error;
}

describe('RAS broker client', () => {
  it('logs on with the documented headers and body, sends auth_token, reads License and RDSession, logs off', async () => {
    const now = new Date();
    fixture.broker.license = sampleLicense(now, { installedUsers: '250', usersLicenseInfo: '121', usersPeak: '199' });
    fixture.broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\alice' }),
      sampleSession({ type: 6, user: 'CORP\\bob', state: 4 }),
      sampleSession({ type: 0, user: 'CORP\\carol' }),
    ];
    const ras = client();
    const license = await ras.readLicense();
    const list = await ras.readSessions();
    await ras.logoff();

    const [logon, ...rest] = fixture.broker.requests;
    expect(logon).toMatchObject({ method: 'POST', path: '/api/session/logon' });
    expect(logon!.headers['content-type']).toBe(RAS_CONTENT_TYPE);
    expect(logon!.headers.auth_token).toBeUndefined();
    expect(JSON.parse(logon!.body)).toEqual({ username: USERNAME, password: PASSWORD });
    expect(rest.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/License',
      'GET /api/RDSession',
      'POST /api/session/logoff',
    ]);
    const tokens = new Set(rest.map((r) => r.headers.auth_token));
    expect(tokens.size).toBe(1);
    expect([...tokens][0]).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    for (const r of rest) expect(r.headers['content-type']).toBe(RAS_CONTENT_TYPE);
    expect(fixture.broker.liveTokens).toBe(0);
    expect(ras.loggedOn).toBe(false);

    const expiry = new Date(now.getTime() + 365 * 86_400_000);
    expect(license).toMatchObject({
      installedUsers: 250,
      usersLicenseInfo: 121,
      usersPeak: 199,
      type: 'permanent',
      expiryDate: expiry.toISOString().slice(0, 10),
      needsAttention: false,
    });
    expect(license.gracePeriodDaysLeft).toBeUndefined();
    expect(list.sessions.map((s) => [s.type, s.source, s.state, s.user])).toEqual([
      ['vdi', 'vdi', 'active', 'CORP\\alice'],
      ['pc-app', 'pc', 'disconnected', 'CORP\\bob'],
      ['desktop', 'rds', 'active', 'CORP\\carol'],
    ]);
  });

  it('a wrong password is auth, one log line without the password, and the next logons back off', async () => {
    let clock = 1_000_000;
    const backoff = new LogonBackoff(() => clock);
    const ras = client({ password: new Secret('wrong-password'), backoff });
    await failure(ras.readLicense(), 'auth');
    expect(fixture.broker.logons).toBe(1);
    expect(logLines.filter((line) => line.includes('refused the logon'))).toHaveLength(1);
    expect(logLines.join('\n')).not.toContain('wrong-password');

    // Held back: no request reaches the broker until the wait is over.
    await failure(ras.readLicense(), 'auth');
    expect(fixture.broker.logons).toBe(1);
    clock += LOGON_BACKOFF.firstMs;
    await failure(ras.logon(), 'auth');
    expect(fixture.broker.logons).toBe(2);
    // From the second refusal in a row, at least five minutes.
    expect(backoff.notBefore - clock).toBeGreaterThanOrEqual(5 * 60_000);
    clock += 5 * 60_000 - 1;
    await failure(ras.logon(), 'auth');
    expect(fixture.broker.logons).toBe(2);
    clock += 1;
    await failure(ras.logon(), 'auth');
    expect(fixture.broker.logons).toBe(3);
    expect(backoff.notBefore - clock).toBe(10 * 60_000);
  });

  it('an accepted logon resets the backoff', async () => {
    let clock = 0;
    const backoff = new LogonBackoff(() => clock);
    fixture.broker.password = 'changed';
    await failure(client({ backoff }).logon(), 'auth');
    clock += LOGON_BACKOFF.firstMs;
    fixture.broker.password = PASSWORD;
    await client({ backoff }).logon();
    expect(backoff.refusals).toBe(0);
    expect(backoff.mayLogOn()).toBe(true);
  });

  it('a 401 on a data call (expired token) logs on again once and succeeds', async () => {
    const ras = client();
    await ras.readLicense();
    fixture.broker.expireTokens();
    const license = await ras.readLicense();
    expect(license.installedUsers).toBe(250);
    expect(fixture.broker.logons).toBe(2);
    expect(fixture.broker.requests.map((r) => r.path)).toEqual([
      '/api/session/logon',
      '/api/License',
      '/api/License',
      '/api/session/logon',
      '/api/License',
    ]);
  });

  it('a base URL with a path keeps it before /api', async () => {
    fixture.broker.basePath = '/ras-api';
    const license = await client({ url: `${fixture.broker.url}/ras-api/` }).readLicense();
    expect(license.installedUsers).toBe(250);
    expect(fixture.broker.requests.map((r) => r.path)).toEqual(['/ras-api/api/session/logon', '/ras-api/api/License']);
  });

  it('data calls made at once share one logon', async () => {
    const ras = client();
    await Promise.all([ras.readLicense(), ras.readSessions(), ras.readLicense()]);
    expect(fixture.broker.logons).toBe(1);
    fixture.broker.expireTokens();
    await Promise.all([ras.readLicense(), ras.readSessions()]);
    expect(fixture.broker.logons).toBe(2);
  });

  it('a data call refused again after the fresh logon is auth, after exactly one more logon', async () => {
    const ras = client();
    await ras.logon();
    fixture.broker.refuseData = true;
    await failure(ras.readSessions(), 'auth');
    expect(fixture.broker.logons).toBe(2);
    expect(ras.loggedOn).toBe(false);
  });

  it('an answer slower than the timeout is timeout', async () => {
    fixture.broker.delayMs = 3_000;
    const err = await failure(client({ timeoutMs: 300 }).logon(), 'timeout');
    expect(err.message).toContain('300 ms');
  });

  it('a 5 MB body is bad_response, with or without Content-Length', async () => {
    const ras = client();
    await ras.logon();
    fixture.broker.hugeBodyBytes = 5 * 1_048_576;
    await failure(ras.readSessions(), 'bad_response');
    fixture.broker.hugeBodyDeclared = true;
    const err = await failure(ras.readSessions(), 'bad_response');
    expect(err.message).toContain(`larger than ${4 * 1_048_576} bytes`);
  });

  it('a body that never ends is bad_response: the client stops reading at its cap', async () => {
    const ras = client({ timeoutMs: 30_000, maxBodyBytes: 256 * 1024 });
    await ras.logon();
    fixture.broker.hugeBodyBytes = Number.POSITIVE_INFINITY;
    await failure(ras.readLicense(), 'bad_response');
  });

  it('a certificate from another CA is tls, and so is one the system roots do not know', async () => {
    const err = await failure(client({ ca: fixture.pki.otherCa }).logon(), 'tls');
    expect(err.message).toMatch(/certificate was refused/);
    await failure(client({ ca: undefined }).logon(), 'tls');
    expect(fixture.broker.requests).toHaveLength(0);
  });

  it('a broker that is down is unreachable', async () => {
    const url = fixture.broker.url;
    await fixture.broker.stop();
    await failure(client({ url }).logon(), 'unreachable');
  });

  it('a License field of the wrong type is bad_response naming the field', async () => {
    const ras = client();
    const cases: [Record<string, unknown>, string][] = [
      [{ usersPeak: true }, 'usersPeak'],
      [{ installedUsers: 'many' }, 'installedUsers'],
      [{ usersLicenseInfo: '-3' }, 'usersLicenseInfo'],
      [{ expiryDate: '2021-02-21' }, 'expiryDate'],
      [{ expiryDate: '31/02/2021' }, 'expiryDate'],
      [{ billingPeriodStart: '03/05/2019 25:30' }, 'billingPeriodStart'],
      [{ needsAttention: 'no' }, 'needsAttention'],
      [{ licenseType: 7 }, 'licenseType'],
      [{ type: { name: 'x' } }, 'type'],
    ];
    for (const [fields, field] of cases) {
      fixture.broker.license = sampleLicense(new Date(), fields);
      const err = await failure(ras.readLicense(), 'bad_response');
      expect(err.field).toBe(field);
      expect(err.message).toContain(`GET /api/License: ${field} must be`);
    }
    fixture.broker.license = ['not', 'an', 'object'];
    await failure(ras.readLicense(), 'bad_response');
  });

  it('a License type the enum lacks is read as undocumented, not an error', async () => {
    fixture.broker.license = sampleLicense(new Date(), { type: 42 });
    const license = await client().readLicense();
    expect(license).toMatchObject({ type: 'undocumented', undocumentedType: 42, installedUsers: 250 });
  });

  it('sessions with wrong types are set aside naming the field; unknown type values are counted and kept', async () => {
    fixture.broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\a' }),
      sampleSession({ type: 3, user: 'CORP\\b', sessionID: '17' }),
      sampleSession({ type: 99, user: 'CORP\\c' }),
      sampleSession({ type: '5', user: 'CORP\\d' }),
      sampleSession({ type: 5, user: 'CORP\\e', logonTime: '05/01/2026 08:30' }),
      'not a session',
    ];
    const list = await client().readSessions();
    expect(list.sessions.map((s) => [s.user, s.type, s.source])).toEqual([
      ['CORP\\a', 'vdi', 'vdi'],
      ['CORP\\c', 'undocumented', 'undocumented'],
    ]);
    expect(list.undocumentedTypes).toBe(1);
    expect(list.rejected).toEqual([
      { index: 1, field: '[1].sessionID', problem: 'must be an integer, not "17"' },
      { index: 3, field: '[3].type', problem: 'must be an integer, not "5"' },
      {
        index: 4,
        field: '[4].logonTime',
        problem: 'must be an ISO-8601 date-time with a zone, not "05/01/2026 08:30"',
      },
      { index: 5, field: '[5]', problem: 'must be an object' },
    ]);
    fixture.broker.sessions = { sessions: [] };
    await failure(client().readSessions(), 'bad_response');
  });

  it('an answer that is not JSON is bad_response', async () => {
    fixture.broker.license = undefined;
    // JSON.stringify(undefined) sends no body at all.
    await failure(client().readLicense(), 'bad_response');
  });

  it('dates in the License answer follow the clock the test controls', async () => {
    const now = new Date(Date.UTC(2031, 0, 31, 22, 5));
    fixture.broker.license = sampleLicense(now);
    const license = await client().readLicense();
    expect(dayFirst(now, true)).toBe('31/01/2031 22:05');
    expect(license.billingPeriodStart).toBe('2031-01-28T22:05');
    expect(license.expiryDate).toBe('2032-01-31');
  });
});
