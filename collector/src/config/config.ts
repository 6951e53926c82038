/**
 * The collector's configuration: its schema, the checks that span several keys, and the types derived
 * from the schema. Reading the file and the environment is `config-loader.ts`.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { DEFAULT_LIMITS, LIMIT_RANGES, NAME_PATTERN } from '@rasmon/protocol';
import { RasmonError, reportIssue } from '@rasmon/protocol/kit';
import { z } from 'zod';
import { Secret } from './secret.js';
import { parseRange } from './ip-range.js';

/** The one case rule for farm ids: they compare case-insensitively (two ids are one farm when their keys are equal). */
export function farmIdKey(id: string): string {
  return id.toLowerCase();
}

/** The values used for every key the configuration leaves out. */
export const CONFIG_DEFAULTS = Object.freeze({
  listen: '0.0.0.0:9420',
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: 'rasmon',
  heartbeatSeconds: 15,
  hostRetireSeconds: 86_400,
  limits: Object.freeze({
    ...DEFAULT_LIMITS,
    maxConnections: 20_000,
    upgradesPerSecondPerAddress: 50,
    upgradeBurstPerAddress: 500,
    maxHttpRequests: 64,
    httpTimeoutSeconds: 10,
    framesPerSecondPerConnection: 100,
    bytesPerSecondPerConnection: 4 * 1_048_576,
    // Shared by all the connections of one farm on one collector (docs/design.md §6).
    bytesPerSecondPerFarm: 4 * 1_048_576,
    applyMillisecondsPerSecondPerFarm: 250,
  }),
  farm: Object.freeze({
    countDisconnected: true,
    overuseGraceDays: 7,
    expiryGraceDays: 30,
    maxHosts: 5000,
    forgetHostsAfterDays: 30,
  }),
  /**
   * A farm's quotas where it sets none (docs/design.md §6, "One farm against the others"): each the
   * larger of a floor and a multiple of the farm's seats (farm-quotas.ts).
   */
  farmQuotas: Object.freeze({
    sessionsFloor: 1000,
    sessionsPerSeat: 10,
    newUsersPerMinuteFloor: 500,
    newUsersPerMinutePerSeat: 2,
  }),
  // The users seen in each calendar month are kept this long: Microsoft's SPLA audits look back 36 months.
  distinctUserMonths: 36,
});

/**
 * A configuration problem: the message is one line naming the bad key, so the CLI can print it as is
 * and exit 2.
 */
export class ConfigError extends RasmonError {
  /** The key (`farms[0].seats`), environment variable or option at fault; absent when the whole file is. */
  readonly key: string | undefined;

  constructor(message: string, options: { key?: string; cause?: unknown } = {}) {
    super('RASMON_CONFIG', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.key = options.key;
  }
}

export const LISTEN_HINT = 'must be "host:port", "[ipv6]:port" or ":port" with a port from 0 to 65535';
const NODE_HINT = 'must be "host:port" or "[ipv6]:port" with a port from 1 to 65535';
export const REDIS_URL_HINT = 'must be a redis:// or rediss:// URL';
const HOST_NAME = /^[A-Za-z0-9.-]+$/;
const LICENSE_KEY_LABEL = /^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$/;

/** Splits `host:port`, `[ipv6]:port` or `:port`; undefined when malformed. An empty host stays empty. */
function splitHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const [, bracketed, plain, digits] = match;
  const port = Number(digits);
  if (port > 65_535) return undefined;
  if (bracketed !== undefined) return isIPv6(bracketed) ? { host: bracketed, port } : undefined;
  const host = plain ?? '';
  return host === '' || HOST_NAME.test(host) ? { host, port } : undefined;
}

export function parseListen(text: string): { host: string; port: number } | undefined {
  const parsed = splitHostPort(text.trim());
  if (!parsed) return undefined;
  return { host: parsed.host === '' ? '0.0.0.0' : parsed.host, port: parsed.port };
}

function isRedisNode(text: string): boolean {
  const parsed = splitHostPort(text);
  return parsed !== undefined && parsed.host !== '' && parsed.port > 0;
}

export function isRedisUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
  } catch {
    return false;
  }
}

function integer(min: number) {
  const error = `must be an integer >= ${min}`;
  return z.number({ error }).int({ error }).min(min, { error });
}

