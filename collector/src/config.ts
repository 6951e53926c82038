import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { extname } from 'node:path';
import { NAME_PATTERN } from '@rasmon/protocol';
import YAML from 'yaml';
import { z } from 'zod';

/** One licensed RAS farm as the collector enforces it. */
export interface FarmConfig {
  /** Farm name agents send in their hello; unique among farms, compared case-insensitively. */
  id: string;
  /** Licensed concurrent users; an integer >= 0. */
  seats: number;
  license: 'primary' | 'sublicense';
  /** License expiry, ms since the epoch. */
  expires: number;
  /** Lower-case hex sha256 of each agent token that may report for this farm. */
  agentTokensSha256: string[];
  /** Whether disconnected sessions hold a license. */
  countDisconnected: boolean;
  overuseGraceDays: number;
  expiryGraceDays: number;
  /** When a known overuse grace began, ms since the epoch. */
  overuseGraceStartedAt?: number;
  /** Host-name patterns (`*`, `?`, case-insensitive) its agents may claim; unset allows any host. */
  hosts?: string[];
  /** Most hosts (not yet retired) the farm may hold, so one leaked token cannot flood Redis. */
  maxHosts: number;
  /** A retired host not seen for this many days is forgotten: its keys and series go. */
  forgetHostsAfterDays: number;
}

/** The collector's validated configuration, defaults applied. */
export interface CollectorConfig {
  /** Where the HTTP server listens; an IPv6 host is given without brackets. */
  listen: { host: string; port: number };
  /** Exactly one of `url`, `cluster`, `sentinel` is set. */
  redis: {
    url?: string;
    prefix: string;
    cluster?: { nodes: string[] };
    sentinel?: { sentinels: string[]; name: string };
  };
  heartbeatSeconds: number;
  hostRetireSeconds: number;
  limits: { maxFrameBytes: number; maxEvents: number; maxSessions: number };
  /** Paths of PEM files, checked readable at load time; `ca` turns on client certificates. */
  tls?: { cert: string; key: string; ca?: string };
  /** Lower-case hex sha256 of the bearer tokens the JSON API accepts; empty leaves it open. */
  api: { tokensSha256: string[] };
  farms: FarmConfig[];
}

/** The values used for every key the configuration leaves out. */
export const CONFIG_DEFAULTS = Object.freeze({
  listen: '0.0.0.0:9420',
  redisUrl: 'redis://127.0.0.1:6379',
  redisPrefix: 'rasmon',
  heartbeatSeconds: 15,
  hostRetireSeconds: 86_400,
  limits: Object.freeze({ maxFrameBytes: 1_048_576, maxEvents: 1000, maxSessions: 2000 }),
  farm: Object.freeze({
    countDisconnected: true,
    overuseGraceDays: 7,
    expiryGraceDays: 30,
    maxHosts: 5000,
    forgetHostsAfterDays: 30,
  }),
});

/**
 * A configuration problem: the message is one line naming the bad key, so the CLI can print it as is
 * and exit 2.
 */
export class ConfigError extends Error {
  readonly code = 'RASMON_CONFIG';
  /** The key (`farms[0].seats`), environment variable or option at fault; absent when the whole file is. */
  readonly key: string | undefined;

