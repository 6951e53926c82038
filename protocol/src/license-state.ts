/** Time-driven license facts (docs/design.md §2 rules 8 and 9): pure functions of configuration, records and now. */

/** `spla`: a service provider's key, billed by period peak; its expiry follows the primary rules. */
export type LicenseKind = 'primary' | 'sublicense' | 'spla';
export type ExpiryState = 'active' | 'grace' | 'expired';

export const EXPIRY_STATES: readonly ExpiryState[] = ['active', 'grace', 'expired'];

export const DAY_MS = 86_400_000;

export interface ExpiryInput {
  license: LicenseKind;
  expiresMs: number;
  expiryGraceDays: number;
  nowMs: number;
}

export interface ExpiryStatus {
  state: ExpiryState;
  /** End of the expiry grace; equal to the expiry for a sublicense, which has none. */
  graceEndMs: number;
}

/** docs/design.md §2 rule 9: active before `expires`, then the grace (not for sublicenses), then expired. */
export function expiryStatus(input: ExpiryInput): ExpiryStatus {
  const graceEndMs =
    input.license === 'sublicense' ? input.expiresMs : input.expiresMs + input.expiryGraceDays * DAY_MS;
  let state: ExpiryState = 'active';
  if (input.nowMs >= graceEndMs) state = 'expired';
  else if (input.nowMs >= input.expiresMs) state = 'grace';
  return { state, graceEndMs };
}

export interface OveruseGraceInput {
  /** When the grace started, if it has. */
  startedAtMs?: number | undefined;
  overuseGraceDays: number;
  overuseUsers: number;
  nowMs: number;
}

export interface OveruseGraceStatus {
  started: boolean;
  startedAtMs?: number | undefined;
  endMs?: number;
  /** The grace has run out: from now on any overuse risks deactivation. */
  exhausted: boolean;
  /** Overused now with the grace exhausted (docs/design.md §2 rule 8). */
  deactivationRisk: boolean;
}

/** docs/design.md §2 rule 8, read at one moment. */
export function overuseGraceStatus(input: OveruseGraceInput): OveruseGraceStatus {
  if (input.startedAtMs === undefined) return { started: false, exhausted: false, deactivationRisk: false };
  const endMs = input.startedAtMs + input.overuseGraceDays * DAY_MS;
  const exhausted = input.nowMs >= endMs;
  return {
    started: true,
    startedAtMs: input.startedAtMs,
    endMs,
    exhausted,
    deactivationRisk: exhausted && input.overuseUsers > 0,
  };
}

/** The UTC day of a moment, `YYYY-MM-DD` (docs/design.md §2 rule 7). */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
