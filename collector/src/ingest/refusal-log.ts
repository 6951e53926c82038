/**
 * Refusals, logged rate-limited: the first refusal after a quiet spell is logged at once, the rest
 * are summed up once per window (counts by reason, the busiest keys), so a flood of bad tokens or
 * forged host names costs one log line every few seconds. Upgrades are keyed by remote address;
 * hellos by farm (no address, no user name).
 */
import type { Logger } from '@rasmon/protocol/kit';

const TOP_ADDRESSES = 5;

/** How one kind of refusal is logged: its two messages and the fields its key and count go under. */
export interface RefusalKind {
  first: string;
  summary: string;
  keyField: string;
  countField: string;
}

export const UPGRADE_REFUSALS: RefusalKind = {
  first: 'refused an agent upgrade',
  summary: 'refused agent upgrades',
  keyField: 'remote',
  countField: 'addresses',
};
export const HELLO_REFUSALS: RefusalKind = {
  first: 'refused an agent hello',
  summary: 'refused agent hellos',
  keyField: 'farm',
  countField: 'farms',
};

/** Sessions refused over a farm's quotas (docs/design.md §6), keyed by farm: never a user name. */
export const QUOTA_REFUSALS: RefusalKind = {
  first: "refused sessions over the farm's quotas",
  summary: "refused sessions over farms' quotas",
  keyField: 'farm',
  countField: 'farms',
};

/**
 * Connections from a trusted load balancer destroyed for their PROXY header (docs/design.md §6):
 * keyed by nothing but the kind of peer, so no address is logged.
 */
export const PROXY_HEADER_LOG: RefusalKind = {
  first: 'refused a connection for its PROXY header',
  summary: 'refused connections for their PROXY headers',
  keyField: 'peer',
  countField: 'peers',
};

export class RefusalLog {
  private window: { reasons: Map<string, number>; addresses: Map<string, number> } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly kind: RefusalKind = UPGRADE_REFUSALS,
    private readonly windowMs = 10_000,
  ) {}

  /** `status`: the HTTP status or error code the peer got; `detail`, in the first line only, says why. */
  refused(reason: string, key: string | undefined, status: number | string, detail?: string): void {
    const remote = key ?? 'unknown';
    if (!this.window) {
      const fields = { reason, [this.kind.keyField]: remote, status, ...(detail === undefined ? {} : { detail }) };
      this.log.warn(fields, this.kind.first);
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
      .map(([remote, count]) => ({ [this.kind.keyField]: remote, count }));
    const refused = Object.fromEntries(window.reasons);
    this.log.warn(
      { refused, [this.kind.countField]: window.addresses.size, top, windowSeconds: this.windowMs / 1000 },
      this.kind.summary,
    );
    // The next window opens with the next refusal, logged at once only if this one was quiet.
    this.window = { reasons: new Map(), addresses: new Map() };
    this.timer = setTimeout(() => this.flush(), this.windowMs);
    this.timer.unref();
  }
}