/** A number in [min, max]: outside it a setting is a mistake (1e12 s overflows Node's timers). */
function between(min: number, max: number, { whole = true } = {}) {
  const error = `must be ${whole ? 'an integer' : 'a number'} from ${min} to ${max}`;
  const number = z.number({ error });
  return (whole ? number.int({ error }) : number).min(min, { error }).max(max, { error });
}

function positiveNumber() {
  const error = 'must be a number > 0';
  return z.number({ error }).positive({ error });
}

function nonNegativeNumber() {
  const error = 'must be a number >= 0';
  return z.number({ error }).min(0, { error });
}

const ISO_TIME_ERROR =
  'must be an ISO-8601 time with a timezone from 0001-01-01 to 9999-12-31, like "2027-06-30T00:00:00Z"';
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

const isoTime = z.iso
  .datetime({ offset: true, error: ISO_TIME_ERROR })
  .transform((text) => Date.parse(text))
  // Year 0000 parses, but is no date of a license.
  .refine((ms) => ms >= FIRST_INSTANT && ms <= LAST_INSTANT, { error: ISO_TIME_ERROR });

// Upper case is accepted because `sha256sum` output pasted from another tool sometimes is; a plain
// token pasted by mistake must not pass, so the length is checked exactly.
const tokenHash = z
  .string({ error: 'must be 64 hex characters (the sha256 of a token, not the token)' })
  .regex(/^[0-9a-fA-F]{64}$/, {
    error: 'must be 64 hex characters (the sha256 of a token, not the token)',
  })
  .transform((hex) => hex.toLowerCase());

function tokenHashList() {
  return z.array(tokenHash, { error: 'must be a list of sha256 hex strings' });
}

const hostPattern = z.string({ error: 'must be a host-name pattern' }).regex(/^[A-Za-z0-9._*?-]{1,255}$/, {
  error: 'must be a host-name pattern of letters, digits, ".", "_", "-", "*" and "?"',
});

// An empty list would refuse every agent; that is a mistake, not a policy.
function hostPatternList(leaveOut: string) {
  return z
    .array(hostPattern, { error: 'must be a list of host-name patterns' })
    .min(1, { error: `must list at least one pattern (leave hosts out to allow ${leaveOut})` });
}

const TOKEN_ENTRY_HINT = 'must be a sha256 hex string or a mapping { sha256, hosts }';

/** `{ sha256, hosts }`: a token that may claim only the host names its patterns match. */
const tokenEntry = z.strictObject(
  { sha256: tokenHash, hosts: hostPatternList('any host of the farm').optional() },
  { error: TOKEN_ENTRY_HINT },
);
const plainToken = tokenHash.transform((sha256) => ({ sha256 }));

/**
 * One agent token of a farm: its hash alone, or `{ sha256, hosts }`. Dispatched on the type rather
 * than a zod union, so that a bad entry is reported by the key at fault (`...[1].sha256: must be 64
 * hex ...`) instead of as "matches neither form".
 */
const agentToken = z.unknown().transform((value, ctx): z.output<typeof tokenEntry> => {
  const result = (typeof value === 'string' ? plainToken : tokenEntry).safeParse(value);
  if (result.success) return result.data;
  // The issues keep their own paths, under this entry's.
  ctx.issues.push(...(result.error.issues as typeof ctx.issues));
  return z.NEVER;
});

/** Which host names a hello may claim, besides the farm's and the token's `hosts`. */
export const HOST_IDENTITIES = ['token', 'certificate'] as const;

/**
 * Whether a host is bound to the host key its agent first said hello with (docs/design.md §6,
 * "Host binding"): `key` (the default) or `none`.
 */
export const HOST_BINDINGS = ['key', 'none'] as const;

/** The broker sources whose sessions a farm may count (`ras.sessions`). */
export const RAS_SESSION_SOURCES = ['vdi', 'pc', 'avd'] as const;

const RAS_URL_HINT =
  'must be the https:// URL of the RAS REST API without /api, like "https://ras-broker.corp.example:20443"';

function isRasUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (
      url.protocol === 'https:' &&
      url.hostname !== '' &&
      url.username === '' &&
      url.password === '' &&
      url.search === '' &&
      url.hash === '' &&
      // The client adds /api/...: a URL ending in /api is the usual slip.
      !/\/api\/?$/i.test(url.pathname)
    );
  } catch {
    return false;
  }
}

const filePath = z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' });

/**
 * A farm's RAS broker (its REST API). The password is never in the file: `passwordFile` names the
 * file it is read from at load time, into `password`.
 */
