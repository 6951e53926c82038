/**
 * `rasmon-agent service install --config FILE | uninstall | status | run --config FILE`.
 * Install checks the configuration, locks the token file, the spool, log and runtime directories to
 * SYSTEM and Administrators, owner Administrators (or refuses when the token file cannot be locked,
 * or when someone else owns one of them), registers the Event Log
 * source, creates the service and starts it.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as sea from 'node:sea';
import { RasmonError } from '@rasmon/protocol/kit';
import { createAgentLogger } from './agent-log.js';
import { agentFromConfig } from './agent-setup.js';
import {
  removeData,
  serviceSettings,
  setupService,
  SETUP_TOKEN_VARIABLE,
  type SetupProperties,
} from './service-setup.js';
import { RotatingFile } from './rotating-file.js';
import { loadAgentConfig, readToken, type AgentConfig } from './config.js';
import { serviceCommandLine } from './windows/command-line.js';
import { describeSid, untrustedReaders } from './windows/dacl.js';
import { eventSourceRegistered, registerEventSource, unregisterEventSource } from './windows/event-log.js';
import {
  checkAncestors,
  ForeignOwnerError,
  getDacl,
  isPrivateFolder,
  lockDirectory,
  lockFile,
  UnsafeAncestorError,
} from './windows/file-lock.js';
import { koffiDirectory, removeStaleKoffiCopies, useKoffiDirectory } from './windows/koffi-loader.js';
import { installService, SERVICE_NAME, serviceStatus, uninstallService } from './windows/service-manager.js';
import { runService, serviceLogFile, type StartServiceAgent } from './windows/service-run.js';
import { SERVICE_RUNNING } from './windows/service-state.js';

export class ServiceCommandError extends RasmonError {
  constructor(message: string) {
    super('RASMON_SERVICE_COMMAND', message);
    this.name = 'ServiceCommandError';
  }
}

export const SERVICE_USAGE = `Usage:
  rasmon-agent service install --config FILE [--allow-readable-token]
                                               create the service rasmon-agent (LocalSystem, automatic
                                               start, restarted on failure) and start it; refused when
                                               the token file cannot be locked, unless allowed
  rasmon-agent service uninstall               stop and remove it (config, token and spool stay)
  rasmon-agent service status                  print its state (exit 0 running, 3 not running,
                                               4 not installed)
  rasmon-agent service run --config FILE       what the service runs (started by Windows only)
  rasmon-agent service setup --data-dir DIR [--collector URL] [--farm ID] [--token-file FILE]
               [--host NAME] [--source S] [--config-file FILE]
                                               what rasmon-agent.msi runs once it has created the
                                               service: write and lock DIR\\agent.yaml and its token
                                               (token also from ${SETUP_TOKEN_VARIABLE}), set the
                                               recovery actions, try the collector
  rasmon-agent service remove-data --data-dir DIR
                                               what the MSI's uninstall runs with REMOVEDATA=1`;

/** The program and leading arguments that start this agent again: the exe, or node and its script. */
function selfCommand(): { program: string; args: string[] } {
  if (sea.isSea()) return { program: process.execPath, args: [] };
  return { program: process.execPath, args: [resolve(process.argv[1]!)] };
}

export interface ServiceCommandOptions {
  /** Install even when the token file stays readable by others (a file system without Windows ACLs). */
  allowReadableToken?: boolean;
  /** setup and remove-data: the MSI's data folder (ProgramData\rasmon). */
  dataDir?: string | undefined;
  /** setup: the MSI's properties (the token comes from the environment). */
  properties?: SetupProperties;
}

/**
 * Locks the token file (owner Administrators, SYSTEM and Administrators only) and reads its DACL
 * back; refuses the install when someone else owns it, and when it is still readable by others,
 * unless told to allow that (then says so).
 */
function secureTokenFile(path: string, options: ServiceCommandOptions, write: (line: string) => void): void {
  const before = untrustedReaders(getDacl(path));
  let failure: string;
  try {
    lockFile(path);
    const still = untrustedReaders(getDacl(path));
    if (still.length === 0) {
      write(
        before.length === 0
          ? `token file ${path}: owned by Administrators, only SYSTEM and Administrators can read it`
          : `token file ${path}: was readable by ${before.map(describeSid).join(', ')}; now owned by Administrators, SYSTEM and Administrators only`,
      );
      return;
    }
    failure = `is still readable by ${still.map(describeSid).join(', ')} after locking it (a file system that keeps no Windows ACLs?)`;
  } catch (err) {
    if (err instanceof ForeignOwnerError) throw new ServiceCommandError(`${err.message}: not installed`);
    failure = `is readable by ${before.map(describeSid).join(', ')} and cannot be locked (${(err as Error).message})`;
  }
  if (!options.allowReadableToken) {
    throw new ServiceCommandError(
      `token file ${path} ${failure}: not installed (move it to an NTFS volume, or pass --allow-readable-token)`,
    );
  }
  write(`WARNING token file ${path} ${failure}; installing anyway (--allow-readable-token)`);
}

/**
 * Creates and locks one of the agent's folders; refused when someone else owns it, or when a folder
 * above it would let someone else move it away and put their own in its place.
 */
