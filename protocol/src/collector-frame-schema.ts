/**
 * Validation of the frames a collector sends an agent (docs/design.md §3). An agent trusts nothing that
 * arrives at its URL: whoever answers there, or sits in the middle of `ws://`, could send anything.
 * Unknown fields are ignored (and dropped), so a newer collector's additions do not break it.
 */
import * as z from 'zod';
import type { CollectorFrame } from './messages.js';
import { LIMIT_RANGES } from './limit-ranges.js';
import { describeIssue } from './frame-schema.js';

const range = (bounds: { min: number; max: number }) => z.number().int().min(bounds.min).max(bounds.max);
/** 0 (nothing applied yet) or a seq. */
const ackSeq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const welcomeSchema = z.object({
  type: z.literal('welcome'),
  ack: ackSeq,
  heartbeatSeconds: z.number().min(LIMIT_RANGES.heartbeatSeconds.min).max(LIMIT_RANGES.heartbeatSeconds.max),
  limits: z.object({
    maxFrameBytes: range(LIMIT_RANGES.maxFrameBytes),
    maxEvents: range(LIMIT_RANGES.maxEvents),
    maxSessions: range(LIMIT_RANGES.maxSessions),
  }),
  features: z.array(z.string().max(64)).max(64).optional(),
});

const ackSchema = z.object({
  type: z.literal('ack'),
  seq: ackSeq,
  rejected: z
    .array(z.object({ seq: ackSeq, reason: z.string(), id: z.string().optional() }))
    .max(1000)
    .optional(),
});

const resyncSchema = z.object({ type: z.literal('resync') });

const errorSchema = z.object({ type: z.literal('error'), code: z.string(), message: z.string() });

const SCHEMAS = { welcome: welcomeSchema, ack: ackSchema, resync: resyncSchema, error: errorSchema } as const;

export type CollectorFrameResult =
  | { kind: 'frame'; frame: CollectorFrame }
  /** A type this agent does not know: ignored, for a newer collector's sake. */
  | { kind: 'unknown'; type: string }
  /** Not a frame a collector may send: a protocol error. */
  | { kind: 'invalid'; problem: string };

/** Parses one text frame from a collector. */
export function parseCollectorFrame(text: string): CollectorFrameResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { kind: 'invalid', problem: 'frame is not valid JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { kind: 'invalid', problem: 'frame must be a JSON object' };
  }
  const type = (raw as { type?: unknown }).type;
  if (typeof type !== 'string') return { kind: 'invalid', problem: 'frame has no type' };
  if (!Object.hasOwn(SCHEMAS, type)) return { kind: 'unknown', type: type.slice(0, 40) };
  const result = SCHEMAS[type as keyof typeof SCHEMAS].safeParse(raw);
  if (!result.success) return { kind: 'invalid', problem: describeIssue(result.error, type).slice(0, 200) };
  return { kind: 'frame', frame: result.data as CollectorFrame };
}