const rasSchema = z.strictObject(
  {
    url: z.string({ error: RAS_URL_HINT }).refine(isRasUrl, { error: RAS_URL_HINT }),
    username: z
      .string({ error: 'must be a string (a RAS administrator, like "CORP\\\\svc-rasmon")' })
      .trim()
      .min(1, { error: 'must not be empty' }),
    passwordFile: filePath,
    // A YAML or JSON file cannot produce a Secret: a password written here is refused by this check.
    password: z
      .custom<Secret>((value) => value instanceof Secret, {
        error: 'must not be in the configuration: write the password to a file and name it in passwordFile',
      })
      .optional(),
    // The broker's CA; verification is never off, so without it the system's roots must vouch for it.
    ca: filePath.optional(),
    pollSeconds: between(10, 3600).default(60),
    // Each request's deadline (logon, license, sessions); the answer's size is capped at 4 MiB.
    timeoutSeconds: between(1, 120).default(15),
    sessions: z
      .array(z.enum(RAS_SESSION_SOURCES, { error: 'must be "vdi", "pc" or "avd"' }), {
        error: 'must be a list of "vdi", "pc", "avd" (or [] to count none)',
      })
      .default([...RAS_SESSION_SOURCES])
      .transform((list) => [...new Set(list)]),
    // Seats, license type and expiry come from RAS once it answers; the farm's own values (then
    // optional) are the fallback until it has (docs/design.md §4, "Broker connector").
    adopt: z.boolean({ error: 'must be true or false' }).default(false),
    // UPN suffix → NetBIOS domain, for brokers that spell users `user@corp.example` while the agents
    // read `CORP\\user` from Windows: one person must compare equal from both sides.
    upnDomains: z
      .record(
        z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$/, {
          error: 'must be a DNS suffix like "corp.example"',
        }),
        z.string({ error: 'must be a NetBIOS domain like "CORP"' }).regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/, {
          error: 'must be a NetBIOS domain like "CORP" (1 to 15 letters, digits, ".", "_" or "-")',
        }),
        {
          error:
            'must map UPN suffixes (DNS suffixes like "corp.example") to NetBIOS domains, like { "corp.example": "CORP" }',
        },
      )
      .default({})
      .transform((map) =>
        Object.fromEntries(Object.entries(map).map(([suffix, domain]) => [suffix.toLowerCase(), domain])),
      ),
  },
  { error: 'must be a mapping' },
);