function secureFolder(dir: string, write: (line: string) => void): void {
  mkdirSync(dir, { recursive: true });
  try {
    lockDirectory(dir);
    checkAncestors(dir);
  } catch (err) {
    if (err instanceof ForeignOwnerError || err instanceof UnsafeAncestorError)
      throw new ServiceCommandError(`${err.message}: not installed`);
    throw err;
  }
  const readers = untrustedReaders(getDacl(dir));
  write(
    readers.length === 0
      ? `${dir}: owned by Administrators, SYSTEM and Administrators only`
      : `WARNING ${dir} is still readable by ${readers.map(describeSid).join(', ')} after locking it (a file system that keeps no Windows ACLs?)`,
  );
}

async function install(
  configFile: string,
  options: ServiceCommandOptions,
  write: (line: string) => void,
): Promise<number> {
  const configPath = resolve(configFile);
  const config = loadAgentConfig(configPath);
  const settings = serviceSettings(config);
  const tokenFile = settings.tokenFile;
  readToken(tokenFile, config);
  const self = selfCommand();
  const commandLine = serviceCommandLine(self.program, configPath, self.args);

  secureTokenFile(tokenFile, options, write);
  for (const dir of [config.spool.dir, dirname(serviceLogFile(config))]) secureFolder(dir, write);
  const runtime = koffiDirectory(config.spool.dir);
  secureFolder(runtime, write);
  if (isPrivateFolder(runtime)) removeStaleKoffiCopies(runtime);
  registerEventSource();
  write(`event source ${SERVICE_NAME} registered in the Application log`);
  const state = await installService(commandLine, (line) => write(`note: ${line}`));
  if (state.state !== SERVICE_RUNNING) {
    write(
      `service ${SERVICE_NAME} installed but ${state.name} (exit code ${state.serviceExitCode || state.exitCode}); see the Application log and ${serviceLogFile(config)}`,
    );
    return 1;
  }
  write(`service ${SERVICE_NAME} installed and running (pid ${state.pid}): ${commandLine}`);
  return 0;
}

async function uninstall(write: (line: string) => void): Promise<number> {
  const { removed } = await uninstallService();
  if (eventSourceRegistered()) unregisterEventSource();
  write(
    removed
      ? `service ${SERVICE_NAME} stopped and removed; its configuration, token and spool are left in place`
      : `service ${SERVICE_NAME} is not installed`,
  );
  return 0;
}

function status(write: (line: string) => void): number {
  const state = serviceStatus();
  if (!state) {
    write(`${SERVICE_NAME}: not installed`);
    return 4;
  }
  const exit = state.serviceExitCode || state.exitCode;
  write(
    `${SERVICE_NAME}: ${state.name}${state.pid ? ` (pid ${state.pid})` : ''}${state.state !== SERVICE_RUNNING && exit ? `, last exit code ${exit}` : ''}`,
  );
  return state.state === SERVICE_RUNNING ? 0 : 3;
}

/** The agent the service runs: built from the configuration, its link's news sent to the alerts. */
function serviceAgent(config: AgentConfig): StartServiceAgent {
  return async (log, alerts) => {
    const agent = await agentFromConfig(config, log, { onPoll: (err) => alerts.polled(err) });
    try {
      await agent.start();
    } catch (err) {
      await agent.stop().catch(() => undefined);
      throw err;
    }
    agent.connection.on('welcome', () => alerts.connected());
    agent.connection.on('down', () => alerts.disconnected());
    agent.connection.on('refused', (status) => {
      if (status === 401) alerts.tokenRefused();
    });
    agent.connection.on('rejected', (code, message) => {
      if (code === 'forbidden') alerts.helloRefused(message);
    });
    return agent;
  };
}

/** Runs one service subcommand; resolves with the exit code. */
export async function serviceCommand(
  sub: string | undefined,
  configFile: string | undefined,
  write: (line: string) => void,
  options: ServiceCommandOptions = {},
): Promise<number> {
  if (process.platform !== 'win32') throw new ServiceCommandError('the service commands exist only on Windows');
  switch (sub) {
    case 'install':
      if (!configFile) throw new ServiceCommandError('service install needs --config FILE');
      return install(configFile, options, write);
    case 'uninstall':
      return uninstall(write);
    case 'status':
      return status(write);
    case 'setup': {
      if (!options.dataDir) throw new ServiceCommandError('service setup needs --data-dir DIR');
      const token = process.env[SETUP_TOKEN_VARIABLE];
      delete process.env[SETUP_TOKEN_VARIABLE];
      return setupService({ dataDir: options.dataDir, properties: { ...options.properties, token } }, write);
    }
    case 'remove-data':
      if (!options.dataDir) throw new ServiceCommandError('service remove-data needs --data-dir DIR');
      return removeData(options.dataDir, write);
    case 'run': {
      if (!configFile) throw new ServiceCommandError('service run needs --config FILE');
      const config = loadAgentConfig(resolve(configFile));
      // Locked by install: the one folder the service loads koffi's module from.
      useKoffiDirectory(koffiDirectory(config.spool.dir));
      return runService(config, serviceAgent(config), (file) => {
        const out = new RotatingFile(file, { maxBytes: config.log.maxBytes, maxFiles: config.log.maxFiles });
        return {
          log: createAgentLogger({ format: config.log.format ?? 'json', destination: out }),
          close: () => out.close(),
        };
      });
    }
    default:
      throw new ServiceCommandError(
        `${sub === undefined ? 'missing' : `unknown`} service command${sub ? ` "${sub}"` : ''}\n${SERVICE_USAGE}`,
      );
  }
}
