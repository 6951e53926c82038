import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CONFIG_DEFAULTS,
  ConfigError,
  configHash,
  parseConfig,
  sha256Hex,
  type CollectorConfig,
  type FarmConfig,
} from '../src/config/config.js';
import { loadConfig } from '../src/config/config-loader.js';
import { FarmDirectory, hostAllowed } from '../src/config/farm-directory.js';
import { farmQuotas } from '../src/config/farm-quotas.js';

const HASH_A = sha256Hex('token-a');
const HASH_B = sha256Hex('token-b');

const dir = mkdtempSync(join(tmpdir(), 'rasmon-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeTemp(name: string, text: string): string {
  fileCount += 1;
  const file = join(dir, `${fileCount}-${name}`);
  writeFileSync(file, text);
  return file;
}

function minimal(): Record<string, unknown> {
  return {
    farms: [
      { id: 'farm-a', seats: 250, license: 'primary', expires: '2027-06-30T00:00:00Z', agentTokensSha256: [HASH_A] },
    ],
  };
}

function withFarm(overrides: Record<string, unknown>): Record<string, unknown> {
  const raw = minimal();
  raw.farms = [{ ...(raw.farms as Record<string, unknown>[])[0], ...overrides }];
  return raw;
}

/** Runs `action` and returns the ConfigError it throws; fails the test if it throws nothing else. */
function configError(action: () => unknown): ConfigError {
  try {
    action();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    expect(error.code).toBe('RASMON_CONFIG');
    expect(error.message).not.toContain('\n');
    return error;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

function parseError(raw: unknown): string {
  return configError(() => parseConfig(raw, 'test')).message;
}

const YAML_CONFIG = `
listen: "127.0.0.1:9500"
redis: { url: "redis://redis.example:6380", prefix: "rm" }
heartbeatSeconds: 1.5
limits: { maxEvents: 50 }
api: { tokensSha256: ["${HASH_B.toUpperCase()}"] }
farms:
  - id: farm-a
    seats: 250
    license: primary
    expires: 2027-06-30T00:00:00Z
    agentTokensSha256: ["${HASH_A}"]
    hosts: ["rdsh-*"]
`;

describe('parseConfig', () => {
  it('applies the defaults to every key left out', () => {
    const config = parseConfig(minimal(), 'test');
    expect(config).toEqual<CollectorConfig>({
      listen: { host: '0.0.0.0', port: 9420 },
      redis: { url: 'redis://127.0.0.1:6379', prefix: 'rasmon' },
      heartbeatSeconds: 15,
      hostRetireSeconds: 86400,
      limits: {
        maxFrameBytes: 1048576,
        maxEvents: 1000,
        maxSessions: 2000,
        maxConnections: 20_000,
        upgradesPerSecondPerAddress: 50,
        upgradeBurstPerAddress: 500,
        maxHttpRequests: 64,
        httpTimeoutSeconds: 10,
        framesPerSecondPerConnection: 100,
        bytesPerSecondPerConnection: 4 * 1048576,
        bytesPerSecondPerFarm: 4 * 1048576,
        applyMillisecondsPerSecondPerFarm: 250,
      },
      api: { tokensSha256: [] },
      distinctUsers: { retentionMonths: 36 },
      http: { trustedProxies: [], proxyProtocol: false },
      farms: [
        {
          id: 'farm-a',
          seats: 250,
          license: 'primary',
          expires: Date.UTC(2027, 5, 30),
          agentTokensSha256: [{ sha256: HASH_A }],
          hostIdentity: 'token',
          hostBinding: 'key',
          countDisconnected: true,
          overuseGraceDays: 7,
          expiryGraceDays: 30,
          maxHosts: 5000,
          maxKnownHosts: 10_000,
          forgetHostsAfterDays: 30,
          expectedHosts: [],
        },
      ],
    });
  });

  it('takes a customer label on a farm and a retention for the distinct users of each month', () => {
    const config = parseConfig(
      { ...withFarm({ customer: 'Acme GmbH' }), distinctUsers: { retentionMonths: 48 } },
      'test',
    );
    expect(config.farms[0]!.customer).toBe('Acme GmbH');
    expect(config.distinctUsers.retentionMonths).toBe(48);
    expect(parseError(withFarm({ customer: '=cmd()' }))).toMatch(/^farms\[0\]\.customer: must be 1 to 64 letters/);
    expect(parseError(withFarm({ customer: 7 }))).toMatch(/^farms\[0\]\.customer: must be a string/);
    expect(parseError({ ...withFarm({}), distinctUsers: { retentionMonths: 0 } })).toMatch(
      /^distinctUsers\.retentionMonths: /,
    );
    expect(parseError({ ...withFarm({}), distinctUsers: { keep: 3 } })).toMatch(/^distinctUsers/);
  });

  it('keeps expectedHosts in lower case, each once', () => {
    const config = parseConfig(withFarm({ expectedHosts: ['RDSH-1', 'rdsh-1', 'rdsh-2'] }), 'test');
    expect(config.farms[0]!.expectedHosts).toEqual(['rdsh-1', 'rdsh-2']);
  });

  it('returns fresh default lists, so one config cannot change another', () => {
    const first = parseConfig(minimal(), 'test');
    first.api.tokensSha256.push(HASH_B);
    expect(parseConfig(minimal(), 'test').api.tokensSha256).toEqual([]);
  });

  it('lower-cases token hashes given in upper case', () => {
    const config = parseConfig(withFarm({ agentTokensSha256: [HASH_A.toUpperCase()] }), 'test');
    expect(config.farms[0]?.agentTokensSha256).toEqual([{ sha256: HASH_A }]);
  });

  it('takes maxKnownHosts as given, or twice maxHosts', () => {
    expect(parseConfig(withFarm({ maxHosts: 10 }), 'test').farms[0]?.maxKnownHosts).toBe(20);
    expect(parseConfig(withFarm({ maxHosts: 10, maxKnownHosts: 10 }), 'test').farms[0]?.maxKnownHosts).toBe(10);
  });

  it("sizes a farm's quotas to its seats unless it sets them: max(1,000, 10 x seats) sessions, max(500, 2 x seats) new users a minute", () => {
    const quotas = (overrides: Record<string, unknown>) =>
      farmQuotas(parseConfig(withFarm(overrides), 'test').farms[0]!);
    expect(quotas({ seats: 10 })).toEqual({ maxSessions: 1000, maxNewUsersPerMinute: 500 });
    expect(quotas({ seats: 250 })).toEqual({ maxSessions: 2500, maxNewUsersPerMinute: 500 });
    expect(quotas({ seats: 5000 })).toEqual({ maxSessions: 50_000, maxNewUsersPerMinute: 10_000 });
    expect(quotas({ seats: 5000, maxSessions: 7, maxNewUsersPerMinute: 3 })).toEqual({
      maxSessions: 7,
      maxNewUsersPerMinute: 3,
    });
    // An SPLA farm without seats has nothing to size them by: the floors.
    expect(quotas({ seats: undefined, license: 'spla' })).toEqual({ maxSessions: 1000, maxNewUsersPerMinute: 500 });
  });

  it('a farm that adopts its seats from RAS has the floors until RAS answers, then quotas sized to its seats', () => {
    const config = parseConfig(
      withFarm({
        seats: undefined,
        license: undefined,
        expires: undefined,
        ras: {
          url: 'https://ras.example:20443',
          username: 'svc',
          passwordFile: writeTemp('ras-password', 'secret\n'),
          adopt: true,
        },
      }),
      'test',
    );
    const farms = new FarmDirectory(config.farms);
    expect(farmQuotas(farms.get('farm-a')!)).toEqual({ maxSessions: 1000, maxNewUsersPerMinute: 500 });
    farms.adopt('farm-a', { seats: 800, license: 'primary', expires: Date.parse('2027-06-30T00:00:00Z') });
    expect(farmQuotas(farms.get('farm-a')!)).toEqual({ maxSessions: 8000, maxNewUsersPerMinute: 1600 });
  });

  it('reads agent tokens as hashes or as { sha256, hosts } mappings, the two forms mixed', () => {
    const config = parseConfig(
      withFarm({
        agentTokensSha256: [
          HASH_A,
          { sha256: HASH_B.toUpperCase(), hosts: ['rdsh-0*'] },
          { sha256: sha256Hex('token-c') },
        ],
      }),
      'test',
    );
    expect(config.farms[0]?.agentTokensSha256).toEqual([
      { sha256: HASH_A },
      { sha256: HASH_B, hosts: ['rdsh-0*'] },
      { sha256: sha256Hex('token-c') },
    ]);
    expect(config.farms[0]?.hostIdentity).toBe('token');
    expect(config.farms[0]?.hostBinding).toBe('key');
  });

  it('reads expiry times with an offset and optional overuse grace start', () => {
    const config = parseConfig(
      withFarm({ expires: '2027-06-30T02:00:00+02:00', overuseGraceStartedAt: '2026-01-01T12:00:00.500Z' }),
      'test',
    );
    expect(config.farms[0]?.expires).toBe(Date.UTC(2027, 5, 30));
    expect(config.farms[0]?.overuseGraceStartedAt).toBe(Date.UTC(2026, 0, 1, 12, 0, 0, 500));
  });

  it('reads expiry times from 0001-01-01 to 9999-12-31, years 0001-0099 as written', () => {
    const expires = (text: string) =>
      new Date(parseConfig(withFarm({ expires: text }), 'test').farms[0]!.expires!).toISOString();
    expect(expires('0001-01-01T00:00:00Z')).toBe('0001-01-01T00:00:00.000Z');
    expect(expires('0099-12-31T00:00:00Z')).toBe('0099-12-31T00:00:00.000Z');
    expect(expires('9999-12-31T23:59:59Z')).toBe('9999-12-31T23:59:59.000Z');
    expect(expires('2028-02-29T00:00:00Z')).toBe('2028-02-29T00:00:00.000Z');
  });

  it.each([
    ['[::1]:9420', { host: '::1', port: 9420 }],
    [':9420', { host: '0.0.0.0', port: 9420 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
  ])('accepts listen %s', (listen, expected) => {
    expect(parseConfig({ ...minimal(), listen }, 'test').listen).toEqual(expected);
  });

  it('keeps a cluster or sentinel redis without adding the default url', () => {
    const cluster = parseConfig({ ...minimal(), redis: { cluster: { nodes: ['r1:7000', '[::1]:7001'] } } }, 'test');
    expect(cluster.redis).toEqual({ prefix: 'rasmon', cluster: { nodes: ['r1:7000', '[::1]:7001'] } });
    const sentinel = parseConfig(
      { ...minimal(), redis: { sentinel: { sentinels: ['s1:26379'], name: 'mymaster' } } },
      'test',
    );
    expect(sentinel.redis).toEqual({ prefix: 'rasmon', sentinel: { sentinels: ['s1:26379'], name: 'mymaster' } });
  });

  it('accepts tls files that exist', () => {
    const cert = writeTemp('cert.pem', 'cert');
    const key = writeTemp('key.pem', 'key');
    expect(parseConfig({ ...minimal(), tls: { cert, key } }, 'test').tls).toEqual({ cert, key });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['missing farms', { listen: ':9420' }, 'farms: is required'],
    ['empty farms', { farms: [] }, 'farms: must list at least one farm'],
    ['negative seats', withFarm({ seats: -1 }), 'farms[0].seats: must be an integer >= 0'],
    ['fractional seats', withFarm({ seats: 2.5 }), 'farms[0].seats: must be an integer >= 0'],
    ['seats as a string', withFarm({ seats: '250' }), 'farms[0].seats: must be an integer >= 0'],
    ['missing seats', withFarm({ seats: undefined }), 'farms[0].seats: is required'],
    ['expires without timezone', withFarm({ expires: '2027-06-30T00:00:00' }), 'farms[0].expires: must be an ISO-8601'],
    ['expires as a date only', withFarm({ expires: '2027-06-30' }), 'farms[0].expires: must be an ISO-8601'],
    ['expires on a day that does not exist', withFarm({ expires: '2027-02-30T00:00:00Z' }), 'farms[0].expires:'],
    ['expires on 29 February of a common year', withFarm({ expires: '2027-02-29T00:00:00Z' }), 'farms[0].expires:'],
    [
      'expires in year 0000',
      withFarm({ expires: '0000-06-30T00:00:00Z' }),
      'farms[0].expires: must be an ISO-8601 time with a timezone from 0001-01-01 to 9999-12-31',
    ],
    ['expires in year 10000', withFarm({ expires: '10000-01-01T00:00:00Z' }), 'farms[0].expires: must be an ISO-8601'],
    [
      'a token instead of its hash',
      withFarm({ agentTokensSha256: [HASH_A, 'secret'] }),
      'farms[0].agentTokensSha256[1]: must be 64 hex',
    ],
    [
      'a token mapping with a token in it',
      withFarm({ agentTokensSha256: [{ sha256: 'secret', hosts: ['a'] }] }),
      'farms[0].agentTokensSha256[0].sha256: must be 64 hex',
    ],
    [
      'a token mapping without its hash',
      withFarm({ agentTokensSha256: [{ hosts: ['rdsh-1'] }] }),
      'farms[0].agentTokensSha256[0].sha256: is required',
    ],
    [
      'a token mapping with no hosts',
      withFarm({ agentTokensSha256: [{ sha256: HASH_A, hosts: [] }] }),
      'farms[0].agentTokensSha256[0].hosts: must list at least one pattern',
    ],
    [
      'a token mapping with a bad pattern',
      withFarm({ agentTokensSha256: [{ sha256: HASH_A, hosts: ['rdsh 1'] }] }),
      'farms[0].agentTokensSha256[0].hosts[0]: must be a host-name pattern',
    ],
    [
      'a token mapping with a misspelt key',
      withFarm({ agentTokensSha256: [{ sha256: HASH_A, host: ['rdsh-1'] }] }),
      'farms[0].agentTokensSha256[0].host: unknown key',
    ],
    [
      'a token that is a number',
      withFarm({ agentTokensSha256: [5] }),
      'farms[0].agentTokensSha256[0]: must be a sha256 hex string or a mapping { sha256, hosts }',
    ],
    ['an unknown hostBinding', withFarm({ hostBinding: 'token' }), 'farms[0].hostBinding: must be "key" or "none"'],
    [
      'an unknown hostIdentity',
      withFarm({ hostIdentity: 'cn' }),
      'farms[0].hostIdentity: must be "token" or "certificate"',
    ],
    [
      'hostIdentity certificate without client certificates',
      withFarm({ hostIdentity: 'certificate' }),
      'farms[0].hostIdentity: certificate needs client certificates: set tls.ca',
    ],
    ['a bad api token hash', { ...minimal(), api: { tokensSha256: ['abc'] } }, 'api.tokensSha256[0]: must be 64 hex'],
    ['a bad license', withFarm({ license: 'trial' }), 'farms[0].license: must be "primary", "sublicense" or "spla"'],
    ['a bad farm id', withFarm({ id: '-farm' }), 'farms[0].id: must be 1 to 64'],
    [
      'a license key label that could be a formula',
      withFarm({ licenseKey: '=HYPERLINK("x")' }),
      'farms[0].licenseKey: must be 1 to 64 letters',
    ],
    [
      'a primary farm without seats',
      withFarm({ seats: undefined, licenseKey: 'k' }),
      'farms[0].seats: is required (only a license: spla farm may leave it out, or ras.adopt take it from RAS)',
    ],
    ['zero overuse grace', withFarm({ overuseGraceDays: 0 }), 'farms[0].overuseGraceDays: must be a number > 0'],
    ['negative expiry grace', withFarm({ expiryGraceDays: -1 }), 'farms[0].expiryGraceDays: must be a number >= 0'],
    ['zero maxHosts', withFarm({ maxHosts: 0 }), 'farms[0].maxHosts: must be an integer >= 1'],
    [
      'maxKnownHosts below maxHosts',
      withFarm({ maxHosts: 10, maxKnownHosts: 9 }),
      'farms[0].maxKnownHosts: must be at least maxHosts (10)',
    ],
    ['fractional maxKnownHosts', withFarm({ maxKnownHosts: 10.5 }), 'farms[0].maxKnownHosts: must be an integer >= 1'],
    ['zero maxSessions', withFarm({ maxSessions: 0 }), 'farms[0].maxSessions: must be an integer from 1 to 10000000'],
    [
      'fractional maxSessions',
      withFarm({ maxSessions: 1000.5 }),
      'farms[0].maxSessions: must be an integer from 1 to 10000000',
    ],
    [
      'a maxSessions no Redis holds',
      withFarm({ maxSessions: 1e12 }),
      'farms[0].maxSessions: must be an integer from 1 to 10000000',
    ],
    [
      'maxSessions as a string',
      withFarm({ maxSessions: '5000' }),
      'farms[0].maxSessions: must be an integer from 1 to 10000000',
    ],
    [
      'negative maxNewUsersPerMinute',
      withFarm({ maxNewUsersPerMinute: -1 }),
      'farms[0].maxNewUsersPerMinute: must be an integer from 1 to 1000000',
    ],
    [
      'maxNewUsersPerMinute as a rate',
      withFarm({ maxNewUsersPerMinute: '500/min' }),
      'farms[0].maxNewUsersPerMinute: must be an integer from 1 to 1000000',
    ],
    [
      'a bad expected host',
      withFarm({ expectedHosts: ['rdsh-1', 'rdsh 2'] }),
      'farms[0].expectedHosts[1]: must be a host name',
    ],
    [
      'expectedHosts not a list',
      withFarm({ expectedHosts: 'rdsh-1' }),
      'farms[0].expectedHosts: must be a list of host names',
    ],
    ['empty hosts', withFarm({ hosts: [] }), 'farms[0].hosts: must list at least one pattern'],
    ['a bad host pattern', withFarm({ hosts: ['rdsh-*', 'a b'] }), 'farms[0].hosts[1]: must be a host-name pattern'],
    [
      'a countDisconnected string',
      withFarm({ countDisconnected: 'yes' }),
      'farms[0].countDisconnected: must be true or false',
    ],
    ['zero heartbeat', { ...minimal(), heartbeatSeconds: 0 }, 'heartbeatSeconds: must be a number from 1 to 300'],
    [
      'a sub-second heartbeat',
      { ...minimal(), heartbeatSeconds: 0.5 },
      'heartbeatSeconds: must be a number from 1 to 300',
    ],
    [
      'a heartbeat that overflows timers',
      { ...minimal(), heartbeatSeconds: 1e12 },
      'heartbeatSeconds: must be a number from 1 to 300',
    ],
    [
      'fractional maxEvents',
      { ...minimal(), limits: { maxEvents: 1.5 } },
      'limits.maxEvents: must be an integer from 1 to 100000',
    ],
    [
      'a frame limit that locks agents out',
      { ...minimal(), limits: { maxFrameBytes: 1 } },
      'limits.maxFrameBytes: must be an integer from 4096 to 16777216',
    ],
    [
      'a frame limit that is no limit',
      { ...minimal(), limits: { maxFrameBytes: 1e15 } },
      'limits.maxFrameBytes: must be an integer from 4096 to 16777216',
    ],
    [
      'a connection cap below the reserve',
      { ...minimal(), limits: { maxConnections: 10 } },
      'limits.maxConnections: must be an integer from 300 to 1000000',
    ],
    [
      'an HTTP timeout of an hour',
      { ...minimal(), limits: { httpTimeoutSeconds: 3600 } },
      'limits.httpTimeoutSeconds: must be a number from 1 to 300',
    ],
    ['an unknown top-level key', { ...minimal(), heartbeatSecond: 5 }, 'heartbeatSecond: unknown key'],
    ['an unknown farm key', withFarm({ seets: 5 }), 'farms[0].seets: unknown key'],
    ['an unknown nested key', { ...minimal(), limits: { maxFrames: 5 } }, 'limits.maxFrames: unknown key'],
    ['an unknown redis key', { ...minimal(), redis: { url: 'redis://r:1', db: 2 } }, 'redis.db: unknown key'],
    ['a listen without port', { ...minimal(), listen: '0.0.0.0' }, 'listen: must be "host:port"'],
    ['a listen port too high', { ...minimal(), listen: ':65536' }, 'listen: must be "host:port"'],
    ['an unbracketed ipv6 listen', { ...minimal(), listen: '::1:9420' }, 'listen: must be "host:port"'],
    ['a listen number', { ...minimal(), listen: 9420 }, 'listen: must be "host:port"'],
    ['a non-redis url', { ...minimal(), redis: { url: 'http://r:6379' } }, 'redis.url: must be a redis://'],
    ['a bad redis prefix', { ...minimal(), redis: { prefix: '{x}' } }, 'redis.prefix: must be 1 to 64'],
    [
      'a cluster node without port',
      { ...minimal(), redis: { cluster: { nodes: ['r1'] } } },
      'redis.cluster.nodes[0]: must be "host:port"',
    ],
    [
      'url and cluster together',
      { ...minimal(), redis: { url: 'redis://r:1', cluster: { nodes: ['r1:7000'] } } },
      'redis.cluster: cannot be combined with redis.url',
    ],
    [
      'sentinel without name',
      { ...minimal(), redis: { sentinel: { sentinels: ['s:1'] } } },
      'redis.sentinel.name: is required',
    ],
    ['tls without key', { ...minimal(), tls: { cert: '/x' } }, 'tls.key: is required'],
    ['a top level list', [] as unknown as Record<string, unknown>, 'test: must be a mapping of settings'],
  ])('rejects %s, naming the key', (_name, raw, expected) => {
    expect(parseError(raw)).toContain(expected);
  });

  it('an SPLA farm may leave out its seats and carries its license key label', () => {
    const farm = parseConfig(withFarm({ license: 'spla', seats: undefined, licenseKey: 'SPLA EU/2026' }), 'test')
      .farms[0]!;
    expect(farm.license).toBe('spla');
    expect(farm.seats).toBeUndefined();
    expect(farm.licenseKey).toBe('SPLA EU/2026');
  });

  it('refuses a licenseKey shared by an SPLA farm and one that is not, naming the key and the farms', () => {
    const farms = (kinds: Array<[string, string | undefined, Record<string, unknown>?]>) => ({
      farms: kinds.map(([id, license, extra], index) => ({
        id,
        ...(license === undefined ? {} : { license }),
        ...(license === 'spla' ? {} : { seats: 10 }),
        licenseKey: 'KEY-1',
        expires: '2027-06-30T00:00:00Z',
        agentTokensSha256: [sha256Hex(`token-${index}`)],
        ...extra,
      })),
    });
    expect(
      parseError(
        farms([
          ['spla-a', 'spla'],
          ['spla-b', 'spla'],
          ['own', 'primary'],
        ]),
      ),
    ).toBe(
      'farms[2].licenseKey: "KEY-1" is shared by SPLA farms (spla-a, spla-b) and farms that are not (own): ' +
        'an SPLA key bills its SPLA farms only; give each license its own licenseKey (in test)',
    );
    // Two SPLA farms, or a primary and a sublicense, may share a key.
    expect(() =>
      parseConfig(
        farms([
          ['spla-a', 'spla'],
          ['spla-b', 'spla'],
        ]),
        'test',
      ),
    ).not.toThrow();
    expect(() =>
      parseConfig(
        farms([
          ['own', 'primary'],
          ['sub', 'sublicense'],
        ]),
        'test',
      ),
    ).not.toThrow();
    // With ras.adopt, the fallback license is checked; a farm without one is known only once RAS answers.
    const ras = {
      ras: {
        url: 'https://ras.example:20443',
        username: 'svc',
        passwordFile: writeTemp('ras-password', 'secret\n'),
        adopt: true,
      },
    };
    expect(
      parseError(
        farms([
          ['own', 'primary'],
          ['adopt', 'spla', ras],
        ]),
      ),
    ).toContain('farms[1].licenseKey: "KEY-1" is shared by SPLA farms (adopt) and farms that are not (own)');
    expect(() =>
      parseConfig(
        farms([
          ['own', 'primary'],
          ['adopt', undefined, ras],
        ]),
        'test',
      ),
    ).not.toThrow();
  });

  it('reports a misspelt key rather than the key it was meant to be', () => {
    const raw = minimal();
    const farm = (raw.farms as Record<string, unknown>[])[0] as Record<string, unknown>;
    farm.seets = farm.seats;
    delete farm.seats;
    expect(parseError(raw)).toMatch(/^farms\[0\]\.seets: unknown key/);
  });

  it('puts the key first and the source last', () => {
    expect(configError(() => parseConfig(withFarm({ seats: -1 }), 'config file /x.yaml')).message).toBe(
      'farms[0].seats: must be an integer >= 0 (in config file /x.yaml)',
    );
  });

  it('rejects a farm id used twice, ignoring case', () => {
    const raw = minimal();
    raw.farms = [
      ...(raw.farms as unknown[]),
      { id: 'FARM-A', seats: 1, license: 'sublicense', expires: '2027-06-30T00:00:00Z', agentTokensSha256: [] },
    ];
    expect(parseError(raw)).toMatch(/^farms\[1\]\.id: "FARM-A" is already the id of farms\[0\]/);
  });

  it('rejects a token hash shared by two farms, even in another case', () => {
    const raw = minimal();
    raw.farms = [
      ...(raw.farms as unknown[]),
      {
        id: 'farm-b',
        seats: 1,
        license: 'sublicense',
        expires: '2027-06-30T00:00:00Z',
        agentTokensSha256: [HASH_B, HASH_A.toUpperCase()],
      },
    ];
    expect(parseError(raw)).toMatch(/^farms\[1\]\.agentTokensSha256\[1\]: already belongs to farms\[0\]/);
  });

  it('rejects a token listed twice in one farm with different hosts, and takes it twice with the same', () => {
    const twice = (second: unknown) => withFarm({ agentTokensSha256: [{ sha256: HASH_A, hosts: ['rdsh-1'] }, second] });
    expect(parseError(twice(HASH_A))).toMatch(
      /^farms\[0\]\.agentTokensSha256\[1\]: is listed twice in this farm with different hosts/,
    );
    expect(
      parseConfig(twice({ sha256: HASH_A.toUpperCase(), hosts: ['rdsh-1'] }), 'test').farms[0]?.agentTokensSha256,
    ).toHaveLength(2);
  });

  it('rejects a tls file that does not exist, naming the key and the path', () => {
    const cert = writeTemp('cert.pem', 'cert');
    const missing = join(dir, 'no-such-key.pem');
    const message = parseError({ ...minimal(), tls: { cert, key: missing } });
    expect(message).toMatch(/^tls\.key: file .*no-such-key\.pem not found/);
  });

  it('rejects a tls ca that is a directory', () => {
    const cert = writeTemp('cert.pem', 'cert');
    expect(parseError({ ...minimal(), tls: { cert, key: cert, ca: dir } })).toMatch(
      /^tls\.ca: .* is not a regular file/,
    );
  });

  it('rejects an empty document', () => {
    expect(parseError(null)).toBe('test: is empty');
  });
});

describe('http.proxyProtocol', () => {
  it('is off by default, on with the balancers listed, and refused on without them or as anything but a boolean', () => {
    expect(parseConfig(minimal(), 'test').http.proxyProtocol).toBe(false);
    const on = parseConfig({ ...minimal(), http: { trustedProxies: ['10.0.0.0/8'], proxyProtocol: true } }, 'test');
    expect(on.http).toEqual({ trustedProxies: ['10.0.0.0/8'], proxyProtocol: true });
    expect(parseError({ ...minimal(), http: { proxyProtocol: true } })).toBe(
      'http.proxyProtocol: true needs http.trustedProxies, the load balancers that send the PROXY header (in test)',
    );
    expect(parseError({ ...minimal(), http: { trustedProxies: ['10.0.0.0/8'], proxyProtocol: 'v2' } })).toBe(
      'http.proxyProtocol: must be true or false (in test)',
    );
  });
});

describe('loadConfig', () => {
  it('refuses what is not a regular file under the size limit, in one line, without reading it all', () => {
    const load = (path: string) => {
      try {
        loadConfig({ path, env: {} });
        return 'loaded';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
    };
    const zero = join(dir, 'zero.yaml');
    symlinkSync('/dev/zero', zero);
    expect(load(zero)).toMatch(/zero\.yaml: is not a regular file$/);
    const folder = join(dir, 'folder.yaml');
    mkdirSync(folder);
    expect(load(folder)).toMatch(/folder\.yaml: is a directory$/);
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    // Opened without blocking: no writer, no hang.
    expect(load(fifo)).toMatch(/fifo\.yaml: is not a regular file$/);
    const big = writeTemp('big.yaml', `# ${'x'.repeat(5 * 1024 * 1024)}\n`);
    expect(load(big)).toMatch(/is larger than \d+ bytes$/);
  });

  it('refuses a YAML alias bomb in one line', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i += 1)
      lines.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    const bomb = writeTemp('bomb.yaml', `${lines.join('\n')}\n`);
    let message = '';
    try {
      loadConfig({ path: bomb, env: {} });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/alias/i);
    expect(message).not.toContain('\n');
  });

  it('loads YAML', () => {
    const config = loadConfig({ path: writeTemp('c.yaml', YAML_CONFIG), env: {} });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9500 });
    expect(config.redis).toEqual({ url: 'redis://redis.example:6380', prefix: 'rm' });
    expect(config.heartbeatSeconds).toBe(1.5);
    expect(config.limits).toEqual({ ...CONFIG_DEFAULTS.limits, maxEvents: 50 });
    expect(config.api.tokensSha256).toEqual([HASH_B]);
    expect(config.farms[0]?.expires).toBe(Date.UTC(2027, 5, 30));
    expect(config.farms[0]?.hosts).toEqual(['rdsh-*']);
  });

  it('loads JSON and the same settings as YAML give the same config', () => {
    const yaml = loadConfig({ path: writeTemp('c.yml', YAML_CONFIG), env: {} });
    const json = loadConfig({
      path: writeTemp(
        'c.json',
        JSON.stringify({
          listen: '127.0.0.1:9500',
          redis: { url: 'redis://redis.example:6380', prefix: 'rm' },
          heartbeatSeconds: 1.5,
          limits: { maxEvents: 50 },
          api: { tokensSha256: [HASH_B.toUpperCase()] },
          farms: [
            {
              id: 'farm-a',
              seats: 250,
              license: 'primary',
              expires: '2027-06-30T00:00:00Z',
              agentTokensSha256: [HASH_A],
              hosts: ['rdsh-*'],
            },
          ],
        }),
      ),
      env: {},
    });
    expect(json).toEqual(yaml);
  });

  it('reads RASMON_CONFIG when no path is given', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    expect(loadConfig({ env: { RASMON_CONFIG: file } }).listen.port).toBe(9500);
  });

  it('prefers the --config path over RASMON_CONFIG', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    const config = loadConfig({ path: file, env: { RASMON_CONFIG: join(dir, 'missing.yaml') } });
    expect(config.listen.port).toBe(9500);
  });

  it('requires a path or RASMON_CONFIG', () => {
    const error = configError(() => loadConfig({ env: {} }));
    expect(error.message).toContain('--config FILE or RASMON_CONFIG is required');
    expect(configError(() => loadConfig({ env: { RASMON_CONFIG: '' } })).message).toContain('RASMON_CONFIG');
  });

  it('names a missing file', () => {
    const file = join(dir, 'missing.yaml');
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toBe(`config file ${file}: not found`);
  });

  it('rejects an extension other than .yaml, .yml or .json', () => {
    const file = writeTemp('c.toml', 'listen = ":9420"');
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toMatch(
      /^config file .*c\.toml: has unsupported extension "\.toml"/,
    );
  });

  it('reports a YAML syntax error with its file and line', () => {
    const file = writeTemp('bad.yaml', 'listen: ":9420"\nfarms:\n  - id: a\n   seats: 1\n');
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toMatch(
      /^config file .*bad\.yaml: line 4, column \d+: /,
    );
  });

  it('rejects a YAML key given twice', () => {
    const file = writeTemp('dup.yaml', 'listen: ":1"\nlisten: ":2"\n');
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toMatch(
      /^config file .*dup\.yaml: line 2, column 1: Map keys must be unique/,
    );
  });

  it('reports a JSON syntax error with its file and line', () => {
    const file = writeTemp('bad.json', '{\n  "listen": ":9420",\n}\n');
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toMatch(
      /^config file .*bad\.json: line 3, column 1: /,
    );
  });

  it('names the file in a validation error', () => {
    const file = writeTemp('seats.yaml', YAML_CONFIG.replace('seats: 250', 'seats: -3'));
    expect(configError(() => loadConfig({ path: file, env: {} })).message).toBe(
      `farms[0].seats: must be an integer >= 0 (in config file ${file})`,
    );
  });

  it('lets REDIS_URL replace the redis url', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    const config = loadConfig({ path: file, env: { REDIS_URL: 'rediss://other:6390/2' } });
    expect(config.redis).toEqual({ url: 'rediss://other:6390/2', prefix: 'rm' });
  });

  it('drops the file cluster and sentinel when REDIS_URL is set', () => {
    const file = writeTemp(
      'cluster.yaml',
      YAML_CONFIG.replace(
        'redis: { url: "redis://redis.example:6380", prefix: "rm" }',
        'redis: { cluster: { nodes: ["r1:7000"] }, prefix: "rm" }',
      ),
    );
    expect(loadConfig({ path: file, env: {} }).redis.cluster).toEqual({ nodes: ['r1:7000'] });
    const config = loadConfig({ path: file, env: { REDIS_URL: 'redis://single:6379' } });
    expect(config.redis).toEqual({ url: 'redis://single:6379', prefix: 'rm' });
  });

  it('lets RASMON_LISTEN replace listen', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    expect(loadConfig({ path: file, env: { RASMON_LISTEN: '[::1]:0' } }).listen).toEqual({ host: '::1', port: 0 });
  });

  it('names REDIS_URL when its value is invalid', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    expect(configError(() => loadConfig({ path: file, env: { REDIS_URL: 'localhost:6379' } })).message).toMatch(
      /^REDIS_URL: must be a redis:\/\//,
    );
  });

  it('names RASMON_LISTEN when its value is invalid', () => {
    const file = writeTemp('c.yaml', YAML_CONFIG);
    expect(configError(() => loadConfig({ path: file, env: { RASMON_LISTEN: '9420' } })).message).toMatch(
      /^RASMON_LISTEN: must be "host:port"/,
    );
  });
});

