/**
 * `rasmon-agent --config FILE` runs the agent; `rasmon-agent sessions [--config FILE] [--source S]
 * [--input FILE]` prints the sessions the agent sees now, as the JSON it would send, and exits.
 * Bad configuration: one line naming the key, exit code 2.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRootLogger } from '@rasmon/protocol/kit';
import { pino } from 'pino';
import { Agent } from './agent.js';
import { AgentConfigError, connectionSettings, loadAgentConfig, readToken, type AgentConfig } from './config.js';
import { createSource } from './create-source.js';
import { AgentMetrics } from './metrics.js';
import { VERSION } from './version.js';

const USAGE = `Usage:
  rasmon-agent [--config FILE] [options]        run the agent
  rasmon-agent sessions [--config FILE] [--source S] [--input FILE]
                                                print the sessions this host has now, and exit

Options (each overrides the config file):
  -c, --config FILE        agent configuration, YAML or JSON
      --collector URL      ws:// or wss:// address of the collector
      --token-file FILE    file holding the agent token (first line)
      --farm ID            farm this host belongs to
      --host NAME          this host's name (default: the machine's name)
      --source S           wts | quser | command | simulate
      --spool-dir DIR      where unacked events are kept
      --input FILE         (sessions) read a saved quser/qwinsta or command output
  -h, --help               show this help
  -v, --version            show the version`;

function fail(message: string, code = 2): never {
  process.stderr.write(`rasmon-agent: ${message}\n`);
  process.exit(code);
}

function readPem(path: string | undefined, key: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch {
    throw new AgentConfigError(`${key}: ${path} cannot be read`);
  }
}

export async function main(argv: string[]): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  if (values.version) return void process.stdout.write(`${VERSION}\n`);
  const command = positionals[0];
  if (command !== undefined && command !== 'sessions') fail(`unknown command "${command}"\n${USAGE}`);
  if (command !== 'sessions' && values.input) fail('--input belongs to the sessions command');

  let config: AgentConfig;
  try {
    config = loadAgentConfig(values.config, {
      collector: values.collector,
      tokenFile: values['token-file'],
      farm: values.farm,
      host: values.host,
      source: values.source,
      spoolDir: values['spool-dir'],
    });
  } catch (err) {
    if (err instanceof AgentConfigError) fail(err.message);
    throw err;
  }

  // sessions prints its JSON on stdout; what the source logs meanwhile goes to stderr.
  const log = createRootLogger('rasmon-agent', {}, command === 'sessions' ? pino.destination(2) : undefined);

  if (command === 'sessions') {
    try {
      const source = createSource(config, log, values.input);
      const sessions = await source.list(Date.now());
      process.stdout.write(`${JSON.stringify(sessions, null, 2)}\n`);
    } catch (err) {
      if (err instanceof AgentConfigError) fail(err.message);
      fail(`cannot read the sessions (source ${config.source}): ${(err as Error).message}`, 1);
    }
    return;
  }

  let agent: Agent;
  try {
    const settings = connectionSettings(config);
    const token = readToken(settings.tokenFile);
    const metrics = new AgentMetrics();
    if (config.metrics) {
      const [host = '127.0.0.1', port = '9421'] = config.metrics.listen.split(':');
      await metrics.serve(host || '127.0.0.1', Number(port));
    }
    const ca = readPem(config.tls?.ca, 'tls.ca');
    const cert = readPem(config.tls?.cert, 'tls.cert');
    const key = readPem(config.tls?.key, 'tls.key');
    agent = new Agent({
      source: createSource(config, log),
      spool: config.spool,
      pollIntervalSeconds: config.pollIntervalSeconds,
      snapshotIntervalSeconds: config.snapshotIntervalSeconds,
      log,
      metrics,
      link: {
        url: settings.collector,
        token,
        farm: settings.farm,
        host: config.host,
        agent: `rasmon-agent/${VERSION}`,
        backoff: { initialMs: config.reconnect.initialSeconds * 1000, maxMs: config.reconnect.maxSeconds * 1000 },
        supersededDelayMs: config.reconnect.supersededSeconds * 1000,
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
      },
    });
  } catch (err) {
    if (err instanceof AgentConfigError) fail(err.message);
    throw err;
  }
  log.info({ farm: config.farm, host: config.host, source: config.source, collector: config.collector }, 'agent starting');
  await agent.start();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'agent stopping');
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      collector: { type: 'string' },
      'token-file': { type: 'string' },
      farm: { type: 'string' },
      host: { type: 'string' },
      source: { type: 'string' },
      'spool-dir': { type: 'string' },
      input: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
}