const farmSchema = z
  .strictObject(
    {
      // Agents name their farm in the hello, so an id must be a valid protocol name.
      id: z.string({ error: 'must be a string' }).regex(NAME_PATTERN, {
        error: 'must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit',
      }),
      // Licensed concurrent users. Only an SPLA farm may leave them out (checkConsistency): it bills by
      // period peak, and seats, where the provider set them, are a sublicense cap.
      seats: integer(0).optional(),
      // Required unless ras.adopt takes it from RAS (checkConsistency).
      license: z
        .enum(['primary', 'sublicense', 'spla'], { error: 'must be "primary", "sublicense" or "spla"' })
        .optional(),
      // Reports and CSV files carry it as is: a plain label cannot turn into a spreadsheet formula.
      licenseKey: z
        .string({ error: 'must be a string' })
        .regex(LICENSE_KEY_LABEL, {
          error:
            'must be 1 to 64 letters, digits, spaces, ".", "_", ":", "/" or "-", starting with a letter or digit (a label, not the key)',
        })
        .optional(),
      // The customer the farm serves: reports and the API group farms by it (the SAL count per customer).
      customer: z
        .string({ error: 'must be a string' })
        .regex(LICENSE_KEY_LABEL, {
          error: 'must be 1 to 64 letters, digits, spaces, ".", "_", ":", "/" or "-", starting with a letter or digit',
        })
        .optional(),
      // Required unless ras.adopt takes it from RAS (checkConsistency).
      expires: isoTime.optional(),
      agentTokensSha256: z.array(agentToken, {
        error: 'must be a list of sha256 hex strings or { sha256, hosts } mappings',
      }),
      // certificate: the hello's host must be the client certificate's name (needs tls.ca).
      hostIdentity: z.enum(HOST_IDENTITIES, { error: 'must be "token" or "certificate"' }).default('token'),
      // key: a host is bound to its agent's host key by the first hello that carries one.
      hostBinding: z.enum(HOST_BINDINGS, { error: 'must be "key" or "none"' }).default('key'),
      countDisconnected: z.boolean({ error: 'must be true or false' }).default(CONFIG_DEFAULTS.farm.countDisconnected),
      overuseGraceDays: positiveNumber().default(CONFIG_DEFAULTS.farm.overuseGraceDays),
      expiryGraceDays: nonNegativeNumber().default(CONFIG_DEFAULTS.farm.expiryGraceDays),
      overuseGraceStartedAt: isoTime.optional(),
      hosts: hostPatternList('any host').optional(),
      maxHosts: integer(1).default(CONFIG_DEFAULTS.farm.maxHosts),
      // Hosts the farm may know, retired ones included; by default twice maxHosts (below).
      maxKnownHosts: integer(1).optional(),
      // Sessions the farm may hold, and users new to it per rolling minute; by default sized to its
      // seats (farm-quotas.ts), so a real farm never meets them.
      maxSessions: between(1, 10_000_000).optional(),
      maxNewUsersPerMinute: between(1, 1_000_000).optional(),
      // Host names compare case-insensitively (docs/design.md §2 rule 1): kept in lower case, once each.
      expectedHosts: z
        .array(
          z
            .string({ error: 'must be a host name' })
            .regex(NAME_PATTERN, { error: `must be a host name matching ${NAME_PATTERN.source}` }),
          {
            error: 'must be a list of host names',
          },
        )
        .max(CONFIG_DEFAULTS.farm.maxHosts, { error: `must list at most ${CONFIG_DEFAULTS.farm.maxHosts} hosts` })
        .default([])
        .transform((names) => [...new Set(names.map((name) => name.toLowerCase()))]),
      forgetHostsAfterDays: positiveNumber().default(CONFIG_DEFAULTS.farm.forgetHostsAfterDays),
      ras: rasSchema.optional(),
    },
    { error: 'must be a mapping' },
  )
  .transform((farm) => ({ ...farm, maxKnownHosts: farm.maxKnownHosts ?? 2 * farm.maxHosts }));

const hostPortList = z
  .array(z.string({ error: NODE_HINT }).refine(isRedisNode, { error: NODE_HINT }), {
    error: 'must be a list of "host:port" strings',
  })
  .min(1, { error: 'must list at least one "host:port"' });

const redisSchema = z.strictObject(
  {
    url: z.string({ error: REDIS_URL_HINT }).refine(isRedisUrl, { error: REDIS_URL_HINT }).optional(),
    // The prefix is joined into every key next to the `{farm}` hash tag, so braces and spaces would
    // break Redis Cluster routing or the key layout.
    prefix: z
      .string({ error: 'must be a string' })
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, {
        error: 'must be 1 to 64 letters, digits, ".", "_", ":" or "-"',
      })
      .default(CONFIG_DEFAULTS.redisPrefix),
    cluster: z.strictObject({ nodes: hostPortList }, { error: 'must be a mapping' }).optional(),
    sentinel: z
      .strictObject(
        {
          sentinels: hostPortList,
          name: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
        },
        { error: 'must be a mapping' },
      )
      .optional(),
  },
  { error: 'must be a mapping' },
);