  constructor(message: string, options: { key?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.key = options.key;
  }
}

const LISTEN_HINT = 'must be "host:port", "[ipv6]:port" or ":port" with a port from 0 to 65535';
const NODE_HINT = 'must be "host:port" or "[ipv6]:port" with a port from 1 to 65535';
const REDIS_URL_HINT = 'must be a redis:// or rediss:// URL';
const HOST_NAME = /^[A-Za-z0-9.-]+$/;

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

function parseListen(text: string): { host: string; port: number } | undefined {
  const parsed = splitHostPort(text.trim());
  if (!parsed) return undefined;
  return { host: parsed.host === '' ? '0.0.0.0' : parsed.host, port: parsed.port };
}

function isRedisNode(text: string): boolean {
  const parsed = splitHostPort(text);
  return parsed !== undefined && parsed.host !== '' && parsed.port > 0;
}

function isRedisUrl(text: string): boolean {
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

function positiveNumber() {
  const error = 'must be a number > 0';
  return z.number({ error }).positive({ error });
}

function nonNegativeNumber() {
  const error = 'must be a number >= 0';
  return z.number({ error }).min(0, { error });
}

const isoTime = z.iso
  .datetime({
    offset: true,
    error: 'must be an ISO-8601 time with a timezone, like "2027-06-30T00:00:00Z"',
  })
  .transform((text) => Date.parse(text));

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

const hostPattern = z
  .string({ error: 'must be a host-name pattern' })
  .regex(/^[A-Za-z0-9._*?-]{1,255}$/, {
    error: 'must be a host-name pattern of letters, digits, ".", "_", "-", "*" and "?"',
  });

const farmSchema = z.strictObject(
  {
    // Agents name their farm in the hello, so an id must be a valid protocol name.
    id: z.string({ error: 'must be a string' }).regex(NAME_PATTERN, {
      error: 'must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    }),
    seats: integer(0),
    license: z.enum(['primary', 'sublicense'], { error: 'must be "primary" or "sublicense"' }),
    expires: isoTime,
    agentTokensSha256: tokenHashList(),
    countDisconnected: z
      .boolean({ error: 'must be true or false' })
      .default(CONFIG_DEFAULTS.farm.countDisconnected),
    overuseGraceDays: positiveNumber().default(CONFIG_DEFAULTS.farm.overuseGraceDays),
    expiryGraceDays: nonNegativeNumber().default(CONFIG_DEFAULTS.farm.expiryGraceDays),
    overuseGraceStartedAt: isoTime.optional(),
    // An empty list would refuse every agent of the farm; that is a mistake, not a policy.
    hosts: z
      .array(hostPattern, { error: 'must be a list of host-name patterns' })
      .min(1, { error: 'must list at least one pattern (leave hosts out to allow any host)' })
      .optional(),
    maxHosts: integer(1).default(CONFIG_DEFAULTS.farm.maxHosts),
    forgetHostsAfterDays: positiveNumber().default(CONFIG_DEFAULTS.farm.forgetHostsAfterDays),
  },
  { error: 'must be a mapping' },
);

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
    heartbeatSeconds: positiveNumber().default(CONFIG_DEFAULTS.heartbeatSeconds),
    hostRetireSeconds: positiveNumber().default(CONFIG_DEFAULTS.hostRetireSeconds),
    limits: z
      .strictObject(
        {
          maxFrameBytes: integer(1).default(CONFIG_DEFAULTS.limits.maxFrameBytes),
          maxEvents: integer(1).default(CONFIG_DEFAULTS.limits.maxEvents),
          maxSessions: integer(1).default(CONFIG_DEFAULTS.limits.maxSessions),
        },
        { error: 'must be a mapping' },
      )
      .prefault({}),
    tls: z
      .strictObject(
        {
          cert: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }),
          key: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }),
          ca: z
            .string({ error: 'must be a file path' })
            .min(1, { error: 'must be a file path' })
            .optional(),
        },
        { error: 'must be a mapping' },
      )
      .optional(),
    api: z
      .strictObject({ tokensSha256: tokenHashList().default(() => []) }, { error: 'must be a mapping' })
      .prefault({}),
    farms: z
      .array(farmSchema, { error: 'must be a list of farms' })
      .min(1, { error: 'must list at least one farm' }),
  },
  { error: 'must be a mapping of settings' },
);

type PathSegment = PropertyKey;

/** `['farms', 0, 'agentTokensSha256', 2]` → `farms[0].agentTokensSha256[2]`. */
function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether the key at `path` is absent from the raw input, so "is required" beats a type complaint. */
function isMissing(raw: unknown, path: readonly PathSegment[]): boolean {
  if (path.length === 0) return raw === undefined;
  let parent: unknown = raw;
  for (const segment of path.slice(0, -1)) {
    if (typeof parent !== 'object' || parent === null) return false;
    parent = (parent as Record<PropertyKey, unknown>)[segment];
  }
  if (typeof parent !== 'object' || parent === null) return false;
  return (parent as Record<PropertyKey, unknown>)[path[path.length - 1] as PropertyKey] === undefined;
}

function located(key: string, sentence: string, source: string): ConfigError {
  return key === ''
    ? new ConfigError(`${source}: ${sentence}`)
    : new ConfigError(`${key}: ${sentence} (in ${source})`, { key });
}

