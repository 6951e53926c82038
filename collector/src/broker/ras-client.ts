/**
 * A client of the RAS REST API (the Publishing Agent's web service, `https://<broker>:20443/api/...`).
 *
 * Source: docs.parallels.com, RAS REST API guide, "Logging in and sending requests" (About) and the
 * "Licensing Sample": `POST /api/session/logon` with `Content-Type: application/json; api-version=1.0`
 * and the body `{"username", "password"}` answers `{"authToken": "..."}`; every later request carries
 * that token in the `auth_token` header (with the same Content-Type); `POST /api/session/logoff` ends
 * the session. The Licensing reference lists 401 Unauthorized as an answer of data calls.
 */
import type { Logger } from '@rasmon/protocol/kit';
import type { Secret } from '../config/secret.js';
import { BrokerError } from './broker-error.js';
import { httpsRequest, type HttpsTarget } from './https-request.js';
import { readLicenseBody, type RasLicense } from './license-reader.js';
import { LogonBackoff } from './logon-backoff.js';
import { readSessionsBody, type SessionList } from './session-reader.js';

export const CONTENT_TYPE = 'application/json; api-version=1.0';

export const CLIENT_DEFAULTS = Object.freeze({
  timeoutMs: 15_000,
  /** A License answer is under 1 KiB; 4 MiB holds some thousands of sessions. */
  maxBodyBytes: 4 * 1_048_576,
});

export interface RasClientOptions {
  /** The REST API's base, `https://broker:20443`. */
  readonly url: string;
  readonly username: string;
  readonly password: Secret;
  /** PEM of the broker's CA; the system's roots when absent. */
  readonly ca?: string | Buffer | undefined;
  readonly timeoutMs?: number;
  readonly maxBodyBytes?: number;
  /** Shared with whoever polls, so that refused logons slow every caller down. */
  readonly backoff?: LogonBackoff;
  readonly log?: Logger;
}

function parseJson(body: Buffer, what: string, status: number): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new BrokerError('bad_response', `${what}: the answer is not JSON`, { status });
  }
}

/**
 * One administrator session with the broker. `readLicense()` and `readSessions()` log on when there is
 * no token, and log on again once when a data call answers 401 (an expired token). Refused logons go
 * through {@link LogonBackoff}: while it holds, a logon fails with `auth` without reaching the broker.
 */
export class RasClient {
  readonly backoff: LogonBackoff;
  readonly #target: HttpsTarget;
  readonly #username: string;
  readonly #password: Secret;
  readonly #log: Logger | undefined;
  #token: string | undefined;
  #logonInFlight: Promise<void> | undefined;

