/**
 * The metrics table of docs/design.md §4 is the one list of rasmon's metric names. It must be what the
 * code registers and renders (the collector's own metrics, the farm series, the agent's metrics),
 * with their labels, and every other place that names a metric (the README, the other docs, the alert
 * rules and their tests, the dashboard, the status page, the bench) must name one of its rows. Names
 * renamed away are allowed only in CHANGELOG.md, and must not come back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '@rasmon/agent';
import { CollectorMetrics } from '../collector/src/metrics/metrics.js';
import { FARM_FAMILIES } from '../collector/src/metrics/farm-series.js';

const ROOT = new URL('../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Row {
  names: string[];
  labels: string[];
}

/** The rows of the table under "### Metrics" in §4 of docs/design.md. */
function designTable(): Row[] {
  const design = read('docs/design.md');
  const start = design.indexOf('### Metrics', design.indexOf('## 4. '));
  const end = design.indexOf('\n### ', start + 1);
  const rows = design
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  expect(rows.length).toBeGreaterThan(30);
  return rows.map((line) => {
    const [names, labels] = line.split('|').slice(1, 3);
    return {
      names: [...names!.matchAll(/`([a-z_]+)`/g)].map((match) => match[1]!),
      labels: labels!
        .split(/[,/]/)
        .map((label) => label.trim())
        .filter(Boolean),
    };
  });
}

const rows = designTable();
const tableNames = rows.flatMap((row) => row.names);
const OURS = /^(ras|rasmon)_/;

/** Each metric the code defines, with its label names (farm series and the agent's: the labels their lines carry). */
async function codeMetrics(): Promise<Map<string, string[]>> {
  const metrics = new Map<string, string[]>();
  for (const metric of new CollectorMetrics('0.0.0').registry.getMetricsAsArray()) {
    const { name, labelNames } = metric as unknown as { name: string; labelNames: string[] };
    if (OURS.test(name)) metrics.set(name, [...labelNames]);
  }
  // The agent writes its own exposition text (agent/src/metric-registry.ts): its TYPE lines name its
  // metrics, its samples carry their labels.
  const agent = new AgentMetrics({ version: '0.0.0', source: 'simulate' });
  const text = await agent.registry.metrics();
  for (const [, name] of text.matchAll(/^# TYPE (\S+) \S+$/gm)) if (OURS.test(name!)) metrics.set(name!, []);
  for (const [, name, labels] of text.matchAll(/^([a-z_]+?)(?:_bucket|_sum|_count)?\{([^}]*)\} /gm)) {
    const keys = [...labels!.matchAll(/(\w+)="/g)].map((match) => match[1]!).filter((key) => key !== 'le');
    const known = metrics.get(name!);
    if (known) for (const key of keys) if (!known.includes(key)) known.push(key);
  }
  for (const family of FARM_FAMILIES) metrics.set(family.name, []);
  return metrics;
}

/** Metric names where a file names them: whole words, not a recording rule's `level:name:op` parts. */
function namesIn(text: string): string[] {
  return [...text.matchAll(/(?<![\w:])(ras|rasmon)_[a-z0-9_]*[a-z0-9](?![\w:])/g)].map((match) => match[0]);
}

/** Files that name metrics, relative to the root. */
function filesNaming(): string[] {
  const walk = (dir: string, keep: RegExp): string[] =>
    readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile() && keep.test(entry.name))
      .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
  return [
    'README.md',
    ...walk('docs', /\.md$/),
    ...walk('deploy', /\.(ya?ml|json)$/),
    ...walk('collector/static', /\.(js|html)$/),
    ...walk('bench', /\.ts$/).filter((path) => !path.includes('/dist/')),
  ];
}

/** The renames CHANGELOG.md lists: `old` → `new`. */
function renames(): Array<{ from: string; to: string }> {
  return [...read('CHANGELOG.md').matchAll(/`([a-z_]+)` → `([a-z_]+)`/g)].map((match) => ({
    from: match[1]!,
    to: match[2]!,
  }));
}

describe('the metrics table of docs/design.md §4', () => {
  it('lists each metric once', () => {
    expect(tableNames.filter((name, i) => tableNames.indexOf(name) !== i)).toEqual([]);
  });

  it('lists exactly the metrics the collector and the agent define', async () => {
    expect([...tableNames].sort()).toEqual([...(await codeMetrics()).keys()].sort());
  });

  it("gives the labels the code's metrics carry", async () => {
    const code = await codeMetrics();
    const problems: string[] = [];
    for (const row of rows) {
      for (const name of row.names) {
        const labels = code.get(name);
        // Farm series render their labels by hand; their lines are checked by the scrape tests.
        if (!labels || !name.startsWith('rasmon_')) continue;
        // A row of two metrics (`a` / `b`) gives their labels the same way (`x` / `y`).
        const own = row.labels[row.names.indexOf(name)];
        const expected = row.names.length === 1 ? row.labels : own ? [own] : [];
        if ([...labels].sort().join() !== [...expected].sort().join())
          problems.push(`${name}: table says [${expected.join(', ')}], code [${labels.join(', ')}]`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('is the list every document, rule file, dashboard and the bench name metrics from', () => {
    const known = new Set(tableNames);
    const problems: string[] = [];
    for (const path of filesNaming()) {
      for (const name of namesIn(read(path))) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        if (!known.has(name) && !known.has(base)) problems.push(`${path}: ${name} is not in the table`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('names renamed metrics only in CHANGELOG.md, each to a metric of the table', () => {
    const list = renames();
    expect(list.length).toBeGreaterThan(0);
    for (const { from, to } of list) {
      expect(tableNames).not.toContain(from);
      expect(tableNames).toContain(to);
    }
  });
});
