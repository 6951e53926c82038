/**
 * Big agent frames parsed in a worker thread of their own (frame-parse-thread.ts drives it). A host's
 * 2,000-session snapshot is about 350 KB: parsing, validating and packing it takes the agents' thread
 * about 10 ms on a quiet 2-core machine, during which no other farm's frame is read or answered (docs/
 * performance.md, "One farm flooding"). Here that work has its own event loop and heap; the agents'
 * thread receives the packed snapshot and its users.
 */
import { parentPort } from 'node:worker_threads';
import type { Limits } from '@rasmon/protocol';
import { readFrame, type ReadResult } from './frame-read.js';

/** What the agents' thread asks: one frame's text and the limits it is held to. */
export interface Request {
  id: number;
  text: string;
  limits: Limits;
}

export type Reply = { id: number; result: ReadResult } | { id: number; error: string };

const port = parentPort!;
port.on('message', ({ id, text, limits }: Request) => {
  try {
    port.postMessage({ id, result: readFrame(text, limits) } satisfies Reply);
  } catch (err) {
    port.postMessage({ id, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
  }
});
