/**
 * The agent's append-only spool (docs/design.md §5: nothing lost). Every event gets its seq and is written
 * and fsynced here before it is sent; it leaves only when the collector acks it. The spool is
 * bounded in bytes: when full, the oldest events are dropped (counted and logged) and the gap this
 * leaves makes the collector ask for a snapshot, which repairs the state.
 *
 * The directory is the agent's alone (0700, its files 0600: private-files.ts). Files in it:
 *  - `state.json`: `{stream, acked, reserved}`, replaced atomically (write, fsync, rename) when
 *    the stream starts, a seq is reserved, the log is rewritten and at close, not at every ack.
 *    `reserved` is the highest seq handed out for a snapshot, so no seq is ever used twice.
 *  - `acked.json`: `{stream, acked}`, the latest ack, overwritten in place at every ack and never
 *    fsynced. Losing it is harmless: it only lets an open skip more acked lines than state.json.
 *  - `events.log`: one JSON event per line, in seq order; appended and fsynced per append. Acked
 *    lines stay until they outgrow the pending ones (an open skips those the state says acked).
 *
 * It never loses an event silently: every event that will not reach the collector — dropped
 * because the spool is full, a corrupt or torn line, one too large for any frame, a log set aside
 * with a corrupt state — is counted in `dropped` (`rasmon_agent_spool_dropped_total`) and logged.
 * A write that fails (a full disk) is cut back to the last good offset, so the next write is not
 * glued onto half a line; its events stay in memory, within `maxBytes`, and are still sent, and
 * the next write tries again. A corrupt `state.json` or an unreadable `events.log` is renamed aside
 * (never deleted) and a new stream starts; the snapshot on connect repairs the collector's state.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentEvent } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { eventBody, jsonObject } from './event-line.js';
import { openPrivateFile, preparePrivateDirectory, writePrivateFileAtomic } from './private-files.js';
import type { EventBody } from '../session/session-diff.js';

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

const STATE_FILE = 'state.json';
const ACK_FILE = 'acked.json';
/** acked.json is rewritten in place at this width (padded with spaces), so no write leaves a tail. */
const ACK_WIDTH = 128;
const FULL = 'the spool is full';
const LOG_FILE = 'events.log';

const isSafeSeq = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** A line of `events.log` as this agent writes it, or undefined when it is not one. */
function readEvent(line: string): AgentEvent | undefined {
  const event = jsonObject(line);
  if (event === undefined || !isSafeSeq(event.seq) || event.seq === 0 || !isSafeSeq(event.at)) return undefined;
  return eventBody(event) === undefined ? undefined : (event as unknown as AgentEvent);
}

