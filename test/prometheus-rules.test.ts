/**
 * The Prometheus deployment files pass promtool (from the PATH; Debian's Prometheus 2.42 here):
 * - `promtool check rules` on every deploy/prometheus/rules/*.yml, `promtool check config` on
 *   deploy/prometheus/prometheus.yml (its rule_files resolve relative to it), and
 *   `promtool test rules` on deploy/prometheus/tests/rasmon-alerts.test.yml: all exit 0.
 * - The unit tests cover every alert with a firing case and a non-firing case.
 * - Every farm series a rule reads is aggregated with `max by (farm)` / `max by (farm, host)`, since
 *   several collectors export the same farm series.
 * - The unit tests bite: a rules file with a threshold, a `for`, or the aggregation broken on purpose
 *   makes `promtool test rules` fail.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';

const PROMTOOL = 'promtool';
const ROOT = new URL('..', import.meta.url).pathname;
const PROM_DIR = join(ROOT, 'deploy/prometheus');
const RULES_DIR = join(PROM_DIR, 'rules');
const CONFIG = join(PROM_DIR, 'prometheus.yml');
const ALERT_RULES = join(RULES_DIR, 'rasmon-alerts.yml');
const RULE_TESTS = join(PROM_DIR, 'tests/rasmon-alerts.test.yml');
const RUNBOOKS = join(ROOT, 'docs/runbooks.md');

interface Run {
  command: string;
  status: number | null;
  output: string;
}

/** Runs promtool and keeps its whole output (stdout then stderr) for the failure message. */
function promtool(args: string[], cwd = ROOT): Run {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  const output = [result.error ? `spawn failed: ${result.error.message}` : '', result.stdout ?? '', result.stderr ?? '']
    .filter((part) => part.trim() !== '')
    .join('\n');
  return { command: `promtool ${args.join(' ')}`, status: result.status, output };
}

function report(run: Run): string {
  return `${run.command} exited ${run.status}:\n${run.output}`;
}

function expectSuccess(run: Run): void {
  expect(run.status, report(run)).toBe(0);
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function ruleFiles(): string[] {
  return readdirSync(RULES_DIR)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(RULES_DIR, name));
}

function rulesOf(file: string): Rule[] {
  const doc = YAML.parse(readFileSync(file, 'utf8')) as { groups?: Array<{ rules?: Rule[] }> } | null;
  return (doc?.groups ?? []).flatMap((group) => group.rules ?? []);
}

interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: unknown[] | null;
}

function alertTests(): AlertTest[] {
  const doc = YAML.parse(readFileSync(RULE_TESTS, 'utf8')) as { tests?: Array<{ alert_rule_test?: AlertTest[] }> };
  return (doc.tests ?? []).flatMap((group) => group.alert_rule_test ?? []);
}

