/**
 * The agents' thread's side of frame-parse-worker.ts. A frame of BIG_FRAME_BYTES or more is parsed
 * there; a smaller one here, where handing it over would cost about what parsing it does. A worker
 * that fails or exits is started again at the next big frame, and the frames it owed are parsed
 * here instead: a frame is never lost to the worker. A parse that throws rejects, in the worker as
 * here, so the connection meets it where it met an inline parse's throw.
 */
import { Worker } from 'node:worker_threads';
import type { Limits } from '@rasmon/protocol';
import { frameText, readFrame, type ReadResult } from './frame-read.js';
import type { Reply, Request } from './frame-parse-worker.js';

const WORKER = new URL('./frame-parse-worker.js', import.meta.url);

/** The size from which a frame is parsed in the worker: a snapshot of about 120 sessions (as the farm budgets' big frames). */
export const BIG_FRAME_BYTES = 16 * 1024;

interface Waiting {
  frame: string | Uint8Array;
  limits: Limits;
  resolve: (result: ReadResult) => void;
  reject: (err: Error) => void;
}

export class FrameParseThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Waiting>();
  private closed = false;

  /**
   * The frame parsed and validated, a snapshot packed (frame-read.ts). `frame`: its text, or the
   * bytes of a text frame as received (decoded where it is parsed).
   */
  read(frame: string | Uint8Array, limits: Limits): Promise<ReadResult> | ReadResult {
    if (this.closed || frame.length < BIG_FRAME_BYTES) return readFrame(frameText(frame), limits);
    const worker = this.started();
    const id = this.nextId++;
    return new Promise<ReadResult>((resolve, reject) => {
      this.pending.set(id, { frame, limits, resolve, reject });
      worker.postMessage({ id, frame, limits } satisfies Request);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
    this.parseHere();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER);
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if ('result' in reply) waiting.resolve(reply.result);
      else waiting.reject(new Error(reply.error));
    });
    worker.on('error', () => this.lost(worker));
    worker.on('exit', () => this.lost(worker));
    this.worker = worker;
    return worker;
  }

  private lost(worker: Worker): void {
    if (this.worker === worker) this.worker = undefined;
    this.parseHere();
  }

  /** The frames the worker owed, parsed here. */
  private parseHere(): void {
    const owed = [...this.pending.values()];
    this.pending.clear();
    for (const { frame, limits, resolve, reject } of owed) {
      try {
        resolve(readFrame(frameText(frame), limits));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}
