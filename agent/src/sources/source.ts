import type { Session } from '@rasmon/protocol';

/** Where an agent's sessions come from: each `list` is the host's complete session list now. */
export interface SessionSource {
  readonly name: string;
  list(nowMs: number): Promise<Session[]>;
}
