/**
 * The agents' thread's side of farm-document-worker.ts: asks for a farm's document and receives its
 * bytes. A worker that exits is started again at the next request, and the documents it owed fail
 * (answered 503, as a failed Redis read is).
 */
import { Worker } from 'node:worker_threads';
import type { CollectorConfig, FarmConfig } from '../config/config.js';
import type { LicenseOrigin } from './farm-document.js';
import type { Page, Reply, Request, WorkerData } from './farm-document-worker.js';

const WORKER = new URL('./farm-document-worker.js', import.meta.url);

export class FarmDocumentThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (body: Buffer) => void; reject: (err: Error) => void }>();
  private closed = false;

  constructor(private readonly redis: CollectorConfig['redis']) {}

  /** The JSON document of `farm`, with this page of its connections. Rejects when Redis cannot answer. */
  document(farm: FarmConfig, origin: LicenseOrigin, page: Page): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the collector is stopping'));
    const worker = this.started();
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, farm, origin, page } satisfies Request);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER, { workerData: { redis: this.redis } satisfies WorkerData });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if ('body' in reply)
        waiting.resolve(Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength));
      else waiting.reject(new Error(reply.error));
    });
    worker.on('error', (err) => this.lost(worker, err));
    worker.on('exit', (code) => this.lost(worker, new Error(`the farm document worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private lost(worker: Worker, err: Error): void {
    if (this.worker === worker) this.worker = undefined;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }
}
