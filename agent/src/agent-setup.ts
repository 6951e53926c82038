/**
 * Builds the running agent from its configuration: what `rasmon-agent --config FILE` and the
 * Windows service (`service run`) both start.
 */
import type { Logger } from 'pino';
import { Agent, type AgentOptions } from './agent.js';
import {
  AgentConfigError,
  connectionSettings,
  inConfigFile,
  insecureCollector,
  readConfiguredFile,
  readToken,
  type AgentConfig,
} from './config.js';
import { WindowsOnlyError } from './windows/windows-only.js';
import { createSource } from './create-source.js';
import { loadHostKey } from './link/host-key.js';
import { AgentMetrics } from './metrics.js';
import { VERSION } from './version.js';

function readPem(config: AgentConfig, path: string | undefined, key: string, what: string): Buffer | undefined {
  return path ? readConfiguredFile(config, key, path, what) : undefined;
}

/** The TLS material of `tls.*`, read from disk; errors name the file, the key and what to do. */
export function tlsOptions(config: AgentConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const ca = readPem(
    config,
    config.tls?.ca,
    'tls.ca',
    "the PEM certificate of the CA that signed the collector's certificate",
  );
  const cert = readPem(config, config.tls?.cert, 'tls.cert', "this agent's PEM client certificate");
  const key = readPem(config, config.tls?.key, 'tls.key', "the PEM private key of this agent's client certificate");
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/**
 * The host key of the agent's spool directory, made at its first start (docs/design.md §6). On
 * Windows the new file gets the token file's lock; a lock that fails is logged, not fatal: the key
 * alone, without the farm's token, speaks for nothing.
 */
export async function hostKeyOf(config: AgentConfig, log: Logger): Promise<string> {
  let secure: ((path: string) => void) | undefined;
  if (process.platform === 'win32') {
    const { lockFile } = await import('./windows/file-lock.js');
    secure = (path) => {
      try {
        lockFile(path);
      } catch (err) {
        log.warn({ err, path }, 'could not lock the host key file to SYSTEM and Administrators');
      }
    };
  }
  return loadHostKey(config.spool.dir, { log, ...(secure ? { secure } : {}) });
}

/** The agent, its metrics served when `metrics.listen` is set; not started. */
export async function agentFromConfig(
  config: AgentConfig,
  log: Logger,
  hooks: Pick<AgentOptions, 'onPoll'> = {},
): Promise<Agent> {
  const settings = connectionSettings(config);
  if (insecureCollector(settings.collector)) {
    log.warn(
      { collector: settings.collector },
      'allowInsecure: the token and user names go to a collector on another machine in clear (ws://); use wss:// outside a lab',
    );
  }
  if ((config.source === 'wts' || config.source === 'quser') && process.platform !== 'win32')
    throw new AgentConfigError(inConfigFile(config, `source: ${new WindowsOnlyError(config.source).message}`));
  const token = readToken(settings.tokenFile, config);
  const hostKey = await hostKeyOf(config, log);
  const metrics = new AgentMetrics({ version: VERSION, source: config.source });
  const tls = tlsOptions(config);
  if (config.metrics) {
    const [host = '127.0.0.1', port = '9421'] = config.metrics.listen.split(':');
    await metrics.serve(host || '127.0.0.1', Number(port));
  }
  return new Agent({
    source: createSource(config, log),
    spool: config.spool,
    pollIntervalSeconds: config.pollIntervalSeconds,
    snapshotIntervalSeconds: config.snapshotIntervalSeconds,
    log,
    metrics,
    ...hooks,
    link: {
      url: settings.collector,
      token,
      farm: settings.farm,
      host: config.host,
      hostKey,
      agent: `rasmon-agent/${VERSION}`,
      backoff: { initialMs: config.reconnect.initialSeconds * 1000, maxMs: config.reconnect.maxSeconds * 1000 },
      supersededDelayMs: config.reconnect.supersededSeconds * 1000,
      drainSpreadMs: Math.min(config.reconnect.drainSpreadSeconds, config.reconnect.maxSeconds) * 1000,
      ...tls,
    },
  });
}
