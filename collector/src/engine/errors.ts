import { RasmonError } from '@rasmon/protocol/kit';

export { RasmonError };

/** A Lua script is missing, does not compile, or answered outside its contract. */
export class ScriptError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_SCRIPT', message, options);
    this.name = 'ScriptError';
  }
}
