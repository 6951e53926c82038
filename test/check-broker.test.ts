/**
 * `rasmon-collector check-broker`: the built command against the RAS broker simulator over HTTPS.
 * What RAS says is printed in plain words and the session is logged off (exit 0); a broker that fails
 * gives its reason in one line (exit 1); a bad command line or configuration exits 2. The password
 * appears in no output.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COLLECTOR_BIN } from './support/collector-harness.js';
import { sampleLicense, sampleSession, useRasBroker } from './support/ras-broker-simulator.js';

const run = promisify(execFile);
const USERNAME = 'CORP\\svc-rasmon';
const PASSWORD = 'check-broker-Pa55word';
const fixture = useRasBroker({ username: USERNAME, password: PASSWORD });

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rasmon-check-broker-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let configs = 0;
function configFile(ras: Record<string, unknown> | undefined, extraFarm = false): string {
  const farm = (id: string, withRas: Record<string, unknown> | undefined) => ({
    id,
    seats: 250,
    license: 'primary',
    expires: new Date(Date.now() + 400 * 86_400_000).toISOString(),
    agentTokensSha256: [id === 'farm-a' ? 'a'.repeat(64) : 'b'.repeat(64)],
    ...(withRas ? { ras: withRas } : {}),
  });
  const farms = [farm('farm-a', ras), ...(extraFarm ? [farm('farm-b', ras)] : [])];
  const file = join(dir, `config-${++configs}.json`);
  writeFileSync(file, JSON.stringify({ farms }));
  return file;
}

function ras(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: fixture.broker.url,
    username: USERNAME,
    passwordFile: fixture.passwordFile,
    ca: fixture.pki.caFile,
    ...overrides,
  };
}

async function checkBroker(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let result: { code: number; stdout: string; stderr: string };
  try {
    const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, 'check-broker', ...args], {
      env: { ...process.env, RASMON_LOG_LEVEL: 'debug' },
    });
    result = { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    result = { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
  expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  return result;
}

describe('rasmon-collector check-broker', () => {
  it('prints seats, in use, peak, expiry, grace and sessions per source, then logs off', async () => {
    const now = new Date();
    fixture.broker.license = sampleLicense(now, {
      installedUsers: '250',
      usersLicenseInfo: '121',
      usersPeak: '199',
      gracePeriodState: 'Active',
      gracePeriodDaysLeft: '9',
    });
    fixture.broker.sessions = [
      sampleSession({ type: 3, user: 'CORP\\a' }),
      sampleSession({ type: 4, user: 'CORP\\b' }),
      sampleSession({ type: 5, user: 'CORP\\c' }),
      sampleSession({ type: 1, user: 'CORP\\d' }),
      sampleSession({ type: 7, user: 'CORP\\e' }),
      sampleSession({ type: 77, user: 'CORP\\f' }),
    ];
    const { code, stdout, stderr } = await checkBroker(['--config', configFile(ras())]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const expiry = new Date(now.getTime() + 365 * 86_400_000).toISOString().slice(0, 10);
    expect(stdout).toContain(`RAS broker ${fixture.broker.url} (farm farm-a)`);
    expect(stdout).toContain('License: Parallels Remote Application Server (permanent)');
    expect(stdout).toContain('seats (installedUsers): 250');
    expect(stdout).toContain('in use now (usersLicenseInfo): 121');
    expect(stdout).toContain('peak (usersPeak): 199');
    expect(stdout).toContain(`expires (expiryDate, the broker's calendar): ${expiry}`);
    expect(stdout).toContain('grace period: Active, 9 days left');
    expect(stdout).toContain('Sessions: 6 (rds 1, vdi 2, pc 1, other 1, undocumented 1)');
    expect(stdout).toContain('1 with a type value the RAS documents do not list');
    expect(stdout).toContain('this farm counts broker sessions of: vdi, pc, avd');
    expect(stdout).toMatch(/Logged off\.\n$/);
    // No user name is printed, and the broker holds no session any more.
    expect(stdout).not.toContain('CORP\\');
    expect(fixture.broker.liveTokens).toBe(0);
    expect(fixture.broker.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /api/session/logon',
      'GET /api/License',
      'GET /api/RDSession',
      'GET /api/RDSession?Source=AVD',
      'POST /api/session/logoff',
    ]);
    expect(stdout).toContain('AVD (asked with Source=AVD): 0');
  });

  it('a wrong password exits 1 with the auth reason in one line', async () => {
    fixture.broker.password = 'not-the-one-in-the-file';
    const { code, stderr } = await checkBroker(['--config', configFile(ras())]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^rasmon-collector check-broker: auth: POST \/api\/session\/logon: the broker refused/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a broker certificate from another CA exits 1 with tls', async () => {
    const { code, stderr } = await checkBroker(['--config', configFile(ras({ ca: fixture.pki.otherCaFile }))]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^rasmon-collector check-broker: tls: /);
    expect(fixture.broker.requests).toHaveLength(0);
  });

  it('a broker that is down exits 1 with unreachable', async () => {
    const file = configFile(ras());
    await fixture.broker.stop();
    const { code, stderr } = await checkBroker(['--config', file]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^rasmon-collector check-broker: unreachable: /);
  });

  it('a malformed License exits 1 naming the field, and still logs off', async () => {
    fixture.broker.license = sampleLicense(new Date(), { usersPeak: 'lots' });
    const { code, stderr } = await checkBroker(['--config', configFile(ras())]);
    expect(code).toBe(1);
    expect(stderr).toContain('bad_response: GET /api/License: usersPeak must be a whole number');
    expect(fixture.broker.liveTokens).toBe(0);
  });

  it('picks the farm with --farm, and needs it when several farms name a broker', async () => {
    const file = configFile(ras(), true);
    const ambiguous = await checkBroker(['--config', file]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('several farms name a broker (farm-a, farm-b): choose one with --farm');
    const chosen = await checkBroker(['--config', file, '--farm', 'FARM-B']);
    expect(chosen.code).toBe(0);
    expect(chosen.stdout).toContain('(farm farm-b)');
  });

  it('--help prints its usage and exits 0', async () => {
    const { code, stdout } = await checkBroker(['--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: rasmon-collector check-broker --config FILE \[--farm ID\]\n/);
  });

  it('exits 2 on bad flags and configurations, in one line', async () => {
    const cases: [string[], RegExp][] = [
      [['--config', configFile(ras()), '--bogus'], /Unknown option '--bogus'/],
      [['--config', configFile(undefined)], /no farm of the configuration has a ras: block/],
      [['--config', configFile(ras()), '--farm', 'farm-z'], /farm farm-z is not in the configuration/],
      [
        ['--config', configFile(ras({ password: PASSWORD }))],
        /farms\[0\]\.ras\.password: must not be in the configuration/,
      ],
      [
        ['--config', configFile(ras({ passwordFile: join(dir, 'missing') }))],
        /farms\[0\]\.ras\.passwordFile: file .*missing not found/,
      ],
      [
        ['--config', configFile(ras({ pollSeconds: 5 }))],
        /farms\[0\]\.ras\.pollSeconds: must be an integer from 10 to 3600/,
      ],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await checkBroker(args);
      expect(code, stderr).toBe(2);
      expect(stderr).toMatch(message);
    }
    expect(fixture.broker.requests).toHaveLength(0);
  });
});
