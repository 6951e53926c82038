/**
 * The agent's configuration: YAML or JSON, merged with command-line flags, validated once. A bad
 * value gives one line naming the key.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { NAME_PATTERN } from '@rasmon/protocol';
import { ConfigFileError, formatIssue, RasmonError, readConfigFile } from '@rasmon/protocol/kit';
import { z } from 'zod';
import { parseCidr } from './windows/cidr.js';
import { CLASSIFY_DEFAULTS } from './windows/classify.js';

export class AgentConfigError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_AGENT_CONFIG', message, options);
    this.name = 'AgentConfigError';
  }
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
  reconnect: z
    .strictObject({
      initialSeconds: seconds.default(1),
      maxSeconds: seconds.default(60),
      supersededSeconds: seconds.default(60),
    })
    .prefault({}),
});

export type AgentConfig = z.infer<typeof schema> & { host: string; pollIntervalSeconds: number };

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
  if (!result.success) throw new AgentConfigError(formatIssue(result.error));
  const host = result.data.host ?? hostname().split('.')[0]!;
  if (!NAME_PATTERN.test(host)) {
    throw new AgentConfigError(`host: this machine's name "${host}" does not match ${NAME_PATTERN.source}; set host`);
  }
  const pollIntervalSeconds = result.data.pollIntervalSeconds ?? (result.data.source === 'wts' ? 60 : 5);
  return { ...result.data, host, pollIntervalSeconds };
}

/** The settings the service needs to connect; errors name the missing key. */
export function connectionSettings(config: AgentConfig): ConnectionSettings {
  for (const key of ['collector', 'tokenFile', 'farm'] as const) {
    if (!config[key]) throw new AgentConfigError(`${key}: required to connect to a collector`);
  }
  return { collector: config.collector!, tokenFile: config.tokenFile!, farm: config.farm! };
}

/** Reads the token: the file's first line, trimmed. Never logged. */
export function readToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new AgentConfigError(`tokenFile: ${path} cannot be read`);
  }
  const token = tokenOf(text);
  if (!token) throw new AgentConfigError(`tokenFile: ${path} is empty`);
  return token;
}

/** The token a token file's text holds: its first line, trimmed ('' when there is none). */
export function tokenOf(text: string): string {
  return text.split(/\r?\n/)[0]!.trim();
}
