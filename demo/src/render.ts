/** The demo's live table: one line per farm, from the collector's own API. */

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
  return [`${new Date(now).toISOString().slice(11, 19)} UTC`, line(header), ...rows.map(line)].join('\n');
}
