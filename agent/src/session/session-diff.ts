/**
 * The one diff engine every source feeds: from successive complete session lists of a host to the
 * protocol events that turn the previous list into the next (ends first, then upserts, as a
 * snapshot applies).
 */
import { canonicalSession, type Session } from '@rasmon/protocol';

export type EventBody = { op: 'upsert'; session: Session } | { op: 'end'; id: string };

export class SessionDiff {
  private current = new Map<string, { session: Session; canonical: string }>();

  /** The list as of the last `next`, in id order. */
  sessions(): Session[] {
    return [...this.current.values()]
      .map((entry) => entry.session)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Starts from a list already reported (by an earlier run of the agent), emitting nothing. */
  restore(list: readonly Session[]): void {
    this.next(list);
  }

  /**
   * Takes the host's complete list now and returns the events since the previous one. A list with
   * the same id twice keeps the last (a source glitch must not become two connections).
   */
  next(list: readonly Session[]): EventBody[] {
    const next = new Map<string, { session: Session; canonical: string }>();
    for (const session of list) next.set(session.id, { session, canonical: canonicalSession(session) });
    const events: EventBody[] = [];
    for (const id of this.current.keys()) if (!next.has(id)) events.push({ op: 'end', id });
    for (const [id, entry] of next) {
      if (this.current.get(id)?.canonical !== entry.canonical) events.push({ op: 'upsert', session: entry.session });
    }
    this.current = next;
    return events;
  }
}
