import { mkdtempSync, readFileSync, appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Session } from '@rasmon/protocol';
import { Spool } from '../src/spool.js';

const log = pino({ level: 'silent' });
const session = (id: string): Session => ({ id, user: `CORP\\u${id}`, admin: false, kind: 'desktop', via: 'ras', state: 'active', since: 1 });
const upsert = (id: string) => ({ op: 'upsert' as const, session: session(id) });

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'rasmon-spool-'));
}

describe('spool', () => {
  it('numbers events from 1, keeps them until acked, and survives a reopen', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    const events = await spool.append([upsert('1'), upsert('2'), { op: 'end', id: '1' }], 10);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    await spool.ack(2);
    expect(spool.pendingAfter(0).map((e) => e.seq)).toEqual([3]);
    await spool.close();
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.stream).toBe(spool.stream);
    expect(again.ackedSeq).toBe(2);
    expect(again.pendingAfter(0)).toEqual([{ op: 'end', id: '1', seq: 3, at: 10 }]);
    expect((await again.append([upsert('4')], 11))[0]!.seq).toBe(4);
    await again.close();
    rmSync(path, { recursive: true });
  });

  it('never hands out a seq twice: a snapshot seq is durable before it is used', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1')], 1);
    expect(await spool.reserveSeq()).toBe(2);
    await spool.close();
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect((await again.append([upsert('2')], 2))[0]!.seq).toBe(3);
    await again.close();
  });

  it('drops a torn last line left by a crash mid-write', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1'), upsert('2')], 1);
    await spool.close();
    appendFileSync(join(path, 'events.log'), '{"op":"upsert","sess');
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.pendingAfter(0).map((e) => e.seq)).toEqual([1, 2]);
    expect((await again.append([upsert('3')], 2))[0]!.seq).toBe(3);
    await again.close();
  });

  it('starts a new stream when its state is lost', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1')], 1);
    await spool.close();
    writeFileSync(join(path, 'state.json'), 'garbage');
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.stream).not.toBe(spool.stream);
    expect(again.pendingAfter(0)).toEqual([]);
    expect((await again.append([upsert('1')], 1))[0]!.seq).toBe(1);
    await again.close();
  });

  it('when full, drops the oldest events, counts them, and they do not come back', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 4096, log });
    for (let i = 0; i < 100; i += 1) await spool.append([upsert(String(i))], i);
    expect(spool.sizeBytes).toBeLessThanOrEqual(4096);
    expect(spool.dropped).toBeGreaterThan(0);
    const kept = spool.pendingAfter(0).map((e) => e.seq);
    expect(kept.at(-1)).toBe(100);
    expect(kept[0]).toBe(spool.dropped + 1);
    await spool.close();
    const again = await Spool.open({ dir: path, maxBytes: 4096, log });
    expect(again.pendingAfter(0).map((e) => e.seq)).toEqual(kept);
    await again.close();
  });

  it('an ack of everything empties the log file', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1'), upsert('2')], 1);
    await spool.ack(2);
    expect(readFileSync(join(path, 'events.log'), 'utf8')).toBe('');
    expect(spool.depth).toBe(0);
    await spool.close();
  });

  it('a single batch larger than the spool keeps only its newest events', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 4096, log });
    const kept = await spool.append(Array.from({ length: 60 }, (_, i) => upsert(String(i))), 1);
    expect(spool.sizeBytes).toBeLessThanOrEqual(4096);
    expect(spool.dropped).toBe(60 - kept.length);
    expect(kept.at(-1)!.seq).toBe(60);
    expect(spool.pendingAfter(0)).toEqual(kept);
    await spool.close();
  });
});