const configSchema = z.strictObject(
  {
    // prefault, not default: the default string must go through the same host:port parsing.
    listen: z
      .string({ error: LISTEN_HINT })
      .refine((text) => parseListen(text) !== undefined, { error: LISTEN_HINT })
      .transform((text) => parseListen(text) as { host: string; port: number })
      .prefault(CONFIG_DEFAULTS.listen),
    redis: redisSchema.prefault({}),
    heartbeatSeconds: between(LIMIT_RANGES.heartbeatSeconds.min, LIMIT_RANGES.heartbeatSeconds.max, {
      whole: false,
    }).default(CONFIG_DEFAULTS.heartbeatSeconds),
    hostRetireSeconds: positiveNumber()
      .max(10 * 366 * 86_400, { error: 'must be at most ten years' })
      .default(CONFIG_DEFAULTS.hostRetireSeconds),
    limits: z
      .strictObject(
        {
          maxFrameBytes: between(LIMIT_RANGES.maxFrameBytes.min, LIMIT_RANGES.maxFrameBytes.max).default(
            CONFIG_DEFAULTS.limits.maxFrameBytes,
          ),
          maxEvents: between(LIMIT_RANGES.maxEvents.min, LIMIT_RANGES.maxEvents.max).default(
            CONFIG_DEFAULTS.limits.maxEvents,
          ),
          maxSessions: between(LIMIT_RANGES.maxSessions.min, LIMIT_RANGES.maxSessions.max).default(
            CONFIG_DEFAULTS.limits.maxSessions,
          ),
          maxConnections: between(300, 1_000_000).default(CONFIG_DEFAULTS.limits.maxConnections),
          upgradesPerSecondPerAddress: between(1, 100_000).default(CONFIG_DEFAULTS.limits.upgradesPerSecondPerAddress),
          upgradeBurstPerAddress: between(1, 1_000_000).default(CONFIG_DEFAULTS.limits.upgradeBurstPerAddress),
          maxHttpRequests: between(1, 10_000).default(CONFIG_DEFAULTS.limits.maxHttpRequests),
          httpTimeoutSeconds: between(1, 300, { whole: false }).default(CONFIG_DEFAULTS.limits.httpTimeoutSeconds),
          framesPerSecondPerConnection: between(1, 100_000).default(
            CONFIG_DEFAULTS.limits.framesPerSecondPerConnection,
          ),
          bytesPerSecondPerConnection: between(4096, 1 << 30).default(
            CONFIG_DEFAULTS.limits.bytesPerSecondPerConnection,
          ),
          bytesPerSecondPerFarm: between(65_536, 1 << 30).default(CONFIG_DEFAULTS.limits.bytesPerSecondPerFarm),
          applyMillisecondsPerSecondPerFarm: between(10, 1000).default(
            CONFIG_DEFAULTS.limits.applyMillisecondsPerSecondPerFarm,
          ),
        },
        { error: 'must be a mapping' },
      )
      .prefault({}),
    tls: z
      .strictObject(
        {
          cert: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }),
          key: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }),
          ca: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }).optional(),
        },
        { error: 'must be a mapping' },
      )
      .optional(),
    api: z
      .strictObject({ tokensSha256: tokenHashList().default(() => []) }, { error: 'must be a mapping' })
      .prefault({}),
    // The distinct users of each calendar month (docs/design.md §4, "Customers, SPLA and SAL").
    distinctUsers: z
      .strictObject(
        { retentionMonths: between(1, 240).default(CONFIG_DEFAULTS.distinctUserMonths) },
        { error: 'must be a mapping' },
      )
      .prefault({}),
    // The Host header names the API and the status page answer to (docs/design.md §6); unset: the
    // listen address, localhost and the machine's own names and addresses.
    http: z
      .strictObject(
        {
          allowedHosts: z
            .array(
              z.string({ error: 'must be a host name or address' }).regex(/^(\*\.)?[A-Za-z0-9._:[\]-]{1,253}$/, {
                error: 'must be a host name, an address, or *.domain',
              }),
              { error: 'must be a list of host names or addresses' },
            )
            .min(1, { error: 'must list at least one name (leave it out for the defaults)' })
            .optional(),
          // Load balancers whose X-Forwarded-For names the agent behind them (the upgrade limits count
          // that address); from any other peer the header is ignored.
          trustedProxies: z
            .array(
              z
                .string({ error: 'must be an IP address or CIDR range' })
                .refine((text) => parseRange(text) !== undefined, {
                  error: 'must be an IP address or CIDR range, like "10.0.0.0/8" or "fd00::/8"',
                }),
              { error: 'must be a list of IP addresses or CIDR ranges' },
            )
            .default(() => []),
          // Load balancers in trustedProxies send a PROXY protocol header (v1 or v2) before each
          // connection's bytes, naming the agent; from any other peer none is read.
          proxyProtocol: z.boolean({ error: 'must be true or false' }).default(false),
        },
        { error: 'must be a mapping' },
      )
      .refine((http) => !http.proxyProtocol || http.trustedProxies.length > 0, {
        error: 'true needs http.trustedProxies, the load balancers that send the PROXY header',
        path: ['proxyProtocol'],
      })
      .prefault({}),
    farms: z.array(farmSchema, { error: 'must be a list of farms' }).min(1, { error: 'must list at least one farm' }),
  },
  { error: 'must be a mapping of settings' },
);

/**
 * One licensed RAS farm as the collector enforces it: `id` compared case-insensitively, times in ms
 * since the epoch, token hashes in lower-case hex; `hosts` unset allows any host.
 */
