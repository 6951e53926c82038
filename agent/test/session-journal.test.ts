import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Session } from '@rasmon/protocol';
import { session } from './support/sessions.js';
import { SessionDiff, type EventBody } from '../src/session/session-diff.js';
import { JOURNAL_FILE, SessionJournal } from '../src/link/session-journal.js';

const log = pino({ level: 'silent' });
const hosts = (count: number) => Array.from({ length: count }, (_, i) => session(String(i + 1)));
const lineBytes = (bodies: readonly EventBody[]) =>
  bodies.reduce((sum, body) => sum + Buffer.byteLength(`${JSON.stringify(body)}\n`), 0);

/** A directory of its own, removed when the test finishes. */
function dir(): string {
  const path = mkdtempSync(join(tmpdir(), 'rasmon-journal-'));
  onTestFinished(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

/** A journal started from `list` (as the agent starts it), with a diff beside it. */
async function started(path: string, list: readonly Session[]) {
  const journal = new SessionJournal(path, log);
  const diff = new SessionDiff();
  diff.restore(list);
  await journal.compact(diff.sessions());
  const poll = async (next: readonly Session[]) => {
    const events = diff.next(next);
    await journal.append(events, () => diff.sessions());
    return events;
  };
  return { journal, diff, poll };
}

describe('session journal', () => {
  it('a poll appends its events only: the bytes written follow the events, not the session count', async () => {
    const grown: number[] = [];
    for (const count of [20, 2000]) {
      const path = dir();
      const list = hosts(count);
      const { journal, poll } = await started(path, list);
      const size = statSync(join(path, JOURNAL_FILE)).size;
      const next = [...list.slice(1), session('1', { state: 'disconnected' }), session('new')].slice(0, count);
      const events = await poll(next);
      expect(events.length).toBeGreaterThan(0);
      const added = statSync(join(path, JOURNAL_FILE)).size - size;
      expect(added).toBe(lineBytes(events));
      grown.push(added);
      // A poll without events writes nothing.
      await poll(next);
      expect(statSync(join(path, JOURNAL_FILE)).size - size).toBe(added);
      await journal.close(next);
    }
    expect(grown[1]).toBe(grown[0]);
  });

  it('reads back, without a close (as a killed agent leaves it), the list the appended events lead to', async () => {
    const path = dir();
    const { diff, journal, poll } = await started(path, hosts(5));
    await poll([session('1'), session('2', { state: 'disconnected' }), session('6')]);
    await poll([session('2', { state: 'disconnected' }), session('6'), session('7')]);
    const read = await new SessionJournal(path, log).read();
    expect([...read.values()].sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual(diff.sessions());
    await journal.close(diff.sessions());
  });

  it('compacts into one list line once the appends outgrow the list, and the list reads back the same', async () => {
    const path = dir();
    const { diff, journal, poll } = await started(path, hosts(3));
    for (let i = 0; i < 4000; i += 1)
      await poll([session('1'), session('2'), session('3', { state: i % 2 === 0 ? 'disconnected' : 'active' })]);
    const lines = readFileSync(join(path, JOURNAL_FILE), 'utf8')
      .split('\n')
      .filter((line) => line !== '');
    // 4000 polls of ~140 bytes would be ~560 KB uncompacted; the floor is 256 KiB.
    expect(statSync(join(path, JOURNAL_FILE)).size).toBeLessThan(300 * 1024);
    expect(lines.length).toBeLessThan(4000);
    expect([...(await new SessionJournal(path, log).read()).values()]).toEqual(diff.sessions());
    await journal.close(diff.sessions());
    expect(readFileSync(join(path, JOURNAL_FILE), 'utf8')).toBe(`${JSON.stringify({ sessions: diff.sessions() })}\n`);
  });

  it('a torn last line ends the journal there; an unreadable first line gives an empty list', async () => {
    const path = dir();
    const { journal, poll } = await started(path, hosts(2));
    await poll([session('1'), session('2'), session('3')]);
    await journal.close(hosts(3));
    // A whole list line and one appended event, then a torn line.
    appendFileSync(join(path, JOURNAL_FILE), '{"op":"upsert","session":' + JSON.stringify(session('4')) + '}\n');
    appendFileSync(join(path, JOURNAL_FILE), '{"op":"end","id":"1"');
    expect([...(await new SessionJournal(path, log).read()).keys()].sort()).toEqual(['1', '2', '3', '4']);
    writeFileSync(join(path, JOURNAL_FILE), 'garbage\n{"op":"end","id":"1"}\n');
    expect((await new SessionJournal(path, log).read()).size).toBe(0);
  });

  it("reads an earlier version's sessions.json when there is no journal, and the first compaction removes it", async () => {
    const path = dir();
    writeFileSync(join(path, 'sessions.json'), JSON.stringify(hosts(3)));
    const journal = new SessionJournal(path, log);
    expect([...(await journal.read()).keys()]).toEqual(['1', '2', '3']);
    await journal.compact(hosts(3));
    expect(existsSync(join(path, 'sessions.json'))).toBe(false);
    await journal.close(hosts(3));
  });
});
