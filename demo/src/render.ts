/**
 * The demo's live table: one line per farm, from the collector's own API, and under it a line per
 * farm with a RAS broker: the sessions the broker lists, and RAS's count beside rasmon's.
 */

export interface FarmSummary {
  id: string;
  seats: number;
  users: number;
  overuseUsers: number;
  overuseAdmissions: number;
  peakUsersToday: number;
  state: string;
  graceEnd: string;
  hostsUp: number;
  hostsTotal: number;
  exemptConnections: number;
  overuseGrace: { started: boolean; endsAt: string | null; exhausted: boolean };
  deactivationRisk: boolean;
  /** RAS's own figures, for a farm with a broker (the API's `broker` block). */
  broker: BrokerSummary | null;
}

export interface BrokerSummary {
  up: boolean;
  lastPollAt: string | null;
  reason: string | null;
  /** RAS's count (`usersLicenseInfo`) at its last answer. */
  users: number | null;
  /** Sessions imported at its last answer, by source. */
  sessions: Record<string, number>;
}

function duration(ms: number): string {
  const hours = Math.max(0, Math.floor(ms / 3_600_000));
  return hours >= 24
    ? `${Math.floor(hours / 24)}d ${hours % 24}h`
    : `${hours}h ${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

function licenseText(farm: FarmSummary, now: number): string {
  if (farm.state === 'grace') return `grace, ${duration(Date.parse(farm.graceEnd) - now)} left`;
  return farm.state;
}

function overuseGraceText(farm: FarmSummary, now: number): string {
  const grace = farm.overuseGrace;
  if (farm.deactivationRisk) return 'EXHAUSTED: deactivation risk';
  if (!grace.started || grace.endsAt === null) return '-';
  if (grace.exhausted) return 'exhausted';
  return `running, ${duration(Date.parse(grace.endsAt) - now)} left`;
}

const SOURCE_NAMES: Readonly<Record<string, string>> = { vdi: 'VDI', pc: 'Remote PC', avd: 'AVD' };

/** `RAS broker of farm-a: 12 VDI and 2 Remote PC sessions; RAS counts 58, rasmon 58`. */
function brokerLine(farm: FarmSummary, broker: BrokerSummary): string {
  const head = `  RAS broker of ${farm.id}:`;
  if (broker.lastPollAt === null) return `${head} not polled yet`;
  const rasmon = `rasmon ${farm.users}`;
  if (!broker.up) {
    const last = broker.users === null ? 'no count yet' : `${broker.users} at its last answer`;
    return `${head} not answering (${broker.reason ?? 'no answer'}); RAS counted ${last}, ${rasmon}`;
  }
  const listed = Object.entries(broker.sessions)
    .filter(([, count]) => count > 0)
    .map(([source, count]) => `${count} ${SOURCE_NAMES[source] ?? source}`);
  const sessions =
    listed.length === 0
      ? 'no sessions'
      : `${[listed.slice(0, -1).join(', '), listed.at(-1)].filter(Boolean).join(' and ')} sessions`;
  if (broker.users === null) return `${head} ${sessions}; RAS has given no count, ${rasmon}`;
  const drift = broker.users === farm.users ? '' : ` (drift ${signed(farm.users - broker.users)})`;
  return `${head} ${sessions}; RAS counts ${broker.users}, ${rasmon}${drift}`;
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

export function renderFarms(farms: readonly FarmSummary[], now: number): string {
  const header = [
    'farm',
    'users/seats',
    'overuse',
    'admissions',
    'peak today',
    'exempt',
    'hosts up',
    'license',
    'overuse grace',
  ];
  const rows = farms.map((farm) => [
    farm.id,
    `${farm.users}/${farm.seats}`,
    String(farm.overuseUsers),
    String(farm.overuseAdmissions),
    String(farm.peakUsersToday),
    String(farm.exemptConnections),
    `${farm.hostsUp}/${farm.hostsTotal}`,
    licenseText(farm, now),
    overuseGraceText(farm, now),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) =>
        column === 0 || column >= 7 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!),
      )
      .join('  ')
      .trimEnd();
  const brokers = farms.flatMap((farm) => (farm.broker ? [brokerLine(farm, farm.broker)] : []));
  return [`${new Date(now).toISOString().slice(11, 19)} UTC`, line(header), ...rows.map(line), ...brokers].join('\n');
}
