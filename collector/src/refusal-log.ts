/**
 * Refused upgrades, logged with the remote address but rate-limited: the first refusal after a
 * quiet spell is logged at once, the rest are summed up once per window (counts by reason, the
 * busiest addresses), so a flood of bad tokens costs one log line every few seconds.
 */
import type { Logger } from './logger.js';

const TOP_ADDRESSES = 5;

export class RefusalLog {
  private window: { reasons: Map<string, number>; addresses: Map<string, number> } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
  ) {}

  refused(reason: string, address: string | undefined, status: number): void {
    const remote = address ?? 'unknown';
    if (!this.window) {
      this.log.warn({ reason, remote, status }, 'refused an agent upgrade');
      this.window = { reasons: new Map(), addresses: new Map() };
      this.timer = setTimeout(() => this.flush(), this.windowMs);
      this.timer.unref();
      return;
    }
    this.window.reasons.set(reason, (this.window.reasons.get(reason) ?? 0) + 1);
    // Bounded: past a thousand distinct addresses in one window only the counts by reason grow.
    if (this.window.addresses.has(remote) || this.window.addresses.size < 1000) {
      this.window.addresses.set(remote, (this.window.addresses.get(remote) ?? 0) + 1);
    }
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private flush(): void {
    const window = this.window;
    this.window = undefined;
    if (!window || window.reasons.size === 0) return;
    const top = [...window.addresses.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_ADDRESSES)
      .map(([remote, count]) => ({ remote, count }));
    const refused = Object.fromEntries(window.reasons);
    this.log.warn({ refused, addresses: window.addresses.size, top, windowSeconds: this.windowMs / 1000 }, 'refused agent upgrades');
    // The next window opens with the next refusal, logged at once only if this one was quiet.
    this.window = { reasons: new Map(), addresses: new Map() };
    this.timer = setTimeout(() => this.flush(), this.windowMs);
    this.timer.unref();
  }
}
