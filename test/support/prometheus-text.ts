/** Reads Prometheus text exposition into samples, for assertions on a real scrape. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) {
      labels[key!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

export class Scrape {
  constructor(readonly samples: Sample[]) {}

  /**
   * One scrape; one that gets no answer in `timeoutMs` fails: a hung server must fail a wait with what
   * hung, not hang it (shorter than the waits it is used in, 10 s and more).
   */
  static async from(baseUrl: string, timeoutMs = 5_000): Promise<Scrape> {
    const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) }).catch((err: Error) => {
      const why =
        err.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : ((err.cause as Error)?.message ?? err.message);
      throw new Error(`${baseUrl}/metrics: ${why}`);
    });
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return new Scrape(parseMetrics(await res.text()));
  }

  /** Samples of a metric whose labels include the given ones. */
  all(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter(
      (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
    );
  }

  /** The one value of a metric with these labels; undefined when absent. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const found = this.all(name, labels);
    if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
    return found[0]?.value;
  }
}
