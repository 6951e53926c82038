/**
 * The agents' thread's side of farm-series-worker.ts: asks the worker for the farm series and
 * receives the body. A worker that exits (it should not) is started again at the next scrape, and
 * the renders it owed fail, as a failed Redis read does.
 */
import { Worker } from 'node:worker_threads';
import type { CollectorConfig, FarmConfig } from '../config/config.js';
import type { Reply, Request, WorkerData } from './farm-series-worker.js';

const WORKER = new URL('./farm-series-worker.js', import.meta.url);

export class FarmSeriesThread {
  private worker: Worker | undefined;
  /** The farms the worker holds, sent again only when the configuration changed. */
  private farms: readonly FarmConfig[] | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (body: Buffer) => void; reject: (err: Error) => void }>();
  private closed = false;

  constructor(private readonly redis: CollectorConfig['redis']) {}

  /** Starts the worker ahead of the first scrape, so that scrape does not wait for it to boot. */
  start(): void {
    this.started();
  }

  /** The farm series of these farms. Rejects when Redis cannot answer. */
  render(farms: readonly FarmConfig[]): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the collector is stopping'));
    const worker = this.started();
    if (this.farms !== farms) {
      this.farms = farms;
      this.send(worker, { type: 'farms', farms });
    }
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send(worker, { type: 'render', id });
    });
  }

  /** Stops the worker; renders still owed fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER, { workerData: { redis: this.redis } satisfies WorkerData });
    // It holds no agent and no timer of the collector's: it must not keep the process alive.
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
    worker.on('exit', (code) => this.lost(worker, new Error(`the farm series worker exited with code ${code}`)));
    this.worker = worker;
    this.farms = undefined;
    return worker;
  }

  /** The worker is gone: what it owed fails, and the next render starts another. */
  private lost(worker: Worker, err: Error): void {
    if (this.worker === worker) this.worker = undefined;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }

  private send(worker: Worker, request: Request): void {
    worker.postMessage(request);
  }
}
