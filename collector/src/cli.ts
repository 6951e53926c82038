/**
 * `rasmon-collector --config FILE`: loads and validates the configuration (a bad one prints one
 * line naming the key and exits 2), serves until SIGTERM or SIGINT (drains, exits 0), and
 * re-reads the farms on SIGHUP.
 */
import { CHECK_BROKER_USAGE, runCheckBroker } from './check-broker-command.js';
import { parseFlags } from './cli-flags.js';
import { Collector } from './collector.js';
import { ConfigError, type CollectorConfig } from './config/config.js';
import { loadConfig } from './config/config-loader.js';
import { forgetHost } from './forget-host-command.js';
import { correctDay } from './correct-command.js';
import { rebindHost } from './rebind-host-command.js';
import { createLogger } from './logger.js';
import { REPORT_USAGE, runReport } from './report-cli.js';
import { VERSION } from './version.js';

const USAGE = `Usage: rasmon-collector --config FILE
       rasmon-collector forget-host --config FILE --farm ID --host NAME
       rasmon-collector rebind-host --config FILE --farm ID --host NAME
       rasmon-collector correct --config FILE --farm ID --day YYYY-MM-DD --peak N --reason TEXT
       rasmon-collector report --config FILE [--from YYYY-MM-DD --to YYYY-MM-DD] [--format table|csv|json]
       rasmon-collector check-broker --config FILE [--farm ID]

Options:
  -c, --config FILE   collector configuration, YAML or JSON (default: $RASMON_CONFIG)
  -h, --help          show this help
  -v, --version       show the version

Environment: RASMON_CONFIG, REDIS_URL and RASMON_LISTEN (override the file), RASMON_LOG_LEVEL.
Signals: SIGHUP reloads the farms, SIGTERM drains and exits.`;

function fail(message: string): never {
  process.stderr.write(`rasmon-collector: ${message}\n`);
  process.exit(2);
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'forget-host') {
    process.exitCode = await forgetHost(argv.slice(1), fail);
    return;
  }
  if (argv[0] === 'correct') {
    process.exitCode = await correctDay(argv.slice(1), fail);
    return;
  }
  if (argv[0] === 'rebind-host') {
    process.exitCode = await rebindHost(argv.slice(1), fail);
    return;
  }
  if (argv[0] === 'report') {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${REPORT_USAGE}\n`);
      return;
    }
    const code = await runReport(argv.slice(1), {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      env: process.env,
    });
    // Let stdout drain into a pipe (a cron mail) before exiting.
    process.exitCode = code;
    return;
  }
  if (argv[0] === 'check-broker') {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${CHECK_BROKER_USAGE}\n`);
      return;
    }
    process.exitCode = await runCheckBroker(argv.slice(1), {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      env: process.env,
    });
    return;
  }
  const values = parseFlags(
    argv,
    {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
    (message) => fail(`${message}\n${USAGE}`),
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }

  const load = (): CollectorConfig =>
    loadConfig({ ...(values.config ? { path: values.config } : {}), env: process.env });
  let config: CollectorConfig;
  try {
    config = load();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }

  const log = createLogger();
  let collector: Collector;
  try {
    collector = await Collector.start({ config, log });
  } catch (err) {
    // A TLS file that is not PEM, a port in use: one line, exit 2, like any other bad setting.
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }

  process.on('SIGHUP', () => {
    try {
      collector.reload(load());
    } catch (err) {
      // A bad edit must not take a running collector down: keep serving with what was loaded.
      log.error({ err }, 'reload refused; configuration unchanged');
    }
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    collector.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