/** A new stream name: unique per install and per restart of the sequence. */
export function newStream(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

export class Spool {
  private entries: Entry[] = [];
  private bytes = 0;
  /** Bytes in events.log, acked lines included until the next rewrite. */
  private fileBytes = 0;
  /** The newest entries that are in memory only: their write failed. */
  private unwritten = 0;
  /** events.log may not match `fileBytes` (a failed write could not be cut back): rewrite it whole. */
  private logDirty = false;
  private lastSeq: number;
  private droppedTotal = 0;
  private writeErrorsTotal = 0;
  /** Inside a run of failed writes: logged once at its start and once at its end. */
  private failing = false;
  private chain: Promise<unknown> = Promise.resolve();
  private file: FileHandle | undefined;
  private ackFile: FileHandle | undefined;

  private constructor(
    private readonly options: SpoolOptions,
    private state: SpoolState,
  ) {
    this.lastSeq = Math.max(state.acked, state.reserved);
  }

  /** Opens (or creates) the spool in `dir`, recovering what a previous run left. */
  static async open(options: SpoolOptions): Promise<Spool> {
    preparePrivateDirectory(options.dir, options.log);
    const { state, lostWithState } = await Spool.readState(options);
    state.acked = Math.max(state.acked, await Spool.readAck(options, state.stream));
    const spool = new Spool(options, state);
    if (lostWithState > 0) spool.noteDropped(lostWithState, 'their stream state was corrupt (log set aside)');
    await spool.recover();
    await spool.tryWrite(() => spool.writeState());
    return spool;
  }

  /**
   * Reads `state.json`. Missing: a new stream. Unreadable or invalid: it is renamed aside, and
   * the log with it (its seqs mean nothing without the stream), and a new stream starts.
   */
  private static async readState(options: SpoolOptions): Promise<{ state: SpoolState; lostWithState: number }> {
    const { dir, log } = options;
    const statePath = join(dir, STATE_FILE);
    const fresh = { stream: newStream(), acked: 0, reserved: 0 };
    let text: string;
    try {
      text = await readFile(statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        log.info({ stream: fresh.stream }, 'no spool state: starting a new stream');
        // A log without its state cannot be numbered: set it aside like a corrupt one.
        return { state: fresh, lostWithState: await Spool.setAside(options, LOG_FILE) };
      }
      text = '';
    }
    let parsed: Partial<SpoolState> | undefined;
    try {
      parsed = JSON.parse(text) as Partial<SpoolState>;
    } catch {
      parsed = undefined;
    }
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      typeof parsed.stream === 'string' &&
      parsed.stream.length > 0 &&
      parsed.stream.length <= 64 &&
      isSafeSeq(parsed.acked) &&
      isSafeSeq(parsed.reserved)
    ) {
      return { state: { stream: parsed.stream, acked: parsed.acked, reserved: parsed.reserved }, lostWithState: 0 };
    }
    const aside = await Spool.setAside(options, STATE_FILE, false);
    const lost = await Spool.setAside(options, LOG_FILE);
    log.error(
      { stateSetAside: aside === 0 ? undefined : `${STATE_FILE}.corrupt-*`, stream: fresh.stream, lost },
      'spool state is corrupt: renamed it and its log aside and started a new stream; the next snapshot repairs the collector',
    );
    return { state: fresh, lostWithState: lost };
  }

  /**
   * Renames `name` to `name.corrupt-<time>`; returns how many event lines it held (for a log), or
   * 1 when it was set aside and `countLines` is false; 0 when there was nothing.
   */
  private static async setAside(options: SpoolOptions, name: string, countLines = true): Promise<number> {
    const path = join(options.dir, name);
    let count = 1;
    if (countLines) {
      try {
        count = (await readFile(path, 'utf8')).split('\n').filter((line) => line.trim() !== '').length;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        count = 0;
      }
    }
    const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      await rename(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    if (count > 0 || !countLines) options.log.warn({ file: name, setAside: aside }, 'spool file set aside');
    return count;
  }

  get stream(): string {
    return this.state.stream;
  }

  get ackedSeq(): number {
    return this.state.acked;
  }

  /** The highest seq this spool has handed out (events and snapshots). */
  get highestSeq(): number {
    return this.lastSeq;
  }

  /** Events written and not yet acked. */
  get depth(): number {
    return this.entries.length;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Events lost, whatever the cause (full spool, corrupt on disk, too large for a frame). */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Writes to the spool directory that failed (a full disk, an I/O error). */
  get writeErrors(): number {
    return this.writeErrorsTotal;
  }

  /** Unacked events with seq above `seq`, oldest first. */
  pendingAfter(seq: number): AgentEvent[] {
    return this.entries.filter((entry) => entry.event.seq > seq).map((entry) => entry.event);
  }

  /**
   * Gives the events their seqs and makes them durable; resolves once fsynced, or once the write
   * failed (then they are held in memory and written with the next append).
   */
  append(bodies: readonly EventBody[], at: number): Promise<AgentEvent[]> {
    return this.serial(async () => {
      const events = bodies.map((body) => ({ ...body, seq: (this.lastSeq += 1), at }));
      let added = events.map((event) => ({ event, bytes: Buffer.byteLength(`${JSON.stringify(event)}\n`) }));
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
        if (batchDropped > 0) this.noteDropped(batchDropped, FULL);
        // Dropped events must not come back at the next open.
        this.logDirty = true;
      }
      this.entries.push(...added);
      this.bytes += addedBytes;
      this.unwritten += added.length;
      await this.persist();
      return added.map((entry) => entry.event);
    });
  }

  /**
   * A seq for a snapshot, made durable before it is used when the disk allows. When it does not,
   * the seq is used anyway: should this agent restart and hand it out again, the collector's
   * welcome acks a seq above this spool's, and the agent starts a new stream.
   */
  reserveSeq(): Promise<number> {
    return this.serial(async () => {
      this.lastSeq += 1;
      this.state.reserved = this.lastSeq;
      await this.tryWrite(() => this.writeState());
      return this.lastSeq;
    });
  }

  /** Everything up to `seq` is applied by the collector: it leaves the spool. */
  ack(seq: number): Promise<void> {
    return this.serial(async () => {
      if (seq <= this.state.acked) return;
      if (seq > this.lastSeq) throw new Error(`ack for seq ${seq} above the highest seq handed out (${this.lastSeq})`);
      this.state.acked = seq;
      let removed = 0;
      while (this.entries.length > 0 && this.entries[0]!.event.seq <= seq) removed += this.entries.shift()!.bytes;
      this.bytes -= removed;
      this.unwritten = Math.min(this.unwritten, this.entries.length);
      // Neither fsynced nor the log rewritten here: an ack lost in a crash only brings acked
      // events back from the log at the next open, and the collector's welcome acks them again
      // before anything is sent. The log is rewritten (with the state first) once its acked
      // lines outgrow both the pending ones and 1 MiB, so a poll's ack costs one small write.
      await this.tryWrite(() => this.writeAck());
      const ackedBytes = this.fileBytes - this.bytes;
      if (ackedBytes > Math.max(this.bytes, 1_048_576)) this.logDirty = true;
      if (this.logDirty || this.unwritten > 0) await this.persist();
    });
  }

  /**
   * Starts a new stream: the pending events are numbered again from 1. For a collector whose
   * welcome acks a seq this spool never handed out (its state was restored from an older copy,
   * or seqs handed out while the disk was full were lost in a restart): the old stream's seqs
   * cannot be trusted, the events are kept.
   */
  restartStream(stream = newStream()): Promise<string> {
    return this.serial(async () => {
      let seq = 0;
      this.entries = this.entries.map((entry) => {
        const event = { ...entry.event, seq: (seq += 1) };
        return { event, bytes: Buffer.byteLength(`${JSON.stringify(event)}\n`) };
      });
      this.bytes = this.entries.reduce((sum, entry) => sum + entry.bytes, 0);
      this.lastSeq = seq;
      this.state = { stream, acked: 0, reserved: 0 };
      this.logDirty = true;
      await this.tryWrite(() => this.writeState());
      await this.persist();
      this.options.log.warn({ stream, pending: seq }, 'started a new stream; pending events renumbered');
      return stream;
    });
  }

  /** Drops one pending event that can never be sent (larger than any frame the collector accepts). */
  discard(seq: number, why: string): Promise<void> {
    return this.serial(async () => {
      const index = this.entries.findIndex((entry) => entry.event.seq === seq);
      if (index < 0) return;
      const [entry] = this.entries.splice(index, 1);
      this.bytes -= entry!.bytes;
      this.unwritten = Math.min(this.unwritten, this.entries.length);
      this.noteDropped(1, why);
      this.logDirty = true;
      await this.persist();
    });
  }

  /** Drops the acked lines from the log, writes the state (the latest ack) and closes the files. */
  async close(): Promise<void> {
    await this.serial(async () => {
      if (this.fileBytes > this.bytes) this.logDirty = true;
      if (this.logDirty || this.unwritten > 0) await this.persist();
      await this.tryWrite(() => this.writeState());
    });
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    await this.ackFile?.close().catch(() => undefined);
    this.ackFile = undefined;
  }

  private dropOldest(needed: number): void {
    let freed = 0;
    let count = 0;
    while (this.entries.length > 0 && freed < needed) {
      freed += this.entries.shift()!.bytes;
      count += 1;
    }
    this.bytes -= freed;
    this.unwritten = Math.min(this.unwritten, this.entries.length);
    if (count > 0) this.noteDropped(count, FULL);
  }

  private noteDropped(count: number, why: string): void {
    this.droppedTotal += count;
    this.options.log.warn(
      { dropped: count, droppedTotal: this.droppedTotal, maxBytes: this.options.maxBytes, why },
      why === FULL
        ? 'spool full: dropped the oldest events; the next snapshot repairs the state'
        : 'spool dropped events; the next snapshot repairs the state',
    );
  }

  private async recover(): Promise<void> {
    let text = '';
    try {
      text = await readFile(join(this.options.dir, LOG_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      // A directory, or a file this agent cannot read: out of the way, so the spool works again.
      this.options.log.error({ err: { code: (err as NodeJS.ErrnoException).code } }, 'spool log unreadable');
      await Spool.setAside(this.options, LOG_FILE, false);
      return;
    }
    let corrupt = 0;
    let previous = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const event = readEvent(line);
      // Out of order cannot be trusted either: seqs are written ascending.
      if (!event || event.seq <= previous) {
        corrupt += 1;
        continue;
      }
      previous = event.seq;
      this.lastSeq = Math.max(this.lastSeq, event.seq);
      if (event.seq <= this.state.acked) continue;
      const bytes = Buffer.byteLength(line) + 1;
      this.entries.push({ event, bytes });
      this.bytes += bytes;
    }
    if (corrupt > 0) this.noteDropped(corrupt, 'corrupt or torn lines in the spool log (skipped)');
    this.options.log.info(
      { pending: this.entries.length, acked: this.state.acked, lastSeq: this.lastSeq },
      'spool recovered',
    );
    this.logDirty = true;
    await this.persist();
  }

  /** Brings events.log in line with the entries: appends what is unwritten, or rewrites it whole. */
  private async persist(): Promise<void> {
    const ok = await this.tryWrite(async () => {
      if (this.logDirty) {
        await this.rewriteLog();
        return;
      }
      if (this.unwritten === 0) return;
      const lines = this.entries
        .slice(this.entries.length - this.unwritten)
        .map((entry) => `${JSON.stringify(entry.event)}\n`);
      const data = Buffer.from(lines.join(''));
      const file = await this.logFile();
      try {
        // One write may take only part (a nearly full disk); the rest then fails with ENOSPC.
        for (let offset = 0; offset < data.length;) offset += (await file.write(data, offset)).bytesWritten;
        await file.sync();
      } catch (err) {
        // Cut a half-written line back off, or the next write would be glued onto it.
        await file.truncate(this.fileBytes).catch(() => {
          this.logDirty = true;
        });
        throw err;
      }
      this.fileBytes += data.length;
      this.unwritten = 0;
    });
    if (!ok && this.file && this.logDirty) {
      await this.file.close().catch(() => undefined);
      this.file = undefined;
    }
  }

  /** Runs a write; a failure is counted and logged (once per run of failures), not thrown. */
  private async tryWrite(write: () => Promise<void>): Promise<boolean> {
    try {
      await write();
    } catch (err) {
      this.writeErrorsTotal += 1;
      if (!this.failing) {
        this.failing = true;
        this.options.log.error(
          {
            err: { code: (err as NodeJS.ErrnoException).code, message: (err as Error).message },
            inMemory: this.unwritten,
          },
          'spool write failed: events are held in memory (within the spool size) and sent; writing again with the next event',
        );
      }
      return false;
    }
    if (this.failing && this.unwritten === 0 && !this.logDirty) {
      this.failing = false;
      this.options.log.info({ writeErrors: this.writeErrorsTotal }, 'spool writes work again');
    }
    return true;
  }

  /**
   * Replaces the log with the pending events only (atomically). The state goes first: once the
   * acked lines are gone, only `state.json` remembers the seqs they used.
   */
  private async rewriteLog(): Promise<void> {
    await this.writeState();
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    await writePrivateFileAtomic(
      join(this.options.dir, LOG_FILE),
      this.entries.map((entry) => `${JSON.stringify(entry.event)}\n`).join(''),
    );
    this.fileBytes = this.bytes;
    this.unwritten = 0;
    this.logDirty = false;
  }

  private async writeAck(): Promise<void> {
    const text = JSON.stringify({ stream: this.state.stream, acked: this.state.acked });
    if (text.length >= ACK_WIDTH) throw new Error('ack record wider than its slot');
    this.ackFile ??= await openPrivateFile(join(this.options.dir, ACK_FILE), 'w');
    await this.ackFile.write(Buffer.from(text.padEnd(ACK_WIDTH - 1, ' ') + '\n'), 0, ACK_WIDTH, 0);
  }

  /** The ack in acked.json when it belongs to `stream` (0 when missing or unreadable). */
  private static async readAck(options: SpoolOptions, stream: string): Promise<number> {
    try {
      const raw = JSON.parse(await readFile(join(options.dir, ACK_FILE), 'utf8')) as {
        stream?: unknown;
        acked?: unknown;
      };
      return raw.stream === stream && isSafeSeq(raw.acked) ? raw.acked : 0;
    } catch {
      return 0;
    }
  }

  private async writeState(): Promise<void> {
    await writePrivateFileAtomic(join(this.options.dir, STATE_FILE), JSON.stringify(this.state));
  }

  private async logFile(): Promise<FileHandle> {
    this.file ??= await openPrivateFile(join(this.options.dir, LOG_FILE), 'a');
    return this.file;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
