/** A real Prometheus for tests (`prometheus` from the PATH), on a free loopback port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { untilServing } from './process-start.js';
import { freePort } from './free-port.js';

const PROMETHEUS = 'prometheus';

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
export interface QueryAnswer {
  status: string;
  error?: string;
  data?: { resultType: string; result: Sample[] | [number, string] };
}

/** A real Prometheus on a free loopback port, with its config, rules and TSDB in a temp dir. */
export class PrometheusServer {
  private readonly output: string[] = [];
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
  ) {
    child.stdout!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
  }

  /**
   * Scrapes `targets` as job `job` every second and evaluates `ruleFiles` (copied in) every second;
   * with `alertmanager` (host:port), sends its alerts there at once (no resend delay).
   */
  static async start(
    targets: string[],
    ruleFiles: string[],
    options: { job?: string; alertmanager?: string } = {},
  ): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-prometheus-'));
    mkdirSync(join(dir, 'rules'));
    for (const file of ruleFiles) copyFileSync(file, join(dir, 'rules', file.split('/').pop()!));
    const config: Record<string, unknown> = {
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: ['rules/*.yml'],
      scrape_configs: [{ job_name: options.job ?? 'rasmon-collector', static_configs: [{ targets }] }],
    };
    if (options.alertmanager)
      config.alerting = { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] };
    writeFileSync(join(dir, 'prometheus.yml'), YAML.stringify(config));
    const port = await freePort();
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
        '--rules.alert.resend-delay=1s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new PrometheusServer(child, port, dir);
    await untilServing(child, `${server.url}/-/ready`, {
      name: 'prometheus',
      output: () => server.log(),
      kill: () => server.stop(),
      timeoutMs: 20_000,
    });
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  log(): string {
    return this.output.join('').slice(-4000);
  }

  async api<T>(path: string): Promise<T> {
    const res = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as T;
  }

  /** An instant query now; the answer as Prometheus gave it (status error included). */
  query(expr: string): Promise<QueryAnswer> {
    return this.api<QueryAnswer>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
  }

  /** An instant query that must succeed; its vector. */
  async vector(expr: string): Promise<Sample[]> {
    const answer = await this.query(expr);
    if (answer.status !== 'success') throw new Error(`${expr}: ${answer.error}`);
    if (answer.data!.resultType !== 'vector') throw new Error(`${expr}: a ${answer.data!.resultType}, not a vector`);
    return answer.data!.result as Sample[];
  }

  async alerts(): Promise<Array<{ labels: Record<string, string>; state: string }>> {
    const answer = await this.api<{ data: { alerts: Array<{ labels: Record<string, string>; state: string }> } }>(
      '/api/v1/alerts',
    );
    return answer.data.alerts;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
