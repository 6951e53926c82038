/**
 * The few metric types the agent exports, in Prometheus' text format (version 0.0.4), written here
 * instead of with prom-client: the agent has ten series; prom-client with its default metrics costs
 * an agent megabytes of memory (itself, its optional OpenTelemetry import, tdigest and bintrees) and
 * wakes the process every 10 ms to sample the event loop's delay, which an idle agent must not do.
 */
import { memoryUsage } from 'node:process';

interface Metric {
  readonly name: string;
  /** The metric's lines: HELP, TYPE and samples. */
  text(): string;
}

const escapeHelp = (help: string) => help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const number = (value: number) =>
  Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : String(value);

function header(name: string, help: string, type: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/** A private registry: what `/metrics` serves. */
export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly entries: Metric[] = [];

  register(metric: Metric): void {
    this.entries.push(metric);
  }

  /** The exposition text of every metric, in registration order. */
  metrics(): Promise<string> {
    return Promise.resolve(this.entries.map((metric) => metric.text()).join(''));
  }
}

/** A value that goes up and down (one series, or one per label set). */
export class Gauge implements Metric {
  private readonly values = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(
    readonly name: string,
    private readonly help: string,
    registry: Registry,
    /** `labelled`: only the label sets given to `set` are series (no unlabelled 0 before). */
    options: { labelled?: boolean } = {},
  ) {
    registry.register(this);
    if (!options.labelled) this.values.set('', { labels: {}, value: 0 });
  }

  set(value: number): void;
  set(labels: Record<string, string>, value: number): void;
  set(first: number | Record<string, string>, second?: number): void {
    if (typeof first === 'number') {
      this.values.get('')!.value = first;
      return;
    }
    // A labelled gauge has no unlabelled series.
    this.values.delete('');
    this.values.set(labelText(first), { labels: first, value: second ?? 0 });
  }

  get value(): number {
    return this.values.get('')?.value ?? 0;
  }

  text(): string {
    let text = header(this.name, this.help, 'gauge');
    for (const [labels, { value }] of this.values) text += `${this.name}${labels} ${number(value)}\n`;
    return text;
  }
}

/** A count that only goes up. */
export class Counter implements Metric {
  private count = 0;

  constructor(
    readonly name: string,
    private readonly help: string,
    registry: Registry,
  ) {
    registry.register(this);
  }

  inc(by = 1): void {
    if (by < 0) throw new RangeError(`${this.name}: a counter cannot go down (${by})`);
    this.count += by;
  }

  get value(): number {
    return this.count;
  }

  text(): string {
    return `${header(this.name, this.help, 'counter')}${this.name} ${number(this.count)}\n`;
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    this.counts = buckets.map(() => 0);
    registry.register(this);
  }

  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    for (let i = 0; i < this.buckets.length; i += 1) if (value <= this.buckets[i]!) this.counts[i]! += 1;
  }

  text(): string {
    let text = header(this.name, this.help, 'histogram');
    this.buckets.forEach((bound, i) => (text += `${this.name}_bucket{le="${number(bound)}"} ${this.counts[i]}\n`));
    text += `${this.name}_bucket{le="+Inf"} ${this.count}\n`;
    return `${text}${this.name}_sum ${number(this.sum)}\n${this.name}_count ${this.count}\n`;
  }
}

/** A metric whose lines are computed at each scrape. */
class Collected implements Metric {
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly type: 'gauge' | 'counter',
    private readonly read: () => number,
    registry: Registry,
  ) {
    registry.register(this);
  }

  text(): string {
    return `${header(this.name, this.help, this.type)}${this.name} ${number(this.read())}\n`;
  }
}

/**
 * The process metrics Prometheus' client libraries share (names as prom-client and the Go client
 * export them): CPU, resident memory, start time, and the V8 heap.
 */
export function registerProcessMetrics(registry: Registry): void {
  const startSeconds = Math.round((Date.now() - process.uptime() * 1000) / 1000);
  const cpu = (which: 'user' | 'system' | 'total') => () => {
    const usage = process.cpuUsage();
    return (which === 'user' ? usage.user : which === 'system' ? usage.system : usage.user + usage.system) / 1e6;
  };
  new Collected('process_cpu_user_seconds_total', 'User CPU time spent in seconds.', 'counter', cpu('user'), registry);
  new Collected(
    'process_cpu_system_seconds_total',
    'System CPU time spent in seconds.',
    'counter',
    cpu('system'),
    registry,
  );
  new Collected(
    'process_cpu_seconds_total',
    'Total user and system CPU time spent in seconds.',
    'counter',
    cpu('total'),
    registry,
  );
  new Collected(
    'process_start_time_seconds',
    'Start time of the process since unix epoch in seconds.',
    'gauge',
    () => startSeconds,
    registry,
  );
  new Collected(
    'process_resident_memory_bytes',
    'Resident memory size in bytes.',
    'gauge',
    () => memoryUsage.rss(),
    registry,
  );
  new Collected(
    'nodejs_heap_size_total_bytes',
    'Process heap size from Node.js in bytes.',
    'gauge',
    () => memoryUsage().heapTotal,
    registry,
  );
  new Collected(
    'nodejs_heap_size_used_bytes',
    'Process heap size used from Node.js in bytes.',
    'gauge',
    () => memoryUsage().heapUsed,
    registry,
  );
  new Collected(
    'nodejs_external_memory_bytes',
    'Node.js external memory size in bytes.',
    'gauge',
    () => memoryUsage().external,
    registry,
  );
}
