/**
 * The demo's RAS broker: the simulator (ras-broker-simulator.ts) on a self-signed certificate, with
 * VDI desktop and Remote PC users who log on, disconnect, reconnect and log off like the agents'
 * simulated users (the same SessionSimulator), and a license whose `usersLicenseInfo` is what RAS
 * would count: every user with a session on the farm's RD Session Hosts or on the broker's desktops,
 * once. The collector polls it like a real broker, over HTTPS, trusting the certificate through `ras.ca`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeUser, type Session } from '@rasmon/protocol';
import { SessionSimulator } from '@rasmon/agent';
import { RasBrokerSimulator, dayFirst, sampleLicense, sampleSession } from './ras-broker-simulator.js';
import { selfSignedCertificate } from './self-signed.js';

/** The RD Sessions reference's `type` values for the broker's sources: VDI and VDIApp, PC and PCApp. */
const SESSION_TYPE = { vdi: { desktop: 3, app: 4 }, pc: { desktop: 5, app: 6 } } as const;
/** Its `state` values for the two states a simulated session has: Active and Disconnected. */
const SESSION_STATE = { active: 0, disconnected: 4 } as const;

const USERNAME = 'CORP\\svc-rasmon';

export interface DemoBrokerOptions {
  seed: number;
  startMs: number;
  /** The farm's seats and expiry, as RAS's license states them. */
  seats: number;
  expires: number;
  /**
   * The farm's RD Session Hosts (their agents' sources): RAS counts their users too, and some of
   * them also work on a VDI desktop or a Remote PC.
   */
  hosts: readonly SessionSimulator[];
  /** A private directory for the CA and password files (the demo's, removed on exit). */
  dir: string;
}

/** A farm's `ras` block for this broker. */
export interface DemoRasConfig {
  url: string;
  username: string;
  passwordFile: string;
  ca: string;
}

interface BrokerSource {
  source: keyof typeof SESSION_TYPE;
  serverId: number;
  simulator: SessionSimulator;
}

export class DemoBroker {
  #peak = 0;
  readonly #timer: NodeJS.Timeout;

  private constructor(
    private readonly simulator: RasBrokerSimulator,
    private readonly sources: readonly BrokerSource[],
    private readonly options: DemoBrokerOptions,
    /** The `ras` block that points a farm at this broker. */
    readonly ras: DemoRasConfig,
  ) {
    this.refresh();
    // What RAS answers follows its users second by second, as a broker's own view would.
    this.#timer = setInterval(() => this.refresh(), 1000);
    this.#timer.unref();
  }

  /** Starts the broker on 127.0.0.1 (a free port) and writes its certificate and password files. */
  static async start(options: DemoBrokerOptions): Promise<DemoBroker> {
    const pki = selfSignedCertificate(['localhost', '127.0.0.1'], new Date(options.startMs), 30);
    const password = randomBytes(18).toString('base64url');
    const ras: DemoRasConfig = {
      url: '',
      username: USERNAME,
      passwordFile: join(options.dir, 'ras-password'),
      ca: join(options.dir, 'ras-broker-ca.pem'),
    };
    writeFileSync(ras.passwordFile, `${password}\n`, { mode: 0o600 });
    writeFileSync(ras.ca, pki.cert);
    const simulator = await RasBrokerSimulator.start({ pki, username: USERNAME, password });
    // A dozen VDI desktop users and a few Remote PC users of their own, and some of the farm's
    // session-host users on a desktop too: those count once, as RAS counts them.
    const people = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, i) => `CORP\\${prefix}${String(i + 1).padStart(2, '0')}`);
    const hostUsers = [
      ...new Set(
        options.hosts.flatMap((host) =>
          host
            .sessions()
            .filter((s) => !s.admin)
            .map((s) => s.user),
        ),
      ),
    ].sort();
    const also = (from: number, count: number) => hostUsers.slice(from, from + count);
    const source = (name: BrokerSource['source'], serverId: number, users: string[], target: number, seed: number) => ({
      source: name,
      serverId,
      simulator: new SessionSimulator({
        seed,
        host: `${name}-desktops`,
        users,
        targetSessions: target,
        logonsPerMinute: target / 3,
        appShare: 0.2,
        startMs: options.startMs,
      }),
    });
    const sources = [
      source('vdi', 21, [...people('vdi', 16), ...also(0, 4)], 12, options.seed),
      source('pc', 31, [...people('pc', 3), ...also(4, 1)], 2, options.seed + 1),
    ];
    return new DemoBroker(simulator, sources, options, { ...ras, url: simulator.url });
  }

  /** The sessions RAS lists now, and its license with the users it counts. */
  private refresh(): void {
    const now = Date.now();
    const listed: Array<Record<string, unknown>> = [];
    const users = new Set<string>();
    for (const { source, serverId, simulator } of this.sources) {
      simulator.advanceTo(now);
      for (const session of simulator.sessions()) {
        listed.push(rasSession(session, source, serverId, now));
        users.add(normalizeUser(session.user));
      }
    }
    for (const host of this.options.hosts) {
      // An administrator's desktop is free on a session host (two per host; the demo's farms have fewer).
      for (const session of host.sessions())
        if (!(session.admin && session.kind === 'desktop')) users.add(normalizeUser(session.user));
    }
    this.#peak = Math.max(this.#peak, users.size);
    this.simulator.sessions = listed;
    this.simulator.license = sampleLicense(new Date(now), {
      installedUsers: String(this.options.seats),
      usersLicenseInfo: String(users.size),
      usersPeak: String(this.#peak),
      expiryDate: dayFirst(new Date(this.options.expires)),
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.simulator.stop();
  }
}

/** A simulated session as an `/api/RDSession` item (its id is `host:wtsId-since`). */
function rasSession(
  session: Session,
  source: BrokerSource['source'],
  serverId: number,
  now: number,
): Record<string, unknown> {
  return sampleSession({
    sessionID: Number(/:(\d+)-/.exec(session.id)?.[1]),
    serverID: serverId,
    user: session.user,
    ip: session.client?.address ?? '',
    type: SESSION_TYPE[source][session.kind],
    state: SESSION_STATE[session.state],
    logonTime: new Date(session.since).toISOString(),
    sessionLength: Math.round((now - session.since) / 1000),
  });
}
