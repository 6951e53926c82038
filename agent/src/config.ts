/**
 * The agent's configuration: YAML or JSON, merged with command-line flags, validated once. A bad
 * value gives one line naming the key.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { NAME_PATTERN } from '@rasmon/protocol';
import { ConfigFileError, issuePath, RasmonError, readConfigFile } from '@rasmon/protocol/kit';
import * as z from 'zod';
import { parseCidr } from './windows/cidr.js';
import { CLASSIFY_DEFAULTS } from './windows/classify.js';

export class AgentConfigError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_AGENT_CONFIG', message, options);
    this.name = 'AgentConfigError';
  }
}

/** A file the configuration names (token, TLS material) that cannot be used; `reason` says why, plainly. */
export class ConfigPathError extends AgentConfigError {
  constructor(
    message: string,
    /** What is wrong and what to do, without the key and path: `does not exist; …`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConfigPathError';
  }
}

/** `config file PATH: ` before a message, when the configuration came from a file. */
export function inConfigFile(config: Pick<AgentConfig, 'file'>, message: string): string {
  return config.file ? `config file ${config.file}: ${message}` : message;
}

const name = z.string().regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`);
const seconds = z.number().positive();
const cidr = z.string().refine((text) => {
  try {
    parseCidr(text);
    return true;
  } catch {
    return false;
  }
}, 'must be an IP address or CIDR range such as 10.0.0.0/8');

const defaultSpoolDir =
  process.platform === 'win32'
    ? join(process.env.ProgramData ?? 'C:\\ProgramData', 'rasmon', 'spool')
    : '/var/lib/rasmon-agent/spool';

const schema = z.strictObject({
  collector: z
    .string()
    .refine((url) => /^wss?:\/\/[^/]/.test(url), 'must be a ws:// or wss:// URL')
    .optional(),
  tokenFile: z.string().min(1).optional(),
  /** Allow `ws://` (token and user names in clear) to a collector that is not on this machine. */
  allowInsecure: z.boolean().default(false),
  tls: z
    .strictObject({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })
    .optional(),
  farm: name.optional(),
  host: name.optional(),
  source: z.enum(['wts', 'quser', 'command', 'simulate']).default('wts'),
  command: z.string().min(1).optional(),
  /** quser: day/month order of logon dates, when the host's regional format differs from its language. */
  quser: z.strictObject({ dateOrder: z.enum(['month-first', 'day-first']).optional() }).prefault({}),
  /** Default: 60 for `wts` (session events wake the agent; the poll is a safety net), else 5. */
  pollIntervalSeconds: seconds.optional(),
  snapshotIntervalSeconds: seconds.default(600),
  spool: z
    .strictObject({
      dir: z.string().min(1).default(defaultSpoolDir),
      maxBytes: z
        .number()
        .int()
        .min(4096)
        .default(64 * 1024 * 1024),
    })
    .default({ dir: defaultSpoolDir, maxBytes: 64 * 1024 * 1024 }),
  domain: z.string().min(1).optional(),
  classify: z
    .strictObject({
      rasGateways: z.array(cidr).default([...CLASSIFY_DEFAULTS.rasGateways]),
      rasClientNames: z.array(z.string()).default([...CLASSIFY_DEFAULTS.rasClientNames]),
      appProcesses: z.array(z.string().min(1)).default([...CLASSIFY_DEFAULTS.appProcesses]),
      adminUsers: z.array(z.string().min(1)).default([...CLASSIFY_DEFAULTS.adminUsers]),
      adminGroups: z.array(z.string().min(1)).default([]),
      includeConsole: z.boolean().default(CLASSIFY_DEFAULTS.includeConsole),
    })
    .prefault({}),
  simulate: z
    .strictObject({
      /** Default: derived from the host name, so simulated hosts differ. */
      seed: z.number().int().optional(),
      users: z.number().int().min(1).default(50),
      admins: z.number().int().min(0).default(3),
      userPrefix: z.string().min(1).default('user'),
      targetSessions: z.number().int().min(0).optional(),
      logonsPerMinute: z.number().positive().optional(),
    })
    .prefault({}),
  metrics: z.strictObject({ listen: z.string().regex(/^[^:]*:\d{1,5}$/, 'must be "host:port"') }).optional(),
  log: z
    .strictObject({
      /** `text` (ISO times, level names) or `json` (one object a line). Default: text at a terminal, else json. */
      format: z.enum(['text', 'json']).optional(),
      /** The service's log file: rotated at this size, this many old files kept (32 MiB in all by default). */
      maxBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .default(8 * 1024 * 1024),
      maxFiles: z.number().int().min(1).max(100).default(3),
    })
    .prefault({}),
  reconnect: z
    .strictObject({
      initialSeconds: seconds.default(1),
      maxSeconds: seconds.default(60),
      supersededSeconds: seconds.default(60),
      // After a collector's drain (close 1001), reconnect at a random moment within this, at most
      // maxSeconds: 10,000 agents do not all come back in the same second.
      drainSpreadSeconds: seconds.default(15),
    })
    .prefault({}),
});

