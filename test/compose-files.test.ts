/**
 * The configurations docker-compose.yml hands its services are valid for the program reading them:
 * Redis keeps an AOF, the collector accepts its file, every simulated agent its own (docker-compose
 * and promtool themselves run in compose.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@rasmon/collector';
import { loadAgentConfig, readToken } from '../agent/src/config.js';
import { compose, mounted } from './support/compose.js';

describe('docker-compose.yml services', () => {
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
      expect(farm.agentTokensSha256.map((entry) => entry.sha256)).toContain(sha);
    }
    expect(hosts.size).toBe(agents.length);
  });
});
