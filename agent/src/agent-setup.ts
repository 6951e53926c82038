/**
 * Builds the running agent from its configuration: what `rasmon-agent --config FILE` and the
 * Windows service (`service run`) both start.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Agent, type AgentOptions } from './agent.js';
import { AgentConfigError, connectionSettings, readToken, type AgentConfig } from './config.js';
import { createSource } from './create-source.js';
import { AgentMetrics } from './metrics.js';
import { VERSION } from './version.js';

function readPem(path: string | undefined, key: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch {
    throw new AgentConfigError(`${key}: ${path} cannot be read`);
  }
}

/** The TLS material of `tls.*`, read from disk; errors name the key. */
export function tlsOptions(config: AgentConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const ca = readPem(config.tls?.ca, 'tls.ca');
  const cert = readPem(config.tls?.cert, 'tls.cert');
  const key = readPem(config.tls?.key, 'tls.key');
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/** The agent, its metrics served when `metrics.listen` is set; not started. */
export async function agentFromConfig(
  config: AgentConfig,
  log: Logger,
  hooks: Pick<AgentOptions, 'onPoll'> = {},
): Promise<Agent> {
  const settings = connectionSettings(config);
  const token = readToken(settings.tokenFile);
  const metrics = new AgentMetrics();
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
      agent: `rasmon-agent/${VERSION}`,
      backoff: { initialMs: config.reconnect.initialSeconds * 1000, maxMs: config.reconnect.maxSeconds * 1000 },
      supersededDelayMs: config.reconnect.supersededSeconds * 1000,
      ...tls,
    },
  });
}