export type AgentConfig = z.infer<typeof schema> & {
  host: string;
  pollIntervalSeconds: number;
  /** The configuration file it was read from, named in every error about it. */
  file?: string;
};

/** What the `sessions` command and the service both need; the service also needs the connection. */
export interface ConnectionSettings {
  collector: string;
  tokenFile: string;
  farm: string;
}

/** Command-line values that override the file. */
export interface AgentFlags {
  collector?: string | undefined;
  tokenFile?: string | undefined;
  farm?: string | undefined;
  host?: string | undefined;
  source?: string | undefined;
  spoolDir?: string | undefined;
}

/** Reads a config file; flags (already parsed) win over it. */
export function loadAgentConfig(path: string | undefined, flags: AgentFlags = {}): AgentConfig {
  let raw: Record<string, unknown> = {};
  if (path) {
    let parsed: unknown;
    try {
      parsed = readConfigFile(path);
    } catch (err) {
      if (!(err instanceof ConfigFileError)) throw err;
      const message = err.unreadable ? `config file ${path}: cannot be read (${err.reason})` : err.message;
      throw new AgentConfigError(message, { cause: err });
    }
    parsed ??= {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new AgentConfigError(`config file ${path}: must hold a mapping of settings`);
    }
    raw = parsed as Record<string, unknown>;
  }
  const { spoolDir, ...plain } = flags;
  const merged: Record<string, unknown> = { ...raw };
  for (const [key, value] of Object.entries(plain)) if (value !== undefined) merged[key] = value;
  if (spoolDir !== undefined) {
    const spool = typeof raw.spool === 'object' && raw.spool !== null ? raw.spool : {};
    merged.spool = { ...spool, dir: spoolDir };
  }
  const result = schema.safeParse(merged);
  if (!result.success) throw new AgentConfigError(describeIssue(result.error, merged, path, flags));
  const host = result.data.host ?? hostname().split('.')[0]!;
  const where = { ...(path ? { file: path } : {}) };
  if (!NAME_PATTERN.test(host)) {
    throw new AgentConfigError(
      inConfigFile(where, `host: this machine's name "${host}" does not match ${NAME_PATTERN.source}; set host`),
    );
  }
  const collector = result.data.collector;
  if (collector !== undefined && !result.data.allowInsecure && insecureCollector(collector)) {
    const key = flags.collector !== undefined ? '--collector' : 'collector';
    const line = `${key}: ws:// sends the token and user names in clear to ${collectorHost(collector)}, which is not this machine; use wss:// (tls in the collector's configuration), or set allowInsecure: true for a lab (got "${collector}")`;
    throw new AgentConfigError(key === 'collector' ? inConfigFile(where, line) : line);
  }
  const pollIntervalSeconds = result.data.pollIntervalSeconds ?? (result.data.source === 'wts' ? 60 : 5);
  return { ...result.data, host, pollIntervalSeconds, ...where };
}

/** The host of a collector URL as written (`[::1]` unbracketed), lower case. */
function collectorHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  } catch {
    return url;
  }
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * Whether a collector URL is `ws://` to a host other than this machine (localhost, 127.0.0.0/8,
 * ::1): the bearer token, and every user name the agent sends, would cross the network in clear.
 */
