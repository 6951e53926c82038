/**
 * `rasmon-agent service setup` and `service remove-data`: the steps rasmon-agent.msi runs as
 * deferred custom actions (agent/build/msi/rasmon-agent.wxs), as SYSTEM, once the MSI has created the
 * service and before it starts it. Setup turns the MSI's public properties into
 * ProgramData\rasmon\agent.yaml and its token file (or keeps the ones an earlier install wrote),
 * checks them, locks ProgramData\rasmon to SYSTEM and Administrators (owner Administrators; a folder
 * or token file someone else created first fails the install), sets the service's recovery
 * actions, and tries the collector once. What it prints goes into the MSI's log.
 *
 * What fails the install (and rolls it back): a configuration that cannot work whatever happens
 * later (a property missing or malformed, no token, an unreadable TOKENFILE or CONFIGFILE), and a
 * collector that answers but refuses this configuration (its token, its hello) when the
 * configuration is the one this install wrote. What does not: a collector that cannot be reached
 * now. It may come later, or the network may not be up yet when a GPO installs at boot; the service
 * runs, spools, keeps retrying, and writes event 2002 to the Application log if it stays unreachable.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, win32 } from 'node:path';
import { RasmonError } from '@rasmon/protocol/kit';
import { Document, isMap, parseDocument } from 'yaml';
import { collectorLine } from './check.js';
import {
  AgentConfigError,
  connectionSettings,
  inConfigFile,
  loadAgentConfig,
  readToken,
  tokenOf,
  type AgentConfig,
} from './config.js';
import { describeSid, untrustedReaders } from './windows/dacl.js';
import {
  checkAncestors,
  ForeignOwnerError,
  getDacl,
  isPrivateFolder,
  lockDirectory,
  lockFile,
  UnsafeAncestorError,
} from './windows/file-lock.js';
import { koffiDirectory, removeStaleKoffiCopies } from './windows/koffi-loader.js';
import { configureRecovery } from './windows/service-manager.js';
import { serviceLogFile } from './windows/service-run.js';

export class ServiceSetupError extends RasmonError {
  constructor(message: string) {
    super('RASMON_SERVICE_SETUP', message);
    this.name = 'ServiceSetupError';
  }
}

/** The environment variable the MSI's custom action hands the TOKEN property in (never argv). */
export const SETUP_TOKEN_VARIABLE = 'RASMON_SETUP_TOKEN';

/** The MSI's public properties, as the custom action passes them ('' when not given). */
export interface SetupProperties {
  collector?: string | undefined;
  farm?: string | undefined;
  token?: string | undefined;
  tokenFile?: string | undefined;
  host?: string | undefined;
  source?: string | undefined;
  configFile?: string | undefined;
}

/** Where the MSI keeps the agent's files: ProgramData\rasmon. */
export interface DataPaths {
  dir: string;
  config: string;
  token: string;
  spool: string;
}

export function dataPaths(dir: string): DataPaths {
  if (!win32.isAbsolute(dir)) throw new ServiceSetupError(`--data-dir must be an absolute path (${dir})`);
  const root = win32.resolve(dir);
  return {
    dir: root,
    config: win32.join(root, 'agent.yaml'),
    token: win32.join(root, 'token'),
    spool: win32.join(root, 'spool'),
  };
}

/** What setup will write: the configuration's text and, when this install brings one, the token. */
export interface ComposedConfig {
  text: string;
  token?: string;
  /** Where the configuration comes from, for the log. */
  origin: 'properties' | 'configfile' | 'kept' | 'kept+properties';
}

const PROPERTY_NAMES: Record<keyof SetupProperties, string> = {
  collector: 'COLLECTOR',
  farm: 'FARM',
  token: 'TOKEN',
  tokenFile: 'TOKENFILE',
  host: 'HOSTNAME',
  source: 'SOURCE',
  configFile: 'CONFIGFILE',
};

