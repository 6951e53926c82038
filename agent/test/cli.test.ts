import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../bin/rasmon-agent.js', import.meta.url).pathname;
const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;

function agent(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function config(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'rasmon-agent-cli-')), 'agent.yaml');
  writeFileSync(path, text);
  return path;
}

describe('rasmon-agent sessions', () => {
  it('prints what the agent would send from a saved quser output, domain put before bare names', () => {
    const path = config('farm: farm-a\nhost: rdsh-1\ndomain: CORP\n');
    const run = agent(
      'sessions',
      '--config',
      path,
      '--source',
      'quser',
      '--input',
      join(FIXTURES, 'quser-en-disconnected.txt'),
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const sessions = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    // The console session is left out by default.
    expect(sessions.map((s) => [s.user, s.state, s.kind, s.via])).toEqual([
      ['CORP\\admin.xxxxxxxx', 'disconnected', 'desktop', 'ras'],
      ['CORP\\admin.xxxxx', 'active', 'desktop', 'ras'],
    ]);
    expect(sessions[0]!.since).toBe(Date.UTC(2017, 6, 20, 13, 19));
  });

  it('prints a saved wts script output, classified', () => {
    const run = agent('sessions', '--host', 'rdsh-1', '--source', 'wts', '--input', join(FIXTURES, 'wts-output.json'));
    expect(run.code).toBe(0);
    const sessions = JSON.parse(run.stdout) as Array<Record<string, unknown>>;
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.some((s) => s.kind === 'app')).toBe(true);
  });

  it('treats "No User exists" as an empty host', () => {
    const run = agent(
      'sessions',
      '--host',
      'rdsh-1',
      '--source',
      'quser',
      '--input',
      join(FIXTURES, 'quser-no-user.txt'),
    );
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([]);
  });

  it('exits 2 with one line for bad flags and bad configuration, 1 when the source cannot be read', () => {
    const flag = agent('--bogus');
    expect(flag.code).toBe(2);
    expect(flag.stderr.split('\n')[0]).toMatch(/^rasmon-agent: .*--bogus/);
    const source = agent('sessions', '--host', 'rdsh-1', '--source', 'magic');
    expect(source.code).toBe(2);
    expect(source.stderr).toBe('rasmon-agent: --source: must be one of wts, quser, command, simulate (got "magic")\n');
    const missing = agent('sessions', '--host', 'rdsh-1', '--source', 'quser', '--input', '/no/such/file');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^rasmon-agent: cannot read the sessions \(source quser\): .*no such file/i);
    const run = agent('--host', 'rdsh-1');
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('rasmon-agent: collector: required to connect to a collector\n');
  });
});

describe('the Windows sources off Windows', () => {
  it.skipIf(process.platform === 'win32')(
    'say "Windows only" in sessions, check and a run, naming the config file',
    () => {
      const path = config(`farm: farm-a\nhost: rdsh-1\ncollector: ws://127.0.0.1:1\ntokenFile: ${BIN}\n`);
      const sessions = agent('sessions', '--config', path);
      expect(sessions.code).toBe(1);
      expect(sessions.stderr).toMatch(
        /^rasmon-agent: cannot read the sessions \(source wts\): the wts source is Windows only/,
      );
      const quser = agent('sessions', '--config', path, '--source', 'quser');
      expect(quser.stderr).toMatch(/the quser source is Windows only/);
      const check = agent('check', '--config', path);
      expect(check.stdout).toMatch(
        /^FAIL source wts cannot list the sessions: the wts source is Windows only \(this is linux\)/m,
      );
      expect(check.stdout).not.toMatch(/shared library/);
      const run = agent('--config', path);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        new RegExp(`^rasmon-agent: config file ${path}: source: the wts source is Windows only`),
      );
    },
  );
});

describe('rasmon-agent service (off Windows)', () => {
  it('says the service commands are Windows only, exit 2, and keeps --allow-readable-token to service install', () => {
    const service = agent('service', 'status');
    expect(service.stderr).toBe('rasmon-agent: the service commands exist only on Windows\n');
    expect(service.code).toBe(2);
    const misplaced = agent('sessions', '--allow-readable-token');
    expect(misplaced.stderr).toBe('rasmon-agent: --allow-readable-token belongs to service install\n');
    expect(misplaced.code).toBe(2);
  });
});