function describeIssue(issues: z.ZodError['issues'], raw: unknown, source: string): ConfigError {
  // A misspelt key also makes its intended key look missing; the misspelling is the useful report.
  const issue = issues.find((candidate) => candidate.code === 'unrecognized_keys') ?? issues[0];
  if (!issue) return new ConfigError(`${source}: invalid`);
  if (issue.code === 'unrecognized_keys') {
    return located(formatPath([...issue.path, issue.keys[0] ?? '?']), 'unknown key', source);
  }
  const sentence = isMissing(raw, issue.path) ? 'is required' : issue.message;
  return located(formatPath(issue.path), sentence, source);
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

/** The checks that span several keys, which a per-field schema cannot express. */
function checkConsistency(config: CollectorConfig, source: string): void {
  const backends = (['url', 'cluster', 'sentinel'] as const).filter(
    (name) => config.redis[name] !== undefined,
  );
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
    const earlier = farmIndexById.get(farm.id.toLowerCase());
    if (earlier !== undefined) {
      throw located(
        `farms[${index}].id`,
        `"${farm.id}" is already the id of farms[${earlier}] (ids are compared case-insensitively)`,
        source,
      );
    }
    farmIndexById.set(farm.id.toLowerCase(), index);
    // A token identifies its farm at upgrade time, so one token opening two farms would be ambiguous.
    farm.agentTokensSha256.forEach((hash, tokenIndex) => {
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
  if (!result.success) throw describeIssue(result.error.issues, raw, source);
  const config: CollectorConfig = result.data;
  checkConsistency(config, source);
  const { url, cluster, sentinel } = config.redis;
  if (url === undefined && cluster === undefined && sentinel === undefined) {
    config.redis.url = CONFIG_DEFAULTS.redisUrl;
  }
  return config;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function readText(file: string, source: string): string {
  try {
    // A BOM from Windows editors would break JSON.parse.
    return readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'not found'
        : code === 'EACCES' || code === 'EPERM'
          ? 'not readable'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${code ?? String(err)})`;
    throw new ConfigError(`${source}: ${reason}`, { cause: err });
  }
}

function parseYaml(text: string, source: string): unknown {
  const doc = YAML.parseDocument(text);
  // Warnings (an unknown tag, say) would silently change a value; an ops config should not pass them.
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const firstLine = problem.message.split('\n')[0] ?? problem.message;
    const reason = firstLine.replace(/ at line \d+, column \d+:?$/, '');
    const at = problem.linePos?.[0];
    const where = at ? `line ${at.line}, column ${at.col}: ` : '';
    throw new ConfigError(`${source}: ${where}${reason}`, { cause: problem });
  }
  return doc.toJS();
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? '';
    const position = /at position (\d+)/.exec(message);
    let where = '';
    if (position) {
      const before = text.slice(0, Number(position[1]));
      const line = before.split('\n').length;
      const col = before.length - before.lastIndexOf('\n');
      where = `line ${line}, column ${col}: `;
    }
    const reason = message.replace(/ in JSON at position \d+.*$/, '');
    throw new ConfigError(`${source}: ${where}${reason}`, { cause: err });
  }
}

/** Puts the environment's overrides into the raw file object, so they are validated with the rest. */
function applyOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  const redisUrl = nonEmpty(env.REDIS_URL);
  const listen = nonEmpty(env.RASMON_LISTEN);
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    throw new ConfigError(`REDIS_URL: ${REDIS_URL_HINT}`, { key: 'REDIS_URL' });
  }
  if (listen !== undefined && parseListen(listen) === undefined) {
    throw new ConfigError(`RASMON_LISTEN: ${LISTEN_HINT}`, { key: 'RASMON_LISTEN' });
  }
  if (!isRecord(raw)) return raw;
  const merged: Record<string, unknown> = { ...raw };
  if (listen !== undefined) merged.listen = listen;
  // A non-mapping redis is left alone so the file's own mistake is still reported.
  if (redisUrl !== undefined && (merged.redis === undefined || isRecord(merged.redis))) {
    const redis: Record<string, unknown> = { ...(merged.redis as Record<string, unknown> | undefined) };
    delete redis.cluster;
    delete redis.sentinel;
    merged.redis = { ...redis, url: redisUrl };
  }
  return merged;
}

/**
 * Reads, validates and returns the collector configuration.
 *
 * The file is `options.path` (the `--config` flag) or else `env.RASMON_CONFIG`; `.yaml`/`.yml` is read
 * as YAML and `.json` as JSON. `env.REDIS_URL` replaces the file's redis url, cluster and sentinel;
 * `env.RASMON_LISTEN` replaces `listen`. Empty environment variables count as unset.
 *
 * @param options.env - defaults to `process.env`
 * @throws {@link ConfigError} with a one-line message naming the file, key or variable at fault
 */
export function loadConfig(options: { path?: string; env?: NodeJS.ProcessEnv } = {}): CollectorConfig {
  const env = options.env ?? process.env;
  const file = nonEmpty(options.path) ?? nonEmpty(env.RASMON_CONFIG);
  if (file === undefined) {
    throw new ConfigError('--config FILE or RASMON_CONFIG is required', { key: '--config' });
  }
  const source = `config file ${file}`;
  const extension = extname(file).toLowerCase();
  if (extension !== '.yaml' && extension !== '.yml' && extension !== '.json') {
    const found = extension === '' ? 'has no extension' : `has unsupported extension "${extension}"`;
    throw new ConfigError(`${source}: ${found}; use .yaml, .yml or .json`);
  }
  const text = readText(file, source);
  const raw = extension === '.json' ? parseJson(text, source) : parseYaml(text, source);
  return parseConfig(applyOverrides(raw, env), source);
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
 * JSON), exported in `ras_collector_config_info` so collectors running different configs stand out.
 */
export function configHash(config: CollectorConfig): string {
  return createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex').slice(0, 12);
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((char) => {
      if (char === '*') return '.*';
      if (char === '?') return '.';
      return char.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * Whether an agent of `farm` may claim the host name `host`: always when the farm lists no `hosts`,
 * else when some pattern matches the whole name, ignoring case (Windows host names are case-insensitive).
 */
export function hostAllowed(farm: FarmConfig, host: string): boolean {
  if (farm.hosts === undefined) return true;
  return farm.hosts.some((pattern) => globToRegExp(pattern).test(host));
}

/** Lower-case hex sha256 of a token's UTF-8 bytes, the form tokens are stored in the config. */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
