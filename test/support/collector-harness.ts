/**
 * A real collector for tests: in this process (for most suites) or as its own process through the
 * package's bin (for signals and SIGKILL), against the suite's own redis-server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Collector, parseConfig, type CollectorConfig } from '@rasmon/collector';
import { untilServing } from './process-start.js';
import { freePort } from './free-port.js';

export const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');

export interface FarmSpec {
  id: string;
  /** Left out only for an SPLA farm without a cap. */
  seats?: number;
  token?: string;
  license?: 'primary' | 'sublicense' | 'spla';
  expires?: string;
  [key: string]: unknown;
}

/** A raw config object (as a file would hold it) with one agent token per farm. */
export function rawConfig(
  redisUrl: string,
  farms: FarmSpec[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    redis: { url: redisUrl, prefix: `t${randomBytes(4).toString('hex')}` },
    heartbeatSeconds: 15,
    ...extra,
    farms: farms.map(({ token, ...farm }) => ({
      license: 'primary',
      // Far enough ahead to be active at any date the suite runs at.
      expires: new Date(Date.now() + 5 * 365 * 86_400_000).toISOString(),
      agentTokensSha256: [sha256(token ?? `token-${farm.id}`)],
      ...farm,
    })),
  };
}

export class InProcessCollector {
  private constructor(
    readonly collector: Collector,
    readonly config: CollectorConfig,
  ) {}

  static async start(
    raw: Record<string, unknown>,
    options: { tickMs?: number; snapshotSliceItems?: number | undefined } = {},
  ): Promise<InProcessCollector> {
    const config = parseConfig(raw, 'test');
    const log = pino({ level: process.env.RASMON_TEST_LOG ?? 'silent' });
    const collector = await Collector.start({ config, log, ...options });
    for (let i = 0; i < 200 && !collector.ready; i += 1) await sleep(25);
    if (!collector.ready) throw new Error('collector did not become ready');
    return new InProcessCollector(collector, config);
  }

  get url(): string {
    return `http://127.0.0.1:${this.collector.address.port}`;
  }

  stop(): Promise<void> {
    return this.collector.drain(2000);
  }
}

/** The collector's bin, as `npm install` puts it on the PATH. */
export const COLLECTOR_BIN = fileURLToPath(new URL('../../collector/bin/rasmon-collector.js', import.meta.url));

/** The collector as operators run it: `rasmon-collector --config FILE`. */
export class CollectorProcess {
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly configPath: string,
  ) {
    child.stdout!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Writes the config to a file and starts the bin; resolves once /readyz says ready. */
  static async start(
    raw: Record<string, unknown>,
    options: {
      port?: number;
      configPath?: string;
      logLevel?: string;
      waitReady?: boolean;
      env?: NodeJS.ProcessEnv;
    } = {},
  ): Promise<CollectorProcess> {
    const port = options.port ?? (await freePort());
    const configPath = options.configPath ?? join(mkdtempSync(join(tmpdir(), 'rasmon-collector-')), 'collector.yaml');
    writeFileSync(configPath, JSON.stringify({ ...raw, listen: `127.0.0.1:${port}` }));
    const child = spawn(process.execPath, [COLLECTOR_BIN, '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(options.env ?? process.env), RASMON_LOG_LEVEL: options.logLevel ?? 'info' },
    });
    const proc = new CollectorProcess(child, port, configPath);
    const ready = `${proc.url}/${options.waitReady === false ? 'healthz' : 'readyz'}`;
    await untilServing(child, ready, { name: 'collector', output: () => proc.output.join('') });
    return proc;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Rewrites the config file (same port) for a SIGHUP reload. */
  rewrite(raw: Record<string, unknown>): void {
    writeFileSync(this.configPath, JSON.stringify({ ...raw, listen: `127.0.0.1:${this.port}` }));
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Resident memory of the process, from /proc (Linux). */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!kb) throw new Error('no VmRSS in /proc status');
    return Number(kb[1]) * 1024;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
