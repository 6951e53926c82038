/**
 * The session list the spooled events lead to, kept beside the spool in `sessions.log` so that a
 * restarted agent diffs against what it reported rather than against nothing: a session that ended
 * while the agent was down then goes out as an `end`, not as a snapshot correction.
 *
 * The file is a journal: its first line is a whole list (`{"sessions":[...]}`), each further line
 * one event body of a poll (`{"op":"end","id":...}` or `{"op":"upsert","session":...}`). A poll
 * appends its events only, so what is written per poll follows the events, not the session count.
 * Appends are not fsynced: the spool's events are (they are what must not be lost), and a restart
 * replays the spool's pending events on top of the journal, so the journal only has to hold what
 * the collector already acked. A killed agent loses nothing (the data is in the page cache); after
 * a power loss the last appends may be missing, and a session they covered that has ended since
 * is repaired by the snapshot on connect instead of being sent as an `end`.
 *
 * The journal is compacted into one list line (written atomically and fsynced) when its appends
 * outgrow the list several times over, at start and at stop. A torn or corrupt line ends the
 * journal there: what follows it cannot be trusted to apply in order.
 */
import { readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Session } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { eventBody, jsonObject, readSession } from './event-line.js';
import { openPrivateFile, writePrivateFileAtomic } from './private-files.js';
import type { EventBody } from '../session/session-diff.js';

export const JOURNAL_FILE = 'sessions.log';
/** The whole list as earlier versions wrote it on every poll; read once, then replaced by the journal. */
const LEGACY_FILE = 'sessions.json';
/** Appends are compacted once they exceed this many times the list's size (and this floor). */
const COMPACT_RATIO = 4;
const COMPACT_FLOOR_BYTES = 256 * 1024;
/** A journal larger than this is not this agent's: it is not read (the snapshot repairs the state). */
const MAX_READ_BYTES = 64 * 1024 * 1024;

function readBody(line: string): EventBody | undefined {
  const raw = jsonObject(line);
  return raw === undefined ? undefined : eventBody(raw);
}

/** Applies event bodies to a list, in order. */
export function applyEvents(sessions: Map<string, Session>, bodies: Iterable<EventBody>): void {
  for (const body of bodies) {
    if (body.op === 'end') sessions.delete(body.id);
    else sessions.set(body.session.id, body.session);
  }
}

export class SessionJournal {
  private file: FileHandle | undefined;
  /** Bytes of the list line and of the appends after it. */
  private baseBytes = 0;
  private appendedBytes = 0;
  /** The file may not end where this journal thinks (a failed append): the next write compacts. */
  private broken = false;
  private failing = false;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  private get path(): string {
    return join(this.dir, JOURNAL_FILE);
  }

  /**
   * The list the journal leads to (an earlier version's `sessions.json` when there is no journal);
   * empty when there is neither or the first line is unreadable.
   */
  async read(): Promise<Map<string, Session>> {
    const sessions = new Map<string, Session>();
    const text = await this.readText(this.path);
    if (text === undefined) {
      const legacy = await this.readText(join(this.dir, LEGACY_FILE));
      if (legacy !== undefined) for (const session of this.readList(legacy)) sessions.set(session.id, session);
      return sessions;
    }
    const lines = text.split('\n');
    let base: unknown;
    try {
      base = JSON.parse(lines[0]!);
    } catch {
      base = undefined;
    }
    if (typeof base !== 'object' || base === null || !Array.isArray((base as { sessions?: unknown }).sessions)) {
      this.log.warn({ file: JOURNAL_FILE }, 'session journal unreadable: starting from the spooled events only');
      return sessions;
    }
    for (const item of (base as { sessions: unknown[] }).sessions) {
      const session = readSession(item);
      if (session) sessions.set(session.id, session);
    }
    for (let i = 1; i < lines.length; i += 1) {
      const line = lines[i]!;
      if (line === '') continue;
      const body = readBody(line);
      if (!body) {
        this.log.warn(
          { file: JOURNAL_FILE, line: i + 1 },
          'session journal ends in a torn or corrupt line: read up to it',
        );
        break;
      }
      applyEvents(sessions, [body]);
    }
    return sessions;
  }

  /** Appends one poll's events (no fsync); compacts to `current` when the appends have grown large. */
  async append(bodies: readonly EventBody[], current: () => readonly Session[]): Promise<void> {
    if (bodies.length === 0) return;
    if (this.broken || this.appendedBytes > Math.max(COMPACT_FLOOR_BYTES, this.baseBytes * COMPACT_RATIO)) {
      await this.compact(current());
      return;
    }
    const data = Buffer.from(bodies.map((body) => `${JSON.stringify(body)}\n`).join(''));
    try {
      this.file ??= await openPrivateFile(this.path, 'a');
      for (let offset = 0; offset < data.length;) offset += (await this.file.write(data, offset)).bytesWritten;
      this.appendedBytes += data.length;
      this.recovered();
    } catch (err) {
      this.broken = true;
      this.failed(err);
    }
  }

  /** Replaces the journal with one list line, atomically and durably. */
  async compact(sessions: readonly Session[]): Promise<void> {
    await this.closeFile();
    const line = `${JSON.stringify({ sessions })}\n`;
    try {
      await writePrivateFileAtomic(this.path, line);
      this.baseBytes = Buffer.byteLength(line);
      this.appendedBytes = 0;
      this.broken = false;
      this.recovered();
      await rm(join(this.dir, LEGACY_FILE), { force: true }).catch(() => undefined);
    } catch (err) {
      this.broken = true;
      this.failed(err);
    }
  }

  async close(sessions: readonly Session[]): Promise<void> {
    await this.compact(sessions);
    await this.closeFile();
  }

  private async closeFile(): Promise<void> {
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
  }

  private async readText(path: string): Promise<string | undefined> {
    try {
      if ((await stat(path)).size > MAX_READ_BYTES) {
        this.log.warn({ file: path, maxBytes: MAX_READ_BYTES }, 'session list file too large: not read');
        return undefined;
      }
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  private readList(text: string): Session[] {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return [];
    }
    if (!Array.isArray(raw)) return [];
    return raw.map(readSession).filter((session): session is Session => session !== undefined);
  }

  private failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.log.warn(
      { err: { code: (err as NodeJS.ErrnoException).code } },
      'could not write the session list beside the spool; trying again with the next events',
    );
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.log.info('session list beside the spool written again');
  }
}
