/**
 * The Grafana dashboard (deploy/grafana/dashboards/rasmon.json), checked as data: it loads, its
 * panels and targets are well formed and all go through the `datasource` variable, it names only
 * metrics of docs/design.md §4's table, and — because every collector exports the same farm series from the
 * shared Redis — every farm-level series is aggregated with `max by (farm…)` before anything else
 * touches it, so nothing is counted once per collector. Its PromQL is run against a real Prometheus
 * in prometheus-e2e.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const DASHBOARD_PATH = `${ROOT}deploy/grafana/dashboards/rasmon.json`;
const DS_VAR = '${datasource}';

// ---------------------------------------------------------------------------------------------
// A small PromQL scanner: enough structure to tell, for each metric selector, which aggregation
// encloses it most closely. It skips strings, label matchers `{…}`, ranges `[…]` and comments.

const AGGREGATORS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);
/** Words that are never metric names where they stand (operators, modifiers, literals). */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const LABEL_LIST_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

interface Token {
  kind: 'ident' | 'number' | '(' | ')' | ',' | 'matchers' | 'other';
  text: string;
}

interface Frame {
  kind: 'aggregation' | 'call' | 'paren';
  op: string;
  /** For aggregations: `by` labels, `without` labels, or neither (grouping over everything). */
  grouping?: { mode: 'by' | 'without'; labels: string[] };
}

export interface SelectorUse {
  metric: string;
  /** The innermost aggregation around the selector, if any (functions and parentheses in between are fine). */
  aggregation?: Frame | undefined;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const skipTo = (close: string) => {
    // From an opening bracket to its match, strings inside included.
    for (i += 1; i < expr.length && expr[i] !== close; i += 1) {
      if (expr[i] === '"' || expr[i] === "'" || expr[i] === '`') skipString();
    }
    if (i >= expr.length) throw new Error(`unclosed ${close === '}' ? '{' : '['} in ${expr}`);
    i += 1;
  };
  const skipString = () => {
    const quote = expr[i];
    for (i += 1; i < expr.length && expr[i] !== quote; i += 1) if (expr[i] === '\\' && quote !== '`') i += 1;
    if (i >= expr.length) throw new Error(`unclosed string in ${expr}`);
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i += 1;
    } else if (c === '"' || c === "'" || c === '`') {
      skipString();
      i += 1;
      tokens.push({ kind: 'other', text: 'string' });
    } else if (c === '{') {
      const start = i;
      skipTo('}');
      tokens.push({ kind: 'matchers', text: expr.slice(start, i) });
    } else if (c === '[') {
      skipTo(']');
    } else if (/[a-zA-Z_:]/.test(c)) {
      const match = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))![0];
      tokens.push({ kind: 'ident', text: match });
      i += match.length;
    } else if (/[0-9.]/.test(c)) {
      const match = /^[0-9.][0-9a-zA-Z.+]*/.exec(expr.slice(i))![0];
      tokens.push({ kind: 'number', text: match });
      i += match.length;
    } else if (c === '(' || c === ')' || c === ',') {
      tokens.push({ kind: c, text: c });
      i += 1;
    } else {
      tokens.push({ kind: 'other', text: c });
      i += 1;
    }
  }
  return tokens;
}

