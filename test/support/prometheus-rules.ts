/** The Prometheus deployment files under deploy/prometheus, as the rule tests read them. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const PROM_DIR = join(ROOT, 'deploy/prometheus');
export const RULES_DIR = join(PROM_DIR, 'rules');
export const CONFIG = join(PROM_DIR, 'prometheus.yml');
export const ALERT_RULES = join(RULES_DIR, 'rasmon-alerts.yml');
export const RULE_TESTS = join(PROM_DIR, 'tests/rasmon-alerts.test.yml');
export const RUNBOOKS = join(ROOT, 'docs/runbooks.md');

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function ruleFiles(): string[] {
  return readdirSync(RULES_DIR)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(RULES_DIR, name));
}

export function rulesOf(file: string): Rule[] {
  const doc = YAML.parse(readFileSync(file, 'utf8')) as { groups?: Array<{ rules?: Rule[] }> } | null;
  return (doc?.groups ?? []).flatMap((group) => group.rules ?? []);
}

export interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: unknown[] | null;
}

export function alertTests(): AlertTest[] {
  const doc = YAML.parse(readFileSync(RULE_TESTS, 'utf8')) as { tests?: Array<{ alert_rule_test?: AlertTest[] }> };
  return (doc.tests ?? []).flatMap((group) => group.alert_rule_test ?? []);
}
