/**
 * Big agent frames parsed in a worker thread of their own (frame-parse-thread.ts drives it). A host's
 * 2,000-session snapshot is about 350 KB: parsing, validating and packing it takes the agents' thread
 * about 10 ms on a quiet 2-core machine, during which no other farm's frame is read or answered (docs/
 * performance.md, "One farm flooding"). Here that work has its own event loop and heap: the agents'
 * thread sends the frame's bytes as they came (decoded here) and receives the packed snapshot, its
 * users and beginSnapshot.lua's listing.
 */
import { parentPort } from 'node:worker_threads';
import type { Limits } from '@rasmon/protocol';
import { snapshotListing } from '../engine/script-args.js';
import { frameText, readFrame, type ReadResult } from './frame-read.js';

/** What the agents' thread asks: one frame (its text, or its bytes as received) and the limits it is held to. */
export interface Request {
  id: number;
  frame: string | Uint8Array;
  limits: Limits;
}

export type Reply = { id: number; result: ReadResult } | { id: number; error: string };

const port = parentPort!;
port.on('message', ({ id, frame, limits }: Request) => {
  try {
    const result = readFrame(frameText(frame), limits);
    if (!result.ok || result.frame.type !== 'snapshot') {
      port.postMessage({ id, result } satisfies Reply);
      return;
    }
    // Its bytes handed over, not copied, when they are a buffer of their own (a small one is in
    // Node's shared pool, which must stay here).
    const listing = Buffer.from(snapshotListing(result.frame.sessions));
    result.frame.sessions.listing = listing;
    const own = listing.byteOffset === 0 && listing.byteLength === listing.buffer.byteLength;
    port.postMessage({ id, result } satisfies Reply, own ? [listing.buffer] : []);
  } catch (err) {
    port.postMessage({ id, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
  }
});
