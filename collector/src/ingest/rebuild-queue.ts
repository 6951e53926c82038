/**
 * After Redis lost a farm's data, the farm's hosts resend their state through this queue
 * (docs/design.md §6, "Redis back empty"): farms in the order their loss was found, and a window of
 * hosts at a time across all farms. Each host holds its place from its re-take until its snapshot
 * is in (or its connection ended, or `slotMs` passed), so that Redis's queue holds at most a
 * window's worth of re-takes and snapshots however many farms were lost at once, and the farms come
 * back one after another rather than all together at the end.
 */

/** Hosts re-taken and asked for their state at once, across all farms of a collector. */
export const REBUILD_WINDOW = 256;
/** How long one host may hold its place before the next is asked anyway (an agent that never answers). */
export const REBUILD_SLOT_MS = 10_000;

/** A connection whose host owes its state under a farm's new epoch. */
export interface Rebuilding {
  /** Takes the host again under `epoch` and asks its agent for a snapshot; never rejects. */
  reclaim(epoch: string): Promise<void>;
  /** Settles once no snapshot is owed: the one asked for is in, or the connection ended. */
  stateIn(): Promise<void>;
}

export class RebuildQueue {
  private waiting: Array<{ host: Rebuilding; epoch: string }> = [];
  private head = 0;
  private running = 0;
  /** The epoch each host was last queued under: a farm lost again while its hosts wait supersedes their place. */
  private readonly latest = new WeakMap<Rebuilding, string>();

  constructor(
    private readonly window = REBUILD_WINDOW,
    private readonly slotMs = REBUILD_SLOT_MS,
  ) {}

  /** Hosts not yet asked. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** Queues a farm's hosts behind those of farms found before it. */
  add(hosts: readonly Rebuilding[], epoch: string): void {
    for (const host of hosts) {
      this.latest.set(host, epoch);
      this.waiting.push({ host, epoch });
    }
    this.pump();
  }

  private pump(): void {
    while (this.running < this.window && this.head < this.waiting.length) {
      const { host, epoch } = this.waiting[this.head++]!;
      // Queued again under a newer epoch: taken again under that one, at its own place.
      if (this.latest.get(host) !== epoch) continue;
      this.running += 1;
      void this.rebuild(host, epoch).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
    // An index into the array rather than shift(): shift is linear in what is left.
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    }
  }

  private async rebuild(host: Rebuilding, epoch: string): Promise<void> {
    await host.reclaim(epoch);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.slotMs);
      timer.unref();
    });
    await Promise.race([host.stateIn(), late]);
    clearTimeout(timer);
  }
}
