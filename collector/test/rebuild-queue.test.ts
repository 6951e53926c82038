/**
 * After Redis lost farms' data, their hosts are asked to resend a window at a time across all farms,
 * farms in the order found, each holding its place until its state is in (docs/design.md §6).
 */
import { describe, expect, it } from 'vitest';
import { RebuildQueue, type Rebuilding } from '../src/ingest/rebuild-queue.js';

/** A host whose state comes in when the test says so. */
class Host implements Rebuilding {
  reclaimedUnder: string | undefined;
  private owed: { promise: Promise<void>; paid: () => void } | undefined;

  constructor(
    readonly name: string,
    private readonly asked: string[],
  ) {}

  async reclaim(epoch: string): Promise<void> {
    this.reclaimedUnder = epoch;
    this.asked.push(this.name);
    let paid = () => {};
    const promise = new Promise<void>((resolve) => (paid = resolve));
    this.owed = { promise, paid };
  }

  stateIn(): Promise<void> {
    return this.owed?.promise ?? Promise.resolve();
  }

  resend(): void {
    this.owed?.paid();
  }
}

const turns = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('the rebuild queue', () => {
  it('asks a window of hosts at a time, the farms found first first, the next as each resends', async () => {
    const asked: string[] = [];
    const farmA = ['a1', 'a2', 'a3'].map((name) => new Host(name, asked));
    const farmB = ['b1', 'b2'].map((name) => new Host(name, asked));
    const queue = new RebuildQueue(2, 2, 60_000);
    queue.add('a', farmA, 'epoch-a');
    queue.add('b', farmB, 'epoch-b');
    await turns();
    expect(asked).toEqual(['a1', 'a2']);
    expect(queue.pending).toBe(3);

    // One resends: one more is asked, in order; the others still hold their places.
    farmA[1]!.resend();
    await turns();
    expect(asked).toEqual(['a1', 'a2', 'a3']);
    farmA[0]!.resend();
    farmA[2]!.resend();
    await turns();
    expect(asked).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    expect(queue.pending).toBe(0);
    expect(farmB.map((host) => host.reclaimedUnder)).toEqual(['epoch-b', 'epoch-b']);
  });

  it('asks the next host anyway when one holds its place past the slot time', async () => {
    const asked: string[] = [];
    const hosts = ['h1', 'h2', 'h3'].map((name) => new Host(name, asked));
    const queue = new RebuildQueue(1, 1, 20);
    queue.add('farm', hosts, 'epoch');
    await turns();
    expect(asked).toEqual(['h1']);
    // None resends: each is given up on after its slot time, and the next asked.
    await expect.poll(() => asked, { timeout: 5_000 }).toEqual(['h1', 'h2', 'h3']);
  });

  it('takes a host queued again under a newer epoch under that one only', async () => {
    const asked: string[] = [];
    const [busy, waiting] = ['busy', 'waiting'].map((name) => new Host(name, asked)) as [Host, Host];
    const queue = new RebuildQueue(1, 1, 60_000);
    queue.add('farm', [busy, waiting], 'epoch-1');
    // The farm is lost again before `waiting` had its turn.
    queue.add('farm', [waiting], 'epoch-2');
    await turns();
    busy.resend();
    await turns();
    await turns();
    expect(asked).toEqual(['busy', 'waiting']);
    expect(waiting.reclaimedUnder).toBe('epoch-2');
    expect(queue.pending).toBe(0);
  });

  it('gives no farm more than its share of the window: a slow farm found first does not hold the others back', async () => {
    const asked: string[] = [];
    const big = ['big1', 'big2', 'big3', 'big4'].map((name) => new Host(name, asked));
    const small = ['small1', 'small2'].map((name) => new Host(name, asked));
    const queue = new RebuildQueue(4, 2, 60_000);
    queue.add('big', big, 'epoch-big');
    queue.add('small', small, 'epoch-small');
    await turns();
    expect(asked).toEqual(['big1', 'big2', 'small1', 'small2']);
    // The big farm's next host takes the place one of its own frees, or another farm's.
    small[0]!.resend();
    await turns();
    expect(asked).toEqual(['big1', 'big2', 'small1', 'small2']);
    big[0]!.resend();
    await turns();
    expect(asked).toEqual(['big1', 'big2', 'small1', 'small2', 'big3']);
  });

  it('asks no host once stopped (the collector drains), nor keeps any queued after', async () => {
    const asked: string[] = [];
    const hosts = ['h1', 'h2'].map((name) => new Host(name, asked));
    const queue = new RebuildQueue(1, 1, 60_000);
    queue.add('farm', hosts, 'epoch');
    await turns();
    queue.stop();
    hosts[0]!.resend();
    queue.add('other', [new Host('o1', asked)], 'epoch');
    await turns();
    expect(asked).toEqual(['h1']);
    expect(queue.pending).toBe(0);
  });

  it('puts a farm found lost again, its hosts all asked, behind the farms found meanwhile', async () => {
    const asked: string[] = [];
    const a1 = new Host('a1', asked);
    const [b1, b2] = ['b1', 'b2'].map((name) => new Host(name, asked)) as [Host, Host];
    const queue = new RebuildQueue(1, 1, 60_000);
    queue.add('a', [a1], 'epoch-a1');
    queue.add('b', [b1, b2], 'epoch-b');
    await turns();
    expect(asked).toEqual(['a1']);
    a1.resend();
    await turns();
    // Farm a is lost again while b's hosts wait.
    queue.add('a', [a1], 'epoch-a2');
    b1.resend();
    await turns();
    b2.resend();
    await turns();
    expect(asked).toEqual(['a1', 'b1', 'b2', 'a1']);
  });
});