export type FarmConfig = z.output<typeof farmSchema>;

/**
 * The collector's validated configuration, defaults applied. Exactly one of `redis.url`, `cluster`,
 * `sentinel` is set; `tls` files were readable at load time; an empty `api.tokensSha256` leaves the
 * API open.
 */
export type CollectorConfig = z.output<typeof configSchema>;

function located(key: string, sentence: string, source: string): ConfigError {
  return key === ''
    ? new ConfigError(`${source}: ${sentence}`)
    : new ConfigError(`${key}: ${sentence} (in ${source})`, { key });
}

function checkReadableFile(key: string, file: string, source: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(file).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? `file ${file} not found` : `file ${file} cannot be read (${code})`;
    throw located(key, reason, source);
  }
  if (!isFile) throw located(key, `${file} is not a regular file`, source);
  try {
    accessSync(file, constants.R_OK);
  } catch {
    throw located(key, `file ${file} is not readable`, source);
  }
}

/** The text of a secret file: its last line break dropped; missing, unreadable or empty is a ConfigError. */
function readSecretFile(key: string, file: string, source: string): Secret {
  checkReadableFile(key, file, source);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw located(key, `file ${file} cannot be read (${(err as NodeJS.ErrnoException).code})`, source);
  }
  text = text.replace(/\r?\n$/, '');
  if (text.trim() === '') throw located(key, `file ${file} is empty`, source);
  return new Secret(text);
}

/** A licenseKey label whose farms are of both kinds: SPLA and primary or sublicense. */
export interface MixedLicenseKey {
  key: string;
  /** Ids of the key's farms with license: spla. */
  spla: string[];
  /** Ids of its other farms. */
  other: string[];
}

/**
 * The licenseKey labels shared by an SPLA farm and a farm that is not (farms whose license is not
 * known, ras.adopt before RAS answered without a fallback, are left out). An SPLA key's bill sums
 * its SPLA farms only, so a key of both kinds is a misconfiguration: refused at load, and warned
 * of when RAS gives an adopting farm a license type that mixes its key.
 */
export function mixedLicenseKeys(
  farms: ReadonlyArray<Pick<FarmConfig, 'id' | 'licenseKey' | 'license'>>,
): MixedLicenseKey[] {
  const byKey = new Map<string, MixedLicenseKey>();
  for (const farm of farms) {
    if (farm.licenseKey === undefined || farm.license === undefined) continue;
    let entry = byKey.get(farm.licenseKey);
    if (!entry) {
      entry = { key: farm.licenseKey, spla: [], other: [] };
      byKey.set(farm.licenseKey, entry);
    }
    (farm.license === 'spla' ? entry.spla : entry.other).push(farm.id);
  }
  return [...byKey.values()].filter((entry) => entry.spla.length > 0 && entry.other.length > 0);
}

