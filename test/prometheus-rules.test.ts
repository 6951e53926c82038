/**
 * The Prometheus deployment files pass promtool (from the PATH; Debian's Prometheus 2.42 here):
 * - `promtool check rules` on every deploy/prometheus/rules/*.yml, `promtool check config` on
 *   deploy/prometheus/prometheus.yml (its rule_files resolve relative to it), and
 *   `promtool test rules` on deploy/prometheus/tests/rasmon-alerts.test.yml: all exit 0.
 * - The unit tests bite: a rules file with a threshold, a `for`, or the aggregation broken on purpose
 *   makes `promtool test rules` fail.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  ALERT_RULES,
  CONFIG,
  PROM_DIR,
  ROOT,
  RULE_TESTS,
  RULES_DIR,
  ruleFiles,
  type AlertTest,
} from './support/prometheus-rules.js';

const PROMTOOL = 'promtool';

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

  it('passes `promtool test rules` on the rule unit tests', () => {
    expectSuccess(promtool(['test', 'rules', RULE_TESTS]));
  });

  describe('the unit tests fail when a rule is broken', () => {
    const original = () => readFileSync(ALERT_RULES, 'utf8');

    /** promtool test rules on a copy of the tree whose alert rules have `from` replaced by `to`. */
    function testMutant(from: string, to: string, alert: string): Run {
      const rules = original();
      expect(rules.split(from).length - 1, `"${from}" must occur once in ${ALERT_RULES} (update this mutation)`).toBe(
        1,
      );
      const dir = mkdtempSync(join(tmpdir(), 'rasmon-rules-mutant-'));
      scratch.push(dir);
      mkdirSync(join(dir, 'rules'));
      mkdirSync(join(dir, 'tests'));
      writeFileSync(join(dir, 'rules', 'rasmon-alerts.yml'), rules.replace(from, to));
      // Only the test groups that check the alert the mutant should break: they are what must catch it.
      const tests = YAML.parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> };
      tests.tests = tests.tests.filter((group) =>
        (group.alert_rule_test ?? []).some((test) => test.alertname === alert),
      );
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
        from: 'reason=~"unauthorized|revoked|forbidden|max_hosts|token_hosts|certificate_name"',
        to: 'reason=~"unauthorized|revoked|forbidden|token_hosts|certificate_name"',
        alert: 'RasAgentRefusals',
      },
      {
        what: 'count drift from 3 users instead of 2',
        from: 'expr: vector(2)',
        to: 'expr: vector(3)',
        alert: 'RasLicenseCountDrift',
      },
      {
        what: 'count drift as a share of the smaller count instead of the larger',
        from: '(farm:ras_license_users:held >= farm:ras_broker_license_users:held or',
        to: '(farm:ras_license_users:held <= farm:ras_broker_license_users:held or',
        alert: 'RasLicenseCountDrift',
      },
      {
        what: "count drift kept alerting while the broker's count is not current",
        from: 'unless on (farm) (max by (farm) (max_over_time(ras_broker_up[10m])) == 0)',
        to: 'unless on (farm) (max by (farm) (max_over_time(ras_broker_up[10m])) == 2)',
        alert: 'RasLicenseCountDrift',
      },
      {
        what: "RAS's alertMessage as an alert label (a new message starts the alert again)",
        from: 'expr: max by (farm) (farm:ras_broker_needs_attention:held) == 1',
        to: 'expr: max by (farm, alert_message) (farm:ras_broker_needs_attention:held) == 1',
        alert: 'RasLicenseBrokerAttention',
      },
      {
        what: 'supersede bursts counted per collector instead of summed over collectors',
        from: 'sum by (farm) (increase(rasmon_collector_supersedes_total[10m]))',
        to: 'max by (farm) (increase(rasmon_collector_supersedes_total[10m]))',
        alert: 'RasHostSupersedeBurst',
      },
      {
        what: 'supersede burst from 7 instead of more than 5',
        from: 'record: threshold:host_supersede_burst:count\n        expr: vector(5)',
        to: 'record: threshold:host_supersede_burst:count\n        expr: vector(6)',
        alert: 'RasHostSupersedeBurst',
      },
      {
        what: 'quota refusals counted per collector instead of summed over collectors',
        from: 'sum by (farm, reason) (increase(rasmon_collector_farm_quota_refused_total[10m]))',
        to: 'max by (farm, reason) (increase(rasmon_collector_farm_quota_refused_total[10m]))',
        alert: 'RasFarmQuotaRefused',
      },
      {
        what: "quota refusals of a farm's two quotas merged into one alert",
        from: 'sum by (farm, reason) (increase(rasmon_collector_farm_quota_refused_total[10m])) > 0',
        to: 'sum by (farm) (increase(rasmon_collector_farm_quota_refused_total[10m])) > 0',
        alert: 'RasFarmQuotaRefused',
      },
      {
        what: 'full-soon threshold lowered to 13 days (the 14-day edge)',
        from: 'expr: vector(14)',
        to: 'expr: vector(13)',
        alert: 'RasLicenseFullSoon',
      },
      {
        what: 'full soon only below the threshold, not at it',
        from: '<= on () group_left () threshold:license_forecast_full:days',
        to: '< on () group_left () threshold:license_forecast_full:days',
        alert: 'RasLicenseFullSoon',
      },
      {
        what: 'forecast held while the farm is exported without one (a trend that turned would keep alerting)',
        from: 'or (farm:ras_license_forecast_full_days:held unless on (farm) max by (farm) (ras_license_info))',
        to: 'or farm:ras_license_forecast_full_days:held',
        alert: 'RasLicenseFullSoon',
      },
      {
        what: 'full soon after 30 minutes instead of an hour',
        from: 'threshold:license_forecast_full:days\n        for: 1h',
        to: 'threshold:license_forecast_full:days\n        for: 30m',
        alert: 'RasLicenseFullSoon',
      },
      {
        what: 'host-bound refusals read from another reason',
        from: 'rasmon_collector_agents_refused_total{reason="host_bound"}',
        to: 'rasmon_collector_agents_refused_total{reason="host_taken"}',
        alert: 'RasHostImpersonation',
      },
      {
        what: 'broker down on the word of one collector a scrape ahead',
        from: 'expr: max by (farm) (ras_broker_up) == 0',
        to: 'expr: min by (farm) (ras_broker_up) == 0',
        alert: 'RasBrokerDown',
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