/** Every metric selector of an expression, with the aggregation closest around it. */
export function selectorsOf(expr: string): SelectorUse[] {
  const tokens = tokenize(expr);
  const stack: Frame[] = [];
  const found: Array<{ metric: string; frames: Frame[] }> = [];
  let lastClosed: Frame | undefined;
  let i = 0;
  /** Reads `( label, … )` at tokens[i]; returns the labels and moves past it. */
  const labelList = (): string[] => {
    if (tokens[i]?.kind !== '(') throw new Error(`expected a label list in ${expr}`);
    const labels: string[] = [];
    for (i += 1; tokens[i] && tokens[i]!.kind !== ')'; i += 1)
      if (tokens[i]!.kind === 'ident') labels.push(tokens[i]!.text);
    if (!tokens[i]) throw new Error(`unclosed label list in ${expr}`);
    i += 1;
    return labels;
  };
  while (i < tokens.length) {
    const token = tokens[i]!;
    const next = tokens[i + 1];
    if (
      token.kind === 'ident' &&
      AGGREGATORS.has(token.text) &&
      (next?.kind === '(' || next?.text === 'by' || next?.text === 'without')
    ) {
      const frame: Frame = { kind: 'aggregation', op: token.text };
      i += 1;
      if (tokens[i]!.kind === 'ident') {
        const mode = tokens[i]!.text as 'by' | 'without';
        i += 1;
        frame.grouping = { mode, labels: labelList() };
      }
      if (tokens[i]?.kind !== '(') throw new Error(`expected ( after ${token.text} in ${expr}`);
      stack.push(frame);
      i += 1;
    } else if (token.kind === 'ident' && LABEL_LIST_WORDS.has(token.text)) {
      i += 1;
      if (tokens[i]?.kind !== '(') continue; // group_left without labels
      const labels = labelList();
      // `max(x) by (farm)`: the postfix grouping belongs to the aggregation just closed.
      if (
        (token.text === 'by' || token.text === 'without') &&
        lastClosed?.kind === 'aggregation' &&
        !lastClosed.grouping
      ) {
        lastClosed.grouping = { mode: token.text, labels };
      }
    } else if (token.kind === 'ident' && next?.kind === '(') {
      stack.push({ kind: 'call', op: token.text });
      i += 2;
    } else if (token.kind === '(') {
      stack.push({ kind: 'paren', op: '(' });
      i += 1;
    } else if (token.kind === ')') {
      lastClosed = stack.pop();
      if (!lastClosed) throw new Error(`unbalanced ) in ${expr}`);
      i += 1;
      continue;
    } else if (token.kind === 'ident' && !KEYWORDS.has(token.text)) {
      found.push({ metric: token.text, frames: [...stack] });
      i += 1;
    } else if (token.kind === 'matchers') {
      // A selector made of matchers alone (`{__name__="…"}`) hides its metric from this check.
      const previous = tokens[i - 1];
      if (previous?.kind !== 'ident')
        throw new Error(`a selector without a metric name is not checked: ${token.text} in ${expr}`);
      i += 1;
    } else {
      i += 1;
    }
    lastClosed = undefined;
  }
  if (stack.length > 0) throw new Error(`unbalanced ( in ${expr}`);
  return found.map(({ metric, frames }) => ({
    metric,
    aggregation: [...frames].reverse().find((frame) => frame.kind === 'aggregation'),
  }));
}

/** Metrics every collector exports identically from Redis (docs/design.md §4): they need `max by (farm…)`. */
export function isFarmMetric(metric: string): boolean {
  return (
    /^ras_(license_|connections|host_|agent_|farm_|broker_)/.test(metric) || metric === 'ras_snapshot_corrections_total'
  );
}

/**
 * What is wrong with an expression's farm-level selectors: each must sit inside a `max by (…)` that
 * keeps `farm` as the aggregation closest to it. Anything else between the selector and the
 * deduplication (a `sum`, a `max without`, a bare selector) would count a farm once per collector.
 */