/** The properties given, '' and whitespace meaning not given. */
function given(properties: SetupProperties): SetupProperties {
  const out: SetupProperties = {};
  for (const key of Object.keys(PROPERTY_NAMES) as Array<keyof SetupProperties>) {
    const value = key === 'token' ? properties[key] : properties[key]?.trim();
    if (value !== undefined && value.trim() !== '') out[key] = value;
  }
  return out;
}

function tokenFrom(properties: SetupProperties, readFile: (path: string) => string): string | undefined {
  if (properties.token !== undefined) {
    const token = tokenOf(properties.token);
    if (!token) throw new ServiceSetupError('TOKEN: is empty');
    return token;
  }
  if (properties.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFile(properties.tokenFile);
    } catch {
      throw new ServiceSetupError(`TOKENFILE: ${properties.tokenFile} cannot be read`);
    }
    const token = tokenOf(text);
    if (!token) throw new ServiceSetupError(`TOKENFILE: ${properties.tokenFile} is empty`);
    return token;
  }
  return undefined;
}

/**
 * The configuration setup writes, from the properties and what an earlier install left
 * (`existing`, the text of agent.yaml, kept across upgrades): CONFIGFILE replaces it; the other
 * properties update the keys they name (comments and other keys stay); none at all keeps it.
 * The token, when given, is copied to the data folder and the configuration points there.
 */
export function composeConfig(
  properties: SetupProperties,
  paths: DataPaths,
  existing: string | undefined,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): ComposedConfig {
  const props = given(properties);
  if (props.token !== undefined && props.tokenFile !== undefined)
    throw new ServiceSetupError('TOKEN and TOKENFILE: give one of them, not both');
  if (props.configFile !== undefined) {
    const others = (Object.keys(props) as Array<keyof SetupProperties>).filter((key) => key !== 'configFile');
    if (others.length > 0) {
      throw new ServiceSetupError(
        `CONFIGFILE replaces the other properties (${others.map((key) => PROPERTY_NAMES[key]).join(', ')}): give CONFIGFILE alone, with its own tokenFile`,
      );
    }
    if (!win32.isAbsolute(props.configFile))
      throw new ServiceSetupError(`CONFIGFILE: must be an absolute path (${props.configFile})`);
    let text: string;
    try {
      text = readFile(props.configFile);
    } catch (err) {
      throw new ServiceSetupError(`CONFIGFILE: ${props.configFile} cannot be read (${(err as Error).message})`);
    }
    return { text, origin: 'configfile' };
  }
  if (Object.keys(props).length === 0) {
    if (existing === undefined) {
      throw new ServiceSetupError(
        'no configuration: give COLLECTOR, FARM and TOKEN or TOKENFILE (or CONFIGFILE) on the msiexec command line',
      );
    }
    return { text: existing, origin: 'kept' };
  }
  const token = tokenFrom(props, readFile);
  const parsed = parseDocument(existing ?? '');
  if (parsed.errors.length > 0)
    throw new ServiceSetupError(`${paths.config}: not YAML, cannot update it (${parsed.errors[0]!.message})`);
  // Nothing but comments, or nothing at all: start from an empty mapping.
  const doc: Document = parsed.contents === null ? new Document({}) : parsed;
  if (!isMap(doc.contents)) throw new ServiceSetupError(`${paths.config}: must hold a mapping of settings`);
  if (props.collector !== undefined) doc.set('collector', props.collector);
  if (props.farm !== undefined) doc.set('farm', props.farm);
  if (props.host !== undefined) doc.set('host', props.host);
  if (props.source !== undefined) doc.set('source', props.source);
  if (token !== undefined) doc.set('tokenFile', paths.token);
  if (existing === undefined) {
    if (props.source === undefined) doc.set('source', 'wts');
    doc.setIn(['spool', 'dir'], paths.spool);
  }
  const missing = (['collector', 'farm', 'tokenFile'] as const).filter((key) => !doc.has(key));
  if (missing.length > 0) {
    const names = { collector: 'COLLECTOR', farm: 'FARM', tokenFile: 'TOKEN or TOKENFILE' };
    throw new ServiceSetupError(
      `missing ${missing.map((key) => names[key]).join(', ')}: a new install needs COLLECTOR, FARM and TOKEN or TOKENFILE (or CONFIGFILE)`,
    );
  }
  return {
    text: doc.toString(),
    ...(token !== undefined ? { token } : {}),
    origin: existing === undefined ? 'properties' : 'kept+properties',
  };
}

