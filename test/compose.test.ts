/**
 * The docker-compose stack, checked as far as a machine without a Docker engine can: the file is
 * valid for docker-compose, and the Prometheus configuration it mounts is valid for promtool (the
 * configurations the collector and the agents read are checked in compose-files.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMPOSE_FILE, mounted } from './support/compose.js';

describe('docker-compose.yml', () => {
  it('is valid under docker-compose config -q', () => {
    const run = spawnSync('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { encoding: 'utf8' });
    expect(run.error).toBeUndefined();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('mounts the Prometheus configuration with its rules, and Grafana its provisioning and dashboard', () => {
    const prometheus = mounted('prometheus', '/etc/prometheus');
    expect(existsSync(`${prometheus}/prometheus.yml`)).toBe(true);
    const check = spawnSync('promtool', ['check', 'config', `${prometheus}/prometheus.yml`], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(existsSync(`${mounted('grafana', '/etc/grafana/provisioning')}/datasources/prometheus.yml`)).toBe(true);
    expect(existsSync(`${mounted('alertmanager', '/etc/alertmanager')}/alertmanager.yml`)).toBe(true);
    expect(existsSync(`${mounted('grafana', '/var/lib/grafana/dashboards')}/rasmon.json`)).toBe(true);
  });
});
