/**
 * The docker-compose stack, checked as far as a machine without a Docker engine can: the file is
 * valid for docker-compose, and every configuration it mounts is valid for the program reading it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig } from '@rasmon/collector';
import { loadAgentConfig, readToken } from '../agent/src/config.js';

const ROOT = new URL('..', import.meta.url).pathname;
const compose = YAML.parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
  services: Record<string, { command?: string[]; volumes?: string[] }>;
};

/** The host path mounted at `target` by a service. */
function mounted(service: string, target: string): string {
  const volume = compose.services[service]!.volumes!.find((v) => v.split(':')[1] === target)!;
  return `${ROOT}${volume.split(':')[0]!.replace(/^\.\//, '')}`;
}

describe('docker-compose.yml', () => {
  it('is valid under docker-compose config -q', () => {
    const run = spawnSync('docker-compose', ['-f', `${ROOT}docker-compose.yml`, 'config', '-q'], { encoding: 'utf8' });
    expect(run.error).toBeUndefined();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('runs Redis with AOF persistence', () => {
    expect(compose.services.redis!.command).toContain('--appendonly');
    expect(compose.services.redis!.command![compose.services.redis!.command!.indexOf('--appendonly') + 1]).toBe('yes');
  });

  it('gives the collector a configuration it accepts', () => {
    const dir = mounted('collector', '/etc/rasmon');
    const config = loadConfig({ path: `${dir}/collector.yaml`, env: {} });
    expect(config.redis.url).toBe('redis://redis:6379');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9420 });
  });

  it('gives every simulated agent a configuration, a token of its farm and its own host name', () => {
    const dir = mounted('collector', '/etc/rasmon');
    const collector = loadConfig({ path: `${dir}/collector.yaml`, env: {} });
    const agents = Object.entries(compose.services).filter(([name]) => name.startsWith('agent-'));
    expect(agents.length).toBeGreaterThanOrEqual(2);
    const hosts = new Set<string>();
    for (const [, service] of agents) {
      const args = service.command!;
      const file = args[args.indexOf('--config') + 1]!.replace('/etc/rasmon', dir);
      const host = args[args.indexOf('--host') + 1]!;
      hosts.add(host);
      const config = loadAgentConfig(file, { host });
      expect(config.collector).toBe('ws://collector:9420');
      const token = readToken(config.tokenFile!.replace('/etc/rasmon', dir));
      const farm = collector.farms.find((f) => f.id === config.farm)!;
      const sha = execFileSync('sha256sum', { input: token, encoding: 'utf8' }).split(' ')[0];
      expect(farm.agentTokensSha256).toContain(sha);
    }
    expect(hosts.size).toBe(agents.length);
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