/**
 * The configuration as the service will read it, checked as `service install` checks it: valid,
 * the connection settings there, every path absolute (the service starts in System32), the token
 * readable. `token` is the one about to be written, not yet on disk.
 */
export function checkComposed(configPath: string, token: string | undefined): AgentConfig {
  const config = loadAgentConfig(configPath);
  const settings = serviceSettings(config);
  if (token === undefined) readToken(settings.tokenFile, config);
  return config;
}

/**
 * The connection settings of a configuration the service is to run, with every path it names
 * absolute: the service starts in %SystemRoot%\System32, where a relative path would point.
 */
export function serviceSettings(config: AgentConfig): ReturnType<typeof connectionSettings> {
  const settings = connectionSettings(config);
  for (const [key, path] of [
    ['tokenFile', settings.tokenFile],
    ['spool.dir', config.spool.dir],
    ['tls.ca', config.tls?.ca],
    ['tls.cert', config.tls?.cert],
    ['tls.key', config.tls?.key],
  ] as const) {
    if (path !== undefined && !win32.isAbsolute(path))
      throw new AgentConfigError(
        inConfigFile(
          config,
          `${key}: must be an absolute path for the service, which starts in System32 (got ${path})`,
        ),
      );
  }
  return settings;
}

export interface SetupOptions {
  dataDir: string;
  properties: SetupProperties;
}

/** `service setup`: writes, checks and locks the configuration; see the file's comment. */
export async function setupService(options: SetupOptions, write: (line: string) => void): Promise<number> {
  const paths = dataPaths(options.dataDir);
  const existing = existsSync(paths.config) ? readFileSync(paths.config, 'utf8') : undefined;
  const composed = composeConfig(options.properties, paths, existing);
  const created = !existsSync(paths.dir);
  // Locked before anything goes in: what is written there inherits SYSTEM and Administrators only.
  // A folder someone else created first is refused (ForeignOwnerError) and left as it is.
  mkdirSync(paths.dir, { recursive: true });
  refuseForeign(() => lockDirectory(paths.dir));
  // Checked from a file beside the real one, so that a refused configuration replaces nothing.
  const candidate = win32.join(paths.dir, 'agent.new.yaml');
  let config: AgentConfig;
  try {
    writeFileSync(candidate, composed.text);
    try {
      config = checkComposed(candidate, composed.token);
    } catch (err) {
      if (err instanceof AgentConfigError)
        throw new ServiceSetupError(`configuration ${describeOrigin(composed, paths)}: ${err.message}`);
      throw err;
    }
    const check = await collectorLine(config, composed.token ?? readToken(config.tokenFile!));
    // An answer that says no will say no again; silence may end. A kept configuration is not
    // refused here: the upgrade goes on, and the service reports it as before.
    const refused = !check.ok && /: refused /.test(check.text);
    if (refused && composed.origin !== 'kept')
      throw new ServiceSetupError(`${check.text}: not installed (check COLLECTOR, FARM and the token)`);
    if (composed.token !== undefined) writeFileSync(paths.token, `${composed.token}\n`);
    writeFileSync(paths.config, composed.text);
    write(`configuration ${paths.config}: ${describeOrigin(composed, paths)}`);
    write(
      `farm ${config.farm}, host ${config.host}, source ${config.source}, collector ${config.collector}, token file ${config.tokenFile}`,
    );
    write(
      check.ok
        ? check.text
        : `WARNING ${check.text}; installed anyway: the service keeps retrying and spools meanwhile (Application log event ${refused ? 2001 : 2002} if this lasts)`,
    );
  } catch (err) {
    // A refused first install leaves no folder behind; an earlier install's files stay as they were.
    if (created) rmSync(paths.dir, { recursive: true, force: true });
    throw err;
  } finally {
    rmSync(candidate, { force: true });
  }
  for (const line of lockFiles(paths, config)) write(line);
  configureRecovery((line) => write(`note: ${line}`));
  write('service rasmon-agent: restarted 10 s, 60 s and 5 minutes after a failure (count reset after a day)');
  return 0;
}

