/**
 * An agent's frame as the agents' thread applies it: parsed and validated (@rasmon/protocol's
 * parseAgentFrame), a snapshot's sessions already packed for applyFrame.lua. Shared by the inline
 * path (small frames) and frame-parse-worker.ts (big ones), so both give the same result.
 */
import {
  parseAgentFrame,
  type Limits,
  type ParsedEvents,
  type ParsedHello,
  type ParsedSnapshot,
  type ParsedStatus,
} from '@rasmon/protocol';
import { packedSnapshot, type PackedSnapshot } from '../engine/script-args.js';

/** A parsed snapshot, its valid sessions packed, in the order listed. */
export type ReadSnapshot = Omit<ParsedSnapshot, 'sessions'> & { sessions: PackedSnapshot };

export type ReadFrame = ParsedHello | ParsedEvents | ParsedStatus | ReadSnapshot;

export type ReadResult = { ok: true; frame: ReadFrame } | { ok: false; message: string };

export function readFrame(text: string, limits: Limits): ReadResult {
  const parsed = parseAgentFrame(text, limits);
  if (!parsed.ok || parsed.frame.type !== 'snapshot') return parsed as ReadResult;
  return { ok: true, frame: { ...parsed.frame, sessions: packedSnapshot(parsed.frame.sessions) } };
}

/**
 * A frame's text: as given, or decoded from the bytes of a text frame as received (ws checked
 * that they are UTF-8).
 */
export function frameText(frame: string | Uint8Array): string {
  return typeof frame === 'string'
    ? frame
    : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8');
}
