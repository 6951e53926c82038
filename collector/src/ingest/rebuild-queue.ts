/**
 * After Redis lost a farm's data, the farm's hosts resend their state through this queue
 * (docs/design.md §6, "Redis back empty"): a window of hosts at a time across all farms, farms in
 * the order their loss was found, and no farm more than a share of the window, so that one farm
 * held back by its own budgets (a big farm's snapshots wait for its bytes and script time) does
 * not hold the others back. Each host holds its place from its re-take until its snapshot is in
 * (or its connection ended, or `slotMs` passed), so that Redis's queue holds about a window's worth
 * of re-takes and snapshots however many farms were lost at once, and the farms come back one
 * after another rather than all together at the end.
 */

/** Hosts re-taken and asked for their state at once, across all farms of a collector. */
export const REBUILD_WINDOW = 256;
/** Of those, at most this many of one farm. */
export const REBUILD_WINDOW_PER_FARM = 64;
/** How long one host may hold its place before the next is asked anyway (an agent that never answers). */
export const REBUILD_SLOT_MS = 10_000;

/** A connection whose host owes its state under a farm's new epoch. */
export interface Rebuilding {
  /** Takes the host again under `epoch` and asks its agent for a snapshot; never rejects. */
  reclaim(epoch: string): Promise<void>;
  /** Settles once no snapshot is owed: the one asked for is in, or the connection ended. */
  stateIn(): Promise<void>;
}

/** One farm's hosts not yet asked, and how many of its hosts hold a place now. */
interface Lane {
  waiting: Array<{ host: Rebuilding; epoch: string }>;
  head: number;
  running: number;
}

export class RebuildQueue {
  /** By farm, in the order the farms were first queued (a Map keeps it). */
  private readonly lanes = new Map<string, Lane>();
  private running = 0;
  private stopped = false;
  /** The epoch each host was last queued under: a farm lost again while its hosts wait supersedes their place. */
  private readonly latest = new WeakMap<Rebuilding, string>();

  constructor(
    private readonly window = REBUILD_WINDOW,
    private readonly perFarm = REBUILD_WINDOW_PER_FARM,
    private readonly slotMs = REBUILD_SLOT_MS,
  ) {}

  /** Hosts not yet asked. */
  get pending(): number {
    let pending = 0;
    for (const lane of this.lanes.values()) pending += lane.waiting.length - lane.head;
    return pending;
  }

  /** Queues a farm's hosts behind those of farms found before it. */
  add(farm: string, hosts: readonly Rebuilding[], epoch: string): void {
    if (this.stopped) return;
    let lane = this.lanes.get(farm);
    if (!lane) this.lanes.set(farm, (lane = { waiting: [], head: 0, running: 0 }));
    else if (lane.head === lane.waiting.length) {
      // Every host of it already asked: found lost again, it goes behind the farms found meanwhile.
      this.lanes.delete(farm);
      this.lanes.set(farm, lane);
    }
    for (const host of hosts) {
      this.latest.set(host, epoch);
      lane.waiting.push({ host, epoch });
    }
    this.pump();
  }

  /** The collector is stopping: no further host is asked. */
  stop(): void {
    this.stopped = true;
    this.lanes.clear();
  }

  private pump(): void {
    for (const [farm, lane] of this.lanes) {
      while (
        !this.stopped &&
        this.running < this.window &&
        lane.running < this.perFarm &&
        lane.head < lane.waiting.length
      ) {
        // An index into the array rather than shift(): shift is linear in what is left.
        const { host, epoch } = lane.waiting[lane.head++]!;
        // Queued again under a newer epoch: taken again under that one, at its own place.
        if (this.latest.get(host) !== epoch) continue;
        this.running += 1;
        lane.running += 1;
        void this.rebuild(host, epoch).finally(() => {
          this.running -= 1;
          lane.running -= 1;
          this.pump();
        });
      }
      if (lane.running === 0 && lane.head === lane.waiting.length) this.lanes.delete(farm);
      if (this.stopped || this.running >= this.window) return;
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
