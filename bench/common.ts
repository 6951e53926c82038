/** What every part of `npm run bench` shares: the collector as a child process, timing and memory figures. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** "p50 1 ms, p99 3 ms, max 7 ms" of latencies in ms. */
export function latencySummary(latencies: number[]): string {
  const sorted = [...latencies].sort((a, b) => a - b);
  const f = (n: number) => (n < 10 ? n.toFixed(1) : n.toFixed(0));
  return `p50 ${f(quantile(sorted, 0.5))} ms, p99 ${f(quantile(sorted, 0.99))} ms, max ${f(sorted.at(-1) ?? 0)} ms (${sorted.length} samples)`;
}

/** Resident memory of a process, KiB. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

export function load(): string {
  return `load ${loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')}`;
}

export function section(title: string): void {
  console.log(`\n== ${title} (${load()})`);
}

export interface RunningCollector {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the real collector bin on a free loopback port with this configuration; resolves once ready. */
export async function startCollector(config: Record<string, unknown>, port: number): Promise<RunningCollector> {
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-bench-'));
  const configPath = join(dir, 'collector.json');
  writeFileSync(configPath, JSON.stringify({ listen: `127.0.0.1:${port}`, ...config }));
  const bin = new URL('../../../collector/bin/rasmon-collector.js', import.meta.url).pathname;
  // RASMON_BENCH_COLLECTOR_FLAGS: Node flags for the collector, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const flags = process.env.RASMON_BENCH_COLLECTOR_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...flags, bin, '--config', configPath], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    if (i > 400 || child.exitCode !== null) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error('collector did not become ready');
    }
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    await sleep(50);
  }
  return {
    url,
    process: child,
    // The configuration's folder goes with the collector.
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs redis-benchmark against the bench's Redis; returns requests per second, or undefined. */
export function redisBenchmark(port: number, args: string[]): number | undefined {
  try {
    const out = execFileSync(
      'redis-benchmark',
      ['-p', String(port), '-q', '-n', '200000', '-P', '16', '-c', '20', ...args],
      {
        encoding: 'utf8',
      },
    );
    const match = /([\d.]+) requests per second/.exec(out);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A small deterministic random source, so runs are comparable. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
