/**
 * `rasmon-agent --config FILE` runs the agent; `rasmon-agent sessions [--config FILE] [--source S]
 * [--input FILE]` prints the sessions the agent sees now, as the JSON it would send, and exits;
 * `check` tests what the agent needs; `service ...` manages the Windows service.
 * Bad configuration: one line naming the key, exit code 2.
 */
import { parseArgs } from 'node:util';
import { pino, type LevelWithSilent } from 'pino';
import type { Agent } from './agent.js';
import { createAgentLogger } from './agent-log.js';
import { agentFromConfig } from './agent-setup.js';
import { runCheck } from './check.js';
import { AgentConfigError, loadAgentConfig, type AgentConfig } from './config.js';
import { createSource } from './create-source.js';
import { SpoolDirectoryError } from './link/private-files.js';
import { VERSION } from './version.js';

const USAGE = `Usage:
  rasmon-agent [--config FILE] [options]        run the agent
  rasmon-agent sessions [--config FILE] [--source S] [--input FILE]
                                                print the sessions this host has now, and exit
  rasmon-agent check --config FILE              check the token file, the source and the collector
                                                (a hello: a running agent reconnects after it),
                                                one line each; exit 1 if any failed
  rasmon-agent service install --config FILE [--allow-readable-token]
                                                (Windows) install and start the service rasmon-agent
  rasmon-agent service uninstall | status       (Windows) stop and remove it, or print its state
  rasmon-agent service setup | remove-data ...  (Windows) what rasmon-agent.msi runs
                                                ("rasmon-agent service" lists them)

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
  if (command === 'service')
    return serviceMain(positionals.slice(1), values.config, {
      allowReadableToken: values['allow-readable-token'] ?? false,
      dataDir: values['data-dir'],
      properties: {
        collector: values.collector,
        farm: values.farm,
        tokenFile: values['token-file'],
        host: values.host,
        source: values.source,
        configFile: values['config-file'],
      },
    });
  if (values['allow-readable-token']) fail('--allow-readable-token belongs to service install');
  if (values['data-dir'] || values['config-file']) fail('--data-dir and --config-file belong to service setup');
  if (command !== undefined && command !== 'sessions' && command !== 'check')
    fail(`unknown command "${command}"\n${USAGE}`);
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

  // check and sessions print their own output on stdout; what the source logs meanwhile goes to stderr.
  const quiet = command === 'check' || command === 'sessions';
  // Text for a person at a terminal, JSON when the lines go to a file or another program.
  const terminal = quiet ? process.stderr.isTTY : process.stdout.isTTY;
  const log = createAgentLogger({
    format: config.log.format ?? (terminal ? 'text' : 'json'),
    level: command === 'check' ? ((process.env.RASMON_LOG_LEVEL as LevelWithSilent | undefined) ?? 'warn') : undefined,
    ...(quiet ? { destination: pino.destination({ dest: 2, sync: true }) } : {}),
  });

  if (command === 'check') {
    try {
      process.exitCode = await runCheck(config, log, (line) => process.stdout.write(`${line}\n`));
    } catch (err) {
      if (err instanceof AgentConfigError) fail(err.message);
      throw err;
    }
    return;
  }

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
    agent = await agentFromConfig(config, log);
  } catch (err) {
    // The host key is made in the spool folder before the agent starts: the folder's checks come first.
    if (err instanceof AgentConfigError || err instanceof SpoolDirectoryError) fail(err.message);
    throw err;
  }
  log.info(
    { farm: config.farm, host: config.host, source: config.source, collector: config.collector },
    'agent starting',
  );
  try {
    await agent.start();
  } catch (err) {
    if (err instanceof SpoolDirectoryError) fail(err.message);
    throw err;
  }
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

/** `service <sub>`: loaded only when used, so the Linux agent never touches the Windows modules. */
async function serviceMain(
  args: string[],
  configFile: string | undefined,
  options: import('./service-command.js').ServiceCommandOptions,
): Promise<void> {
  const { ServiceCommandError, serviceCommand } = await import('./service-command.js');
  const { ServiceSetupError } = await import('./service-setup.js');
  if (args.length > 1) fail(`unexpected argument "${args[1]}"`);
  try {
    process.exitCode = await serviceCommand(args[0], configFile, (line) => process.stdout.write(`${line}\n`), options);
    // The stopped service leaves nothing to wait for; koffi's callbacks would keep the loop alive.
    if (args[0] === 'run') process.exit();
  } catch (err) {
    if (err instanceof AgentConfigError || err instanceof ServiceCommandError || err instanceof ServiceSetupError)
      fail(err.message);
    fail((err as Error).message, 1);
  }
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
      'allow-readable-token': { type: 'boolean' },
      'data-dir': { type: 'string' },
      'config-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
}
