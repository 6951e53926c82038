/**
 * The agent's append-only spool (docs/design.md §5: nothing lost). Every event gets its seq and is written
 * and fsynced here before it is sent; it leaves only when the collector acks it. The spool is
 * bounded in bytes: when full, the oldest events are dropped (counted and logged) and the gap this
 * leaves makes the collector ask for a snapshot, which repairs the state.
 *
 * Files in the spool directory:
 *  - `state.json`: `{stream, acked, reserved}`, replaced atomically (write, fsync, rename).
 *    `reserved` is the highest seq handed out for a snapshot, so no seq is ever used twice.
 *  - `events.log`: one JSON event per line, in seq order; a torn last line (a crash mid-write) is
 *    dropped at open.
 * Losing `state.json` starts a new stream: the collector then treats this host's sequence as new.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentEvent } from '@rasmon/protocol';
import type { Logger } from 'pino';
import type { EventBody } from './session-diff.js';

interface SpoolState {
  stream: string;
  acked: number;
  reserved: number;
}

interface Entry {
  event: AgentEvent;
  bytes: number;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  log: Logger;
}

export class Spool {
  private entries: Entry[] = [];
  private bytes = 0;
  /** Bytes in events.log, acked lines included until the next rewrite. */
  private fileBytes = 0;
  private lastSeq: number;
  private droppedTotal = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private file: FileHandle | undefined;

  private constructor(
    private readonly options: SpoolOptions,
    private state: SpoolState,
  ) {
    this.lastSeq = Math.max(state.acked, state.reserved);
  }

  /** Opens (or creates) the spool in `dir`, recovering what a previous run left. */
  static async open(options: SpoolOptions): Promise<Spool> {
    mkdirSync(options.dir, { recursive: true });
    const statePath = join(options.dir, 'state.json');
    let state: SpoolState | undefined;
    try {
      const parsed = JSON.parse(await readFile(statePath, 'utf8')) as Partial<SpoolState>;
      if (typeof parsed.stream === 'string' && Number.isSafeInteger(parsed.acked) && Number.isSafeInteger(parsed.reserved)) {
        state = { stream: parsed.stream, acked: parsed.acked!, reserved: parsed.reserved! };
      }
    } catch {
      // Missing or unreadable: a new stream below.
    }
    if (!state) {
      state = { stream: `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`, acked: 0, reserved: 0 };
      options.log.info({ stream: state.stream }, 'no spool state: starting a new stream');
      await rm(join(options.dir, 'events.log'), { force: true });
    }
    const spool = new Spool(options, state);
    await spool.recover();
    await spool.writeState();
    return spool;
  }

  get stream(): string {
    return this.state.stream;
  }

  get ackedSeq(): number {
    return this.state.acked;
  }

  /** Events written and not yet acked. */
  get depth(): number {
    return this.entries.length;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  get dropped(): number {
    return this.droppedTotal;
  }

  /** Unacked events with seq above `seq`, oldest first. */
  pendingAfter(seq: number): AgentEvent[] {
    return this.entries.filter((entry) => entry.event.seq > seq).map((entry) => entry.event);
  }

  /** Gives the events their seqs and makes them durable; resolves once fsynced. */
  append(bodies: readonly EventBody[], at: number): Promise<AgentEvent[]> {
    return this.serial(async () => {
      const events = bodies.map((body) => ({ ...body, seq: (this.lastSeq += 1), at }) as AgentEvent);
      let added = events.map((event) => {
        const line = `${JSON.stringify(event)}\n`;
        return { event, bytes: Buffer.byteLength(line), line };
      });
      let addedBytes = added.reduce((sum, entry) => sum + entry.bytes, 0);
      if (this.bytes + addedBytes > this.options.maxBytes) {
        const target = Math.floor(this.options.maxBytes * 0.9);
        this.dropOldest(this.bytes + addedBytes - target);
        // A batch larger than the spool itself loses its own oldest events too.
        let batchDropped = 0;
        while (added.length > 0 && this.bytes + addedBytes > target) {
          addedBytes -= added[0]!.bytes;
          added = added.slice(1);
          batchDropped += 1;
        }
        if (batchDropped > 0) this.noteDropped(batchDropped);
        // Dropped events must not come back at the next open.
        await this.rewriteLog();
      }
      for (const { event, bytes } of added) this.entries.push({ event, bytes });
      this.bytes += addedBytes;
      if (added.length > 0) {
        const file = await this.logFile();
        await file.write(added.map((entry) => entry.line).join(''));
        await file.sync();
        this.fileBytes += addedBytes;
      }
      return added.map((entry) => entry.event);
    });
  }

  /** A seq for a snapshot, made durable before it is used. */
  reserveSeq(): Promise<number> {
    return this.serial(async () => {
      this.lastSeq += 1;
      this.state.reserved = this.lastSeq;
      await this.writeState();
      return this.lastSeq;
    });
  }

  /** Everything up to `seq` is applied by the collector: it leaves the spool. */
  ack(seq: number): Promise<void> {
    return this.serial(async () => {
      if (seq <= this.state.acked) return;
      this.state.acked = seq;
      // An ack past what was handed out means the collector knows this stream from elsewhere.
      if (seq > this.lastSeq) this.lastSeq = seq;
      let removed = 0;
      while (this.entries.length > 0 && this.entries[0]!.event.seq <= seq) removed += this.entries.shift()!.bytes;
      this.bytes -= removed;
      await this.writeState();
      // Acked lines may stay in the log (an open skips them); it is rewritten when it is mostly
      // acked, so catching up after an outage does not rewrite a large spool at every ack.
      const ackedBytes = this.fileBytes - this.bytes;
      if (this.entries.length === 0 ? this.fileBytes > 0 : ackedBytes > Math.max(this.bytes, 1_048_576)) {
        await this.rewriteLog();
      }
    });
  }

  async close(): Promise<void> {
    await this.chain;
    await this.file?.close();
    this.file = undefined;
  }

  private dropOldest(needed: number): void {
    let freed = 0;
    let count = 0;
    while (this.entries.length > 0 && freed < needed) {
      freed += this.entries.shift()!.bytes;
      count += 1;
    }
    this.bytes -= freed;
    if (count > 0) this.noteDropped(count);
  }

  private noteDropped(count: number): void {
    this.droppedTotal += count;
    this.options.log.warn(
      { dropped: count, droppedTotal: this.droppedTotal, maxBytes: this.options.maxBytes },
      'spool full: dropped the oldest events; the next snapshot repairs the state',
    );
  }

  private async recover(): Promise<void> {
    let text = '';
    try {
      text = await readFile(join(this.options.dir, 'events.log'), 'utf8');
    } catch {
      return;
    }
    let torn = false;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let event: AgentEvent;
      try {
        event = JSON.parse(line) as AgentEvent;
      } catch {
        torn = true;
        continue;
      }
      if (!Number.isSafeInteger(event.seq)) continue;
      this.lastSeq = Math.max(this.lastSeq, event.seq);
      if (event.seq <= this.state.acked) continue;
      const bytes = Buffer.byteLength(line) + 1;
      this.entries.push({ event, bytes });
      this.bytes += bytes;
    }
    if (torn) this.options.log.warn('spool log ended in a torn line (a crash mid-write): dropped it');
    this.options.log.info({ pending: this.entries.length, acked: this.state.acked, lastSeq: this.lastSeq }, 'spool recovered');
    await this.rewriteLog();
  }

  /** Replaces the log with the pending events only (atomically). */
  private async rewriteLog(): Promise<void> {
    await this.file?.close();
    this.file = undefined;
    const path = join(this.options.dir, 'events.log');
    const tmp = `${path}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      if (this.entries.length > 0) await handle.write(this.entries.map((entry) => `${JSON.stringify(entry.event)}\n`).join(''));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    this.fileBytes = this.bytes;
  }

  private async writeState(): Promise<void> {
    const path = join(this.options.dir, 'state.json');
    const tmp = `${path}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.write(JSON.stringify(this.state));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  }

  private async logFile(): Promise<FileHandle> {
    this.file ??= await open(join(this.options.dir, 'events.log'), 'a');
    return this.file;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
