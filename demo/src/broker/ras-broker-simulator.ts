/**
 * A RAS broker's REST API as the vendor documents it (docs.parallels.com, RAS REST API guide), over
 * real HTTPS: what `npm run demo` polls, and what the broker connector's tests (test/broker-*.test.ts,
 * through test/support/ras-broker-simulator.ts) run against:
 * - `POST /api/session/logon` takes `Content-Type: application/json; api-version=1.0` and
 *   `{"username","password"}`, answers `{"authToken": ...}` ("Logging in and sending requests",
 *   "Licensing Sample"); `POST /api/session/logoff` ends the session;
 * - every other request must carry the token in `auth_token`, or gets 401 with a ProblemDetails body
 *   (the Licensing reference lists 401 Unauthorized);
 * - `GET /api/License` answers the Licensing Sample's shape: numbers as strings, "" for absent values,
 *   day-first dates, `"type"` a JSON number;
 * - `GET /api/RDSession` answers a list of the RD Sessions reference's items (integer ids and enums,
 *   ISO-8601 `logonTime`).
 * Paths compare case-insensitively: the guide writes both `api/session/logon` and `api/Session/logon`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { DAY_MS } from '@rasmon/protocol';

export const RAS_CONTENT_TYPE = 'application/json; api-version=1.0';

/** The broker's TLS identity: a private key and the certificate chain it serves (PEM). */
export interface ServerCertificate {
  readonly key: string;
  readonly cert: string;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** A date as the Licensing Sample writes it: `dd/mm/yyyy`, or `dd/mm/yyyy hh:mm` with the time (UTC here). */
export function dayFirst(date: Date, withTime = false): string {
  const day = `${pad(date.getUTCDate())}/${pad(date.getUTCMonth() + 1)}/${date.getUTCFullYear()}`;
  return withTime ? `${day} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}` : day;
}

/**
 * A `GET /api/License` answer in the Licensing Sample's shape, its dates taken from `now` (the
 * caller's clock): expiry a year ahead, a 30-day billing period started 3 days ago.
 */
export function sampleLicense(now: Date, fields: Record<string, unknown> = {}): Record<string, unknown> {
  const start = new Date(now.getTime() - 3 * DAY_MS);
  return {
    usageToday: '0',
    currPeriodUsage: '0',
    billingPeriodStart: dayFirst(start, true),
    billingPeriodEnd: dayFirst(new Date(start.getTime() + 30 * DAY_MS), true),
    paUserName: 'Test Person',
    paCompanyName: 'Example',
    paUserEmail: 'person@example.com',
    licenseKey: '****-ME****-****-B9****-CV55K2',
    supportExpireDate: dayFirst(new Date(now.getTime() + 365 * DAY_MS)),
    upgradeInsurance: dayFirst(new Date(now.getTime() + 365 * DAY_MS)),
    licenseFirstActive: dayFirst(new Date(now.getTime() - 365 * DAY_MS), true),
    licenseStatus: '',
    licenseType: 'Parallels Remote Application Server',
    expiryDate: dayFirst(new Date(now.getTime() + 365 * DAY_MS)),
    installedUsers: '250',
    usersPeak: '180',
    usersLicenseInfo: '120',
    gracePeriodState: '',
    gracePeriodDaysLeft: '',
    type: 1,
    needsAttention: false,
    statusMessage: '',
    alertMessage: '',
    ...fields,
  };
}

let nextSessionId = 1;

/** One `GET /api/RDSession` item in the RD Sessions reference's shape. */
export function sampleSession(
  fields: Record<string, unknown> & { type: unknown; user: string },
): Record<string, unknown> {
  return {
    sessionID: nextSessionId++,
    ip: '10.0.0.10',
    serverID: 7,
    themeID: 1,
    connectionMode: 0,
    authenticationType: 1,
    protocol: 2,
    state: 0,
    logonTime: '2026-01-05T08:30:00.000Z',
    sessionLength: 3600,
    idleTime: 0,
    ...fields,
  };
}

export interface SimulatorOptions {
  /** What it serves: test/support's test PKI, or the demo's self-signed certificate. */
  readonly pki: ServerCertificate;
  readonly username: string;
  readonly password: string;
  /** The clock the License answer's dates come from. */
  readonly now?: () => Date;
  /** The port to listen on (a broker back on its address after an outage); any free one by default. */
  readonly port?: number;
}

/** A request the simulator saw, its body as text (a logon's holds the password: only tests look). */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export class RasBrokerSimulator {
  /** The REST API's base, `https://localhost:<port>`. */
  readonly url: string;
  readonly requests: SeenRequest[] = [];
  /** The next `GET /api/License` answer (any JSON: tests put wrong types in it). */
  license: unknown;
  /** The next `GET /api/RDSession` answer (no `Source`). */
  sessions: unknown = [];
  /** The next `GET /api/RDSession?Source=AVD` answer. */
  avdSessions: unknown = [];
  /** The password the broker accepts; change it to make logons fail. */
  password: string;
  /** Every answer waits this long first (beyond the client's timeout: `timeout`). */
  delayMs = 0;
  /**
   * Answer data calls with this many bytes instead, streamed without Content-Length (Infinity: a body
   * that never ends, which only a client that stops reading at its cap gets past).
   */
  hugeBodyBytes = 0;
  /** ...or with a Content-Length of this many bytes announced up front (and the bytes streamed). */
  hugeBodyDeclared = false;
  /** A path prefix the API sits under (a reverse proxy's), '' for none. */
  basePath = '';
  /** Answer every data call 401, fresh tokens too (a broker that logs on but then refuses). */
  refuseData = false;
  readonly #tokens = new Set<string>();
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  readonly #username: string;

  private constructor(server: Server, options: SimulatorOptions) {
    this.#server = server;
    this.#username = options.username;
    this.password = options.password;
    this.url = `https://localhost:${(server.address() as AddressInfo).port}`;
    this.license = sampleLicense((options.now ?? (() => new Date()))());
  }

  static async start(options: SimulatorOptions): Promise<RasBrokerSimulator> {
    const server = createServer({ key: options.pki.key, cert: options.pki.cert });
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
    const simulator = new RasBrokerSimulator(server, options);
    server.on('connection', (socket: Socket) => {
      simulator.#sockets.add(socket);
      socket.on('close', () => simulator.#sockets.delete(socket));
    });
    server.on('tlsClientError', () => undefined);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        simulator.requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
        const answer = () => simulator.#answer(req.method ?? '', req.url ?? '', req.headers, body, res);
        if (simulator.delayMs > 0) setTimeout(answer, simulator.delayMs);
        else answer();
      });
    });
    return simulator;
  }

  /** Every token issued so far stops working (the broker's session timeout). */
  expireTokens(): void {
    this.#tokens.clear();
  }

  /** How many logons were sent. */
  get logons(): number {
    return this.requests.filter((r) => r.path.toLowerCase() === '/api/session/logon').length;
  }

  /** How many tokens are live (logged on and not logged off). */
  get liveTokens(): number {
    return this.#tokens.size;
  }

  /** Stops listening and drops every connection: the broker is down. */
  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #answer(
    method: string,
    url: string,
    headers: Record<string, string | string[] | undefined>,
    body: string,
    res: import('node:http').ServerResponse,
  ): void {
    const send = (status: number, value?: unknown) => {
      res.writeHead(status, value === undefined ? {} : { 'Content-Type': RAS_CONTENT_TYPE });
      res.end(value === undefined ? undefined : JSON.stringify(value));
    };
    const problem = (status: number, title: string) => send(status, { type: 'about:blank', title, status });
    const full = new URL(url, 'https://broker').pathname.toLowerCase();
    if (!full.startsWith(this.basePath)) return problem(404, 'Not Found');
    const path = full.slice(this.basePath.length);
    if (headers['content-type'] !== RAS_CONTENT_TYPE) return problem(415, 'Unsupported Media Type');
    if (method === 'POST' && path === '/api/session/logon') {
      let credentials: unknown;
      try {
        credentials = JSON.parse(body);
      } catch {
        return problem(400, 'Bad Request');
      }
      const { username, password } = (credentials ?? {}) as Record<string, unknown>;
      if (username !== this.#username || password !== this.password) return problem(401, 'Unauthorized');
      const token = randomBytes(36).toString('base64');
      this.#tokens.add(token);
      return send(200, { authToken: token });
    }
    const token = headers.auth_token;
    if (typeof token !== 'string' || !this.#tokens.has(token)) return problem(401, 'Unauthorized');
    if (method === 'POST' && path === '/api/session/logoff') {
      this.#tokens.delete(token);
      return send(200);
    }
    if (method !== 'GET' || (path !== '/api/license' && path !== '/api/rdsession')) return problem(404, 'Not Found');
    if (this.refuseData) return problem(401, 'Unauthorized');
    if (this.hugeBodyBytes > 0) return this.#sendHuge(res);
    if (path === '/api/license') return send(200, this.license);
    // The RD Sessions reference: `Source` among the query parameters; the sources RDS, VDI and AVD.
    const source = new URL(url, 'https://broker').searchParams.get('Source');
    if (source === null) return send(200, this.sessions);
    if (source.toUpperCase() === 'AVD') return send(200, this.avdSessions);
    return problem(400, 'Bad Request');
  }

  /** A JSON list of `hugeBodyBytes` bytes, written in 64 KiB pieces as the client reads them. */
  #sendHuge(res: import('node:http').ServerResponse): void {
    const total = this.hugeBodyBytes;
    res.writeHead(200, {
      'Content-Type': RAS_CONTENT_TYPE,
      ...(this.hugeBodyDeclared ? { 'Content-Length': String(total) } : {}),
    });
    const piece = Buffer.alloc(65_536, 0x20);
    let sent = 0;
    const write = () => {
      while (sent < total) {
        const chunk = piece.subarray(0, Math.min(piece.length, total - sent));
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', write);
      }
      res.end();
    };
    res.on('error', () => undefined);
    write();
  }
}
