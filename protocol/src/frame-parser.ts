import {
  CONTROL_CHARACTERS,
  endItemSchema,
  describeIssue,
  helloSchema,
  seqSchema,
  atSchema,
  sessionSchema,
  statusSchema,
  upsertItemSchema,
} from './frame-schema.js';
import {
  MAX_STATUS_ERROR_CHARS,
  type EndEvent,
  type HelloFrame,
  type Limits,
  type Rejection,
  type StatusFrame,
  type UpsertEvent,
} from './messages.js';
import { normalizeUser, type Session } from './session.js';

/** An event item that failed validation: skipped, but its seq still counts as applied. */
export interface RejectedEvent {
  seq: number;
  op: 'rejected';
}

export type ParsedEvent = UpsertEvent | EndEvent | RejectedEvent;

export interface ParsedHello {
  type: 'hello';
  /** The hello's fields when valid; otherwise `problem` says what is wrong (a `bad_hello`). */
  hello?: HelloFrame;
  problem?: string;
}

export interface ParsedSnapshot {
  type: 'snapshot';
  seq: number;
  at: number;
  /** The valid sessions, users normalized, in the order listed. */
  sessions: Session[];
  rejected: Rejection[];
}

export interface ParsedEvents {
  type: 'events';
  events: ParsedEvent[];
  rejected: Rejection[];
}

export interface ParsedStatus {
  type: 'status';
  status: StatusFrame;
}

export type ParsedFrame = ParsedHello | ParsedSnapshot | ParsedEvents | ParsedStatus;

export type ParseResult = { ok: true; frame: ParsedFrame } | { ok: false; message: string };

const FRAME_TYPES = new Set(['hello', 'snapshot', 'events', 'status']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** No valid frame nests deeper than frame → list → item → session → client. */
const MAX_FRAME_DEPTH = 32;

/** Whether the JSON text nests arrays and objects deeper than `max` (strings skipped). */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i += 1; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      depth += 1;
      if (depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth -= 1;
    }
  }
  return false;
}

function describeType(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'a list' : `a ${typeof value}`;
}

function badFrame(message: string): ParseResult {
  return { ok: false, message };
}

/** Validates one session; returns it with its user normalized (docs/design.md §2 rule 4), or the reason it is invalid. */
export function parseSession(raw: unknown): { session: Session } | { reason: string } {
  const result = sessionSchema.safeParse(raw);
  if (!result.success) return { reason: describeIssue(result.error, 'session') };
  const session: Session = { ...result.data, user: normalizeUser(result.data.user) };
  if (session.client && session.client.name === undefined && session.client.address === undefined) {
    delete session.client;
  }
  return { session };
}

function parseEventItem(raw: Record<string, unknown>, seq: number): { event: ParsedEvent; reason?: string } {
  const rejected = (reason: string) => ({ event: { seq, op: 'rejected' as const }, reason });
  if (raw.op === 'upsert') {
    const result = upsertItemSchema.safeParse(raw);
    if (!result.success) return rejected(describeIssue(result.error));
    const parsed = parseSession(result.data.session);
    if ('reason' in parsed) return rejected(parsed.reason);
    return { event: { seq, at: result.data.at, op: 'upsert', session: parsed.session } };
  }
  if (raw.op === 'end') {
    const result = endItemSchema.safeParse(raw);
    if (!result.success) return rejected(describeIssue(result.error));
    return { event: { seq, at: result.data.at, op: 'end', id: result.data.id } };
  }
  return rejected(`op: must be "upsert" or "end"`);
}

function parseSeq(value: unknown, where: string): number | string {
  const result = seqSchema.safeParse(value);
  return result.success ? result.data : `${where}: seq must be a positive integer`;
}

/**
 * Parses and validates one text frame from an agent (docs/design.md §3). Structural faults of the frame
 * (not JSON, not an object, unknown type, missing or bad seq, lists that are not lists or exceed
 * the limits) make the whole frame a `bad_frame`. Faults of single items do not: the item is
 * rejected and reported, and the rest of the frame stands.
 */
