/**
 * A log file that rotates by size and keeps a bounded number of old files: `agent.log`, then
 * `agent.log.1` (the newest old one) … `agent.log.N`; the oldest is deleted. Written synchronously
 * (a service's log must be on disk when it stops), rotated inside the write that crosses the limit.
 * Written here rather than with pino-roll: pino-roll rotates through a worker and pulls date-fns,
 * while the need is forty lines of rename.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DestinationStream } from 'pino';

export interface RotatingFileOptions {
  /** Rotate when the file would grow past this. */
  maxBytes: number;
  /** Old files kept beside the current one. */
  maxFiles: number;
}

export class RotatingFile implements DestinationStream {
  private fd: number;
  private size: number;

  constructor(
    readonly file: string,
    private readonly options: RotatingFileOptions,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.fd = openSync(file, 'a');
    this.size = fstatSync(this.fd).size;
    if (this.size >= options.maxBytes) this.rotate();
  }

  write(chunk: string): void {
    const bytes = Buffer.byteLength(chunk);
    if (this.size > 0 && this.size + bytes > this.options.maxBytes) this.rotate();
    writeSync(this.fd, chunk);
    this.size += bytes;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    const name = (n: number) => `${this.file}.${n}`;
    try {
      rmSync(name(this.options.maxFiles), { force: true });
      for (let n = this.options.maxFiles - 1; n >= 1; n -= 1) if (existsSync(name(n))) renameSync(name(n), name(n + 1));
      renameSync(this.file, name(1));
    } catch {
      // A file held open without sharing (a log viewer on Windows): keep appending, try at the next write past the limit.
    }
    this.fd = openSync(this.file, 'a');
    this.size = fstatSync(this.fd).size;
  }
}