export function insecureCollector(url: string): boolean {
  if (!/^ws:/i.test(url)) return false;
  const host = collectorHost(url);
  if (host === 'localhost') return false;
  const family = isIP(host);
  if (family === 0) return true;
  return !loopback.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

const FLAG_NAMES: Record<string, string> = {
  collector: '--collector',
  tokenFile: '--token-file',
  farm: '--farm',
  host: '--host',
  source: '--source',
  spoolDir: '--spool-dir',
};

/** The value at `path` in `raw`, as it would be written in the file (clipped). */
function valueAt(raw: unknown, path: readonly PropertyKey[]): string | undefined {
  let value = raw;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  if (value === undefined) return undefined;
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * One line for a failed validation: where the bad value came from (the flag, or the file), the key,
 * what is wrong, and the value that was given: `config file C:\rasmon\agent.yaml: source: must be
 * one of wts, quser, command, simulate (got "magic")`.
 */
function describeIssue(error: z.ZodError, raw: unknown, file: string | undefined, flags: AgentFlags): string {
  const issue = error.issues.find((candidate) => candidate.code === 'unrecognized_keys') ?? error.issues[0];
  if (!issue) return file ? `config file ${file}: invalid` : 'invalid';
  if (issue.code === 'unrecognized_keys') {
    const key = issuePath([...issue.path, issue.keys[0] ?? '?']);
    return file ? `config file ${file}: ${key}: unknown key` : `${key}: unknown key`;
  }
  const top = String(issue.path[0] ?? '');
  const spoolFlag = top === 'spool' && issue.path[1] === 'dir' && flags.spoolDir !== undefined;
  const flag = spoolFlag ? '--spool-dir' : flags[top as keyof AgentFlags] !== undefined ? FLAG_NAMES[top] : undefined;
  const value = valueAt(raw, issue.path);
  const sentence =
    value === undefined
      ? 'is required'
      : issue.code === 'invalid_value'
        ? `must be one of ${issue.values.map(String).join(', ')}`
        : issue.message;
  const got = value === undefined ? '' : ` (got ${value})`;
  if (flag) return `${flag}: ${sentence}${got}`;
  const line = `${issuePath(issue.path)}: ${sentence}${got}`;
  return file ? `config file ${file}: ${line}` : line;
}

/** The settings the service needs to connect; errors name the missing key and the file. */
export function connectionSettings(config: AgentConfig): ConnectionSettings {
  for (const key of ['collector', 'tokenFile', 'farm'] as const) {
    if (!config[key]) throw new AgentConfigError(inConfigFile(config, `${key}: required to connect to a collector`));
  }
  return { collector: config.collector!, tokenFile: config.tokenFile!, farm: config.farm! };
}

/** Why a file the configuration names cannot be read, and what to do, in words. */
export function unreadableReason(err: unknown, what: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return `does not exist; create it with ${what}, or correct the path`;
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read by this account (permission denied); run as an administrator, or as the service (LocalSystem)';
    case 'EISDIR':
      return `is a directory; give the path of the file holding ${what}`;
    default:
      return `cannot be read (${code ?? 'error'}: ${(err as Error).message})`;
  }
}

/** Reads a file named at `key` of the configuration; the error names the key, the path and the reason. */
export function readConfiguredFile(config: Pick<AgentConfig, 'file'>, key: string, path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = unreadableReason(err, what);
    throw new ConfigPathError(inConfigFile(config, `${key}: ${path} ${reason}`), reason, { cause: err });
  }
}

/** Reads the token: the file's first line, trimmed. Never logged. */
export function readToken(path: string, config: Pick<AgentConfig, 'file'> = {}): string {
  const what = "the agent token (the collector's farm token) on its first line";
  const text = readConfiguredFile(config, 'tokenFile', path, what).toString('utf8');
  const token = tokenOf(text);
  if (!token) {
    const reason = `is empty; put ${what}`;
    throw new ConfigPathError(inConfigFile(config, `tokenFile: ${path} ${reason}`), reason);
  }
  return token;
}

/** The token a token file's text holds: its first line, trimmed, without a byte-order mark ('' when there is none). */
export function tokenOf(text: string): string {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)[0]!
    .trim();
}
