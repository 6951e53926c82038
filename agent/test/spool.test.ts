import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { session } from './support/sessions.js';
import { Spool } from '../src/link/spool.js';

const log = pino({ level: 'silent' });
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

  it('an ack writes neither the log nor state.json: a reopen skips the acked lines by acked.json', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1'), upsert('2')], 1);
    const logBefore = readFileSync(join(path, 'events.log'), 'utf8');
    const stateBefore = readFileSync(join(path, 'state.json'), 'utf8');
    await spool.ack(2);
    expect(spool.depth).toBe(0);
    expect(readFileSync(join(path, 'events.log'), 'utf8')).toBe(logBefore);
    expect(readFileSync(join(path, 'state.json'), 'utf8')).toBe(stateBefore);
    // As a killed agent leaves it: no close.
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.ackedSeq).toBe(2);
    expect(again.pendingAfter(0)).toEqual([]);
    expect((await again.append([upsert('3')], 2))[0]!.seq).toBe(3);
    await again.close();
    await spool.close();
  });

  it('acked lines leave the log once they outgrow the pending ones and 1 MiB', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 8 << 20, log });
    const events = await spool.append(
      Array.from({ length: 8000 }, (_, i) => upsert(String(i))),
      1,
    );
    expect(statSync(join(path, 'events.log')).size).toBeGreaterThan(1 << 20);
    await spool.ack(events.at(-1)!.seq);
    expect(readFileSync(join(path, 'events.log'), 'utf8')).toBe('');
    expect(JSON.parse(readFileSync(join(path, 'state.json'), 'utf8'))).toMatchObject({ acked: events.at(-1)!.seq });
    await spool.close();
  });

  it('a single batch larger than the spool keeps only its newest events', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 4096, log });
    const kept = await spool.append(
      Array.from({ length: 60 }, (_, i) => upsert(String(i))),
      1,
    );
    expect(spool.sizeBytes).toBeLessThanOrEqual(4096);
    expect(spool.dropped).toBe(60 - kept.length);
    expect(kept.at(-1)!.seq).toBe(60);
    expect(spool.pendingAfter(0)).toEqual(kept);
    await spool.close();
  });
});

describe('spool that never loses silently', () => {
  /** Every line of events.log must be a whole event: a failed write may not leave half of one. */
  function wholeLines(path: string): number[] {
    const text = readFileSync(join(path, 'events.log'), 'utf8');
    if (text !== '') expect(text.endsWith('\n'), 'events.log ends with a whole line').toBe(true);
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { seq: number }).seq);
  }

  it('skips and counts corrupt lines (null, garbage, out of order) and starts without crashing', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1'), upsert('2')], 1);
    await spool.close();
    appendFileSync(join(path, 'events.log'), 'null\n{"seq":"x"}\n[]\n{"seq":1,"at":1,"op":"end","id":"a"}\n');
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.pendingAfter(0).map((e) => e.seq)).toEqual([1, 2]);
    expect(again.dropped).toBe(4);
    expect(wholeLines(path)).toEqual([1, 2]);
    await again.close();
  });

  it('counts a torn last line as lost', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1')], 1);
    await spool.close();
    appendFileSync(join(path, 'events.log'), '{"op":"upsert","sess');
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.dropped).toBe(1);
    await again.close();
  });

  for (const [what, corrupt] of [
    ['empty', (file: string) => writeFileSync(file, '')],
    ['garbage', (file: string) => writeFileSync(file, '{"stream":')],
    ['a directory', (file: string) => mkdirSync(file)],
    ['null', (file: string) => writeFileSync(file, 'null')],
  ] as const) {
    it(`a state.json that is ${what} is renamed aside with its log, the events counted, and a new stream starts`, async () => {
      const path = dir();
      const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
      await spool.append([upsert('1'), upsert('2'), upsert('3')], 1);
      await spool.close();
      rmSync(join(path, 'state.json'));
      corrupt(join(path, 'state.json'));
      const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
      expect(again.stream).not.toBe(spool.stream);
      expect(again.dropped).toBe(3);
      const aside = readdirSync(path).filter((name) => name.includes('.corrupt-'));
      expect(aside.some((name) => name.startsWith('state.json.corrupt-'))).toBe(true);
      const logAside = aside.find((name) => name.startsWith('events.log.corrupt-'));
      expect(readFileSync(join(path, logAside!), 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
      expect((await again.append([upsert('9')], 2))[0]!.seq).toBe(1);
      await again.close();
      rmSync(path, { recursive: true });
    });
  }

  it('restarting the stream keeps the pending events, numbered again from 1', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1'), upsert('2'), upsert('3')], 1);
    await spool.ack(1);
    const old = spool.stream;
    const stream = await spool.restartStream();
    expect(stream).not.toBe(old);
    expect(spool.pendingAfter(0).map((e) => [e.seq, e.op === 'upsert' ? e.session.id : e.id])).toEqual([
      [1, '2'],
      [2, '3'],
    ]);
    await spool.close();
    const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    expect(again.stream).toBe(stream);
    expect(again.pendingAfter(0).map((e) => e.seq)).toEqual([1, 2]);
    expect(again.dropped).toBe(0);
    await again.close();
  });

  it('refuses an ack above the highest seq it handed out and saves nothing', async () => {
    const path = dir();
    const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
    await spool.append([upsert('1')], 1);
    await expect(spool.ack(Number.MAX_SAFE_INTEGER)).rejects.toThrow(/above the highest seq/);
    expect(spool.ackedSeq).toBe(0);
    expect(spool.depth).toBe(1);
    await spool.close();
  });

  /*
   * A full disk, for real: the spool lives on a 64 KiB tmpfs that a filler file nearly fills.
   * Needs root (mount); elsewhere the test is skipped and says so.
   */
  const canMount = process.getuid?.() === 0 && process.platform === 'linux';
  it.skipIf(!canMount)(
    'on a full disk keeps the events in memory, never leaves half a line, and writes them all once there is room',
    async () => {
      const mountPoint = dir();
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint]);
      try {
        const path = join(mountPoint, 'spool');
        const spool = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
        // Fill the disk but for a few KB.
        const filler = join(mountPoint, 'filler');
        writeFileSync(filler, Buffer.alloc(48 * 1024));
        try {
          for (let i = 0; ; i += 1) appendFileSync(filler, Buffer.alloc(1024));
        } catch {
          // ENOSPC: full.
        }
        let sent = 0;
        for (let i = 0; i < 40; i += 1) {
          const events = await spool.append(
            Array.from({ length: 5 }, (_, j) => upsert(`${i}-${j}`)),
            i,
          );
          sent += events.length;
          // Whatever reached the disk is whole lines, in order.
          const seqs = wholeLines(path);
          expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        }
        expect(sent).toBe(200);
        expect(spool.writeErrors).toBeGreaterThan(0);
        expect(spool.dropped).toBe(0);
        expect(spool.pendingAfter(0)).toHaveLength(200);
        expect(wholeLines(path).length).toBeLessThan(200);
        // Room again: the next write brings the log up to date.
        rmSync(filler);
        await spool.append([upsert('last')], 99);
        expect(wholeLines(path)).toEqual(Array.from({ length: 201 }, (_, i) => i + 1));
        await spool.close();
        const again = await Spool.open({ dir: path, maxBytes: 1 << 20, log });
        expect(again.pendingAfter(0)).toHaveLength(201);
        expect(again.dropped).toBe(0);
        await again.close();
      } finally {
        execFileSync('umount', [mountPoint]);
        rmSync(mountPoint, { recursive: true });
      }
    },
  );
});
