import type { Session } from '@rasmon/protocol';

/** Where an agent's sessions come from: each `list` is the host's complete session list now. */
export interface SessionSource {
  readonly name: string;
  list(nowMs: number): Promise<Session[]>;
  /**
   * Sources that hear of session changes call `onChange` on each (the agent then polls at once,
   * its poll interval becoming a safety net). Returns the function that stops watching.
   */
  watch?(onChange: () => void): () => void;
  /**
   * The list an earlier run of the agent reported, given once before the first `list`: sources
   * that date a logon by when they first saw it keep those dates (and so the ids).
   */
  resume?(previous: readonly Session[]): void;
  /** Sessions of the last list whose administrator status could not be read (counted as non-admin). */
  adminUnknown?(): number;
}