describe('hostAllowed', () => {
  function farm(hosts?: string[]): FarmConfig {
    const config = parseConfig(withFarm(hosts === undefined ? {} : { hosts }), 'test');
    return config.farms[0] as FarmConfig;
  }

  it('allows any host when the farm lists no patterns', () => {
    expect(hostAllowed(farm(), 'anything.example')).toBe(true);
  });

  it('matches * against any run of characters, ignoring case', () => {
    const rdsh = farm(['rdsh-*']);
    expect(hostAllowed(rdsh, 'rdsh-01')).toBe(true);
    expect(hostAllowed(rdsh, 'RDSH-01')).toBe(true);
    expect(hostAllowed(rdsh, 'rdsh-')).toBe(true);
    expect(hostAllowed(rdsh, 'gw-01')).toBe(false);
  });

  it('matches the whole name, not a part of it', () => {
    const rdsh = farm(['rdsh-*']);
    expect(hostAllowed(rdsh, 'old-rdsh-01')).toBe(false);
    expect(hostAllowed(farm(['rdsh']), 'rdsh-01')).toBe(false);
  });

  it('matches ? against exactly one character', () => {
    const two = farm(['rdsh-??']);
    expect(hostAllowed(two, 'rdsh-01')).toBe(true);
    expect(hostAllowed(two, 'rdsh-1')).toBe(false);
    expect(hostAllowed(two, 'rdsh-001')).toBe(false);
  });

  it('treats a dot as a literal dot', () => {
    expect(hostAllowed(farm(['rdsh.corp']), 'rdshxcorp')).toBe(false);
    expect(hostAllowed(farm(['rdsh.corp']), 'rdsh.corp')).toBe(true);
  });

  it('allows a host matched by any of several patterns', () => {
    const both = farm(['rdsh-*', 'vdi-?']);
    expect(hostAllowed(both, 'vdi-7')).toBe(true);
    expect(hostAllowed(both, 'rdsh-9')).toBe(true);
    expect(hostAllowed(both, 'gw-1')).toBe(false);
  });
});

describe('configHash', () => {
  it('is 12 hex characters and the same for the same settings in any key order', () => {
    const a = parseConfig(minimal(), 'test');
    const reordered = parseConfig(
      {
        farms: [
          {
            agentTokensSha256: [HASH_A],
            expires: '2027-06-30T00:00:00Z',
            license: 'primary',
            seats: 250,
            id: 'farm-a',
          },
        ],
      },
      'test',
    );
    expect(configHash(a)).toMatch(/^[0-9a-f]{12}$/);
    expect(configHash(reordered)).toBe(configHash(a));
  });

  it('changes when the seats change', () => {
    const a = parseConfig(minimal(), 'test');
    const b = parseConfig(withFarm({ seats: 251 }), 'test');
    expect(configHash(b)).not.toBe(configHash(a));
  });
});

describe('sha256Hex', () => {
  it('gives the lower-case hex sha256 of the UTF-8 token', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
