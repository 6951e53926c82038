/**
 * The base of rasmon's errors: a stable `code` string a caller can branch on (in the manner of ws's
 * `WS_ERR_*`) and the `cause` that led to it, so a log line keeps the whole chain.
 */
export class RasmonError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RasmonError';
    this.code = code;
  }
}