export function aggregationProblems(expr: string): string[] {
  const problems: string[] = [];
  for (const { metric, aggregation } of selectorsOf(expr)) {
    if (!isFarmMetric(metric)) continue;
    if (!aggregation) {
      problems.push(`${metric} is not aggregated`);
    } else if (
      aggregation.op !== 'max' ||
      aggregation.grouping?.mode !== 'by' ||
      !aggregation.grouping.labels.includes('farm')
    ) {
      const grouping = aggregation.grouping
        ? ` ${aggregation.grouping.mode} (${aggregation.grouping.labels.join(', ')})`
        : '';
      problems.push(`${metric} is first aggregated by ${aggregation.op}${grouping}, not max by (farm…)`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The dashboard as data.

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Override {
  matcher: { id: string; options: string };
  properties: Array<{ id: string; value: unknown }>;
}
interface Panel {
  id: number;
  type: string;
  title?: string;
  fieldConfig?: {
    defaults?: { unit?: string; min?: number; max?: number; thresholds?: Thresholds };
    overrides?: Override[];
  };
  transformations?: Array<{ id: string; options: { renameByName?: Record<string, string> } }>;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  definition?: string;
  datasource?: { type?: string; uid?: string };
  multi?: boolean;
  includeAll?: boolean;
}
interface Thresholds {
  mode: string;
  steps: Array<{ color: string; value: number | null }>;
}
interface Annotation {
  name: string;
  builtIn?: number;
  enable?: boolean;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  uid: string;
  links?: Array<{ url?: string }>;
  annotations?: { list: Annotation[] };
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

function loadDashboard(text = readFileSync(DASHBOARD_PATH, 'utf8')): Dashboard {
  return JSON.parse(text) as Dashboard;
}

/** Every panel, those inside collapsed rows included. */
function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

function allExprs(dashboard: Dashboard): Array<{ panel: string; expr: string }> {
  return allPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel: `${panel.id} ${panel.title}`, expr: target.expr ?? '' })),
  );
}

/** Stat and gauge panels that show no unit (Grafana then shows a bare number). */
function panelsWithoutUnit(dashboard: Dashboard): string[] {
  return allPanels(dashboard)
    .filter((panel) => panel.type === 'stat' || panel.type === 'gauge')
    .filter((panel) => !panel.fieldConfig?.defaults?.unit?.trim())
    .map((panel) => `${panel.id} ${panel.title}`);
}

/** A table's columns: the names its organize transformation gives them, in order. */
function tableColumns(panel: Panel): string[] {
  const rename = panel.transformations?.find((t) => t.id === 'organize')?.options.renameByName ?? {};
  return Object.values(rename);
}

/** The properties a table's override gives one column. */
function columnProperties(panel: Panel, column: string): Map<string, unknown> {
  const override = panel.fieldConfig?.overrides?.find((o) => o.matcher.id === 'byName' && o.matcher.options === column);
  return new Map((override?.properties ?? []).map((p) => [p.id, p.value]));
}

/** The expression behind a renamed `Value #X` column (or the label column's first target). */
function columnExpr(panel: Panel, column: string): string {
  const rename = panel.transformations?.find((t) => t.id === 'organize')?.options.renameByName ?? {};
  const key = Object.entries(rename).find(([, name]) => name === column)?.[0];
  const refId = /^Value #([A-Z])$/.exec(key ?? '')?.[1];
  return panel.targets?.find((target) => target.refId === refId)?.expr ?? '';
}

function variableQuery(variable: Variable): string {
  return typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
}

/** The metric names of docs/design.md §4's table in a markdown text (the lines of its first column). */
function metricTable(markdown: string, from: RegExp, to: RegExp): Set<string> {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => from.test(line));
  const end = lines.findIndex((line, index) => index > start && to.test(line));
  if (start < 0) throw new Error(`no section matching ${from}`);
  const names = new Set<string>();
  for (const line of lines.slice(start, end < 0 ? undefined : end)) {
    const cells = line.split('|');
    if (!/^\| `(ras|rasmon)_/.test(line) || cells.length < 4) continue;
    const histogram = /histogram/.test(cells[3]!);
    for (const [, name] of cells[1]!.matchAll(/`((?:ras|rasmon)_[a-z0-9_]+)`/g)) {
      names.add(name!);
      if (histogram) for (const suffix of ['_bucket', '_sum', '_count']) names.add(name! + suffix);
    }
  }
  return names;
}

/**
 * docs/design.md §4's metric list, the one list of the names (test/metrics-table.test.ts holds the
 * code and the other documents to it), less the agent's own `rasmon_agent_*`, which a host serves on
 * its `metrics.listen` and the collector does not export: the dashboard must show every one of them.
 */
function designMetricTable(): { source: string; names: Set<string> } {
  const all = metricTable(readFileSync(`${ROOT}docs/design.md`, 'utf8'), /^### Metrics/, /^##+ /);
  return {
    source: 'docs/design.md ### Metrics',
    names: new Set([...all].filter((name) => !name.startsWith('rasmon_agent_'))),
  };
}

/** Prometheus's own series the dashboard may use besides docs/design.md §4's. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS']);
describe('the PromQL aggregation check', () => {
  it('accepts farm series deduplicated by max by (farm…) before anything else', () => {
    for (const expr of [
      'max by (farm) (ras_license_users{farm=~".*"})',
      'max by (farm, host) (ras_agent_up)',
      'sum by (kind) (max by (farm, kind, via, admin, session_state) (ras_connections))',
      'max by (farm) (increase(ras_license_overuse_admissions_total[5m]))',
      'clamp_min(max by (farm) (ras_license_overuse_grace_end_timestamp_seconds) - time(), 0)',
      'max(ras_license_seats) by (farm)',
      'count by (farm) (max by (farm, host) (ras_agent_up{farm=~"(a|b)"}) == 0)',
      'sum by (instance) (rasmon_collector_agents_connected)',
      'histogram_quantile(0.99, sum by (le) (rate(rasmon_collector_apply_duration_seconds_bucket[5m])))',
    ]) {
      expect(aggregationProblems(expr), expr).toEqual([]);
    }
  });

  it('rejects farm series that are bare, summed, or aggregated without keeping farm', () => {
    for (const expr of [
      'ras_license_users',
      'ras_license_users{farm="a"} > 0',
      'sum by (farm) (ras_license_users)',
      'max by (farm) (sum by (farm) (ras_license_users))',
      'max(ras_license_users)',
      'max by (host) (ras_host_connections)',
      'max without (instance) (ras_license_users)',
      'max by (farm) (ras_license_users) / ras_license_seats',
      'sum(rate(ras_snapshot_corrections_total[5m]))',
      'avg by (farm) (ras_farm_last_update_timestamp_seconds)',
      'sum(max by (farm) (ras_license_users)) + sum(ras_connections_exempt)',
    ]) {
      expect(aggregationProblems(expr), expr).not.toEqual([]);
    }
  });

  it('sees through strings, label matchers and ranges', () => {
    expect(
      selectorsOf('max by (farm) (increase(ras_license_overuse_admissions_total{farm=~"max(x)|ras_y"}[5m:1m]))'),
    ).toEqual([
      {
        metric: 'ras_license_overuse_admissions_total',
        aggregation: { kind: 'aggregation', op: 'max', grouping: { mode: 'by', labels: ['farm'] } },
      },
    ]);
    expect(
      selectorsOf('up{job="rasmon-collector"} == bool 1 and on (instance) rasmon_collector_redis_up').map(
        (s) => s.metric,
      ),
    ).toEqual(['up', 'rasmon_collector_redis_up']);
    expect(() => selectorsOf('max by (farm) (ras_license_users')).toThrow(/unbalanced/);
  });
});

describe('the Grafana dashboard', () => {
  const dashboard = loadDashboard();
  const panels = allPanels(dashboard);
  const exprs = allExprs(dashboard);

  it('is valid JSON with its uid, a current schema and a readable layout of rows', () => {
    expect(dashboard.uid).toBe('rasmon-license');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.title).toMatch(/rasmon/);
    const rows = panels.filter((panel) => panel.type === 'row').map((panel) => panel.title);
    expect(rows.length).toBeGreaterThanOrEqual(5);
    expect(exprs.length).toBeGreaterThan(20);
  });

  it('has a datasource variable for Prometheus and a multi-value farm variable from ras_license_info', () => {
    const byName = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
    const datasource = byName.get('datasource');
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const farm = byName.get('farm')!;
    expect(farm).toMatchObject({ type: 'query', multi: true, includeAll: true });
    expect(variableQuery(farm)).toBe('label_values(ras_license_info, farm)');
    expect(farm.datasource?.uid).toBe(DS_VAR);
  });

  it('gives every panel a unique id and a place on the grid that overlaps no other', () => {
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const taken = new Map<string, number>();
    for (const panel of panels) {
      expect(panel.gridPos, `panel ${panel.id}`).toBeDefined();
      const { x, y, w, h } = panel.gridPos!;
      expect(x + w, `panel ${panel.id} width`).toBeLessThanOrEqual(24);
      for (let row = y; row < y + h; row += 1) {
        for (let column = x; column < x + w; column += 1) {
          const key = `${row},${column}`;
          expect(taken.get(key), `panel ${panel.id} overlaps panel ${taken.get(key)} at ${key}`).toBeUndefined();
          taken.set(key, panel.id);
        }
      }
    }
  });

  it('queries only through the datasource variable, with an expr in every target', () => {
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      const where = `panel ${panel.id} ${panel.title}`;
      expect(panel.datasource?.uid, where).toBe(DS_VAR);
      expect(panel.targets?.length, where).toBeGreaterThan(0);
      const refIds = panel.targets!.map((target) => target.refId);
      expect(new Set(refIds).size, `${where}: refIds`).toBe(refIds.length);
      for (const target of panel.targets!) {
        expect(target.expr?.trim(), `${where} ${target.refId}: expr`).toBeTruthy();
        expect(target.datasource?.uid, `${where} ${target.refId}: datasource`).toBe(DS_VAR);
      }
    }
  });

  it('deduplicates every farm-level series with max by (farm…) before anything else touches it', () => {
    const problems = exprs.flatMap(({ panel, expr }) =>
      aggregationProblems(expr).map((problem) => `${panel}: ${problem}`),
    );
    expect(problems).toEqual([]);
    // The check has something to bite on: most of the dashboard is farm series.
    expect(exprs.filter(({ expr }) => selectorsOf(expr).some((s) => isFarmMetric(s.metric))).length).toBeGreaterThan(
      25,
    );
  });

  it('fails that check when one max by (farm) of the dashboard becomes a sum', () => {
    const text = readFileSync(DASHBOARD_PATH, 'utf8');
    for (const [from, to] of [
      ['max by (farm) (ras_license_users', 'sum by (farm) (ras_license_users'],
      ['max by (farm, host) (ras_agent_up', 'max by (host) (ras_agent_up'],
      [
        'max by (farm, kind, via, admin, session_state) (ras_connections{',
        'sum by (farm, kind, via, admin, session_state) (ras_connections{',
      ],
    ] as const) {
      expect(text, from).toContain(from);
      const mutated = allExprs(loadDashboard(text.replace(from, to)));
      expect(
        mutated.flatMap(({ expr }) => aggregationProblems(expr)),
        `after ${from} -> ${to}`,
      ).not.toEqual([]);
    }
  });

  it('names only documented metrics, and uses every one of docs/design.md §4', () => {
    const design = designMetricTable();
    const used = new Set([
      ...exprs.flatMap(({ expr }) => selectorsOf(expr).map((s) => s.metric)),
      ...dashboard.templating.list
        .filter((variable) => variable.type === 'query')
        .map(
          (variable) =>
            /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(variableQuery(variable))?.[1] ??
            `unparsed: ${variableQuery(variable)}`,
        ),
    ]);
    const unknown = [...used].filter((metric) => !design.names.has(metric) && !PROMETHEUS_SERIES.has(metric));
    expect(unknown, `not in ${design.source}`).toEqual([]);
    expect(design.names.size, design.source).toBeGreaterThan(25);
    const base = [...design.names].filter(
      (name) => !/_(bucket|sum|count)$/.test(name) || !design.names.has(name.replace(/_(bucket|sum|count)$/, '')),
    );
    const unused = base.filter((name) => !used.has(name) && ![...used].some((u) => u.startsWith(`${name}_`)));
    expect(unused, `metrics of ${design.source} no panel shows`).toEqual([]);
  });

  it('shows a unit on every stat and gauge, and the check fails on one without', () => {
    expect(panelsWithoutUnit(dashboard)).toEqual([]);
    const mutated = loadDashboard();
    const stat = allPanels(mutated).find((panel) => panel.type === 'stat')!;
    delete stat.fieldConfig!.defaults!.unit;
    expect(panelsWithoutUnit(mutated)).toEqual([`${stat.id} ${stat.title}`]);
  });

  it('has a seat-usage gauge in percent that reaches 200 %, coloured past 90 % and 100 %', () => {
    const gauge = panels.find((panel) => panel.type === 'gauge' && panel.title === 'Seat usage')!;
    expect(gauge.fieldConfig?.defaults).toMatchObject({ unit: 'percent', min: 0, max: 200 });
    const steps = gauge.fieldConfig!.defaults!.thresholds!.steps;
    expect(steps.map((step) => step.value)).toEqual([null, 90, 100, 150]);
    expect(new Set(steps.map((step) => step.color)).size).toBe(steps.length);
  });

  it('opens with a one-row-per-farm overview table of the columns on-call needs, coloured by threshold', () => {
    expect(dashboard.panels[0]).toMatchObject({ type: 'row', title: 'Farms overview', gridPos: { y: 0 } });
    const table = dashboard.panels[1]!;
    expect(table).toMatchObject({ type: 'table', title: 'Farms', gridPos: { y: 1, w: 24 } });
    expect(tableColumns(table)).toEqual([
      'Farm',
      'Users',
      'Seats',
      'Usage',
      'Overuse users',
      'Grace left',
      'Days to expiry',
      'Hosts up',
      'Hosts expected',
      'Source failures',
    ]);
    // One row per farm: the targets are merged on farm (prometheus-e2e checks each answers one series per farm).
    expect(table.transformations?.[0]?.id).toBe('merge');
    const metrics: Record<string, RegExp> = {
      Users: /ras_license_users\b/,
      Seats: /ras_license_seats\b/,
      Usage: /ras_license_users\b.*\/.*ras_license_seats\b/,
      'Overuse users': /ras_license_overuse_users\b/,
      'Grace left': /ras_license_overuse_grace_end_timestamp_seconds\b.*- time\(\)/,
      'Days to expiry': /ras_license_expiry_timestamp_seconds\b.*- time\(\)\) \/ 86400/,
      'Hosts up': /ras_agent_up\b.*== 1/,
      'Hosts expected': /ras_host_expected\b.*== 1/,
      'Source failures': /ras_agent_source_up\b.*== 0/,
    };
    for (const [column, pattern] of Object.entries(metrics)) expect(columnExpr(table, column), column).toMatch(pattern);
    // Counts are 0, not empty, for a farm with none: each count falls back to the farm's seats times 0.
    for (const column of ['Hosts up', 'Hosts expected', 'Source failures'])
      expect(columnExpr(table, column), column).toMatch(/ or on \(farm\) \(0 \* max by \(farm\) \(ras_license_seats/);
    for (const column of tableColumns(table).slice(1))
      expect(columnProperties(table, column).get('unit'), `${column} unit`).toBeTruthy();
    for (const column of ['Usage', 'Overuse users', 'Grace left', 'Days to expiry', 'Source failures']) {
      const properties = columnProperties(table, column);
      const thresholds = properties.get('thresholds') as Thresholds | undefined;
      expect(thresholds?.steps.length, `${column} thresholds`).toBeGreaterThanOrEqual(2);
      expect(properties.get('custom.cellOptions'), column).toEqual({ type: 'color-background' });
    }
    expect((columnProperties(table, 'Usage').get('thresholds') as Thresholds).steps.map((s) => s.value)).toEqual([
      null,
      90,
      100,
      150,
    ]);
    expect(
      (columnProperties(table, 'Days to expiry').get('thresholds') as Thresholds).steps.map((s) => s.value),
    ).toEqual([null, 3, 14, 30]);
  });

  it('links each farm to the collector API that lists its users over the limit, and to the status page', () => {
    const collector = dashboard.templating.list.find((variable) => variable.name === 'collector');
    expect(collector).toMatchObject({ type: 'textbox' });
    expect(variableQuery(collector!)).toMatch(/^https?:\/\/[^/]+$/);
    const table = dashboard.panels[1]!;
    const links = (column: string) =>
      (columnProperties(table, column).get('links') as Array<{ url: string }>).map((link) => link.url);
    expect(links('Farm')).toEqual(['${collector}/api/v1/farms/${__value.raw}', '${collector}/']);
    expect(links('Overuse users')).toContain('${collector}/api/v1/farms/${__data.fields.Farm}');
    expect(dashboard.links?.map((link) => link.url)).toContain('${collector}/');
  });

  it('shows retired, expected and source-failing hosts as such in the hosts table', () => {
    const hosts = panels.find((panel) => panel.type === 'table' && panel.title === 'Hosts')!;
    expect(tableColumns(hosts)).toEqual(
      expect.arrayContaining(['Agent', 'Expected', 'Retired', 'Source', 'Source last success']),
    );
    expect(columnExpr(hosts, 'Retired')).toMatch(/max by \(farm, host\) \(ras_host_retired\{/);
    expect(columnExpr(hosts, 'Expected')).toMatch(/max by \(farm, host\) \(ras_host_expected\{/);
    expect(columnExpr(hosts, 'Source')).toMatch(/max by \(farm, host\) \(ras_agent_source_up\{/);
    const texts = (column: string) =>
      (columnProperties(hosts, column).get('mappings') as Array<{ options: Record<string, { text: string }> }>).flatMap(
        (m) => Object.entries(m.options).map(([value, { text }]) => `${value}=${text}`),
      );
    expect(texts('Retired')).toEqual(['1=retired']);
    expect(texts('Expected')).toEqual(['1=expected']);
    expect(texts('Source').sort()).toEqual(['0=FAILING', '1=OK']);
    expect(texts('Agent').sort()).toEqual(['0=DOWN', '1=UP']);
  });

  it("annotates the time series with firing alerts from Prometheus, and keeps Grafana's own", () => {
    const list = dashboard.annotations?.list ?? [];
    expect(list.find((a) => a.builtIn === 1)).toMatchObject({ enable: true });
    const alerts = list.filter((a) => a.expr !== undefined);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ enable: true, datasource: { type: 'prometheus', uid: DS_VAR } });
    expect(alerts[0]!.expr).toBe('ALERTS{alertstate="firing", farm=~"$farm"}');
  });
});
