/** The ways a call to the RAS broker fails, as one typed error with a stable `reason`. */
import { RasmonError } from '@rasmon/protocol/kit';

/**
 * Why a broker call failed: `unreachable` (no connection: refused, reset, name not found), `tls` (the
 * broker's certificate does not verify against the configured CA, or the handshake failed), `auth`
 * (the logon was refused, or held back by the logon backoff), `timeout` (no complete answer in time),
 * `bad_response` (a status, body or field the documents do not describe, or a body over the size cap).
 */
export const BROKER_FAILURE_REASONS = ['unreachable', 'tls', 'auth', 'timeout', 'bad_response'] as const;
export type BrokerFailureReason = (typeof BROKER_FAILURE_REASONS)[number];

/**
 * A failed broker call. The message is one line fit for a log or a terminal: it names the request and,
 * for a malformed body, the field at fault, and never carries the password, the auth token or a body.
 */
export class BrokerError extends RasmonError {
  readonly reason: BrokerFailureReason;
  /** The response field at fault (`usersPeak`, `[3].type`), for a `bad_response` about one field. */
  readonly field: string | undefined;
  /** The HTTP status, when the broker answered with one the call did not expect. */
  readonly status: number | undefined;

  constructor(
    reason: BrokerFailureReason,
    message: string,
    options: { field?: string; status?: number; cause?: unknown } = {},
  ) {
    super(
      `RASMON_BROKER_${reason.toUpperCase()}`,
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'BrokerError';
    this.reason = reason;
    this.field = options.field;
    this.status = options.status;
  }
}
