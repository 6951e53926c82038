/** Errors with a stable `code`, in the manner of ws's `WS_ERR_*`. */
export class RasmonError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RasmonError';
  }
}

/** A Lua script is missing, does not compile, or answered outside its contract. */
export class ScriptError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_SCRIPT', message, options);
    this.name = 'ScriptError';
  }
}
