/**
 * A secret read from a file (the RAS password): held where the configuration needs it, but never
 * written out. JSON, `String()`, `util.inspect` (so pino and console) and the configuration hash all
 * see `[redacted]` or nothing; only `reveal()` gives the text, at the one place that sends it.
 */
import { inspect } from 'node:util';

export class Secret {
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  /** The secret itself, for the request that must carry it. */
  reveal(): string {
    return this.#text;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}