/** Who besides SYSTEM and Administrators can read `path`, as a line for the log. */
function readersLine(path: string): string {
  const readers = untrustedReaders(getDacl(path));
  return readers.length === 0
    ? `${path}: SYSTEM and Administrators only`
    : `WARNING ${path} is still readable by ${readers.map(describeSid).join(', ')} after locking it (a file system that keeps no Windows ACLs?)`;
}

/**
 * Locks the data folder (inherited by everything in it), its spool and logs folders, and the token
 * file; a token file the admin's own configuration keeps elsewhere is locked when it can be.
 */
function lockFiles(paths: DataPaths, config: AgentConfig): string[] {
  const lines: string[] = [];
  const runtime = koffiDirectory(config.spool.dir);
  for (const dir of [paths.dir, config.spool.dir, dirname(serviceLogFile(config)), runtime]) {
    mkdirSync(dir, { recursive: true });
    refuseForeign(() => {
      lockDirectory(dir);
      checkAncestors(dir);
    });
    lines.push(readersLine(dir));
  }
  if (isPrivateFolder(runtime)) removeStaleKoffiCopies(runtime);
  const tokenFile = config.tokenFile!;
  try {
    refuseForeign(() => lockFile(tokenFile));
    lines.push(readersLine(tokenFile));
  } catch (err) {
    if (err instanceof ServiceSetupError) throw err;
    lines.push(`WARNING token file ${tokenFile} cannot be locked (${(err as Error).message}): others may read it`);
  }
  return lines;
}

/**
 * Runs a lock; an entry someone else owns, or a folder above it others could rearrange, fails the
 * install with what to do.
 */
function refuseForeign(lock: () => void): void {
  try {
    lock();
  } catch (err) {
    if (err instanceof ForeignOwnerError || err instanceof UnsafeAncestorError)
      throw new ServiceSetupError(`${err.message}: not installed`);
    throw err;
  }
}

function describeOrigin(composed: ComposedConfig, paths: DataPaths): string {
  switch (composed.origin) {
    case 'properties':
      return 'written from the properties';
    case 'configfile':
      return 'copied from CONFIGFILE';
    case 'kept':
      return `kept from the earlier install (${paths.config})`;
    case 'kept+properties':
      return 'kept from the earlier install, updated from the properties';
  }
}

/**
 * `service remove-data`: the MSI's uninstall with REMOVEDATA=1, once the service is gone; only a
 * data folder still private to SYSTEM and Administrators is removed.
 */
export function removeData(dataDir: string, write: (line: string) => void): number {
  const paths = dataPaths(dataDir);
  if (!existsSync(paths.dir)) {
    write(`${paths.dir}: already absent`);
    return 0;
  }
  // Removed whole only when nobody else can change it: in a folder others may write to, a junction
  // put there mid-delete would send this SYSTEM delete anywhere.
  if (!isPrivateFolder(paths.dir)) {
    write(
      `WARNING ${paths.dir}: not removed, others can change it (not locked by this agent's install); delete it by hand as an administrator`,
    );
    return 0;
  }
  rmSync(paths.dir, { recursive: true, force: true });
  write(`${paths.dir}: removed (configuration, token, spool and logs)`);
  return 0;
}
