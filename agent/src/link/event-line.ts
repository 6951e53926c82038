/**
 * Reading back the event lines the agent writes (`events.log`, `sessions.log`): one JSON object a
 * line. Anything else is not an event; the callers skip and count it.
 */
import { parseSession, type Session } from '@rasmon/protocol';
import type { EventBody } from '../session/session-diff.js';

/** The line as a JSON object, or undefined when it is not one (torn, garbage, null, an array). */
export function jsonObject(line: string): Record<string, unknown> | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
}

/** A session as read back: validated but not normalized, so it compares equal to what the source reports again. */
export function readSession(raw: unknown): Session | undefined {
  return 'session' in parseSession(raw) ? (raw as Session) : undefined;
}

/** The event body the object holds, or undefined when it is not a valid one. */
export function eventBody(raw: Record<string, unknown>): EventBody | undefined {
  if (raw.op === 'end') return typeof raw.id === 'string' && raw.id.length > 0 ? { op: 'end', id: raw.id } : undefined;
  if (raw.op !== 'upsert') return undefined;
  const session = readSession(raw.session);
  return session ? { op: 'upsert', session } : undefined;
}