export function parseAgentFrame(text: string, limits: Limits): ParseResult {
  // Checked before parsing: a deeply nested value costs every later step (and Lua's cjson refuses
  // it), and no valid frame nests more than a few levels.
  if (nestsDeeperThan(text, MAX_FRAME_DEPTH)) return badFrame(`frame nests deeper than ${MAX_FRAME_DEPTH} levels`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return badFrame('frame is not valid JSON');
  }
  if (!isObject(raw)) return badFrame('frame must be a JSON object');
  const type = raw.type;
  if (typeof type !== 'string' || !FRAME_TYPES.has(type)) {
    return badFrame(
      typeof type === 'string'
        ? `unknown frame type ${JSON.stringify(type.slice(0, 40))}`
        : `frame type must be a string, not ${describeType(type)}`,
    );
  }

  if (type === 'hello') {
    const result = helloSchema.safeParse(raw);
    return result.success
      ? { ok: true, frame: { type: 'hello', hello: result.data } }
      : { ok: true, frame: { type: 'hello', problem: describeIssue(result.error) } };
  }

  if (type === 'status') {
    const result = statusSchema.safeParse(raw);
    if (!result.success) return badFrame(describeIssue(result.error, 'status').slice(0, 200));
    const { source, ok, error, lastListAt } = result.data;
    const status: StatusFrame = { type: 'status', source, ok };
    if (error !== undefined && !ok) status.error = error;
    if (lastListAt !== undefined) status.lastListAt = lastListAt;
    return { ok: true, frame: { type: 'status', status } };
  }

  if (type === 'snapshot') {
    const seq = parseSeq(raw.seq, 'snapshot');
    if (typeof seq === 'string') return badFrame(seq);
    const at = atSchema.safeParse(raw.at);
    if (!at.success) return badFrame('snapshot: at must be milliseconds since the epoch');
    if (!Array.isArray(raw.sessions)) return badFrame('snapshot: sessions must be a list');
    if (raw.sessions.length > limits.maxSessions) {
      return badFrame(`snapshot: ${raw.sessions.length} sessions exceed the limit of ${limits.maxSessions}`);
    }
    const sessions: Session[] = [];
    const rejected: Rejection[] = [];
    const seen = new Set<string>();
    for (const item of raw.sessions) {
      const parsed = parseSession(item);
      const id = isObject(item) && typeof item.id === 'string' ? item.id : undefined;
      if ('reason' in parsed) {
        rejected.push(id === undefined ? { seq, reason: parsed.reason } : { seq, reason: parsed.reason, id });
      } else if (seen.has(parsed.session.id)) {
        rejected.push({ seq, reason: 'session.id: appears twice in this snapshot', id: parsed.session.id });
      } else {
        seen.add(parsed.session.id);
        sessions.push(parsed.session);
      }
    }
    return { ok: true, frame: { type: 'snapshot', seq, at: at.data, sessions, rejected } };
  }

  if (!Array.isArray(raw.events)) return badFrame('events: events must be a list');
  if (raw.events.length > limits.maxEvents) {
    return badFrame(`events: ${raw.events.length} events exceed the limit of ${limits.maxEvents}`);
  }
  const events: ParsedEvent[] = [];
  const rejected: Rejection[] = [];
  for (const [index, item] of raw.events.entries()) {
    if (!isObject(item)) return badFrame(`events[${index}]: must be an object with a seq`);
    const seq = parseSeq(item.seq, `events[${index}]`);
    if (typeof seq === 'string') return badFrame(seq);
    const { event, reason } = parseEventItem(item, seq);
    events.push(event);
    if (reason !== undefined) rejected.push({ seq, reason });
  }
  return { ok: true, frame: { type: 'events', events, rejected } };
}

/**
 * A source's error as a status frame may carry it: control characters (a command's stderr has
 * newlines and colour codes) become spaces, and it is cut to MAX_STATUS_ERROR_CHARS.
 */
export function statusErrorText(message: string): string {
  const flat = message.replace(new RegExp(CONTROL_CHARACTERS.source, 'g'), ' ').replace(/\s+/g, ' ').trim();
  const cut = flat.length > MAX_STATUS_ERROR_CHARS ? `${flat.slice(0, MAX_STATUS_ERROR_CHARS - 1)}…` : flat;
  // A cut may split a surrogate pair.
  return cut.toWellFormed();
}
