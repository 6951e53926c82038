/** A simulated fleet: several hosts drawing on one user population, for the demo and load tests. */
import { Random } from './random.js';
import { SessionSimulator, share, type SimulationOptions } from './simulate.js';

/** Options of a simulated fleet of hosts sharing one user population. */
export interface FleetOptions {
  seed: number;
  /** Number of hosts, named `${hostPrefix}-01`, `-02`, … */
  hosts: number;
  /** Regular accounts `${domain}\user001`, …; each has a home host, and some a second host too. */
  users: number;
  /** Administrator accounts `${domain}\admin01`, …; administrators work on every host. */
  admins: number;
  /** Default `rdsh`. */
  hostPrefix?: string;
  /** Default `CORP`. */
  domain?: string;
  startMs: number;
  /** Share of regular users who also work on a second host. Default 0.25. */
  roaming?: number;
  /** Each host's `targetSessions` is its population times this. Default 0.5. */
  sessionsPerUser?: number;
  /** Rates and shares applied to every host (each host keeps its own seed, users and target). */
  perHost?: Partial<
    Omit<SimulationOptions, 'seed' | 'host' | 'users' | 'admins' | 'domain' | 'targetSessions' | 'startMs'>
  >;
}

/**
 * A fleet of simulated hosts over one user population: users spread evenly over home hosts, a
 * share of them on a second host as well, administrators on every host. Each host gets its own
 * seed drawn from `seed`, so the whole fleet replays from that one number.
 */
export function simulateFleet(options: FleetOptions): Array<{ host: string; simulator: SessionSimulator }> {
  const { hosts, users, admins } = options;
  if (!(Number.isSafeInteger(hosts) && hosts >= 1)) throw new RangeError('hosts: must be a positive integer');
  if (!(Number.isSafeInteger(users) && users >= 0)) throw new RangeError('users: must be a non-negative integer');
  if (!(Number.isSafeInteger(admins) && admins >= 0)) throw new RangeError('admins: must be a non-negative integer');
  const roaming = share(options.roaming, 0.25, 'roaming');
  const sessionsPerUser = options.sessionsPerUser ?? 0.5;
  if (!(Number.isFinite(sessionsPerUser) && sessionsPerUser > 0)) {
    throw new RangeError('sessionsPerUser: must be positive');
  }
  const rng = new Random(options.seed);
  const prefix = options.hostPrefix ?? 'rdsh';
  const domain = options.domain ?? 'CORP';
  const pad = (n: number, total: number, min: number) => String(n).padStart(Math.max(min, String(total).length), '0');

  const adminNames = Array.from({ length: admins }, (_, i) => `${domain}\\admin${pad(i + 1, admins, 2)}`);
  const populations: string[][] = Array.from({ length: hosts }, () => []);
  for (let i = 0; i < users; i++) {
    const name = `${domain}\\user${pad(i + 1, users, 3)}`;
    const home = i % hosts;
    populations[home]?.push(name);
    if (hosts > 1 && rng.chance(roaming)) populations[(home + rng.int(1, hosts - 1)) % hosts]?.push(name);
  }

  return populations.map((population, i) => {
    const host = `${prefix}-${pad(i + 1, hosts, 2)}`;
    const hostUsers = [...population, ...adminNames];
    const simulator = new SessionSimulator({
      ...options.perHost,
      seed: rng.uint32(),
      host,
      users: hostUsers,
      admins: adminNames,
      targetSessions: Math.max(1, Math.round(hostUsers.length * sessionsPerUser)),
      startMs: options.startMs,
    });
    return { host, simulator };
  });
}
