/**
 * The Prometheus deployment files, read as YAML (promtool itself runs in prometheus-rules.test.ts):
 * - prometheus.yml scrapes the collector every 15s and loads the rules.
 * - Every alert has a severity, a summary, a description and its own runbook section.
 * - The unit tests cover every alert with a firing case and a non-firing case.
 * - Every farm series a rule reads is aggregated with `max by (farm)` / `max by (farm, host)`, since
 *   several collectors export the same farm series.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { alertTests, CONFIG, ruleFiles, rulesOf, RUNBOOKS } from './support/prometheus-rules.js';

/** Farm series (docs/design.md §4): read from Redis, the same on every collector. */
const FARM_SERIES =
  /(?<![\w:])(ras_license_[a-z_]+|ras_agent_[a-z_]+|ras_host_[a-z_]+|ras_broker_[a-z_]+|ras_connections(?:_exempt)?|ras_farm_[a-z_]+|ras_snapshot_corrections_total)\b/g;
/** A farm series read straight inside `max by (farm)` or `max by (farm, <its other label>)` (through increase/rate/timestamp). */
const AGGREGATED =
  /max by \(farm(?:, (?:host|license|state|alert_message|source))?\) \((?:(?:increase|rate|delta|max_over_time|timestamp)\()?(ras_[a-z_]+)\b/g;

describe('Prometheus rules and config (files)', () => {
  it('scrapes job rasmon-collector every 15s and loads rules/*.yml', () => {
    const config = YAML.parse(readFileSync(CONFIG, 'utf8')) as {
      global?: { scrape_interval?: string; evaluation_interval?: string };
      rule_files?: string[];
      scrape_configs?: Array<{
        job_name: string;
        scrape_interval?: string;
        static_configs?: Array<{ targets: string[] }>;
      }>;
    };
    expect(config.global?.evaluation_interval).toBe('15s');
    expect(config.rule_files).toEqual(['rules/*.yml']);
    const job = config.scrape_configs?.find((scrape) => scrape.job_name === 'rasmon-collector');
    expect(job, 'scrape config of job rasmon-collector').toBeDefined();
    expect(job!.scrape_interval ?? config.global?.scrape_interval).toBe('15s');
    expect(job!.static_configs?.flatMap((s) => s.targets)).toContain('collector:9420');
  });

  it('gives every alert a severity, summary, description and runbook_url', () => {
    const alerts = ruleFiles()
      .flatMap(rulesOf)
      .filter((rule) => rule.alert);
    expect(alerts.length).toBeGreaterThan(0);
    const problems = alerts.flatMap((rule) => {
      const missing: string[] = [];
      if (!['critical', 'warning', 'info'].includes(rule.labels?.severity ?? '')) missing.push('severity label');
      for (const key of ['summary', 'description', 'runbook_url'])
        if (!rule.annotations?.[key]) missing.push(`${key} annotation`);
      return missing.map((what) => `${rule.alert}: ${what}`);
    });
    expect(problems).toEqual([]);
  });

  it('links every alert to its own section of docs/runbooks.md, under an https base set in one rule', () => {
    const rules = ruleFiles().flatMap(rulesOf);
    const settings = rules.filter((rule) => rule.record === 'rasmon:runbooks:info');
    expect(settings, 'one rasmon:runbooks:info rule').toHaveLength(1);
    const base = settings[0]!.labels?.base ?? '';
    expect(base).toMatch(/^https:\/\/[^\s#]+\/docs\/runbooks\.md$/);
    // GitHub's heading anchors: lower case, spaces to dashes, other punctuation dropped.
    const slug = (heading: string) =>
      heading
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, '')
        .replace(/ /g, '-');
    const anchors = readFileSync(RUNBOOKS, 'utf8')
      .split('\n')
      .flatMap((line) => (/^#{2,3} /.test(line) ? [slug(line.replace(/^#+ /, ''))] : []));
    const alerts = rules.filter((rule) => rule.alert);
    const problems = alerts.flatMap((rule) => {
      const url = rule.annotations?.runbook_url ?? '';
      const match =
        /^\{\{ with query "rasmon:runbooks:info" \}\}\{\{ \. \| first \| label "base" \}\}\{\{ end \}\}#([a-z0-9_-]+)$/.exec(
          url,
        );
      if (!match) return [`${rule.alert}: runbook_url is not <base>#<anchor>: ${url}`];
      if (match[1] !== rule.alert!.toLowerCase()) return [`${rule.alert}: links to #${match[1]}, not its own section`];
      return anchors.includes(match[1]) ? [] : [`${rule.alert}: no section #${match[1]} in docs/runbooks.md`];
    });
    expect(problems).toEqual([]);
    // And no section for an alert that no longer exists.
    const names = new Set(alerts.map((rule) => rule.alert!.toLowerCase()));
    expect(anchors.filter((anchor) => anchor.startsWith('ras') && !names.has(anchor))).toEqual([]);
  });

  it('aggregates every farm series with max by (farm) so two collectors count once', () => {
    const problems = ruleFiles()
      .flatMap(rulesOf)
      .flatMap((rule) => {
        const expr = String(rule.expr);
        const read = [...expr.matchAll(FARM_SERIES)].map((m) => m[1]!);
        const aggregated = [...expr.matchAll(AGGREGATED)].map((m) => m[1]!);
        return read.length === aggregated.length ? [] : [`${rule.alert ?? rule.record}: ${expr.replace(/\s+/g, ' ')}`];
      });
    expect(problems).toEqual([]);
  });

  it('unit-tests every alert both firing and not firing', () => {
    const alerts = ruleFiles()
      .flatMap(rulesOf)
      .flatMap((rule) => (rule.alert ? [rule.alert] : []));
    const tests = alertTests();
    const gaps = alerts.flatMap((alert) => {
      const mine = tests.filter((test) => test.alertname === alert);
      const missing: string[] = [];
      if (!mine.some((test) => (test.exp_alerts ?? []).length > 0)) missing.push(`${alert}: no firing case`);
      if (!mine.some((test) => (test.exp_alerts ?? []).length === 0)) missing.push(`${alert}: no non-firing case`);
      return missing;
    });
    expect(gaps).toEqual([]);
    // And no test names an alert that does not exist (promtool would just expect nothing of it).
    expect(tests.map((test) => test.alertname).filter((name) => !alerts.includes(name))).toEqual([]);
  });
});
