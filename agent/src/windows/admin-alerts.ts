/**
 * When a condition needs an administrator, one event, not one per retry: the token or the hello
 * refused, the collector unreachable for a while, the source failing several polls in a row, and the recovery of
 * each. The agent and the link report what happens; this decides what goes to the Event Log.
 */
import { inspect } from 'node:util';
import type { EventName } from './event-ids.js';

export interface AlertOptions {
  /** Not connected for this long (since start or since the connection dropped): event 2002. */
  unreachableAfterMs: number;
  /** This many failed polls in a row: event 3001. */
  sourceFailuresInARow: number;
}

export const ALERT_DEFAULTS: Readonly<AlertOptions> = Object.freeze({
  unreachableAfterMs: 5 * 60_000,
  sourceFailuresInARow: 3,
});

export type Report = (event: EventName, detail?: string) => void;

export class AdminAlerts {
  private refusedReported = false;
  private unreachableReported = false;
  private unreachableTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private failingReported = false;

  constructor(
    private readonly report: Report,
    private readonly options: AlertOptions = ALERT_DEFAULTS,
  ) {}

  /** The agent started or lost its connection: the unreachable clock starts. */
  disconnected(): void {
    if (this.unreachableTimer) return;
    this.unreachableTimer = setTimeout(() => {
      this.unreachableTimer = undefined;
      // A refused token already says why nothing arrives.
      if (this.refusedReported || this.unreachableReported) return;
      this.unreachableReported = true;
      this.report(
        'collectorUnreachable',
        `not connected for ${Math.round(this.options.unreachableAfterMs / 60_000)} minutes`,
      );
    }, this.options.unreachableAfterMs);
    this.unreachableTimer.unref();
  }

  /** The collector welcomed the agent. */
  connected(): void {
    clearTimeout(this.unreachableTimer);
    this.unreachableTimer = undefined;
    if (this.refusedReported || this.unreachableReported) this.report('collectorConnected');
    this.refusedReported = false;
    this.unreachableReported = false;
  }

  /** The collector answered the upgrade with 401. */
  tokenRefused(): void {
    if (this.refusedReported) return;
    this.refusedReported = true;
    this.report('tokenRefused');
  }

  /**
   * The collector answered the hello with `forbidden` (the host bound to another agent's host key,
   * or not allowed for this token or farm); `reason` is the collector's message.
   */
  helloRefused(reason: string): void {
    if (this.refusedReported) return;
    this.refusedReported = true;
    this.report('helloRefused', reason);
  }

  /** One poll's outcome: the error when the source failed. */
  polled(error?: unknown): void {
    if (error === undefined) {
      if (this.failingReported) this.report('sourceRecovered');
      this.failures = 0;
      this.failingReported = false;
      return;
    }
    this.failures += 1;
    if (this.failures >= this.options.sourceFailuresInARow && !this.failingReported) {
      this.failingReported = true;
      const reason = error instanceof Error ? error.message : typeof error === 'string' ? error : inspect(error);
      this.report('sourceFailing', `${this.failures} polls failed in a row; the last: ${reason}`);
    }
  }

  /** Stops the clock (the service is stopping). */
  close(): void {
    clearTimeout(this.unreachableTimer);
    this.unreachableTimer = undefined;
  }
}