  constructor(options: RasClientOptions) {
    this.#target = {
      base: new URL(options.url),
      ca: options.ca,
      timeoutMs: options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs,
      maxBodyBytes: options.maxBodyBytes ?? CLIENT_DEFAULTS.maxBodyBytes,
    };
    this.#username = options.username;
    this.#password = options.password;
    this.#log = options.log;
    this.backoff = options.backoff ?? new LogonBackoff();
  }

  /** Whether the client holds an auth token. */
  get loggedOn(): boolean {
    return this.#token !== undefined;
  }

  /**
   * `POST /api/session/logon`.
   *
   * @throws {@link BrokerError} `auth` when refused (401 or 403) or held back by the backoff.
   */
  async logon(): Promise<void> {
    const what = 'POST /api/session/logon';
    if (!this.backoff.mayLogOn()) {
      const at = new Date(this.backoff.notBefore).toISOString();
      throw new BrokerError('auth', `${what}: not tried, the broker refused the last logon; next try after ${at}`);
    }
    this.#token = undefined;
    const body = JSON.stringify({ username: this.#username, password: this.#password.reveal() });
    const reply = await httpsRequest(
      this.#target,
      'POST',
      '/api/session/logon',
      { 'Content-Type': CONTENT_TYPE },
      what,
      body,
    );
    if (reply.status === 401 || reply.status === 403) {
      const waitMs = this.backoff.refused();
      this.#log?.warn(
        { reason: 'auth', status: reply.status, refusals: this.backoff.refusals, retryInSeconds: waitMs / 1000 },
        'the RAS broker refused the logon: check ras.username and the password file',
      );
      throw new BrokerError('auth', `${what}: the broker refused the user name or password (HTTP ${reply.status})`, {
        status: reply.status,
      });
    }
    if (reply.status !== 200) {
      throw new BrokerError('bad_response', `${what}: unexpected HTTP ${reply.status}`, { status: reply.status });
    }
    const answer = parseJson(reply.body, what, reply.status);
    const token =
      typeof answer === 'object' && answer !== null ? (answer as Record<string, unknown>).authToken : undefined;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) {
      throw new BrokerError('bad_response', `${what}: authToken is missing or not a string`, { field: 'authToken' });
    }
    this.backoff.accepted();
    this.#token = token;
  }

  /** `POST /api/session/logoff`, when logged on. The token is dropped whatever the broker answers. */
  async logoff(): Promise<void> {
    const token = this.#token;
    if (token === undefined) return;
    this.#token = undefined;
    const what = 'POST /api/session/logoff';
    const reply = await httpsRequest(this.#target, 'POST', '/api/session/logoff', this.#headers(token), what);
    // 401: the token had expired already, which ends the session just as well.
    if (reply.status !== 200 && reply.status !== 204 && reply.status !== 401) {
      throw new BrokerError('bad_response', `${what}: unexpected HTTP ${reply.status}`, { status: reply.status });
    }
  }

  /** `GET /api/License`, read by {@link readLicenseBody}. */
  async readLicense(): Promise<RasLicense> {
    return readLicenseBody(await this.#get('/api/License'));
  }

  /**
   * `GET /api/RDSession`, read by {@link readSessionsBody}: all sources, or with `source` only those
   * of one (`?Source=AVD`: the RD Sessions reference lists `Source` among the query parameters and
   * "RDS, VDI, and AVD" as the sources; a session's `type` has no AVD value).
   */
  async readSessions(source?: 'AVD'): Promise<SessionList> {
    return readSessionsBody(
      await this.#get(source === undefined ? '/api/RDSession' : `/api/RDSession?Source=${source}`),
    );
  }

  #headers(token: string): Record<string, string> {
    return { 'Content-Type': CONTENT_TYPE, auth_token: token };
  }

  /** One logon for every data call that finds no token at the same moment. */
  async #logonShared(): Promise<void> {
    this.#logonInFlight ??= this.logon().finally(() => {
      this.#logonInFlight = undefined;
    });
    return this.#logonInFlight;
  }

  async #get(path: string): Promise<unknown> {
    const what = `GET ${path}`;
    if (this.#token === undefined) await this.#logonShared();
    const refused = this.#token as string;
    let reply = await httpsRequest(this.#target, 'GET', path, this.#headers(refused), what);
    if (reply.status === 401) {
      // Another call may have renewed the token meanwhile; then that one is used as it is.
      if (this.#token === refused || this.#token === undefined) {
        this.#log?.info(
          { reason: 'token_expired' },
          'the RAS broker no longer accepts the auth token; logging on again',
        );
        if (this.#token === refused) this.#token = undefined;
        await this.#logonShared();
      }
      reply = await httpsRequest(this.#target, 'GET', path, this.#headers(this.#token as string), what);
      if (reply.status === 401) {
        this.#token = undefined;
        throw new BrokerError('auth', `${what}: the broker refused a fresh auth token (HTTP 401)`, { status: 401 });
      }
    }
    if (reply.status !== 200) {
      throw new BrokerError('bad_response', `${what}: unexpected HTTP ${reply.status}`, { status: reply.status });
    }
    return parseJson(reply.body, what, reply.status);
  }
}