/** The checks that span several keys, which a per-field schema cannot express. */
function checkConsistency(config: CollectorConfig, source: string): void {
  const backends = (['url', 'cluster', 'sentinel'] as const).filter((name) => config.redis[name] !== undefined);
  if (backends.length > 1) {
    throw located(
      `redis.${backends[1]}`,
      `cannot be combined with redis.${backends[0]}; set only one of url, cluster or sentinel`,
      source,
    );
  }
  if (config.tls) {
    checkReadableFile('tls.cert', config.tls.cert, source);
    checkReadableFile('tls.key', config.tls.key, source);
    if (config.tls.ca !== undefined) checkReadableFile('tls.ca', config.tls.ca, source);
  }
  const farmIndexById = new Map<string, number>();
  const farmIndexByToken = new Map<string, number>();
  config.farms.forEach((farm, index) => {
    // With ras.adopt, RAS gives these; the farm's values are then only the fallback until it answers.
    const adopting = farm.ras?.adopt === true;
    if (farm.license === undefined && !adopting) {
      throw located(`farms[${index}].license`, 'is required (unless ras.adopt takes it from RAS)', source);
    }
    if (farm.expires === undefined && !adopting) {
      throw located(`farms[${index}].expires`, 'is required (unless ras.adopt takes it from RAS)', source);
    }
    if (farm.seats === undefined && farm.license !== 'spla' && !adopting) {
      throw located(
        `farms[${index}].seats`,
        'is required (only a license: spla farm may leave it out, or ras.adopt take it from RAS)',
        source,
      );
    }
    const earlier = farmIndexById.get(farmIdKey(farm.id));
    if (earlier !== undefined) {
      throw located(
        `farms[${index}].id`,
        `"${farm.id}" is already the id of farms[${earlier}] (ids are compared case-insensitively)`,
        source,
      );
    }
    farmIndexById.set(farmIdKey(farm.id), index);
    // A token identifies its farm at upgrade time, so one token opening two farms would be ambiguous.
    if (farm.hostIdentity === 'certificate' && config.tls?.ca === undefined) {
      throw located(
        `farms[${index}].hostIdentity`,
        'certificate needs client certificates: set tls.ca (and tls.cert, tls.key)',
        source,
      );
    }
    if (farm.ras) {
      farm.ras.password = readSecretFile(`farms[${index}].ras.passwordFile`, farm.ras.passwordFile, source);
      if (farm.ras.ca !== undefined) checkReadableFile(`farms[${index}].ras.ca`, farm.ras.ca, source);
    }
    if (farm.maxKnownHosts < farm.maxHosts) {
      throw located(
        `farms[${index}].maxKnownHosts`,
        `must be at least maxHosts (${farm.maxHosts}): retired hosts are known too`,
        source,
      );
    }
    const hostsByToken = new Map<string, string>();
    farm.agentTokensSha256.forEach(({ sha256: hash, hosts }, tokenIndex) => {
      // Listed twice in one farm is harmless unless the two entries allow different hosts.
      const allowed = JSON.stringify(hosts ?? null);
      if ((hostsByToken.get(hash) ?? allowed) !== allowed) {
        throw located(
          `farms[${index}].agentTokensSha256[${tokenIndex}]`,
          'is listed twice in this farm with different hosts',
          source,
        );
      }
      hostsByToken.set(hash, allowed);
      const owner = farmIndexByToken.get(hash);
      if (owner !== undefined && owner !== index) {
        throw located(
          `farms[${index}].agentTokensSha256[${tokenIndex}]`,
          `already belongs to farms[${owner}] ("${config.farms[owner]?.id}"); a token may open only one farm`,
          source,
        );
      }
      farmIndexByToken.set(hash, index);
    });
  });
  const [mixed] = mixedLicenseKeys(config.farms);
  if (mixed) {
    // Named at the first farm whose kind differs from the key's first farm, in the file's order.
    const ofKey = (farm: FarmConfig) => farm.licenseKey === mixed.key && farm.license !== undefined;
    const firstSpla = config.farms.find(ofKey)!.license === 'spla';
    const index = config.farms.findIndex((farm) => ofKey(farm) && (farm.license === 'spla') !== firstSpla);
    throw located(
      `farms[${index}].licenseKey`,
      `"${mixed.key}" is shared by SPLA farms (${mixed.spla.join(', ')}) and farms that are not (${mixed.other.join(', ')}): ` +
        'an SPLA key bills its SPLA farms only; give each license its own licenseKey',
      source,
    );
  }
}

/**
 * Validates an already-parsed configuration object and applies the defaults.
 *
 * @param raw - the object read from YAML or JSON
 * @param source - names where `raw` came from in error messages, e.g. `config file /etc/rasmon.yaml`
 * @throws {@link ConfigError} naming the first bad key; tls files are checked to exist and be readable
 */
export function parseConfig(raw: unknown, source: string): CollectorConfig {
  if (raw === null || raw === undefined) throw new ConfigError(`${source}: is empty`);
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const { key, sentence } = reportIssue(result.error, raw);
    throw located(key, sentence, source);
  }
  const config: CollectorConfig = result.data;
  checkConsistency(config, source);
  const { url, cluster, sentinel } = config.redis;
  if (url === undefined && cluster === undefined && sentinel === undefined) {
    config.redis.url = CONFIG_DEFAULTS.redisUrl;
  }
  return config;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sorts object keys at every level and drops undefined values, so equal configs serialize equally. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    if (value[key] !== undefined) out[key] = canonical(value[key]);
  }
  return out;
}

/**
 * A short, stable fingerprint of a configuration (first 12 hex chars of the sha256 of its canonical
 * JSON), exported in `rasmon_collector_config_info` so collectors running different configs stand out.
 */
export function configHash(config: CollectorConfig): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(config)))
    .digest('hex')
    .slice(0, 12);
}

/** Lower-case hex sha256 of a token's UTF-8 bytes, the form tokens are stored in the config. */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
