/**
 * `rasmon-collector check-broker --config FILE [--farm ID]`: what an admin runs first when a farm
 * names its RAS broker. Logs on to the broker's REST API, reads `/api/License` and `/api/RDSession`,
 * prints in plain words what RAS says, and logs off. Exit 0 when all of that worked, 1 with the
 * reason in one line when the broker failed, 2 on a bad command line or configuration.
 */
import { readFileSync } from 'node:fs';
import { BrokerError } from './broker/broker-error.js';
import type { RasLicense } from './broker/license-reader.js';
import { RasClient } from './broker/ras-client.js';
import type { SessionList, SessionSource } from './broker/session-reader.js';
import { parseFlags } from './cli-flags.js';
import { ConfigError, type FarmConfig } from './config/config.js';
import { loadConfig } from './config/config-loader.js';

export const CHECK_BROKER_USAGE = `Usage: rasmon-collector check-broker --config FILE [--farm ID]

Logs on to the farm's RAS broker (its ras: block), reads the license and the sessions RAS reports,
prints them, and logs off. --farm is needed when more than one farm names a broker.
Exit 0: the broker answered; 1: it did not (the reason is printed); 2: bad command line or config.`;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

class UsageProblem extends Error {}

function given(value: string | number | undefined, unit = ''): string {
  return value === undefined ? 'not given' : `${value}${unit}`;
}

function licenseText(license: RasLicense): string[] {
  const type =
    license.type === 'undocumented'
      ? `type ${JSON.stringify(license.undocumentedType)}, not one the RAS documents list`
      : given(license.type);
  const grace =
    license.gracePeriodState === undefined && license.gracePeriodDaysLeft === undefined
      ? 'none reported'
      : `${given(license.gracePeriodState)}, ${given(license.gracePeriodDaysLeft, ' days left')}`;
  const lines = [
    `License: ${given(license.licenseType)} (${type})`,
    `  seats (installedUsers): ${given(license.installedUsers)}`,
    `  in use now (usersLicenseInfo): ${given(license.usersLicenseInfo)}`,
    `  peak (usersPeak): ${given(license.usersPeak)}`,
    `  expires (expiryDate, the broker's calendar): ${given(license.expiryDate)}`,
    `  grace period: ${grace}`,
  ];
  if (license.billingPeriodStart !== undefined || license.billingPeriodEnd !== undefined) {
    lines.push(
      `  billing period: ${given(license.billingPeriodStart)} to ${given(license.billingPeriodEnd)}, ` +
        `usage today ${given(license.usageToday)}, this period ${given(license.currPeriodUsage)}`,
    );
  }
  if (license.needsAttention !== undefined) {
    lines.push(`  needs attention: ${license.needsAttention ? 'yes' : 'no'}`);
  }
  for (const [label, text] of [
    ['status', license.statusMessage],
    ['alert', license.alertMessage],
    ['license status', license.licenseStatus],
  ] as const) {
    if (text !== undefined) lines.push(`  ${label}: ${text.replace(/[\r\n]+/g, ' ')}`);
  }
  return lines;
}

const SOURCE_ORDER: SessionSource[] = ['rds', 'vdi', 'pc', 'other', 'undocumented'];

function sessionsText(list: SessionList, farm: FarmConfig, avd: SessionList | undefined): string[] {
  const counts = new Map<SessionSource, number>(SOURCE_ORDER.map((source) => [source, 0]));
  for (const session of list.sessions) counts.set(session.source, (counts.get(session.source) ?? 0) + 1);
  const lines = [
    `Sessions: ${list.sessions.length} (${SOURCE_ORDER.map((source) => `${source} ${counts.get(source)}`).join(', ')})`,
    '  by the session type RAS reports: AVD sessions are not told apart from RDS ones by it',
    ...(avd === undefined ? [] : [`  AVD (asked with Source=AVD): ${avd.sessions.length}`]),
    `  this farm counts broker sessions of: ${farm.ras!.sessions.length ? farm.ras!.sessions.join(', ') : 'none'}`,
  ];
  if (list.undocumentedTypes > 0) {
    lines.push(`  ${list.undocumentedTypes} with a type value the RAS documents do not list`);
  }
  if (list.rejected.length > 0) {
    const first = list.rejected[0]!;
    lines.push(`  ${list.rejected.length} set aside as malformed (first: ${first.field} ${first.problem})`);
  }
  return lines;
}

function pickFarm(farms: FarmConfig[], id: string | undefined): FarmConfig {
  const brokers = farms.filter((farm) => farm.ras !== undefined);
  if (id !== undefined) {
    const farm = farms.find((f) => f.id.toLowerCase() === id.toLowerCase());
    if (!farm)
      throw new UsageProblem(`farm ${id} is not in the configuration (farms: ${farms.map((f) => f.id).join(', ')})`);
    if (!farm.ras) throw new UsageProblem(`farm ${farm.id} has no ras: block`);
    return farm;
  }
  if (brokers.length === 0) throw new UsageProblem('no farm of the configuration has a ras: block');
  if (brokers.length > 1) {
    throw new UsageProblem(
      `several farms name a broker (${brokers.map((f) => f.id).join(', ')}): choose one with --farm`,
    );
  }
  return brokers[0]!;
}

/** Runs the command; returns its exit code. */
export async function runCheckBroker(argv: string[], io: Io): Promise<number> {
  let farm: FarmConfig;
  let ca: Buffer | undefined;
  try {
    const values = parseFlags(argv, { config: { type: 'string', short: 'c' }, farm: { type: 'string' } }, (message) => {
      throw new UsageProblem(`${message}\n${CHECK_BROKER_USAGE}`);
    });
    const config = loadConfig({ ...(values.config ? { path: values.config } : {}), env: io.env });
    farm = pickFarm(config.farms, values.farm);
  } catch (err) {
    if (err instanceof UsageProblem || err instanceof ConfigError) {
      io.err(`rasmon-collector check-broker: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const ras = farm.ras!;
  try {
    if (ras.ca !== undefined) ca = readFileSync(ras.ca);
  } catch (err) {
    io.err(`rasmon-collector check-broker: ras.ca ${ras.ca} cannot be read (${(err as NodeJS.ErrnoException).code})\n`);
    return 2;
  }
  const client = new RasClient({
    url: ras.url,
    username: ras.username,
    password: ras.password!,
    ca,
    timeoutMs: ras.timeoutSeconds * 1000,
  });
  io.out(`RAS broker ${ras.url} (farm ${farm.id})\n`);
  try {
    const license = await client.readLicense();
    const sessions = await client.readSessions();
    const avd = ras.sessions.includes('avd') ? await client.readSessions('AVD') : undefined;
    io.out(`${[...licenseText(license), ...sessionsText(sessions, farm, avd)].join('\n')}\n`);
    await client.logoff();
    io.out('Logged off.\n');
    return 0;
  } catch (err) {
    if (!(err instanceof BrokerError)) throw err;
    io.err(`rasmon-collector check-broker: ${err.reason}: ${err.message}\n`);
    // Leave no administrator session open on the broker; its own failure adds nothing to the reason.
    await client.logoff().catch(() => undefined);
    return 1;
  }
}
