/**
 * The agent as operators run it: `rasmon-agent --config FILE`, a child process the test can
 * SIGKILL or SIGTERM, with its log lines (pino JSON) collected and its own /metrics scraped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentEvent } from '@rasmon/protocol';
import { untilServing } from './process-start.js';
import { Scrape } from './prometheus-text.js';

const BIN = new URL('../../agent/bin/rasmon-agent.js', import.meta.url).pathname;

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export class AgentProcess {
  private readonly chunks: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly configPath: string,
    readonly metricsUrl: string,
  ) {
    child.stdout!.on('data', (chunk: Buffer) => this.chunks.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.chunks.push(chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /**
   * Writes `config` (it must carry `metrics.listen`) to a JSON file, or to `configPath` when given,
   * starts the bin, and resolves once the agent's /metrics answers.
   */
  static async start(config: Record<string, unknown>, options: { configPath?: string } = {}): Promise<AgentProcess> {
    const listen = (config.metrics as { listen?: string } | undefined)?.listen;
    if (!listen) throw new Error('AgentProcess needs metrics.listen in the config');
    const configPath = options.configPath ?? join(mkdtempSync(join(tmpdir(), 'rasmon-agent-')), 'agent.json');
    writeFileSync(configPath, JSON.stringify(config));
    const child = spawn(process.execPath, [BIN, '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RASMON_LOG_LEVEL: 'info' },
    });
    const agent = new AgentProcess(child, configPath, `http://${listen}`);
    await untilServing(child, `${agent.metricsUrl}/metrics`, {
      name: 'agent',
      output: () => agent.output,
      kill: () => agent.kill(),
    });
    return agent;
  }

  /** Everything the process printed so far. */
  get output(): string {
    return this.chunks.join('');
  }

  /** The complete JSON log lines printed so far. */
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.output.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line still being written
      }
    }
    return lines;
  }

  /** Log lines whose message contains `text`. */
  logged(text: string): LogLine[] {
    return this.logs().filter((line) => typeof line.msg === 'string' && line.msg.includes(text));
  }

  scrape(): Promise<Scrape> {
    return Scrape.from(this.metricsUrl);
  }

  /** One of the agent's own metrics; undefined when absent. */
  async metric(name: string): Promise<number | undefined> {
    return (await this.scrape()).value(name);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGKILL: nothing after the last fsync survives. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }
}

export interface SpoolFiles {
  state: { stream: string; acked: number; reserved: number };
  /** The events in events.log, in file order (acked lines an open would skip included). */
  events: AgentEvent[];
  /** The events of events.log above the ack: what the agent still has to send. */
  pending: AgentEvent[];
  /** Raw bytes of events.log (0 when missing). */
  logBytes: number;
}

/** Reads an agent's spool directory as the agent left it on disk. */
export function readSpool(dir: string): SpoolFiles {
  const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as SpoolFiles['state'];
  // The latest ack is in acked.json (written in place at every ack); state.json has it at the
  // last rewrite of the log and at stop.
  try {
    const ack = JSON.parse(readFileSync(join(dir, 'acked.json'), 'utf8')) as { stream: string; acked: number };
    if (ack.stream === state.stream) state.acked = Math.max(state.acked, ack.acked);
  } catch {
    // no ack yet
  }
  let text = '';
  try {
    text = readFileSync(join(dir, 'events.log'), 'utf8');
  } catch {
    // no log yet
  }
  const events = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AgentEvent);
  return {
    state,
    events,
    pending: events.filter((event) => event.seq > state.acked),
    logBytes: Buffer.byteLength(text),
  };
}