/** Farm series (docs/design.md §4): read from Redis, the same on every collector. */
const FARM_SERIES = /(?<![\w:])(ras_license_[a-z_]+|ras_agent_[a-z_]+|ras_host_[a-z_]+|ras_connections(?:_exempt)?|ras_farm_[a-z_]+|ras_snapshot_corrections_total)\b/g;
/** A farm series read straight inside `max by (farm)` or `max by (farm, <its other label>)` (through increase/rate/timestamp). */
const AGGREGATED = /max by \(farm(?:, (?:host|license|state))?\) \((?:(?:increase|rate|delta|max_over_time|timestamp)\()?(ras_[a-z_]+)\b/g;

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('Prometheus rules and config (promtool)', () => {
  it('has promtool', () => {
    const found = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' });
    expect(found.error, 'promtool is not on the PATH: install prometheus (Debian) to run this suite').toBeUndefined();
    expect(found.status).toBe(0);
  });

  it('passes `promtool check rules` for every rules file', () => {
    const files = ruleFiles();
    expect(files, `rule files in ${RULES_DIR}`).toContain(ALERT_RULES);
    for (const file of files) expectSuccess(promtool(['check', 'rules', file]));
  });

  it('passes `promtool check config` for prometheus.yml, from any working directory', () => {
    const run = promtool(['check', 'config', CONFIG]);
    expectSuccess(run);
    // rule_files resolve relative to the config file: the rules must really have been found.
    expect(run.output, report(run)).toMatch(/SUCCESS: 1 rule files found/);
    expectSuccess(promtool(['check', 'config', 'prometheus.yml'], PROM_DIR));
  });

  it('scrapes job rasmon-collector every 15s and loads rules/*.yml', () => {
    const config = YAML.parse(readFileSync(CONFIG, 'utf8')) as {
      global?: { scrape_interval?: string; evaluation_interval?: string };
      rule_files?: string[];
      scrape_configs?: Array<{ job_name: string; scrape_interval?: string; static_configs?: Array<{ targets: string[] }> }>;
    };
    expect(config.global?.evaluation_interval).toBe('15s');
    expect(config.rule_files).toEqual(['rules/*.yml']);
    const job = config.scrape_configs?.find((scrape) => scrape.job_name === 'rasmon-collector');
    expect(job, 'scrape config of job rasmon-collector').toBeDefined();
    expect(job!.scrape_interval ?? config.global?.scrape_interval).toBe('15s');
    expect(job!.static_configs?.flatMap((s) => s.targets)).toContain('collector:9420');
  });

  it('passes `promtool test rules` on the rule unit tests', () => {
    expectSuccess(promtool(['test', 'rules', RULE_TESTS]));
  });

  it('gives every alert a severity, summary, description and runbook_url', () => {
    const alerts = ruleFiles().flatMap(rulesOf).filter((rule) => rule.alert);
    expect(alerts.length).toBeGreaterThan(0);
    const problems = alerts.flatMap((rule) => {
      const missing: string[] = [];
      if (!['critical', 'warning', 'info'].includes(rule.labels?.severity ?? '')) missing.push('severity label');
      for (const key of ['summary', 'description', 'runbook_url']) if (!rule.annotations?.[key]) missing.push(`${key} annotation`);
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
    const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
    const anchors = readFileSync(RUNBOOKS, 'utf8')
      .split('\n')
      .flatMap((line) => (/^#{2,3} /.test(line) ? [slug(line.replace(/^#+ /, ''))] : []));
    const alerts = rules.filter((rule) => rule.alert);
    const problems = alerts.flatMap((rule) => {
      const url = rule.annotations?.runbook_url ?? '';
      const match = /^\{\{ with query "rasmon:runbooks:info" \}\}\{\{ \. \| first \| label "base" \}\}\{\{ end \}\}#([a-z0-9_-]+)$/.exec(url);
      if (!match) return [`${rule.alert}: runbook_url is not <base>#<anchor>: ${url}`];
      if (match[1] !== rule.alert!.toLowerCase()) return [`${rule.alert}: links to #${match[1]}, not its own section`];
      return anchors.includes(match[1]!) ? [] : [`${rule.alert}: no section #${match[1]} in docs/runbooks.md`];
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

  describe('the unit tests fail when a rule is broken', () => {
    const original = () => readFileSync(ALERT_RULES, 'utf8');

    /** promtool test rules on a copy of the tree whose alert rules have `from` replaced by `to`. */
    function testMutant(from: string, to: string, alert: string): Run {
      const rules = original();
      expect(rules.split(from).length - 1, `"${from}" must occur once in ${ALERT_RULES} (update this mutation)`).toBe(1);
      const dir = mkdtempSync(join(tmpdir(), 'rasmon-rules-mutant-'));
      scratch.push(dir);
      mkdirSync(join(dir, 'rules'));
      mkdirSync(join(dir, 'tests'));
      writeFileSync(join(dir, 'rules', 'rasmon-alerts.yml'), rules.replace(from, to));
      // Only the test groups that check the alert the mutant should break: they are what must catch it.
      const tests = YAML.parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> };
      tests.tests = tests.tests.filter((group) => (group.alert_rule_test ?? []).some((test) => test.alertname === alert));
      expect(tests.tests.length, `unit tests of ${alert}`).toBeGreaterThan(0);
      writeFileSync(join(dir, 'tests', 'rasmon-alerts.test.yml'), YAML.stringify(tests));
      // The mutant is still valid rules: what fails below is the unit tests, not the syntax.
      expectSuccess(promtool(['check', 'rules', join(dir, 'rules', 'rasmon-alerts.yml')]));
      return promtool(['test', 'rules', join(dir, 'tests', 'rasmon-alerts.test.yml')]);
    }

    const mutants: Array<{ what: string; from: string; to: string; alert: string }> = [
      {
        what: 'sum instead of max over collectors (double counting)',
        from: 'max by (farm) (ras_license_overuse_users)\n            or (farm:ras_license_overuse_users:held',
        to: 'sum by (farm) (ras_license_overuse_users)\n            or (farm:ras_license_overuse_users:held',
        alert: 'RasLicenseOveruse',
      },
      {
        what: 'overuse not held while the data is missing (a false resolve)',
        from: 'or (farm:ras_license_overuse_users:held unless',
        to: 'or (farm:ras_license_overuse_users:none unless',
        alert: 'RasLicenseOveruse',
      },
      {
        what: 'data-missing alert reads the held series instead of the live one',
        from: 'expr: farm:ras_license_data_last_seen:timestamp unless on (farm) max by (farm) (ras_license_info)',
        to: 'expr: farm:ras_license_data_last_seen:timestamp unless on (farm) farm:ras_license_info:held',
        alert: 'RasLicenseDataMissing',
      },
      {
        what: 'overuse critical from 1 hour of grace left instead of 1 day',
        from: 'expr: vector(86400)',
        to: 'expr: vector(3600)',
        alert: 'RasLicenseOveruseGraceEnding',
      },
      {
        what: 'overuse admissions read from the overuse gauge (misses short overuse)',
        from: 'expr: max by (farm) (increase(ras_license_overuse_admissions_total[5m])) > 0',
        to: 'expr: max by (farm) (ras_license_overuse_users) > 0',
        alert: 'RasLicenseOveruseAdmissions',
      },
      {
        what: 'near-capacity threshold raised to 96 %',
        from: 'expr: vector(0.9)',
        to: 'expr: vector(0.96)',
        alert: 'RasLicenseNearCapacity',
      },
      {
        what: 'near-capacity `for` shortened to 9m',
        from: 'threshold:license_near_capacity:ratio\n        for: 10m',
        to: 'threshold:license_near_capacity:ratio\n        for: 9m',
        alert: 'RasLicenseNearCapacity',
      },
      {
        what: 'expiry warning step widened to 15 days',
        from: 'expr: vector(14 * 86400)',
        to: 'expr: vector(15 * 86400)',
        alert: 'RasLicenseExpiringSoon',
      },
      {
        what: 'retired hosts no longer left out',
        from: '(max by (farm, host) (ras_host_retired) == 1)',
        to: '(max by (farm, host) (ras_host_retired) == 2)',
        alert: 'RasAgentDown',
      },
      {
        what: 'a farm counted as reporting when only hosts it does not expect are up',
        from: '(max by (farm, host) (ras_agent_up) == 1) and on (farm, host)',
        to: '(max by (farm, host) (ras_agent_up) == 1) or on (farm, host)',
        alert: 'RasFarmNoAgents',
      },
      {
        what: 'expected hosts that retired left out of the agent-down alert',
        from: 'unless on (farm, host) (max by (farm, host) (ras_host_expected) == 1))',
        to: 'unless on (farm, host) (max by (farm, host) (ras_host_expected) == 2))',
        alert: 'RasAgentDown',
      },
      {
        what: 'grace exhausted also while at deactivation risk',
        from: 'unless on (farm) (farm:ras_license_deactivation_risk:held == 1)',
        to: 'unless on (farm) (farm:ras_license_deactivation_risk:held == 2)',
        alert: 'RasLicenseOveruseGraceExhausted',
      },
      {
        what: 'host-limit refusals left out of the refusals alert',
        from: 'reason=~"unauthorized|revoked|forbidden|max_hosts"',
        to: 'reason=~"unauthorized|revoked|forbidden"',
        alert: 'RasAgentRefusals',
      },
    ];

    for (const mutant of mutants) {
      it(`catches: ${mutant.what}`, () => {
        const run = testMutant(mutant.from, mutant.to, mutant.alert);
        expect(run.status, `the unit tests passed a broken rule:\n${report(run)}`).not.toBe(0);
        expect(run.output, report(run)).toMatch(/FAILED/);
        expect(run.output, report(run)).toContain(`alertname: ${mutant.alert},`);
      });
    }
  });
});
